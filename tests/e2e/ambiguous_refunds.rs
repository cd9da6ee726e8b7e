//! Refunds against a platform that is ambiguous, late or wrong, over HTTP
//! through the simulator's bad-platform behaviours, against moto. At every
//! step: our refunds not FAILED add up to at most the order's amount, and
//! what we hold reserved covers what the platform has paid or may still
//! pay. An ambiguous answer releases nothing and moves nothing; the
//! refund resolves once a definitive answer comes.

use std::time::Duration;

use dingdang::protocol::RefundStatus as Wire;
use dingdang_tests::{hmac_stack, id, reconciler, Settings, Stack};
use serde_json::{json, Value};
use simulator::{Behaviour, Endpoint, RefundOutcome, Rule};

async fn stack(settings: Settings) -> Stack {
    hmac_stack(settings, |sim| {
        // Only what a test asks for resolves a refund.
        sim.refund_delay = Duration::from_secs(3600);
    })
    .await
}

async fn post_refund(stack: &Stack, trade: &str, no: &str, amt: i64) -> (u16, Value) {
    stack
        .app
        .post_json(
            "/refunds",
            json!({"tradeNo": trade, "refundTradeNo": no, "refundAmt": amt}),
        )
        .await
}

/// The two money rules, on our side and against the platform's ledger.
async fn money_is_safe(stack: &Stack, trade: &str, total: i64) {
    let (_, order) = stack.app.get(&format!("/orders/{trade}")).await;
    let reserved = order["refundedAmt"].as_i64().unwrap();
    assert!(reserved <= total, "{reserved} reserved of {total}: {order}");
    let at_platform: Vec<_> = stack.sim.refunds_of(trade);
    let may_pay: i64 = at_platform
        .iter()
        .filter(|r| r.status != Wire::Fail)
        .map(|r| r.refund_amt)
        .sum();
    assert!(
        reserved >= may_pay,
        "we hold {reserved} reserved, the platform may pay {may_pay}: {at_platform:?}"
    );
    for r in &at_platform {
        if r.status != Wire::Fail {
            let (_, ours) = stack
                .app
                .get(&format!("/refunds/{}", r.refund_trade_no))
                .await;
            assert_ne!(
                ours["status"], "FAILED",
                "released while the platform holds {r:?}"
            );
        }
    }
}

async fn status_of(stack: &Stack, no: &str) -> Value {
    let (code, refund) = stack.app.get(&format!("/refunds/{no}")).await;
    assert_eq!(code, 200, "{refund}");
    refund
}

#[tokio::test]
async fn a_timed_out_refund_refused_on_resubmission_stays_reserved_until_the_platform_pays() {
    let stack = stack(Settings::hmac().with("DINGDANG_API_TIMEOUT_MS", "400")).await;
    let trade = id("ORD");
    stack.paid_order(&trade, 1000).await;
    let no = id("RF");
    // The first call is recorded, its reply comes after our timeout.
    stack
        .sim
        .set_behaviour(
            Rule::refund(&no, Behaviour::LateReply(Duration::from_millis(1500)))
                .at(Endpoint::Refund)
                .times(1),
        )
        .unwrap();
    let (status, refund) = post_refund(&stack, &trade, &no, 600).await;
    assert_eq!(
        (status, refund["status"].as_str()),
        (202, Some("PENDING")),
        "{refund}"
    );
    money_is_safe(&stack, &trade, 1000).await;

    // refundquery busy, the resubmission refused as a duplicate: nothing
    // moves, the amount stays reserved.
    stack
        .sim
        .set_behaviour(
            Rule::refund(&no, Behaviour::Busy)
                .at(Endpoint::RefundQuery)
                .times(1),
        )
        .unwrap();
    stack
        .sim
        .set_behaviour(
            Rule::refund(&no, Behaviour::FailDuplicate)
                .at(Endpoint::Refund)
                .times(1),
        )
        .unwrap();
    let (status, synced) = stack.app.get(&format!("/refunds/{no}?sync=true")).await;
    assert_eq!(
        (status, synced["status"].as_str()),
        (200, Some("PENDING")),
        "{synced}"
    );
    assert_eq!(synced["submissions"], 2);
    assert_eq!(stack.sim.calls("refund"), 2);
    money_is_safe(&stack, &trade, 1000).await;
    // So the order cannot be refunded beyond what was paid.
    let (status, _) = post_refund(&stack, &trade, &id("RF"), 500).await;
    assert_eq!(status, 422);

    // The platform pays it and says so: SUCCESS, once.
    stack
        .sim
        .settle_refund(&no, RefundOutcome::Success, false)
        .unwrap();
    let (status, reply) = stack.sim.send_refund_notify(&no, "SUCCESS").await.unwrap();
    assert_eq!((status, reply["retCode"].as_str()), (200, Some("SUCCESS")));
    assert_eq!(status_of(&stack, &no).await["status"], "SUCCESS");
    money_is_safe(&stack, &trade, 1000).await;
}

