//! CloudWatch metrics in Embedded Metric Format (EMF): one JSON object per
//! line on stdout, which CloudWatch Logs turns into metrics. No SDK, no
//! network call, nothing to flush.
//!
//! Every metric is in the [`NAMESPACE`] namespace with two dimension sets:
//! `Function` (the Lambda function's name, `AWS_LAMBDA_FUNCTION_NAME`, or
//! the name given at the call site when running locally) and `Service` (the
//! deployment, `DINGDANG_METRICS_SERVICE`: the template sets it to the stack
//! name, so that one alarm covers every function of one stack).
//!
//! Emit where an outcome is decided, once:
//!
//! ```no_run
//! use dingdang::observability::metrics::{Event, Metric};
//! Event::new("ship-notify")
//!     .count(Metric::NotificationReceived)
//!     .count(Metric::Fulfilled)
//!     .prop("outcome", "fulfilled")
//!     .emit();
//! ```
//!
//! Lines go to stdout unless [`set_sink`] installed another writer (tests
//! capture them that way).

use std::io::Write;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Number, Value};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Dingdang";

/// The environment variable naming the deployment (`Service` dimension).
pub const SERVICE_ENV: &str = "DINGDANG_METRICS_SERVICE";

/// The `Service` dimension when [`SERVICE_ENV`] is not set.
pub const DEFAULT_SERVICE: &str = "dingdang";

/// A CloudWatch unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
            Self::Seconds => "Seconds",
        }
    }
}

