//! Request and reply signing of the Dingdang skill platform (TSK).
//!
//! `SigningContent` = raw body bytes immediately followed by the `Datetime`
//! text; TSK-HMAC-SHA256-BASIC signs it with HMAC-SHA256 (lowercase hex),
//! TSK-RSA2 with RSASSA-PKCS1-v1_5/SHA-256 (base64). No I/O here.
//!
//! The header is `Authorization: <ALG> Datetime=<YYYYMMDDTHHMMSSZ>, Signature=<sig>`.
//! A [`Verifier`] checks, in this order: header present ([`SignError::Missing`]),
//! well formed ([`SignError::Malformed`]), algorithm ([`SignError::WrongAlgorithm`]),
//! clock window ([`SignError::Stale`] / [`SignError::Future`]) and finally the
//! signature ([`SignError::BadSignature`]) against every configured key
//! (key rotation: any key may match). Bodies are verified exactly as received,
//! never re-serialised.

mod header;
mod keys;
mod scheme;

pub use header::{Algorithm, Authorization, SignDatetime, UnknownAlgorithm, MAX_HEADER_LEN};
pub use keys::{
    parse_private_key, parse_public_keys, Fingerprint, HmacSecret, KeyError, RsaPrivateKey,
    RsaPublicKey, MAX_RSA_BITS, MIN_RSA_BITS,
};
pub use scheme::{KeyRing, Rsa2Signer, Signer, Verifier};

/// Why a request or reply signature was not accepted.
///
/// The messages are short and safe to show to the caller: they never contain
/// the signature, the body or any key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// No `Authorization` header.
    #[error("missing Authorization")]
    Missing,
    /// The header does not follow the TSK layout; the reason is for logs.
    #[error("malformed Authorization")]
    Malformed(&'static str),
    /// The header names the other algorithm than the one this side verifies.
    #[error("wrong signing algorithm")]
    WrongAlgorithm {
        /// The algorithm of the verifier.
        expected: Algorithm,
        /// The algorithm the header named.
        got: Algorithm,
    },
    /// `Datetime` is further in the past than the allowed clock skew.
    #[error("Datetime too old")]
    Stale,
    /// `Datetime` is further in the future than the allowed clock skew.
    #[error("Datetime in the future")]
    Future,
    /// No configured key produces this signature over this body.
    #[error("bad signature")]
    BadSignature,
}

impl SignError {
    /// The internal reason of a [`SignError::Malformed`] (for logs), or the
    /// Display message otherwise. Never contains header or key material.
    pub fn reason(&self) -> &'static str {
        match self {
            SignError::Missing => "missing Authorization",
            SignError::Malformed(reason) => reason,
            SignError::WrongAlgorithm { .. } => "wrong signing algorithm",
            SignError::Stale => "Datetime too old",
            SignError::Future => "Datetime in the future",
            SignError::BadSignature => "bad signature",
        }
    }
}

impl From<UnknownAlgorithm> for SignError {
    fn from(_: UnknownAlgorithm) -> Self {
        SignError::Malformed("unknown algorithm")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_error_messages_are_short() {
        let all = [
            SignError::Missing,
            SignError::Malformed("x"),
            SignError::WrongAlgorithm {
                expected: Algorithm::Rsa2,
                got: Algorithm::HmacSha256Basic,
            },
            SignError::Stale,
            SignError::Future,
            SignError::BadSignature,
        ];
        for e in all {
            assert!(e.to_string().len() <= 32, "{e}");
        }
        assert_eq!(
            SignError::Malformed("x").to_string(),
            "malformed Authorization"
        );
        assert_eq!(SignError::Malformed("x").reason(), "x");
    }
}
