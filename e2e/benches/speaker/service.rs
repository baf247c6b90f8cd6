//! What the lab benches share: the report header (machine, date, build, command) and the one
//! dual-stack Service they measure, announced by a speaker.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use anyhow::{Result, bail};
use ironlb_e2e::{Lab, LabSession, wait_for};

use crate::host::Speaker;

/// Runs bench `name` against the lab (started, or reused if running) and ends the session,
/// keeping the lab's logs when it failed. `cargo bench -- --list` (cargo asks every bench what it
/// has) starts nothing.
pub(crate) fn in_the_lab(name: &str, run: impl FnOnce(&Lab) -> Result<()>) -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let session = LabSession::start()?;
    let result = run(session.lab());
    if let Err(error) = &result {
        eprintln!("{name} bench failed: {error:#}");
    }
    session.finish(result.is_err());
    result
}

/// The machine, date, build and command, as `docs/benchmarks.md` gives them.
pub(crate) fn print_header(lab: &Lab, bench: &str, env_prefix: &str) -> Result<()> {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, m)| m.trim()))
        .unwrap_or("unknown CPU");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let date = lab.run("date", &["-u", "+%Y-%m-%d %H:%M UTC"])?.ok()?.stdout;
    let commit = lab.run("git", &["rev-parse", "--short", "HEAD"])?.ok()?.stdout;
    let dirty = !lab.run("git", &["status", "--porcelain", "--untracked-files=no"])?.ok()?.stdout.trim().is_empty();
    let settings: Vec<String> =
        std::env::vars().filter(|(k, _)| k.starts_with(env_prefix)).map(|(k, v)| format!("{k}={v} ")).collect();

    let command = format!("cargo bench -p ironlb-e2e --bench {bench}");
    let mut title = bench.to_owned();
    title[..1].make_ascii_uppercase();
    println!("## {title} (`{command}`)");
    println!();
    println!("- Command: `{}{command}` (part of `make bench`)", settings.concat());
    println!("- Date: {}", date.trim());
    println!("- Machine: {cpus} CPUs (`nproc`), {model}, Linux {}", kernel.trim());
    println!(
        "- Build: ironlb {}{}; the lab's speakers are debug builds (`target/debug`, as the lab runs them), the \
         bench's client a release build",
        commit.trim(),
        if dirty { " with uncommitted changes" } else { "" }
    );
    println!(
        "- Lab: the client and three node namespaces on one bridge (veth pairs), sharing the cores with etcd, \
         the API server, the controller manager, both operator replicas and the bench itself"
    );
    println!();
    Ok(())
}

/// The one Service steps 1–3 measure: its addresses and the node whose speaker answers for them.
pub(crate) struct Announced {
    pub(crate) node: String,
    pub(crate) v4: Ipv4Addr,
    pub(crate) v6: Ipv6Addr,
}

/// A dual-stack Service with a ready Pod (run by the lab's kubelet stand-in), from a pool of its
/// own that one L2Advertisement announces from every node; waits until the speaker the pool
/// status names answers for both addresses, and until its take-over burst of gratuitous frames
/// is over.
pub(crate) fn announce_one_service(lab: &Lab, pool: &str, namespace: &str, ranges: [&str; 2]) -> Result<Announced> {
    lab.kubectl(&["create", "namespace", namespace])?.ok()?;
    let ranges = serde_json::to_string(&ranges)?;
    lab.apply(&format!(
        "apiVersion: ironlb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {{name: {pool}}}\nspec: {{addresses: {ranges}}}\n"
    ))?;
    lab.apply(&format!(
        "apiVersion: ironlb.io/v1alpha1\nkind: L2Advertisement\nmetadata: {{name: {pool}}}\nspec: {{ipAddressPools: [{pool}]}}\n"
    ))?;
    lab.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: {namespace}\n  labels: {{app: web}}\n  annotations: {{lab.ironlb.io/ready: \"true\"}}\nspec:\n  containers: [{{name: web, image: registry.k8s.io/pause:3.10}}]\n"
    ))?;
    lab.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: {namespace}\n  annotations: {{ironlb.io/address-pool: {pool}}}\nspec:\n  type: LoadBalancer\n  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]\n  selector: {{app: web}}\n  ports: [{{port: 80}}]\n"
    ))?;
    let (node, addresses) =
        wait_for("the pool status to name the Service's announcer", Duration::from_secs(90), || {
            let pool: serde_json::Value =
                serde_json::from_str(&lab.kubectl(&["get", "ipaddresspool", pool, "-o", "json"])?.ok()?.stdout)?;
            let entry = pool["status"]["allocations"].as_array().and_then(|entries| entries.first()).cloned();
            Ok(entry.and_then(|entry| {
                let node = entry["node"].as_str()?.to_owned();
                let ips: Vec<IpAddr> =
                    entry["ips"].as_array()?.iter().filter_map(|ip| ip.as_str()?.parse().ok()).collect();
                (ips.len() == 2).then_some((node, ips))
            }))
        })?;
    let (mut v4, mut v6) = (None, None);
    for address in addresses {
        match address {
            IpAddr::V4(a) => v4 = Some(a),
            IpAddr::V6(a) => v6 = Some(a),
        }
    }
    let (Some(v4), Some(v6)) = (v4, v6) else { bail!("the Service is not dual-stack") };
    let speaker = Speaker::of(lab, &node)?;
    wait_for(&format!("the speaker on {node} to announce both addresses"), Duration::from_secs(60), || {
        let metrics = speaker.metrics(lab)?;
        let v6_count = metrics.sum("ironlb_speaker_announced_addresses", &[("family", "ipv6")]);
        Ok((metrics.announced_v4() >= 1 && v6_count >= 1.0).then_some(()))
    })?;
    // The take-over burst (gratuitous ARP and unsolicited NA at 0, 0.5, 1.5 and 3.5 s) is over.
    std::thread::sleep(Duration::from_secs(5));
    Ok(Announced { node, v4, v6 })
}
