//! Addresses this node announces that another host claims too: a state, not a one-off report.
//!
//! A host that is not an ironlb speaker and uses an address this node announces shows itself
//! once — a gratuitous ARP or a Neighbor Advertisement when it brings the address up — and then
//! only answers its own requesters, which this node does not see. So a conflict, once seen, is
//! kept and **re-checked**: every [`RECHECK`] this node sends one probe for the address (an
//! RFC 5227 ARP probe or a DAD solicitation); a host still using the address answers it, which
//! keeps the conflict. After [`FORGET_AFTER`] without an answer (the host let the address go, or
//! left) the conflict is over. That costs one frame per conflicted address every ten seconds and
//! does not fight the other host: this node keeps answering as before, without floods.
//!
//! The controller reports a conflict when it starts (a Warning Event on the Services holding the
//! address) and ends (a Normal Event), and publishes the current ones on the node Lease
//! ([`PublishedConflict`]), from which the operator writes the pool's `AddressConflict`
//! condition. Addresses found in use by the probe *before* their first announcement are the
//! other kind of conflict; [`crate::probes`] keeps those.
//!
//! **A conflict is an address, not a MAC.** A host on the LAN may claim an address from MAC
//! after MAC (a misconfigured bond, or a host that does it on purpose): within a conflict's
//! lifetime every further claimer is recorded on it ([`Conflict::claimers`], at most
//! [`LISTED_CLAIMERS`]) and keeps it alive, but starts nothing. The controller hears it once,
//! when the second host shows up ([`Claimed::SeveralHosts`]), to say that several hosts claim
//! the address. What the Lease publishes (the first claimer, the interface it was seen on)
//! stays put while the conflict lasts, so a flap rewrites neither the Lease nor the pool's
//! condition.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ironlb_core::announcer::PublishedConflict;
use tokio::time::Instant;

use crate::packet::MacAddress;

/// How often a conflicted address is probed again.
pub const RECHECK: Duration = Duration::from_secs(10);
/// How long a conflict lasts without fresh evidence: three unanswered re-checks and a margin.
pub const FORGET_AFTER: Duration = Duration::from_secs(35);
/// How many claimers of one conflict are remembered by MAC; more are only known to exist.
pub const LISTED_CLAIMERS: usize = 4;

/// What a claim tells about an address's conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claimed {
    /// A conflict starts: report it.
    New,
    /// A known conflict, claimed by a second host for the first time: report, once, that
    /// several hosts claim the address.
    SeveralHosts,
    /// Nothing to report: the same conflict, by a host already seen or one more of several.
    Known,
}

/// One address another host claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The MAC of the first host that claimed it, while the conflict lasts.
    pub mac: MacAddress,
    /// The interface that first claim was seen on.
    pub interface: String,
    /// Every claimer seen, in the order seen, at most [`LISTED_CLAIMERS`].
    claimers: Vec<MacAddress>,
    /// Whether more hosts than listed claimed it.
    unlisted: bool,
    last_seen: Instant,
    next_check: Instant,
}

impl Conflict {
    /// The hosts seen claiming the address, first first (at most [`LISTED_CLAIMERS`]).
    pub fn claimers(&self) -> &[MacAddress] {
        &self.claimers
    }

    /// Whether more than one host claimed the address during this conflict.
    pub fn several_hosts(&self) -> bool {
        self.claimers.len() > 1
    }

    /// Who claims the address, for a message: `02:00:c0:a8:02:fa`, or `several hosts
    /// (02:00:c0:a8:02:fa, 02:00:c0:a8:02:fb)`, with `and more` past [`LISTED_CLAIMERS`].
    pub fn claimed_by(&self) -> String {
        if !self.several_hosts() {
            return self.mac.to_string();
        }
        let listed: Vec<String> = self.claimers.iter().map(ToString::to_string).collect();
        let more = if self.unlisted { " and more" } else { "" };
        format!("several hosts ({}{more})", listed.join(", "))
    }
}

