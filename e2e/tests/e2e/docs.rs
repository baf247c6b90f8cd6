//! "Every command in the docs is one that a test runs", made checkable.
//!
//! Every shell command the documentation shows is in a ` ```sh ` block of `docs/*.md` or the
//! README (outputs go in ` ```text ` blocks). Each such command is in exactly one of three lists:
//!
//! - [`RUN_HERE`]: run by [`documented_commands_work_on_a_served_and_a_pending_service`] against
//!   the lab, as written, with the docs' placeholders (`<service>`, `<pool>`…) filled in for the
//!   objects that test makes;
//! - [`RUN_ELSEWHERE`]: run by another test or lab script, named with the text in it that runs
//!   the command;
//! - [`NOT_IN_THE_LAB`]: cannot run in the lab, and why.
//!
//! [`every_documented_command_is_run_by_a_test`] needs no lab: it reads the docs and fails,
//! naming it, on a command in none of the lists, a list entry the docs no longer show, or a
//! [`RUN_ELSEWHERE`] file that no longer contains what it is said to run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use ironlb_e2e::{CommandOutput, Lab};

use crate::Test;
use crate::support::{indent, pod, pool, service, wait_announcer, wait_event, wait_ingress};
use crate::wire::{mac_of, wait_arping};

pub(crate) const TESTS: &[Test] = &[(
    "docs::documented_commands_work_on_a_served_and_a_pending_service",
    documented_commands_work_on_a_served_and_a_pending_service,
)];

/// The name of the check that needs no lab (`main` registers it apart from [`TESTS`]).
pub(crate) const COVERAGE_CHECK: &str = "docs::every_documented_command_is_run_by_a_test";

/// Where the docs say to run a command, and where the lab test runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// A shell with `kubectl` and `helm` for the cluster: the lab's environment (`e2e/.lab/env`),
    /// in the repository root.
    Admin,
    /// "Another machine on the LAN": the lab's client namespace.
    Lan,
    /// "On the node": the namespace of the node announcing the test's Service.
    Node,
    /// A scratch directory, with the `ironlb` binary `make bins` builds on `PATH`.
    Scratch,
}

