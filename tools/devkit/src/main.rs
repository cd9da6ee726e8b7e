//! `dingdang-dev`: development commands.
//!
//! AWS settings come from the standard environment: `AWS_ENDPOINT_URL_DYNAMODB`
//! (e.g. the local moto server), `AWS_REGION` (default `us-east-1`), and
//! credentials (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, any value
//! locally). The stream pump reads the stream at
//! `AWS_ENDPOINT_URL_DYNAMODB_STREAMS`, or at `AWS_ENDPOINT_URL_DYNAMODB`
//! when that is not set (moto serves both on one port).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, SdkConfig};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "dingdang-dev", version, about = "Dingdang development tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the payments table described in template.yaml (no-op when it exists).
    CreateTable(CreateTableArgs),
    /// Print the `Authorization` header the platform would send with BODY.
    Sign(SignArgs),
    /// Sign a ship notification as the platform, POST it, print the reply
    /// and whether the reply's own signature verifies.
    SendShip(SendShipArgs),
    /// Feed the table's stream to the entitlements function under
    /// `cargo lambda watch` (which has no streams), as Lambda would: the
    /// records the template's filter lets through, in Lambda's stream event,
    /// resent from the first record the function reports as failed.
    StreamPump(StreamPumpArgs),
}

#[derive(Debug, clap::Args)]
struct StreamPumpArgs {
    /// The table whose stream to read.
    #[arg(long, env = "TABLE_NAME")]
    table: String,
    /// The entitlements function's invoke endpoint.
    #[arg(long, default_value = devkit::stream::DEFAULT_INVOKE_URL)]
    invoke_url: String,
    /// Read the stream from its oldest record instead of from now.
    #[arg(long)]
    from_start: bool,
    /// Milliseconds between two reads of the stream.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
    /// Invocations of one batch before giving up on it (the reconcile
    /// sweep delivers what is left).
    #[arg(long, default_value_t = 10)]
    max_tries: u32,
}

/// Keys are the platform's side, from the same variables as the functions'
/// development configuration: `DINGDANG_SKILL_SECRET` for HMAC, or
/// `DINGDANG_PLATFORM_PRIVATE_KEY` and `DINGDANG_SKILL_PUBLIC_KEY` with
/// `DINGDANG_SIGN_ALG=TSK-RSA2`.
#[derive(Debug, clap::Args)]
struct SignArgs {
    /// The exact body bytes to sign.
    #[arg(long)]
    body: String,
}

#[derive(Debug, clap::Args)]
struct SendShipArgs {
    /// Where ship-notify listens.
    #[arg(long, default_value = "http://127.0.0.1:9000/lambda-url/ship-notify/")]
    url: String,
    /// Our order number.
    #[arg(long)]
    trade_no: String,
    /// The amount paid, in fen.
    #[arg(long)]
    total_amt: i64,
    /// The platform's payment serial (random when absent).
    #[arg(long)]
    transaction_id: Option<String>,
    /// Send `skillId` (2019) instead of `domainId` (2018).
    #[arg(long)]
    skill_id_field: bool,
}

fn platform_keys() -> Result<dingdang::signing::KeyRing> {
    simulator::SimConfig::from_lookup(|name| std::env::var(name).ok())
        .map(|config| config.keys)
        .map_err(anyhow::Error::msg)
}

fn sign(args: SignArgs) -> Result<()> {
    let keys = platform_keys()?;
    println!(
        "{}",
        keys.sign(args.body.as_bytes(), time::OffsetDateTime::now_utc())
    );
    Ok(())
}

async fn send_ship(args: SendShipArgs) -> Result<()> {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    let random = |n: usize| -> String {
        rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(n)
            .map(char::from)
            .collect()
    };
    let keys = platform_keys()?;
    let skill = std::env::var("DINGDANG_SKILL_ID").unwrap_or_default();
    let skill_field = if args.skill_id_field {
        "skillId"
    } else {
        "domainId"
    };
    let body = serde_json::to_vec(&serde_json::json!({
        skill_field: skill,
        "transactionId": args.transaction_id.unwrap_or_else(|| format!("T{}", random(20))),
        "tradeNo": args.trade_no,
        "totalAmt": args.total_amt,
        "nonceStr": random(32),
    }))?;
    let now = time::OffsetDateTime::now_utc();
    let authorization = keys.sign(&body, now).to_string();
    println!("> POST {}\n> {}", args.url, String::from_utf8_lossy(&body));
    let response = reqwest::Client::new()
        .post(&args.url)
        .header("content-type", "application/json")
        .header("authorization", authorization)
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let reply_auth = response
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let reply = response.bytes().await?;
    println!("< {} {}", status.as_u16(), String::from_utf8_lossy(&reply));
    match keys.verify(
        reply_auth.as_deref(),
        &reply,
        time::OffsetDateTime::now_utc(),
    ) {
        Ok(_) => println!("< reply signature: valid"),
        Err(e) => println!("< reply signature: {e}"),
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
struct CreateTableArgs {
    /// Name of the table to create.
    #[arg(long, env = "TABLE_NAME")]
    table: String,
    /// SAM/CloudFormation template holding the AWS::DynamoDB::Table resource.
    #[arg(long, default_value_os_t = devkit::template_path())]
    template: PathBuf,
}

async fn aws_config() -> SdkConfig {
    let region = RegionProviderChain::default_provider().or_else("us-east-1");
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .load()
        .await
}

async fn create_table(args: CreateTableArgs) -> Result<()> {
    let config = aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    devkit::create_table_from_template(&client, &args.template, &args.table).await?;
    println!("table {} is ready", args.table);
    Ok(())
}

async fn stream_pump(args: StreamPumpArgs) -> Result<()> {
    use devkit::stream::{streams_client, Pump, PumpSettings};
    let config = aws_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let streams = streams_client(&config, |name| std::env::var(name).ok());
    let settings = PumpSettings {
        invoke_url: args.invoke_url,
        from_start: args.from_start,
        max_tries: args.max_tries.max(1),
        ..PumpSettings::default()
    };
    let pump = Pump::start(&dynamodb, streams, &args.table, settings).await?;
    eprintln!(
        "stream-pump: reading {} ({}) every {} ms, invoking {}",
        pump.stream_arn(),
        if args.from_start {
            "from its oldest record"
        } else {
            "from now on"
        },
        args.poll_ms,
        pump.settings().invoke_url
    );
    pump.run(std::time::Duration::from_millis(args.poll_ms))
        .await
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::CreateTable(args) => create_table(args).await,
        Command::Sign(args) => sign(args),
        Command::SendShip(args) => send_ship(args).await,
        Command::StreamPump(args) => stream_pump(args).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("dingdang-dev: {err:#}");
            ExitCode::FAILURE
        }
    }
}
