//! Reconcile with a backlog: hundreds of abandoned orders and refunds the
//! platform keeps open do not hide the lost payments and the finished
//! refunds behind them; a sweep stops within its budget and the next one
//! continues; a claim lasts until the invocation's deadline.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use dingdang::domain::due::SweepClock;
use dingdang::domain::{Order, OrderStatus, OrderStore};
use dingdang::protocol::{Fen, TradeNo};
use dingdang_tests::{all_items, hmac_stack, id, reconciler, Settings, StoredItem};
use serde_json::json;
use simulator::RefundOutcome;

/// A sweep clock `offset` seconds ahead of now, with `budget` to spend.
fn clock(offset: i64, budget: Duration) -> SweepClock {
    SweepClock::until(SystemTime::now() + budget, Duration::ZERO).shifted(offset)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `n` unpaid orders registered `age` seconds ago, due since then.
async fn abandoned(
    store: &dingdang::store::DynamoStore,
    prefix: &str,
    n: usize,
    age: i64,
) -> Vec<String> {
    let created = now() - age;
    let mut trade_nos = Vec::new();
    for i in 0..n {
        let trade_no = format!("{prefix}{i:04}");
        let order = Order {
            trade_no: TradeNo::parse(&trade_no).unwrap(),
            total_amt: Fen::new(100).unwrap(),
            user_token: None,
            status: OrderStatus::Created,
            transaction_id: None,
            created_at: created,
            paid_at: None,
            refunded_amt: 0,
            next_check_at: Some(created + i64::try_from(i).unwrap() / 10),
            checks: 0,
            grant: None,
            refunds_succeeded_amt: 0,
        };
        assert!(store.insert_order(&order).await.unwrap().is_none());
        trade_nos.push(trade_no);
    }
    trade_nos
}

fn by_pk(items: Vec<StoredItem>) -> HashMap<String, StoredItem> {
    items
        .into_iter()
        .map(|i| (i["pk"].as_s().unwrap().clone(), i))
        .collect()
}

fn num(item: &StoredItem, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .map(|v| v.parse().unwrap())
        .unwrap_or_else(|| panic!("{name} missing in {item:?}"))
}

fn unbounded() -> Settings {
    Settings::hmac()
        .with("RECONCILE_MAX_CALLS_PER_SEC", "0")
        .with("RECONCILE_PAGE_SIZE", "10")
        .with("RECONCILE_CONCURRENCY", "16")
}

#[tokio::test]
async fn lost_payments_behind_600_abandoned_orders_are_found_within_three_sweeps() {
    let settings = unbounded();
    let stack = hmac_stack(settings.clone(), |_| {}).await;
    let store = &stack.app.store;
    let old = abandoned(store, &id("AB"), 600, 3600).await;
    // Registered after the abandoned ones, paid at the platform, never
    // notified.
    let mut lost = HashMap::new();
    for _ in 0..5 {
        let trade_no = id("LOST");
        stack.app.create_order(&trade_no, 700).await;
        lost.insert(stack.sim.pay_silently(&trade_no, 700).await, trade_no);
    }
    let sweep = reconciler(&stack, &settings);

    let mut fulfilled = 0;
    let mut second = (0, 0);
    for (round, offset) in [0, 61, 122].into_iter().enumerate() {
        let started = now();
        let summary = sweep
            .run_with(clock(offset, Duration::from_secs(120)))
            .await
            .unwrap();
        assert_eq!(summary.errors, 0, "{summary:?}");
        let expected = [605, 600, 0][round];
        assert_eq!(
            summary.orders_checked, expected,
            "sweep {round}: {summary:?}"
        );
        if round == 1 {
            second = (started + offset, now() + offset);
        }
        fulfilled += summary.orders_fulfilled;
    }
    assert_eq!(fulfilled, 5);
    for (txn, trade_no) in &lost {
        let (_, order) = stack.app.get(&format!("/orders/{trade_no}")).await;
        assert_eq!(
            (order["status"].as_str(), order["transactionId"].as_str()),
            (Some("PAID"), Some(txn.as_str()))
        );
    }
    // Each exactly once: a late notification grants nothing more.
    for txn in lost.keys() {
        let (_, reply) = stack.sim.send_ship_notify(txn).await.unwrap();
        assert_eq!(reply["retCode"], "SUCCESS");
    }
    let items = by_pk(all_items(store).await);
    let payments = items
        .values()
        .filter(|i| i["kind"].as_s().unwrap() == "PAYMENT")
        .count();
    assert_eq!(payments, 5);

    // The abandoned ones were asked about less often after each answer:
    // checked at +0 and +61 (a minute after the first answer), not at +122:
    // the second answer pushed them two minutes back.
    for trade_no in &old {
        let item = &items[&format!("ORDER#{trade_no}")];
        assert_eq!(item["status"].as_s().unwrap(), "CREATED");
        assert_eq!(num(item, "checks"), 2, "{item:?}");
        let next = num(item, "nextCheckAt");
        assert!(
            (second.0 + 120..=second.1 + 120).contains(&next),
            "{next} {second:?} {item:?}"
        );
    }
    // And the index holds them under several shards.
    let shards: std::collections::HashSet<_> = old
        .iter()
        .map(|t| {
            items[&format!("ORDER#{t}")]["gsi1pk"]
                .as_s()
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(shards.len(), 16, "{shards:?}");
}

#[tokio::test]
async fn refunds_finished_behind_300_open_ones_are_resolved_within_three_sweeps() {
    let settings = unbounded();
    // The platform keeps every refund PROCESSING until told otherwise.
    let stack = hmac_stack(settings.clone(), |sim| {
        sim.refund_delay = Duration::from_secs(3600);
        sim.refund_notify_url = None;
    })
    .await;
    let trade_no = id("ORD");
    stack.paid_order(&trade_no, 1_000_000).await;
    let mut open = Vec::new();
    let mut done = Vec::new();
    for i in 0..305 {
        let no = id("RF");
        let (status, refund) = stack
            .app
            .post_json(
                "/refunds",
                json!({"tradeNo": trade_no, "refundTradeNo": no, "refundAmt": 100}),
            )
            .await;
        assert_eq!(
            (status, refund["status"].as_str()),
            (201, Some("PROCESSING")),
            "{refund}"
        );
        if i < 300 {
            open.push(no);
        } else {
            done.push(no);
        }
    }
    // The last five are finished at the platform, without a notification.
    for no in &done {
        stack
            .sim
            .settle_refund(no, RefundOutcome::Success, false)
            .unwrap();
    }
    let sweep = reconciler(&stack, &settings);
    let mut resolved = 0;
    let mut offset = 0;
    for _ in 0..3 {
        let summary = sweep
            .run_with(clock(offset, Duration::from_secs(120)))
            .await
            .unwrap();
        assert_eq!(summary.errors, 0, "{summary:?}");
        resolved += summary.refunds_resolved;
        offset += 61;
    }
    assert_eq!(resolved, 5);
    for no in &done {
        stack.wait_refund(no, "SUCCESS").await;
    }
    let items = by_pk(all_items(&stack.app.store).await);
    for no in &open {
        let item = &items[&format!("REFUND#{no}")];
        assert_eq!(item["status"].as_s().unwrap(), "PROCESSING");
        assert_eq!(num(item, "checks"), 2, "{item:?}");
    }
}

#[tokio::test]
async fn a_sweep_out_of_budget_stops_in_time_and_the_next_one_continues() {
    // 40 platform calls a second: 300 orders take 7.5 s, the budget is 2 s.
    let settings = Settings::hmac()
        .with("RECONCILE_MAX_CALLS_PER_SEC", "40")
        .with("RECONCILE_PAGE_SIZE", "5");
    let stack = hmac_stack(settings.clone(), |_| {}).await;
    let orders = abandoned(&stack.app.store, &id("BU"), 300, 600).await;
    let sweep = reconciler(&stack, &settings);

    let started = Instant::now();
    let summary = sweep
        .run_with(clock(0, Duration::from_secs(2)))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(summary.out_of_time, "{summary:?}");
    assert!(
        summary.orders_checked > 0 && summary.orders_checked < 300,
        "{summary:?}"
    );
    // Stopped taking items at the budget; the ones in flight finish with
    // one platform call each.
    assert!(took < Duration::from_secs(4), "{took:?}");
    let first = summary.orders_checked;

    // The next sweep takes the ones never checked first.
    let summary = sweep
        .run_with(clock(1, Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(!summary.out_of_time, "{summary:?}");
    assert_eq!(summary.orders_checked, 300 - first, "{summary:?}");
    let items = by_pk(all_items(&stack.app.store).await);
    for trade_no in &orders {
        assert_eq!(num(&items[&format!("ORDER#{trade_no}")], "checks"), 1);
    }
}
