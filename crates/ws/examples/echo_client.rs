//! The Autobahn testsuite's fuzzingserver client: asks for the case count,
//! runs every case echoing each message, then asks for the report.
//!
//! ```text
//! cargo run --release -p duplex-ws --example echo_client -- ws://127.0.0.1:9002 [agent]
//! ```

use ws::{Connector, DeflateConfig, Message};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:9002".into());
    let agent = args.next().unwrap_or_else(|| "duplex".into());
    let connector = Connector::new().deflate(DeflateConfig::default());

    let (mut socket, _) = connector.connect(&format!("{base}/getCaseCount")).await?;
    let count: u32 = match socket.recv().await {
        Some(Ok(Message::Text(text))) => text.parse()?,
        other => return Err(format!("unexpected case count reply: {other:?}").into()),
    };
    let _ = socket.close(None).await;
    eprintln!("running {count} cases as {agent}");

    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        let Ok((mut socket, _)) = connector.connect(&url).await else {
            eprintln!("case {case}: connect failed");
            continue;
        };
        while let Some(Ok(message)) = socket.recv().await {
            if message.is_data() && socket.queue(message).is_err() {
                break;
            }
        }
    }

    let (mut socket, _) = connector
        .connect(&format!("{base}/updateReports?agent={agent}"))
        .await?;
    let _ = socket.close(None).await;
    Ok(())
}
