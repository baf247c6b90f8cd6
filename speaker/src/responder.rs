//! Answering on the wire: ARP replies and Neighbor Advertisements for the addresses this node
//! announces, and gratuitous ARP / unsolicited NA when it takes an address over.
//!
//! [`Responder::apply`] takes each decision ([`crate::decide::Decision`]) and makes the wire
//! match it: one [`ArpSocket`] and one [`NdpSocket`] per interface that carries an owned address
//! (opened when the first address lands on the interface, closed when the last leaves), the
//! solicited-node multicast groups of the owned IPv6 addresses joined, and a burst of gratuitous
//! frames for every address that is new to this node. Each socket has a receive task that
//! parses what the kernel filter let through (only ARP, NS and NA) and answers from a shared
//! table of owned addresses; a decision swaps the table, it never waits on a socket.
//!
//! Take-over burst: gratuitous frames at [`BURST_SCHEDULE`] after the take-over, so a client
//! that missed the first (a busy switch, a host that was mid-ARP) still moves within a few
//! seconds, without flooding. An optional periodic refresh re-announces every owned address so
//! switch FDB entries never age out while nobody is asking.
//!
//! Claims (another host announcing an owned address, see [`Claim`]) go to the controller past a
//! [`ClaimLimiter`] and through a queue of [`CLAIM_QUEUE`]: a receive task never waits on the
//! controller, and a LAN host flooding claims costs a lock and a counter per frame, not memory
//! or API writes (see [`crate::claims`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::claims::ClaimLimiter;
use crate::net::{ArpSocket, Interface, NdpSocket, Received};
use crate::packet::{
    self, ArpKind, MacAddress, NdpSender, Packet, SolicitationKind, arp_probe, arp_reply, dad_probe_ns, gratuitous_arp,
    gratuitous_arp_reply, neighbor_advertisement, unsolicited_na,
};
use crate::telemetry::{ClaimDropped, Ignored, Metrics, Protocol};

#[cfg(test)]
mod tests;

/// When the gratuitous frames of a take-over go out, after the take-over.
pub const BURST_SCHEDULE: [Duration; 4] =
    [Duration::ZERO, Duration::from_millis(500), Duration::from_millis(1500), Duration::from_millis(3500)];

/// When the probes for a new address go out, after the decision to announce it. Shorter than
/// RFC 5227's (three probes over one to two seconds, then two more seconds): a host on the LAN
/// that holds the address answers within milliseconds, and a new Service should not wait
/// seconds for its first answer. [`PROBE_WINDOW`] is how long answers are awaited.
pub const PROBE_SCHEDULE: [Duration; 2] = [Duration::ZERO, Duration::from_millis(150)];

/// How long after the first probe an answer counts: past it, the address is free.
pub const PROBE_WINDOW: Duration = Duration::from_millis(400);

/// Claims waiting for the controller; past this, new ones are dropped (and counted). The
/// limiter passes a few a second per address, so the queue fills only when the controller is
/// stuck, and then whatever it would learn from more claims can wait for the next ones.
pub const CLAIM_QUEUE: usize = 256;

/// Largest frame read: ARP and NDP frames the speaker answers are far smaller; anything larger is
/// reported truncated and dropped as malformed.
const FRAME_BUFFER: usize = 1536;

/// Another host claiming an address this node answers for, seen on the wire: a gratuitous
/// ARP, an unsolicited or solicited Neighbor Advertisement, or a probe (ARP probe, DAD
/// solicitation) for it. The controller tells a peer speaker's MAC (it published it) from a
/// foreign host's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The owned address claimed.
    pub address: IpAddr,
    /// The claimer's MAC (lowercase `aa:bb:…` via `Display`).
    pub mac: MacAddress,
    /// The interface it was seen on.
    pub interface: String,
    /// Whether the claimer only probes for the address (wants it) rather than announcing it.
    pub probe: bool,
}

/// What one interface answers for.
#[derive(Clone, Debug, Default)]
struct Owned {
    v4: BTreeSet<Ipv4Addr>,
    v6: BTreeSet<Ipv6Addr>,
}

