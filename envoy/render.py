#!/usr/bin/env python3
"""Render the gateway's Envoy configuration for one deployment shape.

One source (envoy/envoy.yaml.tmpl, its partials and envoy/fragments/*.yaml)
yields every shape, so the shapes cannot drift:

  render.py --shape local   --out .run/envoy.yaml            # make run
  render.py --shape compose --out envoy/rendered/compose.yaml  # docker-compose
  render.py --shape local --tls off --set ENABLE_AUTHENTICATION=false ...

Switches come from the environment (SPEC §9) and may be overridden with
--set NAME=VALUE: ENABLE_AUTHENTICATION, ENABLE_RATE_LIMITING, CORS_ORIGINS,
SLOW_REQUEST_MS, JWT_SECRET_KEY, JWT_ISSUER, JWT_AUDIENCE,
RATE_LIMIT_PER_MINUTE, RATE_LIMIT_FAILURE_MODE (allow|deny), RATE_LIMIT_TIMEOUT_MS,
OTEL_EXPORTER_OTLP_ENDPOINT (http://host:port of an OTLP/gRPC receiver: turns
tracing on; unset, no tracing configuration is rendered), OTEL_SERVICE_NAME
(the gateway's service name in traces, default `gateway`).

Standard library only (Python 3.8+).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FRAGMENTS = HERE / "fragments"
VERSION = "0.1.0"

#: Envoy cluster -> (local host:port, compose host:port), docs/architecture.md.
UPSTREAMS = {
    "data_service": ("127.0.0.1:8081", "data-service:8081"),
    "calculation_service": ("127.0.0.1:8082", "calculation-service:8082"),
    "auth_service": ("127.0.0.1:8083", "auth-service:8083"),
    "ops_service": ("127.0.0.1:8084", "ops-service:8084"),
    "rate_limit_service": ("127.0.0.1:8090", "ratelimit-service:8090"),
}
#: SPEC §9 variables that move a backend in the local shape (the compose
#: shape always uses the compose service names).
SERVICE_URL_VARS = {
    "data_service": "DATA_SERVICE_URL",
    "calculation_service": "CALCULATION_SERVICE_URL",
}
#: The rate-limit service answers gRPC on one port and /health on another.
RATE_LIMIT_HEALTH_PORT = {"local": 8091, "compose": 8091}

SHAPES = {
    "local": {
        "LISTEN_ADDRESS": "127.0.0.1",
        "WASM_DIR": None,  # computed: $CARGO_TARGET_DIR or <repo>/target
        "CERT_DIR": str(HERE.parent / "certs"),
        "STATS_LISTENER": "0",
    },
    "compose": {
        "LISTEN_ADDRESS": "0.0.0.0",
        "WASM_DIR": "/etc/envoy/wasm",
        "CERT_DIR": "/etc/envoy/certs",
        "STATS_LISTENER": "1",
    },
}

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


class RenderError(Exception):
    pass


def flag(value: str, name: str) -> bool:
    v = value.strip().lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise RenderError(f"{name} must be true or false, got {value!r}")


def positive_int(value: str, name: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise RenderError(f"{name} must be a positive integer, got {value!r}") from None
    if n <= 0:
        raise RenderError(f"{name} must be a positive integer, got {value!r}")
    return n


def yaml_str(value: str) -> str:
    """A YAML double-quoted scalar (JSON string syntax is a subset of it)."""
    return json.dumps(value, ensure_ascii=True)


# --------------------------------------------------------------------------
# Plugin configurations of the wasm filters.
#
# >>> PLUGIN CONFIGS: keep in step with the config structs in
# >>> filters/core/src/{auth,validation,metrics}.rs. Each function returns
# >>> the JSON object handed to the filter's on_configure.
# --------------------------------------------------------------------------


#: The docs page's own files (Swagger UI), public like the page itself:
#: backends/ops-service/src/docs_page.rs (ASSETS). Exact paths, because a
#: `/*` public path only matches a segment without dots.
DOCS_PAGE_PATHS = [
    "/docs/",
    "/docs/swagger-ui.css",
    "/docs/index.css",
    "/docs/swagger-ui-bundle.js",
    "/docs/swagger-ui-standalone-preset.js",
    "/docs/swagger-initializer.js",
    "/docs/favicon-32x32.png",
    "/docs/favicon-16x16.png",
]


def auth_plugin_config(env: dict) -> dict:
    # filters/core/src/auth/config.rs (AuthConfig); cache TTLs keep their
    # defaults (30 s positive, so a revocation applies within a minute).
    # `metrics`: the auth filter records the SPEC §8 request metrics itself
    # (hcm.yaml.tmpl renders the separate metrics filter only when there is
    # no auth filter), which saves a second wasm filter per request.
    return {
        "metrics": metrics_plugin_config(env),
        "auth_service_cluster": "auth_service",
        "auth_service_authority": "auth-service",
        "verify_path": "/internal/v1/keys/verify",
        "verify_timeout_ms": 500,
        "public_paths": [
            "/health",
            "/health/*",
            "/metrics",
            "/monitoring/metrics",
            "/docs",
            "/openapi.json",
            *DOCS_PAGE_PATHS,
        ],
        "jwt": {
            "algorithm": "HS256",
            "secret": env["JWT_SECRET_KEY"],
            "issuer": env["JWT_ISSUER"],
            "audience": env["JWT_AUDIENCE"],
        },
        # The per-instance backstop of the global limit: a token bucket per
        # client sized from the key's own limit (docs/rate-limiting.md).
        **(
            {"local_rate_limit": {"default_per_minute": int(env["RATE_LIMIT_PER_MINUTE"])}}
            if env["RATE_LIMITING"] == "1"
            else {}
        ),
    }


def validation_plugin_config(env: dict) -> dict:
    # filters/core/src/validation.rs (ValidationConfig).
    return {"max_body_bytes": 8192}


def metrics_plugin_config(env: dict) -> dict:
    # filters/core/src/metrics.rs (MetricsConfig).
    return {"slow_request_ms": int(env["SLOW_REQUEST_MS"])}


# --------------------------------------------------------------------------
# Fragments owned by other parts of the gateway, with minimal stand-ins used
# only while a fragment file is missing. Each fragment is a YAML mapping at
# column 0 whose top-level keys are the Envoy fields the template places.
# --------------------------------------------------------------------------

STANDINS = {
    "stats_config.yaml": """\
