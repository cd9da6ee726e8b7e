//! The stream pump: the table's DynamoDB stream, read from a local DynamoDB
//! (moto), fed to the entitlements function as Lambda's event source
//! mapping would, because `cargo lambda watch` has no streams.
//!
//! - [`Pump::start`] finds the table's stream (`DescribeTable`
//!   `LatestStreamArn`) and its shards (`DescribeStream`), each read from
//!   `LATEST` (or `TRIM_HORIZON` with [`PumpSettings::from_start`]);
//! - [`Pump::poll_once`] reads every shard once (`GetRecords`), keeps the
//!   records the [filter](FILTER_PATTERNS) lets through, and invokes the
//!   function with them in Lambda's stream event shape ([`lambda_event`]);
//! - a reply naming a record in `batchItemFailures`, or a failed invocation,
//!   sends the batch again from that record after a backoff, up to
//!   [`PumpSettings::max_tries`]; then the pump moves on, and the reconcile
//!   sweep delivers whatever is still pending.
//!
//! A shard that closes (a split) is finished; its children are read from
//! their start once their parent is done.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aws_config::SdkConfig;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, Shard, ShardIteratorType};
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// Where `cargo lambda watch` (as `./scripts/dev.sh` runs it) takes
/// invocations of the entitlements function.
pub const DEFAULT_INVOKE_URL: &str =
    "http://127.0.0.1:9000/2015-03-31/functions/entitlements/invocations";

/// The filter of the entitlements function's stream trigger: the
/// `FilterCriteria` patterns of its `DynamoDB` event in `template.yaml`
/// (a record passes when it matches any of them). Only an order whose grant
/// is pending and a refund whose revoke is pending are worth an invocation;
/// everything else the table writes (transaction claims, unpaid orders, a
/// delivery being recorded) is not.
pub const FILTER_PATTERNS: [&str; 2] = [
    r#"{"dynamodb":{"Keys":{"pk":{"S":[{"prefix":"ORDER#"}]}},"NewImage":{"grantStatus":{"S":["PENDING"]}}}}"#,
    r#"{"dynamodb":{"Keys":{"pk":{"S":[{"prefix":"REFUND#"}]}},"NewImage":{"revokeStatus":{"S":["PENDING"]}}}}"#,
];

/// Whether a record in Lambda's shape ([`lambda_record`]) passes
/// [`FILTER_PATTERNS`].
pub fn passes_filter(record: &Value) -> bool {
    FILTER_PATTERNS.iter().any(|pattern| {
        let pattern: Value = serde_json::from_str(pattern).expect("FILTER_PATTERNS are JSON");
        matches_pattern(&pattern, record)
    })
}

/// The subset of Lambda's event filtering the patterns use: every key of
/// the pattern must be present; an object is matched field by field, an
/// array lists the accepted values (a value, or `{"prefix": ..}`).
fn matches_pattern(pattern: &Value, value: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(name, sub)| {
            value
                .get(name)
                .is_some_and(|field| matches_pattern(sub, field))
        }),
        Value::Array(accepted) => accepted.iter().any(|rule| match rule {
            Value::Object(op) => match (op.get("prefix"), value) {
                (Some(Value::String(prefix)), Value::String(s)) => s.starts_with(prefix.as_str()),
                _ => false,
            },
            other => other == value,
        }),
        other => other == value,
    }
}

/// An attribute value in DynamoDB JSON (`{"S": ".."}`, `{"N": ".."}`, ...),
/// as Lambda writes `Keys`, `NewImage` and `OldImage`.
pub fn attribute_json(value: &AttributeValue) -> Value {
    let b64 = |blob: &aws_sdk_dynamodbstreams::primitives::Blob| {
        Value::String(base64::engine::general_purpose::STANDARD.encode(blob.as_ref()))
    };
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": image_json(m) }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        _ => Value::Null,
    }
}

fn image_json(image: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        image
            .iter()
            .map(|(name, value)| (name.clone(), attribute_json(value)))
            .collect(),
    )
}

