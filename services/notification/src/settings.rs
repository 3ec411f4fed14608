//! The `[notification]` section of the configuration, owned by this service.

use std::collections::BTreeMap;

use retain_runtime::{ConfigError, ConsumerSettings, PerTenant, Section, TenantKeys, TenantView};
use serde::Deserialize;

/// Notification service settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// The consumers (`[notification.consumer]`): 1,000 messages a claim —
    /// a batch of band changes or of recorded signals is routed in one
    /// transaction, kept well inside the lease (~6,000 routed a second
    /// were measured on 2 cores; with a backlog a claim costs about 20 ms
    /// on PostgreSQL whatever its size, docs/BENCHMARKS.md); 4 accounts of
    /// `account.metrics` at once (each commits on its own, as does each
    /// message of a failed batch retried alone); 30 s leases.
    pub consumer: ConsumerSettings,
    /// Consumers of band changes per replica, each routing its own claimed
    /// batch in one transaction.
    pub band_consumers: usize,
    /// Consumers of routable `signals.recorded` per replica, each routing
    /// its own claimed batch in one transaction.
    pub signal_consumers: usize,
    /// How often open tasks past their SLA are marked breached, in
    /// milliseconds.
    pub sla_sweep_interval_ms: u64,
    /// Email delivery (`[notification.email]`).
    pub email: EmailSettings,
}

/// Where emails go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTransport {
    /// Written as `<notification id>.eml` files into `outbox_dir` (the
    /// embedded mode, and a fresh install's default: nothing leaves the
    /// machine until an SMTP server is configured).
    Outbox,
    /// Sent to `smtp_host`.
    Smtp,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a relay on the same host or pod only).
    None,
    /// Plain connection upgraded with STARTTLS, required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// `[notification.email]`: templates, transport, retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailSettings {
    /// `outbox` or `smtp`.
    pub transport: EmailTransport,
    /// The From address, optionally with a name: `Acme <cs@acme.io>`. Its
    /// domain ends every Message-ID.
    pub from: String,
    /// Where `outbox` writes `.eml` files (created when missing).
    pub outbox_dir: String,
    /// SMTP server.
    pub smtp_host: String,
    /// SMTP port; 0 = the TLS mode's usual port (25, 587, 465).
    pub smtp_port: u16,
    /// `none`, `starttls` or `tls`.
    pub smtp_tls: SmtpTls,
    /// SMTP user ('' = no authentication).
    pub smtp_username: String,
    /// SMTP password (better from `RETAIN__NOTIFICATION__EMAIL__SMTP_PASSWORD`).
    pub smtp_password: String,
    /// Allows sending the credentials over a connection without TLS
    /// (`smtp_tls = "none"`), where anyone on the path reads them: off by
    /// default, and start-up refuses credentials without TLS unless this
    /// is set.
    pub smtp_insecure_plaintext_auth: bool,
    /// A send that takes longer is abandoned and retried, in milliseconds.
    pub smtp_timeout_ms: u64,
    /// Emails in flight at once per replica (also how many one claim of the
    /// bus takes).
    pub concurrency: usize,
    /// Most recipients of one email (1–100): an account's first contacts,
    /// in the order the account lists them; the rest are not written to.
    /// A bound on what one account's contacts can turn an email into.
    pub max_recipients: usize,
    /// How long a claimed email is held before another replica may take it
    /// over, in seconds; more than twice `smtp_timeout_ms`.
    pub lease_seconds: u64,
    /// Attempts before an email is dead-lettered (a permanent SMTP refusal
    /// dead-letters at once).
    pub max_attempts: u32,
    /// Wait before the second attempt, in milliseconds; doubled for each
    /// further attempt (±20 %), up to `retry_max_ms` — the back-off of the
    /// bus consumer that delivers emails.
    pub retry_initial_ms: u64,
    /// Longest wait between attempts, in milliseconds.
    pub retry_max_ms: u64,
    /// The longest an idle worker waits before looking for due emails
    /// again, in milliseconds (it polls the bus from 20 ms up to this).
    pub poll_interval_ms: u64,
    /// A folder of `<template>.txt` files that replace or add to the
    /// built-in templates ('' = built-ins only).
    pub templates_dir: String,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            transport: EmailTransport::Outbox,
            from: "Customer Success <cs@retain.localhost>".into(),
            outbox_dir: "outbox".into(),
            smtp_host: "localhost".into(),
            smtp_port: 0,
            smtp_tls: SmtpTls::Starttls,
            smtp_username: String::new(),
            smtp_password: String::new(),
            smtp_insecure_plaintext_auth: false,
            smtp_timeout_ms: 10_000,
            concurrency: 8,
            max_recipients: 10,
            lease_seconds: 60,
            max_attempts: 8,
            retry_initial_ms: 30_000,
            retry_max_ms: 3_600_000,
            poll_interval_ms: 500,
            templates_dir: String::new(),
        }
    }
}

