//! `lambda-bench`: plays the Lambda Runtime API on 127.0.0.1, starts a
//! function binary (ship-notify) against it, and feeds it signed ship
//! notifications as API Gateway HTTP API (payload 2.0) events, one at a
//! time as one Lambda instance receives them.
//!
//! DynamoDB is the local moto server (`AWS_ENDPOINT_URL_DYNAMODB`, or one
//! started for the run), reached by the function through a counting proxy.
//! Reported: init time and init CPU (exec → first `next` call), latency
//! p50/p99 and events per second of first deliveries and of duplicates,
//! the function's CPU per event (its process CPU clock, all threads, read
//! while it waits in `next` before and after each event), DynamoDB round
//! trips per delivery, peak RSS (VmHWM). In the same run, two floors with
//! the same figures: `floor-http` (a lambda_http handler without I/O, fed
//! the same events) and `sdk-floor` (the claim's `TransactWriteItems` in a
//! plain loop). Exits non-zero when a delivery is not answered `SUCCESS`
//! with a valid signature, or when a first delivery takes more than 2 round
//! trips or a duplicate more than 1.

mod cpu;
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

use crate::cpu::ProcessCpu;
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
    /// The CPU floor of a lambda_http function (default: `floor-http` next
    /// to this program).
    #[arg(long)]
    floor_http: Option<PathBuf>,
    /// The CPU floor of the DynamoDB call (default: `sdk-floor` next to
    /// this program).
    #[arg(long)]
    sdk_floor: Option<PathBuf>,
    /// Measure the function only, not the floors.
    #[arg(long)]
    no_floors: bool,
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
    /// The function's CPU time (all threads) from waiting in `next` before
    /// the event to waiting in `next` after it.
    cpu: Option<Duration>,
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
    cpu: Vec<Duration>,
    round_trips: Vec<usize>,
    failures: Vec<String>,
}

/// p50, p99, mean and max of `times`.
struct Summary {
    n: usize,
    p50: Duration,
    p99: Duration,
    mean: Duration,
    max: Duration,
    total: Duration,
}

fn summary(times: &[Duration]) -> Option<Summary> {
    let mut sorted = times.to_vec();
    sorted.sort();
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let total: Duration = sorted.iter().sum();
    let pct = |p: f64| sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    Some(Summary {
        n,
        p50: pct(0.50),
        p99: pct(0.99),
        mean: total / n as u32,
        max: sorted[n - 1],
        total,
    })
}

impl Phase {
    fn add(&mut self, delivery: Delivery) {
        self.latencies.push(delivery.latency);
        self.own.push(delivery.own);
        self.cpu.extend(delivery.cpu);
        self.round_trips.push(delivery.trips);
        self.failures.extend(delivery.failure);
    }

    fn report(&self, name: &str) {
        for (label, times) in [(name, &self.latencies), ("  without moto", &self.own)] {
            let Some(s) = summary(times) else {
                println!("{label:<17} n=0");
                continue;
            };
            println!(
                "{label:<17} n={:<6} p50 {:>10}  p99 {:>10}  mean {:>10}  max {:>10}  {:>7.0} events/s",
                s.n,
                ms(s.p50),
                ms(s.p99),
                ms(s.mean),
                ms(s.max),
                s.n as f64 / s.total.as_secs_f64(),
            );
        }
        if let Some(s) = summary(&self.cpu) {
            println!(
                "{:<17} n={:<6} p50 {:>10}  p99 {:>10}  mean {:>10}  max {:>10}",
                "  CPU",
                s.n,
                ms(s.p50),
                ms(s.p99),
                ms(s.mean),
                ms(s.max),
            );
        }
    }

    fn cpu_mean(&self) -> Option<Duration> {
        summary(&self.cpu).map(|s| s.mean)
    }

