//! `ironlb migrate` against the lab: a cluster moving from MetalLB. The tutorial's MetalLB
//! ConfigMap, as a file, is converted by the built `ironlb` binary and applied with `kubectl
//! apply`; the tutorial's Service then gets `192.168.2.10`, a node answers ARP for it, and a
//! Service still carrying MetalLB's annotations gets what they ask for, unchanged.
//!
//! Isolation: the converted pool is the tutorial's own (`default`, 192.168.2.10-192.168.2.49),
//! the range every layer-2 test and the demo use, and the test asserts the exact address, so no
//! other pool may exist: any auto-assign pool could serve the Service first (the older pool
//! wins). The suite runs one test at a time and each test removes its pools when it ends, so
//! that holds whatever the order. Rather than assume it, the test first checks that there is
//! no pool at all and no `default` L2Advertisement (e.g. left by `make demo` on a reused lab)
//! and fails naming them: overwriting or deleting someone else's `default` would be worse than
//! stopping. It removes its namespace, pool and advertisement at the end, pass or fail.

use anyhow::{Context, Result, ensure};
use ironlb_e2e::Lab;

use crate::Test;
use crate::support::{pod, service, wait_announcer, wait_ingress};
use crate::wire::{mac_of, wait_arping};

pub(crate) const TESTS: &[Test] = &[(
    "migrate::tutorial_configmap_converted_and_applied_serves_the_tutorial_address",
    tutorial_configmap_converted_and_applied_serves_the_tutorial_address,
)];

/// The tutorial's ConfigMap, exactly as `metallb-config.yaml` in the tutorial (shared with the
/// CLI's unit tests).
const TUTORIAL_CONFIGMAP: &str = "cli/tests/fixtures/tutorial-configmap.yaml";
const TUTORIAL_ADDRESS: &str = "192.168.2.10";

fn tutorial_configmap_converted_and_applied_serves_the_tutorial_address(lab: &Lab) -> Result<()> {
    let ns = "e2e-migrate";
    no_pool_exists(lab)?;
    let mut cleanup = lab.cleanup();
    cleanup.namespace(ns)?;
    cleanup.object("ipaddresspool/default");
    cleanup.object("l2advertisement/default");

    // As in the tutorial: the Service waits at <pending> until the configuration is applied.
    lab.apply(&pod(ns, "frontend-1", "load-balancer-service", None, true))?;
    lab.apply(&service(ns, "load-balancer-service", &[], ""))?;
    let pending = lab.kubectl(&["get", "service", "-n", ns, "load-balancer-service", "-o", "wide"])?.ok()?.stdout;
    ensure!(pending.contains("<pending>"), "before the migration the Service should be pending:\n{pending}");

    // --strict: the tutorial's configuration must convert completely, or nothing is printed.
    let migrate = lab.run(&ironlb_binary(lab)?, &["migrate", "--strict", "-f", TUTORIAL_CONFIGMAP])?.ok()?;
    ensure!(
        migrate.stderr.contains("converted 1 IPAddressPool and 1 L2Advertisement; nothing left out"),
        "unexpected report:\n{}",
        migrate.stderr
    );
    let applied = lab.apply(&migrate.stdout)?.stdout;
    for created in ["ipaddresspool.ironlb.io/default", "l2advertisement.ironlb.io/default"] {
        ensure!(applied.contains(created), "kubectl apply did not make {created}:\n{applied}\n{}", migrate.stdout);
    }

    wait_ingress(lab, ns, "load-balancer-service", &[TUTORIAL_ADDRESS])?;
    // The converted L2Advertisement selects the pool: a node announces the address and answers ARP.
    let (node, _interface) = wait_announcer(lab, "default", ns, "load-balancer-service", None)?;
    wait_arping(lab, TUTORIAL_ADDRESS, &mac_of(lab, &node)?)?;

    // Services need no migration: MetalLB's own annotation spellings still pick the pool and address.
    let metallb_annotations =
        [("metallb.universe.tf/address-pool", "default"), ("metallb.universe.tf/loadBalancerIPs", "192.168.2.20")];
    lab.apply(&service(ns, "annotated", &metallb_annotations, ""))?;
    wait_ingress(lab, ns, "annotated", &["192.168.2.20"])?;
    Ok(())
}

/// The `ironlb` binary as `make bins` builds it, beside the binaries the lab runs
/// (`target/debug/`, see `e2e/lab/lib.sh`).
fn ironlb_binary(lab: &Lab) -> Result<String> {
    let binary = lab.root().join("target/debug/ironlb");
    ensure!(binary.is_file(), "{} is missing: `make bins` builds it", binary.display());
    binary.to_str().map(str::to_owned).context("the repository path is not UTF-8")
}

/// Fails, naming them, when pools exist (they could serve the Service before the converted
/// pool) or when the L2Advertisement this test would overwrite and delete exists.
fn no_pool_exists(lab: &Lab) -> Result<()> {
    let pools = lab.kubectl(&["get", "ipaddresspools", "-o", "name"])?.ok()?.stdout;
    let advertisement =
        lab.kubectl(&["get", "l2advertisement", "default", "--ignore-not-found", "-o", "name"])?.ok()?;
    let existing: Vec<&str> =
        pools.lines().chain(advertisement.stdout.lines()).filter(|l| !l.trim().is_empty()).collect();
    ensure!(
        existing.is_empty(),
        "this test needs a lab without pools, but found {existing:?} (left by `make demo` or a test's failed cleanup?); \
         delete them or run `make lab-down`"
    );
    Ok(())
}