/// The documented commands the lab test runs, exactly as the docs write them.
const RUN_HERE: &[(At, &str)] = &[
    // docs/getting-started.md and the upgrade in docs/operations.md
    (At::Admin, "kubectl label namespace ironlb-system pod-security.kubernetes.io/enforce=privileged"),
    (At::Admin, "kubectl -n ironlb-system get pods -o wide"),
    (At::Admin, "kubectl -n ironlb-system get daemonset ironlb-speaker"),
    (At::Admin, "kubectl -n ironlb-system get leases -l app.kubernetes.io/component=speaker"),
    (At::Admin, "kubectl get ipaddresspools"),
    (At::Admin, "kubectl apply -f charts/ironlb/crds/"),
    (At::Admin, "helm upgrade ironlb charts/ironlb --namespace ironlb-system --values <values.yaml> --wait"),
    (At::Admin, "kubectl -n ironlb-system rollout status daemonset/ironlb-speaker"),
    (At::Admin, "helm history ironlb --namespace ironlb-system"),
    // docs/operations.md: metrics and troubleshooting
    (At::Admin, "curl -fsS http://127.0.0.1:17472/metrics | grep ironlb_operator_leader"),
    (At::Admin, "kubectl get service <service> -n <namespace> -o wide"),
    (At::Admin, "kubectl describe service <service> -n <namespace>"),
    (At::Admin, "kubectl get events -n <namespace> --field-selector involvedObject.name=<service>"),
    (At::Admin, "kubectl describe ipaddresspool <pool>"),
    (At::Admin, "kubectl get service <service> -n <namespace> -o jsonpath='{.spec.loadBalancerClass}'"),
    (At::Admin, "helm get values ironlb --namespace ironlb-system --all"),
    (At::Admin, "kubectl get events -A --field-selector reason=AllocationFailed"),
    (
        At::Admin,
        r#"kubectl get ipaddresspool <pool> -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'"#,
    ),
    (
        At::Admin,
        r#"kubectl get ipallocationslices -l ironlb.io/pool=<pool> -o jsonpath='{range .items[*].status.allocations[*]}{.namespace}/{.name} {.ips} node={.node} interface={.interface} serving={.serving}{"\n"}{end}'"#,
    ),
    (At::Admin, "kubectl get ipallocationslices -l ironlb.io/pool=<pool>"),
    (At::Admin, "kubectl get events -n <namespace> --field-selector involvedObject.name=<service>,reason=Announcing"),
    (
        At::Admin,
        r#"kubectl get l2advertisements -o jsonpath='{range .items[*]}{.metadata.name} {range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{end}{"\n"}{end}'"#,
    ),
    (At::Admin, "kubectl get l2advertisements"),
    (At::Admin, "kubectl get l2advertisement <advertisement> -o yaml"),
    (At::Admin, "kubectl get nodes -L node.kubernetes.io/exclude-from-external-load-balancers"),
    (At::Admin, "kubectl -n ironlb-system get lease ironlb-speaker-<node> -o yaml"),
    (At::Admin, "kubectl get events -A --field-selector reason=AddressConflict"),
    (At::Admin, "kubectl get events -A --field-selector reason=AddressInUse"),
    (At::Admin, r#"kubectl get ipaddresspool <pool> -o jsonpath='{.status.conditions[?(@.type=="AddressConflict")]}'"#),
    (At::Lan, "arping -c 3 -i eth0 <address>"),
    (At::Lan, "ndisc6 <address6> eth0"),
    (At::Lan, "curl -sS --max-time 5 http://<address>/"),
    (At::Node, "curl -fsS http://127.0.0.1:7473/readyz"),
    (At::Node, "curl -fsS http://127.0.0.1:7473/metrics | grep ironlb_speaker_requests_ignored_total"),
    // docs/migration.md
    (At::Scratch, "ironlb migrate --from-cluster -o ironlb.yaml"),
];

/// Documented commands another test or lab script runs: (command, file, what in that file runs it).
const RUN_ELSEWHERE: &[(&str, &str, &str)] = &[
    // The tutorial's steps, as `make demo` runs them: the demo test runs e2e/demo.sh.
    ("make demo", "e2e/tests/e2e/demo.rs", r#"lab.run("e2e/demo.sh""#),
    (
        "kubectl apply -f e2e/demo/guestbook-frontend.yaml",
        "e2e/demo.sh",
        r#"cat e2e/demo/guestbook-frontend.yaml)" kubectl apply -f -"#,
    ),
    (
        "kubectl apply -f e2e/demo/load-balancer-service.yaml",
        "e2e/demo.sh",
        r#"cat e2e/demo/load-balancer-service.yaml)" kubectl apply -f -"#,
    ),
    (
        "kubectl apply -f e2e/demo/tutorial-pool.yaml",
        "e2e/demo.sh",
        r#"cat e2e/demo/tutorial-pool.yaml)" kubectl apply -f -"#,
    ),
    (
        "kubectl apply -f e2e/demo/l2-advertisement.yaml",
        "e2e/demo.sh",
        r#"cat e2e/demo/l2-advertisement.yaml)" kubectl apply -f -"#,
    ),
    (
        "kubectl get service load-balancer-service -o wide",
        "e2e/demo.sh",
        "show kubectl get service load-balancer-service -o wide",
    ),
    ("helm list --namespace ironlb-system", "e2e/demo.sh", "show helm list --namespace ironlb-system"),
    (
        "kubectl get crd ipaddresspools.ironlb.io l2advertisements.ironlb.io",
        "e2e/demo.sh",
        "show kubectl get crd ipaddresspools.ironlb.io l2advertisements.ironlb.io",
    ),
    ("kubectl describe ipaddresspool default", "e2e/demo.sh", "show kubectl describe ipaddresspool default"),
    (
        "kubectl get events --field-selector involvedObject.name=load-balancer-service",
        "e2e/demo.sh",
        "show kubectl get events --field-selector involvedObject.name=load-balancer-service",
    ),
    // "From another machine on the LAN": the demo runs these in the lab's client namespace.
    (
        "arping -c 3 -i eth0 192.168.2.10",
        "e2e/demo.sh",
        r#"ip netns exec "$LAB_CLIENT" arping -c 3 -i eth0 192.168.2.10"#,
    ),
    (
        "curl -sS --max-time 5 http://192.168.2.10/",
        "e2e/demo.sh",
        r#"ip netns exec "$LAB_CLIENT" curl -sS --max-time 5 http://192.168.2.10/"#,
    ),
    (
        "ip netns exec $LAB_CLIENT arping -c 3 -i eth0 192.168.2.10",
        "e2e/demo.sh",
        r#"ip netns exec "$LAB_CLIENT" arping -c 3 -i eth0 192.168.2.10"#,
    ),
    (
        "ip netns exec $LAB_CLIENT curl -sS --max-time 5 http://192.168.2.10/",
        "e2e/demo.sh",
        r#"ip netns exec "$LAB_CLIENT" curl -sS --max-time 5 http://192.168.2.10/"#,
    ),
    // The lab itself: up.sh installs the chart as the docs do (plus the lab's values, and
    // `upgrade --install` so a rerun reuses the release); chart::helm_install_puts_the_chart_crds_in_place
    // checks the result. The suite reads e2e/.lab/env and ends a lab it started with down.sh,
    // which is all `make lab-down` runs.
    (
        "helm install ironlb charts/ironlb --namespace ironlb-system --create-namespace",
        "e2e/lab/up.sh",
        r#"helm upgrade --install "$LAB_HELM_RELEASE" "$LAB_CHART" --namespace "$LAB_HELM_NAMESPACE""#,
    ),
    (". e2e/.lab/env", "e2e/src/lab.rs", r#". "$1"; env -0"#),
    ("make lab-down", "e2e/src/lab.rs", "e2e/lab/down.sh"),
    // docs/migration.md: the CLI's tests and the migrate test convert and apply.
    (
        "ironlb migrate -f metallb-config.yaml > ironlb.yaml",
        "e2e/tests/e2e/migrate.rs",
        r#"&["migrate", "--strict", "-f""#,
    ),
    ("kubectl apply -f ironlb.yaml", "e2e/tests/e2e/migrate.rs", "lab.apply(&migrate.stdout)"),
    // README.md
    ("make test", ".ci/run", "make test"),
];

const NO_PODS: &str = "the lab runs the operator and the speakers outside Pods (e2e/lab/chart-values.yaml places none), \
                       so there is no Pod to read or forward to; their logs are e2e/.lab/logs/*.log and the test runs \
                       the lab's equivalents (the node's 127.0.0.1:7473, the operator's 127.0.0.1:17472)";
const NO_ENGINE: &str = "the lab has no container engine; make images-test (images/test.sh) checks the Dockerfile's \
                         user, entrypoint and labels and builds the same images with umoci";
const NO_REGISTRY: &str = "the lab has no registry and the docs test builds no images; images/test.sh runs skopeo \
                           copy of the same oci-archive to a local layout";

/// Documented commands the lab cannot run, and why.
const NOT_IN_THE_LAB: &[(&str, &str)] = &[
    ("kubectl -n ironlb-system port-forward deployment/ironlb-operator 7472:7472", NO_PODS),
    ("curl -fsS http://127.0.0.1:7472/metrics", NO_PODS),
    ("kubectl -n ironlb-system logs deployment/ironlb-operator", NO_PODS),
    ("kubectl -n ironlb-system logs daemonset/ironlb-speaker", NO_PODS),
    // docs/images.md: building with a container engine and pushing to a registry.
    (r#"version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"#, NO_ENGINE),
    ("for target in operator speaker; do", NO_ENGINE),
    (
        r#"docker build -f images/Dockerfile --target "$target" --build-arg VERSION="$version" --build-arg REVISION="$(git rev-parse HEAD)" -t "ghcr.io/ironlb/ironlb-$target:$version" ."#,
        NO_ENGINE,
    ),
    ("done", NO_ENGINE),
    ("version=0.1.0", NO_REGISTRY),
    (
        "skopeo copy oci-archive:target/images/ironlb-operator.tar:$version docker://ghcr.io/ironlb/ironlb-operator:$version",
        NO_REGISTRY,
    ),
    (
        "skopeo copy oci:target/images/ironlb-speaker:$version docker://registry.example:5000/ironlb/ironlb-speaker:$version",
        NO_REGISTRY,
    ),
    (
        "skopeo copy oci-archive:target/images/ironlb-operator.tar:$version docker-archive:ironlb-operator.docker.tar:ghcr.io/ironlb/ironlb-operator:$version",
        NO_REGISTRY,
    ),
];

// The lab test's objects: its own namespace and pool, and addresses no other test uses
// (the suite allocates from .10-.49, the speaker bench .60-.69, the failover bench .70-.79).
const NAMESPACE: &str = "e2e-docs";
const ADDRESS: &str = "192.168.2.80";
const ADDRESS6: &str = "fd6c:6a7e:5f2b:2::80";
const RANGE: &str = "192.168.2.80-192.168.2.89";
const RANGE6: &str = "fd6c:6a7e:5f2b:2::80-fd6c:6a7e:5f2b:2::89";
/// Requested by the Service that stays pending: in no pool.
const NO_POOL_ADDRESS: &str = "192.168.2.90";
/// No documented command may run longer (`rollout status` would wait forever).
const COMMAND_TIMEOUT: &str = "300";

fn documented_commands_work_on_a_served_and_a_pending_service(lab: &Lab) -> Result<()> {
    let ns = NAMESPACE;
    let mut cleanup = lab.cleanup();
    cleanup.namespace(ns)?;
    cleanup.namespace("metallb-system")?;
    cleanup.object(&format!("ipaddresspool/{ns}"));
    cleanup.object(&format!("l2advertisement/{ns}"));

    // Upgrades: the CRDs first, then the release with the values it was installed with.
    let mut docs = Runner::new(lab);
    docs.run("kubectl apply -f charts/ironlb/crds/", &["ipaddresspools.ironlb.io", "l2advertisements.ironlb.io"])?;
    docs.run(
        "helm upgrade ironlb charts/ironlb --namespace ironlb-system --values <values.yaml> --wait",
        &["upgraded"],
    )?;
    docs.run("kubectl -n ironlb-system rollout status daemonset/ironlb-speaker", &["successfully rolled out"])?;
    docs.run("helm history ironlb --namespace ironlb-system", &["deployed"])?;
    docs.run("helm get values ironlb --namespace ironlb-system --all", &["loadBalancerClass"])?;
    let label = "pod-security.kubernetes.io/enforce";
    let enforced = lab
        .kubectl(&[
            "get",
            "namespace",
            "ironlb-system",
            "-o",
            &format!("jsonpath={{.metadata.labels.{}}}", label.replace('.', "\\.")),
        ])?
        .ok()?;
    let _unlabel = enforced.stdout.trim().is_empty().then(|| Unlabel { lab: lab.clone(), label });
    docs.run("kubectl label namespace ironlb-system pod-security.kubernetes.io/enforce=privileged", &["labeled"])?;

    // A served dual-stack Service and one that stays pending (it asks for an address of no pool).
    lab.apply(&pool(ns, &[RANGE, RANGE6], ""))?;
    lab.apply(&format!(
        "apiVersion: ironlb.io/v1alpha1\nkind: L2Advertisement\nmetadata:\n  name: {ns}\nspec:\n{}",
        indent(&format!("ipAddressPools: [{ns}]"))
    ))?;
    lab.apply(&pod(ns, "web-1", "web", None, true))?;
    lab.apply(&service(ns, "web", &[], "ipFamilyPolicy: RequireDualStack\nipFamilies: [IPv4, IPv6]"))?;
    lab.apply(&service(ns, "pending", &[("ironlb.io/loadBalancerIPs", NO_POOL_ADDRESS)], ""))?;
    wait_ingress(lab, ns, "web", &[ADDRESS, ADDRESS6])?;
    let (node, interface) = wait_announcer(lab, ns, ns, "web", None)?;
    let mac = mac_of(lab, &node)?;
    wait_arping(lab, ADDRESS, &mac)?;
    wait_event(lab, ns, "web", "Announcing", &[ADDRESS, &node])?;
    wait_event(lab, ns, "pending", "AllocationFailed", &[NO_POOL_ADDRESS])?;
    docs.node = node.clone();
    docs.vars.extend([("<node>", node.clone()), ("<mac>", mac), ("<interface>", interface)]);

    // Getting started and the metrics.
    docs.run("kubectl -n ironlb-system get pods -o wide", &[])?;
    docs.run("kubectl -n ironlb-system get daemonset ironlb-speaker", &["ironlb-speaker"])?;
    docs.run("kubectl -n ironlb-system get leases -l app.kubernetes.io/component=speaker", &["ironlb-speaker-<node>"])?;
    docs.run("kubectl get ipaddresspools", &["<pool>", "v4=1"])?;
    docs.run("curl -fsS http://127.0.0.1:17472/metrics | grep ironlb_operator_leader", &["ironlb_operator_leader"])?;

    // "My Service stays pending", on the pending Service.
    docs.service("pending");
    docs.run("kubectl get service <service> -n <namespace> -o wide", &["<pending>"])?;
    docs.run("kubectl describe service <service> -n <namespace>", &["AllocationFailed", NO_POOL_ADDRESS])?;
    docs.run(
        "kubectl get events -n <namespace> --field-selector involvedObject.name=<service>",
        &["AllocationFailed", "is in no IPAddressPool"],
    )?;
    docs.run("kubectl get events -A --field-selector reason=AllocationFailed", &["<namespace>", "service/<service>"])?;
    docs.run("kubectl get service <service> -n <namespace> -o jsonpath='{.spec.loadBalancerClass}'", &[])?;

    // The served Service: the pool, who announces, the speakers, the wire.
    docs.service("web");
    docs.run("kubectl get service <service> -n <namespace> -o wide", &["<address>"])?;
    docs.run("kubectl describe service <service> -n <namespace>", &["IPAllocated", "Announcing"])?;
    docs.run(
        "kubectl get events -n <namespace> --field-selector involvedObject.name=<service>",
        &["IPAllocated", "Announcing"],
    )?;
    docs.run(
        "kubectl describe ipaddresspool <pool>",
        &["Allocations", "<node>", "<interface>", "Allocation Record", "ironlb.io/pool=<pool>"],
    )?;
    docs.run(
        r#"kubectl get ipaddresspool <pool> -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'"#,
        &["Ready=True Allocatable", "Conflict=False NoOverlap", "AddressConflict=False NoAddressConflict"],
    )?;
    docs.run(
        r#"kubectl get ipallocationslices -l ironlb.io/pool=<pool> -o jsonpath='{range .items[*].status.allocations[*]}{.namespace}/{.name} {.ips} node={.node} interface={.interface} serving={.serving}{"\n"}{end}'"#,
        &["<namespace>/<service>", "<address6>", "node=<node> interface=<interface> serving=true"],
    )?;
    docs.run(
        "kubectl get ipallocationslices -l ironlb.io/pool=<pool>",
        &["<pool>-0", "POOL", "ALLOCATIONS", "ANNOUNCED"],
    )?;
    docs.run(
        "kubectl get events -n <namespace> --field-selector involvedObject.name=<service>,reason=Announcing",
        &["announced by node <node> on <interface>"],
    )?;
    docs.run(
        r#"kubectl get l2advertisements -o jsonpath='{range .items[*]}{.metadata.name} {range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{end}{"\n"}{end}'"#,
        &["<advertisement> Ready=True SelectorsValid"],
    )?;
    docs.run("kubectl get l2advertisements", &["<advertisement>"])?;
    docs.run("kubectl get l2advertisement <advertisement> -o yaml", &["ipAddressPools", "<pool>"])?;
    docs.run("kubectl get nodes -L node.kubernetes.io/exclude-from-external-load-balancers", &["<node>"])?;
    docs.run("kubectl -n ironlb-system get lease ironlb-speaker-<node> -o yaml", &["ironlb.io/node-facts", "<mac>"])?;
    docs.run("arping -c 3 -i eth0 <address>", &["bytes from <mac>"])?;
    docs.run("ndisc6 <address6> eth0", &["<mac>"])?;
    docs.run("curl -sS --max-time 5 http://<address>/", &["<node>"])?;
    docs.run("curl -fsS http://127.0.0.1:7473/readyz", &[])?;
    docs.run(
        "curl -fsS http://127.0.0.1:7473/metrics | grep ironlb_speaker_requests_ignored_total",
        &["reason=\"not_owned\"", "reason=\"foreign_claim\""],
    )?;
    // Address conflicts: none here (faults:: makes them); the commands answer all the same.
    docs.run("kubectl get events -A --field-selector reason=AddressConflict", &[])?;
    docs.run("kubectl get events -A --field-selector reason=AddressInUse", &[])?;
    docs.run(
        r#"kubectl get ipaddresspool <pool> -o jsonpath='{.status.conditions[?(@.type=="AddressConflict")]}'"#,
        &["NoAddressConflict"],
    )?;

    // Moving from MetalLB: the tutorial's legacy ConfigMap, read from the cluster.
    lab.apply(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config\n  namespace: metallb-system\ndata:\n  config: |\n    address-pools:\n    - name: {ns}-migrated\n      protocol: layer2\n      addresses:\n      - 192.168.2.91-192.168.2.92\n"
    ))?;
    docs.run("ironlb migrate --from-cluster -o ironlb.yaml", &["ironlb.yaml"])?;
    let written = std::fs::read_to_string(docs.scratch.join("ironlb.yaml"))?;
    ensure!(
        written.contains("kind: IPAddressPool") && written.contains("192.168.2.91-192.168.2.92"),
        "ironlb migrate --from-cluster wrote:\n{written}"
    );

    let missed: Vec<&str> = RUN_HERE.iter().map(|(_, c)| *c).filter(|c| !docs.ran.contains(c)).collect();
    ensure!(missed.is_empty(), "RUN_HERE lists commands this test did not run: {missed:#?}");
    drop(cleanup);
    Ok(())
}

/// Runs documented commands where the docs say to, with the placeholders filled in.
struct Runner<'a> {
    lab: &'a Lab,
    /// The node announcing the Service (`At::Node`).
    node: String,
    /// Placeholder → value; `<service>` changes with [`Runner::service`].
    vars: Vec<(&'static str, String)>,
    /// Where `At::Scratch` commands run; removed when the runner goes.
    scratch: PathBuf,
    ran: BTreeSet<&'static str>,
}

impl<'a> Runner<'a> {
    fn new(lab: &'a Lab) -> Self {
        let scratch = std::env::temp_dir().join(format!("ironlb-e2e-docs-{}", std::process::id()));
        let vars = vec![
            ("<namespace>", NAMESPACE.to_owned()),
            ("<service>", "web".to_owned()),
            ("<pool>", NAMESPACE.to_owned()),
            ("<advertisement>", NAMESPACE.to_owned()),
            ("<address>", ADDRESS.to_owned()),
            ("<address6>", ADDRESS6.to_owned()),
            // The values the lab installed the release with.
            ("<values.yaml>", "e2e/lab/chart-values.yaml".to_owned()),
        ];
        Self { lab, node: String::new(), vars, scratch, ran: BTreeSet::new() }
    }

    fn service(&mut self, name: &str) {
        for (placeholder, value) in &mut self.vars {
            if *placeholder == "<service>" {
                *value = name.to_owned();
            }
        }
    }

    fn fill(&self, text: &str) -> String {
        self.vars.iter().fold(text.to_owned(), |text, (placeholder, value)| text.replace(placeholder, value))
    }

    /// Runs `command`, which must be in [`RUN_HERE`]; it must succeed and its output (stdout and
    /// stderr, compared without case) show every part of `shows`.
    fn run(&mut self, command: &'static str, shows: &[&str]) -> Result<CommandOutput> {
        let Some((at, _)) = RUN_HERE.iter().find(|(_, listed)| *listed == command) else {
            bail!("{command:?} is not in RUN_HERE");
        };
        let line = self.fill(command);
        let shell = ["timeout", COMMAND_TIMEOUT, "bash", "-c", &line];
        let output = match at {
            At::Admin => self.lab.run(shell[0], &shell[1..])?,
            At::Lan => self.lab.in_netns(self.lab.var("LAB_CLIENT")?, &shell)?,
            At::Node => self.lab.in_netns(&self.node, &shell)?,
            At::Scratch => {
                std::fs::create_dir_all(&self.scratch)?;
                let path = format!("{}:{}", self.lab.root().join("target/debug").display(), self.lab.var("PATH")?);
                let mut scratch = self.lab.command(shell[0]);
                scratch.args(&shell[1..]).current_dir(&self.scratch).env("PATH", path);
                ironlb_e2e::run(scratch, None)?
            }
        };
        let output = output.ok().with_context(|| format!("the documented command `{command}` ({at:?})"))?;
        let text = format!("{}{}", output.stdout, output.stderr).to_lowercase();
        for part in shows {
            let part = self.fill(part);
            ensure!(text.contains(&part.to_lowercase()), "`{line}` did not show {part:?}:\n{text}");
        }
        self.ran.insert(command);
        Ok(output)
    }
}

impl Drop for Runner<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// Takes the Pod Security label off `ironlb-system` again at the end, when it was not there.
struct Unlabel {
    lab: Lab,
    label: &'static str,
}

impl Drop for Unlabel {
    fn drop(&mut self) {
        let _ = self.lab.kubectl(&["label", "namespace", "ironlb-system", &format!("{}-", self.label)]);
    }
}

/// The documentation the check reads, relative to the repository root.
fn documentation(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).context("cannot list docs/")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The commands of the ` ```sh ` blocks of `markdown`, with their line numbers: continuation
/// lines joined, comments and blank lines dropped, runs of blanks made one.
fn sh_commands(markdown: &str) -> Vec<(usize, String)> {
    let (mut commands, mut in_sh, mut in_block, mut pending) = (Vec::new(), false, false, None::<(usize, String)>);
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(tag) = trimmed.strip_prefix("```") {
            in_sh = !in_block && tag.trim() == "sh";
            in_block = !in_block;
            continue;
        }
        if !in_sh {
            continue;
        }
        let (start, mut text) = pending.take().unwrap_or((index + 1, String::new()));
        text.push(' ');
        text.push_str(trimmed);
        if let Some(joined) = text.strip_suffix('\\') {
            pending = Some((start, joined.to_owned()));
            continue;
        }
        let command = normalize(strip_comment(&text));
        if !command.is_empty() {
            commands.push((start, command));
        }
    }
    commands
}

