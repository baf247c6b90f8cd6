//! The record's rules, each on its own: where entries go, that nobody's entry moves for another
//! Service, what a change costs in writes, and how writes are batched, serialized and backed off.

use std::time::{Duration, Instant};

use ironlb_core::v1alpha1::{Allocation, IPAllocationSlice, IPAllocationSliceSpec, POOL_LABEL};

use super::{Record, SliceOutcome, SliceWrite};

const INTERVAL: Duration = Duration::from_millis(500);

fn allocation(namespace: &str, name: &str, ip: &str) -> Allocation {
    Allocation {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        ips: vec![ip.to_owned()],
        serving: true,
        ..Allocation::default()
    }
}

/// `count` Services `web/svc-NNNNN` with consecutive addresses from 10.0.0.0.
fn services(count: usize) -> Vec<Allocation> {
    (0..count).map(|n| allocation("web", &format!("svc-{n:05}"), &format!("10.0.{}.{}", n / 256, n % 256))).collect()
}

/// Every write due, each reported written at once: the API server as it works when healthy.
fn flush(record: &mut Record, now: Instant) -> Vec<SliceWrite> {
    let writes = record.due(now, usize::MAX, INTERVAL);
    for write in &writes {
        let (pool, index) = write.slice();
        let deleted = matches!(write, SliceWrite::Delete { .. });
        record.written(pool, index, deleted, SliceOutcome::Written, now);
    }
    writes
}

/// The slice (name) each Service's entry is in, as the writes left them.
fn homes(writes: &[SliceWrite]) -> std::collections::BTreeMap<String, String> {
    let mut homes = std::collections::BTreeMap::new();
    for write in writes {
        if let SliceWrite::Apply { name, status, .. } = write {
            for allocation in &status.allocations {
                homes.insert(format!("{}/{}", allocation.namespace, allocation.name), name.clone());
            }
        }
    }
    homes
}

#[test]
fn a_burst_fills_slices_of_a_hundred_and_every_object_stays_bounded() {
    let mut record = Record::default();
    record.set_pool("big", &services(250));
    let writes = flush(&mut record, Instant::now());
    let sizes: Vec<(String, usize, bool)> = writes
        .iter()
        .map(|write| match write {
            SliceWrite::Apply { name, status, create, .. } => (name.clone(), status.allocations.len(), *create),
            SliceWrite::Delete { name, .. } => (name.clone(), 0, false),
        })
        .collect();
    assert_eq!(
        sizes,
        [("big-0".to_owned(), 100, true), ("big-1".to_owned(), 100, true), ("big-2".to_owned(), 50, true)]
    );
    let summary = record.summary("big", 50);
    assert_eq!((summary.allocations, summary.listed_here), (250, 50));
    assert_eq!(summary.slices, ["big-0", "big-1", "big-2"]);
    assert_eq!(summary.selector, format!("{POOL_LABEL}=big"));
    assert_eq!(record.allocations("big"), services(250), "the record lists every allocation, in Service order");
}

#[test]
fn services_that_sort_first_never_move_or_drop_anyone_elses_entry() {
    let mut record = Record::default();
    let existing = services(300);
    record.set_pool("big", &existing);
    let before = homes(&flush(&mut record, Instant::now()));

    // 100 newcomers in a namespace that sorts before every existing one.
    let mut all: Vec<Allocation> =
        (0..100).map(|n| allocation("aaa-first", &format!("new-{n:03}"), &format!("10.1.0.{n}"))).collect();
    all.extend(existing.iter().cloned());
    record.set_pool("big", &all);
    let writes = flush(&mut record, Instant::now() + INTERVAL);
    let rewritten: Vec<&str> = writes
        .iter()
        .map(|w| match w {
            SliceWrite::Apply { name, .. } | SliceWrite::Delete { name, .. } => name.as_str(),
        })
        .collect();
    assert_eq!(rewritten, ["big-3"], "the newcomers open one new slice; no existing slice is rewritten");
    assert_eq!(record.allocations("big").len(), 400);
    let after = homes(&writes);
    assert!(before.keys().all(|service| !after.contains_key(service)), "no existing entry was moved");
}

#[test]
fn one_service_changed_rewrites_only_its_own_slice() {
    let mut record = Record::default();
    let mut all = services(250);
    record.set_pool("big", &all);
    let now = Instant::now();
    flush(&mut record, now);

    all[120].node = Some("node-b".to_owned());
    record.set_pool("big", &all);
    let writes = flush(&mut record, now + INTERVAL);
    assert_eq!(writes.len(), 1);
    let SliceWrite::Apply { name, status, create, .. } = &writes[0] else { panic!("{writes:?}") };
    assert_eq!((name.as_str(), *create), ("big-1", false), "an existing slice is only re-applied");
    assert_eq!(status.announced_count, 1);

    // Released: its slice is rewritten without it; the next Service fills the hole.
    let released = all.remove(120);
    record.set_pool("big", &all);
    let writes = flush(&mut record, now + INTERVAL * 2);
    assert_eq!(writes.len(), 1);
    assert!(
        matches!(&writes[0], SliceWrite::Apply { name, status, .. } if name == "big-1" && status.allocations.len() == 99)
    );
    all.push(allocation("zzz", "late", "10.2.0.1"));
    record.set_pool("big", &all);
    let writes = flush(&mut record, now + INTERVAL * 3);
    assert!(
        matches!(&writes[..], [SliceWrite::Apply { name, .. }] if name == "big-1"),
        "the fullest slice with room takes the newcomer: {writes:?}"
    );
    assert!(!record.allocations("big").contains(&released));
}

