//! Who the pool status records as announcing, one scenario per test. The facts go through the
//! engine's own reductions ([`AnnouncerInputs`]) as watch events, as in the running operator.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ironlb_core::address::Family;
use ironlb_core::announcer::endpoints::SERVICE_NAME_LABEL;
use ironlb_core::announcer::{PublishedInterface, PublishedNode};
use ironlb_core::v1alpha1::{Allocation, IPAddressPool, L2Advertisement, L2AdvertisementSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::watcher::Event;

use super::{Announcers, Listings, MIN_DECISION_INTERVAL, PoolInput, Winners, decide_listings};
use crate::allocator::{AllocationRequest, Allocator, IpFamilyPolicy, ServiceKey, ServicePort};
use crate::engine::pools::{Recorded, pool_config, pool_status};
use ironlb_core::announcer::{AnnouncerInputs, EndpointScope, Touched};

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
/// `leaseDurationSeconds` of the speakers' Leases here.
const LEASE: Duration = Duration::from_secs(2);

const POOL: &str = "
apiVersion: ironlb.io/v1alpha1
kind: IPAddressPool
metadata: {name: default, generation: 1, labels: {zone: lan}}
spec: {addresses: [192.168.2.10-192.168.2.49, 'fd00::10-fd00::49']}
";

/// A cluster of three live nodes on the tutorial's LAN (`eth0` holds 192.168.2.0/24 and
/// fd00::/64), one pool, and one L2Advertisement announcing everything from everywhere.
struct Cluster {
    pool: IPAddressPool,
    allocator: Allocator,
    /// Services with `externalTrafficPolicy: Local`.
    local: BTreeSet<ServiceKey>,
    inputs: AnnouncerInputs,
    /// What every speaker publishes about its node.
    facts: PublishedNode,
    /// The last `resourceVersion` handed out.
    version: u64,
    start: Instant,
}

fn interface(name: &str, addresses: &[&str]) -> PublishedInterface {
    PublishedInterface {
        name: name.to_owned(),
        up: true,
        announce_by_default: true,
        addresses: addresses.iter().map(|&address| address.to_owned()).collect(),
        ..PublishedInterface::default()
    }
}

impl Cluster {
    fn new() -> Self {
        let pool: IPAddressPool = serde_yaml::from_str(POOL).expect("a valid pool");
        let mut allocator = Allocator::new();
        allocator.set_pool(pool_config(&pool).expect("valid"));
        let start = Instant::now();
        let facts = PublishedNode {
            interfaces: vec![interface("eth0", &["192.168.2.2/24", "fd00::2/64"])],
            ..PublishedNode::default()
        };
        let inputs = AnnouncerInputs::new(EndpointScope::Cluster);
        let mut cluster = Self { pool, allocator, local: BTreeSet::new(), inputs, facts, version: 0, start };
        cluster.inputs.take_lease(Event::Init, start);
        for node in NODES {
            let lease = cluster.lease(node);
            cluster.inputs.take_lease(Event::InitApply(lease), start);
        }
        cluster.inputs.take_lease(Event::InitDone, start);
        cluster.inputs.take_endpoint_slice(Event::Init);
        cluster.inputs.take_endpoint_slice(Event::InitDone);
        let everywhere = L2Advertisement::new("everywhere", L2AdvertisementSpec::default());
        cluster.inputs.take_advertisement(Event::Init);
        cluster.inputs.take_advertisement(Event::InitApply(everywhere));
        cluster.inputs.take_advertisement(Event::InitDone);
        assert!(cluster.inputs.synced().all());
        cluster
    }

    fn at(&self, millis: u64) -> Instant {
        self.start + Duration::from_millis(millis)
    }

    /// The speaker Lease of `node`, as renewed now (a new `resourceVersion`).
    fn lease(&mut self, node: &str) -> Lease {
        self.version += 1;
        let duration = i32::try_from(LEASE.as_secs()).expect("small");
        self.facts.lease(node, &format!("speaker-{node}"), duration, Some(self.version.to_string()))
    }

    /// `node`'s speaker renews its Lease at `at`; whether that needs a new decision.
    fn renew(&mut self, node: &str, at: Instant) -> bool {
        let lease = self.lease(node);
        self.inputs.take_lease(Event::Apply(lease), at)
    }

    /// Gives `name` an address (both families when `dual_stack`, IPv4 first).
    fn service(&mut self, name: &str, dual_stack: bool) -> ServiceKey {
        let families = if dual_stack { vec![Family::V4, Family::V6] } else { vec![Family::V4] };
        self.service_of(name, families)
    }

    /// Gives `name` one address per family, in `families` order.
    fn service_of(&mut self, name: &str, families: Vec<Family>) -> ServiceKey {
        let mut request = AllocationRequest::new(ServiceKey::new("web", name));
        if families.len() > 1 {
            request.family_policy = IpFamilyPolicy::RequireDualStack;
        }
        request.families = families;
        self.allocator.assign(&request).expect("an address");
        request.service
    }

    /// Gives `name` the address `ip`, shared with every Service of the sharing key `key`.
    fn sharing(&mut self, name: &str, ip: &str, key: &str, port: u16) -> ServiceKey {
        let mut request = AllocationRequest::new(ServiceKey::new("web", name));
        request.addresses = vec![ip.parse().expect("an address")];
        request.sharing_key = Some(key.to_owned());
        request.ports = vec![ServicePort::tcp(port)];
        self.allocator.assign(&request).expect("the shared address");
        request.service
    }

    /// The Service's EndpointSlice now has one ready endpoint on each of `nodes` (none: no
    /// endpoint at all). Returns the Services touched.
    fn endpoints(&mut self, service: &ServiceKey, nodes: &[&str]) -> Touched {
        let endpoints = nodes
            .iter()
            .map(|&node| Endpoint {
                addresses: vec!["10.244.0.1".to_owned()],
                node_name: Some(node.to_owned()),
                conditions: Some(EndpointConditions { ready: Some(true), serving: Some(true), terminating: None }),
                ..Endpoint::default()
            })
            .collect();
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some(service.namespace.clone()),
                name: Some(format!("{}-abcde", service.name)),
                labels: Some(BTreeMap::from([(SERVICE_NAME_LABEL.to_owned(), service.name.clone())])),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".to_owned(),
            endpoints,
            ports: None,
        };
        self.inputs.take_endpoint_slice(Event::Apply(slice))
    }

    fn pools(&self) -> Vec<PoolInput> {
        let labels = self.pool.metadata.labels.clone().unwrap_or_default();
        vec![PoolInput { name: "default".to_owned(), labels }]
    }

    /// Who the status records at `at`, decided from scratch.
    fn decide(&self, at: Instant) -> Listings {
        let is_local = |key: &ServiceKey| self.local.contains(key);
        decide_listings(
            &self.allocator,
            self.pools(),
            is_local,
            &self.inputs,
            self.inputs.nodes(at),
            &mut Winners::default(),
        )
    }

    /// The same through the leader's record, which remembers winners and reports what changed.
    fn decide_again(&self, announcers: &mut Announcers, at: Instant) -> super::PoolReport {
        let is_local = |key: &ServiceKey| self.local.contains(key);
        let mut reports = announcers.decide(&self.allocator, self.pools(), is_local, &self.inputs, at, false);
        assert_eq!(reports.len(), 1);
        let fresh = self.decide(at);
        assert_eq!(announcers.listing("default"), fresh.listings.get("default"), "remembered winners hold");
        reports.remove(0)
    }
}

