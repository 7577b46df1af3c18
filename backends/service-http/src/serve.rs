//! Serving: bind (port 0 works), serve behind the shared [`Layers`], stop
//! gracefully on a signal.
//!
//! The shutdown sequence of every backend: SIGTERM (or Ctrl-C) marks the
//! process draining, so `/health/ready` answers 503 ([`crate::probes`]);
//! after `SHUTDOWN_DELAY_SECONDS` (default 0) the listener is closed (new
//! connections are refused) and idle keep-alive connections are closed;
//! requests in flight get up to `SHUTDOWN_GRACE_SECONDS` (default 10) to
//! finish, then the server returns and the process exits 0.

use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::layers::Layers;
use crate::probes::{shutdown_delay, shutdown_grace, start_draining};

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
    /// `SHUTDOWN_GRACE_SECONDS`, default 10 s), then returns. Errors are
    /// logged.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // `serve_until` bounds the drain itself; this is the backstop.
        let backstop = shutdown_grace() + Duration::from_secs(1);
        match tokio::time::timeout(backstop, &mut self.task).await {
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
/// [`no_delay`]) until `shutdown` completes, then closes the listener and
/// lets in-flight requests finish for up to `SHUTDOWN_GRACE_SECONDS`
/// (default 10 s); connections still busy then are dropped. For services
/// that bind first and serve later.
pub async fn serve_until(
    listener: TcpListener,
    router: Router,
    layers: Layers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let addr = listener.local_addr().ok();
    let (stopping_tx, stopping_rx) = oneshot::channel::<()>();
    let serve = axum::serve(no_delay(listener), layers.apply(router))
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        })
        .into_future();
    tokio::pin!(serve);
    let grace_over = async move {
        match stopping_rx.await {
            Ok(()) => tokio::time::sleep(shutdown_grace()).await,
            // Dropped without a stop: the server ended on its own.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        served = &mut serve => served,
        () = grace_over => {
            tracing::warn!(
                addr = ?addr,
                grace_seconds = shutdown_grace().as_secs_f64(),
                "Requests still in flight after the shutdown grace period, dropping them"
            );
            Ok(())
        }
    }
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

/// Resolves on SIGTERM or Ctrl-C (SIGINT): marks the process draining
/// (readiness answers 503 from then on), waits `SHUTDOWN_DELAY_SECONDS`
/// (default 0) while still serving, then resolves, which closes the
/// listeners.
pub async fn shutdown_signal() {
    received_signal().await;
    start_draining();
    let delay = shutdown_delay();
    if !delay.is_zero() {
        tracing::info!(
            delay_seconds = delay.as_secs_f64(),
            "Draining: readiness answers 503, still serving until the delay ends"
        );
        tokio::time::sleep(delay).await;
    }
    tracing::info!("Closing the listener, finishing the requests in flight");
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn received_signal() {
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

/// Runs `start` until it succeeds or fails for a reason `retryable` does
/// not accept (a database that is down at startup is retryable; a bad
/// password or configuration is not). Between attempts it logs the cause
/// and waits 1, 2, 4 … at most 30 s. Nothing listens meanwhile, so a
/// startup probe on `/health/live` fails until the start succeeded, and
/// its failure threshold bounds the wait. `None` when SIGTERM or Ctrl-C
/// arrives while waiting.
pub async fn retry_start<T, E, F, Fut>(
    mut start: F,
    retryable: impl Fn(&E) -> bool,
) -> Option<Result<T, E>>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut wait = Duration::from_secs(1);
    loop {
        match start().await {
            Err(e) if retryable(&e) => {
                tracing::warn!(
                    error = %e,
                    retry_in_seconds = wait.as_secs(),
                    "Dependency unavailable at startup, retrying (not listening yet)"
                );
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = received_signal() => return None,
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            other => return Some(other),
        }
    }
}

/// Runs `server` until [`shutdown_signal`], then shuts it down gracefully.
pub async fn run_until_signal(server: Server) {
    shutdown_signal().await;
    server.shutdown().await;
}
