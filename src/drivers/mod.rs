//! Drivers: what a workflow step, a virtual-server operation or a baseline collection
//! calls to act on the real world (the plan's scheduling engine). The engine records
//! every call's start and outcome as events; a driver only does the work and reports.
//!
//! A driver is given one [`DriverCall`] and answers with a JSON object of outputs and a
//! log, or a [`DriverError`]. Calls carry the run and step they belong to, so a driver
//! that is called again after a crash (the engine records a step's start before the call
//! and its outcome after) can recognise the repeat and answer with what it did.
//!
//! To add a driver: implement [`Driver`] in a module here, and name it in
//! [`DriverConfig`] so `opsledger serve --driver <name>` can choose it.

pub mod command;
pub mod simulator;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

pub use command::{CommandConfig, CommandDriver};
pub use simulator::Simulator;

/// The operations drivers are asked for. A workflow step names one of the first six; the
/// rest are virtual-server operations and the baseline collection.
pub mod operation {
    pub const CREATE_VM: &str = "create_vm";
    pub const CREATE_VOLUME: &str = "create_volume";
    pub const DEPLOY_IMAGE: &str = "deploy_image";
    pub const INSTALL_SOFTWARE: &str = "install_software";
    pub const RUN_SCRIPT: &str = "run_script";
    pub const START_VM: &str = "start_vm";
    pub const STOP_VM: &str = "stop_vm";
    pub const RESTART_VM: &str = "restart_vm";
    pub const BACKUP_VM: &str = "backup_vm";
    pub const RESTORE_VM: &str = "restore_vm";
    pub const DELETE_VM: &str = "delete_vm";
    pub const COLLECT_CONFIGURATION: &str = "collect_configuration";
}

/// Doing a step, or undoing one that was done (compensation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Do,
    Undo,
}

/// A script of the library that a `run_script` step runs.
#[derive(Clone, Debug, Serialize)]
pub struct Script {
    pub name: String,
    pub version: u32,
    pub sha256: String,
    /// Where its content is, in the content store.
    #[serde(skip)]
    pub path: PathBuf,
}

/// One call, as a command-line driver reads it on standard input.
#[derive(Clone, Debug, Serialize)]
pub struct DriverCall {
    /// One of [`operation`].
    pub operation: String,
    pub phase: Phase,
    /// The workflow run (or the virtual-server operation) the call belongs to.
    pub run_id: Uuid,
    /// The step's name in its workflow (the operation's name outside a workflow).
    pub step: String,
    /// The step's inputs, with parameters and earlier outputs filled in.
    pub params: Map<String, Value>,
    /// For an undo: what the step answered when it was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<Script>,
}

/// What a driver did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DriverOutput {
    /// Named outputs later steps can use, and feedback shown to the operator.
    pub output: Map<String, Value>,
    /// What the driver wrote while working (the events keep a bounded excerpt).
    pub log: String,
}

/// Why a call failed; each carries the log written until then.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DriverError {
    #[error("{message}")]
    Failed { message: String, log: String },
    #[error("timed out after {seconds} s")]
    TimedOut { seconds: u64, log: String },
    #[error("the driver's answer is not a JSON object: {message}")]
    Malformed { message: String, log: String },
    #[error("the driver crashed: {message}")]
    Crashed { message: String, log: String },
}

impl DriverError {
    pub fn log(&self) -> &str {
        match self {
            DriverError::Failed { log, .. }
            | DriverError::TimedOut { log, .. }
            | DriverError::Malformed { log, .. }
            | DriverError::Crashed { log, .. } => log,
        }
    }
}

/// Something that carries out driver calls.
#[async_trait::async_trait]
pub trait Driver: Send + Sync + 'static {
    /// Its name, as `--driver` spells it and the events record it.
    fn name(&self) -> &str;

    /// Carries out one call.
    async fn call(&self, call: &DriverCall) -> Result<DriverOutput, DriverError>;
}

