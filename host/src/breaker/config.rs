//! The breaker's tunables and how call outcomes are classified. Defaults follow resilience4j's
//! where they carry over, scaled down for service-to-service calls inside one host.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_with::{DurationMilliSeconds, serde_as};

use super::window::WindowKind;

/// How one inter-component call ended, as the linker classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The callee returned normally, `ok` or a plain value.
    Success,
    /// The callee returned a WIT `err`: the service works, the request was refused.
    BusinessError,
    /// The callee trapped (a panic, an unreachable, a bad memory access...).
    Trap,
    /// The call ran past its deadline and was interrupted.
    Timeout,
    /// The callee hit its memory limit.
    OutOfMemory,
    /// A callee instance could not be created.
    InstantiationFailure,
    /// The call never started: refused by the breaker or the bulkhead.
    Rejected,
    /// The caller went away before the call finished.
    Cancelled,
}

/// Every tunable of one breaker. Serialized field names are those of the config file.
#[serde_as]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Which calls the failure rate is computed over. Twenty calls reacts within a burst of
    /// traffic yet is not tipped by a single bad call.
    pub window: WindowKind,
    /// Fraction of failed calls (0.0 to 1.0) in the window that opens the breaker.
    pub failure_rate_threshold: f64,
    /// Fewer calls than this in the window never open it: a rate over two calls means nothing.
    pub minimum_calls: u32,
    /// A call at least this slow counts as slow even if it succeeds.
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub slow_call_duration: Duration,
    /// Fraction of slow calls that opens the breaker; 1.0 means only when every call is slow.
    pub slow_call_rate_threshold: f64,
    /// When set, the breaker opens after this many failures in a row instead of by rate:
    /// the right mode for a service with too little traffic to fill a window.
    pub consecutive_failures: Option<u32>,
    /// How long it stays open the first time before letting trial calls through.
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub open_wait: Duration,
    /// The open wait multiplies by this on each trip without a close in between.
    pub backoff_multiplier: f64,
    /// The cap on the grown open wait.
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub open_wait_max: Duration,
    /// Each open wait is spread by up to this fraction either way, so that breakers that
    /// opened together do not all retry in the same instant.
    pub jitter: f64,
    /// How many trial calls half-open lets through before deciding.
    pub half_open_permits: u32,
    /// Half-open gives up and reopens after this long, so a trial call that never ends cannot
    /// leave the breaker stuck.
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub half_open_max_duration: Duration,
    /// The outcomes that count as failures. Business errors are answers, not failures.
    pub failure_outcomes: Vec<Outcome>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: WindowKind::Count(20),
            failure_rate_threshold: 0.5,
            minimum_calls: 5,
            slow_call_duration: Duration::from_secs(5),
            slow_call_rate_threshold: 1.0,
            consecutive_failures: None,
            open_wait: Duration::from_secs(5),
            backoff_multiplier: 2.0,
            open_wait_max: Duration::from_secs(60),
            jitter: 0.1,
            half_open_permits: 3,
            half_open_max_duration: Duration::from_secs(30),
            failure_outcomes: vec![
                Outcome::Trap,
                Outcome::Timeout,
                Outcome::OutOfMemory,
                Outcome::InstantiationFailure,
            ],
        }
    }
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::BusinessError => "business-error",
            Outcome::Trap => "trap",
            Outcome::Timeout => "timeout",
            Outcome::OutOfMemory => "out-of-memory",
            Outcome::InstantiationFailure => "instantiation-failure",
            Outcome::Rejected => "rejected",
            Outcome::Cancelled => "cancelled",
        }
    }
}

impl BreakerConfig {
    pub fn is_failure(&self, outcome: Outcome) -> bool {
        self.failure_outcomes.contains(&outcome)
    }

    /// Whether an outcome enters the statistics at all: a call that never ran, or whose
    /// caller left, says nothing about the callee's health.
    pub fn counts(&self, outcome: Outcome) -> bool {
        !matches!(outcome, Outcome::Rejected | Outcome::Cancelled) || self.is_failure(outcome)
    }

    /// The open wait after the `trips`-th trip in a row; `unit` is a random number in [0, 1).
    pub fn open_wait_for(&self, trips: u32, unit: f64) -> Duration {
        let grown = self.open_wait.as_secs_f64() * self.backoff_multiplier.powi(trips.saturating_sub(1) as i32);
        let capped = grown.min(self.open_wait_max.as_secs_f64());
        let spread = capped * self.jitter * (2.0 * unit - 1.0);
        Duration::from_secs_f64((capped + spread).max(0.0))
    }
}
