use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::ship::{FulfilError, Fulfiller, FulfilmentRequest};
use crate::observability::error_chain;
use crate::observability::metrics;
use crate::signing::KeyRing;

/// POSTs the fulfilment request as signed JSON, with the `transactionId`
/// as `Idempotency-Key`; any 2xx is success. Every call records its
/// latency (`FulfilmentLatency`).
#[derive(Clone)]
pub struct WebhookFulfiller {
    client: reqwest::Client,
    url: String,
    keys: Arc<KeyRing>,
}

impl WebhookFulfiller {
    pub fn new(client: reqwest::Client, url: String, keys: Arc<KeyRing>) -> Self {
        Self { client, url, keys }
    }
}

#[async_trait]
impl Fulfiller for WebhookFulfiller {
    async fn fulfil(
        &self,
        request: &FulfilmentRequest,
        timeout: Duration,
    ) -> Result<(), FulfilError> {
        let started = Instant::now();
        let result = self.call(request, timeout).await;
        metrics::fulfilment_latency(
            started.elapsed(),
            result.is_ok(),
            request.transaction_id.as_str(),
        );
        result
    }
}

impl WebhookFulfiller {
    async fn call(
        &self,
        request: &FulfilmentRequest,
        timeout: Duration,
    ) -> Result<(), FulfilError> {
        let body = serde_json::to_vec(request).map_err(|e| FulfilError(e.to_string()))?;
        let authorization = self.keys.sign(&body, OffsetDateTime::now_utc());
        let response = self
            .client
            .post(&self.url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("authorization", authorization.to_string())
            .header("idempotency-key", request.transaction_id.as_str())
            .body(body)
            .send()
            .await
            .map_err(|e| {
                FulfilError(format!("request failed: {}", error_chain(&e.without_url())))
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(FulfilError(format!("status {}", response.status())))
        }
    }
}
