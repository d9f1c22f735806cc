//! JSON plumbing that never builds a `serde_json::Value` tree.
//!
//! Payloads stay raw JSON text. This module checks that text has the shape a
//! packet type requires (object, array, event array) in a single streaming
//! pass through serde_json's deserializer — which also enforces serde_json's
//! nesting limit of 128, so hostile 10,000-deep input is an error rather than
//! a stack overflow — and it holds the small writers and scanners the packet
//! constructors and event helpers use. Nothing here is public; what payloads
//! *mean* is for the server crate and its users.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::error::Category;

use ws_proto::Utf8Bytes;

use crate::{Error, PacketKind};

/// The JSON shape a payload must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A JSON object (CONNECT).
    Object,
    /// A JSON object, or a string as sent by protocol v4 peers (CONNECT_ERROR).
    ObjectOrString,
    /// Any JSON array (ACK, BINARY_ACK).
    Array,
    /// A non-empty array whose first element is a string (EVENT,
    /// BINARY_EVENT).
    EventArray,
}

/// Checks that `payload` is a single JSON value of `shape`, with nothing but
/// whitespace after it.
pub(crate) fn check_shape(payload: &[u8], shape: Shape, kind: PacketKind) -> Result<(), Error> {
    let fast = match shape {
        Shape::EventArray => plain_flat_array(payload, true, |_| {}),
        Shape::Array => plain_flat_array(payload, false, |_| {}),
        Shape::Object | Shape::ObjectOrString => false,
    };
    if fast {
        return Ok(());
    }
    check_shape_full(payload, shape, kind)
}

/// [`check_shape`] through serde_json's parser.
fn check_shape_full(payload: &[u8], shape: Shape, kind: PacketKind) -> Result<(), Error> {
    // The bytes are valid UTF-8 (they come from text): read as a slice, the
    // parser checks only the strings it meets, not the whole text again.
    let mut de = serde_json::Deserializer::from_slice(payload);
    de.deserialize_any(ShapeVisitor(shape))
        .and_then(|()| de.end())
        .map_err(|e| json_error(e, kind))
}

