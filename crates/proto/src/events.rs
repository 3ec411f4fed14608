//! Reading bus events whose publications may have been folded together.
//!
//! A coalescing consumer receives several `SignalsRecorded` publications as
//! one message (the bus concatenates their encodings). [`SignalsRecorded::merged`]
//! answers what they say together.

use crate::v1::{IngestMode, RecordedBatch, SignalsRecorded};

impl SignalsRecorded {
    /// What every publication folded into this message says together:
    /// the earliest and latest `occurred_at`, the total signal count, and
    /// LIVE when any publication was live (BACKFILL only when all were).
    /// A message from a publisher that predates `batches` answers its own
    /// singular fields.
    pub fn merged(&self) -> RecordedBatch {
        if self.batches.is_empty() {
            return RecordedBatch {
                earliest_occurred_at: self.earliest_occurred_at,
                latest_occurred_at: self.latest_occurred_at,
                signal_count: self.signal_count,
                mode: self.mode,
            };
        }
        let key = |t: &prost_types::Timestamp| (t.seconds, t.nanos);
        let mut out = RecordedBatch {
            mode: IngestMode::Backfill as i32,
            ..RecordedBatch::default()
        };
        for b in &self.batches {
            if let Some(t) = b.earliest_occurred_at
                && out.earliest_occurred_at.is_none_or(|e| key(&t) < key(&e))
            {
                out.earliest_occurred_at = Some(t);
            }
            if let Some(t) = b.latest_occurred_at
                && out.latest_occurred_at.is_none_or(|l| key(&t) > key(&l))
            {
                out.latest_occurred_at = Some(t);
            }
            out.signal_count = out.signal_count.saturating_add(b.signal_count);
            if b.mode() != IngestMode::Backfill {
                out.mode = IngestMode::Live as i32;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    fn publication(earliest: i64, latest: i64, n: i64, mode: IngestMode) -> SignalsRecorded {
        SignalsRecorded {
            tenant_id: "t".into(),
            account_id: "acme".into(),
            earliest_occurred_at: ts(earliest),
            latest_occurred_at: ts(latest),
            signal_count: n,
            mode: mode as i32,
            routable: Vec::new(),
            batches: vec![RecordedBatch {
                earliest_occurred_at: ts(earliest),
                latest_occurred_at: ts(latest),
                signal_count: n,
                mode: mode as i32,
            }],
        }
    }

    #[test]
    fn concatenated_publications_merge_min_max_sum_and_live_wins() {
        // A backfill of an old month, then a live batch, folded by the bus.
        let mut bytes = publication(100, 200, 40, IngestMode::Backfill).encode_to_vec();
        bytes.extend(publication(5_000, 5_001, 2, IngestMode::Live).encode_to_vec());
        let folded = SignalsRecorded::decode(bytes.as_slice()).expect("decodes");
        let m = folded.merged();
        assert_eq!(m.earliest_occurred_at, ts(100));
        assert_eq!(m.latest_occurred_at, ts(5_001));
        assert_eq!(m.signal_count, 42);
        assert_eq!(m.mode(), IngestMode::Live);
        // The other way round, live first: still LIVE, still from 100.
        let mut bytes = publication(5_000, 5_001, 2, IngestMode::Live).encode_to_vec();
        bytes.extend(publication(100, 200, 40, IngestMode::Backfill).encode_to_vec());
        let m = SignalsRecorded::decode(bytes.as_slice())
            .expect("decodes")
            .merged();
        assert_eq!(
            (m.earliest_occurred_at, m.mode()),
            (ts(100), IngestMode::Live)
        );
    }

    #[test]
    fn all_backfill_stays_backfill() {
        let mut bytes = publication(1, 2, 1, IngestMode::Backfill).encode_to_vec();
        bytes.extend(publication(3, 4, 1, IngestMode::Backfill).encode_to_vec());
        let m = SignalsRecorded::decode(bytes.as_slice())
            .expect("decodes")
            .merged();
        assert_eq!(m.mode(), IngestMode::Backfill);
        assert_eq!(m.signal_count, 2);
    }
}
