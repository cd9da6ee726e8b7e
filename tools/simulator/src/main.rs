//! `dingdang-sim`: a local Dingdang platform for trying the partner stack by
//! hand. Point the functions' `DINGDANG_API_BASE` at the URL it prints, pay
//! an order with `POST /admin/pay {"tradeNo":..,"totalAmt":..}` and watch
//! the ship notification arrive; refunds go through `/paycgi/refund`.
//! `dingdang-sim scenario <name>` plays the platform's bad days against a
//! running stack and exits 1 when an invariant broke (2 when the scenario
//! could not be played).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use simulator::scenario::{self, Console, Options, Reconcile, Scenario, Target};
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
    /// Serve /paycgi/{orderquery,refund,refundquery}, /admin/{pay,pay-silently}
    /// (pay an order), /admin/orders/{tradeNo}, /admin/refunds/{id},
    /// /admin/settle-refund, /admin/behaviour (the bad platform, per order
    /// and per refund: GET lists, POST sets a rule, POST
    /// /admin/behaviour/clear clears), and /fulfil with /admin/fulfilments (a
    /// counting fulfilment webhook) until interrupted.
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
    /// Play one of the platform's bad days against a running stack (the
    /// simulator serving at --sim, the functions at --api and the notify
    /// URLs) and check the invariants: no order fulfilled twice, no payment
    /// acknowledged (or found by reconcile) left unfulfilled, no order
    /// refunded more than paid, no refund the platform has paid or may pay
    /// left without its amount reserved. Exit status 1 when one broke, 2
    /// when the scenario could not be played.
    Scenario(ScenarioArgs),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ScenarioName {
    /// Each ship notification delivered --repeat times in a row and
    /// --repeat times at once.
    DuplicateShip,
    /// A ship notification before its order exists (FAIL), retried with
    /// exponential backoff while the order is registered.
    ShipRetry,
    /// Refund notifications SUCCESS then a late PROCESSING; FAIL then
    /// duplicates; then the released amount and one fen too many.
    RefundOutOfOrder,
    /// Refund replies late, busy, incomplete or FAIL to a resubmission, a
    /// refund accepted then failed: the partner's reserved amount must cover
    /// what the platform has paid or may pay, at every step.
    AmbiguousRefunds,
    /// A payment never notified: waits for the reconcile sweep to fulfil it.
    LostShip,
    /// Every scenario above, in that order.
    All,
}

#[derive(Debug, clap::Args)]
struct ScenarioArgs {
    /// Which scenario.
    #[arg(value_enum)]
    name: ScenarioName,
    /// The partner API (POST {api}/orders, /refunds).
    #[arg(long, default_value = Target::LOCAL_API)]
    api: String,
    /// The ship-notify endpoint.
    #[arg(long, default_value = Target::LOCAL_SHIP_NOTIFY)]
    ship_notify_url: String,
    /// The refund-notify endpoint.
    #[arg(long, default_value = Target::LOCAL_REFUND_NOTIFY)]
    refund_notify_url: String,
    /// The running simulator (`dingdang-sim serve`) the functions'
    /// DINGDANG_API_BASE points at.
    #[arg(long, default_value = Target::LOCAL_SIM)]
    sim: String,
    /// Orders per scenario.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    count: u32,
    /// Deliveries per phase (duplicates in a row, then as many at once).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    repeat: u32,
    /// Deadline of each scenario, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// lost-ship: a shell command that runs the reconcile sweep, e.g.
    /// "cargo lambda invoke reconcile --invoke-address 127.0.0.1 --data-ascii '{}'";
    /// without it the scenario asks you to run the sweep and waits.
    #[arg(long)]
    reconcile_cmd: Option<String>,
    /// lost-ship: how long to wait for the orders to become PAID once the
    /// sweep was asked for, in seconds.
    #[arg(long, default_value_t = 120)]
    reconcile_wait_secs: u64,
    /// Every PAID order must have reached the simulator's counting /fulfil
    /// endpoint (FULFILLMENT_URL); without this flag it is checked only when
    /// that endpoint saw any of the run's payments.
    #[arg(long)]
    require_fulfilment: bool,
    /// ambiguous-refunds: how late the simulator's late replies come, in
    /// milliseconds; more than the functions' DINGDANG_API_TIMEOUT_MS
    /// (default 5000).
    #[arg(long, default_value_t = 6000)]
    late_reply_ms: u64,
}

/// A broken invariant (exit status 1), as opposed to a scenario that could
/// not be played (2).
#[derive(Debug)]
struct Violated(usize);

impl std::fmt::Display for Violated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} invariant violation(s)", self.0)
    }
}

impl std::error::Error for Violated {}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dingdang-sim: {e:#}");
            if e.downcast_ref::<Violated>().is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

async fn scenarios(args: ScenarioArgs) -> anyhow::Result<()> {
    let target = Target::from_lookup(
        args.api,
        args.ship_notify_url,
        args.refund_notify_url,
        args.sim,
        |name| std::env::var(name).ok(),
    )
    .map_err(anyhow::Error::msg)?;
    let options = Options {
        count: args.count as usize,
        repeat: args.repeat as usize,
        timeout: Duration::from_secs(args.timeout_secs.max(1)),
        reconcile: match args.reconcile_cmd {
            Some(cmd) => Reconcile::Command(cmd),
            None => Reconcile::Manual,
        },
        reconcile_wait: Duration::from_secs(args.reconcile_wait_secs),
        require_fulfilment: args.require_fulfilment,
        late_reply: Duration::from_millis(args.late_reply_ms),
        ..Options::default()
    };
    let chosen: Vec<Scenario> = match args.name {
        ScenarioName::DuplicateShip => vec![Scenario::DuplicateShip],
        ScenarioName::ShipRetry => vec![Scenario::ShipRetry],
        ScenarioName::RefundOutOfOrder => vec![Scenario::RefundOutOfOrder],
        ScenarioName::AmbiguousRefunds => vec![Scenario::AmbiguousRefunds],
        ScenarioName::LostShip => vec![Scenario::LostShip],
        ScenarioName::All => Scenario::ALL.to_vec(),
    };
    let console = Console::stdout();
    let mut violations = 0;
    for s in chosen {
        let report = scenario::run(s, &target, &options, &console)
            .await
            .map_err(anyhow::Error::msg)?;
        violations += report.violations.len();
    }
    if violations > 0 {
        return Err(Violated(violations).into());
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Scenario(args) => scenarios(args).await,
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
                "dingdang-sim: FULFILLMENT_URL=http://{}/fulfil (counts fulfilments: GET /admin/fulfilments)",
                sim.addr()
            );
            eprintln!(
                "dingdang-sim: misbehave with: curl -sX POST http://{}/admin/behaviour -d '{{\"refundTradeNo\":\"R1\",\"behaviour\":\"fail-duplicate\"}}'",
                sim.addr()
            );
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
