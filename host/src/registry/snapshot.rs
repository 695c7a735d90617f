//! What request routing and reports read: an immutable picture of the loaded components,
//! their routes and the files that failed, swapped whole on every change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::component::{FileStamp, LoadedComponent};
use crate::http::router::Router;

/// A file that could not be loaded, and why.
#[derive(Debug, Clone)]
pub struct Failure {
    pub name: String,
    pub path: PathBuf,
    pub error: String,
    /// The file as it was when it failed, so a rescan retries it only once it changes.
    pub stamp: FileStamp,
}

/// The loaded set at one moment.
#[derive(Default, Clone)]
pub struct Snapshot {
    pub router: Router,
    pub components: BTreeMap<String, Arc<LoadedComponent>>,
    pub failures: BTreeMap<String, Failure>,
}

impl Snapshot {
    /// The files that failed and have no earlier version serving in their place.
    pub fn unserved_failures(&self) -> impl Iterator<Item = &Failure> {
        self.failures.values().filter(|f| !self.components.contains_key(&f.name))
    }
}
