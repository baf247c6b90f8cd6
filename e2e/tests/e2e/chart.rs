//! The Helm chart as the lab installed it with the real `helm`, and as
//! `helm template` renders it: what a user relies on when they install it.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ironlb_e2e::{CommandOutput, Lab, block_on};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Test;

pub(crate) const TESTS: &[Test] = &[
    ("chart::helm_install_puts_the_chart_crds_in_place", helm_install_puts_the_chart_crds_in_place),
    ("chart::lints_clean", lints_clean),
    ("chart::refuses_an_unknown_value_by_name", refuses_an_unknown_value_by_name),
    ("chart::speaker_runs_on_the_host_network_with_only_net_raw", speaker_runs_on_the_host_network_with_only_net_raw),
    (
        "chart::speaker_learns_its_node_pod_and_namespace_from_the_downward_api",
        speaker_learns_its_node_pod_and_namespace_from_the_downward_api,
    ),
    ("chart::speaker_probes_and_metrics_share_one_port", speaker_probes_and_metrics_share_one_port),
    ("chart::speaker_settings_flow_into_its_args", speaker_settings_flow_into_its_args),
    ("chart::refuses_a_bad_speaker_setting_by_name", refuses_a_bad_speaker_setting_by_name),
    ("chart::refuses_a_bad_operator_setting_by_name", refuses_a_bad_operator_setting_by_name),
    ("chart::speaker_cluster_role_writes_nothing_but_events", speaker_cluster_role_writes_nothing_but_events),
    ("chart::speaker_writes_leases_only_in_the_release_namespace", speaker_writes_leases_only_in_the_release_namespace),
    (
        "chart::operator_reads_node_leases_and_endpointslices_without_writing_them",
        operator_reads_node_leases_and_endpointslices_without_writing_them,
    ),
    (
        "chart::installed_service_accounts_can_do_their_job_and_no_more",
        installed_service_accounts_can_do_their_job_and_no_more,
    ),
    ("chart::renders_no_monitoring_objects_by_default", renders_no_monitoring_objects_by_default),
    ("chart::service_monitors_scrape_both_metrics_services", service_monitors_scrape_both_metrics_services),
    ("chart::alert_rules_use_only_metrics_the_binaries_export", alert_rules_use_only_metrics_the_binaries_export),
    (
        "chart::dashboard_ships_for_the_grafana_sidecar_with_exported_metrics",
        dashboard_ships_for_the_grafana_sidecar_with_exported_metrics,
    ),
    ("chart::refuses_a_bad_monitoring_value_by_name", refuses_a_bad_monitoring_value_by_name),
];

/// The Kubernetes version `helm template` renders for: the lab's, so only the
/// chart itself (its values schema, its templates) can refuse.
const KUBE_VERSION: &str = "1.37.2";
/// The release name and namespace the lab installs the chart with: the lab's
/// binaries run as ServiceAccounts named after them.
const RELEASE: &str = "ironlb";
const NAMESPACE: &str = "ironlb-system";
/// The speaker's objects in that release (ServiceAccount, DaemonSet, roles).
const SPEAKER: &str = "ironlb-speaker";
const OPERATOR: &str = "ironlb-operator";
/// Verbs that only read.
const READ: &[&str] = &["get", "list", "watch"];

/// The CRDs the chart ships, as files.
pub(crate) fn chart_crds(lab: &Lab) -> Result<Vec<CustomResourceDefinition>> {
    let dir = lab.root().join("charts/ironlb/crds");
    let mut crds = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        crds.push(serde_yaml::from_str(&text).with_context(|| format!("{} is not a CRD", path.display()))?);
    }
    crds.sort_by(|a: &CustomResourceDefinition, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(crds)
}

fn helm_install_puts_the_chart_crds_in_place(lab: &Lab) -> Result<()> {
    let status = lab.helm(&["status", "ironlb", "--namespace", "ironlb-system", "-o", "json"])?.ok()?;
    let status: serde_json::Value = serde_json::from_str(&status.stdout)?;
    ensure!(status["info"]["status"] == "deployed", "the ironlb release is {}", status["info"]["status"]);

    let shipped = chart_crds(lab)?;
    let names: Vec<_> = shipped.iter().filter_map(|c| c.metadata.name.as_deref()).collect();
    ensure!(names == ["ipaddresspools.ironlb.io", "l2advertisements.ironlb.io"], "the chart ships the CRDs {names:?}");
    for file in shipped {
        let name = file.metadata.name.clone().unwrap_or_default();
        let served = block_on(async {
            let crds: Api<CustomResourceDefinition> = Api::all(lab.client().await?);
            anyhow::Ok(crds.get(&name).await?)
        })?;
        let established = served
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        ensure!(established, "CRD {name} is not Established");
        ensure!(served.spec.scope == "Cluster", "CRD {name} is {}-scoped", served.spec.scope);
        // The API server keeps the schema, CEL rules, printer columns and
        // subresources exactly as the chart gave them.
        ensure!(
            serde_json::to_value(&served.spec.versions)? == serde_json::to_value(&file.spec.versions)?,
            "CRD {name} in the cluster differs from charts/ironlb/crds"
        );
    }
    Ok(())
}

