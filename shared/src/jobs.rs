//! Scheduled functions: the reconcile sweep.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::config::{Config, ConfigError};
use crate::domain::reconcile::{reconcile, ReconcileSettings, Summary};
use crate::domain::StoreError;
use crate::http::DEFAULT_BUDGET_SECS;
use crate::platform::http_client;
use crate::store::DynamoStore;
use crate::wiring::{refund_service, shipper, Refunds, Shipper};
use crate::EpochSecs;

/// The reconcile function: built once, run on every scheduled event.
pub struct ReconcileApp {
    store: DynamoStore,
    ship: Shipper,
    refunds: Refunds,
    settings: ReconcileSettings,
}

fn secs(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    match get(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(Duration::from_secs(default)),
        Some(v) => v
            .trim()
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| ConfigError::Malformed {
                name,
                reason: "expected whole seconds".to_owned(),
            }),
    }
}

impl ReconcileApp {
    /// `RECONCILE_GRACE_SECS` (600), `RECONCILE_MAX_AGE_SECS` (259200),
    /// `RECONCILE_CONCURRENCY` (8) on top of the common configuration.
    pub fn new(
        config: Config,
        store: DynamoStore,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let defaults = ReconcileSettings::default();
        let concurrency = match get("RECONCILE_CONCURRENCY").filter(|v| !v.trim().is_empty()) {
            None => defaults.concurrency,
            Some(v) => v
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(ConfigError::Malformed {
                    name: "RECONCILE_CONCURRENCY",
                    reason: "expected a positive number".to_owned(),
                })?,
        };
        let settings = ReconcileSettings {
            grace: secs(&get, "RECONCILE_GRACE_SECS", defaults.grace.as_secs())?,
            max_age: secs(&get, "RECONCILE_MAX_AGE_SECS", defaults.max_age.as_secs())?,
            concurrency,
            max_items: defaults.max_items,
        };
        let http = http_client();
        let keys = Arc::new(config.keys.clone());
        let refunds = refund_service(&config, &keys, store.clone(), http.clone());
        let ship = shipper(&config, &keys, store.clone(), http);
        Ok(Self {
            store,
            ship,
            refunds,
            settings,
        })
    }

    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let store = DynamoStore::from_env(config.table_name.clone()).await;
        Self::new(config, store, |name| std::env::var(name).ok())
    }

    /// One sweep at `now`, to finish before `deadline`.
    pub async fn run_at(&self, now: EpochSecs, deadline: EpochSecs) -> Result<Summary, StoreError> {
        let summary = reconcile(
            &self.store,
            &self.ship,
            &self.refunds,
            &self.settings,
            now,
            deadline,
        )
        .await?;
        crate::observability::metrics::reconcile(&summary);
        Ok(summary)
    }

    /// One sweep now.
    pub async fn run(&self) -> Result<Summary, StoreError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.run_at(now, now + DEFAULT_BUDGET_SECS * 6).await
    }
}
