//! The node Lease against a scripted API server (`tower_test`): each request is asserted (method,
//! path, body fields, `resourceVersion`, preconditions) and answered by the test. Time is paused,
//! so the renew interval is exact.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower_test::mock::{self, Handle, SendResponse};

use super::{LeaseError, LeaseSettings, NodeLease, lease_expires_at, lease_is_live, lease_node};

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/ironlb-system/leases";
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ironlb-system/leases/ironlb-speaker-node-a";
const NODE: &str = "node-a";
const ME: &str = "ironlb-speaker-x7k2p";
const OTHER: &str = "ironlb-speaker-q9z4m";
const INTERVAL: Duration = Duration::from_millis(500);

/// A request from the speaker, with the means to answer it.
struct Exchange {
    body: Value,
    respond: SendResponse<Response<Body>>,
}

impl Exchange {
    fn json(self, status: StatusCode, body: &Value) {
        let bytes = serde_json::to_vec(body).expect("serialisable body");
        let response = Response::builder().status(status).body(Body::from(bytes)).expect("valid response");
        self.respond.send_response(response);
    }

    /// Stores the written object as the API server would: new `resourceVersion`, a fixed `uid`.
    fn store(self, status: StatusCode, resource_version: &str) {
        let mut stored = self.body.clone();
        stored["metadata"]["resourceVersion"] = json!(resource_version);
        stored["metadata"]["uid"] = json!("uid-1");
        self.json(status, &stored);
    }

    fn status(self, code: u16, reason: &str) {
        let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "reason": reason, "message": reason, "code": code});
        self.json(StatusCode::from_u16(code).expect("status code"), &body);
    }

    fn spec(&self, field: &str) -> &Value {
        &self.body["spec"][field]
    }

    fn meta(&self, field: &str) -> &Value {
        &self.body["metadata"][field]
    }
}

struct Server(Handle<Request<Body>, Response<Body>>);

impl Server {
    async fn expect(&mut self, method: Method, path: &str) -> Exchange {
        let (request, respond) = self.0.next_request().await.expect("the speaker sends a request");
        let (parts, body) = request.into_parts();
        assert_eq!((&parts.method, parts.uri.path()), (&method, path), "unexpected request");
        let bytes = body.collect_bytes().await.expect("request body");
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
        Exchange { body, respond }
    }

    /// The first tick of a fresh node: the Lease is missing, so the speaker creates it.
    async fn create(&mut self) -> Exchange {
        self.expect(Method::GET, LEASE).await.status(404, "NotFound");
        self.expect(Method::POST, LEASES).await
    }
}

struct Speaker {
    server: Server,
    renewed: watch::Receiver<Option<Instant>>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), LeaseError>>,
}

fn start() -> Speaker {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut lease =
        NodeLease::new(client, "ironlb-system", NODE, ME, LeaseSettings::default()).expect("valid node lease");
    let renewed = lease.renewed();
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        lease
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    Speaker { server: Server(handle), renewed, shutdown, task }
}

/// A Lease as stored, written by `holder`.
fn stored(holder: &str, resource_version: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "ironlb-speaker-node-a", "namespace": "ironlb-system",
                     "uid": "uid-1", "resourceVersion": resource_version},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 2, "leaseTransitions": 0,
                 "acquireTime": "2020-01-01T00:00:00.000000Z", "renewTime": "2020-01-01T00:00:00.000000Z"},
    })
}

