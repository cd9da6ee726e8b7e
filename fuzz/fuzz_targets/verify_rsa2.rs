//! TSK-RSA2 verification with fixed test keys (shared/tests/vectors).
//! Input: an `Authorization` value, a newline, then the body. Never panics;
//! a signature that verifies does not verify for another body. (Signing is
//! left to the unit tests: one RSA signature costs more than a thousand
//! fuzz inputs.)

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use dingdang::signing::{
    parse_private_key, parse_public_keys, KeyRing, SignError, Signer, Verifier,
};
use libfuzzer_sys::fuzz_target;
use time::macros::datetime;

fn keys() -> &'static KeyRing {
    static KEYS: OnceLock<KeyRing> = OnceLock::new();
    KEYS.get_or_init(|| {
        let private = parse_private_key(include_str!(
            "../../shared/tests/vectors/platform_private_key.pem"
        ))
        .unwrap();
        let mut public = parse_public_keys(include_str!(
            "../../shared/tests/vectors/platform_public_key.pem"
        ))
        .unwrap();
        public.extend(
            parse_public_keys(include_str!(
                "../../shared/tests/vectors/second_public_key.pem"
            ))
            .unwrap(),
        );
        KeyRing {
            signer: Signer::rsa2(private),
            verifier: Verifier::rsa2(public),
            skew: Duration::from_secs(180),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let keys = keys();
    let now = datetime!(2018-06-22 10:15:00 UTC);
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (header, body) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let header = String::from_utf8_lossy(header);

    if keys.verify(Some(&header), body, now).is_ok() {
        let mut other = body.to_vec();
        other.push(b' ');
        assert_eq!(
            keys.verify(Some(&header), &other, now),
            Err(SignError::BadSignature)
        );
    }
});
