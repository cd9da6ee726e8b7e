//! The Lambda Runtime API, played on 127.0.0.1 for one function process:
//! `GET /2018-06-01/runtime/invocation/next` (long poll),
//! `POST /2018-06-01/runtime/invocation/{id}/response`,
//! `POST /2018-06-01/runtime/invocation/{id}/error` and
//! `POST /2018-06-01/runtime/init/error`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

const PREFIX: &str = "/2018-06-01/runtime";
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:ship-notify";
/// The deadline given to each invocation (the template's function timeout).
const INVOCATION_BUDGET: Duration = Duration::from_secs(10);

/// What the function answered for one invocation.
#[derive(Debug)]
pub enum Completion {
    /// `POST .../response`: the serialised response.
    Response(Bytes),
    /// `POST .../error`: the error type header and the diagnostic body.
    Error { error_type: String, body: Bytes },
}

/// The state of the function's initialisation.
#[derive(Debug, Clone)]
pub enum Init {
    Pending,
    /// The first `next` call arrived at this instant.
    Ready(Instant),
    /// `POST /runtime/init/error` with this body.
    Failed(String),
}

struct Invocation {
    id: String,
    event: Bytes,
}

struct Shared {
    queue: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Completion>>>,
    init: watch::Sender<Init>,
    /// `next` calls received so far.
    nexts: watch::Sender<u64>,
}

/// A Runtime API endpoint for one function process.
pub struct RuntimeApi {
    address: String,
    queue: mpsc::Sender<Invocation>,
    shared: Arc<Shared>,
    init: watch::Receiver<Init>,
    nexts: watch::Receiver<u64>,
    seq: AtomicU64,
}

impl RuntimeApi {
    /// Listens on 127.0.0.1 on a free port.
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let (queue, receiver) = mpsc::channel(1);
        let (init_tx, init) = watch::channel(Init::Pending);
        let (nexts_tx, nexts) = watch::channel(0);
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(receiver),
            pending: Mutex::new(HashMap::new()),
            init: init_tx,
            nexts: nexts_tx,
        });
        let server = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| route(shared.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            address,
            queue,
            shared,
            init,
            nexts,
            seq: AtomicU64::new(0),
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Waits until the function's first `next` call or init error.
    pub async fn wait_init(&self) -> Init {
        let mut init = self.init.clone();
        let state = match init.wait_for(|s| !matches!(s, Init::Pending)).await {
            Ok(state) => state.clone(),
            Err(_) => Init::Failed("runtime API stopped".into()),
        };
        state
    }

    /// Waits until the function has made `n` `next` calls, i.e. after `n - 1`
    /// invocations it is back waiting for an event (and spends no CPU).
    pub async fn wait_nexts(&self, n: u64, timeout: Duration) -> Result<()> {
        let mut nexts = self.nexts.clone();
        let seen = tokio::time::timeout(timeout, async {
            nexts.wait_for(|&seen| seen >= n).await.map(|_| ())
        })
        .await;
        match seen {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => bail!("runtime API stopped"),
            Err(_) => bail!("no `next` call within {timeout:?}"),
        }
    }

    /// Hands `event` to the function's pending (or next) `next` call and
    /// waits at most `timeout` for its response or error.
    pub async fn invoke(&self, event: Bytes, timeout: Duration) -> Result<Completion> {
        let id = format!(
            "bench-{:08}-{:016x}",
            self.seq.fetch_add(1, Ordering::Relaxed),
            rand_u64()
        );
        let (tx, rx) = oneshot::channel();
        self.shared.pending.lock().unwrap().insert(id.clone(), tx);
        let outcome = tokio::time::timeout(timeout, async {
            self.queue
                .send(Invocation {
                    id: id.clone(),
                    event,
                })
                .await
                .map_err(|_| anyhow!("runtime API stopped"))?;
            rx.await.map_err(|_| anyhow!("invocation dropped"))
        })
        .await;
        self.shared.pending.lock().unwrap().remove(&id);
        match outcome {
            Ok(result) => result,
            Err(_) => bail!("no response within {timeout:?}"),
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

async fn route(
    shared: Arc<Shared>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req
        .uri()
        .path()
        .strip_prefix(PREFIX)
        .unwrap_or("")
        .to_owned();
    let method = req.method().clone();
    let error_type = req
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let response = match (method, path.as_str()) {
        (Method::GET, "/invocation/next") => next(&shared).await,
        (Method::POST, "/init/error") => {
            let message = format!("{error_type} {}", String::from_utf8_lossy(&body));
            shared.init.send_replace(Init::Failed(message));
            reply(StatusCode::ACCEPTED, "{\"status\":\"OK\"}")
        }
        (Method::POST, path) => match path
            .strip_prefix("/invocation/")
            .and_then(|rest| rest.split_once('/'))
        {
            Some((id, kind @ ("response" | "error"))) => {
                let completion = if kind == "response" {
                    Completion::Response(body)
                } else {
                    Completion::Error { error_type, body }
                };
                match shared.pending.lock().unwrap().remove(id) {
                    Some(waiting) => {
                        let _ = waiting.send(completion);
                        reply(StatusCode::ACCEPTED, "{\"status\":\"OK\"}")
                    }
                    None => reply(
                        StatusCode::BAD_REQUEST,
                        "{\"errorMessage\":\"unknown request id\"}",
                    ),
                }
            }
            _ => reply(StatusCode::NOT_FOUND, "{}"),
        },
        _ => reply(StatusCode::NOT_FOUND, "{}"),
    };
    Ok(response)
}

/// The long poll: answers with the next invocation once there is one.
async fn next(shared: &Shared) -> Response<Full<Bytes>> {
    shared.nexts.send_modify(|n| *n += 1);
    shared.init.send_if_modified(|state| {
        if matches!(state, Init::Pending) {
            *state = Init::Ready(Instant::now());
            true
        } else {
            false
        }
    });
    let invocation = shared.queue.lock().await.recv().await;
    let Some(invocation) = invocation else {
        return reply(StatusCode::GONE, "{\"errorMessage\":\"no more events\"}");
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        + INVOCATION_BUDGET;
    let mut response = Response::new(Full::new(invocation.event));
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    };
    set("content-type", "application/json".into());
    set("lambda-runtime-aws-request-id", invocation.id);
    set(
        "lambda-runtime-deadline-ms",
        deadline.as_millis().to_string(),
    );
    set("lambda-runtime-invoked-function-arn", FUNCTION_ARN.into());
    set(
        "lambda-runtime-trace-id",
        format!(
            "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
            deadline.as_secs(),
            rand_u64(),
            rand_u64()
        ),
    );
    response
}