impl EmailSettings {
    /// The defaults, writing `.eml` files into `dir`.
    pub fn outbox(dir: impl Into<String>) -> Self {
        Self {
            outbox_dir: dir.into(),
            ..Self::default()
        }
    }

    /// The SMTP port in use.
    pub fn port(&self) -> u16 {
        match (self.smtp_port, self.smtp_tls) {
            (0, SmtpTls::None) => 25,
            (0, SmtpTls::Starttls) => 587,
            (0, SmtpTls::Tls) => 465,
            (p, _) => p,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| {
            Err(ConfigError::invalid(
                format!("notification.email.{key}"),
                reason,
            ))
        };
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            return bad(
                "from",
                "must be an address, optionally named: `Name <a@b.c>`",
            );
        }
        if self.transport == EmailTransport::Outbox && self.outbox_dir.trim().is_empty() {
            return bad(
                "outbox_dir",
                "must name a folder when transport = \"outbox\"",
            );
        }
        if self.transport == EmailTransport::Smtp && self.smtp_host.trim().is_empty() {
            return bad(
                "smtp_host",
                "must name the SMTP server when transport = \"smtp\"",
            );
        }
        if self.smtp_password.is_empty() != self.smtp_username.is_empty() {
            return bad(
                "smtp_password",
                "smtp_username and smtp_password go together (both or neither)",
            );
        }
        if !self.smtp_username.is_empty()
            && self.smtp_tls == SmtpTls::None
            && !self.smtp_insecure_plaintext_auth
        {
            return bad(
                "smtp_tls",
                "is \"none\" while smtp_username is set: the credentials would cross the network \
                 in clear; use \"starttls\" or \"tls\" (or set smtp_insecure_plaintext_auth = true \
                 for a relay on the same host)",
            );
        }
        if !(100..=600_000).contains(&self.smtp_timeout_ms) {
            return bad("smtp_timeout_ms", "must be 100 to 600000");
        }
        if !(1..=256).contains(&self.concurrency) {
            return bad("concurrency", "must be 1 to 256");
        }
        if !(1..=100).contains(&self.max_recipients) {
            return bad("max_recipients", "must be 1 to 100");
        }
        if !(1..=3_600).contains(&self.lease_seconds)
            || self.lease_seconds.saturating_mul(1_000) <= 2 * self.smtp_timeout_ms
        {
            return bad(
                "lease_seconds",
                "must be 1 to 3600 and more than twice smtp_timeout_ms, so a send \
                 ends before another replica may take the email over",
            );
        }
        if !(1..=100).contains(&self.max_attempts) {
            return bad("max_attempts", "must be 1 to 100");
        }
        if !(1..=86_400_000).contains(&self.retry_initial_ms) {
            return bad("retry_initial_ms", "must be 1 to 86400000");
        }
        if self.retry_max_ms < self.retry_initial_ms || self.retry_max_ms > 7 * 86_400_000 {
            return bad(
                "retry_max_ms",
                "must be at least retry_initial_ms and at most a week",
            );
        }
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            return bad("poll_interval_ms", "must be 10 to 60000");
        }
        Ok(())
    }
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            consumer: ConsumerSettings::new(1_000, 4, 30),
            band_consumers: 2,
            signal_consumers: 2,
            sla_sweep_interval_ms: 10_000,
            email: EmailSettings::default(),
        }
    }
}

impl Section for NotificationSettings {
    const KEY: &'static str = "notification";

