//! Applying a pool change to the Services that hold addresses.
//!
//! Data flow: [`Allocator::set_pool`] and [`Allocator::remove_pool`] call
//! [`Allocator::reconfigure`], which resolves all pools again ([`Layout::compute`]), finds the
//! pools whose owned addresses or rules (`avoidBuggyIPs`, `serviceAllocation`) changed, rebuilds
//! them, and judges each of their Services: keep (everything still valid), rehome (its addresses
//! now belong to another pool that admits it: nothing moves), or displace (release what is no
//! longer valid and say why). Services of other pools are not looked at. The outcome is the
//! [`PoolChange`] the glue acts on.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ironlb_core::address::{Family, address_number};

use super::change::{Displacement, DisplacementReason, PoolChange, Rehoming};
use super::pool::{Layout, PoolConfig, PoolLayout};
use super::request::{Assignment, ServiceKey};
use super::space::AddressSpace;
use super::{Allocator, Pool, ServiceRecord};

/// What happens to one Service of a rebuilt pool.
#[derive(Clone, Debug)]
enum Verdict {
    Keep,
    Rehome(String),
    Displace { kept: Vec<IpAddr>, reason: DisplacementReason },
}

/// How one pool differs from its previous state.
#[derive(Clone, Copy, Debug, Default)]
struct Delta {
    /// Its owned addresses or its rules for holders changed: rebuild it, re-judge its Services.
    rebuild: bool,
    /// It may hand out something it could not before.
    capacity_added: bool,
    /// Its conflicts changed: its status must be rewritten.
    conflicts_changed: bool,
}

impl Delta {
    fn between(old: Option<&Pool>, new: &PoolConfig, layout: &PoolLayout) -> Self {
        let Some(old) = old else {
            let owns_any =
                Family::ALL.iter().any(|&family| layout.owned.get(family).as_ref().is_some_and(|set| !set.is_empty()));
            return Self { rebuild: true, capacity_added: owns_any, conflicts_changed: true };
        };
        let mut owned_changed = false;
        let mut gained = false;
        for family in Family::ALL {
            let before = old.space(family).map(AddressSpace::allocatable);
            let after = layout.owned.get(family).as_ref();
            owned_changed |= before != after;
            if let Some(after) = after {
                gained |= after
                    .iter()
                    .any(|interval| before.is_none_or(|before| before.count_in(interval) != interval.len()));
            }
        }
        let was = &old.config;
        let admission_changed = was.service_allocation != new.service_allocation;
        Self {
            rebuild: owned_changed || admission_changed || was.avoid_buggy_ips != new.avoid_buggy_ips,
            // A changed serviceAllocation may admit Services it did not: count it as capacity.
            capacity_added: gained
                || admission_changed
                || (was.avoid_buggy_ips && !new.avoid_buggy_ips)
                || (!was.auto_assign && new.auto_assign),
            conflicts_changed: old.conflicts != layout.conflicts,
        }
    }
}

impl Pool {
    /// A pool with nothing taken yet.
    fn empty(config: PoolConfig, layout: PoolLayout) -> Self {
        let avoid = config.avoid_buggy_ips;
        let spaces = layout.owned.map(|family, owned| owned.map(|owned| AddressSpace::new(family, owned, avoid)));
        Self { config, conflicts: layout.conflicts, spaces, services: BTreeSet::new() }
    }
}

impl Allocator {
    /// Sets (`Some`) or removes (`None`) pool `name`; see the [module documentation](self).
    pub(super) fn reconfigure(&mut self, name: &str, config: Option<PoolConfig>) -> PoolChange {
        let others = self.pools.values().map(|pool| &pool.config).filter(|other| other.name != name);
        let layout = Layout::compute(others.chain(config.as_ref()));
        let mut change = PoolChange::default();
        change.affected_pools.insert(name.to_owned());

        let mut rebuilt = BTreeSet::new();
        if config.is_none() {
            rebuilt.insert(name.to_owned());
        }
        for (pool_name, pool_layout) in &layout.pools {
            let new_config =
                if pool_name == name { config.as_ref() } else { self.pools.get(pool_name).map(|pool| &pool.config) };
            let Some(new_config) = new_config else { continue };
            let delta = Delta::between(self.pools.get(pool_name), new_config, pool_layout);
            if delta.rebuild {
                rebuilt.insert(pool_name.clone());
            }
            if delta.conflicts_changed {
                change.affected_pools.insert(pool_name.clone());
            }
            change.capacity_added |= delta.capacity_added;
        }

        let to_judge: Vec<ServiceKey> = rebuilt
            .iter()
            .filter_map(|pool_name| self.pools.get(pool_name))
            .flat_map(|pool| pool.services.iter().cloned())
            .collect();
        self.install(name, config, layout, &rebuilt);

        let mut touched = rebuilt.clone();
        for service in to_judge {
            let Some(record) = self.services.get(&service) else { continue };
            let verdict = self.judge(&service, record);
            if let Verdict::Rehome(target) = &verdict {
                touched.insert(target.clone());
            }
            self.apply(service, verdict, &mut change);
        }
        // Rebuilt pools start with nothing taken; rehoming adds to its target. Taking is
        // idempotent, so every touched pool simply takes what its Services hold.
        for pool_name in &touched {
            let Some(pool) = self.pools.get_mut(pool_name) else { continue };
            for service in &pool.services {
                let Some(record) = self.services.get(service) else { continue };
                for &address in &record.assignment.addresses {
                    if let Some(space) = pool.spaces.get_mut(Family::of(address)).as_mut() {
                        space.take(address_number(address));
                    }
                }
            }
        }
        change.affected_pools.extend(touched);
        change
    }

