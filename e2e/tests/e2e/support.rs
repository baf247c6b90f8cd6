//! What the suite's tests share: manifests as a user writes them, and waiting on what
//! `kubectl get` and the Events show.

use std::time::Duration;

use anyhow::{Context, Result};
use ironlb_e2e::{Lab, wait_for};

/// How long a controller gets to act on a change (generous: the lab shares
/// two cores with the build).
pub(crate) const SETTLE: Duration = Duration::from_secs(30);

pub(crate) fn pool(name: &str, addresses: &[&str], extra_spec: &str) -> String {
    let addresses = serde_json::to_string(addresses).unwrap_or_default();
    format!(
        "apiVersion: ironlb.io/v1alpha1\nkind: IPAddressPool\nmetadata:\n  name: {name}\nspec:\n  addresses: {addresses}\n{}",
        indent(extra_spec)
    )
}

/// A LoadBalancer Service on port 80 (plus `extra_spec`, YAML lines under `spec`).
pub(crate) fn service(namespace: &str, name: &str, annotations: &[(&str, &str)], extra_spec: &str) -> String {
    let annotations: serde_json::Map<String, serde_json::Value> =
        annotations.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect();
    let annotations = serde_json::Value::Object(annotations);
    let spec = if extra_spec.contains("ports:") {
        extra_spec.to_owned()
    } else {
        format!("ports: [{{port: 80}}]\n{extra_spec}")
    };
    let spec = if spec.contains("type:") { spec } else { format!("type: LoadBalancer\n{spec}") };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  annotations: {annotations}\nspec:\n  selector: {{app: {name}}}\n{}",
        indent(&spec)
    )
}

pub(crate) fn indent(lines: &str) -> String {
    lines.lines().filter(|l| !l.trim().is_empty()).map(|l| format!("  {l}\n")).collect()
}

/// The Service's `status.loadBalancer.ingress` IPs, in order.
pub(crate) fn ingress(lab: &Lab, namespace: &str, name: &str) -> Result<Vec<String>> {
    let out = lab.kubectl(&["get", "service", "-n", namespace, name, "-o", "json"])?.ok()?;
    let svc: serde_json::Value = serde_json::from_str(&out.stdout)?;
    Ok(svc["status"]["loadBalancer"]["ingress"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i["ip"].as_str().map(str::to_owned))
        .collect())
}

/// Waits until the Service shows exactly `expected` in EXTERNAL-IP.
pub(crate) fn wait_ingress(lab: &Lab, namespace: &str, name: &str, expected: &[&str]) -> Result<()> {
    let mut last = Vec::new();
    wait_for(&format!("{namespace}/{name} to get {expected:?}"), SETTLE, || {
        last = ingress(lab, namespace, name)?;
        Ok((last == expected).then_some(()))
    })
    .with_context(|| format!("{namespace}/{name} has {last:?}"))
}

/// The messages of the Events with `reason` about the object.
pub(crate) fn events(lab: &Lab, namespace: &str, name: &str, reason: &str) -> Result<Vec<String>> {
    let selector = format!("involvedObject.name={name},reason={reason}");
    let out = lab.kubectl(&["get", "events", "-n", namespace, "--field-selector", &selector, "-o", "json"])?.ok()?;
    let list: serde_json::Value = serde_json::from_str(&out.stdout)?;
    Ok(list["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect())
}

/// Waits for an Event with `reason` whose message contains every part of `says`.
pub(crate) fn wait_event(lab: &Lab, namespace: &str, name: &str, reason: &str, says: &[&str]) -> Result<String> {
    let mut seen = Vec::new();
    wait_for(&format!("a {reason} Event on {name} saying {says:?}"), SETTLE, || {
        seen = events(lab, namespace, name, reason)?;
        Ok(seen.iter().find(|m| says.iter().all(|s| m.contains(s))).cloned())
    })
    .with_context(|| format!("{reason} Events seen: {seen:?}"))
}
