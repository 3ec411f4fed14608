//! Exact rationals for the money-derived KPIs (ARPA, LTV, CAC, CRC, CLV and
//! their ratios), so a threshold such as "LTV:CRC at or below 2:1" is
//! decided on the exact value, not on a chain of rounded `f64` divisions.
//! Convert to `f64` ([`Ratio::to_f64`], [`Exact::to_measure`]) only for
//! display.

use std::cmp::Ordering;
use std::fmt;

use crate::measure::{Absence, Measure};
use crate::money::{Currency, Money, MoneyError};

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A fraction of integers in lowest terms with a positive denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ratio {
    num: i128,
    den: i128,
}

impl Ratio {
    /// Zero.
    pub const ZERO: Self = Self { num: 0, den: 1 };
    /// One (e.g. a 100 % gross margin).
    pub const ONE: Self = Self { num: 1, den: 1 };

    /// `num / den` in lowest terms; `None` when `den` is 0 (or the sign
    /// cannot be normalised: `i128::MIN`).
    pub fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        let (mut num, mut den) = (num / g, den / g);
        if den < 0 {
            num = num.checked_neg()?;
            den = den.checked_neg()?;
        }
        Some(Self { num, den })
    }

    /// The integer `n`.
    pub const fn integer(n: i128) -> Self {
        Self { num: n, den: 1 }
    }

    /// `percent / 100`.
    pub fn percent(percent: i128) -> Self {
        Self::new(percent, 100).unwrap_or(Self::ZERO)
    }

    /// Numerator (lowest terms; carries the sign).
    pub const fn numer(self) -> i128 {
        self.num
    }

    /// Denominator (lowest terms, > 0).
    pub const fn denom(self) -> i128 {
        self.den
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.num == 0
    }

    /// `self × other`; `None` on overflow.
    pub fn checked_mul(self, other: Self) -> Option<Self> {
        // Cross-reduce first so intermediate products stay small.
        let g1 = gcd(self.num, other.den).max(1);
        let g2 = gcd(other.num, self.den).max(1);
        let num = (self.num / g1).checked_mul(other.num / g2)?;
        let den = (self.den / g2).checked_mul(other.den / g1)?;
        Self::new(num, den)
    }

    /// `self / other`; `None` when `other` is 0 or on overflow.
    pub fn checked_div(self, other: Self) -> Option<Self> {
        if other.num == 0 {
            return None;
        }
        self.checked_mul(Self::new(other.den, other.num)?)
    }

    /// `self + other`; `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        let g = gcd(self.den, other.den).max(1);
        let den = (self.den / g).checked_mul(other.den)?;
        let num = self
            .num
            .checked_mul(other.den / g)?
            .checked_add(other.num.checked_mul(self.den / g)?)?;
        Self::new(num, den)
    }

    /// The nearest `f64` (for display; never for a decision).
    pub fn to_f64(self) -> f64 {
        // Split off the integer part so large values keep their fraction.
        let q = self.num.div_euclid(self.den);
        let r = self.num.rem_euclid(self.den);
        q as f64 + r as f64 / self.den as f64
    }
}

impl Ord for Ratio {
    /// Exact comparison by continued fractions: no product is formed, so
    /// it never overflows.
    fn cmp(&self, other: &Self) -> Ordering {
        let (mut a, mut b, mut c, mut d) = (self.num, self.den, other.num, other.den);
        let mut flip = false;
        loop {
            // a/b vs c/d with b, d > 0.
            let (qa, ra) = (a.div_euclid(b), a.rem_euclid(b));
            let (qc, rc) = (c.div_euclid(d), c.rem_euclid(d));
            let ord = match (qa.cmp(&qc), ra, rc) {
                (Ordering::Equal, 0, 0) => Ordering::Equal,
                (Ordering::Equal, 0, _) => Ordering::Less,
                (Ordering::Equal, _, 0) => Ordering::Greater,
                (Ordering::Equal, _, _) => {
                    // ra/b vs rc/d, both in (0, 1): compare b/ra vs d/rc, reversed.
                    (a, b, c, d) = (b, ra, d, rc);
                    flip = !flip;
                    continue;
                }
                (o, _, _) => o,
            };
            return if flip { ord.reverse() } else { ord };
        }
    }
}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// An exact KPI value, or why there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exact {
    /// The exact value.
    Value(Ratio),
    /// Undefined, with the reason.
    Absent(Absence),
}

impl Exact {
    /// `num / den`, absent when `den` is 0.
    pub fn ratio(num: i128, den: i128) -> Self {
        Ratio::new(num, den).map_or(Self::Absent(Absence::ZeroDenominator), Self::Value)
    }

