//! What request routing and reports read: an immutable picture of the loaded components,
//! their routes and the files that failed, and in cluster mode what the other hosts run and
//! answer, swapped whole on every change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::cluster::RemoteComponent;
use crate::component::{FileStamp, LoadedComponent};
use crate::http::router::{Route, Router};

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
    /// What the other hosts of the cluster run: requests for their routes are forwarded.
    pub remote: Remote,
}

/// The components other hosts run, and a router over their routes (consulted after this
/// host's own).
#[derive(Default, Clone)]
pub struct Remote {
    pub router: Router,
    pub components: BTreeMap<String, RemoteComponent>,
}

impl Remote {
    /// From the directory's components. A route that two of them claim goes to the first, by
    /// name (each host refuses such conflicts among its own components).
    pub fn of(components: Vec<RemoteComponent>) -> Self {
        let mut router = Router::default();
        for c in &components {
            let routes = c.routes.iter().filter_map(|spec| Route::parse(spec.trim_start_matches("* "), &c.name).ok());
            if let Err(conflict) = router.add(routes.collect()) {
                tracing::warn!(component = c.name, %conflict, "not forwarding to a remote component's routes");
            }
        }
        Self { router, components: components.into_iter().map(|c| (c.name.clone(), c)).collect() }
    }
}

impl Snapshot {
    /// The files that failed and have no earlier version serving in their place.
    pub fn unserved_failures(&self) -> impl Iterator<Item = &Failure> {
        self.failures.values().filter(|f| !self.components.contains_key(&f.name))
    }
}
