//! Reading message fields out of a JSON object with controlled errors.
//!
//! Messages deserialise through [`Object`]: a JSON object whose keys are
//! unique at every depth (a duplicate key anywhere is an error). Fields are
//! then taken out one by one, so every error names the field and the rule,
//! never the value; unknown fields are left behind and ignored.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::fields::{
    Fen, FieldError, ItemId, NonceStr, Quantity, RefundDesc, RefundStatus, RefundTradeNo,
    RefundTransactionId, RetCode, SkillId, TradeNo, TradeStatus, TransactionId, UserToken, Version,
};

/// A message-level error; its Display is parsed back by
/// [`super::ParseError`], so the three shapes below must stay distinct from
/// serde's own messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WireError {
    Missing(String),
    Invalid { field: String, error: FieldError },
    Rule(FieldError),
}

impl WireError {
    pub(crate) fn invalid(field: &str, error: FieldError) -> Self {
        WireError::Invalid {
            field: field.to_owned(),
            error,
        }
    }

    /// Prefixes the field name, for items of an array field.
    fn within(self, prefix: &str) -> Self {
        match self {
            WireError::Missing(f) => WireError::Missing(format!("{prefix}.{f}")),
            WireError::Invalid { field, error } => WireError::Invalid {
                field: format!("{prefix}.{field}"),
                error,
            },
            WireError::Rule(error) => WireError::Invalid {
                field: prefix.to_owned(),
                error,
            },
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Missing(field) => write!(f, "missing field `{field}`"),
            WireError::Invalid { field, error } => write!(f, "invalid field `{field}`: {error}"),
            WireError::Rule(error) => write!(f, "invalid message: {error}"),
        }
    }
}

fn duplicate<E: de::Error>(key: &str) -> E {
    let nameable = !key.is_empty()
        && key.len() <= 32
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if nameable {
        E::custom(format_args!("duplicate field `{key}`"))
    } else {
        E::custom("duplicate key")
    }
}

fn strict_map<'de, A: MapAccess<'de>>(mut access: A) -> Result<Map<String, Value>, A::Error> {
    let mut map = Map::new();
    while let Some(key) = access.next_key::<String>()? {
        let StrictValue(value) = access.next_value()?;
        if map.contains_key(&key) {
            return Err(duplicate(&key));
        }
        map.insert(key, value);
    }
    Ok(map)
}

/// Any JSON value, rejecting duplicate object keys at every depth.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictValueVisitor)
    }
}

struct StrictValueVisitor;

