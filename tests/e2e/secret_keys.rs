//! Keys read at run time from Secrets Manager (moto's, through a counting
//! proxy): a function started with only the secret's ARN verifies and
//! signs; a platform key rotated in the secret is used without a restart
//! and a removed one is refused after the refresh; a burst of bad
//! signatures reads the secret once; a missing, unreadable or malformed
//! secret stops the start with a message naming the secret and the field.

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use dingdang::config::Config;
use dingdang::http::ship_notify::ShipNotifyApp;
use dingdang::platform::http_client;
use dingdang::signing::{parse_private_key, parse_public_keys, KeyRing, Signer, Verifier};
use dingdang::store::DynamoStore;
use dingdang_tests::proxy::Proxy;
use dingdang_tests::{
    dynamo_client, dynamo_endpoint, id, new_table, sdk_config_at, secrets_client, ship_body,
    vectors, Settings, SECRET,
};
use serde_json::json;
use time::OffsetDateTime;

/// A new secret in moto holding `value`; its ARN.
async fn create_secret(value: &serde_json::Value) -> String {
    secrets_client()
        .await
        .create_secret()
        .name(id("dingdang-keys-"))
        .secret_string(value.to_string())
        .send()
        .await
        .expect("create the secret")
        .arn
        .expect("an ARN")
}

/// Rotation as an operator does it: a new version of the secret.
async fn put_secret(arn: &str, value: &serde_json::Value) {
    secrets_client()
        .await
        .put_secret_value()
        .secret_id(arn)
        .secret_string(value.to_string())
        .send()
        .await
        .expect("put a new version");
}

/// `settings` without the key variables, with the ARN instead.
fn only_the_arn(settings: Settings, arn: &str) -> HashMap<String, String> {
    let mut env = settings.env;
    for name in [
        "DINGDANG_SKILL_SECRET",
        "DINGDANG_PLATFORM_PUBLIC_KEY",
        "DINGDANG_SKILL_PRIVATE_KEY",
    ] {
        env.remove(name);
    }
    env.insert("DINGDANG_SECRET_ARN".into(), arn.into());
    env.insert("DINGDANG_ACCEPT_UNKNOWN_ORDERS".into(), "true".into());
    env
}

/// A ship-notify function started from `env`, reaching Secrets Manager
/// through `proxy` (DynamoDB directly).
async fn start(env: HashMap<String, String>, proxy: &Proxy) -> Result<ShipNotifyApp, String> {
    let client = dynamo_client().await;
    let table = new_table(&client).await;
    let mut env = env;
    env.insert("TABLE_NAME".into(), table.clone());
    let config = Config::load_with(|k| env.get(k).cloned(), &sdk_config_at(&proxy.url()).await)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ShipNotifyApp::new(
        config,
        DynamoStore::new(client, table),
        http_client(),
    ))
}

struct Answer {
    status: u16,
    authorization: Option<String>,
    body: Vec<u8>,
}

/// One ship notification signed by `platform`, through the Lambda handler.
async fn ship(app: &ShipNotifyApp, platform: &KeyRing) -> Answer {
    let body = ship_body(&id("T"), &id("ORD"), 100, &id("N"));
    let authorization = platform.sign(&body, OffsetDateTime::now_utc()).to_string();
    post(app, body, &authorization).await
}

async fn post(app: &ShipNotifyApp, body: Vec<u8>, authorization: &str) -> Answer {
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/ship-notify")
        .header("content-type", "application/json")
        .header("authorization", authorization)
        .body(lambda_http::Body::Binary(body))
        .unwrap();
    let response = app.handle(request).await.unwrap();
    Answer {
        status: response.status().as_u16(),
        authorization: response
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        body: response.body().to_vec(),
    }
}

fn reads(proxy: &Proxy) -> usize {
    proxy
        .by_operation()
        .get("GetSecretValue")
        .copied()
        .unwrap_or(0)
}

/// The platform's side with `private` (PEM or bare base64) signing and our
/// public key verifying replies.
fn platform_signing_with(private: &str) -> KeyRing {
    KeyRing {
        signer: Signer::rsa2(parse_private_key(private).unwrap()),
        verifier: Verifier::rsa2(parse_public_keys(vectors::SKILL_PUBLIC_PEM).unwrap()),
        skew: KeyRing::DEFAULT_SKEW,
    }
}

