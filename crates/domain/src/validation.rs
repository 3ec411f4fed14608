//! Field violations: every problem with an input, each with its path.

use std::fmt;

/// Longest excerpt of an offending value a violation quotes, in characters.
pub const QUOTE_CHARS: usize = 40;

/// `value` quoted for a violation message, cut to [`QUOTE_CHARS`]
/// characters (`"abc…" (1048576 bytes)`), so a reply never grows with what
/// a caller sent.
pub fn quote(value: &str) -> String {
    if value.chars().count() <= QUOTE_CHARS {
        return format!("{value:?}");
    }
    let head: String = value.chars().take(QUOTE_CHARS).collect();
    format!("{:?}… ({} bytes)", head, value.len())
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the field (`survey.score`, `dimensions[2].weight`).
    pub field: String,
    /// What is wrong.
    pub description: String,
}

impl Violation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// All the violations found in one input; empty means valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(pub Vec<Violation>);

impl Violations {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation.
    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(Violation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when empty, else `Err(self)`.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// Prefixes every path (`signals[3].` + `survey.score`).
    pub fn prefixed(self, prefix: &str) -> Self {
        Self(
            self.0
                .into_iter()
                .map(|v| Violation {
                    field: format!("{prefix}{}", v.field),
                    description: v.description,
                })
                .collect(),
        )
    }

    /// The first violation's field, if any.
    pub fn first_field(&self) -> Option<&str> {
        self.0.first().map(|v| v.field.as_str())
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_bounded_whatever_the_value() {
        assert_eq!(quote("ops@acme"), "\"ops@acme\"");
        let long = "x".repeat(1 << 20);
        let q = quote(&long);
        assert!(q.len() < 80, "{q}");
        assert!(q.ends_with("(1048576 bytes)"), "{q}");
    }
}
