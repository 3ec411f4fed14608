//! Bearer-token authentication and role checks.
//!
//! Tokens are configured as SHA-256 hashes, each bound to a tenant and
//! roles. [`AuthLayer`] authenticates every call except health checks and
//! reflection (`UNAUTHENTICATED` when the token is missing or unknown) and
//! puts the [`Principal`] into the request extensions; handlers then call
//! [`Principal::require`] (`PERMISSION_DENIED` without the role).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};

use retain_domain::TenantId;
use sha2::{Digest, Sha256};

use serde::Deserialize;

use crate::error::Error;
use crate::section::{ConfigError, Section};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Write signals.
    Ingest,
    /// Read accounts, metrics, health.
    Read,
    /// Change models and policies, rescore.
    Admin,
    /// Work CSM task queues.
    Csm,
}

impl Role {
    /// Parses `ingest`, `read`, `admin` or `csm`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ingest" => Some(Self::Ingest),
            "read" => Some(Self::Read),
            "admin" => Some(Self::Admin),
            "csm" => Some(Self::Csm),
            _ => None,
        }
    }

    /// The role's configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Read => "read",
            Self::Admin => "admin",
            Self::Csm => "csm",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller: a tenant and its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant whose data the caller may touch.
    pub tenant: TenantId,
    /// Granted roles.
    pub roles: Vec<Role>,
    /// The token's configured name, for logs.
    pub name: String,
    /// The person the token belongs to (a CSM's email), when it names one:
    /// a `csm` token that names one claims tasks for that person only.
    pub email: Option<String>,
}

impl Principal {
    /// `Ok` when the caller has `role`; `PERMISSION_DENIED` otherwise.
    pub fn require(&self, role: Role) -> Result<(), Error> {
        if self.roles.contains(&role) {
            Ok(())
        } else {
            Err(Error::PermissionDenied {
                needed: role.as_str(),
            })
        }
    }

    /// The principal the auth layer attached to `request`.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Self, Error> {
        request
            .extensions()
            .get::<Principal>()
            .ok_or(Error::Unauthenticated("no credentials"))
    }
}

/// The hex SHA-256 of a token, as written in the configuration.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Bearer tokens accepted by the service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// One entry per token.
    pub tokens: Vec<TokenSettings>,
    /// A TOML file of `[[tokens]]` entries (same shape) added to `tokens`
    /// at start-up: the token list kept apart from the configuration, as
    /// a mounted Kubernetes Secret.
    pub tokens_file: Option<PathBuf>,
    /// How many of `tokens`, at the end, came from `tokens_file`.
    #[serde(skip)]
    from_file: usize,
}

/// The shape of `auth.tokens_file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<TokenSettings>,
}

impl AuthSettings {
    /// Adds the tokens of `tokens_file`, if set (errors name the file).
    pub fn read_tokens_file(&mut self) -> Result<(), ConfigError> {
        // An empty path is none: `RETAIN__AUTH__TOKENS_FILE=""` turns the
        // file off for a process that needs no token (a schema check).
        let Some(path) = self
            .tokens_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        else {
            return Ok(());
        };
        let bad = |e: String| {
            ConfigError::invalid("auth.tokens_file", format!("{}: {e}", path.display()))
        };
        if !path.is_file() {
            return Err(bad("does not exist".into()));
        }
        let file: TokensFile = config::Config::builder()
            .add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml))
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| bad(e.to_string()))?;
        self.from_file = file.tokens.len();
        self.tokens.extend(file.tokens);
        Ok(())
    }

    /// How errors name token `i`: `auth.tokens[i]`, or its place in the
    /// tokens file.
    fn key(&self, i: usize) -> String {
        let inline = self.tokens.len() - self.from_file;
        match &self.tokens_file {
            Some(path) if i >= inline => {
                format!("auth.tokens_file {} tokens[{}]", path.display(), i - inline)
            }
            _ => format!("auth.tokens[{i}]"),
        }
    }
}

/// One bearer token, stored only as its SHA-256 hash.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// Lower-case hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`).
    pub sha256: String,
    /// Tenant the token acts for.
    pub tenant: String,
    /// Roles: `ingest`, `read`, `admin`, `csm`.
    pub roles: Vec<String>,
    /// Free text naming the holder, for logs.
    #[serde(default)]
    pub name: String,
    /// The holder's email, when the token is one person's (a CSM's): such
    /// a `csm` token claims tasks for that person only.
    #[serde(default)]
    pub email: String,
}

impl Section for AuthSettings {
    const KEY: &'static str = "auth";

    fn validate(&self) -> Result<(), ConfigError> {
        for (i, token) in self.tokens.iter().enumerate() {
            let key = |field: &str| format!("{}.{field}", self.key(i));
            if token.sha256.len() != 64 || !token.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::invalid(
                    key("sha256"),
                    "must be 64 hex digits (the SHA-256 of the token)",
                ));
            }
            // One token, one tenant: a hash listed twice would silently act
            // for whichever entry came last.
            if let Some(j) = self.tokens[..i]
                .iter()
                .position(|t| t.sha256.eq_ignore_ascii_case(&token.sha256))
            {
                return Err(ConfigError::invalid(
                    key("sha256"),
                    format!(
                        "is the same token as {}; each token may be listed once",
                        self.key(j)
                    ),
                ));
            }
            TenantId::parse(token.tenant.clone()).map_err(|e| {
                ConfigError::invalid(key("tenant"), format!("{:?} {e}", token.tenant))
            })?;
            if !token.email.is_empty() && !retain_domain::validation::is_email(&token.email) {
                return Err(ConfigError::invalid(
                    key("email"),
                    format!("{:?} is not an email address", token.email),
                ));
            }
            if token.roles.is_empty() {
                return Err(ConfigError::invalid(
                    key("roles"),
                    "must name at least one role",
                ));
            }
            for (j, role) in token.roles.iter().enumerate() {
                Role::parse(role).ok_or_else(|| {
                    ConfigError::invalid(
                        format!("{}.roles[{j}]", self.key(i)),
                        format!("{role:?} is not a role; use ingest, read, admin or csm"),
                    )
                })?;
            }
        }
        Ok(())
    }
}

