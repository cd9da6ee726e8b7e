//! The CloudWatch EMF lines the handlers write, captured and counted.
//!
//! The metrics sink is process-wide; each test collects the lines written
//! on its own thread (a `#[tokio::test]` runtime runs the spawned app, the
//! webhook stub and the simulator on that thread), so tests running side by
//! side in one process do not see each other's lines.

use std::cell::RefCell;

use dingdang::observability::metrics::{self, Metric, NAMESPACE};
use dingdang_tests::{hmac_stack, id, ship_body, Settings, Webhook};
use serde_json::{json, Value};

thread_local! {
    static LINES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Collects the metric lines written on this thread until [`Capture::lines`].
struct Capture;

impl Capture {
    fn start() -> Self {
        metrics::set_sink(|line| {
            LINES.with(|lines| {
                if let Some(lines) = lines.borrow_mut().as_mut() {
                    lines.push(line.to_owned());
                }
            })
        });
        LINES.with(|lines| *lines.borrow_mut() = Some(Vec::new()));
        Capture
    }

    /// Every line so far, parsed and checked against the EMF specification.
    fn lines(&self) -> Vec<Value> {
        let lines = LINES.with(|lines| lines.borrow().clone().unwrap_or_default());
        lines.iter().map(|line| emf(line)).collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        LINES.with(|lines| *lines.borrow_mut() = None);
    }
}

/// Parses one line and checks it is a valid EMF document: every metric it
/// declares has a numeric value, every dimension a string value.
fn emf(line: &str) -> Value {
    assert!(!line.contains('\n'), "one line: {line}");
    let value: Value = serde_json::from_str(line).expect("an EMF line is JSON");
    let aws = &value["_aws"];
    assert!(
        aws["Timestamp"].as_u64().unwrap() > 1_600_000_000_000,
        "{line}"
    );
    let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
    assert_eq!(directives.len(), 1, "{line}");
    let directive = &directives[0];
    assert_eq!(directive["Namespace"], NAMESPACE);
    // The per-key line has its own dimension set; every other line the
    // two usual ones.
    if value["VerifiedByKey"].is_number() {
        assert_eq!(
            directive["Dimensions"],
            json!([["Service", "KeyFingerprint"]]),
            "{line}"
        );
        let fingerprint = value["KeyFingerprint"].as_str().expect("a fingerprint");
        assert_eq!(fingerprint.len(), 16, "{line}");
    } else {
        assert_eq!(directive["Dimensions"], json!([["Function"], ["Service"]]));
    }
    for dimension in ["Function", "Service"] {
        assert!(
            value[dimension].as_str().is_some_and(|v| !v.is_empty()),
            "{line}"
        );
    }
    let definitions = directive["Metrics"].as_array().expect("metrics");
    assert!(!definitions.is_empty(), "{line}");
    for definition in definitions {
        let name = definition["Name"].as_str().expect("a metric name");
        assert!(
            Metric::ALL.iter().any(|m| m.name() == name),
            "undeclared metric {name}"
        );
        assert!(
            matches!(definition["Unit"].as_str(), Some("Count" | "Milliseconds")),
            "{line}"
        );
        assert!(value[name].is_number(), "{name} has no value: {line}");
    }
    value
}

/// The sum of `metric` over the lines where `filter` holds.
fn sum(lines: &[Value], metric: Metric, filter: impl Fn(&Value) -> bool) -> f64 {
    lines
        .iter()
        .filter(|line| filter(line))
        .filter_map(|line| line[metric.name()].as_f64())
        .sum()
}

fn total(lines: &[Value], metric: Metric) -> f64 {
    sum(lines, metric, |_| true)
}

#[tokio::test]
async fn notifications_and_refunds_are_counted_once_each() {
    let capture = Capture::start();
    let webhook = Webhook::start().await;
    let stack = hmac_stack(
        Settings::hmac().with("FULFILLMENT_URL", webhook.url()),
        |_| {},
    )
    .await;
    let app = &stack.app;

    // Paid at the platform and fulfilled, then notified again: a duplicate
    // replayed.
    let trade = id("ORD");
    let txn = stack.paid_order(&trade, 990).await;
    let (status, reply) = stack.sim.send_ship_notify(&txn).await.expect("answered");
    assert_eq!((status, reply["retCode"].as_str()), (200, Some("SUCCESS")));

    // Rejected: a bad signature, and a signed payment of another amount.
    let forged = ship_body(&id("T"), &trade, 990, &id("N"));
    let refused = app
        .post_ship(
            forged,
            Some("TSK-HMAC-SHA256-BASIC Timestamp=1,Nonce=x,Signature=AAAA".into()),
        )
        .await;
    assert_eq!(refused.status, 401);
    let (txn2, trade2) = (id("T"), id("ORD"));
    app.create_order(&trade2, 500).await;
    let mismatch = app.ship(ship_body(&txn2, &trade2, 501, &id("N"))).await;
    assert_eq!(mismatch.ret_code(), "FAIL");

    // A refund the platform accepts, then one more than is left: refused.
    let (accepted, over) = (id("R"), id("R"));
    let (status, refund) = app
        .post_json(
            "/refunds",
            json!({"tradeNo": trade, "refundTradeNo": accepted, "refundAmt": 900}),
        )
        .await;
    assert_eq!(
        (status, refund["status"].as_str()),
        (201, Some("PROCESSING")),
        "{refund}"
    );
    let (status, error) = app
        .post_json(
            "/refunds",
            json!({"tradeNo": trade, "refundTradeNo": over, "refundAmt": 91}),
        )
        .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (422, Some("unprocessable")),
        "{error}"
    );

    let lines = capture.lines();
    let ship = |line: &Value| line["Function"] == "ship-notify";
    let about = |txn: String| move |line: &Value| line["transactionId"] == txn.as_str();

    // One line per notification, each with exactly one outcome metric.
    assert_eq!(sum(&lines, Metric::NotificationReceived, ship), 4.0);
    assert_eq!(sum(&lines, Metric::Fulfilled, about(txn.clone())), 1.0);
    assert_eq!(
        sum(&lines, Metric::DuplicateReplayed, about(txn.clone())),
        1.0
    );
    assert_eq!(total(&lines, Metric::Fulfilled), 1.0);
    assert_eq!(total(&lines, Metric::DuplicateReplayed), 1.0);
    assert_eq!(total(&lines, Metric::RejectedSignature), 1.0);
    assert_eq!(
        sum(&lines, Metric::RejectedAmount, about(txn2.clone())),
        1.0
    );
    assert_eq!(total(&lines, Metric::RejectedAmount), 1.0);
    for line in lines.iter().filter(|l| ship(l)) {
        let outcome = line["outcome"].as_str().expect("an outcome");
        let metric = Metric::for_outcome(outcome).expect("a metric per outcome");
        assert_eq!(line[metric.name()], 1, "{line}");
        assert_eq!(line["Metrics"], Value::Null);
    }
    let refused_line = lines
        .iter()
        .find(|l| l["outcome"] == "signature")
        .expect("the refused notification's line");
    assert_eq!(
        refused_line["transactionId"],
        Value::Null,
        "unverified: no id"
    );
    assert_eq!(refused_line["status"], 401);

    // The webhook was called once, and timed.
    assert_eq!(webhook.calls(), 1);
    let latency: Vec<&Value> = lines
        .iter()
        .filter(|l| l[Metric::FulfilmentLatency.name()].is_number())
        .collect();
    assert_eq!(latency.len(), 1);
    assert_eq!(latency[0]["eventId"], format!("payment.succeeded:{txn}"));
    assert_eq!(latency[0]["fulfilment"], "ok");

    // Refunds: two requested, one accepted, one over-refund refused.
    let refunds = |rtn: String| move |line: &Value| line["refundTradeNo"] == rtn.as_str();
    assert_eq!(total(&lines, Metric::RefundRequested), 2.0);
    assert_eq!(
        sum(&lines, Metric::RefundAccepted, refunds(accepted.clone())),
        1.0
    );
    assert_eq!(total(&lines, Metric::RefundAccepted), 1.0);
    assert_eq!(
        sum(&lines, Metric::OverRefundRefused, refunds(over.clone())),
        1.0
    );
    assert_eq!(total(&lines, Metric::OverRefundRefused), 1.0);
    assert_eq!(total(&lines, Metric::RefundFailed), 0.0);
    let accepted_line = lines
        .iter()
        .find(|l| l["refundTradeNo"] == accepted.as_str())
        .unwrap();
    assert_eq!(accepted_line["refundStatus"], "PROCESSING");
    assert_eq!(accepted_line["transactionId"], txn.as_str());

    // Every API request has its line; none failed on our side.
    let api_requests = total(&lines, Metric::ApiRequest);
    assert!(api_requests >= 4.0, "{api_requests}");
    assert_eq!(total(&lines, Metric::ApiServerError), 0.0);
    assert_eq!(total(&lines, Metric::PlatformError), 0.0);
    let over_line = lines
        .iter()
        .find(|l| l["Function"] == "refund-api" && l["status"] == 422)
        .expect("the refused refund's request line");
    assert_eq!(over_line["outcome"], "unprocessable");

    // The simulator's refund result notification may arrive after the
    // capture above; it is counted too (RefundResultApplied), which the
    // refund-notify tests cover.
    drop(stack);
}

