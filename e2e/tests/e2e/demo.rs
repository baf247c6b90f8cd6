//! `make demo`, the README's first command, as a user runs it.

use anyhow::{Result, ensure};
use ironlb_e2e::Lab;

use crate::Test;

pub(crate) const TESTS: &[Test] =
    &[("demo::walks_the_tutorial_to_an_answered_external_ip", walks_the_tutorial_to_an_answered_external_ip)];

fn walks_the_tutorial_to_an_answered_external_ip(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.object("ipaddresspool/default");
    cleanup.object("l2advertisement/default");
    cleanup.object("service/load-balancer-service");
    cleanup.object("deployment/frontend");
    let demo = lab.run("e2e/demo.sh", &[])?.ok()?;
    let text = demo.stdout;
    for step in [
        "<pending>",
        "kubectl apply -f -",
        "192.168.2.10",
        "ipaddresspools.ironlb.io",
        "Allocations:",
        "IPAllocated",
        "Announcing",
        "bytes from",
        "is reversed",
        "FIELD: addresses",
        "make lab-down",
    ] {
        ensure!(text.contains(step), "the demo did not show {step:?}:\n{text}");
    }
    // The node the pool status names is the one whose MAC answers ARP and whose server answers HTTP.
    let node = lab.kubectl(&["get", "ipaddresspool", "default", "-o", "jsonpath={.status.allocations[0].node}"])?;
    let node = node.ok()?.stdout;
    let mac = lab.in_netns(&node, &["cat", "/sys/class/net/eth0/address"])?.ok()?.stdout;
    ensure!(text.contains(&format!("bytes from {}", mac.trim())), "arping was not answered by {node} ({mac}):\n{text}");
    ensure!(text.lines().any(|line| line.trim() == node), "curl was not answered by {node}:\n{text}");
    Ok(())
}
