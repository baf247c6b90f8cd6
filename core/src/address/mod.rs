//! The address library: pool entries as numbers, and sets of them.
//!
//! Data flow: the strings in `IPAddressPool.spec.addresses` are parsed here
//! ([`parse_entry`]) into family-tagged [`AddressRange`]s; the operator turns a pool into one
//! [`IntervalSet`] per [`Family`] and allocates from the gaps of its "assigned" set. Every
//! operation is arithmetic on `u128` intervals, so a /8 or an IPv6 /64 is as cheap as a /30;
//! nothing here ever enumerates a range. Counts are [`AddressCount`]s, exact up to 2^128.

mod count;
mod error;
mod interval;
mod node;
mod range;
mod reserved;
mod set;

pub use count::AddressCount;
pub(crate) use error::Piece;
pub use error::{AddressError, EntryProblem};
pub use interval::{Interval, Prefixes, is_buggy_ipv4};
pub use node::{NodeAddressInPool, node_addresses_in_pool};
pub use range::{AddressRange, Family, Prefix, address_number, parse_entry};
pub use reserved::{RESERVED_BLOCKS, ReservedBlock, ReservedUse, first_reserved_overlap};
pub use set::IntervalSet;
