//! Writing the API's JSON answers by hand.
//!
//! Answers splice payloads (`data`, `conn_info`, `chan_info`) in as the raw
//! JSON text they were published with, so numbers, key order and spelling
//! reach the backend exactly as they were sent. serde would need each
//! payload re-validated into a `RawValue` first; these few writers do not.
//! This module knows the shapes of [`hub`] values in Centrifugo's API
//! (`Publication`, `ClientInfo`, `Error`); which method answers what lives
//! in `methods`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hub::{ClientInfo, Publication};

/// Appends `s` as a JSON string literal.
pub(crate) fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends raw JSON bytes kept by the hub. They are valid JSON by the hub's
/// contract; anything that is not UTF-8 is written as `null` rather than
/// breaking the answer.
pub(crate) fn raw(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.trim().is_empty() => out.push_str(text),
        _ => out.push_str("null"),
    }
}

/// An object being written: `{` on open, commas between members, `}` on
/// close.
pub(crate) struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    /// Opens an object at the end of `out`.
    pub(crate) fn open(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out, first: true }
    }

    /// Writes the key of the next member and returns the buffer for its value.
    pub(crate) fn key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        string(self.out, key);
        self.out.push(':');
        self.out
    }

    /// A string member.
    pub(crate) fn str(&mut self, key: &str, value: &str) {
        let out = self.key(key);
        string(out, value);
    }

    /// A number member.
    pub(crate) fn u64(&mut self, key: &str, value: u64) {
        let out = self.key(key);
        let _ = write!(out, "{value}");
    }

    /// A member whose value is already JSON text.
    pub(crate) fn raw(&mut self, key: &str, value: &[u8]) {
        let out = self.key(key);
        raw(out, value);
    }

    /// Closes the object.
    pub(crate) fn close(self) {
        self.out.push('}');
    }
}

/// `{"code":C,"message":"..."}`, with `"temporary":true` for failures that
/// may pass on retry.
pub(crate) fn error(out: &mut String, code: u32, message: &str, temporary: bool) {
    let mut o = Obj::open(out);
    o.u64("code", u64::from(code));
    o.str("message", message);
    if temporary {
        o.key("temporary").push_str("true");
    }
    o.close();
}

/// Centrifugo's `ClientInfo`: `{"client","user","conn_info"?,"chan_info"?}`.
pub(crate) fn client_info(out: &mut String, info: &ClientInfo) {
    let mut o = Obj::open(out);
    o.str("client", &info.client);
    o.str("user", &info.user);
    if let Some(conn_info) = &info.conn_info {
        o.raw("conn_info", conn_info);
    }
    if let Some(chan_info) = &info.chan_info {
        o.raw("chan_info", chan_info);
    }
    o.close();
}

/// Centrifugo's API `Publication`: `{"data","info"?,"offset"?,"tags"?}`,
/// zero values left out.
pub(crate) fn publication(out: &mut String, p: &Publication) {
    let mut o = Obj::open(out);
    o.raw("data", &p.data);
    if let Some(info) = &p.info {
        client_info(o.key("info"), info);
    }
    if p.offset > 0 {
        o.u64("offset", p.offset);
    }
    if !p.tags.is_empty() {
        string_map(o.key("tags"), &p.tags);
    }
    o.close();
}

/// `{"k":"v",...}`.
pub(crate) fn string_map(out: &mut String, map: &BTreeMap<String, String>) {
    let mut o = Obj::open(out);
    for (k, v) in map {
        o.str(k, v);
    }
    o.close();
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn publication_shape() {
        let mut p = Publication::new(Bytes::from_static(br#"{"b":1.50,"a":2}"#));
        p.offset = 7;
        p.tags.insert("k".into(), "v".into());
        let mut info = ClientInfo::new("42", "c1");
        info.conn_info = Some(Bytes::from_static(br#"{"name":"x"}"#));
        p.info = Some(info);
        let mut out = String::new();
        publication(&mut out, &p);
        assert_eq!(
            out,
            r#"{"data":{"b":1.50,"a":2},"info":{"client":"c1","user":"42","conn_info":{"name":"x"}},"offset":7,"tags":{"k":"v"}}"#
        );
        let bare = Publication::new(Bytes::from_static(b"1"));
        out.clear();
        publication(&mut out, &bare);
        assert_eq!(out, r#"{"data":1}"#);
    }

    #[test]
    fn error_shape() {
        let mut out = String::new();
        error(&mut out, 100, "storage error: down", true);
        assert_eq!(
            out,
            r#"{"code":100,"message":"storage error: down","temporary":true}"#
        );
    }
}
