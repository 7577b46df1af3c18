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
