//! Who announces each address, as the operator records it in the pool status.
//!
//! # Why the operator decides too
//!
//! Speakers decide by themselves which node announces an address ([`ironlb_core::announcer`]):
//! nothing written here makes a node answer ARP or NDP. The operator runs the very same function
//! for two reasons. It publishes, per listed allocation, the two facts the function needs that a
//! speaker could otherwise only learn by watching every Service and every EndpointSlice of the
//! cluster: `externalTrafficPolicy` and `serving`. And it records the winner (`node`,
//! `interface`), so that `kubectl describe ipaddresspool` shows who answers for each address.
//!
//! # Agreeing with the speakers
//!
//! A speaker knows only what the allocation record lists, so the decision is made from exactly
//! that: the allocations as they will be recorded, with the `serving` and `externalTrafficPolicy`
//! written beside them, each pool's name and labels, the speakers' Leases and the L2Advertisements.
//! Services that share an address are grouped over every pool at once, as speakers group them.
//!
//! # When to decide
//!
//! A decision groups the S listed Services (O(S log S)) and ranks the nodes only for the groups
//! whose Services changed since the last one ([`Winners`]); every group is ranked again when a
//! node or an advertisement changes. For 10,000 listed Services over 100 nodes that is about
//! 30 ms in a release build, against 180 ms ranking everything.
//!
//! [`Announcers`] decides again only when something a decision reads has changed: an
//! allocation, a pool's labels, a listed Service's traffic policy or endpoints *as the decision
//! reads them* (a pod moving between nodes of a `Cluster` Service is no change), a node's
//! liveness or published facts (a Lease renewal is no change), or the L2Advertisements.
//! Bursts are coalesced: one decision per [`MIN_DECISION_INTERVAL`] at most, stretched to
//! [`COST_FACTOR`] times what the last one cost, so deciding never takes more than about a fifth
//! of a core however busy the cluster is. The engine writes a pool's status only when what it
//! renders differs from what the pool holds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ironlb_core::announcer::{
    Advertisements, Announcement, AnnouncerInputs, EndpointIndex, Labels, NodeFacts, PoolFacts, ServiceFacts,
    announcements, service_interface,
};
use ironlb_core::v1alpha1::{Allocation, TRAFFIC_POLICY_LOCAL};

use super::listing::Listing;
use crate::allocator::{Allocator, ServiceKey};

#[cfg(test)]
mod agreement;
#[cfg(test)]
mod tests;

/// The least time between two decisions: changes arriving closer together are decided at once.
pub(crate) const MIN_DECISION_INTERVAL: Duration = Duration::from_millis(100);
/// The interval between decisions is at least this many times what the last decision cost.
pub(crate) const COST_FACTOR: u32 = 4;

/// One pool as a decision reads it besides its allocations (which the allocator holds).
pub(crate) struct PoolInput {
    /// The pool's name.
    pub(crate) name: String,
    /// The IPAddressPool's labels, matched by `L2Advertisement.spec.ipAddressPoolSelectors`.
    pub(crate) labels: Labels,
}

/// The endpoint facts of one listed Service as a decision read them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct EndpointFacts {
    serving: bool,
    /// The nodes with a serving endpoint; read (so `Some`) only under `externalTrafficPolicy: Local`.
    local_nodes: Option<BTreeSet<String>>,
}

impl EndpointFacts {
    fn read(key: &ServiceKey, local: bool, endpoints: &EndpointIndex) -> Self {
        let summary = endpoints.summary(&key.namespace, &key.name);
        Self { serving: summary.serving, local_nodes: local.then_some(summary.nodes) }
    }
}

/// The outcome of one decision: every pool's listing.
#[derive(Debug, Default)]
pub(crate) struct Listings {
    /// Per pool known to the allocator, what its status lists.
    pub(crate) listings: BTreeMap<String, Listing>,
    /// Per listed Service, the endpoint facts read.
    endpoint_facts: HashMap<ServiceKey, EndpointFacts>,
}

