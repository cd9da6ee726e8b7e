//! The messages of the payment protocol (2018 seed and later revisions).
//!
//! Every message serialises with camelCase names (the skill id as
//! `skillId`; see [`super::to_wire`] for the 2018 spelling) and deserialises
//! accepting `domainId` or `skillId` (not both), ignoring unknown fields and
//! rejecting duplicate keys. Optional fields that are absent, `null` or `""`
//! read as `None`. In a reply whose `retCode` is `FAIL`, optional fields with
//! invalid values also read as `None` (so `retMsg` stays readable).

use serde::Serialize;

use super::fields::{
    Fen, FieldError, ItemId, NonceStr, Quantity, RefundDesc, RefundStatus, RefundTradeNo,
    RefundTransactionId, RetCode, SkillId, TradeNo, TradeStatus, TransactionId, UserToken, Version,
};
use super::json::{deserialize_via_fields, Fields, Object, WireError};

/// Longest `retMsg` this side sends, in bytes (the spec's `string(32)`).
pub const RET_MSG_MAX_BYTES: usize = 32;

/// Largest number of items in `details` / `refundDetails`.
pub const MAX_ITEMS: usize = 100;

/// Cuts a message to at most [`RET_MSG_MAX_BYTES`] bytes on a character
/// boundary.
pub fn truncate_ret_msg(msg: impl Into<String>) -> String {
    let mut msg = msg.into();
    if msg.len() > RET_MSG_MAX_BYTES {
        let mut end = RET_MSG_MAX_BYTES;
        while !msg.is_char_boundary(end) {
            end -= 1;
        }
        msg.truncate(end);
    }
    msg
}

fn to_json<T: Serialize>(msg: &T) -> Vec<u8> {
    serde_json::to_vec(msg).expect("protocol messages always serialise")
}

fn exactly_one<A, B>(
    a: &Option<A>,
    b: &Option<B>,
    names: (&'static str, &'static str),
) -> Result<(), WireError> {
    if a.is_some() == b.is_some() {
        Err(WireError::Rule(FieldError::ExactlyOne(names.0, names.1)))
    } else {
        Ok(())
    }
}

fn refund_within_total(total_amt: Fen, refund_amt: Fen) -> Result<(), FieldError> {
    if refund_amt > total_amt {
        Err(FieldError::RefundExceedsTotal)
    } else {
        Ok(())
    }
}

fn need<T: Clone>(value: &Option<T>, name: &'static str) -> Result<T, FieldError> {
    value.clone().ok_or(FieldError::Missing(name))
}

fn success(ret_code: RetCode) -> Result<(), FieldError> {
    if ret_code == RetCode::Success {
        Ok(())
    } else {
        Err(FieldError::NotSuccess)
    }
}

/// Reads `retCode` and `retMsg` and makes the rest lenient for `FAIL`.
fn ret_fields(f: &mut Fields) -> Result<(RetCode, Option<String>), WireError> {
    let ret_code: RetCode = f.req("retCode")?;
    f.set_lenient(ret_code == RetCode::Fail);
    let ret_msg = f.opt("retMsg")?;
    Ok((ret_code, ret_msg))
}

/// Which order a request names: the platform's serial or the partner's
/// order number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OrderRef {
    /// `transactionId`
    TransactionId(TransactionId),
    /// `tradeNo`
    TradeNo(TradeNo),
}

impl OrderRef {
    fn split(self) -> (Option<TransactionId>, Option<TradeNo>) {
        match self {
            OrderRef::TransactionId(t) => (Some(t), None),
            OrderRef::TradeNo(t) => (None, Some(t)),
        }
    }

    fn join(transaction_id: &Option<TransactionId>, trade_no: &Option<TradeNo>) -> Option<Self> {
        match (transaction_id, trade_no) {
            (Some(t), None) => Some(OrderRef::TransactionId(t.clone())),
            (None, Some(t)) => Some(OrderRef::TradeNo(t.clone())),
            _ => None,
        }
    }
}

/// Which refund a refund query names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RefundRef {
    /// `refundTransactionId`
    RefundTransactionId(RefundTransactionId),
    /// `refundTradeNo`
    RefundTradeNo(RefundTradeNo),
}

/// The bare reply to a notification: `{"retCode":"SUCCESS"}` or
/// `{"retCode":"FAIL","retMsg":"..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    /// `SUCCESS` or `FAIL`.
    pub ret_code: RetCode,
    /// Error description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ret_msg: Option<String>,
}

impl Reply {
    /// `{"retCode":"SUCCESS"}`
    pub fn success() -> Self {
        Self {
            ret_code: RetCode::Success,
            ret_msg: None,
        }
    }

    /// `FAIL` with `msg` cut to [`RET_MSG_MAX_BYTES`] bytes.
    pub fn fail(msg: impl Into<String>) -> Self {
        Self {
            ret_code: RetCode::Fail,
            ret_msg: Some(truncate_ret_msg(msg)),
        }
    }

    /// The JSON body.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_json(self)
    }

    fn from_fields(f: &mut Fields) -> Result<Self, WireError> {
        let (ret_code, ret_msg) = ret_fields(f)?;
        Ok(Self { ret_code, ret_msg })
    }
}

/// Ship notification (platform → partner, 通知发货): the user paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipNotify {
    /// `skillId` / `domainId`
    pub skill_id: SkillId,
    /// The platform's payment serial.
    pub transaction_id: TransactionId,
    /// The partner's order number.
    pub trade_no: TradeNo,
    /// Order amount.
    pub total_amt: Fen,
    /// Random string.
    pub nonce_str: NonceStr,
    /// The partner's user identity (later revisions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_token: Option<UserToken>,
}

impl ShipNotify {
    fn from_fields(f: &mut Fields) -> Result<Self, WireError> {
        Ok(Self {
            skill_id: f.skill_id()?,
            transaction_id: f.req("transactionId")?,
            trade_no: f.req("tradeNo")?,
            total_amt: f.req("totalAmt")?,
            nonce_str: f.req("nonceStr")?,
            user_token: f.opt("userToken")?,
        })
    }
}

/// Order query (partner → platform, 查询订单), by exactly one of
/// `transactionId` and `tradeNo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderQueryRequest {
    /// `skillId` / `domainId`
    pub skill_id: SkillId,
    /// The platform's payment serial (one of).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<TransactionId>,
    /// The partner's order number (one of).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<TradeNo>,
    /// Random string.
    pub nonce_str: NonceStr,
    /// Interface version (later revisions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
}

