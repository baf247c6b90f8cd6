//! Objects the unit tests feed the speaker: a node's Lease as its speaker publishes it, a pool,
//! and a slice of its allocation record. One set for every test module, so each reads the same cluster.

use ironlb_core::announcer::{PublishedInterface, PublishedNode};
use ironlb_core::v1alpha1::{
    Allocation, IPAddressPool, IPAddressPoolSpec, IPAllocationSlice, IPAllocationSliceSpec, IPAllocationSliceStatus,
};
use k8s_openapi::api::coordination::v1::Lease;

use crate::packet::MacAddress;

/// The MAC node `index` answers with on `eth0`.
pub(crate) fn mac(index: u8) -> MacAddress {
    MacAddress::new([0x02, 0, 0, 0, 0, index])
}

/// The Lease of `node` (2 s), publishing one interface `eth0` with MAC [`mac`]`(index)` and
/// addresses `192.168.2.<index>/24` and `fd00::<index>/64` (the index written in decimal).
pub(crate) fn lease(node: &str, index: u8) -> Lease {
    let facts = PublishedNode {
        interfaces: vec![PublishedInterface {
            name: "eth0".to_owned(),
            mac: Some(mac(index).to_string()),
            up: true,
            announce_by_default: true,
            addresses: vec![format!("192.168.2.{index}/24"), format!("fd00::{index}/64")],
        }],
        ..PublishedNode::default()
    };
    facts.lease(node, &format!("pod-{node}"), 2, None)
}

/// The allocation of Service `web/<name>`.
pub(crate) fn allocation(name: &str, ips: &[&str], serving: bool) -> Allocation {
    Allocation {
        namespace: "web".to_owned(),
        name: name.to_owned(),
        ips: ips.iter().map(|&ip| ip.to_owned()).collect(),
        serving,
        ..Allocation::default()
    }
}

/// Pool `default`: `192.168.2.0/24` and `fd00::/64`.
pub(crate) fn pool() -> IPAddressPool {
    IPAddressPool::new("default", IPAddressPoolSpec::new(["192.168.2.0/24", "fd00::/64"]))
}

/// Slice `default-0` of pool `default`'s record, listing `allocations`.
pub(crate) fn slice(allocations: Vec<Allocation>) -> IPAllocationSlice {
    let mut slice = IPAllocationSlice::new("default-0", IPAllocationSliceSpec { pool: "default".to_owned() });
    slice.status = Some(IPAllocationSliceStatus::listing(allocations));
    slice
}
