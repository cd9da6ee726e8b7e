//! The partner's own API (`refund-api`): orders and refunds, called by the
//! partner's back office. Errors are JSON `{error, message}`; internals
//! never leave the process.

use std::convert::Infallible;
use std::time::Instant;

use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::Instrument;

use super::{body_bytes, json_response, request_id, wrong_content_type};
use crate::config::{Config, ConfigError};
use crate::domain::entitlements::{Delivery, OutboxStore};
use crate::domain::orders::{register, NewOrder, Registered};
use crate::domain::platform::PlatformError;
use crate::domain::refunds::{
    Hold, NewRefund, Outcome, Refund, RefundError, RefundStatus, RefundStore, Requested, Settled,
};
use crate::domain::ship::{Rejection, ShipOutcome};
use crate::domain::sync::{sync_order, OrderSync, SyncError};
use crate::domain::{Order, OrderStatus, OrderStore, StoreError};
use crate::observability::error_chain;
use crate::observability::metrics::{Event, Metric};
use crate::platform::http_client;
use crate::protocol::{
    self, Fen, OrderItem, OrderRef, ParseError, RefundDesc, RefundStatus as WireRefundStatus,
    RefundTradeNo, TradeNo, TransactionId, UserToken,
};
use crate::store::DynamoStore;
use crate::wiring::{refund_service, shipper, Refunds, Shipper};
use crate::EpochSecs;

/// An API error: its status, a stable code and a caller-safe message.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("no such route")]
    NoRoute,
    /// With the methods the route allows, for the `Allow` header.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    #[error("Content-Type must be application/json")]
    ContentType,
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Upstream(String),
    /// The platform's report contradicts our refund (502, like `Upstream`).
    #[error("{0}")]
    Contradiction(String),
    /// `orderquery` reports a payment our order refuses (502, like `Upstream`).
    #[error("the platform's payment was refused: {}", .0.message())]
    PaymentRefused(Rejection),
    #[error("busy, retry")]
    Busy,
    #[error("internal error")]
    Store(#[from] StoreError),
}

impl From<RefundError> for ApiError {
    fn from(err: RefundError) -> Self {
        match err {
            RefundError::OrderNotFound | RefundError::RefundNotFound => {
                Self::NotFound(err.to_string())
            }
            RefundError::NotPaid | RefundError::Exceeds => Self::Unprocessable(err.to_string()),
            RefundError::Conflict(_) => Self::Conflict(err.to_string()),
            RefundError::Contradiction => Self::Contradiction(err.to_string()),
            RefundError::Platform(e) => platform_error(&e),
            RefundError::Busy | RefundError::NonceReplayed => Self::Busy,
            RefundError::Store(e) => Self::Store(e),
        }
    }
}

impl From<SyncError> for ApiError {
    fn from(err: SyncError) -> Self {
        match err {
            SyncError::Platform(e) => platform_error(&e),
            SyncError::Ship(crate::domain::ship::ShipError::Store(e)) => Self::Store(e),
        }
    }
}

fn platform_error(err: &PlatformError) -> ApiError {
    tracing::warn!(error = %err, "platform call failed");
    ApiError::Upstream("the platform did not answer usably; retry later".to_owned())
}

impl From<ParseError> for ApiError {
    fn from(err: ParseError) -> Self {
        Self::BadRequest(err.to_string())
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Upstream(_) | Self::Contradiction(_) | Self::PaymentRefused(_) => {
                StatusCode::BAD_GATEWAY
            }
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::NotFound(_) | Self::NoRoute => "not_found",
            Self::Conflict(_) => "conflict",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::ContentType => "unsupported_media_type",
            Self::Unprocessable(_) => "unprocessable",
            Self::Upstream(_) | Self::Contradiction(_) | Self::PaymentRefused(_) => "upstream",
            Self::Busy => "busy",
            Self::Store(_) => "internal",
        }
    }

    /// A finer code than [`Self::code`], for logs and metrics.
    fn outcome(&self) -> &'static str {
        match self {
            Self::Upstream(_) => "platform_error",
            Self::Contradiction(_) => "refund_contradiction",
            Self::PaymentRefused(rejection) => rejection.code(),
            Self::Store(_) => "error",
            other => other.code(),
        }
    }

    /// The metric counting this failure, if any.
    fn metric(&self) -> Option<Metric> {
        match self {
            Self::Upstream(_) => Some(Metric::PlatformError),
            Self::Contradiction(_) => Some(Metric::RefundContradiction),
            Self::PaymentRefused(rejection) => Metric::for_outcome(rejection.code()),
            Self::Busy | Self::Store(_) => Some(Metric::ApiServerError),
            _ => None,
        }
    }

    fn response(&self) -> Response<Body> {
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            error: &'a str,
            message: String,
        }
        let body = ErrorBody {
            error: self.code(),
            message: self.to_string(),
        };
        let mut response =
            json_response(self.status(), serde_json::to_vec(&body).unwrap_or_default());
        if let Self::MethodNotAllowed(allow) = self {
            response
                .headers_mut()
                .insert("allow", HeaderValue::from_static(allow));
        }
        response
    }
}

