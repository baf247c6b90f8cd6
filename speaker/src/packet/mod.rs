//! The frames the speaker reads and writes: Ethernet, ARP, IPv6 and ICMPv6 Neighbor Discovery.
//!
//! The speaker's data path is socket → **parse** → decide → **build** → send. The socket (kernel
//! filtered, so only ARP and ICMPv6 NS/NA reach userspace) hands each frame to [`parse`], which
//! returns a typed [`Packet`] or a [`PacketError`] whose [`reason`](PacketError::reason) labels the
//! `malformed_frames_dropped` metric. The announcer decides whether it owns the address asked about
//! and answers with a builder ([`arp_reply`], [`neighbor_advertisement`]), or announces a takeover
//! ([`gratuitous_arp`], [`unsolicited_na`]) after checking the address is free ([`arp_probe`],
//! [`dad_probe_ns`]). The socket sends the bytes as they are.
//!
//! This module does no I/O and holds no state: it is pure parsing and building, tested from byte
//! dumps and fuzzed (`fuzz/`). Every header is read and written through `pnet_packet`'s views,
//! whose constructors refuse a buffer shorter than the header; what is ours is the validation pnet
//! does not do (the RFC checks each layer's docs list, lengths against the buffer, the option walk)
//! and the slicing of payloads, all with checked slice operations. So no frame, however short or
//! hostile, can make it panic; the lints below keep our part that way.
//!
//! One module per layer: [`ethernet`], [`arp`], [`ipv6`], [`icmpv6`], [`ndp`]. The types and
//! builders the announcer uses are re-exported here.

// Outside tests, nothing here may index, unwrap, panic or overflow: a frame off the wire is
// untrusted input, and a fuzzer runs with overflow checks on.
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::as_conversions,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod arp;
pub mod ethernet;
pub mod icmpv6;
pub mod ipv6;
pub mod ndp;
#[cfg(test)]
mod test_vectors;

pub use arp::{ArpKind, ArpOperation, ArpPacket, arp_probe, arp_reply, gratuitous_arp, gratuitous_arp_reply};
pub use ethernet::{EtherType, EthernetFrame, MacAddress, ParseMacAddressError, VlanTag};
pub use ndp::{
    AdvertisementFlags, NdpSender, NeighborAdvertisement, NeighborSolicitation, SolicitationKind, dad_probe_ns,
    neighbor_advertisement, solicited_node_multicast, unsolicited_na,
};

use icmpv6::Icmpv6Packet;
use ipv6::Ipv6Packet;

/// A received frame the speaker acts on, or [`Packet::Other`] for one it ignores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// An Ethernet/IPv4 ARP packet.
    Arp {
        /// The frame's link-layer header.
        ethernet: EthernetFrame<'a>,
        /// The ARP packet.
        arp: ArpPacket,
    },
    /// A Neighbor Solicitation that passed the checks of RFC 4861 §7.1.1.
    NeighborSolicitation {
        /// The frame's link-layer header.
        ethernet: EthernetFrame<'a>,
        /// The solicitation.
        solicitation: NeighborSolicitation,
    },
    /// A Neighbor Advertisement that passed the checks of RFC 4861 §7.1.2.
    NeighborAdvertisement {
        /// The frame's link-layer header.
        ethernet: EthernetFrame<'a>,
        /// The advertisement.
        advertisement: NeighborAdvertisement,
    },
    /// A well-formed frame that is neither ARP nor NS/NA: another ethertype, an IPv6 packet that is
    /// not ICMPv6 (extension headers included, see [`ipv6`]), or another ICMPv6 message. Ignored, not
    /// counted as malformed; its checksum is not even verified.
    Other,
}

