//! The simulator's admin endpoints (ledger views, settling a refund now)
//! and its counting fulfilment endpoint with its outage switch, over real
//! HTTP.

use std::time::Duration;

use dingdang::protocol::{self, Fen, NonceStr, OrderRef, RefundRequest, RefundTradeNo, Revision};
use dingdang::protocol::{SkillId, TradeNo};
use serde_json::{json, Value};
use simulator::{hmac_keys, RefundOutcome, SimConfig, Simulator};
use time::OffsetDateTime;

const SKILL: &str = "skill-123";
const SECRET: &str = "sim-admin-secret";

async fn sim(refund_delay: Duration) -> (Simulator, String) {
    let mut config = SimConfig::hmac(SKILL, SECRET);
    config.refund_delay = refund_delay;
    let sim = Simulator::spawn(config).await;
    let base = format!("http://{}", sim.addr());
    (sim, base)
}

async fn get(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn post(url: String, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Asks the simulator for a refund as the partner would (signed paycgi).
async fn refund(base: &str, trade_no: &str, refund_trade_no: &str, total: i64, amt: i64) {
    let request = RefundRequest::new(
        SkillId::parse(SKILL).unwrap(),
        OrderRef::TradeNo(TradeNo::parse(trade_no).unwrap()),
        RefundTradeNo::parse(refund_trade_no).unwrap(),
        Fen::new(total).unwrap(),
        Fen::new(amt).unwrap(),
        NonceStr::parse("n1").unwrap(),
    )
    .unwrap();
    let body = protocol::to_wire(&request, Revision::R2018);
    let auth = hmac_keys(SECRET).sign(&body, OffsetDateTime::now_utc());
    let reply: Value = reqwest::Client::new()
        .post(format!("{base}/paycgi/refund"))
        .header("authorization", auth.to_string())
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["retCode"], "SUCCESS", "{reply}");
}

#[tokio::test]
async fn ledger_views_and_settling_a_refund_now() {
    let (sim, base) = sim(Duration::from_secs(30)).await;
    let (status, _) = get(format!("{base}/admin/orders/NOPE1")).await;
    assert_eq!(status, 404);
    let (_, paid) = post(
        format!("{base}/admin/pay-silently"),
        json!({"tradeNo": "ORDADM1", "totalAmt": 1000}),
    )
    .await;
    let txn = paid["transactionId"].as_str().unwrap().to_owned();
    refund(&base, "ORDADM1", "RA1", 1000, 400).await;
    refund(&base, "ORDADM1", "RB1", 1000, 600).await;

    let (status, r) = get(format!("{base}/admin/refunds/RA1")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            r["refundStatus"].as_str(),
            r["refundAmt"].as_i64(),
            r["transactionId"].as_str()
        ),
        (Some("PROCESSING"), Some(400), Some(txn.as_str()))
    );

    let (status, settled) = post(
        format!("{base}/admin/settle-refund"),
        json!({"refundTradeNo": "RB1", "status": "FAIL"}),
    )
    .await;
    assert_eq!(
        (status, settled["refundStatus"].as_str()),
        (200, Some("FAIL"))
    );
    // Settling again the same way is a no-op; the other way is refused; an
    // unknown refund or a missing status is an error.
    for (settle, expected) in [
        (json!({"refundTradeNo": "RB1", "status": "FAIL"}), 200),
        (json!({"refundTradeNo": "RB1", "status": "SUCCESS"}), 409),
        (json!({"refundTradeNo": "RZ9", "status": "SUCCESS"}), 404),
        (json!({"refundTradeNo": "RA1"}), 400),
    ] {
        let (status, _) = post(format!("{base}/admin/settle-refund"), settle.clone()).await;
        assert_eq!(status, expected, "{settle}");
    }

    let (status, order) = get(format!("{base}/admin/orders/ORDADM1")).await;
    assert_eq!(status, 200);
    assert_eq!(order["transactionId"], txn.as_str());
    assert_eq!(order["totalAmt"], 1000);
    // RB1 failed: only RA1's 400 is committed.
    assert_eq!(order["refundedAmt"], 400, "{order}");
    assert_eq!(order["refunds"].as_array().unwrap().len(), 2);
    assert_eq!(
        sim.settle_refund("RA1", RefundOutcome::Success, false)
            .unwrap()
            .status
            .to_string(),
        "SUCCESS"
    );
    assert_eq!(sim.refunds_of("ORDADM1").len(), 2);
}

