//! The allocator: which address each LoadBalancer Service gets, from which pool.
//!
//! A pure library: no I/O, no clock, no Kubernetes client. The operator's glue converts
//! `IPAddressPool`s into [`PoolConfig`]s and Services (with their Namespace's labels) into
//! [`AllocationRequest`]s, drives the [`Allocator`], and writes back what it answers: the
//! Service's [`Assignment`], an `AllocationFailed` Event from an [`AllocationError`], the pool
//! status from [`PoolView`].
//!
//! # Data flow
//!
//! 1. On start, [`Allocator::set_pool`] for every pool, then [`Allocator::restore`] for every
//!    Service from what its status (or the pool status) already records, then
//!    [`Allocator::assign`] for every Service. Restoring first means a restart moves no IP.
//! 2. On a Service event, [`Allocator::assign`] (idempotent: a Service whose current addresses
//!    still satisfy its request keeps exactly them), or [`Allocator::release`] when it stops
//!    being a LoadBalancer Service of ours or is deleted.
//! 3. On a pool event, [`Allocator::set_pool`] / [`Allocator::remove_pool`], and act on the
//!    returned [`PoolChange`] (re-assign displaced Services, retry pending ones when capacity
//!    was added). The glue keeps the set of pending Services; any `release` or a `PoolChange`
//!    with `capacity_added` is a reason to retry them.
//!
//! # Which pool
//!
//! - A requested address (`ironlb.io/loadBalancerIPs`, `spec.loadBalancerIP`) selects the pool
//!   that owns it; with `ironlb.io/address-pool` as well, both must agree.
//! - Otherwise `ironlb.io/address-pool` selects that pool.
//! - Otherwise auto-assignment: the pools with `autoAssign: true` whose `serviceAllocation`
//!   admits the Service, in this order:
//!   1. pools with `serviceAllocation.priority`, lower number first;
//!   2. pools with `serviceAllocation` but no priority;
//!   3. pools without `serviceAllocation`;
//!
//!   and within each, older pool (`created`) first, then name.
//!
//! `serviceAllocation` limits who may use a pool however it is chosen: a pool named by the
//! annotation or owning a requested address must admit the Service too.
//!
//! Among the pools that can serve the request, the first by this ranking wins (each criterion
//! only breaks ties of the ones before it):
//! 1. the pool the Service already holds addresses in (an IP never moves when it need not);
//! 2. a pool where the Service shares an address with a Service of the same sharing key;
//! 3. a pool with `serviceAllocation` over one without (as MetalLB: pinned pools first);
//! 4. for PreferDualStack, a pool giving both families over one giving only the primary, over
//!    one giving only the secondary;
//! 5. the order above.
//!
//! # Families
//!
//! `spec.ipFamilies` gives the order (primary first); the assignment lists addresses in it.
//! - SingleStack: one address of the primary family.
//! - RequireDualStack: both families, from one pool, else [`AllocationError::FamilyUnavailable`]
//!   (no pool has both) or [`AllocationError::PoolExhausted`].
//! - PreferDualStack: both from one pool when a candidate can give both, else the primary
//!   alone, else the secondary alone; this is criterion 4 above, so the pool the Service is in,
//!   a partner's pool and pinned pools still come first. A PreferDualStack Service whose pool
//!   later gains the missing family gets it added on its next `assign`, without moving the
//!   other address.
//!
//! A requested address fixes its family; any other family the Service needs comes from the
//! same pool.
//!
//! # Sharing
//!
//! Services with the same `ironlb.io/allow-shared-ip` key may hold one address when no port is
//! used by both with the same protocol and both use `externalTrafficPolicy: Cluster`, or both
//! `Local` with the same pod selector. A Service with a key first looks, in each pool, for an
//! address it may share; otherwise it takes a free one. Every holder of an address has been
//! checked against every other: an address is never held by two Services that may not share it.
//!
//! # Failures
//!
//! `assign` either returns the Service's assignment or fails and leaves the Service holding
//! nothing (what it held did not satisfy its request, or `assign` would have kept it): the
//! Service is pending until its request or the pools change. `restore` changes nothing when it
//! fails.
//!
//! # Cost
//!
//! Addresses are numbers in interval sets ([`IntervalSet`](ironlb_core::address::IntervalSet));
//! no range is enumerated, so a /8 or an IPv6 /64 costs what a /30 does. Finding a free address
//! is `O(r log n)` for a pool of `r` entries holding `n` allocations, `avoidBuggyIPs` included
//! (see `space.rs`); finding the owner of an address is `O(log r)`. A pool change re-examines only
//! the Services of pools whose addresses or rules changed.

