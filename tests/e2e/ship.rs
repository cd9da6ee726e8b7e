//! Ship notifications: fulfilment, duplicates, concurrency, failures.

use std::time::Duration;

use dingdang::signing::Authorization;
use dingdang_tests::{id, ship_body, spawn_app, Settings, Webhook};
use time::OffsetDateTime;

fn with_webhook(webhook: &Webhook) -> Settings {
    Settings::hmac().with("FULFILLMENT_URL", webhook.url())
}

#[tokio::test]
async fn a_first_delivery_marks_the_order_paid_and_signs_the_reply() {
    let app = spawn_app(Settings::hmac()).await;
    let (txn, trade) = (id("T"), id("ORD"));
    app.create_order(&trade, 990).await;

    let answer = app.ship(ship_body(&txn, &trade, 990, &id("N"))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json(), serde_json::json!({"retCode": "SUCCESS"}));
    // The reply is signed with our key over its exact body.
    let authorization = answer.authorization.clone().expect("signed reply");
    app.keys
        .verify(
            Some(&authorization),
            &answer.body,
            OffsetDateTime::now_utc(),
        )
        .expect("reply signature verifies");

    let (status, order) = app.get(&format!("/orders/{trade}")).await;
    assert_eq!(status, 200);
    assert_eq!(order["status"], "PAID");
    assert_eq!(order["transactionId"], txn.as_str());
}

#[tokio::test]
async fn a_duplicate_gets_the_same_reply_and_one_fulfilment() {
    let webhook = Webhook::start().await;
    let app = spawn_app(with_webhook(&webhook)).await;
    let (txn, trade) = (id("T"), id("ORD"));
    app.create_order(&trade, 500).await;

    let nonce = id("N");
    let first = app.ship(ship_body(&txn, &trade, 500, &nonce)).await;
    // The very same body again (a redelivery), and a copy with a new nonce.
    let same = app.ship(ship_body(&txn, &trade, 500, &nonce)).await;
    let renonced = app.ship(ship_body(&txn, &trade, 500, &id("N"))).await;
    for answer in [&first, &same, &renonced] {
        assert_eq!(
            (answer.status, answer.json()),
            (200, serde_json::json!({"retCode": "SUCCESS"}))
        );
    }
    assert_eq!(webhook.calls(), 1);
    let (key, body) = webhook.requests().remove(0);
    assert_eq!(
        key.as_deref(),
        Some(format!("payment.succeeded:{txn}").as_str()),
        "the transactionId is the idempotency key"
    );
    let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent["type"], "payment.succeeded");
    assert_eq!(sent["data"]["tradeNo"], trade.as_str());
    assert_eq!(sent["data"]["totalAmt"], 500);
}

#[tokio::test]
async fn fifty_concurrent_copies_fulfil_once_without_a_webhook() {
    let app = spawn_app(Settings::hmac()).await;
    let (txn, trade) = (id("T"), id("ORD"));
    app.create_order(&trade, 1200).await;
    let copies = (0..50).map(|i| {
        let ship = app.ship.clone();
        let body = ship_body(&txn, &trade, 1200, &format!("N{i}"));
        let authorization = dingdang_tests::sign(&app.keys, &body);
        tokio::spawn(async move {
            let now = OffsetDateTime::now_utc();
            ship.notify(Some(&authorization), &body, now).await
        })
    });
    let answers = futures::future::join_all(copies).await;
    let outcomes: Vec<&str> = answers
        .iter()
        .map(|a| a.as_ref().unwrap().outcome)
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "fulfilled").count(),
        1,
        "{outcomes:?}"
    );
    for answer in answers.iter().map(|a| a.as_ref().unwrap()) {
        assert_eq!(answer.status.as_u16(), 200);
        if answer.reply.ret_code != dingdang::protocol::RetCode::Success {
            assert_eq!(
                answer.outcome, "in_progress",
                "only contention may FAIL: {answer:?}"
            );
        }
    }
    // Every copy is SUCCESS at the latest on a retry.
    let answer = app.ship(ship_body(&txn, &trade, 1200, &id("N"))).await;
    assert_eq!(answer.ret_code(), "SUCCESS");
}

