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

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ironlb_crds::announcer::PublishedConflict;
use tokio::time::Instant;

use crate::packet::MacAddress;

/// How often a conflicted address is probed again.
pub const RECHECK: Duration = Duration::from_secs(10);
/// How long a conflict lasts without fresh evidence: three unanswered re-checks and a margin.
pub const FORGET_AFTER: Duration = Duration::from_secs(35);

/// One address another host claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other host's MAC.
    pub mac: MacAddress,
    /// The interface it was seen on.
    pub interface: String,
    last_seen: Instant,
    next_check: Instant,
}

/// The conflicts of the addresses this node announces.
#[derive(Debug, Default)]
pub struct Conflicts {
    entries: BTreeMap<IpAddr, Conflict>,
}

impl Conflicts {
    /// A host that is not a speaker claimed `address` at `now`. Returns whether this is news: no
    /// conflict was known for the address, or it was another host's.
    pub fn claimed(&mut self, address: IpAddr, mac: MacAddress, interface: &str, now: Instant) -> bool {
        let news = self.entries.get(&address).is_none_or(|known| known.mac != mac);
        self.entries.insert(
            address,
            Conflict { mac, interface: interface.to_owned(), last_seen: now, next_check: now + RECHECK },
        );
        news
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
        // Another host claims it: news again.
        assert!(conflicts.claimed(address(), mac(0xfb), "eth0", start + FORGET_AFTER));
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
