//! ironlb-lab-kubelet: the test lab's stand-in for kube-scheduler and for the kubelets of its
//! nodes (e2e/lab/up.d/05-kubelet.sh starts it in the root namespace with the admin kubeconfig).
//!
//! The lab has no container runtime, but ironlb's behaviour depends on what Pods and Nodes look
//! like to the rest of the cluster: kube-controller-manager writes a Service's EndpointSlices from
//! Pods that are bound to a Node, have an IP and are Ready, and its node lifecycle controller taints
//! Nodes whose kubelet stopped posting status. So this program plays those parts, and nothing else:
//!
//! * heartbeat: every 10 s it renews each lab node's Lease in `kube-node-lease` and posts its
//!   conditions (Ready, no pressure), and removes the not-ready/unreachable taints an earlier,
//!   kubelet-less phase of the lab left behind;
//! * scheduler: a Pod without a node (and for the default scheduler) is bound to the lab node that
//!   fits (nodeSelector, required node affinity, taints) and has the fewest Pods, ties by name; a
//!   Pod no node fits stays Pending with `PodScheduled=False`, reason `Unschedulable`;
//! * kubelet: a Pod bound to a lab node is reported Running with the node's own addresses as its
//!   IPs (like a hostNetwork Pod: the node's HTTP server on port 8080 is what answers), Ready
//!   unless annotated `lab.ironlb.io/ready: "false"`; a Pod being deleted is finalized at once.
//!   Like the kubelet's status manager it also re-checks every Pod every 10 s, not only on watch
//!   events: after a control-plane outage the node lifecycle controller marks the Pods of nodes
//!   whose heartbeat it missed NotReady, and a real kubelet puts its own status back.
//!
//! Pods of the ironlb chart itself (`app.kubernetes.io/name=ironlb`) are left alone: the lab runs
//! those binaries out of cluster, each with its chart ServiceAccount.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Binding, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, HostIP, Node,
    NodeCondition, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference, Pod, PodCondition, PodIP, PodStatus,
    Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

