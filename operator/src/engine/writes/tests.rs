//! The writes against a scripted API server: every request an [`Effect`] turns into is asserted
//! to the byte that matters (method, path, field manager, force, content type, body), and
//! answered by the test.

use std::net::IpAddr;

use http::{Method, Request, Response, StatusCode};
use ironlb_core::events::{Note, reason};
use ironlb_core::v1alpha1::{Allocation, IPAddressPoolStatus};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

use super::{ApiWriter, Effect, WriteDone};
use crate::allocator::{Assignment, ServiceKey};

type ApiServer = Handle<Request<Body>, Response<Body>>;

/// One request as sent, and the means to answer it.
struct Call {
    method: Method,
    path_and_query: String,
    content_type: String,
    body: Value,
    respond: mock::SendResponse<Response<Body>>,
}

async fn next(server: &mut ApiServer) -> Call {
    let (request, respond) = server.next_request().await.expect("the writer sends a request");
    let method = request.method().clone();
    let path_and_query = request.uri().path_and_query().map(ToString::to_string).unwrap_or_default();
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = request.into_body().collect_bytes().await.expect("a body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON") };
    Call { method, path_and_query, content_type, body, respond }
}

impl Call {
    /// Answers as the API server does for an accepted write: the object back, with metadata.
    fn accept(self) {
        let mut object = self.body.clone();
        if object.get("metadata").is_none() {
            object["metadata"] = json!({"name": "written"});
        }
        object["metadata"]["resourceVersion"] = json!("42");
        if object["kind"] == "IPAddressPool" {
            object["spec"] = json!({"addresses": ["192.168.2.10/32"]});
        }
        if object["kind"] == "IPAllocationSlice" {
            object["spec"] = json!({"pool": "big"});
        }
        let bytes = serde_json::to_vec(&object).expect("JSON");
        self.respond
            .send_response(Response::builder().status(StatusCode::OK).body(Body::from(bytes)).expect("a response"));
    }
}

fn writer() -> (ApiWriter, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (ApiWriter::new(Client::new(service, "default"), "ironlb-operator-0"), handle)
}

const APPLY: &str = "application/apply-patch+yaml";

#[tokio::test]
async fn a_pool_status_is_applied_whole_under_the_operators_field_manager() {
    let (writer, mut server) = writer();
    let status = IPAddressPoolStatus {
        observed_generation: Some(3),
        allocations: vec![Allocation {
            namespace: "web".to_owned(),
            name: "shop".to_owned(),
            ips: vec!["192.168.2.10".to_owned()],
            serving: true,
            node: Some("node-a".to_owned()),
            interface: Some("eth0".to_owned()),
            ..Allocation::default()
        }],
        ..IPAddressPoolStatus::default()
    };
    let effect = Effect::WritePoolStatus { pool: "default".to_owned(), status };
    let job = tokio::spawn(writer.run(effect).run());

    let call = next(&mut server).await;
    assert_eq!(call.method, Method::PATCH);
    assert_eq!(
        call.path_and_query,
        "/apis/ironlb.io/v1alpha1/ipaddresspools/default/status?&force=true&fieldManager=ironlb-operator"
    );
    assert_eq!(call.content_type, APPLY);
    assert_eq!(
        call.body,
        json!({
            "apiVersion": "ironlb.io/v1alpha1", "kind": "IPAddressPool",
            "status": {
                "observedGeneration": 3,
                "allocations": [{"namespace": "web", "name": "shop", "ips": ["192.168.2.10"],
                                 "serving": true, "node": "node-a", "interface": "eth0"}],
            },
        })
    );
    call.accept();
    let done = job.await.expect("the job ends");
    assert!(matches!(done, WriteDone::PoolStatus { ref pool, result: Ok(()) } if pool == "default"), "{done:?}");
}

