//! The speaker's loop, driven step by step: watch events, renewals, claims and the clock go in,
//! effects come out. No API server, no socket: [`FakeWire`] stands in for what the responder
//! answers for, updated by the effects as the driver would.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use ironlb_core::announcer::PublishedConflict;
use ironlb_core::announcer::endpoints::ServiceKey;
use ironlb_core::events::reason;
use ironlb_core::v1alpha1::{IPAllocationSlice, L2Advertisement, L2AdvertisementSpec, TRAFFIC_POLICY_LOCAL};
use kube::runtime::watcher::Event;
use tokio::time::Instant;

use super::Settings;
use super::state::{COALESCE, Effect, SpeakerState, Watched, Wire};
use crate::conflicts::{FORGET_AFTER, RECHECK};
use crate::fixtures::{allocation, lease, mac, pool, slice};
use crate::lease::LeaseSettings;
use crate::packet::MacAddress;
use crate::probes::{PROBE_WINDOW, RETRY_IN_USE};
use crate::responder::Claim;
use crate::telemetry::Metrics;

/// This node, and its index in [`lease`] (its MAC is `mac(1)`).
const ME: (&str, u8) = ("node-1", 1);
const PEER: (&str, u8) = ("node-2", 2);
/// A host on the LAN that is no speaker.
const FOREIGN: MacAddress = MacAddress::new([0x02, 0x99, 0, 0, 0, 0x01]);
const OTHER_FOREIGN: MacAddress = MacAddress::new([0x02, 0x99, 0, 0, 0, 0x02]);
const LEASE: Duration = Duration::from_secs(2);

fn speaker() -> SpeakerState {
    let settings = Settings {
        node_name: ME.0.to_owned(),
        namespace: "ironlb-system".to_owned(),
        identity: format!("pod-{}", ME.0),
        lease: LeaseSettings { duration: LEASE, renew_interval: Duration::from_millis(500) },
        refresh: Duration::ZERO,
        shutdown_grace: Duration::ZERO,
    };
    SpeakerState::new(settings, Metrics::new())
}

/// What the responder answers for, as the effects leave it.
#[derive(Debug, Default)]
struct FakeWire {
    answering: BTreeSet<IpAddr>,
    probing: BTreeSet<IpAddr>,
}

impl Wire for FakeWire {
    fn owns(&self, address: IpAddr) -> bool {
        self.answering.contains(&address)
    }

    fn is_own_mac(&self, own: MacAddress) -> bool {
        own == mac(ME.1)
    }
}

impl FakeWire {
    fn execute(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::Answer { answer, probe } => {
                    self.answering = answer.keys().copied().collect();
                    self.probing = probe.keys().copied().collect();
                }
                Effect::Release(address) => {
                    self.answering.remove(address);
                }
                _ => {}
            }
        }
    }
}

fn ip(address: &str) -> IpAddr {
    address.parse().expect("address")
}

fn ips(addresses: &[&str]) -> BTreeSet<IpAddr> {
    addresses.iter().map(|address| ip(address)).collect()
}

/// Lists pool `default` and the record's slices (when given), one L2Advertisement for every
/// pool and node, and the Leases of `nodes` (when given), as the watches' first lists deliver
/// them.
fn list(
    speaker: &mut SpeakerState,
    now: Instant,
    slices: Option<Vec<IPAllocationSlice>>,
    nodes: Option<&[(&str, u8)]>,
) {
    if let Some(slices) = slices {
        for event in [Event::Init, Event::InitApply(pool()), Event::InitDone] {
            speaker.on_watched(Watched::Pool(Box::new(event)), now);
        }
        speaker.on_watched(Watched::AllocationSlice(Event::Init), now);
        for slice in slices {
            speaker.on_watched(Watched::AllocationSlice(Event::InitApply(slice)), now);
        }
        speaker.on_watched(Watched::AllocationSlice(Event::InitDone), now);
    }
    let all = L2Advertisement::new("all", L2AdvertisementSpec::default());
    for event in [Event::Init, Event::InitApply(all), Event::InitDone] {
        speaker.on_watched(Watched::Advertisement(event), now);
    }
    if let Some(nodes) = nodes {
        speaker.on_watched(Watched::Lease(Event::Init), now);
        for &(node, index) in nodes {
            speaker.on_watched(Watched::Lease(Event::InitApply(lease(node, index))), now);
        }
        speaker.on_watched(Watched::Lease(Event::InitDone), now);
    }
}

