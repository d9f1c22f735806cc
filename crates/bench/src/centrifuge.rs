//! A minimal client of Centrifugo's bidirectional JSON protocol (the one
//! duplex speaks on `/connection/websocket`), on top of the WebSocket
//! [`Client`] the other scenarios use.
//!
//! Owns only what the benchmarks need: `connect` (with a token or, against
//! a server in `--dev`, without), `subscribe` to a channel, then reading
//! pushes while answering the server's pings (`{}` with `{}`). Replies and
//! pushes are found by plain scans of the text, not parsed as JSON, so the
//! client stays cheap next to the server it loads. It does not do
//! recovery, refresh or anything else a real SDK does.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use ws_proto::{Message, Utf8Bytes};

use crate::client::Client;
use crate::output::clip;
use crate::target::Target;

/// How long a reply may take before the client gives up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected Centrifugo-protocol client.
#[derive(Debug)]
pub struct CentrifugeClient {
    ws: Client,
    /// The id of the next command.
    next_id: u32,
}

/// Options of a subscribe command.
#[derive(Clone, Debug, Default)]
pub struct SubscribeOptions {
    /// Ask for a recoverable subscription (epoch and offset in the reply).
    pub recoverable: bool,
    /// Recover from this position: `(epoch, offset)`.
    pub recover_from: Option<(String, u64)>,
}

/// What a subscribe reply said about the stream position and recovery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscribeResult {
    /// The stream's epoch, if the reply had one.
    pub epoch: Option<String>,
    /// The stream's offset after the reply's publications (0 if absent).
    pub offset: u64,
    /// Whether the reply said `recovered: true`.
    pub recovered: bool,
    /// Publications carried in the reply (recovered ones).
    pub publications: usize,
}

impl CentrifugeClient {
    /// Opens the WebSocket, sends `connect` (with `token` if given) and
    /// waits for its reply. `read_buf` is the connection's read buffer size.
    pub async fn connect(target: &Target, read_buf: usize, token: Option<&str>) -> Result<Self> {
        let ws = Client::connect(target, read_buf).await?;
        let mut client = Self { ws, next_id: 1 };
        let body = match token {
            Some(t) => format!("{{\"token\":{}}}", json_string(t)),
            None => "{}".to_owned(),
        };
        client.command("connect", &body).await?;
        Ok(client)
    }

    /// Subscribes to `channel` and waits for the reply.
    pub async fn subscribe(&mut self, channel: &str) -> Result<SubscribeResult> {
        self.subscribe_with(channel, &SubscribeOptions::default())
            .await
    }

    /// Subscribes to `channel` with `opts` and waits for the reply.
    pub async fn subscribe_with(
        &mut self,
        channel: &str,
        opts: &SubscribeOptions,
    ) -> Result<SubscribeResult> {
        let reply = self.subscribe_reply(channel, opts).await?;
        Ok(parse_subscribe_result(&reply))
    }

    /// Subscribes to `channel` with `opts` and returns the text of the
    /// reply (one JSON object), for callers that check what it carries.
    pub async fn subscribe_reply(
        &mut self,
        channel: &str,
        opts: &SubscribeOptions,
    ) -> Result<String> {
        let mut body = format!("{{\"channel\":{}", json_string(channel));
        if opts.recoverable || opts.recover_from.is_some() {
            body.push_str(",\"recoverable\":true");
        }
        if let Some((epoch, offset)) = &opts.recover_from {
            body.push_str(&format!(
                ",\"recover\":true,\"epoch\":{},\"offset\":{offset}",
                json_string(epoch)
            ));
        }
        body.push('}');
        self.command("subscribe", &body).await
    }

    /// Publishes `data` (JSON text) into `channel` and waits for the reply
    /// (an error reply is an error).
    pub async fn publish(&mut self, channel: &str, data: &str) -> Result<String> {
        let body = format!("{{\"channel\":{},\"data\":{data}}}", json_string(channel));
        self.command("publish", &body).await
    }

