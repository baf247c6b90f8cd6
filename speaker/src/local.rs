//! What this speaker tells its peers about its own node: the facts it publishes on its Lease.
//!
//! Every reader decides who announces from the facts on the speakers' Leases
//! ([`ironlb_core::announcer::peers`]), so this speaker publishes its node's: the Node's labels
//! and `NetworkUnavailable` condition (from a watch of its own Node only), and the node's
//! interfaces with their state and addresses (read from the kernel).
//!
//! Interfaces are re-read every [`INTERFACE_POLL`] rather than followed over netlink: one
//! `getifaddrs` dump is cheap at that rate, and a link that loses carrier reaches the peers
//! within the poll period plus one Lease write (the Lease is written as soon as the facts change).

use std::time::Duration;

use futures::StreamExt;
use ironlb_core::announcer::{PublishedConflict, PublishedInterface, PublishedNode};
use k8s_openapi::api::core::v1::Node;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::net::{self, Interface};

/// How often the node's interfaces are re-read.
pub const INTERFACE_POLL: Duration = Duration::from_millis(250);

/// The facts of this node from its Node object (absent until first seen), its interfaces and
/// the address conflicts the controller found.
pub fn published_node(node: Option<&Node>, interfaces: &[Interface], conflicts: &[PublishedConflict]) -> PublishedNode {
    let labels = node.and_then(|node| node.metadata.labels.clone()).unwrap_or_default();
    let network_unavailable = node
        .and_then(|node| node.status.as_ref()?.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|condition| condition.type_ == "NetworkUnavailable" && condition.status == "True");
    let mut interfaces: Vec<PublishedInterface> = interfaces
        .iter()
        .map(|interface| PublishedInterface {
            name: interface.name.clone(),
            mac: interface.mac.filter(|mac| !mac.is_unspecified()).map(|mac| mac.to_string()),
            up: interface.flags.up && interface.flags.lower_up,
            announce_by_default: interface.default_exclusion().is_none(),
            addresses: interface
                .addresses
                .iter()
                .map(|address| format!("{}/{}", address.address, address.prefix_len))
                .collect(),
        })
        .collect();
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    PublishedNode {
        labels,
        network_unavailable,
        interfaces,
        conflicts: conflicts.to_vec(),
        reads_allocation_slices: true,
    }
}

/// The local facts, kept current: the published annotation text (for the Lease) and the
/// interfaces (for the sockets).
#[derive(Debug)]
pub struct LocalFacts {
    /// The [`PublishedNode`] annotation value.
    pub annotation: watch::Receiver<String>,
    /// The node's interfaces as last read.
    pub interfaces: watch::Receiver<Vec<Interface>>,
}

/// Starts following the Node `node_name`, the node's interfaces and the controller's
/// `conflicts`; runs until the process ends.
pub fn follow(client: Client, node_name: &str, mut conflicts: watch::Receiver<Vec<PublishedConflict>>) -> LocalFacts {
    let initial_interfaces = read_interfaces();
    let initial = published_node(None, &initial_interfaces, &conflicts.borrow_and_update());
    let (annotation_tx, annotation) = watch::channel(initial.to_annotation());
    let (interfaces_tx, interfaces) = watch::channel(initial_interfaces);
    let api: Api<Node> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("metadata.name={node_name}"));
    tokio::spawn(async move {
        let mut nodes = std::pin::pin!(watcher::watcher(api, config));
        let mut poll = tokio::time::interval(INTERFACE_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut node: Option<Node> = None;
        loop {
            tokio::select! {
                event = nodes.next() => match event {
                    Some(Ok(Event::Apply(seen) | Event::InitApply(seen))) => node = Some(seen),
                    Some(Ok(Event::Delete(_))) => node = None,
                    Some(Ok(Event::Init | Event::InitDone)) => {}
                    // The watcher retries by itself; the facts already published stay.
                    Some(Err(error)) => {
                        tracing::warn!(%error, "watching this node failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    None => break,
                },
                Ok(()) = conflicts.changed() => {}
                _ = poll.tick() => {
                    let current = read_interfaces();
                    interfaces_tx.send_if_modified(|known| {
                        let changed = *known != current;
                        if changed {
                            *known = current;
                        }
                        changed
                    });
                }
            }
            let text =
                published_node(node.as_ref(), &interfaces_tx.borrow(), &conflicts.borrow_and_update()).to_annotation();
            annotation_tx.send_if_modified(|known| {
                let changed = *known != text;
                if changed {
                    tracing::info!(facts = %text, "this node's facts changed");
                    *known = text;
                }
                changed
            });
        }
    });
    LocalFacts { annotation, interfaces }
}

fn read_interfaces() -> Vec<Interface> {
    net::interfaces().unwrap_or_else(|error| {
        tracing::warn!(%error, "cannot list the node's interfaces");
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::net::{InterfaceAddress, LinkFlags};

    fn eth0(lower_up: bool) -> Interface {
        Interface {
            name: "eth0".to_owned(),
            index: 2,
            mac: Some("02:00:c0:a8:02:65".parse().expect("mac")),
            flags: LinkFlags { up: true, lower_up, broadcast: true, ..LinkFlags::default() },
            master: None,
            addresses: vec![InterfaceAddress { address: "192.168.2.101".parse().expect("ip"), prefix_len: 24 }],
        }
    }

    #[test]
    fn publishes_labels_network_state_and_interfaces() {
        let node = Node {
            metadata: ObjectMeta {
                labels: Some(BTreeMap::from([("zone".to_owned(), "a".to_owned())])),
                ..ObjectMeta::default()
            },
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "NetworkUnavailable".to_owned(),
                    status: "True".to_owned(),
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
            ..Node::default()
        };
        let published = published_node(Some(&node), &[eth0(true)], &[]);
        assert_eq!(published.labels["zone"], "a");
        assert!(published.network_unavailable);
        let interface = &published.interfaces[0];
        assert_eq!(interface.mac.as_deref(), Some("02:00:c0:a8:02:65"));
        assert!(interface.up && interface.announce_by_default);
        assert_eq!(interface.addresses, vec!["192.168.2.101/24".to_owned()]);
    }

    #[test]
    fn an_interface_without_carrier_is_published_down() {
        let published = published_node(None, &[eth0(false)], &[]);
        assert!(!published.interfaces[0].up);
        assert!(published.labels.is_empty());
    }
}
