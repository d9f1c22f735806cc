//! The crate's two error types.
//!
//! [`Error`] says why bytes could not be decoded into packets, with enough
//! detail (which packet of a payload, which limit) to log it and to pick the
//! HTTP status of the answer. [`EngineError`] is the protocol's own list of
//! request errors, each with the numeric code, message and HTTP status the
//! official server answers with. Writing the HTTP response and closing the
//! session that caused it are the `engineio` crate's job.

use thiserror::Error as ThisError;

/// Why a WebSocket frame or a long-polling body could not be decoded.
///
/// `index` is the position of the offending packet within a long-polling
/// payload, counting from 0; it is always 0 for a WebSocket frame. Every
/// variant but [`Error::PayloadTooLarge`] calls for an HTTP 400 answer (see
/// [`Error::http_status`]), and the protocol closes the session on any of
/// them.
///
/// ```
/// use bytes::Bytes;
/// use engineio_proto::{payload, Error, Limits};
///
/// let err = payload::decode(&Bytes::from_static(b"4ok\x1e9"), Limits::default()).unwrap_err();
/// assert_eq!(err, Error::UnknownPacketType { index: 1, byte: b'9' });
/// assert_eq!(err.http_status(), 400);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ThisError)]
pub enum Error {
    /// A long-polling body with no bytes at all.
    #[error("empty payload")]
    EmptyPayload,
    /// An empty packet: an empty WebSocket text frame, or nothing between two
    /// record separators (or before the first / after the last one).
    #[error("empty packet at index {index}")]
    EmptyPacket {
        /// Position of the packet in the payload.
        index: usize,
    },
    /// The packet does not start with a type digit `0`..=`6` (or, in a
    /// long-polling payload, with the binary marker `b`).
    #[error("unknown packet type byte {byte:#04x} at index {index}")]
    UnknownPacketType {
        /// Position of the packet in the payload.
        index: usize,
        /// The first byte of the packet.
        byte: u8,
    },
    /// A `b`-prefixed packet of a long-polling payload is not valid base64.
    #[error("invalid base64 in binary packet at index {index}")]
    InvalidBase64 {
        /// Position of the packet in the payload.
        index: usize,
    },
    /// A text packet of a long-polling payload is not valid UTF-8.
    #[error("invalid UTF-8 in packet at index {index}")]
    InvalidUtf8 {
        /// Position of the packet in the payload.
        index: usize,
    },
    /// The long-polling body is longer than [`crate::Limits::max_payload`];
    /// answer HTTP 413.
    #[error("payload larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
    /// The long-polling body holds more packets than
    /// [`crate::Limits::max_packets`].
    #[error("payload holds more than {limit} packets")]
    TooManyPackets {
        /// The limit that was exceeded.
        limit: usize,
    },
}

impl Error {
    /// The HTTP status to answer a long-polling `POST` whose body failed to
    /// decode with: 413 for [`Error::PayloadTooLarge`], 400 otherwise.
    pub const fn http_status(&self) -> u16 {
        match self {
            Error::PayloadTooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// The protocol's request errors, answered with a JSON body
/// `{"code":<code>,"message":"<message>"}`.
///
/// The codes, messages and statuses are those of the reference server: HTTP
/// 403 for [`EngineError::Forbidden`], HTTP 400 for the others.
///
/// ```
/// use engineio_proto::EngineError;
///
/// let e = EngineError::UnknownSid;
/// assert_eq!(e.code(), 1);
/// assert_eq!(e.status(), 400);
/// assert_eq!(e.json_body(), r#"{"code":1,"message":"Session ID unknown"}"#);
/// assert_eq!(EngineError::Forbidden.status(), 403);
/// assert_eq!(EngineError::from_code(5), Some(EngineError::UnsupportedProtocolVersion));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ThisError)]
pub enum EngineError {
    /// Code 0: the `transport` query parameter is missing or names no
    /// transport the server offers.
    #[error("Transport unknown")]
    TransportUnknown,
    /// Code 1: the `sid` query parameter names no live session.
    #[error("Session ID unknown")]
    UnknownSid,
    /// Code 2: a handshake (request without `sid`) that is not a `GET`.
    #[error("Bad handshake method")]
    BadHandshakeMethod,
    /// Code 3: any other malformed request.
    #[error("Bad request")]
    BadRequest,
    /// Code 4: the application refused the request.
    #[error("Forbidden")]
    Forbidden,
    /// Code 5: the `EIO` query parameter is missing or not `4`.
    #[error("Unsupported protocol version")]
    UnsupportedProtocolVersion,
}

impl EngineError {
    /// Every error, in code order.
    pub const ALL: [EngineError; 6] = [
        EngineError::TransportUnknown,
        EngineError::UnknownSid,
        EngineError::BadHandshakeMethod,
        EngineError::BadRequest,
        EngineError::Forbidden,
        EngineError::UnsupportedProtocolVersion,
    ];

    /// The numeric code sent in the JSON body.
    pub const fn code(self) -> u8 {
        match self {
            EngineError::TransportUnknown => 0,
            EngineError::UnknownSid => 1,
            EngineError::BadHandshakeMethod => 2,
            EngineError::BadRequest => 3,
            EngineError::Forbidden => 4,
            EngineError::UnsupportedProtocolVersion => 5,
        }
    }

    /// The error with numeric code `code`, if there is one.
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => EngineError::TransportUnknown,
            1 => EngineError::UnknownSid,
            2 => EngineError::BadHandshakeMethod,
            3 => EngineError::BadRequest,
            4 => EngineError::Forbidden,
            5 => EngineError::UnsupportedProtocolVersion,
            _ => return None,
        })
    }

