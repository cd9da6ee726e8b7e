//! Refunds: initiation with an atomic ceiling, and the reports of the
//! platform (replies, queries, notifications, an operator) applied through
//! one decision ([`decide`]).
//!
//! A refund is recorded PENDING, with its amount reserved on the order,
//! before the platform is called. Only an answer that cannot be a
//! misunderstanding moves it on; everything else leaves it where it is,
//! reserved, to be asked about again by the sweep and escalated when it
//! stays open. Status only moves forward: PENDING → PROCESSING → SUCCESS |
//! FAILED, and only FAILED releases the amount.
//!
//! Every `paycgi/refund` call is claimed in the store before it is sent
//! (`submissions`), and every transition is conditioned on the status and
//! the submission count read, so a `FAIL` to the first submission releases
//! the amount only when no other submission of that `refundTradeNo` can
//! have reached the platform.

pub mod decide;

use std::time::Duration;

use async_trait::async_trait;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::Serialize;

pub use decide::{decide, transition, Decision, Facts, Hold, Said, Source};

use super::due::secs;
use super::entitlements::Delivery;
use super::platform::{Platform, PlatformError};
use super::{Order, OrderStatus, StoreError};
use crate::protocol::{
    Fen, NonceStr, OrderItem, OrderRef, RefundDesc, RefundNotify, RefundQueryRequest, RefundRef,
    RefundRequest, RefundStatus as WireStatus, RefundTradeNo, RefundTransactionId, Revision,
    SkillId, TradeNo, TransactionId, Version,
};
use crate::EpochSecs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatus {
    /// Recorded and its amount reserved; the platform's answer is unknown.
    Pending,
    /// Accepted by the platform.
    Processing,
    Success,
    /// Refused or failed; its amount is released.
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Processing => "PROCESSING",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(Self::Pending),
            "PROCESSING" => Some(Self::Processing),
            "SUCCESS" => Some(Self::Success),
            "FAILED" => Some(Self::Failed),
            _ => None,
        }
    }

    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Processing)
    }

    /// Position in the forward order (PENDING < PROCESSING < final).
    pub fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Processing => 1,
            Self::Success | Self::Failed => 2,
        }
    }
}

/// A refund as we record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    pub refund_trade_no: RefundTradeNo,
    pub trade_no: TradeNo,
    pub transaction_id: TransactionId,
    pub total_amt: Fen,
    pub refund_amt: Fen,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_desc: Option<RefundDesc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_details: Option<Vec<OrderItem>>,
    pub status: RefundStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_transaction_id: Option<RefundTransactionId>,
    /// The platform's reason when the refund failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_reason: Option<String>,
    /// `paycgi/refund` calls claimed for this `refundTradeNo` (the first
    /// is claimed with the reservation).
    pub submissions: u32,
    /// While open: when the sweep next asks the platform about it.
    pub next_check_at: EpochSecs,
    /// How many times the sweep asked the platform about it.
    pub checks: u32,
    /// Once SUCCESS: the delivery of `refund.succeeded` to the partner's
    /// systems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke: Option<super::entitlements::Delivery>,
    /// Once SUCCESS: the order's succeeded refunds, this one included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunded_total_after: Option<i64>,
    pub created_at: EpochSecs,
    pub updated_at: EpochSecs,
}

impl Refund {
    /// The record after a move to `to` on what `said` stated.
    fn moved(&self, to: RefundStatus, said: &Said, now: EpochSecs) -> Refund {
        let mut after = self.clone();
        after.status = to;
        after.updated_at = now;
        let (facts, reason) = match said {
            Said::Accepted(facts) => (Some(facts), None),
            Said::Status { facts, reason, .. } => (Some(facts), reason.clone()),
            Said::Refused(msg) => (None, msg.clone().or_else(|| Some("refused".to_owned()))),
            Said::Malformed(_) => (None, None),
        };
        if after.refund_transaction_id.is_none() {
            after.refund_transaction_id = facts.and_then(|f| f.refund_transaction_id.clone());
        }
        if to == RefundStatus::Failed {
            after.fail_reason = reason.or(after.fail_reason);
        }
        after
    }
}

