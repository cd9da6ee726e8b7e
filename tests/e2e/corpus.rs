//! The bad-input corpora (described in tests/corpus/README.md), each
//! against one spawned app: every case is answered with its expected status
//! and a signed `{"retCode":"FAIL","retMsg":...}` (a non-empty retMsg of at
//! most 32 bytes), nothing panics, and nothing is written (but the kept
//! notice of a signed notification that contradicts our records, for the
//! cases that say `expect_kept`).
//!
//! - tests/corpus/ship-notify/: `POST /ship-notify`, aimed at an unpaid
//!   order;
//! - tests/corpus/refund-notify/: `POST /refund-notify`, aimed at a
//!   `PROCESSING` refund of a paid order (a simulated platform behind the
//!   app);
//! - tests/corpus/create-order/: `POST /create-order`, where any accepted
//!   case would create an order.
//!
//! Extension point: `run_corpus` takes the directory and a [`Target`] (the
//! path to POST to, the placeholders of the record the app holds, and a
//! valid request for it), so another endpoint is one more directory, one
//! more `Target` and one more test.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use dingdang::signing::{Algorithm, Authorization, HmacSecret, KeyRing, Signer, Verifier};
use dingdang_tests::{id, spawn_app, Answered, App, Settings, SKILL};
use serde::Deserialize;
use time::{Duration, OffsetDateTime};

/// The amount of the order every ship-notify case names as `{{TRADE}}`.
const AMOUNT: i64 = 990;

/// The amount of the paid order every refund-notify case names as
/// `{{TRADE}}`.
const REFUND_ORDER_AMOUNT: i64 = 1000;

/// The amount of the refund of that order every refund-notify case names as
/// `{{REFUND_TRADE}}`.
const REFUND_AMOUNT: i64 = 400;

/// What the cases of one corpus aim at: the path they are POSTed to, the
/// record the app holds for them, and a valid request for that record.
struct Target {
    path: &'static str,
    /// `{{NAME}}` placeholders naming the record the app holds, applied
    /// before the fresh `{{TXN}}` and `{{NONCE}}` (so a target may fix
    /// `{{TXN}}`).
    held: Vec<(&'static str, String)>,
    /// The valid request for the held record, with placeholders: the base of
    /// `{{BASE64_VALID}}` and `{{VALID_AUTHORIZATION}}`.
    valid: &'static str,
}

impl Target {
    /// ship-notify: `{{TRADE}}` is an unpaid order of [`AMOUNT`] fen.
    fn ship_notify(trade: &str) -> Self {
        Self {
            path: "/ship-notify",
            held: vec![("{{TRADE}}", trade.to_owned())],
            valid: r#"{"domainId":"{{SKILL}}","transactionId":"{{TXN}}","tradeNo":"{{TRADE}}","totalAmt":990,"nonceStr":"{{NONCE}}"}"#,
        }
    }

    /// refund-notify: `{{REFUND_TRADE}}` is a `PROCESSING` refund of
    /// [`REFUND_AMOUNT`] fen (platform serial `{{REFUND_TXN}}`) of the paid
    /// order `{{TRADE}}` of [`REFUND_ORDER_AMOUNT`] fen (platform serial
    /// `{{TXN}}`).
    fn refund_notify(refund: &serde_json::Value) -> Self {
        let field = |name: &str| {
            refund[name]
                .as_str()
                .unwrap_or_else(|| panic!("refund without {name}: {refund}"))
                .to_owned()
        };
        Self {
            path: "/refund-notify",
            held: vec![
                ("{{TRADE}}", field("tradeNo")),
                ("{{TXN}}", field("transactionId")),
                ("{{REFUND_TRADE}}", field("refundTradeNo")),
                ("{{REFUND_TXN}}", field("refundTransactionId")),
            ],
            valid: r#"{"domainId":"{{SKILL}}","transactionId":"{{TXN}}","tradeNo":"{{TRADE}}","refundTransactionId":"{{REFUND_TXN}}","refundTradeNo":"{{REFUND_TRADE}}","totalAmt":1000,"refundAmt":400,"refundStatus":"SUCCESS","refundStatusDesc":"退款成功","nonceStr":"{{NONCE}}"}"#,
        }
    }

