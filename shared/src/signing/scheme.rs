//! Signing and verifying `SigningContent` = body bytes ‖ `Datetime` text.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_lc_rs::digest::{Context, Digest, SHA256};
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};
use time::OffsetDateTime;

use super::keys::{Fingerprint, HmacSecret, RsaPrivateKey, RsaPublicKey};
use super::{Algorithm, Authorization, SignDatetime, SignError};

type HmacSha256 = Hmac<Sha256>;

fn hmac_tag(secret: &HmacSecret, body: &[u8], datetime: &SignDatetime) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.expose())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.update(datetime.as_str().as_bytes());
    mac.finalize().into_bytes().into()
}

/// SHA-256 of `SigningContent`, the message of a TSK-RSA2 signature.
fn content_digest(body: &[u8], datetime: &SignDatetime) -> Digest {
    let mut ctx = Context::new(&SHA256);
    ctx.update(body);
    ctx.update(datetime.as_str().as_bytes());
    ctx.finish()
}

/// How many recent TSK-RSA2 signatures a [`Signer`] remembers.
const RECENT_SIGNATURES: usize = 4;

/// A TSK-RSA2 private key and the signatures it made last.
///
/// RSASSA-PKCS1-v1_5 is deterministic: a signature depends only on the key
/// and the digest of `SigningContent`, so a remembered one is, byte for
/// byte, what signing again would produce. Replies repeat
/// (`{"retCode":"SUCCESS"}`) and `Datetime` has a resolution of one second,
/// so an instance under load pays for the private-key operation (hundreds
/// of microseconds) once per distinct reply and second, not once per reply.
pub struct Rsa2Signer {
    key: RsaPrivateKey,
    recent: Mutex<VecDeque<([u8; 32], Arc<str>)>>,
}

impl Rsa2Signer {
    /// The [`Fingerprint`] of the key (its public half).
    pub fn fingerprint(&self) -> Fingerprint {
        self.key.public_key().fingerprint()
    }

    fn signature(&self, digest: &Digest) -> Arc<str> {
        let mut id = [0u8; 32];
        id.copy_from_slice(digest.as_ref());
        let lock = || self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, sig)) = lock().iter().find(|(d, _)| *d == id) {
            return Arc::clone(sig);
        }
        let pair = self.key.pair();
        let mut sig = vec![0u8; pair.public_modulus_len()];
        pair.sign_digest(&RSA_PKCS1_SHA256, digest, &mut sig)
            .expect("an RSA key pair of 2048 to 8192 bits signs any SHA-256 digest");
        let sig: Arc<str> = STANDARD.encode(sig).into();
        // The lock is not held while signing; another thread may have
        // stored the same signature meanwhile.
        let mut recent = lock();
        if !recent.iter().any(|(d, _)| *d == id) {
            if recent.len() == RECENT_SIGNATURES {
                recent.pop_front();
            }
            recent.push_back((id, Arc::clone(&sig)));
        }
        sig
    }
}

/// Signs what this side sends.
#[derive(Clone)]
pub enum Signer {
    /// TSK-HMAC-SHA256-BASIC with the skill secret.
    Hmac(HmacSecret),
    /// TSK-RSA2 with this side's private key (see [`Signer::rsa2`]).
    Rsa2(Arc<Rsa2Signer>),
}

impl Signer {
    /// A TSK-RSA2 signer. [`RsaPrivateKey`] only holds keys of at least
    /// [`super::MIN_RSA_BITS`] bits.
    pub fn rsa2(key: RsaPrivateKey) -> Self {
        Signer::Rsa2(Arc::new(Rsa2Signer {
            key,
            recent: Mutex::new(VecDeque::with_capacity(RECENT_SIGNATURES)),
        }))
    }

