//! The engine loop fed with watch events, one rule per test: what it writes ([`Effect`]s) for
//! what it is told, with no API server and no clock of its own. The writes' request bodies are
//! pinned against a scripted API server in `writes/tests.rs`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ironlb_core::announcer::endpoints::SERVICE_NAME_LABEL;
use ironlb_core::announcer::{PublishedInterface, PublishedNode};
use ironlb_core::events::reason;
use ironlb_core::v1alpha1::{IPAddressPool, L2Advertisement, L2AdvertisementSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;

use super::EngineSettings;
use super::state::{Context, EngineState};
use super::writes::{Effect, WriteDone};
use crate::allocator::ServiceKey;
use crate::telemetry::Metrics;

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
const LEASE: Duration = Duration::from_secs(2);

fn pool(name: &str, addresses: &[&str], status: Option<serde_json::Value>) -> IPAddressPool {
    let mut pool = serde_json::json!({
        "apiVersion": "ironlb.io/v1alpha1", "kind": "IPAddressPool",
        "metadata": {"name": name, "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"addresses": addresses},
    });
    if let Some(status) = status {
        pool["status"] = status;
    }
    serde_json::from_value(pool).expect("a valid pool")
}

/// A LoadBalancer Service created at second `created`, showing `ingress` in its status (as
/// ironlb writes it: with the pool recorded in its annotation).
fn service(name: &str, created: u32, ingress: &[&str], families: &[&str]) -> Service {
    let annotations = if ingress.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::json!({crate::service::annotation::ALLOCATED_FROM_POOL: "default"})
    };
    let ingress: Vec<serde_json::Value> = ingress.iter().map(|ip| serde_json::json!({"ip": ip})).collect();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "web", "uid": format!("uid-{name}"), "annotations": annotations,
                     "creationTimestamp": format!("2026-01-01T00:00:{created:02}Z")},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "ipFamilies": families},
        "status": {"loadBalancer": {"ingress": ingress}},
    }))
    .expect("a valid Service")
}

/// The EndpointSlice of Service `name` with one ready endpoint on `node-a`.
fn ready_slice(name: &str) -> EndpointSlice {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": format!("{name}-abcde"), "namespace": "web",
                     "labels": {SERVICE_NAME_LABEL: name}},
        "endpoints": [{"addresses": ["10.244.0.1"], "nodeName": "node-a",
                       "conditions": {"ready": true, "serving": true}}],
    }))
    .expect("a valid EndpointSlice")
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("web", name)
}

/// A lab of the engine: its state, fed as the watches feed it, on a clock of the test's own.
struct Harness {
    state: EngineState,
    start: Instant,
    version: u64,
}

impl Harness {
    /// A replica whose watches have listed `pools` and `services`, three live speakers and one
    /// L2Advertisement for everything.
    fn new(pools: Vec<IPAddressPool>, services: Vec<Service>) -> Self {
        let slices: Vec<EndpointSlice> =
            services.iter().map(|svc| ready_slice(svc.metadata.name.as_deref().unwrap_or_default())).collect();
        let settings = EngineSettings { status_interval: Duration::ZERO, ..EngineSettings::default() };
        let state = EngineState::new(Context { settings, metrics: Metrics::new() });
        let mut harness = Self { state, start: Instant::now(), version: 0 };
        harness.state.on_pool(Event::Init);
        for pool in pools {
            harness.state.on_pool(Event::InitApply(pool));
        }
        harness.state.on_pool(Event::InitDone);
        harness.state.on_service(Event::Init);
        for svc in services {
            harness.state.on_service(Event::InitApply(svc));
        }
        harness.state.on_service(Event::InitDone);
        harness.state.on_namespace(Event::Init);
        harness.state.on_namespace(Event::InitApply(namespace("web")));
        harness.state.on_namespace(Event::InitDone);
        let now = harness.start;
        harness.state.on_lease(Event::Init, now);
        for node in NODES {
            let lease = harness.lease(node);
            harness.state.on_lease(Event::InitApply(lease), now);
        }
        harness.state.on_lease(Event::InitDone, now);
        harness.state.on_endpoint_slice(Event::Init);
        for slice in slices {
            harness.state.on_endpoint_slice(Event::InitApply(slice));
        }
        harness.state.on_endpoint_slice(Event::InitDone);
        harness.state.on_advertisement(Event::Init);
        harness
            .state
            .on_advertisement(Event::InitApply(L2Advertisement::new("everywhere", L2AdvertisementSpec::default())));
        harness.state.on_advertisement(Event::InitDone);
        harness.state.on_slice(Event::Init);
        harness.state.on_slice(Event::InitDone);
        assert!(harness.state.is_synced());
        harness
    }

