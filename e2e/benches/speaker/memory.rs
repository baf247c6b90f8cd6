//! Step 4, what an announced address costs a speaker in memory: each speaker's resident set with 0,
//! 1, 100 and N (10,000) Services announced, the speakers sharing them out as the announcer
//! function decides.
//!
//! A speaker announces an address only when its Service has a ready endpoint, and a pool status
//! lists ~3,100 allocations at most (the object size limit), so the Services are spread over four
//! pools of 2,560 addresses in `10.64.0.0/12` (handed out, never sent to) and each gets a ready
//! endpoint the cheapest way the lab allows (see [`Endpoints`]). Past 1,000 Services the bench
//! records the allocations itself, the operator stopped (see [`run`] for why). The speakers are
//! restarted first, so the baseline is a speaker that has announced nothing since it started.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use ironlb_e2e::{Lab, block_on, create_retrying};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;

use crate::Teardown;
use crate::host::{Hosts, Memory, Metrics, Speaker};
use crate::report::{mib, thousands};

pub(crate) const NAMESPACE: &str = "ironlb-bench-speaker";
/// Pools `ironlb-bench-speaker-0` … `-3`; Service n takes its address from pool n mod 4.
pub(crate) const POOL_PREFIX: &str = "ironlb-bench-speaker";
const POOLS: usize = 4;
/// Addresses per pool: `10.<64+k>.0.0` to `10.<64+k>.9.255`.
const POOL_SIZE: u32 = 2_560;
const L2_ADVERTISEMENT: &str = "ironlb-bench-speaker";
/// The label of the one Pod every Service selects under [`Endpoints::Selector`].
const APP: &str = "ironlb-bench-speaker";
/// Creations in flight at once (as the operator bench).
const CREATE_PARALLELISM: usize = 64;
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
}

