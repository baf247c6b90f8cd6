//! The engine's state and its pure steps: every input goes in through an `on_*` method, and
//! what the cluster must be told comes out as [`Effect`]s, which the driver ([`super::Engine`])
//! turns into API writes. Nothing here holds a client or a clock of its own (`now` is passed
//! in), so every rule of the loop is tested by feeding it watch events (`tests.rs`).
//!
//! Every replica keeps its caches and announcer inputs warm; only the leader holds a
//! [`Leading`]: the allocator and what is left to do. Becoming leader builds one from the
//! caches (restoring every recorded address before anything new is allocated); losing the
//! lease drops it at once, so a standby writes nothing and holds no half-finished work, and the
//! next term starts from the caches again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironlb_core::address::Family;
use ironlb_core::announcer::PublishedConflict;
use ironlb_core::events::{Note, reason};
use ironlb_core::v1alpha1::{IPAddressPool, IPAddressPoolStatus, IPAllocationSlice, L2Advertisement, condition_type};
use ironlb_daemon::Unreadable;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;
use tracing::{debug, info, warn};

use super::advertisements::advertisement_status;
use super::announcers::{Announcers, PoolInput};
use super::listing::Listing;
use super::pools::{InvalidPool, Recorded, listed_inline, node_addresses, pool_config, pool_status};
use super::record::Record;
use super::writes::{Effect, STRAINED_SLOWDOWN, Strain, WriteDone};
use super::{EngineSettings, FIELD_MANAGER};
use crate::allocator::{AllocationRequest, Allocator, Assignment, Labels, PoolChange, ServiceKey};
use crate::service::{self, annotation};
use crate::telemetry::{Controller, Metrics};
use ironlb_core::announcer::{AnnouncerInputs, EndpointScope, Touched};

/// The longest a written Service waits for its watch to deliver the write before it is looked at
/// again anyway (a relist may skip that version).
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

/// What every step reads besides the state: the settings and where to count.
#[derive(Clone, Debug)]
pub(crate) struct Context {
    pub(crate) settings: EngineSettings,
    pub(crate) metrics: Metrics,
}

/// The caches every replica keeps, and whether each has had its first full list.
#[derive(Default)]
struct Caches {
    pools: Writer<IPAddressPool>,
    services: Writer<Service>,
    namespaces: Writer<PartialObjectMeta<Namespace>>,
    /// Kept whole (they are few and small) for the `Ready` condition the leader writes on each.
    advertisements: Writer<L2Advertisement>,
    /// The allocation record's slices, as the previous leader left them: read when a term starts.
    slices: Writer<IPAllocationSlice>,
    pools_listed: bool,
    services_listed: bool,
    namespaces_listed: bool,
    slices_listed: bool,
}

impl Caches {
    fn listed(&self) -> bool {
        self.pools_listed && self.services_listed && self.namespaces_listed && self.slices_listed
    }
}

/// What the leader holds for one term: what the allocator knows and what is left to do.
#[derive(Default)]
struct Leading {
    allocator: Allocator,
    /// Pools whose spec the allocator has (their generation), to spot changes.
    applied_pools: BTreeMap<String, Option<i64>>,
    /// Pools whose current spec is invalid, and why.
    invalid_pools: BTreeMap<String, InvalidPool>,
    /// Services to look at again.
    dirty_services: BTreeSet<ServiceKey>,
    /// Pools whose spec to apply again.
    dirty_pool_specs: BTreeSet<String>,
    /// L2Advertisements whose status to check, and write if it is not what it should be.
    dirty_advertisements: BTreeSet<String>,
    /// Pools whose status to write, and when each was last written.
    dirty_pool_status: BTreeSet<String>,
    last_status_write: HashMap<String, Instant>,
    /// Managed Services the allocator could not serve, and the last reason (an Event is sent
    /// when the reason changes, not on every retry).
    pending: BTreeMap<ServiceKey, String>,
    /// Services with a write in flight: they are not looked at until it ends.
    in_flight: BTreeSet<ServiceKey>,
    /// Services written, whose watch has not yet delivered the version the write made
    /// (`resourceVersion`), and until when to wait for it. The Service watch delivers the status
    /// write before the annotation write: looked at in between, the Service would seem to lack
    /// its annotation and be written a second time, for nothing.
    catching_up: HashMap<ServiceKey, (String, Instant)>,
    /// Who announces what, as the record lists it, and when to decide again.
    announcers: Announcers,
    /// The allocation record: every pool's allocations in its slices, and the slice writes due.
    record: Record,
    /// The address conflicts the speakers report, as the pool statuses were last built with.
    reported_conflicts: Vec<(String, PublishedConflict)>,
    /// Every node's own addresses, as the pool statuses were last built with.
    node_addresses: Vec<(String, std::net::IpAddr)>,
    /// The live speakers of an older release, which read only the pool status's list: while
    /// there is one, the pool status lists every allocation it can hold, as that release did.
    slice_unaware: Vec<String>,
    /// Whether the API server was strained when decisions were last considered.
    strained: bool,
}