#[tokio::test]
async fn refused_refunds_platform_failures_and_reconcile_findings_are_counted() {
    let capture = Capture::start();
    let stack = hmac_stack(Settings::hmac(), |sim| {
        sim.refund_delay = std::time::Duration::from_secs(3600);
    })
    .await;
    let trade = id("ORD");
    stack.paid_order(&trade, 300).await;

    // The platform refuses one refund and accepts the next.
    stack.sim.fail_next_refunds(1);
    let (refused, accepted) = (id("R"), id("R"));
    for (rtn, expected) in [(&refused, "FAILED"), (&accepted, "PROCESSING")] {
        let (status, refund) = stack
            .app
            .post_json(
                "/refunds",
                json!({"tradeNo": trade, "refundTradeNo": rtn, "refundAmt": 100}),
            )
            .await;
        assert_eq!(
            (status, refund["status"].as_str()),
            (201, Some(expected)),
            "{refund}"
        );
    }
    // Then its replies stop verifying: a synced query gets no usable answer.
    stack.sim.set_bad_reply_signatures(true);
    let (status, error) = stack
        .app
        .get(&format!("/refunds/{accepted}?sync=true"))
        .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (502, Some("upstream")),
        "{error}"
    );

    metrics::reconcile(Some(&dingdang::domain::reconcile::Summary {
        orders_fulfilled: 2,
        refunds_resolved: 1,
        ..Default::default()
    }));

    let lines = capture.lines();
    assert_eq!(total(&lines, Metric::Fulfilled), 1.0);
    assert_eq!(total(&lines, Metric::RefundRequested), 2.0);
    assert_eq!(total(&lines, Metric::RefundFailed), 1.0);
    assert_eq!(total(&lines, Metric::RefundAccepted), 1.0);
    let failed = lines
        .iter()
        .find(|l| l[Metric::RefundFailed.name()] == 1)
        .unwrap();
    assert_eq!(failed["refundTradeNo"], refused.as_str());
    assert_eq!(failed["refundStatus"], "FAILED");

    assert_eq!(total(&lines, Metric::PlatformError), 1.0);
    let unusable = lines
        .iter()
        .find(|l| l[Metric::PlatformError.name()] == 1)
        .unwrap();
    assert_eq!(unusable["status"], 502);
    assert_eq!(unusable["outcome"], "platform_error");
    assert_eq!(unusable["method"], "GET");

    let sweep = lines
        .iter()
        .find(|l| l[Metric::ReconcileFoundPaid.name()].is_number())
        .expect("the reconcile line");
    assert_eq!(sweep[Metric::ReconcileFoundPaid.name()], 2);
    assert_eq!(sweep[Metric::ReconcileResolvedRefunds.name()], 1);
    assert_eq!(sweep[Metric::ReconcileErrors.name()], 0);
    assert_eq!(sweep["Function"], metrics::function_name("reconcile"));
}

