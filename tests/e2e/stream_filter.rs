//! The entitlements function's stream filter: the `FilterCriteria` of
//! template.yaml's event source mapping pass exactly the changes the
//! function acts on. The items are the real ones, read from the table after
//! driving the app (payment, refund, delivery, redelivery); each becomes
//! the stream record a write of it would produce, judged with the subset of
//! Lambda's event filtering the patterns use (exact strings, nested
//! objects, `exists`, `prefix`, OR across filters). An operator the
//! evaluator does not know fails the test rather than being guessed.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use dingdang::domain::due::SweepClock;
use dingdang::store::DynamoStore;
use dingdang_tests::{
    all_items, hmac_stack, id, item, reconciler, text, Settings, StoredItem, Webhook,
};
use serde_json::{json, Map, Value};

/// The filter patterns of the template's one event source mapping.
fn template_filters() -> Vec<Value> {
    let path = devkit::template_path();
    let yaml = std::fs::read_to_string(&path).expect("read template.yaml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("template.yaml is YAML");
    let mappings: Vec<&serde_yaml::Value> = doc["Resources"]
        .as_mapping()
        .expect("Resources")
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Lambda::EventSourceMapping"))
        .collect();
    assert_eq!(
        mappings.len(),
        1,
        "one event source mapping in the template"
    );
    let filters = mappings[0]["Properties"]["FilterCriteria"]["Filters"]
        .as_sequence()
        .expect("FilterCriteria.Filters");
    assert!(!filters.is_empty());
    filters
        .iter()
        .map(|f| {
            let pattern = f["Pattern"].as_str().expect("a Pattern string");
            serde_json::from_str(pattern).expect("a Pattern is JSON")
        })
        .collect()
}

/// Whether `event` matches `pattern` (every field of the pattern matches).
fn matches(pattern: &Value, event: Option<&Value>) -> bool {
    let Some(fields) = pattern.as_object() else {
        panic!("a pattern is an object: {pattern}");
    };
    fields.iter().all(|(name, want)| {
        let got = event.and_then(|e| e.get(name));
        match want {
            Value::Object(_) => got.is_some_and(Value::is_object) && matches(want, got),
            Value::Array(matchers) => matchers.iter().any(|m| leaf(m, got)),
            other => panic!("a pattern field is an object or a list: {other}"),
        }
    })
}

/// One matcher of a list against the field's value (a list value matches
/// when one of its elements does).
fn leaf(matcher: &Value, got: Option<&Value>) -> bool {
    let values: Vec<&Value> = match got {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(value) => vec![value],
    };
    match matcher {
        Value::Object(op) => {
            let (name, arg) = op.iter().next().expect("an operator");
            match (name.as_str(), arg) {
                ("exists", Value::Bool(exists)) => got.is_some() == *exists,
                ("prefix", Value::String(prefix)) => values
                    .iter()
                    .any(|v| v.as_str().is_some_and(|s| s.starts_with(prefix.as_str()))),
                _ => panic!("filter operator {name} is not implemented here: add it"),
            }
        }
        Value::Array(_) => panic!("nested lists are not a filter: {matcher}"),
        exact => values.contains(&exact),
    }
}

/// Lambda's filtering: a record passes when any filter matches.
fn passes(filters: &[Value], record: &Value) -> bool {
    filters.iter().any(|f| matches(f, Some(record)))
}

/// An attribute value in DynamoDB JSON, as the stream writes it.
fn dynamodb_json(value: &AttributeValue) -> Value {
    let b64 = |b: &aws_sdk_dynamodb::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(b.as_ref())
    };
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(items) => {
            json!({ "L": items.iter().map(dynamodb_json).collect::<Vec<_>>() })
        }
        AttributeValue::M(map) => json!({ "M": image(map.iter()) }),
        other => panic!("attribute value {other:?} not converted"),
    }
}

fn image<'a>(attributes: impl Iterator<Item = (&'a String, &'a AttributeValue)>) -> Value {
    Value::Object(
        attributes
            .map(|(k, v)| (k.clone(), dynamodb_json(v)))
            .collect::<Map<_, _>>(),
    )
}

/// The stream record (NEW_AND_OLD_IMAGES) of a write that left `item`.
fn record_of(item: &StoredItem) -> Value {
    json!({
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": { "pk": dynamodb_json(&item["pk"]) },
            "NewImage": image(item.iter()),
            "SequenceNumber": "1",
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    })
}

/// The keys of the table's items whose write the filter passes.
async fn passing(store: &DynamoStore, filters: &[Value]) -> BTreeSet<String> {
    all_items(store)
        .await
        .iter()
        .filter(|i| passes(filters, &record_of(i)))
        .map(|i| text(i, "pk").unwrap())
        .collect()
}

