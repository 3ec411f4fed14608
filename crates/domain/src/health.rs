//! The customer health score (docs/HEALTH.md, docs/KPIS.md "Health score"): scoring models, normalisers, the
//! missing-data policy, bands with hysteresis, and explanations.
//!
//! [`score`] does a few dozen arithmetic operations per account and never
//! allocates: dimension results live in a fixed array of at most
//! [`MAX_DIMENSIONS`].

use crate::validation::{MAX_KEY_LEN, MAX_LABEL_LEN, Text, Violations, check_len, check_text};

/// Fewest dimensions a model may have.
pub const MIN_DIMENSIONS: usize = 4;
/// Most dimensions a model may have.
pub const MAX_DIMENSIONS: usize = 6;

/// Health bands, from worst to best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Band {
    /// Sick, high churn risk.
    Red,
    /// Somewhat healthy.
    Yellow,
    /// Very healthy.
    Green,
    /// Power user, expansion candidate.
    Thriving,
}

impl Band {
    /// Lower-case name (`red`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Red => "red",
            Self::Yellow => "yellow",
            Self::Green => "green",
            Self::Thriving => "thriving",
        }
    }
}

/// Band upper bounds: Red ≤ `red_max` < Yellow ≤ `yellow_max` < Green ≤
/// `green_max` < Thriving.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    /// Upper bound of Red (default 40).
    pub red_max: f64,
    /// Upper bound of Yellow (default 70).
    pub yellow_max: f64,
    /// Upper bound of Green (default 100).
    pub green_max: f64,
}

impl Default for Bands {
    fn default() -> Self {
        Self {
            red_max: 40.0,
            yellow_max: 70.0,
            green_max: 100.0,
        }
    }
}

const BANDS: [Band; 4] = [Band::Red, Band::Yellow, Band::Green, Band::Thriving];

impl Bands {
    /// The band of a score, without hysteresis.
    pub fn of(&self, score: f64) -> Band {
        if score <= self.red_max {
            Band::Red
        } else if score <= self.yellow_max {
            Band::Yellow
        } else if score <= self.green_max {
            Band::Green
        } else {
            Band::Thriving
        }
    }

    /// The boundary below `band` (its exclusive lower bound), none for Red.
    fn lower(&self, band: Band) -> Option<f64> {
        match band {
            Band::Red => None,
            Band::Yellow => Some(self.red_max),
            Band::Green => Some(self.yellow_max),
            Band::Thriving => Some(self.green_max),
        }
    }

    /// The boundary above `band` (its inclusive upper bound), none for Thriving.
    fn upper(&self, band: Band) -> Option<f64> {
        match band {
            Band::Red => Some(self.red_max),
            Band::Yellow => Some(self.yellow_max),
            Band::Green => Some(self.green_max),
            Band::Thriving => None,
        }
    }

    /// The band after `score`, given the previous band and a hysteresis
    /// margin: the band changes only when the score passes a boundary by
    /// more than `margin`; a score within the margin keeps the previous band.
    pub fn next(&self, previous: Option<Band>, score: f64, margin: f64) -> Band {
        let Some(prev) = previous else {
            return self.of(score);
        };
        let raw = self.of(score);
        if raw > prev {
            // Highest band above prev whose lower boundary is passed by more than the margin.
            BANDS
                .iter()
                .rev()
                .copied()
                .find(|&b| {
                    b > prev && b <= raw && self.lower(b).is_some_and(|l| score > l + margin)
                })
                .unwrap_or(prev)
        } else if raw < prev {
            BANDS
                .iter()
                .copied()
                .find(|&b| {
                    b < prev && b >= raw && self.upper(b).is_some_and(|u| score < u - margin)
                })
                .unwrap_or(prev)
        } else {
            prev
        }
    }
}

/// What a dimension does when its metric has no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingData {
    /// Spread its weight over the dimensions with data, in proportion.
    #[default]
    Redistribute,
    /// Sub-score 50.
    Neutral,
    /// Sub-score 0.
    Zero,
}

/// The snapshot metric a dimension reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Active days in the last 30.
    ActiveDays30d,
    /// Mean of the latest NPS answer per user (0–10).
    NpsMean,
    /// Tickets opened in the last 30 days.
    TicketsOpened30d,
    /// Billing status (categorical).
    BillingStatus,
    /// Action counts in the last 30 days.
    Actions30d,
    /// Onboarding engagement score (0–100).
    Onboarding,
}

