//! The entitlements outbox: what the partner's systems must hear about a
//! recorded payment (grant) and a refund that succeeded (revoke).
//!
//! The table is the outbox. Recording a payment (PAID) marks its grant
//! PENDING, in the same write; a refund's move to SUCCESS marks its revoke
//! PENDING. Both are due in the due index after a delay. Delivering one
//! reads the item afresh (the stream is only a trigger), sends the event to
//! the partner's webhook, and on a 2xx marks it DELIVERED with a
//! conditional write. Deliveries are at least once (the webhook may see an
//! event id twice); the DELIVERED record is written once. A revoke is sent
//! only after its order's grant was delivered.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::refunds::{Refund, RefundStatus};
use super::{Order, OrderStatus, StoreError};
use crate::protocol::{Fen, RefundTradeNo, SkillId, TradeNo, TransactionId, UserToken};
use crate::EpochSecs;

/// Whether an event reached the partner's systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Delivered => "DELIVERED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(Self::Pending),
            "DELIVERED" => Some(Self::Delivered),
            _ => None,
        }
    }
}

/// The delivery state of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub status: DeliveryStatus,
    /// When it became pending (the payment or the refund's success).
    pub since: EpochSecs,
    /// While pending: when the sweep delivers it if nothing else did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<EpochSecs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<EpochSecs>,
    /// Failed attempts by the sweep.
    pub attempts: u32,
}

impl Delivery {
    pub fn pending(since: EpochSecs, due_at: EpochSecs) -> Self {
        Self {
            status: DeliveryStatus::Pending,
            since,
            due_at: Some(due_at),
            delivered_at: None,
            attempts: 0,
        }
    }

    pub fn is_pending(&self) -> bool {
        self.status == DeliveryStatus::Pending
    }
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// The grant of an order's payment.
    Grant(TradeNo),
    /// The revoke of a refund that succeeded.
    Revoke(RefundTradeNo),
}

/// `payment.succeeded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentSucceeded {
    pub transaction_id: TransactionId,
    pub trade_no: TradeNo,
    pub total_amt: Fen,
    pub skill_id: SkillId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_token: Option<UserToken>,
    pub paid_at: EpochSecs,
}

/// `refund.succeeded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundSucceeded {
    pub refund_trade_no: RefundTradeNo,
    pub trade_no: TradeNo,
    pub transaction_id: TransactionId,
    pub refund_amt: Fen,
    /// The order's succeeded refunds, this one included, in fen.
    pub refunded_total: i64,
    pub fully_refunded: bool,
}

/// An event for the partner's systems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Payment(PaymentSucceeded),
    Refund(RefundSucceeded),
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Payment(_) => "payment.succeeded",
            Self::Refund(_) => "refund.succeeded",
        }
    }

    /// Stable across redeliveries: the webhook's `Idempotency-Key`.
    pub fn id(&self) -> String {
        match self {
            Self::Payment(p) => format!("payment.succeeded:{}", p.transaction_id.as_str()),
            Self::Refund(r) => format!("refund.succeeded:{}", r.refund_trade_no.as_str()),
        }
    }

    /// `{"id","type","createdAt","data"}`.
    pub fn body(&self, created_at: EpochSecs) -> Vec<u8> {
        fn json<T: Serialize>(id: String, kind: &str, created_at: EpochSecs, data: &T) -> Vec<u8> {
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Body<'a, T> {
                id: String,
                r#type: &'a str,
                created_at: EpochSecs,
                data: &'a T,
            }
            serde_json::to_vec(&Body {
                id,
                r#type: kind,
                created_at,
                data,
            })
            .unwrap_or_default()
        }
        match self {
            Self::Payment(p) => json(self.id(), self.kind(), created_at, p),
            Self::Refund(r) => json(self.id(), self.kind(), created_at, r),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("webhook: {0}")]
pub struct SinkError(pub String);

/// The partner's webhook.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn send(&self, event: &Event, now: EpochSecs) -> Result<(), SinkError>;
}

