//! Polling clients behind a load balancer without sticky sessions.
//!
//! Engine.IO's HTTP long-polling sends every request of a session to the
//! server that holds it; a load balancer that spreads them over nodes
//! breaks the session, and the stock answer is a bare `Session ID unknown`.
//! [`StickyGuard`] stands in front of a node's Socket.IO handling: it
//! records in Redis which node holds each polling session, and when a
//! request names a session this node does not have but another node does,
//! it answers (still HTTP 400, Engine.IO code 1, so clients behave as
//! before) with a message that says so and what to do. Requests are not
//! forwarded between nodes. Everything else passes through unchanged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use engineio::Engine;
use http::{header, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use redis::Value;
use socketio::{SioHandler, SocketIo};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::cluster::RedisCluster;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A node's Socket.IO HTTP handling, with the sticky-session check. Use
/// [`StickyGuard::handle`] where [`socketio::SocketIo::engine`]'s `handle`
/// would be, or [`StickyGuard::serve`]. Cheap to clone.
#[derive(Clone)]
pub struct StickyGuard {
    engine: Engine<SioHandler>,
    cluster: RedisCluster,
    refreshed: std::sync::Arc<Mutex<HashMap<String, Instant>>>,
}

impl std::fmt::Debug for StickyGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StickyGuard")
            .field("node", &self.cluster.node_id())
            .finish_non_exhaustive()
    }
}

/// The message a client sent to the wrong node gets.
pub fn sticky_message(sid: &str, owner: &str) -> String {
    format!(
        "Session ID unknown on this node: session {sid} is held by node {owner}. \
         HTTP long-polling needs sticky sessions: the load balancer must send every \
         request of a session to the same node (e.g. by cookie or client IP), or clients \
         must connect with transports: [\"websocket\"]"
    )
}

/// `transport` and `sid` from a query string.
fn query_params(query: &str) -> (Option<&str>, Option<&str>) {
    let mut transport = None;
    let mut sid = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("transport", v)) => transport = Some(v),
            Some(("sid", v)) if !v.is_empty() => sid = Some(v),
            _ => {}
        }
    }
    (transport, sid)
}

/// The sid in a polling handshake body (`0{"sid":"...",...}`).
fn handshake_sid(body: &[u8]) -> Option<String> {
    let json = body.strip_prefix(b"0")?;
    let end = json.iter().position(|&b| b == 0x1e).unwrap_or(json.len());
    let open: serde_json::Value = serde_json::from_slice(&json[..end]).ok()?;
    Some(open.get("sid")?.as_str()?.to_owned())
}

impl StickyGuard {
    /// A guard for `io`'s sessions, registering them in `cluster`.
    pub fn new(io: &SocketIo, cluster: RedisCluster) -> Self {
        Self {
            engine: io.engine().clone(),
            cluster,
            refreshed: std::sync::Arc::default(),
        }
    }

    fn owner_key(&self, sid: &str) -> String {
        self.cluster.inner.keys.session_owner(sid)
    }

    /// Records (or refreshes) this node as the holder of `sid`, at most
    /// every third of the TTL per session. The future resolves when Redis
    /// has it (awaited after a handshake, so the client's next request,
    /// wherever it lands, finds it); it need not be awaited.
    fn register(&self, sid: &str) -> impl std::future::Future<Output = ()> + Send + 'static {
        let ttl = self
            .cluster
            .inner
            .config
            .session_ttl
            .max(Duration::from_secs(1));
        {
            let mut refreshed = self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = refreshed.get(sid).is_some_and(|at| at.elapsed() < ttl / 3);
            if !fresh {
                refreshed.insert(sid.to_owned(), Instant::now());
                if refreshed.len() > 1024 && refreshed.len().is_power_of_two() {
                    let engine = &self.engine;
                    refreshed.retain(|sid, _| engine.socket(sid).is_some());
                }
            }
            if fresh {
                return futures_util::future::Either::Left(std::future::ready(()));
            }
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.owner_key(sid))
            .arg(self.cluster.node_id())
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let reply = self.cluster.inner.commands.send(cmd);
        let limit = self.cluster.inner.config.command_timeout;
        futures_util::future::Either::Right(async move {
            let _ = tokio::time::timeout(limit, reply).await;
        })
    }

    /// The node holding `sid` according to Redis, if another one.
    async fn other_owner(&self, sid: &str) -> Option<String> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.owner_key(sid));
        let limit = self.cluster.inner.config.command_timeout;
        let reply = tokio::time::timeout(limit, self.cluster.inner.commands.send(cmd)).await;
        let owner: String = match reply {
            Ok(Ok(Value::BulkString(bytes))) => String::from_utf8(bytes).ok()?,
            _ => return None,
        };
        (owner != self.cluster.node_id()).then_some(owner)
    }

    /// Answers one HTTP request under the Socket.IO path (as
    /// [`engineio::Engine::handle`]).
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let query = req.uri().query().unwrap_or("").to_owned();
        let (transport, sid) = query_params(&query);
        let polling = transport == Some("polling");
        match sid {
            Some(sid) if self.engine.socket(sid).is_none() => {
                let owner = self.other_owner(sid).await;
                // The engine's own answer keeps its status and CORS headers.
                let response = self.engine.handle(req).await;
                match owner {
                    Some(owner) if response.status() == http::StatusCode::BAD_REQUEST => {
                        tracing::debug!(sid, owner, "request for another node's session");
                        replace_body(
                            response,
                            serde_json::json!({ "code": 1, "message": sticky_message(sid, &owner) }),
                        )
                    }
                    _ => response,
                }
            }
            Some(sid) => {
                if polling {
                    drop(self.register(sid));
                }
                self.engine.handle(req).await
            }
            None => {
                let handshake = polling && req.method() == http::Method::GET;
                let response = self.engine.handle(req).await;
                if !handshake || !response.status().is_success() {
                    return response;
                }
                let (parts, body) = response.into_parts();
                let bytes = match body.collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(never) => match never {},
                };
                if let Some(sid) = handshake_sid(&bytes) {
                    self.register(&sid).await;
                }
                Response::from_parts(parts, Full::new(bytes))
            }
        }
    }

    /// Serves Socket.IO on `listener` through the guard (404 outside the
    /// path prefix), like [`socketio::SocketIo::serve`].
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let guard = self.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                        let guard = guard.clone();
                        req.extensions_mut().insert(peer);
                        async move {
                            if guard.engine.matches(req.uri().path()) {
                                Ok::<_, std::convert::Infallible>(guard.handle(req).await)
                            } else {
                                let mut not_found =
                                    Response::new(Full::new(Bytes::from_static(b"Not Found")));
                                *not_found.status_mut() = http::StatusCode::NOT_FOUND;
                                Ok(not_found)
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

fn replace_body(response: Response<Full<Bytes>>, body: serde_json::Value) -> Response<Full<Bytes>> {
    let (mut parts, _) = response.into_parts();
    let bytes = Bytes::from(body.to_string());
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Response::from_parts(parts, Full::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_query_and_the_handshake() {
        assert_eq!(
            query_params("EIO=4&transport=polling&t=x&sid=abc"),
            (Some("polling"), Some("abc"))
        );
        assert_eq!(
            query_params("EIO=4&transport=websocket"),
            (Some("websocket"), None)
        );
        assert_eq!(
            handshake_sid(br#"0{"sid":"s1","upgrades":["websocket"],"pingInterval":25000}"#)
                .as_deref(),
            Some("s1")
        );
        assert_eq!(handshake_sid(b"not a handshake"), None);
    }
}
