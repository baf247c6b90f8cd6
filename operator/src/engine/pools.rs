//! `IPAddressPool` objects in and out of the allocator: the spec becomes a
//! [`PoolConfig`], and the allocator's view of the pool becomes its status.
//!
//! A pool whose spec fails validation (something the API server's CEL rules
//! cannot see, such as two overlapping entries) is never handed to the
//! allocator: the last valid spec keeps serving, so an invalid edit disturbs
//! no Service that already has an address. Its `Invalid` condition says why.

use std::net::IpAddr;

use ironlb_core::address::{AddressRange, Family, node_addresses_in_pool, parse_entry};
use ironlb_core::announcer::{NodeFacts, PublishedConflict};
use ironlb_core::selector::parse_selectors;
use ironlb_core::v1alpha1::{
    Allocation, AllocationRecord, IPAddressPool, IPAddressPoolStatus, LISTED_INLINE, condition_reason, condition_type,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as KubeSelector;
use k8s_openapi::jiff::Timestamp;

use super::conditions::{Holds, condition};
use super::listing::Listing;
use crate::allocator::{LabelSelector, PoolConfig, PoolView, ServiceAllocation};

/// Why a pool's spec cannot be used, for its `Invalid` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InvalidPool {
    /// CamelCase reason, e.g. `OverlappingEntries`.
    pub(crate) reason: &'static str,
    /// Every problem, naming the field.
    pub(crate) message: String,
}

/// What the allocator should know of a pool, or why the spec cannot be used.
pub(crate) fn pool_config(pool: &IPAddressPool) -> Result<PoolConfig, InvalidPool> {
    let ranges = pool.spec.validate().map_err(|invalid| InvalidPool {
        reason: invalid.errors.first().map_or(condition_reason::INVALID, |e| e.reason()),
        message: invalid.to_string(),
    })?;
    let name = pool.metadata.name.clone().unwrap_or_default();
    let mut config = PoolConfig::new(name, ranges);
    config.created = pool.metadata.creation_timestamp.as_ref().map_or(0, |t| t.0.as_second());
    config.auto_assign = pool.spec.auto_assign;
    config.avoid_buggy_ips = pool.spec.avoid_buggy_ips;
    config.service_allocation = match &pool.spec.service_allocation {
        None => None,
        Some(rules) => Some(ServiceAllocation {
            priority: rules.priority,
            namespaces: rules.namespaces.iter().cloned().collect(),
            namespace_selectors: selectors(&rules.namespace_selectors, "namespaceSelectors")?,
            service_selectors: selectors(&rules.service_selectors, "serviceSelectors")?,
        }),
    };
    Ok(config)
}

/// Kubernetes label selectors in the allocator's terms. The API server checks
/// selectors only for built-in kinds, so a selector it would refuse makes the
/// pool's spec invalid, naming the field ([`ironlb_core::selector`]).
fn selectors(selectors: &[KubeSelector], field: &str) -> Result<Vec<LabelSelector>, InvalidPool> {
    parse_selectors(selectors, &format!("spec.serviceAllocation.{field}"))
        .map_err(|invalid| InvalidPool { reason: condition_reason::INVALID_SELECTOR, message: invalid.to_string() })
}

/// What the record holds of one pool: its whole listing, where it is kept, and how many of its
/// first allocations the pool status lists itself.
pub(crate) struct Recorded<'a> {
    /// Every allocation, as the last decision listed it.
    pub(crate) listing: &'a Listing,
    /// The slices holding them.
    pub(crate) record: AllocationRecord,
    /// How many the pool status lists ([`listed_inline`]).
    pub(crate) inline: usize,
}

impl<'a> Recorded<'a> {
    /// `listing`, not yet in any slice, its first [`LISTED_INLINE`] in the status.
    #[cfg(test)]
    pub(crate) fn unsliced(listing: &'a Listing) -> Self {
        Self { listing, record: AllocationRecord::default(), inline: LISTED_INLINE }
    }
}

/// The most bytes of allocations the pool status lists while a speaker of an older release runs
/// (that release read only this list, and capped it about here): the first allocations that fit.
pub(crate) const SLICE_UNAWARE_BUDGET: usize = 1_000_000;

