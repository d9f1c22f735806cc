//! Request routing, the session table, heartbeats and the protocol's error
//! answers. Transport details live in `polling` and `websocket`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use engineio_proto::{EngineError, Handshake, Packet, Query, Transport};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body;
use tokio::net::TcpListener;

use crate::socket::{pong_received, CloseReason, Closer, Session, Socket, TransportKind};
use crate::{EngineConfig, Handler, SharedFrame};

/// The body type of every response.
pub(crate) type ResponseBody = Full<Bytes>;

/// An Engine.IO server. Cheap to clone; clones share sessions.
pub struct Engine<H> {
    pub(crate) inner: Arc<Inner<H>>,
}

impl<H> Clone for Engine<H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

pub(crate) struct Inner<H> {
    pub(crate) config: EngineConfig,
    pub(crate) handler: H,
    sessions: Mutex<HashMap<Box<str>, Arc<Session>>>,
    pub(crate) acceptor: ws::Acceptor,
    /// Back-reference handed to sockets so they can close themselves.
    me: std::sync::Weak<Inner<H>>,
}

impl<H> std::fmt::Debug for Inner<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<H: Handler> Closer for Inner<H> {
    fn close(&self, session: &Arc<Session>, reason: CloseReason) {
        self.close_session(session, reason);
    }
}

impl<H: Handler> Engine<H> {
    /// A server with `config` whose sessions are handled by `handler`.
    pub fn new(config: EngineConfig, handler: H) -> Self {
        let ws_config = ws::WebSocketConfig::default()
            .max_message_size(config.max_payload)
            .max_frame_size(config.max_payload);
        let acceptor = ws::Acceptor::new().config(ws_config);
        let inner = Arc::new_cyclic(|me| Inner {
            config,
            handler,
            sessions: Mutex::new(HashMap::new()),
            acceptor,
            me: me.clone(),
        });
        Self { inner }
    }

    /// The application's handler.
    pub fn handler(&self) -> &H {
        &self.inner.handler
    }

    /// The options in force.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Whether `path` belongs to this server (starts with its path prefix).
    pub fn matches(&self, path: &str) -> bool {
        let prefix = &self.inner.config.path;
        path.starts_with(prefix.as_str()) || path == prefix.trim_end_matches('/')
    }

    /// The open session with id `sid`.
    pub fn socket(&self, sid: &str) -> Option<Socket> {
        let session = self.inner.sessions_lock().get(sid).cloned()?;
        Some(self.inner.socket(session))
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.inner.sessions_lock().len()
    }

    /// Closes every session (server shutdown).
    pub fn close_all(&self) {
        let sessions: Vec<_> = self.inner.sessions_lock().values().cloned().collect();
        for s in sessions {
            self.inner.close_session(&s, CloseReason::ServerClose);
        }
    }

    /// Answers one HTTP request under the path prefix. WebSocket upgrades
    /// need the connection to be served with hyper's upgrades enabled.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let origin = req.headers().get(header::ORIGIN).cloned();
        let mut response = self.route(req).await;
        self.inner.apply_cors(origin.as_ref(), &mut response);
        response
    }

    async fn route<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let inner = &self.inner;
        if req.method() == Method::OPTIONS {
            return inner.preflight(&req);
        }
        let query = match Query::parse(req.uri().query().unwrap_or("")) {
            Ok(q) => q,
            Err(e) => return error_response(e),
        };
        let transport_enabled = match query.transport {
            Transport::Polling => inner.config.polling,
            Transport::WebSocket => inner.config.websocket,
        };
        if !transport_enabled {
            return error_response(EngineError::TransportUnknown);
        }
        match (req.method().clone(), query.transport, query.sid.as_deref()) {
            (Method::GET, Transport::Polling, None) => {
                let (parts, _) = req.into_parts();
                if let Err(e) = inner.allow(&parts) {
                    return error_response(e);
                }
                let socket = inner.open_session(TransportKind::Polling, parts);
                let open = inner.open_packet(socket.id(), TransportKind::Polling);
                crate::polling::payload_response(&[open])
            }
            (Method::GET, Transport::Polling, Some(sid)) => match inner.session(sid) {
                Some(s) if s.lock().transport == TransportKind::Polling => {
                    crate::polling::poll(inner, s).await
                }
                Some(_) => error_response(EngineError::BadRequest),
                None => error_response(EngineError::UnknownSid),
            },
            (Method::POST, Transport::Polling, Some(sid)) => match inner.session(sid) {
                Some(s) if s.lock().transport == TransportKind::Polling => {
                    crate::polling::post(inner, s, req.into_body()).await
                }
                Some(_) => error_response(EngineError::BadRequest),
                None => error_response(EngineError::UnknownSid),
            },
            (Method::POST, Transport::Polling, None) => {
                error_response(EngineError::BadHandshakeMethod)
            }
            (Method::GET, Transport::WebSocket, sid) => {
                let existing = match sid {
                    Some(sid) => match inner.session(sid) {
                        Some(s) if s.is_closed() => return error_response(EngineError::UnknownSid),
                        Some(s) if s.lock().transport == TransportKind::Polling => Some(s),
                        Some(_) => return crate::websocket::refuse(inner, req),
                        None => return error_response(EngineError::UnknownSid),
                    },
                    None => None,
                };
                crate::websocket::upgrade(inner, req, existing)
            }
            _ => error_response(EngineError::BadRequest),
        }
    }

    /// Serves HTTP on `listener` until an accept error: Engine.IO under the
    /// path prefix, 404 elsewhere.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let engine = self.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                        let engine = engine.clone();
                        req.extensions_mut().insert(peer);
                        async move {
                            if engine.matches(req.uri().path()) {
                                Ok::<_, std::convert::Infallible>(engine.handle(req).await)
                            } else {
                                Ok(not_found())
                            }
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
    }
}

