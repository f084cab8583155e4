//! `export` and `import`: the whole log, or a range of it, as NDJSON.
//!
//! Each line is one [`StoredEvent`] with the stored `data` and `metadata` bytes untouched,
//! so anyone can recompute the hash chain from the file alone, and export → import →
//! export gives the same bytes.

use std::collections::HashSet;

use opsledger_domain::{ChainVerifier, StoredEvent};
use std::path::Path;

use tokio::fs::File;
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use uuid::Uuid;

use super::batch;
use super::{EventStore, StoreError};

/// Events written per import transaction (more when one command is larger).
const IMPORT_BATCH: usize = 5_000;

/// What an import or export did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transferred {
    pub events: u64,
    /// The last position transferred (0 for none).
    pub last_position: u64,
}

impl EventStore {
    /// Writes events `from..=to` as NDJSON, one event per line.
    ///
    /// # Errors
    /// A database error, or a failed write to `out`.
    pub async fn export(
        &self,
        from: u64,
        to: u64,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<Transferred, ExportError> {
        let mut done = Transferred {
            events: 0,
            last_position: 0,
        };
        let mut pages = self.pages(from, to, |e, _, _| Ok(e));
        let mut line = Vec::with_capacity(1024);
        while let Some(page) = pages.recv().await {
            for event in page? {
                line.clear();
                serde_json::to_writer(&mut line, &event).map_err(|e| ExportError::Io(e.into()))?;
                line.push(b'\n');
                out.write_all(&line).await?;
                done.events += 1;
                done.last_position = event.position;
            }
        }
        out.flush().await?;
        Ok(done)
    }

    /// Loads an NDJSON export into this store, which must be empty. The whole file is
    /// checked first (every line an event, the hash chain and stream versions intact, no
    /// command id reused), so a bad file changes nothing; then it is written in
    /// transactions of whole commands.
    ///
    /// # Errors
    /// [`ExportError::NotEmpty`], a line that is not an event ([`ExportError::Line`]), a
    /// broken chain ([`StoreError::ImportBroken`]), or a database error.
    pub async fn import(&self, path: &Path) -> Result<Transferred, ExportError> {
        let head = self.head().await?;
        if head != 0 {
            return Err(ExportError::NotEmpty(head));
        }
        let mut verifier = ChainVerifier::default();
        let mut reader = Lines::open(path).await?;
        let mut pending: Vec<StoredEvent> = Vec::new();
        let mut seen = HashSet::new();
        while let Some(event) = reader.next().await? {
            verifier.check(&event).map_err(StoreError::ImportBroken)?;
            pending.push(event);
            if pending.len() >= IMPORT_BATCH {
                let start = last_command_start(&pending);
                let tail = pending.split_off(start);
                check_commands(&pending, &mut seen)?;
                pending = tail;
            }
        }
        check_commands(&pending, &mut seen)?;

        let mut done = Transferred {
            events: 0,
            last_position: 0,
        };
        let mut reader = Lines::open(path).await?;
        let mut pending: Vec<StoredEvent> = Vec::new();
        while let Some(event) = reader.next().await? {
            pending.push(event);
            if pending.len() >= IMPORT_BATCH {
                let start = last_command_start(&pending);
                if start > 0 {
                    let tail = pending.split_off(start);
                    self.import_batch(std::mem::replace(&mut pending, tail), &mut done)
                        .await?;
                }
            }
        }
        self.import_batch(pending, &mut done).await?;
        Ok(done)
    }

    async fn import_batch(
        &self,
        events: Vec<StoredEvent>,
        done: &mut Transferred,
    ) -> Result<(), ExportError> {
        if events.is_empty() {
            return Ok(());
        }
        let commands = batch::commands_of(&events)?;
        let count = events.len() as u64;
        let last = events.last().map_or(0, |e| e.position);
        self.backend().import(events, commands).await?;
        done.events += count;
        done.last_position = last;
        Ok(())
    }
}

/// Refuses a command id that an earlier command of the file already used.
fn check_commands(events: &[StoredEvent], seen: &mut HashSet<Uuid>) -> Result<(), StoreError> {
    for c in batch::commands_of(events)? {
        if !seen.insert(c.command_id) {
            return Err(StoreError::InvalidAppend(format!(
                "position {}: command id {} was already used by earlier events",
                c.first_position, c.command_id
            )));
        }
    }
    Ok(())
}

/// The events of an NDJSON file, one per non-blank line.
struct Lines {
    lines: tokio::io::Lines<BufReader<File>>,
    number: u64,
}

impl Lines {
    async fn open(path: &Path) -> Result<Self, ExportError> {
        let file = File::open(path).await.map_err(|e| {
            ExportError::Io(std::io::Error::new(
                e.kind(),
                format!("cannot open {}: {e}", path.display()),
            ))
        })?;
        Ok(Lines {
            lines: BufReader::with_capacity(1 << 20, file).lines(),
            number: 0,
        })
    }

    async fn next(&mut self) -> Result<Option<StoredEvent>, ExportError> {
        while let Some(text) = self.lines.next_line().await? {
            self.number += 1;
            if text.trim().is_empty() {
                continue;
            }
            return serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| ExportError::Line {
                    line: self.number,
                    problem: e.to_string(),
                });
        }
        Ok(None)
    }
}

/// Where the last command of `events` begins: its events must be imported together.
fn last_command_start(events: &[StoredEvent]) -> usize {
    let command_of = |e: &StoredEvent| {
        serde_json::from_str::<serde_json::Value>(&e.metadata)
            .ok()
            .and_then(|m| m.get("command_id").cloned())
    };
    let Some(last) = events.last() else { return 0 };
    let id = command_of(last);
    let mut start = events.len() - 1;
    while start > 0 && command_of(&events[start - 1]) == id {
        start -= 1;
    }
    start
}

/// Why an export or import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("line {line} is not an exported event: {problem}")]
    Line { line: u64, problem: String },
    #[error("the store already holds {0} events; import only into an empty store")]
    NotEmpty(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
