//! `/openapi.json` and the docs page: served from the binary with a
//! same-origin policy, and used in a real browser through the gateway.

use std::path::PathBuf;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

use super::stack::{gateway_stack, get_with_key, GatewayStack};
use super::{client, get_text, ops_all_up};

#[tokio::test]
async fn the_openapi_document_is_served_as_json() {
    let ops = ops_all_up().await;
    let r = client()
        .get(format!("{ops}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["info"]["title"], "Borrow Rate & Locate Fee API");
    assert!(v["components"]["securitySchemes"]["ApiKeyAuth"].is_object());
    assert!(v["components"]["securitySchemes"]["BearerAuth"].is_object());
}

#[tokio::test]
async fn the_docs_page_and_its_files_are_served_from_the_binary_with_a_same_origin_policy() {
    let ops = ops_all_up().await;

    for path in ["/docs", "/docs/"] {
        let (status, headers, source) = get_text(&format!("{ops}{path}")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(source.contains(r#"<div id="swagger-ui"></div>"#));
        assert!(!source.contains("https://") && !source.contains("http://"));
    }
    for file in ops_service::docs_page::ASSETS {
        let r = client()
            .get(format!("{ops}/docs/{file}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{file}");
        assert!(
            r.headers().contains_key("content-security-policy"),
            "{file}"
        );
        assert!(r.bytes().await.unwrap().len() > 100, "{file}");
    }
    let (_, _, init) = get_text(&format!("{ops}/docs/swagger-initializer.js")).await;
    assert!(init.contains(r#""url": "/openapi.json""#), "{init}");
    for unknown in [
        "/docs/index.html",
        "/docs/oauth2-redirect.html",
        "/docs/nope.js",
    ] {
        let (status, _, body) = get_text(&format!("{ops}{unknown}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
            "NOT_FOUND"
        );
    }
}

/// Python with Playwright (`make test-tools` installs it into `.venv`).
fn playwright_python() -> PathBuf {
    let python = e2e::repo_root().join(".venv/bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import playwright"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "Playwright is not installed: make test-tools (or .venv/bin/pip install playwright)"
    );
    python
}

/// The docs page (Swagger UI) through the real gateway in Debian's headless
/// Chromium, driven by Playwright as a person would use it
/// (`tests/browser/docs_page.py`): Authorize with a real API key, Try it
/// out on `POST /api/v1/calculate-locate` with the SPEC §5 worked example,
/// the page shows 200 and `total_fee` 58.75; without the key it shows 401;
/// nothing is fetched from another origin and no CSP violation occurs.
/// Writes its screenshot to the target directory, and the README's
/// `docs/api-docs.png` when `UPDATE_DOCS_SCREENSHOT=1`.
#[tokio::test]
async fn the_docs_page_authorizes_and_tries_out_a_locate_fee_in_a_real_browser() {
    let python = playwright_python();
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("chromium is not installed: apt-get install -y chromium");
    let GatewayStack {
        envoy,
        key,
        dir,
        _servers,
    } = gateway_stack().await;

    // The page and exactly its files need no credential; any other name
    // under /docs/ does, and with one the ops service answers 404.
    for path in ["/docs", "/docs/"].into_iter().map(str::to_owned).chain(
        ops_service::docs_page::ASSETS
            .iter()
            .map(|f| format!("/docs/{f}")),
    ) {
        let r = client().get(envoy.url(&path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path} without a credential");
    }
    let r = client()
        .get(envoy.url("/docs/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = get_with_key(&envoy, "/docs/nope.js", &key).await;
    assert_eq!(r.status().as_u16(), 404);

    let shot = if std::env::var("UPDATE_DOCS_SCREENSHOT").as_deref() == Ok("1") {
        e2e::repo_root().join("docs/api-docs.png")
    } else {
        e2e::target_dir().join("api-docs.png")
    };
    let before = std::fs::metadata(&shot).and_then(|m| m.modified()).ok();
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(e2e::repo_root().join("tests/browser/docs_page.py"))
        .arg(format!("--base-url={}", envoy.url("")))
        .arg("--client-id=test123")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--chromium={}", chromium.display()))
        .env("DOCS_API_KEY", &key)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
    let out = e2e::run_tool(cmd, Duration::from_secs(120), "the browser test").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "the docs page failed in the browser:\n{stdout}\n{stderr}\ngateway log (tail):\n{}",
        envoy
            .log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        stdout.contains("authorized: 200, total_fee 58.75"),
        "{stdout}"
    );
    assert!(stdout.contains("not authorized: 401"), "{stdout}");
    let png = std::fs::read(&shot).expect("no screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(
        std::fs::metadata(&shot).and_then(|m| m.modified()).ok() != before,
        "the screenshot was not rewritten"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