impl OrderQueryRequest {
    /// A query for one order, without `version`.
    pub fn new(skill_id: SkillId, order: OrderRef, nonce_str: NonceStr) -> Self {
        let (transaction_id, trade_no) = order.split();
        Self {
            skill_id,
            transaction_id,
            trade_no,
            nonce_str,
            version: None,
        }
    }

    /// The order named, if exactly one of the two fields is set.
    pub fn order_ref(&self) -> Option<OrderRef> {
        OrderRef::join(&self.transaction_id, &self.trade_no)
    }

    fn from_fields(f: &mut Fields) -> Result<Self, WireError> {
        let msg = Self {
            skill_id: f.skill_id()?,
            transaction_id: f.opt("transactionId")?,
            trade_no: f.opt("tradeNo")?,
            nonce_str: f.req("nonceStr")?,
            version: f.opt("version")?,
        };
        exactly_one(
            &msg.transaction_id,
            &msg.trade_no,
            ("transactionId", "tradeNo"),
        )?;
        Ok(msg)
    }
}

/// The fields of a successful order query reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueriedOrder {
    /// Skill id.
    pub skill_id: SkillId,
    /// The platform's payment serial.
    pub transaction_id: TransactionId,
    /// The partner's order number.
    pub trade_no: TradeNo,
    /// Order amount.
    pub total_amt: Fen,
    /// Payment state.
    pub trade_status: TradeStatus,
    /// Description of the state (informational).
    pub trade_status_desc: Option<String>,
}

/// Reply to an order query (platform → partner).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderQueryReply {
    /// `SUCCESS` or `FAIL`.
    pub ret_code: RetCode,
    /// Error description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ret_msg: Option<String>,
    /// Skill id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skill_id: Option<SkillId>,
    /// The platform's payment serial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<TransactionId>,
    /// The partner's order number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<TradeNo>,
    /// Order amount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_amt: Option<Fen>,
    /// Payment state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_status: Option<TradeStatus>,
    /// Description of the state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_status_desc: Option<String>,
}

impl OrderQueryReply {
    /// A `SUCCESS` reply for `order`.
    pub fn success(order: QueriedOrder) -> Self {
        Self {
            ret_code: RetCode::Success,
            ret_msg: None,
            skill_id: Some(order.skill_id),
            transaction_id: Some(order.transaction_id),
            trade_no: Some(order.trade_no),
            total_amt: Some(order.total_amt),
            trade_status: Some(order.trade_status),
            trade_status_desc: order.trade_status_desc,
        }
    }

    /// A `FAIL` reply with `msg` cut to [`RET_MSG_MAX_BYTES`] bytes.
    pub fn fail(msg: impl Into<String>) -> Self {
        Self {
            ret_code: RetCode::Fail,
            ret_msg: Some(truncate_ret_msg(msg)),
            skill_id: None,
            transaction_id: None,
            trade_no: None,
            total_amt: None,
            trade_status: None,
            trade_status_desc: None,
        }
    }

    /// The order, when `retCode` is `SUCCESS` and every field the protocol
    /// requires of a `SUCCESS` reply is present (`tradeStatusDesc` too).
    pub fn order(&self) -> Result<QueriedOrder, FieldError> {
        success(self.ret_code)?;
        Ok(QueriedOrder {
            skill_id: need(&self.skill_id, "skillId")?,
            transaction_id: need(&self.transaction_id, "transactionId")?,
            trade_no: need(&self.trade_no, "tradeNo")?,
            total_amt: need(&self.total_amt, "totalAmt")?,
            trade_status: need(&self.trade_status, "tradeStatus")?,
            trade_status_desc: Some(need(&self.trade_status_desc, "tradeStatusDesc")?),
        })
    }

    fn from_fields(f: &mut Fields) -> Result<Self, WireError> {
        let (ret_code, ret_msg) = ret_fields(f)?;
        Ok(Self {
            ret_code,
            ret_msg,
            skill_id: f.opt_skill_id()?,
            transaction_id: f.opt("transactionId")?,
            trade_no: f.opt("tradeNo")?,
            total_amt: f.opt("totalAmt")?,
            trade_status: f.opt("tradeStatus")?,
            trade_status_desc: f.opt("tradeStatusDesc")?,
        })
    }
}

/// One line of an order (later revisions): item, quantity and the line's
/// amount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    /// Item id.
    pub item_id: ItemId,
    /// Quantity.
    pub quantity: Quantity,
    /// Amount of the line.
    pub amount: Fen,
}

impl OrderItem {
    fn from_fields(f: &mut Fields) -> Result<Self, WireError> {
        Ok(Self {
            item_id: f.req("itemId")?,
            quantity: f.req("quantity")?,
            amount: f.req("amount")?,
        })
    }
}

/// The sum of the item amounts, or [`FieldError::SumOverflow`].
pub fn items_total(items: &[OrderItem]) -> Result<Fen, FieldError> {
    let mut amounts = items.iter().map(|i| i.amount);
    let first = amounts
        .next()
        .ok_or(FieldError::ItemCount { max: MAX_ITEMS })?;
    amounts.try_fold(first, |sum, a| {
        sum.checked_add(a).ok_or(FieldError::SumOverflow)
    })
}

/// Refund request (partner → platform, 申请退款).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundRequest {
    /// `skillId` / `domainId`
    pub skill_id: SkillId,
    /// The platform's payment serial (one of).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<TransactionId>,
    /// The partner's order number (one of).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<TradeNo>,
    /// The partner's refund number.
    pub refund_trade_no: RefundTradeNo,
    /// Order amount.
    pub total_amt: Fen,
    /// Refund amount, at most `total_amt`.
    pub refund_amt: Fen,
    /// Refund reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_desc: Option<RefundDesc>,
    /// Random string.
    pub nonce_str: NonceStr,
    /// Refunded items (later revisions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_details: Option<Vec<OrderItem>>,
    /// Interface version (later revisions; the platform's default is `1.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
}

impl RefundRequest {
    /// A refund of `refund_amt` of the order; rejects `refund_amt > total_amt`.
    pub fn new(
        skill_id: SkillId,
        order: OrderRef,
        refund_trade_no: RefundTradeNo,
        total_amt: Fen,
        refund_amt: Fen,
        nonce_str: NonceStr,
    ) -> Result<Self, FieldError> {
        refund_within_total(total_amt, refund_amt)?;
        let (transaction_id, trade_no) = order.split();
        Ok(Self {
            skill_id,
            transaction_id,
            trade_no,
            refund_trade_no,
            total_amt,
            refund_amt,
            refund_desc: None,
            nonce_str,
            refund_details: None,
            version: None,
        })
    }