/// `POST /orders` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateOrderBody {
    trade_no: Option<TradeNo>,
    total_amt: Fen,
    user_token: Option<UserToken>,
}

/// `POST /refunds/{refundTradeNo}/settle` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettleRefundBody {
    /// `SUCCESS` or `FAIL`, as the platform confirmed it.
    status: WireRefundStatus,
    note: Option<String>,
}

/// `POST /refunds` body: exactly one of `tradeNo` and `transactionId`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRefundBody {
    trade_no: Option<TradeNo>,
    transaction_id: Option<TransactionId>,
    refund_trade_no: RefundTradeNo,
    refund_amt: Fen,
    refund_desc: Option<RefundDesc>,
    refund_details: Option<Vec<OrderItem>>,
}

/// The route a request asks for, whatever prefix the gateway or the local
/// emulator puts before it (`/orders`, `/lambda-url/refund-api/orders`).
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Orders,
    Order(&'a str),
    Refunds,
    Refund(&'a str),
    SettleRefund(&'a str),
    Redeliver(&'a str),
}

fn route(path: &str) -> Option<Route<'_>> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let at = segments
        .iter()
        .position(|s| *s == "orders" || *s == "refunds")?;
    match (segments[at], &segments[at + 1..]) {
        ("orders", []) => Some(Route::Orders),
        ("orders", [id]) => Some(Route::Order(id)),
        ("orders", [id, "redeliver"]) => Some(Route::Redeliver(id)),
        ("refunds", []) => Some(Route::Refunds),
        ("refunds", [id]) => Some(Route::Refund(id)),
        ("refunds", [id, "settle"]) => Some(Route::SettleRefund(id)),
        _ => None,
    }
}

/// `?sync=true` (or `1`) in the query string.
fn wants_sync(request: &Request) -> bool {
    request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .any(|pair| matches!(pair, "sync=true" | "sync=1"))
}

/// The refund-api function.
pub struct PartnerApi {
    store: DynamoStore,
    refunds: Refunds,
    ship: Shipper,
    /// When the sweep first asks about an order not paid by then.
    first_check: std::time::Duration,
}

impl PartnerApi {
    pub fn new(config: Config, store: DynamoStore, http: reqwest::Client) -> Self {
        let keys = config.keys.clone();
        let refunds = refund_service(&config, &keys, store.clone(), http.clone());
        let ship = shipper(&config, &keys, store.clone());
        Self {
            store: store.with_shards(config.due_shards),
            refunds,
            ship,
            first_check: config.reconcile_grace,
        }
    }

    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::load().await?;
        let store = DynamoStore::from_env(config.table_name.clone()).await;
        Ok(Self::new(config, store, http_client()))
    }

    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let request_id = request_id(&request);
        let span = tracing::info_span!(
            "request",
            endpoint = "refund-api",
            request_id = %request_id,
            trade_no = tracing::field::Empty,
            refund_trade_no = tracing::field::Empty,
        );
        async {
            let result = self.route(&request).await;
            let (outcome, metric) = match &result {
                Ok(_) => ("ok", None),
                Err(err) => (err.outcome(), err.metric()),
            };
            let response = match result {
                Ok((status, body)) => json_response(status, body),
                Err(err) => {
                    if err.status().is_server_error() {
                        tracing::error!(error = %error_chain(&err), "request failed");
                    }
                    err.response()
                }
            };
            let elapsed = started.elapsed();
            tracing::info!(
                request_id = %request_id,
                method = %request.method(),
                path = request.uri().path(),
                status = response.status().as_u16(),
                outcome,
                duration_ms = elapsed.as_millis() as u64,
                "api request answered"
            );
            Event::new("refund-api")
                .count(Metric::ApiRequest)
                .count_opt(metric)
                .prop("method", request.method().as_str())
                .prop("path", request.uri().path())
                .prop("status", response.status().as_u16())
                .prop("outcome", outcome)
                .prop("durationMs", elapsed.as_millis() as u64)
                .prop_opt("requestId", Some(request_id.as_str()))
                .emit();
            Ok(response)
        }
        .instrument(span)
        .await
    }

    async fn route(&self, request: &Request) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let path = request.uri().path();
        match (route(path).ok_or(ApiError::NoRoute)?, request.method()) {
            (Route::Orders, &Method::POST) => self.create_order(request).await,
            (Route::Order(id), &Method::GET) => self.get_order(id, wants_sync(request)).await,
            (Route::Refunds, &Method::POST) => self.create_refund(request).await,
            (Route::Refund(id), &Method::GET) => self.get_refund(id, wants_sync(request)).await,
            (Route::SettleRefund(id), &Method::POST) => self.settle_refund(id, request).await,
            (Route::Redeliver(id), &Method::POST) => self.redeliver(id).await,
            (Route::Orders | Route::Refunds | Route::SettleRefund(_) | Route::Redeliver(_), _) => {
                Err(ApiError::MethodNotAllowed("POST"))
            }
            (Route::Order(_) | Route::Refund(_), _) => Err(ApiError::MethodNotAllowed("GET")),
        }
    }

    async fn create_order(&self, request: &Request) -> Result<(StatusCode, Vec<u8>), ApiError> {
        if wrong_content_type(request) {
            return Err(ApiError::ContentType);
        }
        let body: CreateOrderBody = protocol::parse(body_bytes(request))?;
        let new = NewOrder {
            trade_no: body.trade_no,
            total_amt: body.total_amt,
            user_token: body.user_token,
        };
        let registered = register(
            &self.store,
            new,
            OffsetDateTime::now_utc(),
            self.first_check,
        )
        .await?;
        let order = match &registered {
            Registered::Created(o) | Registered::Existing(o) | Registered::Conflict(o) => o,
        };
        tracing::Span::current().record("trade_no", order.trade_no.as_str());
        match registered {
            Registered::Created(order) => {
                tracing::info!(
                    trade_no = order.trade_no.as_str(),
                    total_amt = order.total_amt.get(),
                    "order registered"
                );
                Ok((StatusCode::CREATED, to_json(&order)))
            }
            Registered::Existing(order) => Ok((StatusCode::OK, self.order_view(order).await?)),
            Registered::Conflict(order) => Err(ApiError::Conflict(format!(
                "order {} exists with other values",
                order.trade_no
            ))),
        }
    }

    /// The order a path names, recorded on the request's span.
    async fn order_at(&self, id: &str) -> Result<(TradeNo, Order), ApiError> {
        let trade_no =
            TradeNo::parse(id).map_err(|e| ApiError::BadRequest(format!("tradeNo {e}")))?;
        tracing::Span::current().record("trade_no", trade_no.as_str());
        let order = self
            .store
            .get_order(&trade_no)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no order {trade_no}")))?;
        Ok((trade_no, order))
    }

    async fn get_order(&self, id: &str, sync: bool) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let (trade_no, order) = self.order_at(id).await?;
        if !sync || order.status == OrderStatus::Paid {
            return Ok((StatusCode::OK, self.order_view(order).await?));
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        match sync_order(&self.ship, &self.refunds.platform, &order, now).await? {
            OrderSync::NotPaid(_)
            | OrderSync::Paid(ShipOutcome::Rejected(Rejection::InProgress)) => {}
            OrderSync::Paid(ShipOutcome::Rejected(rejection)) => {
                tracing::error!(
                    alert = true,
                    reason = rejection.code(),
                    trade_no = trade_no.as_str(),
                    "orderquery reports a payment our order refuses"
                );
                return Err(ApiError::PaymentRefused(rejection));
            }
            OrderSync::Paid(_) => {}
        }
        let order = self
            .store
            .get_order(&trade_no)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no order {trade_no}")))?;
        Ok((StatusCode::OK, self.order_view(order).await?))
    }

    /// An order as the API shows it: the record (with its grant state) and
    /// its refunds with their revoke state.
    async fn order_view(&self, order: Order) -> Result<Vec<u8>, ApiError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct RefundLine {
            refund_trade_no: RefundTradeNo,
            refund_amt: Fen,
            status: RefundStatus,
            #[serde(skip_serializing_if = "Option::is_none")]
            revoke: Option<Delivery>,
        }
        #[derive(Serialize)]
        struct View {
            #[serde(flatten)]
            order: Order,
            refunds: Vec<RefundLine>,
        }
        let refunds = self
            .store
            .refunds_of_order(&order.trade_no)
            .await?
            .into_iter()
            .map(|r| RefundLine {
                refund_trade_no: r.refund_trade_no,
                refund_amt: r.refund_amt,
                status: r.status,
                revoke: r.revoke,
            })
            .collect();
        Ok(to_json(&View { order, refunds }))
    }

    /// `POST /orders/{tradeNo}/redeliver`: the order's entitlement events
    /// (its grant, the revokes of its refunds that succeeded) pending and
    /// due now, whether delivered before or not.
    async fn redeliver(&self, id: &str) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let (trade_no, order) = self.order_at(id).await?;
        if order.status != OrderStatus::Paid {
            return Err(ApiError::Conflict(format!(
                "order {trade_no} is not paid: it has no events"
            )));
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let events = self.store.redeliver(&trade_no, now).await?;
        tracing::warn!(events, "entitlement events made due again by the partner");
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Redelivered {
            trade_no: TradeNo,
            events: usize,
        }
        Ok((
            StatusCode::ACCEPTED,
            to_json(&Redelivered { trade_no, events }),
        ))
    }

    async fn create_refund(&self, request: &Request) -> Result<(StatusCode, Vec<u8>), ApiError> {
        if wrong_content_type(request) {
            return Err(ApiError::ContentType);
        }
        let body: CreateRefundBody = protocol::parse(body_bytes(request))?;
        let order = match (body.trade_no, body.transaction_id) {
            (Some(trade_no), None) => OrderRef::TradeNo(trade_no),
            (None, Some(txn)) => OrderRef::TransactionId(txn),
            _ => {
                return Err(ApiError::BadRequest(
                    "give exactly one of tradeNo and transactionId".to_owned(),
                ))
            }
        };
        if body
            .refund_details
            .as_ref()
            .is_some_and(|items| items.is_empty() || items.len() > protocol::MAX_ITEMS)
        {
            return Err(ApiError::BadRequest(format!(
                "refundDetails must hold 1 to {} items",
                protocol::MAX_ITEMS
            )));
        }
        tracing::Span::current().record("refund_trade_no", body.refund_trade_no.as_str());
        let new = NewRefund {
            order,
            refund_trade_no: body.refund_trade_no,
            refund_amt: body.refund_amt,
            refund_desc: body.refund_desc,
            refund_details: body.refund_details,
        };
        let refund_trade_no = new.refund_trade_no.clone();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let requested = self.refunds.request(new, now).await;
        refund_metrics(&request_id(request), &refund_trade_no, &requested);
        match requested? {
            Requested::Created(Settled { refund, .. }) => {
                let status = if refund.status == RefundStatus::Pending {
                    StatusCode::ACCEPTED
                } else {
                    StatusCode::CREATED
                };
                Ok((status, self.view(&refund, now)))
            }
            Requested::Existing(refund) => Ok((StatusCode::OK, self.view(&refund, now))),
        }
    }

    /// A refund as the API shows it: the record and whether it needs a
    /// person.
    fn view(&self, refund: &Refund, now: EpochSecs) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct View<'a> {
            #[serde(flatten)]
            refund: &'a Refund,
            needs_attention: bool,
        }
        to_json(&View {
            refund,
            needs_attention: self.refunds.needs_attention(refund, now),
        })
    }

    /// `POST /refunds/{refundTradeNo}/settle`: an operator's verdict on a
    /// refund the platform left unclear, after checking it with the
    /// platform.
    async fn settle_refund(
        &self,
        id: &str,
        request: &Request,
    ) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let refund_trade_no = refund_at(id)?;
        if wrong_content_type(request) {
            return Err(ApiError::ContentType);
        }
        let body: SettleRefundBody = protocol::parse(body_bytes(request))?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let settled = self
            .refunds
            .settle_by_operator(&refund_trade_no, body.status, body.note, now)
            .await?;
        Event::new("refund-api")
            .count(Metric::RefundSettledByOperator)
            .prop("refundTradeNo", refund_trade_no.as_str())
            .prop("refundStatus", settled.refund.status.as_str())
            .prop_opt("requestId", Some(request_id(request).as_str()))
            .emit();
        match settled.outcome {
            Outcome::Contradiction => Err(ApiError::Conflict(format!(
                "refund {refund_trade_no} is already {}",
                settled.refund.status.as_str()
            ))),
            _ => Ok((StatusCode::OK, self.view(&settled.refund, now))),
        }
    }

    async fn get_refund(&self, id: &str, sync: bool) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let refund_trade_no = refund_at(id)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let refund = if sync {
            self.refunds.sync(&refund_trade_no, now).await?
        } else {
            self.store
                .get_refund(&refund_trade_no)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no refund {refund_trade_no}")))?
        };
        Ok((StatusCode::OK, self.view(&refund, now)))
    }
}

