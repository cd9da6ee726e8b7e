//! A local stand-in for the Dingdang (叮当) platform, for tests (in-process)
//! and for a partner trying the stack by hand (the `dingdang-sim` binary).
//!
//! It serves the platform's `paycgi` API under `/paycgi`:
//!
//! - `POST /paycgi/orderquery`, `/paycgi/refund`, `/paycgi/refundquery`:
//!   every request's `Authorization` is verified over the raw body with
//!   [`SimConfig::keys`] (wrong or missing → HTTP 401
//!   `{"retCode":"FAIL","retMsg":"bad signature"}`), the body is parsed with
//!   the protocol types of `dingdang` (invalid → HTTP 400, `FAIL`), and the
//!   skill id must be [`SimConfig::skill_id`] (`FAIL` "unknown skill").
//!   Replies are written with `domainId` when the request used `domainId`,
//!   with `skillId` otherwise, and signed unless signing is switched off.
//! - `POST /admin/pay` `{"tradeNo":..,"totalAmt":..}` →
//!   `{"transactionId":..,"shipReply":..}` and `POST /admin/pay-silently`
//!   (unsigned; a local tool only), so a person can pay by hand.
//! - `GET /admin/orders/{tradeNo}` (the paid order, its refunds and
//!   `refundedAmt`), `GET /admin/refunds/{refundTradeNo}`, and
//!   `POST /admin/settle-refund` `{"refundTradeNo":..,"status":"SUCCESS"|"FAIL","notify":false}`
//!   (a `PROCESSING` refund reaches its final state now; see
//!   [`Simulator::settle_refund`]).
//! - `POST /fulfil`: a stand-in for the partner's fulfilment webhook
//!   (`FULFILLMENT_URL`) that counts the signed requests it accepts by
//!   `Idempotency-Key`; `GET /admin/fulfilments` and
//!   `GET /admin/fulfilments/{key}` show the counts.
//!
//! [`scenario`] plays the platform's bad days (duplicate, early, late and
//! lost notifications) against a running partner stack and checks what must
//! still hold.
//!
//! Orders exist only once [`Simulator::pay`] or [`Simulator::pay_silently`]
//! created them. An order query for any other order answers `FAIL` with
//! `retMsg` "order not found" (the platform could also plausibly answer
//! `SUCCESS` with `tradeStatus` `NOTPAY`; this simulator chooses `FAIL`, so
//! a partner must handle a `FAIL` reply to an order query).
//!
//! Refunds follow the platform's rules as far as the protocol states them:
//! the order must be paid, `totalAmt` must equal the order's, refunds not
//! `FAIL` plus the new one must not exceed the order ("refund exceeds
//! order"); the same `refundTradeNo` with the same order and amount returns
//! the existing refund, with anything else is refused. A new refund is
//! `PROCESSING`, then after [`SimConfig::refund_delay`] becomes
//! [`SimConfig::refund_outcome`] (a `FAIL` releases its amount) and, when
//! [`SimConfig::refund_notify_url`] is set, a signed refund result
//! notification is POSTed there (retried up to 3 times, with a short
//! backoff, while the reply is not HTTP 2xx with `retCode` `SUCCESS`).
//!
//! Notifications are signed with the platform's signer. The ship
//! notification is written in the 2018 revision (`domainId`) when the keys
//! are HMAC and the 2019 revision (`skillId`) when they are RSA2 (see
//! [`Simulator::set_notify_revision`]); a refund result notification uses
//! the revision of the refund request that created the refund.

pub mod scenario;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use dingdang::protocol::{
    self, AcceptedRefund, Fen, NonceStr, OrderQueryReply, OrderQueryRequest, OrderRef,
    QueriedOrder, QueriedRefund, RefundNotify, RefundQueryReply, RefundQueryRequest, RefundRef,
    RefundReply, RefundRequest, RefundStatus, RefundTradeNo, RefundTransactionId, Reply, RetCode,
    Revision, SkillId, TradeNo, TradeStatus, TransactionId,
};
use dingdang::signing::{self, Algorithm, Authorization, HmacSecret, KeyRing, Signer, Verifier};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The reply (or delivery failure) of one notification: the HTTP status and
/// the reply body as JSON (a JSON string holding the text when the body is
/// not JSON), or why nothing came back.
pub type NotifyResult = Result<(u16, Value), String>;

/// What a refund becomes after [`SimConfig::refund_delay`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundOutcome {
    /// `SUCCESS`
    Success,
    /// `FAIL` (the amount is released).
    Fail,
}

impl RefundOutcome {
    /// The final refund status.
    pub fn status(self) -> RefundStatus {
        match self {
            RefundOutcome::Success => RefundStatus::Success,
            RefundOutcome::Fail => RefundStatus::Fail,
        }
    }
}

impl FromStr for RefundOutcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "success" => Ok(RefundOutcome::Success),
            "fail" => Ok(RefundOutcome::Fail),
            _ => Err("expected success or fail".to_owned()),
        }
    }
}

/// How the simulated platform behaves.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The skill id requests must carry.
    pub skill_id: String,
    /// The platform side: `signer` signs replies and notifications,
    /// `verifier` checks the partner's requests (within `skew`).
    pub keys: KeyRing,
    /// How long a new refund stays `PROCESSING`.
    pub refund_delay: Duration,
    /// The final state of a refund after the delay.
    pub refund_outcome: RefundOutcome,
    /// When set, a signed refund result notification (§5) is POSTed here
    /// when a refund reaches its final state.
    pub refund_notify_url: Option<String>,
    /// When set, [`Simulator::pay`] POSTs a signed ship notification (§1)
    /// here.
    pub ship_notify_url: Option<String>,
    /// `false`: replies carry no `Authorization`.
    pub sign_replies: bool,
}

impl SimConfig {
    /// `skill_id` and `keys`, refunds succeeding after 2 s, no
    /// notification URLs, signed replies.
    pub fn new(skill_id: impl Into<String>, keys: KeyRing) -> Self {
        Self {
            skill_id: skill_id.into(),
            keys,
            refund_delay: Duration::from_secs(2),
            refund_outcome: RefundOutcome::Success,
            refund_notify_url: None,
            ship_notify_url: None,
            sign_replies: true,
        }
    }

    /// [`SimConfig::new`] with TSK-HMAC-SHA256-BASIC keys from the shared
    /// `secret` and the default clock window.
    pub fn hmac(skill_id: impl Into<String>, secret: &str) -> Self {
        Self::new(skill_id, hmac_keys(secret))
    }

