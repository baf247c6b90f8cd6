//! The core the operator and the speakers share: the `ironlb.io` API, and every rule both must
//! apply alike, written once so that they agree by construction rather than by care.
//!
//! Two halves, kept in one crate because each rule reads the API types and the API's validation
//! (CEL and [`v1alpha1::IPAddressPoolSpec::validate`]) is itself one of the shared rules:
//! - the API: [`v1alpha1`] (types, CEL, status vocabulary), [`events`], and the `crdgen` binary;
//! - the core: [`address`], [`selector`], [`announcer`] (the announcer function and the
//!   reduction of its inputs, [`announcer::AnnouncerInputs`]).
//!
//! - [`address`]: parsing pool entries, interval arithmetic, the allocator's interval sets.
//! - [`announcer`]: who announces each address, and the facts it is decided from.
//! - [`events`]: Events as both binaries post them, and every Event reason.
//! - [`selector`]: Kubernetes label selectors, one implementation for every reader.
//! - [`ServiceKey`]: a Service by namespace and name, as every reader files it.
//! - [`v1alpha1`]: the custom resources (`IPAddressPool`, `L2Advertisement`), their status
//!   types, the CEL rules the API server enforces and [`v1alpha1::IPAddressPoolSpec::validate`],
//!   which applies the same rules in Rust.
//!
//! The `crdgen` binary renders the CustomResourceDefinitions into `charts/ironlb/crds/`.

#![forbid(unsafe_code)]

pub mod address;
pub mod announcer;
pub mod events;
pub mod selector;
mod service;
pub mod v1alpha1;

pub use service::ServiceKey;