impl Metric {
    /// The metric's name in the API.
    pub fn key(self) -> &'static str {
        match self {
            Self::ActiveDays30d => "active_days_30d",
            Self::NpsMean => "nps_mean",
            Self::TicketsOpened30d => "tickets_opened_30d",
            Self::BillingStatus => "billing_status",
            Self::Actions30d => "actions_30d",
            Self::Onboarding => "onboarding",
        }
    }

    /// Parses a metric name.
    pub fn parse(key: &str) -> Option<Self> {
        [
            Self::ActiveDays30d,
            Self::NpsMean,
            Self::TicketsOpened30d,
            Self::BillingStatus,
            Self::Actions30d,
            Self::Onboarding,
        ]
        .into_iter()
        .find(|m| m.key() == key)
    }
}

/// Billing status of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BillingStatus {
    /// Paid up.
    Current,
    /// Invoice overdue.
    Overdue,
    /// Payment failed.
    PaymentFailed,
    /// In collections.
    Collections,
}

impl BillingStatus {
    /// Key (`payment_failed`).
    pub fn key(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Overdue => "overdue",
            Self::PaymentFailed => "payment_failed",
            Self::Collections => "collections",
        }
    }
}

/// How a raw metric becomes a sub-score.
#[derive(Debug, Clone, PartialEq)]
pub enum Normaliser {
    /// The first row whose `at_most` ≥ raw gives the sub-score; above
    /// every row, `otherwise`.
    Thresholds {
        /// `(at_most, sub_score)`, ascending `at_most`.
        rows: Vec<(f64, f64)>,
        /// Sub-score above the last row.
        otherwise: f64,
    },
    /// `100 × raw / target`, capped at `cap` (over-use may pass 100).
    LinearToTarget {
        /// Target (> 0).
        target: f64,
        /// Maximum sub-score.
        cap: f64,
    },
    /// Category to sub-score.
    Categorical {
        /// `(category key, sub_score)`.
        scores: Vec<(String, f64)>,
        /// Unknown categories.
        otherwise: f64,
    },
    /// Σ impact × frequency over actions, capped.
    ActionImpact {
        /// `(action key, impact)`.
        impacts: Vec<(String, f64)>,
        /// Maximum sub-score.
        cap: f64,
    },
}

/// One dimension of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    /// Stable key (`product_usage`).
    pub key: String,
    /// Weight; all weights sum to 100.
    pub weight: f64,
    /// Metric read.
    pub metric: Metric,
    /// Normaliser.
    pub normaliser: Normaliser,
}

/// A versioned scoring model.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoringModel {
    /// Version (models are never edited in place).
    pub version: i64,
    /// Segment; `None` = tenant default.
    pub segment: Option<String>,
    /// 4–6 dimensions.
    pub dimensions: Vec<Dimension>,
    /// Missing-data policy.
    pub missing: MissingData,
    /// Band boundaries.
    pub bands: Bands,
    /// Hysteresis margin in points (default 2).
    pub hysteresis: f64,
}

impl Default for ScoringModel {
    /// The built-in model (docs/HEALTH.md): usage 40, NPS 10, support 20,
    /// billing 30.
    fn default() -> Self {
        Self {
            version: 1,
            segment: None,
            dimensions: vec![
                Dimension {
                    key: "product_usage".into(),
                    weight: 40.0,
                    metric: Metric::ActiveDays30d,
                    normaliser: Normaliser::LinearToTarget {
                        target: 20.0,
                        cap: 150.0,
                    },
                },
                Dimension {
                    key: "nps".into(),
                    weight: 10.0,
                    metric: Metric::NpsMean,
                    normaliser: Normaliser::LinearToTarget {
                        target: 10.0,
                        cap: 100.0,
                    },
                },
                Dimension {
                    key: "support_tickets".into(),
                    weight: 20.0,
                    metric: Metric::TicketsOpened30d,
                    normaliser: Normaliser::Thresholds {
                        rows: vec![(0.0, 100.0), (1.0, 70.0), (2.0, 40.0)],
                        otherwise: 0.0,
                    },
                },
                Dimension {
                    key: "billing_status".into(),
                    weight: 30.0,
                    metric: Metric::BillingStatus,
                    normaliser: Normaliser::Categorical {
                        scores: vec![
                            ("current".into(), 100.0),
                            ("overdue".into(), 30.0),
                            ("payment_failed".into(), 10.0),
                            ("collections".into(), 0.0),
                        ],
                        otherwise: 0.0,
                    },
                },
            ],
            missing: MissingData::Redistribute,
            bands: Bands::default(),
            hysteresis: 2.0,
        }
    }
}

