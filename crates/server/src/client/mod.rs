//! `/connection/websocket`: Centrifugo's bidirectional JSON protocol over
//! plain WebSocket. (Being built.)

use http::{Request, Response, StatusCode};

use crate::node::Node;
use crate::util::{text, Body};

/// Answers a request on `/connection/websocket`: upgrades it and runs the
/// client session on its own task.
pub fn handle<B>(node: &Node, req: Request<B>) -> Response<Body> {
    let _ = (node, req);
    text(StatusCode::NOT_IMPLEMENTED, "not yet")
}
