//! Inclusive intervals of addresses, as plain `u128` numbers.
//!
//! Every pool entry, whatever its spelling, becomes one [`Interval`]; the allocator's
//! [`IntervalSet`](super::IntervalSet) stores them, and [`Interval::prefixes`] turns one back
//! into the fewest CIDR blocks. All arithmetic is closed-form: nothing here walks an interval
//! address by address, so a /8 or an IPv6 /64 costs the same as a /30.

use super::AddressCount;

/// The inclusive interval `start..=end` of addresses; never empty.
///
/// The family is not part of the interval: IPv4 addresses are the values below 2^32, and the
/// operator keeps one interval set per family. [`AddressRange`](super::AddressRange) adds the
/// family tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    start: u128,
    end: u128,
}

impl Interval {
    /// The interval `start..=end`, or `None` when `start > end`.
    pub const fn new(start: u128, end: u128) -> Option<Self> {
        if start <= end { Some(Self { start, end }) } else { None }
    }

    /// The interval holding one address.
    pub const fn single(address: u128) -> Self {
        Self { start: address, end: address }
    }

    /// The first address.
    pub const fn start(self) -> u128 {
        self.start
    }

    /// The last address (inclusive).
    pub const fn end(self) -> u128 {
        self.end
    }

    /// How many addresses the interval holds: `end - start + 1`, exact even for all of IPv6.
    pub fn len(self) -> AddressCount {
        match (self.end - self.start).checked_add(1) {
            Some(len) => AddressCount::new(len),
            None => AddressCount::ALL_IPV6,
        }
    }

    /// Whether `address` lies inside the interval.
    pub const fn contains(self, address: u128) -> bool {
        self.start <= address && address <= self.end
    }

    /// Whether the two intervals share at least one address.
    pub const fn overlaps(self, other: Self) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// The addresses both intervals hold, if any.
    pub fn intersection(self, other: Self) -> Option<Self> {
        Self::new(self.start.max(other.start), self.end.min(other.end))
    }

    /// The fewest CIDR blocks `(network, prefix length)` that cover exactly this interval, in
    /// ascending order, for an address family of `family_bits` bits (32 or 128).
    ///
    /// There are at most `2 * family_bits` blocks, so this is cheap for any interval.
    pub fn prefixes(self, family_bits: u32) -> Prefixes {
        Prefixes { next: Some(self.start), end: self.end, family_bits }
    }

    /// How many IPv4 addresses in the interval end in `.0` or `.255`: the addresses that
    /// `avoidBuggyIPs` keeps out of allocation. Computed in closed form.
    pub fn buggy_ipv4_count(self) -> u128 {
        // Buggy addresses in 0..=n: two per complete /24 below n's /24, plus n's own .0, plus
        // its .255 when n is one.
        fn up_to(n: u128) -> u128 {
            (n / 256) * 2 + 1 + u128::from(n % 256 == 255)
        }
        let below_start = match self.start.checked_sub(1) {
            Some(before) => up_to(before),
            None => 0,
        };
        up_to(self.end) - below_start
    }
}

/// Whether an IPv4 address (as a number) ends in `.0` or `.255`, which some old client stacks
/// mistake for a network or broadcast address even inside a larger block.
pub const fn is_buggy_ipv4(address: u128) -> bool {
    matches!(address % 256, 0 | 255)
}

/// Iterator over the CIDR blocks of an interval; see [`Interval::prefixes`].
#[derive(Clone, Debug)]
pub struct Prefixes {
    next: Option<u128>,
    end: u128,
    family_bits: u32,
}

impl Iterator for Prefixes {
    /// `(network address, prefix length)`.
    type Item = (u128, u8);

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.next?;
        let remaining = self.end - start;
        // The block is as large as both the alignment of `start` and the addresses left allow.
        let fits = match remaining.checked_add(1) {
            Some(left) => left.ilog2(),
            None => 128,
        };
        let aligned = if start == 0 { 128 } else { start.trailing_zeros() };
        let host_bits = fits.min(aligned).min(self.family_bits);
        let block_last = start + low_mask(host_bits);
        self.next = if block_last == self.end { None } else { Some(block_last + 1) };
        // host_bits <= family_bits <= 128, so the length fits a u8.
        let prefix_len = u8::try_from(self.family_bits - host_bits).unwrap_or(u8::MAX);
        Some((start, prefix_len))
    }
}

