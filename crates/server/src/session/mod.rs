//! The transport-neutral core of a client connection: who the client is
//! and what it may do.
//!
//! A [`Session`] holds a connection's credentials (from its connect token:
//! user, `info`, expiry, server-side `channels`) and its subscriptions,
//! and carries out the client operations — subscribe, unsubscribe,
//! publish, presence, presence stats, history, refresh, sub refresh —
//! against the node's [`hub`], answering with `centrifuge-proto` result
//! types or a [`SessionError`] (a reply error with Centrifugo's code, or a
//! disconnect). Both transports drive it: `client` (plain WebSocket,
//! Centrifugo's JSON protocol) and `sio` (Socket.IO), so they apply the same
//! rules and land on the same hub channels.
//!
//! What it does not do: framing, timers, pings, queues, close frames, the
//! registry — the transports own those. Publications reach a connection
//! through the [`hub::Subscriber`] each transport builds for a subscription
//! ([`SubscriberFactory`]); every subscription gets a generation number so
//! a transport can drop events of a subscription that has since been
//! replaced (unsubscribe + subscribe again before its queue drained).
//!
//! Errors follow Centrifugo: unknown namespace 102, not allowed 103,
//! already subscribed 105, too many subscriptions 106, malformed channel
//! 107, feature off 108, expired token 109, too many requests 111 (over
//! `client.max_commands_per_second`, see [`Session::check_rate`]),
//! unrecoverable position 112;
//! an invalid token (or one for another user or channel) disconnects with
//! 3500. Permission rules are in [`permission`].

pub(crate) mod convert;
mod permission;
mod rate;
mod subs;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use centrifuge_proto as proto;
use hub::{Activation, ChannelName, ChannelNameError, ClientInfo, StreamPosition, Subscriber};
use proto::{Disconnect, ErrorCode, ReplyError};

use crate::auth::{now_secs, TokenError};
use crate::node::Node;
use permission::{Action, Asker};
use subs::{Sub, Subs};

/// The server version told to clients.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Longest expiry told to clients, in seconds (a year), so that `ttl`
/// fits the protocol's `u32` and timers stay sane.
const MAX_TTL_SECS: u64 = 365 * 24 * 3600;

/// Who the client is, from its connect token (or anonymous in `--dev`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The user id; empty for anonymous.
    pub user: Arc<str>,
    /// Raw JSON of the token's `info`, shown in presence as `conn_info`.
    pub conn_info: Option<Bytes>,
    /// When the connection expires (Unix seconds); `None` never.
    pub exp: Option<u64>,
    /// Server-side subscriptions to make on connect (a boxed slice: the
    /// session keeps its credentials for the connection's life).
    pub channels: Box<[String]>,
}

/// Why an operation failed: answer the command with an error, or close
/// the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Reply with this error; the connection lives on.
    #[error("error {}: {}", .0.code, .0.message)]
    Reply(ReplyError),
    /// Close the connection with this code and reason.
    #[error("disconnect {0}")]
    Disconnect(Disconnect),
}

impl SessionError {
    /// The Centrifugo code: the reply code or the close code.
    pub fn code(&self) -> u32 {
        match self {
            SessionError::Reply(e) => e.code,
            SessionError::Disconnect(d) => d.code,
        }
    }
}

impl From<ErrorCode> for SessionError {
    fn from(code: ErrorCode) -> Self {
        SessionError::Reply(code.into())
    }
}

impl From<Disconnect> for SessionError {
    fn from(d: Disconnect) -> Self {
        SessionError::Disconnect(d)
    }
}

impl From<hub::Error> for SessionError {
    fn from(err: hub::Error) -> Self {
        let code = err.code();
        let standard = ErrorCode::from_code(code).unwrap_or(ErrorCode::Internal);
        if code == ErrorCode::Internal.code() || err.is_temporary() {
            tracing::warn!(%err, "hub operation failed");
        }
        // Clients see the standard message: internal details stay in logs.
        SessionError::Reply(ReplyError::new(
            code,
            standard.message(),
            standard.temporary() || err.is_temporary(),
        ))
    }
}

