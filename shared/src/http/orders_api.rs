//! The partner's own API (`refund-api`): orders now, refunds later.
//! Errors are JSON `{error, message}`; internals never leave the process.

use std::convert::Infallible;
use std::time::Instant;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{body_bytes, json_response, request_id, wrong_content_type};
use crate::config::ConfigError;
use crate::domain::orders::{register, NewOrder, Registered};
use crate::domain::{OrderStore, StoreError};
use crate::observability::error_chain;
use crate::protocol::{self, Fen, ParseError, TradeNo, UserToken};
use crate::store::DynamoStore;

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
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("Content-Type must be application/json")]
    ContentType,
    #[error("internal error")]
    Store(#[from] StoreError),
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
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::NotFound(_) | Self::NoRoute => "not_found",
            Self::Conflict(_) => "conflict",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::ContentType => "unsupported_media_type",
            Self::Store(_) => "internal",
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
        json_response(self.status(), serde_json::to_vec(&body).unwrap_or_default())
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

/// The route a request asks for, whatever prefix the gateway or the local
/// emulator puts before it (`/orders`, `/lambda-url/refund-api/orders`).
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Orders,
    Order(&'a str),
}

fn route(path: &str) -> Option<Route<'_>> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let at = segments.iter().position(|s| *s == "orders")?;
    match &segments[at + 1..] {
        [] => Some(Route::Orders),
        [id] => Some(Route::Order(id)),
        _ => None,
    }
}

/// The refund-api function.
pub struct OrdersApi {
    store: DynamoStore,
}

impl OrdersApi {
    pub fn new(store: DynamoStore) -> Self {
        Self { store }
    }

    pub async fn from_env() -> Result<Self, ConfigError> {
        let table = std::env::var("TABLE_NAME")
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or(ConfigError::Missing("TABLE_NAME"))?;
        Ok(Self::new(DynamoStore::from_env(table).await))
    }

    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let result = self.route(&request).await;
        let response = match result {
            Ok((status, body)) => json_response(status, body),
            Err(err) => {
                if err.status().is_server_error() {
                    tracing::error!(error = %error_chain(&err), "request failed");
                }
                err.response()
            }
        };
        tracing::info!(
            request_id = %request_id(&request),
            method = %request.method(),
            path = request.uri().path(),
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_millis() as u64,
            "api request answered"
        );
        Ok(response)
    }

    async fn route(&self, request: &Request) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let path = request.uri().path();
        match (route(path).ok_or(ApiError::NoRoute)?, request.method()) {
            (Route::Orders, &Method::POST) => self.create_order(request).await,
            (Route::Order(id), &Method::GET) => self.get_order(id).await,
            _ => Err(ApiError::MethodNotAllowed),
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
        match register(&self.store, new, OffsetDateTime::now_utc()).await? {
            Registered::Created(order) => {
                tracing::info!(
                    trade_no = order.trade_no.as_str(),
                    total_amt = order.total_amt.get(),
                    "order registered"
                );
                Ok((StatusCode::CREATED, to_json(&order)))
            }
            Registered::Existing(order) => Ok((StatusCode::OK, to_json(&order))),
            Registered::Conflict(order) => Err(ApiError::Conflict(format!(
                "order {} exists with other values",
                order.trade_no
            ))),
        }
    }

    async fn get_order(&self, id: &str) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let trade_no =
            TradeNo::parse(id).map_err(|e| ApiError::BadRequest(format!("tradeNo {e}")))?;
        match self.store.get_order(&trade_no).await? {
            Some(order) => Ok((StatusCode::OK, to_json(&order))),
            None => Err(ApiError::NotFound(format!("no order {trade_no}"))),
        }
    }
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
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
    }
}
