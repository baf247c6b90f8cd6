//! Why a Service could not be given an address.
//!
//! Data flow: [`Allocator::assign`](super::Allocator::assign) and
//! [`Allocator::restore`](super::Allocator::restore) return an [`AllocationError`]; the glue puts
//! its `Display` text in an `AllocationFailed` Event on the Service and counts it in the
//! allocation-failure metric under [`AllocationError::reason`]. The text is written for the
//! Service's owner: it names the pool, the family, the address and the `namespace/name` holding
//! it, and what to change.

use std::fmt;
use std::net::IpAddr;

use ironlb_core::address::Family;
use thiserror::Error;

use super::pool::Exclusion;
use super::request::ServiceKey;
use super::sharing::ShareRefusal;

/// Why an allocation failed. See [`AllocationError::reason`] for the metric label.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AllocationError {
    /// Auto-assignment found no pool it may use.
    #[error("no pool matches: {why}")]
    NoPoolMatches {
        /// Why none does.
        why: NoPoolMatch,
    },
    /// The pools that could serve the Service have no free address of a family it needs.
    #[error("no free {family} address left in {}", pool_list(.pools))]
    PoolExhausted {
        /// The family that ran out.
        family: Family,
        /// The pools tried, in the order they were tried.
        pools: Vec<String>,
    },
    /// A requested address lies in no pool.
    #[error("requested address {address} is in no IPAddressPool")]
    AddressNotInAnyPool {
        /// The address.
        address: IpAddr,
    },
    /// A requested address ends in `.0` or `.255` and its pool has `avoidBuggyIPs`.
    #[error("requested address {address} ends in .0 or .255, which pool {pool} skips (avoidBuggyIPs)")]
    AddressAvoided {
        /// The address.
        address: IpAddr,
        /// Its pool.
        pool: String,
    },
    /// A requested (or restored) address is held by a Service this one may not share it with.
    #[error("address {address} is already held by {holder}, {why}")]
    AddressInUse {
        /// The address.
        address: IpAddr,
        /// A Service holding it.
        holder: ServiceKey,
        /// Why the two may not share it.
        why: ShareRefusal,
    },
    /// No pool the Service may use has ranges of every family it needs.
    #[error("{}", family_unavailable(.families, .pools))]
    FamilyUnavailable {
        /// The families needed together (from one pool).
        families: Vec<Family>,
        /// The pools considered.
        pools: Vec<String>,
    },
    /// A requested address is of a family the Service does not have (`spec.ipFamilies`).
    #[error("requested address {address} is {}, but the Service's families are {}", family_of(.address), family_list(.families))]
    AddressFamilyMismatch {
        /// The address.
        address: IpAddr,
        /// The Service's families.
        families: Vec<Family>,
    },
    /// More than one requested address of one family.
    #[error("at most one {family} address may be requested, got {}", address_list(.addresses))]
    TooManyAddresses {
        /// The family.
        family: Family,
        /// The addresses of that family that were requested.
        addresses: Vec<IpAddr>,
    },
    /// The annotations and requested addresses contradict each other.
    #[error("{0}")]
    ConflictingRequest(Contradiction),
    /// `ironlb.io/address-pool` names a pool that does not exist.
    #[error("pool {pool:?} named by the address-pool annotation does not exist")]
    UnknownPool {
        /// The name as written.
        pool: String,
    },
    /// The pool the Service asked for (by name or address) does not serve it.
    #[error("pool {pool} does not serve this Service: {why}")]
    PoolExcludesService {
        /// The pool.
        pool: String,
        /// Which part of its `serviceAllocation` keeps the Service out.
        why: Exclusion,
    },
}

impl AllocationError {
    /// A stable CamelCase label for Event reasons and the failure metric.
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::NoPoolMatches { .. } => "NoPoolMatches",
            Self::PoolExhausted { .. } => "PoolExhausted",
            Self::AddressNotInAnyPool { .. } => "AddressNotInAnyPool",
            Self::AddressAvoided { .. } => "AddressAvoided",
            Self::AddressInUse { .. } => "AddressInUse",
            Self::FamilyUnavailable { .. } => "FamilyUnavailable",
            Self::AddressFamilyMismatch { .. } => "AddressFamilyMismatch",
            Self::TooManyAddresses { .. } => "TooManyAddresses",
            Self::ConflictingRequest(_) => "ConflictingRequest",
            Self::UnknownPool { .. } => "UnknownPool",
            Self::PoolExcludesService { .. } => "PoolExcludesService",
        }
    }
}

