//! Portfolio queries: checked arguments, the accounts a filter selects,
//! and the KPIs over their signals — every formula in `retain-domain`.
//!
//! A finished calendar month is answered from the monthly cells
//! (`rollups.rs`); every other period is answered here, at query time, from
//! the selected accounts' signals in ingestion's `signals` table, through
//! the same domain formulas — read and folded a page of accounts at a time
//! ([`tallies`]), so a call's memory does not grow with the history.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::settings::Tenant;
use prost::Message;
use retain_domain::kpi::revenue::MrrBridge;
use retain_domain::kpi::rollup::Rollup;
use retain_domain::kpi::rollup::portfolio::{Basis, account_contribution_seen, dense_reach};
use retain_domain::signal;
use retain_domain::{Currency, Granularity, Money, Period, Timestamp, Violations};
use retain_proto::{convert, v1};
use retain_runtime::error::Error;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::kpis::{self, Tally};
use crate::sql;

/// The period a query asks for in `field`: the request's, checked as every
/// RPC checks a `Period` (both bounds, end after start), or the calendar
/// month containing `now` when unset.
pub fn period(field: &str, p: Option<&v1::Period>, now: Timestamp) -> Result<Period, Error> {
    let Some(p) = p else {
        return Ok(Period::containing(now, Granularity::Month));
    };
    let mut v = Violations::new();
    match convert::period_field(&mut v, field, p) {
        Some(period) => Ok(period),
        None => Err(Error::from(v)),
    }
}

/// The segments and plans a filter names: at most 100 of each, each
/// checked by the rule of every stored text.
pub fn check_filter(f: Option<&v1::AccountFilter>) -> Result<(), Error> {
    use retain_domain::validation::{MAX_LABEL_LEN, Text, check_len, check_text};
    let mut v = Violations::new();
    if let Some(f) = f {
        for (name, list) in [("filter.segments", &f.segments), ("filter.plans", &f.plans)] {
            if check_len(&mut v, name, list.len(), MAX_FILTER_VALUES) {
                for (i, s) in list.iter().enumerate() {
                    check_text(
                        &mut v,
                        &format!("{name}[{i}]"),
                        s,
                        Text::Line(MAX_LABEL_LEN),
                        false,
                    );
                }
            }
        }
    }
    v.into_result(()).map_err(Error::from)
}

/// Most segments, or plans, one filter may name.
pub const MAX_FILTER_VALUES: usize = 100;

/// Whether a filter selects some accounts rather than all.
pub fn is_filtered(f: Option<&v1::AccountFilter>) -> bool {
    f.is_some_and(|f| !f.segments.is_empty() || !f.plans.is_empty())
}

/// The accounts of `tenant` a filter selects; `None` selects all.
pub async fn selected(
    db: &DatabaseConnection,
    tenant: &str,
    f: Option<&v1::AccountFilter>,
) -> Result<Option<BTreeSet<String>>, Error> {
    let Some(f) = f.filter(|_| is_filtered(f)) else {
        return Ok(None);
    };
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT account_id, segment, plan FROM accounts WHERE tenant_id = $1",
            [tenant.into()],
        ))
        .await?;
    let mut out = BTreeSet::new();
    for row in rows {
        let account: String = row.try_get_by_index(0)?;
        let segment: Option<String> = row.try_get_by_index(1)?;
        let plan: Option<String> = row.try_get_by_index(2)?;
        let in_segment = f.segments.is_empty() || segment.is_some_and(|s| f.segments.contains(&s));
        let on_plan = f.plans.is_empty() || plan.is_some_and(|p| f.plans.contains(&p));
        if in_segment && on_plan {
            out.insert(account);
        }
    }
    Ok(Some(out))
}

/// The segment of each account of `tenant` that has one.
pub async fn segments(
    db: &DatabaseConnection,
    tenant: &str,
) -> Result<HashMap<String, String>, Error> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT account_id, segment FROM accounts WHERE tenant_id = $1 AND segment IS NOT NULL",
            [tenant.into()],
        ))
        .await?;
    let mut out = HashMap::new();
    for row in rows {
        out.insert(row.try_get_by_index(0)?, row.try_get_by_index(1)?);
    }
    Ok(out)
}

