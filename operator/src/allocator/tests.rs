//! The allocation rules, one scenario per test.

use std::net::IpAddr;

use ironlb_core::address::{AddressCount, AddressRange, Family};

use super::proptests::assert_consistent;
use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|_| panic!("{text} is a test address"))
}

fn ips(texts: &[&str]) -> Vec<IpAddr> {
    texts.iter().map(|text| ip(text)).collect()
}

fn pool(name: &str, created: i64, entries: &[&str]) -> PoolConfig {
    let ranges = entries.iter().map(|entry| entry.parse::<AddressRange>().expect("test entry parses")).collect();
    PoolConfig { created, ..PoolConfig::new(name, ranges) }
}

fn pinned(config: PoolConfig, priority: Option<i32>, namespaces: &[&str]) -> PoolConfig {
    let namespaces = namespaces.iter().map(|&namespace| namespace.to_owned()).collect();
    PoolConfig { service_allocation: Some(ServiceAllocation { priority, namespaces, ..Default::default() }), ..config }
}

fn manual(config: PoolConfig) -> PoolConfig {
    PoolConfig { auto_assign: false, ..config }
}

fn allocator(pools: Vec<PoolConfig>) -> Allocator {
    let mut allocator = Allocator::new();
    for config in pools {
        allocator.set_pool(config);
    }
    allocator
}

fn service(name: &str) -> AllocationRequest {
    AllocationRequest::new(ServiceKey::new("default", name))
}

fn in_namespace(namespace: &str, name: &str) -> AllocationRequest {
    AllocationRequest::new(ServiceKey::new(namespace, name))
}

fn dual(mut request: AllocationRequest, policy: IpFamilyPolicy, families: &[Family]) -> AllocationRequest {
    request.family_policy = policy;
    request.families = families.to_vec();
    request
}

fn asking_for(mut request: AllocationRequest, addresses: &[&str]) -> AllocationRequest {
    request.addresses = ips(addresses);
    request
}

fn from_pool(mut request: AllocationRequest, pool: &str) -> AllocationRequest {
    request.pool = Some(pool.to_owned());
    request
}

fn sharing(mut request: AllocationRequest, key: &str, ports: &[ServicePort]) -> AllocationRequest {
    request.sharing_key = Some(key.to_owned());
    request.ports = ports.to_vec();
    request
}

fn assigned(allocator: &mut Allocator, request: &AllocationRequest) -> Assignment {
    let assignment =
        allocator.assign(request).unwrap_or_else(|error| panic!("{} gets no address: {error}", request.service));
    assert_consistent(allocator);
    assignment
}

fn refused(allocator: &mut Allocator, request: &AllocationRequest) -> AllocationError {
    match allocator.assign(request) {
        Ok(assignment) => panic!("{} should be refused, got {assignment}", request.service),
        Err(error) => {
            assert_eq!(allocator.assignment(&request.service), None, "a refused Service holds nothing");
            assert_consistent(allocator);
            error
        }
    }
}

fn got(pool: &str, addresses: &[&str]) -> Assignment {
    Assignment { pool: pool.to_owned(), addresses: ips(addresses) }
}

const TUTORIAL: &str = "192.168.2.10-192.168.2.49";

// --- the basics ---

#[test]
fn tutorial_service_gets_the_first_address_of_the_pool() {
    let mut allocator = allocator(vec![pool("default", 0, &[TUTORIAL])]);
    assert_eq!(assigned(&mut allocator, &service("guestbook")), got("default", &["192.168.2.10"]));
    let view = allocator.pool("default").expect("pool exists");
    assert_eq!(view.allocations().count(), 1);
    assert_eq!(view.usage(Family::V4).map(|usage| usage.available), Some(AddressCount::new(39)));
    assert_eq!(view.usage(Family::V6), None);
}

#[test]
fn assign_is_idempotent_and_keeps_the_same_addresses() {
    let mut allocator = allocator(vec![pool("default", 0, &[TUTORIAL])]);
    let first = assigned(&mut allocator, &service("a"));
    assigned(&mut allocator, &service("b"));
    assert_eq!(assigned(&mut allocator, &service("a")), first);
    assert_eq!(allocator.holders_of(ip("192.168.2.10")).collect::<Vec<_>>(), vec![&ServiceKey::new("default", "a")]);
}

#[test]
fn service_keeps_its_address_when_a_better_pool_appears() {
    let mut allocator = allocator(vec![pool("general", 0, &[TUTORIAL])]);
    let before = assigned(&mut allocator, &service("web"));
    allocator.set_pool(pinned(pool("preferred", 1, &["10.0.0.0/24"]), Some(1), &[]));
    assert_eq!(assigned(&mut allocator, &service("web")), before);
    assert_eq!(assigned(&mut allocator, &service("new")).pool, "preferred");
}

