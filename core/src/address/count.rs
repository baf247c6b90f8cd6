//! Address counts that stay exact up to the size of the whole IPv6 space.
//!
//! A pool's size feeds the `status.ipv4/ipv6` counters and the printer columns. An IPv6 `/64`
//! holds 2^64 addresses (more than an `i64`), and `::/0` holds 2^128, one more than `u128::MAX`.
//! [`AddressCount`] represents every value in `0..=2^128` exactly, so no count is ever clamped.

use std::fmt;

/// A number of IP addresses, exact over `0..=2^128`.
///
/// 2^128 (every IPv6 address) is the only value that does not fit a `u128`; it is kept as its own
/// state instead of saturating, so `::/0` minus one assigned address is still exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddressCount {
    // Field order matters for the derived `Ord`: `all` is the 129th bit.
    all: bool,
    low: u128,
}

/// 2^128 written out, the one count a `u128` cannot hold.
const TWO_POW_128: &str = "340282366920938463463374607431768211456";

impl AddressCount {
    /// No addresses.
    pub const ZERO: Self = Self { all: false, low: 0 };
    /// Every IPv6 address: 2^128.
    pub const ALL_IPV6: Self = Self { all: true, low: 0 };

    /// A count that fits in a `u128`.
    pub const fn new(count: u128) -> Self {
        Self { all: false, low: count }
    }

    /// The count as a `u128`, or `None` for 2^128.
    pub const fn to_u128(self) -> Option<u128> {
        if self.all { None } else { Some(self.low) }
    }

    /// The count as a `u128`, with 2^128 clamped to `u128::MAX`.
    pub const fn saturating_u128(self) -> u128 {
        if self.all { u128::MAX } else { self.low }
    }

    /// The count as a float, for metrics (Prometheus samples are `f64`): exact up to 2^53,
    /// within one part in 2^53 above, and 2^128 itself is exact.
    #[allow(clippy::cast_precision_loss)]
    pub fn as_f64(self) -> f64 {
        if self.all { 2f64.powi(128) } else { self.low as f64 }
    }

    /// Whether the count is zero.
    pub const fn is_zero(self) -> bool {
        !self.all && self.low == 0
    }

    /// `self + other`, or `None` above 2^128.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        match (self.all, other.all) {
            (true, true) => None,
            (true, false) | (false, true) => {
                // 2^128 + x fits only when x is zero.
                (self.low == 0 && other.low == 0).then_some(Self::ALL_IPV6)
            }
            (false, false) => match self.low.overflowing_add(other.low) {
                (sum, false) => Some(Self::new(sum)),
                (0, true) => Some(Self::ALL_IPV6),
                (_, true) => None,
            },
        }
    }

    /// `self - other`, or `None` below zero.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        match (self.all, other.all) {
            (true, true) => Some(Self::ZERO),
            (false, true) => None,
            // 2^128 - x: for x > 0 this is (u128::MAX - x) + 1, which fits.
            (true, false) if other.low == 0 => Some(Self::ALL_IPV6),
            (true, false) => Some(Self::new(u128::MAX - other.low + 1)),
            (false, false) => self.low.checked_sub(other.low).map(Self::new),
        }
    }

    /// `self - other`, stopping at zero.
    pub fn saturating_sub(self, other: Self) -> Self {
        self.checked_sub(other).unwrap_or(Self::ZERO)
    }

    /// A short form for humans and printer columns: exact up to nine digits, `2^N` for a power
    /// of two, otherwise two significant digits such as `~1.8e19`.
    pub fn human(self) -> String {
        const EXACT_BELOW: u128 = 1_000_000_000;
        if self.all {
            return "2^128".to_owned();
        }
        if self.low < EXACT_BELOW {
            return self.low.to_string();
        }
        if self.low.is_power_of_two() {
            return format!("2^{}", self.low.trailing_zeros());
        }
        let digits = self.low.to_string();
        let exponent = digits.len() - 1;
        let mut significant = digits.chars();
        let first = significant.next().unwrap_or('0');
        let second = significant.next().unwrap_or('0');
        format!("~{first}.{second}e{exponent}")
    }
}

impl From<u128> for AddressCount {
    fn from(count: u128) -> Self {
        Self::new(count)
    }
}

impl From<u64> for AddressCount {
    fn from(count: u64) -> Self {
        Self::new(u128::from(count))
    }
}

/// Exact decimal, as written to `status.ipv4/ipv6`.
impl fmt::Display for AddressCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.all { f.write_str(TWO_POW_128) } else { write!(f, "{}", self.low) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_of_ipv6_is_exact_in_decimal() {
        assert_eq!(AddressCount::ALL_IPV6.to_string(), TWO_POW_128);
        assert_eq!(AddressCount::ALL_IPV6.to_u128(), None);
        assert_eq!(AddressCount::ALL_IPV6.saturating_u128(), u128::MAX);
    }

    #[test]
    fn adding_past_u128_max_reaches_exactly_two_pow_128() {
        let max = AddressCount::new(u128::MAX);
        assert_eq!(max.checked_add(AddressCount::new(1)), Some(AddressCount::ALL_IPV6));
        assert_eq!(max.checked_add(AddressCount::new(2)), None);
        assert_eq!(AddressCount::ALL_IPV6.checked_add(AddressCount::new(1)), None);
        assert_eq!(AddressCount::ALL_IPV6.checked_add(AddressCount::ZERO), Some(AddressCount::ALL_IPV6));
    }

    #[test]
    fn subtracting_from_two_pow_128_stays_exact() {
        let one_assigned = AddressCount::ALL_IPV6.checked_sub(AddressCount::new(1));
        assert_eq!(one_assigned, Some(AddressCount::new(u128::MAX)));
        assert_eq!(AddressCount::ALL_IPV6.checked_sub(AddressCount::ALL_IPV6), Some(AddressCount::ZERO));
        assert_eq!(AddressCount::new(1).checked_sub(AddressCount::ALL_IPV6), None);
        assert_eq!(AddressCount::new(1).saturating_sub(AddressCount::new(5)), AddressCount::ZERO);
    }

    #[test]
    fn ordering_puts_two_pow_128_above_every_u128() {
        assert!(AddressCount::ALL_IPV6 > AddressCount::new(u128::MAX));
        assert!(AddressCount::new(3) < AddressCount::new(4));
    }

    #[test]
    fn human_form_is_short() {
        assert_eq!(AddressCount::new(40).human(), "40");
        assert_eq!(AddressCount::new(16_777_216).human(), "16777216");
        assert_eq!(AddressCount::new(1 << 64).human(), "2^64");
        assert_eq!(AddressCount::new((1 << 64) - 1).human(), "~1.8e19");
        assert_eq!(AddressCount::ALL_IPV6.human(), "2^128");
    }
}
