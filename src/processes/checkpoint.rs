//! Signed checkpoints: statements that the log, at some moment, had a given head.
//!
//! The hash chain shows an edit, but not a cut: deleting the last events leaves a shorter
//! chain that verifies. A checkpoint is a statement signed with the installation's Ed25519
//! key that the store `store_id` held `position` events ending in `head_hash` at `time`
//! (in the spirit of Certificate Transparency's signed tree heads and QLDB digests). An
//! auditor who keeps checkpoints outside the system can later prove that the log still
//! holds that exact prefix: [`check`] fails when it was cut before a checkpoint or
//! rewritten before it.
//!
//! A checkpoint is only ever made of a verified prefix: the chain is checked up to the
//! position it names before it is signed.
//!
//! # The signed bytes
//!
//! The signature is Ed25519 over these bytes, integers big-endian and each text preceded
//! by its length as a big-endian u64 (as in [`opsledger_domain::chain_hash`]):
//!
//! ```text
//! text "opsledger-checkpoint" format_version:u32 store_id[16] position:u64 head_hash[32] text time
//! ```
//!
//! `time` is the statement's `time` field byte for byte (RFC 3339, UTC). The public key is
//! not among the signed bytes; it is the key the signature is checked with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use opsledger_domain::{Actor, ChainBreak, ChainVerifier, Hash, Metadata, NewEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::app::App;
use crate::runtime::supervise::{Task, TaskError};
use crate::store::{Append, EventStore, ExpectedVersion, StoreError};

/// The statement format this binary writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The domain-separation text that starts the signed bytes.
const SIGNED_TAG: &str = "opsledger-checkpoint";

/// The type of the event the server records a checkpoint as.
pub const EVENT_TYPE: &str = "CheckpointRecorded";

/// The stream kind of recorded checkpoints: `checkpoint-<store id>`.
pub const STREAM_KIND: &str = "checkpoint";

/// The role, among processes sharing a store, of the one that records checkpoints.
pub const ROLE: &str = "checkpoint";

/// The supervised task's name, in `/readyz` and `/metrics`.
pub const TASK: &str = "checkpoints";

/// The environment variable naming the key file (PKCS#8 PEM).
pub const KEY_FILE_VAR: &str = "OPSLEDGER_CHECKPOINT_KEY_FILE";

/// The file under the data directory holding a generated key.
const KEY_FILE: &str = "checkpoint-key.pem";

/// A signed statement of the log's head, as `opsledger checkpoint` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The store the statement speaks of ([`EventStore::store_id`]).
    pub store_id: Uuid,
    /// How many events the log held: the position of its last event (0: empty).
    pub position: u64,
    /// The hash of the event at `position` ([`Hash::GENESIS`] for an empty log).
    pub head_hash: Hash,
    /// When it was signed, RFC 3339 in UTC.
    pub time: String,
    /// The Ed25519 public key that signed it, 64 hex digits.
    pub public_key: String,
    /// The Ed25519 signature over the signed bytes (module docs), 128 hex digits.
    pub signature: String,
}

impl Statement {
    /// Signs a statement that `store_id` held `position` events ending in `head_hash`.
    pub fn sign(
        key: &CheckpointKey,
        store_id: Uuid,
        position: u64,
        head_hash: Hash,
        time: DateTime<Utc>,
    ) -> Statement {
        let mut statement = Statement {
            format_version: FORMAT_VERSION,
            store_id,
            position,
            head_hash,
            time: time.to_rfc3339_opts(SecondsFormat::Millis, true),
            public_key: hex::encode(key.0.verifying_key().as_bytes()),
            signature: String::new(),
        };
        let signature = key.0.sign(&statement.signed_bytes());
        statement.signature = hex::encode(signature.to_bytes());
        statement
    }

