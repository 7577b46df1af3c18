//! The backends' logs and traces.
//!
//! **Logs** (SPEC §8): one line per event on stderr, through
//! `tracing-subscriber`, filtered by `LOG_LEVEL` (`error`, `warn`, `info`,
//! `debug`, `trace`, or an env-filter expression; default `info`), in the
//! format `LOG_FORMAT` names:
//!
//! * `logfmt` (default):
//!   ```text
//!   ts=2026-11-23T14:41:12.886Z level=WARN service=data-service msg="Service unavailable" reason="…"
//!   ```
//!   values quoted by [`value`], the one escaping rule of every logfmt line
//!   the backends write;
//! * `json`: `tracing-subscriber`'s JSON formatter, one object per line
//!   (`timestamp`, `level`, `message`, the event's fields flattened, the
//!   request span's fields under `span`).
//!
//! A line written inside a request whose `traceparent` carried a trace id
//! gets `trace_id=…` right after its `request_id` (at the end when it has
//! none).
//!
//! **Traces**: when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (e.g.
//! `http://127.0.0.1:4317`), spans are exported over OTLP/gRPC in batches
//! (`tracing-opentelemetry` on the OpenTelemetry SDK), the request span of
//! each request a child of the span its `traceparent` names. Unset (the
//! default), no exporter, no OpenTelemetry layer: nothing is built, sent or
//! kept.

use std::fmt::{self, Write as _};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
};
use opentelemetry::Context;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The line format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `ts=… level=… service=… msg="…" key=value` (the default).
    #[default]
    Logfmt,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// `logfmt` or `json` (any case); anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "logfmt" | "" => Some(Self::Logfmt),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// What [`init_with`] installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `LOG_LEVEL` (default `info`).
    pub level: String,
    /// `LOG_FORMAT` (default logfmt; an unknown value falls back to it).
    pub format: Format,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: where spans go over OTLP/gRPC; `None`
    /// (unset or empty) exports nothing.
    pub otlp_endpoint: Option<String>,
}

/// The logging variables, declared once: flattened into every service's
/// configuration (`service_http::config::CommonArgs`) and read alone by
/// [`Settings::from_env`]. Empty values count as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct LogArgs {
    /// Level or env-filter expression (default `info`).
    #[arg(long, env = "LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// `logfmt` (default) or `json`; anything else is logfmt.
    #[arg(long, env = "LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// OTLP/gRPC endpoint spans are exported to; unset exports nothing.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otel_exporter_otlp_endpoint: Option<String>,
}

impl LogArgs {
    /// The [`Settings`] these values mean.
    pub fn settings(&self) -> Settings {
        let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        Settings {
            level: set(&self.log_level).unwrap_or_else(|| "info".to_owned()),
            format: set(&self.log_format)
                .and_then(|v| Format::parse(&v))
                .unwrap_or_default(),
            otlp_endpoint: set(&self.otel_exporter_otlp_endpoint),
        }
    }
}

impl Settings {
    /// The settings from the environment ([`LogArgs`] alone).
    pub fn from_env() -> Self {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            log: LogArgs,
        }
        <Only as clap::Parser>::try_parse_from(["service"])
            .map(|o| o.log.settings())
            .unwrap_or_else(|_| LogArgs::default().settings())
    }
}

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global logger (and, with `OTEL_EXPORTER_OTLP_ENDPOINT`, the
/// span exporter) for `service`; calling it twice is harmless. Call it from
/// within the Tokio runtime when traces may be exported.
pub fn init(service: &'static str) {
    init_with(service, Settings::from_env());
}

/// [`init`] with explicit settings.
pub fn init_with(service: &'static str, settings: Settings) {
    let filter = EnvFilter::try_new(settings.level.to_ascii_lowercase())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt_layer: Box<dyn Layer<_> + Send + Sync> = match settings.format {
        Format::Logfmt => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .event_format(Logfmt { service })
            .boxed(),
        Format::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let otel_layer = settings
        .otlp_endpoint
        .as_deref()
        .and_then(|endpoint| tracer_provider(service, endpoint))
        .map(|provider| {
            let tracer = provider.tracer(service);
            let _ = PROVIDER.set(provider);
            tracing_opentelemetry::layer().with_tracer(tracer)
        });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(TraceIds)
        .with(otel_layer)
        .with(fmt_layer)
        .try_init();
}

fn tracer_provider(service: &'static str, endpoint: &str) -> Option<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}: {e}; no traces exported"))
        .ok()?;
    Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service).build())
            .build(),
    )
}