#[tokio::test]
async fn a_service_gets_its_status_first_and_then_its_pool_annotation() {
    let (writer, mut server) = writer();
    let address: IpAddr = "192.168.2.10".parse().expect("an address");
    let assignment = Assignment { pool: "default".to_owned(), addresses: vec![address] };
    let effect = Effect::write_service(ServiceKey::new("web", "shop"), Some(assignment));
    let job = tokio::spawn(writer.run(effect).run());

    let status = next(&mut server).await;
    assert_eq!(status.method, Method::PATCH);
    assert_eq!(
        status.path_and_query,
        "/api/v1/namespaces/web/services/shop/status?&force=true&fieldManager=ironlb-operator"
    );
    assert_eq!(status.content_type, APPLY);
    assert_eq!(
        status.body,
        json!({"apiVersion": "v1", "kind": "Service",
               "status": {"loadBalancer": {"ingress": [{"ip": "192.168.2.10", "ipMode": "VIP"}]}}})
    );
    status.accept();

    let annotation = next(&mut server).await;
    assert_eq!(
        annotation.path_and_query,
        "/api/v1/namespaces/web/services/shop?&force=true&fieldManager=ironlb-operator"
    );
    assert_eq!(
        annotation.body,
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "shop", "annotations": {"ironlb.io/allocated-from-pool": "default"}}})
    );
    annotation.accept();
    let done = job.await.expect("the job ends");
    assert!(
        matches!(&done, WriteDone::Service { result: Ok(Some(version)), .. } if version == "42"),
        "the version the annotation write made, which the watch must deliver before the Service is looked at again: \
         {done:?}"
    );
}

#[tokio::test]
async fn clearing_a_service_applies_empty_values_so_ironlb_gives_its_fields_back() {
    let (writer, mut server) = writer();
    let job = tokio::spawn(writer.run(Effect::write_service(ServiceKey::new("web", "shop"), None)).run());

    let status = next(&mut server).await;
    assert_eq!(status.body["status"], json!({"loadBalancer": {"ingress": []}}));
    status.accept();
    let annotation = next(&mut server).await;
    assert_eq!(annotation.body["metadata"], json!({"name": "shop", "annotations": {}}));
    annotation.accept();
    assert!(matches!(job.await.expect("the job ends"), WriteDone::Service { result: Ok(_), .. }));
}

#[tokio::test]
async fn an_event_is_created_in_the_namespace_of_what_it_is_about() {
    let (writer, mut server) = writer();
    let regarding = ObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("Service".to_owned()),
        namespace: Some("web".to_owned()),
        name: Some("shop".to_owned()),
        ..ObjectReference::default()
    };
    let note = Note::warning(reason::ALLOCATION_FAILED, "no pool serves IPv6".to_owned());
    let job = tokio::spawn(writer.run(Effect::PostEvent { regarding, note }).run());

    let call = next(&mut server).await;
    assert_eq!(
        (call.method.clone(), call.path_and_query.as_str()),
        (Method::POST, "/apis/events.k8s.io/v1/namespaces/web/events?")
    );
    assert_eq!(call.body["reason"], "AllocationFailed");
    assert_eq!(call.body["type"], "Warning");
    assert_eq!(call.body["note"], "no pool serves IPv6");
    assert_eq!(call.body["reportingController"], "ironlb-operator");
    assert_eq!(call.body["reportingInstance"], "ironlb-operator-0");
    assert_eq!(call.body["regarding"]["name"], "shop");
    call.accept();
    assert!(matches!(job.await.expect("the job ends"), WriteDone::Event { result: Ok(()) }));
}