    /// The algorithm this signer produces.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Signer::Hmac(_) => Algorithm::HmacSha256Basic,
            Signer::Rsa2(_) => Algorithm::Rsa2,
        }
    }

    /// The [`Fingerprint`] of the signing key (an RSA key by its public
    /// half), for logs.
    pub fn fingerprint(&self) -> Fingerprint {
        match self {
            Signer::Hmac(secret) => secret.fingerprint(),
            Signer::Rsa2(rsa) => rsa.fingerprint(),
        }
    }

    /// Signs `body` (exactly the bytes that will be sent) at `now`.
    ///
    /// Cannot fail: an [`RsaPrivateKey`] holds a consistent key of 2048 to
    /// 8192 bits, which signs any SHA-256 digest.
    pub fn sign(&self, body: &[u8], now: OffsetDateTime) -> Authorization {
        self.sign_at(body, SignDatetime::from_time(now))
    }

    /// Signs `body` with a given `Datetime` (see [`Signer::sign`]).
    pub fn sign_at(&self, body: &[u8], datetime: SignDatetime) -> Authorization {
        let signature = match self {
            Signer::Hmac(secret) => hex::encode(hmac_tag(secret, body, &datetime)),
            Signer::Rsa2(rsa) => rsa.signature(&content_digest(body, &datetime)).to_string(),
        };
        Authorization {
            algorithm: self.algorithm(),
            datetime,
            signature,
        }
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signer::Hmac(_) => f.write_str("Signer::Hmac(<redacted>)"),
            Signer::Rsa2(rsa) => write!(f, "Signer::Rsa2(<redacted {} bits>)", rsa.key.bits()),
        }
    }
}

#[derive(Clone)]
enum Keys {
    Hmac(Vec<HmacSecret>),
    Rsa2(Vec<RsaPublicKey>),
}

/// Verifies what the other side sends, with one or more keys (rotation: a
/// signature made with any of them is accepted).
#[derive(Clone)]
pub struct Verifier {
    keys: Keys,
}

impl Verifier {
    /// TSK-HMAC-SHA256-BASIC with these secrets. With no secret every
    /// signature is rejected.
    pub fn hmac(secrets: Vec<HmacSecret>) -> Self {
        Self {
            keys: Keys::Hmac(secrets),
        }
    }

    /// TSK-RSA2 with these public keys. With no key every signature is
    /// rejected.
    pub fn rsa2(keys: Vec<RsaPublicKey>) -> Self {
        Self {
            keys: Keys::Rsa2(keys),
        }
    }

    /// The algorithm this verifier accepts.
    pub fn algorithm(&self) -> Algorithm {
        match self.keys {
            Keys::Hmac(_) => Algorithm::HmacSha256Basic,
            Keys::Rsa2(_) => Algorithm::Rsa2,
        }
    }

    /// Number of keys (for logs).
    pub fn key_count(&self) -> usize {
        match &self.keys {
            Keys::Hmac(k) => k.len(),
            Keys::Rsa2(k) => k.len(),
        }
    }

    /// The [`Fingerprint`] of every key, in order.
    pub fn fingerprints(&self) -> Vec<Fingerprint> {
        match &self.keys {
            Keys::Hmac(k) => k.iter().map(HmacSecret::fingerprint).collect(),
            Keys::Rsa2(k) => k.iter().map(RsaPublicKey::fingerprint).collect(),
        }
    }

    /// Verifies the `Authorization` header value over the raw `body`.
    ///
    /// Checks, in order: present ([`SignError::Missing`]), well formed
    /// ([`SignError::Malformed`]), algorithm ([`SignError::WrongAlgorithm`]),
    /// `|now - Datetime| <= skew` ([`SignError::Stale`] /
    /// [`SignError::Future`]), signature ([`SignError::BadSignature`]).
    /// Returns the header's `Datetime`.
    pub fn verify(
        &self,
        header: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
        skew: Duration,
    ) -> Result<SignDatetime, SignError> {
        self.verify_key(header, body, now, skew)
            .map(|(datetime, _)| datetime)
    }

    /// [`Verifier::verify`], also telling which key verified: its
    /// [`Fingerprint`].
    pub fn verify_key(
        &self,
        header: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
        skew: Duration,
    ) -> Result<(SignDatetime, Fingerprint), SignError> {
        let auth = Authorization::parse(header.ok_or(SignError::Missing)?)?;
        let key = self.verify_authorization_key(&auth, body, now, skew)?;
        Ok((auth.datetime, key))
    }

    /// [`Verifier::verify`] for an already parsed header.
    pub fn verify_authorization(
        &self,
        auth: &Authorization,
        body: &[u8],
        now: OffsetDateTime,
        skew: Duration,
    ) -> Result<(), SignError> {
        self.verify_authorization_key(auth, body, now, skew)
            .map(drop)
    }

