//! The bad platform, per order and per refund: rules that make the `paycgi`
//! endpoints answer `FAIL` to a resubmitted refund, be busy, leave a field
//! out of a reply, reply late, or accept a refund and fail it later.
//!
//! A rule is for one order (its `tradeNo`: the order's `orderquery`, its
//! refunds and their `refundquery`) or one refund (its `refundTradeNo`: its
//! `refund` and `refundquery` requests), at one endpoint or at every
//! endpoint its behaviour makes sense at, for the next `times` requests it
//! applies to or until cleared. The rules are kept under the ledger's lock:
//! a request picks the first rule, in the order they were set, that applies
//! to it, and consumes one of its uses, atomically with its effect on the
//! ledger, so concurrent requests never share a use.

use std::fmt;
use std::mem::discriminant;
use std::str::FromStr;
use std::time::Duration;

use dingdang::protocol::{RefundTradeNo, TradeNo};
use serde_json::{json, Map, Value};

use crate::paycgi::Endpoint;
use crate::{lock, Simulator};

/// The delay of a `late-reply` rule set through the admin API without
/// `delayMs`: longer than the partner's default call timeout (5 s).
pub const DEFAULT_LATE_REPLY: Duration = Duration::from_secs(10);

/// What a rule is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum On {
    /// An order by `tradeNo`: its `orderquery`, its refunds and their
    /// `refundquery`.
    Order(String),
    /// A refund by `refundTradeNo`: its `refund` and `refundquery`
    /// requests.
    Refund(String),
}

impl On {
    /// `{"tradeNo":..}` or `{"refundTradeNo":..}`.
    fn to_json(&self) -> Map<String, Value> {
        let mut map = Map::new();
        match self {
            On::Order(t) => map.insert("tradeNo".to_owned(), json!(t)),
            On::Refund(r) => map.insert("refundTradeNo".to_owned(), json!(r)),
        };
        map
    }

    /// Exactly one of `tradeNo` and `refundTradeNo`, valid for the
    /// protocol; `None` when neither is given.
    pub(crate) fn from_json(request: &Value) -> Result<Option<On>, String> {
        let text = |field: &str| match &request[field] {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(format!("{field} must be a string")),
        };
        match (text("tradeNo")?, text("refundTradeNo")?) {
            (Some(_), Some(_)) => Err("give one of tradeNo and refundTradeNo".to_owned()),
            (Some(t), None) => {
                TradeNo::parse(&t).map_err(|e| format!("tradeNo {e}"))?;
                Ok(Some(On::Order(t)))
            }
            (None, Some(r)) => {
                RefundTradeNo::parse(&r).map_err(|e| format!("refundTradeNo {e}"))?;
                Ok(Some(On::Refund(r)))
            }
            (None, None) => Ok(None),
        }
    }
}

/// How the platform misbehaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// `refund` only: a resubmission of a refund the platform already
    /// recorded (same `refundTradeNo`, order and amount) is answered
    /// `retCode` `FAIL` "duplicate refundTradeNo"; the recorded refund
    /// proceeds as usual. A first submission is not affected.
    FailDuplicate,
    /// `retCode` `FAIL` "system busy", the ledger unchanged (a refund is not
    /// recorded).
    Busy,
    /// A `SUCCESS` reply without this field (`None`: `transactionId` for
    /// `orderquery`, `refundTransactionId` for `refund`, `refundStatus` for
    /// `refundquery`), signed as usual; the request has its usual effect.
    /// Only replies that would be `SUCCESS` are affected.
    MissingField(Option<String>),
    /// The request has its usual effect (a refund is recorded) at once;
    /// the reply comes after this delay (make it longer than the client's
    /// timeout).
    LateReply(Duration),
    /// `refund` only: a new refund is accepted (`PROCESSING`) as usual,
    /// then becomes `FAIL` after this delay (`None`:
    /// [`SimConfig::refund_delay`](crate::SimConfig::refund_delay)),
    /// whatever [`SimConfig::refund_outcome`](crate::SimConfig::refund_outcome)
    /// says; its amount is released and its refund result notification, when
    /// configured, says `FAIL`.
    AcceptThenFail(Option<Duration>),
}

