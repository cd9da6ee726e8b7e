//! The Lambda glue every function shares: body bytes → verified request →
//! domain → signed JSON reply. This is the one place where errors become
//! `retCode` and HTTP status codes.

pub mod create_order;
pub mod notify;
pub mod partner_api;
pub mod refund_notify;
pub mod ship_notify;

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};

use crate::EpochSecs;

/// How long an invocation may run when the runtime gives no deadline
/// (the template's function timeout).
pub const DEFAULT_BUDGET_SECS: EpochSecs = 10;

/// The request's raw body bytes, exactly as received (API Gateway's base64
/// is already decoded by the runtime).
pub(crate) fn body_bytes(request: &Request) -> &[u8] {
    match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    }
}

pub(crate) fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// When the runtime will stop this invocation, in epoch seconds.
pub(crate) fn deadline(request: &Request, now: EpochSecs) -> EpochSecs {
    request
        .lambda_context_ref()
        .map(|ctx| EpochSecs::try_from(ctx.deadline / 1000).unwrap_or(now + DEFAULT_BUDGET_SECS))
        .filter(|d| *d > now)
        .unwrap_or(now + DEFAULT_BUDGET_SECS)
}

/// The AWS request id, for the logs.
pub(crate) fn request_id(request: &Request) -> String {
    request
        .lambda_context_ref()
        .map(|ctx| ctx.request_id.clone())
        .unwrap_or_default()
}

/// `true` when a Content-Type is present and is not JSON (the partner API;
/// the platform's requests are read whatever their Content-Type).
pub(crate) fn wrong_content_type(request: &Request) -> bool {
    match header(request, "content-type") {
        None => false,
        Some(value) => {
            let essence = value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            !(essence == "application/json" || essence == "text/json" || essence.is_empty())
        }
    }
}

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::Binary(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}