/// Most rows, categories or actions one dimension may list.
pub const MAX_ENTRIES: usize = 100;

/// The keys of a categorical map or an action-impact table: at most
/// [`MAX_ENTRIES`] (none read beyond), each one line of at most
/// [`MAX_KEY_LEN`] bytes.
fn check_keys<'a>(
    v: &mut Violations,
    field: &str,
    keys: impl ExactSizeIterator<Item = &'a String>,
) {
    if !check_len(v, field, keys.len(), MAX_ENTRIES) {
        return;
    }
    for key in keys {
        check_text(
            v,
            &format!("{field}[{}]", crate::validation::quote(key)),
            key,
            Text::Line(MAX_KEY_LEN),
            true,
        );
    }
}

impl ScoringModel {
    /// Checks what a client may newly store in a model — its texts and the
    /// size of its lists (docs/ARCHITECTURE.md, "Text a client stores") —
    /// beside [`ScoringModel::validate`]'s structure. Models stored before
    /// these rules are read back with `validate` alone.
    pub fn check_texts(&self) -> Result<(), Violations> {
        let mut v = Violations::new();
        if let Some(segment) = &self.segment {
            check_text(&mut v, "segment", segment, Text::Line(MAX_LABEL_LEN), false);
        }
        for (i, d) in self.dimensions.iter().enumerate().take(MAX_DIMENSIONS) {
            let f = |name: &str| format!("dimensions[{i}].{name}");
            check_text(&mut v, &f("key"), &d.key, Text::Line(MAX_KEY_LEN), true);
            match &d.normaliser {
                Normaliser::Thresholds { rows, .. } => {
                    check_len(&mut v, &f("thresholds.rows"), rows.len(), MAX_ENTRIES);
                }
                Normaliser::Categorical { scores, .. } => {
                    check_keys(
                        &mut v,
                        &f("categorical.scores"),
                        scores.iter().map(|s| &s.0),
                    );
                }
                Normaliser::ActionImpact { impacts, .. } => {
                    check_keys(
                        &mut v,
                        &f("action_impact.impacts"),
                        impacts.iter().map(|s| &s.0),
                    );
                }
                Normaliser::LinearToTarget { .. } => {}
            }
        }
        v.into_result(())
    }
}

