//! Binary packets: placeholders and attachment reassembly.
//!
//! A BINARY_EVENT or BINARY_ACK is a text header whose JSON holds
//! `{"_placeholder":true,"num":N}` objects, followed by N binary engine.io
//! messages. [`PartialPacket`] is a header still collecting its attachments;
//! [`BinaryAssembler`] is the per-connection state that routes text and
//! binary messages, enforces ordering, and caps how many attachments a header
//! may announce. Placeholders are left in the JSON: substituting the bytes
//! into user-facing values is the server crate's (or its users') choice.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use ws_proto::Utf8Bytes;

use crate::{Decoded, Error, Packet};

/// A binary packet header waiting for its attachments.
///
/// Obtained from [`Packet::decode`] as [`Decoded::AwaitingAttachments`];
/// push each following binary message with [`PartialPacket::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialPacket {
    packet: Packet,
    expected: usize,
}

impl PartialPacket {
    pub(crate) fn new(packet: Packet, expected: usize) -> Self {
        PartialPacket { packet, expected }
    }

    /// The packet so far: its header, payload, and the attachments received.
    pub fn packet(&self) -> &Packet {
        &self.packet
    }

    /// How many attachments the header announced.
    pub fn expected(&self) -> usize {
        self.expected
    }

    /// How many attachments have arrived.
    pub fn received(&self) -> usize {
        self.packet.attachments.len()
    }

    /// How many attachments are still missing (at least one).
    pub fn remaining(&self) -> usize {
        self.expected.saturating_sub(self.received())
    }

    /// Adds the next attachment; returns the complete packet once all have
    /// arrived, and the partial packet otherwise.
    ///
    /// This does not limit the announced count: a [`BinaryAssembler`] does.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use socketio_proto::{Decoded, Packet};
    ///
    /// let text = r#"62-15[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
    /// let Decoded::AwaitingAttachments(p) = Packet::decode(text.into())? else { unreachable!() };
    /// let Decoded::AwaitingAttachments(p) = p.push(Bytes::from_static(b"a")) else { unreachable!() };
    /// assert_eq!(p.remaining(), 1);
    /// let Decoded::Complete(done) = p.push(Bytes::from_static(b"b")) else { unreachable!() };
    /// assert_eq!(done.ack_id, Some(15));
    /// assert_eq!(done.attachments, [Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
    /// # Ok::<(), socketio_proto::Error>(())
    /// ```
    pub fn push(mut self, attachment: Bytes) -> Decoded {
        self.packet.attachments.push(attachment);
        if self.received() >= self.expected {
            Decoded::Complete(self.packet)
        } else {
            Decoded::AwaitingAttachments(self)
        }
    }

    /// Gives up on the missing attachments, returning the packet as it is.
    pub fn into_packet(self) -> Packet {
        self.packet
    }
}

/// The default for [`BinaryAssembler::max_attachments`].
pub const DEFAULT_MAX_ATTACHMENTS: usize = 10;

/// Per-connection decoder state: turns the connection's engine.io messages,
/// text and binary, into complete packets.
///
/// Rules, all of which the official clients follow (they send a binary
/// packet's attachments right after its header):
///
/// - a header announcing more than [`max_attachments`](Self::max_attachments)
///   attachments is refused with [`Error::TooManyAttachments`] before
///   anything is allocated for them;
/// - a binary message with no header waiting is [`Error::UnexpectedAttachment`];
/// - a text message while a header still waits is
///   [`Error::AttachmentsPending`]: attachments cannot be interleaved with
///   other packets, so the peer is broken or hostile.
///
/// After any error the assembler holds nothing and can go on, though the
/// reference servers close the connection on a decode error.
///
/// ```
/// use bytes::Bytes;
/// use socketio_proto::BinaryAssembler;
///
/// let mut asm = BinaryAssembler::new();
/// let header = r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
/// assert!(asm.feed_text(header.into())?.is_none());
/// assert!(asm.feed_binary(Bytes::from_static(&[1, 2]))?.is_none());
/// let packet = asm.feed_binary(Bytes::from_static(&[3, 4]))?.expect("complete");
/// assert_eq!(packet.namespace, "/admin");
/// assert_eq!(packet.attachments.len(), 2);
///
/// // Plain packets pass straight through.
/// let packet = asm.feed_text(r#"2["foo"]"#.into())?.expect("complete");
/// assert_eq!(packet.event_name()?, "foo");
/// # Ok::<(), socketio_proto::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BinaryAssembler {
    max_attachments: usize,
    pending: Option<PartialPacket>,
}

impl Default for BinaryAssembler {
    fn default() -> Self {
        BinaryAssembler::new()
    }
}

impl BinaryAssembler {
    /// An assembler allowing [`DEFAULT_MAX_ATTACHMENTS`] attachments per
    /// packet.
    pub fn new() -> Self {
        BinaryAssembler::with_max_attachments(DEFAULT_MAX_ATTACHMENTS)
    }

