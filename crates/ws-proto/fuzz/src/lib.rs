//! Helpers shared by the fuzz targets of `duplex-ws-proto`.
//!
//! The central piece is [`drive`]: it feeds bytes to a [`Connection`] in
//! pieces whose sizes come from the fuzz input, checks the invariants that
//! must hold after every `receive` call, and records an [`Outcome`] that two
//! runs over the same bytes with different split points can be compared by.

use ws_proto::frame::MAX_CONTROL_PAYLOAD;
use ws_proto::{CloseFrame, Config, Connection, Error, Message};

/// Piece sizes for feeding input: cycles through `lens`, a length byte of 0
/// meaning "everything that is left". With no lengths, one piece.
#[derive(Clone, Debug)]
pub struct Splits<'a> {
    lens: &'a [u8],
    next: usize,
}

impl<'a> Splits<'a> {
    /// Pieces of the given lengths, cycled.
    pub fn new(lens: &'a [u8]) -> Self {
        Self { lens, next: 0 }
    }

    /// The size of the next piece, given how much input is left (never 0
    /// while input is left).
    pub fn take(&mut self, left: usize) -> usize {
        if self.lens.is_empty() {
            return left;
        }
        let len = self.lens[self.next % self.lens.len()];
        self.next += 1;
        match len {
            0 => left,
            n => usize::from(n).min(left),
        }
    }
}

/// What a connection made of some input: the messages, how it ended, and
/// what it queued for the peer.
#[derive(Debug)]
pub struct Outcome {
    /// Every message `receive` returned, in order.
    pub messages: Vec<Message>,
    /// The first error `receive` returned (input after it is not fed).
    pub error: Option<String>,
    /// That error's close code.
    pub close_code: Option<u16>,
    /// `is_closed()` at the end.
    pub closed: bool,
    /// `is_mid_message()` at the end.
    pub mid_message: bool,
    /// Everything the connection queued for the peer.
    pub output: Vec<u8>,
}

/// Feeds `wire` to `conn` in pieces sized by `splits` and checks, after
/// every call, the invariants of [`Connection::receive`]:
///
/// * it consumes at most what it was given, and makes progress on non-empty
///   input;
/// * every message is well-formed (see [`check_message`]);
/// * after a `Close` message, and after any error, `is_closed()` holds;
///   `Error::Closed` is returned exactly when the connection was already
///   closed; an error with a close code queues a close frame when the
///   connection had not sent one yet; a failed connection refuses further
///   input and sends.
pub fn drive(mut conn: Connection, config: &Config, wire: &[u8], mut splits: Splits) -> Outcome {
    let mut messages = Vec::new();
    let mut error = None;
    let mut close_code = None;
    let mut rest = wire;
    'feed: while !rest.is_empty() {
        let (mut piece, tail) = rest.split_at(splits.take(rest.len()));
        rest = tail;
        while !piece.is_empty() {
            let closed_before = conn.is_closed();
            let close_sent_before = conn.close_sent();
            let output_before = conn.pending_output();
            match conn.receive(piece) {
                Ok((used, message)) => {
                    assert!(!closed_before, "receive succeeded on a closed connection");
                    assert!(
                        used <= piece.len(),
                        "consumed {used} of {} bytes",
                        piece.len()
                    );
                    assert!(
                        used > 0,
                        "receive made no progress on {} bytes",
                        piece.len()
                    );
                    piece = &piece[used..];
                    if let Some(message) = message {
                        check_message(&message, config);
                        if matches!(message, Message::Close(_)) {
                            assert!(conn.is_closed(), "a close frame did not close");
                        }
                        messages.push(message);
                    }
                }
                Err(err) => {
                    assert!(conn.is_closed(), "not closed after error: {err}");
                    assert_eq!(
                        matches!(err, Error::Closed),
                        closed_before,
                        "Error::Closed iff already closed, got: {err}"
                    );
                    if !close_sent_before && err.close_code().is_some() {
                        assert!(
                            conn.pending_output() > output_before,
                            "no close frame queued for: {err}"
                        );
                    }
                    assert!(matches!(conn.receive(b"\x82\x00"), Err(Error::Closed)));
                    assert!(conn.send_binary(b"x").is_err(), "send after failure");
                    close_code = err.close_code().map(u16::from);
                    error = Some(err.to_string());
                    break 'feed;
                }
            }
        }
    }
    Outcome {
        messages,
        error,
        close_code,
        closed: conn.is_closed(),
        mid_message: conn.is_mid_message(),
        output: conn.take_output().to_vec(),
    }
}

/// A message `receive` returned respects the protocol and the limits: text
/// is UTF-8, data fits `max_message_size`, control payloads fit 125 bytes,
/// close codes may appear on the wire and reasons fit the frame.
pub fn check_message(message: &Message, config: &Config) {
    match message {
        Message::Text(text) => {
            assert!(
                std::str::from_utf8(text.as_bytes()).is_ok(),
                "text message is not UTF-8"
            );
            assert_eq!(text.as_str().len(), text.len());
            assert!(text.len() <= config.max_message_size);
        }
        Message::Binary(data) => assert!(data.len() <= config.max_message_size),
        Message::Ping(data) | Message::Pong(data) => assert!(data.len() <= MAX_CONTROL_PAYLOAD),
        Message::Close(Some(frame)) => {
            assert!(frame.code.is_allowed_on_wire(), "close code {}", frame.code);
            assert!(frame.reason.len() <= CloseFrame::MAX_REASON);
            assert!(std::str::from_utf8(frame.reason.as_bytes()).is_ok());
        }
        Message::Close(None) => {}
    }
}