/// One stream record as Lambda hands it to a function.
pub fn lambda_record(record: &Record, stream_arn: &str) -> Value {
    let mut dynamodb = Map::new();
    if let Some(r) = record.dynamodb() {
        if let Some(at) = r.approximate_creation_date_time() {
            dynamodb.insert(
                "ApproximateCreationDateTime".into(),
                json!(at.secs() as f64 + f64::from(at.subsec_nanos()) / 1e9),
            );
        }
        if let Some(keys) = r.keys() {
            dynamodb.insert("Keys".into(), image_json(keys));
        }
        if let Some(image) = r.new_image() {
            dynamodb.insert("NewImage".into(), image_json(image));
        }
        if let Some(image) = r.old_image() {
            dynamodb.insert("OldImage".into(), image_json(image));
        }
        if let Some(seq) = r.sequence_number() {
            dynamodb.insert("SequenceNumber".into(), json!(seq));
        }
        if let Some(size) = r.size_bytes() {
            dynamodb.insert("SizeBytes".into(), json!(size));
        }
        if let Some(view) = r.stream_view_type() {
            dynamodb.insert("StreamViewType".into(), json!(view.as_str()));
        }
    }
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": record.event_version(),
        "eventSource": record.event_source().unwrap_or("aws:dynamodb"),
        "awsRegion": record.aws_region(),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    })
}

/// The event Lambda invokes a function with for a batch of records.
pub fn lambda_event(records: &[Value]) -> Value {
    json!({ "Records": records })
}

fn sequence_number(record: &Value) -> Option<&str> {
    record.get("dynamodb")?.get("SequenceNumber")?.as_str()
}

/// The streams client for `config`. Its endpoint is
/// `AWS_ENDPOINT_URL_DYNAMODB_STREAMS` (or `AWS_ENDPOINT_URL`) as for any
/// SDK client; when neither is set but `AWS_ENDPOINT_URL_DYNAMODB` is (a
/// local DynamoDB such as moto, which serves its streams on the same
/// port), that one.
pub fn streams_client(
    config: &SdkConfig,
    var: impl Fn(&str) -> Option<String>,
) -> aws_sdk_dynamodbstreams::Client {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let mut builder = aws_sdk_dynamodbstreams::config::Builder::from(config);
    if set("AWS_ENDPOINT_URL_DYNAMODB_STREAMS").is_none() && set("AWS_ENDPOINT_URL").is_none() {
        if let Some(url) = set("AWS_ENDPOINT_URL_DYNAMODB") {
            builder = builder.endpoint_url(url);
        }
    }
    aws_sdk_dynamodbstreams::Client::from_conf(builder.build())
}

/// How the pump reads and delivers.
#[derive(Debug, Clone)]
pub struct PumpSettings {
    /// The function's invoke endpoint (Lambda's `Invoke` API, as the
    /// watcher serves it).
    pub invoke_url: String,
    /// Read every shard from its oldest record instead of from now.
    pub from_start: bool,
    /// At most this many records per `GetRecords`, so per invocation
    /// (Lambda's default `BatchSize`: 100).
    pub batch_size: i32,
    /// Invocations of one batch before the pump gives up on it.
    pub max_tries: u32,
    /// The wait before the second invocation, doubled for each one after,
    /// up to [`PumpSettings::max_backoff`].
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// How long one invocation may take (the first one waits for the
    /// watcher to build the function).
    pub invoke_timeout: Duration,
}

impl Default for PumpSettings {
    fn default() -> Self {
        Self {
            invoke_url: DEFAULT_INVOKE_URL.to_owned(),
            from_start: false,
            batch_size: 100,
            max_tries: 10,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            invoke_timeout: Duration::from_secs(600),
        }
    }
}

/// What one [`Pump::poll_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollSummary {
    /// Records read from the stream.
    pub read: usize,
    /// Records that passed the filter.
    pub matched: usize,
    /// Invocations made (retries included).
    pub invocations: usize,
    /// Records given up on after [`PumpSettings::max_tries`].
    pub abandoned: usize,
}

