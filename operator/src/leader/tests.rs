//! The elector against a scripted API server: every request it sends is asserted (method, path,
//! body fields, `resourceVersion`) and answered by the test. Time is paused, so "15 seconds" is
//! exact and instant.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower_test::mock::{self, Handle, SendResponse};

use super::{ElectionSettings, LeaderElector, LeaderError, Leadership};

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/ironlb-system/leases";
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ironlb-system/leases/ironlb-operator";
const ME: &str = "operator-a";
const OTHER: &str = "operator-b";

/// One request the elector sent, waiting for its answer.
struct Call {
    method: Method,
    path: String,
    body: Value,
    respond: SendResponse<Response<Body>>,
}

impl Call {
    fn reply(self, status: StatusCode, body: &Value) {
        let bytes = serde_json::to_vec(body).expect("JSON body");
        self.respond.send_response(Response::builder().status(status).body(Body::from(bytes)).expect("response"));
    }

    /// Answers a create or replace as the API server does: the object as written, with a new version.
    fn accept(self, status: StatusCode, resource_version: &str) {
        let mut written = self.body.clone();
        written["metadata"]["resourceVersion"] = json!(resource_version);
        self.reply(status, &written);
    }

    fn fail(self, code: u16, reason: &str) {
        let status = StatusCode::from_u16(code).expect("status code");
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": reason, "code": code, "message": reason,
        });
        self.reply(status, &body);
    }

    fn spec(&self, field: &str) -> &Value {
        &self.body["spec"][field]
    }

    fn resource_version(&self) -> &Value {
        &self.body["metadata"]["resourceVersion"]
    }
}

struct ApiServer {
    handle: Handle<Request<Body>, Response<Body>>,
}

impl ApiServer {
    async fn next(&mut self) -> Call {
        let (request, respond) = self.handle.next_request().await.expect("the elector sends a request");
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let bytes = request.into_body().collect_bytes().await.expect("request body");
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON request") };
        Call { method, path, body, respond }
    }

    async fn expect(&mut self, method: Method, path: &str) -> Call {
        let call = self.next().await;
        assert_eq!((&call.method, call.path.as_str()), (&method, path), "unexpected request");
        call
    }

    /// Lets the elector create the Lease, as the first replica of a fresh install does.
    async fn grant_by_create(&mut self, resource_version: &str) {
        self.expect(Method::GET, LEASE).await.fail(404, "NotFound");
        self.expect(Method::POST, LEASES).await.accept(StatusCode::CREATED, resource_version);
    }
}

struct Replica {
    api: ApiServer,
    leadership: Leadership,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<(LeaderElector, Result<(), LeaderError>)>,
}

/// Starts `run` for replica `ME` with the default settings against a scripted API server.
fn start() -> Replica {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut elector = LeaderElector::new(client, "ironlb-system", "ironlb-operator", ME, ElectionSettings::default())
        .expect("valid settings");
    let leadership = elector.leadership();
    let (shutdown, stop) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let result = elector
            .run(async {
                let _ = stop.await;
            })
            .await;
        (elector, result)
    });
    Replica { api: ApiServer { handle }, leadership, shutdown, task }
}

/// A Lease as the API server returns it. The renew time is from long ago on purpose: the elector
/// must not judge expiry by another machine's clock.
fn lease(holder: &str, resource_version: &str, transitions: i32) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "ironlb-operator", "namespace": "ironlb-system", "resourceVersion": resource_version},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "leaseTransitions": transitions,
            "acquireTime": "2020-01-01T00:00:00.000000Z",
            "renewTime": "2020-01-01T00:00:00.000000Z",
        },
    })
}

