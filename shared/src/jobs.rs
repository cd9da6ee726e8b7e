//! Scheduled functions: the reconcile sweep.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::{Config, ConfigError};
use crate::domain::due::{Backoff, SweepClock};
use crate::domain::reconcile::{reconcile, ReconcileSettings, Summary, Sweep};
use crate::domain::refunds::RefundService;
use crate::domain::StoreError;
use crate::platform::{http_client, Paced, PlatformClient};
use crate::store::DynamoStore;
use crate::wiring::{platform_client, refund_settings, shipper, Shipper};

/// The refund flow of the sweep: its platform calls are paced.
pub type SweepRefunds = RefundService<DynamoStore, Paced<PlatformClient>>;

/// The reconcile function: built once, run on every scheduled event.
pub struct ReconcileApp {
    store: DynamoStore,
    ship: Shipper,
    refunds: SweepRefunds,
    settings: ReconcileSettings,
}

/// How long [`ReconcileApp::run`] may take when no deadline is given.
pub const DEFAULT_SWEEP_SECS: u64 = 60;

fn whole_secs(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    positive(get, name, default, "expected whole seconds").map(Duration::from_secs)
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    reason: &str,
) -> Result<T, ConfigError> {
    match get(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<T>()
            .ok()
            .filter(|n| *n > T::default())
            .ok_or(ConfigError::Malformed {
                name,
                reason: reason.to_owned(),
            }),
    }
}

impl ReconcileApp {
    /// On top of the common configuration: `RECONCILE_MAX_AGE_SECS`
    /// (259200), `RECONCILE_CONCURRENCY` (8), `RECONCILE_PAGE_SIZE` (50
    /// items per shard and round), `RECONCILE_BACKOFF_SECS`
    /// (`60,120,300,600,1800,3600`), `RECONCILE_MAX_CALLS_PER_SEC` (20;
    /// `0`: no bound), `RECONCILE_MARGIN_SECS` (10).
    pub fn new(
        config: Config,
        store: DynamoStore,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let defaults = ReconcileSettings::default();
        let backoff = match get("RECONCILE_BACKOFF_SECS").filter(|v| !v.trim().is_empty()) {
            None => Backoff::default(),
            Some(v) => Backoff::parse(&v).map_err(|reason| ConfigError::Malformed {
                name: "RECONCILE_BACKOFF_SECS",
                reason,
            })?,
        };
        let settings = ReconcileSettings {
            max_age: whole_secs(&get, "RECONCILE_MAX_AGE_SECS", defaults.max_age.as_secs())?,
            concurrency: positive(
                &get,
                "RECONCILE_CONCURRENCY",
                defaults.concurrency,
                "expected a positive number",
            )?,
            page_size: positive(
                &get,
                "RECONCILE_PAGE_SIZE",
                defaults.page_size,
                "expected a positive number",
            )?,
            backoff,
            margin: match get("RECONCILE_MARGIN_SECS").filter(|v| !v.trim().is_empty()) {
                None => defaults.margin,
                Some(v) => v.trim().parse().map(Duration::from_secs).map_err(|_| {
                    ConfigError::Malformed {
                        name: "RECONCILE_MARGIN_SECS",
                        reason: "expected whole seconds".to_owned(),
                    }
                })?,
            },
        };
        let calls_per_sec =
            match get("RECONCILE_MAX_CALLS_PER_SEC").filter(|v| !v.trim().is_empty()) {
                None => Some(20.0),
                Some(v) => match v.trim().parse::<f64>() {
                    Ok(0.0) => None,
                    Ok(rate) if rate.is_finite() && rate > 0.0 => Some(rate),
                    _ => {
                        return Err(ConfigError::Malformed {
                            name: "RECONCILE_MAX_CALLS_PER_SEC",
                            reason: "expected a positive number, or 0 for no bound".to_owned(),
                        })
                    }
                },
            };
        let http = http_client();
        let keys = Arc::new(config.keys.clone());
        let store = store.with_shards(config.due_shards);
        let refunds = RefundService {
            store: store.clone(),
            platform: Paced::new(platform_client(&config, &keys, http.clone()), calls_per_sec),
            settings: refund_settings(&config),
        };
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

    /// One sweep on `clock`; its metrics line is written whether it
    /// completes or fails.
    pub async fn run_with(&self, clock: SweepClock) -> Result<Summary, StoreError> {
        let sweep = Sweep {
            index: &self.store,
            ship: &self.ship,
            refunds: &self.refunds,
            settings: &self.settings,
        };
        let result = reconcile(&sweep, &clock).await;
        crate::observability::metrics::reconcile(result.as_ref().ok());
        result
    }

    /// One sweep for an invocation that must end at `deadline`.
    pub async fn run_until(&self, deadline: SystemTime) -> Result<Summary, StoreError> {
        self.run_with(SweepClock::until(deadline, self.settings.margin))
            .await
    }

    /// One sweep now, for at most [`DEFAULT_SWEEP_SECS`].
    pub async fn run(&self) -> Result<Summary, StoreError> {
        self.run_until(SystemTime::now() + Duration::from_secs(DEFAULT_SWEEP_SECS))
            .await
    }

    pub fn settings(&self) -> &ReconcileSettings {
        &self.settings
    }
}
