//! The `Authorization` header: algorithm word, `Datetime`, `Signature`.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

use super::SignError;

/// Longest `Authorization` header value accepted (bytes).
pub const MAX_HEADER_LEN: usize = 4096;

/// A TSK signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `TSK-HMAC-SHA256-BASIC`: lowercase hex HMAC-SHA256 with the skill secret.
    HmacSha256Basic,
    /// `TSK-RSA2`: base64 RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa2,
}

impl Algorithm {
    /// The algorithm word as it appears in the header.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::HmacSha256Basic => "TSK-HMAC-SHA256-BASIC",
            Algorithm::Rsa2 => "TSK-RSA2",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is neither `TSK-HMAC-SHA256-BASIC` nor `TSK-RSA2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown signing algorithm (expected TSK-HMAC-SHA256-BASIC or TSK-RSA2)")]
pub struct UnknownAlgorithm;

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "TSK-HMAC-SHA256-BASIC" => Ok(Algorithm::HmacSha256Basic),
            "TSK-RSA2" => Ok(Algorithm::Rsa2),
            _ => Err(UnknownAlgorithm),
        }
    }
}

/// The `Datetime` of a signature: UTC, whole seconds, `YYYYMMDDTHHMMSSZ`.
///
/// Keeps the exact text that was signed next to the instant it denotes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignDatetime {
    text: String,
    at: OffsetDateTime,
}

const BAD_DATETIME: SignError = SignError::Malformed("bad Datetime");

impl SignDatetime {
    /// Length of the text form.
    pub const LEN: usize = 16;

    /// Parses exactly `YYYYMMDDTHHMMSSZ` (16 characters, a real UTC calendar
    /// date and time of day).
    pub fn parse(s: &str) -> Result<Self, SignError> {
        let b = s.as_bytes();
        let digits = |range: std::ops::Range<usize>| -> Result<u32, SignError> {
            b[range].iter().try_fold(0u32, |acc, &c| {
                if c.is_ascii_digit() {
                    Ok(acc * 10 + u32::from(c - b'0'))
                } else {
                    Err(BAD_DATETIME)
                }
            })
        };
        if b.len() != Self::LEN || b[8] != b'T' || b[15] != b'Z' {
            return Err(BAD_DATETIME);
        }
        let year = i32::try_from(digits(0..4)?).map_err(|_| BAD_DATETIME)?;
        let month = u8::try_from(digits(4..6)?).map_err(|_| BAD_DATETIME)?;
        let day = u8::try_from(digits(6..8)?).map_err(|_| BAD_DATETIME)?;
        let hour = u8::try_from(digits(9..11)?).map_err(|_| BAD_DATETIME)?;
        let minute = u8::try_from(digits(11..13)?).map_err(|_| BAD_DATETIME)?;
        let second = u8::try_from(digits(13..15)?).map_err(|_| BAD_DATETIME)?;
        let month = Month::try_from(month).map_err(|_| BAD_DATETIME)?;
        let date = Date::from_calendar_date(year, month, day).map_err(|_| BAD_DATETIME)?;
        let time = Time::from_hms(hour, minute, second).map_err(|_| BAD_DATETIME)?;
        Ok(Self {
            text: s.to_owned(),
            at: date.with_time(time).assume_utc(),
        })
    }

    /// The `Datetime` of an instant: converted to UTC, sub-seconds dropped.
    /// Instants outside years 0000..=9999 are clamped to that range.
    pub fn from_time(t: OffsetDateTime) -> Self {
        let t = t.to_offset(UtcOffset::UTC);
        let t = t.replace_nanosecond(0).unwrap_or(t);
        let t = if t.year() < 0 {
            time::macros::datetime!(0000-01-01 00:00:00 UTC)
        } else if t.year() > 9999 {
            time::macros::datetime!(9999-12-31 23:59:59 UTC)
        } else {
            t
        };
        let text = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        Self { text, at: t }
    }

    /// The text form, exactly as signed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The instant (UTC).
    pub fn at(&self) -> OffsetDateTime {
        self.at
    }
}

impl fmt::Display for SignDatetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for SignDatetime {
    type Err = SignError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A parsed `Authorization` header value.
///
/// [`Authorization::parse`] also checks that the signature is encoded as its
/// algorithm requires (64 hex digits for HMAC, standard base64 for RSA2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// The algorithm word.
    pub algorithm: Algorithm,
    /// The `Datetime` parameter.
    pub datetime: SignDatetime,
    /// The `Signature` parameter as sent (hex or base64).
    pub signature: String,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

impl Authorization {
    /// Parses `<ALG> Datetime=<dt>, Signature=<sig>`.
    ///
    /// Spaces or tabs around the header, `,` and `=` are tolerated and the
    /// parameters may come in any order; unknown or duplicate parameters, a
    /// missing or empty one, a bad `Datetime`, a signature not encoded as the
    /// algorithm requires, and a header over [`MAX_HEADER_LEN`] bytes are
    /// [`SignError::Malformed`].
    pub fn parse(header: &str) -> Result<Self, SignError> {
        if header.len() > MAX_HEADER_LEN {
            return Err(SignError::Malformed("header too long"));
        }
        let header = header.trim_matches(is_blank);
        if header.is_empty() {
            return Err(SignError::Malformed("empty header"));
        }
        let (word, params) = header
            .split_once(is_blank)
            .ok_or(SignError::Malformed("no parameters"))?;
        let algorithm: Algorithm = word.parse()?;

        let mut datetime = None;
        let mut signature = None;
        for param in params.split(',') {
            let (name, value) = param
                .split_once('=')
                .ok_or(SignError::Malformed("parameter without '='"))?;
            let name = name.trim_matches(is_blank);
            let value = value.trim_matches(is_blank);
            let slot = match name {
                "Datetime" => &mut datetime,
                "Signature" => &mut signature,
                _ => return Err(SignError::Malformed("unknown parameter")),
            };
            if slot.is_some() {
                return Err(SignError::Malformed("duplicate parameter"));
            }
            *slot = Some(value);
        }
        let datetime = datetime.ok_or(SignError::Malformed("missing Datetime"))?;
        let signature = signature.ok_or(SignError::Malformed("missing Signature"))?;
        if signature.is_empty() {
            return Err(SignError::Malformed("empty Signature"));
        }
        let datetime = SignDatetime::parse(datetime)?;
        let well_encoded = match algorithm {
            Algorithm::HmacSha256Basic => {
                signature.len() == 64 && signature.bytes().all(|c| c.is_ascii_hexdigit())
            }
            Algorithm::Rsa2 => STANDARD.decode(signature).is_ok(),
        };
        if !well_encoded {
            return Err(SignError::Malformed("bad Signature encoding"));
        }
        Ok(Self {
            algorithm,
            datetime,
            signature: signature.to_owned(),
        })
    }
}

impl fmt::Display for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} Datetime={}, Signature={}",
            self.algorithm, self.datetime, self.signature
        )
    }
}

impl FromStr for Authorization {
    type Err = SignError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const HEX: &str = "bd29a551948ea1e58303b32bfbf3467fffb6dad7cba3055df69cc8fb12ab5595";

    fn malformed(header: &str) -> &'static str {
        match Authorization::parse(header) {
            Err(SignError::Malformed(reason)) => reason,
            other => panic!("{header:?} gave {other:?}"),
        }
    }

    #[test]
    fn algorithm_round_trips() {
        for alg in [Algorithm::HmacSha256Basic, Algorithm::Rsa2] {
            assert_eq!(alg.to_string().parse::<Algorithm>(), Ok(alg));
        }
        assert_eq!("tsk-rsa2".parse::<Algorithm>(), Err(UnknownAlgorithm));
        assert_eq!("".parse::<Algorithm>(), Err(UnknownAlgorithm));
    }

    #[test]
    fn datetime_parses_strictly() {
        let dt = SignDatetime::parse("20170720T193559Z").unwrap();
        assert_eq!(dt.as_str(), "20170720T193559Z");
        assert_eq!(dt.at(), datetime!(2017-07-20 19:35:59 UTC));
        assert_eq!(dt.to_string(), "20170720T193559Z");
        assert!(SignDatetime::parse("20000229T000000Z").is_ok());
        for bad in [
            "",
            "20181322T101500Z",
            "20180230T101500Z",
            "20190229T000000Z",
            "20180622T241500Z",
            "20180622T106000Z",
            "20180622T101560Z",
            "20180622 101500Z",
            "20180622T101500z",
            "20180622T101500",
            "20180622T101500Z ",
            "2018062T101500ZZ",
            "+0180622T101500Z",
            "20180622T10150-Z",
            "2018-06-22T10:15:00Z",
            "２0180622T101500Z",
        ] {
            assert_eq!(SignDatetime::parse(bad), Err(BAD_DATETIME), "{bad:?}");
        }
    }

    #[test]
    fn datetime_from_time_is_utc_and_whole_seconds() {
        let t = datetime!(2017-07-21 03:35:59.999 +08:00);
        let dt = SignDatetime::from_time(t);
        assert_eq!(dt.as_str(), "20170720T193559Z");
        assert_eq!(dt.at(), datetime!(2017-07-20 19:35:59 UTC));
        assert_eq!(SignDatetime::parse(dt.as_str()).unwrap(), dt);
        let early = SignDatetime::from_time(datetime!(-0001-06-01 00:00 UTC));
        assert_eq!(early.as_str(), "00000101T000000Z");
        assert_eq!(
            SignDatetime::from_time(datetime!(0007-01-02 03:04:05 UTC)).as_str(),
            "00070102T030405Z"
        );
    }

    #[test]
    fn header_parses_and_displays() {
        let h = format!("TSK-HMAC-SHA256-BASIC Datetime=20170720T193559Z, Signature={HEX}");
        let a = Authorization::parse(&h).unwrap();
        assert_eq!(a.algorithm, Algorithm::HmacSha256Basic);
        assert_eq!(a.datetime.as_str(), "20170720T193559Z");
        assert_eq!(a.signature, HEX);
        assert_eq!(a.to_string(), h);
        assert_eq!(h.parse::<Authorization>().unwrap(), a);
    }

    #[test]
    fn header_tolerates_spaces_and_order() {
        let expected = Authorization::parse(&format!(
            "TSK-HMAC-SHA256-BASIC Datetime=20170720T193559Z, Signature={HEX}"
        ))
        .unwrap();
        for h in [
            format!("  TSK-HMAC-SHA256-BASIC   Datetime = 20170720T193559Z ,Signature= {HEX}  "),
            format!("TSK-HMAC-SHA256-BASIC Signature={HEX}, Datetime=20170720T193559Z"),
            format!("TSK-HMAC-SHA256-BASIC\tDatetime=20170720T193559Z,\tSignature={HEX}"),
            format!("TSK-HMAC-SHA256-BASIC Datetime=20170720T193559Z,Signature={HEX}"),
        ] {
            assert_eq!(Authorization::parse(&h).unwrap(), expected, "{h:?}");
        }
        let upper = format!(
            "TSK-HMAC-SHA256-BASIC Datetime=20170720T193559Z, Signature={}",
            HEX.to_uppercase()
        );
        assert!(Authorization::parse(&upper).is_ok());
    }

    #[test]
    fn header_rsa2_needs_base64() {
        let ok = "TSK-RSA2 Datetime=20180622T101500Z, Signature=AAECAw==";
        assert_eq!(Authorization::parse(ok).unwrap().algorithm, Algorithm::Rsa2);
        assert_eq!(
            malformed("TSK-RSA2 Datetime=20180622T101500Z, Signature=AAECAw"),
            "bad Signature encoding"
        );
        assert_eq!(
            malformed("TSK-RSA2 Datetime=20180622T101500Z, Signature=AA*CAw=="),
            "bad Signature encoding"
        );
    }

    #[test]
    fn header_malformed_cases() {
        let dt = "Datetime=20180622T101500Z";
        let sig = format!("Signature={HEX}");
        assert_eq!(malformed(""), "empty header");
        assert_eq!(malformed("   "), "empty header");
        assert_eq!(malformed("garbage"), "no parameters");
        assert_eq!(malformed("Bearer abc.def"), "unknown algorithm");
        assert_eq!(
            malformed(&format!("TSK-HMAC-SHA256 {dt}, {sig}")),
            "unknown algorithm"
        );
        assert_eq!(
            malformed(&format!("TSK-HMAC-SHA256-BASIC {dt}")),
            "missing Signature"
        );
        assert_eq!(
            malformed(&format!("TSK-HMAC-SHA256-BASIC {sig}")),
            "missing Datetime"
        );
        assert_eq!(
            malformed(&format!("TSK-HMAC-SHA256-BASIC {dt}, {sig}, {dt}")),
            "duplicate parameter"
        );
        assert_eq!(
            malformed(&format!("TSK-HMAC-SHA256-BASIC {dt}, {sig}, {sig}")),
            "duplicate parameter"
        );
        assert_eq!(
            malformed(&format!("TSK-HMAC-SHA256-BASIC {dt}, {sig}, Nonce=1")),
            "unknown parameter"
        );
        assert_eq!(
            malformed(&format!(
                "TSK-HMAC-SHA256-BASIC datetime=20180622T101500Z, {sig}"
            )),
            "unknown parameter"
        );
        assert_eq!(
            malformed(&format!("TSK-HMAC-SHA256-BASIC {dt}, {sig},")),
            "parameter without '='"
        );
        assert_eq!(
            malformed(&format!("TSK-HMAC-SHA256-BASIC {dt} {sig}")),
            "missing Signature"
        );
        assert_eq!(
            malformed(&format!("TSK-HMAC-SHA256-BASIC {dt}, Signature=")),
            "empty Signature"
        );
        assert_eq!(
            malformed(&format!("TSK-HMAC-SHA256-BASIC {dt}, Signature= ")),
            "empty Signature"
        );
        assert_eq!(
            malformed(&format!(
                "TSK-HMAC-SHA256-BASIC Datetime=20181322T101500Z, {sig}"
            )),
            "bad Datetime"
        );
        assert_eq!(
            malformed(&format!(
                "TSK-HMAC-SHA256-BASIC {dt}, Signature={}",
                &HEX[1..]
            )),
            "bad Signature encoding"
        );
        assert_eq!(
            malformed(&format!("TSK-HMAC-SHA256-BASIC {dt}, Signature={HEX}0")),
            "bad Signature encoding"
        );
        assert_eq!(
            malformed(&format!(
                "TSK-HMAC-SHA256-BASIC {dt}, Signature={}g",
                &HEX[1..]
            )),
            "bad Signature encoding"
        );
        let long = format!("TSK-RSA2 {dt}, Signature={}", "A".repeat(MAX_HEADER_LEN));
        assert_eq!(malformed(&long), "header too long");
    }
}
