//! Announcements (addresses one node announces together), who may announce them, and who does.

use std::collections::BTreeMap;
use std::net::IpAddr;

use thiserror::Error;

use super::advertisement::{Advertisements, AllowedInterfaces};
use super::facts::{EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS, InterfaceFacts, NodeFacts, ServiceFacts};
use super::score::score;
use crate::address::{Family, Prefix, address_number};

/// For each address a node announces, the interfaces it answers on (sorted by name, never
/// empty).
pub type Carriers<'n> = BTreeMap<IpAddr, Vec<&'n str>>;

/// Why a node does not announce an [`Announcement`]. The variants, checked in the order of the
/// module documentation, are the `reason` label of the speaker's metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Error)]
pub enum Ineligible {
    /// The node's speaker holds no live Lease (stopped, crashed, or cut off from the API server).
    #[error("the node's speaker has no live Lease")]
    NoLease,
    /// The node carries the `node.kubernetes.io/exclude-from-external-load-balancers` label.
    #[error("the node is labelled node.kubernetes.io/exclude-from-external-load-balancers")]
    Excluded,
    /// The node's `NetworkUnavailable` condition is true.
    #[error("the node's network is unavailable")]
    NetworkUnavailable,
    /// No L2Advertisement selects both the pool and the node.
    #[error("no L2Advertisement selects both the pool and the node")]
    NotSelected,
    /// The Services have no ready or serving endpoint anywhere: nobody announces them.
    #[error("the Services have no ready or serving endpoint")]
    NoEndpoints,
    /// Under `externalTrafficPolicy: Local`, the node has no ready or serving endpoint.
    #[error("externalTrafficPolicy is Local and the node has no ready or serving endpoint")]
    NoLocalEndpoint,
    /// Some address has no up, allowed interface on its subnet (or on any subnet, when the node
    /// has none for it).
    #[error("no up, allowed interface of the node can carry every address")]
    NoInterface,
}

impl Ineligible {
    /// The reason as a metric label value, CamelCase like a Kubernetes reason: `NoLease`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoLease => "NoLease",
            Self::Excluded => "Excluded",
            Self::NetworkUnavailable => "NetworkUnavailable",
            Self::NotSelected => "NotSelected",
            Self::NoEndpoints => "NoEndpoints",
            Self::NoLocalEndpoint => "NoLocalEndpoint",
            Self::NoInterface => "NoInterface",
        }
    }
}

/// The node that announces an [`Announcement`], and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Winner<'n> {
    /// The winning node's name.
    pub node: &'n str,
    /// Its [`score`](super::score) for the announcement's key.
    pub score: u64,
    /// The addresses it announces and the interfaces it answers on for each.
    pub carriers: Carriers<'n>,
}

impl<'n> Winner<'n> {
    /// The interface each address is first answered on, and recorded with: the first of its
    /// carriers (interfaces in name order).
    pub fn first_interfaces(&self) -> BTreeMap<IpAddr, &'n str> {
        self.carriers.iter().filter_map(|(&address, interfaces)| Some((address, *interfaces.first()?))).collect()
    }
}

/// The interface recorded for a Service (in the pool status and in its `Announcing` Event): the
/// first interface of the first of its `addresses` the winner carries, from the winner's
/// [`Winner::first_interfaces`]. `None` when the winner carries none of them: it announces a
/// Service this one shares an address with, and has no endpoint of this one (`Local` policy).
///
/// One rule for the operator and the speakers, so the status and the Events name one interface.
pub fn service_interface<'m, S: AsRef<str>>(
    addresses: &[IpAddr],
    first_interfaces: &'m BTreeMap<IpAddr, S>,
) -> Option<&'m str> {
    addresses.iter().find_map(|address| first_interfaces.get(address)).map(AsRef::as_ref)
}

/// Addresses announced together by one node, with the Services holding them: the Services
/// linked, directly or through others, by a shared address. Build them with [`announcements`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement<'s> {
    /// Every address of the Services, in key order (IPv4 first, numerically); never empty.
    addresses: Vec<IpAddr>,
    services: Vec<&'s ServiceFacts>,
}

/// Groups Services into announcements: two Services that share an address are in one
/// announcement, and so (transitively) is every Service sharing an address with either. This
/// is what puts sharing Services, and both families of a dual-stack Service, on one node even
/// when a dual-stack Service shares each of its addresses with a different single-stack one.
///
/// Pass every Service of the cluster at once: grouping a subset could split a group and give
/// its parts different keys. For the same reason, when the Service linking two groups goes
/// away, the parts get keys of their own and may move. Services without addresses are left
/// out. The result is sorted by [`Announcement::key`].
pub fn announcements(services: &[ServiceFacts]) -> Vec<Announcement<'_>> {
    let mut groups = Groups::new(services.len());
    let mut first_holder: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for (index, service) in services.iter().enumerate() {
        for &address in &service.addresses {
            let holder = *first_holder.entry(address).or_insert(index);
            groups.join(holder, index);
        }
    }
    let mut members: BTreeMap<usize, Vec<&ServiceFacts>> = BTreeMap::new();
    for (index, service) in services.iter().enumerate().filter(|(_, service)| !service.addresses.is_empty()) {
        members.entry(groups.root(index)).or_default().push(service);
    }
    let mut result: Vec<Announcement<'_>> = members
        .into_values()
        .map(|services| {
            let mut addresses: Vec<IpAddr> =
                services.iter().flat_map(|service| service.addresses.iter().copied()).collect();
            addresses.sort_by_key(|&address| key_order(address));
            addresses.dedup();
            Announcement { addresses, services }
        })
        .collect();
    result.sort_by_key(|announcement| key_order(announcement.key()));
    result
}

