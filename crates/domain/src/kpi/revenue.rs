//! Revenue KPIs: MRR movements, the MRR bridge, churn, retention, LTV, CAC.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::exact::{Exact, MoneyMeasure, Ratio};
use crate::measure::Measure;
use crate::money::{Currency, Money, MoneyError, fit};
use crate::time::{Period, Timestamp};

/// Why an account's MRR went to zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChurnReason {
    /// Moved to a competitor.
    Competitor,
    /// Moved to the free plan.
    Freemium,
    /// The business closed.
    BusinessClosed,
    /// Price.
    Price,
    /// Anything else, or not given.
    Other,
}

impl ChurnReason {
    /// Every reason, in key order of the API (the index of a reason here is
    /// stable: rollups count churns per reason in an array in this order).
    pub const ALL: [Self; 5] = [
        Self::Competitor,
        Self::Freemium,
        Self::BusinessClosed,
        Self::Price,
        Self::Other,
    ];

    /// The reason's key (`competitor`).
    pub fn key(self) -> &'static str {
        match self {
            Self::Competitor => "competitor",
            Self::Freemium => "freemium",
            Self::BusinessClosed => "business_closed",
            Self::Price => "price",
            Self::Other => "other",
        }
    }

    /// Parses a reason key.
    pub fn parse(key: &str) -> Option<Self> {
        Some(match key {
            "competitor" => Self::Competitor,
            "freemium" => Self::Freemium,
            "business_closed" => Self::BusinessClosed,
            "price" => Self::Price,
            "other" => Self::Other,
            _ => return None,
        })
    }
}

/// One subscription change: from this instant the account's MRR is `mrr`
/// (already normalised to monthly; see `signal::monthly_mrr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MrrChange {
    /// Account.
    pub account: String,
    /// When it took effect.
    pub at: Timestamp,
    /// Tie-breaker for changes at the same instant (the event id), so any
    /// input order gives the same result.
    pub seq: String,
    /// New MRR (minor units, ≥ 0).
    pub mrr: Money,
    /// Why, when `mrr` is zero.
    pub churn_reason: Option<ChurnReason>,
}

/// Kinds of MRR movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MovementKind {
    /// 0 → a, never paid before.
    New,
    /// 0 → a, paid before.
    Reactivation,
    /// b → a with a > b > 0.
    Expansion,
    /// b → a with 0 < a < b.
    Contraction,
    /// b → 0 with b > 0.
    Churn,
}

/// Classifies a change from MRR `before` to `after`; `None` when nothing
/// moved (same amount, or 0 → 0).
pub fn classify(before: i64, after: i64, paid_before: bool) -> Option<MovementKind> {
    match (before, after) {
        (b, a) if a == b => None,
        (0, _) if paid_before => Some(MovementKind::Reactivation),
        (0, _) => Some(MovementKind::New),
        (_, 0) => Some(MovementKind::Churn),
        (b, a) if a > b => Some(MovementKind::Expansion),
        _ => Some(MovementKind::Contraction),
    }
}

/// One classified movement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// Account.
    pub account: String,
    /// When.
    pub at: Timestamp,
    /// Kind.
    pub kind: MovementKind,
    /// MRR before (minor units).
    pub before: i64,
    /// MRR after (minor units).
    pub after: i64,
    /// Churn reason, for churns.
    pub churn_reason: Option<ChurnReason>,
}

impl Movement {
    /// The movement's size, positive (what the bridge adds or subtracts).
    pub fn amount(&self) -> i64 {
        (self.after - self.before).abs()
    }
}

/// Errors computing revenue KPIs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevenueError {
    /// A change was not in the base currency, or a sum overflowed.
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// MRR cannot be negative.
    #[error("account {account}: MRR {mrr} is negative")]
    NegativeMrr {
        /// Account.
        account: String,
        /// Offending amount.
        mrr: i64,
    },
}

/// Every account's history, sorted by (at, seq): the canonical order.
fn histories(
    changes: &[MrrChange],
    currency: Currency,
) -> Result<BTreeMap<&str, Vec<&MrrChange>>, RevenueError> {
    let mut by_account: BTreeMap<&str, Vec<&MrrChange>> = BTreeMap::new();
    for c in changes {
        if c.mrr.currency != currency {
            return Err(MoneyError::CurrencyMismatch(currency, c.mrr.currency).into());
        }
        if c.mrr.minor < 0 {
            return Err(RevenueError::NegativeMrr {
                account: c.account.clone(),
                mrr: c.mrr.minor,
            });
        }
        by_account.entry(c.account.as_str()).or_default().push(c);
    }
    for h in by_account.values_mut() {
        h.sort_by(|a, b| (a.at, &a.seq).cmp(&(b.at, &b.seq)));
    }
    Ok(by_account)
}

