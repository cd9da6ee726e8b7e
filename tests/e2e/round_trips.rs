//! DynamoDB round trips per ship notification, counted by a proxy between
//! the handlers and the local server: at most 2 per first delivery and 1
//! per duplicate (the design does 1 and 1 without a fulfilment webhook, 2
//! and 1 with one).

use std::collections::BTreeMap;

use dingdang_tests::proxy::Proxy;
use dingdang_tests::{dynamo_endpoint, id, ship_body, spawn_app_via, App, Settings, Webhook};

const DELIVERIES: usize = 4;

/// Round trips of each delivery, and the operations of all of them.
#[derive(Debug, Default)]
struct Counts {
    first: Vec<usize>,
    duplicate: Vec<usize>,
    operations: BTreeMap<String, usize>,
}

/// Ships one notification and counts the DynamoDB requests it caused.
async fn counted(app: &App, proxy: &Proxy, body: Vec<u8>, counts: &mut Counts) -> usize {
    proxy.reset();
    let answer = app.ship(body).await;
    assert_eq!(
        (answer.status, answer.ret_code()),
        (200, "SUCCESS".to_owned()),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(
        proxy.retries(),
        0,
        "the SDK retried: the count would not be the design's"
    );
    for (operation, n) in proxy.by_operation() {
        *counts.operations.entry(operation).or_default() += n;
    }
    proxy.requests()
}

async fn measure(settings: Settings) -> Counts {
    let proxy = Proxy::start(dynamo_endpoint()).await;
    let app = spawn_app_via(settings, Some(&proxy.url())).await;
    let mut counts = Counts::default();
    for i in 0..DELIVERIES {
        let (txn, trade, nonce) = (id("T"), id("ORD"), id("N"));
        let amount = 100 + i as i64;
        app.create_order(&trade, amount).await;
        let first = counted(
            &app,
            &proxy,
            ship_body(&txn, &trade, amount, &nonce),
            &mut counts,
        )
        .await;
        counts.first.push(first);
        // A redelivery of the same body, then a copy with a new nonce.
        for nonce in [nonce, id("N")] {
            let duplicate = counted(
                &app,
                &proxy,
                ship_body(&txn, &trade, amount, &nonce),
                &mut counts,
            )
            .await;
            counts.duplicate.push(duplicate);
        }
    }
    counts
}

fn check(label: &str, counts: &Counts) {
    println!(
        "DynamoDB round trips {label}: first deliveries {:?}, duplicates {:?}, operations {:?}",
        counts.first, counts.duplicate, counts.operations
    );
    for &n in &counts.first {
        assert!(
            n >= 1,
            "{label}: a first delivery made no request through the proxy: {counts:?}"
        );
        assert!(
            n <= 2,
            "{label}: more than 2 round trips for a first delivery: {counts:?}"
        );
    }
    for &n in &counts.duplicate {
        assert!(
            n >= 1,
            "{label}: a duplicate made no request through the proxy: {counts:?}"
        );
        assert!(
            n <= 1,
            "{label}: more than 1 round trip for a duplicate: {counts:?}"
        );
    }
}

#[tokio::test]
async fn round_trips_without_a_fulfilment_webhook() {
    let counts = measure(Settings::hmac()).await;
    check("without FULFILLMENT_URL", &counts);
}

#[tokio::test]
async fn round_trips_with_a_fulfilment_webhook() {
    let webhook = Webhook::start().await;
    let counts = measure(Settings::hmac().with("FULFILLMENT_URL", webhook.url())).await;
    check("with FULFILLMENT_URL", &counts);
    assert_eq!(webhook.calls(), DELIVERIES, "one fulfilment per order");
}
