//! Experience KPIs: NPS, CSAT, CES, FCR, renewal rate.

use crate::measure::Measure;

/// NPS over 0–10 answers: % promoters (9–10) − % detractors (0–6), in
/// −100…100. Answers outside 0–10 must be rejected at intake.
pub fn nps(scores: &[u8]) -> Measure {
    let promoters = scores.iter().filter(|&&s| s >= 9).count() as f64;
    let detractors = scores.iter().filter(|&&s| s <= 6).count() as f64;
    Measure::percent(promoters - detractors, scores.len() as f64)
}

/// NPS category of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpsCategory {
    /// 0–6.
    Detractor,
    /// 7–8.
    Passive,
    /// 9–10.
    Promoter,
}

/// The category of an NPS score.
pub fn nps_category(score: u8) -> NpsCategory {
    match score {
        0..=6 => NpsCategory::Detractor,
        7..=8 => NpsCategory::Passive,
        _ => NpsCategory::Promoter,
    }
}

/// Survey answer scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scale {
    /// 0 to 10.
    ZeroToTen,
    /// 1 to 5.
    OneToFive,
    /// 1 to 7.
    OneToSeven,
    /// 1 to 10.
    OneToTen,
}

impl Scale {
    /// Inclusive bounds.
    pub fn bounds(self) -> (u8, u8) {
        match self {
            Self::ZeroToTen => (0, 10),
            Self::OneToFive => (1, 5),
            Self::OneToSeven => (1, 7),
            Self::OneToTen => (1, 10),
        }
    }
}

/// What counts as a positive CSAT answer, per scale (docs/KPIS.md: ≥ 4 on 1–5,
/// ≥ 6 on 1–10; configurable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsatThresholds {
    /// Minimum positive score on 1–5.
    pub one_to_five: u8,
    /// Minimum positive score on 1–10.
    pub one_to_ten: u8,
}

impl Default for CsatThresholds {
    fn default() -> Self {
        Self {
            one_to_five: 4,
            one_to_ten: 6,
        }
    }
}

/// CSAT % = positive answers / answers × 100. Answers on scales CSAT does
/// not use are ignored.
pub fn csat(answers: &[(Scale, u8)], thresholds: CsatThresholds) -> Measure {
    let (mut positive, mut total) = (0u64, 0u64);
    for &(scale, score) in answers {
        let min = match scale {
            Scale::OneToFive => thresholds.one_to_five,
            Scale::OneToTen => thresholds.one_to_ten,
            _ => continue,
        };
        total += 1;
        positive += u64::from(score >= min);
    }
    Measure::percent(positive as f64, total as f64)
}

/// CES on one scale: mean effort and the share of low-effort answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ces {
    /// The scale.
    pub scale: Scale,
    /// Mean score (lower = less effort).
    pub mean: Measure,
    /// % of answers at or below the low-effort threshold.
    pub low_effort_pct: Measure,
    /// Answers.
    pub answers: u64,
}

/// Low-effort threshold: ≤ 2 on 1–5, ≤ 3 on 1–7.
pub fn ces_low_effort_max(scale: Scale) -> u8 {
    match scale {
        Scale::OneToSeven => 3,
        _ => 2,
    }
}

/// CES per scale (1–5 and 1–7 answers are never averaged together).
pub fn ces(answers: &[(Scale, u8)]) -> Vec<Ces> {
    [Scale::OneToFive, Scale::OneToSeven]
        .into_iter()
        .map(|scale| {
            let on_scale: Vec<u8> = answers
                .iter()
                .filter(|a| a.0 == scale)
                .map(|a| a.1)
                .collect();
            let n = on_scale.len() as f64;
            let sum: u64 = on_scale.iter().map(|&s| u64::from(s)).sum();
            let low = on_scale
                .iter()
                .filter(|&&s| s <= ces_low_effort_max(scale))
                .count() as f64;
            Ces {
                scale,
                mean: Measure::ratio(sum as f64, n),
                low_effort_pct: Measure::percent(low, n),
                answers: on_scale.len() as u64,
            }
        })
        .collect()
}

/// FCR % = tickets resolved with one contact / tickets resolved × 100.
/// `contacts` holds the contacts-until-resolution of each resolved ticket.
pub fn fcr(contacts: &[u32]) -> Measure {
    let first = contacts.iter().filter(|&&c| c == 1).count() as f64;
    Measure::percent(first, contacts.len() as f64)
}

/// Renewal rate % = renewed / due for renewal in the period × 100.
pub fn renewal_rate(renewed: u64, due: u64) -> Measure {
    Measure::percent(renewed as f64, due as f64)
}
