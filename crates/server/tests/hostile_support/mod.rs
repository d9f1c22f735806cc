//! Helpers of the hostile-input battery (`tests/hostile.rs`): the real
//! `duplex` binary as a child process (killed on drop, its standard error
//! kept, its memory read from `/proc`), raw HTTP over TCP, a raw WebSocket
//! client that writes hand-made frames and reads the server's, and a
//! hand-built deflate bomb.
//!
//! Nothing here uses the project's own protocol crates: every byte on the
//! wire is written out explicitly, so that a bug in a shared codec cannot
//! hide a bug in the server.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a case returns: what it saw, or what went wrong.
pub(crate) type Outcome = Result<String, String>;

/// Fails with `msg` unless `cond` holds.
pub(crate) fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

/// Turns any displayable error into the case's error text.
pub(crate) fn err<E: std::fmt::Display>(context: &'static str) -> impl FnOnce(E) -> String {
    move |e| format!("{context}: {e}")
}

// ---------------------------------------------------------------- server

/// A running `duplex serve`, killed (and its folder removed) on drop, so a
/// failing test does not leave it behind.
pub(crate) struct Server {
    child: Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
    dir: PathBuf,
}

impl Server {
    /// Starts the binary with `config` (TOML) as its config file and
    /// `args` after `serve`, waits for its "listening on" line and for
    /// `/health` to answer 200.
    pub(crate) async fn start(config: &str, args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "duplex-hostile-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config_path = dir.join("duplex.toml");
        std::fs::write(&config_path, config).expect("config file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_duplex"))
            .env_clear()
            .current_dir(&dir)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn duplex");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        let pipe = child.stderr.take().expect("stderr pipe");
        let lines = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    if let Ok(addr) = rest.trim().parse() {
                        let _ = tx.send(addr);
                    }
                }
                if let Ok(mut l) = lines.lock() {
                    l.push(line);
                }
            }
        });
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
            dir,
        };
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await
            .expect("join");
        match addr {
            Ok(addr) => server.addr = addr,
            Err(_) => panic!("duplex did not start; stderr:\n{}", server.stderr_text()),
        }
        for _ in 0..100 {
            if let Ok(r) = http(server.addr, &get("/health")).await {
                if r.status == 200 {
                    return server;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "/health never answered 200; stderr:\n{}",
            server.stderr_text()
        );
    }

    /// Everything the server wrote to standard error so far.
    pub(crate) fn stderr_text(&self) -> String {
        self.stderr.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
    pub(crate) fn proc_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ------------------------------------------------------------------ HTTP

/// An HTTP response read off the wire.
#[derive(Debug)]
pub(crate) struct Response {
    /// The status code.
    pub(crate) status: u16,
    /// The head, as text (status line and headers, lowercase).
    pub(crate) head: String,
    /// The body (de-chunked if it came chunked).
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The body as (lossy) text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of header `name` (lowercase), if present.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.trim() == name).then(|| v.trim())
        })
    }
}

/// A `GET path` request that closes the connection after the answer.
pub(crate) fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").into_bytes()
}

/// A `POST path` request with `body` and `headers` (each `Name: value`).
pub(crate) fn post(path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let mut req = req.into_bytes();
    req.extend_from_slice(body);
    req
}

/// Sends `request` on a new connection and reads the answer until the
/// server closes (the requests say `Connection: close`).
pub(crate) async fn http(addr: SocketAddr, request: &[u8]) -> Result<Response, String> {
    let mut s = TcpStream::connect(addr).await.map_err(err("connect"))?;
    s.write_all(request).await.map_err(err("write request"))?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut raw))
        .await
        .map_err(|_| "no complete answer within 15 s".to_owned())?
        .map_err(err("read answer"))?;
    parse_response(&raw)
}