/// How much of a tenant's signals a KPI query from signals reads and folds
/// at once, and whether it reads only what its periods reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Most accounts.
    pub accounts: u64,
    /// Most signals (a page holds at least one account, however large).
    pub signals: u64,
    /// Sessions and actions read only from where the periods' counts
    /// reach ([`retain_domain::kpi::rollup::portfolio::dense_reach`]);
    /// `false`: every signal, the reference the windowed read is tested
    /// against.
    pub windowed: bool,
}

impl Page {
    /// Every account in one page, every signal read: what a query did
    /// before it paged and windowed.
    pub const WHOLE: Page = Page {
        accounts: u64::MAX,
        signals: u64::MAX,
        windowed: false,
    };

    /// The page of the settings, windowed.
    pub fn of(s: &crate::MetricsSettings) -> Self {
        Self {
            accounts: s.query_page_accounts,
            signals: s.query_page_signals,
            windowed: true,
        }
    }
}

/// The tally of each of `periods` (as of `now` where it has not ended)
/// over the accounts `filter` selects, summed at query time from their
/// stored signals with the same function the monthly rollups use.
///
/// What is read is what the periods reach: every signal of the lifetime
/// kinds (subscriptions, billing, renewals, trials, milestones: the few
/// that revenue, renewals, trials and onboarding look back through), and
/// the others
/// ([`REACH_KINDS`](retain_domain::kpi::rollup::portfolio::REACH_KINDS): sessions, actions, tickets, survey
/// answers, purchases, account records) only from the earliest
/// [`dense_reach`] of the periods on — the periods themselves and the
/// 30-day active-user window before each one's "as of" instant — with
/// each account's earliest signal time for when it was first seen. So a
/// week or the month so far reads the last weeks of sessions, not years
/// of them; the answer is the same as from every signal (tested in
/// `tests/reach.rs`).
///
/// The signals are read a [`Page`] at a time (the settings
/// `metrics.query_page_accounts` and `query_page_signals`): a call holds
/// one page of accounts' signals in memory (at least the largest
/// account's), never the tenant's whole history;
/// each page is decoded and folded into every period's tally off the async
/// workers, then dropped. The caller holds the heavy-query permit for the
/// whole fold; when it goes away (its future is dropped), the fold stops
/// after the page in hand.
pub async fn tallies(
    db: &DatabaseConnection,
    tenant: &str,
    settings: &Tenant,
    filter: Option<&v1::AccountFilter>,
    (periods, now): (&[Period], Timestamp),
    page: Page,
) -> Result<Vec<Tally>, Error> {
    let selection = Arc::new(selected(db, tenant, filter).await?);
    let segments = Arc::new(segments(db, tenant).await?);
    let costs = crate::rollups::costs(db, tenant, settings).await?;
    let mut tallies: Vec<Tally> = periods.iter().map(|_| Tally::default()).collect();
    let dense_from = periods
        .iter()
        .map(|p| dense_reach(&kpis::basis(*p, now, settings)).micros())
        .min()
        .filter(|_| page.windowed);
    let mut after = String::new();
    loop {
        let page = sql::signal_page(
            db,
            tenant,
            &after,
            (page.accounts, page.signals),
            dense_from,
        )
        .await?;
        let Some(last) = page.last.clone() else {
            break;
        };
        after = last;
        let (selection, segments) = (selection.clone(), segments.clone());
        let (settings, periods, tenant) = (settings.clone(), periods.to_vec(), tenant.to_owned());
        let folded = tokio::task::spawn_blocking(move || {
            fold_page(
                &page,
                &tenant,
                &settings,
                &periods,
                now,
                (&selection, &segments),
            )
        })
        .await
        .map_err(|e| Error::Internal(format!("KPI computation: {e}")))??;
        for (tally, page) in tallies.iter_mut().zip(folded) {
            tally.merge(page);
        }
    }
    for tally in &mut tallies {
        tally.costs = costs.clone();
    }
    Ok(tallies)
}

