use std::time::{Duration, UNIX_EPOCH};

use dingdang::jobs::ReconcileApp;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    dingdang::observability::init_logging();
    let app = ReconcileApp::from_env().await?;
    let app = &app;
    run(service_fn(move |event: LambdaEvent<Value>| {
        let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
        async move { Ok::<_, Error>(serde_json::to_value(app.run_until(deadline).await?)?) }
    }))
    .await
}
