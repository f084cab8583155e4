//! `opsledger bench`: the event log's throughput, each figure beside the ceiling of the
//! engine underneath (the same rows written or read with plain rusqlite / tokio-postgres,
//! without OpsLedger's envelope, batching and hashing), measured in the same run.
//!
//! Each figure is the median of `--runs` runs. The SQLite figures use scratch stores in a
//! temporary directory; the PostgreSQL figures use the schemas `opsledger_bench` and
//! `opsledger_bench_raw` of the database `--database-url` names, dropped and re-created.
//!
//! The other measurements are beside it: [`provisioning`] (the engine), [`snapshot`] (what
//! a snapshot costs readers) and [`race`] (deployments racing for one pool).

pub mod provisioning;
pub mod race;
pub mod snapshot;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use opsledger_domain::{Actor, ActorKind, ChainVerifier, Metadata, NewEvent, Upcasters};
use uuid::Uuid;

use crate::store::postgres::PostgresBackend;
use crate::store::{Append, EventStore, ExpectedVersion};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Runs of each figure; the table shows the median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=50))]
    pub runs: u64,
    /// Events in the store for the read-all and memory figures.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1000..))]
    pub events: u64,
    /// One-event appends per run (spread over 16 writers).
    #[arg(long, default_value_t = 16_000, value_parser = clap::value_parser!(u64).range(16..))]
    pub single_appends: u64,
    /// Events per run of the 100-event-append figures (spread over 16 writers).
    #[arg(long, default_value_t = 160_000, value_parser = clap::value_parser!(u64).range(1600..))]
    pub batch_events: u64,
    /// Directory for the SQLite scratch stores (default: the system's temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Which backends to measure (PostgreSQL needs --database-url).
    #[arg(long, value_enum, default_value = "both")]
    pub only: Only,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    Sqlite,
    Postgres,
    Both,
}

const WRITERS: usize = 16;

/// One line of the table.
struct Figure {
    name: String,
    ours: f64,
    ours_note: String,
    ceiling: Option<(String, f64)>,
    target: String,
}

/// Runs the benchmark and prints the table.
///
/// # Errors
/// When a store cannot be opened or a write fails.
pub async fn run(args: &BenchArgs, database_url: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut figures = Vec::new();
    let scratch = match &args.dir {
        Some(dir) => tempfile::Builder::new()
            .prefix("opsledger-bench")
            .tempdir_in(dir)?,
        None => tempfile::Builder::new()
            .prefix("opsledger-bench")
            .tempdir()?,
    };
    if args.only != Only::Postgres {
        sqlite_figures(args, scratch.path(), &mut figures).await?;
    }
    match database_url {
        Some(url) if args.only != Only::Sqlite => postgres_figures(args, url, &mut figures).await?,
        Some(_) => {}
        None => {
            eprintln!("PostgreSQL figures skipped: no --database-url (or OPSLEDGER_DATABASE_URL)")
        }
    }
    print_table(args, &figures);
    Ok(ExitCode::SUCCESS)
}

fn progress(what: &str) {
    eprintln!("[{}] {what}", Utc::now().format("%H:%M:%S"));
}

