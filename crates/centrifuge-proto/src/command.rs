//! What clients send: [`Command`] and the typed request of each method.
//!
//! The request structs mirror `client.proto`'s `*Request` messages as
//! proto3 JSON sees them: a field that is absent, `null`, or zero
//! (`""`, `0`, `false`) is the same thing, so the structs hold plain values
//! that default to zero rather than `Option`s. The exceptions are the
//! payloads (`data`: absent is `None`, while a JSON `null` payload is
//! `Some(null)`) and `since`, a message whose presence matters.
//!
//! Decoding lives in [`crate::decode`]; this module also has the client
//! side's encoder ([`Command::encode`]), used by tests, the benchmark
//! clients and the fuzz target.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::json::Obj;
use crate::RawJson;

/// A method a client can call, and the key that names it in commands and
/// replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `connect`: authenticate; must be the first command.
    Connect,
    /// `subscribe` to a channel.
    Subscribe,
    /// `unsubscribe` from a channel.
    Unsubscribe,
    /// `publish` into a channel.
    Publish,
    /// `presence`: who is in a channel.
    Presence,
    /// `presence_stats`: how many are in a channel.
    PresenceStats,
    /// `history`: a channel's recent publications.
    History,
    /// `rpc`: an application-defined call.
    Rpc,
    /// `refresh`: a new connection token.
    Refresh,
    /// `sub_refresh`: a new subscription token.
    SubRefresh,
    /// `send`: an asynchronous message to the server; never answered.
    Send,
}

impl Method {
    /// Every method, in `client.proto` order.
    pub const ALL: [Method; 11] = [
        Method::Connect,
        Method::Subscribe,
        Method::Unsubscribe,
        Method::Publish,
        Method::Presence,
        Method::PresenceStats,
        Method::History,
        Method::Rpc,
        Method::Refresh,
        Method::SubRefresh,
        Method::Send,
    ];

    /// The JSON key: `"connect"`, `"presence_stats"`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Connect => "connect",
            Method::Subscribe => "subscribe",
            Method::Unsubscribe => "unsubscribe",
            Method::Publish => "publish",
            Method::Presence => "presence",
            Method::PresenceStats => "presence_stats",
            Method::History => "history",
            Method::Rpc => "rpc",
            Method::Refresh => "refresh",
            Method::SubRefresh => "sub_refresh",
            Method::Send => "send",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decoded client command.
///
/// Every variant but [`Command::Send`] and [`Command::Pong`] carries the
/// command's `id` (never 0), which its reply must repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `{"id":N,"connect":{...}}`
    Connect {
        /// Command id.
        id: u32,
        /// The request.
        req: ConnectRequest,
    },
    /// `{"id":N,"subscribe":{...}}`
    Subscribe {
        /// Command id.
        id: u32,
        /// The request.
        req: SubscribeRequest,
    },
    /// `{"id":N,"unsubscribe":{...}}`
    Unsubscribe {
        /// Command id.
        id: u32,
        /// The request.
        req: UnsubscribeRequest,
    },
    /// `{"id":N,"publish":{...}}`
    Publish {
        /// Command id.
        id: u32,
        /// The request.
        req: PublishRequest,
    },
    /// `{"id":N,"presence":{...}}`
    Presence {
        /// Command id.
        id: u32,
        /// The request.
        req: PresenceRequest,
    },
    /// `{"id":N,"presence_stats":{...}}`
    PresenceStats {
        /// Command id.
        id: u32,
        /// The request.
        req: PresenceStatsRequest,
    },
    /// `{"id":N,"history":{...}}`
    History {
        /// Command id.
        id: u32,
        /// The request.
        req: HistoryRequest,
    },
    /// `{"id":N,"rpc":{...}}`
    Rpc {
        /// Command id.
        id: u32,
        /// The request.
        req: RpcRequest,
    },
    /// `{"id":N,"refresh":{...}}`
    Refresh {
        /// Command id.
        id: u32,
        /// The request.
        req: RefreshRequest,
    },
    /// `{"id":N,"sub_refresh":{...}}`
    SubRefresh {
        /// Command id.
        id: u32,
        /// The request.
        req: SubRefreshRequest,
    },
    /// `{"send":{...}}`: no id, no reply. (An id, if present, is ignored.)
    Send(SendRequest),
    /// `{}`: the client's answer to the server's ping.
    Pong,
}