    /// Sends `{"id":N,"<method>":<body>}` and returns the text of the reply
    /// with id N. Pushes arriving before the reply are dropped.
    async fn command(&mut self, method: &str, body: &str) -> Result<String> {
        let id = self.next_id;
        self.next_id += 1;
        self.ws
            .send_text(&format!("{{\"id\":{id},\"{method}\":{body}}}"))
            .await?;
        let wanted = format!("{{\"id\":{id},");
        let wait = async {
            loop {
                let frame = self.next_frame().await?;
                let text = std::str::from_utf8(frame.as_bytes()).context("not UTF-8")?;
                for line in text.split('\n') {
                    if line.starts_with(&wanted) {
                        if line.contains("\"error\":") {
                            bail!("{method} failed: {}", clip(line));
                        }
                        return Ok(line.to_owned());
                    }
                }
            }
        };
        tokio::time::timeout(REPLY_TIMEOUT, wait)
            .await
            .with_context(|| format!("no reply to {method} within {REPLY_TIMEOUT:?}"))?
    }

    /// The next frame that is not only a ping; pings are answered.
    pub async fn next_frame(&mut self) -> Result<Utf8Bytes> {
        loop {
            let text = match self.ws.next_message().await? {
                Message::Text(text) => text,
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Binary(_) => bail!("unexpected binary message"),
                Message::Close(frame) => bail!("server closed the WebSocket: {frame:?}"),
            };
            if self.answer_pings(&text).await? {
                continue;
            }
            return Ok(text);
        }
    }

    /// Waits until there is something to read (cancel-safe).
    pub async fn readable(&self) -> Result<()> {
        self.ws.readable().await
    }

    /// The next frame that is not only a ping, if one can be had without
    /// waiting (see [`Client::try_next_message`]).
    pub async fn try_next_frame(&mut self) -> Result<Option<Utf8Bytes>> {
        loop {
            let text = match self.ws.try_next_message().await? {
                None => return Ok(None),
                Some(Message::Text(text)) => text,
                Some(Message::Ping(_) | Message::Pong(_)) => continue,
                Some(Message::Binary(_)) => bail!("unexpected binary message"),
                Some(Message::Close(frame)) => bail!("server closed the WebSocket: {frame:?}"),
            };
            if self.answer_pings(&text).await? {
                continue;
            }
            return Ok(Some(text));
        }
    }

    /// Answers every ping (`{}`) in a frame; `true` if the frame held
    /// nothing else.
    async fn answer_pings(&mut self, text: &Utf8Bytes) -> Result<bool> {
        let bytes = text.as_bytes();
        let pings = bytes.split(|&b| b == b'\n').filter(|l| *l == b"{}").count();
        if pings == 0 {
            return Ok(false);
        }
        for _ in 0..pings {
            self.ws.send_text("{}").await?;
        }
        Ok(bytes
            .split(|&b| b == b'\n')
            .all(|l| l == b"{}" || l.is_empty()))
    }

    /// Closes the WebSocket.
    pub async fn close(self) -> Result<()> {
        self.ws.close().await
    }
}

/// Reads the position and recovery fields of a subscribe reply.
fn parse_subscribe_result(reply: &str) -> SubscribeResult {
    let epoch = crate::sio::json_string_field(reply, "epoch").map(str::to_owned);
    SubscribeResult {
        epoch,
        offset: last_u64_field(reply, "offset").unwrap_or(0),
        recovered: reply.contains("\"recovered\":true"),
        publications: reply.matches("\"data\":").count(),
    }
}

/// The value of the last `"name":<digits>` in `text` (the subscribe reply's
/// own offset comes after those of the publications it carries).
pub(crate) fn last_u64_field(text: &str, name: &str) -> Option<u64> {
    let key = format!("\"{name}\":");
    let at = text.rfind(&key)? + key.len();
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_results() {
        let r = parse_subscribe_result(
            r#"{"id":2,"subscribe":{"recoverable":true,"epoch":"ab","offset":7,"publications":[{"data":1,"offset":6},{"data":2,"offset":7}],"recovered":true,"was_recovering":true}}"#,
        );
        assert_eq!(r.epoch.as_deref(), Some("ab"));
        assert_eq!(r.offset, 7);
        assert!(r.recovered);
        assert_eq!(r.publications, 2);
        let plain = parse_subscribe_result(r#"{"id":2,"subscribe":{}}"#);
        assert_eq!(plain, SubscribeResult::default());
        assert_eq!(json_string("a\"b"), r#""a\"b""#);
    }
}
