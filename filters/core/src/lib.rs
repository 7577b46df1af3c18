//! Pure logic of the gateway's proxy-wasm filters. Nothing here calls the
//! host: every effect goes through the one [`host::Host`] trait, whose
//! proxy-wasm implementation is `filter_host::ProxyHost` (filters/host);
//! the cdylib glue crates (`filters/auth`, `filters/validation`,
//! `filters/metrics`) and that implementation are the only code that calls
//! the proxy.
//!
//! Modules depend on each other in one direction only (checked by the
//! `module_graph` test): the shared leaves (`host`, `logfmt`, `endpoint`,
//! `plugin_config`) below `metrics`, `validation` and `auth`.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod auth;
pub mod endpoint;
pub mod host;
pub mod logfmt;
pub mod metrics;
pub mod plugin_config;
pub mod validation;