#[test]
fn failed_assign_leaves_the_service_pending_and_frees_its_address() {
    let mut allocator = allocator(vec![pool("default", 0, &[TUTORIAL])]);
    assigned(&mut allocator, &service("web"));
    let error = refused(&mut allocator, &asking_for(service("web"), &["10.9.9.9"]));
    assert_eq!(error, AllocationError::AddressNotInAnyPool { address: ip("10.9.9.9") });
    assert_eq!(assigned(&mut allocator, &service("other")), got("default", &["192.168.2.10"]));
}

#[test]
fn release_frees_the_address_for_the_next_service() {
    let mut allocator = allocator(vec![pool("tiny", 0, &["10.0.0.1/32"])]);
    let held = assigned(&mut allocator, &service("a"));
    assert_eq!(refused(&mut allocator, &service("b")).reason(), "PoolExhausted");
    assert_eq!(allocator.release(&ServiceKey::new("default", "a")), Some(held.clone()));
    assert_eq!(allocator.release(&ServiceKey::new("default", "a")), None);
    assert_eq!(assigned(&mut allocator, &service("b")), held);
}

// --- which pool ---

#[test]
fn pool_annotation_uses_only_that_pool() {
    let mut allocator = allocator(vec![pool("a", 0, &["10.0.0.0/24"]), pool("b", 1, &["10.0.1.1/32"])]);
    assert_eq!(assigned(&mut allocator, &from_pool(service("one"), "b")), got("b", &["10.0.1.1"]));
    let error = refused(&mut allocator, &from_pool(service("two"), "b"));
    assert_eq!(error, AllocationError::PoolExhausted { family: Family::V4, pools: vec!["b".to_owned()] });
}

#[test]
fn unknown_pool_annotation_is_refused() {
    let mut allocator = allocator(vec![pool("a", 0, &["10.0.0.0/24"])]);
    let error = refused(&mut allocator, &from_pool(service("web"), "nope"));
    assert_eq!(error, AllocationError::UnknownPool { pool: "nope".to_owned() });
}

#[test]
fn requested_address_is_taken_from_the_pool_that_contains_it() {
    let mut allocator = allocator(vec![pool("a", 0, &["10.0.0.0/24"]), manual(pool("b", 1, &["10.0.1.0/24"]))]);
    assert_eq!(assigned(&mut allocator, &asking_for(service("web"), &["10.0.1.7"])), got("b", &["10.0.1.7"]));
}

#[test]
fn requested_address_in_no_pool_is_refused() {
    let mut allocator = allocator(vec![pool("a", 0, &["10.0.0.0/24"])]);
    let error = refused(&mut allocator, &asking_for(service("web"), &["10.0.5.5"]));
    assert_eq!(error.reason(), "AddressNotInAnyPool");
    assert_eq!(error.to_string(), "requested address 10.0.5.5 is in no IPAddressPool");
}

#[test]
fn pool_annotation_contradicting_the_requested_address_is_refused() {
    let mut allocator = allocator(vec![pool("a", 0, &["10.0.0.0/24"]), pool("b", 1, &["10.0.1.0/24"])]);
    let error = refused(&mut allocator, &from_pool(asking_for(service("web"), &["10.0.1.7"]), "a"));
    assert_eq!(
        error,
        AllocationError::ConflictingRequest(Contradiction::PoolAndAddress {
            pool: "a".to_owned(),
            address: ip("10.0.1.7"),
            address_pool: "b".to_owned(),
        })
    );
}

#[test]
fn requested_addresses_in_two_pools_are_refused() {
    let mut allocator = allocator(vec![pool("v4", 0, &["10.0.0.0/24"]), pool("v6", 1, &["fd00::/64"])]);
    let request = dual(service("web"), IpFamilyPolicy::RequireDualStack, &[Family::V4, Family::V6]);
    let error = refused(&mut allocator, &asking_for(request, &["10.0.0.1", "fd00::1"]));
    assert!(matches!(error, AllocationError::ConflictingRequest(Contradiction::AddressesInDifferentPools { .. })));
}

#[test]
fn more_than_one_requested_address_per_family_is_refused() {
    let mut allocator = allocator(vec![pool("a", 0, &["10.0.0.0/24"])]);
    let error = refused(&mut allocator, &asking_for(service("web"), &["10.0.0.1", "10.0.0.2"]));
    assert_eq!(error.reason(), "TooManyAddresses");
    assert_eq!(error.to_string(), "at most one IPv4 address may be requested, got 10.0.0.1, 10.0.0.2");
}

#[test]
fn requested_address_held_by_another_service_names_the_holder() {
    let mut allocator = allocator(vec![pool("a", 0, &["10.0.0.0/24"])]);
    assigned(&mut allocator, &asking_for(service("first"), &["10.0.0.9"]));
    let error = refused(&mut allocator, &asking_for(service("second"), &["10.0.0.9"]));
    assert_eq!(
        error,
        AllocationError::AddressInUse {
            address: ip("10.0.0.9"),
            holder: ServiceKey::new("default", "first"),
            why: ShareRefusal::HolderDoesNotShare,
        }
    );
}

