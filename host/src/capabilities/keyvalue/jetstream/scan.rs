//! Listing keys and scanning entries in key order on JetStream. JetStream keeps no order of
//! keys and filters subjects by whole tokens only, so a listing reads the latest entry of
//! every key of the component's bucket (one ordered consumer, last per subject, values left
//! out when only keys are asked for), then sorts and pages in memory: its cost grows with the
//! bucket, not with the page. That is the price of sharing the data between hosts; the
//! embedded storage seeks instead.

use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, ReplayPolicy, push};
use futures::StreamExt;

use super::{Bucket, SharedStorage, deleted, names, unreachable_nats};
use crate::capabilities::keyvalue::Quota;
use crate::capabilities::keyvalue::error::StorageError;
use crate::capabilities::keyvalue::redb_backend::LIST_PAGE;

/// The longest a listing waits for the next entry before giving up.
const QUIET: Duration = Duration::from_secs(10);

impl SharedStorage {
    /// Up to [`LIST_PAGE`] keys after `cursor` (exclusive), in key order, and the cursor of
    /// the next page if there is one.
    pub(crate) async fn list_keys(
        &self,
        namespace: &str,
        quota: Quota,
        bucket: &str,
        cursor: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), StorageError> {
        let store = self.bucket(namespace, quota).await?;
        let mut keys: Vec<String> =
            store.entries(&self.0.client, bucket, false).await?.into_iter().map(|e| e.0).collect();
        keys.retain(|key| cursor.is_none_or(|cursor| key.as_str() > cursor));
        keys.sort_unstable();
        let more = keys.len() > LIST_PAGE;
        keys.truncate(LIST_PAGE);
        let next = if more { keys.last().cloned() } else { None };
        Ok((keys, next))
    }

    /// Up to `limit` (at most [`LIST_PAGE`]) entries whose keys start with `prefix`, in key
    /// order, after `after` (exclusive) when given, once `skip` entries are passed over.
    pub(crate) async fn scan(
        &self,
        namespace: &str,
        quota: Quota,
        bucket: &str,
        page: (&str, Option<&str>, usize, usize),
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let (prefix, after, skip, limit) = page;
        let store = self.bucket(namespace, quota).await?;
        let mut found = store.entries(&self.0.client, bucket, true).await?;
        found.retain(|(key, _)| key.starts_with(prefix) && after.is_none_or(|after| key.as_str() > after));
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(found.into_iter().skip(skip).take(limit.min(LIST_PAGE)).collect())
    }
}

impl Bucket {
    /// The keys of the component's bucket `bucket` that hold a value, with the values when
    /// `values`, in no particular order.
    async fn entries(
        &self,
        client: &async_nats::Client,
        bucket: &str,
        values: bool,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let failed = |e: &dyn std::fmt::Display| unreachable_nats("cannot list", e);
        let config = push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: format!("{}{}.>", self.prefix, names::token(bucket)),
            deliver_policy: DeliverPolicy::LastPerSubject,
            replay_policy: ReplayPolicy::Instant,
            headers_only: !values,
            ..Default::default()
        };
        let consumer = self.stream.create_consumer(config).await.map_err(|e| failed(&e))?;
        let mut found = Vec::new();
        if consumer.cached_info().num_pending == 0 {
            return Ok(found);
        }
        let mut messages = consumer.messages().await.map_err(|e| failed(&e))?;
        loop {
            let next = tokio::time::timeout(QUIET, messages.next()).await;
            let message = match next {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(e))) => return Err(failed(&e)),
                Ok(None) => return Err(failed(&"the listing ended early")),
                Err(_) => return Err(failed(&"no entry came for 10 s")),
            };
            let pending = message.info().map_err(|e| failed(&e))?.pending;
            let stored = message.subject.strip_prefix(self.prefix.as_str()).and_then(names::unkey);
            let value_kept = !message.headers.as_ref().is_some_and(deleted);
            if let Some(key) = stored.filter(|_| value_kept) {
                found.push((key, message.payload.to_vec()));
            }
            if pending == 0 {
                return Ok(found);
            }
        }
    }
}
