//! Traces end to end: a local OTLP/gRPC receiver (the collector's
//! `TraceService`, on loopback) behind the `local` gateway configuration
//! rendered with `OTEL_EXPORTER_OTLP_ENDPOINT`, the real auth, rate-limit
//! and calculation services (in this process, exporting through
//! `service-log`) and `gatewayctl` for the API key.
//!
//! One `POST /api/v1/calculate-locate` without any trace header gets a trace
//! id at Envoy; the receiver then holds one trace with spans from Envoy, the
//! auth service's key check, the rate-limit decision and the calculation,
//! and the access log line of the request carries that trace id.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::local::{gatewayctl_json, loopback, serve_trace_receiver, sqlite_database, LocalServices};
use e2e::Envoy;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use serde_json::Value;

const SECRET: &str = "tracing-test-secret-0123456789abcdef0123";

/// One span as received: the exporting service, its name, its trace id.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
}

/// Whether a received span is the one looked for.
type SpanIs = fn(&Received) -> bool;

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push(Received {
                        service: service.clone(),
                        name: span.name,
                        trace_id: hex::encode(&span.trace_id),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The receiver on a loopback port.
async fn start_receiver() -> (Receiver, SocketAddr) {
    let receiver = Receiver::default();
    let local = serve_trace_receiver(receiver.clone()).await;
    (receiver, local)
}

fn create_key(database_url: &str, client_id: &str) -> String {
    let created = gatewayctl_json(
        database_url,
        "tracing-test",
        &[
            "keys",
            "create",
            "--client-id",
            client_id,
            "--rate-limit-per-minute",
            "1000",
        ],
    );
    created["key"].as_str().unwrap().to_owned()
}

/// The access log line (JSON) of the request `request_id`.
fn access_line(log: &str, request_id: &str) -> Option<Value> {
    log.lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["msg"] == "Access" && v["request_id"] == request_id)
}

#[tokio::test]
async fn one_request_is_one_trace_from_envoy_through_auth_rate_limit_and_calculation() {
    let (receiver, otlp) = start_receiver().await;
    let endpoint = format!("http://{otlp}");
    // This process's services export to the receiver.
    service_log::init_with(
        "backends-under-test",
        service_log::Settings {
            level: "info".into(),
            format: service_log::Format::Logfmt,
            otlp_endpoint: Some(endpoint.clone()),
        },
    );
    assert!(service_log::tracing_enabled());

    let (dir, database_url) = sqlite_database("tracing");
    let (calc_server, _calc) = services::start_calculation_service(&services::Config::new(
        loopback(0),
        database_url.clone(),
    ))
    .await
    .unwrap();
    let services = LocalServices::start(&database_url, SECRET, "tracing").await;
    let yaml = services.gateway(
        Some(calc_server.addr),
        &[format!("OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}")],
    );
    assert!(yaml.contains("envoy.tracers.opentelemetry"));
    let envoy = Envoy::start(&yaml).await;
    // a client of the seeded reference data (the calculation looks it up)
    let client_id = "test123";
    let key = create_key(&database_url, client_id);
    e2e::wait_until_healthy(&envoy, &["ops_service"], Duration::from_secs(30)).await;

    // The first request of this key: the auth filter asks the auth service.
    let client = e2e::stand_in::client();
    let response = client
        .post(envoy.url("/api/v1/calculate-locate"))
        .header("content-type", "application/json")
        .header("x-api-key", &key)
        .body(format!(
            r#"{{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"{client_id}"}}"#
        ))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{body}\n{}", envoy.log());

    // The access log line names the trace.
    let (gateway, rid) = (&envoy, request_id.as_str());
    let line = e2e::poll(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async move {
            access_line(&gateway.log(), rid)
                .ok_or_else(|| format!("no access log line:\n{}", gateway.log()))
        },
    )
    .await;
    let trace_id = line["trace_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(trace_id.len(), 32, "{line}");
    assert!(trace_id.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");

    // Envoy sends its spans every few seconds; the services' batch on flush.
    let wanted: [(&str, SpanIs); 4] = [
        ("Envoy", |s| s.service == "gateway"),
        ("the auth service's key check", |s| {
            s.service == "backends-under-test" && s.name.ends_with("/internal/v1/keys/verify")
        }),
        ("the rate-limit decision", |s| {
            s.service == "backends-under-test" && s.name == "rate_limit_decision"
        }),
        ("the calculation", |s| {
            s.service == "backends-under-test" && s.name == "POST /calculate-locate"
        }),
    ];
    let (receiver, wanted, trace_id) = (&receiver, &wanted, trace_id.as_str());
    e2e::poll(
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async move {
            service_log::flush();
            let spans: Vec<Received> = receiver.0.lock().unwrap().clone();
            let missing: Vec<&str> = wanted
                .iter()
                .filter(|(_, is)| !spans.iter().any(|s| s.trace_id == trace_id && is(s)))
                .map(|(what, _)| *what)
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "trace {trace_id}: no span from {missing:?}; received: {spans:#?}"
                ))
            }
        },
    )
    .await;

    // The filters' lines carry the trace id of their request too.
    for (credential, body, status, msg) in [
        (
            "brl_not_a_key_0000000000000000",
            "{}",
            401,
            "Authentication error",
        ),
        (key.as_str(), "{}", 400, "Validation error"),
    ] {
        let r = client
            .post(envoy.url("/api/v1/calculate-locate"))
            .header("content-type", "application/json")
            .header("x-api-key", credential)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
        let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        let (gateway, rid) = (&envoy, request_id.as_str());
        let (access, line) = e2e::poll(
            Duration::from_secs(10),
            Duration::from_millis(100),
            || async move {
                let log = gateway.log();
                let access = access_line(&log, rid);
                let line = log
                    .lines()
                    .find(|l| l.contains(&format!("msg=\"{msg}\"")) && l.contains(rid))
                    .map(str::to_owned);
                match (access, line) {
                    (Some(access), Some(line)) => Ok((access, line)),
                    _ => Err(format!("no {msg} line:\n{log}")),
                }
            },
        )
        .await;
        let trace_id = access["trace_id"].as_str().unwrap_or_default();
        assert_eq!(trace_id.len(), 32, "{access}");
        assert!(
            line.ends_with(&format!(
                "request_id=\"{request_id}\" trace_id=\"{trace_id}\""
            )),
            "{line}"
        );
    }
    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
}
