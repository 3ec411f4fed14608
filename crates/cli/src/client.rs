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
            // The data folder's dev token acts for every role: it goes only
            // to a server on this machine.
            None if !is_loopback(endpoint) => anyhow::bail!(
                "no token for {endpoint}: the data folder's dev token is only sent to a server \
                 on this machine; pass --token or set RETAIN_TOKEN"
            ),
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

/// Whether `endpoint` (`http://host:port`) names this machine: `localhost`
/// or a loopback address.
fn is_loopback(endpoint: &str) -> bool {
    let Ok(uri) = endpoint.parse::<tonic::transport::Uri>() else {
        return false;
    };
    match uri.host() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn only_this_machine_is_loopback() {
        for yes in [
            "http://127.0.0.1:50051",
            "http://localhost:1",
            "http://[::1]:50051",
            "http://127.0.0.2:9",
        ] {
            assert!(super::is_loopback(yes), "{yes}");
        }
        for no in [
            "http://retain.example.com:50051",
            "http://10.0.0.7:50051",
            "not a url",
            "http://[::2]:1",
        ] {
            assert!(!super::is_loopback(no), "{no}");
        }
    }

    #[tokio::test]
    async fn the_dev_token_is_not_sent_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dev-token"), "a".repeat(64)).unwrap();
        let err = super::Remote::connect("http://retain.example.com:50051", None, dir.path())
            .await
            .err()
            .expect("refused before connecting");
        assert!(err.to_string().contains("--token"), "{err}");
    }
}
