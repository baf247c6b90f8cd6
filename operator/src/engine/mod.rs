//! The allocation engine: one task that owns the [`Allocator`] and keeps the
//! cluster in line with it.
//!
//! # Data flow
//!
//! ```text
//!  watch IPAddressPools ─┐                        ┌─► Service status + ironlb.io/allocated-from-pool
//!  watch Services ───────┼─► caches ─► Allocator ─┼─► Events (IPAllocated, AllocationFailed, IPReleased, Conflict)
//!  watch Namespaces ─────┘   (warm on      │      │
//!                            every replica)▼      └─► IPAddressPool status (batched): allocations, counts,
//!  watch speaker Leases ─┐             announcers ──►   conditions; per allocation externalTrafficPolicy,
//!  watch EndpointSlices ─┼─► reductions ──┘             serving, and the announcing node and interface
//!  watch L2Advertisements┘   (warm too)
//! ```
//!
//! The pool status is what speakers announce from, so the leader lists in it,
//! beside each allocation, what the speakers' shared announcer function reads
//! and cannot cheaply learn itself (`serving`, `externalTrafficPolicy`), and
//! records the node that function picks (module `announcers`). It writes no pool
//! status before the Lease, EndpointSlice and L2Advertisement watches have
//! their first full list: a status written from half the facts would tell the
//! speakers that served Services have no endpoints.
//!
//! Every replica watches and keeps its caches warm; only the leader builds an
//! allocator and writes. On becoming leader it first restores every address
//! already recorded (Service status, then pool status for a Service whose
//! status was lost) and only then allocates anything new, so neither a
//! restart nor a hand-over moves an IP.
//!
//! One task owns all state, so allocation is a sequence of plain function
//! calls with no locks; the API writes it causes run concurrently (bounded by
//! [`EngineSettings::write_concurrency`]) and never two at once for one
//! Service. Pool status is written at most once per
//! [`EngineSettings::status_interval`] per pool, stretched by one interval per
//! 1,000 allocations it lists: a status write costs the API server time in
//! proportion to its size, so a burst of 10,000 allocations costs a handful
//! of pool writes, not 10,000.

mod announcer_inputs;
mod announcers;
mod pools;
mod writes;

pub use writes::FIELD_MANAGER;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use ironlb_crds::announcer::endpoints::SERVICE_NAME_LABEL;
use ironlb_crds::announcer::peers::LEASE_SELECTOR;
use ironlb_crds::v1alpha1::{IPAddressPool, L2Advertisement, condition_type};
use ironlb_daemon::WatchBackoff;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::allocator::{AllocationRequest, Allocator, Assignment, Labels, PoolChange, ServiceKey};
use crate::leader::Leadership as LeaderGate;
use crate::service::{self, annotation};
use crate::telemetry::{Controller, Health, Metrics};
use announcer_inputs::{AnnouncerInputs, Touched};
use announcers::{Announcers, Listing, PoolInput};
use pools::{InvalidPool, pool_config, pool_status};
use writes::{Job, JobOutcome, Writer as ApiWriter};

/// How the engine behaves; every value is a flag of `ironlb-operator`.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Serve only Services with this `spec.loadBalancerClass` (instead of those without one).
    pub load_balancer_class: Option<String>,
    /// API writes in flight at once.
    pub write_concurrency: usize,
    /// Least time between two status writes of one pool (more for big pools, see
    /// [`status_interval_for`]).
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
}

/// The caches every replica keeps, and whether each has finished its first list.
struct Caches {
    pools: Writer<IPAddressPool>,
    services: Writer<Service>,
    namespaces: Writer<PartialObjectMeta<Namespace>>,
    synced: [bool; 3],
}

