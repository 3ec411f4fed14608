//! Signals (docs/INGESTION.md): as received ([`RawSignal`], every field as the wire
//! gave it, unknown enum values already refused by the wire conversion) and
//! as validated ([`Signal`], nothing optional that a valid signal must
//! have). [`validate`] is the only way from one to the other: it returns
//! the valid signal, or every violation with its field path
//! (`survey.score`) so a service can answer with all of them at once.
//!
//! Codes stored in the database are the domain's, documented here and
//! stable: [`SignalKind::code`], [`Lifecycle::code`], [`Mode::code`].
//!
//! This file holds what a signal is; `check.rs` how one is validated
//! (the rules, the limits, [`validate`] and [`validate_stored`]).

mod check;

pub use check::{
    MAX_ACTION_COUNT, MAX_AMOUNT_MINOR, MAX_COMMENT_LEN, MAX_EVENT_ID_LEN, MAX_LIST_LEN,
    MAX_SESSION_SECONDS, Rules, storable, validate, validate_stored,
};

use crate::health::BillingStatus;
use crate::kpi::experience::Scale;
use crate::kpi::revenue::ChurnReason;
use crate::money::{Currency, Money};
use crate::time::{DAY, Period, Timestamp};

/// Survey kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurveyKind {
    /// Net promoter score (0–10).
    Nps,
    /// Customer satisfaction (1–5 or 1–10).
    Csat,
    /// Customer effort (1–5 or 1–7).
    Ces,
}

/// Billing interval of a subscription amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingInterval {
    /// Monthly.
    Monthly,
    /// Annual (normalised to MRR by /12).
    Annual,
}

/// Ticket status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketStatus {
    /// Opened.
    Opened,
    /// Resolved.
    Resolved,
    /// Reopened.
    Reopened,
}

/// Renewal outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalOutcome {
    /// Due.
    Due,
    /// Renewed.
    Renewed,
    /// Not renewed.
    NotRenewed,
}

/// Trial events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialEvent {
    /// Started.
    Started,
    /// Converted.
    Converted,
    /// Expired.
    Expired,
}

/// Where an account is in its life with the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// On a trial.
    Trial,
    /// Paying, still onboarding.
    Onboarding,
    /// Paying and onboarded.
    Active,
    /// In its renewal window.
    Renewal,
    /// No longer a customer.
    Churned,
}

impl Lifecycle {
    /// The stored code (`accounts.lifecycle`): 1 trial, 2 onboarding,
    /// 3 active, 4 renewal, 5 churned. Stable.
    pub fn code(self) -> i16 {
        match self {
            Self::Trial => 1,
            Self::Onboarding => 2,
            Self::Active => 3,
            Self::Renewal => 4,
            Self::Churned => 5,
        }
    }

    /// The stage of a stored code.
    pub fn from_code(code: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == code)
    }

    /// Every stage, in lifecycle order.
    pub const ALL: [Self; 5] = [
        Self::Trial,
        Self::Onboarding,
        Self::Active,
        Self::Renewal,
        Self::Churned,
    ];

    /// The stage's key (`active`).
    pub fn key(self) -> &'static str {
        match self {
            Self::Trial => "trial",
            Self::Onboarding => "onboarding",
            Self::Active => "active",
            Self::Renewal => "renewal",
            Self::Churned => "churned",
        }
    }
}

/// Longest accepted name, segment or plan, in bytes.
pub const MAX_LABEL_LEN: usize = crate::validation::MAX_LABEL_LEN;

/// Spend kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostKind {
    /// Customer-success spend.
    CustomerSuccess,
    /// Acquisition spend.
    Acquisition,
}

