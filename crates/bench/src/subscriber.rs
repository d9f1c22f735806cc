//! Subscribers of the fan-out and subscribed-idle scenarios: one client
//! connection that has joined a channel (or a room) and then receives
//! publications, of one of three kinds:
//!
//! - [`SubKind::Ws`]: duplex's `/connection/websocket` (Centrifugo JSON
//!   protocol): `connect`, `subscribe {channel}`, then
//!   `{"push":{"channel":..,"pub":{"data":DATA,..}}}` pushes;
//! - [`SubKind::Sio`]: duplex's Socket.IO mapping: CONNECT, then
//!   `subscribe {channel, join_leave: false}` with an ack, then
//!   `publication` events `{channel, data: DATA, ..}`;
//! - [`SubKind::SioPolling`]: the same as [`SubKind::Sio`] over Engine.IO's
//!   HTTP long-polling transport instead of WebSocket
//!   ([`crate::sio::polling`]);
//! - [`SubKind::SioRoom`]: the Socket.IO peers (`bench/node-socketio`,
//!   `bench/peers` socketioxide-echo): CONNECT, `join` the room with an ack,
//!   then `msg` events whose argument is DATA.
//!
//! DATA is the publisher's JSON object `{"t":T,"n":N,"p":"..."}` (see
//! [`crate::fanout`]); [`Subscriber::next_batch`] hands back the `(t, n)`
//! of every delivery read. Owns connecting, subscribing and recognising
//! deliveries; counting and timing them is the scenario's.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::centrifuge::{json_string, CentrifugeClient};
use crate::output::clip;
use crate::progress::Progress;
use crate::sio::polling::PollingClient;
use crate::sio::{json_u64_field, split_ack, SioClient};
use crate::target::Target;

/// How long a connect plus subscribe may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Which protocol the subscribers speak.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum SubKind {
    /// duplex's plain WebSocket (Centrifugo JSON protocol).
    Ws,
    /// duplex's Socket.IO mapping (`subscribe` event, `publication` events).
    Sio,
    /// The same over HTTP long-polling.
    SioPolling,
    /// A Socket.IO room (`join` event, `msg` events), for the peers.
    SioRoom,
}

impl SubKind {
    /// The target for a server URL: `ws://host:port/path` for
    /// [`SubKind::Ws`], a Socket.IO URL (`http://host:port`) otherwise; for
    /// [`SubKind::SioPolling`] its path is the polling request's.
    pub async fn target(self, url: &str) -> Result<Target> {
        match self {
            Self::Ws => Target::resolve(url).await,
            Self::Sio | Self::SioRoom => crate::sio::resolve(url).await,
            Self::SioPolling => {
                let (mut target, path) = crate::sio::polling::resolve(url).await?;
                target.path = path;
                Ok(target)
            }
        }
    }
}

/// How to connect and what to join.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SubscribeSpec {
    /// The protocol.
    pub kind: SubKind,
    /// The server's WebSocket target (see [`SubKind::target`]).
    pub target: Target,
    /// The channel (or, for [`SubKind::SioRoom`], the room).
    pub channel: String,
    /// HS256 secret to sign a connection token for each subscriber with
    /// (user `bench<i>`); `None` connects without a token (`--dev`).
    pub token_secret: Option<String>,
    /// Read buffer per connection, in bytes.
    pub read_buf: usize,
}

/// One subscribed connection.
#[derive(Debug)]
pub enum Subscriber {
    /// A plain-WebSocket client.
    Ws(CentrifugeClient),
    /// A Socket.IO client (duplex's mapping or a room of a peer).
    Sio(SioClient, SubKind),
    /// A Socket.IO client on the polling transport.
    Polling(Box<PollingClient>),
}

impl Subscriber {
    /// Connects subscriber number `n` and subscribes it.
    pub async fn open(spec: &SubscribeSpec, n: usize) -> Result<Self> {
        let token = spec
            .token_secret
            .as_deref()
            .map(|secret| crate::jwt::hs256(secret, &format!("bench{n}"), None));
        match spec.kind {
            SubKind::Ws => {
                let mut c =
                    CentrifugeClient::connect(&spec.target, spec.read_buf, token.as_deref())
                        .await?;
                c.subscribe(&spec.channel).await?;
                Ok(Self::Ws(c))
            }
            SubKind::Sio | SubKind::SioRoom => {
                let auth = token.map(|t| format!("{{\"token\":{}}}", json_string(&t)));
                let mut c =
                    SioClient::connect_with_auth(&spec.target, spec.read_buf, auth.as_deref())
                        .await?;
                let channel = json_string(&spec.channel);
                let event = if spec.kind == SubKind::Sio {
                    format!("420[\"subscribe\",{{\"channel\":{channel},\"join_leave\":false}}]")
                } else {
                    format!("420[\"join\",{channel}]")
                };
                c.send(&event).await?;
                let ack = c.next_packet().await.context("waiting for the ack")?;
                match split_ack(&ack) {
                    Some((0, args)) if !args.contains("\"error\"") => {}
                    _ => bail!("subscribe refused: {}", clip(&ack)),
                }
                Ok(Self::Sio(c, spec.kind))
            }
            SubKind::SioPolling => {
                let auth = token.map(|t| format!("{{\"token\":{}}}", json_string(&t)));
                let path = spec.target.path.clone();
                let mut c = PollingClient::connect(&spec.target, &path, auth.as_deref()).await?;
                let channel = json_string(&spec.channel);
                c.send(&format!(
                    "420[\"subscribe\",{{\"channel\":{channel},\"join_leave\":false}}]"
                ))
                .await?;
                let ack = c.next_packet().await.context("waiting for the ack")?;
                match split_ack(&ack) {
                    Some((0, args)) if !args.contains("\"error\"") => {}
                    _ => bail!("subscribe refused: {}", clip(&ack)),
                }
                Ok(Self::Polling(Box::new(c)))
            }
        }
    }

