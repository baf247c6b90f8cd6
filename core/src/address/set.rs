//! A set of addresses stored as disjoint intervals: the allocator's record of what is taken.
//!
//! The operator keeps one [`IntervalSet`] per family for the addresses already assigned, and
//! asks it for the first free address of each pool range. Intervals are kept sorted, disjoint
//! and coalesced (no two touch), keyed by their start in a `BTreeMap`, so a lookup is
//! `O(log n)` in the number of intervals, never in the number of addresses.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::{AddressCount, Interval};

/// A set of `u128` addresses, stored as sorted, disjoint, non-adjacent inclusive intervals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntervalSet {
    /// start -> end (inclusive). Invariant: for consecutive entries `a` and `b`,
    /// `a.end + 1 < b.start`, so touching intervals are always merged.
    intervals: BTreeMap<u128, u128>,
    /// Kept up to date by insert and remove so [`Self::len`] is `O(1)`.
    len: AddressCount,
}

impl IntervalSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the set holds no address.
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// The number of addresses in the set (exact, up to 2^128).
    pub fn len(&self) -> AddressCount {
        self.len
    }

    /// The number of disjoint intervals the set is stored as.
    pub fn interval_count(&self) -> usize {
        self.intervals.len()
    }

    /// The intervals of the set in ascending order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Interval> + '_ {
        self.intervals.iter().filter_map(|(&start, &end)| Interval::new(start, end))
    }

    /// Whether `address` is in the set. `O(log n)`.
    pub fn contains(&self, address: u128) -> bool {
        self.containing(address).is_some()
    }

    /// Whether any address of `interval` is in the set. `O(log n)`.
    pub fn intersects(&self, interval: Interval) -> bool {
        // Only the last interval starting at or before `interval.end()` can reach into it.
        self.intervals.range(..=interval.end()).next_back().is_some_and(|(_, &end)| end >= interval.start())
    }

    /// The first address of `within` that is not in the set, or `None` when the set covers all
    /// of it. `O(log n)`: because touching intervals are merged, the address right after the
    /// interval holding `within.start()` is free.
    pub fn first_gap_in(&self, within: Interval) -> Option<u128> {
        match self.containing(within.start()) {
            None => Some(within.start()),
            Some(taken) => taken.end().checked_add(1).filter(|&free| free <= within.end()),
        }
    }

    /// How many addresses of `within` are in the set. `O(log n + k)` for the `k` intervals
    /// that meet `within`.
    pub fn count_in(&self, within: Interval) -> AddressCount {
        self.meeting(within)
            .filter_map(|stored| stored.intersection(within))
            .fold(AddressCount::ZERO, |sum, part| sum.checked_add(part.len()).unwrap_or(AddressCount::ALL_IPV6))
    }

    /// Adds every address of `interval`, returning how many were not already present.
    /// `O(log n)` amortised: each stored interval is merged away at most once.
    pub fn insert(&mut self, interval: Interval) -> AddressCount {
        let mut start = interval.start();
        let mut end = interval.end();
        let before = self.count_in(interval);
        // Absorb every stored interval that overlaps or touches [start, end].
        let reach_low = start.saturating_sub(1);
        let reach_high = end.saturating_add(1);
        let absorbed: Vec<(u128, u128)> =
            self.touching(reach_low, reach_high).map(|stored| (stored.start(), stored.end())).collect();
        for (stored_start, stored_end) in absorbed {
            self.intervals.remove(&stored_start);
            start = start.min(stored_start);
            end = end.max(stored_end);
        }
        self.intervals.insert(start, end);
        let added = interval.len().saturating_sub(before);
        self.len = self.len.checked_add(added).unwrap_or(AddressCount::ALL_IPV6);
        added
    }

    /// Removes every address of `interval`, returning how many were present.
    /// `O(log n)` amortised.
    pub fn remove(&mut self, interval: Interval) -> AddressCount {
        let hit: Vec<Interval> = self.meeting(interval).collect();
        let mut removed = AddressCount::ZERO;
        for stored in hit {
            self.intervals.remove(&stored.start());
            if let Some(part) = stored.intersection(interval) {
                removed = removed.checked_add(part.len()).unwrap_or(AddressCount::ALL_IPV6);
            }
            // Keep what sticks out on either side.
            if stored.start() < interval.start() {
                self.intervals.insert(stored.start(), interval.start() - 1);
            }
            if stored.end() > interval.end() {
                self.intervals.insert(interval.end() + 1, stored.end());
            }
        }
        self.len = self.len.saturating_sub(removed);
        removed
    }

    /// The stored interval holding `address`, if any.
    fn containing(&self, address: u128) -> Option<Interval> {
        let (&start, &end) = self.intervals.range(..=address).next_back()?;
        (end >= address).then(|| Interval::new(start, end)).flatten()
    }

    /// Stored intervals sharing at least one address with `within`, in order.
    fn meeting(&self, within: Interval) -> impl Iterator<Item = Interval> + '_ {
        self.touching(within.start(), within.end())
    }

    /// Stored intervals that contain an address of `low..=high`, in order.
    fn touching(&self, low: u128, high: u128) -> impl Iterator<Item = Interval> + '_ {
        // The interval starting before `low` counts only if it reaches `low`.
        let straddling =
            self.intervals.range(..low).next_back().filter(|&(_, &end)| end >= low).map(|(&start, &end)| (start, end));
        let inside =
            self.intervals.range((Bound::Included(low), Bound::Included(high))).map(|(&start, &end)| (start, end));
        straddling.into_iter().chain(inside).filter_map(|(start, end)| Interval::new(start, end))
    }
}

