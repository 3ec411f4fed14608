//! Email delivery throughput to a local SMTP server (Python's aiosmtpd, as
//! the tests use), side by side in one run:
//!
//! 1. The baseline, the SMTP server's own acceptance rate:
//!    `NOTIFICATION_BENCH_EMAILS` (2,000) messages of the same size sent
//!    straight with lettre — pooled connections, `concurrency` at once
//!    (`NOTIFICATION_BENCH_CONCURRENCY`, default the setting's 8), no
//!    database.
//! 2. Retain: as many pending emails (routed beforehand from Yellow band
//!    changes on a throwaway PostgreSQL) delivered by one mailer — claim,
//!    render, send, record — until none is due.
//!
//! ```text
//! cargo bench -p retain-notification --bench email
//! ```

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use retain_notification::{
    EmailSettings, EmailTransport, Mailer, Router, SmtpTls, Templates, band_trigger,
};
use retain_proto::v1;
use retain_runtime::Clock;
use retain_testkit::{BenchPostgres, SmtpSink};

fn yellow(i: usize, at: i64) -> v1::HealthBandChanged {
    let account = format!("acct-{i:06}");
    v1::HealthBandChanged {
        tenant_id: "acme".into(),
        account_id: account.clone(),
        from_band: v1::HealthBand::Green as i32,
        to_band: v1::HealthBand::Yellow as i32,
        score: Some(v1::HealthScore {
            account_id: account.clone(),
            score: 55.0,
            band: v1::HealthBand::Yellow as i32,
            scored_at: Some(prost_types::Timestamp {
                seconds: at,
                nanos: 0,
            }),
            dimensions: vec![v1::DimensionScore {
                key: "product_usage".into(),
                sub_score: 20.0,
                ..Default::default()
            }],
            inputs: Some(v1::AccountMetricsSnapshot {
                account_id: account.clone(),
                account_name: format!("{account} Inc"),
                contact_emails: vec![format!("ops@{account}.example")],
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: v1::IngestMode::Live as i32,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("email: run with `cargo bench -p retain-notification --bench email`");
        return;
    }
    let n: usize = std::env::var("NOTIFICATION_BENCH_EMAILS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let sink = SmtpSink::start("email bench").expect("aiosmtpd for the benchmark");
    let settings = EmailSettings {
        transport: EmailTransport::Smtp,
        smtp_host: "127.0.0.1".into(),
        smtp_port: sink.port,
        smtp_tls: SmtpTls::None,
        concurrency: std::env::var("NOTIFICATION_BENCH_CONCURRENCY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(EmailSettings::default().concurrency),
        ..Default::default()
    };
    let concurrency = settings.concurrency;

    // 1. The server's own acceptance rate: lettre alone.
    let templates = Arc::new(Templates::load("").unwrap());
    let vars = yellow(0, 0);
    let (_, ctx) = band_trigger(&vars).unwrap();
    let (subject, body) = templates
        .render(
            "health_yellow_nudge",
            &[("account_name".to_owned(), ctx.name.clone())].into(),
        )
        .unwrap();
    let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.port)
        .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(concurrency as u32))
        .build();
    let started = Instant::now();
    let sent: Vec<bool> = futures::stream::iter(0..n)
        .map(|i| {
            let message = Message::builder()
                .message_id(Some(format!("<baseline-{i}@retain.localhost>")))
                .from("Customer Success <cs@retain.localhost>".parse().unwrap())
                .to(format!("ops@acct-{i:06}.example").parse().unwrap())
                .subject(subject.clone())
                .body(body.clone())
                .unwrap();
            let smtp = smtp.clone();
            async move { smtp.send(message).await.is_ok() }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let baseline = started.elapsed();
    assert!(
        sent.iter().all(|ok| *ok),
        "the server accepted every message"
    );

    // 2. Retain: route n Yellow changes (pending emails), then deliver.
    let pg = BenchPostgres::start().expect("PostgreSQL for the benchmark");
    let url = pg.database("retain_email_bench").await.unwrap();
    let db = retain_store::connect(&url, &retain_store::PoolOptions::default())
        .await
        .unwrap();
    retain_store::migrate(&db).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let router = Router {
        db: db.clone(),
        clock: Clock::system(),
        tenants: Arc::new(
            retain_notification::tenants(&quota_of(n).tenants.parse().unwrap()).unwrap(),
        ),
    };
    futures::stream::iter(0..n)
        .map(|i| {
            let router = router.clone();
            async move {
                let (trigger, ctx) = band_trigger(&yellow(i, now - 600)).unwrap();
                router.route(&trigger, &ctx, None).await.unwrap();
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
    let mailer = Mailer::new(
        db.clone(),
        Clock::system(),
        templates,
        &settings,
        router.tenants.clone(),
    )
    .unwrap();
    let started = Instant::now();
    // The delivery worker as a service runs it, until the bus has no
    // email left for it.
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn({
        let stop = stop.clone();
        async move { mailer.run(stop).await }
    });
    let bus = retain_bus::Bus::new(db.clone());
    retain_testkit::eventually(
        "the bus to hold no email left to deliver",
        std::time::Duration::from_secs(600),
        || async {
            let s = bus
                .stats(
                    retain_notification::topics::EMAIL_REQUESTED.name(),
                    retain_bus::groups::NOTIFICATION,
                )
                .await
                .unwrap();
            (s.pending + s.leased == 0).then_some(())
        },
    )
    .await;
    let delivered = started.elapsed();
    stop.cancel();
    worker.await.unwrap();
    assert_eq!(sink.received().len(), 2 * n, "every email received once");

    let rate = |d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!(
        "delivered {n} emails through Retain in {:.2} s = {:.0} emails/s ({concurrency} in flight)",
        delivered.as_secs_f64(),
        rate(delivered)
    );
    println!(
        "  baseline, the SMTP server's acceptance rate (lettre alone, {concurrency} in flight): {:.2} s = {:.0} messages/s",
        baseline.as_secs_f64(),
        rate(baseline)
    );
}

/// Settings whose tenants may each send `n` emails an hour and a day: the
/// quotas are checked on every send, as in production, and none holds.
fn quota_of(n: usize) -> retain_runtime::Settings {
    let mut s = retain_runtime::Settings::default();
    for key in ["email_quota_per_hour", "email_quota_per_day"] {
        s.tenants.default.keys.insert(key.into(), (n as u64).into());
    }
    s
}
