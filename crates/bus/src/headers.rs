//! Message headers, carrying the W3C trace context across the bus.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A message's headers: text keys and values, stored as `key=value` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(HashMap<String, String>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Headers holding the current span's trace context (`traceparent`,
    /// `tracestate`), by the globally installed propagator. Without a
    /// propagator (telemetry off) this is empty.
    pub fn from_current_span() -> Self {
        let mut headers = Self::new();
        let cx = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut headers));
        headers
    }

    /// Makes the trace context in these headers the parent of `span`, so a
    /// consumer's work joins the publisher's trace.
    pub fn set_parent_of(&self, span: &tracing::Span) {
        let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(self));
        let _ = span.set_parent(cx);
    }

    /// One header.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Sets one header. Keys may not contain `=` or newlines and values may
    /// not contain newlines; offending characters are replaced by `_`.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into().replace(['=', '\n', '\r'], "_");
        let value = value.into().replace(['\n', '\r'], "_");
        self.0.insert(key, value);
    }

    /// The stored form: sorted `key=value` lines.
    pub fn encode(&self) -> String {
        let mut lines: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.sort();
        lines.join("\n")
    }

    /// Parses the stored form; lines without `=` are ignored.
    pub fn decode(text: &str) -> Self {
        Self(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}

impl Injector for Headers {
    fn set(&mut self, key: &str, value: String) {
        self.insert(key, value);
    }
}

impl Extractor for Headers {
    fn get(&self, key: &str) -> Option<&str> {
        Headers::get(self, key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_sanitise() {
        let mut h = Headers::new();
        h.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        );
        h.insert("bad=key", "line\nbreak");
        let decoded = Headers::decode(&h.encode());
        assert_eq!(decoded, h);
        assert_eq!(decoded.get("bad_key"), Some("line_break"));
    }
}
