//! [`RedisBroker`]: the hub's [`Broker`] over Redis pub/sub.
//!
//! Owns the broker side of the trait: registering the hub's handler,
//! per-channel subscribe/unsubscribe (delegated to [`crate::pubsub`]), and
//! publishing joins, leaves and, when the store does not, publications.
//! With [`fan_out_from_store`](crate::RedisConfig::fan_out_from_store) on
//! (the default), [`Broker::publish`] does nothing: the hub always stores a
//! publication before handing it to the broker, and the store's publish
//! already published it to the channel's topic, in the same script call.

use std::sync::Arc;

use hub::{
    BoxFuture, Broker, BrokerHandler, ChannelName, EncodedPublication, Error, JoinLeave, Result,
};

use crate::conn::Command;
use crate::pubsub::BrokerStats;
use crate::wire;
use crate::{Core, RedisHealth};

/// The Redis [`Broker`]. Serves one hub (the last handler registered gets
/// the messages). Get one from [`RedisBackend::broker`](crate::RedisBackend::broker).
#[derive(Clone)]
pub struct RedisBroker {
    core: Arc<Core>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("prefix", &self.core.config.prefix)
            .field("stats", &self.stats())
            .finish()
    }
}

impl RedisBroker {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// The connections' state, for `/health` and metrics.
    pub fn health(&self) -> RedisHealth {
        self.core.health.snapshot()
    }

    /// What this node received over pub/sub so far.
    pub fn stats(&self) -> BrokerStats {
        self.core.subs.stats()
    }

    fn publish_message(&self, channel: &str, message: Vec<u8>) -> BoxFuture<'static, Result<()>> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.core.keys.topic(channel)).arg(message);
        let reply = self.core.commands.send(Command::Plain(cmd));
        Box::pin(async move {
            reply.await.map_err(Error::broker)?;
            Ok(())
        })
    }
}

impl Broker for RedisBroker {
    fn register(&self, handler: Arc<dyn BrokerHandler>) {
        self.core.subs.set_handler(handler);
    }

    fn publish(&self, publication: &Arc<EncodedPublication>) -> BoxFuture<'static, Result<()>> {
        if self.core.config.fan_out_from_store {
            // The store's publish already sent it (see the module docs).
            return hub::ready(Ok(()));
        }
        let message = wire::encode_publication_message(
            publication.offset(),
            publication.epoch(),
            &wire::encode_body(publication.publication()),
        );
        self.publish_message(publication.channel(), message)
    }

    fn publish_join_leave(&self, event: &Arc<JoinLeave>) -> BoxFuture<'static, Result<()>> {
        let message = wire::encode_join_leave(event.kind(), event.info());
        self.publish_message(event.channel(), message)
    }

    fn subscribe(&self, channel: &ChannelName) -> BoxFuture<'static, Result<()>> {
        let core = self.core.clone();
        let channel = channel.clone();
        Box::pin(async move { core.subs.subscribe(&channel).await.map_err(Error::broker) })
    }

    fn unsubscribe(&self, channel: &ChannelName) -> BoxFuture<'static, Result<()>> {
        let core = self.core.clone();
        let channel = channel.clone();
        Box::pin(async move { core.subs.unsubscribe(&channel).await.map_err(Error::broker) })
    }
}
