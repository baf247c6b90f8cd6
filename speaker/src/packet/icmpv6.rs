//! ICMPv6 (RFC 4443): the message header and its checksum over the IPv6 pseudo-header.
//!
//! Where it sits: socket → **parse** → decide → **build** → send. Between the IPv6 header and the
//! Neighbor Discovery messages: [`Icmpv6Packet::parse`] reads type and code so [`super::parse`] can
//! pick NS and NA out of everything else; [`checksum`] is the one checksum routine, used both to
//! verify a received message and to fill in a built one.
//!
//! # Checksum
//!
//! The sum is pnet's: [`checksum`] is what `pnet_packet::icmpv6::checksum` computes (RFC 4443 §2.3,
//! over the RFC 8200 §8.1 pseudo-header with next header 58, skipping the checksum field), taken
//! from a slice so callers need no typed view. That is right for Neighbor Discovery, which uses the
//! plain ICMPv6 checksum. What pnet does not do is verify: [`Icmpv6Packet::checksum_is_valid`]
//! compares, and accepts either form of ones'-complement zero as a receiver must (RFC 1071 §3).

use std::net::Ipv6Addr;

use pnet_packet::ip::IpNextHeaderProtocols;

use super::PacketError;

/// The IPv6 next-header value of ICMPv6 (RFC 4443 §1).
pub const NEXT_HEADER: u8 = 58;
/// The checksum field is the second 16-bit word of the message, which the sum leaves out.
const CHECKSUM_WORD: usize = 1;

/// An ICMPv6 message: type, code, checksum and body (RFC 4443 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmpv6Packet<'a> {
    message: &'a [u8],
    message_type: u8,
    code: u8,
    checksum: u16,
    body: &'a [u8],
}

impl<'a> Icmpv6Packet<'a> {
    /// Parses the message that is the whole of an IPv6 payload.
    ///
    /// The IPv6 layer has already cut the payload to the announced length, so a message too short
    /// for its 4-byte header is a length field that lies: [`PacketError::BadLength`]. The checksum is
    /// not verified here; [`Self::checksum_is_valid`] does it once the type says the message matters.
    pub fn parse(message: &'a [u8]) -> Result<Self, PacketError> {
        let header = pnet_packet::icmpv6::Icmpv6Packet::new(message).ok_or(PacketError::BadLength)?;
        let body = message.get(pnet_packet::icmpv6::Icmpv6Packet::minimum_packet_size()..).unwrap_or_default();
        Ok(Self {
            message,
            message_type: header.get_icmpv6_type().0,
            code: header.get_icmpv6_code().0,
            checksum: header.get_checksum(),
            body,
        })
    }

    /// The whole message, header included, for the Neighbor Discovery views.
    pub(super) fn message(&self) -> &'a [u8] {
        self.message
    }

    /// The message type; 135 and 136 are Neighbor Solicitation and Advertisement (RFC 4861 §4).
    pub fn message_type(&self) -> u8 {
        self.message_type
    }

    /// The code; 0 for every Neighbor Discovery message.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The checksum field as received.
    pub fn checksum_field(&self) -> u16 {
        self.checksum
    }

    /// Everything after the 4-byte header.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Whether the checksum is right for a message sent from `source` to `destination`.
    ///
    /// The field must equal the computed checksum, except that where that is `0x0000` a sender may
    /// equally have written `0xffff`, the other ones'-complement zero: summing the message with
    /// either gives all ones, which is the test RFC 1071 §1 and Linux's receive path apply.
    pub fn checksum_is_valid(&self, source: Ipv6Addr, destination: Ipv6Addr) -> bool {
        let expected = checksum(source, destination, self.message);
        self.checksum == expected || (expected == 0 && self.checksum == 0xffff)
    }
}