/// Value combinations the chart must render and lint cleanly with: the
/// defaults, and each monitoring option alone and together.
const MONITORING: &[&[&str]] = &[
    &[],
    &["metrics.serviceMonitor.enabled=true"],
    &["metrics.prometheusRule.enabled=true"],
    &["grafanaDashboard.enabled=true"],
    &["metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true", "grafanaDashboard.enabled=true"],
];

fn lints_clean(lab: &Lab) -> Result<()> {
    for sets in MONITORING {
        let mut args = vec!["lint", "--strict", "charts/ironlb", "--kube-version", KUBE_VERSION];
        for set in *sets {
            args.extend(["--set", set]);
        }
        let lint = lab.helm(&args)?.ok()?;
        ensure!(lint.stdout.contains("0 chart(s) failed"), "helm lint with {sets:?} said:\n{}", lint.stdout);
    }
    Ok(())
}

fn refuses_an_unknown_value_by_name(lab: &Lab) -> Result<()> {
    // The lab's Kubernetes version, so that only the values schema can refuse.
    let template = ["template", "charts/ironlb", "--kube-version", KUBE_VERSION];
    lab.helm(&template)?.ok()?;
    let refused = lab.helm(&[&template[..], &["--set", "speakr.logLevel=debug"]].concat())?.refused()?;
    ensure!(
        refused.stderr.contains("speakr") && refused.stderr.contains("values don't meet the specifications"),
        "helm did not refuse the unknown value by its schema, naming it:\n{}",
        refused.stderr
    );
    Ok(())
}

/// `helm template` of the chart as release `ironlb` in `namespace`, with a
/// `--set` for each of `sets`.
fn template(lab: &Lab, namespace: &str, sets: &[&str]) -> Result<CommandOutput> {
    let mut args = vec!["template", RELEASE, "charts/ironlb", "--namespace", namespace, "--kube-version", KUBE_VERSION];
    for set in sets {
        args.extend(["--set", set]);
    }
    lab.helm(&args)
}

/// The objects the chart renders (see [`template`]), one JSON value each.
fn render(lab: &Lab, namespace: &str, sets: &[&str]) -> Result<Vec<Value>> {
    let rendered = template(lab, namespace, sets)?.ok()?;
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&rendered.stdout) {
        let object = Value::deserialize(document).context("helm template printed a document that is not YAML")?;
        if !object.is_null() {
            objects.push(object);
        }
    }
    Ok(objects)
}

/// The rendered object of `kind` named `name`.
fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .with_context(|| format!("the chart renders no {kind} {name}"))
}

/// The Pod template of the speaker DaemonSet.
fn speaker_pod(objects: &[Value]) -> Result<&Value> {
    object(objects, "DaemonSet", SPEAKER)?
        .pointer("/spec/template/spec")
        .context("the speaker DaemonSet has no Pod spec")
}

/// The speaker's one container.
fn speaker_container(objects: &[Value]) -> Result<&Value> {
    let containers = speaker_pod(objects)?["containers"].as_array().context("the speaker Pod has no containers")?;
    ensure!(containers.len() == 1, "the speaker Pod should have one container, has {}", containers.len());
    Ok(&containers[0])
}