#[tokio::test]
async fn fifty_concurrent_copies_call_the_webhook_once() {
    let webhook = Webhook::start().await;
    webhook.set_delay(Duration::from_millis(100));
    let app = spawn_app(with_webhook(&webhook)).await;
    let (txn, trade) = (id("T"), id("ORD"));
    app.create_order(&trade, 700).await;
    let copies = (0..50).map(|_| app.ship(ship_body(&txn, &trade, 700, &id("N"))));
    let answers = futures::future::join_all(copies).await;
    let successes = answers.iter().filter(|a| a.ret_code() == "SUCCESS").count();
    assert!(successes >= 1);
    for answer in &answers {
        assert_eq!(answer.status, 200);
        if answer.ret_code() != "SUCCESS" {
            assert_eq!(answer.json()["retMsg"], "in progress, retry later");
        }
    }
    assert_eq!(webhook.calls(), 1);
    // Retries after the first completed are all SUCCESS, with no new call.
    for _ in 0..3 {
        assert_eq!(
            app.ship(ship_body(&txn, &trade, 700, &id("N")))
                .await
                .ret_code(),
            "SUCCESS"
        );
    }
    assert_eq!(webhook.calls(), 1);
}

#[tokio::test]
async fn a_conflicting_payload_for_a_known_transaction_is_refused() {
    let app = spawn_app(Settings::hmac()).await;
    let (txn, trade, other) = (id("T"), id("ORD"), id("ORD"));
    app.create_order(&trade, 300).await;
    app.create_order(&other, 300).await;
    assert_eq!(
        app.ship(ship_body(&txn, &trade, 300, &id("N")))
            .await
            .ret_code(),
        "SUCCESS"
    );
    let before = dingdang_tests::all_items(&app.store).await;

    let answer = app.ship(ship_body(&txn, &other, 300, &id("N"))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json(),
        serde_json::json!({"retCode": "FAIL", "retMsg": "conflicting transaction payload"})
    );
    // Nothing but the refused notification, kept for an operator.
    assert_eq!(
        dingdang_tests::all_items(&app.store).await.len(),
        before.len() + 1
    );
    let kept = dingdang_tests::unmatched_ship_notices(&app.store).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        dingdang_tests::text(&kept[0], "reason").as_deref(),
        Some("conflict")
    );
    let (_, order) = app.get(&format!("/orders/{other}")).await;
    assert_eq!(order["status"], "CREATED");
}

#[tokio::test]
async fn a_duplicate_after_the_idempotency_record_expired_is_still_success_without_a_grant() {
    let webhook = Webhook::start().await;
    let app = spawn_app(with_webhook(&webhook)).await;
    let (txn, trade) = (id("T"), id("ORD"));
    app.create_order(&trade, 100).await;
    assert_eq!(
        app.ship(ship_body(&txn, &trade, 100, &id("N")))
            .await
            .ret_code(),
        "SUCCESS"
    );

    // TTL deletes the idempotency record.
    app.store
        .client()
        .delete_item()
        .table_name(app.store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("TXN#{txn}")),
        )
        .send()
        .await
        .unwrap();

    assert_eq!(
        app.ship(ship_body(&txn, &trade, 100, &id("N")))
            .await
            .ret_code(),
        "SUCCESS"
    );
    assert_eq!(webhook.calls(), 1);
}

#[tokio::test]
async fn unknown_orders_are_accepted_only_when_opted_in() {
    let app = spawn_app(Settings::hmac().with("DINGDANG_ACCEPT_UNKNOWN_ORDERS", "true")).await;
    let (txn, trade) = (id("T"), id("ORD"));
    assert_eq!(
        app.ship(ship_body(&txn, &trade, 4200, &id("N")))
            .await
            .ret_code(),
        "SUCCESS"
    );
    let (_, order) = app.get(&format!("/orders/{trade}")).await;
    assert_eq!(order["status"], "PAID");
    assert_eq!(order["totalAmt"], 4200);
    assert_eq!(order["transactionId"], txn.as_str());
}

#[tokio::test]
async fn the_reply_authorization_is_a_well_formed_header() {
    let app = spawn_app(Settings::hmac()).await;
    let answer = app.ship(ship_body(&id("T"), &id("ORD"), 1, &id("N"))).await;
    let header = answer.authorization.expect("even a FAIL reply is signed");
    let parsed = Authorization::parse(&header).unwrap();
    assert_eq!(parsed.algorithm.to_string(), "TSK-HMAC-SHA256-BASIC");
}
