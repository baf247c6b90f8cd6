//! The speaker's loop: watch, decide, answer.
//!
//! ```text
//! watches (pools, L2Advertisements, speaker Leases,        local facts (own Node, interfaces)
//!          EndpointSlices of Local Services)                     │ published on this node's Lease
//!        │ reduced into ClusterView                              ▼
//!        ▼                                                   NodeLease (renew, delete on SIGTERM)
//! decide (coalesced; also at the next Lease expiry)
//!        │ Decision: owned addresses → interfaces
//!        ▼
//! Responder (sockets, replies, take-over bursts) ──► Events on Services this node starts announcing
//! ```
//!
//! Rules that matter:
//! - Nothing is decided before every watch has listed once: a half-listed cluster could make
//!   this node announce what a peer announces.
//! - A renewal of a live peer's Lease changes no decision and triggers none
//!   ([`ironlb_core::announcer::Peers::would_change`]); a Lease expiry, being the absence of an
//!   event, is scheduled.
//! - The data plane outlives the control plane: while this node cannot renew its own Lease, its
//!   view of its peers is stale too, so it keeps the last decision instead of acting on it.
//! - On shutdown the Lease is deleted first (peers take over at once), then the node keeps
//!   answering for a grace period so no client request falls between the two.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use ironlb_core::announcer::PublishedConflict;
use ironlb_core::announcer::endpoints::{SERVICE_NAME_LABEL, ServiceKey};
use ironlb_core::announcer::peers::LEASE_SELECTOR;
use ironlb_core::events::{Note, event, reason};
use ironlb_core::v1alpha1::{IPAddressPool, L2Advertisement};
use ironlb_daemon::{Guarded, WatchBackoff, guarded};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::core::DeserializeGuard;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::claims::EventBudget;
use crate::conflicts::{Claimed, Conflicts};
use crate::decide::{AnnouncedService, ClusterView, Decision};
use crate::lease::{LeaseSettings, NodeLease};
use crate::local;
use crate::probes::Probes;
use crate::responder::Responder;
use crate::telemetry::{Health, Metrics};

/// The `reportingController` of the speaker's Events.
pub const REPORTING_CONTROLLER: &str = "ironlb.io/speaker";

/// How long changes are gathered before one decision: a burst of watch events (a relist, a
/// pool status write touching many allocations) costs one decision, at a delay no failover notices.
const COALESCE: Duration = Duration::from_millis(20);

/// How the speaker runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This node's name (`spec.nodeName` of the pod).
    pub node_name: String,
    /// The speaker's namespace, where the node Leases live.
    pub namespace: String,
    /// This pod's name: the Lease holder and the Events' reporting instance.
    pub identity: String,
    /// Lease timing.
    pub lease: LeaseSettings,
    /// Period of the gratuitous refresh; zero turns it off.
    pub refresh: Duration,
    /// How long the node keeps answering after it deleted its Lease on shutdown.
    pub shutdown_grace: Duration,
}

/// What the watches deliver into the loop.
enum Input {
    Pool(Event<IPAddressPool>),
    Advertisement(Event<L2Advertisement>),
    Lease(Event<Lease>),
    Slices(ServiceKey, Event<EndpointSlice>),
}