/// The value with the low `bits` bits set (`bits` may be 128).
pub(crate) const fn low_mask(bits: u32) -> u128 {
    if bits >= 128 { u128::MAX } else { (1u128 << bits) - 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(start: u128, end: u128) -> Interval {
        Interval::new(start, end).expect("test interval is ordered")
    }

    #[test]
    fn reversed_bounds_make_no_interval() {
        assert_eq!(Interval::new(5, 4), None);
    }

    #[test]
    fn all_of_ipv6_has_two_pow_128_addresses() {
        assert_eq!(interval(0, u128::MAX).len(), AddressCount::ALL_IPV6);
        assert_eq!(interval(1, u128::MAX).len(), AddressCount::new(u128::MAX));
    }

    #[test]
    fn all_of_ipv6_is_one_slash_zero() {
        let blocks: Vec<_> = interval(0, u128::MAX).prefixes(128).collect();
        assert_eq!(blocks, vec![(0, 0)]);
    }

    #[test]
    fn tutorial_range_splits_into_aligned_blocks() {
        // 192.168.2.10-192.168.2.49
        let base = 0xC0A8_0200;
        let blocks: Vec<_> = interval(base + 10, base + 49).prefixes(32).collect();
        let expected = [(10, 31), (12, 30), (16, 28), (32, 28), (48, 31)];
        assert_eq!(blocks, expected.map(|(offset, len)| (base + offset, len)));
    }

    #[test]
    fn top_of_the_space_does_not_overflow() {
        let blocks: Vec<_> = interval(u128::MAX - 2, u128::MAX).prefixes(128).collect();
        assert_eq!(blocks, vec![(u128::MAX - 2, 128), (u128::MAX - 1, 127)]);
    }

    #[test]
    fn buggy_addresses_are_counted_without_walking() {
        // 10.0.0.0/8 holds 65536 /24s, each with one .0 and one .255.
        let slash_8 = interval(0x0A00_0000, 0x0AFF_FFFF);
        assert_eq!(slash_8.buggy_ipv4_count(), 2 * 65536);
        assert_eq!(interval(0, 0).buggy_ipv4_count(), 1);
        assert_eq!(interval(1, 254).buggy_ipv4_count(), 0);
        assert_eq!(interval(255, 256).buggy_ipv4_count(), 2);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Intervals of every size, in both families, often touching the ends of the space.
        fn family_interval() -> impl Strategy<Value = (u32, Interval)> {
            let edge = |max: u128| {
                prop_oneof![Just(0), Just(max), 0..=max, (0u32..128).prop_map(move |b| (1u128 << b).min(max))]
            };
            prop_oneof![Just(32u32), Just(128u32)].prop_flat_map(move |bits| {
                let max = low_mask(bits);
                (edge(max), edge(max)).prop_map(move |(a, b)| (bits, interval(a.min(b), a.max(b))))
            })
        }

        proptest! {
            #[test]
            fn prefixes_cover_the_interval_exactly_once_each_aligned((bits, span) in family_interval()) {
                let blocks: Vec<(u128, u8)> = span.prefixes(bits).collect();
                prop_assert!(!blocks.is_empty());
                prop_assert!(blocks.len() <= 2 * bits as usize);
                let mut next = Some(span.start());
                let mut total = AddressCount::ZERO;
                for &(network, len) in &blocks {
                    let host_bits = bits - u32::from(len);
                    prop_assert_eq!(Some(network), next, "blocks must be consecutive");
                    prop_assert_eq!(network & low_mask(host_bits), 0, "block must be aligned");
                    let last = network + low_mask(host_bits);
                    total = total.checked_add(interval(network, last).len()).expect("count fits");
                    next = last.checked_add(1);
                }
                let last_block = blocks.last().map(|&(network, len)| network + low_mask(bits - u32::from(len)));
                prop_assert_eq!(last_block, Some(span.end()));
                prop_assert_eq!(total, span.len());
            }

            #[test]
            fn prefixes_are_minimal((bits, span) in family_interval()) {
                // Two neighbouring blocks of one size that together form an aligned block of twice
                // the size would mean the decomposition is not the fewest.
                let blocks: Vec<(u128, u8)> = span.prefixes(bits).collect();
                for pair in blocks.windows(2) {
                    let ((first, first_len), (_, second_len)) = (pair[0], pair[1]);
                    let mergeable = first_len == second_len
                        && first_len > 0
                        && first & low_mask(bits - u32::from(first_len) + 1) == 0;
                    prop_assert!(!mergeable, "{:?} could merge", pair);
                }
            }

            #[test]
            fn overlap_is_symmetric_and_matches_brute_force(a in 0u128..64, b in 0u128..64, c in 0u128..64, d in 0u128..64) {
                let first = interval(a.min(b), a.max(b));
                let second = interval(c.min(d), c.max(d));
                let shared: Vec<u128> = (0..64).filter(|&x| first.contains(x) && second.contains(x)).collect();
                prop_assert_eq!(first.overlaps(second), !shared.is_empty());
                prop_assert_eq!(first.overlaps(second), second.overlaps(first));
                let intersection = first.intersection(second);
                prop_assert_eq!(intersection, second.intersection(first));
                let expected = shared.first().zip(shared.last()).map(|(&lo, &hi)| interval(lo, hi));
                prop_assert_eq!(intersection, expected);
            }

            #[test]
            fn buggy_count_matches_brute_force(start in 0u128..2000, width in 0u128..800) {
                let span = interval(start, start + width);
                let brute = (span.start()..=span.end()).filter(|&x| is_buggy_ipv4(x)).count();
                prop_assert_eq!(span.buggy_ipv4_count(), brute as u128);
            }
        }
    }
}