/// A fresh platform key pair: the private key and the public one, both as
/// bare base64 of their DER.
fn new_platform_key() -> (String, String) {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
    let private = STANDARD.encode(pkcs8.as_ref());
    let public = parse_private_key(&private).unwrap().public_key();
    (private, STANDARD.encode(public.spki_der()))
}

fn rsa_secret(platform_public: &[&str]) -> serde_json::Value {
    json!({
        "platformPublicKey": platform_public,
        "skillPrivateKey": vectors::SKILL_PRIVATE_PEM,
        "skillSecret": "unused-with-rsa2",
    })
}

#[tokio::test]
async fn a_function_started_with_only_the_arn_verifies_and_signs() {
    let proxy = Proxy::start(dynamo_endpoint()).await;
    let arn = create_secret(&json!({"skillSecret": [SECRET]})).await;
    let app = start(only_the_arn(Settings::hmac(), &arn), &proxy)
        .await
        .unwrap();
    assert_eq!(reads(&proxy), 1, "read once, at start");
    // The platform signs with the same secret (the tests' development one).
    let platform = dingdang_tests::platform_keys(&Settings::hmac());
    let answer = ship(&app, &platform).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(dingdang_tests::json(&answer.body)["retCode"], "SUCCESS");
    // The reply is signed with the secret's key.
    platform
        .verify(
            answer.authorization.as_deref(),
            &answer.body,
            OffsetDateTime::now_utc(),
        )
        .expect("the reply verifies with the secret's key");
    let other = dingdang_tests::platform_keys(&Settings::hmac().with("DINGDANG_SKILL_SECRET", "x"));
    assert_eq!(ship(&app, &other).await.status, 401);
    // No secret in the environment was needed, and none was read again
    // within the TTL but the one refresh the bad signature asked for.
    assert_eq!(reads(&proxy), 2);
}

