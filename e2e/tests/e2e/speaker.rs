//! ironlb-speaker against the lab: one speaker per node namespace answers ARP and NDP for the
//! addresses its node wins, checked from the client namespace with the tools a user has
//! (`arping`, `ndisc6`, `curl`, `tcpdump`) and against what `kubectl` shows.
//!
//! Services get endpoints as in a cluster: the lab's kubelet stand-in binds and readies their
//! Pods, kube-controller-manager writes the EndpointSlices, and each node namespace forwards
//! the pool addresses to an HTTP server that answers with the node's name.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ironlb_e2e::{Lab, wait_for};

use crate::Test;
use crate::support::{
    SETTLE, allocation, pod, service, setup, speaker_metric, wait_announcer, wait_event, wait_ingress,
};
use crate::wire::{Capture, arping, mac_of, ndisc6, saw_gratuitous_arp, saw_unsolicited_na, wait_arping, wait_curl};

pub(crate) const TESTS: &[Test] = &[
    (
        "speaker::arp_is_answered_by_exactly_the_announcer_and_curl_reaches_it",
        arp_is_answered_by_exactly_the_announcer_and_curl_reaches_it,
    ),
    ("speaker::ipv6_and_dual_stack_resolve_to_the_same_announcer", ipv6_and_dual_stack_resolve_to_the_same_announcer),
    ("speaker::service_without_a_ready_endpoint_is_not_announced", service_without_a_ready_endpoint_is_not_announced),
    (
        "speaker::local_traffic_policy_follows_the_endpoint_with_gratuitous_arp",
        local_traffic_policy_follows_the_endpoint_with_gratuitous_arp,
    ),
    (
        "speaker::excluding_the_announcer_moves_the_address_with_gratuitous_arp_and_na",
        excluding_the_announcer_moves_the_address_with_gratuitous_arp_and_na,
    ),
    ("speaker::node_selectors_and_interfaces_are_respected", node_selectors_and_interfaces_are_respected),
    ("speaker::sharing_services_are_announced_from_one_node", sharing_services_are_announced_from_one_node),
    (
        "speaker::selectorless_service_with_a_hand_made_endpointslice_is_announced",
        selectorless_service_with_a_hand_made_endpointslice_is_announced,
    ),
    ("speaker::metrics_count_what_the_wire_saw", metrics_count_what_the_wire_saw),
];

fn arp_is_answered_by_exactly_the_announcer_and_curl_reaches_it(lab: &Lab) -> Result<()> {
    let ns = "e2e-l2-arp";
    let _cleanup = setup(lab, ns, "")?;
    lab.apply(&pod(ns, "web-1", "web", None, true))?;
    lab.apply(&service(ns, "web", &[], ""))?;
    wait_ingress(lab, ns, "web", &["192.168.2.10"])?;
    let (node, interface) = wait_announcer(lab, ns, ns, "web", None)?;
    ensure!(interface == "eth0", "announced on {interface}, not the LAN interface eth0");

    let mac = mac_of(lab, &node)?;
    wait_arping(lab, "192.168.2.10", &mac)?;
    let replies = arping(lab, "192.168.2.10")?;
    ensure!(replies.len() >= 2 && replies.iter().all(|m| *m == mac), "replies {replies:?}, expected only {mac}");
    wait_curl(lab, "http://192.168.2.10/", &node)?;

    wait_event(lab, ns, "web", "Announcing", &["192.168.2.10", &node, "eth0"])?;
    let described = lab.kubectl(&["describe", "ipaddresspool", ns])?.ok()?.stdout;
    for expected in [node.as_str(), "eth0", "Serving:"] {
        ensure!(described.contains(expected), "kubectl describe ipaddresspool lacks {expected:?}:\n{described}");
    }
    // An address of the pool nobody holds is not answered at all.
    ensure!(arping(lab, "192.168.2.48")?.is_empty(), "an unallocated address was answered");
    Ok(())
}

