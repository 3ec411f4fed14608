//! Paginated lists: the page size a request asks for and opaque page
//! tokens. A token is the fingerprint of the list's filters, then the
//! position after which the next page starts (a key, or several joined by
//! the caller), hex-encoded so callers treat it as opaque. A token this
//! service did not issue, or issued for other filters, is refused naming
//! the field. Every list of every service pages this way.

use retain_domain::Violations;

/// Most items one page holds.
pub const MAX_PAGE_SIZE: i32 = 1_000;
/// Items a page holds when the request does not say.
pub const DEFAULT_PAGE_SIZE: i32 = 100;

/// The page size asked for (default 100, at most 1,000).
pub fn page_size(v: &mut Violations, field: &str, size: i32) -> u64 {
    match size {
        0 => DEFAULT_PAGE_SIZE as u64,
        1..=MAX_PAGE_SIZE => size as u64,
        _ => {
            v.push(
                field,
                format!("{size} is outside 1–{MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})"),
            );
            0
        }
    }
}

/// The filters (and order) a list was read with. A page token carries
/// their fingerprint, so a token reused with other filters is refused —
/// with them it would skip or repeat rows silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filters(String);

impl Filters {
    /// The fingerprint of `parts`: every field of the request that narrows
    /// or orders the list, in a fixed order.
    pub fn of<I>(parts: I) -> Self
    where
        I: IntoIterator,
        I::Item: std::fmt::Display,
    {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in parts {
            h.update(part.to_string().as_bytes());
            h.update([0]);
        }
        Self(hex::encode(&h.finalize()[..6]))
    }

    /// The token of a position read with these filters.
    pub fn token(&self, position: &str) -> String {
        format!("{}.{}", self.0, hex::encode(position))
    }

    /// The position a page token holds ('' for the first page). A token
    /// this service did not issue, or issued for other filters, is refused
    /// naming `field`.
    pub fn position(&self, v: &mut Violations, field: &str, token: &str) -> String {
        if token.is_empty() {
            return String::new();
        }
        let Some((fingerprint, position)) = token.split_once('.') else {
            v.push(field, "is not a token this service issued");
            return String::new();
        };
        match hex::decode(position)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            Some(_) if fingerprint != self.0 => {
                v.push(
                    field,
                    "was issued for other filters; repeat the first request's filters or start over",
                );
                String::new()
            }
            Some(position) => position,
            None => {
                v.push(field, "is not a token this service issued");
                String::new()
            }
        }
    }

    /// Cuts `items` (read with one extra) to `size` and returns the next
    /// page's token ('' on the last page).
    pub fn next_token<T>(
        &self,
        items: &mut Vec<T>,
        size: u64,
        position: impl Fn(&T) -> String,
    ) -> String {
        if items.len() as u64 > size {
            items.truncate(size as usize);
            items
                .last()
                .map(|last| self.token(&position(last)))
                .unwrap_or_default()
        } else {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_foreign_ones_are_refused() {
        let f = Filters::of(["csm", "open"]);
        let mut v = Violations::new();
        assert_eq!(f.position(&mut v, "t", &f.token("acme-7")), "acme-7");
        assert_eq!(f.position(&mut v, "t", ""), "");
        assert!(v.is_empty());
        f.position(&mut v, "page_token", "zz");
        f.position(&mut v, "page_token", "abc.zz");
        assert_eq!(v.0.len(), 2);
        // A token of the same list with other filters is refused.
        let other = Filters::of(["expansion", "open"]);
        other.position(&mut v, "page_token", &f.token("acme-7"));
        assert!(v.0[2].description.contains("other filters"), "{:?}", v.0[2]);
    }

    #[test]
    fn page_sizes_default_and_are_bounded() {
        let mut v = Violations::new();
        assert_eq!(page_size(&mut v, "page_size", 0), 100);
        assert_eq!(page_size(&mut v, "page_size", 1_000), 1_000);
        assert!(v.is_empty());
        page_size(&mut v, "page_size", 1_001);
        page_size(&mut v, "page_size", -1);
        assert_eq!(v.0.len(), 2);
    }

    #[test]
    fn a_page_read_with_one_extra_has_a_next_token() {
        let f = Filters::of([""]);
        let mut items = vec!["a", "b", "c"];
        assert_eq!(
            f.next_token(&mut items, 2, |s| (*s).to_owned()),
            f.token("b")
        );
        assert_eq!(items, ["a", "b"]);
        assert_eq!(f.next_token(&mut items, 2, |s| (*s).to_owned()), "");
    }
}
