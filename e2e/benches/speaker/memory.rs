//! Step 4, what an announced address costs a speaker in memory: each speaker's resident set with 0,
//! 1, 100, 1,000 and N (10,000) Services announced, the speakers sharing them out as the operator
//! records.
//!
//! Every row goes through the lab's own operator, as in a cluster: the bench creates LoadBalancer
//! Services of one IPv4 address each from one pool, `10.64.0.0/12` (handed out, never sent to), each
//! with a ready endpoint the cheapest way the lab allows (see [`Endpoints`]); the operator allocates
//! the addresses, picks each one's node and records both in the pool's IPAllocationSlices (100
//! Services each at most); the speakers announce from those. The speakers are restarted first, so
//! the baseline is a speaker that has announced nothing since it started.
//!
//! Why the figures per announced address are what they are:
//! - a speaker keeps the whole allocation record, every slice's entries, not only the ones it
//!   answers for, so its growth follows all the Services recorded while it announces only its
//!   share of them (about a third here, with three nodes): per address *it announces*, a speaker
//!   pays for about three record entries, plus what answering for an address adds;
//! - the first address also pays for answering at all (its sockets and receive tasks, a few hundred
//!   KiB), which dominates the small rows and is noise at 10,000;
//! - `VmRSS` counts what the allocator keeps, not only what is in use: the lists decoded when a watch
//!   (re)starts and the take-over bursts leave freed memory resident (`VmHWM`, the peak, shows it);
//! - the lab's speakers are debug builds.
//!
//! A row takes as long as the operator does: creating runs at ~15 Services/s in the two-core lab,
//! where the operator shares the cores with the API server, so 10,000 Services take ~11 minutes, and
//! the speakers take their addresses over a few at a time as they are recorded.

use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use ironlb_e2e::{Lab, block_on, create_retrying, delete_load_balancer_services};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use serde_json::json;

use crate::Teardown;
use crate::host::{Hosts, Memory, Metrics, Speaker};
use crate::report::{mib, thousands};

pub(crate) const NAMESPACE: &str = "ironlb-bench-speaker";
/// The one pool every Service takes its address from, and the L2Advertisement announcing it from
/// every node.
pub(crate) const POOL: &str = "ironlb-bench-speaker";
const POOL_ADDRESSES: &str = "10.64.0.0/12";
const POOL_SIZE: usize = 1 << 20;
/// The Services are `svc-0`, `svc-1`, …
const PREFIX: &str = "svc";
/// The label of the one Pod every Service selects under [`Endpoints::Selector`].
const APP: &str = "ironlb-bench-speaker";
/// Creations in flight at once (as the operator bench).
const CREATE_PARALLELISM: usize = 64;
/// How long a row may take, from its first create until every address is announced: bounded, and
/// generous, since creating runs at ~15 Services/s here (the operator writes each Service's status,
/// an Event and, batched, its slice, on the two cores it shares with the API server). The 9,000
/// Services of the 10,000 row take ~10 minutes and get 24.5.
const ROW_TIMEOUT: Duration = Duration::from_secs(120);
const ROW_TIMEOUT_PER_SERVICE: Duration = Duration::from_millis(150);
/// How long a speaker is left alone before its memory is read: past the take-over burst of
/// gratuitous ARP (3.5 s) and whatever a decision allocated for the moment.
const SETTLE: Duration = Duration::from_secs(10);

/// How the Services get their ready endpoint. Measured in the lab, 1,000 Services all announced:
/// 17 s with hand-made slices, 46 s with one selected Pod (kube-controller-manager writes ~22
/// EndpointSlices a second), so slices are the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoints {
    /// Selectorless Services, each with a hand-made EndpointSlice holding one ready endpoint,
    /// created by the bench next to its Service.
    Slices,
    /// Every Service selects one ready Pod; kube-controller-manager writes their EndpointSlices
    /// (at its default client rate limit of 20 requests per second).
    Selector,
}