#[tokio::test]
async fn a_refund_request_and_a_sync_overlapping_never_release_the_amount() {
    let stack = stack(Settings::hmac().with("DINGDANG_API_TIMEOUT_MS", "3000")).await;
    let trade = id("ORD");
    stack.paid_order(&trade, 1000).await;
    let no = id("RF");
    // The first submission is recorded, its reply takes 1 s (within our
    // timeout); meanwhile a sync finds refundquery busy, resubmits, and
    // the resubmission is refused as a duplicate.
    stack
        .sim
        .set_behaviour(
            Rule::refund(&no, Behaviour::LateReply(Duration::from_millis(1000)))
                .at(Endpoint::Refund)
                .times(1),
        )
        .unwrap();
    stack
        .sim
        .set_behaviour(
            Rule::refund(&no, Behaviour::Busy)
                .at(Endpoint::RefundQuery)
                .times(1),
        )
        .unwrap();
    stack
        .sim
        .set_behaviour(
            Rule::refund(&no, Behaviour::FailDuplicate)
                .at(Endpoint::Refund)
                .times(1),
        )
        .unwrap();
    let post = post_refund(&stack, &trade, &no, 1000);
    let sync = async {
        // The request has recorded the refund; the sync overlaps its call.
        for _ in 0..100 {
            if stack.sim.refund_calls() >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stack.app.get(&format!("/refunds/{no}?sync=true")).await
    };
    let ((post_status, posted), (sync_status, synced)) = tokio::join!(post, sync);
    assert!(matches!(post_status, 201 | 202), "{posted}");
    assert_eq!(sync_status, 200, "{synced}");
    assert_ne!(posted["status"], "FAILED", "{posted}");
    assert_ne!(synced["status"], "FAILED", "{synced}");
    money_is_safe(&stack, &trade, 1000).await;

    // The definitive answer: refundquery says SUCCESS once the platform pays.
    stack
        .sim
        .settle_refund(&no, RefundOutcome::Success, false)
        .unwrap();
    let (_, synced) = stack.app.get(&format!("/refunds/{no}?sync=true")).await;
    assert_eq!(synced["status"], "SUCCESS", "{synced}");
    money_is_safe(&stack, &trade, 1000).await;
}

#[tokio::test]
async fn a_success_reply_missing_its_refund_serial_is_not_a_refusal() {
    let stack = stack(Settings::hmac().with("DINGDANG_API_TIMEOUT_MS", "400")).await;
    let trade = id("ORD");
    stack.paid_order(&trade, 1000).await;
    let no = id("RF");
    stack
        .sim
        .set_behaviour(
            Rule::refund(
                &no,
                Behaviour::MissingField(Some("refundTransactionId".into())),
            )
            .at(Endpoint::Refund)
            .times(1),
        )
        .unwrap();
    let (status, refund) = post_refund(&stack, &trade, &no, 1000).await;
    assert_eq!(
        (status, refund["status"].as_str()),
        (202, Some("PENDING")),
        "{refund}"
    );
    money_is_safe(&stack, &trade, 1000).await;

    // A refundquery reply without refundStatus: a bad reply, nothing moves.
    stack
        .sim
        .set_behaviour(
            Rule::refund(&no, Behaviour::MissingField(Some("refundStatus".into())))
                .at(Endpoint::RefundQuery)
                .times(1),
        )
        .unwrap();
    let (status, error) = stack.app.get(&format!("/refunds/{no}?sync=true")).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (502, Some("upstream")),
        "{error}"
    );
    assert_eq!(status_of(&stack, &no).await["status"], "PENDING");
    assert_eq!(stack.sim.calls("refund"), 1);

    // A whole answer settles it.
    let (_, synced) = stack.app.get(&format!("/refunds/{no}?sync=true")).await;
    assert_eq!(synced["status"], "PROCESSING", "{synced}");
    assert!(synced["refundTransactionId"].is_string());
    money_is_safe(&stack, &trade, 1000).await;
}

