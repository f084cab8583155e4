//! The projection runner: folds the log into the read models, catch-up first, then live,
//! and lets a reader wait until the models reflect a position (read your writes).
//!
//! With a snapshot directory it starts from the last snapshot and replays only the tail.
//! A snapshot holds the models, the position they reflect and the hash of the event at that
//! position; one whose hash is not the log's (another or a re-imported store), of another
//! format, or unreadable is ignored and the log is replayed from position 1.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opsledger_domain::Hash;
use opsledger_projections::{Projection, ReadModels};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, RwLock};

use crate::store::EventStore;

/// The snapshot layout; bump it when a read model's shape changes.
const SNAPSHOT_FORMAT: u32 = 2;
const SNAPSHOT_FILE: &str = "read-models.json";

#[derive(Serialize, Deserialize)]
struct Snapshot<M> {
    format: u32,
    position: u64,
    hash: Hash,
    models: M,
}

/// The read models and the position they reflect.
#[derive(Clone)]
pub struct Runner {
    models: Arc<RwLock<ReadModels>>,
    position: watch::Receiver<u64>,
    snapshots: Option<Arc<PathBuf>>,
    /// The position of the snapshot it started from (0: replayed from the start).
    started_from: Arc<AtomicU64>,
    /// The position of the last snapshot written or loaded.
    saved: Arc<AtomicU64>,
}

impl Runner {
    /// Starts folding `store` into the read models on a background task, from the
    /// snapshot in `snapshots` when there is a valid one.
    pub fn start(store: &EventStore, snapshots: Option<PathBuf>) -> Self {
        let models = Arc::new(RwLock::new(ReadModels::default()));
        let (tx, position) = watch::channel(0);
        let runner = Runner {
            models: models.clone(),
            position,
            snapshots: snapshots.map(Arc::new),
            started_from: Arc::default(),
            saved: Arc::default(),
        };
        let store = store.clone();
        let me = runner.clone();
        tokio::spawn(async move {
            let from = match &me.snapshots {
                Some(dir) => me.restore(&store, dir).await,
                None => 0,
            };
            tx.send_replace(from);
            let from = match me.catch_up(&store, from, &tx).await {
                Ok(reached) => reached,
                Err(e) => {
                    tracing::error!("the projection runner stopped: {e}");
                    return;
                }
            };
            let mut events = store.subscribe(from + 1);
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => {
                        let at = event.position;
                        models.write().await.apply(&event);
                        tx.send_replace(at);
                    }
                    Err(e) => {
                        tracing::error!("the projection runner stopped: {e}");
                        return;
                    }
                }
            }
        });
        runner
    }

    /// Folds the log after `from` up to its head as it is now, decoding beside the fold;
    /// the position reached.
    async fn catch_up(
        &self,
        store: &EventStore,
        from: u64,
        tx: &watch::Sender<u64>,
    ) -> Result<u64, crate::store::StoreError> {
        let mut reached = from;
        let mut pages = store.replay_decoded(from + 1, u64::MAX);
        while let Some(page) = pages.recv().await {
            let page = page?;
            let Some(last) = page.last().map(|(e, ..)| e.position) else {
                continue;
            };
            let mut models = self.models.write().await;
            for (event, _, decoded) in &page {
                if event.position != reached + 1 {
                    // A position not yet visible (a transaction still committing): the
                    // live feed continues from here, in order.
                    drop(models);
                    return Ok(reached);
                }
                models.apply_decoded(event, decoded);
                reached = event.position;
            }
            drop(models);
            tx.send_replace(last);
        }
        Ok(reached)
    }

    /// Loads the snapshot in `dir` if it belongs to `store`; the position it reflects.
    async fn restore(&self, store: &EventStore, dir: &Path) -> u64 {
        let path = dir.join(SNAPSHOT_FILE);
        let read = tokio::task::spawn_blocking(move || -> Result<Snapshot<ReadModels>, String> {
            // Streamed: the file is as large as the models, and reading it whole first
            // would hold both in memory at once.
            let file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
            let reader = std::io::BufReader::with_capacity(1 << 20, file);
            serde_json::from_reader(reader).map_err(|e| e.to_string())
        })
        .await;
        let snapshot = match read {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                if dir.join(SNAPSHOT_FILE).exists() {
                    tracing::warn!("ignoring the snapshot in {}: {e}", dir.display());
                }
                return 0;
            }
            Err(e) => {
                tracing::warn!("reading the snapshot failed: {e}");
                return 0;
            }
        };
        let at = snapshot.position;
        let ours = match store.read_all(at, 1).await {
            Ok(events) => events.first().map(|e| e.hash) == Some(snapshot.hash),
            Err(e) => {
                tracing::warn!("cannot check the snapshot against the log: {e}");
                false
            }
        };
        if snapshot.format != SNAPSHOT_FORMAT || !ours || at == 0 {
            tracing::warn!(
                position = at,
                "ignoring a snapshot of another log or format; replaying from position 1"
            );
            return 0;
        }
        let mut models = snapshot.models;
        models.restored();
        *self.models.write().await = models;
        self.started_from.store(at, Ordering::SeqCst);
        self.saved.store(at, Ordering::SeqCst);
        tracing::info!(position = at, "read models restored from the snapshot");
        at
    }

    /// Writes a snapshot of the models as they are now, unless the last one already
    /// reflects this position. Returns the position written.
    ///
    /// # Errors
    /// The file could not be written; the previous snapshot is left whole.
    pub async fn save_snapshot(&self) -> std::io::Result<Option<u64>> {
        let Some(dir) = self.snapshots.clone() else {
            return Ok(None);
        };
        let models = self.models.clone().read_owned().await;
        let position = models.position;
        if position == 0 || position == self.saved.load(Ordering::SeqCst) {
            return Ok(None);
        }
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            std::fs::create_dir_all(&*dir)?;
            let part = dir.join(format!("{SNAPSHOT_FILE}.part"));
            let mut file = std::io::BufWriter::new(std::fs::File::create(&part)?);
            let snapshot = Snapshot {
                format: SNAPSHOT_FORMAT,
                position,
                hash: models.head_hash,
                models: &*models,
            };
            serde_json::to_writer(&mut file, &snapshot)?;
            drop(models);
            file.flush()?;
            file.get_ref().sync_all()?;
            std::fs::rename(&part, dir.join(SNAPSHOT_FILE))?;
            std::fs::File::open(&*dir)?.sync_all()
        })
        .await??;
        self.saved.store(position, Ordering::SeqCst);
        tracing::info!(position, "read models snapshotted");
        Ok(Some(position))
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
