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
    /// caller's mistake.
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
                let mut details = ErrorDetails::new();
                for v in violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            Error::ResourceExhausted { retry_after, .. } => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                ErrorDetails::with_retry_info(Some(*retry_after)),
            ),
            Error::Internal(_) => {
                tracing::error!(error = %message, "internal error");
                Status::new(Code::Internal, message)
            }
            other => Status::new(other.code(), message),
        }
    }
}

impl From<retain_domain::Violations> for Error {
    fn from(v: retain_domain::Violations) -> Self {
        Self::InvalidArgument(v.0)
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(err: sea_orm::DbErr) -> Self {
        use sea_orm::DbErr;
        match err {
            DbErr::ConnectionAcquire(e) => Self::Unavailable(format!("database unavailable: {e}")),
            DbErr::Conn(e) => Self::Unavailable(format!("database unavailable: {e}")),
            other => Self::Internal(format!("database: {other}")),
        }
    }
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
