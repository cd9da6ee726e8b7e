//! Duplicate storms: many transactions, each delivered as several
//! concurrent copies, fulfil exactly once each, and every copy is answered
//! SUCCESS at the latest after a few retries (a copy answered FAIL "in
//! progress" is retried as the platform would, with a short backoff).
//!
//! Extension point: `storm` takes any "deliver one copy" closure, so the
//! refund-notification storm can reuse it once that endpoint exists.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use dingdang_tests::{id, ship_body, spawn_app, App, Settings, Webhook};
use futures::StreamExt;
use time::OffsetDateTime;

const TRANSACTIONS: usize = 200;
const COPIES: usize = 10;
/// Transactions stormed at once (each with all its copies in flight).
const PARALLEL_TRANSACTIONS: usize = 8;
/// Deliveries of one copy at most (first try + retries).
const MAX_ATTEMPTS: u32 = 40;
const IN_PROGRESS: &str = "in progress, retry later";
const AMOUNT: i64 = 1990;

/// What one copy was answered, try after try, until SUCCESS.
#[derive(Debug, Default)]
struct CopyLog {
    /// The outcome code (or the retMsg over HTTP) of each try.
    tries: Vec<String>,
}

/// A storm takes well under a minute against scripts/moto_server.py; a
/// server without its constant-cost transactions (an older moto_server.py
/// still running) takes many minutes and gigabytes: fail clearly instead.
const STORM_LIMIT: Duration = Duration::from_secs(240);

/// Delivers `copies` of each of `orders` concurrently, `parallel`
/// transactions at a time; `deliver(order, copy)` answers
/// `(success, what)` for one try. Retries what is in progress.
async fn storm<D, F>(orders: &[(String, String)], parallel: usize, deliver: D) -> Vec<CopyLog>
where
    D: Fn(usize, usize) -> F + Copy,
    F: Future<Output = (bool, String)>,
{
    let storm = futures::stream::iter(0..orders.len())
        .map(|order| async move {
            let copies = (0..COPIES).map(|copy| async move {
                let mut log = CopyLog::default();
                for attempt in 1..=MAX_ATTEMPTS {
                    let (success, what) = deliver(order, copy).await;
                    log.tries.push(what.clone());
                    if success {
                        return log;
                    }
                    assert!(
                        what == IN_PROGRESS || what == "in_progress",
                        "copy {copy} of order {order} refused for another reason: {what}"
                    );
                    // Backoff: 10, 20, 40, 80 ms, then 100 ms with jitter.
                    let base = (10u64 << attempt.min(4)).min(100);
                    let jitter = rand::random::<u64>() % 10;
                    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
                }
                panic!(
                    "copy {copy} of order {order} not SUCCESS after {MAX_ATTEMPTS} tries: {log:?}"
                );
            });
            futures::future::join_all(copies).await
        })
        .buffer_unordered(parallel)
        .flat_map(futures::stream::iter)
        .collect();
    tokio::time::timeout(STORM_LIMIT, storm)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the storm took over {STORM_LIMIT:?}: is the DynamoDB server a current \
             scripts/moto_server.py (restart an older one)?"
            )
        })
}

/// `TRANSACTIONS` orders registered through the API: (transactionId, tradeNo).
async fn orders(app: &App) -> Vec<(String, String)> {
    let orders: Vec<(String, String)> = (0..TRANSACTIONS).map(|_| (id("T"), id("ORD"))).collect();
    futures::stream::iter(&orders)
        .for_each_concurrent(16, |(_, trade)| app.create_order(trade, AMOUNT))
        .await;
    orders
}

/// The body of copy `copy`: even copies share one nonce per transaction
/// (a redelivery of the very same body), odd ones each have their own.
fn copy_body(txn: &str, trade: &str, copy: usize) -> Vec<u8> {
    let nonce = if copy % 2 == 0 {
        format!("N{txn}")
    } else {
        format!("N{copy}{txn}")
    };
    ship_body(txn, trade, AMOUNT, &nonce)
}

/// Every order is PAID by its own transaction, with one COMPLETE
/// idempotency record each, and nothing is left IN_PROGRESS.
async fn assert_all_paid_once(app: &App, orders: &[(String, String)]) {
    let items = dingdang_tests::all_items(&app.store).await;
    let text = |item: &dingdang_tests::StoredItem, name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let mut paid: HashMap<String, String> = HashMap::new();
    let mut records = 0;
    for item in &items {
        let pk = text(item, "pk");
        if let Some(trade) = pk.strip_prefix("ORDER#") {
            assert_eq!(text(item, "status"), "PAID", "{item:?}");
            assert!(
                !item.contains_key("claimTxn"),
                "a claim left behind: {item:?}"
            );
            paid.insert(trade.to_owned(), text(item, "transactionId"));
        } else if pk.starts_with("TXN#") {
            assert_eq!(text(item, "status"), "COMPLETE", "{item:?}");
            records += 1;
        }
    }
    assert_eq!(paid.len(), orders.len());
    assert_eq!(records, orders.len());
    for (txn, trade) in orders {
        assert_eq!(paid.get(trade), Some(txn), "order {trade}");
    }
}

