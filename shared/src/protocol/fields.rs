//! Field types that cannot hold an invalid value.
//!
//! Every string newtype has a `parse` constructor (also `FromStr` and
//! `TryFrom<String>`/`TryFrom<&str>`), `as_str()`, `Display`, serialises as
//! the plain string and deserialises through the same checks.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a field value was rejected. Messages name the rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Too short (empty) or too long; the maximum is in characters.
    #[error("must be 1 to {max} characters")]
    Length {
        /// Largest allowed length.
        max: usize,
    },
    /// Only printable ASCII without spaces (0x21..=0x7E) is allowed.
    #[error("must be printable ASCII without spaces")]
    NotAsciiGraphic,
    /// Only ASCII letters and digits are allowed.
    #[error("must contain only ASCII letters and digits")]
    NotAlphanumeric,
    /// Not a dotted number such as `1.0`.
    #[error("must be digits separated by dots")]
    NotVersion,
    /// Control characters are not allowed.
    #[error("must not contain control characters")]
    ControlCharacter,
    /// A JSON string was expected.
    #[error("must be a string")]
    NotString,
    /// A JSON integer was expected (no fraction, exponent or quotes).
    #[error("must be an integer")]
    NotInteger,
    /// An integer too large for the field.
    #[error("is out of range")]
    OutOfRange,
    /// An amount must be at least 1 fen.
    #[error("must be positive")]
    NotPositive,
    /// A quantity must be at least 1.
    #[error("must be at least 1")]
    ZeroQuantity,
    /// A JSON array was expected.
    #[error("must be an array")]
    NotArray,
    /// A JSON object was expected.
    #[error("must be an object")]
    NotObject,
    /// Not one of the allowed words.
    #[error("must be one of {0}")]
    OneOf(&'static str),
    /// Too few or too many items.
    #[error("must have 1 to {max} items")]
    ItemCount {
        /// Largest allowed number of items.
        max: usize,
    },
    /// A required field is absent.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// Exactly one of two alternative fields must be present.
    #[error("exactly one of {0} and {1} is required")]
    ExactlyOne(&'static str, &'static str),
    /// Both spellings of the skill id were sent.
    #[error("domainId and skillId must not both be present")]
    BothSkillIds,
    /// The refund amount exceeds the order amount.
    #[error("must not exceed totalAmt")]
    RefundExceedsTotal,
    /// The item amounts do not add up without overflow.
    #[error("item amounts overflow")]
    SumOverflow,
    /// `totalAmt` differs from the sum of the item amounts.
    #[error("must equal the sum of the item amounts")]
    TotalMismatch,
    /// The reply's `retCode` is not `SUCCESS`.
    #[error("retCode is not SUCCESS")]
    NotSuccess,
}

fn check_ascii_graphic(s: &str) -> Result<(), FieldError> {
    if s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(FieldError::NotAsciiGraphic)
    }
}

fn check_alphanumeric(s: &str) -> Result<(), FieldError> {
    if s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(FieldError::NotAlphanumeric)
    }
}

fn check_version(s: &str) -> Result<(), FieldError> {
    if s.split('.')
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    {
        Ok(())
    } else {
        Err(FieldError::NotVersion)
    }
}

fn check_no_control(s: &str) -> Result<(), FieldError> {
    if s.chars().any(char::is_control) {
        Err(FieldError::ControlCharacter)
    } else {
        Ok(())
    }
}

macro_rules! string_field {
    (
        $(#[$doc:meta])*
        $name:ident, max = $max:expr, check = $check:path, count = $count:expr, debug = $debug:tt
    ) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// Largest allowed length.
            pub const MAX_LEN: usize = $max;

            /// Checks the character set, then the length.
            pub fn parse(s: &str) -> Result<Self, FieldError> {
                $check(s)?;
                let len = ($count)(s);
                if len == 0 || len > Self::MAX_LEN {
                    return Err(FieldError::Length { max: Self::MAX_LEN });
                }
                Ok(Self(s.to_owned()))
            }

            /// The value.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The value, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        string_field!(@debug $name $debug);

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = FieldError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = FieldError;

            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
    (@debug $name:ident plain) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }
    };
    (@debug $name:ident redacted) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "(<redacted, {} bytes>)"), self.0.len())
            }
        }
    };
}

