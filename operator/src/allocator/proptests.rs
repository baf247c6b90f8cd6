//! Property tests: random sequences of pool changes, assignments and releases over small pools
//! (small enough to recount by brute force, and straddling a /24 boundary so `avoidBuggyIPs`
//! matters), checked against the allocator's invariants after every step.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ironlb_core::address::{AddressCount, AddressRange, Family, address_number, is_buggy_ipv4};
use proptest::prelude::*;

use super::*;

/// Every invariant the allocator promises, recomputed the slow way.
pub(super) fn assert_consistent(allocator: &Allocator) {
    for (service, record) in &allocator.services {
        let assignment = &record.assignment;
        assert!(!assignment.addresses.is_empty(), "{service} is recorded with no address");
        assert!(one_per_family(&assignment.addresses).is_ok(), "{service} holds two addresses of a family");
        let pool =
            allocator.pools.get(&assignment.pool).unwrap_or_else(|| panic!("{service}: no pool {}", assignment.pool));
        assert!(pool.services.contains(service), "pool {} does not list {service}", assignment.pool);
        for &address in &assignment.addresses {
            assert!(
                pool.may_hold(address),
                "{service} holds {address}, which pool {} may not hand out",
                assignment.pool
            );
            assert_eq!(allocator.pool_of(address), Some(assignment.pool.as_str()), "owner of {address}");
            assert!(allocator.holders_of(address).any(|holder| holder == service), "{address} does not list {service}");
        }
    }
    for (address, holders) in &allocator.holders {
        assert!(!holders.is_empty(), "{address} is held by nobody but still recorded");
        let profiles: Vec<(&ServiceKey, &SharingProfile)> = holders
            .iter()
            .map(|holder| {
                let record =
                    allocator.services.get(holder).unwrap_or_else(|| panic!("{address}: unknown holder {holder}"));
                assert!(
                    record.assignment.addresses.contains(address),
                    "{holder} is listed on {address} it does not hold"
                );
                (holder, &record.profile)
            })
            .collect();
        // The central invariant: every two holders of an address may share it.
        for (i, (a, profile_a)) in profiles.iter().enumerate() {
            for (b, profile_b) in &profiles[i + 1..] {
                assert_eq!(profile_a.may_join(profile_b), Ok(()), "{a} and {b} may not share {address}");
            }
        }
        if let Some(key) = &profiles[0].1.key {
            assert!(
                allocator.shared.get(key).is_some_and(|set| set.contains(address)),
                "{address} missing from key {key}"
            );
        }
    }
    for (key, addresses) in &allocator.shared {
        for address in addresses {
            let holders = allocator.holders.get(address).unwrap_or_else(|| panic!("shared {address} has no holder"));
            assert!(holders.iter().all(|holder| allocator.services[holder].profile.key.as_ref() == Some(key)));
        }
    }
    for (name, pool) in &allocator.pools {
        for service in &pool.services {
            assert_eq!(allocator.assignment(service).map(|a| a.pool.as_str()), Some(name.as_str()));
        }
        for family in Family::ALL {
            assert_eq!(
                allocator.pool(name).and_then(|view| view.usage(family)),
                brute_force_usage(allocator, pool, family)
            );
        }
    }
}

/// A pool's counts by walking every address of its entries. Pools too large to walk (the unit
/// tests' /64s) are taken at their word.
fn brute_force_usage(allocator: &Allocator, pool: &Pool, family: Family) -> Option<AddressUsage> {
    const WALKABLE: AddressCount = AddressCount::new(1 << 16);
    let mine: Vec<AddressRange> = pool.config.ranges.iter().copied().filter(|r| r.family() == family).collect();
    if mine.is_empty() {
        return None;
    }
    if mine.iter().any(|range| range.len() > WALKABLE) {
        return pool.space(family).map(AddressSpace::usage);
    }
    let older: Vec<AddressRange> = allocator
        .pools
        .values()
        .filter(|other| other.config.age() < pool.config.age())
        .flat_map(|other| other.config.ranges.iter().copied())
        .collect();
    let listed: BTreeSet<u128> = mine.iter().flat_map(|r| r.interval().start()..=r.interval().end()).collect();
    let (mut usable, mut assigned) = (0u128, 0u128);
    for number in listed {
        let address = family.address(number).expect("test address fits its family");
        let taken_by_older = older.iter().any(|r| r.contains(address));
        let avoided = pool.config.avoid_buggy_ips && family == Family::V4 && is_buggy_ipv4(number);
        if taken_by_older || avoided {
            continue;
        }
        usable += 1;
        if allocator.holders.contains_key(&address) {
            assigned += 1;
        }
    }
    Some(AddressUsage {
        usable: AddressCount::new(usable),
        assigned: AddressCount::new(assigned),
        available: AddressCount::new(usable - assigned),
    })
}

