//! The signing keys at run time: where they come from ([`KeySource`]: the
//! environment, or a Secrets Manager secret) and the cached [`Keys`] every
//! request signs and verifies with.
//!
//! A [`Keys`] holds one [`KeyRing`] and when it was read. It reads its
//! source again when the ring is older than the TTL (`DINGDANG_KEYS_TTL_SECS`,
//! 300), and when a signature matches none of the keys held, at most once
//! per `DINGDANG_KEYS_REFRESH_MIN_SECS` (60): a key rotated in the secret is
//! picked up by the next request, and a burst of bad signatures costs one
//! read. A read that fails keeps the keys held (a warning and
//! `KeysRefreshFailed`): only the first read, at start, is fatal.
//!
//! Which key verified is logged (`key_fingerprint`) and counted
//! (`VerifiedByKey` per `KeyFingerprint`) by its [`Fingerprint`], never by
//! its value.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::observability::metrics::{self, Event, Metric};
use crate::signing::{
    parse_private_key, parse_public_keys, Algorithm, Fingerprint, HmacSecret, KeyRing,
    SignDatetime, SignError, Signer, Verifier,
};

/// The environment variable holding the secret's ARN.
pub const SECRET_ARN_ENV: &str = "DINGDANG_SECRET_ARN";

/// The secret's field with the HMAC skill secret(s).
pub const FIELD_SKILL_SECRET: &str = "skillSecret";
/// The secret's field with our RSA private key(s).
pub const FIELD_SKILL_PRIVATE_KEY: &str = "skillPrivateKey";
/// The secret's field with the platform's RSA public key(s).
pub const FIELD_PLATFORM_PUBLIC_KEY: &str = "platformPublicKey";

/// Why keys could not be read. The message names the secret and the field,
/// never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyLoadError {
    /// Secrets Manager did not give the secret (missing, denied,
    /// unreachable).
    #[error("secret {secret} cannot be read: {reason}")]
    Unreadable { secret: String, reason: String },
    /// The secret has no text value (a binary secret).
    #[error("secret {secret} has no SecretString")]
    NotText { secret: String },
    /// The secret's text is not a JSON object.
    #[error("secret {secret} is not a JSON object ({reason})")]
    NotJson { secret: String, reason: String },
    /// A field the algorithm needs is absent or empty.
    #[error("secret {secret}: field {field} is missing")]
    Missing { secret: String, field: &'static str },
    /// A field holds no usable key.
    #[error("secret {secret}: field {field} is malformed: {reason}")]
    Malformed {
        secret: String,
        field: &'static str,
        reason: String,
    },
}

/// Where the keys come from. Implementations never log key material.
#[async_trait]
pub trait KeySource: Send + Sync {
    /// What the keys are read from, for logs (`environment`, the ARN).
    fn name(&self) -> &str;
    /// Whether reading again can give other keys (not for the environment,
    /// read once at start).
    fn refreshable(&self) -> bool {
        true
    }
    /// Reads the keys.
    async fn load(&self) -> Result<KeyRing, KeyLoadError>;
}

/// Keys parsed from the environment at start; they never change.
pub struct EnvKeys(pub KeyRing);

#[async_trait]
impl KeySource for EnvKeys {
    fn name(&self) -> &str {
        "environment"
    }
    fn refreshable(&self) -> bool {
        false
    }
    async fn load(&self) -> Result<KeyRing, KeyLoadError> {
        Ok(self.0.clone())
    }
}

/// Keys in one Secrets Manager secret (a JSON object, see
/// [`ring_from_secret`]), read with `secretsmanager:GetSecretValue`.
pub struct SecretsManagerKeys {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
    algorithm: Algorithm,
    skew: Duration,
}

impl SecretsManagerKeys {
    /// The keys of `algorithm` in the secret `arn`, with the given clock
    /// skew. The client is built once from `aws`, with short timeouts so
    /// that a read on a request's path stays bounded.
    pub fn new(
        aws: &aws_config::SdkConfig,
        arn: impl Into<String>,
        algorithm: Algorithm,
        skew: Duration,
    ) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .operation_attempt_timeout(Duration::from_millis(1500))
            .operation_timeout(Duration::from_secs(3))
            .build();
        let config = aws_sdk_secretsmanager::config::Builder::from(aws)
            .timeout_config(timeouts)
            .build();
        Self {
            client: aws_sdk_secretsmanager::Client::from_conf(config),
            arn: arn.into(),
            algorithm,
            skew,
        }
    }
}