/// An address as one interface's receive task sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    /// Answered on this interface.
    Answering,
    /// Probed for before its first announcement: not answered, but others' claims count.
    Probing,
    /// Answered on another interface of this node only.
    Elsewhere,
    /// Not this node's.
    Unknown,
}

impl Standing {
    /// Whether another host's announcement or answer for the address is a claim to report.
    fn claimable(self) -> bool {
        matches!(self, Self::Answering | Self::Probing)
    }
}

/// The addresses owned on each interface, read by every receive task.
#[derive(Debug, Default)]
struct Table {
    by_interface: HashMap<String, Owned>,
    /// Addresses being probed for before their first announcement: not answered, but any
    /// other host's answer, announcement or probe for them is a claim.
    probing: BTreeSet<IpAddr>,
}

impl Table {
    fn owns_elsewhere(&self, address: IpAddr) -> bool {
        self.by_interface.values().any(|owned| match address {
            IpAddr::V4(v4) => owned.v4.contains(&v4),
            IpAddr::V6(v6) => owned.v6.contains(&v6),
        })
    }
}

type SharedTable = Arc<RwLock<Table>>;

/// What every task of one interface needs to answer and announce.
#[derive(Clone, Debug)]
struct Sender {
    interface: String,
    mac: MacAddress,
    arp: Arc<ArpSocket>,
    /// `None` when NDP sockets cannot be used on the interface (IPv6 disabled).
    ndp: Option<Arc<NdpSocket>>,
    table: SharedTable,
    metrics: Metrics,
    claims: mpsc::Sender<Claim>,
    /// Shared by every receive task of the node: the rates are per address and MAC, whatever
    /// the interface or protocol a claim arrives by.
    limiter: Arc<Mutex<ClaimLimiter>>,
}

impl Sender {
    /// Whether `address` is announced on this interface right now.
    fn owns(&self, address: IpAddr) -> bool {
        let table = self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        table.by_interface.get(&self.interface).is_some_and(|owned| match address {
            IpAddr::V4(v4) => owned.v4.contains(&v4),
            IpAddr::V6(v6) => owned.v6.contains(&v6),
        })
    }

