//! The translation between a Kubernetes `Service` and the allocator's domain types.
//!
//! Data flow: the Service watch hands every Service to [`is_managed`]; for ours,
//! [`allocation_request`] reads the annotations and spec (with the Namespace's labels) into an
//! [`AllocationRequest`] for the [`Allocator`](crate::allocator::Allocator), or says with a
//! [`ServiceError`] why the Service makes no valid request (an `AllocationFailed` Event, the
//! Service stays pending). The allocator's answer comes back here as [`load_balancer_status`] for
//! `status.loadBalancer`, with the pool in [`annotation::ALLOCATED_FROM_POOL`]. On start-up,
//! [`assigned_addresses`] reads that status back so the allocator can restore every Service
//! before it allocates anything new.
//!
//! Pure: no client, no I/O, so every rule is tested from small YAML fixtures.
//!
//! Annotations are read in three spellings (`ironlb.io/`, `metallb.io/`, `metallb.universe.tf/`)
//! so that Services moving from MetalLB need no edit; every annotation name is defined in
//! [`annotation`].

mod addresses;
pub mod annotation;
mod error;
mod status;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use ironlb_core::address::Family;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};

use crate::allocator::{AllocationRequest, IpFamilyPolicy, Labels, Protocol, ServiceKey, ServicePort};
use annotation::{ADDRESS_POOL, ALLOW_SHARED_IP};

pub use error::{ServiceError, Setting};
pub use status::{IP_MODE_VIP, assigned_addresses, load_balancer_status};

/// `spec.type` of the Services ironlb serves.
const LOAD_BALANCER: &str = "LoadBalancer";

/// Whether ironlb serves this Service: `spec.type: LoadBalancer`, and `spec.loadBalancerClass`
/// unset when the operator runs without `--load-balancer-class`, or equal to it when it runs with
/// one.
///
/// With a class configured, Services without a class are *not* ours: they belong to the
/// cluster's default load balancer, and two implementations answering for the same Service would
/// fight over its status. This is what MetalLB does when given a class. An empty class counts as
/// none, so a chart may pass the flag unconditionally.
pub fn is_managed(service: &Service, load_balancer_class: Option<&str>) -> bool {
    let Some(spec) = &service.spec else {
        return false;
    };
    let configured = load_balancer_class.filter(|class| !class.is_empty());
    spec.type_.as_deref() == Some(LOAD_BALANCER) && spec.load_balancer_class.as_deref() == configured
}

/// Whether `spec.externalTrafficPolicy` is `Local`: only a node with one of the Service's
/// endpoints may announce it, so the pool status records it for the speakers. A value that is
/// neither `Cluster` nor `Local` counts as `Cluster` here ([`allocation_request`] refuses it).
pub fn is_local(service: &Service) -> bool {
    service.spec.as_ref().and_then(|spec| spec.external_traffic_policy.as_deref())
        == Some(ironlb_core::v1alpha1::TRAFFIC_POLICY_LOCAL)
}

/// What `service` asks of the allocator. `namespace_labels` are the labels of its Namespace, for
/// `serviceAllocation.namespaceSelectors`.
///
/// Read from the Service:
/// - the key (`namespace/name`) and labels;
/// - [`ADDRESS_POOL`], [`LOAD_BALANCER_IPS`](annotation::LOAD_BALANCER_IPS) (or the deprecated
///   `spec.loadBalancerIP`) and [`ALLOW_SHARED_IP`], in any spelling;
/// - `spec.ipFamilies` (IPv4 when empty: the API server fills it on every Service it stores, so
///   only a hand-made object lacks it, and IPv4 is the single-stack default) and
///   `spec.ipFamilyPolicy` (SingleStack when unset, the Kubernetes default);
/// - `spec.ports` (TCP when a port names no protocol), and under `externalTrafficPolicy: Local`
///   the pod selector, for the sharing rules.
///
/// Requested addresses are checked here (syntax, one per family, family of the Service); whether
/// a pool holds them is the allocator's question.
///
/// # Errors
///
/// See [`ServiceError`].
pub fn allocation_request(service: &Service, namespace_labels: &Labels) -> Result<AllocationRequest, ServiceError> {
    let unset_spec = ServiceSpec::default();
    let spec = service.spec.as_ref().unwrap_or(&unset_spec);
    let no_annotations = BTreeMap::new();
    let annotations = service.metadata.annotations.as_ref().unwrap_or(&no_annotations);

    let service_key = key(service)?;
    let families = families(spec)?;
    let family_policy = match spec.ip_family_policy.as_deref() {
        None => IpFamilyPolicy::default(),
        Some(policy) => one_of("spec.ipFamilyPolicy".to_owned(), policy, &FAMILY_POLICIES)?,
    };
    let addresses = addresses::requested(annotations, spec.load_balancer_ip.as_deref())?;
    addresses::check_families(&addresses, family_policy, &families)?;
    let pool = annotation::resolve(annotations, &ADDRESS_POOL, annotation::trimmed)?;
    let sharing_key = annotation::resolve(annotations, &ALLOW_SHARED_IP, annotation::trimmed)?;

    Ok(AllocationRequest {
        service: service_key,
        service_labels: service.metadata.labels.clone().unwrap_or_default(),
        namespace_labels: namespace_labels.clone(),
        families,
        family_policy,
        pool: pool.map(|resolved| resolved.value),
        addresses,
        sharing_key: sharing_key.map(|resolved| resolved.value),
        ports: ports(spec)?,
        local_pod_selector: local_pod_selector(spec)?,
    })
}

