//! A model-based property test of the refund ledger.
//!
//! Random interleavings of refund requests, resubmissions (through syncs),
//! syncs, sweeps and refund notifications (duplicated, late, out of order)
//! run against a model of the platform's ledger that answers definitively,
//! ambiguously (a transient `FAIL`, a `FAIL` to a repeated
//! `refundTradeNo`), late (recorded, then no answer), or malformed. Calls
//! overlap: each step runs up to three operations concurrently, and every
//! platform call yields a generated number of times before it acts, so the
//! scheduler interleaves them differently from case to case.
//!
//! After every step:
//! - our refunds not FAILED add up to the order's `refundedAmt`, and to at
//!   most its `totalAmt`;
//! - what we hold reserved is at least what the platform has paid or may
//!   still pay (its refunds PROCESSING or SUCCESS);
//! - no refund is FAILED on our side while the platform holds it
//!   PROCESSING or SUCCESS, and none is SUCCESS that the platform did not
//!   pay;
//! - no status moves backwards, and a final status never changes.
//!
//! At the end the platform behaves, settles what it holds, and two sweeps
//! later every refund is final and agrees with the platform.
//!
//! The domain runs on [`MemoryStore`] (many cases: `REFUND_MODEL_CASES`,
//! 1000 by default; 10,000 take about 15 s) and on the DynamoDB store against moto
//! (`REFUND_MODEL_DYNAMO_CASES`, 16 by default).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dingdang::domain::platform::{Platform, PlatformError};
use dingdang::domain::refunds::{
    new_nonce, on_notification, Ledger as Applying, NewRefund, NonceClaim, Refund, RefundService,
    RefundSettings, RefundStatus, RefundStore,
};
use dingdang::domain::{Order, OrderStatus, OrderStore};
use dingdang::protocol::{
    AcceptedRefund, Fen, OrderQueryReply, OrderQueryRequest, OrderRef, QueriedRefund, RefundNotify,
    RefundQueryReply, RefundQueryRequest, RefundReply, RefundRequest, RefundStatus as Wire,
    RefundTradeNo, RefundTransactionId, Revision, SkillId, TradeNo, TransactionId,
};
use dingdang::store::DynamoStore;
use dingdang_tests::memory::MemoryStore;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};

const TOTAL: i64 = 1000;
const REFUNDS: usize = 3;

/// How the platform answers one `paycgi/refund` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefundBehaviour {
    Normal,
    /// `FAIL` when the refundTradeNo is already recorded.
    FailRepeated,
    /// `FAIL` "system busy", nothing recorded.
    Busy,
    /// Recorded, then no answer (a reply after our timeout).
    RecordedNoAnswer,
    /// No answer, nothing recorded.
    LostNoAnswer,
    /// Recorded, `SUCCESS` without `refundTransactionId`.
    Malformed,
}

/// How the platform answers one `refundquery` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryBehaviour {
    Normal,
    Busy,
    NoAnswer,
    /// `SUCCESS` without `refundStatus`.
    Malformed,
}

#[derive(Debug, Clone)]
enum Op {
    /// `POST /refunds` of refund `k` for `amt` fen.
    Request { k: usize, amt: i64 },
    /// `GET /refunds/{k}?sync=true`.
    Sync { k: usize },
    /// The reconcile sweep over every refund we hold.
    Sweep,
    /// The platform moves refund `k` from PROCESSING to its final state.
    PlatformSettles { k: usize, success: bool },
    /// A notification of refund `k`'s `age`-th latest state (0: current),
    /// `again` re-sending an earlier delivery byte for byte.
    Notify { k: usize, age: usize, again: bool },
}

