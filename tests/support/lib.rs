//! Test support: a local DynamoDB-compatible server, a table per test made
//! from template.yaml, the real handlers served over HTTP, and a stub
//! fulfilment webhook.

pub mod memory;
pub mod moto;
pub mod proxy;
pub mod serve;
pub mod stack;
pub mod stub_platform;
pub mod webhook;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::Client;
use dingdang::config::Config;
use dingdang::signing::{parse_private_key, parse_public_keys, KeyRing, Signer, Verifier};
use dingdang::store::DynamoStore;
use serde_json::{json, Value};
use time::OffsetDateTime;

pub use moto::{dynamo_client, dynamo_client_at, dynamo_endpoint, sdk_config_at, secrets_client};
pub use serve::{spawn_app, spawn_app_via, Answered, App};
pub use stack::{hmac_stack, reconciler, rsa_stack, spawn_stack, Stack};
pub use stub_platform::StubPlatform;
pub use webhook::Webhook;

/// The HMAC secret of the tests' development configuration.
pub const SECRET: &str = "test-secret-do-not-use";
pub const SKILL: &str = "skill-123";
/// The tests' `FULFILLMENT_SECRET`.
pub const WEBHOOK_SECRET: &str = "whsec_test_only";

/// A fresh, unique table created from template.yaml's definition.
pub async fn new_table(client: &Client) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "t{}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    devkit::create_table_from_template(client, &devkit::template_path(), &name)
        .await
        .expect("create table from template.yaml");
    name
}

/// Settings of a spawned app, on top of a development configuration.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub env: HashMap<String, String>,
    /// The platform's side of the keys when it differs from ours (RSA2).
    pub platform: Option<KeyRing>,
}

impl Settings {
    pub fn hmac() -> Self {
        let mut env = HashMap::new();
        env.insert("DINGDANG_SKILL_ID".into(), SKILL.into());
        // As dev.env: the sweep may ask about an order at once.
        env.insert("RECONCILE_GRACE_SECS".into(), "0".into());
        // Signs entitlement events when a test sets FULFILLMENT_URL.
        env.insert("FULFILLMENT_SECRET".into(), WEBHOOK_SECRET.into());
        env.insert("DINGDANG_SKILL_SECRET".into(), SECRET.into());
        Self {
            env,
            platform: None,
        }
    }

    /// The later revision: TSK-RSA2 both ways and signed replies required.
    /// We sign with the skill's private key and verify with the platform's
    /// public key; the platform the other way round.
    pub fn rsa2_2019() -> Self {
        let mut env = HashMap::new();
        env.insert("DINGDANG_SKILL_ID".into(), SKILL.into());
        // As dev.env: the sweep may ask about an order at once.
        env.insert("RECONCILE_GRACE_SECS".into(), "0".into());
        // Signs entitlement events when a test sets FULFILLMENT_URL.
        env.insert("FULFILLMENT_SECRET".into(), WEBHOOK_SECRET.into());
        env.insert("DINGDANG_PROTOCOL".into(), "2019".into());
        env.insert("DINGDANG_SIGN_ALG".into(), "TSK-RSA2".into());
        env.insert(
            "DINGDANG_PLATFORM_PUBLIC_KEY".into(),
            vectors::PLATFORM_PUBLIC_BARE.into(),
        );
        env.insert(
            "DINGDANG_SKILL_PRIVATE_KEY".into(),
            vectors::SKILL_PRIVATE_PEM.into(),
        );
        let platform = KeyRing {
            signer: Signer::rsa2(parse_private_key(vectors::PLATFORM_PRIVATE_PEM).unwrap()),
            verifier: Verifier::rsa2(parse_public_keys(vectors::SKILL_PUBLIC_PEM).unwrap()),
            skew: KeyRing::DEFAULT_SKEW,
        };
        Self {
            env,
            platform: Some(platform),
        }
    }

    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    pub fn config(&self, table: &str) -> Config {
        let mut env = self.env.clone();
        env.insert("TABLE_NAME".into(), table.into());
        Config::from_lookup(|k| env.get(k).cloned()).expect("test configuration")
    }
}

/// The key ring a test uses to sign as the platform: same secret, same skew.
pub fn platform_keys(settings: &Settings) -> KeyRing {
    settings
        .platform
        .clone()
        .unwrap_or_else(|| settings.config("unused").keys.ring().as_ref().clone())
}

/// Test-only RSA keys: the platform's from the signing spec's vectors, the
/// skill's a second pair made for the tests.
pub mod vectors {
    pub const PLATFORM_PRIVATE_PEM: &str =
        include_str!("../../shared/tests/vectors/platform_private_key.pem");
    pub const PLATFORM_PUBLIC_BARE: &str =
        include_str!("../../shared/tests/vectors/platform_public_key.bare.txt");
    pub const SKILL_PRIVATE_PEM: &str =
        include_str!("../../shared/tests/vectors/second_private_key.pem");
    pub const SKILL_PUBLIC_PEM: &str =
        include_str!("../../shared/tests/vectors/second_public_key.pem");
}

/// A ship notification body as the platform sends it.
pub fn ship_body(transaction_id: &str, trade_no: &str, total_amt: i64, nonce: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "domainId": SKILL,
        "transactionId": transaction_id,
        "tradeNo": trade_no,
        "totalAmt": total_amt,
        "nonceStr": nonce,
    }))
    .unwrap()
}

/// A random identifier of letters and digits.
pub fn id(prefix: &str) -> String {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    let tail: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(12)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

/// Signs `body` now with `keys`: the `Authorization` header value.
pub fn sign(keys: &KeyRing, body: &[u8]) -> String {
    keys.sign(body, OffsetDateTime::now_utc()).to_string()
}

/// One stored item, with its attributes in a stable order.
pub type StoredItem = std::collections::BTreeMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// Every item in the table, ordered by key, for "writes nothing" checks.
pub async fn all_items(store: &DynamoStore) -> Vec<StoredItem> {
    let out = store
        .client()
        .scan()
        .table_name(store.table())
        .send()
        .await
        .expect("scan");
    let mut items: Vec<StoredItem> = out
        .items()
        .iter()
        .map(|i| i.clone().into_iter().collect())
        .collect();
    items.sort_by_key(|i| format!("{:?}", i.get("pk")));
    items
}

/// The item stored under `pk`, read consistently.
pub async fn item(store: &DynamoStore, pk: &str) -> Option<StoredItem> {
    store
        .client()
        .get_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(pk.to_owned()),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
        .map(|i| i.into_iter().collect())
}

/// A string attribute of a stored item.
pub fn text(item: &StoredItem, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

/// A number attribute of a stored item.
pub fn number(item: &StoredItem, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// The signed ship notifications kept because they contradict our records
/// (`UNMATCHED#SHIP#...` items), in key order.
pub async fn unmatched_ship_notices(store: &DynamoStore) -> Vec<StoredItem> {
    all_items(store)
        .await
        .into_iter()
        .filter(|i| text(i, "pk").is_some_and(|pk| pk.starts_with("UNMATCHED#SHIP#")))
        .collect()
}

/// Parses a JSON reply.
pub fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(bytes)))
}
