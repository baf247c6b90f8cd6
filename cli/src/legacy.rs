//! MetalLB's legacy configuration: the YAML inside the `config` key of the ConfigMap
//! `metallb-system/config`, which MetalLB read up to v0.12 (the tutorial's format).
//!
//! Data flow: [`crate::input`] finds the text (a ConfigMap's `data.config`, or a bare document
//! with `address-pools:` at its top) and calls [`parse`]; [`crate::convert`] turns the
//! `layer2` pools into ironlb objects and reports everything else. The types keep every key
//! they do not know in `unknown`, so nothing the file says is dropped without a word.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_yaml::Value;

/// The top-level keys of a MetalLB configuration. A ConfigMap whose `config` holds none of
/// them is some other program's configuration, not MetalLB's.
pub const KNOWN_KEYS: [&str; 5] = ["address-pools", "peers", "bgp-communities", "bfd-profiles", "peer-autodiscovery"];

/// A parsed legacy configuration.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ConfigFile {
    /// `address-pools`: the pools, each with its protocol.
    #[serde(default, rename = "address-pools")]
    pub address_pools: Vec<AddressPool>,
    /// `peers`: BGP routers (kept raw: they are only named in the report).
    #[serde(default)]
    pub peers: Vec<Value>,
    /// `bgp-communities`: names for BGP community values.
    #[serde(default, rename = "bgp-communities")]
    pub bgp_communities: BTreeMap<String, Value>,
    /// `bfd-profiles` (MetalLB v0.12): BFD settings for BGP sessions.
    #[serde(default, rename = "bfd-profiles")]
    pub bfd_profiles: Vec<Value>,
    /// `peer-autodiscovery`: BGP peers read from Node labels or annotations.
    #[serde(default, rename = "peer-autodiscovery")]
    pub peer_autodiscovery: Option<Value>,
    /// Keys this tool does not know, reported rather than dropped.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

/// One entry of `address-pools`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct AddressPool {
    /// The pool's name; Services name it in the `address-pool` annotation.
    #[serde(default)]
    pub name: String,
    /// `layer2` or `bgp`; MetalLB refuses a pool without one.
    #[serde(default)]
    pub protocol: Option<String>,
    /// CIDRs and `start-end` ranges. MetalLB before v0.7 called the key `cidr`.
    #[serde(default, alias = "cidr")]
    pub addresses: Vec<String>,
    /// `auto-assign`, default true.
    #[serde(default, rename = "auto-assign", deserialize_with = "yaml11_bool")]
    pub auto_assign: Option<bool>,
    /// `avoid-buggy-ips`, default false.
    #[serde(default, rename = "avoid-buggy-ips", deserialize_with = "yaml11_bool")]
    pub avoid_buggy_ips: Option<bool>,
    /// `bgp-advertisements`: how a BGP pool's addresses are advertised.
    #[serde(default, rename = "bgp-advertisements")]
    pub bgp_advertisements: Vec<Value>,
    /// Keys this tool does not know (e.g. `arp-network` of MetalLB v0.5).
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

/// Parses the text of a ConfigMap's `config` key.
///
/// Returns `Ok(None)` when the text is not a mapping with any of [`KNOWN_KEYS`]: that is not a
/// MetalLB configuration, and the caller lists it as ignored instead of failing.
///
/// # Errors
///
/// The text names MetalLB settings but does not have their shape (e.g. `addresses` given as
/// a single string); serde_yaml's message says where.
pub fn parse(text: &str) -> Result<Option<ConfigFile>, serde_yaml::Error> {
    let Ok(value) = serde_yaml::from_str::<Value>(text) else { return Ok(None) };
    from_value(value)
}

/// [`parse`] for a configuration already read as YAML (a bare document in a file).
///
/// # Errors
///
/// As [`parse`].
pub fn from_value(value: Value) -> Result<Option<ConfigFile>, serde_yaml::Error> {
    if !looks_like_metallb(&value) {
        return Ok(None);
    }
    serde_yaml::from_value(value).map(Some)
}

/// Whether a document is a mapping with at least one of MetalLB's top-level keys.
pub fn looks_like_metallb(value: &Value) -> bool {
    value.as_mapping().is_some_and(|map| KNOWN_KEYS.iter().any(|key| map.contains_key(*key)))
}

/// A boolean as MetalLB read it: its parser (gopkg.in/yaml.v2) follows YAML 1.1, where
/// `yes`/`no`/`on`/`off` are booleans, while serde_yaml follows YAML 1.2 and sees strings. A
/// ConfigMap MetalLB accepted must not be refused here.
fn yaml11_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Text(String),
    }
    match Option::<Raw>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Raw::Bool(value)) => Ok(Some(value)),
        Some(Raw::Text(text)) => match text.as_str() {
            "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Ok(Some(true)),
            "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Ok(Some(false)),
            _ => Err(D::Error::custom(format!("{text:?} is not a boolean (true or false)"))),
        },
    }
}

/// How the report names a BGP peer: by address and AS numbers, as MetalLB's docs do.
pub fn describe_peer(peer: &Value) -> String {
    let field = |key: &str| match peer.get(key) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    };
    let address = field("peer-address").unwrap_or_else(|| "without peer-address".to_owned());
    match (field("peer-asn"), field("my-asn")) {
        (Some(peer_asn), Some(my_asn)) => format!("{address} (peer-asn {peer_asn}, my-asn {my_asn})"),
        (Some(peer_asn), None) => format!("{address} (peer-asn {peer_asn})"),
        _ => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_and_no_are_booleans_as_in_metallb() {
        let config =
            parse("address-pools:\n- name: a\n  protocol: layer2\n  auto-assign: no\n  avoid-buggy-ips: yes\n")
                .expect("parses")
                .expect("is MetalLB's");
        assert_eq!(config.address_pools[0].auto_assign, Some(false));
        assert_eq!(config.address_pools[0].avoid_buggy_ips, Some(true));
    }

    #[test]
    fn a_word_that_is_no_boolean_is_refused_with_its_place() {
        let error = parse("address-pools:\n- name: a\n  auto-assign: maybe\n").expect_err("refused");
        assert!(error.to_string().contains("\"maybe\" is not a boolean"), "{error}");
    }

    #[test]
    fn another_programs_config_is_not_metallbs() {
        assert_eq!(parse("log-level: debug\n").expect("no error"), None);
        assert_eq!(parse("just text").expect("no error"), None);
        assert_eq!(parse("[unbalanced").expect("no error"), None);
    }

    #[test]
    fn unknown_keys_are_kept_for_the_report() {
        let config = parse("address-pools: []\nfancy: 1\n").expect("parses").expect("is MetalLB's");
        assert_eq!(config.unknown.keys().collect::<Vec<_>>(), ["fancy"]);
    }

    #[test]
    fn peers_are_named_by_address_and_as() {
        let peer: Value =
            serde_yaml::from_str("{peer-address: 10.0.0.1, peer-asn: 64501, my-asn: 64500}").expect("yaml");
        assert_eq!(describe_peer(&peer), "10.0.0.1 (peer-asn 64501, my-asn 64500)");
    }
}
