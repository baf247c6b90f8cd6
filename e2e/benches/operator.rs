//! Control-plane benchmark: how long until N LoadBalancer Services created
//! at once all have an address, and what the leading operator costs in
//! memory and CPU. The baseline, in the same run, is the same N Services
//! created with no operator running: what the lab's API server can take at
//! all, and so the floor for ironlb.
//!
//! `cargo bench -p ironlb-e2e --bench operator` (`make bench`); N is
//! `BENCH_SERVICES` (default 10,000). It starts the lab (or reuses one),
//! uses a throwaway namespace and pool (10.0.0.0/8: addresses only handed
//! out, never sent to), and removes them afterwards.
//!
//! Beside the operator's own cost it reports the API server's side of the run, from the API
//! server's `/metrics` (`apiserver_request_total`, `apiserver_request_body_size_bytes`) read
//! before the first create, when creation ends, when every Service has an address and 10 s
//! later: requests and request-body bytes per Service for each resource ironlb writes, ironlb's
//! request rate once idle again, and the API server's CPU time.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ironlb_e2e::{Daemon, Lab, LabSession, Metrics, block_on, cpu_seconds, create_load_balancer_services};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::ListParams;

/// Creations in flight at once: enough to keep the API server busy without
/// tripping its max-in-flight limit (400 by default).
const CREATE_PARALLELISM: usize = 64;