    /// The order named, if exactly one of the two fields is set.
    pub fn order_ref(&self) -> Option<OrderRef> {
        OrderRef::join(&self.transaction_id, &self.trade_no)
    }

    fn from_fields(f: &mut Fields) -> Result<Self, WireError> {
        let msg = Self {
            skill_id: f.skill_id()?,
            transaction_id: f.opt("transactionId")?,
            trade_no: f.opt("tradeNo")?,
            refund_trade_no: f.req("refundTradeNo")?,
            total_amt: f.req("totalAmt")?,
            refund_amt: f.req("refundAmt")?,
            refund_desc: f.opt("refundDesc")?,
            nonce_str: f.req("nonceStr")?,
            refund_details: f.array("refundDetails", false, MAX_ITEMS, OrderItem::from_fields)?,
            version: f.opt("version")?,
        };
        exactly_one(
            &msg.transaction_id,
            &msg.trade_no,
            ("transactionId", "tradeNo"),
        )?;
        refund_within_total(msg.total_amt, msg.refund_amt)
            .map_err(|e| WireError::invalid("refundAmt", e))?;
        Ok(msg)
    }
}

/// The fields of a successful refund reply: the platform accepted the
/// refund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedRefund {
    /// Skill id.
    pub skill_id: SkillId,
    /// The platform's payment serial.
    pub transaction_id: TransactionId,
    /// The partner's order number.
    pub trade_no: TradeNo,
    /// The platform's refund serial.
    pub refund_transaction_id: RefundTransactionId,
    /// The partner's refund number.
    pub refund_trade_no: RefundTradeNo,
    /// Order amount.
    pub total_amt: Fen,
    /// Refund amount (at most `total_amt`).
    pub refund_amt: Fen,
}

/// Reply to a refund request (platform → partner).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundReply {
    /// `SUCCESS` (refund accepted) or `FAIL`.
    pub ret_code: RetCode,
    /// Error description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ret_msg: Option<String>,
    /// Skill id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skill_id: Option<SkillId>,
    /// The platform's payment serial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<TransactionId>,
    /// The partner's order number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<TradeNo>,
    /// The platform's refund serial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_transaction_id: Option<RefundTransactionId>,
    /// The partner's refund number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_trade_no: Option<RefundTradeNo>,
    /// Order amount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_amt: Option<Fen>,
    /// Refund amount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_amt: Option<Fen>,
}

impl RefundReply {
    /// A `SUCCESS` reply for `refund`.
    pub fn success(refund: AcceptedRefund) -> Self {
        Self {
            ret_code: RetCode::Success,
            ret_msg: None,
            skill_id: Some(refund.skill_id),
            transaction_id: Some(refund.transaction_id),
            trade_no: Some(refund.trade_no),
            refund_transaction_id: Some(refund.refund_transaction_id),
            refund_trade_no: Some(refund.refund_trade_no),
            total_amt: Some(refund.total_amt),
            refund_amt: Some(refund.refund_amt),
        }
    }

    /// A `FAIL` reply with `msg` cut to [`RET_MSG_MAX_BYTES`] bytes.
    pub fn fail(msg: impl Into<String>) -> Self {
        Self {
            ret_code: RetCode::Fail,
            ret_msg: Some(truncate_ret_msg(msg)),
            skill_id: None,
            transaction_id: None,
            trade_no: None,
            refund_transaction_id: None,
            refund_trade_no: None,
            total_amt: None,
            refund_amt: None,
        }
    }

    /// The accepted refund, when `retCode` is `SUCCESS` and every required
    /// field is present.
    pub fn refund(&self) -> Result<AcceptedRefund, FieldError> {
        success(self.ret_code)?;
        let refund = AcceptedRefund {
            skill_id: need(&self.skill_id, "skillId")?,
            transaction_id: need(&self.transaction_id, "transactionId")?,
            trade_no: need(&self.trade_no, "tradeNo")?,
            refund_transaction_id: need(&self.refund_transaction_id, "refundTransactionId")?,
            refund_trade_no: need(&self.refund_trade_no, "refundTradeNo")?,
            total_amt: need(&self.total_amt, "totalAmt")?,
            refund_amt: need(&self.refund_amt, "refundAmt")?,
        };
        refund_within_total(refund.total_amt, refund.refund_amt)?;
        Ok(refund)
    }

    fn from_fields(f: &mut Fields) -> Result<Self, WireError> {
        let (ret_code, ret_msg) = ret_fields(f)?;
        let msg = Self {
            ret_code,
            ret_msg,
            skill_id: f.opt_skill_id()?,
            transaction_id: f.opt("transactionId")?,
            trade_no: f.opt("tradeNo")?,
            refund_transaction_id: f.opt("refundTransactionId")?,
            refund_trade_no: f.opt("refundTradeNo")?,
            total_amt: f.opt("totalAmt")?,
            refund_amt: f.opt("refundAmt")?,
        };
        if let (RetCode::Success, Some(total), Some(refund)) =
            (msg.ret_code, msg.total_amt, msg.refund_amt)
        {
            refund_within_total(total, refund).map_err(|e| WireError::invalid("refundAmt", e))?;
        }
        Ok(msg)
    }
}

/// Refund query (partner → platform, 查询退款), by exactly one of
/// `refundTransactionId` and `refundTradeNo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundQueryRequest {
    /// `skillId` / `domainId`
    pub skill_id: SkillId,
    /// The platform's refund serial (one of).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_transaction_id: Option<RefundTransactionId>,
    /// The partner's refund number (one of).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_trade_no: Option<RefundTradeNo>,
    /// Random string.
    pub nonce_str: NonceStr,
    /// Interface version (later revisions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
}

impl RefundQueryRequest {
    /// A query for one refund, without `version`.
    pub fn new(skill_id: SkillId, refund: RefundRef, nonce_str: NonceStr) -> Self {
        let (refund_transaction_id, refund_trade_no) = match refund {
            RefundRef::RefundTransactionId(t) => (Some(t), None),
            RefundRef::RefundTradeNo(t) => (None, Some(t)),
        };
        Self {
            skill_id,
            refund_transaction_id,
            refund_trade_no,
            nonce_str,
            version: None,
        }
    }

    /// The refund named, if exactly one of the two fields is set.
    pub fn refund_ref(&self) -> Option<RefundRef> {
        match (&self.refund_transaction_id, &self.refund_trade_no) {
            (Some(t), None) => Some(RefundRef::RefundTransactionId(t.clone())),
            (None, Some(t)) => Some(RefundRef::RefundTradeNo(t.clone())),
            _ => None,
        }
    }

