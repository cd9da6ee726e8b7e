//! The entitlements outbox: a recorded payment is never held hostage by
//! the partner's webhook. ship-notify records and answers; the
//! entitlements function (fed here as the stream's fast path feeds it,
//! `tests/support/serve.rs`) and the reconcile sweep deliver signed events,
//! at least once, recorded DELIVERED once.

use std::time::{Duration, SystemTime};

use dingdang::domain::due::SweepClock;
use dingdang::jobs::EntitlementsApp;
use dingdang::platform::http_client;
use dingdang_tests::{hmac_stack, id, reconciler, ship_body, spawn_app, Settings, Webhook};
use serde_json::{json, Value};

fn with_webhook(webhook: &Webhook) -> Settings {
    Settings::hmac().with("FULFILLMENT_URL", webhook.url())
}

/// A sweep `offset` seconds from now.
fn later(offset: i64) -> SweepClock {
    SweepClock::until(SystemTime::now() + Duration::from_secs(60), Duration::ZERO).shifted(offset)
}

fn events(webhook: &Webhook) -> Vec<Value> {
    webhook
        .requests()
        .into_iter()
        .map(|(_, body)| serde_json::from_slice(&body).unwrap())
        .collect()
}

#[tokio::test]
async fn a_webhook_down_while_the_user_pays_keeps_the_payment_and_grants_once_it_is_back() {
    let webhook = Webhook::start().await;
    webhook.set_failing(true);
    let settings = with_webhook(&webhook);
    let stack = hmac_stack(settings.clone(), |_| {}).await;
    let (txn, trade) = (id("T"), id("ORD"));
    stack.app.create_order(&trade, 800).await;

    // Recorded and acknowledged: the webhook is not in the platform's way.
    let answer = stack.app.ship(ship_body(&txn, &trade, 800, &id("N"))).await;
    assert_eq!(answer.json(), json!({"retCode": "SUCCESS"}));
    let (_, order) = stack.app.get(&format!("/orders/{trade}")).await;
    assert_eq!(order["status"], "PAID");
    assert_eq!(order["grant"]["status"], "PENDING", "{order}");
    assert_eq!(webhook.calls(), 0);
    assert!(webhook.received() >= 1, "the fast path tried");

    // Still down at the first sweep: pushed back, still pending.
    let sweep = reconciler(&stack, &settings);
    let summary = sweep.run_with(later(121)).await.unwrap();
    assert_eq!(
        (summary.entitlements_delivered, summary.entitlements_failed),
        (0, 1),
        "{summary:?}"
    );
    assert!(
        summary.oldest_undelivered_secs.unwrap() >= 120,
        "{summary:?}"
    );
    let (_, order) = stack.app.get(&format!("/orders/{trade}")).await;
    assert_eq!(order["grant"]["attempts"], 1, "{order}");

    // Back: the next due sweep delivers it, once.
    webhook.set_failing(false);
    let summary = sweep.run_with(later(121 + 61)).await.unwrap();
    assert_eq!(summary.entitlements_delivered, 1, "{summary:?}");
    let summary = sweep.run_with(later(121 + 61 + 3600)).await.unwrap();
    assert_eq!(summary.entitlements_delivered, 0, "{summary:?}");
    assert_eq!(summary.oldest_undelivered_secs, None, "{summary:?}");
    assert_eq!(webhook.calls(), 1);
    let sent = events(&webhook);
    assert_eq!(sent[0]["id"], format!("payment.succeeded:{txn}"));
    assert_eq!(sent[0]["data"]["tradeNo"], trade.as_str());
    let (_, order) = stack.app.get(&format!("/orders/{trade}")).await;
    assert_eq!(order["grant"]["status"], "DELIVERED", "{order}");
    assert!(order["grant"]["deliveredAt"].is_number());
    // Every delivery was signed with FULFILLMENT_SECRET.
    assert_eq!(webhook.bad_signatures(), 0);
}

#[tokio::test]
async fn the_stream_delivering_again_and_two_instances_racing_record_the_grant_once() {
    let webhook = Webhook::start().await;
    let settings = Settings::hmac();
    // No fast path: the batches below are the stream.
    let app = spawn_app(settings.clone()).await;
    let (txn, trade) = (id("T"), id("ORD"));
    app.create_order(&trade, 300).await;
    assert_eq!(
        app.ship(ship_body(&txn, &trade, 300, &id("N")))
            .await
            .ret_code(),
        "SUCCESS"
    );

    let with_url = settings.with("FULFILLMENT_URL", webhook.url());
    let instance = || {
        EntitlementsApp::new(
            with_url.config(app.store.table()),
            app.store.clone(),
            http_client(),
        )
        .unwrap()
    };
    let (a, b) = (instance(), instance());
    let batch = json!({"Records": [
        {"dynamodb": {"Keys": {"pk": {"S": format!("ORDER#{trade}")}}, "SequenceNumber": "1"}}
    ]});
    let (ra, rb) = tokio::join!(a.handle(batch.clone()), b.handle(batch.clone()));
    assert_eq!(ra["batchItemFailures"], json!([]));
    assert_eq!(rb["batchItemFailures"], json!([]));
    // The same batch once more, later.
    a.handle(batch).await;
    // At least once: the webhook may see the event id twice, never a
    // second grant recorded; every call carries the same id.
    assert!((1..=2).contains(&webhook.calls()), "{}", webhook.calls());
    assert!(events(&webhook)
        .iter()
        .all(|e| e["id"] == format!("payment.succeeded:{txn}")));
    let (_, order) = app.get(&format!("/orders/{trade}")).await;
    assert_eq!(order["grant"]["status"], "DELIVERED");
}

