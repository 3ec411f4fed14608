//! One error type for every service, mapped to `tonic::Status` with the
//! richer error model (`tonic-types`): bad input carries
//! `google.rpc.BadRequest` field violations, overload carries `RetryInfo`.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// One invalid field: its path (`signals[3].survey.score`) and the reason.
/// The domain's type, so a violation found by domain validation reaches
/// the caller without being copied into another type.
pub use retain_domain::Violation as FieldViolation;

/// Every way a Retain call can fail, by who must act. Cloning keeps the
/// code: the calls sharing one failed transaction each get the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The caller sent bad input (`INVALID_ARGUMENT`).
    #[error("invalid request: {}", summary(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The thing asked for does not exist for this tenant (`NOT_FOUND`).
    #[error("{0} not found")]
    NotFound(String),
    /// The request is valid but the state forbids it (`FAILED_PRECONDITION`).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Over a limit; retry later (`RESOURCE_EXHAUSTED`).
    #[error("{message}")]
    ResourceExhausted {
        /// What limit.
        message: String,
        /// When to retry.
        retry_after: Duration,
    },
    /// A dependency is down; retry (`UNAVAILABLE`).
    #[error("{0}")]
    Unavailable(String),
    /// No or unknown credentials (`UNAUTHENTICATED`).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The token lacks a role (`PERMISSION_DENIED`).
    #[error("this call needs the `{needed}` role")]
    PermissionDenied {
        /// The role needed.
        needed: &'static str,
    },
    /// A bug or broken invariant on our side (`INTERNAL`). Never for a
    /// caller's mistake. The text is for the log only: the caller gets a
    /// correlation id that finds it there.
    #[error("internal error: {0}")]
    Internal(String),
}

fn summary(v: &[FieldViolation]) -> String {
    let mut parts: Vec<String> = v
        .iter()
        .take(3)
        .map(|f| format!("{}: {}", f.field, f.description))
        .collect();
    if v.len() > 3 {
        parts.push(format!("and {} more", v.len() - 3));
    }
    parts.join("; ")
}

impl Error {
    /// `INVALID_ARGUMENT` for one field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// The gRPC code this error maps to.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::ResourceExhausted { .. } => Code::ResourceExhausted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied { .. } => Code::PermissionDenied,
            Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match &err {
            Error::InvalidArgument(violations) => {
                // What a status carries travels in HTTP/2 headers, which
                // clients cap at 8–16 KiB: the first violations that fit
                // a budget, and a last one counting the rest.
                let mut details = ErrorDetails::new();
                let mut used = 0;
                for (i, v) in violations.iter().enumerate() {
                    let (field, description) = (
                        cut(v.field.clone(), MAX_PART_BYTES),
                        cut(v.description.clone(), MAX_PART_BYTES),
                    );
                    used += field.len() + description.len() + 8;
                    if i == MAX_DETAILED_VIOLATIONS || used > MAX_DETAILS_BYTES {
                        details.add_bad_request_violation(
                            "",
                            format!("and {} more violations not listed", violations.len() - i),
                        );
                        break;
                    }
                    details.add_bad_request_violation(field, description);
                }
                Status::with_error_details(Code::InvalidArgument, bounded(message), details)
            }
            Error::ResourceExhausted { retry_after, .. } => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                ErrorDetails::with_retry_info(Some(*retry_after)),
            ),
            Error::Internal(detail) => {
                // Internal details (SQL, driver errors) go to the log, never
                // to the caller, who gets the id that finds them there.
                let id = correlation_id();
                tracing::error!(correlation_id = %id, error = %detail, "internal error");
                Status::new(
                    Code::Internal,
                    format!(
                        "internal error (correlation id {id}); nothing was stored, the call may be retried"
                    ),
                )
            }
            other => Status::new(other.code(), bounded(message)),
        }
    }
}

/// Most violations one `INVALID_ARGUMENT` lists in its details.
pub const MAX_DETAILED_VIOLATIONS: usize = 50;
/// Most bytes of field paths and descriptions those details carry: with
/// base64 and the message, a status stays well under the 8 KiB of headers
/// the strictest gRPC clients accept.
const MAX_DETAILS_BYTES: usize = 3_072;
/// Longest field path or description in the details, bytes.
const MAX_PART_BYTES: usize = 256;
/// Longest status message, bytes (percent-encoding may triple it).
const MAX_MESSAGE_BYTES: usize = 512;

/// `message` cut to [`MAX_MESSAGE_BYTES`].
fn bounded(message: String) -> String {
    cut(message, MAX_MESSAGE_BYTES)
}

/// `text` cut to at most `max` bytes at a character boundary, with `…`
/// where it was cut.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max - '…'.len_utf8();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl From<retain_domain::Violations> for Error {
    fn from(v: retain_domain::Violations) -> Self {
        Self::InvalidArgument(v.0)
    }
}

/// A database that cannot be reached, or a connection lost under a
/// statement, is `UNAVAILABLE` (the client retries with backoff); any other
/// database error is ours (`INTERNAL`).
impl From<sea_orm::DbErr> for Error {
    fn from(err: sea_orm::DbErr) -> Self {
        if connection_lost(&err) {
            tracing::warn!(error = %err, "database unavailable");
            return Self::Unavailable("the database is unavailable; retry with backoff".into());
        }
        Self::Internal(format!("database: {err}"))
    }
}

/// Whether `err` says the database could not be reached or the connection
/// went away: no connection to be had (refused, pool timed out or closed),
/// the socket failing under a statement (reset, EOF, TLS), a broken
/// protocol exchange, PostgreSQL's connection-exception class (`08…`) and
/// shutdown codes (`57P01`–`57P03`), or SQLite busy or locked past its
/// timeout.
fn connection_lost(err: &sea_orm::DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{DbErr, RuntimeErr};
    let runtime = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(r) | DbErr::Query(r) => r,
        _ => return false,
    };
    let RuntimeErr::SqlxError(e) = runtime else {
        return false;
    };
    match e.as_ref() {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::Protocol(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed => true,
        Sqlx::Database(d) => d.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "5" | "6")
        }),
        _ => false,
    }
}