impl Command {
    /// The command id, `None` for [`Command::Send`] and [`Command::Pong`].
    pub fn id(&self) -> Option<u32> {
        match self {
            Command::Connect { id, .. }
            | Command::Subscribe { id, .. }
            | Command::Unsubscribe { id, .. }
            | Command::Publish { id, .. }
            | Command::Presence { id, .. }
            | Command::PresenceStats { id, .. }
            | Command::History { id, .. }
            | Command::Rpc { id, .. }
            | Command::Refresh { id, .. }
            | Command::SubRefresh { id, .. } => Some(*id),
            Command::Send(_) | Command::Pong => None,
        }
    }

    /// The method, `None` for [`Command::Pong`].
    pub fn method(&self) -> Option<Method> {
        Some(match self {
            Command::Connect { .. } => Method::Connect,
            Command::Subscribe { .. } => Method::Subscribe,
            Command::Unsubscribe { .. } => Method::Unsubscribe,
            Command::Publish { .. } => Method::Publish,
            Command::Presence { .. } => Method::Presence,
            Command::PresenceStats { .. } => Method::PresenceStats,
            Command::History { .. } => Method::History,
            Command::Rpc { .. } => Method::Rpc,
            Command::Refresh { .. } => Method::Refresh,
            Command::SubRefresh { .. } => Method::SubRefresh,
            Command::Send(_) => Method::Send,
            Command::Pong => return None,
        })
    }

    /// The channel the command is about, for those that have one.
    pub fn channel(&self) -> Option<&str> {
        match self {
            Command::Subscribe { req, .. } => Some(&req.channel),
            Command::Unsubscribe { req, .. } => Some(&req.channel),
            Command::Publish { req, .. } => Some(&req.channel),
            Command::Presence { req, .. } => Some(&req.channel),
            Command::PresenceStats { req, .. } => Some(&req.channel),
            Command::History { req, .. } => Some(&req.channel),
            Command::SubRefresh { req, .. } => Some(&req.channel),
            _ => None,
        }
    }

    /// Appends the command's JSON (the client side of the protocol), with
    /// zero values left out as the SDKs do. No separator is written.
    pub fn encode(&self, out: &mut String) {
        let mut o = Obj::open(out);
        if let Some(id) = self.id() {
            o.u64("id", u64::from(id));
        }
        match self {
            Command::Connect { req, .. } => req.encode(o.key("connect")),
            Command::Subscribe { req, .. } => req.encode(o.key("subscribe")),
            Command::Unsubscribe { req, .. } => encode_channel(o.key("unsubscribe"), &req.channel),
            Command::Publish { req, .. } => {
                let mut p = Obj::open(o.key("publish"));
                p.str_nonempty("channel", &req.channel);
                p.raw("data", &req.data);
                p.close();
            }
            Command::Presence { req, .. } => encode_channel(o.key("presence"), &req.channel),
            Command::PresenceStats { req, .. } => {
                encode_channel(o.key("presence_stats"), &req.channel)
            }
            Command::History { req, .. } => {
                let mut h = Obj::open(o.key("history"));
                h.str_nonempty("channel", &req.channel);
                h.i64_nonzero("limit", i64::from(req.limit));
                if let Some(since) = &req.since {
                    let mut s = Obj::open(h.key("since"));
                    s.u64_nonzero("offset", since.offset);
                    s.str_nonempty("epoch", &since.epoch);
                    s.close();
                }
                h.bool_true("reverse", req.reverse);
                h.close();
            }
            Command::Rpc { req, .. } => {
                let mut r = Obj::open(o.key("rpc"));
                r.raw_opt("data", req.data.as_ref());
                r.str_nonempty("method", &req.method);
                r.close();
            }
            Command::Refresh { req, .. } => {
                let mut r = Obj::open(o.key("refresh"));
                r.str_nonempty("token", &req.token);
                r.close();
            }
            Command::SubRefresh { req, .. } => {
                let mut r = Obj::open(o.key("sub_refresh"));
                r.str_nonempty("channel", &req.channel);
                r.str_nonempty("token", &req.token);
                r.close();
            }
            Command::Send(req) => {
                let mut s = Obj::open(o.key("send"));
                s.raw_opt("data", req.data.as_ref());
                s.close();
            }
            Command::Pong => {}
        }
        o.close();
    }

    /// The command's JSON as a new string.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.encode(&mut out);
        out
    }
}