/// One element of a plain flat array (see [`plain_flat_array`]).
enum Plain<'a> {
    /// A string's content (no escapes in it).
    Str(&'a [u8]),
    /// A non-negative integer of at most 15 digits.
    Unsigned(&'a [u8]),
    /// A negative integer of at most 15 digits (its digits), not `-0`.
    Negative(&'a [u8]),
    Bool(bool),
    Null,
}

/// Reads `payload` if it is a flat JSON array of plain strings (no escapes,
/// no control characters), short integers, booleans and nulls, without
/// whitespace, and (with `first_is_string`) starting with a string: the
/// usual event payload, read without the general parser. Each element goes
/// to `each`, in order. `false` means "not sure", never "invalid": the
/// caller then uses serde_json (elements seen so far are to be discarded).
/// `payload` is valid UTF-8, so a string without `\` or control bytes is a
/// valid JSON string.
fn plain_flat_array<'a>(
    payload: &'a [u8],
    first_is_string: bool,
    mut each: impl FnMut(Plain<'a>),
) -> bool {
    let Some(mut rest) = payload
        .strip_prefix(b"[")
        .and_then(|r| r.strip_suffix(b"]"))
    else {
        return false;
    };
    if rest.is_empty() {
        return !first_is_string;
    }
    let mut first = true;
    loop {
        let b = rest;
        let (item, used) = match b.first() {
            Some(b'"') => {
                let body = b.get(1..).unwrap_or_default();
                match body
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                {
                    Some(end) if body.get(end) == Some(&b'"') => match body.get(..end) {
                        Some(text) => (Plain::Str(text), end + 2),
                        None => return false,
                    },
                    _ => return false,
                }
            }
            _ if first && first_is_string => return false,
            Some(b't') if b.starts_with(b"true") => (Plain::Bool(true), 4),
            Some(b'f') if b.starts_with(b"false") => (Plain::Bool(false), 5),
            Some(b'n') if b.starts_with(b"null") => (Plain::Null, 4),
            Some(&c) => {
                let sign = usize::from(c == b'-');
                let digits = b
                    .get(sign..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|d| d.is_ascii_digit())
                    .count();
                let lead = b.get(sign).copied();
                // No leading zeros, no `-0` (a float to serde_json), short
                // enough for any integer type.
                if digits == 0 || digits > 15 || (lead == Some(b'0') && (digits > 1 || sign == 1)) {
                    return false;
                }
                let Some(text) = b.get(sign..sign + digits) else {
                    return false;
                };
                let item = if sign == 1 {
                    Plain::Negative(text)
                } else {
                    Plain::Unsigned(text)
                };
                (item, sign + digits)
            }
            None => return false,
        };
        first = false;
        each(item);
        rest = rest.get(used..).unwrap_or_default();
        match rest.strip_prefix(b",") {
            Some(tail) => rest = tail,
            None => return rest.is_empty(),
        }
    }
}

/// The arguments of a payload as `serde_json` values: an event's after its
/// name (`skip_first`), an ack's all. The same as [`array_elements`], faster
/// for plain payloads.
pub(crate) fn array_values(
    payload: &Utf8Bytes,
    skip_first: bool,
    kind: PacketKind,
) -> Result<Vec<serde_json::Value>, Error> {
    let mut out = Vec::new();
    let mut index = 0usize;
    let mut exact = true;
    let plain = plain_flat_array(payload.as_bytes(), skip_first, |item| {
        index += 1;
        if skip_first && index == 1 {
            return;
        }
        let value = match item {
            // Only the string itself is checked, not the whole payload.
            Plain::Str(s) => match std::str::from_utf8(s) {
                Ok(s) => serde_json::Value::String(s.to_owned()),
                Err(_) => {
                    exact = false;
                    return;
                }
            },
            Plain::Bool(b) => serde_json::Value::Bool(b),
            Plain::Null => serde_json::Value::Null,
            // At most 15 digits: no overflow either way.
            Plain::Unsigned(digits) => decimal(digits).into(),
            Plain::Negative(digits) => (-(decimal(digits) as i64)).into(),
        };
        out.push(value);
    });
    if plain && exact {
        Ok(out)
    } else {
        array_elements(payload.as_str(), skip_first, kind)
    }
}

/// The value of at most 15 ASCII digits.
fn decimal(digits: &[u8]) -> u64 {
    digits
        .iter()
        .fold(0, |n, &d| n * 10 + u64::from(d.wrapping_sub(b'0')))
}

/// Sorts serde_json errors into syntax errors and shape errors.
pub(crate) fn json_error(err: serde_json::Error, kind: PacketKind) -> Error {
    match err.classify() {
        Category::Data => Error::InvalidPayload { kind, source: err },
        Category::Syntax | Category::Eof | Category::Io => Error::InvalidJson(err),
    }
}

/// A serde_json error carrying `msg`, for the few failures serde_json itself
/// did not detect.
pub(crate) fn custom_error(msg: &'static str) -> serde_json::Error {
    de::Error::custom(msg)
}

struct ShapeVisitor(Shape);

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Shape::Object => "a JSON object",
            Shape::ObjectOrString => "a JSON object or string",
            Shape::Array => "a JSON array",
            Shape::EventArray => "a non-empty JSON array starting with the event name",
        })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match self.0 {
            Shape::ObjectOrString => Ok(()),
            _ => Err(E::invalid_type(de::Unexpected::Str(v), &self)),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        match self.0 {
            Shape::Object | Shape::ObjectOrString => {
                while map.next_entry::<Skip, Skip>()?.is_some() {}
                Ok(())
            }
            _ => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        match self.0 {
            Shape::Array => {}
            Shape::EventArray => {
                if seq.next_element_seed(EventNameSeed)?.is_none() {
                    return Err(de::Error::invalid_length(0, &self));
                }
            }
            Shape::Object | Shape::ObjectOrString => {
                return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
            }
        }
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(())
    }
}

