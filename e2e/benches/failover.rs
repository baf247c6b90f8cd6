//! Failover benchmark: how long a LAN client waits when the node announcing a Service goes away.
//!
//! One dual-stack Service is announced by one of the lab's speakers. Each run injects one fault
//! on its announcer — **graceful** (SIGTERM: the speaker deletes its Lease and hands over),
//! **crash** (SIGKILL: its Lease expires) or **link down** (the node's LAN interface goes down)
//! — and the client namespace measures, for both addresses at once (see [`observe`]):
//!
//! - *ARP/NDP*: from the fault to the first answer to the client's requests from another node's
//!   MAC (the new announcer answers);
//! - *client*: from the fault to the first HTTP request answered by another node's server,
//!   through the client kernel's own neighbour cache (the client has moved: a gratuitous ARP /
//!   unsolicited NA updated its cache, or its entry expired);
//! - *gap*: the longest stretch in which no request succeeded at all (a gracefully stopped or
//!   crashed speaker leaves its node serving the old MAC's traffic; a link down does not).
//!
//! Scenarios are interleaved round by round, so a drift in the machine's load affects each alike,
//! and each fault comes at a random instant (up to [`FAULT_JITTER`] late), so it falls anywhere in
//! the speakers' Lease renew cycle.
//! After each run the fault is undone (`e2e/lab/fault.sh start` / `link-up`, the commands a
//! person uses) and the bench waits until one node answers and its announcement burst is over.
//! The bench also measures the API write rate the speakers' Lease settings cost, from the API
//! server's own request counters over a quiet window.
//!
//! `cargo bench -p ironlb-e2e --bench failover` (part of `make bench`) prints a markdown report on
//! stdout, progress on stderr, and draws the distributions into `docs/failover.svg`. Settings
//! (environment): `BENCH_FAILOVER_RUNS` runs per scenario (20), `BENCH_FAILOVER_SCENARIOS`
//! (`graceful,crash,link-down`), `BENCH_FAILOVER_SVG` where the chart goes (`docs/failover.svg`,
//! relative to the repository; empty: none). Faults are signals sent by PID (checked to be the
//! node's `ironlb-speaker`) and `ip link` in the node's namespace, timed just before they are
//! made; frames go only between the lab's namespaces.

#[path = "failover/chart.rs"]
mod chart;
#[allow(dead_code, reason = "shared with the speaker bench, which uses all of it")]
#[path = "speaker/host.rs"]
mod host;
#[path = "failover/observe.rs"]
mod observe;
#[allow(dead_code, reason = "shared with the speaker bench, which uses all of it")]
#[path = "speaker/report.rs"]
mod report;
#[path = "speaker/service.rs"]
mod service;
#[allow(dead_code, reason = "shared with the speaker bench, which uses all of it")]
#[path = "speaker/wire.rs"]
mod wire;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ironlb_e2e::{Lab, wait_for};
use ironlb_speaker::packet::MacAddress;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::host::{Hosts, Speaker};
use crate::observe::{Observations, Watch};
use crate::report::percentile;

const POOL: &str = "ironlb-bench-failover";
const NAMESPACE: &str = "ironlb-bench-failover";
/// In the lab's VIP ranges, clear of the e2e suite's `.10`–`.49` and the speaker bench's `.60`s.
const RANGES: [&str; 2] = ["192.168.2.70-192.168.2.79", "fd6c:6a7e:5f2b:2::70-fd6c:6a7e:5f2b:2::79"];
/// The fault comes at a random instant within this much after the client is watching: two
/// renew intervals at the defaults.
const FAULT_JITTER: Duration = Duration::from_millis(1000);
/// A run that has not seen both families move within this long counts as failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the client keeps watching after both families moved (for the gap figure).
const AFTER_MOVE: Duration = Duration::from_millis(500);
/// The take-over burst (gratuitous frames at 0, 0.5, 1.5, 3.5 s) and a margin: a run starts only
/// once the previous move's burst is over, so it cannot update the client's cache for the next.
const SETTLE: Duration = Duration::from_secs(4);

/// The faults, as the report names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scenario {
    Graceful,
    Crash,
    LinkDown,
}

impl Scenario {
    const ALL: [Self; 3] = [Self::Graceful, Self::Crash, Self::LinkDown];

    fn parse(word: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|s| s.key() == word).with_context(|| format!("unknown scenario {word:?}"))
    }

    fn key(self) -> &'static str {
        match self {
            Self::Graceful => "graceful",
            Self::Crash => "crash",
            Self::LinkDown => "link-down",
        }
    }

    pub(crate) fn title(self) -> &'static str {
        match self {
            Self::Graceful => "graceful hand-over (SIGTERM)",
            Self::Crash => "crash (SIGKILL)",
            Self::LinkDown => "link down",
        }
    }
}