impl<'de> Visitor<'de> for StrictValueVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Number(v.into())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<StrictValue, E> {
        Number::from_f64(v)
            .map(|n| StrictValue(Value::Number(n)))
            .ok_or_else(|| E::custom("invalid number"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<StrictValue, D::Error> {
        StrictValue::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<StrictValue, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = access.next_element()? {
            items.push(v);
        }
        Ok(StrictValue(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<StrictValue, A::Error> {
        strict_map(access).map(|m| StrictValue(Value::Object(m)))
    }
}

/// A JSON object with unique keys at every depth.
#[derive(Debug)]
pub(crate) struct Object(pub(crate) Map<String, Value>);

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectVisitor)
    }
}

struct ObjectVisitor;

fn not_object<E: de::Error>() -> E {
    E::custom("expected a JSON object")
}

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Object;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<Object, A::Error> {
        strict_map(access).map(Object)
    }

    // Other shapes fail without echoing the value.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Object, E> {
        Err(not_object())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Object, E> {
        Err(not_object())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Object, E> {
        Err(not_object())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Object, E> {
        Err(not_object())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Object, E> {
        Err(not_object())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Object, E> {
        Err(not_object())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Object, A::Error> {
        Err(not_object())
    }
}

/// Conversion of one JSON value into a field type.
pub(crate) trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, FieldError>;
}

macro_rules! from_value_via_str {
    ($($t:ty),+) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> Result<Self, FieldError> {
                value.as_str().ok_or(FieldError::NotString)?.parse()
            }
        }
    )+};
}

from_value_via_str!(
    SkillId,
    TransactionId,
    RefundTransactionId,
    TradeNo,
    RefundTradeNo,
    NonceStr,
    UserToken,
    ItemId,
    RefundDesc,
    Version,
    RetCode,
    TradeStatus,
    RefundStatus
);

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, FieldError> {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or(FieldError::NotString)
    }
}

impl FromValue for Fen {
    fn from_value(value: &Value) -> Result<Self, FieldError> {
        let Value::Number(n) = value else {
            return Err(FieldError::NotInteger);
        };
        if let Some(v) = n.as_i64() {
            Fen::new(v)
        } else if n.is_u64() || n.as_f64().is_some_and(|f| f.abs() >= 9.2e18) {
            // Integers beyond u64 arrive as floats: still "too large".
            Err(FieldError::OutOfRange)
        } else {
            Err(FieldError::NotInteger)
        }
    }
}

impl FromValue for Quantity {
    fn from_value(value: &Value) -> Result<Self, FieldError> {
        let Value::Number(n) = value else {
            return Err(FieldError::NotInteger);
        };
        if let Some(v) = n.as_u64() {
            Quantity::new(u32::try_from(v).map_err(|_| FieldError::OutOfRange)?)
        } else if n.is_i64() {
            Err(FieldError::ZeroQuantity)
        } else {
            Err(FieldError::NotInteger)
        }
    }
}

/// The fields of one JSON object, taken out by name.
pub(crate) struct Fields {
    map: Map<String, Value>,
    /// When set (a FAIL reply), invalid optional fields read as absent.
    lenient: bool,
}

impl Fields {
    pub(crate) fn new(map: Map<String, Value>) -> Self {
        Self {
            map,
            lenient: false,
        }
    }

    pub(crate) fn set_lenient(&mut self, lenient: bool) {
        self.lenient = lenient;
    }

    /// The value, or `None` when absent or `null`.
    fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    /// A required field: absent or `null` is an error.
    pub(crate) fn req<T: FromValue>(&mut self, name: &'static str) -> Result<T, WireError> {
        let value = self
            .take(name)
            .ok_or_else(|| WireError::Missing(name.to_owned()))?;
        T::from_value(&value).map_err(|e| WireError::invalid(name, e))
    }

    /// An optional field: absent, `null` or `""` is `None`.
    pub(crate) fn opt<T: FromValue>(&mut self, name: &'static str) -> Result<Option<T>, WireError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(value) => match T::from_value(&value) {
                Ok(v) => Ok(Some(v)),
                Err(_) if self.lenient => Ok(None),
                Err(e) => Err(WireError::invalid(name, e)),
            },
        }
    }

    /// The skill id under either spelling; both at once is an error.
    pub(crate) fn opt_skill_id(&mut self) -> Result<Option<SkillId>, WireError> {
        let domain_id = self.opt::<SkillId>("domainId");
        let skill_id = self.opt::<SkillId>("skillId");
        match (domain_id?, skill_id?) {
            (Some(_), Some(_)) => Err(WireError::Rule(FieldError::BothSkillIds)),
            (a, b) => Ok(a.or(b)),
        }
    }

    /// The required skill id under either spelling.
    pub(crate) fn skill_id(&mut self) -> Result<SkillId, WireError> {
        let has_domain_id = self.map.get("domainId").is_some_and(|v| !v.is_null());
        let has_skill_id = self.map.get("skillId").is_some_and(|v| !v.is_null());
        match (has_domain_id, has_skill_id) {
            (true, true) => Err(WireError::Rule(FieldError::BothSkillIds)),
            (true, false) => self.req("domainId"),
            _ => self.req("skillId"),
        }
    }

    /// An array of objects, each converted by `item`; `required` makes an
    /// absent or `null` array an error. Present arrays must have 1 to
    /// `max` items.
    pub(crate) fn array<T>(
        &mut self,
        name: &'static str,
        required: bool,
        max: usize,
        item: impl Fn(&mut Fields) -> Result<T, WireError>,
    ) -> Result<Option<Vec<T>>, WireError> {
        let Some(value) = self.take(name) else {
            return if required {
                Err(WireError::Missing(name.to_owned()))
            } else {
                Ok(None)
            };
        };
        let Value::Array(values) = value else {
            return Err(WireError::invalid(name, FieldError::NotArray));
        };
        if values.is_empty() || values.len() > max {
            return Err(WireError::invalid(name, FieldError::ItemCount { max }));
        }
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let Value::Object(map) = v else {
                    return Err(WireError::invalid(
                        &format!("{name}[{i}]"),
                        FieldError::NotObject,
                    ));
                };
                item(&mut Fields::new(map)).map_err(|e| e.within(&format!("{name}[{i}]")))
            })
            .collect::<Result<Vec<T>, _>>()
            .map(Some)
    }
}

