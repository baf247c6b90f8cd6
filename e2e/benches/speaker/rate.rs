//! Step 2, how many ARP requests per second the speaker answers without loss, and what that costs it.
//!
//! Bursts at fixed rates, climbing until fewer than 99.9% are answered; at each rate the same
//! burst goes to the node's own address, answered by its kernel (the floor, and a check that the
//! client itself keeps up). Every burst is broadcast, as a resolving client's request is, so the
//! announcing speaker reads the requests for the node's address too and ignores them: the floor
//! rows show what merely seeing that many requests costs it.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;
use ironlb_e2e::Lab;

use crate::host::{Hosts, Speaker};
use crate::report::thousands;
use crate::service::Announced;
use crate::wire::{BurstOutcome, Target, arp_burst};

/// Requests per second tried, in order.
const RATES: [u32; 7] = [1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000];
/// How long each burst lasts.
const BURST: Duration = Duration::from_secs(3);
/// Share of requests that must be answered for a rate to pass.
const PASS: f64 = 0.999;
/// Pause between bursts, so that queues drain and one burst's stragglers are not counted in the next.
const PAUSE: Duration = Duration::from_secs(1);

struct Row {
    rate: u32,
    by_speaker: bool,
    outcome: BurstOutcome,
    cpu: f64,
    wall: Duration,
    /// ARP requests the speaker read and ARP replies it sent during the burst (its metrics).
    seen: f64,
    replied: f64,
}

impl Row {
    fn answered_share(&self) -> f64 {
        if self.outcome.sent == 0 { 0.0 } else { self.outcome.answered as f64 / self.outcome.sent as f64 }
    }

    fn passed(&self) -> bool {
        !self.outcome.cut_off && self.answered_share() >= PASS
    }
}

pub(crate) fn run(lab: &Lab, hosts: &Hosts, announced: &Announced) -> Result<()> {
    let node = hosts.node(&announced.node)?;
    let speaker = Speaker::of(lab, &node.name)?;
    let mut rows = Vec::new();
    for rate in RATES {
        let mut passed = true;
        for (by_speaker, address) in [(true, IpAddr::V4(announced.v4)), (false, IpAddr::V4(node.v4))] {
            eprintln!("rate: {rate}/s for {address} for {BURST:?}");
            let row = burst(lab, hosts, &speaker, Target { address, mac: node.mac }, rate, by_speaker)?;
            passed &= !by_speaker || row.passed();
            rows.push(row);
            std::thread::sleep(PAUSE);
        }
        if !passed {
            break;
        }
    }

    println!("### 2. ARP requests per second answered, and the speaker's CPU");
    println!();
    println!(
        "Each burst sends one ARP request for the address again and again from the client for {} s at a fixed \
         rate (paced in runs every ~0.1–0.2 ms), then counts answers for 0.5 s more. The ladder stops after \
         the first rate at which the speaker answers fewer than {:.1}%; the node's own address, answered by \
         its kernel, gets the same burst right after. Speaker CPU is the announcing speaker's utime+stime \
         (`/proc/<pid>/stat`, 10 ms ticks) over the burst and its grace period; \"seen / replied\" are its own \
         counters (`requests_received`, `replies_sent`) over the same time.",
        BURST.as_secs(),
        PASS * 100.0
    );
    println!();
    println!(
        "| rate asked | asked for | answered by | sent | sent at | answered | share | speaker CPU | % of a core | CPU per request | speaker seen / replied |"
    );
    println!("|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for row in &rows {
        let (what, who) = if row.by_speaker {
            (format!("`{}`", announced.v4), format!("speaker on {}", node.name))
        } else {
            (format!("`{}`", node.v4), format!("kernel of {} (floor)", node.name))
        };
        let BurstOutcome { sent, sending, cut_off, answered, wrong_answerer } = row.outcome;
        let mut share = format!("{:.3}%", row.answered_share() * 100.0);
        if wrong_answerer > 0 {
            share.push_str(&format!(" (+{wrong_answerer} from another MAC)"));
        }
        if cut_off {
            share.push_str(" (client fell behind; cut off)");
        }
        println!(
            "| {}/s | {what} | {who} | {} | {}/s | {} | {share} | {:.2} s | {:.1}% | {} | {} / {} |",
            thousands(u64::from(row.rate)),
            thousands(sent),
            thousands((sent as f64 / sending.as_secs_f64()) as u64),
            thousands(answered),
            row.cpu,
            100.0 * row.cpu / row.wall.as_secs_f64(),
            if sent == 0 { "–".to_owned() } else { format!("{:.1} µs", row.cpu * 1e6 / sent as f64) },
            thousands(row.seen as u64),
            thousands(row.replied as u64),
        );
    }
    println!();
    let best = |by_speaker: bool| {
        rows.iter().filter(|row| row.by_speaker == by_speaker && row.passed()).map(|row| row.rate).max()
    };
    let first_failure = rows.iter().find(|row| row.by_speaker && !row.passed()).map(|row| row.rate);
    let show = |rate: Option<u32>| {
        rate.map_or("none of the rates tried".to_owned(), |r| format!("{}/s", thousands(u64::from(r))))
    };
    println!(
        "- Highest rate answered at ≥ {:.1}%: speaker {}, kernel {} (among the rates tried). {}",
        PASS * 100.0,
        show(best(true)),
        show(best(false)),
        match first_failure {
            Some(rate) => format!("The speaker first fell below at {}/s.", thousands(u64::from(rate))),
            None => format!(
                "The speaker never fell below; {}/s is the top of the ladder, not its limit.",
                thousands(u64::from(RATES[RATES.len() - 1]))
            ),
        }
    );
    println!();
    Ok(())
}

fn burst(lab: &Lab, hosts: &Hosts, speaker: &Speaker, target: Target, rate: u32, by_speaker: bool) -> Result<Row> {
    let arp = [("protocol", "arp")];
    let before = speaker.metrics(lab)?;
    let cpu_before = speaker.cpu_seconds()?;
    let started = std::time::Instant::now();
    let outcome = arp_burst(&hosts.client, target, rate, BURST)?;
    let cpu = speaker.cpu_seconds()? - cpu_before;
    let wall = started.elapsed();
    let after = speaker.metrics(lab)?;
    let delta = |name: &str| after.sum(name, &arp) - before.sum(name, &arp);
    Ok(Row {
        rate,
        by_speaker,
        outcome,
        cpu,
        wall,
        seen: delta("ironlb_speaker_requests_received_total"),
        replied: delta("ironlb_speaker_replies_sent_total"),
    })
}