    /// The human-readable message sent in the JSON body.
    pub const fn message(self) -> &'static str {
        match self {
            EngineError::TransportUnknown => "Transport unknown",
            EngineError::UnknownSid => "Session ID unknown",
            EngineError::BadHandshakeMethod => "Bad handshake method",
            EngineError::BadRequest => "Bad request",
            EngineError::Forbidden => "Forbidden",
            EngineError::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    /// The HTTP status of the answer: 403 for [`EngineError::Forbidden`],
    /// 400 for every other error.
    pub const fn status(self) -> u16 {
        match self {
            EngineError::Forbidden => 403,
            _ => 400,
        }
    }

    /// The JSON response body, `{"code":<code>,"message":"<message>"}`
    /// (to be sent with `Content-Type: application/json`).
    pub const fn json_body(self) -> &'static str {
        match self {
            EngineError::TransportUnknown => r#"{"code":0,"message":"Transport unknown"}"#,
            EngineError::UnknownSid => r#"{"code":1,"message":"Session ID unknown"}"#,
            EngineError::BadHandshakeMethod => r#"{"code":2,"message":"Bad handshake method"}"#,
            EngineError::BadRequest => r#"{"code":3,"message":"Bad request"}"#,
            EngineError::Forbidden => r#"{"code":4,"message":"Forbidden"}"#,
            EngineError::UnsupportedProtocolVersion => {
                r#"{"code":5,"message":"Unsupported protocol version"}"#
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_error_table() {
        let expected = [
            (0, "Transport unknown", 400),
            (1, "Session ID unknown", 400),
            (2, "Bad handshake method", 400),
            (3, "Bad request", 400),
            (4, "Forbidden", 403),
            (5, "Unsupported protocol version", 400),
        ];
        for (e, (code, message, status)) in EngineError::ALL.into_iter().zip(expected) {
            assert_eq!(e.code(), code);
            assert_eq!(e.message(), message);
            assert_eq!(e.to_string(), message);
            assert_eq!(e.status(), status);
            assert_eq!(EngineError::from_code(code), Some(e));
        }
        assert_eq!(EngineError::from_code(6), None);
    }

    #[test]
    fn engine_error_json_bodies_are_json() {
        for e in EngineError::ALL {
            let value: serde_json::Value =
                serde_json::from_str(e.json_body()).expect("body is JSON");
            assert_eq!(
                value,
                serde_json::json!({ "code": e.code(), "message": e.message() })
            );
            // Exactly the compact form, keys in this order.
            assert_eq!(
                e.json_body(),
                format!(r#"{{"code":{},"message":"{}"}}"#, e.code(), e.message())
            );
        }
    }

    #[test]
    fn decode_error_statuses() {
        assert_eq!(Error::PayloadTooLarge { limit: 1 }.http_status(), 413);
        assert_eq!(Error::EmptyPayload.http_status(), 400);
        assert_eq!(Error::TooManyPackets { limit: 1 }.http_status(), 400);
        assert_eq!(
            Error::UnknownPacketType {
                index: 2,
                byte: b'x'
            }
            .to_string(),
            "unknown packet type byte 0x78 at index 2"
        );
    }
}
