//! The operator's Prometheus metrics: pool capacity and usage, allocation outcomes, who
//! announces the allocated addresses (as recorded in the pool status), reconcile latency and
//! errors, and leadership. Names carry the `ironlb_operator_` prefix; counters get
//! the `_total` suffix and the histogram the `_seconds` unit from the encoder.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use ironlb_core::address::Family as AddressFamily;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// A controller whose reconciles are timed and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Controller {
    /// Assigns Services their addresses.
    Service,
    /// Maintains the pools' status and conditions.
    Pool,
}

impl Controller {
    /// Every controller, so their series exist (at zero) from the start.
    pub const ALL: [Self; 2] = [Self::Service, Self::Pool];

    /// The `controller` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Pool => "pool",
        }
    }
}

impl EncodeLabelValue for Controller {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PoolFamilyLabels {
    pool: String,
    family: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PoolStateLabels {
    pool: String,
    state: AnnouncerState,
}

/// Whether a node announces an assigned address, as the allocation record records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum AnnouncerState {
    /// Listed, and a node is recorded as announcing it.
    Announced,
    /// Listed, but no node is eligible (no live speaker selected by an L2Advertisement, no
    /// serving endpoint, no interface on its subnet).
    NotAnnounced,
}

impl AnnouncerState {
    const ALL: [Self; 2] = [Self::Announced, Self::NotAnnounced];

    const fn as_str(self) -> &'static str {
        match self {
            Self::Announced => "announced",
            Self::NotAnnounced => "not_announced",
        }
    }
}

