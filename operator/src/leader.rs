//! Leader election: which operator replica may write.
//!
//! Every replica watches pools, Services and Namespaces and keeps its caches warm; only the replica
//! holding the `coordination.k8s.io/v1` Lease writes Service and pool status, so two replicas never
//! hand out addresses from two different views of the pools. kube-rs has no elector, so this module
//! is a small port of client-go's `leaderelection` rules:
//!
//! - **No clock is compared across machines.** A standby records when *it* last saw the lease record
//!   change, on its own monotonic clock, and treats the holder as gone once `leaseDurationSeconds`
//!   pass without a change. `renewTime` is written for people reading the Lease, never trusted.
//! - **Every write is conditional.** Create (409 if someone else created it first) or replace with the
//!   `resourceVersion` last seen (409 if anyone wrote in between): two replicas racing for an expired
//!   lease cannot both win.
//! - **The leader stops before a standby can start.** A renewal that began at `t` keeps this replica
//!   leader until `t + renew_deadline` ([`LeaderState::Leading::until`]). A standby sees that renewal
//!   no earlier than `t` and waits `lease_duration` more, so with `renew_deadline < lease_duration`
//!   the old leader has stopped writing `lease_duration - renew_deadline` before anyone may take over,
//!   a margin for clock-rate drift and for a write already on the wire.
//!
//! Use in `main`: start the caches, [`LeaderElector::run`] the elector next to them, and check
//! [`Leadership::is_leader`] before each write ([`Leadership::lost`] wakes a loop the moment
//! leadership ends). When `run` returns an error leadership is lost: the gate is already closed,
//! so writers stop at once; the caller then calls `run` again to campaign, and the engine starts
//! its next term from its warm caches with a restore, exactly as a fresh leader does (linkerd's
//! policy controller works the same way). Exiting instead would turn every API-server stall longer
//! than the renew deadline into a CrashLoopBackOff of every replica, with nobody allocating. On
//! SIGTERM, let `run` return `Ok`, drain the writers, then call [`LeaderElector::release`] so the
//! standby takes over at once instead of after a lease duration.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};

#[cfg(test)]
mod tests;

/// Timing of the election, in the terms of client-go's `LeaderElectionConfig`.
///
/// The defaults are client-go's (15s / 10s / 2s), which kube-controller-manager and most operators
/// run with: a crashed leader is replaced within about 17 seconds (a lease duration plus one retry),
/// the lease costs one request every 2 seconds per replica, and the leader survives a 10-second
/// API-server hiccup (five failed renewals) without giving up leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElectionSettings {
    /// How long a standby waits, after it last saw the lease change, before taking it over.
    /// Written to the Lease as `leaseDurationSeconds`, so it must be whole seconds.
    pub lease_duration: Duration,
    /// How long the leader keeps leading after the start of its last successful renewal. Must be
    /// shorter than `lease_duration`: the difference is the safety margin described in the module docs.
    pub renew_deadline: Duration,
    /// The interval between two attempts to acquire or renew.
    pub retry_period: Duration,
}

impl Default for ElectionSettings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl ElectionSettings {
    /// Checks the relations the election's safety rests on.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let Self { lease_duration, renew_deadline, retry_period } = *self;
        if retry_period.is_zero() {
            return Err(LeaderError::InvalidSettings("retry period must be positive"));
        }
        if renew_deadline <= retry_period {
            return Err(LeaderError::InvalidSettings("renew deadline must be longer than the retry period"));
        }
        if lease_duration <= renew_deadline {
            return Err(LeaderError::InvalidSettings("lease duration must be longer than the renew deadline"));
        }
        if lease_duration.subsec_nanos() != 0 || i32::try_from(lease_duration.as_secs()).is_err() {
            return Err(LeaderError::InvalidSettings("lease duration must be a whole number of seconds"));
        }
        Ok(())
    }

    fn lease_duration_seconds(&self) -> i32 {
        // `validate` ran in `LeaderElector::new`, so this never saturates.
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// What this replica may do, as published by the elector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderState {
    /// Another replica holds the lease, nobody does yet, or this replica stepped down.
    Standby,
    /// This replica holds the lease. Writes are allowed until `until`, which each renewal moves on.
    Leading {
        /// The start of the last successful renewal plus the renew deadline.
        until: Instant,
    },
}

/// The write gate the controllers consult: a cheap, cloneable view of the elector's state.
#[derive(Clone, Debug)]
pub struct Leadership {
    state: watch::Receiver<LeaderState>,
}

