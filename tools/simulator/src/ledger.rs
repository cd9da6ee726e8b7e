//! The platform's books: paid orders and their refunds, and the rules a
//! refund must keep (see the crate documentation).

use std::collections::HashMap;

use dingdang::protocol::{
    Fen, OrderRef, RefundRef, RefundRequest, RefundStatus, RefundTradeNo, RefundTransactionId,
    Revision, TradeNo, TransactionId,
};
use serde_json::{json, Value};

use crate::behaviour::Behaviours;
use crate::serial;

/// A paid order as the simulator holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOrder {
    /// The partner's order number.
    pub trade_no: String,
    /// The platform's payment serial.
    pub transaction_id: String,
    /// Order amount in fen.
    pub total_amt: i64,
}

/// A refund as the simulator holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRefund {
    /// The partner's refund number.
    pub refund_trade_no: String,
    /// The platform's refund serial.
    pub refund_transaction_id: String,
    /// The partner's order number.
    pub trade_no: String,
    /// The platform's payment serial.
    pub transaction_id: String,
    /// Order amount in fen.
    pub total_amt: i64,
    /// Refund amount in fen.
    pub refund_amt: i64,
    /// `PROCESSING`, then `SUCCESS` or `FAIL`.
    pub status: RefundStatus,
}

impl SimOrder {
    /// As the admin API shows it: `tradeNo`, `transactionId`, `totalAmt`.
    pub fn to_json(&self) -> Value {
        json!({
            "tradeNo": self.trade_no,
            "transactionId": self.transaction_id,
            "totalAmt": self.total_amt,
        })
    }
}

impl SimRefund {
    /// As the admin API shows it, with the protocol's field names and
    /// `refundStatus` `PROCESSING`, `SUCCESS` or `FAIL`.
    pub fn to_json(&self) -> Value {
        json!({
            "refundTradeNo": self.refund_trade_no,
            "refundTransactionId": self.refund_transaction_id,
            "tradeNo": self.trade_no,
            "transactionId": self.transaction_id,
            "totalAmt": self.total_amt,
            "refundAmt": self.refund_amt,
            "refundStatus": self.status.to_string(),
        })
    }
}

pub(crate) struct Order {
    pub(crate) trade_no: TradeNo,
    pub(crate) transaction_id: TransactionId,
    pub(crate) total_amt: Fen,
}

pub(crate) struct Refund {
    pub(crate) trade_no: TradeNo,
    pub(crate) transaction_id: TransactionId,
    pub(crate) refund_trade_no: RefundTradeNo,
    pub(crate) refund_transaction_id: RefundTransactionId,
    pub(crate) total_amt: Fen,
    pub(crate) refund_amt: Fen,
    pub(crate) status: RefundStatus,
    /// The revision of the request that created it, for its notification.
    pub(crate) revision: Revision,
}

impl Refund {
    pub(crate) fn public(&self) -> SimRefund {
        SimRefund {
            refund_trade_no: self.refund_trade_no.to_string(),
            refund_transaction_id: self.refund_transaction_id.to_string(),
            trade_no: self.trade_no.to_string(),
            transaction_id: self.transaction_id.to_string(),
            total_amt: self.total_amt.get(),
            refund_amt: self.refund_amt.get(),
            status: self.status,
        }
    }
}

#[derive(Default)]
pub(crate) struct Ledger {
    /// By tradeNo.
    pub(crate) orders: HashMap<String, Order>,
    /// transactionId → tradeNo.
    pub(crate) by_transaction: HashMap<String, String>,
    /// By refundTradeNo.
    pub(crate) refunds: HashMap<String, Refund>,
    /// refundTransactionId → refundTradeNo.
    pub(crate) by_refund_transaction: HashMap<String, String>,
    /// The bad platform's rules, under the same lock: a request chooses
    /// and consumes one atomically with its effect on the books.
    pub(crate) behaviours: Behaviours,
}

/// What the platform makes of a refund request it can accept.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RefundCheck {
    /// The same refund (`refundTradeNo`, order and amount) again: the
    /// recorded one is answered.
    Existing,
    /// A new refund of this order, within what is left of it.
    New {
        trade_no: TradeNo,
        transaction_id: TransactionId,
        total_amt: Fen,
    },
}

impl Ledger {
    pub(crate) fn order(&self, order: &OrderRef) -> Option<&Order> {
        match order {
            OrderRef::TradeNo(t) => self.orders.get(t.as_str()),
            OrderRef::TransactionId(t) => self
                .by_transaction
                .get(t.as_str())
                .and_then(|trade_no| self.orders.get(trade_no)),
        }
    }

    pub(crate) fn refund(&self, refund: &RefundRef) -> Option<&Refund> {
        match refund {
            RefundRef::RefundTradeNo(t) => self.refunds.get(t.as_str()),
            RefundRef::RefundTransactionId(t) => self
                .by_refund_transaction
                .get(t.as_str())
                .and_then(|r| self.refunds.get(r)),
        }
    }

    /// Records `trade_no` as paid with a new `transactionId`, or returns the
    /// serial of the same paid order again.
    pub(crate) fn record_payment(
        &mut self,
        trade_no: TradeNo,
        total_amt: Fen,
    ) -> Result<TransactionId, String> {
        if let Some(order) = self.orders.get(trade_no.as_str()) {
            return if order.total_amt == total_amt {
                Ok(order.transaction_id.clone())
            } else {
                Err("tradeNo already paid with another amount".to_owned())
            };
        }
        let transaction_id = TransactionId::parse(&serial("TX")).expect("serial is valid");
        self.by_transaction
            .insert(transaction_id.to_string(), trade_no.to_string());
        self.orders.insert(
            trade_no.to_string(),
            Order {
                trade_no,
                transaction_id: transaction_id.clone(),
                total_amt,
            },
        );
        Ok(transaction_id)
    }

    /// Whether a refund request can be accepted, by the platform's rules
    /// (see the crate documentation); the `retMsg` of its refusal when not.
    pub(crate) fn check_refund(
        &self,
        request: &RefundRequest,
    ) -> Result<RefundCheck, &'static str> {
        let order = request
            .order_ref()
            .and_then(|o| self.order(&o))
            .ok_or("order not found")?;
        if request.total_amt != order.total_amt {
            return Err("totalAmt does not match order");
        }
        if let Some(existing) = self.refunds.get(request.refund_trade_no.as_str()) {
            return if existing.transaction_id == order.transaction_id
                && existing.refund_amt == request.refund_amt
            {
                Ok(RefundCheck::Existing)
            } else {
                Err("refundTradeNo already used")
            };
        }
        let committed = self.committed(&order.transaction_id);
        if committed + i128::from(request.refund_amt.get()) > i128::from(order.total_amt.get()) {
            return Err("refund exceeds order");
        }
        Ok(RefundCheck::New {
            trade_no: order.trade_no.clone(),
            transaction_id: order.transaction_id.clone(),
            total_amt: order.total_amt,
        })
    }

    /// Records a new refund.
    pub(crate) fn insert_refund(&mut self, refund: Refund) {
        self.by_refund_transaction.insert(
            refund.refund_transaction_id.to_string(),
            refund.refund_trade_no.to_string(),
        );
        self.refunds
            .insert(refund.refund_trade_no.to_string(), refund);
    }

    /// Refunded or being refunded (not `FAIL`) on the order.
    pub(crate) fn committed(&self, transaction_id: &TransactionId) -> i128 {
        self.refunds
            .values()
            .filter(|r| &r.transaction_id == transaction_id && r.status != RefundStatus::Fail)
            .map(|r| i128::from(r.refund_amt.get()))
            .sum()
    }
}