/// The engine's state. Feed it with the `on_*` methods; execute what they return.
pub(crate) struct EngineState {
    context: Context,
    caches: Caches,
    inputs: AnnouncerInputs,
    leading: Option<Leading>,
    /// Writes handed out and not yet reported done: bounded by `write_concurrency`.
    writes_in_flight: usize,
    /// Whether the API server is strained, as the writes find it.
    strain: Strain,
    /// The unreadable objects (uid, resourceVersion) already reported with an Event.
    reported_unreadable: BTreeSet<(Option<String>, Option<String>)>,
}

impl std::fmt::Debug for EngineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineState")
            .field("leading", &self.leading.is_some())
            .field("writes_in_flight", &self.writes_in_flight)
            .finish_non_exhaustive()
    }
}

impl EngineState {
    pub(crate) fn new(context: Context) -> Self {
        Self {
            context,
            caches: Caches::default(),
            inputs: AnnouncerInputs::new(EndpointScope::Cluster),
            leading: None,
            writes_in_flight: 0,
            strain: Strain::default(),
            reported_unreadable: BTreeSet::new(),
        }
    }

    /// Whether every cache and every announcer input has had its first full list: the replica
    /// is ready (and may lead).
    pub(crate) fn is_synced(&self) -> bool {
        self.caches.listed() && self.inputs.synced().all()
    }

    /// Whether this replica holds a term's state.
    pub(crate) fn is_leading(&self) -> bool {
        self.leading.is_some()
    }

    /// When the loop must wake up without an event: the next Lease expiry, or the end of the
    /// interval a pending decision waits for. Only the leader decides, and only once its
    /// announcer inputs are listed (until then the list events wake it).
    pub(crate) fn wake_at(&self, now: Instant) -> Option<Instant> {
        let leading = self.leading.as_ref()?;
        let decision = leading.announcers.due_at().filter(|_| self.inputs.synced().all());
        // The end of a strain: the record is then decided again from current liveness.
        let strain = self.strain.ends_at(now);
        let forget = leading.announcers.next_mark_expiry();
        [self.inputs.next_expiry(), decision, leading.record.next_due(), strain, forget].into_iter().flatten().min()
    }

    /// The record's slices as the watch delivers them. Only read when a term starts: during a
    /// term the leader is their one writer and knows what they hold.
    pub(crate) fn on_slice(&mut self, event: Event<IPAllocationSlice>) {
        self.caches.slices.apply_watcher_event(&event);
        self.caches.slices_listed |= matches!(event, Event::InitDone);
    }

    pub(crate) fn on_pool(&mut self, event: Event<IPAddressPool>) {
        self.caches.pools.apply_watcher_event(&event);
        self.caches.pools_listed |= matches!(event, Event::InitDone);
        let Some(leading) = &mut self.leading else { return };
        for pool in touched(&event) {
            leading.dirty_pool_specs.insert(pool.name_any());
            // Pool labels select L2Advertisements.
            leading.announcers.pool_labels_seen(&pool.name_any(), pool.labels());
        }
        if matches!(event, Event::InitDone) {
            // After a relist, deleted pools are only visible as absent.
            leading.dirty_pool_specs.extend(leading.applied_pools.keys().cloned());
        }
    }

