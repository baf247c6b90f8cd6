//! What one pool's status lists, and what listing costs: the piece both the announcer decision
//! ([`super::announcers`]) and the status renderer ([`super::pools`]) read, so neither depends
//! on the other.

use std::net::IpAddr;

use ironlb_core::v1alpha1::Allocation;

use crate::allocator::ServiceKey;

/// The most bytes a pool status spends on `allocations`, as [`listing_cost`]
/// estimates them. Kubernetes refuses objects over about 1.5 MiB (etcd's
/// request limit), and the rest of the object (spec, conditions, metadata)
/// needs room too. Past the budget the status lists the first allocations (by
/// namespace and name) and its Ready condition says how many it left out. The
/// counts stay exact and every Service's own status carries its address, but
/// speakers announce only listed allocations: an unlisted address is assigned
/// and unreachable, so such a pool must be split.
///
/// A budget in bytes rather than a count, because an entry's size depends on
/// its names: a count safe for `bench/svc-00001` overflows the object with
/// long namespace and Service names.
pub(crate) const LISTING_BUDGET: usize = 1_200_000;

/// What listing an allocation costs at least (see [`listing_cost`]): field
/// names, punctuation, `Local`, `false`, an allowance for the node and
/// interface names, and the `managedFields` entry but for its key.
const LISTING_COST_FIXED: usize = 340;

/// The most allocations a pool status can list, whatever their names.
pub(crate) const MAX_LISTED_ALLOCATIONS: usize = LISTING_BUDGET / LISTING_COST_FIXED;

/// An upper estimate of what listing one allocation costs in the stored
/// object: its JSON entry with every optional field set, a node name of up to
/// 63 characters and an interface name, plus its server-side-apply
/// `managedFields` entry, which repeats the namespace and the name. (About 390
/// bytes for `bench/svc-00001`: the budget lists about 3,100 of those.)
pub(crate) fn listing_cost(key: &ServiceKey, addresses: &[IpAddr]) -> usize {
    let addresses: usize = addresses.iter().map(|address| if address.is_ipv4() { 18 } else { 42 }).sum();
    LISTING_COST_FIXED + 2 * (key.namespace.len() + key.name.len()) + addresses
}

/// What one pool's status lists: its allocations with what speakers decide from and who
/// announces them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Listing {
    /// The first allocations, in Service order, as many as [`LISTING_BUDGET`] allows.
    pub(crate) allocations: Vec<Allocation>,
    /// Allocations past the cap. No speaker sees them, so no node announces them.
    pub(crate) unlisted: usize,
    /// The addresses of the unlisted allocations.
    pub(crate) unlisted_addresses: usize,
}