/// A bus failure keeps its meaning: a lost database connection is
/// `UNAVAILABLE` (retry) wherever it happens, like any database error;
/// anything else is ours (`INTERNAL`).
impl From<retain_bus::BusError> for Error {
    fn from(err: retain_bus::BusError) -> Self {
        match err {
            retain_bus::BusError::Db(db) => Self::from(db),
            other => Self::Internal(format!("bus: {other}")),
        }
    }
}

/// A short random id that ties a caller's error to the log line with its
/// details.
fn correlation_id() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_field_violations() {
        let status: Status = Error::InvalidArgument(vec![
            FieldViolation::new("signals[3].survey.score", "11 is outside 0-10"),
            FieldViolation::new("signals[4].event_id", "must not be empty"),
        ])
        .into();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("signals[3].survey.score"));
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request details");
        assert_eq!(bad.field_violations.len(), 2);
        assert_eq!(bad.field_violations[0].field, "signals[3].survey.score");
    }

    /// Every header a status becomes, in bytes (names and values).
    fn header_bytes(status: &Status) -> usize {
        let mut headers = http::HeaderMap::new();
        status.add_header(&mut headers).expect("headers");
        headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum()
    }

    #[test]
    fn any_number_of_violations_fits_the_headers_a_client_accepts() {
        for (n, description) in [
            (1_000, "x".repeat(40)),
            (100_000, "é".repeat(500)),
            (3, "y".repeat(100_000)),
        ] {
            let violations: Vec<FieldViolation> = (0..n)
                .map(|i| {
                    FieldViolation::new(
                        format!("policy.rules[{i}].task.title"),
                        description.clone(),
                    )
                })
                .collect();
            let status: Status = Error::InvalidArgument(violations).into();
            assert_eq!(status.code(), Code::InvalidArgument);
            assert!(
                header_bytes(&status) < 8 * 1024,
                "{n}: {} bytes",
                header_bytes(&status)
            );
            let bad = status
                .get_error_details()
                .bad_request()
                .cloned()
                .expect("details");
            assert!(bad.field_violations[0].field.starts_with("policy.rules[0]"));
            if n > MAX_DETAILED_VIOLATIONS {
                let last = bad.field_violations.last().expect("a count");
                assert!(
                    last.description.contains("more violations not listed"),
                    "{last:?}"
                );
            }
        }
    }

    #[test]
    fn internal_errors_show_a_correlation_id_and_no_details() {
        let err: Error = sea_orm::DbErr::Custom(
            "invalid byte sequence for encoding \"UTF8\": 0x00 in INSERT INTO signals".into(),
        )
        .into();
        let status: Status = err.clone().into();
        assert_eq!(status.code(), Code::Internal);
        let m = status.message();
        assert!(m.contains("correlation id "), "{m}");
        assert!(
            !m.contains("UTF8") && !m.contains("INSERT") && !m.contains("database"),
            "{m}"
        );
        assert_eq!(m.matches("internal error").count(), 1, "{m}");
        // Each failure gets its own id.
        let again: Status = err.into();
        assert_ne!(again.message(), m);
    }

    #[test]
    fn a_lost_database_is_unavailable_without_driver_details() {
        let err: Error = sea_orm::DbErr::Conn(sea_orm::RuntimeErr::Internal(
            "connection to 10.0.0.7:5432 refused".into(),
        ))
        .into();
        let status: Status = err.into();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            !status.message().contains("10.0.0.7"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn a_connection_lost_under_a_statement_is_unavailable_and_other_errors_internal() {
        use sea_orm::sqlx::Error as Sqlx;
        use sea_orm::{DbErr, RuntimeErr};
        use std::sync::Arc;
        let under = |e: Sqlx| DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)));
        let eof = std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "expected to read 5 bytes, got 0 bytes at EOF",
        );
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        for lost in [
            under(Sqlx::Io(eof)),
            DbErr::Exec(RuntimeErr::SqlxError(Arc::new(Sqlx::Io(reset)))),
            under(Sqlx::PoolTimedOut),
            under(Sqlx::PoolClosed),
            under(Sqlx::Protocol("unexpected message".into())),
        ] {
            let status: Status = Error::from(lost).into();
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        }
        for ours in [
            under(Sqlx::RowNotFound),
            under(Sqlx::ColumnNotFound("x".into())),
            DbErr::Custom("syntax".into()),
        ] {
            let status: Status = Error::from(ours).into();
            assert_eq!(status.code(), Code::Internal, "{status:?}");
        }
    }

    #[test]
    fn a_lost_connection_in_the_bus_is_unavailable() {
        use sea_orm::{DbErr, RuntimeErr};
        let lost = retain_bus::BusError::Db(DbErr::Conn(RuntimeErr::Internal("reset".into())));
        let e = Error::from(lost);
        assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
        let other = Error::from(retain_bus::BusError::InvalidName("a b".into()));
        assert!(matches!(other, Error::Internal(_)), "{other:?}");
    }

    #[test]
    fn overload_carries_retry_info() {
        let status: Status = Error::ResourceExhausted {
            message: "tenant rate limit".into(),
            retry_after: Duration::from_millis(250),
        }
        .into();
        assert_eq!(status.code(), Code::ResourceExhausted);
        let retry = status
            .get_error_details()
            .retry_info()
            .cloned()
            .expect("retry info");
        assert_eq!(retry.retry_delay, Some(Duration::from_millis(250)));
    }
}
