//! What a host on the LAN can make this speaker do, bounded: claims per second, and Event
//! writes.
//!
//! Any host on the LAN can send a gratuitous ARP or a Neighbor Advertisement for an address this
//! node answers for, as fast as its link allows and from as many MACs as it likes. Each one is a
//! claim ([`crate::responder::Claim`]), and the controller's handling of a claim can end in an
//! API write (a Warning Event, the conflict on the node Lease). So between the wire and the API
//! every step is bounded:
//!
//! ```text
//! receive task ─► ClaimLimiter ─► claim queue (bounded, never waits) ─► controller ─► Conflicts ─► EventBudget ─► API
//!                 per address       responder::CLAIM_QUEUE               a flap between MACs     writes in flight,
//!                 and per MAC       full: dropped, counted               is one conflict         Events per address
//! ```
//!
//! - [`ClaimLimiter`] (in the receive tasks): a token bucket per address ([`ADDRESS_RATE`]) and
//!   per MAC ([`MAC_RATE`]). A flood of 1,000 frames/s for one address, from alternating MACs,
//!   reaches the controller as [`ADDRESS_RATE`]: 4 claims at once, then 1 a second — 13 or 14
//!   in a 10 s flood. A claim of an address nobody else is claiming passes at once: a foreign
//!   host bringing the address up, a peer speaker's take-over burst (4 frames per address, see
//!   [`crate::responder::BURST_SCHEDULE`], for up to 64 addresses at once).
//! - [`EventBudget`] (for the controller, before each Event write): at most [`EVENT_WRITES`]
//!   writes in flight with [`EVENTS_WAITING`] more waiting their turn, and at most
//!   [`EVENTS_PER_ADDRESS`] Events about one address per [`EVENT_WINDOW`]. Over budget an Event
//!   is dropped (and counted), never queued without bound.
//!
//! Memory is bounded whatever the LAN sends: each table tracks at most [`TRACKED`] keys, a new
//! key evicting the oldest. Evicting a key only forgets what it spent (it comes back with a full
//! bucket), so eviction errs towards passing claims; a flood for one address stays bounded by
//! that address's bucket, whose keys are the few addresses this node answers for. The tables
//! hash with std's randomly keyed SipHash, so chosen MACs cannot degrade them.
//!
//! A limit to know: while one address is flooded, a peer speaker's take-over of that same
//! address competes with the flood for its bucket, so this node may not hear it (and yield the
//! address, when cut off or shutting down) until the flood ends.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::packet::MacAddress;

/// How many keys (addresses, MACs) each table tracks at most.
pub const TRACKED: usize = 1024;

/// The claims of one address passed on: a take-over burst at once, then one a second — enough
/// to keep a conflict alive (its re-check is every 10 s) and no more.
pub const ADDRESS_RATE: Rate = Rate { burst: 4, every: Duration::from_secs(1) };

/// The claims of one MAC passed on, over every address: a peer taking over 64 addresses at
/// once passes whole, and one host cannot keep more than 100 claims a second coming.
pub const MAC_RATE: Rate = Rate { burst: 256, every: Duration::from_millis(10) };

/// Event writes in flight at once.
pub const EVENT_WRITES: usize = 8;

/// Events waiting for a write slot: a take-over of many Services at once posts one Event each.
pub const EVENTS_WAITING: usize = 128;

/// Events about one address per [`EVENT_WINDOW`]: a conflict's start, its growing to several
/// hosts, its end and another start fit.
pub const EVENTS_PER_ADDRESS: usize = 4;

/// The window of [`EVENTS_PER_ADDRESS`].
pub const EVENT_WINDOW: Duration = Duration::from_secs(60);

/// A token bucket's shape: `burst` at once, then one every `every`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Tokens when full.
    pub burst: u32,
    /// Time to earn one token.
    pub every: Duration,
}

/// The tokens of one key.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: u32,
    /// When the last token was earned (or the bucket was last seen full).
    since: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self { tokens: rate.burst, since: now }
    }

    /// Earns the tokens due at `now`; returns whether one is there to spend.
    fn refill(&mut self, rate: Rate, now: Instant) -> bool {
        let every = rate.every.as_nanos().max(1);
        let earned = now.saturating_duration_since(self.since).as_nanos() / every;
        let missing = rate.burst.saturating_sub(self.tokens);
        if earned >= u128::from(missing) {
            *self = Self::full(rate, now);
        } else if let Ok(earned) = u32::try_from(earned) {
            // Fewer than `missing` tokens: keep the remainder towards the next one.
            self.tokens += earned;
            self.since += rate.every * earned;
        }
        self.tokens > 0
    }
}

