//! Wire ↔ domain conversions of the health service: scoring models, the
//! snapshot scored, and a score with its explanation.
//!
//! A model's numeric fields are proto3 scalars, so 0 means "not set" and
//! takes the documented default: `linear.cap` and `action_impact.cap` 150,
//! `linear.scale` 1, `red_max` 40, `yellow_max` 70, `green_max` 100 (all
//! three when all three are 0), `hysteresis` 2.

use retain_domain::Violations;
use retain_domain::health::{
    self, Band, Bands, BillingStatus, Dimension, HealthScore, HealthSnapshot, Metric, MissingData,
    Normaliser, ScoringModel,
};

use crate::v1;

/// A model a client sends (`PutScoringModel`, `PreviewScoringModel`):
/// [`model_from_proto`]'s checks and the rules of every text a client
/// stores, every problem under `model.`.
pub fn model_from_request(m: &v1::ScoringModel) -> Result<ScoringModel, Violations> {
    let model = model_from_proto(m)?;
    model.check_texts().map_err(|v| v.prefixed("model."))?;
    Ok(model)
}

/// A model from the wire, checked: every problem names its field under
/// `model.` (`model.dimensions[2].metric`). A stored model is read back
/// with this (not [`model_from_request`]), so rules added for new models
/// never stop an old one from scoring.
pub fn model_from_proto(m: &v1::ScoringModel) -> Result<ScoringModel, Violations> {
    let mut v = Violations::new();
    if m.dimensions.len() > retain_domain::health::MAX_DIMENSIONS {
        // Nothing more is read of a model that cannot be valid.
        v.push(
            "model.dimensions",
            format!(
                "has {} dimensions, must have {} to {}",
                m.dimensions.len(),
                retain_domain::health::MIN_DIMENSIONS,
                retain_domain::health::MAX_DIMENSIONS
            ),
        );
        return Err(v);
    }
    let mut dimensions = Vec::with_capacity(m.dimensions.len());
    for (i, d) in m.dimensions.iter().enumerate() {
        let f = |name: &str| format!("model.dimensions[{i}].{name}");
        let Some(metric) = Metric::parse(&d.metric) else {
            v.push(
                f("metric"),
                format!(
                    "{} is not a snapshot metric; use one of active_days_30d, nps_mean, tickets_opened_30d, billing_status, actions_30d, onboarding",
                    retain_domain::validation::quote(&d.metric)
                ),
            );
            continue;
        };
        let or = |x: f64, default: f64| if x == 0.0 { default } else { x };
        let normaliser = match &d.normaliser {
            None => {
                v.push(
                    f("normaliser"),
                    "is required: thresholds, linear, categorical or action_impact",
                );
                continue;
            }
            Some(v1::dimension::Normaliser::Thresholds(t)) => Normaliser::Thresholds {
                rows: t.rows.iter().map(|r| (r.at_most, r.sub_score)).collect(),
                otherwise: t.otherwise,
            },
            Some(v1::dimension::Normaliser::Linear(l)) => Normaliser::LinearToTarget {
                // 100 × raw × scale / target = 100 × raw / (target / scale).
                target: l.target / or(l.scale, 1.0),
                cap: or(l.cap, 150.0),
            },
            Some(v1::dimension::Normaliser::Categorical(c)) => {
                let mut scores: Vec<(String, f64)> =
                    c.scores.iter().map(|(k, s)| (k.clone(), *s)).collect();
                scores.sort_by(|a, b| a.0.cmp(&b.0));
                Normaliser::Categorical {
                    scores,
                    otherwise: c.otherwise,
                }
            }
            Some(v1::dimension::Normaliser::ActionImpact(a)) => {
                let mut impacts: Vec<(String, f64)> =
                    a.impacts.iter().map(|(k, s)| (k.clone(), *s)).collect();
                impacts.sort_by(|a, b| a.0.cmp(&b.0));
                Normaliser::ActionImpact {
                    impacts,
                    cap: or(a.cap, 150.0),
                }
            }
        };
        dimensions.push(Dimension {
            key: d.key.clone(),
            weight: d.weight,
            metric,
            normaliser,
        });
    }
    let missing = match v1::MissingDataPolicy::try_from(m.missing_data) {
        Ok(v1::MissingDataPolicy::Unspecified | v1::MissingDataPolicy::Redistribute) => {
            MissingData::Redistribute
        }
        Ok(v1::MissingDataPolicy::Neutral) => MissingData::Neutral,
        Ok(v1::MissingDataPolicy::Zero) => MissingData::Zero,
        Err(_) => {
            v.push(
                "model.missing_data",
                format!("{} is not a MissingDataPolicy", m.missing_data),
            );
            MissingData::Redistribute
        }
    };
    let bands = if m.red_max == 0.0 && m.yellow_max == 0.0 && m.green_max == 0.0 {
        Bands::default()
    } else {
        Bands {
            red_max: m.red_max,
            yellow_max: m.yellow_max,
            green_max: m.green_max,
        }
    };
    let model = ScoringModel {
        version: m.version,
        segment: Some(m.segment.clone()).filter(|s| !s.is_empty()),
        dimensions,
        missing,
        bands,
        hysteresis: if m.hysteresis == 0.0 {
            2.0
        } else {
            m.hysteresis
        },
    };
    if v.is_empty() {
        // Only a model whose every dimension converted is checked as a
        // whole: a dropped dimension would make the weights look wrong.
        if let Err(more) = model.validate() {
            v = more.prefixed("model.");
        }
    }
    v.into_result(model)
}