/// The order that picks an announcement's key. Spelled out rather than taken from `Ord for
/// IpAddr`, because it is part of the promise: every IPv4 address before every IPv6 address,
/// numerically within a family.
fn key_order(address: IpAddr) -> (Family, u128) {
    (Family::of(address), address_number(address))
}

impl<'s> Announcement<'s> {
    /// The address whose [`score`] picks the winner: the lowest of [`Self::addresses`] (IPv4
    /// before IPv6, numerically within a family).
    pub fn key(&self) -> IpAddr {
        // `announcements` never builds an announcement without addresses.
        self.addresses.first().copied().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    /// Every address of the announcement's Services, lowest first.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    /// The Services whose addresses these are.
    pub fn services(&self) -> &[&'s ServiceFacts] {
        &self.services
    }

    /// Whether `node` may announce this, and if so which addresses on which interfaces: the
    /// addresses of the Services it passes checks 4–6 for (see the module documentation), each
    /// with at least one carrier. Otherwise the first check it fails.
    pub fn eligibility<'n>(
        &self,
        node: &'n NodeFacts,
        advertisements: &Advertisements,
    ) -> Result<Carriers<'n>, Ineligible> {
        if !node.lease_live {
            return Err(Ineligible::NoLease);
        }
        if node.labels.contains_key(EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS) {
            return Err(Ineligible::Excluded);
        }
        if node.network_unavailable {
            return Err(Ineligible::NetworkUnavailable);
        }
        let mut candidates: Vec<(&ServiceFacts, AllowedInterfaces<'_>)> = self
            .services
            .iter()
            .filter_map(|&service| Some((service, advertisements.allowed_interfaces(&service.pool, &node.labels)?)))
            .collect();
        if candidates.is_empty() {
            return Err(Ineligible::NotSelected);
        }
        narrow(&mut candidates, |service| service.has_serving_endpoint, Ineligible::NoEndpoints)?;
        narrow(
            &mut candidates,
            |service| !service.local_traffic_policy || service.nodes_with_endpoints.contains(&node.name),
            Ineligible::NoLocalEndpoint,
        )?;

        let mut carriers = Carriers::new();
        for (service, allowed) in &candidates {
            for &address in &service.addresses {
                let found = carriers_of(node, address, allowed);
                if found.is_empty() {
                    return Err(Ineligible::NoInterface);
                }
                let entry = carriers.entry(address).or_default();
                entry.extend(found);
                entry.sort_unstable();
                entry.dedup();
            }
        }
        Ok(carriers)
    }

    /// The node that announces this: among the eligible `nodes`, the one with the highest
    /// [`score`] for [`Self::key`], equal scores going to the smallest name. `None` when no node
    /// is eligible. Node names must be unique.
    pub fn winner<'n>(&self, nodes: &'n [NodeFacts], advertisements: &Advertisements) -> Option<Winner<'n>> {
        let key = self.key();
        let mut ranked: Vec<(u64, &NodeFacts)> = nodes.iter().map(|node| (score(&node.name, key), node)).collect();
        ranked.sort_unstable_by(|(score_a, a), (score_b, b)| score_b.cmp(score_a).then_with(|| a.name.cmp(&b.name)));
        // Most nodes are usually eligible, so checking in rank order stops after one or two.
        ranked.into_iter().find_map(|(score, node)| {
            let carriers = self.eligibility(node, advertisements).ok()?;
            Some(Winner { node: &node.name, score, carriers })
        })
    }
}

/// Keeps the candidate Services that pass `keep`; fails with `otherwise` when none is left.
fn narrow(
    candidates: &mut Vec<(&ServiceFacts, AllowedInterfaces<'_>)>,
    keep: impl Fn(&ServiceFacts) -> bool,
    otherwise: Ineligible,
) -> Result<(), Ineligible> {
    candidates.retain(|&(service, _)| keep(service));
    if candidates.is_empty() { Err(otherwise) } else { Ok(()) }
}

/// The up, allowed interfaces of `node` that can carry `address` (see "Carriers" in the module
/// documentation), sorted by name.
fn carriers_of<'n>(node: &'n NodeFacts, address: IpAddr, allowed: &AllowedInterfaces<'_>) -> Vec<&'n str> {
    let on_subnet = |interface: &InterfaceFacts| {
        interface.addresses.iter().any(|&(own, prefix_len)| {
            // The address itself (kube-ipvs0 holds every LoadBalancer address as a /32) says
            // nothing about where its network is.
            own != address && Prefix::new(own, prefix_len).is_some_and(|prefix| prefix.range().contains(address))
        })
    };
    let subnet_is_known = node.interfaces.iter().any(on_subnet);
    let mut found: Vec<&'n str> = node
        .interfaces
        .iter()
        .filter(|interface| interface.up && allowed.allows(interface) && (!subnet_is_known || on_subnet(interface)))
        .map(|interface| interface.name.as_str())
        .collect();
    found.sort_unstable();
    found
}

/// Disjoint sets of Service indices (union-find), to group Services linked by shared addresses.
struct Groups {
    parent: Vec<usize>,
}

impl Groups {
    fn new(len: usize) -> Self {
        Self { parent: (0..len).collect() }
    }

    fn root(&mut self, mut index: usize) -> usize {
        while self.parent[index] != index {
            // Path halving keeps later lookups short.
            self.parent[index] = self.parent[self.parent[index]];
            index = self.parent[index];
        }
        index
    }

    fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.root(a), self.root(b));
        self.parent[a.max(b)] = a.min(b);
    }
}
