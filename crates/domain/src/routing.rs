//! Routing (docs/NOTIFICATION.md): who must act on a change, as data and pure
//! functions. The notification service persists and delivers what
//! [`route`] decides; cooldown, snooze and assignment decisions are pure
//! functions of the history they are given.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::health::Band;
use crate::kpi::experience::{NpsCategory, nps_category};
use crate::kpi::revenue::ChurnReason;
use crate::money::Money;
use crate::signal::{Signal, SignalBody, SurveyKind, monthly_mrr};
use crate::time::Timestamp;

/// A routing rule's key: what it reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// Band changed to Red.
    BandRed,
    /// Band changed to Yellow.
    BandYellow,
    /// Band changed to Green.
    BandGreen,
    /// Band changed to Thriving.
    BandThriving,
    /// NPS 0–6.
    NpsDetractor,
    /// NPS 7–8.
    NpsPassive,
    /// NPS 9–10.
    NpsPromoter,
    /// MRR contraction (add-on cancelled).
    Contraction,
    /// Logo churn.
    Churn,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 9] = [
        Rule::BandRed,
        Rule::BandYellow,
        Rule::BandGreen,
        Rule::BandThriving,
        Rule::NpsDetractor,
        Rule::NpsPassive,
        Rule::NpsPromoter,
        Rule::Contraction,
        Rule::Churn,
    ];

    /// Stable key (`band_red`), part of notification ids.
    pub fn key(self) -> &'static str {
        match self {
            Self::BandRed => "band_red",
            Self::BandYellow => "band_yellow",
            Self::BandGreen => "band_green",
            Self::BandThriving => "band_thriving",
            Self::NpsDetractor => "nps_detractor",
            Self::NpsPassive => "nps_passive",
            Self::NpsPromoter => "nps_promoter",
            Self::Contraction => "contraction",
            Self::Churn => "churn",
        }
    }
}

/// Task priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Low.
    Low,
    /// Normal.
    Normal,
    /// High.
    High,
    /// Urgent.
    Urgent,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionSpec {
    /// Create a CSM task.
    Task {
        /// Title.
        title: String,
        /// Queue.
        queue: String,
        /// Priority.
        priority: Priority,
        /// SLA in seconds from the trigger.
        sla_seconds: i64,
    },
    /// Send an email, optionally also recorded in-app.
    Email {
        /// Template key.
        template: String,
        /// Also record an in-app message.
        in_app: bool,
    },
    /// Record only (low-touch monitoring).
    Record,
}

/// One rule of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    /// The action.
    pub action: ActionSpec,
    /// Repeats inside this many seconds are suppressed (0 = none).
    pub cooldown_seconds: i64,
}

/// A tenant's routing policy, with per-segment overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingPolicy {
    /// Tenant-wide rules.
    pub rules: BTreeMap<Rule, RuleSpec>,
    /// Segment → rules that replace the tenant-wide ones.
    pub segments: BTreeMap<String, BTreeMap<Rule, RuleSpec>>,
}

const HOUR: i64 = 3600;

fn task(
    title: &str,
    queue: &str,
    priority: Priority,
    sla_hours: i64,
    cooldown_hours: i64,
) -> RuleSpec {
    RuleSpec {
        action: ActionSpec::Task {
            title: title.into(),
            queue: queue.into(),
            priority,
            sla_seconds: sla_hours * HOUR,
        },
        cooldown_seconds: cooldown_hours * HOUR,
    }
}

fn email(template: &str, in_app: bool, cooldown_hours: i64) -> RuleSpec {
    RuleSpec {
        action: ActionSpec::Email {
            template: template.into(),
            in_app,
        },
        cooldown_seconds: cooldown_hours * HOUR,
    }
}

impl Default for RoutingPolicy {
    /// The default routing table (docs/NOTIFICATION.md, "Routing"), with
    /// Retain's default SLAs and cooldowns.
    fn default() -> Self {
        let rules = BTreeMap::from([
            (
                Rule::BandRed,
                task("Account review", "csm", Priority::Urgent, 24, 7 * 24),
            ),
            (Rule::BandYellow, email("health_yellow_nudge", true, 7 * 24)),
            (
                Rule::BandGreen,
                RuleSpec {
                    action: ActionSpec::Record,
                    cooldown_seconds: 0,
                },
            ),
            (
                Rule::BandThriving,
                task(
                    "Expansion opportunity",
                    "expansion",
                    Priority::Normal,
                    7 * 24,
                    30 * 24,
                ),
            ),
            (
                Rule::NpsDetractor,
                task("Call within 24 h", "csm", Priority::High, 24, 0),
            ),
            (
                Rule::NpsPassive,
                email("nps_passive_tutorial", false, 30 * 24),
            ),
            (
                Rule::NpsPromoter,
                email("nps_promoter_referral", false, 90 * 24),
            ),
            (
                Rule::Contraction,
                task("Contact now", "csm", Priority::Urgent, 4, 0),
            ),
            (Rule::Churn, email("churn_exit_survey", false, 0)),
        ]);
        Self {
            rules,
            segments: BTreeMap::new(),
        }
    }
}

