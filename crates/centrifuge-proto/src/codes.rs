//! The protocol's numeric codes: reply errors, disconnects, unsubscribes.
//!
//! The numbers and their reasons are the ones Centrifugo's SDKs know, so a
//! client reacts to ours exactly as to Centrifugo's: reply error 109 makes
//! it fetch a fresh token, disconnect 3001 makes it reconnect, 3500 makes
//! it stop. Which code a server situation deserves is the server's
//! decision; this module only names them and knows how they are spelled
//! and whether they are final.

use std::borrow::Cow;
use std::fmt;

/// A reply error code, sent as `{"id":N,"error":{"code":C,"message":"..."}}`.
///
/// Application-defined codes (Centrifugo reserves 0–399 for itself) can be
/// sent with [`ReplyError::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 100: the server failed; temporary, the SDKs retry.
    Internal,
    /// 101: the connection is not authenticated, e.g. connect without a
    /// token outside dev mode.
    Unauthorized,
    /// 102: the channel's namespace does not exist.
    UnknownChannel,
    /// 103: not allowed to do this in this channel.
    PermissionDenied,
    /// 104: the command names no method this server knows.
    MethodNotFound,
    /// 105: the connection is already subscribed to the channel.
    AlreadySubscribed,
    /// 106: a configured limit (subscriptions, channel length, ...) is hit.
    LimitExceeded,
    /// 107: the command is malformed or lacks a required field.
    BadRequest,
    /// 108: the feature (presence, history, ...) is off for this channel.
    NotAvailable,
    /// 109: the token has expired; the SDKs fetch a new one and retry.
    TokenExpired,
    /// 110: the connection's or subscription's credentials have expired.
    Expired,
    /// 111: rate limited; temporary.
    TooManyRequests,
    /// 112: the requested stream position can no longer be recovered.
    UnrecoverablePosition,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::Internal,
        ErrorCode::Unauthorized,
        ErrorCode::UnknownChannel,
        ErrorCode::PermissionDenied,
        ErrorCode::MethodNotFound,
        ErrorCode::AlreadySubscribed,
        ErrorCode::LimitExceeded,
        ErrorCode::BadRequest,
        ErrorCode::NotAvailable,
        ErrorCode::TokenExpired,
        ErrorCode::Expired,
        ErrorCode::TooManyRequests,
        ErrorCode::UnrecoverablePosition,
    ];

    /// The number on the wire.
    pub const fn code(self) -> u32 {
        match self {
            ErrorCode::Internal => 100,
            ErrorCode::Unauthorized => 101,
            ErrorCode::UnknownChannel => 102,
            ErrorCode::PermissionDenied => 103,
            ErrorCode::MethodNotFound => 104,
            ErrorCode::AlreadySubscribed => 105,
            ErrorCode::LimitExceeded => 106,
            ErrorCode::BadRequest => 107,
            ErrorCode::NotAvailable => 108,
            ErrorCode::TokenExpired => 109,
            ErrorCode::Expired => 110,
            ErrorCode::TooManyRequests => 111,
            ErrorCode::UnrecoverablePosition => 112,
        }
    }

    /// The standard message.
    pub const fn message(self) -> &'static str {
        match self {
            ErrorCode::Internal => "internal server error",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::UnknownChannel => "unknown channel",
            ErrorCode::PermissionDenied => "permission denied",
            ErrorCode::MethodNotFound => "method not found",
            ErrorCode::AlreadySubscribed => "already subscribed",
            ErrorCode::LimitExceeded => "limit exceeded",
            ErrorCode::BadRequest => "bad request",
            ErrorCode::NotAvailable => "not available",
            ErrorCode::TokenExpired => "token expired",
            ErrorCode::Expired => "expired",
            ErrorCode::TooManyRequests => "too many requests",
            ErrorCode::UnrecoverablePosition => "unrecoverable position",
        }
    }

    /// Whether the SDKs should retry: true for 100 and 111, as Centrifugo
    /// marks them.
    pub const fn temporary(self) -> bool {
        matches!(self, ErrorCode::Internal | ErrorCode::TooManyRequests)
    }

    /// The code with this number, if it is one of the standard ones.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.message())
    }
}

