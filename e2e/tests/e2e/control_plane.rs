//! The lab itself: the pinned Kubernetes release, the nodes, dual-stack
//! Services, and the LAN between the namespaces.

use anyhow::{Context, Result, ensure};
use ironlb_core::address::{AddressRange, parse_entry};
use ironlb_e2e::{Lab, block_on};
use k8s_openapi::api::core::v1::Node;
use kube::{Api, api::ListParams};

use crate::Test;

pub(crate) const TESTS: &[Test] = &[
    ("control_plane::runs_kubernetes_v1_37_2", runs_kubernetes_v1_37_2),
    ("control_plane::has_one_node_per_node_namespace", has_one_node_per_node_namespace),
    ("control_plane::creates_dual_stack_services", creates_dual_stack_services),
    ("lan::client_reaches_every_node_over_both_families", client_reaches_every_node_over_both_families),
    ("lan::root_namespace_holds_no_lab_address", root_namespace_holds_no_lab_address),
];

fn runs_kubernetes_v1_37_2(lab: &Lab) -> Result<()> {
    let version = lab.kubectl(&["version", "-o", "json"])?.ok()?;
    let version: serde_json::Value = serde_json::from_str(&version.stdout)?;
    for side in ["clientVersion", "serverVersion"] {
        ensure!(version[side]["gitVersion"] == "v1.37.2", "{side} is {}, not v1.37.2", version[side]);
    }
    let printed = lab.run("kube-apiserver", &["--version"])?.ok()?;
    ensure!(printed.stdout.trim() == "Kubernetes v1.37.2", "kube-apiserver --version printed {:?}", printed.stdout);
    Ok(())
}

fn has_one_node_per_node_namespace(lab: &Lab) -> Result<()> {
    let mut expected = lab.nodes()?;
    expected.sort();
    ensure!(expected.len() == 3, "the lab should have three nodes, LAB_NODES is {expected:?}");
    let nodes = block_on(async {
        let nodes: Api<Node> = Api::all(lab.client().await?);
        anyhow::Ok(nodes.list(&ListParams::default()).await?.items)
    })?;
    let mut names: Vec<String> = nodes.iter().filter_map(|n| n.metadata.name.clone()).collect();
    names.sort();
    ensure!(names == expected, "Nodes {names:?} do not match the node namespaces {expected:?}");

    let namespaces = lab.run("ip", &["netns", "list"])?.ok()?.stdout;
    for node in &nodes {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        ensure!(namespaces.lines().any(|l| l.split_whitespace().next() == Some(name)), "no netns {name}");
        let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref()).context("a Node without addresses")?;
        let internal: Vec<&str> =
            addresses.iter().filter(|a| a.type_ == "InternalIP").map(|a| a.address.as_str()).collect();
        ensure!(
            internal.iter().any(|a| a.starts_with("192.168.2.")) && internal.iter().any(|a| a.contains(':')),
            "Node {name} should have an InternalIP on the LAN in each family, has {internal:?}"
        );
    }
    Ok(())
}

fn creates_dual_stack_services(lab: &Lab) -> Result<()> {
    let service = r#"
apiVersion: v1
kind: Service
metadata: {name: e2e-dual-stack, namespace: default}
spec:
  ipFamilyPolicy: RequireDualStack
  ports: [{port: 80}]
"#;
    lab.kubectl_with_input(&["apply", "-f", "-"], service)?.ok()?;
    let ips = lab.kubectl(&["get", "service", "e2e-dual-stack", "-o", "jsonpath={.spec.clusterIPs}"]);
    lab.kubectl(&["delete", "service", "e2e-dual-stack", "--wait=false"])?.ok()?;
    let ips: Vec<String> = serde_json::from_str(&ips?.ok()?.stdout)?;
    ensure!(ips.len() == 2, "a RequireDualStack Service got {ips:?}");
    ensure!(ips[0].contains(':') != ips[1].contains(':'), "both ClusterIPs are of one family: {ips:?}");
    Ok(())
}

fn client_reaches_every_node_over_both_families(lab: &Lab) -> Result<()> {
    let client = lab.var("LAB_CLIENT")?.to_owned();
    for node in lab.nodes()? {
        let addresses = block_on(async {
            let nodes: Api<Node> = Api::all(lab.client().await?);
            anyhow::Ok(nodes.get(&node).await?.status.and_then(|s| s.addresses).unwrap_or_default())
        })?;
        for address in addresses.iter().filter(|a| a.type_ == "InternalIP") {
            lab.in_netns(&client, &["ping", "-c", "1", "-W", "2", &address.address])?
                .ok()
                .with_context(|| format!("{client} cannot reach {node} at {}", address.address))?;
        }
    }
    Ok(())
}

fn root_namespace_holds_no_lab_address(lab: &Lab) -> Result<()> {
    let addresses = lab.run("ip", &["-o", "address"])?.ok()?.stdout;
    let lans: Vec<AddressRange> = ["LAB_LAN_V4", "LAB_LAN_V6"]
        .into_iter()
        .map(|name| {
            let lan = lab.var(name)?;
            parse_entry(lan).map_err(|error| anyhow::anyhow!("{name}={lan}: {error}"))
        })
        .collect::<Result<_>>()?;
    for line in addresses.lines() {
        // `2: eth0    inet 192.0.2.2/24 brd …`: the fourth word is the address.
        let Some(address) = line.split_whitespace().nth(3).and_then(|word| word.split('/').next()) else { continue };
        let Ok(address) = address.parse::<std::net::IpAddr>() else { continue };
        ensure!(!lans.iter().any(|lan| lan.contains(address)), "the root namespace has a lab address: {line}");
    }
    Ok(())
}