mod change;
mod choice;
mod error;
mod family;
mod pool;
mod reconfigure;
mod request;
mod sharing;
mod space;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ironlb_core::address::{Family, address_number};

pub use change::{Displacement, DisplacementReason, PoolChange, Rehoming};
pub use error::{AllocationError, Contradiction, NoPoolMatch};
pub use family::IpFamilyPolicy;
pub use ironlb_core::selector::{LabelSelector, Labels, Requirement, SelectorOperator};
pub use pool::{Conflict, Exclusion, PoolConfig, ServiceAllocation};
pub use request::{AllocationRequest, Assignment, Protocol, ServiceKey, ServicePort, UnknownProtocol};
pub use sharing::ShareRefusal;
pub use space::AddressUsage;

use family::{PerFamily, one_per_family};
use pool::Ownership;
use sharing::SharingProfile;
use space::AddressSpace;

/// The allocation state of the whole cluster: pools, and which Service holds which address.
/// See the [module documentation](self) for the rules.
#[derive(Clone, Debug, Default)]
pub struct Allocator {
    pools: BTreeMap<String, Pool>,
    /// Which pool owns each address, after conflicts.
    ownership: Ownership,
    services: BTreeMap<ServiceKey, ServiceRecord>,
    /// Every held address and its holders (more than one only when they may share).
    holders: BTreeMap<IpAddr, BTreeSet<ServiceKey>>,
    /// Sharing key -> the held addresses whose holders carry it, to find a partner's address
    /// without scanning every allocation.
    shared: BTreeMap<String, BTreeSet<IpAddr>>,
}

#[derive(Clone, Debug)]
struct Pool {
    config: PoolConfig,
    conflicts: Vec<Conflict>,
    /// `None` for a family the pool has no entry of.
    spaces: PerFamily<Option<AddressSpace>>,
    services: BTreeSet<ServiceKey>,
}

impl Pool {
    fn space(&self, family: Family) -> Option<&AddressSpace> {
        self.spaces.get(family).as_ref()
    }

    /// Whether the pool may hand out `address` (owns it, does not avoid it).
    fn may_hold(&self, address: IpAddr) -> bool {
        self.space(Family::of(address)).is_some_and(|space| space.may_hold(address_number(address)))
    }

    /// Whether `avoidBuggyIPs` keeps `address` out of the pool.
    fn avoids(&self, address: IpAddr) -> bool {
        self.space(Family::of(address)).is_some_and(|space| space.avoids(address_number(address)))
    }

    fn admits(&self, service: &ServiceKey, admission: &Admission) -> Result<(), Exclusion> {
        self.config.admits(service, &admission.namespace_labels, &admission.service_labels)
    }
}

/// What the allocator remembers of a Service between calls.
#[derive(Clone, Debug)]
struct ServiceRecord {
    assignment: Assignment,
    profile: SharingProfile,
    admission: Admission,
}

/// The labels `serviceAllocation` is judged on, kept to re-judge when a pool changes.
#[derive(Clone, Debug, Default)]
struct Admission {
    namespace_labels: Labels,
    service_labels: Labels,
}

impl Admission {
    fn of(request: &AllocationRequest) -> Self {
        Self { namespace_labels: request.namespace_labels.clone(), service_labels: request.service_labels.clone() }
    }
}

impl Allocator {
    /// An allocator with no pools and no Services.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a pool, re-resolves conflicts between all pools, and takes back every
    /// address that is no longer valid; see [`PoolChange`].
    pub fn set_pool(&mut self, config: PoolConfig) -> PoolChange {
        let name = config.name.clone();
        self.reconfigure(&name, Some(config))
    }

    /// Removes a pool; its Services keep their addresses only where another pool now owns them
    /// and admits them ([`PoolChange::rehomed`]), otherwise they are displaced.
    pub fn remove_pool(&mut self, name: &str) -> PoolChange {
        if !self.pools.contains_key(name) {
            return PoolChange::default();
        }
        self.reconfigure(name, None)
    }

    /// Gives the Service its addresses: the ones it holds when they still satisfy the request,
    /// otherwise new ones chosen by the rules of the [module documentation](self).
    ///
    /// # Errors
    ///
    /// Why the request cannot be met; the Service then holds nothing.
    pub fn assign(&mut self, request: &AllocationRequest) -> Result<Assignment, AllocationError> {
        match self.plan(request) {
            Ok(assignment) => {
                self.record(request, assignment.clone());
                Ok(assignment)
            }
            Err(error) => {
                self.forget(&request.service);
                Err(error)
            }
        }
    }

