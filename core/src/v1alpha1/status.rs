//! `IPAddressPool.status`: the pool's dashboard.
//!
//! Data flow: the operator (its leader) is the only writer of the status. The allocation record
//! itself — every Service holding addresses from the pool, with what the speakers decide from (the
//! Service's `externalTrafficPolicy`, whether it has a serving endpoint) and the node announcing
//! it — is kept in the pool's [`IPAllocationSlice`](super::IPAllocationSlice)s, bounded objects
//! written when they change. The status keeps what a person looks for: counts per family,
//! conditions, where the record is ([`AllocationRecord`]) and the first [`LISTED_INLINE`]
//! allocations, so a small pool reads in `kubectl describe` as a whole. On restart the operator
//! rebuilds its allocator from the Services' own status and the slices before assigning anything
//! new, so a restart never moves an IP.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::address::AddressCount;

/// Condition types of an `IPAddressPool`.
pub mod condition_type {
    /// True when the pool is valid, conflicts with no other pool, and is being allocated from.
    pub const READY: &str = "Ready";
    /// True when the pool shares addresses with another pool; the message names it.
    pub const CONFLICT: &str = "Conflict";
    /// True when the spec has a problem the API server could not catch (overlapping entries).
    pub const INVALID: &str = "Invalid";
    /// True when a host that is not an ironlb speaker uses an address the pool allocated, as a
    /// speaker found on the wire; the message names the address, the host's MAC and the node.
    pub const ADDRESS_CONFLICT: &str = "AddressConflict";
    /// True when one of the pool's entries holds a node's own address (as the node's speaker
    /// publishes its interfaces); the message names the node, the address and the entry.
    pub const NODE_ADDRESS_IN_POOL: &str = "NodeAddressInPool";
}

/// Condition reasons of an `IPAddressPool`, CamelCase as Kubernetes requires.
pub mod condition_reason {
    /// `Ready=True`: addresses are being allocated from the pool.
    pub const ALLOCATABLE: &str = "Allocatable";
    /// `Ready=False` because `Invalid=True`.
    pub const INVALID: &str = "Invalid";
    /// `Ready=False` because `Conflict=True`.
    pub const CONFLICT: &str = "Conflict";
    /// `Conflict=True`: the pool overlaps another pool.
    pub const OVERLAPS_POOL: &str = "OverlapsPool";
    /// `Conflict=False`.
    pub const NO_OVERLAP: &str = "NoOverlap";
    /// `Invalid=False`.
    pub const VALID: &str = "Valid";
    /// `AddressConflict=True`: a probe before the first announcement found an address in use,
    /// so it is not announced.
    pub const ADDRESS_IN_USE: &str = "AddressInUse";
    /// `AddressConflict=True`: another host claims an address a speaker announces (and keeps
    /// announcing).
    pub const ADDRESS_CLAIMED: &str = "AddressClaimed";
    /// `AddressConflict=False`.
    pub const NO_ADDRESS_CONFLICT: &str = "NoAddressConflict";
    /// `NodeAddressInPool=True`.
    pub const NODE_ADDRESS_IN_POOL: &str = "NodeAddressInPool";
    /// `NodeAddressInPool=False`.
    pub const NO_NODE_ADDRESS: &str = "NoNodeAddress";
    /// A pool's `Invalid=True`, or an L2Advertisement's `Ready=False`: a label selector
    /// Kubernetes would refuse (see [`crate::selector`]); the message names it.
    pub const INVALID_SELECTOR: &str = "InvalidSelector";
    /// An L2Advertisement's `Ready=True`: its selectors are valid, and it applies.
    pub const SELECTORS_VALID: &str = "SelectorsValid";
    // `Invalid=True` uses the reason of the first problem found, see
    // `SpecError::reason` (e.g. `OverlappingEntries`).
}

/// What ironlb has done with a pool. Written by ironlb; not meant to be edited.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolStatus {
    /// The `metadata.generation` of the spec this status describes. When it is lower than the
    /// pool's generation, the operator has not yet processed the latest change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The state of the pool. `Ready`: valid, without conflict, and being allocated from.
    /// `Conflict`: shares addresses with another pool (the message names it; the pool that
    /// was there first keeps serving them). `Invalid`: the spec has a problem the API server
    /// could not check, such as two overlapping entries. `AddressConflict`: a host that is not
    /// an ironlb speaker uses an allocated address (the message names the address, the host's
    /// MAC and the node that saw it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The first Services holding addresses from this pool (in namespace, then name order), up to
    /// 50. The whole record is in the IPAllocationSlices named in `allocationRecord`.
    // Atomic, not a map keyed by Service: the operator is the list's only writer and applies it
    // whole, so per-entry field ownership buys nothing, and server-side apply tracking it per
    // entry made each apply of a 1,000-entry list cost the API server about a second of CPU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub allocations: Vec<Allocation>,

    /// Where the whole allocation record is: how many Services hold addresses from the pool,
    /// how many `allocations` lists, and the IPAllocationSlices holding all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_record: Option<AllocationRecord>,

    /// IPv4 address counts; absent when the pool has no IPv4 entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<FamilyUsage>,

    /// IPv6 address counts; absent when the pool has no IPv6 entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<FamilyUsage>,

    /// Assigned addresses per family, for people: `v4=1 v6=0`. The exact numbers are in
    /// `ipv4` and `ipv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_summary: Option<String>,

    /// Free addresses per family, for people: `v4=39 v6=2^64`. Large numbers are shortened
    /// (`2^64`, `~1.8e19`); the exact numbers are in `ipv4` and `ipv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_summary: Option<String>,
}

