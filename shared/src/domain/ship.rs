//! Ship notification (通知发货): verify against our order, grant exactly
//! once, answer duplicates with the first reply.
//!
//! The idempotency record is keyed on `transactionId` and carries an md5
//! fingerprint of the fields that decide the grant; it expires. The claim
//! also binds the `transactionId` to its order for ever, so that it is
//! refused for any other order once the record is gone. The order's move to
//! PAID (with its grant PENDING in the entitlements outbox), the
//! idempotency record, the nonce and that binding commit in one store
//! transaction (one round trip), and the notification is answered: the
//! partner's webhook is called afterwards, from the outbox
//! ([`super::entitlements`]), never inside the platform's request.
//!
//! A notification carrying another `userToken` than the order's still pays
//! the order, which keeps its own: the claim first refuses the mismatch (so
//! that it is noticed without reading the order), which is alerted, then
//! claims again without that check.

use std::time::Duration;

use async_trait::async_trait;
use md5::{Digest, Md5};

use super::StoreError;
use crate::protocol::{Fen, Reply, ShipNotify, SkillId, TradeNo, TransactionId, UserToken};
use crate::EpochSecs;

/// md5 (hex) of the fields of a notification that decide what is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn of(notice: &ShipNotify) -> Self {
        let mut md5 = Md5::new();
        for part in [
            notice.skill_id.as_str(),
            notice.transaction_id.as_str(),
            notice.trade_no.as_str(),
            &notice.total_amt.get().to_string(),
        ] {
            md5.update(part.as_bytes());
            md5.update([0x1f]);
        }
        Self(hex::encode(md5.finalize()))
    }

    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// md5 (hex) of a raw request body: a nonce seen again with the same body is
/// a redelivery, with another body a replay.
pub fn body_hash(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// One atomic claim of a notification.
#[derive(Debug, Clone)]
pub struct ShipClaim<'a> {
    pub notice: &'a ShipNotify,
    pub fingerprint: Fingerprint,
    pub body_hash: String,
    pub now: EpochSecs,
    /// The reply stored with the COMPLETE idempotency record.
    pub reply: Reply,
    /// When the sweep delivers the grant if the stream has not.
    pub grant_due: EpochSecs,
    pub accept_unknown_orders: bool,
    /// When a COMPLETE idempotency record may be forgotten.
    pub record_expires: EpochSecs,
    /// When the nonce may be forgotten.
    pub nonce_expires: EpochSecs,
    /// Refuse the claim when the order holds another `userToken` than the
    /// notification's (reported as [`OrderMismatch::UserToken`]), so that a
    /// mismatch is noticed without reading the order first.
    pub check_user_token: bool,
    /// Pay an order the sweep gave up on (`EXPIRED`). Off at first, so that
    /// a late payment is noticed ([`OrderMismatch::Expired`]) without reading
    /// the order first; the second claim pays it: the user has paid.
    pub accept_expired: bool,
}

/// The idempotency record found for a `transactionId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub fingerprint: Fingerprint,
    pub state: RecordState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordState {
    /// Written by releases that called the webhook inside the request;
    /// an unexpired one is still honoured.
    InProgress {
        until: EpochSecs,
    },
    Complete {
        reply: Reply,
    },
}

/// Why our order refused the notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderMismatch {
    Unknown,
    Amount {
        ours: Fen,
    },
    /// Paid by this very transaction: the idempotency record has expired.
    PaidByThis,
    PaidByOther(TransactionId),
    /// Another transaction holds an unexpired claim on the order.
    ClaimedByOther,
    /// The order holds another `userToken` than the notification (only
    /// with [`ShipClaim::check_user_token`]).
    UserToken {
        ours: UserToken,
    },
    /// The order expired unpaid (only without [`ShipClaim::accept_expired`]).
    Expired,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimResult {
    Claimed,
    Existing(IdempotencyRecord),
    NonceReused,
    Order(OrderMismatch),
    /// The `transactionId` already paid (or is claimed for) another order:
    /// a payment belongs to one order for ever, also once its idempotency
    /// record has expired.
    PaymentOfOther(TradeNo),
    /// Cancelled by a concurrent transaction on the same items.
    Contended,
}

/// A signed ship notification that contradicts our records (unknown order,
/// another amount, an order paid by another transaction, a `transactionId`
/// of another order), kept with its body for an operator.
#[derive(Debug, Clone)]
pub struct UnmatchedShip<'a> {
    pub notice: &'a ShipNotify,
    pub fingerprint: Fingerprint,
    pub reason: Rejection,
    /// The body exactly as received (lossily decoded when not UTF-8).
    pub payload: &'a str,
    pub received_at: EpochSecs,
}