/// The conflicts of the addresses this node announces.
#[derive(Debug, Default)]
pub struct Conflicts {
    entries: BTreeMap<IpAddr, Conflict>,
}

impl Conflicts {
    /// A host that is not a speaker claimed `address` at `now`: evidence that the address's
    /// conflict goes on (its next re-check moves to [`RECHECK`] from now). Returns what there is
    /// to report.
    pub fn claim(&mut self, address: IpAddr, mac: MacAddress, interface: &str, now: Instant) -> Claimed {
        let Some(known) = self.entries.get_mut(&address) else {
            let conflict = Conflict {
                mac,
                interface: interface.to_owned(),
                claimers: vec![mac],
                unlisted: false,
                last_seen: now,
                next_check: now + RECHECK,
            };
            self.entries.insert(address, conflict);
            return Claimed::New;
        };
        (known.last_seen, known.next_check) = (now, now + RECHECK);
        if known.claimers.contains(&mac) {
            Claimed::Known
        } else if known.claimers.len() < LISTED_CLAIMERS {
            known.claimers.push(mac);
            if known.claimers.len() == 2 { Claimed::SeveralHosts } else { Claimed::Known }
        } else {
            known.unlisted = true;
            Claimed::Known
        }
    }

    /// Whether a claim starts a conflict ([`Self::claim`] returns [`Claimed::New`]).
    pub fn claimed(&mut self, address: IpAddr, mac: MacAddress, interface: &str, now: Instant) -> bool {
        self.claim(address, mac, interface, now) == Claimed::New
    }

    /// The conflict of `address`, if one is known.
    pub fn get(&self, address: IpAddr) -> Option<&Conflict> {
        self.entries.get(&address)
    }

    /// Moves time to `now`: returns the addresses due a re-check (their next one is scheduled)
    /// and the conflicts that ended — unseen for [`FORGET_AFTER`], or of an address this node no
    /// longer answers for (`answering`).
    pub fn tick(&mut self, now: Instant, answering: impl Fn(IpAddr) -> bool) -> (Vec<IpAddr>, Vec<(IpAddr, Conflict)>) {
        let ended: Vec<IpAddr> = self
            .entries
            .iter()
            .filter(|(address, conflict)| !answering(**address) || now >= conflict.last_seen + FORGET_AFTER)
            .map(|(address, _)| *address)
            .collect();
        let ended = ended.into_iter().filter_map(|address| self.entries.remove_entry(&address)).collect();
        let mut due = Vec::new();
        for (address, conflict) in &mut self.entries {
            if now >= conflict.next_check {
                conflict.next_check = now + RECHECK;
                due.push(*address);
            }
        }
        (due, ended)
    }

