//! Opening many connections with bounded concurrency.
//!
//! Ten thousand simultaneous connects overflow the listen backlog of a
//! single-threaded server and turn into SYN retries that take seconds; a
//! window of a few hundred connects in flight opens them quickly and
//! reliably.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::Client;
use crate::target::Target;

/// Opens `count` connections to `target`, at most `concurrency` handshakes
/// at a time, each with a read buffer of `read_buf` bytes. Fails with the
/// first error if any connection cannot be opened.
pub async fn open(
    target: &Target,
    count: usize,
    concurrency: usize,
    read_buf: usize,
) -> Result<Vec<Client>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let permits = Arc::clone(&permits);
        let target = target.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            Client::connect(&target, read_buf).await
        });
    }
    let mut clients = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        let client = joined
            .context("connect task failed")?
            .with_context(|| format!("opening connection {} of {count}", clients.len() + 1))?;
        clients.push(client);
    }
    Ok(clients)
}
