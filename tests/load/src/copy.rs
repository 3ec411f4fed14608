//! The fairest limit: every row the ingestion transaction writes for a
//! batch, written in one transaction per batch — by binary `COPY` on
//! PostgreSQL, by single-row `INSERT`s prepared once on SQLite (its fastest
//! method, measured) — what the database could do for the service if the
//! service cost nothing and wrote no row twice.
//!
//! Per batch of signals, as the service writes them: the idempotency
//! ledger row (`signal_ids`) and the `signals` row of every signal; a
//! `users` row for each user seen for the first time in the run; an
//! `accounts` row for each account seen for the first time; and the
//! `signals.recorded` messages — one per touched account for metrics, one
//! per account with routable signals for notification — with their real
//! payloads. What it leaves out is the service's read of the ledger (the
//! duplicate check), its row locks and its `ON CONFLICT` merges: those are
//! the service's price, the ratio shows it.

use std::collections::{BTreeMap, HashSet};

use prost::Message;
use retain_proto::v1;
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement, TransactionTrait, Value,
};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPool;

/// The tenant the baseline writes under (the service's is `loadgen`).
const TENANT: &str = "baseline";

/// Rows of one batch beyond its signals: users and accounts new to the
/// run, and the bus messages.
pub struct Batch {
    signals: Vec<v1::Signal>,
    new_users: Vec<(String, String, i64)>,
    new_accounts: Vec<String>,
    messages: Vec<BusRow>,
    number: usize,
}

/// One `signals.recorded` row.
struct BusRow {
    group: &'static str,
    key: String,
    coalesce: bool,
    payload: Vec<u8>,
}

/// Whether ingestion puts `s` in its publication for notification: the
/// domain's routing contract over the signal as the service reads it (the
/// load generator's signals are in USD, the tenant's currency).
fn routable(s: &v1::Signal) -> bool {
    let usd = retain_domain::Currency::parse("USD").expect("USD");
    retain_proto::convert::stored_signal(s, usd, &[])
        .is_ok_and(|d| retain_domain::routing::routable(&d).is_some())
}

/// Decides, batch by batch in the order the service would see them, which
/// rows each batch writes (first sightings of users and accounts).
pub fn plan(batches: Vec<Vec<v1::Signal>>) -> Vec<Batch> {
    let mut users: HashSet<(String, String)> = HashSet::new();
    let mut accounts: HashSet<String> = HashSet::new();
    batches
        .into_iter()
        .enumerate()
        .map(|(number, signals)| {
            let mut new_users = Vec::new();
            let mut new_accounts = Vec::new();
            let mut by_account: BTreeMap<&str, Vec<&v1::Signal>> = BTreeMap::new();
            for s in &signals {
                let at = s
                    .occurred_at
                    .as_ref()
                    .map_or(0, retain_proto::convert::micros);
                if let Some(user) = retain_ingestion::user_of(s)
                    && users.insert((s.account_id.clone(), user.to_owned()))
                {
                    new_users.push((s.account_id.clone(), user.to_owned(), at));
                }
                if accounts.insert(s.account_id.clone()) {
                    new_accounts.push(s.account_id.clone());
                }
                by_account.entry(&s.account_id).or_default().push(s);
            }
            let mut messages = Vec::new();
            for (account, list) in by_account {
                let event = v1::SignalsRecorded {
                    tenant_id: TENANT.into(),
                    account_id: account.into(),
                    signal_count: list.len() as i64,
                    mode: v1::IngestMode::Live as i32,
                    routable: list
                        .iter()
                        .filter(|s| routable(s))
                        .map(|s| (*s).clone())
                        .collect(),
                    batches: vec![v1::RecordedBatch {
                        signal_count: list.len() as i64,
                        mode: v1::IngestMode::Live as i32,
                        earliest_occurred_at: list
                            .iter()
                            .filter_map(|s| s.occurred_at)
                            .min_by_key(|t| t.seconds),
                        latest_occurred_at: list
                            .iter()
                            .filter_map(|s| s.occurred_at)
                            .max_by_key(|t| t.seconds),
                    }],
                    ..Default::default()
                };
                let key = format!("{TENANT}/{account}");
                let payload = event.encode_to_vec();
                // Notification's copy exactly when the topic labels it.
                if retain_ingestion::topics::SIGNALS_RECORDED
                    .label_for(&event)
                    .is_some()
                {
                    messages.push(BusRow {
                        group: retain_bus::groups::NOTIFICATION,
                        key: key.clone(),
                        coalesce: false,
                        payload: payload.clone(),
                    });
                }
                messages.push(BusRow {
                    group: retain_bus::groups::METRICS,
                    key,
                    coalesce: true,
                    payload,
                });
            }
            Batch {
                signals,
                new_users,
                new_accounts,
                messages,
                number,
            }
        })
        .collect()
}

