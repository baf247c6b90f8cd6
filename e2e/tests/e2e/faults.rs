//! The data plane under faults, injected with the lab's own commands (`e2e/lab/fault.sh`, which
//! a person can run too): a speaker crashing or stopping, a node's LAN link going down, the
//! control plane going away, a node cut off from the API server, a foreign host claiming an
//! address or flooding the LAN with claims of one, a speaker restarting. Timings are printed for people; the assertions are about what
//! a client sees (who answers, whether requests get through), with generous bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use ironlb_e2e::{Daemon, Lab, wait_for};

use crate::Test;
use crate::support::{SETTLE, allocation, events, pod, service, setup, wait_announcer, wait_event, wait_ingress};
use crate::wire::{
    Capture, arping, curl, mac_of, ndisc6, saw_gratuitous_arp, saw_unsolicited_na, wait_arping, wait_curl,
};

pub(crate) const TESTS: &[Test] = &[
    (
        "faults::crash_of_the_announcer_moves_both_families_with_gratuitous_frames",
        crash_of_the_announcer_moves_both_families_with_gratuitous_frames,
    ),
    (
        "faults::graceful_stop_hands_over_without_a_gap_clients_notice",
        graceful_stop_hands_over_without_a_gap_clients_notice,
    ),
    ("faults::link_down_on_the_announcer_moves_the_address", link_down_on_the_announcer_moves_the_address),
    (
        "faults::control_plane_outage_keeps_every_address_answered_and_moves_nothing",
        control_plane_outage_keeps_every_address_answered_and_moves_nothing,
    ),
    (
        "faults::node_cut_off_from_the_api_is_replaced_and_stops_answering",
        node_cut_off_from_the_api_is_replaced_and_stops_answering,
    ),
    (
        "faults::foreign_host_claiming_an_address_is_reported_and_a_probe_finds_one_in_use",
        foreign_host_claiming_an_address_is_reported_and_a_probe_finds_one_in_use,
    ),
    (
        "faults::stalled_control_plane_leaves_both_operators_running_and_one_leading",
        stalled_control_plane_leaves_both_operators_running_and_one_leading,
    ),
    (
        "faults::a_flood_of_claims_from_alternating_macs_is_one_conflict_and_answers_go_on",
        a_flood_of_claims_from_alternating_macs_is_one_conflict_and_answers_go_on,
    ),
    (
        "faults::restarting_the_announcing_speaker_or_the_operator_moves_nothing",
        restarting_the_announcing_speaker_or_the_operator_moves_nothing,
    ),
];

const VIP4: &str = "192.168.2.10";
const VIP6: &str = "fd6c:6a7e:5f2b:2::10";

/// Runs `e2e/lab/fault.sh` with `args`.
fn fault(lab: &Lab, args: &[&str]) -> Result<()> {
    lab.run("e2e/lab/fault.sh", args)?.ok()?;
    Ok(())
}

/// Undoes a fault at the end of a test, also when it fails half-way.
struct Undo<'a> {
    lab: &'a Lab,
    args: Vec<String>,
}

impl<'a> Undo<'a> {
    fn new(lab: &'a Lab, args: &[&str]) -> Self {
        Self { lab, args: args.iter().map(|a| (*a).to_owned()).collect() }
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        if let Err(error) = fault(self.lab, &args) {
            eprintln!("undoing the fault with fault.sh {args:?} failed: {error:#}");
        }
    }
}

/// A dual-stack Service `web` with one ready Pod, announced; returns its announcer.
fn announced_web(lab: &Lab, ns: &str) -> Result<String> {
    lab.apply(&pod(ns, "web-1", "web", None, true))?;
    lab.apply(&service(ns, "web", &[], "ipFamilyPolicy: RequireDualStack\nipFamilies: [IPv4, IPv6]"))?;
    wait_ingress(lab, ns, "web", &[VIP4, VIP6])?;
    let (node, _) = wait_announcer(lab, ns, ns, "web", None)?;
    wait_arping(lab, VIP4, &mac_of(lab, &node)?)?;
    Ok(node)
}

/// A client requesting `url` every 50 ms in the background, recording when requests succeed.
struct Requests {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<(Instant, bool)>>>,
}

