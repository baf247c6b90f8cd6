//! `IPAddressPool`: the addresses an administrator hands to ironlb.
//!
//! Data flow: the administrator applies a pool; the API server checks every entry with the CEL
//! rules of [`super::cel`]; the operator reads the spec, runs [`IPAddressPoolSpec::validate`]
//! (the same checks plus overlaps inside the pool), allocates from it and records the result in
//! [`IPAddressPoolStatus`]; the speakers read that status to know which IPs to answer for.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::IPAddressPoolStatus;
use super::cel::{MAX_ADDRESSES, MAX_ENTRY_LENGTH, address_list_schema};

/// A set of IP addresses that ironlb may assign to Services of `type: LoadBalancer`.
///
/// The API server refuses malformed entries with a message naming the entry. Overlaps between
/// entries of one pool, or with other pools, are reported in `status.conditions`.
// Every printcolumn repeats `type_`/`priority`, which clippy mistakes for duplicated attributes.
#[expect(clippy::duplicated_attributes, reason = "printcolumn arguments repeat by design")]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ironlb.io",
    version = "v1alpha1",
    kind = "IPAddressPool",
    plural = "ipaddresspools",
    shortname = "ipp",
    category = "ironlb",
    status = "IPAddressPoolStatus",
    derive = "PartialEq",
    doc = "IPAddressPool is a set of IP addresses that ironlb assigns to Services of type LoadBalancer and announces on the local network.",
    printcolumn(
        name = "Auto Assign",
        type_ = "boolean",
        json_path = ".spec.autoAssign",
        description = "Whether Services get addresses from this pool without asking for it"
    ),
    printcolumn(
        name = "Assigned",
        type_ = "string",
        json_path = ".status.assignedSummary",
        description = "Addresses assigned to Services, per family"
    ),
    printcolumn(
        name = "Available",
        type_ = "string",
        json_path = ".status.availableSummary",
        description = "Addresses still free, per family"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the pool is valid and addresses are being allocated from it"
    ),
    printcolumn(
        name = "Conflict",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Conflict")].status"#,
        description = "Whether the pool overlaps another pool"
    ),
    printcolumn(
        name = "Addresses",
        type_ = "string",
        json_path = ".spec.addresses",
        description = "The CIDRs and ranges of the pool"
    ),
    printcolumn(
        name = "Avoid Buggy IPs",
        type_ = "boolean",
        json_path = ".spec.avoidBuggyIPs",
        description = "Whether IPv4 addresses ending in .0 and .255 are skipped",
        priority = 1
    ),
    printcolumn(
        name = "Priority",
        type_ = "integer",
        json_path = ".spec.serviceAllocation.priority",
        description = "Order in which pools are tried; lower first",
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// The addresses of the pool: CIDRs (`192.168.2.0/24`, `fd00:10::/64`) and inclusive
    /// `start-end` ranges (`192.168.2.10-192.168.2.49`, `fd00:10::10-fd00:10::ff`). IPv4 and
    /// IPv6 entries may be mixed; a pool with both can serve dual-stack Services. A single
    /// address is written `/32` or `/128`. A CIDR must be a network address
    /// (`192.168.2.0/24`, not `192.168.2.1/24`). Entries are never enumerated, so a /8 or an
    /// IPv6 /64 is fine. Whitespace around an entry and around the dash of a range is ignored;
    /// anywhere else it makes the entry malformed. At least one entry; at most 256, each at most
    /// 100 characters.
    #[schemars(
        length(min = 1, max = MAX_ADDRESSES),
        inner(length(max = MAX_ENTRY_LENGTH)),
        transform = address_list_schema
    )]
    pub addresses: Vec<String>,

    /// Whether Services that name no pool may get addresses from this one. Set it to false
    /// for scarce addresses (public IPv4) that a Service must ask for explicitly with the
    /// `ironlb.io/address-pool` annotation or `spec.loadBalancerIP`. Default: true.
    #[serde(default = "default_auto_assign")]
    pub auto_assign: bool,

    /// Skip IPv4 addresses ending in `.0` and `.255`. Some old or buggy client stacks drop
    /// traffic to such addresses even when they are ordinary hosts inside a larger block.
    /// Has no effect on IPv6. Default: false.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,

    /// Limits which Services may get addresses from this pool, and in which order pools are
    /// tried. When unset, every Service may use the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

impl IPAddressPoolSpec {
    /// A pool of `addresses` with every other field at its default (`autoAssign: true`).
    pub fn new(addresses: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            addresses: addresses.into_iter().map(Into::into).collect(),
            auto_assign: default_auto_assign(),
            avoid_buggy_ips: false,
            service_allocation: None,
        }
    }
}

fn default_auto_assign() -> bool {
    true
}

/// Which Services a pool serves, and its precedence over other pools.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// The order in which pools are tried for a Service that names none: a lower number is
    /// tried first, and pools without a priority come after all pools with one. Among pools
    /// of equal priority the older pool comes first, then the name decides. Example: `10`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,

    /// Only Services in these namespaces may use the pool. Combined with
    /// `namespaceSelectors`: a namespace listed here or matching a selector qualifies. Empty
    /// (with no selectors) means every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")))]
    pub namespaces: Vec<String>,

    /// Only Services in namespaces whose labels match one of these selectors may use the
    /// pool. Example: `[{matchLabels: {team: web}}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,

    /// Only Services whose labels match one of these selectors may use the pool. Example:
    /// `[{matchExpressions: [{key: tier, operator: In, values: [frontend]}]}]`. Empty means
    /// every Service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}
