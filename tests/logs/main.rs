//! No secrets in the logs: the ship-notify function, run with known keys
//! through every path (success, duplicates, each rejection, a failing
//! fulfilment webhook, an unreachable store), never logs the HMAC secret,
//! any part of a private key, any signature, or an `Authorization` header.
//! Every line is JSON, and every line logged while a verified notification
//! is handled carries its `transactionId`.
//!
//! A test binary of its own: it installs the one global tracing subscriber
//! of its process (JSON into a shared buffer), which the e2e binary does
//! not have.
//!
//! Extension point: `Run::post` takes any path, so the refund-notify
//! function (being built) gets its paths added to `every_path_*` once it
//! exists, with the same checks.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use dingdang::signing::{Algorithm, Authorization, HmacSecret, KeyRing, Signer, Verifier};
use dingdang_tests::{
    id, ship_body, spawn_app, spawn_app_via, vectors, Answered, App, Settings, Webhook, SECRET,
    WEBHOOK_SECRET,
};
use serde_json::Value;
use time::OffsetDateTime;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Where the subscriber writes.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap()))
            .expect("log output is UTF-8")
    }
}

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The process's subscriber: JSON lines, our crate at every level, the
/// rest at `info` (the functions' default level).
fn logs() -> &'static Buffer {
    static BUFFER: OnceLock<Buffer> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_env_filter(EnvFilter::new("info,dingdang=trace"))
            .with_writer(buffer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        buffer
    })
}

/// The tests of this binary share the buffer: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What one request logged.
struct Logged {
    label: String,
    /// The transactionId of a notification that passed verification.
    transaction_id: Option<String>,
    lines: String,
}

/// Requests made and what they logged, plus every signature and
/// `Authorization` value seen on the wire.
struct Run {
    logged: Vec<Logged>,
    wire_secrets: Vec<String>,
}

impl Run {
    fn new() -> Self {
        logs().take();
        Self {
            logged: Vec::new(),
            wire_secrets: Vec::new(),
        }
    }

    fn remember(&mut self, authorization: &str) {
        self.wire_secrets.push(authorization.to_owned());
        if let Ok(parsed) = Authorization::parse(authorization) {
            self.wire_secrets.push(parsed.signature.clone());
            // A prefix, in case a log shortened it.
            self.wire_secrets
                .push(parsed.signature.chars().take(16).collect());
        }
    }

    /// POSTs to `path` and records what was logged meanwhile; returns the
    /// HTTP status and retMsg (or retCode).
    #[allow(clippy::too_many_arguments)]
    async fn post(
        &mut self,
        app: &App,
        label: &str,
        path: &str,
        body: Vec<u8>,
        authorization: Option<String>,
        content_type: &str,
        transaction_id: Option<&str>,
    ) -> (u16, String) {
        if let Some(a) = &authorization {
            self.remember(a);
        }
        logs().take();
        let (status, reply, reply_auth) = send(app, path, body, authorization, content_type).await;
        if let Some(a) = reply_auth {
            self.remember(&a);
        }
        self.logged.push(Logged {
            label: label.to_owned(),
            transaction_id: transaction_id.map(String::from),
            lines: logs().take(),
        });
        (status, ret_msg(&reply))
    }

    /// Signs `body` with `keys` and POSTs it to ship-notify.
    async fn ship(
        &mut self,
        app: &App,
        keys: &KeyRing,
        label: &str,
        body: Vec<u8>,
        transaction_id: Option<&str>,
    ) -> (u16, String) {
        let authorization = keys.sign(&body, OffsetDateTime::now_utc()).to_string();
        self.post(
            app,
            label,
            "/ship-notify",
            body,
            Some(authorization),
            "application/json",
            transaction_id,
        )
        .await
    }

