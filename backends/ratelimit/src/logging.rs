//! One logfmt line per event (`ts=… level=INFO service=ratelimit-service
//! msg="…" key=value`), filtered by `LOG_LEVEL` (default `info`).

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Installs the global logger; calling it twice is harmless.
pub fn init() {
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".to_owned());
    let filter =
        EnvFilter::try_new(level.to_ascii_lowercase()).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(Logfmt)
        .try_init();
}

struct Logfmt;

struct Fields {
    msg: String,
    rest: String,
}

/// Quotes a logfmt value when it holds spaces, quotes, `=` or is empty.
fn value(v: &str) -> String {
    if !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=' && b != b'\\')
    {
        return v.to_owned();
    }
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, v: &str) {
        if field.name() == "message" {
            self.msg = v.to_owned();
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value(v));
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
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut f = Fields {
            msg: String::new(),
            rest: String::new(),
        };
        event.record(&mut f);
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        writeln!(
            w,
            "ts={ts} level={} service=ratelimit-service msg={}{}",
            event.metadata().level(),
            value(&f.msg),
            f.rest
        )
    }
}