#[derive(Debug, Clone)]
struct Script {
    steps: Vec<Vec<Op>>,
    refund_calls: Vec<RefundBehaviour>,
    query_calls: Vec<QueryBehaviour>,
    yields: Vec<u8>,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..REFUNDS, prop_oneof![Just(300i64), Just(400), Just(600), Just(1000)])
            .prop_map(|(k, amt)| Op::Request { k, amt }),
        3 => (0..REFUNDS).prop_map(|k| Op::Sync { k }),
        1 => Just(Op::Sweep),
        2 => (0..REFUNDS, any::<bool>()).prop_map(|(k, success)| Op::PlatformSettles { k, success }),
        2 => (0..REFUNDS, 0..3usize, any::<bool>()).prop_map(|(k, age, again)| Op::Notify { k, age, again }),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    let refund_behaviour = prop_oneof![
        3 => Just(RefundBehaviour::Normal),
        2 => Just(RefundBehaviour::FailRepeated),
        1 => Just(RefundBehaviour::Busy),
        2 => Just(RefundBehaviour::RecordedNoAnswer),
        1 => Just(RefundBehaviour::LostNoAnswer),
        1 => Just(RefundBehaviour::Malformed),
    ];
    let query_behaviour = prop_oneof![
        3 => Just(QueryBehaviour::Normal),
        2 => Just(QueryBehaviour::Busy),
        1 => Just(QueryBehaviour::NoAnswer),
        1 => Just(QueryBehaviour::Malformed),
    ];
    (
        prop::collection::vec(prop::collection::vec(op(), 1..=3), 1..14),
        prop::collection::vec(refund_behaviour, 0..16),
        prop::collection::vec(query_behaviour, 0..16),
        prop::collection::vec(0u8..4, 0..24),
    )
        .prop_map(|(steps, refund_calls, query_calls, yields)| Script {
            steps,
            refund_calls,
            query_calls,
            yields,
        })
}

/// The platform's record of one refund.
#[derive(Debug, Clone)]
struct PlatformRefund {
    id: RefundTransactionId,
    amt: Fen,
    status: Wire,
    /// Every state it was in, oldest first, for late notifications.
    history: Vec<Wire>,
    /// Notifications already delivered, to deliver again byte for byte.
    sent: Vec<(RefundNotify, Vec<u8>)>,
}

#[derive(Debug, Default)]
struct Ledger {
    refunds: HashMap<String, PlatformRefund>,
    refund_calls: VecDeque<RefundBehaviour>,
    query_calls: VecDeque<QueryBehaviour>,
    yields: VecDeque<u8>,
    next_id: u32,
}

impl Ledger {
    fn may_pay(&self) -> i64 {
        self.refunds
            .values()
            .filter(|r| r.status != Wire::Fail)
            .map(|r| r.amt.get())
            .sum()
    }
}

/// The model of the platform, shared by the service and the test.
#[derive(Clone)]
struct ModelPlatform {
    ledger: Arc<Mutex<Ledger>>,
    ids: Ids,
}

#[derive(Clone)]
struct Ids {
    skill: SkillId,
    trade_no: TradeNo,
    transaction_id: TransactionId,
    refund_nos: Vec<RefundTradeNo>,
}

impl ModelPlatform {
    async fn pause(&self) {
        let n = self.ledger.lock().unwrap().yields.pop_front().unwrap_or(0);
        for _ in 0..n {
            tokio::task::yield_now().await;
        }
    }

    fn accepted(&self, no: &RefundTradeNo, r: &PlatformRefund) -> AcceptedRefund {
        AcceptedRefund {
            skill_id: self.ids.skill.clone(),
            transaction_id: self.ids.transaction_id.clone(),
            trade_no: self.ids.trade_no.clone(),
            refund_transaction_id: r.id.clone(),
            refund_trade_no: no.clone(),
            total_amt: Fen::new(TOTAL).unwrap(),
            refund_amt: r.amt,
        }
    }
}

