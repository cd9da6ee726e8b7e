//! Refunds: initiation with an atomic ceiling, and the state machine that
//! every report of the platform (reply, query, notification) goes through.
//!
//! A refund is recorded PENDING, with its amount reserved on the order,
//! before the platform is called. The platform's answer moves it on:
//! accepted → PROCESSING; refused → FAILED, releasing the amount; no
//! answer (timeout, 5xx, bad signature) → stays PENDING, resolved later by
//! `refundquery`, never by a new `refundTradeNo`. Status only moves
//! forward: PENDING → PROCESSING → SUCCESS | FAILED.

use async_trait::async_trait;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::Serialize;

use super::platform::{Platform, PlatformError};
use super::{Order, OrderStatus, StoreError};
use crate::protocol::{
    Fen, NonceStr, OrderItem, OrderRef, RefundDesc, RefundQueryRequest, RefundRef, RefundRequest,
    RefundStatus as WireStatus, RefundTradeNo, RefundTransactionId, Revision, SkillId, TradeNo,
    TransactionId, Version,
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
    /// The platform's `retMsg` when it refused the refund.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_reason: Option<String>,
    pub created_at: EpochSecs,
    pub updated_at: EpochSecs,
}

/// What the platform reported about a refund, from any source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub status: WireStatus,
    pub refund_transaction_id: Option<RefundTransactionId>,
    pub reason: Option<String>,
}

/// The effect of a report on a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Move to this status (FAILED releases the amount).
    To(RefundStatus),
    /// Already there, or a late report of an earlier state: acknowledge.
    NoChange,
    /// Contradicts a final state (SUCCESS after FAILED or the reverse).
    Contradiction,
}

/// The state machine: status only moves forward.
pub fn transition(current: RefundStatus, reported: WireStatus) -> Transition {
    use RefundStatus::*;
    match (current, reported) {
        (Pending, WireStatus::Processing) => Transition::To(Processing),
        (Processing | Success | Failed, WireStatus::Processing) => Transition::NoChange,
        (Pending | Processing, WireStatus::Success) => Transition::To(Success),
        (Success, WireStatus::Success) | (Failed, WireStatus::Fail) => Transition::NoChange,
        (Pending | Processing, WireStatus::Fail) => Transition::To(Failed),
        (Failed, WireStatus::Success) | (Success, WireStatus::Fail) => Transition::Contradiction,
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

/// The result of applying a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Applied(Box<Refund>),
    /// The refund changed underneath (concurrent report): re-read and retry.
    Stale,
    NonceReused,
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
    /// Records `refund` (PENDING) and reserves its amount on the order, in
    /// one transaction: the order must be PAID and its refunds not FAILED
    /// plus this one must not exceed `totalAmt`.
    async fn reserve(&self, refund: &Refund) -> Result<Reserved, StoreError>;
    /// Moves `refund` from its current status to `to` (releasing the amount
    /// for FAILED), recording `nonce` in the same transaction. With
    /// `Transition::NoChange` only the nonce is recorded.
    async fn apply(
        &self,
        refund: &Refund,
        to: Option<RefundStatus>,
        report: &Report,
        nonce: Option<&NonceClaim>,
        now: EpochSecs,
    ) -> Result<Applied, StoreError>;
    /// Keeps a signed notification about a refund we do not know.
    async fn record_unmatched(
        &self,
        refund_trade_no: &RefundTradeNo,
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
    #[error("the platform's report contradicts the refund's final state")]
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

/// How a refund request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    Created(Refund),
    Existing(Refund),
}

/// Refund settings.
#[derive(Debug, Clone)]
pub struct RefundSettings {
    pub skill_id: SkillId,
    pub revision: Revision,
}

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

    /// Sends a PENDING refund to the platform (again: the platform keys
    /// refunds on `refundTradeNo`) and applies its answer.
    async fn submit(&self, refund: Refund, now: EpochSecs) -> Result<Refund, RefundError> {
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
        let report = match self.platform.refund(&request).await {
            Ok(reply) => match reply.refund() {
                Ok(accepted) => Report {
                    status: WireStatus::Processing,
                    refund_transaction_id: Some(accepted.refund_transaction_id),
                    reason: None,
                },
                Err(_) => Report {
                    status: WireStatus::Fail,
                    refund_transaction_id: None,
                    reason: Some(
                        reply
                            .ret_msg
                            .clone()
                            .unwrap_or_else(|| "refused".to_owned()),
                    ),
                },
            },
            Err(error) => {
                tracing::warn!(
                    refund_trade_no = refund.refund_trade_no.as_str(),
                    error = %error,
                    "refund call got no usable answer; the refund stays PENDING until refundquery resolves it"
                );
                return Ok(refund);
            }
        };
        self.report(refund, &report, None, now)
            .await
            .map(|(refund, _)| refund)
    }

    /// Applies a report of the platform through the state machine.
    pub async fn report(
        &self,
        refund: Refund,
        report: &Report,
        nonce: Option<&NonceClaim>,
        now: EpochSecs,
    ) -> Result<(Refund, bool), RefundError> {
        apply_report(&self.store, refund, report, nonce, now).await
    }

    /// Asks `refundquery` about an open refund and applies the answer. A
    /// PENDING refund the platform does not know is submitted again under
    /// the same `refundTradeNo`.
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
        match reply.refund() {
            Ok(queried) => {
                if queried.refund_amt != refund.refund_amt || queried.trade_no != refund.trade_no {
                    tracing::error!(
                        alert = true,
                        refund_trade_no = refund.refund_trade_no.as_str(),
                        "refundquery disagrees with our refund record"
                    );
                    return Err(RefundError::Contradiction);
                }
                let report = Report {
                    status: queried.refund_status,
                    refund_transaction_id: Some(queried.refund_transaction_id),
                    reason: queried.refund_status_desc,
                };
                self.report(refund, &report, None, now)
                    .await
                    .map(|(refund, _)| refund)
            }
            Err(_) if refund.status == RefundStatus::Pending => self.submit(refund, now).await,
            Err(_) => Ok(refund),
        }
    }
}

