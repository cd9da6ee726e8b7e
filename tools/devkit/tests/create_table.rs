//! `create_table_from_template` against a real DynamoDB API: the local moto
//! server that `scripts/test.sh` starts and points `AWS_ENDPOINT_URL_DYNAMODB`
//! at. Without that variable the test has nothing to talk to and passes
//! after saying so.

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::{
    BillingMode, KeyType, ProjectionType, StreamViewType, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;

async fn local_client() -> Option<Client> {
    if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_none() {
        eprintln!("AWS_ENDPOINT_URL_DYNAMODB is not set; run through scripts/test.sh");
        return None;
    }
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(
            std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        ))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    Some(Client::new(&config))
}

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("devkit-test-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn creates_the_template_table_once() {
    let Some(client) = local_client().await else {
        return;
    };
    let name = unique_name();
    let template = devkit::template_path();

    devkit::create_table_from_template(&client, &template, &name)
        .await
        .unwrap();
    // Idempotent: the existing table is left as it is.
    devkit::create_table_from_template(&client, &template, &name)
        .await
        .unwrap();

    let table = client
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys: Vec<_> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().clone()))
        .collect();
    assert_eq!(keys, [("pk", KeyType::Hash)]);
    assert_eq!(
        table.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    let stream = table.stream_specification().unwrap();
    assert!(stream.stream_enabled());
    assert_eq!(
        stream.stream_view_type(),
        Some(&StreamViewType::NewAndOldImages)
    );

    let gsis = table.global_secondary_indexes();
    assert_eq!(gsis.len(), 1);
    assert_eq!(gsis[0].index_name(), Some("by-status-due"));
    let gsi_keys: Vec<_> = gsis[0]
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().clone()))
        .collect();
    assert_eq!(
        gsi_keys,
        [("gsi1pk", KeyType::Hash), ("gsi1sk", KeyType::Range)]
    );
    assert_eq!(
        gsis[0].projection().and_then(|p| p.projection_type()),
        Some(&ProjectionType::All)
    );

    let ttl = client
        .describe_time_to_live()
        .table_name(&name)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.attribute_name(), Some("ttl"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));

    client
        .delete_table()
        .table_name(&name)
        .send()
        .await
        .unwrap();
}
