//! The generator: one independent random stream per account, scripted
//! stories for the first accounts, then portfolio costs.

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
        let mut csm = (*self.rng.pick(&CSMS)).to_owned();
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

        // Revenue.
        let mut changes = Vec::new();
        let mut renewal_outcome: Option<(i64, v1::RenewalOutcome)> = None;
        if let Some(p0) = pays_from {
            changes.push(Change {
                t: p0,
                mrr: base,
                add_on: false,
                reason: None,
            });
            let month = self.script_month(p0 + HOUR);
            let at = |f: f64| month.map(|(lo, hi)| lo + ((hi - lo) as f64 * f) as i64);
            match script {
                Script::BusyMonth => {
                    if month.is_some() {
                        let up = round100(base * 6 / 5);
                        let steps = [
                            (0.1, up, false),
                            (0.35, up + 4_900, true),
                            (0.6, up, true),
                            (0.85, round100(up * 9 / 10), false),
                        ];
                        for (f, mrr, add_on) in steps {
                            changes.push(Change {
                                t: at(f).unwrap_or(p0),
                                mrr,
                                add_on,
                                reason: None,
                            });
                        }
                    }
                }
                Script::ChurnReactivate => {
                    if month.is_some() {
                        changes.push(Change {
                            t: at(0.2).unwrap_or(p0),
                            mrr: 0,
                            add_on: false,
                            reason: Some(v1::ChurnReason::Competitor),
                        });
                        changes.push(Change {
                            t: at(0.7).unwrap_or(p0),
                            mrr: base,
                            add_on: false,
                            reason: None,
                        });
                    }
                }
                Script::Churn(reason) | Script::NotRenewed(reason) => {
                    let lo = (p0 + 15 * DAY).min(self.now - 2 * DAY).max(p0 + HOUR);
                    let t = self.rng.range(lo, (self.now - DAY).max(lo + 1));
                    if let Script::NotRenewed(_) = script {
                        renewal_date = t - HOUR;
                        renewal_outcome = Some((t - HOUR, v1::RenewalOutcome::NotRenewed));
                    }
                    changes.push(Change {
                        t,
                        mrr: 0,
                        add_on: false,
                        reason: Some(reason),
                    });
                }
                _ => {
                    // Random story, ending in a churn at a renewal that
                    // is not renewed.
                    let mut stop = self.now;
                    if let Some(r) = renewal.filter(|&r| r > p0 && r < self.now) {
                        let not_renewed =
                            script == Script::Random && self.rng.chance(0.1 + 0.3 * (1.0 - health));
                        if not_renewed {
                            stop = r;
                            renewal_outcome = Some((r, v1::RenewalOutcome::NotRenewed));
                        } else {
                            renewal_outcome = Some((r, v1::RenewalOutcome::Renewed));
                        }
                    }
                    self.random_story(&mut changes, base, stop, health);
                    if stop < self.now && changes.last().is_some_and(|c| c.mrr > 0) {
                        changes.push(Change {
                            t: stop + HOUR,
                            mrr: 0,
                            add_on: false,
                            reason: Some(*self.rng.pick(&REASONS)),
                        });
                    }
                }
            }
        }
        changes.retain(|c| c.t < self.now);
        changes.sort_by_key(|c| c.t);
        // Paying intervals.
        let mut from: Option<i64> = None;
        for c in &changes {
            match (from, c.mrr > 0) {
                (None, true) => from = Some(c.t),
                (Some(f), false) => {
                    self.paying.push((f, c.t));
                    from = None;
                }
                _ => {}
            }
        }
        if let Some(f) = from {
            self.paying.push((f, self.now));
        }
        let paying = self.paying.clone();
        self.active.extend(paying.iter().copied());
        let interval = if annual {
            v1::BillingInterval::Annual
        } else {
            v1::BillingInterval::Monthly
        };
        let mut before = 0;
        let mut paid_before = false;
        for (k, c) in changes.iter().enumerate() {
            let amount = if annual { c.mrr * 12 } else { c.mrr };
            self.push(
                c.t,
                Body::Subscription(v1::SubscriptionChange {
                    amount: money(cfg, amount),
                    interval: interval as i32,
                    churn_reason: c.reason.map_or(0, |r| r as i32),
                    add_on: c.add_on,
                    opening_balance: false,
                }),
            );
            if c.mrr == 0 {
                self.lifecycle(c.t + 60, v1::LifecycleStage::Churned);
            } else if before == 0 {
                self.billing(c.t + 120, v1::BillingStatus::Current);
                if paid_before {
                    self.lifecycle(c.t + 60, v1::LifecycleStage::Active);
                } else if entry == Entry::TrialConverted {
                    self.lifecycle(c.t + 60, v1::LifecycleStage::Onboarding);
                }
            } else if c.mrr > before && !c.add_on {
                seats += (seats / 5).max(1);
                self.upsert(
                    c.t + 60,
                    v1::AccountUpsert {
                        seats: Some(seats as i32),
                        ..Default::default()
                    },
                );
            }
            // Onboarding accounts become active a month after paying,
            // if still paying then and not churned in between.
            if k == 0 && entry != Entry::Existing {
                let t = c.t + 30 * DAY;
                let churned_before = changes.iter().any(|d| d.mrr == 0 && d.t <= t);
                if !churned_before {
                    self.lifecycle(t, v1::LifecycleStage::Active);
                }
            }
            paid_before |= c.mrr > 0;
            before = c.mrr;
        }

        // Renewals: due 30 days before, then the outcome, while paying.
        if let Some((r, outcome)) = renewal_outcome {
            let due = r - 30 * DAY;
            if Self::in_intervals(&paying, due) {
                self.push(
                    due,
                    Body::Renewal(v1::Renewal {
                        outcome: v1::RenewalOutcome::Due as i32,
                        contract_end: ts(r),
                    }),
                );
                self.lifecycle(due + 60, v1::LifecycleStage::Renewal);
            }
            if Self::in_intervals(&paying, r) {
                self.push(
                    r,
                    Body::Renewal(v1::Renewal {
                        outcome: outcome as i32,
                        contract_end: ts(r),
                    }),
                );
                if outcome == v1::RenewalOutcome::Renewed {
                    self.upsert(
                        r + 60,
                        v1::AccountUpsert {
                            lifecycle: v1::LifecycleStage::Active as i32,
                            renewal_date: ts(r + 365 * DAY),
                            ..Default::default()
                        },
                    );
                } else {
                    // Before the churn an hour later: the date it ends.
                    self.upsert(
                        r + 60,
                        v1::AccountUpsert {
                            renewal_date: ts(renewal_date),
                            ..Default::default()
                        },
                    );
                }
            }
        }

        self.billing_story(script, &paying, health);
        self.milestones(entry, script, joined, health);
        self.engagement(health);
        self.tickets_and_surveys(health);

        // Purchases and CSM reassignments.
        let n_purchases = if self.index == 0 {
            2
        } else if self.rng.chance(0.3) {
            self.rng.range(1, 4)
        } else {
            0
        };
        for _ in 0..n_purchases {
            if let Some(t) = self.time_in(&paying) {
                let amount = self.rng.range(50, 500) * 100;
                self.push(
                    t,
                    Body::Purchase(v1::Purchase {
                        amount: money(cfg, amount),
                    }),
                );
            }
        }
        if self.rng.chance(0.15)
            && let Some(t) = self.time_in(&paying)
        {
            let new = (*self.rng.pick(&CSMS)).to_owned();
            if new != csm {
                csm = new;
                self.upsert(
                    t,
                    v1::AccountUpsert {
                        csm_owner_email: Some(csm.clone()),
                        ..Default::default()
                    },
                );
            }
        }

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

    fn random_story(&mut self, changes: &mut Vec<Change>, base: i64, stop: i64, health: f64) {
        let Some(last) = changes.last().copied() else {
            return;
        };
        let (mut t, mut mrr) = (last.t, last.mrr);
        let mut add_ons: Vec<i64> = Vec::new();
        loop {
            t += self.rng.range(12, 46) * DAY + self.rng.range(0, 8 * HOUR);
            if t >= stop {
                break;
            }
            let (new, add_on, reason) = if mrr > 0 {
                let churn = 0.04 + 0.12 * (1.0 - health);
                let r = self.rng.unit();
                if r < churn {
                    (0, false, Some(*self.rng.pick(&REASONS)))
                } else if r < churn + 0.1 + 0.25 * health {
                    (round100(mrr * self.rng.range(110, 141) / 100), false, None)
                } else if r < 0.5 {
                    let a = *self.rng.pick(&[1_900, 4_900, 9_900]);
                    add_ons.push(a);
                    (mrr + a, true, None)
                } else if r < 0.65 && !add_ons.is_empty() {
                    let a = add_ons.pop().unwrap_or(0);
                    (mrr - a, true, None)
                } else if r < 0.75 {
                    (round100(mrr * self.rng.range(70, 91) / 100), false, None)
                } else {
                    continue;
                }
            } else if self.rng.chance(0.35) {
                add_ons.clear();
                (base, false, None)
            } else {
                break;
            };
            if new == mrr || (new == 0 && reason.is_none()) {
                continue;
            }
            changes.push(Change {
                t,
                mrr: new,
                add_on,
                reason,
            });
            mrr = new;
        }
    }

    fn billing_story(&mut self, script: Script, paying: &[(i64, i64)], health: f64) {
        use v1::BillingStatus as B;
        let Some(&(p0, end)) = paying.first() else {
            return;
        };
        let kind = match script {
            Script::Overdue => Some(0),
            Script::FailedThenCurrent => Some(1),
            Script::Collections => Some(2),
            _ if self.rng.chance(0.08 + 0.25 * (1.0 - health)) => Some(self.rng.below(3)),
            _ => None,
        };
        let Some(kind) = kind else {
            return;
        };
        let lo = (p0 + 5 * DAY).min(end - 2 * DAY).max(p0 + HOUR);
        let hi = (end - DAY).max(lo + 1);
        let t = if matches!(
            script,
            Script::Overdue | Script::FailedThenCurrent | Script::Collections
        ) {
            lo
        } else {
            self.rng.range(lo, hi)
        };
        let steps: &[(i64, B)] = match kind {
            0 => &[(0, B::Overdue), (5 * DAY, B::Current)],
            1 => &[(0, B::PaymentFailed), (3 * DAY, B::Current)],
            _ => &[
                (0, B::PaymentFailed),
                (4 * DAY, B::Overdue),
                (12 * DAY, B::Collections),
            ],
        };
        for &(dt, status) in steps {
            let at = (t + dt).min(end - 1);
            if at > t || dt == 0 {
                self.billing(at, status);
            }
        }
    }

    fn milestones(&mut self, entry: Entry, script: Script, joined: i64, health: f64) {
        let checklist = self.cfg.checklist.clone();
        let mut t = joined + HOUR;
        for (k, key) in checklist.iter().enumerate() {
            let stop = if entry == Entry::Existing {
                0.03
            } else {
                0.08 + 0.3 * (1.0 - health)
            };
            if script != Script::Stuck && k > 0 && self.rng.chance(stop) {
                break;
            }
            let gap = if entry == Entry::Existing {
                self.rng.range(0, 2)
            } else {
                self.rng.range(0, 5)
            };
            t += gap * DAY + self.rng.range(HOUR, 8 * HOUR);
            let user = self.user();
            let attempt = |achieved| {
                Body::Milestone(v1::OnboardingMilestone {
                    milestone_key: key.clone(),
                    achieved,
                    user_id: user.clone(),
                })
            };
            if script == Script::Stuck && k == 2 {
                self.push(t, attempt(false));
                break;
            }
            if self.rng.chance(0.15) {
                if !self.push(t, attempt(false)) {
                    break;
                }
                t += self.rng.range(1, 4) * DAY;
            }
            if !self.push(t, attempt(true)) {
                break;
            }
        }
    }

    fn engagement(&mut self, health: f64) {
        let days = i64::from(self.cfg.history_days);
        let active = self.active.clone();
        for d in 0..days {
            let day = self.start + d * DAY;
            let weekend = weekday(day + DAY / 2) >= 5;
            let p = (0.04 + 0.26 * health) * if weekend { 0.35 } else { 1.0 };
            for j in 0..self.users.len() {
                if !self.rng.chance(p) {
                    continue;
                }
                let t = day + self.rng.range(0, DAY);
                if !Self::in_intervals(&active, t) {
                    continue;
                }
                let user = self.users[j].clone();
                let duration = self.rng.range(60, 300 + (3_000.0 * health) as i64);
                self.push(
                    t,
                    Body::Session(v1::Session {
                        user_id: user.clone(),
                        duration_seconds: duration,
                    }),
                );
                if self.rng.chance(0.6) {
                    let key = *self.rng.pick(&ACTIONS);
                    let count = if key == "api_call" {
                        self.rng.range(10, 500)
                    } else {
                        self.rng.range(1, 12)
                    };
                    let at = t + self.rng.range(30, duration.max(31));
                    self.push(
                        at,
                        Body::Action(v1::ProductAction {
                            user_id: user,
                            action_key: key.to_owned(),
                            count,
                        }),
                    );
                }
            }
        }
    }

    fn survey(&mut self, t: i64, kind: v1::SurveyKind, scale: v1::SurveyScale, health: f64) {
        let (lo, hi) = match scale {
            v1::SurveyScale::ZeroToTen => (0, 10),
            v1::SurveyScale::OneToFive => (1, 5),
            v1::SurveyScale::OneToSeven => (1, 7),
            v1::SurveyScale::OneToTen | v1::SurveyScale::Unspecified => (1, 10),
        };
        let q = (health + (self.rng.unit() - 0.4) * 0.6).clamp(0.0, 1.0);
        let score = lo + (f64::from(hi - lo) * q).round() as i32;
        let comment = if self.rng.chance(0.2) {
            (*self.rng.pick(&COMMENTS)).to_owned()
        } else {
            String::new()
        };
        let user_id = self.user();
        self.push(
            t,
            Body::Survey(v1::SurveyAnswer {
                kind: kind as i32,
                scale: scale as i32,
                score,
                comment,
                user_id,
            }),
        );
    }

    fn tickets_and_surveys(&mut self, health: f64) {
        use v1::{SurveyKind as K, SurveyScale as S, TicketStatus as T};
        let csat = if self.index.is_multiple_of(2) {
            S::OneToFive
        } else {
            S::OneToTen
        };
        let ces = if (self.index / 2).is_multiple_of(2) {
            S::OneToFive
        } else {
            S::OneToSeven
        };
        let active = self.active.clone();
        // NPS from 1–3 users, one in-app CSAT and CES.
        for _ in 0..self.rng.range(1, 4) {
            if let Some(t) = self.time_in(&active) {
                self.survey(t, K::Nps, S::ZeroToTen, health);
            }
        }
        if let Some(t) = self.time_in(&active) {
            self.survey(t, K::Csat, csat, health);
        }
        if let Some(t) = self.time_in(&active) {
            self.survey(t, K::Ces, ces, health);
        }
        // Tickets.
        let n = self.rng.below(2 + (4.0 * (1.0 - health)) as u64);
        for k in 0..n {
            let Some(opened) = self.time_in(&active) else {
                break;
            };
            let topics: Vec<String> = (0..self.rng.range(1, 3))
                .map(|_| (*self.rng.pick(&TOPICS)).to_owned())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let ticket_id = format!("{}-T{k}", self.id);
            let ticket = |status: T, contacts: i32| {
                Body::Ticket(v1::SupportTicket {
                    ticket_id: ticket_id.clone(),
                    status: status as i32,
                    topics: topics.clone(),
                    contacts_until_resolution: contacts,
                })
            };
            self.push(opened, ticket(T::Opened, 0));
            let resolved = opened + self.rng.range(2 * HOUR, 5 * DAY);
            let contacts = if self.rng.chance(0.6) {
                1
            } else {
                self.rng.range(2, 5) as i32
            };
            if !self.push(resolved, ticket(T::Resolved, contacts)) {
                continue;
            }
            let mut last = resolved;
            if self.rng.chance(0.15) {
                let reopened = resolved + self.rng.range(1, 4) * DAY;
                if self.push(reopened, ticket(T::Reopened, 0)) {
                    last = reopened + self.rng.range(1, 3) * DAY;
                    let more = contacts + self.rng.range(1, 3) as i32;
                    if !self.push(last, ticket(T::Resolved, more)) {
                        continue;
                    }
                }
            }
            if self.rng.chance(0.6) {
                self.survey(last + HOUR, K::Csat, csat, health);
            }
            if self.rng.chance(0.4) {
                self.survey(last + 2 * HOUR, K::Ces, ces, health);
            }
        }
    }
}

