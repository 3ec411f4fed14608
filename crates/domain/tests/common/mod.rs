//! Builders shared by the domain tests.
#![allow(dead_code)]

use retain_domain::kpi::revenue::{ChurnReason, MrrChange};
use retain_domain::{Currency, Money, Timestamp};

pub fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

pub fn change(account: &str, at: Timestamp, mrr: i64) -> MrrChange {
    MrrChange {
        account: account.into(),
        at,
        seq: format!("{account}-{}", at.0),
        mrr: Money::new(mrr, eur()),
        churn_reason: (mrr == 0).then_some(ChurnReason::Other),
    }
}

pub fn churn(account: &str, at: Timestamp, reason: ChurnReason) -> MrrChange {
    MrrChange {
        churn_reason: Some(reason),
        ..change(account, at, 0)
    }
}