    pub(crate) fn on_service(&mut self, event: Event<Service>) {
        self.caches.services.apply_watcher_event(&event);
        self.caches.services_listed |= matches!(event, Event::InitDone);
        let Some(leading) = &mut self.leading else { return };
        for svc in touched(&event) {
            let key = service_key(svc);
            leading.announcers.traffic_policy_seen(&key, service::is_local(svc));
            let caught_up = |(version, _): &(String, Instant)| svc.metadata.resource_version.as_ref() == Some(version);
            if leading.catching_up.get(&key).is_some_and(caught_up) || matches!(event, Event::Delete(_)) {
                leading.catching_up.remove(&key);
            }
        }
        leading.dirty_services.extend(touched(&event).map(service_key));
        if matches!(event, Event::InitDone) {
            // A Service deleted while the watch was down shows only as absent.
            leading.dirty_services.extend(leading.allocator.assignments().map(|(key, _)| key.clone()));
        }
    }

    pub(crate) fn on_namespace(&mut self, event: Event<PartialObjectMeta<Namespace>>) {
        self.caches.namespaces.apply_watcher_event(&event);
        self.caches.namespaces_listed |= matches!(event, Event::InitDone);
        let Some(leading) = &mut self.leading else { return };
        // Namespace labels decide serviceAllocation.namespaceSelectors.
        let namespaces: BTreeSet<String> = touched(&event).map(|ns| ns.name_any()).collect();
        if namespaces.is_empty() {
            return;
        }
        let services = self.caches.services.as_reader();
        leading.dirty_services.extend(
            services
                .state()
                .iter()
                .filter(|svc| namespaces.contains(&svc.namespace().unwrap_or_default()))
                .map(|svc| service_key(svc)),
        );
    }

    pub(crate) fn on_lease(&mut self, event: Event<k8s_openapi::api::coordination::v1::Lease>, now: Instant) {
        if self.inputs.take_lease(event, now)
            && let Some(leading) = &mut self.leading
        {
            leading.announcers.invalidate();
        }
    }

    pub(crate) fn on_endpoint_slice(&mut self, event: Event<k8s_openapi::api::discovery::v1::EndpointSlice>) {
        let touched = self.inputs.take_endpoint_slice(event);
        let Some(leading) = &mut self.leading else { return };
        match touched {
            Touched::Everything => leading.announcers.invalidate(),
            Touched::Services(services) => {
                for key in &services {
                    leading.announcers.endpoints_seen(key, self.inputs.endpoints());
                }
            }
        }
    }

    pub(crate) fn on_advertisement(&mut self, event: Event<L2Advertisement>) {
        self.caches.advertisements.apply_watcher_event(&event);
        if let Some(leading) = &mut self.leading {
            leading.dirty_advertisements.extend(touched(&event).map(ResourceExt::name_any));
        }
        if self.inputs.take_advertisement(event)
            && let Some(leading) = &mut self.leading
        {
            leading.announcers.invalidate();
        }
    }

    /// An object a watch could not decode was skipped: counted, and reported once per version as a
    /// Warning Event on it (by the leader: a standby writes nothing), so `kubectl describe` of
    /// that object says why ironlb ignores it.
    pub(crate) fn on_unreadable(&mut self, unreadable: Unreadable) -> Vec<Effect> {
        let kind = unreadable.object.kind.clone().unwrap_or_default();
        self.context.metrics.record_unreadable(&kind);
        let version = (unreadable.object.uid.clone(), unreadable.object.resource_version.clone());
        if self.leading.is_none() || !self.reported_unreadable.insert(version) {
            return Vec::new();
        }
        let message = format!(
            "ironlb cannot read this {kind} and ignores it (every other object keeps working): {}; fix or \
             re-create it",
            unreadable.error
        );
        let effects = vec![Effect::PostEvent {
            regarding: unreadable.object,
            note: Note::warning(reason::UNREADABLE_OBJECT, message),
        }];
        self.count(effects)
    }