/// A speaker alone in its cluster, its Lease renewed at `now`, with pool `default` and `slice`
/// of its record listed.
fn alone(now: Instant, slice: IPAllocationSlice) -> SpeakerState {
    let mut speaker = speaker();
    list(&mut speaker, now, Some(vec![slice]), Some(&[ME]));
    speaker.on_renewed(Some(now));
    speaker
}

/// This node renews its Lease at `at`, and sees the renewal on its Lease watch.
fn renew(speaker: &mut SpeakerState, at: Instant) {
    speaker.on_renewed(Some(at));
    speaker.on_watched(Watched::Lease(Event::Apply(lease(ME.0, ME.1))), at);
}

/// The addresses the last `Answer` effect answers for and probes for.
fn answer(effects: &[Effect]) -> Option<(BTreeSet<IpAddr>, BTreeSet<IpAddr>)> {
    effects.iter().rev().find_map(|effect| match effect {
        Effect::Answer { answer, probe } => Some((answer.keys().copied().collect(), probe.keys().copied().collect())),
        _ => None,
    })
}

/// The Events posted: (namespace/name, reason, message).
fn posts(effects: &[Effect]) -> Vec<(String, &'static str, String)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Post { service, note, .. } => {
                Some((format!("{}/{}", service.namespace, service.name), note.reason, note.message.clone()))
            }
            _ => None,
        })
        .collect()
}

fn published(effects: &[Effect]) -> Option<&[PublishedConflict]> {
    effects.iter().find_map(|effect| match effect {
        Effect::PublishConflicts(conflicts) => Some(conflicts.as_slice()),
        _ => None,
    })
}

fn claim(address: &str, mac: MacAddress, probe: bool) -> Claim {
    Claim { address: ip(address), mac, interface: "eth0".to_owned(), probe }
}

#[test]
fn nothing_is_decided_before_every_watch_has_listed_once() {
    let now = Instant::now();
    let mut speaker = speaker();
    let wire = FakeWire::default();
    list(&mut speaker, now, Some(vec![slice(vec![allocation("a", &["192.168.2.10"], true)])]), None);
    assert!(
        speaker.on_wake(now, &wire).is_empty(),
        "the Leases are not listed: this node could be announcing a peer's address"
    );

    list(&mut speaker, now, None, Some(&[ME]));
    let effects = speaker.on_wake(now, &wire);
    assert_eq!(
        answer(&effects),
        Some((ips(&["192.168.2.10"]), BTreeSet::new())),
        "listed at the start, the address is no new one: answered without a probe"
    );
}

#[test]
fn a_renewal_of_a_live_peer_schedules_no_decision_and_a_pool_change_one_coalesced() {
    let now = Instant::now();
    let mut speaker = speaker();
    list(&mut speaker, now, Some(vec![slice(vec![allocation("a", &["192.168.2.10"], true)])]), Some(&[ME, PEER]));
    speaker.on_renewed(Some(now));
    speaker.on_wake(now, &FakeWire::default());

    let later = now + Duration::from_millis(500);
    speaker.on_watched(Watched::Lease(Event::Apply(lease(PEER.0, PEER.1))), later);
    let wake = speaker.next_wake().expect("a Lease expiry is always ahead");
    assert!(wake > later + COALESCE, "a renewal is due no decision; the next wake is an expiry ({wake:?})");

    let changed = slice(vec![allocation("a", &["192.168.2.10"], true), allocation("b", &["192.168.2.11"], true)]);
    speaker.on_watched(Watched::AllocationSlice(Event::Apply(changed)), later);
    assert_eq!(speaker.next_wake(), Some(later + COALESCE));
}

#[test]
fn an_announcing_event_is_posted_once_per_service_not_on_every_decision() {
    let now = Instant::now();
    let mut speaker = alone(now, slice(vec![allocation("a", &["192.168.2.10", "fd00::10"], true)]));
    let mut wire = FakeWire::default();
    let effects = speaker.on_wake(now, &wire);
    wire.execute(&effects);
    assert_eq!(
        posts(&effects),
        [(
            "web/a".to_owned(),
            reason::ANNOUNCING,
            "192.168.2.10, fd00::10 announced by node node-1 on eth0".to_owned()
        )]
    );

    let again = speaker.on_wake(now + COALESCE, &wire);
    assert!(posts(&again).is_empty(), "nothing changed: no second Event ({again:?})");
    assert_eq!(answer(&again), answer(&effects), "and the same addresses answered");
}