    /// Waits for the next frame or packet and returns the `(t, n)` of each
    /// delivery in it (a plain-WebSocket frame may hold several). Pings
    /// are answered on the way.
    pub async fn next_batch(&mut self, out: &mut Vec<(u64, u64)>) -> Result<()> {
        out.clear();
        loop {
            match self {
                Self::Ws(c) => {
                    let frame = c.next_frame().await?;
                    parse_ws_frame(frame.as_bytes(), out)?;
                }
                Self::Sio(c, kind) => {
                    let packet = c.next_packet().await?;
                    parse_sio_packet(packet.as_bytes(), *kind, out)?;
                }
                Self::Polling(c) => {
                    let packet = c.next_packet().await?;
                    parse_sio_packet(packet.as_bytes(), SubKind::Sio, out)?;
                }
            }
            if !out.is_empty() {
                return Ok(());
            }
        }
    }

    /// Reads forever, answering pings and dropping everything else (what
    /// an idle subscriber does); returns when the connection fails.
    pub async fn idle(mut self) -> anyhow::Error {
        loop {
            let result = match &mut self {
                Self::Ws(c) => c.next_frame().await.map(drop),
                Self::Sio(c, _) => c.next_packet().await.map(drop),
                Self::Polling(c) => c.next_packet().await.map(drop),
            };
            if let Err(e) = result {
                return e;
            }
        }
    }
}

/// Deliveries in a plain-WebSocket frame: one JSON object per line, each
/// a publication push. Anything else is an error.
fn parse_ws_frame(frame: &[u8], out: &mut Vec<(u64, u64)>) -> Result<()> {
    for line in frame.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let text = std::str::from_utf8(line).context("frame is not UTF-8")?;
        let Some(at) = text.find("\"pub\":{") else {
            bail!("expected a publication push, got {}", clip(text));
        };
        out.push(stamp_of(&text[at..]).with_context(|| clip(text).to_owned())?);
    }
    Ok(())
}

/// The delivery in a Socket.IO packet (`42["publication",{..}]` or
/// `42["msg",{..}]`).
fn parse_sio_packet(packet: &[u8], kind: SubKind, out: &mut Vec<(u64, u64)>) -> Result<()> {
    let text = std::str::from_utf8(packet).context("packet is not UTF-8")?;
    let prefix = match kind {
        SubKind::SioRoom => "42[\"msg\",",
        _ => "42[\"publication\",",
    };
    let Some(rest) = text.strip_prefix(prefix) else {
        bail!("expected {prefix}...], got {}", clip(text));
    };
    out.push(stamp_of(rest).with_context(|| clip(text).to_owned())?);
    Ok(())
}

/// `(t, n)` from the publisher's data object somewhere in `text`.
fn stamp_of(text: &str) -> Result<(u64, u64)> {
    match (json_u64_field(text, "t"), json_u64_field(text, "n")) {
        (Some(t), Some(n)) => Ok((t, n)),
        _ => bail!("a delivery without t and n"),
    }
}

/// Opens `count` subscribers, at most `concurrency` at a time, showing
/// progress; fails with the first error.
pub async fn open_all(
    spec: &SubscribeSpec,
    count: usize,
    concurrency: usize,
) -> Result<Vec<Subscriber>> {
    open_range(spec, 0..count, concurrency).await
}

/// Opens subscribers numbered `range` (numbers name their users).
pub async fn open_range(
    spec: &SubscribeSpec,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> Result<Vec<Subscriber>> {
    let count = range.len();
    let progress = Progress::count(count as u64, "subscribing");
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let spec = Arc::new(spec.clone());
    let mut tasks = JoinSet::new();
    for n in range {
        let permits = Arc::clone(&permits);
        let spec = Arc::clone(&spec);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            tokio::time::timeout(SUBSCRIBE_TIMEOUT, Subscriber::open(&spec, n))
                .await
                .context("connect and subscribe timed out")?
                .with_context(|| format!("subscriber {n}"))
        });
    }
    let mut subs = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        let sub = joined.context("subscribe task failed")??;
        subs.push(sub);
        progress.inc(1);
    }
    progress.finish();
    Ok(subs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_deliveries() {
        let mut out = Vec::new();
        let frame =
            br#"{"push":{"channel":"bench","pub":{"data":{"t":12,"n":3,"p":"x"},"offset":4}}}
{"push":{"channel":"bench","pub":{"data":{"t":13,"n":4,"p":"x"}}}}"#;
        parse_ws_frame(frame, &mut out).unwrap();
        assert_eq!(out, vec![(12, 3), (13, 4)]);
        assert!(parse_ws_frame(br#"{"push":{"channel":"c","join":{}}}"#, &mut out).is_err());

        out.clear();
        let p = br#"42["publication",{"channel":"bench","data":{"t":5,"n":0,"p":""}}]"#;
        parse_sio_packet(p, SubKind::Sio, &mut out).unwrap();
        let m = br#"42["msg",{"t":6,"n":1,"p":""}]"#;
        parse_sio_packet(m, SubKind::SioRoom, &mut out).unwrap();
        assert_eq!(out, vec![(5, 0), (6, 1)]);
        assert!(parse_sio_packet(m, SubKind::Sio, &mut out).is_err());
        assert!(parse_sio_packet(br#"42["msg",{"n":1}]"#, SubKind::SioRoom, &mut out).is_err());
    }
}
