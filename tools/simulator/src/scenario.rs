//! Scenarios: the platform's bad days, played against a running partner
//! stack (the local one of `scripts/dev.sh`, or the in-process one of the
//! tests), with the invariants that must hold afterwards.
//!
//! A scenario registers orders through the partner API (`POST /orders`),
//! pays them at a running simulator (`POST /admin/pay-silently`: recorded,
//! not notified), then plays the platform itself: it signs ship and refund
//! notifications with the platform's keys and delivers them to the
//! partner's endpoints, duplicated, concurrent, early, late or not at all.
//! Every request is printed as one line (what was sent, what came back).
//!
//! Invariants (a broken one is a *violation*; [`Report::passed`] is false):
//!
//! - an order is fulfilled at most once: its `transactionId` never changes
//!   once `PAID`, and the counting fulfilment endpoint of the simulator
//!   (`POST /fulfil`, when the functions' `FULFILLMENT_URL` points at it)
//!   never sees the same `Idempotency-Key` twice;
//! - a payment the partner acknowledged, or that reconcile has seen, is
//!   fulfilled: the order is `PAID` with the platform's `transactionId` (and
//!   was fulfilled once, when the counting endpoint is in use);
//! - no order is refunded more than was paid: the refunds not `FAILED`, as
//!   the partner API reports them, and `refundedAmt`, and the refunds not
//!   `FAIL` in the simulator's own ledger, each add up to at most
//!   `totalAmt`; and our final refund status agrees with the platform's;
//! - money stays safe while the platform is ambiguous, late or wrong
//!   (`ambiguous-refunds`, see [`money_violations`]): at every step the
//!   partner's refunds not `FAILED` add up to at most `totalAmt`, they (and
//!   its `refundedAmt`) cover every refund the platform has paid or may
//!   still pay (`PROCESSING` or `SUCCESS` in the simulator's ledger), and no
//!   refund the platform paid is `FAILED` at the partner.
//!
//! Everything is bounded: a number of orders and deliveries, a timeout per
//! request and a deadline for the whole scenario.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dingdang::protocol::{
    self, Fen, NonceStr, RefundNotify, RefundStatus, RefundTradeNo, RefundTransactionId, Revision,
    ShipNotify, SkillId, TradeNo, TransactionId,
};
use dingdang::signing::{Algorithm, KeyRing};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::{random_alnum, SimConfig};

/// One of the scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Each ship notification delivered `repeat` times one after the other
    /// and `repeat` times at once (half of the orders start with the burst,
    /// so that concurrent deliveries race for the first fulfilment).
    DuplicateShip,
    /// A ship notification delivered before its order exists (`FAIL`), then
    /// retried with exponential backoff while the order gets registered.
    ShipRetry,
    /// Refund result notifications out of order: `SUCCESS` then a late
    /// `PROCESSING`; `FAIL` then duplicates and a late `PROCESSING`; then
    /// the released amount is refunded and one fen more is refused.
    RefundOutOfOrder,
    /// The platform ambiguous, late or wrong about refunds (and an order
    /// query), through the simulator's behaviours: a refund reply after the
    /// partner's timeout, a busy `refundquery` and a `FAIL` to the
    /// resubmission of a recorded refund; a `SUCCESS` without
    /// `refundTransactionId`; busy, incomplete and late `refundquery`
    /// replies; a refund accepted and failed later; at every step the money
    /// the partner holds back covers what the platform has paid or may pay.
    AmbiguousRefunds,
    /// A payment whose ship notification is lost: only the reconcile sweep
    /// can find it.
    LostShip,
}

impl Scenario {
    /// Every scenario, in the order `all` runs them.
    pub const ALL: [Scenario; 5] = [
        Scenario::DuplicateShip,
        Scenario::ShipRetry,
        Scenario::RefundOutOfOrder,
        Scenario::AmbiguousRefunds,
        Scenario::LostShip,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::DuplicateShip => "duplicate-ship",
            Scenario::ShipRetry => "ship-retry",
            Scenario::RefundOutOfOrder => "refund-out-of-order",
            Scenario::AmbiguousRefunds => "ambiguous-refunds",
            Scenario::LostShip => "lost-ship",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Scenario::DuplicateShip => "SD",
            Scenario::ShipRetry => "SR",
            Scenario::RefundOutOfOrder => "SF",
            Scenario::AmbiguousRefunds => "SA",
            Scenario::LostShip => "SL",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Scenario::ALL.iter().map(|c| c.name()).collect();
                format!("unknown scenario {s:?}; one of {}", names.join(", "))
            })
    }
}

/// One refund as one side reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRefund {
    pub refund_trade_no: String,
    /// The partner's `PENDING`, `PROCESSING`, `SUCCESS` or `FAILED`; the
    /// platform's `PROCESSING`, `SUCCESS` or `FAIL`.
    pub status: String,
    pub refund_amt: i64,
}

impl SeenRefund {
    pub fn new(refund_trade_no: &str, status: &str, refund_amt: i64) -> Self {
        Self {
            refund_trade_no: refund_trade_no.to_owned(),
            status: status.to_owned(),
            refund_amt,
        }
    }
}

/// The money of one order at one moment, as the partner and the platform
/// report it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MoneyView {
    pub trade_no: String,
    pub total_amt: i64,
    /// The partner API's refunds of the order (`GET /refunds/{no}`).
    pub partner: Vec<SeenRefund>,
    /// The partner's `refundedAmt` of the order (`GET /orders/{no}`).
    pub refunded_amt: Option<i64>,
    /// The platform's refunds of the order (the simulator's ledger).
    pub platform: Vec<SeenRefund>,
}

/// One thing wrong with the money of an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoneyViolation {
    /// What it is about and which rule it breaks (`order O1 over`, `order
    /// O1 under R1 R2` with the refunds the partner released, `refund R1
    /// paid`): the same problem at a later step has the same key.
    pub key: String,
    /// The sentence.
    pub text: String,
}

impl fmt::Display for MoneyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What is wrong with the money of `view`:
///
/// - the partner's refunds not `FAILED` (what it holds back, or has paid
///   out), or its `refundedAmt`, add up to more than `totalAmt`;
/// - they, or `refundedAmt`, are less than the platform's refunds
///   `PROCESSING` or `SUCCESS` (what it has paid or may still pay): money
///   may leave that the partner no longer accounts for;
/// - a refund the platform paid (`SUCCESS`) is `FAILED` at the partner, or
///   unknown to it.
pub fn money_violations(view: &MoneyView) -> Vec<MoneyViolation> {
    let mut found = Vec::new();
    let mut push = |key: String, text: String| found.push(MoneyViolation { key, text });
    let order = &view.trade_no;
    let total = view.total_amt;
    let reserved: i64 = view
        .partner
        .iter()
        .filter(|r| r.status != "FAILED")
        .map(|r| r.refund_amt)
        .sum();
    let refunded = view.refunded_amt.unwrap_or(reserved);
    let held = match view.refunded_amt {
        Some(r) if r != reserved => format!("{reserved} (refundedAmt {r})"),
        _ => reserved.to_string(),
    };
    let exposed: Vec<String> = view
        .platform
        .iter()
        .filter(|r| matches!(r.status.as_str(), "PROCESSING" | "SUCCESS"))
        .map(|r| format!("{} {} {}", r.refund_trade_no, r.status, r.refund_amt))
        .collect();
    let exposure: i64 = view
        .platform
        .iter()
        .filter(|r| matches!(r.status.as_str(), "PROCESSING" | "SUCCESS"))
        .map(|r| r.refund_amt)
        .sum();
    if reserved.max(refunded) > total {
        push(
            format!("order {order} over"),
            format!(
                "order {order}: the partner's refunds not FAILED add up to {held}, more than its totalAmt {total}"
            ),
        );
    }
    if reserved.min(refunded) < exposure {
        // The platform's refunds the partner has released or never knew:
        // the same ones at a later step are the same problem.
        let released: Vec<&str> = view
            .platform
            .iter()
            .filter(|r| matches!(r.status.as_str(), "PROCESSING" | "SUCCESS"))
            .filter(|r| {
                !view
                    .partner
                    .iter()
                    .any(|p| p.refund_trade_no == r.refund_trade_no && p.status != "FAILED")
            })
            .map(|r| r.refund_trade_no.as_str())
            .collect();
        push(
            format!("order {order} under {}", released.join(" ")),
            format!(
                "order {order}: the platform has paid or may still pay {exposure} ({}) but the partner's refunds not FAILED add up to {held}",
                exposed.join(", ")
            ),
        );
    }
    for paid in view.platform.iter().filter(|r| r.status == "SUCCESS") {
        let ours = view
            .partner
            .iter()
            .find(|r| r.refund_trade_no == paid.refund_trade_no);
        let unaccounted = match ours {
            Some(r) if r.status == "FAILED" => "the partner has it FAILED",
            Some(_) => continue,
            None => "the partner does not know it",
        };
        push(
            format!("refund {} paid", paid.refund_trade_no),
            format!(
                "refund {}: the platform paid it ({} SUCCESS) but {unaccounted}",
                paid.refund_trade_no, paid.refund_amt
            ),
        );
    }
    found
}

/// One order of `ambiguous-refunds`: its refunds so far, and the money
/// violations already reported (each [`MoneyViolation::key`] once, at the
/// first step it shows).
struct Book {
    trade_no: String,
    total_amt: i64,
    ours: Vec<String>,
    reported: std::collections::BTreeSet<String>,
}

