//! Sliding windows of call outcomes: the last N calls, or the calls of the last N seconds.
//! The window only counts; deciding what the counts mean is the breaker's job.

use std::collections::VecDeque;
use std::time::Instant;

/// What one finished call contributes to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sample {
    pub failed: bool,
    pub slow: bool,
}

/// Totals over the window, as the breaker reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Totals {
    pub calls: u32,
    pub failures: u32,
    pub slow: u32,
}

impl Totals {
    pub(super) fn failure_rate(&self) -> f64 {
        ratio(self.failures, self.calls)
    }

    pub(super) fn slow_rate(&self) -> f64 {
        ratio(self.slow, self.calls)
    }

    fn add(&mut self, sample: Sample) {
        self.calls += 1;
        self.failures += u32::from(sample.failed);
        self.slow += u32::from(sample.slow);
    }
}

fn ratio(part: u32, whole: u32) -> f64 {
    if whole == 0 { 0.0 } else { f64::from(part) / f64::from(whole) }
}

/// Which kind of window a breaker keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "size")]
pub enum WindowKind {
    /// The outcomes of the last `n` calls.
    Count(u32),
    /// The outcomes of the calls that finished in the last `n` seconds.
    Time(u32),
}

/// A sliding window of either kind.
#[derive(Debug)]
pub(super) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(super) fn new(kind: WindowKind) -> Self {
        match kind {
            WindowKind::Count(n) => Window::Count(CountWindow::new(n.max(1) as usize)),
            WindowKind::Time(secs) => Window::Time(TimeWindow::new(secs.max(1))),
        }
    }

    pub(super) fn record(&mut self, sample: Sample, now: Instant) {
        match self {
            Window::Count(w) => w.record(sample),
            Window::Time(w) => w.record(sample, now),
        }
    }

    pub(super) fn totals(&mut self, now: Instant) -> Totals {
        match self {
            Window::Count(w) => w.totals,
            Window::Time(w) => w.totals(now),
        }
    }

    pub(super) fn clear(&mut self) {
        match self {
            Window::Count(w) => *w = CountWindow::new(w.size),
            Window::Time(w) => *w = TimeWindow::new(w.seconds),
        }
    }
}

/// The last `size` outcomes in a ring, with running totals so reading is O(1).
#[derive(Debug)]
pub(super) struct CountWindow {
    size: usize,
    samples: VecDeque<Sample>,
    totals: Totals,
}

impl CountWindow {
    fn new(size: usize) -> Self {
        Self { size, samples: VecDeque::with_capacity(size), totals: Totals::default() }
    }

    fn record(&mut self, sample: Sample) {
        if self.samples.len() == self.size
            && let Some(old) = self.samples.pop_front()
        {
            self.totals.calls -= 1;
            self.totals.failures -= u32::from(old.failed);
            self.totals.slow -= u32::from(old.slow);
        }
        self.samples.push_back(sample);
        self.totals.add(sample);
    }
}

/// One bucket per second over the last `seconds` seconds (the resilience4j design): a call
/// costs O(1) and expiry drops whole buckets.
#[derive(Debug)]
pub(super) struct TimeWindow {
    seconds: u32,
    origin: Option<Instant>,
    /// (second since origin, totals of that second), oldest first.
    buckets: VecDeque<(u64, Totals)>,
}

impl TimeWindow {
    fn new(seconds: u32) -> Self {
        Self { seconds, origin: None, buckets: VecDeque::new() }
    }

    fn second(&mut self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(now);
        now.saturating_duration_since(origin).as_secs()
    }

    fn expire(&mut self, current: u64) {
        let oldest_kept = current.saturating_sub(u64::from(self.seconds) - 1);
        while self.buckets.front().is_some_and(|(s, _)| *s < oldest_kept) {
            self.buckets.pop_front();
        }
    }

    fn record(&mut self, sample: Sample, now: Instant) {
        let current = self.second(now);
        self.expire(current);
        match self.buckets.back_mut() {
            Some((s, totals)) if *s == current => totals.add(sample),
            _ => {
                let mut totals = Totals::default();
                totals.add(sample);
                self.buckets.push_back((current, totals));
            }
        }
    }

    fn totals(&mut self, now: Instant) -> Totals {
        let current = self.second(now);
        self.expire(current);
        self.buckets.iter().fold(Totals::default(), |mut acc, (_, t)| {
            acc.calls += t.calls;
            acc.failures += t.failures;
            acc.slow += t.slow;
            acc
        })
    }
}
