//! The built filters' exports: no callback a filter leaves to the SDK, every
//! one it implements.

use xtask::wasm::FILTERS;

use super::*;

/// The export names of a wasm module (its export section).
fn wasm_exports(module: &[u8]) -> Vec<String> {
    fn leb(data: &[u8], pos: &mut usize) -> usize {
        let (mut result, mut shift) = (0usize, 0);
        loop {
            let byte = data[*pos];
            *pos += 1;
            result |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                return result;
            }
        }
    }
    assert_eq!(&module[..4], b"\0asm", "not a wasm module");
    let (mut pos, mut names) = (8, Vec::new());
    while pos < module.len() {
        let id = module[pos];
        pos += 1;
        let size = leb(module, &mut pos);
        let end = pos + size;
        if id == 7 {
            let mut p = pos;
            for _ in 0..leb(module, &mut p) {
                let len = leb(module, &mut p);
                names.push(String::from_utf8_lossy(&module[p..p + len]).into_owned());
                p += len + 1;
                leb(module, &mut p);
            }
        }
        pos = end;
    }
    names
}

/// The SDK trait methods behind each proxy-wasm callback export.
const CALLBACK_METHODS: &[(&str, &[&str])] = &[
    ("proxy_on_log", &["on_log"]),
    ("proxy_on_done", &["on_done"]),
    ("proxy_on_tick", &["on_tick"]),
    ("proxy_on_queue_ready", &["on_queue_ready"]),
    ("proxy_on_foreign_function", &["on_foreign_function"]),
    ("proxy_on_new_connection", &["on_new_connection"]),
    ("proxy_on_downstream_data", &["on_downstream_data"]),
    (
        "proxy_on_downstream_connection_close",
        &["on_downstream_close"],
    ),
    ("proxy_on_upstream_data", &["on_upstream_data"]),
    ("proxy_on_upstream_connection_close", &["on_upstream_close"]),
    ("proxy_on_request_body", &["on_http_request_body"]),
    ("proxy_on_request_trailers", &["on_http_request_trailers"]),
    ("proxy_on_response_headers", &["on_http_response_headers"]),
    ("proxy_on_response_body", &["on_http_response_body"]),
    ("proxy_on_response_trailers", &["on_http_response_trailers"]),
    ("proxy_on_http_call_response", &["on_http_call_response"]),
    (
        "proxy_on_grpc_receive_initial_metadata",
        &["on_grpc_stream_initial_metadata"],
    ),
    (
        "proxy_on_grpc_receive",
        &["on_grpc_call_response", "on_grpc_stream_message"],
    ),
    (
        "proxy_on_grpc_receive_trailing_metadata",
        &["on_grpc_stream_trailing_metadata"],
    ),
    ("proxy_on_grpc_close", &["on_grpc_stream_close"]),
];

#[test]
fn the_built_filters_export_no_callback_they_leave_to_the_sdk_and_implement_every_one_they_keep() {
    let libs: Vec<&str> = FILTERS.iter().map(|f| f.lib).collect();
    assert_eq!(
        libs,
        ["auth_filter", "validation_filter", "metrics_filter"],
        "the filters of cargo xtask wasm"
    );
    for filter in &FILTERS {
        let lib = filter.lib;
        let dropped = filter.dropped();
        let glue = std::fs::read_to_string(repo_root().join(filter.glue)).unwrap();
        for export in &dropped {
            let methods = CALLBACK_METHODS
                .iter()
                .find(|(e, _)| e == export)
                .unwrap_or_else(|| {
                    panic!("{lib}: unknown callback {export} in xtask::wasm::FILTERS")
                })
                .1;
            for method in methods {
                assert!(
                    !glue.contains(&format!("fn {method}(")),
                    "{lib} implements {method}, but xtask::wasm::FILTERS drops {export}: \
                     Envoy would never call it"
                );
            }
        }
        let exports = wasm_exports(&std::fs::read(wasm_file(lib)).unwrap());
        for export in &dropped {
            assert!(
                !exports.iter().any(|e| e == export),
                "{lib}.wasm still exports {export}: build it with `make wasm`"
            );
        }
        for kept in [
            "proxy_on_context_create",
            "proxy_on_request_headers",
            "proxy_on_delete",
        ] {
            assert!(exports.iter().any(|e| e == kept), "{lib}.wasm lost {kept}");
        }
    }
}
