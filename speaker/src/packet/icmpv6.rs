//! ICMPv6 (RFC 4443): the message header and its checksum over the IPv6 pseudo-header.
//!
//! Where it sits: socket → **parse** → decide → **build** → send. Between the IPv6 header and the
//! Neighbor Discovery messages: [`Icmpv6Packet::parse`] reads type and code so [`super::parse`] can
//! pick NS and NA out of everything else; [`checksum`] is the one checksum routine, used both to
//! verify a received message and to fill in a built one.

use std::net::Ipv6Addr;

use super::PacketError;
use super::wire::Reader;

/// The IPv6 next-header value of ICMPv6 (RFC 4443 §1).
pub const NEXT_HEADER: u8 = 58;

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
        let mut reader = Reader::new(message);
        let [message_type, code] = *reader.array().map_err(|_| PacketError::BadLength)?;
        let checksum = reader.u16().map_err(|_| PacketError::BadLength)?;
        Ok(Self { message, message_type, code, checksum, body: reader.rest() })
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

    /// Whether the checksum is right for a message sent from `source` to `destination`: summing
    /// the pseudo-header and the message, checksum field included, gives all ones (RFC 1071 §1).
    pub fn checksum_is_valid(&self, source: Ipv6Addr, destination: Ipv6Addr) -> bool {
        checksum(source, destination, self.message) == 0
    }
}

/// The ICMPv6 checksum of `message` sent from `source` to `destination` (RFC 4443 §2.3): the ones'
/// complement of the ones' complement sum (RFC 1071) of the IPv6 pseudo-header (RFC 8200 §8.1) and
/// the message.
///
/// For a message whose checksum field is zero this is the value to write into it; for a received
/// message it is zero exactly when the checksum it carries is right.
pub fn checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    // RFC 8200 §8.1: the upper-layer length is a 32-bit field. It is summed here as 64 bits so no
    // conversion can fail or truncate; the extra high word is zero and adds nothing.
    let length = u64::try_from(message.len()).unwrap_or(u64::MAX).to_be_bytes();
    let sum = [&source.octets()[..], &destination.octets(), &length, &[0, 0, 0, NEXT_HEADER], message]
        .iter()
        .fold(0, |sum, part| ones_complement_sum(sum, part));
    !sum
}

/// Adds `bytes`, as big-endian 16-bit words, to `sum` with end-around carry (RFC 1071 §4.1). An odd
/// trailing byte is padded with zero. Every part the checksum covers except the last has even
/// length, so summing part by part equals summing their concatenation.
fn ones_complement_sum(sum: u16, bytes: &[u8]) -> u16 {
    let (words, odd) = bytes.as_chunks::<2>();
    let trailing = odd.first().map(|&byte| [byte, 0]);
    words.iter().chain(trailing.as_ref()).fold(sum, |sum, &word| {
        let (total, carry) = sum.overflowing_add(u16::from_be_bytes(word));
        total.wrapping_add(u16::from(carry))
    })
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

    #[test]
    fn an_odd_trailing_byte_is_padded_with_zero() {
        assert_eq!(ones_complement_sum(0, &[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn the_sum_carries_around_the_end() {
        assert_eq!(ones_complement_sum(0xffff, &[0x00, 0x02]), 0x0002);
        assert_eq!(ones_complement_sum(0, &[0xff, 0xff, 0xff, 0xff]), 0xffff);
    }

    #[test]
    fn a_message_shorter_than_its_header_is_a_bad_length() {
        for len in 0..4 {
            assert_eq!(Icmpv6Packet::parse(&[135, 0, 0, 0][..len]), Err(PacketError::BadLength));
        }
    }
}
