//! What every platform → partner endpoint (the notifications and
//! create-order) shares: signature verification over the raw body, parsing,
//! and the signed JSON reply. Errors become status codes here.
//!
//! The body decides, not the header: a request is read whatever its
//! `Content-Type` (missing, `text/plain`, a form type...), and only a body
//! that is not JSON is refused as such (400 `invalid JSON`, after the
//! signature is checked).

use std::cell::Cell;
use std::future::Future;
use std::time::Instant;

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tracing::Instrument;

use super::{body_bytes, deadline, header, json_response, request_id};
use crate::keys::Keys;
use crate::observability::error_chain;
use crate::observability::metrics::{Event, Metric};
use crate::protocol::{self, CreateOrderReply, ParseError, Reply};
use crate::signing::{Fingerprint, SignError};
use crate::EpochSecs;

/// A request refused before any business rule ran.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Signature(#[from] SignError),
}

/// A reply body the partner signs and sends back to the platform.
pub trait SignedReply {
    /// `{"retCode":"FAIL","retMsg":msg}` in this reply's shape.
    fn fail(msg: String) -> Self;
    /// The JSON body, exactly the bytes that are signed and sent.
    fn to_bytes(&self) -> Vec<u8>;
}

impl SignedReply for Reply {
    fn fail(msg: String) -> Self {
        Reply::fail(msg)
    }
    fn to_bytes(&self) -> Vec<u8> {
        Reply::to_bytes(self)
    }
}

impl SignedReply for CreateOrderReply {
    fn fail(msg: String) -> Self {
        CreateOrderReply::fail(msg)
    }
    fn to_bytes(&self) -> Vec<u8> {
        CreateOrderReply::to_bytes(self)
    }
}

/// The answer to one request from the platform, before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<R = Reply> {
    pub status: StatusCode,
    pub reply: R,
    /// The outcome's short code (`fulfilled`, `duplicate`, `signature`...),
    /// for logs and metrics.
    pub outcome: &'static str,
    /// What the request concerns, once it is verified.
    pub concerns: Concerns,
    /// Metrics counted on the request's line besides the outcome's.
    pub also: Vec<Metric>,
}

/// The payment, order or refund a verified request concerns, for the logs
/// and metrics of its request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Concerns {
    pub transaction_id: Option<String>,
    pub trade_no: Option<String>,
    pub refund_trade_no: Option<String>,
}

impl<R: SignedReply> Answer<R> {
    pub fn new(status: StatusCode, reply: R, outcome: &'static str) -> Self {
        Self {
            status,
            reply,
            outcome,
            concerns: Concerns::default(),
            also: Vec::new(),
        }
    }

    pub fn ok(reply: R, outcome: &'static str) -> Self {
        Self::new(StatusCode::OK, reply, outcome)
    }

    /// The same answer, also counting `metric` on the request's line.
    pub fn counting(mut self, metric: Metric) -> Self {
        self.also.push(metric);
        self
    }

    /// The same answer, about `concerns`.
    pub fn concerning(mut self, concerns: Concerns) -> Self {
        self.concerns = concerns;
        self
    }

    /// A request the caller got wrong: logged as a warning.
    pub fn refused(err: &InboundError) -> Self {
        let (status, outcome) = match err {
            InboundError::Parse(ParseError::TooLarge) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "bad_request")
            }
            InboundError::Parse(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            InboundError::Signature(SignError::Stale | SignError::Future) => {
                (StatusCode::UNAUTHORIZED, "clock")
            }
            InboundError::Signature(_) => (StatusCode::UNAUTHORIZED, "signature"),
        };
        tracing::warn!(reason = outcome, error = %err, "platform request refused");
        Self::new(status, R::fail(err.to_string()), outcome)
    }

    /// Our own failure (the store, a dependency): logged with its cause
    /// chain; the caller sees only that it should retry.
    pub fn internal(err: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %error_chain(err), "platform request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            R::fail("internal error, retry later".to_owned()),
            "error",
        )
    }
}

