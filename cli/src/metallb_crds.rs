//! MetalLB's custom resources (`metallb.io`, v0.13 and later), as far as a migration reads them.
//!
//! Data flow: [`crate::input`] recognises a `metallb.io` object by its kind ([`Kind`]) and
//! deserialises the spec into the types here; [`crate::convert`] maps `IPAddressPool` and
//! `L2Advertisement` field by field onto ironlb's, uses the pool selection of
//! `BGPAdvertisement`s to find pools MetalLB announces only over BGP, and reports the kinds
//! ironlb has no counterpart for with [`Kind::why_not_converted`]. Every spec keeps the fields
//! it does not know in `unknown`, so a field added by a later MetalLB is reported, not lost.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;
use serde_json::Value;

/// MetalLB's API group.
pub const GROUP: &str = "metallb.io";

/// The `metallb.io` kinds, as far as a migration tells them apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Addresses to hand out; converted.
    IPAddressPool,
    /// Layer-2 announcement of pools; converted.
    L2Advertisement,
    /// BGP announcement of pools; not converted, but read to see which pools it announces.
    BGPAdvertisement,
    /// A BGP session; not converted.
    BGPPeer,
    /// BFD settings for BGP sessions; not converted.
    BFDProfile,
    /// Named BGP communities; not converted.
    Community,
    /// The v0.12 `AddressPool` (pool and protocol in one, removed in v0.14); converted like a
    /// legacy ConfigMap pool.
    AddressPool,
    /// Status objects MetalLB writes for itself (`ServiceL2Status`, `ServiceBGPStatus`).
    Status(String),
    /// A kind this tool does not know.
    Other(String),
}

impl Kind {
    /// The kind of an object of group `metallb.io`.
    pub fn of(kind: &str) -> Self {
        match kind {
            "IPAddressPool" => Self::IPAddressPool,
            "L2Advertisement" => Self::L2Advertisement,
            "BGPAdvertisement" => Self::BGPAdvertisement,
            "BGPPeer" => Self::BGPPeer,
            "BFDProfile" => Self::BFDProfile,
            "Community" => Self::Community,
            "AddressPool" => Self::AddressPool,
            "ServiceL2Status" | "ServiceBGPStatus" => Self::Status(kind.to_owned()),
            other => Self::Other(other.to_owned()),
        }
    }

    /// Why objects of this kind are not converted, or `None` for the kinds that are.
    pub fn why_not_converted(&self) -> Option<String> {
        const NO_BGP: &str = "ironlb announces addresses at layer 2 only (ARP/NDP) and has no BGP speaker";
        match self {
            Self::IPAddressPool | Self::L2Advertisement | Self::AddressPool | Self::Status(_) => None,
            Self::BGPAdvertisement => Some(format!("{NO_BGP}, so nothing would advertise these routes")),
            Self::BGPPeer => Some(format!("{NO_BGP}, so there is no session to configure")),
            Self::BFDProfile => Some(format!("BFD only tunes BGP sessions; {NO_BGP}")),
            Self::Community => Some(format!("BGP communities only label BGP routes; {NO_BGP}")),
            Self::Other(kind) => Some(format!("{kind} is a metallb.io kind this version of ironlb does not know")),
        }
    }
}

/// `spec` of a `metallb.io/v1beta1` `IPAddressPool`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// CIDRs and `start-end` ranges.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Default true.
    #[serde(default)]
    pub auto_assign: Option<bool>,
    /// Default false.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// Which Services may use the pool, and its priority.
    #[serde(default)]
    pub service_allocation: Option<ServiceAllocation>,
    /// Fields this tool does not know.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

/// `spec.serviceAllocation` of an `IPAddressPool`; the same fields as ironlb's.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Lower is tried first.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Namespaces whose Services may use the pool.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Namespaces, by label, whose Services may use the pool.
    #[serde(default)]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Services, by label, that may use the pool.
    #[serde(default)]
    pub service_selectors: Vec<LabelSelector>,
    /// Fields this tool does not know.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

/// `spec` of a `metallb.io/v1beta1` `L2Advertisement`; the same fields as ironlb's.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Pools by name.
    #[serde(default)]
    pub ip_address_pools: Vec<String>,
    /// Pools by label.
    #[serde(default)]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that may announce.
    #[serde(default)]
    pub node_selectors: Vec<LabelSelector>,
    /// Interfaces to announce on.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Fields this tool does not know.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

/// The pool selection of a `BGPAdvertisement`; its BGP settings do not matter here.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// Pools by name.
    #[serde(default)]
    pub ip_address_pools: Vec<String>,
    /// Pools by label.
    #[serde(default)]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
}

/// `spec` of the deprecated `metallb.io/v1beta1` `AddressPool`: the legacy ConfigMap pool as
/// a custom resource.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressPoolSpec {
    /// `layer2` or `bgp`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// CIDRs and `start-end` ranges.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Default true.
    #[serde(default)]
    pub auto_assign: Option<bool>,
    /// Default false.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// BGP settings of a `bgp` pool.
    #[serde(default)]
    pub bgp_advertisements: Vec<Value>,
    /// Fields this tool does not know.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

/// Which pools an advertisement selects, by MetalLB's rule (the same as ironlb's): a pool named
/// in `names` or whose labels match one of `selectors`; with both empty, every pool.
pub fn selects_pool(
    names: &[String],
    selectors: &[LabelSelector],
    pool: &str,
    pool_labels: &BTreeMap<String, String>,
) -> bool {
    (names.is_empty() && selectors.is_empty())
        || names.iter().any(|name| name == pool)
        || selectors.iter().any(|selector| ironlb_crds::announcer::selector_matches(selector, pool_labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bgp_kind_says_why_it_is_left_out() {
        for kind in ["BGPAdvertisement", "BGPPeer", "BFDProfile", "Community"] {
            let why = Kind::of(kind).why_not_converted().unwrap_or_default();
            assert!(why.contains("BGP"), "{kind}: {why}");
        }
        for kind in ["IPAddressPool", "L2Advertisement", "AddressPool", "ServiceL2Status"] {
            assert_eq!(Kind::of(kind).why_not_converted(), None, "{kind}");
        }
    }

    #[test]
    fn an_advertisement_without_pools_or_selectors_selects_every_pool() {
        let labels = BTreeMap::new();
        assert!(selects_pool(&[], &[], "any", &labels));
        assert!(!selects_pool(&["other".to_owned()], &[], "any", &labels));
    }

    #[test]
    fn pool_selectors_match_the_pool_labels() {
        let selector: LabelSelector = serde_json::from_str(r#"{"matchLabels": {"zone": "lan"}}"#).expect("selector");
        let lan = BTreeMap::from([("zone".to_owned(), "lan".to_owned())]);
        assert!(selects_pool(&[], std::slice::from_ref(&selector), "p", &lan));
        assert!(!selects_pool(&[], &[selector], "p", &BTreeMap::new()));
    }
}
