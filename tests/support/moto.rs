//! The local DynamoDB-compatible server (moto, which also serves Secrets
//! Manager on the same port): the one named by
//! `AWS_ENDPOINT_URL_DYNAMODB` (scripts/test.sh starts one), or else one
//! started for this test process on a free port, which stops when the
//! process ends.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;

fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        if let Ok(url) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB") {
            return url;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/moto_server.py");
        // Never waited for: the server outlives the OnceLock and exits by
        // itself once this process is gone (`--parent-pid`).
        #[allow(clippy::zombie_processes)]
        Command::new("python3")
            .arg(script)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--parent-pid", &std::process::id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start scripts/moto_server.py (pip install 'moto[server]')");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        format!("http://127.0.0.1:{port}")
    })
}

/// A DynamoDB client for the local server, with dummy credentials.
pub async fn dynamo_client() -> Client {
    dynamo_client_at(endpoint()).await
}

/// The URL of the local server.
pub fn dynamo_endpoint() -> &'static str {
    endpoint()
}

/// A DynamoDB client for `url`, with dummy credentials.
pub async fn dynamo_client_at(url: &str) -> Client {
    Client::new(&sdk_config_at(url).await)
}

/// The AWS configuration of every client of the tests: `url` (the local
/// server, which serves every service on one port, or a proxy in front of
/// it), us-east-1, dummy credentials.
pub async fn sdk_config_at(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .endpoint_url(url)
        .load()
        .await
}

/// A Secrets Manager client for the local server.
pub async fn secrets_client() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&sdk_config_at(endpoint()).await)
}
