//! Writing a [`Migration`] as a multi-document YAML manifest for `kubectl apply -f`.
//!
//! Data flow: [`crate::migrate`] calls [`render`] once the conversion succeeded. A header
//! comment says where the objects came from, that Services need no change, and what was left
//! out; then each object follows, pools first, each under a comment naming what it was made
//! from. The output has no timestamp: the same input gives the same bytes, so a manifest kept
//! in git diffs cleanly when it is made again.

use std::fmt::Write as _;

use serde::Serialize;

use crate::convert::{Converted, Migration};

/// The manifest text.
///
/// # Errors
///
/// An object cannot be serialised (not expected: they are plain data).
pub fn render(migration: &Migration, sources: &[String]) -> Result<String, serde_yaml::Error> {
    let mut out = header(migration, sources);
    for pool in &migration.pools {
        document(&mut out, pool)?;
    }
    for advertisement in &migration.advertisements {
        document(&mut out, advertisement)?;
    }
    Ok(out)
}

fn header(migration: &Migration, sources: &[String]) -> String {
    let mut out = format!(
        "# ironlb resources converted from MetalLB by `ironlb migrate` (ironlb {}).\n",
        env!("CARGO_PKG_VERSION")
    );
    for source in sources {
        let _ = writeln!(out, "# Read from: {source}");
    }
    out.push_str(
        "#\n\
         # Apply with `kubectl apply -f` once the ironlb chart (which installs the CRDs) is in place.\n\
         # Services need no change: ironlb reads MetalLB's annotations, metallb.universe.tf/... and\n\
         # metallb.io/... (address-pool, loadBalancerIPs, allow-shared-ip), as its own ironlb.io/ ones.\n\
         #\n",
    );
    out.push_str(&migration.report.left_out_comment());
    out
}

fn document<T: Serialize>(out: &mut String, converted: &Converted<T>) -> Result<(), serde_yaml::Error> {
    let _ = writeln!(out, "---\n# From {}", converted.from);
    out.push_str(&serde_yaml::to_string(&converted.object)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use ironlb_core::v1alpha1::{IPAddressPool, L2Advertisement};
    use serde::Deserialize;

    use super::*;
    use crate::convert::convert;
    use crate::input::{Inputs, Source};

    fn migration(yaml: &str) -> Migration {
        let mut inputs = Inputs::default();
        inputs.add_yaml(yaml, &Source::Stdin).expect("reads");
        convert(&inputs).expect("converts")
    }

    /// The documents of a manifest as ironlb's own types, which is what `kubectl apply` and the
    /// operator will make of them.
    fn read_back(manifest: &str) -> (Vec<IPAddressPool>, Vec<L2Advertisement>) {
        let (mut pools, mut advertisements) = (Vec::new(), Vec::new());
        for document in serde_yaml::Deserializer::from_str(manifest) {
            let value = serde_yaml::Value::deserialize(document).expect("YAML");
            if value.is_null() {
                continue;
            }
            assert_eq!(value["apiVersion"].as_str(), Some("ironlb.io/v1alpha1"), "{value:?}");
            match value["kind"].as_str() {
                Some("IPAddressPool") => pools.push(serde_yaml::from_value(value).expect("an ironlb IPAddressPool")),
                Some("L2Advertisement") => {
                    advertisements.push(serde_yaml::from_value(value).expect("an ironlb L2Advertisement"));
                }
                other => panic!("unexpected document of kind {other:?}"),
            }
        }
        (pools, advertisements)
    }

    #[test]
    fn manifest_reads_back_as_the_ironlb_objects_it_was_made_from() {
        for fixture in [
            include_str!("../tests/fixtures/tutorial-configmap.yaml"),
            include_str!("../tests/fixtures/legacy-mixed.yaml"),
            include_str!("../tests/fixtures/metallb-crds.yaml"),
        ] {
            let migration = migration(fixture);
            let manifest = render(&migration, &["fixture".to_owned()]).expect("renders");
            let (pools, advertisements) = read_back(&manifest);
            let expected_pools: Vec<&IPAddressPool> = migration.pools.iter().map(|c| &c.object).collect();
            let expected_advertisements: Vec<&L2Advertisement> =
                migration.advertisements.iter().map(|c| &c.object).collect();
            assert_eq!(pools.iter().collect::<Vec<_>>(), expected_pools);
            assert_eq!(advertisements.iter().collect::<Vec<_>>(), expected_advertisements);
            for pool in &pools {
                pool.spec.validate().expect("every written pool passes ironlb's validation");
            }
        }
    }

    #[test]
    fn header_says_services_need_no_change_and_lists_what_was_left_out() {
        let migration = migration(include_str!("../tests/fixtures/legacy-mixed.yaml"));
        let manifest = render(&migration, &["legacy-mixed.yaml".to_owned()]).expect("renders");
        let header: Vec<&str> = manifest.lines().take_while(|line| *line != "---").collect();
        assert!(header.iter().all(|line| line.starts_with('#')), "the header is all comments: {header:#?}");
        let header = header.join("\n");
        assert!(header.contains("# Read from: legacy-mixed.yaml"), "{header}");
        assert!(header.contains("metallb.universe.tf/") && header.contains("Services need no change"), "{header}");
        assert!(header.contains("# NOT CONVERTED (3)"), "{header}");
        assert!(header.contains(r#"address-pools[2] "routed""#), "{header}");
    }
}
