//! What flows through channels: publications, their stream positions, client
//! info, join/leave events, and the shared envelope that lets transports
//! encode each of them once.
//!
//! Payloads stay raw: `data` is the JSON the publisher sent, as bytes. The
//! hub never parses it; the transports splice it into their frames.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;

use crate::channel::ChannelName;
use crate::util::lock;

/// Who a client is, as presence and publications show it: Centrifugo's
/// `ClientInfo`. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientInfo {
    /// The user id; empty for an anonymous user.
    pub user: Arc<str>,
    /// The connection's client id, unique per connection.
    pub client: Arc<str>,
    /// Raw JSON from the connection token's `info` claim, if any.
    pub conn_info: Option<Bytes>,
    /// Raw JSON attached to this subscription (subscription token `info`), if any.
    pub chan_info: Option<Bytes>,
}

impl ClientInfo {
    /// Info with a user and a client id and no attached JSON.
    pub fn new(user: impl Into<Arc<str>>, client: impl Into<Arc<str>>) -> Self {
        Self {
            user: user.into(),
            client: client.into(),
            conn_info: None,
            chan_info: None,
        }
    }
}

/// A place in a channel's stream: the offset of the last publication and the
/// stream's epoch.
///
/// The zero value (offset 0, empty epoch) means "no position": what a
/// publication that skipped history gets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct StreamPosition {
    /// The offset of the last publication in the stream; 0 before any.
    pub offset: u64,
    /// The stream's epoch: changes whenever the stream's history is lost, so
    /// that offsets from an older epoch are never taken for current ones.
    pub epoch: String,
}

impl StreamPosition {
    /// A position from its parts.
    pub fn new(offset: u64, epoch: impl Into<String>) -> Self {
        Self {
            offset,
            epoch: epoch.into(),
        }
    }

    /// Whether this is the zero "no position" value.
    pub fn is_zero(&self) -> bool {
        self.offset == 0 && self.epoch.is_empty()
    }
}

/// One message published into a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// Its offset in the channel's stream (first is 1); 0 when the
    /// publication did not go into history.
    pub offset: u64,
    /// The payload: raw JSON, exactly as published.
    pub data: Bytes,
    /// The publishing client, when a client published it.
    pub info: Option<ClientInfo>,
    /// Key/value tags the publisher attached.
    pub tags: BTreeMap<String, String>,
    /// When it was published.
    pub time: SystemTime,
}

impl Publication {
    /// A publication of `data` stamped now, with no offset yet, no info, no tags.
    pub fn new(data: impl Into<Bytes>) -> Self {
        Self {
            offset: 0,
            data: data.into(),
            info: None,
            tags: BTreeMap::new(),
            time: SystemTime::now(),
        }
    }
}

/// Per-format encodings of one message, computed once and shared by every
/// subscriber that wants that format.
///
/// Each format is a type: a transport defines a newtype for its encoding
/// (say `struct JsonPush(Bytes)`) and asks for it by type. The first caller
/// encodes; later callers get a clone of the stored value, so the value
/// should be cheap to clone (`Bytes`, an `Arc`, a shared frame).
///
/// The first format stored is read without a lock (a fan-out to 10,000
/// subscribers of one transport asks for it 10,000 times); further formats
/// wait behind a mutex.
#[derive(Default)]
pub struct EncodeCache {
    first: OnceLock<Slot>,
    rest: Mutex<Vec<Slot>>,
}

type Slot = (TypeId, Box<dyn Any + Send + Sync>);

impl EncodeCache {
    /// The cached `T`, or `encode()` stored and returned. `encode` runs
    /// without a lock held, so it may itself use the cache; if two callers
    /// race, both encode and the first to finish is kept.
    pub fn get_or_insert_with<T>(&self, encode: impl FnOnce() -> T) -> T
    where
        T: Any + Clone + Send + Sync,
    {
        if let Some(found) = self.get::<T>() {
            return found;
        }
        let value = encode();
        if self.first.get().is_none() {
            let slot: Slot = (TypeId::of::<T>(), Box::new(value.clone()));
            if self.first.set(slot).is_ok() {
                return value;
            }
            // Another format (or this one, from a racing caller) won.
            if let Some(found) = self.get::<T>() {
                return found;
            }
        }
        let mut rest = lock(&self.rest);
        if let Some(found) = find::<T>(&rest) {
            return found;
        }
        rest.push((TypeId::of::<T>(), Box::new(value.clone())));
        value
    }

    /// The cached `T`, if some caller encoded it already.
    pub fn get<T>(&self) -> Option<T>
    where
        T: Any + Clone + Send + Sync,
    {
        let first = self.first.get()?;
        if let Some(found) = find::<T>(std::slice::from_ref(first)) {
            return Some(found);
        }
        find::<T>(&lock(&self.rest))
    }

    fn formats(&self) -> usize {
        usize::from(self.first.get().is_some()) + lock(&self.rest).len()
    }
}

