//! Orders: registration and lookup.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use super::item::{key, n, s, sdk_error, Item, Read};
use super::{DynamoStore, ORDER};
use crate::domain::{Order, OrderStatus, OrderStore, StoreError};
use crate::protocol::{Fen, TradeNo, TransactionId, UserToken};

/// `gsi1pk` of orders waiting for payment.
pub(crate) const UNPAID: &str = "ORDER#CREATED";

/// `gsi1sk`: a sortable due time.
pub(crate) fn due_key(at: i64) -> String {
    format!("{at:012}")
}

pub(crate) fn order_item(order: &Order) -> Item {
    let mut item = key(ORDER, order.trade_no.as_str());
    item.insert("kind".into(), s("ORDER"));
    item.insert("tradeNo".into(), s(order.trade_no.as_str()));
    item.insert("totalAmt".into(), n(order.total_amt.get()));
    item.insert("status".into(), s(order.status.as_str()));
    item.insert("createdAt".into(), n(order.created_at));
    item.insert("refundedAmt".into(), n(order.refunded_amt));
    if let Some(token) = &order.user_token {
        item.insert("userToken".into(), s(token.as_str()));
    }
    if let Some(txn) = &order.transaction_id {
        item.insert("transactionId".into(), s(txn.as_str()));
    }
    if let Some(at) = order.paid_at {
        item.insert("paidAt".into(), n(at));
    }
    if order.status == OrderStatus::Created {
        item.insert("gsi1pk".into(), s(UNPAID));
        item.insert("gsi1sk".into(), s(due_key(order.created_at)));
    }
    item
}

pub(crate) fn read_order(item: &Item) -> Result<Order, StoreError> {
    let r = Read(item);
    Ok(Order {
        trade_no: r.parsed("tradeNo", TradeNo::parse)?,
        total_amt: Fen::new(r.num("totalAmt")?)
            .map_err(|_| StoreError::new("stored order has an invalid totalAmt"))?,
        user_token: r.opt_parsed("userToken", UserToken::parse)?,
        status: r.parsed("status", |v| OrderStatus::parse(v).ok_or(()))?,
        transaction_id: r.opt_parsed("transactionId", TransactionId::parse)?,
        created_at: r.num("createdAt")?,
        paid_at: r.opt_num("paidAt")?,
        refunded_amt: r.opt_num("refundedAmt")?.unwrap_or(0),
    })
}

#[async_trait]
impl OrderStore for DynamoStore {
    async fn insert_order(&self, order: &Order) -> Result<Option<Order>, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(order_item(order)))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => {
                    let old = e
                        .item()
                        .ok_or_else(|| StoreError::new("condition failed without the old item"))?;
                    read_order(old).map(Some)
                }
                _ => Err(sdk_error("put order", err)),
            },
        }
    }

    async fn get_order(&self, trade_no: &TradeNo) -> Result<Option<Order>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(ORDER, trade_no.as_str())))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("get order", e))?;
        out.item().map(read_order).transpose()
    }
}
