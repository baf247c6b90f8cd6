//! The exact addresses a Service asks for: `loadBalancerIPs` in any spelling, or the deprecated
//! `spec.loadBalancerIP`, checked against the Service's families before the allocator sees them,
//! so that a typo is reported as what it is and not as "address in no pool".

use std::collections::BTreeMap;
use std::net::IpAddr;

use ironlb_core::address::Family;

use super::annotation::{LOAD_BALANCER_IPS, Resolved, resolve};
use super::error::{ServiceError, Setting};
use crate::allocator::IpFamilyPolicy;

/// The path of the deprecated field, as messages name it.
pub(super) const SPEC_LOAD_BALANCER_IP: &str = "spec.loadBalancerIP";

/// The addresses requested by `loadBalancerIPs` (any spelling) or `spec.loadBalancerIP`, IPv4
/// first. Both may be set when they agree: the field's address is one of the annotation's, as
/// when a Service keeps its old field and gains an annotation adding the other family.
///
/// # Errors
///
/// [`ServiceError::MalformedAddress`], [`ServiceError::TooManyAddresses`], or
/// [`ServiceError::ConflictingAnnotations`] when two spellings, or an annotation and the field,
/// disagree.
pub(super) fn requested(
    annotations: &BTreeMap<String, String>,
    spec_load_balancer_ip: Option<&str>,
) -> Result<Vec<IpAddr>, ServiceError> {
    let annotated = resolve(annotations, &LOAD_BALANCER_IPS, address_list)?;
    let field = spec_load_balancer_ip
        .filter(|raw| !raw.trim().is_empty())
        .map(|raw| {
            let setting = Setting { origin: SPEC_LOAD_BALANCER_IP, value: raw.to_owned() };
            address(&setting, raw).map(|value| Resolved { setting, value })
        })
        .transpose()?;
    match (annotated, field) {
        (Some(annotated), Some(field)) if !annotated.value.contains(&field.value) => {
            Err(ServiceError::ConflictingAnnotations { first: annotated.setting, second: field.setting })
        }
        (Some(annotated), _) => Ok(annotated.value),
        (None, Some(field)) => Ok(vec![field.value]),
        (None, None) => Ok(Vec::new()),
    }
}

/// Every requested address must be of a family the Service has: its primary family for
/// SingleStack, any of `spec.ipFamilies` for the dual-stack policies.
///
/// # Errors
///
/// [`ServiceError::WrongFamily`] naming the first address that is not.
pub(super) fn check_families(
    addresses: &[IpAddr],
    policy: IpFamilyPolicy,
    families: &[Family],
) -> Result<(), ServiceError> {
    let allowed: Vec<Family> = match policy {
        IpFamilyPolicy::SingleStack => families.iter().take(1).copied().collect(),
        IpFamilyPolicy::PreferDualStack | IpFamilyPolicy::RequireDualStack => families.to_vec(),
    };
    match addresses.iter().find(|&&address| !allowed.contains(&Family::of(address))) {
        Some(&address) => Err(ServiceError::WrongFamily { address, policy, families: allowed }),
        None => Ok(()),
    }
}

/// Parses a `loadBalancerIPs` value: comma-separated, spaces allowed, at most one per family.
/// Sorted (IPv4 first) so that two spellings listing the same addresses in another order agree;
/// the allocator orders an assignment by `spec.ipFamilies`, not by the request.
fn address_list(setting: &Setting) -> Result<Vec<IpAddr>, ServiceError> {
    let mut addresses = setting.value.split(',').map(|entry| address(setting, entry)).collect::<Result<Vec<_>, _>>()?;
    addresses.sort_unstable();
    for family in Family::ALL {
        let of_family: Vec<IpAddr> = addresses.iter().copied().filter(|&a| Family::of(a) == family).collect();
        if of_family.len() > 1 {
            return Err(ServiceError::TooManyAddresses { origin: setting.origin, family, addresses: of_family });
        }
    }
    Ok(addresses)
}

fn address(setting: &Setting, entry: &str) -> Result<IpAddr, ServiceError> {
    let entry = entry.trim();
    entry.parse().map_err(|_| ServiceError::MalformedAddress { origin: setting.origin, value: entry.to_owned() })
}
