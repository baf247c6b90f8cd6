//! Kubernetes label selectors, evaluated in memory.
//!
//! Data flow: the glue converts the `namespaceSelectors` and `serviceSelectors` of a pool's
//! `serviceAllocation` (Kubernetes `LabelSelector`s) into [`LabelSelector`]s; the allocator
//! matches them against the labels of a Service and of its Namespace when it decides whether a
//! pool may serve that Service. The semantics are those of `metav1.LabelSelectorAsSelector`:
//! every `matchLabels` pair and every `matchExpressions` requirement must hold, so a selector
//! with neither matches everything, and `NotIn` matches an object that lacks the key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The labels of an object (a Service or a Namespace).
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
}
