//! The Helm chart as the lab installed it with the real `helm`, and as
//! `helm template` renders it: what a user relies on when they install it.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ironlb_e2e::{CommandOutput, Lab, block_on, wait_for};
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
    (
        "chart::operator_election_takes_durations_and_bare_seconds_for_one_release",
        operator_election_takes_durations_and_bare_seconds_for_one_release,
    ),
    ("chart::refuses_a_malformed_duration_naming_the_value", refuses_a_malformed_duration_naming_the_value),
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
    (
        "chart::operator_runs_two_leader_elected_replicas_with_probes",
        operator_runs_two_leader_elected_replicas_with_probes,
    ),
    ("chart::operator_budget_keeps_one_replica_through_a_drain", operator_budget_keeps_one_replica_through_a_drain),
    ("chart::speaker_grace_period_outlasts_its_hand_over", speaker_grace_period_outlasts_its_hand_over),
    ("chart::install_notes_show_a_pool_that_pastes_and_applies", install_notes_show_a_pool_that_pastes_and_applies),
    (
        "chart::rendered_manifests_pass_the_api_server_s_strict_validation",
        rendered_manifests_pass_the_api_server_s_strict_validation,
    ),
    (
        "chart::a_second_release_installs_upgrades_and_uninstalls_beside_the_lab_s",
        a_second_release_installs_upgrades_and_uninstalls_beside_the_lab_s,
    ),
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
    ensure!(
        names == ["ipaddresspools.ironlb.io", "ipallocationslices.ironlb.io", "l2advertisements.ironlb.io"],
        "the chart ships the CRDs {names:?}"
    );
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
    for sets in MONITORING.iter().chain(VALUE_COMBINATIONS) {
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
    template_as(lab, RELEASE, namespace, sets)
}

/// `helm template` of the chart as release `release` in `namespace`, with a `--set` for each of
/// `sets`.
fn template_as(lab: &Lab, release: &str, namespace: &str, sets: &[&str]) -> Result<CommandOutput> {
    let mut args = vec!["template", release, "charts/ironlb", "--namespace", namespace, "--kube-version", KUBE_VERSION];
    for set in sets {
        args.extend(["--set", set]);
    }
    lab.helm(&args)
}

/// The objects the chart renders (see [`template`]), one JSON value each.
fn render(lab: &Lab, namespace: &str, sets: &[&str]) -> Result<Vec<Value>> {
    documents(&template(lab, namespace, sets)?.ok()?.stdout)
}

/// The objects the chart renders as release `release` (see [`template_as`]).
fn render_as(lab: &Lab, release: &str, namespace: &str, sets: &[&str]) -> Result<Vec<Value>> {
    documents(&template_as(lab, release, namespace, sets)?.ok()?.stdout)
}

/// The objects of a YAML stream (what `helm template` or `helm get manifest` prints), one JSON
/// value each; empty documents are left out.
fn documents(stream: &str) -> Result<Vec<Value>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(stream) {
        let object = Value::deserialize(document).context("helm printed a document that is not YAML")?;
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
    // Shorter than the lease, but more than half of it.
    ("speaker.leaseRenewInterval=1500ms", "speaker.leaseRenewInterval is 1500ms"),
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
    // Well-formed, but the operator refuses to start unless 0 < retryPeriod < renewDeadline <
    // leaseDuration and leaseDuration is whole seconds: every replica would crash-loop. Compared
    // as durations, whatever their units, and deprecated bare seconds against durations.
    ("operator.leaderElection.renewDeadline=15", "operator.leaderElection.renewDeadline"),
    ("operator.leaderElection.retryPeriod=10", "operator.leaderElection.retryPeriod"),
    ("operator.leaderElection.renewDeadline=15s", "operator.leaderElection.renewDeadline is 15s"),
    ("operator.leaderElection.renewDeadline=1m", "operator.leaderElection.renewDeadline is 1m"),
    ("operator.leaderElection.retryPeriod=10000ms", "operator.leaderElection.retryPeriod is 10000ms"),
    ("operator.leaderElection.retryPeriod=0s", "operator.leaderElection.retryPeriod is 0s"),
    ("operator.leaderElection.leaseDuration=15500ms", "operator.leaderElection.leaseDuration is 15500ms"),
];

fn refuses_a_bad_operator_setting_by_name(lab: &Lab) -> Result<()> {
    for (set, named) in BAD_OPERATOR_SETTINGS {
        let refused = template(lab, NAMESPACE, &[set])?.refused().with_context(|| format!("{set} was accepted"))?;
        ensure!(refused.stderr.contains(named), "refusing {set} did not name {named}:\n{}", refused.stderr);
    }
    Ok(())
}