    fn at(&self, millis: u64) -> Instant {
        self.start + Duration::from_millis(millis)
    }

    fn lease(&mut self, node: &str) -> Lease {
        self.lease_reporting(node, Vec::new())
    }

    /// The Lease of `node`, its speaker reporting `conflicts`.
    fn lease_reporting(&mut self, node: &str, conflicts: Vec<ironlb_core::announcer::PublishedConflict>) -> Lease {
        self.version += 1;
        let facts = PublishedNode {
            conflicts,
            interfaces: vec![PublishedInterface {
                name: "eth0".to_owned(),
                up: true,
                announce_by_default: true,
                addresses: vec!["192.168.2.2/24".to_owned()],
                ..PublishedInterface::default()
            }],
            ..PublishedNode::default()
        };
        facts.lease(node, &format!("speaker-{node}"), 2, Some(self.version.to_string()))
    }

    /// One loop turn at `millis` as the leader.
    fn turn(&mut self, millis: u64) -> Vec<Effect> {
        self.state.on_turn(self.at(millis), true)
    }

    /// Turns as the leader until nothing is left to write, with every write succeeding; returns
    /// everything written.
    fn settle(&mut self, from: u64) -> Vec<Effect> {
        let mut all = Vec::new();
        let mut at = from;
        loop {
            let effects = self.turn(at);
            if effects.is_empty() {
                return all;
            }
            for effect in &effects {
                self.state.on_write_done(succeeded(effect), Duration::ZERO, self.at(at));
            }
            all.extend(effects);
            at += 200;
        }
    }
}

fn namespace(name: &str) -> PartialObjectMeta<Namespace> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
    }))
    .expect("a Namespace")
}

/// How the API server answers `effect` when it accepts it.
fn succeeded(effect: &Effect) -> WriteDone {
    match effect {
        Effect::WriteService { key, .. } => WriteDone::Service { key: key.clone(), result: Ok(None) },
        Effect::WritePoolStatus { pool, .. } => WriteDone::PoolStatus { pool: pool.clone(), result: Ok(()) },
        Effect::WriteAdvertisementStatus { advertisement, .. } => {
            WriteDone::AdvertisementStatus { advertisement: advertisement.clone(), result: Ok(()) }
        }
        Effect::PostEvent { .. } => WriteDone::Event { result: Ok(()) },
        Effect::RetryService { key, .. } => WriteDone::Retry { key: key.clone() },
        Effect::WriteSlice { write, .. } => WriteDone::Slice {
            pool: write.slice().0.to_owned(),
            index: write.slice().1,
            deleted: matches!(write, super::record::SliceWrite::Delete { .. }),
            outcome: super::record::SliceOutcome::Written,
            error: None,
        },
    }
}

/// What the Service writes among `effects` give each Service.
fn service_writes(effects: &[Effect]) -> BTreeMap<String, Vec<String>> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::WriteService { key, assignment } => Some((
                key.name.clone(),
                assignment.iter().flat_map(|a| a.addresses.iter().map(ToString::to_string)).collect(),
            )),
            _ => None,
        })
        .collect()
}

/// The Events among `effects`: (reason, regarding name, message).
fn events(effects: &[Effect]) -> Vec<(&'static str, String, String)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::PostEvent { regarding, note } => {
                Some((note.reason, regarding.name.clone().unwrap_or_default(), note.message.clone()))
            }
            _ => None,
        })
        .collect()
}

fn pool_statuses(effects: &[Effect]) -> Vec<&ironlb_core::v1alpha1::IPAddressPoolStatus> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::WritePoolStatus { status, .. } => Some(status),
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_leader_restores_every_recorded_address_before_it_allocates_anything() {
    // `fresh` was created first and has no address; `kept` shows the pool's first address in
    // its status. Allocating in creation order without restoring first would give `fresh` the
    // address `kept` holds.
    let pools = vec![pool("default", &["192.168.2.10-192.168.2.11"], None)];
    let services = vec![service("fresh", 1, &[], &["IPv4"]), service("kept", 2, &["192.168.2.10"], &["IPv4"])];
    let mut engine = Harness::new(pools, services);

    let written = engine.settle(0);

    let writes = service_writes(&written);
    assert_eq!(writes.get("fresh").map(Vec::as_slice), Some(&["192.168.2.11".to_owned()][..]));
    assert!(!writes.contains_key("kept"), "a Service already showing its address is not written: {writes:?}");
}

