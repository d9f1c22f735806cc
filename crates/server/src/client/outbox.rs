//! The queue between the hub (and the server API) and one WebSocket
//! connection's task.
//!
//! Owns [`Outbox`]: publications, joins and leaves arrive here from the
//! hub's fan-out ([`WsSubscriber`], called synchronously and never
//! blocking) and server commands from the registry ([`WsHandle`]); the
//! connection task drains them in arrival order into its socket. Each
//! publication is encoded once per node into a shared WebSocket frame
//! (cached on the [`hub::EncodedPublication`]), so a thousand subscribers
//! cost one encoding and a thousand reference counts.
//!
//! The outbox counts the bytes waiting in it plus what the socket has not
//! written yet; past the connection's limit it refuses further events and
//! flags the connection slow, and the task closes it with 3008. An idle
//! outbox holds no allocation. It does not know the protocol's rules:
//! which events are stale is the task's question (generations).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use centrifuge_proto as proto;
use hub::{ChannelName, EncodedPublication, JoinLeave, JoinLeaveKind, Subscriber};
use tokio::sync::Notify;
use ws::SharedFrame;

use crate::node::{ClientHandle, ServerCommand, Transport};
use crate::session::{convert, SubscriberFactory};

/// One thing for the connection task to send or do.
#[derive(Debug)]
pub(crate) enum Item {
    /// A push (publication, join, leave) of subscription `generation`.
    Event {
        channel: ChannelName,
        generation: u64,
        frame: SharedFrame,
    },
    /// An order from the server side.
    Command(ServerCommand),
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Item>,
    bytes: usize,
    slow: bool,
    closed: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    max_bytes: usize,
    /// Bytes the socket holds unwritten, as last seen by the task.
    io_backlog: AtomicUsize,
}

impl Outbox {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            max_bytes,
            io_backlog: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an event; `false` (and the connection flagged slow) when it
    /// would exceed the limit, or when the connection is closing.
    pub(crate) fn push_event(
        &self,
        channel: &ChannelName,
        generation: u64,
        frame: SharedFrame,
    ) -> bool {
        let len = frame.wire_bytes().len();
        let mut state = self.lock();
        if state.closed || state.slow {
            return false;
        }
        let backlog = self.io_backlog.load(Ordering::Relaxed);
        if state.bytes + backlog + len > self.max_bytes {
            state.slow = true;
            drop(state);
            self.notify.notify_one();
            return false;
        }
        state.bytes += len;
        // Only the first item of a batch wakes the task: it takes the whole
        // queue at once, so later pushes before that need no wake-up (on a
        // busy channel this saves an atomic handshake per delivery).
        let was_empty = state.items.is_empty();
        state.items.push_back(Item::Event {
            channel: channel.clone(),
            generation,
            frame,
        });
        drop(state);
        if was_empty {
            self.notify.notify_one();
        }
        true
    }

    /// Queues a server command (never refused while open).
    pub(crate) fn push_command(&self, command: ServerCommand) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.items.push_back(Item::Command(command));
        drop(state);
        self.notify.notify_one();
    }

    /// Takes everything queued, and whether the connection overflowed.
    pub(crate) fn take(&self) -> (VecDeque<Item>, bool) {
        let mut state = self.lock();
        state.bytes = 0;
        (std::mem::take(&mut state.items), state.slow)
    }

    /// Resolves when something was queued since the last call.
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Records how much the socket still has to write.
    pub(crate) fn set_io_backlog(&self, bytes: usize) {
        self.io_backlog.store(bytes, Ordering::Relaxed);
    }

    /// Refuses everything from now on and drops what is queued.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.items = VecDeque::new();
        state.bytes = 0;
    }
}

/// Cache key for a publication's WebSocket frame on
/// [`EncodedPublication::encoded`].
#[derive(Clone)]
struct WsFrame(SharedFrame);

fn publication_frame(p: &EncodedPublication) -> WsFrame {
    let publication = convert::publication(p.publication());
    WsFrame(SharedFrame::text(proto::encode_publication_push(
        p.channel(),
        &publication,
    )))
}

