//! The refund result notification: forward-only, idempotent, verified.

use dingdang_tests::{all_items, hmac_stack, id, sign, Settings, Stack};
use serde_json::json;

async fn processing_refund(stack: &Stack, rtn: &str, amt: i64) -> String {
    let trade = id("ORD");
    stack.paid_order(&trade, 1000).await;
    let (status, refund) = stack
        .app
        .post_json(
            "/refunds",
            json!({"tradeNo": trade, "refundTradeNo": rtn, "refundAmt": amt}),
        )
        .await;
    assert_eq!(status, 201, "{refund}");
    trade
}

/// A stack whose simulator never finishes refunds on its own.
async fn manual_stack() -> Stack {
    hmac_stack(Settings::hmac(), |c| {
        c.refund_delay = std::time::Duration::from_secs(3600)
    })
    .await
}

#[tokio::test]
async fn success_then_a_late_processing_and_duplicates() {
    let stack = manual_stack().await;
    processing_refund(&stack, "N1", 300).await;
    for _ in 0..2 {
        let (status, reply) = stack.sim.send_refund_notify("N1", "SUCCESS").await.unwrap();
        assert_eq!((status, reply), (200, json!({"retCode": "SUCCESS"})));
    }
    stack.wait_refund("N1", "SUCCESS").await;
    let (status, reply) = stack
        .sim
        .send_refund_notify("N1", "PROCESSING")
        .await
        .unwrap();
    assert_eq!(
        (status, reply),
        (200, json!({"retCode": "SUCCESS"})),
        "acknowledged"
    );
    stack.wait_refund("N1", "SUCCESS").await;
    // A contradicting FAIL after SUCCESS is refused and changes nothing.
    let (status, reply) = stack.sim.send_refund_notify("N1", "FAIL").await.unwrap();
    assert_eq!((status, reply["retCode"].as_str()), (200, Some("FAIL")));
    stack.wait_refund("N1", "SUCCESS").await;
}

#[tokio::test]
async fn fail_releases_the_amount_once() {
    let stack = manual_stack().await;
    let trade = processing_refund(&stack, "N2", 1000).await;
    let (_, order) = stack.app.get(&format!("/orders/{trade}")).await;
    assert_eq!(order["refundedAmt"], 1000);
    for _ in 0..3 {
        let (status, reply) = stack.sim.send_refund_notify("N2", "FAIL").await.unwrap();
        assert_eq!((status, reply), (200, json!({"retCode": "SUCCESS"})));
    }
    stack.wait_refund("N2", "FAILED").await;
    let (_, order) = stack.app.get(&format!("/orders/{trade}")).await;
    assert_eq!(order["refundedAmt"], 0, "released exactly once");
    let (status, _) = stack
        .app
        .post_json(
            "/refunds",
            json!({"tradeNo": trade, "refundTradeNo": "N3", "refundAmt": 1000}),
        )
        .await;
    assert_eq!(status, 201);
}

fn notice(refund: &serde_json::Value, changes: serde_json::Value) -> Vec<u8> {
    let mut body = json!({
        "domainId": dingdang_tests::SKILL,
        "transactionId": refund["transactionId"],
        "tradeNo": refund["tradeNo"],
        "refundTransactionId": refund["refundTransactionId"],
        "refundTradeNo": refund["refundTradeNo"],
        "totalAmt": refund["totalAmt"],
        "refundAmt": refund["refundAmt"],
        "refundStatus": "SUCCESS",
        "refundStatusDesc": "退款成功",
        "nonceStr": id("N"),
    });
    for (k, v) in changes.as_object().unwrap() {
        body[k] = v.clone();
    }
    serde_json::to_vec(&body).unwrap()
}

