//! Choosing the pool and the addresses for one request.
//!
//! Data flow: [`Allocator::assign`] calls [`Allocator::plan`], which changes nothing: it
//! resolves the families the Service needs, lists the candidate pools (the pool owning a
//! requested address, the pool named by the annotation, or the auto-assign pools in order),
//! plans every candidate (keep a held address, else share a partner's, else the first free
//! one), ranks the plans that satisfy the family policy as the [module documentation](super)
//! says, and returns the best, or explains why none exists. `assign` then records it.

use std::cmp::Reverse;
use std::net::IpAddr;

use ironlb_core::address::Family;

use super::error::{AllocationError, Contradiction, NoPoolMatch};
use super::family::{FamilyWant, IpFamilyPolicy};
use super::request::{AllocationRequest, Assignment, ServiceKey};
use super::sharing::SharingProfile;
use super::{Allocator, Pool};

/// How good a satisfying plan is; the greatest wins. Field order is the ranking order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    /// The pool the Service already holds addresses in.
    current: bool,
    /// The plan shares an address with a partner of the same sharing key.
    shares: bool,
    /// The pool has a `serviceAllocation` (pinned pools before general ones).
    pinned: bool,
    /// 2: both families, 1: the primary, 0: only the secondary.
    completeness: u8,
    /// Earlier in the candidate order is better.
    order: Reverse<usize>,
}

