//! `wasi:messaging` as upstream types it: `client.connect`, `producer.send`,
//! `request-reply.request` and `request-reply.reply` are `async func`s there (wit/upstream/).
//! A component built against that text (a WASI 0.3 one: only the concurrent engine lowers
//! `async func` imports) gets these definitions in place of the plain ones. They do the same
//! work (`host`), but what waits (a send's fsync, a request's replies) waits without holding
//! the Store, so the instance's other tasks run on meanwhile.

use wasmtime::component::{Accessor, Linker, Resource};

use super::MessagingView;
use super::resources::{Client, Message, RequestOptions};

/// The interfaces whose functions upstream marks `async`.
const TYPES: &str = "wasi:messaging/types@0.2.0-draft";
const PRODUCER: &str = "wasi:messaging/producer@0.2.0-draft";
const REQUEST_REPLY: &str = "wasi:messaging/request-reply@0.2.0-draft";

/// Replaces, in `linker`, each function upstream types `async` with its concurrent version,
/// where `awaits(interface, function)` says the component imports it so.
pub(super) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> MessagingView<'_>,
    awaits: &dyn Fn(&str, &str) -> bool,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let defined = define(linker, view, awaits);
    linker.allow_shadowing(false);
    defined
}

fn define<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> MessagingView<'_>,
    awaits: &dyn Fn(&str, &str) -> bool,
) -> wasmtime::Result<()> {
    const CONNECT: &str = "[static]client.connect";
    if awaits(TYPES, CONNECT) {
        linker.instance(TYPES)?.func_wrap_concurrent(CONNECT, move |store: &Accessor<T>, (name,): (String,)| {
            Box::pin(async move { Ok((store.with(|mut s| view(s.get()).connect_to(&name))?,)) })
        })?;
    }
    if awaits(PRODUCER, "send") {
        type Params = (Resource<Client>, String, Resource<Message>);
        linker.instance(PRODUCER)?.func_wrap_concurrent(
            "send",
            move |store: &Accessor<T>, (_, topic, message): Params| {
                Box::pin(async move {
                    let sending = store.with(|mut s| view(s.get()).start_send(topic, message))?;
                    Ok((sending.await,))
                })
            },
        )?;
    }
    if awaits(REQUEST_REPLY, "request") {
        type Params = (Resource<Client>, String, Resource<Message>, Option<Resource<RequestOptions>>);
        linker.instance(REQUEST_REPLY)?.func_wrap_concurrent(
            "request",
            move |store: &Accessor<T>, (_, topic, message, options): Params| {
                Box::pin(async move {
                    let asking = store.with(|mut s| view(s.get()).start_request(topic.clone(), message, options))?;
                    let replies = asking.await;
                    Ok((store.with(|mut s| view(s.get()).hold_replies(topic, replies))?,))
                })
            },
        )?;
    }
    if awaits(REQUEST_REPLY, "reply") {
        type Params = (Resource<Message>, Resource<Message>);
        linker.instance(REQUEST_REPLY)?.func_wrap_concurrent(
            "reply",
            move |store: &Accessor<T>, (to, reply): Params| {
                Box::pin(async move { Ok((store.with(|mut s| view(s.get()).send_reply(to, reply))?,)) })
            },
        )?;
    }
    Ok(())
}
