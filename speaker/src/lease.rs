//! The speaker's liveness record: one `coordination.k8s.io/v1` Lease per node.
//!
//! Where this sits: every speaker keeps the Lease `ironlb-speaker-<node>` renewed ([`NodeLease`]).
//! Every speaker also watches all of these Leases (by [`LEASE_SELECTOR`]) and counts a node as
//! eligible to announce only while its Lease is live ([`lease_is_live`]); the winner of each address
//! is then picked among the live, eligible nodes by the deterministic function in `ironlb-core`. So
//! a speaker that stops renewing drops out of every peer's view, and the address it announced moves
//! to the next winner; a speaker that shuts down gracefully deletes its Lease, and the address moves
//! as soon as the peers' watch delivers the deletion.
//!
//! Design choices:
//!
//! - **One Lease per node, not per Service**: the API write rate grows with nodes, not with
//!   Services (see [`LeaseSettings`] for the numbers).
//! - **Ownership by node, no election.** The Lease belongs to the node; whichever speaker pod runs
//!   there takes it over without waiting for it to expire, so a restarted speaker is live again after
//!   its first write and announces what it announced before (no flap).
//! - **Every write is conditional** on the `resourceVersion` last seen, and the delete on shutdown on
//!   the `uid` and `resourceVersion` too: a pod that is shutting down never deletes a Lease that a
//!   newer pod on the same node (a DaemonSet surge) has already renewed.
//! - **The data plane outlives the control plane.** Failed renewals are logged and retried every
//!   interval, forever; [`NodeLease::run`] returns only on shutdown. Whether announcing continues is
//!   for the caller to decide (it keeps going); readiness reads [`NodeLease::renewed`].
//! - **No clock is compared across machines.** Peers time a Lease from when *they* saw it change, on
//!   their own monotonic clock, as client-go's leader election does; `renewTime` is for people.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior, interval, timeout};

#[cfg(test)]
mod tests;

pub use ironlb_core::announcer::peers::{LEASE_NAME_PREFIX, LEASE_SELECTOR, NODE_LABEL, lease_name, lease_node};
use ironlb_core::announcer::peers::{NODE_FACTS_ANNOTATION, lease_lifetime};

/// Longest label value the API server accepts.
const MAX_LABEL_VALUE: usize = 63;
/// Longest object name (a DNS subdomain) the API server accepts.
const MAX_NAME: usize = 253;

/// Timing of the node Lease.
///
/// The defaults (duration 2 s, renew every 500 ms) aim at the failover goal of the project (median
/// crash failover under 2 s) while tolerating three consecutive failed or slow renewals before peers
/// consider a healthy node gone:
///
/// - **Crash failover.** A speaker that dies `u` after its last renewal (`0 ≤ u < renew_interval`)
///   is dropped by its peers `duration − u` after the crash, plus one watch delivery: 1.5–2 s at
///   the defaults (median ≈ 1.75 s). A graceful shutdown deletes the Lease, so it costs only the
///   watch delivery.
/// - **False failover.** A node is dropped after `duration / renew_interval − 1` missed renewals in
///   a row: 3 at the defaults, i.e. a 1.5 s API-server stall is survived, a 2 s one is not.
/// - **API cost.** Each node writes `1 / renew_interval` times a second, so the cluster writes
///   `nodes / renew_interval` per second: **200 writes/s at 100 nodes** (2 per node per second).
///   Every speaker watches every node Lease, so the API server also delivers
///   `nodes² / renew_interval` watch events per second: 20,000/s at 100 nodes (each ~0.5 kB).
///   On a small control plane, `duration` 3 s / `renew_interval` 1 s halves both costs (100 writes/s,
///   10,000 events/s at 100 nodes) for a crash failover of 2–3 s.
///
/// For comparison, the kubelet's node Lease is 40 s / 10 s: a failover of tens of seconds, which is
/// what MetalLB users report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseSettings {
    /// How long peers count the node as live after they last saw its Lease change. Written to the
    /// Lease as `leaseDurationSeconds`, rounded up to whole seconds (the API has no finer unit).
    pub duration: Duration,
    /// How often the speaker renews. Must be shorter than `duration`; the ratio is how many
    /// renewals in a row may fail before peers drop the node.
    pub renew_interval: Duration,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        Self { duration: Duration::from_secs(2), renew_interval: Duration::from_millis(500) }
    }
}