    /// An assembler allowing up to `max_attachments` attachments per packet.
    pub fn with_max_attachments(max_attachments: usize) -> Self {
        BinaryAssembler {
            max_attachments,
            pending: None,
        }
    }

    /// The most attachments one packet may announce.
    pub fn max_attachments(&self) -> usize {
        self.max_attachments
    }

    /// The binary packet waiting for attachments, if any.
    pub fn pending(&self) -> Option<&PartialPacket> {
        self.pending.as_ref()
    }

    /// Whether a binary packet is waiting for attachments.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Drops any partly received packet.
    pub fn reset(&mut self) {
        self.pending = None;
    }

    /// Feeds a text message; returns the packet if it is complete, `None` if
    /// it is a binary header now waiting for attachments.
    ///
    /// # Errors
    ///
    /// [`Error::AttachmentsPending`] if a binary packet was still waiting
    /// (it is dropped); [`Error::TooManyAttachments`] over the limit; any
    /// error of [`Packet::decode`].
    pub fn feed_text(&mut self, text: Utf8Bytes) -> Result<Option<Packet>, Error> {
        if let Some(pending) = self.pending.take() {
            return Err(Error::AttachmentsPending {
                remaining: pending.remaining(),
            });
        }
        match Packet::decode(text)? {
            Decoded::Complete(packet) => Ok(Some(packet)),
            Decoded::AwaitingAttachments(mut partial) => {
                if partial.expected > self.max_attachments {
                    return Err(Error::TooManyAttachments {
                        count: partial.expected,
                        max: self.max_attachments,
                    });
                }
                partial.packet.attachments.reserve_exact(partial.expected);
                self.pending = Some(partial);
                Ok(None)
            }
        }
    }

    /// Feeds a binary message; returns the packet once it was the last
    /// attachment the pending header announced.
    ///
    /// # Errors
    ///
    /// [`Error::UnexpectedAttachment`] if no binary packet is waiting.
    pub fn feed_binary(&mut self, data: Bytes) -> Result<Option<Packet>, Error> {
        let pending = self.pending.take().ok_or(Error::UnexpectedAttachment)?;
        match pending.push(data) {
            Decoded::Complete(packet) => Ok(Some(packet)),
            Decoded::AwaitingAttachments(partial) => {
                self.pending = Some(partial);
                Ok(None)
            }
        }
    }
}

/// The JSON object that stands in for attachment `num` in a binary packet:
/// `{"_placeholder":true,"num":N}`.
///
/// It serializes to (and deserializes from) that object, so it can sit in
/// the arguments given to [`Packet::binary_event`] or [`Packet::binary_ack`].
///
/// ```
/// use socketio_proto::Placeholder;
///
/// let p = Placeholder::new(2);
/// assert_eq!(serde_json::to_string(&p)?, r#"{"_placeholder":true,"num":2}"#);
/// assert_eq!(Placeholder::from_value(&p.to_value()), Some(p));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "PlaceholderRepr", into = "PlaceholderRepr")]
pub struct Placeholder {
    /// Which attachment, counting from 0.
    pub num: usize,
}

#[derive(Serialize, Deserialize)]
struct PlaceholderRepr {
    #[serde(rename = "_placeholder")]
    placeholder: bool,
    num: usize,
}

impl TryFrom<PlaceholderRepr> for Placeholder {
    type Error = &'static str;
    fn try_from(repr: PlaceholderRepr) -> Result<Self, Self::Error> {
        if repr.placeholder {
            Ok(Placeholder { num: repr.num })
        } else {
            Err("`_placeholder` must be true")
        }
    }
}

impl From<Placeholder> for PlaceholderRepr {
    fn from(p: Placeholder) -> Self {
        PlaceholderRepr {
            placeholder: true,
            num: p.num,
        }
    }
}

impl Placeholder {
    /// The placeholder for attachment `num`.
    pub const fn new(num: usize) -> Self {
        Placeholder { num }
    }

    /// The placeholder as a `serde_json::Value`, for building arguments as
    /// a value tree. Same as [`placeholder`].
    pub fn to_value(self) -> serde_json::Value {
        placeholder(self.num)
    }

    /// Recognizes a placeholder in a value tree (such as one element of
    /// [`Packet::args_values`]): an object whose `_placeholder` is `true` and
    /// whose `num` is a non-negative integer. Other keys are ignored.
    pub fn from_value(value: &serde_json::Value) -> Option<Self> {
        let obj = value.as_object()?;
        if obj.get("_placeholder")?.as_bool()? {
            let num = obj.get("num")?.as_u64()?;
            usize::try_from(num).ok().map(Placeholder::new)
        } else {
            None
        }
    }
}

