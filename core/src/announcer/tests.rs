//! The announcer's rules, one scenario per test.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use proptest::prelude::*;

use super::*;
use crate::v1alpha1::L2AdvertisementSpec;

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|&(key, value)| (key.to_owned(), value.to_owned())).collect()
}

fn interface(name: &str, addresses: &[(&str, u8)]) -> InterfaceFacts {
    InterfaceFacts {
        name: name.to_owned(),
        up: true,
        announce_by_default: true,
        addresses: addresses.iter().map(|&(address, len)| (ip(address), len)).collect(),
    }
}

/// A healthy node on the tutorial's LAN: `eth0` holds 192.168.2.0/24 and fd00::/64.
fn node(name: &str) -> NodeFacts {
    NodeFacts {
        name: name.to_owned(),
        lease_live: true,
        interfaces: vec![interface("eth0", &[("192.168.2.2", 24), ("fd00::2", 64)])],
        ..NodeFacts::default()
    }
}

fn nodes() -> Vec<NodeFacts> {
    NODES.map(node).to_vec()
}

/// A `Cluster`-policy Service with endpoints, holding `addresses` from the pool `default`.
fn service(name: &str, addresses: &[&str]) -> ServiceFacts {
    ServiceFacts {
        namespace: "web".to_owned(),
        name: name.to_owned(),
        addresses: addresses.iter().map(|&address| ip(address)).collect(),
        pool: PoolFacts { name: "default".to_owned(), labels: labels(&[("zone", "lan")]) },
        has_serving_endpoint: true,
        ..ServiceFacts::default()
    }
}

/// One advertisement announcing every pool from every node on every default interface.
fn everywhere() -> Advertisements {
    Advertisements::new(&[L2AdvertisementSpec::default()])
}

fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector { match_labels: Some(labels(pairs)), match_expressions: None }
}

/// The one announcement of a single Service.
fn only(services: &[ServiceFacts]) -> Announcement<'_> {
    let mut all = announcements(services);
    assert_eq!(all.len(), 1, "expected one announcement: {all:?}");
    all.remove(0)
}

/// The node announcing a single Service.
fn announcer(service: &ServiceFacts, nodes: &[NodeFacts], advertisements: &Advertisements) -> Option<String> {
    only(std::slice::from_ref(service)).winner(nodes, advertisements).map(|winner| winner.node.to_owned())
}

/// The tutorial's range, 192.168.2.10 onwards.
fn lan_addresses(count: u8) -> impl Iterator<Item = String> {
    (10..10 + count).map(|host| format!("192.168.2.{host}"))
}

/// With `change` applied to node-a, node-a never announces and reports `reason`.
fn assert_node_a_never_wins(change: impl Fn(&mut NodeFacts), reason: Ineligible) {
    let mut nodes = nodes();
    change(&mut nodes[0]);
    let mut winners = BTreeMap::<String, usize>::new();
    for address in lan_addresses(60) {
        let service = service("app", &[&address]);
        assert_eq!(only(std::slice::from_ref(&service)).eligibility(&nodes[0], &everywhere()), Err(reason));
        let winner = announcer(&service, &nodes, &everywhere()).expect("node-b and node-c are eligible");
        *winners.entry(winner).or_default() += 1;
    }
    assert_eq!(winners.keys().map(String::as_str).collect::<Vec<_>>(), ["node-b", "node-c"]);
}

#[test]
fn a_node_without_a_live_lease_never_wins() {
    assert_node_a_never_wins(|node| node.lease_live = false, Ineligible::NoLease);
}

#[test]
fn excluded_label_removes_a_node() {
    // The label counts whatever its value, as in Kubernetes.
    assert_node_a_never_wins(
        |node| node.labels = labels(&[(EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS, "")]),
        Ineligible::Excluded,
    );
}

#[test]
fn network_unavailable_removes_a_node() {
    assert_node_a_never_wins(|node| node.network_unavailable = true, Ineligible::NetworkUnavailable);
}