/// Why auto-assignment had no pool to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoPoolMatch {
    /// There is no pool at all.
    NoPools,
    /// Every pool has `autoAssign: false`.
    NoneAutoAssign {
        /// The pools, which serve only Services that name them or request their addresses.
        pools: Vec<String>,
    },
    /// Every auto-assign pool's `serviceAllocation` keeps the Service out.
    ExcludedByServiceAllocation {
        /// Each auto-assign pool and why it refuses the Service.
        pools: Vec<(String, Exclusion)>,
    },
}

impl fmt::Display for NoPoolMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPools => f.write_str("no IPAddressPool exists"),
            Self::NoneAutoAssign { pools } => write!(
                f,
                "no pool has autoAssign: true ({} must be named with ironlb.io/address-pool or by a requested address)",
                pool_list(pools)
            ),
            Self::ExcludedByServiceAllocation { pools } => {
                f.write_str("the serviceAllocation of every auto-assign pool excludes this Service (")?;
                for (index, (pool, why)) in pools.iter().enumerate() {
                    let separator = if index == 0 { "" } else { "; " };
                    write!(f, "{separator}pool {pool}: {why}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// How a request contradicts itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contradiction {
    /// `ironlb.io/address-pool` names one pool, a requested address lies in another.
    PoolAndAddress {
        /// The pool named by the annotation.
        pool: String,
        /// The requested address.
        address: IpAddr,
        /// The pool that holds the address.
        address_pool: String,
    },
    /// The requested addresses lie in two pools; a Service's addresses come from one pool.
    AddressesInDifferentPools {
        /// The first address and its pool.
        first: (IpAddr, String),
        /// An address of another pool, and that pool.
        second: (IpAddr, String),
    },
}

impl fmt::Display for Contradiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PoolAndAddress { pool, address, address_pool } => write!(
                f,
                "the address-pool annotation names pool {pool}, but requested address {address} is in pool {address_pool}"
            ),
            Self::AddressesInDifferentPools { first, second } => write!(
                f,
                "requested addresses {} (pool {}) and {} (pool {}) are in different pools; a Service's addresses must come from one pool",
                first.0, first.1, second.0, second.1
            ),
        }
    }
}

/// `pool a` or `pools a, b`.
fn pool_list(pools: &[String]) -> String {
    match pools {
        [one] => format!("pool {one}"),
        _ => format!("pools {}", pools.join(", ")),
    }
}

/// `IPv4` or `IPv4 and IPv6`.
fn family_list(families: &[Family]) -> String {
    families.iter().map(Family::to_string).collect::<Vec<_>>().join(" and ")
}

fn family_of(address: &IpAddr) -> Family {
    Family::of(*address)
}

fn address_list(addresses: &[IpAddr]) -> String {
    addresses.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
}

fn family_unavailable(families: &[Family], pools: &[String]) -> String {
    match (families, pools) {
        ([one], [pool]) => format!("pool {pool} has no {one} range"),
        ([one], _) => format!("none of {} has an {one} range", pool_list(pools)),
        _ => format!(
            "the Service needs {} from one pool (RequireDualStack), and none of {} has both",
            family_list(families),
            pool_list(pools)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_the_user_must_change() {
        let exhausted = AllocationError::PoolExhausted { family: Family::V4, pools: vec!["default".to_owned()] };
        assert_eq!(exhausted.to_string(), "no free IPv4 address left in pool default");
        let in_use = AllocationError::AddressInUse {
            address: "192.168.2.10".parse().expect("address"),
            holder: ServiceKey::new("shop", "web"),
            why: ShareRefusal::HolderDoesNotShare,
        };
        assert_eq!(
            in_use.to_string(),
            "address 192.168.2.10 is already held by shop/web, which does not allow sharing (no ironlb.io/allow-shared-ip)"
        );
        let dual = AllocationError::FamilyUnavailable {
            families: vec![Family::V4, Family::V6],
            pools: vec!["a".to_owned(), "b".to_owned()],
        };
        assert_eq!(
            dual.to_string(),
            "the Service needs IPv4 and IPv6 from one pool (RequireDualStack), and none of pools a, b has both"
        );
    }

    #[test]
    fn reasons_are_stable_camel_case_labels() {
        let unknown = AllocationError::UnknownPool { pool: "nope".to_owned() };
        assert_eq!(unknown.reason(), "UnknownPool");
        let none = AllocationError::NoPoolMatches { why: NoPoolMatch::NoPools };
        assert_eq!(none.reason(), "NoPoolMatches");
        assert_eq!(none.to_string(), "no pool matches: no IPAddressPool exists");
    }
}
