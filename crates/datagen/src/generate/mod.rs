//! The generator: one independent random stream per account, scripted
//! stories for the first accounts, then portfolio costs. This file holds
//! an account's identity and the order its story is told in (`run`);
//! `revenue.rs` its money, `activity.rs` everything else it does,
//! `costs.rs` the portfolio's costs.

mod activity;
mod costs;
mod revenue;

pub use costs::generate_costs;

use prost_types::Timestamp;
use retain_proto::v1;
use v1::signal::Body;

use crate::calendar::{
    DAY, civil_from_days, days_from_civil, month_label, month_start, next_month_start, weekday,
};
use crate::rng::SplitMix64;
use crate::{AccountInfo, Config, Dataset, Entry, PORTFOLIO};

const HOUR: i64 = 3_600;

const ACTIONS: [&str; 5] = [
    "export_report",
    "create_dashboard",
    "invite_user",
    "api_call",
    "share_link",
];
const TOPICS: [&str; 7] = [
    "billing",
    "integration",
    "onboarding",
    "performance",
    "bug",
    "feature_request",
    "login",
];
const CSMS: [&str; 6] = [
    "alex.martin@retain.example",
    "sam.chen@retain.example",
    "priya.patel@retain.example",
    "jonas.weber@retain.example",
    "lea.dubois@retain.example",
    "maria.rossi@retain.example",
];
const ADJECTIVES: [&str; 12] = [
    "Bright", "Blue", "Quiet", "Rapid", "North", "Silver", "Golden", "Urban", "Clever", "Bold",
    "Lucky", "Green",
];
const NOUNS: [&str; 12] = [
    "Fox", "Harbor", "Peak", "River", "Pixel", "Maple", "Falcon", "Atlas", "Orbit", "Cedar",
    "Summit", "Beacon",
];
const COMMENTS: [&str; 6] = [
    "Love the dashboards.",
    "Exports are slow for big reports.",
    "Support answered quickly.",
    "Hard to set up the integration.",
    "Good value for the price.",
    "Missing a few features we need.",
];
const REASONS: [v1::ChurnReason; 5] = [
    v1::ChurnReason::Competitor,
    v1::ChurnReason::Freemium,
    v1::ChurnReason::BusinessClosed,
    v1::ChurnReason::Price,
    v1::ChurnReason::Other,
];

/// A fixed story for the first accounts, so every case is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Random,
    BusyMonth,
    ChurnReactivate,
    Churn(v1::ChurnReason),
    NotRenewed(v1::ChurnReason),
    AnnualRenewed,
    Overdue,
    FailedThenCurrent,
    Collections,
    Stuck,
}

fn scripted(i: usize) -> Option<(Entry, Script)> {
    use v1::ChurnReason as R;
    Some(match i {
        0 => (Entry::Existing, Script::BusyMonth),
        1 => (Entry::Existing, Script::ChurnReactivate),
        2 => (Entry::Existing, Script::Churn(R::Freemium)),
        3 => (Entry::Existing, Script::Churn(R::BusinessClosed)),
        4 => (Entry::Existing, Script::NotRenewed(R::Price)),
        5 => (Entry::Existing, Script::Churn(R::Other)),
        6 => (Entry::Existing, Script::AnnualRenewed),
        7 => (Entry::Newcomer, Script::Overdue),
        8 => (Entry::Existing, Script::FailedThenCurrent),
        9 => (Entry::Existing, Script::Collections),
        10 => (Entry::TrialConverted, Script::Random),
        11 => (Entry::TrialExpired, Script::Random),
        12 => (Entry::Newcomer, Script::Stuck),
        _ => return None,
    })
}

/// Generates the dataset `cfg` describes: [`generate_account`] for every
/// account and [`generate_costs`], in time order.
pub fn generate(cfg: &Config) -> Dataset {
    let mut signals = Vec::new();
    let mut accounts = Vec::with_capacity(cfg.accounts);
    for i in 0..cfg.accounts {
        let (info, evs) = generate_account(cfg, i);
        accounts.push(info);
        signals.extend(evs);
    }
    signals.extend(generate_costs(cfg));
    signals.sort_by(|a: &v1::Signal, b: &v1::Signal| {
        let ta = a.occurred_at.as_ref().map(|t| (t.seconds, t.nanos));
        let tb = b.occurred_at.as_ref().map(|t| (t.seconds, t.nanos));
        ta.cmp(&tb).then_with(|| a.event_id.cmp(&b.event_id))
    });
    accounts.sort_by(|a: &AccountInfo, b: &AccountInfo| a.id.cmp(&b.id));
    Dataset {
        config: cfg.clone(),
        signals,
        accounts,
    }
}

