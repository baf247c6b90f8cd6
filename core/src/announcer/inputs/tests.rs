use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher::Event;

use super::{AnnouncerInputs, EndpointScope, Touched};
use crate::ServiceKey;
use crate::announcer::endpoints::SERVICE_NAME_LABEL;
use crate::announcer::peers::{PublishedInterface, PublishedNode};
use crate::v1alpha1::{L2Advertisement, L2AdvertisementSpec};

fn lease(node: &str, version: u32, interface: &str) -> Lease {
    let facts = PublishedNode {
        interfaces: vec![PublishedInterface {
            name: interface.to_owned(),
            mac: Some("02:00:00:00:00:01".to_owned()),
            up: true,
            announce_by_default: true,
            addresses: vec!["192.168.2.1/24".to_owned()],
        }],
        ..PublishedNode::default()
    };
    facts.lease(node, &format!("pod-{node}"), 2, Some(version.to_string()))
}

fn slice(service: &str, name: &str, nodes: &[&str]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some("default".to_owned()),
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(SERVICE_NAME_LABEL.to_owned(), service.to_owned())])),
            ..ObjectMeta::default()
        },
        endpoints: nodes
            .iter()
            .map(|node| Endpoint { node_name: Some((*node).to_owned()), ..Endpoint::default() })
            .collect(),
        ..EndpointSlice::default()
    }
}

fn advertisement(name: &str, interfaces: &[&str]) -> L2Advertisement {
    let spec = L2AdvertisementSpec {
        interfaces: interfaces.iter().map(|&i| i.to_owned()).collect(),
        ..L2AdvertisementSpec::default()
    };
    L2Advertisement::new(name, spec)
}

fn live(inputs: &AnnouncerInputs, now: Instant) -> Vec<String> {
    inputs.nodes(now).into_iter().filter(|node| node.lease_live).map(|node| node.name).collect()
}

#[test]
fn nothing_is_synced_until_every_cluster_watch_has_listed() {
    let now = Instant::now();
    let mut inputs = AnnouncerInputs::new(EndpointScope::Cluster);
    assert!(!inputs.synced().all());
    for event in [Event::Init, Event::InitDone] {
        inputs.take_lease(event, now);
    }
    for event in [Event::Init, Event::InitDone] {
        inputs.take_advertisement(event);
    }
    assert!(!inputs.synced().all(), "the EndpointSlices have not listed yet");
    inputs.take_endpoint_slice(Event::Init);
    inputs.take_endpoint_slice(Event::InitDone);
    assert!(inputs.synced().all());
}

#[test]
fn a_speaker_waits_for_no_cluster_wide_endpoint_list() {
    let now = Instant::now();
    let mut inputs = AnnouncerInputs::new(EndpointScope::PerService);
    inputs.take_lease(Event::InitDone, now);
    assert!(!inputs.synced().all(), "the advertisements have not listed yet");
    inputs.take_advertisement(Event::InitDone);
    assert!(inputs.synced().all());
}

#[test]
fn a_renewal_with_unchanged_facts_is_no_change_and_new_facts_are() {
    let now = Instant::now();
    let mut inputs = AnnouncerInputs::new(EndpointScope::Cluster);
    assert!(inputs.take_lease(Event::Apply(lease("a", 1, "eth0")), now), "a new node");
    assert!(!inputs.take_lease(Event::Apply(lease("a", 2, "eth0")), now + Duration::from_millis(500)));
    assert!(inputs.take_lease(Event::Apply(lease("a", 3, "eth1")), now + Duration::from_secs(1)), "new facts");
    assert_eq!(inputs.next_expiry(), Some(now + Duration::from_secs(3)), "expiry follows the last renewal");
    assert!(inputs.take_lease(Event::Delete(lease("a", 3, "eth1")), now + Duration::from_secs(1)));
    assert!(!inputs.take_lease(Event::Delete(lease("a", 3, "eth1")), now + Duration::from_secs(1)), "already gone");
}

#[test]
fn an_expiry_is_reported_once_when_its_time_comes() {
    let now = Instant::now();
    let mut inputs = AnnouncerInputs::new(EndpointScope::Cluster);
    inputs.take_lease(Event::Apply(lease("a", 1, "eth0")), now);
    assert!(!inputs.expired(now + Duration::from_secs(1)));
    assert!(inputs.expired(now + Duration::from_secs(2)));
    assert!(!inputs.expired(now + Duration::from_secs(3)), "reported once");
}

#[test]
fn a_lease_relist_takes_effect_only_when_complete() {
    let now = Instant::now();
    let mut inputs = AnnouncerInputs::new(EndpointScope::Cluster);
    inputs.take_lease(Event::Apply(lease("a", 1, "eth0")), now);
    inputs.take_lease(Event::Apply(lease("b", 1, "eth0")), now);
    assert!(!inputs.take_lease(Event::Init, now));
    assert!(!inputs.take_lease(Event::InitApply(lease("a", 1, "eth0")), now));
    assert_eq!(live(&inputs, now), ["a", "b"], "b is still there while the relist runs");
    assert!(inputs.take_lease(Event::InitDone, now), "b is gone");
    assert_eq!(live(&inputs, now), ["a"]);
    // The same list again changes nothing, and keeps a's expiry (same resourceVersion).
    inputs.take_lease(Event::Init, now + Duration::from_secs(1));
    inputs.take_lease(Event::InitApply(lease("a", 1, "eth0")), now + Duration::from_secs(1));
    assert!(!inputs.take_lease(Event::InitDone, now + Duration::from_secs(1)));
    assert_eq!(inputs.next_expiry(), Some(now + Duration::from_secs(2)));
}

