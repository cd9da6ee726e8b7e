//! A stand-in for the platform's `paycgi` that answers `orderquery` with
//! whatever reply a test sets, signed with the platform's keys over its
//! exact bytes: for replies the simulator never sends (a field missing, a
//! field that does not parse, another order's tradeNo).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dingdang::signing::KeyRing;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use tokio::net::TcpListener;

struct State {
    keys: KeyRing,
    reply: Mutex<Vec<u8>>,
    /// The tradeNo of each `orderquery` received.
    queries: Mutex<Vec<String>>,
    calls: AtomicUsize,
}

/// The stub: `api_base()` to configure as `DINGDANG_API_BASE`,
/// `set_reply()` to choose the answer, `calls()` to count.
#[derive(Clone)]
pub struct StubPlatform {
    api_base: String,
    state: Arc<State>,
}

impl StubPlatform {
    /// Answers every `POST .../orderquery` with the current reply (at first
    /// `{"retCode":"FAIL","retMsg":"order not found"}`), HTTP 200, signed
    /// with `keys` (the platform's side); any other path gets 404.
    pub async fn start(keys: KeyRing) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_base = format!("http://{}/paycgi", listener.local_addr().unwrap());
        let state = Arc::new(State {
            keys,
            reply: Mutex::new(br#"{"retCode":"FAIL","retMsg":"order not found"}"#.to_vec()),
            queries: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
        });
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            if !path.ends_with("/orderquery") {
                                return Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(404)
                                        .body(Full::new(Bytes::new()))
                                        .unwrap(),
                                );
                            }
                            state.calls.fetch_add(1, Ordering::SeqCst);
                            let asked: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            state
                                .queries
                                .lock()
                                .unwrap()
                                .push(asked["tradeNo"].as_str().unwrap_or_default().to_owned());
                            let reply = state.reply.lock().unwrap().clone();
                            let authorization = state
                                .keys
                                .sign(&reply, OffsetDateTime::now_utc())
                                .to_string();
                            Ok(hyper::Response::builder()
                                .status(200)
                                .header("content-type", "application/json")
                                .header("authorization", authorization)
                                .body(Full::new(Bytes::from(reply)))
                                .unwrap())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { api_base, state }
    }

    /// The base URL, without a trailing `/`.
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// Answers `orderquery` with exactly these bytes from now on.
    pub fn set_reply(&self, reply: impl Into<Vec<u8>>) {
        *self.state.reply.lock().unwrap() = reply.into();
    }

    /// `orderquery` calls received.
    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// The tradeNo each `orderquery` asked about, in order.
    pub fn queries(&self) -> Vec<String> {
        self.state.queries.lock().unwrap().clone()
    }
}