#[tokio::test]
async fn ids_or_amounts_that_disagree_are_refused_kept_and_change_nothing_else() {
    let stack = manual_stack().await;
    processing_refund(&stack, "N4", 500).await;
    let (_, refund) = stack.app.get("/refunds/N4").await;
    let before = all_items(&stack.app.store).await;
    let mut bodies = Vec::new();
    for changes in [
        json!({"refundAmt": 501}),
        json!({"totalAmt": 999}),
        json!({"tradeNo": "OTHERORDER"}),
        json!({"transactionId": "OTHERTXN"}),
        json!({"refundTransactionId": "OTHERREFUND"}),
    ] {
        let body = notice(&refund, changes.clone());
        let authorization = sign(&stack.app.keys, &body);
        let answer = stack
            .app
            .post_path("/refund-notify", body.clone(), Some(authorization))
            .await;
        assert_eq!(answer.status, 200, "{changes}");
        assert_eq!(answer.json()["retCode"], "FAIL", "{changes}");
        bodies.push(String::from_utf8(body).unwrap());
    }
    // Unsigned and wrong skill.
    let body = notice(&refund, json!({}));
    assert_eq!(
        stack
            .app
            .post_path("/refund-notify", body, None)
            .await
            .status,
        401
    );
    let body = notice(&refund, json!({"domainId": "other-skill"}));
    let authorization = sign(&stack.app.keys, &body);
    assert_eq!(
        stack
            .app
            .post_path("/refund-notify", body, Some(authorization))
            .await
            .status,
        403
    );
    // Each disagreeing notice is kept, with its body, for an operator;
    // nothing else changed.
    let (kept, rest): (Vec<_>, Vec<_>) =
        all_items(&stack.app.store)
            .await
            .into_iter()
            .partition(|i| {
                i.get("kind")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some("UNMATCHED")
            });
    assert_eq!(rest, before);
    let mut payloads: Vec<String> = kept
        .iter()
        .map(|i| {
            assert_eq!(i["reason"].as_s().unwrap(), "refund_mismatch");
            assert_eq!(i["refundTradeNo"].as_s().unwrap(), "N4");
            i["payload"].as_s().unwrap().clone()
        })
        .collect();
    payloads.sort();
    bodies.sort();
    assert_eq!(payloads, bodies);
    stack.wait_refund("N4", "PROCESSING").await;
}

#[tokio::test]
async fn a_notification_for_an_unknown_refund_is_recorded_not_dropped() {
    let stack = manual_stack().await;
    let body = serde_json::to_vec(&json!({
        "skillId": dingdang_tests::SKILL, "transactionId": "T9", "tradeNo": "ORD9", "refundTransactionId": "RT9",
        "refundTradeNo": "UNKNOWN9", "totalAmt": 100, "refundAmt": 100, "refundStatus": "SUCCESS",
        "refundStatusDesc": "ok", "nonceStr": id("N"),
    }))
    .unwrap();
    let authorization = sign(&stack.app.keys, &body);
    let answer = stack
        .app
        .post_path("/refund-notify", body, Some(authorization))
        .await;
    assert_eq!(
        (answer.status, answer.json()),
        (200, json!({"retCode": "SUCCESS"}))
    );
    let items = all_items(&stack.app.store).await;
    let recorded = items.iter().find(|i| {
        i.get("pk").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("UNMATCHED#UNKNOWN9")
    });
    assert!(recorded.is_some(), "{items:?}");
}

#[tokio::test]
async fn a_replayed_nonce_with_another_body_is_refused() {
    let stack = manual_stack().await;
    processing_refund(&stack, "N5", 200).await;
    let (_, refund) = stack.app.get("/refunds/N5").await;
    let nonce = id("N");
    let first = notice(
        &refund,
        json!({"nonceStr": nonce, "refundStatus": "PROCESSING"}),
    );
    let authorization = sign(&stack.app.keys, &first);
    assert_eq!(
        stack
            .app
            .post_path("/refund-notify", first, Some(authorization))
            .await
            .json()["retCode"],
        "SUCCESS"
    );
    let replay = notice(&refund, json!({"nonceStr": nonce, "refundStatus": "FAIL"}));
    let authorization = sign(&stack.app.keys, &replay);
    let answer = stack
        .app
        .post_path("/refund-notify", replay, Some(authorization))
        .await;
    assert_eq!(answer.status, 401);
    stack.wait_refund("N5", "PROCESSING").await;
}
