//! The HTTP/1.1 opening handshake of RFC 6455 (section 4), both sides, sans-IO.
//!
//! This module owns the bytes of the upgrade: it parses and validates a
//! client's upgrade request ([`parse_request`], [`validate_upgrade`]),
//! computes `Sec-WebSocket-Accept` ([`accept_key`]), picks a subprotocol,
//! hands permessage-deflate negotiation to [`crate::deflate::DeflateConfig`],
//! and renders either the `101 Switching Protocols` response ([`accept`]) or a
//! small rejection response ([`HandshakeError::response`]). On the client side
//! it builds the upgrade request ([`client_request`]) and checks the server's
//! answer ([`parse_response`]). Parsing is incremental: callers feed whatever
//! bytes they have and get "need more" until the header block is complete;
//! bytes after the header block are never consumed, because they already
//! belong to the WebSocket stream.
//!
//! It does not own sockets, TLS, timeouts, URL parsing, redirects, proxies,
//! authentication, cookies or WebSocket over HTTP/2 (RFC 8441): those are the
//! caller's business (the tokio layer in `duplex-ws`). It does not interpret
//! extension parameters either: permessage-deflate parameters are parsed by
//! [`crate::deflate`]; the server ignores other extension offers and the client
//! rejects any extension it did not offer.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

mod client;
mod server;

pub use client::{client_request, parse_response, ClientOptions, ClientRequest, ClientResponse};
pub use server::{
    accept, parse_request, validate_upgrade, AcceptOptions, Accepted, OriginCheck, UpgradeRequest,
};

/// The GUID RFC 6455 appends to `Sec-WebSocket-Key` before hashing.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// How many characters of peer-controlled text an error message keeps.
const CLIP_CHARS: usize = 64;

/// Computes the `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`: the
/// base64 of the SHA-1 of the key followed by the RFC 6455 GUID.
///
/// The key is hashed exactly as given (callers pass it already trimmed).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID);
    STANDARD.encode(sha.finalize())
}

/// Limits applied while parsing a handshake header block, on either side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest accepted header block, request/status line and the final empty
    /// line included, in bytes. Default 8 KiB; beyond it the parse fails with
    /// [`HandshakeError::HeadersTooLarge`] (status 431).
    pub max_header_bytes: usize,
    /// Largest accepted number of header fields. Default 64; beyond it the
    /// parse fails with [`HandshakeError::TooManyHeaders`] (status 431).
    pub max_headers: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 8 * 1024,
            max_headers: 64,
        }
    }
}

