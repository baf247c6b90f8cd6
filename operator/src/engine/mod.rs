//! The allocation engine: one task that owns the [`Allocator`] and keeps the
//! cluster in line with it.
//!
//! # Data flow
//!
//! ```text
//!  watch IPAddressPools ─┐                        ┌─► Service status + ironlb.io/allocated-from-pool
//!  watch Services ───────┼─► caches ─► Allocator ─┼─► Events (IPAllocated, AllocationFailed, IPReleased, Conflict)
//!  watch Namespaces ─────┤   (warm on      │      ├─► IPAllocationSlices (batched, ≤ 100 entries each): every
//!  watch IPAllocation-   ┘   every replica)▼      │   allocation with its externalTrafficPolicy, serving, and
//!    Slices (read at a             announcers ────┘   the announcing node and interface
//!    term's start)                     ▲          └─► IPAddressPool status: counts, conditions, the slices'
//!  watch speaker Leases ─┐             │              names and the first 50 allocations
//!  watch EndpointSlices ─┼─► reductions┘
//!  watch L2Advertisements┘   (warm too)
//! ```
//!
//! The record's slices are what speakers announce from, so the leader lists in
//! them, beside each allocation, what the speakers' shared announcer function
//! reads and cannot cheaply learn itself (`serving`, `externalTrafficPolicy`),
//! and records the node that function picks (module `announcers`). It writes no
//! record before the Lease, EndpointSlice and L2Advertisement watches have
//! their first full list: a record written from half the facts would tell the
//! speakers that served Services have no endpoints. Module `record` says how
//! the slices are shaped, how an entry is placed and how writes are batched.
//!
//! Every replica watches and keeps its caches warm; only the leader builds an
//! allocator and writes. On becoming leader it first restores every address
//! already recorded (Service status, then the record's slices for a Service
//! whose status was lost) and only then allocates anything new, so neither a
//! restart nor a hand-over moves an IP.
//!
//! One task owns all state ([`state::EngineState`]), so allocation is a
//! sequence of plain function calls with no locks. Each input goes in through
//! an `on_*` step that returns [`writes::Effect`]s; the loop here only runs
//! them as API writes, concurrently (bounded by
//! [`EngineSettings::write_concurrency`]) and never two at once for one
//! Service.
//!
//! Losing the leader lease is not fatal: the state drops the term's work at
//! once (no write is started after the renew deadline), keeps its caches, and
//! the elector campaigns again; the next term restores from the caches as a
//! fresh leader does. A pool's status, and each slice, is written at most once
//! per [`EngineSettings::status_interval`]: a burst of 10,000 allocations costs
//! about one write per slice filled, not 10,000; a failed slice write backs off.

mod advertisements;
mod announcers;
mod conditions;
mod listing;
mod pools;
mod record;
mod state;
#[cfg(test)]
mod tests;
mod writes;

pub use writes::FIELD_MANAGER;

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use ironlb_core::announcer::endpoints::SERVICE_NAME_LABEL;
use ironlb_core::announcer::peers::LEASE_SELECTOR;
use ironlb_core::v1alpha1::{IPAddressPool, IPAllocationSlice, L2Advertisement};
use ironlb_daemon::{Guarded, Unreadable, WatchBackoff, guarded};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::leader::Leadership as LeaderGate;
use crate::telemetry::{Health, Metrics};
use state::{Context, EngineState};
use writes::{ApiWriter, WriteDone};

/// How the engine behaves; every value is a flag of `ironlb-operator`.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Serve only Services with this `spec.loadBalancerClass` (instead of those without one).
    pub load_balancer_class: Option<String>,
    /// API writes in flight at once.
    pub write_concurrency: usize,
    /// Least time between two status writes of one pool, and between two writes of one slice
    /// of its allocation record.
    pub status_interval: Duration,
    /// How long to wait before retrying a failed write.
    pub retry_delay: Duration,
    /// The namespace of the speakers' node Leases: the operator's own.
    pub namespace: String,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            load_balancer_class: None,
            write_concurrency: 32,
            status_interval: Duration::from_millis(500),
            retry_delay: Duration::from_secs(2),
            namespace: "ironlb-system".to_owned(),
        }
    }
}

/// What one input stream said.
enum Input {
    Pool(watcher::Event<IPAddressPool>),
    Service(watcher::Event<Service>),
    Namespace(watcher::Event<PartialObjectMeta<Namespace>>),
    Lease(watcher::Event<Lease>),
    EndpointSlice(watcher::Event<EndpointSlice>),
    Advertisement(watcher::Event<L2Advertisement>),
    Slice(watcher::Event<IPAllocationSlice>),
    /// An object a watch could not decode (see [`ironlb_daemon::guard`]).
    Unreadable(Unreadable),
}

/// The allocation engine. Build it with [`Engine::new`], run it with [`Engine::run`].
pub struct Engine {
    client: Client,
    writer: ApiWriter,
    state: EngineState,
    /// The speakers' namespace, for the Lease watch.
    namespace: String,
    /// Half the pool-status interval: how often an idle loop looks at due work.
    tick: Duration,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("state", &self.state).finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine that writes as `identity` (the Pod name: it signs Events).
    pub fn new(client: Client, settings: EngineSettings, metrics: Metrics, identity: &str) -> Self {
        let (namespace, tick) = (settings.namespace.clone(), settings.status_interval / 2);
        Self {
            writer: ApiWriter::new(client.clone(), identity),
            client,
            state: EngineState::new(Context { settings, metrics }),
            namespace,
            tick,
        }
    }