/// What a signal says, as received.
#[derive(Debug, Clone, PartialEq)]
pub enum RawBody {
    /// Account record fields (unset fields keep their value).
    Account {
        /// Display name, if given.
        name: Option<String>,
        /// Segment (`Agencies`), if given.
        segment: Option<String>,
        /// Plan, if given.
        plan: Option<String>,
        /// Lifecycle stage, if given.
        lifecycle: Option<Lifecycle>,
        /// Next renewal date, if given.
        renewal_date: Option<Timestamp>,
        /// Seats, if given.
        seats: Option<i64>,
        /// CSM owner email, if given (empty clears).
        csm_owner_email: Option<String>,
        /// Contact emails.
        contact_emails: Vec<String>,
        /// Acquisition cost.
        acquisition_cost: Option<Money>,
    },
    /// A session.
    Session {
        /// User.
        user_id: String,
        /// Seconds.
        duration_seconds: i64,
    },
    /// A product action.
    Action {
        /// User.
        user_id: String,
        /// Action key.
        action_key: String,
        /// Count.
        count: i64,
    },
    /// A ticket change.
    Ticket {
        /// Help-desk id.
        ticket_id: String,
        /// Status (`None` = unspecified).
        status: Option<TicketStatus>,
        /// Topics.
        topics: Vec<String>,
        /// Contacts until resolution.
        contacts_until_resolution: i64,
    },
    /// A survey answer.
    Survey {
        /// Kind (`None` = unspecified).
        kind: Option<SurveyKind>,
        /// Scale (`None`: the kind's default).
        scale: Option<Scale>,
        /// Score.
        score: i64,
        /// User.
        user_id: String,
        /// The answer's free-text comment.
        comment: String,
    },
    /// A subscription change.
    Subscription {
        /// Amount per interval.
        amount: Money,
        /// Interval (`None` = unspecified).
        interval: Option<BillingInterval>,
        /// Reason, when the amount is 0.
        churn_reason: Option<ChurnReason>,
        /// Add-on change.
        add_on: bool,
        /// An opening balance (what the account already paid), not a
        /// change; see [`crate::kpi::revenue::OpeningBalance`].
        opening: bool,
    },
    /// Billing status (`None` = unspecified).
    Billing(Option<BillingStatus>),
    /// Renewal of one contract.
    Renewal {
        /// Outcome (`None` = unspecified).
        outcome: Option<RenewalOutcome>,
        /// End of the contract the renewal is about (`None` = not given).
        contract_end: Option<Timestamp>,
    },
    /// Trial (`None` = unspecified).
    Trial(Option<TrialEvent>),
    /// Onboarding milestone.
    Milestone {
        /// Key from the checklist.
        key: String,
        /// Achieved or failed.
        achieved: bool,
    },
    /// One-off purchase.
    Purchase(Money),
    /// Portfolio spend.
    Cost {
        /// Kind (`None` = unspecified).
        kind: Option<CostKind>,
        /// Amount.
        amount: Money,
        /// Period covered.
        period: Option<Period>,
    },
}

impl RawBody {
    /// The body's field name in the API (`survey`).
    pub fn field(&self) -> &'static str {
        match self {
            Self::Account { .. } => "account",
            Self::Session { .. } => "session",
            Self::Action { .. } => "action",
            Self::Ticket { .. } => "ticket",
            Self::Survey { .. } => "survey",
            Self::Subscription { .. } => "subscription",
            Self::Billing(_) => "billing",
            Self::Renewal { .. } => "renewal",
            Self::Trial(_) => "trial",
            Self::Milestone { .. } => "milestone",
            Self::Purchase(_) => "purchase",
            Self::Cost { .. } => "cost",
        }
    }
}

/// A signal as received.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSignal {
    /// Idempotency key.
    pub event_id: String,
    /// External account id.
    pub account_id: String,
    /// When it happened.
    pub occurred_at: Option<Timestamp>,
    /// What happened (`None` = no body).
    pub body: Option<RawBody>,
}

/// A valid signal: what [`validate`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// Idempotency key (1–128 bytes).
    pub event_id: String,
    /// External account id; [`PORTFOLIO`] for portfolio-wide costs.
    pub account_id: String,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// What happened.
    pub body: SignalBody,
}

