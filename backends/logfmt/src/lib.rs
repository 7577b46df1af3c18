//! The gateway's one logfmt escaping rule, written by every log line of the
//! backends (`service_log::value`) and of the wasm filters
//! (`filter_core::logfmt`): inside double quotes, `\"`, `\\`, `\n`, `\r`,
//! `\t`, and `\u{hex}` for any other control character.
#![no_std]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

extern crate alloc;

use alloc::string::String;
use core::fmt::Write as _;

/// `value` in double quotes, escaped, cut to its first `max_chars`
/// characters (counted before escaping).
pub fn quoted(value: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars().take(max_chars) {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_backslashes_and_control_characters_are_escaped() {
        assert_eq!(quoted(r#"a"b\c"#, 256), r#""a\"b\\c""#);
        assert_eq!(quoted("x\ny\r\tz", 256), r#""x\ny\r\tz""#);
        assert_eq!(quoted("a\u{1b}b\u{7f}", 256), r#""a\u{1b}b\u{7f}""#);
        assert_eq!(quoted("", 256), r#""""#);
    }

    #[test]
    fn values_are_cut_by_characters_before_escaping() {
        assert_eq!(quoted("abcdef", 3), r#""abc""#);
        assert_eq!(quoted("é\"é", 2), "\"é\\\"\"");
    }
}
