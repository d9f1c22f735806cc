//! Whole messages as the application sees them.
//!
//! A [`Message`] is what [`crate::Connection::receive`] yields after frames
//! are reassembled, unmasked, decompressed and validated, and what
//! [`crate::Connection::send`] accepts. [`Utf8Bytes`] is a cheaply clonable
//! byte buffer known to hold valid UTF-8.

use bytes::Bytes;

use crate::close::CloseFrame;
use crate::utf8::InvalidUtf8;

/// Reference-counted bytes that are valid UTF-8.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// An empty string.
    pub const fn new() -> Self {
        Self(Bytes::new())
    }

    /// Wraps a static string without copying.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // The constructors only admit valid UTF-8, so this never yields the
        // fallback; re-checking keeps the crate free of `unsafe`.
        simdutf8::basic::from_utf8(&self.0).unwrap_or_default()
    }

    /// The text as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// A zero-copy sub-string from byte `start` to the end; `None` unless
    /// `start` is on a character boundary.
    ///
    /// ```
    /// let s = ws_proto::Utf8Bytes::from("4hello");
    /// assert_eq!(s.slice_from(1).unwrap().as_str(), "hello");
    /// ```
    pub fn slice_from(&self, start: usize) -> Option<Self> {
        self.is_boundary(start).then(|| Self(self.0.slice(start..)))
    }

    /// A zero-copy sub-string of `range`; `None` unless both ends are on
    /// character boundaries.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Option<Self> {
        (range.start <= range.end && self.is_boundary(range.start) && self.is_boundary(range.end))
            .then(|| Self(self.0.slice(range)))
    }

    /// `str::is_char_boundary` on the bytes, which are valid UTF-8: no
    /// second validation pass just to slice.
    fn is_boundary(&self, i: usize) -> bool {
        match self.0.get(i) {
            // Not a continuation byte (0b10xx_xxxx).
            Some(&b) => (b as i8) >= -0x40,
            None => i == self.0.len(),
        }
    }
}

impl std::fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl std::fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl std::ops::Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = InvalidUtf8;
    fn try_from(bytes: Bytes) -> Result<Self, InvalidUtf8> {
        simdutf8::basic::from_utf8(&bytes).map_err(|_| InvalidUtf8)?;
        Ok(Self(bytes))
    }
}

impl Utf8Bytes {
    /// Wraps bytes the caller has already validated (crate-internal).
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        Self(bytes)
    }
}

/// A WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (always valid UTF-8).
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping; the connection answers it by itself.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// A close frame, with its code and reason if it carried one.
    Close(Option<CloseFrame>),
}

impl Message {
    /// A text message.
    pub fn text(s: impl Into<Utf8Bytes>) -> Self {
        Self::Text(s.into())
    }

    /// A binary message.
    pub fn binary(b: impl Into<Bytes>) -> Self {
        Self::Binary(b.into())
    }

    /// Whether this is a text or binary message.
    pub fn is_data(&self) -> bool {
        matches!(self, Self::Text(_) | Self::Binary(_))
    }

    /// The payload bytes (empty for a close).
    pub fn payload(&self) -> &[u8] {
        match self {
            Self::Text(t) => t.as_bytes(),
            Self::Binary(b) | Self::Ping(b) | Self::Pong(b) => b,
            Self::Close(_) => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Bytes;

    #[test]
    fn slices_only_on_char_boundaries() {
        let s = Utf8Bytes::from("aé€😀z");
        let text = "aé€😀z";
        for start in 0..=text.len() + 1 {
            assert_eq!(
                s.slice_from(start).map(|t| t.as_str().to_owned()),
                text.get(start..).map(str::to_owned),
                "from {start}"
            );
            for end in 0..=text.len() + 1 {
                assert_eq!(
                    s.slice(start..end).map(|t| t.as_str().to_owned()),
                    text.get(start..end).map(str::to_owned),
                    "{start}..{end}"
                );
            }
        }
        assert_eq!(Utf8Bytes::new().slice_from(0).map(|t| t.len()), Some(0));
    }

    #[test]
    fn text_in_place_frames_like_text() {
        use crate::SharedFrame;
        for len in [0, 1, 125, 126, 127, 0xFFFF, 0x1_0000] {
            let text: String = "é".repeat(len / 2) + &"a".repeat(len % 2);
            let mut buf = vec![7u8; SharedFrame::HEADER_ROOM];
            buf.extend_from_slice(text.as_bytes());
            let frame = SharedFrame::text_in_place(buf).unwrap();
            let copied = SharedFrame::text(text.clone());
            assert_eq!(frame.wire_bytes(), copied.wire_bytes(), "{len}");
            assert_eq!(frame.payload(), text.as_bytes());
            assert!(frame.is_text());
        }
        let empty = SharedFrame::text_in_place(vec![1, 2]).unwrap();
        assert_eq!(&empty.wire_bytes()[..], b"\x81\x00");
        let mut bad = vec![0u8; SharedFrame::HEADER_ROOM];
        bad.extend_from_slice(&[b'a', 0xc3]);
        assert!(SharedFrame::text_in_place(bad).is_err());
    }
}
