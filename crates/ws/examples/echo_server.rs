//! Echoes every text and binary message back, with permessage-deflate
//! enabled. Used by the Autobahn testsuite (fuzzingclient mode) and by the
//! echo benchmark.
//!
//! ```text
//! cargo run --release -p duplex-ws --example echo_server -- 127.0.0.1:9001 [--threads N] [--no-deflate]
//! ```
//!
//! With the default of one thread the server runs on a current-thread
//! runtime, which is how the benchmark compares servers pinned to one core.

use ws::{Acceptor, DeflateConfig, Message};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:9001".to_owned();
    let mut threads = 1usize;
    let mut deflate = true;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => threads = args.next().and_then(|n| n.parse().ok()).unwrap_or(1),
            "--no-deflate" => deflate = false,
            other => addr = other.to_owned(),
        }
    }
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(serve(addr, deflate))
}

async fn serve(addr: String, deflate: bool) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("echo_server listening on ws://{}", listener.local_addr()?);
    let mut acceptor = Acceptor::new();
    if deflate {
        acceptor = acceptor.deflate(DeflateConfig::default());
    }
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut socket) = acceptor.accept(tcp).await else {
                return;
            };
            while let Some(Ok(message)) = socket.recv().await {
                if let Message::Text(_) | Message::Binary(_) = message {
                    // Queued replies are written before the next read.
                    if socket.queue(message).is_err() {
                        break;
                    }
                }
            }
        });
    }
}
