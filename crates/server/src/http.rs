//! One port, every path: the HTTP router, the accept loop and graceful
//! shutdown.
//!
//! Owns which path goes where (see the table in docs/protocol.md and the
//! spec), `/health`, `/metrics`, the demo page and `/duplex.js`, and the
//! connection limits (`max_connections`, `max_connections_per_ip`: over
//! them, a 503 and close; see `limits`), TLS when a certificate is
//! configured (see `tls`; SIGHUP reloads it), the
//! order of shutdown: stop accepting, tell every connection to close (3001
//! for WebSocket clients, a disconnect for Socket.IO), wait for them up to
//! the drain time, flush storage. What each path speaks lives in its own
//! module (`client`, `sio`, `api`, `demo`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::node::Node;
use crate::util::{json, response, text, Body};

mod limits;
pub mod tls;

use limits::{Counted, Limits};

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the router needs: the node and the Socket.IO server.
#[derive(Clone)]
pub struct App {
    /// The shared node.
    pub node: Node,
    /// The Socket.IO server on `/socket.io/`.
    pub sio: socketio::SocketIo,
}

impl App {
    /// Builds the app for `node`, wiring Socket.IO to its channels.
    pub fn new(node: Node) -> Self {
        let sio = crate::sio::build(&node);
        Self { node, sio }
    }