    /// Watches until the process ends. `health` turns ready once every cache and every
    /// announcer input has its first full list; the engine writes only while `gate` says this
    /// replica leads. A lost lease sends it back to standby with its caches warm; the elector
    /// campaigns again, and a new term starts with a restore.
    pub async fn run(mut self, health: Health, gate: LeaderGate) -> anyhow::Result<()> {
        // Becoming leader is noticed on the next tick (at most half a status interval later);
        // losing it is acted on at once.
        let mut losing = gate.clone();
        let mut inputs = self.inputs();
        let mut jobs: JoinSet<(WriteDone, Duration)> = JoinSet::new();
        let mut tick = tokio::time::interval(self.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A Lease expiring is the absence of an event, and a coalesced decision is due after
            // a quiet interval: both need a wake-up of their own.
            let wake = self.state.wake_at(Instant::now());
            let far = Instant::now() + Duration::from_secs(3600);
            let wake_up = tokio::time::sleep_until(tokio::time::Instant::from_std(wake.unwrap_or(far)));
            let mut effects = Vec::new();
            tokio::select! {
                Some(input) = inputs.next() => self.take(input, &mut effects),
                Some(done) = jobs.join_next(), if !jobs.is_empty() => match done {
                    Ok((done, took)) => effects = self.state.on_write_done(done, took, Instant::now()),
                    Err(error) => warn!(%error, "a write task failed"),
                },
                () = losing.lost(), if self.state.is_leading() => {
                    // Stop at once: nothing queued in this turn is started.
                    self.state.on_lost_leadership();
                    continue;
                }
                () = wake_up, if wake.is_some() => {}
                _ = tick.tick() => {}
            }
            if self.state.is_synced() && !health.is_ready() {
                info!("caches synced");
                health.set_ready(true);
            }
            effects.extend(self.state.on_turn(Instant::now(), gate.is_leader()));
            for effect in effects {
                let job = self.writer.run(effect).run();
                // Timed: how long writes take is how the engine tells a strained API server.
                jobs.spawn(async move {
                    let started = Instant::now();
                    let done = job.await;
                    (done, started.elapsed())
                });
            }
        }
    }

    fn take(&mut self, input: Input, pending: &mut Vec<writes::Effect>) {
        match input {
            Input::Pool(event) => self.state.on_pool(event),
            Input::Service(event) => self.state.on_service(event),
            Input::Namespace(event) => self.state.on_namespace(event),
            Input::Lease(event) => self.state.on_lease(event, Instant::now()),
            Input::EndpointSlice(event) => self.state.on_endpoint_slice(event),
            Input::Advertisement(event) => self.state.on_advertisement(event),
            Input::Slice(event) => self.state.on_slice(event),
            Input::Unreadable(unreadable) => pending.extend(self.state.on_unreadable(unreadable)),
        }
    }

    fn inputs(&self) -> BoxStream<'static, Input> {
        let client = &self.client;
        let config = watcher::Config::default();
        // Namespaces only for their labels: a metadata-only watch, which always decodes.
        let namespaces = watcher(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), config.clone())
            .backoff(WatchBackoff::default())
            .filter_map(logged("Namespace"))
            .map(Input::Namespace)
            .boxed();
        let streams: [BoxStream<'static, Input>; 7] = [
            guarded_watch(Api::all(client.clone()), config.clone(), Input::Pool),
            guarded_watch(Api::all(client.clone()), config.clone(), Input::Service),
            namespaces,
            // The speakers' node Leases only, in the operator's namespace.
            guarded_watch(
                Api::namespaced(client.clone(), &self.namespace),
                config.clone().labels(LEASE_SELECTOR),
                Input::Lease,
            ),
            // A slice without the label belongs to no Service.
            guarded_watch(Api::all(client.clone()), config.clone().labels(SERVICE_NAME_LABEL), Input::EndpointSlice),
            guarded_watch(Api::all(client.clone()), config.clone(), Input::Advertisement),
            guarded_watch(Api::all(client.clone()), config, Input::Slice),
        ];
        futures::stream::select_all(streams).boxed()
    }
}

/// A watch of `K` that skips (and reports) the objects it cannot decode instead of failing, with
/// the watches' back-off on errors.
fn guarded_watch<K>(
    api: Api<DeserializeGuard<K>>,
    config: watcher::Config,
    wrap: fn(watcher::Event<K>) -> Input,
) -> BoxStream<'static, Input>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let kind = K::kind(&()).into_owned();
    guarded(watcher(api, config).backoff(WatchBackoff::default()))
        .filter_map(move |item| {
            futures::future::ready(match item {
                Ok(Guarded::Event(event)) => Some(wrap(event)),
                Ok(Guarded::Unreadable(unreadable)) => Some(Input::Unreadable(unreadable)),
                Err(error) => {
                    warn!(%error, kind, "watch failed");
                    None
                }
            })
        })
        .boxed()
}

/// Drops a watch error after logging it: the watcher's backoff retries, and
/// the caches keep what they had meanwhile.
fn logged<T>(kind: &'static str) -> impl FnMut(Result<T, watcher::Error>) -> futures::future::Ready<Option<T>> {
    move |result| futures::future::ready(result.map_err(|error| warn!(%error, kind, "watch failed")).ok())
}
