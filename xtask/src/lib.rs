//! The project's tooling, run as `cargo xtask <task>` (see `main.rs`);
//! a library too, so the end-to-end tests call the checks directly.

pub mod bench;
pub mod check_deploy;
pub mod prometheus_rule;
pub mod run;
pub mod util;
pub mod wasm_drop;
