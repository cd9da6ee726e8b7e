//! `sdk-floor`: the CPU floor of ship-notify's DynamoDB call. The same
//! claim the function makes (one `TransactWriteItems` of the order update,
//! the idempotency record, the nonce and the payment, built by the store)
//! in a plain loop on a current-thread Tokio runtime, with the client built
//! as the function builds it (`DynamoStore::from_env`): no Lambda runtime,
//! no HTTP event, no signature, no logging.
//!
//! Run by `lambda-bench` with the function's environment (`TABLE_NAME`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, region, credentials). It registers its own
//! orders, makes one warm-up claim, then claims N new payments (first
//! deliveries) and M times an already claimed one (duplicates), and prints
//! one line per phase: `phase <name> <events> <cpu ns> <wall ns>`.

#[allow(dead_code)]
#[path = "../cpu.rs"]
mod cpu;

use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use dingdang::domain::orders::{register, NewOrder, Registered};
use dingdang::domain::ship::{body_hash, ClaimResult, Fingerprint, ShipClaim, ShipStore};
use dingdang::protocol::{self, Fen, Reply, ShipNotify, TradeNo};
use dingdang::store::DynamoStore;
use time::OffsetDateTime;

#[derive(Parser, Debug)]
struct Args {
    /// New payments claimed (after one warm-up claim).
    #[arg(long, default_value_t = 1000)]
    events: usize,
    /// Claims of an already claimed payment.
    #[arg(long, default_value_t = 1000)]
    duplicates: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let table = std::env::var("TABLE_NAME").context("TABLE_NAME")?;
    let store = DynamoStore::from_env(table).await;
    let run = format!("{:08x}", std::process::id());
    let now = OffsetDateTime::now_utc();
    let mut bodies = Vec::with_capacity(args.events + 1);
    for i in 0..=args.events {
        let trade_no = format!("FLOOR{run}{i:08}");
        let total_amt = 100 + (i as i64 % 9900);
        let registered = register(
            &store,
            NewOrder {
                trade_no: Some(TradeNo::parse(&trade_no)?),
                total_amt: Fen::new(total_amt)?,
                user_token: None,
            },
            now,
            std::time::Duration::from_secs(600),
        )
        .await?;
        if !matches!(registered, Registered::Created(_)) {
            bail!("order {trade_no} was not created: {registered:?}");
        }
        bodies.push(dingdang_tests::ship_body(
            &format!("FTXN{run}{i:08}"),
            &trade_no,
            total_amt,
            &format!("FN{run}{i:08}"),
        ));
    }
    let notices = bodies
        .iter()
        .map(|body| protocol::parse::<ShipNotify>(body))
        .collect::<Result<Vec<_>, _>>()?;

    let claim = |i: usize| {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        ShipClaim {
            notice: &notices[i],
            fingerprint: Fingerprint::of(&notices[i]),
            body_hash: body_hash(&bodies[i]),
            now,
            reply: Reply::success(),
            grant_due: now + 60,
            accept_unknown_orders: false,
            record_expires: now + 86_400,
            nonce_expires: now + 600,
            check_user_token: notices[i].user_token.is_some(),
            accept_expired: false,
        }
    };
    // Warm-up: the connection and the identity cache, as the function's
    // cold invocation (reported apart from the phases).
    match store.claim(&claim(0)).await? {
        ClaimResult::Claimed => {}
        other => bail!("warm-up claim: {other:?}"),
    }

    let (cpu, wall) = (cpu::own(), Instant::now());
    for i in 1..=args.events {
        match store.claim(&claim(i)).await? {
            ClaimResult::Claimed => {}
            other => bail!("claim {i}: {other:?}"),
        }
    }
    println!(
        "phase first {} {} {}",
        args.events,
        (cpu::own() - cpu).as_nanos(),
        wall.elapsed().as_nanos()
    );

    let (cpu, wall) = (cpu::own(), Instant::now());
    for i in 0..args.duplicates {
        let n = 1 + i % args.events.max(1);
        match store.claim(&claim(n.min(args.events))).await? {
            ClaimResult::Existing(_) => {}
            other => bail!("duplicate claim {i}: {other:?}"),
        }
    }
    println!(
        "phase duplicates {} {} {}",
        args.duplicates,
        (cpu::own() - cpu).as_nanos(),
        wall.elapsed().as_nanos()
    );
    Ok(())
}
