//! [`RedisControl`]: what the nodes of a cluster say to each other outside
//! channels: who is alive ([`announce`](RedisControl::announce) /
//! [`nodes`](RedisControl::nodes)) and messages to every node or to one
//! ([`broadcast`](RedisControl::broadcast), [`send`](RedisControl::send)).
//!
//! This module owns the Redis side only: the node registry (a hash of node
//! id to what the node announced, with a sorted set of expiry times beside
//! it, like presence), and the control topics on the same subscription
//! connection as the channels, subscribed again after every reconnect. What
//! the messages mean is the caller's (the server's cluster module): here
//! they are bytes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use crate::conn::Command;
use crate::error::RedisBackendError;
use crate::presence::parse_pairs;
use crate::store::{as_u64, millis};
use crate::Core;

/// What a node does with the control messages it receives. Called on the
/// subscription task, one message at a time, in the order Redis sent them:
/// it must not block (spawn anything that waits).
pub trait ControlHandler: Send + Sync + 'static {
    /// A message sent to every node, or to this one.
    fn handle_control(&self, message: &[u8]);
}

/// Node-to-node control over Redis. Cheap to clone; get one from
/// [`RedisBackend::control`](crate::RedisBackend::control).
#[derive(Clone)]
pub struct RedisControl {
    core: Arc<Core>,
}

impl std::fmt::Debug for RedisControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisControl")
            .field("prefix", &self.core.config.prefix)
            .finish()
    }
}

impl RedisControl {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    fn registry_keys(&self) -> Vec<Vec<u8>> {
        vec![
            self.core.keys.nodes().into_bytes(),
            self.core.keys.nodes_expiry().into_bytes(),
        ]
    }

    /// Starts receiving control messages as node `node`: those broadcast
    /// to every node and those sent to `node`, handed to `handler`. While
    /// connected, resolves once Redis confirmed both subscriptions; while
    /// not, they are made as soon as the connection is up (and, like every
    /// subscription, again after each reconnect), and this resolves at
    /// once. A backend serves one handler; a second call replaces the
    /// first's handler.
    pub async fn listen(
        &self,
        node: &str,
        handler: Arc<dyn ControlHandler>,
    ) -> Result<(), RedisBackendError> {
        let subs = &self.core.subs;
        subs.set_control_handler(Some(handler));
        subs.want_topic(self.core.keys.control()).await?;
        subs.want_topic(self.core.keys.control_of(node)).await
    }

    /// Stops handing control messages to the handler and drops it (which
    /// breaks any reference cycle through it); unsubscribes the topics.
    pub async fn stop(&self, node: &str) {
        let subs = &self.core.subs;
        subs.set_control_handler(None);
        let _ = subs.unsubscribe_topic(self.core.keys.control()).await;
        let _ = subs
            .unsubscribe_topic(self.core.keys.control_of(node))
            .await;
    }

    fn publish(
        &self,
        topic: String,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<u64, RedisBackendError>> + Send + 'static {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(topic).arg(message);
        let reply = self.core.commands.send(Command::Plain(cmd));
        async move { as_u64(&reply.await?, "publish reply") }
    }

    /// Sends `message` to every listening node, this one included. Resolves
    /// to how many nodes received it.
    pub fn broadcast(
        &self,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<u64, RedisBackendError>> + Send + 'static {
        self.publish(self.core.keys.control(), message)
    }

    /// Sends `message` to node `node`. Resolves to 1 if it is listening, 0
    /// if not.
    pub fn send(
        &self,
        node: &str,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<u64, RedisBackendError>> + Send + 'static {
        self.publish(self.core.keys.control_of(node), message)
    }

    /// Lists node `node` as alive with `info` for `ttl`; call again before
    /// `ttl` passes to stay listed.
    pub fn announce(
        &self,
        node: &str,
        info: Vec<u8>,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), RedisBackendError>> + Send + 'static {
        let command = Command::script(
            &self.core.scripts.presence_add,
            self.registry_keys(),
            vec![
                node.as_bytes().to_vec(),
                info,
                millis(ttl).to_string().into_bytes(),
            ],
        );
        let reply = self.core.commands.send(command);
        async move {
            reply.await?;
            Ok(())
        }
    }

    /// Takes node `node` off the list at once (on a clean shutdown).
    pub fn withdraw(
        &self,
        node: &str,
    ) -> impl Future<Output = Result<(), RedisBackendError>> + Send + 'static {
        let command = Command::script(
            &self.core.scripts.presence_remove,
            self.registry_keys(),
            vec![node.as_bytes().to_vec()],
        );
        let reply = self.core.commands.send(command);
        async move {
            reply.await?;
            Ok(())
        }
    }

    /// The nodes announced and not expired, as (node id, info), sorted by id.
    pub fn nodes(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, RedisBackendError>> + Send + 'static
    {
        let command = Command::script(
            &self.core.scripts.presence_read,
            self.registry_keys(),
            vec![],
        );
        let reply = self.core.commands.send(command);
        async move {
            let reply: Value = reply.await?;
            let mut nodes = parse_pairs(reply)?;
            nodes.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(nodes)
        }
    }
}