fn find<T: Any + Clone>(slots: &[Slot]) -> Option<T> {
    slots
        .iter()
        .find(|(id, _)| *id == TypeId::of::<T>())
        .and_then(|(_, v)| v.downcast_ref::<T>())
        .cloned()
}

impl fmt::Debug for EncodeCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodeCache")
            .field("formats", &self.formats())
            .finish()
    }
}

/// A publication on its way to subscribers: the channel, the publication, the
/// stream's epoch, and an [`EncodeCache`]. The hub hands every subscriber the
/// same `Arc`, so a transport encodes each format once per publication and
/// shares the bytes.
#[derive(Debug)]
pub struct EncodedPublication {
    channel: ChannelName,
    publication: Publication,
    epoch: Arc<str>,
    cache: EncodeCache,
}

impl EncodedPublication {
    /// Wraps a publication of `channel` whose stream has `epoch` (empty when
    /// the publication has no offset).
    pub fn new(channel: ChannelName, publication: Publication, epoch: impl Into<Arc<str>>) -> Self {
        Self {
            channel,
            publication,
            epoch: epoch.into(),
            cache: EncodeCache::default(),
        }
    }

    /// The channel it was published to.
    pub fn channel(&self) -> &ChannelName {
        &self.channel
    }

    /// The publication.
    pub fn publication(&self) -> &Publication {
        &self.publication
    }

    /// Its offset (0 if it has none).
    pub fn offset(&self) -> u64 {
        self.publication.offset
    }

    /// The epoch of the stream it belongs to (empty if it has no offset).
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    pub(crate) fn epoch_arc(&self) -> &Arc<str> {
        &self.epoch
    }

    /// The stream position right after this publication.
    pub fn position(&self) -> StreamPosition {
        StreamPosition::new(self.publication.offset, &*self.epoch)
    }

    /// The encoding `T` of this publication, computed by `encode` on first use
    /// and shared afterwards. See [`EncodeCache`].
    pub fn encoded<T>(&self, encode: impl FnOnce(&Self) -> T) -> T
    where
        T: Any + Clone + Send + Sync,
    {
        self.cache.get_or_insert_with(|| encode(self))
    }
}

/// Whether a client joined or left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinLeaveKind {
    /// A client subscribed.
    Join,
    /// A client unsubscribed.
    Leave,
}

/// A join or leave in a channel, shared by its subscribers like
/// [`EncodedPublication`].
#[derive(Debug)]
pub struct JoinLeave {
    kind: JoinLeaveKind,
    channel: ChannelName,
    info: ClientInfo,
    cache: EncodeCache,
}

impl JoinLeave {
    /// An event of `kind` for the client `info` in `channel`.
    pub fn new(kind: JoinLeaveKind, channel: ChannelName, info: ClientInfo) -> Self {
        Self {
            kind,
            channel,
            info,
            cache: EncodeCache::default(),
        }
    }

    /// Join or leave.
    pub fn kind(&self) -> JoinLeaveKind {
        self.kind
    }

    /// The channel.
    pub fn channel(&self) -> &ChannelName {
        &self.channel
    }

    /// The client that joined or left.
    pub fn info(&self) -> &ClientInfo {
        &self.info
    }

    /// The encoding `T` of this event, computed once. See [`EncodeCache`].
    pub fn encoded<T>(&self, encode: impl FnOnce(&Self) -> T) -> T
    where
        T: Any + Clone + Send + Sync,
    {
        self.cache.get_or_insert_with(|| encode(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Clone, Debug, PartialEq)]
    struct Json(Bytes);
    #[derive(Clone, Debug, PartialEq)]
    struct SocketIo(Bytes);

    #[test]
    fn encodes_once_per_format() {
        let p = EncodedPublication::new(
            ChannelName::new("c").unwrap(),
            Publication::new(Bytes::from_static(b"{}")),
            "e",
        );
        let calls = AtomicUsize::new(0);
        for _ in 0..3 {
            let j = p.encoded(|p| {
                calls.fetch_add(1, Ordering::Relaxed);
                Json(p.publication().data.clone())
            });
            assert_eq!(j, Json(Bytes::from_static(b"{}")));
        }
        let s = p.encoded(|_| {
            calls.fetch_add(1, Ordering::Relaxed);
            SocketIo(Bytes::from_static(b"42"))
        });
        assert_eq!(s.0, Bytes::from_static(b"42"));
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        assert_eq!(p.cache.get::<Json>(), Some(Json(Bytes::from_static(b"{}"))));
    }

    #[test]
    fn nested_encoding_does_not_deadlock() {
        let cache = EncodeCache::default();
        let outer = cache.get_or_insert_with(|| {
            let inner = cache.get_or_insert_with(|| 1u32);
            u64::from(inner) + 1
        });
        assert_eq!(outer, 2);
        assert_eq!(cache.get::<u32>(), Some(1));
    }

    #[test]
    fn zero_position() {
        assert!(StreamPosition::default().is_zero());
        assert!(!StreamPosition::new(0, "e").is_zero());
    }
}
