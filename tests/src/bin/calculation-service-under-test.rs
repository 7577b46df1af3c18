//! The calculation service, built in this package too so that the crash
//! suite (`tests/tests/chaos.rs`) can run it as a process of its own and
//! SIGKILL it: the same `run_main` as `backends/services`'
//! `calculation-service` binary, configured from the environment
//! (`LISTEN_ADDR`, `DATABASE_URL`, …).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    services::state::run_main("calculation-service", "127.0.0.1:8082", |c| {
        Box::pin(services::start_calculation_service(c))
    })
    .await
}
