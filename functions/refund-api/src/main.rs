use dingdang::http::partner_api::PartnerApi;
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    dingdang::observability::init_logging();
    let api = PartnerApi::from_env().await?;
    run(service_fn(|request| api.handle(request))).await
}
