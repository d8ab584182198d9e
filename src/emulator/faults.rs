//! Seedable fault injection (SPEC §9).
//!
//! One ChaCha8 generator, seeded by `seed`, draws exactly two numbers per API request in arrival
//! order (a uniform in [0, 1) choosing the fault, and an index choosing the 5xx status), whether
//! or not a fault strikes. A sequential client therefore sees the same faults on the same
//! requests in every run with the same seed.
//!
//! - `error`: answered 500, 502 or 503 before the request is processed;
//! - `timeout`: held for `--fault-timeout`, then the connection is closed without a response;
//! - `reset`: the connection is reset (RST) without a response;
//! - `drop`: the request is processed (a write is committed), then the connection is closed
//!   without a response. Only writes (POST/PUT/DELETE of users and companies) are dropped; a
//!   `drop` drawn for any other request is no fault.
//! - `latency`: added to every API request.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use rand::{RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The default hold of a `timeout` fault.
pub const DEFAULT_FAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Fault settings: probabilities per request (their sum at most 1), latency, seed, hold time.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultConfig {
    /// Probability of a 500/502/503 answer.
    pub error: f64,
    /// Probability of a request held for `timeout_hold`, then closed without an answer.
    pub timeout: f64,
    /// Probability of a connection reset without an answer.
    pub reset: f64,
    /// Probability that a write is committed and its answer dropped.
    pub drop: f64,
    /// Added to every API request.
    pub latency: Duration,
    /// Seed of the fault sequence; random (and reported in stats) when absent.
    pub seed: Option<u64>,
    /// How long a `timeout` fault holds the request before closing the connection.
    pub timeout_hold: Duration,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            error: 0.0,
            timeout: 0.0,
            reset: 0.0,
            drop: 0.0,
            latency: Duration::ZERO,
            seed: None,
            timeout_hold: DEFAULT_FAULT_TIMEOUT,
        }
    }
}

/// Why a `--faults` value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultParseError {
    /// A part that is not one of the known keys.
    #[error(
        "unknown fault `{0}`: expected error=P, timeout=P, reset=P, drop=P, latency=DUR or seed=N"
    )]
    UnknownKey(String),
    /// A probability outside [0, 1].
    #[error("`{0}`: a probability is a number from 0 to 1")]
    Probability(String),
    /// Probabilities adding up to more than 1.
    #[error("the fault probabilities add up to {0}, more than 1")]
    Sum(String),
    /// A bad latency.
    #[error("`{0}`: latency is a duration such as 50ms")]
    Latency(String),
    /// A bad seed.
    #[error("`{0}`: the seed is an unsigned integer")]
    Seed(String),
}

impl FromStr for FaultConfig {
    type Err = FaultParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut cfg = FaultConfig::default();
        if s.trim().eq_ignore_ascii_case("none") {
            return Ok(cfg);
        }
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| FaultParseError::UnknownKey(part.to_string()))?;
            let (key, value) = (key.trim(), value.trim());
            let prob = || -> Result<f64, FaultParseError> {
                match value.parse::<f64>() {
                    Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
                    _ => Err(FaultParseError::Probability(part.to_string())),
                }
            };
            match key {
                "error" => cfg.error = prob()?,
                "timeout" => cfg.timeout = prob()?,
                "reset" => cfg.reset = prob()?,
                "drop" => cfg.drop = prob()?,
                "latency" => {
                    cfg.latency = humantime::parse_duration(value)
                        .map_err(|_| FaultParseError::Latency(part.to_string()))?
                }
                "seed" => {
                    cfg.seed = Some(
                        value
                            .parse()
                            .map_err(|_| FaultParseError::Seed(part.to_string()))?,
                    )
                }
                _ => return Err(FaultParseError::UnknownKey(key.to_string())),
            }
        }
        let sum = cfg.error + cfg.timeout + cfg.reset + cfg.drop;
        if sum > 1.0 + 1e-9 {
            return Err(FaultParseError::Sum(format!("{sum}")));
        }
        Ok(cfg)
    }
}

/// A fault chosen for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this 5xx status.
    Error(u16),
    /// Hold, then close without an answer.
    Timeout,
    /// Reset the connection without an answer.
    Reset,
    /// Process, then close without an answer.
    Drop,
}

impl Fault {
    /// The name used in stats.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Error(_) => "error",
            Fault::Timeout => "timeout",
            Fault::Reset => "reset",
            Fault::Drop => "drop",
        }
    }
}

/// One injected fault, as listed by `GET /_emulator/stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InjectedFault {
    /// 1-based arrival number of the API request.
    pub request: u64,
    /// METHOD + path template.
    pub route: String,
    /// `error`, `timeout`, `reset` or `drop`.
    pub fault: &'static str,
    /// For `error`: the status answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// How many injected faults the stats keep in their list (counts are kept beyond it).
pub const FAULT_LOG_CAP: usize = 10_000;

