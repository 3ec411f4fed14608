//! Seeded synthetic customer data for Retain: a whole tenant's history as
//! the wire signals a client sends (`retain_proto::v1::Signal`),
//! deterministic for a seed, every signal valid for the ingestion service.
//!
//! The metrics tests, the metrics benchmark's data loader and the
//! `retain demo` command share it, so they all see the same kind of
//! portfolio: hundreds of accounts in segments (`Agencies`, `Enterprise`,
//! `SMB`, `Mid-Market`), months of product use, support, surveys and
//! revenue.
//!
//! ```
//! use retain_datagen::{Config, generate};
//!
//! let data = generate(&Config { accounts: 20, ..Config::default() });
//! let delivery = data.in_delivery_order(7); // shuffled, late signals last
//! for batch in delivery.batches(5_000) {
//!     let request = batch.request(); // LIVE or BACKFILL, ≤ 5,000 signals
//!     assert!(!request.signals.is_empty());
//! }
//! ```
//!
//! # What is generated
//!
//! Every account ([`AccountInfo`]) has a segment, a plan with its price, a
//! CSM, contacts, seats, 2–7 users, and a hidden *health propensity* that
//! drives how often its users come back, how they answer surveys, how many
//! tickets they open and how likely the account is to churn. An account is
//! an existing customer (paying from the first days of the history), a
//! newcomer (joins later, onboarding), or a trial (converted within the
//! 14-day window — now and then after it — or expired). From that:
//!
//! - **account upserts**: the full record when it joins (segment, plan,
//!   CSM, contacts, seats, lifecycle, renewal date, acquisition cost), then
//!   lifecycle changes (onboarding → active, renewal, churned, reactivated),
//!   seat changes on expansion, CSM reassignments;
//! - **sessions** and **product actions** (`export_report`,
//!   `create_dashboard`, `invite_user`, `api_call`, `share_link`) on the
//!   days the account is trialing or paying, fewer at weekends;
//! - **support tickets** with topics: opened, resolved (contacts until
//!   resolution ≥ 1, often exactly 1), some reopened and resolved again,
//!   some still open at `now`; CSAT and CES answers after resolution;
//! - **surveys** on every scale: NPS 0–10, CSAT 1–5 and 1–10, CES 1–5 and
//!   1–7 (each account uses one CSAT and one CES scale, alternating);
//! - **subscription changes** carrying the whole new amount: new,
//!   expansion, add-on purchases and cancellations (`add_on`), contraction,
//!   churn with every churn reason, reactivation; annual plans (amount =
//!   12 × MRR, so MRR stays integral);
//! - **billing** (current, overdue, payment_failed, collections),
//!   **renewals** (due 30 days before the renewal date, then renewed or
//!   not renewed with `contract_end`; not renewed ends in a churn),
//!   **trials** (started, converted, expired), **onboarding milestones**
//!   from the configured checklist (achieved, failed attempts, some
//!   accounts stuck), **purchases**;
//! - **portfolio costs** (account id `*`): customer-success and
//!   acquisition spend per calendar month, and a quarterly CS tooling cost.
//!
//! The first 13 accounts follow fixed scripts so that, whatever the seed,
//! a config of at least 13 accounts and about 45 days holds every movement
//! kind, every churn reason, several changes in one month for one account
//! (expansion, add-on, add-on cancellation, contraction), a churn and a
//! reactivation in the same month, an annual renewal, every billing state,
//! both trial outcomes and a stuck onboarding. The scripted changes fall
//! in the last complete calendar month before `now` when the history
//! covers one.
//!
//! # Validity
//!
//! Every signal is accepted by the ingestion service's validation
//! (docs/INGESTION.md, "Limits a client can rely on") for a tenant whose
//! base currency is [`Config::currency`] and whose onboarding checklist is
//! [`Config::checklist`]: unique event ids, account ids of letters, digits
//! and `-`, texts and lists within their bounds, money in minor units of
//! the tenant currency, every timestamp in `[now − history_days, now)` —
//! never in the future of the configured `now`, which the generator never
//! reads from the system clock. Send signals older than 30 days as
//! `BACKFILL`; [`Batch::mode`] does.
//!
//! # Determinism
//!
//! The output is a function of the [`Config`] alone: integer SplitMix64
//! streams ([`rng`]), only basic IEEE floating-point steps (exact on every
//! platform), no hash-map iteration, no clock. Each account draws from its
//! own stream of the seed, so growing `accounts` adds accounts without
//! changing the existing ones, and [`generate_account`] makes one account
//! on its own — a bulk loader can stream a 100,000-account dataset account
//! by account (the default density is about 93 signals per account over
//! 100 days).
//!
//! # Size
//!
//! The default config (200 accounts, 100 days) gives about 18,600
//! signals: ~9,000 sessions, ~5,500 actions, ~1,000 survey answers, ~930
//! milestones, ~550 ticket changes, ~510 account upserts, ~470
//! subscription changes, ~270 billing changes, ~120 purchases, ~80 trial
//! and ~65 renewal events, 10 costs; about 50 accounts per segment. A
//! real ingestion service takes all of it in about 2 s on SQLite and 1 s
//! on PostgreSQL in a debug build (`tests/ingest.rs`).

pub mod calendar;
mod delivery;
mod generate;
pub mod rng;

use std::collections::BTreeMap;

use retain_proto::v1;

pub use delivery::{
    Batch, Delivery, LATE_FRACTION, LIVE_MARGIN_SECONDS, MAX_BATCH_SIGNALS, MAX_LIVE_AGE_DAYS,
    batches, mode_for,
};
pub use generate::{generate, generate_account, generate_costs};

/// 2025-06-15T12:00:00Z, the default reference "now".
pub const DEFAULT_NOW: i64 = 1_749_988_800;

