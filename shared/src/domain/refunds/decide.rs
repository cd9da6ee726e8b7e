//! The one place that reads what the platform said about a refund and
//! decides what it does to our record.
//!
//! Every path comes here: the reply to `POST /refunds` (a reply to the
//! first submission), `?sync=true` and the sweep (a `refundquery` answer,
//! and the reply to a resubmission), a refund result notification, and an
//! operator settling an escalated refund. The rule: **only an answer that
//! cannot be a misunderstanding moves money.**
//!
//! | source | what it said | effect |
//! |---|---|---|
//! | reply to submission *n* | `SUCCESS`, every field, ours | PENDING → PROCESSING |
//! | reply to the first submission, none other claimed | `FAIL` | PENDING → FAILED (released) |
//! | reply to a resubmission, or to the first after another was claimed | `FAIL` | held: the platform may hold the first |
//! | `refundquery` | `SUCCESS` with `refundStatus` | forward through [`transition`] |
//! | `refundquery` | `FAIL` (not found, busy) | held (a PENDING refund is submitted again) |
//! | notification, operator | `refundStatus` | forward through [`transition`] |
//! | any | `SUCCESS` with a field missing or unparseable | held, counted as a platform error |
//! | any | ids or amounts that are not ours | held, kept for the operator, alarmed |
//! | any | a final state contradicting ours | held, kept for the operator, alarmed |
//!
//! A held refund keeps its amount reserved, is asked about again by the
//! sweep, and is escalated when it stays open (see `RefundService::sync`).

use crate::protocol::{
    Fen, RefundNotify, RefundQueryReply, RefundReply, RefundStatus as WireStatus, RefundTradeNo,
    RefundTransactionId, RetCode, TradeNo, TransactionId,
};

use super::{Refund, RefundStatus};

/// Where a report about a refund came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The platform's reply to our `submission`-th `paycgi/refund` call for
    /// this `refundTradeNo` (1 is the first, made by `POST /refunds`).
    Reply { submission: u32 },
    /// A `refundquery` answer.
    Query,
    /// A signed refund result notification.
    Notification,
    /// A person who checked the refund with the platform.
    Operator,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reply { submission: 1 } => "reply",
            Self::Reply { .. } => "resubmission_reply",
            Self::Query => "refundquery",
            Self::Notification => "notification",
            Self::Operator => "operator",
        }
    }
}

/// The ids and amounts a report states about a refund. What a source does
/// not state is `None` and is not compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub refund_trade_no: Option<RefundTradeNo>,
    pub trade_no: Option<TradeNo>,
    pub transaction_id: Option<TransactionId>,
    pub total_amt: Option<Fen>,
    pub refund_amt: Option<Fen>,
    pub refund_transaction_id: Option<RefundTransactionId>,
}

/// What the platform said, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// `paycgi/refund` answered `SUCCESS` with every required field.
    Accepted(Facts),
    /// `retCode` `FAIL`, with its `retMsg`.
    Refused(Option<String>),
    /// A refund status: from `refundquery`, a notification or an operator.
    Status {
        status: WireStatus,
        facts: Facts,
        reason: Option<String>,
    },
    /// `SUCCESS` with a required field missing, unparseable or
    /// inconsistent: a bad platform reply.
    Malformed(String),
}

impl Said {
    /// Reads the reply to a `paycgi/refund` call.
    pub fn refund_reply(reply: &RefundReply) -> Self {
        if reply.ret_code == RetCode::Fail {
            return Self::Refused(reply.ret_msg.clone());
        }
        match reply.refund() {
            Ok(accepted) => Self::Accepted(Facts {
                refund_trade_no: Some(accepted.refund_trade_no),
                trade_no: Some(accepted.trade_no),
                transaction_id: Some(accepted.transaction_id),
                total_amt: Some(accepted.total_amt),
                refund_amt: Some(accepted.refund_amt),
                refund_transaction_id: Some(accepted.refund_transaction_id),
            }),
            Err(err) => Self::Malformed(format!("refund reply: {err}")),
        }
    }

    /// Reads a `refundquery` answer.
    pub fn query_reply(reply: &RefundQueryReply) -> Self {
        if reply.ret_code == RetCode::Fail {
            return Self::Refused(reply.ret_msg.clone());
        }
        match reply.refund() {
            Ok(queried) => Self::Status {
                status: queried.refund_status,
                facts: Facts {
                    refund_trade_no: Some(queried.refund_trade_no),
                    trade_no: Some(queried.trade_no),
                    transaction_id: Some(queried.transaction_id),
                    total_amt: Some(queried.total_amt),
                    refund_amt: Some(queried.refund_amt),
                    refund_transaction_id: Some(queried.refund_transaction_id),
                },
                reason: queried.refund_status_desc,
            },
            Err(err) => Self::Malformed(format!("refundquery reply: {err}")),
        }
    }

