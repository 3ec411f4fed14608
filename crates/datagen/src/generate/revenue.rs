//! An account's money: its MRR story (scripted or random, ending in a
//! churn where its renewal fails), the subscription changes that tell it,
//! and its renewal signals.

use retain_proto::v1;
use v1::signal::Body;

use super::{Account, Change, HOUR, REASONS, Script, money, round100, ts};
use crate::Entry;
use crate::calendar::DAY;

impl Account<'_> {
    /// The MRR changes of the account's story from when it starts paying
    /// (`pays_from`, at `base`), and how its renewal ends; a scripted
    /// non-renewal moves `renewal_date` to the day it fails.
    pub(super) fn revenue_changes(
        &mut self,
        script: Script,
        (pays_from, base): (Option<i64>, i64),
        (renewal, renewal_date): (Option<i64>, &mut i64),
        health: f64,
    ) -> (Vec<Change>, Option<(i64, v1::RenewalOutcome)>) {
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
                        *renewal_date = t - HOUR;
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
        (changes, renewal_outcome)
    }

    /// Pushes the subscription changes (annual amounts × 12) with what
    /// follows each (lifecycle, billing, seats), and returns the intervals
    /// the account pays in.
    pub(super) fn subscriptions(
        &mut self,
        mut changes: Vec<Change>,
        (annual, entry): (bool, Entry),
        seats: &mut i64,
    ) -> Vec<(i64, i64)> {
        let cfg = self.cfg;
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
                *seats += (*seats / 5).max(1);
                self.upsert(
                    c.t + 60,
                    v1::AccountUpsert {
                        seats: Some(*seats as i32),
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
        paying
    }

    /// The renewal signals of `renewal_outcome`: due 30 days before, then
    /// the outcome, while paying.
    pub(super) fn renewals(
        &mut self,
        renewal_outcome: Option<(i64, v1::RenewalOutcome)>,
        paying: &[(i64, i64)],
        renewal_date: i64,
    ) {
        // Renewals: due 30 days before, then the outcome, while paying.
        if let Some((r, outcome)) = renewal_outcome {
            let due = r - 30 * DAY;
            if Self::in_intervals(paying, due) {
                self.push(
                    due,
                    Body::Renewal(v1::Renewal {
                        outcome: v1::RenewalOutcome::Due as i32,
                        contract_end: ts(r),
                    }),
                );
                self.lifecycle(due + 60, v1::LifecycleStage::Renewal);
            }
            if Self::in_intervals(paying, r) {
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
}