    /// The lease is lost: stop at once and forget the term. The caches stay warm; writes already
    /// on the wire finish, and their outcomes are ignored.
    pub(crate) fn on_lost_leadership(&mut self) {
        if self.leading.take().is_some() {
            warn!("lost the leader lease: standing by, caches kept");
            self.context.metrics.set_leader(false);
        }
    }

    /// A write the driver ran has ended at `now`, after `took`.
    pub(crate) fn on_write_done(&mut self, done: WriteDone, took: Duration, now: Instant) -> Vec<Effect> {
        self.writes_in_flight = self.writes_in_flight.saturating_sub(1);
        if !matches!(done, WriteDone::Retry { .. }) {
            self.strain.observe(done.error(), took, now);
        }
        if let Some(leading) = &mut self.leading
            && !matches!(done, WriteDone::Retry { .. })
            && done.error().is_none()
        {
            leading.record.api_answers(now);
        }
        let mut effects = Vec::new();
        let Some(leading) = &mut self.leading else { return effects };
        match done {
            WriteDone::Service { key, result } => {
                leading.in_flight.remove(&key);
                if let Ok(Some(version)) = &result {
                    leading.catching_up.insert(key.clone(), (version.clone(), now + CATCH_UP_WAIT));
                }
                if let Err(error) = result {
                    warn!(service = %key, %error, "writing the Service failed; retrying");
                    self.context.metrics.observe_reconcile(Controller::Service, Duration::ZERO, false);
                    effects.push(Effect::RetryService { key, after: self.context.settings.retry_delay });
                }
            }
            WriteDone::Retry { key } => {
                leading.dirty_services.insert(key);
            }
            WriteDone::AdvertisementStatus { advertisement, result } => {
                if let Err(error) = result {
                    warn!(advertisement, %error, "writing the L2Advertisement status failed; retrying");
                    leading.dirty_advertisements.insert(advertisement);
                }
            }
            WriteDone::Slice { pool, index, deleted, outcome, error } => {
                if let Some(error) = error {
                    warn!(pool, index, %error, "writing an allocation slice failed; retrying after a back-off");
                    self.context.metrics.observe_reconcile(Controller::Pool, Duration::ZERO, false);
                }
                leading.record.written(&pool, index, deleted, outcome, now);
            }
            WriteDone::PoolStatus { pool, result } => {
                if let Err(error) = result {
                    warn!(pool, %error, "writing the pool status failed; retrying");
                    self.context.metrics.observe_reconcile(Controller::Pool, Duration::ZERO, false);
                    leading.dirty_pool_status.insert(pool);
                }
            }
            WriteDone::Event { result } => {
                if let Err(error) = result {
                    warn!(%error, "publishing an Event failed");
                }
            }
        }
        self.count(effects)
    }

    /// One turn of the loop at `now`, after its input was taken: `leader` says whether the
    /// elector grants this replica the lease. Returns the writes to run.
    pub(crate) fn on_turn(&mut self, now: Instant, leader: bool) -> Vec<Effect> {
        if self.inputs.expired(now)
            && let Some(leading) = &mut self.leading
        {
            leading.announcers.invalidate();
        }
        if !leader {
            self.on_lost_leadership();
            return Vec::new();
        }
        if !self.caches.listed() {
            return Vec::new();
        }
        if self.leading.is_none() {
            self.lead(now);
        }
        let mut effects = Vec::new();
        self.work(now, &mut effects);
        self.count(effects)
    }

    /// Counts the writes handed out (a retry is a timer, not a write).
    fn count(&mut self, effects: Vec<Effect>) -> Vec<Effect> {
        self.writes_in_flight += effects.iter().filter(|effect| !matches!(effect, Effect::RetryService { .. })).count();
        effects
    }

