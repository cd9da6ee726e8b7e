//! `orderquery` replies are validated whole: a `retCode SUCCESS` reply that
//! lacks a required field, has one that does not parse, or is about another
//! order is a bad platform reply (no state change, 502 on
//! `GET /orders/{tradeNo}?sync=true`, an error of the reconcile sweep, which
//! asks again next time), never "unpaid". `retCode FAIL` stays "not paid".
//! The platform here is a stub answering whatever reply a test sets, signed
//! like the platform's.

use dingdang::jobs::ReconcileApp;
use dingdang_tests::{
    all_items, id, item, platform_keys, spawn_app, App, Settings, StoredItem, StubPlatform, SKILL,
};
use serde_json::{json, Value};

struct Fixture {
    app: App,
    stub: StubPlatform,
    sweep: ReconcileApp,
}

async fn fixture() -> Fixture {
    let settings = Settings::hmac();
    let stub = StubPlatform::start(platform_keys(&settings)).await;
    let settings = settings.with("DINGDANG_API_BASE", stub.api_base());
    let app = spawn_app(settings.clone()).await;
    let sweep = ReconcileApp::new(
        settings.config(app.store.table()),
        app.store.clone(),
        |name| match name {
            "RECONCILE_GRACE_SECS" => Some("0".to_owned()),
            _ => None,
        },
    )
    .expect("reconcile settings");
    Fixture { app, stub, sweep }
}

/// A complete, valid `SUCCESS` reply reporting `trade` paid.
fn paid(trade: &str, txn: &str, total_amt: i64) -> Value {
    json!({
        "retCode": "SUCCESS", "domainId": SKILL, "transactionId": txn, "tradeNo": trade,
        "totalAmt": total_amt, "tradeStatus": "SUCCESS", "tradeStatusDesc": "支付成功",
    })
}

fn without(mut reply: Value, field: &str) -> Value {
    reply.as_object_mut().unwrap().remove(field);
    reply
}

fn with(mut reply: Value, field: &str, value: Value) -> Value {
    reply[field] = value;
    reply
}

/// A sweep `n` hours from now, when every order checked before is due
/// again whatever its backoff.
async fn sweep_later(sweep: &ReconcileApp, n: i64) -> dingdang::domain::reconcile::Summary {
    let clock = dingdang::domain::due::SweepClock::until(
        std::time::SystemTime::now() + std::time::Duration::from_secs(60),
        std::time::Duration::ZERO,
    )
    .shifted(n * 3600);
    sweep.run_with(clock).await.unwrap()
}

/// `items` without what a sweep changes on every check (the next-check
/// time and count).
fn unscheduled(items: Vec<StoredItem>) -> Vec<StoredItem> {
    items
        .into_iter()
        .map(|mut i| {
            for name in ["checks", "nextCheckAt", "gsi1sk"] {
                i.remove(name);
            }
            i
        })
        .collect()
}

async fn order_item(app: &App, trade: &str) -> StoredItem {
    item(&app.store, &format!("ORDER#{trade}")).await.unwrap()
}

