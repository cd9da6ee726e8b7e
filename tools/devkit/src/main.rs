//! `dingdang-dev`: development commands.
//!
//! AWS settings come from the standard environment: `AWS_ENDPOINT_URL_DYNAMODB`
//! (e.g. the local moto server), `AWS_REGION` (default `us-east-1`), and
//! credentials (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, any value
//! locally).

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

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::CreateTable(args) => create_table(args).await,
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