pub(crate) fn run(lab: &Lab, hosts: &Hosts, largest: usize, endpoints: Endpoints) -> Result<()> {
    ensure!(largest <= POOLS * 2_500, "at most {} Services fit the pools' listings", POOLS * 2_500);
    let nodes: Vec<String> = hosts.nodes.iter().map(|node| node.name.clone()).collect();
    let mut teardown = Teardown::new(lab);
    teardown.namespace(NAMESPACE);
    teardown.object(&format!("l2advertisement/{L2_ADVERTISEMENT}"));
    for pool in 0..POOLS {
        teardown.object(&format!("ipaddresspool/{POOL_PREFIX}-{pool}"));
    }

    eprintln!("memory: restarting the speakers");
    for node in &nodes {
        lab.run("e2e/lab/speaker.sh", &["restart", node])?.ok()?;
    }
    std::thread::sleep(SETTLE);
    let speakers = nodes.iter().map(|node| Speaker::of(lab, node)).collect::<Result<Vec<_>>>()?;
    let mut readings = vec![read(lab, &speakers, 0)?];
    ensure!(readings[0].nodes.iter().all(|(_, count, _)| *count == 0), "the speakers announce addresses already");

    lab.kubectl(&["create", "namespace", NAMESPACE])?.ok()?;
    for pool in 0..POOLS {
        // 2,560 addresses each: 10.64.0.0-10.64.9.255, 10.65.0.0-10.65.9.255, …
        let (first, last) = (Ipv4Addr::new(10, 64 + pool as u8, 0, 0), Ipv4Addr::new(10, 64 + pool as u8, 9, 255));
        lab.apply(&format!(
            "apiVersion: ironlb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {{name: {POOL_PREFIX}-{pool}}}\nspec: {{addresses: [{first}-{last}]}}\n"
        ))?;
    }
    let pools: Vec<String> = (0..POOLS).map(|pool| format!("{POOL_PREFIX}-{pool}")).collect();
    lab.apply(&format!(
        "apiVersion: ironlb.io/v1alpha1\nkind: L2Advertisement\nmetadata: {{name: {L2_ADVERTISEMENT}}}\nspec: {{ipAddressPools: [{}]}}\n",
        pools.join(", ")
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
        // Past ~1,000 Services the lab's operator cannot deliver in a bounded time: each of the four
        // pool statuses (~1 MB at 2,500 allocations) is re-applied as it changes, the API server
        // spends its share of the two cores on those server-side applies, and an attempt had 2,543
        // of 10,000 addresses announced 18 minutes after the operator started (2,604 pool status
        // applies, 157 MB). Such a row stops the operators and writes the pool statuses itself,
        // as the operator would (a speaker reads nothing else about an allocation), CHUNK Services
        // at a time: written all at once, 9,000 take-overs made the speakers' Lease renewals time
        // out, peers took each other's addresses, and the run had to be stopped. The row stops
        // early, and says so, as soon as a speaker fails to renew its Lease.
        let by_bench = added > BULK;
        eprintln!(
            "memory: {step} Services, addresses recorded by {}",
            if by_bench { "the bench" } else { "the operator" }
        );
        let writes_before = PoolStatusWrites::read(lab)?;
        let failures_before = lease_failures(lab, &speakers)?;
        let started = Instant::now();
        if by_bench {
            teardown.restart_operators();
            for replica in ["0", "1"] {
                lab.run("e2e/lab/operator.sh", &["stop", replica])?.ok()?;
            }
        }
        // The bench's own allocations need no endpoints: it records them as serving.
        let with_endpoints = (!by_bench).then_some(endpoints);
        let client = block_on(lab.client())?;
        block_on(create_services(client, created..step, with_endpoints, endpoint.v4, endpoint.name.clone()))?;
        let creating = started.elapsed();
        eprintln!("memory: {added} Services created in {:.1} s", creating.as_secs_f64());
        // Bounded, generously: the operator writes three objects per Service on two shared cores.
        let timeout = Duration::from_secs(120) + Duration::from_millis(100) * added as u32;
        let (mut announcing, mut stopped) = (Announcing { complete: false, most: 0 }, None);
        if by_bench {
            for chunk_start in (created..step).step_by(CHUNK) {
                let chunk_end = (chunk_start + CHUNK).min(step);
                record_allocations(lab, chunk_start..chunk_end)?;
                let chunk = wait_announced(lab, &speakers, chunk_end, Instant::now(), Duration::from_secs(180))?;
                announcing = Announcing { complete: chunk.complete, most: announcing.most.max(chunk.most) };
                let failures = lease_failures(lab, &speakers)? - failures_before;
                if failures > 0.0 || !chunk.complete {
                    stopped = Some(chunk_end);
                    eprintln!("memory: stopping at {chunk_end} Services: {failures} Lease renewals failed");
                    break;
                }
            }
        } else {
            announcing = wait_announced(lab, &speakers, step, started, timeout)?;
        }
        let complete = (announcing.complete && stopped.is_none()).then(|| started.elapsed());
        created = stopped.unwrap_or(step);
        let writes = PoolStatusWrites::read(lab)?.since(writes_before);
        let lease_failures = lease_failures(lab, &speakers)? - failures_before;
        std::thread::sleep(SETTLE);
        let mut reading = read(lab, &speakers, created)?;
        let most = announcing.most;
        reading.made =
            Some(Made { added, by_bench, creating, complete, most, timeout, writes, lease_failures, stopped });
        readings.push(reading);
        if complete.is_none() {
            break;
        }
    }
    print(&readings, endpoints);
    // Dropped in reverse order: the Services first, then the namespace and pools.
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
            futures::stream::iter(0..self.count)
                .map(|n| {
                    let api = &api;
                    async move {
                        match api.delete(&format!("svc-{n:05}"), &DeleteParams::default()).await {
                            Ok(_) => Ok(()),
                            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                            Err(error) => Err(anyhow::Error::from(error)),
                        }
                    }
                })
                .buffer_unordered(CREATE_PARALLELISM)
                .try_collect::<()>()
                .await
        });
        match deleted {
            Ok(()) => eprintln!("memory: Services deleted in {:.1} s", started.elapsed().as_secs_f64()),
            Err(error) => eprintln!("memory: deleting the Services failed ({error:#}); the namespace deletion will"),
        }
    }
}

/// Rows adding more Services than this have their allocations written by the bench (see [`run`]).
const BULK: usize = 1_000;
/// Services whose allocations the bench writes at once in such a row.
const CHUNK: usize = 1_000;

/// How a row was made.
struct Made {
    added: usize,
    by_bench: bool,
    creating: Duration,
    /// From the row's first create until every address was announced, if that happened in time.
    complete: Option<Duration>,
    /// The most addresses announced at once meanwhile (see [`Announcing::most`]).
    most: u64,
    /// Lease renewals the speakers failed meanwhile.
    lease_failures: f64,
    /// Where a row the bench recorded stopped early: the Services recorded by then.
    stopped: Option<usize>,
    timeout: Duration,
    writes: PoolStatusWrites,
}

