//! Address families: which ones a Service asks for, and per-family storage.
//!
//! Data flow: the glue copies `spec.ipFamilies` (primary first) and `spec.ipFamilyPolicy` into
//! the [`AllocationRequest`](super::AllocationRequest); [`FamilyWant::of`] turns them, with the
//! requested addresses, into the one or two families the allocator must find, and says which
//! of them are mandatory. The rules are stated in the [module documentation](super).

use std::fmt;
use std::net::IpAddr;

use ironlb_core::address::Family;

use super::error::AllocationError;
use super::request::AllocationRequest;

/// `spec.ipFamilyPolicy` of a Service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IpFamilyPolicy {
    /// One address, of the primary family (the Kubernetes default).
    #[default]
    SingleStack,
    /// Both families from one pool when a pool offers both, otherwise one.
    PreferDualStack,
    /// Both families from one pool, or nothing.
    RequireDualStack,
}

impl fmt::Display for IpFamilyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SingleStack => "SingleStack",
            Self::PreferDualStack => "PreferDualStack",
            Self::RequireDualStack => "RequireDualStack",
        })
    }
}

/// The other address family.
pub(crate) const fn other(family: Family) -> Family {
    match family {
        Family::V4 => Family::V6,
        Family::V6 => Family::V4,
    }
}

/// One value per address family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PerFamily<T> {
    v4: T,
    v6: T,
}

impl<T> PerFamily<T> {
    /// Builds each family's value with `make`.
    pub(crate) fn from_fn(mut make: impl FnMut(Family) -> T) -> Self {
        Self { v4: make(Family::V4), v6: make(Family::V6) }
    }

    /// Converts each family's value with `convert`.
    pub(crate) fn map<U>(self, mut convert: impl FnMut(Family, T) -> U) -> PerFamily<U> {
        PerFamily { v4: convert(Family::V4, self.v4), v6: convert(Family::V6, self.v6) }
    }

    pub(crate) fn get(&self, family: Family) -> &T {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    pub(crate) fn get_mut(&mut self, family: Family) -> &mut T {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }
}

/// At most one address per family, or [`AllocationError::TooManyAddresses`].
pub(crate) fn one_per_family(addresses: &[IpAddr]) -> Result<PerFamily<Option<IpAddr>>, AllocationError> {
    let mut by_family = PerFamily::<Option<IpAddr>>::default();
    for &address in addresses {
        let family = Family::of(address);
        if by_family.get(family).is_some() {
            let addresses = addresses.iter().copied().filter(|a| Family::of(*a) == family).collect();
            return Err(AllocationError::TooManyAddresses { family, addresses });
        }
        *by_family.get_mut(family) = Some(address);
    }
    Ok(by_family)
}

/// The families one request needs, resolved from `ipFamilies`, `ipFamilyPolicy` and the
/// requested addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FamilyWant {
    pub(crate) policy: IpFamilyPolicy,
    /// The first family of `ipFamilies`; first in the assignment.
    pub(crate) primary: Family,
    /// The second family, when the policy asks for two; mandatory only for RequireDualStack.
    pub(crate) secondary: Option<Family>,
    /// The addresses the Service asked for, by family.
    pub(crate) requested: PerFamily<Option<IpAddr>>,
}

