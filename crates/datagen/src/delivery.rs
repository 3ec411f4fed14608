//! Delivering a dataset the way clients do: out of order, with late
//! signals for past months, in batches of one ingest mode each.

use retain_proto::v1;

use crate::Dataset;
use crate::calendar::{DAY, month_start};
use crate::rng::SplitMix64;

/// The largest batch the ingestion service takes by default.
pub const MAX_BATCH_SIGNALS: usize = 5_000;

/// The ingestion service's default `max_live_age_days`: older signals go
/// as `BACKFILL`.
pub const MAX_LIVE_AGE_DAYS: i64 = 30;

/// Margin kept inside the live window: a signal is sent `LIVE` only when
/// it is younger than 30 days minus this, so a dataset generated at `now`
/// may be sent up to an hour later and still be accepted.
pub const LIVE_MARGIN_SECONDS: i64 = 3_600;

/// The share of past months' signals held back and delivered last.
pub const LATE_FRACTION: f64 = 0.05;

/// The mode to send a signal that occurred at `occurred_at` (seconds) in,
/// at `now`: `LIVE` within the last 30 days (less [`LIVE_MARGIN_SECONDS`]),
/// `BACKFILL` before.
pub fn mode_for(occurred_at: i64, now: i64) -> v1::IngestMode {
    if occurred_at >= now - MAX_LIVE_AGE_DAYS * DAY + LIVE_MARGIN_SECONDS {
        v1::IngestMode::Live
    } else {
        v1::IngestMode::Backfill
    }
}

/// Signals in delivery order.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Every signal of the dataset once, shuffled; the last
    /// [`Delivery::late`] are the late ones.
    pub signals: Vec<v1::Signal>,
    /// How many signals at the end are late signals for past months (all
    /// occurred before the calendar month of `now`).
    pub late: usize,
    /// The dataset's `now`, which decides each signal's mode.
    pub now: i64,
}

impl Delivery {
    /// The signals delivered on time.
    pub fn on_time(&self) -> &[v1::Signal] {
        &self.signals[..self.signals.len() - self.late]
    }

    /// The late signals, delivered after all the others.
    pub fn late_signals(&self) -> &[v1::Signal] {
        &self.signals[self.signals.len() - self.late..]
    }

    /// The delivery as batches of at most `max` signals (clamped to
    /// 1–[`MAX_BATCH_SIGNALS`]), each of one mode: every late signal comes
    /// in a batch after every on-time one.
    pub fn batches(&self, max: usize) -> Vec<Batch> {
        let mut out = batches(self.on_time(), self.now, max);
        out.extend(batches(self.late_signals(), self.now, max));
        out
    }
}

/// One `IngestSignals` call's worth of signals, all of one mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `LIVE` or `BACKFILL`.
    pub mode: v1::IngestMode,
    /// The signals (1 to [`MAX_BATCH_SIGNALS`]).
    pub signals: Vec<v1::Signal>,
}

impl Batch {
    /// The request to send (not all-or-nothing).
    pub fn request(self) -> v1::IngestSignalsRequest {
        v1::IngestSignalsRequest {
            signals: self.signals,
            mode: self.mode as i32,
            all_or_nothing: false,
        }
    }
}

/// Splits `signals` into batches of at most `max` (clamped to
/// 1–[`MAX_BATCH_SIGNALS`]) of one mode each (see [`mode_for`]), keeping
/// the order: each run of `max` consecutive signals becomes its `BACKFILL`
/// batch, then its `LIVE` batch.
pub fn batches(signals: &[v1::Signal], now: i64, max: usize) -> Vec<Batch> {
    let max = max.clamp(1, MAX_BATCH_SIGNALS);
    let mut out = Vec::new();
    for chunk in signals.chunks(max) {
        for mode in [v1::IngestMode::Backfill, v1::IngestMode::Live] {
            let part: Vec<v1::Signal> = chunk
                .iter()
                .filter(|s| mode_for(seconds(s), now) == mode)
                .cloned()
                .collect();
            if !part.is_empty() {
                out.push(Batch {
                    mode,
                    signals: part,
                });
            }
        }
    }
    out
}

fn seconds(s: &v1::Signal) -> i64 {
    s.occurred_at.as_ref().map_or(i64::MIN, |t| t.seconds)
}

pub(crate) fn in_delivery_order(data: &Dataset, seed: u64) -> Delivery {
    let now = data.config.now;
    let this_month = month_start(now);
    let mut rng = SplitMix64::stream(seed, 0xDE11_7E41);
    let mut on_time = Vec::with_capacity(data.signals.len());
    let mut late = Vec::new();
    for s in &data.signals {
        if seconds(s) < this_month && rng.chance(LATE_FRACTION) {
            late.push(s.clone());
        } else {
            on_time.push(s.clone());
        }
    }
    rng.shuffle(&mut on_time);
    rng.shuffle(&mut late);
    let n_late = late.len();
    on_time.extend(late);
    Delivery {
        signals: on_time,
        late: n_late,
        now,
    }
}