    fn from_fields(f: &mut Fields) -> Result<Self, WireError> {
        let msg = Self {
            skill_id: f.skill_id()?,
            refund_transaction_id: f.opt("refundTransactionId")?,
            refund_trade_no: f.opt("refundTradeNo")?,
            nonce_str: f.req("nonceStr")?,
            version: f.opt("version")?,
        };
        exactly_one(
            &msg.refund_transaction_id,
            &msg.refund_trade_no,
            ("refundTransactionId", "refundTradeNo"),
        )?;
        Ok(msg)
    }
}

/// The fields of a successful refund query reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueriedRefund {
    /// Skill id.
    pub skill_id: SkillId,
    /// The platform's payment serial.
    pub transaction_id: TransactionId,
    /// The partner's order number.
    pub trade_no: TradeNo,
    /// The platform's refund serial.
    pub refund_transaction_id: RefundTransactionId,
    /// The partner's refund number.
    pub refund_trade_no: RefundTradeNo,
    /// Order amount.
    pub total_amt: Fen,
    /// Refund amount (at most `total_amt`).
    pub refund_amt: Fen,
    /// Refund state.
    pub refund_status: RefundStatus,
    /// Description of the state (informational).
    pub refund_status_desc: Option<String>,
}

/// Reply to a refund query (platform → partner).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundQueryReply {
    /// `SUCCESS` or `FAIL`.
    pub ret_code: RetCode,
    /// Error description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ret_msg: Option<String>,
    /// Skill id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skill_id: Option<SkillId>,
    /// The platform's payment serial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<TransactionId>,
    /// The partner's order number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<TradeNo>,
    /// The platform's refund serial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_transaction_id: Option<RefundTransactionId>,
    /// The partner's refund number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_trade_no: Option<RefundTradeNo>,
    /// Order amount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_amt: Option<Fen>,
    /// Refund amount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_amt: Option<Fen>,
    /// Refund state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_status: Option<RefundStatus>,
    /// Description of the state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_status_desc: Option<String>,
}

impl RefundQueryReply {
    /// A `SUCCESS` reply for `refund`.
    pub fn success(refund: QueriedRefund) -> Self {
        Self {
            ret_code: RetCode::Success,
            ret_msg: None,
            skill_id: Some(refund.skill_id),
            transaction_id: Some(refund.transaction_id),
            trade_no: Some(refund.trade_no),
            refund_transaction_id: Some(refund.refund_transaction_id),
            refund_trade_no: Some(refund.refund_trade_no),
            total_amt: Some(refund.total_amt),
            refund_amt: Some(refund.refund_amt),
            refund_status: Some(refund.refund_status),
            refund_status_desc: refund.refund_status_desc,
        }
    }

    /// A `FAIL` reply with `msg` cut to [`RET_MSG_MAX_BYTES`] bytes.
    pub fn fail(msg: impl Into<String>) -> Self {
        Self {
            ret_code: RetCode::Fail,
            ret_msg: Some(truncate_ret_msg(msg)),
            skill_id: None,
            transaction_id: None,
            trade_no: None,
            refund_transaction_id: None,
            refund_trade_no: None,
            total_amt: None,
            refund_amt: None,
            refund_status: None,
            refund_status_desc: None,
        }
    }

    /// The refund, when `retCode` is `SUCCESS` and every required field is
    /// present.
    pub fn refund(&self) -> Result<QueriedRefund, FieldError> {
        success(self.ret_code)?;
        let refund = QueriedRefund {
            skill_id: need(&self.skill_id, "skillId")?,
            transaction_id: need(&self.transaction_id, "transactionId")?,
            trade_no: need(&self.trade_no, "tradeNo")?,
            refund_transaction_id: need(&self.refund_transaction_id, "refundTransactionId")?,
            refund_trade_no: need(&self.refund_trade_no, "refundTradeNo")?,
            total_amt: need(&self.total_amt, "totalAmt")?,
            refund_amt: need(&self.refund_amt, "refundAmt")?,
            refund_status: need(&self.refund_status, "refundStatus")?,
            refund_status_desc: self.refund_status_desc.clone(),
        };
        refund_within_total(refund.total_amt, refund.refund_amt)?;
        Ok(refund)
    }

    fn from_fields(f: &mut Fields) -> Result<Self, WireError> {
        let (ret_code, ret_msg) = ret_fields(f)?;
        let msg = Self {
            ret_code,
            ret_msg,
            skill_id: f.opt_skill_id()?,
            transaction_id: f.opt("transactionId")?,
            trade_no: f.opt("tradeNo")?,
            refund_transaction_id: f.opt("refundTransactionId")?,
            refund_trade_no: f.opt("refundTradeNo")?,
            total_amt: f.opt("totalAmt")?,
            refund_amt: f.opt("refundAmt")?,
            refund_status: f.opt("refundStatus")?,
            refund_status_desc: f.opt("refundStatusDesc")?,
        };
        if let (RetCode::Success, Some(total), Some(refund)) =
            (msg.ret_code, msg.total_amt, msg.refund_amt)
        {
            refund_within_total(total, refund).map_err(|e| WireError::invalid("refundAmt", e))?;
        }
        Ok(msg)
    }
}

/// Refund result notification (platform → partner, 退款结果通知; optional
/// in the protocol).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundNotify {
    /// `skillId` / `domainId`
    pub skill_id: SkillId,
    /// The platform's payment serial.
    pub transaction_id: TransactionId,
    /// The partner's order number.
    pub trade_no: TradeNo,
    /// The platform's refund serial.
    pub refund_transaction_id: RefundTransactionId,
    /// The partner's refund number.
    pub refund_trade_no: RefundTradeNo,
    /// Order amount.
    pub total_amt: Fen,
    /// Refund amount, at most `total_amt`.
    pub refund_amt: Fen,
    /// Refund state.
    pub refund_status: RefundStatus,
    /// Description of the state (required by the spec, accepted missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_status_desc: Option<String>,
    /// Random string.
    pub nonce_str: NonceStr,
}

