//! `protocol::parse` for every message type: never panics, errors have a
//! message, and whatever parses is written back (both revisions) to a body
//! that parses to the same message.

#![no_main]

use std::fmt::Debug;

use dingdang::protocol::{
    parse, to_wire, CreateOrderReply, CreateOrderRequest, OrderItem, OrderQueryReply,
    OrderQueryRequest, RefundNotify, RefundQueryReply, RefundQueryRequest, RefundReply,
    RefundRequest, Reply, Revision, ShipNotify,
};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn check<T: DeserializeOwned + Serialize + PartialEq + Debug>(data: &[u8]) {
    match parse::<T>(data) {
        Ok(message) => {
            let wire = to_wire(&message, Revision::R2019);
            let back: T = parse(&wire)
                .unwrap_or_else(|e| panic!("{message:?} written as {wire:?} fails: {e}"));
            assert_eq!(back, message);
            let _ = to_wire(&message, Revision::R2018);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    check::<ShipNotify>(data);
    check::<Reply>(data);
    check::<OrderQueryRequest>(data);
    check::<OrderQueryReply>(data);
    check::<OrderItem>(data);
    check::<RefundRequest>(data);
    check::<RefundReply>(data);
    check::<RefundQueryRequest>(data);
    check::<RefundQueryReply>(data);
    check::<RefundNotify>(data);
    check::<CreateOrderRequest>(data);
    check::<CreateOrderReply>(data);
});