tokio::task_local! {
    /// The key that verified the request being served, for its log and
    /// metrics lines.
    static VERIFIED_BY: Cell<Option<Fingerprint>>;
}

/// The keys of an endpoint and the request/reply plumbing around them.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub keys: Keys,
}

impl Inbound {
    /// Verifies the `Authorization` over the raw body (reading the keys
    /// again when they are due, or when no key held matches), then parses
    /// it.
    pub async fn verify<T: DeserializeOwned>(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<T, InboundError> {
        let verified = self
            .keys
            .verify("platform-request", authorization, body, now)
            .await?;
        let _ = VERIFIED_BY.try_with(|by| by.set(Some(verified.key)));
        Ok(protocol::parse::<T>(body)?)
    }

    /// Runs `decide` on one Lambda request and returns the signed reply,
    /// with one log line and one metrics line per request. Every log line
    /// of the request carries its `request_id`.
    pub async fn serve<'a, R, F, Fut>(
        &self,
        name: &'static str,
        request: &'a Request,
        decide: F,
    ) -> Response<Body>
    where
        R: SignedReply,
        F: FnOnce(Option<&'a str>, &'a [u8], OffsetDateTime, EpochSecs) -> Fut,
        Fut: Future<Output = Answer<R>>,
    {
        let started = Instant::now();
        let now = OffsetDateTime::now_utc();
        let request_id = request_id(request);
        let span = tracing::info_span!(
            "request",
            endpoint = name,
            request_id = %request_id,
            key_fingerprint = tracing::field::Empty
        );
        let serve = async {
            // Whatever the Content-Type: the signature and the body decide.
            let deadline = deadline(request, now.unix_timestamp());
            let answer = decide(
                header(request, "authorization"),
                body_bytes(request),
                now,
                deadline,
            )
            .await;
            let key = VERIFIED_BY.try_with(Cell::get).ok().flatten();
            let key = key.map(|key| key.to_string());
            let elapsed = started.elapsed();
            let concerns = &answer.concerns;
            tracing::info!(
                endpoint = name,
                request_id = %request_id,
                outcome = answer.outcome,
                status = answer.status.as_u16(),
                transaction_id = concerns.transaction_id.as_deref(),
                trade_no = concerns.trade_no.as_deref(),
                refund_trade_no = concerns.refund_trade_no.as_deref(),
                key_fingerprint = key.as_deref(),
                duration_ms = elapsed.as_millis() as u64,
                "platform request answered"
            );
            let mut event = Event::new(name)
                .count(Metric::NotificationReceived)
                .count_opt(Metric::for_outcome(answer.outcome));
            for metric in &answer.also {
                event = event.count(*metric);
            }
            event
                .prop("outcome", answer.outcome)
                .prop("status", answer.status.as_u16())
                .prop("durationMs", elapsed.as_millis() as u64)
                .prop_opt("requestId", Some(request_id.as_str()))
                .prop_opt("transactionId", concerns.transaction_id.as_deref())
                .prop_opt("tradeNo", concerns.trade_no.as_deref())
                .prop_opt("refundTradeNo", concerns.refund_trade_no.as_deref())
                .prop_opt("keyFingerprint", key.as_deref())
                .emit();
            self.signed_response(&answer, now)
        };
        VERIFIED_BY
            .scope(Cell::new(None), serve.instrument(span))
            .await
    }

    /// The reply as JSON, with an `Authorization` header over its body.
    pub fn signed_response<R: SignedReply>(
        &self,
        answer: &Answer<R>,
        now: OffsetDateTime,
    ) -> Response<Body> {
        let body = answer.reply.to_bytes();
        let authorization = self.keys.ring().sign(&body, now).to_string();
        let mut response = json_response(answer.status, body);
        if let Ok(value) = HeaderValue::from_str(&authorization) {
            response.headers_mut().insert("authorization", value);
        }
        response
    }
}
