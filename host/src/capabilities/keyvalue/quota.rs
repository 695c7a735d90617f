//! What one component may keep in storage, and the check of one entry against it.

use super::error::StorageError;
use crate::config::Limits;

/// What one component may keep in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    pub(crate) max_key_bytes: usize,
    pub(crate) max_value_bytes: usize,
    pub(crate) max_keys: u64,
    pub(crate) max_bytes: u64,
}

impl Quota {
    pub(crate) fn of(limits: &Limits) -> Self {
        Self {
            max_key_bytes: limits.max_key_bytes,
            max_value_bytes: limits.max_value_bytes,
            max_keys: limits.max_keys,
            max_bytes: limits.max_storage_mib.saturating_mul(1024 * 1024),
        }
    }

    /// No limit: for the host's own bookkeeping writes, and tests of everything else.
    pub(crate) const NONE: Quota =
        Quota { max_key_bytes: usize::MAX, max_value_bytes: usize::MAX, max_keys: u64::MAX, max_bytes: u64::MAX };

    pub(super) fn check_entry(&self, key: &str, value_len: usize) -> Result<(), StorageError> {
        if key.len() > self.max_key_bytes {
            let message = format!("key of {} bytes is over limits.max_key_bytes ({})", key.len(), self.max_key_bytes);
            return Err(StorageError::Quota(message));
        }
        if value_len > self.max_value_bytes {
            let message =
                format!("value of {value_len} bytes is over limits.max_value_bytes ({})", self.max_value_bytes);
            return Err(StorageError::Quota(message));
        }
        Ok(())
    }
}