/// Lists every pool's allocations and records who announces them: the pure core, with no I/O
/// and no clock of its own: `nodes` are the speakers' nodes, liveness judged. `is_local` says whether a
/// Service's `spec.externalTrafficPolicy` is `Local`. `winners` remembers the winners between
/// calls; it changes how long a call takes, never its result.
pub(crate) fn decide_listings(
    allocator: &Allocator,
    pools: impl IntoIterator<Item = PoolInput>,
    is_local: impl Fn(&ServiceKey) -> bool,
    inputs: &AnnouncerInputs,
    nodes: Vec<NodeFacts>,
    winners: &mut Winners,
) -> Listings {
    let endpoints = inputs.endpoints();
    let mut listings: Vec<(String, Listing)> = Vec::new();
    let mut endpoint_facts = HashMap::new();
    // One entry per listed allocation, and where that allocation sits in `listings`.
    let mut services: Vec<ServiceFacts> = Vec::new();
    let mut origin: Vec<(usize, usize)> = Vec::new();
    for input in pools {
        let Some(view) = allocator.pool(&input.name) else { continue };
        let pool = PoolFacts { name: input.name, labels: input.labels };
        let mut listing = Listing::default();
        for (key, assignment) in view.allocations() {
            let facts = EndpointFacts::read(key, is_local(key), endpoints);
            let allocation = Allocation {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                ips: assignment.addresses.iter().map(ToString::to_string).collect(),
                external_traffic_policy: facts.local_nodes.is_some().then(|| TRAFFIC_POLICY_LOCAL.to_owned()),
                serving: facts.serving,
                node: None,
                interface: None,
                in_use: Vec::new(),
            };
            // Built from the allocation as written, and patched from the slices, as a speaker
            // builds it from what it reads.
            let mut service = ServiceFacts::from_allocation(&pool, &allocation);
            inputs.patch_local_endpoints(&mut service);
            origin.push((listings.len(), listing.allocations.len()));
            services.push(service);
            listing.allocations.push(allocation);
            endpoint_facts.insert(key.clone(), facts);
        }
        listings.push((pool.name, listing));
    }

    let position: HashMap<(&str, &str), usize> =
        services.iter().enumerate().map(|(index, s)| ((s.namespace.as_str(), s.name.as_str()), index)).collect();
    winners.begin(nodes, inputs.advertisements_version());
    for announcement in announcements(&services) {
        let Some(winner) = winners.winner(&announcement, inputs.advertisements()) else { continue };
        for service in announcement.services() {
            let Some(&index) = position.get(&(service.namespace.as_str(), service.name.as_str())) else { continue };
            // A node is recorded for a Service only when it answers for every one of its
            // addresses: a Service without endpoints that shares one address with a served
            // Service has its other addresses unannounced, and the record must not say otherwise.
            if !service.addresses.iter().all(|address| winner.interfaces.contains_key(address)) {
                continue;
            }
            let Some(interface) = service_interface(&service.addresses, &winner.interfaces) else { continue };
            let (pool, entry) = origin[index];
            let allocation = &mut listings[pool].1.allocations[entry];
            allocation.node = Some(winner.node.clone());
            allocation.interface = Some(interface.to_owned());
        }
    }
    winners.end();
    Listings { listings: listings.into_iter().collect(), endpoint_facts }
}

/// The winners of the last decision, so the next one ranks nodes only for what changed.
///
/// Ranking the nodes is what a decision spends its time on (a score per node and announcement:
/// about 100 ms for 10,000 Services and 100 nodes), and most decisions follow a change to a few
/// Services. A winner depends only on the announcement's Services, the nodes and the
/// advertisements, so it is reused while those are equal, and everything is ranked again when
/// a node or an advertisement changes.
#[derive(Debug, Default)]
pub(crate) struct Winners {
    /// The nodes (liveness judged) and the advertisements' version the winners were picked with.
    nodes: Vec<NodeFacts>,
    advertisements: u64,
    /// By announcement key: the winners of the last decision, then of the one in progress.
    previous: HashMap<IpAddr, Remembered>,
    current: HashMap<IpAddr, Remembered>,
}

