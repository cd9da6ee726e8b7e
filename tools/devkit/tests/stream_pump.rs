//! The stream pump against moto's DynamoDB stream (the local server that
//! `scripts/test.sh` starts and points `AWS_ENDPOINT_URL_DYNAMODB` at), with
//! a small HTTP server standing in for `cargo lambda watch`'s invoke
//! endpoint. Without that variable the moto tests have nothing to talk to
//! and pass after saying so.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::types::AttributeValue;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use devkit::stream::{passes_filter, streams_client, Pump, PumpSettings, FILTER_PATTERNS};
use serde_json::{json, Value};

const INVOKE_PATH: &str = "/2015-03-31/functions/entitlements/invocations";

async fn local_config() -> Option<SdkConfig> {
    if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_none() {
        eprintln!("AWS_ENDPOINT_URL_DYNAMODB is not set; run through scripts/test.sh");
        return None;
    }
    Some(
        aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(
                std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            ))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .load()
            .await,
    )
}

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("devkit-pump-{}-{nanos}", std::process::id())
}

/// The function's reply to its `n`th invocation (from 0) with `event`.
type Answer = dyn Fn(usize, &Value) -> (StatusCode, Value) + Send + Sync;

#[derive(Clone)]
struct Watcher {
    events: Arc<Mutex<Vec<Value>>>,
    answer: Arc<Answer>,
}

async fn invoke(State(w): State<Watcher>, Json(event): Json<Value>) -> (StatusCode, Json<Value>) {
    let n = {
        let mut events = w.events.lock().unwrap();
        events.push(event.clone());
        events.len() - 1
    };
    let (status, body) = (w.answer)(n, &event);
    (status, Json(body))
}

/// A stand-in for the watcher's invoke endpoint: its URL and the events it
/// received.
async fn watcher(
    answer: impl Fn(usize, &Value) -> (StatusCode, Value) + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Value>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route(INVOKE_PATH, post(invoke))
        .with_state(Watcher {
            events: events.clone(),
            answer: Arc::new(answer),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}{INVOKE_PATH}"), events)
}

fn delivered() -> (StatusCode, Value) {
    (StatusCode::OK, json!({ "batchItemFailures": [] }))
}

fn seq(record: &Value) -> &str {
    record["dynamodb"]["SequenceNumber"].as_str().unwrap()
}

fn pks(event: &Value) -> Vec<&str> {
    event["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dynamodb"]["Keys"]["pk"]["S"].as_str().unwrap())
        .collect()
}

struct Setup {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    pump: Pump,
}