#[test]
fn the_first_failing_check_is_the_reason() {
    let mut node = node("node-a");
    node.network_unavailable = true;
    node.labels = labels(&[(EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS, "true")]);
    let services = [service("app", &["192.168.2.10"])];
    assert_eq!(only(&services).eligibility(&node, &everywhere()), Err(Ineligible::Excluded));
    node.lease_live = false;
    assert_eq!(only(&services).eligibility(&node, &everywhere()), Err(Ineligible::NoLease));
}

#[test]
fn node_selectors_of_the_advertisement_apply() {
    let mut nodes = nodes();
    nodes[1].labels = labels(&[("role", "edge")]);
    let edge_only = Advertisements::new(&[L2AdvertisementSpec {
        node_selectors: vec![selector(&[("role", "edge")])],
        ..L2AdvertisementSpec::default()
    }]);
    for address in lan_addresses(30) {
        let service = service("app", &[&address]);
        assert_eq!(announcer(&service, &nodes, &edge_only).as_deref(), Some("node-b"), "{address}");
        let announcement = only(std::slice::from_ref(&service));
        assert_eq!(announcement.eligibility(&nodes[0], &edge_only), Err(Ineligible::NotSelected));
    }
}

#[test]
fn pool_not_advertised_is_announced_by_nobody() {
    let services = [service("app", &["192.168.2.10"])];
    let other_pool = L2AdvertisementSpec { ip_address_pools: vec!["other".to_owned()], ..Default::default() };
    let other_labels =
        L2AdvertisementSpec { ip_address_pool_selectors: vec![selector(&[("zone", "dmz")])], ..Default::default() };
    for advertisements in [Advertisements::new(&[]), Advertisements::new(&[other_pool, other_labels])] {
        assert_eq!(only(&services).winner(&nodes(), &advertisements), None);
        for node in nodes() {
            assert_eq!(only(&services).eligibility(&node, &advertisements), Err(Ineligible::NotSelected));
        }
    }
}

#[test]
fn pools_are_advertised_by_name_or_by_label() {
    let services = [service("app", &["192.168.2.10"])];
    let by_name = L2AdvertisementSpec { ip_address_pools: vec!["default".to_owned()], ..Default::default() };
    let by_label =
        L2AdvertisementSpec { ip_address_pool_selectors: vec![selector(&[("zone", "lan")])], ..Default::default() };
    for advertisement in [by_name, by_label] {
        assert!(only(&services).winner(&nodes(), &Advertisements::new(&[advertisement])).is_some());
    }
}

/// The eligibility of a node with `interfaces` for `address`, under `advertisement`.
fn carriers(
    interfaces: Vec<InterfaceFacts>,
    address: &str,
    advertisement: L2AdvertisementSpec,
) -> Result<Vec<String>, Ineligible> {
    let node = NodeFacts { interfaces, ..node("node-a") };
    let services = [service("app", &[address])];
    let carriers = only(&services).eligibility(&node, &Advertisements::new(&[advertisement]))?;
    Ok(carriers[&ip(address)].iter().map(|&name| name.to_owned()).collect())
}

fn on_interfaces(names: &[&str]) -> L2AdvertisementSpec {
    L2AdvertisementSpec { interfaces: names.iter().map(|&name| name.to_owned()).collect(), ..Default::default() }
}

/// `eth0` on 192.168.2.0/24, `eth1` on 192.168.3.0/24, both up.
fn two_lans() -> Vec<InterfaceFacts> {
    vec![interface("eth0", &[("192.168.2.2", 24)]), interface("eth1", &[("192.168.3.2", 24)])]
}

#[test]
fn interfaces_restrict_where_it_is_announced() {
    // 10.99.0.10 is on no interface's subnet, so any up interface could carry it.
    assert_eq!(carriers(two_lans(), "10.99.0.10", on_interfaces(&[])), Ok(vec!["eth0".into(), "eth1".into()]));
    assert_eq!(carriers(two_lans(), "10.99.0.10", on_interfaces(&["eth1"])), Ok(vec!["eth1".into()]));
    assert_eq!(carriers(two_lans(), "10.99.0.10", on_interfaces(&["eth7"])), Err(Ineligible::NoInterface));
}

