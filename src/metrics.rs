//! What OpsLedger tells Prometheus about itself, on `GET /metrics` (OpenMetrics text).
//!
//! One registry for the process ([`metrics`]); the store and the GraphQL edge record into
//! it as they work, and figures that are a state rather than a count (the log's head,
//! projection lag) are read when Prometheus scrapes. Labels are few and bounded: a backend, a model, an error code,
//! and a GraphQL operation name cut to [`OPERATION_NAME_MAX`] characters of
//! `[A-Za-z0-9_]` (any other name counts as `other`, an unnamed operation as `anonymous`).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

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
    pub task: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskStateLabels {
    pub task: &'static str,
    /// `running`, `retrying`, `stopped` or `standby`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobOutcomeLabels {
    /// One of the scheduler's jobs: `escalation`, `leases`, `sla`, `inspections`,
    /// `change_cmdb`.
    pub job: &'static str,
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobRecordLabels {
    pub job: &'static str,
    /// What the job recorded, e.g. `reclaimed`, `warnings`, `scheduled`.
    pub what: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    /// What the engine recorded on a run: `complete`, `fail`, `begin_undo`, `undone`,
    /// `undo_failed`, `finish`, `abort`, `close`.
    pub outcome: &'static str,
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
    pub task_state: Family<TaskStateLabels, Gauge>,
    pub task_lag: Family<TaskLabel, Gauge>,
    pub task_failures: Family<TaskLabel, Counter>,
    pub scheduler_passes: Family<JobOutcomeLabels, Counter>,
    pub scheduler_recorded: Family<JobRecordLabels, Counter>,
    pub engine_steps: Family<StepLabel, Counter>,
    pub engine_retries: Counter,
    pub mail_queued: Counter,
    pub mail_sent: Counter,
    pub mail_failures: Counter,
    pub mail_outbox: Gauge,
    pub snapshot_seconds: Histogram,
    pub snapshot_held_seconds: Histogram,
    pub snapshot_failures: Counter,
    pub checkpoints_recorded: Counter,
}

/// Registers `metric` under `name` and gives it back to be kept.
fn add<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    fn new() -> Self {
        let mut r = Registry::with_prefix("opsledger");
        Metrics {
            appends: add(
                &mut r,
                "appends",
                "Commands appended to the log (each one atomic batch of events)",
                Family::default(),
            ),
            events_appended: add(
                &mut r,
                "events_appended",
                "Events appended to the log",
                Family::default(),
            ),
            commit_seconds: add(
                &mut r,
                "commit_seconds",
                "Time of one commit of the writer (a group of appends in one transaction)",
                Family::new_with_constructor(seconds),
            ),
            events_per_commit: add(
                &mut r,
                "events_per_commit",
                "Events written by one commit of the writer",
                Family::new_with_constructor(counts),
            ),
            head: add(
                &mut r,
                "log_head",
                "The log's last position",
                Gauge::default(),
            ),
            projection_position: add(
                &mut r,
                "projection_position",
                "The last log position each read model has folded",
                Family::default(),
            ),
            projection_lag: add(
                &mut r,
                "projection_lag_events",
                "Events each read model is behind the log's head (head - position)",
                Family::default(),
            ),
            graphql_requests: add(
                &mut r,
                "graphql_requests",
                "GraphQL operations answered, by operation name and outcome (ok or the error code)",
                Family::default(),
            ),
            graphql_seconds: add(
                &mut r,
                "graphql_request_seconds",
                "Time to answer a GraphQL operation, by operation name",
                Family::new_with_constructor(seconds),
            ),
            graphql_panics: add(
                &mut r,
                "graphql_panics",
                "Resolvers that panicked (each answered INTERNAL with a logged error id)",
                Counter::default(),
            ),
            http_refused_too_large: add(
                &mut r,
                "http_refused_too_large",
                "Requests refused because their body was over the limit (413)",
                Counter::default(),
            ),
            subscriptions_open: add(
                &mut r,
                "subscriptions_open",
                "GraphQL subscriptions open now",
                Gauge::default(),
            ),
            task_state: add(
                &mut r,
                "task_state",
                "Each background task's state: 1 for the state it is in, 0 for the others",
                Family::default(),
            ),
            task_lag: add(
                &mut r,
                "task_lag_events",
                "How far behind the log a background task is, where it has a lag (the runner)",
                Family::default(),
            ),
            task_failures: add(
                &mut r,
                "task_failures",
                "Failures of a background task that it retried (a dropped connection, a failed pass)",
                Family::default(),
            ),
            scheduler_passes: add(
                &mut r,
                "scheduler_passes",
                "Passes of each scheduler job, by outcome",
                Family::default(),
            ),
            scheduler_recorded: add(
                &mut r,
                "scheduler_recorded",
                "What the scheduler's jobs recorded (escalated steps, lease notices, SLA warnings, ...)",
                Family::default(),
            ),
            engine_steps: add(
                &mut r,
                "engine_steps",
                "What the provisioning engine recorded on runs, by outcome",
                Family::default(),
            ),
            engine_retries: add(
                &mut r,
                "engine_retries",
                "Provisioning steps the engine will try again after an error",
                Counter::default(),
            ),
            mail_queued: add(
                &mut r,
                "mail_queued",
                "Emails queued from notifications",
                Counter::default(),
            ),
            mail_sent: add(
                &mut r,
                "mail_sent",
                "Emails the SMTP server accepted",
                Counter::default(),
            ),
            mail_failures: add(
                &mut r,
                "mail_failures",
                "Delivery attempts that failed (each retried on its schedule or given up)",
                Counter::default(),
            ),
            mail_outbox: add(
                &mut r,
                "mail_outbox",
                "Emails queued or waiting to be retried",
                Gauge::default(),
            ),
            snapshot_seconds: add(
                &mut r,
                "snapshot_seconds",
                "Time to write one snapshot of the read models, files included",
                seconds(),
            ),
            snapshot_held_seconds: add(
                &mut r,
                "snapshot_held_seconds",
                "Time a snapshot held the read models (serialising them); the fold waits meanwhile",
                seconds(),
            ),
            snapshot_failures: add(
                &mut r,
                "snapshot_failures",
                "Snapshots that could not be written",
                Counter::default(),
            ),
            checkpoints_recorded: add(
                &mut r,
                "checkpoints_recorded",
                "Signed checkpoints this process recorded in the log",
                Counter::default(),
            ),
            registry: r,
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

    /// Records the states of the background tasks, as the supervisor has them now: each
    /// task's name, its state (`running`, `retrying`, `stopped` or `standby`) and its lag.
    pub fn tasks<'a>(
        &self,
        states: impl IntoIterator<Item = (&'static str, &'a str, Option<u64>)>,
    ) {
        for (task, now, lag) in states {
            for state in ["running", "retrying", "stopped", "standby"] {
                self.task_state
                    .get_or_create(&TaskStateLabels { task, state })
                    .set(i64::from(state == now));
            }
            if let Some(lag) = lag {
                self.task_lag
                    .get_or_create(&TaskLabel { task })
                    .set(i64::try_from(lag).unwrap_or(i64::MAX));
            }
        }
    }

    /// Records one pass of the scheduler's `job`: what it recorded, or that it failed.
    pub fn scheduler_pass(&self, job: &'static str, recorded: Option<&[(&'static str, usize)]>) {
        let outcome = if recorded.is_some() { "ok" } else { "failed" };
        self.scheduler_passes
            .get_or_create(&JobOutcomeLabels { job, outcome })
            .inc();
        for (what, n) in recorded.unwrap_or_default() {
            self.scheduler_recorded
                .get_or_create(&JobRecordLabels { job, what })
                .inc_by(*n as u64);
        }
    }

    /// Records one snapshot: how long it held the models and took in all.
    pub fn snapshot(&self, held: Duration, took: Duration) {
        self.snapshot_held_seconds.observe(held.as_secs_f64());
        self.snapshot_seconds.observe(took.as_secs_f64());
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
