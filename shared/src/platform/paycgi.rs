//! The platform's `paycgi` API (order query, refund, refund query): the
//! reqwest implementation of [`Platform`].
//!
//! Each call POSTs the request as compact JSON in the configured protocol
//! revision, signed over the exact body bytes. A reply is trusted only after
//! its `Authorization` (when present, or always when signed replies are
//! required) verifies over the exact reply bytes; only then is it parsed.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::platform::{Platform, PlatformError};
use crate::keys::Keys;
use crate::observability::error_chain;
use crate::protocol::{
    self, OrderQueryReply, OrderQueryRequest, RefundQueryReply, RefundQueryRequest, RefundReply,
    RefundRequest, Revision, MAX_BODY_LEN,
};

/// The three endpoints under the API base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    OrderQuery,
    Refund,
    RefundQuery,
}

impl Endpoint {
    const fn path(self) -> &'static str {
        match self {
            Endpoint::OrderQuery => "orderquery",
            Endpoint::Refund => "refund",
            Endpoint::RefundQuery => "refundquery",
        }
    }
}

/// The identifier a call is about, for the log line: `(field, value)`.
type CallRef<'a> = (&'static str, &'a str);

/// Client of the platform's `paycgi` API. Cheap to clone (shared inside).
/// Its Debug output shows no key material.
#[derive(Clone)]
pub struct PlatformClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    api_base: String,
    keys: Keys,
    revision: Revision,
    require_signed_replies: bool,
    /// Per-call total timeout overriding the client's own.
    timeout: Option<Duration>,
}

impl PlatformClient {
    /// A client POSTing to `{api_base}/orderquery` etc. with `http` (see
    /// [`super::http_client`]: connect 2 s, total 8 s), signing with
    /// `keys.signer` and verifying replies with `keys.verifier` within
    /// `keys.skew` (the keys current at each call: see [`Keys::current`];
    /// an `Arc<KeyRing>` is fixed keys). Requests are written in `revision`. With
    /// `require_signed_replies` a reply without `Authorization` is refused.
    pub fn new(
        http: reqwest::Client,
        api_base: impl Into<String>,
        keys: impl Into<Keys>,
        revision: Revision,
        require_signed_replies: bool,
    ) -> Self {
        let keys = keys.into();
        let api_base = api_base.into().trim_end_matches('/').to_owned();
        Self {
            inner: Arc::new(Inner {
                http,
                api_base,
                keys,
                revision,
                require_signed_replies,
                timeout: None,
            }),
        }
    }

    /// The same client with a total per-call timeout of `timeout`
    /// (overriding the HTTP client's).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                http: inner.http.clone(),
                api_base: inner.api_base.clone(),
                keys: inner.keys.clone(),
                revision: inner.revision,
                require_signed_replies: inner.require_signed_replies,
                timeout: Some(timeout),
            }),
        }
    }

    /// The API base, without a trailing `/`.
    pub fn api_base(&self) -> &str {
        &self.inner.api_base
    }

    fn url(&self, endpoint: Endpoint) -> String {
        endpoint_url(&self.inner.api_base, endpoint)
    }

    async fn call<Req, Rep>(
        &self,
        endpoint: Endpoint,
        about: CallRef<'_>,
        request: &Req,
    ) -> Result<Rep, PlatformError>
    where
        Req: Serialize + Sync,
        Rep: DeserializeOwned,
    {
        let started = Instant::now();
        let result = self.exchange(endpoint, request).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (id_field, id) = about;
        match &result {
            Ok((status, _)) => tracing::info!(
                endpoint = endpoint.path(),
                id_field,
                id,
                status,
                elapsed_ms,
                "platform call"
            ),
            Err(e) => tracing::warn!(
                endpoint = endpoint.path(),
                id_field,
                id,
                error = %e,
                elapsed_ms,
                "platform call failed"
            ),
        }
        result.map(|(_, reply)| reply)
    }

    /// Sends, receives and checks one exchange; returns the HTTP status and
    /// the parsed reply.
    async fn exchange<Req, Rep>(
        &self,
        endpoint: Endpoint,
        request: &Req,
    ) -> Result<(u16, Rep), PlatformError>
    where
        Req: Serialize + Sync,
        Rep: DeserializeOwned,
    {
        let inner = &self.inner;
        let body = protocol::try_to_wire(request, inner.revision)
            .map_err(|e| PlatformError::Transport(format!("request not serialisable: {e}")))?;
        let keys = inner.keys.current().await;
        let authorization = keys.sign(&body, OffsetDateTime::now_utc());
        let mut builder = inner
            .http
            .post(self.url(endpoint))
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::AUTHORIZATION, authorization.to_string())
            .body(body);
        if let Some(timeout) = inner.timeout {
            builder = builder.timeout(timeout);
        }
        let mut response = builder.send().await.map_err(transport_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(PlatformError::Status(status.as_u16()));
        }
        let header = match response.headers().get(http::header::AUTHORIZATION) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| PlatformError::BadReply("malformed Authorization".into()))?
                    .to_owned(),
            ),
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if bytes.len() + chunk.len() > MAX_BODY_LEN {
                return Err(PlatformError::BadReply("reply too large".into()));
            }
            bytes.extend_from_slice(&chunk);
        }
        let reply = accept_reply(
            &keys,
            inner.require_signed_replies,
            header.as_deref(),
            &bytes,
            OffsetDateTime::now_utc(),
        )?;
        Ok((status.as_u16(), reply))
    }
}