/// The strings of a YAML list (`args`, `verbs`, ...); empty when it is absent.
fn strings(list: &Value) -> Vec<&str> {
    list.as_array().map(|items| items.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// The rules of a Role or ClusterRole.
fn rules(role: &Value) -> Result<&Vec<Value>> {
    role["rules"].as_array().with_context(|| format!("{} {} has no rules", role["kind"], role["metadata"]["name"]))
}

/// Whether one of `rules` allows `verb` on `resource` of API group `group`.
fn grants(rules: &[Value], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|rule| {
        strings(&rule["apiGroups"]).contains(&group)
            && strings(&rule["resources"]).contains(&resource)
            && strings(&rule["verbs"]).contains(&verb)
    })
}

fn speaker_runs_on_the_host_network_with_only_net_raw(lab: &Lab) -> Result<()> {
    let objects = render(lab, NAMESPACE, &[])?;
    let pod = speaker_pod(&objects)?;
    // ARP and NDP are answered on the node's own interfaces.
    ensure!(pod["hostNetwork"] == true, "the speaker Pod is not on the host network: {pod}");
    ensure!(pod["dnsPolicy"] == "ClusterFirstWithHostNet", "the speaker Pod's dnsPolicy is {}", pod["dnsPolicy"]);
    for shared in ["hostPID", "hostIPC", "initContainers"] {
        ensure!(pod[shared].is_null(), "the speaker Pod sets {shared}: {}", pod[shared]);
    }
    let security = &speaker_container(&objects)?["securityContext"];
    ensure!(
        security["capabilities"] == json!({"drop": ["ALL"], "add": ["NET_RAW"]}),
        "the speaker should drop every capability but NET_RAW, its securityContext is {security}"
    );
    for (field, value) in [("readOnlyRootFilesystem", true), ("allowPrivilegeEscalation", false), ("privileged", false)]
    {
        ensure!(security[field] == value, "the speaker's {field} is {}, not {value}", security[field]);
    }
    ensure!(security["seccompProfile"] == json!({"type": "RuntimeDefault"}), "the speaker's seccomp: {security}");
    Ok(())
}

fn speaker_learns_its_node_pod_and_namespace_from_the_downward_api(lab: &Lab) -> Result<()> {
    let objects = render(lab, NAMESPACE, &[])?;
    let env = speaker_container(&objects)?["env"].as_array().context("the speaker has no env")?;
    for (name, field) in
        [("NODE_NAME", "spec.nodeName"), ("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")]
    {
        let variable = env.iter().find(|v| v["name"] == name).with_context(|| format!("the speaker has no {name}"))?;
        ensure!(
            variable["valueFrom"] == json!({"fieldRef": {"fieldPath": field}}),
            "the speaker's {name} should come from the downward API's {field}, is {variable}"
        );
    }
    Ok(())
}

fn speaker_probes_and_metrics_share_one_port(lab: &Lab) -> Result<()> {
    for (sets, port) in [(&[][..], 7473), (&["speaker.metricsPort=9473"][..], 9473)] {
        let objects = render(lab, NAMESPACE, sets)?;
        let container = speaker_container(&objects)?;
        let listen = format!("--metrics-address=0.0.0.0:{port}");
        ensure!(strings(&container["args"]).contains(&listen.as_str()), "no {listen} in {}", container["args"]);
        ensure!(
            container["ports"] == json!([{"name": "metrics", "containerPort": port}]),
            "the speaker should expose port {port} as metrics, exposes {}",
            container["ports"]
        );
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            ensure!(
                container[probe]["httpGet"] == json!({"path": path, "port": "metrics"}),
                "the speaker's {probe} should get {path} on the metrics port, is {}",
                container[probe]
            );
        }
        let service = object(&objects, "Service", "ironlb-speaker-metrics")?;
        ensure!(
            service["spec"]["ports"] == json!([{"name": "metrics", "port": port, "targetPort": "metrics"}]),
            "the speaker metrics Service serves {}",
            service["spec"]["ports"]
        );
        let pods = &object(&objects, "DaemonSet", SPEAKER)?["spec"]["selector"]["matchLabels"];
        ensure!(
            service["spec"]["selector"] == *pods,
            "the metrics Service selects {}, not the speakers",
            service["spec"]
        );
    }
    Ok(())
}

fn speaker_settings_flow_into_its_args(lab: &Lab) -> Result<()> {
    let defaults = [
        "--log-level=info",
        "--lease-duration=2s",
        "--lease-renew-interval=500ms",
        "--refresh-interval=0s",
        "--shutdown-grace=2s",
    ];
    let set = [
        "speaker.logLevel=debug",
        "speaker.leaseDuration=3s",
        "speaker.leaseRenewInterval=1s",
        "speaker.refreshInterval=1m30s",
        "speaker.shutdownGrace=5s",
        "speaker.terminationGracePeriodSeconds=20",
    ];
    let changed = [
        "--log-level=debug",
        "--lease-duration=3s",
        "--lease-renew-interval=1s",
        "--refresh-interval=1m30s",
        "--shutdown-grace=5s",
    ];
    for (sets, flags, grace) in [(&[][..], defaults, 10), (&set[..], changed, 20)] {
        let objects = render(lab, NAMESPACE, sets)?;
        let container = speaker_container(&objects)?;
        let args = strings(&container["args"]);
        for flag in flags {
            ensure!(args.contains(&flag), "with {sets:?} the speaker should get {flag}, its args are {args:?}");
        }
        let pod = speaker_pod(&objects)?;
        ensure!(
            pod["terminationGracePeriodSeconds"] == grace,
            "with {sets:?} the speaker's grace period is {}",
            pod["terminationGracePeriodSeconds"]
        );
    }
    Ok(())
}

/// Each entry: a `--set` the chart must refuse, and the key the refusal must name.
const BAD_SPEAKER_SETTINGS: &[(&str, &str)] = &[
    ("speaker.leaseDuration=2 seconds", "leaseDuration"),
    ("speaker.refreshInterval=30", "refreshInterval"),
    ("speaker.shutdownGrace=2", "shutdownGrace"),
    ("speaker.metricsPort=0", "metricsPort"),
    ("speaker.updateStrategy.rollingUpdate.maxSurge=1", "maxSurge"),
    // Well-formed, but what the speaker would refuse at start on every node.
    ("speaker.leaseDuration=500ms", "speaker.leaseDuration"),
    ("speaker.leaseRenewInterval=2s", "speaker.leaseRenewInterval"),
    // Killed by the kubelet before its shutdown grace ends, a speaker stops answering early.
    ("speaker.terminationGracePeriodSeconds=2", "speaker.terminationGracePeriodSeconds"),
];