/// The allocation of `service` in the listing of the pool.
fn allocation<'d>(decision: &'d Listings, service: &ServiceKey) -> &'d Allocation {
    decision.listings["default"]
        .allocations
        .iter()
        .find(|a| a.namespace == service.namespace && a.name == service.name)
        .expect("listed")
}

#[test]
fn a_local_service_is_announced_from_the_node_with_its_endpoint() {
    for node in NODES {
        let mut cluster = Cluster::new();
        let web = cluster.service("web", false);
        cluster.local.insert(web.clone());
        cluster.endpoints(&web, &[node]);
        let decision = cluster.decide(cluster.at(0));
        let listed = allocation(&decision, &web);
        assert_eq!(listed.external_traffic_policy.as_deref(), Some("Local"));
        assert!(listed.serving);
        assert_eq!(listed.node.as_deref(), Some(node));
        assert_eq!(listed.interface.as_deref(), Some("eth0"));
    }
}

#[test]
fn a_service_without_endpoints_is_not_serving_and_nobody_announces_it() {
    let mut cluster = Cluster::new();
    let web = cluster.service("web", false);
    let decision = cluster.decide(cluster.at(0));
    let listed = allocation(&decision, &web);
    assert_eq!((listed.serving, listed.node.as_deref(), listed.interface.as_deref()), (false, None, None));
    assert_eq!(listed.external_traffic_policy, None, "Cluster is recorded as absent");

    cluster.endpoints(&web, &["node-b"]);
    let decision = cluster.decide(cluster.at(0));
    let listed = allocation(&decision, &web);
    assert!(listed.serving);
    assert!(listed.node.is_some(), "a Cluster Service is announced from any live node");
}

