//! The projection runner: folds the log into the read models, catch-up first, then live,
//! and lets a reader wait until the models reflect a position (read your writes).
//!
//! With a snapshot directory it starts from the last snapshot and replays only the tail.
//! A snapshot holds the models, the position they reflect and the hash of the event at that
//! position; one whose hash is not the log's (another or a re-imported store), of another
//! format, or unreadable is ignored and the log is replayed from position 1.
//!
//! Everything it reads is checked against the hash chain, from the snapshot's position
//! (whose hash the snapshot records) or from position 1: a link that does not hold, or an
//! event no read model can decode, stops the runner with the position and why, and the
//! models stay where they were; it is never skipped. The runner is the supervised task
//! `runner` ([`crate::runtime::supervise`]): a dropped database connection is retried from the
//! position reached, and its lag is head − position.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opsledger_domain::kernel::aggregate::Aggregate;
use opsledger_domain::resources::quota::Quota;
use opsledger_domain::Hash;
use opsledger_projections::{stream_kind, ReadModels};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, RwLock};

use crate::runtime::supervise::{Supervisor, Task, TaskError};
use crate::store::EventStore;

/// The supervised task's name.
pub const TASK: &str = "runner";

/// A live round looks again this often, should a wake-up be lost.
const RECHECK: Duration = Duration::from_secs(1);

/// How long to wait for a position not yet visible (a transaction still committing), and
/// how many times, before it counts as missing from the log.
const GAP_WAIT: Duration = Duration::from_millis(5);
const GAP_TRIES: u32 = 400;

/// How the first catch-up went: what `serve` waits for before it listens.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Startup {
    Pending,
    CaughtUp(u64),
    Failed(String),
}

/// The snapshot layout; bump it when a read model's shape changes.
const SNAPSHOT_FORMAT: u32 = 8;
/// The file naming the current snapshot; written last, by rename, so it only ever names a
/// snapshot written whole.
const MANIFEST: &str = "current.json";

/// What the current snapshot is: where its files are, and the log position (and that
/// event's hash) the models reflect.
#[derive(Serialize, Deserialize)]
struct Manifest {
    format: u32,
    position: u64,
    hash: Hash,
    /// The directory (under the snapshot directory) holding one JSON file per model.
    dir: String,
}

/// Where a snapshot is, for a test that pauses it there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotStage {
    /// The models are held, at the position the snapshot records.
    Holding,
    /// The models' files are being written.
    Writing,
}

/// Called at each stage of a snapshot, on the thread writing it.
pub type SnapshotHook = Arc<dyn Fn(SnapshotStage) + Send + Sync>;

