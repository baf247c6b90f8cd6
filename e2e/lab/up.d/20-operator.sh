# shellcheck shell=bash
# 20-operator.sh: two ironlb-operator replicas, as the chart's Deployment would run them (see
# lab_start_operator). They elect a leader with the Lease ironlb-system/ironlb-operator; the
# other one stays a warm standby.
lab_start_operator 0
lab_start_operator 1
lab_wait_for "an operator leader" 30 \
  bash -c "kubectl -n '$LAB_HELM_NAMESPACE' get lease ironlb-operator -o jsonpath='{.spec.holderIdentity}' | grep -q ironlb-operator" \
  || lab_die "no operator replica took the leader Lease"
