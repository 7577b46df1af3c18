//! Pure logic of the gateway's proxy-wasm filters. Nothing here calls the
//! host: the cdylib glue crates (`filters/auth`, `filters/validation`,
//! `filters/metrics`) are the only code that does.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod auth;
pub mod metrics;
pub mod validation;
