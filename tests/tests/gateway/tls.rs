//! TLS: protocol versions, ciphers, HSTS.

use std::process::Command;

use super::{raw, Setup};

/// `openssl s_client` against the TLS listener: (exit success, all output).
fn s_client(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .arg("s_client")
        .args([
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `curl -i` over TLS (certificate not checked): the whole answer, lower
/// case.
fn curl_tls(port: u16, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sk", "-i", "--max-time", "10"])
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_and_1_3_handshakes_succeed_and_older_or_weak_ones_fail() {
    let (_envoy, tls) = Setup::default().tls().start().await;
    let tls = tls.expect("tls port");

    let (ok, out) = s_client(tls, &["-tls1_3"]);
    assert!(ok && out.contains("TLSv1.3"), "TLS 1.3 refused:\n{out}");
    let (ok, out) = s_client(tls, &["-tls1_2"]);
    assert!(ok && out.contains("TLSv1.2"), "TLS 1.2 refused:\n{out}");
    assert!(out.contains("ECDHE"), "forward-secret suite:\n{out}");

    // The client is allowed to offer TLS 1.1 (security level 0), so the
    // refusal comes from the server.
    let (ok, out) = s_client(tls, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
    assert!(!ok, "TLS 1.1 accepted:\n{out}");
    assert!(
        out.contains("alert protocol version"),
        "server refused the version:\n{out}"
    );

    let (ok, out) = s_client(tls, &["-tls1_2", "-cipher", "AES128-SHA"]);
    assert!(!ok, "a non-forward-secret CBC suite was accepted:\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_is_sent_on_tls_responses_only() {
    let (envoy, tls) = Setup::default().tls().start().await;
    let tls = tls.expect("tls port");
    let text = curl_tls(tls, "/health");
    assert!(text.starts_with("http/2 200"), "{text}");
    assert!(
        text.contains("strict-transport-security: max-age=31536000; includesubdomains"),
        "{text}"
    );
    // Error answers over TLS carry it too.
    let text = curl_tls(tls, "/nope");
    assert!(text.starts_with("http/2 404"), "{text}");
    assert!(text.contains("strict-transport-security:"), "{text}");

    let plain = raw(envoy.port, "GET", "/health", &[], "");
    assert_eq!(plain.status, 200);
    assert_eq!(
        plain.header("strict-transport-security"),
        None,
        "no HSTS over plain HTTP"
    );
}