#[tokio::test]
async fn a_batch_with_a_failing_record_is_retried_from_that_record_only() {
    let webhook = Webhook::start().await;
    let settings = Settings::hmac();
    let app = spawn_app(settings.clone()).await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        let (txn, trade) = (id("T"), id("ORD"));
        app.create_order(&trade, 100).await;
        app.ship(ship_body(&txn, &trade, 100, &id("N"))).await;
        keys.push(trade);
    }
    let entitlements = EntitlementsApp::new(
        settings
            .with("FULFILLMENT_URL", webhook.url())
            .config(app.store.table()),
        app.store.clone(),
        http_client(),
    )
    .unwrap();
    let batch = |from: usize| {
        let records: Vec<Value> = keys[from..]
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"dynamodb": {"Keys": {"pk": {"S": format!("ORDER#{t}")}}, "SequenceNumber": format!("{}", from + i + 1)}}))
            .collect();
        json!({ "Records": records })
    };
    // The first delivers; the webhook then fails: the second is reported,
    // the third not tried.
    let first = entitlements
        .handle(json!({"Records": [batch(0)["Records"][0].clone()]}))
        .await;
    assert_eq!(first["batchItemFailures"], json!([]));
    webhook.set_failing(true);
    let reply = entitlements.handle(batch(1)).await;
    assert_eq!(reply["batchItemFailures"], json!([{"itemIdentifier": "2"}]));
    assert_eq!(webhook.received(), 2);
    // Retried from that record: both delivered, the first not again.
    webhook.set_failing(false);
    let reply = entitlements.handle(batch(1)).await;
    assert_eq!(reply["batchItemFailures"], json!([]));
    assert_eq!(webhook.calls(), 3);
}