/// A table from template.yaml and a pump on its stream, from now on.
async fn setup(invoke_url: String, max_tries: u32) -> Option<Setup> {
    let config = local_config().await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name();
    devkit::create_table_from_template(&dynamodb, &devkit::template_path(), &table)
        .await
        .unwrap();
    let streams = streams_client(&config, |name| std::env::var(name).ok());
    let pump = Pump::start(
        &dynamodb,
        streams,
        &table,
        PumpSettings {
            invoke_url,
            max_tries,
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            invoke_timeout: Duration::from_secs(10),
            ..PumpSettings::default()
        },
    )
    .await
    .unwrap();
    Some(Setup {
        dynamodb,
        table,
        pump,
    })
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

impl Setup {
    async fn put(&self, item: &[(&str, AttributeValue)]) {
        let mut request = self.dynamodb.put_item().table_name(&self.table);
        for (name, value) in item {
            request = request.item(*name, value.clone());
        }
        request.send().await.unwrap();
    }

    /// An order whose grant is pending.
    async fn paid_order(&self, trade_no: &str) {
        self.put(&[
            ("pk", s(&format!("ORDER#{trade_no}"))),
            ("status", s("PAID")),
            ("grantStatus", s("PENDING")),
        ])
        .await;
    }

    async fn drop_table(&self) {
        let _ = self
            .dynamodb
            .delete_table()
            .table_name(&self.table)
            .send()
            .await;
    }
}

#[tokio::test]
async fn invokes_with_the_records_the_filter_lets_through_in_lambdas_shape() {
    let (url, events) = watcher(|_, _| delivered()).await;
    let Some(mut t) = setup(url, 3).await else {
        return;
    };
    // Nothing yet: the pump reads from now on.
    let summary = t.pump.poll_once().await.unwrap();
    assert_eq!((summary.read, summary.invocations), (0, 0));

    t.put(&[
        ("pk", s("ORDER#T1")),
        ("status", s("PAID")),
        ("grantStatus", s("PENDING")),
        ("totalAmt", AttributeValue::N("100".into())),
    ])
    .await;
    // Not worth an invocation: unpaid, already granted, not an order.
    t.put(&[("pk", s("ORDER#T2")), ("status", s("CREATED"))])
        .await;
    t.put(&[
        ("pk", s("ORDER#T3")),
        ("status", s("PAID")),
        ("grantStatus", s("DELIVERED")),
    ])
    .await;
    t.put(&[("pk", s("PAYMENT#X1")), ("grantStatus", s("PENDING"))])
        .await;
    t.put(&[
        ("pk", s("REFUND#R1")),
        ("status", s("SUCCESS")),
        ("revokeStatus", s("PENDING")),
    ])
    .await;
    t.put(&[
        ("pk", s("REFUND#R2")),
        ("status", s("PENDING")),
        ("grantStatus", s("PENDING")),
    ])
    .await;

    let summary = t.pump.poll_once().await.unwrap();
    assert_eq!(summary.read, 6);
    assert_eq!(summary.matched, 2);
    assert_eq!(summary.invocations, 1);
    assert_eq!(summary.abandoned, 0);
    let received = events.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let event = &received[0];
    assert_eq!(pks(event), ["ORDER#T1", "REFUND#R1"]);

    let record = &event["Records"][0];
    assert_eq!(record["eventName"], "INSERT");
    assert_eq!(record["eventSource"], "aws:dynamodb");
    assert_eq!(record["eventSourceARN"], t.pump.stream_arn());
    assert!(record["eventID"].is_string());
    assert!(record["awsRegion"].is_string());
    let dynamodb = &record["dynamodb"];
    assert_eq!(dynamodb["Keys"], json!({ "pk": { "S": "ORDER#T1" } }));
    assert_eq!(
        dynamodb["NewImage"],
        json!({
            "pk": { "S": "ORDER#T1" },
            "status": { "S": "PAID" },
            "grantStatus": { "S": "PENDING" },
            "totalAmt": { "N": "100" },
        })
    );
    assert!(dynamodb.get("OldImage").is_none());
    assert!(!seq(record).is_empty());
    assert_eq!(dynamodb["StreamViewType"], "NEW_AND_OLD_IMAGES");
    assert!(dynamodb["ApproximateCreationDateTime"].is_number());

    // A change to a pending order carries its old image too.
    t.put(&[
        ("pk", s("ORDER#T1")),
        ("status", s("PAID")),
        ("grantStatus", s("PENDING")),
        ("grantAttempts", AttributeValue::N("1".into())),
    ])
    .await;
    let summary = t.pump.poll_once().await.unwrap();
    assert_eq!((summary.read, summary.invocations), (1, 1));
    let received = events.lock().unwrap().clone();
    let record = &received[1]["Records"][0];
    assert_eq!(record["eventName"], "MODIFY");
    assert_eq!(
        record["dynamodb"]["OldImage"]["totalAmt"],
        json!({ "N": "100" })
    );

    // Read once: nothing again.
    let summary = t.pump.poll_once().await.unwrap();
    assert_eq!((summary.read, summary.invocations), (0, 0));
    t.drop_table().await;
}

#[tokio::test]
async fn a_reported_record_is_sent_again_with_the_ones_after_it() {
    // The first invocation reports its second record, as the entitlements
    // function does when that record's webhook call fails.
    let (url, events) = watcher(|n, event| {
        if n == 0 {
            let failed = seq(&event["Records"][1]).to_owned();
            (
                StatusCode::OK,
                json!({ "batchItemFailures": [{ "itemIdentifier": failed }] }),
            )
        } else {
            delivered()
        }
    })
    .await;
    let Some(mut t) = setup(url, 3).await else {
        return;
    };
    for trade_no in ["A1", "B2", "C3"] {
        t.paid_order(trade_no).await;
    }
    let summary = t.pump.poll_once().await.unwrap();
    assert_eq!(summary.matched, 3);
    assert_eq!(summary.invocations, 2);
    assert_eq!(summary.abandoned, 0);
    let received = events.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    assert_eq!(pks(&received[0]), ["ORDER#A1", "ORDER#B2", "ORDER#C3"]);
    assert_eq!(pks(&received[1]), ["ORDER#B2", "ORDER#C3"]);
    // The very records, sequence numbers and all.
    assert_eq!(received[1]["Records"][0], received[0]["Records"][1]);
    assert_eq!(received[1]["Records"][1], received[0]["Records"][2]);
    t.drop_table().await;
}

#[tokio::test]
async fn a_failing_invocation_is_retried_then_left_to_the_sweep() {
    // The function errors twice (as an unreachable webhook or a crash
    // would), then delivers.
    let (url, events) = watcher(|n, _| {
        if n < 2 {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "errorMessage": "boom" }),
            )
        } else {
            delivered()
        }
    })
    .await;
    let Some(mut t) = setup(url, 3).await else {
        return;
    };
    t.paid_order("D4").await;
    let summary = t.pump.poll_once().await.unwrap();
    assert_eq!((summary.invocations, summary.abandoned), (3, 0));
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .all(|e| pks(e) == ["ORDER#D4"]));
    t.drop_table().await;

    // Always failing: given up after max_tries, and the pump moves on.
    let (url, events) = watcher(|_, event| {
        let first = seq(&event["Records"][0]).to_owned();
        (
            StatusCode::OK,
            json!({ "batchItemFailures": [{ "itemIdentifier": first }] }),
        )
    })
    .await;
    let Some(mut t) = setup(url, 3).await else {
        return;
    };
    t.paid_order("E5").await;
    t.paid_order("F6").await;
    let summary = t.pump.poll_once().await.unwrap();
    assert_eq!((summary.invocations, summary.abandoned), (3, 2));
    assert_eq!(events.lock().unwrap().len(), 3);
    t.paid_order("G7").await;
    let summary = t.pump.poll_once().await.unwrap();
    assert_eq!(summary.matched, 1);
    assert_eq!(pks(events.lock().unwrap().last().unwrap()), ["ORDER#G7"]);
    t.drop_table().await;
}

