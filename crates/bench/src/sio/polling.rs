//! A Socket.IO client over Engine.IO's HTTP long-polling transport, for
//! comparing polling with WebSocket delivery of the same stream.
//!
//! Engine.IO v4 polling by hand: `GET /socket.io/?EIO=4&transport=polling`
//! opens the session (`0{"sid":...}`); packets from the client go in
//! `POST ...&sid=SID` bodies; a `GET ...&sid=SID` waits until the server
//! has packets and returns them joined by the record separator (0x1e).
//! Like a browser, the client keeps two keep-alive connections: one for
//! the long-poll GETs, always re-issued as soon as one returns, and one for
//! POSTs (the CONNECT, events, and pongs to the server's pings). No
//! upgrade to WebSocket is attempted. Only text packets of the main
//! namespace are expected.

use std::collections::VecDeque;

use anyhow::{bail, Context as _, Result};

use crate::http::HttpClient;
use crate::target::Target;

/// The Engine.IO record separator between packets of a polling payload.
const RECORD_SEPARATOR: char = '\u{1e}';

/// A Socket.IO socket on the polling transport.
#[derive(Debug)]
pub struct PollingClient {
    get: HttpClient,
    post: HttpClient,
    /// `/socket.io/?EIO=4&transport=polling&sid=SID`.
    path: String,
    /// Packets received and not handed out yet.
    pending: VecDeque<String>,
    /// Whether a GET is waiting for its response.
    polling: bool,
}

/// The server's target and the polling request path for a Socket.IO
/// server URL (`http://host:port` with an optional path prefix, as
/// [`super::websocket_url`] takes it).
pub async fn resolve(url: &str) -> Result<(Target, String)> {
    let ws = super::websocket_url(url)?;
    let target = Target::resolve(&ws).await?;
    let path = target
        .path
        .replace("transport=websocket", "transport=polling");
    Ok((target, path))
}

impl PollingClient {
    /// Opens a session at `path` (from [`resolve`]), sends the CONNECT
    /// (with `auth`, a JSON object, if given) and waits for its reply.
    pub async fn connect(target: &Target, path: &str, auth: Option<&str>) -> Result<Self> {
        let mut get = HttpClient::connect(target, None).await?;
        get.send_request("GET", path, None).await?;
        let open = get.recv().await.context("waiting for the open packet")?;
        if open.status != 200 {
            bail!("handshake refused: {} {}", open.status, open.body);
        }
        let Some(json) = open.body.strip_prefix('0') else {
            bail!("expected the Engine.IO open packet, got {:?}", open.body);
        };
        let sid = super::json_string_field(json, "sid").context("open packet without a sid")?;
        let path = format!("{path}&sid={sid}");
        let post = HttpClient::connect(target, None).await?;
        let mut client = Self {
            get,
            post,
            path,
            pending: VecDeque::new(),
            polling: false,
        };
        match auth {
            Some(auth) => client.send(&format!("40{auth}")).await?,
            None => client.send("40").await?,
        }
        let reply = client.next_packet().await?;
        if !reply.starts_with("40") {
            bail!("expected a CONNECT reply, got {reply:?}");
        }
        Ok(client)
    }

    /// Sends one packet in a POST and waits for the server's `ok`.
    pub async fn send(&mut self, packet: &str) -> Result<()> {
        let path = self.path.clone();
        self.post
            .send_request("POST", &path, Some(("text/plain;charset=UTF-8", packet)))
            .await?;
        let r = self.post.recv().await?;
        if r.status != 200 {
            bail!("POST refused: {} {}", r.status, r.body);
        }
        Ok(())
    }

    /// The next Engine.IO message packet (`4...`, returned whole, as
    /// [`super::SioClient::next_packet`] does). Pings are answered with
    /// pongs; noops are skipped.
    pub async fn next_packet(&mut self) -> Result<String> {
        loop {
            while let Some(packet) = self.pending.pop_front() {
                match packet.as_bytes().first() {
                    Some(b'4') => return Ok(packet),
                    Some(b'2') => {
                        let pong = format!("3{}", &packet[1..]);
                        self.send(&pong).await?;
                    }
                    Some(b'6') => {}
                    Some(b'1') => bail!("the server closed the Engine.IO session"),
                    _ => bail!("unexpected Engine.IO packet {packet:?}"),
                }
            }
            if !self.polling {
                let path = self.path.clone();
                self.get.send_request("GET", &path, None).await?;
                self.polling = true;
            }
            let r = self.get.recv().await?;
            self.polling = false;
            if r.status != 200 {
                bail!("poll refused: {} {}", r.status, r.body);
            }
            self.pending
                .extend(r.body.split(RECORD_SEPARATOR).map(str::to_owned));
        }
    }
}
