//! The test vectors of the signing spec (copied into `tests/vectors/`) and
//! the verifier's acceptance rules, through the public API only.
//!
//! `second_*` keys are a test-only 2048-bit keypair generated once with
//! `openssl genpkey` for rotation and wrong-key cases.

use std::time::Duration;

use dingdang::signing::{
    parse_private_key, parse_public_keys, Algorithm, Authorization, HmacSecret, KeyRing,
    SignDatetime, SignError, Signer, Verifier,
};
use time::macros::datetime;
use time::OffsetDateTime;

const BODY: &[u8] = include_bytes!("vectors/ship_notify_body.json");
const RSA2_SIGNATURE: &str = include_str!("vectors/ship_notify_rsa2_signature.b64");
const PLATFORM_PRIVATE: &str = include_str!("vectors/platform_private_key.pem");
const PLATFORM_PUBLIC_PEM: &str = include_str!("vectors/platform_public_key.pem");
const PLATFORM_PUBLIC_BARE: &str = include_str!("vectors/platform_public_key.bare.txt");
const SECOND_PRIVATE: &str = include_str!("vectors/second_private_key.pem");
const SECOND_PUBLIC: &str = include_str!("vectors/second_public_key.pem");

const DATETIME: &str = "20180622T101500Z";
const HMAC_SIGNATURE: &str = "11646d8ae6846de9f82245496c6c3dc603e12015f52316ee7c3900e27f9b500b";
const SKEW: Duration = Duration::from_secs(180);

fn now() -> OffsetDateTime {
    datetime!(2018-06-22 10:15:00 UTC)
}

fn hmac_header(sig: &str) -> String {
    format!("TSK-HMAC-SHA256-BASIC Datetime={DATETIME}, Signature={sig}")
}

fn rsa2_header() -> String {
    format!(
        "TSK-RSA2 Datetime={DATETIME}, Signature={}",
        RSA2_SIGNATURE.trim()
    )
}

fn hmac_verifier() -> Verifier {
    Verifier::hmac(vec![HmacSecret::new("app_secret")])
}

fn platform_verifier() -> Verifier {
    Verifier::rsa2(parse_public_keys(PLATFORM_PUBLIC_PEM).unwrap())
}

fn flip_one_byte(body: &[u8]) -> Vec<u8> {
    let mut changed = body.to_vec();
    // "totalAmt":990 -> "totalAmt":991
    let at = changed.windows(3).position(|w| w == b"990").unwrap() + 2;
    changed[at] = b'1';
    changed
}

#[test]
fn vector_body_is_148_bytes() {
    assert_eq!(BODY.len(), 148);
    assert_ne!(BODY.last(), Some(&b'\n'));
}

#[test]
fn hmac_vector_signs() {
    let signer = Signer::Hmac(HmacSecret::new("app_secret"));
    let auth = signer.sign(BODY, now());
    assert_eq!(auth.algorithm, Algorithm::HmacSha256Basic);
    assert_eq!(auth.datetime.as_str(), DATETIME);
    assert_eq!(auth.signature, HMAC_SIGNATURE);
    assert_eq!(auth.to_string(), hmac_header(HMAC_SIGNATURE));
}

#[test]
fn hmac_vector_verifies() {
    let dt = hmac_verifier()
        .verify(Some(&hmac_header(HMAC_SIGNATURE)), BODY, now(), SKEW)
        .unwrap();
    assert_eq!(dt, SignDatetime::parse(DATETIME).unwrap());
}

#[test]
fn hmac_short_vector() {
    let at = datetime!(2017-07-20 19:35:59 UTC);
    let auth = Signer::Hmac(HmacSecret::new("app_secret")).sign(b"123", at);
    assert_eq!(
        auth.to_string(),
        "TSK-HMAC-SHA256-BASIC Datetime=20170720T193559Z, \
         Signature=bd29a551948ea1e58303b32bfbf3467fffb6dad7cba3055df69cc8fb12ab5595"
    );
    assert!(hmac_verifier()
        .verify(Some(&auth.to_string()), b"123", at, SKEW)
        .is_ok());
}