/// The API resources ironlb's operator and speakers read and write. The API server's counters
/// have no client label: `leases` and `events` also count kube-controller-manager's and the
/// lab kubelet's (the idle window shows that background).
const IRONLB_RESOURCES: [&str; 5] = ["ipaddresspools", "ipallocationslices", "l2advertisements", "leases", "events"];
/// How long after every Service has an address the API server is watched for being idle again.
const IDLE_WINDOW: Duration = Duration::from_secs(10);

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo bench -- --list` asks benches what they have
    }
    let count: usize = std::env::var("BENCH_SERVICES").ok().map(|v| v.parse()).transpose()?.unwrap_or(10_000);
    let session = LabSession::start()?;
    let lab = session.lab().clone();
    let result = run(&lab, count);
    for replica in ["0", "1"] {
        // A failed run may have left them stopped.
        if lab.run("curl", &["-fsS", &format!("http://127.0.0.1:{}/healthz", 17472 + replica.parse::<u16>()?)])?.success
        {
            continue;
        }
        let _ = lab.run("e2e/lab/operator.sh", &["start", replica]);
    }
    let _ = lab.kubectl(&["delete", "namespace", "ironlb-bench", "--ignore-not-found", "--timeout=600s"]);
    let _ = lab.kubectl(&["delete", "ipaddresspool", "ironlb-bench", "--ignore-not-found"]);
    session.finish(result.is_err());
    result
}

fn run(lab: &Lab, count: usize) -> Result<()> {
    // Baseline: the API server alone.
    for replica in ["0", "1"] {
        lab.run("e2e/lab/operator.sh", &["stop", replica])?.ok()?;
    }
    lab.kubectl(&["create", "namespace", "ironlb-bench-baseline"])?.ok()?;
    let baseline_api: Api<Service> =
        block_on(async { Ok(Api::namespaced(lab.client().await?, "ironlb-bench-baseline")) })?;
    let started = Instant::now();
    block_on(create_load_balancer_services(&baseline_api, "bench", count, CREATE_PARALLELISM))?;
    let baseline = started.elapsed();
    lab.kubectl(&["delete", "namespace", "ironlb-bench-baseline", "--timeout=600s"])?.ok()?;
    for replica in ["0", "1"] {
        lab.run("e2e/lab/operator.sh", &["start", replica])?.ok()?;
    }
    wait_for_leader(lab)?;

    lab.apply("apiVersion: ironlb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: ironlb-bench}\nspec: {addresses: [10.0.0.0/8]}\n")?;
    lab.kubectl(&["create", "namespace", "ironlb-bench"])?.ok()?;
    let leader = lab.run("e2e/lab/operator.sh", &["leader"])?.ok()?.stdout.trim().to_owned();
    let pid = std::fs::read_to_string(lab.root().join(format!("e2e/.lab/pids/operator-{leader}.pid")))?
        .split_whitespace()
        .next()
        .context("an empty PID file")?
        .parse::<u32>()?;
    let cpu_before = cpu_seconds(pid)?;
    let apiserver = Daemon::of(lab, "kube-apiserver", "kube-apiserver")?;

    let api: Api<Service> = block_on(async { Ok(Api::namespaced(lab.client().await?, "ironlb-bench")) })?;
    let before = ApiServerReading::take(lab, &apiserver)?;
    let started = Instant::now();
    let creating = {
        let (api, lab, apiserver) = (api.clone(), lab.clone(), apiserver.clone());
        std::thread::spawn(move || {
            let result = block_on(create_load_balancer_services(&api, "bench", count, CREATE_PARALLELISM));
            let elapsed = started.elapsed();
            (result, elapsed, ApiServerReading::take(&lab, &apiserver))
        })
    };
    // Poll until every Service has an address: a list every second, served
    // from the API server's watch cache (resourceVersion=0) so that the
    // benchmark's own reads cost the API server little.
    let all_served = loop {
        std::thread::sleep(Duration::from_secs(1));
        let services = block_on(async { Ok(api.list(&ListParams::default().match_any()).await?.items) })?;
        let addresses: Vec<String> = services.iter().filter_map(ingress).collect();
        let served = addresses.len();
        if services.len() == count && served == count {
            let distinct: BTreeSet<&String> = addresses.iter().collect();
            ensure!(distinct.len() == count, "{} distinct addresses for {count} Services", distinct.len());
            break started.elapsed();
        }
        ensure!(started.elapsed() < Duration::from_secs(900), "only {served} of {count} served after 15 minutes");
    };
    let all_served_reading = ApiServerReading::take(lab, &apiserver)?;
    let (created, creation_time, created_reading) =
        creating.join().map_err(|_| anyhow::anyhow!("the creating thread panicked"))?;
    created?;
    let created_reading = created_reading?;
    let cpu = cpu_seconds(pid)? - cpu_before;
    let rss = peak_rss_kib(pid)?;
    std::thread::sleep(IDLE_WINDOW.saturating_sub(all_served_reading.at.elapsed()));
    let idle_reading = ApiServerReading::take(lab, &apiserver)?;

    println!("| measure | value |");
    println!("|---|--:|");
    println!("| Services | {count} |");
    println!("| baseline: API server alone, all created (no operator running) | {:.1} s |", baseline.as_secs_f64());
    println!("| with ironlb: all created | {:.1} s |", creation_time.as_secs_f64());
    println!("| ironlb: all served (from the first create) | {:.1} s |", all_served.as_secs_f64());
    println!("| ironlb: served per second | {:.0} |", count as f64 / all_served.as_secs_f64());
    println!("| leader operator CPU during the run | {cpu:.1} s |");
    println!("| leader operator peak RSS (VmHWM) | {:.1} MiB |", rss as f64 / 1024.0);
    print_api_server_side(count, [&before, &created_reading, &all_served_reading, &idle_reading]);
    Ok(())
}

/// What the API server had counted at one moment of the run: its `/metrics` and its CPU time.
struct ApiServerReading {
    metrics: Metrics,
    cpu_seconds: f64,
    at: Instant,
}

impl ApiServerReading {
    fn take(lab: &Lab, apiserver: &Daemon) -> Result<Self> {
        let text = lab.kubectl(&["get", "--raw", "/metrics"])?.ok()?.stdout;
        Ok(Self { metrics: Metrics::parse(&text), cpu_seconds: apiserver.cpu_seconds()?, at: Instant::now() })
    }

    /// Requests for `resource` answered so far (every verb and code); and of those, the ones not
    /// answered with 2xx.
    fn requests(&self, resource: &str) -> (f64, f64) {
        let samples = self.metrics.samples().iter().filter(|sample| {
            sample.name == "apiserver_request_total" && sample.labels.get("resource").is_some_and(|r| r == resource)
        });
        samples.fold((0.0, 0.0), |(all, failed), sample| {
            let ok = sample.labels.get("code").is_some_and(|code| code.starts_with('2'));
            (all + sample.value, failed + if ok { 0.0 } else { sample.value })
        })
    }

    /// Bytes of the request bodies (create, update, patch, delete) for `resource` so far.
    fn body_bytes(&self, resource: &str) -> f64 {
        self.metrics.sum("apiserver_request_body_size_bytes_sum", &[("resource", resource)])
    }
}

/// The API server's side of the run, from readings taken before the first create, when creation
/// ended, when every Service had an address, and [`IDLE_WINDOW`] after that.
fn print_api_server_side(count: usize, [before, created, served, idle]: [&ApiServerReading; 4]) {
    let idle_seconds = idle.at.duration_since(served.at).as_secs_f64();
    println!("| API server CPU while creating | {:.1} s |", created.cpu_seconds - before.cpu_seconds);
    println!(
        "| API server CPU from the first create until all served | {:.1} s |",
        served.cpu_seconds - before.cpu_seconds
    );
    println!(
        "| API server CPU in the {idle_seconds:.0} s after all served (idle again) | {:.2} s |",
        idle.cpu_seconds - served.cpu_seconds
    );
    println!();
    println!(
        "API server requests and request-body bytes for ironlb's resources, from the first create until all {count}          Services were served (`apiserver_request_total`, `apiserver_request_body_size_bytes_sum`; every verb and          code; `leases` and `events` include kube-controller-manager's and the lab kubelet's, which the idle rate          shows):"
    );
    println!();
    println!(
        "| resource | requests while creating | requests until all served | requests per Service | non-2xx |          request bytes per Service | requests/s in the {idle_seconds:.0} s after |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|");
    let mut total = [0.0; 6];
    for resource in IRONLB_RESOURCES {
        let (before_all, before_failed) = before.requests(resource);
        let (created_all, _) = created.requests(resource);
        let (served_all, served_failed) = served.requests(resource);
        let (idle_all, _) = idle.requests(resource);
        let row = [
            created_all - before_all,
            served_all - before_all,
            (served_all - before_all) / count as f64,
            served_failed - before_failed,
            (served.body_bytes(resource) - before.body_bytes(resource)) / count as f64,
            (idle_all - served_all) / idle_seconds,
        ];
        for (sum, value) in total.iter_mut().zip(row) {
            *sum += value;
        }
        print_resource_row(resource, row);
    }
    print_resource_row("**total**", total);
}

fn print_resource_row(resource: &str, [creating, run, per_service, failed, bytes, idle_rate]: [f64; 6]) {
    println!(
        "| {resource} | {creating:.0} | {run:.0} | {per_service:.3} | {failed:.0} | {bytes:.0} B | {idle_rate:.1} |"
    );
}

fn wait_for_leader(lab: &Lab) -> Result<()> {
    ironlb_e2e::wait_for("an operator leader", Duration::from_secs(60), || {
        let leader = lab.run("e2e/lab/operator.sh", &["leader"])?.ok()?.stdout;
        Ok(matches!(leader.trim(), "0" | "1").then_some(()))
    })
}

fn ingress(svc: &Service) -> Option<String> {
    svc.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?.first()?.ip.clone()
}

/// Peak resident memory of `pid` in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).context("an empty VmHWM")?.parse()?)
}
