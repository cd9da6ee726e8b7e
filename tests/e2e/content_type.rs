//! The body decides, not the header: a correctly signed JSON notification
//! is handled exactly like one sent as `application/json` whatever its
//! `Content-Type` (missing, `text/plain`, a form type, anything); only a
//! body that is not JSON is refused as such, and nothing is written.

use dingdang_tests::{
    all_items, hmac_stack, id, ship_body, sign, spawn_app, App, Settings, Webhook,
};
use serde_json::json;
use time::OffsetDateTime;

/// What the platform may label a JSON body with. `None`: no header.
const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("text/plain"),
    Some("text/plain; charset=utf-8"),
    Some("application/x-www-form-urlencoded"),
    Some("application/x-www-form-urlencoded; charset=UTF-8"),
    Some("multipart/form-data; boundary=x"),
    Some("application/xml"),
    Some("application/octet-stream"),
    Some("application/json-patch+json"),
    Some("json"),
    Some("!!!"),
    Some(""),
    Some("application/json"),
];

/// POSTs `body` to `path` with `authorization` and `content_type` (none
/// when `None`).
async fn post(
    app: &App,
    path: &str,
    body: Vec<u8>,
    authorization: Option<String>,
    content_type: Option<&str>,
) -> dingdang_tests::Answered {
    let mut request = app.http.post(format!("{}{path}", app.base)).body(body);
    if let Some(value) = content_type {
        request = request.header("content-type", value);
    }
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    dingdang_tests::Answered::read(request.send().await.expect("the app answers")).await
}

/// Signs `body` as the platform and POSTs it with `content_type`.
async fn signed(
    app: &App,
    path: &str,
    body: Vec<u8>,
    content_type: Option<&str>,
) -> dingdang_tests::Answered {
    let authorization = sign(&app.keys, &body);
    post(app, path, body, Some(authorization), content_type).await
}

fn signed_by_us(app: &App, answer: &dingdang_tests::Answered) {
    app.keys
        .verify(
            answer.authorization.as_deref(),
            &answer.body,
            OffsetDateTime::now_utc(),
        )
        .expect("the reply is signed");
}

