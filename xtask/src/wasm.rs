//! `cargo xtask wasm`: the three proxy-wasm filters, built for
//! wasm32-wasip1 (target/wasm32-wasip1/release/*.wasm), each without the
//! callback exports it leaves to the SDK (see [`crate::wasm_drop`]);
//! `--test-variant`: the test-only auth filter that traps on a marked
//! request; `cargo xtask wasm-images`: their OCI images for Istio.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::util::{cargo, on_path, step, target_dir};

/// The target the proxy-wasm filters are built for.
pub const WASM_TARGET: &str = "wasm32-wasip1";
/// The target the filter core's tests run on inside wasm (Node, through
/// wasm-bindgen-test-runner).
pub const WASM_TEST_TARGET: &str = "wasm32-unknown-unknown";

/// A proxy-wasm filter the gateway ships.
pub struct Filter {
    /// Its Cargo package (also its image's name).
    pub package: &'static str,
    /// Its library name: the built module is `<lib>.wasm`.
    pub lib: &'static str,
    /// Its glue crate, which implements the SDK's traits.
    pub glue: &'static str,
    /// The proxy-wasm callbacks it leaves to the SDK's no-op default: their
    /// exports are removed from the built .wasm so Envoy does not enter the
    /// VM for them (tests/tests/envoy_config checks that the glue crate
    /// implements none of them).
    pub drop: &'static [&'static [&'static str]],
}

impl Filter {
    /// The callback exports [`Filter::drop`] removes, in order.
    pub fn dropped(&self) -> Vec<&'static str> {
        self.drop.iter().flat_map(|d| d.iter().copied()).collect()
    }
}

/// NOT_NETWORK: the callbacks none of the filters implements (network-filter
/// and gRPC-stream callbacks, and proxy_on_done: without it Envoy counts a
/// context as done at once, which is what the SDK's default answers).
pub const NOT_NETWORK: &[&str] = crate::wasm_drop::OUTSIDE_HTTP_FILTERS;

/// The filters, in the order they are built.
pub const FILTERS: [Filter; 3] = [
    Filter {
        package: "auth-filter",
        lib: "auth_filter",
        glue: "filters/auth/src/lib.rs",
        drop: &[
            NOT_NETWORK,
            &[
                "proxy_on_request_body",
                "proxy_on_request_trailers",
                "proxy_on_response_headers",
                "proxy_on_response_body",
                "proxy_on_response_trailers",
            ],
        ],
    },
    Filter {
        package: "validation-filter",
        lib: "validation_filter",
        glue: "filters/validation/src/lib.rs",
        drop: &[
            NOT_NETWORK,
            &[
                "proxy_on_tick",
                "proxy_on_log",
                "proxy_on_http_call_response",
                "proxy_on_response_headers",
                "proxy_on_response_body",
                "proxy_on_response_trailers",
            ],
        ],
    },
    Filter {
        package: "metrics-filter",
        lib: "metrics_filter",
        glue: "filters/metrics/src/lib.rs",
        drop: &[
            NOT_NETWORK,
            &[
                "proxy_on_http_call_response",
                "proxy_on_request_body",
                "proxy_on_request_trailers",
                "proxy_on_response_headers",
                "proxy_on_response_body",
                "proxy_on_response_trailers",
            ],
        ],
    },
];

/// `-p <package>` for every filter.
pub fn package_args() -> Vec<&'static str> {
    FILTERS.iter().flat_map(|f| ["-p", f.package]).collect()
}

/// Where the filters are built: target/wasm32-wasip1/release (under
/// `$CARGO_TARGET_DIR` when set).
pub fn out_dir(root: &Path) -> PathBuf {
    target_dir(root).join(WASM_TARGET).join("release")
}

/// The release build of the filters, then their unused callbacks dropped.
pub fn build(root: &Path) -> Result<()> {
    step(
        cargo()
            .current_dir(root)
            .args(["build", "--release", "--target", WASM_TARGET])
            .args(package_args()),
    )?;
    for f in &FILTERS {
        let file = out_dir(root).join(format!("{}.wasm", f.lib));
        let dropped: Vec<String> = f.dropped().into_iter().map(str::to_owned).collect();
        crate::wasm_drop::run(&file, &dropped)?;
    }
    Ok(())
}

/// The test-only build of the auth filter that traps on a marked request
/// (`x-test-trap`), in a target directory of its own
/// (target/wasm-test-variant) so it can never replace the shipped .wasm.
pub fn test_variant(root: &Path) -> Result<()> {
    step(
        cargo()
            .current_dir(root)
            .env(
                "CARGO_TARGET_DIR",
                target_dir(root).join("wasm-test-variant"),
            )
            .args(["build", "--release", "--target", WASM_TARGET])
            .args(["-p", "auth-filter", "--features", "trap-on-marked-request"]),
    )
}

/// `docker build` of deploy/wasm/Dockerfile for each built filter, tagged
/// `<registry>/<package>:<version>`.
pub fn images(root: &Path, registry: &str, version: &str) -> Result<()> {
    if on_path("docker").is_none() {
        bail!("wasm-images needs docker");
    }
    for f in &FILTERS {
        step(
            std::process::Command::new("docker")
                .current_dir(root)
                .args(["build", "-f", "deploy/wasm/Dockerfile", "--build-arg"])
                .arg(format!("FILTER={}", f.lib))
                .arg("-t")
                .arg(format!("{registry}/{}:{version}", f.package))
                .arg(out_dir(root)),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm_drop::is_known_callback;

    #[test]
    fn every_dropped_callback_is_an_optional_one_and_listed_once() {
        for f in &FILTERS {
            let dropped = f.dropped();
            for d in &dropped {
                assert!(is_known_callback(d), "{}: {d}", f.package);
                assert_eq!(
                    dropped.iter().filter(|x| *x == d).count(),
                    1,
                    "{}: {d}",
                    f.package
                );
            }
        }
    }
}
