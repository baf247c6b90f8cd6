//! The operator and the speakers agree on who announces, by construction: random clusters go
//! through the operator's path ([`decide_listings`], which writes the pool status) and through
//! every speaker's path ([`ironlb_speaker::decide::ClusterView`], which reads it), each fed
//! the same watch events. Every address must be answered by exactly the nodes the status names
//! for the allocations holding it (one at most; none when it names none), and a node named for
//! an allocation answers on the interface the status names.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ironlb_core::announcer::endpoints::SERVICE_NAME_LABEL;
use ironlb_core::announcer::{AnnouncerInputs, EndpointScope, PublishedInterface, PublishedNode};
use ironlb_core::v1alpha1::{
    Allocation, IPAddressPool, IPAllocationSlice, IPAllocationSliceSpec, L2Advertisement, L2AdvertisementSpec,
};
use ironlb_speaker::decide::ClusterView;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use kube::runtime::watcher::Event;
use proptest::prelude::*;

use super::{PoolInput, Winners, decide_listings};
use crate::allocator::{AllocationRequest, Allocator, IpFamilyPolicy, ServiceKey, ServicePort};
use crate::engine::pools::pool_config;
use crate::engine::record::{Record, SliceWrite};
use ironlb_core::address::Family;

const LEASE_SECONDS: i32 = 2;

/// How a node's speaker last renewed its Lease, as seen at the decision.
#[derive(Clone, Copy, Debug)]
enum Renewed {
    Now,
    /// Three seconds ago: expired by the decision.
    Long,
    /// It never wrote one.
    Never,
}

#[derive(Clone, Debug)]
struct NodeCase {
    zone_a: bool,
    eth0_up: bool,
    /// A second interface on 10.0.0.0/24 (the `other` pool's subnet).
    eth1: bool,
    network_unavailable: bool,
    renewed: Renewed,
}

#[derive(Clone, Debug)]
struct ServiceCase {
    /// From `other` (IPv4 on 10.0.0.0/24) instead of `default`.
    other_pool: bool,
    dual_stack: bool,
    local: bool,
    /// Shares the address of an earlier Service (sharing key `shared`, its own port).
    shares: bool,
    /// The nodes with a ready endpoint, by index; empty: no endpoint at all.
    endpoints: Vec<usize>,
}

#[derive(Clone, Debug)]
enum SelectorCase {
    None,
    Matching,
    /// An operator Kubernetes would refuse.
    Misspelt,
}

#[derive(Clone, Debug)]
struct AdvertisementCase {
    pools_by_name: bool,
    pool_selector: SelectorCase,
    node_selector: SelectorCase,
    interfaces: Vec<&'static str>,
}

fn node_case() -> impl Strategy<Value = NodeCase> {
    let renewed = prop_oneof![6 => Just(Renewed::Now), 1 => Just(Renewed::Long), 1 => Just(Renewed::Never)];
    (any::<bool>(), prop::bool::weighted(0.85), any::<bool>(), prop::bool::weighted(0.1), renewed).prop_map(
        |(zone_a, eth0_up, eth1, network_unavailable, renewed)| NodeCase {
            zone_a,
            eth0_up,
            eth1,
            network_unavailable,
            renewed,
        },
    )
}

fn service_case(nodes: usize) -> impl Strategy<Value = ServiceCase> {
    (
        prop::bool::weighted(0.25),
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::collection::vec(0..nodes, 0..=nodes),
    )
        .prop_map(|(other_pool, dual_stack, local, shares, endpoints)| ServiceCase {
            other_pool,
            dual_stack,
            local,
            shares,
            endpoints,
        })
}

fn selector_case() -> impl Strategy<Value = SelectorCase> {
    prop_oneof![3 => Just(SelectorCase::None), 2 => Just(SelectorCase::Matching), 1 => Just(SelectorCase::Misspelt)]
}

fn advertisement_case() -> impl Strategy<Value = AdvertisementCase> {
    let interfaces = prop_oneof![3 => Just(vec![]), 1 => Just(vec!["eth0"]), 1 => Just(vec!["eth1"])];
    (any::<bool>(), selector_case(), selector_case(), interfaces).prop_map(
        |(pools_by_name, pool_selector, node_selector, interfaces)| AdvertisementCase {
            pools_by_name,
            pool_selector,
            node_selector,
            interfaces,
        },
    )
}

fn cluster_case() -> impl Strategy<Value = (Vec<NodeCase>, Vec<ServiceCase>, Vec<AdvertisementCase>)> {
    prop::collection::vec(node_case(), 1..=4).prop_flat_map(|nodes| {
        let count = nodes.len();
        (
            Just(nodes),
            prop::collection::vec(service_case(count), 1..=6),
            prop::collection::vec(advertisement_case(), 0..=2),
        )
    })
}

fn node_name(index: usize) -> String {
    format!("node-{index}")
}

