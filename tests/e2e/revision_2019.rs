//! The later revision end to end: TSK-RSA2 both ways, signed replies
//! required, `skillId` on the wire.

use dingdang_tests::{id, rsa_stack, sign, Settings, SKILL};
use serde_json::json;
use time::OffsetDateTime;

#[tokio::test]
async fn create_pay_and_refund_with_rsa2_and_signed_replies() {
    let stack = rsa_stack(Settings::rsa2_2019(), |_| {}).await;
    let app = &stack.app;

    // The platform creates the order.
    let body = serde_json::to_vec(&json!({
        "skillId": SKILL, "userToken": "u1",
        "details": [{"itemId": "vip-month", "quantity": 1, "amount": 1800}],
        "totalAmt": 1800, "nonceStr": id("N"),
    }))
    .unwrap();
    let created = app
        .post_path("/create-order", body.clone(), Some(sign(&app.keys, &body)))
        .await;
    assert_eq!(created.json()["retCode"], "SUCCESS", "{:?}", created.json());
    let header = created.authorization.clone().unwrap();
    assert!(header.starts_with("TSK-RSA2 "), "{header}");
    app.keys
        .verify(Some(&header), &created.body, OffsetDateTime::now_utc())
        .expect("RSA2-signed reply");
    let trade = created.json()["tradeNo"].as_str().unwrap().to_owned();

    // The user pays; the platform notifies (skillId form, RSA2).
    let txn = stack.sim.pay(&trade, 1800).await;
    let (status, reply) = stack.sim.last_ship_reply().unwrap().unwrap();
    assert_eq!((status, reply), (200, json!({"retCode": "SUCCESS"})));
    let (_, order) = app.get(&format!("/orders/{trade}")).await;
    assert_eq!(
        (order["status"].as_str(), order["transactionId"].as_str()),
        (Some("PAID"), Some(txn.as_str()))
    );

    // An HMAC-signed notification is refused under RSA2.
    let hmac = dingdang::signing::KeyRing {
        signer: dingdang::signing::Signer::Hmac(dingdang::signing::HmacSecret::new("x")),
        verifier: dingdang::signing::Verifier::hmac(vec![dingdang::signing::HmacSecret::new("x")]),
        skew: dingdang::signing::KeyRing::DEFAULT_SKEW,
    };
    let notice = dingdang_tests::ship_body(&txn, &trade, 1800, &id("N"));
    assert_eq!(
        app.post_ship(notice.clone(), Some(sign(&hmac, &notice)))
            .await
            .status,
        401
    );

    // A refund: the platform's signed replies are verified, and required.
    let (status, refund) = app
        .post_json(
            "/refunds",
            json!({"tradeNo": trade, "refundTradeNo": "RS1", "refundAmt": 800}),
        )
        .await;
    assert_eq!(
        (status, refund["status"].as_str()),
        (201, Some("PROCESSING")),
        "{refund}"
    );
    stack.wait_refund("RS1", "SUCCESS").await;

    stack.sim.set_sign_replies(false);
    let (status, refund) = app
        .post_json(
            "/refunds",
            json!({"tradeNo": trade, "refundTradeNo": "RS2", "refundAmt": 1000}),
        )
        .await;
    assert_eq!(
        (status, refund["status"].as_str()),
        (202, Some("PENDING")),
        "an unsigned reply is not trusted"
    );
    stack.sim.set_sign_replies(true);
    let (status, synced) = app.get("/refunds/RS2?sync=true").await;
    assert_eq!(status, 200, "{synced}");
    assert!(matches!(
        synced["status"].as_str(),
        Some("PROCESSING" | "SUCCESS")
    ));
    assert_eq!(stack.sim.refund_calls(), 2);
}