impl Endpoints {
    pub(crate) fn from_env() -> Result<Self> {
        match std::env::var("BENCH_SPEAKER_ENDPOINTS").as_deref() {
            Err(_) | Ok("slices") => Ok(Self::Slices),
            Ok("selector") => Ok(Self::Selector),
            Ok(other) => bail!("BENCH_SPEAKER_ENDPOINTS={other}: expected slices or selector"),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Slices => {
                "selectorless Services, each with a hand-made EndpointSlice (one ready endpoint) created beside it"
            }
            Self::Selector => "Services selecting one ready Pod; kube-controller-manager writes their EndpointSlices",
        }
    }
}

/// One reading: per node, the IPv4 addresses its speaker announces and its memory.
struct Reading {
    services: usize,
    nodes: Vec<(String, u64, Memory)>,
    made: Option<Made>,
}

impl Reading {
    fn announced(&self) -> u64 {
        self.nodes.iter().map(|(_, count, _)| count).sum()
    }

    fn rss_kib(&self) -> u64 {
        self.nodes.iter().map(|(_, _, memory)| memory.rss_kib).sum()
    }

    /// Per speaker, in bytes, its `VmRSS` growth over `baseline` divided by the addresses it
    /// announces; `None` for a speaker that announces none.
    fn growth_per_announced(&self, baseline: &Reading) -> Vec<Option<f64>> {
        self.nodes
            .iter()
            .zip(&baseline.nodes)
            .map(|((_, count, memory), (_, _, before))| {
                (*count > 0).then(|| (memory.rss_kib as f64 - before.rss_kib as f64) * 1024.0 / *count as f64)
            })
            .collect()
    }
}

pub(crate) fn run(lab: &Lab, hosts: &Hosts, largest: usize, endpoints: Endpoints) -> Result<()> {
    ensure!(largest <= POOL_SIZE, "at most {POOL_SIZE} Services fit the pool {POOL_ADDRESSES}");
    let nodes: Vec<String> = hosts.nodes.iter().map(|node| node.name.clone()).collect();
    let mut teardown = Teardown::new(lab);
    teardown.namespace(NAMESPACE);
    teardown.object(&format!("l2advertisement/{POOL}"));
    teardown.object(&format!("ipaddresspool/{POOL}"));

    eprintln!("memory: restarting the speakers");
    for node in &nodes {
        lab.run("e2e/lab/speaker.sh", &["restart", node])?.ok()?;
    }
    std::thread::sleep(SETTLE);
    let speakers = nodes.iter().map(|node| Speaker::of(lab, node)).collect::<Result<Vec<_>>>()?;
    let mut readings = vec![read(lab, &speakers, 0)?];
    ensure!(readings[0].nodes.iter().all(|(_, count, _)| *count == 0), "the speakers announce addresses already");

    lab.kubectl(&["create", "namespace", NAMESPACE])?.ok()?;
    lab.apply(&format!(
        "apiVersion: ironlb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {{name: {POOL}}}\nspec: {{addresses: [{POOL_ADDRESSES}]}}\n"
    ))?;
    lab.apply(&format!(
        "apiVersion: ironlb.io/v1alpha1\nkind: L2Advertisement\nmetadata: {{name: {POOL}}}\nspec: {{ipAddressPools: [{POOL}]}}\n"
    ))?;
    if endpoints == Endpoints::Selector {
        lab.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: endpoint\n  namespace: {NAMESPACE}\n  labels: {{app: {APP}}}\n  annotations: {{lab.ironlb.io/ready: \"true\"}}\nspec:\n  containers: [{{name: web, image: registry.k8s.io/pause:3.10}}]\n"
        ))?;
    }

    let endpoint = hosts.nodes[0].clone();
    let _services = ServicesGuard { lab: lab.clone(), count: largest.max(1_000) };
    let mut created = 0;
    for step in [1, 100, 1_000, largest] {
        if step <= created {
            continue;
        }
        let added = step - created;
        eprintln!("memory: {step} Services");
        let writes_before = RecordWrites::read(lab)?;
        let failures_before = lease_failures(lab, &speakers)?;
        let started = Instant::now();
        let client = block_on(lab.client())?;
        block_on(create_services(client, created..step, endpoints, endpoint.v4, endpoint.name.clone()))?;
        let creating = started.elapsed();
        eprintln!("memory: {added} Services created in {:.1} s", creating.as_secs_f64());
        let timeout = ROW_TIMEOUT + ROW_TIMEOUT_PER_SERVICE * added as u32;
        let announcing = wait_announced(lab, &speakers, step, started, timeout)?;
        let complete = announcing.complete.then(|| started.elapsed());
        created = step;
        let writes = RecordWrites::read(lab)?.since(writes_before);
        let lease_failures = lease_failures(lab, &speakers)? - failures_before;
        std::thread::sleep(SETTLE);
        let mut reading = read(lab, &speakers, created)?;
        reading.made = Some(Made { added, creating, complete, most: announcing.most, timeout, writes, lease_failures });
        readings.push(reading);
        if complete.is_none() {
            break;
        }
    }
    print(&readings, endpoints);
    // Dropped in reverse order: the Services first, then the namespace and the pool.
    Ok(())
}