fn refuses_a_bad_speaker_setting_by_name(lab: &Lab) -> Result<()> {
    let refused = template(lab, NAMESPACE, &["speaker.leaseDuration=2 seconds"])?.refused()?;
    ensure!(
        refused.stderr.contains("values don't meet the specifications"),
        "the values schema did not refuse a duration that is not one:\n{}",
        refused.stderr
    );
    for (set, named) in BAD_SPEAKER_SETTINGS {
        let refused = template(lab, NAMESPACE, &[set])?.refused().with_context(|| format!("{set} was accepted"))?;
        ensure!(refused.stderr.contains(named), "refusing {set} did not name {named}:\n{}", refused.stderr);
    }
    Ok(())
}

/// Each entry: a `--set` of an operator value the chart must refuse, and what the refusal must name.
const BAD_OPERATOR_SETTINGS: &[(&str, &str)] = &[
    ("operator.logLevel=verbose", "/operator/logLevel"),
    ("operator.replicas=-1", "/operator/replicas"),
    // Well-formed, but the operator refuses to start unless retryPeriod < renewDeadline <
    // leaseDuration: every replica would crash-loop.
    ("operator.leaderElection.renewDeadline=15", "operator.leaderElection.renewDeadline"),
    ("operator.leaderElection.retryPeriod=10", "operator.leaderElection.retryPeriod"),
];

fn refuses_a_bad_operator_setting_by_name(lab: &Lab) -> Result<()> {
    for (set, named) in BAD_OPERATOR_SETTINGS {
        let refused = template(lab, NAMESPACE, &[set])?.refused().with_context(|| format!("{set} was accepted"))?;
        ensure!(refused.stderr.contains(named), "refusing {set} did not name {named}:\n{}", refused.stderr);
    }
    Ok(())
}

fn speaker_cluster_role_writes_nothing_but_events(lab: &Lab) -> Result<()> {
    let objects = render(lab, NAMESPACE, &[])?;
    let rules = rules(object(&objects, "ClusterRole", SPEAKER)?)?;
    let mut resources = Vec::new();
    for rule in rules {
        let (groups, kinds, verbs) =
            (strings(&rule["apiGroups"]), strings(&rule["resources"]), strings(&rule["verbs"]));
        ensure!(!groups.contains(&"*") && !kinds.contains(&"*") && !verbs.contains(&"*"), "a wildcard in {rule}");
        let writes: Vec<&str> = verbs.iter().copied().filter(|v| !READ.contains(v)).collect();
        ensure!(
            writes.is_empty()
                || (groups == ["events.k8s.io"]
                    && kinds == ["events"]
                    && writes.iter().all(|v| ["create", "patch"].contains(v))),
            "the speaker ClusterRole lets it {writes:?} {groups:?} {kinds:?}"
        );
        resources.extend(groups.iter().flat_map(|g| kinds.iter().map(move |k| format!("{g}/{k}"))));
    }
    resources.sort();
    resources.dedup();
    // Cluster-wide it reads only what it decides from; Leases are not among them.
    let expected = [
        "/nodes",
        "/services",
        "discovery.k8s.io/endpointslices",
        "events.k8s.io/events",
        "ironlb.io/ipaddresspools",
        "ironlb.io/l2advertisements",
    ];
    ensure!(resources == expected, "the speaker ClusterRole covers {resources:?}, not {expected:?}");
    for (group, resource, verb) in [
        ("ironlb.io", "ipaddresspools", "watch"),
        ("ironlb.io", "l2advertisements", "watch"),
        ("", "nodes", "watch"),
        ("discovery.k8s.io", "endpointslices", "watch"),
        ("", "services", "get"),
        ("events.k8s.io", "events", "create"),
    ] {
        ensure!(
            grants(rules, group, resource, verb),
            "the speaker ClusterRole does not let it {verb} {group}/{resource}"
        );
    }
    Ok(())
}

fn speaker_writes_leases_only_in_the_release_namespace(lab: &Lab) -> Result<()> {
    // The lab's namespace, whose ServiceAccount name up.d/ relies on, and another one.
    for namespace in [NAMESPACE, "lb-elsewhere"] {
        let objects = render(lab, namespace, &[])?;
        let account = object(&objects, "ServiceAccount", SPEAKER)?;
        ensure!(
            account["metadata"]["namespace"] == namespace,
            "the speaker ServiceAccount is in {}",
            account["metadata"]
        );
        ensure!(speaker_pod(&objects)?["serviceAccountName"] == SPEAKER, "the speaker Pods run as another account");

        let role = object(&objects, "Role", SPEAKER)?;
        ensure!(
            role["metadata"]["namespace"] == namespace,
            "the speaker Role is not in {namespace}: {}",
            role["metadata"]
        );
        let lease_verbs = ["get", "create", "update", "delete", "list", "watch"];
        for rule in rules(role)? {
            ensure!(
                strings(&rule["apiGroups"]) == ["coordination.k8s.io"]
                    && strings(&rule["resources"]) == ["leases"]
                    && strings(&rule["verbs"]).iter().all(|v| lease_verbs.contains(v)),
                "the speaker Role grants more than its Lease needs: {rule}"
            );
        }
        for verb in lease_verbs {
            ensure!(
                grants(rules(role)?, "coordination.k8s.io", "leases", verb),
                "the speaker Role does not let it {verb} leases"
            );
        }

        let subjects = json!([{"kind": "ServiceAccount", "name": SPEAKER, "namespace": namespace}]);
        for (kind, role_kind) in [("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")] {
            let binding = object(&objects, kind, SPEAKER)?;
            ensure!(
                binding["roleRef"]
                    == json!({"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": SPEAKER})
                    && binding["subjects"] == subjects,
                "the speaker {kind} does not bind its {role_kind} to {SPEAKER} in {namespace}: {binding}"
            );
        }
        let role_binding = object(&objects, "RoleBinding", SPEAKER)?;
        ensure!(role_binding["metadata"]["namespace"] == namespace, "the speaker RoleBinding is not in {namespace}");
    }
    Ok(())
}