/// How many of `allocations` (the pool's whole listing, in Service order) its status lists: the
/// first [`LISTED_INLINE`]; or, while `slice_unaware_speakers` run (an upgrade from a release
/// whose speakers read only this list is rolling), as many as fit [`SLICE_UNAWARE_BUDGET`], so
/// that no address those speakers announce is withdrawn before they are replaced.
pub(crate) fn listed_inline(allocations: &[Allocation], slice_unaware_speakers: bool) -> usize {
    if !slice_unaware_speakers {
        return allocations.len().min(LISTED_INLINE);
    }
    let mut budget = SLICE_UNAWARE_BUDGET;
    allocations
        .iter()
        .take_while(|allocation| {
            let cost = serde_json::to_string(allocation).map_or(usize::MAX, |json| json.len() + 1);
            budget = budget.saturating_sub(cost);
            budget > 0
        })
        .count()
}

/// The status the operator writes for `pool`: the first of its allocations as `listing`
/// renders them, where the whole record is (`record`), counts and conditions. `view` is absent
/// when the allocator does not know the pool (its spec was never valid: nothing is listed);
/// `invalid` is the current spec's problem; `reported` the address conflicts
/// the speakers report (every pool's; the ones of this pool's listed addresses count);
/// `node_addresses` every node's own addresses ([`node_addresses`]).
pub(crate) fn pool_status(
    pool: &IPAddressPool,
    view: Option<PoolView<'_>>,
    recorded: Recorded<'_>,
    invalid: Option<&InvalidPool>,
    reported: &[(String, PublishedConflict)],
    node_addresses: &[(String, IpAddr)],
    now: Timestamp,
) -> IPAddressPoolStatus {
    let Recorded { listing, record, inline } = recorded;
    let mut status = IPAddressPoolStatus { observed_generation: pool.metadata.generation, ..Default::default() };
    if let Some(view) = view {
        status.allocations = listing.allocations.iter().take(inline).cloned().collect();
        status.allocation_record = Some(record);
        status.record_usage(
            view.usage(Family::V4).map(|usage| usage.counts()),
            view.usage(Family::V6).map(|usage| usage.counts()),
        );
    }
    let conflicts = view.map(|view| view.conflicts()).unwrap_or_default();
    let previous = pool.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let generation = pool.metadata.generation;
    let condition = |type_: &str, holds: bool, reason: &str, message: String| {
        condition(previous, generation, now, Holds { type_, holds, reason, message })
    };
    let conflict_text: Vec<String> = conflicts.iter().map(ToString::to_string).collect();
    let address_conflicts = if view.is_some() { address_conflicts(&listing.allocations, reported) } else { None };
    status.conditions = vec![
        match invalid {
            Some(problem) => condition(
                condition_type::INVALID,
                true,
                problem.reason,
                if view.is_some() {
                    format!("{}; the last valid spec keeps serving", problem.message)
                } else {
                    problem.message.clone()
                },
            ),
            None => condition(condition_type::INVALID, false, condition_reason::VALID, String::new()),
        },
        if conflicts.is_empty() {
            condition(condition_type::CONFLICT, false, condition_reason::NO_OVERLAP, String::new())
        } else {
            condition(
                condition_type::CONFLICT,
                true,
                condition_reason::OVERLAPS_POOL,
                format!("{}; those addresses are not allocated from this pool", conflict_text.join("; ")),
            )
        },
        match nodes_in_pool(pool, node_addresses) {
            None => {
                condition(condition_type::NODE_ADDRESS_IN_POOL, false, condition_reason::NO_NODE_ADDRESS, String::new())
            }
            Some(message) => {
                condition(condition_type::NODE_ADDRESS_IN_POOL, true, condition_reason::NODE_ADDRESS_IN_POOL, message)
            }
        },
        match address_conflicts {
            None => {
                condition(condition_type::ADDRESS_CONFLICT, false, condition_reason::NO_ADDRESS_CONFLICT, String::new())
            }
            Some((reason, message)) => condition(condition_type::ADDRESS_CONFLICT, true, reason, message),
        },
        match (invalid, view) {
            (_, None) | (Some(_), _) => {
                condition(condition_type::READY, false, condition_reason::INVALID, "the spec is invalid".to_owned())
            }
            (None, Some(_)) if !conflicts.is_empty() => condition(
                condition_type::READY,
                true,
                condition_reason::CONFLICT,
                "allocating from the addresses no older pool lists".to_owned(),
            ),
            (None, Some(_)) => condition(condition_type::READY, true, condition_reason::ALLOCATABLE, String::new()),
        },
    ];
    status
}