#[derive(Debug)]
struct Remembered {
    services: Vec<ServiceFacts>,
    winner: Option<Picked>,
}

/// A winner, owned: the node, and the first interface it answers on for each address.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Picked {
    node: String,
    interfaces: BTreeMap<IpAddr, String>,
}

impl Winners {
    /// Starts a decision among `nodes`.
    fn begin(&mut self, nodes: Vec<NodeFacts>, advertisements: u64) {
        self.previous = std::mem::take(&mut self.current);
        if nodes != self.nodes || advertisements != self.advertisements {
            self.previous.clear();
            self.nodes = nodes;
            self.advertisements = advertisements;
        }
    }

    /// The winner of `announcement`, remembered or picked now.
    fn winner(&mut self, announcement: &Announcement<'_>, advertisements: &Advertisements) -> Option<&Picked> {
        let key = announcement.key();
        let services = announcement.services();
        let remembered = match self.previous.remove(&key) {
            Some(remembered)
                if remembered.services.len() == services.len()
                    && remembered.services.iter().zip(services).all(|(was, is)| was == *is) =>
            {
                remembered
            }
            _ => {
                let winner = announcement.winner(&self.nodes, advertisements).map(|winner| Picked {
                    node: winner.node.to_owned(),
                    interfaces: winner
                        .first_interfaces()
                        .into_iter()
                        .map(|(address, interface)| (address, interface.to_owned()))
                        .collect(),
                });
                Remembered { services: services.iter().map(|&service| service.clone()).collect(), winner }
            }
        };
        self.current.insert(key, remembered);
        self.current.get(&key).and_then(|remembered| remembered.winner.as_ref())
    }

    /// Ends a decision: what it did not ask about is forgotten.
    fn end(&mut self) {
        self.previous.clear();
    }
}

/// What one decision changed in one pool, for the engine's writes and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PoolReport {
    /// The pool.
    pub(crate) pool: String,
    /// Its listing differs from the one before: its status must be written.
    pub(crate) changed: bool,
    /// Listed addresses with an announcing node.
    pub(crate) announced: usize,
    /// Listed addresses no node announces.
    pub(crate) not_announced: usize,
    /// Addresses listed before and now whose announcing node changed (moved, gained or lost).
    pub(crate) moved: usize,
}

/// The leader's record of the last decision, and when the next one is due.
#[derive(Debug)]
pub(crate) struct Announcers {
    /// Something a decision reads changed since the last one.
    stale: bool,
    last_decided: Option<Instant>,
    last_cost: Duration,
    decision: Listings,
    /// The labels each pool had at the last decision.
    pool_labels: BTreeMap<String, Labels>,
    winners: Winners,
    /// The nodes as the last decision made while the API server was not strained saw them.
    unstrained_nodes: Option<Vec<NodeFacts>>,
    /// Addresses a speaker found in use on the wire, and when one last reported it: recorded
    /// beside their allocation (`inUse`) so the node to announce them probes first, whichever
    /// node that is and however often it restarts.
    in_use: InUse,
}

/// How long an address found in use stays marked so after the last report of it. A speaker's
/// report goes with its Lease (a restart or a failover ends it), so the mark must outlive the
/// report long enough for the next announcer to have probed it; an address nobody found in use
/// for this long has been free and announced.
pub(crate) const IN_USE_MEMORY: Duration = Duration::from_secs(600);

/// The addresses found in use, with when each was last reported.
#[derive(Debug, Default)]
struct InUse {
    last_reported: BTreeMap<IpAddr, Instant>,
}

