//! Fuzzes the opening handshake parsers with arbitrary bytes.
//!
//! The whole input is handed to
//!
//! * `handshake::parse_request` (default limits, and small ones), and when a
//!   request parses, to `handshake::accept` with and without
//!   permessage-deflate; the 101 response of the latter must then be
//!   accepted by `parse_response` for a client request carrying the same key
//!   and subprotocols (a server/client round trip);
//! * `handshake::parse_response` against a fixed client request (fixed key,
//!   subprotocol `chat`, a permessage-deflate offer).
//!
//! Invariants besides "never panics": a complete parse consumes at most the
//! input and parses identically from exactly the bytes it consumed, while a
//! strict prefix of those bytes is still incomplete ("need more", never an
//! error); every error renders a well-formed HTTP rejection response whose
//! status is the error's.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ws_proto::deflate::DeflateConfig;
use ws_proto::handshake::{
    accept, client_request, parse_request, parse_response, AcceptOptions, ClientOptions,
    ClientRequest, HandshakeError, RequestLimits,
};

/// The client request whose answer `parse_response` checks.
fn fixed_request() -> &'static ClientRequest {
    static REQUEST: OnceLock<ClientRequest> = OnceLock::new();
    REQUEST.get_or_init(|| {
        let opts = ClientOptions::new()
            // RFC 6455's example key; its accept value is
            // s3pPLMBiTxaQ9kYGzzhZRbK+xOo=.
            .key("dGhlIHNhbXBsZSBub25jZQ==")
            .protocol("chat")
            .deflate(DeflateConfig::default());
        client_request("example.com", "/chat", &opts)
    })
}

fuzz_target!(|data: &[u8]| {
    let small = RequestLimits {
        max_header_bytes: 256,
        max_headers: 8,
    };
    for limits in [RequestLimits::default(), small] {
        check_incremental(data, |b| parse_request(b, &limits));
        if let Ok(Some((req, _))) = parse_request(data, &limits) {
            let plain = AcceptOptions::new().protocols(["chat", "superchat"]);
            round_trip(&req, &plain);
            let deflate = plain.clone().deflate(DeflateConfig::default());
            if let Err(e) = accept(&req, &deflate) {
                check_rejection(&e);
            }
        }
    }

    let req = fixed_request();
    check_incremental(data, |b| parse_response(b, req));
    if let Ok(Some((resp, _))) = parse_response(data, req) {
        assert!(
            resp.protocol.is_none() || resp.protocol.as_deref() == Some("chat"),
            "accepted a subprotocol that was not offered: {:?}",
            resp.protocol
        );
    }
});

/// Checks an incremental parser's contract on `data`.
fn check_incremental<T>(
    data: &[u8],
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, HandshakeError>,
) {
    match parse(data) {
        Ok(Some((_, consumed))) => {
            assert!(
                consumed <= data.len(),
                "consumed {consumed} of {}",
                data.len()
            );
            assert!(consumed > 0);
            match parse(&data[..consumed]) {
                Ok(Some((_, again))) => assert_eq!(again, consumed),
                other => panic!(
                    "the consumed bytes alone do not parse: {:?}",
                    other.map(|o| o.map(|(_, n)| n))
                ),
            }
            for cut in [consumed - 1, consumed / 2] {
                match parse(&data[..cut]) {
                    Ok(None) => {}
                    Ok(Some((_, n))) => panic!("prefix of {cut} bytes parsed as {n} bytes"),
                    Err(e) => panic!("prefix of {cut} bytes is an error: {e}"),
                }
            }
        }
        Ok(None) => {}
        Err(e) => check_rejection(&e),
    }
}

/// Accepts `req` and checks that a client which sent the same key and
/// subprotocols takes the response.
fn round_trip(req: &ws_proto::handshake::UpgradeRequest, opts: &AcceptOptions) {
    let accepted = match accept(req, opts) {
        Ok(accepted) => accepted,
        Err(e) => {
            check_rejection(&e);
            return;
        }
    };
    let client = client_request(
        &req.host,
        &req.path,
        &ClientOptions::new()
            .key(req.key.clone())
            .protocols(req.protocols.iter().cloned()),
    );
    match parse_response(&accepted.response, &client) {
        Ok(Some((resp, consumed))) => {
            assert_eq!(consumed, accepted.response.len());
            assert_eq!(resp.protocol, accepted.protocol);
            assert_eq!(resp.deflate, None);
        }
        other => panic!(
            "client rejects the server's 101: {:?}\n{}",
            other.map(|o| o.map(|(_, n)| n)),
            String::from_utf8_lossy(&accepted.response)
        ),
    }
}

/// An error's rejection response is a complete HTTP/1.1 response with the
/// error's status and a body matching its Content-Length.
fn check_rejection(e: &HandshakeError) {
    let response = e.response();
    let (status, content_length, head_len) =
        parse_head(&response).unwrap_or_else(|| panic!("malformed rejection response for {e}"));
    assert_eq!(status, e.status(), "status of {e}");
    assert_eq!(
        content_length,
        response.len() - head_len,
        "body length of {e}"
    );
}

/// Reads a response head: status code, Content-Length and the head's length
/// (final empty line included).
fn parse_head(response: &[u8]) -> Option<(u16, usize, usize)> {
    let text = std::str::from_utf8(response).ok()?;
    let (head, _) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let mut content_length = None;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.trim().parse().ok()?);
        }
    }
    Some((status, content_length?, head.len() + 4))
}
