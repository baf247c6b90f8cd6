//! ironlb-operator against the lab: every allocation rule a user relies on,
//! driven with `kubectl` as a user would and checked on what `kubectl get`,
//! `kubectl describe` and the Events show.
//!
//! Each test makes its own namespace and pools and removes them (namespaces
//! first, waiting, so no Service of one test lingers into the next).

use std::time::Duration;

use anyhow::{Result, ensure};
use ironlb_e2e::{Lab, wait_for};

use crate::Test;
use crate::support::{SETTLE, events, ingress, pool, service, wait_event, wait_ingress};

pub(crate) const TESTS: &[Test] = &[
    (
        "operator::tutorial_service_gets_the_first_address_of_the_pool",
        tutorial_service_gets_the_first_address_of_the_pool,
    ),
    (
        "operator::services_of_other_types_and_classes_are_left_alone",
        services_of_other_types_and_classes_are_left_alone,
    ),
    (
        "operator::service_that_stops_being_a_load_balancer_gives_its_address_back",
        service_that_stops_being_a_load_balancer_gives_its_address_back,
    ),
    (
        "operator::address_pool_annotation_picks_the_pool_in_every_spelling",
        address_pool_annotation_picks_the_pool_in_every_spelling,
    ),
    ("operator::requested_addresses_are_honoured", requested_addresses_are_honoured),
    (
        "operator::auto_assign_false_pool_is_used_only_when_asked_for",
        auto_assign_false_pool_is_used_only_when_asked_for,
    ),
    (
        "operator::service_allocation_pins_pools_to_namespaces_by_priority",
        service_allocation_pins_pools_to_namespaces_by_priority,
    ),
    ("operator::avoid_buggy_ips_skips_dot_zero_and_dot_255", avoid_buggy_ips_skips_dot_zero_and_dot_255),
    (
        "operator::dual_stack_service_gets_both_families_from_one_pool",
        dual_stack_service_gets_both_families_from_one_pool,
    ),
    ("operator::services_with_one_sharing_key_share_an_address", services_with_one_sharing_key_share_an_address),
    ("operator::pending_service_is_served_when_capacity_appears", pending_service_is_served_when_capacity_appears),
    (
        "operator::overlapping_pool_gets_a_conflict_naming_the_older_pool",
        overlapping_pool_gets_a_conflict_naming_the_older_pool,
    ),
    ("operator::pool_edit_moves_its_services_with_an_event", pool_edit_moves_its_services_with_an_event),
    (
        "operator::bad_requests_fail_with_the_reason_and_change_nothing",
        bad_requests_fail_with_the_reason_and_change_nothing,
    ),
    ("operator::metrics_count_addresses_and_allocations", metrics_count_addresses_and_allocations),
];

/// Asserts the Service keeps no address for a while (the operator had its chance).
fn stays_pending(lab: &Lab, namespace: &str, name: &str) -> Result<()> {
    std::thread::sleep(Duration::from_secs(2));
    let held = ingress(lab, namespace, name)?;
    ensure!(held.is_empty(), "{namespace}/{name} should be pending but has {held:?}");
    Ok(())
}

fn tutorial_service_gets_the_first_address_of_the_pool(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-tutorial")?;
    lab.apply(&service("e2e-tutorial", "load-balancer-service", &[], ""))?;
    let pending =
        lab.kubectl(&["get", "service", "-n", "e2e-tutorial", "load-balancer-service", "-o", "wide"])?.ok()?;
    ensure!(pending.stdout.contains("<pending>"), "before any pool the Service should be pending:\n{}", pending.stdout);

    cleanup.object("ipaddresspool/default");
    lab.apply(&pool("default", &["192.168.2.10-192.168.2.49"], ""))?;
    wait_ingress(lab, "e2e-tutorial", "load-balancer-service", &["192.168.2.10"])?;

    let wide = lab.kubectl(&["get", "service", "-n", "e2e-tutorial", "load-balancer-service", "-o", "wide"])?.ok()?;
    ensure!(wide.stdout.contains("192.168.2.10"), "EXTERNAL-IP is not shown:\n{}", wide.stdout);
    let svc = lab.kubectl(&["get", "service", "-n", "e2e-tutorial", "load-balancer-service", "-o", "json"])?.ok()?;
    let svc: serde_json::Value = serde_json::from_str(&svc.stdout)?;
    ensure!(svc["status"]["loadBalancer"]["ingress"][0]["ipMode"] == "VIP", "ipMode is not VIP: {svc}");
    ensure!(svc["metadata"]["annotations"]["ironlb.io/allocated-from-pool"] == "default", "no allocated-from-pool");
    wait_event(lab, "e2e-tutorial", "load-balancer-service", "IPAllocated", &["192.168.2.10", "default"])?;

    let described = wait_for("the pool status to list the allocation", SETTLE, || {
        let out = lab.kubectl(&["describe", "ipaddresspool", "default"])?.ok()?.stdout;
        Ok((out.contains("load-balancer-service") && out.contains("192.168.2.10")).then_some(out))
    })?;
    for expected in ["e2e-tutorial", "Ready", "Observed Generation", "v4=39"] {
        ensure!(described.contains(expected), "kubectl describe ipaddresspool lacks {expected:?}:\n{described}");
    }
    Ok(())
}

