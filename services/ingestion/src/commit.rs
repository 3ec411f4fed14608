//! The write transaction: one or more calls' valid signals, their
//! accounts, users and `signals.recorded` messages, committed together
//! before any call is answered. This module owns the transaction (begin,
//! the steps in order, commit or rollback) and decides, once, what became
//! of every signal; the statements themselves are in [`crate::sql`].

use std::collections::HashMap;

use retain_runtime::error::{Error, FieldViolation};
use sea_orm::{DatabaseConnection, TransactionTrait};

use crate::intake::Prepared;
use crate::recent::Recent;
use crate::sql;

/// What became of one signal: the answer the caller gets for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stored now.
    Accepted,
    /// Stored before (or earlier in the same transaction) with the same
    /// content: nothing new, and safe.
    Duplicate,
    /// Not stored, with every reason.
    Rejected(Vec<FieldViolation>),
}

/// One call's valid signals, as the transaction sees them.
#[derive(Debug)]
pub struct Call<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// Valid signals, in request order.
    pub signals: &'a [Prepared],
}

/// Writes `calls` in one transaction, stamped `now` (µs), and returns one
/// verdict per signal of each call. With `all_or_nothing` (one call alone),
/// a conflict rolls the transaction back; the verdicts still say which
/// signals conflicted.
pub async fn commit(
    db: &DatabaseConnection,
    recent: &Recent,
    calls: &[Call<'_>],
    all_or_nothing: bool,
    now: i64,
) -> Result<Vec<Vec<Verdict>>, Error> {
    let mut verdicts: Vec<Vec<Verdict>> = calls
        .iter()
        .map(|c| vec![Verdict::Accepted; c.signals.len()])
        .collect();
    let tx = db.begin().await?;
    let mut after_commit = Vec::new();
    // The same order in every transaction, so two writers touching the same
    // rows lock them in the same order and cannot deadlock: one group per
    // tenant (whatever the calls' modes: grouping by mode too let a
    // transaction holding a BACKFILL and a LIVE call lock one tenant's
    // accounts in two sorted runs, against another's one run), each
    // statement's rows sorted by key.
    for (tenant, members) in by_tenant(calls) {
        // The first occurrence of an event id in this transaction claims
        // it; every occurrence is then judged against what was stored.
        let (unique, occurrences) = first_occurrences(calls, &members);
        let stored = sql::claim_ids(&tx, tenant, &unique).await?;
        let mut conflict = false;
        for o in occurrences {
            let signal = &calls[o.call].signals[o.position];
            let verdict = judge(signal, o.first, unique[o.unique], &stored[o.unique]);
            conflict |= matches!(verdict, Verdict::Rejected(_));
            verdicts[o.call][o.position] = verdict;
        }
        if all_or_nothing && conflict {
            tx.rollback().await?;
            return Ok(verdicts);
        }
        let accepted: Vec<&Prepared> = unique
            .iter()
            .zip(&stored)
            .filter(|(_, s)| s.is_none())
            .map(|(p, _)| *p)
            .collect();
        if accepted.is_empty() {
            continue;
        }
        let create = recent.accounts_to_create(tenant, &sql::touched_accounts(&accepted));
        let users = recent.users_to_write(tenant, sql::user_sightings(&accepted));
        sql::insert_signals(&tx, tenant, &accepted, now).await?;
        // Row locks from here on, least contended first: a row another
        // replica's transaction holds is waited for as late as possible.
        sql::upsert_users(&tx, tenant, &users).await?;
        sql::upsert_accounts(&tx, tenant, &create, &accepted, now).await?;
        crate::topics::SIGNALS_RECORDED
            .publish(&tx, &sql::signals_recorded(tenant, &accepted))
            .await
            .map_err(Error::from)?;
        after_commit.push((tenant, create, users));
    }
    tx.commit().await?;
    for (tenant, create, users) in after_commit {
        recent.committed(tenant, &create, &users);
    }
    Ok(verdicts)
}

/// The one place duplicate versus conflict is decided. `first` says
/// whether `signal` is the occurrence that claimed its event id in this
/// transaction (`claimer`); `stored` is the hash stored before it, if the
/// id was not new.
fn judge(signal: &Prepared, first: bool, claimer: &Prepared, stored: &Option<Vec<u8>>) -> Verdict {
    let recorded: &[u8] = match stored {
        None if first => return Verdict::Accepted,
        None => &claimer.hash,
        Some(hash) => hash,
    };
    if recorded == signal.hash {
        Verdict::Duplicate
    } else {
        Verdict::Rejected(vec![FieldViolation::new(
            format!("signals[{}].event_id", signal.index),
            format!(
                "{} was already recorded with different content; an event id names one event forever",
                retain_domain::validation::quote(&signal.wire.event_id)
            ),
        )])
    }
}

/// Calls grouped by tenant, in tenant order.
fn by_tenant<'a>(calls: &[Call<'a>]) -> Vec<(&'a str, Vec<usize>)> {
    let mut groups: std::collections::BTreeMap<&str, Vec<usize>> =
        std::collections::BTreeMap::new();
    for (i, c) in calls.iter().enumerate() {
        groups.entry(c.tenant).or_default().push(i);
    }
    groups.into_iter().collect()
}

/// Where one signal of the transaction sits, and the first occurrence of
/// its event id.
struct Occurrence {
    call: usize,
    position: usize,
    unique: usize,
    first: bool,
}

/// The distinct signals (first occurrence of each event id, in order) of
/// `members`, and every signal's occurrence.
fn first_occurrences<'a>(
    calls: &[Call<'a>],
    members: &[usize],
) -> (Vec<&'a Prepared>, Vec<Occurrence>) {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut unique: Vec<&Prepared> = Vec::new();
    let mut occurrences = Vec::new();
    for &call in members {
        for (position, p) in calls[call].signals.iter().enumerate() {
            let (u, first) = match index.get(p.wire.event_id.as_str()) {
                Some(&u) => (u, false),
                None => {
                    index.insert(&p.wire.event_id, unique.len());
                    unique.push(p);
                    (unique.len() - 1, true)
                }
            };
            occurrences.push(Occurrence {
                call,
                position,
                unique: u,
                first,
            });
        }
    }
    (unique, occurrences)
}
