//! IPv6 Neighbor Discovery (RFC 4861): Neighbor Solicitation and Neighbor Advertisement, the IPv6
//! counterparts of ARP request and reply, and the Duplicate Address Detection probe of RFC 4862.
//!
//! Where it sits: socket → **parse** → decide → **build** → send. [`super::parse`] hands an ICMPv6
//! message of type 135 or 136 to this module, which applies the validity checks of RFC 4861 §7.1
//! and returns a [`NeighborSolicitation`] or [`NeighborAdvertisement`]. The decide step answers a
//! solicitation for an owned address with [`neighbor_advertisement`], announces a takeover with
//! [`unsolicited_na`], checks an address is free with [`dad_probe_ns`], and joins the
//! [`solicited_node_multicast`] group of each owned address so solicitations reach it at all.
//!
//! # Source address of what the speaker sends
//!
//! RFC 4861 §4.4 wants an advertisement's source to be an address assigned to the sending
//! interface. The builders take an [`NdpSender`] (a MAC and an IPv6 source); the speaker passes
//! the announced address itself, which its node answers for as if it were assigned — what Linux
//! sends for an address it owns. An advertisement from the interface's link-local address (what
//! MetalLB sends) is ignored by resolvers that match the source against the target, `ndisc6`
//! among them.

use std::net::Ipv6Addr;

use pnet_packet::Packet as _;
use pnet_packet::icmpv6::Icmpv6Code;
use pnet_packet::icmpv6::ndp::{
    Icmpv6Codes, MutableNdpOptionPacket, MutableNeighborAdvertPacket, MutableNeighborSolicitPacket, NdpOptionPacket,
    NdpOptionType, NdpOptionTypes, NeighborAdvertFlags, NeighborAdvertPacket, NeighborSolicitPacket,
};

use super::PacketError;
use super::ethernet::{self, EtherType, MacAddress};
use super::icmpv6::{self, Icmpv6Packet};
use super::ipv6::{self, Ipv6Packet};

/// ICMPv6 type of a Neighbor Solicitation (RFC 4861 §4.3).
pub const NEIGHBOR_SOLICITATION: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement (RFC 4861 §4.4).
pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// `ff02::1`, the link-local all-nodes group unsolicited advertisements go to (RFC 4291 §2.7.1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// RFC 4861 §7.1: every ND message is sent with hop limit 255, and a receiver drops any other value;
/// since routers decrement it, 255 proves the sender is on the link.
const HOP_LIMIT: u8 = 255;
/// Option lengths count 8-byte units, type and length bytes included (RFC 4861 §4.6).
const OPTION_UNIT: usize = 8;
/// NS and NA alike: type, code, checksum, a 4-byte word and the target, then options (§4.3, §4.4).
const MESSAGE_LEN: usize = NeighborSolicitPacket::minimum_packet_size();

/// The solicited-node multicast group of `address`: `ff02::1:ff00:0/104` followed by the low 24 bits
/// of the address (RFC 4291 §2.7.1). Solicitations for `address` are sent there, so a node answering
/// for it joins this group.
pub fn solicited_node_multicast(address: Ipv6Addr) -> Ipv6Addr {
    let [.., a, b, c] = address.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, a, b, c])
}

/// Whether `address` is in `ff02::1:ff00:0/104`, some address's solicited-node group.
pub fn is_solicited_node_multicast(address: Ipv6Addr) -> bool {
    matches!(address.octets(), [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, ..])
}

/// What a solicitation asks, which decides how it is answered (RFC 4861 §7.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SolicitationKind {
    /// Address resolution (RFC 4861 §7.2.2): sent to a multicast group, usually the target's
    /// solicited-node group. Answered with a solicited advertisement to the source.
    AddressResolution,
    /// Neighbor unreachability detection (RFC 4861 §7.3.1): unicast to the MAC the sender has
    /// cached. Answered like address resolution.
    ReachabilityConfirmation,
    /// Duplicate Address Detection (RFC 4862 §5.4.2): from `::` by a node that wants the target
    /// address for itself. For an owned address this is a conflict; RFC 4861 §7.2.4 says a defence
    /// goes to all-nodes with the Solicited flag clear.
    DuplicateAddressDetection,
}

