//! `trellis:messaging/outbox`: a change to a component's bucket and the messages announcing
//! it, stored in one durable transaction when the bus keeps its log in the host's database
//! (the default); in a cluster, the change first and the messages after it.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::bindings::trellis::messaging::outbox;
use super::resources::Message;
use super::topics::check_topic;
use super::{Broker, Envelope, Sender, Stage};
use crate::capabilities::bindings::{ordered, store};
use crate::capabilities::keyvalue::resources::Bucket;
use crate::capabilities::keyvalue::{KeyValueView, Op, Written, ops_of, write_answer};

/// What `write-and-send` runs on: the component's storage and resource table, and its bus.
pub(crate) struct OutboxView<'a> {
    pub(crate) kv: KeyValueView<'a>,
    pub(crate) broker: &'a Arc<dyn Broker>,
    pub(crate) sender: Sender,
}

type Answer = wasmtime::Result<Result<Vec<i64>, ordered::WriteError>>;

fn refused(why: String) -> ordered::WriteError {
    ordered::WriteError::Store(store::Error::Other(why))
}

impl outbox::Host for OutboxView<'_> {
    async fn write_and_send(
        &mut self,
        bucket: Resource<Bucket>,
        ops: Vec<ordered::Op>,
        messages: Vec<(String, Resource<Message>)>,
    ) -> Answer {
        let bucket = self.kv.bucket_name(&bucket)?;
        let mut envelopes = Vec::with_capacity(messages.len());
        for (topic, message) in messages {
            envelopes.push((topic, self.kv.table.delete(message)?.envelope));
        }
        if let Some(why) = envelopes.iter().find_map(|(topic, _)| check_topic(topic).err()) {
            return Ok(Err(refused(why)));
        }
        let ops = ops_of(ops);
        let staged = match self.broker.stage(self.sender.clone(), envelopes) {
            Ok(Stage::Linked(staged)) => staged,
            Ok(Stage::After(messages)) => return Ok(self.write_then_send(&bucket, ops, messages).await),
            Err(e) => return Ok(Err(refused(format!("the messages cannot be sent: {e:?}")))),
        };
        let mut written = match staged.linked {
            Some(linked) => self.kv.namespace.write_with(&bucket, ops, linked).await,
            None => self.kv.namespace.write("write-and-send", &bucket, ops).await,
        };
        if let Ok(Written::Done(counts)) = &mut written {
            let numbers = counts.split_off(counts.len() - staged.appended);
            (staged.stored)(&numbers);
        }
        Ok(write_answer(written))
    }
}

impl OutboxView<'_> {
    /// The change, then each message. A message that cannot be sent once the change is stored
    /// is logged: the change stands, as it would after a write and a failed `producer.send`.
    async fn write_then_send(
        &mut self,
        bucket: &str,
        ops: Vec<Op>,
        messages: Vec<(String, Envelope)>,
    ) -> Result<Vec<i64>, ordered::WriteError> {
        let counts = write_answer(self.kv.namespace.write("write-and-send", bucket, ops).await)?;
        for (topic, message) in messages {
            if let Err(e) = self.broker.publish(self.sender.clone(), topic.clone(), message).await {
                let component = &self.sender.component;
                tracing::warn!(%component, %topic, error = ?e, "a message sent with a stored write was lost");
            }
        }
        Ok(counts)
    }
}