impl ScoringModel {
    /// Checks the model; every problem names its field
    /// (`dimensions[2].weight: weights sum to 95, must be 100`).
    pub fn validate(&self) -> Result<(), Violations> {
        let mut v = Violations::new();
        let n = self.dimensions.len();
        if !(MIN_DIMENSIONS..=MAX_DIMENSIONS).contains(&n) {
            v.push(
                "dimensions",
                format!("has {n} dimensions, must have {MIN_DIMENSIONS} to {MAX_DIMENSIONS}"),
            );
        }
        let mut sum = 0.0;
        for (i, d) in self.dimensions.iter().enumerate().take(MAX_DIMENSIONS + 1) {
            let f = |name: &str| format!("dimensions[{i}].{name}");
            if d.key.trim().is_empty() {
                v.push(f("key"), "must not be empty");
            } else if self.dimensions[..i].iter().any(|o| o.key == d.key) {
                v.push(
                    f("key"),
                    format!("{:?} is used by an earlier dimension", d.key),
                );
            }
            if !(d.weight.is_finite() && d.weight > 0.0) {
                v.push(
                    f("weight"),
                    format!("{} must be a positive number", d.weight),
                );
            }
            sum += d.weight;
            match &d.normaliser {
                Normaliser::Thresholds { rows, otherwise } => {
                    if rows.is_empty() {
                        v.push(f("thresholds.rows"), "needs at least one row");
                    }
                    // The first row out of order is enough to name.
                    if let Some(j) = rows.windows(2).position(|w| w[1].0 <= w[0].0) {
                        v.push(
                            format!("dimensions[{i}].thresholds.rows[{}].at_most", j + 1),
                            "must be greater than the row before",
                        );
                    }
                    if rows
                        .iter()
                        .any(|r| !r.0.is_finite() || !r.1.is_finite() || r.1 < 0.0)
                        || !otherwise.is_finite()
                        || *otherwise < 0.0
                    {
                        v.push(
                            f("thresholds"),
                            "bounds must be finite and sub-scores non-negative",
                        );
                    }
                }
                Normaliser::LinearToTarget { target, cap } => {
                    if !(target.is_finite() && *target > 0.0) {
                        v.push(f("linear.target"), format!("{target} must be positive"));
                    }
                    if !(cap.is_finite() && *cap > 0.0) {
                        v.push(f("linear.cap"), format!("{cap} must be positive"));
                    }
                }
                Normaliser::Categorical { scores, otherwise } => {
                    if scores.is_empty() {
                        v.push(f("categorical.scores"), "needs at least one category");
                    }
                    check_keys(
                        &mut v,
                        &f("categorical.scores"),
                        scores.iter().map(|s| &s.0),
                    );
                    if scores.iter().any(|s| !s.1.is_finite() || s.1 < 0.0)
                        || !otherwise.is_finite()
                        || *otherwise < 0.0
                    {
                        v.push(
                            f("categorical.scores"),
                            "sub-scores must be finite and non-negative",
                        );
                    }
                }
                Normaliser::ActionImpact { impacts, cap } => {
                    if impacts.is_empty() {
                        v.push(f("action_impact.impacts"), "needs at least one action");
                    }
                    check_keys(
                        &mut v,
                        &f("action_impact.impacts"),
                        impacts.iter().map(|s| &s.0),
                    );
                    if impacts.iter().any(|s| !s.1.is_finite()) || !(cap.is_finite() && *cap > 0.0)
                    {
                        v.push(
                            f("action_impact"),
                            "impacts must be finite and the cap positive",
                        );
                    }
                }
            }
            let compatible = matches!(
                (d.metric, &d.normaliser),
                (Metric::BillingStatus, Normaliser::Categorical { .. })
                    | (Metric::Actions30d, Normaliser::ActionImpact { .. })
                    | (
                        Metric::ActiveDays30d
                            | Metric::NpsMean
                            | Metric::TicketsOpened30d
                            | Metric::Onboarding,
                        Normaliser::Thresholds { .. } | Normaliser::LinearToTarget { .. }
                    )
            );
            if !compatible {
                v.push(
                    f("metric"),
                    format!("{} cannot be read by this normaliser", d.metric.key()),
                );
            }
        }
        if n > 0 && (sum - 100.0).abs() > 1e-9 {
            v.push(
                format!("dimensions[{}].weight", n - 1),
                format!("weights sum to {sum}, must be 100"),
            );
        }
        let b = self.bands;
        if !(b.red_max.is_finite()
            && b.yellow_max.is_finite()
            && b.green_max.is_finite()
            && 0.0 <= b.red_max
            && b.red_max < b.yellow_max
            && b.yellow_max < b.green_max)
        {
            v.push(
                "bands",
                format!(
                    "need 0 ≤ red_max < yellow_max < green_max (got {}, {}, {})",
                    b.red_max, b.yellow_max, b.green_max
                ),
            );
        }
        if !(self.hysteresis.is_finite() && self.hysteresis >= 0.0) {
            v.push(
                "hysteresis",
                format!("{} must be zero or positive", self.hysteresis),
            );
        }
        v.into_result(())
    }
}

/// An account's health inputs; `None` means no data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthSnapshot {
    /// Active days in the last 30.
    pub active_days_30d: Option<f64>,
    /// Mean of the latest NPS answer per user.
    pub nps_mean: Option<f64>,
    /// Tickets opened in the last 30 days.
    pub tickets_opened_30d: Option<f64>,
    /// Billing status.
    pub billing_status: Option<BillingStatus>,
    /// `(action key, count)` in the last 30 days. `None` = not measured
    /// (missing data); `Some(vec![])` = measured, no actions (sub-score 0:
    /// no use is data, and using the product can only raise the score).
    pub actions_30d: Option<Vec<(String, f64)>>,
    /// Onboarding engagement score.
    pub onboarding: Option<f64>,
}

