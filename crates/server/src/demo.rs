//! The browser side the server ships: `/duplex.js` (our small client for
//! the plain WebSocket protocol, always served), and in `--dev` the demo
//! page at `/` with its assets and `POST /dev/token`, which signs a
//! connection token for a nickname so the page can show who is online.
//! The files live in `assets/` and are compiled into the binary (no CDN, no
//! files to deploy).

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::node::Node;
use crate::util::{json, response, text, Body};

const DUPLEX_JS: &str = include_str!("../assets/duplex.js");
const INDEX_HTML: &str = include_str!("../assets/index.html");
const DEMO_JS: &str = include_str!("../assets/demo.js");
const DEMO_CSS: &str = include_str!("../assets/demo.css");

/// Largest `/dev/token` body.
const MAX_TOKEN_BODY: usize = 4096;

/// Answers `GET` requests for the browser files and `POST /dev/token`.
pub async fn handle(node: &Node, req: Request<Incoming>) -> Response<Body> {
    let dev = node.config().dev;
    let asset = |body: &'static str, kind: &'static str| {
        let mut r = response(StatusCode::OK, kind, body);
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/duplex.js") => {
            asset(DUPLEX_JS, "text/javascript; charset=utf-8")
        }
        (&Method::GET | &Method::HEAD, "/" | "/index.html") if dev => {
            asset(INDEX_HTML, "text/html; charset=utf-8")
        }
        (&Method::GET | &Method::HEAD, "/demo.js") if dev => {
            asset(DEMO_JS, "text/javascript; charset=utf-8")
        }
        (&Method::GET | &Method::HEAD, "/demo.css") if dev => {
            asset(DEMO_CSS, "text/css; charset=utf-8")
        }
        (&Method::POST, "/dev/token") if dev => dev_token(node, req).await,
        (&Method::GET, "/") => text(
            StatusCode::OK,
            "duplex is running. The demo page is served with `duplex serve --dev`.\n",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `{"user": "ann", "info": {...}?}` → `{"token": "..."}`, valid one day.
async fn dev_token(node: &Node, req: Request<Incoming>) -> Response<Body> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_TOKEN_BODY);
    let body = match limited.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large or unreadable\n",
            )
        }
    };
    #[derive(serde::Deserialize)]
    struct Ask {
        user: String,
        #[serde(default)]
        info: Option<serde_json::Value>,
    }
    let ask: Ask = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad body: {e}\n")),
    };
    let user = ask.user.trim();
    if user.is_empty() || user.len() > 64 {
        return text(StatusCode::BAD_REQUEST, "user must be 1-64 characters\n");
    }
    let info = ask
        .info
        .unwrap_or_else(|| serde_json::json!({ "name": user }));
    match node
        .auth()
        .sign_connect(user, Some(86_400), Some(&info), &[])
    {
        Ok(token) => json(StatusCode::OK, &serde_json::json!({ "token": token })),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}
