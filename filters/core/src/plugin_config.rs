//! Reading a filter's plugin configuration (JSON) into its config type.

/// Deserialises a plugin configuration; errors name the field
/// (`slow_request_ms: invalid type: string "x", expected u64`).
pub fn parse_config<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// A filter's plugin configuration: the defaults when `raw` is empty (or
/// white space only), else the JSON as [`parse_config`] reads it, then
/// `check`ed; every error begins `invalid {filter} filter configuration: `.
pub fn parse_or_default<T: serde::de::DeserializeOwned + Default>(
    raw: &[u8],
    filter: &str,
    check: impl FnOnce(&T) -> Result<(), String>,
) -> Result<T, String> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_config(raw)
        .and_then(|config| check(&config).map(|()| config))
        .map_err(|e| format!("invalid {filter} filter configuration: {e}"))
}

/// Asserts that `parse` refuses each `(json, field)` case with an error
/// that names `field`.
#[cfg(test)]
#[allow(clippy::panic)]
pub(crate) fn assert_rejected_naming<T: std::fmt::Debug>(
    parse: impl Fn(&[u8]) -> Result<T, String>,
    cases: &[(&str, &str)],
) {
    for (json, field) in cases {
        match parse(json.as_bytes()) {
            Ok(config) => panic!("{json} accepted as {config:?}"),
            Err(err) => assert!(err.contains(field), "{json}: {err}"),
        }
    }
}