    /// [`Verifier::verify_authorization`], returning the [`Fingerprint`] of
    /// the key that verified.
    pub fn verify_authorization_key(
        &self,
        auth: &Authorization,
        body: &[u8],
        now: OffsetDateTime,
        skew: Duration,
    ) -> Result<Fingerprint, SignError> {
        let expected = self.algorithm();
        if auth.algorithm != expected {
            return Err(SignError::WrongAlgorithm {
                expected,
                got: auth.algorithm,
            });
        }
        check_clock(&auth.datetime, now, skew)?;
        match &self.keys {
            Keys::Hmac(secrets) => verify_hmac(secrets, &auth.signature, body, &auth.datetime)
                .map(|i| secrets[i].fingerprint()),
            Keys::Rsa2(keys) => verify_rsa2(keys, &auth.signature, body, &auth.datetime)
                .map(|i| keys[i].fingerprint()),
        }
        .ok_or(SignError::BadSignature)
    }
}

fn check_clock(
    datetime: &SignDatetime,
    now: OffsetDateTime,
    skew: Duration,
) -> Result<(), SignError> {
    let skew = time::Duration::try_from(skew).unwrap_or(time::Duration::MAX);
    let age = now - datetime.at();
    if age > skew {
        Err(SignError::Stale)
    } else if -age > skew {
        Err(SignError::Future)
    } else {
        Ok(())
    }
}

fn verify_hmac(
    secrets: &[HmacSecret],
    signature: &str,
    body: &[u8],
    datetime: &SignDatetime,
) -> Option<usize> {
    if signature.len() != 64 {
        return None;
    }
    let given = hex::decode(signature).ok()?;
    // Every secret is tried (no early exit), each comparison constant-time;
    // the first that matches is the one reported.
    let mut matched = None;
    for (i, secret) in secrets.iter().enumerate() {
        let ok: Choice = hmac_tag(secret, body, datetime).ct_eq(given.as_slice());
        if bool::from(ok) && matched.is_none() {
            matched = Some(i);
        }
    }
    matched
}

fn verify_rsa2(
    keys: &[RsaPublicKey],
    signature: &str,
    body: &[u8],
    datetime: &SignDatetime,
) -> Option<usize> {
    let given = STANDARD.decode(signature).ok()?;
    let digest = content_digest(body, datetime);
    keys.iter()
        .position(|key| key.parsed().verify_digest_sig(&digest, &given).is_ok())
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithm", &self.algorithm())
            .field("keys", &format_args!("<{} redacted>", self.key_count()))
            .finish()
    }
}

/// What one side needs: its signer, its verifier for the other side, and
/// the allowed clock skew.
#[derive(Clone)]
pub struct KeyRing {
    /// Signs what this side sends.
    pub signer: Signer,
    /// Verifies what the other side sends.
    pub verifier: Verifier,
    /// Largest accepted `|now - Datetime|`.
    pub skew: Duration,
}

impl KeyRing {
    /// The platform's suggested clock window: 3 minutes.
    pub const DEFAULT_SKEW: Duration = Duration::from_secs(180);

    /// See [`Signer::sign`].
    pub fn sign(&self, body: &[u8], now: OffsetDateTime) -> Authorization {
        self.signer.sign(body, now)
    }

