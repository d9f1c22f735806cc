//! The query string of requests to `/engine.io/`.
//!
//! This module owns reading the three parameters the protocol defines —
//! `EIO` (protocol revision), `transport` and `sid` — and naming the
//! transports ([`Transport`]). Other parameters (the client's cache-busting
//! `t`, the legacy `b64`, application parameters) are skipped. Matching the
//! request path, checking the HTTP method and looking the `sid` up in the
//! session table are the `engineio` crate's job.

use std::fmt;
use std::str::FromStr;

use crate::error::EngineError;
use crate::PROTOCOL_VERSION;

/// The two Engine.IO transports.
///
/// ```
/// use engineio_proto::{EngineError, Transport};
///
/// assert_eq!("websocket".parse(), Ok(Transport::WebSocket));
/// assert_eq!("flashsocket".parse::<Transport>(), Err(EngineError::TransportUnknown));
/// assert_eq!(Transport::Polling.as_str(), "polling");
/// assert_eq!(Transport::Polling.upgrades(), ["websocket"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// HTTP long-polling: `GET` to receive, `POST` to send.
    Polling,
    /// One WebSocket connection.
    WebSocket,
}

impl Transport {
    /// The name used in the `transport` query parameter.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::Polling => "polling",
            Transport::WebSocket => "websocket",
        }
    }

    /// The transport called `name` (exact, case-sensitive match).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "polling" => Some(Transport::Polling),
            "websocket" => Some(Transport::WebSocket),
            _ => None,
        }
    }

    /// The upgrades a session opened over this transport can make, as
    /// announced in the handshake: polling can move to WebSocket, WebSocket
    /// is final.
    pub const fn upgrades(self) -> &'static [&'static str] {
        match self {
            Transport::Polling => &["websocket"],
            Transport::WebSocket => &[],
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Transport {
    type Err = EngineError;

    fn from_str(name: &str) -> Result<Self, EngineError> {
        Transport::from_name(name).ok_or(EngineError::TransportUnknown)
    }
}

/// The protocol's parameters from an `/engine.io/` request's query string.
///
/// ```
/// use engineio_proto::{EngineError, Query, Transport};
///
/// let q = Query::parse("EIO=4&transport=polling&t=OfXf3mO&sid=lv_VI97HAXpY6yYWAAAC").unwrap();
/// assert_eq!(q.eio, 4);
/// assert_eq!(q.transport, Transport::Polling);
/// assert_eq!(q.sid.as_deref(), Some("lv_VI97HAXpY6yYWAAAC"));
///
/// assert_eq!(Query::parse("EIO=3&transport=polling"), Err(EngineError::UnsupportedProtocolVersion));
/// assert_eq!(Query::parse("EIO=4&transport=abc"), Err(EngineError::TransportUnknown));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    /// The protocol revision; always [`PROTOCOL_VERSION`] once parsed.
    pub eio: u8,
    /// The transport of this request.
    pub transport: Transport,
    /// The session id, absent on a handshake request.
    pub sid: Option<String>,
}

impl Query {
    /// Reads `EIO`, `transport` and `sid` from a query string (the part of
    /// the URL after `?`; a leading `?` is tolerated). Parameter names are
    /// case-sensitive, values are taken as they are (the protocol's values
    /// never need percent-encoding), other parameters are ignored, and an
    /// empty `sid=` counts as no `sid`, as in the reference server.
    ///
    /// # Errors
    ///
    /// Checked in the reference server's order:
    /// [`EngineError::BadRequest`] when `EIO`, `transport` or `sid` appears
    /// more than once; [`EngineError::TransportUnknown`] when `transport` is
    /// missing or names neither `polling` nor `websocket`;
    /// [`EngineError::UnsupportedProtocolVersion`] when `EIO` is missing or
    /// not exactly `4`.
    pub fn parse(query: &str) -> Result<Self, EngineError> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut eio = None;
        let mut transport = None;
        let mut sid = None;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "EIO" => &mut eio,
                "transport" => &mut transport,
                "sid" => &mut sid,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(EngineError::BadRequest);
            }
        }
        let transport = transport
            .and_then(Transport::from_name)
            .ok_or(EngineError::TransportUnknown)?;
        if eio != Some("4") {
            return Err(EngineError::UnsupportedProtocolVersion);
        }
        Ok(Query {
            eio: PROTOCOL_VERSION,
            transport,
            sid: sid.filter(|s| !s.is_empty()).map(str::to_owned),
        })
    }

    /// Whether this request opens a new session (it carries no `sid`).
    pub const fn is_handshake(&self) -> bool {
        self.sid.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_queries() {
        let q = Query::parse("EIO=4&transport=polling&t=N8hyd6w").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            q,
            Query {
                eio: 4,
                transport: Transport::Polling,
                sid: None
            }
        );
        assert!(q.is_handshake());
        let q = Query::parse("?transport=websocket&EIO=4").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.transport, Transport::WebSocket);
        assert!(q.is_handshake());
    }

    #[test]
    fn session_queries() {
        let q = Query::parse("EIO=4&transport=websocket&sid=abc-_12&b64=1&foo")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.sid.as_deref(), Some("abc-_12"));
        assert!(!q.is_handshake());
        // `=` inside a value is kept.
        let q = Query::parse("EIO=4&transport=polling&sid=a=b").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.sid.as_deref(), Some("a=b"));
        // Empty sid is no sid.
        let q = Query::parse("EIO=4&transport=polling&sid=").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.sid, None);
    }

    #[test]
    fn test_suite_rejections() {
        use EngineError::*;
        for (query, err) in [
            ("transport=polling", UnsupportedProtocolVersion),
            ("EIO=abc&transport=polling", UnsupportedProtocolVersion),
            ("EIO=3&transport=polling", UnsupportedProtocolVersion),
            ("EIO=&transport=polling", UnsupportedProtocolVersion),
            ("EIO&transport=polling", UnsupportedProtocolVersion),
            ("EIO=04&transport=polling", UnsupportedProtocolVersion),
            ("eio=4&transport=polling", UnsupportedProtocolVersion),
            ("EIO=4", TransportUnknown),
            ("EIO=4&transport=abc", TransportUnknown),
            ("EIO=4&transport=", TransportUnknown),
            ("EIO=4&transport=Polling", TransportUnknown),
            ("EIO=4&transport=flashsocket", TransportUnknown),
            ("", TransportUnknown),
            ("transport=abc", TransportUnknown),
            ("EIO=4&EIO=4&transport=polling", BadRequest),
            ("EIO=4&transport=polling&transport=websocket", BadRequest),
            ("EIO=4&transport=polling&sid=a&sid=b", BadRequest),
        ] {
            assert_eq!(Query::parse(query), Err(err), "{query:?}");
        }
    }

    #[test]
    fn odd_input_does_not_panic() {
        for query in [
            "&&&",
            "=",
            "==&=",
            "€=€&EIO=4€",
            "?",
            "??EIO=4",
            "%45IO=4&transport=polling",
        ] {
            let _ = Query::parse(query);
        }
    }

    #[test]
    fn transport_names() {
        for t in [Transport::Polling, Transport::WebSocket] {
            assert_eq!(Transport::from_name(t.as_str()), Some(t));
            assert_eq!(t.to_string().parse(), Ok(t));
        }
        assert!(Transport::WebSocket.upgrades().is_empty());
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(query in any::<String>()) {
                let _ = Query::parse(&query);
            }

            #[test]
            fn extra_params_are_ignored(
                extra in proptest::collection::vec("[a-zA-Z0-9_.~-]{1,8}=[a-zA-Z0-9_.~%-]{0,8}", 0..5),
                sid in "[A-Za-z0-9_-]{1,20}",
            ) {
                let extra: Vec<&String> = extra
                    .iter()
                    .filter(|p| !p.starts_with("EIO=") && !p.starts_with("transport=") && !p.starts_with("sid="))
                    .collect();
                let mut parts: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
                parts.push(String::from("EIO=4"));
                parts.push(String::from("transport=websocket"));
                parts.push(format!("sid={sid}"));
                parts.rotate_left(extra.len() / 2);
                let q = Query::parse(&parts.join("&"));
                prop_assert_eq!(q, Ok(Query { eio: 4, transport: Transport::WebSocket, sid: Some(sid) }));
            }
        }
    }
}
