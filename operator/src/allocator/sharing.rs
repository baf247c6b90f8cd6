//! Who may share an address with whom.
//!
//! Data flow: every Service the allocator records keeps a [`SharingProfile`] taken from its
//! request. Before a Service joins an address that other Services hold, the allocator checks
//! the newcomer against every holder with [`SharingProfile::may_join`]; since every pair of
//! holders passed that check, an address is never held by two Services that may not share it.
//! The rules follow MetalLB's `allow-shared-ip`, so Services moving from MetalLB behave the same.

use std::collections::BTreeSet;
use std::fmt;

use super::Labels;
use super::request::{AllocationRequest, ServicePort};

/// The part of a request that decides sharing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SharingProfile {
    pub(crate) key: Option<String>,
    ports: BTreeSet<ServicePort>,
    local_pods: Option<Labels>,
}

impl SharingProfile {
    pub(crate) fn of(request: &AllocationRequest) -> Self {
        Self {
            key: request.sharing_key.clone(),
            ports: request.ports.iter().copied().collect(),
            local_pods: request.local_pod_selector.clone(),
        }
    }

    /// Whether a Service with this profile may hold an address that `holder` holds: both carry
    /// the same sharing key, no port is used by both with the same protocol, and both use
    /// `externalTrafficPolicy: Cluster` or both use `Local` with the same pod selector. The
    /// relation is symmetric.
    pub(crate) fn may_join(&self, holder: &Self) -> Result<(), ShareRefusal> {
        let Some(holder_key) = &holder.key else {
            return Err(ShareRefusal::HolderDoesNotShare);
        };
        let Some(key) = &self.key else {
            return Err(ShareRefusal::RequesterDoesNotShare);
        };
        if key != holder_key {
            return Err(ShareRefusal::DifferentKey { holder_key: holder_key.clone() });
        }
        if self.local_pods != holder.local_pods {
            return Err(ShareRefusal::DifferentPods);
        }
        match self.ports.intersection(&holder.ports).next() {
            Some(&port) => Err(ShareRefusal::PortCollision { port }),
            None => Ok(()),
        }
    }
}

/// Why a Service may not share an address with the Service holding it. Displays as the end of
/// a sentence about the holder (`... held by default/web, which does not allow sharing`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShareRefusal {
    /// The holder has no sharing key.
    HolderDoesNotShare,
    /// The requesting Service has no sharing key.
    RequesterDoesNotShare,
    /// The two Services carry different sharing keys.
    DifferentKey {
        /// The holder's key.
        holder_key: String,
    },
    /// Both Services use this port with this protocol.
    PortCollision {
        /// The port both use.
        port: ServicePort,
    },
    /// One uses `externalTrafficPolicy: Local` and the other does not, or both do but select
    /// different pods.
    DifferentPods,
}

impl fmt::Display for ShareRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HolderDoesNotShare => f.write_str("which does not allow sharing (no ironlb.io/allow-shared-ip)"),
            Self::RequesterDoesNotShare => {
                f.write_str("and this Service does not allow sharing (no ironlb.io/allow-shared-ip)")
            }
            Self::DifferentKey { holder_key } => {
                write!(f, "which allows sharing only under ironlb.io/allow-shared-ip {holder_key:?}")
            }
            Self::PortCollision { port } => write!(f, "which also uses port {port}"),
            Self::DifferentPods => {
                f.write_str("which selects different pods (externalTrafficPolicy: Local needs the same pods to share)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::{ServiceKey, ServicePort};

    fn profile(key: Option<&str>, ports: &[ServicePort], local_pods: Option<&[(&str, &str)]>) -> SharingProfile {
        let mut request = AllocationRequest::new(ServiceKey::new("default", "svc"));
        request.sharing_key = key.map(str::to_owned);
        request.ports = ports.to_vec();
        request.local_pod_selector =
            local_pods.map(|pairs| pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect());
        SharingProfile::of(&request)
    }

    #[test]
    fn services_without_a_key_never_share() {
        let keyed = profile(Some("k"), &[ServicePort::tcp(80)], None);
        let plain = profile(None, &[ServicePort::tcp(443)], None);
        assert_eq!(keyed.may_join(&plain), Err(ShareRefusal::HolderDoesNotShare));
        assert_eq!(plain.may_join(&keyed), Err(ShareRefusal::RequesterDoesNotShare));
    }

    #[test]
    fn different_keys_do_not_share() {
        let a = profile(Some("a"), &[ServicePort::tcp(80)], None);
        let b = profile(Some("b"), &[ServicePort::tcp(443)], None);
        assert_eq!(b.may_join(&a), Err(ShareRefusal::DifferentKey { holder_key: "a".to_owned() }));
    }

    #[test]
    fn same_port_and_protocol_collide() {
        let a = profile(Some("k"), &[ServicePort::tcp(80), ServicePort::tcp(443)], None);
        let b = profile(Some("k"), &[ServicePort::tcp(443)], None);
        assert_eq!(b.may_join(&a), Err(ShareRefusal::PortCollision { port: ServicePort::tcp(443) }));
    }

    #[test]
    fn same_port_with_another_protocol_does_not_collide() {
        let dns_tcp = profile(Some("dns"), &[ServicePort::tcp(53)], None);
        let dns_udp = profile(Some("dns"), &[ServicePort::udp(53)], None);
        assert_eq!(dns_udp.may_join(&dns_tcp), Ok(()));
        assert_eq!(dns_tcp.may_join(&dns_udp), Ok(()));
    }

    #[test]
    fn local_services_share_only_when_they_select_the_same_pods() {
        let web = Some(&[("app", "web")][..]);
        let a = profile(Some("k"), &[ServicePort::tcp(80)], web);
        let same = profile(Some("k"), &[ServicePort::tcp(443)], web);
        let other = profile(Some("k"), &[ServicePort::tcp(443)], Some(&[("app", "db")][..]));
        let cluster = profile(Some("k"), &[ServicePort::tcp(443)], None);
        assert_eq!(same.may_join(&a), Ok(()));
        assert_eq!(other.may_join(&a), Err(ShareRefusal::DifferentPods));
        assert_eq!(cluster.may_join(&a), Err(ShareRefusal::DifferentPods));
        assert_eq!(a.may_join(&cluster), Err(ShareRefusal::DifferentPods));
    }
}