/// Deletes the Services the step may have made, 64 at a time, when dropped (before the teardown
/// deletes their namespace): the namespace controller deletes Services one by one at
/// kube-controller-manager's 20 requests per second, which takes 10,000 of them over eight minutes.
struct ServicesGuard {
    lab: Lab,
    count: usize,
}

impl Drop for ServicesGuard {
    fn drop(&mut self) {
        let started = Instant::now();
        let deleted = block_on(async {
            let api: Api<Service> = Api::namespaced(self.lab.client().await?, NAMESPACE);
            delete_load_balancer_services(&api, PREFIX, self.count, CREATE_PARALLELISM).await
        });
        match deleted {
            Ok(()) => eprintln!("memory: Services deleted in {:.1} s", started.elapsed().as_secs_f64()),
            Err(error) => eprintln!("memory: deleting the Services failed ({error:#}); the namespace deletion will"),
        }
    }
}

/// How a row was made.
struct Made {
    added: usize,
    creating: Duration,
    /// From the row's first create until every address was announced, if that happened in time.
    complete: Option<Duration>,
    /// The most addresses announced at once meanwhile (see [`Announcing::most`]).
    most: u64,
    /// Lease renewals the speakers failed meanwhile.
    lease_failures: f64,
    timeout: Duration,
    writes: RecordWrites,
}

/// What the API server counted of the operator's allocation record (`apiserver_request_total`,
/// `apiserver_request_body_size_bytes_sum`): the requests that wrote IPAllocationSlices (the
/// operator's leader is their only writer: an apply of a new slice's object, an apply of a slice's
/// status, a delete), those requests' body bytes, and the applies of pool statuses.
#[derive(Clone, Copy, Debug, Default)]
struct RecordWrites {
    slices: f64,
    slice_bytes: f64,
    pool_statuses: f64,
}

impl RecordWrites {
    fn read(lab: &Lab) -> Result<Self> {
        let metrics = Metrics::from(lab.kubectl(&["get", "--raw", "/metrics"])?.ok()?.stdout);
        let requests = |labels: &[(&str, &str)]| metrics.sum("apiserver_request_total", labels);
        let slices = ("resource", "ipallocationslices");
        // Body sizes are labelled with the group-qualified resource (`GroupResource.String()`) in
        // the API server sources looked at; a release labelling the bare name is counted as well.
        let slice_bytes = [slices, ("resource", "ipallocationslices.ironlb.io")]
            .iter()
            .map(|resource| metrics.sum("apiserver_request_body_size_bytes_sum", &[*resource]))
            .sum();
        Ok(Self {
            slices: requests(&[slices, ("verb", "APPLY")]) + requests(&[slices, ("verb", "DELETE")]),
            slice_bytes,
            pool_statuses: requests(&[("resource", "ipaddresspools"), ("subresource", "status"), ("verb", "APPLY")]),
        })
    }

    fn since(self, before: Self) -> Self {
        Self {
            slices: self.slices - before.slices,
            slice_bytes: self.slice_bytes - before.slice_bytes,
            pool_statuses: self.pool_statuses - before.pool_statuses,
        }
    }
}

