//! Throwaway network namespaces for tests on a real link: two namespaces joined by a veth
//! pair, so the kernel's filtering, the sockets' binding and the multicast joins are exercised
//! for real. Needs root and `ip`; [`Lab::new`] says why and returns `None` otherwise, and the
//! test skips. Traffic flows only between the two test namespaces.
//!
//! Side A plays the node (the speaker's sockets live there, on `eth0`), side B the client. Static
//! neighbour entries between the two hosts' own addresses keep the kernel from sending any ARP or
//! NDP of its own, so every frame a socket sees is one a test sent.

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{CloneFlags, setns};

use crate::packet::MacAddress;

pub(crate) const MAC_A: MacAddress = MacAddress::new([0x02, 0x77, 0, 0, 0, 0x01]);
pub(crate) const MAC_B: MacAddress = MacAddress::new([0x02, 0x77, 0, 0, 0, 0x02]);
/// The MAC the "speaker" answers with: neither side's, so seeing it proves our frame was used.
pub(crate) const SPEAKER_MAC: MacAddress = MacAddress::new([0x02, 0x77, 0, 0, 0, 0x10]);
pub(crate) const VIP4: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 10);
pub(crate) const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0x10);

static LABS: AtomicUsize = AtomicUsize::new(0);

/// The two namespaces; deleted on drop, also when a test panics.
pub(crate) struct Lab {
    pub(crate) a: String,
    pub(crate) b: String,
}

impl Lab {
    /// Builds the lab, or returns `None` (after saying why) where namespaces cannot be made.
    pub(crate) fn new() -> Option<Self> {
        let id = LABS.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("ironlb-nettest-{}-{id}", std::process::id());
        let lab = Self { a: format!("{prefix}-a"), b: format!("{prefix}-b") };
        match Command::new("ip").args(["netns", "add", &lab.a]).output() {
            Ok(output) if output.status.success() => {}
            Ok(output) => {
                eprintln!("skipping: cannot create a network namespace: {}", String::from_utf8_lossy(&output.stderr));
                return None;
            }
            Err(error) => {
                eprintln!("skipping: cannot run `ip`: {error}");
                return None;
            }
        }
        ip(&["netns", "add", &lab.b]);
        let (mac_a, mac_b) = (MAC_A.to_string(), MAC_B.to_string());
        #[rustfmt::skip]
        ip(&["-n", &lab.a, "link", "add", "eth0", "address", &mac_a, "type", "veth",
             "peer", "name", "eth0", "address", &mac_b, "netns", &lab.b]);
        for (ns, v4, v6) in [(&lab.a, "192.168.77.1/24", "fd77::1/64"), (&lab.b, "192.168.77.2/24", "fd77::2/64")] {
            // No link-local address: no DAD, router or MLD chatter of the kernel's own.
            ip(&["-n", ns, "link", "set", "eth0", "addrgenmode", "none"]);
            ip(&["-n", ns, "addr", "add", v4, "dev", "eth0"]);
            ip(&["-n", ns, "addr", "add", v6, "dev", "eth0", "nodad"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
        }
        for (ns, v4, v6, mac) in
            [(&lab.a, "192.168.77.2", "fd77::2", &mac_b), (&lab.b, "192.168.77.1", "fd77::1", &mac_a)]
        {
            for neighbour in [v4, v6] {
                ip(&["-n", ns, "neigh", "replace", neighbour, "lladdr", mac, "dev", "eth0", "nud", "permanent"]);
            }
        }
        Some(lab)
    }

    /// Runs `future` on a thread that entered namespace A (network namespaces are per thread), on
    /// its own tokio runtime, and propagates its panic.
    pub(crate) fn in_a<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        in_namespace(&self.a, future)
    }
}

/// Runs `future` on a thread inside network namespace `name`, on its own runtime, and waits for it.
pub(crate) fn in_namespace<T: Send + 'static>(name: &str, future: impl Future<Output = T> + Send + 'static) -> T {
    spawn_in(name, future).join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Starts `future` on a thread inside network namespace `name`, on its own runtime.
pub(crate) fn spawn_in<T: Send + 'static>(
    name: &str,
    future: impl Future<Output = T> + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{name}");
    std::thread::spawn(move || {
        let namespace = std::fs::File::open(&path).expect("namespace file");
        setns(&namespace, CloneFlags::CLONE_NEWNET).expect("setns");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(future)
    })
}

impl Lab {
    /// A second link between A and B, `eth1` on both sides (192.168.78.1/24 and .2), with a
    /// jumbo MTU on both `eth0` and `eth1` so a test can send frames larger than any ARP/NDP
    /// frame the speaker reads.
    pub(crate) fn add_second_link(&self) {
        #[rustfmt::skip]
        ip(&["-n", &self.a, "link", "add", "eth1", "address", "02:77:00:00:01:01", "type", "veth",
             "peer", "name", "eth1", "address", "02:77:00:00:01:02", "netns", &self.b]);
        for (ns, v4) in [(&self.a, "192.168.78.1/24"), (&self.b, "192.168.78.2/24")] {
            ip(&["-n", ns, "link", "set", "eth1", "addrgenmode", "none"]);
            ip(&["-n", ns, "addr", "add", v4, "dev", "eth1"]);
            for link in ["eth0", "eth1"] {
                ip(&["-n", ns, "link", "set", link, "mtu", "9000"]);
            }
            ip(&["-n", ns, "link", "set", "eth1", "up"]);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

pub(crate) fn ip(args: &[&str]) -> Output {
    run("ip", args)
}

pub(crate) fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program).args(args).output().expect("spawn");
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

pub(crate) fn installed(tool: &str) -> bool {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipping: `{tool}` is not installed (scripts/install-deps.sh installs it)");
    }
    found
}