    /// Reads a refund result notification (already parsed whole).
    pub fn notification(notice: &RefundNotify) -> Self {
        Self::Status {
            status: notice.refund_status,
            facts: Facts {
                refund_trade_no: Some(notice.refund_trade_no.clone()),
                trade_no: Some(notice.trade_no.clone()),
                transaction_id: Some(notice.transaction_id.clone()),
                total_amt: Some(notice.total_amt),
                refund_amt: Some(notice.refund_amt),
                refund_transaction_id: Some(notice.refund_transaction_id.clone()),
            },
            reason: notice.refund_status_desc.clone(),
        }
    }
}

/// Why a report left a refund where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// The call got no answer (timeout, transport, HTTP status, bad
    /// signature): the platform may have recorded it.
    NoAnswer,
    /// `FAIL` to a resubmission, or to a first submission after another
    /// was claimed: the platform may hold an earlier one.
    RefusedResubmission,
    /// `refundquery` answered `FAIL` (not found, busy).
    RefusedQuery,
    /// `SUCCESS` that is not whole.
    Malformed(String),
}

impl Hold {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoAnswer => "no_answer",
            Self::RefusedResubmission => "refused_resubmission",
            Self::RefusedQuery => "refused_query",
            Self::Malformed(_) => "malformed_reply",
        }
    }
}

/// The effect of a report on a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Move to this status; FAILED releases the amount.
    Move(RefundStatus),
    /// Consistent, nothing new (already there, or a late earlier state).
    Keep,
    /// Ambiguous: stays where it is, amount reserved, asked again.
    Hold(Hold),
    /// States ids or amounts that are not ours (the field named).
    Mismatch(&'static str),
    /// Reports a final state contradicting ours (SUCCESS after FAILED or
    /// the reverse).
    Contradiction,
}

/// The state machine: status only moves forward.
pub fn transition(current: RefundStatus, reported: WireStatus) -> Decision {
    use RefundStatus::*;
    match (current, reported) {
        (Pending, WireStatus::Processing) => Decision::Move(Processing),
        (Processing | Success | Failed, WireStatus::Processing) => Decision::Keep,
        (Pending | Processing, WireStatus::Success) => Decision::Move(Success),
        (Success, WireStatus::Success) | (Failed, WireStatus::Fail) => Decision::Keep,
        (Pending | Processing, WireStatus::Fail) => Decision::Move(Failed),
        (Failed, WireStatus::Success) | (Success, WireStatus::Fail) => Decision::Contradiction,
    }
}

/// The first field of `facts` that disagrees with `refund`.
pub fn disagreement(facts: &Facts, refund: &Refund) -> Option<&'static str> {
    fn differs<T: PartialEq>(stated: &Option<T>, ours: &T) -> bool {
        stated.as_ref().is_some_and(|s| s != ours)
    }
    if differs(&facts.refund_trade_no, &refund.refund_trade_no) {
        Some("refundTradeNo")
    } else if differs(&facts.trade_no, &refund.trade_no) {
        Some("tradeNo")
    } else if differs(&facts.transaction_id, &refund.transaction_id) {
        Some("transactionId")
    } else if differs(&facts.total_amt, &refund.total_amt) {
        Some("totalAmt")
    } else if differs(&facts.refund_amt, &refund.refund_amt) {
        Some("refundAmt")
    } else if refund
        .refund_transaction_id
        .as_ref()
        .is_some_and(|ours| differs(&facts.refund_transaction_id, ours))
    {
        Some("refundTransactionId")
    } else {
        None
    }
}