/// Why a frame was dropped as malformed. Each variant is a stable label of the
/// `malformed_frames_dropped{reason=...}` metric: rename one and dashboards break.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PacketError {
    /// The frame ends before a header, or before the payload its IPv6 header announces.
    #[error("frame is truncated")]
    Truncated,
    /// The Ethernet source is a group or all-zero address, which no station sends from.
    #[error("Ethernet source address is multicast or zero")]
    BadEthernetSource,
    /// ARP for a hardware other than Ethernet (type 1, length 6).
    #[error("ARP hardware type or length is not Ethernet")]
    BadArpHardware,
    /// ARP for a protocol other than IPv4 (type 0x0800, length 4).
    #[error("ARP protocol type or length is not IPv4")]
    BadArpProtocol,
    /// An ARP operation other than request (1) or reply (2).
    #[error("ARP operation is neither request nor reply")]
    BadArpOperation,
    /// An ethertype 0x86dd packet whose version is not 6.
    #[error("IP version is not 6")]
    BadIpVersion,
    /// A length field too small for the message it describes (ICMPv6 under 4 bytes, NS/NA under 24).
    #[error("length is too short for the message")]
    BadLength,
    /// A Neighbor Discovery message with a hop limit other than 255 (RFC 4861 §7.1).
    #[error("Neighbor Discovery hop limit is not 255")]
    BadHopLimit,
    /// A Neighbor Discovery message whose ICMPv6 checksum is wrong.
    #[error("ICMPv6 checksum is wrong")]
    BadChecksum,
    /// A Neighbor Discovery message with an ICMPv6 code other than 0 (RFC 4861 §7.1).
    #[error("Neighbor Discovery ICMPv6 code is not 0")]
    BadIcmpCode,
    /// A Neighbor Discovery message whose target is a multicast address (RFC 4861 §7.1).
    #[error("Neighbor Discovery target is multicast")]
    BadTarget,
    /// A Neighbor Discovery option of length zero, running past the message, a link-layer address
    /// option that is not one Ethernet MAC, or a Source Link-Layer Address option from `::`.
    #[error("Neighbor Discovery option is malformed or not allowed here")]
    BadOption,
    /// A Neighbor Discovery message from a multicast address (RFC 4291 §2.7).
    #[error("IPv6 source is multicast")]
    BadSource,
    /// A destination the message may not have: a DAD solicitation not to a solicited-node group, a
    /// solicited advertisement to a group (RFC 4861 §7.1).
    #[error("IPv6 destination is not allowed for this message")]
    BadDestination,
}

impl PacketError {
    /// Every variant, so the metric can register each label at zero on start.
    pub const ALL: [Self; 14] = [
        Self::Truncated,
        Self::BadEthernetSource,
        Self::BadArpHardware,
        Self::BadArpProtocol,
        Self::BadArpOperation,
        Self::BadIpVersion,
        Self::BadLength,
        Self::BadHopLimit,
        Self::BadChecksum,
        Self::BadIcmpCode,
        Self::BadTarget,
        Self::BadOption,
        Self::BadSource,
        Self::BadDestination,
    ];

    /// The `reason` label of `malformed_frames_dropped`. Stable: never change an existing one.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::BadEthernetSource => "bad_ethernet_source",
            Self::BadArpHardware => "bad_arp_hardware",
            Self::BadArpProtocol => "bad_arp_protocol",
            Self::BadArpOperation => "bad_arp_operation",
            Self::BadIpVersion => "bad_ip_version",
            Self::BadLength => "bad_length",
            Self::BadHopLimit => "bad_hop_limit",
            Self::BadChecksum => "bad_checksum",
            Self::BadIcmpCode => "bad_icmp_code",
            Self::BadTarget => "bad_target",
            Self::BadOption => "bad_option",
            Self::BadSource => "bad_source",
            Self::BadDestination => "bad_destination",
        }
    }
}

/// Parses a frame as read from an `AF_PACKET` socket, Ethernet header first.
///
/// ARP and Neighbor Solicitation/Advertisement come back typed and validated; any other well-formed
/// frame is [`Packet::Other`]. Only a frame that claims to be one of ours and is broken is an error.
/// Never panics, whatever the bytes.
pub fn parse(frame: &[u8]) -> Result<Packet<'_>, PacketError> {
    let ethernet = EthernetFrame::parse(frame)?;
    match ethernet.ethertype() {
        EtherType::ARP => Ok(Packet::Arp { arp: ArpPacket::parse(ethernet.payload())?, ethernet }),
        EtherType::IPV6 => parse_ipv6(ethernet),
        _ => Ok(Packet::Other),
    }
}