/// Why an opening handshake failed.
///
/// Server-side variants map to an HTTP status ([`status`](Self::status)) and
/// can be rendered into a complete rejection response
/// ([`response`](Self::response)) to write before closing the connection.
/// Client-side variants describe a bad answer from the server; they report
/// status 502 and are not meant to be sent anywhere.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The bytes are not a well-formed HTTP/1.x message (status 400).
    #[error("malformed HTTP message: {0}")]
    Malformed(String),
    /// The request method is not `GET` (status 405, with `Allow: GET`).
    #[error("method {method} is not allowed, a WebSocket upgrade must use GET")]
    MethodNotAllowed {
        /// The method the client used (clipped to a few dozen characters).
        method: String,
    },
    /// The request is HTTP/1.0 (status 400); RFC 6455 needs HTTP/1.1 or later.
    #[error("a WebSocket upgrade requires HTTP/1.1 or later")]
    HttpVersion,
    /// A required header is absent (status 400).
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header that must appear once appears several times (status 400).
    #[error("duplicate {0} header")]
    DuplicateHeader(&'static str),
    /// The message is not a WebSocket upgrade: `header` lacks `token`
    /// (`Upgrade: websocket` or `Connection: upgrade`) (status 400).
    #[error("not a WebSocket upgrade: the {header} header does not contain {token:?}")]
    NotUpgrade {
        /// The header that is missing or lacks the token.
        header: &'static str,
        /// The token that was expected in it.
        token: &'static str,
    },
    /// `Sec-WebSocket-Key` is not the base64 encoding of 16 bytes (status 400).
    #[error("Sec-WebSocket-Key is not the base64 encoding of 16 bytes")]
    BadKey,
    /// `Sec-WebSocket-Version` is not 13 (status 426, with
    /// `Sec-WebSocket-Version: 13`).
    #[error("unsupported WebSocket version {got:?}, only version 13 is supported")]
    UnsupportedVersion {
        /// The version the client asked for (clipped).
        got: String,
    },
    /// The origin check of [`AcceptOptions`] refused the request (status 403).
    #[error("origin {} is not allowed", .origin.as_deref().unwrap_or("(none)"))]
    OriginRejected {
        /// The `Origin` header of the request, if any (clipped).
        origin: Option<String>,
    },
    /// The header block is larger than [`RequestLimits::max_header_bytes`]
    /// (status 431).
    #[error("header block exceeds {limit} bytes")]
    HeadersTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The header block has more fields than [`RequestLimits::max_headers`]
    /// (status 431).
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The limit in force.
        limit: usize,
    },
    /// permessage-deflate negotiation failed (status 400 on the server).
    #[error("permessage-deflate negotiation failed: {0}")]
    Deflate(#[source] crate::deflate::DeflateError),
    /// A header configured in [`AcceptOptions`] has an invalid name or a value
    /// with control characters (status 500: a bug on our side, not the peer's).
    #[error("configured response header {name:?} is not valid HTTP")]
    InvalidHeader {
        /// The offending header name (clipped).
        name: String,
    },
    /// Client side: the server answered with a status other than 101.
    #[error("server answered {status} {reason} instead of 101 Switching Protocols")]
    UnexpectedStatus {
        /// The HTTP status code of the response.
        status: u16,
        /// The reason phrase (clipped).
        reason: String,
    },
    /// Client side: `Sec-WebSocket-Accept` does not match our key.
    #[error("Sec-WebSocket-Accept is {got:?}, expected {expected:?}")]
    AcceptMismatch {
        /// The value derived from the key we sent.
        expected: String,
        /// The value the server sent (clipped).
        got: String,
    },
    /// Client side: the server selected a subprotocol we did not offer.
    #[error("server selected subprotocol {0:?}, which was not offered")]
    UnexpectedProtocol(String),
    /// Client side: the server accepted an extension we did not offer.
    #[error("server accepted extension {0:?}, which was not offered")]
    UnexpectedExtension(String),
}

impl HandshakeError {
    /// The HTTP status code a server should answer with for this error.
    ///
    /// 400 for malformed or invalid requests, 403 for a rejected origin, 405
    /// for a non-GET method, 426 for an unsupported WebSocket version, 431 for
    /// oversized header blocks, 500 for invalid configured headers, and 502
    /// for the client-side variants.
    pub fn status(&self) -> u16 {
        match self {
            Self::MethodNotAllowed { .. } => 405,
            Self::OriginRejected { .. } => 403,
            Self::UnsupportedVersion { .. } => 426,
            Self::HeadersTooLarge { .. } | Self::TooManyHeaders { .. } => 431,
            Self::InvalidHeader { .. } => 500,
            Self::UnexpectedStatus { .. }
            | Self::AcceptMismatch { .. }
            | Self::UnexpectedProtocol(_)
            | Self::UnexpectedExtension(_) => 502,
            Self::Malformed(_)
            | Self::HttpVersion
            | Self::MissingHeader(_)
            | Self::DuplicateHeader(_)
            | Self::NotUpgrade { .. }
            | Self::BadKey
            | Self::Deflate(_) => 400,
        }
    }

    /// Renders a complete HTTP/1.1 rejection response for this error: status
    /// line, `Content-Type: text/plain`, `Content-Length`, `Connection: close`
    /// (426 additionally carries `Sec-WebSocket-Version: 13` and, as HTTP
    /// requires for 426, `Upgrade: websocket`; 405 carries `Allow: GET`) and a
    /// one-line body saying what was wrong.
    pub fn response(&self) -> Vec<u8> {
        let status = self.status();
        let body: String = self
            .to_string()
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .chain(std::iter::once('\n'))
            .collect();
        let mut out = Vec::with_capacity(160 + body.len());
        out.extend_from_slice(
            format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes(),
        );
        out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        match status {
            426 => out.extend_from_slice(
                b"Connection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
            ),
            405 => out.extend_from_slice(b"Connection: close\r\nAllow: GET\r\n"),
            _ => out.extend_from_slice(b"Connection: close\r\n"),
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body.as_bytes());
        out
    }
}

/// The reason phrase for the statuses this module produces.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Error",
    }
}