#[async_trait]
impl KeySource for SecretsManagerKeys {
    fn name(&self) -> &str {
        &self.arn
    }

    async fn load(&self) -> Result<KeyRing, KeyLoadError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.arn)
            .send()
            .await
            .map_err(|e| KeyLoadError::Unreadable {
                secret: self.arn.clone(),
                reason: sdk_reason(&e),
            })?;
        let text = out.secret_string().ok_or_else(|| KeyLoadError::NotText {
            secret: self.arn.clone(),
        })?;
        ring_from_secret(&self.arn, text, self.algorithm, self.skew)
    }
}

/// The error code and message of a failed call (never the secret: it was
/// not received), or the cause of a call that got no answer.
fn sdk_reason<E, R>(e: &aws_sdk_secretsmanager::error::SdkError<E, R>) -> String
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    use aws_sdk_secretsmanager::error::SdkError;
    match e {
        SdkError::ServiceError(service) => {
            let err = service.err();
            match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                _ => "service error".to_owned(),
            }
        }
        other => aws_sdk_secretsmanager::error::DisplayErrorContext(other).to_string(),
    }
}

/// One field of the secret: a string (the comma form of the environment
/// variables; PEM blocks may follow each other) or a JSON array of strings,
/// one key per element. `None` when absent, null, empty or an empty array.
fn field_texts(
    secret: &str,
    object: &serde_json::Map<String, Value>,
    field: &'static str,
) -> Result<Option<Vec<String>>, KeyLoadError> {
    let malformed = |reason: String| KeyLoadError::Malformed {
        secret: secret.to_owned(),
        field,
        reason,
    };
    let texts = match object.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(text) => Ok(text.clone()),
                _ => Err(malformed(format!("element {} is not a string", i + 1))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(malformed(
                "expected a string or an array of strings".to_owned(),
            ))
        }
    };
    if texts.iter().all(|t| t.trim().is_empty()) {
        return Ok(None);
    }
    Ok(Some(texts))
}

fn required(
    secret: &str,
    object: &serde_json::Map<String, Value>,
    field: &'static str,
) -> Result<Vec<String>, KeyLoadError> {
    field_texts(secret, object, field)?.ok_or_else(|| KeyLoadError::Missing {
        secret: secret.to_owned(),
        field,
    })
}