/// Who writes: the field manager of the Lease (server-side apply) and the name in logs.
const FIELD_MANAGER: &str = "ironlb-lab-kubelet";
/// A kubelet's default node status update frequency and node lease renew interval.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// How soon a failed heartbeat is tried again.
const HEARTBEAT_RETRY: Duration = Duration::from_secs(1);
/// A kubelet's default node lease duration; kube-controller-manager's grace period (50 s) is longer.
const LEASE_DURATION_SECONDS: i32 = 40;
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Test hook: `lab.ironlb.io/ready: "false"` keeps a running Pod unready (and so out of the ready
/// endpoints of its Services) until the annotation changes.
const READY_ANNOTATION: &str = "lab.ironlb.io/ready";
/// Pods with this label value are the ironlb chart's own; the lab runs them out of cluster.
const IGNORED_LABEL: (&str, &str) = ("app.kubernetes.io/name", "ironlb");
/// The taints the node lifecycle controller puts on Nodes whose kubelet does not report.
const LIFECYCLE_TAINTS: [&str; 2] = ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"];
/// The Pod conditions this program owns; others (readiness gates, DisruptionTarget) are kept.
/// How often every Pod's status is compared with what it should be, as the kubelet's status
/// manager does (its `syncPeriod`), whether or not a watch event arrived.
const STATUS_SYNC: Duration = Duration::from_secs(10);
const POD_CONDITIONS: [&str; 4] = ["PodScheduled", "Initialized", "ContainersReady", "Ready"];

/// Flags of ironlb-lab-kubelet. The API server comes from KUBECONFIG.
#[derive(Debug, Parser)]
#[command(name = "ironlb-lab-kubelet", version, about = "The ironlb test lab's kubelet and scheduler stand-in")]
struct Args {
    /// A lab node as `<Node name>=<IPv4>,<IPv6>` (its LAN addresses); once per node.
    #[arg(long = "node", value_parser = parse_node, required = true)]
    nodes: Vec<LabNode>,

    /// Log filter: a level (info, debug, ...) or a tracing directive list.
    #[arg(long, env = "IRONLB_LOG_LEVEL", default_value = "info")]
    log_level: String,
}

/// A node this program is the kubelet of.
#[derive(Debug, Clone, PartialEq)]
struct LabNode {
    name: String,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
}

fn parse_node(flag: &str) -> Result<LabNode> {
    let (name, addresses) = flag.split_once('=').context("expected <name>=<IPv4>,<IPv6>")?;
    let (v4, v6) = addresses.split_once(',').context("expected <name>=<IPv4>,<IPv6>")?;
    if name.is_empty() {
        bail!("empty node name");
    }
    Ok(LabNode {
        name: name.to_owned(),
        v4: v4.parse().with_context(|| format!("bad IPv4 address {v4:?}"))?,
        v6: v6.parse().with_context(|| format!("bad IPv6 address {v6:?}"))?,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log_level)?)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let mut nodes = BTreeMap::new();
    for node in args.nodes {
        if let Some(twice) = nodes.insert(node.name.clone(), node) {
            bail!("--node {} is given twice", twice.name);
        }
    }
    info!(nodes = ?nodes.keys().collect::<Vec<_>>(), "starting");
    let client = Client::try_default().await.context("cannot reach the API server")?;

    let heartbeat = tokio::spawn(heartbeat(client.clone(), nodes.values().map(|n| n.name.clone()).collect()));
    let kubelet = Kubelet { client, nodes, assumed: HashMap::new() };
    let outcome = tokio::select! {
        result = kubelet.run() => result,
        () = shutdown_signal() => { info!("shutting down"); Ok(()) }
    };
    heartbeat.abort();
    outcome
}

/// SIGTERM (down.sh stopping the lab) or Ctrl-C.
async fn shutdown_signal() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            warn!(%error, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// A time as the API stores it (whole seconds), so a value read back compares equal.
fn now() -> Time {
    Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn api_error_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

// =============================================================================================
// Heartbeat: what keeps kube-controller-manager's node lifecycle controller content.

async fn heartbeat(client: Client, nodes: Vec<String>) {
    let mut healthy: HashMap<String, bool> = HashMap::new();
    loop {
        for node in &nodes {
            // A hung request must not stop the other nodes' heartbeats.
            let result = tokio::time::timeout(HEARTBEAT, beat(&client, node))
                .await
                .unwrap_or_else(|_| Err(anyhow!("timed out")));
            let was = healthy.insert(node.clone(), result.is_ok());
            match result {
                // Log the first success and recoveries, not every beat.
                Ok(()) if was != Some(true) => info!(node, "posting Ready status and renewing the node Lease"),
                Ok(()) => debug!(node, "heartbeat"),
                Err(error) => warn!(node, error = format!("{error:#}"), "heartbeat failed"),
            }
        }
        // After a failure (the API server was away), beat again soon rather than a full period
        // later, as the kubelet retries its status updates: the node lifecycle controller times
        // the nodes from when it last saw them beat, so a late first beat after an outage
        // would make every node look dead.
        let wait = if healthy.values().all(|&ok| ok) { HEARTBEAT } else { HEARTBEAT_RETRY };
        tokio::time::sleep(wait).await;
    }
}

async fn beat(client: &Client, name: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.get(name).await.context("get Node")?;
    let existing = node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    // Strategic merge: conditions merge by type, so addresses and other conditions stay.
    let patch = json!({ "status": { "conditions": node_conditions(existing, &now()) } });
    let node = nodes
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .context("patch Node status")?;

    // Once Ready the controller lifts these itself, but only on its next pass; a lab that ran
    // without a kubelet before may have them, and a new Pod should not have to wait.
    if let Some(taints) = without_lifecycle_taints(node.spec.as_ref().and_then(|s| s.taints.as_deref())) {
        // The resourceVersion makes it a compare-and-swap: a taint added meanwhile is not lost.
        let patch = json!({ "metadata": { "resourceVersion": node.resource_version() }, "spec": { "taints": taints } });
        nodes.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await.context("remove taints")?;
        info!(node = name, "removed the not-ready/unreachable taints");
    }

    let leases: Api<Lease> = Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE);
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": NODE_LEASE_NAMESPACE,
            // As a kubelet does: the Lease goes away with its Node.
            "ownerReferences": [{ "apiVersion": "v1", "kind": "Node", "name": name, "uid": node.uid() }],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": MicroTime(Timestamp::now()),
        },
    });
    leases
        .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(lease))
        .await
        .context("renew Lease")?;
    Ok(())
}

/// The conditions a healthy kubelet posts, with fresh heartbeat times; a transition time is kept
/// while the status stays what it was.
fn node_conditions(existing: &[NodeCondition], now: &Time) -> Vec<NodeCondition> {
    [
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ]
    .into_iter()
    .map(|(type_, status, reason, message)| {
        let since = existing
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        NodeCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(since),
        }
    })
    .collect()
}

/// The taints without the lifecycle ones, or None when there were none to remove.
fn without_lifecycle_taints(taints: Option<&[Taint]>) -> Option<Vec<Taint>> {
    let taints = taints.unwrap_or_default();
    let kept: Vec<Taint> = taints.iter().filter(|t| !LIFECYCLE_TAINTS.contains(&t.key.as_str())).cloned().collect();
    (kept.len() != taints.len()).then_some(kept)
}

// =============================================================================================
// Scheduler and kubelet: one loop over watches of Nodes and Pods.

struct Kubelet {
    client: Client,
    nodes: BTreeMap<String, LabNode>,
    /// Pods this program bound whose binding the Pod watch has not shown yet (uid -> node), so
    /// Pods created in a burst spread over the nodes instead of all landing on the emptiest one.
    assumed: HashMap<String, String>,
}

