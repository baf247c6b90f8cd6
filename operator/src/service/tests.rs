//! One test per rule of the Service translation, each from a small YAML Service.

use std::net::IpAddr;

use ironlb_core::address::Family;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proptest::prelude::*;

use super::annotation::LOAD_BALANCER_IPS;
use super::*;

fn service(yaml: &str) -> Service {
    serde_yaml::from_str(yaml).expect("valid Service fixture")
}

fn request(yaml: &str) -> Result<AllocationRequest, ServiceError> {
    allocation_request(&service(yaml), &Labels::new())
}

fn accepted(yaml: &str) -> AllocationRequest {
    request(yaml).expect("valid request")
}

fn refused(yaml: &str) -> ServiceError {
    request(yaml).expect_err("refused request")
}

fn addresses(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|address| address.parse().expect("test address")).collect()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|&(key, value)| (key.to_owned(), value.to_owned())).collect()
}

// Which Services are ours.

#[test]
fn load_balancer_service_without_class_is_managed() {
    let service = service("{metadata: {name: web, namespace: shop}, spec: {type: LoadBalancer}}");
    assert!(is_managed(&service, None));
}

#[test]
fn other_service_types_are_not_managed() {
    for yaml in [
        "{metadata: {name: web, namespace: shop}, spec: {type: ClusterIP}}",
        "{metadata: {name: web, namespace: shop}, spec: {type: NodePort}}",
        "{metadata: {name: web, namespace: shop}, spec: {}}",
        "{metadata: {name: web, namespace: shop}}",
    ] {
        assert!(!is_managed(&service(yaml), None), "{yaml}");
    }
}

#[test]
fn service_with_a_class_is_not_managed_without_the_class_flag() {
    let service = service(
        "{metadata: {name: web, namespace: shop}, spec: {type: LoadBalancer, loadBalancerClass: example.com/lb}}",
    );
    assert!(!is_managed(&service, None));
}

#[test]
fn class_flag_takes_only_that_class() {
    let ours =
        service("{metadata: {name: a, namespace: shop}, spec: {type: LoadBalancer, loadBalancerClass: ironlb.io/l2}}");
    let other = service(
        "{metadata: {name: b, namespace: shop}, spec: {type: LoadBalancer, loadBalancerClass: example.com/lb}}",
    );
    assert!(is_managed(&ours, Some("ironlb.io/l2")));
    assert!(!is_managed(&other, Some("ironlb.io/l2")));
}

#[test]
fn class_flag_leaves_services_without_class_alone() {
    let service = service("{metadata: {name: web, namespace: shop}, spec: {type: LoadBalancer}}");
    assert!(!is_managed(&service, Some("ironlb.io/l2")));
}

#[test]
fn empty_class_flag_is_the_same_as_none() {
    let service = service("{metadata: {name: web, namespace: shop}, spec: {type: LoadBalancer}}");
    assert!(is_managed(&service, Some("")));
}

// Annotations and their spellings.

#[test]
fn ironlb_spelling_is_read() {
    let request = accepted(
        "
        metadata:
          name: web
          namespace: shop
          annotations:
            ironlb.io/address-pool: blue
            ironlb.io/loadBalancerIPs: 192.168.2.10
            ironlb.io/allow-shared-ip: web-key
        spec: {type: LoadBalancer}
        ",
    );
    assert_eq!(request.pool.as_deref(), Some("blue"));
    assert_eq!(request.addresses, addresses(&["192.168.2.10"]));
    assert_eq!(request.sharing_key.as_deref(), Some("web-key"));
}

#[test]
fn metallb_io_spelling_is_accepted() {
    let request = accepted(
        "
        metadata:
          name: web
          namespace: shop
          annotations:
            metallb.io/address-pool: blue
            metallb.io/loadBalancerIPs: 192.168.2.10
            metallb.io/allow-shared-ip: web-key
        spec: {type: LoadBalancer}
        ",
    );
    assert_eq!(request.pool.as_deref(), Some("blue"));
    assert_eq!(request.addresses, addresses(&["192.168.2.10"]));
    assert_eq!(request.sharing_key.as_deref(), Some("web-key"));
}

#[test]
fn metallb_universe_spelling_is_accepted() {
    let request = accepted(
        "
        metadata:
          name: web
          namespace: shop
          annotations:
            metallb.universe.tf/address-pool: blue
            metallb.universe.tf/loadBalancerIPs: 192.168.2.10
            metallb.universe.tf/allow-shared-ip: web-key
        spec: {type: LoadBalancer}
        ",
    );
    assert_eq!(request.pool.as_deref(), Some("blue"));
    assert_eq!(request.addresses, addresses(&["192.168.2.10"]));
    assert_eq!(request.sharing_key.as_deref(), Some("web-key"));
}