/// The operator's election timings as `--set`s the chart accepts, and the flags the operator gets.
const ELECTION_TIMINGS: &[(&[&str], [&str; 3])] = &[
    (&[], ["--lease-duration=15s", "--renew-deadline=10s", "--retry-period=2s"]),
    (
        &["operator.leaderElection.leaseDuration=15s"],
        ["--lease-duration=15s", "--renew-deadline=10s", "--retry-period=2s"],
    ),
    // Compared as durations, not as text or numbers: 45s is shorter than 1m, 1500ms than 45s.
    (
        &[
            "operator.leaderElection.leaseDuration=1m",
            "operator.leaderElection.renewDeadline=45s",
            "operator.leaderElection.retryPeriod=1500ms",
        ],
        ["--lease-duration=1m", "--renew-deadline=45s", "--retry-period=1500ms"],
    ),
    // A leading zero is decimal, as the binaries read it (Helm's int64 would take 010 as octal).
    (
        &["operator.leaderElection.renewDeadline=08s"],
        ["--lease-duration=15s", "--renew-deadline=08s", "--retry-period=2s"],
    ),
    // Deprecated, for one release: a bare number is seconds, passed on as a duration.
    (
        &["operator.leaderElection.leaseDuration=15"],
        ["--lease-duration=15s", "--renew-deadline=10s", "--retry-period=2s"],
    ),
    (
        &[
            "operator.leaderElection.leaseDuration=30",
            "operator.leaderElection.renewDeadline=20",
            "operator.leaderElection.retryPeriod=4",
        ],
        ["--lease-duration=30s", "--renew-deadline=20s", "--retry-period=4s"],
    ),
];

/// The operator's election flags in `objects`, each checked to be a duration the operator reads
/// without a deprecation warning.
fn election_flags(objects: &[Value]) -> Result<Vec<String>> {
    let operator = container(objects, "Deployment", OPERATOR)?;
    let mut flags = Vec::new();
    for flag in strings(&operator["args"]) {
        for name in ["--lease-duration=", "--renew-deadline=", "--retry-period="] {
            if let Some(value) = flag.strip_prefix(name) {
                ironlb_daemon::duration::parse_duration(value).with_context(|| format!("the operator gets {flag}"))?;
                flags.push(flag.to_owned());
            }
        }
    }
    Ok(flags)
}

