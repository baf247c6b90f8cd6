//! What the announcer decides from besides the allocations — the speakers' node Leases, the
//! EndpointSlices and the L2Advertisements — reduced as the watches deliver them.
//!
//! Every replica keeps these warm, like its other caches, so that a new leader decides at once.
//! Only the reductions are kept, never the objects: per node, its published facts and when its
//! Lease expires ([`Peers`]); per Service, whether it serves and on which nodes
//! ([`EndpointIndex`]); the advertisements' specs. A relist (a restarted watch) takes effect in
//! one step once it is complete, so a decision never sees half a list: half the EndpointSlices
//! would make Services look unserved, and the status would tell the speakers to stop announcing
//! them.
//!
//! Each `take_*` says whether the leader must decide again, so that what happens all the time
//! without changing any outcome costs nothing: a Lease renewal that changes neither the node's
//! liveness nor its facts is no change.

use std::collections::BTreeMap;
use std::time::Instant;

use ironlb_crds::announcer::peers::lease_node;
use ironlb_crds::announcer::{Advertisements, EndpointIndex, NodeFacts, Peers, PublishedConflict, PublishedNode};
use ironlb_crds::v1alpha1::{L2Advertisement, L2AdvertisementSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::allocator::ServiceKey;

/// Which Services a watch event may have changed for the announcer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Touched {
    /// These Services (perhaps none).
    Services(Vec<ServiceKey>),
    /// Possibly any: a relist replaced everything.
    Everything,
}

/// The announcer's inputs as this replica's watches delivered them.
#[derive(Debug, Default)]
pub(crate) struct AnnouncerInputs {
    peers: Peers,
    endpoints: EndpointIndex,
    advertisement_specs: BTreeMap<String, L2AdvertisementSpec>,
    advertisements: Advertisements,
    /// Counts the changes of `advertisements`, to tell whether decisions made with them hold.
    advertisements_version: u64,
    /// A relist in progress, per watch: applied when it is complete.
    relisted_leases: Option<Vec<Lease>>,
    relisted_endpoints: Option<EndpointIndex>,
    relisted_advertisements: Option<BTreeMap<String, L2AdvertisementSpec>>,
    /// The next instant a live node stops being live.
    next_expiry: Option<Instant>,
    /// Leases, EndpointSlices, L2Advertisements: each has had its first full list.
    synced: [bool; 3],
}

impl AnnouncerInputs {
    /// Whether every watch has delivered its first full list. Before that a decision would see
    /// Services without endpoints and nodes without Leases.
    pub(crate) fn synced(&self) -> bool {
        self.synced.iter().all(|synced| *synced)
    }

    /// The speakers' nodes, liveness judged at `now`.
    pub(crate) fn nodes(&self, now: Instant) -> Vec<NodeFacts> {
        self.peers.node_facts(now)
    }

    /// The address conflicts live speakers report, each with its node, sorted.
    pub(crate) fn conflicts(&self, now: Instant) -> Vec<(String, PublishedConflict)> {
        let mut reported: Vec<(String, PublishedConflict)> =
            self.peers.conflicts(now).into_iter().map(|(node, conflict)| (node.to_owned(), conflict.clone())).collect();
        reported.sort();
        reported
    }

    /// Every Service's endpoints, reduced.
    pub(crate) fn endpoints(&self) -> &EndpointIndex {
        &self.endpoints
    }

    /// The L2Advertisements, compiled.
    pub(crate) fn advertisements(&self) -> &Advertisements {
        &self.advertisements
    }

    /// A number that changes whenever the L2Advertisements do.
    pub(crate) fn advertisements_version(&self) -> u64 {
        self.advertisements_version
    }

    /// When a live node will stop being live: an expiry is the absence of an event, so the
    /// engine wakes up for it.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.next_expiry
    }

    /// Whether a node's Lease has expired since the last call (the engine asks on every turn).
    pub(crate) fn expired(&mut self, now: Instant) -> bool {
        if self.next_expiry.is_some_and(|at| at <= now) {
            self.next_expiry = self.peers.next_expiry(now);
            return true;
        }
        false
    }

    /// Takes a speaker Lease event seen at `now`; true when a node's liveness or facts changed.
    pub(crate) fn take_lease(&mut self, event: Event<Lease>, now: Instant) -> bool {
        let changed = match event {
            Event::Apply(lease) => {
                let Some(node) = lease_node(&lease).map(str::to_owned) else { return false };
                let before = self.live_facts(&node, now).cloned();
                self.peers.observe(&lease, now);
                before.as_ref() != self.live_facts(&node, now)
            }
            Event::Delete(lease) => {
                let was_live = lease_node(&lease).is_some_and(|node| self.peers.is_live(node, now));
                self.peers.forget(&lease);
                was_live
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
                self.synced[0] = true;
                before != self.peers.node_facts(now)
            }
        };
        self.next_expiry = self.peers.next_expiry(now);
        changed
    }

    /// Takes an EndpointSlice event: the Services whose summary may have changed.
    pub(crate) fn take_endpoint_slice(&mut self, event: Event<EndpointSlice>) -> Touched {
        let keys = Touched::Services;
        match event {
            Event::Apply(slice) => keys(self.endpoints.apply(&slice)),
            Event::Delete(slice) => keys(self.endpoints.remove(&slice)),
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
                self.synced[1] = true;
                Touched::Everything
            }
        }
    }

    /// Takes an L2Advertisement event; true when the advertisements changed.
    pub(crate) fn take_advertisement(&mut self, event: Event<L2Advertisement>) -> bool {
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
                self.synced[2] = true;
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

    /// A node's published facts while its Lease is live; a node that is not live is eligible for
    /// nothing, so its facts do not matter.
    fn live_facts(&self, node: &str, now: Instant) -> Option<&PublishedNode> {
        self.peers.is_live(node, now).then(|| self.peers.get(node).map(|peer| &peer.facts)).flatten()
    }
}