    fn cpu_p50(&self) -> Option<Duration> {
        summary(&self.cpu).map(|s| s.p50)
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

fn opt_ms(d: Option<Duration>) -> String {
    d.map(ms).unwrap_or_else(|| "?".into())
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

/// A tool built next to this one (`floor-http`, `sdk-floor`).
fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// What one function process measured.
struct FunctionRun {
    init_wall: Duration,
    init_cpu: Option<Duration>,
    /// The first invocation: latency, without moto, CPU.
    cold: Option<(Duration, Duration, Option<Duration>)>,
    first: Phase,
    dups: Phase,
    first_ops: std::collections::BTreeMap<String, usize>,
    dup_ops: std::collections::BTreeMap<String, usize>,
    retries: usize,
    rss_after_init: Option<u64>,
    peak: Option<u64>,
    precise_cpu: bool,
}

/// How the replies of a process are checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// `200 {"retCode":"SUCCESS"}`, signed with the skill's key.
    Signed,
    /// `200 {"retCode":"SUCCESS"}` (the floor answers unsigned).
    Unsigned,
}

/// The environment Lambda and template.yaml give the function.
fn function_env(
    api: Option<&str>,
    proxy: &Proxy,
    table: &str,
    platform: &Platform,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("AWS_LAMBDA_FUNCTION_NAME", "ship-notify"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ship-notify"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("TZ", ":UTC"),
        ("DINGDANG_SKILL_ID", SKILL),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), proxy.url()));
    env.push(("TABLE_NAME".into(), table.to_owned()));
    if let Some(api) = api {
        env.push(("AWS_LAMBDA_RUNTIME_API".into(), api.to_owned()));
    }
    // Passed through: the log level, and where rustls-native-certs looks
    // for root certificates (to compare init times).
    for name in ["RUST_LOG", "SSL_CERT_FILE", "SSL_CERT_DIR"] {
        if let Ok(value) = std::env::var(name) {
            env.push((name.into(), value));
        }
    }
    for (name, value) in &platform.env {
        env.push(((*name).into(), value.clone()));
    }
    env
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

    let mut extra = Vec::new();
    if let Some(webhook) = &webhook {
        // ship-notify no longer calls the webhook (the entitlements
        // function does, from the outbox): configured as template.yaml
        // would, it must change nothing here.
        extra.push(("FULFILLMENT_URL".to_owned(), webhook.url().to_owned()));
        extra.push((
            "FULFILLMENT_SECRET".to_owned(),
            dingdang_tests::WEBHOOK_SECRET.to_owned(),
        ));
    }
    let log = match &args.log {
        Some(path) => Some(
            std::fs::File::create(path).with_context(|| format!("log file {}", path.display()))?,
        ),
        None => None,
    };
    let ctx = Ctx {
        proxy: &proxy,
        table: &table,
        platform: &platform,
        timeout: Duration::from_secs(args.event_timeout_secs),
    };
    let function = ctx
        .run_function(&binary, &extra, log, &notices, duplicates, Check::Signed)
        .await?;

    // The floors, in the same run: the same events answered by a
    // lambda_http handler without I/O, and the same DynamoDB call in a loop.
    let mut http_floor = None;
    let mut sdk_floor = None;
    if !args.no_floors {
        let floor_binary = args
            .floor_http
            .clone()
            .unwrap_or_else(|| sibling("floor-http"));
        eprintln!("lambda-bench: floor: {}", floor_binary.display());
        http_floor = Some(
            ctx.run_function(
                &floor_binary,
                &[],
                None,
                &notices,
                duplicates,
                Check::Unsigned,
            )
            .await?,
        );
        let sdk_binary = args
            .sdk_floor
            .clone()
            .unwrap_or_else(|| sibling("sdk-floor"));
        eprintln!("lambda-bench: floor: {}", sdk_binary.display());
        sdk_floor = Some(
            ctx.run_sdk_floor(&sdk_binary, args.events, duplicates)
                .await?,
        );
    }

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
    let f = &function;
    println!(
        "init (exec → first next)   {} wall, {} CPU",
        ms(f.init_wall),
        opt_ms(f.init_cpu)
    );
    if let Some((latency, own, cpu)) = f.cold {
        println!(
            "first invocation (cold)    {} ({} without moto), {} CPU",
            ms(latency),
            ms(own),
            opt_ms(cpu)
        );
    }
    f.first.report("first deliveries");
    f.dups.report("duplicates");
    let (first_mean, first_max) = f.first.round_trips();
    let (dup_mean, dup_max) = f.dups.round_trips();
    println!(
        "DynamoDB round trips: first delivery {first_mean:.2} (max {first_max}) {:?}, \
         duplicate {dup_mean:.2} (max {dup_max}) {:?}; SDK retries {}",
        f.first_ops, f.dup_ops, f.retries
    );
    println!(
        "RSS after init {}, peak RSS (VmHWM) {}",
        f.rss_after_init.map(mib).unwrap_or_else(|| "?".into()),
        f.peak.map(mib).unwrap_or_else(|| "?".into())
    );
    if let Some(webhook) = &webhook {
        println!("webhook calls {}", webhook.calls());
    }
    if !f.precise_cpu {
        println!("(CPU from /proc/<pid>/stat, in clock ticks: coarse)");
    }