#[tokio::test(start_paused = true)]
async fn missing_lease_is_created_and_then_renewed_without_reading_it() {
    let mut replica = start();

    replica.api.expect(Method::GET, LEASE).await.fail(404, "NotFound");
    let create = replica.api.expect(Method::POST, LEASES).await;
    assert_eq!(create.body["metadata"]["name"], "ironlb-operator");
    assert_eq!(create.resource_version(), &Value::Null, "a create carries no resourceVersion");
    assert_eq!(create.spec("holderIdentity"), ME);
    assert_eq!(create.spec("leaseDurationSeconds"), 15);
    assert_eq!(create.spec("leaseTransitions"), 0);
    assert!(create.spec("acquireTime").is_string() && create.spec("renewTime").is_string());
    create.accept(StatusCode::CREATED, "1");

    replica.leadership.acquired().await.expect("elector runs");
    assert!(replica.leadership.is_leader());
    let acquired_at = Instant::now();

    let renew = replica.api.expect(Method::PUT, LEASE).await;
    assert_eq!(acquired_at.elapsed(), Duration::from_secs(2), "renews every retry period");
    assert_eq!(renew.resource_version(), "1");
    assert_eq!(renew.spec("holderIdentity"), ME);
    assert_eq!(renew.spec("leaseTransitions"), 0, "a renewal is not a transition");
    renew.accept(StatusCode::OK, "2");

    let renew = replica.api.expect(Method::PUT, LEASE).await;
    assert_eq!(renew.resource_version(), "2", "each renewal is conditioned on the previous one");
    renew.accept(StatusCode::OK, "3");
    assert!(replica.leadership.is_leader());
}

#[tokio::test(start_paused = true)]
async fn lost_create_race_leaves_the_replica_standing_by() {
    let mut replica = start();

    replica.api.expect(Method::GET, LEASE).await.fail(404, "NotFound");
    replica.api.expect(Method::POST, LEASES).await.fail(409, "AlreadyExists");
    assert!(!replica.leadership.is_leader());

    replica.api.expect(Method::GET, LEASE).await.reply(StatusCode::OK, &lease(OTHER, "1", 0));
    replica.api.expect(Method::GET, LEASE).await.reply(StatusCode::OK, &lease(OTHER, "1", 0));
    assert!(!replica.leadership.is_leader());
}

#[tokio::test(start_paused = true)]
async fn holder_that_keeps_renewing_is_never_displaced() {
    let mut replica = start();
    let started = Instant::now();

    // Twice the lease duration, with the holder renewing between every two reads.
    let mut version = 10;
    while started.elapsed() < Duration::from_secs(30) {
        let read = replica.api.expect(Method::GET, LEASE).await;
        let mut renewed = lease(OTHER, &version.to_string(), 0);
        renewed["spec"]["renewTime"] = json!(format!("2020-01-01T00:00:{:02}.000000Z", version % 60));
        read.reply(StatusCode::OK, &renewed);
        version += 1;
        assert!(!replica.leadership.is_leader());
    }
}

#[tokio::test(start_paused = true)]
async fn expired_lease_is_taken_over_after_a_full_local_lease_duration() {
    let mut replica = start();

    let first = replica.api.expect(Method::GET, LEASE).await;
    let first_seen = Instant::now();
    first.reply(StatusCode::OK, &lease(OTHER, "7", 3));

    // The holder has gone silent; the elector keeps reading the unchanged record until its own
    // clock says a lease duration has passed, then writes.
    let takeover = loop {
        let call = replica.api.next().await;
        if call.method != Method::GET {
            break call;
        }
        assert!(!replica.leadership.is_leader());
        call.reply(StatusCode::OK, &lease(OTHER, "7", 3));
    };
    assert_eq!((&takeover.method, takeover.path.as_str()), (&Method::PUT, LEASE));
    let waited = first_seen.elapsed();
    assert!(waited >= Duration::from_secs(15), "took over after {waited:?}");
    assert!(waited <= Duration::from_secs(17), "took over only after {waited:?}");
    assert_eq!(takeover.resource_version(), "7", "the takeover is conditioned on the expired record");
    assert_eq!(takeover.spec("holderIdentity"), ME);
    assert_eq!(takeover.spec("leaseTransitions"), 4);
    assert_eq!(takeover.spec("leaseDurationSeconds"), 15);
    assert_ne!(takeover.spec("acquireTime"), "2020-01-01T00:00:00.000000Z");
    takeover.accept(StatusCode::OK, "8");

    replica.leadership.acquired().await.expect("elector runs");
    assert!(replica.leadership.is_leader());
}