#[test]
fn an_endpoint_relist_replaces_the_index_only_when_complete() {
    let mut inputs = AnnouncerInputs::new(EndpointScope::Cluster);
    let web = ServiceKey::new("default", "web");
    assert_eq!(
        inputs.take_endpoint_slice(Event::Apply(slice("web", "web-1", &["a"]))),
        Touched::Services(vec![web.clone()])
    );
    inputs.take_endpoint_slice(Event::Init);
    inputs.take_endpoint_slice(Event::InitApply(slice("db", "db-1", &["b"])));
    assert!(inputs.endpoints().summary("default", "web").serving, "web keeps its endpoints during the relist");
    assert_eq!(inputs.take_endpoint_slice(Event::InitDone), Touched::Everything);
    assert!(!inputs.endpoints().summary("default", "web").serving, "web's slice was not in the new list");
    assert!(inputs.endpoints().summary("default", "db").serving);
}

#[test]
fn a_service_slice_relist_replaces_that_service_only_when_complete() {
    let mut inputs = AnnouncerInputs::new(EndpointScope::PerService);
    let (web, db) = (ServiceKey::new("default", "web"), ServiceKey::new("default", "db"));
    assert!(inputs.take_service_slices(&web, Event::Apply(slice("web", "web-1", &["a"]))));
    assert!(inputs.take_service_slices(&db, Event::Apply(slice("db", "db-1", &["b"]))));
    assert!(!inputs.take_service_slices(&web, Event::Init));
    assert!(!inputs.take_service_slices(&web, Event::InitApply(slice("web", "web-2", &["c"]))));
    assert_eq!(inputs.endpoints().summary("default", "web").nodes.into_iter().collect::<Vec<_>>(), ["a"]);
    assert!(inputs.take_service_slices(&web, Event::InitDone));
    assert_eq!(inputs.endpoints().summary("default", "web").nodes.into_iter().collect::<Vec<_>>(), ["c"]);
    assert!(inputs.endpoints().summary("default", "db").serving, "another Service's slices are untouched");
    // The same list again is no change.
    inputs.take_service_slices(&web, Event::Init);
    inputs.take_service_slices(&web, Event::InitApply(slice("web", "web-2", &["c"])));
    assert!(!inputs.take_service_slices(&web, Event::InitDone));
    inputs.forget_service(&web);
    assert!(!inputs.endpoints().summary("default", "web").serving);
}

#[test]
fn the_local_endpoint_patch_reads_the_slices_only_under_local() {
    use crate::announcer::{PoolFacts, ServiceFacts};
    use crate::v1alpha1::{Allocation, TRAFFIC_POLICY_LOCAL};
    let mut inputs = AnnouncerInputs::new(EndpointScope::Cluster);
    inputs.take_endpoint_slice(Event::Apply(slice("web", "web-1", &["b"])));
    let pool = PoolFacts { name: "default".to_owned(), labels: BTreeMap::new() };
    let allocation = |policy: Option<&str>| Allocation {
        namespace: "default".to_owned(),
        name: "web".to_owned(),
        ips: vec!["192.168.2.10".to_owned()],
        external_traffic_policy: policy.map(str::to_owned),
        serving: false,
        node: None,
        interface: None,
        in_use: Vec::new(),
    };
    let mut local = ServiceFacts::from_allocation(&pool, &allocation(Some(TRAFFIC_POLICY_LOCAL)));
    inputs.patch_local_endpoints(&mut local);
    assert!(local.has_serving_endpoint, "under Local, serving is read from the slices");
    assert_eq!(local.nodes_with_endpoints.into_iter().collect::<Vec<_>>(), ["b"]);
    let mut cluster = ServiceFacts::from_allocation(&pool, &allocation(None));
    inputs.patch_local_endpoints(&mut cluster);
    assert!(!cluster.has_serving_endpoint, "under Cluster, the allocation's serving stands");
    assert!(cluster.nodes_with_endpoints.is_empty());
}

#[test]
fn an_advertisement_relist_is_a_change_only_if_the_specs_differ() {
    let mut inputs = AnnouncerInputs::new(EndpointScope::Cluster);
    assert!(inputs.take_advertisement(Event::Apply(advertisement("lan", &["eth0"]))));
    assert!(!inputs.take_advertisement(Event::Apply(advertisement("lan", &["eth0"]))), "same spec");
    let version = inputs.advertisements_version();
    inputs.take_advertisement(Event::Init);
    inputs.take_advertisement(Event::InitApply(advertisement("lan", &["eth0"])));
    assert!(!inputs.take_advertisement(Event::InitDone));
    assert_eq!(inputs.advertisements_version(), version);
    inputs.take_advertisement(Event::Init);
    assert!(!inputs.take_advertisement(Event::InitApply(advertisement("lan", &["eth1"]))));
    assert!(inputs.take_advertisement(Event::InitDone));
    assert!(inputs.advertisements_version() > version);
    assert!(inputs.take_advertisement(Event::Delete(advertisement("lan", &["eth1"]))));
}
