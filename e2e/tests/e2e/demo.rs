//! `make demo`, the README's first command, as a user runs it.

use anyhow::{Result, ensure};
use ironlb_e2e::Lab;

use crate::Test;

pub(crate) const TESTS: &[Test] =
    &[("demo::walks_the_tutorial_to_an_external_ip", walks_the_tutorial_to_an_external_ip)];

fn walks_the_tutorial_to_an_external_ip(lab: &Lab) -> Result<()> {
    let mut cleanup = lab.cleanup();
    cleanup.object("ipaddresspool/default");
    cleanup.object("service/load-balancer-service");
    let demo = lab.run("e2e/demo.sh", &[])?.ok()?;
    let text = demo.stdout;
    for step in [
        "<pending>",
        "kubectl apply -f -",
        "192.168.2.10",
        "ipaddresspools.ironlb.io",
        "Allocations:",
        "IPAllocated",
        "is reversed",
        "FIELD: addresses",
        "make lab-down",
    ] {
        ensure!(text.contains(step), "the demo did not show {step:?}:\n{text}");
    }
    Ok(())
}