/// Parses a whole HTTP/1.1 response.
pub(crate) fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let end = find(raw, b"\r\n\r\n").ok_or_else(|| {
        format!(
            "no HTTP response head in {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        )
    })?;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let mut response = Response {
        status,
        head,
        body: raw[end + 4..].to_vec(),
    };
    if response.header("transfer-encoding") == Some("chunked") {
        response.body = dechunk(&response.body)?;
    }
    Ok(response)
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(err("chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("truncated chunk")?);
        data = data.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

/// Position of `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ------------------------------------------------------------- WebSocket

/// Opcodes the battery writes.
pub(crate) mod op {
    /// Continuation frame.
    pub(crate) const CONT: u8 = 0x0;
    /// Text frame.
    pub(crate) const TEXT: u8 = 0x1;
    /// Binary frame.
    pub(crate) const BINARY: u8 = 0x2;
    /// Close frame.
    pub(crate) const CLOSE: u8 = 0x8;
    /// Ping frame.
    pub(crate) const PING: u8 = 0x9;
    /// Pong frame.
    pub(crate) const PONG: u8 = 0xA;
    /// FIN bit of the first header byte.
    pub(crate) const FIN: u8 = 0x80;
    /// RSV1 ("compressed" under permessage-deflate).
    pub(crate) const RSV1: u8 = 0x40;
    /// RSV2.
    pub(crate) const RSV2: u8 = 0x20;
    /// RSV3.
    pub(crate) const RSV3: u8 = 0x10;
}

/// The masking key of every client frame the battery writes.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: `first` is the whole first header byte (FIN, RSV bits,
/// opcode); the payload is masked when `masked`.
pub(crate) fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = header(first, payload.len() as u64, masked);
    let start = out.len();
    out.extend_from_slice(payload);
    if masked {
        for (i, b) in out[start..].iter_mut().enumerate() {
            *b ^= MASK[i % 4];
        }
    }
    out
}

/// A client frame header announcing `len` payload bytes (7-bit, 16-bit or
/// 64-bit length as RFC 6455 asks), with the mask key when `masked`.
pub(crate) fn header(first: u8, len: u64, masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut out = vec![first];
    match len {
        0..=125 => out.push(mask_bit | len as u8),
        126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
    }
    out
}

/// A header with a 64-bit length field holding exactly `len`, whatever
/// its value (including the top bit RFC 6455 forbids).
pub(crate) fn header_len64(first: u8, len: u64) -> Vec<u8> {
    let mut out = vec![first, 0x80 | 127];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&MASK);
    out
}

/// A masked text frame.
pub(crate) fn text(s: &str) -> Vec<u8> {
    frame(op::FIN | op::TEXT, s.as_bytes(), true)
}

/// One frame from the server.
#[derive(Debug)]
pub(crate) struct Frame {
    /// FIN bit.
    pub(crate) fin: bool,
    /// Opcode.
    pub(crate) opcode: u8,
    /// Payload.
    pub(crate) payload: Vec<u8>,
}

/// How a connection the server closed ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Closed {
    /// A close frame with this code (`None`: an empty close payload).
    Frame(Option<u16>),
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::Frame(Some(code)) => write!(f, "close {code}"),
            Closed::Frame(None) => write!(f, "close frame without a code"),
        }
    }
}

/// A raw WebSocket connection as a client sees it.
pub(crate) struct RawWs {
    /// The socket.
    pub(crate) stream: TcpStream,
    buf: Vec<u8>,
    /// The server's 101 head (lowercase).
    pub(crate) head: String,
}

/// How long a case waits for any one answer.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

impl RawWs {
    /// Opens a WebSocket on `path` with the extra request `headers`
    /// (`Name: value`); fails unless the server answers 101.
    pub(crate) async fn open(
        addr: SocketAddr,
        path: &str,
        headers: &[&str],
    ) -> Result<Self, String> {
        let mut stream = TcpStream::connect(addr).await.map_err(err("connect"))?;
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(err("write upgrade"))?;
        let mut buf = Vec::new();
        let end = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                break end;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .map_err(|_| "no upgrade answer".to_owned())?
                .map_err(err("read upgrade answer"))?;
            if n == 0 {
                return Err("closed during the upgrade".into());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        ensure(head.starts_with("http/1.1 101"), || {
            format!("upgrade refused: {head}")
        })?;
        // The accept key of the RFC's sample key.
        ensure(
            head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            || format!("wrong accept key: {head}"),
        )?;
        buf.drain(..end + 4);
        Ok(Self { stream, buf, head })
    }

    /// Writes raw bytes.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).await.map_err(err("write"))
    }

    /// Writes a masked text frame.
    pub(crate) async fn send_text(&mut self, s: &str) -> Result<(), String> {
        self.send(&text(s)).await
    }

