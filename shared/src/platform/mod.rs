//! Outbound HTTP: the partner's fulfilment webhook (and, later, the
//! platform's `paycgi` API). The only module that uses reqwest.

mod fulfilment;
mod paced;
mod paycgi;

pub use fulfilment::{webhook_signature, WebhookSink};
pub use paced::Paced;
pub use paycgi::PlatformClient;

use std::time::Duration;

/// One HTTP client for a process: rustls, connect timeout, connection pool.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(8))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .expect("the TLS backend is compiled in")
}