/// What delivering needs from the store.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    async fn order(&self, trade_no: &TradeNo) -> Result<Option<Order>, StoreError>;
    async fn refund(&self, refund_trade_no: &RefundTradeNo) -> Result<Option<Refund>, StoreError>;
    /// Marks `target` DELIVERED if it is PENDING; `false` when it was not
    /// (delivered meanwhile).
    async fn mark_delivered(&self, target: &Target, now: EpochSecs) -> Result<bool, StoreError>;
    /// Pushes a pending `target` back to `at` after `attempts` failures.
    async fn reschedule_delivery(
        &self,
        target: &Target,
        attempts: u32,
        at: EpochSecs,
    ) -> Result<(), StoreError>;
    /// Makes the grant of `trade_no` and the revokes of its refunds that
    /// succeeded PENDING and due at `now`; how many events.
    async fn redeliver(&self, trade_no: &TradeNo, now: EpochSecs) -> Result<usize, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("{event_id}: {source}")]
    Sink {
        /// The event the webhook did not take.
        event_id: String,
        #[source]
        source: SinkError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("the order's payment.succeeded is not delivered yet")]
    GrantFirst(#[source] Box<OutboxError>),
}

/// The outcome of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Sent, and recorded DELIVERED by this call.
    Sent(Event),
    /// Sent, but another delivery recorded it first (at least once).
    SentTwice(Event),
    /// Nothing pending: delivered before, or not an event (yet).
    NothingPending,
}

/// Delivers one pending event.
pub struct Outbox<'a> {
    pub store: &'a dyn OutboxStore,
    pub sink: &'a dyn EventSink,
    pub skill_id: &'a SkillId,
}

impl Outbox<'_> {
    /// The event of `target` if it is pending.
    async fn pending(
        &self,
        target: &Target,
    ) -> Result<Option<(Event, Option<TradeNo>)>, OutboxError> {
        match target {
            Target::Grant(trade_no) => {
                let order = self
                    .store
                    .order(trade_no)
                    .await?
                    .ok_or(OutboxError::NotFound("order"))?;
                Ok(payment_event(&order, self.skill_id).map(|e| (e, None)))
            }
            Target::Revoke(no) => {
                let refund = self
                    .store
                    .refund(no)
                    .await?
                    .ok_or(OutboxError::NotFound("refund"))?;
                Ok(refund_event(&refund).map(|e| (e, Some(refund.trade_no.clone()))))
            }
        }
    }

    /// Delivers `target`'s event if it is pending; a revoke delivers its
    /// order's pending grant first.
    pub async fn deliver(&self, target: &Target, now: EpochSecs) -> Result<Delivered, OutboxError> {
        let Some((event, order)) = self.pending(target).await? else {
            return Ok(Delivered::NothingPending);
        };
        if let Some(trade_no) = order {
            let grant = Target::Grant(trade_no);
            Box::pin(self.deliver(&grant, now))
                .await
                .map_err(|e| OutboxError::GrantFirst(Box::new(e)))?;
        }
        self.sink
            .send(&event, now)
            .await
            .map_err(|source| OutboxError::Sink {
                event_id: event.id(),
                source,
            })?;
        if self.store.mark_delivered(target, now).await? {
            Ok(Delivered::Sent(event))
        } else {
            Ok(Delivered::SentTwice(event))
        }
    }
}

/// The `payment.succeeded` of a PAID order whose grant is pending.
pub fn payment_event(order: &Order, skill_id: &SkillId) -> Option<Event> {
    let grant = order.grant.as_ref()?;
    if order.status != OrderStatus::Paid || !grant.is_pending() {
        return None;
    }
    Some(Event::Payment(PaymentSucceeded {
        transaction_id: order.transaction_id.clone()?,
        trade_no: order.trade_no.clone(),
        total_amt: order.total_amt,
        skill_id: skill_id.clone(),
        user_token: order.user_token.clone(),
        paid_at: order.paid_at.unwrap_or(grant.since),
    }))
}

/// The `refund.succeeded` of a SUCCESS refund whose revoke is pending.
pub fn refund_event(refund: &Refund) -> Option<Event> {
    let revoke = refund.revoke.as_ref()?;
    if refund.status != RefundStatus::Success || !revoke.is_pending() {
        return None;
    }
    let refunded_total = refund
        .refunded_total_after
        .unwrap_or(refund.refund_amt.get());
    Some(Event::Refund(RefundSucceeded {
        refund_trade_no: refund.refund_trade_no.clone(),
        trade_no: refund.trade_no.clone(),
        transaction_id: refund.transaction_id.clone(),
        refund_amt: refund.refund_amt,
        refunded_total,
        fully_refunded: refunded_total >= refund.total_amt.get(),
    }))
}
