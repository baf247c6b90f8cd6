//! `IPAllocationSlice`: one bounded piece of a pool's allocation record.
//!
//! Data flow: the operator (its leader) is the only writer. A pool's allocations are spread over
//! slices of at most [`MAX_SLICE_ALLOCATIONS`] entries each, labelled [`POOL_LABEL`] with the
//! pool's name and owned by the pool (deleting the pool deletes them). A Service's entry stays in
//! the slice it was first written to for as long as the Service holds addresses from the pool, so
//! one Service allocated, released or re-announced rewrites one slice, never a pool-sized object.
//! The speakers read every slice (this is their only source of what to announce); the pool's own
//! status keeps the counts, the conditions, the names of its slices and the first allocations, for
//! people. See `docs/allocation.md`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Allocation;

/// The label every slice carries: the name of the pool whose allocations it holds, so
/// `kubectl get ipallocationslices -l ironlb.io/pool=NAME` lists one pool's record.
pub const POOL_LABEL: &str = "ironlb.io/pool";

/// The most allocations one slice holds. Like an EndpointSlice's 100 endpoints: small enough that
/// rewriting a slice for one Service's change costs a few kilobytes, large enough that 50,000
/// Services take 500 objects. With the longest names Kubernetes allows and both families an entry
/// is under 500 bytes, so a full slice stays far below the 256 KiB every ironlb object keeps to.
pub const MAX_SLICE_ALLOCATIONS: usize = 100;

/// A piece of an IPAddressPool's allocation record: which Services hold which of its addresses,
/// and which node answers for them.
// Every printcolumn repeats `type_`/`priority`, which clippy mistakes for duplicated attributes.
#[expect(clippy::duplicated_attributes, reason = "printcolumn arguments repeat by design")]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "ironlb.io",
    version = "v1alpha1",
    kind = "IPAllocationSlice",
    plural = "ipallocationslices",
    shortname = "ipslice",
    category = "ironlb",
    status = "IPAllocationSliceStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "IPAllocationSlice holds part of an IPAddressPool's allocation record: up to 100 Services with the addresses they hold and the node answering for them. Written by ironlb's operator; read by its speakers.",
    printcolumn(
        name = "Pool",
        type_ = "string",
        json_path = ".spec.pool",
        description = "The pool these allocations are from"
    ),
    printcolumn(
        name = "Allocations",
        type_ = "integer",
        json_path = ".status.allocationCount",
        description = "Services listed in this slice"
    ),
    printcolumn(
        name = "Announced",
        type_ = "integer",
        json_path = ".status.announcedCount",
        description = "Of those, the ones a node answers for"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct IPAllocationSliceSpec {
    /// The IPAddressPool whose allocations this slice holds (also its `ironlb.io/pool` label).
    #[schemars(length(min = 1, max = 253))]
    pub pool: String,
}

/// The allocations of one slice. Written by ironlb; not meant to be edited.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPAllocationSliceStatus {
    /// One entry per Service, in Service order (namespace, then name).
    // Atomic, as the pool's inline list: the operator applies it whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"), length(max = 100))]
    pub allocations: Vec<Allocation>,

    /// How many Services `allocations` lists (for `kubectl get`).
    #[serde(default)]
    pub allocation_count: i64,

    /// How many of them a node answers for (for `kubectl get`).
    #[serde(default)]
    pub announced_count: i64,
}

impl IPAllocationSliceStatus {
    /// The status listing `allocations`, with its counts.
    pub fn listing(allocations: Vec<Allocation>) -> Self {
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        Self {
            allocation_count: count(allocations.len()),
            announced_count: count(allocations.iter().filter(|a| a.node.is_some()).count()),
            allocations,
        }
    }
}

impl IPAllocationSlice {
    /// The pool this slice belongs to: `spec.pool`.
    pub fn pool(&self) -> &str {
        &self.spec.pool
    }

    /// The allocations it lists (none before its first status write).
    pub fn allocations(&self) -> &[Allocation] {
        self.status.as_ref().map(|status| status.allocations.as_slice()).unwrap_or_default()
    }
}

/// The name of `pool`'s slice number `index`: `<pool>-<index>`, shortened with a hash of the pool's
/// name when that would exceed the 253 characters of an object name.
pub fn slice_name(pool: &str, index: usize) -> String {
    let suffix = format!("-{index}");
    if pool.len() + suffix.len() <= 253 {
        return format!("{pool}{suffix}");
    }
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = pool.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let keep = 253 - suffix.len() - 17;
    let cut = (0..=keep).rev().find(|&i| pool.is_char_boundary(i)).unwrap_or(0);
    format!("{}-{hash:016x}{suffix}", pool[..cut].trim_end_matches(['-', '.']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_names_are_the_pool_and_an_index_and_stay_valid_object_names() {
        assert_eq!(slice_name("web", 0), "web-0");
        let long = "p".repeat(253);
        let (a, b) = (slice_name(&long, 7), slice_name(&format!("{}q", "p".repeat(252)), 7));
        assert!(a.len() <= 253 && a.ends_with("-7"), "{a}");
        assert_ne!(a, b, "two long pool names sharing a prefix get different slice names");
    }

    #[test]
    fn a_full_slice_of_the_longest_names_stays_far_below_256_kib() {
        let entry = Allocation {
            namespace: "n".repeat(63),
            name: "s".repeat(63),
            ips: vec!["255.255.255.255".to_owned(), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".to_owned()],
            external_traffic_policy: Some("Local".to_owned()),
            serving: true,
            node: Some("w".repeat(253)),
            interface: Some("enp0s31f6.4094".to_owned()),
            // The worst case: both addresses found in use.
            in_use: vec!["255.255.255.255".to_owned(), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".to_owned()],
        };
        let status = IPAllocationSliceStatus::listing(vec![entry; MAX_SLICE_ALLOCATIONS]);
        let bytes = serde_json::to_string(&status).expect("serializes").len();
        assert!(bytes < 64 * 1024, "{bytes} bytes");
        assert_eq!((status.allocation_count, status.announced_count), (100, 100));
    }
}
