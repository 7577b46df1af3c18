//! Servers of a test's own that it may crash and start again: Redis and
//! PostgreSQL (also over TLS).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, scratch_dir};

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
/// fails under CI (`CI` set: `make test` installs them, see
/// `xtask::setup::debian::TEST`) with a message saying what is missing, and elsewhere returns
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