impl RoutingPolicy {
    /// The rule in force for `segment`.
    pub fn rule(&self, rule: Rule, segment: Option<&str>) -> Option<&RuleSpec> {
        segment
            .and_then(|s| self.segments.get(s))
            .and_then(|r| r.get(&rule))
            .or_else(|| self.rules.get(&rule))
    }
}

/// What one accepted signal asks of routing: the one decision of which
/// signals the notification service acts on (docs/NOTIFICATION.md,
/// "Triggers"). Ingestion labels a publication `routable` when one of its
/// signals answers `Some` here, so the bus carries nothing else to
/// notification; notification turns each into its trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routable<'a> {
    /// An NPS answer: the detractor, passive or promoter rule.
    NpsAnswer {
        /// Score 0–10.
        score: u8,
        /// Answering user.
        user: &'a str,
        /// The answer's comment.
        comment: &'a str,
    },
    /// A subscription change (not an opening balance): a contraction or a
    /// churn, judged against the account's earlier MRR.
    MrrChange {
        /// The account's MRR after it.
        mrr: Money,
        /// An add-on changed.
        add_on: bool,
        /// The churn reason it gives, if any.
        churn_reason: Option<ChurnReason>,
    },
    /// An account upsert: who the account's triggers go to (its CSM and
    /// contacts) changes.
    AccountUpsert,
}

/// What `signal` asks of routing, if anything. Billing statuses, CSAT and
/// CES answers, sessions and the rest route nothing: health weighs them
/// into the score, whose band changes route.
pub fn routable(signal: &Signal) -> Option<Routable<'_>> {
    match &signal.body {
        SignalBody::Survey {
            kind: SurveyKind::Nps,
            score,
            user_id,
            comment,
            ..
        } => u8::try_from(*score).ok().map(|score| Routable::NpsAnswer {
            score,
            user: user_id,
            comment,
        }),
        SignalBody::Subscription {
            amount,
            interval,
            churn_reason,
            add_on,
            opening: false,
        } => Some(Routable::MrrChange {
            mrr: Money::new(monthly_mrr(amount.minor, *interval), amount.currency),
            add_on: *add_on,
            churn_reason: *churn_reason,
        }),
        SignalBody::Account(_) => Some(Routable::AccountUpsert),
        _ => None,
    }
}

/// A change that may need someone to act.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// The account changed band.
    BandChanged {
        /// Previous band (`None` for the first score).
        from: Option<Band>,
        /// New band.
        to: Band,
        /// Score.
        score: f64,
        /// When the scored inputs were current.
        at: Timestamp,
        /// Explanation ("support_tickets: red; …").
        drivers: String,
        /// The weakest dimension's key.
        weakest: Option<String>,
        /// Onboarding milestones still missing.
        missing_milestones: Vec<String>,
        /// Topics of recent tickets.
        ticket_topics: Vec<String>,
        /// A history import: recorded, never notified.
        backfill: bool,
    },
    /// An NPS answer.
    NpsAnswer {
        /// Event id of the answer.
        event_id: String,
        /// Score 0–10.
        score: u8,
        /// Answering user.
        user: String,
        /// When answered.
        at: Timestamp,
        /// Comment.
        comment: String,
        /// A history import.
        backfill: bool,
    },
    /// MRR went down but not to zero.
    Contraction {
        /// Event id of the subscription change.
        event_id: String,
        /// Add-on cancelled.
        add_on: bool,
        /// MRR lost, in the account's currency.
        lost: crate::money::Money,
        /// When.
        at: Timestamp,
        /// A history import.
        backfill: bool,
    },
    /// MRR went to zero.
    Churn {
        /// Event id of the subscription change.
        event_id: String,
        /// Reason.
        reason: ChurnReason,
        /// When.
        at: Timestamp,
        /// A history import.
        backfill: bool,
    },
}

impl Trigger {
    /// The rule this trigger fires, if any (a first score that is not a
    /// change fires its band's rule too).
    pub fn rule(&self) -> Option<Rule> {
        Some(match self {
            Self::BandChanged { from, to, .. } if *from == Some(*to) => return None,
            Self::BandChanged { to, .. } => match to {
                Band::Red => Rule::BandRed,
                Band::Yellow => Rule::BandYellow,
                Band::Green => Rule::BandGreen,
                Band::Thriving => Rule::BandThriving,
            },
            Self::NpsAnswer { score, .. } => match nps_category(*score) {
                NpsCategory::Detractor => Rule::NpsDetractor,
                NpsCategory::Passive => Rule::NpsPassive,
                NpsCategory::Promoter => Rule::NpsPromoter,
            },
            Self::Contraction { .. } => Rule::Contraction,
            Self::Churn { .. } => Rule::Churn,
        })
    }