#[test]
fn an_address_recorded_only_in_the_pool_status_is_restored() {
    // The Service's own status was lost (re-created by a GitOps tool, say); the pool remembers.
    let status = serde_json::json!({"allocations": [{"namespace": "web", "name": "lost", "ips": ["192.168.2.11"]}]});
    let pools = vec![pool("default", &["192.168.2.10-192.168.2.11"], Some(status))];
    let mut engine = Harness::new(pools, vec![service("lost", 1, &[], &["IPv4"])]);

    let writes = service_writes(&engine.settle(0));

    assert_eq!(writes.get("lost").map(Vec::as_slice), Some(&["192.168.2.11".to_owned()][..]));
}

#[test]
fn an_allocation_failure_is_reported_once_per_reason() {
    let pools = vec![pool("v4-only", &["192.168.2.10/32"], None)];
    let mut engine = Harness::new(pools, vec![service("v6", 1, &[], &["IPv6"])]);

    let first = engine.settle(0);
    let failures: Vec<_> = events(&first).into_iter().filter(|(r, ..)| *r == reason::ALLOCATION_FAILED).collect();
    assert_eq!(failures.len(), 1, "one Event for the failure: {failures:?}");

    // The same Service seen again (a resync, an unrelated edit) fails for the same reason: no Event.
    engine.state.on_service(Event::Apply(service("v6", 1, &[], &["IPv6"])));
    assert!(events(&engine.settle(1_000)).is_empty(), "the same reason is not reported twice");

    // A new reason is news: the Service now asks for IPv4 and the pool's only address is taken.
    engine.state.on_service(Event::Apply(service("holder", 2, &[], &["IPv4"])));
    engine.settle(2_000);
    engine.state.on_service(Event::Apply(service("v6", 1, &[], &["IPv4"])));
    let again: Vec<_> =
        events(&engine.settle(3_000)).into_iter().filter(|(r, ..)| *r == reason::ALLOCATION_FAILED).collect();
    assert_eq!(again.len(), 1, "a changed reason gets one Event: {again:?}");
    assert_ne!(again[0].2, failures[0].2, "and it says the new reason");
}

#[test]
fn allocating_writes_the_service_an_event_and_the_pool_status() {
    let mut engine = Harness::new(vec![pool("default", &["192.168.2.10/32"], None)], vec![]);
    engine.settle(0);

    engine.state.on_service(Event::Apply(service("web", 1, &[], &["IPv4"])));
    engine.state.on_endpoint_slice(Event::Apply(ready_slice("web")));
    let written = engine.settle(1_000);

    assert_eq!(service_writes(&written).get("web").map(Vec::as_slice), Some(&["192.168.2.10".to_owned()][..]));
    assert_eq!(
        events(&written),
        [(reason::IP_ALLOCATED, "web".to_owned(), "assigned 192.168.2.10 from pool default".to_owned())]
    );
    let status = pool_statuses(&written).pop().expect("the pool status is written");
    let listed: Vec<_> = status.allocations.iter().map(|a| (a.name.as_str(), a.ips.clone())).collect();
    assert_eq!(listed, [("web", vec!["192.168.2.10".to_owned()])]);
    assert!(status.allocations[0].node.is_some(), "the announcing node is recorded: {status:?}");
}

