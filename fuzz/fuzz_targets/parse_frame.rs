//! Fuzzes `ironlb_speaker::packet::parse`, the first code every frame off the wire reaches: it must
//! return `Ok` or `Err` for any bytes, never panic, overflow or hang.
//!
//! Each input is parsed twice: as it is, and with its ICMPv6 checksum made right when it looks like
//! an Ethernet/IPv6/ICMPv6 frame. Without the second pass almost every mutated Neighbor Discovery
//! frame would stop at the checksum, and the option parser behind it would go unexplored.

#![no_main]

use std::net::Ipv6Addr;

use ironlb_speaker::packet::{icmpv6, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let _ = parse(frame);
    if let Some(fixed) = with_icmpv6_checksum_fixed(frame) {
        let _ = parse(&fixed);
    }
});

/// `frame` with the checksum of its ICMPv6 message recomputed, when it is untagged Ethernet carrying
/// IPv6 whose next header is ICMPv6 and whose message has a checksum field.
fn with_icmpv6_checksum_fixed(frame: &[u8]) -> Option<Vec<u8>> {
    const ETHERNET: usize = 14;
    const IPV6: usize = 40;
    let header = frame.get(ETHERNET..ETHERNET + IPV6)?;
    if frame.get(12..14)? != [0x86, 0xdd] || header.get(6) != Some(&icmpv6::NEXT_HEADER) {
        return None;
    }
    let source = Ipv6Addr::from(<[u8; 16]>::try_from(header.get(8..24)?).ok()?);
    let destination = Ipv6Addr::from(<[u8; 16]>::try_from(header.get(24..40)?).ok()?);
    let payload_len = usize::from(u16::from_be_bytes([*header.get(4)?, *header.get(5)?]));
    let start = ETHERNET + IPV6;
    let end = start.checked_add(payload_len)?.min(frame.len());
    let mut fixed = frame.to_vec();
    let message = fixed.get_mut(start..end)?;
    message.get_mut(2..4)?.fill(0);
    let checksum = icmpv6::checksum(source, destination, message);
    message.get_mut(2..4)?.copy_from_slice(&checksum.to_be_bytes());
    Some(fixed)
}
