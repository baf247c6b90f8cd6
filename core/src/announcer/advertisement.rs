//! L2Advertisements reduced to what the announcer asks of them: does one select this pool and
//! this node, and on which interfaces.
//!
//! Selection rules (as MetalLB's):
//! - pools: an advertisement selects a pool named in `ipAddressPools` or whose labels match one
//!   of `ipAddressPoolSelectors`; with both empty it selects every pool;
//! - nodes: it selects a node whose labels match one of `nodeSelectors`; empty selects every node;
//! - interfaces: the advertisements that select both the pool and the node allow the union of
//!   their `interfaces`; one with an empty list allows every interface fit for announcing by
//!   default.
//!
//! A label selector means what `metav1.LabelSelectorAsSelector` makes of it ([`crate::selector`]).
//! The API server does not check the selectors of a custom resource; an advertisement holding
//! one Kubernetes would refuse (an unknown operator, `In`/`NotIn` without values,
//! `Exists`/`DoesNotExist` with values) is not used at all, as a pool with such a selector is
//! not: it selects nothing, and the operator says why in its `Ready` condition
//! ([`L2AdvertisementSpec::validate`]). A typo never widens an advertisement to every node.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::facts::{InterfaceFacts, Labels, PoolFacts};
use crate::selector::{InvalidSelector, LabelSelector as Selector, parse_selectors};
use crate::v1alpha1::L2AdvertisementSpec;

/// Where an advertisement's selectors sit, as refusals name them.
const POOL_SELECTORS: &str = "spec.ipAddressPoolSelectors";
const NODE_SELECTORS: &str = "spec.nodeSelectors";

impl L2AdvertisementSpec {
    /// The first selector Kubernetes would refuse, if any: such an advertisement selects nothing.
    pub fn validate(&self) -> Result<(), InvalidSelector> {
        parse_selectors(&self.ip_address_pool_selectors, POOL_SELECTORS)?;
        parse_selectors(&self.node_selectors, NODE_SELECTORS)?;
        Ok(())
    }
}

/// The cluster's L2Advertisements, with their selectors checked once.
///
/// Build it when the advertisements change, not per decision:
/// `Advertisements::new(store.state().iter().map(|adv| &adv.spec))`.
#[derive(Clone, Debug, Default)]
pub struct Advertisements {
    entries: Vec<Advertisement>,
}

impl Advertisements {
    /// Compiles the specs of every L2Advertisement of the cluster.
    pub fn new<'a>(specs: impl IntoIterator<Item = &'a L2AdvertisementSpec>) -> Self {
        let entries = specs.into_iter().filter_map(Advertisement::compile).collect();
        Self { entries }
    }

    /// The interfaces on which a node with `node_labels` may announce the addresses of `pool`,
    /// or `None` when no advertisement selects both.
    pub(super) fn allowed_interfaces(&self, pool: &PoolFacts, node_labels: &Labels) -> Option<AllowedInterfaces<'_>> {
        self.entries.iter().filter(|adv| adv.selects_pool(pool) && adv.selects_node(node_labels)).fold(
            None,
            |allowed: Option<AllowedInterfaces<'_>>, adv| {
                let mut allowed = allowed.unwrap_or_default();
                allowed.by_default |= adv.interfaces.is_empty();
                allowed.named.extend(adv.interfaces.iter().map(String::as_str));
                Some(allowed)
            },
        )
    }
}

/// The union of the `interfaces` of the advertisements selecting one pool and one node.
#[derive(Clone, Debug, Default)]
pub(super) struct AllowedInterfaces<'a> {
    /// Some selecting advertisement lists no interface: every default interface is allowed.
    by_default: bool,
    named: BTreeSet<&'a str>,
}

impl AllowedInterfaces<'_> {
    pub(super) fn allows(&self, interface: &InterfaceFacts) -> bool {
        self.named.contains(interface.name.as_str()) || (self.by_default && interface.announce_by_default)
    }
}

#[derive(Clone, Debug)]
struct Advertisement {
    pool_names: BTreeSet<String>,
    pool_selectors: Vec<Selector>,
    node_selectors: Vec<Selector>,
    interfaces: BTreeSet<String>,
}