/// Runs the speaker until `shutdown` resolves, then hands over and returns.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Metrics,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // The address conflicts this node found, published on its Lease with its other facts.
    let (published_conflicts, conflicts_to_publish) = watch::channel(Vec::new());
    let facts = local::follow(client.clone(), &settings.node_name, conflicts_to_publish);
    let mut interfaces = facts.interfaces.clone();

    let node_lease = NodeLease::new(
        client.clone(),
        &settings.namespace,
        settings.node_name.clone(),
        settings.identity.clone(),
        settings.lease,
    )?
    .publishing(facts.annotation.clone());
    let failures = metrics.clone();
    let mut node_lease = node_lease.on_failure(move || failures.lease_renewal_failed());
    let (stop_lease, lease_stopped) = oneshot::channel::<()>();
    let mut renewed = node_lease.renewed();
    let lease_task =
        tokio::spawn(async move { node_lease.run(async { lease_stopped.await.unwrap_or_default() }).await });

    let (inputs, mut received) = mpsc::channel::<Input>(1024);
    let watches = vec![
        forward::<IPAddressPool>(
            Api::all(client.clone()),
            watcher::Config::default(),
            metrics.clone(),
            inputs.clone(),
            Input::Pool,
        ),
        forward::<L2Advertisement>(
            Api::all(client.clone()),
            watcher::Config::default(),
            metrics.clone(),
            inputs.clone(),
            Input::Advertisement,
        ),
        forward::<Lease>(
            Api::namespaced(client.clone(), &settings.namespace),
            watcher::Config::default().labels(LEASE_SELECTOR),
            metrics.clone(),
            inputs.clone(),
            Input::Lease,
        ),
    ];

    let mut view = ClusterView::new(&settings.node_name);
    let mut slice_watches: BTreeMap<ServiceKey, JoinHandle<()>> = BTreeMap::new();
    let (mut responder, mut claims) = Responder::new(metrics.clone(), settings.refresh);
    let mut current = Decision::default();
    // When the next decision is due: set by a relevant change (plus COALESCE) and by expiries.
    let mut due: Option<Instant> = None;
    let mut outage = Outage::default();
    let mut conflicts = Conflicts::default();
    let mut probes = Probes::default();
    let mut events = EventPoster {
        client: client.clone(),
        identity: settings.identity.clone(),
        budget: EventBudget::default(),
        metrics: metrics.clone(),
    };
    // The Services this node answers for, as last posted in an Announcing Event.
    let mut announced: BTreeMap<ServiceKey, AnnouncedService> = BTreeMap::new();

    tokio::pin!(shutdown);
    loop {
        let expiry = view.inputs.next_expiry().map(Instant::from_std);
        let wake = [due, expiry, probes.next_deadline()].into_iter().flatten().min();
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(input) = received.recv() => {
                let now = Instant::now().into_std();
                let relevant = match input {
                    Input::Pool(event) => apply_pool(&mut view, event),
                    Input::Advertisement(event) => view.inputs.take_advertisement(event),
                    Input::Lease(event) => view.inputs.take_lease(event, now),
                    Input::Slices(service, event) => view.inputs.take_service_slices(&service, event),
                };
                if relevant {
                    due.get_or_insert_with(|| Instant::now() + COALESCE);
                }
                continue;
            }
            Ok(()) = interfaces.changed() => {
                due.get_or_insert_with(|| Instant::now() + COALESCE);
                continue;
            }
            Ok(()) = renewed.changed() => {
                let ready = view.synced() && renewed.borrow().is_some();
                health.set_ready(ready);
                continue;
            }
            Some(claim) = claims.recv() => {
                let cut_off = !view_is_current(&view, &settings, *renewed.borrow());
                let context = ClaimContext { node: &settings.node_name, view: &view, current: &current, yield_to_peers: cut_off };
                if handle_claim(claim, &context, &mut responder, &mut probes, &mut conflicts, &metrics, &mut events) {
                    // A probe found its address in use: decide again without it.
                    due = Some(Instant::now());
                }
                publish_conflicts(&conflicts, &probes, &published_conflicts);
                continue;
            }
            () = sleep_until(conflicts.next_deadline()) => {
                let (recheck, ended) = conflicts.tick(Instant::now(), |address| responder.owns(address));
                for address in recheck {
                    responder.recheck(address);
                }
                for (address, conflict) in ended {
                    tracing::info!(%address, mac = %conflict.mac, "the address conflict is over: the other host no longer answers for it");
                    let message = format!(
                        "{address} is no longer claimed by {}: that host did not answer {} re-checks",
                        conflict.claimed_by(),
                        crate::conflicts::FORGET_AFTER.as_secs() / crate::conflicts::RECHECK.as_secs()
                    );
                    for service in holders(&current, address) {
                        events.post(service, Note::normal(reason::ADDRESS_CONFLICT_RESOLVED, message.clone()), Some(address));
                    }
                }
                publish_conflicts(&conflicts, &probes, &published_conflicts);
                continue;
            }
            () = sleep_until(wake) => {}
        }
        due = None;
        if !view.synced() {
            continue;
        }
        match outage.gate(view_is_current(&view, &settings, *renewed.borrow()), settings.lease.duration) {
            Gate::Decide => {}
            Gate::Wait(hold) => {
                due = hold.or(due);
                continue;
            }
        }
        let decision = view.decide(&settings.node_name, Instant::now().into_std());
        let (answer, probe) =
            probes.split(&decision.owned, &mut view, |address| responder.owns(address), Instant::now());
        publish_conflicts(&conflicts, &probes, &published_conflicts);
        let taken_over = responder.apply(&answer, &probe, &interfaces.borrow_and_update());
        if !taken_over.is_empty() {
            tracing::info!(addresses = ?taken_over, "took over addresses");
        }
        if !probe.is_empty() {
            tracing::info!(addresses = ?probe.keys().collect::<Vec<_>>(), "probing new addresses before announcing them");
        }
        // An Event for each Service this node now answers for (every address, past its probe).
        let answered: BTreeMap<ServiceKey, AnnouncedService> = decision
            .services
            .iter()
            .filter(|(_, service)| service.addresses.iter().all(|address| answer.contains_key(address)))
            .map(|(key, service)| (key.clone(), service.clone()))
            .collect();
        for (service, now_announced) in &answered {
            if announced.get(service) != Some(now_announced) {
                metrics.announcer_changed();
                events.announcing(&settings.node_name, service, now_announced);
            }
        }
        announced = answered;
        if decision.owned != current.owned {
            tracing::info!(owned = decision.owned.len(), unannounced = decision.unannounced, "decision changed");
        }
        current = decision;
        follow_local_services(&client, &mut view, &mut slice_watches, &inputs, &metrics);
        health.set_ready(renewed.borrow().is_some());
    }

    // Hand over: delete the Lease first, so peers take over at once ...
    tracing::info!("shutting down: deleting the node Lease, then answering for a grace period");
    health.set_ready(false);
    let _ = stop_lease.send(());
    match lease_task.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "could not delete the node Lease; peers wait for it to expire"),
        Err(error) => tracing::warn!(%error, "the Lease task failed"),
    }
    // ... and keep answering until they have: an address is released as soon as the peer that
    // took it over is heard announcing it, and whatever is left when the grace ends.
    let deadline = Instant::now() + settings.shutdown_grace;
    while responder.is_answering() {
        tokio::select! {
            Some(claim) = claims.recv() => {
                let context = ClaimContext { node: &settings.node_name, view: &view, current: &current, yield_to_peers: true };
                handle_claim(claim, &context, &mut responder, &mut probes, &mut conflicts, &metrics, &mut events);
            }
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    for watch in watches.into_iter().chain(slice_watches.into_values()) {
        watch.abort();
    }
    drop(responder);
    Ok(())
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Forwards a watch of `K` into the loop. An object this version cannot decode is skipped,
/// logged and counted ([`ironlb_daemon::guard`]) while every other object keeps working; a watch
/// error is logged, not forwarded: the watcher retries with back-off and the loop keeps what it
/// knew.
fn forward<K>(
    api: Api<DeserializeGuard<K>>,
    config: watcher::Config,
    metrics: Metrics,
    inputs: mpsc::Sender<Input>,
    wrap: impl Fn(Event<K>) -> Input + Send + 'static,
) -> JoinHandle<()>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let stream = guarded(watcher::watcher(api, config).backoff(WatchBackoff::default()));
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(Guarded::Event(event)) => {
                    if inputs.send(wrap(event)).await.is_err() {
                        return;
                    }
                }
                Ok(Guarded::Unreadable(unreadable)) => {
                    metrics.unreadable(unreadable.object.kind.as_deref().unwrap_or_default());
                }
                Err(error) => tracing::warn!(%error, "watch failed; retrying"),
            }
        }
    })
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

