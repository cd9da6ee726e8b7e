//! An in-memory store with the DynamoDB store's conditional semantics for
//! orders and refunds, for model-based tests of the domain that need many
//! thousand cases. The DynamoDB store passes the same property tests
//! against moto at a smaller count (`tests/e2e/refund_ledger.rs`).
//!
//! Every method takes the lock once and decides its condition and its
//! effect under it, as one DynamoDB request or transaction does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dingdang::domain::refunds::{
    Applied, Kept, NonceClaim, Refund, RefundStatus, RefundStore, Reserved,
};
use dingdang::domain::{Order, OrderStatus, OrderStore, StoreError};
use dingdang::protocol::{OrderRef, RefundTradeNo, TradeNo};
use dingdang::EpochSecs;

#[derive(Debug, Default)]
struct State {
    orders: HashMap<String, Order>,
    payments: HashMap<String, String>,
    refunds: HashMap<String, Refund>,
    nonces: HashMap<String, String>,
    kept: Vec<(String, Kept, String)>,
}

/// The store; clones share one state.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    /// The notices kept for an operator: `(refundTradeNo, why, payload)`.
    pub fn kept(&self) -> Vec<(String, Kept, String)> {
        self.state.lock().unwrap().kept.clone()
    }
}

#[async_trait]
impl OrderStore for MemoryStore {
    async fn insert_order(&self, order: &Order) -> Result<Option<Order>, StoreError> {
        let mut state = self.state.lock().unwrap();
        if let Some(existing) = state.orders.get(order.trade_no.as_str()) {
            return Ok(Some(existing.clone()));
        }
        if let Some(txn) = &order.transaction_id {
            state
                .payments
                .insert(txn.as_str().to_owned(), order.trade_no.as_str().to_owned());
        }
        state
            .orders
            .insert(order.trade_no.as_str().to_owned(), order.clone());
        Ok(None)
    }

    async fn get_order(&self, trade_no: &TradeNo) -> Result<Option<Order>, StoreError> {
        Ok(self
            .state
            .lock()
            .unwrap()
            .orders
            .get(trade_no.as_str())
            .cloned())
    }
}

#[async_trait]
impl RefundStore for MemoryStore {
    async fn find_order(&self, order: &OrderRef) -> Result<Option<Order>, StoreError> {
        let state = self.state.lock().unwrap();
        let trade_no = match order {
            OrderRef::TradeNo(t) => t.as_str().to_owned(),
            OrderRef::TransactionId(txn) => match state.payments.get(txn.as_str()) {
                Some(t) => t.clone(),
                None => return Ok(None),
            },
        };
        Ok(state.orders.get(&trade_no).cloned())
    }

    async fn get_refund(
        &self,
        refund_trade_no: &RefundTradeNo,
    ) -> Result<Option<Refund>, StoreError> {
        Ok(self
            .state
            .lock()
            .unwrap()
            .refunds
            .get(refund_trade_no.as_str())
            .cloned())
    }

    async fn reserve(&self, refund: &Refund) -> Result<Reserved, StoreError> {
        let mut state = self.state.lock().unwrap();
        if let Some(existing) = state.refunds.get(refund.refund_trade_no.as_str()) {
            return Ok(Reserved::Exists(Box::new(existing.clone())));
        }
        let Some(order) = state.orders.get_mut(refund.trade_no.as_str()) else {
            return Ok(Reserved::NotPaid);
        };
        if order.status != OrderStatus::Paid || order.total_amt != refund.total_amt {
            return Ok(Reserved::NotPaid);
        }
        if order.refunded_amt + refund.refund_amt.get() > order.total_amt.get() {
            return Ok(Reserved::Exceeds);
        }
        order.refunded_amt += refund.refund_amt.get();
        state
            .refunds
            .insert(refund.refund_trade_no.as_str().to_owned(), refund.clone());
        Ok(Reserved::Reserved)
    }

    async fn claim_submission(
        &self,
        refund: &Refund,
        now: EpochSecs,
    ) -> Result<Option<Refund>, StoreError> {
        let mut state = self.state.lock().unwrap();
        let Some(stored) = state.refunds.get_mut(refund.refund_trade_no.as_str()) else {
            return Ok(None);
        };
        if stored.status != RefundStatus::Pending
            || stored.status != refund.status
            || stored.submissions != refund.submissions
        {
            return Ok(None);
        }
        stored.submissions += 1;
        stored.updated_at = now;
        Ok(Some(stored.clone()))
    }

    async fn apply(
        &self,
        before: &Refund,
        after: Option<&Refund>,
        nonce: Option<&NonceClaim>,
        _now: EpochSecs,
    ) -> Result<Applied, StoreError> {
        let mut state = self.state.lock().unwrap();
        if let Some(claim) = nonce {
            if let Some(hash) = state.nonces.get(claim.nonce.as_str()) {
                if hash != &claim.body_hash {
                    return Ok(Applied::NonceReused);
                }
            }
        }
        if let Some(after) = after {
            let stored = state
                .refunds
                .get(before.refund_trade_no.as_str())
                .ok_or_else(|| StoreError::new("refund vanished"))?;
            if stored.status != before.status || stored.submissions != before.submissions {
                return Ok(Applied::Stale);
            }
            if after.status == RefundStatus::Success && before.status != RefundStatus::Success {
                // The order's succeeded refunds must still be what was read.
                let total = after
                    .refunded_total_after
                    .unwrap_or(before.refund_amt.get());
                let order = state
                    .orders
                    .get_mut(before.trade_no.as_str())
                    .ok_or_else(|| StoreError::new("order vanished"))?;
                if order.refunds_succeeded_amt != total - before.refund_amt.get() {
                    return Ok(Applied::Stale);
                }
                order.refunds_succeeded_amt = total;
            }
            if after.status == RefundStatus::Failed && before.status != RefundStatus::Failed {
                let order = state
                    .orders
                    .get_mut(before.trade_no.as_str())
                    .ok_or_else(|| StoreError::new("order vanished"))?;
                if order.refunded_amt < before.refund_amt.get() {
                    return Err(StoreError::new(
                        "order's refundedAmt is below a refund being released",
                    ));
                }
                order.refunded_amt -= before.refund_amt.get();
            }
            state
                .refunds
                .insert(after.refund_trade_no.as_str().to_owned(), after.clone());
        }
        if let Some(claim) = nonce {
            state
                .nonces
                .insert(claim.nonce.as_str().to_owned(), claim.body_hash.clone());
        }
        Ok(Applied::Applied(Box::new(
            after.cloned().unwrap_or_else(|| before.clone()),
        )))
    }

    async fn keep_notice(
        &self,
        refund_trade_no: &RefundTradeNo,
        why: Kept,
        payload: &str,
        _now: EpochSecs,
    ) -> Result<(), StoreError> {
        self.state.lock().unwrap().kept.push((
            refund_trade_no.as_str().to_owned(),
            why,
            payload.to_owned(),
        ));
        Ok(())
    }
}
