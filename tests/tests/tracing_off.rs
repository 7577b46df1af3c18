//! Traces stay off without `OTEL_EXPORTER_OTLP_ENDPOINT`: the rendered
//! gateway configuration has no tracer, no collector cluster and no
//! `traceparent` rewrite, the backends install no exporter, and a local
//! OTLP receiver gets nothing, even for a request that brings its own
//! `traceparent` (whose trace id still reaches the backends' log lines).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e::local::{loopback, serve_trace_receiver};
use e2e::{free_port, Envoy};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use serde_json::Value;

/// Counts every export call.
#[derive(Clone, Default)]
struct Receiver(Arc<AtomicUsize>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        _request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test]
async fn without_an_otlp_endpoint_nothing_is_rendered_installed_or_exported() {
    // Not in this process's environment: what the services and the
    // gateway's renderer read.
    std::env::remove_var("OTEL_EXPORTER_OTLP_ENDPOINT");
    let receiver = Receiver::default();
    serve_trace_receiver(receiver.clone()).await;

    service_log::init("backends-under-test");
    assert!(!service_log::tracing_enabled());

    let dir = std::env::temp_dir().join(format!("tracing-off-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database_url = format!("sqlite://{}?mode=rwc", dir.join("gateway.db").display());
    let (data_server, _data) =
        services::start_data_service(&services::Config::new(loopback(0), database_url))
            .await
            .unwrap();
    let yaml = e2e::render_local_gateway(
        &[
            ("data_service", data_server.addr.to_string()),
            ("calculation_service", loopback(free_port()).to_string()),
            ("auth_service", loopback(free_port()).to_string()),
            ("ops_service", loopback(free_port()).to_string()),
        ],
        free_port(),
        &[
            "ENABLE_AUTHENTICATION=false".into(),
            "ENABLE_RATE_LIMITING=false".into(),
            "HEALTH_CHECK_INTERVAL_MS=500".into(),
        ],
    );
    for absent in ["envoy.tracers", "otel_collector", "tracing:", "%SPAN_ID%"] {
        assert!(
            !yaml.contains(absent),
            "{absent} rendered without an endpoint"
        );
    }
    let envoy = Envoy::start(&yaml).await;

    let client = e2e::stand_in::client();
    let (gateway, client) = (&envoy, &client);
    let request_id = e2e::poll(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async move {
            let r = client
                .get(gateway.url("/api/v1/rates/AAPL"))
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                Ok(r.headers()["x-request-id"].to_str().unwrap().to_owned())
            } else {
                Err(gateway.log())
            }
        },
    )
    .await;

    // The access log line is there, without a trace id.
    let rid = request_id.as_str();
    let line = e2e::poll(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async move {
            gateway
                .log()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| v["msg"] == "Access" && v["request_id"] == rid)
                .ok_or_else(|| "no access log line".to_owned())
        },
    )
    .await;
    assert!(
        line["trace_id"].is_null() || line["trace_id"] == "-",
        "{line}"
    );

    service_log::flush();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.0.load(Ordering::SeqCst), 0, "spans were exported");
    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
}