#[test]
fn a_new_address_is_probed_first_and_one_a_foreign_host_answers_for_is_not_announced() {
    let now = Instant::now();
    let mut speaker = alone(now, slice(vec![allocation("old", &["192.168.2.10"], true)]));
    let mut wire = FakeWire::default();
    wire.execute(&speaker.on_wake(now, &wire));

    let added = now + Duration::from_millis(100);
    let both = slice(vec![allocation("old", &["192.168.2.10"], true), allocation("new", &["192.168.2.11"], true)]);
    speaker.on_watched(Watched::AllocationSlice(Event::Apply(both)), added);
    let effects = speaker.on_wake(added + COALESCE, &wire);
    wire.execute(&effects);
    assert_eq!(answer(&effects), Some((ips(&["192.168.2.10"]), ips(&["192.168.2.11"]))));
    assert!(posts(&effects).is_empty(), "web/new is not announced before its probe ends ({effects:?})");

    let answered = added + Duration::from_millis(200);
    let effects = speaker.on_claim(claim("192.168.2.11", FOREIGN, false), answered, &wire);
    let events = posts(&effects);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0].0.as_str(), events[0].1), ("web/new", reason::ADDRESS_IN_USE));
    assert!(events[0].2.contains("192.168.2.11 is already in use on the LAN by 02:99:00:00:00:01"), "{}", events[0].2);
    let expected = PublishedConflict {
        address: "192.168.2.11".to_owned(),
        mac: FOREIGN.to_string(),
        interface: "eth0".to_owned(),
        in_use: true,
    };
    assert_eq!(published(&effects), Some([expected].as_slice()));
    assert_eq!(speaker.next_wake(), Some(answered), "decided again at once, without the address");

    let effects = speaker.on_wake(answered, &wire);
    wire.execute(&effects);
    assert_eq!(answer(&effects), Some((ips(&["192.168.2.10"]), BTreeSet::new())));
    let past_the_window = answered + PROBE_WINDOW;
    renew(&mut speaker, past_the_window);
    let effects = speaker.on_wake(past_the_window, &wire);
    assert_eq!(answer(&effects), Some((ips(&["192.168.2.10"]), BTreeSet::new())), "in use: not probed at once again");
    let retry = answered + RETRY_IN_USE;
    renew(&mut speaker, retry);
    assert_eq!(answer(&speaker.on_wake(retry, &wire)), Some((ips(&["192.168.2.10"]), ips(&["192.168.2.11"]))));
}

#[test]
fn a_foreign_claim_is_one_conflict_reported_when_it_starts_and_when_a_second_host_joins() {
    let now = Instant::now();
    let mut speaker = alone(now, slice(vec![allocation("a", &["192.168.2.10"], true)]));
    let mut wire = FakeWire::default();
    wire.execute(&speaker.on_wake(now, &wire));

    let effects = speaker.on_claim(claim("192.168.2.10", FOREIGN, false), now, &wire);
    let events = posts(&effects);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0].0.as_str(), events[0].1), ("web/a", reason::ADDRESS_CONFLICT));
    assert!(events[0].2.contains("also claimed by 02:99:00:00:00:01 on eth0 of node node-1"), "{}", events[0].2);
    assert!(published(&effects).is_some_and(|conflicts| conflicts.len() == 1 && !conflicts[0].in_use));

    let again = speaker.on_claim(claim("192.168.2.10", FOREIGN, false), now + Duration::from_millis(10), &wire);
    assert!(again.is_empty(), "the same host again is no news: {again:?}");
    let own = speaker.on_claim(claim("192.168.2.10", mac(ME.1), false), now, &wire);
    assert!(own.is_empty(), "this node's own frame: {own:?}");

    let second = speaker.on_claim(claim("192.168.2.10", OTHER_FOREIGN, false), now + Duration::from_millis(20), &wire);
    let events = posts(&second);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].2.contains("several hosts (02:99:00:00:00:01, 02:99:00:00:00:02)"), "{}", events[0].2);
    let third = speaker.on_claim(claim("192.168.2.10", FOREIGN, false), now + Duration::from_millis(30), &wire);
    assert!(posts(&third).is_empty(), "a flapping MAC is one conflict: {third:?}");

    let last_claim = now + Duration::from_millis(30);
    assert_eq!(speaker.on_conflict_tick(last_claim + RECHECK, &wire), [Effect::Recheck(ip("192.168.2.10"))]);
    let ended = speaker.on_conflict_tick(last_claim + FORGET_AFTER, &wire);
    let events = posts(&ended);
    assert_eq!(events.len(), 1, "{ended:?}");
    assert_eq!((events[0].0.as_str(), events[0].1), ("web/a", reason::ADDRESS_CONFLICT_RESOLVED));
    assert_eq!(published(&ended), Some([].as_slice()), "the conflict is taken off the Lease");
}