impl RefundNotify {
    fn from_fields(f: &mut Fields) -> Result<Self, WireError> {
        let msg = Self {
            skill_id: f.skill_id()?,
            transaction_id: f.req("transactionId")?,
            trade_no: f.req("tradeNo")?,
            refund_transaction_id: f.req("refundTransactionId")?,
            refund_trade_no: f.req("refundTradeNo")?,
            total_amt: f.req("totalAmt")?,
            refund_amt: f.req("refundAmt")?,
            refund_status: f.req("refundStatus")?,
            refund_status_desc: f.opt("refundStatusDesc")?,
            nonce_str: f.req("nonceStr")?,
        };
        refund_within_total(msg.total_amt, msg.refund_amt)
            .map_err(|e| WireError::invalid("refundAmt", e))?;
        Ok(msg)
    }
}

/// Create order (platform → partner, later revisions): 1 to
/// [`MAX_ITEMS`] items whose amounts add up to `total_amt`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrderRequest {
    /// `skillId` / `domainId`
    pub skill_id: SkillId,
    /// The partner's user identity.
    pub user_token: UserToken,
    /// Ordered items.
    pub details: Vec<OrderItem>,
    /// Sum of the item amounts.
    pub total_amt: Fen,
    /// Random string.
    pub nonce_str: NonceStr,
}

impl CreateOrderRequest {
    /// An order of `details` (1 to [`MAX_ITEMS`] items); `total_amt` is
    /// their sum.
    pub fn new(
        skill_id: SkillId,
        user_token: UserToken,
        details: Vec<OrderItem>,
        nonce_str: NonceStr,
    ) -> Result<Self, FieldError> {
        if details.is_empty() || details.len() > MAX_ITEMS {
            return Err(FieldError::ItemCount { max: MAX_ITEMS });
        }
        let total_amt = items_total(&details)?;
        Ok(Self {
            skill_id,
            user_token,
            details,
            total_amt,
            nonce_str,
        })
    }

    fn from_fields(f: &mut Fields) -> Result<Self, WireError> {
        let skill_id = f.skill_id()?;
        let user_token = f.req("userToken")?;
        let details = f
            .array("details", true, MAX_ITEMS, OrderItem::from_fields)?
            .unwrap_or_default();
        let total_amt = f.req("totalAmt")?;
        let nonce_str = f.req("nonceStr")?;
        let sum = items_total(&details).map_err(|e| WireError::invalid("details", e))?;
        if sum != total_amt {
            return Err(WireError::invalid("totalAmt", FieldError::TotalMismatch));
        }
        Ok(Self {
            skill_id,
            user_token,
            details,
            total_amt,
            nonce_str,
        })
    }
}

/// Reply to create order (partner → platform): the new order number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrderReply {
    /// `SUCCESS` or `FAIL`.
    pub ret_code: RetCode,
    /// Error description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ret_msg: Option<String>,
    /// The new, unique order number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<TradeNo>,
}

impl CreateOrderReply {
    /// `SUCCESS` with the new order number.
    pub fn success(trade_no: TradeNo) -> Self {
        Self {
            ret_code: RetCode::Success,
            ret_msg: None,
            trade_no: Some(trade_no),
        }
    }

    /// `FAIL` with `msg` cut to [`RET_MSG_MAX_BYTES`] bytes.
    pub fn fail(msg: impl Into<String>) -> Self {
        Self {
            ret_code: RetCode::Fail,
            ret_msg: Some(truncate_ret_msg(msg)),
            trade_no: None,
        }
    }

    /// The new order number, when `retCode` is `SUCCESS` and it is present.
    pub fn created(&self) -> Result<&TradeNo, FieldError> {
        success(self.ret_code)?;
        self.trade_no.as_ref().ok_or(FieldError::Missing("tradeNo"))
    }

    /// The JSON body.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_json(self)
    }

    fn from_fields(f: &mut Fields) -> Result<Self, WireError> {
        let (ret_code, ret_msg) = ret_fields(f)?;
        Ok(Self {
            ret_code,
            ret_msg,
            trade_no: f.opt("tradeNo")?,
        })
    }
}

deserialize_via_fields!(
    Reply,
    ShipNotify,
    OrderQueryRequest,
    OrderQueryReply,
    OrderItem,
    RefundRequest,
    RefundReply,
    RefundQueryRequest,
    RefundQueryReply,
    RefundNotify,
    CreateOrderRequest,
    CreateOrderReply,
);

#[cfg(test)]
mod tests {
    use super::super::{parse, to_wire, ParseError, Revision};
    use super::*;

    const SHIP: &str = r#"{"domainId":"skill-123","transactionId":"T1","tradeNo":"O1","totalAmt":990,"nonceStr":"n1"}"#;