/// At most `capacity` keys; a new key past that evicts the one inserted first.
#[derive(Debug)]
struct Bounded<K, V> {
    entries: HashMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Copy + Eq + Hash, V> Bounded<K, V> {
    fn new(capacity: usize) -> Self {
        Self { entries: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.entries.contains_key(&key) {
            if self.entries.len() >= self.capacity
                && let Some(oldest) = self.order.pop_front()
            {
                self.entries.remove(&oldest);
            }
            self.order.push_back(key);
        }
        self.entries.entry(key).or_insert_with(make)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Which claims go on to the controller: a token bucket per address and per MAC (see the
/// module doc for the figures).
#[derive(Debug)]
pub struct ClaimLimiter {
    addresses: Bounded<IpAddr, Bucket>,
    macs: Bounded<MacAddress, Bucket>,
}

impl Default for ClaimLimiter {
    fn default() -> Self {
        Self { addresses: Bounded::new(TRACKED), macs: Bounded::new(TRACKED) }
    }
}

impl ClaimLimiter {
    /// Whether a claim of `address` by `mac` at `now` goes on. It spends a token of both buckets,
    /// and only when both have one: a MAC over its rate does not use up the address's claims, so
    /// another host's claim of the address still passes.
    pub fn admit(&mut self, address: IpAddr, mac: MacAddress, now: Instant) -> bool {
        let by_address = self.addresses.get_or_insert_with(address, || Bucket::full(ADDRESS_RATE, now));
        if !by_address.refill(ADDRESS_RATE, now) {
            return false;
        }
        let by_mac = self.macs.get_or_insert_with(mac, || Bucket::full(MAC_RATE, now));
        if !by_mac.refill(MAC_RATE, now) {
            return false;
        }
        by_mac.tokens -= 1;
        if let Some(by_address) = self.addresses.entries.get_mut(&address) {
            by_address.tokens -= 1;
        }
        true
    }

    /// How many addresses and MACs are tracked (at most [`TRACKED`] each).
    pub fn tracked(&self) -> (usize, usize) {
        (self.addresses.len(), self.macs.len())
    }
}

/// Why an Event was dropped: the `reason` of `events_dropped`. Stable labels: dashboards use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum OverBudget {
    /// [`EVENT_WRITES`] writes in flight and [`EVENTS_WAITING`] more waiting.
    #[error("{EVENT_WRITES} Event writes in flight and {EVENTS_WAITING} waiting")]
    Backlog,
    /// [`EVENTS_PER_ADDRESS`] Events about the address within [`EVENT_WINDOW`].
    #[error("{EVENTS_PER_ADDRESS} Events about the address within the last minute")]
    AddressRate,
}

impl OverBudget {
    /// Every reason, to register each label at zero.
    pub const ALL: [Self; 2] = [Self::Backlog, Self::AddressRate];

    /// The `reason` label of `events_dropped`.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Backlog => "backlog",
            Self::AddressRate => "address_rate",
        }
    }
}

/// The Event writes of the speaker, bounded (see the module doc).
#[derive(Debug)]
pub struct EventBudget {
    /// Events admitted and not written yet, waiting or in flight.
    admitted: Arc<Semaphore>,
    /// Events being written.
    writing: Arc<Semaphore>,
    /// When the Events about each address within the window were admitted, oldest first.
    recent: Bounded<IpAddr, VecDeque<Instant>>,
}

impl Default for EventBudget {
    fn default() -> Self {
        Self {
            admitted: Arc::new(Semaphore::new(EVENT_WRITES + EVENTS_WAITING)),
            writing: Arc::new(Semaphore::new(EVENT_WRITES)),
            recent: Bounded::new(TRACKED),
        }
    }
}

impl EventBudget {
    /// Admits an Event (about `address`, when it is about one) at `now`, or says why not. The
    /// ticket waits for its turn to write ([`EventTicket::turn`]); an Event dropped for the
    /// backlog does not count against its address.
    pub fn admit(&mut self, address: Option<IpAddr>, now: Instant) -> Result<EventTicket, OverBudget> {
        let recent = match address {
            Some(address) => {
                let recent = self.recent.get_or_insert_with(address, VecDeque::new);
                while recent.front().is_some_and(|at| now.saturating_duration_since(*at) >= EVENT_WINDOW) {
                    recent.pop_front();
                }
                if recent.len() >= EVENTS_PER_ADDRESS {
                    return Err(OverBudget::AddressRate);
                }
                Some(recent)
            }
            None => None,
        };
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| OverBudget::Backlog)?;
        if let Some(recent) = recent {
            recent.push_back(now);
        }
        Ok(EventTicket { admitted, writing: self.writing.clone() })
    }
}

/// An admitted Event, waiting for its turn to be written.
#[derive(Debug)]
pub struct EventTicket {
    admitted: OwnedSemaphorePermit,
    writing: Arc<Semaphore>,
}

impl EventTicket {
    /// Waits until fewer than [`EVENT_WRITES`] Events are being written. Hold the returned
    /// [`EventWrite`] for the whole write, retries included.
    pub async fn turn(self) -> EventWrite {
        // The budget never closes its semaphore; were it closed, writing anyway is harmless.
        let writing = self.writing.acquire_owned().await.ok();
        EventWrite { _admitted: self.admitted, _writing: writing }
    }
}

/// One Event being written; dropping it frees its place in the budget.
#[derive(Debug)]
pub struct EventWrite {
    _admitted: OwnedSemaphorePermit,
    _writing: Option<OwnedSemaphorePermit>,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn address(last: u8) -> IpAddr {
        IpAddr::from([192, 168, 2, last])
    }