/// Account number `index` (0-based, below `cfg.accounts`) of the dataset
/// `cfg` describes, and its signals in time order — exactly what
/// [`generate`] holds for it. Accounts are independent, so a bulk loader
/// can produce a large dataset account by account without holding it all.
pub fn generate_account(cfg: &Config, index: usize) -> (AccountInfo, Vec<v1::Signal>) {
    Account::new(cfg, index).run()
}

fn ts(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

fn money(cfg: &Config, minor: i64) -> Option<v1::Money> {
    Some(v1::Money {
        amount_minor: minor,
        currency: cfg.currency.clone(),
    })
}

/// `x` rounded to a whole 100 minor units, at least 100.
fn round100(x: i64) -> i64 {
    ((x + 50) / 100 * 100).max(100)
}

/// What a segment's accounts look like.
struct Profile {
    /// Plan keys and their monthly price (minor units).
    plans: &'static [(&'static str, i64)],
    /// Seats, inclusive range.
    seats: (i64, i64),
    /// Acquisition cost in hundreds of minor units, inclusive range.
    acquisition: (i64, i64),
    /// Share of accounts on annual plans.
    annual: f64,
    /// Company name suffixes.
    suffixes: &'static [&'static str],
}

fn profile(segment: &str) -> Profile {
    match segment {
        "Enterprise" => Profile {
            plans: &[("enterprise", 250_000), ("enterprise-plus", 480_000)],
            seats: (50, 300),
            acquisition: (3_000, 12_000),
            annual: 0.5,
            suffixes: &["Group", "Holdings", "Corp"],
        },
        "Agencies" => Profile {
            plans: &[("agency-starter", 14_900), ("agency-pro", 39_900)],
            seats: (5, 40),
            acquisition: (400, 1_500),
            annual: 0.15,
            suffixes: &["Agency", "Studio", "Creative"],
        },
        "SMB" => Profile {
            plans: &[("starter", 4_900), ("growth", 9_900)],
            seats: (2, 12),
            acquisition: (100, 500),
            annual: 0.1,
            suffixes: &["Shop", "Co", "Bakery"],
        },
        _ => Profile {
            plans: &[("growth", 9_900), ("business", 29_900)],
            seats: (10, 60),
            acquisition: (800, 3_000),
            annual: 0.2,
            suffixes: &["Labs", "Systems", "Software"],
        },
    }
}

/// One subscription change: the whole new MRR from `t` on.
#[derive(Debug, Clone, Copy)]
struct Change {
    t: i64,
    mrr: i64,
    add_on: bool,
    reason: Option<v1::ChurnReason>,
}

struct Account<'a> {
    cfg: &'a Config,
    index: usize,
    rng: SplitMix64,
    id: String,
    start: i64,
    now: i64,
    /// (time, tie-break order, body)
    events: Vec<(i64, Body)>,
    users: Vec<String>,
    /// Intervals `[from, to)` in which the account is trialing or paying.
    active: Vec<(i64, i64)>,
    /// Intervals in which it is paying.
    paying: Vec<(i64, i64)>,
}

impl<'a> Account<'a> {
    fn new(cfg: &'a Config, index: usize) -> Self {
        Self {
            cfg,
            index,
            rng: SplitMix64::stream(cfg.seed, index as u64 + 1),
            id: format!("{}acct-{index:05}", cfg.id_prefix),
            start: cfg.start(),
            now: cfg.now,
            events: Vec::new(),
            users: Vec::new(),
            active: Vec::new(),
            paying: Vec::new(),
        }
    }

    /// Records `body` at `t` if `t` is inside the history; says whether.
    fn push(&mut self, t: i64, body: Body) -> bool {
        if t < self.start || t >= self.now {
            return false;
        }
        self.events.push((t, body));
        true
    }

    fn upsert(&mut self, t: i64, u: v1::AccountUpsert) -> bool {
        self.push(t, Body::Account(u))
    }

