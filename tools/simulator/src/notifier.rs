//! Notifications the platform sends: ship notifications (§1) and refund
//! result notifications (§5), signed, with their replies recorded; and a
//! refund's move to its final state.

use std::time::Duration;

use axum::http::header;
use dingdang::protocol::{self, RefundNotify, RefundStatus, Revision};
use serde_json::Value;
use time::OffsetDateTime;

use crate::{lock, nonce, refund_status_desc, NotifyResult, RefundOutcome, SimRefund, Simulator};

fn reply_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Simulator {
    pub async fn send_ship_notify(&self, transaction_id: &str) -> NotifyResult {
        let url = self
            .inner
            .config
            .ship_notify_url
            .clone()
            .ok_or("no ship_notify_url configured")?;
        let notify = {
            let ledger = lock(&self.inner.ledger);
            let order = ledger
                .by_transaction
                .get(transaction_id)
                .and_then(|t| ledger.orders.get(t))
                .ok_or("unknown transactionId")?;
            protocol::ShipNotify {
                skill_id: self.inner.skill_id.clone(),
                transaction_id: order.transaction_id.clone(),
                trade_no: order.trade_no.clone(),
                total_amt: order.total_amt,
                nonce_str: nonce(),
                user_token: None,
            }
        };
        let revision = *lock(&self.inner.notify_revision);
        let result = self
            .post_signed(&url, protocol::to_wire(&notify, revision))
            .await;
        self.log(|| format!("-> ship notify {}: {}", notify.trade_no, describe(&result)));
        *lock(&self.inner.last_ship_reply) = Some(result.clone());
        result
    }

    /// The reply to the last ship notification sent, if any.
    pub fn last_ship_reply(&self) -> Option<NotifyResult> {
        lock(&self.inner.last_ship_reply).clone()
    }

    /// Sends a refund result notification with `status` (`PROCESSING`,
    /// `SUCCESS` or `FAIL`) for a known refund to
    /// [`SimConfig::refund_notify_url`](crate::SimConfig::refund_notify_url), once, without changing the refund.
    pub async fn send_refund_notify(&self, refund_trade_no: &str, status: &str) -> NotifyResult {
        let status: RefundStatus = status.parse().map_err(|e| format!("status {e}"))?;
        let url = self
            .inner
            .config
            .refund_notify_url
            .clone()
            .ok_or("no refund_notify_url configured")?;
        let notify = self
            .refund_notify(refund_trade_no, Some(status))
            .ok_or("unknown refundTradeNo")?;
        self.deliver_refund_notify(&url, notify).await
    }

    /// Posts one signed refund result notification to `url`, logs it and
    /// records its reply (see [`Simulator::refund_notify_replies`]).
    async fn deliver_refund_notify(
        &self,
        url: &str,
        (notify, revision): (RefundNotify, Revision),
    ) -> NotifyResult {
        let refund_trade_no = notify.refund_trade_no.as_str().to_owned();
        let status = notify.refund_status;
        let result = self
            .post_signed(url, protocol::to_wire(&notify, revision))
            .await;
        self.log(|| {
            format!(
                "-> refund notify {refund_trade_no} {status}: {}",
                describe(&result)
            )
        });
        lock(&self.inner.refund_notify_replies).push((refund_trade_no, result.clone()));
        result
    }

    /// Every refund result notification sent so far (automatic ones
    /// including each retry, and [`Simulator::send_refund_notify`]):
    /// `(refundTradeNo, reply)`.
    pub fn refund_notify_replies(&self) -> Vec<(String, NotifyResult)> {
        lock(&self.inner.refund_notify_replies).clone()
    }

    /// The notification for a refund, with its current status or `status`.
    fn refund_notify(
        &self,
        refund_trade_no: &str,
        status: Option<RefundStatus>,
    ) -> Option<(RefundNotify, Revision)> {
        let ledger = lock(&self.inner.ledger);
        let r = ledger.refunds.get(refund_trade_no)?;
        let status = status.unwrap_or(r.status);
        let notify = RefundNotify {
            skill_id: self.inner.skill_id.clone(),
            transaction_id: r.transaction_id.clone(),
            trade_no: r.trade_no.clone(),
            refund_transaction_id: r.refund_transaction_id.clone(),
            refund_trade_no: r.refund_trade_no.clone(),
            total_amt: r.total_amt,
            refund_amt: r.refund_amt,
            refund_status: status,
            refund_status_desc: Some(refund_status_desc(status).to_owned()),
            nonce_str: nonce(),
        };
        Some((notify, r.revision))
    }

    /// POSTs `body` signed with the platform's signer.
    async fn post_signed(&self, url: &str, body: Vec<u8>) -> NotifyResult {
        let authorization = self
            .inner
            .config
            .keys
            .sign(&body, OffsetDateTime::now_utc());
        let response = self
            .inner
            .http
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, authorization.to_string())
            .body(body)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| error_chain(&e))?;
        Ok((status, reply_json(&bytes)))
    }

    /// Moves a refund to `outcome` after `delay`, then notifies (with
    /// retries) when so configured. Does nothing when the refund is no
    /// longer `PROCESSING` by then (see [`Simulator::settle_refund`]).
    pub(crate) fn schedule_outcome(
        &self,
        refund_trade_no: String,
        delay: Duration,
        outcome: RefundStatus,
    ) {
        let sim = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            {
                let mut ledger = lock(&sim.inner.ledger);
                match ledger.refunds.get_mut(&refund_trade_no) {
                    Some(r) if r.status == RefundStatus::Processing => r.status = outcome,
                    _ => return,
                }
            }
            sim.notify_final(&refund_trade_no).await;
        });
    }

    /// Sends the refund result notification of a refund in its current
    /// state to [`SimConfig::refund_notify_url`](crate::SimConfig::refund_notify_url) (when set), retried up to 3
    /// times with a short backoff while the reply is not HTTP 2xx with
    /// `retCode` `SUCCESS`.
    async fn notify_final(&self, refund_trade_no: &str) {
        let Some(url) = self.inner.config.refund_notify_url.clone() else {
            return;
        };
        for attempt in 0..4u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << (attempt - 1))).await;
            }
            let Some(notify) = self.refund_notify(refund_trade_no, None) else {
                return;
            };
            let result = self.deliver_refund_notify(&url, notify).await;
            let delivered = matches!(
                &result,
                Ok((status, reply)) if (200..300).contains(status) && reply["retCode"] == "SUCCESS"
            );
            if delivered {
                return;
            }
        }
    }

    /// Moves a `PROCESSING` refund to `outcome` now, instead of after
    /// [`SimConfig::refund_delay`](crate::SimConfig::refund_delay) (the delayed change then does nothing).
    /// With `notify`, its refund result notification is sent in the
    /// background as after the delay. A refund already in `outcome` is
    /// returned as it is; one already in the other final state is an error,
    /// as is an unknown one.
    pub fn settle_refund(
        &self,
        refund_trade_no: &str,
        outcome: RefundOutcome,
        notify: bool,
    ) -> Result<SimRefund, String> {
        let wanted = outcome.status();
        let refund = {
            let mut ledger = lock(&self.inner.ledger);
            let r = ledger
                .refunds
                .get_mut(refund_trade_no)
                .ok_or("refund not found")?;
            if r.status == wanted {
                return Ok(r.public());
            }
            if r.status != RefundStatus::Processing {
                return Err(format!("refund is already {}", r.status));
            }
            r.status = wanted;
            r.public()
        };
        if notify {
            let sim = self.clone();
            let refund_trade_no = refund_trade_no.to_owned();
            tokio::spawn(async move { sim.notify_final(&refund_trade_no).await });
        }
        Ok(refund)
    }
}

fn describe(result: &NotifyResult) -> String {
    match result {
        Ok((status, reply)) => format!(
            "{status} {}",
            reply["retCode"].as_str().unwrap_or("(no retCode)")
        ),
        Err(e) => format!("failed: {e}"),
    }
}