    /// See [`Verifier::verify`]; uses [`KeyRing::skew`].
    pub fn verify(
        &self,
        header: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<SignDatetime, SignError> {
        self.verifier.verify(header, body, now, self.skew)
    }

    /// See [`Verifier::verify_key`]; uses [`KeyRing::skew`].
    pub fn verify_key(
        &self,
        header: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<(SignDatetime, Fingerprint), SignError> {
        self.verifier.verify_key(header, body, now, self.skew)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("signer", &self.signer)
            .field("verifier", &self.verifier)
            .field("skew", &self.skew)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const BODY_123_SIG: &str = "bd29a551948ea1e58303b32bfbf3467fffb6dad7cba3055df69cc8fb12ab5595";
    const SKEW: Duration = KeyRing::DEFAULT_SKEW;

    fn at() -> OffsetDateTime {
        datetime!(2017-07-20 19:35:59 UTC)
    }

    fn header(sig: &str) -> String {
        format!("TSK-HMAC-SHA256-BASIC Datetime=20170720T193559Z, Signature={sig}")
    }

    #[test]
    fn hmac_sign_matches_vector() {
        let signer = Signer::Hmac(HmacSecret::new("app_secret"));
        let auth = signer.sign(b"123", at());
        assert_eq!(auth.signature, BODY_123_SIG);
        assert_eq!(auth.to_string(), header(BODY_123_SIG));
    }

    #[test]
    fn hmac_verify_accepts_vector_and_uppercase() {
        let v = Verifier::hmac(vec![HmacSecret::new("app_secret")]);
        let dt = v
            .verify(Some(&header(BODY_123_SIG)), b"123", at(), SKEW)
            .unwrap();
        assert_eq!(dt.as_str(), "20170720T193559Z");
        let upper = header(&BODY_123_SIG.to_uppercase());
        assert!(v.verify(Some(&upper), b"123", at(), SKEW).is_ok());
    }

    #[test]
    fn hmac_rejects() {
        let v = Verifier::hmac(vec![HmacSecret::new("app_secret")]);
        let h = header(BODY_123_SIG);
        assert_eq!(
            v.verify(Some(&h), b"124", at(), SKEW),
            Err(SignError::BadSignature)
        );
        assert_eq!(
            v.verify(Some(&h), b"123 ", at(), SKEW),
            Err(SignError::BadSignature)
        );
        let other = Verifier::hmac(vec![HmacSecret::new("app_secreT")]);
        assert_eq!(
            other.verify(Some(&h), b"123", at(), SKEW),
            Err(SignError::BadSignature)
        );
        let none = Verifier::hmac(vec![]);
        assert_eq!(
            none.verify(Some(&h), b"123", at(), SKEW),
            Err(SignError::BadSignature)
        );
        assert_eq!(v.verify(None, b"123", at(), SKEW), Err(SignError::Missing));
    }

    #[test]
    fn verify_by_hand_built_authorization_with_bad_encoding() {
        let v = Verifier::hmac(vec![HmacSecret::new("app_secret")]);
        let mut auth = Authorization::parse(&header(BODY_123_SIG)).unwrap();
        auth.signature = "zz".repeat(32);
        assert_eq!(
            v.verify_authorization(&auth, b"123", at(), SKEW),
            Err(SignError::BadSignature)
        );
        auth.signature = BODY_123_SIG[..62].to_owned();
        assert_eq!(
            v.verify_authorization(&auth, b"123", at(), SKEW),
            Err(SignError::BadSignature)
        );
    }

    #[test]
    fn clock_window_edges() {
        let v = Verifier::hmac(vec![HmacSecret::new("app_secret")]);
        let h = header(BODY_123_SIG);
        let one = time::Duration::seconds(1);
        let skew = time::Duration::try_from(SKEW).unwrap();
        assert!(v.verify(Some(&h), b"123", at() + skew, SKEW).is_ok());
        assert!(v.verify(Some(&h), b"123", at() - skew, SKEW).is_ok());
        assert_eq!(
            v.verify(Some(&h), b"123", at() + skew + one, SKEW),
            Err(SignError::Stale)
        );
        assert_eq!(
            v.verify(
                Some(&h),
                b"123",
                at() + skew + time::Duration::nanoseconds(1),
                SKEW
            ),
            Err(SignError::Stale)
        );
        assert_eq!(
            v.verify(Some(&h), b"123", at() - skew - one, SKEW),
            Err(SignError::Future)
        );
        // The clock is checked before the signature.
        assert_eq!(
            v.verify(Some(&h), b"tampered", at() + skew + one, SKEW),
            Err(SignError::Stale)
        );
        assert!(v.verify(Some(&h), b"123", at(), Duration::MAX).is_ok());
        assert!(v.verify(Some(&h), b"123", at(), Duration::ZERO).is_ok());
        assert_eq!(
            v.verify(Some(&h), b"123", at() + one, Duration::ZERO),
            Err(SignError::Stale)
        );
    }

    #[test]
    fn wrong_algorithm_comes_before_clock() {
        let v = Verifier::rsa2(vec![]);
        let h = header(BODY_123_SIG);
        assert_eq!(
            v.verify(Some(&h), b"123", at() + time::Duration::days(1), SKEW),
            Err(SignError::WrongAlgorithm {
                expected: Algorithm::Rsa2,
                got: Algorithm::HmacSha256Basic
            })
        );
        assert_eq!(
            v.verify(Some("TSK-RSA2 nonsense"), b"123", at(), SKEW),
            Err(SignError::Malformed("parameter without '='"))
        );
    }

    #[test]
    fn rotation_with_key_ring() {
        let ring = KeyRing {
            signer: Signer::Hmac(HmacSecret::new("new")),
            verifier: Verifier::hmac(HmacSecret::list("new,old").unwrap()),
            skew: SKEW,
        };
        let auth = ring.sign(b"{}", at());
        assert!(ring.verify(Some(&auth.to_string()), b"{}", at()).is_ok());
        let old = Signer::Hmac(HmacSecret::new("old")).sign(b"{}", at());
        assert!(ring.verify(Some(&old.to_string()), b"{}", at()).is_ok());
        let stranger = Signer::Hmac(HmacSecret::new("other")).sign(b"{}", at());
        assert_eq!(
            ring.verify(Some(&stranger.to_string()), b"{}", at()),
            Err(SignError::BadSignature)
        );
        // Which key verified, by fingerprint.
        let (_, by) = ring
            .verify_key(Some(&old.to_string()), b"{}", at())
            .unwrap();
        assert_eq!(by, HmacSecret::new("old").fingerprint());
        let (_, by) = ring
            .verify_key(Some(&auth.to_string()), b"{}", at())
            .unwrap();
        assert_eq!(by, HmacSecret::new("new").fingerprint());
        assert_eq!(by, ring.signer.fingerprint());
        assert_eq!(
            ring.verifier.fingerprints(),
            vec![
                HmacSecret::new("new").fingerprint(),
                HmacSecret::new("old").fingerprint()
            ]
        );
    }

    #[test]
    fn rsa2_reports_the_verifying_key() {
        let first = crate::signing::parse_private_key(include_str!(
            "../../tests/vectors/platform_private_key.pem"
        ))
        .unwrap();
        let second = crate::signing::parse_private_key(include_str!(
            "../../tests/vectors/second_private_key.pem"
        ))
        .unwrap();
        let verifier = Verifier::rsa2(vec![second.public_key(), first.public_key()]);
        let auth = Signer::rsa2(first.clone()).sign(b"{}", at());
        let (_, by) = verifier
            .verify_key(Some(&auth.to_string()), b"{}", at(), SKEW)
            .unwrap();
        assert_eq!(by, first.public_key().fingerprint());
        assert_eq!(by, Signer::rsa2(first).fingerprint());
    }

    #[test]
    fn rsa2_remembered_signatures_are_the_fresh_ones() {
        let key = crate::signing::parse_private_key(include_str!(
            "../../tests/vectors/platform_private_key.pem"
        ))
        .unwrap();
        let signer = Signer::rsa2(key.clone());
        let verifier = Verifier::rsa2(vec![key.public_key()]);
        let bodies: Vec<String> = (0..RECENT_SIGNATURES + 2)
            .map(|i| format!("{{\"retCode\":\"SUCCESS\",\"n\":{i}}}"))
            .collect();
        // Twice round more bodies than are remembered: every signature,
        // remembered or evicted and made again, is the one a new signer makes.
        for _ in 0..2 {
            for body in &bodies {
                let auth = signer.sign(body.as_bytes(), at());
                assert_eq!(auth, signer.sign(body.as_bytes(), at()));
                assert_eq!(auth, Signer::rsa2(key.clone()).sign(body.as_bytes(), at()));
                verifier
                    .verify(Some(&auth.to_string()), body.as_bytes(), at(), SKEW)
                    .unwrap();
            }
        }
        let Signer::Rsa2(rsa) = &signer else {
            unreachable!()
        };
        assert_eq!(rsa.recent.lock().unwrap().len(), RECENT_SIGNATURES);
        // The next second is other SigningContent, hence another signature.
        let later = at() + time::Duration::seconds(1);
        let next = signer.sign(bodies[0].as_bytes(), later);
        assert_ne!(
            next.signature,
            signer.sign(bodies[0].as_bytes(), at()).signature
        );
        verifier
            .verify(Some(&next.to_string()), bodies[0].as_bytes(), later, SKEW)
            .unwrap();
        // A clone shares what was remembered.
        let clone = signer.clone();
        assert_eq!(clone.sign(bodies[0].as_bytes(), later), next);
    }

    #[test]
    fn debug_is_redacted() {
        let ring = KeyRing {
            signer: Signer::Hmac(HmacSecret::new("s3cr3t-value")),
            verifier: Verifier::hmac(vec![HmacSecret::new("s3cr3t-value")]),
            skew: SKEW,
        };
        let d = format!("{ring:?}");
        assert!(!d.contains("s3cr3t"), "{d}");
        assert!(d.contains("<redacted>"), "{d}");
        assert!(!format!("{ring:#?}").contains("s3cr3t"));
    }
}
