//! End-to-end tests: the real handlers over HTTP against a local
//! DynamoDB-compatible server (moto). One binary, one app per test.

mod ambiguous_refunds;
mod content_type;
mod corpus;
mod create_order;
mod entitlements;
mod faults;
mod metrics;
mod one_order_per_payment;
mod orderquery_replies;
mod orders;
mod reconcile;
mod reconcile_scale;
mod refund_ledger;
mod refund_notify;
mod refunds;
mod revision_2019;
mod round_trips;
mod scenarios;
mod secret_keys;
mod ship;
mod ship_rejections;
mod storm;
mod stream_filter;
mod unmatched_ship;
