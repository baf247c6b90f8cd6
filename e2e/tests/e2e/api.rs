//! The ironlb.io API as a user meets it through `kubectl`: valid pools are
//! taken and shown, bad ones are refused by the API server itself with a
//! message that names the bad entry, and `kubectl explain` documents them.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ironlb_e2e::{Lab, wait_for};

use crate::{Test, chart::chart_crds};

pub(crate) const TESTS: &[Test] = &[
    (
        "api::tutorial_pool_is_accepted_and_listed_with_its_columns",
        tutorial_pool_is_accepted_and_listed_with_its_columns,
    ),
    (
        "api::bad_pools_are_refused_naming_the_entry_and_change_nothing",
        bad_pools_are_refused_naming_the_entry_and_change_nothing,
    ),
    (
        "api::unusable_entries_are_refused_naming_the_entry_and_the_block",
        unusable_entries_are_refused_naming_the_entry_and_the_block,
    ),
    ("api::explain_documents_pool_addresses", explain_documents_pool_addresses),
    ("api::l2advertisement_is_accepted", l2advertisement_is_accepted),
    (
        "api::an_advertisement_with_a_selector_kubernetes_would_refuse_is_not_ready_naming_it",
        an_advertisement_with_a_selector_kubernetes_would_refuse_is_not_ready_naming_it,
    ),
];

fn pool(name: &str, addresses: &[&str]) -> String {
    let addresses = serde_json::to_string(addresses).unwrap_or_default();
    format!(
        "apiVersion: ironlb.io/v1alpha1\nkind: IPAddressPool\nmetadata:\n  name: {name}\nspec:\n  addresses: {addresses}\n"
    )
}

fn tutorial_pool_is_accepted_and_listed_with_its_columns(lab: &Lab) -> Result<()> {
    lab.kubectl_with_input(&["apply", "-f", "-"], &pool("e2e-tutorial", &["192.168.2.10-192.168.2.49"]))?.ok()?;
    let listed = lab.kubectl(&["get", "ipaddresspools", "e2e-tutorial"]);
    let wide = lab.kubectl(&["get", "ipaddresspools", "e2e-tutorial", "-o", "wide"]);
    lab.kubectl(&["delete", "ipaddresspool", "e2e-tutorial"])?.ok()?;
    let (listed, wide) = (listed?.ok()?.stdout, wide?.ok()?.stdout);

    // kubectl prints the CRD's printer columns, upper-cased: those of
    // priority 0 always, the others with -o wide.
    let crds = chart_crds(lab)?;
    let pools = crds.iter().find(|c| c.spec.names.kind == "IPAddressPool").context("no IPAddressPool CRD")?;
    let columns = pools.spec.versions[0].additional_printer_columns.clone().unwrap_or_default();
    ensure!(columns.len() >= 3, "IPAddressPool has only {} printer columns", columns.len());
    for column in &columns {
        let shown = if column.priority.unwrap_or(0) == 0 { &listed } else { &wide };
        let header = shown.lines().next().unwrap_or_default();
        ensure!(header.contains(&column.name.to_uppercase()), "column {} missing from:\n{shown}", column.name);
    }
    let row = listed.lines().nth(1).unwrap_or_default();
    ensure!(row.starts_with("e2e-tutorial") && row.contains("192.168.2.10-192.168.2.49"), "row: {row}");
    Ok(())
}

/// Each entry: a pool's addresses and the text the refusal must contain.
const BAD_POOLS: &[(&[&str], &str)] = &[
    (&[], "spec.addresses"),
    (&["not-an-address"], "not-an-address"),
    (&["192.168.2.300"], "192.168.2.300"),
    (&["10.0.0.0/33"], "10.0.0.0/33"),
    (&["192.168.2.5/24"], "192.168.2.5/24"),
    (&["fd00::1/64"], "fd00::1/64"),
    (&["192.168.2.10-fd00::10"], "192.168.2.10-fd00::10"),
    (&["192.168.2.49-192.168.2.10"], "192.168.2.49-192.168.2.10"),
    (&["fd00::20-fd00::10"], "fd00::20-fd00::10"),
    (&["192.168.2.9-192.168.2.10", "192.168.2.30-192.168.2.25"], "192.168.2.30-192.168.2.25"),
];