impl Requests {
    fn start(lab: &Lab, url: &str) -> Self {
        let (stop, lab, url) = (Arc::new(AtomicBool::new(false)), lab.clone(), url.to_owned());
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut outcomes = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let client = lab.var("LAB_CLIENT").unwrap_or("ironlb-client").to_owned();
                let ok =
                    lab.in_netns(&client, &["curl", "-sS", "-g", "--max-time", "1", &url]).is_ok_and(|out| out.success);
                outcomes.push((Instant::now(), ok));
                std::thread::sleep(Duration::from_millis(50));
            }
            outcomes
        });
        Self { stop, thread: Some(thread) }
    }

    /// Stops and returns the longest stretch without a successful request, after `from`.
    fn longest_gap(mut self, from: Instant) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        let outcomes = self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default();
        let mut last_ok = from;
        let mut gap = Duration::ZERO;
        for (at, ok) in outcomes.into_iter().filter(|(at, _)| *at >= from) {
            if ok {
                gap = gap.max(at.duration_since(last_ok));
                last_ok = at;
            }
        }
        gap
    }
}

impl Drop for Requests {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits until `url` answers from a node other than `not`; returns that node and how long it took.
fn wait_served_elsewhere(lab: &Lab, url: &str, not: &str, since: Instant) -> Result<(String, Duration)> {
    let mut last = String::new();
    wait_for(&format!("{url} to be served by a node other than {not}"), SETTLE, || {
        last = curl(lab, url).unwrap_or_default();
        Ok((!last.is_empty() && last != not).then(|| (last.clone(), since.elapsed())))
    })
    .with_context(|| format!("last answer: {last:?}"))
}

fn crash_of_the_announcer_moves_both_families_with_gratuitous_frames(lab: &Lab) -> Result<()> {
    let ns = "e2e-fault-crash";
    let _cleanup = setup(lab, ns, "")?;
    let node = announced_web(lab, ns)?;
    let capture = Capture::start(lab)?;
    let _restart = Undo::new(lab, &["start", &node]);
    let crashed = Instant::now();
    fault(lab, &["kill", &node])?;
    let (moved, v4_after) = wait_served_elsewhere(lab, &format!("http://{VIP4}/"), &node, crashed)?;
    let (_, v6_after) = wait_served_elsewhere(lab, &format!("http://[{VIP6}]/"), &node, crashed)?;
    eprintln!("crash of {node}'s speaker: served by {moved} after {v4_after:?} (IPv4), {v6_after:?} (IPv6)");
    let mac = mac_of(lab, &moved)?;
    wait_arping(lab, VIP4, &mac)?;
    ensure!(ndisc6(lab, VIP6)?.as_deref() == Some(mac.as_str()), "ndisc6 does not resolve {VIP6} to {moved}");
    let (recorded, _) = wait_announcer(lab, ns, ns, "web", Some(&node))?;
    ensure!(recorded == moved, "the pool status names {recorded}, but {moved} answers");
    let frames = capture.finish()?;
    ensure!(saw_gratuitous_arp(&frames, &mac, VIP4), "no gratuitous ARP from {mac}:\n{frames}");
    ensure!(saw_unsolicited_na(&frames, &mac, VIP6), "no unsolicited NA from {mac}:\n{frames}");
    Ok(())
}

fn graceful_stop_hands_over_without_a_gap_clients_notice(lab: &Lab) -> Result<()> {
    let ns = "e2e-fault-stop";
    let _cleanup = setup(lab, ns, "")?;
    let node = announced_web(lab, ns)?;
    wait_curl(lab, &format!("http://{VIP4}/"), &node)?;
    let requests = Requests::start(lab, &format!("http://{VIP4}/"));
    std::thread::sleep(Duration::from_millis(500));
    let _restart = Undo::new(lab, &["start", &node]);
    let stopped = Instant::now();
    fault(lab, &["stop", &node])?;
    let (moved, after) = wait_served_elsewhere(lab, &format!("http://{VIP4}/"), &node, stopped)?;
    std::thread::sleep(Duration::from_secs(1));
    let gap = requests.longest_gap(stopped);
    eprintln!("graceful stop of {node}'s speaker: served by {moved} after {after:?}; longest gap {gap:?}");
    ensure!(gap < Duration::from_secs(2), "clients saw {gap:?} without an answer during a graceful hand-over");
    // The successor's gratuitous ARP moves the client at once, not when its cache entry expires
    // (tens of seconds): the stopped node's speaker is gone, and a real node going down next
    // would take the traffic with it.
    ensure!(after < Duration::from_secs(5), "the client reached the new announcer only after {after:?}");
    let replies = arping(lab, VIP4)?;
    let mac = mac_of(lab, &moved)?;
    ensure!(
        !replies.is_empty() && replies.iter().all(|m| *m == mac),
        "after the hand-over: {replies:?}, not only {mac}"
    );
    Ok(())
}

fn link_down_on_the_announcer_moves_the_address(lab: &Lab) -> Result<()> {
    let ns = "e2e-fault-link";
    let _cleanup = setup(lab, ns, "")?;
    let node = announced_web(lab, ns)?;
    let _up = Undo::new(lab, &["link-up", &node]);
    let down = Instant::now();
    fault(lab, &["link-down", &node])?;
    let (moved, after) = wait_served_elsewhere(lab, &format!("http://{VIP4}/"), &node, down)?;
    eprintln!("link down on {node}: served by {moved} after {after:?}");
    wait_arping(lab, VIP4, &mac_of(lab, &moved)?)?;
    let (recorded, _) = wait_announcer(lab, ns, ns, "web", Some(&node))?;
    ensure!(recorded == moved, "the pool status names {recorded}, but {moved} answers");
    Ok(())
}

/// The MAC answering each address, all of them required to answer.
fn answers(lab: &Lab, addresses: &[&str]) -> Result<Vec<String>> {
    addresses
        .iter()
        .map(|address| {
            let replies = arping(lab, address)?;
            ensure!(!replies.is_empty(), "nobody answers {address}");
            ensure!(replies.iter().all(|m| *m == replies[0]), "{address} answered by several MACs: {replies:?}");
            Ok(replies[0].clone())
        })
        .collect()
}

fn control_plane_outage_keeps_every_address_answered_and_moves_nothing(lab: &Lab) -> Result<()> {
    let ns = "e2e-fault-outage";
    let _cleanup = setup(lab, ns, "")?;
    for name in ["a", "b", "c"] {
        lab.apply(&pod(ns, &format!("{name}-1"), name, None, true))?;
        lab.apply(&service(ns, name, &[], ""))?;
    }
    let addresses = ["192.168.2.10", "192.168.2.11", "192.168.2.12"];
    for name in ["a", "b", "c"] {
        wait_announcer(lab, ns, ns, name, None)?;
    }
    let before = wait_for("every address answered", SETTLE, || Ok(answers(lab, &addresses).ok()))?;

    let _start = Undo::new(lab, &["control-plane-start"]);
    fault(lab, &["control-plane-stop"])?;
    let outage = Instant::now();
    let mut rounds = 0;
    while outage.elapsed() < Duration::from_secs(60) {
        let during = answers(lab, &addresses).context("while the control plane is down")?;
        ensure!(during == before, "an address moved while the control plane was down: {before:?} -> {during:?}");
        rounds += 1;
        std::thread::sleep(Duration::from_secs(2));
    }
    // Once more on failure, with the first error in the message: a test that leaves the control
    // plane down fails every test after it.
    if let Err(first) = fault(lab, &["control-plane-start"]) {
        fault(lab, &["control-plane-start"])
            .with_context(|| format!("starting the control plane again ({first:#})"))?;
    }
    eprintln!(
        "control plane down for {:?}: {rounds} rounds of arping, every address answered by the same node",
        outage.elapsed()
    );
    // Back: the speakers renew, the watches relist; nothing needs to move, so nothing does.
    let back = Instant::now();
    while back.elapsed() < Duration::from_secs(10) {
        let after = answers(lab, &addresses).context("after the control plane came back")?;
        ensure!(after == before, "an address moved after the control plane came back: {before:?} -> {after:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}

fn node_cut_off_from_the_api_is_replaced_and_stops_answering(lab: &Lab) -> Result<()> {
    let ns = "e2e-fault-cut";
    let _cleanup = setup(lab, ns, "")?;
    let node = announced_web(lab, ns)?;
    let _restore = Undo::new(lab, &["restore-api", &node]);
    let cut = Instant::now();
    fault(lab, &["cut-api", &node])?;
    let (moved, after) = wait_served_elsewhere(lab, &format!("http://{VIP4}/"), &node, cut)?;
    let mac = mac_of(lab, &moved)?;
    // The cut-off node heard the new announcer's gratuitous ARP and yielded: only one MAC answers.
    wait_arping(lab, VIP4, &mac)?;
    let yielded = cut.elapsed();
    for _ in 0..5 {
        let replies = arping(lab, VIP4)?;
        ensure!(replies.iter().all(|m| *m == mac), "two MACs answer {VIP4} after the cut-off: {replies:?}");
    }
    eprintln!("{node} cut off from the API: served by {moved} after {after:?}, only {moved} answers after {yielded:?}");
    Ok(())
}

fn foreign_host_claiming_an_address_is_reported_and_a_probe_finds_one_in_use(lab: &Lab) -> Result<()> {
    let ns = "e2e-fault-foreign";
    let _cleanup = setup(lab, ns, "")?;
    let _release = Undo::new(lab, &["foreign-release"]);
    let foreign_mac = "02:00:c0:a8:02:fa";
    // A host claims an address a speaker announces: reported on the Service and the pool, and
    // the speaker keeps answering.
    let node = announced_web(lab, ns)?;
    fault(lab, &["foreign-claim", VIP4])?;
    let warning = wait_event(lab, ns, "web", "AddressConflict", &[VIP4, foreign_mac])?;
    eprintln!("conflict reported: {warning}");
    let condition = wait_address_conflict(lab, ns, "AddressClaimed", &[VIP4, foreign_mac, &node, "web"])?;
    eprintln!("pool condition: {condition}");
    let metric = lab.in_netns(&node, &["curl", "-fsS", "http://127.0.0.1:7473/metrics"])?.ok()?.stdout;
    ensure!(
        metric.lines().any(|l| l.starts_with("ironlb_speaker_address_conflicts_total ") && !l.ends_with(" 0")),
        "the conflict is not counted:\n{metric}"
    );
    ensure!(arping(lab, VIP4)?.contains(&mac_of(lab, &node)?), "the speaker stopped answering for {VIP4}");
    // A host already holds an address before a Service gets it: the probe finds it, the address
    // is not announced, and the Service and the pool are told why.
    fault(lab, &["foreign-claim", "192.168.2.20"])?;
    lab.apply(&pod(ns, "taken-1", "taken", None, true))?;
    lab.apply(&service(ns, "taken", &[("ironlb.io/loadBalancerIPs", "192.168.2.20")], ""))?;
    wait_ingress(lab, ns, "taken", &["192.168.2.20"])?;
    let warning = wait_event(lab, ns, "taken", "AddressInUse", &["192.168.2.20", foreign_mac])?;
    eprintln!("probe: {warning}");
    wait_address_conflict(lab, ns, "AddressInUse", &["192.168.2.20", foreign_mac, "not announced"])?;
    let replies = arping(lab, "192.168.2.20")?;
    ensure!(replies.iter().all(|m| m == foreign_mac), "a speaker answers for an address in use: {replies:?}");
    ensure!(events(lab, ns, "taken", "Announcing")?.is_empty(), "an address in use was announced");
    // The host leaves: the re-checks go unanswered, the conflicts end, the address in use is
    // announced after its next probe, and the pool condition clears.
    fault(lab, &["foreign-release"])?;
    wait_for("the AddressConflict condition to clear", Duration::from_secs(90), || {
        Ok(address_conflict(lab, ns)?.filter(|(status, ..)| status == "False"))
    })?;
    wait_event(lab, ns, "taken", "Announcing", &["192.168.2.20"])?;
    Ok(())
}

/// The `AddressConflict` condition of pool `pool`: status, reason, message.
fn address_conflict(lab: &Lab, pool: &str) -> Result<Option<(String, String, String)>> {
    let out = lab.kubectl(&["get", "ipaddresspool", pool, "-o", "json"])?.ok()?;
    let pool: serde_json::Value = serde_json::from_str(&out.stdout)?;
    let conditions = pool["status"]["conditions"].as_array().cloned().unwrap_or_default();
    Ok(conditions.iter().find(|c| c["type"] == "AddressConflict").map(|c| {
        let text = |field: &str| c[field].as_str().unwrap_or_default().to_owned();
        (text("status"), text("reason"), text("message"))
    }))
}

/// Waits until pool `pool` has `AddressConflict=True` with `reason` and a message saying `says`.
fn wait_address_conflict(lab: &Lab, pool: &str, reason: &str, says: &[&str]) -> Result<String> {
    let mut seen = None;
    wait_for(&format!("AddressConflict={reason} on pool {pool} saying {says:?}"), Duration::from_secs(30), || {
        seen = address_conflict(lab, pool)?;
        Ok(seen
            .clone()
            .filter(|(status, r, message)| status == "True" && r == reason && says.iter().all(|s| message.contains(s)))
            .map(|(.., message)| message))
    })
    .with_context(|| format!("the condition was {seen:?}"))
}

/// The most `AddressConflict` Warnings a flood of one address from many MACs may cause on the
/// Service holding it: the conflict's start and, once, that several hosts claim the address
/// (`speaker/src/conflicts.rs`); every further claimer is the same conflict.
const FLOOD_WARNINGS: usize = 2;

/// The value of one series (name and labels, as exported) in a `/metrics` text; 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

fn a_flood_of_claims_from_alternating_macs_is_one_conflict_and_answers_go_on(lab: &Lab) -> Result<()> {
    let ns = "e2e-fault-flood";
    let _cleanup = setup(lab, ns, "")?;
    let _release = Undo::new(lab, &["foreign-release"]);
    let node = announced_web(lab, ns)?;
    let mac = mac_of(lab, &node)?;
    let speaker = Daemon::of(lab, &format!("speaker-{node}"), "ironlb-speaker")?;
    let announcing_before = events(lab, ns, "web", "Announcing")?.len();

    // 1,000 gratuitous ARP a second for VIP4 from 8 alternating MACs, for 10 s; meanwhile the
    // client keeps resolving VIP4 and must get the announcer's answer, and only that, each time.
    let (cpu_before, started) = (speaker.cpu_seconds()?, Instant::now());
    let flood = {
        let lab = lab.clone();
        std::thread::spawn(move || fault(&lab, &["foreign-flood", VIP4, "10", "1000"]))
    };
    let mut rounds = 0;
    while !flood.is_finished() {
        let replies = arping(lab, VIP4)?;
        ensure!(
            !replies.is_empty() && replies.iter().all(|m| *m == mac),
            "during the flood, {VIP4} was answered by {replies:?}, not {mac} ({node})"
        );
        rounds += 1;
    }
    let (cpu, took) = (speaker.cpu_seconds()? - cpu_before, started.elapsed());
    flood.join().map_err(|_| anyhow!("the flood's thread panicked"))??;
    let metrics = lab.in_netns(&node, &["curl", "-fsS", "http://127.0.0.1:7473/metrics"])?.ok()?.stdout;
    let claims = sample(&metrics, r#"ironlb_speaker_requests_ignored_total{reason="foreign_claim"}"#);
    let limited = sample(&metrics, r#"ironlb_speaker_claims_dropped_total{reason="rate_limited"}"#);
    let queue_full = sample(&metrics, r#"ironlb_speaker_claims_dropped_total{reason="queue_full"}"#);
    eprintln!(
        "flood of {VIP4} for {took:.1?}: {rounds} rounds of arping answered by {node}; its speaker used {cpu:.2} s          of CPU ({:.0}% of a core); {claims} claims seen, {limited} dropped by the rate limit, {queue_full} for a          full queue",
        100.0 * cpu / took.as_secs_f64()
    );
    ensure!(rounds >= 3, "only {rounds} rounds of arping during the flood");
    ensure!(limited >= 1000.0, "the flood was not rate-limited: {claims} claims seen, {limited} dropped");

    // After it: still answered by the announcer, the address did not move, and the flood is one
    // conflict on the Service, not an Event per frame or per MAC.
    ensure!(answers(lab, &[VIP4])? == [mac.clone()], "after the flood {VIP4} is not answered by {mac}");
    let first = wait_event(lab, ns, "web", "AddressConflict", &[VIP4])?;
    eprintln!("conflict reported: {first}");
    // Events are posted in the background: give late ones time to land before counting.
    std::thread::sleep(Duration::from_secs(5));
    let warnings = events(lab, ns, "web", "AddressConflict")?;
    ensure!(
        warnings.len() <= FLOOD_WARNINGS,
        "{} AddressConflict Events for one flood (at most {FLOOD_WARNINGS}): {warnings:?}",
        warnings.len()
    );
    let announcing = events(lab, ns, "web", "Announcing")?;
    ensure!(announcing.len() == announcing_before, "the address moved during the flood: {announcing:?}");
    // The flood poisoned the client kernel's neighbour entry for VIP4 (any host's, on a LAN
    // that accepts gratuitous ARP); ironlb does not fight it. Forget it, so the client resolves
    // VIP4 again and reaches the announcer, as it would once the entry went stale.
    let client = lab.var("LAB_CLIENT")?;
    lab.in_netns(client, &["ip", "neigh", "flush", "to", VIP4])?.ok()?;
    wait_curl(lab, &format!("http://{VIP4}/"), &node)?;
    Ok(())
}

fn restarting_the_announcing_speaker_or_the_operator_moves_nothing(lab: &Lab) -> Result<()> {
    let ns = "e2e-fault-restart";
    let _cleanup = setup(lab, ns, "")?;
    let node = announced_web(lab, ns)?;
    let mac = mac_of(lab, &node)?;
    let announcing_before = events(lab, ns, "web", "Announcing")?.len();
    // A crash and an immediate restart, as a container restart: back before its Lease expires.
    let _restart = Undo::new(lab, &["start", &node]);
    fault(lab, &["kill", &node])?;
    fault(lab, &["start", &node])?;
    // The operator's leader restarts too.
    lab.run("e2e/lab/operator.sh", &["kill", "0"])?;
    lab.run("e2e/lab/operator.sh", &["start", "0"])?;
    for _ in 0..10 {
        let replies = arping(lab, VIP4)?;
        ensure!(!replies.is_empty() && replies.iter().all(|m| *m == mac), "{VIP4} moved or went silent: {replies:?}");
    }
    let entry = allocation(lab, ns, ns, "web")?.context("allocation")?;
    ensure!(entry["node"] == node.as_str(), "the pool status moved the announcer: {entry}");
    let announcing: Vec<String> = events(lab, ns, "web", "Announcing")?;
    ensure!(
        announcing.iter().skip(announcing_before).all(|event| event.contains(&node)),
        "another node announced during the restarts: {announcing:?}"
    );
    Ok(())
}

/// The PID of each operator replica, from the lab's pid files (`<pid> <start time>`: the pair
/// names one process, even if the PID were reused).
fn operator_pids(lab: &Lab) -> Result<Vec<(u32, String)>> {
    let pids = lab.root().join("e2e/.lab/pids");
    (0..2)
        .map(|replica| {
            let file = pids.join(format!("operator-{replica}.pid"));
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let (pid, started) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
            let pid = pid.parse().with_context(|| format!("{} holds {text:?}", file.display()))?;
            Ok((pid, started.to_owned()))
        })
        .collect()
}

/// Which replicas say, on their metrics port, that they lead.
fn leading_replicas(lab: &Lab) -> Result<Vec<u32>> {
    let mut leading = Vec::new();
    for replica in 0..2u32 {
        let url = format!("http://127.0.0.1:{}/metrics", 17472 + replica);
        let text = lab.run("curl", &["-fsS", "--max-time", "5", &url])?.ok()?.stdout;
        if text.lines().any(|line| line.trim() == "ironlb_operator_leader 1") {
            leading.push(replica);
        }
    }
    Ok(leading)
}

fn stalled_control_plane_leaves_both_operators_running_and_one_leading(lab: &Lab) -> Result<()> {
    let ns = "e2e-fault-stall";
    let _cleanup = setup(lab, ns, "")?;
    let before = operator_pids(lab)?;
    // Longer than the leader's renew deadline (10 s) each time: the leader loses its lease.
    for round in 0..3 {
        fault(lab, &["etcd-stall", "12"]).with_context(|| format!("stall {round}"))?;
        std::thread::sleep(Duration::from_secs(3));
    }
    let after = operator_pids(lab)?;
    ensure!(before == after, "an operator replica was restarted: {before:?} -> {after:?}");
    for (pid, _) in &after {
        ensure!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "operator {pid} exited during the stalls");
    }
    let leaders = wait_for("exactly one operator replica to lead", SETTLE, || {
        let leading = leading_replicas(lab)?;
        Ok((leading.len() == 1).then_some(leading))
    })?;
    // The leader allocates: a Service created now gets its address within seconds.
    lab.apply(&pod(ns, "after-1", "after", None, true))?;
    let created = Instant::now();
    lab.apply(&service(ns, "after", &[], ""))?;
    wait_for("the new Service to get an address", Duration::from_secs(20), || {
        Ok(crate::support::ingress(lab, ns, "after")?.first().cloned())
    })?;
    eprintln!(
        "after 3 etcd stalls of 12 s: both replicas running (pids {after:?}), replica {} leads, a new Service \
         got its address in {:?}",
        leaders[0],
        created.elapsed()
    );
    Ok(())
}