fn operator_election_takes_durations_and_bare_seconds_for_one_release(lab: &Lab) -> Result<()> {
    for (sets, expected) in ELECTION_TIMINGS {
        let flags = election_flags(&render(lab, NAMESPACE, sets)?)?;
        ensure!(flags == expected, "with {sets:?} the operator gets {flags:?}, not {expected:?}");
    }
    // Bare numbers in a values file are YAML numbers (floats to Helm), not --set's integers: they
    // go out as whole seconds too. --set-json reads them the same way.
    let from_file = "operator.leaderElection={\"leaseDuration\": 20, \"renewDeadline\": 12, \"retryPeriod\": 3}";
    let args = ["template", RELEASE, "charts/ironlb", "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION];
    let rendered = lab.helm(&[&args[..], &["--set-json", from_file]].concat())?.ok()?;
    let flags = election_flags(&documents(&rendered.stdout)?)?;
    let expected = ["--lease-duration=20s", "--renew-deadline=12s", "--retry-period=3s"];
    ensure!(flags == expected, "with {from_file} the operator gets {flags:?}, not {expected:?}");

    // The NOTES name each deprecated value and what to write instead; durations raise nothing.
    let install = ["install", "ironlb-e2e-notes", "charts/ironlb", "--namespace", NAMESPACE, "--dry-run=client"];
    let clean = lab.helm(&install)?.ok()?;
    ensure!(!notes_of(&clean)?.contains("DEPRECATED"), "the default NOTES warn:\n{}", notes_of(&clean)?);
    let bare = lab.helm(&[&install[..], &["--set", "operator.leaderElection.leaseDuration=15"]].concat())?.ok()?;
    let notes = notes_of(&bare)?;
    for said in ["operator.leaderElection.leaseDuration is 15, read as 15s", "write 15s"] {
        ensure!(notes.contains(said), "the NOTES of a bare leaseDuration do not say `{said}`:\n{notes}");
    }
    ensure!(!notes.contains("renewDeadline"), "the NOTES warn about a renewDeadline written as a duration:\n{notes}");
    Ok(())
}

/// Each entry: a `--set` of a duration value the values schema must refuse, the path the refusal
/// must name, and the value it must quote.
const MALFORMED_DURATIONS: &[(&str, &str, &str)] = &[
    ("operator.leaderElection.leaseDuration=15x", "/operator/leaderElection/leaseDuration", "15x"),
    ("operator.leaderElection.renewDeadline=-1s", "/operator/leaderElection/renewDeadline", "-1s"),
    ("operator.leaderElection.retryPeriod=1.5s", "/operator/leaderElection/retryPeriod", "1.5s"),
    ("operator.leaderElection.retryPeriod=-1", "/operator/leaderElection/retryPeriod", "-1"),
    ("speaker.leaseDuration=15x", "/speaker/leaseDuration", "15x"),
    ("speaker.shutdownGrace=-1s", "/speaker/shutdownGrace", "-1s"),
    ("speaker.refreshInterval=1d", "/speaker/refreshInterval", "1d"),
];

fn refuses_a_malformed_duration_naming_the_value(lab: &Lab) -> Result<()> {
    for (set, path, value) in MALFORMED_DURATIONS {
        let refused = template(lab, NAMESPACE, &[set])?.refused().with_context(|| format!("{set} was accepted"))?;
        ensure!(
            refused.stderr.contains("values don't meet the specifications")
                && refused.stderr.contains(path)
                && refused.stderr.contains(value),
            "refusing {set} did not name {path} and {value}:\n{}",
            refused.stderr
        );
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
        "ironlb.io/ipallocationslices",
        "ironlb.io/l2advertisements",
    ];
    ensure!(resources == expected, "the speaker ClusterRole covers {resources:?}, not {expected:?}");
    for (group, resource, verb) in [
        ("ironlb.io", "ipaddresspools", "watch"),
        ("ironlb.io", "ipallocationslices", "watch"),
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
    use ironlb_core::address::Family;
    use ironlb_speaker::packet::PacketError;
    use ironlb_speaker::telemetry::{Ignored, Protocol};

    let operator = ironlb_operator::telemetry::Metrics::new();
    operator.record_allocation("pool");
    operator.record_failure("PoolExhausted");
    operator.record_release();
    operator.set_announcer_addresses("pool", 1, 1);
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

// ---------------------------------------------------------------------------------------------
// What a user relies on beyond RBAC and monitoring: the operator's election and budget, the
// speaker's hand-over time, the NOTES, manifests the API server accepts, and a release's life.

/// The one container of the rendered workload `kind` `name`.
fn container<'a>(objects: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    let containers = object(objects, kind, name)?
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .with_context(|| format!("the {kind} {name} has no containers"))?;
    ensure!(containers.len() == 1, "the {kind} {name} should have one container, has {}", containers.len());
    Ok(&containers[0])
}

fn operator_runs_two_leader_elected_replicas_with_probes(lab: &Lab) -> Result<()> {
    let objects = render(lab, NAMESPACE, &[])?;
    let deployment = object(&objects, "Deployment", OPERATOR)?;
    // A standby keeps its caches warm and takes over within the lease duration.
    ensure!(deployment["spec"]["replicas"] == 2, "the operator runs {} replicas", deployment["spec"]["replicas"]);
    let operator = container(&objects, "Deployment", OPERATOR)?;
    let args = strings(&operator["args"]);
    // The Lease the lab's operators elect on too (lab_start_operator), with timings the operator accepts.
    for flag in [
        "--lease-name=ironlb-operator",
        "--lease-duration=15s",
        "--renew-deadline=10s",
        "--retry-period=2s",
        "--metrics-address=0.0.0.0:7472",
    ] {
        ensure!(args.contains(&flag), "the operator should get {flag}, its args are {args:?}");
    }
    // Each replica's identity in the Lease is its own Pod name; the Lease is in its namespace.
    let env = operator["env"].as_array().context("the operator has no env")?;
    for (name, field) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        let variable = env.iter().find(|v| v["name"] == name).with_context(|| format!("the operator has no {name}"))?;
        ensure!(
            variable["valueFrom"] == json!({"fieldRef": {"fieldPath": field}}),
            "the operator's {name} should come from the downward API's {field}, is {variable}"
        );
    }
    ensure!(
        operator["ports"] == json!([{"name": "metrics", "containerPort": 7472}]),
        "the operator exposes {}",
        operator["ports"]
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        ensure!(
            operator[probe]["httpGet"] == json!({"path": path, "port": "metrics"}),
            "the operator's {probe} should get {path} on the metrics port, is {}",
            operator[probe]
        );
    }
    Ok(())
}

fn operator_budget_keeps_one_replica_through_a_drain(lab: &Lab) -> Result<()> {
    let objects = render(lab, NAMESPACE, &[])?;
    let deployment = object(&objects, "Deployment", OPERATOR)?;
    let replicas = deployment["spec"]["replicas"].as_i64().context("the operator Deployment has no replica count")?;
    let budget = object(&objects, "PodDisruptionBudget", OPERATOR)?;
    ensure!(budget["apiVersion"] == "policy/v1", "the operator budget is {}", budget["apiVersion"]);
    let spec = &budget["spec"];
    // With every replica up, a drain may evict one (else it never ends), never the last one.
    let evictable = match (spec["minAvailable"].as_i64(), spec["maxUnavailable"].as_i64()) {
        (Some(min), None) => replicas - min,
        (None, Some(max)) => max,
        _ => bail!("the operator budget should set minAvailable or maxUnavailable, as a count: {spec}"),
    };
    ensure!(
        (1..replicas).contains(&evictable),
        "with {replicas} replicas the operator budget lets {evictable} go at once: {spec}"
    );
    // It counts exactly this release's operator Pods: not the speakers, not another release's.
    ensure!(
        spec["selector"] == deployment["spec"]["selector"],
        "the budget selects {}, the Deployment {}",
        spec["selector"],
        deployment["spec"]["selector"]
    );
    let selector = &spec["selector"]["matchLabels"];
    let labels = |objects: &[Value], kind: &str, name: &str| -> Result<Value> {
        Ok(object(objects, kind, name)?["spec"]["template"]["metadata"]["labels"].clone())
    };
    ensure!(selects(selector, &labels(&objects, "Deployment", OPERATOR)?), "the budget misses the operator Pods");
    ensure!(!selects(selector, &labels(&objects, "DaemonSet", SPEAKER)?), "the budget counts the speakers");
    let other = render_as(lab, "ironlb-other", NAMESPACE, &[])?;
    ensure!(
        !selects(selector, &labels(&other, "Deployment", "ironlb-other-operator")?),
        "the budget counts the operators of another release in its namespace"
    );
    // One replica: a budget would block every drain of its node, so there is none.
    let single = render(lab, NAMESPACE, &["operator.replicas=1"])?;
    ensure!(objects_of(&single, "PodDisruptionBudget").is_empty(), "one operator replica gets a budget");
    Ok(())
}

/// What a speaker's shutdown takes beside its shutdown grace: deleting its node Lease, against an
/// API server that may be slow to answer.
const LEASE_DELETE_ALLOWANCE: Duration = Duration::from_secs(5);

fn speaker_grace_period_outlasts_its_hand_over(lab: &Lab) -> Result<()> {
    let objects = render(lab, NAMESPACE, &[])?;
    let args = strings(&speaker_container(&objects)?["args"]);
    // Passed explicitly: a new default in the binary cannot outgrow the grace period unseen.
    let grace = args
        .iter()
        .find_map(|arg| arg.strip_prefix("--shutdown-grace="))
        .with_context(|| format!("the speaker gets no --shutdown-grace: {args:?}"))?;
    let grace = ironlb_daemon::duration::parse_duration(grace)?;
    let period = speaker_pod(&objects)?["terminationGracePeriodSeconds"]
        .as_u64()
        .context("the speaker Pod sets no terminationGracePeriodSeconds")?;
    ensure!(
        Duration::from_secs(period) >= grace + LEASE_DELETE_ALLOWANCE,
        "the kubelet kills a stopping speaker after {period}s: too soon for the Lease delete \
         ({LEASE_DELETE_ALLOWANCE:?}) and the {grace:?} it keeps answering"
    );
    Ok(())
}

/// The lines of the NOTES from the here-document that applies the example pool through its
/// terminator, as a user copies them.
fn pool_example(notes: &str) -> Result<String> {
    let mut lines = notes.lines().skip_while(|line| !line.contains("<<POOL"));
    let opening = lines.next().context("the NOTES show no pool to apply (a <<POOL here-document)")?;
    let mut snippet = format!("{opening}\n");
    for line in lines {
        snippet.push_str(line);
        snippet.push('\n');
        if line.trim() == "POOL" {
            return Ok(snippet);
        }
    }
    bail!("the pool here-document in the NOTES never ends:\n{snippet}")
}

/// Runs the pool example of `notes` in bash exactly as printed, with `kubectl` asking the API
/// server for a dry run: the shell must read it as the user meant and the server accept it.
fn paste_pool_example(lab: &Lab, notes: &str) -> Result<()> {
    let snippet = pool_example(notes)?;
    let script = format!(
        "set -eo pipefail\nkubectl() {{ command kubectl \"$@\" --dry-run=server --validate=strict; }}\n{snippet}"
    );
    let mut bash = lab.command("bash");
    bash.args(["-c", &script]);
    let pasted = ironlb_e2e::run(bash, None)?.ok()?;
    ensure!(!pasted.stderr.contains("here-document"), "bash misread the here-document:\n{}", pasted.stderr);
    for applied in ["ipaddresspool.ironlb.io/default", "l2advertisement.ironlb.io/default"] {
        ensure!(pasted.stdout.contains(applied), "the example applies no {applied}:\n{}", pasted.stdout);
    }
    Ok(())
}

/// The NOTES in what `helm install` printed.
fn notes_of(install: &CommandOutput) -> Result<&str> {
    let (_, notes) = install.stdout.rsplit_once("NOTES:\n").context("helm install printed no NOTES")?;
    Ok(notes)
}

fn install_notes_show_a_pool_that_pastes_and_applies(lab: &Lab) -> Result<()> {
    // A client-side dry run renders the NOTES of a fresh install and changes nothing.
    let args = ["install", "ironlb-e2e-notes", "charts/ironlb", "--namespace", NAMESPACE, "--dry-run=client"];
    let install = lab.helm(&args)?.ok()?;
    let notes = notes_of(&install)?;
    paste_pool_example(lab, notes)?;
    // Where to look next: the release's namespace, its speakers and their Leases.
    for next in [
        format!("kubectl -n {NAMESPACE} get daemonset ironlb-e2e-notes-speaker"),
        format!("kubectl -n {NAMESPACE} get leases -l app.kubernetes.io/component=speaker"),
    ] {
        ensure!(notes.contains(&next), "the NOTES do not say `{next}`:\n{notes}");
    }
    Ok(())
}

/// Value combinations a user installs with: each must render objects the API server accepts as
/// they are (and lint cleanly, see [`lints_clean`]).
const VALUE_COMBINATIONS: &[&[&str]] = &[
    &[],
    &["operator.replicas=1"],
    &[
        "speaker.nodeSelector.ironlb\\.io/speaker=announcer",
        "speaker.tolerations[0].key=dedicated",
        "speaker.tolerations[0].operator=Equal",
        "speaker.tolerations[0].value=lb",
        "speaker.tolerations[0].effect=NoExecute",
        "speaker.tolerations[0].tolerationSeconds=30",
        "speaker.resources.requests.cpu=100m",
        "speaker.resources.limits.memory=256Mi",
        "speaker.priorityClassName=",
        "operator.nodeSelector.node-role\\.kubernetes\\.io/control-plane=",
        "operator.tolerations[0].key=node-role.kubernetes.io/control-plane",
        "operator.tolerations[0].operator=Exists",
        "operator.tolerations[0].effect=NoSchedule",
    ],
    &[
        "operator.leaderElection.leaseDuration=1m",
        "operator.leaderElection.renewDeadline=20s",
        "operator.leaderElection.retryPeriod=4s",
        "speaker.leaseDuration=5s",
        "speaker.leaseRenewInterval=1s",
        "speaker.refreshInterval=1m",
        "speaker.shutdownGrace=3s",
        "speaker.terminationGracePeriodSeconds=15",
    ],
    // Deprecated for one release: bare seconds.
    &[
        "operator.leaderElection.leaseDuration=30",
        "operator.leaderElection.renewDeadline=20",
        "operator.leaderElection.retryPeriod=4",
    ],
    &["loadBalancerClass=ironlb.io/layer2"],
    &["operator.logLevel=debug", "speaker.logLevel=trace"],
    &["speaker.updateStrategy.type=OnDelete"],
    &["metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true", "grafanaDashboard.enabled=true"],
];

/// The API group whose kinds only the Prometheus Operator's CRDs define: the lab does not serve
/// them, so these objects cannot be validated by its API server.
const PROMETHEUS_OPERATOR_GROUP: &str = "monitoring.coreos.com/";

/// The documents of a `helm template` stream, as printed, split into those the lab's API server
/// can validate and the kinds of those it cannot (see [`PROMETHEUS_OPERATOR_GROUP`]).
fn server_checkable(stream: &str) -> Result<(Vec<String>, Vec<String>)> {
    let (mut checkable, mut unchecked) = (Vec::new(), Vec::new());
    let mut document = String::new();
    for line in stream.lines().chain(["---"]) {
        if line != "---" {
            document.push_str(line);
            document.push('\n');
            continue;
        }
        // Between two separators: nothing, or only helm's `# Source:` comment.
        if document.lines().all(|l| l.trim().is_empty() || l.starts_with('#')) {
            document.clear();
            continue;
        }
        let object: Value = serde_yaml::from_str(&document).context("helm printed a document that is not YAML")?;
        if object["apiVersion"].as_str().is_some_and(|v| v.starts_with(PROMETHEUS_OPERATOR_GROUP)) {
            unchecked.push(object["kind"].as_str().unwrap_or_default().to_owned());
        } else if !object.is_null() {
            checkable.push(std::mem::take(&mut document));
        }
        document.clear();
    }
    Ok((checkable, unchecked))
}

/// A release and a namespace of its own for the server-side dry runs: new names, so every object
/// is checked as a create, and nothing of the lab's release is even looked at.
const SCHEMA_RELEASE: &str = "ironlb-e2e-schema";
const SCHEMA_NAMESPACE: &str = "ironlb-e2e-schema";

/// `kubectl apply --dry-run=server --validate=strict` of `yaml` in the scratch namespace: the API
/// server validates every object against its schema (OpenAPI, unknown and duplicate fields
/// included) and runs admission, and stores nothing.
fn dry_run(lab: &Lab, yaml: &str) -> Result<CommandOutput> {
    let args = ["apply", "--dry-run=server", "--validate=strict", "--namespace", SCHEMA_NAMESPACE, "-f", "-"];
    lab.kubectl_with_input(&args, yaml)
}

/// A namespace made for this test, deleted at the end; one a run that stopped half-way left
/// behind is deleted first, with `cluster_objects` (`kind/name`), so the test starts clean.
fn fresh_namespace(lab: &Lab, namespace: &str, cluster_objects: &[String]) -> Result<ironlb_e2e::Cleanup> {
    let mut leftovers = lab.cleanup();
    leftovers.adopt_namespace(namespace);
    for object in cluster_objects {
        leftovers.object(object);
    }
    leftovers.delete_now(Duration::from_secs(240));
    let mut cleanup = lab.cleanup();
    for object in cluster_objects {
        cleanup.object(object);
    }
    cleanup.namespace(namespace)?;
    Ok(cleanup)
}

/// Whether the ServiceMonitors and the PrometheusRule are validated is said by the test: they
/// need the Prometheus Operator's CRDs, which the lab does not serve, so they are left out here
/// (their content is checked by the monitoring tests above and `make chart-rules`).
fn rendered_manifests_pass_the_api_server_s_strict_validation(lab: &Lab) -> Result<()> {
    let _cleanup = fresh_namespace(lab, SCHEMA_NAMESPACE, &[])?;
    // The check bites: strict validation refuses a field the schema does not know.
    let bogus = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ironlb-e2e-bogus\ndata: {}\nbogus: 1\n";
    let refused = dry_run(lab, bogus)?.refused()?;
    ensure!(
        refused.stderr.contains("unknown field"),
        "strict validation did not name the unknown field:\n{}",
        refused.stderr
    );

    for sets in VALUE_COMBINATIONS {
        let rendered = template_as(lab, SCHEMA_RELEASE, SCHEMA_NAMESPACE, sets)?.ok()?;
        let (checkable, unchecked) = server_checkable(&rendered.stdout)?;
        let monitoring = sets.iter().any(|set| set.starts_with("metrics."));
        ensure!(
            unchecked.is_empty() != monitoring,
            "with {sets:?} the chart renders {unchecked:?} of the Prometheus Operator"
        );
        let applied = dry_run(lab, &checkable.join("---\n"))?
            .ok()
            .with_context(|| format!("the API server refused the chart rendered with {sets:?}"))?;
        let accepted = applied.stdout.lines().filter(|line| line.ends_with("(server dry run)")).count();
        ensure!(
            accepted == checkable.len(),
            "with {sets:?} the API server accepted {accepted} of {} objects:\n{}",
            checkable.len(),
            applied.stdout
        );
    }
    Ok(())
}

/// A second release of the chart beside the lab's own, in a namespace of its own: everything it
/// names is its own, cluster-scoped objects included, so it comes and goes without touching the
/// lab's release, whose ServiceAccount tokens the lab's binaries run with.
const SECOND_RELEASE: &str = "ironlb-e2e-second";
const SECOND_NAMESPACE: &str = "ironlb-e2e-helm";
/// The values the lab installs with: no operator replica, and a speaker nodeSelector no lab Node
/// carries. The lab has no container runtime and its kubelet stand-in leaves the chart's Pods
/// alone (unbound, Pending), so no second set of ironlb processes can run in any case.
const LAB_VALUES: &str = "e2e/lab/chart-values.yaml";
/// Changed values the upgrade applies, and what each must change in the objects. The election
/// timings are bare seconds, as values from before durations wrote them.
const UPGRADE: &[&str] = &[
    "operator.replicas=2",
    "operator.logLevel=debug",
    "operator.leaderElection.leaseDuration=20",
    "operator.leaderElection.renewDeadline=12",
    "operator.resources.requests.cpu=100m",
    "speaker.logLevel=debug",
    "speaker.leaseDuration=3s",
    "speaker.leaseRenewInterval=1s",
];

/// The API group of an object's `apiVersion` (empty for the core group).
fn group_of(object: &Value) -> &str {
    object["apiVersion"].as_str().and_then(|v| v.rsplit_once('/')).map_or("", |(group, _)| group)
}

/// How `kubectl` names an object of a manifest: `kind.group/name` (`serviceaccount/name` in the
/// core group).
fn reference(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default().to_lowercase();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match group_of(object) {
        "" => format!("{kind}/{name}"),
        group => format!("{kind}.{group}/{name}"),
    }
}

/// The objects of a release as Helm recorded them (`helm get manifest`).
fn release_manifest(lab: &Lab, release: &str, namespace: &str) -> Result<Vec<Value>> {
    documents(&lab.helm(&["get", "manifest", release, "--namespace", namespace])?.ok()?.stdout)
}

/// The live object `kubectl` knows as `reference`, as JSON; None when it does not exist.
fn live(lab: &Lab, namespace: &str, reference: &str) -> Result<Option<Value>> {
    let got = lab.kubectl(&["get", reference, "--namespace", namespace, "--ignore-not-found", "-o", "json"])?.ok()?;
    if got.stdout.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(&got.stdout).with_context(|| format!("kubectl get {reference} printed no JSON"))?))
}