/// A valid Neighbor Solicitation (RFC 4861 §4.3), with the addresses of the IPv6 packet carrying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborSolicitation {
    source: Ipv6Addr,
    destination: Ipv6Addr,
    target: Ipv6Addr,
    source_link_layer: Option<MacAddress>,
}

impl NeighborSolicitation {
    /// Parses and validates a solicitation (RFC 4861 §7.1.1); `icmp` is the payload of `ipv6` and has
    /// type [`NEIGHBOR_SOLICITATION`].
    pub(super) fn parse(ipv6: &Ipv6Packet<'_>, icmp: &Icmpv6Packet<'_>) -> Result<Self, PacketError> {
        // The 4-byte reserved field "MUST be ignored by the receiver" (RFC 4861 §4.3).
        let Body { target, options, .. } = Body::parse(ipv6, icmp)?;
        if ipv6.source().is_unspecified() {
            // RFC 4861 §7.1.1: from `::`, the destination is a solicited-node group and there is no
            // Source Link-Layer Address option (there is no address to bind it to).
            if !is_solicited_node_multicast(ipv6.destination()) {
                return Err(PacketError::BadDestination);
            }
            if options.source.is_some() {
                return Err(PacketError::BadOption);
            }
        }
        Ok(Self { source: ipv6.source(), destination: ipv6.destination(), target, source_link_layer: options.source })
    }

    /// The IPv6 source: the solicitor, or `::` for Duplicate Address Detection.
    pub fn source(&self) -> Ipv6Addr {
        self.source
    }

    /// The IPv6 destination: a solicited-node group, or the target itself for unreachability detection.
    pub fn destination(&self) -> Ipv6Addr {
        self.destination
    }

    /// The address being asked about.
    pub fn target(&self) -> Ipv6Addr {
        self.target
    }

    /// The solicitor's MAC from its Source Link-Layer Address option, where the answer goes.
    /// Never present in Duplicate Address Detection.
    pub fn source_link_layer(&self) -> Option<MacAddress> {
        self.source_link_layer
    }

    /// What the solicitation asks.
    pub fn kind(&self) -> SolicitationKind {
        if self.source.is_unspecified() {
            SolicitationKind::DuplicateAddressDetection
        } else if self.destination.is_multicast() {
            SolicitationKind::AddressResolution
        } else {
            SolicitationKind::ReachabilityConfirmation
        }
    }
}

/// The three flags of a Neighbor Advertisement (RFC 4861 §4.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AdvertisementFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: an answer to a solicitation (never set when sent to a multicast group).
    pub solicited: bool,
    /// O: replace a cached link-layer address with the one advertised.
    pub override_: bool,
}

impl AdvertisementFlags {
    fn from_byte(byte: u8) -> Self {
        Self {
            router: byte & NeighborAdvertFlags::Router != 0,
            solicited: byte & NeighborAdvertFlags::Solicited != 0,
            override_: byte & NeighborAdvertFlags::Override != 0,
        }
    }

    fn to_byte(self) -> u8 {
        [
            (self.router, NeighborAdvertFlags::Router),
            (self.solicited, NeighborAdvertFlags::Solicited),
            (self.override_, NeighborAdvertFlags::Override),
        ]
        .into_iter()
        .filter(|&(set, _)| set)
        .fold(0, |byte, (_, flag)| byte | flag)
    }
}

/// A valid Neighbor Advertisement (RFC 4861 §4.4), with the addresses of the IPv6 packet carrying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborAdvertisement {
    source: Ipv6Addr,
    destination: Ipv6Addr,
    flags: AdvertisementFlags,
    target: Ipv6Addr,
    target_link_layer: Option<MacAddress>,
}