#[tokio::test]
async fn the_fulfilment_endpoint_counts_signed_requests_by_key() {
    const WEBHOOK: &str = "whsec_sim_test";
    let mut config = SimConfig::hmac(SKILL, SECRET);
    config.fulfillment_secret = Some(WEBHOOK.to_owned());
    let sim = Simulator::spawn(config).await;
    let base = format!("http://{}", sim.addr());
    let client = reqwest::Client::new();
    let body = br#"{"id":"payment.succeeded:TX1","type":"payment.succeeded"}"#.to_vec();
    let signed = |secret: &str, body: &[u8]| {
        dingdang::platform::webhook_signature(
            &dingdang::signing::HmacSecret::new(secret),
            OffsetDateTime::now_utc().unix_timestamp(),
            body,
        )
    };
    let post = |signature: Option<String>, key: Option<&str>| {
        let mut request = client.post(format!("{base}/fulfil")).body(body.clone());
        if let Some(signature) = signature {
            request = request.header("dingdang-signature", signature);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send()
    };
    for expected in 1..=2 {
        let reply: Value = post(Some(signed(WEBHOOK, &body)), Some("payment.succeeded:TX1"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(reply["count"], expected, "{reply}");
    }
    let revoke = post(Some(signed(WEBHOOK, &body)), Some("refund.succeeded:R1"))
        .await
        .unwrap();
    assert_eq!(revoke.status().as_u16(), 200);
    // Unsigned, signed with another secret, or without a key: refused and
    // not counted.
    let unsigned = post(None, Some("payment.succeeded:TX2")).await.unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let forged = post(
        Some(signed("another", &body)),
        Some("payment.succeeded:TX2"),
    )
    .await
    .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let keyless = post(Some(signed(WEBHOOK, &body)), None).await.unwrap();
    assert_eq!(keyless.status().as_u16(), 400);

    // A payment counts under its transactionId, a refund under its event id.
    assert_eq!(sim.fulfilments("TX1"), 2);
    assert_eq!(sim.fulfilments("TX2"), 0);
    let (_, all) = get(format!("{base}/admin/fulfilments")).await;
    assert_eq!(
        all,
        json!({"total": 3, "keys": {"TX1": 2, "refund.succeeded:R1": 1}})
    );
    let (_, one) = get(format!("{base}/admin/fulfilments/TX2")).await;
    assert_eq!(one, json!({"key": "TX2", "count": 0}));
}

#[tokio::test]
async fn a_fulfilment_outage_answers_503_until_it_ends() {
    const WEBHOOK: &str = "whsec_sim_test";
    let mut config = SimConfig::hmac(SKILL, SECRET);
    config.fulfillment_secret = Some(WEBHOOK.to_owned());
    let sim = Simulator::spawn(config).await;
    let base = format!("http://{}", sim.addr());
    let body = br#"{"id":"payment.succeeded:TX9","type":"payment.succeeded"}"#.to_vec();
    let fulfil = || {
        let signature = dingdang::platform::webhook_signature(
            &dingdang::signing::HmacSecret::new(WEBHOOK),
            OffsetDateTime::now_utc().unix_timestamp(),
            &body,
        );
        reqwest::Client::new()
            .post(format!("{base}/fulfil"))
            .header("dingdang-signature", signature)
            .header("idempotency-key", "payment.succeeded:TX9")
            .body(body.clone())
            .send()
    };

    let (_, state) = get(format!("{base}/admin/fulfil-outage")).await;
    assert_eq!(
        state,
        json!({"retCode": "SUCCESS", "down": false, "refused": 0})
    );
    let (status, state) = post(format!("{base}/admin/fulfil-outage"), json!({"down": true})).await;
    assert_eq!(status, 200);
    assert_eq!(state["down"], true);
    for _ in 0..2 {
        assert_eq!(fulfil().await.unwrap().status().as_u16(), 503);
    }
    assert_eq!(sim.fulfilments("TX9"), 0);
    assert_eq!(sim.fulfil_outage(), (true, 2));

    let (_, state) = post(
        format!("{base}/admin/fulfil-outage"),
        json!({"down": false}),
    )
    .await;
    assert_eq!(
        state,
        json!({"retCode": "SUCCESS", "down": false, "refused": 2})
    );
    assert_eq!(fulfil().await.unwrap().status().as_u16(), 200);
    assert_eq!(sim.fulfilments("TX9"), 1);

    let (status, _) = post(format!("{base}/admin/fulfil-outage"), json!({"up": 1})).await;
    assert_eq!(status, 400);
    sim.set_fulfil_outage(true);
    assert_eq!(fulfil().await.unwrap().status().as_u16(), 503);
}
