//! The API writes the engine decides on: [`Effect`]s, as the engine's pure steps return them,
//! and the [`ApiWriter`] that runs each as a self-contained job, concurrently with the engine loop,
//! reporting back how it went ([`WriteDone`]).
//!
//! Every write is a server-side apply under one field manager
//! ([`FIELD_MANAGER`]): ironlb owns exactly the fields it sets
//! (`status.loadBalancer.ingress`, the `ironlb.io/allocated-from-pool`
//! annotation, the whole pool status, the allocation record's slices, announcers
//! included: the speakers only read them), and applying an empty value gives them back without touching
//! anyone else's.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use ironlb_core::v1alpha1::{
    IPAddressPool, IPAddressPoolStatus, IPAllocationSlice, L2Advertisement, L2AdvertisementStatus, POOL_LABEL,
};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde_json::json;

use super::record::{SliceOutcome, SliceWrite};
use crate::allocator::{Assignment, ServiceKey};
use crate::service::{annotation, load_balancer_status};

/// The field manager of every write of the operator.
pub const FIELD_MANAGER: &str = "ironlb-operator";

/// Issues the writes; cheap to clone into jobs.
#[derive(Clone)]
pub(crate) struct ApiWriter {
    client: Client,
    /// `reportingInstance` of the Events: which replica wrote them.
    identity: String,
}

/// What the engine wants the cluster told.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Effect {
    /// Make the Service show `assignment` (or nothing): its `status.loadBalancer.ingress` and
    /// `ironlb.io/allocated-from-pool`.
    WriteService {
        /// The Service.
        key: ServiceKey,
        /// What it is to show.
        assignment: Option<Assignment>,
    },
    /// Apply this status to the pool.
    WritePoolStatus {
        /// The pool's name.
        pool: String,
        /// Its whole status (ironlb owns all of it).
        status: IPAddressPoolStatus,
    },
    /// Bring one slice of the allocation record in line: apply its status (creating it, owned by
    /// its pool, when it does not exist yet), or delete it.
    WriteSlice {
        /// What to write.
        write: SliceWrite,
        /// The pool's owner reference, so deleting the pool deletes its slices.
        owner: Option<OwnerReference>,
    },
    /// Apply this status to the L2Advertisement.
    WriteAdvertisementStatus {
        /// The advertisement's name.
        advertisement: String,
        /// Its whole status (ironlb owns all of it).
        status: L2AdvertisementStatus,
    },
    /// Publish an Event.
    PostEvent {
        /// What it is about.
        regarding: ObjectReference,
        /// What it says.
        note: Note,
    },
    /// Look at the Service again after `after` (a failed write's back-off).
    RetryService {
        /// The Service.
        key: ServiceKey,
        /// How long to wait.
        after: Duration,
    },
}

impl Effect {
    pub(crate) fn write_service(key: ServiceKey, assignment: Option<Assignment>) -> Self {
        Self::WriteService { key, assignment }
    }

    pub(crate) fn event<K: Resource<DynamicType = ()>>(object: &K, note: Note) -> Self {
        Self::PostEvent { regarding: object.object_ref(&()), note }
    }
}

/// A write to run.
pub(crate) struct Job(std::pin::Pin<Box<dyn Future<Output = WriteDone> + Send>>);

impl Job {
    pub(crate) fn run(self) -> impl Future<Output = WriteDone> + Send {
        self.0
    }
}

/// How a write went.
#[derive(Debug)]
pub(crate) enum WriteDone {
    /// The Service's status and annotation; on success, the `resourceVersion` the last of the
    /// two writes gave it.
    Service { key: ServiceKey, result: Result<Option<String>, kube::Error> },
    /// A pool's status.
    PoolStatus { pool: String, result: Result<(), kube::Error> },
    /// A slice of the allocation record.
    Slice {
        /// Its pool.
        pool: String,
        /// Its index.
        index: usize,
        /// Whether it was a delete.
        deleted: bool,
        /// How it went.
        outcome: SliceOutcome,
        /// The error, when it failed.
        error: Option<kube::Error>,
    },
    /// An L2Advertisement's status.
    AdvertisementStatus { advertisement: String, result: Result<(), kube::Error> },
    /// An Event.
    Event { result: Result<(), kube::Error> },
    /// A failed Service write whose retry delay has passed.
    Retry { key: ServiceKey },
}

