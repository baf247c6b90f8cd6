//! The two probe states `main` sets and the kubelet reads through `/healthz` and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Liveness and readiness of the process; cheap to clone, all clones share the state.
///
/// - *Alive* starts true and is set false when a loop the process cannot run without (the
///   operator's controllers or leader elector, the speaker's loop) has ended, so the kubelet
///   restarts the pod even if the process lingers while draining.
/// - *Ready* starts false and is set true once the caches have synced (the speaker: and its node
///   Lease is renewed). An operator's readiness does not depend on leadership: a synced standby
///   is a ready hot spare.
#[derive(Clone, Debug)]
pub struct Health {
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    alive: AtomicBool,
    ready: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Alive and not ready: the state of a process that has started but not synced its caches.
    pub fn new() -> Self {
        Self { state: Arc::new(State { alive: AtomicBool::new(true), ready: AtomicBool::new(false) }) }
    }

    /// Marks the caches synced (or, with `false`, no longer trustworthy).
    pub fn set_ready(&self, ready: bool) {
        self.state.ready.store(ready, Ordering::Relaxed);
    }

    /// Marks the main loop alive or dead.
    pub fn set_alive(&self, alive: bool) {
        self.state.alive.store(alive, Ordering::Relaxed);
    }

    /// Whether `/healthz` answers 200.
    pub fn is_alive(&self) -> bool {
        self.state.alive.load(Ordering::Relaxed)
    }

    /// Whether `/readyz` answers 200: synced and alive.
    pub fn is_ready(&self) -> bool {
        self.is_alive() && self.state.ready.load(Ordering::Relaxed)
    }
}