/// Accepts only a string (the event name).
struct EventNameSeed;

impl<'de> DeserializeSeed<'de> for EventNameSeed {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(EventNameSeed)
    }
}

impl Visitor<'_> for EventNameSeed {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the event name (a string)")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
}

/// Consumes any JSON value through `deserialize_any`, so that serde_json's
/// recursion limit applies (its `IgnoredAny` path has no depth limit).
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i128<E>(self, _: i128) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u128<E>(self, _: u128) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_none<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Skip, D::Error> {
        Skip::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// Collects the elements of a JSON array, optionally skipping the first one
/// (an event's name).
pub(crate) fn array_elements<'de, T: Deserialize<'de>>(
    payload: &'de str,
    skip_first: bool,
    kind: PacketKind,
) -> Result<Vec<T>, Error> {
    let mut de = serde_json::Deserializer::from_str(payload);
    de.deserialize_seq(ElementsVisitor::<T> {
        skip_first,
        marker: PhantomData,
    })
    .and_then(|v| de.end().map(|()| v))
    .map_err(|e| json_error(e, kind))
}

struct ElementsVisitor<T> {
    skip_first: bool,
    marker: PhantomData<fn() -> T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ElementsVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.skip_first {
            "a non-empty JSON array starting with the event name"
        } else {
            "a JSON array"
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        if self.skip_first && seq.next_element_seed(EventNameSeed)?.is_none() {
            return Err(de::Error::invalid_length(0, &self));
        }
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<T>()? {
            out.push(v);
        }
        Ok(out)
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|&c| is_ws(c)) {
        i += 1;
    }
    i
}

/// Where the first element of a JSON array that starts with a string ends:
/// `(name_start, name_end, has_escapes)`, where `payload[name_start..name_end]`
/// is the quoted string, quotes included. `None` if the text does not start
/// that way. Scans only the name, not the rest of the array.
fn scan_first_string(b: &[u8]) -> Option<(usize, usize, bool)> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let start = i;
    let mut j = i + 1;
    let mut special = false;
    loop {
        match *b.get(j)? {
            b'"' => break,
            b'\\' => {
                special = true;
                j += 2;
            }
            c => {
                // Raw control characters are invalid JSON; let serde_json
                // report them.
                special |= c < 0x20;
                j += 1;
            }
        }
    }
    Some((start, j + 1, special))
}

/// The first element of an event array, borrowed when it has no escapes.
pub(crate) fn first_string(payload: &[u8], kind: PacketKind) -> Result<Cow<'_, str>, Error> {
    let bad = || Error::InvalidPayload {
        kind,
        source: custom_error("the payload does not start with the event name"),
    };
    let (start, end, special) = scan_first_string(payload).ok_or_else(bad)?;
    if special {
        let quoted = payload.get(start..end).ok_or_else(bad)?;
        serde_json::from_slice::<String>(quoted)
            .map(Cow::Owned)
            .map_err(|e| json_error(e, kind))
    } else {
        // Only the name is checked, not the whole payload again.
        let name = payload.get(start + 1..end - 1).ok_or_else(bad)?;
        std::str::from_utf8(name)
            .map(Cow::Borrowed)
            .map_err(|_| bad())
    }
}