    fn lifecycle(&mut self, t: i64, stage: v1::LifecycleStage) {
        self.upsert(
            t,
            v1::AccountUpsert {
                lifecycle: stage as i32,
                ..Default::default()
            },
        );
    }

    fn billing(&mut self, t: i64, status: v1::BillingStatus) -> bool {
        self.push(
            t,
            Body::Billing(v1::BillingStatusChange {
                status: status as i32,
            }),
        )
    }

    fn user(&mut self) -> String {
        self.rng.pick(&self.users).clone()
    }

    fn in_intervals(iv: &[(i64, i64)], t: i64) -> bool {
        iv.iter().any(|&(a, b)| a <= t && t < b)
    }

    /// A random instant inside `iv` (clipped to the history), if any.
    fn time_in(&mut self, iv: &[(i64, i64)]) -> Option<i64> {
        let clipped: Vec<(i64, i64)> = iv
            .iter()
            .map(|&(a, b)| (a.max(self.start), b.min(self.now)))
            .filter(|(a, b)| a < b)
            .collect();
        let total: i64 = clipped.iter().map(|(a, b)| b - a).sum();
        if total <= 0 {
            return None;
        }
        let mut x = self.rng.range(0, total);
        for (a, b) in clipped {
            if x < b - a {
                return Some(a + x);
            }
            x -= b - a;
        }
        None
    }

    /// The month the scripted changes go in: the last complete calendar
    /// month before `now` when the history holds it after `after`, else
    /// the current month; `None` when too little of it is left.
    fn script_month(&self, after: i64) -> Option<(i64, i64)> {
        let this = month_start(self.now);
        let prev = month_start(this - 1);
        let (lo, hi) = if prev.max(after) + 10 * DAY <= this {
            (prev.max(after), this)
        } else {
            (this.max(after), self.now)
        };
        (hi - lo >= 2 * DAY).then_some((lo, hi))
    }

