//! Refunds: the reservation on the order and the status transitions.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::delivery;
use super::due::{due_partition, DueKind};
use super::item::{failed, key, n, nonce_put, s, sdk_error, Expr, Item, Read};
use super::orders::{checks, due_key};
use super::{DynamoStore, PAYMENT, REFUND, UNMATCHED};
use crate::domain::refunds::{
    Applied, Kept, NonceClaim, Refund, RefundStatus, RefundStore, Reserved,
};
use crate::domain::{Order, OrderStore, StoreError};
use crate::protocol::{
    Fen, OrderItem, OrderRef, RefundDesc, RefundTradeNo, RefundTransactionId, TradeNo,
    TransactionId,
};
use crate::EpochSecs;

fn refund_item(refund: &Refund, shards: u16) -> Item {
    let mut item = key(REFUND, refund.refund_trade_no.as_str());
    item.insert("kind".into(), s("REFUND"));
    item.insert("refundTradeNo".into(), s(refund.refund_trade_no.as_str()));
    item.insert("tradeNo".into(), s(refund.trade_no.as_str()));
    item.insert("transactionId".into(), s(refund.transaction_id.as_str()));
    item.insert("totalAmt".into(), n(refund.total_amt.get()));
    item.insert("refundAmt".into(), n(refund.refund_amt.get()));
    item.insert("status".into(), s(refund.status.as_str()));
    item.insert("submissions".into(), n(i64::from(refund.submissions)));
    item.insert("createdAt".into(), n(refund.created_at));
    item.insert("updatedAt".into(), n(refund.updated_at));
    if let Some(desc) = &refund.refund_desc {
        item.insert("refundDesc".into(), s(desc.as_str()));
    }
    if let Some(details) = &refund.refund_details {
        item.insert(
            "refundDetails".into(),
            s(serde_json::to_string(details).unwrap_or_default()),
        );
    }
    if let Some(id) = &refund.refund_transaction_id {
        item.insert("refundTransactionId".into(), s(id.as_str()));
    }
    if let Some(reason) = &refund.fail_reason {
        item.insert("failReason".into(), s(reason));
    }
    item.insert("checks".into(), n(i64::from(refund.checks)));
    item.insert("nextCheckAt".into(), n(refund.next_check_at));
    if let Some(total) = refund.refunded_total_after {
        item.insert("refundedTotalAfter".into(), n(total));
    }
    if let Some(revoke) = &refund.revoke {
        delivery::write(&mut item, "revoke", revoke);
        if let (true, Some(due)) = (revoke.is_pending(), revoke.due_at) {
            item.insert(
                "gsi1pk".into(),
                s(due_partition(
                    DueKind::Revoke,
                    refund.refund_trade_no.as_str(),
                    shards,
                )),
            );
            item.insert("gsi1sk".into(), s(due_key(due)));
        }
    }
    if refund.status.is_open() {
        item.insert(
            "gsi1pk".into(),
            s(due_partition(
                DueKind::Refund,
                refund.refund_trade_no.as_str(),
                shards,
            )),
        );
        item.insert("gsi1sk".into(), s(due_key(refund.next_check_at)));
    }
    item
}

fn amount(r: &Read<'_>, name: &str) -> Result<Fen, StoreError> {
    Fen::new(r.num(name)?)
        .map_err(|_| StoreError::new(format!("stored `{name}` is not a positive amount")))
}

pub(crate) fn read_refund(item: &Item) -> Result<Refund, StoreError> {
    let r = Read(item);
    let refund_details = r
        .opt_str("refundDetails")
        .map(serde_json::from_str::<Vec<OrderItem>>)
        .transpose()
        .map_err(|e| StoreError::with_source("stored refundDetails", e))?;
    Ok(Refund {
        refund_trade_no: r.parsed("refundTradeNo", RefundTradeNo::parse)?,
        trade_no: r.parsed("tradeNo", TradeNo::parse)?,
        transaction_id: r.parsed("transactionId", TransactionId::parse)?,
        total_amt: amount(&r, "totalAmt")?,
        refund_amt: amount(&r, "refundAmt")?,
        refund_desc: r.opt_parsed("refundDesc", RefundDesc::parse)?,
        refund_details,
        status: r.parsed("status", |v| RefundStatus::parse(v).ok_or(()))?,
        refund_transaction_id: r.opt_parsed("refundTransactionId", RefundTransactionId::parse)?,
        fail_reason: r.opt_str("failReason").map(str::to_owned),
        // Records written before submissions were counted had one.
        submissions: match r.opt_num("submissions")? {
            None => 1,
            Some(count) => u32::try_from(count)
                .map_err(|_| StoreError::new("stored `submissions` is out of range"))?,
        },
        // Records written before next checks were kept: due since written.
        next_check_at: match r.opt_num("nextCheckAt")? {
            Some(at) => at,
            None => r.num("updatedAt")?,
        },
        checks: checks(&r)?,
        revoke: delivery::read(&r, "revoke")?,
        refunded_total_after: r.opt_num("refundedTotalAfter")?,
        created_at: r.num("createdAt")?,
        updated_at: r.num("updatedAt")?,
    })
}

