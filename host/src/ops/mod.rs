//! Operating the host: its own endpoints and their small router (`endpoints`), health and
//! readiness (`health`), the admin API (`admin`), the Prometheus metrics every layer records
//! (`metrics`), the services report (`report`), the supervision of background tasks
//! (`supervisor`), and making outside text safe for a log line (`escape`). Serving HTTP is the http module's;
//! what the reports describe is the registry's.

pub(crate) mod admin;
pub(crate) mod endpoints;
pub(crate) mod escape;
pub(crate) mod health;
pub(crate) mod metrics;
pub mod report;
pub(crate) mod supervisor;
