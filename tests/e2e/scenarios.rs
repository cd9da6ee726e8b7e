//! The simulator's scenarios (`dingdang-sim scenario ...`) against the real
//! handlers in process: each passes, and a broken invariant is reported.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dingdang::protocol::Revision;
use dingdang_tests::{reconciler, spawn_app, Settings, Stack, SECRET, SKILL};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use simulator::scenario::{self, Console, Options, Reconcile, Report, Scenario, Target};
use simulator::{hmac_keys, SimConfig, Simulator};
use time::OffsetDateTime;

/// The app, and the simulator its `DINGDANG_API_BASE` and `FULFILLMENT_URL`
/// point at (the counting `/fulfil`); refunds stay PROCESSING for 5 s
/// unless a scenario settles them first.
async fn counting_stack() -> (Stack, Settings) {
    counting_stack_with(|s| s).await
}

/// [`counting_stack`] with the app's settings changed by `tune`.
async fn counting_stack_with(tune: impl FnOnce(Settings) -> Settings) -> (Stack, Settings) {
    let addr: SocketAddr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // No stream here besides the test server's stand-in for requests, so a
    // payment the sweep finds has its grant due at once (the sweep delivers
    // it in the same run).
    let settings = tune(
        Settings::hmac()
            .with("FULFILLMENT_URL", format!("http://{addr}/fulfil"))
            .with("FULFILLMENT_RETRY_SECS", "0"),
    );
    let app = spawn_app(
        settings
            .clone()
            .with("DINGDANG_API_BASE", format!("http://{addr}/paycgi")),
    )
    .await;
    let mut config = SimConfig::new(SKILL, hmac_keys(SECRET));
    config.refund_delay = Duration::from_secs(5);
    config.ship_notify_url = Some(format!("{}/ship-notify", app.base));
    config.refund_notify_url = Some(format!("{}/refund-notify", app.base));
    config.fulfillment_secret = Some(dingdang_tests::WEBHOOK_SECRET.to_owned());
    let sim = Simulator::bind(config, addr).await.expect("bind simulator");
    (Stack { app, sim }, settings)
}

fn target(stack: &Stack) -> Target {
    Target {
        api: stack.app.base.clone(),
        ship_notify_url: format!("{}/ship-notify", stack.app.base),
        refund_notify_url: format!("{}/refund-notify", stack.app.base),
        sim: format!("http://{}", stack.sim.addr()),
        keys: hmac_keys(SECRET),
        skill_id: SKILL.to_owned(),
        revision: Revision::R2018,
    }
}

fn options(stack: &Stack, settings: &Settings) -> Options {
    let sweep = Arc::new(reconciler(stack, settings));
    Options {
        count: 3,
        repeat: 3,
        timeout: Duration::from_secs(120),
        backoff: Duration::from_millis(20),
        reconcile: Reconcile::Hook(Arc::new(move || {
            let sweep = sweep.clone();
            Box::pin(async move {
                sweep
                    .run()
                    .await
                    .map(|summary| format!("{summary:?}"))
                    .map_err(|e| e.to_string())
            })
        })),
        reconcile_wait: Duration::from_secs(10),
        require_fulfilment: true,
        ..Options::default()
    }
}

async fn play(scenario: Scenario, target: &Target, options: &Options) -> (Report, Vec<String>) {
    let console = Console::captured();
    let report = scenario::run(scenario, target, options, &console)
        .await
        .unwrap_or_else(|e| panic!("{scenario} could not be played: {e}"));
    (report, console.lines())
}

async fn passes(scenario: Scenario) {
    passes_with(scenario, |s| s, |_| {}).await;
}

/// [`passes`] with the app's settings and the scenario's options changed.
async fn passes_with(
    scenario: Scenario,
    settings: impl FnOnce(Settings) -> Settings,
    tune: impl FnOnce(&mut Options),
) {
    let (stack, settings) = counting_stack_with(settings).await;
    let mut options = options(&stack, &settings);
    tune(&mut options);
    let (report, lines) = play(scenario, &target(&stack), &options).await;
    assert!(
        report.passed(),
        "{scenario}: {:?}\n{}",
        report.violations,
        lines.join("\n")
    );
    assert!(report.requests > 5, "{report:?}");
    // One line per request, and progress up to the last order.
    assert!(
        lines.iter().filter(|l| l.contains(" -> ")).count() >= report.requests - 1,
        "{}",
        lines.join("\n")
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(&format!("{scenario}: 3/3"))),
        "{}",
        lines.join("\n")
    );
    // Every order the scenario paid was fulfilled exactly once.
    let counts = stack.sim.fulfilment_counts();
    assert!(!counts.is_empty());
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

#[tokio::test]
async fn duplicate_ship_passes() {
    passes(Scenario::DuplicateShip).await;
}

#[tokio::test]
async fn ship_retry_passes() {
    passes(Scenario::ShipRetry).await;
}

#[tokio::test]
async fn refund_out_of_order_passes() {
    passes(Scenario::RefundOutOfOrder).await;
}

