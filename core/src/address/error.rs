//! Why a pool entry is refused, worded once for both the API server and the operator.
//!
//! Each [`EntryProblem`] has a message template made of [`Piece`]s. The same pieces render the
//! Rust message ([`AddressError`]'s `Display`) and the CEL `messageExpression` in the CRD (see
//! `v1alpha1::cel`), so `kubectl apply` and the operator's `Invalid` condition say the same words.

use thiserror::Error;

use super::{Family, Prefix, ReservedBlock};

/// A pool entry that is not a usable CIDR or `start-end` range.
///
/// The message names the entry as written and, where one exists, the spelling that was meant.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{}", self.message())]
pub enum AddressError {
    /// Neither a CIDR, a range, nor a single address.
    Malformed {
        /// The entry as written.
        entry: String,
    },
    /// An IPv6 address with a `%zone` suffix: zones only mean something on one host.
    Zone {
        /// The entry as written.
        entry: String,
    },
    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`): the same host as the plain IPv4 address,
    /// so allowing both spellings would let one address sit in two pools.
    Ipv4Mapped {
        /// The entry as written.
        entry: String,
    },
    /// A bare address; pools take a `/32` or `/128` for that.
    SingleAddress {
        /// The entry as written.
        entry: String,
        /// The entry as a one-address CIDR.
        cidr: String,
    },
    /// A CIDR whose address has bits set beyond the prefix length.
    HostBitsSet {
        /// The entry as written.
        entry: String,
        /// The network the entry probably meant.
        masked: Prefix,
    },
    /// A range with one IPv4 and one IPv6 end.
    MixedFamilies {
        /// The entry as written.
        entry: String,
    },
    /// An entry sharing addresses with a block no LAN host can use (multicast, loopback, ...).
    Reserved {
        /// The entry as written.
        entry: String,
        /// The lowest such block.
        reserved: ReservedBlock,
    },
    /// A range whose start comes after its end.
    Reversed {
        /// The entry as written.
        entry: String,
        /// The entry with its ends swapped.
        swapped: String,
    },
}

impl AddressError {
    /// The entry as written in the pool.
    pub fn entry(&self) -> &str {
        match self {
            Self::Malformed { entry }
            | Self::Zone { entry }
            | Self::Ipv4Mapped { entry }
            | Self::SingleAddress { entry, .. }
            | Self::HostBitsSet { entry, .. }
            | Self::MixedFamilies { entry }
            | Self::Reserved { entry, .. }
            | Self::Reversed { entry, .. } => entry,
        }
    }

    /// The class of problem, without the details.
    pub fn problem(&self) -> EntryProblem {
        match self {
            Self::Malformed { .. } => EntryProblem::Malformed,
            Self::Zone { .. } => EntryProblem::Zone,
            Self::Ipv4Mapped { .. } => EntryProblem::Ipv4Mapped,
            Self::SingleAddress { .. } => EntryProblem::SingleAddress,
            Self::HostBitsSet { .. } => EntryProblem::HostBitsSet,
            Self::MixedFamilies { .. } => EntryProblem::MixedFamilies,
            Self::Reserved { .. } => EntryProblem::Reserved,
            Self::Reversed { .. } => EntryProblem::Reversed,
        }
    }

    /// The corrected spelling the message proposes, if any.
    pub fn suggestion(&self) -> Option<String> {
        match self {
            Self::SingleAddress { cidr, .. } => Some(cidr.clone()),
            Self::HostBitsSet { masked, .. } => Some(masked.to_string()),
            Self::Reversed { swapped, .. } => Some(swapped.clone()),
            _ => None,
        }
    }

    fn message(&self) -> String {
        let mut message = String::new();
        self.render(self.problem().message_pieces(), &mut message);
        message
    }

    fn render(&self, pieces: &[Piece], out: &mut String) {
        for piece in pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Entry => out.push_str(self.entry()),
                Piece::Suggestion => out.push_str(&self.suggestion().unwrap_or_default()),
                Piece::PrefixLength => {
                    if let Self::HostBitsSet { masked, .. } = self {
                        out.push_str(&masked.prefix_len().to_string());
                    }
                }
                Piece::Reserved => {
                    if let Self::Reserved { reserved, .. } = self {
                        out.push_str(&reserved.to_string());
                    }
                }
                Piece::ByFamily { v4, v6 } => {
                    let ipv6 = matches!(self, Self::HostBitsSet { masked, .. } if masked.family() == Family::V6);
                    self.render(if ipv6 { v6 } else { v4 }, out);
                }
            }
        }
    }
}

/// The classes of refused pool entries, in the order they are checked: an entry has exactly
/// one problem, the first that applies.
///
/// The syntax checks come first. [`Reserved`](Self::Reserved) applies to any entry that names
/// addresses (a CIDR, a same-family range, a bare address), judged on the addresses it means:
/// the masked network, the addresses between the ends in either order. It comes before the
/// checks that suggest a corrected spelling, because no spelling of a reserved entry is usable:
/// `127.0.0.1/8` is refused as loopback, not told to become `127.0.0.0/8`, and `::1` is not
/// told to become `::1/128`. Mixed families apply only to ranges, single address and host bits
/// only to the other shapes, so moving mixed families first changes no entry's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryProblem {
    /// See [`AddressError::Zone`].
    Zone,
    /// See [`AddressError::Ipv4Mapped`].
    Ipv4Mapped,
    /// See [`AddressError::Malformed`].
    Malformed,
    /// See [`AddressError::MixedFamilies`].
    MixedFamilies,
    /// See [`AddressError::Reserved`].
    Reserved,
    /// See [`AddressError::SingleAddress`].
    SingleAddress,
    /// See [`AddressError::HostBitsSet`].
    HostBitsSet,
    /// See [`AddressError::Reversed`].
    Reversed,
}

/// A part of a refusal message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Fixed wording.
    Text(&'static str),
    /// The entry exactly as the user wrote it.
    Entry,
    /// The corrected spelling ([`AddressError::suggestion`]).
    Suggestion,
    /// The prefix length of a CIDR entry.
    PrefixLength,
    /// The reserved block an entry overlaps, with its use: `224.0.0.0/4 (multicast)`.
    Reserved,
    /// Wording that depends on the entry's family (used where CEL cannot compute the
    /// suggestion for IPv6, see `v1alpha1::cel`).
    ByFamily {
        /// Pieces for an IPv4 entry.
        v4: &'static [Piece],
        /// Pieces for an IPv6 entry.
        v6: &'static [Piece],
    },
}

impl EntryProblem {
    /// Every problem, in checking order.
    pub const ALL: [Self; 8] = [
        Self::Zone,
        Self::Ipv4Mapped,
        Self::Malformed,
        Self::MixedFamilies,
        Self::Reserved,
        Self::SingleAddress,
        Self::HostBitsSet,
        Self::Reversed,
    ];

    /// A CamelCase name, for Event reasons and metric labels.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Zone => "AddressWithZone",
            Self::Ipv4Mapped => "Ipv4MappedAddress",
            Self::Malformed => "MalformedAddress",
            Self::SingleAddress => "SingleAddress",
            Self::HostBitsSet => "HostBitsSet",
            Self::MixedFamilies => "MixedFamilyRange",
            Self::Reserved => "ReservedAddresses",
            Self::Reversed => "ReversedRange",
        }
    }

    /// The message, as pieces: the entry is always quoted first so every message starts the
    /// same way and can be prefixed with where the entry sits (`spec.addresses entry ...`).
    pub(crate) const fn message_pieces(self) -> &'static [Piece] {
        use Piece::{ByFamily, Entry, PrefixLength, Reserved, Suggestion, Text};
        match self {
            Self::Zone => &[Text("\""), Entry, Text("\" has an IPv6 zone (%...); pool addresses cannot carry a zone")],
            Self::Ipv4Mapped => &[
                Text("\""),
                Entry,
                Text("\" uses an IPv4-mapped IPv6 address (::ffff:a.b.c.d); write the IPv4 address itself"),
            ],
            Self::Malformed => &[
                Text("\""),
                Entry,
                Text(
                    "\" is not a valid CIDR (like 192.168.2.0/24) or start-end range (like 192.168.2.10-192.168.2.49)",
                ),
            ],
            Self::SingleAddress => &[
                Text("\""),
                Entry,
                Text("\" is a single address, not a CIDR or range; did you mean \""),
                Suggestion,
                Text("\"?"),
            ],
            // CEL can compute the masked IPv4 network but not print an IPv6 one within the
            // API server's cost budget, so IPv6 gets an instruction instead of the spelling.
            Self::HostBitsSet => &[
                Text("\""),
                Entry,
                Text("\" has host bits set; "),
                ByFamily {
                    v4: &[Text("did you mean \""), Suggestion, Text("\"?")],
                    v6: &[Text("write the first address of its /"), PrefixLength, Text(" block")],
                },
            ],
            Self::MixedFamilies => {
                &[Text("\""), Entry, Text("\" mixes IPv4 and IPv6; both ends of a range must be the same family")]
            }
            Self::Reserved => {
                &[Text("\""), Entry, Text("\" overlaps "), Reserved, Text(": no host on a LAN can use these addresses")]
            }
            Self::Reversed => &[
                Text("\""),
                Entry,
                Text("\" is reversed: its start comes after its end; did you mean \""),
                Suggestion,
                Text("\"?"),
            ],
        }
    }

    /// The message with a stand-in for the entry, for when the real one cannot be shown
    /// (the API server drops a `messageExpression` result that contains a line break).
    pub(crate) fn generic_message(self) -> String {
        fn render(pieces: &[Piece], out: &mut String) {
            for piece in pieces {
                match piece {
                    Piece::Text(text) => out.push_str(text),
                    Piece::Entry | Piece::Suggestion | Piece::PrefixLength | Piece::Reserved => {
                        out.push_str("...");
                    }
                    Piece::ByFamily { v4, .. } => render(v4, out),
                }
            }
        }
        let mut message = String::new();
        render(self.message_pieces(), &mut message);
        message
    }
}
