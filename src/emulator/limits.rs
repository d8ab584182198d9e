//! Server-side rate limits: a sliding window per route (METHOD + path template) and one for
//! user creates (SPEC §5, §9).
//!
//! A window admits a call when fewer than N calls were admitted in the last DUR; refused calls
//! (429) do not take a slot, so a client that waits for `Retry-After` is never starved.

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::rate::{Rate, RateParseError};

/// The two limits the vendor publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Calls per route (METHOD + path template).
    pub per_route: Rate,
    /// User creates (`POST /api/users`), counted on top of the route's own limit.
    pub creates: Rate,
}

impl Limits {
    /// The vendor's published limits: 50 requests per route per hour, 100 user creations per
    /// hour.
    pub const VENDOR: Limits = Limits {
        per_route: Rate {
            count: 50,
            per: Duration::from_secs(3600),
        },
        creates: Rate {
            count: 100,
            per: Duration::from_secs(3600),
        },
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::VENDOR
    }
}

/// The value of `--rate-limits`: `none`, or `route=N/DUR,create=N/DUR` (either key may be left
/// out and keeps the vendor's value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitsArg(pub Option<Limits>);

/// Why a `--rate-limits` value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsParseError {
    /// A part that is not `route=...` or `create=...`.
    #[error("unknown rate limit `{0}`: expected route=N/DUR, create=N/DUR or none")]
    UnknownKey(String),
    /// The same key twice.
    #[error("`{0}` is given twice")]
    Duplicate(String),
    /// A bad rate.
    #[error(transparent)]
    Rate(#[from] RateParseError),
}

impl FromStr for RateLimitsArg {
    type Err = LimitsParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("none") {
            return Ok(RateLimitsArg(None));
        }
        let mut limits = Limits::VENDOR;
        let (mut route_seen, mut create_seen) = (false, false);
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| LimitsParseError::UnknownKey(part.to_string()))?;
            let (slot, seen) = match key.trim() {
                "route" => (&mut limits.per_route, &mut route_seen),
                "create" => (&mut limits.creates, &mut create_seen),
                other => return Err(LimitsParseError::UnknownKey(other.to_string())),
            };
            if std::mem::replace(seen, true) {
                return Err(LimitsParseError::Duplicate(key.trim().to_string()));
            }
            *slot = value.parse()?;
        }
        Ok(RateLimitsArg(Some(limits)))
    }
}

#[derive(Debug, Default)]
struct Windows {
    routes: HashMap<String, VecDeque<Instant>>,
    creates: VecDeque<Instant>,
}

/// The live windows.
#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    windows: Mutex<Windows>,
}

/// How long until `window` has a free slot under `rate` (zero when it has one now).
fn wait_for_slot(window: &mut VecDeque<Instant>, rate: Rate, now: Instant) -> Duration {
    while let Some(&oldest) = window.front() {
        if now.saturating_duration_since(oldest) >= rate.per {
            window.pop_front();
        } else {
            break;
        }
    }
    if window.len() < rate.count as usize {
        return Duration::ZERO;
    }
    // The slot frees when the call that is `count` calls back leaves the window.
    let blocking = window[window.len() - rate.count as usize];
    blocking
        .checked_add(rate.per)
        .map_or(rate.per, |frees| frees.saturating_duration_since(now))
}

impl Limiter {
    /// Fresh, empty windows.
    pub fn new(limits: Limits) -> Self {
        Limiter {
            limits,
            windows: Mutex::new(Windows::default()),
        }
    }

    /// Admit a call to `route` (and a create, when `is_create`) now, or say how long to wait.
    pub fn admit(&self, route: &str, is_create: bool) -> Result<(), Duration> {
        let now = Instant::now();
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let Windows { routes, creates } = &mut *w;
        let route_window = match routes.get_mut(route) {
            Some(q) => q,
            None => routes.entry(route.to_string()).or_default(),
        };
        let mut wait = wait_for_slot(route_window, self.limits.per_route, now);
        if is_create {
            wait = wait.max(wait_for_slot(creates, self.limits.creates, now));
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        route_window.push_back(now);
        if is_create {
            creates.push_back(now);
        }
        Ok(())
    }

    /// Forget every call (admin reset).
    pub fn clear(&self) {
        *self.windows.lock().unwrap_or_else(|p| p.into_inner()) = Windows::default();
    }
}

/// `Retry-After` in whole seconds: the wait rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flag() {
        assert_eq!(
            "none".parse::<RateLimitsArg>().unwrap(),
            RateLimitsArg(None)
        );
        let l = "route=3/5s,create=2/5s"
            .parse::<RateLimitsArg>()
            .unwrap()
            .0
            .unwrap();
        assert_eq!(l.per_route, "3/5s".parse().unwrap());
        assert_eq!(l.creates, "2/5s".parse().unwrap());
        let l = "route=3/5s".parse::<RateLimitsArg>().unwrap().0.unwrap();
        assert_eq!(l.creates, Limits::VENDOR.creates);
        for bad in [
            "route=0/5s",
            "routes=3/5s",
            "route=3/5s,route=4/5s",
            "route",
            "x",
        ] {
            assert!(bad.parse::<RateLimitsArg>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sliding_window_counts_admitted_calls_only() {
        let limiter = Limiter::new(Limits {
            per_route: "3/1h".parse().unwrap(),
            creates: "2/1h".parse().unwrap(),
        });
        for _ in 0..3 {
            limiter.admit("GET /api/users", false).unwrap();
        }
        let wait = limiter.admit("GET /api/users", false).unwrap_err();
        assert!(wait > Duration::from_secs(3590) && wait <= Duration::from_secs(3600));
        assert_eq!(retry_after_secs(wait), 3600);
        // Another route has its own window; creates have theirs on top.
        limiter.admit("POST /api/users", true).unwrap();
        limiter.admit("POST /api/users", true).unwrap();
        assert!(limiter.admit("POST /api/users", true).is_err());
        limiter.clear();
        limiter.admit("GET /api/users", false).unwrap();
    }

    #[test]
    fn absurd_windows_do_not_overflow() {
        let limiter = Limiter::new(Limits {
            per_route: "1/500000000y".parse().unwrap(),
            creates: Limits::VENDOR.creates,
        });
        limiter.admit("GET /api/users", false).unwrap();
        let wait = limiter.admit("GET /api/users", false).unwrap_err();
        assert!(retry_after_secs(wait) > 1_000_000_000);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(4001)), 5);
        assert_eq!(retry_after_secs(Duration::from_secs(4)), 4);
    }
}