impl WriteDone {
    /// The error the write ended with, if it failed.
    pub(crate) fn error(&self) -> Option<&kube::Error> {
        match self {
            Self::Service { result, .. } => result.as_ref().err(),
            Self::PoolStatus { result, .. } | Self::AdvertisementStatus { result, .. } | Self::Event { result } => {
                result.as_ref().err()
            }
            Self::Slice { error, .. } => error.as_ref(),
            Self::Retry { .. } => None,
        }
    }
}

/// A write slower than this says the API server is strained.
pub(crate) const SLOW_WRITE: Duration = Duration::from_secs(1);
/// How long a strain lasts after its last sign: long enough for the speakers' Lease renewals
/// that failed meanwhile to get through again and be seen (several Lease durations).
pub(crate) const STRAIN_HOLD: Duration = Duration::from_secs(10);
/// While strained, the record and the pool statuses are written this many times less often.
pub(crate) const STRAINED_SLOWDOWN: u32 = 8;

/// Whether the API server is strained, as the operator's own writes find it: a write that failed
/// with a server-side error (5xx, 429 Too Many Requests, a timeout, no connection) or took longer
/// than [`SLOW_WRITE`]. While it is, the operator writes less (so its load does not feed the
/// overload) and does not rewrite who announces from Leases that stopped being renewed (their
/// renewals may be failing the same way; the speakers keep announcing meanwhile).
#[derive(Debug, Default)]
pub(crate) struct Strain {
    until: Option<std::time::Instant>,
}

impl Strain {
    /// A write ended at `now` after `took`, failing with `error` if any.
    pub(crate) fn observe(&mut self, error: Option<&kube::Error>, took: Duration, now: std::time::Instant) {
        let server_side = |error: &kube::Error| match error {
            kube::Error::Api(status) => status.code == 429 || status.code >= 500,
            // No answer at all: a timeout, a refused or reset connection.
            _ => true,
        };
        if took > SLOW_WRITE || error.is_some_and(server_side) {
            if self.until.is_none_or(|until| until <= now) {
                tracing::warn!(?took, error = ?error.map(ToString::to_string), "the API server is strained: writing less, keeping who announces");
            }
            self.until = Some(now + STRAIN_HOLD);
        }
    }

    /// Whether the API server counts as strained at `now`.
    pub(crate) fn is_strained(&self, now: std::time::Instant) -> bool {
        self.until.is_some_and(|until| now < until)
    }

    /// When the strain ends, if it has not yet.
    pub(crate) fn ends_at(&self, now: std::time::Instant) -> Option<std::time::Instant> {
        self.until.filter(|&until| now < until)
    }
}

/// An Event to publish (the builder shared with the speaker).
pub(crate) use ironlb_core::events::Note;

impl ApiWriter {
    pub(crate) fn new(client: Client, identity: &str) -> Self {
        Self { client, identity: identity.to_owned() }
    }

    /// The job that carries out `effect`.
    pub(crate) fn run(&self, effect: Effect) -> Job {
        match effect {
            Effect::WriteService { key, assignment } => self.service(key, assignment),
            Effect::WritePoolStatus { pool, status } => self.pool_status(pool, status),
            Effect::WriteSlice { write, owner } => self.slice(write, owner),
            Effect::WriteAdvertisementStatus { advertisement, status } => {
                self.advertisement_status(advertisement, status)
            }
            Effect::PostEvent { regarding, note } => self.event(regarding, note),
            Effect::RetryService { key, after } => Job(Box::pin(async move {
                tokio::time::sleep(after).await;
                WriteDone::Retry { key }
            })),
        }
    }

