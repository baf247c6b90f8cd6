//! The IPv6 fixed header (RFC 8200 §3), as far as Neighbor Discovery needs it.
//!
//! Where it sits: socket → **parse** → decide → **build** → send. Between the Ethernet frame and
//! the ICMPv6 message: [`Ipv6Packet::parse`] checks the version and that the payload the header
//! announces is really there; `header` writes the header of every NDP frame the builders make.
//!
//! # Extension headers
//!
//! None are walked. A packet whose next header is not ICMPv6 is not Neighbor Discovery as far as
//! the speaker is concerned and [`super::parse`] reports it as [`super::Packet::Other`], not as an
//! error. This loses nothing: NS and NA are sent without extension headers, RFC 6980 §5 requires
//! that fragmented ND be dropped, and the one common ICMPv6 message behind a hop-by-hop header, MLD
//! (behind a Router Alert), is the kernel's business, not the speaker's.
//!
//! # Length
//!
//! The payload is exactly the payload length the header announces: bytes beyond it are Ethernet
//! padding and are dropped, and a frame that ends before it is [`PacketError::Truncated`]. A
//! payload length of zero (a jumbogram, RFC 2675) would need a hop-by-hop header, so it is simply an
//! empty payload here.

use std::net::Ipv6Addr;

use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::ipv6::MutableIpv6Packet;

use super::PacketError;

/// Length of the IPv6 fixed header.
pub const HEADER_LEN: usize = pnet_packet::ipv6::Ipv6Packet::minimum_packet_size();

/// The IPv6 header of a received packet, and the payload it announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Packet<'a> {
    traffic_class: u8,
    flow_label: u32,
    next_header: u8,
    hop_limit: u8,
    source: Ipv6Addr,
    destination: Ipv6Addr,
    payload: &'a [u8],
}

impl<'a> Ipv6Packet<'a> {
    /// Parses the fixed header at the start of an Ethernet payload.
    ///
    /// A version other than 6 is [`PacketError::BadIpVersion`]; a buffer shorter than the header
    /// or than the payload length it announces is [`PacketError::Truncated`].
    pub fn parse(packet: &'a [u8]) -> Result<Self, PacketError> {
        let header = pnet_packet::ipv6::Ipv6Packet::new(packet).ok_or(PacketError::Truncated)?;
        if header.get_version() != 6 {
            return Err(PacketError::BadIpVersion);
        }
        // pnet's payload() quietly stops at the end of the buffer; a payload length past it is a
        // frame cut short, which is ours to report. Cut here, too, so the slice borrows the frame.
        let payload_len = usize::from(header.get_payload_length());
        let payload =
            packet.get(HEADER_LEN..).and_then(|rest| rest.get(..payload_len)).ok_or(PacketError::Truncated)?;
        Ok(Self {
            traffic_class: header.get_traffic_class(),
            flow_label: header.get_flow_label(),
            next_header: header.get_next_header().0,
            hop_limit: header.get_hop_limit(),
            source: header.get_source(),
            destination: header.get_destination(),
            payload,
        })
    }

    /// Traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        self.traffic_class
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        self.flow_label
    }

    /// The protocol of the payload; [`super::icmpv6::NEXT_HEADER`] for ICMPv6.
    pub fn next_header(&self) -> u8 {
        self.next_header
    }

    /// Hop limit; Neighbor Discovery requires 255 (RFC 4861 §7.1), which [`super::ndp`] checks.
    pub fn hop_limit(&self) -> u8 {
        self.hop_limit
    }

    /// Source address.
    pub fn source(&self) -> Ipv6Addr {
        self.source
    }

    /// Destination address.
    pub fn destination(&self) -> Ipv6Addr {
        self.destination
    }

    /// The payload, exactly as long as the header's payload length (padding dropped).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// Writes an IPv6 fixed header with traffic class and flow label zero into the first [`HEADER_LEN`]