    fn probing(&self, address: IpAddr) -> bool {
        self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner).probing.contains(&address)
    }

    /// What this node does with `address` as seen from this interface: one look at the table
    /// per frame, under one read lock.
    fn standing(&self, address: IpAddr) -> Standing {
        let table = self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let here = table.by_interface.get(&self.interface).is_some_and(|owned| match address {
            IpAddr::V4(v4) => owned.v4.contains(&v4),
            IpAddr::V6(v6) => owned.v6.contains(&v6),
        });
        if here {
            Standing::Answering
        } else if table.probing.contains(&address) {
            Standing::Probing
        } else if table.owns_elsewhere(address) {
            Standing::Elsewhere
        } else {
            Standing::Unknown
        }
    }

    /// An RFC 5227 ARP probe or an RFC 4862 DAD solicitation for `address`.
    fn probe(&self, address: IpAddr) {
        match address {
            IpAddr::V4(v4) => self.send(Protocol::Arp, &arp_probe(self.mac, v4), false),
            IpAddr::V6(v6) => self.send(Protocol::Ndp, &dad_probe_ns(self.mac, v6), false),
        }
    }

    /// Every address announced on this interface.
    fn owned(&self) -> Vec<IpAddr> {
        let table = self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        table
            .by_interface
            .get(&self.interface)
            .map(|owned| {
                owned.v4.iter().map(|&a| IpAddr::V4(a)).chain(owned.v6.iter().map(|&a| IpAddr::V6(a))).collect()
            })
            .unwrap_or_default()
    }

    /// One gratuitous ARP (IPv4) or unsolicited NA with Override (IPv6) for `address`. Gratuitous
    /// ARP goes out twice, as a request and then as a reply, as MetalLB sends it: every stack
    /// processes the broadcast request (RFC 5227 §3), but some only update their cache from replies.
    fn announce(&self, address: IpAddr) {
        match address {
            IpAddr::V4(v4) => {
                self.send(Protocol::Arp, &gratuitous_arp(self.mac, v4), true);
                self.send(Protocol::Arp, &gratuitous_arp_reply(self.mac, v4), true);
            }
            IpAddr::V6(v6) => {
                self.send(Protocol::Ndp, &unsolicited_na(self.ndp_sender(v6), v6), true);
            }
        }
    }

    fn send(&self, protocol: Protocol, frame: &[u8], gratuitous: bool) {
        let sent = match (protocol, &self.ndp) {
            (Protocol::Arp, _) => self.arp.send(frame),
            (Protocol::Ndp, Some(ndp)) => ndp.send(frame),
            (Protocol::Ndp, None) => return,
        };
        match sent {
            Ok(()) if gratuitous => self.metrics.gratuitous_sent(&self.interface, protocol),
            Ok(()) => self.metrics.reply_sent(&self.interface, protocol),
            Err(error) => {
                self.metrics.send_error(&self.interface, protocol);
                tracing::warn!(interface = %self.interface, %error, "cannot send a frame");
            }
        }
    }

    /// Answers one frame from the ARP or NDP socket.
    fn handle(&self, frame: &[u8]) {
        let packet = match packet::parse(frame) {
            Ok(packet) => packet,
            Err(error) => {
                self.metrics.malformed(error);
                return;
            }
        };
        match packet {
            Packet::Arp { arp, .. } => {
                let target = IpAddr::V4(arp.target_ip());
                match arp.kind() {
                    ArpKind::Request | ArpKind::Probe => {
                        self.metrics.request_received(&self.interface, Protocol::Arp);
                        match self.standing(target) {
                            Standing::Answering => {
                                // A probe (sender 0.0.0.0) is answered too: that is how RFC 5227
                                // tells the prober the address is taken.
                                let reply = arp_reply(self.mac, arp.target_ip(), arp.sender_mac(), arp.sender_ip());
                                self.send(Protocol::Arp, &reply, false);
                                if arp.kind() == ArpKind::Probe {
                                    self.claimed(target, arp.sender_mac(), true);
                                }
                            }
                            // Another host probes for the address this node probes for.
                            Standing::Probing if arp.kind() == ArpKind::Probe => {
                                self.claimed(target, arp.sender_mac(), true);
                            }
                            standing => self.ignore_unowned(standing),
                        }
                    }
                    ArpKind::Announcement | ArpKind::GratuitousReply if self.standing(target).claimable() => {
                        self.claimed(target, arp.sender_mac(), false);
                    }
                    ArpKind::Reply if self.standing(IpAddr::V4(arp.sender_ip())).claimable() => {
                        // Another host answering for an owned address (to a request we answered too).
                        self.claimed(IpAddr::V4(arp.sender_ip()), arp.sender_mac(), false);
                    }
                    _ => self.metrics.ignored(Ignored::NotARequest),
                }
            }
            Packet::NeighborSolicitation { ethernet, solicitation } => {
                self.metrics.request_received(&self.interface, Protocol::Ndp);
                let target = solicitation.target();
                match self.standing(IpAddr::V6(target)) {
                    Standing::Answering => {}
                    Standing::Probing if solicitation.kind() == SolicitationKind::DuplicateAddressDetection => {
                        self.claimed(IpAddr::V6(target), ethernet.source(), true);
                        return;
                    }
                    standing => {
                        self.ignore_unowned(standing);
                        return;
                    }
                }
                let from = self.ndp_sender(target);
                let answer = match solicitation.kind() {
                    SolicitationKind::AddressResolution | SolicitationKind::ReachabilityConfirmation => {
                        let to_mac = solicitation.source_link_layer().unwrap_or(ethernet.source());
                        neighbor_advertisement(from, target, to_mac, solicitation.source(), true, true)
                    }
                    SolicitationKind::DuplicateAddressDetection => {
                        // Another host wants the address: defend it once, to all-nodes.
                        self.claimed(IpAddr::V6(target), ethernet.source(), true);
                        unsolicited_na(from, target)
                    }
                };
                self.send(Protocol::Ndp, &answer, false);
            }
            Packet::NeighborAdvertisement { ethernet, advertisement } => {
                let target = IpAddr::V6(advertisement.target());
                if self.standing(target).claimable() {
                    let mac = advertisement.target_link_layer().unwrap_or(ethernet.source());
                    self.claimed(IpAddr::V6(advertisement.target()), mac, false);
                } else {
                    self.metrics.ignored(Ignored::NotARequest);
                }
            }
            Packet::Other => {}
        }
    }

    /// Who an advertisement for `address` comes from: this interface's MAC and the address
    /// itself as the IPv6 source, as a host that owns an address answers for it (Linux does the
    /// same). Some resolvers, `ndisc6` among them, ignore an advertisement whose source is not
    /// the target.
    fn ndp_sender(&self, address: Ipv6Addr) -> NdpSender {
        NdpSender { mac: self.mac, address }
    }

    /// Counts a claim of an owned address by another host and hands it to the controller, unless
    /// the claims of the address or the MAC are over their rate or the queue is full: then it is
    /// dropped and counted, and the frame's answer (if any) goes out all the same.
    fn claimed(&self, address: IpAddr, mac: MacAddress, probe: bool) {
        self.metrics.ignored(Ignored::ForeignClaim);
        let admitted = self.limiter.lock().unwrap_or_else(std::sync::PoisonError::into_inner).admit(
            address,
            mac,
            tokio::time::Instant::now(),
        );
        if !admitted {
            self.metrics.claim_dropped(ClaimDropped::RateLimited);
            return;
        }
        let claim = Claim { address, mac, interface: self.interface.clone(), probe };
        match self.claims.try_send(claim) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.metrics.claim_dropped(ClaimDropped::QueueFull),
            // The controller gone means shutting down: nobody left to tell.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn ignore_unowned(&self, standing: Standing) {
        let reason = if standing == Standing::Elsewhere { Ignored::WrongInterface } else { Ignored::NotOwned };
        self.metrics.ignored(reason);
    }
}