/// The account id of portfolio-level signals (costs).
pub const PORTFOLIO: &str = "*";

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The seed: the same config gives the same signals.
    pub seed: u64,
    /// How many accounts.
    pub accounts: usize,
    /// Days of history before `now`: every signal lies in
    /// `[now − history_days days, now)`.
    pub history_days: u32,
    /// The reference "now", seconds since the epoch (UTC). Never read from
    /// the system clock here: a test passes its own.
    pub now: i64,
    /// The tenant's base currency (ISO-4217), used by every money amount.
    pub currency: String,
    /// The tenant's onboarding checklist: milestone keys, in order.
    pub checklist: Vec<String>,
    /// Segments to spread the accounts over (the first accounts take them
    /// in order, so each one is used when there are enough accounts).
    pub segments: Vec<String>,
    /// Prepended to every account id and event id, so several datasets
    /// can share a tenant (letters, digits, `-`, `_`, `.`, `:`, `@`, `/`).
    pub id_prefix: String,
}

impl Default for Config {
    /// 200 accounts over 100 days before 2025-06-15T12:00:00Z, in EUR, with
    /// the default onboarding checklist of the runtime's tenant settings.
    fn default() -> Self {
        Self {
            seed: 1,
            accounts: 200,
            history_days: 100,
            now: DEFAULT_NOW,
            currency: "EUR".into(),
            checklist: [
                "account_created",
                "data_source_connected",
                "teammate_invited",
                "first_report_created",
                "integration_enabled",
            ]
            .map(String::from)
            .to_vec(),
            segments: ["Agencies", "Enterprise", "SMB", "Mid-Market"]
                .map(String::from)
                .to_vec(),
            id_prefix: String::new(),
        }
    }
}

impl Config {
    /// The first instant of the history: `now − history_days` days.
    pub fn start(&self) -> i64 {
        self.now - i64::from(self.history_days) * calendar::DAY
    }
}

/// How an account entered the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A customer paying from the first days of the history.
    Existing,
    /// Joined later, paying from the start, onboarding.
    Newcomer,
    /// Started a trial and converted (usually within 14 days).
    TrialConverted,
    /// Started a trial that expired; never paid.
    TrialExpired,
}

/// One generated account, as first upserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// Account id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Segment.
    pub segment: String,
    /// Plan key.
    pub plan: String,
    /// The CSM's email when the account joined (it may be reassigned).
    pub csm_owner_email: String,
    /// Seats when the account joined.
    pub seats: i32,
    /// Its users' ids.
    pub users: Vec<String>,
    /// How it entered the history.
    pub entry: Entry,
    /// Whether it pays annually.
    pub annual: bool,
    /// Its first signal, seconds since the epoch.
    pub joined_at: i64,
}

/// A generated tenant history.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// What it was generated from.
    pub config: Config,
    /// Every signal, ordered by `occurred_at`, then event id.
    pub signals: Vec<v1::Signal>,
    /// Every account, in id order.
    pub accounts: Vec<AccountInfo>,
}

impl Dataset {
    /// Account ids by segment (each list in id order).
    pub fn accounts_by_segment(&self) -> BTreeMap<String, Vec<String>> {
        let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in &self.accounts {
            by.entry(a.segment.clone()).or_default().push(a.id.clone());
        }
        by
    }

    /// Account ids by plan (each list in id order).
    pub fn accounts_by_plan(&self) -> BTreeMap<String, Vec<String>> {
        let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in &self.accounts {
            by.entry(a.plan.clone()).or_default().push(a.id.clone());
        }
        by
    }

    /// The account with id `id`.
    pub fn account(&self, id: &str) -> Option<&AccountInfo> {
        self.accounts
            .binary_search_by(|a| a.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.accounts[i])
    }

    /// The signals of one account (portfolio costs: [`PORTFOLIO`]), in
    /// `occurred_at` order.
    pub fn signals_of<'a>(&'a self, account_id: &'a str) -> impl Iterator<Item = &'a v1::Signal> {
        self.signals
            .iter()
            .filter(move |s| s.account_id == account_id)
    }

    /// The signals in the order a client might deliver them: shuffled
    /// with `seed`, and a [`LATE_FRACTION`] of the signals of past calendar
    /// months held back and delivered last (late signals for past months).
    pub fn in_delivery_order(&self, seed: u64) -> Delivery {
        delivery::in_delivery_order(self, seed)
    }

    /// Counts of signals by kind (`"account"`, `"session"`, … as
    /// [`kind_name`] names them).
    pub fn counts_by_kind(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for s in &self.signals {
            *counts.entry(kind_name(s)).or_insert(0) += 1;
        }
        counts
    }
}

/// The kind of a signal, as the `body` field names it (`"account"`,
/// `"session"`, `"action"`, `"ticket"`, `"survey"`, `"subscription"`,
/// `"billing"`, `"renewal"`, `"trial"`, `"milestone"`, `"purchase"`,
/// `"cost"`; `"none"` without a body).
pub fn kind_name(s: &v1::Signal) -> &'static str {
    use v1::signal::Body;
    match &s.body {
        None => "none",
        Some(Body::Account(_)) => "account",
        Some(Body::Session(_)) => "session",
        Some(Body::Action(_)) => "action",
        Some(Body::Ticket(_)) => "ticket",
        Some(Body::Survey(_)) => "survey",
        Some(Body::Subscription(_)) => "subscription",
        Some(Body::Billing(_)) => "billing",
        Some(Body::Renewal(_)) => "renewal",
        Some(Body::Trial(_)) => "trial",
        Some(Body::Milestone(_)) => "milestone",
        Some(Body::Purchase(_)) => "purchase",
        Some(Body::Cost(_)) => "cost",
    }
}
