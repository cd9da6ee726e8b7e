//! The entitlements outbox on the table: an order's grant and a refund's
//! revoke, moved by conditional writes, and their place in the due index
//! while pending.

use async_trait::async_trait;

use super::due::{due_partition, DueKind};
use super::item::{key, n, s, sdk_error, Expr, Item};
use super::orders::due_key;
use super::{DynamoStore, ORDER, REFUND};
use crate::domain::entitlements::{OutboxStore, Target};
use crate::domain::refunds::{Refund, RefundStore};
use crate::domain::{Order, OrderStore, StoreError};
use crate::protocol::{RefundTradeNo, TradeNo};
use crate::EpochSecs;

/// The item, the attribute prefix and the index kind of `target`.
fn place(target: &Target) -> (Item, &'static str, DueKind, &str) {
    match target {
        Target::Grant(t) => (key(ORDER, t.as_str()), "grant", DueKind::Grant, t.as_str()),
        Target::Revoke(r) => (
            key(REFUND, r.as_str()),
            "revoke",
            DueKind::Revoke,
            r.as_str(),
        ),
    }
}

fn condition_failed<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

impl DynamoStore {
    /// One conditional update of `pk`; `false` when the condition failed.
    async fn update_if(
        &self,
        pk: Item,
        update: String,
        condition: &str,
        expr: Expr,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(pk))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names((!expr.names.is_empty()).then_some(expr.names))
            .set_expression_attribute_values(Some(expr.values))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(err) if condition_failed(&err) => Ok(false),
            Err(err) => Err(sdk_error("outbox update", err)),
        }
    }

    /// The refunds recorded for an order (the order lists their numbers).
    pub async fn refunds_of_order(&self, trade_no: &TradeNo) -> Result<Vec<Refund>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(ORDER, trade_no.as_str())))
            .projection_expression("refundTradeNos")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("get order refunds", e))?;
        let mut numbers: Vec<String> = out
            .item()
            .and_then(|i| i.get("refundTradeNos"))
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default();
        numbers.sort();
        let mut refunds = Vec::new();
        for no in numbers {
            let no = RefundTradeNo::parse(&no)
                .map_err(|_| StoreError::new("stored refundTradeNos holds an invalid number"))?;
            if let Some(refund) = self.get_refund(&no).await? {
                refunds.push(refund);
            }
        }
        Ok(refunds)
    }
}

#[async_trait]
impl OutboxStore for DynamoStore {
    async fn order(&self, trade_no: &TradeNo) -> Result<Option<Order>, StoreError> {
        self.get_order(trade_no).await
    }

    async fn refund(&self, refund_trade_no: &RefundTradeNo) -> Result<Option<Refund>, StoreError> {
        self.get_refund(refund_trade_no).await
    }

    async fn mark_delivered(&self, target: &Target, now: EpochSecs) -> Result<bool, StoreError> {
        let (pk, p, _, _) = place(target);
        let expr = Expr::default()
            .value(":pending", s("PENDING"))
            .value(":delivered", s("DELIVERED"))
            .value(":now", n(now));
        self.update_if(
            pk,
            format!(
                "SET {p}Status = :delivered, {p}DeliveredAt = :now REMOVE {p}DueAt, gsi1pk, gsi1sk"
            ),
            &format!("{p}Status = :pending"),
            expr,
        )
        .await
    }

    async fn reschedule_delivery(
        &self,
        target: &Target,
        attempts: u32,
        at: EpochSecs,
    ) -> Result<(), StoreError> {
        let (pk, p, kind, id) = place(target);
        let expr = Expr::default()
            .value(":pending", s("PENDING"))
            .value(":attempts", n(i64::from(attempts)))
            .value(":at", n(at))
            .value(":pk", s(due_partition(kind, id, self.shards)))
            .value(":sk", s(due_key(at)));
        self.update_if(
            pk,
            format!("SET {p}Attempts = :attempts, {p}DueAt = :at, gsi1pk = :pk, gsi1sk = :sk"),
            &format!("{p}Status = :pending"),
            expr,
        )
        .await
        .map(|_| ())
    }

    async fn redeliver(&self, trade_no: &TradeNo, now: EpochSecs) -> Result<usize, StoreError> {
        let pending = |target: &Target, status: &str| {
            let (pk, p, kind, id) = place(target);
            let expr = Expr::default()
                .name("#status", "status")
                .value(":status", s(status))
                .value(":pending", s("PENDING"))
                .value(":now", n(now))
                .value(":zero", n(0))
                .value(":pk", s(due_partition(kind, id, self.shards)))
                .value(":sk", s(due_key(now)));
            (
                pk,
                format!(
                    "SET {p}Status = :pending, {p}Since = if_not_exists({p}Since, :now), \
                     {p}DueAt = :now, {p}Attempts = :zero, gsi1pk = :pk, gsi1sk = :sk \
                     REMOVE {p}DeliveredAt"
                ),
                expr,
            )
        };
        let mut count = 0;
        let (pk, update, expr) = pending(&Target::Grant(trade_no.clone()), "PAID");
        if self
            .update_if(pk, update, "#status = :status", expr)
            .await?
        {
            count += 1;
        }
        for refund in self.refunds_of_order(trade_no).await? {
            let (pk, update, expr) = pending(&Target::Revoke(refund.refund_trade_no), "SUCCESS");
            if self
                .update_if(pk, update, "#status = :status", expr)
                .await?
            {
                count += 1;
            }
        }
        Ok(count)
    }
}
