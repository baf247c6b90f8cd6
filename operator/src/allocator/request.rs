//! What a Service asks of the allocator, and what it gets.
//!
//! Data flow: the glue reads a LoadBalancer Service (its annotations in the `ironlb.io/`,
//! `metallb.io/` or `metallb.universe.tf/` spelling, `spec.loadBalancerIP`, `spec.ipFamilies`,
//! `spec.ipFamilyPolicy`, `spec.externalTrafficPolicy`, `spec.ports`) and its Namespace's labels
//! into an [`AllocationRequest`]; the allocator answers with an [`Assignment`], which the glue
//! writes to `status.loadBalancer.ingress` and `ironlb.io/allocated-from-pool`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ironlb_core::address::Family;
use thiserror::Error;

use super::Labels;
use super::family::IpFamilyPolicy;

pub use ironlb_core::ServiceKey;

/// The transport protocol of a Service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// `TCP` (the Kubernetes default).
    Tcp,
    /// `UDP`.
    Udp,
    /// `SCTP`.
    Sctp,
}

/// A protocol that is not one of Kubernetes' three, as written.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("port protocol {protocol:?} is not one of TCP, UDP, SCTP")]
pub struct UnknownProtocol {
    /// The protocol as written.
    pub protocol: String,
}

/// Parses the spelling of `spec.ports[].protocol` (`TCP`, `UDP`, `SCTP`).
impl FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(protocol: &str) -> Result<Self, Self::Err> {
        match protocol {
            "TCP" => Ok(Self::Tcp),
            "UDP" => Ok(Self::Udp),
            "SCTP" => Ok(Self::Sctp),
            _ => Err(UnknownProtocol { protocol: protocol.to_owned() }),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        })
    }
}

/// A port a Service listens on at its load-balancer address. Displays as `TCP/80`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePort {
    /// The protocol.
    pub protocol: Protocol,
    /// The port number (`spec.ports[].port`).
    pub port: u16,
}

impl ServicePort {
    /// A TCP port.
    pub const fn tcp(port: u16) -> Self {
        Self { protocol: Protocol::Tcp, port }
    }

    /// A UDP port.
    pub const fn udp(port: u16) -> Self {
        Self { protocol: Protocol::Udp, port }
    }
}

impl fmt::Display for ServicePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

/// Everything the allocator needs to know about one LoadBalancer Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocationRequest {
    /// The Service.
    pub service: ServiceKey,
    /// The Service's labels, for `serviceAllocation.serviceSelectors`.
    pub service_labels: Labels,
    /// The labels of the Service's Namespace, for `serviceAllocation.namespaceSelectors`.
    pub namespace_labels: Labels,
    /// `spec.ipFamilies`, primary first. Empty means: the families of `addresses`, else IPv4.
    pub families: Vec<Family>,
    /// `spec.ipFamilyPolicy`.
    pub family_policy: IpFamilyPolicy,
    /// The pool named by `ironlb.io/address-pool`, if any.
    pub pool: Option<String>,
    /// The addresses asked for by `ironlb.io/loadBalancerIPs` or `spec.loadBalancerIP`: at most
    /// one per family.
    pub addresses: Vec<IpAddr>,
    /// `ironlb.io/allow-shared-ip`: Services with the same key may share an address.
    pub sharing_key: Option<String>,
    /// `spec.ports`, which must not collide with the ports of Services sharing the address.
    pub ports: Vec<ServicePort>,
    /// `spec.selector` when `externalTrafficPolicy: Local`; `None` for `Cluster`. Services may
    /// share an address only when both are `Cluster`, or both are `Local` and select the same
    /// pods, because a `Local` address must be announced from a node running those pods.
    pub local_pod_selector: Option<Labels>,
}

impl AllocationRequest {
    /// A request for `service` with every option at its default: SingleStack, families taken
    /// from the requested addresses (else IPv4), any auto-assign pool, no sharing.
    pub fn new(service: ServiceKey) -> Self {
        Self { service, ..Self::default() }
    }
}

/// The addresses a Service holds, all from one pool.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Assignment {
    /// The pool the addresses come from (`ironlb.io/allocated-from-pool`).
    pub pool: String,
    /// One address per family, in the Service's family order (primary first).
    pub addresses: Vec<IpAddr>,
}

impl fmt::Display for Assignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addresses: Vec<String> = self.addresses.iter().map(IpAddr::to_string).collect();
        write!(f, "{} from pool {}", addresses.join(", "), self.pool)
    }
}