/// A domain model on the wire (what `GetScoringModel` answers for a model
/// that was never put: the built-in default).
pub fn model_to_proto(m: &ScoringModel) -> v1::ScoringModel {
    v1::ScoringModel {
        version: m.version,
        segment: m.segment.clone().unwrap_or_default(),
        dimensions: m
            .dimensions
            .iter()
            .map(|d| v1::Dimension {
                key: d.key.clone(),
                weight: d.weight,
                metric: d.metric.key().to_owned(),
                normaliser: Some(match &d.normaliser {
                    Normaliser::Thresholds { rows, otherwise } => {
                        v1::dimension::Normaliser::Thresholds(v1::ThresholdTable {
                            rows: rows
                                .iter()
                                .map(|r| v1::ThresholdRow {
                                    at_most: r.0,
                                    sub_score: r.1,
                                })
                                .collect(),
                            otherwise: *otherwise,
                        })
                    }
                    Normaliser::LinearToTarget { target, cap } => {
                        v1::dimension::Normaliser::Linear(v1::LinearToTarget {
                            target: *target,
                            cap: *cap,
                            scale: 1.0,
                        })
                    }
                    Normaliser::Categorical { scores, otherwise } => {
                        v1::dimension::Normaliser::Categorical(v1::CategoricalMap {
                            scores: scores.iter().cloned().collect(),
                            otherwise: *otherwise,
                        })
                    }
                    Normaliser::ActionImpact { impacts, cap } => {
                        v1::dimension::Normaliser::ActionImpact(v1::ActionImpact {
                            impacts: impacts.iter().cloned().collect(),
                            cap: *cap,
                        })
                    }
                }),
            })
            .collect(),
        missing_data: missing_to_proto(m.missing) as i32,
        red_max: m.bands.red_max,
        yellow_max: m.bands.yellow_max,
        green_max: m.bands.green_max,
        hysteresis: m.hysteresis,
        created_at: None,
    }
}

fn missing_to_proto(m: MissingData) -> v1::MissingDataPolicy {
    match m {
        MissingData::Redistribute => v1::MissingDataPolicy::Redistribute,
        MissingData::Neutral => v1::MissingDataPolicy::Neutral,
        MissingData::Zero => v1::MissingDataPolicy::Zero,
    }
}