/// Builds the [`Subscriber`] through which a subscription's events reach
/// the connection. Each transport has its own.
pub trait SubscriberFactory: Send + Sync + 'static {
    /// The subscriber for subscription number `generation` to `channel`.
    fn subscriber(&self, channel: &ChannelName, generation: u64) -> Arc<dyn Subscriber>;
}

/// A subscription just made: the result for the reply and the activation
/// to run once the reply is queued (it starts live delivery).
#[derive(Debug)]
pub struct Subscription {
    /// The channel.
    pub channel: ChannelName,
    /// The subscribe result (also the body of a `subscribe` push).
    pub result: proto::SubscribeResult,
    /// Run after queueing the reply.
    pub activation: Activation,
}

/// The outcome of a successful connect.
#[derive(Debug, Default)]
pub struct Connected {
    /// Server-side subscriptions made, keyed by channel.
    pub subs: BTreeMap<String, proto::SubscribeResult>,
    /// Run after queueing the connect reply.
    pub activations: Vec<Activation>,
    /// Whether the connection expires.
    pub expires: bool,
    /// Seconds until it does.
    pub ttl: u32,
}

/// One client connection's state and operations; see the module docs.
pub struct Session {
    node: Node,
    client: Arc<str>,
    factory: Arc<dyn SubscriberFactory>,
    creds: Option<Credentials>,
    subs: Subs,
    next_generation: u64,
    /// `client.max_commands_per_second`, when set.
    rate: Option<rate::CommandRate>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("client", &self.client)
            .field("user", &self.creds.as_ref().map(|c| &c.user))
            .field("subscriptions", &self.subs.len())
            .finish()
    }
}

/// `(expires, ttl)` for an expiry time, as connect and refresh results
/// carry them.
pub fn expires_ttl(exp: Option<u64>) -> (bool, u32) {
    match exp {
        Some(exp) => {
            let ttl = exp.saturating_sub(now_secs()).min(MAX_TTL_SECS);
            (true, u32::try_from(ttl).unwrap_or(u32::MAX))
        }
        None => (false, 0),
    }
}

/// Parses a channel name from a client: too long is 106 (limit exceeded),
/// otherwise malformed is 107, as in Centrifugo.
fn parse_channel(name: &str) -> Result<ChannelName, SessionError> {
    ChannelName::new(name).map_err(|e| match e {
        ChannelNameError::TooLong { .. } => ErrorCode::LimitExceeded.into(),
        _ => ErrorCode::BadRequest.into(),
    })
}

fn raw_bytes(raw: Option<Box<serde_json::value::RawValue>>) -> Option<Bytes> {
    raw.map(|r| Bytes::from(String::from(Box::<str>::from(r))))
}

impl Session {
    /// A session for a new connection with client id `client`; not
    /// connected until [`Session::connect`].
    pub fn new(
        node: Node,
        client: impl Into<Arc<str>>,
        factory: Arc<dyn SubscriberFactory>,
    ) -> Self {
        let per_second = node.config().client.max_commands_per_second;
        let rate =
            (per_second > 0).then(|| rate::CommandRate::new(per_second, std::time::Instant::now()));
        Self {
            node,
            client: client.into(),
            factory,
            creds: None,
            subs: Subs::default(),
            next_generation: 1,
            rate,
        }
    }

    /// Counts one command against `client.max_commands_per_second`: over
    /// it, error 111 (too many requests) and the command is not run.
    pub fn check_rate(&mut self) -> Result<(), SessionError> {
        let now = std::time::Instant::now();
        match self.rate.as_mut().map(|bucket| bucket.try_take(now)) {
            Some(false) => Err(ErrorCode::TooManyRequests.into()),
            _ => Ok(()),
        }
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The client id.
    pub fn client_id(&self) -> &Arc<str> {
        &self.client
    }

    /// The user id (empty when anonymous or not connected).
    pub fn user(&self) -> &str {
        self.creds.as_ref().map_or("", |c| &c.user)
    }

    /// The credentials, once connected.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.creds.as_ref()
    }

    /// Whether [`Session::connect`] succeeded.
    pub fn is_connected(&self) -> bool {
        self.creds.is_some()
    }

    /// Channels the connection is subscribed to.
    pub fn channels(&self) -> impl Iterator<Item = &ChannelName> {
        self.subs.keys()
    }

    /// How many subscriptions it has.
    pub fn num_subscriptions(&self) -> usize {
        self.subs.len()
    }

