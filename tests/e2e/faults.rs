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
use dingdang_tests::{dynamo_endpoint, id, ship_body, spawn_app_via, App, Settings, StoredItem};
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

/// Calls the handler function directly.
async fn deliver(app: &App, body: &[u8]) -> Answer {
    let authorization = dingdang_tests::sign(&app.keys, body);
    app.ship
        .notify(Some(&authorization), body, OffsetDateTime::now_utc())
        .await
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
    let cut = tokio::time::timeout(Duration::from_millis(500), deliver(&app, &body)).await;
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
    let answer = deliver(&app, &body).await;
    assert!(is_success(&answer), "{answer:?}");
    assert_eq!(
        proxy.by_operation().get("TransactWriteItems").copied(),
        Some(1),
        "{:?}",
        proxy.by_operation()
    );
    proxy.set_delay(Duration::ZERO);
    assert_eq!(state_of(&app, &txn, &trade).await, State::Paid);
    let again = deliver(&app, &body).await;
    assert_eq!(again.outcome, "duplicate");
}