#[test]
fn sharing_services_and_both_families_of_a_dual_stack_service_get_one_node() {
    let mut cluster = Cluster::new();
    let mut groups: Vec<Vec<ServiceKey>> = Vec::new();
    for n in 0..6u16 {
        let ip = format!("192.168.2.{}", 20 + n);
        let first = cluster.sharing(&format!("shared-{n}-http"), &ip, &format!("key-{n}"), 80);
        let second = cluster.sharing(&format!("shared-{n}-https"), &ip, &format!("key-{n}"), 443);
        groups.push(vec![first, second]);
    }
    let dual = cluster.service("dual", true);
    for service in groups.iter().flatten().chain([&dual]) {
        cluster.endpoints(service, &["node-a"]);
    }
    let decision = cluster.decide(cluster.at(0));

    let dual = allocation(&decision, &dual);
    assert_eq!(dual.ips.len(), 2, "{dual:?}");
    assert!(dual.node.is_some());
    let mut nodes = BTreeSet::new();
    for group in &groups {
        let [first, second] = [&group[0], &group[1]].map(|service| allocation(&decision, service));
        assert_eq!(first.ips, second.ips);
        assert!(first.node.is_some());
        assert_eq!(first.node, second.node, "{first:?} and {second:?} share an address");
        nodes.extend(first.node.clone());
    }
    assert!(nodes.len() > 1, "different addresses spread over nodes: {nodes:?}");
}

#[test]
fn a_dead_lease_moves_the_announcer_and_its_return_moves_it_back() {
    let mut cluster = Cluster::new();
    let web = cluster.service("web", true);
    cluster.endpoints(&web, &["node-a", "node-b", "node-c"]);
    let mut announcers = Announcers::default();
    let first = cluster.decide_again(&mut announcers, cluster.at(0));
    assert_eq!((first.announced, first.not_announced, first.moved), (2, 0, 0));
    let winner = announcers.listing("default").expect("decided").allocations[0].node.clone().expect("a winner");

    // Every speaker but the winner's renews; the winner's Lease runs out.
    for node in NODES.into_iter().filter(|&node| node != winner) {
        assert!(!cluster.renew(node, cluster.at(1_500)), "a renewal is no change");
    }
    assert!(!cluster.inputs.expired(cluster.at(1_999)));
    assert_eq!(cluster.inputs.next_expiry(), Some(cluster.at(2_000)), "the engine wakes up then");
    assert!(cluster.inputs.expired(cluster.at(2_000)));
    let moved = cluster.decide_again(&mut announcers, cluster.at(2_000));
    assert!(moved.changed);
    assert_eq!(moved.moved, 2, "both addresses of the dual-stack Service moved");
    let successor = announcers.listing("default").expect("decided").allocations[0].node.clone();
    assert!(successor.is_some() && successor.as_deref() != Some(winner.as_str()), "{successor:?}");

    // The speaker comes back: the highest score wins again.
    assert!(cluster.renew(&winner, cluster.at(2_500)), "a node coming back is a change");
    cluster.decide_again(&mut announcers, cluster.at(2_500));
    assert_eq!(announcers.listing("default").expect("decided").allocations[0].node, Some(winner));
}

