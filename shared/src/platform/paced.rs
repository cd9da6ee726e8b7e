//! A platform client that makes at most a given number of calls per second
//! (a token bucket shared by every call of the process).

use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::domain::due::TokenBucket;
use crate::domain::platform::{Platform, PlatformError};
use crate::protocol::{
    OrderQueryReply, OrderQueryRequest, RefundQueryReply, RefundQueryRequest, RefundReply,
    RefundRequest,
};

pub struct Paced<P> {
    inner: P,
    bucket: Option<Mutex<TokenBucket>>,
}

impl<P> Paced<P> {
    /// At most `per_sec` calls per second through `inner`; `None`: no bound.
    pub fn new(inner: P, per_sec: Option<f64>) -> Self {
        Self {
            inner,
            bucket: per_sec.map(|rate| Mutex::new(TokenBucket::new(rate, Instant::now()))),
        }
    }

    async fn ready(&self) {
        let Some(bucket) = &self.bucket else {
            return;
        };
        loop {
            let wait = match bucket.lock().await.take(Instant::now()) {
                Ok(()) => return,
                Err(wait) => wait,
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[async_trait]
impl<P: Platform> Platform for Paced<P> {
    async fn order_query(
        &self,
        request: &OrderQueryRequest,
    ) -> Result<OrderQueryReply, PlatformError> {
        self.ready().await;
        self.inner.order_query(request).await
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundReply, PlatformError> {
        self.ready().await;
        self.inner.refund(request).await
    }

    async fn refund_query(
        &self,
        request: &RefundQueryRequest,
    ) -> Result<RefundQueryReply, PlatformError> {
        self.ready().await;
        self.inner.refund_query(request).await
    }
}