#[test]
fn rsa2_vector_verifies_with_pem_and_bare_keys() {
    for keys in [PLATFORM_PUBLIC_PEM, PLATFORM_PUBLIC_BARE] {
        let verifier = Verifier::rsa2(parse_public_keys(keys).unwrap());
        let dt = verifier
            .verify(Some(&rsa2_header()), BODY, now(), SKEW)
            .unwrap();
        assert_eq!(dt.as_str(), DATETIME);
    }
}

#[test]
fn rsa2_signing_reproduces_vector() {
    let signer = Signer::rsa2(parse_private_key(PLATFORM_PRIVATE).unwrap());
    assert_eq!(signer.algorithm(), Algorithm::Rsa2);
    let auth = signer.sign(BODY, now());
    assert_eq!(auth.signature, RSA2_SIGNATURE.trim());
    assert_eq!(auth.to_string(), rsa2_header());
}

#[test]
fn wrong_key_rejected() {
    let h = hmac_header(HMAC_SIGNATURE);
    let wrong = Verifier::hmac(vec![HmacSecret::new("app_secret2")]);
    assert_eq!(
        wrong.verify(Some(&h), BODY, now(), SKEW),
        Err(SignError::BadSignature)
    );

    let wrong = Verifier::rsa2(parse_public_keys(SECOND_PUBLIC).unwrap());
    assert_eq!(
        wrong.verify(Some(&rsa2_header()), BODY, now(), SKEW),
        Err(SignError::BadSignature)
    );
}

#[test]
fn changed_body_rejected() {
    let changed = flip_one_byte(BODY);
    assert_eq!(changed.len(), BODY.len());
    assert_eq!(
        hmac_verifier().verify(Some(&hmac_header(HMAC_SIGNATURE)), &changed, now(), SKEW),
        Err(SignError::BadSignature)
    );
    assert_eq!(
        platform_verifier().verify(Some(&rsa2_header()), &changed, now(), SKEW),
        Err(SignError::BadSignature)
    );
    // Re-serialising the same JSON changes the bytes and must not verify.
    let reserialised =
        serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(BODY).unwrap())
            .unwrap();
    assert_eq!(
        hmac_verifier().verify(
            Some(&hmac_header(HMAC_SIGNATURE)),
            &reserialised,
            now(),
            SKEW
        ),
        Err(SignError::BadSignature)
    );
}

#[test]
fn hmac_rotation() {
    let ring = KeyRing {
        signer: Signer::Hmac(HmacSecret::new("new_secret")),
        verifier: Verifier::hmac(HmacSecret::list("new_secret, app_secret").unwrap()),
        skew: SKEW,
    };
    // The second (older) secret still verifies.
    assert!(ring
        .verify(Some(&hmac_header(HMAC_SIGNATURE)), BODY, now())
        .is_ok());
    // The first signs.
    let auth = ring.sign(BODY, now());
    assert_ne!(auth.signature, HMAC_SIGNATURE);
    assert!(ring.verify(Some(&auth.to_string()), BODY, now()).is_ok());
    assert_eq!(
        hmac_verifier().verify(Some(&auth.to_string()), BODY, now(), SKEW),
        Err(SignError::BadSignature)
    );
}

#[test]
fn rsa2_rotation() {
    let keys = parse_public_keys(&format!("{SECOND_PUBLIC}\n{PLATFORM_PUBLIC_PEM}")).unwrap();
    assert_eq!(keys.len(), 2);
    let ring = KeyRing {
        signer: Signer::rsa2(parse_private_key(SECOND_PRIVATE).unwrap()),
        verifier: Verifier::rsa2(keys),
        skew: SKEW,
    };
    assert!(ring.verify(Some(&rsa2_header()), BODY, now()).is_ok());
    let auth = ring.sign(BODY, now());
    assert_ne!(auth.signature, RSA2_SIGNATURE.trim());
    assert!(ring.verify(Some(&auth.to_string()), BODY, now()).is_ok());
    assert_eq!(
        platform_verifier().verify(Some(&auth.to_string()), BODY, now(), SKEW),
        Err(SignError::BadSignature)
    );
}

