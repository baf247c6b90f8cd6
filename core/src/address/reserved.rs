//! Address blocks no host on a LAN can use, so no pool may hand out an address in them.
//!
//! One table, [`RESERVED_BLOCKS`], serves both sides: [`parse_entry`](super::parse_entry)
//! refuses an entry that shares an address with a block, and `v1alpha1::cel` generates the API
//! server's rule from the same table, so the two never disagree about which blocks there are.
//!
//! An entry is refused when it *overlaps* a block, not only when it lies inside one: `0.0.0.0/0`
//! holds `0.0.0.0/8`, and `126.0.0.0-128.0.0.0` holds `127.0.0.0/8`, so either would let the
//! allocator hand out an address that no client can reach.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{AddressRange, Prefix};

/// What a reserved block is for, as the refusal message says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReservedUse {
    /// `0.0.0.0/8` ("this network", RFC 1122) and `::/128`: the address of no host.
    Unspecified,
    /// `127.0.0.0/8` and `::1/128`: each host's own loopback.
    Loopback,
    /// `169.254.0.0/16` and `fe80::/10`: never forwarded, and every interface has its own.
    LinkLocal,
    /// `224.0.0.0/4` and `ff00::/8`: group addresses, never a single host's.
    Multicast,
    /// `255.255.255.255/32`: every host of the local network at once.
    LimitedBroadcast,
}

impl ReservedUse {
    /// The words the refusal message uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::LinkLocal => "link-local",
            Self::Multicast => "multicast",
            Self::LimitedBroadcast => "limited broadcast",
        }
    }
}