/// One candidate pool, planned for every wanted family.
#[derive(Clone, Debug)]
struct PoolOutcome {
    primary: FamilyOutcome,
    secondary: Option<FamilyOutcome>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FamilyOutcome {
    /// An address the Service may hold.
    Pick(Pick),
    /// The pool has no entry of the family.
    Missing,
    /// The pool has entries of the family but nothing free or shareable.
    Exhausted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pick {
    address: IpAddr,
    /// Another Service holds the address too.
    shares: bool,
}

/// A plan that satisfies the family policy.
struct Choice {
    addresses: Vec<IpAddr>,
    shares: bool,
    completeness: u8,
}

impl FamilyOutcome {
    fn pick(&self) -> Option<Pick> {
        match self {
            Self::Pick(pick) => Some(*pick),
            Self::Missing | Self::Exhausted => None,
        }
    }
}

impl PoolOutcome {
    fn of(&self, want: &FamilyWant, family: Family) -> Option<&FamilyOutcome> {
        if family == want.primary { Some(&self.primary) } else { self.secondary.as_ref() }
    }

    fn has_family(&self, want: &FamilyWant, family: Family) -> bool {
        self.of(want, family).is_some_and(|outcome| *outcome != FamilyOutcome::Missing)
    }

    /// The addresses this pool gives under `policy`, if they satisfy it.
    fn satisfying(&self, policy: IpFamilyPolicy) -> Option<Choice> {
        let primary = self.primary.pick();
        // Only PreferDualStack and RequireDualStack plan a secondary family.
        let secondary = self.secondary.as_ref().and_then(FamilyOutcome::pick);
        let (picks, completeness) = match (primary, secondary) {
            (Some(primary), Some(secondary)) => (vec![primary, secondary], 2),
            _ if policy == IpFamilyPolicy::RequireDualStack => return None,
            (Some(primary), None) => (vec![primary], 1),
            (None, Some(secondary)) => (vec![secondary], 0),
            (None, None) => return None,
        };
        Some(Choice {
            shares: picks.iter().any(|pick| pick.shares),
            addresses: picks.iter().map(|pick| pick.address).collect(),
            completeness,
        })
    }
}

impl Allocator {
    /// The assignment `request` should get; see the [module documentation](self).
    pub(super) fn plan(&self, request: &AllocationRequest) -> Result<Assignment, AllocationError> {
        let want = FamilyWant::of(request)?;
        let profile = SharingProfile::of(request);
        let candidates = self.candidates(request)?;
        let current = self.assignment(&request.service);
        let mut best: Option<(Rank, Assignment)> = None;
        let mut outcomes = Vec::with_capacity(candidates.len());
        for (index, pool) in candidates.iter().enumerate() {
            let outcome = self.plan_pool(pool, &want, &request.service, &profile, current)?;
            if let Some(choice) = outcome.satisfying(want.policy) {
                let rank = Rank {
                    current: current.is_some_and(|held| held.pool == pool.config.name),
                    shares: choice.shares,
                    pinned: pool.config.service_allocation.is_some(),
                    completeness: choice.completeness,
                    order: Reverse(index),
                };
                if best.as_ref().is_none_or(|(best_rank, _)| rank > *best_rank) {
                    best = Some((rank, Assignment { pool: pool.config.name.clone(), addresses: choice.addresses }));
                }
            }
            outcomes.push(outcome);
        }
        match best {
            Some((_, assignment)) => Ok(assignment),
            None => Err(failure(&want, &candidates, &outcomes)),
        }
    }

    /// The pools that may serve `request`, in the order auto-assignment tries them.
    fn candidates(&self, request: &AllocationRequest) -> Result<Vec<&Pool>, AllocationError> {
        let admit = |pool: &Pool| {
            pool.config
                .admits(&request.service, &request.namespace_labels, &request.service_labels)
                .map_err(|why| AllocationError::PoolExcludesService { pool: pool.config.name.clone(), why })
        };
        let named = match &request.pool {
            Some(name) => {
                Some(self.pools.get(name).ok_or_else(|| AllocationError::UnknownPool { pool: name.clone() })?)
            }
            None => None,
        };
        if let Some((&first, others)) = request.addresses.split_first() {
            let pool = self.owning_pool(first, others)?;
            if let Some(named) = named
                && named.config.name != pool.config.name
            {
                return Err(AllocationError::ConflictingRequest(Contradiction::PoolAndAddress {
                    pool: named.config.name.clone(),
                    address: first,
                    address_pool: pool.config.name.clone(),
                }));
            }
            admit(pool)?;
            return Ok(vec![pool]);
        }
        if let Some(pool) = named {
            admit(pool)?;
            return Ok(vec![pool]);
        }
        self.auto_candidates(request)
    }

    /// The auto-assign pools admitting the Service, in auto-assignment order.
    fn auto_candidates(&self, request: &AllocationRequest) -> Result<Vec<&Pool>, AllocationError> {
        let no_match = |why| Err(AllocationError::NoPoolMatches { why });
        if self.pools.is_empty() {
            return no_match(NoPoolMatch::NoPools);
        }
        let mut eligible = Vec::new();
        let mut excluded = Vec::new();
        for pool in self.pools.values().filter(|pool| pool.config.auto_assign) {
            match pool.config.admits(&request.service, &request.namespace_labels, &request.service_labels) {
                Ok(()) => eligible.push(pool),
                Err(why) => excluded.push((pool.config.name.clone(), why)),
            }
        }
        if eligible.is_empty() && excluded.is_empty() {
            return no_match(NoPoolMatch::NoneAutoAssign { pools: self.pools.keys().cloned().collect() });
        }
        if eligible.is_empty() {
            return no_match(NoPoolMatch::ExcludedByServiceAllocation { pools: excluded });
        }
        eligible.sort_by(|a, b| a.config.auto_order().cmp(&b.config.auto_order()));
        Ok(eligible)
    }

    fn plan_pool(
        &self,
        pool: &Pool,
        want: &FamilyWant,
        service: &ServiceKey,
        profile: &SharingProfile,
        current: Option<&Assignment>,
    ) -> Result<PoolOutcome, AllocationError> {
        let held = match current {
            Some(assignment) if assignment.pool == pool.config.name => assignment.addresses.as_slice(),
            _ => &[],
        };
        let plan = |family: Family| self.plan_family(pool, family, *want.requested.get(family), held, service, profile);
        Ok(PoolOutcome { primary: plan(want.primary)?, secondary: want.secondary.map(plan).transpose()? })
    }

    /// One family in one pool: the requested address, else the address held now (if it may
    /// still be held next to its co-holders), else a partner's address, else the first free.
    fn plan_family(
        &self,
        pool: &Pool,
        family: Family,
        requested: Option<IpAddr>,
        held: &[IpAddr],
        service: &ServiceKey,
        profile: &SharingProfile,
    ) -> Result<FamilyOutcome, AllocationError> {
        let Some(space) = pool.space(family) else {
            return Ok(FamilyOutcome::Missing);
        };
        let pick = |address: IpAddr| {
            FamilyOutcome::Pick(Pick { address, shares: self.holders_of(address).any(|holder| holder != service) })
        };
        if let Some(address) = requested {
            // `candidates` chose this pool because it owns the address and does not avoid it.
            self.check_join(address, service, profile)?;
            return Ok(pick(address));
        }
        let kept = held.iter().copied().find(|&address| {
            Family::of(address) == family
                && pool.may_hold(address)
                && self.check_join(address, service, profile).is_ok()
        });
        if let Some(address) = kept.or_else(|| self.shareable(pool, family, service, profile)) {
            return Ok(pick(address));
        }
        Ok(match space.first_free().and_then(|number| family.address(number)) {
            Some(address) => pick(address),
            None => FamilyOutcome::Exhausted,
        })
    }

    /// The lowest address of `pool` held by partners `service` may share with.
    fn shareable(&self, pool: &Pool, family: Family, service: &ServiceKey, profile: &SharingProfile) -> Option<IpAddr> {
        let key = profile.key.as_ref()?;
        self.shared.get(key)?.iter().copied().find(|&address| {
            Family::of(address) == family
                && pool.may_hold(address)
                && self.check_join(address, service, profile).is_ok()
        })
    }
}

/// Why no candidate satisfied the request: the family no pool has, or the pools that ran out.
fn failure(want: &FamilyWant, candidates: &[&Pool], outcomes: &[PoolOutcome]) -> AllocationError {
    let names = |pools: &mut dyn Iterator<Item = &Pool>| pools.map(|pool| pool.config.name.clone()).collect();
    let mut needed: Vec<Family> = match want.policy {
        IpFamilyPolicy::RequireDualStack => want.families().collect(),
        IpFamilyPolicy::SingleStack | IpFamilyPolicy::PreferDualStack => vec![want.primary],
    };
    // PreferDualStack falls back to the secondary family; report on it when no pool has the
    // primary at all.
    if want.policy == IpFamilyPolicy::PreferDualStack
        && !outcomes.iter().any(|outcome| outcome.has_family(want, want.primary))
        && let Some(secondary) = want.secondary.filter(|&s| outcomes.iter().any(|outcome| outcome.has_family(want, s)))
    {
        needed = vec![secondary];
    }
    let complete: Vec<(&Pool, &PoolOutcome)> = candidates
        .iter()
        .copied()
        .zip(outcomes)
        .filter(|(_, outcome)| needed.iter().all(|&family| outcome.has_family(want, family)))
        .collect();
    if complete.is_empty() {
        return AllocationError::FamilyUnavailable { families: needed, pools: names(&mut candidates.iter().copied()) };
    }
    for &family in &needed {
        let mut exhausted = complete
            .iter()
            .filter(|(_, outcome)| outcome.of(want, family) == Some(&FamilyOutcome::Exhausted))
            .map(|(pool, _)| *pool)
            .peekable();
        if exhausted.peek().is_some() {
            return AllocationError::PoolExhausted { family, pools: names(&mut exhausted) };
        }
    }
    // Unreachable: a complete pool with a pick for every needed family satisfies the request.
    AllocationError::PoolExhausted { family: want.primary, pools: names(&mut complete.iter().map(|(pool, _)| *pool)) }
}
