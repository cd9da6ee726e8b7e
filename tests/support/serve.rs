//! The real handlers served over HTTP on 127.0.0.1, one app per test: the
//! same `handle` functions the Lambda binaries hand to the runtime.

use std::sync::Arc;

use bytes::Bytes;
use dingdang::http::create_order::CreateOrderApp;
use dingdang::http::partner_api::PartnerApi;
use dingdang::http::refund_notify::RefundNotifyApp;
use dingdang::http::ship_notify::ShipNotifyApp;
use dingdang::jobs::EntitlementsApp;
use dingdang::platform::http_client;
use dingdang::signing::KeyRing;
use dingdang::store::DynamoStore;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{dynamo_client, new_table, platform_keys, Settings};

/// A spawned app: ship-notify at `/ship-notify`, refund-notify at
/// `/refund-notify`, the partner API (`/orders`, `/refunds`) elsewhere.
pub struct App {
    pub base: String,
    pub store: DynamoStore,
    /// The platform's side of the keys, to sign notifications.
    pub keys: KeyRing,
    pub http: reqwest::Client,
    pub ship: Arc<ShipNotifyApp>,
}

struct Handlers {
    ship: Arc<ShipNotifyApp>,
    create_order: CreateOrderApp,
    refund_notify: RefundNotifyApp,
    api: PartnerApi,
    /// With a webhook configured: the entitlements function, fed as the
    /// table's stream would feed it (see [`stream_fast_path`]).
    entitlements: Option<(EntitlementsApp, tokio::sync::Mutex<()>)>,
}

pub async fn spawn_app(settings: Settings) -> App {
    spawn_app_via(settings, None).await
}

/// Like [`spawn_app`], with the handlers reaching DynamoDB through
/// `endpoint` (a proxy, a closed port) while the test reads the table
/// directly.
pub async fn spawn_app_via(settings: Settings, endpoint: Option<&str>) -> App {
    let client = dynamo_client().await;
    let table = new_table(&client).await;
    let store = DynamoStore::new(client, table.clone());
    let handler_store = match endpoint {
        None => store.clone(),
        Some(url) => DynamoStore::new(crate::moto::dynamo_client_at(url).await, table.clone()),
    };
    let ship = Arc::new(ShipNotifyApp::new(
        settings.config(&table),
        handler_store.clone(),
        http_client(),
    ));
    let handlers = Arc::new(Handlers {
        ship: ship.clone(),
        create_order: CreateOrderApp::new(settings.config(&table), handler_store.clone()),
        refund_notify: RefundNotifyApp::new(settings.config(&table), handler_store.clone()),
        api: PartnerApi::new(
            settings.config(&table),
            handler_store.clone(),
            http_client(),
        ),
        entitlements: settings.config(&table).fulfillment_url.is_some().then(|| {
            (
                EntitlementsApp::new(settings.config(&table), store.clone(), http_client())
                    .expect("entitlements settings"),
                tokio::sync::Mutex::new(()),
            )
        }),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handlers = handlers.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let handlers = handlers.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let bytes = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let request = lambda_http::Request::from_parts(
                            parts,
                            lambda_http::Body::Binary(bytes.to_vec()),
                        );
                        let path = request.uri().path().to_owned();
                        let concerned = concerned(&path, &bytes);
                        let response = if path.starts_with("/ship-notify") {
                            handlers.ship.handle(request).await
                        } else if path.starts_with("/create-order") {
                            handlers.create_order.handle(request).await
                        } else if path.starts_with("/refund-notify") {
                            handlers.refund_notify.handle(request).await
                        } else {
                            handlers.api.handle(request).await
                        }
                        .unwrap();
                        if let Some((entitlements, one_at_a_time)) = &handlers.entitlements {
                            stream_fast_path(entitlements, one_at_a_time, &concerned).await;
                        }
                        let (parts, body) = response.into_parts();
                        Ok::<_, std::convert::Infallible>(hyper::Response::from_parts(
                            parts,
                            Full::new(Bytes::copy_from_slice(body.as_ref())),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    App {
        base,
        store,
        keys: platform_keys(&settings),
        http: reqwest::Client::new(),
        ship,
    }
}

/// The items a request may have moved: its `tradeNo` and `refundTradeNo`
/// (body fields or path segments).
fn concerned(path: &str, body: &[u8]) -> Vec<String> {
    let mut keys = Vec::new();
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(t) = json["tradeNo"].as_str() {
            keys.push(format!("ORDER#{t}"));
        }
        if let Some(r) = json["refundTradeNo"].as_str() {
            keys.push(format!("REFUND#{r}"));
        }
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for pair in segments.windows(2) {
        match pair {
            ["orders", id] => keys.push(format!("ORDER#{id}")),
            ["refunds", id] => keys.push(format!("REFUND#{id}")),
            _ => {}
        }
    }
    keys
}

/// Stands in for the table's stream and its event source mapping: after a
/// request, the entitlements function gets a batch naming the items the
/// request may have moved, one batch at a time (a stream delivers a change
/// once; here the function finds nothing pending for an item it already
/// delivered). The function reads each item afresh, as in AWS.
async fn stream_fast_path(
    entitlements: &EntitlementsApp,
    one_at_a_time: &tokio::sync::Mutex<()>,
    keys: &[String],
) {
    if keys.is_empty() {
        return;
    }
    let _turn = one_at_a_time.lock().await;
    let records: Vec<serde_json::Value> = keys
        .iter()
        .enumerate()
        .map(|(i, pk)| {
            serde_json::json!({
                "eventName": "MODIFY",
                "eventSource": "aws:dynamodb",
                "dynamodb": {"Keys": {"pk": {"S": pk}}, "SequenceNumber": format!("{i:021}")}
            })
        })
        .collect();
    entitlements
        .handle(serde_json::json!({ "Records": records }))
        .await;
}

/// A reply as the tests see it.
#[derive(Debug)]
pub struct Answered {
    pub status: u16,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

impl Answered {
    /// The status, the `Authorization` header and the body of a response.
    pub async fn read(response: reqwest::Response) -> Answered {
        Answered {
            status: response.status().as_u16(),
            authorization: response
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        crate::json(&self.body)
    }

    pub fn ret_code(&self) -> String {
        self.json()["retCode"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl App {
    /// POSTs `body` to ship-notify with the given `Authorization` header.
    pub async fn post_ship(&self, body: Vec<u8>, authorization: Option<String>) -> Answered {
        self.post_path("/ship-notify", body, authorization).await
    }

    /// POSTs `body` to `path` with the given `Authorization` header.
    pub async fn post_path(
        &self,
        path: &str,
        body: Vec<u8>,
        authorization: Option<String>,
    ) -> Answered {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        Answered::read(request.send().await.expect("the app answers")).await
    }

    /// Signs `body` as the platform and POSTs it.
    pub async fn ship(&self, body: Vec<u8>) -> Answered {
        let authorization = crate::sign(&self.keys, &body);
        self.post_ship(body, Some(authorization)).await
    }

    /// Registers an order through the API; panics unless it is created.
    pub async fn create_order(&self, trade_no: &str, total_amt: i64) {
        let response = self
            .http
            .post(format!("{}/orders", self.base))
            .json(&serde_json::json!({"tradeNo": trade_no, "totalAmt": total_amt}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            201,
            "{}",
            response.text().await.unwrap()
        );
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, crate::json(&response.bytes().await.unwrap()))
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, crate::json(&response.bytes().await.unwrap()))
    }
}
