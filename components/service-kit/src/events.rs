//! The services' events through `wasi:messaging`: published as JSON on the embedded bus,
//! which stores each durably before `publish` returns, and read back from delivered messages.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wasi::messaging::producer;
use crate::wasi::messaging::types::{Client, Error, Message};

/// The bus every service publishes to.
const CLIENT: &str = "default";

/// Publishes `payload` as JSON on `topic`; returns once the host has stored it. A failure is
/// logged and returned: the change the event announces is already stored, so callers answer
/// their request anyway and the log says which event is missing.
pub fn publish(topic: &str, payload: &impl Serialize) -> Result<(), String> {
    let sent = Client::connect(CLIENT).and_then(|client| {
        let message = Message::new(&serde_json::to_vec(payload).unwrap_or_default());
        message.set_content_type("application/json");
        producer::send(&client, topic, message)
    });
    sent.map_err(|e| {
        let why = format!("could not publish {topic}: {}", describe(&e));
        crate::warn("events", &why);
        why
    })
}

/// A delivered message's topic, id (`message-id` in its metadata) and JSON payload.
pub struct Event<T> {
    pub topic: String,
    pub id: String,
    pub payload: T,
}

/// Reads a delivered message's JSON payload as `T`.
pub fn read<T: DeserializeOwned>(message: &Message) -> Result<Event<T>, String> {
    let topic = message.topic().unwrap_or_default();
    let metadata = message.metadata().unwrap_or_default();
    let id = metadata.iter().find(|(k, _)| k == "message-id").map(|(_, v)| v.clone()).unwrap_or_default();
    let payload = serde_json::from_slice(&message.data())
        .map_err(|e| format!("the payload of a {topic} event is invalid: {e}"))?;
    Ok(Event { topic, id, payload })
}

fn describe(error: &Error) -> String {
    match error {
        Error::Timeout => "timeout".into(),
        Error::Connection(why) | Error::PermissionDenied(why) | Error::Other(why) => why.clone(),
    }
}