/// One family's figures from one run; `None`: not within [`RUN_TIMEOUT`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Figures {
    pub(crate) answer: Option<Duration>,
    pub(crate) gratuitous: Option<Duration>,
    pub(crate) client: Option<Duration>,
    pub(crate) gap: Duration,
}

/// Every run's figures for one scenario and family.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    pub(crate) scenario: Scenario,
    pub(crate) ipv6: bool,
    pub(crate) runs: Vec<Figures>,
}

impl Series {
    pub(crate) fn label(&self) -> String {
        format!("{}, {}", self.scenario.title(), if self.ipv6 { "IPv6" } else { "IPv4" })
    }

    /// The sorted samples of one figure (failed runs left out).
    pub(crate) fn samples(&self, figure: impl Fn(&Figures) -> Option<Duration>) -> Vec<Duration> {
        let mut samples: Vec<Duration> = self.runs.iter().filter_map(figure).collect();
        samples.sort();
        samples
    }
}

struct Settings {
    runs: usize,
    scenarios: Vec<Scenario>,
    svg: Option<String>,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let runs = std::env::var("BENCH_FAILOVER_RUNS").map_or(Ok(20), |v| v.parse().context("BENCH_FAILOVER_RUNS"))?;
        let scenarios = std::env::var("BENCH_FAILOVER_SCENARIOS").unwrap_or_else(|_| "graceful,crash,link-down".into());
        let scenarios = scenarios
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Scenario::parse)
            .collect::<Result<_>>()?;
        let svg = std::env::var("BENCH_FAILOVER_SVG").unwrap_or_else(|_| "docs/failover.svg".into());
        Ok(Self { runs, scenarios, svg: (!svg.is_empty()).then_some(svg) })
    }
}

fn main() -> Result<()> {
    service::in_the_lab("failover", |lab| run(lab, &Settings::from_env()?))
}

fn run(lab: &Lab, settings: &Settings) -> Result<()> {
    let started = Instant::now();
    let hosts = Hosts::read(lab)?;
    let mut cleanup = lab.cleanup();
    cleanup.adopt_namespace(NAMESPACE);
    cleanup.object(&format!("l2advertisement/{POOL}"));
    cleanup.object(&format!("ipaddresspool/{POOL}"));
    // A run cut short (Ctrl-C) may have left its objects behind: start from none.
    cleanup.delete_now(Duration::from_secs(120));
    cleanup.adopt_namespace(NAMESPACE);
    cleanup.object(&format!("l2advertisement/{POOL}"));
    cleanup.object(&format!("ipaddresspool/{POOL}"));
    every_speaker_runs(lab, &hosts)?;

    service::print_header(lab, "failover", "BENCH_FAILOVER_")?;
    let announced = service::announce_one_service(lab, POOL, NAMESPACE, RANGES)?;
    let addresses = [IpAddr::V4(announced.v4), IpAddr::V6(announced.v6)];
    eprintln!("{} / {} announced by {}", announced.v4, announced.v6, announced.node);
    let writes = lease_write_rate(lab, &hosts)?;

    let mut series: Vec<Series> = settings
        .scenarios
        .iter()
        .flat_map(|&scenario| [false, true].map(|ipv6| Series { scenario, ipv6, runs: Vec::new() }))
        .collect();
    for round in 0..settings.runs {
        for &scenario in &settings.scenarios {
            let figures = one_run(lab, &hosts, addresses, scenario)
                .with_context(|| format!("{} run {}", scenario.key(), round + 1))?;
            for (ipv6, figures) in [(false, figures[0]), (true, figures[1])] {
                let entry = series.iter_mut().find(|s| s.scenario == scenario && s.ipv6 == ipv6).context("a series")?;
                entry.runs.push(figures);
            }
            eprintln!(
                "round {:>2} {:<10} IPv4 answer {} client {} gap {} | IPv6 answer {} client {} gap {}",
                round + 1,
                scenario.key(),
                ms(figures[0].answer),
                ms(figures[0].client),
                ms(Some(figures[0].gap)),
                ms(figures[1].answer),
                ms(figures[1].client),
                ms(Some(figures[1].gap)),
            );
        }
    }
    print_report(&series, &writes, settings.runs);
    if let Some(svg) = &settings.svg {
        let path = lab.root().join(svg);
        std::fs::write(&path, chart::draw(&series)).with_context(|| format!("writing {}", path.display()))?;
        println!("The chart: `{svg}` (written by this run).");
        println!();
    }
    println!("The whole run took {:.1} min.", started.elapsed().as_secs_f64() / 60.0);
    Ok(())
}

