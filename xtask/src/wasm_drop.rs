//! `cargo xtask wasm-drop-callbacks FILE.wasm CALLBACK…`: removes
//! proxy-wasm callback exports a filter does not implement.
//!
//! The proxy-wasm Rust SDK exports every callback of the ABI (`proxy_on_*`),
//! and Envoy enters the VM for each one it finds exported, once per request
//! and body chunk, even when the filter's trait method is the SDK's no-op
//! default. Envoy skips a callback whose export is absent (it then continues
//! the stream), so dropping those exports saves VM entries per request
//! without changing what the filter does (docs/benchmarks-log.md, "Unused
//! callback exports").
//!
//! Rewrites FILE.wasm in place; each CALLBACK is an export name such as
//! `proxy_on_response_body`. Only the optional callbacks of the ABI are
//! accepted (a typo is an error, not a silent no-op). Running it again on a
//! module it already rewrote is harmless.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};

const EXPORT_SECTION: u8 = 7;

/// The proxy-wasm ABI 0.2.1 callbacks the Rust SDK exports that a filter
/// may leave unimplemented, in two groups ([`is_known_callback`]). Context
/// creation and deletion, VM start, configuration and request headers are
/// in neither: the SDK needs them for its own bookkeeping, or every filter
/// uses them.
///
/// The first group: proxy_on_done, the queue and foreign-function
/// callbacks, and the network-filter and gRPC-stream ones, which no HTTP
/// filter of the gateway implements.
pub const OUTSIDE_HTTP_FILTERS: &[&str] = &[
    "proxy_on_done",
    "proxy_on_queue_ready",
    "proxy_on_foreign_function",
    "proxy_on_new_connection",
    "proxy_on_downstream_data",
    "proxy_on_downstream_connection_close",
    "proxy_on_upstream_data",
    "proxy_on_upstream_connection_close",
    "proxy_on_grpc_receive_initial_metadata",
    "proxy_on_grpc_receive",
    "proxy_on_grpc_receive_trailing_metadata",
    "proxy_on_grpc_close",
];

/// The second group: the HTTP filter's optional callbacks (log, tick, HTTP
/// call responses, bodies, trailers and response headers).
pub const HTTP_FILTER_OPTIONAL: &[&str] = &[
    "proxy_on_log",
    "proxy_on_tick",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_http_call_response",
];

/// Whether `name` is an optional callback this command may drop.
pub fn is_known_callback(name: &str) -> bool {
    OUTSIDE_HTTP_FILTERS
        .iter()
        .chain(HTTP_FILTER_OPTIONAL)
        .any(|known| *known == name)
}

fn read_leb(data: &[u8], mut pos: usize) -> Result<(u64, usize)> {
    let (mut result, mut shift) = (0u64, 0u32);
    loop {
        let byte = *data.get(pos).context("truncated wasm module")?;
        pos += 1;
        if shift < 64 {
            result |= u64::from(byte & 0x7f) << shift;
        }
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok((result, pos));
        }
    }
}

fn leb(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn slice(data: &[u8], start: usize, len: u64) -> Result<&[u8]> {
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| start.checked_add(l))
        .filter(|e| *e <= data.len())
        .context("truncated wasm module")?;
    Ok(&data[start..end])
}

