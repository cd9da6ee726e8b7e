//! Orders: registration and lookup.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use super::delivery;
use super::due::{due_partition, DueKind};
use super::item::{key, n, s, sdk_error, Item, Read};
use super::{DynamoStore, ORDER};
use crate::domain::{Order, OrderStatus, OrderStore, StoreError};
use crate::protocol::{Fen, TradeNo, TransactionId, UserToken};

/// `gsi1sk`: a sortable due time.
pub(crate) fn due_key(at: i64) -> String {
    format!("{at:012}")
}

pub(crate) fn order_item(order: &Order, shards: u16) -> Item {
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
    item.insert("checks".into(), n(i64::from(order.checks)));
    if order.refunds_succeeded_amt != 0 {
        item.insert("refundSucceededAmt".into(), n(order.refunds_succeeded_amt));
    }
    if let Some(grant) = &order.grant {
        delivery::write(&mut item, "grant", grant);
    }
    if order.status == OrderStatus::Created {
        let due = order.next_check_at.unwrap_or(order.created_at);
        item.insert("nextCheckAt".into(), n(due));
        item.insert(
            "gsi1pk".into(),
            s(due_partition(
                DueKind::Order,
                order.trade_no.as_str(),
                shards,
            )),
        );
        item.insert("gsi1sk".into(), s(due_key(due)));
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
        next_check_at: r.opt_num("nextCheckAt")?,
        checks: checks(&r)?,
        grant: delivery::read(&r, "grant")?,
        refunds_succeeded_amt: r.opt_num("refundSucceededAmt")?.unwrap_or(0),
    })
}

/// The `checks` attribute (absent: never checked).
pub(crate) fn checks(r: &Read<'_>) -> Result<u32, StoreError> {
    r.opt_num("checks")?
        .map(|c| u32::try_from(c).map_err(|_| StoreError::new("stored `checks` is out of range")))
        .transpose()
        .map(Option::unwrap_or_default)
}

#[async_trait]
impl OrderStore for DynamoStore {
    async fn insert_order(&self, order: &Order) -> Result<Option<Order>, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(order_item(order, self.shards)))
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

#[async_trait]
impl crate::domain::orders::PlatformOrderStore for DynamoStore {
    async fn create_for_platform(
        &self,
        request: &crate::domain::orders::PlatformOrder,
        now: i64,
    ) -> Result<crate::domain::orders::PlatformCreated, StoreError> {
        use crate::domain::orders::PlatformCreated;
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

        use super::item::{failed, nonce_put};

        let mut order = order_item(&request.order, self.shards);
        order.insert(
            "details".into(),
            s(serde_json::to_string(&request.details).unwrap_or_default()),
        );
        let mut created = key(super::CREATE, &request.request_key);
        created.insert("kind".into(), s("CREATE"));
        created.insert("tradeNo".into(), s(request.order.trade_no.as_str()));
        created.insert("createdAt".into(), n(now));
        let put = |item: Item, what: &str| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(|e| StoreError::with_source(format!("build {what}"), e))
        };
        let nonce = &request.nonce;
        let items = vec![
            TransactWriteItem::builder()
                .put(put(created, "create-order key")?)
                .build(),
            TransactWriteItem::builder()
                .put(put(order, "order")?)
                .build(),
            TransactWriteItem::builder()
                .put(nonce_put(
                    &self.table,
                    &nonce.nonce,
                    &nonce.body_hash,
                    nonce.expires,
                    now,
                )?)
                .build(),
        ];
        let Some(reasons) = self.transact(items).await? else {
            return Ok(PlatformCreated::Created(request.order.trade_no.clone()));
        };
        if let Some(old) = reasons.first().filter(|r| failed(r)).and_then(|r| r.item()) {
            return Read(old)
                .parsed("tradeNo", TradeNo::parse)
                .map(PlatformCreated::Existing);
        }
        if reasons.get(2).is_some_and(failed) {
            return Ok(PlatformCreated::NonceReused);
        }
        Err(StoreError::new(
            "create-order transaction cancelled (order number collision or contention)",
        ))
    }
}
