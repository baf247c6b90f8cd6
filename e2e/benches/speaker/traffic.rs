//! Step 3, what unrelated traffic through the announcing node's interface costs its speaker: 10 s of
//! iperf3 TCP between the client and the node's own address (IPv4, then IPv6, which crosses the
//! NDP socket's BPF filter frame by frame), against 10 s of idle. The kernel filters drop those
//! frames before they are queued to the speaker's sockets, so the speaker's CPU should not move.
//!
//! The iperf3 server runs in the node namespace as a child of the bench, one test per server
//! (`-1`), and is stopped by its PID should it still run.

use std::net::IpAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ironlb_e2e::{Lab, wait_for};

use crate::host::{Host, Hosts, InterfaceCounters, Speaker};
use crate::report::{bytes, thousands};

/// Length of every window.
const WINDOW: Duration = Duration::from_secs(10);
const IPERF_PORT: &str = "5201";

struct Window {
    label: String,
    wall: Duration,
    cpu: f64,
    counters: InterfaceCounters,
    frames_to_speaker: f64,
    /// Goodput iperf3 measured at the receiver, bits per second.
    throughput: Option<f64>,
}

pub(crate) fn run(lab: &Lab, hosts: &Hosts, node: &str) -> Result<()> {
    let node = hosts.node(node)?;
    let speaker = Speaker::of(lab, &node.name)?;
    let mut windows = Vec::new();
    for address in [None, Some(IpAddr::V4(node.v4)), Some(IpAddr::V6(node.v6))] {
        eprintln!("traffic: 10 s window, iperf3 to {address:?}");
        windows.push(window(lab, hosts, node, &speaker, address)?);
    }

    println!("### 3. Speaker CPU while unrelated traffic crosses its interface");
    println!();
    println!(
        "Three {} s windows on {}, whose speaker answers for the Service's addresses on `eth0` (its ARP and NDP \
         sockets are open there): idle, then iperf3 TCP from the client to the node's own IPv4 address, then to \
         its IPv6 address. Frames and bytes are the node's `eth0` counters (`/sys/class/net/eth0/statistics`); \
         \"frames to the speaker\" are those its sockets delivered to it (its `requests_received`, \
         `requests_ignored{{reason=\"not_a_request\"}}` and `malformed_frames_dropped` counters).",
        WINDOW.as_secs(),
        node.name
    );
    println!();
    println!(
        "| window | iperf3 goodput | rx frames | rx bytes | tx frames | tx bytes | frames to the speaker | speaker CPU | % of a core |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for w in &windows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} s | {:.2}% |",
            w.label,
            w.throughput.map_or("–".to_owned(), |bps| format!("{:.2} Gbit/s", bps / 1e9)),
            thousands(w.counters.rx_packets),
            bytes(w.counters.rx_bytes),
            thousands(w.counters.tx_packets),
            bytes(w.counters.tx_bytes),
            thousands(w.frames_to_speaker as u64),
            w.cpu,
            100.0 * w.cpu / w.wall.as_secs_f64(),
        );
    }
    println!();
    Ok(())
}

fn window(lab: &Lab, hosts: &Hosts, node: &Host, speaker: &Speaker, address: Option<IpAddr>) -> Result<Window> {
    let server = address.map(|address| IperfServer::start(lab, node, address)).transpose()?;
    let (cpu, counters, metrics) =
        (speaker.cpu_seconds()?, InterfaceCounters::read(lab, &node.name)?, speaker.metrics(lab)?);
    let started = Instant::now();
    let throughput = match address {
        None => {
            std::thread::sleep(WINDOW);
            None
        }
        Some(address) => Some(iperf_client(lab, hosts, address)?),
    };
    let wall = started.elapsed();
    let window = Window {
        label: match address {
            None => "idle".to_owned(),
            Some(IpAddr::V4(a)) => format!("iperf3 TCP over IPv4, client → `{a}`"),
            Some(IpAddr::V6(a)) => format!("iperf3 TCP over IPv6, client → `{a}`"),
        },
        wall,
        cpu: speaker.cpu_seconds()? - cpu,
        counters: InterfaceCounters::read(lab, &node.name)?.since(counters),
        frames_to_speaker: speaker.metrics(lab)?.frames_delivered() - metrics.frames_delivered(),
        throughput,
    };
    drop(server);
    Ok(window)
}

/// Runs the iperf3 client in the client namespace for [`WINDOW`]; returns the receiver's goodput.
fn iperf_client(lab: &Lab, hosts: &Hosts, address: IpAddr) -> Result<f64> {
    let seconds = WINDOW.as_secs().to_string();
    let address = address.to_string();
    // `timeout` bounds it should the server vanish mid-test.
    let args = [
        "timeout",
        "60",
        "iperf3",
        "-c",
        &address,
        "-p",
        IPERF_PORT,
        "-t",
        &seconds,
        "-J",
        "--connect-timeout",
        "3000",
    ];
    let out = lab.in_netns(&hosts.client.name, &args)?.ok()?;
    let report: serde_json::Value = serde_json::from_str(&out.stdout).context("iperf3 -J output")?;
    report["end"]["sum_received"]["bits_per_second"].as_f64().with_context(|| format!("no goodput in {}", out.stdout))
}

/// An iperf3 server in a node namespace, for one test.
struct IperfServer {
    child: Child,
}

impl IperfServer {
    fn start(lab: &Lab, node: &Host, address: IpAddr) -> Result<Self> {
        let address = address.to_string();
        let mut command = lab.command("ip");
        // `ip netns exec` execs iperf3 itself, so the child's PID is the server's.
        command
            .args(["netns", "exec", &node.name, "iperf3", "-s", "-1", "-B", &address, "-p", IPERF_PORT])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut server = Self { child: command.spawn().context("starting iperf3 -s (is iperf3 installed?)")? };
        let filter = format!("sport = :{IPERF_PORT}");
        wait_for("iperf3 to listen", Duration::from_secs(10), || {
            ensure!(server.child.try_wait()?.is_none(), "iperf3 -s exited at once");
            let listening = lab.in_netns(&node.name, &["ss", "-Hltn", &filter])?.ok()?.stdout;
            Ok((!listening.trim().is_empty()).then_some(()))
        })?; // on failure, dropping `server` stops it
        Ok(server)
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for IperfServer {
    fn drop(&mut self) {
        self.stop();
    }
}
