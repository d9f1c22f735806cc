//! Taking over a hyper (or axum) HTTP request as a WebSocket, so one port
//! serves both.
//!
//! [`upgrade`] validates the request with `ws-proto`, builds the
//! `101 Switching Protocols` response for the HTTP server to send, and
//! returns a [`PendingUpgrade`] that resolves to the [`WebSocket`] once hyper
//! hands over the connection. Rejections carry the status and headers the
//! client must see ([`rejection`]).
//!
//! ```no_run
//! use http_body_util::Full;
//! use bytes::Bytes;
//! # async fn handle(mut req: http::Request<hyper::body::Incoming>, acceptor: ws::Acceptor)
//! #     -> http::Response<Full<Bytes>> {
//! match ws::upgrade(&mut req, &acceptor) {
//!     Ok((response, pending)) => {
//!         tokio::spawn(async move {
//!             let mut socket = pending.await?;
//!             while let Some(Ok(m)) = socket.recv().await {
//!                 if m.is_data() { socket.send(m).await?; }
//!             }
//!             Ok::<_, ws::Error>(())
//!         });
//!         response
//!     }
//!     Err(e) => ws::upgrade::rejection(&e),
//! }
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use ws_proto::handshake::{self, HandshakeError};
use ws_proto::Connection;

use crate::{Acceptor, Error, WebSocket, WebSocketConfig};

/// The connection type produced by a hyper upgrade.
pub type UpgradedSocket = WebSocket<TokioIo<Upgraded>>;

/// Validates `req` as a WebSocket upgrade. On success returns the `101`
/// response to send and a future resolving to the socket.
pub fn upgrade<B, R: Default>(
    req: &mut Request<B>,
    acceptor: &Acceptor,
) -> Result<(Response<R>, PendingUpgrade), HandshakeError> {
    let settings = acceptor.inner();
    let headers = req
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()));
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let request = handshake::validate_upgrade(
        req.method().as_str(),
        req.version() >= http::Version::HTTP_11,
        path,
        headers,
    )?;
    let accepted = handshake::accept(&request, &settings.options)?;
    let on_upgrade = req.extensions_mut().remove::<OnUpgrade>().ok_or_else(|| {
        HandshakeError::Malformed("the HTTP server cannot upgrade this connection".into())
    })?;

    let mut response = Response::new(R::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    let mut insert = |name: &str, value: &str| {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            h.append(name, value);
        }
    };
    insert("sec-websocket-accept", &accepted.accept_key);
    if let Some(protocol) = &accepted.protocol {
        insert("sec-websocket-protocol", protocol);
    }
    if let Some(extensions) = &accepted.extensions {
        insert("sec-websocket-extensions", extensions);
    }
    for (name, value) in &settings.options.extra_headers {
        insert(name, value);
    }
    let pending = PendingUpgrade {
        on_upgrade,
        proto: Some(settings.connection(&accepted)),
        config: settings.config.clone(),
    };
    Ok((response, pending))
}

/// The response for a refused upgrade: its status, the headers RFC 6455
/// asks for (426 carries `Sec-WebSocket-Version: 13`) and a one-line body.
pub fn rejection<R: From<String>>(err: &HandshakeError) -> Response<R> {
    let mut response = Response::new(R::from(format!("{err}\n")));
    *response.status_mut() = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    match err {
        HandshakeError::UnsupportedVersion { .. } => {
            h.insert("sec-websocket-version", HeaderValue::from_static("13"));
        }
        HandshakeError::MethodNotAllowed { .. } => {
            h.insert(header::ALLOW, HeaderValue::from_static("GET"));
        }
        _ => {}
    }
    response
}

/// Resolves to the WebSocket once hyper has sent the 101 and handed over the
/// connection.
pub struct PendingUpgrade {
    on_upgrade: OnUpgrade,
    proto: Option<Connection>,
    config: WebSocketConfig,
}

impl std::fmt::Debug for PendingUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingUpgrade").finish_non_exhaustive()
    }
}

impl Future for PendingUpgrade {
    type Output = Result<UpgradedSocket, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let upgraded = ready!(Pin::new(&mut self.on_upgrade).poll(cx))
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let proto = self
            .proto
            .take()
            .ok_or(Error::Io(std::io::ErrorKind::Other.into()))?;
        Poll::Ready(Ok(WebSocket::from_parts(
            TokioIo::new(upgraded),
            proto,
            BytesMut::new(),
            &self.config,
        )))
    }
}