/// The sockets of one interface and their tasks.
#[derive(Debug)]
struct Link {
    index: u32,
    mac: MacAddress,
    sender: Sender,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The wire side of the speaker.
#[derive(Debug)]
pub struct Responder {
    metrics: Metrics,
    table: SharedTable,
    links: BTreeMap<String, Link>,
    refresh: Option<Duration>,
    claims: mpsc::Sender<Claim>,
    limiter: Arc<Mutex<ClaimLimiter>>,
}

impl Responder {
    /// A responder that answers for nothing yet, and the claims it will see (see [`Claim`]; at
    /// most [`CLAIM_QUEUE`] waiting). With a non-zero `refresh` period, every owned address is
    /// re-announced that often.
    pub fn new(metrics: Metrics, refresh: Duration) -> (Self, mpsc::Receiver<Claim>) {
        let refresh = (!refresh.is_zero()).then_some(refresh);
        let (claims, claimed) = mpsc::channel(CLAIM_QUEUE);
        let limiter = Arc::default();
        (Self { metrics, table: SharedTable::default(), links: BTreeMap::new(), refresh, claims, limiter }, claimed)
    }

    /// Stops answering for `address` at once, on every interface, until a later [`Self::apply`]
    /// hands it back: this node yields it to a peer that announced it.
    pub fn release(&mut self, address: IpAddr) {
        let mut table = self.table.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (name, owned) in table.by_interface.iter_mut() {
            let removed = match address {
                IpAddr::V4(v4) => owned.v4.remove(&v4),
                IpAddr::V6(v6) => owned.v6.remove(&v6),
            };
            if let (true, IpAddr::V6(v6), Some(link)) = (removed, address, self.links.get(name))
                && let Some(ndp) = &link.sender.ndp
                && let Err(error) = ndp.leave_solicited_node(v6)
            {
                tracing::warn!(interface = %name, %address, %error, "cannot leave the solicited-node group");
            }
        }
        let (v4, v6) = table.by_interface.values().fold((0, 0), |(v4, v6), o| (v4 + o.v4.len(), v6 + o.v6.len()));
        self.metrics.set_announced(v4, v6);
    }

    /// Sends one probe for `address` (an ARP probe or a DAD solicitation) on every interface
    /// answering for it: a host that claimed the address answers if it still uses it, which is
    /// how a conflict is re-checked rather than assumed (see [`crate::conflicts`]).
    pub fn recheck(&self, address: IpAddr) {
        for link in self.links.values().filter(|link| link.sender.owns(address)) {
            link.sender.probe(address);
        }
    }