#[test]
fn a_written_service_is_looked_at_again_only_once_its_watch_has_caught_up() {
    let mut engine = Harness::new(vec![pool("default", &["192.168.2.10/32"], None)], vec![]);
    engine.settle(0);
    engine.state.on_service(Event::Apply(service("web", 1, &[], &["IPv4"])));
    assert!(service_writes(&engine.turn(1_000)).contains_key("web"));
    let done = WriteDone::Service { key: key("web"), result: Ok(Some("7".to_owned())) };
    engine.state.on_write_done(done, Duration::ZERO, engine.at(1_010));

    // The watch delivers the status write first: the address, not yet the annotation.
    let mut halfway = service("web", 1, &["192.168.2.10"], &["IPv4"]);
    halfway.metadata.annotations = None;
    halfway.metadata.resource_version = Some("6".to_owned());
    engine.state.on_service(Event::Apply(halfway.clone()));
    assert!(!service_writes(&engine.turn(1_100)).contains_key("web"), "not written twice for a watch still behind");
    // Then the annotation write: in line, nothing to do.
    let mut written = service("web", 1, &["192.168.2.10"], &["IPv4"]);
    written.metadata.resource_version = Some("7".to_owned());
    engine.state.on_service(Event::Apply(written));
    assert!(!service_writes(&engine.settle(1_200)).contains_key("web"));

    // Someone takes the annotation away afterwards: written again at once.
    halfway.metadata.resource_version = Some("8".to_owned());
    engine.state.on_service(Event::Apply(halfway.clone()));
    assert!(service_writes(&engine.turn(1_300)).contains_key("web"));
    let done = WriteDone::Service { key: key("web"), result: Ok(Some("9".to_owned())) };
    engine.state.on_write_done(done, Duration::ZERO, engine.at(1_310));
    // A watch that never delivers version 9 (a relist skipped it) holds the Service 5 s at most.
    halfway.metadata.resource_version = Some("8".to_owned());
    engine.state.on_service(Event::Apply(halfway));
    assert!(!service_writes(&engine.turn(6_000)).contains_key("web"));
    assert!(service_writes(&engine.turn(6_400)).contains_key("web"), "looked at again after the wait");
}

#[test]
fn a_standby_writes_nothing_and_a_lost_term_stops_at_once() {
    let mut engine = Harness::new(vec![pool("default", &["192.168.2.10-192.168.2.20"], None)], vec![]);
    assert!(engine.state.on_turn(engine.at(0), false).is_empty(), "a standby writes nothing");
    assert!(!engine.state.is_leading());
    engine.settle(0);
    assert!(engine.state.is_leading());

    // The lease is lost with work queued: nothing of it is written.
    engine.state.on_service(Event::Apply(service("queued", 1, &[], &["IPv4"])));
    engine.state.on_lost_leadership();
    assert!(!engine.state.is_leading());
    assert!(engine.state.on_turn(engine.at(1_000), false).is_empty(), "stepped down: no write");

    // Leading again, the term starts over from the caches and the queued Service is served.
    let written = engine.settle(2_000);
    assert_eq!(service_writes(&written).get("queued").map(Vec::as_slice), Some(&["192.168.2.10".to_owned()][..]));
}

#[test]
fn writes_in_flight_never_exceed_the_write_concurrency() {
    let services: Vec<Service> = (0..50).map(|i| service(&format!("svc-{i:02}"), 1, &[], &["IPv4"])).collect();
    // Clear of the nodes' own 192.168.2.2, so no warning joins the writes.
    let mut engine = Harness::new(vec![pool("default", &["192.168.2.64/26"], None)], services);
    let limit = EngineSettings::default().write_concurrency;

    // Status writes come on top: one per pool or advertisement at most, and only when it changed.
    let per_service = |effects: &[Effect]| {
        effects
            .iter()
            .filter(|e| !matches!(e, Effect::WritePoolStatus { .. } | Effect::WriteAdvertisementStatus { .. }))
            .count()
    };
    let first = engine.turn(0);
    assert_eq!(per_service(&first), limit, "the budget is used, and not exceeded");
    assert_eq!(per_service(&engine.turn(100)), 0, "nothing more until a write ends");
    // The status writes end, and one Service write.
    let statuses =
        first.iter().filter(|e| matches!(e, Effect::WritePoolStatus { .. } | Effect::WriteAdvertisementStatus { .. }));
    let one_service = first.iter().find(|e| matches!(e, Effect::WriteService { .. }));
    for done in statuses.chain(one_service) {
        engine.state.on_write_done(succeeded(done), Duration::ZERO, engine.at(100));
    }
    // Room again: the next Service is looked at, and its write comes with its Event.
    let more = per_service(&engine.turn(200));
    assert!((1..=2).contains(&more), "{more} writes handed out for one freed place");
}

