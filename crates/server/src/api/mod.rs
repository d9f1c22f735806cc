//! `POST /api/<method>`: the server API for backends, in Centrifugo's
//! shapes.
//!
//! This module owns the HTTP side: the request must be a `POST` (405),
//! carry the API key in `X-API-Key` or `Authorization: apikey KEY` (401,
//! compared in constant time), name a method we have (404), and send a JSON
//! object of at most `api_max_body` bytes (413, enforced while reading; 400
//! for anything that is not a JSON object of the method's shape). Storage
//! or broker trouble answers 503. Everything about the request's meaning
//! (unknown channel, bad channel name, history not enabled...) is answered
//! with 200 and `{"error":{"code":C,"message":"..."}}`, as Centrifugo's API
//! clients expect; success is `{"result":{...}}`, and `batch` answers
//! `{"replies":[...]}`. Every request is counted in the node's metrics.
//!
//! What the methods do lives in `methods`; the JSON writers in `json`;
//! channel patterns in `glob`. The user-facing reference is docs/api.md.

mod glob;
mod json;
mod methods;

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method as HttpMethod, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::node::Node;
use crate::util::{response, Body};
pub(crate) use methods::channel_counts;
use methods::{CommandError, Method};

/// How long a client may take to send its request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Answers one API request for `method` (the path after `/api/`).
pub async fn handle<B>(node: &Node, method: &str, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let known = Method::from_name(method);
    let response = serve(node, known, req).await;
    // Unknown names share one label so that probing cannot grow the metrics.
    let label = known.map_or("unknown", Method::name);
    node.metrics()
        .api_request(label, response.status().as_u16());
    if let Some(TransportError(code)) = response.extensions().get() {
        node.metrics().error(*code);
    }
    response
}

async fn serve<B>(node: &Node, method: Option<Method>, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if req.method() != HttpMethod::POST {
        let mut r = failure(
            StatusCode::METHOD_NOT_ALLOWED,
            104,
            "method not allowed: use POST",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    if let Err(why) = authorize(&node.config().api_key, req.headers()) {
        return failure(StatusCode::UNAUTHORIZED, 101, why);
    }
    let Some(method) = method else {
        return failure(StatusCode::NOT_FOUND, 104, "method not found");
    };
    if node.is_shutting_down() {
        return failure(StatusCode::SERVICE_UNAVAILABLE, 100, "shutting down");
    }
    let body = match read_body(req, node.config().api_max_body).await {
        Ok(body) => body,
        Err(r) => return r,
    };
    let params = match object_text(&body) {
        Ok(text) => text,
        Err(why) => return failure(StatusCode::BAD_REQUEST, 107, &why),
    };
    if method == Method::Batch {
        return match methods::batch(node, params).await {
            Ok((replies, unavailable)) => {
                let status = if unavailable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                };
                let mut out = String::from("{\"replies\":[");
                out.push_str(&replies.join(","));
                out.push_str("]}");
                response(status, "application/json", out)
            }
            Err(e) => command_failure(node, &e),
        };
    }
    match methods::run(node, method, params).await {
        Ok(result) => {
            let mut out = String::with_capacity(result.len() + 11);
            out.push_str("{\"result\":");
            out.push_str(&result);
            out.push('}');
            response(StatusCode::OK, "application/json", out)
        }
        Err(e) => command_failure(node, &e),
    }
}

/// A failed command as a whole request: 400 for parameters of the wrong
/// shape, 503 for temporary failures, 200 with the error otherwise.
fn command_failure(node: &Node, e: &CommandError) -> Response<Body> {
    if let CommandError::Decode(_) = e {
        return failure(StatusCode::BAD_REQUEST, 107, &e.to_string());
    }
    let status = if e.is_temporary() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut out = String::from("{\"error\":");
    e.write(node, &mut out);
    out.push('}');
    response(status, "application/json", out)
}

/// The error code of a transport-level failure, riding on the response so
/// that [`handle`] counts it in `duplex_errors_total` like other errors.
#[derive(Clone, Copy)]
struct TransportError(u32);

/// A transport-level failure: `status` with `{"error":{"code","message"}}`.
fn failure(status: StatusCode, code: u32, message: &str) -> Response<Body> {
    let mut out = String::from("{\"error\":");
    json::error(
        &mut out,
        code,
        message,
        status == StatusCode::SERVICE_UNAVAILABLE,
    );
    out.push('}');
    let mut r = response(status, "application/json", out);
    r.extensions_mut().insert(TransportError(code));
    r
}

/// Checks the API key. An empty configured key refuses everyone.
fn authorize(expected: &str, headers: &HeaderMap) -> Result<(), &'static str> {
    if expected.is_empty() {
        return Err("the server API is disabled: no api_key is configured");
    }
    let given = headers
        .get("x-api-key")
        .map(HeaderValue::as_bytes)
        .or_else(|| {
            let value = headers.get(header::AUTHORIZATION)?.as_bytes();
            let (scheme, key) = value.split_at_checked(7)?;
            scheme.eq_ignore_ascii_case(b"apikey ").then_some(key)
        });
    match given {
        None => Err("missing API key: send it in the X-API-Key header"),
        Some(key) if same_key(key, expected.as_bytes()) => Ok(()),
        Some(_) => Err("wrong API key"),
    }
}