/// The partner gives each platform call 1 s (`DINGDANG_API_TIMEOUT_MS`);
/// the simulator's late replies come after 2 s. Nine of them (three per
/// order) make this the slowest scenario: a longer deadline.
#[tokio::test]
async fn ambiguous_refunds_passes() {
    passes_with(
        Scenario::AmbiguousRefunds,
        |s| s.with("DINGDANG_API_TIMEOUT_MS", "1000"),
        |o| {
            o.late_reply = Duration::from_secs(2);
            o.timeout = Duration::from_secs(300);
        },
    )
    .await;
}

#[tokio::test]
async fn lost_ship_passes_once_reconcile_runs() {
    passes(Scenario::LostShip).await;
}

#[tokio::test]
async fn lost_ship_without_reconcile_is_a_violation() {
    let (stack, settings) = counting_stack().await;
    let mut options = options(&stack, &settings);
    options.count = 1;
    options.reconcile_wait = Duration::from_millis(500);
    options.reconcile = Reconcile::Hook(Arc::new(|| Box::pin(async { Ok("skipped".to_owned()) })));
    let (report, lines) = play(Scenario::LostShip, &target(&stack), &options).await;
    assert!(!report.passed(), "{}", lines.join("\n"));
    assert!(
        report.violations[0].contains("is CREATED after reconcile: paid at the platform"),
        "{:?}",
        report.violations
    );
}

/// A minimal HTTP/1.1 server on 127.0.0.1: `handler(method, path and
/// query, headers, body)` → (status, body), JSON.
async fn serve<F, Fut>(handler: F) -> String
where
    F: Fn(http::Method, String, http::HeaderMap, Bytes) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = (u16, Vec<u8>)> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let path = parts
                            .uri
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        let (status, reply) =
                            handler(parts.method, path, parts.headers, body).await;
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(reply)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    base
}

/// Forwards a request to `base` and returns the status and body.
async fn forward(
    base: &str,
    method: http::Method,
    path: &str,
    headers: &http::HeaderMap,
    body: Bytes,
) -> (u16, Vec<u8>) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .body(body);
    for name in ["content-type", "authorization"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.clone());
        }
    }
    let response = request.send().await.expect("the app answers");
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn an_api_reporting_an_over_refund_is_caught() {
    let (stack, settings) = counting_stack().await;
    // The partner API as it would be with a bug: a FAILED refund is
    // reported SUCCESS, so the order's refunds add up past its amount.
    let app = stack.app.base.clone();
    let lying = serve(move |method, path, headers, body| {
        let app = app.clone();
        async move {
            let (status, reply) = forward(&app, method.clone(), &path, &headers, body).await;
            if method == http::Method::GET && path.contains("/refunds/") {
                let text = String::from_utf8(reply).unwrap();
                (
                    status,
                    text.replace("\"FAILED\"", "\"SUCCESS\"").into_bytes(),
                )
            } else {
                (status, reply)
            }
        }
    })
    .await;
    let mut target = target(&stack);
    target.api = lying;
    let mut options = options(&stack, &settings);
    options.count = 1;
    let (report, lines) = play(Scenario::RefundOutOfOrder, &target, &options).await;
    assert!(!report.passed(), "{}", lines.join("\n"));
    let all = report.violations.join("\n");
    assert!(
        all.contains(
            "refunded more than paid: our API reports 1600 in refunds not FAILED, of 1000"
        ),
        "{all}"
    );
    assert!(
        all.contains("ours is SUCCESS, the platform's is FAIL"),
        "{all}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("VIOLATION: ")),
        "{}",
        lines.join("\n")
    );
}

#[tokio::test]
async fn a_ship_notify_fulfilling_every_delivery_is_caught() {
    let (stack, settings) = counting_stack().await;
    // A ship-notify with a bug: it calls the fulfilment webhook on every
    // delivery it acknowledges, duplicates included.
    let app = stack.app.base.clone();
    let fulfil = format!("http://{}/fulfil", stack.sim.addr());
    let careless = serve(move |method, path, headers, body| {
        let (app, fulfil) = (app.clone(), fulfil.clone());
        async move {
            let (status, reply) = forward(
                &app,
                method,
                &format!("/ship-notify{path}"),
                &headers,
                body.clone(),
            )
            .await;
            let notice: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let fulfilment = serde_json::to_vec(&notice).unwrap();
            let signature = dingdang::platform::webhook_signature(
                &dingdang::signing::HmacSecret::new(dingdang_tests::WEBHOOK_SECRET),
                OffsetDateTime::now_utc().unix_timestamp(),
                &fulfilment,
            );
            let granted = reqwest::Client::new()
                .post(&fulfil)
                .header("dingdang-signature", signature)
                .header("idempotency-key", notice["transactionId"].as_str().unwrap())
                .body(fulfilment)
                .send()
                .await
                .unwrap();
            assert_eq!(granted.status().as_u16(), 200);
            (status, reply)
        }
    })
    .await;
    let mut target = target(&stack);
    target.ship_notify_url = careless;
    let mut options = options(&stack, &settings);
    options.count = 1;
    options.repeat = 2;
    let (report, lines) = play(Scenario::DuplicateShip, &target, &options).await;
    assert!(!report.passed(), "{}", lines.join("\n"));
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains("times: the fulfilment endpoint saw Idempotency-Key")),
        "{:?}",
        report.violations
    );
}
