//! Small shared pieces: boxed futures, poison-tolerant locking, sharded maps,
//! epoch generation.

use std::future::Future;
use std::hash::{BuildHasher, Hash, RandomState};
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A boxed, `Send` future: what the [`Store`](crate::Store),
/// [`Broker`](crate::Broker) and [`PresenceStore`](crate::PresenceStore)
/// traits return, so that they can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A future that is already complete. Memory backends answer with these.
pub fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

/// Locks `m`, ignoring poisoning: every critical section in this crate leaves
/// its data consistent at each step, so a panic elsewhere does not make it
/// unusable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Polls `fut` once without a real waker: the fast path for futures from
/// memory backends, which are ready at once.
pub(crate) fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(fut).poll(&mut cx)
}

/// A map split over several mutexes by key hash, so that unrelated channels
/// rarely contend.
pub(crate) struct Shards<T> {
    shards: Box<[Mutex<T>]>,
    hasher: RandomState,
}

impl<T: Default> Shards<T> {
    pub(crate) fn new(count: usize) -> Self {
        let count = count.max(1);
        Self {
            shards: (0..count).map(|_| Mutex::new(T::default())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl<T> Shards<T> {
    pub(crate) fn index<K: Hash + ?Sized>(&self, key: &K) -> usize {
        (self.hasher.hash_one(key) as usize) % self.shards.len()
    }

    pub(crate) fn lock<K: Hash + ?Sized>(&self, key: &K) -> MutexGuard<'_, T> {
        lock(&self.shards[self.index(key)])
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Mutex<T>> {
        self.shards.iter()
    }
}

/// A fresh random epoch: 8 alphanumeric characters.
pub(crate) fn new_epoch() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_random_and_short() {
        let a = new_epoch();
        let b = new_epoch();
        assert_eq!(a.len(), 8);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn shards_route_consistently() {
        let shards: Shards<Vec<u32>> = Shards::new(8);
        shards.lock("a").push(1);
        shards.lock("a").push(2);
        assert_eq!(*shards.lock("a"), [1, 2]);
        assert_eq!(shards.iter().map(|s| lock(s).len()).sum::<usize>(), 2);
    }

    #[test]
    fn poll_once_sees_ready() {
        let mut f = ready(5);
        assert_eq!(poll_once(&mut f), Poll::Ready(5));
    }
}