/// `{"_placeholder":true,"num":num}` as a `serde_json::Value`.
///
/// ```
/// use socketio_proto::placeholder;
///
/// assert_eq!(placeholder(0), serde_json::json!({"_placeholder": true, "num": 0}));
/// ```
pub fn placeholder(num: usize) -> serde_json::Value {
    let mut obj = serde_json::Map::with_capacity(2);
    obj.insert("_placeholder".to_owned(), serde_json::Value::Bool(true));
    obj.insert("num".to_owned(), serde_json::Value::from(num));
    serde_json::Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(n: u8) -> Bytes {
        Bytes::from(vec![n; usize::from(n)])
    }

    #[test]
    fn reassembles_in_order() {
        let mut asm = BinaryAssembler::new();
        let header = r#"452-789["m",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
        // Engine.IO strips the leading `4`.
        assert!(asm.feed_text(header[1..].into()).unwrap().is_none());
        assert!(asm.is_pending());
        assert_eq!(asm.pending().map(PartialPacket::remaining), Some(2));
        assert!(asm.feed_binary(att(1)).unwrap().is_none());
        let p = asm.feed_binary(att(2)).unwrap().unwrap();
        assert!(!asm.is_pending());
        assert_eq!(p.kind, crate::PacketKind::BinaryEvent);
        assert_eq!(p.ack_id, Some(789));
        assert_eq!(p.attachments, [att(1), att(2)]);
        let (text, atts) = p.encode();
        assert_eq!(text.as_str(), &header[1..]);
        assert_eq!(atts, [att(1), att(2)]);
    }

    #[test]
    fn zero_attachments_complete_at_once() {
        let mut asm = BinaryAssembler::new();
        let p = asm.feed_text(r#"50-["x"]"#.into()).unwrap().unwrap();
        assert_eq!(p.kind, crate::PacketKind::BinaryEvent);
        assert!(p.attachments.is_empty());
        assert_eq!(p.encode().0.as_str(), r#"50-["x"]"#);
    }

    #[test]
    fn attachment_without_header() {
        let mut asm = BinaryAssembler::new();
        assert!(matches!(
            asm.feed_binary(att(1)),
            Err(Error::UnexpectedAttachment)
        ));
        asm.feed_text(r#"2["x"]"#.into()).unwrap().unwrap();
        assert!(matches!(
            asm.feed_binary(att(1)),
            Err(Error::UnexpectedAttachment)
        ));
        // One too many.
        asm.feed_text(r#"51-["x",{"_placeholder":true,"num":0}]"#.into())
            .unwrap();
        asm.feed_binary(att(1)).unwrap().unwrap();
        assert!(matches!(
            asm.feed_binary(att(2)),
            Err(Error::UnexpectedAttachment)
        ));
    }

    #[test]
    fn text_while_pending_is_refused_and_resets() {
        let mut asm = BinaryAssembler::new();
        asm.feed_text(r#"53-["x"]"#.into()).unwrap();
        asm.feed_binary(att(1)).unwrap();
        assert!(matches!(
            asm.feed_text(r#"2["y"]"#.into()),
            Err(Error::AttachmentsPending { remaining: 2 })
        ));
        assert!(!asm.is_pending());
        assert!(asm.feed_text(r#"2["y"]"#.into()).unwrap().is_some());
    }

    #[test]
    fn caps_announced_attachments() {
        let mut asm = BinaryAssembler::with_max_attachments(2);
        assert_eq!(asm.max_attachments(), 2);
        assert!(asm.feed_text(r#"62-1[]"#.into()).unwrap().is_none());
        asm.reset();
        assert!(matches!(
            asm.feed_text(r#"63-1[]"#.into()),
            Err(Error::TooManyAttachments { count: 3, max: 2 })
        ));
        assert!(!asm.is_pending());
        let mut asm = BinaryAssembler::default();
        assert!(matches!(
            asm.feed_text(r#"518446744073709551615-["x"]"#.into()),
            Err(Error::TooManyAttachments { .. })
        ));
        assert!(matches!(
            asm.feed_text(r#"5999999999999999999999-["x"]"#.into()),
            Err(Error::InvalidAttachmentCount)
        ));
    }

    #[test]
    fn decode_errors_leave_assembler_usable() {
        let mut asm = BinaryAssembler::new();
        assert!(asm.feed_text("9".into()).is_err());
        assert!(asm.feed_text(r#"2["ok"]"#.into()).unwrap().is_some());
    }

    #[test]
    fn placeholders() {
        assert_eq!(
            serde_json::to_string(&Placeholder::new(7)).unwrap(),
            r#"{"_placeholder":true,"num":7}"#
        );
        assert_eq!(
            serde_json::from_str::<Placeholder>(r#"{"num":3,"_placeholder":true}"#).unwrap(),
            Placeholder::new(3)
        );
        assert!(serde_json::from_str::<Placeholder>(r#"{"_placeholder":false,"num":3}"#).is_err());
        assert_eq!(
            Placeholder::from_value(&placeholder(4)),
            Some(Placeholder::new(4))
        );
        for not in [
            serde_json::json!({"_placeholder": false, "num": 0}),
            serde_json::json!({"_placeholder": true, "num": -1}),
            serde_json::json!({"_placeholder": true}),
            serde_json::json!([true, 0]),
        ] {
            assert_eq!(Placeholder::from_value(&not), None);
        }
    }
}