fn ipv6_and_dual_stack_resolve_to_the_same_announcer(lab: &Lab) -> Result<()> {
    let ns = "e2e-l2-dual";
    let _cleanup = setup(lab, ns, "")?;
    lab.apply(&pod(ns, "web-1", "web", None, true))?;
    lab.apply(&service(ns, "web", &[], "ipFamilyPolicy: RequireDualStack\nipFamilies: [IPv4, IPv6]"))?;
    wait_ingress(lab, ns, "web", &["192.168.2.10", "fd6c:6a7e:5f2b:2::10"])?;
    let (node, _) = wait_announcer(lab, ns, ns, "web", None)?;
    let mac = mac_of(lab, &node)?;
    let mut seen = None;
    wait_for("ndisc6 to resolve the IPv6 address", SETTLE, || {
        seen = ndisc6(lab, "fd6c:6a7e:5f2b:2::10")?;
        Ok(seen.is_some().then_some(()))
    })?;
    ensure!(seen.as_deref() == Some(mac.as_str()), "ndisc6 resolved to {seen:?}, the announcer {node} is {mac}");
    wait_arping(lab, "192.168.2.10", &mac)?;
    wait_curl(lab, "http://[fd6c:6a7e:5f2b:2::10]/", &node)?;
    wait_curl(lab, "http://192.168.2.10/", &node)?;
    Ok(())
}

fn service_without_a_ready_endpoint_is_not_announced(lab: &Lab) -> Result<()> {
    let ns = "e2e-l2-idle";
    let _cleanup = setup(lab, ns, "")?;
    lab.apply(&pod(ns, "web-1", "web", None, false))?;
    lab.apply(&service(ns, "web", &[], ""))?;
    wait_ingress(lab, ns, "web", &["192.168.2.10"])?;
    wait_for("the allocation to be recorded as not serving", SETTLE, || {
        Ok(allocation(lab, ns, ns, "web")?.filter(|entry| entry["serving"] == false).map(drop))
    })?;
    std::thread::sleep(Duration::from_secs(2));
    let entry = allocation(lab, ns, ns, "web")?.context("allocation vanished")?;
    ensure!(entry.get("node").is_none(), "a Service without ready endpoints has an announcer: {entry}");
    ensure!(arping(lab, "192.168.2.10")?.is_empty(), "a Service without ready endpoints is answered");

    // The Pod becomes ready: now it is announced.
    lab.apply(&pod(ns, "web-1", "web", None, true))?;
    let (node, _) = wait_announcer(lab, ns, ns, "web", None)?;
    wait_arping(lab, "192.168.2.10", &mac_of(lab, &node)?)?;
    Ok(())
}

fn local_traffic_policy_follows_the_endpoint_with_gratuitous_arp(lab: &Lab) -> Result<()> {
    let ns = "e2e-l2-local";
    let _cleanup = setup(lab, ns, "")?;
    let nodes = lab.nodes()?;
    let (first, second) = (&nodes[0], &nodes[1]);
    lab.apply(&pod(ns, "web-a", "web", Some(first), true))?;
    lab.apply(&service(ns, "web", &[], "externalTrafficPolicy: Local"))?;
    wait_ingress(lab, ns, "web", &["192.168.2.10"])?;
    let (node, _) = wait_announcer(lab, ns, ns, "web", None)?;
    ensure!(&node == first, "externalTrafficPolicy Local: announced by {node}, the only endpoint is on {first}");
    wait_arping(lab, "192.168.2.10", &mac_of(lab, first)?)?;

    // The endpoint moves to another node: so does the address, announced with gratuitous ARP.
    let capture = Capture::start(lab)?;
    lab.apply(&pod(ns, "web-b", "web", Some(second), true))?;
    lab.kubectl(&["delete", "pod", "-n", ns, "web-a", "--wait=true", "--timeout=60s"])?.ok()?;
    let (moved, _) = wait_announcer(lab, ns, ns, "web", Some(first))?;
    ensure!(&moved == second, "the endpoint is on {second} but {moved} announces");
    let mac = mac_of(lab, second)?;
    wait_arping(lab, "192.168.2.10", &mac)?;
    wait_curl(lab, "http://192.168.2.10/", second)?;
    let frames = capture.finish()?;
    ensure!(saw_gratuitous_arp(&frames, &mac, "192.168.2.10"), "no gratuitous ARP from {mac} captured:\n{frames}");
    Ok(())
}

