//! The `local` gateway in front of services the test runs in its own
//! process: unique names, loopback addresses, a SQLite database of its
//! own, the cluster list, and `gatewayctl` on that database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{free_port, repo_root, scratch_dir, target_dir};

/// `<tag>_<pid>_<n>`: a name no other test or run uses (a client id, a
/// Redis key prefix).
pub fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// 127.0.0.1:`port` (0: any free port when bound).
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A new SQLite database file in a scratch directory of its own: the
/// directory (to remove afterwards) and the database URL.
pub fn sqlite_database(tag: &str) -> (PathBuf, String) {
    let dir = scratch_dir(tag);
    let url = format!("sqlite://{}?mode=rwc", dir.join("gateway.db").display());
    (dir, url)
}

/// The clusters of [`crate::render_local_gateway`]: the data and
/// calculation services, the auth service and the rate-limit service's
/// gRPC port at these addresses, the ops service at a closed port.
pub fn local_upstreams(
    data: SocketAddr,
    calculation: SocketAddr,
    auth: SocketAddr,
    rate_limit_grpc: SocketAddr,
) -> Vec<(&'static str, String)> {
    vec![
        ("data_service", data.to_string()),
        ("calculation_service", calculation.to_string()),
        ("auth_service", auth.to_string()),
        ("ops_service", loopback(free_port()).to_string()),
        ("rate_limit_service", rate_limit_grpc.to_string()),
    ]
}

/// [`crate::render_local_gateway`] for `clusters` and the rate-limit
/// service `rls`, with tokens signed by `secret`, health checks every
/// 500 ms, and the `extra` settings (`NAME=VALUE`).
pub fn local_gateway(
    clusters: &[(&str, String)],
    rls: &ratelimit::Running,
    secret: &str,
    extra: &[String],
) -> String {
    let mut sets = vec![
        format!("JWT_SECRET_KEY={secret}"),
        "HEALTH_CHECK_INTERVAL_MS=500".to_owned(),
    ];
    sets.extend_from_slice(extra);
    crate::render_local_gateway(clusters, rls.http_addr.port(), &sets)
}

/// The services behind the `local` gateway that a test runs in its own
/// process: the auth service (tokens signed by a secret), a counting
/// upstream standing in for the data service, and a rate-limit service of
/// its own.
pub struct LocalServices {
    pub auth: services::common::Server,
    pub upstream: crate::CountingUpstream,
    pub rls: ratelimit::Running,
    secret: String,
}

impl LocalServices {
    /// The auth service over `database_url` signing with `secret`, the
    /// upstream, and the rate-limit service of [`rate_limit_config`]`(tag)`.
    pub async fn start(database_url: &str, secret: &str, tag: &str) -> LocalServices {
        let (auth, _state) = start_auth_service(database_url, secret).await;
        let upstream = crate::CountingUpstream::start().await;
        let rls = ratelimit::spawn(rate_limit_config(tag))
            .await
            .unwrap_or_else(|e| panic!("rate-limit service: {e}"));
        LocalServices {
            auth,
            upstream,
            rls,
            secret: secret.to_owned(),
        }
    }

    /// [`local_gateway`] in front of these, the calculation service at
    /// `calculation` (the upstream when `None`), with the `extra` settings.
    pub fn gateway(&self, calculation: Option<SocketAddr>, extra: &[String]) -> String {
        let upstream = loopback(self.upstream.port);
        local_gateway(
            &local_upstreams(
                upstream,
                calculation.unwrap_or(upstream),
                self.auth.addr,
                self.rls.grpc_addr,
            ),
            &self.rls,
            &self.secret,
            extra,
        )
    }
}

/// gatewayctl as built by this workspace (`cargo test` builds it for its
/// own tests; `make build` into target/server), built when missing.
pub fn gatewayctl() -> PathBuf {
    let target = target_dir();
    for dir in ["debug", "server"] {
        let p = target.join(dir).join("gatewayctl");
        if p.exists() {
            return p;
        }
    }
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args(["build", "-q", "-p", "gatewayctl"])
        .current_dir(repo_root())
        .status()
        .expect("cargo build -p gatewayctl");
    assert!(status.success());
    target.join("debug/gatewayctl")
}

/// `gatewayctl --database-url <database_url> --actor <actor> <args>`,
/// which must succeed: its standard output.
pub fn run_gatewayctl(database_url: &str, actor: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(gatewayctl())
        .args(["--database-url", database_url, "--actor", actor])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("gatewayctl: {e}"));
    assert!(
        out.status.success(),
        "gatewayctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// [`run_gatewayctl`] with `--json`: the last line of its output, parsed.
pub fn gatewayctl_json(database_url: &str, actor: &str, args: &[&str]) -> serde_json::Value {
    let args: Vec<&str> = ["--json"].iter().chain(args).copied().collect();
    let out = run_gatewayctl(database_url, actor, &args);
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("gatewayctl --json: {e}: {out}"))
}

/// The rate-limit service's settings for a test: gRPC and HTTP on free
/// loopback ports, a key prefix of its own (`tag` made unique), the rest
/// as default.
pub fn rate_limit_config(tag: &str) -> ratelimit::Config {
    ratelimit::Config {
        grpc_addr: loopback(0),
        http_addr: loopback(0),
        key_prefix: unique(tag),
        ..ratelimit::Config::default()
    }
}

/// The auth service's settings for a test: a free loopback port,
/// `database_url`, HS256 tokens signed with `secret`.
pub fn auth_service_config(database_url: &str, secret: &str) -> auth_service::Config {
    auth_service::Config::hs256(
        services::Config::new(loopback(0), database_url.to_owned()),
        secret,
    )
}

/// The auth service of [`auth_service_config`]: its server and state.
pub async fn start_auth_service(
    database_url: &str,
    secret: &str,
) -> (services::common::Server, auth_service::AppState) {
    auth_service::start(&auth_service_config(database_url, secret))
        .await
        .unwrap_or_else(|e| panic!("auth service: {e}"))
}

/// Serves `receiver` as an OTLP/gRPC `TraceService` (the collector's) on a
/// free loopback port for the rest of the test: its address.
pub async fn serve_trace_receiver<S>(receiver: S) -> SocketAddr
where
    S: opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService,
{
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
    let (listener, addr) = crate::stand_in::bind().await;
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    addr
}