fn lease(index: usize, node: &NodeCase) -> Lease {
    let mut interfaces = vec![PublishedInterface {
        name: "eth0".to_owned(),
        mac: Some(format!("02:00:00:00:00:{index:02x}")),
        up: node.eth0_up,
        announce_by_default: true,
        addresses: vec![format!("192.168.2.{}/24", 100 + index), format!("fd00::{:x}/64", 0x100 + index)],
    }];
    if node.eth1 {
        interfaces.push(PublishedInterface {
            name: "eth1".to_owned(),
            mac: Some(format!("02:00:00:00:01:{index:02x}")),
            up: true,
            announce_by_default: true,
            addresses: vec![format!("10.0.0.{}/24", 100 + index)],
        });
    }
    let zone = if node.zone_a { "a" } else { "b" };
    let facts = PublishedNode {
        labels: BTreeMap::from([("zone".to_owned(), zone.to_owned())]),
        network_unavailable: node.network_unavailable,
        interfaces,
        ..PublishedNode::default()
    };
    facts.lease(&node_name(index), &format!("speaker-{index}"), LEASE_SECONDS, Some(format!("{}", 10 + index)))
}

fn selector(case: &SelectorCase, key: &str, value: &str) -> Option<LabelSelector> {
    let operator = match case {
        SelectorCase::None => return None,
        SelectorCase::Matching => "In",
        SelectorCase::Misspelt => "in",
    };
    let requirement = LabelSelectorRequirement {
        key: key.to_owned(),
        operator: operator.to_owned(),
        values: Some(vec![value.to_owned()]),
    };
    Some(LabelSelector { match_expressions: Some(vec![requirement]), match_labels: None })
}

fn advertisement(index: usize, case: &AdvertisementCase) -> L2Advertisement {
    let spec = L2AdvertisementSpec {
        ip_address_pools: if case.pools_by_name { vec!["default".to_owned()] } else { vec![] },
        ip_address_pool_selectors: selector(&case.pool_selector, "zone", "lan").into_iter().collect(),
        node_selectors: selector(&case.node_selector, "zone", "a").into_iter().collect(),
        interfaces: case.interfaces.iter().map(|&name| name.to_owned()).collect(),
    };
    L2Advertisement::new(&format!("adv-{index}"), spec)
}

fn pool(yaml: &str) -> IPAddressPool {
    serde_yaml::from_str(yaml).expect("a valid pool")
}

fn slice(key: &ServiceKey, nodes: &[usize]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some(key.namespace.clone()),
            name: Some(format!("{}-1", key.name)),
            labels: Some(BTreeMap::from([(SERVICE_NAME_LABEL.to_owned(), key.name.clone())])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".to_owned(),
        endpoints: nodes
            .iter()
            .map(|&node| Endpoint {
                addresses: vec![format!("10.244.{node}.1")],
                node_name: Some(node_name(node)),
                ..Endpoint::default()
            })
            .collect(),
        ports: None,
    }
}

/// One random cluster, as watch events both paths take.
struct Cluster {
    pools: Vec<IPAddressPool>,
    allocator: Allocator,
    local: BTreeSet<ServiceKey>,
    /// Lease events in order, with when each was seen.
    leases: Vec<(Instant, Lease)>,
    slices: Vec<(ServiceKey, EndpointSlice)>,
    advertisements: Vec<L2Advertisement>,
    now: Instant,
}

impl Cluster {
    fn new(nodes: &[NodeCase], services: &[ServiceCase], advertisements: &[AdvertisementCase]) -> Self {
        let pools = vec![
            pool(
                "{apiVersion: ironlb.io/v1alpha1, kind: IPAddressPool, metadata: {name: default, labels: {zone: lan}}, \
                 spec: {addresses: [192.168.2.10-192.168.2.49, 'fd00::10-fd00::49']}}",
            ),
            pool(
                "{apiVersion: ironlb.io/v1alpha1, kind: IPAddressPool, metadata: {name: other, creationTimestamp: \
                 '2026-01-02T00:00:00Z'}, spec: {addresses: [10.0.0.10-10.0.0.29], autoAssign: false}}",
            ),
        ];
        let mut allocator = Allocator::new();
        for pool in &pools {
            allocator.set_pool(pool_config(pool).expect("valid"));
        }
        let now = Instant::now() + Duration::from_secs(10);
        let leases = nodes
            .iter()
            .enumerate()
            .filter_map(|(index, node)| match node.renewed {
                Renewed::Now => Some((now, lease(index, node))),
                Renewed::Long => Some((now - Duration::from_secs(3), lease(index, node))),
                Renewed::Never => None,
            })
            .collect();
        let mut cluster = Self {
            pools,
            allocator,
            local: BTreeSet::new(),
            leases,
            slices: Vec::new(),
            advertisements: advertisements.iter().enumerate().map(|(i, case)| advertisement(i, case)).collect(),
            now,
        };
        let mut earlier: Option<IpAddr> = None;
        for (index, service) in services.iter().enumerate() {
            let key = ServiceKey::new("web", format!("svc-{index}"));
            let mut request = AllocationRequest::new(key.clone());
            if service.other_pool {
                request.pool = Some("other".to_owned());
            }
            if service.dual_stack && !service.other_pool {
                request.families = vec![Family::V4, Family::V6];
                request.family_policy = IpFamilyPolicy::RequireDualStack;
            }
            request.sharing_key = Some("shared".to_owned());
            if service.local {
                request.local_pod_selector = Some(BTreeMap::from([("app".to_owned(), "web".to_owned())]));
            }
            request.ports = vec![ServicePort::tcp(8000 + index as u16)];
            if let (true, Some(address)) = (service.shares, earlier) {
                request.addresses = vec![address];
                request.families = vec![Family::of(address)];
                request.family_policy = IpFamilyPolicy::default();
            }
            let Ok(assignment) = cluster.allocator.assign(&request) else { continue };
            earlier = assignment.addresses.first().copied();
            if service.local {
                cluster.local.insert(key.clone());
            }
            if !service.endpoints.is_empty() {
                cluster.slices.push((key.clone(), slice(&key, &service.endpoints)));
            }
        }
        cluster
    }

