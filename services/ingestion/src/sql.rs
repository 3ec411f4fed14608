//! Every SQL statement ingestion's write transaction runs, in the order
//! [`crate::commit`] runs them. Each step writes in bulk (PostgreSQL: one
//! statement with array parameters; SQLite: prepared single-row statements,
//! measured faster there) with rows sorted by key, so concurrent writers
//! lock rows in the same order and cannot deadlock.

use std::collections::{BTreeMap, HashMap, HashSet};

use retain_domain::signal::{AccountUpsert, Mode, SignalBody};
use retain_proto::{convert, v1};
use retain_store::entity::account;
use retain_store::{MAX_BIND_PARAMS, placeholder_list, values_placeholders};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QuerySelect, Statement, Value,
};

use crate::intake::{PORTFOLIO, Prepared, is_routable, user_of};

async fn exec(tx: &DatabaseTransaction, sql: String, values: Vec<Value>) -> Result<(), DbErr> {
    retain_store::exec(tx, sql, values).await.map(|_| ())
}

/// Step 1, `signal_ids`: claims the event ids of `signals` (distinct ids).
/// For each signal, in order: `None` when this transaction claimed its id
/// (a new event), or the content hash stored for an id claimed before.
pub async fn claim_ids(
    tx: &DatabaseTransaction,
    tenant: &str,
    signals: &[&Prepared],
) -> Result<Vec<Option<Vec<u8>>>, DbErr> {
    let backend = tx.get_database_backend();
    let mut order: Vec<usize> = (0..signals.len()).collect();
    order.sort_by(|&a, &b| signals[a].wire.event_id.cmp(&signals[b].wire.event_id));
    let mut inserted: HashSet<String> = HashSet::with_capacity(signals.len());
    if backend == DatabaseBackend::Postgres {
        // One statement with array parameters: no bind-parameter limit, and
        // measured as fast as COPY (docs/BENCHMARKS.md).
        let ids: Vec<String> = order
            .iter()
            .map(|&i| signals[i].wire.event_id.clone())
            .collect();
        let hashes: Vec<Vec<u8>> = order.iter().map(|&i| signals[i].hash.to_vec()).collect();
        let sql = "INSERT INTO signal_ids (tenant_id, event_id, content_hash) \
                   SELECT $1, e, h FROM UNNEST($2::text[], $3::bytea[]) WITH ORDINALITY AS t(e, h, n) \
                   ORDER BY n ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING event_id";
        for row in tx
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [tenant.into(), ids.into(), hashes.into()],
            ))
            .await?
        {
            inserted.insert(row.try_get_by_index::<String>(0)?);
        }
    }
    if backend != DatabaseBackend::Postgres {
        // SQLite: one prepared single-row statement per signal, measured
        // 2.5× faster than a multi-row VALUES through sqlx (BENCHMARKS.md).
        for &i in &order {
            let s = signals[i];
            let row = tx
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    "INSERT INTO signal_ids (tenant_id, event_id, content_hash) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING event_id",
                    [
                        tenant.into(),
                        s.wire.event_id.clone().into(),
                        s.hash.to_vec().into(),
                    ],
                ))
                .await?;
            if row.is_some() {
                inserted.insert(s.wire.event_id.clone());
            }
        }
    }
    let existing: Vec<&Prepared> = signals
        .iter()
        .copied()
        .filter(|s| !inserted.contains(&s.wire.event_id))
        .collect();
    let mut stored: HashMap<String, Vec<u8>> = HashMap::with_capacity(existing.len());
    for chunk in existing.chunks(MAX_BIND_PARAMS - 1) {
        let mut values: Vec<Value> = vec![tenant.into()];
        values.extend(chunk.iter().map(|s| Value::from(s.wire.event_id.clone())));
        let sql = format!(
            "SELECT event_id, content_hash FROM signal_ids WHERE tenant_id = $1 AND event_id IN ({})",
            placeholder_list(chunk.len(), 2)
        );
        for row in tx
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
        {
            stored.insert(row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        }
    }
    Ok(signals
        .iter()
        .map(|s| {
            if inserted.contains(&s.wire.event_id) {
                None
            } else {
                // Not claimed now, so stored before (or by a transaction
                // that committed in between): its hash is there.
                Some(stored.remove(&s.wire.event_id).unwrap_or_default())
            }
        })
        .collect())
}

