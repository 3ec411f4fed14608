//! Email and in-app records (`notification_messages`): listing them, and
//! the delivery worker's reads and outcomes.

use prost::Message;
use retain_proto::v1;
use sea_orm::{ConnectionTrait, DbErr, Statement, Value};

/// What ListNotifications keeps.
#[derive(Debug, Default)]
pub struct MessageFilter<'a> {
    /// Only this account.
    pub account: Option<&'a str>,
    /// Only this channel (number).
    pub channel: Option<i16>,
    /// Only these states (numbers; all when empty).
    pub states: Vec<i16>,
}

fn message_where(filter: &MessageFilter<'_>, with_states: bool, values: &mut Vec<Value>) -> String {
    let mut sql = String::from(" WHERE tenant_id = $1");
    if let Some(a) = filter.account {
        values.push(a.into());
        sql.push_str(&format!(" AND account_id = ${}", values.len()));
    }
    if let Some(c) = filter.channel {
        values.push(Value::SmallInt(Some(c)));
        sql.push_str(&format!(" AND channel = ${}", values.len()));
    }
    if with_states && !filter.states.is_empty() {
        let list: Vec<String> = filter
            .states
            .iter()
            .map(|s| {
                values.push(Value::SmallInt(Some(*s)));
                format!("${}", values.len())
            })
            .collect();
        sql.push_str(&format!(" AND state IN ({})", list.join(", ")));
    }
    sql
}

/// A page of messages, newest first, after the position (created_at,
/// notification id, channel) of the previous page's last one.
pub async fn messages<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    filter: &MessageFilter<'_>,
    after: Option<(i64, String, i64)>,
    limit: u64,
) -> Result<Vec<(i64, v1::Notification)>, DbErr> {
    let mut values: Vec<Value> = vec![tenant.into()];
    let mut sql = format!(
        "SELECT created_at, record FROM notification_messages{}",
        message_where(filter, true, &mut values)
    );
    if let Some((created, id, channel)) = after {
        values.extend([created.into(), id.into(), channel.into()]);
        let n = values.len();
        sql.push_str(&format!(
            " AND (created_at, notification_id, channel) < (${}, ${}, ${n})",
            n - 2,
            n - 1
        ));
    }
    values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
    sql.push_str(&format!(
        " ORDER BY created_at DESC, notification_id DESC, channel DESC LIMIT ${}",
        values.len()
    ));
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let bytes: Vec<u8> = r.try_get_by_index(1)?;
            let n = v1::Notification::decode(bytes.as_slice()).map_err(|e| {
                DbErr::Custom(format!("a stored notification does not decode: {e}"))
            })?;
            Ok((r.try_get_by_index(0)?, n))
        })
        .collect()
}

/// Messages of the account and channel asked for, by state.
pub async fn message_counts<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    filter: &MessageFilter<'_>,
) -> Result<Vec<(i16, i64)>, DbErr> {
    let mut values: Vec<Value> = vec![tenant.into()];
    let sql = format!(
        "SELECT state, COUNT(*) FROM notification_messages{} GROUP BY state ORDER BY state",
        message_where(filter, false, &mut values)
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .collect()
}

/// The record of a pending email, if it is still pending (not sent, dead
/// or unknown).
pub async fn pending_email<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    notification_id: &str,
) -> Result<Option<v1::Notification>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT record FROM notification_messages WHERE tenant_id = $1 \
             AND notification_id = $2 AND channel = $3 AND state = $4",
            [
                tenant.into(),
                notification_id.into(),
                Value::SmallInt(Some(v1::NotificationChannel::Email as i16)),
                Value::SmallInt(Some(v1::DeliveryState::Pending as i16)),
            ],
        ))
        .await?;
    row.map(|r| {
        let bytes: Vec<u8> = r.try_get_by_index(0)?;
        v1::Notification::decode(bytes.as_slice())
            .map_err(|e| DbErr::Custom(format!("a stored notification does not decode: {e}")))
    })
    .transpose()
}