/// A nonce to record with a notification's effect (replay protection).
#[derive(Debug, Clone)]
pub struct NonceClaim {
    pub nonce: NonceStr,
    pub body_hash: String,
    pub expires: EpochSecs,
}

/// The result of reserving a new refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    Reserved,
    /// A refund with this `refundTradeNo` exists.
    Exists(Box<Refund>),
    /// The order's remaining refundable amount is smaller.
    Exceeds,
    NotPaid,
}

/// The result of a conditional write of a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Applied(Box<Refund>),
    /// The refund changed underneath (status or submissions): re-read and
    /// decide again.
    Stale,
    NonceReused,
}

/// Why a signed notice was kept for an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// About a `refundTradeNo` we do not know.
    UnknownRefund,
    /// Its ids or amounts are not our refund's.
    Mismatch,
    /// It contradicts our refund's final state.
    Contradiction,
}

impl Kept {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownRefund => "unknown_refund",
            Self::Mismatch => "refund_mismatch",
            Self::Contradiction => "refund_contradiction",
        }
    }
}

#[async_trait]
pub trait RefundStore: Send + Sync {
    /// The order a reference points to (a `transactionId` through the
    /// payment it records).
    async fn find_order(&self, order: &OrderRef) -> Result<Option<Order>, StoreError>;
    async fn get_refund(
        &self,
        refund_trade_no: &RefundTradeNo,
    ) -> Result<Option<Refund>, StoreError>;
    /// Records `refund` (PENDING, one submission claimed) and reserves its
    /// amount on the order, in one transaction: the order must be PAID and
    /// its refunds not FAILED plus this one must not exceed `totalAmt`.
    async fn reserve(&self, refund: &Refund) -> Result<Reserved, StoreError>;
    /// Claims one more `paycgi/refund` call: `refund` must still be
    /// PENDING with the submission count it holds. Returns the record with
    /// the count raised, or `None` when it changed underneath.
    async fn claim_submission(
        &self,
        refund: &Refund,
        now: EpochSecs,
    ) -> Result<Option<Refund>, StoreError>;
    /// Writes `after` (or nothing but the nonce when `None`) under the
    /// condition that the stored refund still has `before`'s status and
    /// submission count; a move to FAILED releases the amount on the order
    /// in the same transaction, as does recording `nonce`.
    async fn apply(
        &self,
        before: &Refund,
        after: Option<&Refund>,
        nonce: Option<&NonceClaim>,
        now: EpochSecs,
    ) -> Result<Applied, StoreError>;
    /// Keeps a signed notification an operator must look at, with its body.
    async fn keep_notice(
        &self,
        refund_trade_no: &RefundTradeNo,
        why: Kept,
        payload: &str,
        now: EpochSecs,
    ) -> Result<(), StoreError>;
}

/// A refund request from the partner's back office.
#[derive(Debug, Clone)]
pub struct NewRefund {
    pub order: OrderRef,
    pub refund_trade_no: RefundTradeNo,
    pub refund_amt: Fen,
    pub refund_desc: Option<RefundDesc>,
    pub refund_details: Option<Vec<OrderItem>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("no such order")]
    OrderNotFound,
    #[error("no such refund")]
    RefundNotFound,
    #[error("the order is not paid")]
    NotPaid,
    #[error("refundAmt exceeds the order's refundable amount")]
    Exceeds,
    #[error("refund {0} exists with other parameters")]
    Conflict(RefundTradeNo),
    #[error("the platform's report contradicts our refund record")]
    Contradiction,
    #[error("the refund kept changing; retry")]
    Busy,
    #[error("replayed nonceStr")]
    NonceReplayed,
    #[error("the platform did not answer usably")]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a report did to a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its status moved.
    Moved,
    /// Consistent with what we hold; nothing changed.
    Unchanged,
    /// Ambiguous: left where it was, amount reserved.
    Held(Hold),
    /// Ids or amounts not ours (the field named): left where it was.
    Mismatch(&'static str),
    /// A final state contradicting ours: left where it was.
    Contradiction,
}

