//! Key material from configuration text: HMAC secrets, RSA public and
//! private keys (PEM or the platform's bare base64 form).
//!
//! RSA keys are parsed once, at start-up, into aws-lc-rs objects, so a
//! request only pays for the RSA operation itself.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::PublicKey as LcRsaPublicKey;
use aws_lc_rs::signature::{
    ParsedPublicKey, RsaKeyPair, RsaParameters, RSA_PKCS1_2048_8192_SHA256,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use der::Decode as _;

/// Smallest RSA modulus accepted, in bits (the platform uses 2048-bit keys).
pub const MIN_RSA_BITS: usize = 2048;

/// Largest RSA modulus accepted, in bits (what aws-lc signs and verifies).
pub const MAX_RSA_BITS: usize = 8192;

/// Why key text was rejected. Messages never contain key material; `index`
/// is the 1-based position of the offending key in the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text holds no key at all.
    #[error("no key given")]
    Empty,
    /// An entry of a comma-separated secret list is empty.
    #[error("HMAC secret {0} is empty")]
    EmptySecret(usize),
    /// A key could not be decoded.
    #[error("key {index}: {reason}")]
    Invalid {
        /// 1-based position of the key.
        index: usize,
        /// What is wrong, without any key material.
        reason: &'static str,
    },
    /// An RSA public key is smaller than [`MIN_RSA_BITS`] (a private key
    /// that is too small or too large is [`KeyError::Invalid`]).
    #[error("key {index}: RSA key of {bits} bits, at least 2048 required")]
    TooSmall {
        /// 1-based position of the key.
        index: usize,
        /// Modulus size in bits.
        bits: usize,
    },
    /// The private key text holds more than one key.
    #[error("expected exactly one private key")]
    NotOne,
}

/// A short, one-way name of a key, for logs and metrics: the first 8 bytes
/// of the SHA-256 of the key's canonical bytes (an HMAC secret's bytes, an
/// RSA public key's SubjectPublicKeyInfo DER; a private key is named by its
/// public half), as 16 lowercase hex digits. It names a key without
/// revealing it; compute it by hand with
/// `printf %s "$SECRET" | sha256sum | cut -c1-16` or
/// `openssl pkey -pubin -in key.pem -outform DER | sha256sum | cut -c1-16`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 8]);

impl Fingerprint {
    /// The fingerprint of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(bytes);
        let mut short = [0u8; 8];
        short.copy_from_slice(&digest[..8]);
        Self(short)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A TSK-HMAC-SHA256-BASIC skill secret. Debug output is redacted.
#[derive(Clone)]
pub struct HmacSecret(Vec<u8>);

impl HmacSecret {
    /// The secret's bytes (the UTF-8 bytes of the configured text).
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(secret.into())
    }

    /// Parses a comma-separated list of secrets (surrounding whitespace
    /// trimmed); none may be empty and there must be at least one. The first
    /// is the one to sign with, all of them verify (rotation).
    pub fn list(text: &str) -> Result<Vec<HmacSecret>, KeyError> {
        if text.trim().is_empty() {
            return Err(KeyError::Empty);
        }
        text.split(',')
            .enumerate()
            .map(|(i, s)| {
                let s = s.trim();
                if s.is_empty() {
                    Err(KeyError::EmptySecret(i + 1))
                } else {
                    Ok(HmacSecret::new(s))
                }
            })
            .collect()
    }

    /// The secret's [`Fingerprint`].
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.0)
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacSecret(<redacted>)")
    }
}

