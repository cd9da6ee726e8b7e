//! Asking the platform about an order we have not seen paid, and fulfilling
//! what it reports paid through the very ship flow a notification takes
//! (same idempotency key: the `transactionId`).

use super::platform::{Platform, PlatformError};
use super::refunds::new_nonce;
use super::ship::{body_hash, Fulfiller, ShipError, ShipOutcome, ShipService, ShipStore};
use super::Order;
use crate::protocol::{OrderQueryRequest, OrderRef, ShipNotify, TradeStatus};
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

/// Queries `orderquery` for `order` and applies a SUCCESS it reports.
pub async fn sync_order<S: ShipStore, F: Fulfiller>(
    ship: &ShipService<S, F>,
    platform: &dyn Platform,
    order: &Order,
    now: EpochSecs,
    deadline: EpochSecs,
) -> Result<OrderSync, SyncError> {
    let request = OrderQueryRequest::new(
        ship.settings.skill_id.clone(),
        OrderRef::TradeNo(order.trade_no.clone()),
        new_nonce(),
    );
    let reply = platform.order_query(&request).await?;
    let queried = match reply.order() {
        Ok(queried) => queried,
        Err(_) => return Ok(OrderSync::NotPaid(reply.trade_status)),
    };
    if queried.trade_status != TradeStatus::Success || queried.trade_no != order.trade_no {
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
    let outcome = ship.handle(&notice, hash, now, deadline).await?;
    if outcome == ShipOutcome::Fulfilled {
        tracing::warn!(
            transaction_id = notice.transaction_id.as_str(),
            trade_no = notice.trade_no.as_str(),
            "payment found by orderquery, not by a notification: fulfilled"
        );
    }
    Ok(OrderSync::Paid(outcome))
}