impl Signal {
    /// The instant the signal counts at in period KPIs: a renewal counts
    /// in the period its contract ends in (`docs/KPIS.md`, "Renewal
    /// rate"), every other signal when it occurred.
    pub fn counts_at(&self) -> Timestamp {
        match &self.body {
            SignalBody::Renewal { contract_end, .. } => *contract_end,
            _ => self.occurred_at,
        }
    }
}

/// The account id of portfolio-wide signals (costs).
pub const PORTFOLIO: &str = "*";

/// Account record fields an upsert carries (unset fields keep their value).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccountUpsert {
    /// Display name, if given.
    pub name: Option<String>,
    /// Segment (`Agencies`), if given.
    pub segment: Option<String>,
    /// Plan, if given.
    pub plan: Option<String>,
    /// Lifecycle stage, if given.
    pub lifecycle: Option<Lifecycle>,
    /// Next renewal date, if given.
    pub renewal_date: Option<Timestamp>,
    /// Seats, if given.
    pub seats: Option<i64>,
    /// CSM owner email, if given (empty clears).
    pub csm_owner_email: Option<String>,
    /// Contact emails (empty keeps the stored ones).
    pub contact_emails: Vec<String>,
    /// Acquisition cost.
    pub acquisition_cost: Option<Money>,
}

/// What a valid signal says.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalBody {
    /// Account record fields.
    Account(AccountUpsert),
    /// A session of a user.
    Session {
        /// User.
        user_id: String,
        /// Seconds, 0 to a day.
        duration_seconds: i64,
    },
    /// A product action.
    Action {
        /// User.
        user_id: String,
        /// Action key.
        action_key: String,
        /// Count, at least 1.
        count: i64,
    },
    /// A ticket change.
    Ticket {
        /// Help-desk id.
        ticket_id: String,
        /// Status.
        status: TicketStatus,
        /// Topics.
        topics: Vec<String>,
        /// Contacts until resolution (at least 1 once resolved).
        contacts_until_resolution: i64,
    },
    /// A survey answer.
    Survey {
        /// Kind.
        kind: SurveyKind,
        /// Scale (the kind's default when the answer named none).
        scale: Scale,
        /// Score, within the scale.
        score: i64,
        /// User, possibly empty.
        user_id: String,
        /// The answer's comment, possibly empty (line breaks allowed).
        comment: String,
    },
    /// A subscription change.
    Subscription {
        /// Amount per interval, in the tenant's currency.
        amount: Money,
        /// Interval.
        interval: BillingInterval,
        /// Reason; always present when the amount is 0.
        churn_reason: Option<ChurnReason>,
        /// Add-on change.
        add_on: bool,
        /// An opening balance (what the account already paid), not a
        /// change; see [`crate::kpi::revenue::OpeningBalance`].
        opening: bool,
    },
    /// Billing status.
    Billing(BillingStatus),
    /// A renewal event of one contract: the contract is the account and
    /// its `contract_end`, whatever day the event was sent on
    /// (`docs/KPIS.md`, "Renewal rate").
    Renewal {
        /// Outcome.
        outcome: RenewalOutcome,
        /// End of the contract.
        contract_end: Timestamp,
    },
    /// Trial.
    Trial(TrialEvent),
    /// Onboarding milestone from the tenant's checklist.
    Milestone {
        /// Key from the checklist.
        key: String,
        /// Achieved or failed.
        achieved: bool,
    },
    /// One-off purchase, in the tenant's currency.
    Purchase(Money),
    /// Portfolio spend.
    Cost {
        /// Kind.
        kind: CostKind,
        /// Amount, in the tenant's currency.
        amount: Money,
        /// Period covered.
        period: Period,
    },
}

