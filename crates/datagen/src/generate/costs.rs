//! The portfolio's costs (account `*`).

use retain_proto::v1;

use super::*;

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
