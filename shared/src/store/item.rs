//! Reading and writing attribute maps.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, Put, TransactWriteItem};

use super::{DynamoStore, NONCE};
use crate::protocol::NonceStr;

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

/// Expression attribute names and values, built alongside an expression.
#[derive(Default)]
pub(crate) struct Expr {
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub fn name(mut self, placeholder: &str, name: &str) -> Self {
        self.names.insert(placeholder.into(), name.into());
        self
    }

    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.into(), value);
        self
    }
}

/// A conditional put of a nonce: absent, expired, or seen with the same
/// body (a redelivery) passes; another body fails (a replay).
pub(crate) fn nonce_put(
    table: &str,
    nonce: &NonceStr,
    body_hash: &str,
    expires: i64,
    now: i64,
) -> Result<Put, StoreError> {
    let mut item = key(NONCE, nonce.as_str());
    item.insert("kind".into(), s("NONCE"));
    item.insert("bodyHash".into(), s(body_hash));
    item.insert("ttl".into(), n(expires));
    let expr = Expr::default()
        .name("#ttl", "ttl")
        .value(":now", n(now))
        .value(":hash", s(body_hash));
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk) OR #ttl < :now OR bodyHash = :hash")
        .set_expression_attribute_names(Some(expr.names))
        .set_expression_attribute_values(Some(expr.values))
        .build()
        .map_err(|e| StoreError::with_source("build nonce put", e))
}

/// `true` when a transaction was cancelled by this item's condition.
pub(crate) fn failed(reason: &CancellationReason) -> bool {
    reason.code() == Some("ConditionalCheckFailed")
}

impl DynamoStore {
    /// Runs a transaction; `Some(reasons)` when it was cancelled.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<CancellationReason>>, StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(None),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
                    Ok(Some(e.cancellation_reasons().to_vec()))
                }
                _ => Err(sdk_error("transact write", err)),
            },
        }
    }
}