fn operator_reads_node_leases_and_endpointslices_without_writing_them(lab: &Lab) -> Result<()> {
    let objects = render(lab, NAMESPACE, &[])?;
    let role = rules(object(&objects, "Role", OPERATOR)?)?;
    let cluster_role = rules(object(&objects, "ClusterRole", OPERATOR)?)?;
    for verb in ["list", "watch"] {
        ensure!(grants(role, "coordination.k8s.io", "leases", verb), "the operator cannot {verb} the node Leases");
        ensure!(
            grants(cluster_role, "discovery.k8s.io", "endpointslices", verb),
            "the operator cannot {verb} EndpointSlices"
        );
    }
    // Its own leader Lease is all it writes among Leases, and it never writes an EndpointSlice.
    ensure!(!grants(role, "coordination.k8s.io", "leases", "delete"), "the operator may delete Leases");
    for rule in cluster_role.iter().filter(|r| strings(&r["resources"]).contains(&"endpointslices")) {
        ensure!(strings(&rule["verbs"]).iter().all(|v| READ.contains(v)), "the operator writes EndpointSlices: {rule}");
    }
    Ok(())
}

/// Each entry: a ServiceAccount, `kubectl auth can-i` arguments, and whether
/// the RBAC the lab installed must allow it.
const CAN_I: &[(&str, &[&str], bool)] = &[
    (SPEAKER, &["update", "leases", "-n", NAMESPACE], true),
    (SPEAKER, &["delete", "leases", "-n", NAMESPACE], true),
    (SPEAKER, &["watch", "leases", "-n", NAMESPACE], true),
    (SPEAKER, &["update", "leases", "-n", "default"], false),
    // The kubelets' node Leases are not the speaker's.
    (SPEAKER, &["update", "leases", "-n", "kube-node-lease"], false),
    (SPEAKER, &["watch", "ipaddresspools.ironlb.io"], true),
    (SPEAKER, &["patch", "ipaddresspools.ironlb.io", "--subresource=status"], false),
    (SPEAKER, &["watch", "l2advertisements.ironlb.io"], true),
    (SPEAKER, &["watch", "nodes"], true),
    (SPEAKER, &["patch", "nodes"], false),
    (SPEAKER, &["watch", "endpointslices.discovery.k8s.io", "--all-namespaces"], true),
    (SPEAKER, &["get", "services", "-n", "default"], true),
    (SPEAKER, &["update", "services", "-n", "default"], false),
    (SPEAKER, &["create", "events.events.k8s.io", "-n", "default"], true),
    (SPEAKER, &["get", "secrets", "-n", NAMESPACE], false),
    (OPERATOR, &["watch", "leases", "-n", NAMESPACE], true),
    (OPERATOR, &["delete", "leases", "-n", NAMESPACE], false),
    (OPERATOR, &["watch", "endpointslices.discovery.k8s.io", "--all-namespaces"], true),
];

fn installed_service_accounts_can_do_their_job_and_no_more(lab: &Lab) -> Result<()> {
    for (account, question, allowed) in CAN_I {
        let as_account = format!("--as=system:serviceaccount:{NAMESPACE}:{account}");
        let args = [&["auth", "can-i"][..], question, &[&as_account]].concat();
        // kubectl prints yes or no, and exits non-zero on no.
        let answer = lab.kubectl(&args)?;
        let said = answer.stdout.trim();
        ensure!(
            said == "yes" || said == "no",
            "`kubectl {}` answered:\n{}{}",
            args.join(" "),
            answer.stdout,
            answer.stderr
        );
        ensure!((said == "yes") == *allowed, "{account} can-i {}: {said}", question.join(" "));
    }
    Ok(())
}

/// The kinds the monitoring options add, and the label the Grafana sidecar looks for.
const MONITORING_KINDS: &[&str] = &["ServiceMonitor", "PrometheusRule"];
const SIDECAR_LABEL: &str = "grafana_dashboard";

