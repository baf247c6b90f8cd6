//! The client's side of the wire: ARP requests and Neighbor Solicitations sent from the client
//! namespace through the speaker crate's own `AF_PACKET` sockets, and the answers matched to them.
//!
//! A network namespace belongs to a thread, so every socket here is opened on a dedicated thread
//! that entered the client namespace with `setns` (as `speaker/src/net/tests.rs` does), with a
//! tokio runtime of its own for the socket to register with. The sockets' kernel filters hand
//! them only incoming ARP (or NS/NA) frames, never what the client itself sends, so whatever a
//! socket reads is an answer from the LAN, or another host's request.
//!
//! Timing is done in the client's userspace, from just before `send` to the moment the answer
//! is read: the wake-up and syscall costs of the client are in every figure, the same for the
//! speaker as for the kernel it is compared with.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ironlb_speaker::net::{ArpSocket, NdpSocket, link};
use ironlb_speaker::packet::{
    self, ArpKind, ArpOperation, EtherType, MacAddress, Packet, SolicitationKind, icmpv6, ndp, solicited_node_multicast,
};
use nix::sched::{CloneFlags, setns};

use crate::host::Host;

/// How long a request waits for its answer before it counts as lost.
const ANSWER_TIMEOUT: Duration = Duration::from_millis(200);
/// Pause between two pairs of latency requests: each request meets an idle speaker and an idle
/// kernel, as a client resolving an address now and then does, not a queue.
const LATENCY_GAP: Duration = Duration::from_millis(1);
/// How long answers are still counted after the last request of a burst.
const BURST_GRACE: Duration = Duration::from_millis(500);
/// A burst whose sending falls this far behind its schedule is cut off: the client cannot keep up.
const BURST_OVERRUN: Duration = Duration::from_secs(5);

/// Runs `work` on a new thread inside network namespace `netns`, on a tokio runtime of its own.
pub(crate) fn in_netns<T, F, Fut>(netns: &str, work: F) -> std::thread::JoinHandle<Result<T>>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>>,
{
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let namespace = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        setns(&namespace, CloneFlags::CLONE_NEWNET).with_context(|| format!("entering {path}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(work())
    })
}

/// Waits for a thread of [`in_netns`] and returns what it returned (a panic becomes an error).
pub(crate) fn join<T>(handle: std::thread::JoinHandle<Result<T>>) -> Result<T> {
    handle.join().map_err(|_| anyhow::anyhow!("a thread in the client namespace panicked"))?
}

/// An address to resolve from the client, and the MAC that must answer for it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target {
    pub(crate) address: IpAddr,
    pub(crate) mac: MacAddress,
}

/// The speaker crate's socket for the target's protocol, on the client's `eth0`.
pub(crate) enum Resolver {
    Arp(ArpSocket),
    Ndp(NdpSocket),
}

impl Resolver {
    /// Opens the socket; must run on a thread of [`in_netns`].
    pub(crate) fn open(ipv6: bool) -> Result<Self> {
        let eth0 = link::interface_by_name("eth0")?.context("the client namespace has no eth0")?;
        Ok(if ipv6 { Self::Ndp(NdpSocket::open(eth0.index)?) } else { Self::Arp(ArpSocket::open(eth0.index)?) })
    }

    pub(crate) fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Arp(socket) => socket.send(frame),
            Self::Ndp(socket) => socket.send(frame),
        }
    }

    pub(crate) async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Arp(socket) => socket.recv(buf).await,
            Self::Ndp(socket) => socket.recv(buf).await,
        }
    }
}

/// An ARP request "who has `target`? tell `from`", broadcast, as a host resolving an address
/// sends it (RFC 826). The speaker crate builds only what a speaker sends (replies,
/// announcements, probes), so the request is laid out here; [`check_requests`] parses it back
/// with the speaker's own parser.
pub(crate) fn arp_request(from: &Host, target: Ipv4Addr) -> Vec<u8> {
    let hardware_ethernet: u16 = 1;
    [
        &MacAddress::BROADCAST.octets()[..],
        &from.mac.octets(),
        &EtherType::ARP.0.to_be_bytes(),
        &hardware_ethernet.to_be_bytes(),
        &EtherType::IPV4.0.to_be_bytes(),
        &[6, 4],
        &ArpOperation::Request.code().to_be_bytes(),
        &from.mac.octets(),
        &from.v4.octets(),
        &MacAddress::UNSPECIFIED.octets(),
        &target.octets(),
    ]
    .concat()
}