/// Undoes what environment variables do to PEM text: literal `\n` (and
/// `\r`) sequences become line breaks, and each line is trimmed.
fn normalise(text: &str) -> String {
    let text = text.replace("\\r", "").replace("\\n", "\n");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// One PEM block: its label and the DER bytes of its body.
struct PemBlock {
    label: String,
    der: Vec<u8>,
}

fn invalid(index: usize, reason: &'static str) -> KeyError {
    KeyError::Invalid { index, reason }
}

/// Splits normalised text into PEM blocks. Only whitespace and commas may
/// separate them. Bodies are decoded with the standard base64 alphabet,
/// whatever their line width.
fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, KeyError> {
    const BEGIN: &str = "-----BEGIN ";
    let mut blocks = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.is_empty() {
            return Ok(blocks);
        }
        let index = blocks.len() + 1;
        let after_begin = rest
            .strip_prefix(BEGIN)
            .ok_or(invalid(index, "unexpected text outside PEM blocks"))?;
        let (label, after_label) = after_begin
            .split_once("-----")
            .ok_or(invalid(index, "bad PEM BEGIN line"))?;
        let end = format!("-----END {label}-----");
        let (body, after_end) = after_label
            .split_once(end.as_str())
            .ok_or(invalid(index, "PEM END line missing"))?;
        if body.contains("-----") {
            return Err(invalid(index, "PEM END line missing"));
        }
        if body.contains(':') {
            return Err(invalid(index, "PEM headers (encrypted keys) not supported"));
        }
        let body: String = body.split_whitespace().collect();
        let der = STANDARD
            .decode(body)
            .map_err(|_| invalid(index, "invalid base64 in PEM body"))?;
        blocks.push(PemBlock {
            label: label.to_owned(),
            der,
        });
        rest = after_end;
    }
}

/// Checks that `der` is exactly one DER value: aws-lc's private-key parsers
/// (PKCS#8 and PKCS#1) stop at the end of the key and ignore what follows.
fn single_der_value(index: usize, der: &[u8]) -> Result<(), KeyError> {
    der::asn1::AnyRef::from_der(der)
        .map(drop)
        .map_err(|_| invalid(index, "not a single DER value"))
}

/// An RSA public key of at least [`MIN_RSA_BITS`] bits, parsed once for
/// TSK-RSA2 verification (RSASSA-PKCS1-v1_5 with SHA-256). Made by
/// [`parse_public_keys`] or [`RsaPrivateKey::public_key`]. Two keys are
/// equal when their SubjectPublicKeyInfo encodings are.
#[derive(Clone)]
pub struct RsaPublicKey {
    key: ParsedPublicKey,
    spki: Box<[u8]>,
    bits: usize,
}

impl RsaPublicKey {
    /// Parses SPKI (RFC 5280, algorithm rsaEncryption) or PKCS#1
    /// `RSAPublicKey` (RFC 8017) DER, exactly: the bytes must be the
    /// canonical encoding of the key, with nothing after it.
    fn from_der(index: usize, der: &[u8]) -> Result<Self, KeyError> {
        let not_rsa = || invalid(index, "not an RSA public key");
        // Accepts both encodings and runs aws-lc's key checks. It also takes
        // an RSASSA-PSS SPKI and ignores trailing bytes: the comparison with
        // the canonical encodings below refuses those.
        let pkcs1 = LcRsaPublicKey::from_der(der).map_err(|_| not_rsa())?;
        let bits = RsaParameters::public_modulus_len(pkcs1.as_ref()).map_err(|_| not_rsa())?;
        let bits = usize::try_from(bits).map_err(|_| not_rsa())?;
        if bits < MIN_RSA_BITS {
            return Err(KeyError::TooSmall { index, bits });
        }
        if bits > MAX_RSA_BITS {
            return Err(invalid(index, "RSA key over 8192 bits"));
        }
        let key = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pkcs1.as_ref())
            .map_err(|_| not_rsa())?;
        let spki: Box<[u8]> = key.as_der().map_err(|_| not_rsa())?.as_ref().into();
        if der != &*spki && der != pkcs1.as_ref() {
            return Err(invalid(index, "not a plain RSA public key in DER"));
        }
        Ok(Self { key, spki, bits })
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// The key as SubjectPublicKeyInfo DER (the platform's bare form is the
    /// standard base64 of these bytes).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The key's [`Fingerprint`] (of its SubjectPublicKeyInfo DER).
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.spki)
    }

    pub(crate) fn parsed(&self) -> &ParsedPublicKey {
        &self.key
    }
}

