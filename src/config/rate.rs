//! `N/DURATION` rates (placeholder until the emulator branch lands its full version).

use std::time::Duration;

/// At most `count` calls in any window of `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, d) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid rate `{s}`: expected N/DURATION, e.g. 50/1h"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("invalid rate `{s}`: `{}` is not a whole number", n.trim()))?;
        let per =
            humantime::parse_duration(d.trim()).map_err(|e| format!("invalid rate `{s}`: {e}"))?;
        if count == 0 || per.is_zero() {
            return Err(format!(
                "invalid rate `{s}`: count and duration must be positive"
            ));
        }
        Ok(Rate { count, per })
    }
}