    /// Becomes the leader: restores every recorded address before anything new is allocated.
    fn lead(&mut self, now: Instant) {
        info!("leading: restoring the recorded allocations");
        self.context.metrics.set_leader(true);
        let started = Instant::now();
        let mut leading = Leading::default();
        let pools = self.caches.pools.as_reader();
        let services = self.caches.services.as_reader();
        let mut all_pools = pools.state();
        all_pools.sort_by_key(|p| (p.metadata.creation_timestamp.clone().map(|t| t.0), p.name_any()));
        for pool in &all_pools {
            leading.apply_pool_spec(pool);
        }
        leading.record = Record::restore(self.caches.slices.as_reader().state().iter().map(|slice| &**slice));
        // Slices of a pool deleted while nobody led: deleted (the garbage collector would too).
        let gone: Vec<String> = leading
            .record
            .pools()
            .filter(|pool| !leading.applied_pools.contains_key(*pool))
            .map(str::to_owned)
            .collect();
        for pool in gone {
            leading.record.remove_pool(&pool);
        }
        // What the record holds, for Services whose own status lost it: the slices, and the pool
        // status's own list, which held every allocation before the record was sliced.
        let mut recorded_in_pools: HashMap<ServiceKey, Assignment> = HashMap::new();
        for pool in &all_pools {
            let name = pool.name_any();
            let inline = pool.status.iter().flat_map(|s| s.allocations.iter().cloned());
            for a in leading.record.allocations(&name).into_iter().chain(inline) {
                let assignment = Assignment {
                    pool: name.clone(),
                    addresses: a.ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
                };
                recorded_in_pools.entry(ServiceKey::new(&a.namespace, &a.name)).or_insert(assignment);
            }
        }
        let mut all_services = services.state();
        all_services.sort_by_key(|s| (s.metadata.creation_timestamp.clone().map(|t| t.0), service_key(s)));
        let namespaces = self.caches.namespaces.as_reader();
        let mut restored = 0usize;
        for svc in &all_services {
            let key = service_key(svc);
            leading.dirty_services.insert(key.clone());
            if !service::is_managed(svc, self.context.settings.load_balancer_class.as_deref()) {
                continue;
            }
            let Ok(request) = service::allocation_request(svc, &namespace_labels(&namespaces, svc)) else { continue };
            let recorded = service::assigned_addresses(svc);
            let assignment = if recorded.is_empty() {
                let Some(from_pool) = recorded_in_pools.get(&key) else { continue };
                from_pool.clone()
            } else {
                let pool = svc.annotations().get(annotation::ALLOCATED_FROM_POOL).cloned().unwrap_or_default();
                Assignment { pool, addresses: recorded }
            };
            match leading.allocator.restore(&request, assignment) {
                Ok(_) => restored += 1,
                // assign() will find it a valid address and say why in an Event.
                Err(error) => warn!(service = %key, %error, "cannot keep the recorded address"),
            }
        }
        leading.dirty_pool_status.extend(all_pools.iter().map(|p| p.name_any()));
        leading
            .dirty_advertisements
            .extend(self.caches.advertisements.as_reader().state().iter().map(|a| a.name_any()));
        let written: Vec<(String, Vec<_>)> =
            leading.record.pools().map(|pool| (pool.to_owned(), leading.record.allocations(pool))).collect();
        leading.announcers = Announcers::from_written(written, now);
        info!(restored, pools = all_pools.len(), elapsed = ?started.elapsed(), "restored");
        self.leading = Some(leading);
    }

