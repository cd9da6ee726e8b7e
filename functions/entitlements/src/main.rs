use dingdang::jobs::EntitlementsApp;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    dingdang::observability::init_logging();
    let app = EntitlementsApp::from_env().await?;
    let app = &app;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(app.handle(event.payload).await)
    }))
    .await
}