/// The ICMPv6 checksum of `message` sent from `source` to `destination` (RFC 4443 §2.3): the value
/// its checksum field must hold. The field's own content is left out of the sum, so it need not be
/// zeroed first. See the module docs for where the sum comes from.
pub fn checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    pnet_packet::util::ipv6_checksum(message, CHECKSUM_WORD, &[], &source, &destination, IpNextHeaderProtocols::Icmpv6)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::test_vectors::{DAD_PROBE, NEIGHBOR_ADVERTISEMENT, NEIGHBOR_SOLICITATION, hexdump};
    use crate::packet::{ethernet, ipv6::Ipv6Packet};

    fn with_icmp<T>(dump: &str, check: impl FnOnce(&Ipv6Packet<'_>, &Icmpv6Packet<'_>) -> T) -> T {
        let frame = hexdump(dump);
        let ipv6 = Ipv6Packet::parse(&frame[ethernet::HEADER_LEN..]).expect("ipv6 parses");
        let icmp = Icmpv6Packet::parse(ipv6.payload()).expect("icmpv6 parses");
        check(&ipv6, &icmp)
    }

    #[test]
    fn header_fields_of_a_captured_solicitation_are_parsed() {
        with_icmp(NEIGHBOR_SOLICITATION, |_, icmp| {
            assert_eq!(icmp.message_type(), 135);
            assert_eq!(icmp.code(), 0);
            assert_eq!(icmp.checksum_field(), 0x2515);
            assert_eq!(icmp.body().len(), 28);
        });
    }

    #[test]
    fn captured_checksums_verify() {
        for dump in [NEIGHBOR_SOLICITATION, DAD_PROBE, NEIGHBOR_ADVERTISEMENT] {
            with_icmp(dump, |ipv6, icmp| assert!(icmp.checksum_is_valid(ipv6.source(), ipv6.destination())));
        }
    }

    #[test]
    fn checksum_of_the_message_with_a_zero_field_is_the_captured_one() {
        with_icmp(NEIGHBOR_SOLICITATION, |ipv6, icmp| {
            let mut message = ipv6.payload().to_vec();
            message[2..4].fill(0);
            assert_eq!(checksum(ipv6.source(), ipv6.destination(), &message), icmp.checksum_field());
        });
    }

    #[test]
    fn checksum_covers_the_pseudo_header() {
        with_icmp(NEIGHBOR_SOLICITATION, |ipv6, icmp| {
            assert!(icmp.checksum_is_valid(ipv6.source(), ipv6.destination()));
            assert!(!icmp.checksum_is_valid(Ipv6Addr::UNSPECIFIED, ipv6.destination()));
        });
    }

    /// RFC 1071 §4.1 written out, independently of pnet: the ones'-complement sum of big-endian
    /// words with end-around carry, an odd trailing byte padded with zero.
    fn rfc_1071_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
        let length = u32::try_from(message.len()).expect("fits").to_be_bytes();
        let mut bytes =
            [&source.octets()[..], &destination.octets(), &length, &[0, 0, 0, NEXT_HEADER], message].concat();
        bytes[42..44].fill(0); // the checksum field: after 40 bytes of pseudo-header, at offset 2
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        let mut sum: u32 = bytes.chunks(2).map(|word| u32::from(u16::from_be_bytes([word[0], word[1]]))).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn the_other_zero_is_accepted_where_the_checksum_is_zero() {
        with_icmp(NEIGHBOR_SOLICITATION, |ipv6, _| {
            // Pick the last two bytes of the option so that the sum without the field is all ones.
            let mut message = ipv6.payload().to_vec();
            let len = message.len();
            message[len - 2..].fill(0);
            message[2..4].fill(0);
            let without = !checksum(ipv6.source(), ipv6.destination(), &message);
            message[len - 2..].copy_from_slice(&(0xffff - without).to_be_bytes());
            assert_eq!(checksum(ipv6.source(), ipv6.destination(), &message), 0);
            for field in [0x0000u16, 0xffff] {
                message[2..4].copy_from_slice(&field.to_be_bytes());
                let icmp = Icmpv6Packet::parse(&message).expect("parses");
                assert!(icmp.checksum_is_valid(ipv6.source(), ipv6.destination()), "{field:#06x}");
            }
        });
    }

    proptest::proptest! {
        #[test]
        fn pnets_checksum_is_rfc_1071_for_any_message(
            source in proptest::prelude::any::<[u8; 16]>(),
            destination in proptest::prelude::any::<[u8; 16]>(),
            message in proptest::collection::vec(proptest::prelude::any::<u8>(), 4..200),
        ) {
            let (source, destination) = (Ipv6Addr::from(source), Ipv6Addr::from(destination));
            proptest::prop_assert_eq!(checksum(source, destination, &message), rfc_1071_checksum(source, destination, &message));
        }
    }

    #[test]
    fn a_message_shorter_than_its_header_is_a_bad_length() {
        for len in 0..4 {
            assert_eq!(Icmpv6Packet::parse(&[135, 0, 0, 0][..len]), Err(PacketError::BadLength));
        }
    }
}