    /// Does what the leader has to do, within the write budget.
    fn work(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let Some(leading) = &mut self.leading else { return };
        let advertisements = self.caches.advertisements.as_reader();
        for name in std::mem::take(&mut leading.dirty_advertisements) {
            let Some(advertisement) = advertisements.get(&ObjectRef::new(&name)) else { continue };
            let status = advertisement_status(&advertisement, Timestamp::now());
            if advertisement.status.as_ref() != Some(&status) {
                effects.push(Effect::WriteAdvertisementStatus { advertisement: name, status });
            }
        }
        let context = &self.context;
        let pools = self.caches.pools.as_reader();
        let services = self.caches.services.as_reader();
        let namespaces = self.caches.namespaces.as_reader();
        // Pool specs first: a Service is judged against the pools as they are now.
        for name in std::mem::take(&mut leading.dirty_pool_specs) {
            let change = match pools.get(&ObjectRef::new(&name)) {
                Some(pool) => leading.apply_pool_spec(&pool),
                None => {
                    leading.applied_pools.remove(&name);
                    leading.invalid_pools.remove(&name);
                    leading.last_status_write.remove(&name);
                    leading.announcers.invalidate();
                    leading.record.remove_pool(&name);
                    context.metrics.forget_pool(&name);
                    leading.allocator.remove_pool(&name)
                }
            };
            leading.take_pool_change(change, &services, effects);
            leading.dirty_pool_status.insert(name);
        }
        let mut budget = context.settings.write_concurrency.saturating_sub(self.writes_in_flight);
        while budget > 0 {
            let Some(key) = leading.next_service(now) else { break };
            let started = Instant::now();
            let svc = services.get(&ObjectRef::new(&key.name).within(&key.namespace));
            let labels = svc.as_ref().map(|svc| namespace_labels(&namespaces, svc)).unwrap_or_default();
            let before = effects.len();
            if let Some(write) = leading.reconcile_service(&key, svc, &labels, context, effects) {
                leading.in_flight.insert(key);
                effects.push(write);
            }
            budget = budget.saturating_sub(effects.len() - before);
            context.metrics.observe_reconcile(Controller::Service, started.elapsed(), true);
        }
        self.decide_announcers(now);
        // A listing older than a pending decision is not written: the decision is at most one
        // coalescing interval away, and writing twice would cost more than waiting.
        if self.leading.as_ref().is_some_and(|leading| !leading.announcers.is_stale()) {
            self.flush_slices(now, effects);
            self.flush_pool_status(now, effects);
        }
    }

    /// Writes the record's slices that are due, within the write budget.
    fn flush_slices(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let interval = self.context.settings.status_interval * self.slowdown(now);
        let Some(leading) = &mut self.leading else { return };
        let handed_out = effects.iter().filter(|effect| !matches!(effect, Effect::RetryService { .. })).count();
        let budget = self.context.settings.write_concurrency.saturating_sub(self.writes_in_flight + handed_out);
        let pools = self.caches.pools.as_reader();
        for write in leading.record.due(now, budget, interval) {
            let owner = pools
                .get(&ObjectRef::new(write.slice().0))
                .and_then(|pool| kube::Resource::controller_owner_ref(&*pool, &()));
            effects.push(Effect::WriteSlice { write, owner });
        }
    }

    /// Decides again who announces what, if something it reads changed and the coalescing
    /// interval has passed, and marks the pools whose listing changed.
    fn decide_announcers(&mut self, now: Instant) {
        let Some(leading) = &mut self.leading else { return };
        let strained = self.strain.is_strained(now);
        if leading.strained && !strained {
            // The strain is over: Leases judged meanwhile are judged again from what is seen now,
            // whether or not anything else changed.
            leading.announcers.invalidate();
        }
        leading.strained = strained;
        if !self.inputs.synced().all() || !leading.announcers.is_due(now) {
            return;
        }
        let pools = self.caches.pools.as_reader();
        let services = self.caches.services.as_reader();
        let inputs: Vec<PoolInput> = leading
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
        let reports = leading.announcers.decide(&leading.allocator, inputs, is_local, &self.inputs, now, strained);
        let metrics = &self.context.metrics;
        let (mut changed, mut moved) = (0usize, 0usize);
        for report in reports {
            metrics.set_announcer_addresses(&report.pool, report.announced, report.not_announced);
            metrics.record_announcer_changes(&report.pool, report.moved);
            moved += report.moved;
            if report.changed {
                changed += 1;
                if let Some(listing) = leading.announcers.listing(&report.pool) {
                    leading.record.set_pool(&report.pool, &listing.allocations);
                }
                leading.dirty_pool_status.insert(report.pool);
            }
        }
        // Conflicts come with the speakers' facts and go with their liveness, which is what makes
        // a decision due: judged here, not on every turn. One reported or over, on any pool's
        // address: every pool's condition is judged again (rare; an unchanged status is not written).
        let reported = self.inputs.conflicts(now);
        // Node addresses, likewise, come with the speakers' facts.
        let node_addresses = node_addresses(&self.inputs.nodes(now));
        let slice_unaware = self.inputs.slice_unaware_speakers(now);
        if leading.slice_unaware != slice_unaware {
            info!(speakers = ?slice_unaware, "speakers reading only the pool status's allocation list (an older release)");
        }
        if leading.reported_conflicts != reported
            || leading.node_addresses != node_addresses
            || leading.slice_unaware != slice_unaware
        {
            leading.reported_conflicts = reported;
            leading.node_addresses = node_addresses;
            leading.slice_unaware = slice_unaware;
            leading.dirty_pool_status.extend(pools.state().iter().map(|pool| pool.name_any()));
        }
        if moved > 0 {
            info!(addresses = moved, "announcing nodes changed");
        }
        debug!(pools_changed = changed, elapsed = ?now.elapsed(), "decided who announces");
    }