#[async_trait]
impl Platform for ModelPlatform {
    async fn order_query(&self, _: &OrderQueryRequest) -> Result<OrderQueryReply, PlatformError> {
        Ok(OrderQueryReply::fail("not modelled"))
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundReply, PlatformError> {
        let behaviour = self
            .ledger
            .lock()
            .unwrap()
            .refund_calls
            .pop_front()
            .unwrap_or(RefundBehaviour::Normal);
        self.pause().await;
        let mut ledger = self.ledger.lock().unwrap();
        let key = request.refund_trade_no.as_str().to_owned();
        let known = ledger.refunds.contains_key(&key);
        if behaviour == RefundBehaviour::Busy {
            return Ok(RefundReply::fail("system busy"));
        }
        if behaviour == RefundBehaviour::LostNoAnswer {
            return Err(PlatformError::Timeout);
        }
        if known && behaviour == RefundBehaviour::FailRepeated {
            return Ok(RefundReply::fail("duplicate refundTradeNo"));
        }
        if !known {
            if ledger.may_pay() + request.refund_amt.get() > TOTAL {
                return Ok(RefundReply::fail("refund exceeds order"));
            }
            ledger.next_id += 1;
            let id = RefundTransactionId::parse(&format!("RT{}", ledger.next_id)).unwrap();
            ledger.refunds.insert(
                key.clone(),
                PlatformRefund {
                    id,
                    amt: request.refund_amt,
                    status: Wire::Processing,
                    history: vec![Wire::Processing],
                    sent: Vec::new(),
                },
            );
        }
        let record = ledger.refunds[&key].clone();
        let mut reply = RefundReply::success(self.accepted(&request.refund_trade_no, &record));
        match behaviour {
            RefundBehaviour::RecordedNoAnswer => Err(PlatformError::Timeout),
            RefundBehaviour::Malformed => {
                reply.refund_transaction_id = None;
                Ok(reply)
            }
            _ => Ok(reply),
        }
    }

    async fn refund_query(
        &self,
        request: &RefundQueryRequest,
    ) -> Result<RefundQueryReply, PlatformError> {
        let behaviour = self
            .ledger
            .lock()
            .unwrap()
            .query_calls
            .pop_front()
            .unwrap_or(QueryBehaviour::Normal);
        self.pause().await;
        let ledger = self.ledger.lock().unwrap();
        let no = request
            .refund_trade_no
            .clone()
            .expect("queried by refundTradeNo");
        match behaviour {
            QueryBehaviour::Busy => return Ok(RefundQueryReply::fail("system busy")),
            QueryBehaviour::NoAnswer => return Err(PlatformError::Timeout),
            _ => {}
        }
        let Some(record) = ledger.refunds.get(no.as_str()) else {
            return Ok(RefundQueryReply::fail("refund not found"));
        };
        let accepted = self.accepted(&no, record);
        let mut reply = RefundQueryReply::success(QueriedRefund {
            skill_id: accepted.skill_id,
            transaction_id: accepted.transaction_id,
            trade_no: accepted.trade_no,
            refund_transaction_id: accepted.refund_transaction_id,
            refund_trade_no: accepted.refund_trade_no,
            total_amt: accepted.total_amt,
            refund_amt: accepted.refund_amt,
            refund_status: record.status,
            refund_status_desc: None,
        });
        if behaviour == QueryBehaviour::Malformed {
            reply.refund_status = None;
        }
        Ok(reply)
    }
}

/// What a store must offer the harness beyond the refund store.
#[async_trait]
trait LedgerStore: RefundStore + OrderStore + Clone + 'static {}
impl LedgerStore for MemoryStore {}
impl LedgerStore for DynamoStore {}

struct Harness<S: LedgerStore> {
    service: RefundService<S, ModelPlatform>,
    platform: ModelPlatform,
    ids: Ids,
    /// The highest rank each refund reached on our side, and its final
    /// status once it had one.
    seen: Mutex<HashMap<String, (u8, Option<RefundStatus>)>>,
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

impl<S: LedgerStore> Harness<S> {
    async fn new(store: S, prefix: &str, script: &Script) -> Self {
        let ids = Ids {
            skill: SkillId::parse(dingdang_tests::SKILL).unwrap(),
            trade_no: TradeNo::parse(&format!("{prefix}T")).unwrap(),
            transaction_id: TransactionId::parse(&format!("{prefix}X")).unwrap(),
            refund_nos: (0..REFUNDS)
                .map(|k| RefundTradeNo::parse(&format!("{prefix}R{k}")).unwrap())
                .collect(),
        };
        let order = Order {
            trade_no: ids.trade_no.clone(),
            total_amt: Fen::new(TOTAL).unwrap(),
            user_token: None,
            status: OrderStatus::Paid,
            transaction_id: Some(ids.transaction_id.clone()),
            created_at: 1,
            paid_at: Some(1),
            refunded_amt: 0,
            next_check_at: None,
            checks: 0,
            grant: None,
            refunds_succeeded_amt: 0,
        };
        store.insert_order(&order).await.unwrap();
        let ledger = Ledger {
            refund_calls: script.refund_calls.iter().copied().collect(),
            query_calls: script.query_calls.iter().copied().collect(),
            yields: script.yields.iter().copied().collect(),
            ..Ledger::default()
        };
        let platform = ModelPlatform {
            ledger: Arc::new(Mutex::new(ledger)),
            ids: ids.clone(),
        };
        let service = RefundService {
            store,
            platform: platform.clone(),
            settings: RefundSettings {
                skill_id: ids.skill.clone(),
                revision: Revision::R2018,
                attention_after: Duration::from_secs(86_400),
                first_check: Duration::ZERO,
                revoke_after: Duration::from_secs(120),
            },
        };
        Self {
            service,
            platform,
            ids,
            seen: Mutex::new(HashMap::new()),
        }
    }