stats_config:
  stats_tags:
  - tag_name: endpoint
    regex: '(\\.endpoint=(.*?);)'
  - tag_name: method
    regex: '(\\.method=(.*?);)'
  - tag_name: status_code
    regex: '(\\.status_code=(.*?);)'
  - tag_name: service
    regex: '(\\.service=(.*?);)'
  - tag_name: status
    regex: '(\\.status=(.*?);)'
""",
    "access_log.yaml": """\
access_log:
- name: envoy.access_loggers.stdout
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
    log_format:
      text_format_source:
        inline_string: "level=INFO msg=\\"Access\\" method=%REQ(:METHOD)% path=\\"%REQ(:PATH)%\\" status=%RESPONSE_CODE% flags=%RESPONSE_FLAGS% duration_ms=%DURATION% upstream=%UPSTREAM_CLUSTER% request_id=\\"%REQ(X-REQUEST-ID)%\\"\\n"
""",
    "local_reply.yaml": """\
local_reply_config:
  mappers:
"""
    + "".join(
        f"""\
  - filter:
      status_code_filter:
        comparison: {{ op: EQ, value: {{ default_value: {status}, runtime_key: local_reply.{code_lower} }} }}
    body_format_override:
      content_type: application/json
      text_format_source:
        inline_string: '{{"status":"error","error":{{"code":"{code}","message":"{message}","request_id":"%REQ(X-REQUEST-ID)%"}}}}'
"""
        for status, code, message in [
            (400, "VALIDATION_ERROR", "Malformed request"),
            (401, "UNAUTHORIZED", "Missing or invalid credentials"),
            (403, "FORBIDDEN", "Forbidden"),
            (404, "NOT_FOUND", "No such endpoint"),
            (405, "METHOD_NOT_ALLOWED", "Method not allowed on this endpoint"),
            (413, "PAYLOAD_TOO_LARGE", "Request body too large"),
            (415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json"),
            (429, "RATE_LIMITED", "Rate limit exceeded"),
            (500, "INTERNAL_ERROR", "Internal error"),
            (502, "BACKEND_ERROR", "Backend service error"),
            (503, "SERVICE_UNAVAILABLE", "Service unavailable"),
            (504, "BACKEND_TIMEOUT", "Backend timed out"),
        ]
        for code_lower in [code.lower()]
    ),
    "ratelimit.yaml": """\
