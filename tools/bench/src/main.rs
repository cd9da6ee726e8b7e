//! `lambda-bench`: plays the Lambda Runtime API on 127.0.0.1, starts a
//! function binary (ship-notify) against it, and feeds it signed ship
//! notifications as API Gateway HTTP API (payload 2.0) events, one at a
//! time as one Lambda instance receives them.
//!
//! DynamoDB is the local moto server (`AWS_ENDPOINT_URL_DYNAMODB`, or one
//! started for the run), reached by the function through a counting proxy.
//! Reported: init time (exec → first `next` call), latency p50/p99 and
//! events per second of first deliveries and of duplicates, DynamoDB round
//! trips per delivery, peak RSS (VmHWM). Exits non-zero when a delivery is
//! not answered `SUCCESS` with a valid signature, or when a first delivery
//! takes more than 2 round trips or a duplicate more than 1.

mod event;
mod runtime_api;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use dingdang::domain::orders::{register, NewOrder, Registered};
use dingdang::protocol::{Fen, TradeNo};
use dingdang::signing::{self, HmacSecret, KeyRing, Signer, Verifier};
use dingdang::store::DynamoStore;
use dingdang_tests::proxy::Proxy;
use time::OffsetDateTime;
use tokio::process::{Child, Command};

use crate::event::{parse_response, ship_event};
use crate::runtime_api::{Completion, Init, RuntimeApi};

const SKILL: &str = dingdang_tests::SKILL;
const PLATFORM_PRIVATE_KEY: &str =
    include_str!("../../../shared/tests/vectors/platform_private_key.pem");
const PLATFORM_PUBLIC_KEY: &str =
    include_str!("../../../shared/tests/vectors/platform_public_key.pem");
const SKILL_PRIVATE_KEY: &str =
    include_str!("../../../shared/tests/vectors/second_private_key.pem");
const SKILL_PUBLIC_KEY: &str = include_str!("../../../shared/tests/vectors/second_public_key.pem");

/// Upper bounds that keep a run finite whatever the flags say.
const MAX_EVENTS: usize = 100_000;
const MAX_FIRST_ROUND_TRIPS: usize = 2;
const MAX_DUPLICATE_ROUND_TRIPS: usize = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Alg {
    /// TSK-HMAC-SHA256-BASIC
    Hmac,
    /// TSK-RSA2 (2048-bit test keys)
    Rsa2,
}

#[derive(Parser, Debug)]
#[command(
    name = "lambda-bench",
    about = "Benchmark a function binary through a local Lambda Runtime API"
)]
struct Args {
    /// The function binary (build it with `cargo build --release -p ship-notify`).
    #[arg(long, default_value = "target/release/ship-notify")]
    binary: PathBuf,
    /// First deliveries: one new order and transaction each.
    #[arg(long, default_value_t = 1000)]
    events: usize,
    /// Duplicates: redeliveries of the first deliveries (same body, new
    /// Datetime); defaults to --events.
    #[arg(long)]
    duplicates: Option<usize>,
    /// Signing algorithm of the notifications and replies.
    #[arg(long, value_enum, default_value_t = Alg::Hmac)]
    alg: Alg,
    /// Configure FULFILLMENT_URL (a local stub webhook answering 200).
    #[arg(long)]
    fulfillment: bool,
    /// Write the function's stdout and stderr here (default: discarded).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Give up on one invocation after this many seconds.
    #[arg(long, default_value_t = 30)]
    event_timeout_secs: u64,
    /// Give up on the whole run after this many seconds.
    #[arg(long, default_value_t = 1800)]
    timeout_secs: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let budget = Duration::from_secs(args.timeout_secs);
    match tokio::time::timeout(budget, run(args)).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            eprintln!("lambda-bench: FAILED (see above)");
            std::process::exit(1);
        }
        Ok(Err(err)) => {
            eprintln!("lambda-bench: error: {err:#}");
            std::process::exit(2);
        }
        Err(_) => {
            eprintln!("lambda-bench: gave up after {budget:?}");
            std::process::exit(2);
        }
    }
}