#[test]
fn autoassign_false_pool_is_used_only_when_asked_for() {
    let mut allocator = allocator(vec![manual(pool("reserved", 0, &["10.0.0.0/30"]))]);
    let error = refused(&mut allocator, &service("auto"));
    assert_eq!(
        error,
        AllocationError::NoPoolMatches { why: NoPoolMatch::NoneAutoAssign { pools: vec!["reserved".to_owned()] } }
    );
    assert_eq!(assigned(&mut allocator, &from_pool(service("named"), "reserved")).pool, "reserved");
    assert_eq!(assigned(&mut allocator, &asking_for(service("by-address"), &["10.0.0.3"])).pool, "reserved");
}

#[test]
fn without_pools_no_pool_matches() {
    let error = refused(&mut Allocator::new(), &service("web"));
    assert_eq!(error, AllocationError::NoPoolMatches { why: NoPoolMatch::NoPools });
}

#[test]
fn service_allocation_that_does_not_match_is_skipped_for_auto_assignment() {
    let mut allocator = allocator(vec![
        pinned(pool("prod", 5, &["10.0.0.0/24"]), Some(1), &["prod"]),
        pool("general", 0, &["10.0.1.0/24"]),
    ]);
    assert_eq!(assigned(&mut allocator, &in_namespace("dev", "web")).pool, "general");
    assert_eq!(assigned(&mut allocator, &in_namespace("prod", "web")).pool, "prod");
}

#[test]
fn when_every_auto_pool_excludes_the_service_no_pool_matches_and_says_why() {
    let mut allocator = allocator(vec![pinned(pool("prod", 0, &["10.0.0.0/24"]), None, &["prod"])]);
    let error = refused(&mut allocator, &in_namespace("dev", "web"));
    let why = Exclusion::Namespace { namespace: "dev".to_owned() };
    assert_eq!(
        error,
        AllocationError::NoPoolMatches {
            why: NoPoolMatch::ExcludedByServiceAllocation { pools: vec![("prod".to_owned(), why)] }
        }
    );
    assert!(error.to_string().contains("pool prod: namespace \"dev\" is not in"), "{error}");
}

#[test]
fn service_allocation_also_limits_pools_asked_for_by_name_or_address() {
    let mut allocator = allocator(vec![pinned(pool("prod", 0, &["10.0.0.0/24"]), None, &["prod"])]);
    let by_name = refused(&mut allocator, &from_pool(in_namespace("dev", "web"), "prod"));
    assert_eq!(by_name.reason(), "PoolExcludesService");
    let by_address = refused(&mut allocator, &asking_for(in_namespace("dev", "web"), &["10.0.0.5"]));
    assert_eq!(by_address.reason(), "PoolExcludesService");
}

#[test]
fn service_selectors_pin_pools_to_labelled_services() {
    let mut web_only = pinned(pool("web", 0, &["10.0.0.0/24"]), Some(1), &[]);
    if let Some(allocation) = &mut web_only.service_allocation {
        allocation.service_selectors =
            vec![LabelSelector { match_labels: [("tier".to_owned(), "web".to_owned())].into(), ..Default::default() }];
    }
    let mut allocator = allocator(vec![web_only, pool("general", 1, &["10.0.1.0/24"])]);
    let mut labelled = service("frontend");
    labelled.service_labels = [("tier".to_owned(), "web".to_owned())].into();
    assert_eq!(assigned(&mut allocator, &labelled).pool, "web");
    assert_eq!(assigned(&mut allocator, &service("db")).pool, "general");
}

#[test]
fn lower_priority_number_is_tried_first() {
    let mut allocator = allocator(vec![
        pinned(pool("p10", 0, &["10.0.10.0/24"]), Some(10), &[]),
        pinned(pool("p5", 1, &["10.0.5.0/24"]), Some(5), &[]),
    ]);
    assert_eq!(assigned(&mut allocator, &service("web")).pool, "p5");
}

#[test]
fn prioritized_pools_come_before_unprioritized_ones_before_general_pools() {
    let mut allocator = allocator(vec![
        pool("general", 0, &["10.0.0.1/32"]),
        pinned(pool("no-priority", 1, &["10.0.1.1/32"]), None, &[]),
        pinned(pool("priority", 2, &["10.0.2.1/32"]), Some(100), &[]),
    ]);
    let order: Vec<String> = ["a", "b", "c"].iter().map(|name| assigned(&mut allocator, &service(name)).pool).collect();
    assert_eq!(order, ["priority", "no-priority", "general"]);
    let error = refused(&mut allocator, &service("d"));
    let tried = ["priority", "no-priority", "general"].map(str::to_owned).to_vec();
    assert_eq!(error, AllocationError::PoolExhausted { family: Family::V4, pools: tried });
}

