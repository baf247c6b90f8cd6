//! Who announces: the one deterministic function that decides which node answers ARP/NDP for
//! an allocated address.
//!
//! # Where this sits in the data flow
//!
//! ```text
//! speaker watches           pools' status.allocations, L2Advertisements, node Leases,
//!   (and the operator's     Nodes, EndpointSlices of `externalTrafficPolicy: Local` Services,
//!    status writer)         the nodes' interfaces
//!        │
//!        ▼  plain facts: ServiceFacts, NodeFacts, Advertisements
//! announcements(services)   Services that share an address are grouped into one Announcement
//!        │
//!        ▼
//! Announcement::winner      the eligible node with the highest rendezvous score
//!        │
//!        ▼
//! the winning speaker answers ARP/NDP on the returned interfaces; every other speaker stays quiet
//! ```
//!
//! Everything here is pure: no I/O, no clock, no Kubernetes client. Every speaker evaluates the
//! same function over the same facts, so they agree on one announcer per address without
//! talking to each other. [`Announcement::eligibility`] also says *why* a node does not announce
//! ([`Ineligible`]), for the speaker's logs and metrics.
//!
//! # Eligibility
//!
//! A node may announce an [`Announcement`] when, checked in this order (the first failing check
//! is the reason reported):
//!
//! 1. its speaker holds a live Lease ([`Ineligible::NoLease`]);
//! 2. it does not carry the label [`EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS`], whatever its value,
//!    as Kubernetes' own service controller reads it ([`Ineligible::Excluded`]);
//! 3. its `NetworkUnavailable` condition is not `True` ([`Ineligible::NetworkUnavailable`]);
//! 4. an L2Advertisement selects both the pool of one of the Services and the node
//!    ([`Ineligible::NotSelected`]; see [`Advertisements`] for the selector rules);
//! 5. one of those Services has a ready or serving endpoint somewhere
//!    ([`Ineligible::NoEndpoints`]): no node announces a Service without endpoints;
//! 6. under `externalTrafficPolicy: Local`, one of those Services has a ready or serving endpoint
//!    on this node ([`Ineligible::NoLocalEndpoint`]);
//! 7. every address of the Services left after 4–6 has a *carrier* on the node
//!    ([`Ineligible::NoInterface`]).
//!
//! ## Carriers (which interfaces can carry an address)
//!
//! For an address `A` on a node:
//!
//! - An interface is *on A's subnet* when one of its addresses, other than `A` itself, has a
//!   prefix that contains `A` (`192.168.2.5/24` is on the subnet of `192.168.2.10`). `A` itself
//!   is ignored because kube-proxy in IPVS mode puts every LoadBalancer address on
//!   `kube-ipvs0` as a /32: that says nothing about where `A`'s network is.
//! - If **any** interface of the node is on `A`'s subnet — up or down, allowed or not — only
//!   interfaces on `A`'s subnet can carry `A`. Clients ask for `A` only on its own segment, so a
//!   node whose interface on that segment is down (or not allowed) must not fall back to
//!   answering elsewhere: it is not eligible, and a peer takes over (link-loss failover).
//! - Otherwise (the node has no interface on `A`'s subnet) every interface can carry `A`.
//! - Either way a carrier must be operationally up ([`InterfaceFacts::up`]) and allowed: named
//!   in the `interfaces` of an L2Advertisement that selects the pool and the node, or — when one
//!   such advertisement names no interface — fit for announcing by default
//!   ([`InterfaceFacts::announce_by_default`]).
//!
//! # The winner
//!
//! Among the eligible nodes, the winner is the one with the highest [`score`] of (node name,
//! [`Announcement::key`]) — rendezvous (highest-random-weight) hashing. A node's score for an
//! address does not depend on the other nodes, so adding or removing a node moves only the
//! announcements that node wins or loses. Equal scores go to the lexicographically smallest
//! node name.
//!
//! **The key** is the lowest address of the announcement, in this order: every IPv4 address
//! before every IPv6 address, numerically within a family. An announcement groups every Service
//! that shares an address with another Service of the group (transitively), so Services sharing
//! an address and both families of a dual-stack Service have one key and land on one node,
//! whatever order their `ipFamilies` list the families in.
//!
//! **The score** is SipHash-2-4 with the fixed 16-byte key `b"ironlb-announcer"` over the bytes
//! `node name (UTF-8) ‖ 0x00 ‖ key address in canonical text` — dotted decimal for IPv4,
//! RFC 5952 for IPv6 (lowercase, leftmost longest run of two or more zero groups shortened to
//! `::`), the form `IPAddressPool.status.allocations[].ips` carries. The `0x00` cannot occur in
//! a node name, so no two inputs share a message. See [`score`] for test vectors.
//!
//! # The promise: this function never changes silently
//!
//! Every speaker of a cluster must compute the same winner, including during a rolling upgrade
//! when old and new speakers run side by side, and every change to the rules, the key, the hash
//! or its encoding moves traffic to other nodes when the new version rolls out. The test
//! `winner_is_pinned_by_test_vectors` fixes scores and winners; if it fails, the change is a
//! change of behaviour that needs a release note and a plan for mixed-version clusters, not a
//! new set of expected values.

mod advertisement;
mod announcement;
pub mod endpoints;
mod facts;
pub mod inputs;
pub mod peers;
mod score;

#[cfg(test)]
mod tests;

pub use advertisement::{Advertisements, selector_matches};
pub use announcement::{Announcement, Carriers, Ineligible, Winner, announcements, service_interface};
pub use endpoints::{EndpointIndex, EndpointSummary};
pub use facts::{EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS, InterfaceFacts, Labels, NodeFacts, PoolFacts, ServiceFacts};
pub use inputs::{AnnouncerInputs, EndpointScope, Synced, Touched};
pub use peers::{Peer, Peers, PublishedConflict, PublishedInterface, PublishedNode};
pub use score::{HASH_KEY, score};