    /// create-order: nothing is held; a valid request creates an order.
    fn create_order() -> Self {
        Self {
            path: "/create-order",
            held: vec![],
            valid: r#"{"skillId":"{{SKILL}}","userToken":"user42","details":[{"itemId":"song1","quantity":1,"amount":300},{"itemId":"album2","quantity":2,"amount":690}],"totalAmt":990,"nonceStr":"{{NONCE}}"}"#,
        }
    }
}

/// One case file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
    #[serde(default)]
    body_parts: Option<Vec<Part>>,
    /// Request headers as `[name, value]` pairs (repeats allowed); absent:
    /// `content-type: application/json`.
    #[serde(default)]
    headers: Option<Vec<(String, String)>>,
    sign: Sign,
    /// The body to sign when `sign` is `other-body`.
    #[serde(default)]
    sign_body: Option<String>,
    /// The header value when `sign` is `raw`.
    #[serde(default)]
    authorization: Option<String>,
    expect_status: u16,
    #[serde(default)]
    expect_msg: Option<String>,
    /// A signed, well-formed notification that contradicts our records:
    /// the one write allowed is the notice kept for an operator
    /// (`UNMATCHED#...`), with this `reason` and the body as sent.
    #[serde(default)]
    expect_kept: Option<String>,
}

/// A piece of a generated body: text, or text repeated `times` times.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    repeat: Option<String>,
    #[serde(default)]
    repeat_base64: Option<String>,
    #[serde(default)]
    times: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Sign {
    /// Signed now with the configured secret.
    Valid,
    /// No Authorization header.
    None,
    /// A valid header whose signature is mangled into non-hex.
    Garbled,
    /// Well-formed, signed with another secret.
    Forged,
    /// A TSK-RSA2 header where HMAC is configured.
    Rsa2WhereHmac,
    /// Signed 5 minutes ahead.
    Future,
    /// Signed 5 minutes ago.
    Stale,
    /// A valid signature over `sign_body` instead.
    OtherBody,
    /// `authorization` as written, after placeholders.
    Raw,
}

/// Per-case values substituted for `{{NAME}}` in bodies and headers.
struct Placeholders {
    values: Vec<(&'static str, String)>,
}

impl Placeholders {
    fn new(target: &Target) -> Self {
        let mut values = vec![("{{SKILL}}", SKILL.to_owned())];
        values.extend(target.held.iter().cloned());
        values.push(("{{TXN}}", id("T")));
        values.push(("{{NONCE}}", id("N")));
        Self { values }
    }

    fn apply(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for (name, value) in &self.values {
            out = replace(&out, name.as_bytes(), value.as_bytes());
        }
        out
    }

    fn text(&self, text: &str) -> String {
        String::from_utf8(self.apply(text.as_bytes())).unwrap()
    }

    fn add(&mut self, name: &'static str, value: String) {
        self.values.push((name, value));
    }
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

impl Case {
    fn load(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap();
        let case: Case = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not a corpus case: {e}", path.display()));
        let bodies = [
            case.body.is_some(),
            case.body_base64.is_some(),
            case.body_parts.is_some(),
        ];
        assert_eq!(
            bodies.iter().filter(|b| **b).count(),
            1,
            "{}: exactly one of body, body_base64, body_parts",
            path.display()
        );
        assert!(!case.description.is_empty(), "{}", path.display());
        assert_eq!(
            case.sign == Sign::Raw,
            case.authorization.is_some(),
            "{}: authorization goes with sign = raw",
            path.display()
        );
        assert_eq!(
            case.sign == Sign::OtherBody,
            case.sign_body.is_some(),
            "{}: sign_body goes with sign = other-body",
            path.display()
        );
        case
    }

    fn body(&self, p: &Placeholders) -> Vec<u8> {
        if let Some(body) = &self.body {
            return p.apply(body.as_bytes());
        }
        if let Some(body) = &self.body_base64 {
            return p.apply(&STANDARD.decode(body).expect("body_base64 is base64"));
        }
        let mut out = Vec::new();
        for part in self.body_parts.as_ref().unwrap() {
            if let Some(text) = &part.text {
                out.extend(p.apply(text.as_bytes()));
            }
            let unit = match (&part.repeat, &part.repeat_base64) {
                (Some(text), None) => text.as_bytes().to_vec(),
                (None, Some(b64)) => STANDARD.decode(b64).unwrap(),
                (None, None) => continue,
                _ => panic!("one of repeat and repeat_base64"),
            };
            for _ in 0..part.times {
                out.extend_from_slice(&unit);
            }
        }
        out
    }

