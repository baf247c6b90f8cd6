//! What the suite's tests share: manifests as a user writes them, and waiting on what
//! `kubectl get` and the Events show.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use ironlb_e2e::{Cleanup, Lab, wait_for};

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

// Layer 2: pools announced by an L2Advertisement, Pods the lab's kubelet stand-in runs, and who
// the pool status says announces.

pub(crate) const V4_RANGE: &str = "192.168.2.10-192.168.2.49";
pub(crate) const V6_RANGE: &str = "fd6c:6a7e:5f2b:2::10-fd6c:6a7e:5f2b:2::49";

/// A namespace, a dual-stack pool named after it and an L2Advertisement (`adv_spec` YAML lines;
/// empty announces the pool from every node), all removed at the end.
pub(crate) fn setup(lab: &Lab, name: &str, adv_spec: &str) -> Result<Cleanup> {
    let mut cleanup = lab.cleanup();
    cleanup.namespace(name)?;
    advertised_pool(lab, &mut cleanup, name, &[V4_RANGE, V6_RANGE], "", adv_spec)?;
    Ok(cleanup)
}

/// A pool `name` of `addresses` (plus `pool_spec`, YAML lines under `spec`) and an
/// L2Advertisement `name` announcing it (`adv_spec` YAML lines; empty announces it from every
/// node), both removed by `cleanup` at the end.
pub(crate) fn advertised_pool(
    lab: &Lab,
    cleanup: &mut Cleanup,
    name: &str,
    addresses: &[&str],
    pool_spec: &str,
    adv_spec: &str,
) -> Result<()> {
    cleanup.object(&format!("ipaddresspool/{name}"));
    cleanup.object(&format!("l2advertisement/{name}"));
    lab.apply(&pool(name, addresses, pool_spec))?;
    let spec = format!("ipAddressPools: [{name}]\n{adv_spec}");
    lab.apply(&format!(
        "apiVersion: ironlb.io/v1alpha1\nkind: L2Advertisement\nmetadata:\n  name: {name}\nspec:\n{}",
        indent(&spec)
    ))?;
    Ok(())
}

/// A Pod of app `app`, run by the lab's kubelet stand-in (on `node` when given).
pub(crate) fn pod(namespace: &str, name: &str, app: &str, node: Option<&str>, ready: bool) -> String {
    let node_selector =
        node.map(|node| format!("  nodeSelector: {{kubernetes.io/hostname: {node}}}\n")).unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels: {{app: {app}}}\n  annotations: {{lab.ironlb.io/ready: \"{ready}\"}}\nspec:\n{node_selector}  containers: [{{name: web, image: registry.k8s.io/pause:3.10}}]\n"
    )
}

/// The allocation entry of `namespace/name` in the pool's status.
pub(crate) fn allocation(lab: &Lab, pool: &str, namespace: &str, name: &str) -> Result<Option<serde_json::Value>> {
    let out = lab.kubectl(&["get", "ipaddresspool", pool, "-o", "json"])?.ok()?;
    let pool: serde_json::Value = serde_json::from_str(&out.stdout)?;
    Ok(pool["status"]["allocations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["namespace"] == namespace && entry["name"] == name)
        .cloned())
}

/// Waits until the pool status names an announcer for the Service other than `not`; returns
/// (node, interface).
pub(crate) fn wait_announcer(
    lab: &Lab,
    pool: &str,
    namespace: &str,
    name: &str,
    not: Option<&str>,
) -> Result<(String, String)> {
    let mut last = None;
    wait_for(&format!("an announcer of {namespace}/{name} in the pool status (not {not:?})"), SETTLE, || {
        last = allocation(lab, pool, namespace, name)?;
        let entry = last.as_ref();
        let node = entry.and_then(|e| e["node"].as_str()).filter(|node| Some(*node) != not);
        let interface = entry.and_then(|e| e["interface"].as_str());
        Ok(node.zip(interface).map(|(n, i)| (n.to_owned(), i.to_owned())))
    })
    .with_context(|| format!("last allocation entry: {last:?}"))
}

/// One series of a speaker's `/metrics`, read inside its node namespace.
pub(crate) fn speaker_metric(lab: &Lab, node: &str, series: &str) -> Result<f64> {
    let text = lab.in_netns(node, &["curl", "-fsS", "http://127.0.0.1:7473/metrics"])?.ok()?.stdout;
    let Some(line) = text.lines().find(|line| line.starts_with(series) && line[series.len()..].starts_with(' ')) else {
        bail!("{series} is not exported by the speaker on {node}:\n{text}");
    };
    Ok(line.rsplit(' ').next().unwrap_or_default().parse()?)
}