    /// Reads the platform side of the functions' environment variables
    /// through `get`: `DINGDANG_SKILL_ID`, `DINGDANG_SIGN_ALG` (default
    /// TSK-HMAC-SHA256-BASIC), `DINGDANG_CLOCK_SKEW_SECS` (default 180) and
    /// either `DINGDANG_SKILL_SECRET` (HMAC, comma-separated, the first signs)
    /// or `DINGDANG_PLATFORM_PRIVATE_KEY` (to sign) and
    /// `DINGDANG_SKILL_PUBLIC_KEY` (to verify) for TSK-RSA2. Errors name the
    /// variable, never its value. The other settings are those of
    /// [`SimConfig::new`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &str| var(name).ok_or_else(|| format!("{name} is not set"));
        let skill_id = required("DINGDANG_SKILL_ID")?;
        SkillId::parse(&skill_id).map_err(|e| format!("DINGDANG_SKILL_ID is malformed: {e}"))?;
        let algorithm = match var("DINGDANG_SIGN_ALG") {
            None => Algorithm::HmacSha256Basic,
            Some(v) => v.parse().map_err(|_| {
                "DINGDANG_SIGN_ALG is malformed: expected TSK-HMAC-SHA256-BASIC or TSK-RSA2"
                    .to_owned()
            })?,
        };
        let skew = match var("DINGDANG_CLOCK_SKEW_SECS") {
            None => KeyRing::DEFAULT_SKEW,
            Some(v) => Duration::from_secs(v.parse().map_err(|_| {
                "DINGDANG_CLOCK_SKEW_SECS is malformed: expected whole seconds".to_owned()
            })?),
        };
        let keys = match algorithm {
            Algorithm::HmacSha256Basic => {
                let secrets = HmacSecret::list(&required("DINGDANG_SKILL_SECRET")?)
                    .map_err(|e| format!("DINGDANG_SKILL_SECRET is malformed: {e}"))?;
                KeyRing {
                    signer: Signer::Hmac(secrets[0].clone()),
                    verifier: Verifier::hmac(secrets),
                    skew,
                }
            }
            Algorithm::Rsa2 => {
                let private =
                    signing::parse_private_key(&required("DINGDANG_PLATFORM_PRIVATE_KEY")?)
                        .map_err(|e| format!("DINGDANG_PLATFORM_PRIVATE_KEY is malformed: {e}"))?;
                let public = signing::parse_public_keys(&required("DINGDANG_SKILL_PUBLIC_KEY")?)
                    .map_err(|e| format!("DINGDANG_SKILL_PUBLIC_KEY is malformed: {e}"))?;
                KeyRing {
                    signer: Signer::rsa2(private),
                    verifier: Verifier::rsa2(public),
                    skew,
                }
            }
        };
        Ok(Self::new(skill_id, keys))
    }
}

/// A TSK-HMAC-SHA256-BASIC key ring of one shared secret (both sides use
/// the same one), with the default clock window.
pub fn hmac_keys(secret: &str) -> KeyRing {
    KeyRing {
        signer: Signer::Hmac(HmacSecret::new(secret)),
        verifier: Verifier::hmac(vec![HmacSecret::new(secret)]),
        skew: KeyRing::DEFAULT_SKEW,
    }
}

/// A paid order as the simulator holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOrder {
    /// The partner's order number.
    pub trade_no: String,
    /// The platform's payment serial.
    pub transaction_id: String,
    /// Order amount in fen.
    pub total_amt: i64,
}

/// A refund as the simulator holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRefund {
    /// The partner's refund number.
    pub refund_trade_no: String,
    /// The platform's refund serial.
    pub refund_transaction_id: String,
    /// The partner's order number.
    pub trade_no: String,
    /// The platform's payment serial.
    pub transaction_id: String,
    /// Order amount in fen.
    pub total_amt: i64,
    /// Refund amount in fen.
    pub refund_amt: i64,
    /// `PROCESSING`, then `SUCCESS` or `FAIL`.
    pub status: RefundStatus,
}

impl SimOrder {
    /// As the admin API shows it: `tradeNo`, `transactionId`, `totalAmt`.
    pub fn to_json(&self) -> Value {
        json!({
            "tradeNo": self.trade_no,
            "transactionId": self.transaction_id,
            "totalAmt": self.total_amt,
        })
    }
}

impl SimRefund {
    /// As the admin API shows it, with the protocol's field names and
    /// `refundStatus` `PROCESSING`, `SUCCESS` or `FAIL`.
    pub fn to_json(&self) -> Value {
        json!({
            "refundTradeNo": self.refund_trade_no,
            "refundTransactionId": self.refund_transaction_id,
            "tradeNo": self.trade_no,
            "transactionId": self.transaction_id,
            "totalAmt": self.total_amt,
            "refundAmt": self.refund_amt,
            "refundStatus": self.status.to_string(),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    OrderQuery = 0,
    Refund = 1,
    RefundQuery = 2,
}

impl Endpoint {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "orderquery" => Some(Endpoint::OrderQuery),
            "refund" => Some(Endpoint::Refund),
            "refundquery" => Some(Endpoint::RefundQuery),
            _ => None,
        }
    }
}

struct Order {
    trade_no: TradeNo,
    transaction_id: TransactionId,
    total_amt: Fen,
}

struct Refund {
    trade_no: TradeNo,
    transaction_id: TransactionId,
    refund_trade_no: RefundTradeNo,
    refund_transaction_id: RefundTransactionId,
    total_amt: Fen,
    refund_amt: Fen,
    status: RefundStatus,
    /// The revision of the request that created it, for its notification.
    revision: Revision,
}

impl Refund {
    fn public(&self) -> SimRefund {
        SimRefund {
            refund_trade_no: self.refund_trade_no.to_string(),
            refund_transaction_id: self.refund_transaction_id.to_string(),
            trade_no: self.trade_no.to_string(),
            transaction_id: self.transaction_id.to_string(),
            total_amt: self.total_amt.get(),
            refund_amt: self.refund_amt.get(),
            status: self.status,
        }
    }
}

#[derive(Default)]
struct Ledger {
    /// By tradeNo.
    orders: HashMap<String, Order>,
    /// transactionId → tradeNo.
    by_transaction: HashMap<String, String>,
    /// By refundTradeNo.
    refunds: HashMap<String, Refund>,
    /// refundTransactionId → refundTradeNo.
    by_refund_transaction: HashMap<String, String>,
}

impl Ledger {
    fn order(&self, order: &OrderRef) -> Option<&Order> {
        match order {
            OrderRef::TradeNo(t) => self.orders.get(t.as_str()),
            OrderRef::TransactionId(t) => self
                .by_transaction
                .get(t.as_str())
                .and_then(|trade_no| self.orders.get(trade_no)),
        }
    }