/// Which driver `serve` uses, and its settings.
#[derive(Clone, Debug)]
pub enum DriverConfig {
    Simulator(simulator::SimulatorConfig),
    /// Runs a program (or a library script) for every call: see [`command`].
    Command(CommandConfig),
}

impl DriverConfig {
    pub fn build(self) -> Arc<dyn Driver> {
        match self {
            DriverConfig::Simulator(c) => Arc::new(Simulator::new(c)),
            DriverConfig::Command(c) => Arc::new(CommandDriver::new(c)),
        }
    }
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig::Simulator(simulator::SimulatorConfig::default())
    }
}

/// The driver names `--driver` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DriverName {
    Simulator,
    /// Runs `--driver-program` for every call.
    Command,
}

/// `serve`'s automation options: where content is kept and which driver runs the steps.
#[derive(Clone, Debug, clap::Args)]
pub struct AutomationArgs {
    /// Directory of the content-addressed store of library media, scripts and driver logs
    /// (default: `<data-dir>/content`, or `./content` on PostgreSQL).
    #[arg(long, env = "OPSLEDGER_CONTENT_DIR")]
    pub content_dir: Option<PathBuf>,
    /// The largest file `PUT /content` accepts, in bytes (default 1 GiB).
    #[arg(long, env = "OPSLEDGER_MAX_UPLOAD_BYTES", default_value_t = crate::store::content::DEFAULT_UPLOAD_LIMIT)]
    pub max_upload_bytes: u64,
    /// What workflow steps and virtual-server operations call.
    #[arg(
        long,
        env = "OPSLEDGER_DRIVER",
        value_enum,
        default_value = "simulator"
    )]
    pub driver: DriverName,
    /// Simulator: milliseconds every call takes.
    #[arg(long, default_value_t = 0)]
    pub simulate_latency_ms: u64,
    /// Simulator: an operation whose every call fails (repeat for several;
    /// `undo:<operation>` fails its compensation).
    #[arg(long = "simulate-failure")]
    pub simulate_failures: Vec<String>,
    /// Command driver: the executable every call runs (the call as JSON on standard
    /// input, the outputs as a JSON object on standard output, the log on standard error).
    #[arg(long, env = "OPSLEDGER_DRIVER_PROGRAM")]
    pub driver_program: Option<PathBuf>,
    /// Command driver: seconds a call may take before it is killed.
    #[arg(long, default_value_t = 300)]
    pub driver_timeout_secs: u64,
    /// Command driver: seconds a library script may take (default: the call timeout).
    #[arg(long)]
    pub driver_script_timeout_secs: Option<u64>,
}

impl AutomationArgs {
    /// The content store and the driver these options name.
    ///
    /// # Errors
    /// When the content directory cannot be created, or the command driver has no
    /// executable program.
    pub fn build(
        &self,
        data_dir: Option<&std::path::Path>,
    ) -> std::io::Result<(crate::store::content::ContentStore, Arc<dyn Driver>)> {
        let dir = self.content_dir.clone().unwrap_or_else(|| {
            data_dir.map_or_else(|| PathBuf::from("content"), |d| d.join("content"))
        });
        let content = crate::store::content::ContentStore::open(dir)?
            .with_upload_limit(self.max_upload_bytes);
        let config = match self.driver {
            DriverName::Simulator => DriverConfig::Simulator(simulator::SimulatorConfig {
                latency: std::time::Duration::from_millis(self.simulate_latency_ms),
                latency_of: Default::default(),
                fail: self.simulate_failures.iter().cloned().collect(),
            }),
            DriverName::Command => {
                let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
                let program = self.driver_program.clone().ok_or_else(|| {
                    invalid("--driver command needs --driver-program <path>".into())
                })?;
                let mut c = CommandConfig::new(program);
                c.timeout = std::time::Duration::from_secs(self.driver_timeout_secs.max(1));
                c.scripts_timeout = self
                    .driver_script_timeout_secs
                    .map(|s| std::time::Duration::from_secs(s.max(1)));
                c.check().map_err(invalid)?;
                DriverConfig::Command(c)
            }
        };
        Ok((content, config.build()))
    }
}

