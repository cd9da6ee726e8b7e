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

pub async fn register(
    store: &dyn OrderStore,
    new: NewOrder,
    now: OffsetDateTime,
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
