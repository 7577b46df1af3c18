//! The pricing backends and the HTTP plumbing they share.
//!
//! * [`common`]: the shared HTTP plumbing (error envelope, request ids,
//!   JSON extractors, tower-http layers, serving, health shapes),
//!   re-exported from the `service-http` crate.
//! * [`data`]: the data service (`GET /rates/{ticker}`).
//! * [`calculation`]: the calculation service (`POST /calculate-locate`).
//! * [`routes`]: the state and the health/metrics routes both share.
//! * [`state`]: the one startup path (`build`, `start_*`) shared by the
//!   binaries and the tests; [`config`]: environment configuration.

pub mod calculation;
pub mod common;
pub mod config;
pub mod data;
pub mod metrics;
pub mod routes;
pub mod state;

pub use config::Config;
pub use state::{build, start_calculation_service, start_data_service, AppState, StartError};
