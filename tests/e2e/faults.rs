//! Injected faults: the store down, closed, or slow mid-request; the
//! fulfilment webhook failing or slow; the process killed after its claim.
//! Every fault is answered FAIL (or not at all, when the process dies),
//! leaves no partial state (an order is PAID exactly when its idempotency
//! record is COMPLETE; an unfinished claim is a whole IN_PROGRESS claim),
//! and the next delivery after the fault succeeds, fulfilling once.
//!
//! The store faults come from `dingdang_tests::proxy::Proxy` between the
//! handlers and the local DynamoDB server; the test reads the table
//! directly. Extension point: `state_of` and `deliver` are not specific to
//! ship notifications' endpoint, so refund and reconcile fault tests can
//! reuse the same pattern once those flows exist.

use std::time::{Duration, Instant};

use dingdang::http::notify::Answer;
use dingdang_tests::proxy::Proxy;
use dingdang_tests::{
    dynamo_endpoint, id, ship_body, spawn_app, spawn_app_via, App, Settings, StoredItem, Webhook,
};
use time::OffsetDateTime;

/// What the table says about one transaction and its order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Nothing about the transaction; the order unpaid and unclaimed.
    Untouched,
    /// A whole IN_PROGRESS claim: record, order claim, nonce.
    Claimed,
    /// PAID by the transaction, with its COMPLETE record.
    Paid,
}

