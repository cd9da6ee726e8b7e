//! Refunds through the simulated platform over real HTTP.

use std::time::Duration;

use dingdang_tests::{all_items, hmac_stack, id, Settings, Stack};
use serde_json::json;

async fn stack() -> Stack {
    hmac_stack(Settings::hmac(), |_| {}).await
}

async fn refund(stack: &Stack, body: serde_json::Value) -> (u16, serde_json::Value) {
    stack.app.post_json("/refunds", body).await
}

async fn refunded_amt(stack: &Stack, trade: &str) -> i64 {
    let (_, order) = stack.app.get(&format!("/orders/{trade}")).await;
    order["refundedAmt"].as_i64().unwrap()
}

#[tokio::test]
async fn a_full_refund_and_two_partial_refunds() {
    let stack = stack().await;
    let (full, partial) = (id("ORD"), id("ORD"));
    stack.paid_order(&full, 1000).await;
    let txn = stack.paid_order(&partial, 1000).await;

    let (status, r1) = refund(&stack, json!({"tradeNo": full, "refundTradeNo": "R1", "refundAmt": 1000, "refundDesc": "用户取消"})).await;
    assert_eq!(status, 201, "{r1}");
    assert_eq!(r1["status"], "PROCESSING");
    assert!(r1["refundTransactionId"].is_string());
    assert_eq!(r1["totalAmt"], 1000);

    // Partial refunds, one naming the payment instead of the order.
    let (status, r2) = refund(
        &stack,
        json!({"tradeNo": partial, "refundTradeNo": "R2", "refundAmt": 400}),
    )
    .await;
    assert_eq!((status, r2["status"].as_str()), (201, Some("PROCESSING")));
    let (status, r3) = refund(
        &stack,
        json!({"transactionId": txn, "refundTradeNo": "R3", "refundAmt": 600}),
    )
    .await;
    assert_eq!(
        (status, r3["status"].as_str()),
        (201, Some("PROCESSING")),
        "{r3}"
    );
    assert_eq!(r3["tradeNo"], partial.as_str());

    // Nothing is left to refund.
    let (status, err) = refund(
        &stack,
        json!({"tradeNo": partial, "refundTradeNo": "R4", "refundAmt": 1}),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"], "unprocessable");
    let (status, _) = refund(
        &stack,
        json!({"tradeNo": full, "refundTradeNo": "R5", "refundAmt": 1}),
    )
    .await;
    assert_eq!(status, 422);

    // The platform's refund result notifications complete them.
    for rtn in ["R1", "R2", "R3"] {
        stack.wait_refund(rtn, "SUCCESS").await;
    }
    assert_eq!(refunded_amt(&stack, &full).await, 1000);
    assert_eq!(refunded_amt(&stack, &partial).await, 1000);
    assert_eq!(stack.sim.refund_calls(), 3);
}

#[tokio::test]
async fn twenty_concurrent_refunds_never_exceed_the_order() {
    let stack = stack().await;
    let trade = id("ORD");
    stack.paid_order(&trade, 1000).await;
    let requests = (0..20).map(|i| {
        let amt = 100 + (i % 3) * 50; // 100, 150, 200...: 20 of them sum far above 1000
        let body = json!({"tradeNo": trade, "refundTradeNo": format!("C{i}"), "refundAmt": amt});
        let stack = &stack;
        async move { (amt, refund(stack, body).await) }
    });
    let answers = futures::future::join_all(requests).await;
    let mut accepted = 0;
    for (amt, (status, body)) in &answers {
        match status {
            201 => accepted += amt,
            422 => assert_eq!(body["error"], "unprocessable"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(accepted <= 1000, "accepted {accepted}");
    assert!(
        accepted >= 800,
        "the ceiling, not contention, refused the rest: {accepted}"
    );
    assert_eq!(refunded_amt(&stack, &trade).await, accepted);
    let at_platform: i64 = (0..20)
        .filter_map(|i| stack.sim.refund_state(&format!("C{i}")))
        .map(|r| r.refund_amt)
        .sum();
    assert_eq!(at_platform, accepted);
}

#[tokio::test]
async fn a_platform_timeout_is_resolved_by_refundquery_without_a_second_refund_call() {
    // No refund result notification: only refundquery can resolve it.
    let stack = hmac_stack(
        Settings::hmac().with("DINGDANG_API_TIMEOUT_MS", "300"),
        |c| c.refund_notify_url = None,
    )
    .await;
    let trade = id("ORD");
    stack.paid_order(&trade, 500).await;
    stack.sim.hang_next_refunds(1, Duration::from_millis(1500));

    let (status, pending) = refund(
        &stack,
        json!({"tradeNo": trade, "refundTradeNo": "T1", "refundAmt": 500}),
    )
    .await;
    assert_eq!(status, 202, "{pending}");
    assert_eq!(pending["status"], "PENDING");
    // The amount stays reserved while the outcome is unknown.
    assert_eq!(refunded_amt(&stack, &trade).await, 500);
    let (status, _) = refund(
        &stack,
        json!({"tradeNo": trade, "refundTradeNo": "T2", "refundAmt": 1}),
    )
    .await;
    assert_eq!(status, 422);

    // Retrying the same refundTradeNo returns the PENDING refund, no new call.
    let (status, again) = refund(
        &stack,
        json!({"tradeNo": trade, "refundTradeNo": "T1", "refundAmt": 500}),
    )
    .await;
    assert_eq!((status, again["status"].as_str()), (200, Some("PENDING")));

    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (status, synced) = stack.app.get("/refunds/T1?sync=true").await;
    assert_eq!(status, 200, "{synced}");
    assert!(
        matches!(synced["status"].as_str(), Some("PROCESSING" | "SUCCESS")),
        "{synced}"
    );
    assert!(synced["refundTransactionId"].is_string());
    let (_, synced) = stack.app.get("/refunds/T1?sync=true").await;
    assert_eq!(synced["status"], "SUCCESS");
    assert_eq!(stack.sim.refund_calls(), 1);
}

#[tokio::test]
async fn a_retried_post_makes_one_platform_call_and_other_parameters_conflict() {
    let stack = stack().await;
    let trade = id("ORD");
    stack.paid_order(&trade, 800).await;
    let body = json!({"tradeNo": trade, "refundTradeNo": "S1", "refundAmt": 300});
    let (status, first) = refund(&stack, body.clone()).await;
    assert_eq!(status, 201);
    let (status, second) = refund(&stack, body).await;
    assert_eq!(status, 200);
    assert_eq!(second["refundTransactionId"], first["refundTransactionId"]);
    assert_eq!(stack.sim.refund_calls(), 1);

    let (status, err) = refund(
        &stack,
        json!({"tradeNo": trade, "refundTradeNo": "S1", "refundAmt": 301}),
    )
    .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"], "conflict");
    assert_eq!(stack.sim.refund_calls(), 1);
    assert_eq!(refunded_amt(&stack, &trade).await, 300);
}

#[tokio::test]
async fn a_refused_refund_is_failed_and_releases_its_amount() {
    let stack = stack().await;
    let trade = id("ORD");
    stack.paid_order(&trade, 800).await;
    stack.sim.fail_next_refunds(1);
    let (status, failed) = refund(
        &stack,
        json!({"tradeNo": trade, "refundTradeNo": "F1", "refundAmt": 800}),
    )
    .await;
    assert_eq!(status, 201, "{failed}");
    assert_eq!(failed["status"], "FAILED");
    assert!(failed["failReason"].is_string());
    assert_eq!(refunded_amt(&stack, &trade).await, 0);
    // The released amount can be refunded under a new refundTradeNo.
    let (status, ok) = refund(
        &stack,
        json!({"tradeNo": trade, "refundTradeNo": "F2", "refundAmt": 800}),
    )
    .await;
    assert_eq!((status, ok["status"].as_str()), (201, Some("PROCESSING")));
}

#[tokio::test]
async fn refunds_of_unknown_or_unpaid_orders_and_bad_requests() {
    let stack = stack().await;
    let unpaid = id("ORD");
    stack.app.create_order(&unpaid, 100).await;
    let before = all_items(&stack.app.store).await;
    let cases = [
        (
            json!({"tradeNo": "NOSUCH", "refundTradeNo": "X1", "refundAmt": 1}),
            404,
        ),
        (
            json!({"transactionId": "NOSUCH", "refundTradeNo": "X1", "refundAmt": 1}),
            404,
        ),
        (
            json!({"tradeNo": unpaid, "refundTradeNo": "X1", "refundAmt": 1}),
            422,
        ),
        (
            json!({"tradeNo": unpaid, "transactionId": "T1", "refundTradeNo": "X1", "refundAmt": 1}),
            400,
        ),
        (json!({"refundTradeNo": "X1", "refundAmt": 1}), 400),
        (
            json!({"tradeNo": unpaid, "refundTradeNo": "X-1", "refundAmt": 1}),
            400,
        ),
        (
            json!({"tradeNo": unpaid, "refundTradeNo": "X1", "refundAmt": 0}),
            400,
        ),
        (
            json!({"tradeNo": unpaid, "refundTradeNo": "X1", "refundAmt": -1}),
            400,
        ),
        (json!({"tradeNo": unpaid, "refundTradeNo": "X1"}), 400),
        (
            json!({"tradeNo": unpaid, "refundTradeNo": "X1", "refundAmt": 1, "refundDetails": []}),
            400,
        ),
    ];
    for (body, expected) in cases {
        let (status, err) = refund(&stack, body.clone()).await;
        assert_eq!(status, expected, "{body}: {err}");
        assert!(
            err["error"].is_string() && err["message"].is_string(),
            "{err}"
        );
    }
    assert_eq!(all_items(&stack.app.store).await, before);
    assert_eq!(stack.sim.refund_calls(), 0);
    let (status, _) = stack.app.get("/refunds/NOSUCH").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn unsigned_or_badly_signed_platform_replies_are_refused_when_required() {
    let stack = hmac_stack(
        Settings::hmac().with("DINGDANG_REQUIRE_SIGNED_REPLIES", "true"),
        |_| {},
    )
    .await;
    let trade = id("ORD");
    stack.paid_order(&trade, 900).await;

    stack.sim.set_sign_replies(false);
    let (status, pending) = refund(
        &stack,
        json!({"tradeNo": trade, "refundTradeNo": "U1", "refundAmt": 100}),
    )
    .await;
    assert_eq!(
        (status, pending["status"].as_str()),
        (202, Some("PENDING")),
        "{pending}"
    );
    let (status, err) = stack.app.get("/refunds/U1?sync=true").await;
    assert_eq!(status, 502, "{err}");
    assert_eq!(err["error"], "upstream");

    stack.sim.set_sign_replies(true);
    stack.sim.set_bad_reply_signatures(true);
    let (status, _) = stack.app.get("/refunds/U1?sync=true").await;
    assert_eq!(status, 502);

    stack.sim.set_bad_reply_signatures(false);
    let (status, synced) = stack.app.get("/refunds/U1?sync=true").await;
    assert_eq!(status, 200);
    assert!(
        matches!(synced["status"].as_str(), Some("PROCESSING" | "SUCCESS")),
        "{synced}"
    );
    assert_eq!(
        stack.sim.refund_calls(),
        1,
        "refundquery resolved it; no second refund call"
    );
}

#[tokio::test]
async fn unsigned_replies_are_accepted_when_not_required() {
    let stack = stack().await;
    let trade = id("ORD");
    stack.paid_order(&trade, 900).await;
    stack.sim.set_sign_replies(false);
    let (status, accepted) = refund(
        &stack,
        json!({"tradeNo": trade, "refundTradeNo": "V1", "refundAmt": 100}),
    )
    .await;
    assert_eq!(
        (status, accepted["status"].as_str()),
        (201, Some("PROCESSING")),
        "{accepted}"
    );
}

#[tokio::test]
async fn order_sync_fulfils_a_payment_that_was_never_notified() {
    let webhook = dingdang_tests::Webhook::start().await;
    let stack = hmac_stack(
        Settings::hmac().with("FULFILLMENT_URL", webhook.url()),
        |_| {},
    )
    .await;
    let trade = id("ORD");
    stack.app.create_order(&trade, 660).await;
    let (_, order) = stack.app.get(&format!("/orders/{trade}?sync=true")).await;
    assert_eq!(order["status"], "CREATED", "not paid at the platform yet");

    let txn = stack.sim.pay_silently(&trade, 660).await;
    let (status, order) = stack.app.get(&format!("/orders/{trade}?sync=true")).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "PAID");
    assert_eq!(order["transactionId"], txn.as_str());
    assert_eq!(webhook.calls(), 1);

    // The late notification, and another sync, grant nothing more.
    let (status, reply) = stack.sim.send_ship_notify(&txn).await.unwrap();
    assert_eq!((status, reply["retCode"].as_str()), (200, Some("SUCCESS")));
    stack.app.get(&format!("/orders/{trade}?sync=true")).await;
    assert_eq!(webhook.calls(), 1);
    assert_eq!(
        webhook.requests()[0].0.as_deref(),
        Some(format!("payment.succeeded:{txn}").as_str())
    );
}