/// A snapshot of the models, serialised: what the files will hold, taken while the models
/// were held, so it stays one state at one position while the models move on.
struct Encoded {
    position: u64,
    hash: Hash,
    /// Each model's file name and JSON.
    parts: Vec<(&'static str, Vec<u8>)>,
}

/// Serialises every model, as the snapshot's files hold them.
fn encode_snapshot(models: &ReadModels) -> serde_json::Result<Encoded> {
    fn part<T: Serialize>(
        name: &'static str,
        model: &T,
    ) -> serde_json::Result<(&'static str, Vec<u8>)> {
        Ok((name, serde_json::to_vec(model)?))
    }
    Ok(Encoded {
        position: models.position,
        hash: models.head_hash,
        parts: vec![
            part("catalog.json", &models.catalog)?,
            part("requests.json", &models.requests)?,
            part("audit.json", &models.audit)?,
            part("compliance.json", &models.compliance)?,
            part("delegations.json", &models.delegations)?,
            part("notifications.json", &models.notifications)?,
            part("inventory.json", &models.inventory)?,
            part("incidents.json", &models.incidents)?,
            part("desk.json", &models.desk)?,
            part("knowledge.json", &models.knowledge)?,
            part("changes.json", &models.changes)?,
            part("inspections.json", &models.inspections)?,
            part("emergency.json", &models.emergency)?,
            part("automation.json", &models.automation)?,
            part("library.json", &models.library)?,
            part("contacts.json", &models.contacts)?,
            part("mail.json", &models.mail)?,
            part("baselines.json", &models.baselines)?,
            part("vm.json", &models.vm)?,
        ],
    })
}

/// Writes `snapshot` as a new snapshot in `dir`: one file per model in a directory of its
/// own, then the manifest naming it, then older snapshots are removed.
fn write_snapshot(dir: &Path, snapshot: &Encoded) -> std::io::Result<()> {
    fn file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let file = std::fs::File::create(path)?;
        std::io::Write::write_all(&mut &file, bytes)?;
        file.sync_all()
    }
    let name = format!("at-{}", snapshot.position);
    let sub = dir.join(&name);
    std::fs::create_dir_all(&sub)?;
    for (part, bytes) in &snapshot.parts {
        file(&sub.join(part), bytes)?;
    }
    std::fs::File::open(&sub)?.sync_all()?;
    let manifest = Manifest {
        format: SNAPSHOT_FORMAT,
        position: snapshot.position,
        hash: snapshot.hash,
        dir: name.clone(),
    };
    let part = dir.join(format!("{MANIFEST}.part"));
    file(&part, &serde_json::to_vec(&manifest)?)?;
    std::fs::rename(&part, dir.join(MANIFEST))?;
    std::fs::File::open(dir)?.sync_all()?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let old = entry.file_name();
        if old.to_string_lossy().starts_with("at-") && *old != *name {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// Why a snapshot could not be read. A restart ignores it and reads the whole log.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file of it cannot be read.
    #[error("{}: {error}", path.display())]
    Read {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    /// A file of it does not parse as what this build writes.
    #[error("{}: {error}", path.display())]
    Parse {
        path: std::path::PathBuf,
        error: serde_json::Error,
    },
    /// It was written by a build with another snapshot format.
    #[error("it has format {0}, this build reads {SNAPSHOT_FORMAT}")]
    Format(u32),
    /// A thread parsing one of its files panicked.
    #[error("a snapshot reader panicked")]
    Panicked,
}

/// Why the first catch-up did not finish.
#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    /// The runner stopped (a damaged store, a broken chain, an undecodable event): why.
    #[error("{0}")]
    Stopped(String),
    /// The runner's task is gone.
    #[error("the projection runner is gone")]
    Gone,
}

/// The models the current snapshot in `dir` holds (none if there is none), as a restart
/// loads them before checking them against the log.
///
/// # Errors
/// The snapshot is of another format, or a file of it cannot be read or parsed.
pub fn load_snapshot(dir: &Path) -> Result<Option<ReadModels>, SnapshotError> {
    let snapshot = read_snapshot(dir)?;
    Ok(snapshot.map(|(_, mut models)| {
        models.restored();
        models
    }))
}

/// Reads the current snapshot in `dir` (none if there is none), parsing the models' files
/// on several threads at once.
fn read_snapshot(dir: &Path) -> Result<Option<(Manifest, ReadModels)>, SnapshotError> {
    fn part<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<T, SnapshotError> {
        let path = dir.join(name);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(error) => return Err(SnapshotError::Read { path, error }),
        };
        // Streamed: reading a file whole first would hold it and the model at once.
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        serde_json::from_reader(reader).map_err(|error| SnapshotError::Parse { path, error })
    }
    fn joined<T>(
        handle: std::thread::ScopedJoinHandle<'_, Result<T, SnapshotError>>,
    ) -> Result<T, SnapshotError> {
        handle.join().map_err(|_| SnapshotError::Panicked)?
    }
    let path = dir.join(MANIFEST);
    let manifest: Manifest = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(SnapshotError::Read { path, error }),
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(manifest) => manifest,
            Err(error) => return Err(SnapshotError::Parse { path, error }),
        },
    };
    if manifest.format != SNAPSHOT_FORMAT {
        return Err(SnapshotError::Format(manifest.format));
    }
    let sub = dir.join(&manifest.dir);
    let sub = sub.as_path();
    let models = std::thread::scope(|s| -> Result<ReadModels, SnapshotError> {
        let requests = s.spawn(|| part(sub, "requests.json"));
        let notifications = s.spawn(|| part(sub, "notifications.json"));
        let compliance = s.spawn(|| part(sub, "compliance.json"));
        let inventory = s.spawn(|| part(sub, "inventory.json"));
        let incidents = s.spawn(|| part(sub, "incidents.json"));
        let knowledge = s.spawn(|| part(sub, "knowledge.json"));
        let audit = part(sub, "audit.json")?;
        Ok(ReadModels {
            catalog: part(sub, "catalog.json")?,
            delegations: part(sub, "delegations.json")?,
            audit,
            requests: joined(requests)?,
            notifications: joined(notifications)?,
            compliance: joined(compliance)?,
            inventory: joined(inventory)?,
            incidents: joined(incidents)?,
            desk: part(sub, "desk.json")?,
            knowledge: joined(knowledge)?,
            changes: part(sub, "changes.json")?,
            inspections: part(sub, "inspections.json")?,
            emergency: part(sub, "emergency.json")?,
            automation: part(sub, "automation.json")?,
            library: part(sub, "library.json")?,
            contacts: part(sub, "contacts.json")?,
            mail: part(sub, "mail.json")?,
            baselines: part(sub, "baselines.json")?,
            vm: part(sub, "vm.json")?,
            position: manifest.position,
            head_hash: manifest.hash,
        })
    })?;
    Ok(Some((manifest, models)))
}

