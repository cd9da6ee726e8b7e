//! TSK-HMAC-SHA256-BASIC verification with fixed secrets. Input: an
//! `Authorization` value, a newline, then the body. Never panics; a header
//! the signer makes for the body verifies, and not for another body.

#![no_main]

use std::time::Duration;

use dingdang::signing::{HmacSecret, KeyRing, SignError, Signer, Verifier};
use libfuzzer_sys::fuzz_target;
use time::macros::datetime;

fuzz_target!(|data: &[u8]| {
    // The spec's vector instant, so the seed with the vector signature
    // verifies; the second secret is the rotation case.
    let now = datetime!(2018-06-22 10:15:00 UTC);
    let secrets = vec![
        HmacSecret::new("app_secret"),
        HmacSecret::new("rotated-secret"),
    ];
    let keys = KeyRing {
        signer: Signer::Hmac(secrets[0].clone()),
        verifier: Verifier::hmac(secrets),
        skew: Duration::from_secs(180),
    };
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (header, body) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let header = String::from_utf8_lossy(header);

    let _ = keys.verify(Some(&header), body, now);

    let signed = keys.sign(body, now).to_string();
    assert_eq!(
        keys.verify(Some(&signed), body, now).map(|d| d.at()),
        Ok(now)
    );
    let mut other = body.to_vec();
    other.push(b' ');
    assert_eq!(
        keys.verify(Some(&signed), &other, now),
        Err(SignError::BadSignature)
    );
});
