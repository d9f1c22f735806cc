//! Socket.IO benchmarks: the same load against duplex's Socket.IO server,
//! socketioxide and Node's socket.io (see `bench/run-socketio.sh`).
//!
//! The client speaks Engine.IO v4 / Socket.IO v5 by hand on top of the
//! WebSocket [`Client`] the plain-WebSocket scenarios use (duplex's sans-IO
//! `ws_proto` core over a tokio `TcpStream`): each socket opens
//! `GET /socket.io/?EIO=4&transport=websocket`, reads the Engine.IO open
//! packet `0{...}`, sends `40` and waits for `40{"sid":...}`. Engine.IO
//! pings (`2`) are answered with pongs (`3`) wherever a socket reads. Only
//! the main namespace `/` is used and every packet is text, so a packet is
//! one WebSocket text message and no Socket.IO parser is needed: the client
//! costs the same whichever server it loads.
//!
//! Scenarios (each prints JSON lines like the WebSocket ones):
//! - [`echo`]: N sockets, each with one acknowledged event in flight
//!   (`42<id>["echo","<payload>"]` answered by `43<id>["<payload>"]`);
//!   acked events per server CPU-second.
//! - [`broadcast`]: N sockets join a room; one more socket (the publisher)
//!   emits `bcast` with a payload carrying its send time; the server emits
//!   `msg` to the room. Deliveries per second and emit-to-receipt latency.
//! - [`idle`]: server RSS growth per connected, idle socket.
//!
//! [`report`] renders a results file as the markdown tables of
//! `docs/benchmarks.md`; [`cli`] is the command-line front end.

pub mod broadcast;
pub mod cli;
pub mod echo;
pub mod idle;
pub mod polling;
pub mod report;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use ws_proto::{Message, Utf8Bytes};

use crate::client::Client;
use crate::target::Target;

/// The Engine.IO query every socket connects with.
pub const EIO_QUERY: &str = "?EIO=4&transport=websocket";

/// The WebSocket target for a Socket.IO server URL.
///
/// `http://host:port` (or `ws://`) with no path, or `/`, means the default
/// path `/socket.io/`; another path is taken as the server's path prefix.
/// The Engine.IO query is appended.
///
/// ```
/// assert_eq!(
///     duplex_bench::sio::websocket_url("http://127.0.0.1:3000").unwrap(),
///     "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
/// );
/// assert_eq!(
///     duplex_bench::sio::websocket_url("ws://h:1/custom").unwrap(),
///     "ws://h:1/custom/?EIO=4&transport=websocket"
/// );
/// ```
pub fn websocket_url(url: &str) -> Result<String> {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
    else {
        bail!("unsupported URL {url:?}: use http://host:port (plain, no TLS)");
    };
    if rest.contains('?') {
        bail!("URL {url:?} must not have a query: the Engine.IO query is added");
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        bail!("URL {url:?} has no host");
    }
    let path = match path.trim_end_matches('/') {
        "" => "/socket.io".to_owned(),
        p => p.to_owned(),
    };
    Ok(format!("ws://{authority}{path}/{EIO_QUERY}"))
}

/// Resolves a Socket.IO server URL (see [`websocket_url`]).
pub async fn resolve(url: &str) -> Result<Target> {
    Target::resolve(&websocket_url(url)?).await
}

/// One Socket.IO client socket connected to the main namespace over the
/// WebSocket transport.
#[derive(Debug)]
pub struct SioClient {
    ws: Client,
    /// The Socket.IO socket id from the CONNECT reply.
    sid: String,
}

impl SioClient {
    /// Opens the WebSocket, reads the Engine.IO open packet, connects to
    /// namespace `/` and waits for the server's CONNECT reply. `read_buf`
    /// is the size of the connection's read buffer.
    pub async fn connect(target: &Target, read_buf: usize) -> Result<Self> {
        Self::connect_with_auth(target, read_buf, None).await
    }