#[test]
fn two_spellings_that_agree_are_accepted() {
    let request = accepted(
        "
        metadata:
          name: web
          namespace: shop
          annotations:
            ironlb.io/address-pool: blue
            metallb.universe.tf/address-pool: blue
        spec: {type: LoadBalancer}
        ",
    );
    assert_eq!(request.pool.as_deref(), Some("blue"));
}

#[test]
fn two_spellings_that_disagree_are_refused_naming_both() {
    let error = refused(
        "
        metadata:
          name: web
          namespace: shop
          annotations:
            metallb.io/allow-shared-ip: one
            metallb.universe.tf/allow-shared-ip: two
        spec: {type: LoadBalancer}
        ",
    );
    assert_eq!(
        error,
        ServiceError::ConflictingAnnotations {
            first: Setting { origin: "metallb.io/allow-shared-ip", value: "one".to_owned() },
            second: Setting { origin: "metallb.universe.tf/allow-shared-ip", value: "two".to_owned() },
        }
    );
    assert_eq!(error.reason(), "ConflictingAnnotations");
}

#[test]
fn address_lists_that_differ_only_in_spacing_and_order_agree() {
    let request = accepted(
        "
        metadata:
          name: web
          namespace: shop
          annotations:
            ironlb.io/loadBalancerIPs: 10.0.0.1,fd00::1
            metallb.universe.tf/loadBalancerIPs: ' fd00::1 , 10.0.0.1'
        spec: {type: LoadBalancer, ipFamilyPolicy: RequireDualStack, ipFamilies: [IPv4, IPv6]}
        ",
    );
    assert_eq!(request.addresses, addresses(&["10.0.0.1", "fd00::1"]));
}

#[test]
fn blank_annotation_counts_as_unset() {
    let request = accepted(
        "
        metadata:
          name: web
          namespace: shop
          annotations:
            ironlb.io/address-pool: ''
            metallb.universe.tf/address-pool: blue
            ironlb.io/loadBalancerIPs: ' '
        spec: {type: LoadBalancer}
        ",
    );
    assert_eq!(request.pool.as_deref(), Some("blue"));
    assert!(request.addresses.is_empty());
}

// Requested addresses.

#[test]
fn load_balancer_ips_are_split_on_commas_allowing_spaces() {
    let request = accepted(
        "
        metadata:
          name: web
          namespace: shop
          annotations: {ironlb.io/loadBalancerIPs: '192.168.2.10 ,  2001:db8::10'}
        spec: {type: LoadBalancer, ipFamilyPolicy: PreferDualStack, ipFamilies: [IPv6, IPv4]}
        ",
    );
    assert_eq!(request.addresses, addresses(&["192.168.2.10", "2001:db8::10"]));
}

#[test]
fn malformed_address_is_refused_naming_it() {
    let error = refused(
        "
        metadata:
          name: web
          namespace: shop
          annotations: {metallb.io/loadBalancerIPs: '192.168.2.10, 192.168.2.300'}
        spec: {type: LoadBalancer}
        ",
    );
    assert_eq!(
        error,
        ServiceError::MalformedAddress { origin: "metallb.io/loadBalancerIPs", value: "192.168.2.300".to_owned() }
    );
}

#[test]
fn empty_entry_in_the_address_list_is_malformed() {
    let error = refused(
        "
        metadata:
          name: web
          namespace: shop
          annotations: {ironlb.io/loadBalancerIPs: '192.168.2.10,'}
        spec: {type: LoadBalancer}
        ",
    );
    assert_eq!(error, ServiceError::MalformedAddress { origin: "ironlb.io/loadBalancerIPs", value: String::new() });
}

#[test]
fn second_address_of_one_family_is_refused() {
    let error = refused(
        "
        metadata:
          name: web
          namespace: shop
          annotations: {ironlb.io/loadBalancerIPs: '192.168.2.11,192.168.2.10'}
        spec: {type: LoadBalancer}
        ",
    );
    assert_eq!(
        error,
        ServiceError::TooManyAddresses {
            origin: "ironlb.io/loadBalancerIPs",
            family: Family::V4,
            addresses: addresses(&["192.168.2.10", "192.168.2.11"]),
        }
    );
}

#[test]
fn deprecated_spec_load_balancer_ip_is_honoured() {
    let request =
        accepted("{metadata: {name: web, namespace: shop}, spec: {type: LoadBalancer, loadBalancerIP: 192.168.2.10}}");
    assert_eq!(request.addresses, addresses(&["192.168.2.10"]));
}

