//! Validation of an `IPAddressPool` spec in Rust, mirroring what the API server enforces.
//!
//! Data flow: the operator calls [`IPAddressPoolSpec::validate`] on every pool it reads. For a
//! pool the API server accepted, the per-entry checks always pass (they are the CEL rules, same
//! order, same messages); they still run because a pool may have been stored before the rules
//! existed, or by an API server that ratchets unchanged invalid entries. The overlap check is
//! the one the API server cannot afford, and its failure becomes the `Invalid` condition.

use std::fmt;

use thiserror::Error;

use super::IPAddressPoolSpec;
use super::cel::ENTRY_PREFIX;
use crate::address::{AddressError, AddressRange, parse_entry};

/// One problem in a pool spec.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SpecError {
    /// `spec.addresses` is empty (the schema's `minItems: 1`).
    #[error("spec.addresses must list at least one CIDR or start-end range")]
    NoAddresses,

    /// An entry is refused; the message is the API server's, word for word.
    #[error("{}", api_server_message(.source))]
    InvalidAddress {
        /// Position in `spec.addresses`.
        index: usize,
        /// What is wrong with it.
        source: AddressError,
    },

    /// Two entries share addresses (a literal duplicate included).
    #[error("spec.addresses entries \"{first}\" and \"{second}\" overlap")]
    OverlappingEntries {
        /// Position of the entry listed first.
        first_index: usize,
        /// The entry listed first.
        first: String,
        /// Position of the entry listed second.
        second_index: usize,
        /// The entry listed second.
        second: String,
    },
}

impl SpecError {
    /// The field the problem is about, as the API server names it: `spec.addresses[3]`.
    pub fn field(&self) -> String {
        match self {
            Self::NoAddresses => "spec.addresses".to_owned(),
            Self::InvalidAddress { index, .. } => format!("spec.addresses[{index}]"),
            Self::OverlappingEntries { second_index, .. } => format!("spec.addresses[{second_index}]"),
        }
    }

    /// A CamelCase reason for the `Invalid` condition, Events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoAddresses => "NoAddresses",
            Self::InvalidAddress { source, .. } => source.problem().reason(),
            Self::OverlappingEntries { .. } => "OverlappingEntries",
        }
    }
}

/// The API server's message for a refused entry: the `messageExpression`, or its static
/// fallback when the result contains a line break (which the API server rejects).
fn api_server_message(error: &AddressError) -> String {
    let message = format!("{ENTRY_PREFIX}{error}");
    if message.contains('\n') { format!("{ENTRY_PREFIX}{}", error.problem().generic_message()) } else { message }
}

/// Every problem found in a pool spec, in the order of `spec.addresses`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub struct InvalidPoolSpec {
    /// The problems; never empty.
    pub errors: Vec<SpecError>,
}