impl Behaviour {
    /// Its name in the admin API.
    pub fn name(&self) -> &'static str {
        match self {
            Behaviour::FailDuplicate => "fail-duplicate",
            Behaviour::Busy => "busy",
            Behaviour::MissingField(_) => "missing-field",
            Behaviour::LateReply(_) => "late-reply",
            Behaviour::AcceptThenFail(_) => "accept-then-fail",
        }
    }

    /// Whether it can happen at `endpoint`.
    pub fn supports(&self, endpoint: Endpoint) -> bool {
        match self {
            Behaviour::FailDuplicate | Behaviour::AcceptThenFail(_) => endpoint == Endpoint::Refund,
            Behaviour::Busy | Behaviour::LateReply(_) => true,
            Behaviour::MissingField(None) => true,
            Behaviour::MissingField(Some(field)) => {
                reply_fields(endpoint).contains(&field.as_str())
            }
        }
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The fields of a `SUCCESS` reply of `endpoint` that
/// [`Behaviour::MissingField`] can leave out (`skillId` stands for
/// `domainId` too).
pub fn reply_fields(endpoint: Endpoint) -> &'static [&'static str] {
    match endpoint {
        Endpoint::OrderQuery => &[
            "skillId",
            "transactionId",
            "tradeNo",
            "totalAmt",
            "tradeStatus",
            "tradeStatusDesc",
        ],
        Endpoint::Refund => &[
            "skillId",
            "transactionId",
            "tradeNo",
            "refundTransactionId",
            "refundTradeNo",
            "totalAmt",
            "refundAmt",
        ],
        Endpoint::RefundQuery => &[
            "skillId",
            "transactionId",
            "tradeNo",
            "refundTransactionId",
            "refundTradeNo",
            "totalAmt",
            "refundAmt",
            "refundStatus",
            "refundStatusDesc",
        ],
    }
}

/// The field [`Behaviour::MissingField`] leaves out by default: the one a
/// partner needs most.
pub fn default_missing_field(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::OrderQuery => "transactionId",
        Endpoint::Refund => "refundTransactionId",
        Endpoint::RefundQuery => "refundStatus",
    }
}

/// One behaviour, for an order or a refund, at an endpoint or at all, for
/// a number of requests or until cleared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The order or refund.
    pub on: On,
    /// What happens.
    pub behaviour: Behaviour,
    /// `None`: every endpoint the behaviour supports.
    pub endpoint: Option<Endpoint>,
    /// The requests it still applies to (`None`: until cleared).
    pub times: Option<usize>,
}

impl Rule {
    /// `behaviour` for the order `trade_no` (its `orderquery`, its refunds
    /// and their `refundquery`), at every endpoint it supports, until
    /// cleared.
    pub fn order(trade_no: impl Into<String>, behaviour: Behaviour) -> Self {
        Self {
            on: On::Order(trade_no.into()),
            behaviour,
            endpoint: None,
            times: None,
        }
    }

    /// `behaviour` for the refund `refund_trade_no` (its `refund` and
    /// `refundquery` requests), at every endpoint it supports, until
    /// cleared.
    pub fn refund(refund_trade_no: impl Into<String>, behaviour: Behaviour) -> Self {
        Self {
            on: On::Refund(refund_trade_no.into()),
            behaviour,
            endpoint: None,
            times: None,
        }
    }