#[test]
fn malformed_spec_load_balancer_ip_is_refused_naming_the_field() {
    let error = refused("{metadata: {name: web, namespace: shop}, spec: {type: LoadBalancer, loadBalancerIP: nope}}");
    assert_eq!(error, ServiceError::MalformedAddress { origin: "spec.loadBalancerIP", value: "nope".to_owned() });
}

#[test]
fn annotation_and_spec_load_balancer_ip_that_disagree_are_refused() {
    let error = refused(
        "
        metadata:
          name: web
          namespace: shop
          annotations: {metallb.universe.tf/loadBalancerIPs: 192.168.2.10}
        spec: {type: LoadBalancer, loadBalancerIP: 192.168.2.20}
        ",
    );
    assert_eq!(
        error,
        ServiceError::ConflictingAnnotations {
            first: Setting { origin: "metallb.universe.tf/loadBalancerIPs", value: "192.168.2.10".to_owned() },
            second: Setting { origin: "spec.loadBalancerIP", value: "192.168.2.20".to_owned() },
        }
    );
}

#[test]
fn spec_load_balancer_ip_among_the_annotated_addresses_agrees() {
    let request = accepted(
        "
        metadata:
          name: web
          namespace: shop
          annotations: {ironlb.io/loadBalancerIPs: '192.168.2.10,fd00::10'}
        spec:
          type: LoadBalancer
          loadBalancerIP: 192.168.2.10
          ipFamilyPolicy: PreferDualStack
          ipFamilies: [IPv4, IPv6]
        ",
    );
    assert_eq!(request.addresses, addresses(&["192.168.2.10", "fd00::10"]));
}

// Families.

#[test]
fn families_follow_spec_ip_families_and_policy() {
    let request = accepted(
        "
        metadata: {name: web, namespace: shop}
        spec: {type: LoadBalancer, ipFamilyPolicy: RequireDualStack, ipFamilies: [IPv6, IPv4]}
        ",
    );
    assert_eq!(request.families, vec![Family::V6, Family::V4]);
    assert_eq!(request.family_policy, IpFamilyPolicy::RequireDualStack);
}

#[test]
fn missing_families_mean_ipv4_single_stack() {
    let request = accepted("{metadata: {name: web, namespace: shop}, spec: {type: LoadBalancer}}");
    assert_eq!(request.families, vec![Family::V4]);
    assert_eq!(request.family_policy, IpFamilyPolicy::SingleStack);
}

#[test]
fn single_stack_refuses_an_address_not_of_the_primary_family() {
    let error = refused(
        "
        metadata:
          name: web
          namespace: shop
          annotations: {ironlb.io/loadBalancerIPs: 'fd00::10'}
        spec: {type: LoadBalancer, ipFamilyPolicy: SingleStack, ipFamilies: [IPv4]}
        ",
    );
    assert_eq!(
        error,
        ServiceError::WrongFamily {
            address: addresses(&["fd00::10"])[0],
            policy: IpFamilyPolicy::SingleStack,
            families: vec![Family::V4],
        }
    );
}

#[test]
fn dual_stack_policy_refuses_an_address_of_a_family_not_in_ip_families() {
    // PreferDualStack in a single-stack cluster: the API server lists only IPv4.
    let error = refused(
        "
        metadata:
          name: web
          namespace: shop
          annotations: {ironlb.io/loadBalancerIPs: '192.168.2.10,fd00::10'}
        spec: {type: LoadBalancer, ipFamilyPolicy: PreferDualStack, ipFamilies: [IPv4]}
        ",
    );
    assert!(matches!(error, ServiceError::WrongFamily { families, .. } if families == vec![Family::V4]));
}

#[test]
fn unknown_family_or_policy_is_refused_naming_the_field() {
    let family =
        refused("{metadata: {name: web, namespace: shop}, spec: {type: LoadBalancer, ipFamilies: [IPv4, IPv5]}}");
    assert_eq!(
        family,
        ServiceError::InvalidField {
            field: "spec.ipFamilies[1]".to_owned(),
            value: Some("IPv5".to_owned()),
            expected: "one of IPv4, IPv6".to_owned(),
        }
    );
    let policy = refused("{metadata: {name: web, namespace: shop}, spec: {type: LoadBalancer, ipFamilyPolicy: dual}}");
    assert_eq!(
        policy.to_string(),
        r#"spec.ipFamilyPolicy is "dual", expected one of SingleStack, PreferDualStack, RequireDualStack"#
    );
}

// Ports, sharing, labels, identity.

#[test]
fn ports_keep_their_protocol_defaulting_to_tcp() {
    let request = accepted(
        "
        metadata: {name: dns, namespace: shop}
        spec:
          type: LoadBalancer
          ports:
            - {name: dns-tcp, port: 53}
            - {name: dns-udp, port: 53, protocol: UDP}
            - {name: sig, port: 3868, protocol: SCTP}
        ",
    );
    assert_eq!(
        request.ports,
        vec![ServicePort::tcp(53), ServicePort::udp(53), ServicePort { protocol: Protocol::Sctp, port: 3868 }]
    );
}