    /// The bytes the signature covers (see the module docs).
    pub fn signed_bytes(&self) -> Vec<u8> {
        fn text(out: &mut Vec<u8>, value: &str) {
            out.extend_from_slice(&(value.len() as u64).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(128);
        text(&mut out, SIGNED_TAG);
        out.extend_from_slice(&self.format_version.to_be_bytes());
        out.extend_from_slice(self.store_id.as_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
        out.extend_from_slice(&self.head_hash.0);
        text(&mut out, &self.time);
        out
    }

    /// Checks the signature against the key the statement names, and that this key is
    /// `trusted` when one is given.
    ///
    /// # Errors
    /// What is wrong: an unknown format, a malformed key or signature, a key that is not
    /// the trusted one, or a signature that does not verify.
    pub fn check_signature(&self, trusted: Option<&VerifyingKey>) -> Result<(), String> {
        if self.format_version != FORMAT_VERSION {
            return Err(format!(
                "format version {} is not one this OpsLedger reads ({FORMAT_VERSION})",
                self.format_version
            ));
        }
        let key = parse_hex_key(&self.public_key)
            .map_err(|e| format!("its public key is not an Ed25519 key: {e}"))?;
        if let Some(trusted) = trusted {
            if trusted != &key {
                return Err(format!(
                    "it is signed by key {}, not by the trusted public key {}",
                    self.public_key,
                    hex::encode(trusted.as_bytes())
                ));
            }
        }
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut bytes)
            .map_err(|e| format!("its signature is not 64 bytes of hex: {e}"))?;
        key.verify_strict(&self.signed_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| {
                "its signature does not verify (the statement was altered, or not signed by \
                 its key)"
                    .to_owned()
            })
    }
}

/// The installation's checkpoint signing key.
pub struct CheckpointKey(SigningKey);

impl CheckpointKey {
    /// Generates a new key.
    pub fn generate() -> Self {
        CheckpointKey(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// Reads a PKCS#8 PEM private key.
    ///
    /// # Errors
    /// When the text is not an Ed25519 private key in PKCS#8 PEM.
    pub fn from_pkcs8_pem(pem: &str) -> anyhow::Result<Self> {
        SigningKey::from_pkcs8_pem(pem)
            .map(CheckpointKey)
            .map_err(|e| anyhow::anyhow!("not an Ed25519 private key in PKCS#8 PEM: {e}"))
    }

    /// The key as PKCS#8 PEM.
    ///
    /// # Errors
    /// When encoding fails.
    pub fn to_pkcs8_pem(&self) -> anyhow::Result<String> {
        Ok(self
            .0
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| anyhow::anyhow!("cannot encode the checkpoint key: {e}"))?
            .to_string())
    }

    /// The configured key: the PEM file `file` (from `--checkpoint-key` or
    /// `OPSLEDGER_CHECKPOINT_KEY_FILE`), or on the embedded store a key generated once and
    /// kept in the data directory (mode 0600).
    ///
    /// # Errors
    /// On PostgreSQL without a file (replicas must share one key), or when the file cannot
    /// be read, written or parsed.
    pub fn configured(file: Option<&Path>, data_dir: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(file) = file {
            let pem = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the checkpoint key {}", file.display()))?;
            return Self::from_pkcs8_pem(&pem)
                .with_context(|| format!("the checkpoint key {}", file.display()));
        }
        let Some(dir) = data_dir else {
            anyhow::bail!(
                "give a checkpoint key with --checkpoint-key or {KEY_FILE_VAR}: processes \
                 sharing a PostgreSQL database must share one key"
            );
        };
        let path = dir.join(KEY_FILE);
        if !path.exists() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let pem = Self::generate().to_pkcs8_pem()?;
            write_private(&path, &pem)?;
        }
        let pem = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_pkcs8_pem(&pem).with_context(|| format!("the checkpoint key {}", path.display()))
    }

    /// The public key as SPKI PEM, which `verify --public-key` reads.
    ///
    /// # Errors
    /// When encoding fails.
    pub fn public_key_pem(&self) -> anyhow::Result<String> {
        self.0
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| anyhow::anyhow!("cannot encode the public key: {e}"))
    }

    /// The public key as 64 hex digits, as statements carry it.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.0.verifying_key().as_bytes())
    }
}

/// Writes a new file readable by its owner only; a file that appeared meanwhile (another
/// process generating the key at the same time) is left as it is.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match file {
        Ok(mut file) => file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

fn parse_hex_key(text: &str) -> Result<VerifyingKey, String> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .map_err(|e| format!("not 32 bytes of hex: {e}"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| e.to_string())
}

