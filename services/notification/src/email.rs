//! Email delivery: the worker that sends the emails routing recorded as
//! pending, rendered from their rule's template.
//!
//! **Work on the bus.** Routing records each email (`notification_messages`:
//! its template, variables, recipients, state, attempts — what
//! `ListNotifications` reads) and publishes `notification.email`, keyed by
//! the notification, in the same transaction. A delivery worker is a bus
//! consumer ([`Mailer`] is its handler): the bus leases each email to one
//! replica, retries a failed one with back-off (`retry_initial_ms` doubled
//! per attempt, at most `retry_max_ms`, ±20 %), and the handler records
//! each outcome on the email: sent; pending with the error, retried; or
//! dead — at once on a permanent SMTP refusal (5xx) or a template that
//! cannot render, after `max_attempts` for transient failures.
//!
//! **Delivery guarantee.** At least once to the SMTP server, and the
//! `Message-ID` is `<notification id@from domain>`, the same on every
//! attempt, so a resend can be recognised downstream. A second copy can
//! reach the server in two windows only: the worker stops (crash, kill,
//! lost database) after the server accepted the message and before the
//! "sent" mark commits — the email is sent again once its lease has
//! passed; or the server accepts a message after the worker gave up
//! waiting (`smtp_timeout_ms`). Each send ends within `smtp_timeout_ms`,
//! and the lease is more than twice that, so a replica never takes over an
//! email another is still sending; an outcome is recorded only on an email
//! still pending, so a late worker cannot undo another's "sent". The
//! outbox writes `<notification id>.eml` by rename: a resend replaces the
//! file, so there it is exactly once.
//!
//! **Templates** are minijinja, chosen over askama because a routing
//! policy names its template at run time (a tenant may add its own in
//! `templates_dir`) and askama compiles each template into the binary; a
//! runtime engine also keeps proc macros out of the build. A template is
//! a `Subject:` line, a blank line, and the body; subject and body render
//! separately, so no variable can add a header.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use retain_bus::{Bus, Consumer, Delivery, Handler, HandlerError, RetryPolicy, groups};
use retain_proto::{convert, v1};
use retain_runtime::Clock;
use retain_runtime::error::Error;
use sea_orm::{DatabaseConnection, TransactionTrait};
use tokio_util::sync::CancellationToken;

use crate::settings::{EmailSettings, EmailTransport, SmtpTls};
use crate::sql;
use crate::topics::EMAIL_REQUESTED;

/// The built-in templates, by the key a policy names.
const BUILT_IN: [(&str, &str); 4] = [
    (
        "health_yellow_nudge",
        include_str!("../templates/health_yellow_nudge.txt"),
    ),
    (
        "nps_passive_tutorial",
        include_str!("../templates/nps_passive_tutorial.txt"),
    ),
    (
        "nps_promoter_referral",
        include_str!("../templates/nps_promoter_referral.txt"),
    ),
    (
        "churn_exit_survey",
        include_str!("../templates/churn_exit_survey.txt"),
    ),
];

/// Every email template: the built-ins and those of `templates_dir`.
#[derive(Debug)]
pub struct Templates {
    env: minijinja::Environment<'static>,
    keys: Vec<String>,
}