    fn refund(&self, refund: &RefundRef) -> Option<&Refund> {
        match refund {
            RefundRef::RefundTradeNo(t) => self.refunds.get(t.as_str()),
            RefundRef::RefundTransactionId(t) => self
                .by_refund_transaction
                .get(t.as_str())
                .and_then(|r| self.refunds.get(r)),
        }
    }

    /// Refunded or being refunded (not `FAIL`) on the order.
    fn committed(&self, transaction_id: &TransactionId) -> i128 {
        self.refunds
            .values()
            .filter(|r| &r.transaction_id == transaction_id && r.status != RefundStatus::Fail)
            .map(|r| i128::from(r.refund_amt.get()))
            .sum()
    }
}

struct Inner {
    config: SimConfig,
    skill_id: SkillId,
    addr: SocketAddr,
    http: reqwest::Client,
    ledger: Mutex<Ledger>,
    calls: [AtomicUsize; 3],
    fail_next_refunds: AtomicUsize,
    hang_next_refunds: Mutex<(usize, Duration)>,
    sign_replies: AtomicBool,
    bad_reply_signatures: AtomicBool,
    log_requests: AtomicBool,
    notify_revision: Mutex<Revision>,
    last_ship_reply: Mutex<Option<NotifyResult>>,
    refund_notify_replies: Mutex<Vec<(String, NotifyResult)>>,
    /// Successful `POST /fulfil` calls by `Idempotency-Key`.
    fulfilments: Mutex<HashMap<String, usize>>,
}

/// A running simulated platform. Cheap to clone; the server runs on the
/// Tokio runtime it was started on until that runtime shuts down.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.inner.addr)
            .field("skill_id", &self.inner.config.skill_id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `n` random ASCII letters and digits.
fn random_alnum(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// A serial: `prefix`, the UTC time `YYYYMMDDHHMMSS`, random letters and
/// digits; 28 characters for a 2-letter prefix.
fn serial(prefix: &str) -> String {
    let now = OffsetDateTime::now_utc();
    format!(
        "{prefix}{:04}{:02}{:02}{:02}{:02}{:02}{}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        random_alnum(12)
    )
}

fn nonce() -> NonceStr {
    NonceStr::parse(&random_alnum(32)).expect("32 letters and digits")
}

fn refund_status_desc(status: RefundStatus) -> &'static str {
    match status {
        RefundStatus::Processing => "退款中",
        RefundStatus::Success => "退款成功",
        RefundStatus::Fail => "退款失败",
    }
}

/// The revision a request was written in: 2018 when its raw JSON has a
/// top-level `domainId`.
fn request_revision(body: &[u8]) -> Revision {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) if map.contains_key("domainId") => Revision::R2018,
        _ => Revision::R2019,
    }
}

/// One reply before signing.
struct Answer {
    status: StatusCode,
    ret_code: RetCode,
    body: Vec<u8>,
}

impl Answer {
    fn new<T: Serialize>(status: StatusCode, ret_code: RetCode, msg: &T, rev: Revision) -> Self {
        Self {
            status,
            ret_code,
            body: protocol::to_wire(msg, rev),
        }
    }

    fn fail(status: StatusCode, msg: &str, rev: Revision) -> Self {
        Self::new(status, RetCode::Fail, &Reply::fail(msg), rev)
    }
}

/// Changes the signature of `auth` so that it no longer verifies: HMAC
/// signatures are remade with another secret, RSA2 ones have a byte flipped.
fn spoil(auth: Authorization, body: &[u8]) -> Authorization {
    match auth.algorithm {
        Algorithm::HmacSha256Basic => {
            Signer::Hmac(HmacSecret::new("not-the-platform-secret")).sign_at(body, auth.datetime)
        }
        Algorithm::Rsa2 => {
            let mut raw = STANDARD.decode(&auth.signature).unwrap_or_default();
            match raw.first_mut() {
                Some(b) => *b ^= 0x01,
                None => raw.push(0),
            }
            Authorization {
                signature: STANDARD.encode(raw),
                ..auth
            }
        }
    }
}