/// Compares in time that depends only on the expected key's length, so the
/// answer time does not tell how much of a guess was right.
fn same_key(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(0) ^ e;
    }
    std::hint::black_box(diff) == 0
}

/// Reads the body, refusing more than `limit` bytes: up front when
/// `Content-Length` says so, otherwise as soon as the bytes arrive.
async fn read_body<B>(req: Request<B>, limit: usize) -> Result<Bytes, Response<Body>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || {
        failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            107,
            &format!("request body is larger than {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let body = Limited::new(req.into_body(), limit);
    match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err(failure(
            StatusCode::BAD_REQUEST,
            107,
            &format!("could not read the request body: {e}"),
        )),
        Err(_) => Err(failure(
            StatusCode::REQUEST_TIMEOUT,
            107,
            "the request body did not arrive in time",
        )),
    }
}

/// The body as the text of one JSON object. An empty body counts as `{}`
/// (handy for `info` and `channels`).
fn object_text(body: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(body).map_err(|_| "request body is not UTF-8".to_owned())?;
    let text = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    if text.is_empty() {
        return Ok("{}");
    }
    // The same bound as client commands: a subscriber whose JSON parser
    // recurses must not be handed publication data nested 10,000 deep.
    let max_depth = centrifuge_proto::Limits::DEFAULT_MAX_DEPTH;
    centrifuge_proto::check_depth(text, max_depth)
        .map_err(|_| format!("request body nests arrays and objects deeper than {max_depth}"))?;
    serde_json::from_str::<&serde_json::value::RawValue>(text)
        .map_err(|e| format!("request body is not JSON: {e}"))?;
    if !text.starts_with('{') {
        return Err("request body must be a JSON object".into());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_comparison() {
        assert!(same_key(b"secret", b"secret"));
        assert!(!same_key(b"secreT", b"secret"));
        assert!(!same_key(b"secret!", b"secret"));
        assert!(!same_key(b"secre", b"secret"));
        assert!(!same_key(b"", b"secret"));
        // A key that is a prefix padded with NULs is still wrong.
        assert!(!same_key(b"secret\0", b"secret"));
    }

    #[test]
    fn key_headers() {
        let mut h = HeaderMap::new();
        assert!(authorize("k", &h).is_err());
        h.insert("x-api-key", HeaderValue::from_static("k"));
        assert!(authorize("k", &h).is_ok());
        assert!(
            authorize("", &h).is_err(),
            "an empty configured key refuses all"
        );
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("apikey k"));
        assert!(authorize("k", &h).is_ok());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k"));
        assert!(authorize("k", &h).is_err());
    }

    #[test]
    fn bodies() {
        assert_eq!(object_text(b"").unwrap(), "{}");
        assert_eq!(object_text(b" \n").unwrap(), "{}");
        assert_eq!(object_text(b" {\"a\":1}\n").unwrap(), "{\"a\":1}");
        assert!(object_text(b"[1]").is_err());
        assert!(object_text(b"\"x\"").is_err());
        assert!(object_text(b"{").is_err());
        assert!(object_text(b"{} {}").is_err());
        assert!(object_text(b"\xff").is_err());
        let deep = |n: usize| format!("{{\"data\":{}{}}}", "[".repeat(n), "]".repeat(n));
        assert!(object_text(deep(127).as_bytes()).is_ok());
        assert!(object_text(deep(128).as_bytes()).is_err());
    }
}
