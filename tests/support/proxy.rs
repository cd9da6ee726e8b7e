//! A counting HTTP/1.1 reverse proxy in front of the local DynamoDB server:
//! it counts the requests the handlers make (by `X-Amz-Target` operation),
//! and can delay them or refuse them (fault injection).
//!
//! Each request is forwarded as received (method, path and query, headers
//! except the hop-by-hop ones and `Host`, body), and the upstream response is
//! returned the same way. While [`Proxy::set_down`] is on, connections are
//! accepted and closed without a response, new ones and kept-alive ones.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Default)]
struct State {
    requests: AtomicUsize,
    retries: AtomicUsize,
    upstream_ns: AtomicU64,
    by_operation: Mutex<BTreeMap<String, usize>>,
    delay_us: AtomicU64,
    down: AtomicBool,
}

impl State {
    fn count(&self, operation: Option<&str>, retry: bool) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if retry {
            self.retries.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(operation) = operation {
            *self
                .by_operation
                .lock()
                .unwrap()
                .entry(operation.to_owned())
                .or_default() += 1;
        }
    }
}

/// Why a request got no response: the connection is closed instead.
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused by the proxy")
    }
}

impl std::error::Error for Refused {}

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// The proxy: cheap to clone, stops with the test's runtime.
#[derive(Clone)]
pub struct Proxy {
    url: String,
    state: Arc<State>,
}

impl Proxy {
    /// Starts a proxy on `127.0.0.1:0` in front of `upstream` (e.g. the
    /// moto URL, `http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_end_matches('/').to_owned();
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("proxy client");
        let state = Arc::new(State::default());
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                if shared.down.load(Ordering::SeqCst) {
                    shared.count(None, false);
                    drop(stream);
                    continue;
                }
                let state = shared.clone();
                let client = client.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        forward(state.clone(), client.clone(), upstream.clone(), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy { url, state }
    }

    /// The URL to give a client instead of the upstream's.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Requests forwarded (or refused) since start or the last reset.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Requests by the operation of their `X-Amz-Target` header
    /// (`DynamoDB_20120810.TransactWriteItems` counts as
    /// `TransactWriteItems`), since start or the last reset.
    pub fn by_operation(&self) -> BTreeMap<String, usize> {
        self.state.by_operation.lock().unwrap().clone()
    }

    /// Of [`Proxy::requests`], those the AWS SDK marked as a retry
    /// (`amz-sdk-request: attempt=N` with N > 1): when this is 0, every
    /// counted request is one the code made, not the SDK's retry policy.
    pub fn retries(&self) -> usize {
        self.state.retries.load(Ordering::SeqCst)
    }

    /// Time spent waiting for the upstream's responses (the local server's
    /// share of a handler's latency) since start or the last reset.
    pub fn upstream_time(&self) -> Duration {
        Duration::from_nanos(self.state.upstream_ns.load(Ordering::SeqCst))
    }

    /// Sets the counts back to zero.
    pub fn reset(&self) {
        let mut by_operation = self.state.by_operation.lock().unwrap();
        by_operation.clear();
        self.state.requests.store(0, Ordering::SeqCst);
        self.state.retries.store(0, Ordering::SeqCst);
        self.state.upstream_ns.store(0, Ordering::SeqCst);
    }

    /// Waits this long before forwarding each request.
    pub fn set_delay(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.state.delay_us.store(us, Ordering::SeqCst);
    }

    /// While down, every connection is accepted and closed without a
    /// response (requests on kept-alive connections too).
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
}

fn operation(req: &hyper::Request<hyper::body::Incoming>) -> Option<String> {
    let target = req.headers().get("x-amz-target")?.to_str().ok()?;
    let op = target.rsplit_once('.').map_or(target, |(_, op)| op);
    Some(op.to_owned())
}

/// `amz-sdk-request: attempt=2; max=3` is the SDK's second attempt.
fn is_retry(req: &hyper::Request<hyper::body::Incoming>) -> bool {
    let Some(value) = req
        .headers()
        .get("amz-sdk-request")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    value
        .split(';')
        .filter_map(|part| part.trim().strip_prefix("attempt="))
        .any(|n| n.trim().parse::<u32>().is_ok_and(|n| n > 1))
}

async fn forward(
    state: Arc<State>,
    client: reqwest::Client,
    upstream: String,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Refused> {
    let op = operation(&req);
    state.count(op.as_deref(), is_retry(&req));
    if state.down.load(Ordering::SeqCst) {
        return Err(Refused);
    }
    let delay = state.delay_us.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_micros(delay)).await;
    }
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Refused)?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut outbound = client.request(parts.method, format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            outbound = outbound.header(name, value);
        }
    }
    // An unreachable upstream looks like a dead connection to the caller.
    let started = std::time::Instant::now();
    let response = outbound.body(body).send().await.map_err(|_| Refused)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(|_| Refused)?;
    let waited = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    state.upstream_ns.fetch_add(waited, Ordering::SeqCst);
    let mut reply = hyper::Response::new(Full::new(body));
    *reply.status_mut() = status;
    for (name, value) in &headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            reply.headers_mut().append(name, value.clone());
        }
    }
    Ok(reply)
}