string_field! {
    /// The skill id (`skillId`, formerly `domainId`): 1 to 32 printable ASCII
    /// characters.
    SkillId, max = 32, check = check_ascii_graphic, count = str::len, debug = plain
}
string_field! {
    /// The platform's payment serial number: 1 to 32 printable ASCII characters.
    TransactionId, max = 32, check = check_ascii_graphic, count = str::len, debug = plain
}
string_field! {
    /// The platform's refund serial number: 1 to 32 printable ASCII characters.
    RefundTransactionId, max = 32, check = check_ascii_graphic, count = str::len, debug = plain
}
string_field! {
    /// The partner's order number: 1 to 32 ASCII letters and digits.
    TradeNo, max = 32, check = check_alphanumeric, count = str::len, debug = plain
}
string_field! {
    /// The partner's refund number: 1 to 32 ASCII letters and digits.
    RefundTradeNo, max = 32, check = check_alphanumeric, count = str::len, debug = plain
}
string_field! {
    /// A random string: 1 to 32 printable ASCII characters.
    NonceStr, max = 32, check = check_ascii_graphic, count = str::len, debug = plain
}
string_field! {
    /// The partner's user identity (login token or user id): 1 to 128
    /// printable ASCII characters. Debug output is redacted.
    UserToken, max = 128, check = check_ascii_graphic, count = str::len, debug = redacted
}
string_field! {
    /// An item id of an order: 1 to 64 printable ASCII characters.
    ItemId, max = 64, check = check_ascii_graphic, count = str::len, debug = plain
}
string_field! {
    /// A refund reason: 1 to 64 characters (any script), no control characters.
    RefundDesc, max = 64, check = check_no_control, count = |s: &str| s.chars().count(), debug = plain
}
string_field! {
    /// An interface version such as `1.0`: 1 to 8 characters, digits separated
    /// by dots. The default is `1.0`.
    Version, max = 8, check = check_version, count = str::len, debug = plain
}

impl Default for Version {
    fn default() -> Self {
        Version("1.0".to_owned())
    }
}

/// An amount in fen (1/100 yuan): a strictly positive 64-bit integer.
///
/// Deserialises from a JSON integer only: `990.0`, `1e3`, `"990"`, `0`,
/// negatives and values beyond `i64` are rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fen(i64);

impl Fen {
    /// The largest amount.
    pub const MAX: Fen = Fen(i64::MAX);

    /// An amount of at least 1 fen.
    pub const fn new(fen: i64) -> Result<Self, FieldError> {
        if fen > 0 {
            Ok(Fen(fen))
        } else {
            Err(FieldError::NotPositive)
        }
    }

    /// The amount in fen.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// Sum, or `None` on overflow.
    pub fn checked_add(self, other: Fen) -> Option<Fen> {
        self.0.checked_add(other.0).map(Fen)
    }

    /// Difference, or `None` if it is not positive (a `Fen` is never 0).
    pub fn checked_sub(self, other: Fen) -> Option<Fen> {
        Fen::new(self.0 - other.0).ok()
    }
}

impl TryFrom<i64> for Fen {
    type Error = FieldError;

    fn try_from(fen: i64) -> Result<Self, Self::Error> {
        Fen::new(fen)
    }
}

impl From<Fen> for i64 {
    fn from(fen: Fen) -> i64 {
        fen.0
    }
}

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Fen {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0)
    }
}

/// Rejects everything but integers without echoing the input.
macro_rules! integer_only_visitor {
    () => {
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom(FieldError::NotInteger))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(E::custom(FieldError::NotInteger))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom(FieldError::NotInteger))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(E::custom(FieldError::NotInteger))
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(de::Error::custom(FieldError::NotInteger))
        }
        fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(de::Error::custom(FieldError::NotInteger))
        }
    };
}

