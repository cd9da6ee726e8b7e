//! The ship notification claim: order, idempotency record, nonce and
//! payment in one `TransactWriteItems`, with the old items returned on
//! failure so that a duplicate costs one round trip too.
//!
//! The payment item `PAYMENT#<transactionId>` never expires: it binds the
//! `transactionId` to the one order it paid, so that the transactionId is
//! refused for any other order also after its idempotency record
//! `TXN#<transactionId>` (which has a TTL) is gone.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::due::{due_partition, DueKind};
use super::item::{failed, key, n, nonce_put, s, sdk_error, Expr, Item, Read};
use super::orders::due_key;
use super::{DynamoStore, ORDER, PAYMENT, TXN, UNMATCHED};
use crate::domain::ship::{
    ClaimResult, Fingerprint, IdempotencyRecord, OrderMismatch, RecordState, ShipClaim, ShipStore,
    UnmatchedShip,
};
use crate::domain::StoreError;
use crate::protocol::{Fen, Reply, ShipNotify, TradeNo, TransactionId, UserToken};
use crate::EpochSecs;

const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETE: &str = "COMPLETE";

/// The order part of a claim.
fn order_update(claim: &ShipClaim<'_>, table: &str, shards: u16) -> Result<Update, StoreError> {
    let notice = claim.notice;
    let mut set = vec![
        "totalAmt = if_not_exists(totalAmt, :amt)",
        "tradeNo = if_not_exists(tradeNo, :trade)",
        "createdAt = if_not_exists(createdAt, :now)",
        "kind = :order",
    ];
    let mut expr = Expr::default()
        .name("#status", "status")
        .value(":amt", n(notice.total_amt.get()))
        .value(":trade", s(notice.trade_no.as_str()))
        .value(":now", n(claim.now))
        .value(":order", s("ORDER"))
        .value(":txn", s(notice.transaction_id.as_str()))
        .value(":created", s("CREATED"));
    if claim.accept_expired {
        expr = expr.value(":expired", s("EXPIRED"));
    }
    // The order keeps the userToken it has; a notification carrying another
    // one is refused only while `check_user_token` is set, to be noticed.
    let mut same_user = "";
    if let Some(token) = &notice.user_token {
        set.push("userToken = if_not_exists(userToken, :token)");
        expr = expr.value(":token", s(token.as_str()));
        if claim.check_user_token {
            same_user = " AND (attribute_not_exists(userToken) OR userToken = :token)";
        }
    }
    // PAID, and its grant pending in the outbox: due in the index when the
    // stream has not delivered it by then. An order still unpaid at the
    // sweep's maximum age (EXPIRED) is paid all the same: the user paid.
    set.extend([
        "#status = :paid",
        "transactionId = :txn",
        "paidAt = :now",
        "grantStatus = :pending",
        "grantSince = :now",
        "grantDueAt = :grantdue",
        "grantAttempts = :zero",
        "gsi1pk = :grantpk",
        "gsi1sk = :grantsk",
    ]);
    expr = expr
        .value(":paid", s("PAID"))
        .value(":pending", s("PENDING"))
        .value(":grantdue", n(claim.grant_due))
        .value(":zero", n(0))
        .value(
            ":grantpk",
            s(due_partition(
                DueKind::Grant,
                notice.trade_no.as_str(),
                shards,
            )),
        )
        .value(":grantsk", s(due_key(claim.grant_due)));
    let remove = " REMOVE claimTxn, claimUntil, nextCheckAt";
    // A claim left by a release that called the webhook inside the request
    // is honoured until it expires.
    let unpaid = if claim.accept_expired {
        "#status IN (:created, :expired)"
    } else {
        "#status = :created"
    };
    let payable = format!(
        "({unpaid} AND totalAmt = :amt \
         AND (attribute_not_exists(claimTxn) OR claimTxn = :txn OR claimUntil < :now){same_user})"
    );
    let condition = if claim.accept_unknown_orders {
        format!("attribute_not_exists(pk) OR {payable}")
    } else {
        payable
    };
    Update::builder()
        .table_name(table)
        .set_key(Some(key(ORDER, notice.trade_no.as_str())))
        .update_expression(format!("SET {}{remove}", set.join(", ")))
        .condition_expression(condition)
        .set_expression_attribute_names(Some(expr.names))
        .set_expression_attribute_values(Some(expr.values))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(|e| StoreError::with_source("build order update", e))
}

