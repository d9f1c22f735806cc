//! tower integration: the engine as a `Service`, and a `Layer` that serves
//! Engine.IO (or Socket.IO) under its path prefix in front of any other
//! service, e.g. an axum `Router` or a hyper app.
//!
//! Responses of the layered service carry either body, so the inner
//! service keeps its own body type. WebSocket upgrades need the HTTP server
//! to run with hyper's upgrades enabled (axum's `serve` does).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Either;
use hyper::body::Body;

use crate::engine::ResponseBody;
use crate::{Engine, Handler};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<H, B> tower_service::Service<Request<B>> for Engine<H>
where
    H: Handler,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let engine = self.clone();
        Box::pin(async move { Ok(engine.handle(req).await) })
    }
}

/// Serves the engine under its path prefix, everything else by the inner
/// service.
///
/// ```
/// use engineio::{Engine, EngineConfig, EngineLayer};
/// # struct Nop;
/// # impl engineio::Handler for Nop {
/// #     fn on_open(&self, _: &engineio::Socket) {}
/// #     fn on_message(&self, _: &engineio::Socket, _: ws::Utf8Bytes) {}
/// #     fn on_binary(&self, _: &engineio::Socket, _: bytes::Bytes) {}
/// #     fn on_close(&self, _: &engineio::Socket, _: engineio::CloseReason) {}
/// # }
/// let layer = EngineLayer::new(Engine::new(EngineConfig::default(), Nop));
/// // axum: Router::new().route(...).layer(layer)
/// # let _ = layer;
/// ```
pub struct EngineLayer<H> {
    engine: Engine<H>,
}

impl<H> Clone for EngineLayer<H> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine.clone(),
        }
    }
}

impl<H> EngineLayer<H> {
    /// A layer serving `engine`.
    pub fn new(engine: Engine<H>) -> Self {
        Self { engine }
    }
}

impl<S, H> tower_layer::Layer<S> for EngineLayer<H> {
    type Service = EngineService<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        EngineService {
            inner,
            engine: self.engine.clone(),
        }
    }
}

/// The service [`EngineLayer`] makes.
pub struct EngineService<S, H> {
    inner: S,
    engine: Engine<H>,
}

impl<S: Clone, H> Clone for EngineService<S, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            engine: self.engine.clone(),
        }
    }
}

impl<S, H, B, ResBody> tower_service::Service<Request<B>> for EngineService<S, H>
where
    H: Handler,
    S: tower_service::Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Either<ResponseBody, ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.engine.matches(req.uri().path()) {
            let engine = self.engine.clone();
            Box::pin(async move { Ok(engine.handle(req).await.map(Either::Left)) })
        } else {
            let fut = self.inner.call(req);
            Box::pin(async move { fut.await.map(|r| r.map(Either::Right)) })
        }
    }
}