/// The leader's state: what the allocator knows and what is left to do.
#[derive(Default)]
struct Leadership {
    allocator: Allocator,
    /// Pools whose spec the allocator has (their generation), to spot changes.
    applied_pools: BTreeMap<String, Option<i64>>,
    /// Pools whose current spec is invalid, and why.
    invalid_pools: BTreeMap<String, InvalidPool>,
    /// Services to look at again.
    dirty_services: BTreeSet<ServiceKey>,
    /// Pools whose spec to apply again.
    dirty_pool_specs: BTreeSet<String>,
    /// Pools whose status to write, and when it may be written next.
    dirty_pool_status: BTreeSet<String>,
    last_status_write: HashMap<String, Instant>,
    /// Managed Services the allocator could not serve, and the last reason
    /// (an Event is sent when the reason changes, not on every retry).
    pending: BTreeMap<ServiceKey, String>,
    /// Services with a write in flight: they are not looked at until it ends.
    in_flight: BTreeSet<ServiceKey>,
    /// Who announces what, as the pool status lists it, and when to decide again.
    announcers: Announcers,
    /// The address conflicts the speakers report, as the pool statuses were last built with.
    reported_conflicts: Vec<(String, ironlb_crds::announcer::PublishedConflict)>,
}

/// The allocation engine. Build it with [`Engine::new`], run it with [`Engine::run`].
pub struct Engine {
    client: Client,
    settings: EngineSettings,
    metrics: Metrics,
    writer: ApiWriter,
    caches: Caches,
    inputs: AnnouncerInputs,
    leadership: Option<Leadership>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("settings", &self.settings).field("leader", &self.leadership.is_some()).finish()
    }
}

impl Engine {
    /// An engine that writes as `identity` (the Pod name: it signs Events).
    pub fn new(client: Client, settings: EngineSettings, metrics: Metrics, identity: &str) -> Self {
        Self {
            writer: ApiWriter::new(client.clone(), identity),
            client,
            settings,
            metrics,
            caches: Caches {
                pools: Writer::default(),
                services: Writer::default(),
                namespaces: Writer::default(),
                synced: [false; 3],
            },
            inputs: AnnouncerInputs::default(),
            leadership: None,
        }
    }

    /// Watches until the process ends. `health` turns ready once every cache
    /// and every announcer input has its first full list; the engine writes
    /// only while `gate` says this replica leads, and allocates as soon as the
    /// pools, Services and Namespaces are listed.
    ///
    /// # Errors
    ///
    /// When leadership is lost: the caller should exit so that it comes back as a standby
    /// with fresh state (the usual pattern of Kubernetes controllers).
    pub async fn run(mut self, health: Health, gate: LeaderGate) -> anyhow::Result<()> {
        // Becoming leader is noticed on the next tick (at most half a status
        // interval later); losing it is acted on at once.
        let mut losing = gate.clone();
        let mut inputs = self.inputs();
        let mut jobs: JoinSet<JobOutcome> = JoinSet::new();
        let mut tick = tokio::time::interval(self.settings.status_interval / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A Lease expiring is the absence of an event, and a coalesced decision is due after
            // a quiet interval: both need a wake-up of their own.
            let wake = self.wake_at();
            let far = Instant::now() + Duration::from_secs(3600);
            let wake_up = tokio::time::sleep_until(tokio::time::Instant::from_std(wake.unwrap_or(far)));
            tokio::select! {
                Some(input) = inputs.next() => self.take(input),
                Some(done) = jobs.join_next(), if !jobs.is_empty() => {
                    match done {
                        Ok(outcome) => self.finished(outcome, &mut jobs),
                        Err(error) => warn!(%error, "a write task failed"),
                    }
                }
                () = losing.lost(), if self.leadership.is_some() => {
                    self.metrics.set_leader(false);
                    anyhow::bail!("lost the leader lease");
                }
                () = wake_up, if wake.is_some() => {}
                _ = tick.tick() => {}
            }
            if self.inputs.expired(Instant::now())
                && let Some(leadership) = &mut self.leadership
            {
                leadership.announcers.invalidate();
            }
            let synced = self.caches.synced.iter().all(|s| *s);
            if synced && self.inputs.synced() && !health.is_ready() {
                info!("caches synced");
                health.set_ready(true);
            }
            if synced && gate.is_leader() {
                if self.leadership.is_none() {
                    self.lead();
                }
                self.work(&mut jobs);
            }
        }
    }