impl Kubelet {
    async fn run(mut self) -> Result<()> {
        let (node_store, node_writer) = reflector::store::<Node>();
        let (pod_store, pod_writer) = reflector::store::<Pod>();
        let config = watcher::Config::default();
        let mut node_events = watcher(Api::<Node>::all(self.client.clone()), config.clone())
            .default_backoff()
            .reflect(node_writer)
            .boxed();
        let mut pod_events =
            watcher(Api::<Pod>::all(self.client.clone()), config).default_backoff().reflect(pod_writer).boxed();
        // Nothing is decided before both caches hold a full list: a node choice needs every Pod.
        let (mut nodes_synced, mut pods_synced) = (false, false);
        let mut resync = tokio::time::interval(STATUS_SYNC);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = resync.tick(), if nodes_synced && pods_synced => {
                    self.handle_all(&pod_store, &node_store).await;
                }
                Some(event) = node_events.next() => match event {
                    Ok(watcher::Event::InitDone) => {
                        let first = !nodes_synced;
                        nodes_synced = true;
                        if first && pods_synced {
                            self.handle_all(&pod_store, &node_store).await;
                        }
                    }
                    // A Node changed (labels, taints, cordon, or just a heartbeat every 10 s): Pods
                    // that did not fit anywhere get another try.
                    Ok(watcher::Event::Apply(node))
                        if nodes_synced && pods_synced && self.nodes.contains_key(&node.name_any()) =>
                    {
                        for pod in pod_store.state() {
                            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_none_or(str::is_empty) {
                                self.handle(&pod, &pod_store, &node_store).await;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(error) => warn!(%error, "Node watch failed; retrying"),
                },
                Some(event) = pod_events.next() => match event {
                    // After every (re)list: the store now holds all Pods, so look at each.
                    Ok(watcher::Event::InitDone) => {
                        pods_synced = true;
                        self.assumed.clear();
                        if nodes_synced {
                            self.handle_all(&pod_store, &node_store).await;
                        }
                    }
                    Ok(watcher::Event::Apply(pod)) if nodes_synced && pods_synced => {
                        self.handle(&pod, &pod_store, &node_store).await;
                    }
                    Ok(watcher::Event::Delete(pod)) => {
                        if let Some(uid) = pod.uid() {
                            self.assumed.remove(&uid);
                        }
                    }
                    Ok(_) => {}
                    Err(error) => warn!(%error, "Pod watch failed; retrying"),
                },
                else => bail!("the Node and Pod watches ended"),
            }
        }
    }

    async fn handle_all(&mut self, pods: &Store<Pod>, nodes: &Store<Node>) {
        let mut all = pods.state();
        // Oldest first, as a scheduler's queue would take them.
        all.sort_by(|a, b| {
            a.creation_timestamp().cmp(&b.creation_timestamp()).then_with(|| a.name_any().cmp(&b.name_any()))
        });
        for pod in all {
            self.handle(&pod, pods, nodes).await;
        }
    }

    /// Brings one Pod a step further: bind it, run it, or finalize its deletion.
    async fn handle(&mut self, pod: &Pod, pods: &Store<Pod>, nodes: &Store<Node>) {
        if ignored(pod) {
            return;
        }
        let Some(spec) = pod.spec.as_ref() else { return };
        match spec.node_name.as_deref().filter(|n| !n.is_empty()) {
            None => {
                let ours = spec.scheduler_name.as_deref().is_none_or(|s| s.is_empty() || s == "default-scheduler");
                let gated = spec.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty());
                if ours && !gated && pod.metadata.deletion_timestamp.is_none() {
                    self.schedule(pod, pods, nodes).await;
                }
            }
            Some(node) => {
                let Some(node) = self.nodes.get(node).cloned() else { return };
                if let Some(uid) = pod.uid() {
                    self.assumed.remove(&uid);
                }
                if pod.metadata.deletion_timestamp.is_some() {
                    self.finalize(pod).await;
                } else if !terminal(pod) {
                    self.run_pod(pod, &node).await;
                }
            }
        }
    }