    /// When [`Self::tick`] has something to do next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.values().map(|conflict| conflict.next_check.min(conflict.last_seen + FORGET_AFTER)).min()
    }

    /// The conflicts as the node Lease publishes them (`in_use: false`: this node announces).
    pub fn published(&self) -> impl Iterator<Item = PublishedConflict> + '_ {
        self.entries.iter().map(|(address, conflict)| PublishedConflict {
            address: address.to_string(),
            mac: conflict.mac.to_string(),
            interface: conflict.interface.clone(),
            in_use: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> IpAddr {
        "192.168.2.10".parse().expect("ip")
    }

    fn mac(last: u8) -> MacAddress {
        format!("02:00:c0:a8:02:{last:02x}").parse().expect("mac")
    }

    #[tokio::test(start_paused = true)]
    async fn a_conflict_is_news_once_and_lasts_while_the_other_host_answers_the_recheck() {
        let mut conflicts = Conflicts::default();
        let start = Instant::now();
        assert!(conflicts.claimed(address(), mac(0xfa), "eth0", start), "the first claim is news");
        assert!(!conflicts.claimed(address(), mac(0xfa), "eth0", start), "the same host again is not");
        assert_eq!(conflicts.next_deadline(), Some(start + RECHECK));
        let (due, ended) = conflicts.tick(start + RECHECK, |_| true);
        assert_eq!((due, ended.len()), (vec![address()], 0), "due a re-check, not over");
        // The host answers the re-check: the conflict goes on past FORGET_AFTER from the start.
        conflicts.claimed(address(), mac(0xfa), "eth0", start + RECHECK);
        let (_, ended) = conflicts.tick(start + FORGET_AFTER, |_| true);
        assert!(ended.is_empty());
        assert_eq!(conflicts.published().count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_alternating_macs_is_one_conflict_reported_once_as_several_hosts() {
        let mut conflicts = Conflicts::default();
        let start = Instant::now();
        assert_eq!(conflicts.claim(address(), mac(0xfa), "eth0", start), Claimed::New);
        assert_eq!(conflicts.claim(address(), mac(0xfb), "eth1", start), Claimed::SeveralHosts);
        assert!(!conflicts.claimed(address(), mac(0xfa), "eth0", start), "a flap back is not news");
        for last in 0..=255 {
            assert_eq!(conflicts.claim(address(), mac(last), "eth0", start), Claimed::Known, "{last}");
        }
        let conflict = conflicts.get(address()).expect("one conflict");
        assert_eq!(conflict.claimers().len(), LISTED_CLAIMERS, "the MACs remembered stay bounded");
        assert_eq!(
            conflict.claimed_by(),
            "several hosts (02:00:c0:a8:02:fa, 02:00:c0:a8:02:fb, 02:00:c0:a8:02:00, 02:00:c0:a8:02:01 and more)"
        );
        let published: Vec<PublishedConflict> = conflicts.published().collect();
        assert_eq!(published.len(), 1);
        assert_eq!((published[0].mac.as_str(), published[0].interface.as_str()), ("02:00:c0:a8:02:fa", "eth0"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_flapping_conflict_lives_on_its_claims_and_ends_when_they_stop() {
        let mut conflicts = Conflicts::default();
        let start = Instant::now();
        conflicts.claim(address(), mac(0xfa), "eth0", start);
        conflicts.claim(address(), mac(0xfb), "eth0", start + RECHECK);
        let (_, ended) = conflicts.tick(start + FORGET_AFTER, |_| true);
        assert!(ended.is_empty(), "the second host's claim kept it");
        let (_, ended) = conflicts.tick(start + RECHECK + FORGET_AFTER, |_| true);
        assert_eq!(ended.len(), 1, "unseen for FORGET_AFTER: over");
        assert_eq!(conflicts.claim(address(), mac(0xfb), "eth0", start + RECHECK + FORGET_AFTER), Claimed::New);
        assert_eq!(conflicts.get(address()).map(Conflict::claimed_by).as_deref(), Some("02:00:c0:a8:02:fb"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_conflict_ends_when_nobody_answers_or_the_address_is_not_announced_here_any_more() {
        let mut conflicts = Conflicts::default();
        let start = Instant::now();
        conflicts.claimed(address(), mac(0xfa), "eth0", start);
        let (_, ended) = conflicts.tick(start + FORGET_AFTER - Duration::from_millis(1), |_| true);
        assert!(ended.is_empty());
        let (_, ended) = conflicts.tick(start + FORGET_AFTER, |_| true);
        assert_eq!(ended.len(), 1, "unseen for FORGET_AFTER: over");
        assert_eq!(conflicts.published().count(), 0);

        conflicts.claimed(address(), mac(0xfa), "eth0", start);
        let (due, ended) = conflicts.tick(start, |_| false);
        assert!(due.is_empty() && ended.len() == 1, "another node announces it now: not this node's conflict");
    }

    #[test]
    fn published_conflicts_name_address_mac_and_interface() {
        let mut conflicts = Conflicts::default();
        conflicts.claimed(address(), mac(0xfa), "eth0", Instant::now());
        let published: Vec<PublishedConflict> = conflicts.published().collect();
        assert_eq!(
            published,
            vec![PublishedConflict {
                address: "192.168.2.10".into(),
                mac: "02:00:c0:a8:02:fa".into(),
                interface: "eth0".into(),
                in_use: false
            }]
        );
    }
}