/// Starts watching the EndpointSlices of each `Local` Service holding addresses, and stops
/// watching those of Services that no longer are.
fn follow_local_services(
    client: &Client,
    view: &mut ClusterView,
    watches: &mut BTreeMap<ServiceKey, JoinHandle<()>>,
    inputs: &mpsc::Sender<Input>,
    metrics: &Metrics,
) {
    let wanted = view.local_services();
    watches.retain(|service, watch| {
        let keep = wanted.contains(service);
        if !keep {
            watch.abort();
            view.inputs.forget_service(service);
        }
        keep
    });
    let new: BTreeSet<ServiceKey> = wanted.into_iter().filter(|service| !watches.contains_key(service)).collect();
    for service in new {
        let api: Api<DeserializeGuard<EndpointSlice>> = Api::namespaced(client.clone(), &service.namespace);
        let config = watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}={}", service.name));
        let key = service.clone();
        let watch =
            forward(api, config, metrics.clone(), inputs.clone(), move |event| Input::Slices(key.clone(), event));
        watches.insert(service, watch);
    }
}

/// Posts the speaker's Events, within an [`EventBudget`]: a LAN host that floods claims (or a
/// take-over of thousands of Services) cannot make this node write Events without bound. Over
/// budget an Event is dropped and counted, never queued without end.
struct EventPoster {
    client: Client,
    identity: String,
    budget: EventBudget,
    metrics: Metrics,
}

