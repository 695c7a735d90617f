//! API keys: the config holds only each key's SHA-256; a presented key is hashed and looked up,
//! so the file never holds a usable secret.

use std::collections::HashMap;

use anyhow::bail;
use sha2::{Digest, Sha256};

use super::Identity;
use crate::config::ApiKey;

#[derive(Default)]
pub(super) struct ApiKeys {
    /// By the lowercase hex of the key's SHA-256: the holder's name and scopes.
    by_digest: HashMap<String, (String, Vec<String>)>,
}

impl ApiKeys {
    pub(super) fn new(keys: &[ApiKey]) -> anyhow::Result<Self> {
        let mut by_digest = HashMap::new();
        for key in keys {
            let digest = key.sha256.trim().to_ascii_lowercase();
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("[[auth.api_keys]] {:?}: sha256 must be the 64 hex digits of the key's SHA-256", key.name);
            }
            if key.name.is_empty() || key.name.chars().any(char::is_control) {
                bail!("[[auth.api_keys]]: a key needs a name of printable characters");
            }
            if let Some((other, _)) = by_digest.insert(digest, (key.name.clone(), key.scopes.clone())) {
                bail!("[[auth.api_keys]] {:?} and {other:?} are the same key", key.name);
            }
        }
        Ok(Self { by_digest })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// Who holds `key`, if anyone.
    pub(super) fn find(&self, key: &str) -> Option<Identity> {
        let digest = format!("{:x}", Sha256::digest(key.as_bytes()));
        let (name, scopes) = self.by_digest.get(&digest)?;
        Some(Identity { subject: Some(name.clone()), scopes: scopes.clone(), method: "api-key" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, secret: &str) -> ApiKey {
        ApiKey { name: name.into(), sha256: format!("{:X}", Sha256::digest(secret)), scopes: vec!["shop".into()] }
    }

    #[test]
    fn a_key_is_found_by_its_hash_and_names_its_holder() {
        let keys = ApiKeys::new(&[key("billing-batch", "s3cret")]).unwrap();
        let found = keys.find("s3cret").unwrap();
        assert_eq!(
            (found.subject.as_deref(), found.scopes.as_slice()),
            (Some("billing-batch"), &["shop".to_string()][..])
        );
        assert!(keys.find("s3cret ").is_none());
    }

    #[test]
    fn a_malformed_hash_or_a_key_listed_twice_is_refused() {
        let bad = ApiKey { name: "x".into(), sha256: "abc".into(), scopes: vec![] };
        assert!(ApiKeys::new(&[bad]).err().unwrap().to_string().contains("64 hex digits"));
        let twice = ApiKeys::new(&[key("a", "k"), key("b", "k")]).err().unwrap().to_string();
        assert!(twice.contains("same key"), "{twice}");
    }
}
