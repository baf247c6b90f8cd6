//! ARP for IPv4 over Ethernet (RFC 826), with the probe and announcement conventions of RFC 5227.
//!
//! Where it sits: socket → **parse** → decide → **build** → send. [`ArpPacket::parse`] turns the
//! payload of an ARP frame into typed fields and a [`ArpKind`]; the decide step answers a
//! [`ArpKind::Request`] for an address this node announces with [`arp_reply`], and on taking an
//! address over sends [`gratuitous_arp`] (after an [`arp_probe`] finds nobody else using it).
//!
//! # Frame size
//!
//! The builders return the 42 bytes that carry information (14 Ethernet + 28 ARP), unpadded,
//! exactly what the Linux kernel's own `arp_create()` hands to a device. Neither `AF_PACKET` nor
//! the kernel pads on send: the NIC driver (or hardware) pads to the 60-byte minimum on the wire
//! (IEEE 802.3 §4.2.3.3), and virtual links (veth, bridge) carry the 42 bytes as they are, which is
//! what a capture in the lab shows. Padding here would only put zeros on links that do not need
//! them.
//!
//! # Gratuitous ARP
//!
//! [`gratuitous_arp`] is an ARP *request* with sender and target IP both the announced address,
//! broadcast, target hardware address zero: RFC 5227 §2.3's ARP Announcement, and what the Linux
//! kernel itself sends (`arp_send(ARPOP_REQUEST, …, target_hw = NULL)`). RFC 5227 §3 explains why
//! a request rather than a reply: every host processes a broadcast request, and updates an entry
//! it already has for the sender, while some stacks ignore unsolicited replies. Others only learn
//! from replies, so the announcer follows each announcement with [`gratuitous_arp_reply`], a
//! broadcast reply for the same address, as MetalLB does.

use std::net::Ipv4Addr;

use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet_packet::ethernet::EtherTypes;

use super::PacketError;
use super::ethernet::{self, EtherType, MacAddress};

/// Length of an Ethernet/IPv4 ARP packet (RFC 826): 8 bytes of header, two MAC and two IPv4 addresses.
pub const PACKET_LEN: usize = pnet_packet::arp::ArpPacket::minimum_packet_size();
/// Length of a built ARP frame: Ethernet header plus ARP packet, unpadded (see the module docs).
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + PACKET_LEN;

/// `ar$hln` for Ethernet: a MAC address is 6 bytes. pnet's view reads the addresses at the offsets
/// of Ethernet/IPv4 whatever the lengths say, so [`ArpPacket::parse`] checks them.
const HARDWARE_LEN: u8 = 6;
/// `ar$pln` for IPv4: an address is 4 bytes.
const PROTOCOL_LEN: u8 = 4;

/// `ar$op` (RFC 826; IANA ARP operation codes). Any other value is refused by the parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// `ares_op$REQUEST`, 1.
    Request,
    /// `ares_op$REPLY`, 2.
    Reply,
}

impl ArpOperation {
    /// The operation's code on the wire.
    pub const fn code(self) -> u16 {
        match self {
            Self::Request => 1,
            Self::Reply => 2,
        }
    }

    fn from_wire(operation: pnet_packet::arp::ArpOperation) -> Result<Self, PacketError> {
        match operation {
            ArpOperations::Request => Ok(Self::Request),
            ArpOperations::Reply => Ok(Self::Reply),
            _ => Err(PacketError::BadArpOperation),
        }
    }

    fn to_wire(self) -> pnet_packet::arp::ArpOperation {
        pnet_packet::arp::ArpOperation(self.code())
    }
}

/// What an ARP packet means, which decides what the speaker does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArpKind {
    /// "Who has the target IP? Tell the sender": answered when the target is an owned address.
    Request,
    /// An answer to a request.
    Reply,
    /// RFC 5227 §2.1.1 probe: a request with sender IP `0.0.0.0`, sent by a host checking whether
    /// the target IP is free. A probe for an owned address means another host is about to take it.
    Probe,
    /// RFC 5227 §2.3 announcement (gratuitous ARP request): sender IP equals target IP. Another
    /// host's announcement of an owned address is a conflict.
    Announcement,
    /// Gratuitous ARP sent as a reply (sender IP equals target IP), as MetalLB also sends it.
    GratuitousReply,
}

