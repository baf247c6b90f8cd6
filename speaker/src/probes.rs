//! Looking before leaping: an address announced for the first time is probed for first.
//!
//! A new Service's address may already be in use on the LAN (a host configured by hand, a
//! forgotten VM). Before this node answers for such an address the first time, it sends an
//! RFC 5227 ARP probe (IPv4) or an RFC 4862 Duplicate Address Detection solicitation (IPv6) and
//! listens for [`PROBE_WINDOW`]; an answer from a host that is not an ironlb speaker means the
//! address is in use: it is not announced (taking it would steal that host's traffic), the
//! Service gets an `AddressInUse` Warning, and the probe is repeated every [`RETRY_IN_USE`] until
//! the address is free.
//!
//! Only *new* addresses are probed ([`ClusterView::is_fresh`]: allocated after the record was
//! first listed, and not recorded as announced by another node), and those the record marks as
//! found in use (`inUse`: a finding outlives the speaker that made it). A take-over after a
//! failure is otherwise not probed: the address was announced before, its previous announcer is
//! the one that went away, and a probe would only add its window to every failover.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ironlb_core::announcer::PublishedConflict;
use tokio::time::Instant;

use crate::decide::ClusterView;
use crate::packet::MacAddress;
pub use crate::responder::PROBE_WINDOW;

/// How long an address found in use waits before it is probed again.
pub const RETRY_IN_USE: Duration = Duration::from_secs(30);

/// Addresses per interface, as a decision hands them to the responder.
pub type ByInterface = BTreeMap<IpAddr, Vec<String>>;

/// The probes under way and the addresses found in use.
#[derive(Debug, Default)]
pub struct Probes {
    started: BTreeMap<IpAddr, Instant>,
    /// Addresses found in use: when to probe again, who uses it, on which interface.
    in_use: BTreeMap<IpAddr, (Instant, MacAddress, String)>,
}

impl Probes {
    /// Splits what a decision owns into what to answer for now and what to probe for first.
    /// `answering` says whether the responder already answers for an address.
    pub fn split(
        &mut self,
        owned: &ByInterface,
        view: &mut ClusterView,
        answering: impl Fn(IpAddr) -> bool,
        now: Instant,
    ) -> (ByInterface, ByInterface) {
        self.started.retain(|address, _| owned.contains_key(address));
        self.in_use.retain(|address, _| owned.contains_key(address));
        let (mut announce, mut probe) = (ByInterface::new(), ByInterface::new());
        for (&address, interfaces) in owned {
            if let Some(&(retry_at, ..)) = self.in_use.get(&address) {
                if now < retry_at {
                    continue;
                }
                self.in_use.remove(&address);
                self.started.insert(address, now);
                probe.insert(address, interfaces.clone());
            } else if answering(address) || !view.is_fresh(address) {
                announce.insert(address, interfaces.clone());
            } else {
                let started = *self.started.entry(address).or_insert(now);
                if now >= started + PROBE_WINDOW {
                    self.started.remove(&address);
                    view.settle(address);
                    announce.insert(address, interfaces.clone());
                } else {
                    probe.insert(address, interfaces.clone());
                }
            }
        }
        (announce, probe)
    }

    /// Whether `address` is being probed for.
    pub fn is_probing(&self, address: IpAddr) -> bool {
        self.started.contains_key(&address)
    }

    /// A host that is not a speaker answered a probe for `address`: it is in use. Returns
    /// whether this is news (the address was being probed).
    pub fn found_in_use(&mut self, address: IpAddr, mac: MacAddress, interface: &str, now: Instant) -> bool {
        if self.started.remove(&address).is_none() {
            return false;
        }
        self.in_use.insert(address, (now + RETRY_IN_USE, mac, interface.to_owned()));
        true
    }

    /// The addresses found in use, as the node Lease publishes them.
    pub fn published(&self) -> impl Iterator<Item = PublishedConflict> + '_ {
        self.in_use.iter().map(|(address, (_, mac, interface))| PublishedConflict {
            address: address.to_string(),
            mac: mac.to_string(),
            interface: interface.clone(),
            in_use: true,
        })
    }

    /// When the next probe ends or an address in use is due to be probed again.
    pub fn next_deadline(&self) -> Option<Instant> {
        let ends = self.started.values().map(|&started| started + PROBE_WINDOW);
        ends.chain(self.in_use.values().map(|&(retry_at, ..)| retry_at)).min()
    }
}

#[cfg(test)]
mod tests {
    use ironlb_core::v1alpha1::Allocation;

    use super::*;

    fn view_with_new(address: &str) -> ClusterView {
        let mut view = ClusterView::new("");
        view.slices_listed();
        let allocation = Allocation {
            namespace: "ns".into(),
            name: "svc".into(),
            ips: vec![address.into()],
            ..Allocation::default()
        };
        view.set_pool(&crate::fixtures::pool());
        view.set_slice(&crate::fixtures::slice(vec![allocation]));
        view
    }

    fn owned(address: IpAddr) -> ByInterface {
        ByInterface::from([(address, vec!["eth0".to_owned()])])
    }

    #[test]
    fn a_new_address_is_probed_for_a_window_then_announced() {
        let address: IpAddr = "192.168.2.10".parse().expect("ip");
        let mut view = view_with_new("192.168.2.10");
        let mut probes = Probes::default();
        let start = Instant::now();
        let (announce, probe) = probes.split(&owned(address), &mut view, |_| false, start);
        assert!(announce.is_empty() && probe.contains_key(&address));
        assert_eq!(probes.next_deadline(), Some(start + PROBE_WINDOW));
        let (announce, _) = probes.split(&owned(address), &mut view, |_| false, start + PROBE_WINDOW);
        assert!(announce.contains_key(&address));
        assert!(!view.is_fresh(address), "announced once, never probed again");
    }

    #[test]
    fn an_address_in_use_is_not_announced_and_probed_again_later() {
        let address: IpAddr = "192.168.2.10".parse().expect("ip");
        let mut view = view_with_new("192.168.2.10");
        let mut probes = Probes::default();
        let start = Instant::now();
        probes.split(&owned(address), &mut view, |_| false, start);
        assert!(probes.found_in_use(address, MacAddress::new([2, 0, 0, 0, 0, 0xfa]), "eth0", start));
        let (announce, probe) = probes.split(&owned(address), &mut view, |_| false, start + PROBE_WINDOW);
        assert!(announce.is_empty() && probe.is_empty());
        let (_, probe) = probes.split(&owned(address), &mut view, |_| false, start + RETRY_IN_USE);
        assert!(probe.contains_key(&address), "probed again after {RETRY_IN_USE:?}");
    }

    #[test]
    fn an_address_seen_at_start_or_already_answered_is_not_probed() {
        let address: IpAddr = "192.168.2.10".parse().expect("ip");
        let mut probes = Probes::default();
        let (announce, _) = probes.split(&owned(address), &mut ClusterView::new(""), |_| false, Instant::now());
        assert!(announce.contains_key(&address));
        let mut view = view_with_new("192.168.2.10");
        let (announce, _) = probes.split(&owned(address), &mut view, |_| true, Instant::now());
        assert!(announce.contains_key(&address));
    }
}