#[test]
fn a_failed_service_write_is_retried_after_the_delay() {
    let mut engine =
        Harness::new(vec![pool("default", &["192.168.2.10/32"], None)], vec![service("web", 1, &[], &["IPv4"])]);
    let written = engine.turn(0);
    let failed = WriteDone::Service {
        key: key("web"),
        result: Err(kube::Error::Api(Box::new(
            kube::core::Status::failure("too busy", "TooManyRequests").with_code(429),
        ))),
    };
    assert!(written.iter().any(|e| matches!(e, Effect::WriteService { .. })));
    let retry = engine.state.on_write_done(failed, Duration::ZERO, engine.at(0));
    assert_eq!(retry, [Effect::RetryService { key: key("web"), after: EngineSettings::default().retry_delay }]);
    engine.state.on_write_done(WriteDone::Retry { key: key("web") }, Duration::ZERO, engine.at(2_000));
    assert_eq!(
        service_writes(&engine.turn(3_000)).get("web").map(Vec::as_slice),
        Some(&["192.168.2.10".to_owned()][..])
    );
}

#[test]
fn during_an_outage_the_record_keeps_its_announcers() {
    let mut engine =
        Harness::new(vec![pool("default", &["192.168.2.10/32"], None)], vec![service("web", 1, &[], &["IPv4"])]);
    let before = engine.settle(0);
    let node = pool_statuses(&before).pop().and_then(|s| s.allocations[0].node.clone()).expect("an announcer");

    // Nobody renews any more (the API server is gone): every Lease expires on this replica's
    // clock, but with no node renewing none of them is judged dead, so nothing is rewritten.
    let during = engine.settle(10 * LEASE.as_millis() as u64);
    assert!(pool_statuses(&during).is_empty(), "the record is not rewritten from a stale view: {during:?}");

    // One node renews again, the announcer does not: now its silence means something.
    let renewed: Vec<&str> = NODES.into_iter().filter(|n| *n != node).collect();
    let at = engine.at(21_000);
    let lease = engine.lease(renewed[0]);
    engine.state.on_lease(Event::Apply(lease), at);
    let after = engine.settle(22_000);
    let moved = pool_statuses(&after).pop().and_then(|s| s.allocations[0].node.clone());
    assert!(moved.is_some_and(|n| n != node), "a node silent while a peer renews is replaced: {after:?}");
}

#[test]
fn while_the_api_server_is_strained_the_record_keeps_who_announces() {
    let mut engine =
        Harness::new(vec![pool("default", &["192.168.2.10/32"], None)], vec![service("web", 1, &[], &["IPv4"])]);
    let before = engine.settle(0);
    let node = pool_statuses(&before).pop().and_then(|s| s.allocations[0].node.clone()).expect("an announcer");
    let others: Vec<&str> = NODES.into_iter().filter(|n| *n != node).collect();

    // A write fails as an overloaded API server fails it.
    let unavailable = kube::core::Status::failure("etcdserver: request timed out", "ServiceUnavailable").with_code(503);
    let failed = WriteDone::Event { result: Err(kube::Error::Api(Box::new(unavailable))) };
    engine.state.on_write_done(failed, Duration::ZERO, engine.at(1_000));
    // The other nodes' renewals get through, the announcer's do not.
    for at in [1_500, 3_000, 4_500, 6_000] {
        for other in &others {
            let lease = engine.lease(other);
            engine.state.on_lease(Event::Apply(lease), engine.at(at));
        }
    }
    let during = engine.settle(6_000);
    assert!(
        pool_statuses(&during).iter().all(|s| s.allocations[0].node.as_ref() == Some(&node)),
        "the record is not rewritten from Leases judged while strained: {during:?}"
    );

    // Ten seconds after the last sign of strain, the announcer is still silent: now it counts.
    for other in &others {
        let lease = engine.lease(other);
        engine.state.on_lease(Event::Apply(lease), engine.at(11_500));
    }
    let after = engine.settle(12_000);
    let moved = pool_statuses(&after).pop().and_then(|s| s.allocations[0].node.clone());
    assert!(moved.is_some_and(|n| n != node), "after the strain the record follows the Leases: {after:?}");
}

