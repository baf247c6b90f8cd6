//! The Helm chart as the lab installed it with the real `helm`.

use anyhow::{Context, Result, ensure};
use ironlb_e2e::{Lab, block_on};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;

use crate::Test;

pub(crate) const TESTS: &[Test] = &[
    ("chart::helm_install_puts_the_chart_crds_in_place", helm_install_puts_the_chart_crds_in_place),
    ("chart::lints_clean", lints_clean),
    ("chart::refuses_an_unknown_value_by_name", refuses_an_unknown_value_by_name),
];

/// The CRDs the chart ships, as files.
pub(crate) fn chart_crds(lab: &Lab) -> Result<Vec<CustomResourceDefinition>> {
    let dir = lab.root().join("charts/ironlb/crds");
    let mut crds = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        crds.push(serde_yaml::from_str(&text).with_context(|| format!("{} is not a CRD", path.display()))?);
    }
    crds.sort_by(|a: &CustomResourceDefinition, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(crds)
}

fn helm_install_puts_the_chart_crds_in_place(lab: &Lab) -> Result<()> {
    let status = lab.helm(&["status", "ironlb", "--namespace", "ironlb-system", "-o", "json"])?.ok()?;
    let status: serde_json::Value = serde_json::from_str(&status.stdout)?;
    ensure!(status["info"]["status"] == "deployed", "the ironlb release is {}", status["info"]["status"]);

    let shipped = chart_crds(lab)?;
    let names: Vec<_> = shipped.iter().filter_map(|c| c.metadata.name.as_deref()).collect();
    ensure!(names == ["ipaddresspools.ironlb.io", "l2advertisements.ironlb.io"], "the chart ships the CRDs {names:?}");
    for file in shipped {
        let name = file.metadata.name.clone().unwrap_or_default();
        let served = block_on(async {
            let crds: Api<CustomResourceDefinition> = Api::all(lab.client().await?);
            anyhow::Ok(crds.get(&name).await?)
        })?;
        let established = served
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        ensure!(established, "CRD {name} is not Established");
        ensure!(served.spec.scope == "Cluster", "CRD {name} is {}-scoped", served.spec.scope);
        // The API server keeps the schema, CEL rules, printer columns and
        // subresources exactly as the chart gave them.
        ensure!(
            serde_json::to_value(&served.spec.versions)? == serde_json::to_value(&file.spec.versions)?,
            "CRD {name} in the cluster differs from charts/ironlb/crds"
        );
    }
    Ok(())
}

fn lints_clean(lab: &Lab) -> Result<()> {
    let lint = lab.helm(&["lint", "--strict", "charts/ironlb"])?.ok()?;
    ensure!(lint.stdout.contains("0 chart(s) failed"), "helm lint said:\n{}", lint.stdout);
    Ok(())
}

fn refuses_an_unknown_value_by_name(lab: &Lab) -> Result<()> {
    // The lab's Kubernetes version, so that only the values schema can refuse.
    let template = ["template", "charts/ironlb", "--kube-version", "1.37.2"];
    lab.helm(&template)?.ok()?;
    let refused = lab.helm(&[&template[..], &["--set", "speakr.logLevel=debug"]].concat())?.refused()?;
    ensure!(
        refused.stderr.contains("speakr") && refused.stderr.contains("values don't meet the specifications"),
        "helm did not refuse the unknown value by its schema, naming it:\n{}",
        refused.stderr
    );
    Ok(())
}