impl InUse {
    /// Takes the reports at `now` and forgets marks older than [`IN_USE_MEMORY`]. Returns whether
    /// the set of marked addresses changed.
    fn update(&mut self, reported: impl IntoIterator<Item = IpAddr>, now: Instant) -> bool {
        let before: BTreeSet<IpAddr> = self.last_reported.keys().copied().collect();
        for address in reported {
            self.last_reported.insert(address, now);
        }
        self.last_reported.retain(|_, at| now.saturating_duration_since(*at) < IN_USE_MEMORY);
        self.last_reported.keys().copied().collect::<BTreeSet<_>>() != before
    }

    /// When the oldest mark is to be forgotten.
    fn next_expiry(&self) -> Option<Instant> {
        self.last_reported.values().min().map(|at| *at + IN_USE_MEMORY)
    }

    /// Marks each allocation's addresses in use.
    fn mark(&self, allocations: &mut [Allocation]) {
        for allocation in allocations {
            allocation.in_use = allocation
                .ips
                .iter()
                .filter(|ip| ip.parse().is_ok_and(|ip: IpAddr| self.last_reported.contains_key(&ip)))
                .cloned()
                .collect();
        }
    }
}

impl Default for Announcers {
    fn default() -> Self {
        Self::from_written([], Instant::now())
    }
}

impl Announcers {
    /// Starts from what the record holds (the previous leader's decisions, per pool), so the
    /// first decision counts only real changes. Stale: nothing is decided yet.
    /// Addresses it records in use stay marked, as if reported at `now`.
    pub(crate) fn from_written(written: impl IntoIterator<Item = (String, Vec<Allocation>)>, now: Instant) -> Self {
        let listings: BTreeMap<String, Listing> =
            written.into_iter().map(|(pool, allocations)| (pool, Listing { allocations })).collect();
        let mut in_use = InUse::default();
        let recorded = listings.values().flat_map(|l| &l.allocations).flat_map(|a| &a.in_use);
        in_use.update(recorded.filter_map(|ip| ip.parse().ok()), now);
        Self {
            stale: true,
            last_decided: None,
            last_cost: Duration::ZERO,
            decision: Listings { listings, endpoint_facts: HashMap::new() },
            pool_labels: BTreeMap::new(),
            winners: Winners::default(),
            unstrained_nodes: None,
            in_use,
        }
    }

    /// Something a decision reads changed: decide again.
    pub(crate) fn invalidate(&mut self) {
        self.stale = true;
    }

    /// Whether a decision is pending; the listings are not to be written meanwhile.
    pub(crate) fn is_stale(&self) -> bool {
        self.stale
    }

    /// When the pending decision may run, if one is pending and waits for the coalescing
    /// interval; `None` otherwise.
    pub(crate) fn due_at(&self) -> Option<Instant> {
        let last = self.last_decided.filter(|_| self.stale)?;
        Some(last + MIN_DECISION_INTERVAL.max(self.last_cost * COST_FACTOR))
    }

    /// Whether a decision is pending and may run at `now` (also when a mark of an address in use
    /// is to be forgotten).
    pub(crate) fn is_due(&mut self, now: Instant) -> bool {
        if self.in_use.next_expiry().is_some_and(|at| now >= at) {
            self.stale = true;
        }
        self.stale && self.due_at().is_none_or(|at| now >= at)
    }

    /// When a mark of an address in use is to be forgotten (a decision is then due).
    pub(crate) fn next_mark_expiry(&self) -> Option<Instant> {
        self.in_use.next_expiry()
    }

    /// A Service's traffic policy as the Service watch delivered it.
    pub(crate) fn traffic_policy_seen(&mut self, key: &ServiceKey, local: bool) {
        if self.decision.endpoint_facts.get(key).is_some_and(|facts| facts.local_nodes.is_some() != local) {
            self.stale = true;
        }
    }