impl EncodeLabelValue for AnnouncerState {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ControllerLabels {
    controller: Controller,
}

/// An address count as a gauge value. `f64`, because one IPv6 /64 holds 2^64 addresses, beyond
/// what an `i64` gauge can hold; above 2^53 the count is rounded, which no dashboard will notice.
type AddressGauge = Gauge<f64, AtomicU64>;

/// Reconcile latency buckets: 1 ms to about 16 s, doubling. A reconcile is one to a few API
/// round trips, so the interesting range is milliseconds, and the top catches client back-off.
fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The operator's metrics. Cheap to clone: clones share the series, so every controller can hold one.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    pool_addresses: Family<PoolFamilyLabels, AddressGauge>,
    pool_addresses_in_use: Family<PoolFamilyLabels, AddressGauge>,
    allocations: Family<PoolLabels, Counter>,
    allocation_failures: Family<ReasonLabels, Counter>,
    releases: Counter,
    announcer_addresses: Family<PoolStateLabels, Gauge>,
    announcer_changes: Family<PoolLabels, Counter>,
    reconcile_duration: Family<ControllerLabels, Histogram>,
    reconcile_errors: Family<ControllerLabels, Counter>,
    leader: Gauge,
    unreadable_objects: Family<KindLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family under the `ironlb_operator` prefix.
    pub fn new() -> Self {
        let metrics = Self {
            registry: Arc::default(),
            pool_addresses: Family::default(),
            pool_addresses_in_use: Family::default(),
            allocations: Family::default(),
            allocation_failures: Family::default(),
            releases: Counter::default(),
            announcer_addresses: Family::default(),
            announcer_changes: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_histogram),
            reconcile_errors: Family::default(),
            leader: Gauge::default(),
            unreadable_objects: Family::default(),
        };
        let mut registry = Registry::with_prefix("ironlb_operator");
        // "addresses", not "addresses_total": the `_total` suffix belongs to counters.
        registry.register(
            "pool_addresses",
            "Addresses in the pool's spec.addresses, per pool and IP family (a float: an IPv6 /64 holds 2^64)",
            metrics.pool_addresses.clone(),
        );
        registry.register(
            "pool_addresses_in_use",
            "Addresses of the pool assigned to Services, per pool and IP family",
            metrics.pool_addresses_in_use.clone(),
        );
        registry.register("allocations", "Addresses assigned to Services, by pool", metrics.allocations.clone());
        registry.register(
            "allocation_failures",
            "Services that could not be given an address, by reason",
            metrics.allocation_failures.clone(),
        );
        registry.register("releases", "Addresses released by Services", metrics.releases.clone());
        registry.register(
            "announcer_addresses",
            "Addresses assigned from the pool by layer-2 announcer state, as the allocation record records it: \
             announced (a node answers for it), not_announced (no node is eligible)",
            metrics.announcer_addresses.clone(),
        );
        registry.register(
            "announcer_changes",
            "Addresses whose announcing node changed in the pool status (taken over, moved or lost), by pool",
            metrics.announcer_changes.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Time spent in one reconcile, by controller",
            Unit::Seconds,
            metrics.reconcile_duration.clone(),
        );
        registry.register("reconcile_errors", "Reconciles that ended in an error, by controller", {
            metrics.reconcile_errors.clone()
        });
        registry.register("leader", "1 while this replica holds the leader lease and may write, else 0", {
            metrics.leader.clone()
        });
        registry.register(
            "unreadable_objects",
            "Objects a watch delivered that this version cannot decode, skipped (by kind); each also gets a \
             Warning Event",
            metrics.unreadable_objects.clone(),
        );
        // Error series exist at zero from the start, so `rate()` and alerts see the first error.
        for controller in Controller::ALL {
            drop(metrics.reconcile_errors.get_or_create(&ControllerLabels { controller }));
        }
        Self { registry: Arc::new(registry), ..metrics }
    }

    /// Counts one address assigned from `pool`.
    pub fn record_allocation(&self, pool: &str) {
        self.allocations.get_or_create(&PoolLabels { pool: pool.to_owned() }).inc();
    }

    /// Counts one Service left without an address. `reason` must come from a small fixed set (the
    /// `AllocationFailed` Event reason, e.g. `PoolExhausted`), never a message naming addresses or
    /// Services, or every failure would create a new series.
    pub fn record_failure(&self, reason: &str) {
        self.allocation_failures.get_or_create(&ReasonLabels { reason: reason.to_owned() }).inc();
    }

    /// Counts one address released.
    pub fn record_release(&self) {
        self.releases.inc();
    }

    /// Sets how many of a pool's assigned addresses are announced and not announced.
    pub fn set_announcer_addresses(&self, pool: &str, announced: usize, not_announced: usize) {
        for (state, count) in AnnouncerState::ALL.into_iter().zip([announced, not_announced]) {
            let labels = PoolStateLabels { pool: pool.to_owned(), state };
            self.announcer_addresses.get_or_create(&labels).set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Counts addresses of `pool` whose announcing node changed.
    pub fn record_announcer_changes(&self, pool: &str, addresses: usize) {
        let counter = self.announcer_changes.get_or_create(&PoolLabels { pool: pool.to_owned() });
        counter.inc_by(u64::try_from(addresses).unwrap_or(u64::MAX));
    }

    /// Sets a pool's capacity and usage for one family, as just written to its status.
    pub fn set_pool_usage(&self, pool: &str, family: AddressFamily, total: f64, in_use: f64) {
        let labels = PoolFamilyLabels { pool: pool.to_owned(), family: family.to_string() };
        self.pool_addresses.get_or_create(&labels).set(total);
        self.pool_addresses_in_use.get_or_create(&labels).set(in_use);
    }

    /// Removes every series of a deleted pool, so it does not linger on dashboards at its last value.
    pub fn forget_pool(&self, pool: &str) {
        for family in AddressFamily::ALL {
            let labels = PoolFamilyLabels { pool: pool.to_owned(), family: family.to_string() };
            self.pool_addresses.remove(&labels);
            self.pool_addresses_in_use.remove(&labels);
        }
        for state in AnnouncerState::ALL {
            self.announcer_addresses.remove(&PoolStateLabels { pool: pool.to_owned(), state });
        }
        self.allocations.remove(&PoolLabels { pool: pool.to_owned() });
        self.announcer_changes.remove(&PoolLabels { pool: pool.to_owned() });
    }

    /// Records how long one reconcile took and whether it failed.
    pub fn observe_reconcile(&self, controller: Controller, duration: Duration, ok: bool) {
        let labels = ControllerLabels { controller };
        self.reconcile_duration.get_or_create(&labels).observe(duration.as_secs_f64());
        if !ok {
            self.reconcile_errors.get_or_create(&labels).inc();
        }
    }

    /// Sets the `leader` gauge.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Counts one object of `kind` skipped because it could not be decoded.
    pub fn record_unreadable(&self, kind: &str) {
        self.unreadable_objects.get_or_create(&KindLabels { kind: kind.to_owned() }).inc();
    }

    /// The OpenMetrics text exposition of every family, ending in `# EOF`.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use ironlb_core::address::Family as AddressFamily;

    use super::{Controller, Metrics};
    use std::time::Duration;

    fn render(metrics: &Metrics) -> String {
        metrics.render().expect("metrics encode")
    }

    /// The value of the sample line that starts with `series ` (name and labels, exactly).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn error_and_leader_series_exist_at_zero_from_the_start() {
        let text = render(&Metrics::new());
        assert_eq!(sample(&text, "ironlb_operator_reconcile_errors_total{controller=\"service\"}"), Some(0.0));
        assert_eq!(sample(&text, "ironlb_operator_reconcile_errors_total{controller=\"pool\"}"), Some(0.0));
        assert_eq!(sample(&text, "ironlb_operator_leader"), Some(0.0));
    }

    #[test]
    fn recorded_events_appear_with_their_labels() {
        let metrics = Metrics::new();
        metrics.record_allocation("default");
        metrics.record_allocation("default");
        metrics.record_failure("PoolExhausted");
        metrics.record_release();
        metrics.set_pool_usage("lab", AddressFamily::V4, 40.0, 3.0);
        metrics.set_pool_usage("lab", AddressFamily::V6, 2f64.powi(64), 1.0);
        metrics.set_announcer_addresses("lab", 3, 1);
        metrics.record_announcer_changes("lab", 2);
        metrics.observe_reconcile(Controller::Service, Duration::from_millis(3), false);
        metrics.observe_reconcile(Controller::Pool, Duration::from_millis(20), true);
        metrics.set_leader(true);
        let text = render(&metrics);

        let expected = [
            ("ironlb_operator_allocations_total{pool=\"default\"}", 2.0),
            ("ironlb_operator_allocation_failures_total{reason=\"PoolExhausted\"}", 1.0),
            ("ironlb_operator_releases_total", 1.0),
            ("ironlb_operator_pool_addresses{pool=\"lab\",family=\"IPv4\"}", 40.0),
            ("ironlb_operator_pool_addresses_in_use{pool=\"lab\",family=\"IPv4\"}", 3.0),
            ("ironlb_operator_pool_addresses{pool=\"lab\",family=\"IPv6\"}", 2f64.powi(64)),
            ("ironlb_operator_pool_addresses_in_use{pool=\"lab\",family=\"IPv6\"}", 1.0),
            ("ironlb_operator_announcer_addresses{pool=\"lab\",state=\"announced\"}", 3.0),
            ("ironlb_operator_announcer_addresses{pool=\"lab\",state=\"not_announced\"}", 1.0),
            ("ironlb_operator_announcer_changes_total{pool=\"lab\"}", 2.0),
            ("ironlb_operator_reconcile_errors_total{controller=\"service\"}", 1.0),
            ("ironlb_operator_reconcile_errors_total{controller=\"pool\"}", 0.0),
            ("ironlb_operator_reconcile_duration_seconds_count{controller=\"service\"}", 1.0),
            ("ironlb_operator_reconcile_duration_seconds_count{controller=\"pool\"}", 1.0),
            ("ironlb_operator_reconcile_duration_seconds_bucket{le=\"0.004\",controller=\"service\"}", 1.0),
            ("ironlb_operator_reconcile_duration_seconds_bucket{le=\"0.016\",controller=\"pool\"}", 0.0),
            ("ironlb_operator_leader", 1.0),
        ];
        for (series, value) in expected {
            assert_eq!(sample(&text, series), Some(value), "{series} in:\n{text}");
        }
        for (name, kind) in [
            ("ironlb_operator_pool_addresses", "gauge"),
            ("ironlb_operator_pool_addresses_in_use", "gauge"),
            ("ironlb_operator_allocations", "counter"),
            ("ironlb_operator_allocation_failures", "counter"),
            ("ironlb_operator_releases", "counter"),
            ("ironlb_operator_announcer_addresses", "gauge"),
            ("ironlb_operator_announcer_changes", "counter"),
            ("ironlb_operator_reconcile_duration_seconds", "histogram"),
            ("ironlb_operator_reconcile_errors", "counter"),
            ("ironlb_operator_leader", "gauge"),
        ] {
            assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name} has no TYPE:\n{text}");
            assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP:\n{text}");
        }
    }

    #[test]
    fn forgetting_a_pool_removes_its_series() {
        let metrics = Metrics::new();
        for pool in ["kept", "deleted"] {
            metrics.record_allocation(pool);
            metrics.set_pool_usage(pool, AddressFamily::V4, 10.0, 1.0);
            metrics.set_pool_usage(pool, AddressFamily::V6, 10.0, 1.0);
            metrics.set_announcer_addresses(pool, 1, 0);
            metrics.record_announcer_changes(pool, 1);
        }
        metrics.forget_pool("deleted");
        let text = render(&metrics);

        assert!(!text.contains("pool=\"deleted\""), "{text}");
        assert_eq!(sample(&text, "ironlb_operator_allocations_total{pool=\"kept\"}"), Some(1.0));
        assert_eq!(sample(&text, "ironlb_operator_pool_addresses{pool=\"kept\",family=\"IPv6\"}"), Some(10.0));
    }
}