async fn sqlite_figures(
    args: &BenchArgs,
    dir: &Path,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    // First, while the process has done nothing else: the writer's memory over a long run.
    let big = open_sqlite(&dir.join("big")).await?;
    progress(&format!(
        "SQLite: appending {} events (memory)",
        args.events
    ));
    fill(&big, args.events).await?;
    figures.push(Figure {
        name: format!(
            "resident memory of the writer process (peak) while appending {} events to SQLite",
            args.events
        ),
        ours: peak_rss_mib(),
        ours_note: "MiB".into(),
        ceiling: None,
        target: "≤ 200 MiB".into(),
    });

    progress("SQLite: read all + decode + verify hashes");
    let read = median_of(args.runs, || read_all(&big)).await?;
    let path = dir.join("big").join("opsledger.db");
    let raw_scan = median_of(args.runs, || raw_sqlite_scan(&path)).await?;
    figures.push(Figure {
        name: format!(
            "SQLite, read all + decode + verify hashes, {} events",
            read.count
        ),
        ours: read.rate,
        ours_note: String::new(),
        ceiling: Some(("raw full scan, no decoding".into(), raw_scan.rate)),
        target: "≥ 500,000 events/s".into(),
    });
    drop(big);

    let store = open_sqlite(&dir.join("store")).await?;
    let raw = dir.join("raw.db");
    progress("SQLite: 1-event appends, 16 writers");
    let single = median_of(args.runs, || appends(&store, args.single_appends, 1)).await?;
    let raw_single = median_of(args.runs, || raw_sqlite_inserts(&raw, 2_000, 1)).await?;
    figures.push(Figure {
        name: "SQLite (synchronous=FULL), 1 event per append, 16 concurrent writers".into(),
        ours: single.rate,
        ours_note: format!(
            "p99 {:.1} ms, {:.1} appends/commit",
            single.p99_ms, single.per_commit
        ),
        ceiling: Some(("raw single-row commits".into(), raw_single.rate)),
        target: "≥ 25,000 events/s, p99 ≤ 10 ms".into(),
    });

    progress("SQLite: 100-event appends, 16 writers");
    let batched = median_of(args.runs, || appends(&store, args.batch_events / 100, 100)).await?;
    let raw_batched = median_of(args.runs, || {
        raw_sqlite_inserts(&raw, args.batch_events, 1_000)
    })
    .await?;
    figures.push(Figure {
        name: "SQLite, 100-event appends, 16 concurrent writers".into(),
        ours: batched.rate,
        ours_note: format!(
            "p99 {:.1} ms, {:.1} appends/commit",
            batched.p99_ms, batched.per_commit
        ),
        ceiling: Some(("raw 1,000-row transactions".into(), raw_batched.rate)),
        target: "≥ 250,000 events/s, ≥ 0.55 of raw".into(),
    });
    figures.rotate_left(2);
    Ok(())
}

async fn open_sqlite(dir: &Path) -> anyhow::Result<EventStore> {
    Ok(EventStore::open(&crate::store::StoreConfig::Sqlite {
        data_dir: dir.to_owned(),
    })
    .await?)
}