impl LeaseSettings {
    /// Checks that the settings can be written to a Lease and leave room for a renewal.
    pub fn validate(&self) -> Result<(), LeaseError> {
        if self.renew_interval.is_zero() {
            return Err(LeaseError::InvalidSettings("the renew interval must be positive"));
        }
        // `leaseDurationSeconds` is a whole number of seconds; rounding 0.5 s up to 1 s would
        // silently double what was asked for, so refuse instead.
        if self.duration < Duration::from_secs(1) {
            return Err(LeaseError::InvalidSettings("the lease duration must be at least one second"));
        }
        // Peers hold a node whose Lease expired until another node's renewal is seen half a
        // duration after its last one (see `Peers::node_facts`): with renewals at most half a
        // duration apart, a crash is still noticed at the Lease duration.
        if self.renew_interval * 2 > self.duration {
            return Err(LeaseError::InvalidSettings("the renew interval must be at most half the lease duration"));
        }
        if i32::try_from(self.duration.as_secs().saturating_add(1)).is_err() {
            return Err(LeaseError::InvalidSettings("the lease duration is too long"));
        }
        Ok(())
    }

    /// `duration` in whole seconds, rounded up: peers wait at least as long as asked, never less.
    pub fn lease_duration_seconds(&self) -> i32 {
        let seconds = self.duration.as_secs() + u64::from(self.duration.subsec_nanos() > 0);
        // `validate` bounds this; saturating keeps unvalidated settings from panicking.
        i32::try_from(seconds).unwrap_or(i32::MAX)
    }
}

/// When peers stop counting a Lease as live: `observed_at` plus the holder's `leaseDurationSeconds`.
///
/// `observed_at` is when the caller's watch last saw the Lease change, on the caller's monotonic
/// clock. `renewTime` is deliberately ignored: it comes from another machine's wall clock, and a skew
/// of a few seconds (common without tight NTP) would exceed the whole lease duration, making a dead
/// node look live or a live one dead. Timing from local observation only errs by the watch delivery
/// delay, and always towards "live a little longer". `None` for a Lease that names no holder or
/// promises no positive duration: it is not live at all.
pub fn lease_expires_at(lease: &Lease, observed_at: Instant) -> Option<Instant> {
    // `leaseDurationSeconds` is an i32, so this cannot overflow a monotonic clock in practice.
    observed_at.checked_add(lease_lifetime(lease)?)
}

/// Whether a peer's Lease is live at `now`: it names a holder and `now < observed_at +
/// leaseDurationSeconds`, with `observed_at` taken from the caller's own clock when its watch last
/// saw the Lease change (see [`lease_expires_at`] for why). Callers should also schedule a check at
/// [`lease_expires_at`], since an expiry is the absence of an event.
pub fn lease_is_live(lease: &Lease, observed_at: Instant, now: Instant) -> bool {
    lease_expires_at(lease, observed_at).is_some_and(|expires_at| now < expires_at)
}

/// Errors of the node Lease. API failures while renewing are logged and retried, never returned.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The settings cannot be written to a Lease or leave no room for a renewal.
    #[error("invalid node lease settings: {0}")]
    InvalidSettings(&'static str),
    /// The node name or identity cannot be used (empty, or too long for a Lease name).
    #[error("invalid {what} {value:?} for the node lease")]
    InvalidName {
        /// `"node name"` or `"identity"`.
        what: &'static str,
        /// The value refused.
        value: String,
    },
    /// A request about the Lease failed.
    #[error("request for lease {lease} failed")]
    Api {
        /// `namespace/name` of the Lease.
        lease: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// Deleting the Lease on shutdown did not finish within a lease duration, after which peers
    /// have dropped the node anyway.
    #[error("deleting lease {lease} timed out")]
    DeleteTimedOut {
        /// `namespace/name` of the Lease.
        lease: String,
    },
}

/// Keeps this node's Lease renewed, and deletes it on shutdown.
pub struct NodeLease {
    api: Api<Lease>,
    namespace: String,
    name: String,
    node: String,
    identity: String,
    settings: LeaseSettings,
    /// The Lease as last read or written; its `resourceVersion` conditions the next write. `None`
    /// when unknown (not yet read, or a conflict whose re-read failed): the next tick reads first.
    seen: Option<Lease>,
    /// When the last successful renewal was sent.
    renewed: watch::Sender<Option<Instant>>,
    /// The node's facts, written to the Lease as the [`NODE_FACTS_ANNOTATION`] (see
    /// [`Self::publishing`]); `None` leaves the annotation alone.
    facts: Option<watch::Receiver<String>>,
    /// Called on every failed or timed-out renewal (the speaker counts them in a metric).
    on_failure: Option<Box<dyn Fn() + Send + Sync>>,
}

impl fmt::Debug for NodeLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeLease")
            .field("lease", &self.key())
            .field("identity", &self.identity)
            .field("settings", &self.settings)
            .field("renewed", &*self.renewed.borrow())
            .finish_non_exhaustive()
    }
}

