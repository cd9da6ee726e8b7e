//! Building the domain services from the configuration, once, the same
//! way in every function that needs them.

use crate::config::Config;
use crate::domain::refunds::{RefundService, RefundSettings};
use crate::domain::ship::{ShipService, ShipSettings};
use crate::keys::Keys;
use crate::platform::{PlatformClient, WebhookSink};
use crate::store::DynamoStore;

/// The ship flow as the functions build it from their configuration.
pub type Shipper = ShipService<DynamoStore>;

/// Builds the ship flow: used by ship-notify and by every other path that
/// records a payment (order sync, reconcile), so they share one code path.
pub fn shipper(config: &Config, keys: &Keys, store: DynamoStore) -> Shipper {
    let settings = ShipSettings {
        skill_id: config.skill_id.clone(),
        accept_unknown_orders: config.accept_unknown_orders,
        record_ttl: config.idempotency_ttl,
        nonce_ttl: keys.skew() * 2,
        grant_after: config.fulfillment_retry,
    };
    ShipService {
        store: store.with_shards(config.due_shards),
        settings,
    }
}

/// The partner's webhook for entitlement events, when one is configured.
pub fn webhook_sink(config: &Config, http: reqwest::Client) -> Option<WebhookSink> {
    let url = config.fulfillment_url.clone()?;
    let secret = config.fulfillment_secret.clone()?;
    Some(WebhookSink::new(http, url, secret))
}

/// The refund flow as the functions build it from their configuration.
pub type Refunds = RefundService<DynamoStore, PlatformClient>;

/// The platform client of the configuration: signed calls, verified
/// replies, the configured timeout.
pub fn platform_client(config: &Config, keys: &Keys, http: reqwest::Client) -> PlatformClient {
    PlatformClient::new(
        http,
        config.api_base.clone(),
        keys.clone(),
        config.protocol,
        config.require_signed_replies,
    )
    .with_timeout(config.api_timeout)
}

/// The refund rules' settings of the configuration.
pub fn refund_settings(config: &Config) -> RefundSettings {
    RefundSettings {
        skill_id: config.skill_id.clone(),
        revision: config.protocol,
        attention_after: config.refund_attention_after,
        first_check: config.reconcile_grace,
        revoke_after: config.fulfillment_retry,
    }
}

/// Builds the refund flow with its platform client.
pub fn refund_service(
    config: &Config,
    keys: &Keys,
    store: DynamoStore,
    http: reqwest::Client,
) -> Refunds {
    RefundService {
        store: store.with_shards(config.due_shards),
        platform: platform_client(config, keys, http),
        settings: refund_settings(config),
    }
}
