//! The refund result notification endpoint (退款结果通知).

use std::convert::Infallible;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use time::OffsetDateTime;
use tracing::Instrument;

use super::notify::{Answer, Concerns, Inbound};
use crate::config::Config;
use crate::domain::refunds::{on_notification, Kept, Ledger, NonceClaim, Noticed, RefundError};
use crate::domain::ship::body_hash;
use crate::protocol::{RefundNotify, Reply, SkillId};
use crate::store::DynamoStore;
use crate::EpochSecs;

/// The refund-notify function.
pub struct RefundNotifyApp {
    store: DynamoStore,
    inbound: Inbound,
    skill_id: SkillId,
    /// How long a `refund.succeeded` may wait for the stream.
    revoke_after: std::time::Duration,
}

impl RefundNotifyApp {
    pub fn new(config: Config, store: DynamoStore) -> Self {
        Self {
            store: store.with_shards(config.due_shards),
            revoke_after: config.fulfillment_retry,
            inbound: Inbound { keys: config.keys },
            skill_id: config.skill_id,
        }
    }

    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let config = Config::load().await?;
        let store = DynamoStore::from_env(config.table_name.clone()).await;
        Ok(Self::new(config, store))
    }

    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Infallible> {
        Ok(self
            .inbound
            .serve("refund-notify", &request, |auth, body, now, _| {
                self.notify(auth, body, now)
            })
            .await)
    }

    pub async fn notify(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Answer {
        let notice: RefundNotify = match self.inbound.verify(authorization, body, now).await {
            Ok(notice) => notice,
            Err(err) => return Answer::refused(&err),
        };
        let span = tracing::info_span!(
            "refund_notify",
            refund_trade_no = notice.refund_trade_no.as_str(),
            trade_no = notice.trade_no.as_str(),
            refund_status = notice.refund_status.as_str()
        );
        let concerns = Concerns {
            transaction_id: Some(notice.transaction_id.as_str().to_owned()),
            trade_no: Some(notice.trade_no.as_str().to_owned()),
            refund_trade_no: Some(notice.refund_trade_no.as_str().to_owned()),
        };
        async {
            if notice.skill_id != self.skill_id {
                tracing::warn!(reason = "wrong_skill", "refund notification refused");
                return Answer::new(
                    StatusCode::FORBIDDEN,
                    Reply::fail("unknown skill"),
                    "wrong_skill",
                );
            }
            match self.decide(&notice, body, now.unix_timestamp()).await {
                Ok(answer) => answer,
                Err(err) => Answer::internal(&err),
            }
        }
        .instrument(span)
        .await
        .concerning(concerns)
    }

    async fn decide(
        &self,
        notice: &RefundNotify,
        body: &[u8],
        now: EpochSecs,
    ) -> Result<Answer, RefundError> {
        let nonce = NonceClaim {
            nonce: notice.nonce_str.clone(),
            body_hash: body_hash(body),
            expires: now + i64::try_from(self.inbound.keys.skew().as_secs() * 2).unwrap_or(360),
        };
        let payload = String::from_utf8_lossy(body);
        let ledger = Ledger {
            store: &self.store,
            revoke_after: self.revoke_after,
        };
        match on_notification(&ledger, notice, &payload, &nonce, now).await {
            Ok(Noticed::Applied(after)) => {
                tracing::info!(status = after.status.as_str(), "refund result applied");
                Ok(Answer::ok(Reply::success(), "applied"))
            }
            Ok(Noticed::Acknowledged(after)) => {
                tracing::info!(status = after.status.as_str(), "refund result acknowledged");
                Ok(Answer::ok(Reply::success(), "acknowledged"))
            }
            // Kept for an operator: stop the retries.
            Ok(Noticed::Kept(Kept::UnknownRefund, _)) => {
                Ok(Answer::ok(Reply::success(), "unknown_refund"))
            }
            // Kept, and answered FAIL: the platform's next delivery may
            // carry what it meant.
            Ok(Noticed::Kept(Kept::Mismatch, field)) => Ok(Answer::ok(
                Reply::fail(format!("{} mismatch", field.unwrap_or("refund"))),
                "refund_mismatch",
            )),
            Ok(Noticed::Kept(Kept::Contradiction, _)) => Ok(Answer::ok(
                Reply::fail("contradicts final state"),
                "refund_contradiction",
            )),
            Err(RefundError::NonceReplayed) => Ok(Answer::new(
                StatusCode::UNAUTHORIZED,
                Reply::fail("replayed nonceStr"),
                "replay",
            )),
            Err(err) => Err(err),
        }
    }
}
