//! Fuzzes the server API: one `POST /api/<method>` request, answered by the
//! real handler on a fresh in-memory node
//! ([`server::fuzzing::decode_api_body`]).
//!
//! Input layout: `METHOD \n BODY`. The method is the text before the first
//! newline (a request path's last part: `publish`, `batch`, or anything),
//! the body everything after it. Without a newline the whole input is the
//! body of `publish`.
//!
//! Beyond "never panics, never hangs": the answer is 200, 400 or 404 (the
//! node's storage cannot fail, so never 503); its body is a JSON object;
//! 404 exactly for unknown methods, with error 104; 400 carries error 107,
//! and every body that is not UTF-8 or not one JSON object gets it; a 200
//! holds exactly one of `result`, `error` (a known code and a message) or,
//! for `batch` only, `replies`, one per command sent, each an object
//! naming its method or an `error`.
//!
//! The answers are read with serde_json's `RawValue` level by level, as
//! they may splice in what was published: JSON that serde_json's `Value`
//! refuses (numbers beyond `f64` such as `1e400`, more than 128 levels of
//! nesting) but the API rightly accepts. Where the oracle's own reading of
//! a body hits those limits, the "is it one JSON object" checks are skipped.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

const METHODS: &[&str] = &[
    "publish",
    "broadcast",
    "subscribe",
    "unsubscribe",
    "disconnect",
    "presence",
    "presence_stats",
    "history",
    "history_remove",
    "channels",
    "info",
    "batch",
];

/// Error codes the API answers with (Centrifugo's numbering).
const CODES: &[u64] = &[
    100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112,
];

/// An object read one level deep: its members' JSON text.
type Members = BTreeMap<String, Box<RawValue>>;

#[derive(Deserialize)]
struct ErrorObject {
    code: u64,
    message: String,
}

fuzz_target!(|data: &[u8]| {
    let (method, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (
            String::from_utf8_lossy(&data[..i]).into_owned(),
            &data[i + 1..],
        ),
        None => ("publish".to_owned(), data),
    };
    let Some(reply) = server::fuzzing::decode_api_body(&method, body) else {
        panic!("the fuzzing node could not be built");
    };
    let Some(answer) = members(&reply.body) else {
        return;
    };
    let known = METHODS.contains(&method.as_str());
    let is_object = is_object(body);
    match reply.status {
        404 => {
            assert!(!known, "404 for the known method {method:?}");
            assert_eq!(error_code(&answer), Some(104), "404 without 104");
        }
        400 => {
            assert!(known, "400 for the unknown method {method:?}");
            assert_eq!(error_code(&answer), Some(107), "400 without 107");
        }
        200 => {
            assert!(known, "200 for the unknown method {method:?}");
            assert_ne!(
                is_object,
                Some(false),
                "200 for a body that is not a JSON object"
            );
            assert_eq!(
                answer.len(),
                1,
                "200 with other than one member: {answer:?}"
            );
            if let Some(code) = error_code(&answer) {
                assert!(CODES.contains(&code), "unknown error code {code}");
            } else if let Some(replies) = answer.get("replies") {
                assert_eq!(method, "batch", "replies for {method}");
                check_replies(body, replies);
            } else {
                assert!(
                    answer
                        .get("result")
                        .is_some_and(|r| r.get().starts_with('{')),
                    "200 without a result object: {answer:?}"
                );
            }
        }
        other => panic!("status {other} for {method:?}: {answer:?}"),
    }
    if known && is_object == Some(false) {
        assert_eq!(
            reply.status, 400,
            "a body that is not a JSON object must get 400"
        );
    }
});

/// Whether serde_json gave up for its own limits rather than for bad JSON.
fn beyond_limits(e: &serde_json::Error) -> bool {
    let text = e.to_string();
    text.contains("recursion limit exceeded") || text.contains("number out of range")
}

/// The members of a JSON object; panics on anything else, `None` when too
/// deep for serde_json to read.
fn members(json: &[u8]) -> Option<Members> {
    match serde_json::from_slice::<Members>(json) {
        Ok(m) => Some(m),
        Err(e) if beyond_limits(&e) => None,
        Err(e) => panic!(
            "not a JSON object ({e}): {:?}",
            String::from_utf8_lossy(json)
        ),
    }
}

/// `{"error":{"code":C,"message":"..."}}` → `C` (and the message is a string).
fn error_code(answer: &Members) -> Option<u64> {
    let error = answer.get("error")?;
    match serde_json::from_str::<ErrorObject>(error.get()) {
        Ok(e) => {
            let _ = e.message;
            Some(e.code)
        }
        Err(e) => panic!("malformed error ({e}): {}", error.get()),
    }
}

/// Whether `body` is blank or one JSON object (the API takes a blank body
/// as `{}`); `None` when serde_json cannot tell for its own limits.
fn is_object(body: &[u8]) -> Option<bool> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Some(false);
    };
    let text = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    if text.is_empty() {
        return Some(true);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Some(v.is_object()),
        Err(e) if beyond_limits(&e) => None,
        Err(_) => Some(false),
    }
}

/// One reply per command; each `{"METHOD":{...}}` or `{"error":{...}}`.
fn check_replies(body: &[u8], replies: &RawValue) {
    let replies: Vec<Box<RawValue>> = match serde_json::from_str(replies.get()) {
        Ok(r) => r,
        Err(e) if beyond_limits(&e) => return,
        Err(e) => panic!("replies is not an array ({e}): {}", replies.get()),
    };
    // How many commands were sent, when the oracle can read the body.
    #[derive(Deserialize)]
    struct Batch {
        commands: Option<Vec<Box<RawValue>>>,
    }
    if let Ok(batch) = serde_json::from_slice::<Batch>(body) {
        let sent = batch.commands.map_or(0, |c| c.len());
        assert_eq!(
            replies.len(),
            sent,
            "{sent} commands, {} replies",
            replies.len()
        );
    }
    for reply in &replies {
        let Some(reply) = members(reply.get().as_bytes()) else {
            continue;
        };
        assert_eq!(
            reply.len(),
            1,
            "a reply with other than one member: {reply:?}"
        );
        if let Some(code) = error_code(&reply) {
            assert!(
                CODES.contains(&code),
                "unknown error code {code} in a batch"
            );
        } else if let Some((name, result)) = reply.iter().next() {
            assert!(
                METHODS.contains(&name.as_str()) && name != "batch",
                "a reply names {name:?}"
            );
            assert!(
                result.get().starts_with('{'),
                "a reply's result is not an object"
            );
        }
    }
}