/// Reads a trusted public key: SPKI PEM (as `opsledger checkpoint --public-key` prints it)
/// or 64 hex digits.
///
/// # Errors
/// When the file cannot be read or holds neither.
pub fn read_public_key(path: &Path) -> anyhow::Result<VerifyingKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the public key {}", path.display()))?;
    if text.contains("-----BEGIN") {
        VerifyingKey::from_public_key_pem(&text).map_err(|e| {
            anyhow::anyhow!("{}: not an Ed25519 public key in PEM: {e}", path.display())
        })
    } else {
        parse_hex_key(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

/// Reads the statements in `path`: one statement, a JSON array of them, or one per line;
/// a line of an `opsledger export` holding a recorded checkpoint counts as its statement.
///
/// # Errors
/// When the file cannot be read, or something in it is not a statement.
pub fn read_statements(path: &Path) -> anyhow::Result<Vec<Statement>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the checkpoint file {}", path.display()))?;
    let values: Vec<serde_json::Value> = match serde_json::from_str(&text) {
        Ok(serde_json::Value::Array(items)) => items,
        Ok(value) => vec![value],
        Err(_) => serde_json::Deserializer::from_str(&text)
            .into_iter::<serde_json::Value>()
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} is not JSON", path.display()))?,
    };
    let statements = values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let value = match value.get("type") {
                Some(t) if t == EVENT_TYPE => value["data"].clone(),
                _ => value,
            };
            serde_json::from_value(value).with_context(|| {
                format!(
                    "item {} of {} is not a checkpoint statement",
                    i + 1,
                    path.display()
                )
            })
        })
        .collect::<anyhow::Result<Vec<Statement>>>()?;
    anyhow::ensure!(
        !statements.is_empty(),
        "{} holds no checkpoint statement",
        path.display()
    );
    Ok(statements)
}

/// Checks the chain from where `verifier` stands up to `to` (or the head, if lower):
/// `Ok(Err(break))` when it is broken.
async fn extend(
    store: &EventStore,
    verifier: &mut ChainVerifier,
    to: u64,
) -> Result<Result<(), ChainBreak>, StoreError> {
    struct Link {
        position: u64,
        stream: String,
        version: u64,
        stored: Hash,
        recomputed: Hash,
    }
    let mut pages = store.pages(verifier.count() + 1, to, |e, recomputed, _| {
        Ok(Link {
            position: e.position,
            stream: e.stream,
            version: e.version,
            stored: e.hash,
            recomputed,
        })
    });
    while let Some(page) = pages.recv().await {
        for l in page? {
            let checked =
                verifier.check_link(l.position, &l.stream, l.version, l.stored, l.recomputed);
            if let Err(broken) = checked {
                return Ok(Err(broken));
            }
        }
    }
    Ok(Ok(()))
}

/// Verifies the chain up to the head as it is now and signs a statement of it.
///
/// # Errors
/// A database error; `Ok(Err(break))` when the chain is broken (nothing is signed then).
pub async fn take(
    store: &EventStore,
    key: &CheckpointKey,
    time: DateTime<Utc>,
) -> Result<Result<Statement, ChainBreak>, StoreError> {
    let mut verifier = ChainVerifier::default();
    let head = store.head().await?;
    if let Err(broken) = extend(store, &mut verifier, head).await? {
        return Ok(Err(broken));
    }
    if verifier.count() < head {
        return Ok(Err(ChainBreak {
            position: verifier.count() + 1,
            problem: "missing (the log ends before its head)".into(),
        }));
    }
    Ok(Ok(Statement::sign(
        key,
        store.store_id(),
        verifier.count(),
        verifier.head_hash(),
        time,
    )))
}

/// What [`check`] found for one statement.
#[derive(Debug)]
pub struct Finding {
    /// The file the statement came from.
    pub file: PathBuf,
    pub position: u64,
    /// `None`: the log still holds the prefix it states; otherwise why it fails.
    pub problem: Option<String>,
}

/// Checks each statement against the log: its signature (and that it is signed by
/// `trusted`, when given), its store id, and that the log still holds the prefix it
/// states: the chain verifies up to its position, and the event there has its hash.
///
/// # Errors
/// A database error.
pub async fn check(
    store: &EventStore,
    statements: &[(PathBuf, Statement)],
    trusted: Option<&VerifyingKey>,
) -> Result<Vec<Finding>, StoreError> {
    let report = store.verify().await?;
    let head = store.head().await?;
    let mut findings = Vec::with_capacity(statements.len());
    for (file, s) in statements {
        let problem = match s.check_signature(trusted) {
            Err(problem) => Some(problem),
            Ok(()) if s.store_id != store.store_id() => Some(format!(
                "it is a statement of store {}, and this is store {}",
                s.store_id,
                store.store_id()
            )),
            Ok(()) => prefix_problem(store, s, &report, head).await?,
        };
        findings.push(Finding {
            file: file.clone(),
            position: s.position,
            problem,
        });
    }
    Ok(findings)
}