#[test]
fn clock_window() {
    let skew = time::Duration::try_from(SKEW).unwrap();
    let one = time::Duration::seconds(1);
    let h = hmac_header(HMAC_SIGNATURE);
    let v = hmac_verifier();
    assert!(v.verify(Some(&h), BODY, now() + skew, SKEW).is_ok());
    assert!(v.verify(Some(&h), BODY, now() - skew, SKEW).is_ok());
    assert_eq!(
        v.verify(Some(&h), BODY, now() + skew + one, SKEW),
        Err(SignError::Stale)
    );
    assert_eq!(
        v.verify(Some(&h), BODY, now() - skew - one, SKEW),
        Err(SignError::Future)
    );

    let v = platform_verifier();
    let h = rsa2_header();
    assert!(v.verify(Some(&h), BODY, now() + skew, SKEW).is_ok());
    assert_eq!(
        v.verify(Some(&h), BODY, now() + skew + one, SKEW),
        Err(SignError::Stale)
    );
    assert_eq!(
        v.verify(Some(&h), BODY, now() - skew - one, SKEW),
        Err(SignError::Future)
    );
}

#[test]
fn wrong_algorithm() {
    assert_eq!(
        hmac_verifier().verify(Some(&rsa2_header()), BODY, now(), SKEW),
        Err(SignError::WrongAlgorithm {
            expected: Algorithm::HmacSha256Basic,
            got: Algorithm::Rsa2
        })
    );
    assert_eq!(
        platform_verifier().verify(Some(&hmac_header(HMAC_SIGNATURE)), BODY, now(), SKEW),
        Err(SignError::WrongAlgorithm {
            expected: Algorithm::Rsa2,
            got: Algorithm::HmacSha256Basic
        })
    );
}

#[test]
fn missing_and_malformed_headers() {
    let v = hmac_verifier();
    assert_eq!(v.verify(None, BODY, now(), SKEW), Err(SignError::Missing));
    let sig = format!("Signature={HMAC_SIGNATURE}");
    let dt = format!("Datetime={DATETIME}");
    for header in [
        String::new(),
        "garbage".to_owned(),
        "TSK-HMAC-SHA256-BASIC".to_owned(),
        format!("TSK-HMAC-SHA256-BASIC {dt}"),
        format!("TSK-HMAC-SHA256-BASIC {sig}"),
        format!("TSK-HMAC-SHA256-BASIC Datetime=20181322T101500Z, {sig}"),
        format!("TSK-HMAC-SHA256-BASIC Datetime=2018-06-22T10:15:00Z, {sig}"),
        format!("TSK-HMAC-SHA256-BASIC {dt}, {sig}, {sig}"),
        format!("TSK-HMAC-SHA256-BASIC {dt}, {dt}, {sig}"),
        format!("TSK-HMAC-SHA256-BASIC {dt}, {sig}, Extra=1"),
        format!("TSK-HMAC-SHA256-BASIC {dt}, Signature="),
        format!("HMAC-SHA256 {dt}, {sig}"),
        format!("TSK-HMAC-SHA256-BASIC {dt}, {sig}{}", " ".repeat(5000)),
    ] {
        assert!(
            matches!(
                v.verify(Some(&header), BODY, now(), SKEW),
                Err(SignError::Malformed(_))
            ),
            "{header:?}"
        );
    }
}

#[test]
fn authorization_round_trips() {
    let a = Authorization::parse(&rsa2_header()).unwrap();
    assert_eq!(a.algorithm, Algorithm::Rsa2);
    assert_eq!(a.to_string(), rsa2_header());
}

#[test]
fn debug_output_has_no_secrets() {
    let private = parse_private_key(PLATFORM_PRIVATE).unwrap();
    let rsa_ring = KeyRing {
        signer: Signer::rsa2(private),
        verifier: platform_verifier(),
        skew: SKEW,
    };
    let hmac_ring = KeyRing {
        signer: Signer::Hmac(HmacSecret::new("app_secret")),
        verifier: hmac_verifier(),
        skew: SKEW,
    };
    let secret = HmacSecret::new("app_secret");
    for debug in [
        format!("{rsa_ring:?}"),
        format!("{rsa_ring:#?}"),
        format!("{hmac_ring:?}"),
        format!("{:?}", hmac_ring.signer),
        format!("{secret:?}"),
        format!("{:?}", HmacSecret::list("app_secret,other").unwrap()),
    ] {
        assert!(!debug.contains("app_secret"), "{debug}");
        assert!(!debug.contains("BigUint"), "{debug}");
        // No long digit runs (bignum limbs) either.
        let longest_digits = debug
            .split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max()
            .unwrap_or(0);
        assert!(longest_digits < 10, "{debug}");
    }
}