async fn postgres_figures(
    args: &BenchArgs,
    url: &str,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    let base = tokio_postgres::Config::from_str(url).context("--database-url")?;
    let (admin, connection) = base
        .connect(tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(connection);
    admin
        .batch_execute(
            "DROP SCHEMA IF EXISTS opsledger_bench CASCADE; CREATE SCHEMA opsledger_bench;
             DROP SCHEMA IF EXISTS opsledger_bench_raw CASCADE; CREATE SCHEMA opsledger_bench_raw;",
        )
        .await?;
    let mut config = base.clone();
    config.options("-c search_path=opsledger_bench");
    let store = EventStore::from_backend(
        Arc::new(PostgresBackend::open_config(config).await?),
        Upcasters::default(),
    );
    let mut raw_config = base.clone();
    raw_config.options("-c search_path=opsledger_bench_raw");
    raw_postgres_schema(&raw_config).await?;

    progress("PostgreSQL: 1-event appends, 16 writers");
    let single = median_of(args.runs, || appends(&store, args.single_appends, 1)).await?;
    let raw_single = median_of(args.runs, || {
        raw_postgres_inserts(&raw_config, args.single_appends, 1, WRITERS)
    })
    .await?;
    figures.push(Figure {
        name: "PostgreSQL (local, default config), 1 event per append, 16 concurrent writers"
            .into(),
        ours: single.rate,
        ours_note: format!(
            "p99 {:.1} ms, {:.1} appends/commit",
            single.p99_ms, single.per_commit
        ),
        ceiling: Some(("16 raw single-row committers".into(), raw_single.rate)),
        target: "≥ 10,000 events/s".into(),
    });

    progress("PostgreSQL: 100-event appends, 16 writers");
    let batched = median_of(args.runs, || appends(&store, args.batch_events / 100, 100)).await?;
    let raw_batched = median_of(args.runs, || {
        raw_postgres_inserts(&raw_config, args.batch_events, 1_000, 1)
    })
    .await?;
    figures.push(Figure {
        name: "PostgreSQL, 100-event appends, 16 concurrent writers".into(),
        ours: batched.rate,
        ours_note: format!(
            "p99 {:.1} ms, {:.1} appends/commit",
            batched.p99_ms, batched.per_commit
        ),
        ceiling: Some(("raw 1,000-row unnest inserts".into(), raw_batched.rate)),
        target: "≥ 60,000 events/s, ≥ 0.6 of raw".into(),
    });

    progress(&format!(
        "PostgreSQL: filling the store to {} events",
        args.events
    ));
    fill(&store, args.events).await?;
    progress("PostgreSQL: read all + decode + verify hashes");
    let read = median_of(args.runs, || read_all(&store)).await?;
    let mut ours_config = base.clone();
    ours_config.options("-c search_path=opsledger_bench");
    let raw_scan = median_of(args.runs, || raw_postgres_scan(&ours_config)).await?;
    figures.push(Figure {
        name: format!(
            "PostgreSQL, read all + decode + verify hashes, {} events",
            read.count
        ),
        ours: read.rate,
        ours_note: String::new(),
        ceiling: Some(("raw scan over TCP, no decoding".into(), raw_scan.rate)),
        target: "≥ 200,000 events/s".into(),
    });
    drop(store);
    admin
        .batch_execute(
            "DROP SCHEMA opsledger_bench CASCADE; DROP SCHEMA opsledger_bench_raw CASCADE;",
        )
        .await?;
    Ok(())
}

/// One run's result.
#[derive(Clone, Copy, Debug, Default)]
struct Measure {
    /// Events (or rows) per second.
    rate: f64,
    p99_ms: f64,
    count: u64,
    /// Appends per commit (group commit at work), for append figures.
    per_commit: f64,
}

async fn median_of<F, Fut>(runs: u64, mut run: F) -> anyhow::Result<Measure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Measure>>,
{
    let mut all = Vec::new();
    for _ in 0..runs {
        all.push(run().await?);
    }
    all.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let mut median = all[all.len() / 2];
    let mut p99s: Vec<f64> = all.iter().map(|m| m.p99_ms).collect();
    p99s.sort_by(f64::total_cmp);
    median.p99_ms = p99s[p99s.len() / 2];
    Ok(median)
}

/// A payload of the size and shape of a self-service request (≈ 320 bytes), serialised
/// from a typed event as the domain will.
#[derive(serde::Serialize)]
struct RequestSubmitted {
    request_id: Uuid,
    catalogue_item: &'static str,
    item_version: u32,
    department: &'static str,
    project: &'static str,
    configuration: Configuration,
    quantity: u32,
    period: (&'static str, &'static str),
    sequence: u64,
}

#[derive(serde::Serialize)]
struct Configuration {
    cpu: u32,
    memory_gb: u32,
    disk_gb: u32,
    os: &'static str,
    image: &'static str,
}

fn payload(n: u64) -> RequestSubmitted {
    RequestSubmitted {
        request_id: Uuid::from_u128(u128::from(n)),
        catalogue_item: "vm-standard-linux",
        item_version: 3,
        department: "數字政府辦公室",
        project: "electronic-document-exchange",
        configuration: Configuration {
            cpu: 4,
            memory_gb: 16,
            disk_gb: 200,
            os: "linux",
            image: "rhel-9.4",
        },
        quantity: 1,
        period: ("2026-12-01", "2027-06-01"),
        sequence: n,
    }
}

fn metadata() -> Metadata {
    Metadata::new(
        Actor {
            kind: ActorKind::User,
            id: "bench".into(),
            name: Some("Benchmark".into()),
            department: Some("operations".into()),
            roles: vec!["operator".into()],
        },
        Uuid::now_v7(),
        Utc::now(),
    )
}

fn events(count: usize, n: u64) -> anyhow::Result<Vec<NewEvent>> {
    (0..count)
        .map(|i| {
            Ok(NewEvent::new(
                "RequestSubmitted",
                1,
                &payload(n + i as u64),
            )?)
        })
        .collect()
}

/// `appends` appends of `size` events, spread over 16 writers on their own streams.
async fn appends(store: &EventStore, appends: u64, size: usize) -> anyhow::Result<Measure> {
    let per_writer = appends.div_ceil(WRITERS as u64);
    let before = crate::store::batch::writer_counts();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let stream = format!("bench-{}", Uuid::now_v7());
            let mut expected = ExpectedVersion::NoStream;
            let mut latencies = Vec::with_capacity(per_writer as usize);
            for i in 0..per_writer {
                let append = Append {
                    stream: stream.clone(),
                    expected,
                    events: events(size, i)?,
                    metadata: metadata(),
                    after: None,
                };
                let t = Instant::now();
                let done = store.append(append).await?;
                latencies.push(t.elapsed());
                expected = ExpectedVersion::Exact(done.last_version);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = start.elapsed();
    let after = crate::store::batch::writer_counts();
    let per_commit = (after.1 - before.1) as f64 / (after.0 - before.0).max(1) as f64;
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    let count = latencies.len() as u64 * size as u64;
    Ok(Measure {
        rate: count as f64 / elapsed.as_secs_f64(),
        p99_ms: p99.as_secs_f64() * 1e3,
        count,
        per_commit,
    })
}

async fn fill(store: &EventStore, events: u64) -> anyhow::Result<()> {
    let head = store.head().await?;
    if head < events {
        appends(store, (events - head).div_ceil(100), 100).await?;
    }
    Ok(())
}

/// Reads the whole log as a replay does: decoded, every hash link checked.
async fn read_all(store: &EventStore) -> anyhow::Result<Measure> {
    let start = Instant::now();
    let mut verifier = ChainVerifier::default();
    let mut pages = store.replay(1, u64::MAX);
    while let Some(page) = pages.recv().await {
        for (event, recomputed) in page? {
            verifier.check_link(
                event.position,
                &event.stream,
                event.version,
                event.hash,
                recomputed,
            )?;
            std::hint::black_box(&event);
        }
    }
    let count = verifier.count();
    Ok(Measure {
        rate: count as f64 / start.elapsed().as_secs_f64(),
        count,
        ..Measure::default()
    })
}

/// Rows with the same bytes as OpsLedger's, without the envelope work.
fn raw_rows(count: u64) -> Vec<(String, String, Vec<u8>, Vec<u8>)> {
    let metadata = serde_json::to_string(&metadata()).unwrap_or_default();
    (0..count)
        .map(|n| {
            (
                serde_json::to_string(&payload(n)).unwrap_or_default(),
                metadata.clone(),
                Uuid::now_v7().as_bytes().to_vec(),
                vec![n as u8; 32],
            )
        })
        .collect()
}

async fn raw_sqlite_inserts(
    path: &Path,
    rows: u64,
    per_transaction: u64,
) -> anyhow::Result<Measure> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("db-wal"));
        let _ = std::fs::remove_file(path.with_extension("db-shm"));
        let mut conn = rusqlite::Connection::open(&path)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))?;
        conn.execute_batch(&format!(
            "PRAGMA synchronous = FULL; {}",
            crate::store::sqlite::MIGRATIONS[0]
        ))?;
        let data = raw_rows(rows);
        let start = Instant::now();
        let mut position = 0i64;
        for chunk in data.chunks(per_transaction as usize) {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                for (d, m, id, hash) in chunk {
                    position += 1;
                    stmt.execute(rusqlite::params![
                        position,
                        format!("bench-{}", position % 16),
                        position / 16,
                        id,
                        "RequestSubmitted",
                        1,
                        d,
                        m,
                        hash
                    ])?;
                }
            }
            tx.commit()?;
        }
        Ok(Measure {
            rate: rows as f64 / start.elapsed().as_secs_f64(),
            p99_ms: 0.0,
            count: rows,
            per_commit: 0.0,
        })
    })
    .await?
}