impl NeighborAdvertisement {
    /// Parses and validates an advertisement (RFC 4861 §7.1.2); `icmp` is the payload of `ipv6` and
    /// has type [`NEIGHBOR_ADVERTISEMENT`].
    pub(super) fn parse(ipv6: &Ipv6Packet<'_>, icmp: &Icmpv6Packet<'_>) -> Result<Self, PacketError> {
        // The 29 reserved bits after the flags "MUST be ignored by the receiver" (RFC 4861 §4.4).
        let Body { flags, target, options } = Body::parse(ipv6, icmp)?;
        let flags = AdvertisementFlags::from_byte(flags);
        // RFC 4861 §7.1.2: an advertisement to a multicast group cannot be an answer.
        if flags.solicited && ipv6.destination().is_multicast() {
            return Err(PacketError::BadDestination);
        }
        Ok(Self {
            source: ipv6.source(),
            destination: ipv6.destination(),
            flags,
            target,
            target_link_layer: options.target,
        })
    }

    /// The IPv6 source: an address of the advertising interface.
    pub fn source(&self) -> Ipv6Addr {
        self.source
    }

    /// The IPv6 destination: the solicitor, or all-nodes for an unsolicited advertisement.
    pub fn destination(&self) -> Ipv6Addr {
        self.destination
    }

    /// The R, S and O flags.
    pub fn flags(&self) -> AdvertisementFlags {
        self.flags
    }

    /// The address being advertised.
    pub fn target(&self) -> Ipv6Addr {
        self.target
    }

    /// The MAC the target is at, from the Target Link-Layer Address option.
    pub fn target_link_layer(&self) -> Option<MacAddress> {
        self.target_link_layer
    }
}

/// The part NS and NA share: the target address and the options, and for NA the flags. Parsed in
/// one place so both messages get the same RFC 4861 §7.1 checks.
///
/// pnet's NS/NA views read the fixed fields; the checks are ours, as pnet makes none of them: it
/// neither checks hop limit, code nor checksum, and its option iterator steps over a zero-length
/// option instead of refusing it (and overflows a `u8` on a length of 32 or more units).
struct Body {
    flags: u8,
    target: Ipv6Addr,
    options: LinkLayerOptions,
}

impl Body {
    fn parse(ipv6: &Ipv6Packet<'_>, icmp: &Icmpv6Packet<'_>) -> Result<Self, PacketError> {
        // The checks RFC 4861 §7.1.1 and §7.1.2 both list, in their order.
        if ipv6.hop_limit() != HOP_LIMIT {
            return Err(PacketError::BadHopLimit);
        }
        if !icmp.checksum_is_valid(ipv6.source(), ipv6.destination()) {
            return Err(PacketError::BadChecksum);
        }
        if Icmpv6Code(icmp.code()) != Icmpv6Codes::NoCode {
            return Err(PacketError::BadIcmpCode);
        }
        // "ICMP length (derived from the IP length) is 24 or more octets": the IP layer has already
        // checked the bytes are there, so a short message is a short length, not a cut frame. The
        // reserved bits "MUST be ignored by the receiver" (§4.3, §4.4), so they are not read.
        let message = icmp.message();
        let (flags, target) = if icmp.message_type() == NEIGHBOR_ADVERTISEMENT {
            NeighborAdvertPacket::new(message).map(|na| (na.get_flags(), na.get_target_addr()))
        } else {
            NeighborSolicitPacket::new(message).map(|ns| (0, ns.get_target_addr()))
        }
        .ok_or(PacketError::BadLength)?;
        if target.is_multicast() {
            return Err(PacketError::BadTarget);
        }
        let options = LinkLayerOptions::parse(message.get(MESSAGE_LEN..).unwrap_or_default())?;
        // RFC 4291 §2.7: a multicast address is never a source.
        if ipv6.source().is_multicast() {
            return Err(PacketError::BadSource);
        }
        Ok(Self { flags, target, options })
    }
}