/// Classifies every change, in canonical order per account. Input order
/// does not matter.
pub fn movements(changes: &[MrrChange], currency: Currency) -> Result<Vec<Movement>, RevenueError> {
    let mut out = Vec::new();
    for (account, history) in histories(changes, currency)? {
        let (mut mrr, mut paid) = (0i64, false);
        for c in history {
            if let Some(kind) = classify(mrr, c.mrr.minor, paid) {
                out.push(Movement {
                    account: account.to_owned(),
                    at: c.at,
                    kind,
                    before: mrr,
                    after: c.mrr.minor,
                    churn_reason: (kind == MovementKind::Churn)
                        .then(|| c.churn_reason.unwrap_or(ChurnReason::Other)),
                });
            }
            paid |= c.mrr.minor > 0;
            mrr = c.mrr.minor;
        }
    }
    Ok(out)
}

/// start + new + reactivation + expansion − contraction − churned = end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MrrBridge {
    /// MRR at period start.
    pub start: Money,
    /// New MRR.
    pub new: Money,
    /// Reactivation MRR.
    pub reactivation: Money,
    /// Expansion MRR.
    pub expansion: Money,
    /// Contraction MRR (positive).
    pub contraction: Money,
    /// Churned MRR (positive).
    pub churned: Money,
    /// MRR at period end.
    pub end: Money,
}

impl MrrBridge {
    /// Whether the bridge identity holds exactly.
    pub fn balances(&self) -> bool {
        let lhs = i128::from(self.start.minor)
            + i128::from(self.new.minor)
            + i128::from(self.reactivation.minor)
            + i128::from(self.expansion.minor)
            - i128::from(self.contraction.minor)
            - i128::from(self.churned.minor);
        lhs == i128::from(self.end.minor)
    }
}

/// Per-account facts over one period.
#[derive(Debug, Clone, Default)]
struct AccountPeriod {
    start: i64,
    end: i64,
    churned: Option<ChurnReason>,
    new: bool,
}

/// Portfolio revenue KPIs for one period.
#[derive(Debug, Clone, PartialEq)]
pub struct RevenueKpis {
    /// The period.
    pub period: Period,
    /// The MRR bridge.
    pub bridge: MrrBridge,
    /// Accounts paying at the period start (the start cohort).
    pub start_cohort: u64,
    /// Accounts paying at the period end.
    pub paying_accounts: u64,
    /// MRR at the end (equals paying accounts × ARPA).
    pub mrr: Money,
    /// End MRR / paying accounts, minor units, exact.
    pub arpa: MoneyMeasure,
    /// (churned + contraction) / start MRR × 100.
    pub gross_mrr_churn: Measure,
    /// (churned + contraction − expansion − reactivation) / start MRR × 100.
    pub net_mrr_churn: Measure,
    /// Expansion / start MRR × 100.
    pub expansion_rate: Measure,
    /// End MRR of the start cohort / start MRR × 100.
    pub nrr: Measure,
    /// Σ min(end, start) over the start cohort / start MRR × 100.
    pub grr: Measure,
    /// Accounts with a churn movement / start cohort × 100.
    pub logo_churn: Measure,
    /// Accounts with a churn movement in the period (numerator above).
    pub churned_accounts: u64,
    /// Churned accounts by reason (of their last churn in the period).
    pub churn_by_reason: BTreeMap<ChurnReason, u64>,
    /// Accounts with a `new` movement in the period (for CAC).
    pub new_accounts: u64,
}

/// Computes the revenue KPIs of `period` from every subscription change
/// (before, during and after it; order irrelevant) in `currency`.
pub fn revenue_kpis(
    changes: &[MrrChange],
    period: Period,
    currency: Currency,
) -> Result<RevenueKpis, RevenueError> {
    revenue_kpis_with_openings(changes, &[], period, currency)
}

/// An opening balance: "this account already paid `mrr` before `at`". An
/// import whose history starts at some date sends one for every existing
/// customer, so that its first imported change is not booked as *new*.
///
/// It stands for the account's history before its first recorded change:
/// the account starts from MRR `mrr` having paid before (so a later rise
/// from 0 is a reactivation, never new) instead of from 0 never having
/// paid. It applies when `at` is at or before the account's first change
/// (or the account has none); when real history older than `at` arrives
/// (a backfill), that history replaces the opening balance. The opening
/// MRR holds at every instant before the first change, so periods before
/// the import start see it as constant MRR with no movement, and the MRR
/// bridge balances in every period. With several for one account, the
/// earliest `(at, mrr)` counts. See [`opening_state`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningBalance {
    /// Account.
    pub account: String,
    /// The instant the balance is known at (the import's start).
    pub at: Timestamp,
    /// MRR the account was paying just before `at` (minor units, ≥ 0; 0
    /// means a former customer).
    pub mrr: Money,
}