#[test]
fn equal_priority_prefers_the_older_pool_then_the_name() {
    let mut allocator = allocator(vec![
        pool("beta", 2, &["10.0.2.1/32"]),
        pool("alpha", 2, &["10.0.1.1/32"]),
        pool("zeta", 1, &["10.0.0.1/32"]),
    ]);
    let order: Vec<String> = ["a", "b", "c"].iter().map(|name| assigned(&mut allocator, &service(name)).pool).collect();
    assert_eq!(order, ["zeta", "alpha", "beta"]);
}

// --- avoidBuggyIPs ---

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255() {
    let avoiding = PoolConfig { avoid_buggy_ips: true, ..pool("edge", 0, &["10.0.0.255-10.0.1.1"]) };
    let mut allocator = allocator(vec![avoiding]);
    assert_eq!(assigned(&mut allocator, &service("a")), got("edge", &["10.0.1.1"]));
    assert_eq!(refused(&mut allocator, &service("b")).reason(), "PoolExhausted");
    let mut plain = self::allocator(vec![pool("edge", 0, &["10.0.0.255-10.0.1.1"])]);
    assert_eq!(assigned(&mut plain, &service("a")), got("edge", &["10.0.0.255"]));
}

#[test]
fn requested_buggy_address_in_an_avoiding_pool_is_refused() {
    let avoiding = PoolConfig { avoid_buggy_ips: true, ..pool("edge", 0, &["10.0.0.0/24"]) };
    let mut allocator = allocator(vec![avoiding]);
    let error = refused(&mut allocator, &asking_for(service("web"), &["10.0.0.255"]));
    assert_eq!(error, AllocationError::AddressAvoided { address: ip("10.0.0.255"), pool: "edge".to_owned() });
}

// --- families ---

fn v4_only() -> PoolConfig {
    pool("v4-only", 0, &["10.0.0.0/24"])
}

fn v6_only() -> PoolConfig {
    pool("v6-only", 1, &["fd00:6::/64"])
}

fn dual_pool() -> PoolConfig {
    pool("dual", 2, &["10.0.2.0/24", "fd00:2::/64"])
}

#[test]
fn single_stack_gets_only_the_primary_family() {
    let mut allocator = allocator(vec![dual_pool()]);
    let request = dual(service("web"), IpFamilyPolicy::SingleStack, &[Family::V6, Family::V4]);
    assert_eq!(assigned(&mut allocator, &request), got("dual", &["fd00:2::"]));
}

#[test]
fn single_stack_service_is_refused_a_pool_without_its_family() {
    let mut allocator = allocator(vec![v4_only()]);
    let error = refused(&mut allocator, &dual(service("web"), IpFamilyPolicy::SingleStack, &[Family::V6]));
    assert_eq!(error.to_string(), "pool v4-only has no IPv6 range");
    assert_eq!(error.reason(), "FamilyUnavailable");
}

#[test]
fn require_dual_stack_takes_both_families_from_one_pool_primary_first() {
    let mut allocator = allocator(vec![v4_only(), v6_only(), dual_pool()]);
    let request = dual(service("web"), IpFamilyPolicy::RequireDualStack, &[Family::V6, Family::V4]);
    assert_eq!(assigned(&mut allocator, &request), got("dual", &["fd00:2::", "10.0.2.0"]));
}

#[test]
fn require_dual_stack_without_a_dual_pool_is_family_unavailable() {
    let mut allocator = allocator(vec![v4_only(), v6_only()]);
    let request = dual(service("web"), IpFamilyPolicy::RequireDualStack, &[Family::V4, Family::V6]);
    let error = refused(&mut allocator, &request);
    let pools = vec!["v4-only".to_owned(), "v6-only".to_owned()];
    assert_eq!(error, AllocationError::FamilyUnavailable { families: vec![Family::V4, Family::V6], pools });
}

#[test]
fn require_dual_stack_names_the_family_that_ran_out() {
    let mut allocator = allocator(vec![pool("dual", 0, &["10.0.0.0/24", "fd00::1/128"])]);
    let request = |name| dual(service(name), IpFamilyPolicy::RequireDualStack, &[Family::V4, Family::V6]);
    assigned(&mut allocator, &request("first"));
    let error = refused(&mut allocator, &request("second"));
    assert_eq!(error, AllocationError::PoolExhausted { family: Family::V6, pools: vec!["dual".to_owned()] });
}

#[test]
fn prefer_dual_stack_takes_both_families_when_a_pool_offers_both() {
    // The IPv4-only pool is older, so it comes first in the order; both families win.
    let mut allocator = allocator(vec![v4_only(), dual_pool()]);
    let request = dual(service("web"), IpFamilyPolicy::PreferDualStack, &[Family::V4, Family::V6]);
    assert_eq!(assigned(&mut allocator, &request), got("dual", &["10.0.2.0", "fd00:2::"]));
}