struct FenVisitor;

impl<'de> Visitor<'de> for FenVisitor {
    type Value = Fen;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a positive integer amount in fen")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Fen, E> {
        Fen::new(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Fen, E> {
        let v = i64::try_from(v).map_err(|_| E::custom(FieldError::OutOfRange))?;
        Fen::new(v).map_err(E::custom)
    }

    integer_only_visitor!();
}

impl<'de> Deserialize<'de> for Fen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FenVisitor)
    }
}

/// A quantity of an item: at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Quantity(u32);

impl Quantity {
    /// A quantity of at least 1.
    pub const fn new(n: u32) -> Result<Self, FieldError> {
        if n >= 1 {
            Ok(Quantity(n))
        } else {
            Err(FieldError::ZeroQuantity)
        }
    }

    /// The quantity.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = FieldError;

    fn try_from(n: u32) -> Result<Self, Self::Error> {
        Quantity::new(n)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.0)
    }
}

struct QuantityVisitor;

impl<'de> Visitor<'de> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a positive integer quantity")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
        if v < 1 {
            return Err(E::custom(FieldError::ZeroQuantity));
        }
        self.visit_u64(v.unsigned_abs())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
        let v = u32::try_from(v).map_err(|_| E::custom(FieldError::OutOfRange))?;
        Quantity::new(v).map_err(E::custom)
    }

    integer_only_visitor!();
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(QuantityVisitor)
    }
}