/// Creates Services `svc-<n>` for every n of `range`, from [`POOL`], each with its ready endpoint.
async fn create_services(
    client: kube::Client,
    range: Range<usize>,
    endpoints: Endpoints,
    address: Ipv4Addr,
    node: String,
) -> Result<()> {
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let slices: Api<EndpointSlice> = Api::namespaced(client, NAMESPACE);
    futures::stream::iter(range)
        .map(|n| {
            let (services, slices, node) = (&services, &slices, &node);
            async move {
                let name = format!("{PREFIX}-{n}");
                let mut spec = json!({
                    "type": "LoadBalancer",
                    "allocateLoadBalancerNodePorts": false,
                    "ports": [{"port": 80, "targetPort": 8080}],
                });
                if endpoints == Endpoints::Selector {
                    spec["selector"] = json!({"app": APP});
                }
                let service = json!({
                    "metadata": {"name": name, "annotations": {"ironlb.io/address-pool": POOL}},
                    "spec": spec,
                });
                create_retrying(services, serde_json::from_value(service)?).await?;
                if endpoints == Endpoints::Slices {
                    let slice = json!({
                        "metadata": {
                            "name": format!("{name}-bench"),
                            "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "ironlb-bench"},
                        },
                        "addressType": "IPv4",
                        "ports": [{"port": 8080, "protocol": "TCP"}],
                        "endpoints": [{"addresses": [address.to_string()], "nodeName": node, "conditions": {"ready": true}}],
                    });
                    create_retrying(slices, serde_json::from_value(slice)?).await?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CREATE_PARALLELISM)
        .try_collect()
        .await
}

/// What [`wait_announced`] saw.
struct Announcing {
    /// Whether the speakers announced exactly `expected` addresses, twice in a row, in time.
    complete: bool,
    /// The most addresses announced at once: above `expected` while speakers that could not renew
    /// their Leases in time were taken for dead and their addresses taken over.
    most: u64,
}

/// Waits until the speakers together announce `expected` IPv4 addresses on two polls in a row
/// (so a moment of overlap during a take-over is not taken for the end), or until `timeout` has
/// passed since `started`.
fn wait_announced(
    lab: &Lab,
    speakers: &[Speaker],
    expected: usize,
    started: Instant,
    timeout: Duration,
) -> Result<Announcing> {
    let (mut last_report, mut most, mut settled) = (Instant::now(), 0, false);
    loop {
        let counts = speakers.iter().map(|s| Ok(s.metrics(lab)?.announced_v4())).collect::<Result<Vec<u64>>>()?;
        let total: u64 = counts.iter().sum();
        most = most.max(total);
        if total == expected as u64 {
            if settled {
                return Ok(Announcing { complete: true, most });
            }
            settled = true;
        } else {
            settled = false;
        }
        if started.elapsed() > timeout {
            eprintln!("memory: {total} addresses announced, not {expected}, after {timeout:?} (per node: {counts:?})");
            return Ok(Announcing { complete: false, most });
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!("memory: {total} of {expected} announced after {:.0} s", started.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Lease renewals the speakers failed so far, together.
fn lease_failures(lab: &Lab, speakers: &[Speaker]) -> Result<f64> {
    speakers.iter().map(|s| Ok(s.metrics(lab)?.sum("ironlb_speaker_lease_renewal_failures_total", &[]))).sum()
}

fn read(lab: &Lab, speakers: &[Speaker], services: usize) -> Result<Reading> {
    let nodes = speakers
        .iter()
        .map(|speaker| {
            let count = speaker.metrics(lab)?.announced_v4();
            let memory = speaker.memory().with_context(|| format!("memory of the speaker on {}", speaker.node))?;
            Ok((speaker.node.clone(), count, memory))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Reading { services, nodes, made: None })
}

fn print(readings: &[Reading], endpoints: Endpoints) {
    let Some(baseline) = readings.first() else { return };
    println!("### 4. Speaker memory per announced address");
    println!();
    println!(
        "Each speaker's `VmRSS` {} s after the row's addresses were announced (`VmHWM`, its peak since the \
         speakers were restarted for this step, in brackets), the IPv4 addresses it announces \
         (`ironlb_speaker_announced_addresses`) and its growth per announced address: its `VmRSS` over the \
         row with 0 addresses (the same process after its restart) divided by the addresses it announces \
         (the goal: at most 1 KiB). The average is over the speakers that announce any. LoadBalancer Services \
         of one IPv4 address each, from one pool `{POOL_ADDRESSES}` (never sent to), announced from every \
         node; endpoints: {}. Every speaker keeps the whole allocation record, announced by it or not, so a \
         speaker's growth follows all the Services while it announces about a third of them; the first \
         address also pays for announcing at all (sockets, receive tasks). \"Per added address\" divides the \
         growth since the row above by the addresses added since, per speaker.",
        SETTLE.as_secs(),
        endpoints.describe()
    );
    println!();
    let names: Vec<&str> = baseline.nodes.iter().map(|(name, _, _)| name.as_str()).collect();
    println!(
        "| announced | {} | sum of VmRSS | growth over 0 | growth per announced address, average | per added address, per speaker |",
        names
            .iter()
            .map(|n| format!("{n}: addresses, VmRSS (VmHWM), growth per address"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|--:|{}--:|--:|--:|--:|", "--:|".repeat(names.len()));
    let mut previous = baseline;
    for reading in readings {
        let per_address = reading.growth_per_announced(baseline);
        let per_node: Vec<String> = reading
            .nodes
            .iter()
            .zip(&per_address)
            .map(|((_, count, memory), per_address)| {
                let per_address = per_address.map_or("–".to_owned(), size);
                format!("{}, {} ({}), {per_address}", thousands(*count), mib(memory.rss_kib), mib(memory.peak_kib))
            })
            .collect();
        let announcing: Vec<f64> = per_address.into_iter().flatten().collect();
        let average = (!announcing.is_empty()).then(|| announcing.iter().sum::<f64>() / announcing.len() as f64);
        let added = reading.announced().saturating_sub(previous.announced());
        let (growth, per_added) = if added == 0 {
            ("–".to_owned(), None)
        } else {
            let growth = reading.rss_kib() as f64 - baseline.rss_kib() as f64;
            let per_added = (reading.rss_kib() as f64 - previous.rss_kib() as f64) * 1024.0 / added as f64;
            (format!("{:+.1} MiB", growth / 1024.0), Some(per_added / reading.nodes.len() as f64))
        };
        println!(
            "| {} | {} | {} | {growth} | {} | {} |",
            thousands(reading.announced()),
            per_node.join(" | "),
            mib(reading.rss_kib()),
            average.map_or("–".to_owned(), size),
            per_added.map_or("–".to_owned(), size),
        );
        previous = reading;
    }
    println!();
    println!(
        "How the rows were made: Services created {CREATE_PARALLELISM} at a time through the API server, the \
         operator running; it allocated every address and recorded it in the pool's IPAllocationSlices, from \
         which the speakers announce. A row ends when the speakers together announce as many addresses as \
         there are Services on two polls in a row, or after {} s plus {} ms per Service added. \"Slice writes\" \
         are the API server's count of requests that wrote IPAllocationSlices during the row (applies of a new \
         slice and of slice statuses, deletes; the operator is their only writer), \"their bodies\" those \
         requests' bytes, \"pool status writes\" the applies of the pool's status (its counts and first 50 \
         entries).",
        ROW_TIMEOUT.as_secs(),
        ROW_TIMEOUT_PER_SERVICE.as_millis()
    );
    println!();
    println!(
        "| row | Services added | created in | all announced after | most announced at once | speaker Lease renewals failed | slice writes | their bodies | pool status writes |"
    );
    println!("|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for reading in readings {
        let Some(made) = &reading.made else { continue };
        println!(
            "| {} | {} | {:.1} s | {} | {} | {} | {} | {:.2} MB | {} |",
            thousands(reading.services as u64),
            thousands(made.added as u64),
            made.creating.as_secs_f64(),
            match made.complete {
                Some(took) => format!("{:.1} s", took.as_secs_f64()),
                None => format!(
                    "**not within {:.0} s**: {} of {} announced",
                    made.timeout.as_secs_f64(),
                    thousands(reading.announced()),
                    thousands(reading.services as u64)
                ),
            },
            thousands(made.most),
            thousands(made.lease_failures as u64),
            thousands(made.writes.slices as u64),
            made.writes.slice_bytes / 1e6,
            thousands(made.writes.pool_statuses as u64),
        );
    }
    println!();
}

/// `812 bytes`, `8.6 KiB`; negative when memory went down.
fn size(bytes: f64) -> String {
    if bytes.abs() < 1024.0 { format!("{bytes:.0} bytes") } else { format!("{:.1} KiB", bytes / 1024.0) }
}