/// The API server's count of pool status writes (server-side applies) and the bytes of all pool
/// patches (its `apiserver_request_total` and `apiserver_request_body_size_bytes_sum`).
#[derive(Clone, Copy, Debug, Default)]
struct PoolStatusWrites {
    applies: f64,
    bytes: f64,
}

impl PoolStatusWrites {
    fn read(lab: &Lab) -> Result<Self> {
        let metrics = Metrics::from(lab.kubectl(&["get", "--raw", "/metrics"])?.ok()?.stdout);
        let pools = ("resource", "ipaddresspools");
        Ok(Self {
            applies: metrics.sum("apiserver_request_total", &[pools, ("subresource", "status"), ("verb", "APPLY")]),
            bytes: metrics.sum("apiserver_request_body_size_bytes_sum", &[pools, ("verb", "patch")]),
        })
    }

    fn since(self, before: Self) -> Self {
        Self { applies: self.applies - before.applies, bytes: self.bytes - before.bytes }
    }
}

/// Creates Services `svc-<n>` for every n of `range`, each with its ready endpoint if asked.
async fn create_services(
    client: kube::Client,
    range: Range<usize>,
    endpoints: Option<Endpoints>,
    address: Ipv4Addr,
    node: String,
) -> Result<()> {
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let slices: Api<EndpointSlice> = Api::namespaced(client, NAMESPACE);
    futures::stream::iter(range)
        .map(|n| {
            let (services, slices, node) = (&services, &slices, &node);
            async move {
                let name = format!("svc-{n:05}");
                let mut spec = json!({
                    "type": "LoadBalancer",
                    "allocateLoadBalancerNodePorts": false,
                    "ports": [{"port": 80, "targetPort": 8080}],
                });
                if endpoints == Some(Endpoints::Selector) {
                    spec["selector"] = json!({"app": APP});
                }
                let service = json!({
                    "metadata": {"name": name, "annotations": {"ironlb.io/address-pool": format!("{POOL_PREFIX}-{}", n % POOLS)}},
                    "spec": spec,
                });
                create_retrying(services, serde_json::from_value(service)?).await?;
                if endpoints == Some(Endpoints::Slices) {
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

/// Records an allocation for each Service of `range` in its pool's status, as the operator does:
/// namespace, name, one free address of the pool, `serving: true` (the speaker reads nothing
/// else; the operator's informative `node` and `interface` are left out). The entries already
/// listed stay as they are. One server-side apply per pool, under the bench's own field manager.
fn record_allocations(lab: &Lab, range: Range<usize>) -> Result<()> {
    for pool in 0..POOLS {
        let name = format!("{POOL_PREFIX}-{pool}");
        let current: serde_json::Value =
            serde_json::from_str(&lab.kubectl(&["get", "ipaddresspool", &name, "-o", "json"])?.ok()?.stdout)?;
        let mut allocations = current["status"]["allocations"].as_array().cloned().unwrap_or_default();
        let listed: BTreeSet<String> =
            allocations.iter().filter_map(|entry| entry["name"].as_str().map(str::to_owned)).collect();
        let taken: BTreeSet<String> = allocations
            .iter()
            .flat_map(|entry| entry["ips"].as_array().cloned().unwrap_or_default())
            .filter_map(|ip| ip.as_str().map(str::to_owned))
            .collect();
        let mut free = (0..POOL_SIZE)
            .map(|i| Ipv4Addr::new(10, 64 + pool as u8, (i / 256) as u8, (i % 256) as u8).to_string())
            .filter(|address| !taken.contains(address));
        for n in range.clone().filter(|n| n % POOLS == pool) {
            let service = format!("svc-{n:05}");
            if listed.contains(&service) {
                continue;
            }
            let address = free.next().with_context(|| format!("pool {name} is full"))?;
            allocations.push(json!({"namespace": NAMESPACE, "name": service, "ips": [address], "serving": true}));
        }
        let status = json!({
            "apiVersion": "ironlb.io/v1alpha1",
            "kind": "IPAddressPool",
            "metadata": {"name": name},
            "status": {"allocations": allocations},
        });
        let apply = [
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=ironlb-bench",
            "--subresource=status",
            "-f",
            "-",
        ];
        lab.kubectl_with_input(&apply, &status.to_string())?.ok()?;
    }
    Ok(())
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
/// (so a moment of overlap during a take-over is not taken for the end), or until `timeout`.
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
         speakers were restarted for this step, in brackets) and the addresses it announces \
         (`ironlb_speaker_announced_addresses`). LoadBalancer Services of one IPv4 address each, spread over \
         four pools of 2,560 addresses in `10.64.0.0/12`, announced from every node; endpoints: {}. Growth is \
         over the row with 0 addresses: the same three processes after their restart. \"Per added address\" \
         divides the growth since the row above by the addresses added since; the first address also pays for \
         announcing at all (sockets, receive tasks). Every speaker reads every pool's allocations, announced \
         by it or not, so the per-address cost is shown for all speakers together and per speaker.",
        SETTLE.as_secs(),
        endpoints.describe()
    );
    println!();
    let names: Vec<&str> = baseline.nodes.iter().map(|(name, _, _)| name.as_str()).collect();
    println!(
        "| announced | {} | sum of VmRSS | growth over 0 | per added address, all speakers | per added address, per speaker |",
        names.iter().map(|n| format!("{n}: addresses, VmRSS (VmHWM)")).collect::<Vec<_>>().join(" | ")
    );
    println!("|--:|{}--:|--:|--:|--:|", "--:|".repeat(names.len()));
    let mut previous = baseline;
    for reading in readings {
        let per_node: Vec<String> = reading
            .nodes
            .iter()
            .map(|(_, count, memory)| {
                format!("{}, {} ({})", thousands(*count), mib(memory.rss_kib), mib(memory.peak_kib))
            })
            .collect();
        let added = reading.announced().saturating_sub(previous.announced());
        let (growth, per_added) = if added == 0 {
            ("–".to_owned(), None)
        } else {
            let growth = reading.rss_kib() as f64 - baseline.rss_kib() as f64;
            let per_added = (reading.rss_kib() as f64 - previous.rss_kib() as f64) * 1024.0 / added as f64;
            (format!("{:+.1} MiB", growth / 1024.0), Some(per_added))
        };
        println!(
            "| {} | {} | {} | {growth} | {} | {} |",
            thousands(reading.announced()),
            per_node.join(" | "),
            mib(reading.rss_kib()),
            per_added.map_or("–".to_owned(), size),
            per_added.map_or("–".to_owned(), |bytes| size(bytes / reading.nodes.len() as f64)),
        );
        previous = reading;
    }
    println!();
    println!(
        "How the rows were made: Services created {CREATE_PARALLELISM} at a time through the API server. Up to {} \
         Services a row, the operator allocated and recorded the addresses (\"pool status writes\" are the API \
         server's counts of server-side applies to pool statuses, and the bytes of all pool patches). A larger \
         row stops both operator replicas, creates the Services without endpoints and writes the allocations \
         into the pool statuses itself, {} Services at a time (an apply per pool: namespace, name, address, \
         `serving: true`, without the operator's informative `node` and `interface`), waiting for each chunk \
         to be announced and stopping at the first failed speaker Lease renewal, because the lab's operator \
         does not get there in bounded time. The speakers decide and announce on their own either way.",
        thousands(BULK as u64),
        thousands(CHUNK as u64)
    );
    println!();
    println!(
        "| row | Services added | addresses recorded by | created in | all announced after | most announced at once | speaker Lease renewals failed | pool status writes | their bodies |"
    );
    println!("|--:|--:|---|--:|--:|--:|--:|--:|--:|");
    for reading in readings {
        let Some(made) = &reading.made else { continue };
        println!(
            "| {} | {} | {} | {:.1} s | {} | {} | {} | {} | {:.1} MB |",
            thousands(reading.services as u64),
            thousands(made.added as u64),
            if made.by_bench { "the bench (operators stopped)" } else { "the operator" },
            made.creating.as_secs_f64(),
            match (made.complete, made.stopped) {
                (Some(took), _) => format!("{:.1} s", took.as_secs_f64()),
                (None, Some(stopped)) => format!(
                    "**stopped after {} Services** (a speaker failed to renew its Lease): {} announced",
                    thousands(stopped as u64),
                    thousands(reading.announced())
                ),
                (None, None) => format!(
                    "**not within {:.0} s**: {} of {} announced",
                    made.timeout.as_secs_f64(),
                    thousands(reading.announced()),
                    thousands(reading.services as u64)
                ),
            },
            thousands(made.most),
            thousands(made.lease_failures as u64),
            thousands(made.writes.applies as u64),
            made.writes.bytes / 1e6,
        );
    }
    println!();
}

/// `812 bytes`, `8.6 KiB`; negative when memory went down.
fn size(bytes: f64) -> String {
    if bytes.abs() < 1024.0 { format!("{bytes:.0} bytes") } else { format!("{:.1} KiB", bytes / 1024.0) }
}
