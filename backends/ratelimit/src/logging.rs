//! One logfmt line per event (`ts=… level=INFO service=ratelimit-service
//! msg="…" key=value`), filtered by `LOG_LEVEL` (default `info`); the
//! format every backend shares (`service-log`).

/// Installs the global logger; calling it twice is harmless.
pub fn init() {
    service_log::init("ratelimit-service");
}