    async fn schedule(&mut self, pod: &Pod, pods: &Store<Pod>, nodes: &Store<Node>) {
        let candidates: Vec<Arc<Node>> =
            nodes.state().into_iter().filter(|n| self.nodes.contains_key(&n.name_any())).collect();
        let candidates: Vec<&Node> = candidates.iter().map(AsRef::as_ref).collect();
        let api = self.pods_of(pod);
        let name = pod.name_any();
        match choose_node(pod, &candidates, &self.load(pods)) {
            Ok(node) => {
                let binding = Binding {
                    // The uid makes the binding apply to this very Pod, not one recreated under its name.
                    metadata: ObjectMeta { name: Some(name.clone()), uid: pod.uid(), ..ObjectMeta::default() },
                    target: ObjectReference {
                        api_version: Some("v1".to_owned()),
                        kind: Some("Node".to_owned()),
                        name: Some(node.clone()),
                        ..ObjectReference::default()
                    },
                };
                match api
                    .create_subresource::<_, serde_json::Value>("binding", &name, &PostParams::default(), &binding)
                    .await
                {
                    Ok(_) => {
                        info!(pod = %key(pod), node, "bound");
                        if let Some(uid) = pod.uid() {
                            self.assumed.insert(uid, node);
                        }
                    }
                    // Bound meanwhile (409) or gone (404): the watch shows what happened.
                    Err(error) if matches!(api_error_code(&error), Some(404 | 409)) => {
                        debug!(pod = %key(pod), %error, "not bound");
                    }
                    Err(error) => warn!(pod = %key(pod), %error, "cannot bind"),
                }
            }
            Err(message) => {
                let current = pod.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
                let told = current.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                        && c.message.as_deref() == Some(message.as_str())
                });
                if told {
                    return;
                }
                info!(pod = %key(pod), message, "unschedulable");
                let condition = PodCondition {
                    type_: "PodScheduled".to_owned(),
                    status: "False".to_owned(),
                    reason: Some("Unschedulable".to_owned()),
                    message: Some(message),
                    last_transition_time: Some(now()),
                    ..PodCondition::default()
                };
                // Strategic merge: conditions merge by type, other conditions stay.
                let patch = Patch::Strategic(json!({ "status": { "conditions": [condition] } }));
                if let Err(error) = api.patch_status(&name, &PatchParams::default(), &patch).await {
                    warn!(pod = %key(pod), %error, "cannot mark unschedulable");
                }
            }
        }
    }

    /// Pods per lab node: those bound (in the store or assumed), not finished, not ironlb's own.
    fn load(&self, pods: &Store<Pod>) -> BTreeMap<String, usize> {
        let mut load: BTreeMap<String, usize> = self.nodes.keys().map(|n| (n.clone(), 0)).collect();
        let bound =
            pods.state().into_iter().filter(|p| !ignored(p) && !terminal(p)).filter_map(|p| p.spec.clone()?.node_name);
        for node in bound.chain(self.assumed.values().cloned()) {
            if let Some(count) = load.get_mut(&node) {
                *count += 1;
            }
        }
        load
    }

    async fn run_pod(&self, pod: &Pod, node: &LabNode) {
        let desired = pod_status(pod, node, &now());
        if pod.status.as_ref() == Some(&desired) {
            return;
        }
        // A merge patch replaces these fields (lists whole), which is what they should become.
        let patch = json!({ "status": {
            "phase": desired.phase,
            "podIP": desired.pod_ip,
            "podIPs": desired.pod_ips,
            "hostIP": desired.host_ip,
            "hostIPs": desired.host_ips,
            "startTime": desired.start_time,
            "conditions": desired.conditions,
            "containerStatuses": desired.container_statuses,
            "initContainerStatuses": desired.init_container_statuses,
        }});
        match self.pods_of(pod).patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await {
            Ok(_) => info!(pod = %key(pod), node = node.name, ready = is_ready(pod), "running"),
            Err(error) if api_error_code(&error) == Some(404) => {
                debug!(pod = %key(pod), "gone before its status was written")
            }
            Err(error) => warn!(pod = %key(pod), %error, "cannot write status"),
        }
    }

    /// What a kubelet does once a deleted Pod's containers stopped: remove the object for good.
    async fn finalize(&self, pod: &Pod) {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            // Only this Pod, not a new one created under the same name meanwhile.
            preconditions: Some(Preconditions { uid: pod.uid(), resource_version: None }),
            ..DeleteParams::default()
        };
        match self.pods_of(pod).delete(&pod.name_any(), &params).await {
            Ok(_) => info!(pod = %key(pod), "deleted"),
            Err(error) if matches!(api_error_code(&error), Some(404 | 409)) => debug!(pod = %key(pod), "already gone"),
            Err(error) => warn!(pod = %key(pod), %error, "cannot delete"),
        }
    }

    fn pods_of(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default())
    }
}

fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

fn ignored(pod: &Pod) -> bool {
    pod.labels().get(IGNORED_LABEL.0).is_some_and(|v| v == IGNORED_LABEL.1)
}

fn terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// The test hook: everything but `lab.ironlb.io/ready: "false"` is ready.
fn is_ready(pod: &Pod) -> bool {
    pod.annotations().get(READY_ANNOTATION).is_none_or(|v| v != "false")
}

// ---------------------------------------------------------------------------------------------
// Node choice (pure).