fn reply_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Simulator {
    /// Starts a simulator on `127.0.0.1` with a free port.
    ///
    /// # Panics
    /// If the skill id is invalid or no port can be bound.
    pub async fn spawn(config: SimConfig) -> Simulator {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::bind(config, addr)
            .await
            .expect("simulator binds 127.0.0.1:0")
    }

    /// Starts a simulator listening on `addr`; the invalid skill id is an
    /// `InvalidInput` error.
    pub async fn bind(config: SimConfig, addr: SocketAddr) -> std::io::Result<Simulator> {
        let skill_id = SkillId::parse(&config.skill_id).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("skill id: {e}"))
        })?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?;
        let notify_revision = match config.keys.signer.algorithm() {
            Algorithm::HmacSha256Basic => Revision::R2018,
            Algorithm::Rsa2 => Revision::R2019,
        };
        let sim = Simulator {
            inner: Arc::new(Inner {
                sign_replies: AtomicBool::new(config.sign_replies),
                config,
                skill_id,
                addr,
                http,
                ledger: Mutex::new(Ledger::default()),
                calls: Default::default(),
                fail_next_refunds: AtomicUsize::new(0),
                hang_next_refunds: Mutex::new((0, Duration::ZERO)),
                bad_reply_signatures: AtomicBool::new(false),
                log_requests: AtomicBool::new(false),
                notify_revision: Mutex::new(notify_revision),
                last_ship_reply: Mutex::new(None),
                refund_notify_replies: Mutex::new(Vec::new()),
                fulfilments: Mutex::new(HashMap::new()),
            }),
        };
        let app = sim.router();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("dingdang-sim: server stopped: {e}");
            }
        });
        Ok(sim)
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/paycgi/orderquery", post(order_query_route))
            .route("/paycgi/refund", post(refund_route))
            .route("/paycgi/refundquery", post(refund_query_route))
            .route("/admin/pay", post(admin_pay_route))
            .route("/admin/pay-silently", post(admin_pay_silently_route))
            .route("/admin/orders/{trade_no}", get(admin_order_route))
            .route("/admin/refunds/{refund_trade_no}", get(admin_refund_route))
            .route("/admin/settle-refund", post(admin_settle_route))
            .route("/admin/fulfilments", get(admin_fulfilments_route))
            .route("/admin/fulfilments/{key}", get(admin_fulfilment_route))
            .route("/fulfil", post(fulfil_route))
            .with_state(self.clone())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The `paycgi` base URL, e.g. `http://127.0.0.1:PORT/paycgi` (the value
    /// of `DINGDANG_API_BASE`).
    pub fn api_base(&self) -> String {
        format!("http://{}/paycgi", self.inner.addr)
    }

    /// Prints one line per request handled (method, path, `retCode`) and per
    /// notification sent to stderr (off by default; the binary turns it on).
    pub fn set_request_log(&self, on: bool) {
        self.inner.log_requests.store(on, Ordering::Relaxed);
    }

    fn log(&self, line: impl FnOnce() -> String) {
        if self.inner.log_requests.load(Ordering::Relaxed) {
            eprintln!("{}", line());
        }
    }

    /// The revision ship notifications are written in (default: 2018 for
    /// HMAC keys, 2019 for RSA2 keys).
    pub fn set_notify_revision(&self, revision: Revision) {
        *lock(&self.inner.notify_revision) = revision;
    }

    /// Records `trade_no` as paid, or returns the serial of the same paid
    /// order again.
    fn record_payment(&self, trade_no: &str, total_amt: i64) -> Result<String, String> {
        let trade_no = TradeNo::parse(trade_no).map_err(|e| format!("tradeNo {e}"))?;
        let total_amt = Fen::new(total_amt).map_err(|e| format!("totalAmt {e}"))?;
        let mut ledger = lock(&self.inner.ledger);
        if let Some(order) = ledger.orders.get(trade_no.as_str()) {
            return if order.total_amt == total_amt {
                Ok(order.transaction_id.to_string())
            } else {
                Err("tradeNo already paid with another amount".to_owned())
            };
        }
        let transaction_id = TransactionId::parse(&serial("TX")).expect("serial is valid");
        ledger
            .by_transaction
            .insert(transaction_id.to_string(), trade_no.to_string());
        ledger.orders.insert(
            trade_no.to_string(),
            Order {
                trade_no,
                transaction_id: transaction_id.clone(),
                total_amt,
            },
        );
        Ok(transaction_id.into_string())
    }

    /// Records the order as paid (`SUCCESS`) with a new `transactionId`
    /// (28 letters and digits) and returns it. When
    /// [`SimConfig::ship_notify_url`] is set, POSTs a signed ship
    /// notification there first and returns after its reply (see
    /// [`Simulator::last_ship_reply`]). Paying the same `tradeNo` and amount
    /// again returns the same `transactionId` (and notifies again).
    ///
    /// # Panics
    /// If `trade_no` is not 1 to 32 letters and digits, `total_amt` is not
    /// positive, or the order was paid with another amount.
    pub async fn pay(&self, trade_no: &str, total_amt: i64) -> String {
        let transaction_id = self
            .record_payment(trade_no, total_amt)
            .unwrap_or_else(|e| panic!("Simulator::pay: {e}"));
        if self.inner.config.ship_notify_url.is_some() {
            let _ = self.send_ship_notify(&transaction_id).await;
        }
        transaction_id
    }

    /// Like [`Simulator::pay`] but sends no notification (a lost one).
    ///
    /// # Panics
    /// As [`Simulator::pay`].
    pub async fn pay_silently(&self, trade_no: &str, total_amt: i64) -> String {
        self.record_payment(trade_no, total_amt)
            .unwrap_or_else(|e| panic!("Simulator::pay_silently: {e}"))
    }

    /// The paid order `trade_no`.
    pub fn order(&self, trade_no: &str) -> Option<SimOrder> {
        lock(&self.inner.ledger)
            .orders
            .get(trade_no)
            .map(|o| SimOrder {
                trade_no: o.trade_no.to_string(),
                transaction_id: o.transaction_id.to_string(),
                total_amt: o.total_amt.get(),
            })
    }

    /// (Re)sends the ship notification of a paid order, with a fresh
    /// `nonceStr` and `Datetime`, to [`SimConfig::ship_notify_url`].
    pub async fn send_ship_notify(&self, transaction_id: &str) -> NotifyResult {
        let url = self
            .inner
            .config
            .ship_notify_url
            .clone()
            .ok_or("no ship_notify_url configured")?;
        let notify = {
            let ledger = lock(&self.inner.ledger);
            let order = ledger
                .by_transaction
                .get(transaction_id)
                .and_then(|t| ledger.orders.get(t))
                .ok_or("unknown transactionId")?;
            protocol::ShipNotify {
                skill_id: self.inner.skill_id.clone(),
                transaction_id: order.transaction_id.clone(),
                trade_no: order.trade_no.clone(),
                total_amt: order.total_amt,
                nonce_str: nonce(),
                user_token: None,
            }
        };
        let revision = *lock(&self.inner.notify_revision);
        let result = self
            .post_signed(&url, protocol::to_wire(&notify, revision))
            .await;
        self.log(|| format!("-> ship notify {}: {}", notify.trade_no, describe(&result)));
        *lock(&self.inner.last_ship_reply) = Some(result.clone());
        result
    }

    /// The reply to the last ship notification sent, if any.
    pub fn last_ship_reply(&self) -> Option<NotifyResult> {
        lock(&self.inner.last_ship_reply).clone()
    }

    /// Sends a refund result notification with `status` (`PROCESSING`,
    /// `SUCCESS` or `FAIL`) for a known refund to
    /// [`SimConfig::refund_notify_url`], once, without changing the refund.
    pub async fn send_refund_notify(&self, refund_trade_no: &str, status: &str) -> NotifyResult {
        let status: RefundStatus = status.parse().map_err(|e| format!("status {e}"))?;
        let url = self
            .inner
            .config
            .refund_notify_url
            .clone()
            .ok_or("no refund_notify_url configured")?;
        let notify = self
            .refund_notify(refund_trade_no, Some(status))
            .ok_or("unknown refundTradeNo")?;
        self.deliver_refund_notify(&url, notify).await
    }

    /// Posts one signed refund result notification to `url`, logs it and
    /// records its reply (see [`Simulator::refund_notify_replies`]).
    async fn deliver_refund_notify(
        &self,
        url: &str,
        (notify, revision): (RefundNotify, Revision),
    ) -> NotifyResult {
        let refund_trade_no = notify.refund_trade_no.as_str().to_owned();
        let status = notify.refund_status;
        let result = self
            .post_signed(url, protocol::to_wire(&notify, revision))
            .await;
        self.log(|| {
            format!(
                "-> refund notify {refund_trade_no} {status}: {}",
                describe(&result)
            )
        });
        lock(&self.inner.refund_notify_replies).push((refund_trade_no, result.clone()));
        result
    }

    /// Every refund result notification sent so far (automatic ones
    /// including each retry, and [`Simulator::send_refund_notify`]):
    /// `(refundTradeNo, reply)`.
    pub fn refund_notify_replies(&self) -> Vec<(String, NotifyResult)> {
        lock(&self.inner.refund_notify_replies).clone()
    }

    /// The notification for a refund, with its current status or `status`.
    fn refund_notify(
        &self,
        refund_trade_no: &str,
        status: Option<RefundStatus>,
    ) -> Option<(RefundNotify, Revision)> {
        let ledger = lock(&self.inner.ledger);
        let r = ledger.refunds.get(refund_trade_no)?;
        let status = status.unwrap_or(r.status);
        let notify = RefundNotify {
            skill_id: self.inner.skill_id.clone(),
            transaction_id: r.transaction_id.clone(),
            trade_no: r.trade_no.clone(),
            refund_transaction_id: r.refund_transaction_id.clone(),
            refund_trade_no: r.refund_trade_no.clone(),
            total_amt: r.total_amt,
            refund_amt: r.refund_amt,
            refund_status: status,
            refund_status_desc: Some(refund_status_desc(status).to_owned()),
            nonce_str: nonce(),
        };
        Some((notify, r.revision))
    }

    /// POSTs `body` signed with the platform's signer.
    async fn post_signed(&self, url: &str, body: Vec<u8>) -> NotifyResult {
        let authorization = self
            .inner
            .config
            .keys
            .sign(&body, OffsetDateTime::now_utc());
        let response = self
            .inner
            .http
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, authorization.to_string())
            .body(body)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| error_chain(&e))?;
        Ok((status, reply_json(&bytes)))
    }

    /// Moves a refund to the configured outcome after the delay, then
    /// notifies (with retries) when so configured. Does nothing when the
    /// refund is no longer `PROCESSING` by then (see
    /// [`Simulator::settle_refund`]).
    fn schedule_outcome(&self, refund_trade_no: String) {
        let sim = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(sim.inner.config.refund_delay).await;
            let outcome = sim.inner.config.refund_outcome.status();
            {
                let mut ledger = lock(&sim.inner.ledger);
                match ledger.refunds.get_mut(&refund_trade_no) {
                    Some(r) if r.status == RefundStatus::Processing => r.status = outcome,
                    _ => return,
                }
            }
            sim.notify_final(&refund_trade_no).await;
        });
    }

    /// Sends the refund result notification of a refund in its current
    /// state to [`SimConfig::refund_notify_url`] (when set), retried up to 3
    /// times with a short backoff while the reply is not HTTP 2xx with
    /// `retCode` `SUCCESS`.
    async fn notify_final(&self, refund_trade_no: &str) {
        let Some(url) = self.inner.config.refund_notify_url.clone() else {
            return;
        };
        for attempt in 0..4u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << (attempt - 1))).await;
            }
            let Some(notify) = self.refund_notify(refund_trade_no, None) else {
                return;
            };
            let result = self.deliver_refund_notify(&url, notify).await;
            let delivered = matches!(
                &result,
                Ok((status, reply)) if (200..300).contains(status) && reply["retCode"] == "SUCCESS"
            );
            if delivered {
                return;
            }
        }
    }

    /// Moves a `PROCESSING` refund to `outcome` now, instead of after
    /// [`SimConfig::refund_delay`] (the delayed change then does nothing).
    /// With `notify`, its refund result notification is sent in the
    /// background as after the delay. A refund already in `outcome` is
    /// returned as it is; one already in the other final state is an error,
    /// as is an unknown one.
    pub fn settle_refund(
        &self,
        refund_trade_no: &str,
        outcome: RefundOutcome,
        notify: bool,
    ) -> Result<SimRefund, String> {
        let wanted = outcome.status();
        let refund = {
            let mut ledger = lock(&self.inner.ledger);
            let r = ledger
                .refunds
                .get_mut(refund_trade_no)
                .ok_or("refund not found")?;
            if r.status == wanted {
                return Ok(r.public());
            }
            if r.status != RefundStatus::Processing {
                return Err(format!("refund is already {}", r.status));
            }
            r.status = wanted;
            r.public()
        };
        if notify {
            let sim = self.clone();
            let refund_trade_no = refund_trade_no.to_owned();
            tokio::spawn(async move { sim.notify_final(&refund_trade_no).await });
        }
        Ok(refund)
    }

    /// The refunds of the order `trade_no`, by `refundTradeNo`.
    pub fn refunds_of(&self, trade_no: &str) -> Vec<SimRefund> {
        let mut refunds: Vec<SimRefund> = lock(&self.inner.ledger)
            .refunds
            .values()
            .filter(|r| r.trade_no.as_str() == trade_no)
            .map(Refund::public)
            .collect();
        refunds.sort_by(|a, b| a.refund_trade_no.cmp(&b.refund_trade_no));
        refunds
    }

    /// How many times `POST /fulfil` accepted the `Idempotency-Key` `key`.
    pub fn fulfilments(&self, key: &str) -> usize {
        lock(&self.inner.fulfilments).get(key).copied().unwrap_or(0)
    }

    /// Every `Idempotency-Key` `POST /fulfil` accepted, with its count.
    pub fn fulfilment_counts(&self) -> HashMap<String, usize> {
        lock(&self.inner.fulfilments).clone()
    }

    /// Signature-valid `/refund` requests received.
    pub fn refund_calls(&self) -> usize {
        self.calls("refund")
    }

    /// Signature-valid requests received by `endpoint` (`"orderquery"`,
    /// `"refund"` or `"refundquery"`; 0 for any other name).
    pub fn calls(&self, endpoint: &str) -> usize {
        Endpoint::parse(endpoint)
            .map(|e| self.inner.calls[e as usize].load(Ordering::SeqCst))
            .unwrap_or(0)
    }

    /// Answers `retCode` `FAIL` ("insufficient balance") to the next `n`
    /// valid refund requests, recording nothing.
    pub fn fail_next_refunds(&self, n: usize) {
        self.inner.fail_next_refunds.store(n, Ordering::SeqCst);
    }

    /// Handles the next `n` valid refund requests as usual (a new refund is
    /// recorded `PROCESSING`) but waits `delay` before answering.
    pub fn hang_next_refunds(&self, n: usize, delay: Duration) {
        *lock(&self.inner.hang_next_refunds) = (n, delay);
    }

    /// Whether replies carry an `Authorization`.
    pub fn set_sign_replies(&self, on: bool) {
        self.inner.sign_replies.store(on, Ordering::SeqCst);
    }

    /// Signs replies so that they do not verify (a wrong HMAC secret, or a
    /// corrupted RSA2 signature).
    pub fn set_bad_reply_signatures(&self, on: bool) {
        self.inner.bad_reply_signatures.store(on, Ordering::SeqCst);
    }

    /// A refund by `refundTradeNo`.
    pub fn refund_state(&self, refund_trade_no: &str) -> Option<SimRefund> {
        lock(&self.inner.ledger)
            .refunds
            .get(refund_trade_no)
            .map(Refund::public)
    }

    /// The HTTP response: JSON, signed unless signing is off.
    fn respond(&self, status: StatusCode, body: Vec<u8>) -> Response {
        let mut response = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body.clone(),
        )
            .into_response();
        if self.inner.sign_replies.load(Ordering::SeqCst) {
            let mut auth = self
                .inner
                .config
                .keys
                .sign(&body, OffsetDateTime::now_utc());
            if self.inner.bad_reply_signatures.load(Ordering::SeqCst) {
                auth = spoil(auth, &body);
            }
            if let Ok(value) = HeaderValue::from_str(&auth.to_string()) {
                response.headers_mut().insert(header::AUTHORIZATION, value);
            }
        }
        response
    }

    async fn handle(
        &self,
        endpoint: Endpoint,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let rev = request_revision(body);
        let answer = self.process(endpoint, headers, body, rev).await;
        self.log(|| {
            format!(
                "{} {path} {} {}",
                Method::POST,
                answer.status.as_u16(),
                answer.ret_code
            )
        });
        self.respond(answer.status, answer.body)
    }

    async fn process(
        &self,
        endpoint: Endpoint,
        headers: &HeaderMap,
        body: &[u8],
        rev: Revision,
    ) -> Answer {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if self
            .inner
            .config
            .keys
            .verify(authorization, body, OffsetDateTime::now_utc())
            .is_err()
        {
            return Answer::fail(StatusCode::UNAUTHORIZED, "bad signature", rev);
        }
        self.inner.calls[endpoint as usize].fetch_add(1, Ordering::SeqCst);
        match endpoint {
            Endpoint::OrderQuery => {
                match self.parse::<OrderQueryRequest>(body, rev, |r| &r.skill_id) {
                    Ok(request) => self.order_query(&request, rev),
                    Err(answer) => answer,
                }
            }
            Endpoint::Refund => match self.parse::<RefundRequest>(body, rev, |r| &r.skill_id) {
                Ok(request) => self.refund(&request, rev).await,
                Err(answer) => answer,
            },
            Endpoint::RefundQuery => {
                match self.parse::<RefundQueryRequest>(body, rev, |r| &r.skill_id) {
                    Ok(request) => self.refund_query(&request, rev),
                    Err(answer) => answer,
                }
            }
        }
    }

    fn parse<T: DeserializeOwned>(
        &self,
        body: &[u8],
        rev: Revision,
        skill_id: impl Fn(&T) -> &SkillId,
    ) -> Result<T, Answer> {
        let request: T = protocol::parse(body)
            .map_err(|e| Answer::fail(StatusCode::BAD_REQUEST, &e.to_string(), rev))?;
        if skill_id(&request) != &self.inner.skill_id {
            return Err(Answer::fail(StatusCode::OK, "unknown skill", rev));
        }
        Ok(request)
    }

    fn order_query(&self, request: &OrderQueryRequest, rev: Revision) -> Answer {
        let ledger = lock(&self.inner.ledger);
        let Some(order) = request.order_ref().and_then(|o| ledger.order(&o)) else {
            return Answer::fail(StatusCode::OK, "order not found", rev);
        };
        let reply = OrderQueryReply::success(QueriedOrder {
            skill_id: self.inner.skill_id.clone(),
            transaction_id: order.transaction_id.clone(),
            trade_no: order.trade_no.clone(),
            total_amt: order.total_amt,
            trade_status: TradeStatus::Success,
            trade_status_desc: Some("支付成功".to_owned()),
        });
        Answer::new(StatusCode::OK, RetCode::Success, &reply, rev)
    }

    async fn refund(&self, request: &RefundRequest, rev: Revision) -> Answer {
        let failing = self
            .inner
            .fail_next_refunds
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Answer::fail(StatusCode::OK, "insufficient balance", rev);
        }
        let answer = self.apply_refund(request, rev);
        let hang = {
            let mut hang = lock(&self.inner.hang_next_refunds);
            if hang.0 > 0 {
                hang.0 -= 1;
                Some(hang.1)
            } else {
                None
            }
        };
        if let Some(delay) = hang {
            tokio::time::sleep(delay).await;
        }
        answer
    }

    fn apply_refund(&self, request: &RefundRequest, rev: Revision) -> Answer {
        let fail = |msg: &str| Answer::fail(StatusCode::OK, msg, rev);
        let accepted = |r: &Refund| {
            let reply = RefundReply::success(AcceptedRefund {
                skill_id: self.inner.skill_id.clone(),
                transaction_id: r.transaction_id.clone(),
                trade_no: r.trade_no.clone(),
                refund_transaction_id: r.refund_transaction_id.clone(),
                refund_trade_no: r.refund_trade_no.clone(),
                total_amt: r.total_amt,
                refund_amt: r.refund_amt,
            });
            Answer::new(StatusCode::OK, RetCode::Success, &reply, rev)
        };
        let mut ledger = lock(&self.inner.ledger);
        let Some(order) = request.order_ref().and_then(|o| ledger.order(&o)) else {
            return fail("order not found");
        };
        if request.total_amt != order.total_amt {
            return fail("totalAmt does not match order");
        }
        let (trade_no, transaction_id, total_amt) = (
            order.trade_no.clone(),
            order.transaction_id.clone(),
            order.total_amt,
        );
        if let Some(existing) = ledger.refunds.get(request.refund_trade_no.as_str()) {
            return if existing.transaction_id == transaction_id
                && existing.refund_amt == request.refund_amt
            {
                accepted(existing)
            } else {
                fail("refundTradeNo already used")
            };
        }
        let committed = ledger.committed(&transaction_id);
        if committed + i128::from(request.refund_amt.get()) > i128::from(total_amt.get()) {
            return fail("refund exceeds order");
        }
        let refund = Refund {
            trade_no,
            transaction_id,
            refund_trade_no: request.refund_trade_no.clone(),
            refund_transaction_id: RefundTransactionId::parse(&serial("RF"))
                .expect("serial is valid"),
            total_amt,
            refund_amt: request.refund_amt,
            status: RefundStatus::Processing,
            revision: rev,
        };
        let answer = accepted(&refund);
        ledger.by_refund_transaction.insert(
            refund.refund_transaction_id.to_string(),
            refund.refund_trade_no.to_string(),
        );
        ledger
            .refunds
            .insert(refund.refund_trade_no.to_string(), refund);
        drop(ledger);
        self.schedule_outcome(request.refund_trade_no.to_string());
        answer
    }

    fn refund_query(&self, request: &RefundQueryRequest, rev: Revision) -> Answer {
        let ledger = lock(&self.inner.ledger);
        let Some(r) = request.refund_ref().and_then(|r| ledger.refund(&r)) else {
            return Answer::fail(StatusCode::OK, "refund not found", rev);
        };
        let reply = RefundQueryReply::success(QueriedRefund {
            skill_id: self.inner.skill_id.clone(),
            transaction_id: r.transaction_id.clone(),
            trade_no: r.trade_no.clone(),
            refund_transaction_id: r.refund_transaction_id.clone(),
            refund_trade_no: r.refund_trade_no.clone(),
            total_amt: r.total_amt,
            refund_amt: r.refund_amt,
            refund_status: r.status,
            refund_status_desc: Some(refund_status_desc(r.status).to_owned()),
        });
        Answer::new(StatusCode::OK, RetCode::Success, &reply, rev)
    }

    async fn admin_pay(&self, body: &[u8], notify: bool) -> (StatusCode, Value) {
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let trade_no = request["tradeNo"].as_str().unwrap_or_default();
        let Some(total_amt) = request["totalAmt"].as_i64() else {
            return (
                StatusCode::BAD_REQUEST,
                json!({"retCode": "FAIL", "retMsg": "expected {\"tradeNo\":..,\"totalAmt\":..}"}),
            );
        };
        let transaction_id = match self.record_payment(trade_no, total_amt) {
            Ok(t) => t,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    json!({"retCode": "FAIL", "retMsg": e}),
                )
            }
        };
        if !notify {
            return (
                StatusCode::OK,
                json!({"retCode": "SUCCESS", "transactionId": transaction_id}),
            );
        }
        let ship_reply = if self.inner.config.ship_notify_url.is_some() {
            match self.send_ship_notify(&transaction_id).await {
                Ok((status, reply)) => json!({"status": status, "body": reply}),
                Err(e) => json!({"error": e}),
            }
        } else {
            Value::Null
        };
        (
            StatusCode::OK,
            json!({"retCode": "SUCCESS", "transactionId": transaction_id, "shipReply": ship_reply}),
        )
    }

    async fn admin(&self, path: &str, body: &[u8], notify: bool) -> Response {
        let (status, reply) = self.admin_pay(body, notify).await;
        self.log(|| {
            format!(
                "{} {path} {} {}",
                Method::POST,
                status.as_u16(),
                reply["retCode"].as_str().unwrap_or("")
            )
        });
        (status, axum::Json(reply)).into_response()
    }

    /// `GET /admin/orders/{tradeNo}`: the paid order, its refunds and
    /// `refundedAmt` (refunds not `FAIL`).
    fn admin_order(&self, trade_no: &str) -> (StatusCode, Value) {
        let Some(order) = self.order(trade_no) else {
            return not_found("order not found");
        };
        let refunds = self.refunds_of(trade_no);
        let refunded: i64 = refunds
            .iter()
            .filter(|r| r.status != RefundStatus::Fail)
            .map(|r| r.refund_amt)
            .sum();
        let mut body = order.to_json();
        body["refundedAmt"] = json!(refunded);
        body["refunds"] = Value::Array(refunds.iter().map(SimRefund::to_json).collect());
        (StatusCode::OK, body)
    }

    /// `POST /admin/settle-refund`
    /// `{"refundTradeNo":..,"status":"SUCCESS"|"FAIL","notify":false}`.
    fn admin_settle(&self, body: &[u8]) -> (StatusCode, Value) {
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let (Some(refund_trade_no), Some(Ok(outcome))) = (
            request["refundTradeNo"].as_str(),
            request["status"].as_str().map(str::parse::<RefundOutcome>),
        ) else {
            return (
                StatusCode::BAD_REQUEST,
                json!({"retCode": "FAIL", "retMsg": "expected {\"refundTradeNo\":..,\"status\":\"SUCCESS\"|\"FAIL\",\"notify\":false}"}),
            );
        };
        let notify = request["notify"].as_bool().unwrap_or(false);
        match self.settle_refund(refund_trade_no, outcome, notify) {
            Ok(refund) => (StatusCode::OK, refund.to_json()),
            Err(e) if e == "refund not found" => not_found(&e),
            Err(e) => (
                StatusCode::CONFLICT,
                json!({"retCode": "FAIL", "retMsg": e}),
            ),
        }
    }

    /// `POST /fulfil`: a stand-in for the partner's fulfilment webhook that
    /// counts what it is asked to fulfil, by `Idempotency-Key`. The request
    /// must be signed with the skill's keys (as the functions sign it).
    fn fulfil(&self, headers: &HeaderMap, body: &[u8]) -> (StatusCode, Value) {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err(e) =
            self.inner
                .config
                .keys
                .verify(authorization, body, OffsetDateTime::now_utc())
        {
            return (
                StatusCode::UNAUTHORIZED,
                json!({"ok": false, "error": format!("bad signature: {e}")}),
            );
        }
        let Some(key) = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.is_empty())
        else {
            return (
                StatusCode::BAD_REQUEST,
                json!({"ok": false, "error": "no Idempotency-Key"}),
            );
        };
        let count = {
            let mut fulfilments = lock(&self.inner.fulfilments);
            let count = fulfilments.entry(key.to_owned()).or_insert(0);
            *count += 1;
            *count
        };
        (
            StatusCode::OK,
            json!({"ok": true, "key": key, "count": count}),
        )
    }

    /// `GET /admin/fulfilments`: `{"total":..,"keys":{key: count}}`.
    fn admin_fulfilments(&self) -> (StatusCode, Value) {
        let counts = self.fulfilment_counts();
        let total: usize = counts.values().sum();
        (StatusCode::OK, json!({"total": total, "keys": counts}))
    }

    /// Answers an admin request as JSON, with a log line.
    fn admin_reply(
        &self,
        method: Method,
        path: &str,
        (status, body): (StatusCode, Value),
    ) -> Response {
        self.log(|| format!("{method} {path} {}", status.as_u16()));
        (status, axum::Json(body)).into_response()
    }
}

