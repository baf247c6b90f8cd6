//! The sockets that carry ARP and Neighbor Discovery frames between one interface and the speaker.
//!
//! Second and last steps of the data path (interfaces → **sockets** → parse → decide → build →
//! **send**): a socket hands whole Ethernet frames to [`crate::packet::parse`] and sends the frames
//! the [`crate::packet`] builders make, unchanged, out of the interface it is bound to.
//!
//! Both are `AF_PACKET`/`SOCK_RAW` sockets bound to one interface, non-blocking and driven by
//! tokio's reactor. The kernel filters what reaches them ([`super::filter`]): the ARP socket is
//! bound to ethertype ARP, the NDP socket to IPv6 with a BPF program passing only NS and NA, and
//! neither sees what this host sends. Opening one needs `CAP_NET_RAW` and a tokio runtime.

use std::io;
use std::net::Ipv6Addr;
use std::os::fd::AsFd;

use socket2::{Domain, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::filter::{self, Instruction};
use super::membership::SolicitedNodeGroups;
use super::sys;

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;

/// What one receive delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes written to the buffer: the frame, or its first `buf.len()` bytes.
    pub len: usize,
    /// The frame's length on the wire (after a stripped VLAN tag).
    pub wire_len: usize,
}

impl Received {
    /// Whether the frame did not fit in the buffer. ARP and NDP frames the speaker acts on are
    /// far below an MTU, so a truncated frame is oversized and is best dropped as malformed.
    pub fn is_truncated(&self) -> bool {
        self.wire_len > self.len
    }
}

/// A packet socket bound to one interface and ethertype, with a filter attached.
#[derive(Debug)]
struct PacketSocket {
    fd: AsyncFd<Socket>,
    ifindex: u32,
}

impl PacketSocket {
    fn open(ifindex: u32, ethertype: u16, program: &[Instruction]) -> io::Result<Self> {
        // Protocol 0: no frame is queued until `bind` names the interface and ethertype, so none
        // from another interface or of another type can arrive in between. The filter is attached
        // before the bind for the same reason.
        let socket = Socket::new(Domain::PACKET, Type::RAW, None)?;
        socket.set_nonblocking(true)?;
        socket.attach_filter(&filter::to_sock_filters(program))?;
        sys::bind_packet(socket.as_fd(), ifindex, ethertype)?;
        Ok(Self { fd: sys::register_readable(socket)?, ifindex })
    }

    async fn recv_frame(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|fd| sys::recv_reporting_wire_length(fd.get_ref().as_fd(), buf)) {
                Ok(result) => {
                    let wire_len = result?;
                    return Ok(Received { len: wire_len.min(buf.len()), wire_len });
                }
                // Readiness was stale (another task read the frame): wait again.
                Err(_would_block) => {}
            }
        }
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        // Unaddressed `send` on a bound packet socket goes out of the bound interface, with the
        // Ethernet header taken from the frame itself.
        let sent = self.fd.get_ref().send(frame)?;
        if sent == frame.len() {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::WriteZero, format!("sent {sent} of {} bytes", frame.len())))
        }
    }
}

/// Receives the ARP frames arriving on one interface and sends ARP frames out of it.
#[derive(Debug)]
pub struct ArpSocket {
    inner: PacketSocket,
}

impl ArpSocket {
    /// Opens the socket on the interface with index `ifindex` ([`super::Interface::index`]).
    /// Must be called within a tokio runtime.
    pub fn open(ifindex: u32) -> io::Result<Self> {
        Ok(Self { inner: PacketSocket::open(ifindex, ETH_P_ARP, &filter::ARP_PROGRAM)? })
    }

    /// The index of the interface the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.inner.ifindex
    }

    /// Waits for the next incoming ARP frame, copies it into `buf` and returns the bytes copied.
    /// Use [`Self::recv_frame`] to learn whether the frame was cut short.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.inner.recv_frame(buf).await?.len)
    }

    /// Like [`Self::recv`], and says whether the frame was longer than `buf`.
    pub async fn recv_frame(&self, buf: &mut [u8]) -> io::Result<Received> {
        self.inner.recv_frame(buf).await
    }

    /// Sends one Ethernet frame, as built by [`crate::packet::arp_reply`] or
    /// [`crate::packet::gratuitous_arp`], out of the interface. Does not wait: `WouldBlock` means
    /// the socket's send buffer is full and the frame was not sent.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.inner.send(frame)
    }
}

/// Receives the Neighbor Solicitations and Advertisements arriving on one interface, sends Neighbor
/// Discovery frames out of it, and holds the solicited-node memberships of the owned addresses.
#[derive(Debug)]
pub struct NdpSocket {
    inner: PacketSocket,
    groups: SolicitedNodeGroups,
}

impl NdpSocket {
    /// Opens the socket on the interface with index `ifindex` ([`super::Interface::index`]).
    /// Must be called within a tokio runtime.
    pub fn open(ifindex: u32) -> io::Result<Self> {
        Ok(Self {
            inner: PacketSocket::open(ifindex, ETH_P_IPV6, &filter::NDP_PROGRAM)?,
            groups: SolicitedNodeGroups::new(ifindex),
        })
    }

    /// The index of the interface the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.inner.ifindex
    }

    /// Waits for the next incoming NS or NA frame, copies it into `buf` and returns the bytes
    /// copied. Use [`Self::recv_frame`] to learn whether the frame was cut short.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.inner.recv_frame(buf).await?.len)
    }

    /// Like [`Self::recv`], and says whether the frame was longer than `buf`.
    pub async fn recv_frame(&self, buf: &mut [u8]) -> io::Result<Received> {
        self.inner.recv_frame(buf).await
    }

    /// Sends one Ethernet frame, as built by [`crate::packet::neighbor_advertisement`] or
    /// [`crate::packet::unsolicited_na`], out of the interface. Does not wait: `WouldBlock` means
    /// the socket's send buffer is full and the frame was not sent.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.inner.send(frame)
    }

    /// Joins the solicited-node multicast group of `address` on this interface, at the IP level
    /// (`IPV6_JOIN_GROUP`), so the NIC accepts solicitations for it and the kernel reports the
    /// membership to MLD-snooping switches. Idempotent; groups shared by several owned addresses
    /// are joined once.
    pub fn join_solicited_node(&self, address: Ipv6Addr) -> io::Result<()> {
        self.groups.join(address)
    }

    /// Leaves the solicited-node group of `address`, unless another joined address shares it.
    /// Idempotent. Dropping the socket leaves every group.
    pub fn leave_solicited_node(&self, address: Ipv6Addr) -> io::Result<()> {
        self.groups.leave(address)
    }
}