#[test]
fn prefer_dual_stack_falls_back_to_the_primary_family() {
    let mut allocator = allocator(vec![v4_only(), v6_only()]);
    let request = dual(service("web"), IpFamilyPolicy::PreferDualStack, &[Family::V4, Family::V6]);
    assert_eq!(assigned(&mut allocator, &request), got("v4-only", &["10.0.0.0"]));
}

#[test]
fn prefer_dual_stack_falls_back_to_the_secondary_when_no_pool_has_the_primary() {
    let mut allocator = allocator(vec![v6_only()]);
    let request = dual(service("web"), IpFamilyPolicy::PreferDualStack, &[Family::V4, Family::V6]);
    assert_eq!(assigned(&mut allocator, &request), got("v6-only", &["fd00:6::"]));
}

#[test]
fn prefer_dual_stack_keeps_pinned_pools_before_general_dual_pools() {
    let mut allocator = allocator(vec![pinned(v4_only(), Some(1), &[]), dual_pool()]);
    let request = dual(service("web"), IpFamilyPolicy::PreferDualStack, &[Family::V4, Family::V6]);
    assert_eq!(assigned(&mut allocator, &request).pool, "v4-only");
}

#[test]
fn prefer_dual_stack_gains_the_missing_family_in_place_when_its_pool_gains_it() {
    let mut allocator = allocator(vec![pool("grows", 0, &["10.0.0.0/24"])]);
    let request = dual(service("web"), IpFamilyPolicy::PreferDualStack, &[Family::V4, Family::V6]);
    assert_eq!(assigned(&mut allocator, &request), got("grows", &["10.0.0.0"]));
    let change = allocator.set_pool(pool("grows", 0, &["10.0.0.0/24", "fd00::/64"]));
    assert!(change.capacity_added);
    assert_eq!(assigned(&mut allocator, &request), got("grows", &["10.0.0.0", "fd00::"]));
}

// --- sharing ---

fn shared_pool() -> Allocator {
    allocator(vec![pool("default", 0, &[TUTORIAL])])
}

#[test]
fn services_with_the_same_key_and_disjoint_ports_share_an_address() {
    let mut allocator = shared_pool();
    let http = assigned(&mut allocator, &sharing(service("http"), "web", &[ServicePort::tcp(80)]));
    let https = assigned(&mut allocator, &sharing(service("https"), "web", &[ServicePort::tcp(443)]));
    assert_eq!(http, https);
    assert_eq!(allocator.holders_of(ip("192.168.2.10")).count(), 2);
    let usage = allocator.pool("default").and_then(|view| view.usage(Family::V4));
    assert_eq!(usage.map(|usage| usage.assigned), Some(AddressCount::new(1)));
}

#[test]
fn same_port_and_protocol_prevents_sharing() {
    let mut allocator = shared_pool();
    assigned(&mut allocator, &sharing(service("one"), "web", &[ServicePort::tcp(80)]));
    let other = assigned(&mut allocator, &sharing(service("two"), "web", &[ServicePort::tcp(80)]));
    assert_eq!(other, got("default", &["192.168.2.11"]));
}

#[test]
fn different_sharing_keys_get_different_addresses() {
    let mut allocator = shared_pool();
    assigned(&mut allocator, &sharing(service("one"), "a", &[ServicePort::tcp(80)]));
    let other = assigned(&mut allocator, &sharing(service("two"), "b", &[ServicePort::tcp(443)]));
    assert_eq!(other, got("default", &["192.168.2.11"]));
}

#[test]
fn local_services_share_only_when_they_select_the_same_pods() {
    let local = |name, app: &str, port| {
        let mut request = sharing(service(name), "web", &[ServicePort::tcp(port)]);
        request.local_pod_selector = Some([("app".to_owned(), app.to_owned())].into());
        request
    };
    let mut allocator = shared_pool();
    let first = assigned(&mut allocator, &local("one", "shop", 80));
    assert_eq!(assigned(&mut allocator, &local("two", "shop", 443)), first);
    assert_eq!(assigned(&mut allocator, &local("three", "blog", 8080)), got("default", &["192.168.2.11"]));
}

#[test]
fn requested_address_is_shared_when_its_holders_allow_it() {
    let mut allocator = shared_pool();
    assigned(&mut allocator, &sharing(asking_for(service("one"), &["192.168.2.20"]), "dns", &[ServicePort::tcp(53)]));
    let udp = sharing(asking_for(service("two"), &["192.168.2.20"]), "dns", &[ServicePort::udp(53)]);
    assert_eq!(assigned(&mut allocator, &udp), got("default", &["192.168.2.20"]));
}

#[test]
fn sharing_prefers_the_partners_pool_over_pool_order() {
    let mut allocator =
        allocator(vec![pinned(pool("first", 0, &["10.0.0.0/24"]), Some(1), &[]), pool("second", 1, &["10.0.1.0/24"])]);
    let partner = assigned(&mut allocator, &sharing(from_pool(service("one"), "second"), "k", &[ServicePort::tcp(80)]));
    let joiner = assigned(&mut allocator, &sharing(service("two"), "k", &[ServicePort::tcp(443)]));
    assert_eq!(joiner, partner);
}

