//! The crate's single error type.
//!
//! Every failure this crate can report — a malformed packet header, a payload
//! of the wrong JSON shape, a protocol violation seen by the
//! [`BinaryAssembler`](crate::BinaryAssembler), or a value that would not
//! serialize into a packet — is a variant of [`Error`]. What to do about an
//! error (the reference servers close the connection on any decode error) is
//! the server crate's decision, not this crate's.

use crate::PacketKind;

/// Why a packet could not be decoded, reassembled or built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text was empty; every packet starts with a type digit.
    #[error("empty packet")]
    EmptyPacket,
    /// The first character is not one of the type digits `0`..=`6`.
    #[error("unknown packet type {0:?}")]
    UnknownPacketType(char),
    /// A BINARY_EVENT or BINARY_ACK packet lacks its `<count>-` prefix.
    #[error("binary packet without a `<count>-` attachment count")]
    MissingAttachmentCount,
    /// The attachment count is empty or does not fit in a `usize`.
    #[error("attachment count is not a valid number")]
    InvalidAttachmentCount,
    /// A packet type other than BINARY_EVENT or BINARY_ACK carries an
    /// attachment count, or attachments were given for one.
    #[error("{0} packet cannot carry binary attachments")]
    UnexpectedAttachmentCount(PacketKind),
    /// A binary packet announces more attachments than the assembler allows.
    #[error("binary packet announces {count} attachments, more than the limit of {max}")]
    TooManyAttachments {
        /// The count the packet announced.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// The namespace does not start with `/`, or contains `,` or an ASCII
    /// control character.
    #[error("invalid namespace")]
    InvalidNamespace,
    /// The acknowledgement id does not fit in a `u64`.
    #[error("acknowledgement id does not fit in 64 bits")]
    InvalidAckId,
    /// CONNECT, DISCONNECT and CONNECT_ERROR packets cannot carry an
    /// acknowledgement id.
    #[error("{0} packet cannot carry an acknowledgement id")]
    UnexpectedAckId(PacketKind),
    /// ACK and BINARY_ACK packets need the id of the event they answer.
    #[error("{0} packet requires an acknowledgement id")]
    MissingAckId(PacketKind),
    /// EVENT, ACK, CONNECT_ERROR and their binary forms need a payload.
    #[error("{0} packet requires a payload")]
    MissingPayload(PacketKind),
    /// DISCONNECT packets carry nothing after the namespace.
    #[error("{0} packet cannot carry a payload")]
    UnexpectedPayload(PacketKind),
    /// The payload is not well-formed JSON: a syntax error, trailing
    /// characters, or nesting deeper than serde_json's limit of 128.
    #[error("payload is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The payload is valid JSON of the wrong shape for its packet type, e.g.
    /// an EVENT whose payload is not an array starting with a string.
    #[error("{kind} payload has the wrong shape: {source}")]
    InvalidPayload {
        /// The type of the packet.
        kind: PacketKind,
        /// What serde_json found instead.
        #[source]
        source: serde_json::Error,
    },
    /// A binary attachment arrived while no binary packet was waiting for one.
    #[error("binary attachment received while no binary packet awaits one")]
    UnexpectedAttachment,
    /// A text packet arrived before a binary packet received all its
    /// attachments.
    #[error("text packet received while a binary packet still awaits {remaining} attachment(s)")]
    AttachmentsPending {
        /// How many attachments were still missing.
        remaining: usize,
    },
    /// Event helpers were called on a packet that is not an EVENT or
    /// BINARY_EVENT (or, for arguments, not an ACK or BINARY_ACK either).
    #[error("{0} packet is not an event")]
    NotAnEvent(PacketKind),
    /// Arguments given to a constructor did not serialize to a JSON array
    /// (or to `null`, meaning no arguments).
    #[error("arguments must serialize to a JSON array, or to null for none")]
    ArgsNotArray,
    /// A payload given to a constructor did not serialize to a JSON object.
    #[error("payload must serialize to a JSON object")]
    PayloadNotObject,
    /// A value given to a constructor could not be serialized.
    #[error("could not serialize to JSON: {0}")]
    Serialize(#[source] serde_json::Error),
}