fn build<T, E: std::error::Error + Send + Sync + 'static>(
    what: &str,
    built: Result<T, E>,
) -> Result<T, StoreError> {
    built.map_err(|e| StoreError::with_source(format!("build {what}"), e))
}

#[async_trait]
impl RefundStore for DynamoStore {
    async fn find_order(&self, order: &OrderRef) -> Result<Option<Order>, StoreError> {
        let trade_no = match order {
            OrderRef::TradeNo(trade_no) => trade_no.clone(),
            OrderRef::TransactionId(txn) => {
                let out = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(key(PAYMENT, txn.as_str())))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| sdk_error("get payment", e))?;
                match out.item() {
                    Some(item) => Read(item).parsed("tradeNo", TradeNo::parse)?,
                    None => return Ok(None),
                }
            }
        };
        self.get_order(&trade_no).await
    }

    async fn get_refund(
        &self,
        refund_trade_no: &RefundTradeNo,
    ) -> Result<Option<Refund>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(REFUND, refund_trade_no.as_str())))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("get refund", e))?;
        out.item().map(read_refund).transpose()
    }

    async fn reserve(&self, refund: &Refund) -> Result<Reserved, StoreError> {
        let Some(limit) = refund
            .total_amt
            .get()
            .checked_sub(refund.refund_amt.get())
            .filter(|l| *l >= 0)
        else {
            return Ok(Reserved::Exceeds);
        };
        let expr = Expr::default()
            .name("#status", "status")
            .value(":paid", s("PAID"))
            .value(":amt", n(refund.refund_amt.get()))
            .value(":zero", n(0))
            .value(":limit", n(limit))
            .value(":total", n(refund.total_amt.get()))
            .value(
                ":no",
                aws_sdk_dynamodb::types::AttributeValue::Ss(vec![refund
                    .refund_trade_no
                    .as_str()
                    .to_owned()]),
            );
        let order = build(
            "order reservation",
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(super::ORDER, refund.trade_no.as_str())))
                .update_expression(
                    "SET refundedAmt = if_not_exists(refundedAmt, :zero) + :amt ADD refundTradeNos :no",
                )
                .condition_expression(
                    "#status = :paid AND totalAmt = :total \
                     AND (attribute_not_exists(refundedAmt) OR refundedAmt <= :limit)",
                )
                .set_expression_attribute_names(Some(expr.names))
                .set_expression_attribute_values(Some(expr.values))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build(),
        )?;
        let record = build(
            "refund put",
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(refund_item(refund, self.shards)))
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build(),
        )?;
        let items = vec![
            TransactWriteItem::builder().update(order).build(),
            TransactWriteItem::builder().put(record).build(),
        ];
        let Some(reasons) = self.transact(items).await? else {
            return Ok(Reserved::Reserved);
        };
        if let Some(existing) = reasons.get(1).filter(|r| failed(r)).and_then(|r| r.item()) {
            return read_refund(existing).map(|r| Reserved::Exists(Box::new(r)));
        }
        match reasons.first().filter(|r| failed(r)) {
            Some(r)
                if r.item()
                    .and_then(|i| i.get("status"))
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|v| v == "PAID") =>
            {
                Ok(Reserved::Exceeds)
            }
            Some(_) => Ok(Reserved::NotPaid),
            None => Err(StoreError::new(
                "refund reservation cancelled by a concurrent transaction",
            )),
        }
    }

    async fn claim_submission(
        &self,
        refund: &Refund,
        now: EpochSecs,
    ) -> Result<Option<Refund>, StoreError> {
        let mut claimed = refund.clone();
        claimed.submissions = refund.submissions.saturating_add(1);
        claimed.updated_at = now;
        let (condition, expr) = unchanged(refund);
        let expr = expr
            .value(":pending", s(RefundStatus::Pending.as_str()))
            .value(":next", n(i64::from(claimed.submissions)))
            .value(":now", n(now));
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(REFUND, refund.refund_trade_no.as_str())))
            .update_expression("SET submissions = :next, updatedAt = :now")
            .condition_expression(format!("#status = :pending AND {condition}"))
            .set_expression_attribute_names(Some(expr.names))
            .set_expression_attribute_values(Some(expr.values))
            .send()
            .await;
        match out {
            Ok(_) => Ok(Some(claimed)),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(err) => Err(sdk_error("claim refund submission", err)),
        }
    }

    async fn apply(
        &self,
        before: &Refund,
        after: Option<&Refund>,
        nonce: Option<&NonceClaim>,
        now: EpochSecs,
    ) -> Result<Applied, StoreError> {
        let mut items = Vec::new();
        if let Some(after) = after {
            let (condition, expr) = unchanged(before);
            let record = build(
                "refund transition",
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(refund_item(after, self.shards)))
                    .condition_expression(condition)
                    .set_expression_attribute_names(Some(expr.names))
                    .set_expression_attribute_values(Some(expr.values))
                    .build(),
            )?;
            items.push(TransactWriteItem::builder().put(record).build());
            if after.status == RefundStatus::Success && before.status != RefundStatus::Success {
                // The order's succeeded refunds, as read when deciding.
                let total = after
                    .refunded_total_after
                    .unwrap_or(before.refund_amt.get());
                let old = total - before.refund_amt.get();
                let expr = Expr::default()
                    .value(":new", n(total))
                    .value(":old", n(old));
                let condition = if old == 0 {
                    "attribute_not_exists(refundSucceededAmt) OR refundSucceededAmt = :old"
                } else {
                    "refundSucceededAmt = :old"
                };
                let succeeded = build(
                    "order refunds succeeded",
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(super::ORDER, before.trade_no.as_str())))
                        .update_expression("SET refundSucceededAmt = :new")
                        .condition_expression(condition)
                        .set_expression_attribute_values(Some(expr.values))
                        .build(),
                )?;
                items.push(TransactWriteItem::builder().update(succeeded).build());
            }
            if after.status == RefundStatus::Failed && before.status != RefundStatus::Failed {
                let expr = Expr::default().value(":amt", n(before.refund_amt.get()));
                let release = build(
                    "order release",
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(super::ORDER, before.trade_no.as_str())))
                        .update_expression("SET refundedAmt = refundedAmt - :amt")
                        .condition_expression("refundedAmt >= :amt")
                        .set_expression_attribute_values(Some(expr.values))
                        .build(),
                )?;
                items.push(TransactWriteItem::builder().update(release).build());
            }
        }
        let nonce_at = items.len();
        if let Some(claim) = nonce {
            items.push(
                TransactWriteItem::builder()
                    .put(nonce_put(
                        &self.table,
                        &claim.nonce,
                        &claim.body_hash,
                        claim.expires,
                        now,
                    )?)
                    .build(),
            );
        }
        let applied = Applied::Applied(Box::new(after.unwrap_or(before).clone()));
        if items.is_empty() {
            return Ok(applied);
        }
        let Some(reasons) = self.transact(items).await? else {
            return Ok(applied);
        };
        if nonce.is_some() && reasons.get(nonce_at).is_some_and(failed) {
            return Ok(Applied::NonceReused);
        }
        if after.is_some() && reasons.first().is_some_and(failed) {
            return Ok(Applied::Stale);
        }
        if after.is_some_and(|a| a.status == RefundStatus::Success)
            && reasons.get(1).is_some_and(failed)
        {
            // Another refund of the order succeeded meanwhile: decide again.
            return Ok(Applied::Stale);
        }
        if after.is_some() && reasons.get(1).is_some_and(failed) {
            return Err(StoreError::new(
                "order's refundedAmt is below a refund being released",
            ));
        }
        Ok(Applied::Stale)
    }

    async fn keep_notice(
        &self,
        refund_trade_no: &RefundTradeNo,
        why: Kept,
        payload: &str,
        now: EpochSecs,
    ) -> Result<(), StoreError> {
        let id = match why {
            Kept::UnknownRefund => refund_trade_no.as_str().to_owned(),
            // One item per distinct notice: a redelivery overwrites its own.
            other => format!(
                "{}#{}#{}",
                refund_trade_no.as_str(),
                other.as_str(),
                crate::domain::ship::body_hash(payload.as_bytes())
            ),
        };
        let mut item = key(UNMATCHED, &id);
        item.insert("kind".into(), s("UNMATCHED"));
        item.insert("reason".into(), s(why.as_str()));
        item.insert("refundTradeNo".into(), s(refund_trade_no.as_str()));
        item.insert("payload".into(), s(payload));
        item.insert("receivedAt".into(), n(now));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk_error("put kept notice", e))?;
        Ok(())
    }
}

/// The condition that a stored refund still has `refund`'s status and
/// submission count (records written before the count existed had one).
fn unchanged(refund: &Refund) -> (String, Expr) {
    let expr = Expr::default()
        .name("#status", "status")
        .value(":current", s(refund.status.as_str()))
        .value(":subs", n(i64::from(refund.submissions)));
    let condition = if refund.submissions == 1 {
        "#status = :current AND (submissions = :subs OR attribute_not_exists(submissions))"
    } else {
        "#status = :current AND submissions = :subs"
    };
    (condition.to_owned(), expr)
}
