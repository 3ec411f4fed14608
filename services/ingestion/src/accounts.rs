//! Reading accounts: `GetAccount` and `ListAccounts`.

use retain_domain::signal::Lifecycle;
use retain_domain::{Account, Currency, Money, Timestamp};
use retain_proto::{convert, v1};
use retain_runtime::error::Error;
use retain_runtime::paging::Filters;
use retain_store::entity::account;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

/// Default and largest page sizes of `ListAccounts`.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest page size of `ListAccounts`.
pub const MAX_PAGE_SIZE: usize = 1_000;

/// The account a row holds. Rows are written from validated signals, so a
/// value that no longer parses (a currency code) is dropped, not invented.
fn from_row(m: account::Model) -> Account {
    let acquisition_cost = match (m.acquisition_cost_minor, m.acquisition_currency) {
        (Some(minor), Some(currency)) => Currency::parse(&currency)
            .ok()
            .map(|c| Money::new(minor, c)),
        _ => None,
    };
    Account {
        account_id: m.account_id,
        name: m.name,
        segment: m.segment,
        plan: m.plan,
        csm_owner_email: m.csm_owner_email,
        contact_emails: m
            .contact_emails
            .split('\n')
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
        seats: m.seats,
        lifecycle: m.lifecycle.and_then(Lifecycle::from_code),
        renewal_date: m.renewal_date.map(Timestamp::from_seconds),
        acquisition_cost,
        created_at: Timestamp::from_micros(m.created_at),
        updated_at: Timestamp::from_micros(m.updated_at),
    }
}

/// One account of `tenant`.
pub async fn get(
    db: &DatabaseConnection,
    tenant: &str,
    req: &v1::GetAccountRequest,
) -> Result<v1::Account, Error> {
    if let Err(e) = retain_domain::AccountId::parse(req.account_id.clone()) {
        return Err(Error::invalid("account_id", e.to_string()));
    }
    account::Entity::find_by_id((tenant.to_owned(), req.account_id.clone()))
        .one(db)
        .await?
        .map(|row| from_row(row).into())
        .ok_or_else(|| Error::NotFound(format!("account {:?}", req.account_id)))
}

/// The filters a page token is bound to ([`Filters`]): replayed with
/// others it would skip or repeat accounts silently.
fn filters(req: &v1::ListAccountsRequest) -> Filters {
    Filters::of([
        req.segment.clone(),
        req.csm_owner_email.clone(),
        req.lifecycle.to_string(),
    ])
}

/// The account a page starts after, from its token.
fn after_of(req: &v1::ListAccountsRequest) -> Result<Option<String>, Error> {
    let mut v = retain_domain::Violations::new();
    let cursor = filters(req).position(&mut v, "page_token", &req.page_token);
    v.into_result(()).map_err(Error::from)?;
    if cursor.is_empty() {
        return Ok(None);
    }
    // The cursor is compared with stored account ids: it must be one.
    retain_domain::AccountId::parse(cursor.clone())
        .map_err(|_| Error::invalid("page_token", "is not a token this service issued"))?;
    Ok(Some(cursor))
}

/// A page of `tenant`'s accounts in account-id order (keyset pagination:
/// stable while accounts are added).
pub async fn list(
    db: &DatabaseConnection,
    tenant: &str,
    req: &v1::ListAccountsRequest,
) -> Result<v1::ListAccountsResponse, Error> {
    let mut violations = Vec::new();
    if req.page_size < 0 {
        violations.push(retain_runtime::error::FieldViolation::new(
            "page_size",
            format!("{} must not be negative", req.page_size),
        ));
    } else if req.page_size as usize > MAX_PAGE_SIZE {
        violations.push(retain_runtime::error::FieldViolation::new(
            "page_size",
            format!("{} is over the limit of {MAX_PAGE_SIZE}", req.page_size),
        ));
    }
    // Filters are compared with stored text: they obey the same rules.
    {
        use retain_domain::validation::{MAX_EMAIL_LEN, MAX_LABEL_LEN, Text, check_text};
        let mut v = retain_domain::Violations::new();
        check_text(
            &mut v,
            "segment",
            &req.segment,
            Text::Line(MAX_LABEL_LEN),
            false,
        );
        let owner = &req.csm_owner_email;
        check_text(
            &mut v,
            "csm_owner_email",
            owner,
            Text::Line(MAX_EMAIL_LEN),
            false,
        );
        violations.extend(v.0);
    }
    let lifecycle = if req.lifecycle == 0 {
        None
    } else if let Some(l) = convert::lifecycle_from_proto(req.lifecycle) {
        Some(l)
    } else {
        violations.push(retain_runtime::error::FieldViolation::new(
            "lifecycle",
            format!("{} is not a lifecycle stage", req.lifecycle),
        ));
        None
    };
    let after = match after_of(req) {
        Ok(a) => a,
        Err(Error::InvalidArgument(v)) => {
            violations.extend(v);
            None
        }
        Err(e) => return Err(e),
    };
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    let size = if req.page_size == 0 {
        DEFAULT_PAGE_SIZE
    } else {
        req.page_size as usize
    };
    let mut cond = Condition::all().add(account::Column::TenantId.eq(tenant));
    if !req.segment.is_empty() {
        cond = cond.add(account::Column::Segment.eq(req.segment.clone()));
    }
    if !req.csm_owner_email.is_empty() {
        cond = cond.add(account::Column::CsmOwnerEmail.eq(req.csm_owner_email.clone()));
    }
    if let Some(l) = lifecycle {
        cond = cond.add(account::Column::Lifecycle.eq(l.code()));
    }
    if let Some(after) = after {
        cond = cond.add(account::Column::AccountId.gt(after));
    }
    let mut rows = account::Entity::find()
        .filter(cond)
        .order_by_asc(account::Column::AccountId)
        .limit(size as u64 + 1)
        .all(db)
        .await?;
    let more = rows.len() > size;
    rows.truncate(size);
    let next_page_token = match (more, rows.last()) {
        (true, Some(last)) => filters(req).token(&last.account_id),
        _ => String::new(),
    };
    Ok(v1::ListAccountsResponse {
        accounts: rows.into_iter().map(|row| from_row(row).into()).collect(),
        next_page_token,
    })
}
