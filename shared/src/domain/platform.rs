//! What the domain needs from the Dingdang platform's `paycgi` API.

use async_trait::async_trait;

use crate::protocol::{
    OrderQueryReply, OrderQueryRequest, RefundQueryReply, RefundQueryRequest, RefundReply,
    RefundRequest,
};

/// A call to the platform that produced no trustworthy reply. The outcome
/// at the platform is unknown: a refund stays PENDING and is resolved by
/// `refundquery`, never by a new `refundTradeNo`.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("platform timed out")]
    Timeout,
    #[error("platform unreachable: {0}")]
    Transport(String),
    #[error("platform answered HTTP {0}")]
    Status(u16),
    /// Unparseable, unsigned while signatures are required, or badly signed.
    #[error("platform reply rejected: {0}")]
    BadReply(String),
}

/// The platform's three partner-facing calls. Each request is signed; a
/// reply's `Authorization` is verified when present (required when so
/// configured). A `retCode` FAIL is a reply, not an error.
#[async_trait]
pub trait Platform: Send + Sync {
    async fn order_query(
        &self,
        request: &OrderQueryRequest,
    ) -> Result<OrderQueryReply, PlatformError>;
    async fn refund(&self, request: &RefundRequest) -> Result<RefundReply, PlatformError>;
    async fn refund_query(
        &self,
        request: &RefundQueryRequest,
    ) -> Result<RefundQueryReply, PlatformError>;
}
