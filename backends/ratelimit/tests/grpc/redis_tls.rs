use super::*;
use service_http::test_support::TestCa;
use std::process::{Child, Command, Stdio};

const USER: &str = "ratelimit";
const PASSWORD: &str = "tls-acl-s3cret";

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client
/// certificate, all signed by that CA, as PEM files in a scratch dir.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let dir = std::env::temp_dir().join(unique("rls-redis-tls"));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, body: String| std::fs::write(dir.join(name), body).unwrap();
        let ca = TestCa::new(&unique("ratelimit test CA"));
        write("ca.pem", ca.pem());
        for (file, names, usage) in [
            ("server", &["127.0.0.1", "localhost"][..], ServerAuth),
            ("client", &["ratelimit"][..], ClientAuth),
        ] {
            let (cert, key) = ca.issue(file, names, Some(usage));
            write(&format!("{file}.pem"), cert);
            write(&format!("{file}.key"), key);
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The CA file as `REDIS_CA_FILE` takes it.
    fn tls(&self) -> ratelimit::config::RedisTls {
        ratelimit::config::RedisTls {
            ca_file: Some(self.path("ca.pem")),
            ..Default::default()
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-server` on a TLS port only (`--port 0`), with the ACL user
/// [`USER`] and the `default` user switched off, persisting nothing.
struct TlsRedis {
    port: u16,
    pki: Pki,
    auth_clients: &'static str,
    child: Child,
}

impl TlsRedis {
    /// `None` (after saying why) when `redis-server` is not installed.
    /// `auth_clients`: `no` or `yes` (client certificates required).
    fn start(auth_clients: &'static str) -> Option<TlsRedis> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            println!("redis-server is not installed: skipping the Redis TLS test");
            return None;
        }
        let pki = Pki::new();
        let port = service_http::test_support::free_port();
        let child = Self::spawn(&pki, port, auth_clients);
        Some(TlsRedis {
            port,
            pki,
            auth_clients,
            child,
        })
    }

    fn spawn(pki: &Pki, port: u16, auth_clients: &str) -> Child {
        let p = |n: &str| pki.path(n).display().to_string();
        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1"])
            .args(["--tls-port", &port.to_string()])
            .args(["--tls-cert-file", &p("server.pem")])
            .args(["--tls-key-file", &p("server.key")])
            .args(["--tls-ca-cert-file", &p("ca.pem")])
            .args(["--tls-auth-clients", auth_clients])
            .args(["--user", "default", "off"])
            .args([
                "--user",
                USER,
                "on",
                &format!(">{PASSWORD}"),
                "~*",
                "&*",
                "+@all",
            ])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--dir", &pki.dir.display().to_string()])
            .args(["--logfile", &p("redis.log")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(pki.path("redis.log")).unwrap_or_default();
                panic!("redis-server --tls-port exited: {status}\n{log}");
            }
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn url(&self, user: &str, password: &str) -> String {
        format!("rediss://{user}:{password}@127.0.0.1:{}/0", self.port)
    }

    /// SIGKILL: every connection dies, and with it every counter.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A new, empty server on the same port, certificates and users.
    fn restart(&mut self) {
        self.child = Self::spawn(&self.pki, self.port, self.auth_clients);
    }

    /// A connection of the test's own (TLS, the ACL user).
    async fn connect(&self) -> redis::aio::MultiplexedConnection {
        let ca = std::fs::read(self.pki.path("ca.pem")).unwrap();
        let client = redis::Client::build_with_tls(
            self.url(USER, PASSWORD),
            redis::TlsCertificates {
                client_tls: (self.auth_clients == "yes").then(|| redis::ClientTlsConfig {
                    client_cert: std::fs::read(self.pki.path("client.pem")).unwrap(),
                    client_key: std::fs::read(self.pki.path("client.key")).unwrap(),
                }),
                root_cert: Some(ca),
            },
        )
        .unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn wait_healthy(r: &Running, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (status, body) = health(r).await;
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "never healthy: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `ratelimit-service` binary started with `env`: its log (stderr)
/// until it says it listens, plus a little more.
fn service_log(env: &[(&str, String)]) -> String {
    use std::io::BufRead;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ratelimit-service"));
    cmd.env_clear()
        .env("GRPC_LISTEN_ADDR", "127.0.0.1:0")
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("RATE_LIMITS_FILE", "")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut listening_at: Option<Instant> = None;
    while Instant::now() < deadline
        && listening_at.is_none_or(|t| t.elapsed() < Duration::from_millis(300))
    {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
            if line.contains("Rate-limit service listening") {
                listening_at = Some(Instant::now());
            }
            log.push_str(&line);
            log.push('\n');
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    log
}

#[tokio::test]
async fn counters_live_in_a_tls_redis_reached_with_an_acl_user() {
    let Some(redis) = TlsRedis::start("no") else {
        return;
    };
    let config = Config {
        redis_url: Some(redis.url(USER, PASSWORD)),
        redis_tls: redis.pki.tls(),
        ..config()
    };
    let prefix = config.key_prefix.clone();
    let (rls, mut c) = start(config).await;
    let id = unique("tls");
    let d = [("client_id", id.as_str()), ("client_limit", "3")];
    for left in (0..3).rev() {
        let r = ask(&mut c, &d).await;
        assert!(is_ok(&r), "{r:?}");
        assert_eq!(
            header(&r, "x-ratelimit-remaining"),
            Some(left.to_string().as_str())
        );
    }
    let r = ask(&mut c, &d).await;
    assert!(is_over(&r), "{r:?}");
    assert_eq!(rls.shared.metrics().decisions("failure_allowed"), 0);
    assert_eq!(health(&rls).await.0, 200);

    // The counter is in that Redis: one key for this client, at 3 (the
    // refused hit is not counted), expiring with its window.
    let mut own = redis.connect().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut own)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with(&format!(":{id}")), "{keys:?}");
    let value: u64 = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut own)
        .await
        .unwrap();
    assert_eq!(value, 3);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut own)
        .await
        .unwrap();
    assert!((1..=60_000).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate_redis_requires() {
    let Some(redis) = TlsRedis::start("yes") else {
        return;
    };
    let with_cert = ratelimit::config::RedisTls {
        client_cert_file: Some(redis.pki.path("client.pem")),
        client_key_file: Some(redis.pki.path("client.key")),
        ..redis.pki.tls()
    };
    let (rls, mut c) = start(Config {
        redis_url: Some(redis.url(USER, PASSWORD)),
        redis_tls: with_cert,
        ..config()
    })
    .await;
    let d = [("client_id", "mtls"), ("client_limit", "1")];
    assert!(is_ok(&ask(&mut c, &d).await));
    assert!(is_over(&ask(&mut c, &d).await));
    assert_eq!(health(&rls).await.0, 200);

    let without = ratelimit::spawn(Config {
        redis_url: Some(redis.url(USER, PASSWORD)),
        redis_tls: redis.pki.tls(),
        ..config()
    })
    .await
    .unwrap();
    // Without the certificate the server drops the connection: under
    // TLS 1.3 its refusal comes after the client's side of the handshake,
    // so the client sees the connection closed, not an alert.
    let (status, body) = health(&without).await;
    assert_eq!(status, 503, "{body}");
    let d = [("client_id", "no-cert"), ("client_limit", "1")];
    let mut c = client(&without).await;
    assert!(is_ok(&ask(&mut c, &d).await));
    assert!(is_ok(&ask(&mut c, &d).await), "nothing counted: fail open");
}

#[tokio::test]
async fn an_untrusted_redis_certificate_is_refused_and_the_failure_mode_applies() {
    let Some(redis) = TlsRedis::start("no") else {
        return;
    };
    // A CA file from another throwaway CA, and the system roots: neither
    // vouches for this server.
    let other = Pki::new();
    for tls in [other.tls(), ratelimit::config::RedisTls::default()] {
        let rls = ratelimit::spawn(Config {
            redis_url: Some(redis.url(USER, PASSWORD)),
            redis_tls: tls.clone(),
            ..config()
        })
        .await
        .unwrap();
        let (status, body) = health(&rls).await;
        assert_eq!(status, 503, "{body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("Redis TLS handshake failed: invalid peer certificate: UnknownIssuer"),
            "{tls:?}: {msg}"
        );
        assert!(!msg.contains(PASSWORD));
        let mut c = client(&rls).await;
        let d = [("client_id", "untrusted"), ("client_limit", "1")];
        assert!(is_ok(&ask(&mut c, &d).await), "allow: fail open");
        assert!(is_ok(&ask(&mut c, &d).await), "allow: nothing counted");
        assert_eq!(rls.shared.metrics().decisions("failure_allowed"), 2);
    }
    let deny = ratelimit::spawn(Config {
        redis_url: Some(redis.url(USER, PASSWORD)),
        redis_tls: other.tls(),
        failure_mode: FailureMode::Deny,
        ..config()
    })
    .await
    .unwrap();
    let r = ask(&mut client(&deny).await, &[("client_id", "untrusted")]).await;
    assert!(is_over(&r), "deny: {r:?}");
    assert_eq!(header(&r, "retry-after"), Some("1"));

    // The binary says so in its log, with the URL's password hidden.
    let log = service_log(&[
        ("REDIS_URL", redis.url(USER, PASSWORD)),
        ("REDIS_CA_FILE", other.path("ca.pem").display().to_string()),
    ]);
    assert!(
        log.contains("Redis TLS handshake failed: invalid peer certificate: UnknownIssuer"),
        "{log}"
    );
    assert!(log.contains(&format!("{USER}:***@")), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
}

#[tokio::test]
async fn a_wrong_redis_password_is_refused_clearly() {
    let Some(redis) = TlsRedis::start("no") else {
        return;
    };
    let wrong = "not-the-password";
    let rls = ratelimit::spawn(Config {
        redis_url: Some(redis.url(USER, wrong)),
        redis_tls: redis.pki.tls(),
        ..config()
    })
    .await
    .unwrap();
    let (status, body) = health(&rls).await;
    assert_eq!(status, 503);
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("Redis authentication failed: user name or password refused"),
        "{msg}"
    );
    assert!(!msg.contains(wrong), "{msg}");
    let r = ask(&mut client(&rls).await, &[("client_id", "wrongpw")]).await;
    assert!(is_ok(&r), "allow: fail open");

    let log = service_log(&[
        ("REDIS_URL", redis.url(USER, wrong)),
        (
            "REDIS_CA_FILE",
            redis.pki.path("ca.pem").display().to_string(),
        ),
    ]);
    assert!(log.contains("Redis authentication failed"), "{log}");
    assert!(!log.contains(wrong), "{log}");
}

#[tokio::test]
async fn redis_lost_mid_window_follows_the_failure_mode_and_counting_resumes_afresh() {
    let Some(mut redis) = TlsRedis::start("no") else {
        return;
    };
    let on_redis = |failure_mode| Config {
        redis_url: Some(redis.url(USER, PASSWORD)),
        redis_tls: redis.pki.tls(),
        failure_mode,
        ..config()
    };
    let allow = ratelimit::spawn(on_redis(FailureMode::Allow))
        .await
        .unwrap();
    let deny = ratelimit::spawn(on_redis(FailureMode::Deny)).await.unwrap();
    let (mut ca, mut cd) = (client(&allow).await, client(&deny).await);
    let id = unique("lost");
    let d = [("client_id", id.as_str()), ("client_limit", "3")];
    for c in [&mut ca, &mut cd] {
        let r = ask(c, &d).await;
        assert_eq!(header(&r, "x-ratelimit-remaining"), Some("2"), "{r:?}");
    }

    redis.kill();
    for _ in 0..3 {
        let r = ask(&mut ca, &d).await;
        assert!(is_ok(&r), "allow while Redis is down: {r:?}");
        assert!(header(&r, "x-ratelimit-remaining").is_none());
        let r = ask(&mut cd, &d).await;
        assert!(is_over(&r), "deny while Redis is down: {r:?}");
        assert_eq!(header(&r, "retry-after"), Some("1"));
    }
    assert_eq!(allow.shared.metrics().decisions("failure_allowed"), 3);
    assert_eq!(deny.shared.metrics().decisions("failure_denied"), 3);
    assert_eq!(health(&allow).await.0, 503);
    assert_eq!(health(&deny).await.0, 503);

    // Back on the same port: both services reconnect by themselves. This
    // Redis kept nothing on disk, so the window starts again at 0: the
    // hit counted before the outage is gone (a Redis with persistence or
    // a replica keeps it).
    redis.restart();
    wait_healthy(&allow, 15).await;
    wait_healthy(&deny, 15).await;
    for c in [&mut ca, &mut cd] {
        for left in (0..3).rev() {
            let r = ask(c, &d).await;
            assert!(is_ok(&r), "{r:?}");
            assert_eq!(
                header(&r, "x-ratelimit-remaining"),
                Some(left.to_string().as_str())
            );
        }
        assert!(is_over(&ask(c, &d).await));
    }
}