/// An account's MRR state at an instant: its MRR and whether it ever paid
/// (what [`classify`] needs to tell new from reactivation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MrrState {
    /// MRR (minor units).
    pub mrr: i64,
    /// Whether the account paid at some time before.
    pub paid: bool,
}

/// The state an account's history starts from: its opening balance's MRR
/// (having paid before) when the opening is at or before its first change
/// (`first_change`, `None` with no change), otherwise MRR 0 never paid.
pub fn opening_state(
    opening: Option<&OpeningBalance>,
    first_change: Option<Timestamp>,
) -> MrrState {
    match opening {
        Some(o) if first_change.is_none_or(|first| o.at <= first) => MrrState {
            mrr: o.mrr.minor,
            paid: true,
        },
        _ => MrrState::default(),
    }
}

/// The earliest `(at, mrr)` opening balance per account, checked.
pub(crate) fn openings_by_account(
    openings: &[OpeningBalance],
    currency: Currency,
) -> Result<HashMap<&str, &OpeningBalance>, RevenueError> {
    let mut by: HashMap<&str, &OpeningBalance> = HashMap::new();
    for o in openings {
        if o.mrr.currency != currency {
            return Err(MoneyError::CurrencyMismatch(currency, o.mrr.currency).into());
        }
        if o.mrr.minor < 0 {
            return Err(RevenueError::NegativeMrr {
                account: o.account.clone(),
                mrr: o.mrr.minor,
            });
        }
        let e = by.entry(o.account.as_str()).or_insert(o);
        if (o.at, o.mrr.minor) < (e.at, e.mrr.minor) {
            *e = o;
        }
    }
    Ok(by)
}

/// The accounts paying (MRR > 0) just before instant `t`: by their last
/// change before `t` or, with none, by the state their history starts from
/// (an [`OpeningBalance`] that applies; see [`opening_state`]).
pub fn paying_before<'a>(
    changes: &'a [MrrChange],
    openings: &'a [OpeningBalance],
    t: Timestamp,
    currency: Currency,
) -> Result<HashSet<&'a str>, RevenueError> {
    let openings = openings_by_account(openings, currency)?;
    let mut all = histories(changes, currency)?;
    for account in openings.keys() {
        all.entry(account).or_default();
    }
    Ok(all
        .into_iter()
        .filter(|(account, history)| {
            let start = opening_state(
                openings.get(account).copied(),
                history.first().map(|c| c.at),
            );
            let last = history.iter().take_while(|c| c.at < t).last();
            last.map_or(start.mrr, |c| c.mrr.minor) > 0
        })
        .map(|(account, _)| account)
        .collect())
}

