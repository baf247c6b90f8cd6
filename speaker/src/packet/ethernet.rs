//! Ethernet II framing: the outermost layer of every frame the speaker reads and writes.
//!
//! Where it sits: socket → **parse** → decide → **build** → send. [`EthernetFrame::parse`] is the
//! first view [`super::parse`] takes of a received frame; `header` is the first thing every
//! builder writes.
//!
//! # 802.1Q
//!
//! One 802.1Q tag (TPID `0x8100`, IEEE 802.1Q §9.6) is parsed, not refused: [`EthernetFrame::vlan`]
//! returns it and [`EthernetFrame::ethertype`] is then the inner ethertype, so a tagged ARP request
//! is still recognised (and counted) as ARP. Stacked tags are not unwrapped: under QinQ the inner
//! ethertype is `0x8100` again (or the outer one is `0x88a8`) and the frame is simply not ARP/NDP.
//!
//! Builders never add a tag. Linux strips the tag on receive when the NIC offloads VLANs and the
//! speaker listens on the VLAN interface (`eth0.100`), where the kernel also adds it on send. A tag
//! seen in-band means the socket sits on the trunk parent, where an untagged answer would land in
//! the native VLAN — so the decide step should leave tagged frames unanswered.
//!
//! # Padding
//!
//! Ethernet pads frames shorter than 60 bytes (IEEE 802.3 §3.2.8; RFC 894). The payload returned
//! here keeps that padding; each inner layer takes only the length its own header announces.

use std::fmt;
use std::str::FromStr;

use pnet_base::MacAddr;
use pnet_packet::Packet as _;
use pnet_packet::ethernet::{EthernetPacket, MutableEthernetPacket};
use pnet_packet::vlan::VlanPacket;

use super::PacketError;

/// Length of an untagged Ethernet II header: destination, source, ethertype.
pub const HEADER_LEN: usize = EthernetPacket::minimum_packet_size();

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddress([u8; 6]);

impl MacAddress {
    /// `ff:ff:ff:ff:ff:ff`, the destination of ARP requests.
    pub const BROADCAST: Self = Self([0xff; 6]);
    /// `00:00:00:00:00:00`, the unknown target hardware address of ARP requests (RFC 5227 §2.1.1).
    pub const UNSPECIFIED: Self = Self([0; 6]);

    /// The address with these octets, first octet first.
    pub const fn new(octets: [u8; 6]) -> Self {
        Self(octets)
    }

