//! A stub of the partner's fulfilment webhook that counts what it receives.

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
    received: AtomicUsize,
    calls: AtomicUsize,
    failing: AtomicBool,
    delay_ms: AtomicU64,
    requests: Mutex<Vec<(Option<String>, Vec<u8>)>>,
    /// Requests whose `Dingdang-Signature` did not verify.
    bad_signatures: AtomicUsize,
    /// Every `Dingdang-Signature` received.
    signatures: Mutex<Vec<String>>,
}

/// Verifies `Dingdang-Signature: t=..,v1=..` over `t.body` with `secret`,
/// as a partner's webhook does (the README's recipe), within 300 s.
pub fn verify_signature(header: Option<&str>, body: &[u8], secret: &str) -> bool {
    use hmac::{Hmac, Mac};
    let Some(header) = header else {
        return false;
    };
    let field = |name: &str| {
        header
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix(name))
            .map(str::to_owned)
    };
    let (Some(t), Some(v1)) = (field("t="), field("v1=")) else {
        return false;
    };
    let Ok(at) = t.parse::<i64>() else {
        return false;
    };
    if (time::OffsetDateTime::now_utc().unix_timestamp() - at).abs() > 300 {
        return false;
    }
    let Ok(expected) = hex::decode(v1) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The stub: `url()` to configure, `calls()` to count.
#[derive(Clone)]
pub struct Webhook {
    url: String,
    state: Arc<State>,
}

impl Webhook {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/fulfil", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
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
                            let key = req
                                .headers()
                                .get("idempotency-key")
                                .and_then(|v| v.to_str().ok())
                                .map(String::from);
                            let signature = req
                                .headers()
                                .get("dingdang-signature")
                                .and_then(|v| v.to_str().ok())
                                .map(String::from);
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            state.received.fetch_add(1, Ordering::SeqCst);
                            if let Some(signature) = &signature {
                                state.signatures.lock().unwrap().push(signature.clone());
                            }
                            let delay = state.delay_ms.load(Ordering::SeqCst);
                            if delay > 0 {
                                tokio::time::sleep(Duration::from_millis(delay)).await;
                            }
                            let signed = verify_signature(
                                signature.as_deref(),
                                &body,
                                crate::WEBHOOK_SECRET,
                            );
                            let status = if !signed {
                                state.bad_signatures.fetch_add(1, Ordering::SeqCst);
                                401
                            } else if state.failing.load(Ordering::SeqCst) {
                                503
                            } else {
                                state.calls.fetch_add(1, Ordering::SeqCst);
                                state.requests.lock().unwrap().push((key, body));
                                200
                            };
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(b"{}")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, state }
    }

    /// The `v1` signatures of every request received (to look for in logs).
    pub fn signatures(&self) -> Vec<String> {
        self.state
            .signatures
            .lock()
            .unwrap()
            .iter()
            .filter_map(|h| h.split(',').find_map(|kv| kv.trim().strip_prefix("v1=")))
            .map(str::to_owned)
            .collect()
    }

    /// Requests refused because their signature did not verify.
    pub fn bad_signatures(&self) -> usize {
        self.state.bad_signatures.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests that have arrived (counted before any delay or failure).
    pub fn received(&self) -> usize {
        self.state.received.load(Ordering::SeqCst)
    }

    /// Successful fulfilments received.
    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// (Idempotency-Key, body) of each successful fulfilment.
    pub fn requests(&self) -> Vec<(Option<String>, Vec<u8>)> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Answer 503 from now on (or stop doing so).
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}
