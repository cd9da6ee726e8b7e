//! The business rules. They talk to the store and to outbound services only
//! through the traits declared here, so they know no AWS or HTTP types.

pub mod due;
pub mod entitlements;
pub mod orders;
pub mod platform;
pub mod reconcile;
pub mod refunds;
pub mod ship;
pub mod sync;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::protocol::{Fen, TradeNo, TransactionId, UserToken};
use crate::EpochSecs;

/// An order as the partner registered it and as payment moved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub trade_no: TradeNo,
    pub total_amt: Fen,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_token: Option<UserToken>,
    pub status: OrderStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<TransactionId>,
    pub created_at: EpochSecs,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<EpochSecs>,
    /// The sum of the order's refunds that have not FAILED, in fen.
    pub refunded_amt: i64,
    /// While unpaid: when the sweep next asks the platform about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check_at: Option<EpochSecs>,
    /// How many times the sweep asked the platform about it.
    #[serde(default)]
    pub checks: u32,
    /// Once PAID: the delivery of `payment.succeeded` to the partner's
    /// systems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<entitlements::Delivery>,
    /// The sum of the order's refunds that succeeded, in fen.
    #[serde(default)]
    pub refunds_succeeded_amt: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Registered, not paid yet.
    Created,
    /// Paid and fulfilled: `transaction_id` is set.
    Paid,
    /// Still unpaid at the sweep's maximum age and reported unpaid by a
    /// last `orderquery`: no longer asked about. A payment reported later
    /// is still recorded (the user has paid) and alerted.
    Expired,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::Paid => "PAID",
            Self::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CREATED" => Some(Self::Created),
            "PAID" => Some(Self::Paid),
            "EXPIRED" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// A failure of the store itself (unreachable, throttled, corrupt item):
/// never the caller's fault, always worth a retry.
#[derive(Debug, thiserror::Error)]
#[error("store: {message}")]
pub struct StoreError {
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// What the order registry needs from the store.
#[async_trait]
pub trait OrderStore: Send + Sync {
    /// Stores `order` unless its `tradeNo` exists; returns the existing one
    /// otherwise.
    async fn insert_order(&self, order: &Order) -> Result<Option<Order>, StoreError>;
    async fn get_order(&self, trade_no: &TradeNo) -> Result<Option<Order>, StoreError>;
}
