//! What the bench reads about the lab's hosts: their addresses and MACs (from `e2e/.lab/env`),
//! each node's speaker process (CPU and memory from `/proc`, counters from its `/metrics`) and
//! the frames and bytes that crossed a host's LAN interface.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{Context, Result, bail, ensure};
use ironlb_e2e::{Daemon, Lab};
use ironlb_speaker::packet::MacAddress;

/// One lab host (a node or the client): its namespace, which is also its Node name, and the
/// addresses of its `eth0`.
#[derive(Clone, Debug)]
pub(crate) struct Host {
    pub(crate) name: String,
    pub(crate) v4: Ipv4Addr,
    pub(crate) v6: Ipv6Addr,
    pub(crate) mac: MacAddress,
}

impl Host {
    /// One word of `LAB_NODE_ADDRS` / `LAB_CLIENT_ADDRS`: `<name>,<IPv4>,<IPv6>,<MAC>,<bridge port>`.
    fn parse(word: &str) -> Result<Self> {
        let fields: Vec<&str> = word.split(',').collect();
        let [name, v4, v6, mac, ..] = fields[..] else { bail!("{word:?} is not <name>,<IPv4>,<IPv6>,<MAC>,<port>") };
        Ok(Self {
            name: name.to_owned(),
            v4: v4.parse().with_context(|| format!("IPv4 of {word:?}"))?,
            v6: v6.parse().with_context(|| format!("IPv6 of {word:?}"))?,
            mac: mac.parse().with_context(|| format!("MAC of {word:?}"))?,
        })
    }
}

/// The client and the nodes, as the lab made them.
#[derive(Clone, Debug)]
pub(crate) struct Hosts {
    pub(crate) client: Host,
    pub(crate) nodes: Vec<Host>,
}

impl Hosts {
    pub(crate) fn read(lab: &Lab) -> Result<Self> {
        let nodes = lab.var("LAB_NODE_ADDRS")?.split_whitespace().map(Host::parse).collect::<Result<Vec<_>>>()?;
        let client = Host::parse(lab.var("LAB_CLIENT_ADDRS")?.trim())?;
        ensure!(!nodes.is_empty(), "LAB_NODE_ADDRS lists no node");
        Ok(Self { client, nodes })
    }

    pub(crate) fn node(&self, name: &str) -> Result<&Host> {
        self.nodes.iter().find(|node| node.name == name).with_context(|| format!("{name} is not a lab node"))
    }
}

/// The speaker process the lab runs in a node's namespace (daemon `speaker-<node>`).
#[derive(Clone, Debug)]
pub(crate) struct Speaker {
    pub(crate) node: String,
    pub(crate) pid: u32,
}

/// A speaker's resident memory, in KiB.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Memory {
    /// `VmRSS`: resident now.
    pub(crate) rss_kib: u64,
    /// `VmHWM`: the most it was resident since it started.
    pub(crate) peak_kib: u64,
}

impl Speaker {
    /// The node's speaker, by the PID file the lab wrote, checked to be an `ironlb-speaker`.
    pub(crate) fn of(lab: &Lab, node: &str) -> Result<Self> {
        let daemon = Daemon::of(lab, &format!("speaker-{node}"), "ironlb-speaker")?;
        Ok(Self { node: node.to_owned(), pid: daemon.pid })
    }

    /// User plus system CPU time the process has used, in seconds.
    pub(crate) fn cpu_seconds(&self) -> Result<f64> {
        ironlb_e2e::cpu_seconds(self.pid)
    }

    pub(crate) fn memory(&self) -> Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> Result<u64> {
            let line = status.lines().find(|line| line.starts_with(name)).with_context(|| format!("no {name}"))?;
            Ok(line.split_whitespace().nth(1).with_context(|| format!("an empty {name}"))?.parse()?)
        };
        Ok(Memory { rss_kib: field("VmRSS:")?, peak_kib: field("VmHWM:")? })
    }

    /// The speaker's `/metrics`, fetched inside its node namespace.
    pub(crate) fn metrics(&self, lab: &Lab) -> Result<Metrics> {
        let url = "http://127.0.0.1:7473/metrics";
        Ok(lab.in_netns(&self.node, &["curl", "-fsS", "--max-time", "5", url])?.ok()?.stdout.into())
    }
}

/// A speaker's (or the API server's) `/metrics`, parsed; the speaker's own sums beside
/// [`ironlb_e2e::Metrics::sum`].
#[derive(Clone, Debug)]
pub(crate) struct Metrics(ironlb_e2e::Metrics);

impl From<String> for Metrics {
    fn from(text: String) -> Self {
        Self(ironlb_e2e::Metrics::parse(&text))
    }
}

impl std::ops::Deref for Metrics {
    type Target = ironlb_e2e::Metrics;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Metrics {
    /// IPv4 addresses the speaker answers for.
    pub(crate) fn announced_v4(&self) -> u64 {
        self.sum("ironlb_speaker_announced_addresses", &[("family", "ipv4")]) as u64
    }

    /// Every frame the speaker's sockets handed it: requests (answered or not), other ARP and NA
    /// frames it ignored, and malformed ones.
    pub(crate) fn frames_delivered(&self) -> f64 {
        self.sum("ironlb_speaker_requests_received_total", &[])
            + self.sum("ironlb_speaker_requests_ignored_total", &[("reason", "not_a_request")])
            + self.sum("ironlb_speaker_malformed_frames_dropped_total", &[])
    }
}

/// The counters of a host's `eth0` (`/sys/class/net/eth0/statistics`), read inside its namespace.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct InterfaceCounters {
    pub(crate) rx_bytes: u64,
    pub(crate) rx_packets: u64,
    pub(crate) tx_bytes: u64,
    pub(crate) tx_packets: u64,
}

impl InterfaceCounters {
    pub(crate) fn read(lab: &Lab, netns: &str) -> Result<Self> {
        let script = "cd /sys/class/net/eth0/statistics && cat rx_bytes rx_packets tx_bytes tx_packets";
        let out = lab.in_netns(netns, &["sh", "-c", script])?.ok()?.stdout;
        let values = out.lines().map(|line| line.trim().parse::<u64>()).collect::<Result<Vec<_>, _>>()?;
        let [rx_bytes, rx_packets, tx_bytes, tx_packets] = values[..] else { bail!("4 counters expected: {out}") };
        Ok(Self { rx_bytes, rx_packets, tx_bytes, tx_packets })
    }

    /// What crossed the interface since `before`.
    pub(crate) fn since(self, before: Self) -> Self {
        Self {
            rx_bytes: self.rx_bytes - before.rx_bytes,
            rx_packets: self.rx_packets - before.rx_packets,
            tx_bytes: self.tx_bytes - before.tx_bytes,
            tx_packets: self.tx_packets - before.tx_packets,
        }
    }
}
