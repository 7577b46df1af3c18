//! `cargo xtask run [start|stop|status]`: the whole gateway on this machine
//! (127.0.0.1 only), supervised.
//!
//! * `start` (default): start everything, print the demo key and curl
//!   lines, then supervise until Ctrl-C (or SIGTERM, or `stop`);
//! * `stop`: stop a running instance (from another shell);
//! * `status`: show what is running.
//!
//! Processes: data-service :8081, calculation-service :8082, auth-service
//! :8083, ops-service :8084 (internal :8085), ratelimit-service :8090
//! (gRPC) / :8091 (HTTP), Envoy :8000 (HTTP), :8443 (TLS), admin
//! 127.0.0.1:9901. Logs and pid files: `$RUN_DIR` (default .run/), logs in
//! `$RUN_DIR/logs`. Binaries: `$BIN_DIR` (default: the first of
//! target/{server,release,debug} holding data-service, under
//! `$CARGO_TARGET_DIR` when set). Settings: environment, then .env if
//! present (see .env.example).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;

use crate::util::{env_file, is_executable, write_private};

const SERVICES: [&str; 5] = [
    "data-service",
    "calculation-service",
    "auth-service",
    "ops-service",
    "ratelimit-service",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Action {
    Start,
    Stop,
    Status,
}

struct Dirs {
    run: PathBuf,
    logs: PathBuf,
    pids: PathBuf,
}

impl Dirs {
    fn new(root: &Path) -> Dirs {
        let run = std::env::var_os("RUN_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".run"));
        Dirs {
            logs: run.join("logs"),
            pids: run.join("pids"),
            run,
        }
    }

    fn pid_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.pids)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "pid"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }
}

fn say(msg: &str) {
    println!("{msg}");
}

fn err(msg: &str) {
    eprintln!("run: {msg}");
}

fn read_pid(f: &Path) -> Option<u32> {
    fs::read_to_string(f).ok()?.trim().parse().ok()
}

fn alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped) counts as gone.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

