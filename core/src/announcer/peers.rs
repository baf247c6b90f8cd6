//! The speakers' node Leases as every reader sees them: who is live, and the node facts each
//! speaker publishes about its own node.
//!
//! Every speaker renews the Lease `ironlb-speaker-<node>` in its namespace, and writes on it, in
//! the annotation [`NODE_FACTS_ANNOTATION`], what the announcer needs to know about its node
//! ([`PublishedNode`]: the Node's labels, its `NetworkUnavailable` condition, and the node's
//! interfaces with their state and addresses). So a reader needs only the Leases — not every
//! Node, and not a way into every node's network namespace — to evaluate
//! [`Announcement::winner`](super::Announcement::winner) for the whole cluster, and every reader
//! (each speaker, and the operator recording the announcer in the pool status) decides over the
//! very same facts.
//!
//! [`Peers`] keeps what the Lease watch delivered and judges liveness. No clock is compared
//! across machines: a Lease is live for `leaseDurationSeconds` after the reader *saw* it change,
//! on the reader's own monotonic clock, as client-go's leader election times a Lease.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use serde::{Deserialize, Serialize};

use super::facts::{InterfaceFacts, Labels, NodeFacts};

/// Prefix of every speaker Lease name; the node name follows.
pub const LEASE_NAME_PREFIX: &str = "ironlb-speaker-";
/// Label naming the node a Lease belongs to (omitted when the node name is too long for a label
/// value; [`lease_node`] reads the node from the Lease name, which always works).
pub const NODE_LABEL: &str = "ironlb.io/node";
/// Label selector that matches exactly the speakers' node Leases.
pub const LEASE_SELECTOR: &str = "app.kubernetes.io/name=ironlb,app.kubernetes.io/component=speaker";
/// Annotation of a speaker Lease that carries its [`PublishedNode`] as JSON.
pub const NODE_FACTS_ANNOTATION: &str = "ironlb.io/node-facts";

/// The name of the Lease of `node`.
pub fn lease_name(node: &str) -> String {
    format!("{LEASE_NAME_PREFIX}{node}")
}

/// The node a speaker Lease belongs to, read from its name.
pub fn lease_node(lease: &Lease) -> Option<&str> {
    lease.metadata.name.as_deref()?.strip_prefix(LEASE_NAME_PREFIX).filter(|node| !node.is_empty())
}

/// How long after a reader saw `lease` change it stays live: its `leaseDurationSeconds`. `None`
/// for a Lease that names no holder or promises no positive duration: it is not live at all.
pub fn lease_lifetime(lease: &Lease) -> Option<Duration> {
    let spec = lease.spec.as_ref()?;
    spec.holder_identity.as_deref().filter(|holder| !holder.is_empty())?;
    let seconds = spec.lease_duration_seconds.and_then(|seconds| u64::try_from(seconds).ok()).filter(|&s| s > 0)?;
    Some(Duration::from_secs(seconds))
}

/// What a speaker publishes about its node, on its Lease.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PublishedNode {
    /// The Node's labels.
    #[serde(default)]
    pub labels: Labels,
    /// Whether the Node's `NetworkUnavailable` condition is `True`.
    #[serde(default)]
    pub network_unavailable: bool,
    /// Every interface of the node, sorted by name.
    #[serde(default)]
    pub interfaces: Vec<PublishedInterface>,
    /// Addresses this speaker found claimed by a host that is not an ironlb speaker, sorted by
    /// address. The operator turns them into the `AddressConflict` condition of their pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<PublishedConflict>,
    /// This speaker reads the allocation record from its IPAllocationSlices. A speaker of an
    /// older release reads only the pool status's own list, so while one runs (the middle of a
    /// rolling upgrade) the operator keeps that list whole, as that release wrote it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reads_allocation_slices: bool,
}

