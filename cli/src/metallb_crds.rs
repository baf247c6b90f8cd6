//! MetalLB's custom resources (`metallb.io`, v0.13 and later), as far as a migration reads them.
//!
//! Data flow: [`crate::input`] recognises a `metallb.io` object by its kind ([`Kind`]) and
//! deserialises the spec into the types here; [`crate::convert`] maps `IPAddressPool` and
//! `L2Advertisement` field by field onto ironlb's, uses the pool selection of
//! `BGPAdvertisement`s to find pools MetalLB announces only over BGP, and reports the kinds
//! ironlb has no counterpart for with [`Kind::why_not_converted`]. Every spec keeps the fields
//! it does not know in `unknown`, so a field added by a later MetalLB is reported, not lost.

use std::collections::BTreeMap;

use ironlb_core::announcer::selector_matches;
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

/// What every MetalLB pool resource says about its addresses.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolAddresses {
    /// CIDRs and `start-end` ranges.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Default true.
    #[serde(default)]
    pub auto_assign: Option<bool>,
    /// Default false.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
}

/// `spec` of a `metallb.io/v1beta1` `IPAddressPool`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// `addresses`, `autoAssign`, `avoidBuggyIPs`.
    #[serde(flatten)]
    pub pool: PoolAddresses,
    /// Which Services may use the pool, and its priority.
    #[serde(default)]
    pub service_allocation: Option<ServiceAllocation>,
    /// Fields this tool does not know (declared last: it gets what the others leave).
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

/// Which pools an advertisement (L2 or BGP) selects.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolSelection {
    /// Pools by name.
    #[serde(default)]
    pub ip_address_pools: Vec<String>,
    /// Pools by label.
    #[serde(default)]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
}

impl PoolSelection {
    /// Whether the pool `name` with `labels` is selected, by MetalLB's rule (the same as
    /// ironlb's): named in `ipAddressPools`, or labels matching one of
    /// `ipAddressPoolSelectors`; with both empty, every pool.
    pub fn selects(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.ip_address_pools.is_empty() && self.ip_address_pool_selectors.is_empty())
            || self.ip_address_pools.iter().any(|pool| pool == name)
            || self.ip_address_pool_selectors.iter().any(|selector| selector_matches(selector, labels))
    }
}

/// `spec` of a `metallb.io/v1beta1` `L2Advertisement`; the same fields as ironlb's.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// `ipAddressPools`, `ipAddressPoolSelectors`.
    #[serde(flatten)]
    pub pools: PoolSelection,
    /// Nodes that may announce.
    #[serde(default)]
    pub node_selectors: Vec<LabelSelector>,
    /// Interfaces to announce on.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Fields this tool does not know (declared last: it gets what the others leave).
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

/// `spec` of a `BGPAdvertisement`, as far as it matters here: which pools it announces.
pub type BGPAdvertisementSpec = PoolSelection;

/// `spec` of the deprecated `metallb.io/v1beta1` `AddressPool`: the legacy ConfigMap pool as
/// a custom resource.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressPoolSpec {
    /// `layer2` or `bgp`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// `addresses`, `autoAssign`, `avoidBuggyIPs`.
    #[serde(flatten)]
    pub pool: PoolAddresses,
    /// BGP settings of a `bgp` pool.
    #[serde(default)]
    pub bgp_advertisements: Vec<Value>,
    /// Fields this tool does not know (declared last: it gets what the others leave).
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
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
        assert!(PoolSelection::default().selects("any", &labels));
        let named = PoolSelection { ip_address_pools: vec!["other".to_owned()], ..PoolSelection::default() };
        assert!(!named.selects("any", &labels));
    }

    #[test]
    fn pool_selectors_match_the_pool_labels() {
        let selection: PoolSelection =
            serde_json::from_str(r#"{"ipAddressPoolSelectors": [{"matchLabels": {"zone": "lan"}}]}"#).expect("spec");
        let lan = BTreeMap::from([("zone".to_owned(), "lan".to_owned())]);
        assert!(selection.selects("p", &lan));
        assert!(!selection.selects("p", &BTreeMap::new()));
    }

    #[test]
    fn unknown_fields_are_only_those_no_other_field_takes() {
        let spec: L2AdvertisementSpec =
            serde_json::from_str(r#"{"ipAddressPools": ["a"], "interfaces": ["eth0"], "later": 1}"#).expect("spec");
        assert_eq!(spec.pools.ip_address_pools, ["a"]);
        assert_eq!(spec.unknown.keys().collect::<Vec<_>>(), ["later"]);
    }
}