/// Builds the key ring of `algorithm` from the secret's JSON text:
///
/// ```json
/// {"skillSecret": ["new", "old"],
///  "platformPublicKey": ["<new PEM or bare base64>", "<old>"],
///  "skillPrivateKey": "<PEM>"}
/// ```
///
/// TSK-HMAC-SHA256-BASIC needs `skillSecret`; TSK-RSA2 needs
/// `platformPublicKey` and `skillPrivateKey`; other fields are ignored.
/// Each field is a string in the form of its environment variable (secrets
/// separated by commas, several PEM blocks or bare keys) or an array of such
/// strings. The first HMAC secret and the first private key sign; every
/// HMAC secret and every public key verifies. Errors name `secret` and the
/// field, never a value.
pub fn ring_from_secret(
    secret: &str,
    text: &str,
    algorithm: Algorithm,
    skew: Duration,
) -> Result<KeyRing, KeyLoadError> {
    let object: serde_json::Map<String, Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => object,
        // serde's messages may quote the text: only the position is kept.
        Ok(_) => {
            return Err(KeyLoadError::NotJson {
                secret: secret.to_owned(),
                reason: "another JSON value".to_owned(),
            })
        }
        Err(e) => {
            return Err(KeyLoadError::NotJson {
                secret: secret.to_owned(),
                reason: format!("invalid JSON at line {} column {}", e.line(), e.column()),
            })
        }
    };
    let malformed = |field: &'static str, reason: String| KeyLoadError::Malformed {
        secret: secret.to_owned(),
        field,
        reason,
    };
    let several = |texts: &[String]| texts.len() > 1;
    match algorithm {
        Algorithm::HmacSha256Basic => {
            let texts = required(secret, &object, FIELD_SKILL_SECRET)?;
            let mut secrets = Vec::new();
            for (i, text) in texts.iter().enumerate() {
                if several(&texts) {
                    let text = text.trim();
                    if text.is_empty() {
                        return Err(malformed(
                            FIELD_SKILL_SECRET,
                            format!("element {} is empty", i + 1),
                        ));
                    }
                    secrets.push(HmacSecret::new(text));
                } else {
                    secrets.extend(
                        HmacSecret::list(text)
                            .map_err(|e| malformed(FIELD_SKILL_SECRET, e.to_string()))?,
                    );
                }
            }
            Ok(KeyRing {
                signer: Signer::Hmac(secrets[0].clone()),
                verifier: Verifier::hmac(secrets),
                skew,
            })
        }
        Algorithm::Rsa2 => {
            // Each element parsed; an error names the element when there
            // are several.
            let element = |field: &'static str, i: usize, count: usize, e: String| {
                malformed(
                    field,
                    if count > 1 {
                        format!("element {}: {e}", i + 1)
                    } else {
                        e
                    },
                )
            };
            let texts = required(secret, &object, FIELD_PLATFORM_PUBLIC_KEY)?;
            let mut public = Vec::new();
            for (i, text) in texts.iter().enumerate() {
                public.extend(parse_public_keys(text).map_err(|e| {
                    element(FIELD_PLATFORM_PUBLIC_KEY, i, texts.len(), e.to_string())
                })?);
            }
            let texts = required(secret, &object, FIELD_SKILL_PRIVATE_KEY)?;
            let mut private = Vec::new();
            for (i, text) in texts.iter().enumerate() {
                private.push(parse_private_key(text).map_err(|e| {
                    element(FIELD_SKILL_PRIVATE_KEY, i, texts.len(), e.to_string())
                })?);
            }
            Ok(KeyRing {
                signer: Signer::rsa2(private.swap_remove(0)),
                verifier: Verifier::rsa2(public),
                skew,
            })
        }
    }
}

/// When [`Keys`] reads its source again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Keys older than this are read again before use
    /// (`DINGDANG_KEYS_TTL_SECS`).
    pub ttl: Duration,
    /// At most one read per this interval when a signature matches no key,
    /// and between retries of a failed TTL read
    /// (`DINGDANG_KEYS_REFRESH_MIN_SECS`).
    pub min_interval: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            min_interval: Duration::from_secs(60),
        }
    }
}

/// A signature that verified, and by which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub datetime: SignDatetime,
    pub key: Fingerprint,
}

struct State {
    /// When the ring held was read.
    fetched_at: Instant,
    /// The last TTL read attempted, while they fail (spaces their retries).
    ttl_attempt: Option<Instant>,
    /// The last read caused by a signature no key matched.
    failure_refresh: Option<Instant>,
    /// A read is under way.
    refreshing: bool,
}

struct Inner {
    source: Arc<dyn KeySource>,
    ring: RwLock<Arc<KeyRing>>,
    state: Mutex<State>,
    policy: RefreshPolicy,
    skew: Duration,
}

/// The keys in use: a cached [`KeyRing`] read from a [`KeySource`].
/// Cloning shares the cache.
#[derive(Clone)]
pub struct Keys {
    inner: Arc<Inner>,
}

/// Clears `refreshing` however the read ends.
struct Refreshing<'a>(&'a Inner);

impl Drop for Refreshing<'_> {
    fn drop(&mut self) {
        self.0.lock_state().refreshing = false;
    }
}

impl Inner {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Clone, Copy)]
enum Why {
    Ttl,
    NoKeyMatched,
}

impl Why {
    fn as_str(self) -> &'static str {
        match self {
            Why::Ttl => "ttl",
            Why::NoKeyMatched => "no_key_matched",
        }
    }
}

impl Keys {
    /// Keys that never change (from the environment).
    pub fn fixed(ring: KeyRing) -> Self {
        let skew = ring.skew;
        Self::with_ring(
            Arc::new(EnvKeys(ring.clone())),
            ring,
            RefreshPolicy::default(),
            skew,
        )
    }