    /// The value, if present.
    pub fn value(self) -> Option<Ratio> {
        match self {
            Self::Value(r) => Some(r),
            Self::Absent(_) => None,
        }
    }

    /// For display and the API: the nearest `f64`.
    pub fn to_measure(self) -> Measure {
        match self {
            Self::Value(r) => Measure::finite(r.to_f64()),
            Self::Absent(a) => Measure::Absent(a),
        }
    }

    /// Combines two present values; absent if either is. `f` returns
    /// `None` for a zero divisor (absent: zero denominator) or overflow
    /// (absent: overflow).
    pub fn zip(self, other: Self, f: impl FnOnce(Ratio, Ratio) -> Option<Ratio>) -> Self {
        match (self, other) {
            (Self::Value(a), Self::Value(b)) => match f(a, b) {
                Some(r) => Self::Value(r),
                None if b.is_zero() => Self::Absent(Absence::ZeroDenominator),
                None => Self::Absent(Absence::Overflow),
            },
            (Self::Absent(r), _) | (_, Self::Absent(r)) => Self::Absent(r),
        }
    }
}

impl std::ops::Mul for Exact {
    type Output = Self;

    /// `self × other`; absent if either is (or on overflow).
    fn mul(self, other: Self) -> Self {
        self.zip(other, Ratio::checked_mul)
    }
}

impl std::ops::Div for Exact {
    type Output = Self;

    /// `self / other`; absent when `other` is 0 (or on overflow).
    fn div(self, other: Self) -> Self {
        self.zip(other, Ratio::checked_div)
    }
}

/// A money-derived KPI: an exact amount of minor units (possibly
/// fractional, e.g. ARPA 4,900 1/3) in one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoneyMeasure {
    /// Currency of the amount.
    pub currency: Currency,
    /// Minor units, exact.
    pub minor: Exact,
}

impl From<Money> for MoneyMeasure {
    fn from(m: Money) -> Self {
        Self {
            currency: m.currency,
            minor: Exact::Value(Ratio::integer(i128::from(m.minor))),
        }
    }
}

impl MoneyMeasure {
    /// `num / den` minor units, absent when `den` is 0.
    pub fn ratio(currency: Currency, num: i128, den: i128) -> Self {
        Self {
            currency,
            minor: Exact::ratio(num, den),
        }
    }

    /// The amount in minor units as `f64`, for display.
    pub fn to_measure(self) -> Measure {
        self.minor.to_measure()
    }

    /// `self × factor` (a dimensionless factor).
    pub fn scale(self, factor: Exact) -> Self {
        Self {
            minor: self.minor * factor,
            ..self
        }
    }

    /// `self / divisor` (a dimensionless divisor).
    pub fn per(self, divisor: Exact) -> Self {
        Self {
            minor: self.minor / divisor,
            ..self
        }
    }

    /// `self / other`, a dimensionless ratio (LTV:CAC); the currencies
    /// must match.
    pub fn ratio_to(self, other: Self) -> Result<Exact, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        Ok(self.minor / other.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i128, d: i128) -> Ratio {
        Ratio::new(n, d).unwrap_or(Ratio::ZERO)
    }

    #[test]
    fn lowest_terms_and_exact_order() {
        assert_eq!(r(6, -4), r(-3, 2));
        assert_eq!((r(6, -4).numer(), r(6, -4).denom()), (-3, 2));
        assert!(Ratio::new(1, 0).is_none());
        assert!(r(1, 3) < r(1, 2));
        assert!(r(-1, 2) < r(-1, 3));
        assert!(r(2, 3) > r(3, 5));
        assert_eq!(r(700_000, 350_000).cmp(&Ratio::integer(2)), Ordering::Equal);
        // Values whose cross products overflow i128 still compare exactly.
        let big = i128::MAX / 3;
        assert!(r(big - 1, big) < r(big, big + 1));
        assert!(r(big, big + 1) > r(big - 1, big));
        assert_eq!(r(big, big).cmp(&Ratio::ONE), Ordering::Equal);
    }

    #[test]
    fn arithmetic_is_exact() {
        let third = r(1, 3);
        assert_eq!(
            third.checked_add(third).and_then(|x| x.checked_add(third)),
            Some(Ratio::ONE)
        );
        assert_eq!(
            r(4_900, 1).checked_div(r(7, 1_000)),
            Some(Ratio::integer(700_000))
        );
        assert_eq!(Ratio::ONE.checked_div(Ratio::ZERO), None);
        assert_eq!(
            Exact::ratio(1, 1) / Exact::ratio(0, 5),
            Exact::Absent(Absence::ZeroDenominator)
        );
        assert_eq!(r(7, 2).to_f64(), 3.5);
    }
}