    /// When the loop must wake up without an event: the next Lease expiry, or
    /// the end of the interval a pending decision waits for. Only the leader
    /// decides, and only once its announcer inputs are listed (until then the
    /// list events wake it).
    fn wake_at(&self) -> Option<Instant> {
        let leadership = self.leadership.as_ref()?;
        let decision = leadership.announcers.due_at().filter(|_| self.inputs.synced());
        [self.inputs.next_expiry(), decision].into_iter().flatten().min()
    }

    fn inputs(&self) -> BoxStream<'static, Input> {
        let client = &self.client;
        let config = watcher::Config::default();
        let pools = watcher(Api::<IPAddressPool>::all(client.clone()), config.clone());
        let services = watcher(Api::<Service>::all(client.clone()), config.clone());
        // Namespaces only for their labels: a metadata-only watch.
        let namespaces = watcher(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), config.clone());
        // The speakers' node Leases only, in the operator's namespace.
        let leases = watcher(
            Api::<Lease>::namespaced(client.clone(), &self.settings.namespace),
            config.clone().labels(LEASE_SELECTOR),
        );
        // A slice without the label belongs to no Service.
        let slices = watcher(Api::<EndpointSlice>::all(client.clone()), config.clone().labels(SERVICE_NAME_LABEL));
        let advertisements = watcher(Api::<L2Advertisement>::all(client.clone()), config);
        let streams: [BoxStream<'static, Input>; 6] = [
            pools.backoff(WatchBackoff::default()).filter_map(logged("IPAddressPool")).map(Input::Pool).boxed(),
            services.backoff(WatchBackoff::default()).filter_map(logged("Service")).map(Input::Service).boxed(),
            namespaces.backoff(WatchBackoff::default()).filter_map(logged("Namespace")).map(Input::Namespace).boxed(),
            leases.backoff(WatchBackoff::default()).filter_map(logged("Lease")).map(Input::Lease).boxed(),
            slices
                .backoff(WatchBackoff::default())
                .filter_map(logged("EndpointSlice"))
                .map(Input::EndpointSlice)
                .boxed(),
            advertisements
                .backoff(WatchBackoff::default())
                .filter_map(logged("L2Advertisement"))
                .map(Input::Advertisement)
                .boxed(),
        ];
        futures::stream::select_all(streams).boxed()
    }

    /// Updates a cache and notes what the leader must look at again.
    fn take(&mut self, input: Input) {
        match input {
            Input::Pool(event) => {
                self.caches.pools.apply_watcher_event(&event);
                mark_synced(&mut self.caches.synced[0], &event);
                if let Some(leadership) = &mut self.leadership {
                    for pool in touched(&event) {
                        leadership.dirty_pool_specs.insert(pool.name_any());
                        // Pool labels select L2Advertisements.
                        leadership.announcers.pool_labels_seen(&pool.name_any(), pool.labels());
                    }
                    if matches!(event, watcher::Event::InitDone) {
                        // After a re-list, deleted pools are only visible as absent.
                        leadership.dirty_pool_specs.extend(leadership.applied_pools.keys().cloned());
                    }
                }
            }
            Input::Service(event) => {
                self.caches.services.apply_watcher_event(&event);
                mark_synced(&mut self.caches.synced[1], &event);
                if let Some(leadership) = &mut self.leadership {
                    for svc in touched(&event) {
                        leadership.announcers.traffic_policy_seen(&service_key(svc), service::is_local(svc));
                    }
                    leadership.dirty_services.extend(touched(&event).map(service_key));
                    if matches!(event, watcher::Event::InitDone) {
                        leadership.dirty_services.extend(leadership.allocator.assignments().map(|(k, _)| k.clone()));
                    }
                }
            }
            Input::Namespace(event) => {
                self.caches.namespaces.apply_watcher_event(&event);
                mark_synced(&mut self.caches.synced[2], &event);
                if let Some(leadership) = &mut self.leadership {
                    // Namespace labels decide serviceAllocation.namespaceSelectors.
                    let namespaces: BTreeSet<String> = touched(&event).map(|ns| ns.name_any()).collect();
                    if !namespaces.is_empty() {
                        let services = self.caches.services.as_reader();
                        leadership.dirty_services.extend(
                            services
                                .state()
                                .iter()
                                .filter(|s| namespaces.contains(&s.namespace().unwrap_or_default()))
                                .map(|s| service_key(s)),
                        );
                    }
                }
            }
            Input::Lease(event) => {
                if self.inputs.take_lease(event, Instant::now())
                    && let Some(leadership) = &mut self.leadership
                {
                    leadership.announcers.invalidate();
                }
            }
            Input::EndpointSlice(event) => {
                let touched = self.inputs.take_endpoint_slice(event);
                if let Some(leadership) = &mut self.leadership {
                    match touched {
                        Touched::Everything => leadership.announcers.invalidate(),
                        Touched::Services(services) => {
                            for key in &services {
                                leadership.announcers.endpoints_seen(key, self.inputs.endpoints());
                            }
                        }
                    }
                }
            }
            Input::Advertisement(event) => {
                if self.inputs.take_advertisement(event)
                    && let Some(leadership) = &mut self.leadership
                {
                    leadership.announcers.invalidate();
                }
            }
        }
    }

    /// Becomes the leader: restores every recorded address before anything new is allocated.
    fn lead(&mut self) {
        info!("leading: restoring the recorded allocations");
        self.metrics.set_leader(true);
        let started = Instant::now();
        let mut leadership = Leadership::default();
        let pools = self.caches.pools.as_reader();
        let services = self.caches.services.as_reader();
        let mut all_pools = pools.state();
        all_pools.sort_by_key(|p| (p.metadata.creation_timestamp.clone().map(|t| t.0), p.name_any()));
        for pool in &all_pools {
            leadership.apply_pool_spec(pool);
        }
        // What the pools' status records, for Services whose own status lost it.
        let recorded_in_pools: HashMap<ServiceKey, Assignment> = all_pools
            .iter()
            .flat_map(|pool| {
                let name = pool.name_any();
                pool.status.iter().flat_map(|s| s.allocations.iter()).map(move |a| {
                    let assignment = Assignment {
                        pool: name.clone(),
                        addresses: a.ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
                    };
                    (ServiceKey::new(&a.namespace, &a.name), assignment)
                })
            })
            .collect();
        let mut all_services = services.state();
        all_services.sort_by_key(|s| (s.metadata.creation_timestamp.clone().map(|t| t.0), service_key(s)));
        let mut restored = 0usize;
        for svc in &all_services {
            let key = service_key(svc);
            leadership.dirty_services.insert(key.clone());
            if !service::is_managed(svc, self.settings.load_balancer_class.as_deref()) {
                continue;
            }
            let Ok(request) = service::allocation_request(svc, &self.namespace_labels(svc)) else { continue };
            let recorded = service::assigned_addresses(svc);
            let assignment = if recorded.is_empty() {
                let Some(from_pool) = recorded_in_pools.get(&key) else { continue };
                from_pool.clone()
            } else {
                let pool = svc.annotations().get(annotation::ALLOCATED_FROM_POOL).cloned().unwrap_or_default();
                Assignment { pool, addresses: recorded }
            };
            match leadership.allocator.restore(&request, assignment) {
                Ok(_) => restored += 1,
                // assign() will find it a valid address and say why in an Event.
                Err(error) => warn!(service = %key, %error, "cannot keep the recorded address"),
            }
        }
        leadership.dirty_pool_status.extend(all_pools.iter().map(|p| p.name_any()));
        leadership.announcers = Announcers::from_written(
            all_pools.iter().filter_map(|pool| Some((pool.name_any(), pool.status.as_ref()?))),
        );
        info!(restored, pools = all_pools.len(), elapsed = ?started.elapsed(), "restored");
        self.leadership = Some(leadership);
    }

    /// Does what the leader has to do, within the write budget.
    fn work(&mut self, jobs: &mut JoinSet<JobOutcome>) {
        let Some(leadership) = &mut self.leadership else { return };
        let pools = self.caches.pools.as_reader();
        let namespaces = self.caches.namespaces.as_reader();
        // Pool specs first: a Service is judged against the pools as they are now.
        for name in std::mem::take(&mut leadership.dirty_pool_specs) {
            let change = match pools.get(&ObjectRef::new(&name)) {
                Some(pool) => leadership.apply_pool_spec(&pool),
                None => {
                    leadership.applied_pools.remove(&name);
                    leadership.invalid_pools.remove(&name);
                    leadership.last_status_write.remove(&name);
                    leadership.announcers.invalidate();
                    self.metrics.forget_pool(&name);
                    leadership.allocator.remove_pool(&name)
                }
            };
            leadership.take_pool_change(change, &self.writer, &self.caches.services.as_reader(), jobs);
            leadership.dirty_pool_status.insert(name);
        }
        let services = self.caches.services.as_reader();
        while jobs.len() < self.settings.write_concurrency {
            let Some(key) = leadership.next_service() else { break };
            let started = Instant::now();
            let svc = services.get(&ObjectRef::new(&key.name).within(&key.namespace));
            let namespace_labels = svc.as_ref().map(|svc| namespace_labels(&namespaces, svc)).unwrap_or_default();
            let job = leadership.reconcile_service(
                &key,
                svc.as_deref(),
                &namespace_labels,
                &self.settings,
                &self.metrics,
                &self.writer,
                jobs,
            );
            if let Some(job) = job {
                leadership.in_flight.insert(key);
                jobs.spawn(job.run());
            }
            self.metrics.observe_reconcile(Controller::Service, started.elapsed(), true);
        }
        self.decide_announcers();
        // A listing older than a pending decision is not written: the decision is at most
        // one coalescing interval away, and writing twice would cost more than waiting.
        if self.leadership.as_ref().is_some_and(|leadership| !leadership.announcers.is_stale()) {
            self.flush_pool_status(jobs);
        }
    }

    /// Decides again who announces what, if something it reads changed and the
    /// coalescing interval has passed, and marks the pools whose listing changed.
    fn decide_announcers(&mut self) {
        let Some(leadership) = &mut self.leadership else { return };
        let now = Instant::now();
        if !self.inputs.synced() || !leadership.announcers.is_due(now) {
            return;
        }
        let pools = self.caches.pools.as_reader();
        let services = self.caches.services.as_reader();
        let inputs: Vec<PoolInput> = leadership
            .allocator
            .pools()
            .map(|view| PoolInput {
                name: view.name().to_owned(),
                labels: pools.get(&ObjectRef::new(view.name())).map(|pool| pool.labels().clone()).unwrap_or_default(),
            })
            .collect();
        let is_local = |key: &ServiceKey| {
            services.get(&ObjectRef::new(&key.name).within(&key.namespace)).is_some_and(|svc| service::is_local(&svc))
        };
        let reports = leadership.announcers.decide(&leadership.allocator, inputs, is_local, &self.inputs, now);
        let (mut changed, mut moved) = (0usize, 0usize);
        for report in reports {
            self.metrics.set_announcer_addresses(&report.pool, report.announced, report.not_announced, report.unlisted);
            self.metrics.record_announcer_changes(&report.pool, report.moved);
            moved += report.moved;
            if report.changed {
                changed += 1;
                leadership.dirty_pool_status.insert(report.pool);
            }
        }
        // Conflicts come with the speakers' facts and go with their liveness, which is what
        // makes a decision due: judged here, not on every turn. One reported or over, on any
        // pool's address: every pool's condition is judged again (rare; an unchanged status is
        // not written).
        let reported = self.inputs.conflicts(now);
        if leadership.reported_conflicts != reported {
            leadership.reported_conflicts = reported;
            leadership.dirty_pool_status.extend(pools.state().iter().map(|pool| pool.name_any()));
        }
        if moved > 0 {
            info!(addresses = moved, "announcing nodes changed");
        }
        debug!(pools_changed = changed, elapsed = ?now.elapsed(), "decided who announces");
    }

    /// Writes the status of pools that changed, at most once per interval each.
    fn flush_pool_status(&mut self, jobs: &mut JoinSet<JobOutcome>) {
        let Some(leadership) = &mut self.leadership else { return };
        let pools = self.caches.pools.as_reader();
        let now = Instant::now();
        let due: Vec<String> = leadership
            .dirty_pool_status
            .iter()
            .filter(|name| {
                let listed = leadership.allocator.pool(name).map_or(0, |view| view.allocation_count());
                let interval = status_interval_for(self.settings.status_interval, listed);
                leadership.last_status_write.get(*name).is_none_or(|t| now.duration_since(*t) >= interval)
            })
            .cloned()
            .collect();
        for name in due {
            leadership.dirty_pool_status.remove(&name);
            let Some(pool) = pools.get(&ObjectRef::new(&name)) else { continue };
            let started = Instant::now();
            let view = leadership.allocator.pool(&name);
            if let Some(view) = view {
                for family in [ironlb_crds::address::Family::V4, ironlb_crds::address::Family::V6] {
                    if let Some(usage) = view.usage(family) {
                        self.metrics.set_pool_usage(&name, family, usage.usable.as_f64(), usage.assigned.as_f64());
                    }
                }
            }
            let unlisted = Listing::default();
            let listing = leadership.announcers.listing(&name).unwrap_or(&unlisted);
            let invalid = leadership.invalid_pools.get(&name);
            let status = pool_status(&pool, view, listing, invalid, &leadership.reported_conflicts, Timestamp::now());
            for (type_, reason) in
                [(condition_type::CONFLICT, "Conflict"), (condition_type::ADDRESS_CONFLICT, "AddressConflict")]
            {
                if let Some(message) = newly_true(&pool, &status, type_) {
                    jobs.spawn(self.writer.event(&*pool, writes::Note::warning(reason, message)).run());
                }
            }
            if pool.status.as_ref() != Some(&status) {
                leadership.last_status_write.insert(name.clone(), now);
                jobs.spawn(self.writer.pool_status(name, status).run());
            }
            self.metrics.observe_reconcile(Controller::Pool, started.elapsed(), true);
        }
    }

    /// Acts on a finished write.
    fn finished(&mut self, outcome: JobOutcome, jobs: &mut JoinSet<JobOutcome>) {
        let Some(leadership) = &mut self.leadership else { return };
        match outcome {
            JobOutcome::Service { key, result } => {
                leadership.in_flight.remove(&key);
                if let Err(error) = result {
                    warn!(service = %key, %error, "writing the Service failed; retrying");
                    self.metrics.observe_reconcile(Controller::Service, Duration::ZERO, false);
                    let delay = self.settings.retry_delay;
                    jobs.spawn(async move {
                        tokio::time::sleep(delay).await;
                        JobOutcome::Retry { key }
                    });
                }
            }
            JobOutcome::Retry { key } => {
                leadership.dirty_services.insert(key);
            }
            JobOutcome::PoolStatus { pool, result } => {
                if let Err(error) = result {
                    warn!(pool, %error, "writing the pool status failed; retrying");
                    self.metrics.observe_reconcile(Controller::Pool, Duration::ZERO, false);
                    leadership.dirty_pool_status.insert(pool);
                }
            }
            JobOutcome::Event { result } => {
                if let Err(error) = result {
                    warn!(%error, "publishing an Event failed");
                }
            }
        }
    }

    fn namespace_labels(&self, svc: &Service) -> Labels {
        namespace_labels(&self.caches.namespaces.as_reader(), svc)
    }
}

