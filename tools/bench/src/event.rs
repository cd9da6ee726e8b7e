//! API Gateway HTTP API (payload format 2.0) events, and the responses the
//! function gives to them.

use anyhow::{anyhow, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The route of the ship notification endpoint in template.yaml.
pub const SHIP_PATH: &str = "/dingdang/ship-notify";

/// A `POST /dingdang/ship-notify` event as API Gateway delivers it.
pub fn ship_event(body: &[u8], authorization: &str, request_id: &str) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(body).context("a notification body is UTF-8 JSON")?;
    let now = OffsetDateTime::now_utc();
    let time = now
        .format(time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        ))
        .unwrap_or_default();
    let event = json!({
        "version": "2.0",
        "routeKey": format!("POST {SHIP_PATH}"),
        "rawPath": SHIP_PATH,
        "rawQueryString": "",
        "headers": {
            "accept": "*/*",
            "authorization": authorization,
            "content-length": body.len().to_string(),
            "content-type": "application/json",
            "host": "bench.execute-api.us-east-1.amazonaws.com",
            "user-agent": "lambda-bench",
            "x-amzn-trace-id": format!("Root=1-{:08x}-000000000000000000000000", now.unix_timestamp()),
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": {
                "method": "POST",
                "path": SHIP_PATH,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "lambda-bench"
            },
            "requestId": request_id,
            "routeKey": format!("POST {SHIP_PATH}"),
            "stage": "$default",
            "time": time,
            "timeEpoch": now.unix_timestamp() * 1000
        },
        "body": text,
        "isBase64Encoded": false
    });
    Ok(serde_json::to_vec(&event)?)
}

/// The HTTP response inside the function's answer.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// `retCode` of a JSON reply.
    pub fn ret_code(&self) -> Option<String> {
        let reply: Value = serde_json::from_slice(&self.body).ok()?;
        reply["retCode"].as_str().map(str::to_owned)
    }
}

/// Reads an API Gateway HTTP API response (`statusCode`, `headers`, `body`,
/// `isBase64Encoded`).
pub fn parse_response(bytes: &[u8]) -> Result<HttpAnswer> {
    let value: Value = serde_json::from_slice(bytes).context("response is not JSON")?;
    let status = value["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .ok_or_else(|| anyhow!("response without statusCode"))?;
    let authorization = value["headers"]
        .as_object()
        .and_then(|headers| {
            headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        })
        .and_then(|(_, v)| v.as_str())
        .map(str::to_owned);
    let text = value["body"].as_str().unwrap_or("");
    let body = if value["isBase64Encoded"].as_bool().unwrap_or(false) {
        STANDARD.decode(text).context("body is not base64")?
    } else {
        text.as_bytes().to_vec()
    };
    Ok(HttpAnswer {
        status,
        authorization,
        body,
    })
}