/// The elements of a validated array payload as raw text, without the
/// brackets and, when `skip_name` is set, without the leading event name:
/// `1,{"a":2}` for `["name",1,{"a":2}]`, and `""` when there are none.
///
/// Reads only the name and the whitespace around the brackets, trusting that
/// the payload is the valid JSON array the decoder checked; text that does
/// not have that outline is an error.
pub(crate) fn elements_text(
    payload: &str,
    skip_name: bool,
    kind: PacketKind,
) -> Result<&str, Error> {
    let bad = || Error::InvalidPayload {
        kind,
        source: custom_error("the payload is not a JSON array"),
    };
    let b = payload.as_bytes();
    let mut close = b.len();
    while close > 0 && b.get(close - 1).is_some_and(|&c| is_ws(c)) {
        close -= 1;
    }
    if close == 0 || b.get(close - 1) != Some(&b']') {
        return Err(bad());
    }
    close -= 1;
    let start = if skip_name {
        let (_, name_end, _) = scan_first_string(b).ok_or_else(bad)?;
        let i = skip_ws(b, name_end);
        match b.get(i) {
            Some(b',') => i + 1,
            Some(b']') if i == close => return Ok(""),
            _ => return Err(bad()),
        }
    } else {
        let open = skip_ws(b, 0);
        if b.get(open) != Some(&b'[') {
            return Err(bad());
        }
        open + 1
    };
    let inner = payload.get(start..close).ok_or_else(bad)?;
    if inner.bytes().all(is_ws) {
        if skip_name {
            // `["name", ]` is not JSON.
            return Err(bad());
        }
        return Ok("");
    }
    Ok(inner)
}

/// Emits `s` as a JSON string literal, quotes included, in pieces.
fn escape_json_str(s: &str, mut emit: impl FnMut(&str)) {
    const HEX: [&str; 16] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f",
    ];
    emit("\"");
    let mut plain_from = 0;
    for (i, b) in s.bytes().enumerate() {
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
        // `i` is at an ASCII byte, so both slices fall on char boundaries.
        emit(s.get(plain_from..i).unwrap_or_default());
        if short.is_empty() {
            emit("\\u00");
            emit(HEX[usize::from(b >> 4)]);
            emit(HEX[usize::from(b & 0xf)]);
        } else {
            emit(short);
        }
        plain_from = i + 1;
    }
    emit(s.get(plain_from..).unwrap_or_default());
    emit("\"");
}

/// Appends `s` as a JSON string literal, quotes included.
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    escape_json_str(s, |piece| out.extend_from_slice(piece.as_bytes()));
}

/// Appends `s` as a JSON string literal, quotes included.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    escape_json_str(s, |piece| out.push_str(piece));
}

/// `buf[mark..]` holds compact JSON for a list of arguments: an array, or
/// `null` for none. Rewrites it in place so that `buf` continues an array
/// that was opened before `mark` (and already has at least one element):
/// `[a,b]` becomes `,a,b]`, and `[]` or `null` become `]`.
pub(crate) fn splice_args(buf: &mut Vec<u8>, mark: usize) -> Result<(), Error> {
    let tail = buf.get(mark..).unwrap_or_default();
    if tail == b"null" || is_empty_array(tail) {
        buf.truncate(mark);
        buf.push(b']');
        return Ok(());
    }
    match buf.get_mut(mark) {
        Some(first @ b'[') => {
            *first = b',';
            Ok(())
        }
        _ => Err(Error::ArgsNotArray),
    }
}

/// `buf` holds compact JSON for a list of arguments; turns `null` into `[]`
/// and rejects anything that is not an array.
pub(crate) fn normalize_args(buf: &mut Vec<u8>) -> Result<(), Error> {
    if buf.as_slice() == b"null" {
        buf.clear();
        buf.extend_from_slice(b"[]");
    }
    if buf.first() == Some(&b'[') {
        Ok(())
    } else {
        Err(Error::ArgsNotArray)
    }
}