/// An address of a pool that a host other than an ironlb speaker uses, as one speaker found it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct PublishedConflict {
    /// The address, canonical. Example: `192.168.2.10`.
    pub address: String,
    /// The other host's MAC, lowercase. Example: `02:00:c0:a8:02:fa`.
    pub mac: String,
    /// The interface of this node it was seen on. Example: `eth0`.
    pub interface: String,
    /// `true`: the probe before the first announcement found the address in use, so it is not
    /// announced. `false`: the host claims an address this node announces, which it keeps
    /// announcing.
    #[serde(default)]
    pub in_use: bool,
}

/// One interface of a [`PublishedNode`]; see [`InterfaceFacts`] for the meaning of each field.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PublishedInterface {
    /// The kernel's name for it. Example: `eth0`.
    pub name: String,
    /// Its hardware address, lowercase `aa:bb:cc:dd:ee:ff`, when it has one. Peers use it to
    /// recognise a speaker's frames on the wire, and people to match `arping` output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Operationally up (`IFF_UP` and carrier).
    #[serde(default)]
    pub up: bool,
    /// Fit for announcing when an advertisement names no interface.
    #[serde(default)]
    pub announce_by_default: bool,
    /// Its addresses in prefix notation. Example: `["192.168.2.101/24", "fd00::101/64"]`.
    #[serde(default)]
    pub addresses: Vec<String>,
}

impl PublishedNode {
    /// The annotation value: compact JSON. Equal facts give equal text, so a speaker can tell
    /// whether its Lease needs rewriting by comparing strings.
    pub fn to_annotation(&self) -> String {
        // Serialising plain strings, booleans and maps cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the annotation value written by [`Self::to_annotation`].
    pub fn from_annotation(value: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(value)
    }

    /// The Lease of `node` as a reader sees it on the watch when its speaker publishes these
    /// facts: held by `holder` for `duration_seconds`, at `resource_version`. Built in one place
    /// for the tests and tools that stand in for a speaker; the speaker itself writes its Lease
    /// field by field (`NodeLease`), renewing only what changes.
    pub fn lease(&self, node: &str, holder: &str, duration_seconds: i32, resource_version: Option<String>) -> Lease {
        use k8s_openapi::api::coordination::v1::LeaseSpec;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        Lease {
            metadata: ObjectMeta {
                name: Some(lease_name(node)),
                resource_version,
                annotations: Some([(NODE_FACTS_ANNOTATION.to_owned(), self.to_annotation())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                lease_duration_seconds: Some(duration_seconds),
                ..LeaseSpec::default()
            }),
        }
    }

    /// The facts the announcer decides from. An address that does not parse as `ip/len` is
    /// skipped: it cannot place a subnet.
    pub fn to_facts(&self, name: &str, lease_live: bool) -> NodeFacts {
        let interfaces = self
            .interfaces
            .iter()
            .map(|interface| InterfaceFacts {
                name: interface.name.clone(),
                up: interface.up,
                announce_by_default: interface.announce_by_default,
                addresses: interface.addresses.iter().filter_map(|text| parse_prefix(text)).collect(),
            })
            .collect();
        NodeFacts {
            name: name.to_owned(),
            labels: self.labels.clone(),
            network_unavailable: self.network_unavailable,
            lease_live,
            interfaces,
        }
    }
}

fn parse_prefix(text: &str) -> Option<(IpAddr, u8)> {
    let (address, len) = text.split_once('/')?;
    Some((address.parse().ok()?, len.parse().ok()?))
}

/// What a reader knows about one node's speaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The facts on its Lease; empty (no interface, so eligible for nothing) when the annotation
    /// is missing or does not parse.
    pub facts: PublishedNode,
    /// Whether the annotation was missing or unreadable.
    pub facts_unreadable: bool,
    /// When the reader stops counting it live; `None` when the Lease is not live at all.
    pub expires_at: Option<Instant>,
    /// When the reader last saw it renewed (or first saw it).
    observed_at: Instant,
    /// The `resourceVersion` of the Lease last seen: the same version seen again (a relist, a
    /// repeated watch event) is not a renewal.
    resource_version: Option<String>,
}

/// The speakers' Leases as one reader's watch delivered them.
#[derive(Clone, Debug, Default)]
pub struct Peers {
    nodes: BTreeMap<String, Peer>,
    /// The MACs of nodes whose Lease was deleted or dropped by a relist, newest last: a speaker
    /// stopping gracefully deletes its Lease first and keeps answering for its grace period, and
    /// its frames must still be told from a foreign host's (see [`Self::node_with_mac`]).
    departed: Vec<(String, String)>,
}

/// How many departed nodes' MACs are remembered.
const DEPARTED_REMEMBERED: usize = 256;

impl Peers {
    /// Records a Lease the watch delivered (created, renewed or changed) at `now`. Returns the
    /// node it belongs to; Leases whose name is not a speaker Lease name are ignored.
    pub fn observe(&mut self, lease: &Lease, now: Instant) -> Option<&str> {
        let node = lease_node(lease)?;
        let resource_version = lease.metadata.resource_version.clone();
        let seen_before = self.nodes.get(node).is_some_and(|peer| peer.resource_version == resource_version);
        if seen_before && resource_version.is_some() {
            return self.nodes.get_key_value(node).map(|(name, _)| name.as_str());
        }
        let annotation = lease.metadata.annotations.as_ref().and_then(|a| a.get(NODE_FACTS_ANNOTATION));
        let parsed = annotation.map(|value| PublishedNode::from_annotation(value));
        let facts_unreadable = !matches!(parsed, Some(Ok(_)));
        let facts = parsed.and_then(Result::ok).unwrap_or_default();
        let expires_at = lease_lifetime(lease).and_then(|lifetime| now.checked_add(lifetime));
        let peer = Peer { facts, facts_unreadable, expires_at, observed_at: now, resource_version };
        self.nodes.insert(node.to_owned(), peer);
        self.nodes.get_key_value(node).map(|(name, _)| name.as_str())
    }