#[tokio::test]
async fn create_order_requests_are_counted_with_their_trade_no() {
    let capture = Capture::start();
    let app = dingdang_tests::spawn_app(Settings::hmac()).await;
    let body = serde_json::to_vec(&json!({
        "skillId": dingdang_tests::SKILL,
        "userToken": "user-42",
        "details": [{"itemId": "song-1", "quantity": 1, "amount": 300}],
        "totalAmt": 300,
        "nonceStr": id("N"),
    }))
    .unwrap();
    let signed = || Some(dingdang_tests::sign(&app.keys, &body));
    let first = app.post_path("/create-order", body.clone(), signed()).await;
    let trade_no = first.json()["tradeNo"].as_str().unwrap().to_owned();
    let retry = app.post_path("/create-order", body.clone(), signed()).await;
    assert_eq!(retry.json()["tradeNo"], trade_no.as_str());
    let unsigned = app.post_path("/create-order", body.clone(), None).await;
    assert_eq!(unsigned.status, 401);

    let lines = capture.lines();
    let create = |line: &Value| line["Function"] == "create-order";
    let about = |line: &Value| create(line) && line["tradeNo"] == trade_no.as_str();
    assert_eq!(sum(&lines, Metric::NotificationReceived, create), 3.0);
    assert_eq!(sum(&lines, Metric::OrderCreated, about), 1.0);
    assert_eq!(sum(&lines, Metric::DuplicateReplayed, about), 1.0);
    assert_eq!(sum(&lines, Metric::RejectedSignature, create), 1.0);
    for line in lines.iter().filter(|l| create(l)) {
        let outcome = line["outcome"].as_str().expect("an outcome");
        let metric = Metric::for_outcome(outcome).expect("a metric per outcome");
        assert_eq!(line[metric.name()], 1, "{line}");
    }
}

