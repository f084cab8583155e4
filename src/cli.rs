//! The command line: one clap `Command` enum, one function per verb.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::io::AsyncWriteExt;

use crate::store::{EventStore, StoreConfig};
use crate::tools::bench::BenchArgs;

/// OpsLedger: an event-sourced ITSM and cloud-operations backend.
///
/// Every verb works on the embedded SQLite store under --data-dir, or on the PostgreSQL
/// database named by --database-url when one is given.
#[derive(Debug, Parser)]
#[command(name = "opsledger", version, about, long_about)]
pub struct Cli {
    /// Directory of the embedded SQLite store (used when no database URL is given).
    #[arg(
        long,
        global = true,
        env = "OPSLEDGER_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,

    /// PostgreSQL URL, e.g. postgres://user:password@host:5432/opsledger.
    #[arg(long, global = true, env = "OPSLEDGER_DATABASE_URL", value_parser = parse_database_url)]
    pub database_url: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start: the size of `Serve`'s options does not matter.
#[expect(clippy::large_enum_variant, reason = "the command line is parsed once")]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: GraphQL on /graphql (GraphiQL in a browser), /healthz, /readyz.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "OPSLEDGER_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where read-model snapshots are kept, so a restart replays only the tail
        /// (default: `<data-dir>/snapshots` on the embedded store, none on PostgreSQL).
        #[arg(long, env = "OPSLEDGER_SNAPSHOT_DIR")]
        snapshot_dir: Option<PathBuf>,
        /// Seconds between snapshots while events arrive (one is also written on shutdown).
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        snapshot_every: u64,
        /// The largest request body accepted, in bytes; a larger one is answered 413
        /// (uploads to /content have their own limit).
        #[arg(long, env = "OPSLEDGER_BODY_LIMIT", default_value_t = crate::http::server::DEFAULT_BODY_LIMIT,
              value_parser = parse_body_limit)]
        body_limit: usize,
        /// How log lines are written to standard error: `text` for people, `json` (one
        /// object per line) for a log collector.
        #[arg(long, env = "OPSLEDGER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        #[command(flatten)]
        automation: crate::drivers::AutomationArgs,
        #[command(flatten)]
        mail: crate::processes::mailer::MailArgs,
        #[command(flatten)]
        checkpoints: crate::processes::checkpoint::CheckpointArgs,
        #[command(flatten)]
        checkpoint_key: crate::processes::checkpoint::KeyArgs,
    },
    /// Recompute the hash chain and stream versions; report the first broken position.
    /// With checkpoints, also check that the log still holds the prefix each one states.
    ///
    /// Exits 0 when the log is intact, 1 when it is broken or a checkpoint fails.
    Verify {
        /// A file of signed checkpoints (`opsledger checkpoint` output: one statement, a
        /// JSON array, or one per line; exported checkpoint events count too). Repeat for
        /// several.
        #[arg(long = "checkpoint", value_name = "FILE")]
        checkpoints: Vec<PathBuf>,
        /// The trusted checkpoint public key (PEM, as `opsledger checkpoint --public-key`
        /// prints it, or 64 hex digits): every checkpoint must be signed by it.
        #[arg(long, value_name = "FILE", requires = "checkpoints")]
        public_key: Option<PathBuf>,
    },
    /// Print a signed checkpoint of the log's head as it is now (one JSON object), after
    /// verifying the chain up to it. Keep its output outside the system.
    ///
    /// Exits 0 with the statement, 1 (printing none) when the chain is broken.
    Checkpoint {
        /// Print the checkpoint public key (PEM) instead.
        #[arg(long)]
        public_key: bool,
        #[command(flatten)]
        key: crate::processes::checkpoint::KeyArgs,
    },
    /// Write the log (or a position range) as NDJSON, one event per line.
    Export {
        /// First position to write.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        from: u64,
        /// Last position to write (default: the end of the log).
        #[arg(long)]
        to: Option<u64>,
        /// File to write (default: standard output).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Load an NDJSON export into an empty store, checking the whole chain first.
    Import {
        /// The export file.
        file: PathBuf,
    },
    /// Print a signed token for local use (the same secret `serve` checks).
    Token {
        /// The user id.
        #[arg(long)]
        user: String,
        /// The display name.
        #[arg(long)]
        name: Option<String>,
        /// The department.
        #[arg(long)]
        department: Option<String>,
        /// A role (repeat for several): requester, approver, catalog_admin, service_desk,
        /// engineer, change_manager, product_manager, operator, operations_manager,
        /// operations_head, auditor, admin.
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<String>,
        /// Hours until it expires.
        #[arg(long, default_value_t = 24 * 30)]
        hours: u64,
    },
    /// Load the sample catalogue, people and requests in every state (twice changes nothing),
    /// and print a token for each sample user.
    Demo {
        /// Also generate this many requests across both sample departments, their projects
        /// and every state, to try lists and replays at scale.
        #[arg(long, default_value_t = 0)]
        requests: usize,
        /// Resources with a year of history (deployed, patched, reclaimed) over 20
        /// departments and 200 projects in eight pools.
        #[arg(long, default_value_t = 40)]
        resources: usize,
        /// Incidents over the past year on the demo's hosts (calendars, SLA policies,
        /// warnings and breaches, a knowledge article for every tenth).
        #[arg(long, default_value_t = 30)]
        incidents: usize,
        /// Where the media and script libraries' files go (default: `<data-dir>/content`,
        /// or `./content` on PostgreSQL; give `serve` the same).
        #[arg(long, env = "OPSLEDGER_CONTENT_DIR")]
        content_dir: Option<PathBuf>,
    },
    /// Rebuild every read model from position 1 and print the rate.
    Replay,
    /// Measure append and replay throughput against the raw database engine.
    Bench(BenchArgs),
    /// Measure the provisioning engine with the simulator at zero latency, on a fresh
    /// temporary SQLite store (or the empty PostgreSQL database --database-url names).
    BenchProvisioning(crate::tools::bench::provisioning::ProvisioningBenchArgs),
    /// Measure what writing a snapshot costs readers and the fold, over the store: the
    /// server in-process, readers over HTTP, a writer, one snapshot to a scratch directory.
    BenchSnapshot(crate::tools::bench::snapshot::SnapshotBenchArgs),
    /// Race `--racers` deployments of one core each for a new pool of `--capacity` cores,
    /// and report how many won, the pool's state and the rate. It runs on a scratch SQLite
    /// store in a temporary directory: the configured store is not touched.
    Race(crate::tools::bench::race::RaceArgs),
}

