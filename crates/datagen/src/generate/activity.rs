//! An account's activity beside its money: billing statuses, onboarding
//! milestones, sessions and actions, tickets and surveys, purchases and
//! CSM changes.

use retain_proto::v1;
use v1::signal::Body;

use super::*;

impl Account<'_> {
    pub(super) fn billing_story(&mut self, script: Script, paying: &[(i64, i64)], health: f64) {
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

    pub(super) fn milestones(&mut self, entry: Entry, script: Script, joined: i64, health: f64) {
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

    pub(super) fn engagement(&mut self, health: f64) {
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

    pub(super) fn tickets_and_surveys(&mut self, health: f64) {
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

    /// A few one-off purchases while paying (two for the first account).
    pub(super) fn purchases(&mut self, paying: &[(i64, i64)]) {
        let cfg = self.cfg;
        let n_purchases = if self.index == 0 {
            2
        } else if self.rng.chance(0.3) {
            self.rng.range(1, 4)
        } else {
            0
        };
        for _ in 0..n_purchases {
            if let Some(t) = self.time_in(paying) {
                let amount = self.rng.range(50, 500) * 100;
                self.push(
                    t,
                    Body::Purchase(v1::Purchase {
                        amount: money(cfg, amount),
                    }),
                );
            }
        }
    }

    /// Sometimes, the account changes CSM while paying.
    pub(super) fn reassign_csm(&mut self, paying: &[(i64, i64)], csm: &str) {
        if self.rng.chance(0.15)
            && let Some(t) = self.time_in(paying)
        {
            let new = (*self.rng.pick(&CSMS)).to_owned();
            if new != csm {
                self.upsert(
                    t,
                    v1::AccountUpsert {
                        csm_owner_email: Some(new),
                        ..Default::default()
                    },
                );
            }
        }
    }
}
