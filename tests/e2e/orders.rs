use dingdang_tests::{id, spawn_app, Settings};
use serde_json::json;

#[tokio::test]
async fn an_order_is_registered_once_and_read_back() {
    let app = spawn_app(Settings::hmac()).await;
    let trade_no = id("ORD");
    let (status, order) = app
        .post_json(
            "/orders",
            json!({"tradeNo": trade_no, "totalAmt": 990, "userToken": "user-1"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(order["tradeNo"], trade_no.as_str());
    assert_eq!(order["totalAmt"], 990);
    assert_eq!(order["status"], "CREATED");

    // The same request again returns the stored order.
    let (status, again) = app
        .post_json(
            "/orders",
            json!({"tradeNo": trade_no, "totalAmt": 990, "userToken": "user-1"}),
        )
        .await;
    assert_eq!(status, 200);
    // Read back with its refunds (none yet).
    let mut order = order;
    order["refunds"] = json!([]);
    assert_eq!(again, order);

    // Other values under the same tradeNo: 409, nothing changed.
    let (status, err) = app
        .post_json("/orders", json!({"tradeNo": trade_no, "totalAmt": 991}))
        .await;
    assert_eq!(status, 409);
    assert_eq!(err["error"], "conflict");
    let (status, read) = app.get(&format!("/orders/{trade_no}")).await;
    assert_eq!(status, 200);
    assert_eq!(read, order);
}

#[tokio::test]
async fn a_trade_no_is_generated_when_absent() {
    let app = spawn_app(Settings::hmac()).await;
    let (status, order) = app.post_json("/orders", json!({"totalAmt": 100})).await;
    assert_eq!(status, 201);
    let trade_no = order["tradeNo"].as_str().unwrap();
    assert!(
        trade_no.len() <= 32 && trade_no.chars().all(|c| c.is_ascii_alphanumeric()),
        "{trade_no}"
    );
    let (_, second) = app.post_json("/orders", json!({"totalAmt": 100})).await;
    assert_ne!(second["tradeNo"], order["tradeNo"]);
}

#[tokio::test]
async fn unknown_orders_and_bad_requests_get_json_errors() {
    let app = spawn_app(Settings::hmac()).await;
    let (status, err) = app.get("/orders/NOSUCHORDER").await;
    assert_eq!(status, 404);
    assert_eq!(err["error"], "not_found");
    assert!(err["message"].is_string());

    for body in [
        json!({"totalAmt": 0}),
        json!({"totalAmt": -5}),
        json!({"totalAmt": "990"}),
        json!({"totalAmt": 1.5}),
        json!({"tradeNo": "has-dash", "totalAmt": 5}),
        json!({"tradeNo": "A".repeat(33), "totalAmt": 5}),
        json!({}),
    ] {
        let (status, err) = app.post_json("/orders", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(err["error"], "bad_request", "{body}");
    }
    assert!(
        dingdang_tests::all_items(&app.store).await.is_empty(),
        "bad requests wrote nothing"
    );

    let (status, _) = app.get("/orders/has-dash").await;
    assert_eq!(status, 400);
    let (status, err) = app.get("/nowhere").await;
    assert_eq!(status, 404);
    assert_eq!(err["error"], "not_found");
}