/// The metrics line of one refund request, where its outcome is decided.
fn refund_metrics(
    request_id: &str,
    refund_trade_no: &RefundTradeNo,
    requested: &Result<Requested, RefundError>,
) {
    let event = Event::new("refund-api")
        .count(Metric::RefundRequested)
        .prop("refundTradeNo", refund_trade_no.as_str())
        .prop_opt("requestId", Some(request_id));
    let described = |event: Event, refund: &crate::domain::refunds::Refund| {
        event
            .prop("refundStatus", refund.status.as_str())
            .prop("tradeNo", refund.trade_no.as_str())
            .prop("transactionId", refund.transaction_id.as_str())
            .prop("refundAmt", refund.refund_amt.get())
    };
    let event = match requested {
        Ok(Requested::Created(Settled { refund, outcome })) => {
            let event = described(event, refund)
                .count(match refund.status {
                    RefundStatus::Pending => Metric::RefundPending,
                    RefundStatus::Failed => Metric::RefundFailed,
                    RefundStatus::Processing | RefundStatus::Success => Metric::RefundAccepted,
                })
                .prop("outcome", "created");
            match outcome {
                Outcome::Held(Hold::NoAnswer | Hold::Malformed(_)) => event
                    .count(Metric::PlatformError)
                    .prop("held", "platform_error"),
                Outcome::Held(hold) => event.prop("held", hold.code()),
                Outcome::Mismatch(_) | Outcome::Contradiction => event
                    .count(Metric::RefundContradiction)
                    .prop("held", "refund_contradiction"),
                Outcome::Moved | Outcome::Unchanged => event,
            }
        }
        Ok(Requested::Existing(refund)) => described(event, refund).prop("outcome", "existing"),
        Err(RefundError::Exceeds) => event
            .count(Metric::OverRefundRefused)
            .prop("outcome", "exceeds"),
        Err(err) => event.prop(
            "outcome",
            match err {
                RefundError::OrderNotFound | RefundError::RefundNotFound => "not_found",
                RefundError::NotPaid => "not_paid",
                RefundError::Exceeds => "exceeds",
                RefundError::Conflict(_) => "conflict",
                RefundError::Contradiction => "refund_contradiction",
                RefundError::Platform(_) => "platform_error",
                RefundError::Busy | RefundError::NonceReplayed => "busy",
                RefundError::Store(_) => "error",
            },
        ),
    };
    event.emit();
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// The refund a path names, recorded on the request's span.
fn refund_at(id: &str) -> Result<RefundTradeNo, ApiError> {
    let refund_trade_no =
        RefundTradeNo::parse(id).map_err(|e| ApiError::BadRequest(format!("refundTradeNo {e}")))?;
    tracing::Span::current().record("refund_trade_no", refund_trade_no.as_str());
    Ok(refund_trade_no)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_and_without_prefix() {
        assert_eq!(route("/orders"), Some(Route::Orders));
        assert_eq!(route("/orders/"), Some(Route::Orders));
        assert_eq!(route("/lambda-url/refund-api/orders"), Some(Route::Orders));
        assert_eq!(route("/orders/ABC123"), Some(Route::Order("ABC123")));
        assert_eq!(
            route("/lambda-url/refund-api/orders/ABC123"),
            Some(Route::Order("ABC123"))
        );
        assert_eq!(route("/orders/orders"), Some(Route::Order("orders")));
        assert_eq!(route("/things"), None);
        assert_eq!(route("/orders/a/b"), None);
        assert_eq!(route("/refunds"), Some(Route::Refunds));
        assert_eq!(
            route("/lambda-url/refund-api/refunds/R1"),
            Some(Route::Refund("R1"))
        );
    }
}
