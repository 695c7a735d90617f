//! The breaker's state machine, driven by a manual clock: no test sleeps.

use super::*;

fn breaker(config: BreakerConfig) -> (Arc<Breaker>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    (Breaker::new(config, clock.clone()), clock)
}

fn quiet() -> BreakerConfig {
    BreakerConfig { jitter: 0.0, ..BreakerConfig::default() }
}

fn call(b: &Arc<Breaker>, outcome: Outcome) {
    b.try_acquire().expect("breaker should admit the call").record(outcome);
}

fn open_it(b: &Arc<Breaker>) {
    for _ in 0..b.config().minimum_calls {
        call(b, Outcome::Trap);
    }
    assert_eq!(b.state(), StateName::Open);
}

#[test]
fn stays_closed_below_the_minimum_number_of_calls() {
    let (b, _) = breaker(quiet());
    for _ in 0..4 {
        call(&b, Outcome::Trap);
    }
    assert_eq!(b.state(), StateName::Closed);
    call(&b, Outcome::Trap);
    assert_eq!(b.state(), StateName::Open);
}

#[test]
fn opens_exactly_at_the_failure_rate_threshold() {
    let (b, _) = breaker(BreakerConfig { minimum_calls: 10, ..quiet() });
    for _ in 0..5 {
        call(&b, Outcome::Success);
    }
    for _ in 0..4 {
        call(&b, Outcome::Timeout);
    }
    assert_eq!(b.state(), StateName::Closed, "4 of 9 is below both the minimum and the rate");
    call(&b, Outcome::Timeout);
    assert_eq!(b.state(), StateName::Open, "5 failures of 10 calls is 50%");
}

#[test]
fn business_errors_are_answers_not_failures() {
    let (b, _) = breaker(quiet());
    for _ in 0..50 {
        call(&b, Outcome::BusinessError);
    }
    assert_eq!(b.state(), StateName::Closed);
    assert_eq!(b.snapshot().failures, 0);
}

#[test]
fn configured_failure_outcomes_decide_what_counts() {
    let config = BreakerConfig { failure_outcomes: vec![Outcome::Timeout], ..quiet() };
    let (b, _) = breaker(config);
    for _ in 0..10 {
        call(&b, Outcome::Trap);
    }
    assert_eq!(b.state(), StateName::Closed, "traps were configured not to count");
    for _ in 0..10 {
        call(&b, Outcome::Timeout);
    }
    assert_eq!(b.state(), StateName::Open);
}

#[test]
fn count_window_forgets_calls_that_slid_out() {
    let (b, _) = breaker(BreakerConfig { window: WindowKind::Count(10), minimum_calls: 10, ..quiet() });
    for _ in 0..4 {
        call(&b, Outcome::Trap);
    }
    for _ in 0..10 {
        call(&b, Outcome::Success);
    }
    let snap = b.snapshot();
    assert_eq!((snap.calls, snap.failures), (10, 0), "the four traps slid out of the last ten");
}

#[test]
fn time_window_forgets_calls_older_than_its_span() {
    let (b, clock) = breaker(BreakerConfig { window: WindowKind::Time(10), minimum_calls: 5, ..quiet() });
    for _ in 0..4 {
        call(&b, Outcome::Trap);
    }
    clock.advance(Duration::from_secs(11));
    call(&b, Outcome::Trap);
    assert_eq!(b.state(), StateName::Closed, "only one failure is inside the last 10 s");
    assert_eq!(b.snapshot().calls, 1);
    for _ in 0..4 {
        clock.advance(Duration::from_millis(500));
        call(&b, Outcome::Trap);
    }
    assert_eq!(b.state(), StateName::Open);
}

#[test]
fn slow_calls_open_it_even_when_they_succeed() {
    let config =
        BreakerConfig { slow_call_duration: Duration::from_millis(100), slow_call_rate_threshold: 0.6, ..quiet() };
    let (b, clock) = breaker(config);
    for _ in 0..5 {
        let permit = b.try_acquire().unwrap();
        clock.advance(Duration::from_millis(150));
        permit.record(Outcome::Success);
    }
    assert_eq!(b.state(), StateName::Open);
    assert_eq!(b.snapshot().failures, 0);
}

#[test]
fn consecutive_failures_mode_opens_on_a_run_and_resets_on_success() {
    let (b, _) = breaker(BreakerConfig { consecutive_failures: Some(3), ..quiet() });
    call(&b, Outcome::Trap);
    call(&b, Outcome::Trap);
    call(&b, Outcome::Success);
    call(&b, Outcome::Trap);
    call(&b, Outcome::Trap);
    assert_eq!(b.state(), StateName::Closed);
    call(&b, Outcome::Trap);
    assert_eq!(b.state(), StateName::Open);
}

