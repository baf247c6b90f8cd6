//! Watches that one unreadable object cannot wedge.
//!
//! A plain `watcher::<K>` fails its whole list when a single object does not decode as `K`, and
//! keeps failing (with back-off) until that object goes away: a pool written before a schema
//! tightening, or by a newer ironlb, would stop every allocation of the cluster. Both binaries
//! therefore watch [`DeserializeGuard<K>`] (kube-runtime's error boundary, as linkerd's policy
//! controller uses it) and pass the watch through [`guarded`]: every object that decodes is an
//! ordinary event, and one that does not becomes an [`Unreadable`] report — logged, counted and,
//! by the operator, posted as a Warning Event on the object — while every other object keeps
//! working.
//!
//! An unreadable object is skipped, never guessed at: its last readable version (if any) stays
//! in the caches, since an `Apply` that cannot be read says nothing about what the object now
//! holds. A relist leaves it out, as if it were not there.

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::core::DeserializeGuard;
use kube::runtime::watcher::{self, Event};

/// An object a watch delivered that this binary cannot read.
#[derive(Clone, Debug, PartialEq)]
pub struct Unreadable {
    /// The object, for an Event about it (`kind`, `apiVersion`, name, namespace, uid).
    pub object: ObjectReference,
    /// Why it cannot be read, as the decoder said.
    pub error: String,
}

impl Unreadable {
    /// `kind namespace/name` (or `kind name` without a namespace), for logs and messages.
    pub fn describe(&self) -> String {
        let kind = self.object.kind.as_deref().unwrap_or("object");
        let name = self.object.name.as_deref().unwrap_or("?");
        match self.object.namespace.as_deref() {
            Some(namespace) => format!("{kind} {namespace}/{name}"),
            None => format!("{kind} {name}"),
        }
    }
}

/// What a guarded watch delivers.
#[derive(Debug)]
pub enum Guarded<K> {
    /// An event about objects that could be read.
    Event(Event<K>),
    /// An object that could not be read (already logged).
    Unreadable(Unreadable),
}

/// Turns a watch of `DeserializeGuard<K>` into events of `K` and reports of the objects that do
/// not decode. Watch errors pass through unchanged, for the caller's back-off.
pub fn guarded<K>(
    stream: impl Stream<Item = watcher::Result<Event<DeserializeGuard<K>>>> + Send + 'static,
) -> impl Stream<Item = watcher::Result<Guarded<K>>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Send + 'static,
{
    stream.flat_map(|item| {
        let items: Vec<watcher::Result<Guarded<K>>> = match item {
            Err(error) => vec![Err(error)],
            Ok(event) => split(event).into_iter().map(Ok).collect(),
        };
        futures::stream::iter(items)
    })
}

/// One guarded event as what it means for readers of `K`.
pub fn split<K>(event: Event<DeserializeGuard<K>>) -> Vec<Guarded<K>>
where
    K: Resource<DynamicType = ()>,
{
    let read = |guard: DeserializeGuard<K>, wrap: fn(K) -> Event<K>| match guard.0 {
        Ok(object) => Guarded::Event(wrap(object)),
        Err(invalid) => {
            let object = ObjectReference {
                api_version: Some(K::api_version(&()).into_owned()),
                kind: Some(K::kind(&()).into_owned()),
                name: invalid.metadata.name.clone(),
                namespace: invalid.metadata.namespace.clone(),
                uid: invalid.metadata.uid.clone(),
                resource_version: invalid.metadata.resource_version.clone(),
                ..ObjectReference::default()
            };
            let unreadable = Unreadable { object, error: invalid.error };
            tracing::warn!(object = %unreadable.describe(), error = %unreadable.error,
                "skipping an object this version cannot read; every other object keeps working");
            Guarded::Unreadable(unreadable)
        }
    };
    match event {
        Event::Apply(guard) => vec![read(guard, Event::Apply)],
        Event::InitApply(guard) => vec![read(guard, Event::InitApply)],
        // A deleted object need not be read to be forgotten, but a reader finds it by name and
        // `K` cannot be built without its fields: an unreadable deletion is reported, and what
        // the caches held of it goes at the next relist.
        Event::Delete(guard) => vec![read(guard, Event::Delete)],
        Event::Init => vec![Guarded::Event(Event::Init)],
        Event::InitDone => vec![Guarded::Event(Event::InitDone)],
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    fn guard(value: serde_json::Value) -> DeserializeGuard<ConfigMap> {
        serde_json::from_value(value).expect("a guard decodes whatever has metadata")
    }

    #[test]
    fn a_readable_object_passes_and_an_unreadable_one_is_reported_by_name() {
        let good = guard(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "good", "namespace": "web"}, "data": {"a": "b"}}));
        let bad = guard(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "bad", "namespace": "web", "uid": "u-1"}, "data": ["not", "a", "map"]}));

        let events: Vec<Guarded<ConfigMap>> =
            [Event::Init, Event::InitApply(good), Event::InitApply(bad), Event::InitDone]
                .into_iter()
                .flat_map(split)
                .collect();

        assert!(matches!(&events[0], Guarded::Event(Event::Init)));
        assert!(
            matches!(&events[1], Guarded::Event(Event::InitApply(cm)) if cm.metadata.name.as_deref() == Some("good"))
        );
        let Guarded::Unreadable(unreadable) = &events[2] else { panic!("the bad object is reported: {events:?}") };
        assert_eq!(unreadable.describe(), "ConfigMap web/bad");
        assert_eq!(unreadable.object.uid.as_deref(), Some("u-1"));
        assert!(unreadable.error.contains("Expected a map"), "the decoder's reason is kept: {}", unreadable.error);
        assert!(matches!(&events[3], Guarded::Event(Event::InitDone)), "the list still completes");
    }
}
