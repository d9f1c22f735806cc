//! What the server answers: the result of each method, as
//! [`ReplyResult`].
//!
//! A reply is `{"id":N,"<method>":{...}}` — the result key is always there,
//! `{}` when the result is empty — or `{"id":N,"error":{...}}`. Inside
//! results zero values are left out, except where Centrifugo always writes
//! a field and SDKs may rely on it: `history`'s `publications`, `epoch` and
//! `offset`, `presence`'s map, `presence_stats`' counts, a client info's
//! `user` and `client`. The writers live in [`crate::frame`].

use std::collections::BTreeMap;

use crate::json::Obj;
use crate::push::encode_publications;
use crate::{ClientInfo, Method, Publication, RawJson};

/// `connect` result: `{client, version, expires?, ttl?, data?, subs?, ping,
/// pong, session?, node?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectResult {
    /// The connection's client id (always set).
    pub client: String,
    /// The server's version.
    pub version: String,
    /// The connection expires and must be refreshed within `ttl`.
    pub expires: bool,
    /// Seconds until the connection expires.
    pub ttl: u32,
    /// Custom data for the client.
    pub data: Option<RawJson>,
    /// Server-side subscriptions, keyed by channel.
    pub subs: BTreeMap<String, SubscribeResult>,
    /// Seconds between server pings (the SDKs derive their timeout from
    /// it); 0 disables pings.
    pub ping: u32,
    /// The client must answer pings with `{}`.
    pub pong: bool,
    /// Session id (for emulated transports).
    pub session: String,
    /// Name of the node the client is connected to.
    pub node: String,
}

impl ConnectResult {
    pub(crate) fn encode(&self, out: &mut String) {
        let mut o = Obj::open(out);
        o.str_nonempty("client", &self.client);
        o.str_nonempty("version", &self.version);
        o.bool_true("expires", self.expires);
        o.u64_nonzero("ttl", u64::from(self.ttl));
        o.raw_opt("data", self.data.as_ref());
        if !self.subs.is_empty() {
            let mut m = Obj::open(o.key("subs"));
            for (channel, sub) in &self.subs {
                sub.encode(m.dyn_key(channel));
            }
            m.close();
        }
        o.u64_nonzero("ping", u64::from(self.ping));
        o.bool_true("pong", self.pong);
        o.str_nonempty("session", &self.session);
        o.str_nonempty("node", &self.node);
        o.close();
    }
}

/// `subscribe` result: `{expires?, ttl?, recoverable?, epoch?,
/// publications?, recovered?, offset?, positioned?, data?, was_recovering?,
/// delta?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeResult {
    /// The subscription expires and must be refreshed within `ttl`.
    pub expires: bool,
    /// Seconds until the subscription expires.
    pub ttl: u32,
    /// The stream can be recovered from later.
    pub recoverable: bool,
    /// The stream's epoch.
    pub epoch: String,
    /// Recovered (missed) publications, oldest first.
    pub publications: Vec<Publication>,
    /// Recovery succeeded: `publications` is everything missed.
    pub recovered: bool,
    /// The stream's current offset.
    pub offset: u64,
    /// The stream is positioned.
    pub positioned: bool,
    /// Custom data for the client.
    pub data: Option<RawJson>,
    /// The client asked to recover (whether or not it worked).
    pub was_recovering: bool,
    /// Delta compression is on for this subscription.
    pub delta: bool,
}

impl SubscribeResult {
    pub(crate) fn encode(&self, out: &mut String) {
        let mut o = Obj::open(out);
        o.bool_true("expires", self.expires);
        o.u64_nonzero("ttl", u64::from(self.ttl));
        o.bool_true("recoverable", self.recoverable);
        o.str_nonempty("epoch", &self.epoch);
        if !self.publications.is_empty() {
            encode_publications(o.key("publications"), &self.publications);
        }
        o.bool_true("recovered", self.recovered);
        o.u64_nonzero("offset", self.offset);
        o.bool_true("positioned", self.positioned);
        o.raw_opt("data", self.data.as_ref());
        o.bool_true("was_recovering", self.was_recovering);
        o.bool_true("delta", self.delta);
        o.close();
    }
}

/// `history` result: `{publications, epoch, offset}`, all always written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryResult {
    /// The publications, in the requested order.
    pub publications: Vec<Publication>,
    /// The stream's epoch.
    pub epoch: String,
    /// The stream's current (top) offset.
    pub offset: u64,
}

