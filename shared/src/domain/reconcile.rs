//! Reconciliation: the protocol never promises that a notification
//! arrives, so a periodic sweep asks the platform about what is still open
//! and applies the answers through the same paths notifications take.
//!
//! - Orders unpaid past a grace period (and younger than a maximum age):
//!   `orderquery`; a SUCCESS there is fulfilled through the ship flow, so a
//!   notification racing the sweep still fulfils once.
//! - Refunds PENDING or PROCESSING past a grace period: `refundquery`,
//!   applied through the refund state machine.

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::platform::Platform;
use super::refunds::{RefundError, RefundService, RefundStore};
use super::ship::{Fulfiller, ShipOutcome, ShipService, ShipStore};
use super::sync::{sync_order, OrderSync, SyncError};
use super::{Order, StoreError};
use crate::protocol::RefundTradeNo;
use crate::EpochSecs;

#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// How long a notification may take before we ask.
    pub grace: Duration,
    /// Orders older than this are no longer asked about.
    pub max_age: Duration,
    /// Platform calls in flight at once.
    pub concurrency: usize,
    /// Orders (and refunds) handled per run at most; the rest wait for the
    /// next run.
    pub max_items: usize,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(600),
            max_age: Duration::from_secs(3 * 86_400),
            concurrency: 8,
            max_items: 500,
        }
    }
}

/// What the store must list for a sweep: items due in a window of due
/// times, oldest first, read page by page through an index (never a scan).
#[async_trait]
pub trait ReconcileStore: Send + Sync {
    async fn due_orders(
        &self,
        from: EpochSecs,
        to: EpochSecs,
        limit: usize,
    ) -> Result<Vec<Order>, StoreError>;
    async fn due_refunds(
        &self,
        from: EpochSecs,
        to: EpochSecs,
        limit: usize,
    ) -> Result<Vec<RefundTradeNo>, StoreError>;
}

/// The counts of one sweep, logged as one line and returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub orders_checked: usize,
    /// Paid at the platform and fulfilled by this sweep: lost notifications.
    pub orders_fulfilled: usize,
    /// Paid, already fulfilled (a notification won the race).
    pub orders_already_fulfilled: usize,
    pub orders_unpaid: usize,
    /// Reported paid, but our order refused it (amount, another payment).
    pub orders_refused: usize,
    pub refunds_checked: usize,
    /// Refunds whose status moved.
    pub refunds_resolved: usize,
    pub refunds_still_open: usize,
    /// Open past their attention time: a person must settle them.
    pub refunds_need_attention: usize,
    /// Items the platform gave no usable answer about (also in `errors`).
    pub platform_errors: usize,
    pub errors: usize,
}

enum RefundFound {
    Resolved,
    Open,
    PlatformError,
    Error,
}

enum Found {
    Fulfilled,
    AlreadyFulfilled,
    Unpaid,
    Refused,
    PlatformError,
    Error,
}

/// One sweep.
pub async fn reconcile<S, F, R, P>(
    index: &dyn ReconcileStore,
    ship: &ShipService<S, F>,
    refunds: &RefundService<R, P>,
    settings: &ReconcileSettings,
    now: EpochSecs,
    deadline: EpochSecs,
) -> Result<Summary, StoreError>
where
    S: ShipStore,
    F: Fulfiller,
    R: RefundStore,
    P: Platform,
{
    let secs = |d: Duration| EpochSecs::try_from(d.as_secs()).unwrap_or(EpochSecs::MAX / 4);
    let (from, to) = (now - secs(settings.max_age), now - secs(settings.grace));
    let mut summary = Summary::default();

    let orders = index.due_orders(from, to, settings.max_items).await?;
    summary.orders_checked = orders.len();
    let found: Vec<Found> = stream::iter(orders)
        .map(|order| async move {
            match sync_order(ship, &refunds.platform, &order, now, deadline).await {
                Ok(OrderSync::Paid(ShipOutcome::Fulfilled)) => Found::Fulfilled,
                Ok(OrderSync::Paid(ShipOutcome::AlreadyFulfilled | ShipOutcome::Replayed(_))) => {
                    Found::AlreadyFulfilled
                }
                Ok(OrderSync::Paid(ShipOutcome::Rejected(rejection))) => {
                    if rejection.is_alert() {
                        tracing::error!(
                            alert = true,
                            reason = rejection.code(),
                            trade_no = order.trade_no.as_str(),
                            "reconcile: a payment reported by orderquery was refused"
                        );
                        Found::Refused
                    } else {
                        Found::Error
                    }
                }
                Ok(OrderSync::NotPaid(_)) => Found::Unpaid,
                Err(SyncError::Platform(err)) => {
                    tracing::warn!(trade_no = order.trade_no.as_str(), error = %err, "reconcile: the platform gave no usable answer about an order");
                    Found::PlatformError
                }
                Err(err) => {
                    tracing::warn!(trade_no = order.trade_no.as_str(), error = %err, "reconcile: order not checked");
                    Found::Error
                }
            }
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    for f in found {
        match f {
            Found::Fulfilled => summary.orders_fulfilled += 1,
            Found::AlreadyFulfilled => summary.orders_already_fulfilled += 1,
            Found::Unpaid => summary.orders_unpaid += 1,
            Found::Refused => summary.orders_refused += 1,
            Found::PlatformError => {
                summary.platform_errors += 1;
                summary.errors += 1;
            }
            Found::Error => summary.errors += 1,
        }
    }

    // Open refunds are asked about until they are final, however old.
    let open = index.due_refunds(0, to, settings.max_items).await?;
    summary.refunds_checked = open.len();
    let results: Vec<(RefundFound, bool)> = stream::iter(open)
        .map(|refund_trade_no| async move {
            let before = refunds.store.get_refund(&refund_trade_no).await.ok().flatten().map(|r| r.status);
            let checked = refunds.sync(&refund_trade_no, now).await;
            let attention = match &checked {
                Ok(after) => refunds.needs_attention(after, now),
                Err(_) => refunds
                    .store
                    .get_refund(&refund_trade_no)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|r| refunds.needs_attention(&r, now)),
            };
            let found = match checked {
                Ok(after) if Some(after.status) != before && !after.status.is_open() => RefundFound::Resolved,
                Ok(_) => RefundFound::Open,
                Err(err) => {
                    tracing::warn!(refund_trade_no = refund_trade_no.as_str(), error = %err, "reconcile: refund not checked");
                    if matches!(err, RefundError::Platform(_)) {
                        RefundFound::PlatformError
                    } else {
                        RefundFound::Error
                    }
                }
            };
            (found, attention)
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    for (found, attention) in results {
        match found {
            RefundFound::Resolved => summary.refunds_resolved += 1,
            RefundFound::Open => summary.refunds_still_open += 1,
            RefundFound::PlatformError => {
                summary.platform_errors += 1;
                summary.errors += 1;
            }
            RefundFound::Error => summary.errors += 1,
        }
        if attention {
            summary.refunds_need_attention += 1;
        }
    }
    tracing::info!(
        orders_checked = summary.orders_checked,
        orders_fulfilled = summary.orders_fulfilled,
        orders_already_fulfilled = summary.orders_already_fulfilled,
        orders_unpaid = summary.orders_unpaid,
        orders_refused = summary.orders_refused,
        refunds_checked = summary.refunds_checked,
        refunds_resolved = summary.refunds_resolved,
        refunds_still_open = summary.refunds_still_open,
        refunds_need_attention = summary.refunds_need_attention,
        platform_errors = summary.platform_errors,
        errors = summary.errors,
        "reconcile summary"
    );
    Ok(summary)
}