/// What the record says of `web`'s addresses found in use, in the last slice written.
fn recorded_in_use(effects: &[Effect]) -> Option<Vec<String>> {
    let mut slices = effects.iter().filter_map(|effect| match effect {
        Effect::WriteSlice { write: super::record::SliceWrite::Apply { status, .. }, .. } => Some(status),
        _ => None,
    });
    slices.next_back().map(|status| status.allocations[0].in_use.clone())
}

#[test]
fn an_address_found_in_use_stays_recorded_after_the_report_ends_with_its_speaker() {
    let mut engine =
        Harness::new(vec![pool("default", &["192.168.2.10/32"], None)], vec![service("web", 1, &[], &["IPv4"])]);
    let before = engine.settle(0);
    assert_eq!(recorded_in_use(&before), Some(vec![]));
    let conflict = ironlb_core::announcer::PublishedConflict {
        address: "192.168.2.10".to_owned(),
        mac: "02:00:c0:a8:02:fa".to_owned(),
        interface: "eth0".to_owned(),
        in_use: true,
    };
    let reporting = engine.lease_reporting("node-a", vec![conflict]);
    engine.state.on_lease(Event::Apply(reporting), engine.at(1_000));
    let marked = engine.settle(1_000);
    assert_eq!(recorded_in_use(&marked), Some(vec!["192.168.2.10".to_owned()]), "{marked:?}");

    // The reporting speaker restarts: its new Lease reports nothing yet. The mark stays, so its
    // successor (or it, restarted) probes before announcing.
    let mut at = 1_500;
    for _ in 0..3 {
        for node in NODES {
            let lease = engine.lease(node);
            engine.state.on_lease(Event::Apply(lease), engine.at(at));
        }
        assert_eq!(recorded_in_use(&engine.settle(at)), None, "nothing rewritten at {at} ms");
        at += 1_000;
    }
    // Ten minutes after the last report, with every speaker renewing, the mark is forgotten.
    let late = super::announcers::IN_USE_MEMORY.as_millis() as u64 + 1_500;
    for node in NODES {
        let lease = engine.lease(node);
        engine.state.on_lease(Event::Apply(lease), engine.at(late));
    }
    assert_eq!(recorded_in_use(&engine.settle(late)), Some(vec![]));
}

#[test]
fn a_lease_relist_applies_only_once_complete() {
    let mut engine =
        Harness::new(vec![pool("default", &["192.168.2.10/32"], None)], vec![service("web", 1, &[], &["IPv4"])]);
    let first = engine.settle(0);
    let node = pool_statuses(&first).pop().and_then(|s| s.allocations[0].node.clone()).expect("an announcer");

    // A relist starts (a restarted watch) and delivers only one other node before the turn: a
    // half list must not make the announcer look gone.
    engine.state.on_lease(Event::Init, engine.at(500));
    let other = NODES.into_iter().find(|n| *n != node).expect("three nodes");
    let lease = engine.lease(other);
    engine.state.on_lease(Event::InitApply(lease), engine.at(500));
    assert!(pool_statuses(&engine.settle(600)).is_empty(), "nothing decided from half a list");

    // Complete without the announcer's Lease: it is gone.
    engine.state.on_lease(Event::InitDone, engine.at(700));
    let after = engine.settle(800);
    let now = pool_statuses(&after).pop().and_then(|s| s.allocations[0].node.clone());
    assert!(now.is_some_and(|n| n != node), "the relist without it moves the address: {after:?}");
}

#[test]
fn an_endpoint_slice_relist_is_judged_by_what_it_changes() {
    let mut engine =
        Harness::new(vec![pool("default", &["192.168.2.10/32"], None)], vec![service("web", 1, &[], &["IPv4"])]);
    engine.settle(0);
    engine.state.on_endpoint_slice(Event::<EndpointSlice>::Init);
    engine.state.on_endpoint_slice(Event::InitApply(ready_slice("web")));
    engine.state.on_endpoint_slice(Event::InitDone);
    assert!(pool_statuses(&engine.settle(1_000)).is_empty(), "an identical relist rewrites no status");

    // A relist without the slice: the Service lost its endpoints, and the record says so.
    engine.state.on_endpoint_slice(Event::<EndpointSlice>::Init);
    engine.state.on_endpoint_slice(Event::InitDone);
    let after = engine.settle(2_000);
    let status = pool_statuses(&after).pop().expect("the status is rewritten");
    assert!(!status.allocations[0].serving && status.allocations[0].node.is_none(), "{status:?}");
}