    /// Only at `endpoint`.
    pub fn at(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// For the next `n` requests it applies to.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    /// Refuses a rule that could never apply.
    pub fn check(&self) -> Result<(), String> {
        if self.times == Some(0) {
            return Err("times must be at least 1".to_owned());
        }
        if let Some(endpoint) = self.endpoint {
            if !self.behaviour.supports(endpoint) {
                return Err(match &self.behaviour {
                    Behaviour::MissingField(Some(field)) => format!(
                        "the {endpoint} reply has no field {field}; one of {}",
                        reply_fields(endpoint).join(", ")
                    ),
                    other => format!("{other} does not happen at {endpoint}"),
                });
            }
        } else if !Endpoint::ALL.iter().any(|e| self.behaviour.supports(*e)) {
            let Behaviour::MissingField(Some(field)) = &self.behaviour else {
                unreachable!("every other behaviour happens somewhere");
            };
            return Err(format!("no reply has a field {field}"));
        }
        Ok(())
    }

    /// Whether it is for a request to `endpoint` about `subject`.
    fn matches(&self, endpoint: Endpoint, subject: &Subject) -> bool {
        let endpoint_ok = match self.endpoint {
            Some(e) => e == endpoint,
            None => self.behaviour.supports(endpoint),
        };
        endpoint_ok
            && match &self.on {
                On::Order(t) => subject.trade_no.as_deref() == Some(t.as_str()),
                On::Refund(r) => subject.refund_trade_no.as_deref() == Some(r.as_str()),
            }
    }

    /// As the admin API takes and shows it: `tradeNo` or `refundTradeNo`,
    /// `behaviour`, and `endpoint`, `times`, `field`, `delayMs` when set.
    pub fn to_json(&self) -> Value {
        let mut map = self.on.to_json();
        map.insert("behaviour".to_owned(), json!(self.behaviour.name()));
        if let Some(endpoint) = self.endpoint {
            map.insert("endpoint".to_owned(), json!(endpoint.name()));
        }
        if let Some(times) = self.times {
            map.insert("times".to_owned(), json!(times));
        }
        match &self.behaviour {
            Behaviour::MissingField(Some(field)) => {
                map.insert("field".to_owned(), json!(field));
            }
            Behaviour::LateReply(delay) | Behaviour::AcceptThenFail(Some(delay)) => {
                map.insert("delayMs".to_owned(), json!(delay.as_millis() as u64));
            }
            _ => {}
        }
        Value::Object(map)
    }

    /// Reads a rule as [`Rule::to_json`] writes it; a `late-reply` without
    /// `delayMs` waits [`DEFAULT_LATE_REPLY`]. The rule is checked.
    pub fn from_json(request: &Value) -> Result<Rule, String> {
        if !request.is_object() {
            return Err("expected a JSON object".to_owned());
        }
        let on = On::from_json(request)?.ok_or("give one of tradeNo and refundTradeNo")?;
        let name = request["behaviour"].as_str().ok_or(
            "behaviour must be one of fail-duplicate, busy, missing-field, late-reply, accept-then-fail",
        )?;
        let delay = match &request["delayMs"] {
            Value::Null => None,
            v => Some(Duration::from_millis(
                v.as_u64().ok_or("delayMs must be whole milliseconds")?,
            )),
        };
        let field = match &request["field"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => return Err("field must be a string".to_owned()),
        };
        let behaviour = match name {
            "fail-duplicate" => Behaviour::FailDuplicate,
            "busy" => Behaviour::Busy,
            "missing-field" => Behaviour::MissingField(field.clone()),
            "late-reply" => Behaviour::LateReply(delay.unwrap_or(DEFAULT_LATE_REPLY)),
            "accept-then-fail" => Behaviour::AcceptThenFail(delay),
            other => {
                return Err(format!(
                    "unknown behaviour {other:?}; one of fail-duplicate, busy, missing-field, late-reply, accept-then-fail"
                ))
            }
        };
        if field.is_some() && !matches!(behaviour, Behaviour::MissingField(_)) {
            return Err("field goes with missing-field only".to_owned());
        }
        if delay.is_some()
            && !matches!(
                behaviour,
                Behaviour::LateReply(_) | Behaviour::AcceptThenFail(_)
            )
        {
            return Err("delayMs goes with late-reply and accept-then-fail only".to_owned());
        }
        let endpoint = match &request["endpoint"] {
            Value::Null => None,
            Value::String(s) => Some(s.parse::<Endpoint>()?),
            _ => return Err("endpoint must be a string".to_owned()),
        };
        let times = match &request["times"] {
            Value::Null => None,
            v => Some(
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or("times must be a whole number")?,
            ),
        };
        let rule = Rule {
            on,
            behaviour,
            endpoint,
            times,
        };
        rule.check()?;
        Ok(rule)
    }
}

/// What a request is about, as far as the platform can tell: its order's
/// `tradeNo` and its refund's `refundTradeNo`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Subject {
    pub(crate) trade_no: Option<String>,
    pub(crate) refund_trade_no: Option<String>,
}

/// The rules in force, in the order they were set.
#[derive(Debug, Default)]
pub(crate) struct Behaviours {
    rules: Vec<Rule>,
}

impl Behaviours {
    /// Adds `rule`, replacing one of the same behaviour for the same order
    /// or refund and endpoint.
    pub(crate) fn set(&mut self, rule: Rule) {
        let same = |r: &Rule| {
            r.on == rule.on
                && r.endpoint == rule.endpoint
                && discriminant(&r.behaviour) == discriminant(&rule.behaviour)
        };
        match self.rules.iter_mut().find(|r| same(r)) {
            Some(existing) => *existing = rule,
            None => self.rules.push(rule),
        }
    }

    /// Removes the rules for `on` (all with `None`); returns how many.
    pub(crate) fn clear(&mut self, on: Option<&On>) -> usize {
        let before = self.rules.len();
        self.rules.retain(|r| on.is_some_and(|on| &r.on != on));
        before - self.rules.len()
    }