/// `line` without a trailing `# comment` (a `#` after a blank, outside quotes).
fn strip_comment(line: &str) -> &str {
    let (mut quote, mut previous) = (None, ' ');
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return &line[..at],
            _ => {}
        }
        previous = c;
    }
    line
}

fn normalize(command: &str) -> String {
    command.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The check that needs no lab: see the module's header.
pub(crate) fn every_documented_command_is_run_by_a_test() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("the e2e crate has no parent")?;
    let listed: Vec<String> = RUN_HERE
        .iter()
        .map(|(_, c)| *c)
        .chain(RUN_ELSEWHERE.iter().map(|(c, ..)| *c))
        .chain(NOT_IN_THE_LAB.iter().map(|(c, _)| *c))
        .map(normalize)
        .collect();
    let mut problems = Vec::new();
    let unique: BTreeSet<&String> = listed.iter().collect();
    if unique.len() != listed.len() {
        problems.push("a command is listed twice in RUN_HERE, RUN_ELSEWHERE and NOT_IN_THE_LAB".to_owned());
    }
    let mut documented = BTreeSet::new();
    for file in documentation(root)? {
        let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let name = file.strip_prefix(root).unwrap_or(&file).display().to_string();
        for (line, command) in sh_commands(&text) {
            if !listed.contains(&command) {
                problems.push(format!(
                    "{name}:{line}: `{command}` is run by no test: run it in docs.rs (RUN_HERE), name the test or \
                     script that runs it (RUN_ELSEWHERE), say why the lab cannot run it (NOT_IN_THE_LAB), or put \
                     it in a ```text block if it is not a command to run"
                ));
            }
            documented.insert(command);
        }
    }
    for command in &listed {
        if !documented.contains(command) {
            problems.push(format!("`{command}` is listed in docs.rs but no ```sh block of the docs shows it"));
        }
    }
    for (command, file, runs) in RUN_ELSEWHERE {
        let text = std::fs::read_to_string(root.join(file)).with_context(|| format!("cannot read {file}"))?;
        if !text.contains(runs) {
            problems.push(format!("`{command}`: {file} no longer contains {runs:?}, which was said to run it"));
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}
