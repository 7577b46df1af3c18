//! `gatewayctl jwks`: the kid is the one the auth service signs with, the
//! overlays' auth-jwks.yaml are its output, and nothing private is printed.

use super::*;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gatewayctl-jwks-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn jwks(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatewayctl"))
        .arg("jwks")
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A fresh P-256 key: its PKCS#8 private PEM and SubjectPublicKeyInfo PEM.
fn new_key() -> (String, String) {
    let secret = loop {
        // A random scalar; the rare value outside 1..n is drawn again.
        if let Ok(k) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
            break k;
        }
    };
    let private = secret.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let public = secret
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    (private, public)
}

/// The base64 body lines of a PEM (what must never be printed).
fn pem_body(pem: &str) -> Vec<&str> {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

#[tokio::test]
async fn a_new_keys_kid_is_the_one_in_the_auth_services_tokens() {
    let dir = temp_dir();
    let (private, public) = new_key();
    let private_file = dir.join("jwt.pem");
    let public_file = dir.join("jwt.pub.pem");
    std::fs::write(&private_file, &private).unwrap();
    std::fs::write(&public_file, &public).unwrap();

    let from_private = stdout_ok(&jwks(&["--json", private_file.to_str().unwrap()]));
    for line in pem_body(&private) {
        assert!(!from_private.contains(line), "private key material printed");
    }
    assert!(!from_private.contains("\"d\""), "{from_private}");
    let set: JwkSet = serde_json::from_str(&from_private).unwrap();
    assert_eq!(set.keys.len(), 1);
    // The public half gives the same JWKS.
    let from_public = stdout_ok(&jwks(&["--json", public_file.to_str().unwrap()]));
    assert_eq!(from_public, from_private);

    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut config = auth_service::Config::hs256(
        services::Config::new(addr, "sqlite::memory:"),
        "unused-hs256-secret-0123456789abcdef",
    );
    config.signing = auth_service::Signing::Es256 {
        private_key_pem: private,
        key_id: None,
    };
    let issuer = auth_service::token::TokenIssuer::new(&config).unwrap();
    let token = issuer.issue("test123", &[], None, None).unwrap();
    let kid = decode_header(&token).unwrap().kid.unwrap();
    let jwk = set.find(&kid).expect("the token's kid is in the JWKS");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[&config.audience]);
    let claims = decode::<Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "test123");
    // And the auth service publishes the same JWK.
    assert_eq!(issuer.jwks().unwrap(), &serde_json::to_value(&set).unwrap());
    std::fs::remove_dir_all(dir).ok();
}

/// `"name": "value"` members of each key of an auth-jwks.yaml patch.
fn patch_keys(text: &str) -> Vec<Vec<(String, String)>> {
    let mut keys: Vec<Vec<(String, String)>> = Vec::new();
    for line in text.lines() {
        let Some(member) = line.strip_prefix("    ") else {
            continue;
        };
        let member = match member.strip_prefix("- ") {
            Some(first) => {
                keys.push(Vec::new());
                first
            }
            None => member.trim_start(),
        };
        if let Some((name, value)) = member.split_once(": ") {
            let unquote = |s: &str| serde_json::from_str::<String>(s).unwrap();
            if let Some(key) = keys.last_mut() {
                key.push((unquote(name), unquote(value)));
            }
        }
    }
    keys
}

fn without_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn the_overlays_auth_jwks_patches_are_its_output() {
    let overlays = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/overlays");
    let mut seen = 0;
    for entry in std::fs::read_dir(&overlays).unwrap() {
        let file = entry.unwrap().path().join("auth-jwks.yaml");
        let Ok(committed) = std::fs::read_to_string(&file) else {
            continue;
        };
        seen += 1;
        assert!(
            committed.contains("gatewayctl jwks"),
            "{}: names its generator",
            file.display()
        );
        let dir = temp_dir();
        let mut args = Vec::new();
        for (i, members) in patch_keys(&committed).iter().enumerate() {
            let get = |name: &str| {
                let (_, v) = members.iter().find(|(n, _)| n == name).unwrap();
                base64_url(v)
            };
            let mut sec1 = vec![4u8];
            sec1.extend(get("x"));
            sec1.extend(get("y"));
            let key = p256::PublicKey::from_sec1_bytes(&sec1).unwrap();
            let pem = dir.join(format!("key{i}.pub.pem"));
            std::fs::write(&pem, key.to_public_key_pem(LineEnding::LF).unwrap()).unwrap();
            args.push(pem.to_str().unwrap().to_owned());
        }
        assert!(!args.is_empty(), "{}: no key", file.display());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let generated = stdout_ok(&jwks(&args));
        assert_eq!(
            without_comments(&generated),
            without_comments(&committed),
            "{}: regenerate it with gatewayctl jwks",
            file.display()
        );
        // The kid is the thumbprint, and the patch sets exactly the JWKS
        // that --json prints.
        let set: JwkSet =
            serde_json::from_str(&stdout_ok(&jwks(&[&["--json"], args.as_slice()].concat())))
                .unwrap();
        for (jwk, members) in set.keys.iter().zip(patch_keys(&committed)) {
            let AlgorithmParameters::EllipticCurve(ec) = &jwk.algorithm else {
                panic!("{jwk:?}");
            };
            let value = |name: &str| members.iter().find(|(n, _)| n == name).unwrap().1.clone();
            assert_eq!(jwk.common.key_id.clone().unwrap(), value("kid"));
            assert_eq!((ec.x.clone(), ec.y.clone()), (value("x"), value("y")));
        }
        std::fs::remove_dir_all(dir).ok();
    }
    assert!(seen >= 2, "dev and production overlays");
}

fn base64_url(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

#[test]
fn bad_input_exits_non_zero_without_echoing_the_file() {
    let dir = temp_dir();
    let (private, _) = new_key();
    let body = pem_body(&private);
    // A damaged private key: its middle line cut short.
    let damaged = private.replace(body[1], &body[1][..10]);
    let cases = [
        ("garbage.pem", "not a key at all".to_owned(), 1),
        ("damaged.pem", damaged, 1),
    ];
    for (name, text, code) in cases {
        let file = dir.join(name);
        std::fs::write(&file, &text).unwrap();
        let out = jwks(&[file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(code), "{name}");
        assert!(out.stdout.is_empty(), "{name}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("P-256"), "{stderr}");
        for line in pem_body(&text).into_iter().filter(|l| l.len() > 20) {
            assert!(!stderr.contains(line), "{stderr}");
        }
    }
    let key = dir.join("k.pem");
    std::fs::write(&key, &private).unwrap();
    let twice = jwks(&[key.to_str().unwrap(), key.to_str().unwrap()]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("twice"));
    let missing = jwks(&[dir.join("missing.pem").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(4));
    let none = jwks(&[]);
    assert_eq!(none.status.code(), Some(1));
    std::fs::remove_dir_all(dir).ok();
}