/// A Neighbor Solicitation for `target` from `from`'s address to the target's solicited-node
/// group, with a Source Link-Layer Address option: address resolution as a host does it
/// (RFC 4861 §7.2.2). Laid out here for the same reason as [`arp_request`]; the checksum is the
/// speaker crate's.
pub(crate) fn neighbor_solicitation(from: &Host, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node_multicast(target);
    let source_link_layer_option = [&[1, 1][..], &from.mac.octets()].concat();
    let mut message =
        [&[ndp::NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0][..], &target.octets(), &source_link_layer_option].concat();
    let checksum = icmpv6::checksum(from.v6, group, &message);
    message[2..4].copy_from_slice(&checksum.to_be_bytes());
    let payload_len = u16::try_from(message.len()).unwrap_or(u16::MAX);
    let hop_limit = 255; // RFC 4861 §7.1: receivers drop Neighbor Discovery with any other
    [
        &MacAddress::ipv6_multicast(group).octets()[..],
        &from.mac.octets(),
        &EtherType::IPV6.0.to_be_bytes(),
        &[0x60, 0, 0, 0],
        &payload_len.to_be_bytes(),
        &[icmpv6::NEXT_HEADER, hop_limit],
        &from.v6.octets(),
        &group.octets(),
        &message,
    ]
    .concat()
}

/// The request for `target` that the client sends.
pub(crate) fn request(client: &Host, target: IpAddr) -> Vec<u8> {
    match target {
        IpAddr::V4(v4) => arp_request(client, v4),
        IpAddr::V6(v6) => neighbor_solicitation(client, v6),
    }
}

/// Fails unless the speaker's parser reads the requests the bench sends as the requests they are
/// meant to be: a malformed frame would be dropped, and measure nothing.
pub(crate) fn check_requests(client: &Host, v4: Ipv4Addr, v6: Ipv6Addr) -> Result<()> {
    let frame = arp_request(client, v4);
    let Ok(Packet::Arp { arp, .. }) = packet::parse(&frame) else { bail!("the ARP request does not parse: {frame:?}") };
    ensure!(
        (arp.kind(), arp.sender_ip(), arp.target_ip()) == (ArpKind::Request, client.v4, v4),
        "the ARP request parses as {arp:?}"
    );
    let frame = neighbor_solicitation(client, v6);
    let Ok(Packet::NeighborSolicitation { solicitation, .. }) = packet::parse(&frame) else {
        bail!("the Neighbor Solicitation does not parse: {frame:?}")
    };
    ensure!(
        solicitation.kind() == SolicitationKind::AddressResolution
            && (solicitation.source(), solicitation.target()) == (client.v6, v6)
            && solicitation.source_link_layer() == Some(client.mac),
        "the Neighbor Solicitation parses as {solicitation:?}"
    );
    Ok(())
}

/// The MAC that answered the client's request for `target`, if `frame` is that answer: an ARP
/// reply from `target` to the client, or a solicited Neighbor Advertisement for `target` to it.
pub(crate) fn answerer(frame: &[u8], client: &Host, target: IpAddr) -> Option<MacAddress> {
    match (packet::parse(frame).ok()?, target) {
        (Packet::Arp { arp, .. }, IpAddr::V4(target))
            if arp.operation() == ArpOperation::Reply && (arp.sender_ip(), arp.target_ip()) == (target, client.v4) =>
        {
            Some(arp.sender_mac())
        }
        (Packet::NeighborAdvertisement { ethernet, advertisement }, IpAddr::V6(target))
            if advertisement.flags().solicited
                && (advertisement.target(), advertisement.destination()) == (target, client.v6) =>
        {
            Some(advertisement.target_link_layer().unwrap_or(ethernet.source()))
        }
        _ => None,
    }
}

/// What one target's requests of [`alternate_round_trips`] got.
#[derive(Clone, Debug, Default)]
pub(crate) struct RoundTrips {
    /// Request-to-answer times of the requests answered by the expected MAC.
    pub(crate) samples: Vec<Duration>,
    /// Requests with no answer within [`ANSWER_TIMEOUT`].
    pub(crate) lost: usize,
    /// Requests answered first by another MAC than the expected one.
    pub(crate) wrong_answerer: usize,
}

/// Resolves both targets (one family) from the client, `per_target` times each after `warmup`
/// untimed rounds, one request in flight at a time, alternating ABBA so that neither target
/// always follows the other and both see the same machine load.
pub(crate) fn alternate_round_trips(
    client: &Host,
    targets: [Target; 2],
    per_target: usize,
    warmup: usize,
) -> Result<[RoundTrips; 2]> {
    let ipv6 = targets[0].address.is_ipv6();
    ensure!(targets[1].address.is_ipv6() == ipv6, "both targets must be of one family");
    let client = client.clone();
    join(in_netns(&client.name.clone(), move || async move {
        let socket = Resolver::open(ipv6)?;
        let frames = targets.map(|target| request(&client, target.address));
        let mut results: [RoundTrips; 2] = Default::default();
        for round in 0..warmup + per_target {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for index in order {
                let outcome = round_trip(&socket, &frames[index], &client, targets[index]).await?;
                if round < warmup {
                    continue;
                }
                match outcome {
                    Outcome::Answered(elapsed) => results[index].samples.push(elapsed),
                    Outcome::Lost => results[index].lost += 1,
                    Outcome::WrongAnswerer => results[index].wrong_answerer += 1,
                }
            }
            // Blocking is fine: nothing else runs on this thread's runtime.
            std::thread::sleep(LATENCY_GAP);
        }
        Ok(results)
    }))
}