/// The rows `Batch` stands for.
pub fn rows(batch: &Batch) -> usize {
    2 * batch.signals.len()
        + batch.new_users.len()
        + batch.new_accounts.len()
        + batch.messages.len()
}

/// Writes one batch's rows by binary `COPY`, one statement per table, in
/// one transaction.
pub async fn write(pool: &PgPool, batch: &Batch) -> anyhow::Result<()> {
    let now = retain_store::now_micros();
    let mut ids = BinaryCopy::new();
    let mut signals = BinaryCopy::new();
    for s in &batch.signals {
        let payload = s.encode_to_vec();
        let hash: [u8; 32] = Sha256::digest(&payload).into();
        ids.row(3).text(TENANT).text(&s.event_id).bytes(&hash);
        signals
            .row(8)
            .text(TENANT)
            .text(&s.account_id)
            .i64(
                s.occurred_at
                    .as_ref()
                    .map_or(0, retain_proto::convert::micros),
            )
            .text(&s.event_id)
            .i16(
                s.body
                    .as_ref()
                    .map_or(0, |b| retain_proto::convert::kind_of(b).code()),
            )
            .i16(1)
            .bytes(&payload)
            .i64(now);
    }
    let mut users = BinaryCopy::new();
    for (account, user, at) in &batch.new_users {
        users
            .row(5)
            .text(TENANT)
            .text(account)
            .text(user)
            .i64(*at)
            .i64(*at);
    }
    let mut accounts = BinaryCopy::new();
    for account in &batch.new_accounts {
        accounts
            .row(5)
            .text(TENANT)
            .text(account)
            .text("")
            .i64(now)
            .i64(now);
    }
    let mut bus = BinaryCopy::new();
    for m in &batch.messages {
        // A coalescing group keeps one pending message per key: the
        // baseline cannot fold by COPY, so its key is made unique per
        // batch (the index entry is still written).
        let coalesce_key = m.coalesce.then(|| format!("{}#{}", m.key, batch.number));
        bus.row(11)
            .text(retain_ingestion::topics::SIGNALS_RECORDED.name())
            .text(m.group)
            .text(&m.key)
            .opt_text(coalesce_key.as_deref())
            .bytes(&m.payload)
            .text("")
            .i16(0)
            .i32(0)
            .i64(now)
            .i32(1)
            .i64(now);
    }
    let mut tx = pool.begin().await?;
    for (table, data) in [
        ("signal_ids (tenant_id, event_id, content_hash)", ids),
        (
            "signals (tenant_id, account_id, occurred_at, event_id, kind, mode, payload, ingested_at)",
            signals,
        ),
        (
            "users (tenant_id, account_id, user_id, first_seen_at, last_seen_at)",
            users,
        ),
        (
            "accounts (tenant_id, account_id, contact_emails, created_at, updated_at)",
            accounts,
        ),
        (
            "bus_messages (topic, consumer_group, msg_key, coalesce_key, payload, headers, state, \
             attempts, available_at, coalesced, created_at)",
            bus,
        ),
    ] {
        if data.rows == 0 {
            continue;
        }
        let mut copy = tx
            .copy_in_raw(&format!("COPY {table} FROM STDIN (FORMAT binary)"))
            .await?;
        copy.send(data.finish()).await?;
        copy.finish().await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Writes one batch's rows on SQLite: single-row `INSERT`s (each
/// statement prepared once and cached by the driver), one transaction.
pub async fn insert(db: &DatabaseConnection, batch: &Batch) -> anyhow::Result<()> {
    let now = retain_store::now_micros();
    let tx = db.begin().await?;
    let run = |sql: &'static str, values: Vec<Value>| {
        let stmt = Statement::from_sql_and_values(DatabaseBackend::Sqlite, sql, values);
        tx.execute_raw(stmt)
    };
    for s in &batch.signals {
        let payload = s.encode_to_vec();
        let hash: [u8; 32] = Sha256::digest(&payload).into();
        run(
            "INSERT INTO signal_ids (tenant_id, event_id, content_hash) VALUES ($1, $2, $3)",
            vec![
                TENANT.into(),
                s.event_id.clone().into(),
                hash.to_vec().into(),
            ],
        )
        .await?;
        run(
            "INSERT INTO signals (tenant_id, account_id, occurred_at, event_id, kind, mode, payload, ingested_at) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $7)",
            vec![
                TENANT.into(),
                s.account_id.clone().into(),
                s.occurred_at.as_ref().map_or(0, retain_proto::convert::micros).into(),
                s.event_id.clone().into(),
                s.body.as_ref().map_or(0, |b| retain_proto::convert::kind_of(b).code()).into(),
                payload.into(),
                now.into(),
            ],
        )
        .await?;
    }
    for (account, user, at) in &batch.new_users {
        run(
            "INSERT INTO users (tenant_id, account_id, user_id, first_seen_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $4)",
            vec![
                TENANT.into(),
                account.clone().into(),
                user.clone().into(),
                (*at).into(),
            ],
        )
        .await?;
    }
    for account in &batch.new_accounts {
        run(
            "INSERT INTO accounts (tenant_id, account_id, contact_emails, created_at, updated_at) \
             VALUES ($1, $2, '', $3, $3)",
            vec![TENANT.into(), account.clone().into(), now.into()],
        )
        .await?;
    }
    for m in &batch.messages {
        let coalesce_key = m.coalesce.then(|| format!("{}#{}", m.key, batch.number));
        run(
            "INSERT INTO bus_messages (topic, consumer_group, msg_key, coalesce_key, payload, headers, \
             state, attempts, available_at, coalesced, created_at) \
             VALUES ($1, $2, $3, $4, $5, '', 0, 0, $6, 1, $6)",
            vec![
                retain_ingestion::topics::SIGNALS_RECORDED.name().into(),
                m.group.into(),
                m.key.clone().into(),
                coalesce_key.into(),
                m.payload.clone().into(),
                now.into(),
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Removes what the baseline wrote, so the service starts from the same
/// tables it would (the baseline's tenant is its own, the bus rows are not).
pub async fn clean(db: &DatabaseConnection) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    for table in ["signal_ids", "signals", "users", "accounts"] {
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            format!("DELETE FROM {table} WHERE tenant_id = $1"),
            [TENANT.into()],
        ))
        .await?;
    }
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        "DELETE FROM bus_messages WHERE msg_key LIKE $1",
        [format!("{TENANT}/%").into()],
    ))
    .await?;
    if backend == DatabaseBackend::Postgres {
        db.execute_unprepared("VACUUM ANALYZE").await?;
    }
    Ok(())
}

/// PostgreSQL's binary `COPY` format: a signature and two empty header
/// words, then per row its field count and each field as a length and
/// the value in network byte order, then -1.
struct BinaryCopy {
    data: Vec<u8>,
    rows: usize,
}

impl BinaryCopy {
    fn new() -> Self {
        let mut data = b"PGCOPY\n\xff\r\n\0".to_vec();
        data.extend(0i32.to_be_bytes()); // flags
        data.extend(0i32.to_be_bytes()); // header extension length
        Self { data, rows: 0 }
    }

    fn row(&mut self, fields: i16) -> &mut Self {
        self.rows += 1;
        self.data.extend(fields.to_be_bytes());
        self
    }

    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.data.extend((v.len() as i32).to_be_bytes());
        self.data.extend(v);
        self
    }

    fn text(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    fn opt_text(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.text(v),
            None => {
                self.data.extend((-1i32).to_be_bytes());
                self
            }
        }
    }

    fn i16(&mut self, v: i16) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    fn i32(&mut self, v: i32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    fn i64(&mut self, v: i64) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    fn finish(mut self) -> Vec<u8> {
        self.data.extend((-1i16).to_be_bytes());
        self.data
    }
}
