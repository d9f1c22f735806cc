//! Server side of the opening handshake: parse and validate the client's
//! upgrade request, then accept it.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::{
    accept_key, clip, clip_bytes, has_token, header_window, httparse_error, incomplete,
    push_header, split_list, HandshakeError, RequestLimits,
};
use crate::deflate::{DeflateConfig, DeflateParams};

/// A validated WebSocket upgrade request (RFC 6455 section 4.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The request target as sent, e.g. `/chat?room=1`.
    pub path: String,
    /// The `Host` header value, trimmed.
    pub host: String,
    /// The `Origin` header value, trimmed, if present.
    pub origin: Option<String>,
    /// The `Sec-WebSocket-Key` value, trimmed; it decodes to 16 bytes.
    pub key: String,
    /// The requested subprotocols from every `Sec-WebSocket-Protocol` line,
    /// in the client's order.
    pub protocols: Vec<String>,
    /// The extension offers from every `Sec-WebSocket-Extensions` line, one
    /// entry per comma-separated offer with its parameters, e.g.
    /// `permessage-deflate; client_max_window_bits`, in the client's order.
    pub extension_offers: Vec<String>,
    /// Every header field in order, as (name as sent, raw value).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl UpgradeRequest {
    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Parses and validates an upgrade request from the start of `buf`.
///
/// Returns `Ok(None)` while the header block is incomplete (the request may be
/// split at any byte), and `Ok(Some((request, consumed)))` once it is
/// complete, `consumed` being the length of the header block: bytes after it
/// belong to the WebSocket stream and are left alone. Header blocks larger
/// than `limits.max_header_bytes` or with more than `limits.max_headers`
/// fields fail with status 431, bytes that are not HTTP with 400; the request
/// is then checked by [`validate_upgrade`].
pub fn parse_request(
    buf: &[u8],
    limits: &RequestLimits,
) -> Result<Option<(UpgradeRequest, usize)>, HandshakeError> {
    let window = header_window(buf, limits);
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return incomplete(window, limits),
        Err(e) => return Err(httparse_error(e, limits)),
    };
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HandshakeError::Malformed("incomplete request line".into()));
    };
    let headers = req.headers.iter().map(|h| (h.name, h.value));
    let request = validate_upgrade(method, version >= 1, path, headers)?;
    Ok(Some((request, consumed)))
}

