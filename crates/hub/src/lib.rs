//! The heart of the duplex server: channels, publications, history,
//! recovery, presence, and the local fan-out, behind traits that let a
//! single node run in memory and many nodes share SQLite or Redis.
//!
//! - [`channel`]: channel names, namespaces, user-limited channels.
//! - [`namespace`]: per-namespace options from config.
//! - [`Store`] / [`MemoryStore`]: per-channel streams with offsets, epochs,
//!   history size and TTL, idempotent publishing.
//! - [`recovery`]: whether a client can catch up from its last position.
//! - [`PresenceStore`] / [`MemoryPresence`]: who is subscribed.
//! - [`Broker`] / [`LocalBroker`]: fan-out between nodes, subscribed per channel.
//! - [`Hub`]: this node's subscribers and the publish path tying it together.
//!
//! No wire formats live here: payloads are raw JSON bytes, and transports
//! encode what the hub hands them ([`EncodedPublication`] lets them do so
//! once per publication and format). Backend traits return boxed futures so
//! they work as trait objects (`Arc<dyn Store>`); the in-memory backends
//! answer with futures that are already complete.
//!
//! ```
//! use std::sync::Arc;
//! use hub::{ClientInfo, EncodedPublication, Hub, Namespaces, NamespaceOptions,
//!           PublishRequest, SubscribeOptions, Subscriber};
//!
//! struct Collect(std::sync::Mutex<Vec<u64>>);
//! impl Subscriber for Collect {
//!     fn deliver(&self, p: &Arc<EncodedPublication>) -> bool {
//!         self.0.lock().unwrap().push(p.offset());
//!         true
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let options = NamespaceOptions {
//!     history_size: 100,
//!     history_ttl: std::time::Duration::from_secs(300),
//!     ..Default::default()
//! };
//! let hub = Hub::builder(Namespaces::with_default(options).unwrap()).build();
//! let channel = "news".parse().unwrap();
//! let seen = Arc::new(Collect(Default::default()));
//! let opts = SubscribeOptions { info: ClientInfo::new("42", "c1"), ..Default::default() };
//! let subscribed = hub.subscribe(&channel, seen.clone(), opts).await.unwrap();
//! subscribed.activation.activate();
//! hub.publish(&channel, PublishRequest::new("1")).await.unwrap();
//! hub.publish(&channel, PublishRequest::new("2")).await.unwrap();
//! assert_eq!(*seen.0.lock().unwrap(), [1, 2]);
//! # });
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod broker;
pub mod channel;
mod error;
mod hub;
pub mod namespace;
mod presence;
mod publication;
pub mod recovery;
pub mod store;
mod util;

pub use broker::{Broker, BrokerHandler, LocalBroker};
pub use channel::{ChannelName, ChannelNameError};
pub use error::{BoxError, Error, Result};
pub use hub::{
    Activation, Hub, HubBuilder, HubConfig, HubStats, PublishRequest, SubscribeOptions,
    SubscribeResult, Subscribed, Subscriber,
};
pub use namespace::{NamespaceConfig, NamespaceOptions, Namespaces};
pub use presence::{MemoryPresence, PresenceStats, PresenceStore};
pub use publication::{
    ClientInfo, EncodeCache, EncodedPublication, JoinLeave, JoinLeaveKind, Publication,
    StreamPosition,
};
pub use recovery::Recovery;
pub use store::{
    HistoryFilter, HistoryResult, MemoryStore, MemoryStoreConfig, PublishOptions, PublishResult,
    Store,
};
pub use util::{ready, BoxFuture};