fn parse_ipv6(ethernet: EthernetFrame<'_>) -> Result<Packet<'_>, PacketError> {
    let ipv6 = Ipv6Packet::parse(ethernet.payload())?;
    if ipv6.next_header() != icmpv6::NEXT_HEADER {
        return Ok(Packet::Other);
    }
    let icmp = Icmpv6Packet::parse(ipv6.payload())?;
    Ok(match icmp.message_type() {
        ndp::NEIGHBOR_SOLICITATION => {
            Packet::NeighborSolicitation { solicitation: NeighborSolicitation::parse(&ipv6, &icmp)?, ethernet }
        }
        ndp::NEIGHBOR_ADVERTISEMENT => {
            Packet::NeighborAdvertisement { advertisement: NeighborAdvertisement::parse(&ipv6, &icmp)?, ethernet }
        }
        _ => Packet::Other,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::test_vectors::{self, hexdump};
    use super::*;

    /// Each captured frame with the length of its content, Ethernet padding excluded.
    fn captured_frames_and_content_lengths() -> [(&'static str, usize); 11] {
        [
            (test_vectors::ARP_REQUEST, 42),
            (test_vectors::ARP_REQUEST_VLAN_100, 46),
            (test_vectors::ARP_PROBE, 42),
            (test_vectors::ARP_ANNOUNCEMENT, 42),
            (test_vectors::ARP_REPLY_FROM_SPEAKER, 42),
            (test_vectors::NEIGHBOR_SOLICITATION, 86),
            (test_vectors::DAD_PROBE, 78),
            (test_vectors::NEIGHBOR_ADVERTISEMENT, 86),
            (test_vectors::SOLICITED_NA_FROM_SPEAKER, 86),
            (test_vectors::UNSOLICITED_NA_FROM_SPEAKER, 86),
            (test_vectors::DAD_PROBE_FROM_SPEAKER, 78),
        ]
    }

    fn label(packet: &Packet<'_>) -> &'static str {
        match packet {
            Packet::Arp { .. } => "arp",
            Packet::NeighborSolicitation { .. } => "ns",
            Packet::NeighborAdvertisement { .. } => "na",
            Packet::Other => "other",
        }
    }

    #[test]
    fn captured_frames_parse_to_their_kind() {
        let kinds = ["arp", "arp", "arp", "arp", "arp", "ns", "ns", "na", "na", "na", "ns"];
        for (dump, kind) in test_vectors::ALL.into_iter().zip(kinds) {
            let frame = hexdump(dump);
            assert_eq!(parse(&frame).as_ref().map(label), Ok(kind), "{dump}");
        }
    }

    #[test]
    fn every_prefix_of_a_captured_frame_is_an_error() {
        for (dump, content_len) in captured_frames_and_content_lengths() {
            let frame = hexdump(dump);
            for len in 0..content_len {
                assert!(parse(&frame[..len]).is_err(), "prefix of {len} bytes of {dump}");
            }
            assert!(parse(&frame[..content_len]).is_ok(), "{dump} without padding");
        }
    }

    #[test]
    fn ipv4_is_other() {
        let frame = hexdump(
            "0x0000:  0200 0000 0001 0200 c0a8 02c8 0800 4500
             0x0010:  0014 0000 4000 4006 0000 c0a8 02c8 c0a8
             0x0020:  020a",
        );
        assert_eq!(parse(&frame), Ok(Packet::Other));
    }

    #[test]
    fn an_8023_length_frame_is_other() {
        let frame = hexdump("0x0000:  0180 c200 0000 0200 c0a8 02c8 0026 4242 03");
        assert_eq!(parse(&frame), Ok(Packet::Other));
    }

    #[test]
    fn double_tagged_frames_are_other() {
        let frame = hexdump(
            "0x0000:  ffff ffff ffff 0200 c0a8 02c8 8100 0064
             0x0010:  8100 00c8 0806 0001 0800 0604 0001",
        );
        assert_eq!(parse(&frame), Ok(Packet::Other));
    }

    #[test]
    fn an_mld_report_behind_a_hop_by_hop_header_is_other() {
        // fe80::ff:fe00:1 > ff02::16: HBH (rtalert: 0x0000) ICMP6, multicast listener report v2
        let frame = hexdump(
            "0x0000:  3333 0000 0016 0200 0000 0001 86dd 6000
             0x0010:  0000 0024 0001 fe80 0000 0000 0000 0000
             0x0020:  00ff fe00 0001 ff02 0000 0000 0000 0000
             0x0030:  0000 0000 0016 3a00 0502 0000 0100 8f00
             0x0040:  0000 0000 0001 0400 0000 ff02 0000 0000
             0x0050:  0000 0000 0001 ff00 0010",
        );
        assert_eq!(parse(&frame), Ok(Packet::Other));
    }

    #[test]
    fn other_icmpv6_messages_are_other_without_checking_their_checksum() {
        // fd6c:6a7e:5f2b:2::c8 > fd6c:6a7e:5f2b:2::10: ICMP6, echo request (checksum left zero)
        let frame = hexdump(
            "0x0000:  0200 0000 0001 0200 c0a8 02c8 86dd 6000
             0x0010:  0000 0008 3a40 fd6c 6a7e 5f2b 0002 0000
             0x0020:  0000 0000 00c8 fd6c 6a7e 5f2b 0002 0000
             0x0030:  0000 0000 0010 8000 0000 0001 0001",
        );
        assert_eq!(parse(&frame), Ok(Packet::Other));
    }

    #[test]
    fn the_link_layer_header_comes_with_the_packet() {
        let frame = hexdump(test_vectors::NEIGHBOR_SOLICITATION);
        let Ok(Packet::NeighborSolicitation { ethernet, .. }) = parse(&frame) else {
            panic!("a solicitation");
        };
        assert_eq!(ethernet.source(), test_vectors::CLIENT_MAC);
        assert_eq!(ethernet.destination().to_string(), "33:33:ff:00:00:10");
    }

    #[test]
    fn reasons_are_distinct_snake_case_labels() {
        let reasons: HashSet<_> = PacketError::ALL.iter().map(|error| error.reason()).collect();
        assert_eq!(reasons.len(), PacketError::ALL.len());
        for reason in reasons {
            assert!(reason.bytes().all(|byte| byte.is_ascii_lowercase() || byte == b'_'), "{reason}");
        }
    }

    fn unicast_mac() -> impl Strategy<Value = MacAddress> {
        any::<[u8; 6]>()
            .prop_map(|[first, rest @ ..]| {
                let [a, b, c, d, e] = rest;
                MacAddress::new([first & 0xfe, a, b, c, d, e])
            })
            .prop_filter("a station address is not zero", |mac| !mac.is_unspecified())
    }

    fn any_mac() -> impl Strategy<Value = MacAddress> {
        any::<[u8; 6]>().prop_map(MacAddress::new)
    }

    fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
        any::<[u8; 4]>().prop_map(Ipv4Addr::from)
    }

    fn unicast_ipv6() -> impl Strategy<Value = Ipv6Addr> {
        any::<[u8; 16]>().prop_map(Ipv6Addr::from).prop_filter("not multicast", |ip| !ip.is_multicast())
    }

    /// A captured frame with some bytes overwritten and possibly cut short: close enough to valid to
    /// reach the deep checks, which uniformly random bytes almost never do.
    fn mangled_frame() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::sample::select(test_vectors::ALL.to_vec()),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(dump, edits, cut)| {
                let mut frame = hexdump(dump);
                for (at, byte) in edits {
                    let at = at.index(frame.len());
                    frame[at] = byte;
                }
                frame.truncate(cut.index(frame.len() + 1));
                frame
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_bytes(frame in prop::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse(&frame);
        }

        #[test]
        fn parse_never_panics_on_mangled_captures(frame in mangled_frame()) {
            let _ = parse(&frame);
        }

        #[test]
        fn arp_reply_parses_back(our_mac in unicast_mac(), our_ip in ipv4(), to_mac in any_mac(), to_ip in ipv4()) {
            let frame = arp_reply(our_mac, our_ip, to_mac, to_ip);
            let Ok(Packet::Arp { ethernet, arp }) = parse(&frame) else { panic!("{frame:?}") };
            prop_assert_eq!((ethernet.destination(), ethernet.source()), (to_mac, our_mac));
            prop_assert_eq!(arp.operation(), ArpOperation::Reply);
            prop_assert_eq!((arp.sender_mac(), arp.sender_ip()), (our_mac, our_ip));
            prop_assert_eq!((arp.target_mac(), arp.target_ip()), (to_mac, to_ip));
        }

        #[test]
        fn gratuitous_arp_and_probe_parse_back(mac in unicast_mac(), ip in ipv4()) {
            for (frame, kind) in [
                (gratuitous_arp(mac, ip), ArpKind::Announcement),
                (gratuitous_arp_reply(mac, ip), ArpKind::GratuitousReply),
                (arp_probe(mac, ip), ArpKind::Probe),
            ] {
                let Ok(Packet::Arp { ethernet, arp }) = parse(&frame) else { panic!("{frame:?}") };
                prop_assert!(ethernet.destination().is_broadcast());
                prop_assert_eq!((ethernet.source(), arp.sender_mac(), arp.target_ip()), (mac, mac, ip));
                // A probe for 0.0.0.0 is both a probe and an announcement; the probe wins.
                if !ip.is_unspecified() {
                    prop_assert_eq!(arp.kind(), kind);
                }
            }
        }

        #[test]
        fn neighbor_advertisement_parses_back(
            mac in unicast_mac(),
            address in unicast_ipv6(),
            target in unicast_ipv6(),
            to_mac in any_mac(),
            to_ip in unicast_ipv6(),
            solicited in any::<bool>(),
            override_ in any::<bool>(),
        ) {
            let frame = neighbor_advertisement(NdpSender { mac, address }, target, to_mac, to_ip, solicited, override_);
            let Ok(Packet::NeighborAdvertisement { ethernet, advertisement }) = parse(&frame) else { panic!("{frame:?}") };
            prop_assert_eq!((ethernet.destination(), ethernet.source()), (to_mac, mac));
            prop_assert_eq!((advertisement.source(), advertisement.destination()), (address, to_ip));
            prop_assert_eq!(advertisement.flags(), AdvertisementFlags { router: false, solicited, override_ });
            prop_assert_eq!((advertisement.target(), advertisement.target_link_layer()), (target, Some(mac)));
        }

        #[test]
        fn unsolicited_na_parses_back(mac in unicast_mac(), address in unicast_ipv6(), target in unicast_ipv6()) {
            let frame = unsolicited_na(NdpSender { mac, address }, target);
            let Ok(Packet::NeighborAdvertisement { ethernet, advertisement }) = parse(&frame) else { panic!("{frame:?}") };
            prop_assert_eq!(ethernet.destination(), MacAddress::ipv6_multicast(ndp::ALL_NODES));
            prop_assert_eq!(advertisement.destination(), ndp::ALL_NODES);
            prop_assert_eq!(advertisement.flags(), AdvertisementFlags { router: false, solicited: false, override_: true });
            prop_assert_eq!((advertisement.target(), advertisement.target_link_layer()), (target, Some(mac)));
        }

        #[test]
        fn dad_probe_parses_back(mac in unicast_mac(), target in unicast_ipv6()) {
            let frame = dad_probe_ns(mac, target);
            let Ok(Packet::NeighborSolicitation { ethernet, solicitation }) = parse(&frame) else { panic!("{frame:?}") };
            let group = solicited_node_multicast(target);
            prop_assert_eq!((ethernet.destination(), ethernet.source()), (MacAddress::ipv6_multicast(group), mac));
            prop_assert_eq!((solicitation.source(), solicitation.destination()), (Ipv6Addr::UNSPECIFIED, group));
            prop_assert_eq!(solicitation.kind(), SolicitationKind::DuplicateAddressDetection);
            prop_assert_eq!((solicitation.target(), solicitation.source_link_layer()), (target, None));
        }
    }
}
