//! Monthly rollups: what makes a finished month's portfolio KPIs a few rows
//! to read instead of every signal of the tenant.
//!
//! **Rows.** When the consumer recomputes an account, it also computes the
//! account's contribution (`retain_domain::kpi::rollup::portfolio`) to
//! every calendar month that has ended, from the month of its first signal
//! on, as of that month's end — the same function the query-time path
//! runs — and writes the rows that changed (`metrics_account_months`),
//! marking their months dirty in the same transaction. A row is a pure
//! function of the account's signals, so a redelivery writes nothing new,
//! and a late or backfilled signal rewrites exactly the months it changes.
//!
//! **Cells.** A month's rows summed per (segment, plan) are its cells
//! (`metrics_month_cells`). A worker rebuilds dirty months every second
//! (less often while rebuilds are expensive, see [`keep_cells`]); a query
//! that finds its month dirty rebuilds it first. Each write of a month's
//! rows bumps the month's version; a rebuild reads the version before the
//! rows and records it with the cells in one transaction, so a month is
//! dirty exactly while rows newer than its cells exist, and a query never
//! reads cells that miss a row it could see.
//!
//! **When a query uses them.** A period that is exactly one calendar month
//! that has ended, once every account of the tenant has been recomputed
//! after that month's end (a snapshot as of before it means rows may be
//! missing a month: the daily refresh recomputes every account after
//! midnight UTC). Otherwise — the current month, a quarter, a custom span —
//! the query sums contributions over the signals at query time, with the
//! same function. Either way the answer counts what the consumer has
//! processed for the rollups and what ingestion has stored for the
//! query-time path; they differ only by the consumer's backlog.
//!
//! **Trade-off.** Cells per segment and plan make a filter on them free
//! and a month one small read; a new filter dimension would need new cells.
//! Rows are kept per account (≈ 200 bytes each) so a cell can be rebuilt
//! without reading signals: a rebuild decodes one row per account. Rows
//! are computed with the tenant's settings of the time (checklist,
//! `payment_failed_churn_days`): after a change, a finished month follows
//! it account by account as the daily refresh recomputes them.

use std::collections::{BTreeMap, HashSet};

use crate::settings::Tenant;
use prost::encoding::{decode_varint, encode_varint};
use retain_domain::kpi::rollup::Rollup;
use retain_domain::kpi::rollup::cost::CostFact;
use retain_domain::kpi::rollup::portfolio::{
    Contribution, ContributionError, account_contribution,
};
use retain_domain::signal::{Signal, SignalBody, TrialEvent};
use retain_domain::{Granularity, Period, Timestamp};
use retain_proto::{convert, v1};
use retain_runtime::error::Error;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use crate::heavy::HeavyLimit;
use crate::kpis::{self, Tally};
use crate::sql;

/// The calendar months from the one holding `first` to the last that ends
/// at or before `as_of`.
pub fn finished_months(first: Timestamp, as_of: Timestamp) -> Vec<Period> {
    let mut out = Vec::new();
    let mut month = Period::containing(first, Granularity::Month);
    while month.end <= as_of {
        out.push(month);
        month = Period::containing(month.end, Granularity::Month);
    }
    out
}

/// What the consumer stores for one account.
#[derive(Debug, Default, PartialEq)]
pub struct AccountRollups {
    /// Its contribution to every finished month (see [`finished_months`]),
    /// each as of the month's end.
    pub months: Vec<(Period, Contribution)>,
    /// For an account whose history starts with an opening balance: the
    /// month of its first signal, and its contribution to every month
    /// before it (the same for each: its opening MRR, no movement).
    pub before: Option<(Period, Contribution)>,
}

/// How far before `changed_from` the signals since it can change a
/// month, seconds: the trial window when a trial conversion is among them
/// (it counts for a trial started up to the window before it), else
/// nothing. Both [`account_rollups`] and [`dense_read_from`] use it, so
/// what is read and what is recomputed agree.
fn trial_reach(signals: &[Signal], changed_from: Timestamp) -> i64 {
    let converts = signals.iter().any(|s| {
        matches!(s.body, SignalBody::Trial(TrialEvent::Converted)) && s.occurred_at >= changed_from
    });
    if converts {
        retain_domain::kpi::adoption::DEFAULT_TRIAL_WINDOW_DAYS * retain_domain::time::DAY
    } else {
        0
    }
}

