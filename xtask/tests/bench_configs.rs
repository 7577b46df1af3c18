//! Every Envoy configuration the benchmarks run passes `envoy --mode
//! validate`: the filter-chain variants and the end-to-end breakdown's
//! variants, rendered the way `cargo xtask bench chain` / `breakdown`
//! render them, and the filter benchmarks' configs (`validation`,
//! `memory`), with the built filters.
//!
//! Needs Envoy (.venv/bin/envoy, or ENVOY_BIN) and the built filters (make
//! wasm); without them the test is skipped, except under CI (`CI` set),
//! where it fails.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use xtask::bench::{configs, envoy_validate, filters, wasm_dir};
use xtask::util::{is_executable, repo_root};

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.trim().is_empty() && v != "false")
}

/// Envoy and the three built filters, or None (skipped) outside CI.
fn envoy_and_filters(root: &Path) -> Option<(PathBuf, Vec<PathBuf>)> {
    let envoy = std::env::var_os("ENVOY_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/envoy"));
    let wasm: Vec<PathBuf> = ["auth_filter", "validation_filter", "metrics_filter"]
        .iter()
        .map(|f| wasm_dir(root).join(format!("{f}.wasm")))
        .collect();
    let mut missing: Vec<String> = wasm
        .iter()
        .filter(|w| !w.is_file())
        .map(|w| format!("{} (make wasm)", w.display()))
        .collect();
    if !is_executable(&envoy) {
        missing.push(format!("{} (make envoy)", envoy.display()));
    }
    if missing.is_empty() {
        return Some((envoy, wasm));
    }
    assert!(
        !ci(),
        "missing {}; under CI this test may not be skipped",
        missing.join(", ")
    );
    eprintln!("skipped: missing {}", missing.join(", "));
    None
}

#[test]
fn every_benchmark_config_passes_envoy_validate() {
    let root = repo_root();
    let Some((envoy, wasm)) = envoy_and_filters(&root) else {
        return;
    };
    let full = configs::render_local(
        &root,
        &[
            (
                "JWT_SECRET_KEY",
                "bench-configs-test-secret-0123456789abcdef".into(),
            ),
            ("RATE_LIMIT_PER_MINUTE", "1000000".into()),
        ],
    )
    .expect("render the local shape");
    // The *-before variants with the built auth filter standing in for an
    // earlier build.
    let chain = configs::chain_documents(
        &full,
        "brl_benchkey",
        "bench-configs-test-secret-0123456789abcdef",
        &wasm[0].display().to_string(),
    )
    .expect("chain variants");
    for v in [
        "bare",
        "rate-limits",
        "wasm-key",
        "wasm-key-separate-metrics",
        "native-key",
        "wasm-jwt",
        "native-jwt",
        "auth-metrics-before",
        "wasm-key-before",
    ] {
        assert!(chain.contains_key(v), "no chain variant {v}");
    }
    let breakdown = configs::breakdown_variants(&full).expect("breakdown variants");
    assert_eq!(breakdown.len(), 7);

    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut write = |name: String, text: String| {
        let f = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&f, text).unwrap();
        files.push(f);
    };
    for (name, doc) in chain {
        write(
            format!("chain-{name}"),
            serde_norway::to_string(&doc).unwrap(),
        );
    }
    write(
        "breakdown-full".into(),
        serde_norway::to_string(&full).unwrap(),
    );
    for (name, doc) in breakdown {
        write(
            format!("breakdown-{name}"),
            serde_norway::to_string(&doc).unwrap(),
        );
    }
    for (name, text) in filters::filter_bench_configs(&wasm) {
        write(format!("filters-{name}"), text);
    }

    // Loading the filters in V8 dominates: two at a time.
    let queue = Mutex::new(files);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(f) = queue.lock().unwrap().pop() else {
                    return;
                };
                if let Err(e) = envoy_validate(&envoy, &f) {
                    failures.lock().unwrap().push(format!("{e:#}"));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