    fn mac(n: u32) -> MacAddress {
        let [a, b, c, d] = n.to_be_bytes();
        MacAddress::new([0x02, 0x0f, a, b, c, d])
    }

    #[test]
    fn a_flood_of_alternating_macs_for_one_address_passes_four_claims_then_one_a_second() {
        let mut limiter = ClaimLimiter::default();
        let start = Instant::now();
        let mut per_second = [0_u32; 10];
        // 1,000 frames a second for 10 s, each from a MAC of its own.
        for frame in 0..10_000_u32 {
            let at = start + Duration::from_millis(u64::from(frame));
            if limiter.admit(address(10), mac(frame), at) {
                per_second[(frame / 1000) as usize] += 1;
            }
        }
        assert_eq!(per_second[0], ADDRESS_RATE.burst, "the burst, in the first second: {per_second:?}");
        assert!(per_second[1..].iter().all(|&n| n == 1), "then one a second: {per_second:?}");
        assert_eq!(limiter.tracked(), (1, 13), "only the MACs of claims that got past their address are tracked");
    }

    #[test]
    fn the_tables_stay_bounded_whatever_the_lan_sends() {
        let mut limiter = ClaimLimiter::default();
        let start = Instant::now();
        // 100,000 claims, each of an address and from a MAC never seen before.
        for n in 0..100_000_u32 {
            let address = IpAddr::from([0xfd00, 0, 0, 0, 0, 0, (n >> 16) as u16, n as u16]);
            assert!(limiter.admit(address, mac(n), start), "a first claim of a new address passes");
        }
        assert_eq!(limiter.tracked(), (TRACKED, TRACKED));
    }

    #[test]
    fn a_one_off_foreign_claim_passes_at_once_while_another_address_is_flooded() {
        let mut limiter = ClaimLimiter::default();
        let start = Instant::now();
        // 2,000 frames a second, through the instant of the one-off claim.
        for frame in 0..=2_000_u32 {
            limiter.admit(address(10), mac(frame), start + Duration::from_micros(u64::from(frame) * 500));
        }
        assert!(limiter.admit(address(11), mac(7), start + Duration::from_secs(1)), "another address passes");
        assert!(!limiter.admit(address(10), mac(7), start + Duration::from_secs(1)), "the flooded one does not");
    }

    #[test]
    fn a_peer_take_over_burst_of_64_addresses_passes_whole() {
        let mut limiter = ClaimLimiter::default();
        let (start, peer) = (Instant::now(), mac(0xfeed));
        for at in crate::responder::BURST_SCHEDULE {
            for last in 0..64 {
                assert!(limiter.admit(address(last), peer, start + at), "{last} at {at:?}");
            }
        }
    }

