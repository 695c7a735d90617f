//! The services' events through `wasi:messaging`: JSON messages, sent with the change they
//! announce ([`crate::Changes::announce`]), and read back from delivered messages.

use serde::de::DeserializeOwned;

use crate::wasi::messaging::types::Message;

/// A message holding a JSON payload.
pub(crate) fn message(json: &[u8]) -> Message {
    let message = Message::new(json);
    message.set_content_type("application/json");
    message
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
