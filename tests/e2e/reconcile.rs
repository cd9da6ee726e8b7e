//! Reconcile: lost notifications and stuck refunds are caught by the sweep.

use std::time::{Duration, SystemTime};

use dingdang::domain::due::SweepClock;

use dingdang_tests::{hmac_stack, id, reconciler, Settings, Webhook};
use serde_json::json;

#[tokio::test]
async fn a_lost_notification_is_fulfilled_by_reconcile_once() {
    let webhook = Webhook::start().await;
    let settings = Settings::hmac().with("FULFILLMENT_URL", webhook.url());
    let stack = hmac_stack(settings.clone(), |_| {}).await;
    let sweep = reconciler(&stack, &settings);
    let (lost, unpaid) = (id("ORD"), id("ORD"));
    stack.app.create_order(&lost, 1500).await;
    stack.app.create_order(&unpaid, 100).await;
    let txn = stack.sim.pay_silently(&lost, 1500).await;

    let summary = sweep.run().await.unwrap();
    assert_eq!(summary.orders_checked, 2, "{summary:?}");
    assert_eq!(summary.orders_fulfilled, 1, "{summary:?}");
    assert_eq!(summary.orders_unpaid, 1, "{summary:?}");
    assert_eq!(summary.errors, 0, "{summary:?}");
    let (_, order) = stack.app.get(&format!("/orders/{lost}")).await;
    assert_eq!(
        (order["status"].as_str(), order["transactionId"].as_str()),
        (Some("PAID"), Some(txn.as_str()))
    );
    assert_eq!(webhook.calls(), 1);

    // The paid order leaves the sweep, the unpaid one is due again after
    // the first backoff step (a minute); a late notification grants nothing.
    let summary = sweep.run().await.unwrap();
    assert_eq!(summary.orders_checked, 0, "{summary:?}");
    let later =
        SweepClock::until(SystemTime::now() + Duration::from_secs(60), Duration::ZERO).shifted(61);
    let summary = sweep.run_with(later).await.unwrap();
    assert_eq!(
        (summary.orders_checked, summary.orders_fulfilled),
        (1, 0),
        "{summary:?}"
    );
    let (status, reply) = stack.sim.send_ship_notify(&txn).await.unwrap();
    assert_eq!((status, reply["retCode"].as_str()), (200, Some("SUCCESS")));
    assert_eq!(webhook.calls(), 1);
}

#[tokio::test]
async fn reconcile_racing_a_late_notification_fulfils_once() {
    let webhook = Webhook::start().await;
    webhook.set_delay(Duration::from_millis(50));
    let settings = Settings::hmac().with("FULFILLMENT_URL", webhook.url());
    let stack = hmac_stack(settings.clone(), |_| {}).await;
    let sweep = reconciler(&stack, &settings);
    let mut txns = Vec::new();
    for _ in 0..5 {
        let trade = id("ORD");
        stack.app.create_order(&trade, 300).await;
        txns.push(stack.sim.pay_silently(&trade, 300).await);
    }
    let notifications = futures::future::join_all(txns.iter().map(|txn| async {
        // Retry as the platform would while the sweep holds the claim.
        for _ in 0..20 {
            let (_, reply) = stack.sim.send_ship_notify(txn).await.unwrap();
            if reply["retCode"] == "SUCCESS" {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }));
    let (summary, delivered) = tokio::join!(sweep.run(), notifications);
    let summary = summary.unwrap();
    assert!(
        delivered.iter().all(|d| *d),
        "every notification answered SUCCESS in the end"
    );
    assert_eq!(webhook.calls(), 5, "{summary:?}");
    let keys: std::collections::BTreeSet<_> = webhook
        .requests()
        .into_iter()
        .filter_map(|(k, _)| k)
        .collect();
    assert_eq!(keys.len(), 5);
}

#[tokio::test]
async fn a_stuck_refund_is_resolved_by_reconcile() {
    // No refund notifications, and the first refund call times out.
    let settings = Settings::hmac().with("DINGDANG_API_TIMEOUT_MS", "300");
    let stack = hmac_stack(settings.clone(), |c| c.refund_notify_url = None).await;
    let sweep = reconciler(
        &stack,
        &settings.clone().with("DINGDANG_API_TIMEOUT_MS", "2000"),
    );
    let trade = id("ORD");
    stack.paid_order(&trade, 1000).await;
    stack.sim.hang_next_refunds(1, Duration::from_millis(800));
    let (status, pending) = stack
        .app
        .post_json(
            "/refunds",
            json!({"tradeNo": trade, "refundTradeNo": "K1", "refundAmt": 400}),
        )
        .await;
    assert_eq!((status, pending["status"].as_str()), (202, Some("PENDING")));
    let (status, processing) = stack
        .app
        .post_json(
            "/refunds",
            json!({"tradeNo": trade, "refundTradeNo": "K2", "refundAmt": 600}),
        )
        .await;
    assert_eq!(
        (status, processing["status"].as_str()),
        (201, Some("PROCESSING"))
    );

    tokio::time::sleep(Duration::from_millis(900)).await;
    let summary = sweep.run().await.unwrap();
    assert_eq!(summary.refunds_checked, 2, "{summary:?}");
    assert_eq!(summary.refunds_resolved, 2, "{summary:?}");
    stack.wait_refund("K1", "SUCCESS").await;
    stack.wait_refund("K2", "SUCCESS").await;
    assert_eq!(
        stack.sim.refund_calls(),
        2,
        "refundquery resolved them; no new refund call"
    );
    let summary = sweep.run().await.unwrap();
    assert_eq!(summary.refunds_checked, 0, "final refunds leave the sweep");
}