#[test]
fn an_unreadable_object_is_reported_once_per_version_and_only_by_the_leader() {
    let mut engine = Harness::new(vec![pool("default", &["192.168.2.10/32"], None)], vec![]);
    let unreadable = |version: &str| ironlb_daemon::Unreadable {
        object: k8s_openapi::api::core::v1::ObjectReference {
            kind: Some("L2Advertisement".to_owned()),
            name: Some("old".to_owned()),
            uid: Some("u-1".to_owned()),
            resource_version: Some(version.to_owned()),
            ..Default::default()
        },
        error: "invalid type: string \"eth0\", expected a sequence".to_owned(),
    };
    assert!(engine.state.on_unreadable(unreadable("1")).is_empty(), "a standby posts nothing");
    engine.settle(0);

    let first = engine.state.on_unreadable(unreadable("1"));
    let reported = events(&first);
    assert_eq!(reported.len(), 1);
    assert_eq!((reported[0].0, reported[0].1.as_str()), (reason::UNREADABLE_OBJECT, "old"));
    assert!(reported[0].2.contains("expected a sequence"), "the Event says why: {}", reported[0].2);
    assert!(engine.state.on_unreadable(unreadable("1")).is_empty(), "a relist of the same version: no new Event");
    assert_eq!(events(&engine.state.on_unreadable(unreadable("2"))).len(), 1, "a new version is news");
}

/// The statuses written on L2Advertisements among `effects`, by name.
fn advertisement_statuses(effects: &[Effect]) -> BTreeMap<String, ironlb_core::v1alpha1::L2AdvertisementStatus> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::WriteAdvertisementStatus { advertisement, status } => Some((advertisement.clone(), status.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_leader_says_in_its_ready_condition_whether_each_advertisement_applies() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    let mut engine = Harness::new(vec![pool("default", &["192.168.2.10/32"], None)], vec![]);
    let written = engine.settle(0);
    let ready = &advertisement_statuses(&written)["everywhere"].conditions[0];
    assert_eq!((ready.type_.as_str(), ready.status.as_str()), ("Ready", "True"));

    // Written once: the cache shows the status the leader wrote, and nothing is written again.
    let mut everywhere = L2Advertisement::new("everywhere", L2AdvertisementSpec::default());
    everywhere.status = Some(advertisement_statuses(&written)["everywhere"].clone());
    engine.state.on_advertisement(Event::Apply(everywhere));
    assert!(advertisement_statuses(&engine.settle(1_000)).is_empty());

    let requirement = LabelSelectorRequirement { key: "zone".to_owned(), operator: "in".to_owned(), values: None };
    let typo = L2AdvertisementSpec {
        node_selectors: vec![LabelSelector { match_expressions: Some(vec![requirement]), match_labels: None }],
        ..L2AdvertisementSpec::default()
    };
    engine.state.on_advertisement(Event::Apply(L2Advertisement::new("typo", typo)));
    let statuses = advertisement_statuses(&engine.settle(2_000));
    let ready = &statuses["typo"].conditions[0];
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidSelector"));
    assert!(ready.message.contains(r#"spec.nodeSelectors[0]: label selector operator "in""#), "{}", ready.message);
    assert!(!statuses.contains_key("everywhere"), "only what changed is written");
}

#[test]
fn a_pool_holding_a_node_address_gets_one_warning_naming_the_node() {
    // Every harness node publishes 192.168.2.2 on eth0.
    let mut engine = Harness::new(vec![pool("default", &["192.168.2.0/28"], None)], vec![]);
    let written = engine.settle(0);
    let warnings: Vec<_> =
        events(&written).into_iter().filter(|(reason, _, _)| *reason == reason::NODE_ADDRESS_IN_POOL).collect();
    let [(_, regarding, message)] = warnings.as_slice() else { panic!("one warning: {warnings:?}") };
    assert_eq!(regarding, "default");
    assert!(message.contains(r#"has address 192.168.2.2 inside spec.addresses entry "192.168.2.0/28""#), "{message}");
    assert!(NODES.iter().any(|node| message.contains(&format!("node {node} "))), "{message}");
    let status = pool_statuses(&written).pop().expect("the pool status is written");
    let condition = status.conditions.iter().find(|c| c.type_ == "NodeAddressInPool").expect("the condition");
    assert_eq!(condition.status, "True");
}