#[tokio::test]
async fn a_json_ship_notification_is_fulfilled_whatever_its_content_type() {
    let webhook = Webhook::start().await;
    let app = spawn_app(Settings::hmac().with("FULFILLMENT_URL", webhook.url())).await;
    for (i, content_type) in CONTENT_TYPES.iter().enumerate() {
        let (txn, trade) = (id("T"), id("ORD"));
        app.create_order(&trade, 100 + i as i64).await;
        let body = ship_body(&txn, &trade, 100 + i as i64, &id("N"));
        let answer = signed(&app, "/ship-notify", body.clone(), *content_type).await;
        assert_eq!(
            (answer.status, answer.json()),
            (200, json!({"retCode": "SUCCESS"})),
            "{content_type:?}"
        );
        signed_by_us(&app, &answer);
        let (_, order) = app.get(&format!("/orders/{trade}")).await;
        assert_eq!(
            (order["status"].as_str(), order["transactionId"].as_str()),
            (Some("PAID"), Some(txn.as_str())),
            "{content_type:?}"
        );
        // A redelivery under the same label is a duplicate, as for JSON.
        let again = signed(&app, "/ship-notify", body, *content_type).await;
        assert_eq!(again.json(), json!({"retCode": "SUCCESS"}));
        assert_eq!(webhook.calls(), i + 1, "{content_type:?}: fulfilled once");
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_as_such_whatever_its_content_type() {
    let app = spawn_app(Settings::hmac()).await;
    let (txn, trade) = (id("T"), id("ORD"));
    app.create_order(&trade, 990).await;
    let bodies: Vec<(Option<&str>, String)> = vec![
        (
            Some("application/x-www-form-urlencoded"),
            format!(
                "domainId=skill-123&transactionId={txn}&tradeNo={trade}&totalAmt=990&nonceStr=n1"
            ),
        ),
        (
            Some("text/plain"),
            format!("transactionId {txn} tradeNo {trade} totalAmt 990"),
        ),
        (
            Some("application/xml"),
            format!("<xml><transactionId>{txn}</transactionId><tradeNo>{trade}</tradeNo></xml>"),
        ),
        (Some("application/json"), "not json".to_owned()),
        (None, format!("{{\"transactionId\":\"{txn}\",")),
    ];
    let before = all_items(&app.store).await;
    for (content_type, body) in bodies {
        let answer = signed(&app, "/ship-notify", body.into_bytes(), content_type).await;
        assert_eq!(
            (answer.status, answer.json()),
            (400, json!({"retCode": "FAIL", "retMsg": "invalid JSON"})),
            "{content_type:?}"
        );
        signed_by_us(&app, &answer);
    }
    // A JSON body under another label is still checked for its signature
    // first: unsigned, it is refused as unsigned.
    let body = ship_body(&txn, &trade, 990, &id("N"));
    let answer = post(&app, "/ship-notify", body, None, Some("text/plain")).await;
    assert_eq!(answer.status, 401);
    assert_eq!(all_items(&app.store).await, before, "nothing written");
    let (_, order) = app.get(&format!("/orders/{trade}")).await;
    assert_eq!(order["status"], "CREATED");
}

#[tokio::test]
async fn refund_notifications_and_create_order_read_the_body_too() {
    let stack = hmac_stack(Settings::hmac(), |c| {
        c.refund_delay = std::time::Duration::from_secs(3600)
    })
    .await;
    let app = &stack.app;
    let trade = id("ORD");
    let txn = stack.paid_order(&trade, 1000).await;
    let refund_trade = id("RF");
    let (status, created) = app
        .post_json(
            "/refunds",
            json!({"tradeNo": trade, "refundTradeNo": refund_trade, "refundAmt": 400}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let refund = stack.wait_refund(&refund_trade, "PROCESSING").await;

    // Not JSON under a form label: refused as not JSON, nothing changes.
    let answer = signed(
        app,
        "/refund-notify",
        format!("refundTradeNo={refund_trade}&refundStatus=SUCCESS").into_bytes(),
        Some("application/x-www-form-urlencoded"),
    )
    .await;
    assert_eq!(
        (answer.status, answer.json()),
        (400, json!({"retCode": "FAIL", "retMsg": "invalid JSON"}))
    );
    stack.wait_refund(&refund_trade, "PROCESSING").await;

    // The platform's JSON result, labelled text/plain: applied.
    let body = serde_json::to_vec(&json!({
        "domainId": dingdang_tests::SKILL, "transactionId": txn, "tradeNo": trade,
        "refundTransactionId": refund["refundTransactionId"], "refundTradeNo": refund_trade,
        "totalAmt": 1000, "refundAmt": 400, "refundStatus": "SUCCESS",
        "refundStatusDesc": "退款成功", "nonceStr": id("N"),
    }))
    .unwrap();
    let answer = signed(app, "/refund-notify", body, Some("text/plain")).await;
    assert_eq!(
        (answer.status, answer.json()),
        (200, json!({"retCode": "SUCCESS"}))
    );
    signed_by_us(app, &answer);
    stack.wait_refund(&refund_trade, "SUCCESS").await;

    // create-order without a Content-Type: an order is created.
    let body = serde_json::to_vec(&json!({
        "skillId": dingdang_tests::SKILL, "userToken": "user42",
        "details": [{"itemId": "song1", "quantity": 1, "amount": 300}],
        "totalAmt": 300, "nonceStr": id("N"),
    }))
    .unwrap();
    let answer = signed(app, "/create-order", body, None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["retCode"], "SUCCESS", "{:?}", answer.json());
    let trade = answer.json()["tradeNo"].as_str().unwrap().to_owned();
    let (status, order) = app.get(&format!("/orders/{trade}")).await;
    assert_eq!((status, order["totalAmt"].as_i64()), (200, Some(300)));
}