impl Templates {
    /// The built-in templates, then each `<key>.txt` of `dir` ('' = none),
    /// which replaces a built-in of the same key. A template that does not
    /// parse stops startup, naming its file.
    pub fn load(dir: &str) -> anyhow::Result<Self> {
        let mut sources: BTreeMap<String, (String, String)> = BUILT_IN
            .iter()
            .map(|(k, s)| ((*k).to_owned(), ((*s).to_owned(), format!("built-in {k}"))))
            .collect();
        if !dir.is_empty() {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| anyhow::anyhow!("notification.email.templates_dir `{dir}`: {e}"))?;
            for entry in entries {
                let path = entry?.path();
                let (Some(key), Some("txt")) = (
                    path.file_stem().and_then(|s| s.to_str()),
                    path.extension().and_then(|s| s.to_str()),
                ) else {
                    continue;
                };
                let source = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("template {}: {e}", path.display()))?;
                sources.insert(key.to_owned(), (source, path.display().to_string()));
            }
        }
        let mut env = minijinja::Environment::new();
        env.set_keep_trailing_newline(true);
        for (key, (source, origin)) in &sources {
            let (subject, body) =
                split(source).ok_or_else(|| anyhow::anyhow!("template {origin}: {}", FORMAT))?;
            env.add_template_owned(format!("{key}.subject"), subject.to_owned())
                .and_then(|()| env.add_template_owned(format!("{key}.body"), body.to_owned()))
                .map_err(|e| anyhow::anyhow!("template {origin}: {e}"))?;
        }
        Ok(Self {
            env,
            keys: sources.into_keys().collect(),
        })
    }

    /// Whether a template has this key.
    pub fn has(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }

    /// Every template key, sorted.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The subject (one line) and body of `key` rendered with `variables`.
    pub fn render(
        &self,
        key: &str,
        variables: &BTreeMap<String, String>,
    ) -> Result<(String, String), String> {
        let render = |part: &str| {
            self.env
                .get_template(&format!("{key}.{part}"))
                .map_err(|_| format!("no template `{key}`"))?
                .render(variables)
                .map_err(|e| format!("template `{key}` does not render: {e}"))
        };
        let subject = render("subject")?
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .trim()
            .to_owned();
        Ok((subject, render("body")?))
    }
}

const FORMAT: &str = "must start with a `Subject: ` line, then a blank line, then the body";

/// A template's subject line and body sources.
fn split(source: &str) -> Option<(&str, &str)> {
    let source = source.strip_prefix("Subject: ")?;
    let (subject, body) = source.split_once('\n')?;
    let body = body
        .strip_prefix("\r\n")
        .or_else(|| body.strip_prefix('\n'))?;
    Some((subject.trim_end_matches('\r'), body))
}

/// Where emails go.
#[derive(Debug, Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

/// Why one send failed.
#[derive(Debug)]
enum Failure {
    /// Retrying may help (connection refused, timeout, 4xx).
    Transient(String),
    /// Not sendable yet: the account has no contact email so far (its
    /// first metrics snapshot may still be on its way). Retried like a
    /// transient failure, without a warning.
    Waiting(String),
    /// Retrying cannot help (5xx, no template, no recipient).
    Permanent(String),
}

/// The email delivery worker. Construct with [`Mailer::new`], run with
/// [`Mailer::run`].
#[derive(Debug, Clone)]
pub struct Mailer {
    db: DatabaseConnection,
    /// The bus its deliveries come from (and a held tenant's wait on).
    bus: Bus,
    clock: Clock,
    templates: Arc<Templates>,
    transport: Transport,
    from: Mailbox,
    settings: EmailSettings,
    /// Each tenant's sender (`email_from`, `email_reply_to`) and quotas.
    tenants: Arc<crate::Tenants>,
    /// Emails held by a spent quota.
    held: opentelemetry::metrics::Counter<u64>,
}

impl Handler for Mailer {
    /// Sends one `notification.email` message's email, if it is still
    /// pending (a redelivery of one already sent or dead only acknowledges).
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let request = EMAIL_REQUESTED.decode(delivery)?;
        let tenant = request.tenant_id.as_str();
        let pending = sql::pending_email(&self.db, tenant, &request.notification_id)
            .await
            .map_err(|e| HandlerError::transient(e.to_string()))?;
        let Some(record) = pending else {
            return Ok(());
        };
        // The tenant's quota first: a spent one holds this email, and the
        // tenant's other pending ones, until its window ends.
        let taken = match self.take_quota(tenant).await {
            Ok(Quota::Taken(windows)) => windows,
            Ok(Quota::Spent(spent)) => return Err(self.hold(tenant, record, &spent).await),
            Err(e) => return Err(HandlerError::transient(format!("email quota: {e}"))),
        };
        let result = self.send(tenant, &record).await;
        if result.is_err() {
            self.give_back(tenant, &taken).await;
        }
        self.record(tenant, record, result, delivery).await
    }
}

