//! Sans-IO codec for Centrifugo's bidirectional JSON client protocol (v2).
//!
//! This crate is the wire format of `/connection/websocket`, so that the
//! existing Centrifugo SDKs (centrifuge-js, centrifuge-python, ...) talk to
//! duplex unchanged. It decodes what clients send into typed [`Command`]s
//! and encodes replies, pushes and pings, and nothing more: no sockets, no
//! timers, no state. Which commands are allowed when, tokens, channels,
//! presence and history are the server's business.
//!
//! - Decoding: [`decode_frame`] splits a text frame on `\n` under
//!   configurable [`Limits`] and yields one `Result<Command, Error>` per
//!   line. Unknown fields are ignored; a known field of the wrong type is an
//!   [`Error::BadRequest`] carrying the command id, and [`Error::action`]
//!   says whether to answer it (107) or close the connection (3501).
//! - Payloads (`data`, `conn_info`, `chan_info`) stay raw JSON text
//!   ([`RawJson`]), validated once and never re-serialized.
//! - Encoding writes JSON directly into a reusable [`FrameBuf`], leaving
//!   zero values out as Centrifugo does. A publication is encoded once per
//!   channel with [`encode_publication_push`] and shared by all subscribers.
//!
//! ```
//! use centrifuge_proto::*;
//!
//! // What centrifuge-js sends when it connects and subscribes at once.
//! let frame = concat!(
//!     r#"{"connect":{"token":"T","name":"js"},"id":1}"#, "\n",
//!     r#"{"subscribe":{"channel":"chat","recover":true,"offset":5,"epoch":"e"},"id":2}"#,
//! );
//! let mut frame_out = FrameBuf::new();
//! for command in decode_frame(frame, &Limits::default())? {
//!     match command {
//!         Ok(Command::Connect { id, req }) => {
//!             assert_eq!(req.token, "T");
//!             let result = ConnectResult {
//!                 client: "c1".into(),
//!                 version: "0.1.0".into(),
//!                 ping: 25,
//!                 pong: true,
//!                 ..Default::default()
//!             };
//!             frame_out.reply(id, &ReplyResult::Connect(result));
//!         }
//!         Ok(Command::Subscribe { id, req }) => {
//!             assert!(req.recover);
//!             frame_out.error(id, &ErrorCode::UnrecoverablePosition.into());
//!         }
//!         Ok(_) => {}
//!         Err(e) => match e.action() {
//!             ErrorAction::Reply { id, error } => frame_out.error(id, &error.into()),
//!             ErrorAction::Close(disconnect) => { /* close with disconnect.code */ }
//!         },
//!     }
//! }
//! assert_eq!(
//!     frame_out.as_str(),
//!     concat!(
//!         r#"{"id":1,"connect":{"client":"c1","version":"0.1.0","ping":25,"pong":true}}"#, "\n",
//!         r#"{"id":2,"error":{"code":112,"message":"unrecoverable position"}}"#,
//!     )
//! );
//! # Ok::<(), Error>(())
//! ```

//! # Where this differs from Centrifugo
//!
//! Centrifugo closes the connection (3501) on every malformed command. We
//! follow it except where the command id is known and the SDKs can handle
//! a per-call error; see [`Error::action`]:
//! - a method body of the wrong shape (a field of the wrong type, not an
//!   object, a missing channel or publish `data`) is answered with 107;
//! - an id without a known method (e.g. the legacy `ping` method, or a
//!   newer SDK's method) is answered with 104 (method not found);
//! - a command with several methods is answered with 107 (Centrifugo takes
//!   the first);
//! - `{"id":0,"subscribe":...}` is refused as [`Error::MissingId`]
//!   (Centrifugo would count any id-less command without `send` as a pong);
//! - an empty frame carries no commands instead of being an error;
//! - an error reply always has its `message`, even an empty one
//!   (centrifuge-python reads it unconditionally).
//!
//! Replies must carry a non-zero id: the SDKs take an id-less message for a
//! push or a ping.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod codes;
mod command;
mod decode;
mod error;
mod frame;
mod json;
mod push;
mod raw;
mod reply;

pub use codes::{Disconnect, ErrorCode, ReplyError, Unsubscribe};
pub use command::{
    Command, ConnectRequest, HistoryRequest, Method, PresenceRequest, PresenceStatsRequest,
    PublishRequest, RefreshRequest, RpcRequest, SendRequest, StreamPosition, SubRefreshRequest,
    SubscribeRequest, UnsubscribeRequest,
};
pub use decode::{check_depth, decode_command, decode_frame, Commands, Limits};
pub use error::{Error, ErrorAction};
pub use frame::{encode_error_reply, encode_publication_push, encode_push, encode_reply, FrameBuf};
pub use push::{ClientInfo, Publication, Push, RefreshPush, SubscribePush};
pub use raw::RawJson;
pub use reply::{
    ConnectResult, HistoryResult, PresenceResult, PresenceStatsResult, RefreshResult, ReplyResult,
    RpcResult, SubRefreshResult, SubscribeResult,
};
pub use ws_proto::Utf8Bytes;