/// What the ship flow needs from the store.
#[async_trait]
pub trait ShipStore: Send + Sync {
    /// Records the payment: the order PAID with its grant pending, the
    /// idempotency record, the nonce and the payment's binding to the
    /// order, in one transaction; writes nothing unless everything holds.
    async fn claim(&self, claim: &ShipClaim<'_>) -> Result<ClaimResult, StoreError>;
    /// Keeps a signed notification that contradicts our records, for an
    /// operator; the same notification delivered again updates its record.
    async fn record_unmatched(&self, unmatched: &UnmatchedShip<'_>) -> Result<(), StoreError>;
}

/// Why a notification was refused. None of these writes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    WrongSkill,
    NonceReplayed,
    UnknownOrder,
    AmountMismatch,
    PaidByOther,
    Conflict,
    InProgress,
}

impl Rejection {
    /// The caller-safe `retMsg`.
    pub fn message(self) -> &'static str {
        match self {
            Self::WrongSkill => "unknown skill",
            Self::NonceReplayed => "replayed nonceStr",
            Self::UnknownOrder => "unknown tradeNo",
            Self::AmountMismatch => "totalAmt mismatch",
            Self::PaidByOther => "paid by another transaction",
            Self::Conflict => "conflicting transaction payload",
            Self::InProgress => "in progress, retry later",
        }
    }

    /// Money may be at risk: an operator must look.
    pub fn is_alert(self) -> bool {
        matches!(
            self,
            Self::UnknownOrder | Self::AmountMismatch | Self::PaidByOther | Self::Conflict
        )
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::WrongSkill => "wrong_skill",
            Self::NonceReplayed => "replay",
            Self::UnknownOrder => "unknown_order",
            Self::AmountMismatch => "amount_mismatch",
            Self::PaidByOther => "paid_by_other",
            Self::Conflict => "conflict",
            Self::InProgress => "in_progress",
        }
    }
}

/// The decision for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShipOutcome {
    /// This delivery granted the order.
    Fulfilled,
    /// A duplicate: the first delivery's reply, nothing granted.
    Replayed(Reply),
    /// The order already remembers this transaction (the idempotency record
    /// expired): SUCCESS, nothing granted.
    AlreadyFulfilled,
    Rejected(Rejection),
}

