//! The responder on a real link (two throwaway namespaces, see `crate::testlab`): it takes over
//! with gratuitous frames, answers what it owns on the interface it owns it on, and drops and
//! counts everything else — truncated, oversized and malformed frames, requests for addresses
//! it does not own or on the wrong interface — without panicking or disturbing the answers;
//! and a flood of foreign claims is rate-limited without delaying an answer.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::{Claim, Responder};
use crate::net::{ArpSocket, Interface, link};
use crate::packet::{self, ArpKind, Packet, dad_probe_ns, gratuitous_arp};
use crate::telemetry::Metrics;
use crate::testlab::{Lab, MAC_A, MAC_B, VIP4, VIP6, spawn_in};

/// Owned on `eth1` only.
const VIP4_ETH1: Ipv4Addr = Ipv4Addr::new(192, 168, 78, 10);
/// Offset of the ARP target IP in an Ethernet frame.
const ARP_TARGET_IP: std::ops::Range<usize> = 38..42;

/// An ARP request from B (`MAC_B`, 192.168.77.2) for `target`.
fn request(target: Ipv4Addr) -> Vec<u8> {
    let mut frame = gratuitous_arp(MAC_B, Ipv4Addr::new(192, 168, 77, 2)).to_vec();
    frame[ARP_TARGET_IP].copy_from_slice(&target.octets());
    frame
}

/// The next ARP frame on `socket` that `keep` accepts, within `timeout`.
async fn next_arp(socket: &ArpSocket, timeout: Duration, keep: impl Fn(&packet::ArpPacket) -> bool) -> bool {
    let mut buf = [0_u8; 2048];
    tokio::time::timeout(timeout, async {
        loop {
            let len = socket.recv(&mut buf).await.expect("recv");
            if let Ok(Packet::Arp { arp, ethernet }) = packet::parse(&buf[..len])
                && ethernet.source() == MAC_A
                && keep(&arp)
            {
                return;
            }
        }
    })
    .await
    .is_ok()
}