/// Whether spans are being exported (an OTLP endpoint was configured).
pub fn tracing_enabled() -> bool {
    PROVIDER.get().is_some()
}

/// Exports the spans still buffered; call it before the process exits.
pub fn flush() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.force_flush();
    }
}

/// The trace id and parent span id of a W3C `traceparent` header
/// (`00-<32 hex>-<16 hex>-<2 hex>`); `None` when it is not one.
pub fn parse_traceparent(header: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let mut parts = header.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex =
        |s: &str, n| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !hex(version, 2) || version == "ff" || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()?);
    (trace_id != TraceId::INVALID && span_id != SpanId::INVALID)
        .then_some((trace_id, span_id, flags))
}

/// Joins `span` to the trace a `traceparent` header names: its `trace_id`
/// field (declared `trace_id = tracing::field::Empty`) gets the trace id,
/// for the log lines written inside it, and, when spans are exported, the
/// span becomes a child of the caller's span. A missing or malformed header
/// leaves the span a root.
pub fn join_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some((trace_id, span_id, flags)) = traceparent.and_then(parse_traceparent) else {
        return;
    };
    span.record("trace_id", tracing::field::display(trace_id));
    if tracing_enabled() {
        let parent = SpanContext::new(trace_id, span_id, flags, true, TraceState::NONE);
        let _ = span.set_parent(Context::new().with_remote_span_context(parent));
    }
}

/// Keeps the `trace_id` field of a span in its extensions, for the lines
/// written inside it.
struct TraceIds;

struct SpanTraceId(String);

struct TraceIdVisitor(Option<String>);

impl Visit for TraceIdVisitor {
    fn record_str(&mut self, field: &Field, v: &str) {
        if field.name() == "trace_id" {
            self.0 = Some(v.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, v: &dyn fmt::Debug) {
        if field.name() == "trace_id" {
            self.0 = Some(format!("{v:?}"));
        }
    }
}

impl<S> Layer<S> for TraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let mut v = TraceIdVisitor(None);
        attrs.record(&mut v);
        if let (Some(trace_id), Some(span)) = (v.0, ctx.span(id)) {
            span.extensions_mut().insert(SpanTraceId(trace_id));
        }
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        let mut v = TraceIdVisitor(None);
        values.record(&mut v);
        if let (Some(trace_id), Some(span)) = (v.0, ctx.span(id)) {
            span.extensions_mut().replace(SpanTraceId(trace_id));
        }
    }
}

/// Quotes a logfmt value when it holds spaces, quotes, `=`, control
/// characters or is empty; plain values stay bare. Inside the quotes, the
/// escaping of every logfmt line of the gateway (the filters' too): `\"`,
/// `\\`, `\n`, `\r`, `\t`, and `\u{hex}` for any other control character.
pub fn value(v: &str) -> String {
    if !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=' && b != b'\\')
    {
        return v.to_owned();
    }
    logfmt::quoted(v, usize::MAX)
}

/// `2026-11-23T14:41:12.886Z`: RFC 3339, UTC, milliseconds.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(i64::MAX - 719_468) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// The event formatter [`init`] installs.
struct Logfmt {
    service: &'static str,
}