/// The read models and the position they reflect.
#[derive(Clone)]
pub struct Runner {
    models: Arc<RwLock<ReadModels>>,
    position: watch::Receiver<u64>,
    tx: Arc<watch::Sender<u64>>,
    startup: Arc<watch::Sender<Startup>>,
    /// Whether the snapshot was looked at (a retried run does not look again).
    restored: Arc<std::sync::atomic::AtomicBool>,
    snapshots: Option<Arc<PathBuf>>,
    /// The position of the snapshot it started from (0: replayed from the start).
    started_from: Arc<AtomicU64>,
    /// The position of the last snapshot written or loaded.
    saved: Arc<AtomicU64>,
    /// Each department's quota figures (limits and use, without the per-resource list),
    /// published beside the models so a submission's quota check takes no models lock.
    quotas: Arc<std::sync::RwLock<HashMap<String, Quota>>>,
    /// Held by the live fold while it writes the models, and by a snapshot while it holds
    /// them: the fold then waits for it rather than queue a writer, behind which
    /// tokio's fair lock would queue every later reader.
    gate: Arc<tokio::sync::Mutex<()>>,
    /// Called at each stage of a snapshot (tests pause it there).
    hook: Arc<std::sync::Mutex<Option<SnapshotHook>>>,
}

impl Runner {
    /// Starts folding `store` into the read models on a background task, from the
    /// snapshot in `snapshots` when there is a valid one; supervised on its own.
    pub fn start(store: &EventStore, snapshots: Option<PathBuf>) -> Self {
        Self::start_under(store, snapshots, &Supervisor::new(store))
    }

    /// Starts folding `store` into the read models as the task `runner` of `supervisor`,
    /// from the snapshot in `snapshots` when there is a valid one.
    pub fn start_under(
        store: &EventStore,
        snapshots: Option<PathBuf>,
        supervisor: &Supervisor,
    ) -> Self {
        let models = Arc::new(RwLock::new(ReadModels::default()));
        let (tx, position) = watch::channel(0);
        let runner = Runner {
            models,
            position,
            tx: Arc::new(tx),
            startup: Arc::new(watch::channel(Startup::Pending).0),
            restored: Arc::default(),
            snapshots: snapshots.map(Arc::new),
            started_from: Arc::default(),
            saved: Arc::default(),
            quotas: Arc::default(),
            gate: Arc::default(),
            hook: Arc::default(),
        };
        let (store, me) = (store.clone(), runner.clone());
        supervisor.spawn(TASK, move |task| {
            let (store, me) = (store.clone(), me.clone());
            async move {
                let ran = me.run(&store, &task).await;
                if let Err(TaskError::Permanent(reason)) = &ran {
                    me.startup.send_if_modified(|s| {
                        let pending = *s == Startup::Pending;
                        if pending {
                            *s = Startup::Failed(reason.clone());
                        }
                        pending
                    });
                }
                ran
            }
        });
        runner
    }

    /// Waits until the first catch-up is done: the position it reached.
    ///
    /// # Errors
    /// Why the runner stopped before (a damaged store, a broken chain, an undecodable
    /// event). A transient failure is retried, and this keeps waiting.
    pub async fn caught_up(&self) -> Result<u64, CatchUpError> {
        let mut rx = self.startup.subscribe();
        let done = rx.wait_for(|s| *s != Startup::Pending).await;
        match done.as_deref() {
            Ok(Startup::CaughtUp(at)) => Ok(*at),
            Ok(Startup::Failed(reason)) => Err(CatchUpError::Stopped(reason.clone())),
            _ => Err(CatchUpError::Gone),
        }
    }