// 10.0.0.248-10.0.1.7 and fd00::-fd00::f: a /24 boundary inside the IPv4 universe.
const V4_BASE: u128 = 0x0A00_00F8;
const V6_BASE: u128 = 0xFD00 << 112;
const UNIVERSE: u128 = 16;
const POOLS: usize = 3;
const SERVICES: usize = 6;

fn address(family: Family, offset: u128) -> IpAddr {
    let base = if family == Family::V4 { V4_BASE } else { V6_BASE };
    family.address(base + offset).expect("universe fits the family")
}

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![3 => Just(Family::V4), 1 => Just(Family::V6)]
}

fn range() -> impl Strategy<Value = AddressRange> {
    (family(), 0..UNIVERSE, 1..6u128).prop_map(|(family, start, len)| {
        let end = (start + len - 1).min(UNIVERSE - 1);
        AddressRange::new(address(family, start), address(family, end)).expect("ordered range")
    })
}

fn namespace(index: usize) -> String {
    ["a", "b"][index % 2].to_owned()
}

fn pool_config() -> impl Strategy<Value = PoolConfig> {
    let allocation = (proptest::option::of(0..3i32), proptest::sample::subsequence(vec![0usize, 1], 0..=2)).prop_map(
        |(priority, namespaces)| ServiceAllocation {
            priority,
            namespaces: namespaces.into_iter().map(namespace).collect(),
            ..ServiceAllocation::default()
        },
    );
    (
        0..POOLS,
        0..3i64,
        proptest::collection::vec(range(), 1..3),
        proptest::bool::weighted(0.8),
        any::<bool>(),
        proptest::option::weighted(0.3, allocation),
    )
        .prop_map(|(index, created, ranges, auto_assign, avoid_buggy_ips, service_allocation)| PoolConfig {
            name: format!("p{index}"),
            created,
            ranges,
            auto_assign,
            avoid_buggy_ips,
            service_allocation,
        })
}

fn request() -> impl Strategy<Value = AllocationRequest> {
    let policy = prop_oneof![
        2 => Just(IpFamilyPolicy::SingleStack),
        1 => Just(IpFamilyPolicy::PreferDualStack),
        1 => Just(IpFamilyPolicy::RequireDualStack),
    ];
    let families = prop_oneof![
        Just(vec![Family::V4]),
        Just(vec![Family::V6]),
        Just(vec![Family::V4, Family::V6]),
        Just(vec![Family::V6, Family::V4]),
    ];
    let ports =
        proptest::sample::subsequence(vec![ServicePort::tcp(80), ServicePort::tcp(443), ServicePort::udp(53)], 0..=2);
    (
        (0..SERVICES, policy, families),
        proptest::option::weighted(0.2, 0..POOLS),
        proptest::option::weighted(0.2, (family(), 0..UNIVERSE)),
        (proptest::option::weighted(0.6, 0..2usize), ports, proptest::option::weighted(0.3, 0..2usize)),
    )
        .prop_map(|((index, family_policy, families), pool, requested, (key, ports, local))| AllocationRequest {
            service: ServiceKey::new(namespace(index), format!("s{index}")),
            family_policy,
            families,
            pool: pool.map(|pool| format!("p{pool}")),
            addresses: requested.map(|(family, offset)| address(family, offset)).into_iter().collect(),
            sharing_key: key.map(|key| format!("key{key}")),
            ports,
            local_pod_selector: local.map(|app| [("app".to_owned(), format!("app{app}"))].into()),
            ..AllocationRequest::default()
        })
}

#[derive(Clone, Debug)]
enum Op {
    SetPool(PoolConfig),
    RemovePool(usize),
    Assign(AllocationRequest),
    Release(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        2 => pool_config().prop_map(Op::SetPool),
        1 => (0..POOLS).prop_map(Op::RemovePool),
        5 => request().prop_map(Op::Assign),
        1 => (0..SERVICES).prop_map(Op::Release),
    ];
    // Start from a few pools so that most assignments have somewhere to go.
    let pools = proptest::collection::vec(pool_config().prop_map(Op::SetPool), 1..4);
    (pools, proptest::collection::vec(op, 1..40)).prop_map(|(mut pools, ops)| {
        pools.extend(ops);
        pools
    })
}