fn text(item: &StoredItem, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

/// Reads the state, panicking on any partial one.
async fn state_of(app: &App, txn: &str, trade: &str) -> State {
    let items = dingdang_tests::all_items(&app.store).await;
    let find = |pk: String| items.iter().find(|i| text(i, "pk") == Some(pk.clone()));
    let order = find(format!("ORDER#{trade}")).expect("the order exists");
    let record = find(format!("TXN#{txn}"));
    let status = text(order, "status");
    let claim = text(order, "claimTxn");
    let paid_by = text(order, "transactionId");
    match record.and_then(|r| text(r, "status")).as_deref() {
        None => {
            assert_eq!(status.as_deref(), Some("CREATED"), "{order:?}");
            assert_eq!(paid_by, None, "paid without a record: {order:?}");
            assert_eq!(claim, None, "claimed without a record: {order:?}");
            State::Untouched
        }
        Some("IN_PROGRESS") => {
            assert_eq!(status.as_deref(), Some("CREATED"), "{order:?}");
            assert_eq!(
                claim.as_deref(),
                Some(txn),
                "a record without the order claim"
            );
            State::Claimed
        }
        Some("COMPLETE") => {
            assert_eq!(
                status.as_deref(),
                Some("PAID"),
                "complete but unpaid: {order:?}"
            );
            assert_eq!(paid_by.as_deref(), Some(txn));
            assert_eq!(claim, None, "a claim left on a paid order: {order:?}");
            State::Paid
        }
        other => panic!("unknown record status {other:?}"),
    }
}

/// Calls the handler function with an explicit Lambda deadline.
async fn deliver(app: &App, body: &[u8], deadline_secs: i64) -> Answer {
    let authorization = dingdang_tests::sign(&app.keys, body);
    let now = OffsetDateTime::now_utc();
    app.ship
        .notify(
            Some(&authorization),
            body,
            now,
            now.unix_timestamp() + deadline_secs,
        )
        .await
}

fn is_fail(answer: &Answer) -> bool {
    answer.reply.ret_code == dingdang::protocol::RetCode::Fail
        && answer
            .reply
            .ret_msg
            .as_deref()
            .is_some_and(|m| !m.is_empty() && m.len() <= 32)
}

fn is_success(answer: &Answer) -> bool {
    answer.reply.ret_code == dingdang::protocol::RetCode::Success
}

/// An address nobody listens on.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// A fresh order of `amount` and a notification body for it.
async fn order(app: &App, amount: i64) -> (String, String, Vec<u8>) {
    let (txn, trade) = (id("T"), id("ORD"));
    app.create_order(&trade, amount).await;
    let body = ship_body(&txn, &trade, amount, &id("N"));
    (txn, trade, body)
}

#[tokio::test]
async fn a_store_that_is_down_gets_fail_and_no_write_then_the_retry_succeeds() {
    let proxy = Proxy::start(dynamo_endpoint()).await;
    let app = spawn_app_via(Settings::hmac(), Some(&proxy.url())).await;
    let (txn, trade, body) = order(&app, 990).await;
    let before = dingdang_tests::all_items(&app.store).await;

    proxy.set_down(true);
    proxy.reset();
    let started = Instant::now();
    let answer = app.ship(body.clone()).await;
    let took = started.elapsed();
    eprintln!(
        "store down: answered {} in {took:?} after {} attempts",
        answer.status,
        proxy.requests()
    );
    assert!(answer.status >= 500, "{answer:?}");
    assert_eq!(answer.ret_code(), "FAIL");
    assert!(answer.authorization.is_some(), "a FAIL reply is signed too");
    assert!(proxy.requests() >= 1);
    assert!(
        took < Duration::from_secs(8),
        "a down store is answered in {took:?}"
    );
    assert_eq!(dingdang_tests::all_items(&app.store).await, before);
    assert_eq!(state_of(&app, &txn, &trade).await, State::Untouched);

    // The platform retries the very same body once the store is back.
    proxy.set_down(false);
    assert_eq!(app.ship(body.clone()).await.ret_code(), "SUCCESS");
    assert_eq!(state_of(&app, &txn, &trade).await, State::Paid);
    assert_eq!(app.ship(body).await.ret_code(), "SUCCESS");
}

#[tokio::test]
async fn a_closed_store_port_gets_fail_quickly_and_writes_nothing() {
    let app = spawn_app_via(Settings::hmac(), Some(&closed_port())).await;
    // The orders API cannot reach the store either: the notification names
    // an order the table does not have, which the claim finds out only
    // from the store.
    let body = ship_body(&id("T"), &id("ORD"), 500, &id("N"));
    let before = dingdang_tests::all_items(&app.store).await;
    let started = Instant::now();
    let answer = app.ship(body).await;
    let took = started.elapsed();
    eprintln!("closed port: answered {} in {took:?}", answer.status);
    assert!(answer.status >= 500, "{answer:?}");
    assert_eq!(answer.ret_code(), "FAIL");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_eq!(dingdang_tests::all_items(&app.store).await, before);
}

#[tokio::test]
async fn a_slow_store_is_all_or_nothing_when_the_invocation_is_cut_off() {
    let proxy = Proxy::start(dynamo_endpoint()).await;
    let app = spawn_app_via(Settings::hmac(), Some(&proxy.url())).await;
    let (txn, trade, body) = order(&app, 700).await;

    // Each store call now takes 1.5 s: the invocation is stopped after
    // 0.5 s, mid-request (the Lambda runtime's deadline, as a dropped
    // future). The platform sees no answer: a failure it retries.
    proxy.set_delay(Duration::from_millis(1500));
    let cut = tokio::time::timeout(Duration::from_millis(500), deliver(&app, &body, 10)).await;
    assert!(cut.is_err(), "the invocation was cut off");
    // Whatever the store got, it got all of it or none of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after_cut = state_of(&app, &txn, &trade).await;
    assert!(
        matches!(after_cut, State::Untouched | State::Paid),
        "{after_cut:?}"
    );

    // Slow but within the deadline: SUCCESS, one round trip for the claim.
    proxy.set_delay(Duration::from_millis(300));
    proxy.reset();
    let answer = deliver(&app, &body, 10).await;
    assert!(is_success(&answer), "{answer:?}");
    assert_eq!(
        proxy.by_operation().get("TransactWriteItems").copied(),
        Some(1),
        "{:?}",
        proxy.by_operation()
    );
    proxy.set_delay(Duration::ZERO);
    assert_eq!(state_of(&app, &txn, &trade).await, State::Paid);
    let again = deliver(&app, &body, 10).await;
    assert_eq!(again.outcome, "duplicate");
}

#[tokio::test]
async fn the_store_down_between_claim_and_completion_leaves_a_whole_claim_that_expires() {
    let webhook = Webhook::start().await;
    webhook.set_delay(Duration::from_millis(700));
    let proxy = Proxy::start(dynamo_endpoint()).await;
    let settings = Settings::hmac().with("FULFILLMENT_URL", webhook.url());
    let app = spawn_app_via(settings, Some(&proxy.url())).await;
    let (txn, trade, body) = order(&app, 300).await;

    // The claim goes through; the store drops while the webhook runs, so
    // neither the completion nor the release can be written.
    let deadline = 5;
    let started = tokio::time::Instant::now();
    let first = deliver(&app, &body, deadline);
    let outage = async {
        // The claim is written once the webhook is called.
        while webhook.received() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        proxy.set_down(true);
    };
    let (answer, ()) = tokio::join!(first, outage);
    assert!(answer.status.is_server_error(), "{answer:?}");
    assert!(is_fail(&answer), "{answer:?}");
    assert_eq!(webhook.calls(), 1);
    proxy.set_down(false);
    assert_eq!(state_of(&app, &txn, &trade).await, State::Claimed);

    // Until the claim's deadline a delivery is told to retry...
    let early = deliver(&app, &body, 10).await;
    assert_eq!(early.outcome, "in_progress", "{early:?}");
    assert_eq!(state_of(&app, &txn, &trade).await, State::Claimed);
    // ...after it, the next delivery calls the webhook again (at least
    // once, same Idempotency-Key) and completes.
    webhook.set_delay(Duration::ZERO);
    tokio::time::sleep_until(started + Duration::from_millis(6100)).await;
    let late = deliver(&app, &body, 10).await;
    assert_eq!(late.outcome, "fulfilled", "{late:?}");
    assert_eq!(state_of(&app, &txn, &trade).await, State::Paid);
    assert_eq!(deliver(&app, &body, 10).await.outcome, "duplicate");
    let keys: Vec<Option<String>> = webhook.requests().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![Some(txn.clone()); 2]);
}