/// The platform's side: signs notifications, verifies replies.
struct Platform {
    signer: Signer,
    reply_verifier: KeyRing,
    env: Vec<(&'static str, String)>,
}

impl Platform {
    fn new(alg: Alg) -> Result<Self> {
        let skew = KeyRing::DEFAULT_SKEW;
        Ok(match alg {
            Alg::Hmac => {
                let secret = HmacSecret::new(dingdang_tests::SECRET);
                Platform {
                    signer: Signer::Hmac(secret.clone()),
                    reply_verifier: KeyRing {
                        signer: Signer::Hmac(secret.clone()),
                        verifier: Verifier::hmac(vec![secret]),
                        skew,
                    },
                    env: vec![("DINGDANG_SKILL_SECRET", dingdang_tests::SECRET.into())],
                }
            }
            Alg::Rsa2 => {
                let platform = signing::parse_private_key(PLATFORM_PRIVATE_KEY)?;
                let skill_public = signing::parse_public_keys(SKILL_PUBLIC_KEY)?;
                Platform {
                    signer: Signer::rsa2(platform.clone()),
                    reply_verifier: KeyRing {
                        signer: Signer::rsa2(platform),
                        verifier: Verifier::rsa2(skill_public),
                        skew,
                    },
                    env: vec![
                        ("DINGDANG_SIGN_ALG", "TSK-RSA2".into()),
                        ("DINGDANG_PLATFORM_PUBLIC_KEY", PLATFORM_PUBLIC_KEY.into()),
                        ("DINGDANG_SKILL_PRIVATE_KEY", SKILL_PRIVATE_KEY.into()),
                    ],
                }
            }
        })
    }
}

/// One notification of the run.
struct Notice {
    body: Vec<u8>,
}

/// What one delivery measured.
struct Delivery {
    /// Event handed to the runtime API → response posted back.
    latency: Duration,
    /// `latency` minus the time the proxy waited for DynamoDB (moto).
    own: Duration,
    /// DynamoDB requests made.
    trips: usize,
    /// What was wrong with the answer, if anything.
    failure: Option<String>,
}

/// What one phase measured.
#[derive(Default)]
struct Phase {
    latencies: Vec<Duration>,
    own: Vec<Duration>,
    round_trips: Vec<usize>,
    failures: Vec<String>,
}

impl Phase {
    fn add(&mut self, delivery: Delivery) {
        self.latencies.push(delivery.latency);
        self.own.push(delivery.own);
        self.round_trips.push(delivery.trips);
        self.failures.extend(delivery.failure);
    }

    fn report(&self, name: &str) {
        for (label, times) in [(name, &self.latencies), ("  without moto", &self.own)] {
            let mut sorted = times.clone();
            sorted.sort();
            let n = sorted.len();
            if n == 0 {
                println!("{label:<17} n=0");
                continue;
            }
            let total: Duration = sorted.iter().sum();
            let pct = |p: f64| sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
            println!(
                "{label:<17} n={n:<6} p50 {:>10}  p99 {:>10}  mean {:>10}  max {:>10}  {:>7.0} events/s",
                ms(pct(0.50)),
                ms(pct(0.99)),
                ms(total / n as u32),
                ms(sorted[n - 1]),
                n as f64 / total.as_secs_f64(),
            );
        }
    }