#[test]
fn lease_renewals_change_nothing_so_nothing_is_written() {
    let mut cluster = Cluster::new();
    let web = cluster.service("web", false);
    let local = cluster.service("local", true);
    cluster.local.insert(local.clone());
    cluster.endpoints(&web, &["node-a"]);
    cluster.endpoints(&local, &["node-c"]);
    let mut announcers = Announcers::default();
    cluster.decide_again(&mut announcers, cluster.at(0));
    let listing = announcers.listing("default").expect("decided").clone();
    let status = pool_status(
        &cluster.pool,
        cluster.allocator.pool("default"),
        Recorded::unsliced(&listing),
        None,
        &[],
        &[],
        Timestamp::UNIX_EPOCH,
    );
    cluster.pool.status = Some(status);

    for round in 1..=3 {
        for node in NODES {
            assert!(!cluster.renew(node, cluster.at(500 * round)), "a renewal needs no decision");
        }
    }
    assert!(!announcers.is_stale());
    // Decided anyway (another change elsewhere): the same listing, the same status.
    announcers.invalidate();
    let report = cluster.decide_again(&mut announcers, cluster.at(1_600));
    assert!(!report.changed);
    let listing = announcers.listing("default").expect("decided");
    let later = Timestamp::from_second(60).expect("a time");
    let status = pool_status(
        &cluster.pool,
        cluster.allocator.pool("default"),
        Recorded::unsliced(listing),
        None,
        &[],
        &[],
        later,
    );
    assert_eq!(cluster.pool.status.as_ref(), Some(&status), "equal to what the pool holds: no write");
}

#[test]
fn endpoint_changes_a_decision_does_not_read_need_no_decision() {
    let mut cluster = Cluster::new();
    let web = cluster.service("web", false);
    let local = cluster.service("local", false);
    cluster.local.insert(local.clone());
    cluster.endpoints(&web, &["node-a"]);
    cluster.endpoints(&local, &["node-a"]);
    let mut announcers = Announcers::default();
    cluster.decide_again(&mut announcers, cluster.at(0));

    // A Cluster Service's pod moves to another node: it still serves, nothing else is read.
    assert_eq!(cluster.endpoints(&web, &["node-b"]), Touched::Services(vec![web.clone()]));
    announcers.endpoints_seen(&web, cluster.inputs.endpoints());
    assert!(!announcers.is_stale());
    // A Local Service's pod moves: where it may be announced from changed.
    cluster.endpoints(&local, &["node-b"]);
    announcers.endpoints_seen(&local, cluster.inputs.endpoints());
    assert!(announcers.is_stale());
    cluster.decide_again(&mut announcers, cluster.at(0));
    // The Cluster Service stops serving.
    cluster.endpoints(&web, &[]);
    announcers.endpoints_seen(&web, cluster.inputs.endpoints());
    assert!(announcers.is_stale());
    cluster.decide_again(&mut announcers, cluster.at(0));
    // Its traffic policy changes.
    announcers.traffic_policy_seen(&web, false);
    assert!(!announcers.is_stale());
    announcers.traffic_policy_seen(&web, true);
    assert!(announcers.is_stale());
}

#[test]
fn decisions_are_coalesced() {
    let cluster = Cluster::new();
    let mut announcers = Announcers::default();
    assert!(announcers.is_due(cluster.at(0)), "the first decision runs at once");
    cluster.decide_again(&mut announcers, cluster.at(0));
    assert!(!announcers.is_due(cluster.at(0)), "nothing changed");
    announcers.invalidate();
    assert!(!announcers.is_due(cluster.at(10)));
    assert_eq!(announcers.due_at(), Some(cluster.at(0) + MIN_DECISION_INTERVAL));
    assert!(announcers.is_due(cluster.at(0) + MIN_DECISION_INTERVAL));
}

#[test]
fn a_relist_takes_effect_only_once_complete() {
    let mut cluster = Cluster::new();
    let web = cluster.service("web", false);
    cluster.endpoints(&web, &["node-a"]);
    cluster.inputs.take_endpoint_slice(Event::Init);
    assert!(cluster.inputs.endpoints().summary("web", "web").serving, "the old list holds meanwhile");
    assert_eq!(cluster.inputs.take_endpoint_slice(Event::InitDone), Touched::Everything);
    assert!(!cluster.inputs.endpoints().summary("web", "web").serving, "the slice was gone from the new list");
}

