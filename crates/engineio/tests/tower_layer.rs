//! The engine as a tower layer in front of another service: Engine.IO under
//! its path, everything else to the inner service, on one port.

use std::convert::Infallible;
use std::future::Ready;
use std::task::{Context, Poll};

use bytes::Bytes;
use engineio::{CloseReason, Engine, EngineConfig, EngineLayer, Handler, Socket};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower_layer::Layer;
use tower_service::Service;
use ws::Message;

struct Echo;
impl Handler for Echo {
    fn on_open(&self, _: &Socket) {}
    fn on_message(&self, socket: &Socket, text: ws::Utf8Bytes) {
        socket.send_text(&text);
    }
    fn on_binary(&self, _: &Socket, _: Bytes) {}
    fn on_close(&self, _: &Socket, _: CloseReason) {}
}

/// The application behind the layer.
#[derive(Clone)]
struct App;
impl<B> Service<http::Request<B>> for App {
    type Response = http::Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: http::Request<B>) -> Self::Future {
        std::future::ready(Ok(http::Response::new(Full::new(Bytes::from_static(
            b"app",
        )))))
    }
}

#[tokio::test]
async fn layer_serves_engineio_and_passes_the_rest_through() {
    let service = EngineLayer::new(Engine::new(EngineConfig::default(), Echo)).layer(App);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let service = service.clone();
            tokio::spawn(async move {
                let hyper_service = hyper::service::service_fn(move |req| {
                    let mut service = service.clone();
                    async move {
                        let response = service.call(req).await?;
                        Ok::<_, Infallible>(response.map(|b| b.boxed()))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), hyper_service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    let get = |path: &'static str| async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.unwrap();
        out
    };
    let app = get("/anything").await;
    assert!(
        app.starts_with("HTTP/1.1 200") && app.ends_with("app"),
        "{app}"
    );
    let open = get("/engine.io/?EIO=4&transport=polling").await;
    assert!(open.contains("\r\n\r\n0{\"sid\":"), "{open}");
    let (mut c, _) = ws::connect(&format!("ws://{addr}/engine.io/?EIO=4&transport=websocket"))
        .await
        .unwrap();
    assert!(matches!(c.recv().await, Some(Ok(Message::Text(t))) if t.starts_with('0')));
    c.send(Message::text("4through the layer")).await.unwrap();
    assert_eq!(
        c.recv().await.unwrap().unwrap(),
        Message::text("4through the layer")
    );
}
