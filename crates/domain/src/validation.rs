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

/// What a stored text may hold. Every string a client can store — in a
/// signal, a scoring model, a routing policy, a task's note — is checked
/// by [`check_text`] against one of these, so no service stores a byte
/// another would refuse (docs/ARCHITECTURE.md, "Text a client stores").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// One line — an id, key, name, label, title or email address — of at
    /// most this many bytes: no control character at all.
    Line(usize),
    /// Free text a person writes — a comment, a note, a reason — of at
    /// most this many bytes: line breaks and tabs, no other control
    /// character.
    Prose(usize),
}

/// Longest key (a dimension or action key, a queue, a template), bytes.
pub const MAX_KEY_LEN: usize = 64;
/// Longest label (a name, segment, plan or task title), bytes.
pub const MAX_LABEL_LEN: usize = 200;
/// Longest email address, bytes (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest free text (a survey comment, a task note or reason), bytes.
pub const MAX_PROSE_LEN: usize = 4_096;

/// Checks one stored text: records a violation of `field` and returns
/// false when `value` holds U+0000 (PostgreSQL cannot store it), a control
/// character `text` does not allow, is blank while `required`, or is
/// longer than `text`'s bound.
pub fn check_text(
    v: &mut Violations,
    field: &str,
    value: &str,
    text: Text,
    required: bool,
) -> bool {
    let (max, prose) = match text {
        Text::Line(max) => (max, false),
        Text::Prose(max) => (max, true),
    };
    let control = value
        .char_indices()
        .find(|(_, c)| c.is_control() && !(prose && matches!(c, '\n' | '\r' | '\t')));
    let why = if value.contains('\0') {
        "contains U+0000 (NUL), which text may not hold".to_owned()
    } else if let Some((at, c)) = control {
        format!(
            "contains the control character U+{:04X} at byte {at}; {}",
            u32::from(c),
            if prose {
                "only line breaks and tabs are allowed"
            } else {
                "it must be one line of printable text"
            }
        )
    } else if required && value.trim().is_empty() {
        "must not be empty".to_owned()
    } else if value.len() > max {
        format!("is {} bytes long, the limit is {max}", value.len())
    } else {
        return true;
    };
    v.push(field, why);
    false
}

/// A plausible email address — `local@domain.tld`, one line of at most
/// [`MAX_EMAIL_LEN`] bytes without whitespace or control characters — the
/// one rule for every address Retain stores or sends to.
pub fn is_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.len() <= MAX_EMAIL_LEN
}

/// Most entries a repeated request field that names enum values (bands,
/// states) may hold; duplicates are allowed up to it and read once.
pub const MAX_ENUM_LIST: usize = 16;

/// Checks how many entries a repeated request field holds: records a
/// violation of `field` and returns false over `max`, so the caller reads
/// none of them (a list of a million entries costs one line of error).
pub fn check_len(v: &mut Violations, field: &str, len: usize, max: usize) -> bool {
    if len > max {
        v.push(field, format!("holds {len} entries, the limit is {max}"));
        return false;
    }
    true
}

/// A repeated request field of enum numbers (bands, states): at most
/// [`MAX_ENUM_LIST`] entries (none read beyond), each one `parse` knows —
/// else a violation of `field[i]` saying what `expected` — each kept once,
/// in order.
pub fn enum_list<T: PartialEq>(
    v: &mut Violations,
    field: &str,
    values: &[i32],
    parse: impl Fn(i32) -> Option<T>,
    expected: &str,
) -> Vec<T> {
    let mut out = Vec::new();
    if !check_len(v, field, values.len(), MAX_ENUM_LIST) {
        return out;
    }
    for (i, n) in values.iter().enumerate() {
        match parse(*n) {
            None => v.push(format!("{field}[{i}]"), format!("{n} is not {expected}")),
            Some(x) if !out.contains(&x) => out.push(x),
            Some(_) => {}
        }
    }
    out
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
    fn text_is_one_rule_for_every_stored_string() {
        let check = |value: &str, text| {
            let mut v = Violations::new();
            check_text(&mut v, "f", value, text, true);
            v.0.first().map(|x| x.description.clone())
        };
        assert_eq!(check("Acme GmbH", Text::Line(200)), None);
        assert!(check("a\0b", Text::Line(200)).unwrap().contains("U+0000"));
        assert!(
            check("a\u{1b}[31m", Text::Line(200))
                .unwrap()
                .contains("U+001B at byte 1")
        );
        assert!(
            check("two\nlines", Text::Line(200))
                .unwrap()
                .contains("U+000A")
        );
        assert_eq!(check("two\nlines\tok", Text::Prose(200)), None);
        assert!(
            check("bell\u{7}", Text::Prose(200))
                .unwrap()
                .contains("U+0007")
        );
        assert!(
            check("c1\u{85}", Text::Line(200))
                .unwrap()
                .contains("U+0085")
        );
        assert_eq!(
            check("  ", Text::Line(200)).as_deref(),
            Some("must not be empty")
        );
        assert!(
            check(&"k".repeat(65), Text::Line(MAX_KEY_LEN))
                .unwrap()
                .contains("65 bytes")
        );
        assert_eq!(check("ünïcode ✓", Text::Line(200)), None);
    }

    #[test]
    fn quotes_are_bounded_whatever_the_value() {
        assert_eq!(quote("ops@acme"), "\"ops@acme\"");
        let long = "x".repeat(1 << 20);
        let q = quote(&long);
        assert!(q.len() < 80, "{q}");
        assert!(q.ends_with("(1048576 bytes)"), "{q}");
    }
}
