//! Background workers: the tasks a service runs beside its gRPC handlers
//! (ingestion's group-commit writers, a bus consumer, a sweep).
//!
//! A service *declares* its workers when it is built and starts none of
//! them; [`crate::serve`] starts them all under one cancellation token once
//! the server is up, cancels them after the last call has drained, and
//! waits for each to return. Construction is therefore free of side
//! effects (a test can build a service without a runtime spinning), and a
//! process that composes several services (the all-in-one `retain`) stops
//! every worker of every service the same way.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

type Run = Box<dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Workers declared but not started.
#[derive(Default)]
pub struct Workers {
    declared: Vec<(String, Run)>,
}

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.declared.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Workers {
    /// No workers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a worker: `run` is called with the token that tells it to
    /// stop, and must return soon after the token is cancelled (finishing
    /// or handing back its current unit of work, e.g. releasing bus leases).
    pub fn add<F, Fut>(&mut self, name: impl Into<String>, run: F)
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.declared
            .push((name.into(), Box::new(move |token| Box::pin(run(token)))));
    }

    /// Adds every worker of `other`.
    pub fn extend(&mut self, other: Workers) {
        self.declared.extend(other.declared);
    }

    /// Names of the declared workers, in declaration order.
    pub fn names(&self) -> Vec<&str> {
        self.declared.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// How many workers are declared.
    pub fn len(&self) -> usize {
        self.declared.len()
    }

    /// True when no worker is declared.
    pub fn is_empty(&self) -> bool {
        self.declared.is_empty()
    }

    /// Starts every worker under `token`.
    pub(crate) fn start(self, token: &CancellationToken) -> Running {
        let mut set = JoinSet::new();
        for (name, run) in self.declared {
            let fut = run(token.clone());
            set.spawn(async move {
                fut.await;
                name
            });
        }
        Running { set }
    }
}

/// Workers that are running.
#[derive(Debug)]
pub(crate) struct Running {
    set: JoinSet<String>,
}

impl Running {
    /// Waits for the next worker to return; `None` when none is left.
    /// A worker that returns before it was told to stop, or panics, is a
    /// failure the caller reports.
    pub(crate) async fn next(&mut self) -> Option<Result<String, String>> {
        let joined = self.set.join_next().await?;
        Some(joined.map_err(|e| e.to_string()))
    }

    /// Waits for every worker to return.
    pub(crate) async fn wait_all(&mut self) {
        while let Some(done) = self.next().await {
            match done {
                Ok(name) => tracing::debug!(worker = %name, "worker stopped"),
                Err(e) => tracing::error!(error = %e, "worker failed while stopping"),
            }
        }
    }
}
