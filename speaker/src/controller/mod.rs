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
//!
//! Those rules live in [`state`]: the loop's state and its pure steps, which take watch events,
//! claims and the clock and return [`state::Effect`]s. [`run`] only wires the watches, the Lease
//! and the sockets to it and executes the effects; `tests.rs` drives the steps without a lab.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use ironlb_core::announcer::PublishedConflict;
use ironlb_core::announcer::endpoints::{SERVICE_NAME_LABEL, ServiceKey};
use ironlb_core::announcer::peers::LEASE_SELECTOR;
use ironlb_core::events::{Note, event};
use ironlb_core::v1alpha1::{IPAddressPool, IPAllocationSlice, L2Advertisement};
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
use crate::lease::{LeaseSettings, NodeLease};
use crate::local;
use crate::net::Interface;
use crate::responder::Responder;
use crate::telemetry::{Health, Metrics};

mod state;
#[cfg(test)]
mod tests;

use state::{Effect, SpeakerState, Watched};

/// The `reportingController` of the speaker's Events.
pub const REPORTING_CONTROLLER: &str = "ironlb.io/speaker";

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

/// Runs the speaker until `shutdown` resolves, then hands over and returns.
///
/// A thin driver: it owns the client, the sockets and the clock, hands every input to
/// [`SpeakerState`] and executes the [`Effect`]s it returns.
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

    let (inputs, mut received) = mpsc::channel::<Watched>(1024);
    let watches = vec![
        forward::<IPAddressPool>(
            Api::all(client.clone()),
            watcher::Config::default(),
            metrics.clone(),
            inputs.clone(),
            |event| Watched::Pool(Box::new(event)),
        ),
        forward::<IPAllocationSlice>(
            Api::all(client.clone()),
            watcher::Config::default(),
            metrics.clone(),
            inputs.clone(),
            Watched::AllocationSlice,
        ),
        forward::<L2Advertisement>(
            Api::all(client.clone()),
            watcher::Config::default(),
            metrics.clone(),
            inputs.clone(),
            Watched::Advertisement,
        ),
        forward::<Lease>(
            Api::namespaced(client.clone(), &settings.namespace),
            watcher::Config::default().labels(LEASE_SELECTOR),
            metrics.clone(),
            inputs.clone(),
            Watched::Lease,
        ),
    ];

    let (responder, mut claims) = Responder::new(metrics.clone(), settings.refresh);
    let mut driver = Driver {
        client: client.clone(),
        metrics: metrics.clone(),
        health,
        responder,
        events: EventPoster {
            client: client.clone(),
            identity: settings.identity.clone(),
            budget: EventBudget::default(),
            metrics: metrics.clone(),
        },
        published_conflicts,
        slice_watches: BTreeMap::new(),
        inputs,
    };
    let mut state = SpeakerState::new(settings.clone(), metrics);

    tokio::pin!(shutdown);
    loop {
        let effects = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(watched) = received.recv() => {
                state.on_watched(watched, Instant::now());
                continue;
            }
            Ok(()) = interfaces.changed() => {
                state.on_interfaces_changed(Instant::now());
                continue;
            }
            Ok(()) = renewed.changed() => state.on_renewed(*renewed.borrow()),
            Some(claim) = claims.recv() => state.on_claim(claim, Instant::now(), &driver.responder),
            () = sleep_until(state.next_conflict_tick()) => state.on_conflict_tick(Instant::now(), &driver.responder),
            () = sleep_until(state.next_wake()) => state.on_wake(Instant::now(), &driver.responder),
        };
        // `borrow`, not `borrow_and_update`: an interface change that arrives while a claim's
        // effects run must still wake `changed()` and schedule its own decision.
        driver.execute(effects, &interfaces.borrow());
    }

    // Hand over: delete the Lease first, so peers take over at once ...
    tracing::info!("shutting down: deleting the node Lease, then answering for a grace period");
    driver.execute(state.on_stopping(), &interfaces.borrow());
    let _ = stop_lease.send(());
    match lease_task.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "could not delete the node Lease; peers wait for it to expire"),
        Err(error) => tracing::warn!(%error, "the Lease task failed"),
    }
    // ... and keep answering until they have: an address is released as soon as the peer that
    // took it over is heard announcing it, and whatever is left when the grace ends.
    let deadline = Instant::now() + settings.shutdown_grace;
    while driver.responder.is_answering() {
        tokio::select! {
            Some(claim) = claims.recv() => {
                let effects = state.on_claim(claim, Instant::now(), &driver.responder);
                driver.execute(effects, &interfaces.borrow());
            }
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    for watch in watches.into_iter().chain(std::mem::take(&mut driver.slice_watches).into_values()) {
        watch.abort();
    }
    drop(driver);
    Ok(())
}

/// What executes the effects: the API client, the sockets, the Event writer.
struct Driver {
    client: Client,
    metrics: Metrics,
    health: Health,
    responder: Responder,
    events: EventPoster,
    published_conflicts: watch::Sender<Vec<PublishedConflict>>,
    /// One EndpointSlice watch per followed `Local` Service.
    slice_watches: BTreeMap<ServiceKey, JoinHandle<()>>,
    inputs: mpsc::Sender<Watched>,
}

impl Driver {
    fn execute(&mut self, effects: Vec<Effect>, interfaces: &[Interface]) {
        for effect in effects {
            match effect {
                Effect::Answer { answer, probe } => {
                    let taken_over = self.responder.apply(&answer, &probe, interfaces);
                    if !taken_over.is_empty() {
                        tracing::info!(addresses = ?taken_over, "took over addresses");
                    }
                }
                Effect::Release(address) => self.responder.release(address),
                Effect::Recheck(address) => self.responder.recheck(address),
                Effect::Post { service, note, about } => self.events.post(&service, note, about),
                Effect::PublishConflicts(conflicts) => {
                    self.published_conflicts.send_replace(conflicts);
                }
                Effect::Follow { start, stop } => {
                    for service in stop {
                        if let Some(watch) = self.slice_watches.remove(&service) {
                            watch.abort();
                        }
                    }
                    for service in start {
                        let watch = self.follow(&service);
                        self.slice_watches.insert(service, watch);
                    }
                }
                Effect::SetReady(ready) => self.health.set_ready(ready),
            }
        }
    }

    /// Watches the EndpointSlices of one Service.
    fn follow(&self, service: &ServiceKey) -> JoinHandle<()> {
        let api: Api<DeserializeGuard<EndpointSlice>> = Api::namespaced(self.client.clone(), &service.namespace);
        let config = watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}={}", service.name));
        let key = service.clone();
        forward(api, config, self.metrics.clone(), self.inputs.clone(), move |event| {
            Watched::Slices(key.clone(), event)
        })
    }
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
    inputs: mpsc::Sender<Watched>,
    wrap: impl Fn(Event<K>) -> Watched + Send + 'static,
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
}