#[test]
fn changing_ports_to_collide_moves_only_the_changed_service() {
    let mut allocator = shared_pool();
    let first = assigned(&mut allocator, &sharing(service("one"), "web", &[ServicePort::tcp(80)]));
    assigned(&mut allocator, &sharing(service("two"), "web", &[ServicePort::tcp(443)]));
    let moved = assigned(&mut allocator, &sharing(service("two"), "web", &[ServicePort::tcp(80)]));
    assert_eq!(moved, got("default", &["192.168.2.11"]));
    assert_eq!(assigned(&mut allocator, &sharing(service("one"), "web", &[ServicePort::tcp(80)])), first);
}

#[test]
fn shared_address_stays_held_until_its_last_holder_releases() {
    let mut allocator = shared_pool();
    assigned(&mut allocator, &sharing(service("one"), "web", &[ServicePort::tcp(80)]));
    assigned(&mut allocator, &sharing(service("two"), "web", &[ServicePort::tcp(443)]));
    allocator.release(&ServiceKey::new("default", "one"));
    assert_eq!(assigned(&mut allocator, &service("plain")), got("default", &["192.168.2.11"]));
    allocator.release(&ServiceKey::new("default", "two"));
    assert_eq!(assigned(&mut allocator, &service("next")), got("default", &["192.168.2.10"]));
}

// --- pool changes ---

#[test]
fn deleting_a_pool_displaces_its_services() {
    let mut allocator = allocator(vec![pool("gone", 0, &[TUTORIAL])]);
    let held = assigned(&mut allocator, &service("web"));
    let change = allocator.remove_pool("gone");
    assert_eq!(
        change.displaced,
        vec![Displacement {
            service: ServiceKey::new("default", "web"),
            previous: held,
            remaining: None,
            reason: DisplacementReason::PoolRemoved { address: ip("192.168.2.10") },
        }]
    );
    assert_eq!(change.displaced[0].to_string(), "192.168.2.10 was released: pool gone was deleted");
    assert!(change.affected_pools.contains("gone"));
    assert_eq!(allocator.assignment(&ServiceKey::new("default", "web")), None);
    assert_consistent(&allocator);
}

#[test]
fn shrinking_a_pool_displaces_only_services_outside_the_new_range() {
    let mut allocator = allocator(vec![pool("default", 0, &[TUTORIAL])]);
    for name in ["a", "b", "c"] {
        assigned(&mut allocator, &service(name));
    }
    let change = allocator.set_pool(pool("default", 0, &["192.168.2.10-192.168.2.11"]));
    let displaced: Vec<_> = change.displaced.iter().map(|d| (d.service.name.as_str(), d.reason.clone())).collect();
    assert_eq!(displaced, vec![("c", DisplacementReason::LeftPool { address: ip("192.168.2.12") })]);
    assert!(!change.capacity_added);
    assert_eq!(assigned(&mut allocator, &service("a")), got("default", &["192.168.2.10"]));
    assert_consistent(&allocator);
}

#[test]
fn younger_overlapping_pool_gets_nothing_from_the_overlap() {
    let mut allocator = allocator(vec![pool("old", 0, &["10.0.0.0/30"])]);
    allocator.set_pool(pool("young", 1, &["10.0.0.0/29"]));
    let young = allocator.pool("young").expect("pool exists");
    assert_eq!(
        young.conflicts().iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["overlaps pool old on 10.0.0.0/30"]
    );
    assert_eq!(young.usage(Family::V4).map(|usage| usage.usable), Some(AddressCount::new(4)));
    assert_eq!(assigned(&mut allocator, &from_pool(service("web"), "young")), got("young", &["10.0.0.4"]));
    let error = refused(&mut allocator, &from_pool(asking_for(service("x"), &["10.0.0.1"]), "young"));
    assert_eq!(error.reason(), "ConflictingRequest");
}

#[test]
fn deleting_the_older_pool_hands_the_overlap_to_the_younger_pool() {
    let mut allocator = allocator(vec![pool("old", 0, &["10.0.0.0/30"]), pool("young", 1, &["10.0.0.0/29"])]);
    let change = allocator.remove_pool("old");
    assert!(change.capacity_added);
    assert!(change.affected_pools.contains("young"));
    let young = allocator.pool("young").expect("pool exists");
    assert!(young.conflicts().is_empty());
    assert_eq!(young.usage(Family::V4).map(|usage| usage.usable), Some(AddressCount::new(8)));
}