/// The link-layer address options found in an ND message; the only options NS and NA carry that
/// the speaker uses.
#[derive(Debug, Default)]
struct LinkLayerOptions {
    source: Option<MacAddress>,
    target: Option<MacAddress>,
}

impl LinkLayerOptions {
    /// Walks the options (RFC 4861 §4.6): type, length in 8-byte units, data. pnet's view reads each
    /// option's type and length; the walk, with its two checks, is ours (see [`Body`]).
    fn parse(mut options: &[u8]) -> Result<Self, PacketError> {
        let mut found = Self::default();
        while !options.is_empty() {
            let header = NdpOptionPacket::new(options).ok_or(PacketError::BadOption)?;
            // §4.6: "Nodes MUST silently discard an ND packet that contains an option with length zero."
            // §7.1: every option must also end inside the message.
            let len = usize::from(header.get_length()).saturating_mul(OPTION_UNIT);
            if len == 0 {
                return Err(PacketError::BadOption);
            }
            let (option, rest) = options.split_at_checked(len).ok_or(PacketError::BadOption)?;
            let slot = match header.get_option_type() {
                NdpOptionTypes::SourceLLAddr => Some(&mut found.source),
                NdpOptionTypes::TargetLLAddr => Some(&mut found.target),
                // §4.6: options a receiver does not recognise are skipped.
                _ => None,
            };
            if let Some(slot) = slot {
                // A repeated option: the first one counts, as in Linux's ndisc_parse_options().
                let mac = link_layer_address(option)?;
                slot.get_or_insert(mac);
            }
            options = rest;
        }
        Ok(found)
    }
}

/// The MAC in a link-layer address option. Over Ethernet the option is exactly one unit: type,
/// length 1, six bytes of address (RFC 2464 §6); anything else is malformed (Linux drops it too).
fn link_layer_address(option: &[u8]) -> Result<MacAddress, PacketError> {
    let option =
        NdpOptionPacket::new(option).filter(|option| option.get_length() == 1).ok_or(PacketError::BadOption)?;
    // With length 1 pnet's payload is the six bytes after type and length.
    let octets = <[u8; 6]>::try_from(option.payload()).map_err(|_| PacketError::BadOption)?;
    Ok(MacAddress::new(octets))
}

/// A link-layer address option for a built message: which one, and the MAC it carries.
type LinkLayerOption = (NdpOptionType, MacAddress);

/// Who an ND message is sent from: a MAC, and the IPv6 source (the announced address itself, see
/// the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdpSender {
    /// The interface's MAC: the Ethernet source and the advertised link-layer address.
    pub mac: MacAddress,
    /// The IPv6 source: the announced address.
    pub address: Ipv6Addr,
}

/// A Neighbor Advertisement for `target` (the announced address) at `from.mac`, to `to_ip` at
/// `to_mac`, with a Target Link-Layer Address option, Router flag clear. A complete Ethernet frame.
///
/// Answering a solicitation (RFC 4861 §7.2.4): `to_ip` is the solicitation's source and `to_mac`
/// its Source Link-Layer Address (or its Ethernet source), `solicited` set. A solicitation from `::`
/// (Duplicate Address Detection) is answered to [`ALL_NODES`] with `solicited` clear instead — a
/// receiver drops a solicited advertisement sent to a group (§7.1.2). `override_` set makes
/// neighbours replace what they had cached: right for an address this node has taken over.
pub fn neighbor_advertisement(
    from: NdpSender,
    target: Ipv6Addr,
    to_mac: MacAddress,
    to_ip: Ipv6Addr,
    solicited: bool,
    override_: bool,
) -> Vec<u8> {
    let flags = AdvertisementFlags { router: false, solicited, override_ };
    frame(
        (from.mac, from.address),
        (to_mac, to_ip),
        NEIGHBOR_ADVERTISEMENT,
        flags.to_byte(),
        target,
        Some((NdpOptionTypes::TargetLLAddr, from.mac)),
    )
}

