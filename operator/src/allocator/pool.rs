//! Pools as the allocator sees them, and how overlapping pools are resolved.
//!
//! Data flow: the glue turns each `IPAddressPool` into a [`PoolConfig`] (parsed entries, flags,
//! `serviceAllocation` with pure [`LabelSelector`]s, and its creation time as the age key).
//! Whenever a pool is set or removed, [`Layout::compute`] resolves all pools against each other:
//! the older pool keeps any address two pools share, the younger one gets a [`Conflict`] naming
//! the older pool and the overlapping range, and nothing in the overlap is allocated from it.
//! The result is, per pool and family, the set of addresses it owns, and an index from any
//! address to its owner ([`Ownership`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ironlb_core::address::{AddressRange, Family, Interval, IntervalSet, address_number};

use super::family::PerFamily;
use super::request::ServiceKey;
use super::{LabelSelector, Labels};

/// An `IPAddressPool`, in the allocator's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.creationTimestamp` in seconds since the epoch: the older of two overlapping
    /// pools keeps the overlap, and older pools come first among equals. Ties break by name.
    pub created: i64,
    /// `spec.addresses`, parsed. Entries may overlap each other; their union counts.
    pub ranges: Vec<AddressRange>,
    /// `spec.autoAssign`: whether Services that name no pool and request no address may get
    /// addresses from this pool.
    pub auto_assign: bool,
    /// `spec.avoidBuggyIPs`: skip IPv4 addresses ending in `.0` and `.255`.
    pub avoid_buggy_ips: bool,
    /// `spec.serviceAllocation`.
    pub service_allocation: Option<ServiceAllocation>,
}

impl PoolConfig {
    /// A pool with the defaults of the CRD: auto-assign, no `avoidBuggyIPs`, no
    /// `serviceAllocation`, created at the epoch.
    pub fn new(name: impl Into<String>, ranges: Vec<AddressRange>) -> Self {
        Self {
            name: name.into(),
            created: 0,
            ranges,
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        }
    }

    /// Whether the pool may serve `service`: always without `serviceAllocation`, otherwise as
    /// [`ServiceAllocation::admits`] says.
    ///
    /// # Errors
    ///
    /// The [`Exclusion`] that keeps the Service out.
    pub fn admits(
        &self,
        service: &ServiceKey,
        namespace_labels: &Labels,
        service_labels: &Labels,
    ) -> Result<(), Exclusion> {
        match &self.service_allocation {
            None => Ok(()),
            Some(allocation) => allocation.admits(&service.namespace, namespace_labels, service_labels),
        }
    }

    /// `(created, name)`: smaller is older.
    pub(crate) fn age(&self) -> (i64, &str) {
        (self.created, &self.name)
    }

    /// The order auto-assignment tries pools in; see the [module documentation](super).
    pub(crate) fn auto_order(&self) -> (u8, i32, (i64, &str)) {
        let (tier, priority) = match &self.service_allocation {
            Some(ServiceAllocation { priority: Some(priority), .. }) => (0, *priority),
            Some(ServiceAllocation { priority: None, .. }) => (1, 0),
            None => (2, 0),
        };
        (tier, priority, self.age())
    }
}

/// `spec.serviceAllocation`: which Services a pool serves, and its precedence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAllocation {
    /// Lower numbers are tried first; pools without a priority come after every pool with one.
    pub priority: Option<i32>,
    /// Namespaces whose Services the pool serves.
    pub namespaces: BTreeSet<String>,
    /// Namespaces (by their labels) whose Services the pool serves.
    pub namespace_selectors: Vec<LabelSelector>,
    /// Services (by their labels) the pool serves.
    pub service_selectors: Vec<LabelSelector>,
}

impl ServiceAllocation {
    /// Whether a Service qualifies. Its namespace must be listed in `namespaces` or match one
    /// of `namespaceSelectors` (either list counts, as the CRD documents; with both empty every
    /// namespace qualifies), and its labels must match one of `serviceSelectors` (empty: every
    /// Service).
    ///
    /// # Errors
    ///
    /// The first condition the Service fails.
    pub fn admits(&self, namespace: &str, namespace_labels: &Labels, service_labels: &Labels) -> Result<(), Exclusion> {
        let any_namespace = self.namespaces.is_empty() && self.namespace_selectors.is_empty();
        let namespace_ok = any_namespace
            || self.namespaces.contains(namespace)
            || self.namespace_selectors.iter().any(|selector| selector.matches(namespace_labels));
        if !namespace_ok {
            return Err(Exclusion::Namespace { namespace: namespace.to_owned() });
        }
        let service_ok = self.service_selectors.is_empty()
            || self.service_selectors.iter().any(|selector| selector.matches(service_labels));
        if !service_ok {
            return Err(Exclusion::ServiceLabels);
        }
        Ok(())
    }
}