#[test]
fn an_address_is_carried_only_by_interfaces_on_its_subnet() {
    assert_eq!(carriers(two_lans(), "192.168.3.10", on_interfaces(&[])), Ok(vec!["eth1".into()]));
    // Allowing only the other interface does not make it a carrier: clients of 192.168.3.10
    // are on eth1's segment.
    assert_eq!(carriers(two_lans(), "192.168.3.10", on_interfaces(&["eth0"])), Err(Ineligible::NoInterface));
}

#[test]
fn a_down_interface_on_the_subnet_makes_the_node_ineligible() {
    // Link loss must hand the address to a peer, not move it to another interface of this node.
    let mut lan = interface("eth0", &[("192.168.2.2", 24)]);
    lan.up = false;
    let interfaces = vec![lan, interface("eth1", &[("192.168.3.2", 24)])];
    assert_eq!(carriers(interfaces, "192.168.2.10", on_interfaces(&[])), Err(Ineligible::NoInterface));
}

#[test]
fn the_address_itself_on_an_interface_is_not_its_subnet() {
    // kube-proxy (IPVS) puts every LoadBalancer address on kube-ipvs0 as a /32.
    let mut ipvs = interface("kube-ipvs0", &[("10.99.0.10", 32)]);
    ipvs.announce_by_default = false;
    let interfaces = vec![interface("eth0", &[("192.168.2.2", 24)]), ipvs];
    assert_eq!(carriers(interfaces, "10.99.0.10", on_interfaces(&[])), Ok(vec!["eth0".into()]));
}

#[test]
fn interfaces_not_fit_by_default_are_used_only_when_named() {
    let mut bridge = interface("cni0", &[("10.244.0.1", 24)]);
    bridge.announce_by_default = false;
    let interfaces = || vec![interface("eth0", &[("192.168.2.2", 24)]), bridge.clone()];
    assert_eq!(carriers(interfaces(), "10.244.0.200", on_interfaces(&[])), Err(Ineligible::NoInterface));
    assert_eq!(carriers(interfaces(), "10.244.0.200", on_interfaces(&["cni0"])), Ok(vec!["cni0".into()]));
}

#[test]
fn local_policy_follows_the_endpoints() {
    let mut service = service("app", &["192.168.2.10"]);
    service.local_traffic_policy = true;
    for endpoint_node in NODES {
        service.nodes_with_endpoints = [endpoint_node.to_owned()].into();
        assert_eq!(announcer(&service, &nodes(), &everywhere()).as_deref(), Some(endpoint_node));
        for other in nodes().iter().filter(|node| node.name != endpoint_node) {
            let announcement = only(std::slice::from_ref(&service));
            assert_eq!(announcement.eligibility(other, &everywhere()), Err(Ineligible::NoLocalEndpoint));
        }
    }
}

#[test]
fn service_without_serving_endpoints_is_announced_by_nobody() {
    for local in [false, true] {
        let mut service = service("app", &["192.168.2.10"]);
        service.has_serving_endpoint = false;
        service.local_traffic_policy = local;
        assert_eq!(announcer(&service, &nodes(), &everywhere()), None);
        for node in nodes() {
            let announcement = only(std::slice::from_ref(&service));
            assert_eq!(announcement.eligibility(&node, &everywhere()), Err(Ineligible::NoEndpoints));
        }
    }
}

#[test]
fn a_shared_address_is_announced_without_the_addresses_of_services_lacking_endpoints() {
    let mut idle = service("idle", &["192.168.2.10", "fd00::20"]);
    idle.has_serving_endpoint = false;
    let services = [service("app", &["192.168.2.10"]), idle];
    let nodes = nodes();
    let winner = only(&services).winner(&nodes, &everywhere()).expect("app has endpoints");
    assert_eq!(winner.carriers.keys().copied().collect::<Vec<_>>(), [ip("192.168.2.10")]);
}

#[test]
fn sharing_services_land_on_one_node() {
    for address in lan_addresses(50) {
        let (web, dns) = (service("web", &[&address]), service("dns", &[&address, "fd00::53"]));
        let shared = [web.clone(), dns.clone()];
        let announcement = only(&shared);
        assert_eq!(announcement.key(), ip(&address));
        // Each Service alone would pick the same node: the key does not depend on the partner.
        let expected = announcer(&web, &nodes(), &everywhere());
        assert_eq!(announcement.winner(&nodes(), &everywhere()).map(|w| w.node.to_owned()), expected);
        assert_eq!(announcer(&dns, &nodes(), &everywhere()), expected);
    }
}

