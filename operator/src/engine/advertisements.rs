//! The status the operator writes on each L2Advertisement: whether it applies.
//!
//! An advertisement holding a label selector Kubernetes would refuse is not used at all (it
//! selects nothing, in the operator and in every speaker: [`ironlb_core::selector`]), as a pool
//! with one is not. Its `Ready` condition says so and names the selector, so that `kubectl get
//! l2advertisement -o wide` and `kubectl describe` answer "why does nobody announce my pool".

use ironlb_core::v1alpha1::{L2Advertisement, L2AdvertisementStatus, condition_reason, condition_type};
use k8s_openapi::jiff::Timestamp;

use super::conditions::{Holds, condition};

/// The status `advertisement` should show at `now`.
pub(crate) fn advertisement_status(advertisement: &L2Advertisement, now: Timestamp) -> L2AdvertisementStatus {
    let generation = advertisement.metadata.generation;
    let previous = advertisement.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let ready = match advertisement.spec.validate() {
        Ok(()) => Holds {
            type_: condition_type::READY,
            holds: true,
            reason: condition_reason::SELECTORS_VALID,
            message: String::new(),
        },
        Err(invalid) => Holds {
            type_: condition_type::READY,
            holds: false,
            reason: condition_reason::INVALID_SELECTOR,
            message: format!("{invalid}: this L2Advertisement selects no pool and no node until it is fixed"),
        },
    };
    L2AdvertisementStatus {
        observed_generation: generation,
        conditions: vec![condition(previous, generation, now, ready)],
    }
}

#[cfg(test)]
mod tests {
    use ironlb_core::v1alpha1::L2AdvertisementSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    use super::*;

    fn advertisement(node_selectors: Vec<LabelSelector>) -> L2Advertisement {
        let mut advertisement =
            L2Advertisement::new("lan", L2AdvertisementSpec { node_selectors, ..L2AdvertisementSpec::default() });
        advertisement.metadata.generation = Some(3);
        advertisement
    }

    #[test]
    fn a_valid_advertisement_is_ready() {
        let status = advertisement_status(&advertisement(vec![]), Timestamp::now());
        assert_eq!(status.observed_generation, Some(3));
        let [ready] = status.conditions.as_slice() else { panic!("one condition: {status:?}") };
        assert_eq!(
            (ready.type_.as_str(), ready.status.as_str(), ready.reason.as_str()),
            ("Ready", "True", "SelectorsValid")
        );
    }

    #[test]
    fn an_unknown_selector_operator_makes_it_not_ready_naming_the_selector() {
        let requirement = LabelSelectorRequirement {
            key: "zone".to_owned(),
            operator: "Equals".to_owned(),
            values: Some(vec!["a".to_owned()]),
        };
        let selector = LabelSelector { match_expressions: Some(vec![requirement]), match_labels: None };
        let status = advertisement_status(&advertisement(vec![selector]), Timestamp::now());
        let [ready] = status.conditions.as_slice() else { panic!("one condition: {status:?}") };
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidSelector"));
        assert!(
            ready.message.starts_with(r#"spec.nodeSelectors[0]: label selector operator "Equals" is not one of"#),
            "{}",
            ready.message
        );
    }

    #[test]
    fn an_unchanged_advertisement_gets_the_status_it_has() {
        let mut current = advertisement(vec![]);
        current.status = Some(advertisement_status(&current, Timestamp::from_second(1_000).expect("time")));
        let again = advertisement_status(&current, Timestamp::now());
        assert_eq!(current.status, Some(again), "no write when nothing changed");
    }
}