async fn prefix_problem(
    store: &EventStore,
    s: &Statement,
    report: &crate::store::VerifyReport,
    head: u64,
) -> Result<Option<String>, StoreError> {
    if s.position > report.events {
        return Ok(Some(match &report.broken {
            Some(broken) if broken.position <= s.position => format!(
                "the log was rewritten before it: the chain breaks at position {}: {}",
                broken.position, broken.problem
            ),
            _ => format!(
                "the log ends at position {head}, before it: its tail was cut (events {} to {} \
                 are gone)",
                head + 1,
                s.position
            ),
        }));
    }
    let stored = if s.position == 0 {
        Hash::GENESIS
    } else {
        match store.read_all_stored(s.position, 1).await?.first() {
            Some(e) if e.position == s.position => e.hash,
            _ => {
                return Ok(Some(format!(
                    "the event at position {} is gone",
                    s.position
                )))
            }
        }
    };
    Ok((stored != s.head_hash).then(|| {
        format!(
            "the log was rewritten before it: the event at position {} has hash {stored}, the \
             checkpoint says {}",
            s.position, s.head_hash
        )
    }))
}

/// How often the server records a checkpoint; 0 turns a trigger off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::Args)]
pub struct CheckpointArgs {
    /// Record a signed checkpoint once this many events were appended since the last one
    /// (0: never on a count).
    #[arg(
        long,
        env = "OPSLEDGER_CHECKPOINT_EVERY_EVENTS",
        default_value_t = 10_000
    )]
    pub checkpoint_every_events: u64,
    /// Record a signed checkpoint this many minutes after the last one, when events were
    /// appended since (0: never on a timer).
    #[arg(long, env = "OPSLEDGER_CHECKPOINT_EVERY_MINUTES", default_value_t = 60)]
    pub checkpoint_every_minutes: u64,
}

/// The key option shared by `serve` and `checkpoint`.
#[derive(Clone, Debug, clap::Args)]
pub struct KeyArgs {
    /// The checkpoint signing key, Ed25519 in PKCS#8 PEM (default on the embedded store:
    /// `<data-dir>/checkpoint-key.pem`, generated on first use).
    #[arg(long = "checkpoint-key", env = KEY_FILE_VAR)]
    pub checkpoint_key: Option<PathBuf>,
}

/// The stream the server records checkpoints of `store_id` in.
pub fn stream(store_id: Uuid) -> String {
    format!("{STREAM_KIND}-{store_id}")
}

/// Starts recording checkpoints as events on `app`'s store, while this process leads
/// [`ROLE`] among the processes sharing it; `None` when both triggers are off.
pub fn start(
    app: App,
    key: CheckpointKey,
    every: CheckpointArgs,
) -> Option<tokio::task::JoinHandle<()>> {
    if every.checkpoint_every_events == 0 && every.checkpoint_every_minutes == 0 {
        tracing::info!("recorded checkpoints are off");
        return None;
    }
    tracing::info!(
        every_events = every.checkpoint_every_events,
        every_minutes = every.checkpoint_every_minutes,
        public_key = key.public_key_hex(),
        "recording signed checkpoints"
    );
    let key = Arc::new(key);
    let supervisor = app.supervisor.clone();
    Some(supervisor.spawn(TASK, move |task| {
        lead_and_record(app.clone(), key.clone(), every, task)
    }))
}

/// The supervised task `checkpoints`: on `standby` while another process records them, and
/// stopped for good when the chain is broken (the runner stops on it too).
async fn lead_and_record(
    app: App,
    key: Arc<CheckpointKey>,
    every: CheckpointArgs,
    task: Task,
) -> Result<(), TaskError> {
    loop {
        task.standby();
        let mut lead = app.store.lead(ROLE).await?;
        task.running();
        tokio::select! {
            broken = record(&app, &key, every, &task) => {
                return Err(TaskError::Permanent(format!(
                    "the log is broken at position {}: {}; run `opsledger verify`",
                    broken.position, broken.problem
                )));
            }
            () = lead.lost() => tracing::error!(
                "the checkpoint recorder lost its role (the connection holding it dropped); it waits to lead again"
            ),
        }
    }
}