/// A refund after a report, and what the report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub refund: Refund,
    pub outcome: Outcome,
}

/// How a refund request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// Recorded now; what the platform's reply (or its absence) did.
    Created(Settled),
    Existing(Refund),
}

/// Refund settings.
#[derive(Debug, Clone)]
pub struct RefundSettings {
    pub skill_id: SkillId,
    pub revision: Revision,
    /// A refund still open this long after it was requested needs a
    /// person (metric `RefundNeedsAttention`, alarmed).
    pub attention_after: Duration,
    /// How long after it was requested the sweep first asks about a refund
    /// still open.
    pub first_check: Duration,
    /// How long a `refund.succeeded` may wait for the stream before the
    /// sweep delivers it.
    pub revoke_after: Duration,
}

/// The default of [`RefundSettings::attention_after`]: 24 hours.
pub const DEFAULT_ATTENTION_AFTER: Duration = Duration::from_secs(86_400);

pub struct RefundService<S, P> {
    pub store: S,
    pub platform: P,
    pub settings: RefundSettings,
}

/// A fresh `nonceStr`: 32 random letters and digits.
pub fn new_nonce() -> NonceStr {
    let text: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    NonceStr::parse(&text).expect("32 letters and digits")
}

fn same_request(refund: &Refund, new: &NewRefund) -> bool {
    let same_order = match &new.order {
        OrderRef::TradeNo(t) => t == &refund.trade_no,
        OrderRef::TransactionId(t) => t == &refund.transaction_id,
    };
    same_order
        && refund.refund_amt == new.refund_amt
        && refund.refund_desc == new.refund_desc
        && refund.refund_details == new.refund_details
}

