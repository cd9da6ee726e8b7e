//! The reconcile sweep against a backlog: `--abandoned` unpaid orders the
//! platform does not report paid, registered before `--lost` orders paid
//! at the platform and never notified, and `--refunds` refunds the platform
//! finished without a notification. Sweeps run one after another, each a
//! minute after the last (the sweep's clock is shifted, nothing sleeps),
//! until every lost payment and every refund is found or `--sweeps` ran.
//!
//! Prints, per sweep: items checked, wall time, items per second, platform
//! calls, DynamoDB requests (counted by a proxy in front of the local
//! server) per item, and what was found.
//!
//! ```sh
//! cargo run --release -p bench --bin reconcile-scale -- --abandoned 10000 --lost 50 --refunds 20
//! ```
//!
//! Uses the DynamoDB-compatible server of `AWS_ENDPOINT_URL_DYNAMODB`, or
//! starts moto.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Result};
use clap::Parser;
use dingdang::domain::due::SweepClock;
use dingdang::domain::{Order, OrderStatus, OrderStore};
use dingdang::jobs::ReconcileApp;
use dingdang::protocol::{Fen, TradeNo};
use dingdang::store::DynamoStore;
use dingdang_tests::proxy::Proxy;
use dingdang_tests::{id, Settings, SKILL};
use futures::stream::{self, StreamExt};
use serde_json::json;
use simulator::{RefundOutcome, SimConfig, Simulator};

#[derive(Parser)]
struct Args {
    /// Unpaid orders the platform does not report paid.
    #[arg(long, default_value_t = 10_000)]
    abandoned: usize,
    /// Orders paid at the platform whose notification was lost.
    #[arg(long, default_value_t = 50)]
    lost: usize,
    /// Refunds finished at the platform without a notification.
    #[arg(long, default_value_t = 20)]
    refunds: usize,
    /// Sweeps at most.
    #[arg(long, default_value_t = 5)]
    sweeps: usize,
    /// Each sweep's budget, in seconds (the function's 120 s less margin).
    #[arg(long, default_value_t = 110)]
    budget_secs: u64,
    /// RECONCILE_PAGE_SIZE.
    #[arg(long, default_value_t = 50)]
    page_size: usize,
    /// RECONCILE_CONCURRENCY.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// RECONCILE_MAX_CALLS_PER_SEC (0: no bound).
    #[arg(long, default_value_t = 0.0)]
    calls_per_sec: f64,
    /// DUE_INDEX_SHARDS.
    #[arg(long, default_value_t = 16)]
    shards: u16,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // The functions' metric lines would bury the table.
    dingdang::observability::metrics::set_sink(|_| {});
    let settings = Settings::hmac()
        .with("RECONCILE_PAGE_SIZE", args.page_size.to_string())
        .with("RECONCILE_CONCURRENCY", args.concurrency.to_string())
        .with(
            "RECONCILE_MAX_CALLS_PER_SEC",
            args.calls_per_sec.to_string(),
        )
        .with("DUE_INDEX_SHARDS", args.shards.to_string());
    let proxy = Proxy::start(dingdang_tests::moto::dynamo_endpoint()).await;

    // The app and the platform, as the tests' stack, with the app's
    // handlers behind the counting proxy.
    let addr: SocketAddr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let app = dingdang_tests::spawn_app_via(
        settings
            .clone()
            .with("DINGDANG_API_BASE", format!("http://{addr}/paycgi")),
        Some(&proxy.url()),
    )
    .await;
    let mut config = SimConfig::new(SKILL, simulator::hmac_keys(dingdang_tests::SECRET));
    config.refund_delay = Duration::from_secs(86_400);
    config.ship_notify_url = Some(format!("{}/ship-notify", app.base));
    config.refund_notify_url = None;
    let sim = Simulator::bind(config, addr).await?;
    let table = app.store.table().to_owned();