macro_rules! word_enum {
    (
        $(#[$doc:meta])*
        $name:ident, one_of = $one_of:literal, { $($(#[$vdoc:meta])* $variant:ident = $word:literal),+ $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The wire word.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = FieldError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(FieldError::OneOf($one_of)),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

word_enum! {
    /// `retCode`: `SUCCESS` or `FAIL`.
    RetCode, one_of = "SUCCESS, FAIL", {
        /// `SUCCESS`
        Success = "SUCCESS",
        /// `FAIL`
        Fail = "FAIL",
    }
}

word_enum! {
    /// `tradeStatus` of an order query.
    TradeStatus, one_of = "NOTPAY, PROCESSING, SUCCESS, FAIL", {
        /// `NOTPAY`: not paid.
        NotPay = "NOTPAY",
        /// `PROCESSING`: payment in progress.
        Processing = "PROCESSING",
        /// `SUCCESS`: paid.
        Success = "SUCCESS",
        /// `FAIL`: payment failed.
        Fail = "FAIL",
    }
}

word_enum! {
    /// `refundStatus` of a refund query or notification.
    RefundStatus, one_of = "PROCESSING, SUCCESS, FAIL", {
        /// `PROCESSING`: refund in progress.
        Processing = "PROCESSING",
        /// `SUCCESS`: refunded.
        Success = "SUCCESS",
        /// `FAIL`: refund failed.
        Fail = "FAIL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len(max: usize) -> FieldError {
        FieldError::Length { max }
    }

    #[test]
    fn ascii_graphic_fields() {
        fn check<T: FromStr<Err = FieldError> + fmt::Debug>(max: usize) {
            assert!("a".parse::<T>().is_ok());
            let graphic: Vec<u8> = (0x21..=0x7e).collect();
            for chunk in graphic.chunks(max) {
                let chunk = std::str::from_utf8(chunk).unwrap();
                assert!(chunk.parse::<T>().is_ok(), "{chunk}");
            }
            assert!("x".repeat(max).parse::<T>().is_ok());
            assert_eq!("x".repeat(max + 1).parse::<T>().unwrap_err(), len(max));
            assert_eq!("".parse::<T>().unwrap_err(), len(max));
            for bad in ["a b", " a", "a\n", "a\u{7f}", "é", "订单", "\t"] {
                assert_eq!(
                    bad.parse::<T>().unwrap_err(),
                    FieldError::NotAsciiGraphic,
                    "{bad:?}"
                );
            }
        }
        check::<SkillId>(32);
        check::<TransactionId>(32);
        check::<RefundTransactionId>(32);
        check::<NonceStr>(32);
        check::<UserToken>(128);
        check::<ItemId>(64);
        assert_eq!(SkillId::MAX_LEN, 32);
        assert_eq!(UserToken::MAX_LEN, 128);
        assert_eq!(ItemId::MAX_LEN, 64);
    }

    #[test]
    fn alphanumeric_fields() {
        fn check<T: FromStr<Err = FieldError> + fmt::Debug>() {
            assert!("ORD20180622001".parse::<T>().is_ok());
            assert!("A".repeat(32).parse::<T>().is_ok());
            assert_eq!("A".repeat(33).parse::<T>().unwrap_err(), len(32));
            assert_eq!("".parse::<T>().unwrap_err(), len(32));
            for bad in ["ORD-1", "ORD_1", "ORD 1", "订单1", "a.b"] {
                assert_eq!(
                    bad.parse::<T>().unwrap_err(),
                    FieldError::NotAlphanumeric,
                    "{bad:?}"
                );
            }
        }
        check::<TradeNo>();
        check::<RefundTradeNo>();
    }

    #[test]
    fn refund_desc() {
        assert!(RefundDesc::parse("用户取消 order").is_ok());
        assert!(RefundDesc::parse(&"退".repeat(64)).is_ok());
        assert_eq!(RefundDesc::parse(&"退".repeat(65)).unwrap_err(), len(64));
        assert!(RefundDesc::parse(&"x".repeat(64)).is_ok());
        assert_eq!(RefundDesc::parse(&"x".repeat(65)).unwrap_err(), len(64));
        assert_eq!(RefundDesc::parse("").unwrap_err(), len(64));
        assert_eq!(
            RefundDesc::parse("a\nb").unwrap_err(),
            FieldError::ControlCharacter
        );
        assert_eq!(
            RefundDesc::parse("a\u{85}b").unwrap_err(),
            FieldError::ControlCharacter
        );
    }

    #[test]
    fn version() {
        assert_eq!(Version::default().as_str(), "1.0");
        for ok in ["1", "1.0", "2.10.3", "12345678", "1.2.3.4"] {
            assert!(Version::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(Version::parse("123456789").unwrap_err(), len(8));
        assert_eq!(Version::parse("1.0.0.0.0").unwrap_err(), len(8));
        for bad in ["", ".", "1.", ".1", "1..0", "v1", "1.0a", "1,0", "-1"] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Version::parse("v1").unwrap_err(), FieldError::NotVersion);
    }

    #[test]
    fn string_field_conversions_and_serde() {
        let t = TradeNo::try_from("ORD1".to_owned()).unwrap();
        assert_eq!(t.as_str(), "ORD1");
        assert_eq!(t.to_string(), "ORD1");
        assert_eq!(format!("{t:?}"), "TradeNo(\"ORD1\")");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"ORD1\"");
        assert_eq!(serde_json::from_str::<TradeNo>("\"ORD1\"").unwrap(), t);
        let e = serde_json::from_str::<TradeNo>("\"ORD-1\"").unwrap_err();
        assert!(e.to_string().contains("letters and digits"), "{e}");
        assert!(serde_json::from_str::<TradeNo>("\"\"").is_err());
        assert_eq!(String::from(t.clone()), "ORD1");
        assert_eq!(t.into_string(), "ORD1");
    }

    #[test]
    fn user_token_debug_is_redacted() {
        let u = UserToken::parse("secret-login-token").unwrap();
        assert_eq!(format!("{u:?}"), "UserToken(<redacted, 18 bytes>)");
        assert_eq!(u.as_str(), "secret-login-token");
    }

    #[test]
    fn fen_new() {
        assert_eq!(Fen::new(0), Err(FieldError::NotPositive));
        assert_eq!(Fen::new(-1), Err(FieldError::NotPositive));
        assert_eq!(Fen::new(i64::MIN), Err(FieldError::NotPositive));
        assert_eq!(Fen::new(1).unwrap().get(), 1);
        assert_eq!(Fen::new(i64::MAX).unwrap(), Fen::MAX);
        assert!(Fen::new(1).unwrap() < Fen::new(2).unwrap());
    }

    #[test]
    fn fen_arithmetic() {
        let one = Fen::new(1).unwrap();
        let two = Fen::new(2).unwrap();
        assert_eq!(one.checked_add(one), Some(two));
        assert_eq!(Fen::MAX.checked_add(one), None);
        assert_eq!(two.checked_sub(one), Some(one));
        assert_eq!(one.checked_sub(one), None);
        assert_eq!(one.checked_sub(two), None);
        assert_eq!(Fen::MAX.checked_sub(one).unwrap().get(), i64::MAX - 1);
    }

    #[test]
    fn fen_json() {
        let de = |s: &str| serde_json::from_str::<Fen>(s);
        assert_eq!(de("990").unwrap().get(), 990);
        assert_eq!(de("1").unwrap().get(), 1);
        assert_eq!(de("9223372036854775807").unwrap(), Fen::MAX);
        for bad in [
            "0",
            "-1",
            "990.0",
            "1e3",
            "\"5\"",
            "\"990\"",
            "9223372036854775808",
            "18446744073709551616",
            "-9223372036854775809",
            "null",
            "true",
            "[]",
            "{}",
        ] {
            let e = de(bad).unwrap_err().to_string();
            let msg = e.split(" at line").next().unwrap();
            assert!(!msg.contains("990") && !msg.contains('5'), "{bad}: {e}");
        }
        assert!(de("0")
            .unwrap_err()
            .to_string()
            .starts_with("must be positive"));
        assert!(de("990.0")
            .unwrap_err()
            .to_string()
            .starts_with("must be an integer"));
        assert!(de("9223372036854775808")
            .unwrap_err()
            .to_string()
            .starts_with("is out of range"));
        assert_eq!(
            serde_json::to_string(&Fen::new(990).unwrap()).unwrap(),
            "990"
        );
        assert_eq!(Fen::new(990).unwrap().to_string(), "990");
    }

    #[test]
    fn quantity() {
        assert_eq!(Quantity::new(0), Err(FieldError::ZeroQuantity));
        assert_eq!(Quantity::new(1).unwrap().get(), 1);
        let de = |s: &str| serde_json::from_str::<Quantity>(s);
        assert_eq!(de("3").unwrap().get(), 3);
        assert_eq!(de("4294967295").unwrap().get(), u32::MAX);
        for bad in ["0", "-1", "4294967296", "1.0", "\"1\"", "null"] {
            assert!(de(bad).is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::to_string(&Quantity::new(2).unwrap()).unwrap(),
            "2"
        );
    }

    #[test]
    fn word_enums() {
        assert_eq!(
            serde_json::to_string(&RetCode::Success).unwrap(),
            "\"SUCCESS\""
        );
        assert_eq!(serde_json::to_string(&RetCode::Fail).unwrap(), "\"FAIL\"");
        assert_eq!("FAIL".parse::<RetCode>(), Ok(RetCode::Fail));
        assert_eq!(
            "success".parse::<RetCode>(),
            Err(FieldError::OneOf("SUCCESS, FAIL"))
        );
        for s in [
            TradeStatus::NotPay,
            TradeStatus::Processing,
            TradeStatus::Success,
            TradeStatus::Fail,
        ] {
            assert_eq!(s.as_str().parse::<TradeStatus>(), Ok(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<TradeStatus>(&json).unwrap(), s);
        }
        assert_eq!(TradeStatus::NotPay.to_string(), "NOTPAY");
        for s in [
            RefundStatus::Processing,
            RefundStatus::Success,
            RefundStatus::Fail,
        ] {
            assert_eq!(s.to_string().parse::<RefundStatus>(), Ok(s));
        }
        assert!("NOTPAY".parse::<RefundStatus>().is_err());
        assert!(serde_json::from_str::<RefundStatus>("\"DONE\"").is_err());
    }
}