    /// A Service whose EndpointSlices changed: a change only if it changes what the last decision
    /// read of them.
    pub(crate) fn endpoints_seen(&mut self, key: &ServiceKey, endpoints: &EndpointIndex) {
        if let Some(facts) = self.decision.endpoint_facts.get(key)
            && EndpointFacts::read(key, facts.local_nodes.is_some(), endpoints) != *facts
        {
            self.stale = true;
        }
    }

    /// A pool's labels as the pool watch delivered them. A pool never decided on is left to the
    /// allocation change that lists its first Service.
    pub(crate) fn pool_labels_seen(&mut self, pool: &str, labels: &Labels) {
        if self.pool_labels.get(pool).is_some_and(|decided| decided != labels) {
            self.stale = true;
        }
    }

    /// What a pool's status lists, as last decided.
    pub(crate) fn listing(&self, pool: &str) -> Option<&Listing> {
        self.decision.listings.get(pool)
    }

    /// Decides again (see [`decide`]) and reports, per pool, what changed. `now` is when the
    /// decision starts (the engine's clock): its cost stretches the interval to the next one.
    /// `strained`: the API server is failing or slow, so Leases that stopped being renewed may
    /// only mean renewals that did not get through: who announces is decided with the nodes as
    /// the last decision before the strain saw them (new allocations still get announcers), and
    /// is rewritten from current liveness once the strain is over.
    pub(crate) fn decide(
        &mut self,
        allocator: &Allocator,
        pools: impl IntoIterator<Item = PoolInput>,
        is_local: impl Fn(&ServiceKey) -> bool,
        inputs: &AnnouncerInputs,
        now: Instant,
        strained: bool,
    ) -> Vec<PoolReport> {
        let pools: Vec<PoolInput> = pools.into_iter().collect();
        self.pool_labels = pools.iter().map(|pool| (pool.name.clone(), pool.labels.clone())).collect();
        let nodes = match &self.unstrained_nodes {
            Some(nodes) if strained => nodes.clone(),
            _ => inputs.nodes(now),
        };
        if !strained {
            self.unstrained_nodes = Some(nodes.clone());
        }
        let mut decision = decide_listings(allocator, pools, is_local, inputs, nodes, &mut self.winners);
        let reported =
            inputs.conflicts(now).into_iter().filter(|(_, c)| c.in_use).filter_map(|(_, c)| c.address.parse().ok());
        self.in_use.update(reported, now);
        for listing in decision.listings.values_mut() {
            self.in_use.mark(&mut listing.allocations);
        }
        let reports = decision
            .listings
            .iter()
            .map(|(pool, listing)| {
                let before = self.decision.listings.get(pool);
                let changed = before != Some(listing);
                let mut report = PoolReport {
                    pool: pool.clone(),
                    changed,
                    moved: match before {
                        Some(before) if changed => moved(&before.allocations, &listing.allocations),
                        _ => 0,
                    },
                    ..PoolReport::default()
                };
                for allocation in &listing.allocations {
                    let count = allocation.ips.len();
                    if allocation.node.is_some() {
                        report.announced += count;
                    } else {
                        report.not_announced += count;
                    }
                }
                report
            })
            .collect();
        self.decision = decision;
        self.stale = false;
        self.last_decided = Some(now);
        self.last_cost = now.elapsed();
        reports
    }
}

/// The addresses listed in both `before` and `after` (by Service and address) whose recorded
/// node differs.
fn moved(before: &[Allocation], after: &[Allocation]) -> usize {
    let before: HashMap<_, _> = per_address(before).collect();
    per_address(after).filter(|(address, node)| before.get(address).is_some_and(|was| was != node)).count()
}

/// Every listed address, keyed by Service and address, with its recorded node.
fn per_address(allocations: &[Allocation]) -> impl Iterator<Item = ((&str, &str, &str), Option<&str>)> {
    allocations.iter().flat_map(|a| {
        a.ips.iter().map(move |ip| ((a.namespace.as_str(), a.name.as_str(), ip.as_str()), a.node.as_deref()))
    })
}