/// Every rendered object of `kind`.
fn objects_of<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The rendered ConfigMaps carrying the Grafana sidecar's label.
fn dashboards(objects: &[Value]) -> Vec<&Value> {
    objects_of(objects, "ConfigMap").into_iter().filter(|c| !c["metadata"]["labels"][SIDECAR_LABEL].is_null()).collect()
}

fn renders_no_monitoring_objects_by_default(lab: &Lab) -> Result<()> {
    let objects = render(lab, NAMESPACE, &[])?;
    for kind in MONITORING_KINDS {
        ensure!(objects_of(&objects, kind).is_empty(), "the defaults render a {kind}");
    }
    ensure!(dashboards(&objects).is_empty(), "the defaults render a dashboard ConfigMap");
    // Each option renders only its own objects.
    let only_rules = render(lab, NAMESPACE, &["metrics.prometheusRule.enabled=true"])?;
    ensure!(objects_of(&only_rules, "ServiceMonitor").is_empty(), "the PrometheusRule alone brings ServiceMonitors");
    ensure!(dashboards(&only_rules).is_empty(), "the PrometheusRule alone brings a dashboard");
    Ok(())
}

/// Whether `labels` carries every entry of `selector` (a `matchLabels`).
fn selects(selector: &Value, labels: &Value) -> bool {
    selector.as_object().is_some_and(|wanted| !wanted.is_empty() && wanted.iter().all(|(k, v)| labels[k] == *v))
}

fn service_monitors_scrape_both_metrics_services(lab: &Lab) -> Result<()> {
    let sets = [
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.interval=15s",
        "metrics.serviceMonitor.labels.release=prometheus",
        "metrics.serviceMonitor.relabelings[0].targetLabel=cluster",
        "metrics.serviceMonitor.relabelings[0].replacement=lab",
    ];
    let objects = render(lab, NAMESPACE, &sets)?;
    let monitors = objects_of(&objects, "ServiceMonitor");
    ensure!(monitors.len() == 2, "{} ServiceMonitors rendered, not one per component", monitors.len());
    for component in ["operator", "speaker"] {
        let name = format!("{RELEASE}-{component}");
        let monitor = object(&objects, "ServiceMonitor", &name)?;
        ensure!(monitor["apiVersion"] == "monitoring.coreos.com/v1", "{name} is {}", monitor["apiVersion"]);
        ensure!(monitor["metadata"]["namespace"] == NAMESPACE, "{name} is not in {NAMESPACE}");
        ensure!(monitor["metadata"]["labels"]["release"] == "prometheus", "{name} lacks the extra label");
        ensure!(
            strings(&monitor["spec"]["namespaceSelector"]["matchNames"]) == [NAMESPACE],
            "{name} looks in {}",
            monitor["spec"]["namespaceSelector"]
        );
        // It must select exactly the component's metrics Service, by labels that Service has...
        let selector = &monitor["spec"]["selector"]["matchLabels"];
        let services: Vec<&Value> = objects_of(&objects, "Service")
            .into_iter()
            .filter(|service| selects(selector, &service["metadata"]["labels"]))
            .collect();
        let service_name = format!("{name}-metrics");
        ensure!(
            services.len() == 1 && services[0]["metadata"]["name"] == service_name.as_str(),
            "{name} selects {:?}, not the Service {service_name}",
            services.iter().map(|s| &s["metadata"]["name"]).collect::<Vec<_>>()
        );
        // ...and scrape ports that Service names.
        let ports: Vec<&str> =
            services[0]["spec"]["ports"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
        let endpoints = monitor["spec"]["endpoints"].as_array().context("no endpoints")?;
        ensure!(!endpoints.is_empty(), "{name} has no endpoints");
        for endpoint in endpoints {
            let port = endpoint["port"].as_str().unwrap_or_default();
            ensure!(ports.contains(&port), "{name} scrapes port {port:?}; {service_name} has {ports:?}");
            ensure!(endpoint["path"] == "/metrics" && endpoint["interval"] == "15s", "{name} endpoint {endpoint}");
            let relabelings = endpoint["relabelings"].as_array().cloned().unwrap_or_default();
            ensure!(
                relabelings.last() == Some(&json!({"targetLabel": "cluster", "replacement": "lab"})),
                "{name} does not end with the user's relabeling: {relabelings:?}"
            );
            let node = json!({"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"});
            ensure!(
                relabelings.contains(&node) == (component == "speaker"),
                "{name}: the node label belongs to the speakers' samples only: {relabelings:?}"
            );
        }
    }
    Ok(())
}

/// The metric names in a PromQL expression that belong to ironlb (`ironlb_…`), outside quoted
/// label values.
fn ironlb_metrics_in(expr: &str) -> BTreeSet<String> {
    let mut unquoted = String::new();
    let mut quote = None;
    for c in expr.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
            None => unquoted.push(c),
        }
    }
    unquoted
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("ironlb_"))
        .map(str::to_owned)
        .collect()
}

/// The sample names of an OpenMetrics exposition, from its `# TYPE` lines, so families that have
/// no sample yet (a failure reason never seen) count too: a counter `x` is sampled as `x_total`,
/// a histogram as `x_bucket`, `x_sum` and `x_count`.
fn sample_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let mut words = line.split_whitespace();
        let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
    }
    names
}

