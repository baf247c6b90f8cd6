//! What the announcer decides from besides the allocations — the speakers' node Leases, the
//! EndpointSlices and the L2Advertisements — reduced as the watches deliver them, by the one
//! reduction the operator and every speaker share.
//!
//! Both binaries feed their watch events into [`AnnouncerInputs`] and read the same facts back,
//! so they cannot disagree about which nodes are live, which advertisements apply or where a
//! `Local` Service's endpoints are. Only the reductions are kept, never the objects: per node,
//! its published facts and when its Lease expires ([`Peers`]); per Service, whether it serves
//! and on which nodes ([`EndpointIndex`]); the advertisements' specs, compiled
//! ([`Advertisements`]).
//!
//! # One relist rule
//!
//! A relist (a watch restarted after an error, or its first list) takes effect in one step once
//! it is complete: until `InitDone` the previous facts stay in force. A decision never sees half
//! a list: half the EndpointSlices would make Services look unserved, and half the Leases would
//! make live nodes look gone — in both cases addresses would move for nothing.
//!
//! # Change detection
//!
//! Each `take_*` says whether a decision may read something different afterwards, so that what
//! happens all the time without changing any outcome costs nothing: a renewal of a live node
//! whose facts are unchanged is no change ([`Peers::would_change`]).
//!
//! # Endpoint scope
//!
//! The operator watches every EndpointSlice of the cluster ([`EndpointScope::Cluster`]); a
//! speaker watches only those of the `externalTrafficPolicy: Local` Services holding addresses,
//! one watch per Service ([`EndpointScope::PerService`]), since for the others the pool status
//! carries `serving`. The relist rule is the same, applied per Service.

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::runtime::watcher::Event;

use super::advertisement::Advertisements;
use super::endpoints::EndpointIndex;
use super::facts::{NodeFacts, ServiceFacts};
use super::peers::{Peers, PublishedConflict, lease_node};
use crate::ServiceKey;
use crate::v1alpha1::{L2Advertisement, L2AdvertisementSpec};

/// Which EndpointSlices a reader watches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndpointScope {
    /// Every slice of the cluster, in one watch (the operator).
    #[default]
    Cluster,
    /// The slices of some Services, one watch per Service (a speaker).
    PerService,
}

/// Which EndpointSlices changed for the announcer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Touched {
    /// These Services (perhaps none).
    Services(Vec<ServiceKey>),
    /// Possibly any: a relist replaced everything.
    Everything,
}

/// Which watches have delivered their first full list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    /// The speakers' node Leases.
    pub leases: bool,
    /// The cluster's EndpointSlices (always true under [`EndpointScope::PerService`], where each
    /// Service's watch starts only once its allocation is known).
    pub endpoint_slices: bool,
    /// The L2Advertisements.
    pub advertisements: bool,
}

impl Synced {
    /// Whether every watch has listed once.
    pub fn all(self) -> bool {
        self.leases && self.endpoint_slices && self.advertisements
    }
}

/// The announcer's inputs as one reader's watches delivered them.
#[derive(Debug, Default)]
pub struct AnnouncerInputs {
    peers: Peers,
    endpoints: EndpointIndex,
    advertisement_specs: BTreeMap<String, L2AdvertisementSpec>,
    advertisements: Advertisements,
    /// Counts the changes of `advertisements`, to tell whether decisions made with them hold.
    advertisements_version: u64,
    /// A relist in progress, per watch: applied when it is complete.
    relisted_leases: Option<Vec<Lease>>,
    relisted_endpoints: Option<EndpointIndex>,
    relisted_service_slices: BTreeMap<ServiceKey, Vec<EndpointSlice>>,
    relisted_advertisements: Option<BTreeMap<String, L2AdvertisementSpec>>,
    /// The next instant a live node stops being live.
    next_expiry: Option<Instant>,
    synced: Synced,
}

impl AnnouncerInputs {
    /// Empty inputs for a reader whose EndpointSlice watches have `scope`.
    pub fn new(scope: EndpointScope) -> Self {
        let synced = Synced { endpoint_slices: scope == EndpointScope::PerService, ..Synced::default() };
        Self { synced, ..Self::default() }
    }

    /// Which watches have listed once. Before all have, a decision would see Services without
    /// endpoints and nodes without Leases.
    pub fn synced(&self) -> Synced {
        self.synced
    }

    /// The speakers' nodes and their Leases.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// The speakers' nodes, liveness judged at `now`.
    pub fn nodes(&self, now: Instant) -> Vec<NodeFacts> {
        self.peers.node_facts(now)
    }

    /// The live speakers of an older release, which read only the pool status's allocation list
    /// (see [`Peers::slice_unaware`]).
    pub fn slice_unaware_speakers(&self, now: Instant) -> Vec<String> {
        self.peers.slice_unaware(now).into_iter().map(str::to_owned).collect()
    }

    /// The address conflicts live speakers report, each with its node, sorted.
    pub fn conflicts(&self, now: Instant) -> Vec<(String, PublishedConflict)> {
        let mut reported: Vec<(String, PublishedConflict)> =
            self.peers.conflicts(now).into_iter().map(|(node, conflict)| (node.to_owned(), conflict.clone())).collect();
        reported.sort();
        reported
    }

    /// Every watched Service's endpoints, reduced.
    pub fn endpoints(&self) -> &EndpointIndex {
        &self.endpoints
    }

    /// The L2Advertisements, compiled.
    pub fn advertisements(&self) -> &Advertisements {
        &self.advertisements
    }

    /// A number that changes whenever the L2Advertisements do.
    pub fn advertisements_version(&self) -> u64 {
        self.advertisements_version
    }