/// How much of a call's log its events keep.
pub const LOG_EXCERPT_BYTES: usize = 2048;

/// What the events keep of a call's `log`: at most [`LOG_EXCERPT_BYTES`] of its end (cut
/// on a character boundary, with a marker saying what was cut), and when that is not all
/// of it, the hash of the whole log put in the content store. A log that cannot be stored
/// is reported and only its excerpt kept: the call's outcome matters more.
pub async fn keep_log(
    content: &crate::store::content::ContentStore,
    log: &str,
) -> (String, Option<crate::store::content::Sha256Hex>) {
    if log.len() <= LOG_EXCERPT_BYTES {
        return (log.to_owned(), None);
    }
    let full = match content.put(log.as_bytes().to_vec()).await {
        Ok(hash) => Some(hash),
        Err(e) => {
            tracing::warn!("a driver log of {} bytes cannot be kept: {e}", log.len());
            None
        }
    };
    // The marker's length depends on the count it shows; the count at most has as many
    // digits as the log's length.
    let marker = |cut: usize| format!("[… {cut} bytes before …]\n");
    let room = LOG_EXCERPT_BYTES - marker(log.len()).len();
    let mut start = log.len() - room;
    while !log.is_char_boundary(start) {
        start += 1;
    }
    (format!("{}{}", marker(start), &log[start..]), full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_driver_needs_an_executable_program() {
        use clap::Parser;
        #[derive(Parser)]
        struct Serve {
            #[command(flatten)]
            automation: AutomationArgs,
        }
        let dir = tempfile::tempdir().unwrap();
        let data = Some(dir.path());
        let args = |extra: &[&str]| {
            let mut argv = vec!["serve", "--driver", "command"];
            argv.extend_from_slice(extra);
            Serve::try_parse_from(argv).unwrap().automation
        };
        let error = |a: AutomationArgs| a.build(data).err().unwrap().to_string();
        assert_eq!(
            error(args(&[])),
            "--driver command needs --driver-program <path>"
        );
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "").unwrap();
        assert!(error(args(&["--driver-program", text.to_str().unwrap()]))
            .ends_with("notes.txt is not executable"));
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/drivers/fail.sh");
        let (_, driver) = args(&["--driver-program", example]).build(data).unwrap();
        assert_eq!(driver.name(), "command");
        assert_eq!(args(&[]).driver_timeout_secs, 300);
    }

    #[tokio::test]
    async fn a_short_log_is_kept_whole_in_the_events() {
        let content = crate::store::content::ContentStore::temporary().unwrap();
        let log = "é".repeat(LOG_EXCERPT_BYTES / 2);
        assert_eq!(keep_log(&content, &log).await, (log, None));
    }

    #[tokio::test]
    async fn a_long_log_keeps_its_end_in_the_events_and_goes_whole_to_the_content_store() {
        let content = crate::store::content::ContentStore::temporary().unwrap();
        // Three-byte characters, so a cut at a fixed byte count would split one.
        let log = format!("first line\n{}\nlast line\n", "日本".repeat(2000));
        let (excerpt, full) = keep_log(&content, &log).await;
        assert!(excerpt.len() <= LOG_EXCERPT_BYTES, "{}", excerpt.len());
        assert!(excerpt.len() > LOG_EXCERPT_BYTES - 8, "{}", excerpt.len());
        assert!(excerpt.ends_with("\nlast line\n"));
        assert!(!excerpt.contains("first line"));
        let kept_tail = excerpt.split_once("…]\n").unwrap().1;
        let cut = log.len() - kept_tail.len();
        assert!(excerpt.starts_with(&format!("[… {cut} bytes before …]\n")));
        let full = full.expect("the whole log is kept");
        assert_eq!(
            content.get(&full).await.unwrap().as_deref(),
            Some(log.as_bytes())
        );
    }
}