    pub(crate) fn list(&self) -> Vec<Rule> {
        self.rules.clone()
    }

    /// The behaviour of the first rule for a request to `endpoint` about
    /// `subject` for which `applies` holds; one of its uses is consumed
    /// (the rule goes once none is left).
    pub(crate) fn take(
        &mut self,
        endpoint: Endpoint,
        subject: &Subject,
        applies: impl Fn(&Behaviour) -> bool,
    ) -> Option<Behaviour> {
        let at = self
            .rules
            .iter()
            .position(|r| r.matches(endpoint, subject) && applies(&r.behaviour))?;
        let rule = &mut self.rules[at];
        let behaviour = rule.behaviour.clone();
        match &mut rule.times {
            None => {}
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                self.rules.remove(at);
            }
        }
        Some(behaviour)
    }
}

impl Simulator {
    /// Puts `rule` in force (after the rules already set; one of the same
    /// behaviour for the same order or refund and endpoint is replaced).
    /// `Err` when it could never apply (see [`Rule::check`]).
    pub fn set_behaviour(&self, rule: Rule) -> Result<(), String> {
        rule.check()?;
        lock(&self.inner.ledger).behaviours.set(rule);
        Ok(())
    }

    /// Removes the rules for `on`, or every rule with `None`; returns how
    /// many were removed.
    pub fn clear_behaviours(&self, on: Option<&On>) -> usize {
        lock(&self.inner.ledger).behaviours.clear(on)
    }

    /// The rules in force, in the order they apply, with the uses left.
    pub fn behaviours(&self) -> Vec<Rule> {
        lock(&self.inner.ledger).behaviours.list()
    }
}

impl FromStr for Behaviour {
    type Err = String;

