//! The sweep's listings: a Query on the status index, page by page.

use async_trait::async_trait;

use super::item::{s, sdk_error, Expr, Item, Read};
use super::orders::{due_key, read_order, UNPAID};
use super::refunds::OPEN_REFUNDS;
use super::{DynamoStore, STATUS_INDEX};
use crate::domain::reconcile::ReconcileStore;
use crate::domain::{Order, StoreError};
use crate::protocol::RefundTradeNo;
use crate::EpochSecs;

impl DynamoStore {
    /// Items of `partition` whose due time is within `[from, to]`, oldest
    /// first, at most `limit`.
    async fn due(
        &self,
        partition: &str,
        from: EpochSecs,
        to: EpochSecs,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let expr = Expr::default()
                .value(":pk", s(partition))
                .value(":from", s(due_key(from.max(0))))
                .value(":to", s(due_key(to.max(0))));
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(STATUS_INDEX)
                .key_condition_expression("gsi1pk = :pk AND gsi1sk BETWEEN :from AND :to")
                .set_expression_attribute_values(Some(expr.values))
                .limit(i32::try_from((limit - items.len()).min(100)).unwrap_or(100))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("query due items", e))?;
            items.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() || items.len() >= limit {
                return Ok(items);
            }
        }
    }
}

#[async_trait]
impl ReconcileStore for DynamoStore {
    async fn due_orders(
        &self,
        from: EpochSecs,
        to: EpochSecs,
        limit: usize,
    ) -> Result<Vec<Order>, StoreError> {
        self.due(UNPAID, from, to, limit)
            .await?
            .iter()
            .map(read_order)
            .collect()
    }

    async fn due_refunds(
        &self,
        from: EpochSecs,
        to: EpochSecs,
        limit: usize,
    ) -> Result<Vec<RefundTradeNo>, StoreError> {
        let items = self.due(OPEN_REFUNDS, from, to, limit).await?;
        items
            .iter()
            .map(|item| Read(item).parsed("refundTradeNo", RefundTradeNo::parse))
            .collect()
    }
}