/// The portfolio costs of the dataset `cfg` describes (account `*`):
/// customer-success and acquisition spend per calendar month the history
/// touches, and a quarterly CS tooling cost, each recorded at the start of
/// its period (or of the history, if later), each covering its whole
/// month or quarter.
pub fn generate_costs(cfg: &Config) -> Vec<v1::Signal> {
    let mut rng = SplitMix64::stream(cfg.seed, 0);
    let (start, now) = (cfg.start(), cfg.now);
    let n = cfg.accounts.max(1) as i64;
    let mut out = Vec::new();
    let mut push = |id: String, at: i64, kind: v1::CostKind, amount: i64, from: i64, to: i64| {
        let at = at.max(start + HOUR);
        if at < now {
            out.push(v1::Signal {
                event_id: format!("{}{id}", cfg.id_prefix),
                account_id: PORTFOLIO.into(),
                occurred_at: ts(at),
                body: Some(Body::Cost(v1::Cost {
                    kind: kind as i32,
                    amount: money(cfg, amount),
                    period: Some(v1::Period {
                        start: ts(from),
                        end: ts(to),
                    }),
                })),
            });
        }
    };
    let mut m = month_start(start);
    while m < now {
        let next = next_month_start(m);
        let label = month_label(m);
        let cs = n * rng.range(1_500, 2_500);
        let acq = n * rng.range(4_000, 8_000);
        push(
            format!("cost-cs-{label}"),
            m,
            v1::CostKind::CustomerSuccess,
            cs,
            m,
            next,
        );
        push(
            format!("cost-acq-{label}"),
            m + HOUR,
            v1::CostKind::Acquisition,
            acq,
            m,
            next,
        );
        let (y, month, _) = civil_from_days(m / DAY);
        if month % 3 == 1 || m == month_start(start) {
            let q_month = (month - 1) / 3 * 3 + 1;
            let q_start = days_from_civil(y, q_month, 1) * DAY;
            let q_end = if q_month == 10 {
                days_from_civil(y + 1, 1, 1) * DAY
            } else {
                days_from_civil(y, q_month + 3, 1) * DAY
            };
            let tools = n * rng.range(2_000, 4_000);
            push(
                format!("cost-cs-tools-{y:04}-Q{}", (q_month - 1) / 3 + 1),
                q_start + 2 * HOUR,
                v1::CostKind::CustomerSuccess,
                tools,
                q_start,
                q_end,
            );
        }
        m = next;
    }
    out
}