/// The module without the named exports, and the names it removed.
pub fn drop_exports(module: &[u8], names: &BTreeSet<&str>) -> Result<(Vec<u8>, BTreeSet<String>)> {
    if module.len() < 8 || &module[..4] != b"\0asm" {
        bail!("not a wasm module");
    }
    let mut out = module[..8].to_vec();
    let mut removed = BTreeSet::new();
    let mut pos = 8;
    while pos < module.len() {
        let id = module[pos];
        let (size, start) = read_leb(module, pos + 1)?;
        let body = slice(module, start, size)?;
        pos = start + body.len();
        out.push(id);
        if id != EXPORT_SECTION {
            leb(size, &mut out);
            out.extend_from_slice(body);
            continue;
        }
        let (count, mut p) = read_leb(body, 0)?;
        let mut kept: Vec<&[u8]> = Vec::new();
        for _ in 0..count {
            let entry = p;
            let (len, q) = read_leb(body, p)?;
            let name = std::str::from_utf8(slice(body, q, len)?).context("export name")?;
            p = q + name.len() + 1; // name, then the kind byte
            let (_, q) = read_leb(body, p)?; // index
            p = q;
            if names.contains(name) {
                removed.insert(name.to_owned());
            } else {
                kept.push(slice(body, entry, (p - entry) as u64)?);
            }
        }
        let mut new_body = Vec::new();
        leb(kept.len() as u64, &mut new_body);
        for k in kept {
            new_body.extend_from_slice(k);
        }
        leb(new_body.len() as u64, &mut out);
        out.extend_from_slice(&new_body);
    }
    Ok((out, removed))
}

/// Drops `callbacks` from the module at `path`, in place; says how many.
pub fn run(path: &Path, callbacks: &[String]) -> Result<()> {
    let names: BTreeSet<&str> = callbacks.iter().map(String::as_str).collect();
    let bad: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !is_known_callback(n))
        .collect();
    if !bad.is_empty() {
        bail!(
            "wasm-drop-callbacks: not a droppable proxy-wasm callback: {}",
            bad.join(", ")
        );
    }
    let module = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (rewritten, removed) = drop_exports(&module, &names)?;
    if !removed.is_empty() {
        std::fs::write(path, rewritten)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let absent = names.len() - removed.len();
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy())
        .unwrap_or_default();
    println!(
        "wasm-drop-callbacks: {file}: dropped {} callback export(s){}",
        removed.len(),
        if absent > 0 {
            format!(", {absent} already absent")
        } else {
            String::new()
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with a type section and an export section exporting
    /// functions `a`, `proxy_on_log` and `b`.
    fn module() -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend([1, 4, 1, 0x60, 0, 0]); // type section: one () -> ()
        let mut exports = vec![3u8];
        for name in ["a", "proxy_on_log", "b"] {
            exports.push(name.len() as u8);
            exports.extend(name.as_bytes());
            exports.extend([0, 0]); // func 0
        }
        m.push(EXPORT_SECTION);
        m.push(exports.len() as u8);
        m.extend(exports);
        m
    }

    #[test]
    fn drops_only_the_named_exports_and_keeps_other_sections() {
        let (out, removed) = drop_exports(&module(), &BTreeSet::from(["proxy_on_log"])).unwrap();
        assert_eq!(removed, BTreeSet::from(["proxy_on_log".to_owned()]));
        let mut want = b"\0asm\x01\0\0\0".to_vec();
        want.extend([1, 4, 1, 0x60, 0, 0]);
        want.extend([EXPORT_SECTION, 9, 2, 1, b'a', 0, 0, 1, b'b', 0, 0]);
        assert_eq!(out, want);
        // Again on the rewritten module: nothing left to drop.
        let (again, removed) = drop_exports(&out, &BTreeSet::from(["proxy_on_log"])).unwrap();
        assert!(removed.is_empty());
        assert_eq!(again, out);
    }

    #[test]
    fn leb128_round_trips_and_bad_input_fails() {
        for n in [0u64, 1, 127, 128, 300, 1 << 20] {
            let mut b = Vec::new();
            leb(n, &mut b);
            assert_eq!(read_leb(&b, 0).unwrap(), (n, b.len()));
        }
        assert!(drop_exports(b"not wasm", &BTreeSet::new()).is_err());
        let mut truncated = module();
        truncated.truncate(truncated.len() - 3);
        assert!(drop_exports(&truncated, &BTreeSet::from(["b"])).is_err());
    }

    #[test]
    fn unknown_callbacks_are_refused() {
        let e = run(
            Path::new("/nonexistent.wasm"),
            &["proxy_on_respons_body".into()],
        )
        .unwrap_err();
        assert!(e.to_string().contains("proxy_on_respons_body"), "{e}");
    }
}