    /// Whether observing `lease` at `now` could change a decision: a node not seen before, one
    /// not live at `now`, or facts that differ. A plain renewal of a live node changes nothing
    /// but its expiry, so a reader can skip deciding again (every node renews every 500 ms).
    pub fn would_change(&self, lease: &Lease, now: Instant) -> bool {
        let Some(node) = lease_node(lease) else { return false };
        let Some(peer) = self.nodes.get(node) else { return true };
        let annotation = lease.metadata.annotations.as_ref().and_then(|a| a.get(NODE_FACTS_ANNOTATION));
        let facts = annotation.and_then(|value| PublishedNode::from_annotation(value).ok()).unwrap_or_default();
        !self.is_live(node, now) || lease_lifetime(lease).is_none() || facts != peer.facts || self.confirms_expiry(now)
    }

    /// Whether a renewal seen at `now` turns a held node (expired, but see [`Self::counts_live`])
    /// into a dead one: the evidence that the API server works arrived.
    fn confirms_expiry(&self, now: Instant) -> bool {
        let latest = self.latest_observation();
        self.nodes.values().any(|peer| {
            peer.expires_at.is_some_and(|expires_at| expires_at <= now)
                && self.counts_live(peer, now, latest)
                && !self.counts_live(peer, now, latest.max(Some(now)))
        })
    }

    /// The last time any renewal was seen.
    fn latest_observation(&self) -> Option<Instant> {
        self.nodes.values().map(|peer| peer.observed_at).max()
    }