fn bad_pools_are_refused_naming_the_entry_and_change_nothing(lab: &Lab) -> Result<()> {
    let good = pool("e2e-untouched", &["192.168.2.10-192.168.2.49", "fd6c:6a7e:5f2b:2::10-fd6c:6a7e:5f2b:2::49"]);
    lab.kubectl_with_input(&["apply", "-f", "-"], &good)?.ok()?;
    let result = refuse_each_bad_pool(lab);
    lab.kubectl(&["delete", "ipaddresspool", "e2e-untouched"])?.ok()?;
    result
}

fn refuse_each_bad_pool(lab: &Lab) -> Result<()> {
    let refusals: Vec<(&[&str], String)> =
        BAD_POOLS.iter().map(|&(addresses, named)| (addresses, named.to_owned())).collect();
    refuse_each(lab, "e2e-bad", &refusals)
}

/// Entries the API server used to take that no LAN address can be, with the block each must
/// be refused for: the lowest reserved block it shares an address with, and why.
const UNUSABLE_ENTRIES: &[(&str, &str)] = &[
    ("224.0.0.0/24", "224.0.0.0/4 (multicast)"),
    ("ff02::/16", "ff00::/8 (multicast)"),
    ("127.0.0.0/8", "127.0.0.0/8 (loopback)"),
    ("::1", "::1/128 (loopback)"),
    ("0.0.0.0/0", "0.0.0.0/8 (unspecified)"),
    ("::/0", "::/128 (unspecified)"),
    ("169.254.0.0/16", "169.254.0.0/16 (link-local)"),
    ("fe80::/64", "fe80::/10 (link-local)"),
    ("255.255.255.255/32", "255.255.255.255/32 (limited broadcast)"),
    ("126.0.0.0-128.0.0.0", "127.0.0.0/8 (loopback)"),
];

fn unusable_entries_are_refused_naming_the_entry_and_the_block(lab: &Lab) -> Result<()> {
    let refusals: Vec<(&[&str], String)> = UNUSABLE_ENTRIES
        .iter()
        .map(|(entry, block)| {
            (std::slice::from_ref(entry), format!("spec.addresses entry \"{entry}\" overlaps {block}"))
        })
        .collect();
    refuse_each(lab, "e2e-unusable", &refusals)
}

/// Applies each pool (named `{name}-{index}`) and checks that the API server refuses it with
/// words holding the given text, and that the refusals changed nothing in the cluster.
fn refuse_each(lab: &Lab, name: &str, refusals: &[(&[&str], String)]) -> Result<()> {
    let before = ironlb_objects(lab)?;
    for (index, (addresses, named)) in refusals.iter().enumerate() {
        let refused = lab.kubectl_with_input(&["apply", "-f", "-"], &pool(&format!("{name}-{index}"), addresses))?;
        let refused = refused.refused().with_context(|| format!("the pool {addresses:?} was accepted"))?;
        ensure!(refused.stderr.contains(named), "refusing {addresses:?} did not name {named:?}:\n{}", refused.stderr);
    }
    let after = ironlb_objects(lab)?;
    ensure!(before == after, "refused pools changed the cluster:\nbefore {before:?}\nafter {after:?}");
    Ok(())
}

/// Every ironlb object with its generation and spec: equal snapshots mean nothing was created,
/// removed or edited in between. Not the resourceVersion: the operator writes a pool's status
/// (its announcer, its endpoints' state) whenever the cluster changes, which no refused pool
/// causes and which would make this comparison fail at random.
fn ironlb_objects(lab: &Lab) -> Result<Vec<(String, String)>> {
    let listed = lab.kubectl(&["get", "ipaddresspools,l2advertisements", "-o", "json"])?.ok()?;
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout)?;
    Ok(listed["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|o| (o["metadata"]["name"].to_string(), format!("{} {}", o["metadata"]["generation"], o["spec"])))
        .collect())
}