macro_rules! metrics {
    ($($(#[$doc:meta])* $variant:ident => $unit:ident,)+) => {
        /// Every metric this service emits. The CloudWatch name is the
        /// variant's name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Metric {
            $($(#[$doc])* $variant,)+
        }

        impl Metric {
            /// All metrics, in declaration order.
            pub const ALL: &'static [Metric] = &[$(Metric::$variant,)+];

            /// The CloudWatch metric name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Metric::$variant => stringify!($variant),)+
                }
            }

            pub fn unit(self) -> Unit {
                match self {
                    $(Metric::$variant => Unit::$unit,)+
                }
            }
        }
    };
}

metrics! {
    /// Every request to an endpoint the platform calls (ship-notify,
    /// refund-notify, create-order).
    NotificationReceived => Count,
    /// A ship notification granted the order (outcome `fulfilled`).
    Fulfilled => Count,
    /// A redelivered ship notification answered with the first reply, or a
    /// repeated create-order request answered with the first order number (`duplicate`).
    DuplicateReplayed => Count,
    /// A ship notification for a payment the order already records (`already_fulfilled`).
    AlreadyFulfilled => Count,
    /// The same `transactionId` with other fields (`conflict`): money at risk.
    Conflict => Count,
    /// Refused: missing or bad signature (`signature`).
    RejectedSignature => Count,
    /// Refused: timestamp outside the accepted clock skew (`clock`).
    RejectedClock => Count,
    /// Refused: a `nonceStr` seen before with another body (`replay`).
    RejectedReplay => Count,
    /// Refused: another skill's notification (`wrong_skill`).
    RejectedSkill => Count,
    /// Refused: a signed payment for an order we do not know (`unknown_order`): money at risk.
    RejectedUnknownOrder => Count,
    /// Refused: a signed payment of another amount than the order's (`amount_mismatch`): money at risk.
    RejectedAmount => Count,
    /// Refused: the order was paid by another transaction (`paid_by_other`): money at risk.
    RejectedPaidByOther => Count,
    /// Refused: not JSON, not a valid message (`bad_request`), whatever the Content-Type.
    RejectedBadRequest => Count,
    /// Another delivery of the same payment is being processed (`in_progress`).
    InProgress => Count,
    /// Our own failure (store, dependency) answering a notification (`error`).
    NotificationError => Count,
    /// create-order registered a new order (`created`).
    OrderCreated => Count,
    /// A refund result notification moved a refund (`applied`).
    RefundResultApplied => Count,
    /// A refund result notification that changed nothing (`acknowledged`).
    RefundResultAcknowledged => Count,
    /// A signed refund notification for a `refundTradeNo` we do not know (`unknown_refund`): money at risk.
    UnknownRefund => Count,
    /// A signed refund notification disagreeing with our refund (`refund_mismatch`): money at risk.
    RefundMismatch => Count,
    /// A report of the platform contradicting a refund's final state, or
    /// `refundquery` disagreeing with our record (`refund_contradiction`): money at risk.
    RefundContradiction => Count,
    /// A ship notification carrying another `userToken` than the order's:
    /// the payment is recorded for the order, which keeps its own (alerted).
    UserTokenMismatch => Count,
    /// A ship notification paying an order that had expired unpaid: the
    /// payment is recorded and granted (alerted).
    PaidAfterExpiry => Count,
    /// Time the partner's webhook took to answer.
    FulfilmentLatency => Milliseconds,
    /// An entitlement event the partner's webhook accepted (2xx).
    EntitlementDelivered => Count,
    /// An entitlement event the partner's webhook refused or did not answer: retried.
    EntitlementDeliveryFailed => Count,
    /// How long the longest-pending entitlement event has waited (reconcile, after each sweep).
    OldestUndeliveredSecs => Seconds,
    /// Every request to the partner API (refund-api).
    ApiRequest => Count,
    /// A partner API request that failed on our side (500, 503).
    ApiServerError => Count,
    /// The platform did not answer usably (timeout, 5xx, bad signature, unreadable reply).
    PlatformError => Count,
    /// Every refund request that reached the refund service (`POST /refunds`).
    RefundRequested => Count,
    /// A new refund the platform accepted (PROCESSING).
    RefundAccepted => Count,
    /// A new refund without a usable answer from the platform (PENDING, resolved later).
    RefundPending => Count,
    /// A new refund the platform refused (FAILED).
    RefundFailed => Count,
    /// A refund refused because it exceeds the order's refundable amount (422).
    OverRefundRefused => Count,
    /// Reconcile: orders found paid at the platform (and fulfilled) that no notification had delivered.
    ReconcileFoundPaid => Count,
    /// Reconcile: open refunds whose status it moved.
    ReconcileResolvedRefunds => Count,
    /// Reconcile: items it could not check (store or platform errors).
    ReconcileErrors => Count,
    /// Reconcile: one per sweep that completed (alarmed when missing).
    ReconcileCompleted => Count,
    /// Reconcile: one per sweep that failed as a whole (a listing error).
    ReconcileFailed => Count,
    /// Reconcile: items read as due that the sweep's budget did not reach.
    ReconcileLeft => Count,
    /// Reconcile: orders unpaid at `RECONCILE_MAX_AGE_SECS`, now EXPIRED.
    OrderExpired => Count,
    /// Refunds still open past `REFUND_ATTENTION_SECS`, counted by every sweep: a person must settle them.
    RefundNeedsAttention => Count,
    /// A refund settled by an operator (`POST /refunds/{refundTradeNo}/settle`).
    RefundSettledByOperator => Count,
    /// A signature verified, per key: on its own line with the dimension
    /// set `[Service, KeyFingerprint]` ([`verified_by_key`]), so that an
    /// operator sees when an old key is no longer used.
    VerifiedByKey => Count,
    /// The keys were read again from their source (the TTL ran out, or a
    /// signature matched no key held).
    KeysRefreshed => Count,
    /// Reading the keys again failed: the keys held are kept.
    KeysRefreshFailed => Count,
}

impl Metric {
    /// The metric counting a notification outcome code ([`crate::http::notify::Answer::outcome`]).
    pub fn for_outcome(outcome: &str) -> Option<Metric> {
        Some(match outcome {
            "fulfilled" => Self::Fulfilled,
            "duplicate" => Self::DuplicateReplayed,
            "already_fulfilled" => Self::AlreadyFulfilled,
            "conflict" => Self::Conflict,
            "signature" => Self::RejectedSignature,
            "clock" => Self::RejectedClock,
            "replay" => Self::RejectedReplay,
            "wrong_skill" => Self::RejectedSkill,
            "unknown_order" => Self::RejectedUnknownOrder,
            "amount_mismatch" => Self::RejectedAmount,
            "paid_by_other" => Self::RejectedPaidByOther,
            "bad_request" => Self::RejectedBadRequest,
            "in_progress" => Self::InProgress,
            "error" => Self::NotificationError,
            "created" => Self::OrderCreated,
            "applied" => Self::RefundResultApplied,
            "acknowledged" => Self::RefundResultAcknowledged,
            "unknown_refund" => Self::UnknownRefund,
            "refund_mismatch" => Self::RefundMismatch,
            "refund_contradiction" => Self::RefundContradiction,
            _ => return None,
        })
    }
}

type Sink = Box<dyn Fn(&str) + Send + Sync>;

static SINK: OnceLock<Sink> = OnceLock::new();

/// Sends every metric line to `sink` instead of stdout, for the rest of the
/// process. Only the first call takes effect; it returns `false` otherwise.
pub fn set_sink(sink: impl Fn(&str) + Send + Sync + 'static) -> bool {
    SINK.set(Box::new(sink)).is_ok()
}

fn write_line(line: &str) {
    if let Some(sink) = SINK.get() {
        sink(line);
        return;
    }
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    // One write under the lock: a line is never interleaved with a log line.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn lambda_function() -> Option<&'static str> {
    static NAME: OnceLock<Option<String>> = OnceLock::new();
    NAME.get_or_init(|| env_value("AWS_LAMBDA_FUNCTION_NAME"))
        .as_deref()
}

fn service() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| env_value(SERVICE_ENV).unwrap_or_else(|| DEFAULT_SERVICE.to_owned()))
}