#[tokio::test]
async fn a_failing_webhook_gets_fail_and_a_later_retry_fulfils_once() {
    let webhook = Webhook::start().await;
    let app = spawn_app(Settings::hmac().with("FULFILLMENT_URL", webhook.url())).await;
    let (txn, trade, body) = order(&app, 400).await;

    webhook.set_failing(true);
    for _ in 0..3 {
        let answer = deliver(&app, &body, 10).await;
        assert_eq!(answer.outcome, "fulfilment_failed", "{answer:?}");
        assert!(is_fail(&answer));
        assert_eq!(answer.status.as_u16(), 200);
        assert_eq!(state_of(&app, &txn, &trade).await, State::Untouched);
    }
    webhook.set_failing(false);
    assert_eq!(deliver(&app, &body, 10).await.outcome, "fulfilled");
    assert_eq!(deliver(&app, &body, 10).await.outcome, "duplicate");
    assert_eq!(webhook.calls(), 1);
    assert_eq!(state_of(&app, &txn, &trade).await, State::Paid);
}

#[tokio::test]
async fn a_webhook_slower_than_the_deadline_gets_fail_and_a_later_retry_fulfils_once() {
    let webhook = Webhook::start().await;
    let app = spawn_app(Settings::hmac().with("FULFILLMENT_URL", webhook.url())).await;
    let (txn, trade, body) = order(&app, 600).await;

    // With 2 s left the webhook gets a 1 s budget; it takes 2.5 s.
    webhook.set_delay(Duration::from_millis(2500));
    let started = Instant::now();
    let answer = deliver(&app, &body, 2).await;
    assert!(started.elapsed() < Duration::from_millis(2000));
    assert_eq!(answer.outcome, "fulfilment_failed", "{answer:?}");
    assert!(is_fail(&answer));
    // The claim was released: nothing is left behind.
    assert_eq!(state_of(&app, &txn, &trade).await, State::Untouched);

    webhook.set_delay(Duration::ZERO);
    assert_eq!(deliver(&app, &body, 10).await.outcome, "fulfilled");
    assert_eq!(deliver(&app, &body, 10).await.outcome, "duplicate");
    assert_eq!(state_of(&app, &txn, &trade).await, State::Paid);
    // The slow call may have been received too (at least once): every call
    // carried the transaction as its Idempotency-Key.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let keys: Vec<Option<String>> = webhook.requests().into_iter().map(|(k, _)| k).collect();
    assert!(!keys.is_empty() && keys.len() <= 2, "{keys:?}");
    assert!(keys.iter().all(|k| k.as_deref() == Some(txn.as_str())));
}

#[tokio::test]
async fn a_process_killed_mid_webhook_is_recovered_after_the_deadline() {
    let webhook = Webhook::start().await;
    let app = spawn_app(Settings::hmac().with("FULFILLMENT_URL", webhook.url())).await;
    let (txn, trade, body) = order(&app, 800).await;

    // The invocation (deadline in 2 s) is killed 0.6 s in, while the
    // webhook, which takes 5 s, is being called: the handler future is
    // dropped, as when the runtime stops the process.
    webhook.set_delay(Duration::from_secs(5));
    let killed = tokio::time::timeout(Duration::from_millis(600), deliver(&app, &body, 2)).await;
    assert!(killed.is_err(), "the handler was stopped mid-webhook");
    assert_eq!(state_of(&app, &txn, &trade).await, State::Claimed);

    // A redelivery before the deadline: FAIL, retry later.
    webhook.set_delay(Duration::ZERO);
    let early = deliver(&app, &body, 10).await;
    assert_eq!(early.outcome, "in_progress");
    assert!(is_fail(&early));

    // After it, the next delivery fulfils, once.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(deliver(&app, &body, 10).await.outcome, "fulfilled");
    assert_eq!(deliver(&app, &body, 10).await.outcome, "duplicate");
    assert_eq!(state_of(&app, &txn, &trade).await, State::Paid);
    let completed: Vec<Option<String>> = webhook.requests().into_iter().map(|(k, _)| k).collect();
    assert_eq!(completed, vec![Some(txn.clone())]);
}
