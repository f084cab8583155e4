//! What OpsLedger tells Prometheus about itself, on `GET /metrics` (OpenMetrics text).
//!
//! One registry for the process ([`metrics`]); the store, the GraphQL edge and the
//! background tasks record into it as they work, and figures that are a state rather than a
//! count (projection lag, open subscriptions, the mail queue, each task's state) are read
//! when Prometheus scrapes. Labels are few and bounded: a backend, a model, an error code, a
//! task, and a GraphQL operation name cut to [`OPERATION_NAME_MAX`] characters of
//! `[A-Za-z0-9_]` (any other name counts as `other`, an unnamed operation as `anonymous`).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The longest operation name kept as a label.
pub const OPERATION_NAME_MAX: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabel {
    pub backend: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub operation: String,
    /// `ok`, or the first error's `extensions.code`.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    pub model: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabel {
    pub task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskStateLabels {
    pub task: String,
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    // 0.1 ms … about 6.5 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

fn counts() -> Histogram {
    // 1 … 32,768.
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// Every metric OpsLedger keeps.
pub struct Metrics {
    registry: Registry,
    pub appends: Family<BackendLabel, Counter>,
    pub events_appended: Family<BackendLabel, Counter>,
    pub commit_seconds: HistogramFamily<BackendLabel>,
    pub events_per_commit: HistogramFamily<BackendLabel>,
    pub head: Gauge,
    pub projection_position: Family<ModelLabel, Gauge>,
    pub projection_lag: Family<ModelLabel, Gauge>,
    pub graphql_requests: Family<OutcomeLabels, Counter>,
    pub graphql_seconds: HistogramFamily<OperationLabel>,
    pub graphql_panics: Counter,
    pub http_refused_too_large: Counter,
    pub subscriptions_open: Gauge,
    pub scheduler_passes: Counter,
    pub scheduler_recorded: Family<KindLabel, Counter>,
    pub scheduler_failures: Family<KindLabel, Counter>,
    pub engine_steps: Family<KindLabel, Counter>,
    pub mail_queue: Gauge,
    pub mail_sent: Counter,
    pub mail_failures: Counter,
    pub snapshot_seconds: Histogram,
    pub snapshot_failures: Counter,
    pub task_state: Family<TaskStateLabels, Gauge>,
    pub task_restarts: Family<TaskLabel, Counter>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("opsledger");
        let appends = Family::<BackendLabel, Counter>::default();
        registry.register(
            "appends",
            "Commands appended to the log (each one atomic batch of events)",
            appends.clone(),
        );
        let events_appended = Family::<BackendLabel, Counter>::default();
        registry.register(
            "events_appended",
            "Events appended to the log",
            events_appended.clone(),
        );
        let commit_seconds: HistogramFamily<BackendLabel> = Family::new_with_constructor(seconds);
        registry.register(
            "commit_seconds",
            "Time of one commit of the writer (a group of appends in one transaction)",
            commit_seconds.clone(),
        );
        let events_per_commit: HistogramFamily<BackendLabel> = Family::new_with_constructor(counts);
        registry.register(
            "events_per_commit",
            "Events written by one commit of the writer",
            events_per_commit.clone(),
        );
        let head = Gauge::default();
        registry.register("log_head", "The log's last position", head.clone());
        let projection_position = Family::<ModelLabel, Gauge>::default();
        registry.register(
            "projection_position",
            "The last log position each read model has folded",
            projection_position.clone(),
        );
        let projection_lag = Family::<ModelLabel, Gauge>::default();
        registry.register(
            "projection_lag_events",
            "Events each read model is behind the log's head (head - position)",
            projection_lag.clone(),
        );
        let graphql_requests = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "graphql_requests",
            "GraphQL operations answered, by operation name and outcome (ok or the error code)",
            graphql_requests.clone(),
        );
        let graphql_seconds: HistogramFamily<OperationLabel> =
            Family::new_with_constructor(seconds);
        registry.register(
            "graphql_request_seconds",
            "Time to answer a GraphQL operation, by operation name",
            graphql_seconds.clone(),
        );
        let graphql_panics = Counter::default();
        registry.register(
            "graphql_panics",
            "Resolvers that panicked (each answered INTERNAL with a logged error id)",
            graphql_panics.clone(),
        );
        let http_refused_too_large = Counter::default();
        registry.register(
            "http_refused_too_large",
            "Requests refused because their body was over the limit (413)",
            http_refused_too_large.clone(),
        );
        let subscriptions_open = Gauge::default();
        registry.register(
            "subscriptions_open",
            "GraphQL subscriptions open now",
            subscriptions_open.clone(),
        );
        let scheduler_passes = Counter::default();
        registry.register(
            "scheduler_passes",
            "Passes of the scheduler (escalations, leases, SLA clocks, inspections, CMDB changes)",
            scheduler_passes.clone(),
        );
        let scheduler_recorded = Family::<KindLabel, Counter>::default();
        registry.register(
            "scheduler_recorded",
            "What the scheduler's passes recorded, by kind",
            scheduler_recorded.clone(),
        );
        let scheduler_failures = Family::<KindLabel, Counter>::default();
        registry.register(
            "scheduler_failures",
            "Scheduler passes that failed, by kind",
            scheduler_failures.clone(),
        );
        let engine_steps = Family::<KindLabel, Counter>::default();
        registry.register(
            "engine_steps",
            "Provisioning steps the engine carried out, by outcome (succeeded, failed, undone, undo_failed)",
            engine_steps.clone(),
        );
        let mail_queue = Gauge::default();
        registry.register(
            "mail_queue",
            "Mails waiting to be sent (queued or due for a retry)",
            mail_queue.clone(),
        );
        let mail_sent = Counter::default();
        registry.register("mail_sent", "Mails sent", mail_sent.clone());
        let mail_failures = Counter::default();
        registry.register(
            "mail_failures",
            "Attempts to send a mail that failed",
            mail_failures.clone(),
        );
        let snapshot_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register(
            "snapshot_seconds",
            "Time to write a snapshot of the read models",
            snapshot_seconds.clone(),
        );
        let snapshot_failures = Counter::default();
        registry.register(
            "snapshot_failures",
            "Snapshots that could not be written",
            snapshot_failures.clone(),
        );
        let task_state = Family::<TaskStateLabels, Gauge>::default();
        registry.register(
            "task_state",
            "1 for the state each background task is in (running, standby, retrying, stopped)",
            task_state.clone(),
        );
        let task_restarts = Family::<TaskLabel, Counter>::default();
        registry.register(
            "task_retries",
            "Times a background task was retried after a transient error",
            task_restarts.clone(),
        );
        Metrics {
            registry,
            appends,
            events_appended,
            commit_seconds,
            events_per_commit,
            head,
            projection_position,
            projection_lag,
            graphql_requests,
            graphql_seconds,
            graphql_panics,
            http_refused_too_large,
            subscriptions_open,
            scheduler_passes,
            scheduler_recorded,
            scheduler_failures,
            engine_steps,
            mail_queue,
            mail_sent,
            mail_failures,
            snapshot_seconds,
            snapshot_failures,
            task_state,
            task_restarts,
        }
    }

    /// Records one commit of a backend's writer: `commands` appends holding `events` events.
    pub fn commit(&self, backend: &'static str, commands: usize, events: usize, took: Duration) {
        let label = BackendLabel { backend };
        self.appends.get_or_create(&label).inc_by(commands as u64);
        self.events_appended
            .get_or_create(&label)
            .inc_by(events as u64);
        self.commit_seconds
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        self.events_per_commit
            .get_or_create(&label)
            .observe(events as f64);
    }

    /// Records one answered GraphQL operation.
    pub fn graphql(&self, operation: &str, code: Option<&str>, took: Duration) {
        let operation = operation_label(Some(operation));
        self.graphql_requests
            .get_or_create(&OutcomeLabels {
                operation: operation.clone(),
                code: code.unwrap_or("ok").to_owned(),
            })
            .inc();
        self.graphql_seconds
            .get_or_create(&OperationLabel { operation })
            .observe(took.as_secs_f64());
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The label for a GraphQL operation name (see the module's documentation).
pub fn operation_label(name: Option<&str>) -> String {
    match name {
        None | Some("") => "anonymous".to_owned(),
        Some(name)
            if name.len() <= OPERATION_NAME_MAX
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            name.to_owned()
        }
        Some(_) => "other".to_owned(),
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// A gauge of open things that goes down again when the guard is dropped.
pub struct Open(&'static Gauge<i64, std::sync::atomic::AtomicI64>);

impl Open {
    pub fn subscription() -> Self {
        let gauge = &metrics().subscriptions_open;
        gauge.inc();
        Open(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_become_bounded_labels() {
        assert_eq!(operation_label(None), "anonymous");
        assert_eq!(operation_label(Some("Requests")), "Requests");
        assert_eq!(operation_label(Some("a b")), "other");
        assert_eq!(operation_label(Some(&"x".repeat(65))), "other");
    }

    #[test]
    fn the_registry_encodes_as_openmetrics() {
        let m = Metrics::new();
        m.commit("sqlite", 2, 5, Duration::from_millis(3));
        m.graphql("Requests", Some("FORBIDDEN"), Duration::from_millis(1));
        let text = m.encode();
        assert!(
            text.contains("opsledger_appends_total{backend=\"sqlite\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("opsledger_events_appended_total{backend=\"sqlite\"} 5"),
            "{text}"
        );
        assert!(
            text.contains(
                "opsledger_graphql_requests_total{operation=\"Requests\",code=\"FORBIDDEN\"} 1"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
