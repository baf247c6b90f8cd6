//! Status conditions as the operator writes them on every object it reports on (pools and
//! L2Advertisements): one rule for when a condition's `lastTransitionTime` moves.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// What a condition says.
pub(crate) struct Holds<'a> {
    /// Its type, e.g. `Ready`.
    pub(crate) type_: &'a str,
    /// Whether it is true.
    pub(crate) holds: bool,
    /// Its CamelCase reason.
    pub(crate) reason: &'a str,
    /// What a person reads.
    pub(crate) message: String,
}

/// The condition as it is to be written, `previous` being the object's current conditions: the
/// transition time stays while the condition's status does (as `meta.SetStatusCondition` keeps
/// it), so rewriting a status that did not change writes the very same condition.
pub(crate) fn condition(
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
    holds: Holds<'_>,
) -> Condition {
    let status = if holds.holds { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == holds.type_ && c.status == status)
        .map_or_else(|| Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: holds.type_.to_owned(),
        status: status.to_owned(),
        reason: holds.reason.to_owned(),
        message: holds.message,
        observed_generation: generation,
        last_transition_time: since,
    }
}