    // The function next to its floors.
    println!();
    println!(
        "{:<28} {:>14} {:>14} {:>14} {:>16}",
        "CPU per event (mean)", binary_name, "http floor", "SDK floor", "over SDK floor"
    );
    let http = http_floor.as_ref();
    let sdk = sdk_floor.as_ref();
    for (label, phase, http_phase, sdk_phase) in [
        (
            "first deliveries",
            &f.first,
            http.map(|h| &h.first),
            sdk.map(|s| s.first),
        ),
        (
            "duplicates",
            &f.dups,
            http.map(|h| &h.dups),
            sdk.map(|s| s.duplicates),
        ),
    ] {
        let own = phase.cpu_mean();
        let over = match (own, sdk_phase) {
            (Some(own), Some(sdk)) if own >= sdk => format!("+{}", ms(own - sdk)),
            (Some(own), Some(sdk)) => format!("-{}", ms(sdk - own)),
            _ => "?".into(),
        };
        println!(
            "{label:<28} {:>14} {:>14} {:>14} {:>16}",
            opt_ms(own),
            opt_ms(http_phase.and_then(Phase::cpu_mean)),
            opt_ms(sdk_phase),
            over
        );
    }
    println!(
        "{:<28} {:>14} {:>14}",
        "CPU per event (p50)",
        opt_ms(f.first.cpu_p50()),
        opt_ms(http.and_then(|h| h.first.cpu_p50()))
    );
    println!(
        "{:<28} {:>14} {:>14}",
        "init CPU",
        opt_ms(f.init_cpu),
        opt_ms(http.and_then(|h| h.init_cpu))
    );
    println!(
        "{:<28} {:>14} {:>14}",
        "init wall",
        ms(f.init_wall),
        http.map(|h| ms(h.init_wall)).unwrap_or_else(|| "?".into())
    );
    println!(
        "{:<28} {:>14} {:>14}",
        "peak RSS",
        f.peak.map(mib).unwrap_or_else(|| "?".into()),
        http.and_then(|h| h.peak)
            .map(mib)
            .unwrap_or_else(|| "?".into())
    );

    let mut ok = true;
    let mut phases = vec![("first delivery", &f.first), ("duplicate", &f.dups)];
    if let Some(h) = http {
        phases.push(("floor-http event", &h.first));
        phases.push(("floor-http event", &h.dups));
    }
    for (name, phase) in phases {
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
    if f.retries > 0 {
        ok = false;
        eprintln!("lambda-bench: the SDK retried requests: the counts include retries");
    }
    Ok(ok)
}

/// The SDK floor's CPU per event, by phase.
struct SdkFloor {
    first: Duration,
    duplicates: Duration,
}

/// What every process of a run shares.
struct Ctx<'a> {
    proxy: &'a Proxy,
    table: &'a str,
    platform: &'a Platform,
    timeout: Duration,
}