#[test]
fn an_emptied_slice_is_deleted_and_a_deleted_pool_leaves_no_slice() {
    let mut record = Record::default();
    let now = Instant::now();
    record.set_pool("big", &services(150));
    flush(&mut record, now);
    record.set_pool("big", &services(150)[..100]);
    let writes = flush(&mut record, now + INTERVAL);
    assert!(matches!(&writes[..], [SliceWrite::Delete { name, .. }] if name == "big-1"), "{writes:?}");
    assert_eq!(record.summary("big", 50).slices, ["big-0"]);

    record.remove_pool("big");
    let writes = flush(&mut record, now + INTERVAL * 2);
    assert!(matches!(&writes[..], [SliceWrite::Delete { name, .. }] if name == "big-0"), "{writes:?}");
    assert_eq!(record.pools().count(), 0);
}

#[test]
fn changes_during_a_write_or_its_interval_are_batched_into_one_later_write() {
    let mut record = Record::default();
    let now = Instant::now();
    let mut all = services(10);
    record.set_pool("web", &all);
    let first = record.due(now, usize::MAX, INTERVAL);
    assert_eq!(first.len(), 1);

    // While the first write is in flight, two more changes: no second write at once.
    all.push(allocation("web", "svc-late-1", "10.9.0.1"));
    record.set_pool("web", &all);
    all.push(allocation("web", "svc-late-2", "10.9.0.2"));
    record.set_pool("web", &all);
    assert!(record.due(now, usize::MAX, INTERVAL).is_empty(), "never two writes of one slice at once");
    record.written("web", 0, false, SliceOutcome::Written, now + Duration::from_millis(10));
    assert!(record.due(now + Duration::from_millis(10), usize::MAX, INTERVAL).is_empty(), "within the interval");
    assert_eq!(record.next_due(), Some(now + INTERVAL));
    let later = record.due(now + INTERVAL, usize::MAX, INTERVAL);
    assert!(
        matches!(&later[..], [SliceWrite::Apply { status, create: false, .. }] if status.allocations.len() == 12),
        "both changes in one write: {later:?}"
    );
}

#[test]
fn a_failing_api_server_gets_fewer_writes_not_more() {
    let mut record = Record::default();
    let now = Instant::now();
    record.set_pool("web", &services(5));
    let mut at = now;
    let mut waits = Vec::new();
    for _ in 0..7 {
        let writes = record.due(at, usize::MAX, Duration::ZERO);
        assert_eq!(writes.len(), 1, "retried once its back-off is over");
        record.written("web", 0, false, SliceOutcome::Failed, at);
        let next = record.next_due().expect("a retry is scheduled");
        assert!(record.due(at, usize::MAX, Duration::ZERO).is_empty(), "not before its back-off");
        waits.push(next.duration_since(at).as_secs());
        at = next;
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
    // Another write gets through: the API server is back, the slice is not left waiting.
    record.api_answers(at - Duration::from_secs(29));
    assert_eq!(record.next_due(), Some(at - Duration::from_secs(29)));
    // Recovered: the slice is written, and counted as created.
    let writes = record.due(at, usize::MAX, Duration::ZERO);
    assert!(matches!(&writes[..], [SliceWrite::Apply { create: true, .. }]));
    record.written("web", 0, false, SliceOutcome::Written, at);
    assert!(record.due(at, usize::MAX, Duration::ZERO).is_empty());
}

#[test]
fn a_slice_deleted_behind_the_operators_back_is_created_again() {
    let mut record = Record::default();
    let now = Instant::now();
    let mut all = services(3);
    record.set_pool("web", &all);
    flush(&mut record, now);
    all[0].serving = false;
    record.set_pool("web", &all);
    let writes = record.due(now + INTERVAL, usize::MAX, INTERVAL);
    assert!(matches!(&writes[..], [SliceWrite::Apply { create: false, .. }]));
    record.written("web", 0, false, SliceOutcome::Missing, now + INTERVAL);
    let writes = record.due(now + INTERVAL * 2, usize::MAX, INTERVAL);
    assert!(matches!(&writes[..], [SliceWrite::Apply { create: true, status, .. }] if status.allocations.len() == 3));
}

fn object(name: &str, pool: &str, allocations: Vec<Allocation>) -> IPAllocationSlice {
    let mut slice = IPAllocationSlice::new(name, IPAllocationSliceSpec { pool: pool.to_owned() });
    slice.metadata.labels = Some([(POOL_LABEL.to_owned(), pool.to_owned())].into());
    slice.status = Some(ironlb_core::v1alpha1::IPAllocationSliceStatus::listing(allocations));
    slice
}

#[test]
fn a_new_term_restores_the_slices_and_rewrites_only_what_is_not_its_own() {
    let all = services(150);
    let slices = [
        object("big-0", "big", all[..100].to_vec()),
        object("big-1", "big", all[100..].to_vec()),
        // Not a name the operator gives, and a repeat of an entry big-0 holds.
        object("big-extra", "big", all[..1].to_vec()),
    ];
    let mut record = Record::restore(slices.iter());
    assert_eq!(record.allocations("big"), all);
    record.set_pool("big", &all);
    let writes = flush(&mut record, Instant::now());
    assert!(
        matches!(&writes[..], [SliceWrite::Delete { name, .. }] if name == "big-extra"),
        "the previous leader's slices are kept as they are; only the stray goes: {writes:?}"
    );
    assert_eq!(record.summary("big", 50).slices, ["big-0", "big-1"]);

    // New Services go to the existing slice with room, not to a new one.
    let mut more = all.clone();
    more.push(allocation("web", "svc-new", "10.5.0.1"));
    record.set_pool("big", &more);
    let writes = flush(&mut record, Instant::now() + INTERVAL);
    assert!(matches!(&writes[..], [SliceWrite::Apply { name, create: false, .. }] if name == "big-1"), "{writes:?}");
}