    /// What makes this trigger unique: replaying it yields the same id.
    pub fn identity(&self) -> String {
        match self {
            Self::BandChanged { from, to, at, .. } => {
                // Whole seconds, then the microseconds only when there are
                // any: ids of whole-second triggers stay what they were.
                let when = match at.subsec_micros() {
                    0 => at.seconds().to_string(),
                    us => format!("{}.{us:06}", at.seconds()),
                };
                format!("{}>{}@{when}", from.map_or("none", Band::name), to.name())
            }
            Self::NpsAnswer { event_id, .. }
            | Self::Contraction { event_id, .. }
            | Self::Churn { event_id, .. } => format!("event:{event_id}"),
        }
    }

    /// When it happened.
    pub fn at(&self) -> Timestamp {
        match self {
            Self::BandChanged { at, .. }
            | Self::NpsAnswer { at, .. }
            | Self::Contraction { at, .. }
            | Self::Churn { at, .. } => *at,
        }
    }

    fn backfill(&self) -> bool {
        match self {
            Self::BandChanged { backfill, .. }
            | Self::NpsAnswer { backfill, .. }
            | Self::Contraction { backfill, .. }
            | Self::Churn { backfill, .. } => *backfill,
        }
    }
}

/// The account a trigger concerns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountContext {
    /// Tenant.
    pub tenant: String,
    /// External account id.
    pub account: String,
    /// Display name.
    pub name: String,
    /// Segment.
    pub segment: Option<String>,
    /// Owning CSM's email.
    pub csm_owner: Option<String>,
    /// Contact emails.
    pub contacts: Vec<String>,
}

/// A planned action.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// A CSM task to create.
    Task {
        /// Title.
        title: String,
        /// Body: drivers and ticket topics.
        message: String,
        /// Queue.
        queue: String,
        /// Priority.
        priority: Priority,
        /// Assigned CSM (`None`: auto-assign within the queue).
        assignee: Option<String>,
        /// SLA due time.
        due: Timestamp,
    },
    /// An email to send.
    Email {
        /// Template key.
        template: String,
        /// Template variables, sorted.
        variables: BTreeMap<String, String>,
        /// Recipients.
        to: Vec<String>,
        /// Also record in-app.
        in_app: bool,
    },
    /// Recorded only.
    Record,
}

/// What routing decided for one trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The rule fired.
    pub rule: Rule,
    /// Deterministic id: the same trigger always yields the same id.
    pub notification_id: String,
    /// The action (a backfilled trigger is only recorded).
    pub action: Planned,
    /// The rule's cooldown, for [`cooldown`].
    pub cooldown_seconds: i64,
}