    /// Answers one request.
    pub async fn route(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path();
        if path == "/connection/websocket" {
            return crate::client::handle(&self.node, req);
        }
        if self.sio.engine().matches(path) {
            if let Some(refusal) = self.foreign_session(&req) {
                return refusal;
            }
            // During the shutdown drain only sessions that exist are served
            // (polling clients fetching their disconnect).
            if self.node.is_shutting_down() && engineio_sid(&req).is_none() {
                return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
            }
            return self.sio.engine().handle(req).await;
        }
        if let Some(method) = path.strip_prefix("/api/") {
            let method = method.to_owned();
            return crate::api::handle(&self.node, &method, req).await;
        }
        match (req.method(), path) {
            (&Method::GET, "/health") => self.health().await,
            (&Method::GET, "/metrics") => self.metrics(),
            (&Method::GET | &Method::HEAD, _) => crate::demo::handle(&self.node, req).await,
            (&Method::POST, "/dev/token") => crate::demo::handle(&self.node, req).await,
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// With several nodes, an Engine.IO request for a session this node does
    /// not hold most likely belongs to another node behind a load balancer
    /// without sticky sessions: say so, instead of a bare "Session ID
    /// unknown" (same status and code, so clients behave the same).
    fn foreign_session<B>(&self, req: &Request<B>) -> Option<Response<Body>> {
        self.node.config().broker.as_ref()?;
        let sid = engineio_sid(req)?;
        if self.sio.engine().socket(sid).is_some() {
            return None;
        }
        let mut r = json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({
                "code": 1,
                "message": "Session ID unknown on this node: with several duplex nodes, \
                    Socket.IO long-polling needs sticky sessions at the load balancer \
                    (or connect with transports: [\"websocket\"])",
            }),
        );
        if let Some(origin) = req.headers().get(http::header::ORIGIN) {
            r.headers_mut()
                .insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            r.headers_mut().insert(
                http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                http::HeaderValue::from_static("true"),
            );
        }
        Some(r)
    }

    async fn health(&self) -> Response<Body> {
        if let Some(cluster) = self.node.cluster() {
            // With a broker, storage and presence are Redis too: its
            // connections say it all (and probing would write keys).
            let health = cluster.health();
            return match health.reason() {
                None => json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "status": "ok",
                        "node": self.node.uid(),
                        "clients": self.node.registry().num_clients(),
                        "broker": "connected",
                    }),
                ),
                Some(reason) => json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"status": "unavailable", "reason": reason}),
                ),
            };
        }
        let hub = self.node.hub();
        // Storage answers a position read, or it is unavailable.
        let probe: hub::ChannelName = match "_health".parse() {
            Ok(c) => c,
            Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "bad probe channel\n"),
        };
        let storage =
            tokio::time::timeout(Duration::from_secs(2), hub.store().position(&probe)).await;
        match storage {
            Ok(Ok(_)) => json(
                StatusCode::OK,
                &serde_json::json!({
                    "status": "ok",
                    "node": self.node.uid(),
                    "clients": self.node.registry().num_clients(),
                }),
            ),
            Ok(Err(e)) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"status": "unavailable", "reason": format!("storage: {e}")}),
            ),
            Err(_) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"status": "unavailable", "reason": "storage: no answer within 2s"}),
            ),
        }
    }

    fn metrics(&self) -> Response<Body> {
        let stats = self.node.hub().stats();
        let registry = self.node.registry();
        let extra = [
            (
                "duplex_channels",
                "Channels with subscribers on this node.",
                stats.num_channels as f64,
            ),
            (
                "duplex_subscriptions",
                "Subscriptions on this node.",
                stats.num_subscriptions as f64,
            ),
            (
                "duplex_clients",
                "Connected, authenticated clients.",
                registry.num_clients() as f64,
            ),
            (
                "duplex_users",
                "Distinct connected users.",
                registry.num_users() as f64,
            ),
            (
                "duplex_socketio_sessions",
                "Engine.IO sessions open.",
                self.sio.engine().session_count() as f64,
            ),
        ];
        let mut text = self.node.metrics().render(&extra);
        if let Some(cluster) = self.node.cluster() {
            text.push_str(&cluster.render_metrics());
        }
        response(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            text,
        )
    }

    /// Serves connections from `listener` until the node stops listening
    /// (after the shutdown drain: [`crate::node::Node::stop_listening`]).
    /// With `tls_cert` and `tls_key` set, every connection is TLS (https,
    /// wss) and SIGHUP reloads the files; when they cannot be read here,
    /// the error is logged and shutdown begins.
    pub async fn serve(self, listener: TcpListener) {
        let config = self.node.config();
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => match tls::Tls::new(cert, key) {
                Ok(tls) => Some(Arc::new(tls)),
                Err(e) => {
                    tracing::error!("TLS: {e}; not serving");
                    self.node.begin_shutdown();
                    return;
                }
            },
            _ => None,
        };
        if let Some(tls) = &tls {
            reload_on_sighup(Arc::clone(tls), self.node.listening_signal());
        }
        let mut shutdown = self.node.listening_signal();
        let mut connections = tokio::task::JoinSet::new();
        let limits = Limits::new(config.max_connections, config.max_connections_per_ip);
        loop {
            let (tcp, peer): (_, SocketAddr) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = until_shutdown(&mut shutdown) => break,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = tls.as_ref().map(|tls| tls.acceptor());
            let slot = match limits.admit(peer.ip()) {
                Ok(slot) => slot,
                Err(over) => {
                    tracing::debug!(%peer, ?over, "connection over the limit: refused with 503");
                    self.node
                        .metrics()
                        .connections_refused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    limits.refuse(tcp, over, acceptor);
                    continue;
                }
            };
            // The slot lives in the IO: an upgraded WebSocket keeps it.
            let io = Counted::new(tcp, slot);
            let app = self.clone();
            let conn_shutdown = self.node.listening_signal();
            connections.spawn(async move {
                let Some(acceptor) = acceptor else {
                    return app.serve_connection(io, peer, conn_shutdown).await;
                };
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                    Ok(Ok(stream)) => app.serve_connection(stream, peer, conn_shutdown).await,
                    Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
            // Reap finished connection tasks so the set does not grow.
            while connections.try_join_next().is_some() {}
        }
        drop(listener);
        // Plain HTTP connections finish their request; upgraded ones were
        // handed off and close themselves on the same signal.
        let _ = tokio::time::timeout(self.node.config().shutdown_drain, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
    }

    /// Serves HTTP/1.1 (with upgrades) on one connection until it ends or
    /// shutdown begins.
    async fn serve_connection<IO>(
        self,
        io: IO,
        peer: SocketAddr,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let app = self;
        let max_request_head = app.node.config().max_request_head;
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let app = app.clone();
            req.extensions_mut().insert(peer);
            async move { Ok::<_, Infallible>(app.route(req).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            // A client that trickles its request head (slowloris),
            // or keeps an idle keep-alive connection, is closed.
            .header_read_timeout(HEADER_READ_TIMEOUT)
            // A request head over this is answered 431 (at least 8 KiB,
            // checked when the config is read: below it the parser panics).
            .max_buf_size(max_request_head.max(crate::config::Config::MIN_REQUEST_HEAD))
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = until_shutdown(&mut shutdown) => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
}

/// The Engine.IO session id an `/socket.io/` request names (`sid=`), if any.
fn engineio_sid<B>(req: &Request<B>) -> Option<&str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("sid="))
}

/// Reloads the certificate and key on every SIGHUP until shutdown. The
/// handler is installed before this returns, so a SIGHUP sent once the
/// server accepts connections does not kill the process.
fn reload_on_sighup(tls: Arc<tls::Tls>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("TLS: cannot listen for SIGHUP, no reload: {e}");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                got = hangups.recv() => {
                    if got.is_none() {
                        return;
                    }
                    match tls.reload() {
                        Ok(()) => tracing::info!("TLS: certificate and key reloaded"),
                        Err(e) => tracing::error!("TLS: reload failed, keeping the previous certificate: {e}"),
                    }
                }
                _ = until_shutdown(&mut shutdown) => return,
            }
        }
    });
}

/// Resolves once `rx` says shutdown has begun (or its sender is gone).
pub async fn until_shutdown(rx: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, before any await of the caller.
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}
