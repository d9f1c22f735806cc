//! The crate's single error type, and what a server should do about each.
//!
//! Decoding errors come in two kinds. Most mean the client cannot be talked
//! to sensibly any more — the frame is too big, a line is not JSON, there
//! is no id to answer — and Centrifugo closes such a connection with 3501
//! (bad request). But when the envelope parsed and only the method's body
//! is wrong, the command's id is known, and answering
//! `{"id":N,"error":{"code":107,"message":"bad request"}}` lets the SDK
//! reject that one call while the connection lives on. [`Error::action`]
//! makes that choice in one place.

use crate::{Disconnect, ErrorCode, Method};

/// Everything this crate can fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The frame is longer than [`Limits::max_frame_len`](crate::Limits).
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// The frame's length in bytes.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The frame holds more commands than
    /// [`Limits::max_commands`](crate::Limits).
    #[error("frame holds more than {limit} commands")]
    TooManyCommands {
        /// The configured limit.
        limit: usize,
    },
    /// A line of the frame is empty or blank.
    #[error("empty command")]
    EmptyCommand,
    /// A command nests arrays and objects deeper than
    /// [`Limits::max_depth`](crate::Limits).
    #[error("command nests deeper than {limit} levels")]
    TooDeep {
        /// The configured limit.
        limit: usize,
    },
    /// The line is not a JSON object, or its `id` is not a `u32`; no id
    /// can be answered.
    #[error("malformed command: {0}")]
    Malformed(#[source] serde_json::Error),
    /// A method other than `send` came without an id.
    #[error("{method} command without an id")]
    MissingId {
        /// The method.
        method: Method,
    },
    /// The command has an id but no method this crate knows (or none).
    #[error("command {id} names no known method")]
    UnknownMethod {
        /// The command id.
        id: u32,
    },
    /// The command carries more than one method.
    #[error("command {id} carries both {} and {}", methods[0], methods[1])]
    AmbiguousMethod {
        /// The command id.
        id: u32,
        /// The first two methods found.
        methods: [Method; 2],
    },
    /// The method's body has the wrong shape (a field of the wrong type, not
    /// an object) or lacks a required field.
    #[error("bad {method} request {id}: {reason}")]
    BadRequest {
        /// The command id.
        id: u32,
        /// The method.
        method: Method,
        /// What is wrong, for logs (never sent to the client).
        reason: String,
    },
    /// Text given to [`RawJson`](crate::RawJson) is not one JSON value.
    #[error("invalid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
}

/// What a server should do about a decoding [`Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorAction {
    /// Answer the command with this error and carry on with the next one.
    Reply {
        /// The command id to answer.
        id: u32,
        /// The error to send.
        error: ErrorCode,
    },
    /// Close the connection with this code (a `disconnect`).
    Close(Disconnect),
}

impl Error {
    /// The id of the command the error is about, if it is known.
    pub fn command_id(&self) -> Option<u32> {
        match self {
            Error::UnknownMethod { id }
            | Error::AmbiguousMethod { id, .. }
            | Error::BadRequest { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// The recommended reaction, as Centrifugo's where it has one:
    /// - [`Error::BadRequest`], [`Error::AmbiguousMethod`]: reply 107;
    /// - [`Error::UnknownMethod`]: reply 104 (method not found), so that a
    ///   newer SDK's call fails on its own instead of costing the
    ///   connection;
    /// - [`Error::FrameTooLarge`]: close 1009 (message too big), as a
    ///   WebSocket read limit would;
    /// - anything else: close 3501 (bad request), which the SDKs do not
    ///   retry.
    pub fn action(&self) -> ErrorAction {
        match self {
            Error::BadRequest { id, .. } | Error::AmbiguousMethod { id, .. } => {
                ErrorAction::Reply {
                    id: *id,
                    error: ErrorCode::BadRequest,
                }
            }
            Error::UnknownMethod { id } => ErrorAction::Reply {
                id: *id,
                error: ErrorCode::MethodNotFound,
            },
            Error::FrameTooLarge { .. } => ErrorAction::Close(Disconnect::MESSAGE_TOO_BIG),
            _ => ErrorAction::Close(Disconnect::BAD_REQUEST),
        }
    }
}