    /// One run of the task: the snapshot on the first, then catch-up and the live feed
    /// from the position reached, until an error.
    async fn run(&self, store: &EventStore, task: &Task) -> Result<(), TaskError> {
        if !self.restored.swap(true, Ordering::SeqCst) {
            if let Some(dir) = &self.snapshots {
                let from = self.restore(store, dir).await;
                self.tx.send_replace(from);
            }
        }
        let mut wake = store.watch_head();
        let mut gaps = 0;
        loop {
            wake.borrow_and_update();
            let head = store.head().await?;
            let (reached, gap) = self.catch_up(store, self.position()).await?;
            task.running();
            task.lag(head.saturating_sub(reached));
            self.startup.send_if_modified(|s| {
                let pending = *s == Startup::Pending;
                if pending {
                    *s = Startup::CaughtUp(reached);
                }
                pending
            });
            if gap {
                gaps += 1;
                if gaps > GAP_TRIES {
                    return Err(TaskError::Permanent(format!(
                        "the log is broken at position {}: it is missing while later ones \
                         are there; run `opsledger verify`",
                        reached + 1
                    )));
                }
                tokio::time::sleep(GAP_WAIT).await;
                continue;
            }
            gaps = 0;
            if let Ok(Err(_)) = tokio::time::timeout(RECHECK, wake.changed()).await {
                // The writer is gone; keep looking by position, slowly.
                tokio::time::sleep(RECHECK).await;
            }
        }
    }

    /// Folds the log after `from` up to its head as it is now, decoding beside the fold
    /// and checking each event's hash link; the position reached, and whether it stopped
    /// short at a position not yet visible.
    async fn catch_up(&self, store: &EventStore, from: u64) -> Result<(u64, bool), TaskError> {
        let mut reached = from;
        let mut pages = store.replay_decoded(from + 1, u64::MAX);
        while let Some(page) = pages.recv().await {
            let page = page?;
            if page.is_empty() {
                continue;
            }
            // The gate first: while a snapshot holds the models, no writer queues in front
            // of the readers; the events wait in the log.
            let gate = self.gate.lock().await;
            let mut models = self.models.write().await;
            let (mut stopped, mut quotas) = (None, false);
            for (event, recomputed, decoded) in &page {
                if event.position != reached + 1 {
                    // A position not yet visible (a transaction still committing): look
                    // again from here, in order.
                    stopped = Some(Ok((reached, true)));
                    break;
                }
                if *recomputed != event.hash {
                    stopped = Some(Err(TaskError::Permanent(format!(
                        "the log is broken at position {}: hash mismatch: stored {}, \
                         recomputed {recomputed} (the event or its predecessor was altered); \
                         run `opsledger verify`",
                        event.position, event.hash
                    ))));
                    break;
                }
                models.apply_decoded(event, decoded);
                quotas |= stream_kind(&event.stream) == Quota::KIND;
                reached = event.position;
            }
            if quotas {
                self.publish_quotas(&models);
            }
            drop(models);
            drop(gate);
            self.tx.send_replace(reached);
            if let Some(stopped) = stopped {
                return stopped;
            }
        }
        Ok((reached, false))
    }

    /// Loads the snapshot in `dir` if it belongs to `store`; the position it reflects.
    async fn restore(&self, store: &EventStore, dir: &Path) -> u64 {
        let path = dir.to_owned();
        let read = tokio::task::spawn_blocking(move || read_snapshot(&path)).await;
        let (manifest, mut models) = match read {
            Ok(Ok(Some(snapshot))) => snapshot,
            Ok(Ok(None)) => return 0,
            Ok(Err(e)) => {
                tracing::warn!("ignoring the snapshot in {}: {e}", dir.display());
                return 0;
            }
            Err(e) => {
                tracing::warn!("reading the snapshot failed: {e}");
                return 0;
            }
        };
        let at = manifest.position;
        let ours = match store.read_all(at, 1).await {
            Ok(events) => events.first().map(|e| e.hash) == Some(manifest.hash),
            Err(e) => {
                tracing::warn!("cannot check the snapshot against the log: {e}");
                false
            }
        };
        if !ours || at == 0 {
            tracing::warn!(
                position = at,
                "ignoring a snapshot of another log; replaying from position 1"
            );
            return 0;
        }
        models.restored();
        self.publish_quotas(&models);
        *self.models.write().await = models;
        self.started_from.store(at, Ordering::SeqCst);
        self.saved.store(at, Ordering::SeqCst);
        tracing::info!(position = at, "read models restored from the snapshot");
        at
    }