/// `presence` result: `{presence:{CLIENT:{user, client, conn_info?,
/// chan_info?}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresenceResult {
    /// Who is subscribed, keyed by client id.
    pub presence: BTreeMap<String, ClientInfo>,
}

/// `presence_stats` result: `{num_clients, num_users}`, always written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceStatsResult {
    /// Subscribed connections.
    pub num_clients: u32,
    /// Distinct users among them.
    pub num_users: u32,
}

/// `rpc` result: `{data?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpcResult {
    /// The application's answer.
    pub data: Option<RawJson>,
}

/// `refresh` result: `{client, version, expires?, ttl?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshResult {
    /// The connection's client id.
    pub client: String,
    /// The server's version.
    pub version: String,
    /// The connection (still) expires, within `ttl`.
    pub expires: bool,
    /// Seconds until it expires.
    pub ttl: u32,
}

/// `sub_refresh` result: `{expires?, ttl?}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubRefreshResult {
    /// The subscription (still) expires, within `ttl`.
    pub expires: bool,
    /// Seconds until it expires.
    pub ttl: u32,
}

/// The successful result of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyResult {
    /// For `connect`.
    Connect(ConnectResult),
    /// For `subscribe`.
    Subscribe(SubscribeResult),
    /// For `unsubscribe`: `{}`.
    Unsubscribe,
    /// For `publish`: `{}`.
    Publish,
    /// For `presence`.
    Presence(PresenceResult),
    /// For `presence_stats`.
    PresenceStats(PresenceStatsResult),
    /// For `history`.
    History(HistoryResult),
    /// For `rpc`.
    Rpc(RpcResult),
    /// For `refresh`.
    Refresh(RefreshResult),
    /// For `sub_refresh`.
    SubRefresh(SubRefreshResult),
}

impl ReplyResult {
    /// The method this answers (never [`Method::Send`]).
    pub fn method(&self) -> Method {
        match self {
            ReplyResult::Connect(_) => Method::Connect,
            ReplyResult::Subscribe(_) => Method::Subscribe,
            ReplyResult::Unsubscribe => Method::Unsubscribe,
            ReplyResult::Publish => Method::Publish,
            ReplyResult::Presence(_) => Method::Presence,
            ReplyResult::PresenceStats(_) => Method::PresenceStats,
            ReplyResult::History(_) => Method::History,
            ReplyResult::Rpc(_) => Method::Rpc,
            ReplyResult::Refresh(_) => Method::Refresh,
            ReplyResult::SubRefresh(_) => Method::SubRefresh,
        }
    }

    /// Writes the result object (the value under the method's key).
    pub(crate) fn encode(&self, out: &mut String) {
        match self {
            ReplyResult::Connect(r) => r.encode(out),
            ReplyResult::Subscribe(r) => r.encode(out),
            ReplyResult::Unsubscribe | ReplyResult::Publish => out.push_str("{}"),
            ReplyResult::Presence(r) => {
                let mut o = Obj::open(out);
                let mut m = Obj::open(o.key("presence"));
                for (client, info) in &r.presence {
                    info.encode(m.dyn_key(client));
                }
                m.close();
                o.close();
            }
            ReplyResult::PresenceStats(r) => {
                let mut o = Obj::open(out);
                o.u64("num_clients", u64::from(r.num_clients));
                o.u64("num_users", u64::from(r.num_users));
                o.close();
            }
            ReplyResult::History(r) => {
                let mut o = Obj::open(out);
                encode_publications(o.key("publications"), &r.publications);
                o.str("epoch", &r.epoch);
                o.u64("offset", r.offset);
                o.close();
            }
            ReplyResult::Rpc(r) => {
                let mut o = Obj::open(out);
                o.raw_opt("data", r.data.as_ref());
                o.close();
            }
            ReplyResult::Refresh(r) => {
                let mut o = Obj::open(out);
                o.str_nonempty("client", &r.client);
                o.str_nonempty("version", &r.version);
                o.bool_true("expires", r.expires);
                o.u64_nonzero("ttl", u64::from(r.ttl));
                o.close();
            }
            ReplyResult::SubRefresh(r) => {
                let mut o = Obj::open(out);
                o.bool_true("expires", r.expires);
                o.u64_nonzero("ttl", u64::from(r.ttl));
                o.close();
            }
        }
    }
}
