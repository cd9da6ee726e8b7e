//! The partner's webhook (`FULFILLMENT_URL`): entitlement events, signed
//! with a secret of their own (`FULFILLMENT_SECRET`), never with the
//! platform's keys.
//!
//! `Dingdang-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! "<t>.<body>")>`; the event id is the `Idempotency-Key`; any 2xx is
//! delivered. Every call records its latency and outcome.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::entitlements::{Event, EventSink, SinkError};
use crate::observability::error_chain;
use crate::observability::metrics;
use crate::signing::HmacSecret;
use crate::EpochSecs;

/// The `Dingdang-Signature` value of `body` at `t`.
pub fn webhook_signature(secret: &HmacSecret, t: EpochSecs, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose()).expect("HMAC takes a key of any size");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Clone)]
pub struct WebhookSink {
    client: reqwest::Client,
    url: String,
    secret: HmacSecret,
    timeout: Duration,
}

impl WebhookSink {
    pub fn new(client: reqwest::Client, url: String, secret: HmacSecret) -> Self {
        Self {
            client,
            url,
            secret,
            timeout: Duration::from_secs(5),
        }
    }

    async fn call(&self, event: &Event, now: EpochSecs) -> Result<(), SinkError> {
        let body = event.body(now);
        let response = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .header("idempotency-key", event.id())
            .header("dingdang-event", event.kind())
            .header(
                "dingdang-signature",
                webhook_signature(&self.secret, now, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| SinkError(format!("request failed: {}", error_chain(&e.without_url()))))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(SinkError(format!("status {}", response.status())))
        }
    }
}

#[async_trait]
impl EventSink for WebhookSink {
    async fn send(&self, event: &Event, now: EpochSecs) -> Result<(), SinkError> {
        let started = Instant::now();
        let result = self.call(event, now).await;
        metrics::delivery(started.elapsed(), event, result.as_ref().err());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' |
        //   openssl dgst -sha256 -hmac whsec
        let sig = webhook_signature(&HmacSecret::new("whsec"), 1_700_000_000, br#"{"a":1}"#);
        let expected = {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec").unwrap();
            mac.update(br#"1700000000.{"a":1}"#);
            hex::encode(mac.finalize().into_bytes())
        };
        assert_eq!(sig, format!("t=1700000000,v1={expected}"));
    }
}
