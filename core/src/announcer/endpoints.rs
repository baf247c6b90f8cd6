//! EndpointSlices reduced to what the announcer asks of a Service's endpoints: does it have a
//! serving one anywhere, and on which nodes.
//!
//! An endpoint counts when its `conditions.ready` is true or unset (the EndpointSlice API says
//! an unset `ready` means ready), or when `conditions.serving` is true: a terminating Pod that
//! still serves keeps its node announcing until it is gone, so a rolling update under
//! `externalTrafficPolicy: Local` does not drop traffic that the Pod could still answer.
//!
//! Only the reduction is kept ([`EndpointIndex`]), never the slices: a reader that watches every
//! slice of a large cluster holds a few bytes per Service, not the endpoints.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};

/// The label that ties an EndpointSlice to its Service (`discovery.k8s.io/v1`).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

pub use crate::ServiceKey;

/// What one Service's endpoints say, over all its slices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointSummary {
    /// At least one endpoint is ready or serving.
    pub serving: bool,
    /// The nodes (`endpoints[].nodeName`) with a ready or serving endpoint.
    pub nodes: BTreeSet<String>,
}

/// Whether an endpoint can take traffic (see the module documentation).
fn endpoint_serves(endpoint: &Endpoint) -> bool {
    let conditions = endpoint.conditions.as_ref();
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
    let serving = conditions.and_then(|c| c.serving).unwrap_or(false);
    ready || serving
}

/// The Service a slice belongs to, from its namespace and [`SERVICE_NAME_LABEL`].
pub fn slice_service(slice: &EndpointSlice) -> Option<ServiceKey> {
    let namespace = slice.metadata.namespace.clone()?;
    let name = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
    Some(ServiceKey { namespace, name })
}

/// The summary of one slice.
pub fn summarize(slice: &EndpointSlice) -> EndpointSummary {
    let mut summary = EndpointSummary::default();
    for endpoint in slice.endpoints.iter().filter(|endpoint| endpoint_serves(endpoint)) {
        summary.serving = true;
        if let Some(node) = endpoint.node_name.as_ref().filter(|node| !node.is_empty()) {
            summary.nodes.insert(node.clone());
        }
    }
    summary
}

/// Every watched slice, reduced and grouped by Service.
#[derive(Clone, Debug, Default)]
pub struct EndpointIndex {
    /// Service → slice name → that slice's summary.
    by_service: HashMap<ServiceKey, BTreeMap<String, EndpointSummary>>,
    /// Slice (namespace, name) → the Service it was filed under, so a slice relabelled to
    /// another Service (or deleted without labels) leaves its old Service.
    owner: HashMap<(String, String), ServiceKey>,
}

impl EndpointIndex {
    /// Records a slice as created or changed. Returns the Services whose summary may have
    /// changed (the slice's Service, and its previous one if that differs).
    pub fn apply(&mut self, slice: &EndpointSlice) -> Vec<ServiceKey> {
        let mut touched = self.remove(slice);
        let (Some(service), Some(slice_name)) = (slice_service(slice), slice.metadata.name.clone()) else {
            return touched;
        };
        let namespace = service.namespace.clone();
        self.by_service.entry(service.clone()).or_default().insert(slice_name.clone(), summarize(slice));
        self.owner.insert((namespace, slice_name), service.clone());
        if !touched.contains(&service) {
            touched.push(service);
        }
        touched
    }

    /// Forgets a deleted slice. Returns the Service it belonged to, if known.
    pub fn remove(&mut self, slice: &EndpointSlice) -> Vec<ServiceKey> {
        let (Some(namespace), Some(name)) = (slice.metadata.namespace.clone(), slice.metadata.name.clone()) else {
            return Vec::new();
        };
        let Some(service) = self.owner.remove(&(namespace, name.clone())) else {
            return Vec::new();
        };
        if let Some(slices) = self.by_service.get_mut(&service) {
            slices.remove(&name);
            if slices.is_empty() {
                self.by_service.remove(&service);
            }
        }
        vec![service]
    }

