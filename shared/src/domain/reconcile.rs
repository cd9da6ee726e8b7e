//! Reconciliation: the protocol never promises that a notification
//! arrives, so a periodic sweep asks the platform about what is still open
//! and applies the answers through the same paths notifications take.
//!
//! Every unpaid order and open refund carries its next-check time in the
//! due index. A sweep takes what is due, soonest first, round by round (a
//! page of every shard, merged by due time), as long as its budget (the
//! invocation's deadline less a margin) allows; every item it asks about
//! and that stays open is pushed back by the backoff schedule, so the next
//! round and the next sweep reach what is behind it: nothing is skipped
//! because something older is still open.
//!
//! - An unpaid order: `orderquery`; a SUCCESS there is fulfilled through
//!   the ship flow (a notification racing the sweep still fulfils once).
//!   Still unpaid at the maximum age after a last `orderquery`: EXPIRED,
//!   out of the index.
//! - An open refund: `refundquery` (and a resubmission when the platform
//!   does not report a PENDING one), through the refund rules.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::due::{secs, Backoff, SweepClock};
use super::entitlements::{Delivered, Outbox, Target};
use super::platform::Platform;
use super::refunds::{RefundError, RefundService, RefundStore};
use super::ship::{ShipOutcome, ShipService, ShipStore};
use super::sync::{sync_order, OrderSync, SyncError};
use super::{Order, StoreError};
use crate::protocol::{RefundTradeNo, TradeNo};
use crate::EpochSecs;

#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// An order still unpaid this long after it was registered gets a last
    /// `orderquery` and, unpaid, becomes EXPIRED.
    pub max_age: Duration,
    /// Platform calls in flight at once.
    pub concurrency: usize,
    /// Items read from each shard of the index per round.
    pub page_size: usize,
    /// How long an item that stays open waits before it is asked again.
    pub backoff: Backoff,
    /// Stop taking items this long before the invocation's deadline.
    pub margin: Duration,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(3 * 86_400),
            concurrency: 8,
            page_size: 50,
            backoff: Backoff::default(),
            margin: Duration::from_secs(10),
        }
    }
}

/// What the due index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueKind {
    /// Unpaid orders: `orderquery`.
    Order,
    /// Open refunds: `refundquery`.
    Refund,
    /// Pending `payment.succeeded` events.
    Grant,
    /// Pending `refund.succeeded` events.
    Revoke,
}

/// An item the due index says must be looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DueItem {
    Order(Order),
    Refund {
        refund_trade_no: RefundTradeNo,
        checks: u32,
        due: EpochSecs,
    },
    /// An event not delivered yet.
    Delivery {
        target: Target,
        /// Failed attempts by the sweep so far.
        attempts: u32,
        due: EpochSecs,
        /// When it became pending.
        since: EpochSecs,
    },
}

impl DueItem {
    fn is_revoke(&self) -> bool {
        matches!(
            self,
            Self::Delivery {
                target: Target::Revoke(_),
                ..
            }
        )
    }

    pub fn due(&self) -> EpochSecs {
        match self {
            Self::Order(order) => order.next_check_at.unwrap_or(order.created_at),
            Self::Refund { due, .. } | Self::Delivery { due, .. } => *due,
        }
    }

    fn key(&self) -> String {
        match self {
            Self::Order(order) => format!("O{}", order.trade_no.as_str()),
            Self::Refund {
                refund_trade_no, ..
            } => format!("R{}", refund_trade_no.as_str()),
            Self::Delivery {
                target: Target::Grant(t),
                ..
            } => format!("G{}", t.as_str()),
            Self::Delivery {
                target: Target::Revoke(r),
                ..
            } => format!("V{}", r.as_str()),
        }
    }
}

