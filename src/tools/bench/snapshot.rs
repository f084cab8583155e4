//! `opsledger bench-snapshot`: what a snapshot of the read models costs the API.
//!
//! Over the store the global options name, it starts the application in-process (snapshots
//! going to a scratch directory, so one is always due), serves it on a loopback port, and
//! runs `readers` clients over real HTTP, each asking `requests(first: 50)` for one
//! department's requests waiting for approval (as `docs/bench/list-requests.lua` does), one
//! after another. A writer appends a catalogue item every `write_every_ms` through the
//! command bus and times how long each takes to reach the read models (what read-your-writes
//! waits for). After `warmup` seconds it writes one snapshot, and reports the readers'
//! p50 / p99 / max and the writer's fold lag before and during the snapshot.
//!
//! A benchmark, not a test: it prints figures and asserts nothing about them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use opsledger_domain::kernel::aggregate::Context;
use opsledger_domain::requests::catalog::{CatalogCommand, CatalogItem};
use opsledger_domain::requests::demo::{two_steps, vm_definition};
use opsledger_domain::{Actor, ActorKind};
use uuid::Uuid;

use crate::app::{App, SystemClock};
use crate::runtime::runner::SnapshotStage;
use crate::store::{EventStore, StoreConfig};

#[derive(Debug, clap::Args)]
pub struct SnapshotBenchArgs {
    /// Concurrent HTTP clients reading `requests(first: 50)`.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub readers: u64,
    /// Milliseconds between the writer's appends.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub write_every_ms: u64,
    /// Seconds of load before the snapshot (the "before" figures).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub warmup: u64,
    /// Directory for the scratch snapshot, made if missing (default: the system's temporary
    /// directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

const QUERY: &str = r#"{ requests(first: 50, filter: {status: PENDING_APPROVAL, department: "財政局"}) { edges { cursor node { id kind status requester project submittedAt openStep } } pageInfo { hasNextPage endCursor } position } }"#;

/// One timed operation: when it started and how long it took.
type Sample = (Instant, Duration);

/// Runs the benchmark and prints its figures.
///
/// # Errors
/// When the store cannot be opened, the server cannot listen, or a read or write fails.
pub async fn run(
    args: &SnapshotBenchArgs,
    config: &StoreConfig,
    data_dir: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let scratch = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot make the directory {}", dir.display()))?;
            tempfile::Builder::new()
                .prefix("opsledger-snapshot-bench")
                .tempdir_in(dir)?
        }
        None => tempfile::Builder::new()
            .prefix("opsledger-snapshot-bench")
            .tempdir()?,
    };
    let keys = crate::http::auth::Keys::configured(data_dir)?;
    let token = keys.mint(&crate::http::auth::Claims {
        sub: "u-ho".into(),
        name: None,
        department: Some("財政局".into()),
        roles: vec!["approver".into()],
        exp: chrono::Utc::now().timestamp().max(0) as u64 + 3600,
    })?;
    let store = EventStore::open(config).await?;
    let head = store.head().await?;
    let started = Instant::now();
    let app = App::start_with_snapshots(
        store,
        Arc::new(SystemClock),
        Some(scratch.path().to_owned()),
    );
    app.runner
        .wait_for(head, Duration::from_secs(3600))
        .await
        .map_err(|at| anyhow::anyhow!("the read models stopped at {at} of {head}"))?;
    println!(
        "{head} events folded in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/graphql", listener.local_addr()?);
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::http::server::serve(
        listener,
        app.clone(),
        keys,
        async {
            let _ = stopped.await;
        },
    ));

    let running = Arc::new(AtomicBool::new(true));
    let reads: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..args.readers {
        let (running, reads, url, token) =
            (running.clone(), reads.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            read_until_stopped(&running, &reads, &url, &token).await
        }));
    }
    let writes: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let writer = {
        let (running, writes, app) = (running.clone(), writes.clone(), app.clone());
        let every = Duration::from_millis(args.write_every_ms);
        tokio::spawn(async move { write_until_stopped(&running, &writes, &app, every).await })
    };

    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    // When the models were let go: the end of what the snapshot holds them for.
    let released: Arc<Mutex<Option<Instant>>> = Arc::default();
    {
        let released = released.clone();
        app.runner.on_snapshot_stage(Arc::new(move |stage| {
            if matches!(stage, SnapshotStage::Writing) {
                if let Ok(mut at) = released.lock() {
                    *at = Some(Instant::now());
                }
            }
        }));
    }
    let snapshot_start = Instant::now();
    let written = app.runner.save_snapshot().await?;
    let snapshot_end = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.store(false, Ordering::SeqCst);
    for task in tasks {
        task.await??;
    }
    writer.await??;
    let _ = stop_server.send(());
    server.await??;

    let size = dir_size(scratch.path());
    println!(
        "snapshot at position {} written in {:.2} s ({:.0} MiB)",
        written.context("no snapshot was written")?,
        (snapshot_end - snapshot_start).as_secs_f64(),
        size as f64 / (1024.0 * 1024.0)
    );
    if let Some(at) = released.lock().ok().and_then(|at| *at) {
        println!(
            "  the models were held (read) for {:.2} s of it",
            (at - snapshot_start).as_secs_f64()
        );
    }
    let before = |s: &Sample| s.0 < snapshot_start;
    // Every operation that overlapped the snapshot (started before its end, ended after
    // its start).
    let during = |s: &Sample| s.0 < snapshot_end && s.0 + s.1 > snapshot_start;
    let reads = reads
        .lock()
        .map_err(|_| anyhow::anyhow!("a reader panicked"))?;
    let writes = writes
        .lock()
        .map_err(|_| anyhow::anyhow!("the writer panicked"))?;
    println!("{} readers, requests(first: 50):", args.readers);
    report("  before the snapshot", reads.iter().filter(|s| before(s)));
    report("  during the snapshot", reads.iter().filter(|s| during(s)));
    println!(
        "writer, one append every {} ms, append until folded:",
        args.write_every_ms
    );
    report("  before the snapshot", writes.iter().filter(|s| before(s)));
    report("  during the snapshot", writes.iter().filter(|s| during(s)));
    Ok(ExitCode::SUCCESS)
}

