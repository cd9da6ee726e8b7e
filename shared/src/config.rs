//! Environment → typed configuration, failing fast with the variable's name.

use std::sync::Arc;
use std::time::Duration;

use crate::keys::{KeyLoadError, Keys, RefreshPolicy, SecretsManagerKeys, SECRET_ARN_ENV};
use crate::protocol::{Revision, SkillId};
use crate::signing::{self, Algorithm, HmacSecret, KeyRing, Signer, Verifier};

/// A setting that is missing or malformed; the message names the variable
/// but never echoes its value (it may be a secret).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is malformed: {reason}")]
    Malformed { name: &'static str, reason: String },
    /// The keys' secret could not be read or holds no usable keys.
    #[error(transparent)]
    Keys(#[from] KeyLoadError),
}

/// Everything a function needs from its environment, parsed once at start.
#[derive(Debug)]
pub struct Config {
    pub table_name: String,
    pub skill_id: SkillId,
    /// The signing keys: from the environment, or read from the secret
    /// `DINGDANG_SECRET_ARN` at start and refreshed (see [`crate::keys`]).
    pub keys: Keys,
    /// The partner's webhook for entitlement events.
    pub fulfillment_url: Option<String>,
    /// Signs the webhook's events (`FULFILLMENT_SECRET`; required with a
    /// URL).
    pub fulfillment_secret: Option<HmacSecret>,
    /// An event the stream has not delivered by then is delivered by the
    /// sweep (`FULFILLMENT_RETRY_SECS`, 120).
    pub fulfillment_retry: Duration,
    pub accept_unknown_orders: bool,
    pub idempotency_ttl: Duration,
    pub protocol: Revision,
    /// Base URL of the platform's `paycgi` API.
    pub api_base: String,
    /// Refuse platform replies that carry no valid `Authorization`.
    pub require_signed_replies: bool,
    /// Total time allowed for one call to the platform.
    pub api_timeout: Duration,
    /// A refund still open this long after it was requested is escalated
    /// (`REFUND_ATTENTION_SECS`, default 86400).
    pub refund_attention_after: Duration,
    /// How long an order or refund may wait for its notification before
    /// the sweep first asks the platform (`RECONCILE_GRACE_SECS`, 600).
    pub reconcile_grace: Duration,
    /// Shards of the due index (`DUE_INDEX_SHARDS`, 16; only ever raise it).
    pub due_shards: u16,
}

/// The platform's production API.
pub const DEFAULT_API_BASE: &str = "https://aiwx.html5.qq.com/paycgi";

impl Config {
    /// Reads the process environment, with the keys in it (the variables
    /// `DINGDANG_SKILL_SECRET`, `DINGDANG_PLATFORM_PUBLIC_KEY`,
    /// `DINGDANG_SKILL_PRIVATE_KEY`). See [`Config::load`] for the keys in
    /// Secrets Manager.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// What every function calls at start: the process environment, and
    /// the keys read from the secret `DINGDANG_SECRET_ARN` when it is set
    /// (from the environment's variables otherwise).
    pub async fn load() -> Result<Self, ConfigError> {
        let get = |name: &str| std::env::var(name).ok();
        if Env(&get).optional(SECRET_ARN_ENV).is_none() {
            return Self::from_lookup(get);
        }
        let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::load_with(get, &aws).await
    }

    /// [`Config::load`] with settings read through `get` and the AWS
    /// configuration `aws` (region, credentials, endpoint) for Secrets
    /// Manager.
    pub async fn load_with(
        get: impl Fn(&str) -> Option<String>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, ConfigError> {
        let (arn, algorithm, skew, policy) = {
            let env = Env(&get);
            let Some(arn) = env.optional(SECRET_ARN_ENV) else {
                return Self::from_lookup(get);
            };
            // Settings first: a malformed one is reported without a call.
            let (algorithm, skew) = key_kind(&env)?;
            (arn, algorithm, skew, refresh_policy(&env)?)
        };
        let source = SecretsManagerKeys::new(aws, arn, algorithm, skew);
        let keys = Keys::load(Arc::new(source), policy).await?;
        Self::build(&Env(&get), keys)
    }

    /// Reads settings through `get`, so tests can pass a map instead of the
    /// process environment; the keys come from its variables. With
    /// `DINGDANG_SECRET_ARN` set use [`Config::load_with`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&get);
        if env.optional(SECRET_ARN_ENV).is_some() {
            return Err(malformed(
                SECRET_ARN_ENV,
                "the keys are then read from Secrets Manager, at start (Config::load)",
            ));
        }
        let (algorithm, skew) = key_kind(&env)?;
        refresh_policy(&env)?;
        let keys = env_keys(&env, algorithm, skew)?;
        Self::build(&env, Keys::fixed(keys))
    }

    /// Every setting but the keys.
    fn build(env: &Env<'_>, keys: Keys) -> Result<Self, ConfigError> {
        let algorithm = keys.ring().signer.algorithm();
        let table_name = env.required("TABLE_NAME")?;
        let skill_id = env.parsed("DINGDANG_SKILL_ID", SkillId::parse)?;
        let fulfillment_url = env
            .optional("FULFILLMENT_URL")
            .map(|v| {
                if v.starts_with("https://") || v.starts_with("http://") {
                    Ok(v)
                } else {
                    Err(malformed("FULFILLMENT_URL", "expected an http(s) URL"))
                }
            })
            .transpose()?;
        let fulfillment_secret = match (&fulfillment_url, env.optional("FULFILLMENT_SECRET")) {
            (_, Some(secret)) => Some(HmacSecret::new(secret)),
            (Some(_), None) => return Err(ConfigError::Missing("FULFILLMENT_SECRET")),
            (None, None) => None,
        };
        let fulfillment_retry = Duration::from_secs(
            env.optional("FULFILLMENT_RETRY_SECS")
                .map(|v| {
                    v.parse()
                        .map_err(|_| malformed("FULFILLMENT_RETRY_SECS", "expected whole seconds"))
                })
                .transpose()?
                .unwrap_or(120),
        );
        let accept_unknown_orders = env.flag("DINGDANG_ACCEPT_UNKNOWN_ORDERS")?;
        let idempotency_ttl = Duration::from_secs(
            env.optional("IDEMPOTENCY_TTL_SECS")
                .map(|v| {
                    v.parse()
                        .map_err(|_| malformed("IDEMPOTENCY_TTL_SECS", "expected whole seconds"))
                })
                .transpose()?
                .unwrap_or(86_400),
        );
        let protocol = env
            .optional("DINGDANG_PROTOCOL")
            .map(|v| {
                v.parse::<Revision>()
                    .map_err(|_| malformed("DINGDANG_PROTOCOL", "expected 2018 or 2019"))
            })
            .transpose()?
            .unwrap_or(Revision::R2018);
        if protocol == Revision::R2019 && algorithm != Algorithm::Rsa2 {
            return Err(malformed(
                "DINGDANG_SIGN_ALG",
                "the 2019 protocol requires TSK-RSA2",
            ));
        }
        let api_base = env
            .optional("DINGDANG_API_BASE")
            .unwrap_or_else(|| DEFAULT_API_BASE.to_owned());
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            return Err(malformed("DINGDANG_API_BASE", "expected an http(s) URL"));
        }
        let require_signed_replies =
            env.flag("DINGDANG_REQUIRE_SIGNED_REPLIES")? || protocol == Revision::R2019;
        let api_timeout = Duration::from_millis(
            env.optional("DINGDANG_API_TIMEOUT_MS")
                .map(|v| {
                    v.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                        malformed("DINGDANG_API_TIMEOUT_MS", "expected milliseconds")
                    })
                })
                .transpose()?
                .unwrap_or(5_000),
        );
        let refund_attention_after = Duration::from_secs(
            env.optional("REFUND_ATTENTION_SECS")
                .map(|v| {
                    v.parse()
                        .ok()
                        .filter(|s| *s > 0)
                        .ok_or_else(|| malformed("REFUND_ATTENTION_SECS", "expected whole seconds"))
                })
                .transpose()?
                .unwrap_or(86_400),
        );
        let reconcile_grace = Duration::from_secs(
            env.optional("RECONCILE_GRACE_SECS")
                .map(|v| {
                    v.parse()
                        .map_err(|_| malformed("RECONCILE_GRACE_SECS", "expected whole seconds"))
                })
                .transpose()?
                .unwrap_or(600),
        );
        let due_shards = env
            .optional("DUE_INDEX_SHARDS")
            .map(|v| {
                v.parse::<u16>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| malformed("DUE_INDEX_SHARDS", "expected 1 to 1000"))
            })
            .transpose()?
            .unwrap_or(crate::store::DEFAULT_SHARDS);
        Ok(Self {
            table_name,
            skill_id,
            keys,
            fulfillment_url,
            fulfillment_secret,
            fulfillment_retry,
            accept_unknown_orders,
            idempotency_ttl,
            protocol,
            api_base: api_base.trim_end_matches('/').to_owned(),
            require_signed_replies,
            api_timeout,
            refund_attention_after,
            reconcile_grace,
            due_shards,
        })
    }
}