enum Outcome {
    Answered(Duration),
    Lost,
    WrongAnswerer,
}

async fn round_trip(socket: &Resolver, frame: &[u8], client: &Host, target: Target) -> Result<Outcome> {
    let mut buf = [0; 2048];
    let sent = Instant::now();
    socket.send(frame).context("sending a request")?;
    let deadline = sent + ANSWER_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(received) = tokio::time::timeout(left, socket.recv(&mut buf)).await else {
            return Ok(Outcome::Lost);
        };
        let elapsed = sent.elapsed();
        // Anything else (another host's request, a late answer to an earlier request) is skipped.
        if let Some(mac) = answerer(&buf[..received?], client, target.address) {
            return Ok(if mac == target.mac { Outcome::Answered(elapsed) } else { Outcome::WrongAnswerer });
        }
    }
}

/// What one burst of [`arp_burst`] sent and got back.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BurstOutcome {
    /// Requests sent.
    pub(crate) sent: u64,
    /// How long sending them took (the schedule's duration when the client kept up).
    pub(crate) sending: Duration,
    /// Whether sending fell [`BURST_OVERRUN`] behind its schedule and was cut off.
    pub(crate) cut_off: bool,
    /// Answers from the expected MAC.
    pub(crate) answered: u64,
    /// Answers from another MAC.
    pub(crate) wrong_answerer: u64,
}

/// Sends ARP requests for `target` from the client at `rate` per second for `duration`, and
/// counts the answers until [`BURST_GRACE`] after the last request.
///
/// One thread in the client namespace reads the answers; the calling thread sends through the
/// same socket (a socket stays in the namespace it was opened in, whichever thread uses it). It
/// keeps to the schedule by sending, every ~0.1–0.2 ms (a sleep's granularity), the requests due
/// by then: at 50,000/s they leave in runs of about ten back to back.
pub(crate) fn arp_burst(client: &Host, target: Target, rate: u32, duration: Duration) -> Result<BurstOutcome> {
    let IpAddr::V4(address) = target.address else { bail!("ARP bursts need an IPv4 target") };
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = {
        let (client, stop) = (client.clone(), stop.clone());
        in_netns(&client.name.clone(), move || async move {
            let socket = Arc::new(Resolver::open(false)?);
            ready_tx.send(socket.clone()).ok();
            let (mut answered, mut wrong_answerer) = (0_u64, 0_u64);
            let mut buf = [0; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok(received) = tokio::time::timeout(Duration::from_millis(50), socket.recv(&mut buf)).await else {
                    continue;
                };
                match answerer(&buf[..received?], &client, target.address) {
                    Some(mac) if mac == target.mac => answered += 1,
                    Some(_) => wrong_answerer += 1,
                    None => {}
                }
            }
            Ok((answered, wrong_answerer))
        })
    };
    let Ok(socket) = ready_rx.recv_timeout(Duration::from_secs(10)) else {
        join(receiver)?;
        bail!("the receiving thread did not open its socket");
    };

    let frame = arp_request(client, address);
    let total = u64::from(rate) * duration.as_millis() as u64 / 1000;
    let started = Instant::now();
    let (mut sent, mut cut_off) = (0_u64, false);
    while sent < total {
        let elapsed = started.elapsed();
        if elapsed > duration + BURST_OVERRUN {
            cut_off = true;
            break;
        }
        let due = ((elapsed.as_secs_f64() * f64::from(rate)) as u64 + 1).min(total);
        while sent < due {
            match socket.send(&frame) {
                Ok(()) => sent += 1,
                // The socket's send buffer is full: let the kernel drain it, and try again.
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error).context("sending a request"),
            }
        }
        if sent < due {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    let sending = started.elapsed();
    std::thread::sleep(BURST_GRACE);
    // The receiving thread holds the last reference, so the socket is closed on its runtime.
    drop(socket);
    stop.store(true, Ordering::Relaxed);
    let (answered, wrong_answerer) = join(receiver)?;
    Ok(BurstOutcome { sent, sending, cut_off, answered, wrong_answerer })
}
