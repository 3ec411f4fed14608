//! The numbers an operator watches, exported over OTLP with the traces
//! (only when `telemetry.otlp_endpoint` is set; otherwise the instruments
//! are no-ops):
//!
//! - `retain.rpc.calls` — calls by method (`rpc.method`: a method of the
//!   API, health or reflection; any other path is `unknown`, so random
//!   paths cannot multiply the series) and gRPC status code
//!   (`rpc.grpc.status_code`), counted by [`CallMetricsLayer`] from the
//!   response headers; a stream counts by how it starts;
//! - `retain.bus.messages` — each consumer group's messages by state
//!   (`pending`, `leased`, `dead`: the dead letters), and
//!   `retain.bus.oldest_age_seconds` — the age of its oldest waiting
//!   message, sampled by [`sample_bus`].

use std::task::{Context, Poll};
use std::time::Duration;

use opentelemetry::KeyValue;
use tokio_util::sync::CancellationToken;

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Counts every call by method and status code.
#[derive(Debug, Clone)]
pub struct CallMetricsLayer {
    calls: opentelemetry::metrics::Counter<u64>,
}

impl Default for CallMetricsLayer {
    fn default() -> Self {
        Self {
            calls: opentelemetry::global::meter("retain")
                .u64_counter("retain.rpc.calls")
                .with_description("gRPC calls by method and status code")
                .build(),
        }
    }
}

impl<S> tower::Layer<S> for CallMetricsLayer {
    type Service = CallMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallMetrics {
            inner,
            calls: self.calls.clone(),
        }
    }
}

/// The service [`CallMetricsLayer`] builds.
#[derive(Debug, Clone)]
pub struct CallMetrics<S> {
    inner: S,
    calls: opentelemetry::metrics::Counter<u64>,
}

impl<S, B, R> tower::Service<http::Request<B>> for CallMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_label(req.uri().path());
        let calls = self.calls.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            // An error answers with its status in the headers; a success
            // carries it in the trailers (0).
            let code = res
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            calls.add(
                1,
                &[
                    KeyValue::new("rpc.method", method),
                    KeyValue::new("rpc.grpc.status_code", code),
                ],
            );
            Ok(res)
        })
    }
}

/// The label of a call to `path`: the path itself when it names a method
/// of Retain's API, of `grpc.health.v1` or of server reflection; `unknown`
/// otherwise (the label set stays the size of the API whatever callers
/// send, and it is counted before authentication).
pub fn method_label(path: &str) -> &'static str {
    crate::methods::known(path).unwrap_or("unknown")
}

/// Samples every consumer group's backlog every `every` until `stop`.
pub async fn sample_bus(bus: retain_bus::Bus, every: Duration, stop: CancellationToken) {
    let meter = opentelemetry::global::meter("retain");
    let messages = meter
        .u64_gauge("retain.bus.messages")
        .with_description("Bus messages per topic and consumer group, by state")
        .build();
    let oldest = meter
        .f64_gauge("retain.bus.oldest_age_seconds")
        .with_description("Age of each consumer group's oldest waiting or leased message")
        .build();
    loop {
        match bus.backlog().await {
            Ok(groups) => {
                for b in groups {
                    let at = |state: &'static str| {
                        [
                            KeyValue::new("topic", b.topic.clone()),
                            KeyValue::new("group", b.group.clone()),
                            KeyValue::new("state", state),
                        ]
                    };
                    messages.record(b.stats.pending, &at("pending"));
                    messages.record(b.stats.leased, &at("leased"));
                    messages.record(b.stats.dead, &at("dead"));
                    oldest.record(
                        b.oldest_age.as_secs_f64(),
                        &[
                            KeyValue::new("topic", b.topic.clone()),
                            KeyValue::new("group", b.group.clone()),
                        ],
                    );
                }
            }
            Err(e) => tracing::debug!(error = %e, "sampling the bus backlog failed"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::method_label;

    #[test]
    fn only_methods_of_the_api_health_and_reflection_are_labels() {
        for known in [
            "/retain.v1.IngestionService/IngestSignals",
            "/retain.v1.NotificationService/WatchTasks",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(method_label(known), known);
        }
        for other in [
            "/retain.v1.IngestionService/Nope",
            "/x/y",
            "/",
            "/retain.v1.IngestionService/IngestSignals/extra",
        ] {
            assert_eq!(method_label(other), "unknown", "{other}");
        }
    }
}