/// Who the lab's own ServiceAccounts are and what RBAC gives them: each object's reference, uid
/// and resourceVersion, which any change (or a delete and re-create) moves.
fn lab_identity_and_rbac(lab: &Lab) -> Result<Vec<(String, String, String)>> {
    let kinds = ["ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"];
    let mut state = Vec::new();
    for object in release_manifest(lab, RELEASE, NAMESPACE)? {
        if !kinds.iter().any(|kind| object["kind"] == *kind) {
            continue;
        }
        let reference = reference(&object);
        let found = live(lab, NAMESPACE, &reference)?.with_context(|| format!("the lab's {reference} is gone"))?;
        let meta = &found["metadata"];
        state.push((reference, meta["uid"].to_string(), meta["resourceVersion"].to_string()));
    }
    ensure!(state.len() >= 10, "the lab's release has only {state:?} of ServiceAccounts and roles");
    Ok(state)
}

/// `helm history` of the second release: (revision, status) oldest first.
fn second_history(lab: &Lab) -> Result<Vec<(u64, String)>> {
    let history = lab.helm(&["history", SECOND_RELEASE, "--namespace", SECOND_NAMESPACE, "-o", "json"])?.ok()?;
    let entries: Vec<Value> = serde_json::from_str(&history.stdout).context("helm history printed no JSON")?;
    Ok(entries
        .iter()
        .map(|e| (e["revision"].as_u64().unwrap_or_default(), e["status"].as_str().unwrap_or_default().to_owned()))
        .collect())
}

