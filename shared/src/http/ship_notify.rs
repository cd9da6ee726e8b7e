//! The ship notification endpoint.

use std::convert::Infallible;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use time::OffsetDateTime;
use tracing::Instrument;

use super::notify::{Answer, Concerns, Inbound};
use crate::config::Config;
use crate::domain::ship::{body_hash, Rejection, ShipOutcome};
use crate::observability::metrics::Metric;
use crate::platform::http_client;
use crate::protocol::ShipNotify;
use crate::store::DynamoStore;
use crate::wiring::{shipper, Shipper};

fn outcome_status(outcome: &ShipOutcome) -> StatusCode {
    match outcome {
        ShipOutcome::Rejected(Rejection::WrongSkill) => StatusCode::FORBIDDEN,
        ShipOutcome::Rejected(Rejection::NonceReplayed) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::OK,
    }
}

/// The ship-notify function: built once at start, then called per request.
pub struct ShipNotifyApp {
    service: Shipper,
    inbound: Inbound,
}

impl ShipNotifyApp {
    /// `_http` is unused since the partner's webhook is called from the
    /// entitlements outbox; kept so that every app is built alike.
    pub fn new(config: Config, store: DynamoStore, _http: reqwest::Client) -> Self {
        let keys = config.keys.clone();
        let service = shipper(&config, &keys, store);
        Self {
            service,
            inbound: Inbound { keys },
        }
    }

    /// Reads the configuration and builds the clients: call once in `main`.
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let config = Config::load().await?;
        let store = DynamoStore::from_env(config.table_name.clone()).await;
        Ok(Self::new(config, store, http_client()))
    }

    /// The Lambda handler.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Infallible> {
        Ok(self
            .inbound
            .serve("ship-notify", &request, |auth, body, now, _| {
                self.notify(auth, body, now)
            })
            .await)
    }

    /// Decides one notification from its `Authorization` header and raw body.
    pub async fn notify(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Answer {
        let notice: ShipNotify = match self.inbound.verify(authorization, body, now).await {
            Ok(notice) => notice,
            Err(err) => return Answer::refused(&err),
        };
        let span = tracing::info_span!(
            "ship_notify",
            transaction_id = notice.transaction_id.as_str(),
            trade_no = notice.trade_no.as_str()
        );
        let concerns = Concerns {
            transaction_id: Some(notice.transaction_id.as_str().to_owned()),
            trade_no: Some(notice.trade_no.as_str().to_owned()),
            refund_trade_no: None,
        };
        self.decide(&notice, body, now)
            .instrument(span)
            .await
            .concerning(concerns)
    }

    async fn decide(&self, notice: &ShipNotify, body: &[u8], now: OffsetDateTime) -> Answer {
        let now = now.unix_timestamp();
        let decided = match self.service.decide(notice, body_hash(body), now).await {
            Ok(decided) => decided,
            Err(err) => return Answer::internal(&err),
        };
        let outcome = &decided.outcome;
        if let ShipOutcome::Rejected(rejection) = outcome {
            if rejection.is_alert() {
                // Signed, yet it contradicts our records: keep it, with its
                // body, for an operator. If it cannot be kept, answer an
                // error so that the platform delivers it again.
                if let Err(err) = self
                    .service
                    .keep_unmatched(notice, *rejection, body, now)
                    .await
                {
                    return Answer::internal(&err);
                }
                tracing::error!(
                    alert = true,
                    reason = rejection.code(),
                    transaction_id = notice.transaction_id.as_str(),
                    trade_no = notice.trade_no.as_str(),
                    total_amt = notice.total_amt.get(),
                    "signed ship notification refused and kept: money may be at risk"
                );
            } else {
                tracing::warn!(reason = rejection.code(), "ship notification refused");
            }
        }
        let answer = Answer::new(outcome_status(outcome), outcome.reply(), outcome.code());
        let answer = if decided.user_token_mismatch {
            answer.counting(Metric::UserTokenMismatch)
        } else {
            answer
        };
        if decided.paid_after_expiry {
            answer.counting(Metric::PaidAfterExpiry)
        } else {
            answer
        }
    }

    /// The reply as JSON, with an `Authorization` header over its body.
    pub fn signed_response(&self, answer: &Answer, now: OffsetDateTime) -> Response<Body> {
        self.inbound.signed_response(answer, now)
    }
}
