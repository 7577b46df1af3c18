//! Serving: bind (port 0 works), serve behind the shared [`Layers`], stop
//! gracefully on a signal.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::layers::Layers;

/// A running HTTP server.
pub struct Server {
    /// The address actually bound (the real port when asked for port 0).
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Server {
    /// `http://<addr>` + `path`, handy for tests and logs.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops accepting connections, lets in-flight requests finish (up to
    /// 10 s), then returns. Errors are logged.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(Duration::from_secs(10), &mut self.task).await {
            Ok(Ok(Ok(()))) => tracing::info!(addr = %self.addr, "Server stopped"),
            Ok(Ok(Err(e))) => tracing::error!(addr = %self.addr, error = %e, "Server error"),
            Ok(Err(e)) => tracing::error!(addr = %self.addr, error = %e, "Server task failed"),
            Err(_) => {
                tracing::warn!(addr = %self.addr, "Graceful shutdown timed out");
                self.task.abort();
            }
        }
    }

    /// Waits until the server ends on its own (it normally runs until
    /// [`Server::shutdown`]).
    pub async fn wait(self) -> io::Result<()> {
        self.task.await.map_err(io::Error::other)?
    }
}

/// Binds `listen` (port 0 picks a free port), serves `router` behind the
/// default [`Layers`] in a background task and returns at once.
pub async fn serve(router: Router, listen: SocketAddr) -> io::Result<Server> {
    serve_with(router, listen, Layers::default()).await
}

/// [`serve`] with the given layer settings.
pub async fn serve_with(router: Router, listen: SocketAddr, layers: Layers) -> io::Result<Server> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_until(listener, router, layers, async move {
        let _ = rx.await;
    }));
    tracing::info!(%addr, "Listening");
    Ok(Server {
        addr,
        stop: Some(tx),
        task,
    })
}

/// Serves `router` behind `layers` on a bound `listener` (with
/// [`no_delay`]) until `shutdown` completes, then lets in-flight requests
/// finish. For services that bind first and serve later.
pub async fn serve_until(
    listener: TcpListener,
    router: Router,
    layers: Layers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(no_delay(listener), layers.apply(router))
        .with_graceful_shutdown(shutdown)
        .await
}

/// `listener` with `TCP_NODELAY` on every accepted connection: a response
/// written in more than one segment must not wait for the peer's delayed
/// ACK (Nagle), which shows as 40 ms latency spikes behind Envoy.
pub fn no_delay(
    listener: TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = SocketAddr> {
    use axum::serve::ListenerExt as _;
    listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "cannot set TCP_NODELAY");
        }
    })
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Runs `server` until [`shutdown_signal`], then shuts it down gracefully.
pub async fn run_until_signal(server: Server) {
    shutdown_signal().await;
    server.shutdown().await;
}

/// Resolves `LISTEN_ADDR` from the environment, else `default`.
pub fn listen_addr_from_env(default: &str) -> Result<SocketAddr, String> {
    let raw = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| default.to_owned());
    raw.parse()
        .map_err(|_| format!("LISTEN_ADDR: {raw:?} is not an address like 127.0.0.1:8081"))
}