    #[test]
    fn one_host_claiming_every_address_is_held_to_its_mac_rate() {
        let mut limiter = ClaimLimiter::default();
        let (start, host) = (Instant::now(), mac(0xbad));
        // 1,000 addresses, each claimed once a second for 2 s: 2,000 frames.
        let admitted = (0..2_000_u32)
            .filter(|&frame| {
                let address = IpAddr::from([10, 0, (frame % 1000 / 256) as u8, (frame % 256) as u8]);
                limiter.admit(address, host, start + Duration::from_millis(u64::from(frame)))
            })
            .count();
        // The burst, then one every 10 ms over the 2 s.
        assert!((MAC_RATE.burst as usize..=MAC_RATE.burst as usize + 200).contains(&admitted), "{admitted}");
    }

    #[test]
    fn a_bucket_refills_at_its_rate_and_never_past_its_burst() {
        let mut limiter = ClaimLimiter::default();
        let start = Instant::now();
        let spend = |limiter: &mut ClaimLimiter, at: Instant| {
            (0..100).filter(|&n| limiter.admit(address(10), mac(n), at)).count()
        };
        assert_eq!(spend(&mut limiter, start), 4);
        assert_eq!(spend(&mut limiter, start + Duration::from_millis(2500)), 2, "two tokens earned in 2.5 s");
        assert_eq!(spend(&mut limiter, start + Duration::from_millis(3000)), 1, "the half token was kept");
        assert_eq!(spend(&mut limiter, start + Duration::from_secs(3600)), 4, "an hour later: full, no more");
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_eight_event_writes_are_in_flight_and_the_backlog_is_bounded() {
        let mut budget = EventBudget::default();
        let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut writes = Vec::new();
        for _ in 0..EVENT_WRITES + EVENTS_WAITING {
            let ticket = budget.admit(None, Instant::now()).expect("within the backlog");
            let (in_flight, most) = (in_flight.clone(), most.clone());
            writes.push(tokio::spawn(async move {
                let _write = ticket.turn().await;
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // A slow API server.
                tokio::time::sleep(Duration::from_secs(1)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        assert_eq!(budget.admit(None, Instant::now()).err(), Some(OverBudget::Backlog), "dropped, not queued");
        for write in writes {
            write.await.expect("the write task");
        }
        assert_eq!(most.load(Ordering::SeqCst), EVENT_WRITES);
        assert!(budget.admit(None, Instant::now()).is_ok(), "written: room again");
    }

    #[tokio::test(start_paused = true)]
    async fn events_about_one_address_are_at_most_four_a_minute() {
        let mut budget = EventBudget::default();
        let start = Instant::now();
        let mut tickets = Vec::new();
        for _ in 0..EVENTS_PER_ADDRESS {
            tickets.push(budget.admit(Some(address(10)), start).expect("within the rate"));
        }
        assert_eq!(budget.admit(Some(address(10)), start).err(), Some(OverBudget::AddressRate));
        assert!(budget.admit(Some(address(11)), start).is_ok(), "another address has its own");
        assert!(budget.admit(None, start).is_ok(), "an Event about no address is not held to it");
        drop(tickets);
        tokio::time::advance(EVENT_WINDOW - Duration::from_millis(1)).await;
        assert_eq!(budget.admit(Some(address(10)), Instant::now()).err(), Some(OverBudget::AddressRate));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(budget.admit(Some(address(10)), Instant::now()).is_ok(), "a minute after the first: room for one");
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_dropped_for_the_backlog_does_not_spend_its_address_budget() {
        let mut budget = EventBudget::default();
        let now = Instant::now();
        let backlog: Vec<EventTicket> =
            (0..EVENT_WRITES + EVENTS_WAITING).map(|_| budget.admit(None, now).expect("room")).collect();
        for _ in 0..10 {
            assert_eq!(budget.admit(Some(address(10)), now).err(), Some(OverBudget::Backlog));
        }
        drop(backlog);
        for _ in 0..EVENTS_PER_ADDRESS {
            assert!(budget.admit(Some(address(10)), now).is_ok());
        }
    }
}
