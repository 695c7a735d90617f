//! The host's Prometheus metrics: HTTP requests, calls between components, breakers,
//! instances, storage, component loads, messaging and the cluster. One process-wide set, like Prometheus' default
//! registry, so every layer records without a handle threaded through each Store;
//! `/metrics` encodes it.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

use crate::breaker::StateName;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HttpLabels {
    pub component: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub component: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub caller: String,
    pub interface: String,
    pub function: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FunctionLabels {
    pub caller: String,
    pub interface: String,
    pub function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LinkLabels {
    pub caller: String,
    pub interface: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TransitionLabels {
    pub caller: String,
    pub interface: String,
    pub to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ComponentLabels {
    pub component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StorageLabels {
    pub component: String,
    pub operation: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutboundLabels {
    pub(crate) component: String,
    pub(crate) result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LoadLabels {
    pub component: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SubscriberLabels {
    pub subscriber: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DeliveryLabels {
    pub subscriber: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RemoteCallLabels {
    pub component: String,
    /// The host that answered, or `-` when none did.
    pub host: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ForwardLabels {
    pub component: String,
    pub host: String,
    /// The status the other host answered, or why there was none.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RefusalLabels {
    pub policy: String,
    /// `unauthenticated`, `forbidden`, `rate-limited` or `cors`.
    pub reason: String,
}

/// Latency buckets from 50 µs to about 26 s, doubling: covers a warm in-process call and a
/// request that runs into its deadline.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

pub(crate) struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram>,
    pub calls: Family<CallLabels, Counter>,
    pub call_duration: Family<FunctionLabels, Histogram>,
    pub breaker_state: Family<LinkLabels, Gauge>,
    pub breaker_transitions: Family<TransitionLabels, Counter>,
    pub instances_alive: Family<ComponentLabels, Gauge>,
    pub instantiation_duration: Family<ComponentLabels, Histogram>,
    pub storage_operations: Family<StorageLabels, Counter>,
    pub component_loads: Family<LoadLabels, Counter>,
    pub outbound_requests: Family<OutboundLabels, Counter>,
    pub guest_log_dropped: Family<ComponentLabels, Counter>,
    pub messages_published: Family<TopicLabels, Counter>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub subscriber_lag: Family<SubscriberLabels, Gauge>,
    pub subscriber_lag_seconds: Family<SubscriberLabels, Gauge>,
    pub remote_calls: Family<RemoteCallLabels, Counter>,
    pub forwarded_requests: Family<ForwardLabels, Counter>,
    pub remote_call_duration: Family<ComponentLabels, Histogram>,
    pub refused: Family<RefusalLabels, Counter>,
    /// 1 while connected to the cluster's NATS servers, 0 otherwise (absent on a single host).
    pub nats_connected: Gauge,
}

/// The process-wide metrics.
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let mut r = Registry::with_prefix("trellis");
        Self {
            http_requests: registered(
                &mut r,
                "http_requests",
                "HTTP requests served, by component, route and status",
                Family::default(),
            ),
            refused: registered(
                &mut r,
                "http_refused",
                "Requests the edge's policies refused before any component saw them, by policy and reason",
                Family::default(),
            ),
            http_duration: registered(
                &mut r,
                "http_request_duration_seconds",
                "HTTP request latency",
                Family::new_with_constructor(latency),
            ),
            calls: registered(
                &mut r,
                "calls",
                "Calls between components, by caller, interface, function and outcome",
                Family::default(),
            ),
            call_duration: registered(
                &mut r,
                "call_duration_seconds",
                "Latency of calls between components",
                Family::new_with_constructor(latency),
            ),
            breaker_state: registered(
                &mut r,
                "breaker_state",
                "Breaker state per link: 0 closed, 1 open, 2 half-open, 3 forced open, 4 forced closed",
                Family::default(),
            ),
            breaker_transitions: registered(
                &mut r,
                "breaker_transitions",
                "Breaker state changes, by the state entered",
                Family::default(),
            ),
            instances_alive: registered(
                &mut r,
                "instances_alive",
                "Component instances in existence, busy or idle",
                Family::default(),
            ),
            instantiation_duration: registered(
                &mut r,
                "instantiation_duration_seconds",
                "Time to create an instance",
                Family::new_with_constructor(latency),
            ),
            storage_operations: registered(
                &mut r,
                "storage_operations",
                "wasi:keyvalue operations, by component, operation and result",
                Family::default(),
            ),
            component_loads: registered(
                &mut r,
                "component_loads",
                "Component loads, by result: loaded, failed, removed",
                Family::default(),
            ),
            outbound_requests: registered(
                &mut r,
                "outbound_requests",
                "Outgoing HTTP requests by components, by result: allowed, denied",
                Family::default(),
            ),
            guest_log_dropped: registered(
                &mut r,
                "guest_log_lines_dropped",
                "Guest log lines dropped by the per-component rate limit",
                Family::default(),
            ),
            messages_published: registered(
                &mut r,
                "messages_published",
                "Messages published, by topic (stored durably when a component subscribes to it)",
                Family::default(),
            ),
            deliveries: registered(
                &mut r,
                "message_deliveries",
                "Message deliveries, by subscriber and result: acknowledged, retried, dead-lettered",
                Family::default(),
            ),
            subscriber_lag: registered(
                &mut r,
                "subscriber_lag_messages",
                "Messages on a subscriber's topics that it has not acknowledged yet",
                Family::default(),
            ),
            subscriber_lag_seconds: registered(
                &mut r,
                "subscriber_lag_seconds",
                "Age of the oldest message a subscriber has not acknowledged yet",
                Family::default(),
            ),
            remote_calls: registered(
                &mut r,
                "remote_calls",
                "Calls to components on other hosts, by component, answering host and outcome",
                Family::default(),
            ),
            forwarded_requests: registered(
                &mut r,
                "forwarded_requests",
                "Requests forwarded to a component on another host, by component, host and status",
                Family::default(),
            ),
            remote_call_duration: registered(
                &mut r,
                "remote_call_duration_seconds",
                "Round trip of calls to components on other hosts, by component",
                Family::new_with_constructor(latency),
            ),
            nats_connected: registered(
                &mut r,
                "nats_connected",
                "1 while the host is connected to the cluster's NATS servers",
                Gauge::default(),
            ),
            registry: r,
        }
    }

    /// The exposition, in the OpenMetrics text format Prometheus scrapes.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub(crate) fn record_http(&self, component: &str, route: &str, status: u16, took: Duration) {
        let (component, route) = (component.to_string(), route.to_string());
        self.http_requests
            .get_or_create(&HttpLabels { component: component.clone(), route: route.clone(), status })
            .inc();
        self.http_duration.get_or_create(&RouteLabels { component, route }).observe(took.as_secs_f64());
    }

    pub(crate) fn record_refusal(&self, policy: &str, reason: &str) {
        self.refused.get_or_create(&RefusalLabels { policy: policy.into(), reason: reason.into() }).inc();
    }

    pub(crate) fn record_call(&self, caller: &str, interface: &str, function: &str, outcome: &str, took: Duration) {
        let labels = FunctionLabels { caller: caller.into(), interface: interface.into(), function: function.into() };
        self.call_duration.get_or_create(&labels).observe(took.as_secs_f64());
        let FunctionLabels { caller, interface, function } = labels;
        self.calls.get_or_create(&CallLabels { caller, interface, function, outcome: outcome.into() }).inc();
    }

    pub(crate) fn record_breaker(&self, caller: &str, interface: &str, to: StateName) {
        let link = LinkLabels { caller: caller.into(), interface: interface.into() };
        self.breaker_state.get_or_create(&link).set(state_number(to));
        let LinkLabels { caller, interface } = link;
        self.breaker_transitions.get_or_create(&TransitionLabels { caller, interface, to: to.as_str().into() }).inc();
    }

    pub(crate) fn record_outbound(&self, component: &str, result: &str) {
        let labels = OutboundLabels { component: component.into(), result: result.into() };
        self.outbound_requests.get_or_create(&labels).inc();
    }

    pub(crate) fn record_guest_log_dropped(&self, component: &str) {
        self.guest_log_dropped.get_or_create(&ComponentLabels { component: component.into() }).inc();
    }

    pub(crate) fn record_delivery(&self, subscriber: &str, result: &str) {
        let labels = DeliveryLabels { subscriber: subscriber.into(), result: result.into() };
        self.deliveries.get_or_create(&labels).inc();
    }

    pub(crate) fn record_remote_call(&self, component: &str, host: &str, outcome: &str, took: Duration) {
        let labels = RemoteCallLabels { component: component.into(), host: host.into(), outcome: outcome.into() };
        self.remote_calls.get_or_create(&labels).inc();
        let component = ComponentLabels { component: labels.component };
        self.remote_call_duration.get_or_create(&component).observe(took.as_secs_f64());
    }

    pub(crate) fn record_forward(&self, component: &str, host: &str, status: &str) {
        let labels = ForwardLabels { component: component.into(), host: host.into(), status: status.into() };
        self.forwarded_requests.get_or_create(&labels).inc();
    }

    pub(crate) fn record_load(&self, component: &str, result: &str) {
        self.component_loads.get_or_create(&LoadLabels { component: component.into(), result: result.into() }).inc();
    }
}

/// `metric`, once registered under `name` (a family is a handle: the registry keeps a clone).
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

fn state_number(state: StateName) -> i64 {
    match state {
        StateName::Closed => 0,
        StateName::Open => 1,
        StateName::HalfOpen => 2,
        StateName::ForcedOpen => 3,
        StateName::ForcedClosed => 4,
    }
}
