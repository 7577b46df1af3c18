//! `cargo xtask gen-cert [DIR]`: the gateway's self-signed TLS certificate
//! (ECDSA P-256, SAN localhost and 127.0.0.1), made once with the `openssl`
//! CLI: DIR/gateway.crt and DIR/gateway.key (default certs/, gitignored).
//! Made again only when missing or expiring within a day; the key is mode
//! 0600 in a mode 0700 directory and never leaves this machine.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::util::{self, on_path};

/// The certificate and key file names inside the directory.
pub const CERT: &str = "gateway.crt";
pub const KEY: &str = "gateway.key";

/// Makes DIR/gateway.{crt,key} unless a certificate valid for another day
/// is there; whether it made one.
pub fn ensure(dir: &Path) -> Result<bool> {
    let (crt, key) = (dir.join(CERT), dir.join(KEY));
    let nonempty = |p: &Path| p.metadata().is_ok_and(|m| m.len() > 0);
    if nonempty(&crt) && nonempty(&key) && valid_for_a_day(&crt) {
        return Ok(false);
    }
    if on_path("openssl").is_none() {
        bail!("gen-cert: openssl is required (apt-get install openssl)");
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let (crt_tmp, key_tmp) = (
        dir.join(format!("{CERT}.tmp")),
        dir.join(format!("{KEY}.tmp")),
    );
    util::run(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec"])
            .args(["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .arg("-keyout")
            .arg(&key_tmp)
            .arg("-out")
            .arg(&crt_tmp)
            .args(["-days", "365"])
            .args(["-subj", "/CN=localhost/O=Borrow Rate Gateway (development)"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-addext", "keyUsage=critical,digitalSignature"])
            .args(["-addext", "extendedKeyUsage=serverAuth"]),
    )
    .context("gen-cert: openssl req failed")?;
    fs::set_permissions(&key_tmp, fs::Permissions::from_mode(0o600))?;
    fs::set_permissions(&crt_tmp, fs::Permissions::from_mode(0o644))?;
    fs::rename(&key_tmp, &key)?;
    fs::rename(&crt_tmp, &crt)?;
    Ok(true)
}

/// [`ensure`], saying when it made a certificate (`cargo xtask gen-cert`).
pub fn run(dir: &Path) -> Result<()> {
    if ensure(dir)? {
        println!(
            "gen-cert: created self-signed certificate {}",
            dir.join(CERT).display()
        );
    }
    Ok(())
}

/// `openssl x509 -checkend 86400`: the certificate parses and does not
/// expire within a day.
fn valid_for_a_day(crt: &Path) -> bool {
    Command::new("openssl")
        .args(["x509", "-noout", "-checkend", "86400", "-in"])
        .arg(crt)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_an_owner_only_key_once() {
        if on_path("openssl").is_none() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("certs");
        assert!(ensure(&dir).unwrap());
        let mode = |p: &Path| p.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join(KEY)), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert!(!ensure(&dir).unwrap(), "a valid certificate is kept");
    }
}
