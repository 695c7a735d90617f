//! HTTP into the host: the two listeners with each request's correlation id, access log and
//! metrics, connection limits and graceful shutdown (`listener`), what a client may cost
//! (`edge`), which component answers which path (`router`), one request into a component
//! (`dispatch`), a route of a component on another host of the cluster (`forward`), and the
//! responses the host writes itself (`responses`). The host's own
//! endpoints are the ops module's, the API documentation the docs module's, the checks
//! before a component sees a request the policy module's; components' routes come from the
//! registry.

pub(crate) mod dispatch;
mod edge;
pub(crate) mod forward;
pub(crate) mod listener;
pub(crate) mod responses;
pub(crate) mod router;
