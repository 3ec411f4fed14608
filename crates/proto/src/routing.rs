//! Wire ↔ domain conversions of the notification service: routing rules,
//! triggers and priorities. A policy from the wire is checked field by
//! field; every problem names its field under `policy.`.

use std::collections::BTreeMap;

use retain_domain::Violations;
use retain_domain::routing::{ActionSpec, Assignment, Priority, Rule, RuleSpec};
use retain_domain::validation::{MAX_LABEL_LEN, Text, check_len, check_text};

use crate::v1;

/// Longest cooldown or SLA a rule may set: a year.
pub const MAX_SECONDS: i64 = 365 * 86_400;

/// A wire trigger; `None` for `UNSPECIFIED` and unknown numbers.
pub fn rule_from_proto(value: i32) -> Option<Rule> {
    use v1::RoutingTrigger as T;
    Some(match T::try_from(value).ok()? {
        T::BandRed => Rule::BandRed,
        T::BandYellow => Rule::BandYellow,
        T::BandGreen => Rule::BandGreen,
        T::BandThriving => Rule::BandThriving,
        T::NpsDetractor => Rule::NpsDetractor,
        T::NpsPassive => Rule::NpsPassive,
        T::NpsPromoter => Rule::NpsPromoter,
        T::Contraction => Rule::Contraction,
        T::Churn => Rule::Churn,
        T::Unspecified => return None,
    })
}

/// The wire trigger of a rule.
pub fn rule_to_proto(rule: Rule) -> v1::RoutingTrigger {
    use v1::RoutingTrigger as T;
    match rule {
        Rule::BandRed => T::BandRed,
        Rule::BandYellow => T::BandYellow,
        Rule::BandGreen => T::BandGreen,
        Rule::BandThriving => T::BandThriving,
        Rule::NpsDetractor => T::NpsDetractor,
        Rule::NpsPassive => T::NpsPassive,
        Rule::NpsPromoter => T::NpsPromoter,
        Rule::Contraction => T::Contraction,
        Rule::Churn => T::Churn,
    }
}

/// A wire priority; `None` for `UNSPECIFIED` and unknown numbers.
pub fn priority_from_proto(value: i32) -> Option<Priority> {
    use v1::TaskPriority as P;
    Some(match P::try_from(value).ok()? {
        P::Low => Priority::Low,
        P::Normal => Priority::Normal,
        P::High => Priority::High,
        P::Urgent => Priority::Urgent,
        P::Unspecified => return None,
    })
}

/// The wire priority.
pub fn priority_to_proto(p: Priority) -> v1::TaskPriority {
    match p {
        Priority::Low => v1::TaskPriority::Low,
        Priority::Normal => v1::TaskPriority::Normal,
        Priority::High => v1::TaskPriority::High,
        Priority::Urgent => v1::TaskPriority::Urgent,
    }
}

/// The assignment strategy (`UNSPECIFIED` is round-robin).
pub fn assignment_from_proto(value: i32) -> Option<Assignment> {
    use v1::AssignmentStrategy as A;
    match A::try_from(value).ok()? {
        A::Unspecified | A::RoundRobin => Some(Assignment::RoundRobin),
        A::FewestOpen => Some(Assignment::FewestOpen),
    }
}

