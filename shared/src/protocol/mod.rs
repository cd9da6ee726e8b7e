//! Wire types of the Dingdang payment protocol: the 2018 seed
//! (`pay-protocol.zh.md`) and its later revisions. No I/O here.
//!
//! Parse, don't validate: every field type rejects invalid
//! values on construction, and every message checks its cross-field rules
//! (exactly one order reference, `refundAmt <= totalAmt`, item sums) while
//! deserialising. On input the skill id is accepted as `domainId` (2018) or
//! `skillId` (later), never both; unknown fields are ignored and duplicate
//! keys rejected. On output [`to_wire`] writes either revision.
//!
//! [`parse`] is the entry point for request and reply bodies: its errors are
//! short, name the field and the rule, and never echo input values.

mod fields;
mod json;
mod messages;
mod wire;

use std::fmt;
use std::str::FromStr;

use serde::de::{DeserializeOwned, IgnoredAny};

pub use fields::{
    Fen, FieldError, ItemId, NonceStr, Quantity, RefundDesc, RefundStatus, RefundTradeNo,
    RefundTransactionId, RetCode, SkillId, TradeNo, TradeStatus, TransactionId, UserToken, Version,
};
pub use messages::{
    items_total, truncate_ret_msg, AcceptedRefund, CreateOrderReply, CreateOrderRequest, OrderItem,
    OrderQueryReply, OrderQueryRequest, OrderRef, QueriedOrder, QueriedRefund, RefundNotify,
    RefundQueryReply, RefundQueryRequest, RefundRef, RefundReply, RefundRequest, Reply, ShipNotify,
    MAX_ITEMS, RET_MSG_MAX_BYTES,
};
pub use wire::{to_wire, try_to_wire};

/// Largest body [`parse`] accepts: 64 KiB.
pub const MAX_BODY_LEN: usize = 64 * 1024;

/// Which revision of the protocol to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Revision {
    /// The June 2018 seed: `domainId`, no `userToken`/`version`/`refundDetails`.
    R2018,
    /// Later revisions: `skillId` and the added fields.
    R2019,
}

impl Revision {
    /// `"2018"` or `"2019"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Revision::R2018 => "2018",
            Revision::R2019 => "2019",
        }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Revision {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "2018" => Ok(Revision::R2018),
            "2019" => Ok(Revision::R2019),
            _ => Err(FieldError::OneOf("2018, 2019")),
        }
    }
}

/// Why a body was rejected. The Display is short and safe to return to the
/// caller: it names fields and rules, never input values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Over [`MAX_BODY_LEN`] bytes.
    #[error("body too large")]
    TooLarge,
    /// Not UTF-8.
    #[error("body is not UTF-8")]
    NotUtf8,
    /// Not JSON (or trailing data after it).
    #[error("invalid JSON")]
    InvalidJson,
    /// JSON, but not an object.
    #[error("JSON body must be an object")]
    NotObject,
    /// A required field is absent or `null`.
    #[error("missing field {0}")]
    MissingField(String),
    /// A field appears twice.
    #[error("duplicate field {0}")]
    DuplicateField(String),
    /// A key that is not a plain name appears twice in an object.
    #[error("duplicate key in JSON object")]
    DuplicateKey,
    /// A field's value breaks its rule.
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// Field name, e.g. `totalAmt` or `details[2].amount`.
        field: String,
        /// The rule, e.g. `must be positive`.
        reason: String,
    },
    /// A rule across fields, e.g. exactly one of `transactionId` and `tradeNo`.
    #[error("{0}")]
    Invalid(String),
    /// Any other mismatch (types not from this module).
    #[error("invalid message")]
    Unexpected,
}

impl ParseError {
    /// The field concerned, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            ParseError::MissingField(f) | ParseError::DuplicateField(f) => Some(f),
            ParseError::InvalidField { field, .. } => Some(field),
            _ => None,
        }
    }

    fn from_json(e: &serde_json::Error) -> Self {
        if e.classify() != serde_json::error::Category::Data {
            return ParseError::InvalidJson;
        }
        let mut msg = e.to_string();
        if e.line() != 0 {
            let position = format!(" at line {} column {}", e.line(), e.column());
            if msg.ends_with(&position) {
                msg.truncate(msg.len() - position.len());
            }
        }
        let quoted = |rest: &str| -> Option<String> {
            rest.strip_suffix('`')
                .filter(|name| !name.contains('`'))
                .map(str::to_owned)
        };
        if let Some(name) = msg.strip_prefix("missing field `").and_then(quoted) {
            ParseError::MissingField(name)
        } else if let Some(name) = msg.strip_prefix("duplicate field `").and_then(quoted) {
            ParseError::DuplicateField(name)
        } else if msg == "duplicate key" {
            ParseError::DuplicateKey
        } else if let Some((field, reason)) = msg
            .strip_prefix("invalid field `")
            .and_then(|rest| rest.split_once("`: "))
        {
            ParseError::InvalidField {
                field: field.to_owned(),
                reason: reason.to_owned(),
            }
        } else if let Some(reason) = msg.strip_prefix("invalid message: ") {
            ParseError::Invalid(reason.to_owned())
        } else if msg == "expected a JSON object" {
            ParseError::NotObject
        } else {
            ParseError::Unexpected
        }
    }
}