/// The labels of the Service's Namespace (empty while the Namespace is unknown).
fn namespace_labels(namespaces: &Store<PartialObjectMeta<Namespace>>, svc: &Service) -> Labels {
    let namespace = svc.namespace().unwrap_or_default();
    namespaces.get(&ObjectRef::new(&namespace)).map(|ns| ns.labels().clone().into_iter().collect()).unwrap_or_default()
}

/// Drops a watch error after logging it: the watcher's backoff retries, and
/// the caches keep what they had meanwhile.
fn logged<T>(kind: &'static str) -> impl FnMut(Result<T, watcher::Error>) -> futures::future::Ready<Option<T>> {
    move |result| futures::future::ready(result.map_err(|error| warn!(%error, kind, "watch failed")).ok())
}

/// The message of a `type_` condition that is true in `status` and was not
/// (with this message) in the pool's current status: worth an Event.
fn newly_true(
    pool: &IPAddressPool,
    status: &ironlb_crds::v1alpha1::IPAddressPoolStatus,
    type_: &str,
) -> Option<String> {
    let conflict = |conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]| {
        conditions.iter().find(|c| c.type_ == type_ && c.status == "True").map(|c| c.message.clone())
    };
    let now = conflict(&status.conditions)?;
    let before = pool.status.as_ref().and_then(|s| conflict(&s.conditions));
    (before.as_ref() != Some(&now)).then_some(now)
}

