//! A real Envoy process: started from a YAML template, hot-restarted,
//! validated, and waited on until its clusters are healthy.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::{envoy_bin, free_port, scratch_dir, Answer};

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

    /// Sends a request (`send`) every 200 ms until its answer is `ready`,
    /// for at most `within` (the active health checks pass a while after
    /// Envoy is up): that answer. Panics with the last answer and Envoy's
    /// log.
    pub async fn until_answer<F, Fut>(
        &self,
        within: Duration,
        mut send: F,
        ready: impl Fn(&Answer) -> bool,
    ) -> Answer
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Answer>,
    {
        let ready = &ready;
        crate::poll(within, Duration::from_millis(200), || {
            let answer = send();
            async move {
                let a = answer.await;
                if ready(&a) {
                    Ok(a)
                } else {
                    Err(format!(
                        "gateway not ready: {} {}\n{}",
                        a.status,
                        a.body,
                        self.log()
                    ))
                }
            }
        })
        .await
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

/// Waits (at most `within`) until Envoy's active health checks see every
/// endpoint of every cluster healthy, except the clusters in `except`.
/// Loading the wasm filters blocks Envoy's main thread for seconds, so the
/// first checks may have timed out.
pub async fn wait_until_healthy(envoy: &Envoy, except: &[&str], within: Duration) {
    crate::poll(within, Duration::from_millis(100), || async move {
        let clusters = envoy.admin_get("/clusters").await;
        let unhealthy: Vec<&str> = clusters
            .lines()
            .filter(|l| l.contains("::health_flags::") && !l.ends_with("::healthy"))
            .filter(|l| !except.iter().any(|c| l.starts_with(&format!("{c}::"))))
            .collect();
        if unhealthy.is_empty() && clusters.contains("::health_flags::") {
            Ok(())
        } else {
            Err(format!("backends not healthy: {unhealthy:?}"))
        }
    })
    .await
}