    /// Whether `generation` is the live subscription to `channel` (events of
    /// an earlier, replaced subscription are to be dropped).
    pub fn is_current(&self, channel: &str, generation: u64) -> bool {
        self.subs
            .get(channel)
            .is_some_and(|s| s.generation == generation)
    }

    /// How long after its expiry a connection or subscription may still
    /// refresh before it is closed: the pong timeout, the time a live
    /// client is given to answer anything.
    pub fn expiry_grace(&self) -> Duration {
        self.node.config().client.pong_timeout
    }

    fn asker(&self, channel: &ChannelName) -> Asker<'_> {
        Asker {
            user: self.user(),
            subscribed: self.subs.contains_key(channel),
            dev: self.node.config().dev,
        }
    }

    fn require_connected(&self) -> Result<&Credentials, SessionError> {
        self.creds
            .as_ref()
            .ok_or(SessionError::Disconnect(Disconnect::BAD_REQUEST))
    }

    fn info(&self, chan_info: Option<Bytes>) -> ClientInfo {
        let creds = self.creds.as_ref();
        ClientInfo {
            user: creds
                .map(|c| c.user.clone())
                .unwrap_or_else(|| Arc::from("")),
            client: self.client.clone(),
            conn_info: creds.and_then(|c| c.conn_info.clone()),
            chan_info,
        }
    }

    /// Checks a connect token. Without one, only `--dev` lets the client
    /// in (as anonymous); otherwise 101. Expired: 109 (the SDKs fetch a new
    /// token). Invalid: disconnect 3500.
    pub fn authenticate(&self, token: &str) -> Result<Credentials, SessionError> {
        if token.is_empty() {
            if self.node.config().dev {
                return Ok(Credentials::default());
            }
            return Err(ErrorCode::Unauthorized.into());
        }
        match self.node.auth().verify_connect(token) {
            Ok(claims) => Ok(Credentials {
                user: Arc::from(claims.sub),
                conn_info: raw_bytes(claims.info),
                exp: claims.exp.map(|e| e.min(now_secs() + MAX_TTL_SECS)),
                channels: claims.channels.into_boxed_slice(),
            }),
            Err(TokenError::Expired) => Err(ErrorCode::TokenExpired.into()),
            Err(TokenError::Invalid(why)) => {
                tracing::debug!(client = %self.client, %why, "invalid connection token");
                Err(Disconnect::INVALID_TOKEN.into())
            }
        }
    }

    /// Marks the session connected with `creds` and makes the token's
    /// server-side subscriptions, recovering those the client lists in
    /// `recover` (the connect request's `subs`). A server-side channel that
    /// cannot be subscribed for a lasting reason (unknown namespace, bad
    /// name) is skipped with a warning; a backend failure fails the connect
    /// (error 108, temporary: the client retries).
    pub async fn connect(
        &mut self,
        creds: Credentials,
        recover: &BTreeMap<String, proto::SubscribeRequest>,
    ) -> Result<Connected, SessionError> {
        if self.creds.is_some() {
            return Err(Disconnect::BAD_REQUEST.into());
        }
        let (expires, ttl) = expires_ttl(creds.exp);
        let channels = creds.channels.clone().into_vec();
        self.creds = Some(creds);
        let mut connected = Connected {
            expires,
            ttl,
            ..Default::default()
        };
        for name in channels {
            let channel = match ChannelName::new(&name) {
                Ok(c) => c,
                Err(err) => {
                    tracing::warn!(%name, %err, "token channel skipped");
                    continue;
                }
            };
            match self.server_subscribe(&channel, recover.get(&name)).await {
                Ok(Some(sub)) => {
                    connected.subs.insert(name, sub.result);
                    connected.activations.push(sub.activation);
                }
                Ok(None) => {}
                Err(SessionError::Reply(err)) if !err.temporary => {
                    tracing::warn!(%name, code = err.code, "token channel skipped");
                }
                Err(err) => {
                    // Undo: the client will retry the whole connect.
                    connected.activations.clear();
                    self.close().await;
                    self.creds = None;
                    return Err(err);
                }
            }
        }
        Ok(connected)
    }

    /// A client's subscribe command.
    pub async fn subscribe(
        &mut self,
        req: &proto::SubscribeRequest,
    ) -> Result<Subscription, SessionError> {
        self.require_connected()?;
        let channel = parse_channel(&req.channel)?;
        if self.subs.contains_key(&channel) {
            return Err(ErrorCode::AlreadySubscribed.into());
        }
        if self.subs.len() >= self.node.config().client.max_subscriptions {
            return Err(ErrorCode::LimitExceeded.into());
        }
        let hub = self.node.hub().clone();
        let opts = hub.options(&channel)?;
        let mut chan_info = None;
        let mut exp = None;
        if !req.token.is_empty() {
            match self.node.auth().verify_subscribe(&req.token) {
                Ok(claims) => {
                    if claims.channel != channel.as_str() || claims.sub != self.user() {
                        tracing::debug!(client = %self.client, %channel, "subscription token for another channel or user");
                        return Err(Disconnect::INVALID_TOKEN.into());
                    }
                    chan_info = raw_bytes(claims.info);
                    exp = claims.exp.map(|e| e.min(now_secs() + MAX_TTL_SECS));
                }
                Err(TokenError::Expired) => return Err(ErrorCode::TokenExpired.into()),
                Err(TokenError::Invalid(why)) => {
                    tracing::debug!(client = %self.client, %channel, %why, "invalid subscription token");
                    return Err(ErrorCode::PermissionDenied.into());
                }
            }
        } else if !permission::allowed(opts, &channel, Action::Subscribe, self.asker(&channel)) {
            return Err(ErrorCode::PermissionDenied.into());
        }
        let history = opts.history_enabled();
        let recoverable = history
            && (opts.force_recovery || ((req.recoverable || req.recover) && opts.allow_recovery));
        let positioned =
            history && (opts.force_positioning || (req.positioned && opts.allow_positioning));
        let since = (req.recover && recoverable)
            .then(|| StreamPosition::new(req.offset, req.epoch.clone()));
        let join_leave = req.join_leave && permission::join_leave_allowed(opts);
        let flags = Flags {
            recoverable,
            positioned,
            join_leave,
        };
        self.make_subscription(channel, flags, since, chan_info, exp)
            .await
    }

    /// A server-side subscription (token `channels`, the server API): no
    /// permission check. `recover` is what the client sent for the channel
    /// in its connect `subs`, if anything. `Ok(None)` when already
    /// subscribed.
    pub async fn server_subscribe(
        &mut self,
        channel: &ChannelName,
        recover: Option<&proto::SubscribeRequest>,
    ) -> Result<Option<Subscription>, SessionError> {
        self.require_connected()?;
        if self.subs.contains_key(channel) {
            return Ok(None);
        }
        let hub = self.node.hub().clone();
        let opts = hub.options(channel)?;
        let history = opts.history_enabled();
        let recoverable = history && (opts.force_recovery || opts.allow_recovery);
        let positioned = history && (opts.force_positioning || opts.allow_positioning);
        let since = recover
            .filter(|r| r.recover && recoverable)
            .map(|r| StreamPosition::new(r.offset, r.epoch.clone()));
        // Join/leave pushes only when the namespace forces them (the hub
        // decides), as for Centrifugo's server-side subscriptions.
        let flags = Flags {
            recoverable,
            positioned,
            join_leave: false,
        };
        self.make_subscription(channel.clone(), flags, since, None, None)
            .await
            .map(Some)
    }

    async fn make_subscription(
        &mut self,
        channel: ChannelName,
        flags: Flags,
        since: Option<StreamPosition>,
        chan_info: Option<Bytes>,
        exp: Option<u64>,
    ) -> Result<Subscription, SessionError> {
        let generation = self.next_generation;
        self.next_generation += 1;
        let subscriber = self.factory.subscriber(&channel, generation);
        let opts = hub::SubscribeOptions {
            info: self.info(chan_info),
            join_leave: flags.join_leave,
            recover_since: since,
        };
        let subscribed = self
            .node
            .hub()
            .subscribe(&channel, subscriber, opts)
            .await?;
        let mut result = proto::SubscribeResult {
            recoverable: flags.recoverable,
            positioned: flags.positioned,
            ..Default::default()
        };
        if let Some(position) = subscribed.result.position {
            if flags.recoverable || flags.positioned {
                result.epoch = position.epoch;
                result.offset = position.offset;
            }
        }
        if let Some(recovery) = subscribed.result.recovery {
            result.was_recovering = true;
            result.recovered = recovery.recovered;
            result.publications = recovery
                .publications
                .iter()
                .map(convert::publication)
                .collect();
        }
        let (expires, ttl) = expires_ttl(exp);
        result.expires = expires;
        result.ttl = ttl;
        self.subs.insert(channel.clone(), Sub { generation, exp });
        Ok(Subscription {
            channel,
            result,
            activation: subscribed.activation,
        })
    }

    /// Unsubscribes from `channel`; `Ok(false)` if it was not subscribed
    /// (not an error, as in Centrifugo).
    pub async fn unsubscribe(&mut self, channel: &str) -> Result<bool, SessionError> {
        self.require_connected()?;
        let channel = parse_channel(channel)?;
        Ok(self.remove(&channel).await)
    }

    async fn remove(&mut self, channel: &ChannelName) -> bool {
        if self.subs.remove(channel).is_some() {
            self.node.hub().unsubscribe(channel, &self.client).await;
            true
        } else {
            false
        }
    }

    /// A client's publish: allowed by `allow_publish_for_client`, by
    /// `allow_publish_for_subscriber` to subscribers, or by `--dev`. The
    /// publication carries the publisher's info.
    pub async fn publish(&self, channel: &str, data: proto::RawJson) -> Result<(), SessionError> {
        self.require_connected()?;
        let channel = parse_channel(channel)?;
        let hub = self.node.hub();
        let opts = hub.options(&channel)?;
        if !permission::allowed(opts, &channel, Action::Publish, self.asker(&channel)) {
            return Err(ErrorCode::PermissionDenied.into());
        }
        let request = hub::PublishRequest {
            data: data.into_bytes(),
            info: Some(self.info(None)),
            ..Default::default()
        };
        hub.publish(&channel, request).await?;
        self.node
            .metrics()
            .publications_client
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Resolves `channel` for a presence or history read and checks it:
    /// unknown namespace 102, feature off 108, not allowed 103.
    fn check_read(&self, channel: &str, action: Action) -> Result<ChannelName, SessionError> {
        self.require_connected()?;
        let channel = parse_channel(channel)?;
        let opts = self.node.hub().options(&channel)?;
        let enabled = match action {
            Action::History => opts.history_enabled(),
            _ => opts.presence,
        };
        if !enabled {
            return Err(ErrorCode::NotAvailable.into());
        }
        if !permission::allowed(opts, &channel, action, self.asker(&channel)) {
            return Err(ErrorCode::PermissionDenied.into());
        }
        Ok(channel)
    }

    /// Who is in `channel`.
    pub async fn presence(&self, channel: &str) -> Result<proto::PresenceResult, SessionError> {
        let channel = self.check_read(channel, Action::Presence)?;
        let list = self.node.hub().presence(&channel).await?;
        Ok(proto::PresenceResult {
            presence: list
                .iter()
                .map(|info| (info.client.to_string(), convert::client_info(info)))
                .collect(),
        })
    }

    /// How many are in `channel`.
    pub async fn presence_stats(
        &self,
        channel: &str,
    ) -> Result<proto::PresenceStatsResult, SessionError> {
        let channel = self.check_read(channel, Action::Presence)?;
        let stats = self.node.hub().presence_stats(&channel).await?;
        Ok(proto::PresenceStatsResult {
            num_clients: u32::try_from(stats.num_clients).unwrap_or(u32::MAX),
            num_users: u32::try_from(stats.num_users).unwrap_or(u32::MAX),
        })
    }

    /// `channel`'s history. `limit` 0 returns only the position, a negative
    /// limit everything kept; `since` continues from a position (112 when
    /// that cannot be done without a gap).
    pub async fn history(
        &self,
        req: &proto::HistoryRequest,
    ) -> Result<proto::HistoryResult, SessionError> {
        let channel = self.check_read(&req.channel, Action::History)?;
        let filter = hub::HistoryFilter {
            since: req
                .since
                .as_ref()
                .map(|s| StreamPosition::new(s.offset, s.epoch.clone())),
            limit: usize::try_from(req.limit).ok(),
            reverse: req.reverse,
        };
        let result = self.node.hub().history(&channel, filter).await?;
        Ok(proto::HistoryResult {
            publications: result
                .publications
                .iter()
                .map(convert::publication)
                .collect(),
            epoch: result.position.epoch,
            offset: result.position.offset,
        })
    }

    /// A client's refresh with a new connection token. An expired token
    /// closes with 3005 (expired), an invalid one or one for another user
    /// with 3500.
    pub fn refresh(&mut self, token: &str) -> Result<proto::RefreshResult, SessionError> {
        self.require_connected()?;
        if token.is_empty() {
            return Err(Disconnect::BAD_REQUEST.into());
        }
        let claims = match self.node.auth().verify_connect(token) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => return Err(Disconnect::EXPIRED.into()),
            Err(TokenError::Invalid(why)) => {
                tracing::debug!(client = %self.client, %why, "invalid refresh token");
                return Err(Disconnect::INVALID_TOKEN.into());
            }
        };
        let Some(creds) = self.creds.as_mut() else {
            return Err(Disconnect::BAD_REQUEST.into());
        };
        if claims.sub != *creds.user {
            return Err(Disconnect::INVALID_TOKEN.into());
        }
        creds.exp = claims.exp.map(|e| e.min(now_secs() + MAX_TTL_SECS));
        let (expires, ttl) = expires_ttl(creds.exp);
        Ok(proto::RefreshResult {
            client: self.client.to_string(),
            version: VERSION.to_owned(),
            expires,
            ttl,
        })
    }

    /// A client's sub_refresh with a new subscription token: 103 when not
    /// subscribed, 107 without a token, 110 when it has expired already,
    /// 3500 when invalid or for another channel or user.
    pub fn sub_refresh(
        &mut self,
        req: &proto::SubRefreshRequest,
    ) -> Result<proto::SubRefreshResult, SessionError> {
        self.require_connected()?;
        let channel = parse_channel(&req.channel)?;
        if !self.subs.contains_key(&channel) {
            return Err(ErrorCode::PermissionDenied.into());
        }
        if req.token.is_empty() {
            return Err(ErrorCode::BadRequest.into());
        }
        let claims = match self.node.auth().verify_subscribe(&req.token) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => return Err(ErrorCode::Expired.into()),
            Err(TokenError::Invalid(why)) => {
                tracing::debug!(client = %self.client, %channel, %why, "invalid subscription refresh token");
                return Err(Disconnect::INVALID_TOKEN.into());
            }
        };
        if claims.channel != channel.as_str() || claims.sub != self.user() {
            return Err(Disconnect::INVALID_TOKEN.into());
        }
        let exp = claims.exp.map(|e| e.min(now_secs() + MAX_TTL_SECS));
        if let Some(sub) = self.subs.get_mut(&channel) {
            sub.exp = exp;
        }
        let (expires, ttl) = expires_ttl(exp);
        Ok(proto::SubRefreshResult { expires, ttl })
    }

    /// When the connection expires (Unix seconds).
    pub fn expires_at(&self) -> Option<u64> {
        self.creds.as_ref().and_then(|c| c.exp)
    }

    /// The earliest subscription expiry (Unix seconds).
    pub fn next_subscription_expiry(&self) -> Option<u64> {
        self.subs.values().filter_map(|s| s.exp).min()
    }

    /// Unsubscribes every subscription whose token expired at or before
    /// `until` (Unix seconds) and returns their channels, for the transport
    /// to tell the client (unsubscribe code 2501: resubscribe with a new
    /// token).
    pub async fn expire_subscriptions(&mut self, until: u64) -> Vec<ChannelName> {
        let expired: Vec<ChannelName> = self
            .subs
            .iter()
            .filter(|(_, s)| s.exp.is_some_and(|e| e <= until))
            .map(|(c, _)| c.clone())
            .collect();
        for channel in &expired {
            self.remove(channel).await;
        }
        expired
    }

    /// Unsubscribes from everything (the connection is going away).
    pub async fn close(&mut self) {
        let channels = self.subs.take_channels();
        for channel in channels {
            self.node.hub().unsubscribe(&channel, &self.client).await;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Flags {
    recoverable: bool,
    positioned: bool,
    join_leave: bool,
}
