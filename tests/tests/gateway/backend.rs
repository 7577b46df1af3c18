//! Backends that misbehave: one that can be killed and brought back on the
//! same port, slow or failing ones, and one that answers garbage.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use e2e::free_port;

#[derive(Clone, Copy)]
pub enum Behaviour {
    /// 200 to everything.
    Healthy,
    /// 200 on /health, 500 with a backend envelope on everything else.
    FailsRequests,
    /// 200 on /health at once, everything else after the delay.
    Slow(Duration),
}

/// A backend in its own runtime on its own thread: `kill` drops the runtime,
/// which closes the listener and every open connection, like a crash.
pub struct TestBackend {
    pub port: u16,
    hits: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestBackend {
    pub fn start(behaviour: Behaviour) -> TestBackend {
        Self::start_on(free_port(), behaviour, Arc::new(AtomicUsize::new(0)))
    }

    pub fn start_on(port: u16, behaviour: Behaviour, hits: Arc<AtomicUsize>) -> TestBackend {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let counter = hits.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = axum::Router::new().fallback(move |uri: Uri| {
                    let counter = counter.clone();
                    async move {
                        if uri.path() == "/health" {
                            return (StatusCode::OK, r#"{"status":"healthy","version":"0.1.0"}"#)
                                .into_response();
                        }
                        counter.fetch_add(1, Ordering::SeqCst);
                        match behaviour {
                            Behaviour::Healthy => (
                                StatusCode::OK,
                                [("content-type", "application/json")],
                                r#"{"status":"success"}"#,
                            )
                                .into_response(),
                            Behaviour::FailsRequests => (
                                StatusCode::INTERNAL_SERVER_ERROR,
                                [("content-type", "application/json")],
                                r#"{"status":"error","error":{"code":"INTERNAL_ERROR","message":"boom","request_id":""}}"#,
                            )
                                .into_response(),
                            Behaviour::Slow(d) => {
                                tokio::time::sleep(d).await;
                                (StatusCode::OK, r#"{"status":"success"}"#).into_response()
                            }
                        }
                    }
                });
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = rx => {}
                }
            });
            // Dropping the runtime cancels every connection task.
            drop(rt);
        });
        TestBackend {
            port,
            hits,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn kill(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An upstream that answers `/health` properly and everything else with
/// bytes that are not HTTP. Stops when the test process ends.
pub fn start_garbage_upstream() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let n = conn.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let answer: &[u8] = if head.starts_with("GET /health ") {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
                } else {
                    b"THIS IS NOT HTTP\r\n\r\n"
                };
                let _ = conn.write_all(answer);
            });
        }
    });
    port
}