impl Normaliser {
    fn number(&self, raw: f64) -> f64 {
        match self {
            Self::Thresholds { rows, otherwise } => {
                rows.iter().find(|r| raw <= r.0).map_or(*otherwise, |r| r.1)
            }
            Self::LinearToTarget { target, cap } => (100.0 * raw / target).clamp(0.0, *cap),
            _ => 0.0,
        }
    }
}

/// The sub-score of dimension `d` for `snap`, `None` without data. A
/// non-finite input (NaN, ±∞) is no data: it never reaches a band.
#[inline]
fn sub_score(d: &Dimension, snap: &HealthSnapshot) -> Option<(f64, f64)> {
    let (raw, sub) = raw_and_sub_score(d, snap)?;
    (sub.is_finite() && (raw.is_finite() || d.metric == Metric::BillingStatus))
        .then_some((raw, sub))
}

#[inline]
fn raw_and_sub_score(d: &Dimension, snap: &HealthSnapshot) -> Option<(f64, f64)> {
    match (d.metric, &d.normaliser) {
        (Metric::BillingStatus, Normaliser::Categorical { scores, otherwise }) => {
            let key = snap.billing_status?.key();
            Some((
                f64::NAN,
                scores
                    .iter()
                    .find(|s| s.0 == key)
                    .map_or(*otherwise, |s| s.1),
            ))
        }
        (Metric::Actions30d, Normaliser::ActionImpact { impacts, cap }) => {
            let actions = snap.actions_30d.as_ref()?;
            if actions.iter().any(|(_, freq)| !freq.is_finite()) {
                return None;
            }
            let total: f64 = actions
                .iter()
                .map(|(k, freq)| {
                    impacts
                        .iter()
                        .find(|i| &i.0 == k)
                        .map_or(0.0, |i| i.1 * freq)
                })
                .sum();
            Some((total, total.clamp(0.0, *cap)))
        }
        (metric, n) => {
            let raw = match metric {
                Metric::ActiveDays30d => snap.active_days_30d,
                Metric::NpsMean => snap.nps_mean,
                Metric::TicketsOpened30d => snap.tickets_opened_30d,
                Metric::Onboarding => snap.onboarding,
                _ => None,
            }?;
            Some((raw, n.number(raw)))
        }
    }
}

/// One dimension's part of a score.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DimensionScore {
    /// Index into the model's dimensions.
    pub index: usize,
    /// Raw metric (NaN for categorical metrics and missing data).
    pub raw: f64,
    /// Sub-score applied.
    pub sub_score: f64,
    /// Weight applied after the missing-data policy.
    pub effective_weight: f64,
    /// `effective_weight × sub_score / 100`.
    pub contribution: f64,
    /// The sub-score's own band.
    pub band: Option<Band>,
    /// The metric had no data.
    pub missing: bool,
}

/// A previous score, for deltas and hysteresis.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviousScore {
    /// The score.
    pub score: f64,
    /// Its band.
    pub band: Band,
    /// The version of the model that scored it.
    pub model_version: i64,
    /// Its contributions, by dimension key.
    pub contributions: Vec<(String, f64)>,
}

impl PreviousScore {
    /// The contribution of the dimension `key`, if it was scored.
    pub fn contribution(&self, key: &str) -> Option<f64> {
        self.contributions
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, c)| *c)
    }
}

/// A health score with its explanation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthScore {
    /// CHS, one decimal.
    pub score: f64,
    /// Band after hysteresis.
    pub band: Band,
    /// Per-dimension detail; the first `len` entries are used.
    pub dimensions: [DimensionScore; MAX_DIMENSIONS],
    /// Dimensions in use.
    pub len: usize,
    /// `score − previous score`.
    pub delta: Option<f64>,
    /// Index of the dimension whose contribution changed most, compared by
    /// dimension key with a previous score of the same model version;
    /// `None` when nothing moved or the model changed.
    pub top_mover: Option<usize>,
    /// Version of the model that produced this score.
    pub model_version: i64,
    /// The previous score came from another model version: contributions
    /// are not comparable, so no top mover is named.
    pub model_changed: bool,
}

impl HealthScore {
    /// The used dimension entries.
    pub fn dimensions(&self) -> &[DimensionScore] {
        &self.dimensions[..self.len]
    }