/// The rollups of one account's signals, as of `as_of`. With `changed_from`
/// (the earliest `occurred_at` of the signals that just arrived), months
/// those signals cannot change are left out: a signal only counts in
/// periods ending after it, except a trial conversion, which counts for a
/// trial started up to the trial window before it ([`trial_reach`]), a
/// renewal, which counts in the month its contract ends (before or after
/// it was sent), and an opening balance, which reaches back before the
/// account's history (every month is then recomputed). Unchanged rows are
/// left as stored.
pub fn account_rollups(
    signals: &[Signal],
    settings: &Tenant,
    as_of: Timestamp,
    changed_from: Option<Timestamp>,
) -> Result<AccountRollups, ContributionError> {
    let Some(first) = signals
        .iter()
        .map(|s| s.occurred_at.min(s.counts_at()))
        .min()
    else {
        return Ok(AccountRollups::default());
    };
    // The months of the contracts that renewal signals sent since
    // `changed_from` are about (every new signal is among those).
    let renewal_months: HashSet<i64> = signals
        .iter()
        .filter(|s| matches!(s.body, SignalBody::Renewal { .. }))
        .filter(|s| changed_from.is_none_or(|t| s.occurred_at >= t))
        .map(|s| {
            Period::containing(s.counts_at(), Granularity::Month)
                .start
                .micros()
        })
        .collect();
    let of = |month: Period| {
        let basis = kpis::basis(month, month.end, settings);
        account_contribution(signals, &basis)
    };
    let opens = signals
        .iter()
        .any(|s| matches!(s.body, SignalBody::Subscription { opening: true, .. }));
    // The earliest instant a month must end after to be changed (once,
    // not per month: it scans the signals).
    let reached = changed_from.map(|t| t.plus(-trial_reach(signals, t)));
    let affected = |month: &Period| {
        opens
            || reached.is_none_or(|r| month.end > r)
            || renewal_months.contains(&month.start.micros())
    };
    let months = finished_months(first, as_of)
        .into_iter()
        .filter(affected)
        .map(|month| Ok((month, of(month)?)))
        .collect::<Result<_, ContributionError>>()?;
    let first_month = Period::containing(first, Granularity::Month);
    let before = if opens {
        let earlier = Period::containing(first_month.start.plus_micros(-1), Granularity::Month);
        Some((first_month, of(earlier)?)).filter(|(_, c)| *c != Contribution::default())
    } else {
        None
    };
    Ok(AccountRollups { months, before })
}

/// From when a recompute of an account whose new signals start at
/// `changed_from` must read its sessions and actions, given its other
/// signals (`sparse`: every kind but sessions and actions): the snapshot's
/// window (the 30 days before `now`), and each finished month
/// [`account_rollups`] recomputes from three days before its start (its
/// active users are counted over the 30 days before its end) — with a day
/// to spare for either. Everything older counts only through the earliest
/// session and action (when the account was first seen, whether it ever
/// had a session), which the caller reads too. `None` when everything
/// must be read: an opening balance reaches every month.
pub fn dense_read_from(
    sparse: &[Signal],
    changed_from: Timestamp,
    now: Timestamp,
) -> Option<Timestamp> {
    use retain_domain::time::DAY;
    if sparse
        .iter()
        .any(|s| matches!(s.body, SignalBody::Subscription { opening: true, .. }))
    {
        return None;
    }
    // The months `account_rollups` recomputes: those that have ended (a
    // signal up to a day ahead of `now` may end one) from the one
    // containing `changed_from` (less the trial window after a
    // conversion) on, and those of the contracts the renewals sent since
    // are about.
    let horizon = now.plus(DAY);
    let first = Period::containing(
        changed_from.plus(-trial_reach(sparse, changed_from)),
        Granularity::Month,
    );
    let earliest_month = sparse
        .iter()
        .filter(|s| matches!(s.body, SignalBody::Renewal { .. }) && s.occurred_at >= changed_from)
        .map(|s| Period::containing(s.counts_at(), Granularity::Month))
        .chain(std::iter::once(first))
        .filter(|m| m.end <= horizon)
        .map(|m| m.start)
        .min();
    let window = now.plus(-(retain_domain::snapshot::WINDOW_DAYS + 1) * DAY);
    Some(earliest_month.map_or(window, |m| window.min(m.plus(-4 * DAY))))
}