http_filters:
- name: envoy.filters.http.ratelimit
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
    domain: borrow_rate_gateway
    stage: 0
    timeout: ${RATE_LIMIT_TIMEOUT}
    failure_mode_deny: ${RATE_LIMIT_FAILURE_MODE_DENY}
    rate_limit_service:
      transport_api_version: V3
      grpc_service:
        envoy_grpc: { cluster_name: rate_limit_service }
rate_limits:
- actions:
  - request_headers: { header_name: x-client-id, descriptor_key: client_id }
- actions:
  - remote_address: {}
""",
}


def load_fragment(name: str, env: dict, used_standins: set) -> str:
    path = FRAGMENTS / name
    if path.is_file():
        text = path.read_text()
    elif name in STANDINS:
        used_standins.add(name)
        text = STANDINS[name]
    else:
        raise RenderError(f"fragment {path} is missing")
    return substitute(text, env, f"fragment {name}")


def top_level_sections(text: str, source: str) -> dict:
    """Split a column-0 YAML mapping into {key: [lines of its value]}."""
    sections: dict = {}
    current = None
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            if current is not None:
                sections[current].append(raw)
            continue
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*):\s*(.*)$", raw)
        if m:
            current = m.group(1)
            if current in sections:
                raise RenderError(f"{source}: key {current} appears twice")
            sections[current] = []
            if m.group(2).strip():
                # Flow value on the key line (`key: {...}` or `key: []`).
                sections[current].append("  " + m.group(2))
            continue
        if current is None:
            raise RenderError(f"{source}: expected `key:` at column 0, got {raw!r}")
        sections[current].append(raw)
    return sections


def reindent(lines: list, indent: str) -> list:
    body = [l for l in lines if l.strip()]
    if not body:
        return []
    strip = min(len(l) - len(l.lstrip(" ")) for l in body)
    return [(indent + l[strip:]) if l.strip() else "" for l in lines]


# --------------------------------------------------------------------------
# The template engine: line directives and ${NAME} variables.
# --------------------------------------------------------------------------

VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute(text: str, env: dict, source: str) -> str:
    def repl(m):
        name = m.group(1)
        if name not in env:
            raise RenderError(f"{source}: unknown variable ${{{name}}}")
        return str(env[name])

    # Comment lines are left alone (they may quote ${...}).
    return "\n".join(
        line if line.lstrip().startswith("#") else VAR.sub(repl, line) for line in text.split("\n")
    )


def truthy(env: dict, name: str, source: str) -> bool:
    if name not in env:
        raise RenderError(f"{source}: unknown condition {name}")
    return str(env[name]) not in ("", "0", "false")


class Renderer:
    def __init__(self, env: dict):
        self.env = env
        self.used_standins: set = set()
        self.fragment_sections: dict = {}

    def sections(self, name: str) -> dict:
        if name not in self.fragment_sections:
            text = load_fragment(name, self.env, self.used_standins)
            self.fragment_sections[name] = top_level_sections(text, f"fragment {name}")
        return self.fragment_sections[name]

    def render_file(self, name: str, env: dict) -> list:
        path = HERE / name
        if not path.is_file():
            raise RenderError(f"template {path} is missing")
        return self.render_lines(path.read_text().splitlines(), env, name)

    def render_lines(self, lines: list, env: dict, source: str) -> list:
        out: list = []
        # Stack of (this block active, any branch taken).
        stack: list = []
        active = True
        for lineno, raw in enumerate(lines, 1):
            where = f"{source}:{lineno}"
            stripped = raw.strip()
            if stripped.startswith("#%"):
                indent = raw[: len(raw) - len(raw.lstrip())]
                words = substitute(stripped[2:], env, where).split()
                op, args = words[0], words[1:]
                if op == "if":
                    # `#%if A`, `#%if !A`, `#%if A && !B`.
                    value = all(
                        not truthy(env, c[1:], where) if c.startswith("!") else truthy(env, c, where)
                        for c in args
                        if c != "&&"
                    )
                    stack.append((active, value))
                    active = active and value
                elif op == "else":
                    if not stack:
                        raise RenderError(f"{where}: #%else without #%if")
                    parent, value = stack[-1]
                    active = parent and not value
                elif op == "endif":
                    if not stack:
                        raise RenderError(f"{where}: #%endif without #%if")
                    active = stack.pop()[0]
                elif not active:
                    continue
                elif op == "include":
                    child = dict(env)
                    for kv in args[1:]:
                        k, _, v = kv.partition("=")
                        child[k] = v
                    out.extend(reindent(self.render_file(args[0], child), indent))
                elif op in ("fragment", "fragment-items"):
                    fname, key = args
                    secs = self.sections(fname)
                    if key not in secs:
                        raise RenderError(f"fragment {fname} has no top-level `{key}:`")
                    if op == "fragment":
                        out.append(f"{indent}{key}:")
                        out.extend(reindent(secs[key], indent + "  "))
                    else:
                        out.extend(reindent(secs[key], indent))
                elif op == "insert":
                    name = args[0]
                    if name not in env:
                        raise RenderError(f"{where}: unknown insert {name}")
                    out.extend(indent + l for l in str(env[name]).splitlines())
                else:
                    raise RenderError(f"{where}: unknown directive #%{op}")
                continue
            if active:
                # Comment lines are copied as they are (they may quote ${...}).
                out.append(raw if stripped.startswith("#") else substitute(raw, env, where))
        if stack:
            raise RenderError(f"{source}: #%if without #%endif")
        return out


# --------------------------------------------------------------------------
# Shape and environment -> template variables.
# --------------------------------------------------------------------------


def default_wasm_dir() -> str:
    target = os.environ.get("CARGO_TARGET_DIR") or str(HERE.parent / "target")
    return str(Path(target).resolve() / "wasm32-wasip1" / "release")


def endpoints_yaml(cluster: str, hosts: list, rls_health_port: str) -> str:
    lines = []
    for host in hosts:
        addr, _, port = host.rpartition(":")
        if not addr or not port.isdigit():
            raise RenderError(f"upstream {cluster}: expected host:port, got {host!r}")
        lines.append("- endpoint:")
        lines.append(f"    address: {{ socket_address: {{ address: {addr}, port_value: {port} }} }}")
        if cluster == "rate_limit_service":
            lines.append(f"    health_check_config: {{ port_value: {rls_health_port} }}")
    return "\n".join(lines)


def service_host_port(url: str, name: str) -> str:
    """host:port of a plain-HTTP service URL such as http://10.0.0.5:8081."""
    m = re.fullmatch(r"http://([A-Za-z0-9.\-]+)(?::(\d{1,5}))?/?", url)
    if not m or int(m.group(2) or 80) > 65535:
        raise RenderError(f"{name} must be an http://host:port URL, got {url!r}")
    return f"{m.group(1)}:{m.group(2) or 80}"


