//! PostgreSQL over TLS, for real: a throwaway CA and server certificate
//! (`service_http::test_support::TestCa`), a PostgreSQL cluster of the
//! test's own (`initdb`, `pg_ctl`) with `ssl = on` and a `pg_hba.conf`
//! that lets TCP clients in over TLS only, and the services' own startup path and store connecting to it
//! with `DATABASE_URL=postgres://…?sslmode=verify-full&sslrootcert=<ca>`
//! and `?sslmode=require`. A CA that did not sign the server's certificate
//! is refused, naming the cause, and so is a plain connection.
//!
//! The PostgreSQL server binaries are required under CI (`make test`
//! installs them); elsewhere the tests say they are skipped without them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::{postgres_binaries_or_skip, scratch_dir, PrivatePostgres, ServerCert};
use service_http::test_support::TestCa;

/// The CA that signed the server's certificate, another CA, and the server.
struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    other_ca: PathBuf,
    server: ServerCert,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pki() -> Pki {
    let dir = scratch_dir("pg-tls");
    let ca = TestCa::new("pricing test CA");
    let (cert_pem, key_pem) = ca.issue("pricing test postgres", &["127.0.0.1", "localhost"], None);
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        other_ca: write("other-ca.pem", TestCa::new("some other CA").pem()),
        server: ServerCert { cert_pem, key_pem },
        dir,
    }
}

fn url(pg: &PrivatePostgres, query: &str) -> String {
    format!("{}?{query}", pg.url())
}

fn verify_full(pg: &PrivatePostgres, ca: &Path) -> String {
    url(
        pg,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    )
}

fn store_options(url: String) -> store::StoreOptions {
    let mut o = store::StoreOptions::new(url);
    o.max_connections = 2;
    o.acquire_timeout = Duration::from_secs(5);
    o
}

/// Whether the store's connection to the server is encrypted, asked of
/// the server itself.
async fn connection_is_tls(store: &store::Store) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_service_reaches_a_tls_only_postgres_with_verify_full_and_sslrootcert_and_with_require() {
    if !postgres_binaries_or_skip("postgres TLS") {
        return;
    }
    let pki = pki();
    let pg = PrivatePostgres::start_tls(&pki.server).expect("PostgreSQL server binaries");

    // The data service's own startup path (connect, migrate, seed, listen)
    // with the CA file and full verification (chain and host name).
    let config = services::Config::new("127.0.0.1:0".parse().unwrap(), verify_full(&pg, &pki.ca));
    let (server, state) = services::start_data_service(&config)
        .await
        .unwrap_or_else(|e| panic!("the data service did not start over verify-full: {e}"));
    assert!(connection_is_tls(&state.store).await);
    let client = reqwest::Client::new();
    let rate: serde_json::Value = client
        .get(server.url("/rates/AAPL"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rate["status"], "success", "{rate}");
    assert_eq!(rate["current_rate"].to_string(), "0.0039105");
    for probe in ["/health", "/health/ready", "/health/live"] {
        let r = client.get(server.url(probe)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{probe}");
    }
    server.shutdown().await;
    state.store.close().await;

    // `sslmode=require`: encrypted, the certificate not checked (libpq's
    // meaning); the store reads what the service seeded.
    let store = store::Store::connect_with(store_options(url(&pg, "sslmode=require")))
        .await
        .unwrap_or_else(|e| panic!("sslmode=require: {e}"));
    assert!(connection_is_tls(&store).await);
    assert!(store.stock("GME").await.unwrap().is_some());
    store.close().await;

    // `verify-ca`: the chain, not the host name.
    let store = store::Store::connect_with(store_options(url(
        &pg,
        &format!("sslmode=verify-ca&sslrootcert={}", pki.ca.display()),
    )))
    .await
    .unwrap_or_else(|e| panic!("sslmode=verify-ca: {e}"));
    store.ping().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn a_wrong_ca_with_verify_full_and_a_plain_connection_are_refused_naming_the_cause() {
    if !postgres_binaries_or_skip("postgres TLS") {
        return;
    }
    let pki = pki();
    let pg = PrivatePostgres::start_tls(&pki.server).expect("PostgreSQL server binaries");

    // A CA that did not sign the server's certificate: the client refuses
    // the server and says why.
    let err = store::Store::connect_with(store_options(verify_full(&pg, &pki.other_ca)))
        .await
        .map(drop)
        .expect_err("verify-full with the wrong CA must not connect");
    let message = err.to_string();
    assert!(
        message.contains("invalid peer certificate") && message.contains("UnknownIssuer"),
        "{message}"
    );
    // The services' startup path reports the same cause.
    let config = services::Config::new(
        "127.0.0.1:0".parse().unwrap(),
        verify_full(&pg, &pki.other_ca),
    );
    let err = services::start_calculation_service(&config)
        .await
        .map(drop)
        .expect_err("the calculation service must not start with the wrong CA");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );

    // A CA file that does not exist is named.
    let missing = pki.dir.join("missing.pem");
    let err = store::Store::connect_with(store_options(verify_full(&pg, &missing)))
        .await
        .map(drop)
        .expect_err("a missing CA file must not connect");
    assert!(err.to_string().contains("missing.pem"), "{err}");

    // Without TLS the server itself refuses the connection (hostnossl reject).
    let err = store::Store::connect_with(store_options(url(&pg, "sslmode=disable")))
        .await
        .map(drop)
        .expect_err("a plain connection must be refused by the server");
    let message = err.to_string();
    assert!(
        message.contains("pg_hba.conf rejects connection") && message.contains("no encryption"),
        "{message}"
    );
}
