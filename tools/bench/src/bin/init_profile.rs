//! `init-profile`: where does a function's init time go? Runs the steps of
//! ship-notify's init (the same calls as `main` and
//! `ShipNotifyApp::from_env`) in fresh processes, timing each with
//! `Instant`, and prints the median of each step over the runs. One-time
//! costs (lazy statics, first use of a crypto provider) count, as in a cold
//! start. Two DynamoDB requests after init show what is left for the first
//! invocation.
//!
//!     cargo build --release -p bench --bin init-profile
//!     target/release/init-profile --alg rsa2 --runs 15

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use clap::{Parser, ValueEnum};
use dingdang::config::Config;
use dingdang::http::ship_notify::ShipNotifyApp;
use dingdang::store::DynamoStore;

const PLATFORM_PUBLIC_KEY: &str =
    include_str!("../../../../shared/tests/vectors/platform_public_key.pem");
const SKILL_PRIVATE_KEY: &str =
    include_str!("../../../../shared/tests/vectors/second_private_key.pem");
const MAX_RUNS: usize = 200;
const MARK: &str = "init-profile:";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Alg {
    Hmac,
    Rsa2,
}

/// How the child builds the SDK configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SdkConfig {
    /// `aws_config::load_defaults`, as `DynamoStore::from_env` does.
    Default,
    /// The same loader with the credentials taken from the environment
    /// only (no default credentials chain).
    EnvCredentials,
}

#[derive(Parser, Debug)]
#[command(name = "init-profile", about = "Time each step of ship-notify's init")]
struct Args {
    #[arg(long, value_enum, default_value_t = Alg::Hmac)]
    alg: Alg,
    /// Fresh processes to run.
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// Set FULFILLMENT_URL (the HTTP client is then used).
    #[arg(long)]
    fulfillment: bool,
    /// How to build the SDK configuration (to compare).
    #[arg(long, value_enum, default_value_t = SdkConfig::Default)]
    sdk_config: SdkConfig,
    /// Internal: run the steps once in this process.
    #[arg(long, hide = true)]
    child: bool,
}

/// The steps, in order, as named in the report.
const STEPS: &[&str] = &[
    "exec → main",
    "tokio runtime",
    "logging",
    "Config::from_env (keys)",
    "aws_config::load_defaults",
    "dynamodb Client::new",
    "reqwest http_client",
    "ShipNotifyApp::new",
    "init total (main → app)",
    "1st DynamoDB request",
    "2nd DynamoDB request",
];

fn main() -> Result<()> {
    let args = Args::parse();
    if args.child {
        return child(args.sdk_config);
    }
    if args.runs == 0 || args.runs > MAX_RUNS {
        bail!("--runs must be 1..={MAX_RUNS}");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let (endpoint, table) = runtime.block_on(async {
        let client = dingdang_tests::dynamo_client().await;
        let table = dingdang_tests::new_table(&client).await;
        (dingdang_tests::dynamo_endpoint().to_owned(), table)
    });
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); STEPS.len()];
    for _ in 0..args.runs {
        let run = run_child(&args, &endpoint, &table)?;
        for (i, d) in run.into_iter().enumerate() {
            samples[i].push(d);
        }
    }
    println!(
        "init-profile: ship-notify init steps, {:?}, SDK config {:?}, FULFILLMENT_URL {}, median (min–max) of {} fresh processes",
        args.alg,
        args.sdk_config,
        if args.fulfillment { "set" } else { "unset" },
        args.runs
    );
    for (name, mut times) in STEPS.iter().zip(samples) {
        times.sort();
        println!(
            "  {name:<28} {:>9}  ({} – {})",
            ms(times[times.len() / 2]),
            ms(times[0]),
            ms(times[times.len() - 1])
        );
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn run_child(args: &Args, endpoint: &str, table: &str) -> Result<Vec<Duration>> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("--child")
        .arg("--sdk-config")
        .arg(
            args.sdk_config
                .to_possible_value()
                .context("a value name")?
                .get_name(),
        )
        .env_clear()
        .env("AWS_LAMBDA_FUNCTION_NAME", "ship-notify")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        .env("TABLE_NAME", table)
        .env("DINGDANG_SKILL_ID", dingdang_tests::SKILL);
    match args.alg {
        Alg::Hmac => {
            command.env("DINGDANG_SKILL_SECRET", dingdang_tests::SECRET);
        }
        Alg::Rsa2 => {
            command
                .env("DINGDANG_SIGN_ALG", "TSK-RSA2")
                .env("DINGDANG_PLATFORM_PUBLIC_KEY", PLATFORM_PUBLIC_KEY)
                .env("DINGDANG_SKILL_PRIVATE_KEY", SKILL_PRIVATE_KEY);
        }
    }
    if args.fulfillment {
        command.env("FULFILLMENT_URL", "http://127.0.0.1:9/fulfil");
    }
    // Where rustls-native-certs looks for root certificates, to compare.
    for name in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let started = Instant::now();
    let mut child = command.spawn().context("start the child")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut exec_to_main = None;
    let mut steps = None;
    let deadline = started + Duration::from_secs(60);
    for line in lines.by_ref() {
        let line = line?;
        if line == format!("{MARK} main") {
            exec_to_main = Some(started.elapsed());
        } else if let Some(rest) = line.strip_prefix(MARK) {
            let nanos: Vec<u64> = rest
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .context("child report")?;
            steps = Some(nanos);
            break;
        }
        if Instant::now() > deadline {
            break;
        }
    }
    let status = child.wait()?;
    let (Some(exec_to_main), Some(steps)) = (exec_to_main, steps) else {
        bail!("the child did not report ({status})");
    };
    let mut times = vec![exec_to_main];
    times.extend(steps.into_iter().map(Duration::from_nanos));
    if times.len() != STEPS.len() {
        bail!("the child reported {} steps", times.len());
    }
    Ok(times)
}

/// One cold init, timed step by step; prints the nanoseconds on one line.
fn child(sdk_config: SdkConfig) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARK} main")?;
    out.flush()?;
    drop(out);
    let start = Instant::now();
    let mut times = Vec::new();
    let mut mark = start;
    let mut lap = |times: &mut Vec<Duration>| {
        let now = Instant::now();
        times.push(now - mark);
        mark = now;
    };
    // As #[tokio::main] builds it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    lap(&mut times);
    let steps = runtime.block_on(async {
        dingdang::observability::init_logging();
        lap(&mut times);
        let config = Config::from_env()?;
        lap(&mut times);
        let sdk = match sdk_config {
            SdkConfig::Default => {
                aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
            }
            SdkConfig::EnvCredentials => {
                aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .credentials_provider(
                        aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
                    )
                    .load()
                    .await
            }
        };
        lap(&mut times);
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        lap(&mut times);
        let http = dingdang::platform::http_client();
        lap(&mut times);
        let table = config.table_name.clone();
        let store = DynamoStore::new(client.clone(), table.clone());
        let app = ShipNotifyApp::new(config, store, http);
        lap(&mut times);
        times.push(start.elapsed());
        for _ in 0..2 {
            let before = Instant::now();
            client
                .get_item()
                .table_name(&table)
                .key("pk", AttributeValue::S("ORDER#none".into()))
                .send()
                .await
                .context("GetItem")?;
            times.push(before.elapsed());
        }
        drop(app);
        anyhow::Ok(times)
    })?;
    let line: Vec<String> = steps.iter().map(|d| d.as_nanos().to_string()).collect();
    println!("{MARK} {}", line.join(" "));
    Ok(())
}
