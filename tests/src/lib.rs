//! Harness for the end-to-end suites: a real Envoy process started from a
//! YAML config, and upstreams that count and record what reaches them.
//!
//! Tests talk real HTTP over loopback. Everything started here stops when
//! its handle is dropped.
//!
//! * this file: where things are (repository, Envoy, built filters), free
//!   ports, scratch directories;
//! * [`envoy`]: a running Envoy ([`Envoy`]), `envoy --mode validate`,
//!   waiting for healthy clusters;
//! * [`upstream`]: [`CountingUpstream`], which records what reaches it;
//! * [`servers`]: private Redis and PostgreSQL servers a test may crash;
//! * [`config`]: Envoy configurations (the rendered gateway, pieces of it,
//!   a plain proxy);
//! * [`http`]: HTTP responses, read off the wire or by reqwest;
//! * [`local`]: the `local` gateway in front of in-process services
//!   (unique names, a database, the cluster list, gatewayctl);
//! * [`stand_in`]: backends' stand-ins served on port 0, and a client.

pub mod config;
pub mod envoy;
pub mod http;
pub mod local;
pub mod servers;
pub mod stand_in;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use config::{
    gateway_part, plain_proxy_config, render_gateway, render_local_gateway, static_cluster,
    wasm_filter,
};
pub use envoy::{envoy_validate, wait_until_healthy, Envoy};
pub use http::{answer, check_envelope, dechunk, parse_response, text, Answer};
pub use servers::{postgres_binaries_or_skip, PrivatePostgres, PrivateRedis, ServerCert};
pub use upstream::{CountingUpstream, RecordedRequest};

/// The identity headers the gateway sets for upstreams: a client's own
/// copies never reach a backend. The suites pin the list here, apart from
/// the auth filter's own (`filter_core::auth::INTERNAL_HEADERS`), so that
/// a header dropped there fails them.
pub const IDENTITY_HEADERS: [&str; 6] = [
    "x-client-id",
    "x-client-scopes",
    "x-auth-method",
    "x-client-rate-limit",
    "x-client-tier",
    "x-api-key-id",
];

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Envoy from the project-local virtualenv (`make envoy` installs it).
/// The gateway's self-signed TLS certificate (`cargo xtask gen-cert`), made
/// once per test binary in a directory of its own.
pub fn gateway_cert_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("gateway-certs-{}", std::process::id()));
        xtask::cert::ensure(&dir).unwrap_or_else(|e| panic!("gen-cert: {e:#}"));
        dir
    })
    .clone()
}

pub fn envoy_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ENVOY_BIN") {
        return PathBuf::from(p);
    }
    let p = repo_root().join(".venv/bin/envoy");
    assert!(
        p.exists(),
        "{} is missing: run `make envoy` (cargo xtask setup envoy)",
        p.display()
    );
    p
}

/// Cargo's target directory as the build used it.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                repo_root().join(d)
            }
        }
        None => repo_root().join("target"),
    }
}

/// Where the built filters are: `WASM_DIR` when set (the Makefile builds
/// them once into the main target directory), else this build's target dir.
pub fn wasm_dir() -> PathBuf {
    match std::env::var_os("WASM_DIR") {
        Some(d) => PathBuf::from(d),
        None => target_dir().join("wasm32-wasip1/release"),
    }
}

/// A built filter, e.g. `wasm_file("auth_filter")`.
pub fn wasm_file(lib_name: &str) -> PathBuf {
    let p = wasm_dir().join(format!("{lib_name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run `make wasm` (cargo build --release --target wasm32-wasip1 -p <filter>)",
        p.display()
    );
    p
}

/// Tries `attempt` every `every` until it succeeds, for at most `within`:
/// its value. Panics with the last failure (the `Err` of `attempt`) when
/// the time is up.
pub async fn poll<T, F, Fut>(within: Duration, every: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(why) => assert!(Instant::now() < deadline, "{why}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Runs an outside tool (`cmd`: a browser driver, schemathesis) with no
/// proxy and no standard input, killed with the test, for at most
/// `within`: its output. Panics naming `what` when it takes longer or does
/// not start.
pub async fn run_tool(
    mut cmd: tokio::process::Command,
    within: Duration,
    what: &str,
) -> std::process::Output {
    cmd.env("NO_PROXY", "*")
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    tokio::time::timeout(within, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {within:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A TCP port free on 127.0.0.1 right now, never handed out before in
/// this process (the backends' tests draw from the same set).
pub use service_http::test_support::free_port;

/// A new empty directory under the system temp dir, unique to this process
/// and call (`gateway-e2e-<tag>-<pid>-<n>`).
pub fn scratch_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "gateway-e2e-{}-{}-{}",
        tag,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}