/// Fails unless every node's speaker runs: a run needs a peer to take over.
fn every_speaker_runs(lab: &Lab, hosts: &Hosts) -> Result<()> {
    ensure!(hosts.nodes.len() >= 2, "failover needs two nodes at least");
    for node in &hosts.nodes {
        Speaker::of(lab, &node.name).with_context(|| format!("the speaker of {} is not running", node.name))?;
    }
    Ok(())
}

/// One fault on the current announcer, watched from the client; then undone.
fn one_run(lab: &Lab, hosts: &Hosts, addresses: [IpAddr; 2], scenario: Scenario) -> Result<[Figures; 2]> {
    let old = wait_steady(lab, hosts, addresses)?;
    let old_mac = hosts.node(&old)?.mac;
    let new_nodes: Vec<String> = hosts.nodes.iter().filter(|n| n.name != old).map(|n| n.name.clone()).collect();
    let new_macs: Vec<MacAddress> = hosts.nodes.iter().filter(|n| n.name != old).map(|n| n.mac).collect();
    let watches = addresses.map(|address| Watch::start(&hosts.client, address));
    // Both families seen served by the old node before the fault: the client starts from it.
    // Then a random wait, so the fault falls anywhere in the speakers' renew cycle rather than
    // at the phase the bench's own fixed waits would lock it to.
    std::thread::sleep(Duration::from_millis(300) + FAULT_JITTER.mul_f64(fastrand::f64()));

    let speaker = Speaker::of(lab, &old)?;
    let fault_at = Instant::now();
    match scenario {
        Scenario::Graceful => kill(Pid::from_raw(speaker.pid as i32), Signal::SIGTERM)?,
        Scenario::Crash => kill(Pid::from_raw(speaker.pid as i32), Signal::SIGKILL)?,
        Scenario::LinkDown => {
            lab.run("ip", &["-n", &old, "link", "set", "eth0", "down"])?.ok()?;
        }
    }
    // Watch until both families were answered and served by a new node, or the timeout.
    let deadline = fault_at + RUN_TIMEOUT;
    let mut moved_at = None;
    while Instant::now() < deadline && moved_at.is_none_or(|at: Instant| at.elapsed() < AFTER_MOVE) {
        std::thread::sleep(Duration::from_millis(20));
        let moved = watches.iter().map(Watch::so_far).all(|seen| {
            seen.first_answer(fault_at, &new_macs).is_some() && seen.first_served(fault_at, &new_nodes).is_some()
        });
        if moved && moved_at.is_none() {
            moved_at = Some(Instant::now());
        }
    }
    let until = Instant::now();
    let observations: Vec<Observations> = watches.into_iter().map(Watch::stop).collect::<Result<_>>()?;
    undo(lab, &old, scenario, &speaker)?;

    let figures = |seen: &Observations| -> Result<Figures> {
        ensure!(
            seen.last_served_by(fault_at).is_some_and(|node| node == old),
            "before the fault the client was not served by {old} (last served by {:?})",
            seen.last_served_by(fault_at)
        );
        let answers_before = seen.answerers(fault_at - Duration::from_millis(300), fault_at);
        ensure!(answers_before == [old_mac], "before the fault {answers_before:?} answered, not {old}'s {old_mac}");
        Ok(Figures {
            answer: seen.first_answer(fault_at, &new_macs).map(|at| at - fault_at),
            gratuitous: seen.first_gratuitous(fault_at, &new_macs).map(|at| at - fault_at),
            client: seen.first_served(fault_at, &new_nodes).map(|at| at - fault_at),
            gap: seen.longest_gap(fault_at, until),
        })
    };
    Ok([figures(&observations[0])?, figures(&observations[1])?])
}

/// The announcer the pool status records for the bench's Service.
fn announcer(lab: &Lab) -> Result<Option<String>> {
    let pool: serde_json::Value =
        serde_json::from_str(&lab.kubectl(&["get", "ipaddresspool", POOL, "-o", "json"])?.ok()?.stdout)?;
    Ok(pool["status"]["allocations"][0]["node"].as_str().map(str::to_owned))
}

/// Undoes the fault with the lab's own commands.
fn undo(lab: &Lab, node: &str, scenario: Scenario, speaker: &Speaker) -> Result<()> {
    match scenario {
        Scenario::Graceful => {
            // The speaker answers through its shutdown grace until its successor is heard.
            wait_for(&format!("the speaker of {node} to exit"), Duration::from_secs(30), || {
                Ok((!std::path::Path::new(&format!("/proc/{}", speaker.pid)).exists()).then_some(()))
            })?;
            lab.run("e2e/lab/fault.sh", &["start", node])?.ok()?;
        }
        Scenario::Crash => {
            lab.run("e2e/lab/fault.sh", &["start", node])?.ok()?;
        }
        Scenario::LinkDown => {
            lab.run("e2e/lab/fault.sh", &["link-up", node])?.ok()?;
        }
    }
    Ok(())
}

