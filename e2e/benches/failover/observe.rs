//! The client's view of a failover: what it hears on the wire and what its requests get.
//!
//! While a fault runs, three kinds of threads in the client namespace record, with the bench's
//! own clock, everything a LAN client can see of the Service's two addresses:
//!
//! - a **resolver** per family asks for the address every [`RESOLVE_EVERY`] (an ARP request or a
//!   Neighbor Solicitation, as a host whose cache entry went stale does) and records each answer
//!   with the MAC that gave it, and every gratuitous ARP / unsolicited NA heard for the address;
//! - a **requester** per family connects to the address on port 80 every [`REQUEST_EVERY`] with
//!   the client kernel's own neighbour cache (so the kernel's handling of gratuitous frames is
//!   part of the figure, as it is for a real client) and records which node's HTTP server
//!   answered (the lab's servers answer with their node's name).
//!
//! What the figures mean is worked out afterwards, in [`Observations`], from the records alone.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ironlb_speaker::packet::{self, MacAddress, Packet};

use crate::host::Host;
use crate::wire::{Resolver, answerer, in_netns, join, request};

/// How often a resolver asks.
const RESOLVE_EVERY: Duration = Duration::from_millis(10);
/// How often a requester starts a request (after the previous one ended).
const REQUEST_EVERY: Duration = Duration::from_millis(25);
/// How long a request may take: a connection to a node that no longer receives its frames
/// waits for this long.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(250);

/// Something the client saw about one address.
#[derive(Clone, Debug)]
pub(crate) enum Seen {
    /// An answer to its request, from this MAC.
    Answer(MacAddress),
    /// A gratuitous ARP or unsolicited Neighbor Advertisement for the address, from this MAC.
    Gratuitous(MacAddress),
    /// A request that completed, answered by this node's server, or failed (`None`).
    Served(Option<String>),
}

/// Everything seen about one address, in time order per thread.
#[derive(Clone, Debug, Default)]
pub(crate) struct Observations {
    pub(crate) seen: Vec<(Instant, Seen)>,
}

impl Observations {
    /// When a MAC in `new` first answered a request, at or after `from`.
    pub(crate) fn first_answer(&self, from: Instant, new: &[MacAddress]) -> Option<Instant> {
        self.first(from, |seen| matches!(seen, Seen::Answer(mac) if new.contains(mac)))
    }

    /// When a MAC in `new` first announced the address (gratuitous ARP / unsolicited NA), at or
    /// after `from`.
    pub(crate) fn first_gratuitous(&self, from: Instant, new: &[MacAddress]) -> Option<Instant> {
        self.first(from, |seen| matches!(seen, Seen::Gratuitous(mac) if new.contains(mac)))
    }

    /// When a request was first answered by a node in `new`, at or after `from`.
    pub(crate) fn first_served(&self, from: Instant, new: &[String]) -> Option<Instant> {
        self.first(from, |seen| matches!(seen, Seen::Served(Some(node)) if new.contains(node)))
    }

    /// The longest stretch from `from` to `until` without a successful request, by any node.
    pub(crate) fn longest_gap(&self, from: Instant, until: Instant) -> Duration {
        let mut last_ok = from;
        let mut gap = Duration::ZERO;
        let served = self.seen.iter().filter(|(at, seen)| *at >= from && matches!(seen, Seen::Served(Some(_))));
        for (at, _) in served {
            gap = gap.max(at.saturating_duration_since(last_ok));
            last_ok = last_ok.max(*at);
        }
        gap.max(until.saturating_duration_since(last_ok))
    }

    /// The node that served the last successful request before `until`.
    pub(crate) fn last_served_by(&self, until: Instant) -> Option<&str> {
        self.seen
            .iter()
            .filter(|(at, _)| *at <= until)
            .filter_map(|(_, seen)| match seen {
                Seen::Served(Some(node)) => Some(node.as_str()),
                _ => None,
            })
            .next_back()
    }

    /// The MACs that answered requests in `[from, until]`.
    pub(crate) fn answerers(&self, from: Instant, until: Instant) -> Vec<MacAddress> {
        let mut macs: Vec<MacAddress> = self
            .seen
            .iter()
            .filter(|(at, _)| (from..=until).contains(at))
            .filter_map(|(_, seen)| match seen {
                Seen::Answer(mac) => Some(*mac),
                _ => None,
            })
            .collect();
        macs.sort_by_key(|mac| mac.octets());
        macs.dedup();
        macs
    }