/// Implements `Deserialize` for message types through [`Object`] and their
/// `from_fields` function (the caller imports `Object` and `Fields`).
macro_rules! deserialize_via_fields {
    ($($t:ty),+ $(,)?) => {$(
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let Object(map) = <Object as serde::Deserialize>::deserialize(deserializer)?;
                Self::from_fields(&mut Fields::new(map)).map_err(serde::de::Error::custom)
            }
        }
    )+};
}
pub(crate) use deserialize_via_fields;

#[cfg(test)]
mod tests {
    use super::*;

    fn object(s: &str) -> Result<Object, String> {
        serde_json::from_str::<Object>(s).map_err(|e| e.to_string())
    }

    #[test]
    fn duplicates_rejected_at_any_depth() {
        assert!(object(r#"{"a":1,"b":{"c":[{"d":1,"e":2}]}}"#).is_ok());
        assert!(object(r#"{"a":1,"a":2}"#)
            .unwrap_err()
            .starts_with("duplicate field `a`"));
        assert!(object(r#"{"a":1,"b":{"c":1,"c":1}}"#)
            .unwrap_err()
            .starts_with("duplicate field `c`"));
        assert!(object(r#"{"x":[{"k":1,"k":2}]}"#).is_err());
        assert!(object(r#"{"a b":1,"a b":2}"#)
            .unwrap_err()
            .starts_with("duplicate key"));
        assert!(object(r#"{"a":null,"a":null}"#).is_err());
    }

    #[test]
    fn non_objects_rejected_without_echo() {
        for s in [r#""secret""#, "12345", "[1]", "null", "true", "1.5"] {
            let e = object(s).unwrap_err();
            assert!(e.starts_with("expected a JSON object"), "{s}: {e}");
            assert!(!e.contains("secret") && !e.contains("12345"), "{e}");
        }
    }

    #[test]
    fn optional_empty_and_null_are_absent() {
        let Object(map) = object(r#"{"tradeNo":"","transactionId":null}"#).unwrap();
        let mut f = Fields::new(map);
        assert_eq!(f.opt::<TradeNo>("tradeNo"), Ok(None));
        assert_eq!(f.opt::<TransactionId>("transactionId"), Ok(None));
        let Object(map) = object(r#"{"tradeNo":"","transactionId":null}"#).unwrap();
        let mut f = Fields::new(map);
        assert_eq!(
            f.req::<TradeNo>("tradeNo"),
            Err(WireError::invalid(
                "tradeNo",
                FieldError::Length { max: 32 }
            ))
        );
        assert_eq!(
            f.req::<TransactionId>("transactionId"),
            Err(WireError::Missing("transactionId".into()))
        );
    }

    #[test]
    fn wire_error_display() {
        assert_eq!(
            WireError::Missing("a".into()).to_string(),
            "missing field `a`"
        );
        assert_eq!(
            WireError::invalid("totalAmt", FieldError::NotPositive).to_string(),
            "invalid field `totalAmt`: must be positive"
        );
        assert_eq!(
            WireError::Rule(FieldError::BothSkillIds).to_string(),
            "invalid message: domainId and skillId must not both be present"
        );
        assert_eq!(
            WireError::invalid("amount", FieldError::NotPositive)
                .within("details[2]")
                .to_string(),
            "invalid field `details[2].amount`: must be positive"
        );
    }
}