/// The table and the skill, checked before the keys are read.
fn preflight(env: &Env<'_>) -> Result<(), ConfigError> {
    env.required("TABLE_NAME")?;
    env.parsed("DINGDANG_SKILL_ID", SkillId::parse)?;
    Ok(())
}

/// The signing algorithm (`DINGDANG_SIGN_ALG`) and the clock skew
/// (`DINGDANG_CLOCK_SKEW_SECS`).
fn key_kind(env: &Env<'_>) -> Result<(Algorithm, Duration), ConfigError> {
    preflight(env)?;
    let algorithm = env
        .optional("DINGDANG_SIGN_ALG")
        .map(|v| {
            v.parse::<Algorithm>().map_err(|_| {
                malformed(
                    "DINGDANG_SIGN_ALG",
                    "expected TSK-HMAC-SHA256-BASIC or TSK-RSA2",
                )
            })
        })
        .transpose()?
        .unwrap_or(Algorithm::HmacSha256Basic);
    let skew_secs: u64 = env
        .optional("DINGDANG_CLOCK_SKEW_SECS")
        .map(|v| {
            v.parse()
                .map_err(|_| malformed("DINGDANG_CLOCK_SKEW_SECS", "expected whole seconds"))
        })
        .transpose()?
        .unwrap_or(180);
    Ok((algorithm, Duration::from_secs(skew_secs)))
}