    /// [`Self::connect`] with an auth object in the CONNECT packet
    /// (`40{"token":"..."}`), as `io(url, {auth})` sends.
    pub async fn connect_with_auth(
        target: &Target,
        read_buf: usize,
        auth: Option<&str>,
    ) -> Result<Self> {
        let mut ws = Client::connect(target, read_buf).await?;
        let open = next_text(&mut ws)
            .await
            .context("waiting for the open packet")?;
        if !open.starts_with("0{") {
            bail!("expected the Engine.IO open packet, got {:?}", clip(&open));
        }
        match auth {
            Some(auth) => ws.send_text(&format!("40{auth}")).await?,
            None => ws.send_text("40").await?,
        }
        let mut client = Self {
            ws,
            sid: String::new(),
        };
        let reply = client
            .next_packet()
            .await
            .context("waiting for the CONNECT reply")?;
        if let Some(json) = reply.strip_prefix("40") {
            client.sid = json_string_field(json, "sid")
                .context("CONNECT reply without a sid")?
                .to_owned();
        } else if reply.starts_with("44") {
            bail!("the server refused the namespace: {}", clip(&reply));
        } else {
            bail!("expected a CONNECT reply, got {:?}", clip(&reply));
        }
        Ok(client)
    }

    /// The Socket.IO socket id the server assigned.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// Sends one Engine.IO message packet; `text` is the whole WebSocket
    /// message, e.g. `42["echo","x"]`.
    pub async fn send(&mut self, text: &str) -> Result<()> {
        self.ws.send_text(text).await
    }

    /// The next Engine.IO message packet (the WebSocket text starting with
    /// `4`, returned whole). Pings are answered on the way; noops are
    /// skipped; a close packet or binary data is an error.
    pub async fn next_packet(&mut self) -> Result<Utf8Bytes> {
        loop {
            let text = next_text(&mut self.ws).await?;
            match text.as_bytes().first() {
                Some(b'4') => return Ok(text),
                Some(b'2') => {
                    let mut pong = String::with_capacity(text.len());
                    pong.push('3');
                    pong.push_str(&text[1..]);
                    self.ws.send_text(&pong).await?;
                }
                Some(b'6') => {}
                Some(b'1') => bail!("the server closed the Engine.IO session"),
                _ => bail!("unexpected Engine.IO packet {:?}", clip(&text)),
            }
        }
    }

    /// Waits until the socket has something to read (cancel-safe).
    pub async fn readable(&self) -> Result<()> {
        self.ws.readable().await
    }

    /// The next Engine.IO message packet if one can be had without
    /// waiting (see [`Client::try_next_message`]); pings are answered on
    /// the way, as in [`Self::next_packet`].
    pub async fn try_next_packet(&mut self) -> Result<Option<Utf8Bytes>> {
        loop {
            let text = match self.ws.try_next_message().await? {
                None => return Ok(None),
                Some(Message::Text(text)) => text,
                Some(Message::Ping(_) | Message::Pong(_)) => continue,
                Some(Message::Binary(_)) => bail!("unexpected binary message"),
                Some(Message::Close(frame)) => bail!("server closed the WebSocket: {frame:?}"),
            };
            match text.as_bytes().first() {
                Some(b'4') => return Ok(Some(text)),
                Some(b'2') => {
                    let mut pong = String::with_capacity(text.len());
                    pong.push('3');
                    pong.push_str(&text[1..]);
                    self.ws.send_text(&pong).await?;
                }
                Some(b'6') => {}
                Some(b'1') => bail!("the server closed the Engine.IO session"),
                _ => bail!("unexpected Engine.IO packet {:?}", clip(&text)),
            }
        }
    }

    /// Ends the session: WebSocket close handshake (the server sees a
    /// transport close).
    pub async fn close(self) -> Result<()> {
        self.ws.close().await
    }
}

/// The next WebSocket text message; WebSocket pings and pongs are skipped
/// (the protocol core answers pings).
async fn next_text(ws: &mut Client) -> Result<Utf8Bytes> {
    loop {
        match ws.next_message().await? {
            Message::Text(text) => return Ok(text),
            Message::Ping(_) | Message::Pong(_) => {}
            Message::Binary(_) => bail!("unexpected binary message"),
            Message::Close(frame) => bail!("server closed the WebSocket: {frame:?}"),
        }
    }
}