fn encode_channel(out: &mut String, channel: &str) {
    let mut o = Obj::open(out);
    o.str_nonempty("channel", channel);
    o.close();
}

/// `connect`: `{token?, data?, subs?, name?, version?, headers?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ConnectRequest {
    /// The connection JWT; empty when the client has none.
    #[serde(default, deserialize_with = "nullable")]
    pub token: String,
    /// Custom data for the server's connect logic.
    #[serde(default, deserialize_with = "payload")]
    pub data: Option<RawJson>,
    /// Server-side subscriptions the client knew from an earlier
    /// connection, keyed by channel, with the position to recover from.
    /// (The requests here have an empty `channel`: the key names it.)
    #[serde(default, deserialize_with = "subs")]
    pub subs: BTreeMap<String, SubscribeRequest>,
    /// The client's name, e.g. `"js"`.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// The client's version.
    #[serde(default, deserialize_with = "nullable")]
    pub version: String,
    /// Emulated HTTP headers (set by the SDKs' `headers` option).
    #[serde(default, deserialize_with = "nullable")]
    pub headers: BTreeMap<String, String>,
}

impl ConnectRequest {
    fn encode(&self, out: &mut String) {
        let mut o = Obj::open(out);
        o.str_nonempty("token", &self.token);
        o.raw_opt("data", self.data.as_ref());
        if !self.subs.is_empty() {
            let mut m = Obj::open(o.key("subs"));
            for (channel, sub) in &self.subs {
                sub.encode(m.dyn_key(channel));
            }
            m.close();
        }
        o.str_nonempty("name", &self.name);
        o.str_nonempty("version", &self.version);
        o.string_map_nonempty("headers", &self.headers);
        o.close();
    }
}

/// `subscribe`: `{channel, token?, recover?, epoch?, offset?, data?,
/// positioned?, recoverable?, join_leave?, delta?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SubscribeRequest {
    /// The channel (required, checked by the decoder).
    #[serde(default, deserialize_with = "nullable")]
    pub channel: String,
    /// The subscription JWT, for channels that need one.
    #[serde(default, deserialize_with = "nullable")]
    pub token: String,
    /// Whether to recover missed publications from `epoch`/`offset`.
    #[serde(default, deserialize_with = "nullable")]
    pub recover: bool,
    /// The stream epoch the client last saw.
    #[serde(default, deserialize_with = "nullable")]
    pub epoch: String,
    /// The last offset the client saw.
    #[serde(default, deserialize_with = "nullable")]
    pub offset: u64,
    /// Custom data for the server's subscribe logic.
    #[serde(default, deserialize_with = "payload")]
    pub data: Option<RawJson>,
    /// The client wants positioning (stream position tracking).
    #[serde(default, deserialize_with = "nullable")]
    pub positioned: bool,
    /// The client wants recovery to be possible later.
    #[serde(default, deserialize_with = "nullable")]
    pub recoverable: bool,
    /// The client wants join/leave pushes.
    #[serde(default, deserialize_with = "nullable")]
    pub join_leave: bool,
    /// Requested delta compression (`"fossil"`), empty for none.
    #[serde(default, deserialize_with = "nullable")]
    pub delta: String,
}

impl SubscribeRequest {
    fn encode(&self, out: &mut String) {
        let mut o = Obj::open(out);
        o.str_nonempty("channel", &self.channel);
        o.str_nonempty("token", &self.token);
        o.bool_true("recover", self.recover);
        o.str_nonempty("epoch", &self.epoch);
        o.u64_nonzero("offset", self.offset);
        o.raw_opt("data", self.data.as_ref());
        o.bool_true("positioned", self.positioned);
        o.bool_true("recoverable", self.recoverable);
        o.bool_true("join_leave", self.join_leave);
        o.str_nonempty("delta", &self.delta);
        o.close();
    }
}

/// `unsubscribe`: `{channel}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UnsubscribeRequest {
    /// The channel (required).
    #[serde(default, deserialize_with = "nullable")]
    pub channel: String,
}

/// `publish`: `{channel, data}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PublishRequest {
    /// The channel (required).
    #[serde(default, deserialize_with = "nullable")]
    pub channel: String,
    /// The payload (required; a JSON `null` is a payload).
    pub data: RawJson,
}

