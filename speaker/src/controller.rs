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
//!   ([`ironlb_crds::announcer::Peers::would_change`]); a Lease expiry, being the absence of an
//!   event, is scheduled.
//! - The data plane outlives the control plane: while this node cannot renew its own Lease, its
//!   view of its peers is stale too, so it keeps the last decision instead of acting on it.
//! - On shutdown the Lease is deleted first (peers take over at once), then the node keeps
//!   answering for a grace period so no client request falls between the two.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use futures::{Stream, StreamExt};
use ironlb_crds::announcer::Advertisements;
use ironlb_crds::announcer::endpoints::{SERVICE_NAME_LABEL, ServiceKey};
use ironlb_crds::announcer::peers::LEASE_SELECTOR;
use ironlb_crds::events::{Note, event};
use ironlb_crds::v1alpha1::{IPAddressPool, L2Advertisement, L2AdvertisementSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::decide::{ClusterView, Decision};
use crate::lease::{LeaseSettings, NodeLease};
use crate::local;
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

/// Which watches have completed their first list.
#[derive(Debug, Default)]
struct Synced {
    pools: bool,
    advertisements: bool,
    leases: bool,
}

impl Synced {
    fn all(&self) -> bool {
        self.pools && self.advertisements && self.leases
    }
}

/// Runs the speaker until `shutdown` resolves, then hands over and returns.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Metrics,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let facts = local::follow(client.clone(), &settings.node_name);
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
        forward(watch_all::<IPAddressPool>(client.clone(), watcher::Config::default()), inputs.clone(), Input::Pool),
        forward(
            watch_all::<L2Advertisement>(client.clone(), watcher::Config::default()),
            inputs.clone(),
            Input::Advertisement,
        ),
        forward(
            watcher::watcher(
                Api::<Lease>::namespaced(client.clone(), &settings.namespace),
                watcher::Config::default().labels(LEASE_SELECTOR),
            )
            .default_backoff(),
            inputs.clone(),
            Input::Lease,
        ),
    ];

    let mut view = ClusterView::default();
    let mut advertisements: BTreeMap<String, L2AdvertisementSpec> = BTreeMap::new();
    let mut relisting: Vec<Lease> = Vec::new();
    let mut synced = Synced::default();
    let mut slice_watches: BTreeMap<ServiceKey, JoinHandle<()>> = BTreeMap::new();
    let mut responder = Responder::new(metrics.clone(), settings.refresh);
    let mut current = Decision::default();
    // When the next decision is due: set by a relevant change (plus COALESCE) and by expiries.
    let mut due: Option<Instant> = None;

    tokio::pin!(shutdown);
    loop {
        let wake =
            [due, view.peers.next_expiry(Instant::now().into_std()).map(Instant::from_std)].into_iter().flatten().min();
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(input) = received.recv() => {
                let now = Instant::now().into_std();
                let relevant = match input {
                    Input::Pool(event) => apply_pool(&mut view, event, &mut synced),
                    Input::Advertisement(event) => {
                        let changed = apply_advertisement(&mut advertisements, event, &mut synced.advertisements);
                        if changed {
                            view.advertisements = Advertisements::new(advertisements.values());
                        }
                        changed
                    }
                    Input::Lease(event) => match event {
                        Event::Apply(lease) => {
                            let changed = view.peers.would_change(&lease, now);
                            view.peers.observe(&lease, now);
                            changed
                        }
                        Event::Delete(lease) => {
                            view.peers.forget(&lease);
                            true
                        }
                        Event::Init => { relisting.clear(); false }
                        Event::InitApply(lease) => { relisting.push(lease); false }
                        Event::InitDone => {
                            view.peers.reset(relisting.iter(), now);
                            relisting.clear();
                            synced.leases = true;
                            true
                        }
                    },
                    Input::Slices(service, event) => apply_slices(&mut view, &service, event),
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
                let ready = synced.all() && renewed.borrow().is_some();
                health.set_ready(ready);
                continue;
            }
            () = sleep_until(wake) => {}
        }
        due = None;
        if !synced.all() {
            continue;
        }
        let cut_off = renewed.borrow().is_none_or(|at| at.elapsed() > settings.lease.duration);
        if cut_off && !current.owned.is_empty() {
            // Without its own renewals this node's view of the peers is stale as well: keep
            // answering for what it answered for (the data plane outlives the control plane).
            tracing::debug!("the node Lease is not being renewed; keeping the last decision");
            continue;
        }
        let decision = view.decide(&settings.node_name, Instant::now().into_std());
        let taken_over = responder.apply(&decision.owned, &interfaces.borrow_and_update());
        if !taken_over.is_empty() {
            tracing::info!(addresses = ?taken_over, "took over addresses");
        }
        for (service, announced) in &decision.services {
            if current.services.get(service) != Some(announced) {
                metrics.announcer_changed();
                post_announcing(&client, &settings, service, announced);
            }
        }
        if decision.owned != current.owned {
            tracing::info!(owned = decision.owned.len(), unannounced = decision.unannounced, "decision changed");
        }
        current = decision;
        follow_local_services(&client, &view, &mut slice_watches, &inputs);
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
    // ... and keep answering until they have (their take-over burst starts at once).
    tokio::time::sleep(settings.shutdown_grace).await;
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

/// A cluster-wide watch of `K`, with the watcher's default back-off on errors.
fn watch_all<K>(client: Client, config: watcher::Config) -> impl Stream<Item = watcher::Result<Event<K>>> + Send
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher::watcher(Api::<K>::all(client), config).default_backoff()
}