/// Validates an upgrade request given its parts, as RFC 6455 section 4.2.1
/// requires; [`parse_request`] calls it, and an HTTP-library based server
/// (hyper) can call it with the parts of its own request.
///
/// Checks, in order: the method is `GET` (else 405), the request is HTTP/1.1
/// or later (else 400), `Upgrade` contains the token `websocket` and
/// `Connection` the token `upgrade` (case-insensitive comma lists, else
/// [`HandshakeError::NotUpgrade`]), exactly one `Host`, no request body
/// (`Transfer-Encoding` or a non-zero `Content-Length`: whatever follows the
/// header block is WebSocket data), `Sec-WebSocket-Version` is 13 (else 426),
/// `Sec-WebSocket-Key` appears once and is the base64 of 16 bytes (else 400).
/// Header names are matched case-insensitively and repeated
/// `Sec-WebSocket-Protocol` / `Sec-WebSocket-Extensions` lines are all
/// collected.
pub fn validate_upgrade<'a>(
    method: &str,
    http_version_1_1_or_later: bool,
    path: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<UpgradeRequest, HandshakeError> {
    if method != "GET" {
        return Err(HandshakeError::MethodNotAllowed {
            method: clip(method),
        });
    }
    if !http_version_1_1_or_later {
        return Err(HandshakeError::HttpVersion);
    }
    if path.is_empty() {
        return Err(HandshakeError::Malformed("empty request target".into()));
    }
    let raw: Vec<(&str, &[u8])> = headers.into_iter().collect();
    let values = |name: &'static str| {
        raw.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    // At most one occurrence of `name`.
    let single = |name: &'static str| -> Result<Option<&[u8]>, HandshakeError> {
        let mut it = values(name);
        let first = it.next();
        match it.next() {
            Some(_) => Err(HandshakeError::DuplicateHeader(name)),
            None => Ok(first),
        }
    };

    if !has_token(values("Upgrade"), "websocket") {
        return Err(HandshakeError::NotUpgrade {
            header: "Upgrade",
            token: "websocket",
        });
    }
    if !has_token(values("Connection"), "upgrade") {
        return Err(HandshakeError::NotUpgrade {
            header: "Connection",
            token: "upgrade",
        });
    }
    let host = single("Host")?.ok_or(HandshakeError::MissingHeader("Host"))?;
    let host = utf8(host, "Host")?.to_owned();

    if values("Transfer-Encoding").next().is_some()
        || values("Content-Length").any(|v| v.trim_ascii() != b"0")
    {
        return Err(HandshakeError::Malformed(
            "an upgrade request must not carry a body".into(),
        ));
    }

    let version = single("Sec-WebSocket-Version")?
        .ok_or(HandshakeError::MissingHeader("Sec-WebSocket-Version"))?;
    if version.trim_ascii() != b"13" {
        return Err(HandshakeError::UnsupportedVersion {
            got: clip_bytes(version.trim_ascii()),
        });
    }

    let key = single("Sec-WebSocket-Key")?
        .ok_or(HandshakeError::MissingHeader("Sec-WebSocket-Key"))?
        .trim_ascii();
    match STANDARD.decode(key) {
        Ok(decoded) if decoded.len() == 16 => {}
        _ => return Err(HandshakeError::BadKey),
    }
    // Valid base64 is ASCII.
    let key = std::str::from_utf8(key)
        .map_err(|_| HandshakeError::BadKey)?
        .to_owned();

    let origin = match single("Origin")? {
        Some(v) => Some(utf8(v, "Origin")?.to_owned()),
        None => None,
    };
    let mut protocols = Vec::new();
    for v in values("Sec-WebSocket-Protocol") {
        split_list(utf8(v, "Sec-WebSocket-Protocol")?, &mut protocols);
    }
    let mut extension_offers = Vec::new();
    for v in values("Sec-WebSocket-Extensions") {
        split_list(utf8(v, "Sec-WebSocket-Extensions")?, &mut extension_offers);
    }

    Ok(UpgradeRequest {
        path: path.to_owned(),
        host,
        origin,
        key,
        protocols,
        extension_offers,
        headers: raw
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
            .collect(),
    })
}

/// A header value as trimmed UTF-8, or a 400 naming the header.
fn utf8<'v>(v: &'v [u8], name: &str) -> Result<&'v str, HandshakeError> {
    std::str::from_utf8(v.trim_ascii())
        .map_err(|_| HandshakeError::Malformed(format!("{name} header is not UTF-8")))
}

/// The origin check hook of [`AcceptOptions`]: gets the request's `Origin`
/// (if any) and returns whether to accept it.
pub type OriginCheck = Arc<dyn Fn(Option<&str>) -> bool + Send + Sync>;

/// How [`accept`] answers a valid upgrade request.
#[derive(Clone, Default)]
pub struct AcceptOptions {
    /// Supported subprotocols in server preference order: the first one the
    /// client also offered is selected. If the client offered some and none
    /// match, the connection proceeds without a subprotocol.
    pub protocols: Vec<String>,
    /// permessage-deflate settings; `None` means compression is not
    /// negotiated.
    pub deflate: Option<DeflateConfig>,
    /// Called with the request's `Origin`; returning `false` rejects the
    /// request with 403 Forbidden. `None` accepts every origin.
    pub origin_check: Option<OriginCheck>,
    /// Extra headers appended to the 101 response, as (name, value). They
    /// must be valid HTTP (token name, no control characters in the value);
    /// they must not repeat the headers [`accept`] writes itself.
    pub extra_headers: Vec<(String, String)>,
}