    /// Replaces the pools with the new layout: rebuilt pools start empty, the others keep
    /// their state and get their new conflicts (and, for `name`, the new config).
    fn install(&mut self, name: &str, mut config: Option<PoolConfig>, layout: Layout, rebuilt: &BTreeSet<String>) {
        let mut old_pools = std::mem::take(&mut self.pools);
        for (pool_name, pool_layout) in layout.pools {
            let old = old_pools.remove(&pool_name);
            let new_config = if pool_name == name { config.take() } else { None };
            let pool = match old {
                Some(mut old) if !rebuilt.contains(&pool_name) => {
                    // Only what does not affect holders changed (autoAssign, the priority, the
                    // entries' spelling).
                    if let Some(new_config) = new_config {
                        old.config = new_config;
                    }
                    old.conflicts = pool_layout.conflicts;
                    old
                }
                old => match new_config.or(old.map(|old| old.config)) {
                    Some(config) => Pool::empty(config, pool_layout),
                    None => continue,
                },
            };
            self.pools.insert(pool_name, pool);
        }
        self.ownership = layout.ownership;
    }

    /// Keep, rehome or displace one Service of a rebuilt pool, against the installed pools.
    fn judge(&self, service: &ServiceKey, record: &ServiceRecord) -> Verdict {
        let home = record.assignment.pool.as_str();
        let pool = self.pools.get(home);
        let admission = pool.map(|pool| pool.admits(service, &record.admission));
        let losses: Vec<(IpAddr, Option<DisplacementReason>)> =
            record.assignment.addresses.iter().map(|&address| (address, self.loss(home, address))).collect();
        let reason = match losses.iter().find_map(|(_, loss)| loss.clone()) {
            Some(loss) => loss,
            None => match &admission {
                Some(Err(why)) => DisplacementReason::Excluded(why.clone()),
                // Every address is valid where it is, and the pool still admits the Service.
                _ => return Verdict::Keep,
            },
        };
        if let Some(target) = self.rehome_target(service, record) {
            return Verdict::Rehome(target);
        }
        let kept = match admission {
            Some(Ok(())) => losses.into_iter().filter(|(_, loss)| loss.is_none()).map(|(address, _)| address).collect(),
            _ => Vec::new(),
        };
        Verdict::Displace { kept, reason }
    }

    /// Why `address` may no longer be held from pool `home`, if it may not.
    fn loss(&self, home: &str, address: IpAddr) -> Option<DisplacementReason> {
        let pool = self.pools.get(home);
        match (self.ownership.owner(address), pool) {
            (Some(owner), Some(pool)) if owner == home => {
                pool.avoids(address).then_some(DisplacementReason::Avoided { address })
            }
            (Some(owner), Some(_)) => {
                Some(DisplacementReason::TakenByOlderPool { address, older_pool: owner.to_owned() })
            }
            (None, Some(_)) => Some(DisplacementReason::LeftPool { address }),
            (_, None) => Some(DisplacementReason::PoolRemoved { address }),
        }
    }

    /// Another pool that now owns every address of the Service, may hand them out, and admits
    /// it: the Service can stay where it is, recorded under that pool.
    fn rehome_target(&self, service: &ServiceKey, record: &ServiceRecord) -> Option<String> {
        let addresses = &record.assignment.addresses;
        let target = self.ownership.owner(*addresses.first()?)?;
        let pool = self.pools.get(target)?;
        let all_there =
            addresses.iter().all(|&address| self.ownership.owner(address) == Some(target) && pool.may_hold(address));
        (target != record.assignment.pool && all_there && pool.admits(service, &record.admission).is_ok())
            .then(|| target.to_owned())
    }

    fn apply(&mut self, service: ServiceKey, verdict: Verdict, change: &mut PoolChange) {
        let Some(record) = self.services.get_mut(&service) else { return };
        match verdict {
            Verdict::Keep => {
                if let Some(pool) = self.pools.get_mut(&record.assignment.pool) {
                    pool.services.insert(service);
                }
            }
            Verdict::Rehome(target) => {
                let from_pool = std::mem::replace(&mut record.assignment.pool, target.clone());
                let assignment = record.assignment.clone();
                if let Some(pool) = self.pools.get_mut(&target) {
                    pool.services.insert(service.clone());
                }
                change.rehomed.push(Rehoming { service, from_pool, assignment });
            }
            Verdict::Displace { kept, reason } => {
                let previous = record.assignment.clone();
                let sharing_key = record.profile.key.clone();
                let remaining = (!kept.is_empty()).then(|| Assignment { pool: previous.pool.clone(), addresses: kept });
                match &remaining {
                    Some(remaining) => {
                        record.assignment = remaining.clone();
                        if let Some(pool) = self.pools.get_mut(&remaining.pool) {
                            pool.services.insert(service.clone());
                        }
                    }
                    None => {
                        self.services.remove(&service);
                    }
                }
                let still_held = |address: &IpAddr| remaining.as_ref().is_some_and(|r| r.addresses.contains(address));
                for &address in previous.addresses.iter().filter(|address| !still_held(address)) {
                    // The home pool was rebuilt (or removed): there is no space to free it in.
                    self.unhold(&service, address, None, sharing_key.as_deref());
                }
                change.displaced.push(Displacement { service, previous, remaining, reason });
            }
        }
    }
}