/// A UTC hour, in microseconds.
const HOUR_MICROS: i64 = 3_600 * retain_domain::time::MICROS_PER_SECOND;

/// What [`Mailer::take_quota`] found.
#[derive(Debug)]
enum Quota {
    /// One send taken from each of these windows (span, start).
    Taken(Vec<(&'static str, i64)>),
    /// A window is spent.
    Spent(Spent),
}

/// A spent quota window.
#[derive(Debug)]
struct Spent {
    /// `hour` or `day`.
    span: &'static str,
    /// The tenant's quota for it.
    limit: u64,
    /// When the window ends (the clock's µs).
    until: i64,
}

impl Mailer {
    /// A mailer for `settings` (already validated), sending the templates'
    /// emails from each tenant's sender (`tenants`). The outbox folder is
    /// created at the first email.
    pub fn new(
        db: DatabaseConnection,
        clock: Clock,
        templates: Arc<Templates>,
        settings: &EmailSettings,
        tenants: Arc<crate::Tenants>,
    ) -> anyhow::Result<Self> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("notification.email.from: {e}"))?;
        let transport = match settings.transport {
            EmailTransport::Outbox => Transport::Outbox(PathBuf::from(&settings.outbox_dir)),
            EmailTransport::Smtp => {
                let host = settings.smtp_host.clone();
                let tls = match settings.smtp_tls {
                    SmtpTls::None => Tls::None,
                    SmtpTls::Starttls => Tls::Required(TlsParameters::new(host.clone())?),
                    SmtpTls::Tls => Tls::Wrapper(TlsParameters::new(host.clone())?),
                };
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    .port(settings.port())
                    .tls(tls)
                    .timeout(Some(Duration::from_millis(settings.smtp_timeout_ms)))
                    .pool_config(PoolConfig::new().max_size(settings.concurrency as u32));
                if !settings.smtp_username.is_empty() {
                    builder = builder.credentials(Credentials::new(
                        settings.smtp_username.clone(),
                        settings.smtp_password.clone(),
                    ));
                }
                Transport::Smtp(builder.build())
            }
        };
        match &transport {
            Transport::Outbox(dir) => {
                tracing::info!(outbox = %dir.display(), "emails are written to the outbox folder");
            }
            Transport::Smtp(_) => tracing::info!(
                host = %settings.smtp_host,
                port = settings.port(),
                tls = ?settings.smtp_tls,
                "emails are sent over SMTP"
            ),
        }
        Ok(Self {
            bus: Bus::new(db.clone()),
            db,
            clock,
            templates,
            transport,
            from,
            settings: settings.clone(),
            tenants,
            held: opentelemetry::global::meter("retain-notification")
                .u64_counter("retain.notification.emails_held")
                .with_description("Emails held because their tenant's email quota was spent")
                .build(),
        })
    }