    eprintln!("seeding {} abandoned orders ...", args.abandoned);
    let seeded = Instant::now();
    let created = now() - 3600;
    let store = app.store.clone().with_shards(args.shards);
    let run = id("S");
    stream::iter(0..args.abandoned)
        .map(|i| {
            let store = store.clone();
            let trade_no = format!("{run}A{i:06}");
            async move {
                let order = Order {
                    trade_no: TradeNo::parse(&trade_no).expect("valid"),
                    total_amt: Fen::new(100).expect("positive"),
                    user_token: None,
                    status: OrderStatus::Created,
                    transaction_id: None,
                    created_at: created,
                    paid_at: None,
                    refunded_amt: 0,
                    next_check_at: Some(created + i64::try_from(i / 100).unwrap_or(0)),
                    checks: 0,
                    grant: None,
                    refunds_succeeded_amt: 0,
                };
                store.insert_order(&order).await
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    eprintln!("  {:.1} s", seeded.elapsed().as_secs_f64());

    let mut lost = HashMap::new();
    for i in 0..args.lost {
        let trade_no = format!("{run}L{i:04}");
        app.create_order(&trade_no, 700).await;
        lost.insert(trade_no.clone(), sim.pay_silently(&trade_no, 700).await);
    }
    let mut refunds = Vec::new();
    for i in 0..args.refunds {
        let trade_no = format!("{run}P{i:04}");
        app.create_order(&trade_no, 500).await;
        sim.pay(&trade_no, 500).await;
        let no = format!("{run}R{i:04}");
        let (status, refund) = app
            .post_json(
                "/refunds",
                json!({"tradeNo": trade_no, "refundTradeNo": no, "refundAmt": 500}),
            )
            .await;
        if status != 201 {
            bail!("refund {no}: {status} {refund}");
        }
        sim.settle_refund(&no, RefundOutcome::Success, false)
            .map_err(anyhow::Error::msg)?;
        refunds.push(no);
    }

    let sweeper_store = DynamoStore::new(
        dingdang_tests::moto::dynamo_client_at(&proxy.url()).await,
        table.clone(),
    );
    let sweep = ReconcileApp::new(
        settings
            .clone()
            .with("DINGDANG_API_BASE", sim.api_base())
            .config(&table),
        sweeper_store,
        {
            let env = settings.env.clone();
            move |name| env.get(name).cloned()
        },
    )?;

    println!(
        "backlog: {} abandoned, {} lost payments, {} finished refunds; shards {}, page {}, concurrency {}, calls/s {}",
        args.abandoned,
        args.lost,
        args.refunds,
        args.shards,
        args.page_size,
        args.concurrency,
        if args.calls_per_sec > 0.0 { args.calls_per_sec.to_string() } else { "unbounded".to_owned() }
    );
    println!("| sweep | checked | found paid | refunds resolved | left | wall s | items/s | platform calls | DynamoDB requests/item |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let (mut found, mut resolved, mut calls_for_found) = (0, 0, 0);
    let platform_calls =
        |sim: &Simulator| sim.calls("orderquery") + sim.calls("refundquery") + sim.calls("refund");
    for n in 0..args.sweeps {
        let calls_before = platform_calls(&sim);
        proxy.reset();
        let clock = SweepClock::until(
            SystemTime::now() + Duration::from_secs(args.budget_secs),
            Duration::ZERO,
        )
        .shifted(i64::try_from(n).unwrap_or(0) * 61);
        let started = Instant::now();
        let summary = sweep.run_with(clock).await?;
        let wall = started.elapsed().as_secs_f64();
        let checked = summary.orders_checked + summary.refunds_checked;
        let calls = platform_calls(&sim) - calls_before;
        found += summary.orders_fulfilled;
        resolved += summary.refunds_resolved;
        if found < args.lost || n == 0 {
            calls_for_found += calls;
        }
        println!(
            "| {} | {checked} | {} | {} | {} | {wall:.1} | {:.0} | {calls} | {:.2} |",
            n + 1,
            summary.orders_fulfilled,
            summary.refunds_resolved,
            summary.left,
            checked as f64 / wall.max(1e-9),
            proxy.requests() as f64 / (checked.max(1) as f64),
        );
        if found >= args.lost && resolved >= args.refunds {
            break;
        }
    }
    println!(
        "found {found}/{} lost payments and {resolved}/{} refunds; {:.0} platform calls per found payment",
        args.lost,
        args.refunds,
        calls_for_found as f64 / (found.max(1) as f64)
    );
    if found < args.lost || resolved < args.refunds {
        bail!("not everything was found");
    }
    Ok(())
}