/// One page of [`tallies`]: the page's rows (in account order) decoded,
/// each selected account's signals folded into every period's tally — an
/// account none of whose signals were read too (its onboarding counts
/// from when it was first seen).
fn fold_page(
    page: &sql::SignalPage,
    tenant: &str,
    settings: &Tenant,
    periods: &[Period],
    now: Timestamp,
    (selection, segments): (&Option<BTreeSet<String>>, &HashMap<String, String>),
) -> Result<Vec<Tally>, Error> {
    let bases: Vec<Basis<'_>> = periods
        .iter()
        .map(|p| kpis::basis(*p, now, settings))
        .collect();
    let mut tallies: Vec<Tally> = periods.iter().map(|_| Tally::default()).collect();
    let rows: HashMap<&str, &[(String, Vec<u8>)]> = page
        .rows
        .chunk_by(|a, b| a.0 == b.0)
        .map(|rows| (rows[0].0.as_str(), rows))
        .collect();
    for (account, first_seen) in &page.first_seen {
        let account = account.as_str();
        if account == signal::PORTFOLIO || selection.as_ref().is_some_and(|s| !s.contains(account))
        {
            continue;
        }
        let account_rows = rows.get(account).copied().unwrap_or_default();
        let mut signals = Vec::with_capacity(account_rows.len());
        for (_, payload) in account_rows {
            let wire = v1::Signal::decode(payload.as_slice())
                .map_err(|e| Error::Internal(format!("a stored signal does not decode: {e}")))?;
            match convert::stored_signal(
                &wire,
                settings.base_currency,
                &settings.onboarding_checklist,
            ) {
                Ok(valid) => signals.push(valid),
                Err(v) => {
                    tracing::warn!(%tenant, event_id = %wire.event_id, violations = %v, "stored signal skipped")
                }
            }
        }
        let seen = Some(Timestamp::from_micros(*first_seen));
        for (tally, basis) in tallies.iter_mut().zip(&bases) {
            let c = account_contribution_seen(&signals, seen, basis)
                .map_err(|e| Error::Internal(format!("account {account}: {e}")))?;
            if c.trials_started > 0 {
                let segment = segments.get(account).cloned().unwrap_or_default();
                let e = tally.trials_by_segment.entry(segment).or_default();
                e.0 += c.trials_started;
                e.1 += c.trials_converted;
            }
            tally.total.merge(&c);
        }
    }
    Ok(tallies)
}

/// The buckets of `granularity` that split `range`, the first and last
/// cut to the range; at most `max`.
pub fn buckets(range: Period, granularity: Granularity, max: usize) -> Result<Vec<Period>, Error> {
    let mut out = Vec::new();
    let mut t = range.start;
    while t < range.end {
        if out.len() == max {
            return Err(Error::invalid(
                "range",
                format!(
                    "splits into more than {max} buckets of this granularity; narrow it or use a larger granularity"
                ),
            ));
        }
        let b = Period::containing(t, granularity);
        let bucket = Period::new(b.start.max(range.start), b.end.min(range.end))?;
        out.push(bucket);
        t = b.end;
    }
    Ok(out)
}

/// The bridge on the wire.
pub fn bridge_to_proto(
    period: Period,
    b: &MrrBridge,
    currency: Currency,
) -> v1::GetMrrBridgeResponse {
    let money = |m: Money| Some(convert::money_to_proto(Money::new(m.minor, currency)));
    v1::GetMrrBridgeResponse {
        period: Some(v1::Period {
            start: Some(convert::from_micros(period.start.micros())),
            end: Some(convert::from_micros(period.end.micros())),
        }),
        start_mrr: money(b.start),
        new_mrr: money(b.new),
        reactivation_mrr: money(b.reactivation),
        expansion_mrr: money(b.expansion),
        contraction_mrr: money(b.contraction),
        churned_mrr: money(b.churned),
        end_mrr: money(b.end),
    }
}
