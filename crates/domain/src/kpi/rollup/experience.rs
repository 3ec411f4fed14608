//! Experience rollups: NPS, CSAT, CES, FCR, renewals.
//!
//! Answers are kept as **histograms per scale** (a count per score), not
//! as "positive / total": every count adds across days and accounts, and
//! the configurable thresholds (CSAT's positive cut-off, CES's low effort)
//! are applied when the KPI is computed, so changing a tenant's thresholds
//! needs no rebuild. NPS buckets, CSAT positive/total and CES
//! sum/count/low-effort are all read off the histograms.
//!
//! **NPS is per answer.** `docs/KPIS.md` defines the NPS KPI over the
//! answers in the period (every answer counts, as in
//! [`nps`](crate::kpi::experience::nps)), so its buckets add. Only the
//! health model's NPS dimension uses each user's *latest* answer; a mean of
//! latest answers does not add, so it has its own rollup,
//! [`LatestAnswers`], which keeps the latest answer per user and merges by
//! keeping the later one — exact in any merge order.

use std::collections::BTreeMap;

use super::Rollup;
use crate::kpi::experience::{Ces, CsatThresholds, Scale, ces_low_effort_max};
use crate::measure::Measure;
use crate::signal::{RenewalOutcome, Signal, SignalBody, SurveyKind, TicketStatus};
use crate::time::Timestamp;

/// Counts per score of one scale (index 0 = the scale's lowest score).
fn slot(scale: Scale, score: u8) -> Option<usize> {
    let (lo, hi) = scale.bounds();
    (lo..=hi).contains(&score).then(|| usize::from(score - lo))
}

/// The experience facts of a set of account-days.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExperienceRollup {
    /// NPS answers per score 0–10.
    pub nps: [u64; 11],
    /// CSAT answers on 1–5, per score (index 0 = score 1).
    pub csat_five: [u64; 5],
    /// CSAT answers on 1–10, per score (index 0 = score 1).
    pub csat_ten: [u64; 10],
    /// CES answers on 1–5, per score.
    pub ces_five: [u64; 5],
    /// CES answers on 1–7, per score.
    pub ces_seven: [u64; 7],
    /// Tickets resolved.
    pub resolved: u64,
    /// Tickets resolved with one contact.
    pub first_contact: u64,
    /// Renewals due (whose contract end falls in the span).
    pub renewals_due: u64,
    /// Renewals due that were renewed.
    pub renewed: u64,
}

impl ExperienceRollup {
    /// Counts an NPS answer; `false` (not counted) outside 0–10, which
    /// intake rejects.
    pub fn add_nps(&mut self, score: u8) -> bool {
        slot(Scale::ZeroToTen, score).is_some_and(|i| {
            self.nps[i] += 1;
            true
        })
    }

    /// Counts a CSAT answer; `false` on a scale CSAT does not use (the
    /// list-based [`csat`](crate::kpi::experience::csat) ignores those
    /// too) or outside the scale.
    pub fn add_csat(&mut self, scale: Scale, score: u8) -> bool {
        let counts: &mut [u64] = match scale {
            Scale::OneToFive => &mut self.csat_five,
            Scale::OneToTen => &mut self.csat_ten,
            _ => return false,
        };
        slot(scale, score).is_some_and(|i| {
            counts[i] += 1;
            true
        })
    }

    /// Counts a CES answer; `false` on a scale CES does not use or outside
    /// the scale.
    pub fn add_ces(&mut self, scale: Scale, score: u8) -> bool {
        let counts: &mut [u64] = match scale {
            Scale::OneToFive => &mut self.ces_five,
            Scale::OneToSeven => &mut self.ces_seven,
            _ => return false,
        };
        slot(scale, score).is_some_and(|i| {
            counts[i] += 1;
            true
        })
    }

    /// Counts a resolved ticket with its contacts until resolution.
    pub fn add_resolution(&mut self, contacts: u32) {
        self.resolved += 1;
        self.first_contact += u64::from(contacts == 1);
    }

    /// Counts one renewal due, renewed or not.
    pub fn add_renewal(&mut self, renewed: bool) {
        self.renewals_due += 1;
        self.renewed += u64::from(renewed);
    }

    /// The row of one account-day's signals (any order; other kinds are
    /// ignored): the signals that count on that day ([`Signal::counts_at`]).
    /// Every survey answer and every `resolved` ticket change counts once.
    /// Renewals count by contract: the account's signals with the same
    /// `contract_end` are one renewal due, renewed when the latest of them
    /// (by `occurred_at`, then event id) is `renewed` — so a "due" and a
    /// "renewed" sent on different days for one contract are one renewal,
    /// renewed.
    pub fn from_signals(signals: &[Signal]) -> Self {
        let mut row = Self::default();
        // Contract end → the latest outcome seen (at, event id, outcome).
        let mut contracts: BTreeMap<Timestamp, (Timestamp, &str, RenewalOutcome)> = BTreeMap::new();
        for s in signals {
            match &s.body {
                SignalBody::Survey {
                    kind, scale, score, ..
                } => {
                    let Ok(score) = u8::try_from(*score) else {
                        continue;
                    };
                    match kind {
                        SurveyKind::Nps => row.add_nps(score),
                        SurveyKind::Csat => row.add_csat(*scale, score),
                        SurveyKind::Ces => row.add_ces(*scale, score),
                    };
                }
                SignalBody::Ticket {
                    status: TicketStatus::Resolved,
                    contacts_until_resolution,
                    ..
                } => row
                    .add_resolution(u32::try_from(*contacts_until_resolution).unwrap_or(u32::MAX)),
                SignalBody::Renewal {
                    outcome,
                    contract_end,
                } => {
                    let key = (s.occurred_at, s.event_id.as_str());
                    let latest = contracts
                        .entry(*contract_end)
                        .or_insert((key.0, key.1, *outcome));
                    if key > (latest.0, latest.1) {
                        *latest = (key.0, key.1, *outcome);
                    }
                }
                _ => {}
            }
        }
        for (_, _, outcome) in contracts.into_values() {
            row.add_renewal(outcome == RenewalOutcome::Renewed);
        }
        row
    }

