//! KPI values that may be undefined.

/// Why a KPI has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absence {
    /// The denominator is zero.
    ZeroDenominator,
    /// The inputs were never provided.
    NoData,
    /// An exact money-derived value does not fit in 128-bit integers.
    Overflow,
}

/// A KPI value, or why there is none. Never NaN, never a silent 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// A finite value at full precision.
    Value(f64),
    /// Undefined, with the reason.
    Absent(Absence),
}

impl Measure {
    /// `num / den`, absent when `den` is 0.
    pub fn ratio(num: f64, den: f64) -> Self {
        if den == 0.0 {
            Self::Absent(Absence::ZeroDenominator)
        } else {
            Self::finite(num / den)
        }
    }

    /// `num / den × 100`, absent when `den` is 0.
    pub fn percent(num: f64, den: f64) -> Self {
        // Scale first: 6,400 / 1,000 is the double nearest 6.4, while
        // 0.064 × 100 is not.
        Self::ratio(num * 100.0, den)
    }

    /// A value, or `NoData` if not finite.
    pub fn finite(v: f64) -> Self {
        if v.is_finite() {
            Self::Value(v)
        } else {
            Self::Absent(Absence::ZeroDenominator)
        }
    }

    /// Transforms a present value.
    pub fn map(self, f: impl FnOnce(f64) -> f64) -> Self {
        match self {
            Self::Value(v) => Self::finite(f(v)),
            a => a,
        }
    }

    /// Combines two present values; absent if either is.
    pub fn zip(self, other: Self, f: impl FnOnce(f64, f64) -> Self) -> Self {
        match (self, other) {
            (Self::Value(a), Self::Value(b)) => f(a, b),
            (Self::Absent(r), _) | (_, Self::Absent(r)) => Self::Absent(r),
        }
    }

    /// The value, if present.
    pub fn value(self) -> Option<f64> {
        match self {
            Self::Value(v) => Some(v),
            Self::Absent(_) => None,
        }
    }

    /// For display only: rounded to `decimals`.
    pub fn display(self, decimals: usize) -> String {
        match self {
            Self::Value(v) => format!("{v:.decimals$}"),
            Self::Absent(Absence::ZeroDenominator) => "n/a (zero denominator)".into(),
            Self::Absent(Absence::NoData) => "n/a (no data)".into(),
            Self::Absent(Absence::Overflow) => "n/a (overflow)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_denominators_are_absent_not_zero_or_nan() {
        assert_eq!(
            Measure::ratio(1.0, 0.0),
            Measure::Absent(Absence::ZeroDenominator)
        );
        assert_eq!(
            Measure::percent(0.0, 0.0),
            Measure::Absent(Absence::ZeroDenominator)
        );
        assert_eq!(Measure::percent(64.0, 1000.0), Measure::Value(6.4));
        assert_eq!(
            Measure::Value(2.0).zip(Measure::Absent(Absence::NoData), Measure::ratio),
            Measure::Absent(Absence::NoData)
        );
    }
}