/// Where the partner stack and the simulator listen, and the platform's
/// side of the keys to sign notifications with.
#[derive(Clone, Debug)]
pub struct Target {
    /// The partner API's base: `{api}/orders`, `{api}/refunds`, e.g.
    /// `http://127.0.0.1:9000/lambda-url/refund-api`.
    pub api: String,
    /// The ship-notify endpoint.
    pub ship_notify_url: String,
    /// The refund-notify endpoint.
    pub refund_notify_url: String,
    /// The running simulator's base URL (its `/admin` and `/fulfil`), the
    /// same one the partner's `DINGDANG_API_BASE` points at.
    pub sim: String,
    /// The platform's keys: sign notifications, verify replies.
    pub keys: KeyRing,
    /// The skill id notifications carry.
    pub skill_id: String,
    /// The revision notifications are written in (2018: `domainId`).
    pub revision: Revision,
}

impl Target {
    /// The local stack of `scripts/dev.sh`.
    pub const LOCAL_API: &'static str = "http://127.0.0.1:9000/lambda-url/refund-api";
    pub const LOCAL_SHIP_NOTIFY: &'static str = "http://127.0.0.1:9000/lambda-url/ship-notify/";
    pub const LOCAL_REFUND_NOTIFY: &'static str = "http://127.0.0.1:9000/lambda-url/refund-notify/";
    pub const LOCAL_SIM: &'static str = "http://127.0.0.1:9100";

    /// The URLs given, with keys and skill id from the same variables as
    /// `dingdang-sim serve` ([`SimConfig::from_lookup`]); notifications in
    /// `DINGDANG_PROTOCOL`'s revision, by default 2018 for HMAC keys and
    /// 2019 for RSA2 keys.
    pub fn from_lookup(
        api: String,
        ship_notify_url: String,
        refund_notify_url: String,
        sim: String,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let protocol = get("DINGDANG_PROTOCOL").filter(|v| !v.trim().is_empty());
        let config = SimConfig::from_lookup(get)?;
        let revision = match protocol {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| "DINGDANG_PROTOCOL is malformed: expected 2018 or 2019".to_owned())?,
            None => match config.keys.signer.algorithm() {
                Algorithm::HmacSha256Basic => Revision::R2018,
                Algorithm::Rsa2 => Revision::R2019,
            },
        };
        Ok(Self {
            api,
            ship_notify_url,
            refund_notify_url,
            sim,
            keys: config.keys,
            skill_id: config.skill_id,
            revision,
        })
    }
}

/// A future returning what a reconcile sweep reported, or why it failed.
pub type ReconcileFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// How `lost-ship` gets the reconcile sweep run.
#[derive(Clone, Default)]
pub enum Reconcile {
    /// Print how to run it, then wait (up to [`Options::reconcile_wait`])
    /// for someone to do so.
    #[default]
    Manual,
    /// Run this shell command (`sh -c`), e.g.
    /// `cargo lambda invoke reconcile --invoke-address 127.0.0.1 --data-ascii '{}'`.
    Command(String),
    /// Call this (tests run the sweep in process).
    Hook(Arc<dyn Fn() -> ReconcileFuture + Send + Sync>),
}

impl fmt::Debug for Reconcile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reconcile::Manual => f.write_str("Manual"),
            Reconcile::Command(c) => f.debug_tuple("Command").field(c).finish(),
            Reconcile::Hook(_) => f.write_str("Hook(..)"),
        }
    }
}

/// How much a scenario does and how long it may take.
#[derive(Clone, Debug)]
pub struct Options {
    /// Orders per scenario.
    pub count: usize,
    /// Deliveries per phase (duplicates sequential, then as many at once).
    pub repeat: usize,
    /// The deadline of one scenario.
    pub timeout: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// The first retry delay of `ship-retry`; it doubles, up to 2 s.
    pub backoff: Duration,
    /// Deliveries `ship-retry` makes at most per order.
    pub max_attempts: u32,
    /// How `lost-ship` gets the sweep run.
    pub reconcile: Reconcile,
    /// How long `lost-ship` waits for the orders to become `PAID` once the
    /// sweep has been asked for.
    pub reconcile_wait: Duration,
    /// Every `PAID` order must have been seen by the counting fulfilment
    /// endpoint (otherwise only when it saw any of this run's payments).
    pub require_fulfilment: bool,
    /// `ambiguous-refunds`: how late a late reply of the simulator comes;
    /// longer than the partner's platform call timeout
    /// (`DINGDANG_API_TIMEOUT_MS`, 5 s by default).
    pub late_reply: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            count: 3,
            repeat: 3,
            timeout: Duration::from_secs(300),
            request_timeout: Duration::from_secs(15),
            backoff: Duration::from_millis(100),
            max_attempts: 8,
            reconcile: Reconcile::Manual,
            reconcile_wait: Duration::from_secs(120),
            require_fulfilment: false,
            late_reply: Duration::from_secs(6),
        }
    }
}

/// Where a scenario's lines go: one line per request (stdout), progress
/// and notes (stderr); optionally kept for tests.
#[derive(Clone)]
pub struct Console {
    echo: bool,
    kept: Option<Arc<Mutex<Vec<String>>>>,
}

impl Console {
    /// Prints request lines on stdout, progress on stderr.
    pub fn stdout() -> Self {
        Self {
            echo: true,
            kept: None,
        }
    }

    /// Keeps every line (see [`Console::lines`]) and prints them on stderr.
    pub fn captured() -> Self {
        Self {
            echo: false,
            kept: Some(Arc::default()),
        }
    }

    /// The lines kept so far.
    pub fn lines(&self) -> Vec<String> {
        self.kept
            .as_ref()
            .map(|k| k.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }

    fn keep(&self, line: &str) {
        if let Some(kept) = &self.kept {
            kept.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(line.to_owned());
        }
    }

    /// A request line, or another line of the record.
    pub fn line(&self, line: impl AsRef<str>) {
        let line = line.as_ref();
        if self.echo {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
        self.keep(line);
    }

    /// A progress or status line (stderr).
    pub fn progress(&self, line: impl AsRef<str>) {
        let line = line.as_ref();
        eprintln!("{line}");
        self.keep(line);
    }
}

/// What one scenario found.
#[derive(Clone, Debug)]
pub struct Report {
    pub scenario: Scenario,
    /// HTTP requests made.
    pub requests: usize,
    /// Broken invariants, each a sentence naming the order or refund.
    pub violations: Vec<String>,
    /// Things worth knowing that are not violations.
    pub notes: Vec<String>,
    pub elapsed: Duration,
}

impl Report {
    /// No invariant broke.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs `scenario` against `target`; `Err` when it could not be played
/// (the stack did not answer as expected, the deadline passed), otherwise
/// the report with its violations, which `console` also shows.
pub async fn run(
    scenario: Scenario,
    target: &Target,
    options: &Options,
    console: &Console,
) -> Result<Report, String> {
    let started = Instant::now();
    let runner = Runner::new(scenario, target, options, console)?;
    console.progress(format!(
        "== {scenario}: {} order(s), {} API {}, simulator {}",
        options.count.max(1),
        scenario_detail(scenario, options),
        target.api,
        target.sim
    ));
    let result = match scenario {
        Scenario::DuplicateShip => runner.duplicate_ship().await,
        Scenario::ShipRetry => runner.ship_retry().await,
        Scenario::RefundOutOfOrder => runner.refund_out_of_order().await,
        Scenario::AmbiguousRefunds => runner.ambiguous_refunds().await,
        Scenario::LostShip => runner.lost_ship().await,
    };
    let requests = runner.requests.load(Ordering::SeqCst);
    result.map_err(|e| format!("{scenario}: {e} (after {requests} requests)"))?;
    runner.check_fulfilment_counts().await?;
    let state = runner.state.lock().unwrap_or_else(|p| p.into_inner());
    let report = Report {
        scenario,
        requests: runner.requests.load(Ordering::SeqCst),
        violations: state.violations.clone(),
        notes: state.notes.clone(),
        elapsed: started.elapsed(),
    };
    drop(state);
    for note in &report.notes {
        console.progress(format!("note: {note}"));
    }
    for violation in &report.violations {
        console.progress(format!("VIOLATION: {violation}"));
    }
    console.progress(format!(
        "== {scenario}: {} in {:.1} s, {} requests, {} violation(s)",
        if report.passed() { "PASSED" } else { "FAILED" },
        report.elapsed.as_secs_f64(),
        report.requests,
        report.violations.len()
    ));
    Ok(report)
}

fn scenario_detail(scenario: Scenario, options: &Options) -> String {
    match scenario {
        Scenario::DuplicateShip | Scenario::RefundOutOfOrder => {
            format!("{} delivery(ies) per phase,", options.repeat.max(1))
        }
        Scenario::AmbiguousRefunds => {
            format!("late replies after {} ms,", options.late_reply.as_millis())
        }
        Scenario::ShipRetry => format!(
            "up to {} deliveries from {} ms backoff,",
            options.max_attempts.max(2),
            options.backoff.as_millis()
        ),
        Scenario::LostShip => format!(
            "reconcile {},",
            match &options.reconcile {
                Reconcile::Manual => "by hand".to_owned(),
                Reconcile::Command(c) => format!("by `{c}`"),
                Reconcile::Hook(_) => "in process".to_owned(),
            }
        ),
    }
}

/// The reply to one request: `status` 0 when none came.
#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    body: Value,
}

impl Reply {
    fn ret_code(&self) -> &str {
        self.body["retCode"].as_str().unwrap_or("")
    }

    fn acknowledged(&self) -> bool {
        self.status == 200 && self.ret_code() == "SUCCESS"
    }

    /// `200 SUCCESS`, `401 FAIL (replayed nonce)`, `no reply (...)`.
    fn summary(&self) -> String {
        if self.status == 0 {
            return format!("no reply ({})", self.body.as_str().unwrap_or(""));
        }
        match self.body["retMsg"].as_str() {
            Some(msg) => format!("{} {} ({msg})", self.status, self.ret_code()),
            None => format!("{} {}", self.status, self.ret_code()),
        }
    }
}

/// A payment recorded at the simulator.
#[derive(Clone, Debug)]
struct Paid {
    trade_no: String,
    transaction_id: String,
    total_amt: i64,
}

#[derive(Default)]
struct State {
    violations: Vec<String>,
    notes: Vec<String>,
    /// Orders that must be fulfilled exactly once: tradeNo → transactionId.
    fulfilled: BTreeMap<String, String>,
}

struct Runner<'a> {
    scenario: Scenario,
    target: &'a Target,
    options: &'a Options,
    console: &'a Console,
    http: reqwest::Client,
    deadline: Instant,
    run_id: String,
    requests: AtomicUsize,
    state: Mutex<State>,
}

/// The first `max` characters of `text`, with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

fn path_of(url: &str) -> &str {
    url.find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| &url[i + 3 + j..]))
        .unwrap_or(url)
}