impl FamilyWant {
    /// Resolves the families of `request`:
    /// - `ipFamilies` empty (the glue could not tell): the families of the requested
    ///   addresses, in the order given, else IPv4;
    /// - SingleStack: only the first family;
    /// - PreferDualStack: the first, and the second when `ipFamilies` lists two (a
    ///   PreferDualStack Service in a single-stack cluster lists one, and kube-proxy would not
    ///   route the other family);
    /// - RequireDualStack: the first and the other family.
    ///
    /// # Errors
    ///
    /// [`AllocationError::TooManyAddresses`] for two requested addresses of one family,
    /// [`AllocationError::AddressFamilyMismatch`] for a requested address of a family the
    /// Service does not have.
    pub(crate) fn of(request: &AllocationRequest) -> Result<Self, AllocationError> {
        let requested = one_per_family(&request.addresses)?;
        let listed = if request.families.is_empty() {
            request.addresses.iter().map(|&address| Family::of(address)).collect()
        } else {
            request.families.clone()
        };
        let mut families = listed.into_iter();
        let primary = families.next().unwrap_or(Family::V4);
        let listed_second = families.find(|&family| family != primary);
        let secondary = match request.family_policy {
            IpFamilyPolicy::SingleStack => None,
            IpFamilyPolicy::PreferDualStack => listed_second,
            IpFamilyPolicy::RequireDualStack => Some(listed_second.unwrap_or(other(primary))),
        };
        let want = Self { policy: request.family_policy, primary, secondary, requested };
        if let Some(&address) = request.addresses.iter().find(|&&address| !want.has(Family::of(address))) {
            return Err(AllocationError::AddressFamilyMismatch { address, families: want.families().collect() });
        }
        Ok(want)
    }

    /// The wanted families, primary first.
    pub(crate) fn families(&self) -> impl Iterator<Item = Family> + '_ {
        std::iter::once(self.primary).chain(self.secondary)
    }

    fn has(&self, family: Family) -> bool {
        self.families().any(|wanted| wanted == family)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::ServiceKey;

    fn request(policy: IpFamilyPolicy, families: &[Family], addresses: &[&str]) -> AllocationRequest {
        let mut request = AllocationRequest::new(ServiceKey::new("default", "web"));
        request.family_policy = policy;
        request.families = families.to_vec();
        request.addresses = addresses.iter().map(|a| a.parse().expect("test address")).collect();
        request
    }

    fn want(request: &AllocationRequest) -> FamilyWant {
        FamilyWant::of(request).expect("valid request")
    }

    #[test]
    fn single_stack_asks_only_for_the_primary_family() {
        let single = want(&request(IpFamilyPolicy::SingleStack, &[Family::V6, Family::V4], &[]));
        assert_eq!(single.families().collect::<Vec<_>>(), vec![Family::V6]);
    }

    #[test]
    fn prefer_dual_stack_asks_for_the_second_family_only_when_listed() {
        let single_stack_cluster = want(&request(IpFamilyPolicy::PreferDualStack, &[Family::V4], &[]));
        assert_eq!(single_stack_cluster.secondary, None);
        let dual_stack_cluster = want(&request(IpFamilyPolicy::PreferDualStack, &[Family::V4, Family::V6], &[]));
        assert_eq!(dual_stack_cluster.secondary, Some(Family::V6));
    }

    #[test]
    fn require_dual_stack_always_asks_for_both_families() {
        let require = want(&request(IpFamilyPolicy::RequireDualStack, &[Family::V6], &[]));
        assert_eq!(require.families().collect::<Vec<_>>(), vec![Family::V6, Family::V4]);
    }

    #[test]
    fn missing_families_follow_the_requested_address_else_ipv4() {
        assert_eq!(want(&request(IpFamilyPolicy::SingleStack, &[], &["fd00::1"])).primary, Family::V6);
        assert_eq!(want(&request(IpFamilyPolicy::SingleStack, &[], &[])).primary, Family::V4);
    }

    #[test]
    fn two_requested_addresses_of_one_family_are_too_many() {
        let error = FamilyWant::of(&request(IpFamilyPolicy::SingleStack, &[Family::V4], &["10.0.0.1", "10.0.0.2"]));
        assert!(matches!(error, Err(AllocationError::TooManyAddresses { family: Family::V4, .. })));
    }

    #[test]
    fn requested_address_of_a_family_the_service_lacks_is_refused() {
        let error = FamilyWant::of(&request(IpFamilyPolicy::SingleStack, &[Family::V4], &["fd00::1"]));
        assert!(matches!(error, Err(AllocationError::AddressFamilyMismatch { .. })));
    }
}
