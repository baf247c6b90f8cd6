//! What this node announces: the announcer function of `ironlb-core` over the cluster as this
//! speaker's watches show it.
//!
//! [`ClusterView`] holds only reductions: each pool's labels and address ranges, the allocation
//! record's [`IPAllocationSlice`]s (the speaker's one source of what to announce — it keeps no
//! Service cache) and the
//! [`AnnouncerInputs`] — the compiled L2Advertisements, the peers' Leases and, for
//! `externalTrafficPolicy: Local` Services only, their endpoints — reduced by the very code the
//! operator runs. Every speaker and the operator evaluate the same function over the same facts,
//! so they agree on one announcer per address.
//!
//! For a `Cluster` Service, "has a serving endpoint" comes from the allocation's `serving`,
//! which the operator records; under `Local` the speaker reads the Service's EndpointSlices
//! itself, since it must know on which nodes the endpoints are.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use ironlb_core::address::{AddressRange, parse_entry};
use ironlb_core::announcer::endpoints::ServiceKey;
use ironlb_core::announcer::{
    AnnouncerInputs, EndpointScope, Labels, PoolFacts, ServiceFacts, announcements, service_interface,
};
use ironlb_core::v1alpha1::{Allocation, IPAddressPool, IPAllocationSlice};

/// One pool as the speaker needs it: what advertisements select it by, and the addresses it may
/// announce from it.
#[derive(Clone, Debug, Default, PartialEq)]
struct PoolRecord {
    labels: Labels,
    ranges: Vec<AddressRange>,
}

/// One slice of the allocation record, as the watch delivered it.
#[derive(Clone, Debug, Default, PartialEq)]
struct SliceRecord {
    pool: String,
    allocations: Vec<Allocation>,
    /// The addresses it records as found in use on the wire (`inUse`).
    in_use: BTreeSet<IpAddr>,
}

/// The cluster as this speaker sees it.
#[derive(Debug)]
pub struct ClusterView {
    pools: BTreeMap<String, PoolRecord>,
    /// By slice name.
    slices: BTreeMap<String, SliceRecord>,
    /// Every address a slice records as found in use: the union of the slices' `in_use`, kept
    /// so that [`Self::is_fresh`] costs one lookup, not one per slice.
    recorded_in_use: BTreeSet<IpAddr>,
    /// The peers' Leases, the L2Advertisements and the endpoints of the `Local` Services (only
    /// those are watched, one watch per Service).
    pub inputs: AnnouncerInputs,
    /// Addresses allocated after the record was first listed and not yet announced by any node
    /// as far as this one knows: a new Service's addresses, probed for before they are announced
    /// the first time.
    fresh: BTreeSet<IpAddr>,
    /// This speaker's node: an address the pool status records on another node has been
    /// announced before, so taking it over is not its first announcement.
    node: String,
    /// Whether the pools have been listed.
    pools_listed: bool,
    /// Whether the slices have been listed: what the first list shows is not new.
    slices_listed: bool,
}

/// One Service this node announces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnouncedService {
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// The interface its first address is answered on.
    pub interface: String,
}

/// What this node announces, from one decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Each address this node answers for, with the interfaces it answers on.
    pub owned: BTreeMap<IpAddr, Vec<String>>,
    /// The Services whose addresses those are.
    pub services: BTreeMap<ServiceKey, AnnouncedService>,
    /// Announcements (groups of addresses) no node of the cluster may announce.
    pub unannounced: usize,
}

/// The allocations of `slice` as the speaker may announce them: only addresses inside its pool's
/// own `spec.addresses`. The record is written by the operator, but anyone allowed to write a
/// slice must not be able to make every node answer ARP for, say, the LAN's gateway; an address
/// outside the spec (or of a pool this speaker does not know) is dropped and logged, the rest of
/// its allocation stays.
fn within_spec<'a>(pool: Option<&PoolRecord>, slice: &'a SliceRecord) -> impl Iterator<Item = Allocation> + 'a {
    let ranges = pool.map(|pool| pool.ranges.clone()).unwrap_or_default();
    slice.allocations.iter().filter_map(move |allocation| {
        let inside = |ip: &String| ip.parse::<IpAddr>().is_ok_and(|ip| ranges.iter().any(|range| range.contains(ip)));
        let (kept, dropped): (Vec<String>, Vec<String>) = allocation.ips.iter().cloned().partition(inside);
        if !dropped.is_empty() {
            tracing::warn!(pool = slice.pool, service = %format!("{}/{}", allocation.namespace, allocation.name), addresses = ?dropped,
                "the allocation record lists addresses outside the pool's spec.addresses: not announcing them");
        }
        (!kept.is_empty()).then(|| Allocation { ips: kept, ..allocation.clone() })
    })
}