#[tokio::test]
async fn a_transient_fail_from_refundquery_leaves_an_accepted_refund_as_it_is() {
    let stack = stack(Settings::hmac().with("DINGDANG_API_TIMEOUT_MS", "400")).await;
    let trade = id("ORD");
    stack.paid_order(&trade, 1000).await;
    let no = id("RF");
    let (status, refund) = post_refund(&stack, &trade, &no, 400).await;
    assert_eq!(
        (status, refund["status"].as_str()),
        (201, Some("PROCESSING"))
    );
    stack
        .sim
        .set_behaviour(
            Rule::refund(&no, Behaviour::Busy)
                .at(Endpoint::RefundQuery)
                .times(2),
        )
        .unwrap();
    for _ in 0..2 {
        let (status, synced) = stack.app.get(&format!("/refunds/{no}?sync=true")).await;
        assert_eq!(
            (status, synced["status"].as_str()),
            (200, Some("PROCESSING"))
        );
        money_is_safe(&stack, &trade, 1000).await;
    }
    // Never resubmitted: the platform holds it.
    assert_eq!(stack.sim.calls("refund"), 1);
}

#[tokio::test]
async fn a_refund_accepted_then_failed_is_released_once_the_platform_says_fail() {
    let stack = hmac_stack(Settings::hmac(), |sim| {
        sim.refund_delay = Duration::from_secs(3600);
    })
    .await;
    let trade = id("ORD");
    stack.paid_order(&trade, 1000).await;
    let no = id("RF");
    stack
        .sim
        .set_behaviour(
            Rule::refund(
                &no,
                Behaviour::AcceptThenFail(Some(Duration::from_millis(200))),
            )
            .at(Endpoint::Refund)
            .times(1),
        )
        .unwrap();
    let (status, refund) = post_refund(&stack, &trade, &no, 1000).await;
    assert_eq!(
        (status, refund["status"].as_str()),
        (201, Some("PROCESSING"))
    );
    money_is_safe(&stack, &trade, 1000).await;
    // The platform fails it and notifies: FAILED, released.
    stack.wait_refund(&no, "FAILED").await;
    money_is_safe(&stack, &trade, 1000).await;
    let (status, again) = post_refund(&stack, &trade, &id("RF"), 1000).await;
    assert_eq!(status, 201, "{again}");
    money_is_safe(&stack, &trade, 1000).await;
}

#[tokio::test]
async fn a_refund_left_ambiguous_is_escalated_and_settled_by_an_operator() {
    let settings = Settings::hmac()
        .with("REFUND_ATTENTION_SECS", "1")
        .with("DINGDANG_API_TIMEOUT_MS", "400");
    let stack = stack(settings.clone()).await;
    let trade = id("ORD");
    stack.paid_order(&trade, 1000).await;
    let no = id("RF");
    // Lost for good: no answer, and the platform keeps not knowing it.
    stack
        .sim
        .set_behaviour(
            Rule::refund(&no, Behaviour::LateReply(Duration::from_millis(1500)))
                .at(Endpoint::Refund),
        )
        .unwrap();
    stack
        .sim
        .set_behaviour(Rule::refund(&no, Behaviour::Busy).at(Endpoint::RefundQuery))
        .unwrap();
    let (status, refund) = post_refund(&stack, &trade, &no, 300).await;
    assert_eq!(
        (status, refund["needsAttention"].as_bool()),
        (202, Some(false)),
        "{refund}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let summary = reconciler(&stack, &settings).run().await.unwrap();
    assert_eq!(summary.refunds_need_attention, 1, "{summary:?}");
    assert_eq!(summary.refunds_resolved, 0, "{summary:?}");
    let refund = status_of(&stack, &no).await;
    assert_eq!(
        (
            refund["status"].as_str(),
            refund["needsAttention"].as_bool()
        ),
        (Some("PENDING"), Some(true)),
        "{refund}"
    );
    money_is_safe(&stack, &trade, 1000).await;

    // The operator checked with the platform: it was paid.
    let (status, settled) = stack
        .app
        .post_json(
            &format!("/refunds/{no}/settle"),
            json!({"status": "SUCCESS", "note": "confirmed by platform support"}),
        )
        .await;
    assert_eq!(
        (status, settled["status"].as_str()),
        (200, Some("SUCCESS")),
        "{settled}"
    );
    assert_eq!(settled["needsAttention"], false);
    // A final state is not turned around.
    let (status, conflict) = stack
        .app
        .post_json(&format!("/refunds/{no}/settle"), json!({"status": "FAIL"}))
        .await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(status_of(&stack, &no).await["status"], "SUCCESS");
    let (_, order) = stack.app.get(&format!("/orders/{trade}")).await;
    assert_eq!(order["refundedAmt"], 300);
}