#[derive(Debug)]
struct Draws {
    rng: ChaCha8Rng,
    requests: u64,
    log: Vec<InjectedFault>,
    counts: BTreeMap<&'static str, u64>,
}

/// The seeded generator and the log of what it injected.
#[derive(Debug)]
pub struct FaultInjector {
    config: FaultConfig,
    seed: u64,
    draws: Mutex<Draws>,
}

/// The fault part of `GET /_emulator/stats`.
#[derive(Debug, Serialize)]
pub struct FaultReport {
    /// The seed in use (the given one, or the random one chosen at start).
    pub seed: u64,
    /// Injected faults per kind.
    pub counts: BTreeMap<&'static str, u64>,
    /// Injected faults in arrival order (the first [`FAULT_LOG_CAP`]).
    pub injected: Vec<InjectedFault>,
}

const ERROR_STATUSES: [u16; 3] = [500, 502, 503];

impl FaultInjector {
    /// A generator at the start of its sequence.
    pub fn new(config: FaultConfig) -> Self {
        let seed = config.seed.unwrap_or_else(|| rand::rng().random());
        FaultInjector {
            draws: Mutex::new(Self::fresh(seed)),
            config,
            seed,
        }
    }

    fn fresh(seed: u64) -> Draws {
        Draws {
            rng: ChaCha8Rng::seed_from_u64(seed),
            requests: 0,
            log: Vec::new(),
            counts: BTreeMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// The seed in use.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Draw the fault for the next arriving API request. `is_write` says whether `drop` applies.
    pub fn draw(&self, route: &str, is_write: bool) -> Option<Fault> {
        let mut d = self.draws.lock().unwrap_or_else(|p| p.into_inner());
        d.requests += 1;
        let u: f64 = d.rng.random();
        let status = ERROR_STATUSES[d.rng.random_range(0..ERROR_STATUSES.len())];
        let c = &self.config;
        let fault = if u < c.error {
            Some(Fault::Error(status))
        } else if u < c.error + c.timeout {
            Some(Fault::Timeout)
        } else if u < c.error + c.timeout + c.reset {
            Some(Fault::Reset)
        } else if u < c.error + c.timeout + c.reset + c.drop && is_write {
            Some(Fault::Drop)
        } else {
            None
        };
        if let Some(f) = fault {
            let request = d.requests;
            *d.counts.entry(f.name()).or_default() += 1;
            if d.log.len() < FAULT_LOG_CAP {
                d.log.push(InjectedFault {
                    request,
                    route: route.to_string(),
                    fault: f.name(),
                    status: match f {
                        Fault::Error(s) => Some(s),
                        _ => None,
                    },
                });
            }
        }
        fault
    }

    /// Back to the start of the sequence, log cleared (admin reset).
    pub fn restart(&self) {
        *self.draws.lock().unwrap_or_else(|p| p.into_inner()) = Self::fresh(self.seed);
    }

    /// Seed, counts and the list of injected faults.
    pub fn report(&self) -> FaultReport {
        let d = self.draws.lock().unwrap_or_else(|p| p.into_inner());
        FaultReport {
            seed: self.seed,
            counts: d.counts.clone(),
            injected: d.log.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flag() {
        let c: FaultConfig = "error=0.1,timeout=0.05,reset=0.05,drop=0.2,latency=20ms,seed=7"
            .parse()
            .unwrap();
        assert_eq!(c.error, 0.1);
        assert_eq!(c.drop, 0.2);
        assert_eq!(c.latency, Duration::from_millis(20));
        assert_eq!(c.seed, Some(7));
        assert_eq!(
            "none".parse::<FaultConfig>().unwrap(),
            FaultConfig::default()
        );
        for bad in [
            "error=2",
            "error=-0.1",
            "error=0.6,drop=0.6",
            "boom=1",
            "seed=x",
            "latency=x",
            "error",
        ] {
            assert!(bad.parse::<FaultConfig>().is_err(), "{bad}");
        }
    }

    #[test]
    fn same_seed_same_sequence() {
        let cfg: FaultConfig = "error=0.2,timeout=0.1,reset=0.1,drop=0.2,seed=42"
            .parse()
            .unwrap();
        let run = || {
            let f = FaultInjector::new(cfg.clone());
            (0..200)
                .map(|i| f.draw("POST /api/users", i % 2 == 0))
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!(a.iter().any(|f| matches!(f, Some(Fault::Drop))));
        assert!(a.iter().any(|f| matches!(f, Some(Fault::Error(_)))));
        // Drops strike writes only.
        assert!(a.iter().skip(1).step_by(2).all(|f| *f != Some(Fault::Drop)));
        let f = FaultInjector::new(cfg.clone());
        let first: Vec<_> = (0..10).map(|_| f.draw("GET /api/users", true)).collect();
        f.restart();
        let again: Vec<_> = (0..10).map(|_| f.draw("GET /api/users", true)).collect();
        assert_eq!(first, again);
    }
}