/// Every sample name the operator and the speaker export, from their own telemetry code with
/// each recorder called once: a family without a sample is not exported at all (so a scrape of
/// the lab would miss, say, allocation failures until one happened), and a name a rule or panel
/// uses that is not here fails the test rather than passing unnoticed. A new metric that a rule
/// uses must be recorded here once.
fn exported_metrics() -> Result<BTreeSet<String>> {
    use ironlb_crds::address::Family;
    use ironlb_speaker::packet::PacketError;
    use ironlb_speaker::telemetry::{Ignored, Protocol};

    let operator = ironlb_operator::telemetry::Metrics::new();
    operator.record_allocation("pool");
    operator.record_failure("PoolExhausted");
    operator.record_release();
    operator.set_announcer_addresses("pool", 1, 1, 1);
    operator.record_announcer_changes("pool", 1);
    operator.set_pool_usage("pool", Family::V4, 10.0, 1.0);
    operator.observe_reconcile(ironlb_operator::telemetry::Controller::Service, Duration::from_millis(1), false);
    operator.set_leader(true);

    let speaker = ironlb_speaker::telemetry::Metrics::new();
    speaker.request_received("eth0", Protocol::Arp);
    speaker.reply_sent("eth0", Protocol::Arp);
    speaker.gratuitous_sent("eth0", Protocol::Ndp);
    speaker.send_error("eth0", Protocol::Arp);
    speaker.ignored(Ignored::NotOwned);
    speaker.malformed(PacketError::Truncated);
    speaker.set_announced(1, 1);
    speaker.announcer_changed();
    speaker.conflict();
    speaker.yielded();
    speaker.lease_renewal_failed();

    let mut names = sample_names(&operator.render()?);
    names.extend(sample_names(&speaker.render()?));
    Ok(names)
}

fn alert_rules_use_only_metrics_the_binaries_export(lab: &Lab) -> Result<()> {
    let objects = render(lab, NAMESPACE, &["metrics.prometheusRule.enabled=true"])?;
    let rules = objects_of(&objects, "PrometheusRule");
    ensure!(rules.len() == 1, "{} PrometheusRules rendered", rules.len());
    let exported = exported_metrics()?;
    // The rules select targets by job: the metrics Services' names, as a ServiceMonitor names them.
    let jobs: Vec<String> = objects_of(&objects, "Service")
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str())
        .filter(|name| name.ends_with("-metrics"))
        .map(|name| format!("job=\"{name}\""))
        .collect();
    let mut alerts = Vec::new();
    for group in rules[0]["spec"]["groups"].as_array().context("no rule groups")? {
        for rule in group["rules"].as_array().context("a rule group without rules")? {
            let alert = rule["alert"].as_str().context("a rule that is not an alert")?;
            let expr = rule["expr"].as_str().with_context(|| format!("{alert} has no expr"))?;
            let used = ironlb_metrics_in(expr);
            ensure!(!used.is_empty() || expr.contains("up{"), "{alert} watches no ironlb metric: {expr}");
            let missing: Vec<&String> = used.iter().filter(|name| !exported.contains(*name)).collect();
            ensure!(
                missing.is_empty(),
                "{alert} uses {missing:?}, which the binaries do not export (see exported_metrics): {expr}"
            );
            ensure!(jobs.iter().any(|job| expr.contains(job.as_str())), "{alert} selects no job of {jobs:?}: {expr}");
            for annotation in ["summary", "description"] {
                let text = rule["annotations"][annotation].as_str().unwrap_or_default();
                ensure!(!text.trim().is_empty(), "{alert} has no {annotation}");
            }
            ensure!(rule["labels"]["severity"].is_string(), "{alert} has no severity");
            alerts.push(alert.to_owned());
        }
    }
    let expected = [
        "IronLBPoolNearlyExhausted",
        "IronLBAllocationFailures",
        "IronLBAddressesNotAnnounced",
        "IronLBAddressConflict",
        "IronLBSpeakerLeaseRenewFailures",
        "IronLBSpeakerDown",
        "IronLBOperatorNoLeader",
    ];
    ensure!(alerts == expected, "the rule renders the alerts {alerts:?}, not {expected:?}");

    // Thresholds, durations and switches flow into the rule.
    let sets = [
        "metrics.prometheusRule.enabled=true",
        "metrics.prometheusRule.alerts.poolNearlyExhausted.ratio=0.75",
        "metrics.prometheusRule.alerts.poolNearlyExhausted.for=1h",
        "metrics.prometheusRule.alerts.speakerDown.enabled=false",
    ];
    let objects = render(lab, NAMESPACE, &sets)?;
    let rule = object(&objects, "PrometheusRule", RELEASE)?;
    let rendered = rule["spec"]["groups"][0]["rules"].as_array().context("no rules")?;
    let pool = rendered.iter().find(|r| r["alert"] == "IronLBPoolNearlyExhausted").context("no pool alert")?;
    ensure!(
        pool["expr"].as_str().is_some_and(|e| e.trim_end().ends_with(">= 0.75")) && pool["for"] == "1h",
        "the pool alert ignores its settings: {pool}"
    );
    ensure!(!rendered.iter().any(|r| r["alert"] == "IronLBSpeakerDown"), "a disabled alert is rendered");
    Ok(())
}

