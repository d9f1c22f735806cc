//! What the server sends unasked: [`Push`]es, and the [`Publication`] and
//! [`ClientInfo`] shapes that pushes and replies share.
//!
//! A push travels as `{"push":{"channel":"C","<kind>":{...}}}` with no id;
//! the channel is left out for pushes that concern the connection rather
//! than a channel (`message`, `connect`, `disconnect`, `refresh` usually).
//! Encoding follows `client.proto`'s field order and leaves out zero values,
//! as Centrifugo does. The writers live in [`crate::frame`].

use std::collections::BTreeMap;

use crate::json::Obj;
use crate::reply::ConnectResult;
use crate::{Disconnect, RawJson, Unsubscribe};

/// Who a client is: in presence, join/leave pushes and a publication's
/// `info`. Encoded as `{"user":"U","client":"C","conn_info":...,"chan_info":...}`;
/// `user` and `client` are always written (an anonymous user is `""`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ClientInfo {
    /// The user id (`sub` of the token), empty for anonymous.
    pub user: String,
    /// The connection's client id.
    pub client: String,
    /// The connection's `info` (from its token), if any.
    pub conn_info: Option<RawJson>,
    /// The subscription's `info` (from its token), if any.
    pub chan_info: Option<RawJson>,
}

impl ClientInfo {
    pub(crate) fn encode(&self, out: &mut String) {
        let mut o = Obj::open(out);
        o.str("user", &self.user);
        o.str("client", &self.client);
        o.raw_opt("conn_info", self.conn_info.as_ref());
        o.raw_opt("chan_info", self.chan_info.as_ref());
        o.close();
    }
}

/// One publication in a channel: in `pub` pushes and in history and
/// recovery results. Encoded as
/// `{"data":...,"info":{...},"offset":N,"tags":{...},"delta":true,"time":T}`,
/// zero values left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The payload (or, with `delta`, a fossil delta against the previous
    /// one, as a JSON string).
    pub data: RawJson,
    /// The publisher, for publications made by clients.
    pub info: Option<ClientInfo>,
    /// The position in the channel's stream, 0 for channels without
    /// history.
    pub offset: u64,
    /// Publisher-defined tags.
    pub tags: BTreeMap<String, String>,
    /// `data` is a delta against the previous publication.
    pub delta: bool,
    /// Publication time, Unix milliseconds; 0 to leave out (Centrifugo
    /// does not send it by default).
    pub time: i64,
}

impl Publication {
    /// A publication with nothing but its payload and offset.
    pub fn new(data: RawJson, offset: u64) -> Self {
        Publication {
            data,
            info: None,
            offset,
            tags: BTreeMap::new(),
            delta: false,
            time: 0,
        }
    }

    pub(crate) fn encode(&self, out: &mut String) {
        let mut o = Obj::open(out);
        o.raw("data", &self.data);
        if let Some(info) = &self.info {
            info.encode(o.key("info"));
        }
        o.u64_nonzero("offset", self.offset);
        o.string_map_nonempty("tags", &self.tags);
        o.bool_true("delta", self.delta);
        o.i64_nonzero("time", self.time);
        o.close();
    }
}

/// Writes `[p1,p2,...]`.
pub(crate) fn encode_publications(out: &mut String, publications: &[Publication]) {
    out.push('[');
    for (i, p) in publications.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        p.encode(out);
    }
    out.push(']');
}

/// The body of a `subscribe` push, telling the client about a server-side
/// subscription: `{recoverable?, epoch?, offset?, positioned?, data?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribePush {
    /// The stream can be recovered from.
    pub recoverable: bool,
    /// The stream's epoch.
    pub epoch: String,
    /// The stream's current offset.
    pub offset: u64,
    /// The stream is positioned.
    pub positioned: bool,
    /// Custom data for the client.
    pub data: Option<RawJson>,
}

/// The body of a `refresh` push, for server-side connection refresh:
/// `{expires?, ttl?}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefreshPush {
    /// The connection expires (and `ttl` says when).
    pub expires: bool,
    /// Seconds until it expires.
    pub ttl: u32,
}

/// Something the server sends to a client unasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// `pub`: a publication in a subscribed channel.
    Publication(Publication),
    /// `join`: someone subscribed to the channel.
    Join(ClientInfo),
    /// `leave`: someone unsubscribed from the channel.
    Leave(ClientInfo),
    /// `unsubscribe`: the server unsubscribed the client from the channel.
    Unsubscribe(Unsubscribe),
    /// `message`: an asynchronous message to the connection, `{data}`.
    Message(RawJson),
    /// `subscribe`: the server subscribed the client to the channel.
    Subscribe(SubscribePush),
    /// `connect`: the connect result, for unidirectional transports.
    Connect(ConnectResult),
    /// `disconnect`: the server is about to close the connection.
    Disconnect(Disconnect),
    /// `refresh`: the connection's expiry changed.
    Refresh(RefreshPush),
}

impl Push {
    /// The push's key: `"pub"`, `"join"`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Push::Publication(_) => "pub",
            Push::Join(_) => "join",
            Push::Leave(_) => "leave",
            Push::Unsubscribe(_) => "unsubscribe",
            Push::Message(_) => "message",
            Push::Subscribe(_) => "subscribe",
            Push::Connect(_) => "connect",
            Push::Disconnect(_) => "disconnect",
            Push::Refresh(_) => "refresh",
        }
    }

    /// Writes the whole message, `{"push":{...}}`.
    pub(crate) fn encode(&self, channel: &str, out: &mut String) {
        let mut outer = Obj::open(out);
        let mut o = Obj::open(outer.key("push"));
        o.str_nonempty("channel", channel);
        let body = o.key(self.kind());
        match self {
            Push::Publication(p) => p.encode(body),
            Push::Join(info) | Push::Leave(info) => {
                let mut b = Obj::open(body);
                info.encode(b.key("info"));
                b.close();
            }
            Push::Unsubscribe(u) => {
                let mut b = Obj::open(body);
                b.u64_nonzero("code", u64::from(u.code));
                b.str_nonempty("reason", &u.reason);
                b.close();
            }
            Push::Message(data) => {
                let mut b = Obj::open(body);
                b.raw("data", data);
                b.close();
            }
            Push::Subscribe(s) => {
                let mut b = Obj::open(body);
                b.bool_true("recoverable", s.recoverable);
                b.str_nonempty("epoch", &s.epoch);
                b.u64_nonzero("offset", s.offset);
                b.bool_true("positioned", s.positioned);
                b.raw_opt("data", s.data.as_ref());
                b.close();
            }
            Push::Connect(c) => c.encode(body),
            Push::Disconnect(d) => {
                let mut b = Obj::open(body);
                b.u64_nonzero("code", u64::from(d.code));
                b.str_nonempty("reason", &d.reason);
                b.bool_true("reconnect", d.reconnect);
                b.close();
            }
            Push::Refresh(r) => {
                let mut b = Obj::open(body);
                b.bool_true("expires", r.expires);
                b.u64_nonzero("ttl", u64::from(r.ttl));
                b.close();
            }
        }
        o.close();
        outer.close();
    }
}
