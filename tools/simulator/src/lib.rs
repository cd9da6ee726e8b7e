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
//!   `POST /admin/fulfil-outage` `{"down":true}` makes it answer HTTP 503
//!   to everything (a webhook outage) until `{"down":false}`;
//!   `GET /admin/fulfil-outage` → `{"down":..,"refused":n}`.
//! - `POST /admin/behaviour` (one rule of the bad platform, below),
//!   `GET /admin/behaviour` (the rules in force, in the order they apply,
//!   with the uses left) and `POST /admin/behaviour/clear`
//!   `{"tradeNo":..}`, `{"refundTradeNo":..}` or `{}` (every rule) →
//!   `{"retCode":"SUCCESS","cleared":n}`.
//!
//! [`scenario`] plays the platform's bad days (duplicate, early, late and
//! lost notifications; ambiguous refund replies) against a running partner
//! stack and checks what must still hold.
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
//!
//! # The bad platform: behaviours per order and per refund
//!
//! A [`Rule`] makes the platform ambiguous, late or wrong for one order
//! (`tradeNo`: its `orderquery`, its refunds and their `refundquery`) or
//! one refund (`refundTradeNo`: its `refund` and `refundquery` requests),
//! at one endpoint (`endpoint`) or at every endpoint its behaviour happens
//! at, for the next `times` requests it applies to or, without `times`,
//! until cleared:
//!
//! | `behaviour` | endpoints | what happens |
//! | --- | --- | --- |
//! | `fail-duplicate` | `refund` | a resubmission of a refund already recorded (same `refundTradeNo`, order and amount) is answered `retCode` `FAIL` "duplicate refundTradeNo"; the recorded refund proceeds as usual (a first submission is not affected) |
//! | `busy` | all | `retCode` `FAIL` "system busy", the ledger unchanged (a refund is not recorded) |
//! | `missing-field` | all | a `SUCCESS` reply without `field` (default: `transactionId` for `orderquery`, `refundTransactionId` for `refund`, `refundStatus` for `refundquery`; any other field of the reply, [`reply_fields`]), signed as usual, the request's effect recorded; replies that are not `SUCCESS` are left alone |
//! | `late-reply` | all | the effect is recorded at once (a new refund is `PROCESSING`), the reply comes `delayMs` later (default 10 000, longer than the partner's default 5 s timeout) |
//! | `accept-then-fail` | `refund` | a new refund is accepted (`PROCESSING`) and becomes `FAIL` after `delayMs` (default [`SimConfig::refund_delay`]) whatever [`SimConfig::refund_outcome`] says: its amount is released and its refund result notification, when configured, says `FAIL` |
//!
//! A request takes the first rule, in the order they were set, that
//! applies to it (a `fail-duplicate` rule applies to resubmissions only, an
//! `accept-then-fail` rule to new refunds only, a `missing-field` rule to
//! `SUCCESS` replies only) and uses one of its `times`. The rules live
//! under the ledger's lock, so choosing and using one is atomic with the
//! request's effect: `times` are shared out exactly among concurrent
//! requests, and the same requests in the same order meet the same
//! behaviours. Setting a rule of the same behaviour for the same order or
//! refund and endpoint replaces it.
//!
//! In process:
//!
//! ```no_run
//! # use std::time::Duration;
//! # use simulator::{Behaviour, Endpoint, On, Rule, Simulator};
//! # fn f(sim: &Simulator) -> Result<(), String> {
//! sim.set_behaviour(Rule::refund("R1", Behaviour::FailDuplicate))?;
//! sim.set_behaviour(Rule::refund("R1", Behaviour::Busy).at(Endpoint::RefundQuery).times(2))?;
//! sim.set_behaviour(Rule::order("O1", Behaviour::MissingField(None)).at(Endpoint::OrderQuery))?;
//! sim.set_behaviour(
//!     Rule::refund("R2", Behaviour::LateReply(Duration::from_secs(7))).at(Endpoint::Refund).times(1),
//! )?;
//! sim.set_behaviour(Rule::refund("R3", Behaviour::AcceptThenFail(Some(Duration::from_millis(500)))))?;
//! sim.clear_behaviours(Some(&On::Refund("R1".into())));
//! sim.clear_behaviours(None);
//! # Ok(()) }
//! ```
//!
//! Over HTTP, the same rules (`POST /admin/behaviour`; `400` with `retMsg`
//! for a rule that could never apply):
//!
//! ```text
//! {"refundTradeNo":"R1","behaviour":"fail-duplicate"}
//! {"refundTradeNo":"R1","behaviour":"busy","endpoint":"refundquery","times":2}
//! {"tradeNo":"O1","behaviour":"missing-field","endpoint":"orderquery"}
//! {"refundTradeNo":"R1","behaviour":"missing-field","endpoint":"refundquery","field":"refundAmt"}
//! {"refundTradeNo":"R2","behaviour":"late-reply","endpoint":"refund","delayMs":7000,"times":1}
//! {"refundTradeNo":"R3","behaviour":"accept-then-fail","delayMs":500}
//! ```

