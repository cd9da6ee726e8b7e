//! The CPU work of one ship notification, without I/O: decode the API
//! Gateway event, verify the signature (HMAC and RSA2), parse and validate
//! the body, fingerprint it, encode and sign the reply; and, for init, the
//! key parsing. Run with `cargo bench -p dingdang --bench notify`.
//!
//! Budget: under 20 µs per notification for everything but I/O with
//! TSK-HMAC-SHA256-BASIC. TSK-RSA2 is reported on its own: a 2048-bit
//! public-key verify costs tens of µs and the reply's private-key signature
//! about a millisecond, which no code change here can remove.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use dingdang::config::Config;
use dingdang::domain::ship::{body_hash, Fingerprint};
use dingdang::protocol::{self, Reply, ShipNotify};
use dingdang::signing::{self, KeyRing};
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde_json::json;
use time::{Duration, OffsetDateTime};

const BODY: &[u8] = include_bytes!("../tests/vectors/ship_notify_body.json");
const SECRET: &str = "bench-secret";
const PLATFORM_PRIVATE: &str = include_str!("../tests/vectors/platform_private_key.pem");
const PLATFORM_PUBLIC: &str = include_str!("../tests/vectors/platform_public_key.pem");
const SKILL_PRIVATE: &str = include_str!("../tests/vectors/second_private_key.pem");

/// The skill's configuration and the platform's keys for one algorithm.
struct Side {
    /// The function's view (verifies the platform, signs replies).
    skill: Config,
    /// The platform's view (signs notifications).
    platform: KeyRing,
}

fn config(pairs: &[(&str, &str)]) -> Config {
    Config::from_lookup(|name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("bench configuration")
}

fn hmac() -> Side {
    let pairs = [
        ("TABLE_NAME", "bench"),
        ("DINGDANG_SKILL_ID", "skill-123"),
        ("DINGDANG_SKILL_SECRET", SECRET),
    ];
    Side {
        skill: config(&pairs),
        platform: config(&pairs).keys.ring().as_ref().clone(),
    }
}

fn rsa2_env(private: &str) -> [(&'static str, String); 5] {
    [
        ("TABLE_NAME", "bench".into()),
        ("DINGDANG_SKILL_ID", "skill-123".into()),
        ("DINGDANG_SIGN_ALG", "TSK-RSA2".into()),
        ("DINGDANG_PLATFORM_PUBLIC_KEY", PLATFORM_PUBLIC.into()),
        ("DINGDANG_SKILL_PRIVATE_KEY", private.into()),
    ]
}

fn rsa2() -> Side {
    let skill = rsa2_env(SKILL_PRIVATE);
    let skill: Vec<(&str, &str)> = skill.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The platform signs with the private half of the key the skill verifies.
    let platform = rsa2_env(PLATFORM_PRIVATE);
    let platform: Vec<(&str, &str)> = platform.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Side {
        skill: config(&skill),
        platform: config(&platform).keys.ring().as_ref().clone(),
    }
}

/// The signed reply as ship-notify builds it: the JSON body, an
/// `Authorization` header over it, the Lambda HTTP response.
fn signed_response(keys: &KeyRing, reply: &Reply, now: OffsetDateTime) -> Response<Body> {
    let body = reply.to_bytes();
    let authorization = keys.sign(&body, now).to_string();
    let mut response = Response::new(Body::Binary(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_str(&authorization) {
        headers.insert("authorization", value);
    }
    response
}

/// A `POST /dingdang/ship-notify` API Gateway HTTP API (2.0) event.
fn event(authorization: &str) -> String {
    json!({
        "version": "2.0",
        "routeKey": "POST /dingdang/ship-notify",
        "rawPath": "/dingdang/ship-notify",
        "rawQueryString": "",
        "headers": {
            "accept": "*/*",
            "authorization": authorization,
            "content-length": BODY.len().to_string(),
            "content-type": "application/json",
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "user-agent": "platform",
            "x-amzn-trace-id": "Root=1-5f84c7a9-0e3f5fd6a4c4e2a2f6b8c1d2",
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": "/dingdang/ship-notify",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "platform"
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "POST /dingdang/ship-notify",
            "stage": "$default",
            "time": "22/Jun/2018:10:15:00 +0000",
            "timeEpoch": 1529662500000_i64
        },
        "body": std::str::from_utf8(BODY).unwrap(),
        "isBase64Encoded": false
    })
    .to_string()
}

fn benches(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let notice: ShipNotify = protocol::parse(BODY).unwrap();
    let success = Reply::success();

    for (name, side) in [("hmac", hmac()), ("rsa2", rsa2())] {
        let header = side.platform.sign(BODY, now).to_string();
        let keys = side.skill.keys.ring();
        keys.verify(Some(&header), BODY, now).expect("verifies");

        c.bench_function(&format!("verify/{name}"), |b| {
            b.iter(|| keys.verify(Some(black_box(&header)), black_box(BODY), now))
        });
        // The same reply within one second: with RSA2 the signature is the
        // one remembered from the first reply of that second.
        c.bench_function(&format!("reply_sign/{name}"), |b| {
            b.iter(|| signed_response(&keys, black_box(&success), now))
        });
        // Every reply in a new second: the full signing cost.
        c.bench_function(&format!("reply_sign_new_second/{name}"), |b| {
            let mut second = 0;
            b.iter(|| {
                second += 1;
                signed_response(&keys, black_box(&success), now + Duration::seconds(second))
            })
        });
        let event = event(&header);
        // Everything ship-notify does for a first delivery but the DynamoDB
        // call (the claim items are built inside the store and not public;
        // the runtime's response serialisation is not included either).
        c.bench_function(&format!("non_io_total/{name}"), |b| {
            b.iter(|| {
                let request = lambda_http::request::from_str(black_box(&event)).unwrap();
                let body = match request.body() {
                    lambda_http::Body::Text(text) => text.as_bytes(),
                    lambda_http::Body::Binary(bytes) => bytes.as_slice(),
                    _ => &[],
                };
                let authorization = request
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok());
                keys.verify(authorization, body, now).unwrap();
                let notice: ShipNotify = protocol::parse(body).unwrap();
                let fingerprint = Fingerprint::of(&notice);
                let hash = body_hash(body);
                let response = signed_response(&keys, &success, now);
                (fingerprint, hash, response)
            })
        });
    }

    c.bench_function("event_decode", |b| {
        let event = event("TSK-HMAC-SHA256-BASIC Datetime=20180622T101500Z, Signature=00");
        b.iter(|| lambda_http::request::from_str(black_box(&event)).unwrap())
    });
    c.bench_function("parse_validate", |b| {
        b.iter(|| protocol::parse::<ShipNotify>(black_box(BODY)).unwrap())
    });
    c.bench_function("fingerprint", |b| {
        b.iter(|| Fingerprint::of(black_box(&notice)))
    });
    c.bench_function("body_hash", |b| b.iter(|| body_hash(black_box(BODY))));
    c.bench_function("reply_encode", |b| {
        b.iter(|| black_box(Reply::success()).to_bytes())
    });

    // Init: key parsing (once per cold start, never per request).
    c.bench_function("init/parse_public_key", |b| {
        b.iter(|| signing::parse_public_keys(black_box(PLATFORM_PUBLIC)).unwrap())
    });
    c.bench_function("init/parse_private_key", |b| {
        b.iter(|| signing::parse_private_key(black_box(SKILL_PRIVATE)).unwrap())
    });
}

criterion_group!(notify, benches);
criterion_main!(notify);
