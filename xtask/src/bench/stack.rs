//! The make-run stack for the end-to-end benchmarks and the soak: `cargo
//! xtask run` in a scratch RUN_DIR (logs warn), one API key for test123
//! with a 1 000 000/min limit so the load is never throttled, verified once
//! before any measurement. Stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::common::{binary, curl_post, wait_until};

/// The calculate-locate body every end-to-end benchmark sends.
pub const BODY: &str =
    r#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;

/// The calculate-locate URL of the stack's Envoy.
pub const CALCULATE: &str = "http://127.0.0.1:8000/api/v1/calculate-locate";

/// Calls the stack gets before the measurements (key verification).
pub const WARM_UP_CALLS: u64 = 3;

pub struct Stack {
    root: PathBuf,
    pub run_dir: PathBuf,
    /// The benchmark's API key (client test123).
    pub key: String,
    /// Extra environment the stack was started with.
    env: Vec<(String, String)>,
    supervisor: Child,
}

impl Stack {
    /// Starts the stack with `env` added to the environment and waits
    /// until it prints its banner (at most 120 s).
    pub fn start(root: &Path, env: &[(&str, String)]) -> Result<Stack> {
        let run_dir = match std::env::var_os("RUN_DIR").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => tempfile::Builder::new()
                .prefix("bench-stack.")
                .tempdir()?
                .keep(),
        };
        std::fs::create_dir_all(&run_dir)?;
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        env.push(("RUN_DIR".into(), run_dir.display().to_string()));
        env.push(("LOG_LEVEL".into(), "warn".into()));
        env.push(("ENVOY_LOG_LEVEL".into(), "warn".into()));
        let out_path = run_dir.join("run.out");
        let out = std::fs::File::create(&out_path)?;
        // Same process group: Ctrl-C reaches the supervisor, which stops
        // what it started.
        let supervisor = Command::new(std::env::current_exe()?)
            .arg("--root")
            .arg(root)
            .arg("run")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("cannot start cargo xtask run")?;
        let mut stack = Stack {
            root: root.to_owned(),
            run_dir,
            key: String::new(),
            env,
            supervisor,
        };
        let banner = || {
            std::fs::read_to_string(&out_path)
                .unwrap_or_default()
                .contains("curl")
        };
        let up = wait_until(Duration::from_secs(120), || {
            !matches!(stack.supervisor.try_wait(), Ok(None)) || banner()
        });
        if !up || !banner() {
            bail!(
                "bench: the stack did not start; {}:\n{}",
                out_path.display(),
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        let out = crate::util::run(
            Command::new(binary(root, "gatewayctl")?)
                .args([
                    "keys",
                    "create",
                    "--client-id",
                    "test123",
                    "--rate-limit-per-minute",
                    "1000000",
                ])
                .envs(stack.env.iter().map(|(k, v)| (k, v))),
        )?;
        stack.key = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let key_header = format!("x-api-key: {}", stack.key);
        for _ in 0..WARM_UP_CALLS {
            curl_post(
                CALCULATE,
                &[&key_header, "content-type: application/json"],
                Some(BODY),
                false,
            )?;
        }
        Ok(stack)
    }

    /// `x-api-key: <key>`.
    pub fn key_header(&self) -> String {
        format!("x-api-key: {}", self.key)
    }

    /// The processes of the stack (name, pid), without the supervisor.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = std::fs::read_dir(self.run_dir.join("pids"))
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "pid"))
                    .filter_map(|p| {
                        let name = p.file_stem()?.to_string_lossy().into_owned();
                        let pid = std::fs::read_to_string(&p).ok()?.trim().parse().ok()?;
                        (name != "supervisor").then_some((name, pid))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// The JWT secret the stack's auth service signs with.
    pub fn jwt_secret(&self) -> Result<String> {
        if let Some(s) = self.env("JWT_SECRET_KEY") {
            return Ok(s);
        }
        let f = self.run_dir.join("jwt_secret");
        Ok(crate::util::read(&f)?.trim().to_owned())
    }

    /// A setting of the stack's environment (the extra one, then ours).
    pub fn env(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
            .filter(|v| !v.is_empty())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let pid = self.supervisor.id().to_string();
        let _ = Command::new("kill")
            .args(["-TERM", &pid])
            .stderr(Stdio::null())
            .status();
        let sup = &mut self.supervisor;
        wait_until(Duration::from_secs(20), || {
            !matches!(sup.try_wait(), Ok(None))
        });
        // Whatever the supervisor left (pid files only).
        let _ = Command::new(std::env::current_exe().unwrap_or_else(|_| "cargo".into()))
            .arg("--root")
            .arg(&self.root)
            .args(["run", "stop"])
            .env("RUN_DIR", &self.run_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.supervisor.kill();
        let _ = self.supervisor.wait();
    }
}
