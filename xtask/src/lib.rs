//! The project's tooling, run as `cargo xtask <task>` (see `main.rs`);
//! a library too, so the end-to-end tests call the checks directly.

pub mod bench;
pub mod cert;
pub mod check_deploy;
pub mod clean;
pub mod fuzz;
pub mod lint;
pub mod measure;
pub mod prometheus_rule;
pub mod run;
pub mod setup;
pub mod test;
pub mod util;
pub mod wasm;
pub mod wasm_drop;
