//! API group `ironlb.io`, version `v1alpha1`: the custom resources an administrator writes and
//! the status ironlb writes back.
//!
//! Every kind is cluster-scoped (an address pool is a cluster-wide resource, like a Node) and
//! have a status subresource, so status writes never race spec edits.
//!
//! - [`IPAddressPool`]: addresses to hand out, checked by the API server with CEL rules
//!   and by [`IPAddressPoolSpec::validate`]; its status is the allocation record.
//! - [`L2Advertisement`]: which pools are announced, from which nodes and interfaces.
//! - [`IPAllocationSlice`]: a bounded piece of a pool's allocation record, written by the
//!   operator and read by the speakers.

mod cel;
mod crd;
mod l2advertisement;
mod pool;
mod slice;
mod status;
mod validation;

pub use cel::{MAX_ADDRESSES, MAX_ENTRY_LENGTH};
pub use crd::crds;
pub use l2advertisement::{L2Advertisement, L2AdvertisementSpec, L2AdvertisementStatus};
pub use pool::{IPAddressPool, IPAddressPoolSpec, ServiceAllocation};
pub use slice::{
    IPAllocationSlice, IPAllocationSliceSpec, IPAllocationSliceStatus, MAX_SLICE_ALLOCATIONS, POOL_LABEL, slice_name,
};
pub use status::{
    Allocation, AllocationRecord, FamilyCounts, FamilyUsage, IPAddressPoolStatus, LISTED_INLINE, TRAFFIC_POLICY_LOCAL,
    condition_reason, condition_type,
};
pub use validation::{InvalidPoolSpec, SpecError};

/// The API group of every ironlb resource.
pub const GROUP: &str = "ironlb.io";
/// The version of this module's resources.
pub const VERSION: &str = "v1alpha1";
