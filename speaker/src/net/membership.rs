//! Solicited-node multicast memberships for the IPv6 addresses a speaker owns on one interface.
//!
//! A Neighbor Solicitation for a VIP goes to the VIP's solicited-node group (`ff02::1:ffXX:XXXX`).
//! The kernel only joins that group for addresses configured on the interface, which a VIP is not,
//! so the speaker joins it itself, with `IPV6_JOIN_GROUP` on UDP sockets that receive nothing. This
//! was chosen over `PACKET_ADD_MEMBERSHIP` on the packet socket because an IP-level join also makes
//! the kernel send MLD reports and answer MLD queries: a switch with MLD snooping then forwards the
//! solicitations to this port, where a MAC-level membership would leave the VIP unreachable. The
//! cost is that the interface must have IPv6 enabled, which any interface carrying an IPv6 VIP has.
//!
//! The kernel limits memberships per socket (they are charged to `net.core.optmem_max`), so this
//! keeps a pool of sockets and opens another when one is full. Many addresses can share a group
//! (it keeps only the last 24 bits), so groups are reference-counted by address.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::Ipv6Addr;
use std::sync::{Mutex, PoisonError};

use socket2::{Domain, Socket, Type};

use crate::packet::solicited_node_multicast;

/// The groups joined on one interface, by owned address.
#[derive(Debug)]
pub(crate) struct SolicitedNodeGroups {
    ifindex: u32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Sockets holding memberships; the last is the one new groups are joined on.
    sockets: Vec<Socket>,
    /// Owned addresses, so joining or leaving twice is harmless.
    addresses: HashSet<Ipv6Addr>,
    /// Joined groups: the socket holding the membership and how many owned addresses map to it.
    groups: HashMap<Ipv6Addr, Membership>,
}

#[derive(Debug)]
struct Membership {
    socket: usize,
    addresses: usize,
}

impl SolicitedNodeGroups {
    pub(crate) fn new(ifindex: u32) -> Self {
        Self { ifindex, state: Mutex::new(State::default()) }
    }

    /// Joins the solicited-node group of `address`. Idempotent per address.
    pub(crate) fn join(&self, address: Ipv6Addr) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.addresses.contains(&address) {
            return Ok(());
        }
        let group = solicited_node_multicast(address);
        if let Some(membership) = state.groups.get_mut(&group) {
            membership.addresses = membership.addresses.saturating_add(1);
        } else {
            let socket = Self::join_on_some_socket(&mut state.sockets, group, self.ifindex)?;
            state.groups.insert(group, Membership { socket, addresses: 1 });
        }
        state.addresses.insert(address);
        Ok(())
    }

    /// Leaves the solicited-node group of `address` unless another owned address needs it.
    /// Idempotent per address.
    pub(crate) fn leave(&self, address: Ipv6Addr) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.addresses.remove(&address) {
            return Ok(());
        }
        let group = solicited_node_multicast(address);
        let Some(membership) = state.groups.get_mut(&group) else { return Ok(()) };
        membership.addresses = membership.addresses.saturating_sub(1);
        if membership.addresses > 0 {
            return Ok(());
        }
        let socket = membership.socket;
        state.groups.remove(&group);
        match state.sockets.get(socket) {
            Some(socket) => socket.leave_multicast_v6(&group, self.ifindex),
            None => Ok(()),
        }
    }

    /// Joins `group` on the newest socket, or on a new one when there is none or it is full.
    /// Returns the index of the socket that holds the membership.
    fn join_on_some_socket(sockets: &mut Vec<Socket>, group: Ipv6Addr, ifindex: u32) -> io::Result<usize> {
        if let Some(last) = sockets.last() {
            match last.join_multicast_v6(&group, ifindex) {
                Ok(()) => return Ok(sockets.len().saturating_sub(1)),
                // The socket's option memory is used up: continue on a fresh socket.
                Err(error) if matches!(error.raw_os_error(), Some(libc::ENOMEM | libc::ENOBUFS)) => {}
                Err(error) => return Err(error),
            }
        }
        // Never bound, so it receives no datagrams: it exists only to hold memberships.
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, None)?;
        socket.join_multicast_v6(&group, ifindex)?;
        sockets.push(socket);
        Ok(sockets.len().saturating_sub(1))
    }
}