/// Where a shard is read from once it has no iterator.
#[derive(Debug, Clone)]
enum Start {
    Latest,
    TrimHorizon,
    After(String),
}

#[derive(Debug)]
struct Cursor {
    shard_id: String,
    parent: Option<String>,
    start: Start,
    iterator: Option<String>,
}

/// What the function answered for a batch.
enum Reply {
    /// Every record delivered.
    Done,
    /// Retry from this index of the batch.
    RetryFrom(usize, String),
}

/// A running pump; see the [module](self) documentation.
pub struct Pump {
    streams: aws_sdk_dynamodbstreams::Client,
    http: reqwest::Client,
    stream_arn: String,
    settings: PumpSettings,
    cursors: Vec<Cursor>,
    /// Shards read to their end (or closed before the pump started).
    finished: HashSet<String>,
    /// Every shard the pump has seen in the stream.
    known: HashSet<String>,
    polls: u64,
}

/// How often (in polls) the pump looks for new shards.
const REFRESH_EVERY: u64 = 20;

impl Pump {
    /// The pump for `table`'s stream, with every open shard positioned
    /// (`LATEST`), or every shard (`TRIM_HORIZON`, `from_start`).
    pub async fn start(
        dynamodb: &aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        table: &str,
        settings: PumpSettings,
    ) -> Result<Self> {
        let described = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .with_context(|| format!("DescribeTable {table}"))?;
        let Some(stream_arn) = described
            .table()
            .and_then(|t| t.latest_stream_arn())
            .map(str::to_owned)
        else {
            bail!("table {table} has no stream (template.yaml's StreamSpecification); recreate it with `dingdang-dev create-table`");
        };
        let http = reqwest::Client::builder()
            .timeout(settings.invoke_timeout)
            .build()
            .context("HTTP client")?;
        let mut pump = Self {
            streams,
            http,
            stream_arn,
            settings,
            cursors: Vec::new(),
            finished: HashSet::new(),
            known: HashSet::new(),
            polls: 0,
        };
        let from_start = pump.settings.from_start;
        for shard in pump.shards().await? {
            let id = shard.shard_id().unwrap_or_default().to_owned();
            let closed = shard
                .sequence_number_range()
                .and_then(|r| r.ending_sequence_number())
                .is_some();
            pump.known.insert(id.clone());
            if from_start {
                pump.track(&shard, Start::TrimHorizon);
            } else if closed {
                pump.finished.insert(id);
            } else {
                pump.track(&shard, Start::Latest);
            }
        }
        // Position the LATEST iterators now: records written from here on
        // are the ones to deliver.
        for i in 0..pump.cursors.len() {
            if pump.ready(&pump.cursors[i]) {
                pump.position(i).await?;
            }
        }
        Ok(pump)
    }

    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    pub fn settings(&self) -> &PumpSettings {
        &self.settings
    }

    fn track(&mut self, shard: &Shard, start: Start) {
        self.cursors.push(Cursor {
            shard_id: shard.shard_id().unwrap_or_default().to_owned(),
            parent: shard.parent_shard_id().map(str::to_owned),
            start,
            iterator: None,
        });
    }

    /// A shard is read after its parent, unless the parent is gone from
    /// the stream (trimmed) or was closed before the pump started.
    fn ready(&self, cursor: &Cursor) -> bool {
        match &cursor.parent {
            None => true,
            Some(parent) => self.finished.contains(parent) || !self.known.contains(parent),
        }
    }