/// An unsolicited Neighbor Advertisement announcing that `target` is now at `from.mac` (RFC 4861
/// §7.2.6): to all-nodes `ff02::1`, Solicited clear, Override set so caches move to the new MAC.
pub fn unsolicited_na(from: NdpSender, target: Ipv6Addr) -> Vec<u8> {
    neighbor_advertisement(from, target, MacAddress::ipv6_multicast(ALL_NODES), ALL_NODES, false, true)
}

/// A Duplicate Address Detection probe for `target` (RFC 4862 §5.4.2): a Neighbor Solicitation from
/// `::` to the target's solicited-node group, with no Source Link-Layer Address option (RFC 4861
/// §7.1.1 forbids one from `::`). An advertisement for `target`, or another node's probe for it,
/// means the address is in use elsewhere.
pub fn dad_probe_ns(mac: MacAddress, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node_multicast(target);
    frame(
        (mac, Ipv6Addr::UNSPECIFIED),
        (MacAddress::ipv6_multicast(group), group),
        NEIGHBOR_SOLICITATION,
        0,
        target,
        None,
    )
}

/// The one place an ND frame is laid out: Ethernet, IPv6 with hop limit 255, and the ICMPv6 message
/// with its checksum.
fn frame(
    (source_mac, source): (MacAddress, Ipv6Addr),
    (destination_mac, destination): (MacAddress, Ipv6Addr),
    message_type: u8,
    flags: u8,
    target: Ipv6Addr,
    option: Option<LinkLayerOption>,
) -> Vec<u8> {
    let message_len = MESSAGE_LEN.saturating_add(option.map_or(0, |_| OPTION_UNIT));
    let headers_len = ethernet::HEADER_LEN.saturating_add(ipv6::HEADER_LEN);
    let mut frame = vec![0; headers_len.saturating_add(message_len)];
    ethernet::write_header(&mut frame, destination_mac, source_mac, EtherType::IPV6);
    // At most 32 bytes: the fallback cannot happen, and would give a frame that fails to parse, not a panic.
    let payload_len = u16::try_from(message_len).unwrap_or(u16::MAX);
    if let Some(packet) = frame.get_mut(ethernet::HEADER_LEN..) {
        ipv6::write_header(packet, source, destination, icmpv6::NEXT_HEADER, HOP_LIMIT, payload_len);
    }
    if let Some(message) = frame.get_mut(headers_len..) {
        write_message(message, message_type, flags, target, option);
        let checksum = icmpv6::checksum(source, destination, message);
        if let Some(mut header) = pnet_packet::icmpv6::MutableIcmpv6Packet::new(message) {
            header.set_checksum(checksum);
        }
    }
    frame
}

