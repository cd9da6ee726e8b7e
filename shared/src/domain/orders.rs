//! Orders the partner's skill registers before the user pays.

use rand::distributions::Alphanumeric;
use rand::Rng;
use time::macros::format_description;
use time::OffsetDateTime;

use super::{Order, OrderStatus, OrderStore, StoreError};
use crate::protocol::{Fen, TradeNo, UserToken};

/// A request to register an order.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub trade_no: Option<TradeNo>,
    pub total_amt: Fen,
    pub user_token: Option<UserToken>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Registered {
    Created(Order),
    /// The same order was registered before: returned as stored.
    Existing(Order),
    /// The tradeNo exists with other values.
    Conflict(Order),
}

/// A fresh order number: `yyyymmddHHMMSS` and 16 random letters/digits
/// (30 characters, within the protocol's 32).
pub fn new_trade_no(now: OffsetDateTime) -> TradeNo {
    let stamp = now
        .format(format_description!(
            "[year][month][day][hour][minute][second]"
        ))
        .unwrap_or_default();
    let random: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect();
    TradeNo::parse(&format!("{stamp}{random}")).expect("digits and letters, 30 characters")
}

/// Registers an order; the sweep first asks about it `first_check` after
/// now if no notification has paid it by then.
pub async fn register(
    store: &dyn OrderStore,
    new: NewOrder,
    now: OffsetDateTime,
    first_check: std::time::Duration,
) -> Result<Registered, StoreError> {
    let order = Order {
        trade_no: new.trade_no.unwrap_or_else(|| new_trade_no(now)),
        total_amt: new.total_amt,
        user_token: new.user_token,
        status: OrderStatus::Created,
        transaction_id: None,
        created_at: now.unix_timestamp(),
        paid_at: None,
        refunded_amt: 0,
        next_check_at: Some(now.unix_timestamp() + super::due::secs(first_check)),
        checks: 0,
        grant: None,
        refunds_succeeded_amt: 0,
    };
    Ok(match store.insert_order(&order).await? {
        None => Registered::Created(order),
        Some(existing)
            if existing.total_amt == order.total_amt && existing.user_token == order.user_token =>
        {
            Registered::Existing(existing)
        }
        Some(existing) => Registered::Conflict(existing),
    })
}

/// An order the platform asks us to create (create-order, later revision).
#[derive(Debug, Clone)]
pub struct PlatformOrder {
    pub order: Order,
    pub details: Vec<crate::protocol::OrderItem>,
    /// md5 of the request's significant fields: a retried identical request
    /// maps to the same order.
    pub request_key: String,
    pub nonce: super::refunds::NonceClaim,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformCreated {
    Created(TradeNo),
    /// The same request was seen before: its order number.
    Existing(TradeNo),
    NonceReused,
}

#[async_trait::async_trait]
pub trait PlatformOrderStore: Send + Sync {
    /// Stores the order, the request key and the nonce in one transaction.
    async fn create_for_platform(
        &self,
        order: &PlatformOrder,
        now: i64,
    ) -> Result<PlatformCreated, StoreError>;
}

/// The key of a create-order request: skill, user, items, total and nonce.
pub fn request_key(request: &crate::protocol::CreateOrderRequest) -> String {
    use md5::{Digest, Md5};
    let mut md5 = Md5::new();
    md5.update(request.skill_id.as_str());
    md5.update([0x1f]);
    md5.update(request.user_token.as_str());
    md5.update([0x1f]);
    for item in &request.details {
        md5.update(format!(
            "{}:{}:{};",
            item.item_id.as_str(),
            item.quantity.get(),
            item.amount.get()
        ));
    }
    md5.update([0x1f]);
    md5.update(request.total_amt.get().to_string());
    md5.update([0x1f]);
    md5.update(request.nonce_str.as_str());
    hex::encode(md5.finalize())
}
