//! Portfolio queries: checked arguments, the accounts a filter selects,
//! and the KPIs over their signals — every formula in `retain-domain`.
//!
//! A finished calendar month is answered from the monthly cells
//! (`rollups.rs`); every other period is answered here, at query time, from
//! the selected accounts' signals in ingestion's `signals` table, through
//! the same domain formulas.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::settings::Tenant;
use prost::Message;
use retain_domain::kpi::revenue::MrrBridge;
use retain_domain::kpi::rollup::Rollup;
use retain_domain::kpi::rollup::cost::CostFact;
use retain_domain::kpi::rollup::portfolio::{Basis, account_contribution};
use retain_domain::signal::{self, SignalBody, SignalKind};
use retain_domain::{Currency, Granularity, Money, Period, Timestamp, Violations};
use retain_proto::{convert, v1};
use retain_runtime::error::Error;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::kpis::{self, Tally};

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

/// The valid stored signals of the selected accounts (all of `tenant`'s
/// with no selection; portfolio-wide costs always), of one kind or all.
pub async fn signals(
    db: &DatabaseConnection,
    tenant: &str,
    settings: &Tenant,
    accounts: Option<&BTreeSet<String>>,
    kind: Option<SignalKind>,
) -> Result<Vec<signal::Signal>, Error> {
    let backend = db.get_database_backend();
    let stmt = match kind {
        Some(k) => Statement::from_sql_and_values(
            backend,
            "SELECT account_id, payload FROM signals WHERE tenant_id = $1 AND kind = $2",
            [tenant.into(), k.code().into()],
        ),
        None => Statement::from_sql_and_values(
            backend,
            "SELECT account_id, payload FROM signals WHERE tenant_id = $1",
            [tenant.into()],
        ),
    };
    let rows = db.query_all_raw(stmt).await?;
    let mut raw: Vec<(String, Vec<u8>)> = Vec::with_capacity(rows.len());
    for row in rows {
        let account: String = row.try_get_by_index(0)?;
        let portfolio_wide = account == signal::PORTFOLIO;
        if !portfolio_wide && accounts.is_some_and(|a| !a.contains(&account)) {
            continue;
        }
        raw.push((account, row.try_get_by_index(1)?));
    }
    let (currency, checklist) = (
        settings.base_currency,
        settings.onboarding_checklist.clone(),
    );
    let tenant = tenant.to_owned();
    // Decoding is CPU work: off the async workers, so health probes and
    // other calls are not starved by a large selection.
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(raw.len());
        for (_, payload) in raw {
            let wire = v1::Signal::decode(payload.as_slice())
                .map_err(|e| Error::Internal(format!("a stored signal does not decode: {e}")))?;
            match convert::stored_signal(&wire, currency, &checklist) {
                Ok(valid) => out.push(valid),
                Err(v) => tracing::warn!(%tenant, event_id = %wire.event_id, violations = %v, "stored signal skipped"),
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| Error::Internal(format!("decoding signals: {e}")))?
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

/// The inputs of portfolio KPIs over the accounts a filter selects, read
/// once for any number of periods: their signals, by account.
pub struct Inputs {
    accounts: BTreeMap<String, Vec<signal::Signal>>,
    costs: Vec<CostFact>,
    segments: HashMap<String, String>,
    filtered: bool,
}

impl Inputs {
    /// Reads `tenant`'s signals of the accounts `filter` selects.
    pub async fn load(
        db: &DatabaseConnection,
        tenant: &str,
        settings: &Tenant,
        filter: Option<&v1::AccountFilter>,
    ) -> Result<Self, Error> {
        let selection = selected(db, tenant, filter).await?;
        let mut accounts: BTreeMap<String, Vec<signal::Signal>> = BTreeMap::new();
        let mut costs = Vec::new();
        for s in signals(db, tenant, settings, selection.as_ref(), None).await? {
            match s.body {
                SignalBody::Cost {
                    kind,
                    amount,
                    period: covers,
                } => costs.push(CostFact {
                    kind,
                    amount,
                    covers,
                }),
                _ if s.account_id == signal::PORTFOLIO => {}
                _ => accounts.entry(s.account_id.clone()).or_default().push(s),
            }
        }
        Ok(Self {
            filtered: selection.is_some(),
            accounts,
            costs,
            segments: segments(db, tenant).await?,
        })
    }

    /// The tally of `period`: every account's contribution, as of `now`
    /// where the period has not ended.
    pub fn tally(&self, basis: &Basis<'_>) -> Result<Tally, Error> {
        let mut tally = Tally {
            costs: self.costs.clone(),
            ..Tally::default()
        };
        for (account, signals) in &self.accounts {
            let c = account_contribution(signals, basis)
                .map_err(|e| Error::Internal(format!("account {account}: {e}")))?;
            if c.trials_started > 0 {
                let segment = self.segments.get(account).cloned().unwrap_or_default();
                let e = tally.trials_by_segment.entry(segment).or_default();
                e.0 += c.trials_started;
                e.1 += c.trials_converted;
            }
            tally.total.merge(&c);
        }
        Ok(tally)
    }

    /// The MRR bridge of `period`.
    pub fn bridge(
        &self,
        settings: &Tenant,
        period: Period,
        now: Timestamp,
    ) -> Result<MrrBridge, Error> {
        let basis = kpis::basis(period, now, settings);
        self.tally(&basis)?
            .total
            .revenue
            .kpis(period, settings.base_currency)
            .map(|k| k.bridge)
            .map_err(|e| Error::Internal(format!("revenue KPIs: {e}")))
    }

    /// Every portfolio KPI of `period`, as of `now` where it has not
    /// ended.
    pub fn metrics(
        &self,
        settings: &Tenant,
        period: Period,
        now: Timestamp,
    ) -> Result<v1::GetPortfolioMetricsResponse, Error> {
        let basis = kpis::basis(period, now, settings);
        kpis::portfolio(&self.tally(&basis)?, &basis, self.filtered)
    }
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
