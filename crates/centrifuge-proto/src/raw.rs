//! [`RawJson`]: an application payload kept as the JSON text it arrived as.
//!
//! The protocol's `data`, `conn_info` and `chan_info` fields are opaque to
//! the server: whatever JSON a client publishes is what subscribers receive.
//! They are therefore never parsed into a value tree and re-serialized —
//! that could reorder keys, change number spellings or cost time — but
//! validated once and carried as text in a reference-counted buffer that
//! every subscriber's push can share.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use ws_proto::Utf8Bytes;

use crate::Error;

/// One valid JSON value, as text, without raw newlines.
///
/// Invariants, established by every constructor: the text is exactly one
/// well-formed JSON value with no leading or trailing whitespace, and it
/// contains no `\n` byte. Inside valid JSON a raw newline can only be
/// insignificant whitespace (newlines in strings are escaped), so the
/// constructors drop them; this keeps the `\n` that separates messages in
/// a frame unambiguous, as Centrifugo's own encoder does.
///
/// Cloning is cheap (a reference count).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawJson(Utf8Bytes);

impl RawJson {
    /// The JSON literal `null`.
    pub fn null() -> Self {
        RawJson(Utf8Bytes::from_static("null"))
    }

    /// Validates `text` as one JSON value and takes it over, trimming
    /// surrounding whitespace and dropping raw newlines (copying only when
    /// there is something to drop).
    ///
    /// # Errors
    /// [`Error::InvalidJson`] unless `text` is exactly one JSON value.
    /// Nesting depth is not limited here (validation does not recurse);
    /// command decoding applies [`Limits::max_depth`](crate::Limits).
    pub fn from_string(text: String) -> Result<Self, Error> {
        serde_json::from_str::<&RawValue>(&text).map_err(Error::InvalidJson)?;
        Ok(Self::from_valid(text))
    }

    /// Like [`RawJson::from_string`] for bytes, without copying them when
    /// they need no trimming.
    ///
    /// # Errors
    /// [`Error::InvalidJson`] unless `bytes` is UTF-8 holding exactly one
    /// JSON value.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, Error> {
        serde_json::from_slice::<&RawValue>(&bytes).map_err(Error::InvalidJson)?;
        // serde_json validated the UTF-8 of everything it consumed, which is
        // all of it (trailing characters are an error).
        let text = Utf8Bytes::try_from(bytes).map_err(|_| {
            Error::InvalidJson(<serde_json::Error as serde::de::Error>::custom(
                "invalid UTF-8",
            ))
        })?;
        let trimmed = text.trim_matches(is_json_whitespace);
        if trimmed.contains('\n') {
            return Ok(Self::from_valid(trimmed.to_owned()));
        }
        let start = text.len() - text.trim_start_matches(is_json_whitespace).len();
        match text.slice(start..start + trimmed.len()) {
            Some(slice) => Ok(RawJson(slice)),
            None => Ok(Self::from_valid(trimmed.to_owned())),
        }
    }

    /// Serializes a [`serde_json::Value`] (compactly, so without newlines).
    pub fn from_value(value: &serde_json::Value) -> Self {
        RawJson(Utf8Bytes::from(value.to_string()))
    }

    /// Takes over a value serde_json has already validated.
    pub fn from_raw_value(raw: Box<RawValue>) -> Self {
        Self::from_valid(String::from(Box::<str>::from(raw)))
    }

    /// `text` is known to be one valid JSON value: trim it and drop raw
    /// newlines.
    fn from_valid(mut text: String) -> Self {
        let trimmed = text.trim_matches(is_json_whitespace);
        if trimmed.len() != text.len() {
            text = trimmed.to_owned();
        }
        if text.contains('\n') {
            text.retain(|c| c != '\n');
        }
        RawJson(Utf8Bytes::from(text))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The JSON text as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Length of the text in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: the shortest JSON value is one byte. Present for
    /// symmetry with [`RawJson::len`].
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the text into a [`serde_json::Value`] (subject to serde_json's
    /// nesting limit of 128).
    ///
    /// # Errors
    /// Only if the value nests deeper than serde_json allows.
    pub fn to_value(&self) -> Result<serde_json::Value, Error> {
        serde_json::from_str(self.as_str()).map_err(Error::InvalidJson)
    }

    /// The shared text buffer.
    pub fn into_utf8_bytes(self) -> Utf8Bytes {
        self.0
    }

    /// The shared buffer as plain bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }
}

fn is_json_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawJson({})", self.as_str())
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&serde_json::Value> for RawJson {
    fn from(value: &serde_json::Value) -> Self {
        Self::from_value(value)
    }
}

impl From<Box<RawValue>> for RawJson {
    fn from(raw: Box<RawValue>) -> Self {
        Self::from_raw_value(raw)
    }
}

impl TryFrom<String> for RawJson {
    type Error = Error;
    fn try_from(text: String) -> Result<Self, Error> {
        Self::from_string(text)
    }
}

impl TryFrom<&str> for RawJson {
    type Error = Error;
    fn try_from(text: &str) -> Result<Self, Error> {
        Self::from_string(text.to_owned())
    }
}

/// Like [`RawJson::from_string`], copying from a borrowed string.
impl std::str::FromStr for RawJson {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::from_string(text.to_owned())
    }
}

/// Captures the value's text verbatim (one copy out of the input, no
/// re-serialization). A JSON `null` is kept as the payload `null`.
impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(Self::from_raw_value)
    }
}

/// Writes the text as is when the serializer is serde_json's (for other
/// serializers, whatever serde_json's `RawValue` does). Re-validates the
/// text first: meant for convenience in HTTP API answers, not hot paths.
impl serde::Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw =
            serde_json::from_str::<&RawValue>(self.as_str()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn constructors_normalize() {
        let r = " {\n  \"a\": [1,\n 2]\n}\n".parse::<RawJson>().unwrap();
        assert_eq!(r.as_str(), "{  \"a\": [1, 2]}");
        let r = RawJson::from_str(r#""line\nbreak""#).unwrap();
        assert_eq!(r.as_str(), r#""line\nbreak""#);
        assert!(RawJson::from_str("").is_err());
        assert!(RawJson::from_str("{} {}").is_err());
        assert!(RawJson::from_str("{").is_err());
        assert!(RawJson::from_str("nul").is_err());
        let b = Bytes::from_static(b"  [1, 2] ");
        assert_eq!(RawJson::from_bytes(b).unwrap().as_str(), "[1, 2]");
        assert!(RawJson::from_bytes(Bytes::from_static(b"\"\xff\"")).is_err());
        let v = serde_json::json!({"x": [1, "y\n"]});
        assert_eq!(RawJson::from_value(&v).as_str(), r#"{"x":[1,"y\n"]}"#);
        assert_eq!(RawJson::null().as_str(), "null");
    }

    #[test]
    fn serde_round_trip() {
        let r: RawJson = serde_json::from_str(r#" {"b":1,  "a":2} "#).unwrap();
        assert_eq!(r.as_str(), r#"{"b":1,  "a":2}"#);
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"b":1,  "a":2}"#);
        let n: RawJson = serde_json::from_str("null").unwrap();
        assert_eq!(n, RawJson::null());
    }
}