    /// Every shard of the stream (`DescribeStream`, page by page).
    async fn shards(&self) -> Result<Vec<Shard>> {
        let mut shards = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(after.clone())
                .send()
                .await
                .context("DescribeStream")?;
            let description = out
                .stream_description()
                .ok_or_else(|| anyhow!("DescribeStream: no StreamDescription"))?;
            shards.extend(description.shards().iter().cloned());
            match description.last_evaluated_shard_id() {
                Some(id) if after.as_deref() != Some(id) => after = Some(id.to_owned()),
                _ => return Ok(shards),
            }
        }
    }

    /// New shards (a split, or the first ones of a stream that had none),
    /// read from their start.
    async fn refresh(&mut self) -> Result<()> {
        for shard in self.shards().await? {
            let id = shard.shard_id().unwrap_or_default().to_owned();
            if self.known.insert(id) {
                self.track(&shard, Start::TrimHorizon);
            }
        }
        Ok(())
    }

    async fn position(&mut self, i: usize) -> Result<()> {
        let cursor = &self.cursors[i];
        let (kind, seq) = match &cursor.start {
            Start::Latest => (ShardIteratorType::Latest, None),
            Start::TrimHorizon => (ShardIteratorType::TrimHorizon, None),
            Start::After(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
        };
        let out = self
            .streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(&cursor.shard_id)
            .shard_iterator_type(kind.clone())
            .set_sequence_number(seq)
            .send()
            .await
            .with_context(|| format!("GetShardIterator {} {kind:?}", cursor.shard_id))?;
        self.cursors[i].iterator = out.shard_iterator().map(str::to_owned);
        Ok(())
    }

    /// Reads every shard once and delivers what passes the filter.
    pub async fn poll_once(&mut self) -> Result<PollSummary> {
        if self.polls % REFRESH_EVERY == 0 && self.polls > 0 {
            self.refresh().await?;
        }
        self.polls += 1;
        let mut summary = PollSummary::default();
        let mut closed = false;
        for i in 0..self.cursors.len() {
            if self.cursors[i].iterator.is_none() {
                if !self.ready(&self.cursors[i]) {
                    continue;
                }
                self.position(i).await?;
            }
            let Some(iterator) = self.cursors[i].iterator.clone() else {
                continue;
            };
            let out = self
                .streams
                .get_records()
                .shard_iterator(iterator)
                .limit(self.settings.batch_size)
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                Err(err) => {
                    let service = err.as_service_error();
                    let cursor = &mut self.cursors[i];
                    if service.is_some_and(|e| e.is_expired_iterator_exception()) {
                        // Positioned again on the next poll, after the last
                        // record read.
                        cursor.iterator = None;
                        continue;
                    }
                    if service.is_some_and(|e| e.is_trimmed_data_access_exception()) {
                        eprintln!(
                            "stream-pump: shard {} was trimmed past the pump; reading it from its oldest record",
                            cursor.shard_id
                        );
                        cursor.iterator = None;
                        cursor.start = Start::TrimHorizon;
                        continue;
                    }
                    return Err(anyhow::Error::new(err).context("GetRecords"));
                }
            };
            let records = out.records();
            summary.read += records.len();
            if let Some(last) = records
                .last()
                .and_then(|r| r.dynamodb())
                .and_then(|d| d.sequence_number())
            {
                self.cursors[i].start = Start::After(last.to_owned());
            }
            let batch: Vec<Value> = records
                .iter()
                .map(|r| lambda_record(r, &self.stream_arn))
                .filter(passes_filter)
                .collect();
            summary.matched += batch.len();
            if !batch.is_empty() {
                let shard_id = self.cursors[i].shard_id.clone();
                self.deliver(&shard_id, batch, &mut summary).await;
            }
            match out.next_shard_iterator() {
                Some(next) => self.cursors[i].iterator = Some(next.to_owned()),
                None => {
                    // Closed and read to its end: its children come next.
                    let id = self.cursors[i].shard_id.clone();
                    eprintln!("stream-pump: shard {id} is closed and read to its end");
                    self.finished.insert(id);
                    closed = true;
                }
            }
        }
        let finished = &self.finished;
        self.cursors.retain(|c| !finished.contains(&c.shard_id));
        if closed {
            self.refresh().await?;
        }
        Ok(summary)
    }

    /// Invokes the function with `batch` until it delivers every record,
    /// resending from the first one it reports, for at most `max_tries`.
    async fn deliver(&self, shard_id: &str, mut batch: Vec<Value>, summary: &mut PollSummary) {
        let mut wait = self.settings.backoff;
        let mut tries = 0;
        loop {
            tries += 1;
            summary.invocations += 1;
            let first = sequence_number(&batch[0]).unwrap_or("?").to_owned();
            let reply = self.invoke(&batch).await;
            let why = match reply {
                Ok(Reply::Done) => {
                    eprintln!(
                        "stream-pump: entitlements took {} record(s) from shard {shard_id} (from sequence number {first})",
                        batch.len()
                    );
                    return;
                }
                Ok(Reply::RetryFrom(index, why)) => {
                    batch.drain(..index);
                    why
                }
                Err(err) => format!("invocation failed: {err:#}"),
            };
            let from = sequence_number(&batch[0]).unwrap_or("?");
            if tries >= self.settings.max_tries {
                eprintln!(
                    "stream-pump: {why}; giving up on {} record(s) from sequence number {from} after {tries} tries; the reconcile sweep delivers what is still pending",
                    batch.len()
                );
                summary.abandoned += batch.len();
                return;
            }
            eprintln!(
                "stream-pump: {why}; sending {} record(s) again from sequence number {from} in {:?} (try {} of {})",
                batch.len(),
                wait,
                tries + 1,
                self.settings.max_tries
            );
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.settings.max_backoff);
        }
    }

    /// One invocation, read as Lambda reads a reply with
    /// `ReportBatchItemFailures`: an empty or null reply, or an empty
    /// `batchItemFailures`, delivered everything; an item naming a record
    /// of the batch retries from it; anything else retries the whole batch.
    async fn invoke(&self, batch: &[Value]) -> Result<Reply> {
        let response = self
            .http
            .post(&self.settings.invoke_url)
            .json(&lambda_event(batch))
            .send()
            .await
            .with_context(|| format!("POST {}", self.settings.invoke_url))?;
        let status = response.status();
        let function_error = response
            .headers()
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.context("reading the reply")?;
        let text = String::from_utf8_lossy(&body);
        if !status.is_success() || function_error.is_some() {
            bail!(
                "{} {}: {}",
                status.as_u16(),
                function_error.unwrap_or_default(),
                text.trim()
            );
        }
        if text.trim().is_empty() {
            return Ok(Reply::Done);
        }
        let reply: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return Ok(Reply::RetryFrom(0, format!("unreadable reply {text}"))),
        };
        let failures = match reply.get("batchItemFailures") {
            None | Some(Value::Null) => return Ok(Reply::Done),
            Some(Value::Array(items)) => items,
            Some(_) => return Ok(Reply::RetryFrom(0, format!("unreadable reply {text}"))),
        };
        let mut first: Option<usize> = None;
        for item in failures {
            let id = item.get("itemIdentifier").and_then(Value::as_str);
            match id.and_then(|id| batch.iter().position(|r| sequence_number(r) == Some(id))) {
                Some(index) => first = Some(first.map_or(index, |f| f.min(index))),
                // Lambda retries the whole batch for an identifier that is
                // not one of its records.
                None => {
                    return Ok(Reply::RetryFrom(
                        0,
                        format!("entitlements reported an unknown record {item}"),
                    ))
                }
            }
        }
        Ok(match first {
            None => Reply::Done,
            Some(index) => Reply::RetryFrom(
                index,
                format!(
                    "entitlements reported record {} as not delivered",
                    sequence_number(&batch[index]).unwrap_or("?")
                ),
            ),
        })
    }

    /// Polls every `interval` for ever, logging (and outliving) errors.
    pub async fn run(mut self, interval: Duration) -> Result<()> {
        let mut failing = false;
        loop {
            match self.poll_once().await {
                Ok(_) if failing => {
                    eprintln!("stream-pump: reading the stream again");
                    failing = false;
                }
                Ok(_) => {}
                Err(err) => {
                    if !failing {
                        eprintln!("stream-pump: {err:#}; trying again");
                    }
                    failing = true;
                }
            }
            tokio::time::sleep(interval).await;
        }
    }
}