impl AcceptOptions {
    /// Options that accept any origin, select no subprotocol and do not
    /// negotiate compression.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the supported subprotocols, in preference order.
    pub fn protocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Appends one supported subprotocol (after those already set).
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }

    /// Negotiates permessage-deflate with these settings.
    pub fn deflate(mut self, config: DeflateConfig) -> Self {
        self.deflate = Some(config);
        self
    }

    /// Installs the origin check: `check(origin)` returning `false` rejects the
    /// request with 403 Forbidden.
    pub fn origin_check(
        mut self,
        check: impl Fn(Option<&str>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.origin_check = Some(Arc::new(check));
        self
    }

    /// Appends an extra response header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_headers.push((name.into(), value.into()));
        self
    }
}

impl fmt::Debug for AcceptOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcceptOptions")
            .field("protocols", &self.protocols)
            .field("deflate", &self.deflate)
            .field("origin_check", &self.origin_check.as_ref().map(|_| ".."))
            .field("extra_headers", &self.extra_headers)
            .finish()
    }
}

/// The outcome of [`accept`]: the response to write, and what was negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The complete `101 Switching Protocols` response, final empty line
    /// included; after writing it the connection speaks WebSocket.
    pub response: Vec<u8>,
    /// The `Sec-WebSocket-Accept` value, for callers building their own
    /// response.
    pub accept_key: String,
    /// The selected subprotocol (`Sec-WebSocket-Protocol`), if any.
    pub protocol: Option<String>,
    /// The negotiated permessage-deflate parameters, if compression is on.
    pub deflate: Option<DeflateParams>,
    /// The `Sec-WebSocket-Extensions` response value, if an extension was
    /// accepted.
    pub extensions: Option<String>,
}