/// The value of one series in the metrics text.
fn value(metrics: &Metrics, series: &str) -> f64 {
    let text = metrics.render().expect("render");
    let line = text.lines().find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '));
    line.and_then(|line| line.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

/// Runs `node` in namespace A with a new responder (counting into `metrics`), its claims and
/// the namespace's interfaces.
fn spawn_responder<T, F>(
    lab: &Lab,
    metrics: &Metrics,
    node: impl FnOnce(Responder, tokio::sync::mpsc::Receiver<Claim>, Vec<Interface>) -> F + Send + 'static,
) -> std::thread::JoinHandle<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send,
{
    let metrics = metrics.clone();
    spawn_in(&lab.a, async move {
        let interfaces = link::interfaces().expect("interfaces");
        let (responder, claims) = Responder::new(metrics, Duration::ZERO);
        node(responder, claims, interfaces).await
    })
}

#[test]
fn answers_what_it_owns_and_drops_and_counts_everything_else() {
    let Some(lab) = Lab::new() else { return };
    lab.add_second_link();
    let metrics = Metrics::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready) = std::sync::mpsc::channel::<()>();
    let node = spawn_responder(&lab, &metrics, |mut responder, _claims, interfaces| async move {
        let owned: BTreeMap<IpAddr, Vec<String>> = BTreeMap::from([
            (IpAddr::V4(VIP4), vec!["eth0".to_owned()]),
            (IpAddr::V6(VIP6), vec!["eth0".to_owned()]),
            (IpAddr::V4(VIP4_ETH1), vec!["eth1".to_owned()]),
        ]);
        // The client opened its sockets before waiting for this: the burst cannot be missed.
        let _ = ready_tx.send(());
        let taken = responder.apply(&owned, &BTreeMap::new(), &interfaces);
        assert_eq!(taken.len(), 3, "{taken:?}");
        let _ = stopped.await;
        // The same decision again takes nothing over (no second burst).
        assert!(responder.apply(&owned, &BTreeMap::new(), &interfaces).is_empty());
    });

    let client = spawn_in(&lab.b, async move {
        let eth0 = link::interface_by_name("eth0").expect("interfaces").expect("eth0");
        let eth1 = link::interface_by_name("eth1").expect("interfaces").expect("eth1");
        let (arp0, arp1) =
            (ArpSocket::open(eth0.index).expect("arp eth0"), ArpSocket::open(eth1.index).expect("arp eth1"));
        ready.recv().expect("the node side is ready");

        // Take-over: a gratuitous ARP (sender = target = the VIP) from the node's MAC, as a request
        // and then as a reply, for hosts that learn only from replies.
        for kind in [ArpKind::Announcement, ArpKind::GratuitousReply] {
            let gratuitous =
                next_arp(&arp0, Duration::from_secs(2), |arp| arp.kind() == kind && arp.target_ip() == VIP4);
            assert!(gratuitous.await, "no gratuitous ARP {kind:?} for {VIP4} on take-over");
        }

        // Bad input, each of which must be dropped and counted.
        let valid = request(VIP4);
        let mut bad_hardware = valid.clone();
        bad_hardware[14..16].copy_from_slice(&6_u16.to_be_bytes());
        let mut oversized = valid.clone();
        oversized.resize(3000, 0);
        for frame in [&valid[..20], &bad_hardware[..], &oversized[..]] {
            arp0.send(frame).expect("send");
        }
        let mut bad_checksum = dad_probe_ns(MAC_B, VIP6);
        let last = bad_checksum.len() - 1;
        bad_checksum[last] ^= 0xff;
        let ndp0 = crate::net::NdpSocket::open(eth0.index).expect("ndp eth0");
        ndp0.send(&bad_checksum).expect("send");
        // Well-formed, but not for this node or not on this interface.
        arp0.send(&request(Ipv4Addr::new(192, 168, 77, 99))).expect("send");
        arp1.send(&request(VIP4)).expect("send");

        // Nothing valid is disturbed: a request for the VIP is answered, from the node's MAC.
        arp0.send(&request(VIP4)).expect("send");
        let answered = next_arp(&arp0, Duration::from_secs(2), |arp| {
            arp.operation() == packet::ArpOperation::Reply && arp.sender_ip() == VIP4
        });
        assert!(answered.await, "a valid request after the bad ones was not answered");
        // A Duplicate Address Detection probe for the owned IPv6 address is defended.
        ndp0.send(&dad_probe_ns(MAC_B, VIP6)).expect("send");
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    client.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let _ = stop.send(());
    node.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));

    let reason =
        |name: &str| value(&metrics, &format!("ironlb_speaker_malformed_frames_dropped_total{{reason=\"{name}\"}}"));
    assert!(reason("truncated") >= 2.0, "a cut-short and an oversized frame: {}", metrics.render().unwrap_or_default());
    assert!(reason("bad_arp_hardware") >= 1.0);
    assert!(reason("bad_checksum") >= 1.0);
    let ignored = |name: &str| value(&metrics, &format!("ironlb_speaker_requests_ignored_total{{reason=\"{name}\"}}"));
    assert!(ignored("not_owned") >= 1.0);
    assert!(ignored("wrong_interface") >= 1.0);
    assert!(ignored("foreign_claim") >= 1.0, "the DAD probe for an owned address is a foreign claim");
    let sent = |series: &str| value(&metrics, series);
    assert!(sent("ironlb_speaker_replies_sent_total{interface=\"eth0\",protocol=\"arp\"}") >= 1.0);
    assert!(sent("ironlb_speaker_gratuitous_sent_total{interface=\"eth0\",protocol=\"arp\"}") >= 1.0);
    assert!(sent("ironlb_speaker_gratuitous_sent_total{interface=\"eth0\",protocol=\"ndp\"}") >= 1.0);
    assert!(sent("ironlb_speaker_gratuitous_sent_total{interface=\"eth1\",protocol=\"arp\"}") >= 1.0);
    assert_eq!(value(&metrics, "ironlb_speaker_announced_addresses{family=\"ipv4\"}"), 2.0);
}

#[test]
fn a_flood_of_foreign_claims_is_rate_limited_and_never_delays_an_answer() {
    let Some(lab) = Lab::new() else { return };
    let metrics = Metrics::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready) = std::sync::mpsc::channel::<()>();
    // The controller never reads a claim here: a stuck controller must not stall answers either.
    let node = spawn_responder(&lab, &metrics, |mut responder, claims, interfaces| async move {
        let owned = BTreeMap::from([(IpAddr::V4(VIP4), vec!["eth0".to_owned()])]);
        responder.apply(&owned, &BTreeMap::new(), &interfaces);
        let _ = ready_tx.send(());
        let _ = stopped.await;
        claims.len()
    });

    let client = spawn_in(&lab.b, async move {
        let eth0 = link::interface_by_name("eth0").expect("interfaces").expect("eth0");
        let arp = ArpSocket::open(eth0.index).expect("arp eth0");
        ready.recv().expect("the node side is ready");
        // Gratuitous ARP for the owned address from 2,000 MACs, in 40 ms: 50,000 frames a second,
        // paced only so that the node's socket buffer does not overflow.
        for n in 0..2_000_u16 {
            let [high, low] = n.to_be_bytes();
            let mac = packet::MacAddress::new([0x02, 0x0f, 0, 0, high, low]);
            arp.send(&gratuitous_arp(mac, VIP4)).expect("send");
            if n % 50 == 49 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        arp.send(&request(VIP4)).expect("send");
        let answered = next_arp(&arp, Duration::from_secs(2), |arp| {
            arp.operation() == packet::ArpOperation::Reply && arp.sender_ip() == VIP4
        });
        assert!(answered.await, "a request after the flood was not answered");
    });
    client.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let _ = stop.send(());
    let queued = node.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));

    let claims = value(&metrics, "ironlb_speaker_requests_ignored_total{reason=\"foreign_claim\"}");
    let limited = value(&metrics, "ironlb_speaker_claims_dropped_total{reason=\"rate_limited\"}");
    let burst = crate::claims::ADDRESS_RATE.burst as usize;
    assert!(claims >= 500.0, "the flood reached the responder: {claims}");
    assert!((1..=burst + 2).contains(&queued), "{queued} claims queued for the controller");
    assert_eq!(limited, claims - queued as f64, "every other claim was dropped and counted");
}