/// The least time between two status writes of a pool holding `allocations`:
/// one `base` interval plus one per 1,000 allocations, so the bytes written
/// per second stay about the same however big the pool grows.
pub fn status_interval_for(base: Duration, allocations: usize) -> Duration {
    let allocations = u32::try_from(allocations.min(pools::MAX_LISTED_ALLOCATIONS)).unwrap_or(u32::MAX);
    base * (1 + allocations / 1_000)
}

fn mark_synced<K>(synced: &mut bool, event: &watcher::Event<K>) {
    if matches!(event, watcher::Event::InitDone) {
        *synced = true;
    }
}

/// The objects an event is about (for a re-list, each listed object).
fn touched<K>(event: &watcher::Event<K>) -> impl Iterator<Item = &K> {
    match event {
        watcher::Event::Apply(obj) | watcher::Event::Delete(obj) | watcher::Event::InitApply(obj) => Some(obj),
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
    .into_iter()
}

fn service_key(svc: &Service) -> ServiceKey {
    ServiceKey::new(svc.namespace().unwrap_or_default(), svc.name_any())
}

impl Leadership {
    /// Gives the allocator the pool's current spec, if it is valid and new.
    fn apply_pool_spec(&mut self, pool: &IPAddressPool) -> PoolChange {
        let name = pool.name_any();
        match pool_config(pool) {
            Ok(config) => {
                self.invalid_pools.remove(&name);
                if self.applied_pools.get(&name) == Some(&pool.metadata.generation) {
                    return PoolChange::default();
                }
                self.applied_pools.insert(name, pool.metadata.generation);
                self.allocator.set_pool(config)
            }
            Err(invalid) => {
                warn!(pool = name, problem = invalid.message, "invalid pool; keeping its last valid spec");
                self.invalid_pools.insert(name, invalid);
                PoolChange::default()
            }
        }
    }

    /// Queues what a pool change means for Services and pool status.
    fn take_pool_change(
        &mut self,
        change: PoolChange,
        writer: &ApiWriter,
        services: &Store<Service>,
        jobs: &mut JoinSet<JobOutcome>,
    ) {
        for displaced in change.displaced {
            if let Some(svc) =
                services.get(&ObjectRef::new(&displaced.service.name).within(&displaced.service.namespace))
            {
                jobs.spawn(writer.event(&*svc, writes::Note::warning("IPReleased", displaced.to_string())).run());
            }
            self.dirty_services.insert(displaced.service);
        }
        for rehomed in change.rehomed {
            self.dirty_services.insert(rehomed.service);
        }
        if change.capacity_added {
            self.dirty_services.extend(self.pending.keys().cloned());
        }
        if !change.affected_pools.is_empty() {
            // Displacements are already done in the allocator.
            self.announcers.invalidate();
        }
        self.dirty_pool_status.extend(change.affected_pools);
    }

    /// The next Service to look at that has no write in flight.
    fn next_service(&mut self) -> Option<ServiceKey> {
        let key = self.dirty_services.iter().find(|key| !self.in_flight.contains(*key))?.clone();
        self.dirty_services.remove(&key);
        Some(key)
    }

    /// Decides what `key` should hold and returns the write that makes it so,
    /// if any.
    #[allow(clippy::too_many_arguments)]
    fn reconcile_service(
        &mut self,
        key: &ServiceKey,
        svc: Option<&Service>,
        namespace_labels: &Labels,
        settings: &EngineSettings,
        metrics: &Metrics,
        writer: &ApiWriter,
        jobs: &mut JoinSet<JobOutcome>,
    ) -> Option<Job> {
        let Some(svc) = svc.filter(|svc| service::is_managed(svc, settings.load_balancer_class.as_deref())) else {
            // Deleted, or no longer a LoadBalancer Service of ours.
            self.pending.remove(key);
            if let Some(released) = self.allocator.release(key) {
                self.released(&released, metrics);
                if let Some(svc) = svc {
                    let note = format!("{} released: the Service is no longer served by ironlb", list(&released));
                    jobs.spawn(writer.event(svc, writes::Note::normal("IPReleased", note)).run());
                }
            }
            // Clear what ironlb wrote on a Service that is still there.
            return svc.filter(|svc| wrote_on(svc)).map(|svc| writer.service(key.clone(), svc, None));
        };
        let before = self.allocator.assignment(key).cloned();
        let outcome = service::allocation_request(svc, namespace_labels)
            .map_err(|error| (error.to_string(), error.reason()))
            .and_then(|request: AllocationRequest| {
                self.allocator.assign(&request).map_err(|error| (error.to_string(), error.reason()))
            });
        match outcome {
            Ok(assignment) => {
                self.pending.remove(key);
                if before.as_ref() != Some(&assignment) {
                    self.announcers.invalidate();
                    if let Some(before) = &before {
                        self.dirty_pool_status.insert(before.pool.clone());
                    }
                    self.dirty_pool_status.insert(assignment.pool.clone());
                    metrics.record_allocation(&assignment.pool);
                    let note = format!("assigned {} from pool {}", list(&assignment), assignment.pool);
                    jobs.spawn(writer.event(svc, writes::Note::normal("IPAllocated", note)).run());
                }
                let current = service::assigned_addresses(svc);
                let recorded_pool = svc.annotations().get(annotation::ALLOCATED_FROM_POOL);
                let in_line = current == assignment.addresses && recorded_pool == Some(&assignment.pool);
                (!in_line).then(|| writer.service(key.clone(), svc, Some(assignment)))
            }
            Err((message, reason)) => {
                if let Some(before) = &before {
                    self.released(before, metrics);
                }
                if self.pending.get(key) != Some(&message) {
                    metrics.record_failure(reason);
                    jobs.spawn(writer.event(svc, writes::Note::warning("AllocationFailed", message.clone())).run());
                    self.pending.insert(key.clone(), message);
                }
                wrote_on(svc).then(|| writer.service(key.clone(), svc, None))
            }
        }
    }

    /// Bookkeeping for addresses a Service gave back: its pool's status
    /// changes, and pending Services may now fit.
    fn released(&mut self, released: &Assignment, metrics: &Metrics) {
        metrics.record_release();
        self.announcers.invalidate();
        self.dirty_pool_status.insert(released.pool.clone());
        self.dirty_services.extend(self.pending.keys().cloned());
    }
}

/// Whether the Service carries anything ironlb wrote: the allocated-from-pool
/// annotation, or fields owned by ironlb's field manager (another load
/// balancer's ingress is not ours to clear).
fn wrote_on(svc: &Service) -> bool {
    svc.annotations().contains_key(annotation::ALLOCATED_FROM_POOL)
        || svc.managed_fields().iter().any(|entry| entry.manager.as_deref() == Some(FIELD_MANAGER))
}

fn list(assignment: &Assignment) -> String {
    assignment.addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::status_interval_for;

    #[test]
    fn big_pools_are_written_less_often() {
        let base = Duration::from_millis(500);
        assert_eq!(status_interval_for(base, 10), base);
        assert_eq!(status_interval_for(base, 2_000), base * 3);
        // A status lists at most ~3,500 allocations, so the interval stops growing there.
        assert_eq!(status_interval_for(base, 10_000), base * 4);
    }
}
