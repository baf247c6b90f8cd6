//! The CEL rules the API server runs on every `spec.addresses` entry.
//!
//! Data flow: `crdgen` renders these rules into the CRD (as `x-kubernetes-validations` on the
//! array's items, so `self` is one entry and a refusal names its index); the API server then
//! refuses a malformed pool at `kubectl apply`, before the operator ever sees it.
//! [`parse_entry`](crate::address::parse_entry) implements the same checks in the same order and
//! both render their messages from the same [`Piece`]s, so the words match.
//!
//! Kubernetes CEL (1.30+) has `isIP`/`ip`/`isCIDR`/`cidr` and the strings extension, but no
//! variables, no ordering of addresses, and the API server refuses a rule whose *estimated* cost
//! is too high. That estimate treats any string of unknown length (such as `string(ip(x))`) as
//! unbounded, so every string here is cut from the entry itself (at most [`MAX_ENTRY_LENGTH`])
//! or is a literal. Hence:
//! - one rule per [`EntryProblem`], each guarded so that exactly one rule fails per bad entry;
//! - `[x].map(v, ...)` binds an intermediate value to a name;
//! - a reversed range is found by a binary search over prefix lengths with
//!   `cidr(..).containsIP(..)` for the first bit where the ends differ (CEL cannot order
//!   addresses);
//! - the masked network suggested for an IPv4 CIDR with host bits is computed with integer
//!   arithmetic on the octets; for IPv6 the message says what to do instead;
//! - an entry overlapping a [reserved block](crate::address::RESERVED_BLOCKS) is found exactly,
//!   with the rule generated from the same table as the Rust check: a CIDR overlaps a block
//!   when either contains the other; a range `a-b` overlaps block `[f, l]` when `a <= l` and
//!   `b >= f` (or the same with the ends swapped, as the reversed check comes later). "At most
//!   `l`" and "at least `f`" compare with a constant, which CEL *can* do: the address lies in
//!   one of the few CIDR blocks covering `[0, l]` (or `[f, max]`), or in none of those covering
//!   the complement, whichever list is shorter.
//!
//! Overlapping entries within one pool are not checked here: comparing every pair of up to
//! [`MAX_ADDRESSES`] entries would exceed the API server's cost budget. Literal duplicates are
//! refused by `x-kubernetes-list-type: set`; other overlaps are reported by the operator through
//! [`IPAddressPoolSpec::validate`](super::IPAddressPoolSpec::validate) (the `Invalid` condition).

use schemars::Schema;
use serde::Serialize;
use serde_json::Value;

use crate::address::{AddressRange, EntryProblem, Family, Interval, Piece, Prefix, RESERVED_BLOCKS, ReservedBlock};

/// Most entries a pool may list; bounds the CEL cost estimate.
pub const MAX_ADDRESSES: u64 = 256;
/// Longest entry accepted; an IPv6 range with spaces around the dash fits comfortably.
pub const MAX_ENTRY_LENGTH: u64 = 100;
/// Where the entries sit, prefixed to every message so it reads on its own in an Event.
pub(crate) const ENTRY_PREFIX: &str = "spec.addresses entry ";

/// One `x-kubernetes-validations` rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CelRule {
    /// Must evaluate to true for a valid entry.
    pub(crate) rule: String,
    /// Names the entry and suggests a fix.
    pub(crate) message_expression: String,
    /// Used by the API server when the expression's result is unusable (a line break).
    pub(crate) message: String,
    /// Marks every refusal as an invalid value.
    pub(crate) reason: &'static str,
}

/// The entry with surrounding whitespace removed.
const TRIMMED: &str = "self.trim()";
const IS_RANGE: &str = "self.contains('-')";
const ZONED: &str = "self.contains('%')";
const RANGE_START: &str = "self.split('-')[0].trim()";
const RANGE_END: &str = "self.split('-')[1].trim()";
/// The address part of a CIDR entry.
const CIDR_ADDRESS: &str = "self.trim().split('/')[0]";

