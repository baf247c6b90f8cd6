//! The `ironlb.io` API and the pure functions the operator and the speakers must agree on.
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