    /// Delivers emails until `stop`: first publishes the bus message of
    /// every pending email routed before deliveries were work on the bus,
    /// then consumes `notification.email` — `concurrency` emails at once,
    /// leases of `lease_seconds`, the retry back-off of the settings, an
    /// idle poll of at most `poll_interval_ms`.
    pub async fn run(&self, stop: CancellationToken) {
        if let Err(e) = self.adopt().await {
            tracing::warn!(error = %e, "queuing the emails of an earlier release failed; retried at the next start");
        }
        let s = &self.settings;
        let mut opts = retain_bus::ConsumerOptions::new(format!(
            "notification-email-{}-{}",
            std::process::id(),
            retain_store::now_micros()
        ));
        opts.batch_size = s.concurrency;
        opts.concurrency = s.concurrency;
        opts.lease = Duration::from_secs(s.lease_seconds);
        opts.idle_max = Duration::from_millis(s.poll_interval_ms).max(opts.idle_min);
        opts.retry = RetryPolicy {
            base: Duration::from_millis(s.retry_initial_ms),
            max: Duration::from_millis(s.retry_max_ms),
        };
        match Consumer::new(
            self.bus.clone(),
            EMAIL_REQUESTED.name(),
            groups::NOTIFICATION,
            opts,
        )
        .await
        {
            Ok(consumer) => consumer.run(self, stop).await,
            // Without its subscription the worker cannot run: it ends,
            // which stops the server (run `migrate`).
            Err(e) => tracing::error!(error = %e, "email delivery cannot start"),
        }
    }

    /// Publishes the bus message of every pending email that has none.
    async fn adopt(&self) -> Result<usize, Error> {
        let tx = self.db.begin().await?;
        let orphans: Vec<v1::EmailRequested> = sql::unqueued_emails(&tx)
            .await?
            .into_iter()
            .map(|(tenant_id, notification_id)| v1::EmailRequested {
                tenant_id,
                notification_id,
            })
            .collect();
        EMAIL_REQUESTED.publish(&tx, &orphans).await?;
        sql::mark_emails_queued(&tx).await?;
        tx.commit().await?;
        Ok(orphans.len())
    }

    /// Takes one send from each of the tenant's quota windows — the UTC
    /// hour and the UTC day containing now (tenant keys
    /// `email_quota_per_hour`, `email_quota_per_day`; 0: none) — in one
    /// transaction, all or none. Lock order: the hour's row, then the
    /// day's. As a tenant's new hour starts, its windows older than two
    /// days are deleted.
    async fn take_quota(&self, tenant: &str) -> Result<Quota, Error> {
        use retain_domain::time::DAY_MICROS;
        let own = &self.tenants.of(tenant).own;
        let now = self.clock.now_micros();
        let tx = self.db.begin().await?;
        let mut taken = Vec::with_capacity(2);
        for (span, limit, len) in [
            ("hour", own.email_quota_per_hour, HOUR_MICROS),
            ("day", own.email_quota_per_day, DAY_MICROS),
        ] {
            if limit == 0 {
                continue;
            }
            let start = now.div_euclid(len) * len;
            match sql::take_send(&tx, tenant, (span, start), limit).await? {
                Some(used) => {
                    if span == "hour" && used == 1 {
                        sql::forget_windows(&tx, tenant, start - 2 * DAY_MICROS).await?;
                    }
                    taken.push((span, start));
                }
                None => {
                    tx.rollback().await?;
                    let until = start + len;
                    return Ok(Quota::Spent(Spent { span, limit, until }));
                }
            }
        }
        tx.commit().await?;
        Ok(Quota::Taken(taken))
    }

