//! The plain facts the announcer decides from, gathered by the speaker from its watches.
//!
//! They carry no Kubernetes types on purpose: the speaker (and the operator's status writer)
//! reduce Leases, Nodes, EndpointSlices and the interfaces' state to these, and every node of the
//! cluster must reduce them the same way, so each field says exactly what it means.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::v1alpha1::Allocation;

pub use crate::selector::Labels;

/// The node label that takes a node out of every load balancer, as in Kubernetes
/// (`v1.LabelNodeExcludeBalancers`). Its presence counts, not its value.
pub const EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// What the announcer needs to know about one node running a speaker.
///
/// Every speaker decides over the facts of *every* node, not only its own, and all must use the
/// same facts to agree: a node's interfaces therefore have to reach its peers (its speaker
/// publishes them), like its Lease and its Node object do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// The Node's name (`metadata.name`). Unique among the nodes given to one decision.
    pub name: String,
    /// The Node's labels, matched by `L2Advertisement.spec.nodeSelectors`.
    pub labels: Labels,
    /// Whether the Node's `NetworkUnavailable` condition is `True`.
    pub network_unavailable: bool,
    /// Whether the node's speaker Lease is live: it exists and was renewed within its duration.
    pub lease_live: bool,
    /// Every network interface of the node, including ones ironlb never announces on: an
    /// interface that is down still tells where an address's subnet lives.
    pub interfaces: Vec<InterfaceFacts>,
}

/// One network interface of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceFacts {
    /// The kernel's name for it, as `L2Advertisement.spec.interfaces` lists it. Example: `eth0`.
    pub name: String,
    /// Operationally up: administratively up and with carrier (`IFF_UP` and `IFF_LOWER_UP`). A
    /// link that loses carrier is down here, so its node stops being eligible for the addresses
    /// on its subnet.
    pub up: bool,
    /// Whether ironlb may announce on it when an advertisement names no interface: the speaker
    /// sets this for broadcast-capable interfaces that are not loopback, not a bridge or bond
    /// member, not `NOARP` and not container plumbing. An interface named in
    /// `L2Advertisement.spec.interfaces` is allowed whatever this says.
    pub announce_by_default: bool,
    /// The interface's addresses with their prefix lengths, as `ip address` shows them
    /// (`192.168.2.5/24` is `(192.168.2.5, 24)`). A prefix length longer than the family's
    /// width is ignored.
    pub addresses: Vec<(IpAddr, u8)>,
}

/// The pool a Service's addresses were allocated from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolFacts {
    /// The IPAddressPool's name, matched by `L2Advertisement.spec.ipAddressPools`.
    pub name: String,
    /// The IPAddressPool's labels, matched by `L2Advertisement.spec.ipAddressPoolSelectors`.
    pub labels: Labels,
}

/// What the announcer needs to know about one Service holding addresses: one entry of
/// `IPAddressPool.status.allocations`, with its endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceFacts {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The addresses allocated to it, in any order (`allocations[].ips`).
    pub addresses: Vec<IpAddr>,
    /// The pool they were allocated from.
    pub pool: PoolFacts,
    /// Whether `spec.externalTrafficPolicy` is `Local`: only nodes with an endpoint may announce.
    pub local_traffic_policy: bool,
    /// The nodes (`endpoints[].nodeName` of the Service's EndpointSlices) with at least one
    /// endpoint whose `conditions.ready` or `conditions.serving` is true (an unset `ready`
    /// counts as true, as the EndpointSlice API says). Read only under `Local`.
    pub nodes_with_endpoints: BTreeSet<String>,
    /// Whether the Service has at least one ready or serving endpoint anywhere. Without one, no
    /// node announces its addresses.
    pub has_serving_endpoint: bool,
}

impl ServiceFacts {
    /// The facts of one allocation of `pool`, as the pool status records it. Endpoint nodes are
    /// left empty: under `Local` the reader fills [`Self::nodes_with_endpoints`] (and
    /// [`Self::has_serving_endpoint`]) from the Service's EndpointSlices. An address that does
    /// not parse is skipped.
    pub fn from_allocation(pool: &PoolFacts, allocation: &Allocation) -> Self {
        Self {
            namespace: allocation.namespace.clone(),
            name: allocation.name.clone(),
            addresses: allocation.ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
            pool: pool.clone(),
            local_traffic_policy: allocation.is_local(),
            nodes_with_endpoints: BTreeSet::new(),
            has_serving_endpoint: allocation.serving,
        }
    }
}