#[tokio::test(start_paused = true)]
async fn conflict_on_takeover_means_not_leader() {
    let mut replica = start();

    // A released lease is free: the elector claims it at once.
    replica.api.expect(Method::GET, LEASE).await.reply(StatusCode::OK, &lease("", "4", 2));
    let claim = replica.api.expect(Method::PUT, LEASE).await;
    assert_eq!(claim.resource_version(), "4");
    assert_eq!(claim.spec("leaseTransitions"), 3);
    claim.fail(409, "Conflict");
    assert!(!replica.leadership.is_leader());

    // It reads again rather than retrying the stale write, and finds the winner.
    replica.api.expect(Method::GET, LEASE).await.reply(StatusCode::OK, &lease(OTHER, "5", 3));
    replica.api.expect(Method::GET, LEASE).await.reply(StatusCode::OK, &lease(OTHER, "6", 3));
    assert!(!replica.leadership.is_leader());
}

#[tokio::test(start_paused = true)]
async fn conflict_on_renewal_that_reveals_a_new_holder_ends_leadership() {
    let mut replica = start();
    replica.api.grant_by_create("1").await;
    replica.leadership.acquired().await.expect("elector runs");

    replica.api.expect(Method::PUT, LEASE).await.fail(409, "Conflict");
    replica.api.expect(Method::GET, LEASE).await.reply(StatusCode::OK, &lease(OTHER, "5", 1));

    let (_, result) = replica.task.await.expect("elector task");
    assert!(matches!(result, Err(LeaderError::TakenOver { ref holder, .. }) if holder == OTHER), "{result:?}");
    assert!(!replica.leadership.is_leader());
}

#[tokio::test(start_paused = true)]
async fn leadership_ends_when_renewals_fail_past_the_renew_deadline() {
    let Replica { mut api, mut leadership, shutdown: _shutdown, task } = start();
    api.grant_by_create("1").await;
    leadership.acquired().await.expect("elector runs");
    let acquired_at = Instant::now();

    let failing = tokio::spawn(async move {
        let mut renewals = 0;
        loop {
            let call = api.next().await;
            assert_eq!((&call.method, call.path.as_str()), (&Method::PUT, LEASE));
            call.fail(500, "InternalError");
            renewals += 1;
            if renewals == 4 {
                return api;
            }
        }
    });
    leadership.lost().await;
    assert_eq!(acquired_at.elapsed(), Duration::from_secs(10), "the gate closes at the renew deadline");

    let (_, result) = task.await.expect("elector task");
    assert!(matches!(result, Err(LeaderError::RenewDeadlineExceeded { .. })), "{result:?}");
    failing.await.expect("four renewals were tried and failed");
}

#[tokio::test(start_paused = true)]
async fn release_clears_the_holder() {
    let mut replica = start();
    replica.api.grant_by_create("1").await;
    replica.leadership.acquired().await.expect("elector runs");

    replica.shutdown.send(()).expect("elector listens for shutdown");
    let (mut elector, result) = replica.task.await.expect("elector task");
    assert!(result.is_ok(), "{result:?}");
    assert!(!replica.leadership.is_leader(), "the gate closes when run returns");

    let release = tokio::spawn(async move { elector.release().await });
    let put = replica.api.expect(Method::PUT, LEASE).await;
    assert_eq!(put.resource_version(), "1");
    assert_eq!(put.spec("holderIdentity"), &Value::Null);
    assert_eq!(put.spec("leaseDurationSeconds"), 1);
    assert_eq!(put.spec("leaseTransitions"), 0, "the next holder counts the transition");
    put.accept(StatusCode::OK, "2");
    release.await.expect("release task").expect("released");
}

#[test]
fn settings_must_leave_the_leader_time_to_stop_before_a_takeover() {
    assert!(ElectionSettings::default().validate().is_ok());
    let invalid = [
        ElectionSettings { renew_deadline: Duration::from_secs(15), ..ElectionSettings::default() },
        ElectionSettings { retry_period: Duration::from_secs(10), ..ElectionSettings::default() },
        ElectionSettings { lease_duration: Duration::from_millis(15_500), ..ElectionSettings::default() },
        ElectionSettings { retry_period: Duration::ZERO, ..ElectionSettings::default() },
    ];
    for settings in invalid {
        assert!(matches!(settings.validate(), Err(LeaderError::InvalidSettings(_))), "{settings:?}");
    }
}