#[test]
fn the_interface_is_the_one_carrying_the_services_first_address() {
    let mut cluster = Cluster::new();
    // Each family's subnet on an interface of its own.
    cluster.facts.interfaces = vec![interface("eth0", &["192.168.2.2/24"]), interface("eth1", &["fd00::2/64"])];
    for node in NODES {
        assert!(cluster.renew(node, cluster.at(0)), "new facts are a change");
    }
    let v4_first = cluster.service_of("v4-first", vec![Family::V4, Family::V6]);
    let v6_first = cluster.service_of("v6-first", vec![Family::V6, Family::V4]);
    cluster.endpoints(&v4_first, &["node-a"]);
    cluster.endpoints(&v6_first, &["node-a"]);
    let decision = cluster.decide(cluster.at(0));
    for (service, interface) in [(&v4_first, "eth0"), (&v6_first, "eth1")] {
        let listed = allocation(&decision, service);
        let first: IpAddr = listed.ips[0].parse().expect("an address");
        assert_eq!(first.is_ipv4(), interface == "eth0", "{listed:?}");
        assert!(listed.node.is_some());
        assert_eq!(listed.interface.as_deref(), Some(interface), "{listed:?}");
    }
}

#[test]
fn advertisement_and_pool_label_changes_are_decided_again() {
    let mut cluster = Cluster::new();
    let web = cluster.service("web", false);
    cluster.endpoints(&web, &["node-a"]);
    let mut announcers = Announcers::default();
    let report = cluster.decide_again(&mut announcers, cluster.at(0));
    assert_eq!((report.announced, report.not_announced), (1, 0));

    // The advertisement now selects only pools labelled zone=dmz.
    let spec: L2AdvertisementSpec =
        serde_yaml::from_str("ipAddressPoolSelectors: [{matchLabels: {zone: dmz}}]").expect("a valid spec");
    let dmz_only = L2Advertisement::new("everywhere", spec);
    assert!(cluster.inputs.take_advertisement(Event::Apply(dmz_only.clone())));
    assert!(!cluster.inputs.take_advertisement(Event::Apply(dmz_only)), "the same spec again is no change");
    let report = cluster.decide_again(&mut announcers, cluster.at(0));
    assert!(report.changed);
    assert_eq!((report.announced, report.not_announced, report.moved), (0, 1, 1));

    // The pool is relabelled into the DMZ.
    let dmz = BTreeMap::from([("zone".to_owned(), "dmz".to_owned())]);
    announcers.pool_labels_seen("default", &BTreeMap::from([("zone".to_owned(), "lan".to_owned())]));
    assert!(!announcers.is_stale(), "the labels it was decided with");
    announcers.pool_labels_seen("default", &dmz);
    assert!(announcers.is_stale());
    cluster.pool.metadata.labels = Some(dmz);
    let report = cluster.decide_again(&mut announcers, cluster.at(0));
    assert_eq!((report.announced, report.not_announced), (1, 0));
}

#[test]
fn a_speaker_that_deletes_its_lease_hands_over_at_once() {
    let mut cluster = Cluster::new();
    let web = cluster.service("web", false);
    cluster.endpoints(&web, &NODES);
    let mut announcers = Announcers::default();
    cluster.decide_again(&mut announcers, cluster.at(0));
    let winner = announcers.listing("default").expect("decided").allocations[0].node.clone().expect("a winner");

    let lease = cluster.lease(&winner);
    assert!(cluster.inputs.take_lease(Event::Delete(lease.clone()), cluster.at(100)), "a live node left");
    assert!(!cluster.inputs.take_lease(Event::Delete(lease), cluster.at(100)), "it was gone already");
    let report = cluster.decide_again(&mut announcers, cluster.at(100));
    assert_eq!(report.moved, 1);
    assert_ne!(announcers.listing("default").expect("decided").allocations[0].node, Some(winner));
}

#[test]
fn a_lease_relist_keeps_liveness_and_drops_vanished_nodes() {
    let mut cluster = Cluster::new();
    let (a, b) = (cluster.lease("node-a"), cluster.lease("node-b"));
    cluster.inputs.take_lease(Event::Init, cluster.at(1_000));
    cluster.inputs.take_lease(Event::InitApply(a), cluster.at(1_000));
    cluster.inputs.take_lease(Event::InitApply(b), cluster.at(1_000));
    assert_eq!(cluster.inputs.nodes(cluster.at(1_000)).len(), 3, "the old list holds until the new one is complete");
    assert!(cluster.inputs.take_lease(Event::InitDone, cluster.at(1_000)), "node-c is gone");
    let live: Vec<String> =
        cluster.inputs.nodes(cluster.at(1_000)).into_iter().filter(|n| n.lease_live).map(|n| n.name).collect();
    assert_eq!(live, ["node-a", "node-b"]);
}
