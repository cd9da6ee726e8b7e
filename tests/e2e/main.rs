//! End-to-end tests: the real handlers over HTTP against a local
//! DynamoDB-compatible server (moto). One binary, one app per test.

mod corpus;
mod faults;
mod metrics;
mod orders;
mod round_trips;
mod scenarios;
mod ship;
mod ship_rejections;
mod storm;