/// Applies a report of the platform (a reply, a query result, a
/// notification) through the state machine; retries when the refund
/// changed underneath. Returns the refund after it and whether anything
/// changed.
pub async fn apply_report(
    store: &dyn RefundStore,
    mut refund: Refund,
    report: &Report,
    nonce: Option<&NonceClaim>,
    now: EpochSecs,
) -> Result<(Refund, bool), RefundError> {
    for _ in 0..5 {
        let to = match transition(refund.status, report.status) {
            Transition::To(status) => Some(status),
            Transition::NoChange => None,
            Transition::Contradiction => return Err(RefundError::Contradiction),
        };
        match store.apply(&refund, to, report, nonce, now).await? {
            Applied::Applied(after) => return Ok((*after, to.is_some())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_only_moves_forward() {
        use RefundStatus::*;
        assert_eq!(
            transition(Pending, WireStatus::Processing),
            Transition::To(Processing)
        );
        assert_eq!(
            transition(Pending, WireStatus::Success),
            Transition::To(Success)
        );
        assert_eq!(
            transition(Processing, WireStatus::Fail),
            Transition::To(Failed)
        );
        assert_eq!(
            transition(Success, WireStatus::Processing),
            Transition::NoChange
        );
        assert_eq!(
            transition(Failed, WireStatus::Processing),
            Transition::NoChange
        );
        assert_eq!(
            transition(Success, WireStatus::Success),
            Transition::NoChange
        );
        assert_eq!(transition(Failed, WireStatus::Fail), Transition::NoChange);
        assert_eq!(
            transition(Success, WireStatus::Fail),
            Transition::Contradiction
        );
        assert_eq!(
            transition(Failed, WireStatus::Success),
            Transition::Contradiction
        );
    }
}