/// `DINGDANG_KEYS_TTL_SECS` (300) and `DINGDANG_KEYS_REFRESH_MIN_SECS` (60).
fn refresh_policy(env: &Env<'_>) -> Result<RefreshPolicy, ConfigError> {
    let defaults = RefreshPolicy::default();
    let secs = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
        env.optional(name)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs)
                    .ok_or_else(|| malformed(name, "expected whole seconds, at least 1"))
            })
            .transpose()
            .map(|v| v.unwrap_or(default))
    };
    Ok(RefreshPolicy {
        ttl: secs("DINGDANG_KEYS_TTL_SECS", defaults.ttl)?,
        min_interval: secs("DINGDANG_KEYS_REFRESH_MIN_SECS", defaults.min_interval)?,
    })
}

/// The keys in the environment's variables.
fn env_keys(env: &Env<'_>, algorithm: Algorithm, skew: Duration) -> Result<KeyRing, ConfigError> {
    Ok(match algorithm {
        Algorithm::HmacSha256Basic => {
            let mut secrets = env.parsed("DINGDANG_SKILL_SECRET", HmacSecret::list)?;
            let signer = Signer::Hmac(secrets[0].clone());
            secrets.shrink_to_fit();
            KeyRing {
                signer,
                verifier: Verifier::hmac(secrets),
                skew,
            }
        }
        Algorithm::Rsa2 => {
            let public = env.parsed("DINGDANG_PLATFORM_PUBLIC_KEY", signing::parse_public_keys)?;
            let private = env.parsed("DINGDANG_SKILL_PRIVATE_KEY", signing::parse_private_key)?;
            KeyRing {
                signer: Signer::rsa2(private),
                verifier: Verifier::rsa2(public),
                skew,
            }
        }
    })
}