impl NodeLease {
    /// The Lease `ironlb-speaker-<node_name>` in `namespace` (the speaker's own), held by `identity`
    /// (the pod name, so `kubectl get lease` shows which pod renews it).
    pub fn new(
        client: Client,
        namespace: &str,
        node_name: impl Into<String>,
        identity: impl Into<String>,
        settings: LeaseSettings,
    ) -> Result<Self, LeaseError> {
        settings.validate()?;
        let (node, identity) = (node_name.into(), identity.into());
        let name = lease_name(&node);
        if node.is_empty() || name.len() > MAX_NAME {
            return Err(LeaseError::InvalidName { what: "node name", value: node });
        }
        // An empty holder means "nobody": peers would never count this node as live.
        if identity.is_empty() {
            return Err(LeaseError::InvalidName { what: "identity", value: identity });
        }
        Ok(Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name,
            node,
            identity,
            settings,
            seen: None,
            renewed: watch::Sender::new(None),
            facts: None,
            on_failure: None,
        })
    }

    /// Calls `hook` on every failed or timed-out renewal.
    pub fn on_failure(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_failure = Some(Box::new(hook));
        self
    }

    fn renewal_failed(&self) {
        if let Some(hook) = &self.on_failure {
            hook();
        }
    }

    /// Publishes the node's facts (a [`PublishedNode`] annotation value) on the Lease, so peers
    /// and the operator decide over them. A change is written at once rather than at the next
    /// renewal: an interface that loses its link must stop this node being eligible promptly.
    ///
    /// [`PublishedNode`]: ironlb_core::announcer::PublishedNode
    pub fn publishing(mut self, facts: watch::Receiver<String>) -> Self {
        self.facts = Some(facts);
        self
    }

    /// When the last successful renewal was *sent* (`None` before the first and after shutdown).
    /// Peers saw it no earlier, so the node is live in their view until at least this instant plus
    /// the lease duration: `/readyz` and metrics can compare it against [`LeaseSettings::duration`].
    pub fn renewed(&self) -> watch::Receiver<Option<Instant>> {
        self.renewed.subscribe()
    }

    /// Creates or takes over the Lease, renews it every renew interval, and deletes it once
    /// `shutdown` resolves.
    ///
    /// Renewal failures never end this: it keeps trying until shutdown. It returns an error only
    /// when the final delete fails; the Lease then expires on its own after one lease duration.
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), LeaseError> {
        tokio::pin!(shutdown);
        let mut ticks = interval(self.settings.renew_interval);
        // After a slow request, renew once and keep the cadence from there rather than bursting.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut facts = self.facts.clone();
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = ticks.tick() => {}
                // A closed sender (publisher gone) never fires again; renewals continue.
                Ok(()) = async { match facts.as_mut() { Some(rx) => rx.changed().await, None => std::future::pending().await } } => {
                    // Renew now; the interval restarts so the next renewal is a full period later.
                    ticks.reset();
                }
            }
            // A hung request must not delay the delete that makes a hand-over immediate. It is
            // bounded by the lease duration, not the interval: a slow renewal that lands in time
            // still keeps the node live, whereas abandoning every slow one would drop it.
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                renewal = timeout(self.settings.duration, self.renew()) => match renewal {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        self.renewal_failed();
                        tracing::warn!(lease = %self.key(), %error, "lease renewal failed");
                    }
                    Err(_) => {
                        self.renewal_failed();
                        tracing::warn!(lease = %self.key(), "lease renewal timed out");
                    }
                },
            }
        }
        self.renewed.send_replace(None);
        // After a lease duration peers have dropped the node anyway: a delete still pending then
        // buys nothing and only holds up the exit.
        let deleted = timeout(self.settings.duration, self.delete()).await;
        deleted.unwrap_or_else(|_| Err(LeaseError::DeleteTimedOut { lease: self.key() }))
    }

    /// One renewal: a conditional replace of the copy last seen, or a read (and a create when
    /// missing) when there is none.
    async fn renew(&mut self) -> Result<(), LeaseError> {
        let sent_at = Instant::now();
        let written = match self.seen.take() {
            Some(seen) => {
                let lease = self.claim(seen.clone());
                match self.api.replace(&self.name, &PostParams::default(), &lease).await {
                    Ok(written) => written,
                    Err(error) if status_code(&error) == Some(409) => {
                        // Someone else wrote in between (a second pod on this node, or a person).
                        // Re-read now so the next tick writes on top of the current version.
                        tracing::info!(lease = %self.key(), "lease renewal conflicted; reading it again");
                        self.seen = self.api.get_opt(&self.name).await.map_err(|e| self.api_error(e))?;
                        return Ok(());
                    }
                    // Deleted under us: the next tick finds it missing and creates it.
                    Err(error) if status_code(&error) == Some(404) => return Err(self.api_error(error)),
                    Err(error) => {
                        // Transient: keep the copy so the next tick retries the same condition.
                        self.seen = Some(seen);
                        return Err(self.api_error(error));
                    }
                }
            }
            None => match self.api.get_opt(&self.name).await.map_err(|e| self.api_error(e))? {
                Some(current) => {
                    let lease = self.claim(current.clone());
                    match self.api.replace(&self.name, &PostParams::default(), &lease).await {
                        Ok(written) => written,
                        Err(error) => {
                            self.seen = Some(current);
                            return Err(self.api_error(error));
                        }
                    }
                }
                None => {
                    let lease = self.claim(Lease::default());
                    // A 409 (created in between) leaves `seen` empty: the next tick reads it.
                    self.api.create(&PostParams::default(), &lease).await.map_err(|e| self.api_error(e))?
                }
            },
        };
        if self.renewed.borrow().is_none() {
            tracing::info!(lease = %self.key(), identity = %self.identity, "holding the node lease");
        }
        self.seen = Some(written);
        self.renewed.send_replace(Some(sent_at));
        Ok(())
    }

    /// `current` (the stored Lease, or an empty one to create) with this pod as the fresh holder.
    fn claim(&self, current: Lease) -> Lease {
        let Lease { mut metadata, spec } = current;
        metadata.name = Some(self.name.clone());
        // Labels are (re)applied on every write so a Lease stripped of them, or written by an older
        // speaker, comes back under the peers' selector.
        metadata.labels.get_or_insert_with(BTreeMap::new).extend(self.labels());
        if let Some(facts) = &self.facts {
            let value = facts.borrow().clone();
            metadata.annotations.get_or_insert_with(BTreeMap::new).insert(NODE_FACTS_ANNOTATION.to_owned(), value);
        }

        let now = MicroTime(Timestamp::now());
        let base = spec.unwrap_or_default();
        let creating = metadata.resource_version.is_none();
        let renewing = base.holder_identity.as_deref() == Some(self.identity.as_str());
        let transitions = base.lease_transitions.unwrap_or(0);
        let spec = LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.settings.lease_duration_seconds()),
            acquire_time: if renewing {
                base.acquire_time.clone().or_else(|| Some(now.clone()))
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            // A new pod taking the node's Lease over is a transition, recorded for people debugging.
            lease_transitions: Some(if creating || renewing { transitions } else { transitions.saturating_add(1) }),
            ..base
        };
        Lease { metadata, spec: Some(spec) }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), "ironlb".to_owned()),
            ("app.kubernetes.io/component".to_owned(), "speaker".to_owned()),
        ]);
        // A node name is a DNS subdomain of up to 253 characters, a label value at most 63: a longer
        // name would make every write fail, so the label is left out and peers use `lease_node`.
        if self.node.len() <= MAX_LABEL_VALUE {
            labels.insert(NODE_LABEL.to_owned(), self.node.clone());
        }
        labels
    }

    /// Deletes the Lease if it is still this pod's, conditioned on the `uid` and `resourceVersion`
    /// of the copy that says so. On a 409 it reads once more: a renewal cancelled by shutdown may
    /// still have landed (ours, delete that) or a newer pod on this node may hold it (leave it).
    async fn delete(&mut self) -> Result<(), LeaseError> {
        for _ in 0..2 {
            let lease = match self.seen.take() {
                Some(lease) => lease,
                None => match self.api.get_opt(&self.name).await.map_err(|e| self.api_error(e))? {
                    Some(lease) => lease,
                    None => return Ok(()),
                },
            };
            let holder = lease.spec.as_ref().and_then(|spec| spec.holder_identity.as_deref());
            if holder != Some(self.identity.as_str()) {
                tracing::info!(lease = %self.key(), ?holder, "lease held by another pod; leaving it");
                return Ok(());
            }
            let preconditions = Preconditions {
                uid: lease.metadata.uid.clone(),
                resource_version: lease.metadata.resource_version.clone(),
            };
            let params = DeleteParams { preconditions: Some(preconditions), ..DeleteParams::default() };
            match self.api.delete(&self.name, &params).await {
                Ok(_) => {
                    tracing::info!(lease = %self.key(), "deleted the node lease");
                    return Ok(());
                }
                Err(error) if status_code(&error) == Some(404) => return Ok(()),
                Err(error) if status_code(&error) == Some(409) => {}
                Err(error) => return Err(self.api_error(error)),
            }
        }
        // Two conflicts in a row: someone keeps writing it. Leave it to expire.
        tracing::warn!(lease = %self.key(), "lease kept changing during shutdown; leaving it to expire");
        Ok(())
    }

    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn api_error(&self, source: kube::Error) -> LeaseError {
        LeaseError::Api { lease: self.key(), source }
    }
}

/// The HTTP status of an API error, if the API server answered.
fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
