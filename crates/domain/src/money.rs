//! Money: integer minor units in one ISO-4217 currency. Arithmetic never
//! mixes currencies and never overflows silently.

use std::fmt;

/// Money errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Two amounts in different currencies met.
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(Currency, Currency),
    /// The result does not fit in 64-bit minor units.
    #[error("amount overflows")]
    Overflow,
    /// Not a three-letter upper-case code.
    #[error("{0} is not an ISO-4217 code (three upper-case letters)")]
    BadCurrency(String),
}

/// An ISO-4217 alphabetic currency code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses `EUR`, `USD`… (three ASCII upper-case letters).
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let b = code.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Self([b[0], b[1], b[2]]))
        } else {
            Err(MoneyError::BadCurrency(crate::validation::quote(code)))
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Digits after the decimal point of the currency's minor unit
    /// (ISO 4217): 0 for JPY and KRW, 3 for KWD and BHD, 2 for most.
    pub fn minor_digits(self) -> u32 {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            "CLF" | "UYW" => 4,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of money in minor units (cents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    /// Minor units; may be negative for deltas.
    pub minor: i64,
    /// Currency.
    pub currency: Currency,
}

impl Money {
    /// An amount.
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    fn same(self, other: Self) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }

    /// `self + other`, same currency, no overflow.
    pub fn checked_add(self, other: Self) -> Result<Self, MoneyError> {
        self.same(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self { minor, ..self })
    }

    /// `self − other`, same currency, no overflow.
    pub fn checked_sub(self, other: Self) -> Result<Self, MoneyError> {
        self.same(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self { minor, ..self })
    }

    /// `self × n`, no overflow.
    pub fn checked_mul(self, n: i64) -> Result<Self, MoneyError> {
        let minor = self.minor.checked_mul(n).ok_or(MoneyError::Overflow)?;
        Ok(Self { minor, ..self })
    }

    /// Sum of amounts in `currency` (an empty sum is zero).
    pub fn sum<'a>(
        currency: Currency,
        items: impl IntoIterator<Item = &'a Money>,
    ) -> Result<Self, MoneyError> {
        items
            .into_iter()
            .try_fold(Self::zero(currency), |acc, m| acc.checked_add(*m))
    }
}

/// `1,841.00 USD`, `-0.50 EUR`, `12,000 JPY`, `1.250 KWD`: the major
/// units grouped by thousands, the minor units as the currency has them.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        let digits = self.currency.minor_digits();
        let unit = 10_u64.pow(digits);
        let major = (abs / unit).to_string();
        let mut grouped = String::with_capacity(major.len() + major.len() / 3);
        for (i, c) in major.chars().enumerate() {
            if i > 0 && (major.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if digits == 0 {
            write!(f, "{sign}{grouped} {}", self.currency)
        } else {
            let minor = abs % unit;
            let width = digits as usize;
            write!(f, "{sign}{grouped}.{minor:0width$} {}", self.currency)
        }
    }
}

/// Converts an `i128` sum back to minor units, or `Overflow`.
pub(crate) fn fit(sum: i128) -> Result<i64, MoneyError> {
    i64::try_from(sum).map_err(|_| MoneyError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(m: i64) -> Money {
        Money::new(m, Currency::parse("EUR").unwrap())
    }

    #[test]
    fn currencies_never_mix() {
        let usd = Money::new(100, Currency::parse("USD").unwrap());
        assert!(matches!(
            eur(1).checked_add(usd),
            Err(MoneyError::CurrencyMismatch(_, _))
        ));
        assert!(matches!(
            Money::sum(usd.currency, [&usd, &eur(1)]),
            Err(MoneyError::CurrencyMismatch(_, _))
        ));
        assert_eq!(
            eur(150).checked_sub(eur(200)).unwrap().to_string(),
            "-0.50 EUR"
        );
    }

    #[test]
    fn money_reads_like_money_in_its_own_minor_unit() {
        let m = |minor, code| Money::new(minor, Currency::parse(code).unwrap()).to_string();
        assert_eq!(m(184_100, "USD"), "1,841.00 USD");
        assert_eq!(m(123_456_789, "EUR"), "1,234,567.89 EUR");
        assert_eq!(m(-5, "EUR"), "-0.05 EUR");
        assert_eq!(m(12_000, "JPY"), "12,000 JPY");
        assert_eq!(m(1_250, "KWD"), "1.250 KWD");
        assert_eq!(m(i64::MIN, "EUR"), "-92,233,720,368,547,758.08 EUR");
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(eur(i64::MAX).checked_add(eur(1)), Err(MoneyError::Overflow));
        assert_eq!(
            eur(i64::MAX / 2 + 1).checked_mul(2),
            Err(MoneyError::Overflow)
        );
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("EURO").is_err());
    }
}
