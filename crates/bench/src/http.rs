//! A small HTTP/1.1 client for the server API (`POST /api/<method>` with
//! an `X-API-Key` header), able to pipeline requests on one keep-alive
//! connection.
//!
//! Owns request encoding and response framing (status line, headers,
//! `Content-Length` bodies, parsed with `httparse`). Pipelining keeps
//! requests in order — the server answers them in the order sent — so a
//! publisher can keep several publications in flight without reordering
//! them. Chunked bodies, redirects, TLS and anything else a general
//! client does are out of scope.

use std::net::SocketAddr;

use anyhow::{bail, Context as _, Result};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use crate::target::Target;

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest response body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// One response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, as text (lossy if not UTF-8).
    pub body: String,
}

/// A keep-alive connection to an HTTP server.
#[derive(Debug)]
pub struct HttpClient {
    tcp: TcpStream,
    host: String,
    api_key: Option<String>,
    buf: Vec<u8>,
    /// Unconsumed input is `buf[start..end]`.
    start: usize,
    end: usize,
    /// Requests sent and not yet answered.
    in_flight: usize,
}

/// Splits `http://host:port[/...]` into the socket address to connect to
/// and the `Host` header; the path is ignored.
pub async fn resolve(url: &str) -> Result<Target> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("unsupported URL {url:?}: use http://host:port"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    Target::resolve(&format!("ws://{authority}/")).await
}

impl HttpClient {
    /// Connects to `target` (see [`resolve`]); requests carry `api_key` in
    /// `X-API-Key` if given.
    pub async fn connect(target: &Target, api_key: Option<String>) -> Result<Self> {
        let tcp = crate::client::connect_tcp(target).await?;
        Ok(Self {
            tcp,
            host: target.host.clone(),
            api_key,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
            in_flight: 0,
        })
    }

    /// The server's address.
    pub fn peer(&self) -> Result<SocketAddr> {
        Ok(self.tcp.peer_addr()?)
    }

    /// Requests sent and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Writes one `POST path` request with a JSON `body` (without waiting
    /// for the response).
    pub async fn send_post(&mut self, path: &str, body: &str) -> Result<()> {
        self.send_request("POST", path, Some(("application/json", body)))
            .await
    }

    /// Writes one request: `method path`, with a body of the given content
    /// type if any (without waiting for the response).
    pub async fn send_request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<(&str, &str)>,
    ) -> Result<()> {
        let mut req = String::with_capacity(160 + body.map_or(0, |b| b.1.len()));
        req.push_str(method);
        req.push(' ');
        req.push_str(path);
        req.push_str(" HTTP/1.1\r\nHost: ");
        req.push_str(&self.host);
        req.push_str("\r\n");
        if let Some(key) = &self.api_key {
            req.push_str("X-API-Key: ");
            req.push_str(key);
            req.push_str("\r\n");
        }
        if let Some((content_type, body)) = body {
            req.push_str("Content-Type: ");
            req.push_str(content_type);
            req.push_str("\r\nContent-Length: ");
            req.push_str(&body.len().to_string());
            req.push_str("\r\n\r\n");
            req.push_str(body);
        } else {
            req.push_str("\r\n");
        }
        self.tcp
            .write_all(req.as_bytes())
            .await
            .context("writing a request")?;
        self.in_flight += 1;
        Ok(())
    }

    /// Sends `POST path` and waits for its response (no other request may
    /// be in flight).
    pub async fn post(&mut self, path: &str, body: &str) -> Result<Response> {
        if self.in_flight != 0 {
            bail!("post with {} pipelined requests in flight", self.in_flight);
        }
        self.send_post(path, body).await?;
        self.recv().await
    }

    /// Waits for the next response.
    pub async fn recv(&mut self) -> Result<Response> {
        loop {
            if let Some(r) = self.take_response()? {
                return Ok(r);
            }
            self.readable().await?;
            self.read_some()?;
        }
    }

    /// Waits until the socket has something to read (cancel-safe).
    pub async fn readable(&self) -> Result<()> {
        self.tcp.readable().await.context("waiting to read")
    }

    /// Every response that can be had without waiting.
    pub fn try_responses(&mut self) -> Result<Vec<Response>> {
        let mut out = Vec::new();
        loop {
            while let Some(r) = self.take_response()? {
                out.push(r);
            }
            if !self.read_some()? {
                return Ok(out);
            }
        }
    }

    /// One non-blocking read into the buffer; `false` if nothing came.
    fn read_some(&mut self) -> Result<bool> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_HEAD + MAX_BODY {
                bail!("response larger than {} bytes", MAX_HEAD + MAX_BODY);
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        match self.tcp.try_read(&mut self.buf[self.end..]) {
            Ok(0) => bail!("the server closed the connection"),
            Ok(n) => {
                self.end += n;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e).context("reading a response"),
        }
    }

    /// A complete response from the buffer, if there is one.
    fn take_response(&mut self) -> Result<Option<Response>> {
        let input = &self.buf[self.start..self.end];
        let Some((status, body_at, body_len)) = parse_head(input)? else {
            return Ok(None);
        };
        if input.len() < body_at + body_len {
            return Ok(None);
        }
        let body = String::from_utf8_lossy(&input[body_at..body_at + body_len]).into_owned();
        self.start += body_at + body_len;
        self.in_flight = self.in_flight.saturating_sub(1);
        Ok(Some(Response { status, body }))
    }
}

/// Parses a response head: `(status, head length, body length)`, or `None`
/// if the head is not complete yet.
fn parse_head(input: &[u8]) -> Result<Option<(u16, usize, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(input).context("bad response head")? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial if input.len() > MAX_HEAD => {
            bail!("response head larger than {MAX_HEAD} bytes")
        }
        httparse::Status::Partial => return Ok(None),
    };
    let status = resp.code.context("no status code")?;
    let mut body_len = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).context("bad Content-Length")?;
            body_len = Some(v.trim().parse::<usize>().context("bad Content-Length")?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("chunked responses are not supported");
        }
    }
    let body_len = body_len.unwrap_or(0);
    if body_len > MAX_BODY {
        bail!("response body of {body_len} bytes");
    }
    Ok(Some((status, head_len, body_len)))
}

#[cfg(test)]
mod tests {
    use super::parse_head;

    #[test]
    fn heads() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\n{\"result\":{}}";
        assert_eq!(parse_head(r).unwrap(), Some((200, 39, 13)));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncont").unwrap(), None);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }
}
