//! `Rate`: "at most `count` calls in any interval of length `per`", written `N/DURATION`
//! (`50/1h`, `5/2s`) with humantime durations (SPEC §2). Shared by the config, the rate-limit
//! ledger and the emulator.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A sliding-window rate: at most `count` calls in any interval of length `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    /// How many calls the window admits; never zero.
    pub count: u32,
    /// The window's length; never zero.
    pub per: Duration,
}

/// Why a `N/DURATION` string is not a rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateParseError {
    /// No `/` between the count and the duration.
    #[error("`{0}` is not a rate: expected N/DURATION, e.g. 50/1h or 5/2s")]
    Shape(String),
    /// The count is not a positive integer.
    #[error("`{0}` is not a rate: the count must be a positive integer")]
    Count(String),
    /// The duration does not parse or is zero.
    #[error("`{input}` is not a rate: {reason}")]
    Duration {
        /// The whole input.
        input: String,
        /// What is wrong with the duration part.
        reason: String,
    },
}

impl Rate {
    /// A rate from its parts; zero count or zero duration is an error.
    pub fn new(count: u32, per: Duration) -> Result<Self, RateParseError> {
        let rate = Rate { count, per };
        if count == 0 {
            return Err(RateParseError::Count(rate.to_string()));
        }
        if per.is_zero() {
            return Err(RateParseError::Duration {
                input: rate.to_string(),
                reason: "the duration must not be zero".into(),
            });
        }
        Ok(rate)
    }
}

impl FromStr for Rate {
    type Err = RateParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (count, per) = s
            .split_once('/')
            .ok_or_else(|| RateParseError::Shape(s.to_string()))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| RateParseError::Count(s.to_string()))?;
        if count == 0 {
            return Err(RateParseError::Count(s.to_string()));
        }
        let per = humantime::parse_duration(per.trim()).map_err(|e| RateParseError::Duration {
            input: s.to_string(),
            reason: e.to_string(),
        })?;
        if per.is_zero() {
            return Err(RateParseError::Duration {
                input: s.to_string(),
                reason: "the duration must not be zero".into(),
            });
        }
        Ok(Rate { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, humantime::format_duration(self.per))
    }
}

impl serde::Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The JSON Schema pattern of a rate: a positive count, `/`, a humantime duration.
pub const RATE_PATTERN: &str = r"^\s*0*[1-9][0-9]*\s*/\s*([0-9]+\s*[A-Za-z]+\s*)+$";

impl schemars::JsonSchema for Rate {
    fn schema_name() -> Cow<'static, str> {
        "Rate".into()
    }

    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": RATE_PATTERN,
            "description": "At most N calls in any interval of the given length: N/DURATION, e.g. 50/1h or 5/2s.",
            "examples": ["50/1h", "100/1h", "5/2s"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        let r: Rate = "50/1h".parse().unwrap();
        assert_eq!(
            r,
            Rate {
                count: 50,
                per: Duration::from_secs(3600)
            }
        );
        assert_eq!(r.to_string(), "50/1h");
        let r: Rate = " 5 / 2s ".parse().unwrap();
        assert_eq!(
            r,
            Rate {
                count: 5,
                per: Duration::from_secs(2)
            }
        );
        assert_eq!(
            "3/1h30m".parse::<Rate>().unwrap().per,
            Duration::from_secs(5400)
        );
        assert_eq!("3/1h30m".parse::<Rate>().unwrap().to_string(), "3/1h 30m");
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "50",
            "0/1h",
            "-1/1h",
            "x/1h",
            "5/0s",
            "5/",
            "5/abc",
            "5/1h/2",
            "4294967296/1s",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} should not parse");
        }
        assert!(Rate::new(0, Duration::from_secs(1)).is_err());
        assert!(Rate::new(1, Duration::ZERO).is_err());
    }

    #[test]
    fn serde_round_trip_as_string() {
        let r: Rate = serde_json::from_str("\"100/1h\"").unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"100/1h\"");
        assert!(serde_json::from_str::<Rate>("\"0/1h\"").is_err());
        assert!(serde_json::from_str::<Rate>("5").is_err());
    }

    #[test]
    fn pattern_agrees_with_parser_on_examples() {
        let re = regex::Regex::new(RATE_PATTERN).unwrap();
        for good in ["50/1h", "5/2s", "3/1h 30m", "10/500ms"] {
            assert!(re.is_match(good) && good.parse::<Rate>().is_ok(), "{good}");
        }
        for bad in ["0/1h", "5", "/1h"] {
            assert!(!re.is_match(bad) && bad.parse::<Rate>().is_err(), "{bad}");
        }
        let schema = schemars::schema_for!(Rate);
        assert_eq!(schema.get("type").and_then(|t| t.as_str()), Some("string"));
    }
}