    async fn run(&self, op: &Op, now: i64) {
        // Errors (a busy refund, a replayed nonce, a platform that gave no
        // usable answer) are answers too; only the invariants matter.
        match op {
            Op::Request { k, amt } => {
                let new = NewRefund {
                    order: OrderRef::TradeNo(self.ids.trade_no.clone()),
                    refund_trade_no: self.ids.refund_nos[*k].clone(),
                    refund_amt: Fen::new(*amt).unwrap(),
                    refund_desc: None,
                    refund_details: None,
                };
                let _ = self.service.request(new, now).await;
            }
            Op::Sync { k } => {
                let _ = self.service.sync(&self.ids.refund_nos[*k], now).await;
            }
            Op::Sweep => {
                for no in &self.ids.refund_nos {
                    let _ = self.service.sync(no, now).await;
                }
            }
            Op::PlatformSettles { k, success } => {
                let mut ledger = self.platform.ledger.lock().unwrap();
                if let Some(r) = ledger.refunds.get_mut(self.ids.refund_nos[*k].as_str()) {
                    if r.status == Wire::Processing {
                        r.status = if *success { Wire::Success } else { Wire::Fail };
                        r.history.push(r.status);
                    }
                }
            }
            Op::Notify { k, age, again } => {
                let notice = {
                    let mut ledger = self.platform.ledger.lock().unwrap();
                    let no = &self.ids.refund_nos[*k];
                    let Some(r) = ledger.refunds.get_mut(no.as_str()) else {
                        return;
                    };
                    if *again && !r.sent.is_empty() {
                        r.sent[r.sent.len() - 1 - (*age % r.sent.len())].clone()
                    } else {
                        let status = r.history[r.history.len() - 1 - (*age % r.history.len())];
                        let notice = RefundNotify {
                            skill_id: self.ids.skill.clone(),
                            transaction_id: self.ids.transaction_id.clone(),
                            trade_no: self.ids.trade_no.clone(),
                            refund_transaction_id: r.id.clone(),
                            refund_trade_no: no.clone(),
                            total_amt: Fen::new(TOTAL).unwrap(),
                            refund_amt: r.amt,
                            refund_status: status,
                            refund_status_desc: None,
                            nonce_str: new_nonce(),
                        };
                        let body = serde_json::to_vec(&notice).unwrap();
                        r.sent.push((notice.clone(), body.clone()));
                        (notice, body)
                    }
                };
                let (notice, body) = notice;
                let claim = NonceClaim {
                    nonce: notice.nonce_str.clone(),
                    body_hash: dingdang::domain::ship::body_hash(&body),
                    expires: now + 360,
                };
                let payload = String::from_utf8(body).unwrap();
                let ledger = Applying {
                    store: &self.service.store,
                    revoke_after: Duration::from_secs(120),
                };
                let _ = on_notification(&ledger, &notice, &payload, &claim, now).await;
            }
        }
    }

    async fn ours(&self) -> (Order, Vec<Option<Refund>>) {
        let order = self
            .service
            .store
            .get_order(&self.ids.trade_no)
            .await
            .unwrap()
            .unwrap();
        let mut refunds = Vec::new();
        for no in &self.ids.refund_nos {
            refunds.push(self.service.store.get_refund(no).await.unwrap());
        }
        (order, refunds)
    }

