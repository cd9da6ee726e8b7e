//! The refund result notification endpoint (退款结果通知).

use std::convert::Infallible;
use std::sync::Arc;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use time::OffsetDateTime;
use tracing::Instrument;

use super::notify::{Answer, Concerns, Inbound};
use crate::config::Config;
use crate::domain::refunds::{apply_report, NonceClaim, Refund, RefundError, RefundStore, Report};
use crate::domain::ship::body_hash;
use crate::protocol::{RefundNotify, Reply, SkillId};
use crate::store::DynamoStore;
use crate::EpochSecs;

/// The refund-notify function.
pub struct RefundNotifyApp {
    store: DynamoStore,
    inbound: Inbound,
    skill_id: SkillId,
}

/// The fields of a notification that must agree with our record.
fn disagreement(notice: &RefundNotify, refund: &Refund) -> Option<&'static str> {
    if notice.trade_no != refund.trade_no {
        Some("tradeNo")
    } else if notice.transaction_id != refund.transaction_id {
        Some("transactionId")
    } else if notice.total_amt != refund.total_amt {
        Some("totalAmt")
    } else if notice.refund_amt != refund.refund_amt {
        Some("refundAmt")
    } else if refund
        .refund_transaction_id
        .as_ref()
        .is_some_and(|id| id != &notice.refund_transaction_id)
    {
        Some("refundTransactionId")
    } else {
        None
    }
}

impl RefundNotifyApp {
    pub fn new(config: Config, store: DynamoStore) -> Self {
        Self {
            store,
            inbound: Inbound {
                keys: Arc::new(config.keys),
            },
            skill_id: config.skill_id,
        }
    }

    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let config = Config::from_env()?;
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
        let notice: RefundNotify = match self.inbound.verify(authorization, body, now) {
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
        let Some(refund) = self.store.get_refund(&notice.refund_trade_no).await? else {
            // Signed by the platform but not ours to match: keep it for an
            // operator rather than drop it, and stop the retries.
            self.store
                .record_unmatched(&notice.refund_trade_no, &String::from_utf8_lossy(body), now)
                .await?;
            tracing::error!(
                alert = true,
                reason = "unknown_refund",
                refund_trade_no = notice.refund_trade_no.as_str(),
                refund_amt = notice.refund_amt.get(),
                "signed refund notification for an unknown refundTradeNo recorded"
            );
            return Ok(Answer::ok(Reply::success(), "unknown_refund"));
        };
        if let Some(field) = disagreement(notice, &refund) {
            tracing::error!(
                alert = true,
                reason = "refund_mismatch",
                field,
                refund_trade_no = notice.refund_trade_no.as_str(),
                "signed refund notification disagrees with our refund"
            );
            return Ok(Answer::ok(
                Reply::fail(format!("{field} mismatch")),
                "refund_mismatch",
            ));
        }
        let report = Report {
            status: notice.refund_status,
            refund_transaction_id: Some(notice.refund_transaction_id.clone()),
            reason: notice.refund_status_desc.clone(),
        };
        let nonce = NonceClaim {
            nonce: notice.nonce_str.clone(),
            body_hash: body_hash(body),
            expires: now + i64::try_from(self.inbound.keys.skew.as_secs() * 2).unwrap_or(360),
        };
        match apply_report(&self.store, refund, &report, Some(&nonce), now).await {
            Ok((after, changed)) => {
                tracing::info!(
                    status = after.status.as_str(),
                    changed,
                    "refund result applied"
                );
                Ok(Answer::ok(
                    Reply::success(),
                    if changed { "applied" } else { "acknowledged" },
                ))
            }
            Err(RefundError::Contradiction) => {
                tracing::error!(
                    alert = true,
                    reason = "refund_contradiction",
                    "refund result contradicts a final state"
                );
                Ok(Answer::ok(
                    Reply::fail("contradicts final state"),
                    "refund_contradiction",
                ))
            }
            Err(RefundError::NonceReplayed) => Ok(Answer::new(
                StatusCode::UNAUTHORIZED,
                Reply::fail("replayed nonceStr"),
                "replay",
            )),
            Err(err) => Err(err),
        }
    }
}
