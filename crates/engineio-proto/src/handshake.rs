//! The `open` handshake and session ids.
//!
//! This module owns the JSON document the server sends in its first packet
//! ([`Handshake::to_json`]) and the generation of unguessable session ids
//! ([`generate_sid`]). Keeping the session table, enforcing `pingInterval`
//! and `pingTimeout`, and deciding which upgrades to offer are the
//! `engineio` crate's job; it fills in a [`Handshake`] and sends the packet.

use std::fmt::Write as _;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;

use crate::packet::Packet;
use crate::query::Transport;

/// Number of random bytes in a session id.
const SID_BYTES: usize = 15;

/// Length of the ids [`generate_sid`] returns: 20 characters.
pub const SID_LEN: usize = SID_BYTES / 3 * 4;

/// The session parameters announced in the `open` packet.
///
/// ```
/// use engineio_proto::{Handshake, Packet, Transport};
///
/// let hs = Handshake::new("lv_VI97HAXpY6yYWAAAC", Transport::Polling);
/// assert_eq!(
///     hs.to_json(),
///     r#"{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
/// );
/// let Packet::Open(json) = hs.to_packet() else { unreachable!() };
/// assert!(json.starts_with(r#"{"sid":"lv_VI97HAXpY6yYWAAAC""#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handshake {
    /// The session id the client must send back as `sid`.
    pub sid: String,
    /// Transports the client may upgrade to: `["websocket"]` for a session
    /// opened over polling, `[]` for one opened over WebSocket (see
    /// [`Transport::upgrades`]).
    pub upgrades: &'static [&'static str],
    /// How often the server pings, in milliseconds.
    pub ping_interval_ms: u64,
    /// How long the server waits for a pong, in milliseconds.
    pub ping_timeout_ms: u64,
    /// Largest polling body the server accepts, in bytes.
    pub max_payload: u64,
}

impl Handshake {
    /// The reference server's default `pingInterval`: 25 seconds.
    pub const DEFAULT_PING_INTERVAL_MS: u64 = 25_000;
    /// The reference server's default `pingTimeout`: 20 seconds.
    pub const DEFAULT_PING_TIMEOUT_MS: u64 = 20_000;
    /// The reference server's default `maxPayload`: 1 000 000 bytes.
    pub const DEFAULT_MAX_PAYLOAD: u64 = 1_000_000;

    /// A handshake for a session opened over `transport`, offering the
    /// upgrades that transport allows and the default timings and limit.
    pub fn new(sid: impl Into<String>, transport: Transport) -> Self {
        Handshake {
            sid: sid.into(),
            upgrades: transport.upgrades(),
            ping_interval_ms: Self::DEFAULT_PING_INTERVAL_MS,
            ping_timeout_ms: Self::DEFAULT_PING_TIMEOUT_MS,
            max_payload: Self::DEFAULT_MAX_PAYLOAD,
        }
    }

    /// The compact JSON document of the `open` packet, keys in the order
    /// `sid`, `upgrades`, `pingInterval`, `pingTimeout`, `maxPayload`.
    /// Strings are JSON-escaped, so any `sid` yields valid JSON.
    pub fn to_json(&self) -> String {
        let upgrades_len: usize = self.upgrades.iter().map(|u| u.len() + 3).sum();
        let mut json = String::with_capacity(96 + self.sid.len() + upgrades_len);
        json.push_str(r#"{"sid":"#);
        push_json_string(&mut json, &self.sid);
        json.push_str(r#","upgrades":["#);
        for (i, upgrade) in self.upgrades.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            push_json_string(&mut json, upgrade);
        }
        // Writing to a String cannot fail.
        let _ = write!(
            json,
            r#"],"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
            self.ping_interval_ms, self.ping_timeout_ms, self.max_payload
        );
        json
    }

    /// The `open` packet carrying [`Handshake::to_json`].
    pub fn to_packet(&self) -> Packet {
        Packet::Open(self.to_json().into())
    }
}

/// Appends `s` as a JSON string literal, quotes included.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A fresh session id: 15 bytes from the thread-local CSPRNG, encoded as 20
/// characters of URL-safe base64 (`A-Z a-z 0-9 - _`, no padding), so it
/// needs no escaping in a query string or in JSON.
///
/// ```
/// let sid = engineio_proto::generate_sid();
/// assert_eq!(sid.len(), engineio_proto::handshake::SID_LEN);
/// assert!(sid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
/// assert_ne!(sid, engineio_proto::generate_sid());
/// ```
pub fn generate_sid() -> String {
    let mut raw = [0u8; SID_BYTES];
    rand::rng().fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn spec_example_json() {
        let hs = Handshake {
            sid: "lv_VI97HAXpY6yYWAAAC".into(),
            upgrades: &["websocket"],
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
            max_payload: 1_000_000,
        };
        assert_eq!(
            hs.to_json(),
            r#"{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
        assert_eq!(
            hs,
            Handshake::new("lv_VI97HAXpY6yYWAAAC", Transport::Polling)
        );
    }

    #[test]
    fn websocket_session_offers_no_upgrade() {
        let mut hs = Handshake::new("abc", Transport::WebSocket);
        hs.ping_interval_ms = 300;
        hs.ping_timeout_ms = 200;
        assert_eq!(
            hs.to_json(),
            r#"{"sid":"abc","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#
        );
    }

    #[test]
    fn json_parses_with_expected_keys() {
        let hs = Handshake::new(generate_sid(), Transport::Polling);
        let value: serde_json::Value =
            serde_json::from_str(&hs.to_json()).expect("handshake is JSON");
        assert_eq!(
            value,
            serde_json::json!({
                "sid": hs.sid,
                "upgrades": ["websocket"],
                "pingInterval": 25000,
                "pingTimeout": 20000,
                "maxPayload": 1000000,
            })
        );
    }

    #[test]
    fn sid_is_escaped() {
        let nasty = "a\"b\\c\n\r\t\u{1}\u{1e}\u{7f}é😀</script>";
        let mut hs = Handshake::new(nasty, Transport::Polling);
        hs.max_payload = u64::MAX;
        let json = hs.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(value["sid"], nasty);
        assert_eq!(value["maxPayload"], u64::MAX);
        assert!(!json.contains('\u{1e}'), "record separator must be escaped");
    }

    #[test]
    fn open_packet() {
        let hs = Handshake::new("x", Transport::WebSocket);
        assert_eq!(hs.to_packet(), Packet::Open(hs.to_json().into()));
        let frame = hs.to_packet().ws_frame();
        assert!(frame.as_bytes().starts_with(b"0{\"sid\":\"x\""));
    }

    #[test]
    fn sids_are_url_safe_and_distinct() {
        let sids: HashSet<String> = (0..1000).map(|_| generate_sid()).collect();
        assert_eq!(sids.len(), 1000);
        for sid in &sids {
            assert_eq!(sid.len(), SID_LEN);
            assert!(sid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }
}