/// Every address a slice's allocations hold.
fn addresses_of(slice: &SliceRecord) -> BTreeSet<IpAddr> {
    slice.allocations.iter().flat_map(|a| &a.ips).filter_map(|ip| ip.parse().ok()).collect()
}

impl ClusterView {
    /// An empty view for the speaker of `node`.
    pub fn new(node: &str) -> Self {
        Self {
            pools: BTreeMap::new(),
            slices: BTreeMap::new(),
            recorded_in_use: BTreeSet::new(),
            inputs: AnnouncerInputs::new(EndpointScope::PerService),
            fresh: BTreeSet::new(),
            node: node.to_owned(),
            pools_listed: false,
            slices_listed: false,
        }
    }

    /// Records a pool as the watch delivered it. Returns whether anything the decision reads
    /// changed: its labels or its addresses (a status write never does).
    pub fn set_pool(&mut self, pool: &IPAddressPool) -> bool {
        let Some(name) = pool.metadata.name.clone() else { return false };
        let record = PoolRecord {
            labels: pool.metadata.labels.clone().unwrap_or_default(),
            ranges: pool.spec.addresses.iter().filter_map(|entry| parse_entry(entry).ok()).collect(),
        };
        self.pools.insert(name, record.clone()) != Some(record)
    }

    /// Forgets a deleted pool.
    pub fn remove_pool(&mut self, name: &str) -> bool {
        self.pools.remove(name).is_some()
    }

    /// Forgets every pool: a relist follows.
    pub fn clear_pools(&mut self) {
        self.pools.clear();
        self.pools_listed = false;
    }

    /// The pools have been listed (the watch's first list, or a relist, is complete).
    pub fn pools_listed(&mut self) {
        self.pools_listed = true;
    }

    /// Records a slice of the allocation record as the watch delivered it. Returns whether
    /// anything the decision reads changed (a write that only touched its counts does not).
    pub fn set_slice(&mut self, slice: &IPAllocationSlice) -> bool {
        let Some(name) = slice.metadata.name.clone() else { return false };
        let allocations = slice.allocations().to_vec();
        let in_use = allocations.iter().flat_map(|a| &a.in_use).filter_map(|ip| ip.parse().ok()).collect();
        let record = SliceRecord { pool: slice.pool().to_owned(), allocations, in_use };
        let before = self.slices.get(&name).map(addresses_of).unwrap_or_default();
        let after = addresses_of(&record);
        if self.slices_listed {
            self.fresh.extend(after.difference(&before));
        }
        for gone in before.difference(&after) {
            self.fresh.remove(gone);
        }
        // Recorded on another node: that node probed it and announced it (or found it in use),
        // so this node would be taking it over, which must not wait for a probe window.
        let elsewhere = record
            .allocations
            .iter()
            .filter(|allocation| allocation.node.as_ref().is_some_and(|node| *node != self.node))
            .flat_map(|allocation| &allocation.ips)
            .filter_map(|ip| ip.parse::<IpAddr>().ok());
        for announced in elsewhere {
            self.fresh.remove(&announced);
        }
        let changed = self.slices.insert(name, record.clone()) != Some(record);
        self.gather_in_use();
        changed
    }

    /// Gathers the slices' addresses found in use (few: they are rare on a LAN).
    fn gather_in_use(&mut self) {
        self.recorded_in_use = self.slices.values().flat_map(|slice| slice.in_use.iter().copied()).collect();
    }

    /// Forgets a deleted slice.
    pub fn remove_slice(&mut self, name: &str) -> bool {
        let Some(record) = self.slices.remove(name) else { return false };
        for gone in addresses_of(&record) {
            self.fresh.remove(&gone);
        }
        self.gather_in_use();
        true
    }

    /// Forgets every slice: a relist follows, and what it shows is not new.
    pub fn clear_slices(&mut self) {
        self.slices.clear();
        self.recorded_in_use.clear();
        self.slices_listed = false;
    }

    /// The slices have been listed (the watch's first list, or a relist, is complete).
    pub fn slices_listed(&mut self) {
        self.slices_listed = true;
    }

    /// Every allocation this speaker may announce, with its pool: each Service once (should two
    /// slices list one Service, as they may for a moment while it moves between pools, the first
    /// slice by name counts), addresses outside its pool's spec dropped.
    fn allocations(&self) -> Vec<(&str, Allocation)> {
        let mut seen = BTreeSet::new();
        let mut all = Vec::new();
        for slice in self.slices.values() {
            for allocation in within_spec(self.pools.get(&slice.pool), slice) {
                if seen.insert(ServiceKey::new(&allocation.namespace, &allocation.name)) {
                    all.push((slice.pool.as_str(), allocation));
                }
            }
        }
        all
    }

