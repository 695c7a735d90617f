//! Housekeeping, once a second: the messages every subscriber is done with are deleted (those
//! of subscribers removed less than `subscriber_retention` ago count, and their positions are
//! forgotten after it), and so are the oldest past `retention.max_age` or past
//! `retention.max_mib` in all. With no subscriber at all, nothing is kept: a new subscriber
//! starts with what is published after it appears. And each subscriber's lag is measured.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::log::{Log, PAGE, now_ms};
use super::state::Inner;
use super::subscriber::Subscriber;
use crate::capabilities::keyvalue::StorageError;
use crate::ops::metrics::{METRICS, SubscriberLabels};

const EVERY: Duration = Duration::from_secs(1);
/// Messages a lag measurement reads at most.
const LAG_READ: usize = 10 * PAGE;

/// The bytes of every message stored.
pub(super) fn stored_bytes(log: &Log) -> Result<u64, StorageError> {
    let (mut total, mut after) = (0, 0);
    loop {
        let page = log.after(after, PAGE)?;
        let Some(&(last, _, _)) = page.last() else { return Ok(total) };
        total += page.iter().map(|(_, _, size)| *size as u64).sum::<u64>();
        after = last;
    }
}

/// Keeps house until the bus is dropped.
pub(super) async fn keep(bus: Weak<Inner>) {
    loop {
        tokio::time::sleep(EVERY).await;
        let Some(bus) = bus.upgrade() else { return };
        if let Err(e) = trim(&bus).await {
            tracing::warn!(error = %e, "message retention could not trim the log this time");
        }
        measure_lag(&bus);
    }
}

/// Deletes, oldest first, what no subscriber needs and what retention lets go.
async fn trim(bus: &Inner) -> Result<(), StorageError> {
    let now = now_ms();
    let retention = &bus.config.messaging;
    let keep_removed = retention.subscriber_retention.as_millis() as u64;
    let expired: Vec<String> = {
        let mut parked = bus.parked.lock().unwrap();
        let expired: Vec<String> = parked
            .iter()
            .filter(|(_, p)| p.removed_ms.is_some_and(|at| now.saturating_sub(at) > keep_removed))
            .map(|(name, _)| name.clone())
            .collect();
        parked.retain(|name, _| !expired.contains(name));
        expired
    };
    for name in expired {
        tracing::info!(subscriber = %name, "a removed subscriber's position expired (messaging.subscriber_retention)");
        bus.log.forget_position(&name).await?;
    }
    let running = bus.running.lock().unwrap().values().map(|r| r.subscriber.cursor.load(Ordering::Relaxed)).min();
    let parked = bus.parked.lock().unwrap().values().map(|p| p.cursor).min();
    let needed_after = running.into_iter().chain(parked).min().unwrap_or(*bus.published.borrow());
    let oldest_kept = now.saturating_sub(retention.retention.max_age.as_millis() as u64);
    let max_bytes = retention.retention.max_mib.saturating_mul(1024 * 1024);
    let mut forget = Vec::new();
    let mut stored = bus.stored_bytes.load(Ordering::Relaxed);
    let mut after = 0;
    'pages: loop {
        let page = bus.log.after(after, PAGE)?;
        if page.is_empty() {
            break;
        }
        for (n, record, size) in page {
            if n > needed_after && record.published_ms >= oldest_kept && stored <= max_bytes {
                break 'pages;
            }
            forget.push(n);
            stored = stored.saturating_sub(size as u64);
            after = n;
        }
    }
    if !forget.is_empty() {
        bus.log.forget(forget).await?;
        bus.stored_bytes.store(stored, Ordering::Relaxed);
    }
    Ok(())
}

/// How many messages on each subscriber's topics it has not acknowledged, and how old the
/// oldest of them is: in the metrics, and in the admin API through [`lag`].
fn measure_lag(bus: &Inner) {
    let subscribers: Vec<_> = bus.running.lock().unwrap().values().map(|r| r.subscriber.clone()).collect();
    for subscriber in subscribers {
        let (count, age) = lag(bus, &subscriber);
        let labels = SubscriberLabels { subscriber: subscriber.name.to_string() };
        METRICS.subscriber_lag.get_or_create(&labels).set(count as i64);
        METRICS.subscriber_lag_seconds.get_or_create(&labels).set(age.as_secs() as i64);
    }
}

/// A subscriber's lag: the messages on its topics after its position (read up to a bound),
/// and the age of the oldest.
pub(super) fn lag(bus: &Inner, subscriber: &Subscriber) -> (u64, Duration) {
    if bus.across.get().is_some() {
        // JetStream's count; the age of the oldest is not measured in cluster mode.
        return (subscriber.pending_across.load(Ordering::Relaxed), Duration::ZERO);
    }
    let target = subscriber.target.load();
    let mut after = subscriber.cursor.load(Ordering::Relaxed);
    let (mut count, mut oldest) = (0, None);
    let mut read = 0;
    while read < LAG_READ && after < *bus.published.borrow() {
        let Ok(page) = bus.log.after(after, PAGE) else { break };
        let Some(&(last, _, _)) = page.last() else { break };
        read += page.len();
        for (_, record, _) in page.iter().filter(|(_, r, _)| target.wants(&r.topic)) {
            count += 1;
            oldest.get_or_insert(record.published_ms);
        }
        after = last;
    }
    let age = oldest.map_or(Duration::ZERO, |at| Duration::from_millis(now_ms().saturating_sub(at)));
    (count, age)
}