    /// The next frame, `None` at end of stream; fails after `WAIT`.
    pub(crate) async fn next(&mut self) -> Result<Option<Frame>, String> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf)? {
                self.buf.drain(..used);
                return Ok(Some(frame));
            }
            let mut chunk = [0u8; 16384];
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .map_err(|_| format!("nothing from the server within {WAIT:?}"))?
                .map_err(err("read"))?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err("stream ended inside a frame".into())
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next data message as text (pings answered, other control
    /// frames skipped); fails on close.
    pub(crate) async fn next_text(&mut self) -> Result<String, String> {
        loop {
            let frame = self.next().await?.ok_or("closed")?;
            match frame.opcode {
                op::TEXT | op::BINARY => {
                    ensure(frame.fin, || "fragmented server message".into())?;
                    return String::from_utf8(frame.payload).map_err(err("utf-8"));
                }
                op::PING => {
                    self.send(&frame_masked_pong(&frame.payload)).await?;
                }
                op::CLOSE => return Err(format!("closed: {}", describe_close(&frame.payload))),
                _ => {}
            }
        }
    }

    /// Reads until the server's close frame (skipping data frames),
    /// answers it, and checks that the server then ends the TCP stream.
    pub(crate) async fn expect_close(&mut self) -> Result<Closed, String> {
        let closed = loop {
            let frame = self
                .next()
                .await?
                .ok_or("the server ended the stream without a close frame")?;
            if frame.opcode == op::CLOSE {
                let code = match frame.payload.as_slice() {
                    [] => None,
                    [hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
                    [_] => return Err("1-byte close payload".into()),
                };
                break Closed::Frame(code);
            }
        };
        // Answer as a client should; the server may have gone already.
        let _ = self
            .stream
            .write_all(&frame(op::FIN | op::CLOSE, &[], true))
            .await;
        let mut rest = [0u8; 4096];
        loop {
            match tokio::time::timeout(WAIT, self.stream.read(&mut rest)).await {
                Err(_) => return Err(format!("{closed}, but the TCP stream stayed open")),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(closed),
                Ok(Ok(_)) => {}
            }
        }
    }
}

fn frame_masked_pong(payload: &[u8]) -> Vec<u8> {
    frame(op::FIN | op::PONG, payload, true)
}

fn describe_close(payload: &[u8]) -> String {
    match payload {
        [hi, lo, reason @ ..] => format!(
            "{} {}",
            u16::from_be_bytes([*hi, *lo]),
            String::from_utf8_lossy(reason)
        ),
        _ => "without a code".into(),
    }
}

/// Parses one server frame (unmasked) from the start of `buf`.
fn parse_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    let [first, second, ..] = *buf else {
        return Ok(None);
    };
    ensure(second & 0x80 == 0, || "masked frame from the server".into())?;
    let (len, mut pos) = match second & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut l = [0u8; 8];
                l.copy_from_slice(b);
                (u64::from_be_bytes(l), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    ensure(len < 64 << 20, || format!("server frame of {len} bytes"))?;
    let len = len as usize;
    let Some(payload) = buf.get(pos..pos + len) else {
        return Ok(None);
    };
    let frame = Frame {
        fin: first & 0x80 != 0,
        opcode: first & 0x0F,
        payload: payload.to_vec(),
    };
    pos += len;
    Ok(Some((frame, pos)))
}

// ------------------------------------------------------------- deflate

/// A raw DEFLATE stream (RFC 1951: one final block with the fixed Huffman
/// codes) that inflates to `1 + 258 * copies` zero bytes: a literal 0,
/// then `copies` back-references of length 258 at distance 1. Each
/// reference costs 13 bits, so the stream is about 1/159 of its output.
pub(crate) fn deflate_bomb(copies: usize) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.bits(1, 1); // BFINAL
    w.bits(0b01, 2); // BTYPE: fixed Huffman
    w.code(0x30, 8); // literal 0 (codes 0-143: 0x30 + value, 8 bits)
    for _ in 0..copies {
        w.code(0xC5, 8); // length 258: code 285 (280-287: 0xC0 + n - 280)
        w.code(0, 5); // distance 1: code 0
    }
    w.code(0, 7); // end of block: code 256 (7 zero bits)
    w.finish()
}

#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl BitWriter {
    /// Appends the `count` low bits of `value`, least significant first
    /// (how DEFLATE packs header fields and extra bits).
    fn bits(&mut self, value: u32, count: u32) {
        for i in 0..count {
            self.acc |= ((value >> i) & 1) << self.n;
            self.n += 1;
            if self.n == 8 {
                self.out.push(self.acc as u8);
                self.acc = 0;
                self.n = 0;
            }
        }
    }

    /// Appends a Huffman code of `len` bits, most significant first.
    fn code(&mut self, code: u32, len: u32) {
        for i in (0..len).rev() {
            self.bits((code >> i) & 1, 1);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}
