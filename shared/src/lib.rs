//! The partner side of the Dingdang (叮当) skill payment protocol.
//!
//! Data flows one way: HTTP event → verified request → domain decision →
//! store/platform effects → signed reply.
//!
//! - [`protocol`]: wire types that cannot hold an invalid value; no I/O.
//! - [`signing`]: TSK-HMAC-SHA256-BASIC and TSK-RSA2, key rings; no I/O.
//! - [`domain`]: the business rules, talking to the store through traits.
//! - [`store`]: the DynamoDB implementation of those traits.
//! - [`platform`]: outbound HTTP (the fulfilment webhook).
//! - [`http`]: the Lambda glue; the one place errors become status codes.
//! - [`config`]: environment → typed configuration.
//! - [`keys`]: the signing keys at run time (environment or Secrets
//!   Manager), cached and refreshed.

#[cfg(feature = "aws")]
pub mod config;
pub mod domain;
#[cfg(feature = "aws")]
pub mod http;
#[cfg(feature = "aws")]
pub mod jobs;
#[cfg(feature = "aws")]
pub mod keys;
#[cfg(feature = "aws")]
pub mod observability;
#[cfg(feature = "aws")]
pub mod platform;
pub mod protocol;
pub mod signing;
#[cfg(feature = "aws")]
pub mod store;
#[cfg(feature = "aws")]
pub mod wiring;

/// Seconds since the Unix epoch, the time unit of every stored timestamp.
pub type EpochSecs = i64;
