//! The node's network interfaces, and which of them the speaker announces on by default.
//!
//! First step of the data path (**interfaces** → sockets → parse → decide → build → send): the
//! speaker opens its sockets on the interfaces an `L2Advertisement` names, or, when it names none,
//! on those [`Interface::default_exclusion`] lets through. The addresses listed here also tell the
//! announcer which interface can carry a VIP (the one whose subnet contains it).
//!
//! Interfaces, MACs, flags and addresses come from `getifaddrs(3)`, which glibc answers over
//! netlink: it sees the network namespace of the *calling thread*, unlike `/sys/class/net` and
//! `/proc/net/if_inet6`, which show the namespace of whoever mounted them. Only the bridge/bond
//! membership is read from sysfs (`/sys/class/net/<if>/master`), which is correct wherever the
//! speaker runs with its own sysfs mount: a `hostNetwork` pod, or `ip netns exec` in the lab.
//!
//! Watching for interfaces and addresses coming and going (netlink `RTMGRP_LINK`/`*_IFADDR`) is
//! not here yet; calling [`interfaces`] again gives the current state.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::path::Path;

use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;

use crate::packet::MacAddress;

/// Name prefixes of container and overlay plumbing, never a default announcing interface.
///
/// Pod-side veths and CNI bridges (`veth`, `cni`, `cali`, `lxc`, `cilium`, `flannel`, `weave`,
/// `antrea`, `docker`, `podman`, `virbr`), overlay and tunnel devices (`vxlan`, `genev`, `tunl`,
/// `flannel.1`, `nodelocaldns`), kube-proxy's IPVS dummy (`kube-ipvs0`) and kube-router's bridge.
/// Docker's per-network bridges (`br-` + 12 hex digits) are matched separately, so that an
/// administrator's own `br-lan` still counts.
///
/// The decision is by **name, not by link kind**, on purpose: a node's uplink may itself be a veth
/// (the ironlb lab's `eth0`, kind/containerlab nodes, many VM setups), and the CNIs above name their
/// devices predictably, so a name is the signal that separates plumbing from the node's NIC.
pub const CONTAINER_PLUMBING_PREFIXES: &[&str] = &[
    "veth",
    "cni",
    "cali",
    "cilium",
    "lxc",
    "flannel",
    "weave",
    "vethwe",
    "datapath",
    "antrea",
    "docker",
    "podman",
    "virbr",
    "vxlan",
    "genev",
    "tunl",
    "nodelocaldns",
    "kube-ipvs",
    "kube-bridge",
    "kube-dummy-if",
    "ovs-system",
];

/// The flags of `ip link` the speaker cares about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkFlags {
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Operationally up: carrier present (`IFF_LOWER_UP`, or `IFF_RUNNING` where the driver sets
    /// only that).
    pub lower_up: bool,
    /// Can send to the broadcast address (`IFF_BROADCAST`); ARP needs it.
    pub broadcast: bool,
    /// The loopback device (`IFF_LOOPBACK`).
    pub loopback: bool,
    /// Does not use ARP (`IFF_NOARP`): point-to-point, tunnels, dummies.
    pub noarp: bool,
}

impl LinkFlags {
    fn from_nix(flags: InterfaceFlags) -> Self {
        Self {
            up: flags.contains(InterfaceFlags::IFF_UP),
            lower_up: flags.intersects(InterfaceFlags::IFF_LOWER_UP | InterfaceFlags::IFF_RUNNING),
            broadcast: flags.contains(InterfaceFlags::IFF_BROADCAST),
            loopback: flags.contains(InterfaceFlags::IFF_LOOPBACK),
            noarp: flags.contains(InterfaceFlags::IFF_NOARP),
        }
    }
}

/// An address configured on an interface, with its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct InterfaceAddress {
    /// The address.
    pub address: IpAddr,
    /// The prefix length of its subnet (`/24`, `/64`).
    pub prefix_len: u8,
}

impl InterfaceAddress {
    /// Whether `ip` lies in this address's subnet (same family, same first `prefix_len` bits).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(own), IpAddr::V4(other)) => {
                let mask = u32::MAX.checked_shl(32_u32.saturating_sub(u32::from(self.prefix_len))).unwrap_or(0);
                u32::from(own) & mask == u32::from(other) & mask
            }
            (IpAddr::V6(own), IpAddr::V6(other)) => {
                let mask = u128::MAX.checked_shl(128_u32.saturating_sub(u32::from(self.prefix_len))).unwrap_or(0);
                u128::from(own) & mask == u128::from(other) & mask
            }
            _ => false,
        }
    }
}

