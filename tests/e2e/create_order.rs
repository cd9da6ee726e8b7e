//! create-order (later revision): the platform asks for an order number.

use dingdang_tests::{all_items, id, sign, spawn_app, Settings, SKILL};
use serde_json::json;

fn request(nonce: &str, total: i64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "skillId": SKILL,
        "userToken": "user-42",
        "details": [{"itemId": "song-1", "quantity": 1, "amount": 300}, {"itemId": "album-2", "quantity": 2, "amount": 700}],
        "totalAmt": total,
        "nonceStr": nonce,
    }))
    .unwrap()
}

#[tokio::test]
async fn an_order_is_created_and_a_retry_gets_the_same_trade_no() {
    let app = spawn_app(Settings::hmac()).await;
    let body = request(&id("N"), 1000);
    let first = app
        .post_path("/create-order", body.clone(), Some(sign(&app.keys, &body)))
        .await;
    assert_eq!(first.status, 200);
    let reply = first.json();
    assert_eq!(reply["retCode"], "SUCCESS");
    let trade_no = reply["tradeNo"].as_str().unwrap().to_owned();
    assert!(trade_no.len() <= 32 && trade_no.chars().all(|c| c.is_ascii_alphanumeric()));
    app.keys
        .verify(
            first.authorization.as_deref(),
            &first.body,
            time::OffsetDateTime::now_utc(),
        )
        .expect("signed reply");

    let retry = app
        .post_path("/create-order", body.clone(), Some(sign(&app.keys, &body)))
        .await;
    assert_eq!(retry.json()["tradeNo"], trade_no.as_str());

    let (status, order) = app.get(&format!("/orders/{trade_no}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (order["totalAmt"].as_i64(), order["status"].as_str()),
        (Some(1000), Some("CREATED"))
    );
    assert_eq!(order["userToken"], "user-42");

    // Another request (a new nonce) is another order.
    let other = request(&id("N"), 1000);
    let answer = app
        .post_path(
            "/create-order",
            other.clone(),
            Some(sign(&app.keys, &other)),
        )
        .await;
    assert_ne!(answer.json()["tradeNo"], trade_no.as_str());
}

#[tokio::test]
async fn the_total_must_equal_the_sum_of_the_items() {
    let app = spawn_app(Settings::hmac()).await;
    for total in [999, 1001, 0] {
        let body = request(&id("N"), total);
        let answer = app
            .post_path("/create-order", body.clone(), Some(sign(&app.keys, &body)))
            .await;
        assert_eq!(answer.status, 400, "{total}");
        assert_eq!(answer.json()["retCode"], "FAIL");
    }
    let unsigned = request(&id("N"), 1000);
    assert_eq!(
        app.post_path("/create-order", unsigned, None).await.status,
        401
    );
    assert!(all_items(&app.store).await.is_empty());
}
