//! The implementation of `wasi:messaging`'s `types`, `producer` and `request-reply` on a
//! [`MessagingView`]: messages are built and read in the Store's resource table; sending and
//! requesting go to the [`super::Broker`].

use std::time::Duration;

use futures::future::BoxFuture;
use wasmtime::component::Resource;

use super::bindings::wasi::messaging::{producer, request_reply, types};
use super::resources::{Client, Message, RequestOptions};
use super::topics::check_topic;
use super::{DEFAULT_CLIENT, Envelope, Error, MessagingView};

impl types::HostClient for MessagingView<'_> {
    async fn connect(&mut self, name: String) -> wasmtime::Result<Result<Resource<Client>, Error>> {
        self.connect_to(&name)
    }

    async fn disconnect(&mut self, _client: Resource<Client>) -> wasmtime::Result<Result<(), Error>> {
        Ok(Ok(()))
    }

    async fn drop(&mut self, client: Resource<Client>) -> wasmtime::Result<()> {
        self.table.delete(client)?;
        Ok(())
    }
}

impl types::HostMessage for MessagingView<'_> {
    async fn new(&mut self, data: Vec<u8>) -> wasmtime::Result<Resource<Message>> {
        let envelope = Envelope { data, ..Envelope::default() };
        Ok(self.table.push(Message { envelope, topic: None, reply_to: None })?)
    }

    async fn topic(&mut self, message: Resource<Message>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&message)?.topic.clone())
    }

    async fn content_type(&mut self, message: Resource<Message>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&message)?.envelope.content_type.clone())
    }

    async fn set_content_type(&mut self, message: Resource<Message>, content_type: String) -> wasmtime::Result<()> {
        self.table.get_mut(&message)?.envelope.content_type = Some(content_type);
        Ok(())
    }

    async fn data(&mut self, message: Resource<Message>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.table.get(&message)?.envelope.data.clone())
    }

    async fn set_data(&mut self, message: Resource<Message>, data: Vec<u8>) -> wasmtime::Result<()> {
        self.table.get_mut(&message)?.envelope.data = data;
        Ok(())
    }

    async fn metadata(&mut self, message: Resource<Message>) -> wasmtime::Result<Option<Vec<(String, String)>>> {
        let metadata = &self.table.get(&message)?.envelope.metadata;
        Ok((!metadata.is_empty()).then(|| metadata.clone()))
    }

    async fn add_metadata(&mut self, message: Resource<Message>, key: String, value: String) -> wasmtime::Result<()> {
        let metadata = &mut self.table.get_mut(&message)?.envelope.metadata;
        match metadata.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => metadata.push((key, value)),
        }
        Ok(())
    }

    async fn set_metadata(&mut self, message: Resource<Message>, meta: Vec<(String, String)>) -> wasmtime::Result<()> {
        self.table.get_mut(&message)?.envelope.metadata = meta;
        Ok(())
    }

    async fn remove_metadata(&mut self, message: Resource<Message>, key: String) -> wasmtime::Result<()> {
        self.table.get_mut(&message)?.envelope.metadata.retain(|(k, _)| *k != key);
        Ok(())
    }

    async fn drop(&mut self, message: Resource<Message>) -> wasmtime::Result<()> {
        self.table.delete(message)?;
        Ok(())
    }
}

impl types::Host for MessagingView<'_> {}

impl producer::Host for MessagingView<'_> {
    async fn send(
        &mut self,
        _client: Resource<Client>,
        topic: String,
        message: Resource<Message>,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.start_send(topic, message)?.await)
    }
}

impl request_reply::Host for MessagingView<'_> {
    async fn request(
        &mut self,
        _client: Resource<Client>,
        topic: String,
        message: Resource<Message>,
        options: Option<Resource<RequestOptions>>,
    ) -> wasmtime::Result<Result<Vec<Resource<Message>>, Error>> {
        let replies = self.start_request(topic.clone(), message, options)?.await;
        self.hold_replies(topic, replies)
    }

    async fn reply(
        &mut self,
        reply_to: Resource<Message>,
        message: Resource<Message>,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.send_reply(reply_to, message)
    }
}

