//! The allocation record: every pool's allocations, spread over bounded
//! [`IPAllocationSlice`]s, and the writes that keep the slices in line with the decisions.
//!
//! # Shape
//!
//! A pool's allocations live in slices `<pool>-0`, `<pool>-1`, … of at most
//! [`MAX_SLICE_ALLOCATIONS`] entries each. A Service's entry is placed once, when it first holds
//! addresses from the pool, and stays in that slice until it gives them back: what another
//! Service does never moves it, so adding Services never drops or rewrites anyone else's entry
//! (the listing that was a prefix in name order is gone). A new entry goes, in this order, to a
//! slice that is about to be written anyway (a burst of new Services fills one slice per write),
//! to the fullest slice with room (holes left by released Services are filled before a new slice
//! is opened), or to a new slice with the lowest free index. A slice left empty is deleted.
//!
//! # Writes
//!
//! One Service's change rewrites the one slice holding it: at most 100 entries, a few kilobytes.
//! A slice is written at most once per interval (changes in between are batched into that write),
//! never twice at once (two applies in flight could land out of order), and after a failed write
//! it waits an exponential back-off, so a slow or failing API server sees ironlb write less, not
//! more. Everything here is pure: the engine passes `now` and turns [`SliceWrite`]s into requests.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ironlb_core::v1alpha1::{
    Allocation, AllocationRecord, IPAllocationSlice, IPAllocationSliceStatus, MAX_SLICE_ALLOCATIONS, POOL_LABEL,
    slice_name,
};
use kube::ResourceExt;

use crate::allocator::ServiceKey;

/// The longest a slice waits after failed writes before it is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One write that brings a slice in line with the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SliceWrite {
    /// Apply the slice's status (creating the object first when `create`).
    Apply {
        /// The pool the slice belongs to.
        pool: String,
        /// The slice's index within the pool.
        index: usize,
        /// Its object name.
        name: String,
        /// Whether the object must be created (it does not exist on the API server yet).
        create: bool,
        /// What it lists.
        status: IPAllocationSliceStatus,
    },
    /// Delete the slice: it holds nothing any more.
    Delete {
        /// The pool the slice belonged to.
        pool: String,
        /// The slice's index within the pool.
        index: usize,
        /// Its object name.
        name: String,
    },
}

impl SliceWrite {
    /// The pool and index of the slice written.
    pub(crate) fn slice(&self) -> (&str, usize) {
        match self {
            Self::Apply { pool, index, .. } | Self::Delete { pool, index, .. } => (pool, *index),
        }
    }
}

/// How a slice write ended, as the engine reports it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SliceOutcome {
    /// Done.
    Written,
    /// The API server does not have the object (deleted behind ironlb's back): create it again.
    Missing,
    /// Failed: try again after a back-off.
    Failed,
}

/// One slice as the record holds it.
#[derive(Debug, Default)]
struct Slice {
    entries: BTreeMap<ServiceKey, Allocation>,
    /// The object exists on the API server: a write applies its status only.
    exists: bool,
    /// What it holds differs from what was last written.
    dirty: bool,
    /// A write of it is in flight.
    in_flight: bool,
    /// Not written again before then: the batching interval, or a back-off.
    not_before: Option<Instant>,
    /// Failed writes in a row.
    failures: u32,
    /// The object's name when it is not `<pool>-<index>`: a slice found on the API server that
    /// this record would not have named so, kept only to be deleted.
    stray: Option<String>,
}

impl Slice {
    /// Whether a new entry may be placed here: it has room, and it is not being deleted.
    fn has_room(&self) -> bool {
        self.stray.is_none()
            && self.entries.len() < MAX_SLICE_ALLOCATIONS
            && !(self.in_flight && self.entries.is_empty())
    }
}

/// One pool's slices, and which slice each Service's entry is in.
#[derive(Debug, Default)]
struct PoolSlices {
    slices: BTreeMap<usize, Slice>,
    home: HashMap<ServiceKey, usize>,
}

impl PoolSlices {
    /// Where a new entry goes (see the module documentation).
    fn place(&mut self) -> usize {
        let open = self.slices.iter().filter(|(_, slice)| slice.has_room());
        let batched = open
            .clone()
            .filter(|(_, slice)| slice.dirty)
            .max_by_key(|(index, slice)| (slice.entries.len(), std::cmp::Reverse(**index)));
        let fullest = || open.clone().max_by_key(|(index, slice)| (slice.entries.len(), std::cmp::Reverse(**index)));
        if let Some((&index, _)) = batched.or_else(fullest) {
            return index;
        }
        let index = (0..).find(|index| !self.slices.contains_key(index)).unwrap_or_default();
        self.slices.insert(index, Slice::default());
        index
    }
}

