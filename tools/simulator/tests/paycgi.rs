//! The simulator and `dingdang`'s `PlatformClient` against each other over
//! real HTTP.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use dingdang::domain::platform::{Platform, PlatformError};
use dingdang::platform::{http_client, PlatformClient};
use dingdang::protocol::{
    Fen, NonceStr, OrderQueryRequest, OrderRef, RefundNotify, RefundQueryRequest, RefundRef,
    RefundRequest, RefundStatus, RefundTradeNo, RefundTransactionId, RetCode, Revision, ShipNotify,
    SkillId, TradeNo, TradeStatus, TransactionId,
};
use dingdang::signing::{self, KeyRing, Signer, Verifier};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};
use simulator::{hmac_keys, RefundOutcome, SimConfig, Simulator};
use time::OffsetDateTime;

const SKILL: &str = "skill-123";
const SECRET: &str = "sim-test-secret";

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

fn config() -> SimConfig {
    let mut c = SimConfig::hmac(SKILL, SECRET);
    c.refund_delay = Duration::from_millis(300);
    c
}

fn client(sim: &Simulator, require_signed: bool) -> PlatformClient {
    PlatformClient::new(
        http_client(),
        sim.api_base(),
        Arc::new(hmac_keys(SECRET)),
        Revision::R2018,
        require_signed,
    )
}

fn order_query(order: OrderRef) -> OrderQueryRequest {
    OrderQueryRequest::new(skill(), order, nonce())
}

fn by_trade_no(trade_no: &str) -> OrderRef {
    OrderRef::TradeNo(TradeNo::parse(trade_no).unwrap())
}