    /// Writes a snapshot of the models as they are now, unless the last one already
    /// reflects this position. Returns the position written.
    ///
    /// The models are held (read) only while they are serialised into memory, and the fold
    /// queues no writer meanwhile: it waits for the gate, the events waiting in the log
    /// (see `catch_up`). Readers are never kept waiting by a snapshot; the models lag the log
    /// by at most the time the serialising takes, and the files are written after.
    ///
    /// # Errors
    /// The file could not be written; the previous snapshot is left whole.
    pub async fn save_snapshot(&self) -> std::io::Result<Option<u64>> {
        let Some(dir) = self.snapshots.clone() else {
            return Ok(None);
        };
        // Taken before the models: the fold writes only holding the gate, so no writer is
        // queued in front of the readers while the snapshot holds the models.
        let gate = self.gate.clone().lock_owned().await;
        let models = self.models.clone().read_owned().await;
        let position = models.position;
        if position == 0 || position == self.saved.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let hook = self.hook.lock().ok().and_then(|h| h.clone());
        let hook = move |stage| {
            if let Some(hook) = &hook {
                hook(stage);
            }
        };
        let started = std::time::Instant::now();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let encoded = encode_snapshot(&models);
            hook(SnapshotStage::Holding);
            drop(models);
            drop(gate);
            let held = started.elapsed();
            let encoded = encoded?;
            hook(SnapshotStage::Writing);
            write_snapshot(&dir, &encoded)?;
            Ok(held)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|written| written);
        let metrics = crate::metrics::metrics();
        let held = written.inspect_err(|_| {
            metrics.snapshot_failures.inc();
        })?;
        metrics.snapshot(held, started.elapsed());
        self.saved.store(position, Ordering::SeqCst);
        tracing::info!(
            position,
            held_ms = held.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "read models snapshotted"
        );
        Ok(Some(position))
    }

    /// Calls `hook` at each stage of every later snapshot, on the thread writing it; a
    /// test pauses a snapshot there to see what goes on meanwhile.
    pub fn on_snapshot_stage(&self, hook: SnapshotHook) {
        if let Ok(mut slot) = self.hook.lock() {
            *slot = Some(hook);
        }
    }

    /// Snapshots every `every` while the models move (none without a snapshot directory).
    pub fn snapshot_every(&self, every: Duration) {
        if self.snapshots.is_none() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = me.save_snapshot().await {
                    tracing::warn!("snapshotting the read models failed: {e}");
                }
            }
        });
    }

    /// The position of the snapshot the runner started from; 0 when it replayed the log.
    pub fn started_from(&self) -> u64 {
        self.started_from.load(Ordering::SeqCst)
    }

    /// The position the read models reflect now.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// A department's quota figures as the models last folded them (empty: none set).
    pub fn quota(&self, department: &str) -> Quota {
        self.quotas
            .read()
            .ok()
            .and_then(|q| q.get(department).cloned())
            .unwrap_or_default()
    }

    fn publish_quotas(&self, models: &ReadModels) {
        let figures = models
            .inventory
            .quotas()
            .iter()
            .map(|q| (q.department.clone(), q.figures()))
            .collect();
        if let Ok(mut quotas) = self.quotas.write() {
            *quotas = figures;
        }
    }

    /// Waits (at most `timeout`) until the read models reflect `position`.
    ///
    /// # Errors
    /// The position it reached, when the time ran out first.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), u64> {
        let mut rx = self.position.clone();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|p| *p >= position)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(self.position()),
        }
    }

    /// Read access to the models.
    pub async fn read(&self) -> tokio::sync::RwLockReadGuard<'_, ReadModels> {
        self.models.read().await
    }
}
