//! Allocator benchmark: ironlb's [`Allocator`] beside a naive first-fit allocator, in one run.
//!
//! Run with `cargo bench -p ironlb-operator --bench allocator` (release profile); add `-- --quick`
//! or set `BENCH_QUICK=1` to run only the 1,000-Service scenarios as a smoke test. It prints a
//! markdown section for `docs/benchmarks.md` on stdout and its progress on stderr.
//!
//! Scenarios: 1,000 and 100,000 Services filling an empty IPv4 /8 and an empty IPv6 /64 pool, then
//! churn on the full /8 (release a random 10%, allocate as many new Services). Every call is timed
//! on its own with [`Instant`]; the rate is the calls done over the wall time of the whole loop.
//!
//! The baseline is what a simple allocator does: a hash set of taken addresses and a scan from the
//! pool's first address to the first one not in it. That is `O(n)` per allocation and `O(n²)` for
//! a fill, so every measured loop has a time budget (`BENCH_BUDGET_SECS`, default 20 s): a loop
//! that reaches it stops, and its row reports the rate over the calls it did and says so.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ironlb_core::address::{Family, address_number, parse_entry};
use ironlb_operator::allocator::{AllocationRequest, Allocator, PoolConfig, ServiceKey};

const SIZES: [usize; 2] = [1_000, 100_000];
const QUICK_SIZES: [usize; 1] = [1_000];
/// Share of the Services the churn scenario releases and replaces, in percent.
const CHURN_PERCENT: usize = 10;
/// Fixed seed: the churn scenario releases the same Services on every run.
const CHURN_SEED: u64 = 0x1b_1b_0a_11_0c_a7_04;
const DEFAULT_BUDGET: Duration = Duration::from_secs(20);
const POOL_NAME: &str = "bench";

/// A pool the scenarios fill.
#[derive(Clone, Copy, Debug)]
struct PoolSpec {
    /// As written in `spec.addresses`.
    entry: &'static str,
    family: Family,
}

const IPV4_SLASH_8: PoolSpec = PoolSpec { entry: "10.0.0.0/8", family: Family::V4 };
const IPV6_SLASH_64: PoolSpec = PoolSpec { entry: "fd00:1::/64", family: Family::V6 };

impl PoolSpec {
    fn config(self) -> PoolConfig {
        let range = parse_entry(self.entry).expect("the benchmark's pool entries parse");
        PoolConfig::new(POOL_NAME, vec![range])
    }

    /// The first and last address, as numbers.
    fn bounds(self) -> (u128, u128) {
        let interval = parse_entry(self.entry).expect("the benchmark's pool entries parse").interval();
        (interval.start(), interval.end())
    }
}

#[derive(Debug)]
struct Options {
    quick: bool,
    budget: Duration,
}

impl Options {
    fn from_env() -> Self {
        let mut quick = std::env::var("BENCH_QUICK").is_ok_and(|value| !value.is_empty() && value != "0");
        for argument in std::env::args().skip(1) {
            match argument.as_str() {
                "--quick" => quick = true,
                // `cargo bench` passes `--bench` to every harness-less benchmark.
                "--bench" => {}
                other => eprintln!("allocator bench: ignoring unknown argument {other:?}"),
            }
        }
        let budget = std::env::var("BENCH_BUDGET_SECS")
            .ok()
            .and_then(|secs| secs.parse::<f64>().ok())
            .filter(|secs| secs.is_finite() && *secs > 0.0)
            .map_or(DEFAULT_BUDGET, Duration::from_secs_f64);
        Self { quick, budget }
    }
}

/// What a simple allocator does: a set of taken addresses, and a scan from the pool's first
/// address to the first one not in it. It remembers each Service's address so that `assign` is
/// idempotent and `release` works, as ironlb's does. The hasher has fixed keys so runs repeat.
#[derive(Debug)]
struct FirstFit {
    first: u128,
    last: u128,
    taken: HashSet<u128, FixedState>,
    holders: HashMap<ServiceKey, u128, FixedState>,
}

type FixedState = BuildHasherDefault<DefaultHasher>;

impl FirstFit {
    fn new(pool: PoolSpec) -> Self {
        let (first, last) = pool.bounds();
        Self { first, last, taken: HashSet::default(), holders: HashMap::default() }
    }

    /// The state a fill of `services` in order leaves behind (first-fit hands out consecutive
    /// addresses from the pool's start), built without the quadratic scan.
    fn filled(pool: PoolSpec, services: &[ServiceKey]) -> Self {
        let mut allocator = Self::new(pool);
        for (address, service) in (allocator.first..=allocator.last).zip(services) {
            allocator.taken.insert(address);
            allocator.holders.insert(service.clone(), address);
        }
        allocator
    }

