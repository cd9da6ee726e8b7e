//! The sweep's side of the due index: a Query per shard (never a scan),
//! and the conditional writes that push an item back or expire it.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::try_join_all;

use super::delivery;
use super::due::{due_partition, partitions, DueKind};
use super::item::{key, n, s, sdk_error, Expr, Item, Read};
use super::orders::{checks, due_key, read_order};
use super::{DynamoStore, ORDER, REFUND, STATUS_INDEX};
use crate::domain::entitlements::Target;
use crate::domain::reconcile::{DueItem, ReconcileStore};
use crate::domain::StoreError;
use crate::protocol::{RefundTradeNo, TradeNo};
use crate::EpochSecs;

impl DynamoStore {
    /// Up to `limit` items of `partition` due at or before `now`, soonest
    /// first.
    async fn due_in(
        &self,
        partition: String,
        now: EpochSecs,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let expr = Expr::default()
            .value(":pk", s(partition))
            .value(":now", s(due_key(now.max(0))));
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(STATUS_INDEX)
            .key_condition_expression("gsi1pk = :pk AND gsi1sk <= :now")
            .set_expression_attribute_values(Some(expr.values))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| sdk_error("query due items", e))?;
        Ok(page.items().to_vec())
    }

    /// Moves `pk`'s next check under its shard, while `condition` holds.
    #[allow(clippy::too_many_arguments)]
    async fn reschedule(
        &self,
        pk: Item,
        kind: DueKind,
        id: &str,
        checks: u32,
        at: EpochSecs,
        condition: &str,
        expr: Expr,
    ) -> Result<(), StoreError> {
        let expr = expr
            .value(":pk", s(due_partition(kind, id, self.shards)))
            .value(":sk", s(due_key(at)))
            .value(":at", n(at))
            .value(":checks", n(i64::from(checks)));
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(pk))
            .update_expression(
                "SET gsi1pk = :pk, gsi1sk = :sk, nextCheckAt = :at, checks = :checks",
            )
            .condition_expression(condition)
            .set_expression_attribute_names(Some(expr.names))
            .set_expression_attribute_values(Some(expr.values))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            // Paid, final or gone meanwhile: nothing left to schedule.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(sdk_error("reschedule", err)),
        }
    }
}

fn due_refund(item: &Item) -> Result<DueItem, StoreError> {
    let r = Read(item);
    Ok(DueItem::Refund {
        refund_trade_no: r.parsed("refundTradeNo", RefundTradeNo::parse)?,
        checks: checks(&r)?,
        due: match r.opt_num("nextCheckAt")? {
            Some(at) => at,
            None => r.num("updatedAt")?,
        },
    })
}

fn due_delivery(kind: DueKind, item: &Item) -> Result<DueItem, StoreError> {
    let r = Read(item);
    let (target, prefix) = match kind {
        DueKind::Grant => (Target::Grant(r.parsed("tradeNo", TradeNo::parse)?), "grant"),
        _ => (
            Target::Revoke(r.parsed("refundTradeNo", RefundTradeNo::parse)?),
            "revoke",
        ),
    };
    let delivery = delivery::read(&r, prefix)?
        .ok_or_else(|| StoreError::new(format!("due event without `{prefix}Status`")))?;
    Ok(DueItem::Delivery {
        target,
        attempts: delivery.attempts,
        due: delivery.due_at.unwrap_or(delivery.since),
        since: delivery.since,
    })
}

fn due_order(item: &Item) -> Result<DueItem, StoreError> {
    let mut order = read_order(item)?;
    // Written before next checks were kept: due since it was created.
    order.next_check_at.get_or_insert(order.created_at);
    Ok(DueItem::Order(order))
}

#[async_trait]
impl ReconcileStore for DynamoStore {
    async fn due_items(
        &self,
        kinds: &[DueKind],
        now: EpochSecs,
        per_shard: usize,
    ) -> Result<Vec<DueItem>, StoreError> {
        let queries = kinds.iter().flat_map(|kind| {
            partitions(*kind, self.shards)
                .into_iter()
                .map(move |p| async move {
                    Ok::<_, StoreError>((*kind, self.due_in(p, now, per_shard).await?))
                })
        });
        let mut due = Vec::new();
        for (kind, items) in try_join_all(queries).await? {
            for item in &items {
                due.push(match kind {
                    DueKind::Order => due_order(item)?,
                    DueKind::Refund => due_refund(item)?,
                    DueKind::Grant | DueKind::Revoke => due_delivery(kind, item)?,
                });
            }
        }
        due.sort_by_key(DueItem::due);
        Ok(due)
    }

    async fn oldest_pending(&self, kinds: &[DueKind]) -> Result<Option<EpochSecs>, StoreError> {
        let queries = kinds.iter().flat_map(|kind| {
            partitions(*kind, self.shards)
                .into_iter()
                .map(move |p| async move {
                    Ok::<_, StoreError>((*kind, self.due_in(p, EpochSecs::MAX / 4, 1).await?))
                })
        });
        let mut oldest: Option<EpochSecs> = None;
        for (kind, items) in try_join_all(queries).await? {
            for item in &items {
                if let DueItem::Delivery { since, .. } = due_delivery(kind, item)? {
                    oldest = Some(oldest.map_or(since, |o| o.min(since)));
                }
            }
        }
        Ok(oldest)
    }

    async fn reschedule_order(
        &self,
        trade_no: &TradeNo,
        checks: u32,
        at: EpochSecs,
    ) -> Result<(), StoreError> {
        let expr = Expr::default()
            .name("#status", "status")
            .value(":created", s("CREATED"));
        self.reschedule(
            key(ORDER, trade_no.as_str()),
            DueKind::Order,
            trade_no.as_str(),
            checks,
            at,
            "#status = :created",
            expr,
        )
        .await
    }

    async fn reschedule_refund(
        &self,
        refund_trade_no: &RefundTradeNo,
        checks: u32,
        at: EpochSecs,
    ) -> Result<(), StoreError> {
        let expr = Expr::default()
            .name("#status", "status")
            .value(":pending", s("PENDING"))
            .value(":processing", s("PROCESSING"));
        self.reschedule(
            key(REFUND, refund_trade_no.as_str()),
            DueKind::Refund,
            refund_trade_no.as_str(),
            checks,
            at,
            "#status IN (:pending, :processing)",
            expr,
        )
        .await
    }

    async fn expire_order(&self, trade_no: &TradeNo, now: EpochSecs) -> Result<bool, StoreError> {
        let expr = Expr::default()
            .name("#status", "status")
            .value(":created", s("CREATED"))
            .value(":expired", s("EXPIRED"))
            .value(":now", AttributeValue::N(now.to_string()));
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(ORDER, trade_no.as_str())))
            .update_expression(
                "SET #status = :expired, expiredAt = :now REMOVE gsi1pk, gsi1sk, nextCheckAt",
            )
            .condition_expression("#status = :created AND attribute_not_exists(claimTxn)")
            .set_expression_attribute_names(Some(expr.names))
            .set_expression_attribute_values(Some(expr.values))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(sdk_error("expire order", err)),
        }
    }
}