    /// The six octets, first octet first (wire order).
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Whether this is `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }

    /// Whether the individual/group bit (the least significant bit of the first octet, IEEE 802
    /// §8.2) is set. Broadcast is a multicast address too.
    pub fn is_multicast(self) -> bool {
        let [first, ..] = self.0;
        first & 0x01 != 0
    }

    /// Whether this is `00:00:00:00:00:00`.
    pub fn is_unspecified(self) -> bool {
        self == Self::UNSPECIFIED
    }

    /// The MAC address an IPv6 multicast group maps to: `33:33` followed by the group's low 32
    /// bits (RFC 2464 §7). `ff02::1` maps to `33:33:00:00:00:01`; the solicited-node group of
    /// `fd6c:6a7e:5f2b:2::10` maps to `33:33:ff:00:00:10`.
    ///
    /// The mapping is defined for multicast groups only; for any other address the result is a
    /// multicast MAC that nothing listens on.
    pub fn ipv6_multicast(group: std::net::Ipv6Addr) -> Self {
        let [.., a, b, c, d] = group.octets();
        Self([0x33, 0x33, a, b, c, d])
    }
}

impl From<MacAddr> for MacAddress {
    fn from(mac: MacAddr) -> Self {
        Self(mac.octets())
    }
}

impl From<MacAddress> for MacAddr {
    fn from(MacAddress([a, b, c, d, e, f]): MacAddress) -> Self {
        Self::new(a, b, c, d, e, f)
    }
}

impl fmt::Display for MacAddress {
    /// Lower-case, colon-separated: `02:00:c0:a8:02:c8`, the form `ip link` and tcpdump print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a MAC address: expected six two-digit hex octets separated by ':' or '-'")]
pub struct ParseMacAddressError {
    input: String,
}

impl FromStr for MacAddress {
    type Err = ParseMacAddressError;

    /// Parses `02:00:c0:a8:02:c8` (either case) or `02-00-C0-A8-02-C8`, the forms `ip link` and
    /// Windows print. Exactly six octets of exactly two hex digits, one separator kind throughout.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = || ParseMacAddressError { input: input.to_owned() };
        let separator = if input.contains('-') { '-' } else { ':' };
        let mut octets = [0u8; 6];
        let mut parts = input.split(separator);
        for octet in &mut octets {
            let part = parts.next().ok_or_else(error)?;
            if part.len() != 2 || !part.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                return Err(error());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| error())?;
        }
        match parts.next() {
            None => Ok(Self(octets)),
            Some(_) => Err(error()),
        }
    }
}

/// An Ethernet II ethertype (IEEE 802.3 §3.2.6). Values up to 1500 are 802.3 lengths, not
/// types; they never match a constant here, so such frames are simply not ARP or NDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4, `0x0800`.
    pub const IPV4: Self = Self(0x0800);
    /// ARP, `0x0806` (RFC 826).
    pub const ARP: Self = Self(0x0806);
    /// An 802.1Q VLAN tag follows, `0x8100`.
    pub const VLAN: Self = Self(0x8100);
    /// IPv6, `0x86dd` (RFC 2464 §3).
    pub const IPV6: Self = Self(0x86dd);
}

/// The fields of an 802.1Q tag control information word (IEEE 802.1Q §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanTag {
    /// Priority code point, 0–7.
    pub priority: u8,
    /// Drop eligible indicator.
    pub drop_eligible: bool,
    /// VLAN identifier, 0–4095 (0: priority-tagged, no VLAN).
    pub id: u16,
}

/// A received Ethernet II frame: its addresses, an optional 802.1Q tag, and the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetFrame<'a> {
    destination: MacAddress,
    source: MacAddress,
    vlan: Option<VlanTag>,
    ethertype: EtherType,
    payload: &'a [u8],
}

impl<'a> EthernetFrame<'a> {
    /// Parses the header of `frame` (one 802.1Q tag included, see the module docs).
    ///
    /// Refuses a multicast or all-zero source address ([`PacketError::BadEthernetSource`]): a
    /// station's source is always an individual address (IEEE 802 §8.2), the Linux bridge drops such
    /// frames too, and answering one would send a "unicast" reply to a group.
    pub fn parse(frame: &'a [u8]) -> Result<Self, PacketError> {
        let header = EthernetPacket::new(frame).ok_or(PacketError::Truncated)?;
        let destination = MacAddress::from(header.get_destination());
        let source = MacAddress::from(header.get_source());
        if source.is_multicast() || source.is_unspecified() {
            return Err(PacketError::BadEthernetSource);
        }
        let mut ethertype = EtherType(header.get_ethertype().0);
        let mut vlan = None;
        let mut payload_offset = HEADER_LEN;
        if ethertype == EtherType::VLAN {
            let tag = VlanPacket::new(header.payload()).ok_or(PacketError::Truncated)?;
            vlan = Some(VlanTag {
                priority: tag.get_priority_code_point().0,
                drop_eligible: tag.get_drop_eligible_indicator() != 0,
                id: tag.get_vlan_identifier(),
            });
            ethertype = EtherType(tag.get_ethertype().0);
            payload_offset = HEADER_LEN.saturating_add(VlanPacket::minimum_packet_size());
        }
        // pnet's views lend their payload only for as long as the view lives, while a `Packet<'a>`
        // hands the caller slices of the frame itself: so the payload is cut here, at the offset the
        // views above have just proved is inside the frame.
        let payload = frame.get(payload_offset..).ok_or(PacketError::Truncated)?;
        Ok(Self { destination, source, vlan, ethertype, payload })
    }

    /// The destination MAC address.
    pub fn destination(&self) -> MacAddress {
        self.destination
    }

    /// The source MAC address (never multicast, never all-zero).
    pub fn source(&self) -> MacAddress {
        self.source
    }

    /// The 802.1Q tag, when the frame carried one in-band.
    pub fn vlan(&self) -> Option<VlanTag> {
        self.vlan
    }

    /// The ethertype of the payload: the inner one when the frame is tagged.
    pub fn ethertype(&self) -> EtherType {
        self.ethertype
    }

    /// Everything after the header (and tag), Ethernet padding included.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// Writes an untagged Ethernet II header into the first [`HEADER_LEN`] bytes of `frame`, the first