    /// How many times less often the record and the pool statuses are written at `now`.
    fn slowdown(&self, now: Instant) -> u32 {
        if self.strain.is_strained(now) { STRAINED_SLOWDOWN } else { 1 }
    }

    /// Writes the status of pools that changed, at most once per interval each.
    fn flush_pool_status(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let slowdown = self.slowdown(now);
        let Some(leading) = &mut self.leading else { return };
        let pools = self.caches.pools.as_reader();
        let (settings, metrics) = (&self.context.settings, &self.context.metrics);
        let due: Vec<String> = leading
            .dirty_pool_status
            .iter()
            .filter(|name| {
                let interval = settings.status_interval * slowdown;
                leading.last_status_write.get(*name).is_none_or(|t| now.duration_since(*t) >= interval)
            })
            .cloned()
            .collect();
        for name in due {
            leading.dirty_pool_status.remove(&name);
            let Some(pool) = pools.get(&ObjectRef::new(&name)) else { continue };
            let started = Instant::now();
            let view = leading.allocator.pool(&name);
            if let Some(view) = view {
                for family in [Family::V4, Family::V6] {
                    if let Some(usage) = view.usage(family) {
                        metrics.set_pool_usage(&name, family, usage.usable.as_f64(), usage.assigned.as_f64());
                    }
                }
            }
            let nothing = Listing::default();
            let listing = leading.announcers.listing(&name).unwrap_or(&nothing);
            let inline = listed_inline(&listing.allocations, !leading.slice_unaware.is_empty());
            let record = leading.record.summary(&name, inline);
            let invalid = leading.invalid_pools.get(&name);
            let reported = &leading.reported_conflicts;
            let recorded = Recorded { listing, record, inline };
            let status =
                pool_status(&pool, view, recorded, invalid, reported, &leading.node_addresses, Timestamp::now());
            for (type_, reason) in [
                (condition_type::CONFLICT, reason::CONFLICT),
                (condition_type::ADDRESS_CONFLICT, reason::ADDRESS_CONFLICT),
                (condition_type::NODE_ADDRESS_IN_POOL, reason::NODE_ADDRESS_IN_POOL),
            ] {
                if let Some(message) = newly_true(&pool, &status, type_) {
                    effects.push(Effect::event(&*pool, Note::warning(reason, message)));
                }
            }
            if pool.status.as_ref() != Some(&status) {
                leading.last_status_write.insert(name.clone(), now);
                effects.push(Effect::WritePoolStatus { pool: name, status });
            }
            metrics.observe_reconcile(Controller::Pool, started.elapsed(), true);
        }
    }
}

/// The labels of the Service's Namespace (empty while the Namespace is unknown).
fn namespace_labels(namespaces: &Store<PartialObjectMeta<Namespace>>, svc: &Service) -> Labels {
    let namespace = svc.namespace().unwrap_or_default();
    namespaces.get(&ObjectRef::new(&namespace)).map(|ns| ns.labels().clone().into_iter().collect()).unwrap_or_default()
}

