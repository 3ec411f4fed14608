//! Limits on the streams a tenant holds open on one replica.
//!
//! A stream (`WatchTasks`, `WatchBandChanges`, `StreamSignals`) holds a
//! place for as long as it is open, so streams do not take places among
//! the server's `concurrency_limit` (those are for calls that end): they
//! have their own, `server.max_streams` on the replica and
//! `server.max_streams_per_tenant` for each tenant. A stream beyond either
//! is answered `RESOURCE_EXHAUSTED` at once, naming the setting, and one
//! tenant's idle watchers never leave another tenant without a place.
//!
//! With `server.max_connection_age_ms` set, a stream also ends after that
//! age plus `server.stream_age_grace_ms` with `UNAVAILABLE` (the client
//! reconnects, to any replica, from its last cursor): the connection's
//! GOAWAY alone would let an open stream live on for ever.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::auth::Principal;
use crate::error::Error;

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// What [`StreamLimitLayer`] enforces.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Open streams on the replica, all tenants together.
    pub total: usize,
    /// Open streams of one tenant.
    pub per_tenant: usize,
    /// How long a stream may stay open (`None`: for ever).
    pub max_age: Option<Duration>,
}

/// Counts and limits tenants' open streams; calls that are not streams
/// pass untouched. Sits after authentication (it reads the tenant).
#[derive(Debug, Clone)]
pub struct StreamLimitLayer {
    limits: StreamLimits,
    open: Arc<Mutex<Open>>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_tenant: HashMap<String, usize>,
}

impl StreamLimitLayer {
    /// A layer enforcing `limits`.
    pub fn new(limits: StreamLimits) -> Self {
        Self {
            limits,
            open: Arc::default(),
        }
    }
}

impl<S> tower::Layer<S> for StreamLimitLayer {
    type Service = StreamLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StreamLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`StreamLimitLayer`] builds.
#[derive(Debug, Clone)]
pub struct StreamLimit<S> {
    inner: S,
    layer: StreamLimitLayer,
}

/// A tenant's place among the open streams, given back when dropped.
struct Place {
    open: Arc<Mutex<Open>>,
    tenant: String,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_tenant.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_tenant.remove(&self.tenant);
            }
        }
    }
}

impl StreamLimitLayer {
    /// A place for one more stream of `tenant`, or the error naming the
    /// limit it would pass.
    fn admit(&self, tenant: &str) -> Result<Place, Error> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let exhausted = |message: String| Error::ResourceExhausted {
            message,
            retry_after: Duration::from_secs(1),
        };
        if open.total >= self.limits.total {
            return Err(exhausted(format!(
                "this replica holds its most open streams ({}, server.max_streams); retry with \
                 backoff, or on another replica",
                self.limits.total
            )));
        }
        let mine = open.by_tenant.get(tenant).copied().unwrap_or(0);
        if mine >= self.limits.per_tenant {
            return Err(exhausted(format!(
                "your tenant holds {mine} open streams on this replica, its most \
                 (server.max_streams_per_tenant); close one before opening another"
            )));
        }
        open.total += 1;
        *open.by_tenant.entry(tenant.to_owned()).or_default() += 1;
        Ok(Place {
            open: self.open.clone(),
            tenant: tenant.to_owned(),
        })
    }

    #[cfg(test)]
    fn open_of(&self, tenant: &str) -> usize {
        let open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.by_tenant.get(tenant).copied().unwrap_or(0)
    }
}

impl<S, B> tower::Service<http::Request<B>> for StreamLimit<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
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
        // Calls that end pass first, without a look at their tenant.
        let tenant = crate::methods::is_tenant_stream(req.uri().path())
            .then(|| req.extensions().get::<Principal>())
            .flatten()
            .map(|p| p.tenant.as_str().to_owned());
        let Some(tenant) = tenant else {
            return Box::pin(self.inner.call(req));
        };
        let place = match self.layer.admit(&tenant) {
            Ok(place) => place,
            Err(e) => {
                let status: tonic::Status = e.into();
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        };
        let max_age = self.layer.limits.max_age;
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            Ok(res.map(|inner| {
                tonic::body::Body::new(Held {
                    inner,
                    _place: place,
                    end_at: max_age.map(|age| Box::pin(tokio::time::sleep(age))),
                    ended: false,
                })
            }))
        })
    }
}

/// A stream's body holding its place, ended with `UNAVAILABLE` once it
/// reaches its age.
struct Held {
    inner: tonic::body::Body,
    _place: Place,
    end_at: Option<Pin<Box<tokio::time::Sleep>>>,
    ended: bool,
}

/// The message an aged stream ends with.
pub const AGED: &str = "the stream reached its maximum age (server.max_connection_age_ms); \
                        reconnect, to any replica, with the last cursor you received";

impl http_body::Body for Held {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if let Some(end) = this.end_at.as_mut()
            && end.as_mut().poll(cx).is_ready()
        {
            this.ended = true;
            // UNAVAILABLE (14); the message is printable ASCII without a
            // '%', so it needs no percent-encoding.
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("14"));
            trailers.insert("grpc-message", http::HeaderValue::from_static(AGED));
            return Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))));
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_per_tenant_and_in_all_and_given_back() {
        let layer = StreamLimitLayer::new(StreamLimits {
            total: 3,
            per_tenant: 2,
            max_age: None,
        });
        let a1 = layer.admit("a").expect("first");
        let _a2 = layer.admit("a").expect("second");
        let err = layer.admit("a").err().expect("a third of one tenant");
        assert!(err.to_string().contains("max_streams_per_tenant"), "{err}");
        let _b1 = layer.admit("b").expect("another tenant has its own");
        let err = layer.admit("c").err().expect("the replica is full");
        assert!(err.to_string().contains("server.max_streams"), "{err}");
        drop(a1);
        assert_eq!(layer.open_of("a"), 1);
        layer.admit("c").expect("a place given back is free again");
    }
}