fn services_of_other_types_and_classes_are_left_alone(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-types")?;
    cleanup.object("ipaddresspool/e2e-types");
    lab.apply(&pool("e2e-types", &["192.168.2.10-192.168.2.49"], ""))?;
    lab.apply(&service("e2e-types", "cluster-ip", &[], "type: ClusterIP"))?;
    lab.apply(&service("e2e-types", "other-class", &[], "loadBalancerClass: example.com/other"))?;
    lab.apply(&service("e2e-types", "ours", &[], ""))?;
    // Once ours is served, the operator has seen the others too.
    wait_ingress(lab, "e2e-types", "ours", &["192.168.2.10"])?;
    for name in ["cluster-ip", "other-class"] {
        stays_pending(lab, "e2e-types", name)?;
        let annotations =
            lab.kubectl(&["get", "service", "-n", "e2e-types", name, "-o", "jsonpath={.metadata.annotations}"])?;
        ensure!(!annotations.ok()?.stdout.contains("ironlb.io/allocated-from-pool"), "{name} was annotated");
    }
    Ok(())
}

fn service_that_stops_being_a_load_balancer_gives_its_address_back(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-retype")?;
    cleanup.object("ipaddresspool/e2e-retype");
    lab.apply(&pool("e2e-retype", &["192.168.2.10-192.168.2.49"], ""))?;
    lab.apply(&service("e2e-retype", "web", &[], ""))?;
    wait_ingress(lab, "e2e-retype", "web", &["192.168.2.10"])?;
    lab.kubectl(&["patch", "service", "-n", "e2e-retype", "web", "-p", r#"{"spec":{"type":"ClusterIP"}}"#])?.ok()?;
    wait_ingress(lab, "e2e-retype", "web", &[])?;
    wait_for("the allocated-from-pool annotation to go", SETTLE, || {
        let out =
            lab.kubectl(&["get", "service", "-n", "e2e-retype", "web", "-o", "jsonpath={.metadata.annotations}"])?;
        Ok((!out.ok()?.stdout.contains("ironlb.io/allocated-from-pool")).then_some(()))
    })?;
    wait_event(lab, "e2e-retype", "web", "IPReleased", &["192.168.2.10"])?;
    // The address is free again: a new Service gets it.
    lab.apply(&service("e2e-retype", "next", &[], ""))?;
    wait_ingress(lab, "e2e-retype", "next", &["192.168.2.10"])
}

fn address_pool_annotation_picks_the_pool_in_every_spelling(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-named")?;
    cleanup.object("ipaddresspool/e2e-general");
    cleanup.object("ipaddresspool/e2e-reserved");
    lab.apply(&pool("e2e-general", &["192.168.2.10-192.168.2.19"], ""))?;
    lab.apply(&pool("e2e-reserved", &["192.168.2.40-192.168.2.49"], "autoAssign: false"))?;
    for (n, key) in
        ["ironlb.io/address-pool", "metallb.io/address-pool", "metallb.universe.tf/address-pool"].iter().enumerate()
    {
        let name = format!("named-{n}");
        lab.apply(&service("e2e-named", &name, &[(key, "e2e-reserved")], ""))?;
        let expected = format!("192.168.2.{}", 40 + n);
        wait_ingress(lab, "e2e-named", &name, &[&expected])?;
    }
    Ok(())
}

fn requested_addresses_are_honoured(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-requested")?;
    cleanup.object("ipaddresspool/e2e-requested");
    lab.apply(&pool("e2e-requested", &["192.168.2.10-192.168.2.49", "fd6c:6a7e:5f2b:2::10-fd6c:6a7e:5f2b:2::49"], ""))?;
    lab.apply(&service("e2e-requested", "by-annotation", &[("ironlb.io/loadBalancerIPs", "192.168.2.33")], ""))?;
    lab.apply(&service("e2e-requested", "by-metallb", &[("metallb.universe.tf/loadBalancerIPs", "192.168.2.34")], ""))?;
    lab.apply(&service("e2e-requested", "by-spec", &[], "loadBalancerIP: 192.168.2.35"))?;
    lab.apply(&service(
        "e2e-requested",
        "dual",
        &[("ironlb.io/loadBalancerIPs", "192.168.2.36,fd6c:6a7e:5f2b:2::36")],
        "ipFamilyPolicy: RequireDualStack\nipFamilies: [IPv4, IPv6]",
    ))?;
    wait_ingress(lab, "e2e-requested", "by-annotation", &["192.168.2.33"])?;
    wait_ingress(lab, "e2e-requested", "by-metallb", &["192.168.2.34"])?;
    wait_ingress(lab, "e2e-requested", "by-spec", &["192.168.2.35"])?;
    wait_ingress(lab, "e2e-requested", "dual", &["192.168.2.36", "fd6c:6a7e:5f2b:2::36"])
}

fn auto_assign_false_pool_is_used_only_when_asked_for(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-manual")?;
    cleanup.object("ipaddresspool/e2e-manual");
    lab.apply(&pool("e2e-manual", &["192.168.2.40-192.168.2.49"], "autoAssign: false"))?;
    lab.apply(&service("e2e-manual", "unasked", &[], ""))?;
    wait_event(lab, "e2e-manual", "unasked", "AllocationFailed", &["autoAssign"])?;
    stays_pending(lab, "e2e-manual", "unasked")?;
    lab.apply(&service("e2e-manual", "asked", &[("ironlb.io/address-pool", "e2e-manual")], ""))?;
    wait_ingress(lab, "e2e-manual", "asked", &["192.168.2.40"])
}

fn service_allocation_pins_pools_to_namespaces_by_priority(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-team-a")?;
    cleanup.namespace("e2e-team-b")?;
    lab.kubectl(&["label", "namespace", "e2e-team-b", "tier=gold"])?.ok()?;
    for name in ["e2e-general", "e2e-team-a-first", "e2e-team-a-second", "e2e-gold"] {
        cleanup.object(&format!("ipaddresspool/{name}"));
    }
    lab.apply(&pool("e2e-general", &["192.168.2.10-192.168.2.19"], ""))?;
    lab.apply(&pool(
        "e2e-team-a-second",
        &["192.168.2.30-192.168.2.34"],
        "serviceAllocation: {priority: 20, namespaces: [e2e-team-a]}",
    ))?;
    lab.apply(&pool(
        "e2e-team-a-first",
        &["192.168.2.20-192.168.2.24"],
        "serviceAllocation: {priority: 10, namespaces: [e2e-team-a]}",
    ))?;
    lab.apply(&pool(
        "e2e-gold",
        &["192.168.2.40-192.168.2.44"],
        "serviceAllocation: {priority: 10, namespaceSelectors: [{matchLabels: {tier: gold}}]}",
    ))?;
    lab.apply(&service("e2e-team-a", "web", &[], ""))?;
    lab.apply(&service("e2e-team-b", "web", &[], ""))?;
    lab.apply(&service("default", "e2e-general-web", &[], ""))?;
    cleanup.object("service/e2e-general-web");
    wait_ingress(lab, "e2e-team-a", "web", &["192.168.2.20"])?;
    wait_ingress(lab, "e2e-team-b", "web", &["192.168.2.40"])?;
    let general = wait_ingress(lab, "default", "e2e-general-web", &["192.168.2.10"]);
    lab.kubectl(&["delete", "service", "-n", "default", "e2e-general-web"])?.ok()?;
    general
}

fn avoid_buggy_ips_skips_dot_zero_and_dot_255(lab: &Lab) -> Result<()> {
    // Addresses outside the LAN: the operator only hands them out, nothing is sent to them.
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-buggy")?;
    cleanup.object("ipaddresspool/e2e-buggy");
    lab.apply(&pool("e2e-buggy", &["10.200.0.255-10.200.1.1"], "avoidBuggyIPs: true"))?;
    lab.apply(&service("e2e-buggy", "first", &[], ""))?;
    wait_ingress(lab, "e2e-buggy", "first", &["10.200.1.1"])?;
    lab.apply(&service("e2e-buggy", "second", &[], ""))?;
    wait_event(lab, "e2e-buggy", "second", "AllocationFailed", &["e2e-buggy"])?;
    stays_pending(lab, "e2e-buggy", "second")
}

fn dual_stack_service_gets_both_families_from_one_pool(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-dual")?;
    cleanup.object("ipaddresspool/e2e-v4-only");
    cleanup.object("ipaddresspool/e2e-dual");
    lab.apply(&pool("e2e-v4-only", &["192.168.2.10-192.168.2.19"], ""))?;
    lab.apply(&pool("e2e-dual", &["192.168.2.40-192.168.2.49", "fd6c:6a7e:5f2b:2::40/125"], ""))?;
    lab.apply(&service("e2e-dual", "both", &[], "ipFamilyPolicy: RequireDualStack\nipFamilies: [IPv6, IPv4]"))?;
    lab.apply(&service("e2e-dual", "v6", &[], "ipFamilyPolicy: SingleStack\nipFamilies: [IPv6]"))?;
    wait_ingress(lab, "e2e-dual", "both", &["fd6c:6a7e:5f2b:2::40", "192.168.2.40"])?;
    wait_ingress(lab, "e2e-dual", "v6", &["fd6c:6a7e:5f2b:2::41"])
}

fn services_with_one_sharing_key_share_an_address(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-shared")?;
    cleanup.object("ipaddresspool/e2e-shared");
    lab.apply(&pool("e2e-shared", &["192.168.2.10-192.168.2.49"], ""))?;
    let key = [("ironlb.io/allow-shared-ip", "web")];
    lab.apply(&service("e2e-shared", "http", &key, "ports: [{port: 80}]"))?;
    wait_ingress(lab, "e2e-shared", "http", &["192.168.2.10"])?;
    lab.apply(&service("e2e-shared", "https", &key, "ports: [{port: 443}]"))?;
    lab.apply(&service(
        "e2e-shared",
        "dns",
        &[("metallb.universe.tf/allow-shared-ip", "web")],
        "ports: [{port: 53, protocol: UDP}]",
    ))?;
    wait_ingress(lab, "e2e-shared", "https", &["192.168.2.10"])?;
    wait_ingress(lab, "e2e-shared", "dns", &["192.168.2.10"])?;
    // Port 80/TCP is taken on .10, so the same key cannot share it.
    lab.apply(&service("e2e-shared", "http-again", &key, "ports: [{port: 80}]"))?;
    wait_ingress(lab, "e2e-shared", "http-again", &["192.168.2.11"])?;
    // Without the key, no sharing at all.
    lab.apply(&service("e2e-shared", "alone", &[], "ports: [{port: 8080}]"))?;
    wait_ingress(lab, "e2e-shared", "alone", &["192.168.2.12"])
}

fn pending_service_is_served_when_capacity_appears(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-capacity")?;
    cleanup.object("ipaddresspool/e2e-capacity");
    lab.apply(&pool("e2e-capacity", &["192.168.2.10/32"], ""))?;
    lab.apply(&service("e2e-capacity", "first", &[], ""))?;
    wait_ingress(lab, "e2e-capacity", "first", &["192.168.2.10"])?;
    lab.apply(&service("e2e-capacity", "second", &[], ""))?;
    lab.apply(&service("e2e-capacity", "third", &[], ""))?;
    wait_event(lab, "e2e-capacity", "second", "AllocationFailed", &["e2e-capacity"])?;
    // An address released: the waiting Service takes it without being touched.
    lab.kubectl(&["delete", "service", "-n", "e2e-capacity", "first"])?.ok()?;
    let second_or_third = wait_for("a pending Service to take the released address", SETTLE, || {
        let second = ingress(lab, "e2e-capacity", "second")?;
        let third = ingress(lab, "e2e-capacity", "third")?;
        Ok(match (second.as_slice(), third.as_slice()) {
            ([ip], []) if ip == "192.168.2.10" => Some("third"),
            ([], [ip]) if ip == "192.168.2.10" => Some("second"),
            _ => None,
        })
    })?;
    // The pool enlarged: the last one is served too.
    lab.apply(&pool("e2e-capacity", &["192.168.2.10-192.168.2.11"], ""))?;
    wait_ingress(lab, "e2e-capacity", second_or_third, &["192.168.2.11"])
}

fn overlapping_pool_gets_a_conflict_naming_the_older_pool(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-conflict")?;
    cleanup.object("ipaddresspool/e2e-older");
    cleanup.object("ipaddresspool/e2e-newer");
    lab.apply(&pool("e2e-older", &["192.168.2.10-192.168.2.20"], "autoAssign: false"))?;
    std::thread::sleep(Duration::from_secs(1)); // creation timestamps have one-second resolution
    lab.apply(&pool("e2e-newer", &["192.168.2.15-192.168.2.25"], ""))?;
    let condition = wait_for("the Conflict condition on e2e-newer", SETTLE, || {
        let out = lab
            .kubectl(&[
                "get",
                "ipaddresspool",
                "e2e-newer",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Conflict\")]}",
            ])?
            .ok()?;
        Ok((out.stdout.contains("\"True\"")).then_some(out.stdout))
    })?;
    ensure!(condition.contains("e2e-older") && condition.contains("192.168.2.15"), "condition: {condition}");
    let events = wait_for("a Conflict Event on e2e-newer", SETTLE, || {
        let found = events(lab, "default", "e2e-newer", "Conflict")?;
        Ok((!found.is_empty()).then_some(found))
    })?;
    ensure!(events.iter().any(|e| e.contains("e2e-older")), "Conflict Events: {events:?}");
    let older = lab.kubectl(&[
        "get",
        "ipaddresspool",
        "e2e-older",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Conflict\")].status}",
    ])?;
    ensure!(older.ok()?.stdout == "False", "the older pool must not be in conflict");
    // Nothing is allocated from the overlap: the newer pool starts after it.
    lab.apply(&service("e2e-conflict", "web", &[], ""))?;
    wait_ingress(lab, "e2e-conflict", "web", &["192.168.2.21"])
}

fn pool_edit_moves_its_services_with_an_event(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-moved")?;
    cleanup.object("ipaddresspool/e2e-moved");
    lab.apply(&pool("e2e-moved", &["192.168.2.10-192.168.2.19"], ""))?;
    lab.apply(&service("e2e-moved", "web", &[], ""))?;
    wait_ingress(lab, "e2e-moved", "web", &["192.168.2.10"])?;
    lab.apply(&pool("e2e-moved", &["192.168.2.30-192.168.2.39"], ""))?;
    wait_ingress(lab, "e2e-moved", "web", &["192.168.2.30"])?;
    wait_event(lab, "e2e-moved", "web", "IPReleased", &["192.168.2.10", "e2e-moved"])?;
    // Deleting the pool sends the Service back to pending, with an Event.
    lab.kubectl(&["delete", "ipaddresspool", "e2e-moved"])?.ok()?;
    wait_ingress(lab, "e2e-moved", "web", &[])?;
    wait_event(lab, "e2e-moved", "web", "IPReleased", &["192.168.2.30", "deleted"])?;
    Ok(())
}

fn bad_requests_fail_with_the_reason_and_change_nothing(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-bad")?;
    cleanup.object("ipaddresspool/e2e-bad");
    cleanup.object("ipaddresspool/e2e-bad-other");
    lab.apply(&pool("e2e-bad", &["192.168.2.10-192.168.2.19"], ""))?;
    lab.apply(&pool("e2e-bad-other", &["192.168.2.40-192.168.2.49"], "autoAssign: false"))?;
    lab.apply(&service("e2e-bad", "holder", &[("ironlb.io/loadBalancerIPs", "192.168.2.15")], ""))?;
    wait_ingress(lab, "e2e-bad", "holder", &["192.168.2.15"])?;
    let pools_before = wait_for("the pool status to record the holder", SETTLE, || {
        let out = lab.kubectl(&["get", "ipaddresspool", "e2e-bad", "-o", "jsonpath={.status.allocations}"])?.ok()?;
        Ok(out.stdout.contains("holder").then_some(out.stdout))
    })?;

    /// A Service name, its annotations, and what the AllocationFailed Event must name.
    type BadRequest<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[BadRequest<'_>] = &[
        ("malformed", &[("ironlb.io/loadBalancerIPs", "192.168.2.300")], &["192.168.2.300"]),
        ("out-of-pool", &[("ironlb.io/loadBalancerIPs", "192.168.2.99")], &["192.168.2.99"]),
        ("taken", &[("ironlb.io/loadBalancerIPs", "192.168.2.15")], &["192.168.2.15", "e2e-bad/holder"]),
        ("wrong-family", &[("ironlb.io/loadBalancerIPs", "fd6c:6a7e:5f2b:2::15")], &["fd6c:6a7e:5f2b:2::15"]),
        ("too-many", &[("ironlb.io/loadBalancerIPs", "192.168.2.16,192.168.2.17")], &["192.168.2.16", "192.168.2.17"]),
        ("unknown-pool", &[("ironlb.io/address-pool", "no-such-pool")], &["no-such-pool"]),
        (
            "contradiction",
            &[("ironlb.io/address-pool", "e2e-bad-other"), ("ironlb.io/loadBalancerIPs", "192.168.2.16")],
            &["e2e-bad-other", "192.168.2.16"],
        ),
        (
            "spellings-disagree",
            &[("ironlb.io/address-pool", "e2e-bad"), ("metallb.universe.tf/address-pool", "e2e-bad-other")],
            &["ironlb.io/address-pool", "metallb.universe.tf/address-pool"],
        ),
    ];
    for (name, annotations, says) in cases {
        lab.apply(&service("e2e-bad", name, annotations, ""))?;
        wait_event(lab, "e2e-bad", name, "AllocationFailed", says)?;
    }
    for (name, ..) in cases {
        stays_pending(lab, "e2e-bad", name)?;
    }
    ensure!(ingress(lab, "e2e-bad", "holder")? == ["192.168.2.15"], "the valid Service was disturbed");
    let pools_after =
        lab.kubectl(&["get", "ipaddresspool", "e2e-bad", "-o", "jsonpath={.status.allocations}"])?.ok()?.stdout;
    ensure!(pools_before == pools_after, "the pool's allocations changed:\n{pools_before}\n{pools_after}");
    Ok(())
}

fn metrics_count_addresses_and_allocations(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.namespace("e2e-metrics")?;
    cleanup.object("ipaddresspool/e2e-metrics");
    lab.apply(&pool("e2e-metrics", &["192.168.2.10-192.168.2.49"], ""))?;
    lab.apply(&service("e2e-metrics", "web", &[], ""))?;
    wait_ingress(lab, "e2e-metrics", "web", &["192.168.2.10"])?;
    let leader = lab.run("e2e/lab/operator.sh", &["leader"])?.ok()?.stdout.trim().parse::<u16>()?;
    let url = format!("http://127.0.0.1:{}/metrics", 17472 + leader);
    let text = wait_for("the pool in the leader's metrics", SETTLE, || {
        let text = lab.run("curl", &["-fsS", &url])?.ok()?.stdout;
        Ok(text.contains("pool=\"e2e-metrics\"").then_some(text))
    })?;
    for family in
        ["ironlb_operator_pool_addresses", "ironlb_operator_allocations", "ironlb_operator_reconcile_duration_seconds"]
    {
        ensure!(text.contains(family), "/metrics lacks {family}:\n{text}");
    }
    for endpoint in ["healthz", "readyz"] {
        lab.run("curl", &["-fsS", &format!("http://127.0.0.1:{}/{endpoint}", 17472 + leader)])?.ok()?;
    }
    Ok(())
}
