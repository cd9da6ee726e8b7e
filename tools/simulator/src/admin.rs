//! The admin endpoints (`/admin/...`: pay by hand, ledger views, settle a
//! refund now) and the counting fulfilment endpoint (`/fulfil`, and its
//! outage switch).

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use dingdang::protocol::RefundStatus;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::behaviour::{On, Rule};
use crate::{lock, RefundOutcome, SimRefund, Simulator};

impl Simulator {
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

    /// `POST /fulfil`: a stand-in for the partner's webhook that counts the
    /// entitlement events it accepts, by `Idempotency-Key` (a
    /// `payment.succeeded:<transactionId>` event counts under its
    /// `transactionId`). The event must carry a `Dingdang-Signature` that
    /// verifies with [`SimConfig::fulfillment_secret`](crate::SimConfig::fulfillment_secret)
    /// and is at most 300 s old. During an outage
    /// ([`Simulator::set_fulfil_outage`]) it answers 503 to everything.
    fn fulfil(&self, headers: &HeaderMap, body: &[u8]) -> (StatusCode, Value) {
        if self.inner.fulfil_down.load(Ordering::Relaxed) {
            self.inner.fulfil_refused.fetch_add(1, Ordering::Relaxed);
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"ok": false, "error": "webhook outage (POST /admin/fulfil-outage {\"down\":false} ends it)"}),
            );
        }
        let signature = headers
            .get("dingdang-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let verified = self
            .inner
            .config
            .fulfillment_secret
            .as_deref()
            .is_some_and(|secret| {
                let t = signature
                    .split(',')
                    .find_map(|kv| kv.trim().strip_prefix("t="))
                    .and_then(|t| t.parse::<i64>().ok());
                t.is_some_and(|t| {
                    (OffsetDateTime::now_utc().unix_timestamp() - t).abs() <= 300
                        && dingdang::platform::webhook_signature(
                            &dingdang::signing::HmacSecret::new(secret),
                            t,
                            body,
                        ) == signature
                })
            });
        if !verified {
            return (
                StatusCode::UNAUTHORIZED,
                json!({"ok": false, "error": "bad signature"}),
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
        let key = key.strip_prefix("payment.succeeded:").unwrap_or(key);
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

    /// `POST /admin/behaviour` with a rule as [`Rule::from_json`] reads it:
    /// `{"retCode":"SUCCESS","behaviours":[every rule in force]}`.
    fn admin_set_behaviour(&self, body: &[u8]) -> (StatusCode, Value) {
        let request: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => return bad_request("expected a JSON object"),
        };
        match Rule::from_json(&request).and_then(|rule| self.set_behaviour(rule)) {
            Ok(()) => (
                StatusCode::OK,
                json!({"retCode": "SUCCESS", "behaviours": self.behaviours_json()}),
            ),
            Err(e) => bad_request(&e),
        }
    }

    /// `POST /admin/behaviour/clear` `{"tradeNo":..}`, `{"refundTradeNo":..}`
    /// or `{}` (every rule): `{"retCode":"SUCCESS","cleared":n}`.
    fn admin_clear_behaviours(&self, body: &[u8]) -> (StatusCode, Value) {
        let request: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            match serde_json::from_slice(body) {
                Ok(v @ Value::Object(_)) => v,
                _ => return bad_request("expected {\"tradeNo\":..}, {\"refundTradeNo\":..} or {}"),
            }
        };
        match On::from_json(&request) {
            Ok(on) => {
                let cleared = self.clear_behaviours(on.as_ref());
                (
                    StatusCode::OK,
                    json!({"retCode": "SUCCESS", "cleared": cleared}),
                )
            }
            Err(e) => bad_request(&e),
        }
    }

    fn behaviours_json(&self) -> Vec<Value> {
        self.behaviours().iter().map(Rule::to_json).collect()
    }

    /// `POST /admin/fulfil-outage` `{"down":true|false}`:
    /// `{"retCode":"SUCCESS","down":..,"refused":n}`.
    fn admin_set_fulfil_outage(&self, body: &[u8]) -> (StatusCode, Value) {
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let Some(down) = request["down"].as_bool() else {
            return bad_request("expected {\"down\":true} or {\"down\":false}");
        };
        self.set_fulfil_outage(down);
        self.admin_fulfil_outage()
    }

    /// `GET /admin/fulfil-outage`: `{"retCode":"SUCCESS","down":..,"refused":n}`.
    fn admin_fulfil_outage(&self) -> (StatusCode, Value) {
        let (down, refused) = self.fulfil_outage();
        (
            StatusCode::OK,
            json!({"retCode": "SUCCESS", "down": down, "refused": refused}),
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

pub(crate) async fn pay_route(State(sim): State<Simulator>, body: Bytes) -> Response {
    sim.admin("/admin/pay", &body, true).await
}

pub(crate) async fn pay_silently_route(State(sim): State<Simulator>, body: Bytes) -> Response {
    sim.admin("/admin/pay-silently", &body, false).await
}

fn bad_request(msg: &str) -> (StatusCode, Value) {
    (
        StatusCode::BAD_REQUEST,
        json!({"retCode": "FAIL", "retMsg": msg}),
    )
}

pub(crate) async fn behaviours_route(State(sim): State<Simulator>) -> Response {
    let reply = (StatusCode::OK, json!({"behaviours": sim.behaviours_json()}));
    sim.admin_reply(Method::GET, "/admin/behaviour", reply)
}

pub(crate) async fn set_behaviour_route(State(sim): State<Simulator>, body: Bytes) -> Response {
    let reply = sim.admin_set_behaviour(&body);
    sim.admin_reply(Method::POST, "/admin/behaviour", reply)
}

pub(crate) async fn clear_behaviours_route(State(sim): State<Simulator>, body: Bytes) -> Response {
    let reply = sim.admin_clear_behaviours(&body);
    sim.admin_reply(Method::POST, "/admin/behaviour/clear", reply)
}

fn not_found(msg: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"retCode": "FAIL", "retMsg": msg}),
    )
}

