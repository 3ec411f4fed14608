//! Identifiers: tenants own data; accounts are the tenant's external ids.

use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id was empty.
    #[error("must not be empty")]
    Empty,
    /// The id was longer than allowed.
    #[error("is {len} bytes long, the limit is {max}")]
    TooLong {
        /// Actual length in bytes.
        len: usize,
        /// Limit in bytes.
        max: usize,
    },
    /// The id contained a character outside the allowed set.
    #[error("contains {0:?}; allowed are letters, digits and - _ . : @ /")]
    BadChar(char),
}

/// Longest accepted tenant id, in bytes.
pub const MAX_TENANT_ID_LEN: usize = 64;
/// Longest accepted account id, in bytes.
pub const MAX_ACCOUNT_ID_LEN: usize = 128;

fn check(value: &str, max: usize, allowed: impl Fn(char) -> bool) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty);
    }
    if value.len() > max {
        return Err(IdError::TooLong {
            len: value.len(),
            max,
        });
    }
    match value.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(IdError::BadChar(c)),
        None => Ok(()),
    }
}

/// A tenant: one customer of Retain, owner of all data it ingests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Validates a tenant id: 1–64 bytes of ASCII letters, digits, `-`, `_`.
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        check(&value, MAX_TENANT_ID_LEN, |c| {
            c.is_ascii_alphanumeric() || c == '-' || c == '_'
        })?;
        Ok(Self(value))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An account: the tenant's customer, named by the tenant's own external id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    /// Validates an account id: 1–128 bytes of printable ASCII letters,
    /// digits and `- _ . : @ /`.
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        check(&value, MAX_ACCOUNT_ID_LEN, |c| {
            c.is_ascii_alphanumeric() || "-_.:@/".contains(c)
        })?;
        Ok(Self(value))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_validated() {
        assert_eq!(
            TenantId::parse("acme-eu").map(|t| t.to_string()),
            Ok("acme-eu".into())
        );
        assert_eq!(TenantId::parse(""), Err(IdError::Empty));
        assert_eq!(TenantId::parse("a b"), Err(IdError::BadChar(' ')));
        assert!(matches!(
            TenantId::parse("x".repeat(65)),
            Err(IdError::TooLong { len: 65, max: 64 })
        ));
    }

    #[test]
    fn account_ids_allow_external_id_punctuation() {
        assert!(AccountId::parse("cus_9s6XKzkNRiz8i3/eu@acme.io").is_ok());
        assert_eq!(AccountId::parse("acme\n"), Err(IdError::BadChar('\n')));
    }
}