/// The `error` object of a reply: `{"code":C,"message":"...","temporary":true}`
/// (`temporary` left out when false).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplyError {
    /// The code.
    pub code: u32,
    /// A short text for humans.
    pub message: Cow<'static, str>,
    /// Whether the client may retry the same command.
    pub temporary: bool,
}

impl ReplyError {
    /// An arbitrary (e.g. application-defined) error.
    pub fn new(code: u32, message: impl Into<Cow<'static, str>>, temporary: bool) -> Self {
        ReplyError {
            code,
            message: message.into(),
            temporary,
        }
    }
}

impl From<ErrorCode> for ReplyError {
    fn from(code: ErrorCode) -> Self {
        ReplyError {
            code: code.code(),
            message: Cow::Borrowed(code.message()),
            temporary: code.temporary(),
        }
    }
}

/// Why the server ends a connection: the code and reason of the WebSocket
/// close frame, and of the `disconnect` push
/// (`{"code":C,"reason":"...","reconnect":true}`).
///
/// Codes 3000–3499 and 4000–4499 ask the client to reconnect; 3500–3999 and
/// 4500–4999 are final. The SDKs decide from the code alone; `reconnect`
/// repeats it for older clients and is derived by [`Disconnect::new`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Disconnect {
    /// The close code.
    pub code: u32,
    /// A short reason (a close frame allows at most 123 bytes).
    pub reason: Cow<'static, str>,
    /// Whether the client should reconnect.
    pub reconnect: bool,
}

macro_rules! disconnects {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $reason:literal;)*) => {
        impl Disconnect {
            $(
                $(#[$doc])*
                pub const $name: Disconnect = Disconnect {
                    code: $code,
                    reason: Cow::Borrowed($reason),
                    reconnect: Disconnect::reconnects($code),
                };
            )*

            /// Every named disconnect, in numeric order.
            pub const ALL: &'static [Disconnect] = &[$(Disconnect::$name),*];
        }
    };
}

disconnects! {
    /// 3000: the connection closed (transport level); reconnect.
    CONNECTION_CLOSED = 3000, "connection closed";
    /// 3001: the server is shutting down; reconnect (to another node).
    SHUTDOWN = 3001, "shutdown";
    /// 3004: internal server error; reconnect.
    SERVER_ERROR = 3004, "internal server error";
    /// 3005: the connection's credentials expired; reconnect with a new
    /// token.
    EXPIRED = 3005, "connection expired";
    /// 3006: a subscription's credentials expired; reconnect.
    SUB_EXPIRED = 3006, "subscription expired";
    /// 3008: the client reads too slowly, its queue overflowed; reconnect.
    SLOW = 3008, "slow";
    /// 3009: writing to the connection failed; reconnect.
    WRITE_ERROR = 3009, "write error";
    /// 3010: the server lost the subscription state; reconnect.
    INSUFFICIENT_STATE = 3010, "insufficient state";
    /// 3011: the server asks the client to reconnect.
    FORCE_RECONNECT = 3011, "force reconnect";
    /// 3012: no pong within the pong timeout; reconnect.
    NO_PONG = 3012, "no pong";
    /// 3013: too many requests; reconnect later.
    TOO_MANY_REQUESTS = 3013, "too many requests";
    /// 3500: the connection token is invalid; final.
    INVALID_TOKEN = 3500, "invalid token";
    /// 3501: the client broke the protocol; final.
    BAD_REQUEST = 3501, "bad request";
    /// 3502: no connect command in time after the WebSocket opened; final.
    STALE = 3502, "stale";
    /// 3503: the server disconnects the client for good.
    FORCE_NO_RECONNECT = 3503, "force disconnect";
    /// 3504: too many connections (per user or in total); final.
    CONNECTION_LIMIT = 3504, "connection limit";
    /// 3505: too many channels; final.
    CHANNEL_LIMIT = 3505, "channel limit";
    /// 3506: the client speaks a protocol or format the server does not
    /// accept; final.
    INAPPROPRIATE_PROTOCOL = 3506, "inappropriate protocol";
    /// 3507: permission denied; final.
    PERMISSION_DENIED = 3507, "permission denied";
    /// 3508: not available; final.
    NOT_AVAILABLE = 3508, "not available";
    /// 3509: too many errors; final.
    TOO_MANY_ERRORS = 3509, "too many errors";
    /// 1009 (RFC 6455 "message too big"): a frame exceeded
    /// [`Limits::max_frame_len`](crate::Limits::max_frame_len). A
    /// WebSocket-level code, so the SDKs treat it as a transport failure and
    /// reconnect.
    MESSAGE_TOO_BIG = 1009, "message too big";
}