impl ArpKind {
    /// Whether the sender is advertising its own address (an announcement or gratuitous reply).
    pub fn is_gratuitous(self) -> bool {
        matches!(self, Self::Announcement | Self::GratuitousReply)
    }
}

/// A parsed Ethernet/IPv4 ARP packet (hardware type 1, protocol type `0x0800`, lengths 6 and 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpPacket {
    operation: ArpOperation,
    sender_mac: MacAddress,
    sender_ip: Ipv4Addr,
    target_mac: MacAddress,
    target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// Parses the ARP packet at the start of an Ethernet payload; padding after its 28 bytes is
    /// ignored.
    ///
    /// Only Ethernet/IPv4 ARP is accepted: another hardware type or length is
    /// [`PacketError::BadArpHardware`], another protocol type or length
    /// [`PacketError::BadArpProtocol`] (RFC 826 says to discard what one does not speak), an
    /// operation other than request or reply [`PacketError::BadArpOperation`].
    pub fn parse(payload: &[u8]) -> Result<Self, PacketError> {
        let arp = pnet_packet::arp::ArpPacket::new(payload).ok_or(PacketError::Truncated)?;
        if arp.get_hardware_type() != ArpHardwareTypes::Ethernet || arp.get_hw_addr_len() != HARDWARE_LEN {
            return Err(PacketError::BadArpHardware);
        }
        if arp.get_protocol_type() != EtherTypes::Ipv4 || arp.get_proto_addr_len() != PROTOCOL_LEN {
            return Err(PacketError::BadArpProtocol);
        }
        Ok(Self {
            operation: ArpOperation::from_wire(arp.get_operation())?,
            sender_mac: arp.get_sender_hw_addr().into(),
            sender_ip: arp.get_sender_proto_addr(),
            target_mac: arp.get_target_hw_addr().into(),
            target_ip: arp.get_target_proto_addr(),
        })
    }

    /// Request or reply.
    pub fn operation(&self) -> ArpOperation {
        self.operation
    }

    /// Sender hardware address (`ar$sha`).
    pub fn sender_mac(&self) -> MacAddress {
        self.sender_mac
    }

    /// Sender protocol address (`ar$spa`); `0.0.0.0` in a probe.
    pub fn sender_ip(&self) -> Ipv4Addr {
        self.sender_ip
    }

    /// Target hardware address (`ar$tha`); zero or broadcast in requests, ignored by receivers.
    pub fn target_mac(&self) -> MacAddress {
        self.target_mac
    }

    /// Target protocol address (`ar$tpa`): the address asked about in a request.
    pub fn target_ip(&self) -> Ipv4Addr {
        self.target_ip
    }

    /// Classifies the packet (RFC 5227 §2.1.1 probes, §2.3 announcements).
    pub fn kind(&self) -> ArpKind {
        let gratuitous = self.sender_ip == self.target_ip;
        match self.operation {
            ArpOperation::Request if self.sender_ip.is_unspecified() => ArpKind::Probe,
            ArpOperation::Request if gratuitous => ArpKind::Announcement,
            ArpOperation::Request => ArpKind::Request,
            ArpOperation::Reply if gratuitous => ArpKind::GratuitousReply,
            ArpOperation::Reply => ArpKind::Reply,
        }
    }
}

/// The reply to `to_ip`'s request for `our_ip` (the announced address): "`our_ip` is at
/// `our_mac`", unicast to the requester (RFC 826). 42 bytes, unpadded (see the module docs).
pub fn arp_reply(our_mac: MacAddress, our_ip: Ipv4Addr, to_mac: MacAddress, to_ip: Ipv4Addr) -> [u8; FRAME_LEN] {
    frame(to_mac, ArpOperation::Reply, (our_mac, our_ip), (to_mac, to_ip))
}

/// Gratuitous ARP as an RFC 5227 §2.3 announcement: a broadcast request with sender and target IP
/// both `ip` and target hardware address zero. Sent on taking `ip` over, so neighbours and switches
/// move it to `mac`.
pub fn gratuitous_arp(mac: MacAddress, ip: Ipv4Addr) -> [u8; FRAME_LEN] {
    frame(MacAddress::BROADCAST, ArpOperation::Request, (mac, ip), (MacAddress::UNSPECIFIED, ip))
}

