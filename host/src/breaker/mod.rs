//! The circuit breaker that guards every call from one component into another.
//!
//! It owns the closed / open / half-open state machine, the sliding window, the open wait with
//! backoff and jitter, and operator overrides. It does not run calls or measure them: the
//! linker asks for a [`Permit`], runs the call, and reports an [`Outcome`]. No crate bounds
//! half-open trial calls or tracks permits dropped by cancelled callers, hence this module.

mod clock;
mod config;
mod window;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{BreakerConfig, Outcome};
pub use window::WindowKind;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use window::{Sample, Window};

/// The state as reported to operators and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateName {
    Closed,
    Open,
    HalfOpen,
    ForcedOpen,
    ForcedClosed,
}

impl StateName {
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Closed => "closed",
            StateName::Open => "open",
            StateName::HalfOpen => "half-open",
            StateName::ForcedOpen => "forced-open",
            StateName::ForcedClosed => "forced-closed",
        }
    }
}

#[derive(Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { since: Instant, issued: u32, recorded: u32, failures: u32 },
    ForcedOpen,
    ForcedClosed,
}

/// A call the breaker refused, with when it is worth trying again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub state: StateName,
    /// `None` when an operator forced the breaker open: only they can close it.
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.retry_after {
            Some(wait) => write!(f, "circuit breaker {}; retry in {} ms", self.state.as_str(), wait.as_millis()),
            None => write!(f, "circuit breaker forced open by an operator"),
        }
    }
}

/// What an operator or a report sees of one breaker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub state: StateName,
    pub calls: u32,
    pub failures: u32,
    pub slow: u32,
    pub failure_rate: f64,
    /// How many times in a row it has opened without closing in between (drives the backoff).
    pub trips: u32,
    pub transitions: u64,
    pub retry_after_ms: Option<u128>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    window: Window,
    consecutive_failures: u32,
    trips: u32,
    /// Bumped on every state change so that a permit issued in an older state cannot move the new one.
    generation: u64,
    transitions: u64,
}

/// Told of every state change, e.g. to update metrics; called with the breaker locked, so
/// it must be quick.
pub type Observer = Box<dyn Fn(StateName) + Send + Sync>;

/// One breaker, shared by every call on one caller-to-interface link.
pub struct Breaker {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
    observer: Option<Observer>,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker").field("config", &self.config).field("inner", &self.inner).finish()
    }
}

impl Breaker {
    pub fn new(config: BreakerConfig, clock: Arc<dyn Clock>) -> Arc<Self> {
        Self::observed(config, clock, None)
    }

