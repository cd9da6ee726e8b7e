//! The `Authorization` header parser and the `Datetime` parser: never
//! panic, and what parses prints back to a header that parses the same.

#![no_main]

use dingdang::signing::{Authorization, SignDatetime, SignError, MAX_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Authorization::parse(text) {
        Ok(auth) => {
            assert!(text.len() <= MAX_HEADER_LEN);
            let printed = auth.to_string();
            assert_eq!(
                Authorization::parse(&printed),
                Ok(auth.clone()),
                "{printed:?}"
            );
            assert_eq!(auth.datetime.as_str().len(), SignDatetime::LEN);
        }
        Err(SignError::Malformed(reason)) => assert!(!reason.is_empty()),
        Err(other) => panic!("parse gave {other:?}: only Malformed is possible"),
    }
    if let Ok(datetime) = SignDatetime::parse(text) {
        assert_eq!(datetime.as_str(), text);
        assert_eq!(SignDatetime::from_time(datetime.at()), datetime);
    }
});