/// One network interface of the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Kernel name (`eth0`).
    pub name: String,
    /// Kernel index, what packet sockets and multicast joins are bound to.
    pub index: u32,
    /// Hardware address; `None` for interfaces without an Ethernet-sized one (loopback's is zero,
    /// tunnels have none).
    pub mac: Option<MacAddress>,
    /// Up, carrier, broadcast, loopback, NOARP.
    pub flags: LinkFlags,
    /// The bridge, bond or team this interface is a port of (`/sys/class/net/<if>/master`).
    pub master: Option<String>,
    /// IPv4 and IPv6 addresses, link-local included, sorted.
    pub addresses: Vec<InterfaceAddress>,
}

/// Why an interface is not a default announcing interface. The `Display` text is for logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Exclusion {
    /// The loopback device.
    #[error("loopback")]
    Loopback,
    /// Administratively down.
    #[error("down")]
    Down,
    /// Cannot broadcast, so cannot receive ARP requests.
    #[error("not broadcast-capable")]
    NoBroadcast,
    /// Marked NOARP.
    #[error("NOARP")]
    NoArp,
    /// A port of a bridge or bond: the master carries the traffic and the addresses.
    #[error("member of {0}")]
    Member(String),
    /// Container or overlay plumbing, recognised by its name.
    #[error("container plumbing ({0}*)")]
    ContainerPlumbing(String),
    /// No Ethernet MAC to answer with.
    #[error("no Ethernet address")]
    NoMac,
}

impl Interface {
    /// Why this interface is not announced on when an `L2Advertisement` names no interfaces, or
    /// `None` if it is. The rules, first match wins: loopback, down, not broadcast-capable, NOARP,
    /// no MAC, a port of a bridge/bond, a name of container plumbing
    /// ([`CONTAINER_PLUMBING_PREFIXES`], Docker's `br-<12 hex>`).
    ///
    /// Carrier is not required: an interface that loses its link is still the right one to
    /// announce on once the link returns; failover on link loss is decided elsewhere.
    pub fn default_exclusion(&self) -> Option<Exclusion> {
        if self.flags.loopback {
            return Some(Exclusion::Loopback);
        }
        if !self.flags.up {
            return Some(Exclusion::Down);
        }
        if !self.flags.broadcast {
            return Some(Exclusion::NoBroadcast);
        }
        if self.flags.noarp {
            return Some(Exclusion::NoArp);
        }
        if self.mac.is_none_or(|mac| mac.is_unspecified()) {
            return Some(Exclusion::NoMac);
        }
        if let Some(master) = &self.master {
            return Some(Exclusion::Member(master.clone()));
        }
        plumbing_prefix(&self.name).map(|prefix| Exclusion::ContainerPlumbing(prefix.to_owned()))
    }

    /// Whether one of this interface's subnets contains `ip`.
    pub fn has_subnet_for(&self, ip: IpAddr) -> bool {
        self.addresses.iter().any(|address| address.contains(ip))
    }
}

/// The container-plumbing prefix `name` starts with, if any.
fn plumbing_prefix(name: &str) -> Option<&'static str> {
    if let Some(rest) = name.strip_prefix("br-")
        && rest.len() == 12
        && rest.bytes().all(|byte| byte.is_ascii_hexdigit())
    {
        return Some("br-");
    }
    CONTAINER_PLUMBING_PREFIXES.iter().copied().find(|prefix| name.starts_with(prefix))
}

/// Every interface of the calling thread's network namespace, sorted by index.
pub fn interfaces() -> io::Result<Vec<Interface>> {
    let mut by_name: BTreeMap<String, Interface> = BTreeMap::new();
    let mut addresses: Vec<(String, InterfaceAddress)> = Vec::new();
    for entry in getifaddrs().map_err(io::Error::from)? {
        let Some(address) = entry.address else { continue };
        if let Some(link) = address.as_link_addr() {
            let Ok(index) = u32::try_from(link.ifindex()) else { continue };
            let mac = link.addr().map(MacAddress::new);
            by_name.insert(
                entry.interface_name.clone(),
                Interface {
                    master: read_master(&entry.interface_name),
                    name: entry.interface_name,
                    index,
                    mac,
                    flags: LinkFlags::from_nix(entry.flags),
                    addresses: Vec::new(),
                },
            );
            continue;
        }
        let ip = match (address.as_sockaddr_in(), address.as_sockaddr_in6()) {
            (Some(v4), _) => IpAddr::V4(v4.ip()),
            (_, Some(v6)) => IpAddr::V6(v6.ip()),
            _ => continue,
        };
        let prefix_len =
            entry.netmask.as_ref().map_or(0, |mask| match (mask.as_sockaddr_in(), mask.as_sockaddr_in6()) {
                (Some(v4), _) => prefix_len(&v4.ip().octets()),
                (_, Some(v6)) => prefix_len(&v6.ip().octets()),
                _ => 0,
            });
        // An IPv4 address with a label (`ip addr add … label eth0:vip`) is listed under the label.
        let name = entry.interface_name.split(':').next().unwrap_or_default().to_owned();
        addresses.push((name, InterfaceAddress { address: ip, prefix_len }));
    }
    for (name, address) in addresses {
        if let Some(interface) = by_name.get_mut(&name) {
            interface.addresses.push(address);
        }
    }
    let mut interfaces: Vec<Interface> = by_name.into_values().collect();
    for interface in &mut interfaces {
        interface.addresses.sort();
    }
    interfaces.sort_by_key(|interface| interface.index);
    Ok(interfaces)
}