    fn validate(&self) -> Result<(), ConfigError> {
        self.consumer.validate(Self::KEY)?;
        if !(1..=16).contains(&self.band_consumers) {
            return Err(ConfigError::invalid(
                "notification.band_consumers",
                "must be 1 to 16",
            ));
        }
        if !(1..=16).contains(&self.signal_consumers) {
            return Err(ConfigError::invalid(
                "notification.signal_consumers",
                "must be 1 to 16",
            ));
        }
        if !(10..=3_600_000).contains(&self.sla_sweep_interval_ms) {
            return Err(ConfigError::invalid(
                "notification.sla_sweep_interval_ms",
                "must be 10 to 3600000",
            ));
        }
        self.email.validate()
    }
}

/// The per-tenant keys notification owns (`[tenants.default]`,
/// overridable per tenant like every tenant key).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationTenantKeys {
    /// Task queue → the CSMs (emails) its unowned tasks are assigned to
    /// (none: such tasks stay unassigned). An override replaces the whole
    /// map.
    pub queues: BTreeMap<String, Vec<String>>,
    /// The From of the tenant's emails (`Acme Success <cs@acme.io>`; its
    /// domain ends their Message-IDs); empty: `notification.email.from`.
    pub email_from: String,
    /// The Reply-To of the tenant's emails (where customers' answers go);
    /// empty: none.
    pub email_reply_to: String,
    /// Most emails the tenant sends in one UTC clock hour (0: no hourly
    /// quota). Past it, its emails wait, pending, until the next hour.
    pub email_quota_per_hour: u64,
    /// Most emails the tenant sends in one UTC day (0: no daily quota).
    /// Past it, its emails wait, pending, until the next day.
    pub email_quota_per_day: u64,
}

/// Default hourly email quota of a tenant.
pub const EMAIL_QUOTA_PER_HOUR: u64 = 1_000;
/// Default daily email quota of a tenant.
pub const EMAIL_QUOTA_PER_DAY: u64 = 10_000;
/// Largest quota a tenant may be given.
pub const MAX_EMAIL_QUOTA: u64 = 100_000_000;

impl Default for NotificationTenantKeys {
    fn default() -> Self {
        Self {
            queues: BTreeMap::new(),
            email_from: String::new(),
            email_reply_to: String::new(),
            email_quota_per_hour: EMAIL_QUOTA_PER_HOUR,
            email_quota_per_day: EMAIL_QUOTA_PER_DAY,
        }
    }
}