fn malformed(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Malformed {
        name,
        reason: reason.into(),
    }
}

struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    fn parsed<T, E: std::fmt::Display>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, ConfigError> {
        parse(&self.required(name)?).map_err(|e| malformed(name, e.to_string()))
    }

    fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self
            .optional(name)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("false" | "0" | "no") => Ok(false),
            Some("true" | "1" | "yes") => Ok(true),
            Some(_) => Err(malformed(name, "expected true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: &[(&str, &str)] = &[
        ("TABLE_NAME", "t"),
        ("DINGDANG_SKILL_ID", "skill-123"),
        ("DINGDANG_SKILL_SECRET", "s1,s2"),
    ];

    #[test]
    fn defaults() {
        let c = Config::from_lookup(lookup(BASE)).unwrap();
        assert_eq!(c.keys.skew(), Duration::from_secs(180));
        assert_eq!(c.keys.ring().signer.algorithm(), Algorithm::HmacSha256Basic);
        assert_eq!(c.keys.policy(), RefreshPolicy::default());
        assert!(!c.accept_unknown_orders);
        assert_eq!(c.protocol, Revision::R2018);
    }

    #[test]
    fn errors_name_the_variable_and_hide_the_value() {
        let err = Config::from_lookup(lookup(&[("TABLE_NAME", "t")])).unwrap_err();
        assert_eq!(err.to_string(), "DINGDANG_SKILL_ID is not set");
        let mut pairs = BASE.to_vec();
        pairs.push(("DINGDANG_CLOCK_SKEW_SECS", "soon"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert!(
            err.to_string().starts_with("DINGDANG_CLOCK_SKEW_SECS"),
            "{err}"
        );
        let pairs = [
            ("TABLE_NAME", "t"),
            ("DINGDANG_SKILL_ID", "skill-123"),
            ("DINGDANG_SIGN_ALG", "TSK-RSA2"),
            ("DINGDANG_PLATFORM_PUBLIC_KEY", "not-a-key-SECRETVALUE"),
            ("DINGDANG_SKILL_PRIVATE_KEY", "x"),
        ];
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err().to_string();
        assert!(err.starts_with("DINGDANG_PLATFORM_PUBLIC_KEY"), "{err}");
        assert!(!err.contains("SECRETVALUE"));
    }

    #[test]
    fn refresh_settings() {
        let mut pairs = BASE.to_vec();
        pairs.push(("DINGDANG_KEYS_TTL_SECS", "0"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err().to_string();
        assert!(err.starts_with("DINGDANG_KEYS_TTL_SECS"), "{err}");
        let mut pairs = BASE.to_vec();
        pairs.push(("DINGDANG_KEYS_REFRESH_MIN_SECS", "x"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err().to_string();
        assert!(err.starts_with("DINGDANG_KEYS_REFRESH_MIN_SECS"), "{err}");
    }

    #[test]
    fn the_secret_is_read_by_load_only() {
        let mut pairs = BASE.to_vec();
        pairs.push(("DINGDANG_SECRET_ARN", "arn:aws:secretsmanager:x"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err().to_string();
        assert!(err.starts_with("DINGDANG_SECRET_ARN"), "{err}");
    }

    #[test]
    fn revision_2019_requires_rsa2() {
        let mut pairs = BASE.to_vec();
        pairs.push(("DINGDANG_PROTOCOL", "2019"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert!(err.to_string().starts_with("DINGDANG_SIGN_ALG"));
    }
}
