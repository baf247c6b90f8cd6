//! Pool entries: parsing `spec.addresses` strings into family-tagged address ranges.
//!
//! The parser checks an entry in the same order, with the same outcome, as the CEL rules the
//! API server runs on `spec.addresses` (see `v1alpha1::cel`): zone, IPv4-mapped, malformed,
//! mixed families, reserved, single address, host bits, reversed. Address syntax is Rust's `std::net`
//! parser, which agrees with Go's `net/netip` used by Kubernetes CEL (no leading zeros in IPv4
//! octets, at most four hex digits per IPv6 group, `::` standing for at least one group).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::interval::{Prefixes, low_mask};
use super::{AddressCount, AddressError, Interval, first_reserved_overlap};

/// An IP address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4: addresses are the numbers below 2^32.
    V4,
    /// IPv6: addresses are all `u128` values.
    V6,
}

impl Family {
    /// Both families, IPv4 first (the order used in status and summaries).
    pub const ALL: [Self; 2] = [Self::V4, Self::V6];

    /// The family of an address.
    pub const fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// Address width in bits: 32 or 128.
    pub const fn bits(self) -> u32 {
        match self {
            Self::V4 => 32,
            Self::V6 => 128,
        }
    }

    /// The highest address of the family, as a number.
    pub const fn max_address(self) -> u128 {
        low_mask(self.bits())
    }

    /// The address with this number, or `None` when the number is too large for the family.
    pub fn address(self, number: u128) -> Option<IpAddr> {
        match self {
            Self::V4 => u32::try_from(number).ok().map(|n| IpAddr::V4(Ipv4Addr::from(n))),
            Self::V6 => Some(IpAddr::V6(Ipv6Addr::from(number))),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        })
    }
}

/// An address as a number, for interval arithmetic: IPv4 addresses map to `0..2^32`.
pub fn address_number(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// A CIDR block: a network address with no host bits set, and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    family: Family,
    network: u128,
    len: u8,
}

impl Prefix {
    /// The block of `len` leading bits around `address` (host bits are cleared), or `None` when
    /// `len` is longer than the family's width.
    pub fn new(address: IpAddr, len: u8) -> Option<Self> {
        let family = Family::of(address);
        let host_bits = family.bits().checked_sub(u32::from(len))?;
        let network = address_number(address) & !low_mask(host_bits);
        Some(Self { family, network, len })
    }

    /// The block `address/len` for a constant table; a host bit set in `address`, or a `len`
    /// longer than the family's width, fails the build.
    pub(crate) const fn constant(address: IpAddr, len: u8) -> Self {
        let (family, number) = match address {
            IpAddr::V4(v4) => (Family::V4, v4.to_bits() as u128),
            IpAddr::V6(v6) => (Family::V6, v6.to_bits()),
        };
        assert!(len as u32 <= family.bits(), "prefix length longer than the address");
        assert!(number & low_mask(family.bits() - len as u32) == 0, "host bits set in a constant block");
        Self { family, network: number, len }
    }

    /// The address family.
    pub const fn family(self) -> Family {
        self.family
    }

    /// The prefix length: how many leading bits are fixed.
    pub const fn prefix_len(self) -> u8 {
        self.len
    }

    /// The first address of the block.
    pub fn network(self) -> IpAddr {
        // `new` derived `network` from an address of `family`, so it always fits.
        self.family.address(self.network).unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    }

    /// The addresses of the block.
    pub fn range(self) -> AddressRange {
        let host_bits = self.family.bits() - u32::from(self.len);
        let interval =
            Interval::new(self.network, self.network | low_mask(host_bits)).unwrap_or(Interval::single(self.network));
        AddressRange { family: self.family, interval }
    }
}

/// `192.168.2.0/24`, `fd00::/64`: the address in canonical form (RFC 5952 for IPv6).
impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.len)
    }
}