    /// This score as the previous one of the next; `model` is the model
    /// that produced it (its dimension keys name the contributions).
    pub fn as_previous(&self, model: &ScoringModel) -> PreviousScore {
        PreviousScore {
            score: self.score,
            band: self.band,
            model_version: self.model_version,
            contributions: self
                .dimensions()
                .iter()
                .filter_map(|d| {
                    let key = &model.dimensions.get(d.index)?.key;
                    Some((key.clone(), d.contribution))
                })
                .collect(),
        }
    }

    /// Indices of the dimensions without data.
    pub fn missing(&self) -> impl Iterator<Item = usize> + '_ {
        self.dimensions()
            .iter()
            .filter(|d| d.missing)
            .map(|d| d.index)
    }
}

/// Rounds to one decimal (the CHS's precision).
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Fixed-point unit of the CHS sums: 10⁻⁹ point.
const FIXED: f64 = 1e9;

/// `x` in units of 10⁻⁹, rounded to nearest (halves away from zero),
/// saturating beyond ±9.2 × 10⁹ points. Integer sums of these do not
/// depend on the order of the terms, so the CHS of a model does not depend
/// on the order of its dimensions.
#[inline]
fn to_fixed(x: f64) -> i64 {
    let y = x * FIXED;
    // Truncating y ± ½ rounds half away from zero; `as` saturates.
    (y + if y < 0.0 { -0.5 } else { 0.5 }) as i64
}

/// A fixed-point sum rounded half up to one decimal.
#[inline]
fn fixed_round1(sum: i64) -> f64 {
    const UNIT: i64 = 100_000_000; // 0.1 point in units of 10⁻⁹
    (sum.saturating_add(UNIT / 2).div_euclid(UNIT)) as f64 / 10.0
}

/// Combines per-dimension sub-scores (`None` = no data) by the model's
/// weights and missing-data policy. `None` when no dimension has data and
/// the policy is `Redistribute`.
#[inline]
pub fn combine(
    model: &ScoringModel,
    subs: &[Option<f64>],
) -> Option<(f64, [DimensionScore; MAX_DIMENSIONS])> {
    let mut out = [DimensionScore::default(); MAX_DIMENSIONS];
    // A non-finite sub-score is no data.
    let present = |s: &Option<f64>| s.filter(|v| v.is_finite());
    let present_weight = model
        .dimensions
        .iter()
        .zip(subs)
        .filter(|(_, s)| present(s).is_some())
        .map(|(d, _)| to_fixed(d.weight))
        .fold(0i64, i64::saturating_add) as f64
        / FIXED;
    if model.missing == MissingData::Redistribute && present_weight <= 0.0 {
        return None;
    }
    let mut total = 0i64;
    for (i, (d, s)) in model
        .dimensions
        .iter()
        .zip(subs)
        .enumerate()
        .take(MAX_DIMENSIONS)
    {
        let s = present(s);
        let (sub, weight) = match (s, model.missing) {
            (Some(v), MissingData::Redistribute) => (v, d.weight * 100.0 / present_weight),
            (Some(v), _) => (v, d.weight),
            (None, MissingData::Redistribute) => (0.0, 0.0),
            (None, MissingData::Neutral) => (50.0, d.weight),
            (None, MissingData::Zero) => (0.0, d.weight),
        };
        let contribution = weight * sub / 100.0;
        total = total.saturating_add(to_fixed(contribution));
        out[i] = DimensionScore {
            index: i,
            raw: f64::NAN,
            sub_score: sub,
            effective_weight: weight,
            contribution,
            band: s.map(|v| model.bands.of(v)),
            missing: s.is_none(),
        };
    }
    Some((fixed_round1(total), out))
}