/// Parses a request or reply body: at most [`MAX_BODY_LEN`] bytes, UTF-8,
/// a JSON object, then `T`'s own rules.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    if body.len() > MAX_BODY_LEN {
        return Err(ParseError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    let start = text.trim_start_matches([' ', '\t', '\n', '\r']);
    if !start.starts_with('{') {
        return Err(if serde_json::from_str::<IgnoredAny>(text).is_ok() {
            ParseError::NotObject
        } else {
            ParseError::InvalidJson
        });
    }
    serde_json::from_str(text).map_err(|e| ParseError::from_json(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = include_bytes!("../../tests/vectors/ship_notify_body.json");

    fn err<T: DeserializeOwned + fmt::Debug>(body: &str) -> String {
        parse::<T>(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn revision_words() {
        assert_eq!("2018".parse::<Revision>(), Ok(Revision::R2018));
        assert_eq!("2019".parse::<Revision>(), Ok(Revision::R2019));
        assert!("2020".parse::<Revision>().is_err());
        assert_eq!(Revision::R2019.to_string(), "2019");
    }

    #[test]
    fn body_limits() {
        let mut big = br#"{"retCode":"SUCCESS","x":""#.to_vec();
        big.resize(MAX_BODY_LEN - 2, b'a');
        big.extend_from_slice(b"\"}");
        assert_eq!(big.len(), MAX_BODY_LEN);
        assert!(parse::<Reply>(&big).is_ok());
        big.insert(1, b' ');
        assert_eq!(parse::<Reply>(&big), Err(ParseError::TooLarge));
        assert_eq!(
            parse::<Reply>(b"{\"retCode\":\"SUCCESS\",\"retMsg\":\"\xff\"}"),
            Err(ParseError::NotUtf8)
        );
    }

    #[test]
    fn not_json_or_not_object() {
        assert_eq!(parse::<Reply>(b""), Err(ParseError::InvalidJson));
        assert_eq!(parse::<Reply>(b"{"), Err(ParseError::InvalidJson));
        assert_eq!(parse::<Reply>(b"hello"), Err(ParseError::InvalidJson));
        assert_eq!(
            parse::<Reply>(b"{\"retCode\":\"SUCCESS\"} x"),
            Err(ParseError::InvalidJson)
        );
        assert_eq!(
            parse::<Reply>(b"{\"retCode\":\"SUCCESS\",}"),
            Err(ParseError::InvalidJson)
        );
        for body in [
            "[]",
            "[{\"retCode\":\"SUCCESS\"}]",
            "\"SUCCESS\"",
            "1",
            "null",
            " true ",
        ] {
            assert_eq!(
                parse::<Reply>(body.as_bytes()),
                Err(ParseError::NotObject),
                "{body}"
            );
        }
        assert_eq!(
            parse::<Reply>(b" \n{\"retCode\":\"SUCCESS\"}\n"),
            Ok(Reply::success())
        );
    }

    #[test]
    fn vector_body_parses() {
        let n: ShipNotify = parse(BODY).unwrap();
        assert_eq!(n.skill_id.as_str(), "skill-123");
        assert_eq!(n.transaction_id.as_str(), "T2018062200000001");
        assert_eq!(n.trade_no.as_str(), "ORD20180622001");
        assert_eq!(n.total_amt.get(), 990);
        assert_eq!(n.nonce_str.as_str(), "5K8264ILTKCH16CQ2502SI8ZNMTM67VS");
        assert_eq!(n.user_token, None);
        // The seed's own spelling round-trips byte for byte.
        assert_eq!(to_wire(&n, Revision::R2018), BODY);
    }

    #[test]
    fn errors_name_field_and_rule_without_values() {
        let body =
            r#"{"skillId":"s","transactionId":"T1","tradeNo":"O1","totalAmt":0,"nonceStr":"n"}"#;
        assert_eq!(
            err::<ShipNotify>(body),
            "invalid field totalAmt: must be positive"
        );
        let p = parse::<ShipNotify>(body.as_bytes()).unwrap_err();
        assert_eq!(p.field(), Some("totalAmt"));

        let body = r#"{"skillId":"s","transactionId":"T1","tradeNo":"O1","totalAmt":"SECRET990","nonceStr":"n"}"#;
        let e = err::<ShipNotify>(body);
        assert_eq!(e, "invalid field totalAmt: must be an integer");
        let body = r#"{"skillId":"s","transactionId":"T1","tradeNo":"SECRET-1","totalAmt":1,"nonceStr":"n"}"#;
        assert_eq!(
            err::<ShipNotify>(body),
            "invalid field tradeNo: must contain only ASCII letters and digits"
        );
        let body = r#"{"skillId":"s","transactionId":"T1","totalAmt":1,"nonceStr":"n"}"#;
        assert_eq!(err::<ShipNotify>(body), "missing field tradeNo");
        let body =
            r#"{"skillId":"s","transactionId":"T1","tradeNo":null,"totalAmt":1,"nonceStr":"n"}"#;
        assert_eq!(err::<ShipNotify>(body), "missing field tradeNo");
        let body = r#"{"skillId":"s","skillId":"s","transactionId":"T1","tradeNo":"O","totalAmt":1,"nonceStr":"n"}"#;
        assert_eq!(err::<ShipNotify>(body), "duplicate field skillId");
        let body = r#"{"skillId":"s","transactionId":"T1","tradeNo":"O","totalAmt":1,"nonceStr":"n","x y":1,"x y":2}"#;
        assert_eq!(
            parse::<ShipNotify>(body.as_bytes()),
            Err(ParseError::DuplicateKey)
        );
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Foreign {
        a: u8,
    }

    #[test]
    fn foreign_types_get_generic_errors() {
        assert_eq!(err::<Foreign>(r#"{"a":"SECRET"}"#), "invalid message");
        assert_eq!(err::<Foreign>(r#"{}"#), "missing field a");
        assert_eq!(err::<Foreign>(r#"{"a":1,"a":2}"#), "duplicate field a");
        assert!(parse::<Foreign>(br#"{"a":1,"b":2}"#).is_ok());
    }

    #[test]
    fn to_wire_revisions() {
        let n = ShipNotify {
            skill_id: SkillId::parse("skill-123").unwrap(),
            transaction_id: TransactionId::parse("T1").unwrap(),
            trade_no: TradeNo::parse("O1").unwrap(),
            total_amt: Fen::new(990).unwrap(),
            nonce_str: NonceStr::parse("n").unwrap(),
            user_token: Some(UserToken::parse("u-1").unwrap()),
        };
        assert_eq!(
            String::from_utf8(to_wire(&n, Revision::R2019)).unwrap(),
            r#"{"skillId":"skill-123","transactionId":"T1","tradeNo":"O1","totalAmt":990,"nonceStr":"n","userToken":"u-1"}"#
        );
        assert_eq!(
            String::from_utf8(to_wire(&n, Revision::R2018)).unwrap(),
            r#"{"domainId":"skill-123","transactionId":"T1","tradeNo":"O1","totalAmt":990,"nonceStr":"n"}"#
        );
        // Both forms parse back.
        let back: ShipNotify = parse(&to_wire(&n, Revision::R2019)).unwrap();
        assert_eq!(back, n);
        let back: ShipNotify = parse(&to_wire(&n, Revision::R2018)).unwrap();
        assert_eq!(back.user_token, None);
        assert_eq!(back.skill_id, n.skill_id);
    }

    #[test]
    fn to_wire_refund_request() {
        let mut r = RefundRequest::new(
            SkillId::parse("s1").unwrap(),
            OrderRef::TradeNo(TradeNo::parse("O1").unwrap()),
            RefundTradeNo::parse("R1").unwrap(),
            Fen::new(990).unwrap(),
            Fen::new(500).unwrap(),
            NonceStr::parse("n").unwrap(),
        )
        .unwrap();
        r.version = Some(Version::default());
        r.refund_details = Some(vec![OrderItem {
            item_id: ItemId::parse("i1").unwrap(),
            quantity: Quantity::new(1).unwrap(),
            amount: Fen::new(500).unwrap(),
        }]);
        r.refund_desc = Some(RefundDesc::parse("用户取消").unwrap());
        assert_eq!(
            String::from_utf8(to_wire(&r, Revision::R2018)).unwrap(),
            r#"{"domainId":"s1","tradeNo":"O1","refundTradeNo":"R1","totalAmt":990,"refundAmt":500,"refundDesc":"用户取消","nonceStr":"n"}"#
        );
        assert_eq!(
            String::from_utf8(to_wire(&r, Revision::R2019)).unwrap(),
            r#"{"skillId":"s1","tradeNo":"O1","refundTradeNo":"R1","totalAmt":990,"refundAmt":500,"refundDesc":"用户取消","nonceStr":"n","refundDetails":[{"itemId":"i1","quantity":1,"amount":500}],"version":"1.0"}"#
        );
        assert_eq!(
            parse::<RefundRequest>(&to_wire(&r, Revision::R2019)).unwrap(),
            r
        );
        // Nested `skillId`s are not top-level fields and stay as they are;
        // non-struct values are written unchanged.
        assert_eq!(to_wire(&vec![1, 2], Revision::R2018), b"[1,2]");
        assert_eq!(to_wire("x", Revision::R2018), b"\"x\"");
    }
}
