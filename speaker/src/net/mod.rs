//! The speaker's link to the wire: which interfaces it may announce on, and the sockets that carry
//! ARP and Neighbor Discovery frames to and from them.
//!
//! The data path is **interfaces → sockets** → parse → decide → build → **send**. [`link`] lists the
//! node's interfaces with their MAC, flags and addresses, and picks the default ones when an
//! `L2Advertisement` names none. [`socket`] opens, per chosen interface, one [`ArpSocket`] and one
//! [`NdpSocket`]; their frames go to [`crate::packet::parse`], the announcer decides, a
//! [`crate::packet`] builder makes the answer, and the same socket sends it out of that interface.
//!
//! Only ARP and NDP reach userspace (DESIGN.md, data flow step 5): the ARP socket is bound to
//! ethertype 0x0806, the NDP socket carries a classic BPF program ([`filter`]) that passes only
//! ICMPv6 Neighbor Solicitations and Advertisements, and both drop the host's own outgoing frames
//! in the kernel. Unrelated traffic on a busy node interface therefore costs the speaker nothing.
//!
//! All unsafe code of this module (two syscalls socket2 does not wrap, one tokio registration) sits in
//! `sys.rs`.

pub mod filter;
pub mod link;
mod membership;
pub mod socket;
mod sys;
#[cfg(test)]
mod tests;

pub use link::{Exclusion, Interface, InterfaceAddress, LinkFlags, interfaces};
pub use socket::{ArpSocket, NdpSocket, Received};
