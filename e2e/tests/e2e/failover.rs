//! The operator's promise under restarts and leader loss: an address is never
//! moved, lost or handed out twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Result, ensure};
use ironlb_e2e::{Lab, block_on, create_load_balancer_services, wait_for};
use k8s_openapi::api::core::v1::Service;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use crate::Test;

pub(crate) const TESTS: &[Test] = &[
    ("operator::restart_keeps_every_assigned_ip", restart_keeps_every_assigned_ip),
    (
        "operator::leader_killed_while_services_are_created_loses_and_duplicates_nothing",
        leader_killed_while_services_are_created_loses_and_duplicates_nothing,
    ),
];

/// Every Service of the namespace with its resourceVersion and, once the
/// operator has finished both of its writes to it (the ingress IP, then the
/// `ironlb.io/allocated-from-pool` annotation), its first ingress IP. Waiting
/// for both matters: a snapshot taken between the two would see the second
/// write land later and blame it on whatever came next.
async fn addresses(api: &Api<Service>) -> Result<BTreeMap<String, (Option<String>, String)>> {
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|svc| {
            let annotated = svc.annotations().contains_key("ironlb.io/allocated-from-pool");
            let ip = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()?.ingress.as_ref()?.first()?.ip.clone());
            (svc.name_any(), (ip.filter(|_| annotated), svc.resource_version().unwrap_or_default()))
        })
        .collect())
}

/// Waits until all `count` Services hold an address, and checks no two hold the same.
fn wait_all_served(
    api: &Api<Service>,
    count: usize,
    timeout: Duration,
) -> Result<BTreeMap<String, (Option<String>, String)>> {
    let mut served = 0;
    let all = wait_for(&format!("{count} Services to be served"), timeout, || {
        let now = block_on(addresses(api))?;
        served = now.values().filter(|(ip, _)| ip.is_some()).count();
        Ok((now.len() == count && served == count).then_some(now))
    })
    .map_err(|e| e.context(format!("{served} of {count} served")))?;
    let distinct: BTreeSet<&String> = all.values().filter_map(|(ip, _)| ip.as_ref()).collect();
    ensure!(distinct.len() == count, "{} distinct addresses for {count} Services", distinct.len());
    Ok(all)
}

fn restart_keeps_every_assigned_ip(lab: &Lab) -> Result<()> {
    const SERVICES: usize = 1000;
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-restart")?;
    cleanup.object("ipaddresspool/e2e-restart");
    // Outside the LAN: these addresses are only handed out, never sent to.
    lab.apply("apiVersion: ironlb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: e2e-restart}\nspec: {addresses: [10.201.0.0/16]}\n")?;
    let api: Api<Service> = block_on(async { Ok(Api::namespaced(lab.client().await?, "e2e-restart")) })?;
    block_on(create_load_balancer_services(&api, "svc", SERVICES, 16))?;
    let before = wait_all_served(&api, SERVICES, Duration::from_secs(180))?;

    // A crash of both replicas, then a fresh start.
    for replica in ["0", "1"] {
        lab.run("e2e/lab/operator.sh", &["kill", replica])?.ok()?;
    }
    for replica in ["0", "1"] {
        lab.run("e2e/lab/operator.sh", &["start", replica])?.ok()?;
    }
    // Give the new leader time to restore, reconcile everything and (wrongly) write.
    std::thread::sleep(Duration::from_secs(10));
    let after = block_on(addresses(&api))?;
    let moved: Vec<_> = before.iter().filter(|(name, (ip, _))| after.get(*name).map(|a| &a.0) != Some(ip)).collect();
    ensure!(moved.is_empty(), "{} Services changed address across the restart, e.g. {:?}", moved.len(), moved.first());
    // Nothing needed writing: every Service is exactly as it was.
    let rewritten =
        before.iter().filter(|(name, (_, version))| after.get(*name).map(|a| &a.1) != Some(version)).count();
    ensure!(rewritten == 0, "{rewritten} Services were written to by the restarted operator");
    Ok(())
}

fn leader_killed_while_services_are_created_loses_and_duplicates_nothing(lab: &Lab) -> Result<()> {
    const SERVICES: usize = 300;
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-takeover")?;
    cleanup.object("ipaddresspool/e2e-takeover");
    lab.apply("apiVersion: ironlb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: e2e-takeover}\nspec: {addresses: [10.202.0.0/16]}\n")?;
    let api: Api<Service> = block_on(async { Ok(Api::namespaced(lab.client().await?, "e2e-takeover")) })?;
    let leader = lab.run("e2e/lab/operator.sh", &["leader"])?.ok()?.stdout.trim().to_owned();
    ensure!(leader == "0" || leader == "1", "no operator leads: {leader:?}");

    let creator = {
        let api = api.clone();
        std::thread::spawn(move || block_on(create_load_balancer_services(&api, "svc", SERVICES, 4)))
    };
    std::thread::sleep(Duration::from_secs(1));
    lab.run("e2e/lab/operator.sh", &["kill", &leader])?.ok()?;
    let created = creator.join().map_err(|_| anyhow::anyhow!("the creating thread panicked"));
    // Bring the lab back to two replicas whatever happened.
    let restarted = lab.run("e2e/lab/operator.sh", &["start", &leader]).and_then(|o| o.ok());
    created??;
    restarted?;
    // The standby waits out the lease (15 s) before it takes over.
    wait_all_served(&api, SERVICES, Duration::from_secs(120))?;
    Ok(())
}