/// How many conflicts the `AddressConflict` and `NodeAddressInPool` messages spell out; the
/// rest are counted.
const CONFLICTS_SPELLED_OUT: usize = 5;

/// Every node's own addresses, as their speakers publish them: the addresses of the interfaces
/// fit for announcing by default. Left out are the interfaces a host puts addresses on that are
/// not its own on the LAN — above all kube-proxy's `kube-ipvs0` (NOARP), which holds every
/// LoadBalancer address in IPVS mode and would make every allocation look like a node's.
pub(crate) fn node_addresses(nodes: &[NodeFacts]) -> Vec<(String, IpAddr)> {
    nodes
        .iter()
        .flat_map(|node| {
            node.interfaces.iter().filter(|interface| interface.announce_by_default).flat_map(move |interface| {
                interface.addresses.iter().map(move |(address, _)| (node.name.clone(), *address))
            })
        })
        .collect()
}

/// The message of a true `NodeAddressInPool` condition: which node addresses lie in which
/// entries of the pool, judged exactly ([`node_addresses_in_pool`]).
fn nodes_in_pool(pool: &IPAddressPool, node_addresses: &[(String, IpAddr)]) -> Option<String> {
    let entries: Vec<(&String, AddressRange)> =
        pool.spec.addresses.iter().filter_map(|entry| Some((entry, parse_entry(entry).ok()?))).collect();
    let ranges: Vec<AddressRange> = entries.iter().map(|(_, range)| *range).collect();
    let found = node_addresses_in_pool(&ranges, node_addresses.iter().map(|(node, address)| (node.as_str(), *address)));
    if found.is_empty() {
        return None;
    }
    let mut message = found
        .iter()
        .take(CONFLICTS_SPELLED_OUT)
        .map(|hit| {
            format!(
                "node {} has address {} inside spec.addresses entry {:?}",
                hit.node, hit.address, entries[hit.entry_index].0
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    if found.len() > CONFLICTS_SPELLED_OUT {
        message.push_str(&format!("; and {} more", found.len() - CONFLICTS_SPELLED_OUT));
    }
    message
        .push_str(": a Service given such an address would take traffic meant for the node; take it out of the pool");
    Some(message)
}

/// The reason and message of a true `AddressConflict` condition, when a speaker reports a
/// conflict on an address in `allocations`. `AddressInUse` wins the reason: an address that is
/// not announced matters more than one announced under dispute.
fn address_conflicts(
    allocations: &[Allocation],
    reported: &[(String, PublishedConflict)],
) -> Option<(&'static str, String)> {
    let holder = |address: &str| allocations.iter().find(|a| a.ips.iter().any(|ip| ip == address));
    let found: Vec<String> = reported
        .iter()
        .filter_map(|(node, conflict)| {
            let allocation = holder(&conflict.address)?;
            let service = format!("{}/{}", allocation.namespace, allocation.name);
            Some(if conflict.in_use {
                format!(
                    "{} (Service {service}) is in use by {}, which answered node {}'s probe on {}: not announced",
                    conflict.address, conflict.mac, node, conflict.interface
                )
            } else {
                format!(
                    "{} (Service {service}) is also claimed by {}, seen by node {} on {}: still announced",
                    conflict.address, conflict.mac, node, conflict.interface
                )
            })
        })
        .collect();
    if found.is_empty() {
        return None;
    }
    let in_use = reported.iter().any(|(_, c)| c.in_use && holder(&c.address).is_some());
    let reason = if in_use { condition_reason::ADDRESS_IN_USE } else { condition_reason::ADDRESS_CLAIMED };
    let mut message = found.iter().take(CONFLICTS_SPELLED_OUT).cloned().collect::<Vec<_>>().join("; ");
    if found.len() > CONFLICTS_SPELLED_OUT {
        message.push_str(&format!("; and {} more", found.len() - CONFLICTS_SPELLED_OUT));
    }
    message.push_str(
        ". Hosts that are not ironlb speakers use these addresses: remove them from those hosts or from the pool",
    );
    Some((reason, message))
}

#[cfg(test)]
mod tests {
    use ironlb_core::v1alpha1::{IPAddressPool, condition_type};
    use k8s_openapi::jiff::Timestamp;

    use super::{Allocation, PublishedConflict, Recorded, pool_config, pool_status};
    use crate::allocator::{AllocationRequest, Allocator, ServiceKey};
    use crate::engine::announcers::{PoolInput, Winners, decide_listings};
    use crate::engine::listing::Listing;
    use crate::engine::record::Record;
    use ironlb_core::announcer::{AnnouncerInputs, EndpointScope};
    use ironlb_core::v1alpha1::LISTED_INLINE;

    fn pool(yaml: &str) -> IPAddressPool {
        serde_yaml::from_str(yaml).expect("a valid IPAddressPool fixture")
    }

    /// What the status of `pool` lists, with no speaker and no endpoint known.
    fn listing(allocator: &Allocator, pool: &str) -> Listing {
        let input = PoolInput { name: pool.to_owned(), labels: Default::default() };
        let (inputs, now) = (AnnouncerInputs::new(EndpointScope::Cluster), std::time::Instant::now());
        let decision =
            decide_listings(allocator, [input], |_| false, &inputs, inputs.nodes(now), &mut Winners::default());
        decision.listings.get(pool).cloned().unwrap_or_default()
    }

    fn condition<'a>(
        status: &'a ironlb_core::v1alpha1::IPAddressPoolStatus,
        type_: &str,
    ) -> (&'a str, &'a str, &'a str) {
        let c = status.conditions.iter().find(|c| c.type_ == type_).expect("the condition is set");
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
    }

    const WEB: &str = "
apiVersion: ironlb.io/v1alpha1
kind: IPAddressPool
metadata: {name: web, generation: 3, creationTimestamp: '2026-01-01T00:00:00Z'}
spec:
  addresses: [192.168.2.10-192.168.2.49]
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 5
    namespaces: [shop]
    serviceSelectors: [{matchExpressions: [{key: tier, operator: In, values: [web]}]}]
";

    #[test]
    fn spec_becomes_the_allocator_pool_with_its_age_and_rules() {
        let config = pool_config(&pool(WEB)).expect("valid");
        assert_eq!(config.name, "web");
        assert_eq!(config.created, 1_767_225_600);
        assert!(config.auto_assign && config.avoid_buggy_ips);
        let rules = config.service_allocation.expect("serviceAllocation");
        assert_eq!(rules.priority, Some(5));
        assert!(rules.namespaces.contains("shop"));
        assert_eq!(rules.service_selectors[0].match_expressions[0].key, "tier");
    }

    #[test]
    fn unknown_selector_operator_is_an_invalid_spec_naming_the_field() {
        let bad = WEB.replace("operator: In", "operator: Near");
        let invalid = pool_config(&pool(&bad)).expect_err("Near is no operator");
        assert_eq!(invalid.reason, "InvalidSelector");
        assert!(invalid.message.starts_with("spec.serviceAllocation.serviceSelectors[0]"), "{}", invalid.message);
    }

    #[test]
    fn overlapping_entries_make_the_pool_invalid_and_not_ready() {
        let bad = pool(&WEB.replace("[192.168.2.10-192.168.2.49]", "[192.168.2.0/24, 192.168.2.10-192.168.2.49]"));
        let invalid = pool_config(&bad).expect_err("entries overlap");
        let status = pool_status(
            &bad,
            None,
            Recorded::unsliced(&Listing::default()),
            Some(&invalid),
            &[],
            &[],
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(condition(&status, condition_type::INVALID).0, "True");
        assert_eq!(condition(&status, condition_type::INVALID).1, "OverlappingEntries");
        assert_eq!(condition(&status, condition_type::READY).0, "False");
    }

    #[test]
    fn a_node_address_inside_an_entry_is_a_warning_naming_node_address_and_entry() {
        use super::node_addresses;
        use ironlb_core::announcer::{InterfaceFacts, NodeFacts};
        let (web, allocator) = web_with_one_service();
        let interface = |name: &str, address: &str, announce_by_default: bool| InterfaceFacts {
            name: name.to_owned(),
            up: true,
            announce_by_default,
            addresses: vec![(address.parse().expect("address"), 24)],
        };
        let nodes = [
            // The last address of the range, and one past it: only the first is inside.
            NodeFacts {
                name: "node-a".to_owned(),
                interfaces: vec![interface("eth0", "192.168.2.49", true)],
                ..NodeFacts::default()
            },
            NodeFacts {
                name: "node-b".to_owned(),
                interfaces: vec![interface("eth0", "192.168.2.50", true)],
                ..NodeFacts::default()
            },
            // kube-proxy's IPVS dummy holds the Services' own addresses: not the node's.
            NodeFacts {
                name: "node-c".to_owned(),
                interfaces: vec![interface("kube-ipvs0", "192.168.2.10", false)],
                ..NodeFacts::default()
            },
        ];
        let listing = listing(&allocator, "web");
        let status = pool_status(
            &web,
            allocator.pool("web"),
            Recorded::unsliced(&listing),
            None,
            &[],
            &node_addresses(&nodes),
            Timestamp::UNIX_EPOCH,
        );
        let (holds, reason, message) = condition(&status, condition_type::NODE_ADDRESS_IN_POOL);
        assert_eq!((holds, reason), ("True", "NodeAddressInPool"));
        assert!(
            message.starts_with(
                r#"node node-a has address 192.168.2.49 inside spec.addresses entry "192.168.2.10-192.168.2.49""#
            ),
            "{message}"
        );
        assert!(!message.contains("node-b") && !message.contains("node-c"), "{message}");
        assert_eq!(condition(&status, condition_type::READY).0, "True", "a warning, the pool still allocates");

        let clear = pool_status(
            &web,
            allocator.pool("web"),
            Recorded::unsliced(&listing),
            None,
            &[],
            &node_addresses(&nodes[1..]),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(condition(&clear, condition_type::NODE_ADDRESS_IN_POOL).0, "False");
    }

    /// The `web` pool with `shop/front` allocated from it.
    fn web_with_one_service() -> (IPAddressPool, Allocator) {
        let web = pool(WEB);
        let mut allocator = Allocator::new();
        let mut config = pool_config(&web).expect("valid");
        config.service_allocation = None;
        allocator.set_pool(config);
        allocator.assign(&AllocationRequest::new(ServiceKey::new("shop", "front"))).expect("an address");
        (web, allocator)
    }

    #[test]
    fn status_lists_allocations_counts_and_generation() {
        let (web, allocator) = web_with_one_service();
        let status = pool_status(
            &web,
            allocator.pool("web"),
            Recorded::unsliced(&listing(&allocator, "web")),
            None,
            &[],
            &[],
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.allocations.len(), 1);
        assert_eq!(
            (status.allocations[0].namespace.as_str(), status.allocations[0].ips[0].as_str()),
            ("shop", "192.168.2.10")
        );
        assert_eq!(status.assigned_summary.as_deref(), Some("v4=1"));
        assert_eq!(status.available_summary.as_deref(), Some("v4=39"));
        assert_eq!(condition(&status, condition_type::READY), ("True", "Allocatable", ""));
        assert_eq!(condition(&status, condition_type::CONFLICT).0, "False");
    }

    #[test]
    fn a_reported_address_conflict_becomes_a_condition_naming_address_service_mac_and_node() {
        let (web, allocator) = web_with_one_service();
        let conflict = |address: &str, in_use: bool| {
            let conflict = PublishedConflict {
                address: address.to_owned(),
                mac: "02:00:c0:a8:02:fa".to_owned(),
                interface: "eth0".to_owned(),
                in_use,
            };
            ("node-1".to_owned(), conflict)
        };
        let listing = listing(&allocator, "web");
        let status = |reported: &[(String, PublishedConflict)]| {
            pool_status(
                &web,
                allocator.pool("web"),
                Recorded::unsliced(&listing),
                None,
                reported,
                &[],
                Timestamp::UNIX_EPOCH,
            )
        };
        let clean = status(&[conflict("10.9.9.9", false)]);
        assert_eq!(condition(&clean, condition_type::ADDRESS_CONFLICT), ("False", "NoAddressConflict", ""));

        let claimed = status(&[conflict("192.168.2.10", false)]);
        let (state, reason, message) = condition(&claimed, condition_type::ADDRESS_CONFLICT);
        assert_eq!((state, reason), ("True", "AddressClaimed"));
        for part in ["192.168.2.10", "shop/front", "02:00:c0:a8:02:fa", "node-1", "eth0", "still announced"] {
            assert!(message.contains(part), "{part} missing from {message}");
        }
        assert_eq!(condition(&claimed, condition_type::READY).0, "True", "a claimed address does not stop the pool");

        let in_use = status(&[conflict("192.168.2.10", true)]);
        let (state, reason, message) = condition(&in_use, condition_type::ADDRESS_CONFLICT);
        assert_eq!((state, reason), ("True", "AddressInUse"));
        assert!(message.contains("not announced"), "{message}");
    }

    #[test]
    fn a_huge_pool_lists_the_first_allocations_and_says_where_all_of_them_are() {
        let web = pool(
            "
apiVersion: ironlb.io/v1alpha1
kind: IPAddressPool
metadata: {name: big, generation: 1}
spec: {addresses: [10.0.0.0/8]}
",
        );
        let mut allocator = Allocator::new();
        allocator.set_pool(pool_config(&web).expect("valid"));
        for n in 0..5_000 {
            allocator.assign(&AllocationRequest::new(ServiceKey::new("bench", format!("svc-{n:05}")))).expect("room");
        }
        let listing = listing(&allocator, "big");
        assert_eq!(listing.allocations.len(), 5_000, "the listing leaves nobody out");
        let mut record = Record::default();
        record.set_pool("big", &listing.allocations);
        let summary = record.summary("big", LISTED_INLINE);
        let status = pool_status(
            &web,
            allocator.pool("big"),
            Recorded { listing: &listing, record: summary, inline: LISTED_INLINE },
            None,
            &[],
            &[],
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(status.allocations.len(), LISTED_INLINE);
        assert_eq!(status.allocations.last().map(|a| a.name.clone()), Some(format!("svc-{:05}", LISTED_INLINE - 1)));
        let where_ = status.allocation_record.as_ref().expect("the record is named");
        assert_eq!((where_.allocations, where_.listed_here, where_.slices.len()), (5_000, 50, 50));
        assert_eq!(where_.selector, "ironlb.io/pool=big");
        assert_eq!(status.ipv4.as_ref().map(|u| u.assigned.as_str()), Some("5000"));
        assert_eq!(condition(&status, condition_type::READY), ("True", "Allocatable", ""));
        let bytes = serde_json::to_string(&status).expect("serializes").len();
        assert!(bytes < 32 * 1024, "the pool status stays small at any size: {bytes} bytes");
    }

    #[test]
    fn while_an_older_speaker_runs_the_status_lists_what_it_read_within_its_budget() {
        use super::{SLICE_UNAWARE_BUDGET, listed_inline};
        let allocation = |n: usize| Allocation {
            namespace: "n".repeat(63),
            name: format!("{n:05}{}", "s".repeat(58)),
            ips: vec![format!("10.0.{}.{}", n / 256, n % 256), format!("fd00::{n:x}")],
            external_traffic_policy: Some("Local".to_owned()),
            serving: true,
            node: Some("w".repeat(63)),
            interface: Some("enp0s31f6.4094".to_owned()),
            in_use: Vec::new(),
        };
        let all: Vec<Allocation> = (0..6_000).map(allocation).collect();
        assert_eq!(listed_inline(&all, false), LISTED_INLINE);
        assert_eq!(listed_inline(&all[..10], false), 10);
        let listed = listed_inline(&all, true);
        let bytes: usize = all[..listed].iter().map(|a| serde_json::to_string(a).expect("json").len() + 1).sum();
        assert!(listed > 2_000 && bytes <= SLICE_UNAWARE_BUDGET, "{listed} entries, {bytes} bytes");
        assert_eq!(listed_inline(&all[..100], true), 100, "a small pool is listed whole");
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let mut web = pool(WEB);
        let mut allocator = Allocator::new();
        allocator.set_pool(pool_config(&web).expect("valid"));
        let listing = listing(&allocator, "web");
        let first = pool_status(
            &web,
            allocator.pool("web"),
            Recorded::unsliced(&listing),
            None,
            &[],
            &[],
            Timestamp::UNIX_EPOCH,
        );
        web.status = Some(first.clone());
        let later = Timestamp::from_second(1_000).expect("a time");
        let second = pool_status(&web, allocator.pool("web"), Recorded::unsliced(&listing), None, &[], &[], later);
        assert_eq!(first.conditions, second.conditions);
    }
}