    fn authorization(&self, keys: &KeyRing, body: &[u8], p: &Placeholders) -> Option<String> {
        let now = OffsetDateTime::now_utc();
        let valid = || keys.sign(body, now);
        let header = match self.sign {
            Sign::None => return None,
            Sign::Valid => valid(),
            Sign::Garbled => {
                let mut a = valid();
                a.signature = format!("zz{}", &a.signature[2..]);
                a
            }
            Sign::Forged => forger().sign(body, now),
            Sign::Rsa2WhereHmac => {
                // Hex digits are valid base64: the header parses as RSA2.
                let mut a = valid();
                a.algorithm = Algorithm::Rsa2;
                a
            }
            Sign::Future => keys.sign(body, now + Duration::minutes(5)),
            Sign::Stale => keys.sign(body, now - Duration::minutes(5)),
            Sign::OtherBody => {
                let other = p.apply(self.sign_body.as_ref().unwrap().as_bytes());
                keys.sign(&other, now)
            }
            Sign::Raw => return Some(p.text(self.authorization.as_ref().unwrap())),
        };
        Some(header.to_string())
    }
}

fn forger() -> KeyRing {
    KeyRing {
        signer: Signer::Hmac(HmacSecret::new("forged-secret")),
        verifier: Verifier::hmac(vec![HmacSecret::new("forged-secret")]),
        skew: std::time::Duration::from_secs(180),
    }
}

/// The case files of a corpus directory, in name order.
pub fn corpus_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// What went wrong with one case, or `None`.
async fn run_case(app: &App, target: &Target, file: &Path) -> Option<String> {
    let case = Case::load(file);
    let mut p = Placeholders::new(target);
    let valid = p.apply(target.valid.as_bytes());
    let now = OffsetDateTime::now_utc();
    let good = app.keys.sign(&valid, now);
    p.add("{{BASE64_VALID}}", STANDARD.encode(&valid));
    p.add("{{VALID_AUTHORIZATION}}", good.to_string());
    let body = case.body(&p);
    let sent = body.clone();
    let signed = app.keys.sign(&body, now);
    p.add("{{DATETIME}}", signed.datetime.to_string());
    p.add("{{SIGNATURE_SHORT}}", signed.signature[1..].to_owned());
    p.add("{{SIGNATURE}}", signed.signature.clone());
    let authorization = case.authorization(&app.keys, &body, &p);

    let headers = case
        .headers
        .clone()
        .unwrap_or_else(|| vec![("content-type".to_owned(), "application/json".to_owned())]);
    let mut request = app
        .http
        .post(format!("{}{}", app.base, target.path))
        .body(body);
    for (name, value) in &headers {
        let value = http::HeaderValue::from_bytes(p.text(value).as_bytes()).unwrap();
        request = request.header(name.as_str(), value);
    }
    if let Some(value) = authorization {
        let value = http::HeaderValue::from_bytes(value.as_bytes()).unwrap();
        request = request.header("authorization", value);
    }

    let before = dingdang_tests::all_items(&app.store).await;
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Some(format!("no answer (did the handler panic?): {e}")),
    };
    let Answered {
        status,
        authorization: reply_auth,
        body: reply,
    } = Answered::read(response).await;
    let after = dingdang_tests::all_items(&app.store).await;