    /// Whether this node answers for `address` on some interface.
    pub fn owns(&self, address: IpAddr) -> bool {
        self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner).owns_elsewhere(address)
    }

    /// Whether this node answers for any address.
    pub fn is_answering(&self) -> bool {
        let table = self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        table.by_interface.values().any(|owned| !owned.v4.is_empty() || !owned.v6.is_empty())
    }

    /// The MAC of each interface answered on.
    pub fn macs(&self) -> impl Iterator<Item = MacAddress> + '_ {
        self.links.values().map(|link| link.mac)
    }

    /// Makes the wire match `owned` (address → the interfaces to answer on) and `probing`
    /// (addresses to probe for on those interfaces, not answered yet), given the node's current
    /// `interfaces`. Returns the addresses newly taken over.
    pub fn apply(
        &mut self,
        owned: &BTreeMap<IpAddr, Vec<String>>,
        probing: &BTreeMap<IpAddr, Vec<String>>,
        interfaces: &[Interface],
    ) -> Vec<IpAddr> {
        let mut wanted: BTreeMap<String, Owned> = BTreeMap::new();
        let probe_links: BTreeSet<&String> = probing.values().flatten().collect();
        for (address, names) in owned {
            for name in names {
                let entry = wanted.entry(name.clone()).or_default();
                match address {
                    IpAddr::V4(v4) => entry.v4.insert(*v4),
                    IpAddr::V6(v6) => entry.v6.insert(*v6),
                };
            }
        }
        // Close links that carry nothing now, or whose interface went away or was recreated
        // (another index or MAC): their sockets are bound to what is gone.
        self.links.retain(|name, link| {
            let current = interfaces.iter().find(|interface| &interface.name == name);
            (wanted.contains_key(name) || probe_links.contains(name))
                && current.is_some_and(|interface| interface.index == link.index && interface.mac == Some(link.mac))
        });
        for name in wanted.keys().chain(probe_links.iter().copied()) {
            if self.links.contains_key(name) {
                continue;
            }
            let Some(interface) = interfaces.iter().find(|interface| &interface.name == name) else { continue };
            match self.open(interface) {
                Ok(link) => {
                    tracing::info!(interface = %name, "answering ARP/NDP on the interface");
                    self.links.insert(name.clone(), link);
                }
                Err(error) => tracing::error!(interface = %name, %error, "cannot open ARP/NDP sockets"),
            }
        }
        // Only interfaces with open sockets are answered on.
        wanted.retain(|name, _| self.links.contains_key(name));

        let previous = {
            let mut table = self.table.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let next: HashMap<String, Owned> =
                wanted.iter().map(|(name, owned)| (name.clone(), owned.clone())).collect();
            let probes: BTreeSet<IpAddr> = probing.keys().copied().collect();
            let new_probes: Vec<IpAddr> = probes.difference(&table.probing).copied().collect();
            table.probing = probes;
            for address in new_probes {
                let senders: Vec<Sender> = probing[&address]
                    .iter()
                    .filter_map(|name| self.links.get(name).map(|link| link.sender.clone()))
                    .collect();
                tokio::spawn(async move {
                    let start = tokio::time::Instant::now();
                    for at in PROBE_SCHEDULE {
                        tokio::time::sleep_until(start + at).await;
                        for sender in senders.iter().filter(|sender| sender.probing(address)) {
                            sender.probe(address);
                        }
                    }
                });
            }
            std::mem::replace(&mut table.by_interface, next)
        };
        let mut taken_over = Vec::new();
        for (name, now) in &wanted {
            let before = previous.get(name).cloned().unwrap_or_default();
            let Some(link) = self.links.get(name) else { continue };
            if let Some(ndp) = &link.sender.ndp {
                for gone in before.v6.difference(&now.v6) {
                    if let Err(error) = ndp.leave_solicited_node(*gone) {
                        tracing::warn!(interface = %name, address = %gone, %error, "cannot leave the solicited-node group");
                    }
                }
                for new in now.v6.difference(&before.v6) {
                    if let Err(error) = ndp.join_solicited_node(*new) {
                        tracing::warn!(interface = %name, address = %new, %error, "cannot join the solicited-node group");
                    }
                }
            }
            let new_v4 = now.v4.difference(&before.v4).map(|&a| IpAddr::V4(a));
            let new_v6 = now.v6.difference(&before.v6).map(|&a| IpAddr::V6(a));
            let new: Vec<IpAddr> = new_v4.chain(new_v6).collect();
            if !new.is_empty() {
                let sender = link.sender.clone();
                let addresses = new.clone();
                // Detached: it checks ownership before every frame, so an address released
                // mid-burst is not announced any more.
                tokio::spawn(async move {
                    let start = tokio::time::Instant::now();
                    for at in BURST_SCHEDULE {
                        tokio::time::sleep_until(start + at).await;
                        for &address in &addresses {
                            if sender.owns(address) {
                                sender.announce(address);
                            }
                        }
                    }
                });
                taken_over.extend(new);
            }
        }
        let (v4, v6) = wanted.values().fold((0, 0), |(v4, v6), owned| (v4 + owned.v4.len(), v6 + owned.v6.len()));
        self.metrics.set_announced(v4, v6);
        taken_over
    }

    /// Opens the sockets of `interface` and starts its receive (and refresh) tasks.
    fn open(&self, interface: &Interface) -> std::io::Result<Link> {
        let mac = interface
            .mac
            .filter(|mac| !mac.is_unspecified())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the interface has no MAC"))?;
        let arp = Arc::new(ArpSocket::open(interface.index)?);
        let ndp = match NdpSocket::open(interface.index) {
            Ok(socket) => Some(Arc::new(socket)),
            Err(error) => {
                tracing::warn!(interface = %interface.name, %error, "cannot open the NDP socket: IPv4 only there");
                None
            }
        };
        let sender = Sender {
            interface: interface.name.clone(),
            mac,
            arp: arp.clone(),
            ndp: ndp.clone(),
            table: self.table.clone(),
            metrics: self.metrics.clone(),
            claims: self.claims.clone(),
            limiter: self.limiter.clone(),
        };
        let mut tasks = vec![tokio::spawn(receive(arp, sender.clone(), Protocol::Arp))];
        if let Some(ndp) = ndp {
            tasks.push(tokio::spawn(receive(ndp, sender.clone(), Protocol::Ndp)));
        }
        if let Some(period) = self.refresh {
            let sender = sender.clone();
            tasks.push(tokio::spawn(async move {
                let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                loop {
                    ticks.tick().await;
                    for address in sender.owned() {
                        sender.announce(address);
                    }
                }
            }));
        }
        Ok(Link { index: interface.index, mac, sender, tasks })
    }
}