impl Ctx<'_> {
    /// Starts `binary` against a fresh Runtime API, sends it the first
    /// deliveries then `duplicates` redeliveries, and stops it.
    async fn run_function(
        &self,
        binary: &std::path::Path,
        extra_env: &[(String, String)],
        log: Option<std::fs::File>,
        notices: &[Notice],
        duplicates: usize,
        check: Check,
    ) -> Result<FunctionRun> {
        let api = RuntimeApi::start().await?;
        let mut command = Command::new(binary);
        command.env_clear();
        for (name, value) in
            function_env(Some(api.address()), self.proxy, self.table, self.platform)
                .iter()
                .chain(extra_env)
        {
            command.env(name, value);
        }
        let (stdout, stderr) = match log {
            Some(file) => (Stdio::from(file.try_clone()?), Stdio::from(file)),
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
        let clock = ProcessCpu::of(pid);
        let init = tokio::select! {
            init = api.wait_init() => init,
            status = child.wait() => bail!("the function exited during init: {}", status?),
            _ = tokio::time::sleep(Duration::from_secs(60)) => bail!("no `next` call within 60 s"),
        };
        let init_wall = match init {
            Init::Ready(at) => at - started,
            Init::Failed(message) => bail!("init error: {message}"),
            Init::Pending => unreachable!("wait_init returns once init is over"),
        };
        let init_cpu = clock.read();
        let rss_after_init = proc_status_kib(pid, "VmRSS");

        let mut runner = Runner {
            api: &api,
            child: &mut child,
            proxy: self.proxy,
            platform: self.platform,
            clock: &clock,
            check,
            timeout: self.timeout,
            seq: 0,
        };
        self.proxy.reset();
        eprintln!("lambda-bench: {} first deliveries", notices.len());
        let mut cold = None;
        let mut first = Phase::default();
        for (i, notice) in notices.iter().enumerate() {
            let delivery = runner.deliver(notice).await?;
            if i == 0 {
                // The cold invocation: reported on its own, checked like the rest.
                cold = Some((delivery.latency, delivery.own, delivery.cpu));
                first.round_trips.push(delivery.trips);
                first.failures.extend(delivery.failure);
            } else {
                first.add(delivery);
            }
        }
        let first_ops = self.proxy.by_operation();
        let first_retries = self.proxy.retries();

        eprintln!("lambda-bench: {duplicates} duplicates");
        self.proxy.reset();
        let mut dups = Phase::default();
        for i in 0..duplicates {
            dups.add(runner.deliver(&notices[i % notices.len()]).await?);
        }
        let dup_ops = self.proxy.by_operation();
        let retries = first_retries + self.proxy.retries();

        let peak = proc_status_kib(pid, "VmHWM");
        let _ = child.start_kill();
        let _ = child.wait().await;
        Ok(FunctionRun {
            init_wall,
            init_cpu,
            cold,
            first,
            dups,
            first_ops,
            dup_ops,
            retries,
            rss_after_init,
            peak,
            precise_cpu: clock.precise(),
        })
    }

    /// Runs `sdk-floor` to its end and reads its CPU per event.
    async fn run_sdk_floor(
        &self,
        binary: &std::path::Path,
        events: usize,
        duplicates: usize,
    ) -> Result<SdkFloor> {
        let mut command = Command::new(binary);
        command.env_clear();
        for (name, value) in function_env(None, self.proxy, self.table, self.platform) {
            command.env(name, value);
        }
        let output = command
            .args(["--events", &events.to_string()])
            .args(["--duplicates", &duplicates.to_string()])
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("run {}", binary.display()))?;
        if !output.status.success() {
            bail!("{} failed: {}", binary.display(), output.status);
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let per_event = |phase: &str| -> Result<Duration> {
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("phase {phase} ")))
                .with_context(|| format!("sdk-floor printed no {phase} phase"))?;
            let fields: Vec<u128> = line
                .split_whitespace()
                .map(|f| f.parse())
                .collect::<Result<_, _>>()?;
            let (n, cpu) = (fields[0].max(1), fields[1]);
            Ok(Duration::from_nanos((cpu / n) as u64))
        };
        Ok(SdkFloor {
            first: per_event("first")?,
            duplicates: per_event("duplicates")?,
        })
    }
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
    clock: &'a ProcessCpu,
    check: Check,
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
        // The function waits in `next` (the seq-th call): its CPU clock
        // stands still.
        self.api.wait_nexts(self.seq + 1, self.timeout).await?;
        let cpu_before = self.clock.read();
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
        // Back in `next`: the event's CPU is all spent.
        let cpu = match completion {
            Completion::Response(_) | Completion::Error { .. } => {
                tokio::select! {
                    waited = self.api.wait_nexts(self.seq + 1, self.timeout) => waited?,
                    status = self.child.wait() => bail!("the function exited: {}", status?),
                }
                match (cpu_before, self.clock.read()) {
                    (Some(before), Some(after)) => Some(after.saturating_sub(before)),
                    _ => None,
                }
            }
        };
        let failure = match completion {
            Completion::Error { error_type, body } => Some(format!(
                "invocation error {error_type}: {}",
                String::from_utf8_lossy(&body)
            )),
            Completion::Response(bytes) => {
                let answer = parse_response(&bytes)?;
                let signed = self.check == Check::Unsigned
                    || answer.authorization.as_deref().is_some_and(|h| {
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
            cpu,
            trips,
            failure,
        })
    }
}
