//! Request-reply: a request goes to one subscriber of its topic (taking turns when several
//! subscribe), is not stored, and returns the replies that subscriber's handler sends while
//! it runs, up to the number expected or until the timeout. The delivery runs in a task of
//! its own, as a call between components does, behind the subscriber's breaker (which does
//! not wait when open: the requester is told at once) and its bulkhead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::state::Inner;
use crate::breaker::Outcome;
use crate::capabilities::messaging::{Envelope, Error, Sender, resources::Message};
use crate::runtime::CallContext;

/// Takes turns among the subscribers of a topic.
static TURN: AtomicUsize = AtomicUsize::new(0);

pub(super) async fn send(
    bus: &Inner,
    from: Sender,
    topic: String,
    message: Envelope,
    timeout: Duration,
    expected: u32,
) -> Result<Vec<Envelope>, Error> {
    let subscriber = {
        let running = bus.running.lock().unwrap();
        let subscribers: Vec<_> = running
            .values()
            .filter(|r| r.subscriber.target.load().wants(&topic))
            .map(|r| r.subscriber.clone())
            .collect();
        if subscribers.is_empty() {
            return Err(Error::Other(format!("no component subscribes to topic {topic:?}")));
        }
        subscribers[TURN.fetch_add(1, Ordering::Relaxed) % subscribers.len()].clone()
    };
    let permit = subscriber
        .breaker
        .try_acquire()
        .map_err(|rejected| Error::Connection(format!("subscriber '{}' is paused: {rejected}", subscriber.name)))?;
    let component = subscriber.target.load().component.clone();
    let (reply_to, mut replies) = tokio::sync::mpsc::unbounded_channel();
    let call = CallContext {
        deadline: Instant::now() + timeout.min(component.limits.call_timeout),
        depth: from.depth + 1,
        correlation_id: from.correlation_id.clone(),
    };
    let mut delivery = tokio::spawn(async move {
        let message = Message::delivered(topic, message, Some(reply_to));
        component.deliver(call, message).await
    });
    let mut answered = Vec::new();
    let give_up = tokio::time::sleep(timeout);
    tokio::pin!(give_up);
    let mut failure = None;
    let mut running = true;
    while answered.len() < expected as usize {
        tokio::select! {
            Some(reply) = replies.recv() => answered.push(reply),
            ended = &mut delivery, if running => {
                running = false;
                failure = match ended {
                    Ok(Ok(Ok(()))) => None,
                    Ok(Ok(Err(why))) => Some(why),
                    Ok(Err(fault)) => Some(fault.to_string()),
                    Err(e) => Some(format!("the delivery task failed: {e}")),
                };
                // What it sent before it ended is all there will be.
                while let Ok(reply) = replies.try_recv() {
                    answered.push(reply);
                }
                break;
            }
            () = &mut give_up => break,
        }
    }
    permit.record(if failure.is_some() { Outcome::Trap } else { Outcome::Success });
    let name = Arc::clone(&subscriber.name);
    match (answered.is_empty(), failure) {
        (false, _) => Ok(answered.into_iter().take(expected as usize).collect()),
        (true, Some(why)) => Err(Error::Other(format!("subscriber '{name}' failed the request: {why}"))),
        (true, None) if !running => Err(Error::Other(format!("subscriber '{name}' did not reply"))),
        (true, None) => Err(Error::Timeout),
    }
}
