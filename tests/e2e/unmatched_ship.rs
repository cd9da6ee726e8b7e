//! A signed ship notification that contradicts our records (unknown
//! tradeNo, another amount, an order paid by another transactionId, a
//! transactionId of another order) is refused, alerted, and kept with its
//! body for an operator as an `UNMATCHED#SHIP#...` item: read back here from
//! the table. Nothing else is written.

use dingdang_tests::{
    all_items, id, number, ship_body, sign, spawn_app, text, unmatched_ship_notices, App, Settings,
    StoredItem,
};
use time::OffsetDateTime;

/// Sends `body` signed, expects FAIL `msg`, and returns the one item the
/// delivery wrote: the kept notice.
async fn kept(app: &App, body: &[u8], msg: &str) -> StoredItem {
    let before = all_items(&app.store).await;
    let sent_at = OffsetDateTime::now_utc().unix_timestamp();
    let answer = app.ship(body.to_vec()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json(),
        serde_json::json!({"retCode": "FAIL", "retMsg": msg})
    );
    let after = all_items(&app.store).await;
    let new: Vec<&StoredItem> = after.iter().filter(|i| !before.contains(i)).collect();
    let gone: Vec<&StoredItem> = before.iter().filter(|i| !after.contains(i)).collect();
    assert!(gone.is_empty(), "{msg}: changed {gone:?}");
    assert_eq!(
        new.len(),
        1,
        "{msg}: only the kept notice is written: {new:?}"
    );
    let notice = new[0].clone();
    assert!(
        text(&notice, "pk").is_some_and(|pk| pk.starts_with("UNMATCHED#SHIP#")),
        "{notice:?}"
    );
    assert_eq!(text(&notice, "kind").as_deref(), Some("UNMATCHED"));
    assert_eq!(text(&notice, "notice").as_deref(), Some("ship"));
    assert_eq!(
        text(&notice, "payload").as_deref(),
        Some(std::str::from_utf8(body).unwrap()),
        "the body exactly as received"
    );
    let received = number(&notice, "receivedAt").expect("receivedAt");
    assert!(
        (sent_at - 1..=sent_at + 5).contains(&received),
        "{received}"
    );
    assert!(!notice.contains_key("ttl"), "kept until an operator acts");
    notice
}

fn ids(notice: &StoredItem) -> (String, String, Option<String>, i64) {
    (
        text(notice, "transactionId").unwrap(),
        text(notice, "tradeNo").unwrap(),
        text(notice, "reason"),
        number(notice, "totalAmt").unwrap(),
    )
}

#[tokio::test]
async fn each_contradicting_notification_is_kept_with_its_body_and_reason() {
    let app = spawn_app(Settings::hmac()).await;
    let (paid, paid_txn, unpaid) = (id("ORD"), id("T"), id("ORD"));
    app.create_order(&paid, 990).await;
    app.create_order(&unpaid, 500).await;
    assert_eq!(
        app.ship(ship_body(&paid_txn, &paid, 990, &id("N")))
            .await
            .ret_code(),
        "SUCCESS"
    );

    // An order we never created.
    let (txn, nosuch) = (id("T"), id("NOSUCH"));
    let notice = kept(
        &app,
        &ship_body(&txn, &nosuch, 990, &id("N")),
        "unknown tradeNo",
    )
    .await;
    assert_eq!(
        ids(&notice),
        (txn, nosuch, Some("unknown_order".into()), 990)
    );

    // Another amount than the order's.
    let txn = id("T");
    let notice = kept(
        &app,
        &ship_body(&txn, &unpaid, 501, &id("N")),
        "totalAmt mismatch",
    )
    .await;
    assert_eq!(
        ids(&notice),
        (txn, unpaid.clone(), Some("amount_mismatch".into()), 501)
    );

    // An order already paid by another transaction.
    let txn = id("T");
    let notice = kept(
        &app,
        &ship_body(&txn, &paid, 990, &id("N")),
        "paid by another transaction",
    )
    .await;
    assert_eq!(
        ids(&notice),
        (txn, paid.clone(), Some("paid_by_other".into()), 990)
    );

    // A transactionId that paid another order.
    let notice = kept(
        &app,
        &ship_body(&paid_txn, &unpaid, 500, &id("N")),
        "conflicting transaction payload",
    )
    .await;
    assert_eq!(
        ids(&notice),
        (paid_txn, unpaid.clone(), Some("conflict".into()), 500)
    );

    // The orders are as they were.
    let (_, order) = app.get(&format!("/orders/{unpaid}")).await;
    assert_eq!(order["status"], "CREATED");
    assert_eq!(unmatched_ship_notices(&app.store).await.len(), 4);
}

#[tokio::test]
async fn the_platform_redelivering_it_updates_the_one_kept_notice() {
    let app = spawn_app(Settings::hmac()).await;
    let (txn, nosuch) = (id("T"), id("NOSUCH"));
    let first = ship_body(&txn, &nosuch, 100, &id("N"));
    let notice = kept(&app, &first, "unknown tradeNo").await;
    assert_eq!(number(&notice, "deliveries"), Some(1));
    let first_at = number(&notice, "firstReceivedAt");

    // The platform retries after the FAIL, with a new nonce.
    let retry = ship_body(&txn, &nosuch, 100, &id("N"));
    let answer = app.ship(retry.clone()).await;
    assert_eq!(answer.json()["retMsg"], "unknown tradeNo");
    let kept = unmatched_ship_notices(&app.store).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(text(&kept[0], "pk"), text(&notice, "pk"));
    assert_eq!(number(&kept[0], "deliveries"), Some(2));
    assert_eq!(number(&kept[0], "firstReceivedAt"), first_at);
    assert_eq!(
        text(&kept[0], "payload").as_deref(),
        Some(std::str::from_utf8(&retry).unwrap())
    );
}

#[tokio::test]
async fn refusals_that_contradict_nothing_keep_nothing() {
    let app = spawn_app(Settings::hmac()).await;
    let trade = id("ORD");
    app.create_order(&trade, 990).await;
    let before = all_items(&app.store).await;
    // Not signed by the platform: nothing to believe, nothing to keep.
    let forged = ship_body(&id("T"), &id("NOSUCH"), 990, &id("N"));
    assert_eq!(app.post_ship(forged, None).await.status, 401);
    // Another skill's.
    let other_skill = serde_json::to_vec(&serde_json::json!({
        "skillId": "another-skill", "transactionId": id("T"), "tradeNo": trade,
        "totalAmt": 990, "nonceStr": id("N"),
    }))
    .unwrap();
    let authorization = sign(&app.keys, &other_skill);
    assert_eq!(
        app.post_ship(other_skill, Some(authorization)).await.status,
        403
    );
    assert_eq!(all_items(&app.store).await, before);
}