    /// A breaker that reports each state change to `observer`.
    pub fn observed(config: BreakerConfig, clock: Arc<dyn Clock>, observer: Option<Observer>) -> Arc<Self> {
        let window = Window::new(config.window);
        Arc::new(Self {
            config,
            clock,
            inner: Mutex::new(Inner {
                state: State::Closed,
                window,
                consecutive_failures: 0,
                trips: 0,
                generation: 0,
                transitions: 0,
            }),
            observer,
        })
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Asks to make one call. The permit must be given the call's outcome; dropping it
    /// unrecorded counts as [`Outcome::Cancelled`] and frees its half-open slot.
    pub fn try_acquire(self: &Arc<Self>) -> Result<Permit, Rejected> {
        let now = self.clock.now();
        let mut inner = self.inner.lock().unwrap();
        self.expire(&mut inner, now);
        let trial = match &mut inner.state {
            State::Closed | State::ForcedClosed => false,
            State::Open { until } => {
                return Err(Rejected {
                    state: StateName::Open,
                    retry_after: Some(until.saturating_duration_since(now)),
                });
            }
            State::ForcedOpen => return Err(Rejected { state: StateName::ForcedOpen, retry_after: None }),
            State::HalfOpen { since, issued, .. } => {
                if *issued >= self.config.half_open_permits {
                    let deadline = *since + self.config.half_open_max_duration;
                    return Err(Rejected {
                        state: StateName::HalfOpen,
                        retry_after: Some(deadline.saturating_duration_since(now)),
                    });
                }
                *issued += 1;
                true
            }
        };
        Ok(Permit { breaker: Arc::clone(self), generation: inner.generation, trial, started: now, done: false })
    }

    pub fn snapshot(&self) -> Snapshot {
        let now = self.clock.now();
        let mut inner = self.inner.lock().unwrap();
        self.expire(&mut inner, now);
        let totals = inner.window.totals(now);
        let retry_after_ms = match inner.state {
            State::Open { until } => Some(until.saturating_duration_since(now).as_millis()),
            _ => None,
        };
        Snapshot {
            state: state_name(&inner.state),
            calls: totals.calls,
            failures: totals.failures,
            slow: totals.slow,
            failure_rate: totals.failure_rate(),
            trips: inner.trips,
            transitions: inner.transitions,
            retry_after_ms,
        }
    }

    pub fn state(&self) -> StateName {
        self.snapshot().state
    }

    /// Operator override: reject every call until [`Breaker::reset`] or [`Breaker::force_closed`].
    pub fn force_open(&self) {
        self.transition(&mut self.inner.lock().unwrap(), State::ForcedOpen);
    }

    /// Operator override: let every call through and stop counting until [`Breaker::reset`].
    pub fn force_closed(&self) {
        self.transition(&mut self.inner.lock().unwrap(), State::ForcedClosed);
    }

    /// Back to a fresh closed breaker with an empty window and no backoff.
    pub fn reset(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.trips = 0;
        self.transition(&mut inner, State::Closed);
    }

    /// Time-driven transitions: open -> half-open when the wait is over, and a half-open
    /// state that outlived its maximum back to open (a trial call that never finishes
    /// must not keep the breaker stuck).
    fn expire(&self, inner: &mut Inner, now: Instant) {
        match inner.state {
            State::Open { until } if now >= until => {
                self.transition(inner, State::HalfOpen { since: now, issued: 0, recorded: 0, failures: 0 });
            }
            State::HalfOpen { since, .. } if now >= since + self.config.half_open_max_duration => {
                self.trip(inner, now);
            }
            _ => {}
        }
    }

    fn record(&self, permit: &Permit, outcome: Outcome, elapsed: Duration) {
        let now = self.clock.now();
        let mut guard = self.inner.lock().unwrap();
        let inner = &mut *guard;
        if inner.generation != permit.generation {
            return;
        }
        if !self.config.counts(outcome) {
            if let State::HalfOpen { issued, .. } = &mut inner.state {
                *issued = issued.saturating_sub(1);
            }
            return;
        }
        let failed = self.config.is_failure(outcome);
        let slow = elapsed >= self.config.slow_call_duration;
        inner.consecutive_failures = if failed { inner.consecutive_failures + 1 } else { 0 };
        match &mut inner.state {
            State::Closed => {
                inner.window.record(Sample { failed, slow }, now);
                if self.should_trip(inner, now) {
                    self.trip(inner, now);
                }
            }
            State::HalfOpen { recorded, failures, .. } => {
                *recorded += 1;
                *failures += u32::from(failed);
                let (recorded, failures) = (*recorded, *failures);
                let consecutive_mode = self.config.consecutive_failures.is_some();
                if failed && consecutive_mode {
                    self.trip(inner, now);
                } else if recorded >= self.config.half_open_permits {
                    let rate = f64::from(failures) / f64::from(recorded);
                    if rate >= self.config.failure_rate_threshold && failures > 0 {
                        self.trip(inner, now);
                    } else {
                        inner.trips = 0;
                        self.transition(inner, State::Closed);
                    }
                }
            }
            State::Open { .. } | State::ForcedOpen | State::ForcedClosed => {}
        }
    }

    fn should_trip(&self, inner: &mut Inner, now: Instant) -> bool {
        if let Some(limit) = self.config.consecutive_failures {
            return inner.consecutive_failures >= limit;
        }
        let totals = inner.window.totals(now);
        totals.calls >= self.config.minimum_calls
            && (totals.failure_rate() >= self.config.failure_rate_threshold
                || totals.slow_rate() >= self.config.slow_call_rate_threshold)
    }

    fn trip(&self, inner: &mut Inner, now: Instant) {
        inner.trips += 1;
        let wait = self.config.open_wait_for(inner.trips, rand::random::<f64>());
        self.transition(inner, State::Open { until: now + wait });
    }

    fn transition(&self, inner: &mut Inner, to: State) {
        let from = state_name(&inner.state);
        let to_name = state_name(&to);
        if matches!(to, State::Closed) {
            inner.window.clear();
            inner.consecutive_failures = 0;
        }
        inner.state = to;
        inner.generation += 1;
        if from != to_name {
            inner.transitions += 1;
            if let Some(observer) = &self.observer {
                observer(to_name);
            }
        }
    }
}

fn state_name(state: &State) -> StateName {
    match state {
        State::Closed => StateName::Closed,
        State::Open { .. } => StateName::Open,
        State::HalfOpen { .. } => StateName::HalfOpen,
        State::ForcedOpen => StateName::ForcedOpen,
        State::ForcedClosed => StateName::ForcedClosed,
    }
}

/// The right to make one call. Record its outcome with [`Permit::record`]; a permit dropped
/// unrecorded (the caller went away) counts as cancelled and frees its slot.
#[derive(Debug)]
pub struct Permit {
    breaker: Arc<Breaker>,
    generation: u64,
    trial: bool,
    started: Instant,
    done: bool,
}

impl Permit {
    /// Whether this call is one of the half-open trial calls.
    pub fn is_trial(&self) -> bool {
        self.trial
    }

    pub fn record(mut self, outcome: Outcome) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: Outcome) {
        if !self.done {
            self.done = true;
            let elapsed = self.breaker.clock.now().saturating_duration_since(self.started);
            self.breaker.record(self, outcome, elapsed);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled);
    }
}

#[cfg(test)]
mod tests;