/// Waits until the pool status names one announcer, its take-over burst is over, and the
/// client's requests for both addresses are answered by that node alone; returns it.
fn wait_steady(lab: &Lab, hosts: &Hosts, addresses: [IpAddr; 2]) -> Result<String> {
    let mut last = String::from("no announcer in the pool status");
    wait_for("one announcer answering both addresses, its burst over", Duration::from_secs(90), || {
        let Some(node) = announcer(lab)? else { return Ok(None) };
        std::thread::sleep(SETTLE);
        if announcer(lab)?.as_deref() != Some(node.as_str()) {
            last = format!("the announcer moved from {node}");
            return Ok(None);
        }
        let mac = hosts.node(&node)?.mac;
        let watches = addresses.map(|address| Watch::start(&hosts.client, address));
        std::thread::sleep(Duration::from_millis(500));
        let checked = Instant::now();
        let seen: Vec<Observations> = watches.into_iter().map(Watch::stop).collect::<Result<_>>()?;
        for (address, seen) in addresses.iter().zip(&seen) {
            let answerers = seen.answerers(checked - Duration::from_millis(400), checked);
            let served_by = seen.last_served_by(checked);
            if answerers != [mac] || served_by != Some(node.as_str()) {
                last = format!("{address}: {node} announces; answered by {answerers:?}, last served by {served_by:?}");
                return Ok(None);
            }
        }
        Ok(Some(node))
    })
    .with_context(|| format!("last seen: {last}"))
}

/// The API server's Lease writes per second over a quiet window, by its own request counters
/// (`apiserver_request_total` for `leases`, verbs that write), and per node.
struct WriteRate {
    per_second: f64,
    per_node: f64,
    window: Duration,
    duration: String,
    renew: String,
}

fn lease_write_rate(lab: &Lab, hosts: &Hosts) -> Result<WriteRate> {
    let count = || -> Result<f64> {
        let metrics = lab.kubectl(&["get", "--raw", "/metrics"])?.ok()?.stdout;
        Ok(metrics
            .lines()
            .filter(|line| line.starts_with("apiserver_request_total{"))
            .filter(|line| line.contains("resource=\"leases\""))
            .filter(|line| ["PUT", "PATCH", "POST"].iter().any(|verb| line.contains(&format!("verb=\"{verb}\""))))
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum())
    };
    let window = Duration::from_secs(20);
    // The operator replicas renew their election Lease too: it is measured alongside, and
    // subtracted as its own settings say (one write per renew period of the leader).
    let before = count()?;
    std::thread::sleep(window);
    let after = count()?;
    let per_second = (after - before) / window.as_secs_f64();
    let speaker_args = std::fs::read_to_string(
        lab.root()
            .join("e2e/.lab/pids")
            .join(format!("speaker-{}.cmd", hosts.nodes.first().map(|n| n.name.as_str()).unwrap_or_default())),
    )
    .unwrap_or_default();
    let arg = |name: &str, default: &str| -> String {
        speaker_args
            .split_whitespace()
            .skip_while(|word| *word != name)
            .nth(1)
            .map_or_else(|| default.to_owned(), str::to_owned)
    };
    Ok(WriteRate {
        per_second,
        per_node: per_second / hosts.nodes.len() as f64,
        window,
        duration: arg("--lease-duration", "2s (default)"),
        renew: arg("--lease-renew-interval", "500ms (default)"),
    })
}

fn ms(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "none".to_owned(), |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
}

fn print_report(series: &[Series], writes: &WriteRate, runs: usize) {
    println!("{runs} runs per scenario, interleaved; both families measured in each run. Times from the fault:");
    println!();
    println!("| scenario | figure | min | median | p95 | max | runs without |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for s in series {
        let rows: [(&str, Vec<Duration>); 4] = [
            ("ARP/NDP answer from the new node", s.samples(|f| f.answer)),
            ("gratuitous ARP / unsolicited NA from it", s.samples(|f| f.gratuitous)),
            ("client served by the new node", s.samples(|f| f.client)),
            ("longest client gap", s.samples(|f| Some(f.gap))),
        ];
        for (figure, samples) in rows {
            let q = |p: f64| ms(percentile(&samples, p));
            println!(
                "| {} | {figure} | {} | {} | {} | {} | {} |",
                s.label(),
                q(0.0),
                q(0.5),
                q(0.95),
                q(1.0),
                s.runs.len() - samples.len()
            );
        }
    }
    println!();
    println!(
        "Lease settings: duration {}, renew interval {}. Lease writes measured at the API server over {} s of \
         quiet: {:.2}/s in all, {:.2}/s per node (the operator's election Lease included).",
        writes.duration,
        writes.renew,
        writes.window.as_secs(),
        writes.per_second,
        writes.per_node
    );
    println!();
}