/// Deterministic id of the notification for `rule` fired by a trigger with
/// `identity` on `tenant`'s `account`: the first 128 bits of a SHA-256, hex.
pub fn notification_id(tenant: &str, account: &str, rule: Rule, identity: &str) -> String {
    let mut h = Sha256::new();
    for part in [tenant, account, rule.key(), identity] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

/// Decides what `trigger` causes under `policy` for `ctx`. `None` when no
/// rule applies (not a band change, or no rule configured).
pub fn route(policy: &RoutingPolicy, trigger: &Trigger, ctx: &AccountContext) -> Option<Decision> {
    let rule = trigger.rule()?;
    let spec = policy.rule(rule, ctx.segment.as_deref())?;
    let notification_id = notification_id(&ctx.tenant, &ctx.account, rule, &trigger.identity());
    let action = if trigger.backfill() {
        Planned::Record
    } else {
        match &spec.action {
            ActionSpec::Record => Planned::Record,
            ActionSpec::Task {
                title,
                queue,
                priority,
                sla_seconds,
            } => Planned::Task {
                title: title.clone(),
                message: task_message(trigger, ctx),
                queue: queue.clone(),
                priority: *priority,
                assignee: ctx.csm_owner.clone(),
                due: trigger.at().plus(*sla_seconds),
            },
            ActionSpec::Email { template, in_app } => Planned::Email {
                template: template.clone(),
                variables: email_variables(trigger, ctx),
                to: ctx.contacts.clone(),
                in_app: *in_app,
            },
        }
    };
    Some(Decision {
        rule,
        notification_id,
        action,
        cooldown_seconds: spec.cooldown_seconds,
    })
}

fn task_message(trigger: &Trigger, ctx: &AccountContext) -> String {
    let name = if ctx.name.is_empty() {
        &ctx.account
    } else {
        &ctx.name
    };
    match trigger {
        Trigger::BandChanged {
            to,
            score,
            drivers,
            ticket_topics,
            ..
        } => {
            let mut m = format!(
                "{name} is now {} (health {score:.1}). Drivers: {drivers}.",
                to.name()
            );
            if !ticket_topics.is_empty() {
                let mut topics = ticket_topics.clone();
                topics.sort();
                topics.dedup();
                if topics.len() == 1 {
                    m.push_str(&format!(" All recent tickets are about {}.", topics[0]));
                } else {
                    m.push_str(&format!(" Recent ticket topics: {}.", topics.join(", ")));
                }
            }
            m
        }
        Trigger::NpsAnswer {
            score,
            user,
            comment,
            ..
        } => {
            let mut m = format!("{name}: {user} answered NPS {score}.");
            if !comment.is_empty() {
                m.push_str(&format!(" Comment: \"{comment}\""));
            }
            m
        }
        Trigger::Contraction { add_on, lost, .. } => {
            let what = if *add_on {
                "cancelled an add-on"
            } else {
                "reduced the subscription"
            };
            format!("{name} {what}: MRR down by {lost}.")
        }
        Trigger::Churn { reason, .. } => format!("{name} churned (reason: {}).", reason.key()),
    }
}

fn email_variables(trigger: &Trigger, ctx: &AccountContext) -> BTreeMap<String, String> {
    let mut v = BTreeMap::from([(
        "account_name".to_owned(),
        if ctx.name.is_empty() {
            ctx.account.clone()
        } else {
            ctx.name.clone()
        },
    )]);
    match trigger {
        Trigger::BandChanged {
            weakest,
            missing_milestones,
            score,
            ..
        } => {
            v.insert("score".into(), format!("{score:.1}"));
            if let Some(w) = weakest {
                v.insert("weakest_dimension".into(), w.clone());
            }
            if !missing_milestones.is_empty() {
                v.insert("missing_milestones".into(), missing_milestones.join(", "));
            }
        }
        Trigger::NpsAnswer { score, .. } => {
            v.insert("nps_score".into(), score.to_string());
        }
        Trigger::Churn { reason, .. } => {
            v.insert("churn_reason".into(), reason.key().into());
        }
        Trigger::Contraction { .. } => {}
    }
    v
}

/// A notification already sent (or suppressed) for one account and rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The rule.
    pub rule: Rule,
    /// When its trigger happened.
    pub at: Timestamp,
}

/// Whether a new notification for `rule` at `at` is inside the cooldown of
/// one already sent for the same account; `Some(until)` if suppressed.
///
/// "Inside" goes both ways: triggers arrive late, so one that happened up
/// to a cooldown *before* a sent one is suppressed too (`|at − sent| <
/// cooldown`). `until` is the end of the latest such sent notification's
/// cooldown.
pub fn cooldown(
    history: &[Sent],
    rule: Rule,
    at: Timestamp,
    cooldown_seconds: i64,
) -> Option<Timestamp> {
    if cooldown_seconds <= 0 {
        return None;
    }
    history
        .iter()
        .filter(|s| {
            s.rule == rule && at < s.at.plus(cooldown_seconds) && s.at < at.plus(cooldown_seconds)
        })
        .map(|s| s.at.plus(cooldown_seconds))
        .max()
}

/// A CSM's snooze of one rule for one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snooze {
    /// The rule.
    pub rule: Rule,
    /// Until (exclusive).
    pub until: Timestamp,
}

/// Whether `rule` is snoozed at `at`.
pub fn snoozed(snoozes: &[Snooze], rule: Rule, at: Timestamp) -> bool {
    snoozes.iter().any(|s| s.rule == rule && at < s.until)
}

/// How unowned tasks are assigned within a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Assignment {
    /// Rotate through the queue's CSMs.
    #[default]
    RoundRobin,
    /// The CSM with the fewest open tasks (ties: first in the list).
    FewestOpen,
}

/// Picks the CSM for an unowned task. `csms` are the queue's members in a
/// stable order, `open` their open-task counts (same order), `cursor` how
/// many tasks the queue has assigned so far.
pub fn assign<'a>(
    strategy: Assignment,
    csms: &'a [String],
    open: &[u64],
    cursor: u64,
) -> Option<&'a str> {
    if csms.is_empty() {
        return None;
    }
    let i = match strategy {
        Assignment::RoundRobin => usize::try_from(cursor % csms.len() as u64).unwrap_or(0),
        Assignment::FewestOpen => (0..csms.len())
            .min_by_key(|&i| (open.get(i).copied().unwrap_or(0), i))
            .unwrap_or(0),
    };
    csms.get(i).map(String::as_str)
}
