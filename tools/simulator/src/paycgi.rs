//! The platform's `paycgi` API: `orderquery`, `refund` and `refundquery`,
//! verified, parsed, answered and signed.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use dingdang::protocol::{
    self, AcceptedRefund, OrderQueryReply, OrderQueryRequest, QueriedOrder, QueriedRefund,
    RefundQueryReply, RefundQueryRequest, RefundReply, RefundRequest, RefundStatus,
    RefundTransactionId, Reply, RetCode, Revision, SkillId, TradeStatus,
};
use dingdang::signing::{Algorithm, Authorization, HmacSecret, Signer};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use time::OffsetDateTime;

use crate::behaviour::{default_missing_field, Behaviour, Subject};
use crate::ledger::{Refund, RefundCheck};
use crate::{lock, refund_status_desc, serial, Simulator};

/// One of the platform's `paycgi` endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /paycgi/orderquery`
    OrderQuery = 0,
    /// `POST /paycgi/refund`
    Refund = 1,
    /// `POST /paycgi/refundquery`
    RefundQuery = 2,
}

impl Endpoint {
    /// The three of them.
    pub const ALL: [Endpoint; 3] = [
        Endpoint::OrderQuery,
        Endpoint::Refund,
        Endpoint::RefundQuery,
    ];

    /// `orderquery`, `refund` or `refundquery`.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::OrderQuery => "orderquery",
            Endpoint::Refund => "refund",
            Endpoint::RefundQuery => "refundquery",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::parse(s).ok_or_else(|| {
            format!("unknown endpoint {s:?}; one of orderquery, refund, refundquery")
        })
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
    /// The behaviour that shaped it, for the request log.
    behaviour: Option<&'static str>,
    /// Wait this long before answering.
    late: Option<Duration>,
}

impl Answer {
    fn new<T: Serialize>(status: StatusCode, ret_code: RetCode, msg: &T, rev: Revision) -> Self {
        Self {
            status,
            ret_code,
            body: protocol::to_wire(msg, rev),
            behaviour: None,
            late: None,
        }
    }

    fn fail(status: StatusCode, msg: &str, rev: Revision) -> Self {
        Self::new(status, RetCode::Fail, &Reply::fail(msg), rev)
    }

    /// Marked as shaped by `behaviour`, and late when it is a late reply.
    fn by(mut self, behaviour: Option<&Behaviour>) -> Self {
        if let Some(b) = behaviour {
            self.behaviour = Some(b.name());
            if let Behaviour::LateReply(delay) = b {
                self.late = Some(*delay);
            }
        }
        self
    }
}

/// Whether a behaviour every endpoint knows applies to a request whose
/// reply would be `SUCCESS` (`success`) or not.
fn applies_anywhere(behaviour: &Behaviour, success: bool) -> bool {
    match behaviour {
        Behaviour::Busy | Behaviour::LateReply(_) => true,
        Behaviour::MissingField(_) => success,
        Behaviour::FailDuplicate | Behaviour::AcceptThenFail(_) => false,
    }
}

/// The field a [`Behaviour::MissingField`] leaves out of a reply of
/// `endpoint`.
fn missing_field(behaviour: Option<&Behaviour>, endpoint: Endpoint) -> Option<&str> {
    match behaviour {
        Some(Behaviour::MissingField(field)) => Some(
            field
                .as_deref()
                .unwrap_or_else(|| default_missing_field(endpoint)),
        ),
        _ => None,
    }
}