    /// NPS: exactly [`nps`](crate::kpi::experience::nps) over the answers.
    pub fn nps(&self) -> Measure {
        let promoters = (self.nps[9] + self.nps[10]) as f64;
        let detractors = self.nps[..=6].iter().sum::<u64>() as f64;
        let total = self.nps.iter().sum::<u64>() as f64;
        Measure::percent(promoters - detractors, total)
    }

    /// NPS answers as (promoters, passives, detractors).
    pub fn nps_buckets(&self) -> (u64, u64, u64) {
        (
            self.nps[9] + self.nps[10],
            self.nps[7] + self.nps[8],
            self.nps[..=6].iter().sum(),
        )
    }

    /// CSAT (positive, total) under `thresholds`, both scales.
    pub fn csat_counts(&self, thresholds: CsatThresholds) -> (u64, u64) {
        let count = |counts: &[u64], min: u8| -> (u64, u64) {
            let positive = counts
                .iter()
                .enumerate()
                .filter(|(i, _)| *i + 1 >= usize::from(min))
                .map(|(_, n)| n)
                .sum();
            (positive, counts.iter().sum())
        };
        let (p5, t5) = count(&self.csat_five, thresholds.one_to_five);
        let (p10, t10) = count(&self.csat_ten, thresholds.one_to_ten);
        (p5 + p10, t5 + t10)
    }

    /// CSAT %: exactly [`csat`](crate::kpi::experience::csat).
    pub fn csat(&self, thresholds: CsatThresholds) -> Measure {
        let (positive, total) = self.csat_counts(thresholds);
        Measure::percent(positive as f64, total as f64)
    }

    /// CES per scale: exactly [`ces`](crate::kpi::experience::ces).
    pub fn ces(&self) -> Vec<Ces> {
        [
            (Scale::OneToFive, &self.ces_five[..]),
            (Scale::OneToSeven, &self.ces_seven[..]),
        ]
        .into_iter()
        .map(|(scale, counts)| {
            let answers: u64 = counts.iter().sum();
            let sum: u64 = counts
                .iter()
                .enumerate()
                .map(|(i, n)| (i as u64 + 1) * n)
                .sum();
            let low: u64 = counts[..usize::from(ces_low_effort_max(scale))]
                .iter()
                .sum();
            let n = answers as f64;
            Ces {
                scale,
                mean: Measure::ratio(sum as f64, n),
                low_effort_pct: Measure::percent(low as f64, n),
                answers,
            }
        })
        .collect()
    }

    /// FCR %: exactly [`fcr`](crate::kpi::experience::fcr).
    pub fn fcr(&self) -> Measure {
        Measure::percent(self.first_contact as f64, self.resolved as f64)
    }

    /// Renewal rate %: [`renewal_rate`](crate::kpi::experience::renewal_rate).
    pub fn renewal_rate(&self) -> Measure {
        crate::kpi::experience::renewal_rate(self.renewed, self.renewals_due)
    }
}

impl Rollup for ExperienceRollup {
    /// Count-wise sum.
    fn merge(&mut self, o: &Self) {
        fn add(a: &mut [u64], b: &[u64]) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        add(&mut self.nps, &o.nps);
        add(&mut self.csat_five, &o.csat_five);
        add(&mut self.csat_ten, &o.csat_ten);
        add(&mut self.ces_five, &o.ces_five);
        add(&mut self.ces_seven, &o.ces_seven);
        self.resolved += o.resolved;
        self.first_contact += o.first_contact;
        self.renewals_due += o.renewals_due;
        self.renewed += o.renewed;
    }
}

/// Each user's latest answer, for the health model's NPS dimension (the
/// mean of each user's latest answer). Keyed by the user's dense number
/// (see [`super::adoption`]); an answer is `((at, event id), score)`.
/// Merging keeps, per user, the later answer: a max per key, so the merge
/// is associative, commutative and idempotent, and the mean is exact
/// whatever the order rows arrive in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LatestAnswers {
    /// User → (when, event id, score) of the latest answer.
    pub by_user: BTreeMap<u32, (Timestamp, String, u8)>,
}

impl LatestAnswers {
    /// Records an answer of `user`.
    pub fn add(&mut self, user: u32, at: Timestamp, event_id: &str, score: u8) {
        let e = self
            .by_user
            .entry(user)
            .or_insert_with(|| (at, event_id.to_owned(), score));
        if (at, event_id) > (e.0, e.1.as_str()) {
            *e = (at, event_id.to_owned(), score);
        }
    }

    /// Mean of the latest answers; `None` without answers.
    pub fn mean(&self) -> Option<f64> {
        let n = self.by_user.len();
        let sum: u64 = self.by_user.values().map(|v| u64::from(v.2)).sum();
        (n > 0).then(|| sum as f64 / n as f64)
    }
}

impl Rollup for LatestAnswers {
    /// Per user, the later answer.
    fn merge(&mut self, o: &Self) {
        for (user, (at, id, score)) in &o.by_user {
            self.add(*user, *at, id, *score);
        }
    }
}
