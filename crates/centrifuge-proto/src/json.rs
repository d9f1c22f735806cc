//! Hand-rolled JSON text writing for everything this crate sends.
//!
//! Replies and pushes are written straight into a `String` with no
//! intermediate value tree and no serde round trip: every outgoing shape is
//! known, so a few helpers (escaped strings, integers, an object writer that
//! places the commas) are all it takes. Payloads ([`RawJson`]) are copied as
//! they are, byte for byte. This module knows nothing about the protocol's
//! shapes; `reply`, `push` and `command` own those.

use crate::RawJson;

/// Appends `s` as a JSON string literal, quotes included.
///
/// Escapes `"`, `\` and the C0 control characters, nothing else: the
/// output stays UTF-8 and never contains a raw newline, which matters
/// because `\n` separates messages within a frame.
pub(crate) fn push_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `i` is the index of an ASCII byte, so both slices fall on
        // character boundaries.
        out.push_str(&s[start..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends the decimal form of `n`.
pub(crate) fn push_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        // `n % 10` is below 10, so the cast cannot truncate.
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// Appends the decimal form of `n`.
pub(crate) fn push_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Writes one JSON object, placing the commas between members.
///
/// The `*_nonzero`, `*_nonempty` and `*_true` members implement the
/// protocol's rule that zero values are left out, as proto3 JSON does.
pub(crate) struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    /// Opens an object (`{`).
    pub(crate) fn open(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out, first: true }
    }

    /// Writes `"key":` (after a comma unless it is the first member) and
    /// returns the buffer so the caller can write the value.
    pub(crate) fn key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        // Keys are this crate's own ASCII identifiers: no escaping needed.
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    /// A string member, always written.
    pub(crate) fn str(&mut self, key: &str, value: &str) {
        push_string(self.key(key), value);
    }

    /// A string member, left out when empty.
    pub(crate) fn str_nonempty(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            self.str(key, value);
        }
    }

    /// An unsigned member, always written.
    pub(crate) fn u64(&mut self, key: &str, value: u64) {
        push_u64(self.key(key), value);
    }

    /// An unsigned member, left out when zero.
    pub(crate) fn u64_nonzero(&mut self, key: &str, value: u64) {
        if value != 0 {
            self.u64(key, value);
        }
    }

    /// A signed member, left out when zero.
    pub(crate) fn i64_nonzero(&mut self, key: &str, value: i64) {
        if value != 0 {
            push_i64(self.key(key), value);
        }
    }

    /// `"key":true`, left out when false.
    pub(crate) fn bool_true(&mut self, key: &str, value: bool) {
        if value {
            self.key(key).push_str("true");
        }
    }

    /// A raw JSON member, copied as is.
    pub(crate) fn raw(&mut self, key: &str, value: &RawJson) {
        self.key(key).push_str(value.as_str());
    }

    /// A raw JSON member, left out when absent.
    pub(crate) fn raw_opt(&mut self, key: &str, value: Option<&RawJson>) {
        if let Some(value) = value {
            self.raw(key, value);
        }
    }

    /// A `{"k":"v",...}` member of string pairs, left out when empty.
    pub(crate) fn string_map_nonempty<'m>(
        &mut self,
        key: &str,
        map: impl IntoIterator<Item = (&'m String, &'m String)>,
    ) {
        let mut map = map.into_iter().peekable();
        if map.peek().is_none() {
            return;
        }
        let mut inner = Obj::open(self.key(key));
        for (k, v) in map {
            if !inner.first {
                inner.out.push(',');
            }
            inner.first = false;
            push_string(inner.out, k);
            inner.out.push(':');
            push_string(inner.out, v);
        }
        inner.close();
    }

    /// Writes a member key of arbitrary text (escaped), for maps keyed by
    /// channel or client id, and returns the buffer for the value.
    pub(crate) fn dyn_key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        push_string(self.out, key);
        self.out.push(':');
        self.out
    }

    /// Closes the object (`}`).
    pub(crate) fn close(self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str) -> String {
        let mut out = String::new();
        push_string(&mut out, s);
        out
    }

    #[test]
    fn escapes_what_json_requires() {
        assert_eq!(string(""), r#""""#);
        assert_eq!(string("plain ü €"), r#""plain ü €""#);
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(string("\u{0}\u{1f}x"), r#""\u0000\u001fx""#);
        assert_eq!(string("/\u{7f}\u{2028}"), "\"/\u{7f}\u{2028}\"");
    }

    #[test]
    fn integers() {
        let mut out = String::new();
        for n in [0, 1, 9, 10, 12345, u64::MAX] {
            out.clear();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        for n in [0, -1, 42, i64::MIN, i64::MAX] {
            out.clear();
            push_i64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn object_commas() {
        let mut out = String::new();
        let mut o = Obj::open(&mut out);
        o.u64_nonzero("a", 0);
        o.str("b", "x");
        o.bool_true("c", false);
        o.bool_true("d", true);
        o.string_map_nonempty("e", &std::collections::BTreeMap::new());
        let tags: std::collections::BTreeMap<String, String> =
            [("k".to_owned(), "v\"".to_owned())].into();
        o.string_map_nonempty("f", &tags);
        o.close();
        assert_eq!(out, r#"{"b":"x","d":true,"f":{"k":"v\""}}"#);
    }
}