fn busy(rev: Revision) -> Answer {
    Answer::fail(StatusCode::OK, "system busy", rev)
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

impl Simulator {
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
            let mut line = format!(
                "{} {path} {} {}",
                Method::POST,
                answer.status.as_u16(),
                answer.ret_code
            );
            if let Some(b) = answer.behaviour {
                line.push_str(&format!(" ({b})"));
            }
            if let Some(delay) = answer.late {
                line.push_str(&format!(" after {} ms", delay.as_millis()));
            }
            line
        });
        if let Some(delay) = answer.late {
            tokio::time::sleep(delay).await;
        }
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
        let mut ledger = lock(&self.inner.ledger);
        let order = request.order_ref().and_then(|o| ledger.order(&o));
        let subject = Subject {
            trade_no: order
                .map(|o| o.trade_no.to_string())
                .or_else(|| request.trade_no.as_ref().map(ToString::to_string)),
            refund_trade_no: None,
        };
        let found = order.is_some();
        let behaviour = ledger.behaviours.take(Endpoint::OrderQuery, &subject, |b| {
            applies_anywhere(b, found)
        });
        if behaviour == Some(Behaviour::Busy) {
            return busy(rev).by(behaviour.as_ref());
        }
        let Some(order) = request.order_ref().and_then(|o| ledger.order(&o)) else {
            return Answer::fail(StatusCode::OK, "order not found", rev).by(behaviour.as_ref());
        };
        let mut reply = OrderQueryReply::success(QueriedOrder {
            skill_id: self.inner.skill_id.clone(),
            transaction_id: order.transaction_id.clone(),
            trade_no: order.trade_no.clone(),
            total_amt: order.total_amt,
            trade_status: TradeStatus::Success,
            trade_status_desc: Some("支付成功".to_owned()),
        });
        drop(ledger);
        if let Some(field) = missing_field(behaviour.as_ref(), Endpoint::OrderQuery) {
            match field {
                "skillId" => reply.skill_id = None,
                "transactionId" => reply.transaction_id = None,
                "tradeNo" => reply.trade_no = None,
                "totalAmt" => reply.total_amt = None,
                "tradeStatus" => reply.trade_status = None,
                _ => reply.trade_status_desc = None,
            }
        }
        Answer::new(StatusCode::OK, RetCode::Success, &reply, rev).by(behaviour.as_ref())
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
        let mut ledger = lock(&self.inner.ledger);
        let subject = Subject {
            trade_no: request
                .order_ref()
                .and_then(|o| ledger.order(&o))
                .map(|o| o.trade_no.to_string())
                .or_else(|| request.trade_no.as_ref().map(ToString::to_string)),
            refund_trade_no: Some(request.refund_trade_no.to_string()),
        };
        let check = ledger.check_refund(request);
        let behaviour = ledger
            .behaviours
            .take(Endpoint::Refund, &subject, |b| match b {
                Behaviour::FailDuplicate => matches!(check, Ok(RefundCheck::Existing)),
                Behaviour::AcceptThenFail(_) => matches!(check, Ok(RefundCheck::New { .. })),
                other => applies_anywhere(other, check.is_ok()),
            });
        let by = behaviour.as_ref();
        let check = match (check, by) {
            (_, Some(Behaviour::Busy)) => return busy(rev).by(by),
            (_, Some(Behaviour::FailDuplicate)) => {
                return Answer::fail(StatusCode::OK, "duplicate refundTradeNo", rev).by(by)
            }
            (Err(msg), _) => return Answer::fail(StatusCode::OK, msg, rev).by(by),
            (Ok(check), _) => check,
        };
        let refund_trade_no = request.refund_trade_no.to_string();
        let scheduled = match check {
            RefundCheck::Existing => None,
            RefundCheck::New {
                trade_no,
                transaction_id,
                total_amt,
            } => {
                ledger.insert_refund(Refund {
                    trade_no,
                    transaction_id,
                    refund_trade_no: request.refund_trade_no.clone(),
                    refund_transaction_id: RefundTransactionId::parse(&serial("RF"))
                        .expect("serial is valid"),
                    total_amt,
                    refund_amt: request.refund_amt,
                    status: RefundStatus::Processing,
                    revision: rev,
                });
                let config = &self.inner.config;
                Some(match by {
                    Some(Behaviour::AcceptThenFail(delay)) => {
                        (delay.unwrap_or(config.refund_delay), RefundStatus::Fail)
                    }
                    _ => (config.refund_delay, config.refund_outcome.status()),
                })
            }
        };
        let r = &ledger.refunds[&refund_trade_no];
        let mut reply = RefundReply::success(AcceptedRefund {
            skill_id: self.inner.skill_id.clone(),
            transaction_id: r.transaction_id.clone(),
            trade_no: r.trade_no.clone(),
            refund_transaction_id: r.refund_transaction_id.clone(),
            refund_trade_no: r.refund_trade_no.clone(),
            total_amt: r.total_amt,
            refund_amt: r.refund_amt,
        });
        drop(ledger);
        if let Some((delay, outcome)) = scheduled {
            self.schedule_outcome(refund_trade_no, delay, outcome);
        }
        if let Some(field) = missing_field(by, Endpoint::Refund) {
            match field {
                "skillId" => reply.skill_id = None,
                "transactionId" => reply.transaction_id = None,
                "tradeNo" => reply.trade_no = None,
                "refundTradeNo" => reply.refund_trade_no = None,
                "totalAmt" => reply.total_amt = None,
                "refundAmt" => reply.refund_amt = None,
                _ => reply.refund_transaction_id = None,
            }
        }
        Answer::new(StatusCode::OK, RetCode::Success, &reply, rev).by(by)
    }

    fn refund_query(&self, request: &RefundQueryRequest, rev: Revision) -> Answer {
        let mut ledger = lock(&self.inner.ledger);
        let known = request.refund_ref().and_then(|r| ledger.refund(&r));
        let subject = Subject {
            trade_no: known.map(|r| r.trade_no.to_string()),
            refund_trade_no: known
                .map(|r| r.refund_trade_no.to_string())
                .or_else(|| request.refund_trade_no.as_ref().map(ToString::to_string)),
        };
        let found = known.is_some();
        let behaviour = ledger
            .behaviours
            .take(Endpoint::RefundQuery, &subject, |b| {
                applies_anywhere(b, found)
            });
        let by = behaviour.as_ref();
        if behaviour == Some(Behaviour::Busy) {
            return busy(rev).by(by);
        }
        let Some(r) = request.refund_ref().and_then(|r| ledger.refund(&r)) else {
            return Answer::fail(StatusCode::OK, "refund not found", rev).by(by);
        };
        let mut reply = RefundQueryReply::success(QueriedRefund {
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
        drop(ledger);
        if let Some(field) = missing_field(by, Endpoint::RefundQuery) {
            match field {
                "skillId" => reply.skill_id = None,
                "transactionId" => reply.transaction_id = None,
                "tradeNo" => reply.trade_no = None,
                "refundTransactionId" => reply.refund_transaction_id = None,
                "refundTradeNo" => reply.refund_trade_no = None,
                "totalAmt" => reply.total_amt = None,
                "refundAmt" => reply.refund_amt = None,
                "refundStatusDesc" => reply.refund_status_desc = None,
                _ => reply.refund_status = None,
            }
        }
        Answer::new(StatusCode::OK, RetCode::Success, &reply, rev).by(by)
    }
}

pub(crate) async fn order_query_route(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.handle(Endpoint::OrderQuery, "/paycgi/orderquery", &headers, &body)
        .await
}

pub(crate) async fn refund_route(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.handle(Endpoint::Refund, "/paycgi/refund", &headers, &body)
        .await
}

pub(crate) async fn refund_query_route(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hmac_keys;

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
}