fn explain_documents_pool_addresses(lab: &Lab) -> Result<()> {
    let explained = lab.kubectl(&["explain", "ipaddresspool.spec.addresses"])?.ok()?.stdout;
    let crds = chart_crds(lab)?;
    let pools = crds.iter().find(|c| c.spec.names.kind == "IPAddressPool").context("no IPAddressPool CRD")?;
    let schema = serde_json::to_value(&pools.spec.versions[0].schema)?;
    let documented = schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["addresses"]["description"]
        .as_str()
        .context("spec.addresses has no description in the CRD")?;
    // kubectl re-wraps the text, so compare word by word.
    let words = |text: &str| text.split_whitespace().map(str::to_owned).collect::<Vec<_>>().join(" ");
    ensure!(explained.contains("FIELD: addresses"), "kubectl explain printed:\n{explained}");
    ensure!(words(&explained).contains(&words(documented)), "kubectl explain lacks the docs:\n{explained}");
    Ok(())
}

fn l2advertisement_is_accepted(lab: &Lab) -> Result<()> {
    let advertisement = "apiVersion: ironlb.io/v1alpha1\nkind: L2Advertisement\nmetadata:\n  name: e2e-l2\nspec:\n  ipAddressPools: [default]\n  interfaces: [eth0]\n";
    lab.kubectl_with_input(&["apply", "-f", "-"], advertisement)?.ok()?;
    let listed = lab.kubectl(&["get", "l2advertisements", "e2e-l2", "-o", "jsonpath={.spec.interfaces}"]);
    lab.kubectl(&["delete", "l2advertisement", "e2e-l2"])?.ok()?;
    ensure!(listed?.ok()?.stdout == r#"["eth0"]"#, "the L2Advertisement was not kept as applied");
    Ok(())
}

/// The API server keeps a selector with a misspelt operator (it checks selectors of built-in
/// kinds only); the operator says in the advertisement's Ready condition that it selects nothing,
/// naming the selector, and clears it once the spelling is fixed.
fn an_advertisement_with_a_selector_kubernetes_would_refuse_is_not_ready_naming_it(lab: &Lab) -> Result<()> {
    // It names a pool that does not exist, so it changes no announcement of the other tests.
    let advertisement = |operator: &str| {
        format!(
            "apiVersion: ironlb.io/v1alpha1\nkind: L2Advertisement\nmetadata:\n  name: e2e-typo\nspec:\n  \
             ipAddressPools: [e2e-none]\n  nodeSelectors:\n  - matchExpressions:\n    - {{key: zone, operator: {operator}, \
             values: [a]}}\n"
        )
    };
    let ready = || -> Result<Option<(String, String, String)>> {
        let path = r#"jsonpath={range .status.conditions[?(@.type=="Ready")]}{.status}|{.reason}|{.message}{end}"#;
        let shown = lab.kubectl(&["get", "l2advertisement", "e2e-typo", "-o", path])?.ok()?.stdout;
        let mut parts = shown.splitn(3, '|').map(str::to_owned);
        Ok(match (parts.next(), parts.next(), parts.next()) {
            (Some(status), Some(reason), Some(message)) => Some((status, reason, message)),
            _ => None,
        })
    };
    let result = (|| {
        lab.kubectl_with_input(&["apply", "-f", "-"], &advertisement("in"))?.ok()?;
        let (_, reason, message) =
            wait_for("Ready=False on the misspelt advertisement", Duration::from_secs(20), || {
                Ok(ready()?.filter(|(status, _, _)| status == "False"))
            })?;
        ensure!(reason == "InvalidSelector", "reason {reason}: {message}");
        ensure!(
            message.contains(
                r#"spec.nodeSelectors[0]: label selector operator "in" is not one of In, NotIn, Exists, DoesNotExist"#
            ),
            "the message does not name the selector: {message}"
        );
        lab.kubectl_with_input(&["apply", "-f", "-"], &advertisement("In"))?.ok()?;
        wait_for("Ready=True once fixed", Duration::from_secs(20), || {
            Ok(ready()?.filter(|(status, _, _)| status == "True"))
        })?;
        Ok(())
    })();
    lab.kubectl(&["delete", "l2advertisement", "e2e-typo", "--ignore-not-found"])?.ok()?;
    result
}
