//! Asking the platform about an order we have not seen paid, and fulfilling
//! what it reports paid through the very ship flow a notification takes
//! (same idempotency key: the `transactionId`).

use super::platform::{Platform, PlatformError};
use super::refunds::new_nonce;
use super::ship::{body_hash, ShipError, ShipOutcome, ShipService, ShipStore};
use super::Order;
use crate::protocol::{
    OrderQueryReply, OrderQueryRequest, OrderRef, QueriedOrder, RetCode, ShipNotify, SkillId,
    TradeStatus,
};
use crate::EpochSecs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderSync {
    /// The platform does not report it paid (or does not know it).
    NotPaid(Option<TradeStatus>),
    /// Reported paid: the ship flow's outcome.
    Paid(ShipOutcome),
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Ship(#[from] ShipError),
}

/// A `SUCCESS` reply, validated whole: every required field present and
/// valid (a field that does not parse already failed in the client), and
/// about our order of our skill. Anything else is a bad reply, never
/// "unpaid".
fn validate(
    reply: &OrderQueryReply,
    order: &Order,
    skill_id: &SkillId,
) -> Result<QueriedOrder, String> {
    let queried = reply
        .order()
        .map_err(|e| format!("orderquery SUCCESS reply: {e}"))?;
    if queried.trade_no != order.trade_no {
        return Err("orderquery SUCCESS reply is about another tradeNo".to_owned());
    }
    if &queried.skill_id != skill_id {
        return Err("orderquery SUCCESS reply is about another skill".to_owned());
    }
    Ok(queried)
}

/// A platform reply we cannot trust about a payment: an operator must look
/// (the order is left as it is and asked about again).
fn alert_bad_reply(order: &Order, err: &PlatformError) {
    tracing::error!(
        alert = true,
        reason = "bad_platform_reply",
        trade_no = order.trade_no.as_str(),
        error = %err,
        "orderquery reply refused: order left unchanged, asked again later"
    );
}

/// Queries `orderquery` for `order` and applies a SUCCESS it reports.
///
/// `retCode FAIL` is "not paid / unknown". A `SUCCESS` reply that lacks a
/// required field, has one that does not parse, or names another order or
/// skill is [`PlatformError::BadReply`] (alerted, nothing changed), as is
/// an unsigned or badly signed reply.
pub async fn sync_order<S: ShipStore>(
    ship: &ShipService<S>,
    platform: &dyn Platform,
    order: &Order,
    now: EpochSecs,
) -> Result<OrderSync, SyncError> {
    let request = OrderQueryRequest::new(
        ship.settings.skill_id.clone(),
        OrderRef::TradeNo(order.trade_no.clone()),
        new_nonce(),
    );
    let reply = match platform.order_query(&request).await {
        Ok(reply) => reply,
        Err(err) => {
            if let PlatformError::BadReply(_) = &err {
                alert_bad_reply(order, &err);
            }
            return Err(err.into());
        }
    };
    if reply.ret_code == RetCode::Fail {
        // The platform does not know the order, or will not say: not paid
        // as far as we know; the next sweep asks again.
        return Ok(OrderSync::NotPaid(reply.trade_status));
    }
    let queried = validate(&reply, order, &ship.settings.skill_id).map_err(|reason| {
        let err = PlatformError::BadReply(reason);
        alert_bad_reply(order, &err);
        err
    })?;
    if queried.trade_status != TradeStatus::Success {
        return Ok(OrderSync::NotPaid(Some(queried.trade_status)));
    }
    let notice = ShipNotify {
        skill_id: queried.skill_id,
        transaction_id: queried.transaction_id,
        trade_no: queried.trade_no,
        total_amt: queried.total_amt,
        nonce_str: request.nonce_str.clone(),
        user_token: order.user_token.clone(),
    };
    let hash = body_hash(format!("orderquery\u{1f}{}", request.nonce_str.as_str()).as_bytes());
    let outcome = ship.handle(&notice, hash, now).await?;
    if outcome == ShipOutcome::Fulfilled {
        tracing::warn!(
            transaction_id = notice.transaction_id.as_str(),
            trade_no = notice.trade_no.as_str(),
            "payment found by orderquery, not by a notification: fulfilled"
        );
    }
    Ok(OrderSync::Paid(outcome))
}