#[tokio::test]
async fn a_new_slice_is_created_owned_by_its_pool_and_then_given_its_status() {
    use super::super::record::{SliceOutcome, SliceWrite};
    use ironlb_core::v1alpha1::IPAllocationSliceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    let (writer, mut server) = writer();
    let allocation = Allocation {
        namespace: "web".to_owned(),
        name: "shop".to_owned(),
        ips: vec!["192.168.2.10".to_owned()],
        serving: true,
        ..Allocation::default()
    };
    let write = SliceWrite::Apply {
        pool: "big".to_owned(),
        index: 0,
        name: "big-0".to_owned(),
        create: true,
        status: IPAllocationSliceStatus::listing(vec![allocation]),
    };
    let owner = OwnerReference {
        api_version: "ironlb.io/v1alpha1".to_owned(),
        kind: "IPAddressPool".to_owned(),
        name: "big".to_owned(),
        uid: "uid-big".to_owned(),
        controller: Some(true),
        ..OwnerReference::default()
    };
    let job = tokio::spawn(writer.run(Effect::WriteSlice { write, owner: Some(owner) }).run());

    let object = next(&mut server).await;
    assert_eq!(object.method, Method::PATCH);
    assert_eq!(
        object.path_and_query,
        "/apis/ironlb.io/v1alpha1/ipallocationslices/big-0?&force=true&fieldManager=ironlb-operator"
    );
    assert_eq!(object.content_type, APPLY);
    assert_eq!(
        object.body,
        json!({"apiVersion": "ironlb.io/v1alpha1", "kind": "IPAllocationSlice",
               "metadata": {"name": "big-0",
                            "labels": {"ironlb.io/pool": "big", "app.kubernetes.io/managed-by": "ironlb-operator"},
                            "ownerReferences": [{"apiVersion": "ironlb.io/v1alpha1", "kind": "IPAddressPool",
                                                 "name": "big", "uid": "uid-big", "controller": true}]},
               "spec": {"pool": "big"}})
    );
    object.accept();
    let status = next(&mut server).await;
    assert_eq!(
        status.path_and_query,
        "/apis/ironlb.io/v1alpha1/ipallocationslices/big-0/status?&force=true&fieldManager=ironlb-operator"
    );
    assert_eq!(status.body["status"]["allocationCount"], json!(1));
    assert_eq!(status.body["status"]["allocations"][0]["name"], json!("shop"));
    status.accept();
    let done = job.await.expect("the job ends");
    assert!(
        matches!(done, WriteDone::Slice { ref pool, index: 0, deleted: false, outcome: SliceOutcome::Written, error: None } if pool == "big"),
        "{done:?}"
    );
}

#[tokio::test]
async fn a_slice_the_api_server_lost_is_reported_missing_and_an_empty_one_is_deleted() {
    use super::super::record::{SliceOutcome, SliceWrite};
    use ironlb_core::v1alpha1::IPAllocationSliceStatus;
    let (writer, mut server) = writer();
    let write = SliceWrite::Apply {
        pool: "big".to_owned(),
        index: 1,
        name: "big-1".to_owned(),
        create: false,
        status: IPAllocationSliceStatus::default(),
    };
    let job = tokio::spawn(writer.run(Effect::WriteSlice { write, owner: None }).run());
    let status = next(&mut server).await;
    assert!(status.path_and_query.starts_with("/apis/ironlb.io/v1alpha1/ipallocationslices/big-1/status?"));
    let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                           "message": "ipallocationslices.ironlb.io \"big-1\" not found"});
    status.respond.send_response(
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from(serde_json::to_vec(&not_found).expect("JSON")))
            .expect("a response"),
    );
    let done = job.await.expect("the job ends");
    assert!(matches!(done, WriteDone::Slice { outcome: SliceOutcome::Missing, error: None, .. }), "{done:?}");

    let delete = SliceWrite::Delete { pool: "big".to_owned(), index: 1, name: "big-1".to_owned() };
    let job = tokio::spawn(writer.run(Effect::WriteSlice { write: delete, owner: None }).run());
    let call = next(&mut server).await;
    assert_eq!(
        (&call.method, call.path_and_query.as_str()),
        (&Method::DELETE, "/apis/ironlb.io/v1alpha1/ipallocationslices/big-1?")
    );
    let deleted = json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200});
    call.respond.send_response(
        Response::builder()
            .status(StatusCode::OK)
            .body(Body::from(serde_json::to_vec(&deleted).expect("JSON")))
            .expect("a response"),
    );
    let done = job.await.expect("the job ends");
    assert!(matches!(done, WriteDone::Slice { deleted: true, outcome: SliceOutcome::Written, .. }), "{done:?}");
}
