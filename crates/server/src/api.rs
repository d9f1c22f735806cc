//! `POST /api/<method>`: the server API for backends. (Being built.)

use http::{Request, Response, StatusCode};

use crate::node::Node;
use crate::util::{json, Body};

/// Answers one API request.
pub async fn handle<B>(node: &Node, method: &str, req: Request<B>) -> Response<Body> {
    let _ = (node, method, req);
    json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({"error": {"code": 104, "message": "method not found"}}),
    )
}
