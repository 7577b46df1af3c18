//! The calculation service: `POST /calculate-locate` on `LISTEN_ADDR`
//! (default 127.0.0.1:8082).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    services::state::run_main("calculation-service", "127.0.0.1:8082", |c| {
        Box::pin(services::start_calculation_service(c))
    })
    .await
}
