//! What a pool change did to the Services holding addresses.
//!
//! Data flow: [`Allocator::set_pool`](super::Allocator::set_pool) and
//! [`Allocator::remove_pool`](super::Allocator::remove_pool) apply the change at once (so no
//! address is ever held against the new configuration) and return a [`PoolChange`]. The glue
//! then, for each [`Displacement`], emits an Event and calls `assign` again for the Service
//! (which keeps what it still holds and finds a new address or reports why not); for each
//! [`Rehoming`], rewrites `ironlb.io/allocated-from-pool`; rewrites the status of every pool in
//! [`PoolChange::affected_pools`]; and, when [`PoolChange::capacity_added`] is set, retries the
//! Services it has left pending.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use super::pool::Exclusion;
use super::request::{Assignment, ServiceKey};

/// The effects of one `set_pool` or `remove_pool`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolChange {
    /// Services that lost some or all of their addresses.
    pub displaced: Vec<Displacement>,
    /// Services that keep their addresses, now recorded under another pool.
    pub rehomed: Vec<Rehoming>,
    /// Whether some pool may now hand out an address it could not before (a pool added,
    /// enlarged, freed from a conflict, or opened to more Services): pending Services may fit.
    pub capacity_added: bool,
    /// Pools whose status (conditions, allocations or counts) may have changed, removed ones
    /// included.
    pub affected_pools: BTreeSet<String>,
}

/// A Service that lost addresses because its pool changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Displacement {
    /// The Service.
    pub service: ServiceKey,
    /// What it held before.
    pub previous: Assignment,
    /// What it still holds (the addresses that stayed valid), if anything.
    pub remaining: Option<Assignment>,
    /// Why it lost the first address it lost.
    pub reason: DisplacementReason,
}

/// Why an address was taken from a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisplacementReason {
    /// The pool was deleted, and no other pool holds the address.
    PoolRemoved {
        /// The address.
        address: IpAddr,
    },
    /// The pool no longer lists the address.
    LeftPool {
        /// The address.
        address: IpAddr,
    },
    /// An older pool now lists the address, and keeps it.
    TakenByOlderPool {
        /// The address.
        address: IpAddr,
        /// The older pool.
        older_pool: String,
    },
    /// The pool now has `avoidBuggyIPs` and the address ends in `.0` or `.255`.
    Avoided {
        /// The address.
        address: IpAddr,
    },
    /// The pool's `serviceAllocation` no longer admits the Service.
    Excluded(Exclusion),
}

/// `192.168.2.10 was taken from pool web: ...`, for an Event on the Service.
impl fmt::Display for Displacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pool = &self.previous.pool;
        match &self.reason {
            DisplacementReason::PoolRemoved { address } => write!(f, "{address} was released: pool {pool} was deleted"),
            DisplacementReason::LeftPool { address } => {
                write!(f, "{address} was released: pool {pool} no longer lists it")
            }
            DisplacementReason::TakenByOlderPool { address, older_pool } => write!(
                f,
                "{address} was released: it now belongs to the older pool {older_pool}, which overlaps pool {pool}"
            ),
            DisplacementReason::Avoided { address } => {
                write!(f, "{address} was released: pool {pool} now skips .0 and .255 addresses (avoidBuggyIPs)")
            }
            DisplacementReason::Excluded(why) => {
                write!(f, "{} released: pool {pool} no longer serves this Service: {why}", addresses(&self.previous))
            }
        }
    }
}

fn addresses(assignment: &Assignment) -> String {
    let list: Vec<String> = assignment.addresses.iter().map(IpAddr::to_string).collect();
    match list.len() {
        1 => format!("{} was", list.join("")),
        _ => format!("{} were", list.join(", ")),
    }
}

/// A Service whose addresses now belong to another pool (its pool was deleted or shrunk and
/// another pool lists the same addresses and admits the Service): nothing moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rehoming {
    /// The Service.
    pub service: ServiceKey,
    /// The pool it was recorded under.
    pub from_pool: String,
    /// Its assignment, under the new pool.
    pub assignment: Assignment,
}