impl<S: RefundStore, P: Platform> RefundService<S, P> {
    fn ledger(&self) -> Ledger<'_> {
        Ledger {
            store: &self.store,
            revoke_after: self.settings.revoke_after,
        }
    }

    /// Records a refund, reserves its amount and asks the platform.
    pub async fn request(&self, new: NewRefund, now: EpochSecs) -> Result<Requested, RefundError> {
        if let Some(existing) = self.store.get_refund(&new.refund_trade_no).await? {
            return self.existing(existing, &new);
        }
        let order = self
            .store
            .find_order(&new.order)
            .await?
            .ok_or(RefundError::OrderNotFound)?;
        let (OrderStatus::Paid, Some(transaction_id)) =
            (order.status, order.transaction_id.clone())
        else {
            return Err(RefundError::NotPaid);
        };
        if new.refund_amt > order.total_amt {
            return Err(RefundError::Exceeds);
        }
        let refund = Refund {
            refund_trade_no: new.refund_trade_no.clone(),
            trade_no: order.trade_no.clone(),
            transaction_id,
            total_amt: order.total_amt,
            refund_amt: new.refund_amt,
            refund_desc: new.refund_desc.clone(),
            refund_details: new.refund_details.clone(),
            status: RefundStatus::Pending,
            refund_transaction_id: None,
            fail_reason: None,
            submissions: 1,
            next_check_at: now + secs(self.settings.first_check),
            checks: 0,
            revoke: None,
            refunded_total_after: None,
            created_at: now,
            updated_at: now,
        };
        match self.store.reserve(&refund).await? {
            Reserved::Reserved => {}
            Reserved::Exists(existing) => return self.existing(*existing, &new),
            Reserved::Exceeds => return Err(RefundError::Exceeds),
            Reserved::NotPaid => return Err(RefundError::NotPaid),
        }
        tracing::info!(
            refund_trade_no = refund.refund_trade_no.as_str(),
            trade_no = refund.trade_no.as_str(),
            refund_amt = refund.refund_amt.get(),
            "refund recorded; asking the platform"
        );
        Ok(Requested::Created(self.submit(refund, now).await?))
    }

    fn existing(&self, existing: Refund, new: &NewRefund) -> Result<Requested, RefundError> {
        if same_request(&existing, new) {
            Ok(Requested::Existing(existing))
        } else {
            Err(RefundError::Conflict(existing.refund_trade_no))
        }
    }

    /// Sends a PENDING refund whose submission `refund.submissions` is
    /// claimed to the platform (the platform keys refunds on
    /// `refundTradeNo`) and applies its reply.
    async fn submit(&self, refund: Refund, now: EpochSecs) -> Result<Settled, RefundError> {
        let mut request = RefundRequest::new(
            self.settings.skill_id.clone(),
            OrderRef::TradeNo(refund.trade_no.clone()),
            refund.refund_trade_no.clone(),
            refund.total_amt,
            refund.refund_amt,
            new_nonce(),
        )
        .map_err(|_| RefundError::Exceeds)?;
        request.refund_desc = refund.refund_desc.clone();
        request.refund_details = refund.refund_details.clone();
        if self.settings.revision == Revision::R2019 {
            request.version = Version::parse("1.0").ok();
        }
        let source = Source::Reply {
            submission: refund.submissions,
        };
        match self.platform.refund(&request).await {
            Ok(reply) => {
                settle(
                    &self.ledger(),
                    refund,
                    source,
                    &Said::refund_reply(&reply),
                    None,
                    now,
                )
                .await
            }
            Err(error) => {
                tracing::warn!(
                    refund_trade_no = refund.refund_trade_no.as_str(),
                    submission = refund.submissions,
                    error = %error,
                    "refund call got no usable answer; the refund stays PENDING, reserved, until the platform says"
                );
                Ok(Settled {
                    refund,
                    outcome: Outcome::Held(Hold::NoAnswer),
                })
            }
        }
    }

    /// Asks `refundquery` about an open refund and applies the answer. A
    /// PENDING refund the platform does not report is submitted again
    /// under the same `refundTradeNo`; a `FAIL` to that resubmission
    /// changes nothing.
    ///
    /// `Err(Platform)` when the platform gave no usable answer (including
    /// a malformed one) and `Err(Contradiction)` when it reported ids,
    /// amounts or a final state that are not ours: in both cases nothing
    /// changed.
    pub async fn sync(
        &self,
        refund_trade_no: &RefundTradeNo,
        now: EpochSecs,
    ) -> Result<Refund, RefundError> {
        let refund = self
            .store
            .get_refund(refund_trade_no)
            .await?
            .ok_or(RefundError::RefundNotFound)?;
        if !refund.status.is_open() {
            return Ok(refund);
        }
        let request = RefundQueryRequest::new(
            self.settings.skill_id.clone(),
            RefundRef::RefundTradeNo(refund.refund_trade_no.clone()),
            new_nonce(),
        );
        let reply = self.platform.refund_query(&request).await?;
        let queried = settle(
            &self.ledger(),
            refund,
            Source::Query,
            &Said::query_reply(&reply),
            None,
            now,
        )
        .await?;
        let settled = match queried.outcome {
            Outcome::Held(Hold::RefusedQuery) if queried.refund.status == RefundStatus::Pending => {
                match self.store.claim_submission(&queried.refund, now).await? {
                    Some(claimed) => self.submit(claimed, now).await?,
                    None => Settled {
                        refund: self
                            .store
                            .get_refund(refund_trade_no)
                            .await?
                            .ok_or(RefundError::RefundNotFound)?,
                        outcome: Outcome::Unchanged,
                    },
                }
            }
            _ => queried,
        };
        let refund = self.checked(settled)?;
        if self.needs_attention(&refund, now) {
            tracing::error!(
                alert = true,
                reason = "refund_needs_attention",
                refund_trade_no = refund.refund_trade_no.as_str(),
                trade_no = refund.trade_no.as_str(),
                status = refund.status.as_str(),
                submissions = refund.submissions,
                open_secs = now - refund.created_at,
                "refund still open past its attention time: an operator must settle it with the platform"
            );
        }
        Ok(refund)
    }

    /// A sync's result as the callers see it: held for a malformed reply or
    /// a report that is not ours is an error (nothing changed).
    fn checked(&self, settled: Settled) -> Result<Refund, RefundError> {
        match settled.outcome {
            Outcome::Held(Hold::Malformed(why)) => {
                Err(RefundError::Platform(PlatformError::BadReply(why)))
            }
            Outcome::Mismatch(_) | Outcome::Contradiction => Err(RefundError::Contradiction),
            _ => Ok(settled.refund),
        }
    }

    /// Whether `refund` is open past [`RefundSettings::attention_after`].
    pub fn needs_attention(&self, refund: &Refund, now: EpochSecs) -> bool {
        refund.status.is_open() && now - refund.created_at >= secs(self.settings.attention_after)
    }

    /// An operator's verdict on a refund, after checking it with the
    /// platform (its merchant console or support): SUCCESS or FAIL, applied
    /// through the same decision as any report.
    pub async fn settle_by_operator(
        &self,
        refund_trade_no: &RefundTradeNo,
        status: WireStatus,
        note: Option<String>,
        now: EpochSecs,
    ) -> Result<Settled, RefundError> {
        let refund = self
            .store
            .get_refund(refund_trade_no)
            .await?
            .ok_or(RefundError::RefundNotFound)?;
        let said = Said::Status {
            status,
            facts: Facts::default(),
            reason: note,
        };
        let settled = settle(&self.ledger(), refund, Source::Operator, &said, None, now).await?;
        tracing::warn!(
            alert = true,
            reason = "refund_settled_by_operator",
            refund_trade_no = refund_trade_no.as_str(),
            status = settled.refund.status.as_str(),
            "refund settled by an operator"
        );
        Ok(settled)
    }
}