impl PartialEq for RsaPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki == other.spki
    }
}

impl Eq for RsaPublicKey {}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaPublicKey({} bits)", self.bits)
    }
}

/// An RSA private key of at least [`MIN_RSA_BITS`] bits, for TSK-RSA2
/// signatures. Made by [`parse_private_key`]. Debug output is redacted.
#[derive(Clone)]
pub struct RsaPrivateKey {
    pair: RsaKeyPair,
    bits: usize,
}

impl RsaPrivateKey {
    /// Parses PKCS#8 (`PrivateKeyInfo`) or PKCS#1 (`RSAPrivateKey`) DER.
    /// aws-lc checks the key's consistency and accepts 2048 to 8192 bits.
    fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        single_der_value(1, der)?;
        let rejected = |e: aws_lc_rs::error::KeyRejected| match e.description_() {
            "TooSmall" => invalid(1, "RSA private key under 2048 bits"),
            "TooLarge" => invalid(1, "RSA private key over 8192 bits"),
            _ => invalid(1, "not an RSA private key"),
        };
        // A PKCS#8 structure starts with a version INTEGER followed by the
        // algorithm SEQUENCE, PKCS#1 with two INTEGERs, so at most one of the
        // two parsers can recognise the encoding; report that one's reason.
        let pair = match RsaKeyPair::from_pkcs8(der) {
            Ok(pair) => pair,
            Err(pkcs8) => RsaKeyPair::from_der(der).map_err(|pkcs1| {
                if pkcs8.description_() == "InvalidEncoding" {
                    rejected(pkcs1)
                } else {
                    rejected(pkcs8)
                }
            })?,
        };
        let public = aws_lc_rs::signature::KeyPair::public_key(&pair);
        let bits = RsaParameters::public_modulus_len(public.as_ref())
            .ok()
            .and_then(|bits| usize::try_from(bits).ok())
            .ok_or(invalid(1, "not an RSA private key"))?;
        Ok(Self { pair, bits })
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// The matching public key.
    pub fn public_key(&self) -> RsaPublicKey {
        RsaPublicKey::from_der(
            1,
            aws_lc_rs::signature::KeyPair::public_key(&self.pair).as_ref(),
        )
        .expect("the public half of a valid RSA key pair is a valid public key")
    }

    pub(crate) fn pair(&self) -> &RsaKeyPair {
        &self.pair
    }
}

impl fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaPrivateKey(<redacted {} bits>)", self.bits())
    }
}

fn public_from_bare(index: usize, b64: &str) -> Result<RsaPublicKey, KeyError> {
    let der = STANDARD
        .decode(b64)
        .map_err(|_| invalid(index, "invalid base64"))?;
    RsaPublicKey::from_der(index, &der)
}