    /// Forgets every slice of one Service (its slices are no longer watched).
    pub fn forget_service(&mut self, namespace: &str, name: &str) {
        let key = ServiceKey::new(namespace, name);
        if let Some(slices) = self.by_service.remove(&key) {
            for slice_name in slices.into_keys() {
                self.owner.remove(&(namespace.to_owned(), slice_name));
            }
        }
    }

    /// Replaces everything with the slices of a fresh list (a watch restart).
    pub fn reset<'a>(&mut self, slices: impl IntoIterator<Item = &'a EndpointSlice>) {
        *self = Self::default();
        for slice in slices {
            self.apply(slice);
        }
    }

    /// The summary of a Service over all its slices; empty (not serving) when it has none.
    pub fn summary(&self, namespace: &str, name: &str) -> EndpointSummary {
        let key = ServiceKey::new(namespace, name);
        self.by_service.get(&key).into_iter().flat_map(BTreeMap::values).fold(
            EndpointSummary::default(),
            |mut all, slice| {
                all.serving |= slice.serving;
                all.nodes.extend(slice.nodes.iter().cloned());
                all
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::discovery::v1::EndpointConditions;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn endpoint(node: &str, ready: Option<bool>, serving: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec!["10.0.0.1".to_owned()],
            node_name: Some(node.to_owned()),
            conditions: Some(EndpointConditions { ready, serving, terminating: None }),
            ..Endpoint::default()
        }
    }

    fn slice(name: &str, service: Option<&str>, endpoints: Vec<Endpoint>) -> EndpointSlice {
        let labels = service.map(|service| BTreeMap::from([(SERVICE_NAME_LABEL.to_owned(), service.to_owned())]));
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some("web".to_owned()),
                name: Some(name.to_owned()),
                labels,
                ..ObjectMeta::default()
            },
            address_type: "IPv4".to_owned(),
            endpoints,
            ports: None,
        }
    }

    #[test]
    fn ready_unset_or_serving_endpoints_count_and_not_ready_ones_do_not() {
        let summary = summarize(&slice(
            "s",
            Some("svc"),
            vec![
                endpoint("node-a", None, None),
                endpoint("node-b", Some(false), Some(true)),
                endpoint("node-c", Some(false), None),
            ],
        ));
        assert!(summary.serving);
        assert_eq!(summary.nodes, BTreeSet::from(["node-a".to_owned(), "node-b".to_owned()]));
        assert!(!summarize(&slice("s", Some("svc"), vec![endpoint("node-c", Some(false), Some(false))])).serving);
    }

    #[test]
    fn a_service_is_the_union_of_its_slices() {
        let mut index = EndpointIndex::default();
        index.apply(&slice("v4", Some("svc"), vec![endpoint("node-a", Some(true), None)]));
        index.apply(&slice("v6", Some("svc"), vec![endpoint("node-b", Some(true), None)]));
        assert_eq!(index.summary("web", "svc").nodes.len(), 2);
        index.remove(&slice("v4", Some("svc"), vec![]));
        assert_eq!(index.summary("web", "svc").nodes, BTreeSet::from(["node-b".to_owned()]));
        index.apply(&slice("v6", Some("svc"), vec![endpoint("node-b", Some(false), None)]));
        assert_eq!(index.summary("web", "svc"), EndpointSummary::default());
    }

    #[test]
    fn a_relabelled_slice_leaves_its_old_service() {
        let mut index = EndpointIndex::default();
        index.apply(&slice("s", Some("old"), vec![endpoint("node-a", None, None)]));
        let touched = index.apply(&slice("s", Some("new"), vec![endpoint("node-a", None, None)]));
        assert_eq!(touched.len(), 2);
        assert!(!index.summary("web", "old").serving);
        assert!(index.summary("web", "new").serving);
        index.apply(&slice("s", None, vec![]));
        assert!(!index.summary("web", "new").serving);
    }
}