#[test]
fn services_linked_through_a_dual_stack_service_form_one_announcement() {
    // web shares the IPv4 address with dual, dns shares the IPv6 one: all three on one node.
    let services = [
        service("dns", &["fd00::10"]),
        service("dual", &["fd00::10", "192.168.2.10"]),
        service("web", &["192.168.2.10"]),
        service("alone", &["192.168.2.99"]),
    ];
    let all = announcements(&services);
    let keys: Vec<IpAddr> = all.iter().map(Announcement::key).collect();
    assert_eq!(keys, [ip("192.168.2.10"), ip("192.168.2.99")]);
    assert_eq!(all[0].addresses(), [ip("192.168.2.10"), ip("fd00::10")]);
    assert_eq!(all[0].services().len(), 3);
}

#[test]
fn both_families_land_on_one_node() {
    let nodes = nodes();
    for address in lan_addresses(50) {
        let v6 = format!("fd00::{}", address.rsplit('.').next().unwrap_or_default());
        let ipv6_first = service("app", &[&v6, &address]);
        let ipv4_first = service("app", &[&address, &v6]);
        let a = only(std::slice::from_ref(&ipv6_first)).winner(&nodes, &everywhere()).expect("eligible");
        let b = only(std::slice::from_ref(&ipv4_first)).winner(&nodes, &everywhere()).expect("eligible");
        assert_eq!(a, b);
        assert_eq!(a.carriers.keys().copied().collect::<Vec<_>>(), [ip(&address), ip(&v6)]);
        assert_eq!(a.score, score(a.node, ip(&address)), "the key is the IPv4 address");
    }
}

#[test]
fn a_dual_stack_service_needs_a_carrier_for_each_family() {
    let mut nodes = nodes();
    let mut v6_lan = interface("eth1", &[("fd00::2", 64)]);
    v6_lan.up = false;
    nodes[0].interfaces = vec![interface("eth0", &[("192.168.2.2", 24)]), v6_lan];
    let services = [service("app", &["192.168.2.10", "fd00::10"])];
    assert_eq!(only(&services).eligibility(&nodes[0], &everywhere()), Err(Ineligible::NoInterface));
}

/// PINNED. These values decide which node carries traffic in every cluster running ironlb.
/// If this test fails, the announcer's function changed: every upgrade would move addresses
/// between nodes. Do not update the expected values to make it pass; restore the function, or
/// treat the change as a breaking release with a migration plan (see the module docs).
#[test]
fn winner_is_pinned_by_test_vectors() {
    // Canonical text is part of the hashed message: RFC 5952 shortens the leftmost longest run.
    assert_eq!(ip("2001:DB8:0:0:1:0:0:1").to_string(), "2001:db8::1:0:0:1");
    assert_eq!(ip("fd00:0:0:0:0:0:0:10").to_string(), "fd00::10");
    assert_eq!(ip("2001:db8:0:1:1:1:1:1").to_string(), "2001:db8:0:1:1:1:1:1");

    // Scores of node-a, node-b and node-c for the key, then the winner (the highest score).
    let vectors: [(&str, [u64; 3], &str); 5] = [
        ("192.168.2.10", [0xc101_eb3a_1a9e_accf, 0x2a64_04dc_8656_16a0, 0xfc68_2575_b26c_89e9], "node-c"),
        ("192.168.2.12", [0xc0d4_724e_6dce_2194, 0x17db_4650_68b2_06e7, 0x3eae_dc65_1e17_cecb], "node-a"),
        ("fd00::10", [0x109e_a2f4_932c_dcfe, 0x2be2_c24a_3f4d_995a, 0x4f0f_0cc7_0363_9a1f], "node-c"),
        ("2001:db8::1", [0x5b9f_bffc_a226_01f4, 0xd7d0_dc43_3853_f659, 0xaeb4_4388_b19b_a174], "node-b"),
        ("2001:db8::1:0:0:1", [0x2757_191c_e285_30de, 0xc0db_484a_1cac_f8fe, 0xd121_c19b_6d8d_f8c2], "node-c"),
    ];
    let nodes = nodes();
    for (address, scores, winner) in vectors {
        let actual = NODES.map(|name| score(name, ip(address)));
        assert_eq!(actual, scores, "scores of {NODES:?} for {address}: {actual:x?}");
        let services = [service("app", &[address])];
        let chosen = only(&services).winner(&nodes, &everywhere()).map(|winner| winner.node);
        assert_eq!(chosen, Some(winner), "winner for {address}");
    }
}