async fn raw_sqlite_scan(path: &Path) -> anyhow::Result<Measure> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(&path)?;
        let start = Instant::now();
        let mut stmt = conn.prepare(
            "SELECT position, stream, version, id, type, schema_version, data, metadata, hash FROM events ORDER BY position",
        )?;
        let mut rows = stmt.query([])?;
        let mut count = 0u64;
        let mut bytes = 0usize;
        while let Some(row) = rows.next()? {
            count += 1;
            bytes += row.get_ref(6)?.as_str()?.len() + row.get_ref(7)?.as_str()?.len();
        }
        std::hint::black_box(bytes);
        Ok(Measure {
            rate: count as f64 / start.elapsed().as_secs_f64(),
            count,
            ..Measure::default()
        })
    })
    .await?
}

async fn pg_connect(config: &tokio_postgres::Config) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn raw_postgres_schema(config: &tokio_postgres::Config) -> anyhow::Result<()> {
    pg_connect(config)
        .await?
        .batch_execute(
            "CREATE TABLE events (
                position bigserial PRIMARY KEY, stream text NOT NULL, version bigint NOT NULL,
                id uuid NOT NULL UNIQUE, type text NOT NULL, schema_version integer NOT NULL,
                data text NOT NULL, metadata text NOT NULL, hash bytea NOT NULL,
                UNIQUE (stream, version))",
        )
        .await?;
    Ok(())
}