    /// Gives back the sends [`Mailer::take_quota`] took for an email that
    /// was not sent. Best effort: a send it fails to give back (the
    /// database lost meanwhile) leaves the tenant one fewer that window.
    async fn give_back(&self, tenant: &str, taken: &[(&'static str, i64)]) {
        let give = async {
            let tx = self.db.begin().await?;
            for window in taken {
                sql::give_back_send(&tx, tenant, *window).await?;
            }
            tx.commit().await
        };
        if let Err(e) = give.await {
            tracing::warn!(tenant, error = %e, "an unsent email's quota was not given back");
        }
    }

    /// Holds an email whose tenant spent its quota: the email stays
    /// pending with the reason as its last error, and it and every other
    /// pending email of the tenant wait on the bus until the window ends,
    /// their attempts not counted — so they stop being claimed, and the
    /// other tenants' emails go first. Held emails are counted
    /// (`retain.notification.emails_held`). Returns the handler's answer:
    /// defer (or, if holding failed, a transient error: retried).
    async fn hold(
        &self,
        tenant: &str,
        mut record: v1::Notification,
        spent: &Spent,
    ) -> HandlerError {
        let resumes = retain_domain::Timestamp::from_micros(spent.until);
        let reason = format!(
            "held: the tenant's email quota of {} per {} is spent; sending resumes at {resumes}",
            spent.limit, spent.span
        );
        // The bus waits by its own clock; the window ends by the mailer's.
        let until = retain_store::now_micros() + (spent.until - self.clock.now_micros()).max(0);
        record.last_error.clone_from(&reason);
        let held = async {
            sql::record_email(&self.db, tenant, &record).await?;
            let key_prefix = format!("{tenant}/");
            let others = self
                .bus
                .defer_pending(
                    (EMAIL_REQUESTED.name(), groups::NOTIFICATION),
                    &key_prefix,
                    until,
                    &reason,
                )
                .await?;
            Ok::<u64, Error>(others)
        };
        match held.await {
            Ok(others) => {
                self.held.add(others + 1, &[]);
                if others > 0 {
                    tracing::warn!(
                        tenant,
                        held = others + 1,
                        limit = spent.limit,
                        span = spent.span,
                        %resumes,
                        "the tenant's email quota is spent: its emails wait"
                    );
                }
                HandlerError::defer(until, reason)
            }
            Err(e) => HandlerError::transient(format!("holding an email: {e}")),
        }
    }

    /// Renders and sends one email. Recipients are the record's, or, when
    /// routing knew none (an NPS answer consumed before the account's first
    /// metrics snapshot), the account's contacts known now.
    async fn send(&self, tenant: &str, n: &v1::Notification) -> Result<Vec<String>, Failure> {
        let mut recipients = n.recipients.clone();
        if recipients.is_empty() {
            recipients = sql::account(&self.db, tenant, &n.account_id)
                .await
                .map_err(|e| Failure::Transient(format!("reading the account's contacts: {e}")))?
                .contacts;
        }
        if recipients.is_empty() {
            return Err(Failure::Waiting(
                "no contact email known for the account yet".into(),
            ));
        }
        // An account's first contacts only: one email, a bounded audience.
        recipients.truncate(self.settings.max_recipients);
        let message = self
            .compose(tenant, n, &recipients)
            .map_err(Failure::Permanent)?;
        let sent = match &self.transport {
            Transport::Outbox(dir) => {
                let bytes = message.formatted();
                let file = dir.join(format!("{}.eml", n.notification_id));
                let part = dir.join(format!(".{}.eml.part", n.notification_id));
                async {
                    tokio::fs::create_dir_all(dir).await?;
                    tokio::fs::write(&part, &bytes).await?;
                    tokio::fs::rename(&part, &file).await
                }
                .await
                .map_err(|e| Failure::Transient(format!("outbox {}: {e}", dir.display())))
            }
            Transport::Smtp(smtp) => {
                let limit = Duration::from_millis(self.settings.smtp_timeout_ms);
                match tokio::time::timeout(limit, smtp.send(message)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) if e.is_permanent() => Err(Failure::Permanent(format!(
                        "the SMTP server refused it: {e}"
                    ))),
                    Ok(Err(e)) => Err(Failure::Transient(format!("SMTP: {e}"))),
                    Err(_) => Err(Failure::Transient(format!(
                        "SMTP: no answer within {} ms",
                        self.settings.smtp_timeout_ms
                    ))),
                }
            }
        };
        sent.map(|()| recipients)
    }

    /// The message of one notification: its template rendered with its
    /// variables, from the tenant's sender (else the configured `from`), to
    /// `recipients`, with a Message-ID from its id at the sender's domain.
    fn compose(
        &self,
        tenant: &str,
        n: &v1::Notification,
        recipients: &[String],
    ) -> Result<Message, String> {
        let own = &self.tenants.of(tenant).own;
        // Checked at start-up (`NotificationTenantKeys::validate`).
        let parse = |a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| format!("tenant sender {a:?}: {e}"))
        };
        let from = match own.email_from.as_str() {
            "" => self.from.clone(),
            a => parse(a)?,
        };
        let variables: BTreeMap<String, String> = n
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (subject, body) = self.templates.render(&n.template, &variables)?;
        let domain = from.email.domain().to_owned();
        let mut builder = Message::builder()
            .message_id(Some(format!("<{}@{domain}>", n.notification_id)))
            .from(from)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        if !own.email_reply_to.is_empty() {
            builder = builder.reply_to(parse(&own.email_reply_to)?);
        }
        if let Some(at) = n.created_at.as_ref().and_then(convert::timestamp) {
            let secs = u64::try_from(at.micros() / 1_000_000).unwrap_or(0);
            builder = builder.date(std::time::UNIX_EPOCH + Duration::from_secs(secs));
        }
        for to in recipients {
            let mailbox: Mailbox = to
                .parse()
                .map_err(|e| format!("recipient {}: {e}", retain_domain::validation::quote(to)))?;
            builder = builder.to(mailbox);
        }
        builder
            .body(body)
            .map_err(|e| format!("the message cannot be built: {e}"))
    }

    /// Records one send's outcome on the email: sent (acknowledged with
    /// it, in one transaction), dead (acknowledged), or still pending with
    /// the error — then the handler fails, and the bus retries after its
    /// back-off.
    async fn record(
        &self,
        tenant: &str,
        mut record: v1::Notification,
        result: Result<Vec<String>, Failure>,
        delivery: &Delivery,
    ) -> Result<(), HandlerError> {
        let now = self.clock.now().micros();
        let attempts = delivery.attempt;
        record.attempts = attempts;
        let id = record.notification_id.clone();
        let retry = match result {
            Ok(recipients) => {
                record.recipients = recipients;
                record.state = v1::DeliveryState::Sent as i32;
                record.sent_at = Some(convert::from_micros(now));
                record.last_error.clear();
                tracing::info!(tenant, notification = id, attempts, "email sent");
                None
            }
            Err(failure @ (Failure::Transient(_) | Failure::Waiting(_)))
                if attempts < i32::try_from(self.settings.max_attempts).unwrap_or(i32::MAX) =>
            {
                let e = match failure {
                    Failure::Waiting(e) => {
                        tracing::debug!(tenant, notification = id, attempts, error = %e, "email waits; retrying");
                        e
                    }
                    Failure::Transient(e) | Failure::Permanent(e) => {
                        tracing::warn!(tenant, notification = id, attempts, error = %e, "email not delivered; retrying");
                        e
                    }
                };
                record.last_error.clone_from(&e);
                Some(e)
            }
            Err(Failure::Transient(e) | Failure::Waiting(e) | Failure::Permanent(e)) => {
                tracing::error!(tenant, notification = id, attempts, error = %e, "email dead-lettered");
                record.state = v1::DeliveryState::Dead as i32;
                record.last_error = e;
                None
            }
        };
        let store = async {
            let tx = self.db.begin().await?;
            if !sql::record_email(&tx, tenant, &record).await? {
                tracing::warn!(
                    tenant,
                    notification = id,
                    "email outcome not recorded: another worker recorded one first"
                );
            }
            if retry.is_none() {
                retain_bus::ack_in(&tx, delivery).await?;
            }
            tx.commit().await?;
            Ok::<(), Error>(())
        };
        store
            .await
            .map_err(|e| HandlerError::transient(e.to_string()))?;
        match retry {
            Some(e) => Err(HandlerError::transient(e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use retain_runtime::Section;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_built_in_template_renders_its_variables() {
        let t = Templates::load("").unwrap();
        assert_eq!(
            t.keys(),
            [
                "churn_exit_survey",
                "health_yellow_nudge",
                "nps_passive_tutorial",
                "nps_promoter_referral"
            ]
        );
        let v = vars(&[("account_name", "Acme"), ("nps_score", "8")]);
        for key in t.keys() {
            let (subject, body) = t.render(key, &v).unwrap();
            assert!(!subject.is_empty() && !body.is_empty(), "{key}");
            assert!(
                !body.contains("{{") && !body.contains("{%"),
                "{key}: {body}"
            );
        }
        let (_, body) = t
            .render(
                "health_yellow_nudge",
                &vars(&[("missing_milestones", "first_report, invite_team")]),
            )
            .unwrap();
        assert!(body.contains("first_report, invite_team"), "{body}");
        assert!(
            t.render("nope", &v)
                .unwrap_err()
                .contains("no template `nope`")
        );
    }

    #[test]
    fn a_variable_cannot_add_a_header() {
        let t = Templates::load("").unwrap();
        let v = vars(&[("account_name", "Acme\r\nBcc: all@evil.test\n\nhi")]);
        let (subject, _) = t.render("nps_promoter_referral", &v).unwrap();
        assert!(
            !subject.contains('\n') && !subject.contains('\r'),
            "{subject:?}"
        );
    }

    #[test]
    fn a_folder_replaces_and_adds_templates_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("churn_exit_survey.txt"),
            "Subject: Bye {{ account_name }}\n\nCustom body.\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("welcome.txt"), "Subject: Hi\n\nWelcome.\n").unwrap();
        let t = Templates::load(dir.path().to_str().unwrap()).unwrap();
        assert!(t.has("welcome"));
        let (subject, body) = t
            .render("churn_exit_survey", &vars(&[("account_name", "Acme")]))
            .unwrap();
        assert_eq!(
            (subject.as_str(), body.as_str()),
            ("Bye Acme", "Custom body.\n")
        );
        std::fs::write(dir.path().join("broken.txt"), "no subject line\n").unwrap();
        let err = Templates::load(dir.path().to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("broken.txt") && err.contains("Subject"),
            "{err}"
        );
    }

    #[test]
    fn settings_that_could_send_twice_or_not_at_all_are_refused() {
        let key = |email: EmailSettings| {
            let s = crate::NotificationSettings {
                email,
                ..Default::default()
            };
            match s.validate() {
                Err(retain_runtime::ConfigError::Invalid { key, .. }) => key,
                other => panic!("{other:?}"),
            }
        };
        let lease_too_short = EmailSettings {
            smtp_timeout_ms: 30_000,
            lease_seconds: 60,
            ..EmailSettings::default()
        };
        assert_eq!(key(lease_too_short), "notification.email.lease_seconds");
        let half_credentials = EmailSettings {
            smtp_username: "u".into(),
            ..EmailSettings::default()
        };
        assert_eq!(key(half_credentials), "notification.email.smtp_password");
        let plaintext = || EmailSettings {
            smtp_username: "u".into(),
            smtp_password: "p".into(),
            smtp_tls: crate::SmtpTls::None,
            ..EmailSettings::default()
        };
        assert_eq!(key(plaintext()), "notification.email.smtp_tls");
        let opted_in = EmailSettings {
            smtp_insecure_plaintext_auth: true,
            ..plaintext()
        };
        assert!(
            crate::NotificationSettings {
                email: opted_in,
                ..Default::default()
            }
            .validate()
            .is_ok(),
            "the named opt-in allows it"
        );
        let everyone = EmailSettings {
            max_recipients: 101,
            ..EmailSettings::default()
        };
        assert_eq!(key(everyone), "notification.email.max_recipients");
        let no_from = EmailSettings {
            from: "not an address".into(),
            ..EmailSettings::default()
        };
        assert_eq!(key(no_from), "notification.email.from");
        assert!(
            crate::NotificationSettings::default().validate().is_ok(),
            "the defaults are valid"
        );
    }
}
