//! `wasi:messaging@0.2.0-draft` for components: the WIT bindings (`bindings`), the resources
//! a component holds (`resources`), and their implementation (`host`) on a view of the Store
//! ([`MessagingView`]), sending with a write (`outbox`, on an [`OutboxView`]), the same functions as upstream's `async func`s for components that
//! import them so (`awaited`), and topics with the patterns that subscribe to them (`topics`).
//! What happens to a message once sent (storing it, delivering it to subscribers, answering
//! requests) is a [`Broker`]'s job: the events subsystem provides one. Sending and requesting
//! wait without holding a thread, as every host call does.

mod awaited;
mod host;
mod outbox;
pub(crate) mod resources;
mod topics;

pub(crate) use outbox::OutboxView;
pub(crate) use topics::TopicPattern;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use wasmtime::component::{HasData, Linker, ResourceTable};

use crate::capabilities::keyvalue::Linked;

pub(crate) use bindings::wasi::messaging::types::Error;

/// The bindings of `trellis:worlds/messaging-host`: what the host implements (`producer`,
/// `request-reply`, `types`, our `outbox`) and what it calls (`incoming-handler`, `subscriptions`).
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "trellis:worlds/messaging-host",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi:keyvalue/store": crate::capabilities::bindings::wasi::keyvalue::store,
            "trellis:keyvalue/ordered": crate::capabilities::bindings::trellis::keyvalue::ordered,
            "wasi:messaging/types.client": super::resources::Client,
            "wasi:messaging/types.message": super::resources::Message,
            "wasi:messaging/request-reply.request-options": super::resources::RequestOptions,
        },
        require_store_data_send: true,
    });
}

/// The one client name a component connects to on this host: the embedded bus.
pub(crate) const DEFAULT_CLIENT: &str = "default";

/// Where the replies to a request go.
pub(crate) type ReplyTo = tokio::sync::mpsc::UnboundedSender<Envelope>;

/// A message's content, as stored and delivered: everything but the topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) content_type: Option<String>,
    pub(crate) metadata: Vec<(String, String)>,
    pub(crate) data: Vec<u8>,
}

/// Who sends: the component and the unit of work it is serving.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    pub(crate) component: Arc<str>,
    pub(crate) correlation_id: Arc<str>,
    /// How deeply the work is nested in calls (a request's delivery is one level deeper).
    pub(crate) depth: u32,
}

/// What carries messages between components.
pub(crate) trait Broker: Send + Sync + 'static {
    /// The client names a component may connect to.
    fn knows(&self, client: &str) -> bool;

    /// Stores `message` on `topic` for every subscriber; done only once it is durable.
    fn publish(&self, from: Sender, topic: String, message: Envelope) -> BoxFuture<'static, Result<(), Error>>;

    /// Delivers `message` to one subscriber of `topic` (not stored), and returns its replies:
    /// `expected` of them, or those that came within `timeout`.
    fn request(
        &self,
        from: Sender,
        topic: String,
        message: Envelope,
        timeout: Duration,
        expected: u32,
    ) -> BoxFuture<'static, Result<Vec<Envelope>, Error>>;

    /// How `messages` (topic, content) are stored when a component sends them with a write:
    /// in the same transaction when the bus keeps its log in the host's database, else after
    /// the write.
    fn stage(&self, from: Sender, messages: Vec<(String, Envelope)>) -> Result<Stage, Error>;
}

/// How messages sent with a write are stored.
pub(crate) enum Stage {
    /// With the write, in one transaction.
    Linked(Staged),
    /// After the write is stored, each through [`Broker::publish`].
    After(Vec<(String, Envelope)>),
}

/// The bus's part of a write that sends messages.
pub(crate) struct Staged {
    /// What stores the messages, applied with the component's write; none when no message
    /// has a subscriber to keep it for.
    pub(crate) linked: Option<Linked>,
    /// How many of the write's counts are the messages' numbers (its last ones).
    pub(crate) appended: usize,
    /// Told those numbers once the transaction is committed.
    pub(crate) stored: Committed,
}

/// What the bus does once messages staged with a write are stored, told their numbers.
pub(crate) type Committed = Box<dyn FnOnce(&[i64]) + Send>;

/// What `wasi:messaging` runs on: the broker, the Store's resource table and who is sending.
pub(crate) struct MessagingView<'a> {
    pub(crate) broker: &'a Arc<dyn Broker>,
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) sender: Sender,
    /// What is left of the unit of work's time: a request waits no longer.
    pub(crate) time_left: Duration,
}

/// Names the view types for wasmtime's generated `add_to_linker` functions.
struct Messaging;

impl HasData for Messaging {
    type Data<'a> = MessagingView<'a>;
}

struct Outbox;

impl HasData for Outbox {
    type Data<'a> = OutboxView<'a>;
}

/// Registers `wasi:messaging`'s interfaces in a linker whose Store data gives a
/// [`MessagingView`]: as this host's WIT types them, except the functions for which
/// `awaits(interface, function)` says the component imports upstream's `async func`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> MessagingView<'_>,
    outbox_view: fn(&mut T) -> OutboxView<'_>,
    awaits: &dyn Fn(&str, &str) -> bool,
) -> wasmtime::Result<()> {
    use bindings::trellis::messaging::outbox;
    use bindings::wasi::messaging::{producer, request_reply, types};
    outbox::add_to_linker::<T, Outbox>(linker, outbox_view)?;
    types::add_to_linker::<T, Messaging>(linker, view)?;
    producer::add_to_linker::<T, Messaging>(linker, view)?;
    request_reply::add_to_linker::<T, Messaging>(linker, view)?;
    if linker.engine().get_concurrency_support() {
        awaited::add_to_linker(linker, view, awaits)?;
    }
    Ok(())
}
