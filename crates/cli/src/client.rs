//! The client commands' connection to a running Retain (`retain serve`,
//! `retain demo`, or the separate services behind one address): the
//! endpoint, the bearer token, and errors that say what to do next.

use std::path::Path;

use anyhow::Context as _;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// A connected client.
pub struct Remote {
    /// The channel, for any service's client.
    pub channel: Channel,
    token: String,
    endpoint: String,
}

impl Remote {
    /// Connects to `endpoint` with `token`, or else the data folder's dev
    /// token (what `retain serve` created).
    pub async fn connect(
        endpoint: &str,
        token: Option<String>,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        let token = match token.filter(|t| !t.is_empty()) {
            Some(t) => t,
            None => std::fs::read_to_string(data_dir.join("dev-token"))
                .map(|t| t.trim().to_owned())
                .map_err(|_| {
                    anyhow::anyhow!(
                        "no token: pass --token or set RETAIN_TOKEN (`retain serve` prints a dev \
                         token and keeps it in {})",
                        data_dir.join("dev-token").display()
                    )
                })?,
        };
        let channel = Channel::from_shared(endpoint.to_owned())
            .with_context(|| format!("--endpoint {endpoint:?} is not a URL (http://host:port)"))?
            .connect()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach Retain at {endpoint} ({e}). Is it running? Start it with \
                     `retain serve` (or `retain demo`), or pass --endpoint"
                )
            })?;
        Ok(Self {
            channel,
            token,
            endpoint: endpoint.to_owned(),
        })
    }

    /// `message` with the bearer token.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(value) = format!("Bearer {}", self.token).parse() {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// A failed call in words, with what to do about it.
    pub fn failed(&self, call: &str, status: Status) -> anyhow::Error {
        let hint = match status.code() {
            Code::Unauthenticated => {
                " — the token was refused: check --token or RETAIN_TOKEN".to_owned()
            }
            Code::PermissionDenied => " — the token lacks the role this needs".to_owned(),
            Code::Unavailable => format!(" — is Retain still running at {}?", self.endpoint),
            _ => String::new(),
        };
        anyhow::anyhow!("{call}: {}{hint}", status.message())
    }
}
