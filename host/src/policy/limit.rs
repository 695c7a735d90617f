//! Rate limits: one token bucket per client per policy, kept by `governor` (GCRA), with the
//! `RateLimit-Policy` / `RateLimit` headers of the IETF draft on every answer and
//! `Retry-After` on a refusal. Buckets of clients gone quiet are reclaimed as they refill.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http::{HeaderMap, HeaderValue};

use crate::config::{Per, RateLimit};

type Buckets = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// How often full buckets are looked for and dropped.
const RECLAIM_EVERY: Duration = Duration::from_secs(10);

/// One policy's buckets.
pub(super) struct Limiter {
    pub(super) per: Per,
    buckets: Buckets,
    /// `RateLimit-Policy`: `"NAME";q=REQUESTS;w=SECONDS`.
    policy_header: HeaderValue,
    /// One token comes back every `period`, up to `burst`.
    period: Duration,
    burst: u32,
    /// The policy's name, quoted as the headers' item key.
    key: String,
    reclaimed: Mutex<Instant>,
}

/// The answer of one bucket.
pub(super) enum Verdict {
    /// Let through; the headers tell the client what is left.
    Pass(HeaderMap),
    /// Refused: wait this long; the headers include `Retry-After`.
    Refuse { headers: HeaderMap, wait: Duration },
}

impl Limiter {
    pub(super) fn new(name: &str, limit: &RateLimit) -> Result<Self, String> {
        let requests = NonZeroU32::new(limit.requests).ok_or("rate_limit.requests must be at least 1")?;
        if limit.per_seconds == 0 {
            return Err("rate_limit.per_seconds must be at least 1".into());
        }
        let burst =
            NonZeroU32::new(limit.burst.unwrap_or(limit.requests)).ok_or("rate_limit.burst must be at least 1")?;
        let period = Duration::from_secs(limit.per_seconds) / requests.get();
        let quota = Quota::with_period(period).ok_or("the rate limit's period is too short")?.allow_burst(burst);
        let key = format!("\"{}\"", name.replace(['"', '\\'], "_"));
        let policy_header = HeaderValue::from_str(&format!("{key};q={requests};w={}", limit.per_seconds))
            .map_err(|_| format!("policy name {name:?} cannot be sent in a header"))?;
        Ok(Self {
            per: limit.per,
            buckets: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            policy_header,
            period,
            burst: burst.get(),
            key,
            reclaimed: Mutex::new(Instant::now()),
        })
    }

    /// Takes a token from `client`'s bucket. A client key is made only of the host's own
    /// strings: an address, a key's name or a token's subject.
    pub(super) fn check(&self, client: String) -> Verdict {
        self.reclaim();
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit-policy", self.policy_header.clone());
        let verdict = match self.buckets.check_key(&client) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                let full_in = self.period * self.burst.saturating_sub(remaining);
                self.state(&mut headers, remaining, whole_seconds(full_in));
                return Verdict::Pass(headers);
            }
            Err(not_until) => not_until.wait_time_from(self.buckets.clock().now()),
        };
        let seconds = whole_seconds(verdict);
        self.state(&mut headers, 0, seconds);
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        Verdict::Refuse { headers, wait: verdict }
    }

    /// `RateLimit`: `"NAME";r=REMAINING;t=SECONDS`, where `t` is when the bucket is full
    /// again, or, on a refusal, when the next request may pass.
    fn state(&self, headers: &mut HeaderMap, remaining: u32, reset: u64) {
        if let Ok(value) = HeaderValue::from_str(&format!("{};r={remaining};t={reset}", self.key)) {
            headers.insert("ratelimit", value);
        }
    }

    /// Drops the buckets that have refilled completely: such a client costs nothing until it
    /// comes back, and starts again with a full bucket as it would anyway.
    fn reclaim(&self) {
        let Ok(mut last) = self.reclaimed.try_lock() else { return };
        if last.elapsed() < RECLAIM_EVERY {
            return;
        }
        *last = Instant::now();
        self.buckets.retain_recent();
        self.buckets.shrink_to_fit();
    }

    /// Buckets kept now (for tests).
    #[cfg(test)]
    pub(super) fn buckets(&self) -> usize {
        self.buckets.len()
    }
}

/// A wait in whole seconds, rounded up: waiting that long is always enough.
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(requests: u32, per_seconds: u64, burst: Option<u32>) -> Limiter {
        Limiter::new("orders", &RateLimit { per: Per::Ip, requests, per_seconds, burst }).unwrap()
    }

    #[test]
    fn a_burst_passes_then_the_next_is_refused_with_how_long_to_wait() {
        let limiter = limiter(1, 2, Some(3));
        for left in [2, 1, 0] {
            let Verdict::Pass(headers) = limiter.check("10.0.0.1".into()) else { panic!("within the burst") };
            assert_eq!(headers["ratelimit-policy"], "\"orders\";q=1;w=2");
            assert!(headers["ratelimit"].to_str().unwrap().starts_with(&format!("\"orders\";r={left};")));
        }
        let Verdict::Refuse { headers, wait } = limiter.check("10.0.0.1".into()) else { panic!("over the burst") };
        assert!(wait > Duration::from_millis(1500) && wait <= Duration::from_secs(2), "{wait:?}");
        assert_eq!(headers[http::header::RETRY_AFTER], "2");
        assert!(matches!(limiter.check("10.0.0.2".into()), Verdict::Pass(_)), "each client has its own bucket");
    }

    #[test]
    fn nonsense_limits_are_refused() {
        assert!(Limiter::new("x", &RateLimit { per: Per::Ip, requests: 0, per_seconds: 1, burst: None }).is_err());
        assert!(Limiter::new("x", &RateLimit { per: Per::Ip, requests: 5, per_seconds: 0, burst: None }).is_err());
    }

    #[test]
    fn buckets_of_quiet_clients_are_reclaimed() {
        let limiter = limiter(1000, 1, Some(1));
        for i in 0..100 {
            limiter.check(format!("client-{i}"));
        }
        assert_eq!(limiter.buckets(), 100);
        std::thread::sleep(Duration::from_millis(5));
        *limiter.reclaimed.lock().unwrap() -= RECLAIM_EVERY;
        limiter.check("client-new".into());
        assert!(limiter.buckets() <= 1, "refilled buckets are dropped: {}", limiter.buckets());
    }
}
