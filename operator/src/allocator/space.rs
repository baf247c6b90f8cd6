//! One family of one pool: the addresses it may hand out, and which of them are taken.
//!
//! Data flow: when pools change, the allocator gives each pool one [`AddressSpace`] per family
//! it has ranges of, holding what the pool owns after conflicts (its "allocatable" set). Assign
//! asks [`AddressSpace::first_free`] for an address and records holders with
//! [`AddressSpace::take`]; release gives them back with [`AddressSpace::free`]. Usage for the
//! pool status and metrics comes from [`AddressSpace::usage`].
//!
//! Cost: everything is interval arithmetic on [`IntervalSet`]s, so a /8 or an IPv6 /64 is never
//! enumerated. `first_free` is `O(r log n)` for `r` allocatable intervals (the pool's entries,
//! split by conflicts) and `n` taken intervals.
//!
//! `avoidBuggyIPs` needs care: if only the taken addresses were indexed, a pool filled from the
//! bottom would be stored as one interval per /24 (`.1-.254`, the `.255`/`.0` pair between them
//! being free but unusable), and every search would walk past all of them. So an avoiding space
//! keeps a second index, `search`: the taken addresses plus every `.255`/`.0` pair next to a
//! taken address. Consecutive allocations then stay one interval across /24 boundaries, and a
//! gap that starts on a buggy address is followed directly by a free `.1` (its pair was not
//! bridged, so neither neighbour is taken): the search skips at most one pair per allocatable
//! interval, `O(r log n)` in the worst case as well.

use ironlb_core::address::{AddressCount, AddressRange, Family, Interval, IntervalSet, is_buggy_ipv4};
use ironlb_core::v1alpha1::FamilyCounts;

/// Address counts of one family of one pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressUsage {
    /// Addresses the pool may hand out: its entries, minus what older pools hold (conflicts),
    /// minus `.0`/`.255` addresses with `avoidBuggyIPs`.
    pub usable: AddressCount,
    /// Distinct addresses held by at least one Service (a shared address counts once).
    pub assigned: AddressCount,
    /// `usable - assigned`.
    pub available: AddressCount,
}

impl AddressUsage {
    /// The counts the pool status records (`status.ipv4`, `status.ipv6`).
    pub fn counts(self) -> FamilyCounts {
        FamilyCounts { assigned: self.assigned, available: self.available }
    }
}

/// See the [module documentation](self).
#[derive(Clone, Debug)]
pub(crate) struct AddressSpace {
    /// What the pool owns: its entries minus the overlap with older pools.
    allocatable: IntervalSet,
    /// Addresses held by at least one Service; always inside `allocatable`.
    assigned: IntervalSet,
    /// With `avoidBuggyIPs` (IPv4 only): `assigned` plus every `.255`/`.0` pair adjacent to an
    /// assigned address. Invariant: a pair is in `search` exactly when an address next to it
    /// (the `.254` below or the `.1` above) is assigned.
    search: Option<IntervalSet>,
    usable: AddressCount,
}

impl AddressSpace {
    /// An empty space over `allocatable`; `avoid_buggy_ips` matters only for IPv4.
    pub(crate) fn new(family: Family, allocatable: IntervalSet, avoid_buggy_ips: bool) -> Self {
        let avoid = avoid_buggy_ips && family == Family::V4;
        let usable = allocatable
            .iter()
            .filter_map(|interval| AddressRange::from_interval(family, interval))
            .map(|range| range.usable_len(avoid))
            .fold(AddressCount::ZERO, |sum, len| sum.checked_add(len).unwrap_or(AddressCount::ALL_IPV6));
        Self { allocatable, assigned: IntervalSet::new(), search: avoid.then(IntervalSet::new), usable }
    }

    /// What the pool owns after conflicts.
    pub(crate) fn allocatable(&self) -> &IntervalSet {
        &self.allocatable
    }

    /// Whether `address` (a number of this family) is one `avoidBuggyIPs` keeps out.
    pub(crate) fn avoids(&self, address: u128) -> bool {
        self.search.is_some() && is_buggy_ipv4(address)
    }

    /// Whether the pool may hand out `address`: it owns it and does not avoid it.
    pub(crate) fn may_hold(&self, address: u128) -> bool {
        self.allocatable.contains(address) && !self.avoids(address)
    }

    /// The lowest address the pool may hand out that nobody holds.
    pub(crate) fn first_free(&self) -> Option<u128> {
        let index = self.search.as_ref().unwrap_or(&self.assigned);
        for interval in self.allocatable.iter() {
            let mut from = interval.start();
            while let Some(window) = Interval::new(from, interval.end()) {
                let Some(candidate) = index.first_gap_in(window) else { break };
                if !self.avoids(candidate) {
                    return Some(candidate);
                }
                // The gap starts on an unbridged .255/.0 pair, so the .1 after it is free.
                let after_pair =
                    if candidate % 256 == 255 { candidate.checked_add(2) } else { candidate.checked_add(1) };
                match after_pair {
                    Some(next) => from = next,
                    None => break,
                }
            }
        }
        None
    }

    /// Records `address` as held. Idempotent.
    pub(crate) fn take(&mut self, address: u128) {
        self.assigned.insert(Interval::single(address));
        if let Some(search) = &mut self.search {
            search.insert(Interval::single(address));
            if let Some((pair, _)) = adjacent_buggy_pair(address) {
                search.insert(pair);
            }
        }
    }