    fn round_trips(&self) -> (f64, usize) {
        let n = self.round_trips.len().max(1);
        let sum: usize = self.round_trips.iter().sum();
        (
            sum as f64 / n as f64,
            self.round_trips.iter().copied().max().unwrap_or(0),
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A `Vm*:` line of /proc/<pid>/status, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

async fn run(args: Args) -> Result<bool> {
    if args.events == 0 || args.events > MAX_EVENTS {
        bail!("--events must be 1..={MAX_EVENTS}");
    }
    let duplicates = args.duplicates.unwrap_or(args.events);
    if duplicates > MAX_EVENTS {
        bail!("--duplicates must be at most {MAX_EVENTS}");
    }
    let binary = args.binary.clone();
    let size = std::fs::metadata(&binary)
        .with_context(|| format!("function binary {}", binary.display()))?
        .len();
    let platform = Platform::new(args.alg)?;

    // DynamoDB: the table straight, the function through the proxy.
    let endpoint = dingdang_tests::dynamo_endpoint();
    let client = dingdang_tests::dynamo_client().await;
    let table = dingdang_tests::new_table(&client).await;
    let store = DynamoStore::new(client, table.clone());
    let proxy = Proxy::start(endpoint).await;
    let webhook = if args.fulfillment {
        Some(dingdang_tests::Webhook::start().await)
    } else {
        None
    };

    eprintln!("lambda-bench: registering {} orders", args.events);
    let notices = register_orders(&store, args.events).await?;

    let api = RuntimeApi::start().await?;
    let mut command = Command::new(&binary);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "ship-notify")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ship-notify")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url())
        .env("TZ", ":UTC")
        .env("TABLE_NAME", &table)
        .env("DINGDANG_SKILL_ID", SKILL);
    // Passed through: the log level, and where rustls-native-certs looks
    // for root certificates (to compare init times).
    for name in ["RUST_LOG", "SSL_CERT_FILE", "SSL_CERT_DIR"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    for (name, value) in &platform.env {
        command.env(name, value);
    }
    if let Some(webhook) = &webhook {
        command.env("FULFILLMENT_URL", webhook.url());
    }
    let (stdout, stderr) = match &args.log {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("log file {}", path.display()))?;
            (Stdio::from(file.try_clone()?), Stdio::from(file))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true);

    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    let pid = child.id().context("function pid")?;
    let init = tokio::select! {
        init = api.wait_init() => init,
        status = child.wait() => bail!("the function exited during init: {}", status?),
        _ = tokio::time::sleep(Duration::from_secs(60)) => bail!("no `next` call within 60 s"),
    };
    let init_time = match init {
        Init::Ready(at) => at - started,
        Init::Failed(message) => bail!("init error: {message}"),
        Init::Pending => unreachable!("wait_init returns once init is over"),
    };
    let rss_after_init = proc_status_kib(pid, "VmRSS");

    let timeout = Duration::from_secs(args.event_timeout_secs);
    let mut runner = Runner {
        api: &api,
        child: &mut child,
        proxy: &proxy,
        platform: &platform,
        timeout,
        seq: 0,
    };
    proxy.reset();
    eprintln!("lambda-bench: {} first deliveries", notices.len());
    let mut cold = None;
    let mut first = Phase::default();
    for (i, notice) in notices.iter().enumerate() {
        let delivery = runner.deliver(notice).await?;
        if i == 0 {
            // The cold invocation: reported on its own, checked like the rest.
            cold = Some((delivery.latency, delivery.own));
            first.round_trips.push(delivery.trips);
            first.failures.extend(delivery.failure);
        } else {
            first.add(delivery);
        }
    }
    let first_ops = proxy.by_operation();
    let first_retries = proxy.retries();

    eprintln!("lambda-bench: {duplicates} duplicates");
    proxy.reset();
    let mut dups = Phase::default();
    for i in 0..duplicates {
        dups.add(runner.deliver(&notices[i % notices.len()]).await?);
    }
    let dup_ops = proxy.by_operation();
    let dup_retries = proxy.retries();

    let peak = proc_status_kib(pid, "VmHWM");
    let _ = child.start_kill();
    let _ = child.wait().await;

    let binary_name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    println!(
        "lambda-bench: {binary_name} ({}, {:.1} MiB), {:?}, FULFILLMENT_URL {}",
        binary.display(),
        size as f64 / 1024.0 / 1024.0,
        args.alg,
        if webhook.is_some() { "set" } else { "unset" }
    );
    println!("init (exec → first next)   {}", ms(init_time));
    if let Some((latency, own)) = cold {
        println!(
            "first invocation (cold)    {} ({} without moto)",
            ms(latency),
            ms(own)
        );
    }
    first.report("first deliveries");
    dups.report("duplicates");
    let (first_mean, first_max) = first.round_trips();
    let (dup_mean, dup_max) = dups.round_trips();
    println!(
        "DynamoDB round trips: first delivery {first_mean:.2} (max {first_max}) {first_ops:?}, \
         duplicate {dup_mean:.2} (max {dup_max}) {dup_ops:?}; SDK retries {}",
        first_retries + dup_retries
    );
    println!(
        "RSS after init {}, peak RSS (VmHWM) {}",
        rss_after_init.map(mib).unwrap_or_else(|| "?".into()),
        peak.map(mib).unwrap_or_else(|| "?".into())
    );
    if let Some(webhook) = &webhook {
        println!("webhook calls {}", webhook.calls());
    }

    let mut ok = true;
    for (name, phase) in [("first delivery", &first), ("duplicate", &dups)] {
        if !phase.failures.is_empty() {
            ok = false;
            eprintln!(
                "lambda-bench: {} {name} failures, e.g. {}",
                phase.failures.len(),
                phase.failures[0]
            );
        }
    }
    if first_max > MAX_FIRST_ROUND_TRIPS || (duplicates > 0 && dup_max > MAX_DUPLICATE_ROUND_TRIPS)
    {
        ok = false;
        eprintln!(
            "lambda-bench: round trips over budget (≤{MAX_FIRST_ROUND_TRIPS} per first delivery, \
             ≤{MAX_DUPLICATE_ROUND_TRIPS} per duplicate)"
        );
    }
    if first_retries + dup_retries > 0 {
        ok = false;
        eprintln!("lambda-bench: the SDK retried requests: the counts include retries");
    }
    if let Some(webhook) = &webhook {
        if webhook.calls() != notices.len() {
            ok = false;
            eprintln!(
                "lambda-bench: {} webhook calls for {} orders",
                webhook.calls(),
                notices.len()
            );
        }
    }
    Ok(ok)
}

async fn register_orders(store: &DynamoStore, n: usize) -> Result<Vec<Notice>> {
    let run = format!("{:08x}", std::process::id());
    let mut notices = Vec::with_capacity(n);
    for i in 0..n {
        let trade_no = format!("BENCH{run}{i:08}");
        let total_amt = 100 + (i as i64 % 9900);
        let registered = register(
            store,
            NewOrder {
                trade_no: Some(TradeNo::parse(&trade_no)?),
                total_amt: Fen::new(total_amt)?,
                user_token: None,
            },
            OffsetDateTime::now_utc(),
            std::time::Duration::from_secs(600),
        )
        .await?;
        if !matches!(registered, Registered::Created(_)) {
            bail!("order {trade_no} was not created: {registered:?}");
        }
        let body = dingdang_tests::ship_body(
            &format!("TXN{run}{i:08}"),
            &trade_no,
            total_amt,
            &format!("N{run}{i:08}"),
        );
        notices.push(Notice { body });
    }
    Ok(notices)
}

struct Runner<'a> {
    api: &'a RuntimeApi,
    child: &'a mut Child,
    proxy: &'a Proxy,
    platform: &'a Platform,
    timeout: Duration,
    seq: u64,
}

impl Runner<'_> {
    /// Delivers one notification and checks the answer.
    async fn deliver(&mut self, notice: &Notice) -> Result<Delivery> {
        let authorization = self
            .platform
            .signer
            .sign(&notice.body, OffsetDateTime::now_utc())
            .to_string();
        let event = Bytes::from(ship_event(
            &notice.body,
            &authorization,
            &format!("bench-{:08}", self.seq),
        )?);
        self.seq += 1;
        let before = self.proxy.requests();
        let waited_before = self.proxy.upstream_time();
        let started = Instant::now();
        let completion = tokio::select! {
            completion = self.api.invoke(event, self.timeout) => completion?,
            status = self.child.wait() => bail!("the function exited: {}", status?),
        };
        let latency = started.elapsed();
        let trips = self.proxy.requests() - before;
        let waited = self.proxy.upstream_time().saturating_sub(waited_before);
        let failure = match completion {
            Completion::Error { error_type, body } => Some(format!(
                "invocation error {error_type}: {}",
                String::from_utf8_lossy(&body)
            )),
            Completion::Response(bytes) => {
                let answer = parse_response(&bytes)?;
                let signed = answer.authorization.as_deref().is_some_and(|h| {
                    self.platform
                        .reply_verifier
                        .verify(Some(h), &answer.body, OffsetDateTime::now_utc())
                        .is_ok()
                });
                if answer.status != 200 || answer.ret_code().as_deref() != Some("SUCCESS") {
                    Some(format!(
                        "status {}: {}",
                        answer.status,
                        String::from_utf8_lossy(&answer.body)
                    ))
                } else if !signed {
                    Some("reply signature does not verify".into())
                } else {
                    None
                }
            }
        };
        Ok(Delivery {
            latency,
            own: latency.saturating_sub(waited),
            trips,
            failure,
        })
    }
}
