//! Server side of the opening handshake over a raw stream.
//!
//! [`Acceptor`] reads the HTTP/1.1 upgrade request from any
//! `AsyncRead + AsyncWrite`, lets `ws-proto` validate and answer it, writes
//! the response (a 101, or the rejection with its status) and hands back a
//! [`WebSocket`]. Serving the upgrade from an existing HTTP server is
//! [`crate::upgrade`]'s job.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ws_proto::deflate::DeflateConfig;
use ws_proto::handshake::{self, AcceptOptions, Accepted, RequestLimits, UpgradeRequest};
use ws_proto::{Connection, Role};

use crate::{Error, WebSocket, WebSocketConfig};

/// Accepts WebSocket connections with shared settings; cheap to clone.
///
/// ```
/// use ws::{Acceptor, DeflateConfig, WebSocketConfig};
/// let acceptor = Acceptor::new()
///     .deflate(DeflateConfig::default())
///     .protocols(["chat"])
///     .origin_check(|origin| origin.is_none_or(|o| o == "https://example.com"))
///     .config(WebSocketConfig::default().max_message_size(1 << 20));
/// # let _ = acceptor;
/// ```
#[derive(Clone, Default)]
pub struct Acceptor {
    inner: Arc<Settings>,
}

#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) options: AcceptOptions,
    pub(crate) limits: RequestLimits,
    pub(crate) config: WebSocketConfig,
    pub(crate) handshake_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            options: AcceptOptions::default(),
            limits: RequestLimits::default(),
            config: WebSocketConfig::default(),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("options", &self.inner.options)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Acceptor {
    /// An acceptor with default settings: no compression, no subprotocols,
    /// any origin, 10 s handshake timeout.
    pub fn new() -> Self {
        Self::default()
    }

    fn settings(&mut self) -> &mut Settings {
        Arc::make_mut(&mut self.inner)
    }

    /// Negotiates permessage-deflate when the client offers it.
    pub fn deflate(mut self, config: DeflateConfig) -> Self {
        self.settings().options.deflate = Some(config);
        self
    }

    /// Subprotocols the server speaks, in order of preference.
    pub fn protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.settings().options.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Refuses (403) requests whose `Origin` the check rejects; `None` is a
    /// request without an `Origin` header (not from a browser).
    pub fn origin_check(
        mut self,
        check: impl Fn(Option<&str>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.settings().options.origin_check = Some(Arc::new(check));
        self
    }

    /// Connection settings for accepted sockets.
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.settings().config = config;
        self
    }

    /// Limits on the upgrade request's headers.
    pub fn limits(mut self, limits: RequestLimits) -> Self {
        self.settings().limits = limits;
        self
    }

    /// How long a client has to send its whole upgrade request.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.settings().handshake_timeout = timeout;
        self
    }

    pub(crate) fn inner(&self) -> &Settings {
        &self.inner
    }

    /// Runs the server handshake on `io` and returns the connection.
    pub async fn accept<S>(&self, io: S) -> Result<WebSocket<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.accept_with_request(io).await.map(|(socket, _)| socket)
    }

    /// Like [`Acceptor::accept`], also returning the request (path, headers)
    /// for the application.
    pub async fn accept_with_request<S>(
        &self,
        io: S,
    ) -> Result<(WebSocket<S>, UpgradeRequest), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // Boxed so that the handshake's buffers and timer do not stay part
        // of the caller's task for the connection's whole life.
        Box::pin(self.handshake(io)).await
    }

    async fn handshake<S>(&self, mut io: S) -> Result<(WebSocket<S>, UpgradeRequest), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let settings = &*self.inner;
        let read = read_request(&mut io, &settings.limits);
        let (request, leftover) = match tokio::time::timeout(settings.handshake_timeout, read).await
        {
            Ok(Ok(done)) => done,
            Ok(Err(Error::Handshake(e))) => {
                let _ = io.write_all(&e.response()).await;
                let _ = io.shutdown().await;
                return Err(Error::Handshake(e));
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Error::Timeout("the upgrade request")),
        };
        let accepted = match handshake::accept(&request, &settings.options) {
            Ok(accepted) => accepted,
            Err(e) => {
                let _ = io.write_all(&e.response()).await;
                let _ = io.shutdown().await;
                return Err(Error::Handshake(e));
            }
        };
        io.write_all(&accepted.response).await?;
        let proto = settings.connection(&accepted);
        Ok((
            WebSocket::from_parts(io, proto, leftover, &settings.config),
            request,
        ))
    }
}

impl Settings {
    /// The protocol state for a connection the handshake accepted.
    pub(crate) fn connection(&self, accepted: &Accepted) -> Connection {
        let proto = Connection::new(Role::Server, self.config.protocol.clone());
        match (accepted.deflate, &self.options.deflate) {
            (Some(params), Some(deflate)) => proto.with_deflate(params, deflate),
            _ => proto,
        }
    }
}

/// Reads until a complete request head; returns it and any bytes after it.
async fn read_request<S: AsyncRead + Unpin>(
    io: &mut S,
    limits: &RequestLimits,
) -> Result<(UpgradeRequest, BytesMut), Error> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if io.read_buf(&mut buf).await? == 0 {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        if let Some((request, used)) = handshake::parse_request(&buf, limits)? {
            return Ok((request, crate::stream::leftover(&buf[used..])));
        }
    }
}