/// Why a pool's `serviceAllocation` keeps a Service out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exclusion {
    /// The namespace is neither listed nor selected.
    Namespace {
        /// The Service's namespace.
        namespace: String,
    },
    /// The Service's labels match none of the `serviceSelectors`.
    ServiceLabels,
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Namespace { namespace } => {
                write!(f, "namespace {namespace:?} is not in its serviceAllocation.namespaces or namespaceSelectors")
            }
            Self::ServiceLabels => {
                f.write_str("the Service's labels match none of its serviceAllocation.serviceSelectors")
            }
        }
    }
}

/// Addresses a pool shares with an older pool; the older pool keeps them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Conflict {
    /// The older pool.
    pub older_pool: String,
    /// The addresses both pools list.
    pub range: AddressRange,
}

/// `overlaps pool X on 10.0.0.0/24`: for the pool's `Conflict` condition and Event.
impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "overlaps pool {} on {}", self.older_pool, self.range)
    }
}

/// The addresses one pool owns after conflicts, and its conflicts.
#[derive(Clone, Debug, Default)]
pub(crate) struct PoolLayout {
    pub(crate) conflicts: Vec<Conflict>,
    /// Per family: `None` when the pool has no entry of the family, else what it owns.
    pub(crate) owned: PerFamily<Option<IntervalSet>>,
}

/// Every pool resolved against every other; see the [module documentation](self).
#[derive(Clone, Debug, Default)]
pub(crate) struct Layout {
    pub(crate) pools: BTreeMap<String, PoolLayout>,
    pub(crate) ownership: Ownership,
}

impl Layout {
    /// Resolves `configs` (in any order). `O(p^2 e)` for `p` pools of `e` entries: pools are
    /// few, and this runs only when one changes.
    pub(crate) fn compute<'a>(configs: impl IntoIterator<Item = &'a PoolConfig>) -> Self {
        let mut by_age: Vec<&PoolConfig> = configs.into_iter().collect();
        by_age.sort_by(|a, b| a.age().cmp(&b.age()));
        let mut layout = Self::default();
        let mut claimed = PerFamily::<IntervalSet>::default();
        let mut older: Vec<(&str, PerFamily<Option<IntervalSet>>)> = Vec::new();
        for config in by_age {
            let listed = PerFamily::from_fn(|family| {
                let intervals: IntervalSet = config
                    .ranges
                    .iter()
                    .filter(|range| range.family() == family)
                    .map(|range| range.interval())
                    .collect();
                (!intervals.is_empty()).then_some(intervals)
            });
            let mut pool = PoolLayout::default();
            for family in Family::ALL {
                let Some(mine) = listed.get(family) else { continue };
                for (older_name, older_listed) in &older {
                    let Some(theirs) = older_listed.get(family) else { continue };
                    pool.conflicts.extend(
                        overlap(mine, theirs)
                            .into_iter()
                            .filter_map(|interval| AddressRange::from_interval(family, interval))
                            .map(|range| Conflict { older_pool: (*older_name).to_owned(), range }),
                    );
                }
                let owned = without(mine.clone(), claimed.get(family));
                layout.ownership.claim(family, &owned, &config.name);
                claimed.get_mut(family).extend(mine.iter());
                *pool.owned.get_mut(family) = Some(owned);
            }
            pool.conflicts.sort();
            layout.pools.insert(config.name.clone(), pool);
            older.push((&config.name, listed));
        }
        layout
    }
}

/// Which pool owns each address: an interval map per family. Owned sets never overlap, so
/// the lookup is one `O(log n)` search.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ownership {
    /// start -> (end, pool), per family.
    intervals: PerFamily<BTreeMap<u128, (u128, String)>>,
}

impl Ownership {
    fn claim(&mut self, family: Family, owned: &IntervalSet, pool: &str) {
        let map = self.intervals.get_mut(family);
        for interval in owned.iter() {
            map.insert(interval.start(), (interval.end(), pool.to_owned()));
        }
    }

    /// The pool that owns `address`, if any.
    pub(crate) fn owner(&self, address: IpAddr) -> Option<&str> {
        let number = address_number(address);
        let (_, (end, pool)) = self.intervals.get(Family::of(address)).range(..=number).next_back()?;
        (*end >= number).then_some(pool.as_str())
    }
}

