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

/// A ship notification in the later revision's form, with `userToken`.
fn ship_2019(txn: &str, trade: &str, total_amt: i64, user_token: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "skillId": SKILL, "transactionId": txn, "tradeNo": trade, "totalAmt": total_amt,
        "userToken": user_token, "nonceStr": id("N"),
    }))
    .unwrap()
}

#[tokio::test]
async fn another_user_token_still_pays_the_order_which_keeps_its_own() {
    for with_webhook in [false, true] {
        let webhook = dingdang_tests::Webhook::start().await;
        let mut settings = Settings::rsa2_2019();
        if with_webhook {
            settings = settings.with("FULFILLMENT_URL", webhook.url());
        }
        let app = dingdang_tests::spawn_app(settings).await;
        let (trade, txn) = (id("ORD"), id("T"));
        let (status, order) = app
            .post_json(
                "/orders",
                json!({"tradeNo": trade, "totalAmt": 1800, "userToken": "user-ours-1"}),
            )
            .await;
        assert_eq!(status, 201, "{order}");

        let answer = app
            .ship(ship_2019(&txn, &trade, 1800, "user-theirs-2"))
            .await;
        assert_eq!(
            (answer.status, answer.json()),
            (200, json!({"retCode": "SUCCESS"})),
            "with_webhook={with_webhook}"
        );
        let (_, order) = app.get(&format!("/orders/{trade}")).await;
        assert_eq!(
            (
                order["status"].as_str(),
                order["transactionId"].as_str(),
                order["userToken"].as_str()
            ),
            (Some("PAID"), Some(txn.as_str()), Some("user-ours-1")),
            "the payment is recorded; the order keeps its userToken"
        );
        // A duplicate grants nothing more.
        let again = app
            .ship(ship_2019(&txn, &trade, 1800, "user-theirs-2"))
            .await;
        assert_eq!(again.json(), json!({"retCode": "SUCCESS"}));
        if with_webhook {
            assert_eq!(webhook.calls(), 1);
            let (_, body) = webhook.requests().remove(0);
            let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                sent["data"]["userToken"], "user-ours-1",
                "fulfilled for the order's user"
            );
        }

        // In process, the same delivery's answer counts the mismatch.
        let (trade, txn) = (id("ORD"), id("T"));
        app.post_json(
            "/orders",
            json!({"tradeNo": trade, "totalAmt": 600, "userToken": "user-ours-3"}),
        )
        .await;
        let body = ship_2019(&txn, &trade, 600, "user-theirs-4");
        let authorization = sign(&app.keys, &body);
        let now = OffsetDateTime::now_utc();
        let answer = app.ship.notify(Some(&authorization), &body, now).await;
        assert_eq!(answer.outcome, "fulfilled");
        assert_eq!(
            answer.also,
            vec![dingdang::observability::metrics::Metric::UserTokenMismatch]
        );
        // The same token, or none (the 2018 form), is no mismatch.
        let (trade, txn) = (id("ORD"), id("T"));
        app.post_json(
            "/orders",
            json!({"tradeNo": trade, "totalAmt": 700, "userToken": "user-ours-5"}),
        )
        .await;
        let body = ship_2019(&txn, &trade, 700, "user-ours-5");
        let authorization = sign(&app.keys, &body);
        let answer = app.ship.notify(Some(&authorization), &body, now).await;
        assert_eq!((answer.outcome, answer.also), ("fulfilled", vec![]));
    }
}
