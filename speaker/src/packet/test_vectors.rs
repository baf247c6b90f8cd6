//! Frames as `tcpdump -xx` prints them, for the tests of every layer.
//!
//! The lab's addresses: the client `192.168.2.200` / `fd6c:6a7e:5f2b:2::c8` at `02:00:c0:a8:02:c8`,
//! the announced address `192.168.2.10` / `fd6c:6a7e:5f2b:2::10`, the speaker's node at
//! `02:00:00:00:00:01` with link-local `fe80::ff:fe00:1`, another host at `02:00:c0:a8:02:c9`, the
//! router `fd6c:6a7e:5f2b:2::1` at `02:00:c0:a8:02:01`. ICMPv6 checksums were computed independently
//! of this crate, and every dump decodes as described under `tcpdump -r … -vv -e`.

use std::net::Ipv6Addr;

use super::ethernet::{self, MacAddress};
use super::{icmpv6, ipv6};

/// The client that asks.
pub(crate) const CLIENT_MAC: MacAddress = MacAddress::new([0x02, 0x00, 0xc0, 0xa8, 0x02, 0xc8]);
/// The node whose speaker answers.
pub(crate) const NODE_MAC: MacAddress = MacAddress::new([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);

/// `ARP, Request who-has 192.168.2.10 tell 192.168.2.200, length 46`, padded to 60 bytes.
pub(crate) const ARP_REQUEST: &str = "
    0x0000:  ffff ffff ffff 0200 c0a8 02c8 0806 0001
    0x0010:  0800 0604 0001 0200 c0a8 02c8 c0a8 02c8
    0x0020:  0000 0000 0000 c0a8 020a 0000 0000 0000
    0x0030:  0000 0000 0000 0000 0000 0000";

/// The same request tagged `vlan 100, p 5` with DEI set, as seen on a trunk (unpadded, from a veth).
pub(crate) const ARP_REQUEST_VLAN_100: &str = "
    0x0000:  ffff ffff ffff 0200 c0a8 02c8 8100 b064
    0x0010:  0806 0001 0800 0604 0001 0200 c0a8 02c8
    0x0020:  c0a8 02c8 0000 0000 0000 c0a8 020a";

/// `ARP, Request who-has 192.168.2.10 tell 0.0.0.0`: another host's RFC 5227 probe (`arping -D`).
pub(crate) const ARP_PROBE: &str = "
    0x0000:  ffff ffff ffff 0200 c0a8 02c9 0806 0001
    0x0010:  0800 0604 0001 0200 c0a8 02c9 0000 0000
    0x0020:  0000 0000 0000 c0a8 020a 0000 0000 0000
    0x0030:  0000 0000 0000 0000 0000 0000";

/// `ARP, Request who-has 192.168.2.10 tell 192.168.2.10`: another host announcing the address.
pub(crate) const ARP_ANNOUNCEMENT: &str = "
    0x0000:  ffff ffff ffff 0200 c0a8 02c9 0806 0001
    0x0010:  0800 0604 0001 0200 c0a8 02c9 c0a8 020a
    0x0020:  0000 0000 0000 c0a8 020a 0000 0000 0000
    0x0030:  0000 0000 0000 0000 0000 0000";

/// `ARP, Reply 192.168.2.10 is-at 02:00:00:00:00:01, length 28`: the speaker's answer, 42 bytes.
pub(crate) const ARP_REPLY_FROM_SPEAKER: &str = "
    0x0000:  0200 c0a8 02c8 0200 0000 0001 0806 0001
    0x0010:  0800 0604 0002 0200 0000 0001 c0a8 020a
    0x0020:  0200 c0a8 02c8 c0a8 02c8";

/// `fd6c:6a7e:5f2b:2::c8 > ff02::1:ff00:10: ICMP6, neighbor solicitation, who has
/// fd6c:6a7e:5f2b:2::10`, with `source link-address option (1), length 8 (1): 02:00:c0:a8:02:c8`.
pub(crate) const NEIGHBOR_SOLICITATION: &str = "
    0x0000:  3333 ff00 0010 0200 c0a8 02c8 86dd 6000
    0x0010:  0000 0020 3aff fd6c 6a7e 5f2b 0002 0000
    0x0020:  0000 0000 00c8 ff02 0000 0000 0000 0000
    0x0030:  0001 ff00 0010 8700 2515 0000 0000 fd6c
    0x0040:  6a7e 5f2b 0002 0000 0000 0000 0010 0101
    0x0050:  0200 c0a8 02c8";

/// `:: > ff02::1:ff00:10: ICMP6, neighbor solicitation, who has fd6c:6a7e:5f2b:2::10`: another host
/// running Duplicate Address Detection for the announced address.
pub(crate) const DAD_PROBE: &str = "
    0x0000:  3333 ff00 0010 0200 c0a8 02c9 86dd 6000
    0x0010:  0000 0018 3aff 0000 0000 0000 0000 0000
    0x0020:  0000 0000 0000 ff02 0000 0000 0000 0000
    0x0030:  0001 ff00 0010 8700 b36f 0000 0000 fd6c
    0x0040:  6a7e 5f2b 0002 0000 0000 0000 0010";

/// `fd6c:6a7e:5f2b:2::1 > fd6c:6a7e:5f2b:2::c8: ICMP6, neighbor advertisement, tgt is
/// fd6c:6a7e:5f2b:2::1, Flags [router, solicited, override]`, with `destination link-address option
/// (2), length 8 (1): 02:00:c0:a8:02:01`: the router answering the client.
pub(crate) const NEIGHBOR_ADVERTISEMENT: &str = "
    0x0000:  0200 c0a8 02c8 0200 c0a8 0201 86dd 6000
    0x0010:  0000 0020 3aff fd6c 6a7e 5f2b 0002 0000
    0x0020:  0000 0000 0001 fd6c 6a7e 5f2b 0002 0000
    0x0030:  0000 0000 00c8 8800 7ae5 e000 0000 fd6c
    0x0040:  6a7e 5f2b 0002 0000 0000 0000 0001 0201
    0x0050:  0200 c0a8 0201";

/// `fe80::ff:fe00:1 > fd6c:6a7e:5f2b:2::c8: ICMP6, neighbor advertisement, tgt is
/// fd6c:6a7e:5f2b:2::10, Flags [solicited, override]`: the speaker's answer to the solicitation.
pub(crate) const SOLICITED_NA_FROM_SPEAKER: &str = "
    0x0000:  0200 c0a8 02c8 0200 0000 0001 86dd 6000
    0x0010:  0000 0020 3aff fe80 0000 0000 0000 0000
    0x0020:  00ff fe00 0001 fd6c 6a7e 5f2b 0002 0000
    0x0030:  0000 0000 00c8 8800 8717 6000 0000 fd6c
    0x0040:  6a7e 5f2b 0002 0000 0000 0000 0010 0201
    0x0050:  0200 0000 0001";

/// `fe80::ff:fe00:1 > ff02::1: ICMP6, neighbor advertisement, tgt is fd6c:6a7e:5f2b:2::10, Flags
/// [override]`: the speaker announcing a takeover.
pub(crate) const UNSOLICITED_NA_FROM_SPEAKER: &str = "
    0x0000:  3333 0000 0001 0200 0000 0001 86dd 6000
    0x0010:  0000 0020 3aff fe80 0000 0000 0000 0000
    0x0020:  00ff fe00 0001 ff02 0000 0000 0000 0000
    0x0030:  0000 0000 0001 8800 8ff4 2000 0000 fd6c
    0x0040:  6a7e 5f2b 0002 0000 0000 0000 0010 0201
    0x0050:  0200 0000 0001";

/// `:: > ff02::1:ff00:10: ICMP6, neighbor solicitation, who has fd6c:6a7e:5f2b:2::10`: the
/// speaker's own Duplicate Address Detection probe.
pub(crate) const DAD_PROBE_FROM_SPEAKER: &str = "
    0x0000:  3333 ff00 0010 0200 0000 0001 86dd 6000
    0x0010:  0000 0018 3aff 0000 0000 0000 0000 0000
    0x0020:  0000 0000 0000 ff02 0000 0000 0000 0000
    0x0030:  0001 ff00 0010 8700 b36f 0000 0000 fd6c
    0x0040:  6a7e 5f2b 0002 0000 0000 0000 0010";

/// Every captured frame, for the tests that must hold for all of them.
pub(crate) const ALL: [&str; 11] = [
    ARP_REQUEST,
    ARP_REQUEST_VLAN_100,
    ARP_PROBE,
    ARP_ANNOUNCEMENT,
    ARP_REPLY_FROM_SPEAKER,
    NEIGHBOR_SOLICITATION,
    DAD_PROBE,
    NEIGHBOR_ADVERTISEMENT,
    SOLICITED_NA_FROM_SPEAKER,
    UNSOLICITED_NA_FROM_SPEAKER,
    DAD_PROBE_FROM_SPEAKER,
];

/// The bytes of a `tcpdump -xx` dump: offsets before `:` are dropped, the rest is hex.
pub(crate) fn hexdump(dump: &str) -> Vec<u8> {
    let hex: String = dump
        .lines()
        .map(|line| line.split_once(':').map_or(line, |(_, bytes)| bytes))
        .flat_map(|bytes| bytes.split_whitespace())
        .collect();
    assert!(hex.len().is_multiple_of(2), "odd number of hex digits in {dump:?}");
    (0..hex.len()).step_by(2).map(|at| u8::from_str_radix(&hex[at..at + 2], 16).expect("hex digits")).collect()
}

/// The IPv6 addresses of a frame, for [`edit_icmpv6`] to change.
#[derive(Debug)]
pub(crate) struct Addresses {
    pub(crate) source: Ipv6Addr,
    pub(crate) destination: Ipv6Addr,
}

/// `frame` (Ethernet, IPv6, ICMPv6) with its addresses and ICMPv6 message changed by `edit`, and the
/// payload length and checksum made right again, so a test reaches the check it is about.
pub(crate) fn edit_icmpv6(frame: &[u8], edit: impl FnOnce(&mut Addresses, &mut Vec<u8>)) -> Vec<u8> {
    let (link, packet) = frame.split_at(ethernet::HEADER_LEN);
    let (header, message) = packet.split_at(ipv6::HEADER_LEN);
    let address = |range: std::ops::Range<usize>| Ipv6Addr::from(<[u8; 16]>::try_from(&header[range]).expect("16"));
    let mut addresses = Addresses { source: address(8..24), destination: address(24..40) };
    let mut message = message.to_vec();
    edit(&mut addresses, &mut message);
    if message.len() >= 4 {
        message[2..4].fill(0);
        let checksum = icmpv6::checksum(addresses.source, addresses.destination, &message);
        message[2..4].copy_from_slice(&checksum.to_be_bytes());
    }
    let payload_len = u16::try_from(message.len()).expect("fits");
    let mut edited = link.to_vec();
    edited.extend_from_slice(&header[..4]);
    edited.extend_from_slice(&payload_len.to_be_bytes());
    edited.extend_from_slice(&header[6..8]);
    edited.extend_from_slice(&addresses.source.octets());
    edited.extend_from_slice(&addresses.destination.octets());
    edited.extend_from_slice(&message);
    edited
}