/// Decides what `said`, coming from `source`, does to `refund` as we hold
/// it now. Pure: the caller applies the decision under the condition that
/// the refund is still as read (status and submission count), and decides
/// again on the fresh record when it is not.
pub fn decide(refund: &Refund, source: Source, said: &Said) -> Decision {
    match said {
        Said::Malformed(why) => Decision::Hold(Hold::Malformed(why.clone())),
        Said::Refused(_) => match source {
            Source::Reply { submission: 1 }
                if refund.submissions == 1 && refund.status == RefundStatus::Pending =>
            {
                Decision::Move(RefundStatus::Failed)
            }
            Source::Reply { .. } => Decision::Hold(Hold::RefusedResubmission),
            Source::Query | Source::Notification | Source::Operator => {
                Decision::Hold(Hold::RefusedQuery)
            }
        },
        Said::Accepted(facts) => match disagreement(facts, refund) {
            Some(field) => Decision::Mismatch(field),
            None => transition(refund.status, WireStatus::Processing),
        },
        Said::Status { status, facts, .. } => match disagreement(facts, refund) {
            Some(field) => Decision::Mismatch(field),
            None => transition(refund.status, *status),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refund(status: RefundStatus, submissions: u32) -> Refund {
        Refund {
            refund_trade_no: RefundTradeNo::parse("R1").unwrap(),
            trade_no: TradeNo::parse("T1").unwrap(),
            transaction_id: TransactionId::parse("X1").unwrap(),
            total_amt: Fen::new(1000).unwrap(),
            refund_amt: Fen::new(400).unwrap(),
            refund_desc: None,
            refund_details: None,
            status,
            refund_transaction_id: None,
            fail_reason: None,
            submissions,
            next_check_at: 0,
            checks: 0,
            revoke: None,
            refunded_total_after: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn status(s: WireStatus) -> Said {
        Said::Status {
            status: s,
            facts: Facts::default(),
            reason: None,
        }
    }

    #[test]
    fn status_only_moves_forward() {
        use RefundStatus::*;
        let cases = [
            (Pending, WireStatus::Processing, Decision::Move(Processing)),
            (Pending, WireStatus::Success, Decision::Move(Success)),
            (Processing, WireStatus::Fail, Decision::Move(Failed)),
            (Success, WireStatus::Processing, Decision::Keep),
            (Failed, WireStatus::Processing, Decision::Keep),
            (Success, WireStatus::Success, Decision::Keep),
            (Failed, WireStatus::Fail, Decision::Keep),
            (Success, WireStatus::Fail, Decision::Contradiction),
            (Failed, WireStatus::Success, Decision::Contradiction),
        ];
        for (current, reported, expected) in cases {
            assert_eq!(
                transition(current, reported),
                expected,
                "{current:?} {reported:?}"
            );
        }
    }

    #[test]
    fn only_a_fail_to_the_only_submission_releases() {
        let refused = Said::Refused(Some("system busy".into()));
        let first = Source::Reply { submission: 1 };
        assert_eq!(
            decide(&refund(RefundStatus::Pending, 1), first, &refused),
            Decision::Move(RefundStatus::Failed)
        );
        // A resubmission was claimed meanwhile: the first may be recorded.
        assert_eq!(
            decide(&refund(RefundStatus::Pending, 2), first, &refused),
            Decision::Hold(Hold::RefusedResubmission)
        );
        assert_eq!(
            decide(
                &refund(RefundStatus::Pending, 2),
                Source::Reply { submission: 2 },
                &refused
            ),
            Decision::Hold(Hold::RefusedResubmission)
        );
        // Something already said the platform holds it.
        assert_eq!(
            decide(&refund(RefundStatus::Processing, 1), first, &refused),
            Decision::Hold(Hold::RefusedResubmission)
        );
        assert_eq!(
            decide(&refund(RefundStatus::Pending, 1), Source::Query, &refused),
            Decision::Hold(Hold::RefusedQuery)
        );
    }

    #[test]
    fn a_fail_status_releases_from_any_source() {
        for source in [Source::Query, Source::Notification, Source::Operator] {
            assert_eq!(
                decide(
                    &refund(RefundStatus::Processing, 3),
                    source,
                    &status(WireStatus::Fail)
                ),
                Decision::Move(RefundStatus::Failed)
            );
        }
    }

    #[test]
    fn malformed_and_foreign_reports_hold() {
        let r = refund(RefundStatus::Pending, 1);
        assert!(matches!(
            decide(&r, Source::Query, &Said::Malformed("x".into())),
            Decision::Hold(Hold::Malformed(_))
        ));
        let foreign = Said::Status {
            status: WireStatus::Fail,
            facts: Facts {
                refund_amt: Some(Fen::new(401).unwrap()),
                ..Facts::default()
            },
            reason: None,
        };
        assert_eq!(
            decide(&r, Source::Notification, &foreign),
            Decision::Mismatch("refundAmt")
        );
        let mut known = r.clone();
        known.refund_transaction_id = Some(RefundTransactionId::parse("RT1").unwrap());
        let other_id = Said::Accepted(Facts {
            refund_transaction_id: Some(RefundTransactionId::parse("RT2").unwrap()),
            ..Facts::default()
        });
        assert_eq!(
            decide(&known, Source::Reply { submission: 1 }, &other_id),
            Decision::Mismatch("refundTransactionId")
        );
    }

    #[test]
    fn a_success_reply_without_its_refund_serial_is_malformed() {
        let mut reply = RefundReply::fail("x");
        reply.ret_code = RetCode::Success;
        reply.ret_msg = None;
        assert!(matches!(Said::refund_reply(&reply), Said::Malformed(_)));
        let mut query = RefundQueryReply::fail("x");
        query.ret_code = RetCode::Success;
        assert!(matches!(Said::query_reply(&query), Said::Malformed(_)));
        assert!(matches!(
            Said::query_reply(&RefundQueryReply::fail("busy")),
            Said::Refused(Some(_))
        ));
    }
}