impl EventPoster {
    /// Posts an Event on a Service; `about` is the address it concerns, if any (the budget
    /// limits Events per address). In the background: the Event is for people; answering never
    /// waits for it. A failed write is tried twice more (after 1 s and 3 s): a conflict or a
    /// probe finding an address in use is reported once, when it starts, so losing that one
    /// write to a busy API server would lose the report.
    fn post(&mut self, service: &ServiceKey, note: Note, about: Option<IpAddr>) {
        let ticket = match self.budget.admit(about, Instant::now()) {
            Ok(ticket) => ticket,
            Err(over) => {
                tracing::debug!(service = %format!("{}/{}", service.namespace, service.name), reason = note.reason, ?over,
                    "Event dropped: over the Event budget");
                self.metrics.event_dropped(over);
                return;
            }
        };
        let services: Api<Service> = Api::namespaced(self.client.clone(), &service.namespace);
        let events: Api<KubeEvent> = Api::namespaced(self.client.clone(), &service.namespace);
        let (name, identity) = (service.name.clone(), self.identity.clone());
        tokio::spawn(async move {
            let _writing = ticket.turn().await;
            for (attempt, pause) in
                [Duration::ZERO, Duration::from_secs(1), Duration::from_secs(2)].into_iter().enumerate()
            {
                tokio::time::sleep(pause).await;
                let regarding = match services.get_opt(&name).await {
                    Ok(Some(service)) => service.object_ref(&()),
                    Ok(None) => return,
                    Err(error) => {
                        tracing::warn!(service = %name, %error, attempt, "cannot read the Service to post an Event");
                        continue;
                    }
                };
                let event = event(regarding, note.clone(), REPORTING_CONTROLLER, &identity, Timestamp::now());
                match events.create(&PostParams::default(), &event).await {
                    Ok(_) => return,
                    Err(error) => tracing::warn!(service = %name, %error, attempt, "cannot post an Event"),
                }
            }
        });
    }

