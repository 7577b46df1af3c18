#!/usr/bin/env python3
"""Remove proxy-wasm callback exports a filter does not implement.

The proxy-wasm Rust SDK exports every callback of the ABI (`proxy_on_*`),
and Envoy enters the VM for each one it finds exported, once per request
and body chunk, even when the filter's trait method is the SDK's no-op
default. Envoy skips a callback whose export is absent (it then continues
the stream), so dropping those exports saves VM entries per request without
changing what the filter does (docs/benchmarks-log.md, "Unused callback
exports").

    wasm-drop-callbacks.py FILE.wasm CALLBACK [CALLBACK ...]

Rewrites FILE.wasm in place; each CALLBACK is an export name such as
`proxy_on_response_body`. Only the optional callbacks of the ABI are
accepted (a typo is an error, not a silent no-op). Running it again on a
module it already rewrote is harmless. Standard library only.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXPORT_SECTION = 7


def read_leb(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def drop_exports(module: bytes, names: set[str]) -> tuple[bytes, set[str]]:
    """The module without the named exports, and the names it removed."""
    if module[:4] != b"\0asm":
        raise ValueError("not a wasm module")
    out = bytearray(module[:8])
    pos, removed = 8, set()
    while pos < len(module):
        section_id = module[pos]
        size, body_start = read_leb(module, pos + 1)
        body = module[body_start : body_start + size]
        pos = body_start + size
        if section_id != EXPORT_SECTION:
            out += bytes([section_id]) + leb(size) + body
            continue
        count, p = read_leb(body, 0)
        kept = []
        for _ in range(count):
            start = p
            name_len, p = read_leb(body, p)
            name = body[p : p + name_len].decode()
            p += name_len + 1  # name, then the kind byte
            _, p = read_leb(body, p)  # index
            if name in names:
                removed.add(name)
            else:
                kept.append(body[start:p])
        new_body = leb(len(kept)) + b"".join(kept)
        out += bytes([section_id]) + leb(len(new_body)) + new_body
    return bytes(out), removed


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: wasm-drop-callbacks.py FILE.wasm CALLBACK [CALLBACK ...]", file=sys.stderr)
        return 2
    path, names = Path(argv[1]), set(argv[2:])
    bad = sorted(names - KNOWN_CALLBACKS)
    if bad:
        print(f"wasm-drop-callbacks: not a droppable proxy-wasm callback: {', '.join(bad)}", file=sys.stderr)
        return 2
    rewritten, removed = drop_exports(path.read_bytes(), names)
    if removed:
        path.write_bytes(rewritten)
    absent = len(names) - len(removed)
    print(f"wasm-drop-callbacks: {path.name}: dropped {len(removed)} callback export(s)"
          + (f", {absent} already absent" if absent else ""))
    return 0


#: The proxy-wasm ABI 0.2.1 callbacks the Rust SDK exports that a filter may
#: leave unimplemented. Context creation and deletion, VM start,
#: configuration and request headers are not here: the SDK needs them for its
#: own bookkeeping, or every filter uses them.
KNOWN_CALLBACKS = {
    "proxy_on_log",
    "proxy_on_done",
    "proxy_on_tick",
    "proxy_on_queue_ready",
    "proxy_on_foreign_function",
    "proxy_on_new_connection",
    "proxy_on_downstream_data",
    "proxy_on_downstream_connection_close",
    "proxy_on_upstream_data",
    "proxy_on_upstream_connection_close",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_http_call_response",
    "proxy_on_grpc_receive_initial_metadata",
    "proxy_on_grpc_receive",
    "proxy_on_grpc_receive_trailing_metadata",
    "proxy_on_grpc_close",
}

if __name__ == "__main__":
    sys.exit(main(sys.argv))
