//! The speaker's state and its pure steps: every input goes in through an `on_*` method, and
//! what the node must do comes out as [`Effect`]s (answer on the wire, post an Event, publish
//! conflicts, follow a Service's EndpointSlices, say it is ready), which the driver
//! ([`super::run`]) executes. Nothing here holds a client, a socket or a clock (`now` is passed
//! in); what the wire already answers for is read through [`Wire`]. So every rule of the loop is
//! tested by feeding it watch events and claims (`tests.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ironlb_core::announcer::PublishedConflict;
use ironlb_core::announcer::endpoints::ServiceKey;
use ironlb_core::events::{Note, reason};
use ironlb_core::v1alpha1::{IPAddressPool, IPAllocationSlice, L2Advertisement};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;
use tokio::time::Instant;

use super::Settings;
use crate::conflicts::{Claimed, Conflicts, FORGET_AFTER, RECHECK};
use crate::decide::{AnnouncedService, ClusterView, Decision};
use crate::packet::MacAddress;
use crate::probes::{ByInterface, Probes, RETRY_IN_USE};
use crate::responder::{Claim, Responder};
use crate::telemetry::Metrics;

/// How long changes are gathered before one decision: a burst of watch events (a relist, a
/// pool status write touching many allocations) costs one decision, at a delay no failover notices.
pub(super) const COALESCE: Duration = Duration::from_millis(20);
/// Changes are coalesced for at least this many times what the last decision cost, so deciding
/// takes at most about a fifth of a core however fast the record changes (a burst of thousands of
/// new Services is a few decisions, not thousands). A Lease expiry is not delayed by it.
pub(super) const COST_FACTOR: u32 = 4;

/// What the steps read of the wire: which addresses it answers for, and with which MACs.
pub(crate) trait Wire {
    /// Whether this node answers for `address` on some interface.
    fn owns(&self, address: IpAddr) -> bool;
    /// Whether `mac` is one this node answers with (a claim from it is our own frame).
    fn is_own_mac(&self, mac: MacAddress) -> bool;
}

impl Wire for Responder {
    fn owns(&self, address: IpAddr) -> bool {
        Responder::owns(self, address)
    }

    fn is_own_mac(&self, mac: MacAddress) -> bool {
        self.macs().any(|own| own == mac)
    }
}

/// What the node must do, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Make the wire answer for `answer` and probe for `probe` (address → interfaces), on the
    /// node's current interfaces.
    Answer { answer: ByInterface, probe: ByInterface },
    /// Stop answering for an address at once: a peer announces it.
    Release(IpAddr),
    /// Probe once more for an address in conflict: is the other host still there?
    Recheck(IpAddr),
    /// Post an Event on a Service; `about` is the address it concerns (the Event budget limits
    /// Events per address).
    Post { service: ServiceKey, note: Note, about: Option<IpAddr> },
    /// The conflicts this node knows changed: publish them on its Lease.
    PublishConflicts(Vec<PublishedConflict>),
    /// Start watching the EndpointSlices of these `Local` Services, stop watching those.
    Follow { start: Vec<ServiceKey>, stop: Vec<ServiceKey> },
    /// Readiness changed (or was judged again).
    SetReady(bool),
}

/// One watch event, as the driver hands it in.
pub(crate) enum Watched {
    /// A pool (boxed: a pool event is several times the size of the others).
    Pool(Box<Event<IPAddressPool>>),
    /// A slice of the allocation record.
    AllocationSlice(Event<IPAllocationSlice>),
    Advertisement(Event<L2Advertisement>),
    Lease(Event<Lease>),
    Slices(ServiceKey, Event<EndpointSlice>),
}