impl Advertisement {
    /// The advertisement as the announcer reads it; `None` (it selects nothing) when one of its
    /// selectors is refused.
    fn compile(spec: &L2AdvertisementSpec) -> Option<Self> {
        Some(Self {
            pool_names: spec.ip_address_pools.iter().cloned().collect(),
            pool_selectors: parse_selectors(&spec.ip_address_pool_selectors, POOL_SELECTORS).ok()?,
            node_selectors: parse_selectors(&spec.node_selectors, NODE_SELECTORS).ok()?,
            interfaces: spec.interfaces.iter().cloned().collect(),
        })
    }

    fn selects_pool(&self, pool: &PoolFacts) -> bool {
        (self.pool_names.is_empty() && self.pool_selectors.is_empty())
            || self.pool_names.contains(&pool.name)
            || self.pool_selectors.iter().any(|selector| selector.matches(&pool.labels))
    }

    fn selects_node(&self, labels: &Labels) -> bool {
        self.node_selectors.is_empty() || self.node_selectors.iter().any(|selector| selector.matches(labels))
    }
}

/// Whether an object with `labels` matches `selector`, by the rules of [`crate::selector`]: every
/// requirement holds, and a selector Kubernetes would refuse matches nothing. Public so that
/// tools judging MetalLB's selectors (`ironlb migrate`) decide exactly as the speakers do.
pub fn selector_matches(selector: &LabelSelector, labels: &Labels) -> bool {
    crate::selector::LabelSelector::parse(selector).is_ok_and(|selector| selector.matches(labels))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|&(key, value)| (key.to_owned(), value.to_owned())).collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelector {
        let values = (!values.is_empty()).then(|| values.iter().map(|&v| v.to_owned()).collect());
        let requirement = LabelSelectorRequirement { key: key.to_owned(), operator: operator.to_owned(), values };
        LabelSelector { match_expressions: Some(vec![requirement]), match_labels: None }
    }

    fn pool(name: &str) -> PoolFacts {
        PoolFacts { name: name.to_owned(), labels: labels(&[("zone", "b")]) }
    }

    #[test]
    fn an_advertisement_selects_pools_and_nodes_by_label() {
        let spec = L2AdvertisementSpec {
            ip_address_pool_selectors: vec![expression("zone", "In", &["b"])],
            node_selectors: vec![expression("role", "Exists", &[])],
            ..L2AdvertisementSpec::default()
        };
        let advertisements = Advertisements::new([&spec]);
        assert!(advertisements.allowed_interfaces(&pool("default"), &labels(&[("role", "edge")])).is_some());
        assert!(advertisements.allowed_interfaces(&pool("default"), &Labels::new()).is_none(), "node not selected");
        let other = PoolFacts { name: "other".to_owned(), labels: Labels::new() };
        assert!(advertisements.allowed_interfaces(&other, &labels(&[("role", "edge")])).is_none(), "pool not selected");
    }

    #[test]
    fn an_advertisement_with_a_selector_kubernetes_would_refuse_selects_nothing_and_says_where() {
        for (refused, message) in [
            (
                expression("zone", "in", &["a"]),
                r#"spec.nodeSelectors[1]: label selector operator "in" is not one of In, NotIn, Exists, DoesNotExist"#,
            ),
            (
                expression("zone", "NotIn", &[]),
                r#"spec.nodeSelectors[1]: NotIn on key "zone" needs at least one value"#,
            ),
            (expression("zone", "Exists", &["a"]), r#"spec.nodeSelectors[1]: Exists on key "zone" takes no values"#),
        ] {
            // The first node selector alone would select every node: the refused one voids the whole advertisement.
            let spec = L2AdvertisementSpec {
                node_selectors: vec![LabelSelector::default(), refused.clone()],
                ..L2AdvertisementSpec::default()
            };
            assert_eq!(spec.validate().expect_err(message).to_string(), message);
            let advertisements = Advertisements::new([&spec]);
            assert!(
                advertisements.allowed_interfaces(&pool("default"), &labels(&[("zone", "b")])).is_none(),
                "{refused:?}"
            );
            assert!(!selector_matches(&refused, &labels(&[("zone", "b")])), "{refused:?}");
        }
        let pools = L2AdvertisementSpec {
            ip_address_pool_selectors: vec![expression("zone", "Equals", &["b"])],
            ..L2AdvertisementSpec::default()
        };
        assert!(pools.validate().expect_err("refused").to_string().starts_with("spec.ipAddressPoolSelectors[0]: "));
        assert_eq!(L2AdvertisementSpec::default().validate(), Ok(()));
    }
}
