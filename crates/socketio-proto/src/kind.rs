//! The seven Socket.IO packet types.
//!
//! [`PacketKind`] maps the type digit that starts every encoded packet to a
//! name, and answers the per-type questions the codec asks (may it carry an
//! acknowledgement id, binary attachments, a payload). Which packet types a
//! server may receive in which connection state is left to the server crate.

use std::fmt;

/// The type of a Socket.IO packet, as encoded by its leading digit.
///
/// ```
/// use socketio_proto::PacketKind;
///
/// assert_eq!(PacketKind::from_digit(b'2'), Some(PacketKind::Event));
/// assert_eq!(PacketKind::BinaryAck.digit(), b'6');
/// assert!(PacketKind::BinaryEvent.is_binary());
/// assert_eq!(PacketKind::ConnectError.to_string(), "CONNECT_ERROR");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum PacketKind {
    /// `0`: connect to a namespace (client), or accept the connection
    /// (server, with `{"sid":...}`).
    Connect = 0,
    /// `1`: leave a namespace.
    Disconnect = 1,
    /// `2`: an event: `["name", args...]`, optionally with an ack id.
    Event = 2,
    /// `3`: the answer to an event that had an ack id: `[args...]`.
    Ack = 3,
    /// `4`: the server refuses a namespace connection: `{"message":...}`.
    ConnectError = 4,
    /// `5`: an event followed by binary attachments.
    BinaryEvent = 5,
    /// `6`: an acknowledgement followed by binary attachments.
    BinaryAck = 6,
}

impl PacketKind {
    /// All kinds, in type-number order.
    pub const ALL: [PacketKind; 7] = [
        PacketKind::Connect,
        PacketKind::Disconnect,
        PacketKind::Event,
        PacketKind::Ack,
        PacketKind::ConnectError,
        PacketKind::BinaryEvent,
        PacketKind::BinaryAck,
    ];

    /// The kind for an ASCII type digit, `None` for anything else.
    pub const fn from_digit(digit: u8) -> Option<Self> {
        Some(match digit {
            b'0' => PacketKind::Connect,
            b'1' => PacketKind::Disconnect,
            b'2' => PacketKind::Event,
            b'3' => PacketKind::Ack,
            b'4' => PacketKind::ConnectError,
            b'5' => PacketKind::BinaryEvent,
            b'6' => PacketKind::BinaryAck,
            _ => return None,
        })
    }

    /// The type number, `0`..=`6`.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// The ASCII digit that encodes this kind.
    pub const fn digit(self) -> u8 {
        b'0' + self as u8
    }

    /// Whether this is BINARY_EVENT or BINARY_ACK, the kinds followed by
    /// attachments.
    pub const fn is_binary(self) -> bool {
        matches!(self, PacketKind::BinaryEvent | PacketKind::BinaryAck)
    }

    /// Whether this is EVENT or BINARY_EVENT.
    pub const fn is_event(self) -> bool {
        matches!(self, PacketKind::Event | PacketKind::BinaryEvent)
    }

    /// Whether this is ACK or BINARY_ACK.
    pub const fn is_ack(self) -> bool {
        matches!(self, PacketKind::Ack | PacketKind::BinaryAck)
    }

    /// Whether packets of this kind may carry an acknowledgement id (events
    /// may, acknowledgements must).
    pub const fn allows_ack_id(self) -> bool {
        self.is_event() || self.is_ack()
    }

    /// The binary form of EVENT or ACK; other kinds map to themselves.
    pub const fn to_binary(self) -> Self {
        match self {
            PacketKind::Event => PacketKind::BinaryEvent,
            PacketKind::Ack => PacketKind::BinaryAck,
            other => other,
        }
    }

    /// The protocol's name for the kind, e.g. `"BINARY_EVENT"`.
    pub const fn name(self) -> &'static str {
        match self {
            PacketKind::Connect => "CONNECT",
            PacketKind::Disconnect => "DISCONNECT",
            PacketKind::Event => "EVENT",
            PacketKind::Ack => "ACK",
            PacketKind::ConnectError => "CONNECT_ERROR",
            PacketKind::BinaryEvent => "BINARY_EVENT",
            PacketKind::BinaryAck => "BINARY_ACK",
        }
    }
}

impl fmt::Display for PacketKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_round_trip() {
        for kind in PacketKind::ALL {
            assert_eq!(PacketKind::from_digit(kind.digit()), Some(kind));
            assert_eq!(kind.digit() - b'0', kind.id());
        }
        for bad in [b'7', b'9', b'a', b'-', b'/', b' ', 0, 0xff] {
            assert_eq!(PacketKind::from_digit(bad), None);
        }
    }

    #[test]
    fn predicates() {
        use PacketKind::*;
        assert!(!Connect.allows_ack_id());
        assert!(!Disconnect.allows_ack_id());
        assert!(!ConnectError.allows_ack_id());
        assert!(Event.allows_ack_id() && Ack.allows_ack_id());
        assert!(BinaryEvent.allows_ack_id() && BinaryAck.allows_ack_id());
        assert_eq!(Event.to_binary(), BinaryEvent);
        assert_eq!(Ack.to_binary(), BinaryAck);
        assert_eq!(Connect.to_binary(), Connect);
    }
}