/// The speaker's state. Feed it with the `on_*` methods; execute what they return.
#[derive(Debug)]
pub(crate) struct SpeakerState {
    settings: Settings,
    metrics: Metrics,
    view: ClusterView,
    /// The last decision acted on.
    current: Decision,
    /// When the next decision is due: set by a relevant change (plus [`COALESCE`]) and by
    /// probes finding an address in use. Lease expiries and probe ends are added in
    /// [`Self::next_wake`].
    due: Option<Instant>,
    /// What the last decision cost (measured, not simulated: it only spaces decisions out).
    last_cost: Duration,
    outage: Outage,
    conflicts: Conflicts,
    probes: Probes,
    /// What was last published of `conflicts` and `probes`.
    published: Vec<PublishedConflict>,
    /// The Services this node answers for, as last posted in an Announcing Event.
    announced: BTreeMap<ServiceKey, AnnouncedService>,
    /// The `Local` Services whose EndpointSlices are followed.
    followed: BTreeSet<ServiceKey>,
    /// When this node's own Lease was last renewed (`None`: not yet).
    renewed: Option<Instant>,
    /// Shutting down: the Lease is gone, the node yields every address to a peer announcing it.
    stopping: bool,
}

impl SpeakerState {
    pub(crate) fn new(settings: Settings, metrics: Metrics) -> Self {
        Self {
            view: ClusterView::new(&settings.node_name),
            settings,
            metrics,
            current: Decision::default(),
            due: None,
            last_cost: Duration::ZERO,
            outage: Outage::default(),
            conflicts: Conflicts::default(),
            probes: Probes::default(),
            published: Vec::new(),
            announced: BTreeMap::new(),
            followed: BTreeSet::new(),
            renewed: None,
            stopping: false,
        }
    }

    /// A watch event. A change that can move a decision schedules one, [`COALESCE`] later;
    /// a renewal of a live peer's Lease is no such change.
    pub(crate) fn on_watched(&mut self, watched: Watched, now: Instant) {
        let inputs = &mut self.view.inputs;
        let relevant = match watched {
            Watched::Pool(event) => apply_pool(&mut self.view, *event),
            Watched::AllocationSlice(event) => apply_allocation_slice(&mut self.view, event),
            Watched::Advertisement(event) => inputs.take_advertisement(event),
            Watched::Lease(event) => inputs.take_lease(event, now.into_std()),
            Watched::Slices(service, event) => inputs.take_service_slices(&service, event),
        };
        if relevant {
            self.soon(now);
        }
    }

    /// The node's interfaces changed.
    pub(crate) fn on_interfaces_changed(&mut self, now: Instant) {
        self.soon(now);
    }

    /// This node's Lease was renewed (`at`), or has not been yet.
    pub(crate) fn on_renewed(&mut self, at: Option<Instant>) -> Vec<Effect> {
        self.renewed = at;
        vec![Effect::SetReady(self.view.synced() && at.is_some())]
    }

    /// The node is shutting down and its Lease is deleted: from now on it yields each address to
    /// the peer heard announcing it.
    pub(crate) fn on_stopping(&mut self) -> Vec<Effect> {
        self.stopping = true;
        vec![Effect::SetReady(false)]
    }