/// thing every builder does.
///
/// Builders size `frame` from the same constants, so it is never too short; were it ever, nothing is
/// written and the frame stays zero, which the builders' byte-exact tests catch, where a panic would
/// take the speaker down.
pub(super) fn write_header(frame: &mut [u8], destination: MacAddress, source: MacAddress, ethertype: EtherType) {
    if let Some(mut header) = MutableEthernetPacket::new(frame) {
        header.set_destination(destination.into());
        header.set_source(source.into());
        header.set_ethertype(pnet_packet::ethernet::EtherType(ethertype.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::test_vectors::{ARP_REQUEST, ARP_REQUEST_VLAN_100, hexdump};

    const CLIENT_MAC: MacAddress = MacAddress::new([0x02, 0x00, 0xc0, 0xa8, 0x02, 0xc8]);

    #[test]
    fn every_header_field_of_a_captured_arp_request_is_parsed() {
        let frame = hexdump(ARP_REQUEST);
        let ethernet = EthernetFrame::parse(&frame).expect("captured frame parses");
        assert_eq!(ethernet.destination(), MacAddress::BROADCAST);
        assert_eq!(ethernet.source(), CLIENT_MAC);
        assert_eq!(ethernet.vlan(), None);
        assert_eq!(ethernet.ethertype(), EtherType::ARP);
        assert_eq!(ethernet.payload().len(), 60 - HEADER_LEN, "padding stays in the payload");
    }

    #[test]
    fn a_vlan_tag_is_parsed_and_the_inner_ethertype_exposed() {
        let frame = hexdump(ARP_REQUEST_VLAN_100);
        let ethernet = EthernetFrame::parse(&frame).expect("tagged frame parses");
        assert_eq!(ethernet.vlan(), Some(VlanTag { priority: 5, drop_eligible: true, id: 100 }));
        assert_eq!(ethernet.ethertype(), EtherType::ARP);
        assert_eq!(ethernet.payload().len(), 28);
    }

    #[test]
    fn a_frame_cut_inside_the_vlan_tag_is_truncated() {
        let frame = hexdump(ARP_REQUEST_VLAN_100);
        for len in HEADER_LEN..HEADER_LEN + 4 {
            assert_eq!(EthernetFrame::parse(frame.get(..len).expect("prefix")), Err(PacketError::Truncated));
        }
    }

    #[test]
    fn a_multicast_or_zero_source_is_refused() {
        for source in [MacAddress::BROADCAST, MacAddress::new([0x33, 0x33, 0, 0, 0, 1]), MacAddress::UNSPECIFIED] {
            let mut frame = [0; HEADER_LEN];
            write_header(&mut frame, MacAddress::BROADCAST, source, EtherType::ARP);
            assert_eq!(EthernetFrame::parse(&frame), Err(PacketError::BadEthernetSource), "{source}");
        }
    }

    #[test]
    fn header_writes_destination_source_ethertype() {
        let mut built = [0; HEADER_LEN];
        write_header(&mut built, MacAddress::BROADCAST, CLIENT_MAC, EtherType::IPV6);
        assert_eq!(built, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0xc0, 0xa8, 0x02, 0xc8, 0x86, 0xdd]);
    }

    #[test]
    fn mac_address_displays_and_parses_in_ip_link_form() {
        assert_eq!(CLIENT_MAC.to_string(), "02:00:c0:a8:02:c8");
        assert_eq!("02:00:C0:A8:02:C8".parse(), Ok(CLIENT_MAC));
        assert_eq!("02-00-c0-a8-02-c8".parse(), Ok(CLIENT_MAC));
    }

    #[test]
    fn mac_address_refuses_anything_but_six_two_digit_octets() {
        for input in [
            "",
            "02:00:c0:a8:02",
            "02:00:c0:a8:02:c8:00",
            "2:00:c0:a8:02:c8",
            "02:00:c0:a8:02:g8",
            "02:00-c0:a8:02:c8",
            "+2:00:c0:a8:02:c8",
            "02:00:c0:a8:02:c8:",
        ] {
            assert!(input.parse::<MacAddress>().is_err(), "{input:?}");
        }
    }

    #[test]
    fn broadcast_and_group_bits_are_recognised() {
        assert!(MacAddress::BROADCAST.is_broadcast());
        assert!(MacAddress::BROADCAST.is_multicast());
        assert!(MacAddress::new([0x01, 0x00, 0x5e, 0, 0, 1]).is_multicast());
        assert!(!CLIENT_MAC.is_multicast());
        assert!(!CLIENT_MAC.is_broadcast());
    }

    #[test]
    fn ipv6_multicast_groups_map_to_33_33_and_their_low_32_bits() {
        let all_nodes = "ff02::1".parse().expect("address");
        assert_eq!(MacAddress::ipv6_multicast(all_nodes).to_string(), "33:33:00:00:00:01");
        let solicited_node = "ff02::1:ff00:10".parse().expect("address");
        assert_eq!(MacAddress::ipv6_multicast(solicited_node).to_string(), "33:33:ff:00:00:10");
    }
}