/// The store and the outbox delay every report is applied with.
#[derive(Clone, Copy)]
pub struct Ledger<'a> {
    pub store: &'a dyn RefundStore,
    /// How long a refund's `refund.succeeded` may wait for the stream
    /// before the sweep delivers it.
    pub revoke_after: Duration,
}

/// Applies what `said` (from `source`) does to `refund`: decides on the
/// record as read, writes under the condition that it is still so, and
/// decides again on the fresh record when it changed underneath.
pub async fn settle(
    ledger: &Ledger<'_>,
    mut refund: Refund,
    source: Source,
    said: &Said,
    nonce: Option<&NonceClaim>,
    now: EpochSecs,
) -> Result<Settled, RefundError> {
    let store = ledger.store;
    for _ in 0..5 {
        let decision = decide(&refund, source, said);
        let (after, outcome) = match decision {
            Decision::Move(RefundStatus::Success) => {
                // The revoke event says how much of the order is refunded
                // with this one: the order's succeeded refunds are added to
                // under the condition that they are still what was read.
                let order = store
                    .find_order(&OrderRef::TradeNo(refund.trade_no.clone()))
                    .await?
                    .ok_or(RefundError::OrderNotFound)?;
                let mut after = refund.moved(RefundStatus::Success, said, now);
                after.refunded_total_after =
                    Some(order.refunds_succeeded_amt + refund.refund_amt.get());
                after.revoke = Some(Delivery::pending(now, now + secs(ledger.revoke_after)));
                (Some(after), Outcome::Moved)
            }
            Decision::Move(to) => (Some(refund.moved(to, said, now)), Outcome::Moved),
            Decision::Keep => (None, Outcome::Unchanged),
            Decision::Hold(hold) => {
                log_hold(&refund, source, &hold);
                return Ok(Settled {
                    refund,
                    outcome: Outcome::Held(hold),
                });
            }
            Decision::Mismatch(field) => {
                tracing::error!(
                    alert = true,
                    reason = "refund_mismatch",
                    field,
                    source = source.as_str(),
                    refund_trade_no = refund.refund_trade_no.as_str(),
                    "the platform's report about a refund disagrees with our record; nothing changed"
                );
                return Ok(Settled {
                    refund,
                    outcome: Outcome::Mismatch(field),
                });
            }
            Decision::Contradiction => {
                tracing::error!(
                    alert = true,
                    reason = "refund_contradiction",
                    source = source.as_str(),
                    refund_trade_no = refund.refund_trade_no.as_str(),
                    status = refund.status.as_str(),
                    "the platform's report contradicts a refund's final state; nothing changed"
                );
                return Ok(Settled {
                    refund,
                    outcome: Outcome::Contradiction,
                });
            }
        };
        match store.apply(&refund, after.as_ref(), nonce, now).await? {
            Applied::Applied(after) => {
                if outcome == Outcome::Moved {
                    tracing::info!(
                        refund_trade_no = after.refund_trade_no.as_str(),
                        from = refund.status.as_str(),
                        to = after.status.as_str(),
                        source = source.as_str(),
                        "refund status moved"
                    );
                }
                return Ok(Settled {
                    refund: *after,
                    outcome,
                });
            }
            Applied::NonceReused => return Err(RefundError::NonceReplayed),
            Applied::Stale => {
                refund = store
                    .get_refund(&refund.refund_trade_no)
                    .await?
                    .ok_or(RefundError::RefundNotFound)?;
            }
        }
    }
    Err(RefundError::Busy)
}