    /// Whether every watch has listed once: before that, a half-listed cluster could make this
    /// node announce what a peer announces.
    pub fn synced(&self) -> bool {
        self.pools_listed && self.slices_listed && self.inputs.synced().all()
    }

    /// Whether `address` must be probed for before this node announces it: it was allocated
    /// after the record was listed and has not been announced yet (neither by this node nor, as
    /// the record records, by another), or the record says a speaker found it in use (whichever
    /// node that was, and however long ago this one started).
    pub fn is_fresh(&self, address: IpAddr) -> bool {
        self.fresh.contains(&address) || self.recorded_in_use.contains(&address)
    }

    /// `address` has been announced (after its probe): it is no longer new.
    pub fn settle(&mut self, address: IpAddr) {
        self.fresh.remove(&address);
    }

    /// The `externalTrafficPolicy: Local` Services holding addresses: the ones whose
    /// EndpointSlices this speaker must watch.
    pub fn local_services(&self) -> BTreeSet<ServiceKey> {
        self.allocations()
            .into_iter()
            .filter(|(_, allocation)| allocation.is_local())
            .map(|(_, allocation)| ServiceKey::new(&allocation.namespace, &allocation.name))
            .collect()
    }

    /// The facts of every Service holding addresses.
    fn service_facts(&self) -> Vec<ServiceFacts> {
        let mut pools: BTreeMap<&str, PoolFacts> = BTreeMap::new();
        let mut services = Vec::new();
        for (pool, allocation) in self.allocations() {
            let labels = || self.pools.get(pool).map(|record| record.labels.clone()).unwrap_or_default();
            let pool_facts = pools.entry(pool).or_insert_with(|| PoolFacts { name: pool.to_owned(), labels: labels() });
            let mut facts = ServiceFacts::from_allocation(pool_facts, &allocation);
            self.inputs.patch_local_endpoints(&mut facts);
            services.push(facts);
        }
        services
    }

