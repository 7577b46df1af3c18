//! [`CountingUpstream`]: an HTTP upstream that answers 200 and records
//! every request that reaches it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;

/// One request as an upstream saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names are lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of a header, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Recorder {
    count: AtomicUsize,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// An HTTP upstream on 127.0.0.1 that answers 200 to everything and
/// records what reached it. Stops when dropped.
pub struct CountingUpstream {
    pub port: u16,
    recorder: Arc<Recorder>,
    task: tokio::task::JoinHandle<()>,
}

async fn record(
    State(rec): State<Arc<Recorder>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    rec.count.fetch_add(1, Ordering::SeqCst);
    let headers = headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    if let Ok(mut r) = rec.requests.lock() {
        r.push(RecordedRequest {
            method: method.to_string(),
            path: uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers,
            body: body.to_vec(),
        });
    }
    (
        [("content-type", "application/json")],
        r#"{"status":"success","upstream":"counting"}"#,
    )
}

impl CountingUpstream {
    pub async fn start() -> CountingUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener
            .local_addr()
            .map(|a: SocketAddr| a.port())
            .unwrap_or(0);
        let recorder = Arc::new(Recorder::default());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(recorder.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CountingUpstream {
            port,
            recorder,
            task,
        }
    }

    /// How many requests reached this upstream.
    pub fn count(&self) -> usize {
        self.recorder.count.load(Ordering::SeqCst)
    }

    /// The requests that reached this upstream, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorder
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The requests that reached this upstream other than Envoy's active
    /// health checks (`/health`), oldest first.
    pub fn api_requests(&self) -> Vec<RecordedRequest> {
        let mut requests = self.requests();
        requests.retain(|r| r.path != "/health");
        requests
    }
}

impl Drop for CountingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