impl<'a> Runner<'a> {
    fn new(
        scenario: Scenario,
        target: &'a Target,
        options: &'a Options,
        console: &'a Console,
    ) -> Result<Self, String> {
        SkillId::parse(&target.skill_id).map_err(|e| format!("skill id: {e}"))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            scenario,
            target,
            options,
            console,
            http,
            deadline: Instant::now() + options.timeout,
            run_id: random_alnum(8),
            requests: AtomicUsize::new(0),
            state: Mutex::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn violation(&self, text: String) {
        self.console.line(format!("   !! {text}"));
        self.state().violations.push(text);
    }

    fn note(&self, text: String) {
        let mut state = self.state();
        if !state.notes.contains(&text) {
            state.notes.push(text);
        }
    }

    fn count(&self) -> usize {
        self.options.count.max(1)
    }

    fn repeat(&self) -> usize {
        self.options.repeat.max(1)
    }

    /// `SD` + run id + index: unique letters and digits.
    fn id(&self, kind: &str, i: usize) -> String {
        format!("{}{kind}{}{i:04}", self.scenario.prefix(), self.run_id)
    }

    fn remaining(&self) -> Result<Duration, String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(format!(
                "timed out after {} s (see --timeout-secs)",
                self.options.timeout.as_secs()
            ))
        } else {
            Ok(left)
        }
    }

    async fn sleep(&self, d: Duration) -> Result<(), String> {
        let left = self.remaining()?;
        tokio::time::sleep(d.min(left)).await;
        self.remaining().map(|_| ())
    }

    fn progress(&self, done: usize, total: usize) {
        self.console
            .progress(format!("{}: {done}/{total}", self.scenario));
    }

    /// One request, printed as one line: `label METHOD path body -> reply`.
    async fn send(
        &self,
        label: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<Vec<u8>>,
        authorization: Option<String>,
    ) -> Result<Reply, String> {
        let timeout = self.remaining()?.min(self.options.request_timeout);
        let mut request = self.http.request(method.clone(), url).timeout(timeout);
        let shown = body
            .as_deref()
            .map(|b| clip(&String::from_utf8_lossy(b), 400))
            .unwrap_or_default();
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        if let Some(auth) = authorization {
            request = request.header("authorization", auth);
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        let reply = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let bytes = response.bytes().await.unwrap_or_default();
                let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&bytes).into_owned())
                });
                Reply { status, body }
            }
            Err(e) => Reply {
                status: 0,
                body: Value::String(if e.is_timeout() {
                    "timed out".to_owned()
                } else if e.is_connect() {
                    "cannot connect".to_owned()
                } else {
                    e.to_string()
                }),
            },
        };
        let got = if reply.status == 0 {
            reply.summary()
        } else {
            format!("{} {}", reply.status, clip(&compact(&reply.body), 200))
        };
        let sent = if shown.is_empty() {
            String::new()
        } else {
            format!(" {shown}")
        };
        self.console
            .line(format!("{label} {method} {}{sent} -> {got}", path_of(url)));
        Ok(reply)
    }

    async fn get(&self, label: &str, url: &str) -> Result<Reply, String> {
        self.send(label, reqwest::Method::GET, url, None, None)
            .await
    }

    async fn post_json(&self, label: &str, url: &str, body: &Value) -> Result<Reply, String> {
        let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        self.send(label, reqwest::Method::POST, url, Some(bytes), None)
            .await
    }

    fn api(&self, path: &str) -> String {
        format!("{}{path}", self.target.api.trim_end_matches('/'))
    }

    fn sim(&self, path: &str) -> String {
        format!("{}{path}", self.target.sim.trim_end_matches('/'))
    }

    // ---- the partner API -------------------------------------------------

    async fn create_order(
        &self,
        label: &str,
        trade_no: &str,
        total_amt: i64,
    ) -> Result<(), String> {
        let reply = self
            .post_json(
                label,
                &self.api("/orders"),
                &json!({"tradeNo": trade_no, "totalAmt": total_amt}),
            )
            .await?;
        match reply.status {
            200 | 201 => Ok(()),
            _ => Err(format!(
                "POST /orders for {trade_no} answered {}",
                reply.summary_or_body()
            )),
        }
    }

    async fn get_order(&self, label: &str, trade_no: &str) -> Result<Value, String> {
        let reply = self
            .get(label, &self.api(&format!("/orders/{trade_no}")))
            .await?;
        if reply.status == 200 {
            Ok(reply.body)
        } else {
            Err(format!(
                "GET /orders/{trade_no} answered {}",
                reply.summary_or_body()
            ))
        }
    }

    async fn request_refund(
        &self,
        label: &str,
        trade_no: &str,
        refund_trade_no: &str,
        refund_amt: i64,
    ) -> Result<Reply, String> {
        self.post_json(
            label,
            &self.api("/refunds"),
            &json!({"tradeNo": trade_no, "refundTradeNo": refund_trade_no, "refundAmt": refund_amt}),
        )
        .await
    }

    async fn get_refund(&self, label: &str, refund_trade_no: &str) -> Result<Value, String> {
        let reply = self
            .get(label, &self.api(&format!("/refunds/{refund_trade_no}")))
            .await?;
        if reply.status == 200 {
            Ok(reply.body)
        } else {
            Err(format!(
                "GET /refunds/{refund_trade_no} answered {}",
                reply.summary_or_body()
            ))
        }
    }

    // ---- the simulator ---------------------------------------------------

    async fn pay_silently(
        &self,
        label: &str,
        trade_no: &str,
        total_amt: i64,
    ) -> Result<Paid, String> {
        let reply = self
            .post_json(
                label,
                &self.sim("/admin/pay-silently"),
                &json!({"tradeNo": trade_no, "totalAmt": total_amt}),
            )
            .await?;
        match reply.body["transactionId"].as_str() {
            Some(txn) if reply.status == 200 => Ok(Paid {
                trade_no: trade_no.to_owned(),
                transaction_id: txn.to_owned(),
                total_amt,
            }),
            _ => Err(format!(
                "the simulator did not record the payment of {trade_no}: {}",
                reply.summary_or_body()
            )),
        }
    }

    async fn sim_json(&self, label: &str, path: &str) -> Result<Value, String> {
        let reply = self.get(label, &self.sim(path)).await?;
        if reply.status == 200 {
            Ok(reply.body)
        } else {
            Err(format!(
                "the simulator answered {} to GET {path}",
                reply.summary_or_body()
            ))
        }
    }

    async fn settle(
        &self,
        label: &str,
        refund_trade_no: &str,
        status: &str,
    ) -> Result<Value, String> {
        let reply = self
            .post_json(
                label,
                &self.sim("/admin/settle-refund"),
                &json!({"refundTradeNo": refund_trade_no, "status": status, "notify": false}),
            )
            .await?;
        if reply.status == 200 {
            Ok(reply.body)
        } else {
            Err(format!(
                "the simulator could not settle {refund_trade_no} as {status}: {} \
                 (start it with a --refund-delay-ms of a few seconds)",
                reply.summary_or_body()
            ))
        }
    }

    async fn fulfil_count(&self, label: &str, key: &str) -> Result<usize, String> {
        let body = self
            .sim_json(label, &format!("/admin/fulfilments/{key}"))
            .await?;
        body["count"]
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| format!("unexpected fulfilment count {body}"))
    }

    // ---- notifications, signed as the platform --------------------------

    fn sign(&self, body: &[u8]) -> String {
        self.target
            .keys
            .sign(body, OffsetDateTime::now_utc())
            .to_string()
    }

    fn nonce() -> Result<NonceStr, String> {
        NonceStr::parse(&random_alnum(32)).map_err(|e| e.to_string())
    }

    fn ship_body(&self, paid: &Paid) -> Result<Vec<u8>, String> {
        let notify = ShipNotify {
            skill_id: SkillId::parse(&self.target.skill_id).map_err(|e| e.to_string())?,
            transaction_id: TransactionId::parse(&paid.transaction_id)
                .map_err(|e| e.to_string())?,
            trade_no: TradeNo::parse(&paid.trade_no).map_err(|e| e.to_string())?,
            total_amt: Fen::new(paid.total_amt).map_err(|e| e.to_string())?,
            nonce_str: Self::nonce()?,
            user_token: None,
        };
        Ok(protocol::to_wire(&notify, self.target.revision))
    }

    /// Delivers a fresh ship notification (new nonce and time) of `paid`.
    async fn deliver_ship(&self, label: &str, paid: &Paid) -> Result<Reply, String> {
        let body = self.ship_body(paid)?;
        let auth = self.sign(&body);
        self.send(
            label,
            reqwest::Method::POST,
            &self.target.ship_notify_url,
            Some(body),
            Some(auth),
        )
        .await
    }

    /// Delivers `n` fresh ship notifications of `paid` at once.
    async fn deliver_ship_burst(
        &self,
        label: &str,
        paid: &Paid,
        n: usize,
    ) -> Result<Vec<Reply>, String> {
        let deliveries = (0..n).map(|k| {
            let label = format!("{label} burst {}/{n}", k + 1);
            async move { self.deliver_ship(&label, paid).await }
        });
        futures_join_all(deliveries).await.into_iter().collect()
    }

    /// A refund result notification of the simulator's refund (`ledger`,
    /// as `GET /admin/refunds/{id}` shows it) reporting `status`.
    fn refund_body(&self, ledger: &Value, status: RefundStatus) -> Result<Vec<u8>, String> {
        let text = |field: &str| {
            ledger[field]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("the simulator's refund has no {field}: {ledger}"))
        };
        let amount = |field: &str| {
            ledger[field]
                .as_i64()
                .ok_or_else(|| format!("the simulator's refund has no {field}: {ledger}"))
                .and_then(|v| Fen::new(v).map_err(|e| e.to_string()))
        };
        let notify = RefundNotify {
            skill_id: SkillId::parse(&self.target.skill_id).map_err(|e| e.to_string())?,
            transaction_id: TransactionId::parse(&text("transactionId")?)
                .map_err(|e| e.to_string())?,
            trade_no: TradeNo::parse(&text("tradeNo")?).map_err(|e| e.to_string())?,
            refund_transaction_id: RefundTransactionId::parse(&text("refundTransactionId")?)
                .map_err(|e| e.to_string())?,
            refund_trade_no: RefundTradeNo::parse(&text("refundTradeNo")?)
                .map_err(|e| e.to_string())?,
            total_amt: amount("totalAmt")?,
            refund_amt: amount("refundAmt")?,
            refund_status: status,
            refund_status_desc: None,
            nonce_str: Self::nonce()?,
        };
        Ok(protocol::to_wire(&notify, self.target.revision))
    }

    async fn deliver_refund(
        &self,
        label: &str,
        ledger: &Value,
        status: RefundStatus,
    ) -> Result<Reply, String> {
        let body = self.refund_body(ledger, status)?;
        let auth = self.sign(&body);
        self.send(
            label,
            reqwest::Method::POST,
            &self.target.refund_notify_url,
            Some(body),
            Some(auth),
        )
        .await
    }

    // ---- invariants ------------------------------------------------------

    /// The order must be PAID with the platform's transactionId (fulfilled
    /// once); `context` says why it should be.
    async fn expect_paid(&self, label: &str, paid: &Paid, context: &str) -> Result<bool, String> {
        let order = self.get_order(label, &paid.trade_no).await?;
        let status = order["status"].as_str().unwrap_or("?");
        let txn = order["transactionId"].as_str();
        let previous = self.state().fulfilled.get(&paid.trade_no).cloned();
        if let (Some(before), Some(now)) = (previous.as_deref(), txn) {
            if before != now {
                self.violation(format!(
                    "order {} fulfilled twice: its transactionId changed from {before} to {now}",
                    paid.trade_no
                ));
                return Ok(false);
            }
        }
        if status != "PAID" {
            self.violation(format!(
                "order {} is {status} {context}: paid at the platform ({}) but not fulfilled",
                paid.trade_no, paid.transaction_id
            ));
            return Ok(false);
        }
        if txn != Some(paid.transaction_id.as_str()) {
            self.violation(format!(
                "order {} is PAID with transactionId {} but the platform's payment is {}",
                paid.trade_no,
                txn.unwrap_or("(none)"),
                paid.transaction_id
            ));
            return Ok(false);
        }
        self.state()
            .fulfilled
            .insert(paid.trade_no.clone(), paid.transaction_id.clone());
        let count = self
            .fulfil_count(&format!("{label} fulfilments"), &paid.transaction_id)
            .await?;
        if count > 1 {
            self.violation(format!(
                "order {} fulfilled {count} times: the fulfilment endpoint saw Idempotency-Key {} {count} times",
                paid.trade_no, paid.transaction_id
            ));
        }
        Ok(true)
    }

    /// After the scenario: when the counting endpoint saw any of this run's
    /// payments (or `require_fulfilment`), each fulfilled order must have
    /// been seen exactly once.
    async fn check_fulfilment_counts(&self) -> Result<(), String> {
        let fulfilled: Vec<(String, String)> = self
            .state()
            .fulfilled
            .iter()
            .map(|(t, x)| (t.clone(), x.clone()))
            .collect();
        if fulfilled.is_empty() {
            return Ok(());
        }
        let body = self.sim_json("check", "/admin/fulfilments").await?;
        let counts = |txn: &str| body["keys"][txn].as_u64().unwrap_or(0);
        let seen = fulfilled.iter().any(|(_, txn)| counts(txn) > 0);
        if !seen && !self.options.require_fulfilment {
            self.note(
                "the simulator's counting /fulfil endpoint saw none of these payments, so \
                 fulfilments were checked through the orders' transactionId only; set \
                 FULFILLMENT_URL=<simulator>/fulfil for the functions to count them"
                    .to_owned(),
            );
            return Ok(());
        }
        for (trade_no, txn) in &fulfilled {
            match counts(txn) {
                1 => {}
                0 => self.violation(format!(
                    "order {trade_no} is PAID but the fulfilment endpoint never saw {txn}"
                )),
                n => self.violation(format!(
                    "order {trade_no} fulfilled {n} times (Idempotency-Key {txn})"
                )),
            }
        }
        Ok(())
    }

    // ---- the scenarios ---------------------------------------------------

    async fn duplicate_ship(&self) -> Result<(), String> {
        let (n, k) = (self.count(), self.repeat());
        let mut replies: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..n {
            let trade_no = self.id("O", i);
            let label = format!("[{}/{n}]", i + 1);
            self.create_order(&label, &trade_no, 990).await?;
            let paid = self.pay_silently(&label, &trade_no, 990).await?;
            let burst_first = i % 2 == 1;
            let mut acknowledged = false;
            for phase in 0..2 {
                if (phase == 0) != burst_first {
                    for d in 0..k {
                        let reply = self
                            .deliver_ship(&format!("{label} seq {}/{k}", d + 1), &paid)
                            .await?;
                        *replies.entry(reply.summary()).or_default() += 1;
                        if !reply.acknowledged() && acknowledged {
                            self.violation(format!(
                                "order {trade_no}: a redelivery of an acknowledged payment was answered {} (the platform would retry it forever)",
                                reply.summary()
                            ));
                        }
                        acknowledged |= reply.acknowledged();
                    }
                } else {
                    let burst = self.deliver_ship_burst(&label, &paid, k).await?;
                    for reply in &burst {
                        *replies.entry(reply.summary()).or_default() += 1;
                    }
                    acknowledged |= burst.iter().any(Reply::acknowledged);
                }
                if acknowledged {
                    self.expect_paid(&label, &paid, "after its payment was acknowledged")
                        .await?;
                }
            }
            if !acknowledged {
                self.violation(format!(
                    "order {trade_no}: none of {} deliveries was acknowledged",
                    2 * k
                ));
            }
            self.progress(i + 1, n);
        }
        let histogram: Vec<String> = replies.iter().map(|(r, c)| format!("{c}× {r}")).collect();
        self.console.progress(format!(
            "{}: replies {}",
            self.scenario,
            histogram.join(", ")
        ));
        Ok(())
    }

    async fn ship_retry(&self) -> Result<(), String> {
        let n = self.count();
        let max_attempts = self.options.max_attempts.max(2);
        for i in 0..n {
            let trade_no = self.id("O", i);
            let label = format!("[{}/{n}]", i + 1);
            // The platform took the payment; our back office has not
            // registered the order yet.
            let paid = self.pay_silently(&label, &trade_no, 1290).await?;
            let mut registered = false;
            let mut delay = self.options.backoff;
            let mut acknowledged = false;
            for attempt in 1..=max_attempts {
                if attempt > 1 {
                    self.sleep(delay).await?;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                let reply = self
                    .deliver_ship(&format!("{label} attempt {attempt}/{max_attempts}"), &paid)
                    .await?;
                if reply.acknowledged() {
                    if !registered {
                        self.note(format!(
                            "ship-notify acknowledged a payment for an order it did not know \
                             ({trade_no}); is DINGDANG_ACCEPT_UNKNOWN_ORDERS on?"
                        ));
                    }
                    acknowledged = true;
                    break;
                }
                // Register the order once two deliveries have failed: the
                // retries after that must succeed.
                if attempt == 2 && !registered {
                    self.create_order(&label, &trade_no, 1290).await?;
                    registered = true;
                }
            }
            if !registered {
                self.create_order(&label, &trade_no, 1290).await?;
            }
            if acknowledged {
                self.expect_paid(&label, &paid, "after its payment was acknowledged")
                    .await?;
            } else {
                self.violation(format!(
                    "order {trade_no}: {max_attempts} deliveries with backoff, none acknowledged once the order existed (the platform gives up: paid, not fulfilled)"
                ));
            }
            self.progress(i + 1, n);
        }
        Ok(())
    }

    async fn refund_out_of_order(&self) -> Result<(), String> {
        let (n, k) = (self.count(), self.repeat());
        let total = 1000;
        for i in 0..n {
            let trade_no = self.id("O", i);
            let label = format!("[{}/{n}]", i + 1);
            self.create_order(&label, &trade_no, total).await?;
            let paid = self.pay_silently(&label, &trade_no, total).await?;
            let reply = self.deliver_ship(&label, &paid).await?;
            if !reply.acknowledged() {
                return Err(format!(
                    "the ship notification of {trade_no} was answered {}",
                    reply.summary()
                ));
            }
            if !self
                .expect_paid(&label, &paid, "after its payment was acknowledged")
                .await?
            {
                continue;
            }
            let mut ours: Vec<String> = Vec::new();

            // A: SUCCESS, then a late PROCESSING, then SUCCESS again.
            let a = self.id("A", i);
            self.open_refund(&label, &trade_no, &a, 400).await?;
            ours.push(a.clone());
            let ledger = self.settle(&label, &a, "SUCCESS").await?;
            for (step, status) in [
                ("SUCCESS", RefundStatus::Success),
                ("late PROCESSING", RefundStatus::Processing),
                ("SUCCESS again", RefundStatus::Success),
            ] {
                self.deliver_refund(&format!("{label} {a} {step}"), &ledger, status)
                    .await?;
            }
            self.expect_refund(
                &label,
                &a,
                "SUCCESS",
                "after SUCCESS then a late PROCESSING",
            )
            .await?;

            // B: FAIL, then duplicates (in a row and at once), then a late
            // PROCESSING.
            let b = self.id("B", i);
            self.open_refund(&label, &trade_no, &b, 600).await?;
            ours.push(b.clone());
            let ledger = self.settle(&label, &b, "FAIL").await?;
            self.deliver_refund(&format!("{label} {b} FAIL"), &ledger, RefundStatus::Fail)
                .await?;
            for d in 0..k {
                self.deliver_refund(
                    &format!("{label} {b} FAIL dup {}/{k}", d + 1),
                    &ledger,
                    RefundStatus::Fail,
                )
                .await?;
            }
            let burst = (0..k).map(|d| {
                let label = format!("{label} {b} FAIL burst {}/{k}", d + 1);
                let ledger = &ledger;
                async move {
                    self.deliver_refund(&label, ledger, RefundStatus::Fail)
                        .await
                }
            });
            futures_join_all(burst)
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()?;
            self.deliver_refund(
                &format!("{label} {b} late PROCESSING"),
                &ledger,
                RefundStatus::Processing,
            )
            .await?;
            self.expect_refund(
                &label,
                &b,
                "FAILED",
                "after FAIL, duplicates and a late PROCESSING",
            )
            .await?;

            // C: the 600 that B released can be refunded again.
            let c = self.id("C", i);
            let reply = self.request_refund(&label, &trade_no, &c, 600).await?;
            if matches!(reply.status, 200..=202) {
                ours.push(c.clone());
                let ledger = self.settle(&label, &c, "SUCCESS").await?;
                self.deliver_refund(
                    &format!("{label} {c} SUCCESS"),
                    &ledger,
                    RefundStatus::Success,
                )
                .await?;
                self.expect_refund(&label, &c, "SUCCESS", "after its SUCCESS")
                    .await?;
            } else {
                self.violation(format!(
                    "order {trade_no}: refunding the 600 a FAILED refund released was refused: {}",
                    reply.summary_or_body()
                ));
            }

            // D: one fen more than is left must be refused.
            let d = self.id("D", i);
            let reply = self.request_refund(&label, &trade_no, &d, 1).await?;
            if matches!(reply.status, 200..=202) {
                ours.push(d.clone());
                self.console.line(format!(
                    "   !! {d}: one fen over the order was accepted ({})",
                    reply.summary_or_body()
                ));
            }

            self.check_refund_totals(&label, &trade_no, total, &ours)
                .await?;
            self.progress(i + 1, n);
        }
        Ok(())
    }

    /// Requests a refund that the platform must accept (PROCESSING).
    async fn open_refund(
        &self,
        label: &str,
        trade_no: &str,
        refund_trade_no: &str,
        amt: i64,
    ) -> Result<(), String> {
        let reply = self
            .request_refund(label, trade_no, refund_trade_no, amt)
            .await?;
        match (reply.status, reply.body["status"].as_str()) {
            (201 | 200, Some("PROCESSING")) => Ok(()),
            _ => Err(format!(
                "POST /refunds {refund_trade_no} ({amt} of {trade_no}) answered {}; expected 201 PROCESSING",
                reply.summary_or_body()
            )),
        }
    }

    async fn expect_refund(
        &self,
        label: &str,
        refund_trade_no: &str,
        want: &str,
        context: &str,
    ) -> Result<(), String> {
        let refund = self.get_refund(label, refund_trade_no).await?;
        let status = refund["status"].as_str().unwrap_or("?");
        if status != want {
            self.violation(format!(
                "refund {refund_trade_no} is {status} {context}; expected {want}"
            ));
        }
        Ok(())
    }

    /// Refunded at most what was paid, from our API and from the
    /// simulator's ledger, and each of our refunds agrees with the
    /// platform's final state.
    async fn check_refund_totals(
        &self,
        label: &str,
        trade_no: &str,
        total: i64,
        ours: &[String],
    ) -> Result<(), String> {
        let mut committed = 0;
        let mut statuses = BTreeMap::new();
        for r in ours {
            let refund = self.get_refund(label, r).await?;
            let status = refund["status"].as_str().unwrap_or("?").to_owned();
            if status != "FAILED" {
                committed += refund["refundAmt"].as_i64().unwrap_or(0);
            }
            statuses.insert(r.clone(), status);
        }
        if committed > total {
            self.violation(format!(
                "order {trade_no} refunded more than paid: our API reports {committed} in refunds not FAILED, of {total}"
            ));
        }
        let order = self.get_order(label, trade_no).await?;
        let refunded = order["refundedAmt"].as_i64().unwrap_or(0);
        if refunded > total {
            self.violation(format!(
                "order {trade_no} refunded more than paid: refundedAmt {refunded} of {total}"
            ));
        }
        let ledger = self
            .sim_json(label, &format!("/admin/orders/{trade_no}"))
            .await?;
        let platform = ledger["refundedAmt"].as_i64().unwrap_or(0);
        if platform > total {
            self.violation(format!(
                "order {trade_no} refunded more than paid at the platform: {platform} of {total}"
            ));
        }
        let at_platform: BTreeMap<&str, &str> = ledger["refunds"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| {
                        Some((r["refundTradeNo"].as_str()?, r["refundStatus"].as_str()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (r, ours) in &statuses {
            let theirs = at_platform.get(r.as_str()).copied();
            let agrees = matches!(
                (ours.as_str(), theirs),
                ("SUCCESS", Some("SUCCESS")) | ("FAILED", Some("FAIL") | None)
            );
            if !agrees {
                self.violation(format!(
                    "refund {r}: ours is {ours}, the platform's is {}",
                    theirs.unwrap_or("(none)")
                ));
            }
        }
        Ok(())
    }

    // ---- ambiguous-refunds ---------------------------------------------

    /// Puts a behaviour in force at the simulator (`POST /admin/behaviour`).
    async fn behave(&self, label: &str, rule: Value) -> Result<(), String> {
        let reply = self
            .post_json(label, &self.sim("/admin/behaviour"), &rule)
            .await?;
        if reply.status == 200 {
            Ok(())
        } else {
            Err(format!(
                "the simulator did not take the behaviour {rule}: {} (does --sim run a dingdang-sim with /admin/behaviour?)",
                reply.summary_or_body()
            ))
        }
    }

    /// Clears the behaviours for an order or a refund
    /// (`POST /admin/behaviour/clear`).
    async fn clear_behaviours(&self, label: &str, on: Value) -> Result<(), String> {
        let reply = self
            .post_json(label, &self.sim("/admin/behaviour/clear"), &on)
            .await?;
        if reply.status == 200 {
            Ok(())
        } else {
            Err(format!(
                "the simulator did not clear the behaviours for {on}: {}",
                reply.summary_or_body()
            ))
        }
    }

    /// `GET {path}?sync=true` of the partner API: the body when it answered
    /// 200, `None` when it got no usable answer from the platform (5xx).
    async fn synced(&self, label: &str, path: &str) -> Result<Option<Value>, String> {
        let reply = self
            .get(label, &self.api(&format!("{path}?sync=true")))
            .await?;
        match reply.status {
            200 => Ok(Some(reply.body)),
            0 | 500..=599 => Ok(None),
            _ => Err(format!(
                "GET {path}?sync=true answered {}",
                reply.summary_or_body()
            )),
        }
    }

    /// The platform's refund (`GET /admin/refunds/{no}`), `None` when it has
    /// none.
    async fn platform_refund(&self, label: &str, no: &str) -> Result<Option<Value>, String> {
        let reply = self
            .get(label, &self.sim(&format!("/admin/refunds/{no}")))
            .await?;
        match reply.status {
            200 => Ok(Some(reply.body)),
            404 => Ok(None),
            _ => Err(format!(
                "the simulator answered {} to GET /admin/refunds/{no}",
                reply.summary_or_body()
            )),
        }
    }

    /// The platform's status of a refund, `(none)` when it has none.
    async fn platform_status(&self, label: &str, no: &str) -> Result<String, String> {
        Ok(self
            .platform_refund(label, no)
            .await?
            .and_then(|r| r["refundStatus"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "(none)".to_owned()))
    }

    /// The partner's status of a refund now (without asking the platform).
    async fn partner_status(&self, label: &str, no: &str) -> Result<String, String> {
        Ok(self.get_refund(label, no).await?["status"]
            .as_str()
            .unwrap_or("?")
            .to_owned())
    }

    /// Settles a refund at the platform (no notification): the platform's
    /// final status, which is another one when the refund had already
    /// reached it (`dingdang-sim serve --refund-outcome`, a short
    /// `--refund-delay-ms`).
    async fn settle_to(&self, label: &str, no: &str, status: &str) -> Result<String, String> {
        let reply = self
            .post_json(
                label,
                &self.sim("/admin/settle-refund"),
                &json!({"refundTradeNo": no, "status": status, "notify": false}),
            )
            .await?;
        match reply.status {
            200 => Ok(reply.body["refundStatus"]
                .as_str()
                .unwrap_or(status)
                .to_owned()),
            409 => {
                let theirs = self.platform_status(label, no).await?;
                self.note(format!(
                    "refund {no} was already {theirs} at the platform before it was settled {status} \
                     (see dingdang-sim serve --refund-delay-ms and --refund-outcome)"
                ));
                Ok(theirs)
            }
            _ => Err(format!(
                "the simulator could not settle {no} as {status}: {}",
                reply.summary_or_body()
            )),
        }
    }

    /// Asks the partner for a refund of the book's order. The refund joins
    /// the book when the partner recorded it; returns the partner's status
    /// then (`None`: not recorded) and its reply.
    async fn ask_refund(
        &self,
        label: &str,
        book: &mut Book,
        no: &str,
        amt: i64,
    ) -> Result<(Option<String>, Reply), String> {
        let reply = self.request_refund(label, &book.trade_no, no, amt).await?;
        let status = if matches!(reply.status, 200..=202) {
            reply.body["status"].as_str().map(str::to_owned)
        } else {
            let known = self
                .get(label, &self.api(&format!("/refunds/{no}")))
                .await?;
            (known.status == 200)
                .then(|| known.body["status"].as_str().map(str::to_owned))
                .flatten()
        };
        if status.is_some() {
            book.ours.push(no.to_owned());
        }
        Ok((status, reply))
    }

    /// [`Runner::ask_refund`] for a refund the partner must record.
    async fn open(&self, label: &str, book: &mut Book, no: &str, amt: i64) -> Result<(), String> {
        let (status, reply) = self.ask_refund(label, book, no, amt).await?;
        match status {
            Some(_) => Ok(()),
            None => Err(format!(
                "POST /refunds {no} ({amt} of {}) answered {} and recorded nothing",
                book.trade_no,
                reply.summary_or_body()
            )),
        }
    }

    /// A refund the platform has recorded must keep its amount reserved at
    /// the partner: not `FAILED` unless the platform failed it.
    async fn expect_held(&self, label: &str, no: &str, context: &str) -> Result<(), String> {
        let ours = self.partner_status(label, no).await?;
        if ours == "FAILED" {
            let theirs = self.platform_status(label, no).await?;
            if theirs != "FAIL" && theirs != "(none)" {
                self.violation(format!(
                    "refund {no} is FAILED {context}, while the platform has it {theirs}; \
                     expected PENDING or PROCESSING with its amount reserved"
                ));
            }
        }
        Ok(())
    }

    /// The platform settles `no` as `status`; once asked (`refundquery`),
    /// the partner must reach the same final state.
    async fn resolve(&self, label: &str, no: &str, status: &str) -> Result<(), String> {
        let theirs = self.settle_to(label, no, status).await?;
        let want = if theirs == "FAIL" {
            "FAILED"
        } else {
            "SUCCESS"
        };
        let mut ours = None;
        for attempt in 1..=3 {
            if attempt > 1 {
                self.sleep(Duration::from_millis(200)).await?;
            }
            let label = format!("{label} {no} settled {theirs}, sync {attempt}/3");
            if let Some(refund) = self.synced(&label, &format!("/refunds/{no}")).await? {
                let now = refund["status"].as_str().unwrap_or("?").to_owned();
                if now == want {
                    return Ok(());
                }
                let done = now == "SUCCESS" || now == "FAILED";
                ours = Some(now);
                if done {
                    break;
                }
            }
        }
        let ours = match ours {
            Some(s) => s,
            None => self.partner_status(label, no).await?,
        };
        self.violation(format!(
            "refund {no} is {ours} after the platform settled it {theirs} and refundquery said so; expected {want}"
        ));
        Ok(())
    }

    /// The money of the book's order now, checked (see
    /// [`money_violations`]); each problem is reported once, with the step
    /// where it first showed.
    async fn money(&self, label: &str, step: &str, book: &mut Book) -> Result<(), String> {
        let label = format!("{label} money");
        let mut view = MoneyView {
            trade_no: book.trade_no.clone(),
            total_amt: book.total_amt,
            ..MoneyView::default()
        };
        for no in &book.ours {
            let refund = self.get_refund(&label, no).await?;
            view.partner.push(SeenRefund::new(
                no,
                refund["status"].as_str().unwrap_or("?"),
                refund["refundAmt"].as_i64().unwrap_or(0),
            ));
        }
        let order = self.get_order(&label, &book.trade_no).await?;
        view.refunded_amt = order["refundedAmt"].as_i64();
        let ledger = self
            .sim_json(&label, &format!("/admin/orders/{}", book.trade_no))
            .await?;
        view.platform = ledger["refunds"]
            .as_array()
            .map(|refunds| {
                refunds
                    .iter()
                    .filter_map(|r| {
                        Some(SeenRefund::new(
                            r["refundTradeNo"].as_str()?,
                            r["refundStatus"].as_str()?,
                            r["refundAmt"].as_i64()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for found in money_violations(&view) {
            if book.reported.insert(found.key) {
                self.violation(format!("{} (after {step})", found.text));
            }
        }
        Ok(())
    }

    /// The order query is busy, then answers `SUCCESS` without
    /// `transactionId`, then after the partner's timeout: the order must stay
    /// `CREATED`; then it answers in full and the order must be `PAID`.
    async fn order_despite_bad_queries(&self, label: &str, paid: &Paid) -> Result<bool, String> {
        let t = paid.trade_no.as_str();
        let late = self.options.late_reply.as_millis() as u64;
        for rule in [
            json!({"tradeNo": t, "behaviour": "busy", "endpoint": "orderquery", "times": 1}),
            json!({"tradeNo": t, "behaviour": "missing-field", "endpoint": "orderquery", "times": 1}),
            json!({"tradeNo": t, "behaviour": "late-reply", "endpoint": "orderquery", "delayMs": late, "times": 1}),
        ] {
            self.behave(label, rule).await?;
        }
        for what in [
            "a busy orderquery",
            "an orderquery SUCCESS without transactionId",
            "an orderquery reply after the timeout",
        ] {
            self.synced(&format!("{label} {what}"), &format!("/orders/{t}"))
                .await?;
            let order = self.get_order(label, t).await?;
            let status = order["status"].as_str().unwrap_or("?");
            let txn = order["transactionId"].as_str();
            match status {
                "CREATED" => {}
                "PAID" if txn == Some(paid.transaction_id.as_str()) => self.note(format!(
                    "order {t} was PAID after {what} (something else queried it)"
                )),
                _ => self.violation(format!(
                    "order {t} is {status} with transactionId {} after {what}; expected CREATED until orderquery answers in full",
                    txn.unwrap_or("(none)")
                )),
            }
        }
        self.clear_behaviours(label, json!({"tradeNo": t})).await?;
        self.synced(
            &format!("{label} orderquery in full"),
            &format!("/orders/{t}"),
        )
        .await?;
        self.expect_paid(label, paid, "after orderquery reported it paid in full")
            .await
    }

    async fn ambiguous_refunds(&self) -> Result<(), String> {
        let n = self.count();
        let total = 1000;
        let late = self.options.late_reply.as_millis() as u64;
        for i in 0..n {
            let trade_no = self.id("O", i);
            let label = format!("[{}/{n}]", i + 1);
            self.create_order(&label, &trade_no, total).await?;
            let paid = self.pay_silently(&label, &trade_no, total).await?;
            if !self.order_despite_bad_queries(&label, &paid).await? {
                continue;
            }
            let mut book = Book {
                trade_no: trade_no.clone(),
                total_amt: total,
                ours: Vec::new(),
                reported: Default::default(),
            };

            // A (200): recorded, answered after the partner's timeout; then
            // refundquery busy, and a FAIL to the resubmission of the
            // recorded refund; then refundquery answers: SUCCESS.
            let a = self.id("A", i);
            for rule in [
                json!({"refundTradeNo": a, "behaviour": "late-reply", "endpoint": "refund", "delayMs": late, "times": 1}),
                json!({"refundTradeNo": a, "behaviour": "busy", "endpoint": "refundquery", "times": 1}),
                json!({"refundTradeNo": a, "behaviour": "fail-duplicate"}),
            ] {
                self.behave(&label, rule).await?;
            }
            let (status, reply) = self.ask_refund(&label, &mut book, &a, 200).await?;
            match status.as_deref() {
                Some("PENDING") => {}
                Some("PROCESSING") => self.note(format!(
                    "refund {a} was PROCESSING at once: the simulator's late reply ({late} ms) \
                     came within the partner's timeout; use a --late-reply-ms above its \
                     DINGDANG_API_TIMEOUT_MS"
                )),
                Some(_) => {}
                None => {
                    return Err(format!(
                        "POST /refunds {a} (200 of {trade_no}) answered {} and recorded nothing",
                        reply.summary_or_body()
                    ))
                }
            }
            self.expect_held(&label, &a, "after its refund reply came too late")
                .await?;
            self.money(
                &label,
                &format!("{a}: the refund reply after the timeout"),
                &mut book,
            )
            .await?;
            self.synced(
                &format!("{label} {a} busy refundquery"),
                &format!("/refunds/{a}"),
            )
            .await?;
            self.expect_held(
                &label,
                &a,
                "after a busy refundquery and a FAIL \"duplicate refundTradeNo\" to its resubmission",
            )
            .await?;
            self.money(&label, &format!("{a}: FAIL to its resubmission"), &mut book)
                .await?;
            self.clear_behaviours(&label, json!({"refundTradeNo": a}))
                .await?;
            self.resolve(&label, &a, "SUCCESS").await?;
            self.money(&label, &format!("{a}: resolved"), &mut book)
                .await?;

            // B (150): accepted with a SUCCESS reply that lacks
            // refundTransactionId; refundquery then lacks refundStatus; then
            // SUCCESS.
            let b = self.id("B", i);
            for rule in [
                json!({"refundTradeNo": b, "behaviour": "missing-field", "endpoint": "refund", "times": 1}),
                json!({"refundTradeNo": b, "behaviour": "missing-field", "endpoint": "refundquery", "times": 1}),
            ] {
                self.behave(&label, rule).await?;
            }
            let (status, reply) = self.ask_refund(&label, &mut book, &b, 150).await?;
            if status.is_none() {
                return Err(format!(
                    "POST /refunds {b} (150 of {trade_no}) answered {} and recorded nothing",
                    reply.summary_or_body()
                ));
            }
            self.expect_held(
                &label,
                &b,
                "after a SUCCESS reply without refundTransactionId",
            )
            .await?;
            self.money(
                &label,
                &format!("{b}: a SUCCESS without refundTransactionId"),
                &mut book,
            )
            .await?;
            self.synced(
                &format!("{label} {b} refundquery without refundStatus"),
                &format!("/refunds/{b}"),
            )
            .await?;
            self.expect_held(
                &label,
                &b,
                "after a refundquery SUCCESS without refundStatus",
            )
            .await?;
            self.money(
                &label,
                &format!("{b}: a refundquery without refundStatus"),
                &mut book,
            )
            .await?;
            self.clear_behaviours(&label, json!({"refundTradeNo": b}))
                .await?;
            self.resolve(&label, &b, "SUCCESS").await?;
            self.money(&label, &format!("{b}: resolved"), &mut book)
                .await?;

            // C (100): accepted; refundquery busy until cleared; SUCCESS.
            let c = self.id("C", i);
            self.open(&label, &mut book, &c, 100).await?;
            self.behave(
                &label,
                json!({"refundTradeNo": c, "behaviour": "busy", "endpoint": "refundquery"}),
            )
            .await?;
            for k in 1..=2 {
                self.synced(
                    &format!("{label} {c} busy refundquery {k}/2"),
                    &format!("/refunds/{c}"),
                )
                .await?;
                self.expect_held(&label, &c, "after a busy refundquery")
                    .await?;
            }
            self.money(&label, &format!("{c}: busy refundqueries"), &mut book)
                .await?;
            self.clear_behaviours(&label, json!({"refundTradeNo": c}))
                .await?;
            self.resolve(&label, &c, "SUCCESS").await?;
            self.money(&label, &format!("{c}: resolved"), &mut book)
                .await?;

            // D (100): accepted, failed later by the platform; meanwhile
            // refundquery lacks refundStatus twice; then FAIL: released.
            let d = self.id("D", i);
            self.behave(
                &label,
                json!({"refundTradeNo": d, "behaviour": "accept-then-fail", "delayMs": 600_000}),
            )
            .await?;
            self.open(&label, &mut book, &d, 100).await?;
            self.behave(
                &label,
                json!({"refundTradeNo": d, "behaviour": "missing-field", "endpoint": "refundquery", "times": 2}),
            )
            .await?;
            for k in 1..=2 {
                self.synced(
                    &format!("{label} {d} refundquery without refundStatus {k}/2"),
                    &format!("/refunds/{d}"),
                )
                .await?;
                self.expect_held(
                    &label,
                    &d,
                    "after a refundquery SUCCESS without refundStatus",
                )
                .await?;
            }
            self.money(
                &label,
                &format!("{d}: refundqueries without refundStatus"),
                &mut book,
            )
            .await?;
            self.clear_behaviours(&label, json!({"refundTradeNo": d}))
                .await?;
            self.resolve(&label, &d, "FAIL").await?;
            self.money(&label, &format!("{d}: resolved"), &mut book)
                .await?;

            // E (150): accepted; refundquery answers after the partner's
            // timeout; SUCCESS.
            let e = self.id("E", i);
            self.open(&label, &mut book, &e, 150).await?;
            self.behave(
                &label,
                json!({"refundTradeNo": e, "behaviour": "late-reply", "endpoint": "refundquery", "delayMs": late, "times": 1}),
            )
            .await?;
            self.synced(
                &format!("{label} {e} refundquery after the timeout"),
                &format!("/refunds/{e}"),
            )
            .await?;
            self.expect_held(&label, &e, "after a refundquery reply came too late")
                .await?;
            self.money(&label, &format!("{e}: a late refundquery"), &mut book)
                .await?;
            self.resolve(&label, &e, "SUCCESS").await?;
            self.money(&label, &format!("{e}: resolved"), &mut book)
                .await?;

            // F (200): accepted (PROCESSING), then failed by the platform
            // (its notification, when configured, says FAIL): released.
            let f = self.id("F", i);
            self.behave(
                &label,
                json!({"refundTradeNo": f, "behaviour": "accept-then-fail", "delayMs": 300}),
            )
            .await?;
            self.open(&label, &mut book, &f, 200).await?;
            self.money(&label, &format!("{f}: accepted"), &mut book)
                .await?;
            self.expect_failed_later(&label, &f).await?;
            self.money(&label, &format!("{f}: failed by the platform"), &mut book)
                .await?;

            // G: what the platform has not paid and will not pay can be
            // refunded again (A, B, C and E hold 600; D and F released 300).
            let ledger = self
                .sim_json(&label, &format!("/admin/orders/{trade_no}"))
                .await?;
            let left = total - ledger["refundedAmt"].as_i64().unwrap_or(total);
            if left > 0 {
                let g = self.id("G", i);
                let (status, reply) = self.ask_refund(&label, &mut book, &g, left).await?;
                match status.as_deref() {
                    Some("FAILED") | None => self.violation(format!(
                        "order {trade_no}: refunding the {left} the platform released was refused: {}",
                        reply.summary_or_body()
                    )),
                    Some(_) => self.resolve(&label, &g, "SUCCESS").await?,
                }
                self.money(&label, &format!("{g}: the released {left}"), &mut book)
                    .await?;
            }
            // One fen more must be refused (422) or fail at the platform.
            let h = self.id("H", i);
            let (status, reply) = self.ask_refund(&label, &mut book, &h, 1).await?;
            if status.is_some_and(|s| s != "FAILED") {
                self.console.line(format!(
                    "   !! {h}: one fen over the order was accepted ({})",
                    reply.summary_or_body()
                ));
            }
            self.money(&label, &format!("{h}: one fen too many"), &mut book)
                .await?;

            self.clear_behaviours(&label, json!({"tradeNo": trade_no}))
                .await?;
            for no in [&d, &f] {
                self.clear_behaviours(&label, json!({"refundTradeNo": no}))
                    .await?;
            }
            self.check_refund_totals(&label, &trade_no, total, &book.ours)
                .await?;
            self.progress(i + 1, n);
        }
        Ok(())
    }

    /// A refund the platform accepted and then failed must end `FAILED` at
    /// the partner: through its notification (when the simulator sends
    /// them) or, after a while, through `refundquery`.
    async fn expect_failed_later(&self, label: &str, no: &str) -> Result<(), String> {
        let until = Instant::now() + Duration::from_secs(10);
        while self.platform_status(label, no).await? == "PROCESSING" {
            if Instant::now() >= until {
                return Err(format!(
                    "the simulator did not fail {no} (accept-then-fail)"
                ));
            }
            self.sleep(Duration::from_millis(100)).await?;
        }
        let theirs = self.platform_status(label, no).await?;
        let until = Instant::now() + Duration::from_secs(3);
        let mut ours = self.partner_status(label, no).await?;
        while ours != "FAILED" && Instant::now() < until {
            self.sleep(Duration::from_millis(200)).await?;
            ours = self.partner_status(label, no).await?;
        }
        if ours != "FAILED" {
            if let Some(refund) = self
                .synced(&format!("{label} {no} sync"), &format!("/refunds/{no}"))
                .await?
            {
                ours = refund["status"].as_str().unwrap_or("?").to_owned();
            }
        }
        let want = if theirs == "FAIL" {
            "FAILED"
        } else {
            "SUCCESS"
        };
        if ours != want {
            self.violation(format!(
                "refund {no} is {ours} after the platform accepted it and then settled it {theirs}; expected {want}"
            ));
        }
        Ok(())
    }

    async fn lost_ship(&self) -> Result<(), String> {
        let n = self.count();
        let mut paid = Vec::with_capacity(n);
        for i in 0..n {
            let trade_no = self.id("O", i);
            let label = format!("[{}/{n}]", i + 1);
            self.create_order(&label, &trade_no, 1590).await?;
            paid.push(self.pay_silently(&label, &trade_no, 1590).await?);
            self.progress(i + 1, n);
        }
        // Paid at the platform, never notified.
        for (i, p) in paid.iter().enumerate() {
            let order = self
                .get_order(&format!("[{}/{n}]", i + 1), &p.trade_no)
                .await?;
            if order["status"] == "PAID" {
                self.note(format!(
                    "order {} was PAID before any sweep (something else queried it)",
                    p.trade_no
                ));
            }
        }
        let wait = self.options.reconcile_wait;
        match &self.options.reconcile {
            Reconcile::Manual => self.console.progress(format!(
                "{}: {n} order(s) paid at the platform and never notified; run the reconcile \
                 sweep now, e.g. in another terminal:\n    \
                 cargo lambda invoke reconcile --invoke-address 127.0.0.1 --data-ascii '{{}}'\n\
                 waiting up to {} s for the orders to become PAID...",
                self.scenario,
                wait.as_secs()
            )),
            Reconcile::Command(cmd) => self.run_command(cmd).await?,
            Reconcile::Hook(hook) => {
                let result = tokio::time::timeout(self.remaining()?, hook()).await;
                self.requests.fetch_add(1, Ordering::SeqCst);
                match result {
                    Ok(Ok(summary)) => self.console.line(format!("reconcile -> {summary}")),
                    Ok(Err(e)) => self.console.line(format!("reconcile -> failed: {e}")),
                    Err(_) => return Err("the reconcile sweep did not finish in time".to_owned()),
                }
            }
        }
        let until = Instant::now() + wait;
        let mut pending: Vec<&Paid> = paid.iter().collect();
        let mut round = 0;
        while !pending.is_empty() {
            round += 1;
            let mut still = Vec::new();
            for p in pending {
                let order = self
                    .get_order(&format!("poll {round}"), &p.trade_no)
                    .await?;
                if order["status"] != "PAID" {
                    still.push(p);
                }
            }
            pending = still;
            if pending.is_empty() || Instant::now() >= until {
                break;
            }
            self.console.progress(format!(
                "{}: {}/{n} PAID, waiting ({} s left)",
                self.scenario,
                n - pending.len(),
                until.saturating_duration_since(Instant::now()).as_secs()
            ));
            self.sleep(Duration::from_secs(2)).await?;
        }
        for (i, p) in paid.iter().enumerate() {
            self.expect_paid(&format!("[{}/{n}]", i + 1), p, "after reconcile")
                .await?;
        }
        Ok(())
    }

    /// Runs the reconcile command (bounded by the deadline), one line for
    /// what it printed last.
    async fn run_command(&self, cmd: &str) -> Result<(), String> {
        self.console.line(format!("$ {cmd}"));
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        self.requests.fetch_add(1, Ordering::SeqCst);
        let output = match tokio::time::timeout(self.remaining()?, child).await {
            Err(_) => return Err(format!("`{cmd}` did not finish in time")),
            Ok(Err(e)) => return Err(format!("cannot run `{cmd}`: {e}")),
            Ok(Ok(output)) => output,
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = |text: &str| {
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        };
        let shown = last(&stdout).or_else(|| last(&stderr)).unwrap_or_default();
        self.console
            .line(format!("$ -> {}: {}", output.status, clip(&shown, 300)));
        if !output.status.success() {
            self.note(format!(
                "`{cmd}` exited with {}: {}",
                output.status,
                clip(&last(&stderr).unwrap_or_default(), 300)
            ));
        }
        Ok(())
    }
}

impl Reply {
    /// `422 {"error":..}` for error replies of the partner API.
    fn summary_or_body(&self) -> String {
        if self.status == 0 {
            self.summary()
        } else {
            format!("{} {}", self.status, clip(&compact(&self.body), 300))
        }
    }
}

fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Awaits every future, concurrently on this task.
async fn futures_join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut futures: Vec<Option<Pin<Box<F>>>> = futures.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *output = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>(), Ok(s));
        }
        assert!("nope"
            .parse::<Scenario>()
            .unwrap_err()
            .contains("lost-ship"));
    }

    #[test]
    fn clipping_and_paths() {
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(
            path_of("http://127.0.0.1:9000/lambda-url/x/"),
            "/lambda-url/x/"
        );
        assert_eq!(path_of("http://h"), "http://h");
    }

    fn view(
        partner: &[(&str, &str, i64)],
        refunded: i64,
        platform: &[(&str, &str, i64)],
    ) -> MoneyView {
        let seen = |list: &[(&str, &str, i64)]| {
            list.iter()
                .map(|(no, status, amt)| SeenRefund::new(no, status, *amt))
                .collect()
        };
        MoneyView {
            trade_no: "O1".to_owned(),
            total_amt: 1000,
            partner: seen(partner),
            refunded_amt: Some(refunded),
            platform: seen(platform),
        }
    }

    fn texts(view: &MoneyView) -> Vec<String> {
        money_violations(view).into_iter().map(|v| v.text).collect()
    }

    #[test]
    fn money_is_safe_when_the_partner_holds_back_what_the_platform_may_pay() {
        for safe in [
            view(&[], 0, &[]),
            // Recorded at the platform, answer unknown at the partner.
            view(&[("A", "PENDING", 200)], 200, &[("A", "PROCESSING", 200)]),
            // The partner holds back more than the platform will pay: safe.
            view(&[("A", "PENDING", 200)], 200, &[]),
            view(&[("A", "PROCESSING", 200)], 200, &[("A", "FAIL", 200)]),
            view(
                &[
                    ("A", "SUCCESS", 600),
                    ("B", "FAILED", 600),
                    ("C", "PROCESSING", 400),
                ],
                1000,
                &[
                    ("A", "SUCCESS", 600),
                    ("B", "FAIL", 600),
                    ("C", "SUCCESS", 400),
                ],
            ),
            // A first submission refused: nothing recorded at the platform.
            view(&[("A", "FAILED", 300)], 0, &[]),
        ] {
            assert_eq!(texts(&safe), Vec::<String>::new(), "{safe:?}");
        }
    }

    #[test]
    fn money_is_unsafe_when_the_partner_released_what_the_platform_may_pay() {
        // A FAIL to a resubmission taken for a refusal: the platform still
        // has the refund PROCESSING.
        let released = view(&[("A", "FAILED", 200)], 0, &[("A", "PROCESSING", 200)]);
        assert_eq!(
            texts(&released),
            vec!["order O1: the platform has paid or may still pay 200 (A PROCESSING 200) but the partner's refunds not FAILED add up to 0"]
        );
        // ... and then paid it; the same problem keeps its key.
        let paid = view(
            &[("A", "FAILED", 200), ("B", "PENDING", 100)],
            100,
            &[("A", "SUCCESS", 200), ("B", "PROCESSING", 100)],
        );
        let found = money_violations(&paid);
        assert_eq!(
            found.iter().map(|v| v.text.as_str()).collect::<Vec<_>>(),
            vec![
                "order O1: the platform has paid or may still pay 300 (A SUCCESS 200, B PROCESSING 100) but the partner's refunds not FAILED add up to 100",
                "refund A: the platform paid it (200 SUCCESS) but the partner has it FAILED",
            ]
        );
        assert_eq!(found[0].key, money_violations(&released)[0].key);
        assert_eq!(found[1].key, "refund A paid");
        // Another refund released is another problem.
        let more = view(
            &[("A", "FAILED", 200), ("B", "FAILED", 100)],
            0,
            &[("A", "SUCCESS", 200), ("B", "PROCESSING", 100)],
        );
        assert_ne!(money_violations(&more)[0].key, found[0].key);
        // Only refundedAmt falls short.
        let counted = view(&[("A", "PENDING", 200)], 0, &[("A", "PROCESSING", 200)]);
        assert_eq!(
            texts(&counted),
            vec!["order O1: the platform has paid or may still pay 200 (A PROCESSING 200) but the partner's refunds not FAILED add up to 200 (refundedAmt 0)"]
        );
        // A refund paid that the partner does not know.
        let unknown = view(&[], 0, &[("Z", "SUCCESS", 200)]);
        assert_eq!(
            texts(&unknown),
            vec![
                "order O1: the platform has paid or may still pay 200 (Z SUCCESS 200) but the partner's refunds not FAILED add up to 0",
                "refund Z: the platform paid it (200 SUCCESS) but the partner does not know it",
            ]
        );
        // More held back than the order.
        let over = view(
            &[("A", "PENDING", 600), ("B", "PROCESSING", 500)],
            1100,
            &[("B", "PROCESSING", 500)],
        );
        assert_eq!(
            texts(&over),
            vec!["order O1: the partner's refunds not FAILED add up to 1100, more than its totalAmt 1000"]
        );
    }

    #[tokio::test]
    async fn join_all_runs_concurrently_and_keeps_order() {
        let started = Instant::now();
        let out = futures_join_all((0..5u64).map(|i| async move {
            tokio::time::sleep(Duration::from_millis(100 - i * 10)).await;
            i
        }))
        .await;
        assert_eq!(out, vec![0, 1, 2, 3, 4]);
        assert!(started.elapsed() < Duration::from_millis(400));
    }
}
