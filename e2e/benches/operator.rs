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

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ironlb_e2e::{LabSession, block_on, create_load_balancer_services};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::ListParams;

/// Creations in flight at once: enough to keep the API server busy without
/// tripping its max-in-flight limit (400 by default).
const CREATE_PARALLELISM: usize = 64;

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

fn run(lab: &ironlb_e2e::Lab, count: usize) -> Result<()> {
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

    let api: Api<Service> = block_on(async { Ok(Api::namespaced(lab.client().await?, "ironlb-bench")) })?;
    let started = Instant::now();
    let creating = {
        let api = api.clone();
        std::thread::spawn(move || {
            let result = block_on(create_load_balancer_services(&api, "bench", count, CREATE_PARALLELISM));
            (result, started.elapsed())
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
    let (created, creation_time) = creating.join().map_err(|_| anyhow::anyhow!("the creating thread panicked"))?;
    created?;
    let cpu = cpu_seconds(pid)? - cpu_before;
    let rss = peak_rss_kib(pid)?;

    println!("| measure | value |");
    println!("|---|--:|");
    println!("| Services | {count} |");
    println!("| baseline: API server alone, all created (no operator running) | {:.1} s |", baseline.as_secs_f64());
    println!("| with ironlb: all created | {:.1} s |", creation_time.as_secs_f64());
    println!("| ironlb: all served (from the first create) | {:.1} s |", all_served.as_secs_f64());
    println!("| ironlb: served per second | {:.0} |", count as f64 / all_served.as_secs_f64());
    println!("| leader operator CPU during the run | {cpu:.1} s |");
    println!("| leader operator peak RSS (VmHWM) | {:.1} MiB |", rss as f64 / 1024.0);
    Ok(())
}

fn wait_for_leader(lab: &ironlb_e2e::Lab) -> Result<()> {
    ironlb_e2e::wait_for("an operator leader", Duration::from_secs(60), || {
        let leader = lab.run("e2e/lab/operator.sh", &["leader"])?.ok()?.stdout;
        Ok(matches!(leader.trim(), "0" | "1").then_some(()))
    })
}

fn ingress(svc: &Service) -> Option<String> {
    svc.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?.first()?.ip.clone()
}

/// User plus system CPU time of `pid`, from /proc/PID/stat (in clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it are plain.
    let fields: Vec<&str> = stat.rsplit_once(')').context("a malformed stat")?.1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

/// Peak resident memory of `pid` in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).context("an empty VmHWM")?.parse()?)
}