    /// Records `address` as no longer held by anyone.
    pub(crate) fn free(&mut self, address: u128) {
        self.assigned.remove(Interval::single(address));
        if let Some(search) = &mut self.search {
            search.remove(Interval::single(address));
            if let Some((pair, far_side)) = adjacent_buggy_pair(address) {
                let still_bridged = far_side.is_some_and(|far| self.assigned.contains(far));
                if !still_bridged {
                    search.remove(pair);
                }
            }
        }
    }

    /// The pool's counts for this family.
    pub(crate) fn usage(&self) -> AddressUsage {
        let assigned = self.assigned.len();
        AddressUsage { usable: self.usable, assigned, available: self.usable.saturating_sub(assigned) }
    }
}

/// For an IPv4 address ending in `.1` or `.254`: the `.255`/`.0` pair it touches, and the
/// address on the pair's far side (`.254` below, `.1` above), if any. Other addresses touch
/// no pair.
fn adjacent_buggy_pair(address: u128) -> Option<(Interval, Option<u128>)> {
    let top = Family::V4.max_address();
    match address % 256 {
        1 => {
            let pair = Interval::new(address.saturating_sub(2), address - 1)?;
            Some((pair, address.checked_sub(3)))
        }
        254 => {
            let pair = Interval::new(address + 1, (address + 2).min(top))?;
            Some((pair, Some(address + 3).filter(|&far| far <= top)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u128 = 0x0A00_0000; // 10.0.0.0

    fn space(start: u128, end: u128, avoid: bool) -> AddressSpace {
        let interval = Interval::new(start, end).expect("ordered");
        AddressSpace::new(Family::V4, [interval].into_iter().collect(), avoid)
    }

    fn allocate(space: &mut AddressSpace) -> Option<u128> {
        let address = space.first_free()?;
        space.take(address);
        Some(address)
    }

    #[test]
    fn first_free_is_the_lowest_address_nobody_holds() {
        let mut pool = space(BASE + 10, BASE + 12, false);
        assert_eq!(allocate(&mut pool), Some(BASE + 10));
        assert_eq!(allocate(&mut pool), Some(BASE + 11));
        pool.free(BASE + 10);
        assert_eq!(allocate(&mut pool), Some(BASE + 10));
        assert_eq!(allocate(&mut pool), Some(BASE + 12));
        assert_eq!(allocate(&mut pool), None);
    }

    #[test]
    fn avoid_buggy_ips_never_offers_dot_zero_or_dot_255() {
        let mut pool = space(BASE, BASE + 767, true); // 10.0.0.0/23 + 10.0.2.0/24
        let mut handed_out = Vec::new();
        while let Some(address) = allocate(&mut pool) {
            handed_out.push(address);
        }
        assert_eq!(handed_out.len(), 3 * 254);
        assert!(handed_out.iter().all(|&address| !is_buggy_ipv4(address)));
        assert_eq!(pool.usage().available, AddressCount::ZERO);
    }

    #[test]
    fn consecutive_allocations_across_slash_24s_stay_one_search_interval() {
        let mut pool = space(BASE, BASE + 0xFFFF, true); // a /16: 256 /24s
        for _ in 0..(254 * 10) {
            allocate(&mut pool);
        }
        let search = pool.search.as_ref().expect("avoiding space has a search index");
        // Ten full /24s and the .255/.0 pairs around them (9.255.255.255 and 10.0.0.0 below,
        // bridged by 10.0.0.1) form a single interval.
        assert_eq!(search.interval_count(), 1);
        assert_eq!(pool.assigned.interval_count(), 10);
        assert_eq!(pool.first_free(), Some(BASE + 10 * 256 + 1));
    }

    #[test]
    fn freeing_an_address_unbridges_its_pair_only_when_the_far_side_is_free() {
        let mut pool = space(BASE, BASE + 511, true);
        pool.take(BASE + 254); // 10.0.0.254
        pool.take(BASE + 257); // 10.0.1.1
        pool.free(BASE + 254);
        // 10.0.1.1 still holds the pair 10.0.0.255/10.0.1.0 bridged; the search must still offer
        // the lowest usable free address, 10.0.0.1.
        assert_eq!(pool.first_free(), Some(BASE + 1));
        pool.free(BASE + 257);
        assert_eq!(pool.search.as_ref().map(IntervalSet::is_empty), Some(true));
    }

    #[test]
    fn usable_count_of_a_slash_8_skips_buggy_addresses_without_walking() {
        let pool = space(BASE, BASE + 0x00FF_FFFF, true);
        assert_eq!(pool.usage().usable, AddressCount::new((1 << 24) - 2 * 65536));
        assert_eq!(space(BASE, BASE + 0x00FF_FFFF, false).usage().usable, AddressCount::new(1 << 24));
    }

    #[test]
    fn ipv6_ignores_avoid_buggy_ips() {
        let all: IntervalSet = [Interval::new(0, 255).expect("ordered")].into_iter().collect();
        let pool = AddressSpace::new(Family::V6, all, true);
        assert_eq!(pool.first_free(), Some(0));
        assert_eq!(pool.usage().usable, AddressCount::new(256));
    }
}