/// A pool entry after parsing: an inclusive interval of addresses of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddressRange {
    family: Family,
    interval: Interval,
}

impl AddressRange {
    /// The range `first..=last`, or `None` when the ends differ in family or are reversed.
    pub fn new(first: IpAddr, last: IpAddr) -> Option<Self> {
        if Family::of(first) != Family::of(last) {
            return None;
        }
        let interval = Interval::new(address_number(first), address_number(last))?;
        Some(Self { family: Family::of(first), interval })
    }

    /// The range of `interval` in `family`, or `None` when it reaches past the family's last
    /// address.
    pub fn from_interval(family: Family, interval: Interval) -> Option<Self> {
        (interval.end() <= family.max_address()).then_some(Self { family, interval })
    }

    /// The address family.
    pub const fn family(self) -> Family {
        self.family
    }

    /// The addresses as numbers.
    pub const fn interval(self) -> Interval {
        self.interval
    }

    /// The first address.
    pub fn first(self) -> IpAddr {
        self.address(self.interval.start())
    }

    /// The last address (inclusive).
    pub fn last(self) -> IpAddr {
        self.address(self.interval.end())
    }

    /// The number of addresses; exact, 2^128 included.
    pub fn len(self) -> AddressCount {
        self.interval.len()
    }

    /// The number of addresses the pool may hand out: with `avoid_buggy_ips`, IPv4 addresses
    /// ending in `.0` or `.255` are left out.
    pub fn usable_len(self, avoid_buggy_ips: bool) -> AddressCount {
        let len = self.len();
        if avoid_buggy_ips && self.family == Family::V4 {
            len.saturating_sub(AddressCount::new(self.interval.buggy_ipv4_count()))
        } else {
            len
        }
    }

    /// Whether `address` is in the range.
    pub fn contains(self, address: IpAddr) -> bool {
        Family::of(address) == self.family && self.interval.contains(address_number(address))
    }

    /// Whether the two ranges share an address (ranges of different families never do).
    pub fn overlaps(self, other: Self) -> bool {
        self.family == other.family && self.interval.overlaps(other.interval)
    }

    /// The addresses both ranges hold, if any.
    pub fn intersection(self, other: Self) -> Option<Self> {
        if self.family != other.family {
            return None;
        }
        let interval = self.interval.intersection(other.interval)?;
        Some(Self { family: self.family, interval })
    }

    /// The fewest CIDR blocks covering exactly this range, in ascending order.
    pub fn prefixes(self) -> impl Iterator<Item = Prefix> {
        let family = self.family;
        let blocks: Prefixes = self.interval.prefixes(family.bits());
        blocks.map(move |(network, len)| Prefix { family, network, len })
    }

    fn address(self, number: u128) -> IpAddr {
        // Construction keeps the interval inside the family, so this never falls back.
        self.family.address(number).unwrap_or(IpAddr::V6(Ipv6Addr::from(number)))
    }
}

impl From<Prefix> for AddressRange {
    fn from(prefix: Prefix) -> Self {
        prefix.range()
    }
}

/// The canonical spelling: `net/len` when the range is exactly one CIDR block, else
/// `first-last`. Parsing the output gives back the same range.
impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut blocks = self.prefixes();
        match (blocks.next(), blocks.next()) {
            (Some(only), None) => write!(f, "{only}"),
            _ => write!(f, "{}-{}", self.first(), self.last()),
        }
    }
}

/// Parses a pool entry; see [`parse_entry`].
impl FromStr for AddressRange {
    type Err = AddressError;

    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        parse_entry(entry)
    }
}