#[test]
fn replacing_a_pool_with_a_younger_copy_keeps_every_address() {
    let mut allocator = allocator(vec![pool("old", 0, &[TUTORIAL])]);
    let held = assigned(&mut allocator, &service("web"));
    allocator.set_pool(pool("new", 1, &[TUTORIAL]));
    let change = allocator.remove_pool("old");
    assert!(change.displaced.is_empty());
    let moved = Assignment { pool: "new".to_owned(), ..held.clone() };
    assert_eq!(
        change.rehomed,
        vec![Rehoming {
            service: ServiceKey::new("default", "web"),
            from_pool: "old".to_owned(),
            assignment: moved.clone()
        }]
    );
    assert_eq!(allocator.assignment(&ServiceKey::new("default", "web")), Some(&moved));
    assert_consistent(&allocator);
}

#[test]
fn older_pool_growing_over_an_allocation_takes_it_along_with_the_service() {
    let mut allocator = allocator(vec![pool("old", 0, &["10.0.0.0/30"]), pool("young", 1, &["10.0.1.0/30"])]);
    assigned(&mut allocator, &from_pool(service("web"), "young"));
    let change = allocator.set_pool(pool("old", 0, &["10.0.0.0/30", "10.0.1.0/30"]));
    assert_eq!(change.rehomed.len(), 1);
    assert_eq!(allocator.assignment(&ServiceKey::new("default", "web")), Some(&got("old", &["10.0.1.0"])));
    assert_eq!(allocator.pool("young").map(|view| view.conflicts().len()), Some(1));
    assert_consistent(&allocator);
}

#[test]
fn turning_on_avoid_buggy_ips_displaces_services_on_dot_zero() {
    let mut allocator = allocator(vec![pool("edge", 0, &["10.0.0.0/30"])]);
    assigned(&mut allocator, &service("web"));
    let change = allocator.set_pool(PoolConfig { avoid_buggy_ips: true, ..pool("edge", 0, &["10.0.0.0/30"]) });
    assert_eq!(change.displaced.len(), 1);
    assert_eq!(change.displaced[0].reason, DisplacementReason::Avoided { address: ip("10.0.0.0") });
    assert_eq!(assigned(&mut allocator, &service("web")), got("edge", &["10.0.0.1"]));
}

#[test]
fn narrowing_service_allocation_displaces_excluded_services() {
    let mut allocator = allocator(vec![pool("shared", 0, &[TUTORIAL])]);
    assigned(&mut allocator, &in_namespace("dev", "web"));
    assigned(&mut allocator, &in_namespace("prod", "web"));
    let change = allocator.set_pool(pinned(pool("shared", 0, &[TUTORIAL]), None, &["prod"]));
    assert_eq!(change.displaced.len(), 1);
    assert_eq!(change.displaced[0].service, ServiceKey::new("dev", "web"));
    assert_eq!(
        change.displaced[0].reason,
        DisplacementReason::Excluded(Exclusion::Namespace { namespace: "dev".to_owned() })
    );
    assert!(allocator.assignment(&ServiceKey::new("prod", "web")).is_some());
    assert_consistent(&allocator);
}

#[test]
fn dual_stack_service_keeps_the_family_its_pool_still_has() {
    let mut allocator = allocator(vec![pool("dual", 0, &["10.0.0.0/24", "fd00::/64"])]);
    let request = dual(service("web"), IpFamilyPolicy::PreferDualStack, &[Family::V4, Family::V6]);
    assigned(&mut allocator, &request);
    let change = allocator.set_pool(pool("dual", 0, &["10.0.0.0/24"]));
    assert_eq!(change.displaced.len(), 1);
    assert_eq!(change.displaced[0].remaining, Some(got("dual", &["10.0.0.0"])));
    assert_eq!(assigned(&mut allocator, &request), got("dual", &["10.0.0.0"]));
}

#[test]
fn capacity_is_reported_when_a_pool_is_added_or_grows_not_when_it_shrinks() {
    let mut allocator = Allocator::new();
    assert!(allocator.set_pool(pool("p", 0, &["10.0.0.0/30"])).capacity_added);
    assert!(allocator.set_pool(pool("p", 0, &["10.0.0.0/29"])).capacity_added);
    assert!(!allocator.set_pool(pool("p", 0, &["10.0.0.0/30"])).capacity_added);
    assert!(!allocator.set_pool(pool("p", 0, &["10.0.0.0/30"])).capacity_added);
    assert!(allocator.set_pool(manual(pool("q", 1, &["10.0.0.0/30"]))).affected_pools.contains("q"));
}

// --- restart ---

#[test]
fn restore_records_what_the_status_says_and_moves_nothing() {
    let mut allocator = allocator(vec![pool("default", 0, &[TUTORIAL])]);
    let b = allocator.restore(&service("b"), got("default", &["192.168.2.12"]));
    assert_eq!(b, Ok(got("default", &["192.168.2.12"])));
    assert_eq!(
        allocator.restore(&service("a"), got("default", &["192.168.2.10"])),
        Ok(got("default", &["192.168.2.10"]))
    );
    assert_eq!(assigned(&mut allocator, &service("c")), got("default", &["192.168.2.11"]));
    assert_eq!(assigned(&mut allocator, &service("b")), got("default", &["192.168.2.12"]));
}

