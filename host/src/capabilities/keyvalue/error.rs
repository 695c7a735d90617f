//! What storage answers when it fails: the database as a whole, one write alone, or a quota.

#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The database failed; the writes of the group it was committing failed with it.
    #[error("storage error: {0}")]
    Database(String),
    /// This write alone was refused, for the reason given.
    #[error("storage error: {0}")]
    Refused(String),
    #[error("storage quota exceeded: {0}")]
    Quota(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self { StorageError::Database(e.to_string()) }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
