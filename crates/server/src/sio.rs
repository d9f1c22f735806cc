//! `/socket.io/`: the Socket.IO mapping of channels (subscribe, publish,
//! presence, history as events with acks; publications as events).
//! (Being built.)

use crate::node::Node;

/// Builds the Socket.IO server wired to `node`'s channels.
pub fn build(node: &Node) -> socketio::SocketIo {
    let _ = node;
    let sio = socketio::SocketIo::new(socketio::SocketIoConfig::default());
    sio.namespace("/", |_socket| {});
    sio
}