    /// Checks everything logged: JSON lines, no forbidden text, and the
    /// transactionId on every line about a verified notification.
    fn check(&self, forbidden: &[String]) {
        let mut problems = Vec::new();
        let mut lines_seen = 0;
        for logged in &self.logged {
            for line in logged.lines.lines() {
                lines_seen += 1;
                let json: Value = match serde_json::from_str(line) {
                    Ok(v) => v,
                    Err(_) => {
                        problems.push(format!("{}: not a JSON line: {line}", logged.label));
                        continue;
                    }
                };
                for secret in forbidden.iter().chain(&self.wire_secrets) {
                    if !secret.is_empty() && line.contains(secret.as_str()) {
                        problems.push(format!(
                            "{}: a secret ({}...) in: {line}",
                            logged.label,
                            secret.chars().take(8).collect::<String>()
                        ));
                    }
                }
                let ours = json["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("dingdang"));
                if let (true, Some(txn)) = (ours, &logged.transaction_id) {
                    if !line.contains(txn.as_str()) {
                        problems.push(format!(
                            "{}: a line without transactionId {txn}: {line}",
                            logged.label
                        ));
                    }
                }
            }
        }
        assert!(lines_seen > 0, "nothing was logged at all");
        let paths_logged = self.logged.iter().filter(|l| !l.lines.is_empty()).count();
        assert_eq!(
            paths_logged,
            self.logged.len(),
            "every path logs something: {:?}",
            self.logged
                .iter()
                .filter(|l| l.lines.is_empty())
                .map(|l| &l.label)
                .collect::<Vec<_>>()
        );
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

/// One request: (status, JSON reply, reply `Authorization`).
async fn send(
    app: &App,
    path: &str,
    body: Vec<u8>,
    authorization: Option<String>,
    content_type: &str,
) -> (u16, Value, Option<String>) {
    let mut request = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", content_type)
        .body(body);
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    let answered = Answered::read(request.send().await.expect("an answer")).await;
    let reply = serde_json::from_slice(&answered.body).expect("a JSON reply");
    (answered.status, reply, answered.authorization)
}

fn ret_msg(reply: &Value) -> String {
    reply["retMsg"]
        .as_str()
        .or(reply["retCode"].as_str())
        .unwrap_or("")
        .to_owned()
}

/// Every base64 or text fragment of 16 characters of `pem`'s body, every 8
/// characters: a private key must not appear even in part.
fn fragments(pem: &str) -> Vec<String> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let chars: Vec<char> = body.chars().collect();
    chars
        .windows(16)
        .step_by(8)
        .map(|w| w.iter().collect())
        .collect()
}

fn forbidden_keys() -> Vec<String> {
    let mut out = vec![
        SECRET.to_owned(),
        SECRET[..SECRET.len() / 2].to_owned(),
        SECRET[SECRET.len() / 2..].to_owned(),
        WEBHOOK_SECRET.to_owned(),
    ];
    out.extend(fragments(vectors::SKILL_PRIVATE_PEM));
    out.extend(fragments(vectors::PLATFORM_PRIVATE_PEM));
    out
}

/// A closed port: nothing listens there.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn other_hmac() -> KeyRing {
    KeyRing {
        signer: Signer::Hmac(HmacSecret::new("not-the-secret")),
        verifier: Verifier::hmac(vec![HmacSecret::new("not-the-secret")]),
        skew: KeyRing::DEFAULT_SKEW,
    }
}

#[tokio::test]
async fn every_ship_notify_path_with_hmac_logs_json_without_secrets() {
    let _serial = SERIAL.lock().await;
    let webhook = Webhook::start().await;
    let settings = Settings::hmac().with("FULFILLMENT_URL", webhook.url());
    let app = spawn_app(settings.clone()).await;
    let keys = app.keys.clone();
    let mut run = Run::new();
    let (trade, txn, nonce) = (id("ORD"), id("T"), id("N"));
    app.create_order(&trade, 990).await;
    let body = ship_body(&txn, &trade, 990, &nonce);
    let t = Some(txn.as_str());

    let expect = |got: (u16, String), status: u16, msg: &str| {
        assert_eq!(got, (status, msg.to_owned()));
    };
    expect(
        run.ship(&app, &keys, "success", body.clone(), t).await,
        200,
        "SUCCESS",
    );
    expect(
        run.ship(&app, &keys, "redelivery", body.clone(), t).await,
        200,
        "SUCCESS",
    );
    let copy = ship_body(&txn, &trade, 990, &id("N"));
    expect(
        run.ship(&app, &keys, "duplicate", copy, t).await,
        200,
        "SUCCESS",
    );

    // Rejected before the body is trusted: no transactionId to carry.
    let fresh = |amount| ship_body(&id("T"), &trade, amount, &id("N"));
    let now = OffsetDateTime::now_utc();
    let b = fresh(990);
    let valid = keys.sign(&b, now);
    let mut rsa = valid.clone();
    rsa.algorithm = Algorithm::Rsa2;
    let stale = keys.sign(&b, now - time::Duration::minutes(10)).to_string();
    let future = keys.sign(&b, now + time::Duration::minutes(10)).to_string();
    let forged = other_hmac().sign(&b, now).to_string();
    let garbled = valid.to_string().replace("Signature=", "Signature=zz");
    for (label, auth, status, msg) in [
        ("missing", None, 401, "missing Authorization"),
        ("malformed", Some(garbled), 401, "malformed Authorization"),
        (
            "wrong algorithm",
            Some(rsa.to_string()),
            401,
            "wrong signing algorithm",
        ),
        ("stale", Some(stale), 401, "Datetime too old"),
        ("future", Some(future), 401, "Datetime in the future"),
        ("forged", Some(forged), 401, "bad signature"),
    ] {
        let got = run
            .post(
                &app,
                label,
                "/ship-notify",
                b.clone(),
                auth,
                "application/json",
                None,
            )
            .await;
        expect(got, status, msg);
    }
    // The Content-Type does not matter: a signed body that is not JSON is
    // refused as such.
    let form = format!("transactionId={}&tradeNo={trade}&totalAmt=990", id("T")).into_bytes();
    let signed_form = keys.sign(&form, now).to_string();
    let got = run
        .post(
            &app,
            "not JSON, as a form",
            "/ship-notify",
            form,
            Some(signed_form),
            "application/x-www-form-urlencoded",
            None,
        )
        .await;
    expect(got, 400, "invalid JSON");
    let bad = br#"{"domainId":"skill-123","transactionId":"T1","#.to_vec();
    expect(
        run.ship(&app, &keys, "invalid JSON", bad, None).await,
        400,
        "invalid JSON",
    );
    let bad = ship_body(&id("T"), &trade, 0, &id("N"));
    let got = run.ship(&app, &keys, "invalid field", bad, None).await;
    assert_eq!(got.0, 400);

    // Verified, then refused: the transactionId is known.
    let other_skill = serde_json::to_vec(&serde_json::json!({
        "skillId": "another-skill", "transactionId": "TWS1", "tradeNo": trade,
        "totalAmt": 990, "nonceStr": id("N"),
    }))
    .unwrap();
    let got = run
        .ship(&app, &keys, "wrong skill", other_skill, Some("TWS1"))
        .await;
    expect(got, 403, "unknown skill");
    let txn2 = id("T");
    let replay = ship_body(&txn2, &trade, 990, &nonce);
    let got = run
        .ship(&app, &keys, "replayed nonce", replay, Some(&txn2))
        .await;
    expect(got, 401, "replayed nonceStr");
    let txn3 = id("T");
    let unknown = ship_body(&txn3, &id("NOSUCH"), 990, &id("N"));
    let got = run
        .ship(&app, &keys, "unknown order", unknown, Some(&txn3))
        .await;
    expect(got, 200, "unknown tradeNo");
    let trade2 = id("ORD");
    app.create_order(&trade2, 500).await;
    let txn4 = id("T");
    let mismatch = ship_body(&txn4, &trade2, 501, &id("N"));
    let got = run
        .ship(&app, &keys, "amount mismatch", mismatch, Some(&txn4))
        .await;
    expect(got, 200, "totalAmt mismatch");
    let txn5 = id("T");
    let other = ship_body(&txn5, &trade, 990, &id("N"));
    let got = run
        .ship(&app, &keys, "paid by another", other, Some(&txn5))
        .await;
    expect(got, 200, "paid by another transaction");
    let conflict = ship_body(&txn, &trade2, 500, &id("N"));
    let got = run.ship(&app, &keys, "conflict", conflict, t).await;
    expect(got, 200, "conflicting transaction payload");

    // The webhook fails: the payment is recorded and acknowledged all
    // the same, its event left to the outbox.
    webhook.set_failing(true);
    let txn6 = id("T");
    let paid = ship_body(&txn6, &trade2, 500, &id("N"));
    let got = run
        .ship(&app, &keys, "webhook failing", paid, Some(&txn6))
        .await;
    expect(got, 200, "SUCCESS");
    webhook.set_failing(false);

    // The store is unreachable.
    let down = spawn_app_via(settings, Some(&closed_port())).await;
    let trade3 = id("ORD");
    let txn7 = id("T");
    let body = ship_body(&txn7, &trade3, 990, &id("N"));
    let got = run
        .ship(&down, &keys, "store unreachable", body, Some(&txn7))
        .await;
    assert_eq!(got.0, 500, "{got:?}");

    // Nor the webhook secret, nor the signatures of the deliveries.
    let mut forbidden = forbidden_keys();
    let signatures = webhook.signatures();
    assert!(!signatures.is_empty(), "the webhook got signed events");
    forbidden.extend(signatures);
    run.check(&forbidden);
}

#[tokio::test]
async fn every_ship_notify_path_with_rsa2_logs_json_without_secrets() {
    let _serial = SERIAL.lock().await;
    let webhook = Webhook::start().await;
    let settings = Settings::rsa2_2019().with("FULFILLMENT_URL", webhook.url());
    let app = spawn_app(settings.clone()).await;
    let keys = app.keys.clone();
    assert_eq!(keys.signer.algorithm(), Algorithm::Rsa2);
    let mut run = Run::new();
    let (trade, txn) = (id("ORD"), id("T"));
    app.create_order(&trade, 990).await;
    let body = ship_body(&txn, &trade, 990, &id("N"));
    let t = Some(txn.as_str());

    assert_eq!(
        run.ship(&app, &keys, "success", body.clone(), t).await,
        (200, "SUCCESS".to_owned())
    );
    assert_eq!(
        run.ship(&app, &keys, "redelivery", body.clone(), t).await,
        (200, "SUCCESS".to_owned())
    );
    // Signed by the skill's own key instead of the platform's.
    let own = Settings::rsa2_2019().config("unused").keys.ring();
    let b = ship_body(&id("T"), &trade, 990, &id("N"));
    let got = run.ship(&app, &own, "wrong key", b.clone(), None).await;
    assert_eq!(got, (401, "bad signature".to_owned()));
    let hmac = dingdang_tests::platform_keys(&Settings::hmac());
    let got = run
        .ship(&app, &hmac, "HMAC where RSA2", b.clone(), None)
        .await;
    assert_eq!(got, (401, "wrong signing algorithm".to_owned()));
    let stale = keys
        .sign(&b, OffsetDateTime::now_utc() - time::Duration::minutes(10))
        .to_string();
    let got = run
        .post(
            &app,
            "stale",
            "/ship-notify",
            b.clone(),
            Some(stale),
            "application/json",
            None,
        )
        .await;
    assert_eq!(got, (401, "Datetime too old".to_owned()));

    // Another userToken than the order's: paid and alerted, and neither
    // token is logged.
    let (ours, theirs) = ("usrOurs7Qk2Zp4", "usrTheirs9Vx4Lm");
    let (trade4, txn4) = (id("ORD"), id("T"));
    let (status, _) = app
        .post_json(
            "/orders",
            serde_json::json!({"tradeNo": trade4, "totalAmt": 600, "userToken": ours}),
        )
        .await;
    assert_eq!(status, 201);
    let body = serde_json::to_vec(&serde_json::json!({
        "skillId": dingdang_tests::SKILL, "transactionId": txn4, "tradeNo": trade4,
        "totalAmt": 600, "userToken": theirs, "nonceStr": id("N"),
    }))
    .unwrap();
    let got = run
        .ship(&app, &keys, "user token mismatch", body, Some(&txn4))
        .await;
    assert_eq!(got, (200, "SUCCESS".to_owned()));
    let lines = &run.logged.last().unwrap().lines;
    assert!(
        lines
            .lines()
            .any(|l| l.contains("\"alert\":true") && l.contains("user_token_mismatch")),
        "the mismatch is alerted: {lines}"
    );

    webhook.set_failing(true);
    let txn2 = id("T");
    let trade2 = id("ORD");
    app.create_order(&trade2, 100).await;
    let got = run
        .ship(
            &app,
            &keys,
            "webhook failing",
            ship_body(&txn2, &trade2, 100, &id("N")),
            Some(&txn2),
        )
        .await;
    assert_eq!(got, (200, "SUCCESS".to_owned()));

    let down = spawn_app_via(settings, Some(&closed_port())).await;
    let txn3 = id("T");
    let got = run
        .ship(
            &down,
            &keys,
            "store unreachable",
            ship_body(&txn3, &id("ORD"), 990, &id("N")),
            Some(&txn3),
        )
        .await;
    assert_eq!(got.0, 500, "{got:?}");

    let mut forbidden = forbidden_keys();
    forbidden.extend([ours.to_owned(), theirs.to_owned()]);
    forbidden.extend(webhook.signatures());
    run.check(&forbidden);
}

/// Every line logged since the last take: JSON, and free of `forbidden`.
fn check_lines(label: &str, forbidden: &[String]) -> usize {
    let text = logs().take();
    let mut problems = Vec::new();
    for line in text.lines() {
        if serde_json::from_str::<Value>(line).is_err() {
            problems.push(format!("{label}: not a JSON line: {line}"));
        }
        for secret in forbidden {
            if !secret.is_empty() && line.contains(secret.as_str()) {
                let head: String = secret.chars().take(8).collect();
                problems.push(format!("{label}: a secret ({head}...) in: {line}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    text.lines().count()
}

#[tokio::test]
async fn the_refund_create_order_api_and_reconcile_paths_log_json_without_secrets() {
    let _serial = SERIAL.lock().await;
    logs().take();
    let settings = Settings::rsa2_2019();
    let stack = dingdang_tests::rsa_stack(settings.clone(), |c| {
        c.refund_delay = std::time::Duration::from_millis(100)
    })
    .await;
    let app = &stack.app;
    let mut forbidden = forbidden_keys();
    let mut remember = |authorization: &str| {
        forbidden.push(authorization.to_owned());
        if let Ok(parsed) = Authorization::parse(authorization) {
            forbidden.push(parsed.signature.chars().take(16).collect());
        }
    };

    // create-order: accepted, retried, refused signature.
    let body = serde_json::to_vec(&serde_json::json!({
        "skillId": dingdang_tests::SKILL, "userToken": "u1",
        "details": [{"itemId": "vip", "quantity": 1, "amount": 900}],
        "totalAmt": 900, "nonceStr": dingdang_tests::id("N"),
    }))
    .unwrap();
    let authorization = dingdang_tests::sign(&app.keys, &body);
    remember(&authorization);
    let created = app
        .post_path("/create-order", body.clone(), Some(authorization.clone()))
        .await;
    remember(created.authorization.as_deref().unwrap_or_default());
    app.post_path("/create-order", body.clone(), Some(authorization))
        .await;
    app.post_path(
        "/create-order",
        body,
        Some("TSK-RSA2 Datetime=20180622T101500Z, Signature=AAAA".into()),
    )
    .await;
    let trade = created.json()["tradeNo"].as_str().unwrap().to_owned();

    // Paid through the platform's notification, then refunds: accepted,
    // over the amount, unknown order; the platform's result notification;
    // a refund notification for an unknown refund; sync and reconcile.
    stack.sim.pay(&trade, 900).await;
    app.post_json(
        "/refunds",
        serde_json::json!({"tradeNo": trade, "refundTradeNo": "LG1", "refundAmt": 400}),
    )
    .await;
    app.post_json(
        "/refunds",
        serde_json::json!({"tradeNo": trade, "refundTradeNo": "LG2", "refundAmt": 600}),
    )
    .await;
    app.post_json(
        "/refunds",
        serde_json::json!({"tradeNo": "NOSUCH", "refundTradeNo": "LG3", "refundAmt": 1}),
    )
    .await;
    stack.wait_refund("LG1", "SUCCESS").await;
    app.get("/refunds/LG1?sync=true").await;
    app.get(&format!("/orders/{trade}?sync=true")).await;
    let unknown = serde_json::to_vec(&serde_json::json!({
        "skillId": dingdang_tests::SKILL, "transactionId": "T9", "tradeNo": "O9", "refundTransactionId": "R9",
        "refundTradeNo": "UNKNOWN9", "totalAmt": 10, "refundAmt": 10, "refundStatus": "SUCCESS",
        "refundStatusDesc": "ok", "nonceStr": dingdang_tests::id("N"),
    }))
    .unwrap();
    let authorization = dingdang_tests::sign(&app.keys, &unknown);
    remember(&authorization);
    let answer = app
        .post_path("/refund-notify", unknown.clone(), Some(authorization))
        .await;
    remember(answer.authorization.as_deref().unwrap_or_default());
    app.post_path("/refund-notify", unknown, None).await;
    dingdang_tests::reconciler(&stack, &settings)
        .run()
        .await
        .unwrap();

    let lines = check_lines("refunds, create-order, api, reconcile", &forbidden);
    assert!(lines > 10, "these paths log: {lines} lines");
}