fn service(index: usize) -> ServiceKey {
    ServiceKey::new(namespace(index), format!("s{index}"))
}

/// Runs `ops`, checking the invariants after each, and returns the last request of every
/// Service.
fn run(allocator: &mut Allocator, ops: Vec<Op>) -> BTreeMap<ServiceKey, AllocationRequest> {
    let mut requests = BTreeMap::new();
    for op in ops {
        match op {
            Op::SetPool(config) => {
                allocator.set_pool(config);
            }
            Op::RemovePool(index) => {
                allocator.remove_pool(&format!("p{index}"));
            }
            Op::Assign(request) => {
                let first = allocator.assign(&request);
                // Idempotent: asking again changes nothing.
                assert_eq!(allocator.assign(&request), first, "second assign of {}", request.service);
                requests.insert(request.service.clone(), request);
            }
            Op::Release(index) => {
                let held = allocator.assignment(&service(index)).cloned();
                assert_eq!(allocator.release(&service(index)), held);
                assert_eq!(allocator.assignment(&service(index)), None);
            }
        }
        assert_consistent(allocator);
    }
    requests
}

proptest! {
    #[test]
    fn no_address_is_ever_held_by_two_services_that_may_not_share(ops in ops()) {
        // `run` checks the pairwise sharing invariant (and every other one) after each step.
        run(&mut Allocator::new(), ops);
    }

    #[test]
    fn usage_counts_equal_a_brute_force_recount(ops in ops()) {
        let mut allocator = Allocator::new();
        run(&mut allocator, ops);
        for pool in allocator.pools.values() {
            for family in Family::ALL {
                let counted = allocator.pool(&pool.config.name).and_then(|view| view.usage(family));
                prop_assert_eq!(counted, brute_force_usage(&allocator, pool, family));
            }
        }
    }

    #[test]
    fn release_then_assign_is_consistent(ops in ops()) {
        let mut allocator = Allocator::new();
        let requests = run(&mut allocator, ops);
        for (service, request) in &requests {
            // A Service that has its addresses ...
            let Ok(held) = allocator.assign(request) else { continue };
            let before = usage_totals(&allocator);
            let sole_holder = held.addresses.iter().filter(|&&address| allocator.holders_of(address).count() == 1).count();
            prop_assert_eq!(allocator.release(service), Some(held.clone()));
            for &address in &held.addresses {
                prop_assert!(allocator.holders_of(address).all(|holder| holder != service));
            }
            // Exactly the addresses nobody else held are free again.
            prop_assert_eq!(usage_totals(&allocator), before - sole_holder as u128);
            // ... gets addresses again after letting them go.
            let again = allocator.assign(request);
            prop_assert!(again.is_ok(), "{} held {} but cannot get an address back: {:?}", service, held, again);
            assert_consistent(&allocator);
        }
    }

    #[test]
    fn restoring_the_state_into_a_fresh_allocator_reproduces_every_assignment(ops in ops()) {
        let mut allocator = Allocator::new();
        let requests = run(&mut allocator, ops);
        let mut restarted = Allocator::new();
        // Pools arrive in any order after a restart.
        for pool in allocator.pools().collect::<Vec<_>>().into_iter().rev() {
            restarted.set_pool(pool.config().clone());
        }
        for (service, assignment) in allocator.assignments() {
            let restored = restarted.restore(&requests[service], assignment.clone());
            prop_assert_eq!(restored.as_ref(), Ok(assignment), "restoring {}", service);
        }
        prop_assert!(allocator.assignments().eq(restarted.assignments()));
        assert_consistent(&restarted);
        // From then on both make the same decisions.
        for request in requests.values() {
            prop_assert_eq!(allocator.assign(request), restarted.assign(request));
        }
    }
}

fn usage_totals(allocator: &Allocator) -> u128 {
    allocator
        .pools()
        .flat_map(|view| Family::ALL.map(|family| view.usage(family)))
        .flatten()
        .map(|usage| usage.assigned.saturating_u128())
        .sum()
}

#[test]
fn brute_force_sees_the_test_universe_straddle_a_slash_24() {
    assert!(is_buggy_ipv4(address_number(address(Family::V4, 7))));
    assert!(is_buggy_ipv4(address_number(address(Family::V4, 8))));
}