/// `presence`: `{channel}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PresenceRequest {
    /// The channel (required).
    #[serde(default, deserialize_with = "nullable")]
    pub channel: String,
}

/// `presence_stats`: `{channel}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PresenceStatsRequest {
    /// The channel (required).
    #[serde(default, deserialize_with = "nullable")]
    pub channel: String,
}

/// A position in a channel's stream: `{offset, epoch}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
pub struct StreamPosition {
    /// The offset.
    #[serde(default, deserialize_with = "nullable")]
    pub offset: u64,
    /// The epoch.
    #[serde(default, deserialize_with = "nullable")]
    pub epoch: String,
}

/// `history`: `{channel, limit?, since?, reverse?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HistoryRequest {
    /// The channel (required).
    #[serde(default, deserialize_with = "nullable")]
    pub channel: String,
    /// How many publications to return. As in Centrifugo, 0 (or absent)
    /// returns none, only the stream's current position; a negative
    /// value means "as many as the server allows".
    #[serde(default, deserialize_with = "nullable")]
    pub limit: i32,
    /// Return publications after this position.
    #[serde(default, deserialize_with = "object_opt")]
    pub since: Option<StreamPosition>,
    /// Newest first.
    #[serde(default, deserialize_with = "nullable")]
    pub reverse: bool,
}

/// `rpc`: `{method?, data?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RpcRequest {
    /// The payload.
    #[serde(default, deserialize_with = "payload")]
    pub data: Option<RawJson>,
    /// The application's method name.
    #[serde(default, deserialize_with = "nullable")]
    pub method: String,
}

/// `refresh`: `{token}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RefreshRequest {
    /// The new connection token.
    #[serde(default, deserialize_with = "nullable")]
    pub token: String,
}

/// `sub_refresh`: `{channel, token}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SubRefreshRequest {
    /// The channel (required).
    #[serde(default, deserialize_with = "nullable")]
    pub channel: String,
    /// The new subscription token.
    #[serde(default, deserialize_with = "nullable")]
    pub token: String,
}

/// `send`: `{data}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SendRequest {
    /// The payload.
    #[serde(default, deserialize_with = "payload")]
    pub data: Option<RawJson>,
}

/// A field whose JSON `null` means the same as its absence: the type's
/// zero value.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A payload field: present means `Some`, even if it is `null`.
fn payload<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<RawJson>, D::Error> {
    RawJson::deserialize(deserializer).map(Some)
}

/// Parses `raw` as `T`, insisting on a JSON object: serde's derived
/// structs would also accept an array of the fields in order, which no
/// client sends and the Go server rejects.
pub(crate) fn from_object<T: serde::de::DeserializeOwned>(
    raw: &RawValue,
) -> Result<T, serde_json::Error> {
    if !raw.get().starts_with('{') {
        return Err(serde::de::Error::custom(format_args!(
            "expected a JSON object, found `{}`",
            raw.get().chars().take(16).collect::<String>()
        )));
    }
    serde_json::from_str(raw.get())
}

/// An optional message field: absent or `null` is `None`, anything but an
/// object an error.
fn object_opt<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Option::<&'de RawValue>::deserialize(deserializer)? {
        None => Ok(None),
        Some(raw) => from_object(raw).map(Some).map_err(serde::de::Error::custom),
    }
}

/// `connect.subs`: a map from channel to a subscribe request object.
fn subs<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, SubscribeRequest>, D::Error> {
    let Some(raw) = Option::<BTreeMap<String, &'de RawValue>>::deserialize(deserializer)? else {
        return Ok(BTreeMap::new());
    };
    raw.into_iter()
        .map(|(channel, req)| {
            from_object(req)
                .map(|req| (channel, req))
                .map_err(serde::de::Error::custom)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names() {
        let names: Vec<_> = Method::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(
            names,
            [
                "connect",
                "subscribe",
                "unsubscribe",
                "publish",
                "presence",
                "presence_stats",
                "history",
                "rpc",
                "refresh",
                "sub_refresh",
                "send"
            ]
        );
    }

    #[test]
    fn encode_omits_zero_values() {
        let cmd = Command::Subscribe {
            id: 3,
            req: SubscribeRequest {
                channel: "news".into(),
                ..Default::default()
            },
        };
        assert_eq!(cmd.to_json(), r#"{"id":3,"subscribe":{"channel":"news"}}"#);
        assert_eq!(Command::Pong.to_json(), "{}");
    }
}
