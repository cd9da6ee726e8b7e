//! The ship notification endpoint.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use time::OffsetDateTime;

use super::{body_bytes, deadline, header, json_response, request_id, wrong_content_type};
use crate::config::Config;
use crate::domain::ship::{
    body_hash, Rejection, ShipError, ShipOutcome, ShipService, ShipSettings,
};
use crate::observability::error_chain;
use crate::platform::{http_client, WebhookFulfiller};
use crate::protocol::{self, ParseError, Reply, ShipNotify};
use crate::signing::{KeyRing, SignError};
use crate::store::DynamoStore;
use crate::EpochSecs;

/// Everything that can stop a notification, mapped to a reply in one place.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("unsupported content type")]
    ContentType,
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Signature(#[from] SignError),
    #[error(transparent)]
    Ship(#[from] ShipError),
}

impl NotifyError {
    fn status_and_reply(&self) -> (StatusCode, Reply) {
        match self {
            Self::ContentType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Reply::fail("Content-Type must be JSON"),
            ),
            Self::Parse(ParseError::TooLarge) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Reply::fail(&self.to_string()),
            ),
            Self::Parse(e) => (StatusCode::BAD_REQUEST, Reply::fail(&e.to_string())),
            Self::Signature(e) => (StatusCode::UNAUTHORIZED, Reply::fail(&e.to_string())),
            Self::Ship(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Reply::fail("internal error, retry later"),
            ),
        }
    }
}

fn outcome_status(outcome: &ShipOutcome) -> StatusCode {
    match outcome {
        ShipOutcome::Rejected(Rejection::WrongSkill) => StatusCode::FORBIDDEN,
        ShipOutcome::Rejected(Rejection::NonceReplayed) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::OK,
    }
}

/// The ship-notify function: built once at start, then called per request.
pub struct ShipNotifyApp {
    service: ShipService<DynamoStore, WebhookFulfiller>,
    keys: Arc<KeyRing>,
}

/// The answer to one notification, before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub reply: Reply,
    /// The outcome's short code (`fulfilled`, `duplicate`, `amount_mismatch`...).
    pub outcome: &'static str,
}

impl ShipNotifyApp {
    pub fn new(config: Config, store: DynamoStore, http: reqwest::Client) -> Self {
        let keys = Arc::new(config.keys);
        let fulfiller = config
            .fulfillment_url
            .map(|url| WebhookFulfiller::new(http, url, keys.clone()));
        let settings = ShipSettings {
            skill_id: config.skill_id,
            accept_unknown_orders: config.accept_unknown_orders,
            record_ttl: config.idempotency_ttl,
            nonce_ttl: keys.skew * 2,
        };
        Self {
            service: ShipService {
                store,
                fulfiller,
                settings,
            },
            keys,
        }
    }

    /// Reads the configuration and builds the clients: call once in `main`.
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let config = Config::from_env()?;
        let store = DynamoStore::from_env(config.table_name.clone()).await;
        Ok(Self::new(config, store, http_client()))
    }

    /// The Lambda handler.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let now = OffsetDateTime::now_utc();
        let deadline = deadline(&request, now.unix_timestamp());
        let answer = if wrong_content_type(&request) {
            self.answer_error(NotifyError::ContentType, None)
        } else {
            self.notify(
                header(&request, "authorization"),
                body_bytes(&request),
                now,
                deadline,
            )
            .await
        };
        tracing::info!(
            request_id = %request_id(&request),
            outcome = answer.outcome,
            status = answer.status.as_u16(),
            duration_ms = started.elapsed().as_millis() as u64,
            "ship notification answered"
        );
        Ok(self.signed_response(&answer, now))
    }

    /// Decides one notification from its `Authorization` header and raw body.
    pub async fn notify(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
        deadline: EpochSecs,
    ) -> Answer {
        let notice = match self.verify(authorization, body, now) {
            Ok(notice) => notice,
            Err(err) => return self.answer_error(err, None),
        };
        let span = tracing::info_span!(
            "ship_notify",
            transaction_id = notice.transaction_id.as_str(),
            trade_no = notice.trade_no.as_str()
        );
        let _enter = span.enter();
        match self
            .service
            .handle(&notice, body_hash(body), now.unix_timestamp(), deadline)
            .await
        {
            Ok(outcome) => {
                if let ShipOutcome::Rejected(rejection) = &outcome {
                    if rejection.is_alert() {
                        tracing::error!(
                            alert = true,
                            reason = rejection.code(),
                            transaction_id = notice.transaction_id.as_str(),
                            trade_no = notice.trade_no.as_str(),
                            total_amt = notice.total_amt.get(),
                            "signed ship notification refused: money may be at risk"
                        );
                    } else {
                        tracing::warn!(reason = rejection.code(), "ship notification refused");
                    }
                }
                Answer {
                    status: outcome_status(&outcome),
                    reply: outcome.reply(),
                    outcome: outcome.code(),
                }
            }
            Err(err) => self.answer_error(err.into(), Some(&notice)),
        }
    }

    fn verify(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<ShipNotify, NotifyError> {
        self.keys.verify(authorization, body, now)?;
        Ok(protocol::parse::<ShipNotify>(body)?)
    }

    fn answer_error(&self, err: NotifyError, notice: Option<&ShipNotify>) -> Answer {
        let (status, reply) = err.status_and_reply();
        let outcome = match &err {
            NotifyError::ContentType => "content_type",
            NotifyError::Parse(_) => "bad_request",
            NotifyError::Signature(SignError::Stale | SignError::Future) => "clock",
            NotifyError::Signature(_) => "signature",
            NotifyError::Ship(_) => "error",
        };
        if status.is_server_error() {
            tracing::error!(
                error = %error_chain(&err),
                transaction_id = notice.map(|n| n.transaction_id.as_str()),
                "ship notification failed"
            );
        } else {
            tracing::warn!(reason = outcome, error = %err, "ship notification rejected");
        }
        Answer {
            status,
            reply,
            outcome,
        }
    }

    /// The reply as JSON, with an `Authorization` header over its body.
    pub fn signed_response(&self, answer: &Answer, now: OffsetDateTime) -> Response<Body> {
        let body = answer.reply.to_bytes();
        let authorization = self.keys.sign(&body, now).to_string();
        let mut response = json_response(answer.status, body);
        if let Ok(value) = HeaderValue::from_str(&authorization) {
            response.headers_mut().insert("authorization", value);
        }
        response
    }
}