/// The node a Pod goes to: among those it fits, the one with the fewest Pods, ties by name. Err
/// is the Pod's `Unschedulable` message, in kube-scheduler's words.
fn choose_node(pod: &Pod, nodes: &[&Node], load: &BTreeMap<String, usize>) -> Result<String, String> {
    let mut best: Option<(usize, String)> = None;
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    for node in nodes {
        match misfit(pod, node) {
            Some(reason) => *reasons.entry(reason).or_default() += 1,
            None => {
                let name = node.name_any();
                let candidate = (load.get(&name).copied().unwrap_or_default(), name);
                if best.as_ref().is_none_or(|b| candidate < *b) {
                    best = Some(candidate);
                }
            }
        }
    }
    if let Some((_, name)) = best {
        return Ok(name);
    }
    let reasons: Vec<String> = reasons.iter().map(|(reason, count)| format!("{count} {reason}")).collect();
    let reasons = if reasons.is_empty() { "no lab node exists".to_owned() } else { reasons.join(", ") };
    Err(format!("0/{} nodes are available: {reasons}.", nodes.len()))
}

/// Why `pod` cannot go to `node`, or None when it can.
fn misfit(pod: &Pod, node: &Node) -> Option<&'static str> {
    let spec = pod.spec.as_ref()?;
    let labels = node.labels();
    let selector = spec.node_selector.iter().flatten();
    if !selector.into_iter().all(|(key, value)| labels.get(key) == Some(value)) {
        return Some("node(s) didn't match Pod's node affinity/selector");
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref());
    // The terms are ORed; no term at all matches no node, as in kube-scheduler.
    if let Some(required) = required
        && !required.node_selector_terms.iter().any(|term| term_matches(term, node))
    {
        return Some("node(s) didn't match Pod's node affinity/selector");
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let mut taints: Vec<Taint> = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        // A cordoned node, as kube-scheduler sees it.
        taints.push(Taint {
            key: "node.kubernetes.io/unschedulable".to_owned(),
            effect: "NoSchedule".to_owned(),
            ..Taint::default()
        });
    }
    let untolerated = taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .any(|taint| !tolerations.iter().any(|t| tolerates(t, taint)));
    if untolerated {
        return Some("node(s) had untolerated taint(s)");
    }
    None
}

/// A term matches when all its expressions (on labels) and fields (metadata.name) match, and it
/// has at least one of them.
fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let name = node.name_any();
    expressions.iter().all(|r| requirement_matches(r, node.labels().get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| requirement_matches(r, (r.key == "metadata.name").then_some(name.as_str())))
}