#[tokio::test(start_paused = true)]
async fn missing_lease_is_created_with_labels_then_renewed_on_the_interval() {
    let mut speaker = start();
    let started = Instant::now();

    let create = speaker.server.create().await;
    assert_eq!(create.meta("name"), "ironlb-speaker-node-a");
    assert_eq!(create.meta("resourceVersion"), &Value::Null, "a create is not conditional");
    assert_eq!(
        create.meta("labels"),
        &json!({"app.kubernetes.io/name": "ironlb", "app.kubernetes.io/component": "speaker", "ironlb.io/node": NODE})
    );
    assert_eq!(create.spec("holderIdentity"), ME);
    assert_eq!(create.spec("leaseDurationSeconds"), 2);
    assert!(create.spec("acquireTime").is_string() && create.spec("renewTime").is_string());
    let acquired = create.spec("acquireTime").clone();
    create.store(StatusCode::CREATED, "1");

    speaker.renewed.wait_for(Option::is_some).await.expect("lease runs");
    assert_eq!(*speaker.renewed.borrow(), Some(started), "the renewal is dated from when it was sent");

    let renew = speaker.server.expect(Method::PUT, LEASE).await;
    assert_eq!(started.elapsed(), INTERVAL, "renews every renew interval");
    assert_eq!(renew.meta("resourceVersion"), "1", "conditioned on the version just written");
    assert_eq!(renew.meta("labels")["ironlb.io/node"], NODE);
    assert_eq!(renew.spec("holderIdentity"), ME);
    assert_eq!(renew.spec("acquireTime"), &acquired, "a renewal keeps the acquire time");
    assert_eq!(renew.spec("leaseTransitions"), 0);
    renew.store(StatusCode::OK, "2");

    let renew = speaker.server.expect(Method::PUT, LEASE).await;
    assert_eq!(started.elapsed(), 2 * INTERVAL);
    assert_eq!(renew.meta("resourceVersion"), "2", "each renewal builds on the previous one");
    assert_eq!(*speaker.renewed.borrow_and_update(), Some(started + INTERVAL));
    renew.store(StatusCode::OK, "3");
    speaker.renewed.changed().await.expect("lease runs");
    assert_eq!(*speaker.renewed.borrow(), Some(started + 2 * INTERVAL));
}

#[tokio::test(start_paused = true)]
async fn lease_left_by_the_previous_pod_on_this_node_is_taken_over_at_once() {
    let mut speaker = start();

    // Unlabelled, as an older speaker or a person may have left it; held by a pod that is gone.
    speaker.server.expect(Method::GET, LEASE).await.json(StatusCode::OK, &stored(OTHER, "7"));
    let takeover = speaker.server.expect(Method::PUT, LEASE).await;
    assert_eq!(takeover.meta("resourceVersion"), "7");
    assert_eq!(takeover.meta("labels")["app.kubernetes.io/component"], "speaker", "labels are restored");
    assert_eq!(takeover.spec("holderIdentity"), ME);
    assert_eq!(takeover.spec("leaseTransitions"), 1);
    assert_ne!(takeover.spec("acquireTime"), "2020-01-01T00:00:00.000000Z", "a new holder acquires anew");
    takeover.store(StatusCode::OK, "8");
    speaker.renewed.wait_for(Option::is_some).await.expect("lease runs");
}

#[tokio::test(start_paused = true)]
async fn renewal_keeps_going_after_api_server_errors() {
    let mut speaker = start();
    speaker.server.create().await.store(StatusCode::CREATED, "1");
    let first = *speaker.renewed.wait_for(Option::is_some).await.expect("lease runs");

    for _ in 0..3 {
        speaker.server.expect(Method::PUT, LEASE).await.status(500, "InternalError");
    }
    let retry = speaker.server.expect(Method::PUT, LEASE).await;
    assert_eq!(retry.meta("resourceVersion"), "1", "retries the same condition after a failure");
    assert_eq!(*speaker.renewed.borrow(), first, "failures do not count as renewals");
    assert!(!speaker.task.is_finished(), "API errors never end the lease task");
    retry.store(StatusCode::OK, "2");

    speaker.renewed.changed().await.expect("lease runs");
    assert_eq!(speaker.renewed.borrow().map(|at| at - first.expect("renewed")), Some(4 * INTERVAL));
}