/// What the sweep needs from the store: the due index, read through its
/// shards (never a scan), and the writes that move an item in it.
#[async_trait]
pub trait ReconcileStore: Send + Sync {
    /// Up to `per_shard` items of `kinds` of every shard due at or before
    /// `now`, soonest first.
    async fn due_items(
        &self,
        kinds: &[DueKind],
        now: EpochSecs,
        per_shard: usize,
    ) -> Result<Vec<DueItem>, StoreError>;
    /// When the longest-pending event still pending became pending (the
    /// first item of every shard of `kinds`, whenever due).
    async fn oldest_pending(&self, kinds: &[DueKind]) -> Result<Option<EpochSecs>, StoreError>;
    /// Pushes an unpaid order's next check to `at`, recording `checks`;
    /// nothing when it is no longer unpaid.
    async fn reschedule_order(
        &self,
        trade_no: &TradeNo,
        checks: u32,
        at: EpochSecs,
    ) -> Result<(), StoreError>;
    /// The same for an open refund.
    async fn reschedule_refund(
        &self,
        refund_trade_no: &RefundTradeNo,
        checks: u32,
        at: EpochSecs,
    ) -> Result<(), StoreError>;
    /// Moves an unpaid order to EXPIRED, out of the index; `false` when it
    /// was no longer unpaid.
    async fn expire_order(&self, trade_no: &TradeNo, now: EpochSecs) -> Result<bool, StoreError>;
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
    /// Unpaid at the maximum age: EXPIRED.
    pub orders_expired: usize,
    pub refunds_checked: usize,
    /// Refunds whose status moved to a final one.
    pub refunds_resolved: usize,
    pub refunds_still_open: usize,
    /// Open past their attention time: a person must settle them.
    pub refunds_need_attention: usize,
    /// Items the platform gave no usable answer about (also in `errors`).
    pub platform_errors: usize,
    pub errors: usize,
    /// Events delivered to the partner's webhook by this sweep.
    pub entitlements_delivered: usize,
    /// Deliveries that failed (pushed back by the backoff).
    pub entitlements_failed: usize,
    /// How long the longest-pending event has been pending, after the
    /// sweep (none pending: absent).
    pub oldest_undelivered_secs: Option<EpochSecs>,
    /// Rounds of the index read.
    pub rounds: usize,
    /// Items read as due but not reached before the budget ran out: the
    /// next sweep takes them first.
    pub left: usize,
    /// The budget ran out before the index had nothing more due.
    pub out_of_time: bool,
}

enum Checked {
    Order,
    Refund,
    Event,
}

enum Found {
    Fulfilled,
    AlreadyFulfilled,
    Unpaid,
    Expired,
    Refused,
    Resolved,
    StillOpen,
    Delivered,
    DeliveryFailed,
    PlatformError,
    Error,
}

/// The sweep's dependencies.
pub struct Sweep<'a, S, R, P> {
    pub index: &'a dyn ReconcileStore,
    pub ship: &'a ShipService<S>,
    pub refunds: &'a RefundService<R, P>,
    pub settings: &'a ReconcileSettings,
    /// Delivers the events still pending; `None`: no webhook configured
    /// (they wait).
    pub outbox: Option<Outbox<'a>>,
}

impl<S, R, P> Sweep<'_, S, R, P> {
    fn kinds(&self) -> &'static [DueKind] {
        if self.outbox.is_some() {
            &[
                DueKind::Order,
                DueKind::Refund,
                DueKind::Grant,
                DueKind::Revoke,
            ]
        } else {
            &[DueKind::Order, DueKind::Refund]
        }
    }
}

