//! Test doubles shared by this crate's unit tests, its integration tests
//! and the fuzz entry points ([`crate::fuzzing`]); not a stable API, hidden
//! from the docs. It owns stand-ins only: the real connection handles are
//! the WebSocket outbox (`client::outbox`) and the Socket.IO handle (`sio`).

use std::sync::{Arc, Mutex, PoisonError};

use crate::node::{ClientHandle, ServerCommand, Transport};

/// A WebSocket connection that only keeps every command the server sends
/// it, for a test to [`take`](RecordingClient::take).
///
/// ```
/// use duplex_server::node::{ClientHandle, ServerCommand};
/// use duplex_server::testing::RecordingClient;
///
/// let client = RecordingClient::new("c1", "42");
/// client.command(ServerCommand::Unsubscribe("news".parse().unwrap()));
/// assert_eq!(client.take().len(), 1);
/// assert!(client.take().is_empty());
/// ```
#[derive(Debug)]
pub struct RecordingClient {
    id: String,
    user: String,
    got: Mutex<Vec<ServerCommand>>,
}

impl RecordingClient {
    /// A connection with client id `id` of user `user` (empty: anonymous).
    pub fn new(id: &str, user: &str) -> Arc<Self> {
        Arc::new(Self {
            id: id.to_owned(),
            user: user.to_owned(),
            got: Mutex::default(),
        })
    }

    /// The commands received since the last call, oldest first.
    pub fn take(&self) -> Vec<ServerCommand> {
        std::mem::take(&mut *self.got.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ClientHandle for RecordingClient {
    fn client_id(&self) -> &str {
        &self.id
    }
    fn user(&self) -> &str {
        &self.user
    }
    fn transport(&self) -> Transport {
        Transport::WebSocket
    }
    fn command(&self, command: ServerCommand) {
        self.got
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(command);
    }
}
