//! `duplex serve`: assemble the node from a [`Config`] and run it until a
//! signal.
//!
//! Owns the order of start-up (storage, hub, node, router, listener) and of
//! shutdown (stop accepting, close clients with 3001 / a Socket.IO
//! disconnect, wait up to the drain time, flush storage). It does not parse
//! flags or files (`cli`, `config`) or speak protocols.
//!
//! With `broker` set, the hub's store, broker and presence are one
//! [`hub_redis::RedisBackend`] (history, offsets, epochs and presence live
//! in Redis, so the `storage` setting is not used), and the node joins the
//! [`Cluster`] of nodes sharing the key prefix. Start-up does not wait for
//! Redis longer than its connect timeout: a node that cannot reach it
//! starts anyway, answers `/health` with 503 and reconnects in the
//! background.

use std::sync::Arc;
use std::time::Duration;

use hub::{Hub, Namespaces, Store};
use tokio::net::TcpListener;

use crate::auth::Auth;
use crate::cluster::Cluster;
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
    /// The broker setting is not usable (a malformed URL).
    #[error("broker: {0}")]
    Broker(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How many connections may wait in the kernel's accept queue. The
/// standard library's 128 overflows in a connection storm (each overflow
/// costs the client a 1 s SYN retransmit); the kernel caps this at
/// `net.core.somaxconn` anyway.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with a deep accept queue and address reuse (a restart does
/// not wait for TIME_WAIT sockets of the previous run).
fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
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
        // The listener stays open meanwhile: a polling Socket.IO client that
        // is between two polls must be able to fetch its disconnect (its
        // session goes once it has, or when the client says close).
        let deadline = tokio::time::Instant::now() + drain;
        while (node.registry().num_clients() > 0 || self.app.sio.engine().session_count() > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        node.stop_listening();
        let _ = tokio::time::timeout_at(deadline, self.task).await;
        if let Some(cluster) = node.cluster() {
            cluster.stop().await;
        }
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
    let auth = Auth::new(&config.token_key)?;
    let node = match &config.broker {
        None => {
            let store = open_store(&config)?;
            let hub = Hub::builder(namespaces).store(store).build();
            Node::new(config.clone(), hub, auth)
        }
        Some(url) => {
            let redis = crate::cluster::redis_config(url, &config.broker_options);
            let wait = redis.connect_timeout + redis.command_timeout;
            let backend =
                hub_redis::RedisBackend::new(redis).map_err(|e| RunError::Broker(e.to_string()))?;
            let hub = Hub::builder(namespaces)
                .store(backend.store())
                .broker(backend.broker())
                .presence(backend.presence())
                .build();
            let node = Node::new(config.clone(), hub, auth);
            let (health, connected) = backend.wait_connected(wait).await;
            if connected {
                tracing::info!(
                    prefix = %config.broker_options.prefix,
                    "broker {url}: connected; history, offsets and presence live in Redis \
                     (the storage setting is not used)"
                );
            } else {
                tracing::warn!(
                    "broker {url}: not reachable yet ({}); serving anyway, /health answers 503 \
                     until it is",
                    health.reason().unwrap_or_default()
                );
            }
            let cluster = Cluster::start(&node, backend, config.broker_options.clone()).await;
            node.set_cluster(cluster);
            node
        }
    };
    let listener = match listen(config.listen) {
        Ok(listener) => listener,
        Err(source) => {
            // Stop what the cluster started (heartbeats, presence upkeep).
            node.begin_shutdown();
            if let Some(cluster) = node.cluster() {
                cluster.stop().await;
            }
            return Err(RunError::Listen {
                addr: config.listen,
                source,
            });
        }
    };
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
    // Signal handlers go in before the listener opens: a SIGTERM right
    // after "listening" must shut down gracefully, not kill the process.
    let signal = shutdown_signal();
    let running = start(config).await?;
    signal.await;
    running.shutdown().await;
    Ok(())
}

/// Installs the SIGINT/SIGTERM handlers now and returns a future that
/// resolves on the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    #[cfg(unix)]
    let int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    async move {
        #[cfg(unix)]
        {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