#[tokio::test(start_paused = true)]
async fn conflict_is_read_again_and_the_next_tick_writes_on_the_new_version() {
    let mut speaker = start();
    speaker.server.create().await.store(StatusCode::CREATED, "1");

    speaker.server.expect(Method::PUT, LEASE).await.status(409, "Conflict");
    let conflict_at = Instant::now();
    speaker.server.expect(Method::GET, LEASE).await.json(StatusCode::OK, &stored(OTHER, "5"));
    assert_eq!(conflict_at.elapsed(), Duration::ZERO, "re-read at once");

    let renew = speaker.server.expect(Method::PUT, LEASE).await;
    assert_eq!(conflict_at.elapsed(), INTERVAL, "written at the next tick");
    assert_eq!(renew.meta("resourceVersion"), "5");
    assert_eq!(renew.spec("holderIdentity"), ME);
    renew.store(StatusCode::OK, "6");
}

#[tokio::test(start_paused = true)]
async fn shutdown_deletes_the_lease_on_its_uid_and_version() {
    let mut speaker = start();
    speaker.server.create().await.store(StatusCode::CREATED, "1");
    speaker.renewed.wait_for(Option::is_some).await.expect("lease runs");

    speaker.shutdown.send(()).expect("lease listens for shutdown");
    let delete = speaker.server.expect(Method::DELETE, LEASE).await;
    assert_eq!(delete.body["preconditions"], json!({"uid": "uid-1", "resourceVersion": "1"}));
    delete.json(StatusCode::OK, &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));

    speaker.task.await.expect("lease task").expect("deleted");
    assert_eq!(*speaker.renewed.borrow(), None, "not renewed any more");
}

#[tokio::test(start_paused = true)]
async fn shutdown_leaves_a_lease_that_a_newer_pod_holds() {
    let mut speaker = start();
    speaker.server.create().await.store(StatusCode::CREATED, "1");
    speaker.renewed.wait_for(Option::is_some).await.expect("lease runs");

    speaker.shutdown.send(()).expect("lease listens for shutdown");
    speaker.server.expect(Method::DELETE, LEASE).await.status(409, "Conflict");
    speaker.server.expect(Method::GET, LEASE).await.json(StatusCode::OK, &stored(OTHER, "4"));
    speaker.task.await.expect("lease task").expect("a lease held by another pod is not an error");
}

#[tokio::test(start_paused = true)]
async fn shutdown_deletes_after_a_renewal_that_landed_late() {
    let mut speaker = start();
    speaker.server.create().await.store(StatusCode::CREATED, "1");
    speaker.renewed.wait_for(Option::is_some).await.expect("lease runs");

    speaker.shutdown.send(()).expect("lease listens for shutdown");
    speaker.server.expect(Method::DELETE, LEASE).await.status(409, "Conflict");
    speaker.server.expect(Method::GET, LEASE).await.json(StatusCode::OK, &stored(ME, "2"));
    let delete = speaker.server.expect(Method::DELETE, LEASE).await;
    assert_eq!(delete.body["preconditions"]["resourceVersion"], "2");
    delete.json(StatusCode::OK, &stored(ME, "2"));
    speaker.task.await.expect("lease task").expect("deleted");
}

fn lease(holder: Option<&str>, seconds: Option<i32>) -> Lease {
    serde_json::from_value(json!({
        "metadata": {"name": "ironlb-speaker-node-b"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds},
    }))
    .expect("a Lease")
}

#[test]
fn lease_is_live_for_its_duration_from_local_observation() {
    let seen = Instant::now();
    let s = Duration::from_secs;
    let cases = [
        (lease(Some(OTHER), Some(2)), Duration::ZERO, true),
        (lease(Some(OTHER), Some(2)), Duration::from_millis(1_999), true),
        (lease(Some(OTHER), Some(2)), s(2), false),
        (lease(Some(OTHER), Some(2)), s(60), false),
        (lease(Some(OTHER), Some(40)), s(39), true),
        (lease(None, Some(2)), Duration::ZERO, false),
        (lease(Some(""), Some(2)), Duration::ZERO, false),
        (lease(Some(OTHER), None), Duration::ZERO, false),
        (lease(Some(OTHER), Some(0)), Duration::ZERO, false),
        (lease(Some(OTHER), Some(-5)), Duration::ZERO, false),
    ];
    for (lease, after, live) in cases {
        assert_eq!(lease_is_live(&lease, seen, seen + after), live, "{:?} after {after:?}", lease.spec);
    }
    assert_eq!(lease_expires_at(&lease(Some(OTHER), Some(2)), seen), Some(seen + s(2)));
    assert_eq!(lease_node(&lease(Some(OTHER), Some(2))), Some("node-b"));
}