impl fmt::Display for ReservedUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A block of [`RESERVED_BLOCKS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReservedBlock {
    block: Prefix,
    reserved_for: ReservedUse,
}

impl ReservedBlock {
    const fn v4([a, b, c, d]: [u8; 4], len: u8, reserved_for: ReservedUse) -> Self {
        Self { block: Prefix::constant(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), len), reserved_for }
    }

    const fn v6([a, b, c, d, e, f, g, h]: [u16; 8], len: u8, reserved_for: ReservedUse) -> Self {
        Self { block: Prefix::constant(IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)), len), reserved_for }
    }

    /// The block's addresses.
    pub const fn block(self) -> Prefix {
        self.block
    }

    /// Why no LAN host can use them.
    pub const fn reserved_for(self) -> ReservedUse {
        self.reserved_for
    }
}

/// `224.0.0.0/4 (multicast)`: how the refusal message names the block.
impl fmt::Display for ReservedBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.block, self.reserved_for)
    }
}

/// The blocks no pool entry may overlap, IPv4 first, each family in address order (the order
/// decides which block a refusal names when an entry overlaps several: the lowest).
pub const RESERVED_BLOCKS: [ReservedBlock; 9] = {
    use ReservedUse::{LimitedBroadcast, LinkLocal, Loopback, Multicast, Unspecified};
    [
        ReservedBlock::v4([0, 0, 0, 0], 8, Unspecified),
        ReservedBlock::v4([127, 0, 0, 0], 8, Loopback),
        ReservedBlock::v4([169, 254, 0, 0], 16, LinkLocal),
        ReservedBlock::v4([224, 0, 0, 0], 4, Multicast),
        ReservedBlock::v4([255, 255, 255, 255], 32, LimitedBroadcast),
        ReservedBlock::v6([0; 8], 128, Unspecified),
        ReservedBlock::v6([0, 0, 0, 0, 0, 0, 0, 1], 128, Loopback),
        ReservedBlock::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, LinkLocal),
        ReservedBlock::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Multicast),
    ]
};

/// The lowest reserved block that shares an address with `range`, if any.
pub fn first_reserved_overlap(range: AddressRange) -> Option<ReservedBlock> {
    RESERVED_BLOCKS.into_iter().find(|reserved| range.overlaps(reserved.block.range()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Family;

    fn v4(first: [u8; 4], last: [u8; 4]) -> AddressRange {
        AddressRange::new(Ipv4Addr::from(first).into(), Ipv4Addr::from(last).into()).unwrap_or_else(|| panic!("order"))
    }

    fn v6(first: &str, last: &str) -> AddressRange {
        let (first, last): (IpAddr, IpAddr) = (first.parse().expect("address"), last.parse().expect("address"));
        AddressRange::new(first, last).unwrap_or_else(|| panic!("order"))
    }

    fn named(range: AddressRange) -> Option<String> {
        first_reserved_overlap(range).map(|reserved| reserved.to_string())
    }

    #[test]
    fn blocks_are_sorted_and_disjoint_so_the_lowest_is_named() {
        let key = |reserved: &ReservedBlock| (reserved.block.family(), reserved.block.range().interval().start());
        for pair in RESERVED_BLOCKS.windows(2) {
            assert!(key(&pair[0]) < key(&pair[1]), "{} before {}", pair[0], pair[1]);
            assert!(!pair[0].block.range().overlaps(pair[1].block.range()), "{} and {}", pair[0], pair[1]);
        }
        assert!(RESERVED_BLOCKS.iter().any(|reserved| reserved.block.family() == Family::V6));
    }

    #[test]
    fn the_addresses_just_outside_each_block_are_usable() {
        // One past each end of every block, except where the block touches the family's ends
        // or another block.
        let cases = [
            (v4([1, 0, 0, 0], [1, 0, 0, 0]), None),
            (v4([0, 255, 255, 255], [0, 255, 255, 255]), Some("0.0.0.0/8 (unspecified)")),
            (v4([126, 255, 255, 255], [126, 255, 255, 255]), None),
            (v4([127, 0, 0, 0], [127, 0, 0, 0]), Some("127.0.0.0/8 (loopback)")),
            (v4([127, 255, 255, 255], [127, 255, 255, 255]), Some("127.0.0.0/8 (loopback)")),
            (v4([128, 0, 0, 0], [128, 0, 0, 0]), None),
            (v4([169, 253, 255, 255], [169, 253, 255, 255]), None),
            (v4([169, 254, 0, 0], [169, 254, 0, 0]), Some("169.254.0.0/16 (link-local)")),
            (v4([169, 255, 0, 0], [169, 255, 0, 0]), None),
            (v4([223, 255, 255, 255], [223, 255, 255, 255]), None),
            (v4([224, 0, 0, 0], [224, 0, 0, 0]), Some("224.0.0.0/4 (multicast)")),
            (v4([239, 255, 255, 255], [239, 255, 255, 255]), Some("224.0.0.0/4 (multicast)")),
            (v4([240, 0, 0, 0], [255, 255, 255, 254]), None),
            (v4([255, 255, 255, 255], [255, 255, 255, 255]), Some("255.255.255.255/32 (limited broadcast)")),
            (v6("::", "::"), Some("::/128 (unspecified)")),
            (v6("::1", "::1"), Some("::1/128 (loopback)")),
            (v6("::2", "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), None),
            (v6("fe80::", "fe80::"), Some("fe80::/10 (link-local)")),
            (
                v6("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
                Some("fe80::/10 (link-local)"),
            ),
            (v6("fec0::", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), None),
            (v6("ff00::", "ff00::"), Some("ff00::/8 (multicast)")),
        ];
        for (range, expected) in cases {
            assert_eq!(named(range).as_deref(), expected, "{range}");
        }
    }

    #[test]
    fn a_range_spanning_a_block_overlaps_it() {
        assert_eq!(named(v4([126, 0, 0, 0], [128, 0, 0, 0])).as_deref(), Some("127.0.0.0/8 (loopback)"));
        assert_eq!(named(v4([1, 0, 0, 0], [255, 0, 0, 0])).as_deref(), Some("127.0.0.0/8 (loopback)"));
        assert_eq!(named(v6("fe00::", "ff00::")).as_deref(), Some("fe80::/10 (link-local)"));
        // The family decides: an IPv4 range never overlaps an IPv6 block.
        assert_eq!(named(v4([1, 0, 0, 0], [1, 0, 0, 1])), None);
    }
}