/// Scores `snap` with `model`. `previous` gives the delta, the top mover
/// and the hysteresis reference. `None` when no dimension has data under
/// the `Redistribute` policy (nothing to score).
pub fn score(
    model: &ScoringModel,
    snap: &HealthSnapshot,
    previous: Option<&PreviousScore>,
) -> Option<HealthScore> {
    let len = model.dimensions.len().min(MAX_DIMENSIONS);
    let mut subs = [None; MAX_DIMENSIONS];
    let mut raws = [f64::NAN; MAX_DIMENSIONS];
    for (i, d) in model.dimensions.iter().take(len).enumerate() {
        if let Some((raw, sub)) = sub_score(d, snap) {
            subs[i] = Some(sub);
            raws[i] = raw;
        }
    }
    let (total, mut dims) = combine(model, &subs[..len])?;
    for (d, raw) in dims.iter_mut().zip(raws) {
        d.raw = raw;
    }
    let band = model
        .bands
        .next(previous.map(|p| p.band), total, model.hysteresis);
    let model_changed = previous.is_some_and(|p| p.model_version != model.version);
    let top_mover = previous.filter(|_| !model_changed).and_then(|p| {
        dims[..len]
            .iter()
            .zip(&model.dimensions)
            .map(|(d, dim)| {
                let before = p.contribution(&dim.key).unwrap_or(0.0);
                (d.index, (d.contribution - before).abs())
            })
            .filter(|(_, change)| *change > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    });
    Some(HealthScore {
        score: total,
        band,
        dimensions: dims,
        len,
        delta: previous.map(|p| round1(total - p.score)),
        top_mover,
        model_version: model.version,
        model_changed,
    })
}

/// The dimension with the lowest sub-score among those with data (the one
/// a Yellow email should target).
pub fn weakest(model: &ScoringModel, s: &HealthScore) -> Option<usize> {
    s.dimensions()
        .iter()
        .filter(|d| !d.missing)
        .min_by(|a, b| a.sub_score.total_cmp(&b.sub_score))
        .map(|d| d.index)
        .filter(|&i| i < model.dimensions.len())
}

/// "support_tickets: red; product_usage: green; …", worst first.
pub fn explain(model: &ScoringModel, s: &HealthScore) -> String {
    let mut dims: Vec<&DimensionScore> = s.dimensions().iter().collect();
    dims.sort_by(|a, b| a.sub_score.total_cmp(&b.sub_score));
    dims.iter()
        .map(|d| {
            let key = &model.dimensions[d.index].key;
            match d.band {
                Some(b) => format!("{key}: {}", b.name()),
                None => format!("{key}: no data"),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The score in words, worst dimension first, each with the number behind
/// it: "support_tickets: red — 3 tickets opened in 30 days (integration
/// ×3); product_usage: green — 24 of 20 target active days; …". `snap` is
/// what was scored; `topics` the ticket topics of the window with their
/// counts, most frequent first.
pub fn describe(
    model: &ScoringModel,
    s: &HealthScore,
    snap: &HealthSnapshot,
    topics: &[(String, u32)],
) -> String {
    let mut dims: Vec<&DimensionScore> = s.dimensions().iter().collect();
    dims.sort_by(|a, b| a.sub_score.total_cmp(&b.sub_score));
    dims.iter()
        .filter_map(|d| {
            let dim = model.dimensions.get(d.index)?;
            let band = match d.band {
                Some(b) => b.name(),
                None => {
                    let policy = match model.missing {
                        MissingData::Redistribute => "its weight spread over the others",
                        MissingData::Neutral => "scored 50",
                        MissingData::Zero => "scored 0",
                    };
                    return Some(format!("{}: no data ({policy})", dim.key));
                }
            };
            let detail = match dim.metric {
                Metric::ActiveDays30d => match dim.normaliser {
                    Normaliser::LinearToTarget { target, .. } => {
                        format!("{} of {} target active days", d.raw, target)
                    }
                    _ => format!("{} active days in 30", d.raw),
                },
                Metric::NpsMean => format!("mean NPS {:.1}", d.raw),
                Metric::TicketsOpened30d => {
                    let n = d.raw;
                    let mut text = format!(
                        "{n} ticket{} opened in 30 days",
                        if n == 1.0 { "" } else { "s" }
                    );
                    if !topics.is_empty() {
                        let list: Vec<String> =
                            topics.iter().map(|(t, c)| format!("{t} ×{c}")).collect();
                        text.push_str(&format!(" ({})", list.join(", ")));
                    }
                    text
                }
                Metric::BillingStatus => format!(
                    "billing {}",
                    snap.billing_status.map_or("unknown", BillingStatus::key)
                ),
                Metric::Actions30d => format!("action impact {}", d.raw),
                Metric::Onboarding => format!("onboarding {:.0} % done", d.raw),
            };
            Some(format!("{}: {band} — {detail}", dim.key))
        })
        .collect::<Vec<_>>()
        .join("; ")
}
