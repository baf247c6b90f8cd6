//! ironlb at scale: one pool of thousands of Services, all announced, and newcomers that take
//! nothing from them.
//!
//! A pool status lists only its first allocations; the full record is in the pool's
//! IPAllocationSlices, and the speakers announce from those. The test checks it as a user would:
//! every Service has an address, the speakers together answer for as many addresses as
//! `kubectl get ipaddresspools` counts as assigned, and `arping` from the client finds exactly
//! one MAC for a random sample of them, before and after more Services arrive in a namespace
//! that sorts first (so their entries go at the head of the allocation record).
//!
//! The Services are selectorless, each with a hand-made EndpointSlice holding one ready endpoint
//! (kube-controller-manager writes EndpointSlices for selected Pods at 20 requests per second:
//! far too slow for thousands).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ironlb_e2e::{
    Cleanup, Lab, block_on, create_endpoint_slices, create_load_balancer_services, delete_load_balancer_services,
};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::ListParams;

use crate::Test;
use crate::support::{advertised_pool, speaker_metric};
use crate::wire::{arping, mac_of};

pub(crate) const TESTS: &[Test] = &[(
    "scale::five_thousand_services_in_one_pool_are_all_announced_and_none_is_evicted_by_newcomers",
    five_thousand_services_in_one_pool_are_all_announced_and_none_is_evicted_by_newcomers,
)];

const POOL: &str = "e2e-scale";
const NAMESPACE: &str = "e2e-scale";
/// The newcomers' namespace: sorts before every other, so their allocations come first in
/// Service order (and in the pool status's listing of the first entries).
const FIRST_NAMESPACE: &str = "aaa-e2e-scale-first";
const SERVICES: usize = 5_000;
const NEWCOMERS: usize = 100;
/// Services are `svc-0`, `svc-1`, … in both namespaces.
const PREFIX: &str = "svc";
/// 5,632 addresses, clear of `192.168.2.0/24`, where the lab's hosts live and the other tests
/// and benches take their addresses. On the LAN only if the LAN is wider than a /24 (see
/// [`check_the_lan_holds_the_pool`]).
const FIRST: Ipv4Addr = Ipv4Addr::new(192, 168, 8, 0);
const LAST: Ipv4Addr = Ipv4Addr::new(192, 168, 29, 255);
/// Addresses resolved with `arping` from the client, before and after the newcomers.
const SAMPLE: usize = 200;
/// `arping`s in flight at once (each is a process of its own, about 0.6 s when answered).
const ARPING_PARALLELISM: usize = 16;
/// Creations and deletions in flight at once (as the operator bench).
const PARALLELISM: usize = 64;
/// From the first create until every Service has an address.
const SERVED_TIMEOUT: Duration = Duration::from_secs(300);
/// From every Service having an address until the speakers answer for all of them.
const ANNOUNCED_TIMEOUT: Duration = Duration::from_secs(120);
/// Namespaces go after their Services have been deleted (in parallel, by the test): only their
/// EndpointSlices are left, which the namespace controller deletes as one collection.
const NAMESPACE_DELETION_TIMEOUT: Duration = Duration::from_secs(600);
const ANNOUNCED: &str = "ironlb_speaker_announced_addresses{family=\"ipv4\"}";