    /// When the loop must call [`Self::on_wake`] next, if nothing else happens.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let expiry = self.view.inputs.next_expiry().map(Instant::from_std);
        [self.due, expiry, self.probes.next_deadline()].into_iter().flatten().min()
    }

    /// When [`Self::on_conflict_tick`] has something to do.
    pub(crate) fn next_conflict_tick(&self) -> Option<Instant> {
        self.conflicts.next_deadline()
    }

    /// Time to decide (or to look whether to): what this node answers for, from the view.
    ///
    /// Nothing is decided before every watch has listed once, nor while the view is stale
    /// ([`Outage`]); otherwise the decision is split into what to answer for and what to probe
    /// for first, an Announcing Event is posted for each Service this node now answers for in
    /// full (once per change), and the EndpointSlices of the `Local` Services are followed.
    pub(crate) fn on_wake(&mut self, now: Instant, wire: &impl Wire) -> Vec<Effect> {
        self.due = None;
        if !self.view.synced() {
            return Vec::new();
        }
        match self.outage.gate(self.view_is_current(now), self.settings.lease.duration, now) {
            Gate::Decide => {}
            Gate::Wait(hold) => {
                self.due = hold;
                return Vec::new();
            }
        }
        let started = std::time::Instant::now();
        let decision = self.view.decide(&self.settings.node_name, now.into_std());
        self.last_cost = started.elapsed();
        let (answer, probe) = self.probes.split(&decision.owned, &mut self.view, |address| wire.owns(address), now);
        let mut effects = Vec::new();
        self.publish(&mut effects);
        if !probe.is_empty() {
            tracing::info!(addresses = ?probe.keys().collect::<Vec<_>>(), "probing new addresses before announcing them");
        }
        // An Announcing Event for each Service this node now answers for (every address, past its probe).
        let answered: BTreeMap<ServiceKey, AnnouncedService> = decision
            .services
            .iter()
            .filter(|(_, service)| service.addresses.iter().all(|address| answer.contains_key(address)))
            .map(|(key, service)| (key.clone(), service.clone()))
            .collect();
        effects.push(Effect::Answer { answer, probe });
        for (service, now_announced) in &answered {
            if self.announced.get(service) != Some(now_announced) {
                self.metrics.announcer_changed();
                effects.push(self.announcing(service, now_announced));
            }
        }
        self.announced = answered;
        if decision.owned != self.current.owned {
            tracing::info!(owned = decision.owned.len(), unannounced = decision.unannounced, "decision changed");
        }
        self.current = decision;
        self.follow_local_services(&mut effects);
        effects.push(Effect::SetReady(self.renewed.is_some()));
        effects
    }

    /// Another host claimed an address this node answers for or probes for (see [`Claim`]).
    ///
    /// - A foreign host answering a probe: the address is in use and is not announced (see
    ///   [`crate::probes`]); an `AddressInUse` Warning on the Services holding it, and a
    ///   decision at once without it.
    /// - A peer speaker (its MAC is on its Lease): while this node is cut off or shutting down,
    ///   the peer was chosen by views fresher than ours, so this node stops answering for the
    ///   address at once — no lasting split brain. Otherwise both views converge within a watch
    ///   delivery, and the claim is only logged.
    /// - A foreign host: an address conflict. Counted, and when it is news (see [`Conflicts`])
    ///   logged and reported as a Warning Event on the Services holding the address; kept and
    ///   re-checked while it lasts. This node keeps answering as before, without floods: fighting
    ///   another host's ARP only makes every client's cache flip between the two.
    pub(crate) fn on_claim(&mut self, claim: Claim, now: Instant, wire: &impl Wire) -> Vec<Effect> {
        let mut effects = Vec::new();
        if wire.is_own_mac(claim.mac) {
            return effects;
        }
        let yield_to_peers = self.stopping || !self.view_is_current(now);
        let mac = claim.mac.to_string();
        let peer = self.view.inputs.peers().node_with_mac(&mac).map(str::to_owned);
        let node = &self.settings.node_name;
        if peer.is_none() && self.probes.is_probing(claim.address) {
            self.probes.found_in_use(claim.address, claim.mac, &claim.interface, now);
            self.metrics.conflict();
            tracing::warn!(address = %claim.address, %mac, interface = %claim.interface,
                "a probe found the address in use by a host that is not an ironlb speaker: not announcing it");
            let message = format!(
                "{} is already in use on the LAN by {mac} (seen on {} of node {node}), a host that is not an ironlb \
                 speaker: ironlb does not announce it and probes again every {}s; remove the address from that \
                 host or from the pool",
                claim.address,
                claim.interface,
                RETRY_IN_USE.as_secs()
            );
            self.post_to_holders(&mut effects, claim.address, &Note::warning(reason::ADDRESS_IN_USE, message));
            // Decide again without it.
            self.due = Some(now);
            self.publish(&mut effects);
            return effects;
        }
        match peer.as_deref() {
            Some(peer) if peer == node => {}
            Some(peer) if claim.probe => {
                tracing::debug!(address = %claim.address, %peer, "a peer probed for an address this node announces");
            }
            Some(peer) if yield_to_peers => {
                tracing::info!(address = %claim.address, %peer, %mac, "yielding the address to the peer announcing it");
                effects.push(Effect::Release(claim.address));
                self.metrics.yielded();
            }
            Some(peer) => {
                tracing::debug!(address = %claim.address, %peer, "a peer announces an address this node announces too; views converge");
            }
            None => {
                self.metrics.conflict();
                if self.conflicts.claim(claim.address, claim.mac, &claim.interface, now) != Claimed::Known {
                    // One host, or "several hosts (a, b …)" once a second one shows: a flapping
                    // MAC is one conflict, reported twice at most.
                    let by = self.conflicts.get(claim.address).map_or_else(|| mac.clone(), |c| c.claimed_by());
                    tracing::warn!(address = %claim.address, claimed_by = %by, interface = %claim.interface, probe = claim.probe,
                        "a host that is not an ironlb speaker claims an address this node announces");
                    let message = format!(
                        "{} is also claimed by {by} on {} of node {node}, a host that is not an ironlb speaker; ironlb \
                         keeps answering and does not fight it: remove the address from that host or from the pool",
                        claim.address, claim.interface
                    );
                    self.post_to_holders(
                        &mut effects,
                        claim.address,
                        &Note::warning(reason::ADDRESS_CONFLICT, message),
                    );
                }
            }
        }
        self.publish(&mut effects);
        effects
    }

    /// Time for the conflicts' re-checks and endings ([`Self::next_conflict_tick`]).
    pub(crate) fn on_conflict_tick(&mut self, now: Instant, wire: &impl Wire) -> Vec<Effect> {
        let (recheck, ended) = self.conflicts.tick(now, |address| wire.owns(address));
        let mut effects: Vec<Effect> = recheck.into_iter().map(Effect::Recheck).collect();
        for (address, conflict) in ended {
            tracing::info!(%address, mac = %conflict.mac, "the address conflict is over: the other host no longer answers for it");
            let message = format!(
                "{address} is no longer claimed by {}: that host did not answer {} re-checks",
                conflict.claimed_by(),
                FORGET_AFTER.as_secs() / RECHECK.as_secs()
            );
            self.post_to_holders(&mut effects, address, &Note::normal(reason::ADDRESS_CONFLICT_RESOLVED, message));
        }
        self.publish(&mut effects);
        effects
    }

    fn soon(&mut self, now: Instant) {
        self.due.get_or_insert(now + COALESCE.max(self.last_cost * COST_FACTOR));
    }

    /// Whether this speaker's view of its peers can be trusted: its own Lease was renewed within
    /// its duration, and its own renewals reach it through the Lease watch (so the peers' do
    /// too).
    ///
    /// Without renewals the API server is out of reach; without its own renewals coming back,
    /// the watch is down or lagging (a watch reconnects with back-off, within about 2 s of the
    /// API server answering again: [`ironlb_daemon::WatchBackoff`]) and every peer would look
    /// dead. Either way the view is stale and must not be acted on.
    fn view_is_current(&self, now: Instant) -> bool {
        let renewing = self.renewed.is_none_or(|at| now.saturating_duration_since(at) <= self.settings.lease.duration);
        renewing && self.view.inputs.peers().is_live(&self.settings.node_name, now.into_std())
    }

    /// An Event on each Service of the current decision that holds `address`.
    fn post_to_holders(&self, effects: &mut Vec<Effect>, address: IpAddr, note: &Note) {
        let holders = self.current.services.iter().filter(|(_, service)| service.addresses.contains(&address));
        effects.extend(holders.map(|(service, _)| Effect::Post {
            service: service.clone(),
            note: note.clone(),
            about: Some(address),
        }));
    }

    fn announcing(&self, service: &ServiceKey, announced: &AnnouncedService) -> Effect {
        let addresses: Vec<String> = announced.addresses.iter().map(ToString::to_string).collect();
        let message = format!(
            "{} announced by node {} on {}",
            addresses.join(", "),
            self.settings.node_name,
            announced.interface
        );
        Effect::Post { service: service.clone(), note: Note::normal(reason::ANNOUNCING, message), about: None }
    }

    /// Publishes the conflicts this node knows, when they changed: the ones it announces through
    /// ([`Conflicts`]) and the addresses its probes found in use ([`Probes`]).
    fn publish(&mut self, effects: &mut Vec<Effect>) {
        let mut known: Vec<PublishedConflict> = self.conflicts.published().chain(self.probes.published()).collect();
        known.sort();
        if known != self.published {
            self.published.clone_from(&known);
            effects.push(Effect::PublishConflicts(known));
        }
    }

    /// Follows the EndpointSlices of each `Local` Service holding addresses, and forgets those
    /// of Services that no longer are.
    fn follow_local_services(&mut self, effects: &mut Vec<Effect>) {
        let wanted = self.view.local_services();
        let stop: Vec<ServiceKey> = self.followed.difference(&wanted).cloned().collect();
        let start: Vec<ServiceKey> = wanted.difference(&self.followed).cloned().collect();
        if start.is_empty() && stop.is_empty() {
            return;
        }
        for service in &stop {
            self.view.inputs.forget_service(service);
        }
        self.followed = wanted;
        effects.push(Effect::Follow { start, stop });
    }
}

