//! The Helm chart as the lab installed it with the real `helm`, and as
//! `helm template` renders it: what a user relies on when they install it.

use anyhow::{Context, Result, ensure};
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

fn lints_clean(lab: &Lab) -> Result<()> {
    let lint = lab.helm(&["lint", "--strict", "charts/ironlb"])?.ok()?;
    ensure!(lint.stdout.contains("0 chart(s) failed"), "helm lint said:\n{}", lint.stdout);
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
    let defaults = ["--log-level=info", "--lease-duration=2s", "--lease-renew-interval=500ms", "--refresh-interval=0s"];
    let set = [
        "speaker.logLevel=debug",
        "speaker.leaseDuration=3s",
        "speaker.leaseRenewInterval=1s",
        "speaker.refreshInterval=1m30s",
        "speaker.terminationGracePeriodSeconds=20",
    ];
    let changed = ["--log-level=debug", "--lease-duration=3s", "--lease-renew-interval=1s", "--refresh-interval=1m30s"];
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
    ("speaker.metricsPort=0", "metricsPort"),
    ("speaker.updateStrategy.rollingUpdate.maxSurge=1", "maxSurge"),
    // Well-formed, but what the speaker would refuse at start on every node.
    ("speaker.leaseDuration=500ms", "speaker.leaseDuration"),
    ("speaker.leaseRenewInterval=2s", "speaker.leaseRenewInterval"),
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