    /// Posts an Announcing Event on a Service this node started announcing.
    fn announcing(&mut self, node: &str, service: &ServiceKey, announced: &AnnouncedService) {
        let addresses: Vec<String> = announced.addresses.iter().map(ToString::to_string).collect();
        let message = format!("{} announced by node {node} on {}", addresses.join(", "), announced.interface);
        self.post(service, Note::normal(reason::ANNOUNCING, message), None);
    }
}

/// Whether this speaker's view of its peers can be trusted: its own Lease was renewed within its
/// duration, and its own renewals reach it through the Lease watch (so the peers' do too).
///
/// Without renewals the API server is out of reach; without its own renewals coming back, the
/// watch is down or lagging (a watch reconnects with back-off, within about 2 s of the API server
/// answering again: [`WatchBackoff`])
/// and every peer would look dead. Either way the view is stale and must not be acted on.
fn view_is_current(view: &ClusterView, settings: &Settings, renewed: Option<Instant>) -> bool {
    let renewing = renewed.is_none_or(|at| at.elapsed() <= settings.lease.duration);
    renewing && view.inputs.peers().is_live(&settings.node_name, Instant::now().into_std())
}

/// Whether to decide now.
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
    /// Whether to decide, given whether the view is current.
    ///
    /// While the view is stale, this node keeps answering what it answered for (the data plane
    /// outlives the control plane), yielding an address only to a peer heard announcing it.
    /// When it is current again, decisions wait one lease duration more: until every live
    /// peer's renewal has arrived too. Deciding at once would act on peers whose renewals are
    /// still on their way, and move addresses that need not move.
    fn gate(&mut self, current: bool, duration: Duration) -> Gate {
        if !current {
            if !self.stale {
                tracing::warn!("this node's view of its peers is stale (no Lease renewals): keeping what it announces");
            }
            self.stale = true;
            self.hold_until = None;
            return Gate::Wait(None);
        }
        if std::mem::take(&mut self.stale) {
            let hold = Instant::now() + duration;
            tracing::info!(?duration, "the view is current again; deciding once the peers' renewals are seen");
            self.hold_until = Some(hold);
        }
        match self.hold_until {
            Some(until) if Instant::now() < until => Gate::Wait(Some(until)),
            _ => {
                self.hold_until = None;
                Gate::Decide
            }
        }
    }
}

/// Publishes the conflicts this node knows on its Lease (when they changed): the ones it
/// announces through ([`Conflicts`]) and the addresses its probes found in use ([`Probes`]).
fn publish_conflicts(conflicts: &Conflicts, probes: &Probes, published: &watch::Sender<Vec<PublishedConflict>>) {
    let mut current: Vec<PublishedConflict> = conflicts.published().chain(probes.published()).collect();
    current.sort();
    published.send_if_modified(|known| {
        let changed = *known != current;
        if changed {
            *known = current;
        }
        changed
    });
}

/// The Services of a decision that hold `address`.
fn holders(decision: &Decision, address: IpAddr) -> impl Iterator<Item = &ServiceKey> {
    decision.services.iter().filter(move |(_, service)| service.addresses.contains(&address)).map(|(key, _)| key)
}

/// What a claim is judged against.
struct ClaimContext<'a> {
    node: &'a str,
    view: &'a ClusterView,
    current: &'a Decision,
    /// Yield an address to a peer heard announcing it: while cut off, or shutting down.
    yield_to_peers: bool,
}

