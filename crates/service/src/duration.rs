//! Durations in config files: an integer number of seconds or a humantime string ("5m",
//! "90s", "1h 30m").

use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Seconds(u64),
    Text(String),
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    match Raw::deserialize(deserializer)? {
        Raw::Seconds(secs) => Ok(Duration::from_secs(secs)),
        Raw::Text(text) => humantime::parse_duration(&text)
            .map_err(|e| de::Error::custom(format!("invalid duration {text:?}: {e}"))),
    }
}

/// Whole seconds of a duration, as the verification core counts time.
pub fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "deserialize")]
        ttl: Duration,
    }

    #[test]
    fn seconds_and_humantime_both_parse() {
        let parse = |text: &str| serde_json::from_str::<Holder>(text).map(|h| h.ttl);
        assert_eq!(parse(r#"{"ttl": 300}"#).unwrap(), Duration::from_secs(300));
        assert_eq!(parse(r#"{"ttl": "5m"}"#).unwrap(), Duration::from_secs(300));
        assert_eq!(
            parse(r#"{"ttl": "1h 30m"}"#).unwrap(),
            Duration::from_secs(5400)
        );
        let error = parse(r#"{"ttl": "soon"}"#).unwrap_err().to_string();
        assert!(error.contains("invalid duration"), "{error}");
        assert!(parse(r#"{"ttl": -1}"#).is_err());
    }
}