async fn stored(store: &DynamoStore, pk: &str) -> StoredItem {
    item(store, pk)
        .await
        .unwrap_or_else(|| panic!("{pk} stored"))
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

#[tokio::test]
async fn the_template_stream_filter_passes_exactly_pending_grants_and_revokes() {
    let filters = template_filters();
    let webhook = Webhook::start().await;
    // Down while paying and refunding: grant and revoke stay pending.
    webhook.set_failing(true);
    let settings = Settings::hmac().with("FULFILLMENT_URL", webhook.url());
    let stack = hmac_stack(settings.clone(), |sim| {
        sim.refund_delay = Duration::from_millis(800);
    })
    .await;
    let store = &stack.app.store;

    // A registered order (CREATED): nothing to deliver.
    let (created, paid) = (id("ORD"), id("ORD"));
    stack.app.create_order(&created, 500).await;
    let order_created = format!("ORDER#{created}");
    assert_eq!(
        text(&stored(store, &order_created).await, "status").as_deref(),
        Some("CREATED")
    );
    assert_eq!(passing(store, &filters).await, set(&[]));

    // Paid: its grant is pending. The payment, idempotency and nonce
    // items written alongside do not pass.
    stack.paid_order(&paid, 1000).await;
    let order_paid = format!("ORDER#{paid}");
    let order = stored(store, &order_paid).await;
    assert_eq!(
        (text(&order, "status"), text(&order, "grantStatus")),
        (Some("PAID".into()), Some("PENDING".into()))
    );
    assert_eq!(passing(store, &filters).await, set(&[&order_paid]));
    // A removal (no NewImage) of that item does not.
    let mut removal = record_of(&order);
    removal["eventName"] = json!("REMOVE");
    removal["dynamodb"]
        .as_object_mut()
        .unwrap()
        .remove("NewImage");
    assert!(!passes(&filters, &removal));

    // A refund still open (PROCESSING at the platform; PENDING the same
    // item before the platform accepted it) does not pass.
    let no = format!("R{paid}");
    let refund_pk = format!("REFUND#{no}");
    let (code, refund) = stack
        .app
        .post_json(
            "/refunds",
            json!({"tradeNo": paid, "refundTradeNo": no, "refundAmt": 400}),
        )
        .await;
    assert_eq!(code, 201, "{refund}");
    let open = stored(store, &refund_pk).await;
    let status = text(&open, "status").unwrap();
    assert!(
        status == "PROCESSING" || status == "PENDING",
        "refund still open: {status}"
    );
    assert!(!passes(&filters, &record_of(&open)));
    let mut pending = open.clone();
    pending.insert("status".into(), AttributeValue::S("PENDING".into()));
    assert!(!passes(&filters, &record_of(&pending)));
    assert_eq!(passing(store, &filters).await, set(&[&order_paid]));

    // SUCCESS: its revoke is pending.
    stack.wait_refund(&no, "SUCCESS").await;
    let done = stored(store, &refund_pk).await;
    assert_eq!(text(&done, "revokeStatus").as_deref(), Some("PENDING"));
    assert_eq!(
        passing(store, &filters).await,
        set(&[&order_paid, &refund_pk])
    );

    // Delivered by the sweep once both are due (within the webhook's 300 s
    // of signature tolerance): neither passes any more.
    webhook.set_failing(false);
    let sweep = reconciler(&stack, &settings);
    let clock =
        SweepClock::until(SystemTime::now() + Duration::from_secs(60), Duration::ZERO).shifted(150);
    let summary = sweep.run_with(clock).await.unwrap();
    assert_eq!(summary.entitlements_failed, 0, "{summary:?}");
    assert_eq!(
        text(&stored(store, &order_paid).await, "grantStatus").as_deref(),
        Some("DELIVERED")
    );
    assert_eq!(
        text(&stored(store, &refund_pk).await, "revokeStatus").as_deref(),
        Some("DELIVERED")
    );
    assert_eq!(passing(store, &filters).await, set(&[]));

    // Redelivered (webhook down again, so that nothing delivers them
    // meanwhile): both pending again, both pass.
    webhook.set_failing(true);
    let (code, reply) = stack
        .app
        .post_json(&format!("/orders/{paid}/redeliver"), json!({}))
        .await;
    assert_eq!((code, reply["events"].clone()), (202, json!(2)), "{reply}");
    assert_eq!(
        passing(store, &filters).await,
        set(&[&order_paid, &refund_pk])
    );
}