/// Parses one or more RSA public keys: PEM blocks labelled `PUBLIC KEY` or
/// `RSA PUBLIC KEY` (either label may hold SPKI or PKCS#1 DER), or the
/// platform's bare form (standard base64 of the SPKI DER, as a PEM body
/// without BEGIN/END lines and newlines) separated by commas or whitespace.
/// Literal `\n` sequences are accepted in place of line breaks. Keys must
/// have [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits.
pub fn parse_public_keys(text: &str) -> Result<Vec<RsaPublicKey>, KeyError> {
    let text = normalise(text);
    let keys = if text.contains("-----BEGIN") {
        pem_blocks(&text)?
            .into_iter()
            .enumerate()
            .map(|(i, block)| {
                let index = i + 1;
                match block.label.as_str() {
                    "PUBLIC KEY" | "RSA PUBLIC KEY" => RsaPublicKey::from_der(index, &block.der),
                    _ => Err(invalid(index, "unsupported PEM label for a public key")),
                }
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        let mut keys = Vec::new();
        for entry in text.split(',') {
            let tokens: Vec<&str> = entry.split_whitespace().collect();
            // A bare key wrapped over several lines is still one key.
            if tokens.len() > 1 {
                if let Ok(key) = public_from_bare(keys.len() + 1, &tokens.concat()) {
                    keys.push(key);
                    continue;
                }
            }
            for token in tokens {
                keys.push(public_from_bare(keys.len() + 1, token)?);
            }
        }
        keys
    };
    if keys.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok(keys)
}

/// Parses one RSA private key: a PEM block labelled `PRIVATE KEY` or
/// `RSA PRIVATE KEY` (either label may hold PKCS#8 or PKCS#1 DER), or bare
/// standard base64 of the PKCS#8 (or PKCS#1) DER. Literal `\n` sequences are
/// accepted in place of line breaks. Encrypted keys are not supported. The
/// key must have [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits.
pub fn parse_private_key(text: &str) -> Result<RsaPrivateKey, KeyError> {
    let text = normalise(text);
    if text.is_empty() {
        return Err(KeyError::Empty);
    }
    let key = if text.contains("-----BEGIN") {
        let mut blocks = pem_blocks(&text)?;
        if blocks.len() != 1 {
            return Err(KeyError::NotOne);
        }
        let block = blocks.remove(0);
        match block.label.as_str() {
            "PRIVATE KEY" | "RSA PRIVATE KEY" => RsaPrivateKey::from_der(&block.der)?,
            "ENCRYPTED PRIVATE KEY" => {
                return Err(invalid(1, "encrypted private keys are not supported"))
            }
            _ => return Err(invalid(1, "unsupported PEM label for a private key")),
        }
    } else {
        let b64: String = text.split_whitespace().collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|_| invalid(1, "invalid base64"))?;
        RsaPrivateKey::from_der(&der)?
    };
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUB_PEM: &str = include_str!("../../tests/vectors/platform_public_key.pem");
    const PUB_BARE: &str = include_str!("../../tests/vectors/platform_public_key.bare.txt");
    const PRIV_PEM: &str = include_str!("../../tests/vectors/platform_private_key.pem");
    const PUB2_PEM: &str = include_str!("../../tests/vectors/second_public_key.pem");
    const PUB2_PKCS1: &str = include_str!("../../tests/vectors/second_public_key.pkcs1.pem");
    const PRIV2_PKCS1: &str = include_str!("../../tests/vectors/second_private_key.pkcs1.pem");
    const PRIV2_PKCS8: &str = include_str!("../../tests/vectors/second_private_key.pem");

    /// The base64 body of a PEM text, on one line.
    fn pem_body(pem: &str) -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    fn platform_key() -> RsaPublicKey {
        parse_public_keys(PUB_PEM).unwrap().remove(0)
    }

    #[test]
    fn secret_list() {
        let list = HmacSecret::list(" new , old ").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].expose(), b"new");
        assert_eq!(list[1].expose(), b"old");
        assert_eq!(HmacSecret::list("one").unwrap().len(), 1);
        assert_eq!(HmacSecret::list("").unwrap_err(), KeyError::Empty);
        assert_eq!(HmacSecret::list("  ").unwrap_err(), KeyError::Empty);
        assert_eq!(
            HmacSecret::list("a,,b").unwrap_err(),
            KeyError::EmptySecret(2)
        );
        assert_eq!(
            HmacSecret::list("a, ").unwrap_err(),
            KeyError::EmptySecret(2)
        );
        assert_eq!(
            HmacSecret::list(",a").unwrap_err(),
            KeyError::EmptySecret(1)
        );
    }

    #[test]
    fn fingerprints() {
        // printf %s app_secret | sha256sum | cut -c1-16
        let fp = HmacSecret::new("app_secret").fingerprint();
        assert_eq!(fp.to_string().len(), 16);
        use sha2::Digest as _;
        let full = hex::encode(sha2::Sha256::digest(b"app_secret"));
        assert_eq!(fp.to_string(), full[..16]);
        assert!(!fp.to_string().contains("app_secret"));
        // A public key: the SPKI DER, whatever the text form.
        let key = platform_key();
        let full = hex::encode(sha2::Sha256::digest(key.spki_der()));
        assert_eq!(key.fingerprint().to_string(), full[..16]);
        let pkcs1 = parse_public_keys(PUB2_PKCS1).unwrap().remove(0);
        let spki = parse_public_keys(PUB2_PEM).unwrap().remove(0);
        assert_eq!(pkcs1.fingerprint(), spki.fingerprint());
        assert_ne!(key.fingerprint(), spki.fingerprint());
        assert_eq!(
            parse_private_key(PRIV_PEM)
                .unwrap()
                .public_key()
                .fingerprint(),
            key.fingerprint()
        );
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = HmacSecret::new("app_secret");
        assert_eq!(format!("{s:?}"), "HmacSecret(<redacted>)");
        assert!(!format!("{:?}", HmacSecret::list("x1y2z3").unwrap()).contains("x1y2z3"));
    }

    #[test]
    fn public_pem_and_bare_agree() {
        let pem = parse_public_keys(PUB_PEM).unwrap();
        let bare = parse_public_keys(PUB_BARE).unwrap();
        assert_eq!(pem.len(), 1);
        assert_eq!(pem, bare);
        assert_eq!(pem[0].bits(), 2048);
        assert_eq!(STANDARD.encode(pem[0].spki_der()), PUB_BARE.trim());
    }

    #[test]
    fn public_env_forms() {
        let key = platform_key();
        let escaped = PUB_PEM.trim_end().replace('\n', "\\n");
        assert_eq!(parse_public_keys(&escaped).unwrap(), vec![key.clone()]);
        let crlf = PUB_PEM.replace('\n', "\r\n");
        assert_eq!(parse_public_keys(&crlf).unwrap(), vec![key.clone()]);
        let indented = PUB_PEM.replace('\n', "\n    ");
        assert_eq!(parse_public_keys(&indented).unwrap(), vec![key.clone()]);
        // PEM with the body on one line.
        let one_line = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
            PUB_BARE.trim()
        );
        assert_eq!(parse_public_keys(&one_line).unwrap(), vec![key.clone()]);
        // Bare body still wrapped over lines.
        let wrapped: String = PUB_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(parse_public_keys(&wrapped).unwrap(), vec![key]);
    }

    #[test]
    fn several_public_keys() {
        let key = platform_key();
        let second = parse_public_keys(PUB2_PEM).unwrap().remove(0);
        let pems = parse_public_keys(&format!("{PUB_PEM}\n{PUB2_PKCS1}")).unwrap();
        assert_eq!(pems, vec![key.clone(), second.clone()]);
        let pems = parse_public_keys(&format!("{PUB2_PEM},{PUB_PEM}")).unwrap();
        assert_eq!(pems, vec![second.clone(), key.clone()]);

        let second_bare = STANDARD.encode(second.spki_der());
        assert_eq!(second_bare, pem_body(PUB2_PEM));
        for text in [
            format!("{}, {second_bare}", PUB_BARE.trim()),
            format!("{},{second_bare},", PUB_BARE.trim()),
            format!("{} {second_bare}", PUB_BARE.trim()),
            format!("{}\n{second_bare}\n", PUB_BARE.trim()),
            format!("{}\\n{second_bare}", PUB_BARE.trim()),
        ] {
            assert_eq!(
                parse_public_keys(&text).unwrap(),
                vec![key.clone(), second.clone()],
                "{text}"
            );
        }
        // Bare PKCS#1 DER is tolerated too.
        assert_eq!(
            parse_public_keys(&pem_body(PUB2_PKCS1)).unwrap(),
            vec![second]
        );
    }

    #[test]
    fn public_key_errors() {
        assert_eq!(parse_public_keys("").unwrap_err(), KeyError::Empty);
        assert_eq!(parse_public_keys(" , \\n ").unwrap_err(), KeyError::Empty);
        assert!(matches!(
            parse_public_keys("not-base64!").unwrap_err(),
            KeyError::Invalid { index: 1, .. }
        ));
        assert!(matches!(
            parse_public_keys(&format!("{},AAAA", PUB_BARE.trim())).unwrap_err(),
            KeyError::Invalid { index: 2, .. }
        ));
        assert!(matches!(
            parse_public_keys(&format!("{PUB_PEM}\njunk")).unwrap_err(),
            KeyError::Invalid { index: 2, .. }
        ));
        let truncated = &PUB_PEM[..PUB_PEM.len() - 10];
        assert!(matches!(
            parse_public_keys(truncated).unwrap_err(),
            KeyError::Invalid { index: 1, .. }
        ));
        // A private key is not a public key.
        assert!(parse_public_keys(PRIV_PEM).is_err());
        let e = parse_public_keys(PRIV_PEM).unwrap_err().to_string();
        assert!(!e.contains("MII"), "{e}");
    }

    #[test]
    fn private_key_forms() {
        let key = parse_private_key(PRIV_PEM).unwrap();
        assert_eq!(key.bits(), 2048);
        assert_eq!(key.public_key(), platform_key());
        let escaped = PRIV_PEM.trim_end().replace('\n', "\\n");
        assert_eq!(
            parse_private_key(&escaped).unwrap().public_key(),
            platform_key()
        );
        assert_eq!(
            parse_private_key(&pem_body(PRIV_PEM)).unwrap().public_key(),
            platform_key()
        );

        let second = parse_public_keys(PUB2_PEM).unwrap().remove(0);
        for text in [
            PRIV2_PKCS1.to_owned(),
            pem_body(PRIV2_PKCS1),
            PRIV2_PKCS8.to_owned(),
            pem_body(PRIV2_PKCS8),
        ] {
            assert_eq!(parse_private_key(&text).unwrap().public_key(), second);
        }
    }

    #[test]
    fn private_key_errors() {
        assert_eq!(parse_private_key("").unwrap_err(), KeyError::Empty);
        assert_eq!(
            parse_private_key(&format!("{PRIV_PEM}{PRIV2_PKCS1}")).unwrap_err(),
            KeyError::NotOne
        );
        assert!(matches!(
            parse_private_key(PUB_PEM).unwrap_err(),
            KeyError::Invalid { index: 1, .. }
        ));
        assert!(matches!(
            parse_private_key(PUB_BARE).unwrap_err(),
            KeyError::Invalid { index: 1, .. }
        ));
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----";
        assert!(parse_private_key(encrypted)
            .unwrap_err()
            .to_string()
            .contains("encrypted"));
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----";
        assert!(parse_private_key(legacy).is_err());
    }

    #[test]
    fn small_keys_rejected() {
        // A 1024-bit SPKI public key (generated with openssl, test only).
        const SMALL: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC4d7kIyO5Kwqrir/g4dq4B4ipjR+AnzT+x1boWE+ClyySGJfC/fhApJxgphPx0oN9QDq6Hdo2mVRwBKsSO6UD4cluEfB8CnAx8FEuPjmm77eoANaG5rGqf8lcW2ReQ49UdU/c7jL+0wsMsGEGWXhUhpJ9rLL8D9EOtTCBPY1idhQIDAQAB";
        assert!(matches!(
            parse_public_keys(SMALL).unwrap_err(),
            KeyError::TooSmall {
                index: 1,
                bits: 1024
            }
        ));
        assert!(matches!(
            parse_public_keys(&format!("{},{SMALL}", PUB_BARE.trim())).unwrap_err(),
            KeyError::TooSmall {
                index: 2,
                bits: 1024
            }
        ));
        // A 1024-bit PKCS#8 private key (generated with openssl, test only).
        const SMALL_PRIVATE: &str = "MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAKpWZakyO2iLrXwaiuq9xoKVDin4Rgz2fVkj/nXqGKRZbkdsp0C2liPMSiliDjQ6H0oCi+vhEzOBSFIm/CpvgoQNXali5LwoWeWiRSsWgeXOwfeY7MxqlroHbZ4wmR0jwGnHU4xYDUjP+9giNyl2Ufhe9GaMps7qxK17w8l+djzpAgMBAAECgYA9PMxVlKqI/lZDXKN+mvVn8sBh1FESzfboeik8KQns4/3ijaxfdoTpn8M1t3vVyOOAzwOQrJ0jkiH27u8PLoGj80W1DIhoPtjVxbL7jmXG2yfVodDckHyQ+LksFBdVm1NDvFdRxB1MWtNN10NmctACk+SaqZBmWxItUbip7GIfgQJBAOBTzVkTSm0zXD7t+sLC+wwby4Cfn5wSfE999HFZ49mcdGtWIqnnsjXc5qWJj1Lbc8zQTX/qaNgLdKtQHe7EydECQQDCYyirZIrqEQb8hhpU1u1FX89lIBytu/Q1+TG2x0BNLyYukmXwFpxTpslM8ZnajRH5cod75jh3RCoi3b3/2G+ZAkEAg6YKpBTjH9T9dNz6xePhqwiA1FpZNCHRHGGh3AfR5PqhhACH1UhpWJzsKwfgudKaUf+JC+HIZ8nJTWR2PJL2kQJAI4TI3qBtfZ2E4EmEsDHhgwaht8GpW9l3IxGYkuRPjIrr+CCJ/dez0tkr+SJAUZ3rReA2f14uvSQ4asyHtiMPKQJBAIezf83AM01LfsTqfZHEWUdMc1l441/wNicF0lRSt6xVa/CsVIlCD/hR37C2a0mLrrTxr4wcSGLJyaycOBrrz/A=";
        // The same size as PKCS#1 (openssl genrsa -traditional, test only).
        const SMALL_PKCS1: &str = "MIICXQIBAAKBgQC6Ft4yNKzaySa3H3j95cl1cGKM/6HAv5pK3h12laRi86Vlves7lydh7vSBCQMSDGFtCndULrOTNheCSA6TdrqqyaLHYvHFV1xLlL9wr8sTzox3rYS7TVOHB2o1rqv0pI7L+CTUrgow5pl9tDZFZICRX+9XugTHxHjN/3YVcWWIDwIDAQABAoGAdL3H40M8dXzftt4dr1qqyewZR09PkHYjO3igjzZNjG5BgtRkcFvhLwUTiqe2r2no7Nk2By/NJDs5AFhoHIbNjycrIWKJey161QuzVioJhw8Qh2BzTJ/obOxqnyxiCrgPAGCrsHKEPUpqpa/w62QkXwF3WxrMEkltdxPtkmM4v9ECQQD3lyI9etBJgPj4rK95nWPPpOACArVefRspwnaGhL8Lp0Gna2v5Hd7s1UQL4NEKlLWMbBias+4L+YYcd7EzcE1DAkEAwGj3PWHAUkZBPyH/jl+xT+PnUHvApf4N/RCkc3MxGd8OlSRAFUtDs0HKPDyHAw/XW0Zlk6iWvPgsUbLMfr6nRQJBAIwtjFxEmYLUO6IHmz3+x1D75zwcLnW13VgyWorkw4mkg753SmV77Qgn4uPawF/+PB+p3/BO6Prspmqdtb0K2yMCQQCoM1pnK2vfwJDLKuJnyNmNWFLfNb+8nDIIVyMb1chHsInj8POgadI+AzZSoCr6jz+ZCBpGEavseBruNJq19d7tAkB3Zj4jMwByZ7xVuFEwi3FmRbqOOT3mSiWxO8aJLxk/CJfEk2BOdUpXmVkIpYTwR7O4PeQgtC4Fy1FTQ1yYCbm6";
        for small in [SMALL_PRIVATE, SMALL_PKCS1] {
            assert_eq!(
                parse_private_key(small).unwrap_err(),
                KeyError::Invalid {
                    index: 1,
                    reason: "RSA private key under 2048 bits"
                }
            );
        }
    }

    #[test]
    fn trailing_bytes_after_a_key_are_rejected() {
        let mut der = STANDARD.decode(PUB_BARE.trim()).unwrap();
        der.push(0);
        assert!(matches!(
            parse_public_keys(&STANDARD.encode(&der)).unwrap_err(),
            KeyError::Invalid { index: 1, .. }
        ));
        let mut der = STANDARD.decode(pem_body(PRIV2_PKCS8)).unwrap();
        der.extend_from_slice(&[0x05, 0x00]);
        assert!(matches!(
            parse_private_key(&STANDARD.encode(&der)).unwrap_err(),
            KeyError::Invalid { index: 1, .. }
        ));
        let mut der = STANDARD.decode(pem_body(PRIV2_PKCS1)).unwrap();
        der.extend_from_slice(&[0x05, 0x00]);
        assert_eq!(
            parse_private_key(&STANDARD.encode(&der)).unwrap_err(),
            KeyError::Invalid {
                index: 1,
                reason: "not a single DER value"
            }
        );
    }

    #[test]
    fn pss_only_public_keys_rejected() {
        // An RSASSA-PSS SubjectPublicKeyInfo (openssl genpkey -algorithm
        // RSA-PSS, test only): the key may not make PKCS#1 v1.5 signatures.
        const PSS: &str = "MIIBIDALBgkqhkiG9w0BAQoDggEPADCCAQoCggEBAKwD/aqTO408E24W1Sn6sfOoH+52Jqbc5ZCIt6oxrLZ95gFP51cvnrHpounkyL5Tyn/nPtsg6PO7Wb+l27LpOHFhRgP/j+ukjMVLc+EMQyAZTK5ad1OYIx3iWrOHrqFLnm5CZ6A41KtK/bzAPYYwNe8f7ykIZ0MjWBWRsHjs0HO4vSrUnuuJ9c531mM2Q147xWlGAfbsvOqyYaKYfogwBNQeZIHmknUeDOLEWzYwwwUqn39EWLJquRCCg8rDQ+8xTUkT2atqkPcX72+XfE4xfgFByQPRR5AYD0N3r2hwSx2TQQk36/QfVFQomDJtGCwOa0X+rRQq6qDAkJu3bhktPhECAwEAAQ==";
        assert_eq!(
            parse_public_keys(PSS).unwrap_err(),
            KeyError::Invalid {
                index: 1,
                reason: "not a plain RSA public key in DER"
            }
        );
    }

    #[test]
    fn keys_over_8192_bits_rejected() {
        // PKCS#1 RSAPublicKey { n = 2^8199 + 1 (8200 bits), e = 65537 }.
        let mut der = vec![0x30, 0x82, 0x04, 0x0b, 0x02, 0x82, 0x04, 0x02, 0x00, 0x80];
        der.extend([0u8; 1023]);
        der.extend([0x01, 0x02, 0x03, 0x01, 0x00, 0x01]);
        assert_eq!(
            parse_public_keys(&STANDARD.encode(&der)).unwrap_err(),
            KeyError::Invalid {
                index: 1,
                reason: "RSA key over 8192 bits"
            }
        );
    }

    #[test]
    fn debug_is_redacted() {
        let key = parse_private_key(PRIV_PEM).unwrap();
        assert_eq!(format!("{key:?}"), "RsaPrivateKey(<redacted 2048 bits>)");
        assert_eq!(format!("{:?}", platform_key()), "RsaPublicKey(2048 bits)");
    }
}