fn refund(trade_no: &str, refund_trade_no: &str, total: i64, amount: i64) -> RefundRequest {
    RefundRequest::new(
        skill(),
        by_trade_no(trade_no),
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

/// Polls refundquery until the refund leaves PROCESSING (5 s at most).
async fn final_status(client: &PlatformClient, refund_trade_no: &str) -> RefundStatus {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = client
            .refund_query(&refund_query(refund_trade_no))
            .await
            .unwrap();
        let status = reply.refund().unwrap().refund_status;
        if status != RefundStatus::Processing || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn bad_reply(r: Result<impl std::fmt::Debug, PlatformError>) -> String {
    match r {
        Err(PlatformError::BadReply(msg)) => msg,
        other => panic!("expected BadReply, got {other:?}"),
    }
}

/// Signed raw POST, for what `PlatformClient` would never send.
async fn raw_post(url: &str, keys: &KeyRing, body: &[u8]) -> (u16, Option<String>, Value) {
    let auth = keys.sign(body, OffsetDateTime::now_utc()).to_string();
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("authorization", auth)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let header = response
        .headers()
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.bytes().await.unwrap();
    (status, header, serde_json::from_slice(&bytes).unwrap())
}

/// What a receiver saw: whether the signature verified, and the body.
type Seen = Vec<(bool, Vec<u8>)>;

/// A partner endpoint that records what it receives (verifying the
/// signature with `keys`) and answers with the scripted replies, then
/// `SUCCESS`.
#[derive(Clone)]
struct Receiver {
    seen: Arc<Mutex<Seen>>,
    script: Arc<Mutex<Vec<(u16, Value)>>>,
    keys: Arc<KeyRing>,
}

impl Receiver {
    async fn spawn(keys: KeyRing, script: Vec<(u16, Value)>) -> (Receiver, String) {
        let receiver = Receiver {
            seen: Arc::default(),
            script: Arc::new(Mutex::new(script)),
            keys: Arc::new(keys),
        };
        let app = Router::new()
            .route("/notify", post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> (axum::http::StatusCode, axum::Json<Value>) {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let verified = r
        .keys
        .verify(auth, &body, OffsetDateTime::now_utc())
        .is_ok();
    r.seen.lock().unwrap().push((verified, body.to_vec()));
    let mut script = r.script.lock().unwrap();
    let (status, reply) = if script.is_empty() {
        (200, json!({"retCode": "SUCCESS"}))
    } else {
        script.remove(0)
    };
    (
        axum::http::StatusCode::from_u16(status).unwrap(),
        axum::Json(reply),
    )
}

#[tokio::test]
async fn order_query_found_and_not_found() {
    let sim = Simulator::spawn(config()).await;
    let client = client(&sim, true);
    let trade_no = id("ORD");
    let txn = sim.pay_silently(&trade_no, 990).await;
    assert!(txn.len() <= 32 && txn.bytes().all(|b| b.is_ascii_alphanumeric()));

    let reply = client
        .order_query(&order_query(by_trade_no(&trade_no)))
        .await
        .unwrap();
    let order = reply.order().unwrap();
    assert_eq!(order.trade_status, TradeStatus::Success);
    assert_eq!(order.trade_status_desc.as_deref(), Some("支付成功"));
    assert_eq!(order.transaction_id.as_str(), txn);
    assert_eq!(order.total_amt.get(), 990);
    assert_eq!(order.skill_id.as_str(), SKILL);

    let by_txn = OrderRef::TransactionId(TransactionId::parse(&txn).unwrap());
    let reply = client.order_query(&order_query(by_txn)).await.unwrap();
    assert_eq!(reply.order().unwrap().trade_no.as_str(), trade_no);

    let reply = client
        .order_query(&order_query(by_trade_no("NOSUCHORDER")))
        .await
        .unwrap();
    assert_eq!(reply.ret_code, RetCode::Fail);
    assert_eq!(reply.ret_msg.as_deref(), Some("order not found"));
    assert_eq!(sim.calls("orderquery"), 3);
    assert_eq!(sim.calls("refund"), 0);
}

#[tokio::test]
async fn refund_processing_then_success_via_refundquery() {
    let sim = Simulator::spawn(config()).await;
    let client = client(&sim, true);
    let trade_no = id("ORD");
    let txn = sim.pay_silently(&trade_no, 990).await;
    let refund_no = id("RF");

    let accepted = client
        .refund(&refund(&trade_no, &refund_no, 990, 400))
        .await
        .unwrap()
        .refund()
        .unwrap();
    assert_eq!(accepted.refund_trade_no.as_str(), refund_no);
    assert_eq!(accepted.transaction_id.as_str(), txn);
    assert_eq!(accepted.refund_amt.get(), 400);
    assert_eq!(sim.refund_calls(), 1);

    let queried = client
        .refund_query(&refund_query(&refund_no))
        .await
        .unwrap()
        .refund()
        .unwrap();
    assert_eq!(queried.refund_status, RefundStatus::Processing);
    assert_eq!(queried.refund_status_desc.as_deref(), Some("退款中"));
    assert_eq!(
        sim.refund_state(&refund_no).unwrap().status,
        RefundStatus::Processing
    );

    assert_eq!(
        final_status(&client, &refund_no).await,
        RefundStatus::Success
    );
    let by_serial = RefundQueryRequest::new(
        skill(),
        RefundRef::RefundTransactionId(accepted.refund_transaction_id.clone()),
        nonce(),
    );
    let queried = client
        .refund_query(&by_serial)
        .await
        .unwrap()
        .refund()
        .unwrap();
    assert_eq!(queried.refund_status, RefundStatus::Success);
    assert_eq!(queried.refund_status_desc.as_deref(), Some("退款成功"));
    assert_eq!(queried.refund_trade_no.as_str(), refund_no);

    let state = sim.refund_state(&refund_no).unwrap();
    assert_eq!(state.status, RefundStatus::Success);
    assert_eq!((state.total_amt, state.refund_amt), (990, 400));
    assert_eq!(
        state.refund_transaction_id,
        accepted.refund_transaction_id.as_str()
    );

    let unknown = client
        .refund_query(&refund_query("NOSUCHREFUND"))
        .await
        .unwrap();
    assert_eq!(unknown.ret_code, RetCode::Fail);
    assert_eq!(unknown.ret_msg.as_deref(), Some("refund not found"));
    let unknown_serial = RefundQueryRequest::new(
        skill(),
        RefundRef::RefundTransactionId(RefundTransactionId::parse("RFX").unwrap()),
        nonce(),
    );
    let unknown = client.refund_query(&unknown_serial).await.unwrap();
    assert_eq!(unknown.ret_msg.as_deref(), Some("refund not found"));
}

#[tokio::test]
async fn failed_refund_releases_its_amount() {
    let mut cfg = config();
    cfg.refund_outcome = RefundOutcome::Fail;
    let sim = Simulator::spawn(cfg).await;
    let client = client(&sim, true);
    let trade_no = id("ORD");
    sim.pay_silently(&trade_no, 990).await;
    let first = id("RF");
    client
        .refund(&refund(&trade_no, &first, 990, 990))
        .await
        .unwrap()
        .refund()
        .unwrap();
    let busy = client
        .refund(&refund(&trade_no, &id("RF"), 990, 1))
        .await
        .unwrap();
    assert_eq!(busy.ret_msg.as_deref(), Some("refund exceeds order"));
    assert_eq!(final_status(&client, &first).await, RefundStatus::Fail);
    let again = client
        .refund(&refund(&trade_no, &id("RF"), 990, 990))
        .await
        .unwrap();
    assert_eq!(again.ret_code, RetCode::Success);
}

#[tokio::test]
async fn refund_is_idempotent_by_refund_trade_no() {
    let sim = Simulator::spawn(config()).await;
    let client = client(&sim, true);
    let trade_no = id("ORD");
    sim.pay_silently(&trade_no, 990).await;
    let refund_no = id("RF");
    let first = client
        .refund(&refund(&trade_no, &refund_no, 990, 500))
        .await
        .unwrap()
        .refund()
        .unwrap();
    let second = client
        .refund(&refund(&trade_no, &refund_no, 990, 500))
        .await
        .unwrap()
        .refund()
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(sim.refund_calls(), 2);
    // Only one refund holds the amount: 490 more still fit.
    let other = client
        .refund(&refund(&trade_no, &id("RF"), 990, 490))
        .await
        .unwrap();
    assert_eq!(other.ret_code, RetCode::Success);

    let changed = client
        .refund(&refund(&trade_no, &refund_no, 990, 400))
        .await
        .unwrap();
    assert_eq!(changed.ret_code, RetCode::Fail);
    assert_eq!(
        changed.ret_msg.as_deref(),
        Some("refundTradeNo already used")
    );
    assert_eq!(sim.refund_state(&refund_no).unwrap().refund_amt, 500);
}

#[tokio::test]
async fn over_refund_and_wrong_orders_refused() {
    let sim = Simulator::spawn(config()).await;
    let client = client(&sim, true);
    let trade_no = id("ORD");
    sim.pay_silently(&trade_no, 990).await;
    let ok = client
        .refund(&refund(&trade_no, &id("RF"), 990, 600))
        .await
        .unwrap();
    assert_eq!(ok.ret_code, RetCode::Success);
    let over_no = id("RF");
    let over = client
        .refund(&refund(&trade_no, &over_no, 990, 391))
        .await
        .unwrap();
    assert_eq!(over.ret_code, RetCode::Fail);
    assert_eq!(over.ret_msg.as_deref(), Some("refund exceeds order"));
    assert_eq!(sim.refund_state(&over_no), None);
    let exact = client
        .refund(&refund(&trade_no, &id("RF"), 990, 390))
        .await
        .unwrap();
    assert_eq!(exact.ret_code, RetCode::Success);

    let wrong_total = client
        .refund(&refund(&trade_no, &id("RF"), 1000, 1))
        .await
        .unwrap();
    assert_eq!(
        wrong_total.ret_msg.as_deref(),
        Some("totalAmt does not match order")
    );
    let unknown = client
        .refund(&refund("NOSUCHORDER", &id("RF"), 990, 1))
        .await
        .unwrap();
    assert_eq!(unknown.ret_msg.as_deref(), Some("order not found"));
}

#[tokio::test]
async fn failing_refunds_record_nothing() {
    let sim = Simulator::spawn(config()).await;
    let client = client(&sim, true);
    let trade_no = id("ORD");
    sim.pay_silently(&trade_no, 990).await;
    sim.fail_next_refunds(1);
    let refund_no = id("RF");
    let reply = client
        .refund(&refund(&trade_no, &refund_no, 990, 990))
        .await
        .unwrap();
    assert_eq!(reply.ret_code, RetCode::Fail);
    assert_eq!(reply.ret_msg.as_deref(), Some("insufficient balance"));
    assert_eq!(sim.refund_state(&refund_no), None);
    assert_eq!(sim.refund_calls(), 1);
    let reply = client
        .refund(&refund(&trade_no, &refund_no, 990, 990))
        .await
        .unwrap();
    assert_eq!(reply.ret_code, RetCode::Success);
}

#[tokio::test]
async fn hung_refund_times_out_and_is_found_later() {
    let sim = Simulator::spawn(config()).await;
    let client = client(&sim, true).with_timeout(Duration::from_millis(300));
    let trade_no = id("ORD");
    sim.pay_silently(&trade_no, 990).await;
    sim.hang_next_refunds(1, Duration::from_secs(1));
    let refund_no = id("RF");
    let started = Instant::now();
    let result = client
        .refund(&refund(&trade_no, &refund_no, 990, 990))
        .await;
    assert!(matches!(result, Err(PlatformError::Timeout)), "{result:?}");
    assert!(started.elapsed() < Duration::from_millis(900));
    assert_eq!(sim.refund_calls(), 1);
    let queried = client
        .refund_query(&refund_query(&refund_no))
        .await
        .unwrap()
        .refund()
        .unwrap();
    assert_eq!(queried.refund_trade_no.as_str(), refund_no);
    assert_eq!(queried.refund_amt.get(), 990);
    // The hang was for one call only.
    let again = client
        .refund(&refund(&trade_no, &refund_no, 990, 990))
        .await
        .unwrap();
    assert_eq!(again.refund().unwrap().refund_trade_no.as_str(), refund_no);
}

#[tokio::test]
async fn unsigned_replies_refused_only_when_required() {
    let sim = Simulator::spawn(config()).await;
    let trade_no = id("ORD");
    sim.pay_silently(&trade_no, 990).await;
    sim.set_sign_replies(false);
    let request = order_query(by_trade_no(&trade_no));
    assert_eq!(
        bad_reply(client(&sim, true).order_query(&request).await),
        "unsigned reply"
    );
    let reply = client(&sim, false).order_query(&request).await.unwrap();
    assert_eq!(reply.ret_code, RetCode::Success);
    sim.set_sign_replies(true);
    assert!(client(&sim, true).order_query(&request).await.is_ok());

    let mut cfg = config();
    cfg.sign_replies = false;
    let unsigned = Simulator::spawn(cfg).await;
    assert_eq!(
        bad_reply(
            client(&unsigned, true)
                .refund_query(&refund_query("R1"))
                .await
        ),
        "unsigned reply"
    );
}

#[tokio::test]
async fn badly_signed_replies_refused() {
    let sim = Simulator::spawn(config()).await;
    let trade_no = id("ORD");
    sim.pay_silently(&trade_no, 990).await;
    sim.set_bad_reply_signatures(true);
    for require in [true, false] {
        let c = client(&sim, require);
        let msg = bad_reply(c.order_query(&order_query(by_trade_no(&trade_no))).await);
        assert_eq!(msg, "reply signature: bad signature");
        bad_reply(c.refund(&refund(&trade_no, &id("RF"), 990, 1)).await);
        bad_reply(c.refund_query(&refund_query("R1")).await);
    }
    sim.set_bad_reply_signatures(false);
    assert!(client(&sim, true)
        .order_query(&order_query(by_trade_no(&trade_no)))
        .await
        .is_ok());
}

#[tokio::test]
async fn badly_signed_requests_get_401() {
    let sim = Simulator::spawn(config()).await;
    let trade_no = id("ORD");
    sim.pay_silently(&trade_no, 990).await;
    let wrong = PlatformClient::new(
        http_client(),
        sim.api_base(),
        Arc::new(hmac_keys("not-the-secret")),
        Revision::R2018,
        true,
    );
    let result = wrong.refund(&refund(&trade_no, &id("RF"), 990, 990)).await;
    assert!(
        matches!(result, Err(PlatformError::Status(401))),
        "{result:?}"
    );
    assert_eq!(sim.refund_calls(), 0);

    let body = br#"{"domainId":"skill-123","tradeNo":"X","nonceStr":"n"}"#;
    let url = format!("{}/orderquery", sim.api_base());
    let (status, _, reply) = raw_post(&url, &hmac_keys("not-the-secret"), body).await;
    assert_eq!(status, 401);
    assert_eq!(reply, json!({"retCode": "FAIL", "retMsg": "bad signature"}));
    let unsigned = reqwest::Client::new()
        .post(&url)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    // A stale Datetime is refused as well.
    let keys = hmac_keys(SECRET);
    let old = keys
        .sign(
            body,
            OffsetDateTime::now_utc() - time::Duration::minutes(10),
        )
        .to_string();
    let stale = reqwest::Client::new()
        .post(&url)
        .header("authorization", old)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status().as_u16(), 401);
    assert_eq!(sim.calls("orderquery"), 0);
}

#[tokio::test]
async fn replies_follow_the_request_revision() {
    let sim = Simulator::spawn(config()).await;
    let trade_no = id("ORD");
    let txn = sim.pay_silently(&trade_no, 990).await;
    let keys = hmac_keys(SECRET);
    let url = format!("{}/orderquery", sim.api_base());

    let body = format!(r#"{{"domainId":"{SKILL}","tradeNo":"{trade_no}","nonceStr":"n1"}}"#);
    let (status, header, reply) = raw_post(&url, &keys, body.as_bytes()).await;
    assert_eq!(status, 200);
    assert!(header.is_some());
    assert_eq!(reply["domainId"], SKILL);
    assert!(reply.get("skillId").is_none());
    assert_eq!(reply["transactionId"], txn.as_str());

    let body = format!(
        r#"{{"skillId":"{SKILL}","transactionId":"{txn}","nonceStr":"n2","version":"1.0","extra":1}}"#
    );
    let (_, _, reply) = raw_post(&url, &keys, body.as_bytes()).await;
    assert_eq!(reply["skillId"], SKILL);
    assert!(reply.get("domainId").is_none());
    assert_eq!(reply["tradeStatus"], "SUCCESS");

    let client_2019 = PlatformClient::new(
        http_client(),
        sim.api_base(),
        Arc::new(keys.clone()),
        Revision::R2019,
        true,
    );
    let reply = client_2019
        .order_query(&order_query(by_trade_no(&trade_no)))
        .await
        .unwrap();
    assert_eq!(reply.order().unwrap().total_amt.get(), 990);
}

#[tokio::test]
async fn bad_bodies_and_unknown_skills() {
    let sim = Simulator::spawn(config()).await;
    let keys = hmac_keys(SECRET);
    let url = format!("{}/refund", sim.api_base());
    let (status, _, reply) = raw_post(&url, &keys, b"{not json").await;
    assert_eq!(status, 400);
    assert_eq!(reply["retCode"], "FAIL");
    let body = br#"{"skillId":"skill-123","tradeNo":"O1","refundTradeNo":"R1","totalAmt":10,"refundAmt":11,"nonceStr":"n"}"#;
    let (status, _, reply) = raw_post(&url, &keys, body).await;
    assert_eq!(status, 400);
    assert_eq!(reply["retCode"], "FAIL");
    assert!(reply["retMsg"]
        .as_str()
        .unwrap()
        .starts_with("invalid field refundAmt"));

    let other = RefundQueryRequest::new(
        SkillId::parse("other-skill").unwrap(),
        RefundRef::RefundTradeNo(RefundTradeNo::parse("R1").unwrap()),
        nonce(),
    );
    let reply = client(&sim, true).refund_query(&other).await.unwrap();
    assert_eq!(reply.ret_code, RetCode::Fail);
    assert_eq!(reply.ret_msg.as_deref(), Some("unknown skill"));
    assert_eq!(sim.refund_calls(), 2);
    assert_eq!(sim.calls("refundquery"), 1);
    assert_eq!(sim.calls("nonsense"), 0);
}

#[tokio::test]
async fn transport_failures_and_http_errors() {
    // Nothing listens on a port just released.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let base = format!("http://{addr}/paycgi");
    let dead = PlatformClient::new(
        http_client(),
        base,
        Arc::new(hmac_keys(SECRET)),
        Revision::R2018,
        true,
    );
    match dead.refund_query(&refund_query("R1")).await {
        Err(PlatformError::Transport(msg)) => {
            assert!(!msg.contains("/paycgi"), "{msg}");
            assert!(!msg.contains(&addr.to_string()), "{msg}");
        }
        other => panic!("expected Transport, got {other:?}"),
    }

    let sim = Simulator::spawn(config()).await;
    let wrong_path = PlatformClient::new(
        http_client(),
        format!("http://{}/elsewhere", sim.addr()),
        Arc::new(hmac_keys(SECRET)),
        Revision::R2018,
        true,
    );
    let result = wrong_path.refund_query(&refund_query("R1")).await;
    assert!(
        matches!(result, Err(PlatformError::Status(404))),
        "{result:?}"
    );
}

#[tokio::test]
async fn pay_sends_a_signed_ship_notification() {
    let (receiver, url) = Receiver::spawn(
        hmac_keys(SECRET),
        vec![(200, json!({"retCode": "SUCCESS"}))],
    )
    .await;
    let mut cfg = config();
    cfg.ship_notify_url = Some(url);
    let sim = Simulator::spawn(cfg).await;
    let trade_no = id("ORD");
    let txn = sim.pay(&trade_no, 990).await;
    assert_eq!(
        sim.last_ship_reply(),
        Some(Ok((200, json!({"retCode": "SUCCESS"}))))
    );
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].0, "signature verifies");
    let raw: Value = serde_json::from_slice(&seen[0].1).unwrap();
    assert_eq!(raw["domainId"], SKILL);
    let notify: ShipNotify = dingdang::protocol::parse(&seen[0].1).unwrap();
    assert_eq!(notify.transaction_id.as_str(), txn);
    assert_eq!(notify.trade_no.as_str(), trade_no);
    assert_eq!(notify.total_amt.get(), 990);

    // A silent payment sends nothing; a resend carries a fresh nonce.
    let silent = sim.pay_silently(&id("ORD"), 100).await;
    assert_eq!(receiver.seen().len(), 1);
    let resent = sim.send_ship_notify(&txn).await.unwrap();
    assert_eq!(resent.0, 200);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2);
    let again: ShipNotify = dingdang::protocol::parse(&seen[1].1).unwrap();
    assert_eq!(again.transaction_id, notify.transaction_id);
    assert_ne!(again.nonce_str, notify.nonce_str);
    assert!(sim.send_ship_notify(&silent).await.is_ok());
    assert!(sim.send_ship_notify("NOSUCHTXN").await.is_err());
    // Paying the same order again returns the same serial.
    assert_eq!(sim.pay(&trade_no, 990).await, txn);
}

#[tokio::test]
async fn refund_result_notification_is_retried_until_success() {
    let (receiver, url) = Receiver::spawn(
        hmac_keys(SECRET),
        vec![
            (500, json!({"retCode": "FAIL", "retMsg": "busy"})),
            (200, json!({"retCode": "FAIL", "retMsg": "later"})),
        ],
    )
    .await;
    let mut cfg = config();
    cfg.refund_delay = Duration::from_millis(100);
    cfg.refund_notify_url = Some(url);
    let sim = Simulator::spawn(cfg).await;
    let client = client(&sim, true);
    let trade_no = id("ORD");
    sim.pay_silently(&trade_no, 990).await;
    let refund_no = id("RF");
    client
        .refund(&refund(&trade_no, &refund_no, 990, 300))
        .await
        .unwrap()
        .refund()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    while receiver.seen().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let seen = receiver.seen();
    assert_eq!(seen.len(), 3, "two failures, then delivered");
    assert!(seen.iter().all(|(verified, _)| *verified));
    let notify: RefundNotify = dingdang::protocol::parse(&seen[2].1).unwrap();
    assert_eq!(notify.refund_trade_no.as_str(), refund_no);
    assert_eq!(notify.refund_status, RefundStatus::Success);
    assert_eq!(notify.refund_amt.get(), 300);
    assert_eq!(notify.refund_status_desc.as_deref(), Some("退款成功"));
    assert_eq!(sim.refund_notify_replies().len(), 3);

    // A hand-sent notification does not change the refund.
    let (status, reply) = sim.send_refund_notify(&refund_no, "FAIL").await.unwrap();
    assert_eq!((status, reply["retCode"].as_str()), (200, Some("SUCCESS")));
    let sent: RefundNotify = dingdang::protocol::parse(&receiver.seen()[3].1).unwrap();
    assert_eq!(sent.refund_status, RefundStatus::Fail);
    assert_eq!(
        sim.refund_state(&refund_no).unwrap().status,
        RefundStatus::Success
    );
    assert!(sim.send_refund_notify("NOSUCH", "SUCCESS").await.is_err());
    assert!(sim.send_refund_notify(&refund_no, "DONE").await.is_err());
}

fn vector(name: &str) -> String {
    let path = format!(
        "{}/../../shared/tests/vectors/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn rsa2_both_ways() {
    let platform_private = signing::parse_private_key(&vector("platform_private_key.pem")).unwrap();
    let platform_public = signing::parse_public_keys(&vector("platform_public_key.pem")).unwrap();
    let skill_private = signing::parse_private_key(&vector("second_private_key.pem")).unwrap();
    let skill_public = signing::parse_public_keys(&vector("second_public_key.pem")).unwrap();
    let platform_keys = KeyRing {
        signer: Signer::rsa2(platform_private),
        verifier: Verifier::rsa2(skill_public),
        skew: KeyRing::DEFAULT_SKEW,
    };
    let skill_keys = KeyRing {
        signer: Signer::rsa2(skill_private),
        verifier: Verifier::rsa2(platform_public),
        skew: KeyRing::DEFAULT_SKEW,
    };
    let (receiver, url) = Receiver::spawn(skill_keys.clone(), vec![]).await;
    let mut cfg = SimConfig::new(SKILL, platform_keys);
    cfg.ship_notify_url = Some(url);
    let sim = Simulator::spawn(cfg).await;
    let client = PlatformClient::new(
        http_client(),
        sim.api_base(),
        Arc::new(skill_keys),
        Revision::R2019,
        true,
    );
    let trade_no = id("ORD");
    sim.pay(&trade_no, 990).await;
    let seen = receiver.seen();
    assert!(seen[0].0, "RSA2 ship notification verifies");
    let raw: Value = serde_json::from_slice(&seen[0].1).unwrap();
    assert_eq!(raw["skillId"], SKILL);

    let reply = client
        .order_query(&order_query(by_trade_no(&trade_no)))
        .await
        .unwrap();
    assert_eq!(reply.order().unwrap().trade_status, TradeStatus::Success);
    sim.set_bad_reply_signatures(true);
    let msg = bad_reply(client.refund_query(&refund_query("R1")).await);
    assert_eq!(msg, "reply signature: bad signature");
}

#[tokio::test]
async fn admin_endpoints_pay_by_hand() {
    let (receiver, url) = Receiver::spawn(hmac_keys(SECRET), vec![]).await;
    let mut cfg = config();
    cfg.ship_notify_url = Some(url);
    let sim = Simulator::spawn(cfg).await;
    let http = reqwest::Client::new();
    let paid: Value = http
        .post(format!("http://{}/admin/pay", sim.addr()))
        .json(&json!({"tradeNo": "ORDHAND1", "totalAmt": 990}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let txn = paid["transactionId"].as_str().unwrap();
    assert_eq!(paid["shipReply"]["status"], 200);
    assert_eq!(paid["shipReply"]["body"]["retCode"], "SUCCESS");
    assert_eq!(sim.order("ORDHAND1").unwrap().transaction_id, txn);
    assert_eq!(receiver.seen().len(), 1);

    let silent = http
        .post(format!("http://{}/admin/pay-silently", sim.addr()))
        .json(&json!({"tradeNo": "ORDHAND2", "totalAmt": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(silent.status().as_u16(), 200);
    assert_eq!(receiver.seen().len(), 1);
    assert!(sim.order("ORDHAND2").is_some());

    let bad = http
        .post(format!("http://{}/admin/pay", sim.addr()))
        .json(&json!({"tradeNo": "ORD-1", "totalAmt": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
}
