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
use std::sync::atomic::Ordering;
use time::OffsetDateTime;

use crate::ledger::Refund;
use crate::{lock, refund_status_desc, serial, Simulator};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    OrderQuery = 0,
    Refund = 1,
    RefundQuery = 2,
}

impl Endpoint {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "orderquery" => Some(Endpoint::OrderQuery),
            "refund" => Some(Endpoint::Refund),
            "refundquery" => Some(Endpoint::RefundQuery),
            _ => None,
        }
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