/// Writes an NS or NA (by `message_type`) with its option, checksum left zero, into `message`, which
/// [`frame`] has sized for exactly that. A buffer too short for a view is left zero, not a panic.
fn write_message(message: &mut [u8], message_type: u8, flags: u8, target: Ipv6Addr, option: Option<LinkLayerOption>) {
    if message_type == NEIGHBOR_ADVERTISEMENT {
        if let Some(mut na) = MutableNeighborAdvertPacket::new(message) {
            na.set_icmpv6_type(pnet_packet::icmpv6::Icmpv6Types::NeighborAdvert);
            na.set_icmpv6_code(Icmpv6Codes::NoCode);
            na.set_flags(flags);
            na.set_target_addr(target);
        }
    } else if let Some(mut ns) = MutableNeighborSolicitPacket::new(message) {
        ns.set_icmpv6_type(pnet_packet::icmpv6::Icmpv6Types::NeighborSolicit);
        ns.set_icmpv6_code(Icmpv6Codes::NoCode);
        ns.set_target_addr(target);
    }
    let slot = message.get_mut(MESSAGE_LEN..).and_then(MutableNdpOptionPacket::new);
    if let (Some((option_type, mac)), Some(mut slot)) = (option, slot) {
        slot.set_option_type(option_type);
        slot.set_length(1);
        // pnet asserts the data fits the length just set: length 1 leaves six bytes, a MAC is six,
        // and `slot` is the eight bytes `frame` added for the option.
        slot.set_data(&mac.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::test_vectors::{
        CLIENT_MAC, DAD_PROBE, DAD_PROBE_FROM_SPEAKER, NEIGHBOR_ADVERTISEMENT, NEIGHBOR_SOLICITATION, NODE_MAC,
        SOLICITED_NA_FROM_SPEAKER, UNSOLICITED_NA_FROM_SPEAKER, edit_icmpv6, hexdump,
    };
    use crate::packet::{Packet, parse};

    fn ip(text: &str) -> Ipv6Addr {
        text.parse().expect("test address")
    }

    fn vip() -> Ipv6Addr {
        ip("fd6c:6a7e:5f2b:2::10")
    }

    fn speaker() -> NdpSender {
        NdpSender { mac: NODE_MAC, address: ip("fe80::ff:fe00:1") }
    }

    fn solicitation(frame: &[u8]) -> Result<NeighborSolicitation, PacketError> {
        match parse(frame)? {
            Packet::NeighborSolicitation { solicitation, .. } => Ok(solicitation),
            other => panic!("not a solicitation: {other:?}"),
        }
    }

    fn advertisement(frame: &[u8]) -> Result<NeighborAdvertisement, PacketError> {
        match parse(frame)? {
            Packet::NeighborAdvertisement { advertisement, .. } => Ok(advertisement),
            other => panic!("not an advertisement: {other:?}"),
        }
    }

    #[test]
    fn every_field_of_a_captured_solicitation_is_parsed() {
        let ns = solicitation(&hexdump(NEIGHBOR_SOLICITATION)).expect("captured solicitation parses");
        assert_eq!(ns.source(), ip("fd6c:6a7e:5f2b:2::c8"));
        assert_eq!(ns.destination(), ip("ff02::1:ff00:10"));
        assert_eq!(ns.target(), vip());
        assert_eq!(ns.source_link_layer(), Some(CLIENT_MAC));
        assert_eq!(ns.kind(), SolicitationKind::AddressResolution);
    }

    #[test]
    fn a_solicitation_from_the_unspecified_address_is_duplicate_address_detection() {
        let ns = solicitation(&hexdump(DAD_PROBE)).expect("captured probe parses");
        assert_eq!(ns.kind(), SolicitationKind::DuplicateAddressDetection);
        assert_eq!(ns.source(), Ipv6Addr::UNSPECIFIED);
        assert_eq!(ns.target(), vip());
        assert_eq!(ns.source_link_layer(), None);
    }

    #[test]
    fn a_unicast_solicitation_confirms_reachability() {
        let frame = edit_icmpv6(&hexdump(NEIGHBOR_SOLICITATION), |ipv6, _| ipv6.destination = vip());
        assert_eq!(solicitation(&frame).map(|ns| ns.kind()), Ok(SolicitationKind::ReachabilityConfirmation));
    }

    #[test]
    fn every_field_of_a_captured_advertisement_is_parsed() {
        let na = advertisement(&hexdump(NEIGHBOR_ADVERTISEMENT)).expect("captured advertisement parses");
        assert_eq!(na.source(), ip("fd6c:6a7e:5f2b:2::1"));
        assert_eq!(na.destination(), ip("fd6c:6a7e:5f2b:2::c8"));
        assert_eq!(na.flags(), AdvertisementFlags { router: true, solicited: true, override_: true });
        assert_eq!(na.target(), ip("fd6c:6a7e:5f2b:2::1"));
        assert_eq!(na.target_link_layer(), Some(MacAddress::new([0x02, 0x00, 0xc0, 0xa8, 0x02, 0x01])));
    }

    #[test]
    fn each_flag_is_its_own_bit() {
        for (byte, flags) in [
            (0x80, AdvertisementFlags { router: true, ..Default::default() }),
            (0x40, AdvertisementFlags { solicited: true, ..Default::default() }),
            (0x20, AdvertisementFlags { override_: true, ..Default::default() }),
            (0x1f, AdvertisementFlags::default()),
        ] {
            assert_eq!(AdvertisementFlags::from_byte(byte), flags, "{byte:#04x}");
            assert_eq!(AdvertisementFlags::from_byte(flags.to_byte()), flags);
        }
    }

    #[test]
    fn solicited_advertisement_matches_the_expected_capture_byte_for_byte() {
        let built = neighbor_advertisement(speaker(), vip(), CLIENT_MAC, ip("fd6c:6a7e:5f2b:2::c8"), true, true);
        assert_eq!(built, hexdump(SOLICITED_NA_FROM_SPEAKER));
    }

    #[test]
    fn unsolicited_advertisement_goes_to_all_nodes_with_override_and_without_solicited() {
        let built = unsolicited_na(speaker(), vip());
        assert_eq!(built, hexdump(UNSOLICITED_NA_FROM_SPEAKER));
        let na = advertisement(&built).expect("parses");
        assert_eq!(na.destination(), ALL_NODES);
        assert_eq!(na.flags(), AdvertisementFlags { router: false, solicited: false, override_: true });
        assert_eq!((na.target(), na.target_link_layer()), (vip(), Some(NODE_MAC)));
    }

    #[test]
    fn dad_probe_goes_from_unspecified_to_the_solicited_node_group_without_options() {
        let built = dad_probe_ns(NODE_MAC, vip());
        assert_eq!(built, hexdump(DAD_PROBE_FROM_SPEAKER));
        let ns = solicitation(&built).expect("parses");
        assert_eq!(ns.kind(), SolicitationKind::DuplicateAddressDetection);
        assert_eq!(ns.destination(), solicited_node_multicast(vip()));
        assert_eq!(ns.source_link_layer(), None);
    }

    #[test]
    fn solicited_node_group_keeps_the_low_24_bits() {
        assert_eq!(solicited_node_multicast(vip()), ip("ff02::1:ff00:10"));
        assert_eq!(solicited_node_multicast(ip("2001:db8::abcd:ef12:3456")), ip("ff02::1:ff12:3456"));
        assert!(is_solicited_node_multicast(ip("ff02::1:ff12:3456")));
        assert!(!is_solicited_node_multicast(ALL_NODES));
    }

    #[test]
    fn a_hop_limit_below_255_is_refused() {
        let mut frame = hexdump(NEIGHBOR_SOLICITATION);
        frame[21] = 254; // one router away: not on-link
        assert_eq!(solicitation(&frame), Err(PacketError::BadHopLimit));
    }

    #[test]
    fn a_wrong_checksum_is_refused() {
        let mut frame = hexdump(NEIGHBOR_SOLICITATION);
        frame[57] ^= 0x01;
        assert_eq!(solicitation(&frame), Err(PacketError::BadChecksum));
    }

    #[test]
    fn a_changed_byte_breaks_the_checksum() {
        let mut frame = hexdump(NEIGHBOR_ADVERTISEMENT);
        frame[70] ^= 0x01; // inside the target address
        assert_eq!(advertisement(&frame), Err(PacketError::BadChecksum));
    }

    #[test]
    fn a_nonzero_code_is_refused() {
        let frame = edit_icmpv6(&hexdump(NEIGHBOR_SOLICITATION), |_, message| message[1] = 1);
        assert_eq!(solicitation(&frame), Err(PacketError::BadIcmpCode));
    }

    #[test]
    fn a_message_shorter_than_24_bytes_is_a_bad_length() {
        let frame = edit_icmpv6(&hexdump(DAD_PROBE), |_, message| message.truncate(23));
        assert_eq!(solicitation(&frame), Err(PacketError::BadLength));
    }

    #[test]
    fn a_multicast_target_is_refused() {
        let frame = edit_icmpv6(&hexdump(NEIGHBOR_SOLICITATION), |_, message| {
            message[8..24].copy_from_slice(&ALL_NODES.octets());
        });
        assert_eq!(solicitation(&frame), Err(PacketError::BadTarget));
    }

    #[test]
    fn an_option_of_length_zero_is_refused() {
        let frame = edit_icmpv6(&hexdump(NEIGHBOR_SOLICITATION), |_, message| message[25] = 0);
        assert_eq!(solicitation(&frame), Err(PacketError::BadOption));
    }

    #[test]
    fn an_option_running_past_the_message_is_refused() {
        let frame = edit_icmpv6(&hexdump(NEIGHBOR_SOLICITATION), |_, message| message[25] = 2);
        assert_eq!(solicitation(&frame), Err(PacketError::BadOption));
    }

    #[test]
    fn an_option_length_pnet_would_overflow_on_is_refused_not_a_panic() {
        // pnet computes an option's length as `units * 8` in u8: 32 units and up overflow it.
        for units in [32, 255] {
            let frame = edit_icmpv6(&hexdump(NEIGHBOR_SOLICITATION), |_, message| message[25] = units);
            assert_eq!(solicitation(&frame), Err(PacketError::BadOption), "{units}");
        }
    }

    #[test]
    fn a_byte_left_after_the_last_option_is_refused() {
        let frame = edit_icmpv6(&hexdump(NEIGHBOR_SOLICITATION), |_, message| message.push(0));
        assert_eq!(solicitation(&frame), Err(PacketError::BadOption));
    }

    #[test]
    fn a_link_layer_option_longer_than_a_mac_is_refused() {
        let frame = edit_icmpv6(&hexdump(NEIGHBOR_SOLICITATION), |_, message| {
            message[25] = 2;
            message.extend_from_slice(&[0; 8]);
        });
        assert_eq!(solicitation(&frame), Err(PacketError::BadOption));
    }

    #[test]
    fn unknown_options_are_skipped_and_the_first_link_layer_option_counts() {
        let frame = edit_icmpv6(&hexdump(NEIGHBOR_SOLICITATION), |_, message| {
            let first = message.split_off(24);
            message.extend_from_slice(&[14, 1, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]); // nonce, RFC 3971
            message.extend_from_slice(&first);
            message.extend_from_slice(&[1, 1, 0x02, 0, 0, 0, 0, 0x99]);
        });
        assert_eq!(solicitation(&frame).map(|ns| ns.source_link_layer()), Ok(Some(CLIENT_MAC)));
    }

    #[test]
    fn a_duplicate_address_probe_with_a_source_link_layer_option_is_refused() {
        let frame = edit_icmpv6(&hexdump(NEIGHBOR_SOLICITATION), |ipv6, _| ipv6.source = Ipv6Addr::UNSPECIFIED);
        assert_eq!(solicitation(&frame), Err(PacketError::BadOption));
    }

    #[test]
    fn a_duplicate_address_probe_not_sent_to_a_solicited_node_group_is_refused() {
        let frame = edit_icmpv6(&hexdump(DAD_PROBE), |ipv6, _| ipv6.destination = ALL_NODES);
        assert_eq!(solicitation(&frame), Err(PacketError::BadDestination));
    }

    #[test]
    fn a_solicited_advertisement_to_a_group_is_refused() {
        let frame = edit_icmpv6(&hexdump(NEIGHBOR_ADVERTISEMENT), |ipv6, _| ipv6.destination = ALL_NODES);
        assert_eq!(advertisement(&frame), Err(PacketError::BadDestination));
    }

    #[test]
    fn a_multicast_source_is_refused() {
        let frame = edit_icmpv6(&hexdump(NEIGHBOR_ADVERTISEMENT), |ipv6, _| ipv6.source = ALL_NODES);
        assert_eq!(advertisement(&frame), Err(PacketError::BadSource));
    }
}