fn dashboard_ships_for_the_grafana_sidecar_with_exported_metrics(lab: &Lab) -> Result<()> {
    let sets = [
        "grafanaDashboard.enabled=true",
        "grafanaDashboard.namespace=monitoring",
        "grafanaDashboard.annotations.grafana_folder=ironlb",
    ];
    let objects = render(lab, NAMESPACE, &sets)?;
    let maps = dashboards(&objects);
    ensure!(maps.len() == 1, "{} dashboard ConfigMaps rendered", maps.len());
    let map = maps[0];
    ensure!(map["metadata"]["labels"][SIDECAR_LABEL] == "1", "the sidecar label is {}", map["metadata"]["labels"]);
    ensure!(map["metadata"]["namespace"] == "monitoring", "the dashboard is in {}", map["metadata"]["namespace"]);
    ensure!(map["metadata"]["annotations"]["grafana_folder"] == "ironlb", "no folder annotation: {}", map["metadata"]);
    let text = map["data"]["ironlb.json"].as_str().context("the ConfigMap has no ironlb.json")?;
    let dashboard: Value = serde_json::from_str(text).context("ironlb.json is not JSON")?;
    ensure!(
        dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion {}",
        dashboard["schemaVersion"]
    );
    let variables = dashboard["templating"]["list"].as_array().context("no template variables")?;
    ensure!(
        variables.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"),
        "no Prometheus data source variable: {variables:?}"
    );

    let exported = exported_metrics()?;
    let mut used = BTreeSet::new();
    let panels = dashboard["panels"].as_array().context("no panels")?;
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().unwrap_or_default();
        ensure!(panel["datasource"]["uid"] == "${datasource}", "panel {title} has a fixed data source");
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
        for target in targets.with_context(|| format!("panel {title} queries nothing"))? {
            let expr = target["expr"].as_str().with_context(|| format!("panel {title} has a target without expr"))?;
            let names = ironlb_metrics_in(expr);
            ensure!(!names.is_empty(), "panel {title} queries no ironlb metric: {expr}");
            if let Some(missing) = names.iter().find(|name| !exported.contains(*name)) {
                bail!(
                    "panel {title} queries {missing}, which the binaries do not export (see exported_metrics): {expr}"
                );
            }
            used.extend(names);
        }
    }
    // The panels the issue asks for: pool usage, allocations and failures, announcer changes,
    // ARP/NDP traffic, conflicts, Lease renewals, malformed frames.
    for name in [
        "ironlb_operator_pool_addresses_in_use",
        "ironlb_operator_allocations_total",
        "ironlb_operator_allocation_failures_total",
        "ironlb_speaker_announcer_changes_total",
        "ironlb_speaker_requests_received_total",
        "ironlb_speaker_replies_sent_total",
        "ironlb_speaker_gratuitous_sent_total",
        "ironlb_speaker_address_conflicts_total",
        "ironlb_speaker_lease_renewal_failures_total",
        "ironlb_speaker_malformed_frames_dropped_total",
    ] {
        ensure!(used.contains(name), "no panel shows {name}");
    }
    Ok(())
}

/// Each entry: a `--set` of a monitoring value the schema must refuse, and the path the refusal
/// must name.
const BAD_MONITORING_VALUES: &[(&str, &str)] = &[
    ("metrics.serviceMonitor.enabled=maybe", "/metrics/serviceMonitor/enabled"),
    ("metrics.serviceMonitor.interval=30", "/metrics/serviceMonitor/interval"),
    ("metrics.serviceMonitor.relabelings=none", "/metrics/serviceMonitor/relabelings"),
    (
        "metrics.prometheusRule.alerts.poolNearlyExhausted.ratio=1.5",
        "/metrics/prometheusRule/alerts/poolNearlyExhausted/ratio",
    ),
    ("metrics.prometheusRule.alerts.speakerDown.for=5 minutes", "/metrics/prometheusRule/alerts/speakerDown/for"),
    ("metrics.prometheusRule.alerts.speakerDwn.enabled=false", "speakerDwn"),
    ("grafanaDashboard.labels.grafana_dashboard=1", "/grafanaDashboard/labels/grafana_dashboard"),
];

fn refuses_a_bad_monitoring_value_by_name(lab: &Lab) -> Result<()> {
    for (set, named) in BAD_MONITORING_VALUES {
        let refused = template(lab, NAMESPACE, &[set])?.refused().with_context(|| format!("{set} was accepted"))?;
        ensure!(
            refused.stderr.contains("values don't meet the specifications") && refused.stderr.contains(named),
            "refusing {set} did not name {named}:\n{}",
            refused.stderr
        );
    }
    Ok(())
}