/// Writes the account's month rows that differ from the stored ones
/// (marking their months dirty) and its opening contribution, inside the
/// caller's transaction. Returns how many month rows it wrote.
pub async fn save<C: ConnectionTrait>(
    tx: &C,
    tenant: &str,
    account: &str,
    (segment, plan): (&str, &str),
    rollups: &AccountRollups,
) -> Result<usize, DbErr> {
    let stored = sql::account_months(tx, tenant, account).await?;
    let mut written = 0;
    for (month, contribution) in &rollups.months {
        let start = month.start.micros();
        let bytes = encode(contribution);
        let same = stored
            .get(&start)
            .is_some_and(|(s, p, b)| s == segment && p == plan && *b == bytes);
        if !same {
            sql::save_account_month(tx, tenant, account, start, (segment, plan), bytes).await?;
            written += 1;
        }
    }
    if let Some((first_month, before)) = &rollups.before {
        sql::save_opening(
            tx,
            tenant,
            account,
            first_month.start.micros(),
            (segment, plan),
            encode(before),
        )
        .await?;
    }
    Ok(written)
}

/// Account rows a rebuild reads at once: its memory is bounded by a page,
/// not by the portfolio.
const REBUILD_PAGE: u64 = 5_000;

/// Rebuilds one month's cells from its account rows, a page at a time, if
/// they are older than the rows.
pub async fn rebuild(db: &DatabaseConnection, tenant: &str, month_start: i64) -> Result<(), Error> {
    // The version read first: rows written later bump it past what these
    // cells record, and the month stays dirty for the next rebuild.
    let Some(version) = sql::dirty_version(db, tenant, month_start).await? else {
        return Ok(());
    };
    let mut cells: BTreeMap<(String, String), (i64, Contribution)> = BTreeMap::new();
    let mut after = String::new();
    loop {
        let page = sql::month_rows(db, tenant, month_start, &after, REBUILD_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.0.clone();
        for (_, segment, plan, bytes) in page {
            let c = decode(&bytes).ok_or_else(|| {
                Error::Internal("a stored monthly contribution does not decode".into())
            })?;
            let cell = cells.entry((segment, plan)).or_default();
            cell.0 += 1;
            cell.1.merge(&c);
        }
        // Decoding a page is a few milliseconds: let other tasks run.
        tokio::task::yield_now().await;
    }
    let cells = cells
        .into_iter()
        .map(|((segment, plan), (n, c))| (segment, plan, n, encode(&c)))
        .collect();
    sql::replace_cells(db, tenant, month_start, version, cells).await?;
    Ok(())
}

/// Rebuilds every dirty month, a page at a time; returns how many.
pub async fn rebuild_dirty(db: &DatabaseConnection) -> Result<usize, Error> {
    let mut done = 0;
    loop {
        let dirty = sql::dirty_months(db, 100).await?;
        if dirty.is_empty() {
            return Ok(done);
        }
        for (tenant, month) in &dirty {
            rebuild(db, tenant, *month).await?;
        }
        done += dirty.len();
    }
}

/// Runs [`rebuild_dirty`] every `every` until `stop` — and, after a rebuild
/// that took time T, not again before 4 T: while a bulk import marks every
/// month dirty on each account, rebuilds take at most a fifth of the
/// replica's time and the consumer keeps the rest (a query for a dirty
/// month rebuilds it itself, so answers never wait for this loop).
pub async fn keep_cells(
    db: DatabaseConnection,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let started = std::time::Instant::now();
        if let Err(e) = rebuild_dirty(&db).await {
            tracing::warn!(error = %e, "rebuilding monthly cells failed; retrying later");
        }
        let pause = every.max(started.elapsed() * 4);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// The tally of a finished calendar month from its cells, or `None` when
/// the cells cannot answer it (see the module documentation): the caller
/// then computes it from the signals.
///
/// Cells older than the month's rows are rebuilt first — decoding a row
/// per account, heavy work over a large portfolio — inside the heavy-query
/// limit (`heavy`), like a computation from signals: a tenant that
/// backfills into old months and asks for them again and again waits for
/// its own place rather than running rebuilds beside everyone's calls.
pub async fn tally(
    db: &DatabaseConnection,
    heavy: &HeavyLimit,
    (tenant, settings): (&str, &Tenant),
    period: Period,
    filter: Option<&v1::AccountFilter>,
    now: Timestamp,
) -> Result<Option<Tally>, Error> {
    let Some(month) = Some(period).filter(|p| p.is_calendar_month() && p.end <= now) else {
        return Ok(None);
    };
    let start = month.start.micros();
    if sql::any_snapshot_before(db, tenant, month.end.micros()).await? {
        return Ok(None);
    }
    if sql::dirty_version(db, tenant, start).await?.is_some() {
        let _place = heavy.acquire(tenant).await?;
        rebuild(db, tenant, start).await?;
    }
    let segments: HashSet<&str> = filter
        .map(|f| f.segments.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let plans: HashSet<&str> = filter
        .map(|f| f.plans.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let selected = |segment: &str, plan: &str| {
        // Like the query-time selection: an account without a segment
        // (stored as '') is in no named segment.
        let in_segment = segments.is_empty() || (!segment.is_empty() && segments.contains(segment));
        let on_plan = plans.is_empty() || (!plan.is_empty() && plans.contains(plan));
        in_segment && on_plan
    };
    let mut tally = Tally::default();
    // The month's cells, and the accounts imported with an opening balance
    // after it (paying their opening MRR then).
    let cells = sql::cells(db, tenant, start).await?;
    let openings = sql::openings_after(db, tenant, start).await?;
    for (segment, plan, bytes) in cells.into_iter().chain(openings) {
        if !selected(&segment, &plan) {
            continue;
        }
        let c = decode(&bytes)
            .ok_or_else(|| Error::Internal("a stored monthly sum does not decode".into()))?;
        if c.trials_started > 0 {
            let e = tally.trials_by_segment.entry(segment).or_default();
            e.0 += c.trials_started;
            e.1 += c.trials_converted;
        }
        tally.total.merge(&c);
    }
    tally.costs = costs(db, tenant, settings).await?;
    Ok(Some(tally))
}

/// The portfolio's cost signals.
pub(crate) async fn costs(
    db: &DatabaseConnection,
    tenant: &str,
    settings: &Tenant,
) -> Result<Vec<CostFact>, Error> {
    let mut out = Vec::new();
    for wire in sql::portfolio_signals(db, tenant).await? {
        let parsed = convert::stored_signal(
            &wire,
            settings.base_currency,
            &settings.onboarding_checklist,
        );
        if let Ok(Signal {
            body:
                SignalBody::Cost {
                    kind,
                    amount,
                    period,
                },
            ..
        }) = parsed
        {
            out.push(CostFact {
                kind,
                amount,
                covers: period,
            });
        }
    }
    Ok(out)
}

/// A contribution as stored: its length, then each integer, as varints.
pub fn encode(c: &Contribution) -> Vec<u8> {
    let values = c.values();
    let mut out = Vec::with_capacity(values.len() + 1);
    encode_varint(values.len() as u64, &mut out);
    for v in values {
        encode_varint(v.unsigned_abs(), &mut out);
    }
    out
}

/// The contribution [`encode`] wrote; `None` for anything else (another
/// layout included: the next recompute rewrites it).
pub fn decode(mut bytes: &[u8]) -> Option<Contribution> {
    let len = usize::try_from(decode_varint(&mut bytes).ok()?).ok()?;
    if len != Contribution::LEN {
        return None;
    }
    let mut values = Vec::with_capacity(len);
    for _ in 0..len {
        values.push(i64::try_from(decode_varint(&mut bytes).ok()?).ok()?);
    }
    if !bytes.is_empty() {
        return None;
    }
    Contribution::from_values(&values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contribution_survives_encoding() {
        let mut c = Contribution::default();
        c.revenue.start_mrr = 1_234_567;
        c.revenue.churn_by_reason[3] = 2;
        c.experience.nps[10] = 7;
        c.purchase_total = 99;
        c.stuck = 1;
        assert_eq!(decode(&encode(&c)), Some(c));
        assert_eq!(
            decode(&encode(&Contribution::default())),
            Some(Contribution::default())
        );
    }

    #[test]
    fn anything_else_does_not_decode() {
        let c = Contribution::default();
        let mut bytes = encode(&c);
        bytes.push(0);
        assert_eq!(decode(&bytes), None, "trailing bytes");
        assert_eq!(decode(&bytes[..3]), None, "cut short");
        assert_eq!(decode(&[5, 0, 0, 0, 0, 0]), None, "another layout");
    }

    #[tokio::test]
    async fn a_dirty_month_is_rebuilt_only_in_a_heavy_place_of_its_tenant() {
        let db = retain_testkit::TestDatabase::sqlite().await;
        let tenants = crate::settings::tenants(
            &retain_testkit::settings()
                .tenants
                .parse()
                .expect("tenant settings"),
        )
        .expect("tenants");
        let acme = tenants.of("acme");
        let t = |d: i64| Timestamp::from_seconds(d * 86_400);
        let march = Period::containing(
            t(retain_domain::time::days_from_civil(2026, 3, 10)),
            Granularity::Month,
        );
        let now = t(retain_domain::time::days_from_civil(2026, 4, 2));
        let heavy = HeavyLimit::new(2, 1);
        let ask = || tally(&db.conn, &heavy, ("acme", acme), march, None, now);
        // Clean: answered without a place, even with the tenant's taken.
        let held = heavy.acquire("acme").await.expect("a place");
        let clean = tokio::time::timeout(std::time::Duration::from_secs(5), ask())
            .await
            .expect("a clean month waits for no place");
        assert!(clean.expect("answered").is_some());
        // Dirty: the rebuild waits for the tenant's place…
        sql::mark_dirty(&db.conn, "acme", march.start.micros())
            .await
            .expect("marked");
        // (Given time to run, it would finish in milliseconds; it cannot
        // while the place is taken, however slow the machine.)
        let mut waiting = Box::pin(ask());
        let patience = std::time::Duration::from_millis(200);
        assert!(
            tokio::time::timeout(patience, &mut waiting).await.is_err(),
            "a dirty month's rebuild waits while the tenant's place is taken"
        );
        // …another tenant's place does not stand in for it…
        let other = heavy
            .acquire("globex")
            .await
            .expect("another tenant's place");
        assert!(tokio::time::timeout(patience, &mut waiting).await.is_err());
        drop(other);
        assert!(
            sql::dirty_version(&db.conn, "acme", march.start.micros())
                .await
                .expect("read")
                .is_some(),
            "nothing was rebuilt while waiting"
        );
        // …and goes on once the place is given back.
        drop(held);
        let rebuilt = waiting.await.expect("answered");
        assert!(rebuilt.is_some());
        assert_eq!(
            sql::dirty_version(&db.conn, "acme", march.start.micros())
                .await
                .expect("read"),
            None,
            "the month is clean once rebuilt"
        );
    }

    #[test]
    fn finished_months_stop_at_the_last_that_ended() {
        let t = |d: i64| Timestamp::from_seconds(d * 86_400);
        // 2026-01-15 → as of 2026-04-01T00:00: January, February, March.
        let jan15 = retain_domain::time::days_from_civil(2026, 1, 15);
        let apr1 = retain_domain::time::days_from_civil(2026, 4, 1);
        let months = finished_months(t(jan15), t(apr1));
        assert_eq!(months.len(), 3);
        assert_eq!(
            months[0].start,
            t(retain_domain::time::days_from_civil(2026, 1, 1))
        );
        assert_eq!(months[2].end, t(apr1));
        assert!(finished_months(t(jan15), t(jan15 + 1)).is_empty());
    }
}
