//! One object the binaries cannot decode wedges nothing: the operator and the speakers skip it,
//! say so (a Warning Event on it, a metric), and every other object keeps working.
//!
//! The object is made as it happens in a real cluster: written while the CRD's schema was
//! looser (here `spec` of L2Advertisement accepted anything), then the schema is tightened
//! again. The API server does not revalidate stored objects, so the watch keeps delivering it.

use anyhow::{Context, Result, ensure};
use ironlb_e2e::{Lab, wait_for};

use crate::Test;
use crate::support::{SETTLE, events, pod, service, setup, wait_announcer, wait_ingress};
use crate::wire::{mac_of, wait_arping};

pub(crate) const TESTS: &[Test] = &[(
    "unreadable::an_object_written_before_a_schema_tightening_is_skipped_and_everything_else_works",
    an_object_written_before_a_schema_tightening_is_skipped_and_everything_else_works,
)];

const CRD: &str = "l2advertisements.ironlb.io";
const BAD: &str = "e2e-unreadable";

/// Puts the CRD back as it was, also when the test fails half-way, and removes the bad object.
struct RestoreCrd<'a> {
    lab: &'a Lab,
    original: serde_json::Value,
}

impl RestoreCrd<'_> {
    fn restore(&self) -> Result<()> {
        self.lab.kubectl_with_input(&["replace", "-f", "-"], &self.original.to_string())?.ok()?;
        Ok(())
    }
}

impl Drop for RestoreCrd<'_> {
    fn drop(&mut self) {
        let _ = self.restore();
        let _ = self.lab.kubectl(&["delete", "l2advertisement", BAD, "--ignore-not-found"]);
    }
}

fn an_object_written_before_a_schema_tightening_is_skipped_and_everything_else_works(lab: &Lab) -> Result<()> {
    let text = lab.kubectl(&["get", "crd", CRD, "-o", "json"])?.ok()?.stdout;
    let mut original: serde_json::Value = serde_json::from_str(&text).context("the CRD as JSON")?;
    for field in ["resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"] {
        original["metadata"].as_object_mut().context("metadata")?.remove(field);
    }
    original.as_object_mut().context("the CRD")?.remove("status");
    let restore = RestoreCrd { lab, original: original.clone() };

    // A looser schema, as an older release might have had, and an object only it accepts.
    let mut loose = original.clone();
    loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
        serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    lab.kubectl_with_input(&["replace", "-f", "-"], &loose.to_string())?.ok()?;
    let bad = format!(
        "apiVersion: ironlb.io/v1alpha1\nkind: L2Advertisement\nmetadata:\n  name: {BAD}\nspec:\n  interfaces: eth0\n"
    );
    wait_for("the loose schema to take effect", SETTLE, || Ok(lab.apply(&bad).ok()))?;
    restore.restore()?;

    // Every other object keeps working: a new pool with its own (new) L2Advertisement is
    // allocated from, recorded with an announcer, and answered on the LAN.
    let ns = "e2e-unreadable";
    let _cleanup = setup(lab, ns, "")?;
    lab.apply(&pod(ns, "web-1", "web", None, true))?;
    lab.apply(&service(ns, "web", &[], ""))?;
    wait_ingress(lab, ns, "web", &["192.168.2.10"])?;
    let (node, _) = wait_announcer(lab, ns, ns, "web", None)?;
    wait_arping(lab, "192.168.2.10", &mac_of(lab, &node)?)?;

    // The skipped object says why, where its owner looks.
    let warnings = wait_for("an UnreadableObject Event on the bad object", SETTLE, || {
        let found = events(lab, "default", BAD, "UnreadableObject")?;
        Ok((!found.is_empty()).then_some(found))
    })?;
    ensure!(warnings[0].contains("cannot read this L2Advertisement"), "the Event: {warnings:?}");
    let metrics = lab.run("curl", &["-fsS", "--max-time", "5", "http://127.0.0.1:17472/metrics"])?.ok()?.stdout;
    ensure!(
        metrics
            .lines()
            .any(|line| line.starts_with("ironlb_operator_unreadable_objects_total{kind=\"L2Advertisement\"}")),
        "the operator counts it:\n{metrics}"
    );
    eprintln!("unreadable L2Advertisement skipped; new Service allocated and answered by {node}: {warnings:?}");
    Ok(())
}
