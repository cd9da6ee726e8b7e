//! Scheduled functions: the reconcile sweep.

use std::time::{Duration, SystemTime};

use crate::config::{Config, ConfigError};
use crate::domain::due::{Backoff, SweepClock};
use crate::domain::entitlements::{Delivered, Outbox, OutboxError, Target};
use crate::domain::reconcile::{reconcile, ReconcileSettings, Summary, Sweep};
use crate::domain::refunds::RefundService;
use crate::domain::StoreError;
use crate::platform::WebhookSink;
use crate::platform::{http_client, Paced, PlatformClient};
use crate::protocol::{RefundTradeNo, SkillId, TradeNo};
use crate::store::DynamoStore;
use crate::wiring::{platform_client, refund_settings, shipper, webhook_sink, Shipper};

/// The refund flow of the sweep: its platform calls are paced.
pub type SweepRefunds = RefundService<DynamoStore, Paced<PlatformClient>>;

/// The reconcile function: built once, run on every scheduled event.
pub struct ReconcileApp {
    store: DynamoStore,
    ship: Shipper,
    refunds: SweepRefunds,
    settings: ReconcileSettings,
    /// Delivers the entitlement events still pending, when configured.
    sink: Option<WebhookSink>,
    skill_id: SkillId,
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
        let keys = config.keys.clone();
        let store = store.with_shards(config.due_shards);
        let refunds = RefundService {
            store: store.clone(),
            platform: Paced::new(platform_client(&config, &keys, http.clone()), calls_per_sec),
            settings: refund_settings(&config),
        };
        let ship = shipper(&config, &keys, store.clone());
        Ok(Self {
            store,
            ship,
            refunds,
            settings,
            sink: webhook_sink(&config, http),
            skill_id: config.skill_id,
        })
    }

    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::load().await?;
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
            outbox: self.sink.as_ref().map(|sink| Outbox {
                store: &self.store,
                sink,
                skill_id: &self.skill_id,
            }),
        };
        let result = reconcile(&sweep, &clock).await;
        crate::observability::metrics::reconcile(result.as_ref().ok());
        result
    }

    /// One sweep for an invocation that must end at `deadline`.
    ///
    /// A deadline already passed (or within the margin) cannot come from
    /// Lambda, whose invocations start with the function's whole timeout;
    /// local emulators send one. The sweep then takes
    /// [`DEFAULT_SWEEP_SECS`] rather than doing nothing.
    pub async fn run_until(&self, deadline: SystemTime) -> Result<Summary, StoreError> {
        let now = SystemTime::now();
        let deadline = if deadline <= now + self.settings.margin {
            tracing::warn!(
                "reconcile: the invocation's deadline has already passed; sweeping for {DEFAULT_SWEEP_SECS} s"
            );
            now + Duration::from_secs(DEFAULT_SWEEP_SECS)
        } else {
            deadline
        };
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

/// The entitlements function: the table's stream (filtered to orders
/// becoming PAID and refunds becoming SUCCESS) is its trigger; each record
/// names an item whose pending event it delivers, read afresh from the
/// table. A record that fails is reported (`ReportBatchItemFailures`) with
/// the ones after it left to the retry; the sweep delivers whatever the
/// stream never does.
pub struct EntitlementsApp {
    store: DynamoStore,
    sink: WebhookSink,
    skill_id: SkillId,
}

#[derive(serde::Deserialize)]
struct StreamEvent {
    #[serde(rename = "Records", default)]
    records: Vec<StreamRecord>,
}

#[derive(serde::Deserialize)]
struct StreamRecord {
    dynamodb: StreamImage,
}

#[derive(serde::Deserialize)]
struct StreamImage {
    #[serde(rename = "Keys")]
    keys: serde_json::Map<String, serde_json::Value>,
    #[serde(rename = "SequenceNumber")]
    sequence_number: String,
}

/// The event a stream record's key names, if any.
fn target_of(keys: &serde_json::Map<String, serde_json::Value>) -> Option<Target> {
    let pk = keys.get("pk")?.get("S")?.as_str()?;
    if let Some(trade_no) = pk.strip_prefix("ORDER#") {
        TradeNo::parse(trade_no).ok().map(Target::Grant)
    } else if let Some(no) = pk.strip_prefix("REFUND#") {
        RefundTradeNo::parse(no).ok().map(Target::Revoke)
    } else {
        None
    }
}

impl EntitlementsApp {
    /// Needs `FULFILLMENT_URL` and `FULFILLMENT_SECRET`.
    pub fn new(
        config: Config,
        store: DynamoStore,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let sink = webhook_sink(&config, http).ok_or(ConfigError::Missing("FULFILLMENT_URL"))?;
        Ok(Self {
            store: store.with_shards(config.due_shards),
            sink,
            skill_id: config.skill_id,
        })
    }

    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::load().await?;
        let store = DynamoStore::from_env(config.table_name.clone()).await;
        Self::new(config, store, http_client())
    }

    /// Delivers the events of a DynamoDB stream batch, in order; returns
    /// `{"batchItemFailures":[...]}` naming the first record that failed.
    pub async fn handle(&self, event: serde_json::Value) -> serde_json::Value {
        let failures = match serde_json::from_value::<StreamEvent>(event) {
            Ok(batch) => self.deliver_batch(batch).await,
            Err(err) => {
                // Not a stream batch: nothing to retry.
                tracing::error!(error = %err, "entitlements: the event is not a DynamoDB stream batch");
                Vec::new()
            }
        };
        serde_json::json!({ "batchItemFailures": failures
            .into_iter()
            .map(|id| serde_json::json!({ "itemIdentifier": id }))
            .collect::<Vec<_>>() })
    }

    async fn deliver_batch(&self, batch: StreamEvent) -> Vec<String> {
        let outbox = Outbox {
            store: &self.store,
            sink: &self.sink,
            skill_id: &self.skill_id,
        };
        for record in batch.records {
            let Some(target) = target_of(&record.dynamodb.keys) else {
                continue;
            };
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            match outbox.deliver(&target, now).await {
                Ok(Delivered::Sent(event)) => {
                    tracing::info!(
                        event_id = event.id(),
                        event_type = event.kind(),
                        "entitlement event delivered"
                    )
                }
                Ok(Delivered::SentTwice(event)) => tracing::info!(
                    event_id = event.id(),
                    event_type = event.kind(),
                    "entitlement event delivered again (recorded by another delivery)"
                ),
                Ok(Delivered::NothingPending) => {}
                // The item is gone (deleted by hand): nothing to deliver.
                Err(OutboxError::NotFound(_)) => {}
                Err(err) => {
                    let event_id = match &err {
                        OutboxError::Sink { event_id, .. } => event_id.as_str(),
                        OutboxError::GrantFirst(inner) => match inner.as_ref() {
                            OutboxError::Sink { event_id, .. } => event_id.as_str(),
                            _ => "",
                        },
                        _ => "",
                    };
                    tracing::warn!(target = ?target, event_id, error = %err, "entitlement event not delivered; retried from this record");
                    return vec![record.dynamodb.sequence_number];
                }
            }
        }
        Vec::new()
    }
}