fn stem(f: &Path) -> String {
    f.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Stops every process a run started (pid files only, never by name).
fn stop_all(dirs: &Dirs) {
    let files: Vec<PathBuf> = dirs
        .pid_files()
        .into_iter()
        .filter(|f| stem(f) != "supervisor")
        .collect();
    for f in &files {
        if let Some(pid) = read_pid(f).filter(|p| alive(*p)) {
            signal(pid, "TERM");
        }
    }
    for f in &files {
        if let Some(pid) = read_pid(f) {
            let deadline = Instant::now() + Duration::from_secs(5);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if alive(pid) {
                err(&format!(
                    "{} (pid {pid}) ignored SIGTERM; killing it",
                    stem(f)
                ));
                signal(pid, "KILL");
            }
        }
        let _ = fs::remove_file(f);
    }
}

pub fn run(root: &Path, action: Action) -> Result<()> {
    let dirs = Dirs::new(root);
    match action {
        Action::Stop => {
            let sup_file = dirs.pids.join("supervisor.pid");
            if let Some(sup) = read_pid(&sup_file).filter(|p| alive(*p)) {
                // The supervisor stops its children and exits.
                signal(sup, "TERM");
                for _ in 0..100 {
                    if !alive(sup) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            stop_all(&dirs);
            let _ = fs::remove_file(sup_file);
            say("stopped");
            Ok(())
        }
        Action::Status => {
            for f in dirs.pid_files() {
                match read_pid(&f) {
                    Some(pid) if alive(pid) => say(&format!("{}: running (pid {pid})", stem(&f))),
                    _ => say(&format!("{}: dead", stem(&f))),
                }
            }
            Ok(())
        }
        Action::Start => start(root, &dirs),
    }
}

/// A GET on 127.0.0.1 with a one-second budget: the status and body.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (hostport, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let addr = hostport.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

struct Supervisor {
    dirs: Dirs,
    children: Vec<(String, Child)>,
    stop: Arc<AtomicBool>,
}

impl Supervisor {
    fn start_proc(
        &mut self,
        name: &str,
        cmd: &mut Command,
        env: &BTreeMap<String, String>,
    ) -> Result<()> {
        let log_path = self.dirs.logs.join(format!("{name}.log"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let child = cmd
            .envs(env)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Their own process group: Ctrl-C reaches the supervisor only,
            // which stops them in order.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        fs::write(
            self.dirs.pids.join(format!("{name}.pid")),
            format!("{}\n", child.id()),
        )?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    fn tail(&self, name: &str) {
        let text =
            fs::read_to_string(self.dirs.logs.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for l in &lines[lines.len().saturating_sub(20)..] {
            eprintln!("{l}");
        }
    }

    fn shutdown(&mut self, code: i32) -> ! {
        say("");
        say("stopping...");
        stop_all(&self.dirs);
        for (_, c) in &mut self.children {
            let _ = c.wait();
        }
        let _ = fs::remove_file(self.dirs.pids.join("supervisor.pid"));
        say("stopped");
        std::process::exit(code)
    }

    /// A child that exited: name, status.
    fn exited(&mut self) -> Option<(String, String)> {
        for (name, c) in &mut self.children {
            if let Ok(Some(status)) = c.try_wait() {
                return Some((name.clone(), status.to_string()));
            }
        }
        None
    }

    fn check(&mut self) {
        if self.stop.load(Ordering::SeqCst) {
            self.shutdown(0);
        }
        if let Some((name, status)) = self.exited() {
            err(&format!(
                "{name} exited ({status}); last lines of {}:",
                self.dirs.logs.join(format!("{name}.log")).display()
            ));
            self.tail(&name);
            err("stopping the rest");
            self.shutdown(1);
        }
    }

    fn wait_http(&mut self, name: &str, url: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            self.check();
            if http_get(url).is_some_and(|(s, _)| (200..300).contains(&s)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        err(&format!(
            "{name} did not answer {url} within {secs} s; see {}",
            self.dirs.logs.join(format!("{name}.log")).display()
        ));
        self.shutdown(1);
    }
}

/// SIGINT and SIGTERM set the flag the supervisor polls.
fn watch_signals(flag: Arc<AtomicBool>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            flag.store(true, Ordering::SeqCst);
        });
    });
    Ok(())
}

fn binaries(root: &Path) -> (PathBuf, PathBuf) {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(|v| root.join(PathBuf::from(v)))
        .unwrap_or_else(|| root.join("target"));
    let bin = std::env::var_os("BIN_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            ["server", "release", "debug"]
                .iter()
                .map(|p| target.join(p))
                .find(|d| is_executable(&d.join("data-service")))
        })
        .unwrap_or_else(|| target.join("server"));
    let wasm = std::env::var_os("WASM_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("wasm32-wasip1/release"));
    (bin, wasm)
}

fn start(root: &Path, dirs: &Dirs) -> Result<()> {
    // Settings: the environment, then .env (`set -a; . .env`).
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    if root.join(".env").is_file() {
        env.extend(env_file(&root.join(".env"))?);
    }
    fs::create_dir_all(&dirs.logs)?;
    fs::create_dir_all(&dirs.pids)?;
    fs::create_dir_all(root.join("var"))?;
    fs::set_permissions(&dirs.run, fs::Permissions::from_mode(0o700))?;

    if let Some(sup) = read_pid(&dirs.pids.join("supervisor.pid")).filter(|p| alive(*p)) {
        bail!("already running (supervisor pid {sup}); use 'make stop' first");
    }
    stop_all(dirs); // leftovers of a run that was killed hard

    let (bin_dir, wasm_dir) = binaries(root);
    for b in SERVICES.iter().chain(&["gatewayctl"]) {
        if !is_executable(&bin_dir.join(b)) {
            bail!(
                "{}/{b} is missing: build first (make build)",
                bin_dir.display()
            );
        }
    }
    for f in ["auth_filter", "validation_filter", "metrics_filter"] {
        if !wasm_dir.join(format!("{f}.wasm")).is_file() {
            bail!(
                "{}/{f}.wasm is missing: build the filters first (make wasm)",
                wasm_dir.display()
            );
        }
    }
    crate::setup::python::envoy(root)?;
    crate::setup::debian::ensure(crate::setup::debian::RUN)?;
    let certs = root.join("certs");
    crate::cert::run(&certs)?;

    let get = |env: &BTreeMap<String, String>, k: &str| -> Option<String> {
        env.get(k)
            .cloned()
            .or_else(|| std::env::var(k).ok())
            .filter(|v| !v.is_empty())
    };
    // One JWT secret shared by the auth service (issues tokens) and the auth
    // filter (verifies them); generated once per checkout unless provided.
    if get(&env, "JWT_SECRET_KEY").is_none() {
        let secret_file = dirs.run.join("jwt_secret");
        if fs::metadata(&secret_file)
            .map(|m| m.len() == 0)
            .unwrap_or(true)
        {
            let mut bytes = [0u8; 32];
            File::open("/dev/urandom")?.read_exact(&mut bytes)?;
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            write_private(&secret_file, &format!("{hex}\n"))?;
        }
        env.insert(
            "JWT_SECRET_KEY".into(),
            fs::read_to_string(&secret_file)?.trim().to_owned(),
        );
    }
    for (k, default) in [
        ("ENVIRONMENT", "development"),
        ("LOG_LEVEL", "info"),
        ("RATE_LIMIT_PER_MINUTE", "60"),
        ("DATA_SERVICE_URL", "http://127.0.0.1:8081"),
        ("CALCULATION_SERVICE_URL", "http://127.0.0.1:8082"),
        ("AUTH_SERVICE_URL", "http://127.0.0.1:8083"),
        ("RATELIMIT_SERVICE_URL", "http://127.0.0.1:8091"),
        ("ENVOY_ADMIN_URL", "http://127.0.0.1:9901"),
    ] {
        let v = get(&env, k).unwrap_or_else(|| default.to_owned());
        env.insert(k.into(), v);
    }

    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone())?;
    fs::write(
        dirs.pids.join("supervisor.pid"),
        format!("{}\n", std::process::id()),
    )?;
    let mut sup = Supervisor {
        dirs: Dirs::new(root),
        children: Vec::new(),
        stop,
    };
    let logs = dirs.logs.display().to_string();
    say(&format!("logs: {logs}"));
    for s in SERVICES {
        sup.start_proc(s, &mut Command::new(bin_dir.join(s)), &env)?;
    }
    let internal = get(&env, "INTERNAL_LISTEN_ADDR").unwrap_or_else(|| "127.0.0.1:8085".into());
    sup.wait_http("data-service", "http://127.0.0.1:8081/health", 60);
    sup.wait_http("calculation-service", "http://127.0.0.1:8082/health", 60);
    sup.wait_http("auth-service", "http://127.0.0.1:8083/health", 60);
    sup.wait_http("ops-service", "http://127.0.0.1:8084/health", 60);
    sup.wait_http("ops-service", &format!("http://{internal}/health"), 60);
    sup.wait_http("ratelimit-service", "http://127.0.0.1:8091/health", 60);

    // The local shape of the gateway's Envoy configuration.
    let mut render_env: BTreeMap<String, String> = std::env::vars().collect();
    render_env.extend(env.clone());
    let mut options = gateway_config::Options::new(gateway_config::Shape::Local);
    options.wasm_dir = Some(wasm_dir.to_string_lossy().into_owned());
    options.cert_dir = Some(certs.to_string_lossy().into_owned());
    let (text, warnings) = match gateway_config::render(&options, &render_env) {
        Ok(r) => r,
        Err(e) => {
            err(&format!("gateway-config render --shape local failed: {e}"));
            sup.shutdown(1);
        }
    };
    for w in warnings {
        eprintln!("gateway-config: warning: {w}");
    }
    let envoy_yaml = dirs.run.join("envoy.yaml");
    write_private(&envoy_yaml, &text)?;
    let envoy_log_level = get(&env, "ENVOY_LOG_LEVEL").unwrap_or_else(|| "info".into());
    sup.start_proc(
        "envoy",
        Command::new(root.join(".venv/bin/envoy"))
            .arg("-c")
            .arg(&envoy_yaml)
            .args(["--log-level", &envoy_log_level, "--disable-hot-restart"]),
        &env,
    )?;
    sup.wait_http("envoy", "http://127.0.0.1:8000/health", 60);
    // Loading the wasm filters blocks Envoy's main thread for a few seconds,
    // so the first health checks may have timed out: wait until every
    // backend cluster is healthy again before handing out the demo key.
    let unhealthy = || -> Option<Vec<String>> {
        let (_, body) = http_get("http://127.0.0.1:9901/clusters")?;
        Some(
            body.lines()
                .filter(|l| l.contains("::health_flags::/"))
                .map(str::to_owned)
                .collect(),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < deadline {
        sup.check();
        last = unhealthy();
        if last.as_ref().is_some_and(Vec::is_empty) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if let Some(lines) = last.filter(|l| !l.is_empty()) {
        err("some backends are not healthy yet:");
        for l in lines {
            eprintln!("{l}");
        }
    }

    // --- demo keys
    let mut create_key = |client: &str| -> String {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dirs.logs.join("gatewayctl.log"));
        let out = Command::new(bin_dir.join("gatewayctl"))
            .args(["keys", "create", "--client-id", client])
            .envs(&env)
            .stderr(log.map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
            .output();
        match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                .lines()
                .last()
                .unwrap_or_default()
                .split_whitespace()
                .collect(),
            _ => {
                err(&format!(
                    "gatewayctl keys create failed; see {logs}/gatewayctl.log"
                ));
                sup.shutdown(1);
            }
        }
    };
    let api_key = create_key("test123");
    write_private(&dirs.run.join("demo_api_key"), &format!("{api_key}\n"))?;
    // The second worked example prices for client123, which needs its own
    // key (or an admin-scoped one).
    let client123_key = create_key("client123");
    print!(
        "{}",
        banner(
            &api_key,
            &client123_key,
            &internal,
            &logs,
            &dirs.run.display().to_string()
        )
    );
    std::io::stdout().flush()?;

    // --- supervise
    loop {
        sup.check();
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn banner(api_key: &str, client123_key: &str, internal: &str, logs: &str, run_dir: &str) -> String {
    let base = "http://127.0.0.1:8000";
    format!(
        r#"
Borrow Rate & Locate Fee gateway is running.

  API           {base}   (TLS: https://127.0.0.1:8443, self-signed: curl -k)
  Docs          {base}/docs
  Metrics       {base}/metrics   (no per-client series)
  Health        {base}/health/detailed   (overall status only)
  Internal      http://{internal}/metrics, /health/detailed   (client ids, dependency details)
  Logs          {logs}
  Demo API key  {api_key}   (client test123; also in {run_dir}/demo_api_key)

Try it:

  export API_KEY={api_key}

  curl -s {base}/api/v1/rates/AAPL -H "X-API-Key: $API_KEY"

  curl -s -X POST {base}/api/v1/calculate-locate -H "X-API-Key: $API_KEY" \
    -H 'Content-Type: application/json' \
    -d '{{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}}'
  # -> total_fee 58.75 (borrow_cost 32.14, markup 1.61, transaction_fees 25.00)

  # GME for client123, with client123's own key:
  curl -s -X POST {base}/api/v1/calculate-locate -H "X-API-Key: {client123_key}" \
    -H 'Content-Type: application/json' \
    -d '{{"ticker":"GME","position_value":250000,"loan_days":7,"client_id":"client123"}}'
  # -> total_fee 3462.28 (3104.45 + 232.83 + 125.00)

  # A short-lived JWT instead of the key:
  TOKEN=$(curl -s -X POST {base}/api/v1/auth/token -H "X-API-Key: $API_KEY" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s {base}/api/v1/rates/GME -H "Authorization: Bearer $TOKEN"

Ctrl-C (or 'make stop') stops everything.
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_carries_both_keys_and_the_curl_lines() {
        let b = banner("k1", "k2", "127.0.0.1:8085", "/l", "/r");
        assert!(b.contains("export API_KEY=k1"));
        assert!(b.contains(r#"-H "X-API-Key: k2""#));
        assert!(b.contains(
            r#"curl -s http://127.0.0.1:8000/api/v1/rates/AAPL -H "X-API-Key: $API_KEY""#
        ));
        assert!(b.contains(r#"-d '{"ticker":"AAPL""#));
    }

    #[test]
    fn http_get_reads_status_and_body() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // The whole request first: closing with unread bytes would
            // reset the connection before the client reads the answer.
            let mut request = Vec::new();
            let mut buf = [0u8; 512];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "the request ended before its headers did");
                request.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno")
                .unwrap();
        });
        assert_eq!(
            http_get(&format!("http://{addr}/health")),
            Some((503, "no".into()))
        );
        server.join().unwrap();
        assert_eq!(http_get("http://127.0.0.1:1/health"), None);
    }
}