/// The interface called `name`, if it exists.
pub fn interface_by_name(name: &str) -> io::Result<Option<Interface>> {
    Ok(interfaces()?.into_iter().find(|interface| interface.name == name))
}

/// Counts the leading one bits of a netmask.
fn prefix_len(mask: &[u8]) -> u8 {
    let ones: u32 = mask.iter().map(|byte| byte.count_ones()).sum();
    u8::try_from(ones).unwrap_or(u8::MAX)
}

fn read_master(name: &str) -> Option<String> {
    let link = std::fs::read_link(Path::new("/sys/class/net").join(name).join("master")).ok()?;
    link.file_name().map(|master| master.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn ethernet(name: &str) -> Interface {
        Interface {
            name: name.to_owned(),
            index: 2,
            mac: Some(MacAddress::new([0x02, 0, 0, 0, 0, 1])),
            flags: LinkFlags { up: true, lower_up: true, broadcast: true, loopback: false, noarp: false },
            master: None,
            addresses: vec![InterfaceAddress { address: IpAddr::V4(Ipv4Addr::new(192, 168, 2, 200)), prefix_len: 24 }],
        }
    }

    #[test]
    fn an_up_ethernet_interface_is_a_default_even_when_it_is_a_veth_named_eth0() {
        // The lab's node NIC is one end of a veth pair; only names mark plumbing.
        for name in ["eth0", "ens3", "enp1s0", "bond0", "br0", "br-lan", "eth0.100"] {
            assert_eq!(ethernet(name).default_exclusion(), None, "{name}");
        }
    }

    #[test]
    fn container_plumbing_is_never_a_default() {
        for name in [
            "veth1a2b3c",
            "cni0",
            "cali12345",
            "cilium_host",
            "lxc0a1b",
            "flannel.1",
            "docker0",
            "kube-ipvs0",
            "vxlan.calico",
            "br-0123456789ab",
        ] {
            assert!(matches!(ethernet(name).default_exclusion(), Some(Exclusion::ContainerPlumbing(_))), "{name}");
        }
    }

    #[test]
    fn flags_and_membership_exclude_in_order() {
        let mut lo = ethernet("lo");
        lo.flags.loopback = true;
        assert_eq!(lo.default_exclusion(), Some(Exclusion::Loopback));

        let mut down = ethernet("eth1");
        down.flags.up = false;
        assert_eq!(down.default_exclusion(), Some(Exclusion::Down));

        let mut wireguard = ethernet("wg0");
        wireguard.flags.broadcast = false;
        assert_eq!(wireguard.default_exclusion(), Some(Exclusion::NoBroadcast));

        let mut noarp = ethernet("dummy0");
        noarp.flags.noarp = true;
        assert_eq!(noarp.default_exclusion(), Some(Exclusion::NoArp));

        let mut port = ethernet("eth2");
        port.master = Some("br0".to_owned());
        assert_eq!(port.default_exclusion(), Some(Exclusion::Member("br0".to_owned())));
    }

    #[test]
    fn an_interface_without_carrier_is_still_a_default() {
        let mut unplugged = ethernet("eth0");
        unplugged.flags.lower_up = false;
        assert_eq!(unplugged.default_exclusion(), None);
    }

    #[test]
    fn subnets_decide_which_interface_carries_an_address() {
        let interface = ethernet("eth0");
        assert!(interface.has_subnet_for(IpAddr::V4(Ipv4Addr::new(192, 168, 2, 10))));
        assert!(!interface.has_subnet_for(IpAddr::V4(Ipv4Addr::new(192, 168, 3, 10))));
        assert!(!interface.has_subnet_for(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        let v6 = InterfaceAddress { address: "fd77::1".parse().expect("address"), prefix_len: 64 };
        assert!(v6.contains("fd77::10".parse().expect("address")));
        assert!(!v6.contains("fd78::10".parse().expect("address")));
        let everything = InterfaceAddress { address: IpAddr::V4(Ipv4Addr::UNSPECIFIED), prefix_len: 0 };
        assert!(everything.contains(IpAddr::V4(Ipv4Addr::BROADCAST)));
    }

    #[test]
    fn prefix_length_counts_mask_bits() {
        assert_eq!(prefix_len(&[255, 255, 255, 0]), 24);
        assert_eq!(prefix_len(&[0; 16]), 0);
    }
}