/// bytes of `packet`. As with [`super::ethernet::write_header`], a buffer too short (which the
/// builders never pass) is left as it is rather than a panic.
pub(super) fn write_header(
    packet: &mut [u8],
    source: Ipv6Addr,
    destination: Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    payload_len: u16,
) {
    if let Some(mut header) = MutableIpv6Packet::new(packet) {
        header.set_version(6);
        header.set_payload_length(payload_len);
        header.set_next_header(IpNextHeaderProtocol(next_header));
        header.set_hop_limit(hop_limit);
        header.set_source(source);
        header.set_destination(destination);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::ethernet;
    use crate::packet::test_vectors::{NEIGHBOR_SOLICITATION, hexdump};

    fn ipv6_bytes_of(dump: &str) -> Vec<u8> {
        hexdump(dump)[ethernet::HEADER_LEN..].to_vec()
    }

    #[test]
    fn every_header_field_of_a_captured_solicitation_is_parsed() {
        let bytes = ipv6_bytes_of(NEIGHBOR_SOLICITATION);
        let ipv6 = Ipv6Packet::parse(&bytes).expect("captured packet parses");
        assert_eq!(ipv6.traffic_class(), 0);
        assert_eq!(ipv6.flow_label(), 0);
        assert_eq!(ipv6.next_header(), 58);
        assert_eq!(ipv6.hop_limit(), 255);
        assert_eq!(ipv6.source(), "fd6c:6a7e:5f2b:2::c8".parse::<Ipv6Addr>().expect("address"));
        assert_eq!(ipv6.destination(), "ff02::1:ff00:10".parse::<Ipv6Addr>().expect("address"));
        assert_eq!(ipv6.payload().len(), 32);
    }

    #[test]
    fn traffic_class_and_flow_label_straddle_nibbles() {
        let mut bytes = ipv6_bytes_of(NEIGHBOR_SOLICITATION);
        bytes[..4].copy_from_slice(&[0x6b, 0xa1, 0x23, 0x45]);
        let ipv6 = Ipv6Packet::parse(&bytes).expect("parses");
        assert_eq!(ipv6.traffic_class(), 0xba);
        assert_eq!(ipv6.flow_label(), 0x1_2345);
    }

    #[test]
    fn a_version_other_than_6_is_refused() {
        let mut bytes = ipv6_bytes_of(NEIGHBOR_SOLICITATION);
        bytes[0] = 0x45;
        assert_eq!(Ipv6Packet::parse(&bytes), Err(PacketError::BadIpVersion));
    }

    #[test]
    fn bytes_beyond_the_payload_length_are_padding() {
        let mut bytes = ipv6_bytes_of(NEIGHBOR_SOLICITATION);
        bytes.extend_from_slice(&[0; 8]);
        assert_eq!(Ipv6Packet::parse(&bytes).expect("parses").payload().len(), 32);
    }

    #[test]
    fn a_payload_length_beyond_the_buffer_is_truncated() {
        let mut bytes = ipv6_bytes_of(NEIGHBOR_SOLICITATION);
        bytes[4..6].copy_from_slice(&33u16.to_be_bytes());
        assert_eq!(Ipv6Packet::parse(&bytes), Err(PacketError::Truncated));
    }

    #[test]
    fn header_round_trips() {
        let source = "fe80::ff:fe00:1".parse().expect("address");
        let destination = "ff02::1".parse().expect("address");
        let mut bytes = vec![0; HEADER_LEN + 4];
        write_header(&mut bytes, source, destination, 58, 255, 4);
        bytes[HEADER_LEN..].copy_from_slice(&[1, 2, 3, 4]);
        let ipv6 = Ipv6Packet::parse(&bytes).expect("parses");
        assert_eq!((ipv6.source(), ipv6.destination()), (source, destination));
        assert_eq!((ipv6.next_header(), ipv6.hop_limit(), ipv6.payload()), (58, 255, &[1, 2, 3, 4][..]));
    }
}
