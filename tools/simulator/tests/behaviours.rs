//! The bad platform: per-order and per-refund behaviours, switched on
//! through the Rust API and the admin endpoint, seen through `dingdang`'s
//! own `PlatformClient` over real HTTP.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use dingdang::domain::platform::{Platform, PlatformError};
use dingdang::platform::{http_client, PlatformClient};
use dingdang::protocol::{
    Fen, NonceStr, OrderQueryRequest, OrderRef, RefundNotify, RefundQueryRequest, RefundRef,
    RefundRequest, RefundStatus, RefundTradeNo, RetCode, Revision, SkillId, TradeNo,
};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};
use simulator::{hmac_keys, Behaviour, Endpoint, On, Rule, SimConfig, Simulator};

const SKILL: &str = "skill-123";
const SECRET: &str = "sim-behaviour-secret";

fn id(prefix: &str) -> String {
    let tail: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(12)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

fn nonce() -> NonceStr {
    NonceStr::parse(&id("n")).unwrap()
}

fn skill() -> SkillId {
    SkillId::parse(SKILL).unwrap()
}

async fn spawn(tune: impl FnOnce(&mut SimConfig)) -> (Simulator, PlatformClient) {
    let mut config = SimConfig::hmac(SKILL, SECRET);
    config.refund_delay = Duration::from_millis(300);
    tune(&mut config);
    let sim = Simulator::spawn(config).await;
    let client = PlatformClient::new(
        http_client(),
        sim.api_base(),
        Arc::new(hmac_keys(SECRET)),
        Revision::R2018,
        true,
    );
    (sim, client)
}

fn order_query(trade_no: &str) -> OrderQueryRequest {
    OrderQueryRequest::new(
        skill(),
        OrderRef::TradeNo(TradeNo::parse(trade_no).unwrap()),
        nonce(),
    )
}

fn refund(trade_no: &str, refund_trade_no: &str, total: i64, amount: i64) -> RefundRequest {
    RefundRequest::new(
        skill(),
        OrderRef::TradeNo(TradeNo::parse(trade_no).unwrap()),
        RefundTradeNo::parse(refund_trade_no).unwrap(),
        Fen::new(total).unwrap(),
        Fen::new(amount).unwrap(),
        nonce(),
    )
    .unwrap()
}

fn refund_query(refund_trade_no: &str) -> RefundQueryRequest {
    RefundQueryRequest::new(
        skill(),
        RefundRef::RefundTradeNo(RefundTradeNo::parse(refund_trade_no).unwrap()),
        nonce(),
    )
}

/// The platform's refund status, as the simulator's ledger holds it.
fn ledger_status(sim: &Simulator, refund_trade_no: &str) -> Option<RefundStatus> {
    sim.refund_state(refund_trade_no).map(|r| r.status)
}

/// Waits (5 s at most) until the ledger's refund is no longer PROCESSING.
async fn settled(sim: &Simulator, refund_trade_no: &str) -> Option<RefundStatus> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = ledger_status(sim, refund_trade_no);
        if now != Some(RefundStatus::Processing) || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn admin(sim: &Simulator, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{}{path}", sim.addr()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_resubmitted_refund_is_refused_while_the_recorded_one_proceeds() {
    let (sim, client) = spawn(|_| {}).await;
    let trade_no = id("ORD");
    sim.pay_silently(&trade_no, 1000).await;
    let (r1, r2) = (id("RF"), id("RF"));
    sim.set_behaviour(Rule::refund(&r1, Behaviour::FailDuplicate))
        .unwrap();

    // The first submission is recorded and accepted as usual.
    let first = client
        .refund(&refund(&trade_no, &r1, 1000, 400))
        .await
        .unwrap();
    assert!(first.refund().is_ok(), "{first:?}");
    // Every resubmission is answered FAIL, the ledger unchanged.
    for _ in 0..2 {
        let again = client
            .refund(&refund(&trade_no, &r1, 1000, 400))
            .await
            .unwrap();
        assert_eq!(again.ret_code, RetCode::Fail);
        assert_eq!(again.ret_msg.as_deref(), Some("duplicate refundTradeNo"));
    }
    assert_eq!(sim.refunds_of(&trade_no).len(), 1);
    // Other refunds of the order resubmit as usual.
    for _ in 0..2 {
        let other = client
            .refund(&refund(&trade_no, &r2, 1000, 100))
            .await
            .unwrap();
        assert!(other.refund().is_ok(), "{other:?}");
    }
    // The recorded refund still holds its amount and then succeeds.
    let over = client
        .refund(&refund(&trade_no, &id("RF"), 1000, 501))
        .await
        .unwrap();
    assert_eq!(over.ret_msg.as_deref(), Some("refund exceeds order"));
    assert_eq!(settled(&sim, &r1).await, Some(RefundStatus::Success));
    let queried = client.refund_query(&refund_query(&r1)).await.unwrap();
    assert_eq!(
        queried.refund().unwrap().refund_status,
        RefundStatus::Success
    );
    // Until cleared.
    assert_eq!(sim.behaviours().len(), 1);
    assert_eq!(sim.clear_behaviours(Some(&On::Refund(r1.clone()))), 1);
    let again = client
        .refund(&refund(&trade_no, &r1, 1000, 400))
        .await
        .unwrap();
    assert!(again.refund().is_ok(), "{again:?}");
}

#[tokio::test]
async fn busy_queries_for_the_next_calls_or_until_cleared() {
    let (sim, client) = spawn(|c| c.refund_delay = Duration::from_secs(30)).await;
    let trade_no = id("ORD");
    sim.pay_silently(&trade_no, 1000).await;
    let refund_no = id("RF");
    client
        .refund(&refund(&trade_no, &refund_no, 1000, 300))
        .await
        .unwrap()
        .refund()
        .unwrap();

    // Through the admin endpoint: orderquery busy twice.
    let (status, reply) = admin(
        &sim,
        "/admin/behaviour",
        json!({"tradeNo": trade_no, "behaviour": "busy", "endpoint": "orderquery", "times": 2}),
    )
    .await;
    assert_eq!(
        (status, reply["retCode"].as_str()),
        (200, Some("SUCCESS")),
        "{reply}"
    );
    for _ in 0..2 {
        let busy = client.order_query(&order_query(&trade_no)).await.unwrap();
        assert_eq!(
            (busy.ret_code, busy.ret_msg.as_deref()),
            (RetCode::Fail, Some("system busy"))
        );
    }
    let order = client.order_query(&order_query(&trade_no)).await.unwrap();
    assert!(order.order().is_ok(), "{order:?}");
    assert!(sim.behaviours().is_empty());

    // refundquery busy until cleared; the refund is untouched.
    sim.set_behaviour(Rule::refund(&refund_no, Behaviour::Busy).at(Endpoint::RefundQuery))
        .unwrap();
    for _ in 0..3 {
        let busy = client
            .refund_query(&refund_query(&refund_no))
            .await
            .unwrap();
        assert_eq!(busy.ret_msg.as_deref(), Some("system busy"));
    }
    // The refund itself is not busy (the rule is for refundquery).
    let resubmitted = client
        .refund(&refund(&trade_no, &refund_no, 1000, 300))
        .await
        .unwrap();
    assert!(resubmitted.refund().is_ok());
    assert_eq!(status_of(&sim, &refund_no), RefundStatus::Processing);
    let (status, reply) = admin(
        &sim,
        "/admin/behaviour/clear",
        json!({"refundTradeNo": refund_no}),
    )
    .await;
    assert_eq!(
        (status, reply["cleared"].as_u64()),
        (200, Some(1)),
        "{reply}"
    );
    let queried = client
        .refund_query(&refund_query(&refund_no))
        .await
        .unwrap();
    assert_eq!(
        queried.refund().unwrap().refund_status,
        RefundStatus::Processing
    );

    // A busy refund request records nothing.
    sim.set_behaviour(
        Rule::order(&trade_no, Behaviour::Busy)
            .at(Endpoint::Refund)
            .times(1),
    )
    .unwrap();
    let other = id("RF");
    let busy = client
        .refund(&refund(&trade_no, &other, 1000, 100))
        .await
        .unwrap();
    assert_eq!(busy.ret_msg.as_deref(), Some("system busy"));
    assert_eq!(ledger_status(&sim, &other), None);
}

fn status_of(sim: &Simulator, refund_trade_no: &str) -> RefundStatus {
    ledger_status(sim, refund_trade_no).expect("recorded")
}

#[tokio::test]
async fn replies_missing_a_required_field_are_signed_and_the_effect_recorded() {
    let (sim, client) = spawn(|c| c.refund_delay = Duration::from_secs(30)).await;
    let trade_no = id("ORD");
    sim.pay_silently(&trade_no, 1000).await;
    let refund_no = id("RF");
    sim.set_behaviour(Rule::order(&trade_no, Behaviour::MissingField(None)).times(3))
        .unwrap();

    // The client requires signed replies: these verify, and lack the field.
    let reply = client.order_query(&order_query(&trade_no)).await.unwrap();
    assert_eq!(reply.ret_code, RetCode::Success);
    assert_eq!(reply.transaction_id, None);
    assert!(reply.trade_no.is_some());
    assert!(reply
        .order()
        .unwrap_err()
        .to_string()
        .contains("transactionId"));

    let reply = client
        .refund(&refund(&trade_no, &refund_no, 1000, 300))
        .await
        .unwrap();
    assert_eq!(reply.ret_code, RetCode::Success);
    assert_eq!(reply.refund_transaction_id, None);
    assert!(reply.refund().is_err());
    assert_eq!(status_of(&sim, &refund_no), RefundStatus::Processing);

    let reply = client
        .refund_query(&refund_query(&refund_no))
        .await
        .unwrap();
    assert_eq!(reply.ret_code, RetCode::Success);
    assert_eq!(reply.refund_status, None);
    assert!(reply.refund_transaction_id.is_some());
    assert!(reply.refund().is_err());
    assert!(sim.behaviours().is_empty(), "three uses consumed");

    // Another field, named through the admin endpoint; a FAIL reply (an
    // unknown refund) does not use it up.
    let (status, reply) = admin(
        &sim,
        "/admin/behaviour",
        json!({"tradeNo": trade_no, "behaviour": "missing-field", "endpoint": "refundquery",
               "field": "refundAmt", "times": 1}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let unknown = client
        .refund_query(&refund_query("NOSUCHREFUND"))
        .await
        .unwrap();
    assert_eq!(unknown.ret_msg.as_deref(), Some("refund not found"));
    let reply = client
        .refund_query(&refund_query(&refund_no))
        .await
        .unwrap();
    assert_eq!(
        (reply.refund_amt, reply.refund_status),
        (None, Some(RefundStatus::Processing))
    );
    let whole = client
        .refund_query(&refund_query(&refund_no))
        .await
        .unwrap();
    assert!(whole.refund().is_ok());
}

#[tokio::test]
async fn a_late_reply_comes_after_the_client_timeout_with_the_effect_recorded() {
    let (sim, client) = spawn(|c| c.refund_delay = Duration::from_secs(30)).await;
    let client = client.with_timeout(Duration::from_millis(300));
    let trade_no = id("ORD");
    sim.pay_silently(&trade_no, 1000).await;
    let refund_no = id("RF");
    sim.set_behaviour(
        Rule::refund(
            &refund_no,
            Behaviour::LateReply(Duration::from_millis(1500)),
        )
        .at(Endpoint::Refund)
        .times(1),
    )
    .unwrap();

    let started = Instant::now();
    let late = client
        .refund(&refund(&trade_no, &refund_no, 1000, 300))
        .await;
    assert!(matches!(late, Err(PlatformError::Timeout)), "{late:?}");
    assert!(started.elapsed() < Duration::from_millis(1200));
    // Recorded before the reply was due.
    assert_eq!(status_of(&sim, &refund_no), RefundStatus::Processing);
    // The next submission is answered at once with the recorded refund.
    let again = client
        .refund(&refund(&trade_no, &refund_no, 1000, 300))
        .await
        .unwrap();
    assert!(again.refund().is_ok());
    assert_eq!(sim.refunds_of(&trade_no).len(), 1);

    // A late query, by order rule through the admin endpoint.
    let (status, _) = admin(
        &sim,
        "/admin/behaviour",
        json!({"tradeNo": trade_no, "behaviour": "late-reply", "endpoint": "refundquery", "delayMs": 1500, "times": 1}),
    )
    .await;
    assert_eq!(status, 200);
    let late = client.refund_query(&refund_query(&refund_no)).await;
    assert!(matches!(late, Err(PlatformError::Timeout)), "{late:?}");
    assert!(client.refund_query(&refund_query(&refund_no)).await.is_ok());
}

/// A refund-notify endpoint that records the notifications it receives.
#[derive(Clone, Default)]
struct Notified(Arc<Mutex<Vec<RefundNotify>>>);

async fn record(State(seen): State<Notified>, body: Bytes) -> axum::Json<Value> {
    let notify: RefundNotify = dingdang::protocol::parse(&body).unwrap();
    seen.0.lock().unwrap().push(notify);
    axum::Json(json!({"retCode": "SUCCESS"}))
}

#[tokio::test]
async fn a_refund_accepted_then_failed_releases_its_amount_and_notifies_fail() {
    let seen = Notified::default();
    let app = Router::new()
        .route("/refund-notify", post(record))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/refund-notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (sim, client) = spawn(|c| {
        c.refund_delay = Duration::from_millis(200);
        c.refund_notify_url = Some(url);
    })
    .await;
    let trade_no = id("ORD");
    sim.pay_silently(&trade_no, 1000).await;
    let (failing, fine) = (id("RF"), id("RF"));
    let (status, reply) = admin(
        &sim,
        "/admin/behaviour",
        json!({"refundTradeNo": failing, "behaviour": "accept-then-fail", "delayMs": 100}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");

    let accepted = client
        .refund(&refund(&trade_no, &failing, 1000, 600))
        .await
        .unwrap();
    assert!(accepted.refund().is_ok(), "{accepted:?}");
    let queried = client.refund_query(&refund_query(&failing)).await.unwrap();
    assert_eq!(
        queried.refund().unwrap().refund_status,
        RefundStatus::Processing
    );
    assert_eq!(settled(&sim, &failing).await, Some(RefundStatus::Fail));
    // Its 600 is released: the whole order can be refunded again, and that
    // refund (no rule) follows the configured outcome.
    let again = client
        .refund(&refund(&trade_no, &fine, 1000, 1000))
        .await
        .unwrap();
    assert!(again.refund().is_ok(), "{again:?}");
    assert_eq!(settled(&sim, &fine).await, Some(RefundStatus::Success));

    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.0.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let notified: Vec<(String, RefundStatus)> = seen
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|n| (n.refund_trade_no.to_string(), n.refund_status))
        .collect();
    assert_eq!(
        notified,
        vec![(failing, RefundStatus::Fail), (fine, RefundStatus::Success)]
    );
}

#[tokio::test]
async fn counted_behaviours_are_shared_out_exactly_among_concurrent_requests() {
    let (sim, client) = spawn(|_| {}).await;
    let trade_no = id("ORD");
    sim.pay_silently(&trade_no, 1000).await;
    sim.set_behaviour(Rule::order(&trade_no, Behaviour::Busy).times(5))
        .unwrap();
    let queries = (0..20).map(|_| {
        let client = client.clone();
        let request = order_query(&trade_no);
        tokio::spawn(async move { client.order_query(&request).await.unwrap() })
    });
    let mut busy = 0;
    for q in queries {
        if q.await.unwrap().ret_code == RetCode::Fail {
            busy += 1;
        }
    }
    assert_eq!(busy, 5);
    assert!(sim.behaviours().is_empty());
}

#[tokio::test]
async fn the_admin_endpoint_lists_refuses_and_clears() {
    let (sim, _) = spawn(|_| {}).await;
    for (body, why) in [
        (
            json!({"behaviour": "busy"}),
            "give one of tradeNo and refundTradeNo",
        ),
        (
            json!({"tradeNo": "O1", "behaviour": "sulk"}),
            "unknown behaviour",
        ),
        (
            json!({"tradeNo": "O1", "behaviour": "accept-then-fail", "endpoint": "refundquery"}),
            "accept-then-fail does not happen at refundquery",
        ),
        (
            json!({"tradeNo": "O1", "behaviour": "busy", "times": 0}),
            "times must be at least 1",
        ),
    ] {
        let (status, reply) = admin(&sim, "/admin/behaviour", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            reply["retMsg"].as_str().unwrap().contains(why),
            "{body}: {reply}"
        );
    }
    let response = reqwest::Client::new()
        .post(format!("http://{}/admin/behaviour", sim.addr()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);

    for body in [
        json!({"tradeNo": "O1", "behaviour": "busy", "endpoint": "orderquery", "times": 2}),
        json!({"refundTradeNo": "R1", "behaviour": "fail-duplicate"}),
        json!({"refundTradeNo": "R2", "behaviour": "late-reply", "delayMs": 7000}),
    ] {
        let (status, _) = admin(&sim, "/admin/behaviour", body).await;
        assert_eq!(status, 200);
    }
    let listed: Value = reqwest::get(format!("http://{}/admin/behaviour", sim.addr()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed,
        json!({"behaviours": [
            {"tradeNo": "O1", "behaviour": "busy", "endpoint": "orderquery", "times": 2},
            {"refundTradeNo": "R1", "behaviour": "fail-duplicate"},
            {"refundTradeNo": "R2", "behaviour": "late-reply", "delayMs": 7000},
        ]})
    );
    assert_eq!(
        sim.behaviours()[2],
        Rule::refund("R2", Behaviour::LateReply(Duration::from_secs(7)))
    );
    let (_, cleared) = admin(&sim, "/admin/behaviour/clear", json!({"tradeNo": "O1"})).await;
    assert_eq!(cleared["cleared"], 1);
    let (_, cleared) = admin(&sim, "/admin/behaviour/clear", json!({"tradeNo": "O1"})).await;
    assert_eq!(cleared["cleared"], 0);
    let (status, _) = admin(&sim, "/admin/behaviour/clear", json!({"tradeNo": 5})).await;
    assert_eq!(status, 400);
    let (_, cleared) = admin(&sim, "/admin/behaviour/clear", json!({})).await;
    assert_eq!(cleared["cleared"], 2);
    assert!(sim.behaviours().is_empty());
    // The Rust API refuses what the admin endpoint refuses.
    assert!(sim
        .set_behaviour(Rule::order("O1", Behaviour::FailDuplicate).at(Endpoint::OrderQuery))
        .is_err());
}