/// The rules for one entry, in [`EntryProblem::ALL`] order.
pub(crate) fn address_entry_rules() -> Vec<CelRule> {
    EntryProblem::ALL
        .into_iter()
        .map(|problem| CelRule {
            rule: valid_unless(problem),
            message_expression: message_expression(problem),
            message: format!("{ENTRY_PREFIX}{}", problem.generic_message()),
            reason: "FieldValueInvalid",
        })
        .collect()
}

/// Schema transform for `spec.addresses`: puts the entry rules on the items and makes the list a
/// set, so the API server itself refuses a literal duplicate; the description gets the reserved
/// blocks from their table, so `kubectl explain` and `docs/reference.md` list what is refused.
pub(crate) fn address_list_schema(schema: &mut Schema) {
    schema.insert("x-kubernetes-list-type".to_owned(), Value::from("set"));
    if let Some(Value::String(description)) = schema.get_mut("description") {
        description.push(' ');
        description.push_str(&reserved_blocks_description());
    }
    if let Some(items) = schema.get_mut("items").and_then(Value::as_object_mut) {
        let rules = address_entry_rules().into_iter().filter_map(|rule| serde_json::to_value(rule).ok());
        items.insert("x-kubernetes-validations".to_owned(), Value::Array(rules.collect()));
    }
}

/// One sentence naming every reserved block and why no LAN host can use it.
fn reserved_blocks_description() -> String {
    let blocks: Vec<String> = RESERVED_BLOCKS
        .iter()
        .map(|reserved| format!("`{}` ({})", reserved.block(), reserved.reserved_for()))
        .collect();
    format!("An entry sharing any address with a block no LAN host can use is refused: {}.", blocks.join(", "))
}

/// The rule for `problem`: true unless the entry has exactly that problem (an entry with an
/// earlier problem passes, so one bad entry yields one message).
fn valid_unless(problem: EntryProblem) -> String {
    match problem {
        EntryProblem::Zone => format!("!{ZONED}"),
        EntryProblem::Ipv4Mapped => format!("{ZONED} || !{}", any_part_mapped()),
        EntryProblem::Malformed => {
            format!("{ZONED} || {} || {}", any_part_mapped(), well_formed())
        }
        EntryProblem::MixedFamilies => format!("!({}) || {}", well_formed_range(), same_family()),
        EntryProblem::Reserved => format!(
            "({IS_RANGE} ? !({} && {}) || !{} : isCIDR({TRIMMED}) ? !{} : !isIP({TRIMMED}) || !{})",
            well_formed_range(),
            same_family(),
            range_reserved(RANGE_START, RANGE_END),
            cidr_reserved(),
            range_reserved(TRIMMED, TRIMMED)
        ),
        EntryProblem::SingleAddress => format!("!isIP({TRIMMED}) || {}", range_reserved(TRIMMED, TRIMMED)),
        EntryProblem::HostBitsSet => {
            format!("!isCIDR({TRIMMED}) || {} || cidr({TRIMMED}) == cidr({TRIMMED}).masked()", cidr_reserved())
        }
        EntryProblem::Reversed => {
            format!(
                "!({}) || !{} || {} || {}",
                well_formed_range(),
                same_family(),
                range_reserved(RANGE_START, RANGE_END),
                ends_in_order()
            )
        }
    }
}

/// The CEL computing [`AddressError::suggestion`](crate::address::AddressError::suggestion)
/// where a message shows it.
fn suggestion(problem: EntryProblem) -> String {
    match problem {
        EntryProblem::SingleAddress => {
            format!("{TRIMMED} + (ip({TRIMMED}).family() == 4 ? '/32' : '/128')")
        }
        EntryProblem::HostBitsSet => format!("{} + '/' + {}", masked_ipv4(), prefix_length()),
        EntryProblem::Reversed => format!("{RANGE_END} + '-' + {RANGE_START}"),
        EntryProblem::Zone
        | EntryProblem::Ipv4Mapped
        | EntryProblem::Malformed
        | EntryProblem::MixedFamilies
        | EntryProblem::Reserved => string_literal(""),
    }
}

/// The message pieces as one CEL string expression.
fn message_expression(problem: EntryProblem) -> String {
    let mut terms = vec![string_literal(ENTRY_PREFIX)];
    push_terms(problem, problem.message_pieces(), &mut terms);
    terms.join(" + ")
}

