//! Why a Service cannot be turned into an allocation request.
//!
//! Data flow: [`allocation_request`](super::allocation_request) returns a [`ServiceError`] before
//! the allocator is asked anything; the glue puts its `Display` text in an `AllocationFailed`
//! Event on the Service and counts it in the allocation-failure metric under
//! [`ServiceError::reason`], beside the allocator's own reasons. The text names the annotation or
//! field, the value as written, and what to change.

use std::fmt;
use std::net::IpAddr;

use ironlb_core::address::Family;
use thiserror::Error;

use crate::allocator::IpFamilyPolicy;

/// Where a value came from (an annotation spelling or a Service field) and the value as written.
/// Displays as `metallb.io/address-pool="blue"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The annotation key, or the field path such as `spec.loadBalancerIP`.
    pub origin: &'static str,
    /// The value, as written.
    pub value: String,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}", self.origin, self.value)
    }
}

/// Why a Service's annotations or spec do not make a valid request. See
/// [`ServiceError::reason`] for the metric label.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ServiceError {
    /// Two spellings of one annotation, or `loadBalancerIPs` and `spec.loadBalancerIP`, say
    /// different things.
    #[error("{first} and {second} disagree: remove one, or make them agree")]
    ConflictingAnnotations {
        /// The more authoritative of the two.
        first: Setting,
        /// The other.
        second: Setting,
    },
    /// A requested address does not parse.
    #[error("{origin}: {value:?} is not an IP address")]
    MalformedAddress {
        /// The annotation key or `spec.loadBalancerIP`.
        origin: &'static str,
        /// The offending entry, as written.
        value: String,
    },
    /// More than one address of one family is requested.
    #[error(
        "{origin} requests {} {family} addresses ({}): a Service may request at most one address per family",
        .addresses.len(),
        address_list(.addresses)
    )]
    TooManyAddresses {
        /// The annotation key.
        origin: &'static str,
        /// The family requested more than once.
        family: Family,
        /// The addresses of that family, as parsed.
        addresses: Vec<IpAddr>,
    },
    /// A requested address is of a family the Service does not have.
    #[error(
        "requested address {address} is {}, but the Service ({policy}) has only {}: request an address of that family or change spec.ipFamilies",
        Family::of(*.address),
        family_list(.families)
    )]
    WrongFamily {
        /// The address.
        address: IpAddr,
        /// `spec.ipFamilyPolicy`.
        policy: IpFamilyPolicy,
        /// The families the Service may have addresses of: the primary one for SingleStack, all
        /// of `spec.ipFamilies` otherwise.
        families: Vec<Family>,
    },
    /// A field holds what the API server would not have accepted (seen only on objects that did
    /// not come from one, or from a newer Kubernetes).
    #[error("{field} is {}, expected {expected}", value.as_ref().map_or_else(|| "not set".to_owned(), |value| format!("{value:?}")))]
    InvalidField {
        /// The field path, such as `spec.ports[1].protocol`.
        field: String,
        /// The value as written; `None` when the field is missing.
        value: Option<String>,
        /// What the field may hold.
        expected: String,
    },
}

impl ServiceError {
    /// A stable CamelCase label for Event reasons and the failure metric.
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::ConflictingAnnotations { .. } => "ConflictingAnnotations",
            Self::MalformedAddress { .. } => "MalformedAddress",
            Self::TooManyAddresses { .. } => "TooManyAddresses",
            Self::WrongFamily { .. } => "WrongFamily",
            Self::InvalidField { .. } => "InvalidField",
        }
    }
}

fn address_list(addresses: &[IpAddr]) -> String {
    addresses.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
}

/// `IPv4` or `IPv4 and IPv6`.
fn family_list(families: &[Family]) -> String {
    families.iter().map(Family::to_string).collect::<Vec<_>>().join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn messages_name_the_setting_the_value_and_the_fix() {
        let conflict = ServiceError::ConflictingAnnotations {
            first: Setting { origin: "ironlb.io/address-pool", value: "blue".to_owned() },
            second: Setting { origin: "metallb.universe.tf/address-pool", value: "green".to_owned() },
        };
        assert_eq!(
            conflict.to_string(),
            r#"ironlb.io/address-pool="blue" and metallb.universe.tf/address-pool="green" disagree: remove one, or make them agree"#
        );
        let malformed =
            ServiceError::MalformedAddress { origin: "ironlb.io/loadBalancerIPs", value: "10.0.0.300".to_owned() };
        assert_eq!(malformed.to_string(), r#"ironlb.io/loadBalancerIPs: "10.0.0.300" is not an IP address"#);
        let too_many = ServiceError::TooManyAddresses {
            origin: "ironlb.io/loadBalancerIPs",
            family: Family::V4,
            addresses: vec![address("10.0.0.1"), address("10.0.0.2")],
        };
        assert_eq!(
            too_many.to_string(),
            "ironlb.io/loadBalancerIPs requests 2 IPv4 addresses (10.0.0.1, 10.0.0.2): a Service may request at most one address per family"
        );
        let wrong = ServiceError::WrongFamily {
            address: address("fd00::1"),
            policy: IpFamilyPolicy::SingleStack,
            families: vec![Family::V4],
        };
        assert_eq!(
            wrong.to_string(),
            "requested address fd00::1 is IPv6, but the Service (SingleStack) has only IPv4: request an address of that family or change spec.ipFamilies"
        );
        let invalid = ServiceError::InvalidField {
            field: "metadata.namespace".to_owned(),
            value: None,
            expected: "the Service's namespace".to_owned(),
        };
        assert_eq!(invalid.to_string(), "metadata.namespace is not set, expected the Service's namespace");
    }

    #[test]
    fn reasons_are_stable_camel_case_labels() {
        let malformed = ServiceError::MalformedAddress { origin: "spec.loadBalancerIP", value: "x".to_owned() };
        assert_eq!(malformed.reason(), "MalformedAddress");
        let wrong = ServiceError::WrongFamily {
            address: address("fd00::1"),
            policy: IpFamilyPolicy::SingleStack,
            families: vec![],
        };
        assert_eq!(wrong.reason(), "WrongFamily");
    }
}