impl<H: Handler> Inner<H> {
    fn sessions_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn session(&self, sid: &str) -> Option<Arc<Session>> {
        self.sessions_lock().get(sid).cloned()
    }

    pub(crate) fn socket(&self, session: Arc<Session>) -> Socket {
        let closer: Arc<dyn Closer> = match self.me.upgrade() {
            Some(me) => me,
            None => Arc::new(NoCloser),
        };
        Socket { session, closer }
    }

    fn allow(&self, parts: &http::request::Parts) -> Result<(), EngineError> {
        match &self.config.allow_request {
            Some(hook) => hook(parts),
            None => Ok(()),
        }
    }

    /// Creates a session, starts its heartbeat and tells the handler.
    pub(crate) fn open_session(
        &self,
        transport: TransportKind,
        parts: http::request::Parts,
    ) -> Socket {
        let id = engineio_proto::generate_sid();
        let session = Arc::new(Session::new(
            id,
            transport,
            self.config.max_queued_packets,
            parts,
        ));
        if transport == TransportKind::WebSocket {
            // The open packet must be the first message on the socket.
            let open = self.open_packet(&session.id, transport);
            let _ = session.push(open);
        }
        self.sessions_lock()
            .insert(session.id.clone(), session.clone());
        // WebSocket sessions run their heartbeat on their own task (one
        // task per idle connection, not two); polling ones get a task.
        if transport == TransportKind::Polling {
            if let Some(me) = self.me.upgrade() {
                tokio::spawn(heartbeat(me, session.clone()));
            }
        }
        let socket = self.socket(session);
        self.handler.on_open(&socket);
        socket
    }

