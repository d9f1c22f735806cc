//! Writing outgoing frames: [`FrameBuf`] for replies and pushes batched per
//! connection, and the encode-once functions for broadcasts.
//!
//! A frame is messages joined by `\n`. Every message this crate writes is
//! free of raw newlines (strings are escaped, [`RawJson`](crate::RawJson)
//! drops them), so the join is unambiguous for the SDKs, which split on
//! `\n`.
//!
//! A publication reaching many subscribers is encoded once with
//! [`encode_publication_push`]; the resulting [`Utf8Bytes`] is shared by
//! reference count, sent as its own frame or appended to a connection's
//! batch with [`FrameBuf::append_encoded`].

use ws_proto::Utf8Bytes;

use crate::json::Obj;
use crate::{Publication, Push, ReplyError, ReplyResult};

/// A reusable buffer collecting one frame's messages.
///
/// ```
/// use centrifuge_proto::{ErrorCode, FrameBuf, ReplyResult};
///
/// let mut frame = FrameBuf::new();
/// frame.reply(1, &ReplyResult::Publish);
/// frame.error(2, &ErrorCode::PermissionDenied.into());
/// frame.ping();
/// assert_eq!(
///     frame.as_str(),
///     "{\"id\":1,\"publish\":{}}\n\
///      {\"id\":2,\"error\":{\"code\":103,\"message\":\"permission denied\"}}\n\
///      {}"
/// );
/// assert_eq!(frame.messages(), 3);
/// let text = frame.take(); // ready for the next frame
/// assert!(frame.is_empty());
/// # drop(text);
/// ```
#[derive(Debug, Clone, Default)]
pub struct FrameBuf {
    text: String,
    messages: usize,
}

impl FrameBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty buffer with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        FrameBuf {
            text: String::with_capacity(bytes),
            messages: 0,
        }
    }

    /// Starts a new message: a `\n` unless it is the first.
    fn start(&mut self) -> &mut String {
        if self.messages > 0 {
            self.text.push('\n');
        }
        self.messages += 1;
        &mut self.text
    }

    /// Appends `{"id":N,"<method>":{...}}`.
    pub fn reply(&mut self, id: u32, result: &ReplyResult) {
        encode_reply(self.start(), id, result);
    }

    /// Appends `{"id":N,"error":{"code":C,"message":"...","temporary":true}}`.
    pub fn error(&mut self, id: u32, error: &ReplyError) {
        encode_error_reply(self.start(), id, error);
    }

    /// Appends `{"push":{"channel":"C","<kind>":{...}}}` (`channel` left
    /// out when empty).
    pub fn push(&mut self, channel: &str, push: &Push) {
        push.encode(channel, self.start());
    }

    /// Appends a publication push; see [`encode_publication_push`].
    pub fn publication(&mut self, channel: &str, publication: &Publication) {
        write_publication_push(self.start(), channel, publication);
    }

    /// Appends the server's ping, `{}`.
    pub fn ping(&mut self) {
        self.start().push_str("{}");
    }

    /// Appends one message encoded earlier by this crate (e.g. by
    /// [`encode_publication_push`]). `message` must be a single message
    /// without `\n`; anything else would corrupt the frame.
    pub fn append_encoded(&mut self, message: &str) {
        debug_assert!(!message.contains('\n'));
        self.start().push_str(message);
    }

    /// The frame so far.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// How many messages it holds.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// Empties the buffer, keeping its allocation.
    pub fn clear(&mut self) {
        self.text.clear();
        self.messages = 0;
    }

    /// Takes the frame out, leaving the buffer empty (without its
    /// allocation: use [`FrameBuf::as_str`] and [`FrameBuf::clear`] to keep
    /// it).
    pub fn take(&mut self) -> String {
        self.messages = 0;
        std::mem::take(&mut self.text)
    }

    /// Takes the frame out as shareable text.
    pub fn take_utf8_bytes(&mut self) -> Utf8Bytes {
        Utf8Bytes::from(self.take())
    }
}

fn write_publication_push(out: &mut String, channel: &str, publication: &Publication) {
    let mut outer = Obj::open(out);
    let mut o = Obj::open(outer.key("push"));
    o.str_nonempty("channel", channel);
    publication.encode(o.key("pub"));
    o.close();
    outer.close();
}

/// Encodes `{"push":{"channel":"C","pub":{...}}}` once, for every
/// subscriber of the channel to share.
///
/// ```
/// use centrifuge_proto::{encode_publication_push, Publication, RawJson};
///
/// let data: RawJson = r#"{"text":"hi"}"#.parse()?;
/// let text = encode_publication_push("chat", &Publication::new(data, 7));
/// assert_eq!(
///     text.as_str(),
///     r#"{"push":{"channel":"chat","pub":{"data":{"text":"hi"},"offset":7}}}"#
/// );
/// # Ok::<(), centrifuge_proto::Error>(())
/// ```
pub fn encode_publication_push(channel: &str, publication: &Publication) -> Utf8Bytes {
    let mut out = String::with_capacity(publication.data.len() + channel.len() + 48);
    write_publication_push(&mut out, channel, publication);
    Utf8Bytes::from(out)
}

/// Encodes any push once, e.g. a join or leave for all of a channel's
/// subscribers.
pub fn encode_push(channel: &str, push: &Push) -> Utf8Bytes {
    let mut out = String::with_capacity(channel.len() + 64);
    push.encode(channel, &mut out);
    Utf8Bytes::from(out)
}

/// Appends one reply, `{"id":N,"<method>":{...}}`, to `out` (no separator).
pub fn encode_reply(out: &mut String, id: u32, result: &ReplyResult) {
    let mut o = Obj::open(out);
    o.u64_nonzero("id", u64::from(id));
    result.encode(o.key(result.method().as_str()));
    o.close();
}

/// Appends one error reply, `{"id":N,"error":{...}}`, to `out` (no
/// separator).
pub fn encode_error_reply(out: &mut String, id: u32, error: &ReplyError) {
    let mut o = Obj::open(out);
    o.u64_nonzero("id", u64::from(id));
    let mut e = Obj::open(o.key("error"));
    e.u64_nonzero("code", u64::from(error.code));
    // Always written, even empty: centrifuge-python reads it unconditionally.
    e.str("message", &error.message);
    e.bool_true("temporary", error.temporary);
    e.close();
    o.close();
}