fn join_leave_frame(e: &JoinLeave) -> WsFrame {
    let info = convert::client_info(e.info());
    let push = match e.kind() {
        JoinLeaveKind::Join => proto::Push::Join(info),
        JoinLeaveKind::Leave => proto::Push::Leave(info),
    };
    WsFrame(SharedFrame::text(proto::encode_push(e.channel(), &push)))
}

/// One subscription of a WebSocket connection, as the hub sees it.
struct WsSubscriber {
    outbox: Arc<Outbox>,
    generation: u64,
}

impl Subscriber for WsSubscriber {
    fn deliver(&self, publication: &Arc<EncodedPublication>) -> bool {
        let WsFrame(frame) = publication.encoded(publication_frame);
        self.outbox
            .push_event(publication.channel(), self.generation, frame)
    }

    fn deliver_join_leave(&self, event: &Arc<JoinLeave>) -> bool {
        let WsFrame(frame) = event.encoded(join_leave_frame);
        self.outbox
            .push_event(event.channel(), self.generation, frame)
    }

    /// The connection task unsubscribes the client with 2500.
    fn insufficient_state(&self, publication: &Arc<EncodedPublication>) -> bool {
        self.outbox.push_command(ServerCommand::InsufficientState {
            channel: publication.channel().clone(),
            generation: self.generation,
        });
        true
    }
}

/// Builds [`WsSubscriber`]s feeding one outbox.
pub(crate) struct WsFactory(pub(crate) Arc<Outbox>);

impl SubscriberFactory for WsFactory {
    fn subscriber(&self, _channel: &ChannelName, generation: u64) -> Arc<dyn Subscriber> {
        Arc::new(WsSubscriber {
            outbox: self.0.clone(),
            generation,
        })
    }
}

/// A connected WebSocket client in the registry.
pub(crate) struct WsHandle {
    pub(crate) client: Arc<str>,
    pub(crate) user: Arc<str>,
    pub(crate) outbox: Arc<Outbox>,
}

impl ClientHandle for WsHandle {
    fn client_id(&self) -> &str {
        &self.client
    }

    fn user(&self) -> &str {
        &self.user
    }

    fn transport(&self) -> Transport {
        Transport::WebSocket
    }

    fn command(&self, command: ServerCommand) {
        self.outbox.push_command(command);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_flags_slow_and_refuses() {
        let outbox = Outbox::new(100);
        let ch = ChannelName::new("c").unwrap();
        let frame = SharedFrame::text("x".repeat(40));
        assert!(outbox.push_event(&ch, 1, frame.clone()));
        assert!(outbox.push_event(&ch, 1, frame.clone()));
        assert!(!outbox.push_event(&ch, 1, frame.clone()));
        let (items, slow) = outbox.take();
        assert_eq!(items.len(), 2);
        assert!(slow);
        assert!(!outbox.push_event(&ch, 1, frame));
    }

    /// The task is woken by the first push of a batch and never misses a
    /// batch: after it has taken the queue, the next push wakes it again.
    #[tokio::test]
    async fn first_push_of_each_batch_wakes_the_task() {
        let outbox = Outbox::new(1 << 20);
        let ch = ChannelName::new("c").unwrap();
        let wake = std::time::Duration::from_secs(1);
        for batch in 0..3 {
            for _ in 0..5 {
                assert!(outbox.push_event(&ch, 1, SharedFrame::text("x")));
            }
            tokio::time::timeout(wake, outbox.notified())
                .await
                .unwrap_or_else(|_| panic!("batch {batch} did not wake the task"));
            assert_eq!(outbox.take().0.len(), 5);
        }
        // Nothing queued: no wake-up pending.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), outbox.notified())
                .await
                .is_err()
        );
    }

    #[test]
    fn backlog_counts_and_close_refuses() {
        let outbox = Outbox::new(100);
        let ch = ChannelName::new("c").unwrap();
        outbox.set_io_backlog(90);
        assert!(!outbox.push_event(&ch, 1, SharedFrame::text("x".repeat(20))));
        let outbox = Outbox::new(100);
        outbox.close();
        assert!(!outbox.push_event(&ch, 1, SharedFrame::text("x")));
        outbox.push_command(ServerCommand::Unsubscribe(ch));
        assert!(outbox.take().0.is_empty());
    }
}