/// Records a delivery attempt's outcome on a still pending email (`record`
/// carries the new state, attempts and error); `false` when it was no
/// longer pending (another replica recorded an outcome first).
pub async fn record_email<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    record: &v1::Notification,
) -> Result<bool, DbErr> {
    retain_store::exec(
        db,
        "UPDATE notification_messages SET state = $1, record = $2 \
         WHERE tenant_id = $3 AND notification_id = $4 AND channel = $5 AND state = $6",
        [
            Value::SmallInt(Some(i16::try_from(record.state).unwrap_or(0))),
            record.encode_to_vec().into(),
            tenant.into(),
            record.notification_id.clone().into(),
            Value::SmallInt(Some(v1::NotificationChannel::Email as i16)),
            Value::SmallInt(Some(v1::DeliveryState::Pending as i16)),
        ],
    )
    .await
    .map(|rows| rows == 1)
}

/// Pending emails without a bus message (routed before deliveries were
/// work on the bus): (tenant, notification id).
pub async fn unqueued_emails<C: ConnectionTrait>(db: &C) -> Result<Vec<(String, String)>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT tenant_id, notification_id FROM notification_messages \
             WHERE channel = $1 AND state = $2 AND NOT queued ORDER BY created_at",
            [
                Value::SmallInt(Some(v1::NotificationChannel::Email as i16)),
                Value::SmallInt(Some(v1::DeliveryState::Pending as i16)),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .collect()
}

/// Marks every pending email as having its bus message.
pub async fn mark_emails_queued<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    retain_store::exec(
        db,
        "UPDATE notification_messages SET queued = TRUE WHERE state = $1 AND NOT queued",
        [Value::SmallInt(Some(v1::DeliveryState::Pending as i16))],
    )
    .await
}

/// Stores email and in-app message records (nothing for a record that is
/// there already).
pub async fn insert_messages<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    messages: &[v1::Notification],
    now: i64,
) -> Result<(), DbErr> {
    retain_store::insert_rows(
        db,
        "INSERT INTO notification_messages (tenant_id, notification_id, channel, account_id, \
         state, record, created_at, queued) VALUES ",
        " ON CONFLICT (tenant_id, notification_id, channel) DO NOTHING",
        messages,
        |n| {
            vec![
                tenant.into(),
                n.notification_id.clone().into(),
                Value::SmallInt(Some(i16::try_from(n.channel).unwrap_or(0))),
                n.account_id.clone().into(),
                Value::SmallInt(Some(i16::try_from(n.state).unwrap_or(0))),
                n.encode_to_vec().into(),
                now.into(),
                true.into(),
            ]
        },
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn a_pending_email(id: &str) -> v1::Notification {
        v1::Notification {
            notification_id: id.into(),
            account_id: "acme-1".into(),
            channel: v1::NotificationChannel::Email as i32,
            state: v1::DeliveryState::Pending as i32,
            ..Default::default()
        }
    }

    retain_testkit::storage_test!(
        async fn an_outcome_is_recorded_once_on_a_pending_email(db) {
            let db = &db.conn;
            insert_messages(db, "t1", &[a_pending_email("n-1")], 0).await.unwrap();
            let mut sent = pending_email_record(db, "n-1").await;
            sent.state = v1::DeliveryState::Sent as i32;
            assert!(record_email(db, "t1", &sent).await.unwrap());
            assert!(super::pending_email(db, "t1", "n-1").await.unwrap().is_none());
            // A late worker cannot turn the sent email back into a retry.
            let mut retry = sent.clone();
            retry.state = v1::DeliveryState::Pending as i32;
            retry.last_error = "late".into();
            assert!(!record_email(db, "t1", &retry).await.unwrap());
            assert!(super::pending_email(db, "t1", "n-1").await.unwrap().is_none());
        }
    );

    async fn pending_email_record(db: &sea_orm::DatabaseConnection, id: &str) -> v1::Notification {
        super::pending_email(db, "t1", id).await.unwrap().unwrap()
    }
}
