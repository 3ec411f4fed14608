//! Paginated lists: the page size a request asks for and opaque page
//! tokens. A token is the position after which the next page starts (a
//! key, or several joined by the caller), hex-encoded so callers treat it
//! as opaque; a token this process did not issue is refused naming the
//! field.

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

/// The token of a position.
pub fn encode_token(position: &str) -> String {
    position.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The position a page token holds ('' for the first page).
pub fn page_token(v: &mut Violations, field: &str, token: &str) -> String {
    let bytes: Option<Vec<u8>> = token
        .len()
        .is_multiple_of(2)
        .then(|| {
            (0..token.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .flatten();
    match bytes.and_then(|b| String::from_utf8(b).ok()) {
        Some(s) => s,
        None => {
            v.push(field, "is not a token this service issued");
            String::new()
        }
    }
}

/// Cuts `items` (read with one extra) to `size` and returns the next page's
/// token ('' on the last page).
pub fn next_token<T>(items: &mut Vec<T>, size: u64, position: impl Fn(&T) -> String) -> String {
    if items.len() as u64 > size {
        items.truncate(size as usize);
        items
            .last()
            .map(|last| encode_token(&position(last)))
            .unwrap_or_default()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_foreign_ones_are_refused() {
        let mut v = Violations::new();
        assert_eq!(page_token(&mut v, "t", &encode_token("acme-7")), "acme-7");
        assert_eq!(page_token(&mut v, "t", ""), "");
        assert!(v.is_empty());
        page_token(&mut v, "page_token", "zz");
        page_token(&mut v, "page_token", "abc");
        assert_eq!(v.0.len(), 2);
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
        let mut items = vec!["a", "b", "c"];
        assert_eq!(
            next_token(&mut items, 2, |s| (*s).to_owned()),
            encode_token("b")
        );
        assert_eq!(items, ["a", "b"]);
        assert_eq!(next_token(&mut items, 2, |s| (*s).to_owned()), "");
    }
}
