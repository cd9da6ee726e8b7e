use dingdang::jobs::ReconcileApp;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    dingdang::observability::init_logging();
    let app = ReconcileApp::from_env().await?;
    run(service_fn(|_: LambdaEvent<Value>| async {
        Ok::<_, Error>(serde_json::to_value(app.run().await?)?)
    }))
    .await
}
