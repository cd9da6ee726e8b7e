//! Every rejection path answers FAIL (with a 4xx where the request itself
//! is at fault) and writes nothing, except that a signed notification that
//! contradicts our records is kept for an operator (`UNMATCHED#SHIP#...`,
//! tests/e2e/unmatched_ship.rs) and nothing else.

use dingdang::signing::{Algorithm, Authorization, HmacSecret, KeyRing, Signer, Verifier};
use dingdang_tests::{id, ship_body, spawn_app, Answered, App, Settings};
use time::{Duration, OffsetDateTime};

/// Sends, then checks the status, the FAIL reply and that nothing changed.
async fn refused(app: &App, body: Vec<u8>, authorization: Option<String>, status: u16) -> Answered {
    let before = dingdang_tests::all_items(&app.store).await;
    let answer = app.post_ship(body, authorization).await;
    assert_eq!(
        answer.status,
        status,
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );
    let reply = answer.json();
    assert_eq!(reply["retCode"], "FAIL");
    let msg = reply["retMsg"].as_str().expect("a clear retMsg");
    assert!(!msg.is_empty() && msg.chars().count() <= 32, "{msg}");
    let after = dingdang_tests::all_items(&app.store).await;
    assert_eq!(before, after, "a refused notification wrote nothing");
    answer
}

/// Like [`refused`] (status 200) for a signed notification that contradicts
/// our records: the one write is the kept notice, with `reason`.
async fn refused_and_kept(
    app: &App,
    body: Vec<u8>,
    authorization: Option<String>,
    reason: &str,
) -> Answered {
    let before = dingdang_tests::all_items(&app.store).await;
    let answer = app.post_ship(body.clone(), authorization).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["retCode"], "FAIL");
    let mut after = dingdang_tests::all_items(&app.store).await;
    let kept: Vec<_> = after
        .iter()
        .filter(|i| !before.contains(i))
        .cloned()
        .collect();
    assert_eq!(kept.len(), 1, "only the notice is kept: {kept:?}");
    assert_eq!(
        dingdang_tests::text(&kept[0], "reason").as_deref(),
        Some(reason)
    );
    assert_eq!(
        dingdang_tests::text(&kept[0], "payload").as_deref(),
        Some(std::str::from_utf8(&body).unwrap())
    );
    after.retain(|i| !kept.contains(i));
    assert_eq!(before, after, "nothing else was written");
    answer
}

async fn ready() -> (App, String, String) {
    let app = spawn_app(Settings::hmac()).await;
    let trade = id("ORD");
    app.create_order(&trade, 990).await;
    (app, id("T"), trade)
}

fn sign_at(keys: &KeyRing, body: &[u8], at: OffsetDateTime) -> String {
    keys.sign(body, at).to_string()
}

#[tokio::test]
async fn missing_malformed_or_wrong_authorization() {
    let (app, txn, trade) = ready().await;
    let body = ship_body(&txn, &trade, 990, &id("N"));
    refused(&app, body.clone(), None, 401).await;
    for header in [
        "",
        "garbage",
        "TSK-HMAC-SHA256-BASIC",
        "TSK-HMAC-SHA256-BASIC Datetime=20180622T101500Z",
        "Bearer abc",
    ] {
        refused(&app, body.clone(), Some(header.to_owned()), 401).await;
    }
    // A signature over another body.
    let other = ship_body(&txn, &trade, 991, &id("N"));
    refused(
        &app,
        body.clone(),
        Some(dingdang_tests::sign(&app.keys, &other)),
        401,
    )
    .await;
    // The right shape, signed with another key.
    let wrong = KeyRing {
        signer: Signer::Hmac(HmacSecret::new("not-the-secret")),
        verifier: Verifier::hmac(vec![HmacSecret::new("not-the-secret")]),
        skew: std::time::Duration::from_secs(180),
    };
    refused(
        &app,
        body.clone(),
        Some(dingdang_tests::sign(&wrong, &body)),
        401,
    )
    .await;
    // An RSA2 header where HMAC is configured.
    let mut rsa = Authorization::parse(&dingdang_tests::sign(&app.keys, &body)).unwrap();
    rsa.algorithm = Algorithm::Rsa2;
    refused(&app, body, Some(rsa.to_string()), 401).await;
}

