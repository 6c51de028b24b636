//! The controller's client refuses to write while this process does not
//! lead: one check in front of every request (apply, prune, status,
//! Events), on the monotonic clock, so writing stops the moment
//! leadership lapses, whatever the controller is in the middle of.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request};
use tower::{Layer, Service};

use super::Leadership;

#[derive(Clone)]
pub struct WriteGate {
    leadership: Arc<Leadership>,
}

impl WriteGate {
    pub fn new(leadership: Arc<Leadership>) -> Self {
        Self { leadership }
    }
}

impl<S> Layer<S> for WriteGate {
    type Service = Gated<S>;

    fn layer(&self, inner: S) -> Gated<S> {
        Gated {
            inner,
            leadership: self.leadership.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Gated<S> {
    inner: S,
    leadership: Arc<Leadership>,
}

#[derive(Debug, thiserror::Error)]
#[error("not the leader: {method} refused")]
pub struct NotLeader {
    method: Method,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> Service<Request<B>> for Gated<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let reads = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        if !reads && !self.leadership.is_leader() {
            let method = request.method().clone();
            return Box::pin(async move { Err(Box::new(NotLeader { method }) as BoxError) });
        }
        let future = self.inner.call(request);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}
