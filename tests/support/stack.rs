//! The app together with a simulated platform: the partner API calls the
//! simulator's `paycgi`, the simulator notifies the app.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use dingdang::signing::KeyRing;
use simulator::{SimConfig, Simulator};

use crate::{spawn_app, App, Settings, SKILL};

pub struct Stack {
    pub app: App,
    pub sim: Simulator,
}

/// Spawns the app (pointed at the simulator) and the simulator (pointed at
/// the app's notification endpoints, refunds final after 200 ms).
/// `platform` is the platform's side of the keys.
pub async fn spawn_stack(
    settings: Settings,
    platform: KeyRing,
    tune: impl FnOnce(&mut SimConfig),
) -> Stack {
    let addr: SocketAddr = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let app = spawn_app(settings.with("DINGDANG_API_BASE", format!("http://{addr}/paycgi"))).await;
    let mut config = SimConfig::new(SKILL, platform);
    config.refund_delay = Duration::from_millis(200);
    config.ship_notify_url = Some(format!("{}/ship-notify", app.base));
    config.refund_notify_url = Some(format!("{}/refund-notify", app.base));
    config.fulfillment_secret = Some(crate::WEBHOOK_SECRET.to_owned());
    tune(&mut config);
    let sim = Simulator::bind(config, addr)
        .await
        .expect("bind the simulator");
    Stack { app, sim }
}

/// A stack of the later revision (TSK-RSA2, signed replies, `skillId`).
pub async fn rsa_stack(settings: Settings, tune: impl FnOnce(&mut SimConfig)) -> Stack {
    let platform = crate::platform_keys(&settings);
    let stack = spawn_stack(settings, platform, tune).await;
    stack
        .sim
        .set_notify_revision(dingdang::protocol::Revision::R2019);
    stack
}

/// A reconcile sweep over the stack's table, with `settings` (the app's;
/// its `RECONCILE_*` entries too).
pub fn reconciler(stack: &Stack, settings: &Settings) -> dingdang::jobs::ReconcileApp {
    let settings = settings
        .clone()
        .with("DINGDANG_API_BASE", stack.sim.api_base());
    let config = settings.config(stack.app.store.table());
    let env = settings.env.clone();
    dingdang::jobs::ReconcileApp::new(config, stack.app.store.clone(), move |name| {
        env.get(name).cloned()
    })
    .expect("reconcile settings")
}

/// A stack with the development HMAC configuration.
pub async fn hmac_stack(settings: Settings, tune: impl FnOnce(&mut SimConfig)) -> Stack {
    spawn_stack(settings, simulator::hmac_keys(crate::SECRET), tune).await
}

impl Stack {
    /// Registers an order and pays it at the platform, which notifies the
    /// app; returns the transactionId.
    pub async fn paid_order(&self, trade_no: &str, total_amt: i64) -> String {
        self.app.create_order(trade_no, total_amt).await;
        let txn = self.sim.pay(trade_no, total_amt).await;
        let (status, body) = self
            .sim
            .last_ship_reply()
            .expect("notified")
            .expect("ship-notify answered");
        assert_eq!(
            (status, body["retCode"].as_str()),
            (200, Some("SUCCESS")),
            "{body}"
        );
        txn
    }

    /// Waits (bounded) until the refund's status is `status` in our API.
    pub async fn wait_refund(&self, refund_trade_no: &str, status: &str) -> serde_json::Value {
        for _ in 0..100 {
            let (code, refund) = self.app.get(&format!("/refunds/{refund_trade_no}")).await;
            assert_eq!(code, 200, "{refund}");
            if refund["status"] == status {
                return refund;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("refund {refund_trade_no} never became {status}");
    }
}