/// A queue or template key: 1–64 of `a-z`, `0-9`, `_`, `-`.
fn is_key(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Most rules a policy may list: one per trigger, with room to spare for
/// triggers to come.
pub const MAX_RULES: usize = 32;

/// A policy a client sends (`PutRoutingPolicy`): at most [`MAX_RULES`]
/// rules (none read beyond), every text by the rule of every text a client
/// stores, then [`rules_from_proto`]'s checks.
pub fn rules_from_request(p: &v1::RoutingPolicy) -> Result<BTreeMap<Rule, RuleSpec>, Violations> {
    let mut v = Violations::new();
    if !check_len(&mut v, "policy.rules", p.rules.len(), MAX_RULES) {
        return Err(v);
    }
    check_text(
        &mut v,
        "policy.segment",
        &p.segment,
        Text::Line(MAX_LABEL_LEN),
        false,
    );
    for (i, r) in p.rules.iter().enumerate() {
        if let Some(v1::routing_rule::Action::Task(t)) = &r.action {
            let field = format!("policy.rules[{i}].task.title");
            check_text(&mut v, &field, &t.title, Text::Line(MAX_LABEL_LEN), true);
        }
    }
    match rules_from_proto(p) {
        Ok(rules) if v.is_empty() => Ok(rules),
        Ok(_) => Err(v),
        Err(more) => {
            // One violation per field: the text rule's, said first.
            for m in more.0 {
                if !v.0.iter().any(|x| x.field == m.field) {
                    v.0.push(m);
                }
            }
            Err(v)
        }
    }
}

/// A policy's rules from the wire (a stored policy read back, or a request
/// after [`rules_from_request`]), checked: at most one rule per trigger,
/// an action on each, task titles 1–200 bytes, queue and template keys,
/// a priority, SLA 1 s – 365 days, cooldown 0 – 365 days. Triggers
/// without a rule are absent from the map (the caller falls back).
pub fn rules_from_proto(p: &v1::RoutingPolicy) -> Result<BTreeMap<Rule, RuleSpec>, Violations> {
    let mut v = Violations::new();
    let mut rules = BTreeMap::new();
    if p.segment.len() > MAX_LABEL_LEN || p.segment.contains('\0') {
        v.push("policy.segment", "must be at most 200 bytes without U+0000");
    }
    if assignment_from_proto(p.assignment).is_none() {
        v.push(
            "policy.assignment",
            format!(
                "{} is not an AssignmentStrategy (ROUND_ROBIN, FEWEST_OPEN)",
                p.assignment
            ),
        );
    }
    for (i, r) in p.rules.iter().enumerate() {
        let f = |name: &str| format!("policy.rules[{i}].{name}");
        let Some(rule) = rule_from_proto(r.trigger) else {
            v.push(
                f("trigger"),
                format!("{} is not a routing trigger", r.trigger),
            );
            continue;
        };
        if rules.contains_key(&rule) {
            v.push(f("trigger"), format!("{} has a rule already", rule.key()));
            continue;
        }
        if !(0..=MAX_SECONDS).contains(&r.cooldown_seconds) {
            v.push(f("cooldown_seconds"), "must be 0 to 31536000 (365 days)");
        }
        let action = match &r.action {
            None => {
                v.push(f("action"), "is required: task, email or record");
                continue;
            }
            Some(v1::routing_rule::Action::Record(_)) => ActionSpec::Record,
            Some(v1::routing_rule::Action::Email(e)) => {
                if !is_key(&e.template) {
                    v.push(f("email.template"), "must be 1-64 of a-z, 0-9, _ and -");
                }
                ActionSpec::Email {
                    template: e.template.clone(),
                    in_app: e.in_app,
                }
            }
            Some(v1::routing_rule::Action::Task(t)) => {
                if t.title.trim().is_empty()
                    || t.title.len() > MAX_LABEL_LEN
                    || t.title.contains('\0')
                {
                    v.push(
                        f("task.title"),
                        "must be 1-200 bytes, not blank, without U+0000",
                    );
                }
                if !is_key(&t.queue) {
                    v.push(f("task.queue"), "must be 1-64 of a-z, 0-9, _ and -");
                }
                let priority = priority_from_proto(t.priority).unwrap_or_else(|| {
                    v.push(f("task.priority"), "must be LOW, NORMAL, HIGH or URGENT");
                    Priority::Normal
                });
                if !(1..=MAX_SECONDS).contains(&t.sla_seconds) {
                    v.push(f("task.sla_seconds"), "must be 1 to 31536000 (365 days)");
                }
                ActionSpec::Task {
                    title: t.title.clone(),
                    queue: t.queue.clone(),
                    priority,
                    sla_seconds: t.sla_seconds,
                }
            }
        };
        rules.insert(
            rule,
            RuleSpec {
                action,
                cooldown_seconds: r.cooldown_seconds,
            },
        );
    }
    v.into_result(rules)
}

/// The wire form of `rules`, in trigger order.
pub fn rules_to_proto(rules: &BTreeMap<Rule, RuleSpec>) -> Vec<v1::RoutingRule> {
    rules
        .iter()
        .map(|(rule, spec)| v1::RoutingRule {
            trigger: rule_to_proto(*rule) as i32,
            action: Some(match &spec.action {
                ActionSpec::Record => v1::routing_rule::Action::Record(v1::RecordAction {}),
                ActionSpec::Email { template, in_app } => {
                    v1::routing_rule::Action::Email(v1::EmailAction {
                        template: template.clone(),
                        in_app: *in_app,
                    })
                }
                ActionSpec::Task {
                    title,
                    queue,
                    priority,
                    sla_seconds,
                } => v1::routing_rule::Action::Task(v1::TaskAction {
                    title: title.clone(),
                    queue: queue.clone(),
                    priority: priority_to_proto(*priority) as i32,
                    sla_seconds: *sla_seconds,
                }),
            }),
            cooldown_seconds: spec.cooldown_seconds,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use retain_domain::routing::RoutingPolicy;

    #[test]
    fn the_default_rules_round_trip() {
        let rules = RoutingPolicy::default().rules;
        let wire = v1::RoutingPolicy {
            rules: rules_to_proto(&rules),
            ..Default::default()
        };
        assert_eq!(rules_from_proto(&wire).unwrap(), rules);
    }

    #[test]
    fn every_problem_names_its_field() {
        let wire = v1::RoutingPolicy {
            rules: vec![
                v1::RoutingRule {
                    trigger: 0,
                    ..Default::default()
                },
                v1::RoutingRule {
                    trigger: v1::RoutingTrigger::BandRed as i32,
                    action: Some(v1::routing_rule::Action::Task(v1::TaskAction {
                        title: " ".into(),
                        queue: "CSM Queue".into(),
                        priority: 0,
                        sla_seconds: 0,
                    })),
                    cooldown_seconds: -1,
                },
                v1::RoutingRule {
                    trigger: v1::RoutingTrigger::BandRed as i32,
                    action: Some(v1::routing_rule::Action::Record(v1::RecordAction {})),
                    cooldown_seconds: 0,
                },
            ],
            assignment: 9,
            ..Default::default()
        };
        let fields: Vec<String> = rules_from_proto(&wire)
            .unwrap_err()
            .0
            .into_iter()
            .map(|f| f.field)
            .collect();
        assert_eq!(
            fields,
            [
                "policy.assignment",
                "policy.rules[0].trigger",
                "policy.rules[1].cooldown_seconds",
                "policy.rules[1].task.title",
                "policy.rules[1].task.queue",
                "policy.rules[1].task.priority",
                "policy.rules[1].task.sla_seconds",
                "policy.rules[2].trigger",
            ]
        );
    }
}