/// One sweep on `clock`.
pub async fn reconcile<S, R, P>(
    sweep: &Sweep<'_, S, R, P>,
    clock: &SweepClock,
) -> Result<Summary, StoreError>
where
    S: ShipStore,
    R: RefundStore,
    P: Platform,
{
    let mut summary = Summary::default();
    let mut seen = HashSet::new();
    loop {
        if clock.out_of_time() {
            summary.out_of_time = true;
            break;
        }
        let mut items = sweep
            .index
            .due_items(sweep.kinds(), clock.now(), sweep.settings.page_size.max(1))
            .await?;
        items.retain(|item| seen.insert(item.key()));
        if items.is_empty() {
            break;
        }
        items.sort_by_key(DueItem::due);
        summary.rounds += 1;
        // Revokes wait for the rest of their page: a revoke delivers its
        // payment's grant first when that is still pending, so running both
        // side by side would send the grant twice.
        let (revokes, first): (Vec<DueItem>, Vec<DueItem>) =
            items.into_iter().partition(DueItem::is_revoke);
        let mut results = check_all(sweep, clock, first).await;
        results.extend(check_all(sweep, clock, revokes).await);
        for result in results {
            let Some((checked, found, attention)) = result else {
                summary.left += 1;
                continue;
            };
            match checked {
                Checked::Order => summary.orders_checked += 1,
                Checked::Refund => summary.refunds_checked += 1,
                Checked::Event => {}
            }
            if attention {
                summary.refunds_need_attention += 1;
            }
            match found {
                Found::Fulfilled => summary.orders_fulfilled += 1,
                Found::AlreadyFulfilled => summary.orders_already_fulfilled += 1,
                Found::Unpaid => summary.orders_unpaid += 1,
                Found::Expired => summary.orders_expired += 1,
                Found::Refused => summary.orders_refused += 1,
                Found::Resolved => summary.refunds_resolved += 1,
                Found::StillOpen => summary.refunds_still_open += 1,
                Found::Delivered => summary.entitlements_delivered += 1,
                Found::DeliveryFailed => summary.entitlements_failed += 1,
                Found::PlatformError => {
                    summary.platform_errors += 1;
                    summary.errors += 1;
                }
                Found::Error => summary.errors += 1,
            }
        }
        if summary.left > 0 {
            summary.out_of_time = true;
            break;
        }
    }
    if sweep.outbox.is_some() {
        let now = clock.now();
        summary.oldest_undelivered_secs = sweep
            .index
            .oldest_pending(&[DueKind::Grant, DueKind::Revoke])
            .await?
            .map(|since| (now - since).max(0));
    }
    tracing::info!(
        orders_checked = summary.orders_checked,
        orders_fulfilled = summary.orders_fulfilled,
        orders_already_fulfilled = summary.orders_already_fulfilled,
        orders_unpaid = summary.orders_unpaid,
        orders_refused = summary.orders_refused,
        orders_expired = summary.orders_expired,
        refunds_checked = summary.refunds_checked,
        refunds_resolved = summary.refunds_resolved,
        refunds_still_open = summary.refunds_still_open,
        refunds_need_attention = summary.refunds_need_attention,
        entitlements_delivered = summary.entitlements_delivered,
        entitlements_failed = summary.entitlements_failed,
        oldest_undelivered_secs = summary.oldest_undelivered_secs,
        platform_errors = summary.platform_errors,
        errors = summary.errors,
        rounds = summary.rounds,
        left = summary.left,
        out_of_time = summary.out_of_time,
        remaining_ms = u64::try_from(clock.remaining().as_millis()).unwrap_or(u64::MAX),
        "reconcile summary"
    );
    Ok(summary)
}

/// Checks or delivers `items`, at most the sweep's concurrency at a time;
/// `None` for an item left when the time ran out.
async fn check_all<S, R, P>(
    sweep: &Sweep<'_, S, R, P>,
    clock: &SweepClock,
    items: Vec<DueItem>,
) -> Vec<Option<(Checked, Found, bool)>>
where
    S: ShipStore,
    R: RefundStore,
    P: Platform,
{
    stream::iter(items)
        .map(|item| async move {
            if clock.out_of_time() {
                return None;
            }
            Some(match item {
                DueItem::Order(order) => (
                    Checked::Order,
                    check_order(sweep, clock, &order).await,
                    false,
                ),
                DueItem::Delivery {
                    target, attempts, ..
                } => (
                    Checked::Event,
                    deliver(sweep, clock, &target, attempts).await,
                    false,
                ),
                DueItem::Refund {
                    refund_trade_no,
                    checks,
                    ..
                } => {
                    let (found, attention) =
                        check_refund(sweep, clock, &refund_trade_no, checks).await;
                    (Checked::Refund, found, attention)
                }
            })
        })
        .buffer_unordered(sweep.settings.concurrency.max(1))
        .collect()
        .await
}

/// When an item checked `checks` times is next due: the backoff, and for an
/// order never later than its maximum age, so that its last check is on
/// time.
fn next_check(
    settings: &ReconcileSettings,
    checks: u32,
    now: EpochSecs,
    expires: Option<EpochSecs>,
) -> EpochSecs {
    let at = now + secs(settings.backoff.after(checks));
    match expires {
        Some(expires) if now < expires => at.min(expires),
        _ => at,
    }
}