    pub(crate) fn open_packet(&self, sid: &str, transport: TransportKind) -> SharedFrame {
        let can_upgrade = transport == TransportKind::Polling;
        let upgrades: &'static [&'static str] =
            if can_upgrade && self.config.websocket && self.config.allow_upgrades {
                &["websocket"]
            } else {
                &[]
            };
        let handshake = Handshake {
            sid: sid.to_owned(),
            upgrades,
            ping_interval_ms: self.config.ping_interval.as_millis() as u64,
            ping_timeout_ms: self.config.ping_timeout.as_millis() as u64,
            max_payload: self.config.max_payload as u64,
        };
        SharedFrame::text(format!("0{}", handshake.to_json()))
    }

    /// Ends a session once: drop it from the table, wake its transport, and
    /// tell the handler.
    pub(crate) fn close_session(&self, session: &Arc<Session>, reason: CloseReason) {
        if !session.mark_closed(reason) {
            // A polling session the server closed, kept for the client's
            // last polls: the client saying close itself ends the wait.
            if reason == CloseReason::TransportClose {
                self.forget_session(session);
            }
            return;
        }
        let polling = session.lock().transport == TransportKind::Polling;
        let server_side = matches!(reason, CloseReason::ServerClose | CloseReason::SlowClient);
        if polling && server_side {
            // The queued packets and then the close packet go out on the
            // client's next polls (see `polling::poll`): keep the session
            // for them, or until a heartbeat's worth of time says the client
            // is gone.
            let grace = self.config.ping_interval + self.config.ping_timeout;
            // Closing may be asked from outside the runtime (a plain thread):
            // then there is no timer to wait with, and the session goes now.
            match (self.me.upgrade(), tokio::runtime::Handle::try_current()) {
                (Some(me), Ok(runtime)) => {
                    let session = session.clone();
                    runtime.spawn(async move {
                        tokio::time::sleep(grace).await;
                        me.forget_session(&session);
                    });
                }
                _ => self.forget_session(session),
            }
        } else {
            self.forget_session(session);
        }
        let socket = self.socket(session.clone());
        self.handler.on_close(&socket, reason);
    }

    /// Drops a session from the table (idempotent; only this session, not a
    /// newer one under the same id).
    pub(crate) fn forget_session(&self, session: &Arc<Session>) {
        let mut sessions = self.sessions_lock();
        if sessions
            .get(&session.id)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            sessions.remove(&session.id);
        }
    }

    /// Acts on one packet from the client, whichever transport carried it.
    pub(crate) fn on_packet(&self, session: &Arc<Session>, packet: Packet) {
        match packet {
            Packet::Message(text) => {
                let socket = self.socket(session.clone());
                self.handler.on_message(&socket, text);
            }
            Packet::Binary(data) => {
                let socket = self.socket(session.clone());
                self.handler.on_binary(&socket, data);
            }
            Packet::Pong(_) => pong_received(session),
            Packet::Close => self.close_session(session, CloseReason::TransportClose),
            Packet::Ping(_) | Packet::Noop | Packet::Upgrade => {}
            Packet::Open(_) => self.close_session(session, CloseReason::ParseError),
        }
    }

    fn preflight<B>(&self, req: &Request<B>) -> Response<ResponseBody> {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NO_CONTENT;
        if self.config.cors.is_some() {
            let h = response.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET,HEAD,PUT,PATCH,POST,DELETE"),
            );
            if let Some(requested) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
            }
        }
        response
    }

    fn apply_cors(&self, origin: Option<&HeaderValue>, response: &mut Response<ResponseBody>) {
        let Some(cors) = &self.config.cors else {
            return;
        };
        let h = response.headers_mut();
        let allowed = match origin {
            Some(o) if cors.origins.is_empty() => {
                if cors.credentials {
                    Some(o.clone())
                } else {
                    Some(HeaderValue::from_static("*"))
                }
            }
            Some(o) => cors
                .origins
                .iter()
                .any(|a| a.as_bytes() == o.as_bytes())
                .then(|| o.clone()),
            None if cors.origins.is_empty() && !cors.credentials => {
                Some(HeaderValue::from_static("*"))
            }
            None => None,
        };
        if let Some(value) = allowed {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            h.append(header::VARY, HeaderValue::from_static("Origin"));
            if cors.credentials {
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
        }
    }
}

#[derive(Debug)]
struct NoCloser;
impl Closer for NoCloser {
    fn close(&self, session: &Arc<Session>, reason: CloseReason) {
        session.mark_closed(reason);
    }
}

/// Pings an interval after the open and after each pong (as the reference
/// server does); closes the session when a pong is late.
async fn heartbeat<H: Handler>(inner: Arc<Inner<H>>, session: Arc<Session>) {
    let interval = inner.config.ping_interval;
    let timeout = inner.config.ping_timeout;
    let mut next_ping = tokio::time::Instant::now() + interval;
    loop {
        tokio::time::sleep_until(next_ping).await;
        if session.is_closed() {
            return;
        }
        session.pong_seen.store(false, Ordering::Release);
        if session.push(SharedFrame::text("2")).is_err() {
            inner.close_session(&session, CloseReason::SlowClient);
            return;
        }
        let deadline = tokio::time::sleep_until(next_ping + timeout);
        tokio::pin!(deadline);
        while !session.pong_seen.load(Ordering::Acquire) {
            tokio::select! {
                _ = &mut deadline => {
                    if session.is_closed() {
                        return;
                    }
                    if !session.pong_seen.load(Ordering::Acquire) {
                        inner.close_session(&session, CloseReason::PingTimeout);
                        return;
                    }
                }
                _ = session.pong.notified() => {}
            }
        }
        next_ping = tokio::time::Instant::now() + interval;
    }
}

/// The protocol's error answer: a status and `{"code":N,"message":"..."}`.
pub(crate) fn error_response(err: EngineError) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::from(err.json_body())));
    *response.status_mut() = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn not_found() -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// The peer address the standalone server records on each request.
pub fn peer_addr<B>(req: &Request<B>) -> Option<SocketAddr> {
    req.extensions().get::<SocketAddr>().copied()
}
