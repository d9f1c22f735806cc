//! The queue between the hub (and the server API) and one WebSocket
//! connection's task.
//!
//! Owns [`Outbox`]: publications, joins and leaves arrive here from the
//! hub's fan-out ([`WsSubscriber`], called synchronously and never
//! blocking) and server commands from the registry (the outbox is the
//! connection's [`ClientHandle`] there, and its [`SubscriberFactory`]); the
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
//!
//! The task is woken through a [`Waker`] kept in the outbox (one clone,
//! stored while the task waits), not a `Notify` future that the task
//! would have to keep alive in its own state between turns: an idle
//! connection's task stays small. Shutdown reaches the task the same way
//! ([`Outbox::shutdown`], called by the node for every connection).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Waker};

use centrifuge_proto as proto;
use hub::{ChannelName, EncodedPublication, JoinLeave, JoinLeaveKind, Subscriber};
use ws::SharedFrame;

use crate::node::{ClientHandle, OnShutdown, ServerCommand, Transport};
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
    shutdown: bool,
    /// The task, while it waits for something to be queued.
    waker: Option<Waker>,
}

impl State {
    /// Whether the task has something to do.
    fn has_work(&self) -> bool {
        !self.items.is_empty() || self.slow || self.shutdown
    }
}

/// What [`Outbox::poll_take`] hands the task.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) items: VecDeque<Item>,
    /// The connection overflowed its limit: close it as slow.
    pub(crate) slow: bool,
    /// The node is shutting down: close it with 3001.
    pub(crate) shutdown: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Itself, for the subscribers it makes.
    me: Weak<Outbox>,
    /// The connection's client id.
    client: Arc<str>,
    /// Its user id, once connected (the session's copy).
    user: OnceLock<Arc<str>>,
    max_bytes: usize,
    /// Bytes the socket holds unwritten, as last seen by the task.
    io_backlog: AtomicUsize,
}

impl Outbox {
    /// The outbox of connection `client`. One allocation holds what the
    /// hub, the registry and the task share about the connection.
    pub(crate) fn new(client: Arc<str>, max_bytes: usize) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            state: Mutex::new(State::default()),
            me: me.clone(),
            client,
            user: OnceLock::new(),
            max_bytes,
            io_backlog: AtomicUsize::new(0),
        })
    }

    /// Records the connection's user once it is connected (before it is
    /// added to the registry); later calls are ignored.
    pub(crate) fn set_user(&self, user: Arc<str>) {
        let _ = self.user.set(user);
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
            let waker = state.waker.take();
            drop(state);
            wake(waker);
            return false;
        }
        state.bytes += len;
        // Only the first item of a batch wakes the task: it takes the whole
        // queue at once, so later pushes before that need no wake-up (on a
        // busy channel this saves an atomic handshake per delivery).
        state.items.push_back(Item::Event {
            channel: channel.clone(),
            generation,
            frame,
        });
        let waker = state.waker.take();
        drop(state);
        wake(waker);
        true
    }

    /// Queues a server command (never refused while open).
    pub(crate) fn push_command(&self, command: ServerCommand) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.items.push_back(Item::Command(command));
        let waker = state.waker.take();
        drop(state);
        wake(waker);
    }

    /// Tells the task to close the connection for shutdown.
    pub(crate) fn shutdown(&self) {
        let mut state = self.lock();
        state.shutdown = true;
        let waker = state.waker.take();
        drop(state);
        wake(waker);
    }

    /// Takes everything queued, with the overflow and shutdown flags, if
    /// there is anything; if not, `cx`'s task is woken when there is. Only
    /// the first push after this wakes the task: later pushes before it
    /// runs find no waker (on a busy channel this saves a wake-up per
    /// delivery).
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Option<Taken> {
        let mut state = self.lock();
        if !state.has_work() {
            match &mut state.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
            return None;
        }
        state.bytes = 0;
        Some(Taken {
            items: std::mem::take(&mut state.items),
            slow: state.slow,
            shutdown: state.shutdown,
        })
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
        state.waker = None;
    }
}

impl OnShutdown for Outbox {
    fn on_shutdown(&self) {
        self.shutdown();
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
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

/// Builds [`WsSubscriber`]s feeding this outbox.
impl SubscriberFactory for Outbox {
    fn subscriber(&self, _channel: &ChannelName, generation: u64) -> Arc<dyn Subscriber> {
        match self.me.upgrade() {
            Some(outbox) => Arc::new(WsSubscriber { outbox, generation }),
            // Only while the connection is being dropped: nobody to deliver to.
            None => Arc::new(Gone),
        }
    }
}

/// A subscriber of a connection already dropped: refuses everything.
struct Gone;

impl Subscriber for Gone {
    fn deliver(&self, _: &Arc<EncodedPublication>) -> bool {
        false
    }
}

/// The connection as the registry sees it.
impl ClientHandle for Outbox {
    fn client_id(&self) -> &str {
        &self.client
    }

    fn user(&self) -> &str {
        self.user.get().map_or("", |user| user)
    }

    fn transport(&self) -> Transport {
        Transport::WebSocket
    }

    fn command(&self, command: ServerCommand) {
        self.push_command(command);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_flags_slow_and_refuses() {
        let outbox = Outbox::new(Arc::from("c1"), 100);
        let ch = ChannelName::new("c").unwrap();
        let frame = SharedFrame::text("x".repeat(40));
        assert!(outbox.push_event(&ch, 1, frame.clone()));
        assert!(outbox.push_event(&ch, 1, frame.clone()));
        assert!(!outbox.push_event(&ch, 1, frame.clone()));
        let taken = outbox.poll_take(&mut noop_cx()).expect("queued");
        assert_eq!(taken.items.len(), 2);
        assert!(taken.slow);
        assert!(!outbox.push_event(&ch, 1, frame));
    }

    fn noop_cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    /// Counts wake-ups.
    struct CountWakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The waiting task is woken once per batch, by its first push, and
    /// never misses one: after it has taken the queue and waits again, the
    /// next push wakes it again. Shutdown wakes it too.
    #[test]
    fn first_push_of_each_batch_wakes_the_task() {
        let outbox = Outbox::new(Arc::from("c1"), 1 << 20);
        let ch = ChannelName::new("c").unwrap();
        let counter = Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        for batch in 1..=3 {
            assert!(outbox.poll_take(&mut cx).is_none(), "nothing queued yet");
            for _ in 0..5 {
                assert!(outbox.push_event(&ch, 1, SharedFrame::text("x")));
            }
            assert_eq!(counter.0.load(Ordering::SeqCst), batch);
            let taken = outbox.poll_take(&mut cx).expect("queued");
            assert_eq!(taken.items.len(), 5);
            assert!(!taken.slow && !taken.shutdown);
        }
        assert!(outbox.poll_take(&mut cx).is_none());
        outbox.shutdown();
        assert_eq!(counter.0.load(Ordering::SeqCst), 4);
        assert!(outbox.poll_take(&mut cx).expect("shutdown").shutdown);
    }

    #[test]
    fn backlog_counts_and_close_refuses() {
        let outbox = Outbox::new(Arc::from("c1"), 100);
        let ch = ChannelName::new("c").unwrap();
        outbox.set_io_backlog(90);
        assert!(!outbox.push_event(&ch, 1, SharedFrame::text("x".repeat(20))));
        let outbox = Outbox::new(Arc::from("c1"), 100);
        outbox.close();
        assert!(!outbox.push_event(&ch, 1, SharedFrame::text("x")));
        outbox.push_command(ServerCommand::Unsubscribe(ch));
        assert!(outbox.poll_take(&mut noop_cx()).is_none());
    }
}