#[tokio::test]
async fn from_start_reads_what_was_written_before_the_pump() {
    let (url, events) = watcher(|_, _| delivered()).await;
    let Some(config) = local_config().await else {
        return;
    };
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name();
    devkit::create_table_from_template(&dynamodb, &devkit::template_path(), &table)
        .await
        .unwrap();
    dynamodb
        .put_item()
        .table_name(&table)
        .item("pk", s("ORDER#H8"))
        .item("grantStatus", s("PENDING"))
        .send()
        .await
        .unwrap();
    let mut pump = Pump::start(
        &dynamodb,
        streams_client(&config, |name| std::env::var(name).ok()),
        &table,
        PumpSettings {
            invoke_url: url,
            from_start: true,
            ..PumpSettings::default()
        },
    )
    .await
    .unwrap();
    let summary = pump.poll_once().await.unwrap();
    assert_eq!(summary.matched, 1);
    assert_eq!(pks(&events.lock().unwrap()[0]), ["ORDER#H8"]);
    let _ = dynamodb.delete_table().table_name(&table).send().await;
}

#[test]
fn the_filter_mirrors_the_event_patterns() {
    let record = |pk: &str, field: &str, status: &str| {
        json!({
            "eventName": "MODIFY",
            "dynamodb": {
                "Keys": { "pk": { "S": pk } },
                "NewImage": { "pk": { "S": pk }, field: { "S": status } },
            },
        })
    };
    assert!(passes_filter(&record("ORDER#1", "grantStatus", "PENDING")));
    assert!(passes_filter(&record(
        "REFUND#1",
        "revokeStatus",
        "PENDING"
    )));
    assert!(!passes_filter(&record(
        "ORDER#1",
        "grantStatus",
        "DELIVERED"
    )));
    assert!(!passes_filter(&record(
        "ORDER#1",
        "revokeStatus",
        "PENDING"
    )));
    assert!(!passes_filter(&record(
        "REFUND#1",
        "grantStatus",
        "PENDING"
    )));
    assert!(!passes_filter(&record("TXN#1", "grantStatus", "PENDING")));
    // A removal has no new image.
    assert!(!passes_filter(&json!({
        "eventName": "REMOVE",
        "dynamodb": {
            "Keys": { "pk": { "S": "ORDER#1" } },
            "OldImage": { "grantStatus": { "S": "PENDING" } },
        },
    })));
}

/// The patterns of every `DynamoDB` event with `FilterCriteria` in
/// `template.yaml`.
fn template_patterns(node: &serde_yaml::Value, found: &mut Vec<Value>) {
    match node {
        serde_yaml::Value::Mapping(map) => {
            // A SAM `DynamoDB` event or an event source mapping resource.
            let is_stream_event = matches!(
                map.get("Type").and_then(|t| t.as_str()),
                Some("DynamoDB" | "AWS::Lambda::EventSourceMapping")
            );
            if is_stream_event {
                let filters = map
                    .get("Properties")
                    .and_then(|p| p.get("FilterCriteria"))
                    .and_then(|f| f.get("Filters"))
                    .and_then(|f| f.as_sequence());
                for filter in filters.into_iter().flatten() {
                    let pattern = filter.get("Pattern").and_then(|p| p.as_str()).unwrap();
                    found.push(serde_json::from_str(pattern).unwrap());
                }
            }
            for (_, value) in map {
                template_patterns(value, found);
            }
        }
        serde_yaml::Value::Sequence(items) => {
            for item in items {
                template_patterns(item, found);
            }
        }
        serde_yaml::Value::Tagged(tagged) => template_patterns(&tagged.value, found),
        _ => {}
    }
}

#[test]
fn the_filter_is_the_templates() {
    let yaml = std::fs::read_to_string(devkit::template_path()).unwrap();
    let template: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    let mut found = Vec::new();
    template_patterns(&template, &mut found);
    assert!(
        !found.is_empty(),
        "template.yaml has a DynamoDB stream trigger with FilterCriteria"
    );
    let mut ours: Vec<Value> = FILTER_PATTERNS
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    found.sort_by_key(|v| v.to_string());
    ours.sort_by_key(|v| v.to_string());
    assert_eq!(
        found, ours,
        "devkit's stream pump filters as template.yaml's FilterCriteria"
    );
}