/// [`revenue_kpis`] for accounts whose history may start with an
/// [`OpeningBalance`]. Accounts with an opening balance and no change are
/// counted too (paying their opening MRR throughout).
pub fn revenue_kpis_with_openings(
    changes: &[MrrChange],
    openings: &[OpeningBalance],
    period: Period,
    currency: Currency,
) -> Result<RevenueKpis, RevenueError> {
    let mut sums = [0i128; 7]; // start, new, react, exp, contr, churn, end
    let mut accounts: HashMap<&str, AccountPeriod> = HashMap::new();
    let mut reasons = BTreeMap::new();
    let openings = openings_by_account(openings, currency)?;
    let mut all = histories(changes, currency)?;
    for account in openings.keys() {
        all.entry(account).or_default();
    }
    for (account, history) in all {
        let first = history.first().map(|c| c.at);
        let state = opening_state(openings.get(account).copied(), first);
        let (mut mrr, mut paid) = (state.mrr, state.paid);
        let mut facts = AccountPeriod::default();
        let mut started = false;
        for c in history {
            if !started && c.at >= period.start {
                facts.start = mrr;
                started = true;
            }
            if c.at >= period.end {
                break;
            }
            if started && let Some(kind) = classify(mrr, c.mrr.minor, paid) {
                let amount = i128::from((c.mrr.minor - mrr).abs());
                match kind {
                    MovementKind::New => {
                        sums[1] += amount;
                        facts.new = true;
                    }
                    MovementKind::Reactivation => sums[2] += amount,
                    MovementKind::Expansion => sums[3] += amount,
                    MovementKind::Contraction => sums[4] += amount,
                    MovementKind::Churn => {
                        sums[5] += amount;
                        facts.churned = Some(c.churn_reason.unwrap_or(ChurnReason::Other));
                    }
                }
            }
            paid |= c.mrr.minor > 0;
            mrr = c.mrr.minor;
        }
        if !started {
            facts.start = mrr;
        }
        facts.end = mrr;
        sums[0] += i128::from(facts.start);
        sums[6] += i128::from(facts.end);
        if let Some(r) = facts.churned {
            *reasons.entry(r).or_insert(0u64) += 1;
        }
        accounts.insert(account, facts);
    }
    let money = |v: i128| -> Result<Money, RevenueError> { Ok(Money::new(fit(v)?, currency)) };
    let bridge = MrrBridge {
        start: money(sums[0])?,
        new: money(sums[1])?,
        reactivation: money(sums[2])?,
        expansion: money(sums[3])?,
        contraction: money(sums[4])?,
        churned: money(sums[5])?,
        end: money(sums[6])?,
    };
    let cohort: Vec<&AccountPeriod> = accounts.values().filter(|a| a.start > 0).collect();
    let start_cohort = cohort.len() as u64;
    let paying_accounts = accounts.values().filter(|a| a.end > 0).count() as u64;
    let start_mrr = sums[0] as f64;
    let cohort_end: i128 = cohort.iter().map(|a| i128::from(a.end)).sum();
    let cohort_kept: i128 = cohort.iter().map(|a| i128::from(a.end.min(a.start))).sum();
    let churned_accounts = accounts.values().filter(|a| a.churned.is_some()).count() as u64;
    let new_accounts = accounts.values().filter(|a| a.new).count() as u64;
    Ok(RevenueKpis {
        period,
        bridge,
        start_cohort,
        paying_accounts,
        mrr: bridge.end,
        arpa: MoneyMeasure::ratio(currency, sums[6], i128::from(paying_accounts)),
        gross_mrr_churn: Measure::percent((sums[5] + sums[4]) as f64, start_mrr),
        net_mrr_churn: Measure::percent((sums[5] + sums[4] - sums[3] - sums[2]) as f64, start_mrr),
        expansion_rate: Measure::percent(sums[3] as f64, start_mrr),
        nrr: Measure::percent(cohort_end as f64, start_mrr),
        grr: Measure::percent(cohort_kept as f64, start_mrr),
        logo_churn: Measure::percent(churned_accounts as f64, start_cohort as f64),
        churned_accounts,
        churn_by_reason: reasons,
        new_accounts,
    })
}

impl RevenueKpis {
    /// Logo churn as an exact fraction (0–1, not percent): churned
    /// accounts / start cohort. The input of [`ltv`].
    pub fn logo_churn_rate(&self) -> Exact {
        Exact::ratio(
            i128::from(self.churned_accounts),
            i128::from(self.start_cohort),
        )
    }
}

/// Whether a period gives the monthly logo churn rate LTV and CLV need:
/// exactly one calendar month, measured to its end (`as_of` at or after
/// it). A week, a quarter, a custom range or the month so far does not;
/// a rate of another length is never scaled to a month (docs/KPIS.md,
/// "LTV").
pub fn gives_monthly_churn(period: Period, as_of: Timestamp) -> bool {
    period.is_calendar_month() && as_of >= period.end
}

/// LTV = ARPA × gross margin / monthly logo churn rate, exact. `gross_margin`
/// and `monthly_logo_churn` are fractions (1 = 100 %; see
/// [`RevenueKpis::logo_churn_rate`]). Absent when there is no churn (the
/// lifetime is unbounded).
pub fn ltv(arpa: MoneyMeasure, gross_margin: Ratio, monthly_logo_churn: Exact) -> MoneyMeasure {
    arpa.scale(Exact::Value(gross_margin))
        .per(monthly_logo_churn)
}

/// CLV = average purchase value × purchases per customer per month ×
/// average lifetime in months, exact.
pub fn clv(
    avg_purchase_value: MoneyMeasure,
    purchases_per_month: Exact,
    lifetime_months: Exact,
) -> MoneyMeasure {
    avg_purchase_value
        .scale(purchases_per_month)
        .scale(lifetime_months)
}

/// One-off purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// Account.
    pub account: String,
    /// When.
    pub at: Timestamp,
    /// Amount (> 0).
    pub amount: Money,
}