async fn read_until_stopped(
    running: &AtomicBool,
    samples: &Mutex<Vec<Sample>>,
    url: &str,
    token: &str,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let body = serde_json::json!({ "query": QUERY });
    let mut mine = Vec::new();
    while running.load(Ordering::SeqCst) {
        let start = Instant::now();
        let response = client
            .post(url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await?;
        mine.push((start, start.elapsed()));
        if !status.is_success() || answer.get("errors").is_some() {
            anyhow::bail!("a read failed ({status}): {answer}");
        }
    }
    samples
        .lock()
        .map_err(|_| anyhow::anyhow!("a reader panicked"))?
        .extend(mine);
    Ok(())
}

async fn write_until_stopped(
    running: &AtomicBool,
    samples: &Mutex<Vec<Sample>>,
    app: &App,
    every: Duration,
) -> anyhow::Result<()> {
    let ctx = Context {
        actor: Actor {
            kind: ActorKind::User,
            id: "u-lam".into(),
            name: None,
            department: Some("運維中心".into()),
            roles: vec!["catalog_admin".into()],
        },
        now: chrono::Utc::now(),
    };
    let mut tick = tokio::time::interval(every);
    let mut mine = Vec::new();
    while running.load(Ordering::SeqCst) {
        tick.tick().await;
        let id = Uuid::now_v7();
        let create = CatalogCommand::CreateCatalogItem {
            item_id: id,
            definition: vm_definition(two_steps()),
        };
        let start = Instant::now();
        let appended = app
            .bus
            .execute::<CatalogItem>(id, create, &ctx, Uuid::now_v7())
            .await
            .map_err(|e| anyhow::anyhow!("an append failed: {e:?}"))?;
        app.runner
            .wait_for(appended.last_position, Duration::from_secs(600))
            .await
            .map_err(|at| anyhow::anyhow!("the fold stopped at {at}"))?;
        mine.push((start, start.elapsed()));
    }
    samples
        .lock()
        .map_err(|_| anyhow::anyhow!("the writer panicked"))?
        .extend(mine);
    Ok(())
}

/// Prints the count, p50, p99 and max of `samples`' durations.
fn report<'a>(label: &str, samples: impl Iterator<Item = &'a Sample>) {
    let mut took: Vec<Duration> = samples.map(|s| s.1).collect();
    if took.is_empty() {
        println!("{label}: none");
        return;
    }
    took.sort_unstable();
    let at = |q: f64| took[((took.len() as f64 * q).ceil() as usize).clamp(1, took.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}: {} calls, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        took.len(),
        ms(at(0.50)),
        ms(at(0.99)),
        ms(*took.last().unwrap_or(&Duration::ZERO)),
    );
}

fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