#[tokio::test]
async fn an_incomplete_or_unparseable_success_reply_is_a_bad_reply_not_unpaid() {
    let f = fixture().await;
    let (trade, txn) = (id("ORD"), id("T"));
    f.app.create_order(&trade, 990).await;
    let good = paid(&trade, &txn, 990);
    let bad_replies: Vec<(&str, Vec<u8>)> = vec![
        ("no transactionId", without(good.clone(), "transactionId")),
        ("no tradeNo", without(good.clone(), "tradeNo")),
        ("no totalAmt", without(good.clone(), "totalAmt")),
        ("no tradeStatus", without(good.clone(), "tradeStatus")),
        (
            "no tradeStatusDesc",
            without(good.clone(), "tradeStatusDesc"),
        ),
        ("no skill id", without(good.clone(), "domainId")),
        (
            "another tradeNo",
            with(good.clone(), "tradeNo", json!(id("OTHER"))),
        ),
        (
            "another skill",
            with(good.clone(), "domainId", json!("another-skill")),
        ),
        (
            "totalAmt a string",
            with(good.clone(), "totalAmt", json!("990")),
        ),
        (
            "totalAmt a float",
            with(good.clone(), "totalAmt", json!(9.9)),
        ),
        ("totalAmt zero", with(good.clone(), "totalAmt", json!(0))),
        (
            "tradeStatus unknown",
            with(good.clone(), "tradeStatus", json!("PAID")),
        ),
        (
            "transactionId null",
            with(good.clone(), "transactionId", Value::Null),
        ),
        (
            "tradeNo too long",
            with(good.clone(), "tradeNo", json!("A".repeat(33))),
        ),
        // Another order's tradeNo, but not paid: still not about our order.
        (
            "another tradeNo, NOTPAY",
            with(
                with(good.clone(), "tradeNo", json!(id("OTHER"))),
                "tradeStatus",
                json!("NOTPAY"),
            ),
        ),
    ]
    .into_iter()
    .map(|(label, reply)| (label, serde_json::to_vec(&reply).unwrap()))
    .chain([("not JSON", b"{\"retCode\":\"SUCCESS\",".to_vec())])
    .collect();

    for (n, (label, reply)) in (1..).zip(bad_replies) {
        f.stub.set_reply(reply);
        let before = all_items(&f.app.store).await;
        let calls = f.stub.calls();

        let (status, error) = f.app.get(&format!("/orders/{trade}?sync=true")).await;
        assert_eq!(
            (status, error["error"].as_str()),
            (502, Some("upstream")),
            "{label}: {error}"
        );
        let summary = sweep_later(&f.sweep, n).await;
        assert_eq!(
            (
                summary.orders_checked,
                summary.errors,
                summary.orders_unpaid,
                summary.orders_fulfilled
            ),
            (1, 1, 0, 0),
            "{label}: {summary:?}"
        );
        assert_eq!(f.stub.calls(), calls + 2, "{label}: asked each time");
        assert_eq!(
            unscheduled(all_items(&f.app.store).await),
            unscheduled(before),
            "{label}: nothing changed but the next check"
        );
    }
    let (_, order) = f.app.get(&format!("/orders/{trade}")).await;
    assert_eq!(order["status"], "CREATED");

    // The order is still due: the next sweep asks again, and a complete
    // reply pays it.
    f.stub.set_reply(serde_json::to_vec(&good).unwrap());
    let summary = sweep_later(&f.sweep, 100).await;
    assert_eq!(
        (summary.orders_fulfilled, summary.errors),
        (1, 0),
        "{summary:?}"
    );
    let (_, order) = f.app.get(&format!("/orders/{trade}")).await;
    assert_eq!(
        (order["status"].as_str(), order["transactionId"].as_str()),
        (Some("PAID"), Some(txn.as_str()))
    );
}

#[tokio::test]
async fn a_fail_reply_or_an_unpaid_status_is_not_paid_not_an_error() {
    let f = fixture().await;
    let (trade, txn) = (id("ORD"), id("T"));
    f.app.create_order(&trade, 500).await;
    let before = order_item(&f.app, &trade).await;
    let not_paid = [
        json!({"retCode": "FAIL", "retMsg": "order not found"}),
        // FAIL with leftovers that would not parse in a SUCCESS reply.
        json!({"retCode": "FAIL", "retMsg": "busy", "totalAmt": "x", "tradeNo": ""}),
        with(paid(&trade, &txn, 500), "tradeStatus", json!("NOTPAY")),
        with(paid(&trade, &txn, 500), "tradeStatus", json!("PROCESSING")),
        with(paid(&trade, &txn, 500), "tradeStatus", json!("FAIL")),
    ];
    for (n, reply) in (1..).zip(not_paid) {
        f.stub.set_reply(serde_json::to_vec(&reply).unwrap());
        let (status, order) = f.app.get(&format!("/orders/{trade}?sync=true")).await;
        assert_eq!(
            (status, order["status"].as_str()),
            (200, Some("CREATED")),
            "{reply}: {order}"
        );
        let summary = sweep_later(&f.sweep, n).await;
        assert_eq!(
            (summary.orders_unpaid, summary.errors),
            (1, 0),
            "{reply}: {summary:?}"
        );
        assert_eq!(
            unscheduled(vec![order_item(&f.app, &trade).await]),
            unscheduled(vec![before.clone()])
        );
    }
    assert!(f.stub.queries().iter().all(|q| q == &trade));
}
