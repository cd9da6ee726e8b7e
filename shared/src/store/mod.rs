//! The DynamoDB implementation of the store traits.
//!
//! One table, one string key `pk`, items told apart by prefix:
//!
//! | item | key | notable attributes |
//! |---|---|---|
//! | order | `ORDER#<tradeNo>` | `totalAmt`, `status`, `transactionId`, `claimTxn`/`claimUntil` while a webhook runs, `gsi1pk`/`gsi1sk` while unpaid |
//! | idempotency record | `TXN#<transactionId>` | `status` (IN_PROGRESS/COMPLETE), `fingerprint`, `reply`, `until`, `ttl` |
//! | nonce | `NONCE#<nonceStr>` | `bodyHash`, `ttl` |
//! | payment | `PAYMENT#<transactionId>` | `tradeNo`: the one order it pays, for ever (no `ttl`); `claimedAt`, `paidAt` once PAID |
//! | refund | `REFUND#<refundTradeNo>` | amounts, `status`, `submissions` (paycgi/refund calls claimed), `refundTransactionId`, `nextCheckAt`/`checks`, `gsi1pk`/`gsi1sk` while open |
//! | create-order request | `CREATE#<md5 of the request>` | `tradeNo` of the order it created |
//! | kept refund notice | `UNMATCHED#<refundTradeNo>` (unknown refund), `UNMATCHED#<refundTradeNo>#<reason>#<md5 of the body>` (disagreeing or contradicting) | a signed refund notification an operator must look at: `reason`, `payload`, `receivedAt` |
//! | unmatched ship notice | `UNMATCHED#SHIP#<fingerprint>` | a signed ship notification that contradicts our records: `reason`, `transactionId`, `tradeNo`, `totalAmt`, `payload`, `receivedAt`, `firstReceivedAt`, `deliveries` |
//!
//! An order's `refundedAmt` is the sum of its refunds not FAILED: reserving
//! a refund adds to it under the condition that it stays within `totalAmt`.
//!
//! `ttl` is the table's TTL attribute; every condition also treats an item
//! past its `ttl` as absent, since TTL deletion is lazy.

mod delivery;
mod due;
mod item;
mod orders;
mod outbox;
mod reconcile;
mod refunds;
mod ship;

use aws_sdk_dynamodb::Client;

/// The table and the client to reach it; cheap to clone.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Shards of the due index (`gsi1pk`): see [`DynamoStore::with_shards`].
    shards: u16,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            shards: DEFAULT_SHARDS,
        }
    }

    /// Spreads the due index over `shards` partition keys (at least 1).
    /// Every function of a stack must use the same count; it may be raised
    /// later (items stay readable in their old shard) but never lowered.
    pub fn with_shards(mut self, shards: u16) -> Self {
        self.shards = shards.max(1);
        self
    }

    pub fn shards(&self) -> u16 {
        self.shards
    }

    /// Builds the client from the standard AWS configuration chain (region,
    /// credentials, `AWS_ENDPOINT_URL_DYNAMODB`).
    pub async fn from_env(table: impl Into<String>) -> Self {
        // Bounded so that a slow store is answered FAIL (and retried by the
        // platform) well within the function's timeout.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(1))
            .operation_attempt_timeout(std::time::Duration::from_secs(2))
            .operation_timeout(std::time::Duration::from_secs(5))
            .build();
        // No stalled-stream protection: it watches the throughput of every
        // request and response body with timers, CPU on each call, for
        // bodies of a few hundred bytes that the timeouts above bound
        // already (BENCHMARKS.md, "CPU per notification").
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(timeouts)
            .stalled_stream_protection(
                aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled(),
            )
            .load()
            .await;
        Self::new(Client::new(&config), table)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

pub(crate) const ORDER: &str = "ORDER#";
pub(crate) const TXN: &str = "TXN#";
pub(crate) const NONCE: &str = "NONCE#";
pub(crate) const PAYMENT: &str = "PAYMENT#";
pub(crate) const REFUND: &str = "REFUND#";
pub(crate) const UNMATCHED: &str = "UNMATCHED#";
pub(crate) const CREATE: &str = "CREATE#";

/// The index of what the sweep must look at, by next-check time: unpaid
/// orders and open refunds, write-sharded (`gsi1pk` = `<kind>#DUE#<shard>`,
/// `gsi1sk` = the next-check time).
pub const STATUS_INDEX: &str = "by-status-due";

/// The default number of due-index shards: 16 partition keys absorb about
/// 16,000 index writes per second (DynamoDB's 1,000 per partition key).
pub const DEFAULT_SHARDS: u16 = 16;