/// Gratuitous ARP as a broadcast reply, for hosts that only update their cache from replies; the
/// target hardware address is broadcast, as MetalLB sends it. Send it after [`gratuitous_arp`].
pub fn gratuitous_arp_reply(mac: MacAddress, ip: Ipv4Addr) -> [u8; FRAME_LEN] {
    frame(MacAddress::BROADCAST, ArpOperation::Reply, (mac, ip), (MacAddress::BROADCAST, ip))
}

/// RFC 5227 §2.1.1 probe for `ip`: a broadcast request with sender IP `0.0.0.0` (so no neighbour
/// caches anything) and target hardware address zero. Any reply, or any probe for `ip` from another
/// MAC, means the address is in use elsewhere.
pub fn arp_probe(mac: MacAddress, ip: Ipv4Addr) -> [u8; FRAME_LEN] {
    frame(MacAddress::BROADCAST, ArpOperation::Request, (mac, Ipv4Addr::UNSPECIFIED), (MacAddress::UNSPECIFIED, ip))
}

/// The one place an ARP frame is laid out; `sender` also sources the Ethernet header.
fn frame(
    destination: MacAddress,
    operation: ArpOperation,
    (sender_mac, sender_ip): (MacAddress, Ipv4Addr),
    (target_mac, target_ip): (MacAddress, Ipv4Addr),
) -> [u8; FRAME_LEN] {
    let mut frame = [0; FRAME_LEN];
    ethernet::write_header(&mut frame, destination, sender_mac, EtherType::ARP);
    // Both views fit by construction (FRAME_LEN is their sum); should they not, the frame stays zero
    // and the byte-exact tests fail, rather than the speaker panicking.
    if let Some(mut arp) = frame.get_mut(ethernet::HEADER_LEN..).and_then(MutableArpPacket::new) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(HARDWARE_LEN);
        arp.set_proto_addr_len(PROTOCOL_LEN);
        arp.set_operation(operation.to_wire());
        arp.set_sender_hw_addr(sender_mac.into());
        arp.set_sender_proto_addr(sender_ip);
        arp.set_target_hw_addr(target_mac.into());
        arp.set_target_proto_addr(target_ip);
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::test_vectors::{
        ARP_ANNOUNCEMENT, ARP_PROBE, ARP_REPLY_FROM_SPEAKER, ARP_REQUEST, CLIENT_MAC, NODE_MAC, hexdump,
    };

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 10);
    const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);
    const OTHER_MAC: MacAddress = MacAddress::new([0x02, 0x00, 0xc0, 0xa8, 0x02, 0xc9]);

    fn arp_of(dump: &str) -> Result<ArpPacket, PacketError> {
        let frame = hexdump(dump);
        ArpPacket::parse(frame.get(ethernet::HEADER_LEN..).expect("has a header"))
    }

    #[test]
    fn every_field_of_a_captured_request_is_parsed() {
        let arp = arp_of(ARP_REQUEST).expect("captured request parses");
        assert_eq!(arp.operation(), ArpOperation::Request);
        assert_eq!(arp.sender_mac(), CLIENT_MAC);
        assert_eq!(arp.sender_ip(), CLIENT_IP);
        assert_eq!(arp.target_mac(), MacAddress::UNSPECIFIED);
        assert_eq!(arp.target_ip(), VIP);
        assert_eq!(arp.kind(), ArpKind::Request);
    }

    #[test]
    fn a_probe_has_sender_ip_zero() {
        let arp = arp_of(ARP_PROBE).expect("probe parses");
        assert_eq!(arp.kind(), ArpKind::Probe);
        assert_eq!(arp.sender_mac(), OTHER_MAC);
        assert_eq!(arp.target_ip(), VIP);
        assert!(!arp.kind().is_gratuitous());
    }

    #[test]
    fn an_announcement_is_a_request_for_the_senders_own_ip() {
        let arp = arp_of(ARP_ANNOUNCEMENT).expect("announcement parses");
        assert_eq!(arp.kind(), ArpKind::Announcement);
        assert!(arp.kind().is_gratuitous());
        assert_eq!((arp.sender_mac(), arp.sender_ip()), (OTHER_MAC, VIP));
    }

    #[test]
    fn a_reply_for_another_ip_is_a_plain_reply() {
        let arp = ArpPacket::parse(&arp_reply(NODE_MAC, VIP, CLIENT_MAC, CLIENT_IP)[ethernet::HEADER_LEN..])
            .expect("reply parses");
        assert_eq!(arp.kind(), ArpKind::Reply);
    }

    #[test]
    fn arp_reply_matches_the_expected_capture_byte_for_byte() {
        assert_eq!(arp_reply(NODE_MAC, VIP, CLIENT_MAC, CLIENT_IP).to_vec(), hexdump(ARP_REPLY_FROM_SPEAKER));
    }

    #[test]
    fn gratuitous_arp_is_a_broadcast_announcement_with_zero_target_mac() {
        let frame = gratuitous_arp(NODE_MAC, VIP);
        let arp = ArpPacket::parse(&frame[ethernet::HEADER_LEN..]).expect("parses");
        assert_eq!(frame[..6], MacAddress::BROADCAST.octets());
        assert_eq!(arp.kind(), ArpKind::Announcement);
        assert_eq!((arp.sender_mac(), arp.sender_ip(), arp.target_ip()), (NODE_MAC, VIP, VIP));
        assert_eq!(arp.target_mac(), MacAddress::UNSPECIFIED);
    }

    #[test]
    fn gratuitous_arp_reply_is_a_broadcast_reply_for_our_own_ip() {
        let frame = gratuitous_arp_reply(NODE_MAC, VIP);
        let arp = ArpPacket::parse(&frame[ethernet::HEADER_LEN..]).expect("parses");
        assert_eq!(frame[..6], MacAddress::BROADCAST.octets());
        assert_eq!(arp.kind(), ArpKind::GratuitousReply);
        assert_eq!(arp.target_mac(), MacAddress::BROADCAST);
    }

    #[test]
    fn arp_probe_matches_rfc_5227() {
        let frame = arp_probe(NODE_MAC, VIP);
        let arp = ArpPacket::parse(&frame[ethernet::HEADER_LEN..]).expect("parses");
        assert_eq!(frame[..6], MacAddress::BROADCAST.octets());
        assert_eq!(arp.kind(), ArpKind::Probe);
        assert_eq!((arp.sender_mac(), arp.sender_ip()), (NODE_MAC, Ipv4Addr::UNSPECIFIED));
        assert_eq!((arp.target_mac(), arp.target_ip()), (MacAddress::UNSPECIFIED, VIP));
    }

    #[test]
    fn a_hardware_type_other_than_ethernet_is_refused() {
        let mut frame = hexdump(ARP_REQUEST);
        frame[15] = 6; // IEEE 802 networks
        assert_eq!(ArpPacket::parse(&frame[ethernet::HEADER_LEN..]), Err(PacketError::BadArpHardware));
    }

    #[test]
    fn a_hardware_length_other_than_six_is_refused() {
        let mut frame = hexdump(ARP_REQUEST);
        frame[18] = 8;
        assert_eq!(ArpPacket::parse(&frame[ethernet::HEADER_LEN..]), Err(PacketError::BadArpHardware));
    }

    #[test]
    fn a_protocol_other_than_ipv4_is_refused() {
        let mut frame = hexdump(ARP_REQUEST);
        frame[16..18].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert_eq!(ArpPacket::parse(&frame[ethernet::HEADER_LEN..]), Err(PacketError::BadArpProtocol));
        let mut frame = hexdump(ARP_REQUEST);
        frame[19] = 16;
        assert_eq!(ArpPacket::parse(&frame[ethernet::HEADER_LEN..]), Err(PacketError::BadArpProtocol));
    }

    #[test]
    fn an_operation_other_than_request_or_reply_is_refused() {
        for code in [0u16, 3, 4, 8, 9, 0xffff] {
            let mut frame = hexdump(ARP_REQUEST);
            frame[20..22].copy_from_slice(&code.to_be_bytes());
            assert_eq!(ArpPacket::parse(&frame[ethernet::HEADER_LEN..]), Err(PacketError::BadArpOperation), "{code}");
        }
    }

    #[test]
    fn a_packet_shorter_than_28_bytes_is_truncated() {
        let frame = hexdump(ARP_REQUEST);
        for end in ethernet::HEADER_LEN..FRAME_LEN {
            assert_eq!(ArpPacket::parse(&frame[ethernet::HEADER_LEN..end]), Err(PacketError::Truncated), "{end}");
        }
    }
}