/// Forwards a watch into the loop, logging (not forwarding) its errors: the watcher retries by
/// itself and the loop keeps what it knew.
fn forward<K: Send + 'static>(
    stream: impl Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
    inputs: mpsc::Sender<Input>,
    wrap: impl Fn(Event<K>) -> Input + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    if inputs.send(wrap(event)).await.is_err() {
                        return;
                    }
                }
                Err(error) => tracing::warn!(%error, "watch failed; retrying"),
            }
        }
    })
}

fn apply_pool(view: &mut ClusterView, event: Event<IPAddressPool>, synced: &mut Synced) -> bool {
    match event {
        Event::Apply(pool) | Event::InitApply(pool) => view.set_pool(&pool),
        Event::Delete(pool) => pool.metadata.name.as_deref().is_some_and(|name| view.remove_pool(name)),
        Event::Init => {
            view.clear_pools();
            synced.pools = false;
            false
        }
        Event::InitDone => {
            synced.pools = true;
            true
        }
    }
}

fn apply_advertisement(
    specs: &mut BTreeMap<String, L2AdvertisementSpec>,
    event: Event<L2Advertisement>,
    synced: &mut bool,
) -> bool {
    match event {
        Event::Apply(adv) | Event::InitApply(adv) => {
            let name = adv.metadata.name.clone().unwrap_or_default();
            specs.insert(name, adv.spec.clone()).as_ref() != Some(&adv.spec)
        }
        Event::Delete(adv) => specs.remove(adv.metadata.name.as_deref().unwrap_or_default()).is_some(),
        Event::Init => {
            specs.clear();
            *synced = false;
            false
        }
        Event::InitDone => {
            *synced = true;
            true
        }
    }
}

fn apply_slices(view: &mut ClusterView, service: &ServiceKey, event: Event<EndpointSlice>) -> bool {
    match event {
        Event::Apply(slice) | Event::InitApply(slice) => {
            view.endpoints.apply(&slice);
        }
        Event::Delete(slice) => {
            view.endpoints.remove(&slice);
        }
        Event::Init => view.endpoints.forget_service(&service.0, &service.1),
        Event::InitDone => {}
    }
    true
}

/// Starts watching the EndpointSlices of each `Local` Service holding addresses, and stops
/// watching those of Services that no longer are.
fn follow_local_services(
    client: &Client,
    view: &ClusterView,
    watches: &mut BTreeMap<ServiceKey, JoinHandle<()>>,
    inputs: &mpsc::Sender<Input>,
) {
    let wanted = view.local_services();
    watches.retain(|service, watch| {
        let keep = wanted.contains(service);
        if !keep {
            watch.abort();
        }
        keep
    });
    let new: BTreeSet<ServiceKey> = wanted.into_iter().filter(|service| !watches.contains_key(service)).collect();
    for service in new {
        let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &service.0);
        let config = watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}={}", service.1));
        let key = service.clone();
        let watch = forward(watcher::watcher(api, config).default_backoff(), inputs.clone(), move |event| {
            Input::Slices(key.clone(), event)
        });
        watches.insert(service, watch);
    }
}

/// Posts an Event on a Service this node started announcing. Best effort, in the background:
/// the Event is for people; answering never waits for it.
fn post_announcing(
    client: &Client,
    settings: &Settings,
    service: &ServiceKey,
    announced: &crate::decide::AnnouncedService,
) {
    let services: Api<Service> = Api::namespaced(client.clone(), &service.0);
    let events: Api<KubeEvent> = Api::namespaced(client.clone(), &service.0);
    let addresses: Vec<String> = announced.addresses.iter().map(ToString::to_string).collect();
    let message =
        format!("{} announced by node {} on {}", addresses.join(", "), settings.node_name, announced.interface);
    let (name, identity) = (service.1.clone(), settings.identity.clone());
    tokio::spawn(async move {
        let regarding = match services.get_opt(&name).await {
            Ok(Some(service)) => service.object_ref(&()),
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(service = %name, %error, "cannot read the Service to post an Event");
                return;
            }
        };
        let note = Note::normal("Announcing", message);
        let event = event(regarding, note, REPORTING_CONTROLLER, &identity, Timestamp::now());
        if let Err(error) = events.create(&PostParams::default(), &event).await {
            tracing::warn!(service = %name, %error, "cannot post an Event");
        }
    });
}