#[test]
fn a_peer_announcing_an_address_is_yielded_to_only_while_this_node_is_cut_off_or_stopping() {
    let now = Instant::now();
    let allocations = (10..18).map(|last| allocation(&format!("s{last}"), &[&format!("192.168.2.{last}")], true));
    let mut speaker = speaker();
    list(&mut speaker, now, Some(vec![slice(allocations.collect())]), Some(&[ME, PEER]));
    speaker.on_renewed(Some(now));
    let mut wire = FakeWire::default();
    wire.execute(&speaker.on_wake(now, &wire));
    let mine = *wire.answering.first().expect("of 8 addresses and 2 nodes, this node announces some");
    let from_peer = Claim { address: mine, mac: mac(PEER.1), interface: "eth0".to_owned(), probe: false };

    let current = speaker.on_claim(from_peer.clone(), now + Duration::from_millis(100), &wire);
    assert!(!current.contains(&Effect::Release(mine)), "a current view keeps the address: {current:?}");

    let cut_off = now + LEASE + Duration::from_millis(1);
    let stale = speaker.on_claim(from_peer.clone(), cut_off, &wire);
    assert!(
        stale.contains(&Effect::Release(mine)),
        "no renewal for a Lease duration: the peer's view is fresher: {stale:?}"
    );

    let mut stopping = self::speaker();
    list(&mut stopping, now, Some(vec![slice(vec![allocation("a", &[&mine.to_string()], true)])]), Some(&[ME, PEER]));
    stopping.on_renewed(Some(now));
    stopping.on_wake(now, &wire);
    assert_eq!(stopping.on_stopping(), [Effect::SetReady(false)]);
    let shutting_down = stopping.on_claim(from_peer, now + Duration::from_millis(100), &wire);
    assert!(shutting_down.contains(&Effect::Release(mine)), "shutting down, the node yields: {shutting_down:?}");
}

#[test]
fn a_stale_view_keeps_the_last_decision_and_a_current_one_waits_a_lease_duration_more() {
    let start = Instant::now();
    let mut speaker = alone(start, slice(vec![allocation("a", &["192.168.2.10"], true)]));
    let mut wire = FakeWire::default();
    wire.execute(&speaker.on_wake(start, &wire));
    assert_eq!(wire.answering, ips(&["192.168.2.10"]));

    // No renewal for longer than a Lease duration, then the allocation goes away.
    let stale = start + LEASE + Duration::from_secs(1);
    speaker.on_watched(Watched::AllocationSlice(Event::Apply(slice(Vec::new()))), stale);
    assert!(speaker.on_wake(stale + COALESCE, &wire).is_empty(), "a stale view acts on nothing");

    // Renewals come back: own Lease renewed and seen on the watch.
    let back = stale + Duration::from_secs(1);
    renew(&mut speaker, back);
    assert!(speaker.on_wake(back, &wire).is_empty(), "current again: waits for the peers' renewals");
    assert_eq!(speaker.next_wake(), Some(back + LEASE));

    let renewal = back + Duration::from_millis(1500);
    renew(&mut speaker, renewal);
    let effects = speaker.on_wake(back + LEASE, &wire);
    assert_eq!(answer(&effects), Some((BTreeSet::new(), BTreeSet::new())), "a Lease duration later it acts");
}

#[test]
fn the_endpoint_slices_of_a_local_service_are_followed_while_it_holds_addresses() {
    let now = Instant::now();
    let mut local = allocation("local", &["192.168.2.13"], true);
    local.external_traffic_policy = Some(TRAFFIC_POLICY_LOCAL.to_owned());
    let mut speaker = alone(now, slice(vec![local, allocation("cluster", &["192.168.2.14"], true)]));
    let wire = FakeWire::default();
    let follow = |effects: &[Effect]| {
        effects.iter().find_map(|effect| match effect {
            Effect::Follow { start, stop } => Some((start.clone(), stop.clone())),
            _ => None,
        })
    };
    let service = ServiceKey::new("web", "local");
    assert_eq!(follow(&speaker.on_wake(now, &wire)), Some((vec![service.clone()], Vec::new())));
    assert_eq!(follow(&speaker.on_wake(now + COALESCE, &wire)), None, "already followed");

    let later = now + Duration::from_millis(100);
    speaker.on_watched(
        Watched::AllocationSlice(Event::Apply(slice(vec![allocation("cluster", &["192.168.2.14"], true)]))),
        later,
    );
    assert_eq!(follow(&speaker.on_wake(later + COALESCE, &wire)), Some((Vec::new(), vec![service])));
}