#[tokio::test]
async fn stale_and_future_datetimes() {
    let (app, txn, trade) = ready().await;
    let body = ship_body(&txn, &trade, 990, &id("N"));
    let now = OffsetDateTime::now_utc();
    let stale = refused(
        &app,
        body.clone(),
        Some(sign_at(&app.keys, &body, now - Duration::seconds(200))),
        401,
    )
    .await;
    assert_eq!(stale.json()["retMsg"], "Datetime too old");
    let future = refused(
        &app,
        body.clone(),
        Some(sign_at(&app.keys, &body, now + Duration::seconds(200))),
        401,
    )
    .await;
    assert_eq!(future.json()["retMsg"], "Datetime in the future");
    // Within the window both ways it is accepted.
    let ok = app
        .post_ship(
            body.clone(),
            Some(sign_at(&app.keys, &body, now - Duration::seconds(150))),
        )
        .await;
    assert_eq!(ok.ret_code(), "SUCCESS");
}

#[tokio::test]
async fn a_replayed_nonce_with_another_body() {
    let (app, txn, trade) = ready().await;
    let nonce = id("N");
    assert_eq!(
        app.ship(ship_body(&txn, &trade, 990, &nonce))
            .await
            .ret_code(),
        "SUCCESS"
    );
    let other_trade = id("ORD");
    app.create_order(&other_trade, 990).await;
    let replay = ship_body(&id("T"), &other_trade, 990, &nonce);
    let authorization = dingdang_tests::sign(&app.keys, &replay);
    let answer = refused(&app, replay, Some(authorization), 401).await;
    assert_eq!(answer.json()["retMsg"], "replayed nonceStr");
}

#[tokio::test]
async fn wrong_skill_unknown_order_and_amount_mismatch() {
    let (app, txn, trade) = ready().await;
    let wrong_skill = serde_json::to_vec(&serde_json::json!({
        "skillId": "another-skill", "transactionId": txn, "tradeNo": trade, "totalAmt": 990, "nonceStr": id("N")
    }))
    .unwrap();
    let a = refused(
        &app,
        wrong_skill.clone(),
        Some(dingdang_tests::sign(&app.keys, &wrong_skill)),
        403,
    )
    .await;
    assert_eq!(a.json()["retMsg"], "unknown skill");

    let unknown = ship_body(&txn, &id("NOSUCH"), 990, &id("N"));
    let a = refused_and_kept(
        &app,
        unknown.clone(),
        Some(dingdang_tests::sign(&app.keys, &unknown)),
        "unknown_order",
    )
    .await;
    assert_eq!(a.json()["retMsg"], "unknown tradeNo");

    let mismatch = ship_body(&txn, &trade, 991, &id("N"));
    let a = refused_and_kept(
        &app,
        mismatch.clone(),
        Some(dingdang_tests::sign(&app.keys, &mismatch)),
        "amount_mismatch",
    )
    .await;
    assert_eq!(a.json()["retMsg"], "totalAmt mismatch");
}

#[tokio::test]
async fn an_order_paid_by_another_transaction() {
    let (app, txn, trade) = ready().await;
    assert_eq!(
        app.ship(ship_body(&txn, &trade, 990, &id("N")))
            .await
            .ret_code(),
        "SUCCESS"
    );
    let other = ship_body(&id("T"), &trade, 990, &id("N"));
    let a = refused_and_kept(
        &app,
        other.clone(),
        Some(dingdang_tests::sign(&app.keys, &other)),
        "paid_by_other",
    )
    .await;
    assert_eq!(a.json()["retMsg"], "paid by another transaction");
}

#[tokio::test]
async fn overlong_invalid_and_non_json_bodies() {
    let (app, txn, trade) = ready().await;
    let bodies: Vec<Vec<u8>> = vec![
        ship_body(&txn, &"A".repeat(33), 990, &id("N")),
        ship_body(&"T".repeat(33), &trade, 990, &id("N")),
        ship_body(&txn, &trade, 990, &"N".repeat(33)),
        ship_body(&txn, "ORD-1", 990, &id("N")),
        ship_body(&txn, &trade, 0, &id("N")),
        ship_body(&txn, &trade, -990, &id("N")),
        br#"{"domainId":"skill-123","transactionId":"T1","tradeNo":"O1","totalAmt":"990","nonceStr":"n"}"#.to_vec(),
        br#"{"domainId":"skill-123","transactionId":"T1","tradeNo":"O1","totalAmt":9.9,"nonceStr":"n"}"#.to_vec(),
        br#"{"domainId":"skill-123","transactionId":"T1","tradeNo":"O1","nonceStr":"n"}"#.to_vec(),
        b"not json".to_vec(),
        b"{\"domainId\":".to_vec(),
        b"[]".to_vec(),
        Vec::new(),
    ];
    for body in bodies {
        let authorization = dingdang_tests::sign(&app.keys, &body);
        refused(&app, body, Some(authorization), 400).await;
    }
}
