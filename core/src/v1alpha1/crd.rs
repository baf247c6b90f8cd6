//! The CustomResourceDefinitions as installed: what `crdgen` writes into the chart.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use super::{IPAddressPool, IPAllocationSlice, L2Advertisement};

/// Every CRD of this version, ready to install. Prefer this to `IPAddressPool::crd()`: it also
/// unwraps the doc-comment line breaks in field descriptions, so `kubectl explain` can wrap the
/// text to the terminal instead of showing ragged lines.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [IPAddressPool::crd(), L2Advertisement::crd(), IPAllocationSlice::crd()]
        .into_iter()
        .map(unwrap_descriptions)
        .collect()
}

fn unwrap_descriptions(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let Ok(mut json) = serde_json::to_value(&crd) else { return crd };
    unwrap_in(&mut json);
    serde_json::from_value(json).unwrap_or(crd)
}

fn unwrap_in(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                match field {
                    Value::String(text) if key == "description" => *text = unwrap_paragraphs(text),
                    _ => unwrap_in(field),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_in),
        _ => {}
    }
}

/// Joins the lines of each paragraph with a space; paragraphs stay separated by a blank line.
fn unwrap_paragraphs(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| paragraph.lines().map(str::trim).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_are_unwrapped_but_kept_apart() {
        assert_eq!(unwrap_paragraphs("one\ntwo\n\nthree"), "one two\n\nthree");
    }
}

#[cfg(test)]
mod schema_tests {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinition, CustomResourceDefinitionVersion, JSONSchemaProps,
    };

    use super::crds;

    fn crd(plural: &str) -> CustomResourceDefinition {
        crds().into_iter().find(|crd| crd.spec.names.plural == plural).unwrap_or_else(|| panic!("no CRD for {plural}"))
    }

    fn version(crd: &CustomResourceDefinition) -> &CustomResourceDefinitionVersion {
        crd.spec.versions.first().expect("one version")
    }

    fn property<'a>(schema: &'a JSONSchemaProps, path: &[&str]) -> &'a JSONSchemaProps {
        path.iter().fold(schema, |schema, name| {
            schema
                .properties
                .as_ref()
                .and_then(|properties| properties.get(*name))
                .unwrap_or_else(|| panic!("no property {name}"))
        })
    }

    fn root_schema(crd: &CustomResourceDefinition) -> &JSONSchemaProps {
        version(crd).schema.as_ref().and_then(|validation| validation.open_api_v3_schema.as_ref()).expect("schema")
    }

    #[test]
    fn every_kind_is_cluster_scoped_with_a_status_subresource() {
        for plural in ["ipaddresspools", "l2advertisements", "ipallocationslices"] {
            let crd = crd(plural);
            assert_eq!(crd.spec.group, "ironlb.io");
            assert_eq!(crd.spec.scope, "Cluster");
            assert_eq!(version(&crd).name, "v1alpha1");
            let subresources = version(&crd).subresources.as_ref().expect("subresources");
            assert!(subresources.status.is_some(), "{plural} has no status subresource");
            assert_eq!(crd.spec.names.categories.as_deref(), Some(&["ironlb".to_owned()][..]));
        }
    }

    #[test]
    fn pool_printer_columns_show_usage_and_health_at_a_glance() {
        let crd = crd("ipaddresspools");
        let columns: Vec<(&str, &str)> = version(&crd)
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|column| (column.name.as_str(), column.json_path.as_str()))
            .collect();
        for expected in [
            ("Auto Assign", ".spec.autoAssign"),
            ("Assigned", ".status.assignedSummary"),
            ("Available", ".status.availableSummary"),
            ("Ready", r#".status.conditions[?(@.type=="Ready")].status"#),
            ("Conflict", r#".status.conditions[?(@.type=="Conflict")].status"#),
            ("Addresses", ".spec.addresses"),
            ("Age", ".metadata.creationTimestamp"),
        ] {
            assert!(columns.contains(&expected), "missing column {expected:?} in {columns:?}");
        }
    }

    #[test]
    fn addresses_are_a_bounded_set_with_one_cel_rule_per_problem() {
        let crd = crd("ipaddresspools");
        let addresses = property(root_schema(&crd), &["spec", "addresses"]);
        assert_eq!(addresses.min_items, Some(1));
        assert_eq!(addresses.max_items, Some(256));
        assert_eq!(addresses.x_kubernetes_list_type.as_deref(), Some("set"));
        let items = match addresses.items.as_ref() {
            Some(
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(
                    items,
                ),
            ) => items,
            other => panic!("unexpected items {other:?}"),
        };
        assert_eq!(items.max_length, Some(100));
        let rules = items.x_kubernetes_validations.as_deref().unwrap_or_default();
        assert_eq!(rules.len(), crate::address::EntryProblem::ALL.len());
        for rule in rules {
            let expression = rule.message_expression.as_deref().unwrap_or_default();
            assert!(expression.contains("self"), "message must name the entry: {expression}");
            assert!(rule.message.as_deref().is_some_and(|m| !m.is_empty()));
        }
    }

    /// Conditions merge by type, as Kubernetes conditions do; the allocations are one atomic
    /// value, applied whole by their only writer (per-entry ownership made every apply of a
    /// large pool expensive for the API server, see `IPAddressPoolStatus::allocations`).
    #[test]
    fn conditions_merge_by_type_and_allocations_are_applied_whole() {
        let crd = crd("ipaddresspools");
        let status = property(root_schema(&crd), &["status"]);
        let conditions = property(status, &["conditions"]);
        assert_eq!(conditions.x_kubernetes_list_type.as_deref(), Some("map"));
        assert_eq!(conditions.x_kubernetes_list_map_keys.as_deref(), Some(&["type".to_owned()][..]));
        let allocations = property(status, &["allocations"]);
        assert_eq!(allocations.x_kubernetes_list_type.as_deref(), Some("atomic"));
        assert_eq!(allocations.x_kubernetes_list_map_keys, None);
    }

    #[test]
    fn defaults_match_metallb() {
        let crd = crd("ipaddresspools");
        let spec = property(root_schema(&crd), &["spec"]);
        let default = |name: &str| property(spec, &[name]).default.as_ref().map(|d| d.0.clone());
        assert_eq!(default("autoAssign"), Some(serde_json::Value::Bool(true)));
        assert_eq!(default("avoidBuggyIPs"), Some(serde_json::Value::Bool(false)));
    }

    #[test]
    fn every_field_is_documented() {
        fn walk(path: &str, schema: &JSONSchemaProps) {
            for (name, field) in schema.properties.iter().flatten() {
                let path = format!("{path}.{name}");
                let documented = field.description.as_deref().is_some_and(|d| !d.trim().is_empty());
                assert!(
                    documented
                        || path.ends_with(".metadata")
                        || path.ends_with(".apiVersion")
                        || path.ends_with(".kind"),
                    "{path} has no description"
                );
                walk(&path, field);
            }
        }
        for crd in crds() {
            walk(&crd.spec.names.kind, root_schema(&crd));
        }
    }
}