#[test]
fn restore_refuses_an_address_no_pool_holds_any_more() {
    let mut allocator = allocator(vec![pool("default", 0, &[TUTORIAL])]);
    let error = allocator.restore(&service("web"), got("default", &["10.1.1.1"]));
    assert_eq!(error, Err(AllocationError::AddressNotInAnyPool { address: ip("10.1.1.1") }));
    assert_eq!(allocator.assignment(&ServiceKey::new("default", "web")), None);
}

#[test]
fn restore_refuses_a_second_holder_that_may_not_share() {
    let mut allocator = allocator(vec![pool("default", 0, &[TUTORIAL])]);
    allocator.restore(&service("first"), got("default", &["192.168.2.10"])).expect("first holder");
    let error = allocator.restore(&service("second"), got("default", &["192.168.2.10"]));
    assert!(matches!(error, Err(AllocationError::AddressInUse { holder, .. }) if holder.name == "first"));
}

#[test]
fn restore_accepts_holders_that_may_share() {
    let mut allocator = allocator(vec![pool("default", 0, &[TUTORIAL])]);
    let one = sharing(service("one"), "web", &[ServicePort::tcp(80)]);
    let two = sharing(service("two"), "web", &[ServicePort::tcp(443)]);
    allocator.restore(&one, got("default", &["192.168.2.10"])).expect("first holder");
    allocator.restore(&two, got("default", &["192.168.2.10"])).expect("compatible second holder");
    assert_eq!(allocator.holders_of(ip("192.168.2.10")).count(), 2);
    assert_consistent(&allocator);
}

#[test]
fn restore_records_under_the_pool_that_now_owns_the_address() {
    let mut allocator = allocator(vec![pool("renamed", 0, &[TUTORIAL])]);
    let restored = allocator.restore(&service("web"), got("original", &["192.168.2.30"]));
    assert_eq!(restored, Ok(got("renamed", &["192.168.2.30"])));
}

#[test]
fn restore_lists_the_primary_family_first() {
    let mut allocator = allocator(vec![dual_pool()]);
    let request = dual(service("web"), IpFamilyPolicy::RequireDualStack, &[Family::V6, Family::V4]);
    let restored = allocator.restore(&request, got("dual", &["10.0.2.5", "fd00:2::5"]));
    assert_eq!(restored, Ok(got("dual", &["fd00:2::5", "10.0.2.5"])));
    assert_eq!(assigned(&mut allocator, &request), got("dual", &["fd00:2::5", "10.0.2.5"]));
}

// --- size ---

#[test]
fn slash_8_and_ipv6_slash_64_pools_are_counted_and_allocated_without_enumeration() {
    let mut allocator = allocator(vec![pool("huge", 0, &["10.0.0.0/8", "fd00::/64"])]);
    let services = 5_000u32;
    let mut last = None;
    for index in 0..services {
        let request =
            dual(service(&format!("svc-{index}")), IpFamilyPolicy::RequireDualStack, &[Family::V4, Family::V6]);
        last = allocator.assign(&request).ok();
    }
    let last_index = u128::from(services - 1);
    let expected = [Family::V4, Family::V6].map(|family| {
        let base = if family == Family::V4 { 0x0A00_0000 } else { 0xFD00 << 112 };
        family.address(base + last_index).expect("in family")
    });
    assert_eq!(last.map(|assignment| assignment.addresses), Some(expected.to_vec()));
    let view = allocator.pool("huge").expect("pool exists");
    let v4 = view.usage(Family::V4).expect("IPv4 entries");
    assert_eq!(v4.available, AddressCount::new((1 << 24) - u128::from(services)));
    let v6 = view.usage(Family::V6).expect("IPv6 entries");
    assert_eq!(v6.usable, AddressCount::new(1 << 64));
    assert_eq!(v6.available.human(), "~1.8e19");
    assert_eq!(v4.counts().assigned, AddressCount::new(u128::from(services)));
}

#[test]
fn usage_excludes_conflicts_and_buggy_addresses() {
    let young =
        PoolConfig { avoid_buggy_ips: true, ..pool("young", 1, &["10.0.0.128/25", "10.0.1.0/24", "fd00::/64"]) };
    let mut allocator = allocator(vec![pool("old", 0, &["10.0.0.0/24"]), young]);
    assigned(&mut allocator, &from_pool(service("web"), "young"));
    let usage = allocator.pool("young").and_then(|view| view.usage(Family::V4));
    let expected = AddressUsage {
        usable: AddressCount::new(254),
        assigned: AddressCount::new(1),
        available: AddressCount::new(253),
    };
    assert_eq!(usage, Some(expected));
    assert_eq!(allocator.pool_of(ip("10.0.0.200")), Some("old"));
}
