//! `/connection/websocket`: Centrifugo's bidirectional JSON protocol over
//! plain WebSocket, so the Centrifugo SDKs connect unchanged.
//!
//! Owns the upgrade (origin check against `client.allowed_origins`, the
//! socket's limits), the per-connection task ([`conn`]: protocol life
//! cycle, pings, timers, close codes) and the queue between the hub and
//! that task ([`outbox`]). What commands do — tokens, permissions,
//! channels — is the transport-neutral [`crate::session`]; the wire format
//! is `centrifuge-proto`. See docs/protocol.md for what is spoken and where
//! it differs from Centrifugo.

mod conn;
mod outbox;

use std::time::Duration;

use http::{header, Request, Response, StatusCode};

use crate::node::Node;
use crate::util::{text, Body};

/// How long a close waits for the client's close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether a browser `origin` may connect, given the configured patterns.
/// An empty list allows every origin; a request without an `Origin` header
/// (not from a browser) is always allowed. A pattern matches exactly
/// (ASCII case-insensitively) or, with one `*`, by prefix and suffix
/// (`https://*.example.com`).
pub fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if allowed.is_empty() {
        return true;
    }
    let origin = origin.to_ascii_lowercase();
    allowed.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.split_once('*') {
            None => pattern == origin,
            Some((prefix, suffix)) => {
                origin.len() >= prefix.len() + suffix.len()
                    && origin.starts_with(prefix)
                    && origin.ends_with(suffix)
            }
        }
    })
}

/// Answers a request on `/connection/websocket`: checks the origin,
/// upgrades it and runs the client session on its own task. Refusals: 403
/// for a disallowed origin, 503 while shutting down, and the handshake's
/// own statuses (400, 426, ...) for requests that are not WebSocket
/// upgrades.
pub fn handle<B>(node: &Node, mut req: Request<B>) -> Response<Body> {
    let config = node.config();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    if !origin_allowed(&config.client.allowed_origins, origin) {
        return text(StatusCode::FORBIDDEN, "origin not allowed\n");
    }
    if node.is_shutting_down() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    let client = &config.client;
    let ws_config = ws::WebSocketConfig::default()
        .max_message_size(client.max_message_size)
        .max_write_buffer(client.max_queue_bytes.saturating_mul(2).max(64 * 1024))
        .close_timeout(CLOSE_TIMEOUT);
    let acceptor = ws::Acceptor::new().config(ws_config);
    match ws::upgrade(&mut req, &acceptor) {
        Ok((response, pending)) => {
            let node = node.clone();
            tokio::spawn(async move {
                match pending.await {
                    // A task of its own: this one's state (the pending
                    // upgrade) is freed, and an idle connection's task
                    // holds only the connection.
                    Ok(socket) => drop(tokio::spawn(conn::run(node, socket))),
                    Err(err) => tracing::debug!(%err, "websocket upgrade failed"),
                }
            });
            response
        }
        Err(err) => ws::upgrade::rejection(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let allowed = vec![
            "https://app.example.com".to_owned(),
            "https://*.example.org".to_owned(),
        ];
        assert!(origin_allowed(&[], Some("https://evil.test")));
        assert!(origin_allowed(&allowed, None));
        assert!(origin_allowed(&allowed, Some("https://app.example.com")));
        assert!(origin_allowed(&allowed, Some("HTTPS://APP.example.com")));
        assert!(!origin_allowed(
            &allowed,
            Some("https://app.example.com.evil.test")
        ));
        assert!(origin_allowed(&allowed, Some("https://a.example.org")));
        assert!(!origin_allowed(&allowed, Some("https://example.org")));
        assert!(!origin_allowed(&allowed, Some("http://a.example.org")));
    }
}