fn record_put(claim: &ShipClaim<'_>, table: &str) -> Result<Put, StoreError> {
    let notice = claim.notice;
    let mut item = key(TXN, notice.transaction_id.as_str());
    item.insert("kind".into(), s("TXN"));
    item.insert("tradeNo".into(), s(notice.trade_no.as_str()));
    item.insert("fingerprint".into(), s(claim.fingerprint.as_str()));
    item.insert("ttl".into(), n(claim.record_expires));
    item.insert("status".into(), s(COMPLETE));
    item.insert("reply".into(), s(reply_json(&claim.reply)));
    let expr = Expr::default()
        .name("#ttl", "ttl")
        .name("#status", "status")
        .name("#until", "until")
        .value(":now", n(claim.now))
        .value(":inprogress", s(IN_PROGRESS));
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(
            "attribute_not_exists(pk) OR #ttl < :now OR (#status = :inprogress AND #until < :now)",
        )
        .set_expression_attribute_names(Some(expr.names))
        .set_expression_attribute_values(Some(expr.values))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(|e| StoreError::with_source("build record put", e))
}

/// `PAYMENT#<transactionId>` → the one order it pays, for ever (no TTL):
/// written by the claim, refused when it names another order. Refunds that
/// name the payment rather than the order read it too. `paidAt` is set once
/// the order is PAID.
fn payment_update(notice: &ShipNotify, now: EpochSecs, table: &str) -> Result<Update, StoreError> {
    let set = [
        "#kind = :payment",
        "tradeNo = :trade",
        "totalAmt = if_not_exists(totalAmt, :amt)",
        "claimedAt = if_not_exists(claimedAt, :now)",
        "paidAt = if_not_exists(paidAt, :now)",
    ];
    let expr = Expr::default()
        .name("#kind", "kind")
        .value(":payment", s("PAYMENT"))
        .value(":trade", s(notice.trade_no.as_str()))
        .value(":amt", n(notice.total_amt.get()))
        .value(":now", n(now));
    Update::builder()
        .table_name(table)
        .set_key(Some(key(PAYMENT, notice.transaction_id.as_str())))
        .update_expression(format!("SET {}", set.join(", ")))
        .condition_expression("attribute_not_exists(pk) OR tradeNo = :trade")
        .set_expression_attribute_names(Some(expr.names))
        .set_expression_attribute_values(Some(expr.values))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(|e| StoreError::with_source("build payment update", e))
}

fn reply_json(reply: &Reply) -> String {
    String::from_utf8(reply.to_bytes()).unwrap_or_default()
}

fn read_record(item: &Item) -> Result<IdempotencyRecord, StoreError> {
    let r = Read(item);
    let fingerprint = Fingerprint::from_stored(r.str("fingerprint")?.to_owned());
    let state = match r.str("status")? {
        IN_PROGRESS => RecordState::InProgress {
            until: r.num("until")?,
        },
        COMPLETE => RecordState::Complete {
            reply: serde_json::from_str(r.str("reply")?)
                .map_err(|e| StoreError::with_source("stored reply is not a reply", e))?,
        },
        _ => return Err(StoreError::new("idempotency record has an unknown status")),
    };
    Ok(IdempotencyRecord { fingerprint, state })
}

fn read_mismatch(old: Option<&Item>, claim: &ShipClaim<'_>) -> Result<OrderMismatch, StoreError> {
    let Some(item) = old else {
        return Ok(OrderMismatch::Unknown);
    };
    let r = Read(item);
    let ours = Fen::new(r.num("totalAmt")?)
        .map_err(|_| StoreError::new("stored order has an invalid totalAmt"))?;
    if ours != claim.notice.total_amt {
        return Ok(OrderMismatch::Amount { ours });
    }
    match r.opt_parsed("transactionId", TransactionId::parse)? {
        Some(txn) if txn == claim.notice.transaction_id => return Ok(OrderMismatch::PaidByThis),
        Some(txn) => return Ok(OrderMismatch::PaidByOther(txn)),
        None => {}
    }
    let claim_txn = r.opt_str("claimTxn");
    let held_by_other = claim_txn.is_some_and(|c| c != claim.notice.transaction_id.as_str())
        && r.opt_num("claimUntil")?
            .is_some_and(|until| until >= claim.now);
    if held_by_other {
        return Ok(OrderMismatch::ClaimedByOther);
    }
    if !claim.accept_expired && r.opt_str("status") == Some("EXPIRED") {
        return Ok(OrderMismatch::Expired);
    }
    if claim.check_user_token {
        let ours = r.opt_parsed("userToken", UserToken::parse)?;
        if let (Some(ours), Some(theirs)) = (ours, &claim.notice.user_token) {
            if &ours != theirs {
                return Ok(OrderMismatch::UserToken { ours });
            }
        }
    }
    if claim_txn.is_some() {
        return Ok(OrderMismatch::ClaimedByOther);
    }
    Err(StoreError::new(
        "order condition failed for no known reason",
    ))
}