impl Leadership {
    /// Whether this replica may write now. Also false once the last renewal is older than the
    /// renew deadline, even if the elector task has not run since (a starved or stuck runtime).
    pub fn is_leader(&self) -> bool {
        matches!(*self.state.borrow(), LeaderState::Leading { until } if Instant::now() < until)
    }

    /// Waits until this replica leads.
    pub async fn acquired(&mut self) -> Result<(), LeaderError> {
        self.state
            .wait_for(|state| matches!(state, LeaderState::Leading { .. }))
            .await
            .map(drop)
            .map_err(|_| LeaderError::ElectorStopped)
    }

    /// Resolves once this replica no longer leads (or never did): for a `select!` that cancels
    /// writers the moment leadership ends.
    pub async fn lost(&mut self) {
        loop {
            let LeaderState::Leading { until } = *self.state.borrow_and_update() else {
                return;
            };
            tokio::select! {
                () = sleep_until(until) => return,
                changed = self.state.changed() => if changed.is_err() { return },
            }
        }
    }
}

/// Errors of the election. Only the two losses end [`LeaderElector::run`]; API failures while
/// campaigning or renewing are logged and retried.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The settings break a relation the election's safety rests on.
    #[error("invalid leader election settings: {0}")]
    InvalidSettings(&'static str),
    /// The identity is empty: an empty holder means "free" in a Lease.
    #[error("the leader election identity must not be empty")]
    EmptyIdentity,
    /// Another replica holds the lease this replica was leading with.
    #[error("lease {lease} was taken over by {holder}")]
    TakenOver {
        /// `namespace/name` of the Lease.
        lease: String,
        /// The new holder's identity.
        holder: String,
    },
    /// No renewal succeeded within the renew deadline.
    #[error("lease {lease} was not renewed within the renew deadline of {deadline:?}")]
    RenewDeadlineExceeded {
        /// `namespace/name` of the Lease.
        lease: String,
        /// The renew deadline that passed.
        deadline: Duration,
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
    /// The elector was dropped, so leadership can never be acquired.
    #[error("the leader elector has stopped")]
    ElectorStopped,
}

/// Campaigns for, holds, and releases one Lease on behalf of this process.
pub struct LeaderElector {
    api: Api<Lease>,
    namespace: String,
    lease_name: String,
    identity: String,
    settings: ElectionSettings,
    /// The Lease as last read or written; its `resourceVersion` conditions the next write.
    seen: Option<Lease>,
    /// When this process last saw the lease spec change, on its own monotonic clock.
    seen_change_at: Option<Instant>,
    state: watch::Sender<LeaderState>,
}

impl fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderElector")
            .field("lease", &self.lease_key())
            .field("identity", &self.identity)
            .field("settings", &self.settings)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Drop for LeaderElector {
    fn drop(&mut self) {
        // Nobody renews any more: close the gate rather than let it run out on its own.
        self.state.send_replace(LeaderState::Standby);
    }
}

/// The outcome of one attempt to acquire or renew.
enum Attempt {
    /// This replica holds the lease until the given instant.
    Leading(Instant),
    /// Someone else holds it and has renewed recently enough.
    HeldByOther,
    /// Someone else wrote the lease between our read and our write.
    LostRace,
}

impl LeaderElector {
    /// An elector for the Lease `namespace/lease_name`. `identity` must be unique per process (the
    /// pod name is): two processes with one identity would both believe they lead.
    pub fn new(
        client: Client,
        namespace: &str,
        lease_name: impl Into<String>,
        identity: impl Into<String>,
        settings: ElectionSettings,
    ) -> Result<Self, LeaderError> {
        settings.validate()?;
        let identity = identity.into();
        if identity.is_empty() {
            return Err(LeaderError::EmptyIdentity);
        }
        Ok(Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            lease_name: lease_name.into(),
            identity,
            settings,
            seen: None,
            seen_change_at: None,
            state: watch::Sender::new(LeaderState::Standby),
        })
    }

    /// The write gate for the controllers.
    pub fn leadership(&self) -> Leadership {
        Leadership { state: self.state.subscribe() }
    }

    /// This process's identity, as written to `holderIdentity`.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Campaigns until this replica leads, then renews every retry period.
    ///
    /// Returns `Ok` when `shutdown` resolves, and an error ([`LeaderError::TakenOver`] or
    /// [`LeaderError::RenewDeadlineExceeded`]) when leadership is lost; either way the gate is
    /// closed before it returns. Call `run` again to campaign again (see the module docs).
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), LeaderError> {
        let result = tokio::select! {
            biased;
            () = shutdown => Ok(()),
            loss = self.campaign_and_lead() => Err(loss),
        };
        self.state.send_replace(LeaderState::Standby);
        result
    }

    /// Steps down and, if this replica still holds the Lease, clears `holderIdentity` so a standby
    /// takes over at its next retry rather than after a lease duration. Call it once the writers
    /// have stopped, under a timeout that fits the pod's termination grace period: a release that
    /// never lands only costs the standby one lease duration.
    pub async fn release(&mut self) -> Result<(), LeaderError> {
        self.state.send_replace(LeaderState::Standby);
        if self.release_seen().await? {
            return Ok(());
        }
        // 409: our copy is stale, typically because a renewal cancelled by shutdown still landed.
        // Read the lease again and release it only if it is still ours.
        if let Some(current) = self.api.get_opt(&self.lease_name).await.map_err(|e| self.api_error(e))? {
            self.observe(current);
            self.release_seen().await?;
        }
        Ok(())
    }

    /// Acquires, then renews until leadership is lost; returns why it was lost.
    async fn campaign_and_lead(&mut self) -> LeaderError {
        let mut until = self.acquire().await;
        loop {
            // An attempt still running at `until` is abandoned: this replica has stopped writing by
            // then, and a renewal landing later must not silently re-open the gate.
            sleep_until((Instant::now() + self.settings.retry_period).min(until)).await;
            if Instant::now() >= until {
                tracing::warn!(lease = %self.lease_key(), "leadership lost: renew deadline passed");
                return LeaderError::RenewDeadlineExceeded {
                    lease: self.lease_key(),
                    deadline: self.settings.renew_deadline,
                };
            }
            match timeout_at(until, self.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Leading(next))) => {
                    until = next;
                    self.state.send_replace(LeaderState::Leading { until });
                }
                Ok(Ok(Attempt::HeldByOther)) => {
                    let holder = self.seen_holder().unwrap_or_default().to_owned();
                    tracing::warn!(lease = %self.lease_key(), %holder, "leadership lost: lease taken over");
                    return LeaderError::TakenOver { lease: self.lease_key(), holder };
                }
                // The next attempt reads the lease again and decides.
                Ok(Ok(Attempt::LostRace)) => tracing::info!(lease = %self.lease_key(), "lease renewal raced a write"),
                Ok(Err(error)) => tracing::warn!(lease = %self.lease_key(), %error, "lease renewal failed"),
                Err(_) => {}
            }
        }
    }

    /// Retries every retry period until this replica holds the lease; returns the leadership expiry.
    async fn acquire(&mut self) -> Instant {
        loop {
            // The renew deadline bounds an attempt so a hung request cannot stall the campaign.
            match timeout(self.settings.renew_deadline, self.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Leading(until))) => {
                    tracing::info!(lease = %self.lease_key(), identity = %self.identity, "became leader");
                    self.state.send_replace(LeaderState::Leading { until });
                    return until;
                }
                Ok(Ok(Attempt::HeldByOther | Attempt::LostRace)) => {
                    tracing::debug!(lease = %self.lease_key(), holder = ?self.seen_holder(), "standing by");
                }
                Ok(Err(error)) => tracing::warn!(lease = %self.lease_key(), %error, "could not acquire the lease"),
                Err(_) => tracing::warn!(lease = %self.lease_key(), "lease request timed out"),
            }
            sleep(self.settings.retry_period).await;
        }
    }

    /// One round of client-go's `tryAcquireOrRenew`.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, LeaderError> {
        // Taken before any request: the write that grants leadership cannot be seen by a standby
        // earlier than this, so counting the deadline from here is on the safe side.
        let until = Instant::now() + self.settings.renew_deadline;

        // Fast path: the leader renews the copy it wrote last without reading first, one request
        // per period. A 409 means someone else wrote, and the slow path below finds out who.
        let leading = matches!(*self.state.borrow(), LeaderState::Leading { .. });
        if leading
            && let Some(seen) = &self.seen
            && self.seen_holder() == Some(self.identity.as_str())
        {
            let metadata = seen.metadata.clone();
            let spec = self.claim(seen.spec.as_ref());
            if self.replace(metadata, spec).await? {
                return Ok(Attempt::Leading(until));
            }
        }

        let Some(current) = self.api.get_opt(&self.lease_name).await.map_err(|e| self.api_error(e))? else {
            return self
                .create()
                .await
                .map(|created| if created { Attempt::Leading(until) } else { Attempt::LostRace });
        };
        let (metadata, spec) = (current.metadata.clone(), self.claim(current.spec.as_ref()));
        self.observe(current);
        if !self.may_claim() {
            return Ok(Attempt::HeldByOther);
        }
        Ok(if self.replace(metadata, spec).await? { Attempt::Leading(until) } else { Attempt::LostRace })
    }

    /// Whether the lease last seen is free, ours, or expired on this process's clock.
    fn may_claim(&self) -> bool {
        let Some(holder) = self.seen_holder() else {
            return true;
        };
        if holder == self.identity {
            return true;
        }
        // The holder's own promise decides how long it may stay silent; ours is only a fallback.
        let duration = self
            .seen
            .as_ref()
            .and_then(|lease| lease.spec.as_ref()?.lease_duration_seconds)
            .and_then(|seconds| u64::try_from(seconds).ok())
            .filter(|&seconds| seconds > 0)
            .map_or(self.settings.lease_duration, Duration::from_secs);
        self.seen_change_at.is_some_and(|seen_at| Instant::now() >= seen_at + duration)
    }

    /// The spec that makes this replica the holder, starting from the spec currently stored.
    /// `current` is `None` only when creating the Lease.
    fn claim(&self, current: Option<&LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let base = current.cloned().unwrap_or_default();
        let renewing = base.holder_identity.as_deref() == Some(self.identity.as_str());
        let transitions = base.lease_transitions.unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.settings.lease_duration_seconds()),
            acquire_time: if renewing {
                base.acquire_time.clone().or_else(|| Some(now.clone()))
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(match current {
                Some(_) if !renewing => transitions.saturating_add(1),
                _ => transitions,
            }),
            // Fields of coordinated leader election (preferredHolder, strategy) are left as found.
            ..base
        }
    }

    /// Creates the Lease with this replica as holder; `false` when another replica created it first.
    async fn create(&mut self) -> Result<bool, LeaderError> {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(self.lease_name.clone()), ..ObjectMeta::default() },
            spec: Some(self.claim(None)),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(created) => {
                self.observe(created);
                Ok(true)
            }
            Err(error) if is_conflict(&error) => Ok(false),
            Err(error) => Err(self.api_error(error)),
        }
    }

    /// Replaces the Lease, conditioned on the `resourceVersion` in `metadata`; `false` on a 409.
    async fn replace(&mut self, metadata: ObjectMeta, spec: LeaseSpec) -> Result<bool, LeaderError> {
        let lease = Lease { metadata, spec: Some(spec) };
        match self.api.replace(&self.lease_name, &PostParams::default(), &lease).await {
            Ok(written) => {
                self.observe(written);
                Ok(true)
            }
            Err(error) if is_conflict(&error) => Ok(false),
            Err(error) => Err(self.api_error(error)),
        }
    }

    /// Clears the holder on the copy last seen if it names this replica. `false` on a 409.
    async fn release_seen(&mut self) -> Result<bool, LeaderError> {
        if self.seen_holder() != Some(self.identity.as_str()) {
            return Ok(true);
        }
        let Some(Lease { metadata, spec }) = self.seen.clone() else {
            return Ok(true);
        };
        let spec = LeaseSpec {
            holder_identity: None,
            // What client-go writes on release: an elector that only checks expiry, not the empty
            // holder, then takes over within a second too.
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..spec.unwrap_or_default()
        };
        let released = self.replace(metadata, spec).await?;
        if released {
            tracing::info!(lease = %self.lease_key(), "released the lease");
        }
        Ok(released)
    }

    /// Remembers a Lease read or written, and when its spec last changed on our clock.
    fn observe(&mut self, lease: Lease) {
        let changed = self.seen.as_ref().is_none_or(|seen| seen.spec != lease.spec);
        if changed {
            self.seen_change_at = Some(Instant::now());
        }
        self.seen = Some(lease);
    }

    /// The holder of the Lease last seen; `None` when free.
    fn seen_holder(&self) -> Option<&str> {
        self.seen
            .as_ref()
            .and_then(|lease| lease.spec.as_ref()?.holder_identity.as_deref())
            .filter(|holder| !holder.is_empty())
    }

    fn lease_key(&self) -> String {
        format!("{}/{}", self.namespace, self.lease_name)
    }

    fn api_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api { lease: self.lease_key(), source }
    }
}

/// A 409: `Conflict` on a replace with a stale `resourceVersion`, `AlreadyExists` on a create.
fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}