/// How many allocations the pool status lists itself; the rest are only in its slices.
pub const LISTED_INLINE: usize = 50;

/// Where a pool's allocation record is kept.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllocationRecord {
    /// Services holding addresses from the pool.
    pub allocations: i64,

    /// Of those, how many `status.allocations` lists (the first ones).
    pub listed_here: i64,

    /// The IPAllocationSlices holding every allocation of the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub slices: Vec<String>,

    /// The label selector listing those slices: `kubectl get ipallocationslices -l <selector>`.
    pub selector: String,
}

/// The addresses one Service holds from the pool, and who announces them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    /// The namespace of the Service.
    pub namespace: String,

    /// The name of the Service.
    pub name: String,

    /// The addresses assigned to the Service from this pool, one per family at most, in
    /// canonical form. Example: `["192.168.2.10"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,

    /// `Local` when the Service's `spec.externalTrafficPolicy` is `Local`: only a node with a
    /// ready or serving endpoint of the Service announces it. Absent means `Cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<String>,

    /// Whether the Service has at least one ready or serving endpoint. No node announces a
    /// Service that has none: its clients get no answer rather than a connection refused.
    #[serde(default)]
    pub serving: bool,

    /// The node answering ARP/NDP for these addresses: the eligible node the announcer function
    /// picks, as every speaker computes it. Absent while no node is eligible (no live speaker
    /// selected by an L2Advertisement, no serving endpoint, no interface on the subnet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,

    /// The network interface the node answers on (the first, when several can carry the
    /// addresses). Example: `eth0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,

    /// Addresses of `ips` that a host other than an ironlb speaker answered a speaker's probe
    /// for. Whichever node is to announce them probes first, and does not announce them while
    /// they are answered, also after a restart or a failover. Kept until ten minutes after the
    /// last speaker reported them in use. Example: `["192.168.2.10"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_use: Vec<String>,
}

/// The `externalTrafficPolicy` value recorded in [`Allocation::external_traffic_policy`].
pub const TRAFFIC_POLICY_LOCAL: &str = "Local";

impl Allocation {
    /// Whether only nodes with a local endpoint may announce the addresses.
    pub fn is_local(&self) -> bool {
        self.external_traffic_policy.as_deref() == Some(TRAFFIC_POLICY_LOCAL)
    }
}

/// Address counts of one family, as exact decimal strings: an IPv6 /64 holds 2^64 addresses,
/// more than a Kubernetes integer (int64) can carry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FamilyUsage {
    /// Addresses assigned to Services. Example: `"1"`.
    pub assigned: String,

    /// Addresses still free for new Services (with `avoidBuggyIPs`, not counting skipped
    /// addresses). Example: `"18446744073709551615"`.
    pub available: String,
}

/// Address counts of one family, as numbers; see [`IPAddressPoolStatus::record_usage`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FamilyCounts {
    /// Addresses assigned to Services.
    pub assigned: AddressCount,
    /// Addresses still free.
    pub available: AddressCount,
}

impl IPAddressPoolStatus {
    /// Writes the per-family counts and the summaries shown by `kubectl get`. Pass `None` for
    /// a family the pool has no entry of.
    pub fn record_usage(&mut self, ipv4: Option<FamilyCounts>, ipv6: Option<FamilyCounts>) {
        let exact = |counts: FamilyCounts| FamilyUsage {
            assigned: counts.assigned.to_string(),
            available: counts.available.to_string(),
        };
        self.ipv4 = ipv4.map(exact);
        self.ipv6 = ipv6.map(exact);
        let families = [("v4", ipv4), ("v6", ipv6)];
        let summary = |pick: fn(FamilyCounts) -> AddressCount| {
            let parts: Vec<String> = families
                .iter()
                .filter_map(|&(label, counts)| counts.map(|c| format!("{label}={}", pick(c).human())))
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        };
        self.assigned_summary = summary(|c| c.assigned);
        self.available_summary = summary(|c| c.available);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_keeps_exact_counts_and_short_summaries() {
        let mut status = IPAddressPoolStatus::default();
        let v4 = FamilyCounts { assigned: AddressCount::new(1), available: AddressCount::new(39) };
        let v6 = FamilyCounts { assigned: AddressCount::ZERO, available: AddressCount::new(1 << 64) };
        status.record_usage(Some(v4), Some(v6));
        assert_eq!(status.ipv6.as_ref().map(|u| u.available.as_str()), Some("18446744073709551616"));
        assert_eq!(status.assigned_summary.as_deref(), Some("v4=1 v6=0"));
        assert_eq!(status.available_summary.as_deref(), Some("v4=39 v6=2^64"));
    }

    #[test]
    fn single_stack_pool_summarises_one_family() {
        let mut status = IPAddressPoolStatus::default();
        let v4 = FamilyCounts { assigned: AddressCount::new(1), available: AddressCount::new(39) };
        status.record_usage(Some(v4), None);
        assert_eq!(status.ipv6, None);
        assert_eq!(status.available_summary.as_deref(), Some("v4=39"));
    }
}
