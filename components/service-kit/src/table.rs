//! A bucket of JSON records keyed by a positive id. Keys are zero-padded so that the
//! bucket's key order is id order, which is creation order: oldest first.

use std::cell::RefCell;
use std::rc::Rc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::trellis::keyvalue::sequences;
use crate::wasi::keyvalue::{batch, store};

/// The counter key, in its own bucket, from which ids are drawn.
const NEXT_ID: &str = "next-id";

pub struct Table {
    bucket: Rc<store::Bucket>,
    name: String,
}

/// The host's storage failed, or a record in it is unreadable. Handlers answer it with a 500
/// naming the cause (`?` converts it), never a trap.
#[derive(Debug, Clone)]
pub struct StorageError(pub String);

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StorageError {}

impl From<StorageError> for guest_http::Response {
    fn from(e: StorageError) -> Self {
        guest_http::Response::error(500, "storage_error", &e.0)
    }
}

/// A storage failure answered directly by a handler: 500 naming it.
impl From<store::Error> for guest_http::Response {
    fn from(e: store::Error) -> Self {
        StorageError::from(e).into()
    }
}

impl From<store::Error> for StorageError {
    fn from(e: store::Error) -> Self {
        StorageError(match e {
            store::Error::NoSuchStore => "no such store".to_string(),
            store::Error::AccessDenied => "access denied".to_string(),
            store::Error::Other(message) => message,
        })
    }
}

fn describe(e: store::Error) -> StorageError {
    e.into()
}

thread_local! {
    /// The buckets this instance has opened: an instance serves request after request, and
    /// its handles stay valid for as long as it lives, so each bucket is opened once.
    static OPENED: RefCell<Vec<(String, Rc<store::Bucket>)>> = const { RefCell::new(Vec::new()) };
}

/// The bucket `name`, opened on first use.
fn opened(name: &str) -> Result<Rc<store::Bucket>, StorageError> {
    if let Some(bucket) = OPENED.with_borrow(|opened| opened.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone())) {
        return Ok(bucket);
    }
    let bucket = Rc::new(store::open(name).map_err(describe)?);
    OPENED.with_borrow_mut(|opened| opened.push((name.to_string(), bucket.clone())));
    Ok(bucket)
}

impl Table {
    /// The key of the record `id`: zero-padded, so key order is id order.
    pub fn key(id: u64) -> String {
        format!("{id:020}")
    }

    pub fn bucket(&self) -> &store::Bucket {
        &self.bucket
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Opens the bucket `name`.
    pub fn open(name: &str) -> Result<Self, StorageError> {
        Ok(Self { bucket: opened(name)?, name: name.to_string() })
    }

    /// A fresh id: 1, 2, 3... in order of creation, never reused, even after deletes,
    /// concurrent creates or a crash (after a crash, ids may skip a few). Drawn from a host
    /// sequence: no durable write of its own, so a create costs one commit, the record's.
    pub fn next_id(&self) -> Result<u64, StorageError> {
        // The counter has a bucket of its own so that listing the records never meets it.
        let counters = opened(&format!("{}-counters", self.name))?;
        sequences::next(&counters, NEXT_ID).map_err(describe)
    }

    pub fn get<T: DeserializeOwned>(&self, id: u64) -> Result<Option<T>, StorageError> {
        match self.bucket.get(&Self::key(id)).map_err(describe)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StorageError(format!("record {id} is corrupt: {e}"))),
        }
    }

    pub fn put<T: Serialize>(&self, id: u64, value: &T) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StorageError(e.to_string()))?;
        self.bucket.set(&Self::key(id), &bytes).map_err(describe)
    }

    pub fn delete(&self, id: u64) -> Result<(), StorageError> {
        self.bucket.delete(&Self::key(id)).map_err(describe)
    }

    /// Every id in the table, oldest first.
    pub fn ids(&self) -> Result<Vec<u64>, StorageError> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.bucket.list_keys(cursor.as_deref()).map_err(describe)?;
            ids.extend(page.keys.iter().filter_map(|k| k.parse::<u64>().ok()));
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(ids),
            }
        }
    }

    /// The records with these ids, in this order, skipping any deleted meanwhile.
    pub fn get_many<T: DeserializeOwned>(&self, ids: &[u64]) -> Result<Vec<T>, StorageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| Self::key(*id)).collect();
        let found = batch::get_many(&self.bucket, &keys).map_err(describe)?;
        found
            .into_iter()
            .flatten()
            .map(|(k, bytes)| {
                serde_json::from_slice(&bytes).map_err(|e| StorageError(format!("record {k} is corrupt: {e}")))
            })
            .collect()
    }

    /// The stored bytes of the records with these ids, in this order, skipping any deleted.
    pub fn get_many_raw(&self, ids: &[u64]) -> Result<Vec<Vec<u8>>, StorageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| Self::key(*id)).collect();
        Ok(batch::get_many(&self.bucket, &keys).map_err(describe)?.into_iter().flatten().map(|(_, v)| v).collect())
    }

    /// Every record, oldest first.
    pub fn all<T: DeserializeOwned>(&self) -> Result<Vec<T>, StorageError> {
        self.get_many(&self.ids()?)
    }
}
