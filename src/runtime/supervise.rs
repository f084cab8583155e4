//! Supervision of the background tasks (the projection runner, the scheduler, the
//! provisioning engine, the mailer): each runs under a name, a transient error is retried
//! with capped exponential backoff, and each task's state is kept where `/readyz` (and
//! anything else, e.g. metrics) can read it with [`Supervisor::states`].
//!
//! A task that stops for good (a permanent error, or a panic) halts the event store's
//! writes ([`EventStore::halt`]): the models it keeps would no longer be the log's, and
//! nothing should be decided on them. `/healthz` then fails, naming the task and why
//! ([`Supervisor::stopped`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use serde::Serialize;

use crate::store::{EventStore, StoreError};

/// The first wait before a failed task is run again; it doubles with each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a task is doing, as `/readyz` reports it (`{"state": "retrying", ...}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TaskState {
    /// Doing its work.
    Running,
    /// Failed with a transient error, `attempt` times in a row; runs again after a backoff.
    Retrying { attempt: u32, error: String },
    /// Stopped for good; the store takes no writes (see the module docs).
    Stopped { reason: String },
    /// Waiting for its leader role, held by another process sharing the store.
    Standby,
}

impl TaskState {
    /// The state's name, as `/readyz` and the metrics give it.
    pub fn label(&self) -> &'static str {
        match self {
            TaskState::Running => "running",
            TaskState::Retrying { .. } => "retrying",
            TaskState::Stopped { .. } => "stopped",
            TaskState::Standby => "standby",
        }
    }
}

/// One task's state, and its lag where it has one (the runner: head − position).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskStatus {
    pub name: &'static str,
    #[serde(flatten)]
    pub state: TaskState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

/// Why a task's run ended.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Worth running again after a backoff (a dropped database connection).
    #[error("{0}")]
    Transient(String),
    /// Running again would fail the same way (a damaged store, a broken chain, an
    /// undecodable event).
    #[error("{0}")]
    Permanent(String),
}

impl From<StoreError> for TaskError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            TaskError::Transient(e.to_string())
        } else {
            TaskError::Permanent(e.to_string())
        }
    }
}

#[derive(Default)]
struct Tasks {
    by_name: BTreeMap<&'static str, TaskStatus>,
}

/// Runs named background tasks and keeps their states. Clones share them.
#[derive(Clone)]
pub struct Supervisor {
    tasks: Arc<Mutex<Tasks>>,
    store: EventStore,
}

/// What a task is given to report its own state while it runs.
#[derive(Clone)]
pub struct Task {
    name: &'static str,
    tasks: Arc<Mutex<Tasks>>,
}

impl Task {
    /// The task's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The task does its work (again): a failure after this counts from one.
    pub fn running(&self) {
        self.set(|s| s.state = TaskState::Running);
    }

    /// The task waits for its leader role.
    pub fn standby(&self) {
        self.set(|s| s.state = TaskState::Standby);
    }

    /// The task goes on, but its last piece of work failed with `error` (it tries again
    /// on its own, e.g. at its next tick).
    pub fn failed(&self, error: impl Into<String>) {
        let error = error.into();
        crate::metrics::metrics()
            .task_failures
            .get_or_create(&crate::metrics::TaskLabel { task: self.name })
            .inc();
        self.set(|s| {
            let attempt = match &s.state {
                TaskState::Retrying { attempt, .. } => attempt + 1,
                _ => 1,
            };
            s.state = TaskState::Retrying { attempt, error };
        });
    }

    /// How far behind the task is (the runner: events in the log it has not folded).
    pub fn lag(&self, lag: u64) {
        self.set(|s| s.lag = Some(lag));
    }

    fn set(&self, change: impl FnOnce(&mut TaskStatus)) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(status) = tasks.by_name.get_mut(self.name) {
            // A stopped task stays stopped.
            if !matches!(status.state, TaskState::Stopped { .. }) {
                change(status);
            }
        }
    }
}

/// Forgets a task whose supervising future was dropped (aborted) before it ended.
struct Forget {
    task: Option<Task>,
}

impl Drop for Forget {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            let mut tasks = task.tasks.lock().unwrap_or_else(|p| p.into_inner());
            let stopped = matches!(
                tasks.by_name.get(task.name).map(|s| &s.state),
                Some(TaskState::Stopped { .. })
            );
            if !stopped {
                tasks.by_name.remove(task.name);
            }
        }
    }
}

impl Supervisor {
    /// A supervisor whose stopped tasks halt `store`'s writes.
    pub fn new(store: &EventStore) -> Self {
        Supervisor {
            tasks: Arc::default(),
            store: store.clone(),
        }
    }

    /// Runs `run` as the task `name` on the runtime, calling it again after a transient
    /// error (waiting 100 ms, doubling to at most 30 s while the failures go on; a run
    /// that calls [`Task::running`] starts the count again). A permanent error, a panic,
    /// or a run that returns stops the task and halts the store's writes. Aborting the
    /// returned handle ends the task and forgets it.
    pub fn spawn<F, Fut>(&self, name: &'static str, mut run: F) -> tokio::task::JoinHandle<()>
    where
        F: FnMut(Task) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), TaskError>> + Send + 'static,
    {
        let task = Task {
            name,
            tasks: self.tasks.clone(),
        };
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .insert(
                name,
                TaskStatus {
                    name,
                    state: TaskState::Running,
                    lag: None,
                },
            );
        let me = self.clone();
        tokio::spawn(async move {
            let mut forget = Forget {
                task: Some(task.clone()),
            };
            let reason = loop {
                let ended = std::panic::AssertUnwindSafe(run(task.clone()))
                    .catch_unwind()
                    .await;
                let error = match ended {
                    Ok(Ok(())) => break "it ended".to_owned(),
                    Ok(Err(TaskError::Permanent(e))) => break e,
                    Err(panic) => break format!("it panicked: {}", panic_text(&*panic)),
                    Ok(Err(TaskError::Transient(e))) => e,
                };
                task.failed(error.clone());
                let attempt = match me.state(name) {
                    Some(TaskState::Retrying { attempt, .. }) => attempt,
                    _ => 1,
                };
                let backoff = FIRST_BACKOFF
                    .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
                    .min(MAX_BACKOFF);
                tracing::warn!(
                    task = name,
                    attempt,
                    "a background task failed and runs again in {backoff:?}: {error}"
                );
                tokio::time::sleep(backoff).await;
            };
            tracing::error!(task = name, "a background task stopped: {reason}");
            me.stop(name, reason);
            forget.task = None;
        })
    }

    /// Every task's state, by name.
    pub fn states(&self) -> Vec<TaskStatus> {
        let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.by_name.values().cloned().collect()
    }

    /// The state of the task `name`, if there is one.
    pub fn state(&self, name: &str) -> Option<TaskState> {
        let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.by_name.get(name).map(|s| s.state.clone())
    }

    /// The first task that stopped for good, and why: the process is unhealthy.
    pub fn stopped(&self) -> Option<(&'static str, String)> {
        self.states().into_iter().find_map(|s| match s.state {
            TaskState::Stopped { reason } => Some((s.name, reason)),
            _ => None,
        })
    }

    /// Records `name` as stopped for `reason`, and halts the store's writes.
    pub fn stop(&self, name: &'static str, reason: String) {
        self.store
            .halt(format!("the {name} task stopped: {reason}"));
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let status = tasks.by_name.entry(name).or_insert(TaskStatus {
            name,
            state: TaskState::Running,
            lag: None,
        });
        status.state = TaskState::Stopped { reason };
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}
