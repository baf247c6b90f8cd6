//! Speaker benchmark: the lab's ironlb speakers on the wire, each figure beside a baseline
//! measured in the same run.
//!
//! 1. time to an ARP / NDP answer from the client namespace, the speaker's vs the node kernel's
//!    own (for the node's LAN address, on the same interface): [`latency`];
//! 2. ARP requests per second answered without loss, and the speaker's CPU doing it, against the
//!    kernel at the same rates: [`rate`];
//! 3. the speaker's CPU while iperf3 pushes unrelated traffic through its interface, against
//!    idle: [`traffic`];
//! 4. the speakers' memory with 0, 1, 100, 1,000 and 10,000 announced addresses, every one
//!    allocated and recorded by the lab's operator: [`memory`].
//!
//! `cargo bench -p ironlb-e2e --bench speaker` (`make bench`) starts the lab (or reuses one) and
//! prints a markdown report on stdout, progress on stderr. Everything it makes (namespaces,
//! pools, L2Advertisements, iperf3 servers) is removed at the end, also on failure. Its frames go
//! only between the lab's namespaces; the 10,000 addresses of step 4 are never sent to.
//!
//! Settings (environment): `BENCH_SPEAKER_REQUESTS` requests per target in step 1 (2,000),
//! `BENCH_SPEAKER_ADDRESSES` Services in the last row of step 4 (10,000),
//! `BENCH_SPEAKER_ENDPOINTS` how step 4 gives them endpoints (`slices`, the default, or
//! `selector`), `BENCH_SPEAKER_STEPS` the steps to run (`latency,rate,traffic,memory`).

#[path = "speaker/host.rs"]
mod host;
#[path = "speaker/latency.rs"]
mod latency;
#[path = "speaker/memory.rs"]
mod memory;
#[path = "speaker/rate.rs"]
mod rate;
#[path = "speaker/report.rs"]
mod report;
#[path = "speaker/service.rs"]
mod service;
#[path = "speaker/traffic.rs"]
mod traffic;
#[path = "speaker/wire.rs"]
mod wire;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ironlb_e2e::{Cleanup, Lab};

use crate::host::{Hosts, Speaker};

/// Steps 1–3 measure one dual-stack Service from this pool, in the lab's VIP ranges but clear
/// of the `.10`–`.49` the e2e suite uses.
const VIP_POOL: &str = "ironlb-bench-speaker-vip";
const VIP_NAMESPACE: &str = "ironlb-bench-speaker-vip";
const VIP_RANGES: [&str; 2] = ["192.168.2.60-192.168.2.69", "fd6c:6a7e:5f2b:2::60-fd6c:6a7e:5f2b:2::69"];

struct Settings {
    requests: usize,
    addresses: usize,
    endpoints: memory::Endpoints,
    steps: Vec<String>,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let number = |name: &str, default: usize| -> Result<usize> {
            std::env::var(name)
                .ok()
                .map(|v| v.parse().with_context(|| format!("{name}={v}")))
                .transpose()
                .map(|v| v.unwrap_or(default))
        };
        let steps = std::env::var("BENCH_SPEAKER_STEPS").unwrap_or_else(|_| "latency,rate,traffic,memory".to_owned());
        let steps: Vec<String> = steps.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        for step in &steps {
            ensure!(
                ["latency", "rate", "traffic", "memory"].contains(&step.as_str()),
                "BENCH_SPEAKER_STEPS: unknown step {step:?}"
            );
        }
        Ok(Self {
            requests: number("BENCH_SPEAKER_REQUESTS", 2_000)?,
            addresses: number("BENCH_SPEAKER_ADDRESSES", 10_000)?,
            endpoints: memory::Endpoints::from_env()?,
            steps,
        })
    }

    fn runs(&self, step: &str) -> bool {
        self.steps.iter().any(|s| s == step)
    }
}

fn main() -> Result<()> {
    service::in_the_lab("speaker", |lab| run(lab, &Settings::from_env()?))
}

fn run(lab: &Lab, settings: &Settings) -> Result<()> {
    let started = Instant::now();
    let hosts = Hosts::read(lab)?;
    // A run cut short (Ctrl-C) may have left its objects behind: start from none.
    drop(everything_the_bench_makes(lab));
    for node in &hosts.nodes {
        let announced = Speaker::of(lab, &node.name)?.metrics(lab)?.announced_v4();
        ensure!(
            announced == 0,
            "the speaker on {} announces {announced} addresses already: other pools exist",
            node.name
        );
    }
    service::print_header(lab, "speaker", "BENCH_SPEAKER_")?;

    if ["latency", "rate", "traffic"].iter().any(|step| settings.runs(step)) {
        let teardown = everything_the_bench_makes(lab);
        let announced = service::announce_one_service(lab, VIP_POOL, VIP_NAMESPACE, VIP_RANGES)?;
        eprintln!("{} / {} announced by {}", announced.v4, announced.v6, announced.node);
        if settings.runs("latency") {
            latency::run(&hosts, &announced, settings.requests)?;
        }
        if settings.runs("rate") {
            rate::run(lab, &hosts, &announced)?;
        }
        if settings.runs("traffic") {
            traffic::run(lab, &hosts, &announced.node)?;
        }
        drop(teardown);
    }
    if settings.runs("memory") {
        memory::run(lab, &hosts, settings.addresses, settings.endpoints)?;
    }
    println!("The whole run took {:.1} min.", started.elapsed().as_secs_f64() / 60.0);
    Ok(())
}

/// A guard over every object the bench makes (whether made yet or not).
fn everything_the_bench_makes(lab: &Lab) -> Teardown {
    let mut teardown = Teardown::new(lab);
    teardown.namespace(VIP_NAMESPACE);
    teardown.namespace(memory::NAMESPACE);
    teardown.object(&format!("l2advertisement/{VIP_POOL}"));
    teardown.object(&format!("ipaddresspool/{VIP_POOL}"));
    teardown.object(&format!("l2advertisement/{}", memory::POOL));
    teardown.object(&format!("ipaddresspool/{}", memory::POOL));
    teardown
}

/// Deletes what the bench made when dropped, pass or fail: namespaces first, waiting until their
/// Services are gone (10,000 take minutes), then the cluster-scoped objects, so no Service is
/// ever moved to another pool on the way out.
pub(crate) struct Teardown {
    cleanup: Cleanup,
}

impl Teardown {
    pub(crate) fn new(lab: &Lab) -> Self {
        Self { cleanup: lab.cleanup() }
    }

    pub(crate) fn namespace(&mut self, name: &str) {
        self.cleanup.adopt_namespace(name);
    }

    /// `kind/name` of a cluster-scoped object.
    pub(crate) fn object(&mut self, object: &str) {
        self.cleanup.object(object);
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        let started = Instant::now();
        // 10,000 Services take minutes to delete.
        self.cleanup.delete_now(Duration::from_secs(900));
        if started.elapsed() > Duration::from_secs(5) {
            eprintln!("cleanup took {:.1} s", started.elapsed().as_secs_f64());
        }
    }
}