fn log_hold(refund: &Refund, source: Source, hold: &Hold) {
    match hold {
        Hold::Malformed(why) => tracing::error!(
            alert = true,
            reason = "malformed_reply",
            source = source.as_str(),
            refund_trade_no = refund.refund_trade_no.as_str(),
            why = why.as_str(),
            "the platform's reply is not whole; the refund stays as it was and is asked about again"
        ),
        _ => tracing::warn!(
            reason = hold.code(),
            source = source.as_str(),
            refund_trade_no = refund.refund_trade_no.as_str(),
            status = refund.status.as_str(),
            submissions = refund.submissions,
            "ambiguous answer about a refund; it stays as it was, reserved, and is asked about again"
        ),
    }
}

/// What a signed refund result notification did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Noticed {
    /// The refund's status moved.
    Applied(Refund),
    /// Consistent, nothing new (a duplicate or a late earlier state).
    Acknowledged(Refund),
    /// Kept for an operator: about a refund we do not know, not ours
    /// (the field named), or contradicting its final state.
    Kept(Kept, Option<&'static str>),
}

/// Applies a signed refund result notification: the refund-notify rules.
/// A notice about an unknown refund, one whose ids or amounts disagree
/// with ours, or one contradicting a final state changes nothing and is
/// kept, with its body, for an operator.
pub async fn on_notification(
    ledger: &Ledger<'_>,
    notice: &RefundNotify,
    body: &str,
    nonce: &NonceClaim,
    now: EpochSecs,
) -> Result<Noticed, RefundError> {
    let store = ledger.store;
    let Some(refund) = store.get_refund(&notice.refund_trade_no).await? else {
        store
            .keep_notice(&notice.refund_trade_no, Kept::UnknownRefund, body, now)
            .await?;
        tracing::error!(
            alert = true,
            reason = "unknown_refund",
            refund_trade_no = notice.refund_trade_no.as_str(),
            refund_amt = notice.refund_amt.get(),
            "signed refund notification for an unknown refundTradeNo kept for an operator"
        );
        return Ok(Noticed::Kept(Kept::UnknownRefund, None));
    };
    let said = Said::notification(notice);
    let settled = settle(
        ledger,
        refund,
        Source::Notification,
        &said,
        Some(nonce),
        now,
    )
    .await?;
    let kept = match settled.outcome {
        Outcome::Moved => return Ok(Noticed::Applied(settled.refund)),
        Outcome::Unchanged => return Ok(Noticed::Acknowledged(settled.refund)),
        Outcome::Mismatch(field) => (Kept::Mismatch, Some(field)),
        Outcome::Contradiction => (Kept::Contradiction, None),
        // A notification is read whole before it gets here.
        Outcome::Held(_) => return Ok(Noticed::Acknowledged(settled.refund)),
    };
    store
        .keep_notice(&notice.refund_trade_no, kept.0, body, now)
        .await?;
    Ok(Noticed::Kept(kept.0, kept.1))
}
