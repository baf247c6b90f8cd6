//! The calls the speaker's sockets need that have no safe wrapper: binding an `AF_PACKET` socket
//! to one interface and ethertype (`sockaddr_ll`), receiving with `MSG_TRUNC` so an oversized frame
//! is reported instead of silently cut, and registering a socket with tokio's reactor (whose safe
//! constructors tokio 1.54 deprecated).
//!
//! This is the only file of the crate allowed to use `unsafe`; each block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Binds a packet socket to interface `ifindex`, receiving frames of `ethertype` (host order).
///
/// The socket should have been created with protocol 0, which registers no receive hook: it then
/// starts to receive only here, already bound to its interface, so no frame of another interface
/// can slip in between `socket()` and `bind()`.
pub(super) fn bind_packet(fd: BorrowedFd<'_>, ifindex: u32, ethertype: u16) -> io::Result<()> {
    let sll_ifindex =
        i32::try_from(ifindex).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index too large"))?;
    let address = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: ethertype.to_be(),
        sll_ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    let length = libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "sockaddr_ll size"))?;
    // SAFETY: `address` is a fully initialised sockaddr_ll that outlives the call and `length` is its
    // exact size; the kernel only reads it. `fd` is an open descriptor borrowed for the call.
    let result = unsafe { libc::bind(fd.as_raw_fd(), (&raw const address).cast::<libc::sockaddr>(), length) };
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Receives one frame into `buf` without blocking and returns the frame's length **on the wire**,
/// which exceeds `buf.len()` when the frame was truncated (packet(7), `MSG_TRUNC`).
pub(super) fn recv_reporting_wire_length(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`, which is exclusively borrowed for the call, so
    // the kernel writes at most `buf.len()` bytes into memory we own. MSG_TRUNC changes only the
    // return value, never how much is written.
    let received = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast::<libc::c_void>(),
            buf.len(),
            libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(received).map_err(|_| io::Error::last_os_error())
}

/// Registers a socket with tokio's reactor for readiness events on reads.
///
/// tokio's safe constructors are deprecated as unsound for a `T` whose `as_raw_fd` could change or
/// close; for a `socket2::Socket` neither can happen, which is what makes this call sound.
pub(super) fn register_readable(socket: socket2::Socket) -> io::Result<tokio::io::unix::AsyncFd<socket2::Socket>> {
    // SAFETY: a `socket2::Socket` owns exactly one open descriptor for its whole life and always
    // returns it from `as_raw_fd`; the `AsyncFd` owns the socket, so the descriptor stays open and
    // unchanged until the `AsyncFd` deregisters it on drop.
    let registered = unsafe { tokio::io::unix::AsyncFd::register_with_interest(socket, tokio::io::Interest::READABLE) };
    registered.map_err(io::Error::from)
}