/// The second release's live workload of `kind` (`deployment.apps`, `daemonset.apps`).
fn second_workload(lab: &Lab, kind: &str, component: &str) -> Result<Value> {
    let reference = format!("{kind}/{SECOND_RELEASE}-{component}");
    live(lab, SECOND_NAMESPACE, &reference)?.with_context(|| format!("the second release has no {reference}"))
}

/// `helm upgrade` of the second release with the lab's values and `sets`.
fn upgrade_second(lab: &Lab, sets: &[&str]) -> Result<CommandOutput> {
    let mut args =
        vec!["upgrade", SECOND_RELEASE, "charts/ironlb", "--namespace", SECOND_NAMESPACE, "--values", LAB_VALUES];
    for set in sets {
        args.extend(["--set", set]);
    }
    lab.helm(&args)
}

fn a_second_release_installs_upgrades_and_uninstalls_beside_the_lab_s(lab: &Lab) -> Result<()> {
    // Everything the release would make is named after it, so nothing is shared with the lab's.
    let planned = render_as(lab, SECOND_RELEASE, SECOND_NAMESPACE, &[])?;
    let cluster_scoped: Vec<String> =
        planned.iter().filter(|o| o["metadata"]["namespace"].is_null()).map(reference).collect();
    ensure!(!cluster_scoped.is_empty(), "the chart renders no cluster-scoped object");
    for object in &planned {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        ensure!(
            name.starts_with(&format!("{SECOND_RELEASE}-")),
            "{} is not named after its release",
            reference(object)
        );
    }
    let _cleanup = fresh_namespace(lab, SECOND_NAMESPACE, &cluster_scoped)?;
    let lab_before = lab_identity_and_rbac(lab)?;

    // Install: the CRDs are there already (Helm leaves crds/ alone then); the NOTES say what next.
    let install = lab.helm(&[
        "install",
        SECOND_RELEASE,
        "charts/ironlb",
        "--namespace",
        SECOND_NAMESPACE,
        "--values",
        LAB_VALUES,
        "--wait",
        "--timeout",
        "2m",
    ])?;
    let install = install.ok()?;
    pool_example(notes_of(&install)?)?;
    ensure!(second_history(lab)? == [(1, "deployed".to_owned())], "after install: {:?}", second_history(lab)?);
    let daemonset = wait_for("the DaemonSet controller to see the speakers", Duration::from_secs(60), || {
        let daemonset = second_workload(lab, "daemonset.apps", "speaker")?;
        let seen = daemonset["status"]["observedGeneration"] == daemonset["metadata"]["generation"];
        Ok(seen.then_some(daemonset))
    })?;
    ensure!(
        daemonset["status"]["desiredNumberScheduled"] == 0,
        "the second release's DaemonSet wants speakers: {}",
        daemonset["status"]
    );

    // Upgrade with changed values: the objects change as asked, and a budget comes with two replicas.
    upgrade_second(lab, UPGRADE)?.ok()?;
    let deployment = second_workload(lab, "deployment.apps", "operator")?;
    ensure!(
        deployment["spec"]["replicas"] == 2,
        "the upgrade left {} operator replicas",
        deployment["spec"]["replicas"]
    );
    let operator = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args = strings(&operator["args"]);
    for flag in ["--log-level=debug", "--lease-duration=20s", "--renew-deadline=12s"] {
        ensure!(args.contains(&flag), "after the upgrade the operator has no {flag}: {args:?}");
    }
    ensure!(operator["resources"]["requests"]["cpu"] == "100m", "the operator resources are {}", operator["resources"]);
    let daemonset = second_workload(lab, "daemonset.apps", "speaker")?;
    let args = strings(&daemonset["spec"]["template"]["spec"]["containers"][0]["args"]);
    for flag in ["--log-level=debug", "--lease-duration=3s", "--lease-renew-interval=1s"] {
        ensure!(args.contains(&flag), "after the upgrade the speaker has no {flag}: {args:?}");
    }
    let budget = format!("poddisruptionbudget.policy/{SECOND_RELEASE}-operator");
    ensure!(live(lab, SECOND_NAMESPACE, &budget)?.is_some(), "two operator replicas came without {budget}");
    let history = second_history(lab)?;
    ensure!(history == [(1, "superseded".to_owned()), (2, "deployed".to_owned())], "after the upgrade: {history:?}");

    // The operator Pods the upgrade asks for are made, and nothing runs them: the kubelet
    // stand-in leaves the chart's Pods unbound (the lab runs its own ironlb out of cluster).
    let selector = format!("app.kubernetes.io/instance={SECOND_RELEASE},app.kubernetes.io/component=operator");
    let pods = wait_for("the ReplicaSet to make two operator Pods", Duration::from_secs(60), || {
        let pods = lab.kubectl(&["get", "pods", "-n", SECOND_NAMESPACE, "-l", &selector, "-o", "json"])?.ok()?;
        let pods: Value = serde_json::from_str(&pods.stdout)?;
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        Ok((items.len() == 2).then_some(items))
    })?;
    for pod in &pods {
        ensure!(
            pod["spec"]["nodeName"].is_null() && pod["status"]["phase"] == "Pending",
            "a Pod of the second release was placed or run: {}",
            pod["metadata"]["name"]
        );
    }

    // A bad value is refused by name, and the release stays at revision 2 as it was.
    for (bad, named) in [
        ("operator.logLevel=verbose", "/operator/logLevel"),
        ("speaker.leaseRenewInterval=5s", "speaker.leaseRenewInterval"),
    ] {
        let sets = [UPGRADE, &[bad]].concat();
        let refused = upgrade_second(lab, &sets)?.refused()?;
        ensure!(refused.stderr.contains(named), "refusing {bad} did not name {named}:\n{}", refused.stderr);
    }
    let history = second_history(lab)?;
    ensure!(history.last() == Some(&(2, "deployed".to_owned())), "after the refused upgrades: {history:?}");
    let deployment = second_workload(lab, "deployment.apps", "operator")?;
    ensure!(
        strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"]).contains(&"--log-level=debug"),
        "a refused upgrade changed the operator: {}",
        deployment["spec"]["template"]
    );

    // Uninstall: every object Helm recorded goes, cluster-scoped ones too; the CRDs stay.
    let manifest = release_manifest(lab, SECOND_RELEASE, SECOND_NAMESPACE)?;
    let recorded: Vec<String> = manifest.iter().map(reference).collect();
    for object in cluster_scoped.iter().chain([&budget]) {
        ensure!(recorded.contains(object), "helm get manifest does not list {object}: {recorded:?}");
    }
    lab.helm(&["uninstall", SECOND_RELEASE, "--namespace", SECOND_NAMESPACE, "--wait", "--timeout", "2m"])?.ok()?;
    for object in &recorded {
        wait_for(&format!("{object} to be deleted"), Duration::from_secs(60), || {
            Ok(live(lab, SECOND_NAMESPACE, object)?.is_none().then_some(()))
        })?;
    }
    // What controllers made for it (ReplicaSets, Pods, revisions, endpoint slices) is collected.
    let made = format!("app.kubernetes.io/instance={SECOND_RELEASE}");
    let kinds = "replicasets.apps,pods,controllerrevisions.apps,endpointslices.discovery.k8s.io";
    wait_for("the second release's ReplicaSets, Pods and revisions to be collected", Duration::from_secs(60), || {
        let left = lab.kubectl(&["get", kinds, "-n", SECOND_NAMESPACE, "-l", &made, "-o", "name"])?.ok()?;
        Ok(left.stdout.trim().is_empty().then_some(()))
    })?;
    let records = format!("owner=helm,name={SECOND_RELEASE}");
    let left = lab.kubectl(&["get", "secrets", "-n", SECOND_NAMESPACE, "-l", &records, "-o", "name"])?.ok()?;
    ensure!(left.stdout.trim().is_empty(), "Helm kept release records: {}", left.stdout);
    lab.helm(&["status", SECOND_RELEASE, "--namespace", SECOND_NAMESPACE])?.refused()?;
    for crd in chart_crds(lab)? {
        let name = crd.metadata.name.unwrap_or_default();
        ensure!(
            live(lab, SECOND_NAMESPACE, &format!("customresourcedefinition.apiextensions.k8s.io/{name}"))?.is_some(),
            "the uninstall removed the CRD {name}"
        );
    }

    // The lab's release never changed: same ServiceAccounts (so the same tokens), same RBAC.
    let lab_after = lab_identity_and_rbac(lab)?;
    ensure!(lab_after == lab_before, "the lab's release changed:\nbefore {lab_before:?}\nafter  {lab_after:?}");
    Ok(())
}