fn excluding_the_announcer_moves_the_address_with_gratuitous_arp_and_na(lab: &Lab) -> Result<()> {
    let ns = "e2e-l2-move";
    let _cleanup = setup(lab, ns, "")?;
    lab.apply(&pod(ns, "web-1", "web", None, true))?;
    lab.apply(&service(ns, "web", &[], "ipFamilyPolicy: RequireDualStack\nipFamilies: [IPv4, IPv6]"))?;
    let (node, _) = wait_announcer(lab, ns, ns, "web", None)?;
    wait_arping(lab, "192.168.2.10", &mac_of(lab, &node)?)?;

    let label = "node.kubernetes.io/exclude-from-external-load-balancers";
    let capture = Capture::start(lab)?;
    lab.kubectl(&["label", "node", &node, &format!("{label}=true")])?.ok()?;
    let relabelled = Unlabel { lab: lab.clone(), node: node.clone(), label };
    let (moved, _) = wait_announcer(lab, ns, ns, "web", Some(&node))?;
    let mac = mac_of(lab, &moved)?;
    wait_arping(lab, "192.168.2.10", &mac)?;
    wait_curl(lab, "http://192.168.2.10/", &moved)?;
    wait_curl(lab, "http://[fd6c:6a7e:5f2b:2::10]/", &moved)?;
    let frames = capture.finish()?;
    ensure!(saw_gratuitous_arp(&frames, &mac, "192.168.2.10"), "no gratuitous ARP from {mac}:\n{frames}");
    ensure!(saw_unsolicited_na(&frames, &mac, "fd6c:6a7e:5f2b:2::10"), "no unsolicited NA from {mac}:\n{frames}");
    let event = wait_event(lab, ns, "web", "Announcing", &[&moved])?;
    ensure!(event.contains("eth0"), "the Event does not name the interface: {event}");
    drop(relabelled);
    Ok(())
}

/// Removes a label from a node at the end of a test.
struct Unlabel {
    lab: Lab,
    node: String,
    label: &'static str,
}

impl Drop for Unlabel {
    fn drop(&mut self) {
        let _ = self.lab.kubectl(&["label", "node", &self.node, &format!("{}-", self.label)]);
    }
}

fn node_selectors_and_interfaces_are_respected(lab: &Lab) -> Result<()> {
    let ns = "e2e-l2-select";
    let nodes = lab.nodes()?;
    let chosen = &nodes[2];
    let _cleanup = setup(lab, ns, &format!("nodeSelectors: [{{matchLabels: {{kubernetes.io/hostname: {chosen}}}}}]"))?;
    lab.apply(&pod(ns, "web-1", "web", None, true))?;
    lab.apply(&service(ns, "web", &[], ""))?;
    let (node, _) = wait_announcer(lab, ns, ns, "web", None)?;
    ensure!(&node == chosen, "the advertisement selects only {chosen}, but {node} announces");
    wait_arping(lab, "192.168.2.10", &mac_of(lab, chosen)?)?;

    // Only an interface no node has: nobody may announce.
    lab.apply(&format!(
        "apiVersion: ironlb.io/v1alpha1\nkind: L2Advertisement\nmetadata:\n  name: {ns}\nspec:\n  ipAddressPools: [{ns}]\n  interfaces: [eth9]\n"
    ))?;
    wait_for("the announcer to be withdrawn", SETTLE, || {
        Ok(allocation(lab, ns, ns, "web")?.filter(|entry| entry.get("node").is_none()).map(drop))
    })?;
    wait_for("nobody to answer arping", SETTLE, || Ok(arping(lab, "192.168.2.10")?.is_empty().then_some(())))?;
    Ok(())
}