fn five_thousand_services_in_one_pool_are_all_announced_and_none_is_evicted_by_newcomers(lab: &Lab) -> Result<()> {
    check_the_lan_holds_the_pool(lab)?;
    let nodes = lab.nodes()?;
    let endpoints = node_endpoints(lab)?;
    let mut cleanup = ScaleCleanup::new(lab);
    cleanup.cleanup.namespace(NAMESPACE)?;
    cleanup.cleanup.namespace(FIRST_NAMESPACE)?;
    // Pinned to the test's namespaces, so no other pool can serve them and this one serves
    // nobody else.
    let pinned = format!("serviceAllocation: {{priority: 1, namespaces: [{NAMESPACE}, {FIRST_NAMESPACE}]}}");
    advertised_pool(lab, &mut cleanup.cleanup, POOL, &[&format!("{FIRST}-{LAST}")], &pinned, "")?;

    let started = Instant::now();
    cleanup.services.push((NAMESPACE, SERVICES));
    create_served_services(lab, NAMESPACE, SERVICES, &endpoints)?;
    println!("scale: {SERVICES} Services and their EndpointSlices created in {:.1} s", started.elapsed().as_secs_f64());
    let addresses = wait_served(lab, NAMESPACE, SERVICES, started)?;
    println!("scale: all {SERVICES} Services have an address after {:.1} s", started.elapsed().as_secs_f64());
    let distinct: BTreeSet<Ipv4Addr> = addresses.values().copied().collect();
    ensure!(distinct.len() == SERVICES, "{} distinct addresses for {SERVICES} Services", distinct.len());
    let outside: Vec<&Ipv4Addr> = distinct.iter().filter(|ip| !(FIRST..=LAST).contains(*ip)).collect();
    ensure!(outside.is_empty(), "addresses outside the pool {FIRST}-{LAST}: {outside:?}");
    let announced = wait_announced(lab, &nodes, SERVICES as u64, ANNOUNCED_TIMEOUT)?;
    println!("scale: the speakers answer for {announced} addresses after {:.1} s", started.elapsed().as_secs_f64());

    let macs: BTreeMap<String, String> =
        nodes.iter().map(|node| Ok((mac_of(lab, node)?, node.clone()))).collect::<Result<_>>()?;
    let seed = fastrand::u64(..);
    let mut sample = fastrand::Rng::with_seed(seed).choose_multiple(distinct.iter().copied(), SAMPLE);
    sample.sort();
    println!("scale: arping sample of {SAMPLE} addresses (seed {seed})");
    let before = resolve_each(lab, &sample, &macs)?;

    let newcomers_started = Instant::now();
    cleanup.services.push((FIRST_NAMESPACE, NEWCOMERS));
    create_served_services(lab, FIRST_NAMESPACE, NEWCOMERS, &endpoints)?;
    let newcomers = wait_served(lab, FIRST_NAMESPACE, NEWCOMERS, newcomers_started)?;
    let taken: Vec<&Ipv4Addr> = newcomers.values().filter(|ip| distinct.contains(*ip)).collect();
    ensure!(taken.is_empty(), "newcomers got addresses the first {SERVICES} Services hold: {taken:?}");
    let announced = wait_announced(lab, &nodes, (SERVICES + NEWCOMERS) as u64, ANNOUNCED_TIMEOUT)?;
    println!(
        "scale: {NEWCOMERS} newcomers in {FIRST_NAMESPACE} served and announced after {:.1} s; the speakers answer \
         for {announced} addresses",
        newcomers_started.elapsed().as_secs_f64()
    );

    // Nobody was evicted: every first Service keeps its address, and the sample is still answered,
    // each address by exactly one node, the same as before.
    let after_addresses = served(lab, NAMESPACE)?;
    let lost: Vec<String> = addresses
        .iter()
        .filter(|(name, ip)| after_addresses.get(*name) != Some(ip))
        .map(|(name, ip)| format!("{name} had {ip}, now {:?}", after_addresses.get(name)))
        .collect();
    ensure!(
        lost.is_empty(),
        "{} Services lost or changed their address: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let after = resolve_each(lab, &sample, &macs)?;
    let moved: Vec<String> = sample
        .iter()
        .filter(|ip| before.get(ip) != after.get(ip))
        .map(|ip| format!("{ip}: {:?} -> {:?}", before.get(ip), after.get(ip)))
        .collect();
    println!("scale: {} of {SAMPLE} sampled addresses changed MAC after the newcomers", moved.len());
    ensure!(moved.is_empty(), "sampled addresses moved to another node although nothing changed for them: {moved:?}");
    Ok(())
}

/// Fails, before anything is made, unless the pool lies in the lab's IPv4 LAN: a speaker
/// announces an address only on an interface whose subnet holds it, and the client resolves only
/// addresses on its link.
fn check_the_lan_holds_the_pool(lab: &Lab) -> Result<()> {
    let lan = lab.var("LAB_LAN_V4")?;
    let (network, prefix) = lan.split_once('/').with_context(|| format!("LAB_LAN_V4={lan} is not a CIDR"))?;
    let network: Ipv4Addr = network.parse().with_context(|| format!("LAB_LAN_V4={lan}"))?;
    let prefix: u32 = prefix.parse().with_context(|| format!("LAB_LAN_V4={lan}"))?;
    ensure!(prefix <= 32, "LAB_LAN_V4={lan}: prefix above 32");
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    let inside = |ip: Ipv4Addr| u32::from(ip) & mask == u32::from(network) & mask;
    if !(inside(FIRST) && inside(LAST)) {
        bail!(
            "the lab's LAN (LAB_LAN_V4={lan}) cannot hold this test's pool {FIRST}-{LAST} ({SERVICES} Services need \
             more addresses than a /24 has): the speakers announce only addresses of their interface's subnet and \
             the client resolves only on-link addresses. The lab needs a wider LAN, e.g. LAB_LAN_V4=192.168.0.0/19 \
             with the hosts' eth0 prefix (lab_add_host in e2e/lab/lib.sh) taken from it"
        );
    }
    Ok(())
}

/// One ready endpoint per node: (its IPv4 address, its name), from `LAB_NODE_ADDRS`
/// (`<name>,<IPv4>,<IPv6>,<MAC>,<bridge port>` per node). A lab Pod's address is its node's.
fn node_endpoints(lab: &Lab) -> Result<Vec<(Ipv4Addr, String)>> {
    lab.var("LAB_NODE_ADDRS")?
        .split_whitespace()
        .map(|word| {
            let mut fields = word.split(',');
            let (Some(name), Some(v4)) = (fields.next(), fields.next()) else { bail!("LAB_NODE_ADDRS: {word:?}") };
            Ok((v4.parse().with_context(|| format!("LAB_NODE_ADDRS: {word:?}"))?, name.to_owned()))
        })
        .collect()
}

/// `count` LoadBalancer Services in `namespace`, each with a ready endpoint (spread over the
/// nodes), created in parallel.
fn create_served_services(lab: &Lab, namespace: &str, count: usize, endpoints: &[(Ipv4Addr, String)]) -> Result<()> {
    block_on(async {
        let client = lab.client().await?;
        let services: Api<Service> = Api::namespaced(client.clone(), namespace);
        let slices: Api<EndpointSlice> = Api::namespaced(client, namespace);
        futures::try_join!(
            create_load_balancer_services(&services, PREFIX, count, PARALLELISM),
            create_endpoint_slices(&slices, PREFIX, count, endpoints, PARALLELISM),
        )?;
        Ok(())
    })
}

/// The IPv4 ingress address of each Service of `namespace` that has one, by name. Listed from
/// the API server's watch cache (resourceVersion=0), so polling costs it little.
fn served(lab: &Lab, namespace: &str) -> Result<BTreeMap<String, Ipv4Addr>> {
    let services = block_on(async {
        let api: Api<Service> = Api::namespaced(lab.client().await?, namespace);
        Ok(api.list(&ListParams::default().match_any()).await?.items)
    })?;
    Ok(services
        .iter()
        .filter_map(|svc| {
            let ingress = svc.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?;
            let ip = ingress.iter().find_map(|i| i.ip.as_ref()?.parse::<Ipv4Addr>().ok())?;
            Some((svc.metadata.name.clone()?, ip))
        })
        .collect())
}

/// Waits until all `count` Services of `namespace` have an address (at most [`SERVED_TIMEOUT`]
/// from `started`); returns them.
fn wait_served(lab: &Lab, namespace: &str, count: usize, started: Instant) -> Result<BTreeMap<String, Ipv4Addr>> {
    let mut last_report = Instant::now();
    loop {
        let addresses = served(lab, namespace)?;
        if addresses.len() >= count {
            return Ok(addresses);
        }
        ensure!(
            started.elapsed() < SERVED_TIMEOUT,
            "only {} of {count} Services in {namespace} have an address after {SERVED_TIMEOUT:?}",
            addresses.len()
        );
        if last_report.elapsed() > Duration::from_secs(30) {
            println!("scale: {} of {count} Services in {namespace} served", addresses.len());
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// IPv4 addresses assigned in the whole cluster, as `kubectl get ipaddresspools` counts them
/// (the exact `status.ipv4.assigned` behind its Assigned column), summed over the pools.
fn assigned_v4(lab: &Lab) -> Result<u64> {
    let out = lab.kubectl(&["get", "ipaddresspools", "-o", "json"])?.ok()?;
    let pools: serde_json::Value = serde_json::from_str(&out.stdout)?;
    pools["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|pool| pool["status"]["ipv4"]["assigned"].as_str())
        .map(|n| n.parse::<u64>().with_context(|| format!("status.ipv4.assigned {n:?}")))
        .sum()
}

/// Waits until the speakers together answer for as many IPv4 addresses as the cluster has
/// assigned, at least `expected`, on two polls in a row (a take-over briefly counts an address on
/// two nodes). Every allocated address has a ready endpoint and lies in the LAN, so every one
/// must be announced exactly once: the test owns the lab, so any other pool's allocations are
/// leftovers, and they count on both sides. Returns the sum.
fn wait_announced(lab: &Lab, nodes: &[String], expected: u64, timeout: Duration) -> Result<u64> {
    let started = Instant::now();
    let (mut settled, mut last_report) = (false, Instant::now());
    loop {
        let per_node = nodes
            .iter()
            .map(|node| Ok((node.as_str(), speaker_metric(lab, node, ANNOUNCED)? as u64)))
            .collect::<Result<Vec<_>>>()?;
        let announced: u64 = per_node.iter().map(|(_, n)| n).sum();
        let assigned = assigned_v4(lab)?;
        if announced == assigned && assigned >= expected {
            if settled {
                return Ok(announced);
            }
            settled = true;
        } else {
            settled = false;
        }
        ensure!(
            started.elapsed() < timeout,
            "after {timeout:?} the speakers answer for {announced} IPv4 addresses ({per_node:?}); the pools count \
             {assigned} assigned, at least {expected} expected"
        );
        if last_report.elapsed() > Duration::from_secs(30) {
            println!("scale: {announced} of {assigned} assigned addresses announced ({per_node:?})");
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// `arping`s each address from the client ([`ARPING_PARALLELISM`] at once) and checks that
/// exactly one MAC answers, a node's; returns the answering node of each.
fn resolve_each(
    lab: &Lab,
    addresses: &[Ipv4Addr],
    macs: &BTreeMap<String, String>,
) -> Result<BTreeMap<Ipv4Addr, String>> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(addresses.len()));
    std::thread::scope(|scope| {
        for _ in 0..ARPING_PARALLELISM {
            scope.spawn(|| {
                while let Some(address) = addresses.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let replies = arping(lab, &address.to_string());
                    results.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((*address, replies));
                }
            });
        }
    });
    let mut answered = BTreeMap::new();
    let mut wrong = Vec::new();
    for (address, replies) in results.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()) {
        let replies = replies.with_context(|| format!("arping {address}"))?;
        let distinct: BTreeSet<&String> = replies.iter().collect();
        match distinct.into_iter().collect::<Vec<_>>()[..] {
            [mac] if macs.contains_key(mac) => {
                answered.insert(address, macs[mac].clone());
            }
            _ => wrong.push(format!("{address}: {replies:?}")),
        }
    }
    ensure!(
        wrong.is_empty(),
        "{} of {} addresses not answered by exactly one node (node MACs {macs:?}): {:?}",
        wrong.len(),
        addresses.len(),
        &wrong[..wrong.len().min(20)]
    );
    Ok(answered)
}

/// The test's [`Cleanup`], which first deletes the Services it made, in parallel: the namespace
/// controller would delete them one by one at 20 a second, over four minutes for 5,100.
struct ScaleCleanup {
    lab: Lab,
    cleanup: Cleanup,
    services: Vec<(&'static str, usize)>,
}

impl ScaleCleanup {
    fn new(lab: &Lab) -> Self {
        Self { lab: lab.clone(), cleanup: lab.cleanup(), services: Vec::new() }
    }
}

impl Drop for ScaleCleanup {
    fn drop(&mut self) {
        let started = Instant::now();
        for (namespace, count) in std::mem::take(&mut self.services) {
            let deleted = block_on(async {
                let api: Api<Service> = Api::namespaced(self.lab.client().await?, namespace);
                delete_load_balancer_services(&api, PREFIX, count, PARALLELISM).await
            });
            if let Err(error) = deleted {
                eprintln!(
                    "scale: deleting the Services of {namespace} failed ({error:#}); the namespace deletion will"
                );
            }
        }
        println!("scale: Services deleted in {:.1} s", started.elapsed().as_secs_f64());
        self.cleanup.delete_now(NAMESPACE_DELETION_TIMEOUT);
    }
}