    /// The pool statuses' allocations as the operator writes them.
    fn operator_listings(&self) -> BTreeMap<String, Vec<Allocation>> {
        let mut inputs = AnnouncerInputs::new(EndpointScope::Cluster);
        for (seen, lease) in &self.leases {
            inputs.take_lease(Event::Apply(lease.clone()), *seen);
        }
        for (_, slice) in &self.slices {
            inputs.take_endpoint_slice(Event::Apply(slice.clone()));
        }
        for advertisement in &self.advertisements {
            inputs.take_advertisement(Event::Apply(advertisement.clone()));
        }
        let pools = self.pools.iter().map(|pool| PoolInput {
            name: pool.metadata.name.clone().unwrap_or_default(),
            labels: pool.metadata.labels.clone().unwrap_or_default(),
        });
        let is_local = |key: &ServiceKey| self.local.contains(key);
        let listings =
            decide_listings(&self.allocator, pools, is_local, &inputs, inputs.nodes(self.now), &mut Winners::default());
        listings.listings.into_iter().map(|(pool, listing)| (pool, listing.allocations)).collect()
    }

    /// What the speaker of `node` decides from those pool statuses and the same watch events.
    fn speaker_decision(
        &self,
        node: &str,
        listings: &BTreeMap<String, Vec<Allocation>>,
    ) -> ironlb_speaker::decide::Decision {
        let mut view = ClusterView::new(node);
        for pool in &self.pools {
            view.set_pool(pool);
        }
        view.pools_listed();
        // The listings go through the record as the operator writes it: the speaker reads slices.
        let mut record = Record::default();
        for (pool, allocations) in listings {
            record.set_pool(pool, allocations);
        }
        for write in record.due(self.now, usize::MAX, Duration::ZERO) {
            if let SliceWrite::Apply { pool, name, status, .. } = write {
                let mut slice = IPAllocationSlice::new(&name, IPAllocationSliceSpec { pool });
                slice.status = Some(status);
                view.set_slice(&slice);
            }
        }
        view.slices_listed();
        for (seen, lease) in &self.leases {
            view.inputs.take_lease(Event::Apply(lease.clone()), *seen);
        }
        for advertisement in &self.advertisements {
            view.inputs.take_advertisement(Event::Apply(advertisement.clone()));
        }
        // A speaker watches the slices of the Local Services it reads in the pool status only.
        for (key, slice) in &self.slices {
            if view.local_services().contains(key) {
                view.inputs.take_service_slices(key, Event::Apply(slice.clone()));
            }
        }
        view.decide(node, self.now)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_node_the_pool_status_names_is_the_one_speaker_that_answers((nodes, services, advertisements) in cluster_case()) {
        let cluster = Cluster::new(&nodes, &services, &advertisements);
        let listings = cluster.operator_listings();
        let decisions: BTreeMap<String, _> = (0..nodes.len())
            .map(|index| (node_name(index), cluster.speaker_decision(&node_name(index), &listings)))
            .collect();
        let allocations: Vec<&Allocation> = listings.values().flatten().collect();
        for allocation in &allocations {
            let key = ServiceKey::new(&allocation.namespace, &allocation.name);
            for ip in &allocation.ips {
                let address: IpAddr = ip.parse().expect("an address");
                let owners: BTreeSet<&str> = decisions
                    .iter()
                    .filter(|(_, decision)| decision.owned.contains_key(&address))
                    .map(|(node, _)| node.as_str())
                    .collect();
                // A shared address is answered for whichever of its Services is announced.
                let recorded: BTreeSet<&str> = allocations
                    .iter()
                    .filter(|other| other.ips.contains(ip))
                    .filter_map(|other| other.node.as_deref())
                    .collect();
                prop_assert_eq!(&owners, &recorded, "{} ({}): speakers answering vs the status", ip, key);
                prop_assert!(recorded.len() <= 1, "{}: one announcer at most", ip);
            }
            if let Some(node) = &allocation.node {
                let announced = decisions[node].services.get(&key);
                prop_assert_eq!(
                    announced.map(|service| service.interface.as_str()),
                    allocation.interface.as_deref(),
                    "{}: the interface the status names",
                    key
                );
            }
        }
    }
}