fn endpoint_url(api_base: &str, endpoint: Endpoint) -> String {
    format!("{api_base}/{}", endpoint.path())
}

/// Maps a reqwest failure: timeouts (connect or total) to
/// [`PlatformError::Timeout`], everything else to
/// [`PlatformError::Transport`] with the error chain minus the URL.
fn transport_error(e: reqwest::Error) -> PlatformError {
    if e.is_timeout() {
        PlatformError::Timeout
    } else {
        PlatformError::Transport(error_chain(&e.without_url()))
    }
}

/// Checks a 2xx reply: its signature (when present, or always when
/// `require_signed` is set) over the exact `body`, then its shape.
fn accept_reply<Rep: DeserializeOwned>(
    keys: &crate::signing::KeyRing,
    require_signed: bool,
    authorization: Option<&str>,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Rep, PlatformError> {
    match authorization {
        Some(header) => {
            keys.verify(Some(header), body, now)
                .map_err(|e| PlatformError::BadReply(format!("reply signature: {e}")))?;
        }
        None if require_signed => return Err(PlatformError::BadReply("unsigned reply".into())),
        None => {}
    }
    protocol::parse(body).map_err(|e| PlatformError::BadReply(e.to_string()))
}

impl fmt::Debug for PlatformClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("PlatformClient")
            .field("api_base", &inner.api_base)
            .field("revision", &inner.revision)
            .field("algorithm", &inner.keys.ring().signer.algorithm())
            .field("require_signed_replies", &inner.require_signed_replies)
            .field("timeout", &inner.timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Platform for PlatformClient {
    async fn order_query(
        &self,
        request: &OrderQueryRequest,
    ) -> Result<OrderQueryReply, PlatformError> {
        let about = match (&request.trade_no, &request.transaction_id) {
            (Some(t), _) => ("tradeNo", t.as_str()),
            (None, Some(t)) => ("transactionId", t.as_str()),
            (None, None) => ("tradeNo", ""),
        };
        self.call(Endpoint::OrderQuery, about, request).await
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundReply, PlatformError> {
        let about = ("refundTradeNo", request.refund_trade_no.as_str());
        self.call(Endpoint::Refund, about, request).await
    }

    async fn refund_query(
        &self,
        request: &RefundQueryRequest,
    ) -> Result<RefundQueryReply, PlatformError> {
        let about = match (&request.refund_trade_no, &request.refund_transaction_id) {
            (Some(t), _) => ("refundTradeNo", t.as_str()),
            (None, Some(t)) => ("refundTransactionId", t.as_str()),
            (None, None) => ("refundTradeNo", ""),
        };
        self.call(Endpoint::RefundQuery, about, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Reply, RetCode};
    use crate::signing::KeyRing;
    use crate::signing::{HmacSecret, Signer, Verifier};

    fn keys(secret: &str) -> KeyRing {
        KeyRing {
            signer: Signer::Hmac(HmacSecret::new(secret)),
            verifier: Verifier::hmac(vec![HmacSecret::new(secret)]),
            skew: KeyRing::DEFAULT_SKEW,
        }
    }

    const OK: &[u8] = br#"{"retCode":"SUCCESS"}"#;

    fn accept(require: bool, header: Option<&str>, body: &[u8]) -> Result<Reply, PlatformError> {
        accept_reply(
            &keys("s3cret"),
            require,
            header,
            body,
            OffsetDateTime::now_utc(),
        )
    }

    fn bad_reply(r: Result<Reply, PlatformError>) -> String {
        match r {
            Err(PlatformError::BadReply(msg)) => msg,
            other => panic!("expected BadReply, got {other:?}"),
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            endpoint_url("https://aiwx.html5.qq.com/paycgi", Endpoint::OrderQuery),
            "https://aiwx.html5.qq.com/paycgi/orderquery"
        );
        let client = PlatformClient::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9100/paycgi/",
            Arc::new(keys("s3cret")),
            Revision::R2018,
            false,
        );
        assert_eq!(
            client.url(Endpoint::RefundQuery),
            "http://127.0.0.1:9100/paycgi/refundquery"
        );
        assert_eq!(
            client.url(Endpoint::Refund),
            "http://127.0.0.1:9100/paycgi/refund"
        );
    }

    #[test]
    fn signed_reply_accepted() {
        let header = keys("s3cret")
            .sign(OK, OffsetDateTime::now_utc())
            .to_string();
        for require in [false, true] {
            let reply = accept(require, Some(&header), OK).unwrap();
            assert_eq!(reply.ret_code, RetCode::Success);
        }
    }

    #[test]
    fn signature_is_over_the_exact_bytes() {
        let header = keys("s3cret")
            .sign(OK, OffsetDateTime::now_utc())
            .to_string();
        let spaced = br#"{"retCode": "SUCCESS"}"#;
        assert_eq!(
            bad_reply(accept(false, Some(&header), spaced)),
            "reply signature: bad signature"
        );
    }

    #[test]
    fn wrongly_signed_or_stale_reply_refused_even_when_not_required() {
        let wrong = keys("other")
            .sign(OK, OffsetDateTime::now_utc())
            .to_string();
        assert_eq!(
            bad_reply(accept(false, Some(&wrong), OK)),
            "reply signature: bad signature"
        );
        let old = OffsetDateTime::now_utc() - time::Duration::minutes(10);
        let stale = keys("s3cret").sign(OK, old).to_string();
        assert_eq!(
            bad_reply(accept(false, Some(&stale), OK)),
            "reply signature: Datetime too old"
        );
        assert_eq!(
            bad_reply(accept(false, Some("garbage"), OK)),
            "reply signature: malformed Authorization"
        );
    }

    #[test]
    fn unsigned_reply_depends_on_the_setting() {
        assert_eq!(bad_reply(accept(true, None, OK)), "unsigned reply");
        assert_eq!(accept(false, None, OK).unwrap(), Reply::success());
    }

    #[test]
    fn unparseable_reply_refused_after_the_signature() {
        let body = br#"{"retCode":"MAYBE"}"#;
        let header = keys("s3cret")
            .sign(body, OffsetDateTime::now_utc())
            .to_string();
        assert_eq!(
            bad_reply(accept(true, Some(&header), body)),
            "invalid field retCode: must be one of SUCCESS, FAIL"
        );
        assert_eq!(bad_reply(accept(false, None, b"<html>")), "invalid JSON");
    }

    #[test]
    fn debug_shows_no_secret() {
        let client = PlatformClient::new(
            reqwest::Client::new(),
            "http://x/paycgi",
            Arc::new(keys("TOPSECRETVALUE")),
            Revision::R2019,
            true,
        )
        .with_timeout(Duration::from_millis(300));
        let text = format!("{client:?}");
        assert!(!text.contains("TOPSECRETVALUE"), "{text}");
        assert!(
            text.contains("http://x/paycgi") && text.contains("300ms"),
            "{text}"
        );
    }
}