/// CLV inputs from purchases in `period`, exact: (average purchase value,
/// purchases per purchasing customer per month). Months are calendar
/// months ([`Period::calendar_months`]): May counts 1 month, not 31/30.
/// Every purchase in the period must be in `currency`.
pub fn purchase_rates(
    purchases: &[Purchase],
    period: Period,
    currency: Currency,
) -> Result<(MoneyMeasure, Exact), MoneyError> {
    let mut total = 0i128;
    let mut count = 0i128;
    let mut customers = HashSet::new();
    for p in purchases.iter().filter(|p| period.contains(p.at)) {
        if p.amount.currency != currency {
            return Err(MoneyError::CurrencyMismatch(currency, p.amount.currency));
        }
        total += i128::from(p.amount.minor);
        count += 1;
        customers.insert(p.account.as_str());
    }
    let avg = MoneyMeasure::ratio(currency, total, count);
    let per_month =
        Exact::ratio(count, customers.len() as i128) / Exact::Value(period.calendar_months());
    Ok((avg, per_month))
}

/// The spend of `period` from cost signals that each cover a span: each
/// amount is prorated by the share of its span inside `period` (docs/KPIS.md, CRC),
/// exactly. Every amount must be in `currency`.
pub fn prorated_spend(
    costs: &[(Money, Period)],
    period: Period,
    currency: Currency,
) -> Result<MoneyMeasure, MoneyError> {
    let mut total = Ratio::ZERO;
    for (amount, covered) in costs {
        if amount.currency != currency {
            return Err(MoneyError::CurrencyMismatch(currency, amount.currency));
        }
        let overlap = period.end.min(covered.end).0 - period.start.max(covered.start).0;
        if overlap <= 0 {
            continue;
        }
        let share =
            Ratio::new(i128::from(overlap), i128::from(covered.micros())).unwrap_or(Ratio::ZERO);
        total = Ratio::integer(i128::from(amount.minor))
            .checked_mul(share)
            .and_then(|part| total.checked_add(part))
            .ok_or(MoneyError::Overflow)?;
    }
    Ok(MoneyMeasure {
        currency,
        minor: Exact::Value(total),
    })
}

/// CRC = customer-success spend in the period / customers in the start
/// cohort, exact, in the spend's currency.
pub fn crc(cs_spend: impl Into<MoneyMeasure>, start_cohort: u64) -> MoneyMeasure {
    cs_spend
        .into()
        .per(Exact::ratio(i128::from(start_cohort), 1))
}

/// CAC = acquisition spend in the period / new customers, exact, in the
/// spend's currency.
pub fn cac(acquisition_spend: impl Into<MoneyMeasure>, new_customers: u64) -> MoneyMeasure {
    acquisition_spend
        .into()
        .per(Exact::ratio(i128::from(new_customers), 1))
}

/// A ratio of two money KPIs (LTV:CAC, LTV:CRC), exact; the currencies
/// must match.
pub fn ratio(num: MoneyMeasure, den: MoneyMeasure) -> Result<Exact, MoneyError> {
    num.ratio_to(den)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> Timestamp {
        Timestamp::from_ymd(2026, 5, d)
    }

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap())
    }

    fn change(account: &str, d: u32, minor: i64) -> MrrChange {
        MrrChange {
            account: account.into(),
            at: day(d),
            seq: format!("{account}-{d}"),
            mrr: eur(minor),
            churn_reason: None,
        }
    }

    fn opening(account: &str, d: u32, minor: i64) -> OpeningBalance {
        OpeningBalance {
            account: account.into(),
            at: day(d),
            mrr: eur(minor),
        }
    }

    #[test]
    fn paying_before_counts_opening_balances_until_the_first_change() {
        let period = Period::new(day(1), day(10)).unwrap();
        let changes = [
            change("a", 5, 1_000), // paying by its own change
            change("b", 20, 0),    // opening 2,000 holds until day 20
            change("c", 2, 0),     // churned by a change after its opening
            change("d", 1, 3_000), // older history replaces the opening of 0
        ];
        let openings = [
            opening("b", 3, 2_000),
            opening("c", 1, 5_000),
            opening("d", 4, 0),
            opening("e", 2, 0),     // a former customer: not paying
            opening("f", 2, 4_000), // paying throughout
        ];
        let mut paying: Vec<&str> = paying_before(&changes, &openings, period.end, eur(0).currency)
            .unwrap()
            .into_iter()
            .collect();
        paying.sort_unstable();
        assert_eq!(paying, ["a", "b", "d", "f"]);
    }
}