/// The intervals both sets hold, in order. `O(a + b)`: a merge of the two sorted lists.
/// (`IntervalSet` offers no set intersection; this is the one place that needs it.)
fn overlap(a: &IntervalSet, b: &IntervalSet) -> Vec<Interval> {
    let mut shared = Vec::new();
    let (mut left, mut right) = (a.iter().peekable(), b.iter().peekable());
    while let (Some(&x), Some(&y)) = (left.peek(), right.peek()) {
        shared.extend(x.intersection(y));
        // Drop whichever ends first: it cannot meet anything further in the other list.
        if x.end() < y.end() {
            left.next();
        } else {
            right.next();
        }
    }
    shared
}

/// `set` minus every interval of `removed`.
fn without(mut set: IntervalSet, removed: &IntervalSet) -> IntervalSet {
    for interval in removed.iter() {
        set.remove(interval);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::{Requirement, SelectorOperator};

    fn range(entry: &str) -> AddressRange {
        entry.parse().expect("test entry parses")
    }

    fn pool(name: &str, created: i64, entries: &[&str]) -> PoolConfig {
        PoolConfig { created, ..PoolConfig::new(name, entries.iter().map(|e| range(e)).collect()) }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn younger_overlapping_pool_gets_a_conflict_naming_the_older_pool_and_range() {
        let old = pool("old", 100, &["10.0.0.0/24"]);
        let young = pool("young", 200, &["10.0.0.128-10.0.1.10", "fd00::/64"]);
        let layout = Layout::compute([&young, &old]);
        let conflicts = &layout.pools["young"].conflicts;
        assert_eq!(conflicts, &vec![Conflict { older_pool: "old".to_owned(), range: range("10.0.0.128/25") }]);
        assert_eq!(conflicts[0].to_string(), "overlaps pool old on 10.0.0.128/25");
        assert!(layout.pools["old"].conflicts.is_empty());
    }

    #[test]
    fn older_pool_keeps_the_overlap() {
        let old = pool("old", 100, &["10.0.0.0/24"]);
        let young = pool("young", 200, &["10.0.0.128-10.0.1.10"]);
        let layout = Layout::compute([&young, &old]);
        assert_eq!(layout.ownership.owner(ip("10.0.0.200")), Some("old"));
        assert_eq!(layout.ownership.owner(ip("10.0.1.0")), Some("young"));
        assert_eq!(layout.ownership.owner(ip("10.0.2.0")), None);
    }

    #[test]
    fn equal_creation_times_break_by_name() {
        let a = pool("a", 100, &["10.0.0.0/24"]);
        let b = pool("b", 100, &["10.0.0.0/24"]);
        let layout = Layout::compute([&b, &a]);
        assert_eq!(layout.ownership.owner(ip("10.0.0.1")), Some("a"));
        assert_eq!(layout.pools["b"].conflicts.len(), 1);
    }

    #[test]
    fn overlapping_entries_of_one_pool_count_once() {
        let layout = Layout::compute([&pool("p", 0, &["10.0.0.0/24", "10.0.0.10-10.0.0.20"])]);
        let owned = layout.pools["p"].owned.get(Family::V4).clone().expect("IPv4 entries");
        assert_eq!(owned.interval_count(), 1);
        assert!(layout.pools["p"].conflicts.is_empty());
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    fn team_selector(team: &str) -> LabelSelector {
        LabelSelector {
            match_expressions: vec![Requirement {
                key: "team".to_owned(),
                operator: SelectorOperator::In,
                values: [team.to_owned()].into(),
            }],
            ..LabelSelector::default()
        }
    }

    #[test]
    fn namespace_listed_or_selected_is_admitted() {
        let allocation = ServiceAllocation {
            namespaces: ["prod".to_owned()].into(),
            namespace_selectors: vec![team_selector("web")],
            ..ServiceAllocation::default()
        };
        let none = Labels::new();
        assert_eq!(allocation.admits("prod", &none, &none), Ok(()));
        assert_eq!(allocation.admits("staging", &labels(&[("team", "web")]), &none), Ok(()));
        assert_eq!(allocation.admits("dev", &none, &none), Err(Exclusion::Namespace { namespace: "dev".to_owned() }));
    }

    #[test]
    fn service_selectors_must_match_as_well_as_the_namespace() {
        let allocation = ServiceAllocation {
            namespaces: ["prod".to_owned()].into(),
            service_selectors: vec![team_selector("web"), team_selector("api")],
            ..ServiceAllocation::default()
        };
        let none = Labels::new();
        assert_eq!(allocation.admits("prod", &none, &labels(&[("team", "api")])), Ok(()));
        assert_eq!(allocation.admits("prod", &none, &labels(&[("team", "db")])), Err(Exclusion::ServiceLabels));
    }

    #[test]
    fn service_allocation_without_lists_admits_every_service() {
        let allocation = ServiceAllocation { priority: Some(5), ..ServiceAllocation::default() };
        assert_eq!(allocation.admits("any", &Labels::new(), &labels(&[("x", "y")])), Ok(()));
    }
}