pub(crate) async fn order_route(
    State(sim): State<Simulator>,
    Path(trade_no): Path<String>,
) -> Response {
    let reply = sim.admin_order(&trade_no);
    sim.admin_reply(Method::GET, &format!("/admin/orders/{trade_no}"), reply)
}

pub(crate) async fn refund_route(
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

pub(crate) async fn settle_route(State(sim): State<Simulator>, body: Bytes) -> Response {
    let reply = sim.admin_settle(&body);
    sim.admin_reply(Method::POST, "/admin/settle-refund", reply)
}

pub(crate) async fn fulfilments_route(State(sim): State<Simulator>) -> Response {
    let reply = sim.admin_fulfilments();
    sim.admin_reply(Method::GET, "/admin/fulfilments", reply)
}

pub(crate) async fn fulfilment_route(
    State(sim): State<Simulator>,
    Path(key): Path<String>,
) -> Response {
    let count = sim.fulfilments(&key);
    let reply = (StatusCode::OK, json!({"key": key, "count": count}));
    sim.admin_reply(Method::GET, &format!("/admin/fulfilments/{key}"), reply)
}

pub(crate) async fn fulfil_outage_route(State(sim): State<Simulator>) -> Response {
    let reply = sim.admin_fulfil_outage();
    sim.admin_reply(Method::GET, "/admin/fulfil-outage", reply)
}

pub(crate) async fn set_fulfil_outage_route(State(sim): State<Simulator>, body: Bytes) -> Response {
    let reply = sim.admin_set_fulfil_outage(&body);
    sim.admin_reply(Method::POST, "/admin/fulfil-outage", reply)
}

pub(crate) async fn fulfil_route(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = sim.fulfil(&headers, &body);
    sim.admin_reply(Method::POST, "/fulfil", reply)
}