    /// Records what the cluster already says the Service holds (its status, the pool status),
    /// so that a restarted operator keeps every address. Call it for every Service after
    /// setting the pools and before any `assign`. Returns the assignment as recorded: the pool
    /// is the one that owns the addresses now, which differs from `assignment.pool` only if
    /// that pool was replaced by another listing the same addresses. An empty assignment
    /// records nothing.
    ///
    /// # Errors
    ///
    /// Why the addresses cannot be kept: [`AllocationError::AddressNotInAnyPool`],
    /// [`AllocationError::AddressAvoided`], [`AllocationError::ConflictingRequest`] (two pools),
    /// [`AllocationError::TooManyAddresses`], [`AllocationError::PoolExcludesService`], or
    /// [`AllocationError::AddressInUse`] naming an already restored holder it may not share
    /// with. Nothing changes then; `assign` will find the Service a valid address.
    pub fn restore(
        &mut self,
        request: &AllocationRequest,
        assignment: Assignment,
    ) -> Result<Assignment, AllocationError> {
        one_per_family(&assignment.addresses)?;
        let Some((&first, others)) = assignment.addresses.split_first() else {
            return Ok(assignment);
        };
        let pool = self.owning_pool(first, others)?;
        pool.config
            .admits(&request.service, &request.namespace_labels, &request.service_labels)
            .map_err(|why| AllocationError::PoolExcludesService { pool: pool.config.name.clone(), why })?;
        let profile = SharingProfile::of(request);
        for &address in &assignment.addresses {
            self.check_join(address, &request.service, &profile)?;
        }
        let mut addresses = assignment.addresses;
        // Primary family first, as `assign` would list them.
        addresses.sort_by_key(|&address| {
            request.families.iter().position(|&family| family == Family::of(address)).unwrap_or(usize::MAX)
        });
        let restored = Assignment { pool: pool.config.name.clone(), addresses };
        self.record(request, restored.clone());
        Ok(restored)
    }

    /// Releases every address the Service holds and forgets it. Returns what it held.
    pub fn release(&mut self, service: &ServiceKey) -> Option<Assignment> {
        self.forget(service)
    }

    /// What the Service holds.
    pub fn assignment(&self, service: &ServiceKey) -> Option<&Assignment> {
        self.services.get(service).map(|record| &record.assignment)
    }

    /// Every Service holding addresses, in key order.
    pub fn assignments(&self) -> impl Iterator<Item = (&ServiceKey, &Assignment)> {
        self.services.iter().map(|(key, record)| (key, &record.assignment))
    }

    /// The Services holding `address` (several only when they share it), in key order.
    pub fn holders_of(&self, address: IpAddr) -> impl Iterator<Item = &ServiceKey> {
        self.holders.get(&address).into_iter().flatten()
    }

    /// The pool that owns `address` after conflicts, whether or not anyone holds it.
    pub fn pool_of(&self, address: IpAddr) -> Option<&str> {
        self.ownership.owner(address)
    }