#[test]
fn addresses_spread_evenly_over_nodes() {
    // 192.168.0.0 to 192.168.3.231: consecutive addresses must not cluster on one node.
    let nodes = nodes();
    let mut wins = BTreeMap::<String, usize>::new();
    let services: Vec<ServiceFacts> =
        (0..1000u32).map(|n| service("app", &[&std::net::Ipv4Addr::from(0xc0a8_0000 + n).to_string()])).collect();
    for announcement in announcements(&services) {
        let winner = announcement.winner(&nodes, &everywhere()).expect("every node is eligible");
        *wins.entry(winner.node.to_owned()).or_default() += 1;
    }
    assert_eq!(wins.len(), 3);
    for (node, count) in wins {
        assert!((250..=420).contains(&count), "{node} wins {count} of 1000");
    }
}

/// Nodes with distinct names and random lease states, and single-address Services, some IPv4 and
/// some IPv6.
fn cluster() -> impl Strategy<Value = (Vec<NodeFacts>, Vec<ServiceFacts>)> {
    let nodes = prop::collection::btree_map(0u16..500, any::<bool>(), 2..12).prop_map(|names| {
        names.into_iter().map(|(n, live)| NodeFacts { lease_live: live, ..node(&format!("node-{n}")) }).collect()
    });
    let address = prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::from(std::net::Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::from(std::net::Ipv6Addr::from(n))),
    ];
    let services = prop::collection::btree_set(address, 1..60).prop_map(|addresses| {
        addresses.into_iter().map(|address| ServiceFacts { addresses: vec![address], ..service("app", &[]) }).collect()
    });
    (nodes, services)
}

fn winners(services: &[ServiceFacts], nodes: &[NodeFacts]) -> Vec<(IpAddr, Option<String>)> {
    announcements(services)
        .iter()
        .map(|announcement| {
            (announcement.key(), announcement.winner(nodes, &everywhere()).map(|winner| winner.node.to_owned()))
        })
        .collect()
}

proptest! {
    #[test]
    fn removing_a_node_moves_only_its_addresses((nodes, services) in cluster(), removed in any::<prop::sample::Index>()) {
        let before = winners(&services, &nodes);
        let mut remaining = nodes.clone();
        let gone = remaining.remove(removed.index(nodes.len())).name;
        let after = winners(&services, &remaining);
        for ((address, old), (_, new)) in before.iter().zip(&after) {
            if old.as_deref() != Some(gone.as_str()) {
                prop_assert_eq!(old, new, "{} moved although {} did not announce it", address, gone);
            }
        }
    }
}

#[test]
fn a_service_is_recorded_on_the_first_carrier_of_its_first_carried_address() {
    let first = BTreeMap::from([(ip("192.168.2.10"), "eth1"), (ip("fd00::10"), "eth0")]);
    assert_eq!(service_interface(&[ip("192.168.2.10"), ip("fd00::10")], &first), Some("eth1"));
    assert_eq!(service_interface(&[ip("192.168.2.99"), ip("fd00::10")], &first), Some("eth0"), "the first carried");
    assert_eq!(service_interface(&[ip("192.168.2.99")], &first), None, "none carried: nothing recorded");
    let winner = Winner {
        node: "node-a",
        score: 0,
        carriers: BTreeMap::from([(ip("192.168.2.10"), vec!["eth0", "eth1"]), (ip("fd00::10"), vec![])]),
    };
    assert_eq!(winner.first_interfaces(), BTreeMap::from([(ip("192.168.2.10"), "eth0")]));
}