/// Step 2, `signals`: the rows of newly accepted signals, ingested `now`
/// (µs).
pub async fn insert_signals(
    tx: &DatabaseTransaction,
    tenant: &str,
    signals: &[&Prepared],
    now: i64,
) -> Result<(), DbErr> {
    let mut sorted: Vec<&Prepared> = signals.to_vec();
    sorted.sort_by(|a, b| {
        (&a.wire.account_id, a.occurred_at_us, &a.wire.event_id).cmp(&(
            &b.wire.account_id,
            b.occurred_at_us,
            &b.wire.event_id,
        ))
    });
    if tx.get_database_backend() == DatabaseBackend::Postgres {
        let sql = "INSERT INTO signals (tenant_id, account_id, occurred_at, event_id, kind, mode, payload, ingested_at) \
                   SELECT $1, a, o, e, k, m, p, $2 \
                   FROM UNNEST($3::int2[], $4::text[], $5::int8[], $6::text[], $7::int2[], $8::bytea[]) AS t(m, a, o, e, k, p)";
        let values: Vec<Value> = vec![
            tenant.into(),
            now.into(),
            sorted
                .iter()
                .map(|s| s.mode.code())
                .collect::<Vec<_>>()
                .into(),
            sorted
                .iter()
                .map(|s| s.wire.account_id.clone())
                .collect::<Vec<_>>()
                .into(),
            sorted
                .iter()
                .map(|s| s.occurred_at_us)
                .collect::<Vec<_>>()
                .into(),
            sorted
                .iter()
                .map(|s| s.wire.event_id.clone())
                .collect::<Vec<_>>()
                .into(),
            sorted.iter().map(|s| s.kind).collect::<Vec<_>>().into(),
            sorted
                .iter()
                .map(|s| s.payload.clone())
                .collect::<Vec<_>>()
                .into(),
        ];
        return exec(tx, sql.to_owned(), values).await;
    }
    // SQLite: one prepared single-row statement per signal (see claim_ids).
    for s in sorted {
        exec(
            tx,
            "INSERT INTO signals (tenant_id, account_id, occurred_at, event_id, kind, mode, payload, ingested_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                .to_owned(),
            vec![
                tenant.into(),
                s.wire.account_id.clone().into(),
                s.occurred_at_us.into(),
                s.wire.event_id.clone().into(),
                s.kind.into(),
                s.mode.code().into(),
                s.payload.clone().into(),
                now.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

/// The accounts `signals` touch (not the portfolio), sorted.
pub fn touched_accounts<'a>(signals: &[&'a Prepared]) -> Vec<&'a str> {
    signals
        .iter()
        .map(|s| s.wire.account_id.as_str())
        .filter(|a| *a != PORTFOLIO)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Step 4, `accounts`: creates the rows of accounts in `create` that do
/// not exist yet and merges the account upserts of `signals` into their
/// rows (locked until the transaction ends), as of `now` (µs).
pub async fn upsert_accounts(
    tx: &DatabaseTransaction,
    tenant: &str,
    create: &[&str],
    signals: &[&Prepared],
    now: i64,
) -> Result<(), DbErr> {
    if tx.get_database_backend() == DatabaseBackend::Postgres && !create.is_empty() {
        // Arrays: the statement's text is the same whatever the row count,
        // so PostgreSQL plans it once per connection.
        let ids: Vec<String> = create.iter().map(|a| (*a).to_owned()).collect();
        exec(
            tx,
            "INSERT INTO accounts (tenant_id, account_id, contact_emails, created_at, updated_at) \
             SELECT $1, a, '', $2, $2 FROM UNNEST($3::text[]) WITH ORDINALITY AS t(a, n) \
             ORDER BY n ON CONFLICT (tenant_id, account_id) DO NOTHING"
                .into(),
            vec![tenant.into(), now.into(), ids.into()],
        )
        .await?;
    } else if tx.get_database_backend() != DatabaseBackend::Postgres {
        for chunk in create.chunks(MAX_BIND_PARAMS - 2) {
            let mut values: Vec<Value> = vec![tenant.into(), now.into()];
            values.extend(chunk.iter().map(|a| Value::from(*a)));
            let sql = format!(
                "INSERT INTO accounts (tenant_id, account_id, contact_emails, created_at, updated_at) \
                 SELECT $1, v.column1, '', $2, $2 FROM (VALUES {}) AS v WHERE true \
                 ON CONFLICT (tenant_id, account_id) DO NOTHING",
                values_placeholders(chunk.len(), 1, 3)
            );
            exec(tx, sql, values).await?;
        }
    }

    // Upserts, oldest first per account.
    let mut upserts: BTreeMap<&str, Vec<&Prepared>> = BTreeMap::new();
    for s in signals {
        if matches!(s.domain.body, SignalBody::Account(_)) {
            upserts
                .entry(s.wire.account_id.as_str())
                .or_default()
                .push(s);
        }
    }
    if upserts.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = upserts.keys().copied().collect();
    let mut rows: Vec<account::Model> = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(MAX_BIND_PARAMS - 1) {
        let mut q = account::Entity::find()
            .filter(account::Column::TenantId.eq(tenant))
            .filter(account::Column::AccountId.is_in(chunk.iter().copied()));
        if tx.get_database_backend() == DatabaseBackend::Postgres {
            q = q.lock_exclusive();
        }
        rows.extend(q.all(tx).await?);
    }
    for row in &mut rows {
        let Some(list) = upserts.get_mut(row.account_id.as_str()) else {
            continue;
        };
        list.sort_by(|a, b| {
            (a.occurred_at_us, &a.wire.event_id).cmp(&(b.occurred_at_us, &b.wire.event_id))
        });
        for s in list.iter() {
            merge_upsert(row, s);
        }
        row.updated_at = now;
    }
    write_accounts(tx, &rows).await
}

/// Applies one account upsert, field by field: a field the upsert carries
/// is set when the upsert is newer than the one that last set that field
/// (its `…_at` time), so any delivery order of the same upserts gives the
/// same account. Two upserts of the same microsecond that disagree are
/// settled by the greater value, again whatever their order.
pub fn merge_upsert(row: &mut account::Model, s: &Prepared) {
    if let SignalBody::Account(upsert) = &s.domain.body {
        merge_fields(row, upsert, s.occurred_at_us);
    }
}

fn merge_fields(row: &mut account::Model, u: &AccountUpsert, at: i64) {
    /// Sets `slot` to `value` (`None` clears) if this upsert wins the field.
    fn field<T: Ord>(slot: &mut Option<T>, slot_at: &mut Option<i64>, value: Option<T>, at: i64) {
        let wins = match *slot_at {
            None => true,
            Some(t) => at > t || (at == t && value > *slot),
        };
        if wins {
            *slot = value;
            *slot_at = Some(at);
        }
    }
    if let Some(v) = &u.name {
        field(&mut row.name, &mut row.name_at, Some(v.clone()), at);
    }
    if let Some(v) = &u.segment {
        field(&mut row.segment, &mut row.segment_at, Some(v.clone()), at);
    }
    if let Some(v) = &u.plan {
        field(&mut row.plan, &mut row.plan_at, Some(v.clone()), at);
    }
    // An empty owner email clears the owner.
    if let Some(e) = &u.csm_owner_email {
        let owner = (!e.is_empty()).then(|| e.clone());
        field(
            &mut row.csm_owner_email,
            &mut row.csm_owner_email_at,
            owner,
            at,
        );
    }
    if let Some(l) = u.lifecycle {
        field(
            &mut row.lifecycle,
            &mut row.lifecycle_at,
            Some(l.code()),
            at,
        );
    }
    if let Some(t) = u.renewal_date {
        field(
            &mut row.renewal_date,
            &mut row.renewal_date_at,
            Some(t.seconds()),
            at,
        );
    }
    if let Some(n) = u.seats {
        field(&mut row.seats, &mut row.seats_at, Some(n), at);
    }
    // Empty contact emails leave the stored ones.
    if !u.contact_emails.is_empty() {
        let mut emails = Some(std::mem::take(&mut row.contact_emails));
        field(
            &mut emails,
            &mut row.contact_emails_at,
            Some(u.contact_emails.join("\n")),
            at,
        );
        row.contact_emails = emails.unwrap_or_default();
    }
    if let Some(m) = &u.acquisition_cost {
        let mut cost = row
            .acquisition_cost_minor
            .zip(row.acquisition_currency.clone());
        field(
            &mut cost,
            &mut row.acquisition_cost_at,
            Some((m.minor, m.currency.to_string())),
            at,
        );
        row.acquisition_cost_minor = cost.as_ref().map(|c| c.0);
        row.acquisition_currency = cost.map(|c| c.1);
    }
    row.profile_at = Some(row.profile_at.map_or(at, |p| p.max(at)));
}

async fn write_accounts(tx: &DatabaseTransaction, rows: &[account::Model]) -> Result<(), DbErr> {
    const COLS: usize = 24;
    for chunk in rows.chunks(MAX_BIND_PARAMS / COLS) {
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * COLS);
        for r in chunk {
            values.extend([
                r.tenant_id.clone().into(),
                r.account_id.clone().into(),
                r.name.clone().into(),
                r.segment.clone().into(),
                r.plan.clone().into(),
                r.csm_owner_email.clone().into(),
                r.contact_emails.clone().into(),
                r.seats.into(),
                r.lifecycle.into(),
                r.renewal_date.into(),
                r.acquisition_cost_minor.into(),
                r.acquisition_currency.clone().into(),
                r.profile_at.into(),
                r.name_at.into(),
                r.segment_at.into(),
                r.plan_at.into(),
                r.csm_owner_email_at.into(),
                r.contact_emails_at.into(),
                r.seats_at.into(),
                r.lifecycle_at.into(),
                r.renewal_date_at.into(),
                r.acquisition_cost_at.into(),
                r.created_at.into(),
                r.updated_at.into(),
            ]);
        }
        let sql = format!(
            "INSERT INTO accounts (tenant_id, account_id, name, segment, plan, csm_owner_email, \
             contact_emails, seats, lifecycle, renewal_date, acquisition_cost_minor, \
             acquisition_currency, profile_at, name_at, segment_at, plan_at, csm_owner_email_at, \
             contact_emails_at, seats_at, lifecycle_at, renewal_date_at, acquisition_cost_at, \
             created_at, updated_at) VALUES {} \
             ON CONFLICT (tenant_id, account_id) DO UPDATE SET name = excluded.name, \
             segment = excluded.segment, plan = excluded.plan, \
             csm_owner_email = excluded.csm_owner_email, contact_emails = excluded.contact_emails, \
             seats = excluded.seats, lifecycle = excluded.lifecycle, \
             renewal_date = excluded.renewal_date, \
             acquisition_cost_minor = excluded.acquisition_cost_minor, \
             acquisition_currency = excluded.acquisition_currency, \
             profile_at = excluded.profile_at, name_at = excluded.name_at, \
             segment_at = excluded.segment_at, plan_at = excluded.plan_at, \
             csm_owner_email_at = excluded.csm_owner_email_at, \
             contact_emails_at = excluded.contact_emails_at, seats_at = excluded.seats_at, \
             lifecycle_at = excluded.lifecycle_at, renewal_date_at = excluded.renewal_date_at, \
             acquisition_cost_at = excluded.acquisition_cost_at, updated_at = excluded.updated_at",
            values_placeholders(chunk.len(), COLS, 1)
        );
        exec(tx, sql, values).await?;
    }
    Ok(())
}

/// First and last sight of every (account, user) in `signals`, sorted.
pub fn user_sightings<'a>(signals: &[&'a Prepared]) -> Vec<UserSighting<'a>> {
    let mut seen: BTreeMap<(&str, &str), (i64, i64)> = BTreeMap::new();
    for s in signals {
        if let Some(user) = user_of(&s.wire) {
            let e = seen
                .entry((s.wire.account_id.as_str(), user))
                .or_insert((s.occurred_at_us, s.occurred_at_us));
            e.0 = e.0.min(s.occurred_at_us);
            e.1 = e.1.max(s.occurred_at_us);
        }
    }
    seen.into_iter().collect()
}

