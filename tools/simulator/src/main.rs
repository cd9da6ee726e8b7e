//! `dingdang-sim`: a local Dingdang platform for trying the partner stack by
//! hand. Point the functions' `DINGDANG_API_BASE` at the URL it prints, pay
//! an order with `POST /admin/pay {"tradeNo":..,"totalAmt":..}` and watch
//! the ship notification arrive; refunds go through `/paycgi/refund`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use simulator::{RefundOutcome, SimConfig, Simulator};

/// A local Dingdang platform (paycgi + notifications).
///
/// Keys come from the same environment variables as the functions, seen from
/// the platform's side: DINGDANG_SKILL_ID, DINGDANG_SIGN_ALG
/// (TSK-HMAC-SHA256-BASIC by default, or TSK-RSA2), DINGDANG_SKILL_SECRET
/// (HMAC), or DINGDANG_PLATFORM_PRIVATE_KEY (to sign) and
/// DINGDANG_SKILL_PUBLIC_KEY (to verify) for TSK-RSA2;
/// DINGDANG_CLOCK_SKEW_SECS (default 180).
#[derive(Debug, Parser)]
#[command(name = "dingdang-sim", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve /paycgi/{orderquery,refund,refundquery} and
    /// /admin/{pay,pay-silently} until interrupted.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9100")]
        addr: SocketAddr,
        /// How long a refund stays PROCESSING, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        refund_delay_ms: u64,
        /// The final state of refunds: success or fail.
        #[arg(long, default_value = "success")]
        refund_outcome: RefundOutcome,
        /// Where to POST ship notifications (the ship-notify function).
        #[arg(long)]
        ship_notify_url: Option<String>,
        /// Where to POST refund result notifications.
        #[arg(long)]
        refund_notify_url: Option<String>,
        /// Send replies without an Authorization header.
        #[arg(long)]
        unsigned_replies: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dingdang-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            addr,
            refund_delay_ms,
            refund_outcome,
            ship_notify_url,
            refund_notify_url,
            unsigned_replies,
        } => {
            let mut config = SimConfig::from_lookup(|name| std::env::var(name).ok())
                .map_err(anyhow::Error::msg)?;
            config.refund_delay = Duration::from_millis(refund_delay_ms);
            config.refund_outcome = refund_outcome;
            config.ship_notify_url = ship_notify_url;
            config.refund_notify_url = refund_notify_url;
            config.sign_replies = !unsigned_replies;
            let algorithm = config.keys.signer.algorithm();
            let sim = Simulator::bind(config, addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            sim.set_request_log(true);
            eprintln!(
                "dingdang-sim: {algorithm} platform listening on http://{}",
                sim.addr()
            );
            eprintln!("dingdang-sim: DINGDANG_API_BASE={}", sim.api_base());
            eprintln!(
                "dingdang-sim: pay with: curl -sX POST http://{}/admin/pay -d '{{\"tradeNo\":\"ORD1\",\"totalAmt\":990}}'",
                sim.addr()
            );
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            eprintln!("dingdang-sim: stopping");
            Ok(())
        }
    }
}