    async fn check(&self, when: &str) -> Result<(), TestCaseError> {
        let (order, refunds) = self.ours().await;
        let reserved: i64 = refunds
            .iter()
            .flatten()
            .filter(|r| r.status != RefundStatus::Failed)
            .map(|r| r.refund_amt.get())
            .sum();
        if reserved != order.refunded_amt {
            return Err(fail(format!(
                "{when}: refundedAmt {} but refunds not FAILED add up to {reserved}",
                order.refunded_amt
            )));
        }
        if reserved > TOTAL {
            return Err(fail(format!("{when}: {reserved} reserved of {TOTAL} paid")));
        }
        let ledger = self.platform.ledger.lock().unwrap();
        if ledger.may_pay() > reserved {
            return Err(fail(format!(
                "{when}: the platform may pay {} but we hold only {reserved} reserved",
                ledger.may_pay()
            )));
        }
        let mut seen = self.seen.lock().unwrap();
        for refund in refunds.iter().flatten() {
            let no = refund.refund_trade_no.as_str();
            let platform = ledger.refunds.get(no).map(|r| r.status);
            if refund.status == RefundStatus::Failed
                && matches!(platform, Some(Wire::Processing | Wire::Success))
            {
                return Err(fail(format!(
                    "{when}: {no} FAILED (released) while the platform holds it {platform:?}"
                )));
            }
            if refund.status == RefundStatus::Success && platform != Some(Wire::Success) {
                return Err(fail(format!(
                    "{when}: {no} SUCCESS while the platform says {platform:?}"
                )));
            }
            let entry = seen.entry(no.to_owned()).or_insert((0, None));
            if refund.status.rank() < entry.0 {
                return Err(fail(format!(
                    "{when}: {no} moved backwards to {:?}",
                    refund.status
                )));
            }
            if let Some(final_status) = entry.1 {
                if final_status != refund.status {
                    return Err(fail(format!(
                        "{when}: {no} changed its final status {final_status:?} to {:?}",
                        refund.status
                    )));
                }
            }
            entry.0 = refund.status.rank();
            if !refund.status.is_open() {
                entry.1 = Some(refund.status);
            }
        }
        Ok(())
    }

    /// The platform behaves from now on and settles what it holds; two
    /// sweeps later everything is final and agrees with it.
    async fn settle_down(&self, now: i64) -> Result<(), TestCaseError> {
        {
            let mut ledger = self.platform.ledger.lock().unwrap();
            ledger.refund_calls.clear();
            ledger.query_calls.clear();
        }
        for round in 0..3 {
            self.run(&Op::Sweep, now).await;
            for k in 0..REFUNDS {
                self.run(
                    &Op::PlatformSettles {
                        k,
                        success: round % 2 == 0,
                    },
                    now,
                )
                .await;
            }
            self.check("settling").await?;
        }
        self.run(&Op::Sweep, now).await;
        self.check("settled").await?;
        let (_, refunds) = self.ours().await;
        let ledger = self.platform.ledger.lock().unwrap();
        for refund in refunds.iter().flatten() {
            let no = refund.refund_trade_no.as_str();
            let platform = ledger.refunds.get(no).map(|r| r.status);
            let agrees = match refund.status {
                RefundStatus::Success => platform == Some(Wire::Success),
                RefundStatus::Failed => matches!(platform, None | Some(Wire::Fail)),
                RefundStatus::Pending | RefundStatus::Processing => false,
            };
            if !agrees {
                return Err(fail(format!(
                    "settled: {no} is {:?} while the platform says {platform:?}",
                    refund.status
                )));
            }
        }
        Ok(())
    }
}

async fn play<S: LedgerStore>(
    store: S,
    prefix: &str,
    script: &Script,
) -> Result<(), TestCaseError> {
    let harness = Harness::new(store, prefix, script).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (i, step) in script.steps.iter().enumerate() {
        futures::future::join_all(step.iter().map(|op| harness.run(op, now))).await;
        harness.check(&format!("after step {i} {step:?}")).await?;
    }
    harness.settle_down(now).await
}

fn cases(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

#[test]
fn the_refund_ledger_holds_its_invariants_in_memory() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = runner(cases("REFUND_MODEL_CASES", 1000));
    let seq = std::sync::atomic::AtomicU64::new(0);
    runner
        .run(&script(), |script| {
            let n = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            rt.block_on(play(MemoryStore::default(), &format!("M{n}"), &script))
        })
        .unwrap();
}

#[test]
fn the_refund_ledger_holds_its_invariants_on_dynamodb() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(async {
        let client = dingdang_tests::moto::dynamo_client().await;
        let table = dingdang_tests::new_table(&client).await;
        DynamoStore::new(client, table)
    });
    let mut runner = runner(cases("REFUND_MODEL_DYNAMO_CASES", 16));
    let seq = std::sync::atomic::AtomicU64::new(0);
    runner
        .run(&script(), |script| {
            let n = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let prefix = format!("D{n}{}", rand::random::<u16>());
            rt.block_on(play(store.clone(), &prefix, &script))
        })
        .unwrap();
}