/// Parses one `spec.addresses` entry: a CIDR (`192.168.2.0/24`, `fd00::/64`) or a `start-end`
/// range (`192.168.2.10-192.168.2.49`, `fd00::10 - fd00::ff`). Whitespace around the entry and
/// around `-` is ignored.
///
/// # Errors
///
/// An [`AddressError`] naming the entry; the checks run in [`EntryProblem::ALL`] order.
///
/// [`EntryProblem::ALL`]: super::EntryProblem::ALL
pub fn parse_entry(entry: &str) -> Result<AddressRange, AddressError> {
    let owned = || entry.to_owned();
    let text = entry.trim();
    if text.contains('%') {
        return Err(AddressError::Zone { entry: owned() });
    }
    // Go's netip (behind CEL's isIP) refuses mapped addresses outright; checking them before the
    // syntax lets both sides give the specific message rather than "malformed".
    if address_parts(text).into_iter().any(is_ipv4_mapped) {
        return Err(AddressError::Ipv4Mapped { entry: owned() });
    }
    if text.contains('-') {
        let mut ends = text.split('-').map(str::trim);
        let (Some(start), Some(end), None) = (ends.next(), ends.next(), ends.next()) else {
            return Err(AddressError::Malformed { entry: owned() });
        };
        let (Ok(first), Ok(last)) = (start.parse::<IpAddr>(), end.parse::<IpAddr>()) else {
            return Err(AddressError::Malformed { entry: owned() });
        };
        if Family::of(first) != Family::of(last) {
            return Err(AddressError::MixedFamilies { entry: owned() });
        }
        // A reversed range still names its addresses; if they are reserved, no swap helps.
        refuse_reserved(entry, AddressRange::new(first.min(last), first.max(last)))?;
        return AddressRange::new(first, last)
            .ok_or_else(|| AddressError::Reversed { entry: owned(), swapped: format!("{end}-{start}") });
    }
    if let Some((address, len)) = parse_cidr(text) {
        let masked = Prefix::new(address, len).ok_or_else(|| AddressError::Malformed { entry: owned() })?;
        refuse_reserved(entry, Some(masked.range()))?;
        if masked.network() != address {
            return Err(AddressError::HostBitsSet { entry: owned(), masked });
        }
        return Ok(masked.range());
    }
    match text.parse::<IpAddr>() {
        Ok(address) => {
            refuse_reserved(entry, AddressRange::new(address, address))?;
            let cidr = format!("{text}/{}", Family::of(address).bits());
            Err(AddressError::SingleAddress { entry: owned(), cidr })
        }
        Err(_) => Err(AddressError::Malformed { entry: owned() }),
    }
}

/// Refuses `entry` when the addresses it means, `range`, include a reserved one.
fn refuse_reserved(entry: &str, range: Option<AddressRange>) -> Result<(), AddressError> {
    match range.and_then(first_reserved_overlap) {
        Some(reserved) => Err(AddressError::Reserved { entry: entry.to_owned(), reserved }),
        None => Ok(()),
    }
}

/// The address-looking parts of an entry: both ends of a two-ended range, else what precedes the
/// `/`. A range with more dashes has none (it is malformed whatever its parts are).
fn address_parts(text: &str) -> Vec<&str> {
    if text.contains('-') {
        let ends: Vec<&str> = text.split('-').map(str::trim).collect();
        if ends.len() == 2 { ends } else { Vec::new() }
    } else {
        text.split('/').take(1).collect()
    }
}

fn is_ipv4_mapped(text: &str) -> bool {
    text.parse::<Ipv6Addr>().is_ok_and(|address| address.to_ipv4_mapped().is_some())
}

