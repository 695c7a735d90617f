//! `wasi:messaging@0.2.0-draft` for components: the WIT bindings (`bindings`), the resources
//! a component holds (`resources`), and their implementation (`host`) on a view of the Store
//! ([`MessagingView`]), the same functions as upstream's `async func`s for components that
//! import them so (`awaited`), and topics with the patterns that subscribe to them (`topics`).
//! What happens to a message once sent (storing it, delivering it to subscribers, answering
//! requests) is a [`Broker`]'s job: the events subsystem provides one. Sending and requesting
//! wait without holding a thread, as every host call does.

mod awaited;
mod host;
pub(crate) mod resources;
mod topics;

pub(crate) use topics::TopicPattern;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use wasmtime::component::{HasData, Linker, ResourceTable};

pub(crate) use bindings::wasi::messaging::types::Error;

/// The bindings of `trellis:worlds/messaging-host`: what the host implements (`producer`,
/// `request-reply`, `types`) and what it calls (`incoming-handler`, `subscriptions`).
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "trellis:worlds/messaging-host",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
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
}

/// What `wasi:messaging` runs on: the broker, the Store's resource table and who is sending.
pub(crate) struct MessagingView<'a> {
    pub(crate) broker: &'a Arc<dyn Broker>,
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) sender: Sender,
    /// What is left of the unit of work's time: a request waits no longer.
    pub(crate) time_left: Duration,
}

/// Names the view type for wasmtime's generated `add_to_linker` functions.
struct Messaging;

impl HasData for Messaging {
    type Data<'a> = MessagingView<'a>;
}

/// Registers `wasi:messaging`'s interfaces in a linker whose Store data gives a
/// [`MessagingView`]: as this host's WIT types them, except the functions for which
/// `awaits(interface, function)` says the component imports upstream's `async func`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> MessagingView<'_>,
    awaits: &dyn Fn(&str, &str) -> bool,
) -> wasmtime::Result<()> {
    use bindings::wasi::messaging::{producer, request_reply, types};
    types::add_to_linker::<T, Messaging>(linker, view)?;
    producer::add_to_linker::<T, Messaging>(linker, view)?;
    request_reply::add_to_linker::<T, Messaging>(linker, view)?;
    if linker.engine().get_concurrency_support() {
        awaited::add_to_linker(linker, view, awaits)?;
    }
    Ok(())
}
