//! Nodes' own addresses inside a pool: handing one to a Service would make two hosts answer for
//! it on the LAN, so the operator warns about such a pool.
//!
//! Judged exactly on the parsed entries, `first..=last` as numbers of one family: every address
//! of a CIDR or a `start-end` range counts, the ends included, and nothing outside them. (A check
//! that reads a range's ends as a CIDR, or compares addresses as text, gets the boundaries wrong
//! and warns about pools that are fine, or misses ones that are not.)

use std::net::IpAddr;

use super::AddressRange;

/// A node address that lies in a pool entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAddressInPool {
    /// The node's name.
    pub node: String,
    /// The node's address, as the node reported it (an IPv4-mapped IPv6 address is matched as
    /// the IPv4 address it stands for).
    pub address: IpAddr,
    /// Position of the entry in the pool's ranges (for a validated pool, in `spec.addresses`).
    pub entry_index: usize,
    /// The entry's addresses.
    pub entry: AddressRange,
}

/// Every node address that lies in one of `pool_ranges`, in the order of `node_addresses`
/// (then of the entries).
///
/// `node_addresses` pairs a node's name with each of its addresses, as listed in
/// `Node.status.addresses`. Entries × addresses is small (at most 256 entries), so every pair is
/// compared.
pub fn node_addresses_in_pool<N: Into<String>>(
    pool_ranges: &[AddressRange],
    node_addresses: impl IntoIterator<Item = (N, IpAddr)>,
) -> Vec<NodeAddressInPool> {
    let mut found = Vec::new();
    for (node, address) in node_addresses {
        // `::ffff:192.168.2.10` is the host `192.168.2.10`; pools never hold the mapped spelling.
        let host = address.to_canonical();
        let node: String = node.into();
        for (entry_index, &entry) in pool_ranges.iter().enumerate() {
            if entry.contains(host) {
                found.push(NodeAddressInPool { node: node.clone(), address, entry_index, entry });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::parse_entry;

    fn ranges(entries: &[&str]) -> Vec<AddressRange> {
        entries.iter().map(|entry| parse_entry(entry).unwrap_or_else(|error| panic!("{error}"))).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    /// For each node address, the index of the entry holding it.
    fn holding(pool: &[&str], address: &str) -> Vec<usize> {
        let pool = ranges(pool);
        node_addresses_in_pool(&pool, [("node-a", ip(address))]).into_iter().map(|found| found.entry_index).collect()
    }

    #[test]
    fn range_entries_include_both_ends_and_nothing_past_them() {
        let pool = ["192.168.2.10-192.168.2.49"];
        for inside in ["192.168.2.10", "192.168.2.11", "192.168.2.48", "192.168.2.49"] {
            assert_eq!(holding(&pool, inside), [0], "{inside}");
        }
        // 192.168.2.0/26 would wrongly hold .0-.9 and .50-.63.
        for outside in ["192.168.2.9", "192.168.2.50", "192.168.2.0", "192.168.2.63", "192.168.3.10"] {
            assert_eq!(holding(&pool, outside), [] as [usize; 0], "{outside}");
        }
    }

    #[test]
    fn cidr_entries_include_network_and_last_address() {
        let pool = ["10.0.0.0/8", "192.168.2.0/30"];
        assert_eq!(holding(&pool, "10.0.0.0"), [0]);
        assert_eq!(holding(&pool, "10.255.255.255"), [0]);
        assert!(holding(&pool, "11.0.0.0").is_empty());
        assert!(holding(&pool, "9.255.255.255").is_empty());
        assert_eq!(holding(&pool, "192.168.2.3"), [1]);
        assert!(holding(&pool, "192.168.2.4").is_empty());
    }

    #[test]
    fn ranges_that_cross_octet_boundaries_are_judged_as_numbers() {
        // Text comparison would put "192.168.10.5" before "192.168.9.250".
        let pool = ["192.168.9.250-192.168.10.5"];
        assert_eq!(holding(&pool, "192.168.10.5"), [0]);
        assert_eq!(holding(&pool, "192.168.9.255"), [0]);
        assert!(holding(&pool, "192.168.10.6").is_empty());
        assert!(holding(&pool, "192.168.9.249").is_empty());
    }

    #[test]
    fn ipv6_entries_are_exact_too() {
        let pool = ["fd00::10-fd00::ff", "fd00:1::/64"];
        assert_eq!(holding(&pool, "fd00::10"), [0]);
        assert_eq!(holding(&pool, "fd00::ff"), [0]);
        assert!(holding(&pool, "fd00::f").is_empty());
        assert!(holding(&pool, "fd00::100").is_empty());
        assert_eq!(holding(&pool, "fd00:1::ffff:ffff:ffff:ffff"), [1]);
        assert!(holding(&pool, "fd00:1:0:1::").is_empty());
    }

    #[test]
    fn families_never_mix_but_mapped_addresses_are_their_ipv4_host() {
        // ::a00:5 has the same number as 10.0.0.5, but is not that host; ::ffff:10.0.0.5 is.
        let pool = ["10.0.0.0/24"];
        assert!(holding(&pool, "::a00:5").is_empty());
        let found = node_addresses_in_pool(&ranges(&pool), [("node-a", ip("::ffff:10.0.0.5"))]);
        assert_eq!(found.iter().map(|found| found.address).collect::<Vec<_>>(), [ip("::ffff:10.0.0.5")]);
    }

    #[test]
    fn each_finding_names_the_node_the_address_and_the_entry() {
        let pool = ranges(&["192.168.2.10-192.168.2.49", "fd00::/64"]);
        let nodes = [
            ("node-a", ip("192.168.2.5")),
            ("node-b", ip("192.168.2.20")),
            ("node-b", ip("fd00::20")),
            ("node-c", ip("192.168.2.49")),
        ];
        let found = node_addresses_in_pool(&pool, nodes);
        let summary: Vec<(String, String, usize, String)> = found
            .into_iter()
            .map(|found| (found.node, found.address.to_string(), found.entry_index, found.entry.to_string()))
            .collect();
        assert_eq!(
            summary,
            [
                ("node-b".to_owned(), "192.168.2.20".to_owned(), 0, "192.168.2.10-192.168.2.49".to_owned()),
                ("node-b".to_owned(), "fd00::20".to_owned(), 1, "fd00::/64".to_owned()),
                ("node-c".to_owned(), "192.168.2.49".to_owned(), 0, "192.168.2.10-192.168.2.49".to_owned()),
            ]
        );
    }
}