/// `address/len` with Go's `netip.ParsePrefix` rules: the last `/` splits, the length is plain
/// decimal without sign or leading zero, and at most the family's width.
fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (address, len) = text.rsplit_once('/')?;
    let address = address.parse::<IpAddr>().ok()?;
    let plain_decimal =
        !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) && (len.len() == 1 || !len.starts_with('0'));
    let len = len.parse::<u8>().ok().filter(|_| plain_decimal)?;
    (u32::from(len) <= Family::of(address).bits()).then_some((address, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::EntryProblem;

    fn range(entry: &str) -> AddressRange {
        match parse_entry(entry) {
            Ok(range) => range,
            Err(error) => panic!("{entry} should parse: {error}"),
        }
    }

    #[test]
    fn tutorial_range_holds_forty_addresses() {
        let pool = range("192.168.2.10-192.168.2.49");
        assert_eq!(pool.len(), AddressCount::new(40));
        assert_eq!(pool.first().to_string(), "192.168.2.10");
        assert_eq!(pool.last().to_string(), "192.168.2.49");
    }

    #[test]
    fn spaces_around_the_dash_are_ignored() {
        assert_eq!(range(" fd00::10 - fd00::ff "), range("fd00::10-fd00::ff"));
    }

    /// How whitespace is read, pinned: the API server's CEL rules trim the entry and each end
    /// of a range with the same Unicode whitespace set as `str::trim` (see `v1alpha1::cel`), so
    /// both sides read these alike; `tests/apiserver_conformance.rs` holds the same entries.
    #[test]
    fn whitespace_is_ignored_around_the_entry_and_the_dash_only() {
        let read_as = [
            (" 10.0.0.0/8", Ok("10.0.0.0/8")),
            ("10.0.0.0/8\n", Ok("10.0.0.0/8")),
            ("\t10.0.0.0/8\t", Ok("10.0.0.0/8")),
            ("\u{a0}10.0.0.0/8\u{3000}", Ok("10.0.0.0/8")),
            ("1.2.3.4 - 1.2.3.9", Ok("1.2.3.4-1.2.3.9")),
            ("1.2.3.4\t-\t1.2.3.9", Ok("1.2.3.4-1.2.3.9")),
            ("1.2.3.4\n-\n1.2.3.9", Ok("1.2.3.4-1.2.3.9")),
            ("10.0.0.0 /8", Err(EntryProblem::Malformed)),
            ("10.0.0.0/ 8", Err(EntryProblem::Malformed)),
            ("10.0.0.0\t/8", Err(EntryProblem::Malformed)),
            ("1.2.3. 4-1.2.3.9", Err(EntryProblem::Malformed)),
            ("1.2.3.4 1.2.3.9", Err(EntryProblem::Malformed)),
            ("fd00::1\nfd00::2", Err(EntryProblem::Malformed)),
            ("fd00:: 1/128", Err(EntryProblem::Malformed)),
            ("\u{200b}10.0.0.0/8", Err(EntryProblem::Malformed)),
        ];
        for (entry, expected) in read_as {
            let read = parse_entry(entry).map(|range| range.to_string()).map_err(|error| error.problem());
            assert_eq!(read, expected.map(str::to_owned), "{entry:?}");
        }
    }

    #[test]
    fn ipv6_slash_64_is_counted_not_enumerated() {
        assert_eq!(range("fd00::/64").len(), AddressCount::new(1 << 64));
        assert_eq!(range("2000::/3").len(), AddressCount::new(1 << 125));
    }

    #[test]
    fn avoid_buggy_ips_removes_dot_zero_and_dot_255() {
        let pool = range("192.168.2.0/24");
        assert_eq!(pool.usable_len(true), AddressCount::new(254));
        assert_eq!(pool.usable_len(false), AddressCount::new(256));
        assert_eq!(range("fd00::/120").usable_len(true), AddressCount::new(256));
    }

    #[test]
    fn display_prefers_cidr_and_round_trips() {
        assert_eq!(range("10.0.0.0-10.0.0.255").to_string(), "10.0.0.0/24");
        assert_eq!(range("10.0.0.1-10.0.0.2").to_string(), "10.0.0.1-10.0.0.2");
        assert_eq!(range("FD00:0::/64").to_string(), "fd00::/64");
    }

    #[test]
    fn cidr_length_follows_go_netip() {
        for refused in ["10.0.0.0/08", "10.0.0.0/+8", "10.0.0.0/", "10.0.0.0/33", "::/129"] {
            assert!(matches!(parse_entry(refused), Err(AddressError::Malformed { .. })), "{refused} must be malformed");
        }
        // A /0 is well-formed (it is then refused for holding reserved blocks).
        assert!(matches!(parse_entry("0.0.0.0/0"), Err(AddressError::Reserved { .. })));
    }

    #[test]
    fn overlap_and_intersection_respect_family() {
        let v4 = range("10.0.0.0/24");
        // The same numbers as the IPv4 range, in the other family.
        let v6 = range("::2-::ffff:ffff");
        assert!(!v4.overlaps(v6));
        assert_eq!(v4.intersection(v6), None);
        let half = range("10.0.0.128-10.0.1.10");
        assert_eq!(v4.intersection(half), Some(range("10.0.0.128/25")));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn any_range() -> impl Strategy<Value = AddressRange> {
            let v4 = (any::<u32>(), any::<u32>()).prop_map(|(a, b)| {
                let (a, b) = (IpAddr::V4(Ipv4Addr::from(a.min(b))), IpAddr::V4(Ipv4Addr::from(a.max(b))));
                AddressRange::new(a, b)
            });
            // Many IPv6 ranges are exact blocks or start at zero; generate those shapes too.
            let v6 = (any::<u128>(), any::<u128>(), 0u8..=128, any::<bool>()).prop_map(|(a, b, len, block)| {
                if block {
                    Prefix::new(IpAddr::V6(Ipv6Addr::from(a)), len).map(Prefix::range)
                } else {
                    AddressRange::new(IpAddr::V6(Ipv6Addr::from(a.min(b))), IpAddr::V6(Ipv6Addr::from(a.max(b))))
                }
            });
            prop_oneof![v4, v6].prop_filter_map("ordered", |range| range)
        }

        /// What `entry`, a spelling of `range`, must parse to: the range, unless it holds a
        /// reserved address.
        fn parsed(entry: &str, range: AddressRange) -> Result<AddressRange, AddressError> {
            match first_reserved_overlap(range) {
                None => Ok(range),
                Some(reserved) => Err(AddressError::Reserved { entry: entry.to_owned(), reserved }),
            }
        }

        proptest! {
            #[test]
            fn canonical_spelling_parses_back_to_the_same_range(range in any_range()) {
                let entry = range.to_string();
                prop_assert_eq!(parse_entry(&entry), parsed(&entry, range));
            }

            #[test]
            fn first_dash_last_parses_to_the_same_range(range in any_range(), spaces in "[ \t]{0,2}") {
                let entry = format!("{}{spaces}-{spaces}{}", range.first(), range.last());
                prop_assert_eq!(parse_entry(&entry), parsed(&entry, range));
            }

            #[test]
            fn last_dash_first_is_reserved_or_reversed(range in any_range()) {
                prop_assume!(range.first() != range.last());
                let entry = format!("{}-{}", range.last(), range.first());
                let problem = parse_entry(&entry).map_err(|error| error.problem());
                let expected = if first_reserved_overlap(range).is_some() { EntryProblem::Reserved } else { EntryProblem::Reversed };
                prop_assert_eq!(problem, Err(expected));
            }

            #[test]
            fn every_prefix_of_a_range_parses_to_itself(range in any_range()) {
                for prefix in range.prefixes() {
                    let entry = prefix.to_string();
                    prop_assert_eq!(parse_entry(&entry), parsed(&entry, prefix.range()));
                }
            }

            #[test]
            fn parsing_never_panics_and_names_the_entry(entry in "\\PC{0,40}") {
                if let Err(error) = parse_entry(&entry) {
                    prop_assert_eq!(error.entry(), entry.as_str());
                    let quoted = format!("\"{entry}\"");
                    prop_assert!(error.to_string().starts_with(&quoted));
                }
            }
        }
    }
}