fn describe(result: &NotifyResult) -> String {
    match result {
        Ok((status, reply)) => format!(
            "{status} {}",
            reply["retCode"].as_str().unwrap_or("(no retCode)")
        ),
        Err(e) => format!("failed: {e}"),
    }
}

async fn order_query_route(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.handle(Endpoint::OrderQuery, "/paycgi/orderquery", &headers, &body)
        .await
}

async fn refund_route(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    sim.handle(Endpoint::Refund, "/paycgi/refund", &headers, &body)
        .await
}

async fn refund_query_route(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.handle(
        Endpoint::RefundQuery,
        "/paycgi/refundquery",
        &headers,
        &body,
    )
    .await
}

async fn admin_pay_route(State(sim): State<Simulator>, body: Bytes) -> Response {
    sim.admin("/admin/pay", &body, true).await
}

async fn admin_pay_silently_route(State(sim): State<Simulator>, body: Bytes) -> Response {
    sim.admin("/admin/pay-silently", &body, false).await
}

fn not_found(msg: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"retCode": "FAIL", "retMsg": msg}),
    )
}

async fn admin_order_route(State(sim): State<Simulator>, Path(trade_no): Path<String>) -> Response {
    let reply = sim.admin_order(&trade_no);
    sim.admin_reply(Method::GET, &format!("/admin/orders/{trade_no}"), reply)
}