/// A socket frames are read from: the ARP or the NDP socket of an interface.
trait FrameSource: Send + Sync + 'static {
    fn recv_frame(&self, buf: &mut [u8]) -> impl Future<Output = std::io::Result<Received>> + Send;
}

impl FrameSource for ArpSocket {
    fn recv_frame(&self, buf: &mut [u8]) -> impl Future<Output = std::io::Result<Received>> + Send {
        ArpSocket::recv_frame(self, buf)
    }
}

impl FrameSource for NdpSocket {
    fn recv_frame(&self, buf: &mut [u8]) -> impl Future<Output = std::io::Result<Received>> + Send {
        NdpSocket::recv_frame(self, buf)
    }
}

/// Reads and answers the frames of one socket until the task is aborted.
async fn receive(socket: Arc<impl FrameSource>, sender: Sender, protocol: Protocol) {
    let mut buf = [0_u8; FRAME_BUFFER];
    loop {
        match socket.recv_frame(&mut buf).await {
            Ok(received) if received.is_truncated() => sender.metrics.malformed(packet::PacketError::Truncated),
            Ok(received) => sender.handle(&buf[..received.len]),
            Err(error) => {
                // A transient error (ENOBUFS under a flood): keep reading, without spinning.
                tracing::warn!(interface = %sender.interface, ?protocol, %error, "receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