/// Peer-controlled text made safe for an error message: control characters
/// replaced and the length bounded.
fn clip(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(CLIP_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().nth(CLIP_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// [`clip`] for header bytes that may not be UTF-8.
fn clip_bytes(b: &[u8]) -> String {
    clip(&String::from_utf8_lossy(b))
}

/// Whether `b` is an RFC 9110 `tchar` (allowed in tokens and header names).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` is a non-empty RFC 9110 token.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Whether `v` may be sent as a header value: no CR, LF, NUL or other control
/// character except horizontal tab.
fn is_valid_value(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Whether any of the comma-separated elements of the header values equals
/// `token`, ASCII case-insensitively.
fn has_token<'a>(values: impl IntoIterator<Item = &'a [u8]>, token: &str) -> bool {
    values.into_iter().any(|v| {
        v.split(|&b| b == b',')
            .any(|e| e.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Appends the non-empty, trimmed elements of a comma-separated header value
/// to `out`. Commas inside quoted strings (with `\` escapes) do not split; an
/// unterminated quote runs to the end of the value.
fn split_list(value: &str, out: &mut Vec<String>) {
    let mut push = |s: &str| {
        let s = s.trim();
        if !s.is_empty() {
            out.push(s.to_owned());
        }
    };
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        if quoted {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
        } else if c == '"' {
            quoted = true;
        } else if c == ',' {
            push(&value[start..i]);
            start = i + 1;
        }
    }
    push(&value[start..]);
}

/// The part of `buf` an incremental parse looks at: never past the limit, so
/// a complete block within it parses the same and an incomplete window of full
/// length means the block is too large (see [`incomplete`]).
fn header_window<'b>(buf: &'b [u8], limits: &RequestLimits) -> &'b [u8] {
    &buf[..buf.len().min(limits.max_header_bytes)]
}

/// The result of a partial parse of `window`: need more bytes, or 431 when
/// the window already holds `max_header_bytes` bytes.
fn incomplete<T>(window: &[u8], limits: &RequestLimits) -> Result<Option<T>, HandshakeError> {
    if window.len() >= limits.max_header_bytes {
        Err(HandshakeError::HeadersTooLarge {
            limit: limits.max_header_bytes,
        })
    } else {
        Ok(None)
    }
}

/// Maps an httparse error to ours.
fn httparse_error(e: httparse::Error, limits: &RequestLimits) -> HandshakeError {
    match e {
        httparse::Error::TooManyHeaders => HandshakeError::TooManyHeaders {
            limit: limits.max_headers,
        },
        e => HandshakeError::Malformed(e.to_string()),
    }
}

/// Appends `name: value\r\n`, refusing names that are not tokens and values
/// with control characters (they would let a value inject headers).
fn push_header(out: &mut Vec<u8>, name: &str, value: &str) -> Result<(), HandshakeError> {
    if !is_token(name) || !is_valid_value(value) {
        return Err(HandshakeError::InvalidHeader { name: clip(name) });
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept_key_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn split_list_respects_quotes() {
        let mut v = Vec::new();
        split_list(
            r#"permessage-deflate; client_max_window_bits, x; a="1,2", , y; b="q\"," "#,
            &mut v,
        );
        assert_eq!(
            v,
            [
                "permessage-deflate; client_max_window_bits",
                r#"x; a="1,2""#,
                r#"y; b="q\",""#,
            ]
        );
        let mut v = Vec::new();
        split_list(r#"a; b="unterminated, c"#, &mut v);
        assert_eq!(v, [r#"a; b="unterminated, c"#]);
    }

    #[test]
    fn tokens_are_case_insensitive_list_elements() {
        assert!(has_token([&b"keep-alive, Upgrade"[..]], "upgrade"));
        assert!(has_token([&b"close"[..], &b" UPGRADE "[..]], "upgrade"));
        assert!(!has_token([&b"upgrades"[..]], "upgrade"));
    }

    #[test]
    fn clip_bounds_and_sanitizes() {
        assert_eq!(clip("a\r\nb"), "a??b");
        let long = "x".repeat(500);
        assert_eq!(clip(&long).chars().count(), CLIP_CHARS + 1);
    }

    #[test]
    fn rejection_responses_are_complete() {
        let e = HandshakeError::UnsupportedVersion { got: "8".into() };
        let r = String::from_utf8(e.response()).unwrap_or_default();
        assert!(r.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(r.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        let (head, body) = r.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(body.ends_with('\n') && body.lines().count() == 1);

        let r = String::from_utf8(
            HandshakeError::MethodNotAllowed {
                method: "POST".into(),
            }
            .response(),
        )
        .unwrap_or_default();
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(r.contains("\r\nAllow: GET\r\n"));
        assert!(r.contains("\r\nConnection: close\r\n"));
    }
}