const FAMILY_POLICIES: [IpFamilyPolicy; 3] =
    [IpFamilyPolicy::SingleStack, IpFamilyPolicy::PreferDualStack, IpFamilyPolicy::RequireDualStack];

const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

/// `spec.externalTrafficPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TrafficPolicy {
    Cluster,
    Local,
}

impl fmt::Display for TrafficPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cluster => "Cluster",
            Self::Local => "Local",
        })
    }
}

fn key(service: &Service) -> Result<ServiceKey, ServiceError> {
    let required = |field: &str, value: &Option<String>, expected: &str| {
        value.clone().filter(|value| !value.is_empty()).ok_or_else(|| ServiceError::InvalidField {
            field: field.to_owned(),
            value: None,
            expected: expected.to_owned(),
        })
    };
    Ok(ServiceKey::new(
        required("metadata.namespace", &service.metadata.namespace, "the Service's namespace")?,
        required("metadata.name", &service.metadata.name, "the Service's name")?,
    ))
}

fn families(spec: &ServiceSpec) -> Result<Vec<Family>, ServiceError> {
    let listed = spec.ip_families.as_deref().unwrap_or_default();
    if listed.is_empty() {
        return Ok(vec![Family::V4]);
    }
    listed
        .iter()
        .enumerate()
        .map(|(index, family)| one_of(format!("spec.ipFamilies[{index}]"), family, &Family::ALL))
        .collect()
}

fn ports(spec: &ServiceSpec) -> Result<Vec<ServicePort>, ServiceError> {
    let ports = spec.ports.as_deref().unwrap_or_default();
    ports
        .iter()
        .enumerate()
        .map(|(index, port)| {
            let protocol = match port.protocol.as_deref() {
                None => Protocol::Tcp,
                Some(protocol) => one_of(format!("spec.ports[{index}].protocol"), protocol, &PROTOCOLS)?,
            };
            let number = u16::try_from(port.port).ok().filter(|&number| number != 0).ok_or_else(|| {
                ServiceError::InvalidField {
                    field: format!("spec.ports[{index}].port"),
                    value: Some(port.port.to_string()),
                    expected: "a port number from 1 to 65535".to_owned(),
                }
            })?;
            Ok(ServicePort { protocol, port: number })
        })
        .collect()
}

/// `spec.selector` under `externalTrafficPolicy: Local` (empty when the Service selects no pods,
/// as MetalLB compares it), `None` under `Cluster` (the default).
fn local_pod_selector(spec: &ServiceSpec) -> Result<Option<Labels>, ServiceError> {
    let policy = match spec.external_traffic_policy.as_deref() {
        None => TrafficPolicy::Cluster,
        Some(policy) => {
            one_of("spec.externalTrafficPolicy".to_owned(), policy, &[TrafficPolicy::Cluster, TrafficPolicy::Local])?
        }
    };
    Ok((policy == TrafficPolicy::Local).then(|| spec.selector.clone().unwrap_or_default()))
}

/// The choice whose Kubernetes spelling (its `Display`) is `value`; case matters, as in the API.
fn one_of<T: Copy + fmt::Display>(field: String, value: &str, choices: &[T]) -> Result<T, ServiceError> {
    choices.iter().copied().find(|choice| choice.to_string() == value).ok_or_else(|| {
        let names: Vec<String> = choices.iter().map(T::to_string).collect();
        ServiceError::InvalidField {
            field,
            value: Some(value.to_owned()),
            expected: format!("one of {}", names.join(", ")),
        }
    })
}