/// `((account, user), (first seen µs, last seen µs))`.
pub type UserSighting<'a> = ((&'a str, &'a str), (i64, i64));

/// Step 3, `users`: records first and last sight of (account, user) pairs (earliest first,
/// latest last, whatever the arrival order).
pub async fn upsert_users(
    tx: &DatabaseTransaction,
    tenant: &str,
    rows: &[UserSighting<'_>],
) -> Result<(), DbErr> {
    const MERGE: &str = "ON CONFLICT (tenant_id, account_id, user_id) DO UPDATE SET \
         first_seen_at = CASE WHEN excluded.first_seen_at < users.first_seen_at \
           THEN excluded.first_seen_at ELSE users.first_seen_at END, \
         last_seen_at = CASE WHEN excluded.last_seen_at > users.last_seen_at \
           THEN excluded.last_seen_at ELSE users.last_seen_at END";
    if rows.is_empty() {
        return Ok(());
    }
    if tx.get_database_backend() == DatabaseBackend::Postgres {
        // Arrays: one statement text whatever the row count (planned once
        // per connection, where a growing VALUES list is planned anew).
        let accounts: Vec<String> = rows.iter().map(|((a, _), _)| (*a).to_owned()).collect();
        let users: Vec<String> = rows.iter().map(|((_, u), _)| (*u).to_owned()).collect();
        let firsts: Vec<i64> = rows.iter().map(|(_, (f, _))| *f).collect();
        let lasts: Vec<i64> = rows.iter().map(|(_, (_, l))| *l).collect();
        return exec(
            tx,
            format!(
                "INSERT INTO users (tenant_id, account_id, user_id, first_seen_at, last_seen_at) \
                 SELECT $1, a, u, f, l FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::int8[]) \
                 WITH ORDINALITY AS t(a, u, f, l, n) ORDER BY n {MERGE}"
            ),
            vec![
                tenant.into(),
                accounts.into(),
                users.into(),
                firsts.into(),
                lasts.into(),
            ],
        )
        .await;
    }
    const COLS: usize = 4;
    for chunk in rows.chunks((MAX_BIND_PARAMS - 1) / COLS) {
        let mut values: Vec<Value> = Vec::with_capacity(1 + chunk.len() * COLS);
        values.push(tenant.into());
        for ((account, user), (first, last)) in chunk {
            values.extend([
                Value::from(*account),
                Value::from(*user),
                (*first).into(),
                (*last).into(),
            ]);
        }
        let sql = format!(
            "INSERT INTO users (tenant_id, account_id, user_id, first_seen_at, last_seen_at) \
             SELECT $1, v.column1, v.column2, v.column3, v.column4 FROM (VALUES {}) AS v WHERE true \
             {MERGE}",
            values_placeholders(chunk.len(), COLS, 2)
        );
        exec(tx, sql, values).await?;
    }
    Ok(())
}

/// One `SignalsRecorded` per touched account, in account order, with one `RecordedBatch` per mode among its signals
/// (a shared transaction can hold a LIVE and a BACKFILL call), so a
/// coalescing consumer that receives several publications folded together
/// reads all of them (`SignalsRecorded::merged`). The singular fields say
/// what the batches say together.
pub fn signals_recorded(tenant: &str, signals: &[&Prepared]) -> Vec<v1::SignalsRecorded> {
    let mut by_account: BTreeMap<&str, Vec<&Prepared>> = BTreeMap::new();
    for s in signals {
        by_account
            .entry(s.wire.account_id.as_str())
            .or_default()
            .push(s);
    }
    by_account
        .into_iter()
        .map(|(account, list)| {
            let batches: Vec<v1::RecordedBatch> = [Mode::Live, Mode::Backfill]
                .into_iter()
                .filter_map(|mode| {
                    let of: Vec<&&Prepared> = list.iter().filter(|s| s.mode == mode).collect();
                    let earliest = of.iter().map(|s| s.occurred_at_us).min()?;
                    let latest = of.iter().map(|s| s.occurred_at_us).max()?;
                    Some(v1::RecordedBatch {
                        earliest_occurred_at: Some(convert::from_micros(earliest)),
                        latest_occurred_at: Some(convert::from_micros(latest)),
                        signal_count: of.len() as i64,
                        mode: v1::IngestMode::from(mode) as i32,
                    })
                })
                .collect();
            let mut event = v1::SignalsRecorded {
                tenant_id: tenant.to_owned(),
                account_id: account.to_owned(),
                routable: list
                    .iter()
                    .filter(|s| is_routable(s))
                    .map(|s| s.wire.clone())
                    .collect(),
                batches,
                ..Default::default()
            };
            let merged = event.merged();
            event.earliest_occurred_at = merged.earliest_occurred_at;
            event.latest_occurred_at = merged.latest_occurred_at;
            event.signal_count = merged.signal_count;
            event.mode = merged.mode;
            event
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use retain_domain::signal::Lifecycle;
    use retain_domain::{Currency, Money, Timestamp};

    use super::*;

    fn blank() -> account::Model {
        account::Model {
            tenant_id: "t".into(),
            account_id: "a".into(),
            name: None,
            segment: None,
            plan: None,
            csm_owner_email: None,
            contact_emails: String::new(),
            seats: None,
            lifecycle: None,
            renewal_date: None,
            acquisition_cost_minor: None,
            acquisition_currency: None,
            profile_at: None,
            name_at: None,
            segment_at: None,
            plan_at: None,
            csm_owner_email_at: None,
            contact_emails_at: None,
            seats_at: None,
            lifecycle_at: None,
            renewal_date_at: None,
            acquisition_cost_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn plan(p: Option<&str>) -> AccountUpsert {
        AccountUpsert {
            plan: p.map(str::to_owned),
            ..AccountUpsert::default()
        }
    }

    #[test]
    fn a_late_upsert_sets_the_fields_it_is_newest_for() {
        // 11-20 plan starter, 11-22 no plan, 11-21 plan growth, delivered in
        // that order: the plan is growth (the newest upsert that carried it).
        let day = |d| Timestamp::from_ymd(2026, 11, d).micros();
        let mut row = blank();
        merge_fields(&mut row, &plan(Some("starter")), day(20));
        merge_fields(
            &mut row,
            &AccountUpsert {
                seats: Some(5),
                ..plan(None)
            },
            day(22),
        );
        merge_fields(&mut row, &plan(Some("growth")), day(21));
        assert_eq!(row.plan.as_deref(), Some("growth"));
        assert_eq!(row.seats, Some(5));
        assert_eq!(row.profile_at, Some(day(22)));
    }

    fn upsert() -> impl Strategy<Value = (AccountUpsert, i64)> {
        let text = prop::option::of(prop::sample::select(vec!["a", "b", "c"]));
        (
            text.clone(),
            text.clone(),
            prop::option::of(prop::sample::select(vec!["", "x@acme.io", "y@acme.io"])),
            prop::option::of(0i64..3),
            prop::option::of(prop::sample::select(Lifecycle::ALL.to_vec())),
            prop::collection::vec(prop::sample::select(vec!["p@acme.io", "q@acme.io"]), 0..2),
            prop::option::of(0i64..3),
            0i64..4,
        )
            .prop_map(|(name, plan, csm, seats, lifecycle, contacts, cost, at)| {
                let eur = Currency::parse("EUR").expect("EUR");
                (
                    AccountUpsert {
                        name: name.map(str::to_owned),
                        segment: None,
                        plan: plan.map(str::to_owned),
                        lifecycle,
                        renewal_date: seats.map(|s| Timestamp::from_seconds(s * 86_400)),
                        seats,
                        csm_owner_email: csm.map(str::to_owned),
                        contact_emails: contacts.into_iter().map(str::to_owned).collect(),
                        acquisition_cost: cost.map(|c| Money::new(c * 100, eur)),
                    },
                    at,
                )
            })
    }

    proptest! {
        // Any delivery order of the same upserts gives the same account
        // (times drawn from a small range, so ties are common).
        #[test]
        fn any_delivery_order_gives_the_same_account(
            (upserts, shuffled) in prop::collection::vec(upsert(), 1..8)
                .prop_flat_map(|u| (Just(u.clone()), Just(u).prop_shuffle()))
        ) {
            let mut in_order = blank();
            for (u, at) in &upserts {
                merge_fields(&mut in_order, u, *at);
            }
            let mut other = blank();
            for (u, at) in &shuffled {
                merge_fields(&mut other, u, *at);
            }
            prop_assert_eq!(in_order, other);
        }
    }
}