#[tokio::test]
async fn a_rotated_platform_key_is_used_without_a_restart_and_a_removed_one_refused() {
    let proxy = Proxy::start(dynamo_endpoint()).await;
    let old_public = vectors::PLATFORM_PUBLIC_BARE.trim();
    let (new_private, new_public) = new_platform_key();
    let arn = create_secret(&rsa_secret(&[old_public])).await;
    // The default refresh on failure; a short TTL for the removal below.
    let env = only_the_arn(Settings::rsa2_2019(), &arn);
    let mut short_ttl = env.clone();
    short_ttl.insert("DINGDANG_KEYS_TTL_SECS".into(), "2".into());
    let app = start(short_ttl, &proxy).await.unwrap();
    let old = platform_signing_with(vectors::PLATFORM_PRIVATE_PEM);
    let new = platform_signing_with(&new_private);
    assert_eq!(ship(&app, &old).await.status, 200);
    assert_eq!(ship(&app, &new).await.status, 401, "not in the secret yet");

    // The platform's new key first, the old one second: both verify, with
    // no restart.
    put_secret(&arn, &rsa_secret(&[&new_public, old_public])).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let answer = ship(&app, &new).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    old.verify(
        answer.authorization.as_deref(),
        &answer.body,
        OffsetDateTime::now_utc(),
    )
    .expect("our reply signature is unchanged");
    assert_eq!(ship(&app, &old).await.status, 200);

    // The old key removed: refused once the keys are read again.
    put_secret(&arn, &rsa_secret(&[&new_public])).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(ship(&app, &old).await.status, 401);
    assert_eq!(ship(&app, &new).await.status, 200);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_the_next_request_with_the_defaults() {
    let proxy = Proxy::start(dynamo_endpoint()).await;
    let old_public = vectors::PLATFORM_PUBLIC_BARE.trim();
    let (new_private, new_public) = new_platform_key();
    let arn = create_secret(&rsa_secret(&[old_public])).await;
    let app = start(only_the_arn(Settings::rsa2_2019(), &arn), &proxy)
        .await
        .unwrap();
    put_secret(&arn, &rsa_secret(&[&new_public, old_public])).await;
    // Within the 5-minute TTL: the signature no key held matches reads
    // the secret again, at once.
    let new = platform_signing_with(&new_private);
    assert_eq!(ship(&app, &new).await.status, 200);
    assert_eq!(
        ship(&app, &platform_signing_with(vectors::PLATFORM_PRIVATE_PEM))
            .await
            .status,
        200
    );
    assert_eq!(reads(&proxy), 2);
}

#[tokio::test]
async fn a_burst_of_bad_signatures_reads_the_secret_once() {
    let proxy = Proxy::start(dynamo_endpoint()).await;
    let arn = create_secret(&json!({"skillSecret": SECRET})).await;
    // The real defaults: TTL 300 s, at most one refresh a minute.
    let app = start(only_the_arn(Settings::hmac(), &arn), &proxy)
        .await
        .unwrap();
    assert_eq!(reads(&proxy), 1);
    let forger =
        dingdang_tests::platform_keys(&Settings::hmac().with("DINGDANG_SKILL_SECRET", "forged"));
    let burst: Vec<_> = (0..40).map(|_| ship(&app, &forger)).collect();
    for answer in futures::future::join_all(burst).await {
        assert_eq!(answer.status, 401);
    }
    for _ in 0..20 {
        assert_eq!(ship(&app, &forger).await.status, 401);
    }
    assert_eq!(reads(&proxy), 2, "one refresh for the whole burst");
    // Good requests still verify, without reading.
    let platform = dingdang_tests::platform_keys(&Settings::hmac());
    assert_eq!(ship(&app, &platform).await.status, 200);
    assert_eq!(reads(&proxy), 2);
}

/// The start fails, naming the secret and the field, never a value.
async fn start_error(env: HashMap<String, String>, proxy: &Proxy) -> String {
    match start(env, proxy).await {
        Ok(_) => panic!("started"),
        Err(message) => message,
    }
}

#[tokio::test]
async fn a_missing_unreadable_or_malformed_secret_stops_the_start() {
    let proxy = Proxy::start(dynamo_endpoint()).await;
    const VALUE: &str = "TOPSECRET-VALUE";

    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:no-such-secret-AbCdEf";
    let err = start_error(only_the_arn(Settings::hmac(), missing), &proxy).await;
    assert!(
        err.starts_with(&format!("secret {missing} cannot be read")),
        "{err}"
    );
    assert!(err.contains("ResourceNotFoundException"), "{err}");

    let arn = create_secret(&json!({"skillSecrets": VALUE})).await;
    let err = start_error(only_the_arn(Settings::hmac(), &arn), &proxy).await;
    assert_eq!(err, format!("secret {arn}: field skillSecret is missing"));

    let arn = create_secret(&json!({"skillSecret": [VALUE, ""]})).await;
    let err = start_error(only_the_arn(Settings::hmac(), &arn), &proxy).await;
    assert!(
        err.starts_with(&format!("secret {arn}: field skillSecret is malformed")),
        "{err}"
    );
    assert!(!err.contains(VALUE), "{err}");

    let arn = create_secret(&json!({"platformPublicKey": [VALUE], "skillPrivateKey": VALUE})).await;
    let err = start_error(only_the_arn(Settings::rsa2_2019(), &arn), &proxy).await;
    assert!(
        err.starts_with(&format!(
            "secret {arn}: field platformPublicKey is malformed"
        )),
        "{err}"
    );
    assert!(!err.contains(VALUE), "{err}");

    let arn = create_secret(&json!(VALUE)).await;
    let err = start_error(only_the_arn(Settings::hmac(), &arn), &proxy).await;
    assert!(
        err.starts_with(&format!("secret {arn} is not a JSON object")),
        "{err}"
    );
    assert!(!err.contains(VALUE), "{err}");

    // Unreachable: nothing listens there.
    let dead = Proxy::start("http://127.0.0.1:9").await;
    dead.set_down(true);
    let err = start_error(only_the_arn(Settings::hmac(), &arn), &dead).await;
    assert!(
        err.starts_with(&format!("secret {arn} cannot be read")),
        "{err}"
    );
}
