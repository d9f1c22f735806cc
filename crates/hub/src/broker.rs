//! The [`Broker`]: fan-out between nodes.
//!
//! Every node's [`Hub`](crate::Hub) publishes through the broker, and the
//! broker hands each publication to every node that is subscribed to its
//! channel, this node included, through the node's [`BrokerHandler`]. The
//! hub delivers to local subscribers only what comes back from the broker,
//! so all nodes see a channel's publications in the same order.
//!
//! Subscriptions are per channel and targeted: the hub calls
//! [`Broker::subscribe`] when a channel gets its first local subscriber and
//! [`Broker::unsubscribe`] after its last one leaves, never both at once for
//! one channel. A Redis broker maps these to `SUBSCRIBE`/`UNSUBSCRIBE` on a
//! per-channel topic.
//!
//! [`LocalBroker`] is the single-node broker: it loops publications straight
//! back to this node's handler.
//!
//! # Contract
//!
//! - `publish` fixes the order when it is called: two calls for one channel
//!   reach every handler in call order. The returned future reports the
//!   outcome; dropping it does not cancel the publish.
//! - Handlers are called one publication at a time per channel, from
//!   whatever task the broker uses; they must not block.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::channel::ChannelName;
use crate::error::Result;
use crate::publication::{EncodedPublication, JoinLeave};
use crate::util::{lock, ready, BoxFuture};

/// What a broker calls with what arrives for this node. The hub implements it.
pub trait BrokerHandler: Send + Sync + 'static {
    /// A publication for a channel this node is subscribed to.
    fn handle_publication(&self, publication: Arc<EncodedPublication>);

    /// A join or leave in a channel this node is subscribed to.
    fn handle_join_leave(&self, event: Arc<JoinLeave>);
}

/// Fan-out between nodes: every node's hub publishes through it, and it
/// hands each publication to every node subscribed to the channel, the
/// publishing node included, through that node's [`BrokerHandler`].
///
/// Contract: `publish` fixes the order when it is called, so two calls for
/// one channel reach every handler in call order; the returned future only
/// reports the outcome, and dropping it does not cancel the publish.
/// Handlers get one event at a time per channel and must not block. The hub
/// subscribes a channel when it gets its first local subscriber and
/// unsubscribes it after the last, never both at once for one channel.
pub trait Broker: Send + Sync + 'static {
    /// Sets the handler that gets this node's incoming publications and
    /// events. The hub calls this once, when it is built.
    fn register(&self, handler: Arc<dyn BrokerHandler>);

    /// Sends a publication to every node subscribed to its channel.
    fn publish(&self, publication: &Arc<EncodedPublication>) -> BoxFuture<'static, Result<()>>;

    /// Sends a join or leave to every node subscribed to its channel.
    fn publish_join_leave(&self, event: &Arc<JoinLeave>) -> BoxFuture<'static, Result<()>>;

    /// Starts receiving `channel`'s publications on this node.
    fn subscribe(&self, channel: &ChannelName) -> BoxFuture<'static, Result<()>>;

    /// Stops receiving `channel`'s publications on this node.
    fn unsubscribe(&self, channel: &ChannelName) -> BoxFuture<'static, Result<()>>;
}

/// The single-node broker: whatever is published for a subscribed channel
/// goes straight to the registered handler, synchronously, inside `publish`.
/// Serves one hub.
#[derive(Default)]
pub struct LocalBroker {
    handler: Mutex<Option<Arc<dyn BrokerHandler>>>,
    subscribed: Mutex<HashSet<ChannelName>>,
}

impl std::fmt::Debug for LocalBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBroker")
            .field("subscribed", &lock(&self.subscribed).len())
            .finish()
    }
}

impl LocalBroker {
    /// A broker with no handler and no subscriptions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether this node is subscribed to `channel`.
    pub fn is_subscribed(&self, channel: &str) -> bool {
        lock(&self.subscribed).contains(channel)
    }

    /// The channels this node is subscribed to, sorted.
    pub fn subscribed_channels(&self) -> Vec<ChannelName> {
        let mut channels: Vec<ChannelName> = lock(&self.subscribed).iter().cloned().collect();
        channels.sort();
        channels
    }

    /// The handler, if the channel is subscribed. Cloned out so that the
    /// handler runs without this broker's locks held.
    fn target(&self, channel: &str) -> Option<Arc<dyn BrokerHandler>> {
        if !lock(&self.subscribed).contains(channel) {
            return None;
        }
        lock(&self.handler).clone()
    }
}

impl Broker for LocalBroker {
    fn register(&self, handler: Arc<dyn BrokerHandler>) {
        *lock(&self.handler) = Some(handler);
    }

    fn publish(&self, publication: &Arc<EncodedPublication>) -> BoxFuture<'static, Result<()>> {
        if let Some(handler) = self.target(publication.channel()) {
            handler.handle_publication(publication.clone());
        }
        ready(Ok(()))
    }

    fn publish_join_leave(&self, event: &Arc<JoinLeave>) -> BoxFuture<'static, Result<()>> {
        if let Some(handler) = self.target(event.channel()) {
            handler.handle_join_leave(event.clone());
        }
        ready(Ok(()))
    }

    fn subscribe(&self, channel: &ChannelName) -> BoxFuture<'static, Result<()>> {
        lock(&self.subscribed).insert(channel.clone());
        ready(Ok(()))
    }

    fn unsubscribe(&self, channel: &ChannelName) -> BoxFuture<'static, Result<()>> {
        lock(&self.subscribed).remove(channel.as_str());
        ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publication::{ClientInfo, JoinLeaveKind, Publication};

    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);

    impl BrokerHandler for Seen {
        fn handle_publication(&self, p: Arc<EncodedPublication>) {
            lock(&self.0).push(format!("pub {} {}", p.channel(), p.offset()));
        }
        fn handle_join_leave(&self, e: Arc<JoinLeave>) {
            lock(&self.0).push(format!(
                "{:?} {} {}",
                e.kind(),
                e.channel(),
                e.info().client
            ));
        }
    }

    #[tokio::test]
    async fn delivers_only_subscribed_channels() {
        let broker = LocalBroker::new();
        let seen = Arc::new(Seen::default());
        broker.register(seen.clone());
        let a = ChannelName::new("a").unwrap();
        let b = ChannelName::new("b").unwrap();
        let publication = |c: &ChannelName, offset| {
            Arc::new(EncodedPublication::new(
                c.clone(),
                Publication {
                    offset,
                    ..Publication::new("1")
                },
                "e",
            ))
        };
        broker.subscribe(&a).await.unwrap();
        broker.publish(&publication(&a, 1)).await.unwrap();
        broker.publish(&publication(&b, 1)).await.unwrap();
        let join = Arc::new(JoinLeave::new(
            JoinLeaveKind::Join,
            a.clone(),
            ClientInfo::new("u", "c"),
        ));
        broker.publish_join_leave(&join).await.unwrap();
        assert!(broker.is_subscribed("a") && !broker.is_subscribed("b"));
        assert_eq!(broker.subscribed_channels(), std::slice::from_ref(&a));
        broker.unsubscribe(&a).await.unwrap();
        broker.publish(&publication(&a, 2)).await.unwrap();
        assert_eq!(*lock(&seen.0), ["pub a 1", "Join a c"]);
        assert!(broker.subscribed_channels().is_empty());
    }
}