/// The work behind the functions that may wait, split where they wait: what reads or changes
/// the resource table happens before (`start_*`) and after (`hold_replies`); the returned
/// future holds no borrow of the Store, so a WASI 0.3 caller's Store runs on meanwhile.
impl MessagingView<'_> {
    pub(super) fn connect_to(&mut self, name: &str) -> wasmtime::Result<Result<Resource<Client>, Error>> {
        if !self.broker.knows(name) {
            let why = format!("no messaging client named {name:?} on this host (it knows {DEFAULT_CLIENT:?})");
            return Ok(Err(Error::Connection(why)));
        }
        Ok(Ok(self.table.push(Client)?))
    }

    pub(super) fn start_send(
        &mut self,
        topic: String,
        message: Resource<Message>,
    ) -> wasmtime::Result<BoxFuture<'static, Result<(), Error>>> {
        let message = self.table.delete(message)?;
        if let Err(why) = check_topic(&topic) {
            return Ok(Box::pin(std::future::ready(Err(Error::Other(why)))));
        }
        Ok(self.broker.publish(self.sender.clone(), topic, message.envelope))
    }

    pub(super) fn start_request(
        &mut self,
        topic: String,
        message: Resource<Message>,
        options: Option<Resource<RequestOptions>>,
    ) -> wasmtime::Result<BoxFuture<'static, Result<Vec<Envelope>, Error>>> {
        let envelope = self.table.get(&message)?.envelope.clone();
        let options = match options {
            Some(options) => self.table.delete(options)?,
            None => RequestOptions::default(),
        };
        if let Err(why) = check_topic(&topic) {
            return Ok(Box::pin(std::future::ready(Err(Error::Other(why)))));
        }
        // Without a timeout a request waits as long as the work it is part of may.
        let timeout = options.timeout.unwrap_or(self.time_left).min(self.time_left);
        let expected = options.expected_replies.unwrap_or(1).max(1);
        Ok(self.broker.request(self.sender.clone(), topic, envelope, timeout, expected))
    }

    /// Gives the caller the replies to its request on `topic`.
    pub(super) fn hold_replies(
        &mut self,
        topic: String,
        replies: Result<Vec<Envelope>, Error>,
    ) -> wasmtime::Result<Result<Vec<Resource<Message>>, Error>> {
        let replies = match replies {
            Ok(replies) => replies,
            Err(e) => return Ok(Err(e)),
        };
        let held = replies
            .into_iter()
            .map(|envelope| self.table.push(Message { envelope, topic: Some(topic.clone()), reply_to: None }));
        Ok(Ok(held.collect::<Result<Vec<_>, _>>()?))
    }

    pub(super) fn send_reply(
        &mut self,
        reply_to: Resource<Message>,
        message: Resource<Message>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let reply = self.table.delete(message)?.envelope;
        let Some(to) = &self.table.get(&reply_to)?.reply_to else {
            return Ok(Err(Error::Other("this message was not a request: there is no one to reply to".into())));
        };
        Ok(to.send(reply).map_err(|_| Error::Timeout))
    }
}

impl request_reply::HostRequestOptions for MessagingView<'_> {
    async fn new(&mut self) -> wasmtime::Result<Resource<RequestOptions>> {
        Ok(self.table.push(RequestOptions::default())?)
    }

    async fn set_timeout_ms(&mut self, options: Resource<RequestOptions>, timeout_ms: u32) -> wasmtime::Result<()> {
        self.table.get_mut(&options)?.timeout = Some(Duration::from_millis(timeout_ms.into()));
        Ok(())
    }

    async fn set_expected_replies(&mut self, options: Resource<RequestOptions>, expected: u32) -> wasmtime::Result<()> {
        self.table.get_mut(&options)?.expected_replies = Some(expected);
        Ok(())
    }

    async fn drop(&mut self, options: Resource<RequestOptions>) -> wasmtime::Result<()> {
        self.table.delete(options)?;
        Ok(())
    }
}