    /// When a live node will stop being live: an expiry is the absence of an event, so the
    /// reader wakes up for it.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.next_expiry
    }

    /// Whether a node's Lease has expired since the last call (a reader asks on every turn).
    pub fn expired(&mut self, now: Instant) -> bool {
        if self.next_expiry.is_some_and(|at| at <= now) {
            self.next_expiry = self.peers.next_expiry(now);
            return true;
        }
        false
    }

    /// The Local-endpoint patch: under `externalTrafficPolicy: Local` a Service's eligible nodes
    /// are those with a serving endpoint, and it serves when it has one anywhere — read from the
    /// EndpointSlices, not from the allocation's `serving`. Other Services are left as they are.
    pub fn patch_local_endpoints(&self, service: &mut ServiceFacts) {
        if service.local_traffic_policy {
            let summary = self.endpoints.summary(&service.namespace, &service.name);
            service.has_serving_endpoint = summary.serving;
            service.nodes_with_endpoints = summary.nodes;
        }
    }

    /// Takes a speaker Lease event seen at `now`; true when a decision may read something
    /// different: a node's liveness or facts.
    pub fn take_lease(&mut self, event: Event<Lease>, now: Instant) -> bool {
        let changed = match event {
            Event::Apply(lease) => {
                let changed = self.peers.would_change(&lease, now);
                self.peers.observe(&lease, now);
                changed
            }
            // A node known before is gone; a Lease that is no node's changes nothing.
            Event::Delete(lease) => {
                let known = lease_node(&lease).is_some_and(|node| self.peers.get(node).is_some());
                self.peers.forget(&lease);
                known
            }
            Event::Init => {
                self.relisted_leases = Some(Vec::new());
                false
            }
            Event::InitApply(mut lease) => {
                // Nothing of the bookkeeping is read; a Lease is small without it.
                lease.metadata.managed_fields = None;
                self.relisted_leases.get_or_insert_default().push(lease);
                false
            }
            Event::InitDone => {
                let leases = self.relisted_leases.take().unwrap_or_default();
                let before = self.peers.node_facts(now);
                self.peers.reset(&leases, now);
                self.synced.leases = true;
                before != self.peers.node_facts(now)
            }
        };
        self.next_expiry = self.peers.next_expiry(now);
        changed
    }

    /// Takes an event of the cluster-wide EndpointSlice watch: the Services whose summary may
    /// have changed.
    pub fn take_endpoint_slice(&mut self, event: Event<EndpointSlice>) -> Touched {
        match event {
            Event::Apply(slice) => Touched::Services(self.endpoints.apply(&slice)),
            Event::Delete(slice) => Touched::Services(self.endpoints.remove(&slice)),
            Event::Init => {
                self.relisted_endpoints = Some(EndpointIndex::default());
                Touched::Services(Vec::new())
            }
            Event::InitApply(slice) => {
                self.relisted_endpoints.get_or_insert_default().apply(&slice);
                Touched::Services(Vec::new())
            }
            Event::InitDone => {
                self.endpoints = self.relisted_endpoints.take().unwrap_or_default();
                self.synced.endpoint_slices = true;
                Touched::Everything
            }
        }
    }

    /// Takes an event of the watch of one Service's EndpointSlices; true when that Service's
    /// summary may have changed. A relist replaces that Service's slices when it is complete.
    pub fn take_service_slices(&mut self, service: &ServiceKey, event: Event<EndpointSlice>) -> bool {
        match event {
            Event::Apply(slice) => !self.endpoints.apply(&slice).is_empty(),
            Event::Delete(slice) => !self.endpoints.remove(&slice).is_empty(),
            Event::Init => {
                self.relisted_service_slices.insert(service.clone(), Vec::new());
                false
            }
            Event::InitApply(slice) => {
                self.relisted_service_slices.entry(service.clone()).or_default().push(slice);
                false
            }
            Event::InitDone => {
                let listed = self.relisted_service_slices.remove(service).unwrap_or_default();
                let before = self.endpoints.summary(&service.namespace, &service.name);
                self.endpoints.forget_service(&service.namespace, &service.name);
                for slice in &listed {
                    self.endpoints.apply(slice);
                }
                before != self.endpoints.summary(&service.namespace, &service.name)
            }
        }
    }

    /// Forgets a Service whose slices are no longer watched.
    pub fn forget_service(&mut self, service: &ServiceKey) {
        self.relisted_service_slices.remove(service);
        self.endpoints.forget_service(&service.namespace, &service.name);
    }

    /// Takes an L2Advertisement event; true when the advertisements changed.
    pub fn take_advertisement(&mut self, event: Event<L2Advertisement>) -> bool {
        let changed = match event {
            Event::Apply(advertisement) => {
                let name = advertisement.name_any();
                let spec = advertisement.spec;
                self.advertisement_specs.get(&name) != Some(&spec) && {
                    self.advertisement_specs.insert(name, spec);
                    true
                }
            }
            Event::Delete(advertisement) => self.advertisement_specs.remove(&advertisement.name_any()).is_some(),
            Event::Init => {
                self.relisted_advertisements = Some(BTreeMap::new());
                false
            }
            Event::InitApply(advertisement) => {
                let name = advertisement.name_any();
                self.relisted_advertisements.get_or_insert_default().insert(name, advertisement.spec);
                false
            }
            Event::InitDone => {
                let listed = self.relisted_advertisements.take().unwrap_or_default();
                self.synced.advertisements = true;
                let changed = listed != self.advertisement_specs;
                self.advertisement_specs = listed;
                changed
            }
        };
        if changed {
            self.advertisements = Advertisements::new(self.advertisement_specs.values());
            self.advertisements_version += 1;
        }
        changed
    }
}

#[cfg(test)]
mod tests;
