//! The resources a component holds through `wasi:messaging`, kept in its Store's resource
//! table. They are `pub` because the generated bindings re-export them with `pub use`.
#![allow(unreachable_pub)]

use std::time::Duration;

use super::{Envelope, ReplyTo};

/// A connection to the bus (the one this host knows, by its name).
#[derive(Debug)]
pub struct Client;

/// A message: one the component is building to send, or one delivered to it (then with the
/// topic it came on, and where replies go when it was a request).
#[derive(Debug)]
pub struct Message {
    pub(super) envelope: Envelope,
    pub(super) topic: Option<String>,
    pub(super) reply_to: Option<ReplyTo>,
}

impl Message {
    /// A message delivered on `topic`, answerable through `reply_to` when it was a request.
    pub(crate) fn delivered(topic: String, envelope: Envelope, reply_to: Option<ReplyTo>) -> Self {
        Self { envelope, topic: Some(topic), reply_to }
    }
}

/// How long a request waits and for how many replies.
#[derive(Debug, Default)]
pub struct RequestOptions {
    pub(super) timeout: Option<Duration>,
    pub(super) expected_replies: Option<u32>,
}
