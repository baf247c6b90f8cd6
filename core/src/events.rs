//! Events as both binaries post them (`events.k8s.io/v1`), so `kubectl describe` shows them
//! alike whoever wrote them.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;

/// Every Event reason either binary posts, in one place: users filter on them
/// (`kubectl get events --field-selector reason=AllocationFailed`), alerts and docs name them,
/// so they are part of the API and never spelled twice.
pub mod reason {
    /// Operator, Normal: a Service was given its addresses.
    pub const IP_ALLOCATED: &str = "IPAllocated";
    /// Operator, Warning: a Service could not be given an address; the message says why.
    pub const ALLOCATION_FAILED: &str = "AllocationFailed";
    /// Operator: a Service's addresses went back to its pool (Normal), or a pool change took
    /// them away (Warning).
    pub const IP_RELEASED: &str = "IPReleased";
    /// Operator, Warning on a pool: its addresses overlap another pool's.
    pub const CONFLICT: &str = "Conflict";
    /// Warning: another host on the LAN claims an address ironlb announces (speaker, on the
    /// Service; operator, on the pool).
    pub const ADDRESS_CONFLICT: &str = "AddressConflict";
    /// Speaker, Normal: the other host no longer claims the address.
    pub const ADDRESS_CONFLICT_RESOLVED: &str = "AddressConflictResolved";
    /// Speaker, Warning: a probe found a new address already in use; it is not announced.
    pub const ADDRESS_IN_USE: &str = "AddressInUse";
    /// Speaker, Normal: this node now answers for the Service's addresses.
    pub const ANNOUNCING: &str = "Announcing";
    /// Operator, Warning on a pool: one of its ranges holds a node's own address.
    pub const NODE_ADDRESS_IN_POOL: &str = "NodeAddressInPool";
    /// Operator or speaker, Warning: an object the binary cannot read was skipped.
    pub const UNREADABLE_OBJECT: &str = "UnreadableObject";
}

/// The API server refuses an Event note longer than this (bytes).
pub const MAX_NOTE: usize = 1024;

/// What an Event says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    /// CamelCase reason, also used as the action. Example: `IPAllocated`.
    pub reason: &'static str,
    /// The human-readable message (cut to [`MAX_NOTE`] bytes).
    pub message: String,
}

impl Note {
    /// A `Normal` Event.
    pub fn normal(reason: &'static str, message: String) -> Self {
        Self { type_: "Normal", reason, message }
    }

    /// A `Warning` Event.
    pub fn warning(reason: &'static str, message: String) -> Self {
        Self { type_: "Warning", reason, message }
    }
}

/// A new Event about `regarding`, written by `controller` (the reporting controller, e.g.
/// `ironlb.io/speaker`) instance `instance` (the pod), at `now`.
///
/// Each Event is its own object, named as client-go names Events (the object's name and the
/// time in hex): callers post one only when something changed, and a recorder's series would
/// keep only the first message of a reason.
pub fn event(regarding: ObjectReference, note: Note, controller: &str, instance: &str, now: Timestamp) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", regarding.name.as_deref().unwrap_or("ironlb"), now.as_nanosecond())),
            namespace: regarding.namespace.clone(),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        type_: Some(note.type_.to_owned()),
        reason: Some(note.reason.to_owned()),
        note: Some(truncate(note.message, MAX_NOTE)),
        action: Some(note.reason.to_owned()),
        regarding: Some(regarding),
        reporting_controller: Some(controller.to_owned()),
        reporting_instance: Some(instance.to_owned()),
        ..Event::default()
    }
}

/// `text` cut to at most `limit` bytes, on a character boundary, with `...` when cut.
pub fn truncate(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut end = limit.saturating_sub(3);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_object_and_fits_the_api_limits() {
        let regarding = ObjectReference {
            kind: Some("Service".to_owned()),
            namespace: Some("web".to_owned()),
            name: Some("guestbook".to_owned()),
            uid: Some("u-1".to_owned()),
            ..ObjectReference::default()
        };
        let note = Note { type_: "Normal", reason: "Announcing", message: "é".repeat(600) };
        let event = event(regarding, note, "ironlb.io/speaker", "pod-1", Timestamp::UNIX_EPOCH);
        assert_eq!(event.metadata.name.as_deref(), Some("guestbook.0"));
        assert_eq!(event.metadata.namespace.as_deref(), Some("web"));
        let text = event.note.expect("note");
        assert!(text.len() <= MAX_NOTE && text.ends_with("..."), "{}", text.len());
        assert_eq!(event.action.as_deref(), Some("Announcing"));
    }
}