    let text = String::from_utf8_lossy(&reply).into_owned();
    let mut problems = Vec::new();
    if status != case.expect_status {
        problems.push(format!("status {status}, expected {}", case.expect_status));
    }
    match serde_json::from_slice::<serde_json::Value>(&reply) {
        Err(_) => problems.push("reply is not JSON".to_owned()),
        Ok(json) => {
            if json["retCode"] != "FAIL" {
                problems.push("retCode is not FAIL".to_owned());
            }
            match json["retMsg"].as_str() {
                None => problems.push("no retMsg".to_owned()),
                Some(msg) if msg.is_empty() || msg.len() > 32 => {
                    problems.push(format!("retMsg {msg:?} is empty or over 32 bytes"))
                }
                Some(msg) => {
                    if let Some(expected) = &case.expect_msg {
                        if msg != expected {
                            problems.push(format!("retMsg {msg:?}, expected {expected:?}"));
                        }
                    }
                }
            }
        }
    }
    match reply_auth {
        None => problems.push("reply not signed".to_owned()),
        Some(auth) => {
            if let Err(e) = app
                .keys
                .verify(Some(&auth), &reply, OffsetDateTime::now_utc())
            {
                problems.push(format!("reply signature does not verify: {e}"));
            }
            let parsed = Authorization::parse(&auth).unwrap();
            assert_eq!(parsed.algorithm, Algorithm::HmacSha256Basic);
        }
    }
    let written: Vec<&dingdang_tests::StoredItem> =
        after.iter().filter(|i| !before.contains(i)).collect();
    let changed = before.iter().any(|i| !after.contains(i));
    match &case.expect_kept {
        None => {
            if before != after {
                problems.push(format!(
                    "wrote to the table: {} items before, {} after",
                    before.len(),
                    after.len()
                ));
            }
        }
        Some(reason) => {
            let kept = |i: &&dingdang_tests::StoredItem| {
                dingdang_tests::text(i, "pk").is_some_and(|pk| pk.starts_with("UNMATCHED#"))
                    && dingdang_tests::text(i, "reason").as_deref() == Some(reason.as_str())
                    && dingdang_tests::text(i, "payload").as_deref()
                        == Some(String::from_utf8_lossy(&sent).as_ref())
            };
            if changed || written.len() != 1 || !written.iter().all(kept) {
                problems.push(format!(
                    "expected only the kept notice ({reason}) to be written: {} items before, {} after, new {written:?}",
                    before.len(),
                    after.len()
                ));
            }
        }
    }
    if problems.is_empty() {
        None
    } else {
        Some(format!("{} — reply {text}", problems.join("; ")))
    }
}

/// Runs every case of `dir` against `target`; panics listing all the cases
/// that failed.
async fn run_corpus(app: &App, dir: &str, target: &Target, at_least: usize) {
    let files = corpus_files(dir);
    assert!(
        files.len() >= at_least,
        "{dir}: {} cases, expected at least {at_least}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        if let Some(problem) = run_case(app, target, file).await {
            failures.push(format!(
                "{}: {problem}",
                file.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn every_bad_ship_notification_in_the_corpus_is_refused_without_a_write() {
    let app = spawn_app(Settings::hmac()).await;
    let trade = id("ORD");
    app.create_order(&trade, AMOUNT).await;
    run_corpus(
        &app,
        "corpus/ship-notify",
        &Target::ship_notify(&trade),
        100,
    )
    .await;

    // The order the cases aimed at is untouched, and a valid notification
    // for it still goes through: nothing above poisoned it.
    let (_, order) = app.get(&format!("/orders/{trade}")).await;
    assert_eq!(order["status"], "CREATED");
    let txn = id("T");
    let answer = app
        .ship(dingdang_tests::ship_body(&txn, &trade, AMOUNT, &id("N")))
        .await;
    assert_eq!(answer.ret_code(), "SUCCESS");
}

/// A stack whose simulator never finishes refunds on its own, holding a
/// `PROCESSING` refund of [`REFUND_AMOUNT`] of a paid order of
/// [`REFUND_ORDER_AMOUNT`]; returns the refund as the API shows it.
async fn stack_with_processing_refund() -> (dingdang_tests::Stack, serde_json::Value) {
    let stack = dingdang_tests::hmac_stack(Settings::hmac(), |c| {
        c.refund_delay = std::time::Duration::from_secs(3600)
    })
    .await;
    let trade = id("ORD");
    stack.paid_order(&trade, REFUND_ORDER_AMOUNT).await;
    let refund_trade = id("RF");
    let (status, created) = stack
        .app
        .post_json(
            "/refunds",
            serde_json::json!({"tradeNo": trade, "refundTradeNo": refund_trade, "refundAmt": REFUND_AMOUNT}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let refund = stack.wait_refund(&refund_trade, "PROCESSING").await;
    (stack, refund)
}

#[tokio::test]
async fn every_bad_refund_notification_in_the_corpus_is_refused_without_a_write() {
    let (stack, refund) = stack_with_processing_refund().await;
    let target = Target::refund_notify(&refund);
    run_corpus(&stack.app, "corpus/refund-notify", &target, 40).await;

    // The refund the cases aimed at is untouched, and a valid notification
    // for it still goes through: nothing above poisoned it.
    let refund_trade = refund["refundTradeNo"].as_str().unwrap();
    stack.wait_refund(refund_trade, "PROCESSING").await;
    let (status, reply) = stack
        .sim
        .send_refund_notify(refund_trade, "SUCCESS")
        .await
        .unwrap();
    assert_eq!((status, reply["retCode"].as_str()), (200, Some("SUCCESS")));
    stack.wait_refund(refund_trade, "SUCCESS").await;
}

#[tokio::test]
async fn every_bad_create_order_request_in_the_corpus_is_refused_without_a_write() {
    let app = spawn_app(Settings::hmac()).await;
    let target = Target::create_order();
    run_corpus(&app, "corpus/create-order", &target, 30).await;
    assert!(dingdang_tests::all_items(&app.store).await.is_empty());

    // A valid request still creates an order.
    let body = Placeholders::new(&target).apply(target.valid.as_bytes());
    let authorization = dingdang_tests::sign(&app.keys, &body);
    let answer = app.post_path(target.path, body, Some(authorization)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.ret_code(), "SUCCESS");
}
