//! The backends' log format (SPEC §8): one logfmt line per event on stderr,
//!
//! ```text
//! ts=2026-11-23T14:41:12.886Z level=WARN service=data-service msg="Service unavailable" reason="…"
//! ```
//!
//! filtered by `LOG_LEVEL` (`error`, `warn`, `info`, `debug`, `trace`, or an
//! env-filter expression; default `info`).

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Installs the global logger for `service`; calling it twice is harmless.
pub fn init(service: &'static str) {
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".to_owned());
    let filter =
        EnvFilter::try_new(level.to_ascii_lowercase()).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(Logfmt { service })
        .try_init();
}

/// Quotes a logfmt value when it holds spaces, quotes, `=`, control
/// characters or is empty; plain values stay bare.
pub fn value(v: &str) -> String {
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

struct Fields {
    msg: String,
    rest: String,
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
        writeln!(
            w,
            "ts={} level={} service={} msg={}{}",
            rfc3339_millis(SystemTime::now()),
            event.metadata().level(),
            self.service,
            value(&f.msg),
            f.rest
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

    #[test]
    fn logfmt_values_are_quoted_only_when_needed() {
        assert_eq!(value("plain"), "plain");
        assert_eq!(value("two words"), "\"two words\"");
        assert_eq!(value(""), "\"\"");
        assert_eq!(value("a\"b"), "\"a\\\"b\"");
        assert_eq!(value("k=v"), "\"k=v\"");
        assert_eq!(value("line\nbreak"), "\"line\\nbreak\"");
    }
}