fn sharing_services_are_announced_from_one_node(lab: &Lab) -> Result<()> {
    let ns = "e2e-l2-share";
    let _cleanup = setup(lab, ns, "")?;
    lab.apply(&pod(ns, "web-1", "web", None, true))?;
    lab.apply(&pod(ns, "dns-1", "dns", None, true))?;
    let shared = [("ironlb.io/allow-shared-ip", "key"), ("ironlb.io/loadBalancerIPs", "192.168.2.20")];
    lab.apply(&service(ns, "web", &shared, "ports: [{port: 80}]"))?;
    lab.apply(&service(ns, "dns", &shared, "ports: [{port: 53, protocol: UDP}]"))?;
    wait_ingress(lab, ns, "web", &["192.168.2.20"])?;
    wait_ingress(lab, ns, "dns", &["192.168.2.20"])?;
    let (web, _) = wait_announcer(lab, ns, ns, "web", None)?;
    let (dns, _) = wait_announcer(lab, ns, ns, "dns", None)?;
    ensure!(web == dns, "Services sharing 192.168.2.20 are announced from {web} and {dns}");
    wait_arping(lab, "192.168.2.20", &mac_of(lab, &web)?)?;
    Ok(())
}

fn selectorless_service_with_a_hand_made_endpointslice_is_announced(lab: &Lab) -> Result<()> {
    let ns = "e2e-l2-manual";
    let _cleanup = setup(lab, ns, "")?;
    let nodes = lab.nodes()?;
    let node = &nodes[1];
    let address = lab.in_netns(node, &["ip", "-4", "-o", "addr", "show", "dev", "eth0"])?.ok()?.stdout;
    let address = address.split_whitespace().nth(3).and_then(|a| a.split('/').next()).context("node address")?;
    lab.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: external\n  namespace: {ns}\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  ports: [{{port: 80}}]\n"
    ))?;
    lab.apply(&format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: external-1\n  namespace: {ns}\n  labels: {{kubernetes.io/service-name: external}}\naddressType: IPv4\nports: [{{port: 8080}}]\nendpoints:\n- addresses: [\"{address}\"]\n  nodeName: {node}\n  conditions: {{ready: true}}\n"
    ))?;
    let (announcer, _) = wait_announcer(lab, ns, ns, "external", None)?;
    ensure!(&announcer == node, "the hand-made endpoint is on {node}, but {announcer} announces");
    wait_arping(lab, "192.168.2.10", &mac_of(lab, node)?)?;
    Ok(())
}

fn metrics_count_what_the_wire_saw(lab: &Lab) -> Result<()> {
    let ns = "e2e-l2-metrics";
    let _cleanup = setup(lab, ns, "")?;
    lab.apply(&pod(ns, "web-1", "web", None, true))?;
    lab.apply(&service(ns, "web", &[], ""))?;
    let (node, _) = wait_announcer(lab, ns, ns, "web", None)?;
    wait_arping(lab, "192.168.2.10", &mac_of(lab, &node)?)?;
    let requests = "ironlb_speaker_requests_received_total{interface=\"eth0\",protocol=\"arp\"}";
    let replies = "ironlb_speaker_replies_sent_total{interface=\"eth0\",protocol=\"arp\"}";
    let (requests_before, replies_before) =
        (speaker_metric(lab, &node, requests)?, speaker_metric(lab, &node, replies)?);
    let answered = arping(lab, "192.168.2.10")?.len() as f64;
    let (requests_after, replies_after) = (speaker_metric(lab, &node, requests)?, speaker_metric(lab, &node, replies)?);
    ensure!(requests_after - requests_before >= 3.0, "3 requests sent, {} counted", requests_after - requests_before);
    ensure!(
        replies_after - replies_before >= answered,
        "{answered} replies seen, {} counted",
        replies_after - replies_before
    );
    ensure!(
        speaker_metric(lab, &node, "ironlb_speaker_announced_addresses{family=\"ipv4\"}")? >= 1.0,
        "no address counted"
    );
    // A request for an address of the subnet nobody holds is seen, counted and not answered.
    let not_owned = "ironlb_speaker_requests_ignored_total{reason=\"not_owned\"}";
    let before = speaker_metric(lab, &node, not_owned)?;
    ensure!(arping(lab, "192.168.2.48")?.is_empty(), "an unallocated address was answered");
    ensure!(speaker_metric(lab, &node, not_owned)? >= before + 3.0, "{node} did not count the requests it ignored");
    Ok(())
}
