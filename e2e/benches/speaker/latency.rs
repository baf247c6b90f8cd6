//! Step 1, how long a client waits for its answer: ARP requests and Neighbor Solicitations from the
//! client namespace for the announced Service's addresses (answered by the speaker), alternated
//! with the same requests for the announcing node's own LAN addresses (answered by that node's
//! kernel, on the same interface and the same path through the bridge: the floor).

use std::net::IpAddr;

use anyhow::Result;

use crate::host::Hosts;
use crate::report::{micros, percentile, thousands};
use crate::service::Announced;
use crate::wire::{Target, alternate_round_trips, check_requests};

/// Untimed rounds first: the client's and the node's neighbour entries, caches and the threads'
/// first wake-ups are not what is measured.
const WARMUP: usize = 50;

pub(crate) fn run(hosts: &Hosts, announced: &Announced, per_target: usize) -> Result<()> {
    let node = hosts.node(&announced.node)?;
    check_requests(&hosts.client, announced.v4, announced.v6)?;
    let speaker = |address: IpAddr| Target { address, mac: node.mac };
    eprintln!("latency: {per_target} ARP requests each for {} and {}, alternated", announced.v4, node.v4);
    let arp = alternate_round_trips(
        &hosts.client,
        [speaker(announced.v4.into()), speaker(node.v4.into())],
        per_target,
        WARMUP,
    )?;
    eprintln!("latency: {per_target} Neighbor Solicitations each for {} and {}, alternated", announced.v6, node.v6);
    let ndp = alternate_round_trips(
        &hosts.client,
        [speaker(announced.v6.into()), speaker(node.v6.into())],
        per_target,
        WARMUP,
    )?;

    println!("### 1. Time to an answer, from the client namespace");
    println!();
    println!(
        "{per_target} requests per target after {WARMUP} untimed rounds, one in flight at a time, 1 ms apart; \
         the Service's address and the node's own address alternate (ABBA). Timed in the client's userspace from \
         just before `send` to reading the answer, through the speaker crate's `AF_PACKET` sockets; a request \
         unanswered after 200 ms is lost."
    );
    println!();
    println!("| protocol | asked for | answered by | requests | answered | lost | p50 | p90 | p99 | max |");
    println!("|---|---|---|--:|--:|--:|--:|--:|--:|--:|");
    let who = |address: IpAddr, by_speaker: bool| {
        if by_speaker {
            (format!("Service address `{address}`"), format!("ironlb speaker on {}", node.name))
        } else {
            (format!("node address `{address}`"), format!("Linux kernel of {} (floor)", node.name))
        }
    };
    let rows = [
        ("ARP", who(announced.v4.into(), true), &arp[0]),
        ("ARP", who(node.v4.into(), false), &arp[1]),
        ("NDP", who(announced.v6.into(), true), &ndp[0]),
        ("NDP", who(node.v6.into(), false), &ndp[1]),
    ];
    for (protocol, (what, answerer), trips) in rows {
        let mut samples = trips.samples.clone();
        samples.sort();
        let requests = samples.len() + trips.lost + trips.wrong_answerer;
        let wrong = if trips.wrong_answerer > 0 {
            format!(" ({} by another MAC)", trips.wrong_answerer)
        } else {
            String::new()
        };
        println!(
            "| {protocol} | {what} | {answerer} | {} | {}{wrong} | {} | {} | {} | {} | {} |",
            thousands(requests as u64),
            thousands(samples.len() as u64),
            trips.lost,
            percentile(&samples, 0.50).map_or("–".into(), micros),
            percentile(&samples, 0.90).map_or("–".into(), micros),
            percentile(&samples, 0.99).map_or("–".into(), micros),
            samples.last().copied().map_or("–".into(), micros),
        );
    }
    println!();
    for (protocol, [speaker, kernel]) in [("ARP", &arp), ("NDP", &ndp)] {
        let (mut speaker, mut kernel) = (speaker.samples.clone(), kernel.samples.clone());
        speaker.sort();
        kernel.sort();
        if let (Some(s), Some(k)) = (percentile(&speaker, 0.5), percentile(&kernel, 0.5)) {
            let (s99, k99) = (percentile(&speaker, 0.99).unwrap_or(s), percentile(&kernel, 0.99).unwrap_or(k));
            println!(
                "- {protocol}: the speaker answers {} later than the kernel at p50 ({:.1}×), {} later at p99.",
                signed_micros(s.as_secs_f64() - k.as_secs_f64()),
                s.as_secs_f64() / k.as_secs_f64(),
                signed_micros(s99.as_secs_f64() - k99.as_secs_f64()),
            );
        }
    }
    println!();
    Ok(())
}

fn signed_micros(seconds: f64) -> String {
    format!("{:.1} µs", seconds * 1e6)
}