fn is_empty_array(json: &[u8]) -> bool {
    json.first() == Some(&b'[') && {
        let i = skip_ws(json, 1);
        json.get(i) == Some(&b']') && skip_ws(json, i + 1) == json.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_check_agrees_with_the_parser() {
        let cases = [
            r#"["echo","xxxxxxxxxxxxxxxxxxxx"]"#,
            r#"["a",1,-2,0,-0,true,false,null,"é€"]"#,
            r#"["a"]"#,
            "[]",
            "[1]",
            r#"[1,"a"]"#,
            r#"["a",]"#,
            r#"["a",,1]"#,
            r#"["a",01]"#,
            r#"["a",-]"#,
            r#"["a",1.5]"#,
            r#"["a",1e3]"#,
            r#"["a",tru]"#,
            r#"["a",truex]"#,
            r#"["a",nul]"#,
            r#"["a\"b"]"#,
            "[\"a\u{1}\"]",
            r#"["a" ]"#,
            r#" ["a"]"#,
            r#"["a"]]"#,
            r#"[["a"]]"#,
            r#"["a",{"b":1}]"#,
            r#"["a"#,
            r#"["a","#,
            "[",
            "]",
            "",
            r#"["a",1234567890123456]"#,
            r#"["a",123456789012345,-123456789012345]"#,
            r#"["a",-0,-01,-1]"#,
            "[1,2,3]",
            r#"["",""]"#,
        ];
        for case in cases {
            for (shape, first) in [(Shape::EventArray, true), (Shape::Array, false)] {
                let fast = plain_flat_array(case.as_bytes(), first, |_| {});
                let full = check_shape_full(case.as_bytes(), shape, PacketKind::Event).is_ok();
                // The fast path may pass on to the parser, never overrule it.
                assert!(!fast || full, "{case:?} {shape:?}");
                assert_eq!(
                    check_shape(case.as_bytes(), shape, PacketKind::Event).is_ok(),
                    full,
                    "{case:?}"
                );
            }
        }
        let plain = |s: &str, first| plain_flat_array(s.as_bytes(), first, |_| {});
        assert!(plain(r#"["echo","xxxxxxxxxxxxxxxxxxxx"]"#, true));
        assert!(plain(r#"["a",1,-2,0,true,false,null,"é"]"#, true));
        assert!(plain("[]", false));
        assert!(!plain("[1]", true));
        assert!(!plain(r#"["a",-0]"#, true));
    }

    fn shape(s: &str, shape: Shape) -> Result<(), Error> {
        check_shape(s.as_bytes(), shape, PacketKind::Event)
    }

    #[test]
    fn shapes() {
        assert!(shape("{}", Shape::Object).is_ok());
        assert!(shape(r#" {"a":[1,{"b":null}]} "#, Shape::Object).is_ok());
        assert!(shape("[]", Shape::Object).is_err());
        assert!(shape("null", Shape::Object).is_err());
        assert!(shape(r#""x""#, Shape::Object).is_err());
        assert!(shape(r#""x""#, Shape::ObjectOrString).is_ok());
        assert!(shape("{}", Shape::ObjectOrString).is_ok());
        assert!(shape("1", Shape::ObjectOrString).is_err());
        assert!(shape("[]", Shape::Array).is_ok());
        assert!(shape("[1,\"2\",{}]", Shape::Array).is_ok());
        assert!(shape("{}", Shape::Array).is_err());
        assert!(shape(r#"["a"]"#, Shape::EventArray).is_ok());
        assert!(shape(r#"["a\u0000\"b",1]"#, Shape::EventArray).is_ok());
        assert!(shape("[]", Shape::EventArray).is_err());
        assert!(shape("[1]", Shape::EventArray).is_err());
        assert!(shape("[null]", Shape::EventArray).is_err());
        assert!(shape("[[\"a\"]]", Shape::EventArray).is_err());
    }

    #[test]
    fn syntax_and_shape_errors_are_told_apart() {
        assert!(matches!(
            shape("[1,", Shape::Array),
            Err(Error::InvalidJson(_))
        ));
        assert!(matches!(
            shape("[1] x", Shape::Array),
            Err(Error::InvalidJson(_))
        ));
        assert!(matches!(
            shape("[1][2]", Shape::Array),
            Err(Error::InvalidJson(_))
        ));
        assert!(matches!(
            shape("{}", Shape::Array),
            Err(Error::InvalidPayload { .. })
        ));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        for depth in [200, 10_000, 100_000] {
            let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            assert!(matches!(
                shape(&deep, Shape::Array),
                Err(Error::InvalidJson(_))
            ));
            let deep_obj = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
            assert!(shape(&deep_obj, Shape::Object).is_err());
        }
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(shape(&ok, Shape::Array).is_ok());
    }

    #[test]
    fn first_string_borrows_when_plain() {
        let k = PacketKind::Event;
        assert!(matches!(
            first_string(r#"["hello",1]"#.as_bytes(), k),
            Ok(Cow::Borrowed("hello"))
        ));
        assert!(matches!(
            first_string(r#" [ "" ]"#.as_bytes(), k),
            Ok(Cow::Borrowed(""))
        ));
        let owned = first_string(r#"["a\"b\u00e9",1]"#.as_bytes(), k).unwrap();
        assert!(matches!(owned, Cow::Owned(_)));
        assert_eq!(owned, "a\"bé");
        assert!(first_string("[1]".as_bytes(), k).is_err());
        assert!(first_string(r#"["unterminated"#.as_bytes(), k).is_err());
        assert!(first_string(r#"["trailing backslash\"#.as_bytes(), k).is_err());
        assert!(first_string("{}".as_bytes(), k).is_err());
        assert!(first_string("[\"raw\ncontrol\"]".as_bytes(), k).is_err());
    }

    #[test]
    fn elements_as_text() {
        let k = PacketKind::Event;
        let ok = |p: &str, skip: bool| elements_text(p, skip, k).unwrap().to_owned();
        assert_eq!(ok(r#"["n",1,{"a":[2]}]"#, true), r#"1,{"a":[2]}"#);
        assert_eq!(ok(r#" [ "n\"]" , 1 ] "#, true), " 1 ");
        assert_eq!(ok(r#"["n"]"#, true), "");
        assert_eq!(ok(r#"[ "n" ] "#, true), "");
        assert_eq!(ok(r#"[1,"x"]"#, false), r#"1,"x""#);
        assert_eq!(ok("[]", false), "");
        assert_eq!(ok(" [ ] ", false), "");
        for bad in [
            "",
            "]",
            "[",
            "{}",
            r#"["n" 1]"#,
            r#"["n",]"#,
            r#"["n"#,
            "x]",
        ] {
            assert!(elements_text(bad, true, k).is_err(), "{bad}");
        }
        for bad in ["", "]", "x]", "{]"] {
            assert!(elements_text(bad, false, k).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_strings_escape() {
        for s in [
            "",
            "plain",
            "quote\"back\\slash",
            "\n\r\t\u{8}\u{c}\u{0}\u{1f}",
            "ünïcødé ✓ 😀",
        ] {
            let mut out = Vec::new();
            push_json_str(&mut out, s);
            let text = String::from_utf8(out).unwrap();
            let mut text2 = String::new();
            push_json_string(&mut text2, s);
            assert_eq!(text, text2);
            assert_eq!(serde_json::from_str::<String>(&text).unwrap(), s);
            assert_eq!(text, serde_json::to_string(s).unwrap());
        }
    }

    #[test]
    fn splicing() {
        let cases: [(&str, Option<&str>); 6] = [
            ("[1,2]", Some(r#"["n",1,2]"#)),
            ("[]", Some(r#"["n"]"#)),
            ("[ ]", Some(r#"["n"]"#)),
            ("null", Some(r#"["n"]"#)),
            ("{}", None),
            ("1", None),
        ];
        for (args, want) in cases {
            let mut buf = br#"["n""#.to_vec();
            let mark = buf.len();
            buf.extend_from_slice(args.as_bytes());
            let got = splice_args(&mut buf, mark)
                .ok()
                .map(|()| String::from_utf8(buf).unwrap());
            assert_eq!(got.as_deref(), want, "{args}");
        }
    }
}
