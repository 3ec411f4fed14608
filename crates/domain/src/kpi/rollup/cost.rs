//! Cost rollups for CRC and CAC: spend spread over the time it covers.
//!
//! A cost signal covers a span (a month of CS salaries, a quarter of ad
//! spend); docs/KPIS.md prorates it over its overlap with the KPI period.
//! [`prorated_spend`] already does that exactly; a [`CostRollup`] is its
//! result per kind for one span of time. Proration is linear in the
//! overlap, so the rollups of adjacent spans add up to the rollup of their
//! union exactly (a cost across a month boundary puts its share in each
//! month): the metrics service can keep one row per day or month and sum
//! them. Costs are portfolio-level: CRC and CAC under a segment/plan
//! filter stay absent (not applicable) — that is the service's to decide.

use super::Rollup;
use crate::exact::{Exact, MoneyMeasure, Ratio};
use crate::kpi::revenue::{cac, crc, prorated_spend};
use crate::measure::Absence;
use crate::money::{Currency, Money, MoneyError};
use crate::signal::CostKind;
use crate::time::Period;

/// One cost signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostFact {
    /// CS or acquisition spend.
    pub kind: CostKind,
    /// Amount.
    pub amount: Money,
    /// The span it covers.
    pub covers: Period,
}

/// Spend per kind over some span of time, exact minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostRollup {
    /// Customer-success spend.
    pub customer_success: Exact,
    /// Acquisition spend.
    pub acquisition: Exact,
}

impl Default for CostRollup {
    fn default() -> Self {
        Self {
            customer_success: Exact::Value(Ratio::ZERO),
            acquisition: Exact::Value(Ratio::ZERO),
        }
    }
}

impl CostRollup {
    /// The spend of `costs` prorated over `over` (a day, a month, a KPI
    /// period), per kind, with [`prorated_spend`].
    pub fn from_costs(
        costs: &[CostFact],
        over: Period,
        currency: Currency,
    ) -> Result<Self, MoneyError> {
        let of = |kind: CostKind| -> Result<Exact, MoneyError> {
            let list: Vec<(Money, Period)> = costs
                .iter()
                .filter(|c| c.kind == kind)
                .map(|c| (c.amount, c.covers))
                .collect();
            Ok(prorated_spend(&list, over, currency)?.minor)
        };
        Ok(Self {
            customer_success: of(CostKind::CustomerSuccess)?,
            acquisition: of(CostKind::Acquisition)?,
        })
    }

    /// The spend of one kind.
    pub fn spend(&self, kind: CostKind, currency: Currency) -> MoneyMeasure {
        MoneyMeasure {
            currency,
            minor: match kind {
                CostKind::CustomerSuccess => self.customer_success,
                CostKind::Acquisition => self.acquisition,
            },
        }
    }

    /// CRC = CS spend / start cohort ([`crc`]).
    pub fn crc(&self, currency: Currency, start_cohort: u64) -> MoneyMeasure {
        crc(
            self.spend(CostKind::CustomerSuccess, currency),
            start_cohort,
        )
    }

    /// CAC = acquisition spend / new accounts ([`cac`]).
    pub fn cac(&self, currency: Currency, new_accounts: u64) -> MoneyMeasure {
        cac(self.spend(CostKind::Acquisition, currency), new_accounts)
    }
}

fn add(a: Exact, b: Exact) -> Exact {
    match (a, b) {
        (Exact::Value(x), Exact::Value(y)) => x
            .checked_add(y)
            .map_or(Exact::Absent(Absence::Overflow), Exact::Value),
        (Exact::Absent(r), _) | (_, Exact::Absent(r)) => Exact::Absent(r),
    }
}

impl Rollup for CostRollup {
    /// Exact sum per kind; a sum that does not fit 128-bit fractions is
    /// absent (overflow) and stays so.
    fn merge(&mut self, o: &Self) {
        self.customer_success = add(self.customer_success, o.customer_success);
        self.acquisition = add(self.acquisition, o.acquisition);
    }
}