impl Extend<Interval> for IntervalSet {
    fn extend<I: IntoIterator<Item = Interval>>(&mut self, intervals: I) {
        for interval in intervals {
            self.insert(interval);
        }
    }
}

impl FromIterator<Interval> for IntervalSet {
    fn from_iter<I: IntoIterator<Item = Interval>>(intervals: I) -> Self {
        let mut set = Self::new();
        set.extend(intervals);
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(start: u128, end: u128) -> Interval {
        Interval::new(start, end).expect("test interval is ordered")
    }

    #[test]
    fn touching_intervals_merge() {
        let mut set = IntervalSet::new();
        set.insert(iv(10, 19));
        set.insert(iv(30, 39));
        set.insert(iv(20, 29));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![iv(10, 39)]);
        assert_eq!(set.len(), AddressCount::new(30));
    }

    #[test]
    fn removing_the_middle_splits_an_interval() {
        let mut set: IntervalSet = [iv(0, 99)].into_iter().collect();
        assert_eq!(set.remove(iv(40, 59)), AddressCount::new(20));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![iv(0, 39), iv(60, 99)]);
        assert_eq!(set.len(), AddressCount::new(80));
    }

    #[test]
    fn first_gap_skips_a_taken_run() {
        let set: IntervalSet = [iv(10, 12), iv(14, 14)].into_iter().collect();
        assert_eq!(set.first_gap_in(iv(10, 20)), Some(13));
        assert_eq!(set.first_gap_in(iv(5, 20)), Some(5));
        assert_eq!(set.first_gap_in(iv(10, 12)), None);
    }

    #[test]
    fn whole_ipv6_space_is_one_interval_of_two_pow_128() {
        let mut set = IntervalSet::new();
        assert_eq!(set.insert(iv(0, u128::MAX)), AddressCount::ALL_IPV6);
        assert_eq!(set.len(), AddressCount::ALL_IPV6);
        assert_eq!(set.first_gap_in(iv(5, u128::MAX)), None);
        assert_eq!(set.remove(iv(u128::MAX, u128::MAX)), AddressCount::new(1));
        assert_eq!(set.len(), AddressCount::new(u128::MAX));
        assert_eq!(set.first_gap_in(iv(5, u128::MAX)), Some(u128::MAX));
    }

    #[test]
    fn a_slash_8_is_one_entry_not_sixteen_million() {
        let mut taken = IntervalSet::new();
        taken.insert(iv(0x0A00_0000, 0x0AFF_FFFF));
        taken.remove(iv(0x0A00_0005, 0x0A00_0005));
        assert_eq!(taken.interval_count(), 2);
        assert_eq!(taken.first_gap_in(iv(0x0A00_0000, 0x0AFF_FFFF)), Some(0x0A00_0005));
    }

    mod properties {
        use std::collections::BTreeSet;

        use proptest::prelude::*;

        use super::*;

        #[derive(Clone, Debug)]
        enum Op {
            Insert(u128, u128),
            Remove(u128, u128),
        }

        const UNIVERSE: u128 = 96;

        fn op() -> impl Strategy<Value = Op> {
            let bounds = (0..UNIVERSE, 0u128..12).prop_map(|(start, width)| (start, (start + width).min(UNIVERSE - 1)));
            prop_oneof![bounds.clone().prop_map(|(a, b)| Op::Insert(a, b)), bounds.prop_map(|(a, b)| Op::Remove(a, b)),]
        }

        proptest! {
            /// Small values are mapped onto `base + x`; a base at the top of the `u128` range
            /// exercises the arithmetic at the edge of the space.
            #[test]
            fn interval_set_agrees_with_a_set_of_addresses(
                ops in prop::collection::vec(op(), 1..60),
                top in any::<bool>(),
                probe in (0..UNIVERSE, 0..UNIVERSE),
            ) {
                let base = if top { u128::MAX - (UNIVERSE - 1) } else { 0 };
                let at = |x: u128| base + x;
                let mut set = IntervalSet::new();
                let mut model = BTreeSet::new();
                for op in ops {
                    match op {
                        Op::Insert(a, b) => {
                            let added = set.insert(iv(at(a), at(b)));
                            let before = model.len();
                            model.extend(a..=b);
                            prop_assert_eq!(added, AddressCount::new((model.len() - before) as u128));
                        }
                        Op::Remove(a, b) => {
                            let removed = set.remove(iv(at(a), at(b)));
                            let before = model.len();
                            model.retain(|x| !(a..=b).contains(x));
                            prop_assert_eq!(removed, AddressCount::new((before - model.len()) as u128));
                        }
                    }
                    prop_assert_eq!(set.len(), AddressCount::new(model.len() as u128));
                    // Stored intervals are sorted, disjoint and never touch.
                    let stored: Vec<Interval> = set.iter().collect();
                    for pair in stored.windows(2) {
                        prop_assert!(pair[0].end() + 1 < pair[1].start(), "{:?} not coalesced", pair);
                    }
                    let members: BTreeSet<u128> = stored.iter().flat_map(|i| (i.start() - base)..=(i.end() - base)).collect();
                    prop_assert_eq!(&members, &model);
                }
                for x in 0..UNIVERSE {
                    prop_assert_eq!(set.contains(at(x)), model.contains(&x));
                }
                let (a, b) = (probe.0.min(probe.1), probe.0.max(probe.1));
                let window = iv(at(a), at(b));
                let expected_gap = (a..=b).find(|x| !model.contains(x)).map(at);
                prop_assert_eq!(set.first_gap_in(window), expected_gap);
                let expected_count = (a..=b).filter(|x| model.contains(x)).count() as u128;
                prop_assert_eq!(set.count_in(window), AddressCount::new(expected_count));
                prop_assert_eq!(set.intersects(window), expected_count > 0);
            }
        }
    }
}