impl ShipOutcome {
    pub fn reply(&self) -> Reply {
        match self {
            Self::Fulfilled | Self::AlreadyFulfilled => Reply::success(),
            Self::Replayed(reply) => reply.clone(),
            Self::Rejected(r) => Reply::fail(r.message()),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Fulfilled => "fulfilled",
            Self::Replayed(_) => "duplicate",
            Self::AlreadyFulfilled => "already_fulfilled",
            Self::Rejected(r) => r.code(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Settings of the ship flow.
#[derive(Debug, Clone)]
pub struct ShipSettings {
    pub skill_id: SkillId,
    pub accept_unknown_orders: bool,
    pub record_ttl: Duration,
    pub nonce_ttl: Duration,
    /// How long a payment's grant may wait for the stream before the sweep
    /// delivers it (`FULFILLMENT_RETRY_SECS`).
    pub grant_after: Duration,
}

/// The ship notification service.
pub struct ShipService<S> {
    pub store: S,
    pub settings: ShipSettings,
}

/// A decision, and what an operator should hear about besides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub outcome: ShipOutcome,
    /// The notification carried another `userToken` than the order's: the
    /// payment was still decided for the order, which keeps its own.
    pub user_token_mismatch: bool,
    /// The order had expired unpaid: the payment was still recorded.
    pub paid_after_expiry: bool,
}

impl<S: ShipStore> ShipService<S> {
    /// Decides one verified, parsed notification.
    pub async fn handle(
        &self,
        notice: &ShipNotify,
        body_hash: String,
        now: EpochSecs,
    ) -> Result<ShipOutcome, ShipError> {
        Ok(self.decide(notice, body_hash, now).await?.outcome)
    }

    /// [`Self::handle`], also telling whether the notification's
    /// `userToken` differed from the order's (alerted here; the caller
    /// counts it).
    pub async fn decide(
        &self,
        notice: &ShipNotify,
        body_hash: String,
        now: EpochSecs,
    ) -> Result<Decided, ShipError> {
        if notice.skill_id != self.settings.skill_id {
            return Ok(Decided {
                outcome: ShipOutcome::Rejected(Rejection::WrongSkill),
                user_token_mismatch: false,
                paid_after_expiry: false,
            });
        }
        let mut claim = ShipClaim {
            notice,
            fingerprint: Fingerprint::of(notice),
            body_hash,
            now,
            reply: Reply::success(),
            grant_due: now + secs(self.settings.grant_after),
            accept_unknown_orders: self.settings.accept_unknown_orders,
            record_expires: now + secs(self.settings.record_ttl),
            nonce_expires: now + secs(self.settings.nonce_ttl),
            check_user_token: notice.user_token.is_some(),
            accept_expired: false,
        };
        let mut found = self.store.claim(&claim).await?;
        let mut mismatch = false;
        let mut expired = false;
        // Each retry below happens only when what it notices happens, and
        // each clears one check: at most three round trips.
        for _ in 0..2 {
            match found {
                ClaimResult::Order(OrderMismatch::UserToken { .. }) => {
                    mismatch = true;
                    claim.check_user_token = false;
                }
                ClaimResult::Order(OrderMismatch::Expired) if !claim.accept_expired => {
                    expired = true;
                    claim.accept_expired = true;
                }
                _ => break,
            }
            found = self.store.claim(&claim).await?;
        }
        if mismatch {
            tracing::error!(
                alert = true,
                reason = "user_token_mismatch",
                transaction_id = notice.transaction_id.as_str(),
                trade_no = notice.trade_no.as_str(),
                "signed ship notification carries another userToken than the order's: \
                 the payment is recorded for the order, which keeps its own userToken"
            );
        }
        let outcome = interpret(found, &claim.fingerprint);
        let paid_after_expiry = expired && outcome == ShipOutcome::Fulfilled;
        if paid_after_expiry {
            tracing::error!(
                alert = true,
                reason = "paid_after_expiry",
                transaction_id = notice.transaction_id.as_str(),
                trade_no = notice.trade_no.as_str(),
                "signed ship notification pays an order that had expired unpaid: \
                 the payment is recorded and granted (the user has paid)"
            );
        }
        Ok(Decided {
            outcome,
            user_token_mismatch: mismatch,
            paid_after_expiry,
        })
    }

    /// Keeps a signed notification refused because it contradicts our
    /// records ([`Rejection::is_alert`]) with its body, for an operator.
    pub async fn keep_unmatched(
        &self,
        notice: &ShipNotify,
        reason: Rejection,
        body: &[u8],
        now: EpochSecs,
    ) -> Result<(), StoreError> {
        let payload = String::from_utf8_lossy(body);
        self.store
            .record_unmatched(&UnmatchedShip {
                notice,
                fingerprint: Fingerprint::of(notice),
                reason,
                payload: &payload,
                received_at: now,
            })
            .await
    }
}

fn secs(d: Duration) -> EpochSecs {
    EpochSecs::try_from(d.as_secs()).unwrap_or(EpochSecs::MAX / 4)
}

fn interpret(found: ClaimResult, fingerprint: &Fingerprint) -> ShipOutcome {
    let rejected = ShipOutcome::Rejected;
    match found {
        ClaimResult::Claimed => ShipOutcome::Fulfilled,
        ClaimResult::Existing(record) if &record.fingerprint != fingerprint => {
            rejected(Rejection::Conflict)
        }
        ClaimResult::Existing(IdempotencyRecord {
            state: RecordState::InProgress { .. },
            ..
        }) => rejected(Rejection::InProgress),
        ClaimResult::Existing(IdempotencyRecord {
            state: RecordState::Complete { reply },
            ..
        }) => ShipOutcome::Replayed(reply),
        ClaimResult::NonceReused => rejected(Rejection::NonceReplayed),
        ClaimResult::Order(OrderMismatch::Unknown) => rejected(Rejection::UnknownOrder),
        ClaimResult::Order(OrderMismatch::Amount { .. }) => rejected(Rejection::AmountMismatch),
        ClaimResult::Order(OrderMismatch::PaidByThis) => ShipOutcome::AlreadyFulfilled,
        ClaimResult::Order(OrderMismatch::PaidByOther(_)) => rejected(Rejection::PaidByOther),
        // The transactionId is another order's: the same answer as while
        // its idempotency record exists (a conflicting payload).
        ClaimResult::PaymentOfOther(_) => rejected(Rejection::Conflict),
        // Not expected once the userToken check is off: retry.
        ClaimResult::Order(
            OrderMismatch::ClaimedByOther
            | OrderMismatch::UserToken { .. }
            | OrderMismatch::Expired,
        )
        | ClaimResult::Contended => rejected(Rejection::InProgress),
    }
}
