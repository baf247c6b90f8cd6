//! The Service annotations ironlb reads and writes, and how one is read across its spellings.
//!
//! Every annotation a user sets is accepted in three spellings, so that a Service moving from
//! MetalLB needs no edit: `ironlb.io/<x>`, MetalLB's current `metallb.io/<x>`, and its original
//! `metallb.universe.tf/<x>`, in that order of precedence. One function reads an annotation, in
//! every spelling: two spellings that say different things are refused rather than silently
//! ranked, since the user could not tell which one ironlb obeyed. A blank value counts as unset.

use std::collections::BTreeMap;

use super::error::{ServiceError, Setting};

/// An annotation ironlb reads, in every spelling it accepts, most authoritative first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Annotation {
    /// `ironlb.io/<x>`, `metallb.io/<x>`, `metallb.universe.tf/<x>`.
    pub spellings: [&'static str; 3],
}

impl Annotation {
    /// The `ironlb.io/` spelling: the one documentation and messages use.
    pub const fn name(&self) -> &'static str {
        self.spellings[0]
    }
}

/// Builds the three spellings from one name, so they cannot drift apart.
macro_rules! in_every_spelling {
    ($name:literal) => {
        Annotation {
            spellings: [
                concat!("ironlb.io/", $name),
                concat!("metallb.io/", $name),
                concat!("metallb.universe.tf/", $name),
            ],
        }
    };
}

/// The pool to allocate from, by `IPAddressPool` name.
pub const ADDRESS_POOL: Annotation = in_every_spelling!("address-pool");

/// The exact addresses to allocate: comma-separated, spaces allowed, at most one per family.
/// Supersedes the deprecated `spec.loadBalancerIP`.
pub const LOAD_BALANCER_IPS: Annotation = in_every_spelling!("loadBalancerIPs");

/// The sharing key: Services carrying the same key may share an address when their ports do not
/// collide and, under `externalTrafficPolicy: Local`, they select the same pods.
pub const ALLOW_SHARED_IP: Annotation = in_every_spelling!("allow-shared-ip");

/// Written by the operator on a Service it serves: the pool its addresses come from. Only
/// `ironlb.io/` spelling: ironlb writes it, and MetalLB's own record
/// (`metallb.universe.tf/ip-allocated-from-pool`) is MetalLB's to keep.
pub const ALLOCATED_FROM_POOL: &str = "ironlb.io/allocated-from-pool";

/// A value read from one spelling of an annotation (or from a Service field), with its origin
/// kept for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Resolved<T> {
    /// Where the value was read, as written.
    pub(super) setting: Setting,
    /// The value, parsed.
    pub(super) value: T,
}

/// Reads `annotation` in every spelling present, parsing each with `parse`. Returns the value of
/// the most authoritative spelling, or `None` when no spelling is set.
///
/// A blank value counts as unset, as in MetalLB (which reads a missing key as `""`), so that
/// `annotation: ""` can switch a setting off. Spellings are compared by parsed value, so that two
/// lists of the same addresses written differently agree.
///
/// # Errors
///
/// [`ServiceError::ConflictingAnnotations`] naming two spellings that parse to different
/// values, or whatever `parse` refuses.
pub(super) fn resolve<T: PartialEq>(
    annotations: &BTreeMap<String, String>,
    annotation: &Annotation,
    parse: impl Fn(&Setting) -> Result<T, ServiceError>,
) -> Result<Option<Resolved<T>>, ServiceError> {
    let mut chosen: Option<Resolved<T>> = None;
    for origin in annotation.spellings {
        let Some(raw) = annotations.get(origin).filter(|raw| !raw.trim().is_empty()) else {
            continue;
        };
        let setting = Setting { origin, value: raw.clone() };
        let value = parse(&setting)?;
        match &chosen {
            None => chosen = Some(Resolved { setting, value }),
            Some(first) if first.value == value => {}
            Some(first) => {
                return Err(ServiceError::ConflictingAnnotations { first: first.setting.clone(), second: setting });
            }
        }
    }
    Ok(chosen)
}

/// The value with surrounding whitespace removed: for names and keys, where it cannot matter.
pub(super) fn trimmed(setting: &Setting) -> Result<String, ServiceError> {
    Ok(setting.value.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_are_ironlb_then_metallb_io_then_metallb_universe() {
        assert_eq!(
            ADDRESS_POOL.spellings,
            ["ironlb.io/address-pool", "metallb.io/address-pool", "metallb.universe.tf/address-pool"]
        );
        assert_eq!(LOAD_BALANCER_IPS.name(), "ironlb.io/loadBalancerIPs");
        assert_eq!(ALLOW_SHARED_IP.spellings[2], "metallb.universe.tf/allow-shared-ip");
    }
}
