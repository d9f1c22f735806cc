//! `duplex serve`: assemble the node from a [`Config`] and run it until a
//! signal.
//!
//! Owns the order of start-up (storage, hub, node, router, listener) and of
//! shutdown (stop accepting, close clients with 3001 / a Socket.IO
//! disconnect, wait up to the drain time, flush storage). It does not parse
//! flags or files (`cli`, `config`) or speak protocols.

use std::sync::Arc;
use std::time::Duration;

use hub::{Hub, Namespaces, Store};
use tokio::net::TcpListener;

use crate::auth::Auth;
use crate::config::{Config, StorageConfig};
use crate::http::App;
use crate::node::Node;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The namespaces in the config are not usable.
    #[error("namespaces: {0}")]
    Namespaces(#[from] hub::namespace::ConfigError),
    /// The token key is not usable.
    #[error("{0}")]
    Key(#[from] crate::auth::KeyError),
    /// Storage could not be opened.
    #[error("storage: {0}")]
    Storage(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Opens the configured store. Needs a tokio runtime.
pub fn open_store(config: &Config) -> Result<Arc<dyn Store>, RunError> {
    match &config.storage {
        StorageConfig::Memory => {
            let store = hub::MemoryStore::new();
            // Expired history and idle streams are dropped in the background
            // (the task ends when the store is dropped).
            drop(store.spawn_cleanup(Duration::from_secs(30)));
            Ok(Arc::new(store))
        }
        StorageConfig::Sqlite(path) => {
            let store =
                hub_sqlite::SqliteStore::open(path, hub_sqlite::SqliteStoreConfig::default())
                    .map_err(|e| RunError::Storage(format!("{}: {e}", path.display())))?;
            tracing::info!("history in SQLite at {}", path.display());
            Ok(Arc::new(store))
        }
    }
}

/// A started server: its address and the handle to stop it.
pub struct Running {
    /// The address it listens on (useful with port 0).
    pub addr: std::net::SocketAddr,
    /// The node.
    pub node: Node,
    app: App,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Shuts down: stop accepting, close every client, wait up to the drain
    /// time for them to go, flush storage.
    pub async fn shutdown(self) {
        let node = &self.node;
        let drain = node.config().shutdown_drain;
        tracing::info!(
            "shutting down: closing {} clients",
            node.registry().num_clients()
        );
        node.begin_shutdown();
        self.app.sio.close();
        let deadline = tokio::time::Instant::now() + drain;
        while node.registry().num_clients() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = tokio::time::timeout_at(deadline, self.task).await;
        match tokio::time::timeout(drain.max(Duration::from_secs(1)), node.hub().flush()).await {
            Ok(Ok(())) => tracing::info!("storage flushed"),
            Ok(Err(e)) => tracing::error!("storage flush failed: {e}"),
            Err(_) => tracing::error!("storage flush timed out"),
        }
    }
}

/// Builds the node from `config` and starts serving on its listen address.
pub async fn start(config: Config) -> Result<Running, RunError> {
    let config = Arc::new(config);
    let namespaces = Namespaces::new(config.channel.clone(), config.namespaces.clone())?;
    let store = open_store(&config)?;
    let hub = Hub::builder(namespaces).store(store).build();
    let auth = Auth::new(&config.token_key)?;
    let node = Node::new(config.clone(), hub, auth);
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| RunError::Listen {
        addr: config.listen,
        source,
    })?;
    let app = App::new(node.clone());
    let task = tokio::spawn(app.clone().serve(listener));
    tracing::info!("duplex listening on http://{addr}");
    Ok(Running {
        addr,
        node,
        app,
        task,
    })
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(config: Config) -> Result<(), RunError> {
    let running = start(config).await?;
    wait_for_signal().await;
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