fn parse_role(role: &str) -> Result<String, String> {
    role.parse::<opsledger_domain::kernel::aggregate::Role>()
        .map(|r| r.as_str().to_owned())
}

fn parse_database_url(url: &str) -> Result<String, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(url.to_owned())
    } else {
        Err("expected a PostgreSQL URL starting with postgres:// or postgresql://".into())
    }
}

/// How `serve` writes its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A body limit between 1 KiB and 1 GiB.
fn parse_body_limit(value: &str) -> Result<usize, String> {
    let n: usize = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number of bytes"))?;
    if !(1024..=1 << 30).contains(&n) {
        return Err(format!("{n} is out of range 1024–1073741824 bytes"));
    }
    Ok(n)
}

impl Cli {
    /// The store the global options name.
    pub fn store_config(&self) -> StoreConfig {
        match &self.database_url {
            Some(url) => StoreConfig::Postgres { url: url.clone() },
            None => StoreConfig::Sqlite {
                data_dir: self.data_dir.clone(),
            },
        }
    }
}

/// Runs one verb.
///
/// # Errors
/// Whatever stops the verb, with context for the operator.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.store_config();
    let data_dir = cli.database_url.is_none().then_some(cli.data_dir.as_path());
    match cli.command {
        Command::Token {
            user,
            name,
            department,
            roles,
            hours,
        } => {
            let keys = crate::http::auth::Keys::configured(data_dir)?;
            let exp = chrono::Utc::now().timestamp().max(0) as u64 + hours * 3600;
            let claims = crate::http::auth::Claims {
                sub: user,
                name,
                department,
                roles,
                exp,
            };
            say(format_args!("{}", keys.mint(&claims)?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            listen,
            snapshot_dir,
            snapshot_every,
            body_limit,
            log_format,
            automation,
            mail,
            checkpoints,
            checkpoint_key,
        } => {
            init_log(log_format);
            let checkpointing = checkpoint_key_for_serve(&checkpoints, &checkpoint_key, data_dir)?;
            let snapshots = snapshot_dir.or_else(|| data_dir.map(|d| d.join("snapshots")));
            let every = std::time::Duration::from_secs(snapshot_every);
            let mail = mail.config()?;
            let options = crate::http::server::ServerOptions { body_limit };
            serve(
                &config,
                data_dir,
                listen,
                snapshots,
                every,
                &automation,
                mail,
                &options,
                checkpointing,
            )
            .await
        }
        Command::Verify {
            checkpoints,
            public_key,
        } => verify(&config, &checkpoints, public_key.as_deref()).await,
        Command::Checkpoint { public_key, key } => {
            let key = crate::processes::checkpoint::CheckpointKey::configured(
                key.checkpoint_key.as_deref(),
                data_dir,
            )?;
            if public_key {
                print!("{}", key.public_key_pem()?);
                return Ok(ExitCode::SUCCESS);
            }
            checkpoint(&config, &key).await
        }
        Command::Export { from, to, output } => export(&config, from, to, output).await,
        Command::Import { file } => import(&config, file).await,
        Command::Demo {
            requests,
            resources,
            incidents,
            content_dir,
        } => {
            let content_dir = content_dir.unwrap_or_else(|| {
                data_dir.map_or_else(|| PathBuf::from("content"), |d| d.join("content"))
            });
            demo(
                &config,
                data_dir,
                requests,
                resources,
                incidents,
                content_dir,
            )
            .await
        }
        Command::Replay => replay(&config).await,
        Command::Bench(args) => crate::tools::bench::run(&args, cli.database_url.as_deref()).await,
        Command::BenchSnapshot(args) => {
            crate::tools::bench::snapshot::run(&args, &config, data_dir).await
        }
        Command::Race(args) => {
            let raced = crate::tools::bench::race::run(&args).await?;
            say(format_args!("{raced}"));
            raced.check()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchProvisioning(args) => {
            let scratch = tempfile::tempdir()?;
            let config = match cli.database_url.as_deref() {
                Some(url) => StoreConfig::Postgres {
                    url: url.to_owned(),
                },
                None => StoreConfig::Sqlite {
                    data_dir: scratch.path().to_path_buf(),
                },
            };
            crate::tools::bench::provisioning::run(open(&config).await?, &args).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints a line to standard output. A reader that went away (`opsledger demo | head`) ends
/// the process quietly, as Unix tools do.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(2);
    }
}

async fn open(config: &StoreConfig) -> anyhow::Result<EventStore> {
    Ok(EventStore::open(config).await?)
}

/// Logs to standard error, at `RUST_LOG`'s levels (`info` by default).
fn init_log(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let log = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => log.init(),
        LogFormat::Json => log
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

// One call site, which passes each option `serve` was given by name.
#[expect(
    clippy::too_many_arguments,
    reason = "a verb takes each of its options as a parameter"
)]
async fn serve(
    config: &StoreConfig,
    data_dir: Option<&std::path::Path>,
    listen: SocketAddr,
    snapshots: Option<PathBuf>,
    snapshot_every: std::time::Duration,
    automation: &crate::drivers::AutomationArgs,
    mail: Option<crate::processes::mailer::MailConfig>,
    options: &crate::http::server::ServerOptions,
    checkpointing: Option<(
        crate::processes::checkpoint::CheckpointKey,
        crate::processes::checkpoint::CheckpointArgs,
    )>,
) -> anyhow::Result<ExitCode> {
    let keys = crate::http::auth::Keys::configured(data_dir)?;
    // Options that are wrong are named before anything is opened or bound.
    let (content, driver) = automation
        .build(data_dir)
        .context("cannot set up automation (the content store and the driver)")?;
    let store = open(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(
        address = %listener.local_addr()?,
        backend = store.backend_name(),
        position = store.head().await?,
        "opsledger is serving"
    );
    // Ctrl-C, or SIGTERM from a service manager or container runtime.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let clock = std::sync::Arc::new(crate::app::SystemClock);
    tracing::info!(content = %content.root().display(), driver = driver.name(), "automation");
    let app = crate::app::App::start_with_snapshots(store, clock, snapshots)
        .with_automation(content, driver);
    // Nothing is served, and nothing decided, before what the log holds was read, checked
    // against its hash chain and decoded: a store that cannot be is refused.
    tracing::info!("reading the log into the read models");
    let reached = app
        .runner
        .caught_up()
        .await
        .map_err(|reason| anyhow::anyhow!("cannot serve {}: {reason}", store_name(config)))?;
    tracing::info!(position = reached, "the read models are caught up");
    crate::processes::scheduler::start(app.clone(), std::time::Duration::from_secs(60));
    crate::processes::engine::start(app.clone());
    crate::processes::mailer::start(app.clone(), mail);
    match checkpointing {
        Some((key, every)) => {
            crate::processes::checkpoint::start(app.clone(), key, every);
        }
        None => tracing::warn!(
            "recorded checkpoints are off: processes sharing a PostgreSQL database need one \
             key, given with --checkpoint-key or {}",
            crate::processes::checkpoint::KEY_FILE_VAR
        ),
    }
    app.runner.snapshot_every(snapshot_every);
    crate::http::server::serve_with(listener, app.clone(), keys, options, shutdown).await?;
    if let Err(e) = app.runner.save_snapshot().await {
        tracing::warn!("the snapshot on shutdown failed: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The store as an operator names it: the SQLite file, or the PostgreSQL database.
fn store_name(config: &StoreConfig) -> String {
    match config {
        StoreConfig::Sqlite { data_dir } => {
            format!(
                "the event store {}",
                data_dir.join("opsledger.db").display()
            )
        }
        StoreConfig::Postgres { .. } => "the PostgreSQL event store".to_owned(),
    }
}

async fn demo(
    config: &StoreConfig,
    data_dir: Option<&std::path::Path>,
    generated: usize,
    resources: usize,
    incidents: usize,
    content_dir: PathBuf,
) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    let app = crate::app::App::start(store.clone(), std::sync::Arc::new(crate::app::SystemClock));
    let content = crate::store::content::ContentStore::open(&content_dir)
        .with_context(|| format!("cannot open the content store {}", content_dir.display()))?;
    let driver = app.driver.clone();
    let app = app.with_automation(content, driver);
    // The resource history is the past year; the requests are dated after it, so the
    // log's times follow its order (what `asOf: {time}` relies on).
    let started = std::time::Instant::now();
    let made = crate::tools::demo::resources::load(&app, resources).await?;
    let loaded = crate::tools::demo::load_with(&app.bus, generated).await?;
    let operations = crate::tools::demo::operations::load(
        &app,
        incidents,
        &crate::tools::demo::resources::hosts(),
    )
    .await?;
    let library = crate::tools::demo::library::load(&app).await?;
    crate::tools::demo::library::load_workflow(&app).await?;
    say(format_args!(
        "demo loaded: {} catalogue items, {} requests, {} resources with a year of history, {} incidents ({} open) and {} knowledge articles; {} library items with their files; the workflow 小型虛擬機開通 provisions each small VM requested from now on ({} s; the log holds {} events; loading again changes nothing)",
        loaded.items,
        loaded.requests,
        made.resources,
        operations.incidents,
        operations.open,
        operations.articles,
        library,
        started.elapsed().as_secs(),
        store.head().await?
    ));
    let keys = crate::http::auth::Keys::configured(data_dir)?;
    let exp = chrono::Utc::now().timestamp().max(0) as u64 + 30 * 24 * 3600;
    say(format_args!(
        "\ntokens for the sample users (send as `Authorization: Bearer <token>`):"
    ));
    for (id, name, department, roles) in crate::tools::demo::PEOPLE {
        let claims = crate::http::auth::Claims {
            sub: (*id).into(),
            name: Some((*name).into()),
            department: Some((*department).into()),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            exp,
        };
        say(format_args!(
            "{id:9} {:14} {}",
            roles.join(","),
            keys.mint(&claims)?
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(config: &StoreConfig) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    let start = std::time::Instant::now();
    let mut models = opsledger_projections::ReadModels::default();
    let mut verifier = opsledger_domain::ChainVerifier::default();
    let mut pages = store.replay_decoded(1, u64::MAX);
    while let Some(page) = pages.recv().await {
        for (event, recomputed, decoded) in page? {
            verifier
                .check_link(
                    event.position,
                    &event.stream,
                    event.version,
                    event.hash,
                    recomputed,
                )
                .map_err(|b| anyhow::anyhow!("the log is broken at {b}; run `opsledger verify`"))?;
            models.apply_decoded(&event, &decoded);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    say(format_args!(
        "replayed {} events into every read model in {seconds:.2} s ({:.0} events/s): {} catalogue items, {} requests, {} audit entries, {} compliance findings",
        verifier.count(),
        verifier.count() as f64 / seconds.max(1e-9),
        models.catalog.all(true).count(),
        models.requests.len(),
        models.audit.len(),
        models.compliance.findings().len()
    ));
    Ok(ExitCode::SUCCESS)
}

/// The key and schedule of the checkpoints `serve` records: `None` when it has no key
/// (PostgreSQL without one); both triggers at 0 need no key at all.
fn checkpoint_key_for_serve(
    every: &crate::processes::checkpoint::CheckpointArgs,
    key: &crate::processes::checkpoint::KeyArgs,
    data_dir: Option<&std::path::Path>,
) -> anyhow::Result<
    Option<(
        crate::processes::checkpoint::CheckpointKey,
        crate::processes::checkpoint::CheckpointArgs,
    )>,
> {
    let off = crate::processes::checkpoint::CheckpointArgs {
        checkpoint_every_events: 0,
        checkpoint_every_minutes: 0,
    };
    if *every == off {
        return Ok(Some((
            crate::processes::checkpoint::CheckpointKey::generate(),
            off,
        )));
    }
    if key.checkpoint_key.is_none() && data_dir.is_none() {
        return Ok(None);
    }
    let key = crate::processes::checkpoint::CheckpointKey::configured(
        key.checkpoint_key.as_deref(),
        data_dir,
    )?;
    Ok(Some((key, *every)))
}

async fn checkpoint(
    config: &StoreConfig,
    key: &crate::processes::checkpoint::CheckpointKey,
) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    match crate::processes::checkpoint::take(&store, key, chrono::Utc::now()).await? {
        Ok(statement) => {
            say(format_args!("{}", serde_json::to_string(&statement)?));
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            eprintln!(
                "no checkpoint signed: the log is BROKEN at position {}: {}; run `opsledger verify`",
                broken.position, broken.problem
            );
            Ok(ExitCode::from(1))
        }
    }
}

async fn verify(
    config: &StoreConfig,
    files: &[PathBuf],
    public_key: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    // Files and keys that cannot be read are named before the store is opened.
    let trusted = public_key
        .map(crate::processes::checkpoint::read_public_key)
        .transpose()?;
    let mut statements = Vec::new();
    for file in files {
        for statement in crate::processes::checkpoint::read_statements(file)? {
            statements.push((file.clone(), statement));
        }
    }
    let store = open(config).await?;
    let report = store.verify().await?;
    let mut intact = match &report.broken {
        None => {
            say(format_args!(
                "ok: {} events, hash chain and stream versions intact, head hash {}",
                report.events, report.head_hash
            ));
            true
        }
        Some(broken) => {
            say(format_args!(
                "BROKEN at position {}: {} ({} events before it verified clean)",
                broken.position, broken.problem, report.events
            ));
            false
        }
    };
    if !statements.is_empty() {
        let findings =
            crate::processes::checkpoint::check(&store, &statements, trusted.as_ref()).await?;
        let failed = findings.iter().filter(|f| f.problem.is_some()).count();
        for f in &findings {
            match &f.problem {
                None => say(format_args!(
                    "ok: checkpoint at position {} ({}): the log holds that prefix",
                    f.position,
                    f.file.display()
                )),
                Some(problem) => say(format_args!(
                    "FAILED: checkpoint at position {} ({}): {problem}",
                    f.position,
                    f.file.display()
                )),
            }
        }
        say(format_args!(
            "{} of {} checkpoints hold",
            findings.len() - failed,
            findings.len()
        ));
        intact &= failed == 0;
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn export(
    config: &StoreConfig,
    from: u64,
    to: Option<u64>,
    output: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let to = to.unwrap_or(u64::MAX);
    anyhow::ensure!(to >= from, "--to {to} is before --from {from}");
    let store = open(config).await?;
    let done = match &output {
        Some(path) => {
            let file = tokio::fs::File::create(path)
                .await
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
            let done = store.export(from, to, &mut out).await?;
            out.into_inner().sync_all().await?;
            done
        }
        None => {
            let mut out = tokio::io::BufWriter::with_capacity(1 << 20, tokio::io::stdout());
            let done = store.export(from, to, &mut out).await?;
            out.flush().await?;
            done
        }
    };
    eprintln!("exported {} events", done.events);
    Ok(ExitCode::SUCCESS)
}

async fn import(config: &StoreConfig, file: PathBuf) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    let done = store
        .import(&file)
        .await
        .with_context(|| format!("import of {} refused", file.display()))?;
    eprintln!(
        "imported {} events (positions 1 to {})",
        done.events, done.last_position
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_database_url_that_is_not_postgres_is_refused_by_name() {
        let err = Cli::try_parse_from(["opsledger", "--database-url", "mysql://x", "verify"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--database-url"), "{err}");
        assert!(err.contains("postgres://"), "{err}");
    }

    #[test]
    fn every_verb_takes_the_store_options() {
        for verb in [
            "serve",
            "verify",
            "export",
            "demo",
            "replay",
            "bench",
            "race",
            "checkpoint",
        ] {
            let cli = Cli::try_parse_from(["opsledger", verb, "--data-dir", "elsewhere"]).unwrap();
            assert_eq!(cli.data_dir, PathBuf::from("elsewhere"), "{verb}");
        }
    }
}
