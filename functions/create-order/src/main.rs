use dingdang::http::create_order::CreateOrderApp;
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    dingdang::observability::init_logging();
    let app = CreateOrderApp::from_env().await?;
    run(service_fn(|request| app.handle(request))).await
}