    fn assign(&mut self, service: &ServiceKey) -> Option<u128> {
        if let Some(&address) = self.holders.get(service) {
            return Some(address);
        }
        let address = (self.first..=self.last).find(|address| !self.taken.contains(address))?;
        self.taken.insert(address);
        self.holders.insert(service.clone(), address);
        Some(address)
    }

    fn release(&mut self, service: &ServiceKey) -> Option<u128> {
        let address = self.holders.remove(service)?;
        self.taken.remove(&address);
        Some(address)
    }
}

/// One measured loop.
#[derive(Debug)]
struct Measurement {
    planned: usize,
    /// Per call, in nanoseconds, in call order.
    latencies: Vec<u64>,
    /// The address each call handed out or released, in call order, for the cross-check.
    addresses: Vec<u128>,
    wall: Duration,
}

impl Measurement {
    fn done(&self) -> usize {
        self.latencies.len()
    }

    fn complete(&self) -> bool {
        self.done() == self.planned
    }
}

/// Runs `operation(0..planned)`, timing each call, until done or `budget` has passed.
fn measure(planned: usize, budget: Duration, mut operation: impl FnMut(usize) -> Option<u128>) -> Measurement {
    let mut latencies = Vec::with_capacity(planned);
    let mut addresses = Vec::with_capacity(planned);
    let start = Instant::now();
    let mut end = start;
    for index in 0..planned {
        let before = Instant::now();
        let address = operation(index);
        end = Instant::now();
        latencies.push(nanos(end - before));
        addresses.extend(address);
        if end - start >= budget {
            break;
        }
    }
    Measurement { planned, latencies, addresses, wall: end - start }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// `count` Services in a fixed order, a hundred per namespace.
fn services(prefix: &str, count: usize) -> Vec<ServiceKey> {
    (0..count).map(|index| ServiceKey::new(format!("ns-{:04}", index / 100), format!("{prefix}-{index:06}"))).collect()
}

/// SingleStack requests of `family`, as the glue builds them for a plain LoadBalancer Service.
fn requests(services: &[ServiceKey], family: Family) -> Vec<AllocationRequest> {
    services
        .iter()
        .map(|service| {
            let mut request = AllocationRequest::new(service.clone());
            request.families = vec![family];
            request
        })
        .collect()
}

fn ironlb_assign(allocator: &mut Allocator, request: &AllocationRequest) -> Option<u128> {
    let assignment = black_box(allocator.assign(black_box(request)));
    let assignment = assignment.unwrap_or_else(|error| panic!("ironlb refused {}: {error}", request.service));
    assignment.addresses.first().copied().map(address_number)
}

fn ironlb_release(allocator: &mut Allocator, service: &ServiceKey) -> Option<u128> {
    let assignment = black_box(allocator.release(black_box(service)));
    assignment.and_then(|assignment| assignment.addresses.first().copied()).map(address_number)
}

/// The fill's measurement, and how much `VmRSS` grew (KiB) while the allocator filled up: its
/// own state, as the inputs were built before.
fn ironlb_fill(pool: PoolSpec, requests: &[AllocationRequest], budget: Duration) -> (Measurement, Option<u64>) {
    let mut allocator = Allocator::new();
    allocator.set_pool(pool.config());
    let before = process_status_kib("VmRSS");
    let measurement = measure(requests.len(), budget, |index| ironlb_assign(&mut allocator, &requests[index]));
    let growth = before.zip(process_status_kib("VmRSS")).map(|(before, after)| after.saturating_sub(before));
    black_box(&allocator);
    (measurement, growth)
}

fn first_fit_fill(pool: PoolSpec, services: &[ServiceKey], budget: Duration) -> Measurement {
    let mut allocator = FirstFit::new(pool);
    let measurement = measure(services.len(), budget, |index| black_box(allocator.assign(black_box(&services[index]))));
    black_box(&allocator);
    measurement
}

/// The Services churn releases and the ones it adds.
#[derive(Debug)]
struct Churn {
    leaving: Vec<ServiceKey>,
    arriving: Vec<ServiceKey>,
}

impl Churn {
    fn new(services: &[ServiceKey]) -> Self {
        let count = services.len() * CHURN_PERCENT / 100;
        let mut indices: Vec<usize> = (0..services.len()).collect();
        let mut random = SplitMix64(CHURN_SEED);
        // The first `count` steps of a Fisher-Yates shuffle: a uniform sample without repeats.
        for position in 0..count {
            let remaining = (indices.len() - position) as u64;
            let pick = position + usize::try_from(random.next() % remaining).unwrap_or(0);
            indices.swap(position, pick);
        }
        let leaving = indices[..count].iter().map(|&index| services[index].clone()).collect();
        Self { leaving, arriving: self::services("new", count) }
    }
}

/// Release and reallocation measurements of one allocator under churn.
#[derive(Debug)]
struct ChurnRun {
    release: Measurement,
    assign: Measurement,
}

/// Fills the /8 (not timed), then releases `churn.leaving` and assigns `churn.arriving`.
fn ironlb_churn(services: &[ServiceKey], churn: &Churn, budget: Duration) -> ChurnRun {
    let pool = IPV4_SLASH_8;
    let mut allocator = Allocator::new();
    allocator.set_pool(pool.config());
    for request in requests(services, pool.family) {
        ironlb_assign(&mut allocator, &request);
    }
    let arriving = requests(&churn.arriving, pool.family);
    let release = measure(churn.leaving.len(), budget, |index| ironlb_release(&mut allocator, &churn.leaving[index]));
    let assign = measure(arriving.len(), budget, |index| ironlb_assign(&mut allocator, &arriving[index]));
    black_box(&allocator);
    ChurnRun { release, assign }
}

/// Starts from the state a full first-fit fill reaches (built directly, not timed), then
/// releases `churn.leaving` and assigns `churn.arriving`.
fn first_fit_churn(services: &[ServiceKey], churn: &Churn, budget: Duration) -> ChurnRun {
    let mut allocator = FirstFit::filled(IPV4_SLASH_8, services);
    let release =
        measure(churn.leaving.len(), budget, |index| black_box(allocator.release(black_box(&churn.leaving[index]))));
    let assign =
        measure(churn.arriving.len(), budget, |index| black_box(allocator.assign(black_box(&churn.arriving[index]))));
    black_box(&allocator);
    ChurnRun { release, assign }
}

/// A small, fixed PRNG (SplitMix64): deterministic input without a dependency.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Memory figures, in KiB.
#[derive(Debug, Default)]
struct Memory {
    /// `VmHWM` after the ironlb scenarios.
    ironlb_peak: Option<u64>,
    /// `VmHWM` at the end.
    final_peak: Option<u64>,
    /// Services filled and `VmRSS` growth during ironlb's largest IPv4 fill.
    fill_growth: Option<(usize, u64)>,
}

/// One table row.
#[derive(Debug)]
struct Row {
    scenario: String,
    /// Services in the scenario (for churn: held before it starts).
    services: usize,
    allocator: &'static str,
    operation: &'static str,
    measurement: Measurement,
}

const IRONLB: &str = "ironlb";
const FIRST_FIT: &str = "naive first-fit";

fn main() {
    let started = Instant::now();
    let options = Options::from_env();
    let sizes: &[usize] = if options.quick { &QUICK_SIZES } else { &SIZES };
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let all_services = services("svc", largest);
    let churn = Churn::new(&all_services);
    let pools = [("IPv4 /8", IPV4_SLASH_8), ("IPv6 /64", IPV6_SLASH_64)];

    // ironlb first, so that the peak RSS read after it is ironlb's (plus the inputs).
    let mut ironlb_rows = Vec::new();
    let mut memory = Memory::default();
    for &size in sizes {
        for (label, pool) in pools {
            let scenario = format!("fill {label} `{}`", pool.entry);
            eprintln!("ironlb: {scenario}, {size} Services");
            let (measurement, growth) =
                ironlb_fill(pool, &requests(&all_services[..size], pool.family), options.budget);
            if size == largest && pool.family == Family::V4 {
                memory.fill_growth = growth.map(|kib| (measurement.done(), kib));
            }
            ironlb_rows.push(Row { scenario, services: size, allocator: IRONLB, operation: "assign", measurement });
        }
    }
    let churn_scenario = format!("churn {CHURN_PERCENT}% of a full IPv4 /8 `{}`", IPV4_SLASH_8.entry);
    eprintln!("ironlb: {churn_scenario}, {largest} Services");
    let ChurnRun { release, assign } = ironlb_churn(&all_services, &churn, options.budget);
    ironlb_rows.push(Row {
        scenario: churn_scenario.clone(),
        services: largest,
        allocator: IRONLB,
        operation: "release",
        measurement: release,
    });
    ironlb_rows.push(Row {
        scenario: churn_scenario.clone(),
        services: largest,
        allocator: IRONLB,
        operation: "assign",
        measurement: assign,
    });
    memory.ironlb_peak = process_status_kib("VmHWM");

    let mut first_fit_rows = Vec::new();
    for &size in sizes {
        for (label, pool) in pools {
            let scenario = format!("fill {label} `{}`", pool.entry);
            eprintln!("first-fit: {scenario}, {size} Services");
            let measurement = first_fit_fill(pool, &all_services[..size], options.budget);
            first_fit_rows.push(Row {
                scenario,
                services: size,
                allocator: FIRST_FIT,
                operation: "assign",
                measurement,
            });
        }
    }
    eprintln!("first-fit: {churn_scenario}, {largest} Services");
    let ChurnRun { release, assign } = first_fit_churn(&all_services, &churn, options.budget);
    first_fit_rows.push(Row {
        scenario: churn_scenario.clone(),
        services: largest,
        allocator: FIRST_FIT,
        operation: "release",
        measurement: release,
    });
    first_fit_rows.push(Row {
        scenario: churn_scenario,
        services: largest,
        allocator: FIRST_FIT,
        operation: "assign",
        measurement: assign,
    });
    memory.final_peak = process_status_kib("VmHWM");

    let cross_check = cross_check(&ironlb_rows, &first_fit_rows);
    let rows: Vec<Row> =
        ironlb_rows.into_iter().zip(first_fit_rows).flat_map(|(ours, theirs)| [ours, theirs]).collect();
    print!("{}", report(&options, sizes, &rows, &memory, &cross_check, started.elapsed()));
}

/// Both allocators hand out the lowest free address, so over the calls both did they must agree;
/// a mismatch means the comparison is not like for like.
fn cross_check(ironlb: &[Row], first_fit: &[Row]) -> String {
    let mut compared = 0;
    for (ours, theirs) in ironlb.iter().zip(first_fit) {
        let common = ours.measurement.addresses.len().min(theirs.measurement.addresses.len());
        let same = ours.measurement.addresses[..common] == theirs.measurement.addresses[..common];
        assert!(same, "{} ({}) : ironlb and first-fit handed out different addresses", ours.scenario, ours.operation);
        compared += common;
    }
    format!(
        "both allocators handed out (and released) the same addresses in the same order over all {} calls both \
         made",
        thousands(compared as u64)
    )
}

fn report(
    options: &Options,
    sizes: &[usize],
    rows: &[Row],
    memory: &Memory,
    cross_check: &str,
    elapsed: Duration,
) -> String {
    let mut out = String::new();
    let command = if options.quick {
        "cargo bench -p ironlb-operator --bench allocator -- --quick"
    } else {
        "cargo bench -p ironlb-operator --bench allocator"
    };
    let sizes: Vec<String> = sizes.iter().map(|&size| thousands(size as u64)).collect();
    let budget = duration(nanos(options.budget));
    let _ = writeln!(out, "## Allocator\n");
    let _ = writeln!(out, "- Command: `{command}`");
    let _ = writeln!(out, "- Date: {}", utc_now());
    let _ = writeln!(out, "- Machine: {} CPUs (`nproc`), {}, Linux {}", cpus(), cpu_model(), kernel());
    let _ = writeln!(out, "- Build: {}, ironlb {}", profile(), git_revision());
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "What is measured: single-threaded, one pool, SingleStack requests of the pool's family for {} \
         Services `ns-NNNN/svc-NNNNNN`, a hundred per namespace, in name order as a list from the API server \
         returns them (requests built before timing; sequential keys are the easy case for ironlb's B-trees, \
         churn touches random ones). **ironlb** is \
         `Allocator::assign` / `release` of `operator/src/allocator`. **naive first-fit** is written in the \
         benchmark: a `HashSet<u128>` of taken addresses (fixed-key SipHash) and a `HashMap` Service → address, \
         scanning from the pool's first address to the first one not in the set. Each call is timed on its own \
         with `Instant` (two clock reads, tens of ns, included); ops/s is the calls done over the wall time of \
         the whole loop. No warm-up: every call from an empty pool counts. Churn starts from the /8 holding \
         all {} Services (filled before timing; first-fit's state is built directly), releases a random \
         {CHURN_PERCENT}% (fixed seed, the same Services for both), then assigns as many new Services. Every \
         loop stops after {budget}; a row that hit this budget says so and reports the calls it did.",
        sizes.join(" and "),
        sizes.last().map_or("", String::as_str),
    );
    let _ = writeln!(out);
    let _ =
        writeln!(out, "| Scenario | Services | Allocator | Op | Calls timed | Wall | Ops/s | p50 | p99 | max | Note |");
    let _ = writeln!(out, "|---|--:|---|---|--:|--:|--:|--:|--:|--:|---|");
    for row in rows {
        let measurement = &row.measurement;
        let mut sorted = measurement.latencies.clone();
        sorted.sort_unstable();
        let rate =
            if measurement.wall.is_zero() { 0.0 } else { measurement.done() as f64 / measurement.wall.as_secs_f64() };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            thousands(row.services as u64),
            row.allocator,
            row.operation,
            calls(measurement),
            duration(nanos(measurement.wall)),
            thousands(rate.round() as u64),
            duration(percentile(&sorted, 50)),
            duration(percentile(&sorted, 99)),
            duration(sorted.last().copied().unwrap_or(0)),
            note(measurement, options.budget),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "- Peak RSS (`VmHWM`) after the ironlb scenarios: {}; at the end, first-fit included: {}. Both include \
         the benchmark's own inputs (Service keys and requests).",
        mebibytes(memory.ironlb_peak),
        mebibytes(memory.final_peak),
    );
    if let Some((services, kib)) = memory.fill_growth {
        let _ = writeln!(
            out,
            "- ironlb's own state: `VmRSS` grew by {} while it filled the IPv4 /8 with {} Services (≈ {} bytes \
             per Service).",
            mebibytes(Some(kib)),
            thousands(services as u64),
            thousands((kib * 1024).checked_div(services as u64).unwrap_or(0)),
        );
    }
    let _ = writeln!(out, "- Cross-check: {cross_check}.");
    let _ = writeln!(out, "- Whole run: {:.2} s.", elapsed.as_secs_f64());
    out
}