#[tokio::test]
async fn a_user_token_mismatch_is_counted_with_its_fulfilment() {
    let capture = Capture::start();
    // A notification carrying another userToken than the order's: paid,
    // and counted on its request's line besides Fulfilled.
    let app = dingdang_tests::spawn_app(Settings::rsa2_2019()).await;
    let (trade, txn) = (id("ORD"), id("T"));
    let (status, _) = app
        .post_json(
            "/orders",
            json!({"tradeNo": trade, "totalAmt": 800, "userToken": "user-ours"}),
        )
        .await;
    assert_eq!(status, 201);
    let body = serde_json::to_vec(&json!({
        "skillId": dingdang_tests::SKILL, "transactionId": txn, "tradeNo": trade,
        "totalAmt": 800, "userToken": "user-theirs", "nonceStr": id("N"),
    }))
    .unwrap();
    assert_eq!(app.ship(body).await.ret_code(), "SUCCESS");

    let lines = capture.lines();
    let about = |txn: String| move |line: &Value| line["transactionId"] == txn.as_str();
    assert_eq!(total(&lines, Metric::UserTokenMismatch), 1.0);
    assert_eq!(
        sum(&lines, Metric::UserTokenMismatch, about(txn.clone())),
        1.0
    );
    assert_eq!(sum(&lines, Metric::Fulfilled, about(txn.clone())), 1.0);
}

