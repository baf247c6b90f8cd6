//! Parse and build cost of the speaker's frames, per call, on one core.
//!
//! Run with `cargo bench -p ironlb-speaker --bench packet` (release profile). Needs no lab and no
//! privileges: it only calls the pure functions of `ironlb_speaker::packet`, so its figures compare
//! implementations of that module on the same machine. Each case runs `ITERATIONS` calls after a
//! warm-up, five times, and prints the fastest round's ns/call (the least disturbed by the rest of
//! the machine) as a markdown table. Every argument goes through `black_box`, so the compiler
//! cannot build a frame from constants once and reuse it.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use ironlb_speaker::packet::{
    MacAddress, NdpSender, arp_probe, arp_reply, dad_probe_ns, gratuitous_arp, neighbor_advertisement, parse,
    unsolicited_na,
};

const ITERATIONS: u32 = 2_000_000;
const ROUNDS: usize = 5;

const NODE_MAC: MacAddress = MacAddress::new([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
const CLIENT_MAC: MacAddress = MacAddress::new([0x02, 0x00, 0xc0, 0xa8, 0x02, 0xc8]);
const VIP4: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 10);
const CLIENT4: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd6c, 0x6a7e, 0x5f2b, 2, 0, 0, 0, 0x10);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd6c, 0x6a7e, 0x5f2b, 2, 0, 0, 0, 0xc8);

/// A named call to time.
type Case<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// The fastest round's nanoseconds per call of `call`.
fn ns_per_call(mut call: impl FnMut()) -> f64 {
    for _ in 0..ITERATIONS / 10 {
        call();
    }
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ITERATIONS {
                call();
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(ITERATIONS)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let speaker = NdpSender { mac: NODE_MAC, address: VIP6 };
    // A request as a client sends it: arp_reply's layout with the roles swapped and opcode 1.
    let mut arp_request = arp_reply(CLIENT_MAC, CLIENT4, MacAddress::UNSPECIFIED, VIP4);
    arp_request[21] = 1;
    let advertisement = neighbor_advertisement(speaker, VIP6, CLIENT_MAC, CLIENT6, true, true);
    let dad_probe = dad_probe_ns(CLIENT_MAC, VIP6);
    let mut ipv4 = [0u8; 60];
    ipv4[..12].copy_from_slice(&arp_request[..12]);
    ipv4[12..14].copy_from_slice(&[0x08, 0x00]);

    let cases: [Case<'_>; 10] = [
        (
            "parse ARP request",
            Box::new(|| {
                let _ = black_box(parse(black_box(&arp_request)));
            }),
        ),
        (
            "parse NA with TLLA option",
            Box::new(|| {
                let _ = black_box(parse(black_box(&advertisement)));
            }),
        ),
        (
            "parse DAD NS",
            Box::new(|| {
                let _ = black_box(parse(black_box(&dad_probe)));
            }),
        ),
        (
            "parse IPv4 frame (other)",
            Box::new(|| {
                let _ = black_box(parse(black_box(&ipv4)));
            }),
        ),
        (
            "build arp_reply",
            Box::new(|| {
                black_box(arp_reply(black_box(NODE_MAC), black_box(VIP4), black_box(CLIENT_MAC), black_box(CLIENT4)));
            }),
        ),
        (
            "build gratuitous_arp",
            Box::new(|| {
                black_box(gratuitous_arp(black_box(NODE_MAC), black_box(VIP4)));
            }),
        ),
        (
            "build arp_probe",
            Box::new(|| {
                black_box(arp_probe(black_box(NODE_MAC), black_box(VIP4)));
            }),
        ),
        (
            "build neighbor_advertisement",
            Box::new(|| {
                black_box(neighbor_advertisement(
                    black_box(speaker),
                    black_box(VIP6),
                    black_box(CLIENT_MAC),
                    black_box(CLIENT6),
                    true,
                    true,
                ));
            }),
        ),
        (
            "build unsolicited_na",
            Box::new(|| {
                black_box(unsolicited_na(black_box(speaker), black_box(VIP6)));
            }),
        ),
        (
            "build dad_probe_ns",
            Box::new(|| {
                black_box(dad_probe_ns(black_box(NODE_MAC), black_box(VIP6)));
            }),
        ),
    ];
    println!("| case | ns/call |\n| --- | ---: |");
    for (name, mut call) in cases {
        println!("| {name} | {:.1} |", ns_per_call(&mut call));
    }
}