    /// One pool, for its status.
    pub fn pool(&self, name: &str) -> Option<PoolView<'_>> {
        self.pools.get(name).map(|pool| PoolView { allocator: self, pool })
    }

    /// Every pool, by name.
    pub fn pools(&self) -> impl Iterator<Item = PoolView<'_>> {
        self.pools.values().map(|pool| PoolView { allocator: self, pool })
    }

    /// The pool owning `first` and all of `others`, and allowed to hand them out.
    fn owning_pool(&self, first: IpAddr, others: &[IpAddr]) -> Result<&Pool, AllocationError> {
        let owner = |address: IpAddr| {
            let pool = self
                .ownership
                .owner(address)
                .and_then(|name| self.pools.get(name))
                .ok_or(AllocationError::AddressNotInAnyPool { address })?;
            if pool.avoids(address) {
                return Err(AllocationError::AddressAvoided { address, pool: pool.config.name.clone() });
            }
            Ok(pool)
        };
        let pool = owner(first)?;
        for &address in others {
            let other = owner(address)?;
            if other.config.name != pool.config.name {
                return Err(AllocationError::ConflictingRequest(Contradiction::AddressesInDifferentPools {
                    first: (first, pool.config.name.clone()),
                    second: (address, other.config.name.clone()),
                }));
            }
        }
        Ok(pool)
    }

    /// Whether `service` (with `profile`) may hold `address` next to its current holders.
    fn check_join(
        &self,
        address: IpAddr,
        service: &ServiceKey,
        profile: &SharingProfile,
    ) -> Result<(), AllocationError> {
        for holder in self.holders_of(address).filter(|&holder| holder != service) {
            if let Some(record) = self.services.get(holder) {
                profile.may_join(&record.profile).map_err(|why| AllocationError::AddressInUse {
                    address,
                    holder: holder.clone(),
                    why,
                })?;
            }
        }
        Ok(())
    }

    /// Replaces whatever the Service held with `assignment`, which the caller has checked.
    fn record(&mut self, request: &AllocationRequest, assignment: Assignment) {
        let service = &request.service;
        self.forget(service);
        let profile = SharingProfile::of(request);
        for &address in &assignment.addresses {
            self.hold(service, address, &assignment.pool, profile.key.as_deref());
        }
        if let Some(pool) = self.pools.get_mut(&assignment.pool) {
            pool.services.insert(service.clone());
        }
        let record = ServiceRecord { assignment, profile, admission: Admission::of(request) };
        self.services.insert(service.clone(), record);
    }

    /// Removes the Service and lets go of its addresses.
    fn forget(&mut self, service: &ServiceKey) -> Option<Assignment> {
        let record = self.services.remove(service)?;
        for &address in &record.assignment.addresses {
            self.unhold(service, address, Some(&record.assignment.pool), record.profile.key.as_deref());
        }
        if let Some(pool) = self.pools.get_mut(&record.assignment.pool) {
            pool.services.remove(service);
        }
        Some(record.assignment)
    }

    fn hold(&mut self, service: &ServiceKey, address: IpAddr, pool: &str, sharing_key: Option<&str>) {
        let holders = self.holders.entry(address).or_default();
        if holders.is_empty()
            && let Some(space) =
                self.pools.get_mut(pool).and_then(|pool| pool.spaces.get_mut(Family::of(address)).as_mut())
        {
            space.take(address_number(address));
        }
        holders.insert(service.clone());
        if let Some(key) = sharing_key {
            self.shared.entry(key.to_owned()).or_default().insert(address);
        }
    }

    /// Drops one holder of `address`; when it was the last, frees the address in `pool` (pass
    /// `None` when the pool's space is being rebuilt anyway).
    fn unhold(&mut self, service: &ServiceKey, address: IpAddr, pool: Option<&str>, sharing_key: Option<&str>) {
        let Some(holders) = self.holders.get_mut(&address) else { return };
        holders.remove(service);
        if !holders.is_empty() {
            return;
        }
        self.holders.remove(&address);
        if let Some(space) = pool
            .and_then(|name| self.pools.get_mut(name))
            .and_then(|pool| pool.spaces.get_mut(Family::of(address)).as_mut())
        {
            space.free(address_number(address));
        }
        if let Some(key) = sharing_key
            && let Some(addresses) = self.shared.get_mut(key)
        {
            addresses.remove(&address);
            if addresses.is_empty() {
                self.shared.remove(key);
            }
        }
    }
}

/// One pool's state, for its status and metrics.
#[derive(Clone, Copy, Debug)]
pub struct PoolView<'a> {
    allocator: &'a Allocator,
    pool: &'a Pool,
}

impl<'a> PoolView<'a> {
    /// The pool's configuration.
    pub fn config(&self) -> &'a PoolConfig {
        &self.pool.config
    }

    /// The pool's name.
    pub fn name(&self) -> &'a str {
        &self.pool.config.name
    }

    /// The ranges the pool shares with older pools (which keep them), for its `Conflict`
    /// condition.
    pub fn conflicts(&self) -> &'a [Conflict] {
        &self.pool.conflicts
    }

    /// Every Service holding addresses from the pool, in key order.
    pub fn allocations(&self) -> impl Iterator<Item = (&'a ServiceKey, &'a Assignment)> + 'a {
        let services = &self.allocator.services;
        self.pool.services.iter().filter_map(move |key| services.get(key).map(|record| (key, &record.assignment)))
    }

    /// How many Services hold addresses from the pool, without walking them.
    pub fn allocation_count(&self) -> usize {
        self.pool.services.len()
    }

    /// The pool's counts for `family`, or `None` when it has no entry of that family.
    pub fn usage(&self, family: Family) -> Option<AddressUsage> {
        self.pool.space(family).map(AddressSpace::usage)
    }
}