struct Fields<'t> {
    msg: String,
    rest: String,
    trace_id: Option<&'t str>,
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, v: &str) {
        if field.name() == "message" {
            self.msg = v.to_owned();
        } else if field.name() == "trace_id" {
            // the span's trace id is the one written
            if self.trace_id.is_none() {
                let _ = write!(self.rest, " trace_id={}", value(v));
            }
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value(v));
            if field.name() == "request_id" {
                if let Some(trace_id) = self.trace_id.take() {
                    let _ = write!(self.rest, " trace_id={}", value(trace_id));
                }
            }
        }
    }
    fn record_debug(&mut self, field: &Field, v: &dyn fmt::Debug) {
        self.record_str(field, &format!("{v:?}"));
    }
}

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let trace_id = ctx.lookup_current().and_then(|current| {
            current
                .scope()
                .find_map(|s| s.extensions().get::<SpanTraceId>().map(|t| t.0.clone()))
        });
        let mut f = Fields {
            msg: String::new(),
            rest: String::new(),
            trace_id: trace_id.as_deref(),
        };
        event.record(&mut f);
        let trailing = f.trace_id.map(|t| format!(" trace_id={}", value(t)));
        writeln!(
            w,
            "ts={} level={} service={} msg={}{}{}",
            rfc3339_millis(SystemTime::now()),
            event.metadata().level(),
            self.service,
            value(&f.msg),
            f.rest,
            trailing.unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_444_872_886);
        assert_eq!(rfc3339_millis(t), "2026-11-23T14:41:12.886Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
    }

    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(format: Format, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let writer = {
            let buf = buf.clone();
            move || buf.clone()
        };
        let fmt_layer: Box<dyn Layer<_> + Send + Sync> = match format {
            Format::Logfmt => tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .event_format(Logfmt {
                    service: "test-service",
                })
                .boxed(),
            Format::Json => tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .boxed(),
        };
        let subscriber = tracing_subscriber::registry()
            .with(TraceIds)
            .with(fmt_layer);
        tracing::subscriber::with_default(subscriber, f);
        let out = buf.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// A `request` span with `request_id`, joined to the trace [`TP`].
    fn traced_request(request_id: &str) -> tracing::Span {
        let span = tracing::info_span!("request", request_id, trace_id = tracing::field::Empty);
        join_trace(&span, Some(TP));
        span
    }

    #[test]
    fn a_line_inside_a_traced_request_carries_the_trace_id_after_the_request_id() {
        let out = logged(Format::Logfmt, || {
            let span = traced_request("r-1");
            let _g = span.enter();
            tracing::warn!(reason = "x y", request_id = "r-1", "Backend service error");
            tracing::info!("no request id");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].contains(
                r#"level=WARN service=test-service msg="Backend service error" reason="x y" request_id=r-1 trace_id=4bf92f3577b34da6a3ce929d0e0e4736"#
            ),
            "{out}"
        );
        assert!(
            lines[1].ends_with(r#"msg="no request id" trace_id=4bf92f3577b34da6a3ce929d0e0e4736"#),
            "{out}"
        );
    }

    #[test]
    fn without_a_traceparent_lines_are_as_before() {
        let out = logged(Format::Logfmt, || {
            let span = tracing::info_span!("request", trace_id = tracing::field::Empty);
            join_trace(&span, Some("garbage"));
            let _g = span.enter();
            tracing::info!(request_id = "r-2", "Slow request");
        });
        assert!(
            out.ends_with(" msg=\"Slow request\" request_id=r-2\n"),
            "{out}"
        );
        assert!(out.starts_with("ts="), "{out}");
    }

    #[test]
    fn json_lines_are_objects_with_the_message_and_the_span_trace_id() {
        let out = logged(Format::Json, || {
            let span = traced_request("r-3");
            let _g = span.enter();
            tracing::error!(request_id = "r-3", "Validation error");
        });
        assert!(
            out.trim_end().starts_with('{') && out.trim_end().ends_with('}'),
            "{out}"
        );
        assert!(out.contains(r#""message":"Validation error""#), "{out}");
        assert!(
            out.contains(r#""trace_id":"4bf92f3577b34da6a3ce929d0e0e4736""#),
            "{out}"
        );
        assert!(out.contains(r#""request_id":"r-3""#), "{out}");
    }

    #[test]
    fn traceparent_headers_are_checked() {
        let (t, s, f) = parse_traceparent(TP).unwrap();
        assert_eq!(t.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s.to_string(), "00f067aa0ba902b7");
        assert!(f.is_sampled());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        assert_eq!(Format::parse("JSON"), Some(Format::Json));
        assert_eq!(Format::parse("logfmt"), Some(Format::Logfmt));
        assert_eq!(Format::parse("xml"), None);
    }

    #[test]
    fn logfmt_values_are_quoted_only_when_needed() {
        assert_eq!(value("plain"), "plain");
        assert_eq!(value("two words"), "\"two words\"");
        assert_eq!(value(""), "\"\"");
        assert_eq!(value("a\"b"), "\"a\\\"b\"");
        assert_eq!(value("k=v"), "\"k=v\"");
        assert_eq!(value("line\nbreak"), "\"line\\nbreak\"");
        assert_eq!(value("a\tb\rc\u{7}"), "\"a\\tb\\rc\\u{7}\"");
    }
}