    /// Whether `peer` counts as live for a decision at `now`, `latest` being the last time any
    /// renewal was seen: its Lease has not expired — or it has, but no node's renewal has been
    /// seen since half a lifetime after its own last one.
    ///
    /// A node whose Lease expires while its peers keep renewing is dead. But when the API server
    /// goes away, every node stops renewing at once, and the node that happened to renew last
    /// would see the others expire first and take their addresses in the first seconds of the
    /// outage. Holding an expired node until someone else's renewal proves the API server
    /// still works closes that race; a crash still expires at the Lease duration, since the
    /// survivors renew every fraction of it (the renew interval is at most half the duration).
    fn counts_live(&self, peer: &Peer, now: Instant, latest: Option<Instant>) -> bool {
        let Some(expires_at) = peer.expires_at else { return false };
        if now < expires_at {
            return true;
        }
        let half_lifetime = expires_at.saturating_duration_since(peer.observed_at) / 2;
        latest.is_none_or(|latest| latest < peer.observed_at + half_lifetime)
    }

    /// Forgets a deleted Lease: its node is no longer live.
    pub fn forget(&mut self, lease: &Lease) {
        if let Some(node) = lease_node(lease).map(str::to_owned) {
            self.depart(&node);
        }
    }

    /// Drops `node`, remembering its MACs.
    fn depart(&mut self, node: &str) {
        let Some(peer) = self.nodes.remove(node) else { return };
        self.departed.retain(|(_, name)| name != node);
        for mac in peer.facts.interfaces.into_iter().filter_map(|interface| interface.mac) {
            self.departed.push((mac, node.to_owned()));
        }
        let excess = self.departed.len().saturating_sub(DEPARTED_REMEMBERED);
        self.departed.drain(..excess);
    }

    /// Replaces everything with the Leases of a fresh list (a watch restart), observed at `now`.
    /// A Lease whose `resourceVersion` is unchanged keeps its expiry: a relist must not make a
    /// silent node live again for another full duration.
    pub fn reset<'a>(&mut self, leases: impl IntoIterator<Item = &'a Lease>, now: Instant) {
        let mut listed = std::collections::BTreeSet::new();
        for lease in leases {
            if let Some(node) = self.observe(lease, now) {
                listed.insert(node.to_owned());
            }
        }
        let gone: Vec<String> = self.nodes.keys().filter(|node| !listed.contains(*node)).cloned().collect();
        for node in gone {
            self.depart(&node);
        }
    }

    /// One node's record.
    pub fn get(&self, node: &str) -> Option<&Peer> {
        self.nodes.get(node)
    }

    /// Whether `node`'s Lease is live at `now`.
    pub fn is_live(&self, node: &str, now: Instant) -> bool {
        self.nodes.get(node).and_then(|peer| peer.expires_at).is_some_and(|expires_at| now < expires_at)
    }

    /// The facts of every node with a Lease, liveness judged at `now` (an expired node is held
    /// live until another node's renewal proves the API server works, see
    /// [`Self::counts_live`]), sorted by node name.
    pub fn node_facts(&self, now: Instant) -> Vec<NodeFacts> {
        let latest = self.latest_observation();
        self.nodes.iter().map(|(name, peer)| peer.facts.to_facts(name, self.counts_live(peer, now, latest))).collect()
    }

    /// The next instant after `now` at which a live node stops being live: when to decide again,
    /// since an expiry is the absence of an event.
    pub fn next_expiry(&self, now: Instant) -> Option<Instant> {
        self.nodes.values().filter_map(|peer| peer.expires_at).filter(|&at| at > now).min()
    }

    /// The conflicts the nodes that count live report (by the rule of [`Self::node_facts`]: a
    /// report does not lapse while an outage holds its node), with the node reporting each,
    /// sorted by node.
    pub fn conflicts(&self, now: Instant) -> Vec<(&str, &PublishedConflict)> {
        let latest = self.latest_observation();
        self.nodes
            .iter()
            .filter(|(_, peer)| self.counts_live(peer, now, latest))
            .flat_map(|(name, peer)| peer.facts.conflicts.iter().map(move |conflict| (name.as_str(), conflict)))
            .collect()
    }

