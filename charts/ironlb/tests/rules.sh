#!/usr/bin/env bash
# Checks the chart's alerting rules with Prometheus's promtool: renders the
# PrometheusRule (metrics.prometheusRule.enabled=true, release ironlb in
# ironlb-system), then `promtool check rules` (syntax, PromQL, templates) and
# `promtool test rules` on alerts.test.yaml (alerts fire when they should,
# with the labels and text they should).
#
# promtool is built from the Go module proxy into e2e/bin, like the lab's
# control plane, once per pinned version; helm is the one `make controlplane`
# builds there. PROMTOOL and HELM override either.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
bin=${BIN_DIR:-$repo/e2e/bin}
# Prometheus v3.16.0: its Go module versions are v0.<major><minor>.<patch>.
promtool_version=v0.316.0

promtool=${PROMTOOL:-$bin/promtool}
if [ -z "${PROMTOOL:-}" ] && [ "$(cat "$bin/.promtool-version" 2>/dev/null)" != "$promtool_version" ]; then
  echo "building promtool $promtool_version into $bin (a few minutes, once)"
  mkdir -p "$bin"
  CGO_ENABLED=0 GOBIN=$bin go install -trimpath -ldflags "-s -w" \
    "github.com/prometheus/prometheus/cmd/promtool@$promtool_version"
  echo "$promtool_version" > "$bin/.promtool-version"
fi

helm=${HELM:-$bin/helm}
if ! [ -x "$helm" ]; then
  echo "no helm at $helm: run make controlplane, or set HELM" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# promtool reads plain rule groups: the PrometheusRule's spec, one level up.
"$helm" template ironlb "$repo/charts/ironlb" --namespace ironlb-system --kube-version 1.37.2 \
  --set metrics.prometheusRule.enabled=true --show-only templates/prometheusrule.yaml \
  | sed -n '/^spec:$/,$p' | tail -n +2 | sed 's/^  //' > "$work/rules.yaml"
cp "$here/alerts.test.yaml" "$work/"

"$promtool" check rules "$work/rules.yaml"
"$promtool" test rules "$work/alerts.test.yaml"