    /// Makes the Service show `assignment` (or nothing): its
    /// `status.loadBalancer.ingress` and `ironlb.io/allocated-from-pool`.
    fn service(&self, key: ServiceKey, assignment: Option<Assignment>) -> Job {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &key.namespace);
        let name = key.name.clone();
        let addresses: Vec<IpAddr> = assignment.as_ref().map(|a| a.addresses.clone()).unwrap_or_default();
        let status = json!({
            "apiVersion": "v1", "kind": "Service",
            "status": { "loadBalancer": load_balancer_status(&addresses) },
        });
        let annotations = match &assignment {
            Some(assignment) => json!({ annotation::ALLOCATED_FROM_POOL: assignment.pool }),
            None => json!({}),
        };
        let metadata = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": name, "annotations": annotations },
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        Job(Box::pin(async move {
            // Status first: it is what users and speakers read; the annotation
            // only records the pool for people and for restarts.
            let result = async {
                api.patch_status(&name, &params, &Patch::Apply(status)).await?;
                let written = api.patch(&name, &params, &Patch::Apply(metadata)).await?;
                Ok(written.metadata.resource_version)
            }
            .await;
            WriteDone::Service { key, result }
        }))
    }

    /// Writes a pool's status.
    fn pool_status(&self, pool: String, status: IPAddressPoolStatus) -> Job {
        let api: Api<IPAddressPool> = Api::all(self.client.clone());
        Job(Box::pin(async move {
            let result = apply_status(&api, &pool, status).await;
            WriteDone::PoolStatus { pool, result }
        }))
    }

    /// Writes one slice of the allocation record: its object first when it is new (name, pool
    /// label, owner, `spec.pool`), then its status; or deletes it. A slice the API server does not
    /// have is reported `Missing`, so the record creates it again.
    fn slice(&self, write: SliceWrite, owner: Option<OwnerReference>) -> Job {
        let api: Api<IPAllocationSlice> = Api::all(self.client.clone());
        Job(Box::pin(async move {
            let (pool, index) = (write.slice().0.to_owned(), write.slice().1);
            let deleted = matches!(write, SliceWrite::Delete { .. });
            let result = match write {
                SliceWrite::Apply { pool, name, create, status, .. } => {
                    async {
                        if create {
                            let object = json!({
                                "apiVersion": IPAllocationSlice::api_version(&()),
                                "kind": IPAllocationSlice::kind(&()),
                                "metadata": {
                                    "name": name,
                                    "labels": { POOL_LABEL: pool, "app.kubernetes.io/managed-by": FIELD_MANAGER },
                                    "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
                                },
                                "spec": { "pool": pool },
                            });
                            let params = PatchParams::apply(FIELD_MANAGER).force();
                            api.patch(&name, &params, &Patch::Apply(object)).await?;
                        }
                        apply_status(&api, &name, status).await
                    }
                    .await
                }
                SliceWrite::Delete { name, .. } => api.delete(&name, &DeleteParams::default()).await.map(drop),
            };
            let (outcome, error) = match result {
                Ok(()) => (SliceOutcome::Written, None),
                Err(kube::Error::Api(status)) if status.code == 404 => (SliceOutcome::Missing, None),
                Err(error) => (SliceOutcome::Failed, Some(error)),
            };
            WriteDone::Slice { pool, index, deleted, outcome, error }
        }))
    }

    /// Writes an L2Advertisement's status.
    fn advertisement_status(&self, advertisement: String, status: L2AdvertisementStatus) -> Job {
        let api: Api<L2Advertisement> = Api::all(self.client.clone());
        Job(Box::pin(async move {
            let result = apply_status(&api, &advertisement, status).await;
            WriteDone::AdvertisementStatus { advertisement, result }
        }))
    }

    /// Publishes an Event about `object`, in its namespace (`default` for a
    /// pool, which has none, as kubectl looks for it).
    ///
    /// Each Event is its own object: the engine already sends one only when
    /// something changed (a new reason, a new address), and kube-rs's
    /// recorder would fold two Events of one reason into a series that keeps
    /// only the first message.
    fn event(&self, regarding: ObjectReference, note: Note) -> Job {
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".to_owned());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let mut event = ironlb_core::events::event(regarding, note, FIELD_MANAGER, &self.identity, Timestamp::now());
        event.metadata.namespace = Some(namespace);
        Job(Box::pin(
            async move { WriteDone::Event { result: api.create(&PostParams::default(), &event).await.map(drop) } },
        ))
    }
}

/// Applies `status` as the whole status of the ironlb object `name` (ironlb owns all of it, so
/// the apply is forced: no other field manager's leftovers survive).
async fn apply_status<K>(api: &Api<K>, name: &str, status: impl serde::Serialize) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({ "apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(patch)).await.map(drop)
}

#[cfg(test)]
mod tests;
