//! Background tasks that must not die quietly: each runs under supervision, and a task that
//! fails (panics) is logged, reported as down (readiness lists it) and restarted after a
//! pause. What each task does is its owner's business.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a failed task waits before it is restarted: long enough not to spin on a fault
/// that repeats, short enough that a one-off is forgotten quickly.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// The supervised tasks that are down, with why.
#[derive(Default)]
pub(crate) struct Supervisor {
    down: Mutex<BTreeMap<&'static str, String>>,
}

impl Supervisor {
    /// Runs `task(restarts)` until it returns; restarts it each time it fails. `restarts`
    /// counts the restarts so far, so a task can catch up on what it missed.
    pub(crate) fn spawn<F>(self: &Arc<Self>, name: &'static str, task: impl Fn(u32) -> F + Send + 'static)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let supervisor = self.clone();
        tokio::spawn(async move {
            let mut restarts = 0;
            loop {
                let run = tokio::spawn(task(restarts));
                supervisor.down.lock().unwrap().remove(name);
                let Err(failure) = run.await else { return };
                if failure.is_cancelled() {
                    return;
                }
                let why = panic_message(failure.into_panic());
                tracing::error!(task = name, reason = %why.escape_debug(), "background task failed; restarting it");
                supervisor.down.lock().unwrap().insert(name, why);
                tokio::time::sleep(RESTART_PAUSE).await;
                restarts += 1;
            }
        });
    }

    /// Each task that is down, as a readiness problem.
    pub(crate) fn problems(&self) -> Vec<String> {
        let down = self.down.lock().unwrap();
        down.iter().map(|(name, why)| format!("{name}: failed and is restarting: {why}")).collect()
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload.downcast_ref::<&str>().map_or("a panic".to_string(), |s| s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_failed_task_is_reported_down_and_restarted() {
        let supervisor = Arc::new(Supervisor::default());
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        supervisor.spawn("flaky", move |restarts| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if restarts == 0 {
                    panic!("first run fails");
                }
                std::future::pending::<()>().await;
            }
        });
        tokio::time::sleep(RESTART_PAUSE / 2).await;
        assert_eq!(supervisor.problems(), ["flaky: failed and is restarting: first run fails"]);
        tokio::time::sleep(RESTART_PAUSE * 2).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "restarted once");
        assert!(supervisor.problems().is_empty(), "up again: {:?}", supervisor.problems());
    }
}