/// Every pool's slices.
#[derive(Debug, Default)]
pub(crate) struct Record {
    pools: BTreeMap<String, PoolSlices>,
}

impl Record {
    /// The record as the slices on the API server hold it (the previous leader's writes), so a new
    /// term rewrites only what changed. A slice whose name is not its pool's `<pool>-<index>`, or
    /// an entry a second slice repeats, is not the operator's to keep: it is written out (the
    /// slice is rewritten without it, or deleted).
    pub(crate) fn restore<'a>(slices: impl IntoIterator<Item = &'a IPAllocationSlice>) -> Self {
        let mut record = Self::default();
        let mut slices: Vec<&IPAllocationSlice> = slices.into_iter().collect();
        slices.sort_by_key(|slice| slice.name_any());
        for object in slices {
            let name = object.name_any();
            let pool = object.labels().get(POOL_LABEL).cloned().unwrap_or_else(|| object.pool().to_owned());
            let pools = record.pools.entry(pool.clone()).or_default();
            let index = name.rsplit_once('-').and_then(|(_, index)| index.parse::<usize>().ok());
            let Some(index) = index.filter(|&index| slice_name(&pool, index) == name && object.pool() == pool) else {
                // Not a name this record would give: keep nothing of it, and delete it. Parked at
                // an index no placement reaches (placement never skips a free index).
                let index = usize::MAX - pools.slices.len();
                let stray = Slice { exists: true, dirty: true, stray: Some(name), ..Slice::default() };
                pools.slices.insert(index, stray);
                continue;
            };
            let mut slice = Slice { exists: true, ..Slice::default() };
            for allocation in object.allocations() {
                let key = ServiceKey::new(&allocation.namespace, &allocation.name);
                if pools.home.contains_key(&key) || slice.entries.contains_key(&key) {
                    slice.dirty = true;
                    continue;
                }
                pools.home.insert(key.clone(), index);
                slice.entries.insert(key, allocation.clone());
            }
            slice.dirty |= slice.entries.is_empty();
            pools.slices.insert(index, slice);
        }
        record
    }

    /// Every allocation recorded for `pool`, in Service order.
    pub(crate) fn allocations(&self, pool: &str) -> Vec<Allocation> {
        let Some(pools) = self.pools.get(pool) else { return Vec::new() };
        let mut all: Vec<&Allocation> = pools.slices.values().flat_map(|slice| slice.entries.values()).collect();
        all.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        all.into_iter().cloned().collect()
    }

    /// The pools the record holds slices for.
    pub(crate) fn pools(&self) -> impl Iterator<Item = &str> {
        self.pools.keys().map(String::as_str)
    }

    /// Brings `pool`'s record in line with `allocations` (its whole listing): an entry that
    /// changed marks its slice for a write, a new one is placed, one that is gone leaves its slice.
    pub(crate) fn set_pool(&mut self, pool: &str, allocations: &[Allocation]) {
        let pools = self.pools.entry(pool.to_owned()).or_default();
        let wanted: HashMap<ServiceKey, &Allocation> =
            allocations.iter().map(|a| (ServiceKey::new(&a.namespace, &a.name), a)).collect();
        let gone: Vec<ServiceKey> = pools.home.keys().filter(|key| !wanted.contains_key(*key)).cloned().collect();
        for key in gone {
            if let Some(index) = pools.home.remove(&key)
                && let Some(slice) = pools.slices.get_mut(&index)
            {
                slice.entries.remove(&key);
                slice.dirty = true;
            }
        }
        // In Service order, so a burst fills slices in the order `kubectl get` shows Services.
        let mut wanted: Vec<(ServiceKey, &Allocation)> = wanted.into_iter().collect();
        wanted.sort_by(|(a, _), (b, _)| a.cmp(b));
        for (key, allocation) in wanted {
            let index = match pools.home.get(&key) {
                Some(&index) => index,
                None => {
                    let index = pools.place();
                    pools.home.insert(key.clone(), index);
                    index
                }
            };
            let Some(slice) = pools.slices.get_mut(&index) else { continue };
            if slice.entries.get(&key) != Some(allocation) {
                slice.entries.insert(key, allocation.clone());
                slice.dirty = true;
            }
        }
    }

    /// Forgets a deleted pool; its slices are deleted (the API server's garbage collector would
    /// too, through their owner reference, but not as soon).
    pub(crate) fn remove_pool(&mut self, pool: &str) {
        self.set_pool(pool, &[]);
    }

    /// The writes due at `now`, at most `limit`, each marked in flight. `interval` is the least
    /// time between two writes of one slice.
    pub(crate) fn due(&mut self, now: Instant, limit: usize, interval: Duration) -> Vec<SliceWrite> {
        let mut writes = Vec::new();
        for (pool, pools) in &mut self.pools {
            let mut never_written = Vec::new();
            for (&index, slice) in &mut pools.slices {
                if writes.len() >= limit {
                    break;
                }
                if !slice.dirty || slice.in_flight || slice.not_before.is_some_and(|at| now < at) {
                    continue;
                }
                let name = slice.stray.clone().unwrap_or_else(|| slice_name(pool, index));
                if slice.entries.is_empty() && !slice.exists {
                    never_written.push(index);
                    continue;
                }
                slice.dirty = false;
                slice.in_flight = true;
                slice.not_before = Some(now + interval);
                writes.push(if slice.entries.is_empty() {
                    SliceWrite::Delete { pool: pool.clone(), index, name }
                } else {
                    let listing = slice.entries.values().cloned().collect();
                    SliceWrite::Apply {
                        pool: pool.clone(),
                        index,
                        name,
                        create: !slice.exists,
                        status: IPAllocationSliceStatus::listing(listing),
                    }
                });
            }
            for index in never_written {
                pools.slices.remove(&index);
            }
        }
        self.pools.retain(|_, pools| !pools.slices.is_empty());
        writes
    }

    /// When the next write will be due, if one is waiting for its interval or back-off.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.pools
            .values()
            .flat_map(|pools| pools.slices.values())
            .filter(|slice| slice.dirty && !slice.in_flight)
            .filter_map(|slice| slice.not_before)
            .min()
    }

    /// A write handed out by [`Self::due`] has ended.
    pub(crate) fn written(&mut self, pool: &str, index: usize, deleted: bool, outcome: SliceOutcome, now: Instant) {
        let Some(pools) = self.pools.get_mut(pool) else { return };
        let Some(slice) = pools.slices.get_mut(&index) else { return };
        slice.in_flight = false;
        match outcome {
            SliceOutcome::Written => {
                slice.failures = 0;
                slice.exists = !deleted;
                if deleted && slice.entries.is_empty() && !slice.dirty {
                    pools.slices.remove(&index);
                }
            }
            SliceOutcome::Missing => {
                slice.failures = 0;
                slice.exists = false;
                slice.dirty |= !deleted;
                if deleted && slice.entries.is_empty() {
                    pools.slices.remove(&index);
                }
            }
            SliceOutcome::Failed => {
                slice.failures = slice.failures.saturating_add(1);
                slice.dirty = true;
                slice.not_before = Some(now + backoff(slice.failures));
            }
        }
        if pools.slices.is_empty() {
            self.pools.remove(pool);
        }
    }

    /// A write succeeded at `now`: the API server answers again, so slices backing off after
    /// failures are tried at once rather than after the rest of their back-off (which grows to
    /// [`MAX_BACKOFF`] during an outage and would otherwise delay the record past its end).
    pub(crate) fn api_answers(&mut self, now: Instant) {
        for slice in self.pools.values_mut().flat_map(|pools| pools.slices.values_mut()) {
            if slice.failures > 0 && !slice.in_flight {
                slice.failures = 0;
                slice.not_before = Some(now);
            }
        }
    }

    /// Where `pool`'s record is, for its status: `listed_here` of them are in the status itself.
    pub(crate) fn summary(&self, pool: &str, listed_here: usize) -> AllocationRecord {
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let pools = self.pools.get(pool);
        AllocationRecord {
            allocations: count(pools.map_or(0, |pools| pools.home.len())),
            listed_here: count(listed_here),
            slices: pools
                .map(|pools| {
                    pools
                        .slices
                        .iter()
                        .filter(|(_, slice)| !slice.entries.is_empty())
                        .map(|(&index, _)| slice_name(pool, index))
                        .collect()
                })
                .unwrap_or_default(),
            selector: format!("{POOL_LABEL}={pool}"),
        }
    }
}

/// The back-off after `failures` failed writes in a row: 1 s, doubling, at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests;