impl fmt::Display for InvalidPoolSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, error) in self.errors.iter().enumerate() {
            if n > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl IPAddressPoolSpec {
    /// Checks the spec and returns its entries parsed, in `spec.addresses` order.
    ///
    /// Applies the API server's per-entry rules (same order, same messages) and, in addition,
    /// refuses entries that overlap each other.
    ///
    /// # Errors
    ///
    /// Every problem found, so one status update can report them all.
    pub fn validate(&self) -> Result<Vec<AddressRange>, InvalidPoolSpec> {
        if self.addresses.is_empty() {
            return Err(InvalidPoolSpec { errors: vec![SpecError::NoAddresses] });
        }
        let mut errors = Vec::new();
        let mut ranges = Vec::with_capacity(self.addresses.len());
        for (index, entry) in self.addresses.iter().enumerate() {
            match parse_entry(entry) {
                Ok(range) => ranges.push((index, range)),
                Err(source) => errors.push(SpecError::InvalidAddress { index, source }),
            }
        }
        errors.extend(self.overlaps(&ranges));
        errors.sort_by_key(|error| match error {
            SpecError::NoAddresses => 0,
            SpecError::InvalidAddress { index, .. } => *index,
            SpecError::OverlappingEntries { second_index, .. } => *second_index,
        });
        if errors.is_empty() {
            Ok(ranges.into_iter().map(|(_, range)| range).collect())
        } else {
            Err(InvalidPoolSpec { errors })
        }
    }

    /// Each entry that overlaps an earlier-sorted one, paired with it. Sorting by address makes
    /// this `O(n log n)`: an entry overlaps something before it exactly when it starts at or
    /// before the furthest end seen so far in its family.
    fn overlaps(&self, ranges: &[(usize, AddressRange)]) -> Vec<SpecError> {
        let mut by_address: Vec<(usize, AddressRange)> = ranges.to_vec();
        by_address.sort_by_key(|&(index, range)| (range.family(), range.interval().start(), index));
        let mut furthest: Option<(usize, AddressRange)> = None;
        let mut found = Vec::new();
        for (index, range) in by_address {
            match furthest {
                Some((seen_index, seen)) if seen.overlaps(range) => {
                    let (first_index, second_index) = (seen_index.min(index), seen_index.max(index));
                    found.push(SpecError::OverlappingEntries {
                        first_index,
                        first: self.addresses[first_index].clone(),
                        second_index,
                        second: self.addresses[second_index].clone(),
                    });
                    if range.interval().end() > seen.interval().end() {
                        furthest = Some((index, range));
                    }
                }
                _ => furthest = Some((index, range)),
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(addresses: &[&str]) -> IPAddressPoolSpec {
        IPAddressPoolSpec::new(addresses.iter().copied())
    }

    /// The message for a pool holding only `entry`; these are the API server's words, checked
    /// against a real one by `tests/apiserver_conformance.rs`.
    fn refusal(entry: &str) -> String {
        match pool(&[entry]).validate() {
            Ok(ranges) => panic!("{entry:?} was accepted as {ranges:?}"),
            Err(invalid) => invalid.to_string(),
        }
    }

    #[test]
    fn each_bad_entry_class_gets_the_api_server_message() {
        let cases = [
            (
                "10.0.0.300/24",
                r#"spec.addresses entry "10.0.0.300/24" is not a valid CIDR (like 192.168.2.0/24) or start-end range (like 192.168.2.10-192.168.2.49)"#,
            ),
            (
                "hello",
                r#"spec.addresses entry "hello" is not a valid CIDR (like 192.168.2.0/24) or start-end range (like 192.168.2.10-192.168.2.49)"#,
            ),
            (
                "192.168.2.1/24",
                r#"spec.addresses entry "192.168.2.1/24" has host bits set; did you mean "192.168.2.0/24"?"#,
            ),
            ("10.0.0.5/30", r#"spec.addresses entry "10.0.0.5/30" has host bits set; did you mean "10.0.0.4/30"?"#),
            (
                "fd00::1/64",
                r#"spec.addresses entry "fd00::1/64" has host bits set; write the first address of its /64 block"#,
            ),
            (
                "192.168.2.10-fd00::1",
                r#"spec.addresses entry "192.168.2.10-fd00::1" mixes IPv4 and IPv6; both ends of a range must be the same family"#,
            ),
            (
                "192.168.2.49-192.168.2.10",
                r#"spec.addresses entry "192.168.2.49-192.168.2.10" is reversed: its start comes after its end; did you mean "192.168.2.10-192.168.2.49"?"#,
            ),
            (
                "fd00::ff - fd00::10",
                r#"spec.addresses entry "fd00::ff - fd00::10" is reversed: its start comes after its end; did you mean "fd00::10-fd00::ff"?"#,
            ),
            (
                "192.168.2.10",
                r#"spec.addresses entry "192.168.2.10" is a single address, not a CIDR or range; did you mean "192.168.2.10/32"?"#,
            ),
            (
                "fe80::1%eth0/64",
                r#"spec.addresses entry "fe80::1%eth0/64" has an IPv6 zone (%...); pool addresses cannot carry a zone"#,
            ),
            (
                "::ffff:192.168.2.0/120",
                r#"spec.addresses entry "::ffff:192.168.2.0/120" uses an IPv4-mapped IPv6 address (::ffff:a.b.c.d); write the IPv4 address itself"#,
            ),
        ];
        for (entry, message) in cases {
            assert_eq!(refusal(entry), message);
        }
    }

    /// Entries no LAN address can be: each names the entry, the lowest reserved block it shares
    /// addresses with, and why. Judged on the addresses meant, so a spelling problem (host bits,
    /// reversed, a bare address) does not hide it.
    #[test]
    fn entries_overlapping_reserved_blocks_name_the_block_and_why() {
        let cases = [
            ("224.0.0.0/24", "224.0.0.0/4 (multicast)"),
            ("ff02::/16", "ff00::/8 (multicast)"),
            ("127.0.0.0/8", "127.0.0.0/8 (loopback)"),
            ("::1", "::1/128 (loopback)"),
            ("::1/128", "::1/128 (loopback)"),
            ("0.0.0.0/0", "0.0.0.0/8 (unspecified)"),
            ("::/0", "::/128 (unspecified)"),
            ("169.254.0.0/16", "169.254.0.0/16 (link-local)"),
            ("fe80::/64", "fe80::/10 (link-local)"),
            ("255.255.255.255/32", "255.255.255.255/32 (limited broadcast)"),
            ("126.0.0.0-128.0.0.0", "127.0.0.0/8 (loopback)"),
            ("128.0.0.0-126.0.0.0", "127.0.0.0/8 (loopback)"),
            ("127.0.0.1/8", "127.0.0.0/8 (loopback)"),
            (" 200.0.0.0 - 224.0.0.0 ", "224.0.0.0/4 (multicast)"),
            ("fe00::-ff00::", "fe80::/10 (link-local)"),
        ];
        for (entry, block) in cases {
            let expected =
                format!("spec.addresses entry \"{entry}\" overlaps {block}: no host on a LAN can use these addresses");
            assert_eq!(refusal(entry), expected);
        }
    }

    #[test]
    fn addresses_next_to_reserved_blocks_are_usable() {
        let usable = [
            "1.0.0.0/8",
            "126.255.255.255/32",
            "128.0.0.0/32",
            "169.253.255.255/32",
            "169.255.0.0/16",
            "223.255.255.255/32",
            "240.0.0.0-255.255.255.254",
            "::2/127",
            "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
            "fec0::/10",
        ];
        for entry in usable {
            assert!(pool(&[entry]).validate().is_ok(), "{entry} was refused: {:?}", pool(&[entry]).validate());
        }
    }

    #[test]
    fn empty_address_list_is_refused() {
        let errors = pool(&[]).validate().err().map(|invalid| invalid.errors);
        assert_eq!(errors, Some(vec![SpecError::NoAddresses]));
    }

    #[test]
    fn a_line_break_in_the_entry_falls_back_to_the_static_message() {
        assert_eq!(
            refusal("fd00::1\nfd00::2"),
            r#"spec.addresses entry "..." is not a valid CIDR (like 192.168.2.0/24) or start-end range (like 192.168.2.10-192.168.2.49)"#
        );
    }

    #[test]
    fn overlapping_entries_are_refused_naming_both() {
        let invalid = pool(&["10.0.0.0/24", "192.168.0.0/16", "10.0.0.200-10.0.1.5"]).validate().err();
        let errors = invalid.map(|invalid| invalid.errors).unwrap_or_default();
        assert_eq!(
            errors,
            vec![SpecError::OverlappingEntries {
                first_index: 0,
                first: "10.0.0.0/24".to_owned(),
                second_index: 2,
                second: "10.0.0.200-10.0.1.5".to_owned(),
            }]
        );
        assert_eq!(errors[0].field(), "spec.addresses[2]");
        assert_eq!(errors[0].to_string(), r#"spec.addresses entries "10.0.0.0/24" and "10.0.0.200-10.0.1.5" overlap"#);
    }

    #[test]
    fn same_range_spelled_twice_overlaps() {
        let invalid = pool(&["10.0.0.0/30", "10.0.0.0-10.0.0.3"]).validate();
        assert_eq!(invalid.err().map(|invalid| invalid.errors[0].reason()), Some("OverlappingEntries"));
    }

    #[test]
    fn ipv4_and_ipv6_entries_never_overlap() {
        // The same numbers, 10.0.0.0/8 and ::a00:0/104, in each family.
        let ranges = pool(&["10.0.0.0/8", "::a00:0/104"]).validate();
        assert_eq!(ranges.map(|ranges| ranges.len()), Ok(2));
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let invalid = pool(&["10.0.0.0/24", "bad", "10.0.0.1/24"]).validate().err();
        let fields: Vec<String> =
            invalid.iter().flat_map(|invalid| invalid.errors.iter().map(SpecError::field)).collect();
        assert_eq!(fields, ["spec.addresses[1]", "spec.addresses[2]"]);
    }

    #[test]
    fn tutorial_pool_is_valid() {
        let ranges = pool(&["192.168.2.10-192.168.2.49"]).validate();
        assert_eq!(ranges.map(|ranges| ranges[0].len().to_string()), Ok("40".to_owned()));
    }
}