/// Known tokens by hash.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    by_hash: HashMap<[u8; 32], Principal>,
}

impl Authenticator {
    /// Builds the token table from validated settings.
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, Error> {
        let mut by_hash = HashMap::new();
        for (i, t) in settings.tokens.iter().enumerate() {
            let bad = |what: String| Error::Internal(format!("auth.tokens[{i}]: {what}"));
            let bytes = hex::decode(&t.sha256).map_err(|e| bad(e.to_string()))?;
            let hash: [u8; 32] = bytes
                .try_into()
                .map_err(|_| bad("sha256 must be 32 bytes".into()))?;
            let tenant = TenantId::parse(t.tenant.clone()).map_err(|e| bad(e.to_string()))?;
            let roles = t
                .roles
                .iter()
                .map(|r| Role::parse(r).ok_or_else(|| bad(format!("unknown role {r:?}"))))
                .collect::<Result<Vec<_>, _>>()?;
            by_hash.insert(
                hash,
                Principal {
                    tenant,
                    roles,
                    name: t.name.clone(),
                    email: Some(t.email.clone()).filter(|e| !e.is_empty()),
                },
            );
        }
        Ok(Self { by_hash })
    }

    /// Adds a token (given in clear, stored hashed); for the embedded
    /// server's generated dev token and tests.
    pub fn insert(&mut self, token: &str, principal: Principal) {
        self.by_hash
            .insert(Sha256::digest(token.as_bytes()).into(), principal);
    }

    /// The principal for an `authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, Error> {
        let header = header.ok_or(Error::Unauthenticated("missing authorization metadata"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(Error::Unauthenticated(
                "authorization must be `Bearer <token>`",
            ))?
            .trim();
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_hash
            .get(&hash)
            .cloned()
            .ok_or(Error::Unauthenticated("unknown token"))
    }
}

/// Paths served without authentication: health probes and reflection.
fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

/// Tower layer that authenticates every non-public gRPC call.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    /// A layer checking tokens against `auth`.
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service [`AuthLayer`] builds.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        futures::future::Either<S::Future, std::future::Ready<Result<Self::Response, Self::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if is_public(req.uri().path()) {
            return futures::future::Either::Left(self.inner.call(req));
        }
        let header = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match self.auth.authenticate(header) {
            Ok(principal) => {
                tracing::Span::current().record("tenant", principal.tenant.as_str());
                req.extensions_mut().insert(principal);
                futures::future::Either::Left(self.inner.call(req))
            }
            Err(e) => {
                let status: tonic::Status = e.into();
                futures::future::Either::Right(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_listed_twice_is_refused() {
        let entry = |tenant: &str| TokenSettings {
            sha256: token_hash("shared").to_uppercase(),
            tenant: tenant.into(),
            roles: vec!["read".into()],
            name: String::new(),
            email: String::new(),
        };
        let mut settings = AuthSettings {
            tokens: vec![entry("tenant-a"), entry("tenant-b")],
            ..Default::default()
        };
        settings.tokens[0].sha256 = token_hash("shared");
        let err = settings.validate().expect_err("the same token twice");
        assert!(err.to_string().contains("auth.tokens[1].sha256"), "{err}");
        assert!(err.to_string().contains("auth.tokens[0]"), "{err}");
    }

    #[test]
    fn a_token_may_name_its_holders_email_and_a_bad_one_is_refused() {
        let mut settings = AuthSettings {
            tokens: vec![TokenSettings {
                sha256: token_hash("ana"),
                tenant: "acme".into(),
                roles: vec!["csm".into()],
                name: "Ana".into(),
                email: "ana@vendor.io".into(),
            }],
            ..Default::default()
        };
        settings.validate().expect("valid");
        let auth = Authenticator::from_settings(&settings).expect("builds");
        let ana = auth.by_hash.values().next().expect("one token");
        assert_eq!(ana.email.as_deref(), Some("ana@vendor.io"));
        settings.tokens[0].email = "ana".into();
        let err = settings.validate().expect_err("not an email");
        assert!(err.to_string().contains("auth.tokens[0].email"), "{err}");
    }

    #[test]
    fn tokens_authenticate_by_hash() {
        let settings = AuthSettings {
            tokens: vec![TokenSettings {
                sha256: token_hash("s3cret"),
                tenant: "acme".into(),
                roles: vec!["read".into()],
                name: "dashboards".into(),
                email: String::new(),
            }],
            ..Default::default()
        };
        let auth = Authenticator::from_settings(&settings).expect("valid");
        let p = auth.authenticate(Some("Bearer s3cret")).expect("known");
        assert_eq!(p.tenant.as_str(), "acme");
        assert!(p.require(Role::Read).is_ok());
        assert!(matches!(
            p.require(Role::Ingest),
            Err(Error::PermissionDenied { needed: "ingest" })
        ));
        assert!(matches!(
            auth.authenticate(Some("Bearer nope")),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            auth.authenticate(Some("s3cret")),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            auth.authenticate(None),
            Err(Error::Unauthenticated(_))
        ));
    }
}
