//! How fast the binaries' watches come back after an error: within a couple of seconds.
//!
//! kube-runtime's default back-off doubles from 0.8 s up to 30 s and resets only after a
//! success. After an API server outage of half a minute, each watch has backed off to its
//! maximum, and its next attempt — a relist, since the server's watch cache no longer holds
//! the old resourceVersion (410 Expired) — can come up to 30 s after the server is back, then
//! another error starts the wait again. While a speaker's Lease watch is down its view is not
//! current, so it moves nothing (safe), but it cannot fail anything over either: the e2e suite
//! saw a node cut off from the API right after a control-plane restart replaced only after
//! 7–56 s instead of 2; the operator's allocations and pool status wait the same way. Failing
//! attempts against a server that is down cost a refused connection each, and the back-off
//! starts over after a success, so a retry at most every two seconds costs the API server
//! little, and both binaries see the cluster again within seconds of the server's return.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// The first wait after an error.
const FIRST: Duration = Duration::from_millis(250);
/// The longest wait between two attempts.
const MOST: Duration = Duration::from_secs(2);

/// Doubling from [`FIRST`] to [`MOST`], each wait drawn between half and all of its step so
/// that every node's speaker does not relist at the same instant after an outage.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    step: Duration,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self { step: FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let step = self.step;
        self.step = (self.step * 2).min(MOST);
        let half = step / 2;
        Some(half + half.mul_f64(fastrand::f64()))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.step = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_two_seconds_at_most_and_start_over_after_a_success() {
        let mut backoff = WatchBackoff::default();
        let waits: Vec<Duration> = backoff.by_ref().take(8).collect();
        for (wait, step_ms) in waits.iter().zip([250u64, 500, 1_000, 2_000, 2_000, 2_000, 2_000, 2_000]) {
            let step = Duration::from_millis(step_ms);
            assert!(*wait >= step / 2 && *wait <= step, "{wait:?} is not within half of {step:?}");
        }
        backoff.reset();
        assert!(backoff.next().is_some_and(|wait| wait <= FIRST), "a success starts over");
    }
}