#[tokio::test]
async fn a_bad_orderquery_reply_is_counted_as_a_platform_error() {
    let capture = Capture::start();
    // orderquery answering SUCCESS without totalAmt: a platform error.
    let settings = Settings::hmac();
    let stub = dingdang_tests::StubPlatform::start(dingdang_tests::platform_keys(&settings)).await;
    let api = dingdang_tests::spawn_app(settings.with("DINGDANG_API_BASE", stub.api_base())).await;
    let unpaid = id("ORD");
    api.create_order(&unpaid, 300).await;
    stub.set_reply(
        serde_json::to_vec(&json!({
            "retCode": "SUCCESS", "domainId": dingdang_tests::SKILL, "transactionId": id("T"),
            "tradeNo": unpaid, "tradeStatus": "SUCCESS", "tradeStatusDesc": "支付成功",
        }))
        .unwrap(),
    );
    let (status, _) = api.get(&format!("/orders/{unpaid}?sync=true")).await;
    assert_eq!(status, 502);

    let lines = capture.lines();
    assert_eq!(total(&lines, Metric::PlatformError), 1.0);
    let unusable = lines
        .iter()
        .find(|l| l[Metric::PlatformError.name()] == 1)
        .unwrap();
    assert_eq!(
        (unusable["status"].as_u64(), unusable["outcome"].as_str()),
        (Some(502), Some("platform_error"))
    );
}

#[tokio::test]
async fn an_order_expired_unpaid_then_paid_late_is_recorded_granted_and_alerted() {
    let capture = Capture::start();
    let settings = Settings::hmac().with("RECONCILE_MAX_AGE_SECS", "600");
    let stack = hmac_stack(settings.clone(), |_| {}).await;
    let trade = id("EXP");
    stack.app.create_order(&trade, 500).await;
    let sweep = dingdang_tests::reconciler(&stack, &settings);
    let at = |offset: i64| {
        dingdang::domain::due::SweepClock::until(
            std::time::SystemTime::now() + std::time::Duration::from_secs(60),
            std::time::Duration::ZERO,
        )
        .shifted(offset)
    };

    // Before its maximum age: asked, unpaid, still CREATED.
    let young = sweep.run_with(at(0)).await.unwrap();
    assert_eq!((young.orders_checked, young.orders_expired), (1, 0));
    // At its maximum age: one last orderquery, unpaid, EXPIRED, out of the
    // index (the next sweep has nothing to ask).
    let old = sweep.run_with(at(700)).await.unwrap();
    assert_eq!(
        (old.orders_checked, old.orders_expired, old.errors),
        (1, 1, 0),
        "{old:?}"
    );
    let (_, order) = stack.app.get(&format!("/orders/{trade}")).await;
    assert_eq!(order["status"], "EXPIRED", "{order}");
    let after = sweep.run_with(at(4000)).await.unwrap();
    assert_eq!(after.orders_checked, 0, "{after:?}");

    // The platform reports a payment after all: recorded (the user has
    // paid), its grant pending, and alerted once.
    let txn = stack.sim.pay(&trade, 500).await;
    let (status, reply) = stack.sim.last_ship_reply().unwrap().unwrap();
    assert_eq!((status, reply["retCode"].as_str()), (200, Some("SUCCESS")));
    let (_, order) = stack.app.get(&format!("/orders/{trade}")).await;
    assert_eq!(
        (
            order["status"].as_str(),
            order["transactionId"].as_str(),
            order["grant"]["status"].as_str()
        ),
        (Some("PAID"), Some(txn.as_str()), Some("PENDING")),
        "{order}"
    );
    // A copy of that notification is a duplicate: alerted no more.
    stack.sim.send_ship_notify(&txn).await.unwrap();

    let lines = capture.lines();
    assert_eq!(total(&lines, Metric::OrderExpired), 1.0);
    let about = |line: &Value| line["transactionId"] == txn.as_str();
    assert_eq!(sum(&lines, Metric::PaidAfterExpiry, about), 1.0);
    assert_eq!(total(&lines, Metric::PaidAfterExpiry), 1.0);
    assert_eq!(sum(&lines, Metric::Fulfilled, about), 1.0);
}