/// `done`, or `done of planned` when the loop stopped early.
fn calls(measurement: &Measurement) -> String {
    let done = thousands(measurement.done() as u64);
    if measurement.complete() { done } else { format!("{done} of {}", thousands(measurement.planned as u64)) }
}

/// Why a row stopped early, with what the full loop would have cost if each call keeps growing
/// linearly, as a first-fit scan does.
fn note(measurement: &Measurement, budget: Duration) -> String {
    if measurement.complete() {
        return String::new();
    }
    let done = measurement.done().max(1) as f64;
    let ratio = measurement.planned as f64 / done;
    let estimate = measurement.wall.as_secs_f64() * ratio * ratio;
    format!(
        "stopped at the {} budget; ops/s and latencies are over the calls done (the cheaper early \
         ones); all {} would take ≈ {} at quadratic cost",
        duration(nanos(budget)),
        thousands(measurement.planned as u64),
        duration(nanos(Duration::from_secs_f64(estimate))),
    )
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], percent: usize) -> u64 {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or(0)
}

fn duration(nanos: u64) -> String {
    let nanos = nanos as f64;
    if nanos < 1e3 {
        format!("{nanos:.0} ns")
    } else if nanos < 1e6 {
        format!("{:.1} µs", nanos / 1e3)
    } else if nanos < 1e9 {
        format!("{:.1} ms", nanos / 1e6)
    } else if nanos < 600e9 {
        format!("{:.1} s", nanos / 1e9)
    } else {
        format!("{:.0} min", nanos / 60e9)
    }
}

fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn mebibytes(kibibytes: Option<u64>) -> String {
    kibibytes.map_or_else(|| "unknown".to_owned(), |kib| format!("{:.1} MiB", kib as f64 / 1024.0))
}

/// A KiB figure of /proc/self/status: `VmHWM` (peak resident set size), `VmRSS` (current).
fn process_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

fn cpus() -> String {
    std::thread::available_parallelism().map_or_else(|_| "unknown".to_owned(), |count| count.to_string())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name").and_then(|rest| rest.split_once(':')))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "unknown".to_owned(), |r| r.trim().to_owned())
}

fn profile() -> &'static str {
    if cfg!(debug_assertions) { "debug assertions ON (not a release build)" } else { "release profile" }
}

/// `git describe`-like revision of the working tree, `-dirty` when it has changes.
fn git_revision() -> String {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    match run(&["rev-parse", "--short", "HEAD"]) {
        Some(revision) => {
            let dirty = run(&["status", "--porcelain"]).is_some_and(|status| !status.is_empty());
            if dirty { format!("{revision}-dirty") } else { revision }
        }
        None => "(revision unknown)".to_owned(),
    }
}

/// The current time in UTC, ISO 8601, without a date library.
fn utc_now() -> String {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let (days, time) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", time / 3600, time % 3600 / 60)
}