    /// A behaviour by its admin name, with its defaults (`late-reply`:
    /// [`DEFAULT_LATE_REPLY`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rule::from_json(&json!({"tradeNo": "X", "behaviour": s})).map(|r| r.behaviour)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn about(trade_no: &str, refund_trade_no: Option<&str>) -> Subject {
        Subject {
            trade_no: Some(trade_no.to_owned()),
            refund_trade_no: refund_trade_no.map(str::to_owned),
        }
    }

    #[test]
    fn rules_are_consumed_in_the_order_they_were_set() {
        let mut b = Behaviours::default();
        b.set(
            Rule::refund("R1", Behaviour::Busy)
                .at(Endpoint::RefundQuery)
                .times(2),
        );
        b.set(Rule::refund("R1", Behaviour::MissingField(None)).times(1));
        let r1 = about("O1", Some("R1"));
        let all = |_: &Behaviour| true;
        assert_eq!(
            b.take(Endpoint::Refund, &r1, all),
            Some(Behaviour::MissingField(None))
        );
        assert_eq!(
            b.take(Endpoint::RefundQuery, &r1, all),
            Some(Behaviour::Busy)
        );
        assert_eq!(
            b.take(Endpoint::RefundQuery, &r1, all),
            Some(Behaviour::Busy)
        );
        assert_eq!(b.take(Endpoint::RefundQuery, &r1, all), None);
        assert!(b.list().is_empty());
    }

    #[test]
    fn order_rules_cover_its_refunds_and_refund_rules_only_theirs() {
        let mut b = Behaviours::default();
        b.set(Rule::order("O1", Behaviour::Busy));
        b.set(Rule::refund("R2", Behaviour::FailDuplicate));
        let all = |_: &Behaviour| true;
        assert_eq!(
            b.take(Endpoint::OrderQuery, &about("O1", None), all),
            Some(Behaviour::Busy)
        );
        assert_eq!(
            b.take(Endpoint::RefundQuery, &about("O1", Some("R9")), all),
            Some(Behaviour::Busy)
        );
        assert_eq!(b.take(Endpoint::OrderQuery, &about("O2", None), all), None);
        // fail-duplicate is for refund requests only, and only when the
        // caller says it applies (a resubmission).
        assert_eq!(
            b.take(Endpoint::RefundQuery, &about("O2", Some("R2")), all),
            None
        );
        let first_submission = |b: &Behaviour| *b != Behaviour::FailDuplicate;
        assert_eq!(
            b.take(Endpoint::Refund, &about("O2", Some("R2")), first_submission),
            None
        );
        assert_eq!(
            b.take(Endpoint::Refund, &about("O2", Some("R2")), all),
            Some(Behaviour::FailDuplicate)
        );
        // Without times a rule stays until cleared.
        assert_eq!(b.list().len(), 2);
        assert_eq!(b.clear(Some(&On::Refund("R2".into()))), 1);
        assert_eq!(b.clear(None), 1);
        assert!(b.list().is_empty());
    }

    #[test]
    fn setting_the_same_rule_again_replaces_it() {
        let mut b = Behaviours::default();
        b.set(Rule::refund("R1", Behaviour::Busy).times(5));
        b.set(Rule::refund("R1", Behaviour::Busy).times(1));
        b.set(Rule::refund("R1", Behaviour::Busy).at(Endpoint::Refund));
        assert_eq!(
            b.list(),
            vec![
                Rule::refund("R1", Behaviour::Busy).times(1),
                Rule::refund("R1", Behaviour::Busy).at(Endpoint::Refund),
            ]
        );
    }

    #[test]
    fn json_round_trip_and_refusals() {
        for rule in [
            Rule::refund("R1", Behaviour::FailDuplicate),
            Rule::refund("R1", Behaviour::Busy)
                .at(Endpoint::RefundQuery)
                .times(2),
            Rule::order("O1", Behaviour::MissingField(Some("tradeStatus".into())))
                .at(Endpoint::OrderQuery),
            Rule::order("O1", Behaviour::LateReply(Duration::from_millis(7000))).times(1),
            Rule::refund(
                "R1",
                Behaviour::AcceptThenFail(Some(Duration::from_millis(300))),
            ),
            Rule::refund("R1", Behaviour::AcceptThenFail(None)),
        ] {
            assert_eq!(
                Rule::from_json(&rule.to_json()),
                Ok(rule.clone()),
                "{rule:?}"
            );
        }
        assert_eq!(
            Rule::from_json(&json!({"tradeNo": "O1", "behaviour": "late-reply"}))
                .unwrap()
                .behaviour,
            Behaviour::LateReply(DEFAULT_LATE_REPLY)
        );
        assert_eq!(
            Rule::refund("R1", Behaviour::Busy).to_json(),
            json!({"refundTradeNo": "R1", "behaviour": "busy"})
        );
        for (bad, why) in [
            (
                json!({"behaviour": "busy"}),
                "give one of tradeNo and refundTradeNo",
            ),
            (
                json!({"tradeNo": "O1", "refundTradeNo": "R1", "behaviour": "busy"}),
                "give one of",
            ),
            (json!({"tradeNo": "O-1", "behaviour": "busy"}), "tradeNo"),
            (
                json!({"tradeNo": "O1", "behaviour": "grumpy"}),
                "unknown behaviour",
            ),
            (json!({"tradeNo": "O1"}), "behaviour must be one of"),
            (
                json!({"tradeNo": "O1", "behaviour": "fail-duplicate", "endpoint": "orderquery"}),
                "fail-duplicate does not happen at orderquery",
            ),
            (
                json!({"tradeNo": "O1", "behaviour": "busy", "endpoint": "refunds"}),
                "unknown endpoint",
            ),
            (
                json!({"tradeNo": "O1", "behaviour": "missing-field", "endpoint": "orderquery", "field": "refundStatus"}),
                "the orderquery reply has no field refundStatus",
            ),
            (
                json!({"tradeNo": "O1", "behaviour": "missing-field", "field": "nope"}),
                "no reply has a field nope",
            ),
            (
                json!({"tradeNo": "O1", "behaviour": "busy", "times": 0}),
                "times must be at least 1",
            ),
            (
                json!({"tradeNo": "O1", "behaviour": "busy", "times": -1}),
                "times must be a whole number",
            ),
            (
                json!({"tradeNo": "O1", "behaviour": "busy", "delayMs": 5}),
                "delayMs goes with",
            ),
            (
                json!({"tradeNo": "O1", "behaviour": "late-reply", "delayMs": "5"}),
                "delayMs must be",
            ),
            (
                json!({"tradeNo": "O1", "behaviour": "busy", "field": "x"}),
                "field goes with",
            ),
            (json!([]), "expected a JSON object"),
        ] {
            let e = Rule::from_json(&bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn missing_fields_by_endpoint() {
        let status = Behaviour::MissingField(Some("refundStatus".into()));
        assert!(status.supports(Endpoint::RefundQuery));
        assert!(!status.supports(Endpoint::Refund));
        assert!(!status.supports(Endpoint::OrderQuery));
        for e in Endpoint::ALL {
            assert!(reply_fields(e).contains(&default_missing_field(e)));
        }
        assert_eq!("busy".parse(), Ok(Behaviour::Busy));
        assert!("grumpy".parse::<Behaviour>().is_err());
    }
}