/// The last checkpoint recorded: where its event landed, its stream version and when.
struct Last {
    position: u64,
    version: Option<u64>,
    at: DateTime<Utc>,
}

async fn last_recorded(app: &App, stream: &str) -> Result<Last, StoreError> {
    let events = app.store.read_stream(stream, 0).await?;
    Ok(match events.last() {
        Some(e) => Last {
            position: e.position,
            version: Some(e.version),
            at: e.metadata.recorded_at,
        },
        None => Last {
            position: 0,
            version: None,
            at: app.clock.now(),
        },
    })
}

/// Records a checkpoint whenever one is due; returns only when the chain is broken, with
/// where.
async fn record(app: &App, key: &CheckpointKey, every: CheckpointArgs, task: &Task) -> ChainBreak {
    const RETRY: Duration = Duration::from_secs(5);
    let store_id = app.store.store_id();
    let stream = stream(store_id);
    let mut verifier = ChainVerifier::default();
    let mut last = loop {
        match last_recorded(app, &stream).await {
            Ok(last) => break last,
            Err(e) => {
                tracing::warn!("cannot read the recorded checkpoints: {e}");
                task.failed(e.to_string());
                tokio::time::sleep(RETRY).await;
            }
        }
    };
    let minutes = chrono::Duration::minutes(
        i64::try_from(every.checkpoint_every_minutes).unwrap_or(i64::MAX / 60_000),
    );
    loop {
        let head = match app.store.head().await {
            Ok(head) => head,
            Err(e) => {
                tracing::warn!("the checkpoint recorder cannot read the log's head: {e}");
                task.failed(e.to_string());
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let now = app.clock.now();
        let by_count = every.checkpoint_every_events > 0
            && head >= last.position + every.checkpoint_every_events;
        let by_time =
            every.checkpoint_every_minutes > 0 && head > last.position && now - last.at >= minutes;
        if by_count || by_time {
            match record_one(app, key, &mut verifier, &stream, &last, head, now).await {
                Ok(Ok(recorded)) => {
                    crate::metrics::metrics().checkpoints_recorded.inc();
                    task.running();
                    last = recorded;
                }
                Ok(Err(broken)) => return broken,
                Err(e) => {
                    tracing::warn!("recording a checkpoint failed: {e}");
                    task.failed(e.to_string());
                    tokio::time::sleep(RETRY).await;
                    if let Ok(reloaded) = last_recorded(app, &stream).await {
                        last = reloaded;
                    }
                    continue;
                }
            }
        }
        // Wake for the next event appended, and at least every second for the timer.
        let _ = app
            .runner
            .wait_for(head.max(last.position) + 1, Duration::from_secs(1))
            .await;
    }
}

async fn record_one(
    app: &App,
    key: &CheckpointKey,
    verifier: &mut ChainVerifier,
    stream: &str,
    last: &Last,
    head: u64,
    now: DateTime<Utc>,
) -> Result<Result<Last, ChainBreak>, StoreError> {
    if let Err(broken) = extend(&app.store, verifier, head).await? {
        return Ok(Err(broken));
    }
    let statement = Statement::sign(
        key,
        app.store.store_id(),
        verifier.count(),
        verifier.head_hash(),
        now,
    );
    let command_id = Uuid::new_v5(
        &app.store.store_id(),
        format!("checkpoint:{}", statement.position).as_bytes(),
    );
    let event = NewEvent::new(EVENT_TYPE, 1, &statement)
        .map_err(|e| StoreError::InvalidAppend(format!("a checkpoint cannot be encoded: {e}")))?;
    let appended = app
        .store
        .append(Append {
            stream: stream.to_owned(),
            expected: last
                .version
                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
            events: vec![event],
            metadata: Metadata::new(Actor::system(ROLE), command_id, now),
            after: None,
        })
        .await?;
    tracing::info!(
        position = statement.position,
        head_hash = %statement.head_hash,
        recorded_at = appended.last_position,
        "checkpoint recorded"
    );
    Ok(Ok(Last {
        position: appended.last_position,
        version: Some(appended.last_version),
        at: now,
    }))
}