/// Accepts a validated upgrade request: runs the origin check (403 on
/// refusal), selects a subprotocol, negotiates permessage-deflate (a
/// negotiation error is a 400) and renders the 101 response.
pub fn accept(req: &UpgradeRequest, opts: &AcceptOptions) -> Result<Accepted, HandshakeError> {
    if let Some(check) = &opts.origin_check {
        if !check(req.origin.as_deref()) {
            return Err(HandshakeError::OriginRejected {
                origin: req.origin.as_deref().map(clip),
            });
        }
    }
    let protocol = opts
        .protocols
        .iter()
        .find(|p| req.protocols.contains(p))
        .cloned();
    let negotiated = opts
        .deflate
        .as_ref()
        .map(|c| c.negotiate_server(req.extension_offers.iter().map(String::as_str)));
    let (deflate, extensions) = match negotiated {
        None | Some(Ok(None)) => (None, None),
        Some(Ok(Some((params, value)))) => (Some(params), Some(value)),
        Some(Err(e)) => return Err(HandshakeError::Deflate(e)),
    };

    let accept_key = accept_key(&req.key);
    let mut response = Vec::with_capacity(192);
    response.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    push_header(&mut response, "Upgrade", "websocket")?;
    push_header(&mut response, "Connection", "Upgrade")?;
    push_header(&mut response, "Sec-WebSocket-Accept", &accept_key)?;
    if let Some(p) = &protocol {
        push_header(&mut response, "Sec-WebSocket-Protocol", p)?;
    }
    if let Some(e) = &extensions {
        push_header(&mut response, "Sec-WebSocket-Extensions", e)?;
    }
    for (name, value) in &opts.extra_headers {
        push_header(&mut response, name, value)?;
    }
    response.extend_from_slice(b"\r\n");

    Ok(Accepted {
        response,
        accept_key,
        protocol,
        deflate,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &str = "GET /chat?room=1 HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Protocol: v2.chat\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo\r\n\
        Sec-WebSocket-Extensions: x-bar; q=\"a,b\"\r\n\
        Sec-WebSocket-Version: 13\r\n\
        \r\n";

    fn parse(s: &str) -> Result<Option<(UpgradeRequest, usize)>, HandshakeError> {
        parse_request(s.as_bytes(), &RequestLimits::default())
    }

    fn parse_err(s: &str) -> HandshakeError {
        match parse(s) {
            Err(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// A minimal valid request with `line` (already CRLF-terminated) replaced
    /// by `with`.
    fn minimal_with(line: &str, with: &str) -> String {
        let base = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert!(base.contains(line));
        base.replacen(line, with, 1)
    }

    #[test]
    fn parses_full_request() {
        let (req, used) = parse(REQ).unwrap().unwrap();
        assert_eq!(used, REQ.len());
        assert_eq!(req.path, "/chat?room=1");
        assert_eq!(req.host, "server.example.com");
        assert_eq!(req.origin.as_deref(), Some("http://example.com"));
        assert_eq!(req.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(req.protocols, ["chat", "superchat", "v2.chat"]);
        assert_eq!(
            req.extension_offers,
            [
                "permessage-deflate; client_max_window_bits",
                "x-foo",
                "x-bar; q=\"a,b\""
            ]
        );
        assert_eq!(req.headers.len(), 10);
        assert_eq!(req.header("sec-websocket-version"), Some(&b"13"[..]));
        assert_eq!(
            req.header("sec-websocket-protocol"),
            Some(&b"chat, superchat"[..])
        );
    }

    #[test]
    fn split_at_every_byte() {
        let mut wire = REQ.as_bytes().to_vec();
        let expected = parse(REQ).unwrap().unwrap();
        for i in 0..wire.len() {
            assert!(
                matches!(
                    parse_request(&wire[..i], &RequestLimits::default()),
                    Ok(None)
                ),
                "prefix of {i} bytes"
            );
        }
        // A frame right behind the header block is not consumed.
        wire.extend_from_slice(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
        for end in REQ.len()..=wire.len() {
            let got = parse_request(&wire[..end], &RequestLimits::default()).unwrap();
            assert_eq!(got.as_ref(), Some(&expected));
            assert_eq!(got.map(|g| g.1), Some(REQ.len()));
        }
    }

    #[test]
    fn wrong_method_is_405() {
        let e = parse_err(&minimal_with("GET /", "POST /"));
        assert!(matches!(&e, HandshakeError::MethodNotAllowed { method } if method == "POST"));
        assert_eq!(e.status(), 405);
        let r = e.response();
        assert!(r.starts_with(b"HTTP/1.1 405 "));
        assert!(String::from_utf8_lossy(&r).contains("\r\nAllow: GET\r\n"));
    }

    #[test]
    fn http_1_0_is_rejected() {
        let e = parse_err(&minimal_with("HTTP/1.1", "HTTP/1.0"));
        assert!(matches!(e, HandshakeError::HttpVersion));
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn missing_or_duplicate_host() {
        let e = parse_err(&minimal_with("Host: h\r\n", ""));
        assert!(matches!(e, HandshakeError::MissingHeader("Host")));
        assert_eq!(e.status(), 400);
        let e = parse_err(&minimal_with("Host: h\r\n", "Host: h\r\nHost: i\r\n"));
        assert!(matches!(e, HandshakeError::DuplicateHeader("Host")));
    }

    #[test]
    fn upgrade_header_variants() {
        for bad in ["", "Upgrade: h2c\r\n", "Upgrade: websockets\r\n"] {
            let e = parse_err(&minimal_with("Upgrade: websocket\r\n", bad));
            assert!(
                matches!(
                    e,
                    HandshakeError::NotUpgrade {
                        header: "Upgrade",
                        ..
                    }
                ),
                "{bad:?}: {e:?}"
            );
            assert_eq!(e.status(), 400);
        }
        for good in ["Upgrade: WebSocket\r\n", "Upgrade: foo/2, websocket\r\n"] {
            let req = minimal_with("Upgrade: websocket\r\n", good);
            assert!(matches!(parse(&req), Ok(Some(_))), "{good:?}");
        }
    }

    #[test]
    fn connection_header_variants() {
        for good in [
            "Connection: keep-alive, Upgrade\r\n",
            "Connection: upgrade\r\n",
            "Connection: keep-alive\r\nConnection: UPGRADE\r\n",
        ] {
            let req = minimal_with("Connection: Upgrade\r\n", good);
            assert!(matches!(parse(&req), Ok(Some(_))), "{good:?}");
        }
        for bad in ["", "Connection: keep-alive\r\n", "Connection: upgraded\r\n"] {
            let e = parse_err(&minimal_with("Connection: Upgrade\r\n", bad));
            assert!(
                matches!(
                    e,
                    HandshakeError::NotUpgrade {
                        header: "Connection",
                        ..
                    }
                ),
                "{bad:?}: {e:?}"
            );
        }
    }

    #[test]
    fn bad_keys() {
        let line = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        for bad in [
            "Sec-WebSocket-Key: not base64!!\r\n",
            // 15 bytes
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ\r\n",
            // 17 bytes
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXg=\r\n",
            "Sec-WebSocket-Key: \r\n",
        ] {
            let e = parse_err(&minimal_with(line, bad));
            assert!(matches!(e, HandshakeError::BadKey), "{bad:?}: {e:?}");
            assert_eq!(e.status(), 400);
        }
        let e = parse_err(&minimal_with(line, ""));
        assert!(matches!(
            e,
            HandshakeError::MissingHeader("Sec-WebSocket-Key")
        ));
        let e = parse_err(&minimal_with(line, &format!("{line}{line}")));
        assert!(matches!(
            e,
            HandshakeError::DuplicateHeader("Sec-WebSocket-Key")
        ));
    }

    #[test]
    fn version_8_is_426() {
        let e = parse_err(&minimal_with(
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Version: 8",
        ));
        assert!(matches!(&e, HandshakeError::UnsupportedVersion { got } if got == "8"));
        assert_eq!(e.status(), 426);
        let r = String::from_utf8(e.response()).unwrap();
        assert!(r.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(r.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        let e = parse_err(&minimal_with("Sec-WebSocket-Version: 13\r\n", ""));
        assert!(matches!(
            e,
            HandshakeError::MissingHeader("Sec-WebSocket-Version")
        ));
    }

    #[test]
    fn body_is_rejected() {
        let e = parse_err(&minimal_with(
            "Host: h\r\n",
            "Host: h\r\nContent-Length: 5\r\n",
        ));
        assert!(matches!(e, HandshakeError::Malformed(_)));
        let ok = minimal_with("Host: h\r\n", "Host: h\r\nContent-Length: 0\r\n");
        assert!(matches!(parse(&ok), Ok(Some(_))));
    }

    #[test]
    fn oversized_headers_are_431() {
        let limits = RequestLimits::default();
        let big = format!("X-Big: {}\r\n", "a".repeat(limits.max_header_bytes));
        let req = minimal_with("Host: h\r\n", &format!("Host: h\r\n{big}"));
        // Rejected as soon as the limit is reached, complete or not.
        for buf in [req.as_bytes(), &req.as_bytes()[..limits.max_header_bytes]] {
            let e = parse_request(buf, &limits).unwrap_err();
            assert!(matches!(e, HandshakeError::HeadersTooLarge { limit: 8192 }));
            assert_eq!(e.status(), 431);
        }
        // Just under the limit is fine.
        assert!(matches!(
            parse_request(&req.as_bytes()[..limits.max_header_bytes - 1], &limits),
            Ok(None)
        ));

        let many: String = (0..65).map(|i| format!("X-H{i}: v\r\n")).collect();
        let e = parse_err(&minimal_with("Host: h\r\n", &format!("Host: h\r\n{many}")));
        assert!(matches!(e, HandshakeError::TooManyHeaders { limit: 64 }));
        assert_eq!(e.status(), 431);
    }

    #[test]
    fn garbage_is_400() {
        for garbage in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
            b"hello world\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
            b"\0\0\0\0",
        ] {
            let e = parse_request(garbage, &RequestLimits::default()).unwrap_err();
            assert_eq!(e.status(), 400, "{garbage:?}: {e:?}");
            assert!(e.response().starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
        }
    }

    #[test]
    fn validate_from_parts() {
        let headers: Vec<(&str, &[u8])> = vec![
            ("host", b"h"),
            ("upgrade", b"websocket"),
            ("connection", b"upgrade"),
            ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", b"13"),
        ];
        let req = validate_upgrade("GET", true, "/x", headers).unwrap();
        assert_eq!(req.path, "/x");
        assert_eq!(req.origin, None);
        assert!(req.protocols.is_empty() && req.extension_offers.is_empty());
    }

    #[test]
    fn accept_renders_101() {
        let (req, _) = parse(REQ).unwrap().unwrap();
        let acc = accept(&req, &AcceptOptions::new()).unwrap();
        assert_eq!(acc.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(acc.protocol, None);
        assert_eq!(acc.deflate, None);
        assert_eq!(acc.extensions, None);
        assert_eq!(
            acc.response,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn subprotocol_selection() {
        let (req, _) = parse(REQ).unwrap().unwrap();
        // Server preference wins over client order.
        let opts = AcceptOptions::new().protocols(["v2.chat", "chat"]);
        let acc = accept(&req, &opts).unwrap();
        assert_eq!(acc.protocol.as_deref(), Some("v2.chat"));
        assert!(String::from_utf8_lossy(&acc.response)
            .contains("\r\nSec-WebSocket-Protocol: v2.chat\r\n"));
        // No overlap: proceed without a subprotocol.
        let acc = accept(&req, &AcceptOptions::new().protocol("mqtt")).unwrap();
        assert_eq!(acc.protocol, None);
        assert!(!String::from_utf8_lossy(&acc.response).contains("Sec-WebSocket-Protocol"));
        // Case-sensitive match.
        let acc = accept(&req, &AcceptOptions::new().protocol("CHAT")).unwrap();
        assert_eq!(acc.protocol, None);
    }

    #[test]
    fn origin_hook() {
        let (req, _) = parse(REQ).unwrap().unwrap();
        let opts = AcceptOptions::new().origin_check(|o| o == Some("https://good.example"));
        let e = accept(&req, &opts).unwrap_err();
        assert!(
            matches!(&e, HandshakeError::OriginRejected { origin: Some(o) } if o == "http://example.com")
        );
        assert_eq!(e.status(), 403);
        assert!(e.response().starts_with(b"HTTP/1.1 403 Forbidden\r\n"));
        let opts = AcceptOptions::new().origin_check(|o| o == Some("http://example.com"));
        assert!(accept(&req, &opts).is_ok());
    }

    #[test]
    fn extra_headers() {
        let (req, _) = parse(REQ).unwrap().unwrap();
        let acc = accept(&req, &AcceptOptions::new().header("X-Server", "duplex")).unwrap();
        assert!(acc.response.ends_with(b"\r\nX-Server: duplex\r\n\r\n"));
        let e = accept(
            &req,
            &AcceptOptions::new().header("X-Evil", "a\r\nSet-Cookie: x"),
        )
        .unwrap_err();
        assert!(matches!(e, HandshakeError::InvalidHeader { .. }));
        assert_eq!(e.status(), 500);
        let e = accept(&req, &AcceptOptions::new().header("Bad Name", "v")).unwrap_err();
        assert!(matches!(e, HandshakeError::InvalidHeader { .. }));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_request(&data, &RequestLimits::default());
        }

        #[test]
        fn mutated_requests_never_panic(pos in 0..REQ.len(), byte in proptest::num::u8::ANY, cut in 0..REQ.len()) {
            let mut data = REQ.as_bytes().to_vec();
            data[pos] = byte;
            data.truncate(cut.max(pos + 1));
            let limits = RequestLimits { max_header_bytes: 300, max_headers: 8 };
            if let Ok(Some((req, used))) = parse_request(&data, &limits) {
                proptest::prop_assert!(used <= data.len());
                let _ = accept(&req, &AcceptOptions::new().protocol("chat"));
            }
            if let Err(e) = parse_request(&data, &limits) {
                proptest::prop_assert!(e.response().starts_with(b"HTTP/1.1 4"));
            }
        }
    }
}