/// Another host claimed an address this node answers for or probes for (see
/// [`crate::responder::Claim`]). Returns whether a probe found its address in use (the caller
/// decides again).
///
/// - A foreign host answering a probe: the address is in use and is not announced (see
///   [`crate::probes`]); an `AddressInUse` Warning on the Services holding it.
/// - A peer speaker (its MAC is on its Lease): while this node is cut off or shutting down,
///   the peer was chosen by views fresher than ours, so this node stops answering for the
///   address at once — no lasting split brain. Otherwise both views converge within a watch
///   delivery, and the claim is only logged.
/// - A foreign host: an address conflict. Counted, and when it is news (see [`Conflicts`])
///   logged and reported as a Warning Event on the Services holding the address; kept and
///   re-checked while it lasts. This node keeps answering as before, without floods: fighting
///   another host's ARP only makes every client's cache flip between the two.
fn handle_claim(
    claim: crate::responder::Claim,
    context: &ClaimContext<'_>,
    responder: &mut Responder,
    probes: &mut Probes,
    conflicts: &mut Conflicts,
    metrics: &Metrics,
    events: &mut EventPoster,
) -> bool {
    if responder.macs().any(|mac| mac == claim.mac) {
        return false;
    }
    let mac = claim.mac.to_string();
    let peer = context.view.inputs.peers().node_with_mac(&mac);
    if peer.is_none() && probes.is_probing(claim.address) {
        probes.found_in_use(claim.address, claim.mac, &claim.interface, Instant::now());
        metrics.conflict();
        tracing::warn!(address = %claim.address, %mac, interface = %claim.interface,
            "a probe found the address in use by a host that is not an ironlb speaker: not announcing it");
        for service in holders(context.current, claim.address) {
            let message = format!(
                "{} is already in use on the LAN by {mac} (seen on {} of node {}), a host that is not an ironlb \
                 speaker: ironlb does not announce it and probes again every {}s; remove the address from that \
                 host or from the pool",
                claim.address,
                claim.interface,
                context.node,
                crate::probes::RETRY_IN_USE.as_secs()
            );
            events.post(service, Note::warning(reason::ADDRESS_IN_USE, message), Some(claim.address));
        }
        return true;
    }
    match peer {
        Some(peer) if peer == context.node => {}
        Some(peer) if claim.probe => {
            tracing::debug!(address = %claim.address, %peer, "a peer probed for an address this node announces");
        }
        Some(peer) if context.yield_to_peers => {
            tracing::info!(address = %claim.address, %peer, %mac, "yielding the address to the peer announcing it");
            responder.release(claim.address);
            metrics.yielded();
        }
        Some(peer) => {
            tracing::debug!(address = %claim.address, %peer, "a peer announces an address this node announces too; views converge");
        }
        None => {
            metrics.conflict();
            if conflicts.claim(claim.address, claim.mac, &claim.interface, Instant::now()) == Claimed::Known {
                return false;
            }
            // One host, or "several hosts (a, b …)" once a second one shows: a flapping MAC is one
            // conflict, reported twice at most.
            let by = conflicts.get(claim.address).map_or_else(|| mac.clone(), |conflict| conflict.claimed_by());
            tracing::warn!(address = %claim.address, claimed_by = %by, interface = %claim.interface, probe = claim.probe,
                "a host that is not an ironlb speaker claims an address this node announces");
            for service in holders(context.current, claim.address) {
                let message = format!(
                    "{} is also claimed by {by} on {} of node {}, a host that is not an ironlb speaker; ironlb keeps \
                     answering and does not fight it: remove the address from that host or from the pool",
                    claim.address, claim.interface, context.node
                );
                events.post(service, Note::warning(reason::ADDRESS_CONFLICT, message), Some(claim.address));
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stale_view_keeps_the_last_decision_and_a_current_one_waits_a_lease_duration() {
        let duration = Duration::from_secs(2);
        let mut outage = Outage::default();
        assert!(matches!(outage.gate(true, duration), Gate::Decide), "a current view decides at once");
        assert!(matches!(outage.gate(false, duration), Gate::Wait(None)), "a stale view decides nothing");
        let Gate::Wait(Some(hold)) = outage.gate(true, duration) else { panic!("current again: it must wait") };
        assert_eq!(hold, Instant::now() + duration);
        tokio::time::advance(duration - Duration::from_millis(1)).await;
        assert!(matches!(outage.gate(true, duration), Gate::Wait(Some(_))));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(matches!(outage.gate(true, duration), Gate::Decide));
    }
}