    /// The live nodes whose speaker does not say it reads the allocation record's slices: an
    /// older release, reading only the pool status's list ([`PublishedNode::reads_allocation_slices`]).
    pub fn slice_unaware(&self, now: Instant) -> Vec<&str> {
        let latest = self.latest_observation();
        self.nodes
            .iter()
            .filter(|(_, peer)| self.counts_live(peer, now, latest) && !peer.facts.reads_allocation_slices)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// The node whose speaker published `mac` (lowercase `aa:bb:…`) on one of its interfaces —
    /// also when its Lease is gone (a graceful stop, an expiry): a speaker's frames are never a
    /// foreign host's.
    pub fn node_with_mac(&self, mac: &str) -> Option<&str> {
        let current = self.nodes.iter().find_map(|(name, peer)| {
            peer.facts.interfaces.iter().any(|i| i.mac.as_deref() == Some(mac)).then_some(name.as_str())
        });
        current.or_else(|| self.departed.iter().rev().find(|(known, _)| known == mac).map(|(_, node)| node.as_str()))
    }

    /// The number of nodes with a Lease.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node has a Lease.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn lease(node: &str, facts: Option<&PublishedNode>, holder: Option<&str>) -> Lease {
        versioned(node, facts, holder, None)
    }

    fn versioned(node: &str, facts: Option<&PublishedNode>, holder: Option<&str>, version: Option<&str>) -> Lease {
        let annotations =
            facts.map(|facts| BTreeMap::from([(NODE_FACTS_ANNOTATION.to_owned(), facts.to_annotation())]));
        Lease {
            metadata: ObjectMeta {
                name: Some(lease_name(node)),
                annotations,
                resource_version: version.map(str::to_owned),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(2),
                ..LeaseSpec::default()
            }),
        }
    }

    fn published() -> PublishedNode {
        PublishedNode {
            labels: BTreeMap::from([("zone".to_owned(), "a".to_owned())]),
            network_unavailable: false,
            interfaces: vec![PublishedInterface {
                name: "eth0".to_owned(),
                mac: Some("02:00:c0:a8:02:65".to_owned()),
                up: true,
                announce_by_default: true,
                addresses: vec!["192.168.2.101/24".to_owned(), "fd00::101/64".to_owned(), "garbage".to_owned()],
            }],
            conflicts: Vec::new(),
            reads_allocation_slices: true,
        }
    }

    #[test]
    fn the_annotation_round_trips_into_the_announcers_facts() {
        let text = published().to_annotation();
        assert_eq!(PublishedNode::from_annotation(&text).expect("parses"), published());
        let facts = published().to_facts("node-a", true);
        assert_eq!(
            facts.interfaces[0].addresses,
            vec![("192.168.2.101".parse().expect("ip"), 24), ("fd00::101".parse().expect("ip"), 64)]
        );
        assert_eq!(facts.labels["zone"], "a");
        assert!(facts.lease_live);
    }

    #[test]
    fn conflicts_count_while_the_reporting_node_is_live() {
        let conflict = PublishedConflict {
            address: "192.168.2.10".into(),
            mac: "02:00:c0:a8:02:fa".into(),
            interface: "eth0".into(),
            in_use: false,
        };
        let facts = PublishedNode { conflicts: vec![conflict.clone()], ..published() };
        assert!(!published().to_annotation().contains("conflicts"), "no conflicts: nothing written");
        let mut peers = Peers::default();
        let seen = Instant::now();
        peers.observe(&lease("node-a", Some(&published()), Some("pod-a")), seen);
        assert!(peers.would_change(&lease("node-a", Some(&facts), Some("pod-a")), seen), "a new conflict is news");
        peers.observe(&lease("node-b", Some(&facts), Some("pod-b")), seen);
        assert_eq!(peers.conflicts(seen), vec![("node-b", &conflict)]);
        let later = seen + Duration::from_secs(2);
        assert_eq!(peers.conflicts(later), vec![("node-b", &conflict)], "nobody renewed: an outage holds the report");
        let renewed = versioned("node-a", Some(&published()), Some("pod-a"), Some("2"));
        peers.observe(&renewed, seen + Duration::from_millis(1_500));
        assert!(peers.conflicts(later).is_empty(), "node-b went silent while node-a renewed: its report lapses");
    }

    #[test]
    fn a_live_speaker_of_an_older_release_is_told_apart_by_what_it_does_not_publish() {
        // An older release's facts: no readsAllocationSlices key at all.
        let older = r#"{"labels":{},"networkUnavailable":false,"interfaces":[]}"#;
        let older = PublishedNode::from_annotation(older).expect("an older speaker's facts parse");
        assert!(!older.reads_allocation_slices);
        assert!(published().to_annotation().contains(r#""readsAllocationSlices":true"#));
        let mut peers = Peers::default();
        let seen = Instant::now();
        peers.observe(&lease("node-a", Some(&published()), Some("pod-a")), seen);
        peers.observe(&lease("node-b", Some(&older), Some("pod-b")), seen);
        assert_eq!(peers.slice_unaware(seen), ["node-b"]);
        // Replaced by this release (the rolling upgrade reaches it): none left.
        peers.observe(&versioned("node-b", Some(&published()), Some("pod-b2"), Some("2")), seen);
        assert!(peers.slice_unaware(seen).is_empty());
    }

    fn live_nodes(peers: &Peers, now: Instant) -> Vec<String> {
        peers.node_facts(now).into_iter().filter(|n| n.lease_live).map(|n| n.name).collect()
    }

    #[test]
    fn an_expired_node_is_dead_once_another_node_renews_half_a_duration_after_it() {
        let mut peers = Peers::default();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let renew = |peers: &mut Peers, node: &str, version: &str, ms: u64| {
            peers.observe(&versioned(node, Some(&published()), Some("pod"), Some(version)), at(ms));
        };
        renew(&mut peers, "node-a", "1", 0);
        renew(&mut peers, "node-b", "1", 300);
        // node-a crashed; node-b renews every 500 ms. At node-a's expiry (2 s) node-b's renewal
        // at 1,800 ms is more than half a duration after node-a's last: node-a is dead at once.
        for (version, ms) in [("2", 800), ("3", 1_300), ("4", 1_800)] {
            let lease = versioned("node-b", Some(&published()), Some("pod"), Some(version));
            assert!(!peers.would_change(&lease, at(ms)), "a plain renewal while nobody is held");
            peers.observe(&lease, at(ms));
        }
        assert_eq!(live_nodes(&peers, at(2_000)), vec!["node-b"]);
    }

    #[test]
    fn when_every_node_stops_renewing_at_once_nobody_is_counted_dead() {
        // The API server went away at ~400 ms: node-b renewed last, at 300 ms.
        let mut peers = Peers::default();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        peers.observe(&versioned("node-a", Some(&published()), Some("pod"), Some("1")), at(0));
        peers.observe(&versioned("node-b", Some(&published()), Some("pod"), Some("1")), at(300));
        // node-a's Lease expires first, but nothing was renewed after it: both are held.
        assert_eq!(live_nodes(&peers, at(2_100)), vec!["node-a", "node-b"]);
        assert_eq!(live_nodes(&peers, at(60_000)), vec!["node-a", "node-b"]);
        assert!(!peers.is_live("node-a", at(2_100)), "the Lease itself has expired");
        // The API server is back: node-b's renewal is the evidence, node-a is dead.
        let back = versioned("node-b", Some(&published()), Some("pod"), Some("2"));
        assert!(peers.would_change(&back, at(61_000)), "the renewal confirms node-a's expiry");
        peers.observe(&back, at(61_000));
        assert_eq!(live_nodes(&peers, at(61_000)), vec!["node-b"]);
    }

    #[test]
    fn a_node_that_deleted_its_lease_is_still_known_by_its_mac() {
        let mut peers = Peers::default();
        let lease = lease("node-a", Some(&published()), Some("pod-a"));
        peers.observe(&lease, Instant::now());
        assert_eq!(peers.node_with_mac("02:00:c0:a8:02:65"), Some("node-a"));
        // A graceful stop: the Lease is deleted first, the node answers for its grace period.
        peers.forget(&lease);
        assert!(!peers.is_live("node-a", Instant::now()));
        assert_eq!(peers.node_with_mac("02:00:c0:a8:02:65"), Some("node-a"), "its frames are a speaker's");
        assert_eq!(peers.node_with_mac("02:00:c0:a8:02:fa"), None);
    }

    #[test]
    fn a_lease_is_live_for_its_duration_after_it_was_seen() {
        let mut peers = Peers::default();
        let seen = Instant::now();
        assert_eq!(peers.observe(&lease("node-a", Some(&published()), Some("pod-a")), seen), Some("node-a"));
        assert!(peers.is_live("node-a", seen + Duration::from_millis(1999)));
        assert!(!peers.is_live("node-a", seen + Duration::from_secs(2)));
        assert_eq!(peers.next_expiry(seen), Some(seen + Duration::from_secs(2)));
        assert_eq!(peers.next_expiry(seen + Duration::from_secs(2)), None);
    }

    #[test]
    fn only_a_renewal_that_changes_something_would_change_a_decision() {
        let mut peers = Peers::default();
        let seen = Instant::now();
        let a = versioned("node-a", Some(&published()), Some("pod-a"), Some("1"));
        assert!(peers.would_change(&a, seen));
        peers.observe(&a, seen);
        let renewed = versioned("node-a", Some(&published()), Some("pod-a"), Some("2"));
        assert!(!peers.would_change(&renewed, seen + Duration::from_millis(500)));
        assert!(peers.would_change(&renewed, seen + Duration::from_secs(3)), "it had expired");
        let mut moved = published();
        moved.interfaces[0].up = false;
        let link_down = versioned("node-a", Some(&moved), Some("pod-a"), Some("3"));
        assert!(peers.would_change(&link_down, seen + Duration::from_millis(500)));
        assert!(peers.would_change(&versioned("node-a", Some(&published()), None, Some("4")), seen));
    }

    #[test]
    fn a_lease_without_holder_or_facts_announces_nothing() {
        let mut peers = Peers::default();
        let now = Instant::now();
        peers.observe(&lease("node-a", Some(&published()), None), now);
        peers.observe(&lease("node-b", None, Some("pod-b")), now);
        assert!(!peers.is_live("node-a", now));
        let b = peers.get("node-b").expect("recorded");
        assert!(b.facts_unreadable);
        assert!(peers.node_facts(now)[1].interfaces.is_empty());
    }

    #[test]
    fn a_relist_does_not_revive_a_silent_node() {
        let mut peers = Peers::default();
        let start = Instant::now();
        let a = versioned("node-a", Some(&published()), Some("pod-a"), Some("7"));
        peers.observe(&a, start);
        peers.reset([&a], start + Duration::from_millis(1500));
        assert!(!peers.is_live("node-a", start + Duration::from_secs(2)));
        let renewed = versioned("node-a", Some(&published()), Some("pod-a"), Some("8"));
        peers.observe(&renewed, start + Duration::from_millis(1500));
        assert!(peers.is_live("node-a", start + Duration::from_secs(3)));
        peers.reset(std::iter::empty(), start);
        assert!(peers.is_empty());
    }

    #[test]
    fn a_published_mac_names_its_node() {
        let mut peers = Peers::default();
        peers.observe(&lease("node-a", Some(&published()), Some("pod-a")), Instant::now());
        assert_eq!(peers.node_with_mac("02:00:c0:a8:02:65"), Some("node-a"));
        assert_eq!(peers.node_with_mac("02:00:c0:a8:02:66"), None);
        peers.forget(&lease("node-a", None, None));
        assert_eq!(peers.len(), 0);
    }
}