impl TenantKeys for NotificationTenantKeys {
    const KEYS: &'static [&'static str] = &[
        "queues",
        "email_from",
        "email_reply_to",
        "email_quota_per_hour",
        "email_quota_per_day",
    ];

    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        for (key, value) in [
            ("email_quota_per_hour", self.email_quota_per_hour),
            ("email_quota_per_day", self.email_quota_per_day),
        ] {
            if value > MAX_EMAIL_QUOTA {
                return Err(ConfigError::invalid(
                    format!("{prefix}.{key}"),
                    format!("must be 0 (no quota) to {MAX_EMAIL_QUOTA}"),
                ));
            }
        }
        for (key, value) in [
            ("email_from", &self.email_from),
            ("email_reply_to", &self.email_reply_to),
        ] {
            if !value.is_empty() && value.parse::<lettre::message::Mailbox>().is_err() {
                return Err(ConfigError::invalid(
                    format!("{prefix}.{key}"),
                    format!("{value:?} is not an address (`Name <user@domain>` or `user@domain`)"),
                ));
            }
        }
        for (queue, members) in &self.queues {
            let name_ok = (1..=64).contains(&queue.len())
                && queue.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !name_ok {
                return Err(ConfigError::invalid(
                    format!("{prefix}.queues.{queue}"),
                    "a queue name is 1-64 of a-z, 0-9, _ and -",
                ));
            }
            for (j, m) in members.iter().enumerate() {
                if !retain_domain::validation::is_email(m) {
                    return Err(ConfigError::invalid(
                        format!("{prefix}.queues.{queue}[{j}]"),
                        format!("{m:?} is not an email address"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A tenant's settings as notification reads them: the shared ones and
/// the task queues (`tenant.own.queues`).
pub type Tenant = TenantView<NotificationTenantKeys>;

/// Every tenant's settings as notification reads them.
pub type Tenants = PerTenant<Tenant>;

/// Every tenant's settings as notification reads them, from the parsed
/// `[tenants]`; errors name the key.
pub fn tenants(all: &retain_runtime::Tenants) -> Result<Tenants, ConfigError> {
    all.views()
}

#[cfg(test)]
mod tenant_tests {
    #![allow(clippy::unwrap_used)]

    fn load(text: &str) -> Result<super::Tenants, retain_runtime::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(&path, text).unwrap();
        let s = retain_runtime::Settings::load_from(Some(&path), Vec::new()).unwrap();
        super::tenants(&s.tenants.parse().unwrap())
    }

    #[test]
    fn task_queues_name_their_csms_and_bad_ones_are_refused_naming_the_key() {
        let tenants = load(
            "[tenants.default.queues]\ncsm = [\"ana@vendor.io\", \"bo@vendor.io\"]\n[[tenants.overrides]]\nid = \"acme\"\nqueues = { expansion = [\"cy@vendor.io\"] }\n",
        )
        .unwrap();
        assert_eq!(tenants.of("other").own.queues["csm"].len(), 2);
        assert!(
            !tenants.of("acme").own.queues.contains_key("csm"),
            "an override replaces the queues"
        );
        assert_eq!(tenants.of("acme").own.queues["expansion"], ["cy@vendor.io"]);

        let err = load("[tenants.default.queues]\ncsm = [\"ana\"]\n").unwrap_err();
        assert!(
            err.to_string().contains("tenants.default.queues.csm[0]"),
            "{err}"
        );
        let err = load("[tenants.default.queues]\n\"Big Queue\" = []\n").unwrap_err();
        assert!(
            err.to_string().contains("tenants.default.queues.Big Queue"),
            "{err}"
        );
    }

    #[test]
    fn a_tenants_sender_is_checked_and_falls_back_per_key() {
        let tenants = load(
            "[tenants.default]\nemail_reply_to = \"help@vendor.io\"\n[[tenants.overrides]]\nid = \"acme\"\nemail_from = \"Acme Success <cs@acme.io>\"\n",
        )
        .unwrap();
        assert_eq!(
            tenants.of("acme").own.email_from,
            "Acme Success <cs@acme.io>"
        );
        assert_eq!(tenants.of("acme").own.email_reply_to, "help@vendor.io");
        assert!(tenants.of("other").own.email_from.is_empty());
        let err = load("[[tenants.overrides]]\nid = \"acme\"\nemail_from = \"not an address\"\n")
            .unwrap_err();
        assert!(
            err.to_string().contains("tenants.overrides[0].email_from"),
            "{err}"
        );
    }

    #[test]
    fn email_quotas_default_fall_back_per_key_and_are_bounded() {
        let tenants = load(
            "[tenants.default]\nemail_quota_per_day = 500\n[[tenants.overrides]]\nid = \"acme\"\nemail_quota_per_hour = 0\n",
        )
        .unwrap();
        let other = &tenants.of("other").own;
        assert_eq!(
            (other.email_quota_per_hour, other.email_quota_per_day),
            (super::EMAIL_QUOTA_PER_HOUR, 500)
        );
        let acme = &tenants.of("acme").own;
        assert_eq!(
            (acme.email_quota_per_hour, acme.email_quota_per_day),
            (0, 500)
        );
        // From the environment too (what a load test or a Deployment sets).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(&path, "").unwrap();
        let env = vec![(
            "RETAIN__TENANTS__DEFAULT__EMAIL_QUOTA_PER_HOUR".to_owned(),
            "0".to_owned(),
        )];
        let s = retain_runtime::Settings::load_from(Some(&path), env).unwrap();
        let tenants = super::tenants(&s.tenants.parse().unwrap()).unwrap();
        assert_eq!(tenants.of("acme").own.email_quota_per_hour, 0);
        let err =
            load("[[tenants.overrides]]\nid = \"acme\"\nemail_quota_per_day = 100000000000\n")
                .unwrap_err();
        assert!(
            err.to_string()
                .contains("tenants.overrides[0].email_quota_per_day"),
            "{err}"
        );
    }
}
