//! Serves the real handlers over HTTP for contract tests of the partner API
//! (scripts/openapi-check.sh): a fresh table on the local DynamoDB
//! (`AWS_ENDPOINT_URL_DYNAMODB`, or a moto server started for this process)
//! and the platform simulator behind the API. Prints the base URL on one
//! line, then serves until it is stopped.
//!
//! ```sh
//! cargo run -q -p dingdang-tests --example serve_api
//! ```

use std::io::Write;

use dingdang_tests::{hmac_stack, Settings};

#[tokio::main]
async fn main() {
    let stack = hmac_stack(Settings::hmac(), |_| {}).await;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", stack.app.base).expect("stdout");
    out.flush().expect("stdout");
    drop(out);
    let _ = tokio::signal::ctrl_c().await;
    drop(stack);
}
