//! `PreviewScoringModel`: what a draft model would do to current scores —
//! the band distribution before and after, and the accounts it would move —
//! without storing anything.
//!
//! Each account's current score holds the snapshot it scored, so the draft
//! scores exactly those inputs, with the current score as the previous one
//! (its band and the draft's hysteresis decide the draft band, as a
//! rescore would).

use std::collections::BTreeMap;

use retain_domain::health::{self, Band};
use retain_proto::{health as wire, v1};
use retain_runtime::error::Error;
use sea_orm::DatabaseConnection;

use crate::score::previous_of;
use crate::sql;

/// Most accounts a preview names.
pub const MAX_NAMED: usize = 1_000;
/// Accounts read at once when previewing a whole segment.
const PAGE: u64 = 1_000;

/// Previews `draft` over `account_ids`, or over every scored account of
/// the draft's segment when there are none.
pub async fn preview(
    db: &DatabaseConnection,
    tenant: &str,
    draft: Option<&v1::ScoringModel>,
    account_ids: &[String],
) -> Result<v1::PreviewScoringModelResponse, Error> {
    let Some(draft) = draft else {
        return Err(Error::invalid("model", "is required"));
    };
    let mut violations = wire::model_from_request(draft).err().unwrap_or_default();
    let listed = retain_domain::validation::check_len(
        &mut violations,
        "account_ids",
        account_ids.len(),
        MAX_NAMED,
    );
    for (i, id) in account_ids.iter().enumerate().take_while(|_| listed) {
        if let Err(e) = retain_domain::AccountId::parse(id.clone()) {
            violations.push(format!("account_ids[{i}]"), e.to_string());
        }
    }
    let mut model = violations
        .into_result(())
        .and_then(|()| wire::model_from_request(draft))?;
    // A draft has no version yet: its scores say so with -1.
    model.version = -1;

    let mut out = v1::PreviewScoringModelResponse::default();
    let mut before: BTreeMap<Band, i64> = BTreeMap::new();
    let mut after: BTreeMap<Band, i64> = BTreeMap::new();
    let mut tally =
        |account: &str, current: &v1::HealthScore, out: &mut v1::PreviewScoringModelResponse| {
            let inputs = current.inputs.as_ref()?;
            let scored = health::score(
                &model,
                &wire::health_snapshot(inputs),
                Some(&previous_of(current)),
            )?;
            let now = wire::band_from_proto(current.band)?;
            *before.entry(now).or_default() += 1;
            *after.entry(scored.band).or_default() += 1;
            if scored.band != now {
                out.changed_total += 1;
                if out.changed_accounts.len() < MAX_NAMED {
                    out.changed_accounts.push(account.to_owned());
                }
            }
            Some(wire::score_to_proto(&model, &scored, inputs))
        };
    if account_ids.is_empty() {
        let mut cursor = String::new();
        loop {
            let page = sql::current_page(db, tenant, &draft.segment, (&cursor, None), PAGE).await?;
            for (account, current) in &page {
                tally(account, current, &mut out);
            }
            match page.last() {
                Some((last, _)) if page.len() as u64 == PAGE => cursor.clone_from(last),
                _ => break,
            }
        }
    } else {
        for (i, account) in account_ids.iter().enumerate() {
            let current = sql::current(db, tenant, account)
                .await?
                .map(|c| c.score)
                .ok_or_else(|| {
                    Error::invalid(format!("account_ids[{i}]"), "has no health score yet")
                })?;
            if let Some(candidate) = tally(account, &current, &mut out) {
                out.candidate.push(candidate);
                out.current.push(current);
            }
        }
    }
    let counts = |m: BTreeMap<Band, i64>| {
        m.into_iter()
            .map(|(band, accounts)| v1::BandCount {
                band: wire::band_to_proto(band) as i32,
                accounts,
            })
            .collect()
    };
    out.bands_before = counts(before);
    out.bands_after = counts(after);
    Ok(out)
}