fn summary(logs: &[CopyLog]) -> (usize, usize, usize) {
    let tries: usize = logs.iter().map(|l| l.tries.len()).sum();
    let retried = logs.iter().filter(|l| l.tries.len() > 1).count();
    let most = logs.iter().map(|l| l.tries.len()).max().unwrap_or(0);
    (tries, retried, most)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_copies_over_http_calls_the_webhook_once_per_transaction() {
    let webhook = Webhook::start().await;
    let app = spawn_app(Settings::hmac().with("FULFILLMENT_URL", webhook.url())).await;
    let orders = orders(&app).await;
    let started = Instant::now();

    let logs = storm(&orders, PARALLEL_TRANSACTIONS, |order, copy| {
        let (txn, trade) = &orders[order];
        let body = copy_body(txn, trade, copy);
        let app = &app;
        async move {
            let answer = app.ship(body).await;
            assert_eq!(answer.status, 200, "{:?}", answer);
            let reply = answer.json();
            match reply["retCode"].as_str() {
                Some("SUCCESS") => (true, "SUCCESS".to_owned()),
                _ => (false, reply["retMsg"].as_str().unwrap_or("").to_owned()),
            }
        }
    })
    .await;

    let (tries, retried, most) = summary(&logs);
    eprintln!(
        "storm over HTTP: {} copies, {tries} deliveries, {retried} retried, at most {most} tries, {:?}",
        logs.len(),
        started.elapsed()
    );
    assert_eq!(logs.len(), TRANSACTIONS * COPIES);
    assert_eq!(
        webhook.calls(),
        TRANSACTIONS,
        "one fulfilment per transaction"
    );
    // Each fulfilment carried its own payment's event id as the idempotency key.
    let mut keys: Vec<String> = webhook
        .requests()
        .into_iter()
        .map(|(key, _)| key.expect("an Idempotency-Key"))
        .collect();
    keys.sort();
    let mut expected: Vec<String> = orders
        .iter()
        .map(|(txn, _)| format!("payment.succeeded:{txn}"))
        .collect();
    expected.sort();
    assert_eq!(keys, expected);
    assert_all_paid_once(&app, &orders).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_copies_without_a_webhook_fulfils_once_per_transaction() {
    let app = spawn_app(Settings::hmac()).await;
    let orders = orders(&app).await;
    let started = Instant::now();

    // The handler function itself, as the Lambda runtime calls it, so that
    // each try's outcome code is seen.
    let logs = storm(&orders, PARALLEL_TRANSACTIONS, |order, copy| {
        let (txn, trade) = &orders[order];
        let body = copy_body(txn, trade, copy);
        let app = &app;
        async move {
            let authorization = dingdang_tests::sign(&app.keys, &body);
            let now = OffsetDateTime::now_utc();
            let answer = app.ship.notify(Some(&authorization), &body, now).await;
            assert_eq!(answer.status.as_u16(), 200, "{answer:?}");
            let success = answer.reply.ret_code == dingdang::protocol::RetCode::Success;
            (success, answer.outcome.to_owned())
        }
    })
    .await;

    let (tries, retried, most) = summary(&logs);
    eprintln!(
        "storm in process: {} copies, {tries} deliveries, {retried} retried, at most {most} tries, {:?}",
        logs.len(),
        started.elapsed()
    );
    assert_eq!(logs.len(), TRANSACTIONS * COPIES);
    let mut outcomes: HashMap<&str, usize> = HashMap::new();
    for log in &logs {
        for outcome in &log.tries {
            *outcomes.entry(outcome.as_str()).or_default() += 1;
        }
    }
    assert_eq!(
        outcomes.get("fulfilled").copied(),
        Some(TRANSACTIONS),
        "exactly one fulfilment per transaction: {outcomes:?}"
    );
    for outcome in outcomes.keys() {
        assert!(
            ["fulfilled", "duplicate", "in_progress"].contains(outcome),
            "unexpected outcome {outcome}: {outcomes:?}"
        );
    }
    // Each copy's last try is the SUCCESS (fulfilled or duplicate).
    for log in &logs {
        let last = log.tries.last().unwrap();
        assert!(last == "fulfilled" || last == "duplicate", "{log:?}");
    }
    assert_all_paid_once(&app, &orders).await;
}
