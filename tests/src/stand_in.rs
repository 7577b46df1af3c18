//! Stand-ins for the backends: axum routers served on a free loopback
//! port for the rest of the test, and the HTTP client the suites talk to
//! them with.

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;

/// A listener on 127.0.0.1, port 0, and its address.
pub async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"));
    (listener, addr)
}

/// Serves `router` on 127.0.0.1, port 0, in the background: its address.
pub async fn serve(router: Router) -> SocketAddr {
    let (listener, addr) = bind().await;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// A TCP server on 127.0.0.1, port 0, that accepts connections and never
/// answers (an upstream timeout): its port, and the task holding the
/// connections (abort it, or drop it with the test).
pub async fn stalling_upstream() -> (u16, tokio::task::JoinHandle<()>) {
    let (listener, addr) = bind().await;
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr.port(), task)
}

/// `router` plus a backend's `/health` (healthy, version 0.1.0).
pub fn with_health(router: Router) -> Router {
    router.route(
        "/health",
        get(|| async { axum::Json(serde_json::json!({"status":"healthy","version":"0.1.0"})) }),
    )
}

/// [`with_health`] plus `/metrics` answering `metrics`.
pub fn health_routes(router: Router, metrics: &'static str) -> Router {
    with_health(router).route("/metrics", get(move || async move { metrics }))
}

/// An HTTP client that never goes through a proxy, with a 10 s timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}