/// A band on the wire.
pub fn band_to_proto(b: Band) -> v1::HealthBand {
    match b {
        Band::Red => v1::HealthBand::Red,
        Band::Yellow => v1::HealthBand::Yellow,
        Band::Green => v1::HealthBand::Green,
        Band::Thriving => v1::HealthBand::Thriving,
    }
}

/// A wire band; `None` for `UNSPECIFIED` and unknown numbers.
pub fn band_from_proto(value: i32) -> Option<Band> {
    match v1::HealthBand::try_from(value).ok()? {
        v1::HealthBand::Red => Some(Band::Red),
        v1::HealthBand::Yellow => Some(Band::Yellow),
        v1::HealthBand::Green => Some(Band::Green),
        v1::HealthBand::Thriving => Some(Band::Thriving),
        v1::HealthBand::Unspecified => None,
    }
}

/// What the health model scores, from the snapshot metrics published.
/// Onboarding is the share of checklist milestones achieved, for an account
/// that has reported one.
pub fn health_snapshot(s: &v1::AccountMetricsSnapshot) -> HealthSnapshot {
    let milestones = s.milestones_achieved.len() + s.milestones_missing.len();
    HealthSnapshot {
        active_days_30d: s.active_days_30d.map(f64::from),
        nps_mean: s.nps_mean,
        tickets_opened_30d: s.tickets_opened_30d.map(f64::from),
        billing_status: s.billing_status.as_deref().and_then(|b| {
            [
                BillingStatus::Current,
                BillingStatus::Overdue,
                BillingStatus::PaymentFailed,
                BillingStatus::Collections,
            ]
            .into_iter()
            .find(|x| x.key() == b)
        }),
        actions_30d: Some(
            s.actions_30d
                .iter()
                .map(|(k, n)| (k.clone(), *n as f64))
                .collect(),
        ),
        onboarding: (milestones > 0)
            .then(|| 100.0 * s.milestones_achieved.len() as f64 / milestones as f64),
    }
}

/// A score on the wire, with the model that produced it and the snapshot
/// it scored (its inputs, ticket topics and explanation in words).
pub fn score_to_proto(
    model: &ScoringModel,
    s: &HealthScore,
    inputs: &v1::AccountMetricsSnapshot,
) -> v1::HealthScore {
    let topics: Vec<(String, u32)> = {
        let mut t: Vec<(String, u32)> = inputs
            .ticket_topics_30d
            .iter()
            .map(|(k, n)| (k.clone(), u32::try_from(*n).unwrap_or(0)))
            .collect();
        t.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        t
    };
    v1::HealthScore {
        account_id: inputs.account_id.clone(),
        score: s.score,
        band: band_to_proto(s.band) as i32,
        dimensions: s
            .dimensions()
            .iter()
            .map(|d| v1::DimensionScore {
                key: model
                    .dimensions
                    .get(d.index)
                    .map(|x| x.key.clone())
                    .unwrap_or_default(),
                raw: d.raw.is_finite().then_some(d.raw),
                sub_score: d.sub_score,
                effective_weight: d.effective_weight,
                contribution: d.contribution,
                band: d.band.map_or(v1::HealthBand::Unspecified, band_to_proto) as i32,
                missing: d.missing,
            })
            .collect(),
        missing_dimensions: s
            .missing()
            .filter_map(|i| model.dimensions.get(i).map(|d| d.key.clone()))
            .collect(),
        delta: s.delta,
        top_mover: s
            .top_mover
            .and_then(|i| model.dimensions.get(i).map(|d| d.key.clone()))
            .unwrap_or_default(),
        model_version: s.model_version,
        scored_at: inputs.as_of,
        ticket_topics: topics.iter().map(|t| t.0.clone()).collect(),
        explanation: health::describe(model, s, &health_snapshot(inputs), &topics),
        missing_data: missing_to_proto(model.missing) as i32,
        inputs: Some(inputs.clone()),
        model_changed: s.model_changed,
    }
}
