//! A user's token rate (SPEC §15): at most N logins with the right password
//! per second, minute or hour, with a burst of N, written `N/s`, `N/min` or
//! `N/h`. Counted per node (`service::issue`): N nodes allow N× the rate.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The largest N of a rate.
pub const MAX_RATE_COUNT: u32 = 1_000_000;

/// `count` tokens per `period`, a burst of `count` allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenRate {
    count: u32,
    period: Period,
}

/// The period a rate counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Second,
    Minute,
    Hour,
}

impl Period {
    fn secs(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3600,
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::Second => "s",
            Self::Minute => "min",
            Self::Hour => "h",
        }
    }
}

impl TokenRate {
    /// Parses `N/s`, `N/min` or `N/h` (N from 1 to [`MAX_RATE_COUNT`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a rate: use N/s, N/min or N/h, e.g. 10/min");
        let (n, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if !(1..=MAX_RATE_COUNT).contains(&count) {
            return Err(format!(
                "a rate counts 1 to {MAX_RATE_COUNT} tokens ({count} given)"
            ));
        }
        let period = match unit.trim() {
            "s" => Period::Second,
            "min" => Period::Minute,
            "h" => Period::Hour,
            _ => return Err(bad()),
        };
        Ok(Self { count, period })
    }

    /// Tokens allowed at once.
    pub fn burst(self) -> u32 {
        self.count
    }

    /// How long one token takes to come back.
    pub fn refill(self) -> Duration {
        Duration::from_secs(self.period.secs()) / self.count
    }
}

impl std::fmt::Display for TokenRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.count, self.period.unit())
    }
}

impl TryFrom<String> for TokenRate {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl From<TokenRate> for String {
    fn from(rate: TokenRate) -> Self {
        rate.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{MAX_RATE_COUNT, TokenRate};

    #[test]
    fn rates_read_and_print_the_same() {
        for (text, burst, refill) in [
            ("10/s", 10, Duration::from_millis(100)),
            ("6/min", 6, Duration::from_secs(10)),
            (" 3600/h ", 3600, Duration::from_secs(1)),
            ("1/h", 1, Duration::from_secs(3600)),
        ] {
            let rate = TokenRate::parse(text).unwrap();
            assert_eq!((rate.burst(), rate.refill()), (burst, refill), "{text}");
            assert_eq!(TokenRate::parse(&rate.to_string()).unwrap(), rate);
        }
        assert_eq!(TokenRate::parse("6/min").unwrap().to_string(), "6/min");
        assert_eq!(String::from(TokenRate::parse("2/h").unwrap()), "2/h");
    }

    #[test]
    fn anything_else_is_refused_with_the_forms_named() {
        for bad in ["", "10", "10/d", "/s", "x/s", "-1/s", "10/ min/"] {
            let e = TokenRate::parse(bad).unwrap_err();
            assert!(e.contains("N/s, N/min or N/h"), "{bad}: {e}");
        }
        assert!(TokenRate::parse("0/s").unwrap_err().contains("1 to"));
        assert!(TokenRate::parse(&format!("{}/s", MAX_RATE_COUNT + 1)).is_err());
        assert!(TokenRate::parse(&format!("{MAX_RATE_COUNT}/s")).is_ok());
        assert!(TokenRate::try_from("5/x".to_owned()).is_err());
    }
}