def is_ip(host: str) -> bool:
    return re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", host) is not None


def build_env(args) -> dict:
    src = dict(os.environ)
    for kv in args.set:
        k, sep, v = kv.partition("=")
        if not sep:
            raise RenderError(f"--set expects NAME=VALUE, got {kv!r}")
        src[k] = v

    shape = SHAPES[args.shape]
    env: dict = {}
    env["VERSION"] = VERSION
    env["NODE_ID"] = f"gateway-{args.shape}"
    env["LISTEN_ADDRESS"] = args.listen_address or shape["LISTEN_ADDRESS"]
    env["LISTENER_PORT"] = args.listener_port
    env["TLS_PORT"] = args.tls_port
    env["ADMIN_PORT"] = args.admin_port
    env["STATS_PORT"] = args.stats_port
    env["STATS_LISTENER"] = shape["STATS_LISTENER"]
    env["WASM_DIR"] = args.wasm_dir or shape["WASM_DIR"] or default_wasm_dir()
    env["CERT_DIR"] = args.cert_dir or shape["CERT_DIR"]
    env["TLS"] = "1" if flag(args.tls, "--tls") else "0"
    env["WASM"] = "0" if args.no_wasm else "1"

    auth = flag(src.get("ENABLE_AUTHENTICATION", "true"), "ENABLE_AUTHENTICATION")
    rl = flag(src.get("ENABLE_RATE_LIMITING", "true"), "ENABLE_RATE_LIMITING")
    env["AUTHENTICATION"] = "1" if auth else "0"
    env["RATE_LIMITING"] = "1" if rl else "0"
    env["RATE_LIMIT_PER_MINUTE"] = str(
        positive_int(src.get("RATE_LIMIT_PER_MINUTE", "60"), "RATE_LIMIT_PER_MINUTE")
    )
    if int(env["RATE_LIMIT_PER_MINUTE"]) > 1_000_000:
        raise RenderError(
            f"RATE_LIMIT_PER_MINUTE must be at most 1000000 (the auth filter's bucket), "
            f"got {env['RATE_LIMIT_PER_MINUTE']}"
        )
    mode = src.get("RATE_LIMIT_FAILURE_MODE", "allow").strip().lower() or "allow"
    if mode not in ("allow", "open", "deny", "closed"):
        raise RenderError(f"RATE_LIMIT_FAILURE_MODE must be allow or deny, got {mode!r}")
    # Envoy's ratelimit filter: deny when the rate-limit service itself is
    # unreachable (true) or let the request through (false, the default).
    env["RATE_LIMIT_FAILURE_MODE_DENY"] = "true" if mode in ("deny", "closed") else "false"
    # Longest wait for the rate-limit service's decision; past it the
    # failure mode applies.
    rl_timeout_ms = positive_int(src.get("RATE_LIMIT_TIMEOUT_MS", "100"), "RATE_LIMIT_TIMEOUT_MS")
    if rl_timeout_ms > 60000:
        raise RenderError(f"RATE_LIMIT_TIMEOUT_MS must be at most 60000, got {rl_timeout_ms}")
    env["RATE_LIMIT_TIMEOUT"] = f"{rl_timeout_ms // 1000}.{rl_timeout_ms % 1000:03d}".rstrip("0").rstrip(".") + "s"
    for gone in ("LOCAL_RATE_LIMIT_BURST", "LOCAL_RATE_LIMIT_PER_SECOND"):
        if src.get(gone, "").strip():
            print(
                f"render.py: warning: {gone} is ignored: the per-instance bucket is sized "
                "from each key's own limit (docs/rate-limiting.md)",
                file=sys.stderr,
            )
    env["SLOW_REQUEST_MS"] = str(positive_int(src.get("SLOW_REQUEST_MS", "500"), "SLOW_REQUEST_MS"))
    secret = src.get("JWT_SECRET_KEY", "")
    if auth and not args.no_wasm and len(secret) < 32:
        raise RenderError("JWT_SECRET_KEY must be set to at least 32 characters when authentication is enabled")
    env["JWT_SECRET_KEY"] = secret
    env["JWT_ISSUER"] = src.get("JWT_ISSUER", "borrow-rate-gateway")
    env["JWT_AUDIENCE"] = src.get("JWT_AUDIENCE", "borrow-rate-api")

    origins = [o.strip() for o in src.get("CORS_ORIGINS", "").split(",") if o.strip()]
    env["CORS"] = "1" if origins else "0"
    matchers = []
    for o in origins:
        if o == "*":
            matchers.append('- { safe_regex: { regex: ".*" } }')
        else:
            if not re.fullmatch(r"https?://[A-Za-z0-9.\-]+(:\d+)?", o):
                raise RenderError(f"CORS_ORIGINS: {o!r} is not an origin like https://app.example.com")
            matchers.append(f"- {{ exact: {yaml_str(o)} }}")
    env["CORS_ORIGIN_MATCHERS"] = "\n".join(matchers)

    # Circuit-breaker thresholds and health-check cadence: production values
    # by default; tests lower them to trip a breaker with a small flood.
    env["CB_MAX_CONNECTIONS"] = str(positive_int(src.get("UPSTREAM_MAX_CONNECTIONS", "512"), "UPSTREAM_MAX_CONNECTIONS"))
    env["CB_MAX_PENDING_REQUESTS"] = str(positive_int(src.get("UPSTREAM_MAX_PENDING_REQUESTS", "256"), "UPSTREAM_MAX_PENDING_REQUESTS"))
    env["CB_MAX_REQUESTS"] = str(positive_int(src.get("UPSTREAM_MAX_REQUESTS", "512"), "UPSTREAM_MAX_REQUESTS"))
    env["CB_MAX_RETRIES"] = str(positive_int(src.get("UPSTREAM_MAX_RETRIES", "16"), "UPSTREAM_MAX_RETRIES"))
    hc_ms = positive_int(src.get("HEALTH_CHECK_INTERVAL_MS", "2000"), "HEALTH_CHECK_INTERVAL_MS")
    env["HC_INTERVAL"] = f"{hc_ms / 1000:.3f}s"
    env["MAX_DOWNSTREAM_CONNECTIONS"] = str(
        positive_int(src.get("MAX_DOWNSTREAM_CONNECTIONS", "10000"), "MAX_DOWNSTREAM_CONNECTIONS")
    )

    upstreams = {name: [local if args.shape == "local" else compose] for name, (local, compose) in UPSTREAMS.items()}
    if args.shape == "local":
        for name, var in SERVICE_URL_VARS.items():
            if src.get(var, "").strip():
                upstreams[name] = [service_host_port(src[var].strip(), var)]
    for spec in args.upstream:
        name, sep, hosts = spec.partition("=")
        if not sep or name not in UPSTREAMS:
            raise RenderError(f"--upstream expects CLUSTER=host:port[,host:port], clusters: {', '.join(UPSTREAMS)}")
        upstreams[name] = [h.strip() for h in hosts.split(",") if h.strip()]
    all_ip = True
    for name, hosts in upstreams.items():
        env[f"ENDPOINTS_{name}"] = endpoints_yaml(
            name, hosts, args.rate_limit_health_port or str(RATE_LIMIT_HEALTH_PORT[args.shape])
        )
        all_ip = all_ip and all(is_ip(h.rpartition(":")[0]) for h in hosts)
    env["CLUSTER_TYPE"] = "STATIC" if all_ip else "STRICT_DNS"

    # Traces: only with an OTLP receiver; without one no tracer, no
    # collector cluster, nothing sampled.
    otlp = src.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    env["TRACING"] = "1" if otlp else "0"
    env["OTLP_HOST"], env["OTLP_PORT"] = "", ""
    if otlp:
        m = re.fullmatch(r"http://([A-Za-z0-9.\-]+):(\d{1,5})/?", otlp)
        if not m or int(m.group(2)) > 65535:
            raise RenderError(
                f"OTEL_EXPORTER_OTLP_ENDPOINT must be an http://host:port URL of an OTLP/gRPC receiver, got {otlp!r}"
            )
        env["OTLP_HOST"], env["OTLP_PORT"] = m.group(1), m.group(2)
    env["OTEL_SERVICE_NAME"] = src.get("OTEL_SERVICE_NAME", "").strip() or "gateway"
    if not re.fullmatch(r"[A-Za-z0-9._\-]+", env["OTEL_SERVICE_NAME"]):
        raise RenderError(f"OTEL_SERVICE_NAME must be a plain name, got {env['OTEL_SERVICE_NAME']!r}")

    env["AUTH_PLUGIN_CONFIG"] = yaml_str(json.dumps(auth_plugin_config(env), separators=(",", ":")))
    env["VALIDATION_PLUGIN_CONFIG"] = yaml_str(json.dumps(validation_plugin_config(env), separators=(",", ":")))
    env["METRICS_PLUGIN_CONFIG"] = yaml_str(json.dumps(metrics_plugin_config(env), separators=(",", ":")))
    return env


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default="local")
    p.add_argument("--tls", default="on", help="on|off: the :8443 listener")
    p.add_argument("--out", required=True, help="output file, or - for stdout")
    p.add_argument("--listen-address", help="address of the public listeners (default: per shape)")
    p.add_argument("--listener-port", default="8000")
    p.add_argument("--tls-port", default="8443")
    p.add_argument("--admin-port", default="9901")
    p.add_argument("--stats-port", default="9902", help="compose: listener exposing the read-only admin views the ops service needs")
    p.add_argument("--wasm-dir", help="directory of auth_filter.wasm, validation_filter.wasm, metrics_filter.wasm")
    p.add_argument("--cert-dir", help="directory of gateway.crt and gateway.key")
    p.add_argument(
        "--no-wasm",
        action="store_true",
        help="leave out the wasm filters (tests of Envoy's own routing, cluster and TLS behaviour)",
    )
    p.add_argument("--upstream", action="append", default=[], metavar="CLUSTER=HOST:PORT[,HOST:PORT]")
    p.add_argument(
        "--rate-limit-health-port", help="HTTP port of the rate-limit service's /health (default 8091)"
    )
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override an environment variable")
    args = p.parse_args(argv)
    try:
        env = build_env(args)
        renderer = Renderer(env)
        text = "\n".join(renderer.render_file("envoy.yaml.tmpl", env)) + "\n"
    except RenderError as e:
        print(f"render.py: {e}", file=sys.stderr)
        return 2
    for name in sorted(renderer.used_standins):
        print(f"render.py: envoy/fragments/{name} missing, using the built-in stand-in", file=sys.stderr)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        # The rendered file may hold JWT_SECRET_KEY: owner-only.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
