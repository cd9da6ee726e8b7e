//! The create-order endpoint (later revision): the platform asks for a new
//! order number when a user orders.

use std::convert::Infallible;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use time::OffsetDateTime;

use super::notify::{Answer, Concerns, Inbound};
use crate::config::Config;
use crate::domain::orders::{
    new_trade_no, request_key, PlatformCreated, PlatformOrder, PlatformOrderStore,
};
use crate::domain::refunds::NonceClaim;
use crate::domain::ship::body_hash;
use crate::domain::{Order, OrderStatus};
use crate::protocol::{CreateOrderReply, CreateOrderRequest, SkillId};
use crate::store::DynamoStore;

/// The create-order function.
pub struct CreateOrderApp {
    store: DynamoStore,
    inbound: Inbound,
    skill_id: SkillId,
    /// When the sweep first asks about an order not paid by then.
    first_check: std::time::Duration,
}

impl CreateOrderApp {
    pub fn new(config: Config, store: DynamoStore) -> Self {
        Self {
            store: store.with_shards(config.due_shards),
            first_check: config.reconcile_grace,
            inbound: Inbound { keys: config.keys },
            skill_id: config.skill_id,
        }
    }

    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let config = Config::load().await?;
        let store = DynamoStore::from_env(config.table_name.clone()).await;
        Ok(Self::new(config, store))
    }

    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Infallible> {
        Ok(self
            .inbound
            .serve("create-order", &request, |authorization, body, now, _| {
                self.create(authorization, body, now)
            })
            .await)
    }

    /// Decides one request from its `Authorization` header and raw body.
    pub async fn create(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Answer<CreateOrderReply> {
        let request: CreateOrderRequest = match self.inbound.verify(authorization, body, now).await
        {
            Ok(request) => request,
            Err(err) => return Answer::refused(&err),
        };
        if request.skill_id != self.skill_id {
            return Answer::new(
                StatusCode::FORBIDDEN,
                CreateOrderReply::fail("unknown skill"),
                "wrong_skill",
            );
        }
        let at = now.unix_timestamp();
        let order = PlatformOrder {
            order: Order {
                trade_no: new_trade_no(now),
                total_amt: request.total_amt,
                user_token: Some(request.user_token.clone()),
                status: OrderStatus::Created,
                transaction_id: None,
                created_at: at,
                paid_at: None,
                refunded_amt: 0,
                next_check_at: Some(at + crate::domain::due::secs(self.first_check)),
                checks: 0,
                grant: None,
                refunds_succeeded_amt: 0,
            },
            details: request.details.clone(),
            request_key: request_key(&request),
            nonce: NonceClaim {
                nonce: request.nonce_str.clone(),
                body_hash: body_hash(body),
                expires: at + i64::try_from(self.inbound.keys.skew().as_secs() * 2).unwrap_or(360),
            },
        };
        let (trade_no, outcome) = match self.store.create_for_platform(&order, at).await {
            Ok(PlatformCreated::Created(trade_no)) => {
                tracing::info!(
                    trade_no = trade_no.as_str(),
                    total_amt = request.total_amt.get(),
                    "order created for the platform"
                );
                (trade_no, "created")
            }
            Ok(PlatformCreated::Existing(trade_no)) => (trade_no, "duplicate"),
            Ok(PlatformCreated::NonceReused) => {
                return Answer::new(
                    StatusCode::UNAUTHORIZED,
                    CreateOrderReply::fail("replayed nonceStr"),
                    "replay",
                )
            }
            Err(err) => return Answer::internal(&err),
        };
        let concerns = Concerns {
            trade_no: Some(trade_no.as_str().to_owned()),
            ..Concerns::default()
        };
        Answer::ok(CreateOrderReply::success(trade_no), outcome).concerning(concerns)
    }
}