/// The order a `PAYMENT#` item binds its transactionId to.
fn read_payment(old: Option<&Item>) -> Result<TradeNo, StoreError> {
    let item =
        old.ok_or_else(|| StoreError::new("payment condition failed without the old item"))?;
    Read(item).parsed("tradeNo", TradeNo::parse)
}

#[async_trait]
impl ShipStore for DynamoStore {
    async fn claim(&self, claim: &ShipClaim<'_>) -> Result<ClaimResult, StoreError> {
        let mut items = vec![
            TransactWriteItem::builder()
                .update(order_update(claim, &self.table, self.shards)?)
                .build(),
            TransactWriteItem::builder()
                .put(record_put(claim, &self.table)?)
                .build(),
            TransactWriteItem::builder()
                .put(nonce_put(
                    &self.table,
                    &claim.notice.nonce_str,
                    &claim.body_hash,
                    claim.nonce_expires,
                    claim.now,
                )?)
                .build(),
        ];
        items.push(
            TransactWriteItem::builder()
                .update(payment_update(claim.notice, claim.now, &self.table)?)
                .build(),
        );
        let Some(reasons) = self.transact(items).await? else {
            return Ok(ClaimResult::Claimed);
        };
        let reason = |i: usize| reasons.get(i).filter(|r| failed(r));
        if let Some(r) = reason(1) {
            let old = r
                .item()
                .ok_or_else(|| StoreError::new("record condition failed without the old item"))?;
            return read_record(old).map(ClaimResult::Existing);
        }
        if reason(2).is_some() {
            return Ok(ClaimResult::NonceReused);
        }
        if let Some(r) = reason(3) {
            return read_payment(r.item()).map(ClaimResult::PaymentOfOther);
        }
        if let Some(r) = reason(0) {
            return read_mismatch(r.item(), claim).map(ClaimResult::Order);
        }
        // Cancelled for another reason (a concurrent transaction on the same
        // items): the caller answers FAIL and the platform retries.
        Ok(ClaimResult::Contended)
    }

    async fn record_unmatched(&self, unmatched: &UnmatchedShip<'_>) -> Result<(), StoreError> {
        let notice = unmatched.notice;
        let mut expr = Expr::default()
            .name("#kind", "kind")
            .name("#notice", "notice")
            .name("#reason", "reason")
            .name("#skill", "skillId")
            .name("#txn", "transactionId")
            .name("#trade", "tradeNo")
            .name("#amt", "totalAmt")
            .name("#payload", "payload")
            .name("#received", "receivedAt")
            .name("#first", "firstReceivedAt")
            .name("#deliveries", "deliveries")
            .value(":kind", s("UNMATCHED"))
            .value(":notice", s("ship"))
            .value(":reason", s(unmatched.reason.code()))
            .value(":skill", s(notice.skill_id.as_str()))
            .value(":txn", s(notice.transaction_id.as_str()))
            .value(":trade", s(notice.trade_no.as_str()))
            .value(":amt", n(notice.total_amt.get()))
            .value(":payload", s(unmatched.payload))
            .value(":now", n(unmatched.received_at))
            .value(":one", n(1));
        let mut set = vec![
            "#kind = :kind",
            "#notice = :notice",
            "#reason = :reason",
            "#skill = :skill",
            "#txn = :txn",
            "#trade = :trade",
            "#amt = :amt",
            "#payload = :payload",
            "#received = :now",
            "#first = if_not_exists(#first, :now)",
        ];
        if let Some(token) = &notice.user_token {
            expr = expr
                .name("#token", "userToken")
                .value(":token", s(token.as_str()));
            set.push("#token = :token");
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(unmatched_key(unmatched)))
            .update_expression(format!("SET {} ADD #deliveries :one", set.join(", ")))
            .set_expression_attribute_names(Some(expr.names))
            .set_expression_attribute_values(Some(expr.values))
            .send()
            .await
            .map_err(|e| sdk_error("keep unmatched ship notice", e))?;
        Ok(())
    }
}

/// `UNMATCHED#SHIP#<fingerprint>`: one item per payment as notified (the
/// platform's retries of it update the same item). A refund notice's key,
/// `UNMATCHED#<refundTradeNo>`, has no second `#`.
fn unmatched_key(unmatched: &UnmatchedShip<'_>) -> Item {
    key(
        UNMATCHED,
        &format!("SHIP#{}", unmatched.fingerprint.as_str()),
    )
}