async fn check_order<S, R, P>(
    sweep: &Sweep<'_, S, R, P>,
    clock: &SweepClock,
    order: &Order,
) -> Found
where
    S: ShipStore,
    R: RefundStore,
    P: Platform,
{
    let now = clock.now();
    let expires = order.created_at + secs(sweep.settings.max_age);
    let found = match sync_order(sweep.ship, &sweep.refunds.platform, order, now).await {
        Ok(OrderSync::Paid(ShipOutcome::Fulfilled)) => return Found::Fulfilled,
        Ok(OrderSync::Paid(ShipOutcome::AlreadyFulfilled | ShipOutcome::Replayed(_))) => {
            return Found::AlreadyFulfilled
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
        Ok(OrderSync::NotPaid(_)) if now >= expires => {
            return match sweep.index.expire_order(&order.trade_no, now).await {
                Ok(true) => {
                    tracing::info!(
                        trade_no = order.trade_no.as_str(),
                        checks = order.checks + 1,
                        "reconcile: order unpaid at its maximum age: EXPIRED"
                    );
                    Found::Expired
                }
                Ok(false) => Found::AlreadyFulfilled,
                Err(err) => {
                    tracing::warn!(trade_no = order.trade_no.as_str(), error = %err, "reconcile: order not expired");
                    Found::Error
                }
            };
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
    };
    let checks = order.checks.saturating_add(1);
    let at = next_check(sweep.settings, checks, now, Some(expires));
    if let Err(err) = sweep
        .index
        .reschedule_order(&order.trade_no, checks, at)
        .await
    {
        tracing::warn!(trade_no = order.trade_no.as_str(), error = %err, "reconcile: order not rescheduled");
        return Found::Error;
    }
    found
}

async fn check_refund<S, R, P>(
    sweep: &Sweep<'_, S, R, P>,
    clock: &SweepClock,
    refund_trade_no: &RefundTradeNo,
    checks: u32,
) -> (Found, bool)
where
    R: RefundStore,
    P: Platform,
{
    let now = clock.now();
    let refunds = sweep.refunds;
    let before = refunds
        .store
        .get_refund(refund_trade_no)
        .await
        .ok()
        .flatten()
        .map(|r| r.status);
    let checked = refunds.sync(refund_trade_no, now).await;
    let (found, after) = match checked {
        Ok(after) if !after.status.is_open() => {
            let found = if Some(after.status) != before {
                Found::Resolved
            } else {
                Found::StillOpen
            };
            return (found, false);
        }
        Ok(after) => (Found::StillOpen, Some(after)),
        Err(err) => {
            tracing::warn!(refund_trade_no = refund_trade_no.as_str(), error = %err, "reconcile: refund not checked");
            let found = if matches!(err, RefundError::Platform(_)) {
                Found::PlatformError
            } else {
                Found::Error
            };
            (
                found,
                refunds
                    .store
                    .get_refund(refund_trade_no)
                    .await
                    .ok()
                    .flatten(),
            )
        }
    };
    let attention = after
        .as_ref()
        .is_some_and(|r| refunds.needs_attention(r, now));
    let checks = checks.saturating_add(1);
    let at = next_check(sweep.settings, checks, now, None);
    if let Err(err) = sweep
        .index
        .reschedule_refund(refund_trade_no, checks, at)
        .await
    {
        tracing::warn!(refund_trade_no = refund_trade_no.as_str(), error = %err, "reconcile: refund not rescheduled");
        return (Found::Error, attention);
    }
    (found, attention)
}

/// Delivers a pending event the stream did not (or could not).
async fn deliver<S, R, P>(
    sweep: &Sweep<'_, S, R, P>,
    clock: &SweepClock,
    target: &Target,
    attempts: u32,
) -> Found {
    let Some(outbox) = &sweep.outbox else {
        return Found::Error;
    };
    let now = clock.now();
    match outbox.deliver(target, now).await {
        Ok(Delivered::Sent(event) | Delivered::SentTwice(event)) => {
            tracing::warn!(
                event_id = event.id(),
                event_type = event.kind(),
                "reconcile: delivered an event the stream had not"
            );
            Found::Delivered
        }
        Ok(Delivered::NothingPending) => Found::Delivered,
        Err(err) => {
            tracing::warn!(target = ?target, error = %err, "reconcile: event not delivered; retried later");
            let attempts = attempts.saturating_add(1);
            let at = next_check(sweep.settings, attempts, now, None);
            if let Err(err) = outbox.store.reschedule_delivery(target, attempts, at).await {
                tracing::warn!(target = ?target, error = %err, "reconcile: event not rescheduled");
                return Found::Error;
            }
            Found::DeliveryFailed
        }
    }
}