/// The message of a `type_` condition that is true in `status` and was not (with this message)
/// in the pool's current status: worth an Event.
fn newly_true(pool: &IPAddressPool, status: &IPAddressPoolStatus, type_: &str) -> Option<String> {
    let conflict = |conditions: &[Condition]| {
        conditions.iter().find(|c| c.type_ == type_ && c.status == "True").map(|c| c.message.clone())
    };
    let now = conflict(&status.conditions)?;
    let before = pool.status.as_ref().and_then(|s| conflict(&s.conditions));
    (before.as_ref() != Some(&now)).then_some(now)
}

/// The objects an event is about (for a relist, each listed object).
fn touched<K>(event: &Event<K>) -> impl Iterator<Item = &K> {
    match event {
        Event::Apply(obj) | Event::Delete(obj) | Event::InitApply(obj) => Some(obj),
        Event::Init | Event::InitDone => None,
    }
    .into_iter()
}

fn service_key(svc: &Service) -> ServiceKey {
    ServiceKey::new(svc.namespace().unwrap_or_default(), svc.name_any())
}

impl Leading {
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
    fn take_pool_change(&mut self, change: PoolChange, services: &Store<Service>, effects: &mut Vec<Effect>) {
        for displaced in change.displaced {
            if let Some(svc) =
                services.get(&ObjectRef::new(&displaced.service.name).within(&displaced.service.namespace))
            {
                effects.push(Effect::event(&*svc, Note::warning(reason::IP_RELEASED, displaced.to_string())));
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

    /// The next Service to look at that has no write in flight, and whose last write the watch has
    /// delivered (or was given [`CATCH_UP_WAIT`] to).
    fn next_service(&mut self, now: Instant) -> Option<ServiceKey> {
        self.catching_up.retain(|_, (_, until)| now < *until);
        let key = self
            .dirty_services
            .iter()
            .find(|key| !self.in_flight.contains(*key) && !self.catching_up.contains_key(*key))?
            .clone();
        self.dirty_services.remove(&key);
        Some(key)
    }

    /// Decides what `key` should hold: pushes its Events to `effects` and returns the write that
    /// makes the Service show it, if any.
    fn reconcile_service(
        &mut self,
        key: &ServiceKey,
        svc: Option<Arc<Service>>,
        namespace_labels: &Labels,
        context: &Context,
        effects: &mut Vec<Effect>,
    ) -> Option<Effect> {
        let metrics = &context.metrics;
        let managed =
            svc.clone().filter(|svc| service::is_managed(svc, context.settings.load_balancer_class.as_deref()));
        let Some(svc) = managed else {
            // Deleted, or no longer a LoadBalancer Service of ours.
            self.pending.remove(key);
            if let Some(released) = self.allocator.release(key) {
                self.released(&released, metrics);
                if let Some(svc) = &svc {
                    let note = format!("{} released: the Service is no longer served by ironlb", list(&released));
                    effects.push(Effect::event(&**svc, Note::normal(reason::IP_RELEASED, note)));
                }
            }
            // Clear what ironlb wrote on a Service that is still there.
            return svc.filter(|svc| wrote_on(svc)).map(|_| Effect::write_service(key.clone(), None));
        };
        let before = self.allocator.assignment(key).cloned();
        let outcome = service::allocation_request(&svc, namespace_labels)
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
                    effects.push(Effect::event(&*svc, Note::normal(reason::IP_ALLOCATED, note)));
                }
                let current = service::assigned_addresses(&svc);
                let recorded_pool = svc.annotations().get(annotation::ALLOCATED_FROM_POOL);
                let in_line = current == assignment.addresses && recorded_pool == Some(&assignment.pool);
                (!in_line).then(|| Effect::write_service(key.clone(), Some(assignment)))
            }
            Err((message, failure)) => {
                if let Some(before) = &before {
                    self.released(before, metrics);
                }
                if self.pending.get(key) != Some(&message) {
                    metrics.record_failure(failure);
                    effects.push(Effect::event(&*svc, Note::warning(reason::ALLOCATION_FAILED, message.clone())));
                    self.pending.insert(key.clone(), message);
                }
                wrote_on(&svc).then(|| Effect::write_service(key.clone(), None))
            }
        }
    }

    /// Bookkeeping for addresses a Service gave back: its pool's status changes, and pending
    /// Services may now fit.
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