fn push_terms(problem: EntryProblem, pieces: &[Piece], terms: &mut Vec<String>) {
    for piece in pieces {
        terms.push(match piece {
            Piece::Text(text) => string_literal(text),
            Piece::Entry => "self".to_owned(),
            Piece::Suggestion => format!("({})", suggestion(problem)),
            Piece::PrefixLength => prefix_length(),
            Piece::Reserved => first_reserved_block(),
            // Only used for entries known to be a valid CIDR, which has a ':' exactly when IPv6.
            Piece::ByFamily { v4, v6 } => {
                let (mut v4_terms, mut v6_terms) = (Vec::new(), Vec::new());
                push_terms(problem, v4, &mut v4_terms);
                push_terms(problem, v6, &mut v6_terms);
                format!("({TRIMMED}.contains(':') ? {} : {})", v6_terms.join(" + "), v4_terms.join(" + "))
            }
        });
    }
}

/// A single-quoted CEL string literal.
fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The prefix length of a CIDR entry, as written (Go's parser admits only plain decimal).
fn prefix_length() -> String {
    format!("{TRIMMED}.substring({TRIMMED}.lastIndexOf('/') + 1)")
}

/// Whether an address-looking part (both ends of a two-ended range, else what precedes `/`) is
/// an IPv4-mapped IPv6 address, as in `parse_entry`. `ip()` refuses those, so the part is
/// re-read with every `ffff` changed to `fffe`: if that is an address while the original is
/// not, the original had valid syntax and was refused only for being mapped (`%` survives the
/// change, so a zone is not mistaken for it; zones are caught earlier anyway). The parts are
/// spelled out rather than mapped over a list so the cost estimate stays small.
fn any_part_mapped() -> String {
    let mapped = |part: &str| format!("(!isIP({part}) && isIP({part}.lowerAscii().replace('ffff', 'fffe')))");
    format!(
        "({IS_RANGE} ? size(self.split('-')) == 2 && ({} || {}) : {})",
        mapped(RANGE_START),
        mapped(RANGE_END),
        mapped(CIDR_ADDRESS)
    )
}

/// Exactly two dash-separated parts, both addresses (whitespace around them allowed).
fn two_address_ends() -> String {
    format!("size(self.split('-')) == 2 && isIP({RANGE_START}) && isIP({RANGE_END})")
}

fn well_formed_range() -> String {
    format!("{IS_RANGE} && {}", two_address_ends())
}

/// Both ends of a well-formed range are of one family.
fn same_family() -> String {
    format!("(ip({RANGE_START}).family() == ip({RANGE_END}).family())")
}

/// Whether a CIDR entry (its network: host bits do not change which block it is about) shares
/// an address with a reserved block.
fn cidr_reserved() -> String {
    format!("[cidr({TRIMMED}).masked()].all(e, {})", by_family("e.ip()", |family| any_reserved(family, cidr_overlaps)))
}

/// Whether the addresses between `start` and `end` (the ends of a well-formed, same-family
/// range, in either order; a single address is both ends) include a reserved one.
fn range_reserved(start: &str, end: &str) -> String {
    format!(
        "[ip({start})].all(a, [ip({end})].all(b, {}))",
        by_family("a", |family| any_reserved(family, range_overlaps))
    )
}

/// The reserved block a refused entry is named with: the lowest it overlaps, as in
/// [`first_reserved_overlap`](crate::address::first_reserved_overlap).
fn first_reserved_block() -> String {
    format!(
        "({IS_RANGE} ? {} : isCIDR({TRIMMED}) ? [cidr({TRIMMED}).masked()].map(e, {})[0] : {})",
        range_lowest_reserved(RANGE_START, RANGE_END),
        by_family("e.ip()", |family| lowest_reserved(family, cidr_overlaps)),
        range_lowest_reserved(TRIMMED, TRIMMED),
    )
}

/// [`first_reserved_block`] for the addresses between `start` and `end`.
fn range_lowest_reserved(start: &str, end: &str) -> String {
    format!(
        "[ip({start})].map(a, [ip({end})].map(b, {})[0])[0]",
        by_family("a", |family| lowest_reserved(family, range_overlaps))
    )
}

/// `ipv4 ? .. : ..` on the family of the address `address`.
fn by_family(address: &str, per_family: impl Fn(Family) -> String) -> String {
    format!("({address}.family() == 4 ? {} : {})", per_family(Family::V4), per_family(Family::V6))
}

fn reserved_blocks(family: Family) -> impl DoubleEndedIterator<Item = ReservedBlock> {
    RESERVED_BLOCKS.into_iter().filter(move |reserved| reserved.block().family() == family)
}

fn any_reserved(family: Family, overlaps: fn(Prefix) -> String) -> String {
    any_of(reserved_blocks(family).map(|reserved| overlaps(reserved.block())))
}

/// A chain of ternaries naming the first block of `family` that `overlaps` holds for; the last
/// block is named when no other is, as the entry is known to overlap one.
fn lowest_reserved(family: Family, overlaps: fn(Prefix) -> String) -> String {
    let mut blocks = reserved_blocks(family).rev();
    let last =
        blocks.next().map(|reserved| string_literal(&reserved.to_string())).unwrap_or_else(|| string_literal(""));
    blocks.fold(last, |otherwise, reserved| {
        format!("({} ? {} : {otherwise})", overlaps(reserved.block()), string_literal(&reserved.to_string()))
    })
}

/// Whether the masked CIDR entry `e` shares an address with `block`: one of two CIDR blocks
/// contains the other, or they are disjoint.
fn cidr_overlaps(block: Prefix) -> String {
    let block = string_literal(&block.to_string());
    format!("(e.containsCIDR({block}) || cidr({block}).containsCIDR(e))")
}

/// Whether the addresses between `a` and `b` (of the block's family, in either order) include
/// one of `block`: one end is not after the block's last address and the other not before its
/// first (for ordered ends `a <= b` that is `a <= last && b >= first`; with both orders tried,
/// a reversed range is judged on the addresses it spans, as in `parse_entry`).
fn range_overlaps(block: Prefix) -> String {
    let (family, interval) = (block.family(), block.range().interval());
    let not_after = |address: &str| address_within(address, family, Interval::new(0, interval.end()));
    let not_before =
        |address: &str| address_within(address, family, Interval::new(interval.start(), family.max_address()));
    any_of([all_of([not_after("a"), not_before("b")]), all_of([not_after("b"), not_before("a")])])
}

/// Whether the IP `address` of `family` lies in `interval` (none: in nothing).
fn address_within(address: &str, family: Family, interval: Option<Interval>) -> String {
    let Some(Membership { blocks, outside }) = interval.map(|interval| Membership::of(family, interval)) else {
        return "false".to_owned();
    };
    let inside_one = any_of(
        blocks.into_iter().map(|block| format!("cidr({}).containsIP({address})", string_literal(&block.to_string()))),
    );
    if outside { negated(&inside_one) } else { inside_one }
}

/// How CEL tells whether an address lies in an interval without ordering addresses: the
/// address is in one of `blocks`, or, when `outside`, in none of them.
#[derive(Debug, PartialEq, Eq)]
struct Membership {
    blocks: Vec<Prefix>,
    outside: bool,
}

impl Membership {
    /// The shorter test: the CIDR blocks covering `interval`, or those covering the rest of the
    /// family.
    fn of(family: Family, interval: Interval) -> Self {
        let blocks = |interval: Option<Interval>| -> Vec<Prefix> {
            interval
                .and_then(|interval| AddressRange::from_interval(family, interval))
                .map(|range| range.prefixes().collect())
                .unwrap_or_default()
        };
        let inside = blocks(Some(interval));
        let below = interval.start().checked_sub(1).and_then(|end| Interval::new(0, end));
        let above = interval.end().checked_add(1).and_then(|start| Interval::new(start, family.max_address()));
        let rest = [blocks(below), blocks(above)].concat();
        if inside.len() <= rest.len() {
            Self { blocks: inside, outside: false }
        } else {
            Self { blocks: rest, outside: true }
        }
    }
}

/// `a || b || ..`, with the constants `true` and `false` folded away.
fn any_of(terms: impl IntoIterator<Item = String>) -> String {
    joined(terms, " || ", "true", "false")
}

/// `a && b && ..`, with the constants `true` and `false` folded away.
fn all_of(terms: impl IntoIterator<Item = String>) -> String {
    joined(terms, " && ", "false", "true")
}

/// The terms joined by `operator`, where `absorbing` decides the result alone and `neutral`
/// changes nothing; parenthesized unless it is a single term.
fn joined(terms: impl IntoIterator<Item = String>, operator: &str, absorbing: &str, neutral: &str) -> String {
    let terms: Vec<String> = terms.into_iter().filter(|term| term != neutral).collect();
    if terms.iter().any(|term| term == absorbing) {
        return absorbing.to_owned();
    }
    match terms.as_slice() {
        [] => neutral.to_owned(),
        [only] => only.clone(),
        _ => format!("({})", terms.join(operator)),
    }
}

/// `!term`; `term` is a constant, a call or parenthesized, so `!` applies to all of it.
fn negated(term: &str) -> String {
    match term {
        "true" => "false".to_owned(),
        "false" => "true".to_owned(),
        _ => format!("!{term}"),
    }
}

/// A well-formed range, CIDR or (to be caught later with a better message) single address.
fn well_formed() -> String {
    format!("({IS_RANGE} ? {} : isCIDR({TRIMMED}) || isIP({TRIMMED}))", two_address_ends())
}

/// Whether the start of a well-formed, same-family range is not after its end.
///
/// CEL cannot order addresses, but it can ask whether the block `a/n` contains `b`. The longest
/// such `n` is the length `L` of the prefix `a` and `b` share, found by binary search (each step
/// binds the bound so far with `[x].all(name, ..)`); the estimate of a ternary is its dearer
/// branch, so seven steps cost seven checks, where a walk over 128 lengths would exceed the
/// budget. Then `a < b` exactly when bit `L` of `a` is 0, which is when the blocks `a/(L+1)` and
/// `a/L` start at the same address.
fn ends_in_order() -> String {
    let contains_end = |len: &str| format!("cidr(a + '/' + {}).containsIP(c)", decimal(len));
    let block_start = |len: &str| format!("cidr(a + '/' + {}).masked().ip()", decimal(len));
    // Innermost: bit L of `a` is 0.
    let mut search = format!("{} == {}", block_start("l7 + 1"), block_start("l7"));
    for (step_index, step) in [64, 32, 16, 8, 4, 2, 1].into_iter().enumerate().rev() {
        let (known, next) = (format!("l{step_index}"), format!("l{}", step_index + 1));
        search = format!(
            "[[{known} + {step}].map(n, n <= w && {} ? n : {known})[0]].all({next}, {search})",
            contains_end("n")
        );
    }
    format!(
        "[{RANGE_START}].all(a, [ip({RANGE_END})].all(c, ip(a) == c \
         || [ip(a).family() == 4 ? 32 : 128].all(w, [0].all(l0, {search}))))"
    )
}

/// The network address of an IPv4 CIDR entry, dotted decimal: each octet keeps its bits inside
/// the prefix (`o - o % 2^(host bits in the octet)`).
fn masked_ipv4() -> String {
    const POWERS_OF_TWO: &str = "[1, 2, 4, 8, 16, 32, 64, 128, 256]";
    let octet = |index: u32| {
        let (low, high) = (8 * index, 8 * (index + 1));
        // Prefix bits falling in this octet: 0 to 8.
        let kept = format!("(l >= {high} ? 8 : (l <= {low} ? 0 : l - {low}))");
        format!("[o[{index}] - o[{index}] % {POWERS_OF_TWO}[8 - {kept}]].map(v, {})[0]", decimal("v"))
    };
    let octets: Vec<String> = (0..4).map(octet).collect();
    format!(
        "[cidr({TRIMMED}).prefixLength()].map(l, [{CIDR_ADDRESS}.split('.').map(x, int(x))].map(o, {})[0])[0]",
        octets.join(" + '.' + ")
    )
}

/// The integer expression `value` (0 to 999) in decimal, digit by digit from a list of
/// literals: `string(value)` would have no size bound, which the cost estimate refuses.
fn decimal(value: &str) -> String {
    let value = format!("({value})");
    const DIGITS: &str = "['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']";
    format!(
        "({value} >= 100 ? {DIGITS}[{value} / 100] : '') + ({value} >= 10 ? {DIGITS}[{value} / 10 % 10] : '') + {DIGITS}[{value} % 10]"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_per_problem_in_checking_order() {
        let rules = address_entry_rules();
        assert_eq!(rules.len(), EntryProblem::ALL.len());
        assert!(rules.iter().all(|rule| rule.message_expression.starts_with("'spec.addresses entry ' + '\"' + self")));
    }

    /// The tests CEL runs in place of `<=` and `>=` against each reserved block's ends give the
    /// right answer on both sides of every boundary.
    #[test]
    fn membership_tests_compare_exactly_with_the_block_ends() {
        for reserved in RESERVED_BLOCKS {
            let (family, block) = (reserved.block().family(), reserved.block().range().interval());
            let max = family.max_address();
            for interval in [Interval::new(0, block.end()), Interval::new(block.start(), max)].into_iter().flatten() {
                let test = Membership::of(family, interval);
                let probes = [
                    0,
                    block.start().saturating_sub(1),
                    block.start(),
                    block.end(),
                    block.end().saturating_add(1),
                    max,
                ];
                for probe in probes.into_iter().filter(|&probe| probe <= max) {
                    let in_a_block = test.blocks.iter().any(|prefix| prefix.range().interval().contains(probe));
                    assert_eq!(
                        in_a_block != test.outside,
                        interval.contains(probe),
                        "{reserved}: {probe:#x} in {interval:?}"
                    );
                }
                // The shorter list is used, so each rule stays small.
                assert!(test.blocks.len() <= 6, "{reserved}: {test:?}");
            }
        }
    }

    #[test]
    fn the_reserved_rule_tests_every_block_of_the_table() {
        let rules = address_entry_rules();
        let position = EntryProblem::ALL.iter().position(|&problem| problem == EntryProblem::Reserved);
        let reserved = position.map(|index| &rules[index]).map(|rule| (&rule.rule, &rule.message_expression));
        let Some((rule, message)) = reserved else { panic!("no rule for reserved blocks") };
        for block in RESERVED_BLOCKS {
            assert!(rule.contains(&format!("'{}'", block.block())), "{block} missing from {rule}");
            assert!(message.contains(&format!("'{block}'")), "{block} missing from {message}");
        }
    }

    #[test]
    fn the_description_lists_every_reserved_block() {
        let description = reserved_blocks_description();
        for reserved in RESERVED_BLOCKS {
            assert!(
                description.contains(&format!("`{}` ({})", reserved.block(), reserved.reserved_for())),
                "{reserved}"
            );
        }
    }

    #[test]
    fn constant_terms_fold_away() {
        assert_eq!(any_of(["false".to_owned(), "x".to_owned()]), "x");
        assert_eq!(any_of(["true".to_owned(), "x".to_owned()]), "true");
        assert_eq!(all_of(["true".to_owned(), "x".to_owned(), "y".to_owned()]), "(x && y)");
        assert_eq!(all_of(["false".to_owned(), "x".to_owned()]), "false");
        assert_eq!(negated(&any_of(Vec::new())), "true");
    }

    #[test]
    fn string_literals_escape_quotes() {
        assert_eq!(string_literal(r"it's a \"), r"'it\'s a \\'");
    }

    #[test]
    fn rules_never_convert_with_string() {
        // string(..) of an address or a number has no size bound, which the API server's cost
        // estimate refuses (substring(..) is fine).
        let converts = |expression: &str| {
            expression
                .match_indices("string(")
                .any(|(at, _)| at == 0 || !expression.as_bytes()[at - 1].is_ascii_alphabetic())
        };
        for rule in address_entry_rules() {
            assert!(!converts(&rule.rule), "{}", rule.rule);
            assert!(!converts(&rule.message_expression), "{}", rule.message_expression);
        }
    }
}