    /// Reads `source` once: the start of a function. An error here stops
    /// the function; later reads never do.
    pub async fn load(
        source: Arc<dyn KeySource>,
        policy: RefreshPolicy,
    ) -> Result<Self, KeyLoadError> {
        let ring = source.load().await?;
        let keys = Self::with_ring(source, ring.clone(), policy, ring.skew);
        keys.log_loaded("start", &ring);
        Ok(keys)
    }

    fn with_ring(
        source: Arc<dyn KeySource>,
        ring: KeyRing,
        policy: RefreshPolicy,
        skew: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                ring: RwLock::new(Arc::new(ring)),
                state: Mutex::new(State {
                    fetched_at: Instant::now(),
                    ttl_attempt: None,
                    failure_refresh: None,
                    refreshing: false,
                }),
                policy,
                skew,
            }),
        }
    }

    /// The ring held now, without reading the source.
    pub fn ring(&self) -> Arc<KeyRing> {
        Arc::clone(
            &self
                .inner
                .ring
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The allowed clock skew (fixed at start).
    pub fn skew(&self) -> Duration {
        self.inner.skew
    }

    /// The refresh policy.
    pub fn policy(&self) -> RefreshPolicy {
        self.inner.policy
    }

    /// The ring to use now: read again first when older than the TTL.
    pub async fn current(&self) -> Arc<KeyRing> {
        let due = {
            let now = Instant::now();
            let mut state = self.inner.lock_state();
            let min = self.inner.policy.min_interval;
            let due = self.inner.source.refreshable()
                && !state.refreshing
                && now.duration_since(state.fetched_at) >= self.inner.policy.ttl
                && state
                    .ttl_attempt
                    .is_none_or(|t| now.duration_since(t) >= min);
            if due {
                state.refreshing = true;
                state.ttl_attempt = Some(now);
            }
            due
        };
        if due {
            self.refresh(Why::Ttl).await;
        }
        self.ring()
    }

    /// Signs `body` at `now` with the current signing key.
    pub async fn sign(&self, body: &[u8], now: OffsetDateTime) -> crate::signing::Authorization {
        self.current().await.sign(body, now)
    }

    /// Verifies a signature of the other side with the current keys; when
    /// it matches none of them, reads the keys again (at most once per
    /// [`RefreshPolicy::min_interval`]) and tries once more. Logs and
    /// counts the key that verified, by fingerprint, as `function`.
    pub async fn verify(
        &self,
        function: &str,
        header: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Verified, SignError> {
        let ring = self.current().await;
        let result = match ring.verify_key(header, body, now) {
            Err(SignError::BadSignature) if self.failure_refresh_due() => {
                self.refresh(Why::NoKeyMatched).await;
                self.ring().verify_key(header, body, now)
            }
            other => other,
        };
        let (datetime, key) = result?;
        let fingerprint = key.to_string();
        tracing::Span::current().record("key_fingerprint", fingerprint.as_str());
        metrics::verified_by_key(function, &fingerprint);
        Ok(Verified { datetime, key })
    }

    fn failure_refresh_due(&self) -> bool {
        if !self.inner.source.refreshable() {
            return false;
        }
        let now = Instant::now();
        let mut state = self.inner.lock_state();
        let due = !state.refreshing
            && state
                .failure_refresh
                .is_none_or(|t| now.duration_since(t) >= self.inner.policy.min_interval);
        if due {
            state.refreshing = true;
            state.failure_refresh = Some(now);
        }
        due
    }

    /// Reads the source; the caller has set `refreshing`. A failure keeps
    /// the ring held.
    async fn refresh(&self, why: Why) {
        let _refreshing = Refreshing(&self.inner);
        match self.inner.source.load().await {
            Ok(ring) => {
                self.log_loaded(why.as_str(), &ring);
                *self
                    .inner
                    .ring
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
                let mut state = self.inner.lock_state();
                state.fetched_at = Instant::now();
                // Only failing TTL reads are spaced.
                state.ttl_attempt = None;
                drop(state);
                Event::new("keys")
                    .count(Metric::KeysRefreshed)
                    .prop("reason", why.as_str())
                    .emit();
            }
            Err(err) => {
                tracing::warn!(
                    reason = why.as_str(),
                    source = self.inner.source.name(),
                    error = %err,
                    "keys not read again; the keys held are kept"
                );
                Event::new("keys")
                    .count(Metric::KeysRefreshFailed)
                    .prop("reason", why.as_str())
                    .emit();
            }
        }
    }

    fn log_loaded(&self, why: &str, ring: &KeyRing) {
        let verifying: Vec<String> = ring
            .verifier
            .fingerprints()
            .iter()
            .map(ToString::to_string)
            .collect();
        tracing::info!(
            reason = why,
            source = self.inner.source.name(),
            algorithm = %ring.signer.algorithm(),
            signing_key = %ring.signer.fingerprint(),
            verifying_keys = %verifying.join(","),
            "keys read"
        );
    }
}

impl From<KeyRing> for Keys {
    fn from(ring: KeyRing) -> Self {
        Keys::fixed(ring)
    }
}

impl From<Arc<KeyRing>> for Keys {
    fn from(ring: Arc<KeyRing>) -> Self {
        Keys::fixed(ring.as_ref().clone())
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("source", &self.inner.source.name())
            .field("ring", &self.ring())
            .field("policy", &self.inner.policy)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dingdang-keys-AbCdEf";
    const PUB_PEM: &str = include_str!("../tests/vectors/platform_public_key.pem");
    const PUB_BARE: &str = include_str!("../tests/vectors/platform_public_key.bare.txt");
    const PUB2_PEM: &str = include_str!("../tests/vectors/second_public_key.pem");
    const PRIV_PEM: &str = include_str!("../tests/vectors/platform_private_key.pem");
    const PRIV2_PEM: &str = include_str!("../tests/vectors/second_private_key.pem");
    const SKEW: Duration = KeyRing::DEFAULT_SKEW;

    fn hmac(text: &str) -> Result<KeyRing, KeyLoadError> {
        ring_from_secret(ARN, text, Algorithm::HmacSha256Basic, SKEW)
    }

    fn rsa(text: &str) -> Result<KeyRing, KeyLoadError> {
        ring_from_secret(ARN, text, Algorithm::Rsa2, SKEW)
    }

    fn fp(secret: &str) -> Fingerprint {
        HmacSecret::new(secret).fingerprint()
    }

    #[test]
    fn hmac_secret_as_string_or_array() {
        for text in [
            r#"{"skillSecret": "new,old"}"#,
            r#"{"skillSecret": " new , old "}"#,
            r#"{"skillSecret": ["new", "old"]}"#,
            r#"{"skillSecret": ["new", "old"], "skillPrivateKey": "", "platformPublicKey": null}"#,
        ] {
            let ring = hmac(text).unwrap();
            assert_eq!(ring.signer.fingerprint(), fp("new"), "{text}");
            assert_eq!(ring.verifier.fingerprints(), vec![fp("new"), fp("old")]);
        }
        // In an array an element is one secret, commas included.
        let ring = hmac(r#"{"skillSecret": ["a,b"]}"#).unwrap();
        assert_eq!(ring.verifier.fingerprints(), vec![fp("a"), fp("b")]);
        let ring = hmac(r#"{"skillSecret": ["a,b", "c"]}"#).unwrap();
        assert_eq!(ring.verifier.fingerprints(), vec![fp("a,b"), fp("c")]);
    }

    #[test]
    fn rsa_keys_as_string_or_array() {
        let platform = parse_public_keys(PUB_PEM).unwrap().remove(0);
        let second = parse_public_keys(PUB2_PEM).unwrap().remove(0);
        let own = parse_private_key(PRIV2_PEM).unwrap().public_key();
        let as_array = serde_json::json!({
            "platformPublicKey": [PUB2_PEM, PUB_BARE.trim()],
            "skillPrivateKey": [PRIV2_PEM],
        })
        .to_string();
        let as_string = serde_json::json!({
            "platformPublicKey": format!("{PUB2_PEM}\n{PUB_PEM}"),
            "skillPrivateKey": PRIV2_PEM,
            "skillSecret": "unused",
        })
        .to_string();
        for text in [as_array, as_string] {
            let ring = rsa(&text).unwrap();
            assert_eq!(ring.signer.algorithm(), Algorithm::Rsa2);
            assert_eq!(ring.signer.fingerprint(), own.fingerprint());
            assert_eq!(
                ring.verifier.fingerprints(),
                vec![second.fingerprint(), platform.fingerprint()]
            );
        }
    }

    /// Every error names the secret and the field and shows no value.
    #[test]
    fn errors_name_the_secret_and_field_never_the_value() {
        const VALUE: &str = "TOPSECRETVALUE";
        let cases: Vec<(String, Algorithm, &str)> = vec![
            (format!("not json {VALUE}"), Algorithm::HmacSha256Basic, ""),
            (format!("\"{VALUE}\""), Algorithm::HmacSha256Basic, ""),
            (format!("[\"{VALUE}\"]"), Algorithm::HmacSha256Basic, ""),
            (
                format!(r#"{{"skilSecret": "{VALUE}"}}"#),
                Algorithm::HmacSha256Basic,
                "field skillSecret is missing",
            ),
            (
                r#"{"skillSecret": ""}"#.to_owned(),
                Algorithm::HmacSha256Basic,
                "field skillSecret is missing",
            ),
            (
                r#"{"skillSecret": []}"#.to_owned(),
                Algorithm::HmacSha256Basic,
                "field skillSecret is missing",
            ),
            (
                format!(r#"{{"skillSecret": "{VALUE},,x"}}"#),
                Algorithm::HmacSha256Basic,
                "field skillSecret is malformed",
            ),
            (
                format!(r#"{{"skillSecret": ["{VALUE}", " "]}}"#),
                Algorithm::HmacSha256Basic,
                "field skillSecret is malformed: element 2 is empty",
            ),
            (
                format!(r#"{{"skillSecret": ["{VALUE}", 7]}}"#),
                Algorithm::HmacSha256Basic,
                "field skillSecret is malformed: element 2 is not a string",
            ),
            (
                r#"{"skillSecret": 12345678}"#.to_owned(),
                Algorithm::HmacSha256Basic,
                "field skillSecret is malformed: expected a string or an array of strings",
            ),
            (
                format!(r#"{{"skillSecret": "{VALUE}"}}"#),
                Algorithm::Rsa2,
                "field platformPublicKey is missing",
            ),
            (
                format!(r#"{{"platformPublicKey": "{VALUE}", "skillPrivateKey": "x"}}"#),
                Algorithm::Rsa2,
                "field platformPublicKey is malformed",
            ),
            (
                serde_json::json!({"platformPublicKey": [PUB_PEM, VALUE], "skillPrivateKey": PRIV2_PEM})
                    .to_string(),
                Algorithm::Rsa2,
                "field platformPublicKey is malformed: element 2: key 1",
            ),
            (
                serde_json::json!({"platformPublicKey": PUB_PEM}).to_string(),
                Algorithm::Rsa2,
                "field skillPrivateKey is missing",
            ),
            (
                serde_json::json!({"platformPublicKey": PUB_PEM, "skillPrivateKey": format!("{VALUE}{PRIV_PEM}")})
                    .to_string(),
                Algorithm::Rsa2,
                "field skillPrivateKey is malformed",
            ),
        ];
        for (text, algorithm, expected) in cases {
            let err = ring_from_secret(ARN, &text, algorithm, SKEW)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("secret {ARN}")), "{err}");
            assert!(err.contains(expected), "{err} / {expected}");
            assert!(!err.contains(VALUE), "{err}");
            assert!(!err.contains("MII"), "{err}");
        }
        let err = hmac("{\"skillSecret\": \"abc").unwrap_err().to_string();
        assert!(
            err.contains("is not a JSON object (invalid JSON at line 1"),
            "{err}"
        );
        assert!(!err.contains("abc"), "{err}");
    }

    /// A source whose keys the test sets, counting its reads.
    struct Scripted {
        next: Mutex<Result<KeyRing, KeyLoadError>>,
        reads: AtomicUsize,
    }

    impl Scripted {
        fn new(secrets: &str) -> Arc<Self> {
            Arc::new(Self {
                next: Mutex::new(Ok(ring(secrets))),
                reads: AtomicUsize::new(0),
            })
        }
        fn set(&self, next: Result<KeyRing, KeyLoadError>) {
            *self.next.lock().unwrap() = next;
        }
        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl KeySource for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }
        async fn load(&self) -> Result<KeyRing, KeyLoadError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.next.lock().unwrap().clone()
        }
    }

    fn ring(secrets: &str) -> KeyRing {
        let list = HmacSecret::list(secrets).unwrap();
        KeyRing {
            signer: Signer::Hmac(list[0].clone()),
            verifier: Verifier::hmac(list),
            skew: SKEW,
        }
    }

    fn signed_by(secret: &str) -> String {
        ring(secret)
            .sign(b"{}", OffsetDateTime::now_utc())
            .to_string()
    }

    async fn verify(keys: &Keys, secret: &str) -> Result<Verified, SignError> {
        keys.verify(
            "test",
            Some(&signed_by(secret)),
            b"{}",
            OffsetDateTime::now_utc(),
        )
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_refresh_and_refresh_on_failure_at_most_once_per_interval() {
        let source = Scripted::new("old");
        let keys = Keys::load(source.clone(), RefreshPolicy::default())
            .await
            .unwrap();
        assert_eq!(source.reads(), 1);
        assert_eq!(verify(&keys, "old").await.unwrap().key, fp("old"));
        assert_eq!(source.reads(), 1);

        // Rotated: the first request signed with the new key reads again.
        source.set(Ok(ring("new,old")));
        assert_eq!(verify(&keys, "new").await.unwrap().key, fp("new"));
        assert_eq!(source.reads(), 2);
        assert_eq!(verify(&keys, "old").await.unwrap().key, fp("old"));

        // A burst of bad signatures within the minute: no more reads.
        for _ in 0..50 {
            assert_eq!(verify(&keys, "bad").await, Err(SignError::BadSignature));
        }
        assert_eq!(source.reads(), 2);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(verify(&keys, "bad").await, Err(SignError::BadSignature));
        assert_eq!(source.reads(), 2);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(verify(&keys, "bad").await, Err(SignError::BadSignature));
        assert_eq!(source.reads(), 3);

        // The old key removed: still held until the TTL, refused after it.
        source.set(Ok(ring("new")));
        assert!(verify(&keys, "old").await.is_ok());
        assert_eq!(source.reads(), 3);
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(verify(&keys, "old").await, Err(SignError::BadSignature));
        // The TTL read, then a read for the failure (the last was over a
        // minute ago).
        assert_eq!(source.reads(), 5);
        assert_eq!(keys.ring().verifier.fingerprints(), vec![fp("new")]);
        // Every TTL reads again, not only the first.
        tokio::time::advance(Duration::from_secs(300)).await;
        assert!(verify(&keys, "new").await.is_ok());
        assert_eq!(source.reads(), 6);
        tokio::time::advance(Duration::from_secs(300)).await;
        assert!(verify(&keys, "new").await.is_ok());
        assert_eq!(source.reads(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_keeps_the_keys() {
        let source = Scripted::new("old");
        let policy = RefreshPolicy {
            ttl: Duration::from_secs(10),
            min_interval: Duration::from_secs(60),
        };
        let keys = Keys::load(source.clone(), policy).await.unwrap();
        source.set(Err(KeyLoadError::Unreadable {
            secret: ARN.into(),
            reason: "AccessDeniedException".into(),
        }));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(verify(&keys, "old").await.is_ok());
        assert_eq!(source.reads(), 2);
        // A failing TTL read is retried after the interval, not per request.
        for _ in 0..10 {
            assert!(verify(&keys, "old").await.is_ok());
        }
        assert_eq!(source.reads(), 2);
        tokio::time::advance(Duration::from_secs(60)).await;
        source.set(Ok(ring("new")));
        assert_eq!(verify(&keys, "new").await.unwrap().key, fp("new"));
        assert_eq!(source.reads(), 3);
    }

    #[tokio::test]
    async fn fixed_keys_are_never_read_again() {
        let keys = Keys::fixed(ring("one"));
        assert_eq!(verify(&keys, "bad").await, Err(SignError::BadSignature));
        assert_eq!(verify(&keys, "one").await.unwrap().key, fp("one"));
        assert_eq!(keys.skew(), SKEW);
    }

    #[tokio::test]
    async fn a_start_read_that_fails_is_an_error() {
        let source = Scripted::new("x");
        source.set(Err(KeyLoadError::Missing {
            secret: ARN.into(),
            field: FIELD_SKILL_SECRET,
        }));
        let err = Keys::load(source, RefreshPolicy::default())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("secret {ARN}: field skillSecret is missing")
        );
    }
}
