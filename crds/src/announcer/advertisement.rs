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
//! A label selector means what `metav1.LabelSelectorAsSelector` makes of it: every
//! `matchLabels` pair and every `matchExpressions` requirement must hold. The API server does not
//! check the selectors of a custom resource, so a selector Kubernetes would refuse (an unknown
//! operator, `In`/`NotIn` without values, `Exists`/`DoesNotExist` with values) matches nothing:
//! a typo never widens an advertisement to every node.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::facts::{InterfaceFacts, Labels, PoolFacts};
use crate::v1alpha1::L2AdvertisementSpec;

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
        let entries = specs
            .into_iter()
            .map(|spec| Advertisement {
                pool_names: spec.ip_address_pools.iter().cloned().collect(),
                pool_selectors: spec.ip_address_pool_selectors.iter().map(Selector::new).collect(),
                node_selectors: spec.node_selectors.iter().map(Selector::new).collect(),
                interfaces: spec.interfaces.iter().cloned().collect(),
            })
            .collect();
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
    fn selects_pool(&self, pool: &PoolFacts) -> bool {
        (self.pool_names.is_empty() && self.pool_selectors.is_empty())
            || self.pool_names.contains(&pool.name)
            || self.pool_selectors.iter().any(|selector| selector.matches(&pool.labels))
    }

    fn selects_node(&self, labels: &Labels) -> bool {
        self.node_selectors.is_empty() || self.node_selectors.iter().any(|selector| selector.matches(labels))
    }
}

/// Whether an object with `labels` matches `selector`, by the rules above: every requirement
/// holds, and a selector Kubernetes would refuse matches nothing. Public so that tools judging
/// MetalLB's selectors (`ironlb migrate`) decide exactly as the speakers do.
pub fn selector_matches(selector: &LabelSelector, labels: &Labels) -> bool {
    Selector::new(selector).matches(labels)
}

/// A label selector as a list of requirements that must all hold; `None` when Kubernetes would
/// refuse the selector, which then matches nothing.
#[derive(Clone, Debug)]
struct Selector(Option<Vec<Requirement>>);

#[derive(Clone, Debug)]
struct Requirement {
    key: String,
    operator: Operator,
    values: BTreeSet<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Selector {
    fn new(selector: &LabelSelector) -> Self {
        // `matchLabels: {k: v}` is the requirement `k In (v)`.
        let labels = selector.match_labels.iter().flatten().map(|(key, value)| {
            Some(Requirement { key: key.clone(), operator: Operator::In, values: BTreeSet::from([value.clone()]) })
        });
        let expressions = selector.match_expressions.iter().flatten().map(|expression| {
            let operator = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                _ => return None,
            };
            let values: BTreeSet<String> = expression.values.iter().flatten().cloned().collect();
            let wants_values = matches!(operator, Operator::In | Operator::NotIn);
            (wants_values != values.is_empty()).then(|| Requirement { key: expression.key.clone(), operator, values })
        });
        Self(labels.chain(expressions).collect())
    }

    fn matches(&self, labels: &Labels) -> bool {
        self.0.as_ref().is_some_and(|requirements| requirements.iter().all(|requirement| requirement.matches(labels)))
    }
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|value| self.values.contains(value)),
            // As in Kubernetes: an object without the key is "not in" any set of values.
            Operator::NotIn => value.is_none_or(|value| !self.values.contains(value)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
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

    #[test]
    fn empty_selector_matches_every_node() {
        assert!(Selector::new(&LabelSelector::default()).matches(&Labels::new()));
    }

    #[test]
    fn match_labels_and_expressions_must_all_hold() {
        let mut selector = expression("zone", "In", &["a", "b"]);
        selector.match_labels = Some(labels(&[("role", "edge")]));
        let selector = Selector::new(&selector);
        assert!(selector.matches(&labels(&[("role", "edge"), ("zone", "b")])));
        assert!(!selector.matches(&labels(&[("role", "edge"), ("zone", "c")])));
        assert!(!selector.matches(&labels(&[("zone", "a")])));
    }

    #[test]
    fn not_in_and_does_not_exist_match_a_node_without_the_key() {
        assert!(Selector::new(&expression("zone", "NotIn", &["a"])).matches(&Labels::new()));
        assert!(Selector::new(&expression("zone", "DoesNotExist", &[])).matches(&Labels::new()));
        assert!(!Selector::new(&expression("zone", "Exists", &[])).matches(&Labels::new()));
    }

    #[test]
    fn a_selector_kubernetes_would_refuse_matches_nothing() {
        for refused in
            [expression("zone", "in", &["a"]), expression("zone", "NotIn", &[]), expression("zone", "Exists", &["a"])]
        {
            assert!(!Selector::new(&refused).matches(&labels(&[("zone", "b")])), "{refused:?}");
        }
    }
}