/// Opens `count` Socket.IO sockets, at most `concurrency` handshakes at a
/// time (see [`crate::ramp`] for why), each with a read buffer of
/// `read_buf` bytes. Fails with the first error.
pub async fn open(
    target: &Target,
    count: usize,
    concurrency: usize,
    read_buf: usize,
) -> Result<Vec<SioClient>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let permits = Arc::clone(&permits);
        let target = target.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            tokio::time::timeout(
                Duration::from_secs(30),
                SioClient::connect(&target, read_buf),
            )
            .await
            .context("Socket.IO handshake timed out")?
        });
    }
    let mut clients = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        let client = joined
            .context("connect task failed")?
            .with_context(|| format!("opening socket {} of {count}", clients.len() + 1))?;
        clients.push(client);
    }
    Ok(clients)
}

/// Splits an acknowledgement packet `43<id><json>` into its id and JSON
/// arguments; `None` if `text` is not an ACK of the main namespace.
///
/// ```
/// use duplex_bench::sio::split_ack;
/// assert_eq!(split_ack("4317[true]"), Some((17, "[true]")));
/// assert_eq!(split_ack("42[\"x\"]"), None);
/// assert_eq!(split_ack("43[1]"), None);
/// ```
pub fn split_ack(text: &str) -> Option<(u64, &str)> {
    let rest = text.strip_prefix("43")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    Some((rest[..digits].parse().ok()?, &rest[digits..]))
}

/// The unsigned integer after `"name":` in a flat JSON object, found by a
/// plain scan (the servers may reorder the keys of an object they parsed
/// and re-encoded).
///
/// ```
/// use duplex_bench::sio::json_u64_field;
/// assert_eq!(json_u64_field(r#"{"n":3,"t":12345}"#, "t"), Some(12345));
/// assert_eq!(json_u64_field(r#"{"t": 7}"#, "t"), Some(7));
/// assert_eq!(json_u64_field(r#"{"t":"x"}"#, "t"), None);
/// ```
pub fn json_u64_field(json: &str, name: &str) -> Option<u64> {
    let value = field_value(json, name)?;
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    value[..digits].parse().ok()
}

/// The string after `"name":` in a flat JSON object (no escapes).
pub fn json_string_field<'a>(json: &'a str, name: &str) -> Option<&'a str> {
    let value = field_value(json, name)?.strip_prefix('"')?;
    value.split_once('"').map(|(s, _)| s)
}

fn field_value<'a>(json: &'a str, name: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(i) = json[from..].find(name) {
        let start = from + i;
        let end = start + name.len();
        let quoted = start > 0
            && json.as_bytes()[start - 1] == b'"'
            && json.as_bytes().get(end) == Some(&b'"');
        if quoted {
            let after = json[end + 1..].trim_start();
            if let Some(value) = after.strip_prefix(':') {
                return Some(value.trim_start());
            }
        }
        from = end;
    }
    None
}

/// At most 120 characters of a packet, for error messages.
fn clip(text: &str) -> &str {
    crate::output::clip_chars(text, 120)
}

/// Sleeps for `duration`, failing early if a socket task fails (a run with
/// a broken socket measures the wrong thing).
async fn sleep_watching(duration: Duration, tasks: &mut JoinSet<Result<()>>) -> Result<()> {
    tokio::select! {
        () = tokio::time::sleep(duration) => Ok(()),
        joined = tasks.join_next() => match joined {
            Some(Ok(Ok(()))) => bail!("a socket stopped before the end of the run"),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(e)) => Err(e).context("socket task panicked"),
            None => bail!("no socket left"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            websocket_url("http://127.0.0.1:1/").unwrap(),
            "ws://127.0.0.1:1/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            websocket_url("http://h:1/io/").unwrap(),
            "ws://h:1/io/?EIO=4&transport=websocket"
        );
        assert!(websocket_url("https://h/").is_err());
        assert!(websocket_url("http://h/?x").is_err());
        assert!(websocket_url("http:///").is_err());
    }

    #[test]
    fn fields() {
        assert_eq!(
            json_string_field(r#"{"sid":"abc-_1"}"#, "sid"),
            Some("abc-_1")
        );
        assert_eq!(json_string_field(r#"{"xsid":"a"}"#, "sid"), None);
        assert_eq!(json_u64_field(r#"{"p":"t","t":5}"#, "t"), Some(5));
        assert_eq!(json_u64_field(r#"{"tt":1}"#, "t"), None);
        assert_eq!(split_ack("430"), Some((0, "")));
        assert_eq!(clip(&"é".repeat(200)).chars().count(), 120);
    }
}