impl Disconnect {
    /// A disconnect with `reconnect` derived from the code's range.
    pub fn new(code: u32, reason: impl Into<Cow<'static, str>>) -> Self {
        Disconnect {
            code,
            reason: reason.into(),
            reconnect: Self::reconnects(code),
        }
    }

    /// Whether the SDKs reconnect after this close code: everything except
    /// 3500–3999 and 4500–4999.
    pub const fn reconnects(code: u32) -> bool {
        !matches!(code, 3500..=3999 | 4500..=4999)
    }

    /// The close code as the 16-bit number of a WebSocket close frame
    /// (`None` if it does not fit).
    pub fn close_code(&self) -> Option<u16> {
        u16::try_from(self.code).ok()
    }
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

/// The body of an `unsubscribe` push: `{"code":C,"reason":"..."}`.
///
/// Codes below 2500 leave the client unsubscribed; 2500 and above make it
/// resubscribe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Unsubscribe {
    /// The code (a zero code is left out on the wire).
    pub code: u32,
    /// A short reason.
    pub reason: Cow<'static, str>,
}

impl Unsubscribe {
    /// 2000: the server unsubscribed the client (e.g. the server API's
    /// `unsubscribe`); the client does not resubscribe.
    pub const SERVER: Unsubscribe = Unsubscribe {
        code: 2000,
        reason: Cow::Borrowed("server unsubscribe"),
    };
    /// 2500: the server lost the subscription's state; the client
    /// resubscribes (and recovers).
    pub const INSUFFICIENT_STATE: Unsubscribe = Unsubscribe {
        code: 2500,
        reason: Cow::Borrowed("insufficient state"),
    };
    /// 2501: the subscription token expired; the client resubscribes with a
    /// new one.
    pub const EXPIRED: Unsubscribe = Unsubscribe {
        code: 2501,
        reason: Cow::Borrowed("subscription expired"),
    };

    /// Whether the client resubscribes after this code.
    pub const fn resubscribes(code: u32) -> bool {
        code >= 2500
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes() {
        for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(code.code(), 100 + i as u32);
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
        }
        assert_eq!(ErrorCode::from_code(99), None);
        assert_eq!(ErrorCode::BadRequest.message(), "bad request");
        assert!(ErrorCode::Internal.temporary());
        assert!(ErrorCode::TooManyRequests.temporary());
        assert!(!ErrorCode::TokenExpired.temporary());
        let e = ReplyError::from(ErrorCode::UnrecoverablePosition);
        assert_eq!(
            (e.code, &*e.message, e.temporary),
            (112, "unrecoverable position", false)
        );
    }

    #[test]
    fn disconnects() {
        assert_eq!(Disconnect::SHUTDOWN.code, 3001);
        for d in [Disconnect::SHUTDOWN, Disconnect::SLOW, Disconnect::NO_PONG] {
            assert!(d.reconnect, "{d}");
        }
        for d in [
            Disconnect::INVALID_TOKEN,
            Disconnect::BAD_REQUEST,
            Disconnect::STALE,
            Disconnect::CONNECTION_LIMIT,
            Disconnect::PERMISSION_DENIED,
        ] {
            assert!(!d.reconnect, "{d}");
            assert!((3500..4000).contains(&d.code));
        }
        for d in Disconnect::ALL {
            assert_eq!(d.reconnect, !(3500..4000).contains(&d.code));
            assert!(d.reason.len() <= 123);
            assert!(d.close_code().is_some());
        }
        assert!(Disconnect::new(4001, "app").reconnect);
        assert!(!Disconnect::new(4501, "app").reconnect);
        assert_eq!(Disconnect::MESSAGE_TOO_BIG.close_code(), Some(1009));
    }
}