/// The `Function` dimension: the Lambda function's name, or `local` when
/// not running in Lambda.
pub fn function_name(local: &str) -> String {
    lambda_function().unwrap_or(local).to_owned()
}

/// One EMF line: some metric values and properties for the logs.
#[derive(Debug, Clone)]
#[must_use = "an event does nothing until it is emitted"]
pub struct Event {
    function: String,
    values: Vec<(Metric, f64)>,
    props: Vec<(&'static str, Value)>,
    /// A dimension that replaces the usual sets by `[Service, name]`.
    by: Option<(&'static str, String)>,
}

impl Event {
    /// An event of `function`: the Lambda function's name when running in
    /// Lambda, `function` otherwise.
    pub fn new(function: &str) -> Self {
        Self {
            function: function_name(function),
            values: Vec::new(),
            props: Vec::new(),
            by: None,
        }
    }

    /// The line's metrics per `name` (a dimension) in the service: the
    /// dimension set is `[Service, name]` instead of `[Function]`,
    /// `[Service]`. `Function` stays on the line as a property.
    pub fn per(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.by = Some((name, value.into()));
        self
    }

    /// Adds 1 to `metric`.
    pub fn count(self, metric: Metric) -> Self {
        self.value(metric, 1.0)
    }

    /// Adds 1 to `metric` when `metric` is `Some`.
    pub fn count_opt(self, metric: Option<Metric>) -> Self {
        match metric {
            Some(metric) => self.count(metric),
            None => self,
        }
    }

    /// Records `value` for `metric` (a metric named twice keeps the last value).
    pub fn value(mut self, metric: Metric, value: f64) -> Self {
        self.values.retain(|(m, _)| *m != metric);
        self.values.push((metric, value));
        self
    }

    /// Records a duration in milliseconds.
    pub fn millis(self, metric: Metric, elapsed: Duration) -> Self {
        self.value(metric, elapsed.as_secs_f64() * 1000.0)
    }

    /// A property: searchable in the logs, not a metric. Keys are
    /// camelCase; never put a secret here.
    pub fn prop(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.props.retain(|(k, _)| *k != key);
        self.props.push((key, value.into()));
        self
    }

    /// A property when `value` is `Some` and not empty.
    pub fn prop_opt(self, key: &'static str, value: Option<&str>) -> Self {
        match value.filter(|v| !v.is_empty()) {
            Some(value) => self.prop(key, value),
            None => self,
        }
    }

    /// The metric values of this event.
    pub fn values(&self) -> &[(Metric, f64)] {
        &self.values
    }

    /// The EMF JSON object, with `timestamp_ms` (epoch milliseconds).
    pub fn to_json(&self, timestamp_ms: u64) -> Value {
        let definitions: Vec<Value> = self
            .values
            .iter()
            .map(|(m, _)| json!({"Name": m.name(), "Unit": m.unit().as_str()}))
            .collect();
        let dimensions = match &self.by {
            None => json!([["Function"], ["Service"]]),
            Some((name, _)) => json!([["Service", name]]),
        };
        let mut root = Map::new();
        root.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": dimensions,
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert("Function".to_owned(), Value::from(self.function.as_str()));
        root.insert("Service".to_owned(), Value::from(service()));
        if let Some((name, value)) = &self.by {
            root.insert((*name).to_owned(), Value::from(value.as_str()));
        }
        for (key, value) in &self.props {
            root.insert((*key).to_owned(), value.clone());
        }
        for (metric, value) in &self.values {
            root.insert(metric.name().to_owned(), number(*value));
        }
        Value::Object(root)
    }

    /// Writes the line (nothing when the event has no metric).
    pub fn emit(self) {
        if self.values.is_empty() {
            return;
        }
        write_line(&self.to_json(now_ms()).to_string());
    }
}

/// Integers as JSON integers, other values as floats (NaN and infinities
/// as 0: CloudWatch rejects them).
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
        Value::from(value as i64)
    } else {
        Number::from_f64(value).map_or(Value::from(0), Value::Number)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The time the fulfilment webhook took, and whether it succeeded.
/// One call of the partner's webhook: `EntitlementDelivered` or
/// `EntitlementDeliveryFailed`, and its latency.
pub fn delivery(
    elapsed: Duration,
    event: &crate::domain::entitlements::Event,
    error: Option<&crate::domain::entitlements::SinkError>,
) {
    let line = Event::new("entitlements")
        .millis(Metric::FulfilmentLatency, elapsed)
        .count(if error.is_none() {
            Metric::EntitlementDelivered
        } else {
            Metric::EntitlementDeliveryFailed
        })
        .prop("eventId", event.id())
        .prop("eventType", event.kind());
    match error {
        None => line.prop("fulfilment", "ok"),
        Some(e) => line
            .prop("fulfilment", "failed")
            .prop("error", e.0.as_str()),
    }
    .emit();
}

/// One signature verified by the key of `fingerprint`, in `function`:
/// `VerifiedByKey` 1 per `[Service, KeyFingerprint]`. A key whose count
/// stays at zero is no longer used by the other side.
pub fn verified_by_key(function: &str, fingerprint: &str) {
    Event::new(function)
        .count(Metric::VerifiedByKey)
        .per("KeyFingerprint", fingerprint)
        .emit();
}

/// What one reconcile sweep found: orders found paid (lost notifications,
/// now fulfilled), refunds whose status moved, and errors.
/// The line of one sweep: its counts when it completed
/// (`ReconcileCompleted` 1), `ReconcileFailed` 1 when it failed as a whole
/// (a listing error), so that a sweep never ends without a line.
pub fn reconcile(summary: Option<&crate::domain::reconcile::Summary>) {
    let event = Event::new("reconcile");
    let Some(summary) = summary else {
        return event
            .value(Metric::ReconcileFailed, 1.0)
            .value(Metric::ReconcileErrors, 1.0)
            .emit();
    };
    let event = event
        .value(Metric::ReconcileCompleted, 1.0)
        .value(Metric::ReconcileFoundPaid, summary.orders_fulfilled as f64)
        .value(
            Metric::ReconcileResolvedRefunds,
            summary.refunds_resolved as f64,
        )
        .value(Metric::ReconcileErrors, summary.errors as f64)
        .value(Metric::PlatformError, summary.platform_errors as f64)
        .value(Metric::OrderExpired, summary.orders_expired as f64)
        .value(Metric::ReconcileLeft, summary.left as f64)
        .value(
            Metric::RefundNeedsAttention,
            summary.refunds_need_attention as f64,
        );
    match summary.oldest_undelivered_secs {
        Some(age) => event.value(Metric::OldestUndeliveredSecs, age as f64),
        None => event,
    }
    .emit();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ship::{Rejection, ShipOutcome};
    use crate::protocol::Reply;

    #[test]
    fn an_event_is_one_emf_object() {
        let event = Event::new("ship-notify")
            .count(Metric::NotificationReceived)
            .count(Metric::Fulfilled)
            .prop("outcome", "fulfilled")
            .prop("transactionId", "T1");
        let line = event.to_json(1_700_000_000_123).to_string();
        assert!(!line.contains('\n'));
        let value: Value = serde_json::from_str(&line).unwrap();
        let aws = &value["_aws"];
        assert_eq!(aws["Timestamp"], 1_700_000_000_123u64);
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Dingdang");
        assert_eq!(directive["Dimensions"], json!([["Function"], ["Service"]]));
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "NotificationReceived", "Unit": "Count"},
                {"Name": "Fulfilled", "Unit": "Count"},
            ])
        );
        assert_eq!(value["Function"], function_name("ship-notify"));
        assert!(value["Service"].is_string());
        assert_eq!(value["NotificationReceived"], 1);
        assert_eq!(value["Fulfilled"], 1);
        assert_eq!(value["outcome"], "fulfilled");
        assert_eq!(value["transactionId"], "T1");
    }

    #[test]
    fn latency_in_milliseconds() {
        let value = Event::new("x")
            .millis(Metric::FulfilmentLatency, Duration::from_micros(12_500))
            .to_json(0);
        assert_eq!(value["FulfilmentLatency"], 12.5);
        assert_eq!(
            value["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Milliseconds"
        );
        let value = Event::new("x")
            .value(Metric::ReconcileErrors, f64::NAN)
            .to_json(0);
        assert_eq!(value["ReconcileErrors"], 0);
    }

    #[test]
    fn per_key_lines_have_their_own_dimension_set() {
        let value = Event::new("ship-notify")
            .count(Metric::VerifiedByKey)
            .per("KeyFingerprint", "0011223344556677")
            .to_json(1);
        let directive = &value["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(
            directive["Dimensions"],
            json!([["Service", "KeyFingerprint"]])
        );
        assert_eq!(value["KeyFingerprint"], "0011223344556677");
        assert_eq!(value["VerifiedByKey"], 1);
        assert!(value["Service"].is_string());
    }

    #[test]
    fn names_are_unique_and_not_properties() {
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
        for name in names {
            assert!(name.chars().next().unwrap().is_ascii_uppercase());
            assert!(!matches!(name, "Function" | "Service"));
        }
    }

    #[test]
    fn every_ship_outcome_has_a_metric() {
        let rejections = [
            Rejection::WrongSkill,
            Rejection::NonceReplayed,
            Rejection::UnknownOrder,
            Rejection::AmountMismatch,
            Rejection::PaidByOther,
            Rejection::Conflict,
            Rejection::InProgress,
        ];
        let outcomes = rejections.into_iter().map(ShipOutcome::Rejected).chain([
            ShipOutcome::Fulfilled,
            ShipOutcome::AlreadyFulfilled,
            ShipOutcome::Replayed(Reply::success()),
        ]);
        for outcome in outcomes {
            assert!(
                Metric::for_outcome(outcome.code()).is_some(),
                "{}",
                outcome.code()
            );
        }
        // The same for create-order's outcomes.
        for code in [
            "signature",
            "clock",
            "bad_request",
            "error",
            "created",
            "duplicate",
            "replay",
            "wrong_skill",
        ] {
            assert!(Metric::for_outcome(code).is_some(), "{code}");
        }
        assert_eq!(Metric::for_outcome("nonsense"), None);
    }
}