fn requirement_matches(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let number = |v: &str| v.parse::<i64>().ok();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => matches!((value.and_then(number), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a > b),
        "Lt" => matches!((value.and_then(number), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a < b),
        _ => false,
    }
}

fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration.effect.as_deref().is_some_and(|e| !e.is_empty() && e != taint.effect) {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    match toleration.operator.as_deref().unwrap_or("Equal") {
        // An empty key with Exists tolerates everything.
        "Exists" => key.is_empty() || key == taint.key,
        "Equal" => {
            key == taint.key
                && toleration.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Pod status (pure).

/// The status a kubelet would post for `pod` running on `node`: the Pod's current status with
/// phase, addresses, conditions and container statuses set. Times already recorded are kept (a
/// transition time only while its status stays the same), so a Pod whose status is already right
/// compares equal and is not written again.
fn pod_status(pod: &Pod, node: &LabNode, now: &Time) -> PodStatus {
    let current = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let ready = is_ready(pod);
    let start = current.start_time.clone().unwrap_or_else(|| now.clone());
    let old_conditions = current.conditions.clone().unwrap_or_default();

    let unready: Vec<&str> = if ready { Vec::new() } else { spec.containers.iter().map(|c| c.name.as_str()).collect() };
    let condition = |type_: &str, is: bool| {
        let status = if is { "True" } else { "False" };
        let since = old_conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        PodCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            last_transition_time: Some(since),
            reason: (!is).then(|| "ContainersNotReady".to_owned()),
            message: (!is).then(|| format!("containers with unready status: [{}]", unready.join(" "))),
            ..PodCondition::default()
        }
    };
    let mut conditions = vec![
        condition("PodScheduled", true),
        condition("Initialized", true),
        condition("ContainersReady", ready),
        condition("Ready", ready),
    ];
    conditions.extend(old_conditions.iter().filter(|c| !POD_CONDITIONS.contains(&c.type_.as_str())).cloned());

    let uid = pod.uid().unwrap_or_default();
    // A container's status starts from the one recorded, so what the API server fills in (an
    // empty lastState) does not make it differ from what was written.
    let old_status = |statuses: &Option<Vec<ContainerStatus>>, name: &str| {
        statuses.iter().flatten().find(|s| s.name == name).cloned().unwrap_or_default()
    };
    let containers = spec
        .containers
        .iter()
        .map(|c| {
            let old = old_status(&current.container_statuses, &c.name);
            let since = old.state.clone().and_then(|s| s.running?.started_at).unwrap_or_else(|| start.clone());
            ContainerStatus {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                container_id: Some(format!("lab://{uid}/{}", c.name)),
                ready,
                started: Some(true),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning { started_at: Some(since) }),
                    ..ContainerState::default()
                }),
                restart_count: 0,
                ..old
            }
        })
        .collect();
    // Init containers "ran" and completed before the app containers started.
    let init_containers: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            container_id: Some(format!("lab://{uid}/{}", c.name)),
            restart_count: 0,
            ready: true,
            started: Some(false),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 0,
                    reason: Some("Completed".to_owned()),
                    started_at: Some(start.clone()),
                    finished_at: Some(start.clone()),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }),
            ..old_status(&current.init_container_statuses, &c.name)
        })
        .collect();

    PodStatus {
        phase: Some("Running".to_owned()),
        // The node's own addresses, IPv4 first (the lab's primary Service family).
        pod_ip: Some(node.v4.to_string()),
        pod_ips: Some(vec![PodIP { ip: node.v4.to_string() }, PodIP { ip: node.v6.to_string() }]),
        host_ip: Some(node.v4.to_string()),
        host_ips: Some(vec![HostIP { ip: node.v4.to_string() }, HostIP { ip: node.v6.to_string() }]),
        start_time: Some(start),
        conditions: Some(conditions),
        container_statuses: Some(containers),
        init_container_statuses: (!init_containers.is_empty()).then_some(init_containers),
        ..current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Affinity, Container, NodeAffinity, NodeSelector, NodeSpec, PodSpec};

    fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        }
    }

    fn tainted(mut node: Node, key: &str, effect: &str) -> Node {
        node.spec.get_or_insert_with(NodeSpec::default).taints.get_or_insert_with(Vec::new).push(Taint {
            key: key.to_owned(),
            effect: effect.to_owned(),
            ..Taint::default()
        });
        node
    }

    fn pod(spec: PodSpec) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".to_owned()),
                namespace: Some("default".to_owned()),
                uid: Some("u1".to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".to_owned(),
                    image: Some("nginx".to_owned()),
                    ..Container::default()
                }],
                ..spec
            }),
            ..Pod::default()
        }
    }

    fn lab_nodes() -> Vec<Node> {
        vec![
            node("ironlb-node-1", &[("zone", "a")]),
            node("ironlb-node-2", &[("zone", "b")]),
            node("ironlb-node-3", &[]),
        ]
    }

    fn choose(pod: &Pod, nodes: &[Node], load: &[(&str, usize)]) -> Result<String, String> {
        let nodes: Vec<&Node> = nodes.iter().collect();
        choose_node(pod, &nodes, &load.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect())
    }

    fn affinity(terms: Vec<NodeSelectorTerm>) -> PodSpec {
        PodSpec {
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: terms,
                    }),
                    ..NodeAffinity::default()
                }),
                ..Affinity::default()
            }),
            ..PodSpec::default()
        }
    }

    fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    #[test]
    fn parses_node_flags() {
        let node = parse_node("ironlb-node-1=192.168.2.101,fd6c:6a7e:5f2b:2::101").expect("valid");
        assert_eq!(node.name, "ironlb-node-1");
        assert_eq!(node.v4, Ipv4Addr::new(192, 168, 2, 101));
        assert_eq!(node.v6, "fd6c:6a7e:5f2b:2::101".parse::<Ipv6Addr>().expect("IPv6"));
        for bad in ["ironlb-node-1", "=192.168.2.1,::1", "n=192.168.2.1", "n=::1,192.168.2.1", "n=1.2.3,::1"] {
            assert!(parse_node(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn picks_the_least_loaded_node_then_the_first_name() {
        let p = pod(PodSpec::default());
        assert_eq!(choose(&p, &lab_nodes(), &[]), Ok("ironlb-node-1".to_owned()));
        let load = [("ironlb-node-1", 2), ("ironlb-node-2", 1), ("ironlb-node-3", 1)];
        assert_eq!(choose(&p, &lab_nodes(), &load), Ok("ironlb-node-2".to_owned()));
    }

    #[test]
    fn honours_the_node_selector() {
        let p =
            pod(PodSpec { node_selector: Some([("zone".to_owned(), "b".to_owned())].into()), ..PodSpec::default() });
        assert_eq!(choose(&p, &lab_nodes(), &[("ironlb-node-2", 9)]), Ok("ironlb-node-2".to_owned()));
        let p =
            pod(PodSpec { node_selector: Some([("zone".to_owned(), "z".to_owned())].into()), ..PodSpec::default() });
        assert_eq!(
            choose(&p, &lab_nodes(), &[]),
            Err("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.".to_owned())
        );
    }

    #[test]
    fn honours_required_node_affinity() {
        // Terms are ORed, requirements within a term ANDed.
        let p = pod(affinity(vec![
            NodeSelectorTerm {
                match_expressions: Some(vec![requirement("zone", "In", &["b", "c"])]),
                match_fields: None,
            },
            NodeSelectorTerm {
                match_expressions: Some(vec![requirement("zone", "DoesNotExist", &[])]),
                match_fields: Some(vec![requirement("metadata.name", "In", &["ironlb-node-3"])]),
            },
        ]));
        assert_eq!(choose(&p, &lab_nodes(), &[("ironlb-node-2", 5)]), Ok("ironlb-node-3".to_owned()));
        assert_eq!(choose(&p, &lab_nodes(), &[("ironlb-node-3", 5)]), Ok("ironlb-node-2".to_owned()));
        // What a DaemonSet's Pod carries.
        let p = pod(affinity(vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![requirement("metadata.name", "In", &["ironlb-node-2"])]),
        }]));
        assert_eq!(choose(&p, &lab_nodes(), &[]), Ok("ironlb-node-2".to_owned()));
        let p = pod(affinity(vec![NodeSelectorTerm {
            match_expressions: Some(vec![
                requirement("zone", "NotIn", &["a", "b"]),
                requirement("zone", "Exists", &[]),
            ]),
            match_fields: None,
        }]));
        assert!(choose(&p, &lab_nodes(), &[]).is_err());
        assert!(choose(&pod(affinity(Vec::new())), &lab_nodes(), &[]).is_err(), "no term matches no node");
        assert!(requirement_matches(&requirement("cpus", "Gt", &["4"]), Some("8")));
        assert!(!requirement_matches(&requirement("cpus", "Lt", &["4"]), Some("8")));
        assert!(!requirement_matches(&requirement("cpus", "Gt", &["4"]), Some("many")));
    }

    #[test]
    fn honours_taints_and_cordons() {
        let mut nodes = lab_nodes();
        nodes[0] = tainted(nodes[0].clone(), "dedicated", "NoSchedule");
        nodes[1].spec = Some(NodeSpec { unschedulable: Some(true), ..NodeSpec::default() });
        nodes[2] = tainted(nodes[2].clone(), "soft", "PreferNoSchedule");
        let p = pod(PodSpec::default());
        assert_eq!(choose(&p, &nodes, &[("ironlb-node-3", 7)]), Ok("ironlb-node-3".to_owned()));
        nodes[2] = tainted(nodes[2].clone(), "node.kubernetes.io/unreachable", "NoExecute");
        assert_eq!(
            choose(&p, &nodes, &[]),
            Err("0/3 nodes are available: 3 node(s) had untolerated taint(s).".to_owned())
        );
        let tolerate = |key: Option<&str>, operator: &str| Toleration {
            key: key.map(str::to_owned),
            operator: Some(operator.to_owned()),
            ..Toleration::default()
        };
        let p = pod(PodSpec { tolerations: Some(vec![tolerate(Some("dedicated"), "Exists")]), ..PodSpec::default() });
        assert_eq!(choose(&p, &nodes, &[]), Ok("ironlb-node-1".to_owned()));
        let p = pod(PodSpec { tolerations: Some(vec![tolerate(None, "Exists")]), ..PodSpec::default() });
        assert_eq!(choose(&p, &nodes, &[("ironlb-node-1", 1), ("ironlb-node-2", 1)]), Ok("ironlb-node-3".to_owned()));
        assert_eq!(choose(&p, &[], &[]), Err("0/0 nodes are available: no lab node exists.".to_owned()));
    }

    fn lab_node() -> LabNode {
        parse_node("ironlb-node-2=192.168.2.102,fd6c:6a7e:5f2b:2::102").expect("valid")
    }

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(second).expect("valid time"))
    }

    fn condition<'a>(status: &'a PodStatus, type_: &str) -> &'a PodCondition {
        status.conditions.iter().flatten().find(|c| c.type_ == type_).expect("condition present")
    }

    #[test]
    fn a_bound_pod_runs_ready_with_the_node_addresses() {
        let mut p = pod(PodSpec { node_name: Some("ironlb-node-2".to_owned()), ..PodSpec::default() });
        p.status = Some(PodStatus { qos_class: Some("BestEffort".to_owned()), ..PodStatus::default() });
        let status = pod_status(&p, &lab_node(), &at(100));
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("192.168.2.102"));
        let ips: Vec<&str> = status.pod_ips.iter().flatten().map(|ip| ip.ip.as_str()).collect();
        assert_eq!(ips, ["192.168.2.102", "fd6c:6a7e:5f2b:2::102"]);
        let host_ips: Vec<&str> = status.host_ips.iter().flatten().map(|ip| ip.ip.as_str()).collect();
        assert_eq!(host_ips, ips);
        assert_eq!(status.start_time, Some(at(100)));
        assert_eq!(status.qos_class.as_deref(), Some("BestEffort"), "fields the kubelet does not own are kept");
        for type_ in POD_CONDITIONS {
            assert_eq!(condition(&status, type_).status, "True", "{type_}");
        }
        let containers = status.container_statuses.as_deref().expect("container statuses");
        assert_eq!(containers.len(), 1);
        assert_eq!(
            (containers[0].name.as_str(), containers[0].ready, containers[0].started),
            ("app", true, Some(true))
        );
        assert!(containers[0].state.as_ref().and_then(|s| s.running.as_ref()).is_some());
        assert_eq!(status.init_container_statuses, None);
    }

    #[test]
    fn the_ready_annotation_flips_readiness_and_keeps_times() {
        let mut p = pod(PodSpec::default());
        let mut first = pod_status(&p, &lab_node(), &at(100));
        // As the API server returns it: with an empty lastState.
        first.container_statuses.iter_mut().flatten().for_each(|c| c.last_state = Some(ContainerState::default()));
        p.status = Some(first.clone());
        // Nothing changed: the same status, so nothing is written.
        assert_eq!(pod_status(&p, &lab_node(), &at(200)), first);

        p.metadata.annotations = Some([(READY_ANNOTATION.to_owned(), "false".to_owned())].into());
        let unready = pod_status(&p, &lab_node(), &at(300));
        assert_eq!(unready.phase.as_deref(), Some("Running"));
        for (type_, status) in
            [("PodScheduled", "True"), ("Initialized", "True"), ("ContainersReady", "False"), ("Ready", "False")]
        {
            assert_eq!(condition(&unready, type_).status, status, "{type_}");
        }
        assert_eq!(condition(&unready, "Ready").last_transition_time, Some(at(300)));
        assert_eq!(condition(&unready, "Ready").reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(condition(&unready, "Initialized").last_transition_time, Some(at(100)));
        assert_eq!(unready.start_time, Some(at(100)));
        let container = &unready.container_statuses.as_deref().expect("container statuses")[0];
        assert!(!container.ready);
        assert_eq!(container.state.as_ref().and_then(|s| s.running.clone()).and_then(|r| r.started_at), Some(at(100)));

        p.status = Some(unready);
        p.metadata.annotations = Some([(READY_ANNOTATION.to_owned(), "true".to_owned())].into());
        let ready = pod_status(&p, &lab_node(), &at(400));
        assert_eq!(condition(&ready, "Ready").status, "True");
        assert_eq!(condition(&ready, "Ready").last_transition_time, Some(at(400)));
    }

    #[test]
    fn init_containers_completed_and_foreign_conditions_stay() {
        let mut p = pod(PodSpec {
            init_containers: Some(vec![Container { name: "setup".to_owned(), ..Container::default() }]),
            ..PodSpec::default()
        });
        let gate =
            PodCondition { type_: "example.com/gate".to_owned(), status: "True".to_owned(), ..PodCondition::default() };
        p.status = Some(PodStatus { conditions: Some(vec![gate.clone()]), ..PodStatus::default() });
        let status = pod_status(&p, &lab_node(), &at(100));
        let init = status.init_container_statuses.as_deref().expect("init container statuses");
        let terminated = init[0].state.as_ref().and_then(|s| s.terminated.as_ref()).expect("terminated");
        assert_eq!(
            (init[0].name.as_str(), terminated.exit_code, terminated.reason.as_deref()),
            ("setup", 0, Some("Completed"))
        );
        assert_eq!(condition(&status, "example.com/gate"), &gate);
    }

    #[test]
    fn the_chart_s_own_pods_are_ignored() {
        let mut p = pod(PodSpec::default());
        assert!(!ignored(&p));
        p.metadata.labels = Some([("app.kubernetes.io/name".to_owned(), "ironlb".to_owned())].into());
        assert!(ignored(&p));
    }

    #[test]
    fn node_conditions_keep_transition_times_and_taints_lose_lifecycle_ones() {
        let first = node_conditions(&[], &at(100));
        assert_eq!(first.len(), 4);
        assert!(
            first.iter().all(|c| c.last_transition_time == Some(at(100)) && c.last_heartbeat_time == Some(at(100)))
        );
        let mut unknown = first.clone();
        unknown[0].status = "Unknown".to_owned();
        let next = node_conditions(&unknown, &at(200));
        assert_eq!((next[0].type_.as_str(), next[0].status.as_str()), ("Ready", "True"));
        assert_eq!(next[0].last_transition_time, Some(at(200)), "Unknown -> True is a transition");
        assert_eq!(next[1].last_transition_time, Some(at(100)));
        assert_eq!(next[1].last_heartbeat_time, Some(at(200)));

        let taint = |key: &str| Taint { key: key.to_owned(), effect: "NoSchedule".to_owned(), ..Taint::default() };
        assert_eq!(without_lifecycle_taints(None), None);
        assert_eq!(without_lifecycle_taints(Some(&[taint("dedicated")])), None);
        let taints =
            [taint("node.kubernetes.io/unreachable"), taint("dedicated"), taint("node.kubernetes.io/not-ready")];
        assert_eq!(without_lifecycle_taints(Some(&taints)), Some(vec![taint("dedicated")]));
    }
}
