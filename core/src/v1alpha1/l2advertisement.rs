//! `L2Advertisement`: which pools are announced with ARP/NDP, from which nodes, on which
//! interfaces.
//!
//! Data flow: every speaker reads all L2Advertisements; an allocated IP is announced at layer 2
//! only if some advertisement selects its pool, and only nodes (and interfaces) selected by such
//! an advertisement are candidates to announce it. Without any L2Advertisement ironlb assigns
//! addresses but nobody answers for them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Announce the addresses of some pools on the local network, from some nodes.
// Every printcolumn repeats `type_`/`priority`, which clippy mistakes for duplicated attributes.
#[expect(clippy::duplicated_attributes, reason = "printcolumn arguments repeat by design")]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ironlb.io",
    version = "v1alpha1",
    kind = "L2Advertisement",
    plural = "l2advertisements",
    shortname = "l2adv",
    category = "ironlb",
    status = "L2AdvertisementStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "L2Advertisement makes the addresses of some IPAddressPools reachable on the local network: one selected node answers ARP (IPv4) and NDP (IPv6) for each address.",
    printcolumn(
        name = "Pools",
        type_ = "string",
        json_path = ".spec.ipAddressPools",
        description = "Pools announced by name; empty with no selector means all pools"
    ),
    printcolumn(
        name = "Interfaces",
        type_ = "string",
        json_path = ".spec.interfaces",
        description = "Interfaces announced on; empty means all"
    ),
    printcolumn(
        name = "Pool Selectors",
        type_ = "string",
        json_path = ".spec.ipAddressPoolSelectors",
        description = "Pools announced by label",
        priority = 1
    ),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        description = "Nodes allowed to announce; empty means all nodes",
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Names of the IPAddressPools to announce. A pool is announced when it is listed here
    /// or matches one of `ipAddressPoolSelectors`. When both are empty, every pool is
    /// announced. Example: `[default]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(max = 253)))]
    pub ip_address_pools: Vec<String>,

    /// Announce the IPAddressPools whose labels match one of these selectors. Example:
    /// `[{matchLabels: {zone: lan}}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,

    /// Only nodes whose labels match one of these selectors may announce. Empty means every
    /// node running a speaker. Example:
    /// `[{matchLabels: {kubernetes.io/hostname: node-a}}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,

    /// Network interfaces to answer ARP/NDP on. Empty means every interface of the node, as
    /// in MetalLB. Example: `[eth0]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 15)))]
    pub interfaces: Vec<String>,
}

/// What ironlb observed about an advertisement. Written by ironlb; not meant to be edited.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The state of the advertisement, e.g. `Ready`, and a warning when a listed pool does
    /// not exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