fn apply_pool(view: &mut ClusterView, event: Event<IPAddressPool>) -> bool {
    match event {
        Event::Apply(pool) | Event::InitApply(pool) => view.set_pool(&pool),
        Event::Delete(pool) => pool.metadata.name.as_deref().is_some_and(|name| view.remove_pool(name)),
        Event::Init => {
            view.clear_pools();
            false
        }
        Event::InitDone => {
            view.pools_listed();
            true
        }
    }
}

fn apply_allocation_slice(view: &mut ClusterView, event: Event<IPAllocationSlice>) -> bool {
    match event {
        Event::Apply(slice) | Event::InitApply(slice) => view.set_slice(&slice),
        Event::Delete(slice) => slice.metadata.name.as_deref().is_some_and(|name| view.remove_slice(name)),
        Event::Init => {
            view.clear_slices();
            false
        }
        Event::InitDone => {
            view.slices_listed();
            true
        }
    }
}

/// Whether to decide now.
#[derive(Debug)]
enum Gate {
    Decide,
    /// Keep the last decision; decide again at the instant given, if any.
    Wait(Option<Instant>),
}

/// Where this speaker stands with its own view: current, stale (cut off from the API server, or
/// its Lease watch down), or current again and waiting for its peers' renewals.
#[derive(Debug, Default)]
struct Outage {
    /// The last decision attempt found the view stale.
    stale: bool,
    /// The view is current again; decisions wait until then.
    hold_until: Option<Instant>,
}

impl Outage {
    /// Whether to decide at `now`, given whether the view is current.
    ///
    /// While the view is stale, this node keeps answering what it answered for (the data plane
    /// outlives the control plane), yielding an address only to a peer heard announcing it.
    /// When it is current again, decisions wait one lease duration more: until every live
    /// peer's renewal has arrived too. Deciding at once would act on peers whose renewals are
    /// still on their way, and move addresses that need not move.
    fn gate(&mut self, current: bool, duration: Duration, now: Instant) -> Gate {
        if !current {
            if !self.stale {
                tracing::warn!("this node's view of its peers is stale (no Lease renewals): keeping what it announces");
            }
            self.stale = true;
            self.hold_until = None;
            return Gate::Wait(None);
        }
        if std::mem::take(&mut self.stale) {
            tracing::info!(?duration, "the view is current again; deciding once the peers' renewals are seen");
            self.hold_until = Some(now + duration);
        }
        match self.hold_until {
            Some(until) if now < until => Gate::Wait(Some(until)),
            _ => {
                self.hold_until = None;
                Gate::Decide
            }
        }
    }
}
