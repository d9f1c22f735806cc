//! Close codes and close frame payloads (RFC 6455 sections 5.5.1 and 7.4).
//!
//! Owns which status codes may appear on the wire and how a close payload is
//! parsed and validated. When to send a close frame, and what to do after
//! one arrives, is decided by [`crate::Connection`].

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, ProtocolViolation};
use crate::message::Utf8Bytes;

/// A close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: closed without a close frame (never sent on the wire).
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: data inconsistent with the message type (invalid UTF-8).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: message too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: unexpected condition on the server.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later (overload).
    pub const TRY_AGAIN_LATER: Self = Self(1013);

    /// Wraps a raw code without checking it.
    pub const fn new(code: u16) -> Self {
        Self(code)
    }

    /// The numeric code.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether the code may appear in a close frame: the defined codes
    /// 1000-1003 and 1007-1014, and the registered/private ranges 3000-4999.
    pub fn is_allowed_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The status code and reason carried by a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// Why the connection is closing.
    pub code: CloseCode,
    /// Human-readable detail, at most 123 bytes of UTF-8.
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// Longest reason that fits a control frame beside the 2-byte code.
    pub const MAX_REASON: usize = 123;

    /// A close frame with `code` and `reason` (cut to 123 bytes on a
    /// character boundary).
    pub fn new(code: CloseCode, reason: &str) -> Self {
        let mut end = reason.len().min(Self::MAX_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            code,
            reason: Utf8Bytes::from(&reason[..end]),
        }
    }

    /// Parses a close payload: empty, or a valid code followed by UTF-8.
    pub fn parse(payload: &[u8]) -> Result<Option<Self>, Error> {
        match payload {
            [] => Ok(None),
            [_] => Err(ProtocolViolation::CloseLengthOne.into()),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                if !code.is_allowed_on_wire() {
                    return Err(ProtocolViolation::InvalidCloseCode(code.0).into());
                }
                let reason = Utf8Bytes::try_from(Bytes::copy_from_slice(reason))
                    .map_err(|_| Error::InvalidUtf8)?;
                Ok(Some(Self { code, reason }))
            }
        }
    }

    /// Appends the payload encoding (code, then reason) to `out`.
    pub fn write_payload(&self, out: &mut BytesMut) {
        out.put_u16(self.code.0);
        out.put_slice(self.reason.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_codes() {
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(ok).is_allowed_on_wire(), "{ok}");
        }
        for bad in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(bad).is_allowed_on_wire(), "{bad}");
        }
    }

    #[test]
    fn parse_payloads() {
        assert_eq!(CloseFrame::parse(&[]).unwrap(), None);
        assert!(matches!(
            CloseFrame::parse(&[3]),
            Err(Error::Protocol(ProtocolViolation::CloseLengthOne))
        ));
        let f = CloseFrame::parse(b"\x03\xe8bye").unwrap().unwrap();
        assert_eq!((f.code, f.reason.as_str()), (CloseCode::NORMAL, "bye"));
        assert!(matches!(
            CloseFrame::parse(b"\x03\xedx"),
            Err(Error::Protocol(ProtocolViolation::InvalidCloseCode(1005)))
        ));
        assert!(matches!(
            CloseFrame::parse(b"\x03\xe8\xff"),
            Err(Error::InvalidUtf8)
        ));
    }

    #[test]
    fn reason_is_cut_on_char_boundary() {
        let long = "é".repeat(100);
        let f = CloseFrame::new(CloseCode::NORMAL, &long);
        assert_eq!(f.reason.len(), 122);
    }
}