    fn err<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &str) -> String {
        parse::<T>(body.as_bytes()).unwrap_err().to_string()
    }

    fn with(body: &str, extra: &str) -> String {
        format!("{},{extra}}}", body.strip_suffix('}').unwrap())
    }

    fn item(id: &str, amount: i64) -> OrderItem {
        OrderItem {
            item_id: ItemId::parse(id).unwrap(),
            quantity: Quantity::new(1).unwrap(),
            amount: Fen::new(amount).unwrap(),
        }
    }

    #[test]
    fn ship_notify_skill_id_spellings() {
        let a: ShipNotify = parse(SHIP.as_bytes()).unwrap();
        let b: ShipNotify = parse(SHIP.replace("domainId", "skillId").as_bytes()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.skill_id.as_str(), "skill-123");
        assert_eq!(
            err::<ShipNotify>(&with(SHIP, r#""skillId":"skill-123""#)),
            "domainId and skillId must not both be present"
        );
        assert_eq!(
            err::<ShipNotify>(&SHIP.replace(r#""domainId":"skill-123","#, "")),
            "missing field skillId"
        );
        assert_eq!(
            err::<ShipNotify>(&SHIP.replace("skill-123", &"s".repeat(33))),
            "invalid field domainId: must be 1 to 32 characters"
        );
    }

    #[test]
    fn ship_notify_extensions() {
        let body = with(
            SHIP,
            r#""userToken":"u-42","futureField":{"a":[1,2]},"another":null"#,
        );
        let n: ShipNotify = parse(body.as_bytes()).unwrap();
        assert_eq!(n.user_token.unwrap().as_str(), "u-42");
        assert_eq!(
            err::<ShipNotify>(&with(SHIP, r#""tradeNo":"O2""#)),
            "duplicate field tradeNo"
        );
        assert_eq!(
            err::<ShipNotify>(&with(SHIP, r#""futureField":{"a":1,"a":2}"#)),
            "duplicate field a"
        );
        assert_eq!(
            err::<ShipNotify>(&with(SHIP, r#""userToken":"has space""#)),
            "invalid field userToken: must be printable ASCII without spaces"
        );
    }

    #[test]
    fn ship_notify_amounts() {
        for (amount, message) in [
            ("0", "invalid field totalAmt: must be positive"),
            ("-1", "invalid field totalAmt: must be positive"),
            ("990.0", "invalid field totalAmt: must be an integer"),
            ("1e3", "invalid field totalAmt: must be an integer"),
            ("\"5\"", "invalid field totalAmt: must be an integer"),
            (
                "9223372036854775808",
                "invalid field totalAmt: is out of range",
            ),
            ("true", "invalid field totalAmt: must be an integer"),
        ] {
            let body = SHIP.replace("990", amount);
            assert_eq!(err::<ShipNotify>(&body), message, "{amount}");
        }
        let body = SHIP.replace("990", "9223372036854775807");
        assert_eq!(
            parse::<ShipNotify>(body.as_bytes()).unwrap().total_amt,
            Fen::MAX
        );
        let body = SHIP.replace("990", "1");
        assert_eq!(
            parse::<ShipNotify>(body.as_bytes())
                .unwrap()
                .total_amt
                .get(),
            1
        );
    }

    #[test]
    fn order_query_request_one_of() {
        let base = r#"{"skillId":"s","nonceStr":"n""#;
        let by_txn: OrderQueryRequest =
            parse(format!(r#"{base},"transactionId":"T1"}}"#).as_bytes()).unwrap();
        assert_eq!(
            by_txn.order_ref(),
            Some(OrderRef::TransactionId(TransactionId::parse("T1").unwrap()))
        );
        let by_trade: OrderQueryRequest =
            parse(format!(r#"{base},"tradeNo":"O1","version":"1.0"}}"#).as_bytes()).unwrap();
        assert_eq!(by_trade.version, Some(Version::default()));
        assert_eq!(by_trade.transaction_id, None);
        let one_of = "exactly one of transactionId and tradeNo is required";
        assert_eq!(err::<OrderQueryRequest>(&format!("{base}}}")), one_of);
        assert_eq!(
            err::<OrderQueryRequest>(&format!(r#"{base},"transactionId":"T1","tradeNo":"O1"}}"#)),
            one_of
        );
        assert_eq!(
            parse::<OrderQueryRequest>(
                format!(r#"{base},"transactionId":"T1","tradeNo":""}}"#).as_bytes()
            )
            .unwrap()
            .trade_no,
            None
        );
        let built = OrderQueryRequest::new(
            SkillId::parse("s").unwrap(),
            OrderRef::TradeNo(TradeNo::parse("O1").unwrap()),
            NonceStr::parse("n").unwrap(),
        );
        assert_eq!(
            to_wire(&built, Revision::R2019),
            br#"{"skillId":"s","tradeNo":"O1","nonceStr":"n"}"#
        );
        assert_eq!(
            parse::<OrderQueryRequest>(&to_wire(&built, Revision::R2018)).unwrap(),
            built
        );
    }

    #[test]
    fn order_query_reply() {
        let ok = r#"{"retCode":"SUCCESS","domainId":"s","transactionId":"T1","tradeNo":"O1","totalAmt":990,"tradeStatus":"SUCCESS","tradeStatusDesc":"支付成功"}"#;
        let reply: OrderQueryReply = parse(ok.as_bytes()).unwrap();
        let order = reply.order().unwrap();
        assert_eq!(order.trade_status, TradeStatus::Success);
        assert_eq!(order.total_amt.get(), 990);
        assert_eq!(order.trade_status_desc.as_deref(), Some("支付成功"));
        assert_eq!(
            OrderQueryReply::success(order.clone()).order().unwrap(),
            order
        );

        let missing = ok.replace(r#""tradeStatus":"SUCCESS","#, "");
        let reply: OrderQueryReply = parse(missing.as_bytes()).unwrap();
        assert_eq!(reply.order(), Err(FieldError::Missing("tradeStatus")));
        let missing = ok.replace(r#","tradeStatusDesc":"支付成功""#, "");
        let reply: OrderQueryReply = parse(missing.as_bytes()).unwrap();
        assert_eq!(reply.order(), Err(FieldError::Missing("tradeStatusDesc")));
        assert_eq!(
            err::<OrderQueryReply>(&ok.replace(
                "\"SUCCESS\",\"tradeStatusDesc",
                "\"PAID\",\"tradeStatusDesc"
            )),
            "invalid field tradeStatus: must be one of NOTPAY, PROCESSING, SUCCESS, FAIL"
        );

        let fail = r#"{"retCode":"FAIL","retMsg":"order not found","totalAmt":0,"tradeNo":"","tradeStatus":"?"}"#;
        let reply: OrderQueryReply = parse(fail.as_bytes()).unwrap();
        assert_eq!(reply.ret_msg.as_deref(), Some("order not found"));
        assert_eq!(reply.total_amt, None);
        assert_eq!(reply.order(), Err(FieldError::NotSuccess));
        assert_eq!(
            err::<OrderQueryReply>(r#"{"retCode":"OK"}"#),
            "invalid field retCode: must be one of SUCCESS, FAIL"
        );
        assert_eq!(
            err::<OrderQueryReply>(r#"{"retMsg":"x"}"#),
            "missing field retCode"
        );
    }

    #[test]
    fn refund_request_rules() {
        let base = r#"{"skillId":"s","transactionId":"T1","refundTradeNo":"R1","totalAmt":990,"refundAmt":990,"nonceStr":"n"}"#;
        let r: RefundRequest = parse(base.as_bytes()).unwrap();
        assert_eq!(r.refund_amt, r.total_amt);
        assert_eq!(r.version, None);
        assert_eq!(
            err::<RefundRequest>(&base.replace(r#""refundAmt":990"#, r#""refundAmt":991"#)),
            "invalid field refundAmt: must not exceed totalAmt"
        );
        assert_eq!(
            err::<RefundRequest>(&base.replace(r#""transactionId":"T1""#, r#""tradeNo":"O-1""#)),
            "invalid field tradeNo: must contain only ASCII letters and digits"
        );
        assert_eq!(
            err::<RefundRequest>(&with(base, r#""tradeNo":"O1""#)),
            "exactly one of transactionId and tradeNo is required"
        );
        assert_eq!(
            err::<RefundRequest>(&with(base, r#""refundDesc":"a\u0007b""#)),
            "invalid field refundDesc: must not contain control characters"
        );
        let details = with(
            base,
            r#""refundDetails":[{"itemId":"i1","quantity":2,"amount":990}],"version":"1.0","refundDesc":"不想要了""#,
        );
        let r: RefundRequest = parse(details.as_bytes()).unwrap();
        assert_eq!(r.refund_details.as_ref().unwrap()[0].quantity.get(), 2);
        assert_eq!(r.refund_desc.as_ref().unwrap().as_str(), "不想要了");
        assert_eq!(
            err::<RefundRequest>(&with(
                base,
                r#""refundDetails":[{"itemId":"i1","quantity":0,"amount":1}]"#
            )),
            "invalid field refundDetails[0].quantity: must be at least 1"
        );
        assert_eq!(
            err::<RefundRequest>(&with(base, r#""refundDetails":[]"#)),
            "invalid field refundDetails: must have 1 to 100 items"
        );
        assert_eq!(
            err::<RefundRequest>(&with(base, r#""refundDetails":{}"#)),
            "invalid field refundDetails: must be an array"
        );
        assert_eq!(
            err::<RefundRequest>(&with(base, r#""refundDetails":[1]"#)),
            "invalid field refundDetails[0]: must be an object"
        );

        let ten = Fen::new(10).unwrap();
        let eleven = Fen::new(11).unwrap();
        let make = |refund| {
            RefundRequest::new(
                SkillId::parse("s").unwrap(),
                OrderRef::TransactionId(TransactionId::parse("T1").unwrap()),
                RefundTradeNo::parse("R1").unwrap(),
                ten,
                refund,
                NonceStr::parse("n").unwrap(),
            )
        };
        assert_eq!(make(eleven), Err(FieldError::RefundExceedsTotal));
        let r = make(ten).unwrap();
        assert_eq!(
            r.order_ref(),
            Some(OrderRef::TransactionId(TransactionId::parse("T1").unwrap()))
        );
    }

    #[test]
    fn refund_reply() {
        let ok = r#"{"retCode":"SUCCESS","skillId":"s","transactionId":"T1","tradeNo":"O1","refundTransactionId":"RT1","refundTradeNo":"R1","totalAmt":990,"refundAmt":100}"#;
        let reply: RefundReply = parse(ok.as_bytes()).unwrap();
        let refund = reply.refund().unwrap();
        assert_eq!(refund.refund_amt.get(), 100);
        assert_eq!(refund.refund_transaction_id.as_str(), "RT1");
        assert_eq!(
            RefundReply::success(refund.clone()).refund().unwrap(),
            refund
        );
        assert_eq!(
            err::<RefundReply>(&ok.replace(r#""refundAmt":100"#, r#""refundAmt":1000"#)),
            "invalid field refundAmt: must not exceed totalAmt"
        );
        let partial: RefundReply =
            parse(ok.replace(r#""refundTransactionId":"RT1","#, "").as_bytes()).unwrap();
        assert_eq!(
            partial.refund(),
            Err(FieldError::Missing("refundTransactionId"))
        );
        let fail: RefundReply = parse(br#"{"retCode":"FAIL","retMsg":"refund exceeds"}"#).unwrap();
        assert_eq!(fail.refund(), Err(FieldError::NotSuccess));
        assert_eq!(RefundReply::fail("x").ret_msg.as_deref(), Some("x"));
    }

    #[test]
    fn refund_query() {
        let base = r#"{"skillId":"s","nonceStr":"n""#;
        let q: RefundQueryRequest =
            parse(format!(r#"{base},"refundTradeNo":"R1"}}"#).as_bytes()).unwrap();
        assert_eq!(
            q.refund_ref(),
            Some(RefundRef::RefundTradeNo(
                RefundTradeNo::parse("R1").unwrap()
            ))
        );
        let one_of = "exactly one of refundTransactionId and refundTradeNo is required";
        assert_eq!(err::<RefundQueryRequest>(&format!("{base}}}")), one_of);
        assert_eq!(
            err::<RefundQueryRequest>(&format!(
                r#"{base},"refundTradeNo":"R1","refundTransactionId":"RT1"}}"#
            )),
            one_of
        );
        let built = RefundQueryRequest::new(
            SkillId::parse("s").unwrap(),
            RefundRef::RefundTransactionId(RefundTransactionId::parse("RT1").unwrap()),
            NonceStr::parse("n").unwrap(),
        );
        assert_eq!(
            parse::<RefundQueryRequest>(&to_wire(&built, Revision::R2019)).unwrap(),
            built
        );

        let ok = r#"{"retCode":"SUCCESS","domainId":"s","transactionId":"T1","tradeNo":"O1","refundTransactionId":"RT1","refundTradeNo":"R1","totalAmt":990,"refundAmt":990,"refundStatus":"PROCESSING","refundStatusDesc":"退款中"}"#;
        let reply: RefundQueryReply = parse(ok.as_bytes()).unwrap();
        let refund = reply.refund().unwrap();
        assert_eq!(refund.refund_status, RefundStatus::Processing);
        assert_eq!(
            RefundQueryReply::success(refund.clone()).refund().unwrap(),
            refund
        );
        assert_eq!(
            err::<RefundQueryReply>(&ok.replace("PROCESSING", "NOTPAY")),
            "invalid field refundStatus: must be one of PROCESSING, SUCCESS, FAIL"
        );
        assert_eq!(
            RefundQueryReply::fail("no").refund(),
            Err(FieldError::NotSuccess)
        );
    }

    #[test]
    fn refund_notify() {
        let body = r#"{"domainId":"s","transactionId":"T1","tradeNo":"O1","refundTransactionId":"RT1","refundTradeNo":"R1","totalAmt":990,"refundAmt":990,"refundStatus":"SUCCESS","refundStatusDesc":"退款成功","nonceStr":"n"}"#;
        let n: RefundNotify = parse(body.as_bytes()).unwrap();
        assert_eq!(n.refund_status, RefundStatus::Success);
        assert_eq!(n.refund_status_desc.as_deref(), Some("退款成功"));
        let no_desc: RefundNotify = parse(
            body.replace(r#""refundStatusDesc":"退款成功","#, "")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(no_desc.refund_status_desc, None);
        assert_eq!(
            err::<RefundNotify>(&body.replace(r#""refundAmt":990"#, r#""refundAmt":991"#)),
            "invalid field refundAmt: must not exceed totalAmt"
        );
        assert_eq!(
            err::<RefundNotify>(&body.replace(r#""refundStatus":"SUCCESS","#, "")),
            "missing field refundStatus"
        );
        assert_eq!(
            parse::<RefundNotify>(&to_wire(&n, Revision::R2018)).unwrap(),
            n
        );
    }

    fn create_body(amounts: &[&str], total: &str) -> String {
        let details: Vec<String> = amounts
            .iter()
            .enumerate()
            .map(|(i, a)| format!(r#"{{"itemId":"item{i}","quantity":1,"amount":{a}}}"#))
            .collect();
        format!(
            r#"{{"skillId":"s","userToken":"u1","details":[{}],"totalAmt":{total},"nonceStr":"n"}}"#,
            details.join(",")
        )
    }

    #[test]
    fn create_order_sum() {
        let ok: CreateOrderRequest = parse(create_body(&["100", "200"], "300").as_bytes()).unwrap();
        assert_eq!(ok.details.len(), 2);
        assert_eq!(ok.total_amt.get(), 300);
        assert_eq!(
            err::<CreateOrderRequest>(&create_body(&["100", "200"], "299")),
            "invalid field totalAmt: must equal the sum of the item amounts"
        );
        let max = i64::MAX.to_string();
        assert_eq!(
            err::<CreateOrderRequest>(&create_body(&[&max, "1"], &max)),
            "invalid field details: item amounts overflow"
        );
        assert_eq!(
            err::<CreateOrderRequest>(&create_body(&[], "1")),
            "invalid field details: must have 1 to 100 items"
        );
        let hundred = vec!["1"; 100];
        assert!(parse::<CreateOrderRequest>(create_body(&hundred, "100").as_bytes()).is_ok());
        let too_many = vec!["1"; 101];
        assert_eq!(
            err::<CreateOrderRequest>(&create_body(&too_many, "101")),
            "invalid field details: must have 1 to 100 items"
        );
        assert_eq!(
            err::<CreateOrderRequest>(&create_body(&["100", "0"], "100")),
            "invalid field details[1].amount: must be positive"
        );
        assert_eq!(
            err::<CreateOrderRequest>(
                &create_body(&["100"], "100").replace(r#""itemId":"item0","#, "")
            ),
            "missing field details[0].itemId"
        );
        assert_eq!(
            err::<CreateOrderRequest>(
                &create_body(&["100"], "100")
                    .replace(r#""quantity":1"#, r#""quantity":1,"quantity":2"#)
            ),
            "duplicate field quantity"
        );
        assert_eq!(
            err::<CreateOrderRequest>(
                &create_body(&["100"], "100").replace(r#""userToken":"u1","#, "")
            ),
            "missing field userToken"
        );
        assert_eq!(
            err::<CreateOrderRequest>(&create_body(&["100"], "100").replace(
                r#""details":[{"itemId":"item0","quantity":1,"amount":100}],"#,
                ""
            )),
            "missing field details"
        );
    }

    #[test]
    fn create_order_constructor() {
        let make = |items| {
            CreateOrderRequest::new(
                SkillId::parse("s").unwrap(),
                UserToken::parse("u1").unwrap(),
                items,
                NonceStr::parse("n").unwrap(),
            )
        };
        let order = make(vec![item("a", 100), item("b", 250)]).unwrap();
        assert_eq!(order.total_amt.get(), 350);
        assert_eq!(
            parse::<CreateOrderRequest>(&to_wire(&order, Revision::R2019)).unwrap(),
            order
        );
        assert_eq!(make(vec![]), Err(FieldError::ItemCount { max: MAX_ITEMS }));
        assert_eq!(
            make(vec![item("a", i64::MAX), item("b", 1)]),
            Err(FieldError::SumOverflow)
        );
        assert_eq!(
            make((0..101).map(|i| item(&format!("i{i}"), 1)).collect()),
            Err(FieldError::ItemCount { max: MAX_ITEMS })
        );
    }

    #[test]
    fn create_order_reply() {
        let ok = CreateOrderReply::success(TradeNo::parse("ORD1").unwrap());
        assert_eq!(ok.to_bytes(), br#"{"retCode":"SUCCESS","tradeNo":"ORD1"}"#);
        assert_eq!(ok.created().unwrap().as_str(), "ORD1");
        assert_eq!(parse::<CreateOrderReply>(&ok.to_bytes()).unwrap(), ok);
        let fail = CreateOrderReply::fail("out of stock");
        assert_eq!(
            fail.to_bytes(),
            br#"{"retCode":"FAIL","retMsg":"out of stock"}"#
        );
        assert_eq!(fail.created(), Err(FieldError::NotSuccess));
        let no_trade: CreateOrderReply = parse(br#"{"retCode":"SUCCESS"}"#).unwrap();
        assert_eq!(no_trade.created(), Err(FieldError::Missing("tradeNo")));
    }

    #[test]
    fn reply_serialisation() {
        assert_eq!(Reply::success().to_bytes(), br#"{"retCode":"SUCCESS"}"#);
        assert_eq!(
            Reply::fail("bad signature").to_bytes(),
            br#"{"retCode":"FAIL","retMsg":"bad signature"}"#
        );
        let long = Reply::fail("x".repeat(40));
        assert_eq!(long.ret_msg.as_deref(), Some("x".repeat(32).as_str()));
        // 11 three-byte characters = 33 bytes: cut to 10 on a boundary.
        let chinese = Reply::fail("签".repeat(11));
        assert_eq!(chinese.ret_msg.as_deref(), Some("签".repeat(10).as_str()));
        assert_eq!(
            Reply::fail("a".to_owned() + &"签".repeat(11))
                .ret_msg
                .unwrap()
                .len(),
            31
        );
        assert_eq!(Reply::fail("").ret_msg.as_deref(), Some(""));
        assert_eq!(
            parse::<Reply>(&Reply::fail("nope").to_bytes()).unwrap(),
            Reply::fail("nope")
        );
        assert_eq!(
            parse::<Reply>(&Reply::success().to_bytes()).unwrap(),
            Reply::success()
        );
        assert_eq!(
            to_wire(&Reply::success(), Revision::R2018),
            Reply::success().to_bytes()
        );
        assert!(matches!(
            parse::<Reply>(br#"{"retCode":"FAIL","retMsg":5}"#),
            Ok(Reply { ret_msg: None, .. })
        ));
        assert!(matches!(
            parse::<Reply>(br#"{"retCode":"SUCCESS","retMsg":5}"#),
            Err(ParseError::InvalidField { .. })
        ));
    }

    #[test]
    fn serde_json_direct_use_agrees() {
        let a: ShipNotify = serde_json::from_str(SHIP).unwrap();
        let b: ShipNotify = parse(SHIP.as_bytes()).unwrap();
        assert_eq!(a, b);
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["skillId"], "skill-123");
        assert!(v.get("userToken").is_none());
    }
}