    /// Decides, at `now`, what the node `me` announces.
    pub fn decide(&self, me: &str, now: Instant) -> Decision {
        let services = self.service_facts();
        let nodes = self.inputs.nodes(now);
        let peers = self.inputs.peers();
        tracing::debug!(
            live = ?nodes.iter().filter(|n| n.lease_live).map(|n| n.name.as_str()).collect::<Vec<_>>(),
            lease_expired = ?nodes.iter().filter(|n| !peers.is_live(&n.name, now)).map(|n| n.name.as_str()).collect::<Vec<_>>(),
            "deciding"
        );
        let mut decision = Decision::default();
        for announcement in announcements(&services) {
            let Some(winner) = announcement.winner(&nodes, self.inputs.advertisements()) else {
                decision.unannounced += 1;
                continue;
            };
            if winner.node != me {
                continue;
            }
            for (address, interfaces) in &winner.carriers {
                decision.owned.insert(*address, interfaces.iter().map(|name| (*name).to_owned()).collect());
            }
            let first_interfaces = winner.first_interfaces();
            for service in announcement.services() {
                let Some(interface) = service_interface(&service.addresses, &first_interfaces) else { continue };
                decision.services.insert(
                    ServiceKey::new(&service.namespace, &service.name),
                    AnnouncedService { addresses: service.addresses.clone(), interface: (*interface).to_owned() },
                );
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ironlb_core::v1alpha1::{L2Advertisement, L2AdvertisementSpec, TRAFFIC_POLICY_LOCAL};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::runtime::watcher::Event;

    use super::*;
    use crate::fixtures::{allocation, lease, pool, slice};

    const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];

    fn view(now: Instant, allocations: Vec<Allocation>) -> ClusterView {
        let mut view = ClusterView::new("a");
        view.inputs.take_advertisement(Event::Apply(L2Advertisement::new("all", L2AdvertisementSpec::default())));
        for (index, node) in NODES.iter().enumerate() {
            view.inputs.take_lease(Event::Apply(lease(node, 101 + index as u8)), now);
        }
        view.set_pool(&pool());
        view.set_slice(&slice(allocations));
        view
    }

    fn owners(view: &ClusterView, now: Instant, address: &str) -> Vec<&'static str> {
        let address: IpAddr = address.parse().expect("address");
        NODES.into_iter().filter(|node| view.decide(node, now).owned.contains_key(&address)).collect()
    }

    #[test]
    fn exactly_one_node_owns_each_serving_address_and_both_families_stay_together() {
        let now = Instant::now();
        let view = view(now, vec![allocation("dual", &["192.168.2.10", "fd00::10"], true)]);
        let v4 = owners(&view, now, "192.168.2.10");
        assert_eq!(v4.len(), 1);
        assert_eq!(owners(&view, now, "fd00::10"), v4);
        let decision = view.decide(v4[0], now);
        assert_eq!(decision.owned[&"192.168.2.10".parse().expect("ip")], vec!["eth0".to_owned()]);
        assert_eq!(decision.services[&ServiceKey::new("web", "dual")].interface, "eth0");
    }

    #[test]
    fn an_address_outside_the_pools_spec_is_announced_by_nobody() {
        let now = Instant::now();
        // A status written by someone else lists the LAN's gateway beside a real address.
        let view = view(now, vec![allocation("forged", &["192.168.1.1", "192.168.2.13"], true)]);
        assert!(owners(&view, now, "192.168.1.1").is_empty(), "the gateway is nobody's to answer for");
        assert_eq!(owners(&view, now, "192.168.2.13").len(), 1, "the address inside the spec still is");
    }

    #[test]
    fn a_service_without_serving_endpoints_is_announced_by_nobody() {
        let now = Instant::now();
        let view = view(now, vec![allocation("idle", &["192.168.2.11"], false)]);
        assert!(owners(&view, now, "192.168.2.11").is_empty());
        assert_eq!(view.decide("node-1", now).unannounced, 1);
    }

    #[test]
    fn the_address_moves_when_the_owner_lease_expires() {
        let now = Instant::now();
        let mut view = view(now, vec![allocation("web", &["192.168.2.12"], true)]);
        let first = owners(&view, now, "192.168.2.12")[0];
        // Every other node renews; the owner goes silent.
        let later = now + Duration::from_secs(3);
        for (index, node) in NODES.iter().enumerate().filter(|(_, node)| **node != first) {
            let mut renewed = lease(node, 101 + index as u8);
            renewed.metadata.resource_version = Some("2".to_owned());
            view.inputs.take_lease(Event::Apply(renewed), later - Duration::from_millis(100));
        }
        let next = owners(&view, later, "192.168.2.12");
        assert_eq!(next.len(), 1);
        assert_ne!(next[0], first);
    }

    #[test]
    fn a_local_service_is_announced_where_its_endpoint_is() {
        let now = Instant::now();
        let mut local = allocation("local", &["192.168.2.13"], true);
        local.external_traffic_policy = Some(TRAFFIC_POLICY_LOCAL.to_owned());
        let mut view = view(now, vec![local]);
        assert_eq!(view.local_services(), BTreeSet::from([ServiceKey::new("web", "local")]));
        assert!(owners(&view, now, "192.168.2.13").is_empty(), "endpoints not seen yet");
        for node in NODES {
            let slice = EndpointSlice {
                metadata: ObjectMeta {
                    namespace: Some("web".to_owned()),
                    name: Some("local-abc".to_owned()),
                    labels: Some(BTreeMap::from([("kubernetes.io/service-name".to_owned(), "local".to_owned())])),
                    ..ObjectMeta::default()
                },
                address_type: "IPv4".to_owned(),
                endpoints: vec![Endpoint {
                    addresses: vec!["10.0.0.1".to_owned()],
                    node_name: Some(node.to_owned()),
                    ..Endpoint::default()
                }],
                ports: None,
            };
            view.inputs.take_service_slices(&ServiceKey::new("web", "local"), Event::Apply(slice));
            assert_eq!(owners(&view, now, "192.168.2.13"), vec![node]);
        }
    }

    #[test]
    fn only_addresses_allocated_after_the_first_list_are_fresh() {
        let mut view = ClusterView::new("");
        view.set_slice(&slice(vec![allocation("old", &["192.168.2.10"], true)]));
        view.slices_listed();
        view.set_slice(&slice(vec![
            allocation("old", &["192.168.2.10"], true),
            allocation("new", &["192.168.2.11"], true),
        ]));
        let (old, new): (IpAddr, IpAddr) = ("192.168.2.10".parse().expect("ip"), "192.168.2.11".parse().expect("ip"));
        assert!(!view.is_fresh(old) && view.is_fresh(new));
        view.settle(new);
        assert!(!view.is_fresh(new));
        // Released and allocated again: new again.
        view.set_slice(&slice(vec![allocation("old", &["192.168.2.10"], true)]));
        view.set_slice(&slice(vec![
            allocation("old", &["192.168.2.10"], true),
            allocation("again", &["192.168.2.11"], true),
        ]));
        assert!(view.is_fresh(new));
        // A relist shows nothing new.
        view.clear_slices();
        view.set_slice(&slice(vec![allocation("late", &["192.168.2.12"], true)]));
        view.slices_listed();
        assert!(!view.is_fresh("192.168.2.12".parse().expect("ip")));
    }

    #[test]
    fn an_address_recorded_on_another_node_is_a_take_over_not_a_first_announcement() {
        let mut view = ClusterView::new("node-b");
        view.slices_listed();
        let address: IpAddr = "192.168.2.11".parse().expect("ip");
        // Allocated while this node runs: new, and recorded on this node (the operator ran the
        // same function): this node's first announcement, probed.
        let mut mine = allocation("new", &["192.168.2.11"], true);
        mine.node = Some("node-b".to_owned());
        view.set_slice(&slice(vec![mine.clone()]));
        assert!(view.is_fresh(address));
        // Recorded on node-a (which announced it), later taken over by node-b: not fresh.
        let mut theirs = mine;
        theirs.node = Some("node-a".to_owned());
        view.set_slice(&slice(vec![theirs.clone()]));
        assert!(!view.is_fresh(address), "taking over an announced address must not wait for a probe");
        // Recorded on another node from the start: no probe either.
        let mut view = ClusterView::new("node-b");
        view.slices_listed();
        view.set_slice(&slice(vec![theirs]));
        assert!(!view.is_fresh(address));
    }

    #[test]
    fn an_address_recorded_in_use_is_probed_first_by_whichever_node_announces_it() {
        let address: IpAddr = "192.168.2.11".parse().expect("ip");
        let mut marked = allocation("taken", &["192.168.2.11"], true);
        marked.node = Some("node-a".to_owned());
        marked.in_use = vec!["192.168.2.11".to_owned()];
        // A speaker (re)started after the mark was written: on its first list, and though the
        // record names another node, the address is probed first.
        let mut view = ClusterView::new("node-b");
        view.set_slice(&slice(vec![marked.clone()]));
        view.slices_listed();
        assert!(view.is_fresh(address));
        // Announced after a probe nobody answered: still marked until the operator forgets it,
        // but only an address this node does not answer for yet is probed (`Probes::split`).
        view.settle(address);
        assert!(view.is_fresh(address));
        marked.in_use.clear();
        view.set_slice(&slice(vec![marked]));
        assert!(!view.is_fresh(address), "unmarked and announced elsewhere: a take-over, not probed");
    }

    #[test]
    fn only_allocation_changes_count_as_changes() {
        let mut view = ClusterView::new("");
        let mut slice = slice(vec![allocation("web", &["192.168.2.14"], true)]);
        assert!(view.set_slice(&slice));
        slice.status.as_mut().expect("status").announced_count = 1;
        assert!(!view.set_slice(&slice), "its counts are for people");
        slice.status.as_mut().expect("status").allocations[0].serving = false;
        assert!(view.set_slice(&slice));
        let mut pool = pool();
        assert!(view.set_pool(&pool));
        pool.status = Some(ironlb_core::v1alpha1::IPAddressPoolStatus {
            assigned_summary: Some("v4=1".to_owned()),
            ..Default::default()
        });
        assert!(!view.set_pool(&pool), "a pool's status is not read");
        pool.metadata.labels = Some([("zone".to_owned(), "lan".to_owned())].into());
        assert!(view.set_pool(&pool), "its labels select advertisements");
    }

    #[test]
    fn every_slice_counts_and_a_service_listed_twice_is_announced_once() {
        let now = Instant::now();
        let mut view = view(now, vec![allocation("a", &["192.168.2.10"], true)]);
        let mut second =
            slice(vec![allocation("b", &["192.168.2.11"], true), allocation("a", &["192.168.2.10"], true)]);
        second.metadata.name = Some("default-1".to_owned());
        view.set_slice(&second);
        assert_eq!(owners(&view, now, "192.168.2.11").len(), 1, "the second slice is read too");
        let services: usize = NODES.iter().map(|node| view.decide(node, now).services.len()).sum();
        assert_eq!(services, 2, "a and b, once each");
        // A slice of a pool this speaker does not know announces nothing.
        let mut stray = slice(vec![allocation("c", &["192.168.2.12"], true)]);
        stray.metadata.name = Some("other-0".to_owned());
        stray.spec.pool = "other".to_owned();
        view.set_slice(&stray);
        assert!(owners(&view, now, "192.168.2.12").is_empty());
        assert!(view.remove_slice("default-1"));
        assert!(owners(&view, now, "192.168.2.11").is_empty());
    }
}