async fn admin_refund_route(
    State(sim): State<Simulator>,
    Path(refund_trade_no): Path<String>,
) -> Response {
    let reply = match sim.refund_state(&refund_trade_no) {
        Some(refund) => (StatusCode::OK, refund.to_json()),
        None => not_found("refund not found"),
    };
    sim.admin_reply(
        Method::GET,
        &format!("/admin/refunds/{refund_trade_no}"),
        reply,
    )
}

async fn admin_settle_route(State(sim): State<Simulator>, body: Bytes) -> Response {
    let reply = sim.admin_settle(&body);
    sim.admin_reply(Method::POST, "/admin/settle-refund", reply)
}

async fn admin_fulfilments_route(State(sim): State<Simulator>) -> Response {
    let reply = sim.admin_fulfilments();
    sim.admin_reply(Method::GET, "/admin/fulfilments", reply)
}

async fn admin_fulfilment_route(State(sim): State<Simulator>, Path(key): Path<String>) -> Response {
    let count = sim.fulfilments(&key);
    let reply = (StatusCode::OK, json!({"key": key, "count": count}));
    sim.admin_reply(Method::GET, &format!("/admin/fulfilments/{key}"), reply)
}

async fn fulfil_route(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    let reply = sim.fulfil(&headers, &body);
    sim.admin_reply(Method::POST, "/fulfil", reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn serials_fit_the_protocol() {
        let t = serial("TX");
        assert_eq!(t.len(), 28);
        assert!(TradeNo::parse(&t).is_ok(), "letters and digits: {t}");
        assert!(TransactionId::parse(&t).is_ok());
        assert_ne!(serial("RF"), serial("RF"));
        assert_eq!(nonce().as_str().len(), 32);
    }

    #[test]
    fn revision_follows_domain_id() {
        assert_eq!(request_revision(br#"{"domainId":"s"}"#), Revision::R2018);
        assert_eq!(request_revision(br#"{"skillId":"s"}"#), Revision::R2019);
        assert_eq!(request_revision(b"not json"), Revision::R2019);
        assert_eq!(
            request_revision(br#"{"x":{"domainId":"s"}}"#),
            Revision::R2019
        );
    }

    #[test]
    fn spoiled_signatures_do_not_verify() {
        let keys = hmac_keys("k");
        let now = OffsetDateTime::now_utc();
        let auth = keys.sign(b"{}", now);
        assert!(keys.verify(Some(&auth.to_string()), b"{}", now).is_ok());
        let bad = spoil(auth, b"{}").to_string();
        assert_eq!(
            keys.verify(Some(&bad), b"{}", now),
            Err(dingdang::signing::SignError::BadSignature)
        );
    }

    #[test]
    fn outcome_words() {
        assert_eq!("success".parse(), Ok(RefundOutcome::Success));
        assert_eq!("FAIL".parse(), Ok(RefundOutcome::Fail));
        assert!("maybe".parse::<RefundOutcome>().is_err());
        assert_eq!(RefundOutcome::Fail.status(), RefundStatus::Fail);
    }

    #[test]
    fn config_from_environment() {
        let env = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            move |k: &str| map.get(k).cloned()
        };
        let c = SimConfig::from_lookup(env(&[
            ("DINGDANG_SKILL_ID", "skill-123"),
            ("DINGDANG_SKILL_SECRET", "new,old"),
        ]))
        .unwrap();
        assert_eq!(c.skill_id, "skill-123");
        assert_eq!(c.keys.signer.algorithm(), Algorithm::HmacSha256Basic);
        assert_eq!(c.keys.verifier.key_count(), 2);
        assert!(c.sign_replies);

        let e = SimConfig::from_lookup(env(&[("DINGDANG_SKILL_ID", "s")])).unwrap_err();
        assert_eq!(e, "DINGDANG_SKILL_SECRET is not set");
        let e = SimConfig::from_lookup(env(&[
            ("DINGDANG_SKILL_ID", "s"),
            ("DINGDANG_SIGN_ALG", "TSK-RSA2"),
            ("DINGDANG_PLATFORM_PRIVATE_KEY", "SECRETVALUE"),
        ]))
        .unwrap_err();
        assert!(
            e.starts_with("DINGDANG_PLATFORM_PRIVATE_KEY is malformed"),
            "{e}"
        );
        assert!(!e.contains("SECRETVALUE"));
    }
}
