//! The data service: `GET /rates/{ticker}` on `LISTEN_ADDR`
//! (default 127.0.0.1:8081).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    services::state::run_main("data-service", "127.0.0.1:8081", |c| {
        Box::pin(services::start_data_service(c))
    })
    .await
}