#[test]
fn unknown_protocol_or_port_out_of_range_is_refused() {
    let protocol = refused(
        "{metadata: {name: web, namespace: shop}, spec: {type: LoadBalancer, ports: [{port: 80}, {port: 81, protocol: QUIC}]}}",
    );
    assert!(matches!(protocol, ServiceError::InvalidField { field, .. } if field == "spec.ports[1].protocol"));
    let port = refused("{metadata: {name: web, namespace: shop}, spec: {type: LoadBalancer, ports: [{port: 70000}]}}");
    assert_eq!(port.to_string(), r#"spec.ports[0].port is "70000", expected a port number from 1 to 65535"#);
}

#[test]
fn local_traffic_policy_carries_the_pod_selector_for_sharing() {
    let request = accepted(
        "
        metadata: {name: web, namespace: shop}
        spec: {type: LoadBalancer, externalTrafficPolicy: Local, selector: {app: web}}
        ",
    );
    assert_eq!(request.local_pod_selector, Some(labels(&[("app", "web")])));
}

#[test]
fn cluster_traffic_policy_carries_no_pod_selector() {
    let request = accepted(
        "
        metadata: {name: web, namespace: shop}
        spec: {type: LoadBalancer, externalTrafficPolicy: Cluster, selector: {app: web}}
        ",
    );
    assert_eq!(request.local_pod_selector, None);
}

#[test]
fn service_and_namespace_labels_are_copied() {
    let service =
        service("{metadata: {name: web, namespace: shop, labels: {tier: front}}, spec: {type: LoadBalancer}}");
    let request = allocation_request(&service, &labels(&[("team", "shop")])).expect("valid request");
    assert_eq!(request.service, ServiceKey::new("shop", "web"));
    assert_eq!(request.service_labels, labels(&[("tier", "front")]));
    assert_eq!(request.namespace_labels, labels(&[("team", "shop")]));
}

#[test]
fn service_without_namespace_is_refused() {
    let error = refused("{metadata: {name: web}, spec: {type: LoadBalancer}}");
    assert_eq!(error.to_string(), "metadata.namespace is not set, expected the Service's namespace");
}

// Robustness.

/// Every key `allocation_request` reads, and a few it does not.
fn annotation_key() -> impl Strategy<Value = String> {
    let known: Vec<String> = [ADDRESS_POOL, LOAD_BALANCER_IPS, ALLOW_SHARED_IP]
        .iter()
        .flat_map(|annotation| annotation.spellings)
        .map(str::to_owned)
        .collect();
    prop_oneof![4 => proptest::sample::select(known), 1 => ".{0,20}"]
}

/// Arbitrary text, and text that looks like address lists.
fn annotation_value() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[0-9a-f:., ]{0,40}",
        "(10\\.0\\.0\\.[0-9]{1,3}|fd00::[0-9a-f]{1,4})( ?, ?(10\\.0\\.0\\.[0-9]{1,3}|fd00::[0-9a-f]{1,4})){0,2}"
    ]
}

fn ip_families() -> impl Strategy<Value = Option<Vec<String>>> {
    proptest::option::of(proptest::collection::vec(prop_oneof![Just("IPv4".to_owned()), Just("IPv6".to_owned())], 0..3))
}

fn ip_family_policy() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(proptest::sample::select(vec![
        "SingleStack".to_owned(),
        "PreferDualStack".to_owned(),
        "RequireDualStack".to_owned(),
    ]))
}

proptest! {
    #[test]
    fn allocation_request_never_panics_on_arbitrary_annotations(
        annotations in proptest::collection::btree_map(annotation_key(), annotation_value(), 0..6),
        load_balancer_ip in proptest::option::of(annotation_value()),
        ip_families in ip_families(),
        ip_family_policy in ip_family_policy(),
    ) {
        let service = Service {
            metadata: ObjectMeta {
                name: Some("web".to_owned()),
                namespace: Some("shop".to_owned()),
                annotations: Some(annotations),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".to_owned()),
                load_balancer_ip,
                ip_families,
                ip_family_policy,
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        // What is accepted is what the allocator may be given: one address per family, each of
        // a family the Service has.
        if let Ok(request) = allocation_request(&service, &Labels::new()) {
            for family in Family::ALL {
                prop_assert!(request.addresses.iter().filter(|&&a| Family::of(a) == family).count() <= 1);
            }
            prop_assert!(request.addresses.iter().all(|&a| request.families.contains(&Family::of(a))));
        }
    }
}