mod admin;
mod behaviour;
mod ledger;
mod notifier;
mod paycgi;
pub mod scenario;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use dingdang::protocol::{Fen, NonceStr, RefundStatus, Revision, SkillId, TradeNo, TransactionId};
use dingdang::signing::{self, Algorithm, HmacSecret, KeyRing, Signer, Verifier};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::Value;
use time::OffsetDateTime;

pub use behaviour::{default_missing_field, reply_fields, Behaviour, On, Rule, DEFAULT_LATE_REPLY};
use ledger::{Ledger, Refund};
pub use ledger::{SimOrder, SimRefund};
pub use paycgi::Endpoint;

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
    /// The partner's `FULFILLMENT_SECRET`: `/fulfil` accepts only events
    /// whose `Dingdang-Signature` verifies with it.
    pub fulfillment_secret: Option<String>,
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
            fulfillment_secret: None,
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
        let mut config = Self::new(skill_id, keys);
        config.fulfillment_secret = var("FULFILLMENT_SECRET");
        Ok(config)
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
    /// `POST /fulfil` answers 503 while set.
    fulfil_down: AtomicBool,
    /// Requests `POST /fulfil` refused during an outage.
    fulfil_refused: AtomicUsize,
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
                fulfil_down: AtomicBool::new(false),
                fulfil_refused: AtomicUsize::new(0),
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
            .route("/paycgi/orderquery", post(paycgi::order_query_route))
            .route("/paycgi/refund", post(paycgi::refund_route))
            .route("/paycgi/refundquery", post(paycgi::refund_query_route))
            .route("/admin/pay", post(admin::pay_route))
            .route("/admin/pay-silently", post(admin::pay_silently_route))
            .route("/admin/orders/{trade_no}", get(admin::order_route))
            .route("/admin/refunds/{refund_trade_no}", get(admin::refund_route))
            .route("/admin/settle-refund", post(admin::settle_route))
            .route(
                "/admin/behaviour",
                get(admin::behaviours_route).post(admin::set_behaviour_route),
            )
            .route(
                "/admin/behaviour/clear",
                post(admin::clear_behaviours_route),
            )
            .route("/admin/fulfilments", get(admin::fulfilments_route))
            .route("/admin/fulfilments/{key}", get(admin::fulfilment_route))
            .route(
                "/admin/fulfil-outage",
                get(admin::fulfil_outage_route).post(admin::set_fulfil_outage_route),
            )
            .route("/fulfil", post(admin::fulfil_route))
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
        lock(&self.inner.ledger)
            .record_payment(trade_no, total_amt)
            .map(TransactionId::into_string)
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

    /// A webhook outage: while `down`, `POST /fulfil` answers HTTP 503 and
    /// counts nothing.
    pub fn set_fulfil_outage(&self, down: bool) {
        self.inner.fulfil_down.store(down, Ordering::Relaxed);
    }

    /// Whether `POST /fulfil` is down, and how many requests it refused
    /// while down.
    pub fn fulfil_outage(&self) -> (bool, usize) {
        (
            self.inner.fulfil_down.load(Ordering::Relaxed),
            self.inner.fulfil_refused.load(Ordering::Relaxed),
        )
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
