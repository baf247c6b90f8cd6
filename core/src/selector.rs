//! Kubernetes label selectors, evaluated in memory: the one implementation behind every selector
//! ironlb reads — a pool's `serviceAllocation.namespaceSelectors` and `serviceSelectors` (the
//! operator's allocator), an L2Advertisement's `ipAddressPoolSelectors` and `nodeSelectors` (the
//! announcer, in the operator and every speaker), and MetalLB's (`ironlb migrate`).
//!
//! The semantics are those of `metav1.LabelSelectorAsSelector`: every `matchLabels` pair and
//! every `matchExpressions` requirement must hold, so a selector with neither matches
//! everything, and `NotIn` matches an object that lacks the key.
//!
//! # A selector Kubernetes would refuse
//!
//! The API server checks the selectors of built-in kinds only, so a custom resource can hold an
//! unknown operator (`in`, `Equals`), `In`/`NotIn` without values or `Exists`/`DoesNotExist` with
//! values. [`parse_selectors`] refuses each with an [`InvalidSelector`] naming the field, the
//! index and the problem, and every reader treats the object the same way: it is not used at
//! all — an IPAddressPool with one serves no new Service and says so in its `Ready` condition,
//! an L2Advertisement with one selects nothing and says so in its `Ready` condition. A typo never
//! widens an object to every Service or every node, and never narrows it silently either.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as KubeSelector;
use thiserror::Error;

/// The labels of an object (a Service, a Namespace, a pool, a node).
pub type Labels = BTreeMap<String, String>;

/// A Kubernetes label selector: `matchLabels` and `matchExpressions`, all of which must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Labels the object must carry with exactly these values.
    pub match_labels: Labels,
    /// Requirements the object's labels must all meet.
    pub match_expressions: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches every object (an empty `{}` selector in Kubernetes).
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether `labels` meet every `matchLabels` pair and every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels.iter().all(|(key, value)| labels.get(key) == Some(value))
            && self.match_expressions.iter().all(|requirement| requirement.matches(labels))
    }

    /// A Kubernetes `LabelSelector`, checked as `metav1.LabelSelectorAsSelector` checks it.
    pub fn parse(selector: &KubeSelector) -> Result<Self, SelectorError> {
        let mut match_expressions = Vec::new();
        for expression in selector.match_expressions.iter().flatten() {
            let operator: SelectorOperator = expression.operator.parse()?;
            let values: BTreeSet<String> = expression.values.iter().flatten().cloned().collect();
            let key = || expression.key.clone();
            match (operator.takes_values(), values.is_empty()) {
                (true, true) => return Err(SelectorError::ValuesRequired { key: key(), operator }),
                (false, false) => return Err(SelectorError::ValuesForbidden { key: key(), operator }),
                _ => {}
            }
            match_expressions.push(Requirement { key: key(), operator, values });
        }
        Ok(Self { match_labels: selector.match_labels.clone().unwrap_or_default(), match_expressions })
    }
}

/// Why a selector is refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SelectorError {
    /// See [`UnknownOperator`].
    #[error(transparent)]
    UnknownOperator(#[from] UnknownOperator),
    /// `In` or `NotIn` with an empty `values`.
    #[error("{operator} on key {key:?} needs at least one value")]
    ValuesRequired {
        /// The requirement's key.
        key: String,
        /// Its operator.
        operator: SelectorOperator,
    },
    /// `Exists` or `DoesNotExist` with `values`.
    #[error("{operator} on key {key:?} takes no values")]
    ValuesForbidden {
        /// The requirement's key.
        key: String,
        /// Its operator.
        operator: SelectorOperator,
    },
}

/// A refused selector, with where it sits: `spec.nodeSelectors[1]: …`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{field}[{index}]: {error}")]
pub struct InvalidSelector {
    /// The field holding the list, e.g. `spec.nodeSelectors`.
    pub field: String,
    /// The selector's index in it.
    pub index: usize,
    /// What is wrong.
    pub error: SelectorError,
}

