//! The filters' logfmt values: every log line of the filters (auth,
//! validation, metrics) quotes and escapes its values here, by the rule the
//! backends' logs follow too (`service_log::value`), from the shared
//! `logfmt` crate: `\"`, `\\`, `\n`, `\r`, `\t`, and `\u{hex}` for any
//! other control character.

/// Longest value (in characters) a line carries; longer values are cut.
pub const MAX_VALUE_CHARS: usize = 256;

/// A logfmt value in double quotes, escaped, bounded to
/// [`MAX_VALUE_CHARS`] characters.
pub fn quote(value: &str) -> String {
    quote_bounded(value, MAX_VALUE_CHARS)
}

/// A logfmt value in double quotes, escaped, bounded to `max_chars`
/// characters (counted before escaping).
pub fn quote_bounded(value: &str, max_chars: usize) -> String {
    logfmt::quoted(value, max_chars)
}

/// ` trace_id="<32 hex>"`, the field written after `request_id`, when
/// `traceparent` is a W3C trace context (the gateway sets one on every
/// request when tracing is on); empty otherwise, so lines without tracing
/// are unchanged.
pub fn trace_id_field(traceparent: Option<&str>) -> String {
    let trace_id = traceparent.and_then(|tp| tp.split('-').nth(1));
    match trace_id {
        Some(t)
            if t.len() == 32
                && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                && t.bytes().any(|b| b != b'0') =>
        {
            format!(" trace_id=\"{t}\"")
        }
        _ => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_id_field_comes_only_from_a_w3c_traceparent() {
        assert_eq!(
            trace_id_field(Some(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            )),
            " trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\""
        );
        for bad in [
            None,
            Some(""),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            Some("00-4bf92f35\"7b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ] {
            assert_eq!(trace_id_field(bad), "", "{bad:?}");
        }
    }

    #[test]
    fn logfmt_values_are_quoted_and_escaped() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny"), r#""x\ny""#);
    }

    #[test]
    fn other_control_characters_are_hex_escapes_and_values_are_bounded() {
        assert_eq!(quote("a\u{1b}b\u{7f}"), r#""a\u{1b}b\u{7f}""#);
        assert_eq!(quote("tab\there\r"), r#""tab\there\r""#);
        assert_eq!(quote(&"x".repeat(300)).len(), MAX_VALUE_CHARS + 2);
        assert_eq!(quote_bounded("abcdef", 3), r#""abc""#);
    }
}
