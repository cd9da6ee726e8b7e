//! Reading and writing attribute maps.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::StoreError;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn key(prefix: &str, id: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(format!("{prefix}{id}")))])
}

/// Typed access to an item read back from the table.
pub(crate) struct Read<'a>(pub &'a Item);

impl Read<'_> {
    pub fn opt_str(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    }

    pub fn str(&self, name: &str) -> Result<&str, StoreError> {
        self.opt_str(name).ok_or_else(|| corrupt(name))
    }

    pub fn opt_num(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.0
            .get(name)
            .map(|v| {
                v.as_n()
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| corrupt(name))
            })
            .transpose()
    }

    pub fn num(&self, name: &str) -> Result<i64, StoreError> {
        self.opt_num(name)?.ok_or_else(|| corrupt(name))
    }

    /// Parses a string attribute into a protocol type.
    pub fn parsed<T, E>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        parse(self.str(name)?).map_err(|_| corrupt(name))
    }

    pub fn opt_parsed<T, E>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, StoreError> {
        self.opt_str(name)
            .map(|v| parse(v).map_err(|_| corrupt(name)))
            .transpose()
    }
}

fn corrupt(name: &str) -> StoreError {
    StoreError::new(format!("stored item has a missing or invalid `{name}`"))
}

/// Wraps an SDK error, keeping it as the cause for the logs.
pub(crate) fn sdk_error<E, R>(
    what: &str,
    err: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::with_source(what.to_owned(), err)
}