/// `rows` rows in transactions of `per_transaction`, from `connections` connections at once.
async fn raw_postgres_inserts(
    config: &tokio_postgres::Config,
    rows: u64,
    per_transaction: u64,
    connections: usize,
) -> anyhow::Result<Measure> {
    pg_connect(config)
        .await?
        .batch_execute("TRUNCATE events")
        .await?;
    let per_connection = rows / connections as u64;
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push((pg_connect(config).await?, raw_rows(per_connection)));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, (client, data)) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let stmt = client
                .prepare(
                    "INSERT INTO events (stream, version, id, type, schema_version, data, metadata, hash)
                     SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::integer[],
                                          $6::text[], $7::text[], $8::bytea[])",
                )
                .await?;
            let stream = format!("raw-{c}-{}", Uuid::now_v7());
            let mut version = 0i64;
            for chunk in data.chunks(per_transaction as usize) {
                let n = chunk.len();
                let streams = vec![stream.as_str(); n];
                let versions: Vec<i64> = (version..version + n as i64).collect();
                version += n as i64;
                let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
                let types = vec!["RequestSubmitted"; n];
                let schema_versions = vec![1i32; n];
                let data: Vec<&str> = chunk.iter().map(|r| r.0.as_str()).collect();
                let metadata: Vec<&str> = chunk.iter().map(|r| r.1.as_str()).collect();
                let hashes: Vec<&[u8]> = chunk.iter().map(|r| r.3.as_slice()).collect();
                client
                    .execute(
                        &stmt,
                        &[&streams, &versions, &ids, &types, &schema_versions, &data, &metadata, &hashes],
                    )
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let count = per_connection * connections as u64;
    Ok(Measure {
        rate: count as f64 / start.elapsed().as_secs_f64(),
        p99_ms: 0.0,
        count,
        per_commit: 0.0,
    })
}

async fn raw_postgres_scan(config: &tokio_postgres::Config) -> anyhow::Result<Measure> {
    use futures::StreamExt;
    let client = pg_connect(config).await?;
    let start = Instant::now();
    let rows = client
        .query_raw(
            "SELECT position, stream, version, id, type, schema_version, data, metadata, hash FROM events ORDER BY position",
            std::iter::empty::<i32>(),
        )
        .await?;
    futures::pin_mut!(rows);
    let mut count = 0u64;
    let mut bytes = 0usize;
    while let Some(row) = rows.next().await {
        let row = row?;
        count += 1;
        bytes += row.get::<_, &str>(6).len() + row.get::<_, &str>(7).len();
    }
    std::hint::black_box(bytes);
    Ok(Measure {
        rate: count as f64 / start.elapsed().as_secs_f64(),
        p99_ms: 0.0,
        count,
        per_commit: 0.0,
    })
}

/// The process's peak resident set (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn print_table(args: &BenchArgs, figures: &[Figure]) {
    println!(
        "opsledger bench: median of {} runs, {} CPUs",
        args.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| figure | OpsLedger | engine ceiling (same run) | ratio | target |");
    println!("|---|---|---|---|---|");
    for f in figures {
        let ours = if f.ours_note == "MiB" {
            format!("{:.0} MiB", f.ours)
        } else if f.ours_note.is_empty() {
            format!("{} events/s", thousands(f.ours))
        } else {
            format!("{} events/s, {}", thousands(f.ours), f.ours_note)
        };
        let (ceiling, ratio) = match &f.ceiling {
            Some((what, rate)) => (
                format!("{} rows/s ({what})", thousands(*rate)),
                format!("{:.2}", f.ours / rate),
            ),
            None => ("–".into(), "–".into()),
        };
        println!(
            "| {} | {ours} | {ceiling} | {ratio} | {} |",
            f.name, f.target
        );
    }
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