    fn run(mut self) -> (AccountInfo, Vec<v1::Signal>) {
        let cfg = self.cfg;
        let days = i64::from(cfg.history_days);
        let (entry, script) = scripted(self.index).unwrap_or_else(|| {
            let r = self.rng.unit();
            let e = if r < 0.55 {
                Entry::Existing
            } else if r < 0.75 {
                Entry::Newcomer
            } else if r < 0.9 {
                Entry::TrialConverted
            } else {
                Entry::TrialExpired
            };
            (e, Script::Random)
        });
        let segment = if self.index < cfg.segments.len() {
            cfg.segments[self.index].clone()
        } else {
            self.rng.pick(&cfg.segments).clone()
        };
        let health = self.rng.unit();
        let Profile {
            plans,
            seats: seat_range,
            acquisition: acq_range,
            annual: annual_p,
            suffixes,
        } = profile(&segment);
        let &(plan, base) = self.rng.pick(plans);
        let mut seats = self.rng.range(seat_range.0, seat_range.1 + 1);
        let acquisition = self.rng.range(acq_range.0, acq_range.1 + 1) * 100;
        let annual = script == Script::AnnualRenewed || self.rng.chance(annual_p);
        let n_users = self.rng.range(2, 8).min(seats).max(1);
        self.users = (1..=n_users).map(|j| format!("u{j}")).collect();
        let csm = (*self.rng.pick(&CSMS)).to_owned();
        let adjective = *self.rng.pick(&ADJECTIVES);
        let noun = *self.rng.pick(&NOUNS);
        let suffix = *self.rng.pick(suffixes);
        let name = format!("{adjective} {noun} {suffix}");
        let domain = format!(
            "{}{}-{}.example.com",
            adjective.to_lowercase(),
            noun.to_lowercase(),
            self.index
        );
        let contacts: Vec<String> = ["admin", "billing", "ops"]
            .iter()
            .take(self.rng.range(1, 4) as usize)
            .map(|local| format!("{local}@{domain}"))
            .collect();

        // When it joins, and when it starts paying.
        let join_day = match entry {
            Entry::Existing => self.rng.range(0, 5.min(days)),
            Entry::Newcomer => {
                let lo = 5.min(days / 4);
                self.rng.range(lo, (days - 5).max(lo + 1))
            }
            Entry::TrialConverted | Entry::TrialExpired => {
                let lo = 3.min(days / 4);
                self.rng.range(lo, (days - 20).max(lo + 1))
            }
        };
        let joined = self.start + join_day * DAY + self.rng.range(HOUR, 10 * HOUR);
        let trial_end = joined + 14 * DAY;
        let pays_from = match entry {
            Entry::Existing | Entry::Newcomer => Some(joined + 60),
            Entry::TrialConverted => {
                let k = if self.rng.chance(0.1) {
                    self.rng.range(16, 21)
                } else {
                    self.rng.range(1, 14)
                };
                Some(joined + k * DAY + self.rng.range(0, 8 * HOUR))
            }
            Entry::TrialExpired => None,
        }
        .filter(|&t| t < self.now);

        // The renewal date, and whether the account renews.
        let renewal = match (script, entry) {
            (Script::AnnualRenewed, _) => {
                let at = (self.start + days * 6 / 10 * DAY).min(self.now - DAY);
                Some(at.max(joined + 2 * DAY))
            }
            (Script::NotRenewed(_), _) => None, // set with the churn below
            (_, Entry::Existing) => Some(joined + self.rng.range(20, 330) * DAY),
            _ => pays_from.map(|p| p + 365 * DAY),
        };
        let lifecycle = match entry {
            Entry::Existing => v1::LifecycleStage::Active,
            Entry::Newcomer => v1::LifecycleStage::Onboarding,
            Entry::TrialConverted | Entry::TrialExpired => v1::LifecycleStage::Trial,
        };
        // NotRenewed picks its date with the churn below and moves the
        // record's date there when the renewal fails.
        let mut renewal_date = renewal.unwrap_or(joined + 365 * DAY);
        self.upsert(
            joined,
            v1::AccountUpsert {
                name: Some(name.clone()),
                segment: Some(segment.clone()),
                plan: Some(plan.to_owned()),
                csm_owner_email: Some(csm.clone()),
                contact_emails: contacts,
                seats: Some(seats as i32),
                lifecycle: lifecycle as i32,
                renewal_date: ts(renewal_date),
                acquisition_cost: money(cfg, acquisition),
            },
        );
        let info_seats = seats as i32;
        let info_csm = csm.clone();

        // Trials.
        if matches!(entry, Entry::TrialConverted | Entry::TrialExpired) {
            self.push(
                joined,
                Body::Trial(v1::Trial {
                    event: v1::TrialEvent::Started as i32,
                }),
            );
            match pays_from {
                Some(p) => {
                    self.push(
                        p - 60,
                        Body::Trial(v1::Trial {
                            event: v1::TrialEvent::Converted as i32,
                        }),
                    );
                    self.active.push((joined, p));
                }
                None => {
                    if self.push(
                        trial_end,
                        Body::Trial(v1::Trial {
                            event: v1::TrialEvent::Expired as i32,
                        }),
                    ) {
                        self.lifecycle(trial_end + 60, v1::LifecycleStage::Churned);
                    }
                    self.active.push((joined, trial_end));
                }
            }
        }

        // Revenue: the MRR changes of its story, and how its renewal ends.
        let (changes, renewal_outcome) = self.revenue_changes(
            script,
            (pays_from, base),
            (renewal, &mut renewal_date),
            health,
        );
        // Its subscription changes, and the intervals it pays in.
        let paying = self.subscriptions(changes, (annual, entry), &mut seats);

        self.renewals(renewal_outcome, &paying, renewal_date);

        self.billing_story(script, &paying, health);
        self.milestones(entry, script, joined, health);
        self.engagement(health);
        self.tickets_and_surveys(health);

        self.purchases(&paying);
        self.reassign_csm(&paying, &csm);

        // Event ids in time order (stable for equal times).
        self.events.sort_by_key(|(t, _)| *t);
        let id = self.id.clone();
        let prefix = cfg.id_prefix.clone();
        let signals = self
            .events
            .into_iter()
            .enumerate()
            .map(|(k, (t, body))| v1::Signal {
                event_id: format!("{prefix}{}-e{k:05}", id.trim_start_matches(&prefix)),
                account_id: id.clone(),
                occurred_at: ts(t),
                body: Some(body),
            })
            .collect();
        let info = AccountInfo {
            id: self.id,
            name,
            segment,
            plan: plan.to_owned(),
            csm_owner_email: info_csm,
            seats: info_seats,
            users: self.users,
            entry,
            annual,
            joined_at: joined,
        };
        (info, signals)
    }
}