/// The kind of a signal, as stored (`signals.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalKind {
    /// Code 10.
    Account,
    /// Code 11.
    Session,
    /// Code 12.
    Action,
    /// Code 13.
    Ticket,
    /// Code 14.
    Survey,
    /// Code 15.
    Subscription,
    /// Code 16.
    Billing,
    /// Code 17.
    Renewal,
    /// Code 18.
    Trial,
    /// Code 19.
    Milestone,
    /// Code 20.
    Purchase,
    /// Code 21.
    Cost,
}

impl SignalKind {
    /// Every kind, by code.
    pub const ALL: [Self; 12] = [
        Self::Account,
        Self::Session,
        Self::Action,
        Self::Ticket,
        Self::Survey,
        Self::Subscription,
        Self::Billing,
        Self::Renewal,
        Self::Trial,
        Self::Milestone,
        Self::Purchase,
        Self::Cost,
    ];

    /// The stored code: 10 (account) to 21 (cost), in the order above.
    /// Stable: stored rows keep their meaning forever.
    pub fn code(self) -> i16 {
        10 + Self::ALL.iter().position(|k| *k == self).unwrap_or(0) as i16
    }

    /// The kind of a stored code.
    pub fn from_code(code: i16) -> Option<Self> {
        usize::try_from(code - 10)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }
}

impl SignalBody {
    /// The body's kind.
    pub fn kind(&self) -> SignalKind {
        match self {
            Self::Account(_) => SignalKind::Account,
            Self::Session { .. } => SignalKind::Session,
            Self::Action { .. } => SignalKind::Action,
            Self::Ticket { .. } => SignalKind::Ticket,
            Self::Survey { .. } => SignalKind::Survey,
            Self::Subscription { .. } => SignalKind::Subscription,
            Self::Billing(_) => SignalKind::Billing,
            Self::Renewal { .. } => SignalKind::Renewal,
            Self::Trial(_) => SignalKind::Trial,
            Self::Milestone { .. } => SignalKind::Milestone,
            Self::Purchase(_) => SignalKind::Purchase,
            Self::Cost { .. } => SignalKind::Cost,
        }
    }

    /// The user the signal names, if any (sessions, actions, surveys).
    pub fn user(&self) -> Option<&str> {
        let user = match self {
            Self::Session { user_id, .. }
            | Self::Action { user_id, .. }
            | Self::Survey { user_id, .. } => user_id,
            _ => return None,
        };
        (!user.is_empty()).then_some(user.as_str())
    }
}

/// Whether a signal is live or history, as stored (`signals.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Live data (code 1): downstream changes may notify people.
    Live,
    /// History (code 2): recomputed downstream, never notifies.
    Backfill,
}

impl Mode {
    /// The stored code. Stable.
    pub fn code(self) -> i16 {
        match self {
            Self::Live => 1,
            Self::Backfill => 2,
        }
    }
}

/// The scale an answer uses when none is given.
pub fn default_scale(kind: SurveyKind) -> Scale {
    match kind {
        SurveyKind::Nps => Scale::ZeroToTen,
        SurveyKind::Csat => Scale::OneToFive,
        SurveyKind::Ces => Scale::OneToSeven,
    }
}

/// The smallest positive annual amount (minor units) accepted: 6 / 12
/// rounds to 1; anything smaller would be MRR 0 (docs/INGESTION.md).
pub const MIN_ANNUAL_AMOUNT_MINOR: i64 = 6;

/// An amount per interval as MRR: annual amounts are divided by 12 and
/// rounded to the nearest minor unit (halves away from zero). [`validate`]
/// rejects positive annual amounts below [`MIN_ANNUAL_AMOUNT_MINOR`], whose
/// MRR would round to 0.
pub fn monthly_mrr(amount_minor: i64, interval: BillingInterval) -> i64 {
    match interval {
        BillingInterval::Monthly => amount_minor,
        BillingInterval::Annual => {
            let q = amount_minor / 12;
            let r = amount_minor % 12;
            if r.abs() * 2 >= 12 { q + r.signum() } else { q }
        }
    }
}