    fn first(&self, from: Instant, matches: impl Fn(&Seen) -> bool) -> Option<Instant> {
        self.seen.iter().filter(|(at, seen)| *at >= from && matches(seen)).map(|(at, _)| *at).min()
    }
}

/// What the threads of one [`Watch`] recorded so far.
type Log = Arc<Mutex<Vec<(Instant, Seen)>>>;

/// The client's threads watching one address; [`Watch::stop`] ends them and returns what they saw.
pub(crate) struct Watch {
    stop: Arc<AtomicBool>,
    log: Log,
    threads: [std::thread::JoinHandle<Result<()>>; 2],
}

impl Watch {
    /// Starts watching `address` from `client`.
    pub(crate) fn start(client: &Host, address: IpAddr) -> Self {
        let (stop, log) = (Arc::new(AtomicBool::new(false)), Log::default());
        let resolver = {
            let (client, stop, log) = (client.clone(), stop.clone(), log.clone());
            in_netns(&client.name.clone(), move || async move { resolve(&client, address, &stop, &log).await })
        };
        let requester = {
            let (stop, log) = (stop.clone(), log.clone());
            in_netns(&client.name.clone(), move || async move {
                requests(address, &stop, &log);
                Ok(())
            })
        };
        Self { stop, log, threads: [resolver, requester] }
    }

    /// What was seen so far, in time order.
    pub(crate) fn so_far(&self) -> Observations {
        sorted(&self.log)
    }

    /// Ends the threads; what they saw, in time order.
    pub(crate) fn stop(self) -> Result<Observations> {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            join(thread)?;
        }
        Ok(sorted(&self.log))
    }
}

fn sorted(log: &Log) -> Observations {
    let mut seen = log.lock().map(|log| log.clone()).unwrap_or_default();
    seen.sort_by_key(|(at, _)| *at);
    Observations { seen }
}

fn record(log: &Log, seen: Seen) {
    if let Ok(mut log) = log.lock() {
        log.push((Instant::now(), seen));
    }
}

/// Asks for `address` every [`RESOLVE_EVERY`] and records answers and gratuitous frames.
async fn resolve(client: &Host, address: IpAddr, stop: &AtomicBool, log: &Log) -> Result<()> {
    let socket = Resolver::open(address.is_ipv6())?;
    let frame = request(client, address);
    let mut buf = [0; 2048];
    let mut next_request = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_request {
            socket.send(&frame).context("sending a request")?;
            next_request += RESOLVE_EVERY;
        }
        let wait = next_request.saturating_duration_since(Instant::now());
        let Ok(received) = tokio::time::timeout(wait, socket.recv(&mut buf)).await else { continue };
        let frame = &buf[..received?];
        if let Some(mac) = answerer(frame, client, address) {
            record(log, Seen::Answer(mac));
        } else if let Some(mac) = gratuitous(frame, address) {
            record(log, Seen::Gratuitous(mac));
        }
    }
    Ok(())
}

/// The MAC announcing `address` if `frame` is a gratuitous ARP or an unsolicited NA for it.
fn gratuitous(frame: &[u8], address: IpAddr) -> Option<MacAddress> {
    match (packet::parse(frame).ok()?, address) {
        (Packet::Arp { arp, .. }, IpAddr::V4(address)) if arp.kind().is_gratuitous() && arp.sender_ip() == address => {
            Some(arp.sender_mac())
        }
        (Packet::NeighborAdvertisement { ethernet, advertisement }, IpAddr::V6(address))
            if !advertisement.flags().solicited && advertisement.target() == address =>
        {
            Some(advertisement.target_link_layer().unwrap_or(ethernet.source()))
        }
        _ => None,
    }
}

/// Requests `http://address/` every [`REQUEST_EVERY`] through the client kernel's own stack.
fn requests(address: IpAddr, stop: &AtomicBool, log: &Log) {
    while !stop.load(Ordering::Relaxed) {
        let served = request_once(SocketAddr::new(address, 80)).ok();
        record(log, Seen::Served(served));
        std::thread::sleep(REQUEST_EVERY);
    }
}

/// One HTTP/1.0 request; the name of the node whose server answered.
fn request_once(to: SocketAddr) -> Result<String> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&to, REQUEST_TIMEOUT)?;
    let left = REQUEST_TIMEOUT.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let body = response.split_once("\r\n\r\n").map_or(response.as_str(), |(_, body)| body);
    let node = body.trim();
    anyhow::ensure!(!node.is_empty(), "an empty answer");
    Ok(node.to_owned())
}