#[test]
fn lease_is_never_judged_by_the_holders_clock() {
    // A renewTime far in the past (a skewed holder) does not make a freshly observed Lease dead.
    let mut skewed = lease(Some(OTHER), Some(2));
    let spec = skewed.spec.as_mut().expect("spec");
    spec.renew_time = serde_json::from_value(json!("2001-01-01T00:00:00.000000Z")).expect("MicroTime");
    let seen = Instant::now();
    assert!(lease_is_live(&skewed, seen, seen + Duration::from_secs(1)));
}

#[test]
fn settings_are_validated_and_rounded_up_to_whole_seconds() {
    let defaults = LeaseSettings::default();
    assert!(defaults.validate().is_ok());
    assert_eq!(defaults.lease_duration_seconds(), 2);
    let settings = LeaseSettings { duration: Duration::from_millis(2_500), ..defaults };
    assert!(settings.validate().is_ok());
    assert_eq!(settings.lease_duration_seconds(), 3, "peers wait at least as long as asked");
    assert!(LeaseSettings { renew_interval: Duration::from_secs(1), ..defaults }.validate().is_ok(), "half is enough");

    let invalid = [
        LeaseSettings { renew_interval: Duration::ZERO, ..defaults },
        LeaseSettings { duration: Duration::from_millis(900), renew_interval: Duration::from_millis(300) },
        LeaseSettings { renew_interval: defaults.duration, ..defaults },
        LeaseSettings { renew_interval: Duration::from_millis(1_001), ..defaults },
        LeaseSettings { renew_interval: Duration::from_secs(3), ..defaults },
        LeaseSettings { duration: Duration::from_secs(u64::MAX), ..defaults },
    ];
    for settings in invalid {
        assert!(matches!(settings.validate(), Err(LeaseError::InvalidSettings(_))), "{settings:?}");
    }
}

#[tokio::test]
async fn names_that_cannot_make_a_lease_are_refused_and_long_nodes_go_unlabelled() {
    let (service, _handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let new = |node: &str, identity: &str| {
        NodeLease::new(client.clone(), "ironlb-system", node, identity, LeaseSettings::default())
    };
    assert!(matches!(new("", ME), Err(LeaseError::InvalidName { what: "node name", .. })));
    assert!(matches!(new(NODE, ""), Err(LeaseError::InvalidName { what: "identity", .. })));
    assert!(matches!(new(&"n".repeat(240), ME), Err(LeaseError::InvalidName { .. })));

    // 100 characters: a valid node name and Lease name, but too long for a label value.
    let long = "n".repeat(100);
    let lease = new(&long, ME).expect("valid node lease");
    let labels = lease.labels();
    assert!(!labels.contains_key(super::NODE_LABEL));
    assert_eq!(labels["app.kubernetes.io/name"], "ironlb");
    assert_eq!(new(NODE, ME).expect("valid node lease").labels()[super::NODE_LABEL], NODE);
}

#[tokio::test(start_paused = true)]
async fn lease_deleted_by_someone_else_is_created_again_at_the_next_tick() {
    let mut speaker = start();
    speaker.server.create().await.store(StatusCode::CREATED, "1");

    speaker.server.expect(Method::PUT, LEASE).await.status(404, "NotFound");
    let recreate = speaker.server.create().await;
    assert_eq!(recreate.meta("resourceVersion"), &Value::Null);
    assert_eq!(recreate.spec("holderIdentity"), ME);
    recreate.store(StatusCode::CREATED, "9");
    assert_eq!(speaker.server.expect(Method::PUT, LEASE).await.meta("resourceVersion"), "9");
}
