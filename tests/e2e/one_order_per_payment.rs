//! A transactionId belongs to one order for ever: once it has paid an
//! order it is refused for any other order, also after its idempotency
//! record (`TXN#`, which has a TTL) has expired. The claim binds it in the
//! same transaction through `PAYMENT#<transactionId>`, which never expires.

use aws_sdk_dynamodb::types::AttributeValue;
use dingdang_tests::{id, item, ship_body, spawn_app, text, App, Settings, StoredItem, Webhook};
use serde_json::json;
use time::OffsetDateTime;

/// How the idempotency record goes away.
#[derive(Debug, Clone, Copy)]
enum Expiry {
    /// DynamoDB's TTL deleted it.
    Deleted,
    /// Past its `ttl`, not deleted yet (TTL deletion is lazy).
    PastTtl,
}

async fn expire_record(app: &App, txn: &str, expiry: Expiry) {
    let pk = AttributeValue::S(format!("TXN#{txn}"));
    let client = app.store.client();
    match expiry {
        Expiry::Deleted => {
            client
                .delete_item()
                .table_name(app.store.table())
                .key("pk", pk)
                .send()
                .await
                .unwrap();
        }
        Expiry::PastTtl => {
            let past = OffsetDateTime::now_utc().unix_timestamp() - 60;
            client
                .update_item()
                .table_name(app.store.table())
                .key("pk", pk)
                .update_expression("SET #ttl = :past")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":past", AttributeValue::N(past.to_string()))
                .send()
                .await
                .unwrap();
        }
    }
}

async fn order_item(app: &App, trade: &str) -> StoredItem {
    item(&app.store, &format!("ORDER#{trade}"))
        .await
        .expect("the order")
}

/// The payment item: bound to `trade`, and never expiring.
async fn assert_bound(app: &App, txn: &str, trade: &str) {
    let payment = item(&app.store, &format!("PAYMENT#{txn}"))
        .await
        .expect("the payment is recorded with the claim");
    assert_eq!(
        text(&payment, "tradeNo").as_deref(),
        Some(trade),
        "{payment:?}"
    );
    assert!(
        !payment.contains_key("ttl"),
        "the payment item never expires: {payment:?}"
    );
}

async fn refused_for_another_order(settings: Settings, webhook: Option<&Webhook>, expiry: Expiry) {
    let app = spawn_app(settings).await;
    let (txn, first, second) = (id("T"), id("ORD"), id("ORD"));
    // The same amount: only the transactionId's binding can refuse it.
    app.create_order(&first, 990).await;
    app.create_order(&second, 990).await;
    assert_eq!(
        app.ship(ship_body(&txn, &first, 990, &id("N")))
            .await
            .ret_code(),
        "SUCCESS"
    );
    assert_bound(&app, &txn, &first).await;

    // While the record exists, the other order is refused as a conflict.
    let while_recorded = app.ship(ship_body(&txn, &second, 990, &id("N"))).await;
    assert_eq!(
        (while_recorded.status, while_recorded.json()),
        (
            200,
            json!({"retCode": "FAIL", "retMsg": "conflicting transaction payload"})
        )
    );

    expire_record(&app, &txn, expiry).await;
    let first_before = order_item(&app, &first).await;
    let second_before = order_item(&app, &second).await;

    // After it: refused the same way (and alerted: a conflict), nothing
    // granted, the first order unchanged.
    let body = ship_body(&txn, &second, 990, &id("N"));
    let answer = app.ship(body.clone()).await;
    assert_eq!(
        (answer.status, answer.json()),
        (
            200,
            json!({"retCode": "FAIL", "retMsg": "conflicting transaction payload"})
        ),
        "{expiry:?}"
    );
    assert_eq!(order_item(&app, &second).await, second_before, "{expiry:?}");
    assert_eq!(order_item(&app, &first).await, first_before, "{expiry:?}");
    let (_, order) = app.get(&format!("/orders/{second}")).await;
    assert_eq!(order["status"], "CREATED");
    assert!(order.get("transactionId").is_none(), "{order}");
    assert_bound(&app, &txn, &first).await;
    if let Some(webhook) = webhook {
        assert_eq!(webhook.calls(), 1, "nothing granted for the other order");
    }
    // The refused notification is kept for an operator, as a conflict.
    let kept = dingdang_tests::unmatched_ship_notices(&app.store).await;
    assert!(
        kept.iter().any(|k| {
            text(k, "reason").as_deref() == Some("conflict")
                && text(k, "tradeNo").as_deref() == Some(second.as_str())
                && text(k, "payload").as_deref() == Some(std::str::from_utf8(&body).unwrap())
        }),
        "{kept:?}"
    );

    // The first order's own late duplicate is still SUCCESS.
    assert_eq!(
        app.ship(ship_body(&txn, &first, 990, &id("N")))
            .await
            .ret_code(),
        "SUCCESS"
    );
    if let Some(webhook) = webhook {
        assert_eq!(webhook.calls(), 1);
    }
}

#[tokio::test]
async fn a_paid_transaction_id_is_refused_for_another_order_after_its_record_expired() {
    for expiry in [Expiry::Deleted, Expiry::PastTtl] {
        refused_for_another_order(Settings::hmac(), None, expiry).await;
    }
}

#[tokio::test]
async fn the_same_holds_with_a_fulfilment_webhook() {
    for expiry in [Expiry::Deleted, Expiry::PastTtl] {
        let webhook = Webhook::start().await;
        let settings = Settings::hmac().with("FULFILLMENT_URL", webhook.url());
        refused_for_another_order(settings, Some(&webhook), expiry).await;
    }
}

#[tokio::test]
async fn a_paid_transaction_id_does_not_create_an_unknown_order_when_those_are_accepted() {
    let app = spawn_app(Settings::hmac().with("DINGDANG_ACCEPT_UNKNOWN_ORDERS", "true")).await;
    let (txn, first, unknown) = (id("T"), id("ORD"), id("ORD"));
    assert_eq!(
        app.ship(ship_body(&txn, &first, 500, &id("N")))
            .await
            .ret_code(),
        "SUCCESS"
    );
    expire_record(&app, &txn, Expiry::Deleted).await;
    let answer = app.ship(ship_body(&txn, &unknown, 500, &id("N"))).await;
    assert_eq!(answer.json()["retMsg"], "conflicting transaction payload");
    assert!(
        item(&app.store, &format!("ORDER#{unknown}"))
            .await
            .is_none(),
        "no order was created for it"
    );
    assert_bound(&app, &txn, &first).await;
}
