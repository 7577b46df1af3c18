//! The HTTP plumbing every backend shares (error envelope, request ids,
//! JSON extractors, layers, serving), re-exported from [`service_http`] so
//! that the services' modules and tests keep their `crate::common` paths.

pub use service_http::*;