#[tokio::test]
async fn refunds_are_revoked_after_their_payment_and_the_last_says_fully_refunded() {
    let webhook = Webhook::start().await;
    let settings = with_webhook(&webhook);
    let stack = hmac_stack(settings.clone(), |sim| {
        sim.refund_delay = Duration::from_millis(100);
    })
    .await;
    let trade = id("ORD");
    let txn = stack.paid_order(&trade, 1000).await;
    for (no, amt) in [("P1", 400), ("P2", 600)] {
        let no = format!("{no}{trade}");
        let (status, refund) = stack
            .app
            .post_json(
                "/refunds",
                json!({"tradeNo": trade, "refundTradeNo": no, "refundAmt": amt}),
            )
            .await;
        assert_eq!(status, 201, "{refund}");
        stack.wait_refund(&no, "SUCCESS").await;
    }
    // The refund notifications reached refund-notify, whose fast path
    // delivered each revoke.
    for _ in 0..100 {
        if webhook.calls() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = events(&webhook);
    let kinds: Vec<&str> = sent.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["payment.succeeded", "refund.succeeded", "refund.succeeded"]
    );
    assert_eq!(sent[0]["data"]["transactionId"], txn.as_str());
    assert_eq!(
        (
            sent[1]["data"]["refundAmt"].clone(),
            sent[1]["data"]["refundedTotal"].clone(),
            sent[1]["data"]["fullyRefunded"].clone()
        ),
        (json!(400), json!(400), json!(false))
    );
    assert_eq!(
        (
            sent[2]["data"]["refundAmt"].clone(),
            sent[2]["data"]["refundedTotal"].clone(),
            sent[2]["data"]["fullyRefunded"].clone()
        ),
        (json!(600), json!(1000), json!(true))
    );
    let (_, order) = stack.app.get(&format!("/orders/{trade}")).await;
    let revokes: Vec<&str> = order["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revoke"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(revokes, ["DELIVERED", "DELIVERED"], "{order}");
    // A sweep finds nothing left to deliver; redeliver makes all three due.
    let sweep = reconciler(&stack, &settings);
    assert_eq!(
        sweep
            .run_with(later(3600))
            .await
            .unwrap()
            .entitlements_delivered,
        0
    );
    let (status, redelivered) = stack
        .app
        .post_json(&format!("/orders/{trade}/redeliver"), json!({}))
        .await;
    assert_eq!(
        (status, redelivered["events"].clone()),
        (202, json!(3)),
        "{redelivered}"
    );
    let summary = sweep.run_with(later(1)).await.unwrap();
    assert_eq!(summary.entitlements_failed, 0, "{summary:?}");
    assert_eq!(webhook.calls(), 6);
    // An order not paid has no events; an unknown one is not found.
    let unpaid = id("ORD");
    stack.app.create_order(&unpaid, 100).await;
    let (status, _) = stack
        .app
        .post_json(&format!("/orders/{unpaid}/redeliver"), json!({}))
        .await;
    assert_eq!(status, 409);
    let (status, _) = stack
        .app
        .post_json(&format!("/orders/{}/redeliver", id("NONE")), json!({}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_revoke_waits_for_its_payment_grant() {
    // The refund's revoke is due, its payment's grant failed so far: the
    // revoke delivers the grant first.
    let webhook = Webhook::start().await;
    webhook.set_failing(true);
    let settings = with_webhook(&webhook);
    let stack = hmac_stack(settings.clone(), |sim| {
        sim.refund_delay = Duration::from_millis(100);
    })
    .await;
    let trade = id("ORD");
    stack.paid_order(&trade, 500).await;
    let no = format!("W{trade}");
    stack
        .app
        .post_json(
            "/refunds",
            json!({"tradeNo": trade, "refundTradeNo": no, "refundAmt": 500}),
        )
        .await;
    stack.wait_refund(&no, "SUCCESS").await;
    assert_eq!(webhook.calls(), 0);
    webhook.set_failing(false);
    // Only the revoke is handed over: the grant goes first.
    let entitlements = EntitlementsApp::new(
        settings.config(stack.app.store.table()),
        stack.app.store.clone(),
        http_client(),
    )
    .unwrap();
    entitlements
        .handle(json!({"Records": [{"dynamodb": {"Keys": {"pk": {"S": format!("REFUND#{no}")}}, "SequenceNumber": "9"}}]}))
        .await;
    let kinds: Vec<String> = events(&webhook)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["payment.succeeded", "refund.succeeded"]);
}

#[tokio::test]
async fn deliveries_signed_with_another_secret_are_refused_by_the_webhook() {
    let webhook = Webhook::start().await;
    let app =
        spawn_app(with_webhook(&webhook).with("FULFILLMENT_SECRET", "not-the-partners")).await;
    let (txn, trade) = (id("T"), id("ORD"));
    app.create_order(&trade, 100).await;
    assert_eq!(
        app.ship(ship_body(&txn, &trade, 100, &id("N")))
            .await
            .ret_code(),
        "SUCCESS"
    );
    assert_eq!(webhook.calls(), 0);
    assert!(webhook.bad_signatures() >= 1);
    let (_, order) = app.get(&format!("/orders/{trade}")).await;
    assert_eq!(order["grant"]["status"], "PENDING");
}

#[tokio::test]
async fn events_the_stream_never_delivered_are_delivered_by_the_sweep_after_the_retry_time_in_order_once(
) {
    // No stream at all (the functions run without FULFILLMENT_URL, so the
    // test server has no fast path); the sweep has the webhook.
    let webhook = Webhook::start().await;
    let stack = hmac_stack(Settings::hmac(), |sim| {
        sim.refund_delay = Duration::from_millis(100);
    })
    .await;
    let trade = id("ORD");
    let txn = stack.paid_order(&trade, 900).await;
    let no = format!("S{trade}");
    let (status, _) = stack
        .app
        .post_json(
            "/refunds",
            json!({"tradeNo": trade, "refundTradeNo": no, "refundAmt": 900}),
        )
        .await;
    assert_eq!(status, 201);
    stack.wait_refund(&no, "SUCCESS").await;
    let settings = with_webhook(&webhook).with("FULFILLMENT_RETRY_SECS", "120");
    let sweep = reconciler(&stack, &settings);

    // Before FULFILLMENT_RETRY_SECS: the stream's turn, nothing delivered.
    let early = sweep.run_with(later(60)).await.unwrap();
    assert_eq!(early.entitlements_delivered, 0, "{early:?}");
    assert_eq!(webhook.calls(), 0);
    // After it: the payment, then its refund, each once.
    let due = sweep.run_with(later(121)).await.unwrap();
    assert_eq!(
        (due.entitlements_delivered, due.entitlements_failed),
        (2, 0),
        "{due:?}"
    );
    let again = sweep.run_with(later(7200)).await.unwrap();
    assert_eq!(again.entitlements_delivered, 0, "{again:?}");
    let sent = events(&webhook);
    let ids: Vec<&str> = sent.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            format!("payment.succeeded:{txn}"),
            format!("refund.succeeded:{no}")
        ]
    );
    assert_eq!(sent[1]["data"]["fullyRefunded"], true);
    assert_eq!(webhook.bad_signatures(), 0);
    let (_, order) = stack.app.get(&format!("/orders/{trade}")).await;
    assert_eq!(order["grant"]["status"], "DELIVERED", "{order}");
    assert_eq!(
        order["refunds"][0]["revoke"]["status"], "DELIVERED",
        "{order}"
    );
}
