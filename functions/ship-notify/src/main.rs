use dingdang::http::ship_notify::ShipNotifyApp;
use lambda_http::{run, service_fn, Error};

// One thread: a notification is one request at a time, and every hop
// between runtime threads costs futex and epoll calls (BENCHMARKS.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    dingdang::observability::init_logging();
    let app = ShipNotifyApp::from_env().await?;
    run(service_fn(|request| app.handle(request))).await
}