/// The selectors of the list at `field`, or the first one refused.
pub fn parse_selectors(selectors: &[KubeSelector], field: &str) -> Result<Vec<LabelSelector>, InvalidSelector> {
    selectors
        .iter()
        .enumerate()
        .map(|(index, selector)| {
            LabelSelector::parse(selector).map_err(|error| InvalidSelector { field: field.to_owned(), index, error })
        })
        .collect()
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The label key the requirement looks at.
    pub key: String,
    /// How the label is compared with `values`.
    pub operator: SelectorOperator,
    /// The values for `In` and `NotIn`; empty for `Exists` and `DoesNotExist`.
    pub values: BTreeSet<String>,
}

impl Requirement {
    /// Whether `labels` meet the requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|value| self.values.contains(value)),
            // As in Kubernetes: an object without the key is "not in" any set of values.
            SelectorOperator::NotIn => value.is_none_or(|value| !self.values.contains(value)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

/// The operator of a `matchExpressions` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SelectorOperator {
    /// The label is present and its value is one of `values`.
    In,
    /// The label is absent, or its value is none of `values`.
    NotIn,
    /// The label is present, whatever its value.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// An operator that is not one of Kubernetes' four, as written.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("label selector operator {operator:?} is not one of In, NotIn, Exists, DoesNotExist")]
pub struct UnknownOperator {
    /// The operator as written.
    pub operator: String,
}

impl SelectorOperator {
    /// Whether the operator compares with `values` (which must then not be empty).
    pub const fn takes_values(self) -> bool {
        matches!(self, Self::In | Self::NotIn)
    }
}

/// Parses the spelling Kubernetes uses (`In`, `NotIn`, `Exists`, `DoesNotExist`; case matters).
impl FromStr for SelectorOperator {
    type Err = UnknownOperator;

    fn from_str(operator: &str) -> Result<Self, Self::Err> {
        match operator {
            "In" => Ok(Self::In),
            "NotIn" => Ok(Self::NotIn),
            "Exists" => Ok(Self::Exists),
            "DoesNotExist" => Ok(Self::DoesNotExist),
            _ => Err(UnknownOperator { operator: operator.to_owned() }),
        }
    }
}

impl fmt::Display for SelectorOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::In => "In",
            Self::NotIn => "NotIn",
            Self::Exists => "Exists",
            Self::DoesNotExist => "DoesNotExist",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|&(key, value)| (key.to_owned(), value.to_owned())).collect()
    }

    fn requirement(key: &str, operator: SelectorOperator, values: &[&str]) -> Requirement {
        Requirement { key: key.to_owned(), operator, values: values.iter().map(|&v| v.to_owned()).collect() }
    }

    fn expressions(requirements: Vec<Requirement>) -> LabelSelector {
        LabelSelector { match_labels: Labels::new(), match_expressions: requirements }
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::everything().matches(&Labels::new()));
        assert!(LabelSelector::everything().matches(&labels(&[("team", "web")])));
    }

    #[test]
    fn match_labels_require_every_pair_with_its_value() {
        let selector =
            LabelSelector { match_labels: labels(&[("team", "web"), ("tier", "front")]), ..Default::default() };
        assert!(selector.matches(&labels(&[("team", "web"), ("tier", "front"), ("extra", "x")])));
        assert!(!selector.matches(&labels(&[("team", "web")])));
        assert!(!selector.matches(&labels(&[("team", "web"), ("tier", "back")])));
    }

    #[test]
    fn in_requires_the_key_with_a_listed_value() {
        let selector = expressions(vec![requirement("tier", SelectorOperator::In, &["front", "edge"])]);
        assert!(selector.matches(&labels(&[("tier", "edge")])));
        assert!(!selector.matches(&labels(&[("tier", "back")])));
        assert!(!selector.matches(&Labels::new()));
    }

    #[test]
    fn not_in_matches_objects_without_the_key() {
        let selector = expressions(vec![requirement("tier", SelectorOperator::NotIn, &["back"])]);
        assert!(selector.matches(&Labels::new()));
        assert!(selector.matches(&labels(&[("tier", "front")])));
        assert!(!selector.matches(&labels(&[("tier", "back")])));
    }

    #[test]
    fn exists_and_does_not_exist_look_only_at_the_key() {
        let exists = expressions(vec![requirement("team", SelectorOperator::Exists, &[])]);
        let absent = expressions(vec![requirement("team", SelectorOperator::DoesNotExist, &[])]);
        let with_team = labels(&[("team", "")]);
        assert!(exists.matches(&with_team));
        assert!(!exists.matches(&Labels::new()));
        assert!(!absent.matches(&with_team));
        assert!(absent.matches(&Labels::new()));
    }

    #[test]
    fn labels_and_every_expression_must_all_hold() {
        let selector = LabelSelector {
            match_labels: labels(&[("team", "web")]),
            match_expressions: vec![
                requirement("tier", SelectorOperator::In, &["front"]),
                requirement("legacy", SelectorOperator::DoesNotExist, &[]),
            ],
        };
        assert!(selector.matches(&labels(&[("team", "web"), ("tier", "front")])));
        assert!(!selector.matches(&labels(&[("team", "web"), ("tier", "front"), ("legacy", "yes")])));
        assert!(!selector.matches(&labels(&[("team", "db"), ("tier", "front")])));
    }

    #[test]
    fn operators_parse_only_in_kubernetes_spelling() {
        for operator in
            [SelectorOperator::In, SelectorOperator::NotIn, SelectorOperator::Exists, SelectorOperator::DoesNotExist]
        {
            assert_eq!(operator.to_string().parse::<SelectorOperator>(), Ok(operator));
        }
        assert_eq!("in".parse::<SelectorOperator>(), Err(UnknownOperator { operator: "in".to_owned() }));
    }

    fn kube(key: &str, operator: &str, values: &[&str]) -> KubeSelector {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
        let values = (!values.is_empty()).then(|| values.iter().map(|&v| v.to_owned()).collect());
        let requirement = LabelSelectorRequirement { key: key.to_owned(), operator: operator.to_owned(), values };
        KubeSelector { match_expressions: Some(vec![requirement]), match_labels: None }
    }

    #[test]
    fn a_kubernetes_selector_parses_into_the_same_requirements() {
        let mut selector = kube("zone", "In", &["a", "b"]);
        selector.match_labels = Some(labels(&[("role", "edge")]));
        let parsed = LabelSelector::parse(&selector).expect("valid");
        assert!(parsed.matches(&labels(&[("role", "edge"), ("zone", "b")])));
        assert!(!parsed.matches(&labels(&[("role", "edge"), ("zone", "c")])));
        assert!(!parsed.matches(&labels(&[("zone", "a")])));
        assert_eq!(LabelSelector::parse(&KubeSelector::default()), Ok(LabelSelector::everything()));
    }

    #[test]
    fn selectors_kubernetes_would_refuse_are_refused_naming_field_index_and_problem() {
        let cases = [
            (
                kube("zone", "in", &["a"]),
                r#"spec.nodeSelectors[1]: label selector operator "in" is not one of In, NotIn, Exists, DoesNotExist"#,
            ),
            (kube("zone", "NotIn", &[]), r#"spec.nodeSelectors[1]: NotIn on key "zone" needs at least one value"#),
            (kube("zone", "Exists", &["a"]), r#"spec.nodeSelectors[1]: Exists on key "zone" takes no values"#),
        ];
        for (refused, message) in cases {
            let error = parse_selectors(&[KubeSelector::default(), refused], "spec.nodeSelectors").expect_err(message);
            assert_eq!(error.to_string(), message);
        }
    }
}