#[test]
fn open_rejects_with_the_time_left_then_half_opens() {
    let (b, clock) = breaker(quiet());
    open_it(&b);
    let rejected = b.try_acquire().unwrap_err();
    assert_eq!(rejected.state, StateName::Open);
    assert_eq!(rejected.retry_after, Some(Duration::from_secs(5)));
    clock.advance(Duration::from_secs(2));
    assert_eq!(b.try_acquire().unwrap_err().retry_after, Some(Duration::from_secs(3)));
    clock.advance(Duration::from_secs(3));
    assert_eq!(b.state(), StateName::HalfOpen);
}

#[test]
fn half_open_admits_only_its_permits_and_closes_when_they_succeed() {
    let (b, clock) = breaker(quiet());
    open_it(&b);
    clock.advance(Duration::from_secs(5));
    let trials: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
    assert!(trials.iter().all(Permit::is_trial));
    let extra = b.try_acquire().unwrap_err();
    assert_eq!(extra.state, StateName::HalfOpen);
    for permit in trials {
        permit.record(Outcome::Success);
    }
    assert_eq!(b.state(), StateName::Closed);
    assert_eq!(b.snapshot().calls, 0, "closing starts a fresh window");
}

#[test]
fn half_open_reopens_when_trials_fail_with_a_longer_wait() {
    let (b, clock) = breaker(quiet());
    open_it(&b);
    clock.advance(Duration::from_secs(5));
    for _ in 0..3 {
        call(&b, Outcome::Trap);
    }
    assert_eq!(b.state(), StateName::Open);
    assert_eq!(b.try_acquire().unwrap_err().retry_after, Some(Duration::from_secs(10)), "backoff doubled the wait");
    assert_eq!(b.snapshot().trips, 2);
}

#[test]
fn open_wait_grows_to_its_cap_and_resets_after_closing() {
    let config = quiet();
    let waits: Vec<_> = (1..=8).map(|t| config.open_wait_for(t, 0.5).as_secs()).collect();
    assert_eq!(waits, vec![5, 10, 20, 40, 60, 60, 60, 60]);
    let (b, clock) = breaker(config);
    open_it(&b);
    clock.advance(Duration::from_secs(5));
    for _ in 0..3 {
        call(&b, Outcome::Success);
    }
    open_it(&b);
    assert_eq!(b.try_acquire().unwrap_err().retry_after, Some(Duration::from_secs(5)));
}

#[test]
fn jitter_spreads_the_wait_within_its_fraction() {
    let config = BreakerConfig { jitter: 0.2, ..quiet() };
    assert_eq!(config.open_wait_for(1, 0.0), Duration::from_secs(4));
    assert_eq!(config.open_wait_for(1, 0.5), Duration::from_secs(5));
    assert!(config.open_wait_for(1, 0.999_999) < Duration::from_secs(6));
}

#[test]
fn half_open_cannot_stay_stuck_when_a_trial_never_finishes() {
    let (b, clock) = breaker(quiet());
    open_it(&b);
    clock.advance(Duration::from_secs(5));
    let _hung: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
    clock.advance(Duration::from_secs(30));
    assert_eq!(b.state(), StateName::Open, "half-open gave up after its maximum duration");
}

#[test]
fn a_dropped_permit_frees_its_half_open_slot() {
    let (b, clock) = breaker(quiet());
    open_it(&b);
    clock.advance(Duration::from_secs(5));
    let trials: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
    drop(trials);
    assert_eq!(b.state(), StateName::HalfOpen);
    for _ in 0..3 {
        call(&b, Outcome::Success);
    }
    assert_eq!(b.state(), StateName::Closed);
}

#[test]
fn outcomes_of_calls_from_an_older_state_are_ignored() {
    let (b, clock) = breaker(quiet());
    let late = b.try_acquire().unwrap();
    open_it(&b);
    clock.advance(Duration::from_secs(5));
    late.record(Outcome::Trap);
    assert_eq!(b.state(), StateName::HalfOpen, "a call admitted while closed cannot reopen half-open");
}

#[test]
fn operators_can_force_open_force_closed_and_reset() {
    let (b, _) = breaker(quiet());
    b.force_open();
    let rejected = b.try_acquire().unwrap_err();
    assert_eq!((rejected.state, rejected.retry_after), (StateName::ForcedOpen, None));
    b.force_closed();
    for _ in 0..20 {
        call(&b, Outcome::Trap);
    }
    assert_eq!(b.state(), StateName::ForcedClosed);
    b.reset();
    assert_eq!(b.state(), StateName::Closed);
    assert_eq!(b.snapshot().trips, 0);
}

#[test]
fn concurrent_callers_never_get_more_half_open_permits_than_allowed() {
    let (b, clock) = breaker(BreakerConfig { half_open_permits: 4, ..quiet() });
    open_it(&b);
    clock.advance(Duration::from_secs(5));
    let granted: Vec<Permit> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16).map(|_| s.spawn(|| b.try_acquire().ok())).collect();
        handles.into_iter().filter_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(granted.len(), 4);
    for permit in granted {
        permit.record(Outcome::Success);
    }
    assert_eq!(b.state(), StateName::Closed);
}
