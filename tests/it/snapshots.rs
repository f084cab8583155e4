//! Snapshots: a restart starts from the last snapshot and replays only the tail, giving
//! exactly the models a replay from position 1 gives; a snapshot of another log, or a
//! damaged one, is ignored. And through the binary: a stop writes one, a start uses it.

use std::process::Stdio;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use opsledger::runtime::runner::{Runner, SnapshotStage};
use opsledger::store::commands::CommandBus;
use opsledger::store::EventStore;
use opsledger_domain::kernel::aggregate::Context;
use opsledger_domain::requests::catalog::{CatalogCommand, CatalogItem};
use opsledger_domain::requests::demo::{two_steps, vm_definition};
use opsledger_domain::{Actor, ActorKind};
use uuid::Uuid;

use crate::support::{opsledger, Fixture, Kind};

const WAIT: Duration = Duration::from_secs(10);

/// The models a runner holds once it reflects `store`'s head, as JSON.
async fn caught_up(runner: &Runner, store: &EventStore) -> serde_json::Value {
    let head = store.head().await.unwrap();
    runner.wait_for(head, WAIT).await.unwrap();
    serde_json::to_value(&*runner.read().await).unwrap()
}

/// One more catalogue item, so the log has a tail after the snapshot.
async fn one_more_event(store: &EventStore) {
    let id = Uuid::now_v7();
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
    let create = CatalogCommand::CreateCatalogItem {
        item_id: id,
        definition: vm_definition(two_steps()),
    };
    CommandBus::new(store.clone())
        .execute::<CatalogItem>(id, create, &ctx, Uuid::now_v7())
        .await
        .unwrap();
}

on_both_backends!(
    a_restart_replays_only_the_tail_after_its_snapshot,
    a_snapshot_taken_while_events_are_appended_is_the_state_at_its_position,
    readers_read_and_the_fold_goes_on_while_a_snapshot_is_written
);

async fn a_restart_replays_only_the_tail_after_its_snapshot(fixture: &Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture.open().await;
    opsledger::tools::demo::load(&CommandBus::new(store.clone()))
        .await
        .unwrap();
    let first = Runner::start(&store, Some(dir.path().to_owned()));
    caught_up(&first, &store).await;
    let head = store.head().await.unwrap();
    assert_eq!(first.save_snapshot().await.unwrap(), Some(head));
    assert_eq!(first.save_snapshot().await.unwrap(), None, "nothing new");
    one_more_event(&store).await;

    let restarted = Runner::start(&store, Some(dir.path().to_owned()));
    let live = caught_up(&restarted, &store).await;
    assert_eq!(restarted.started_from(), head);
    let replayed = caught_up(&Runner::start(&store, None), &store).await;
    assert_eq!(replayed["position"], head + 1);
    assert!(
        live == replayed,
        "the snapshot and its tail differ from a replay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_another_log_or_a_damaged_one_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Fixture::new(Kind::Sqlite).await.unwrap(),
        Fixture::new(Kind::Sqlite).await.unwrap(),
    );
    let one = a.open().await;
    opsledger::tools::demo::load(&CommandBus::new(one.clone()))
        .await
        .unwrap();
    let runner = Runner::start(&one, Some(dir.path().to_owned()));
    caught_up(&runner, &one).await;
    runner.save_snapshot().await.unwrap().unwrap();

    // Another log, as long or longer, whose event at that position differs.
    let other = b.open().await;
    one_more_event(&other).await;
    opsledger::tools::demo::load(&CommandBus::new(other.clone()))
        .await
        .unwrap();
    let elsewhere = Runner::start(&other, Some(dir.path().to_owned()));
    let models = caught_up(&elsewhere, &other).await;
    assert_eq!(elsewhere.started_from(), 0);
    assert!(models == caught_up(&Runner::start(&other, None), &other).await);

    // The first log's own snapshot serves it, until one model's file is cut short.
    let head = one.head().await.unwrap();
    let whole = Runner::start(&one, Some(dir.path().to_owned()));
    caught_up(&whole, &one).await;
    assert_eq!(whole.started_from(), head);
    let file = dir.path().join(format!("at-{head}")).join("requests.json");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let damaged = Runner::start(&one, Some(dir.path().to_owned()));
    let models = caught_up(&damaged, &one).await;
    assert_eq!(damaged.started_from(), 0);
    assert!(models == caught_up(&Runner::start(&one, None), &one).await);
}

/// Stops a child with SIGTERM, as a service manager does (Ctrl-C, SIGINT, works alike).
fn interrupt(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_snapshots_on_stop_and_starts_from_it() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let demo = opsledger(&fixture).arg("demo").output().unwrap();
    assert!(demo.status.success());
    let serve = |log: &str| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = opsledger(&fixture)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        (child, format!("http://127.0.0.1:{port}/readyz"))
    };
    let ready = |url: String| async move {
        let deadline = Instant::now() + WAIT;
        loop {
            let status = reqwest::get(&url).await.map(|r| r.status().as_u16());
            if status.ok() == Some(200) {
                return;
            }
            assert!(Instant::now() < deadline, "{url} never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let logs = tempfile::tempdir().unwrap();
    let first_log = logs.path().join("first.log");
    let (mut first, url) = serve(first_log.to_str().unwrap());
    ready(url).await;
    interrupt(&first);
    assert!(first.wait().unwrap().success());
    let snapshot = fixture.sqlite_file().with_file_name("snapshots");
    assert!(snapshot.join("current.json").exists());

    let second_log = logs.path().join("second.log");
    let (mut second, url) = serve(second_log.to_str().unwrap());
    ready(url).await;
    interrupt(&second);
    assert!(second.wait().unwrap().success());
    let log = std::fs::read_to_string(&second_log).unwrap();
    assert!(
        log.contains("read models restored from the snapshot"),
        "{log}"
    );
}

/// A snapshot that stops at each stage until told to go on: the stages it reached come
/// out of the first receiver; each send on the sender lets it go on once.
fn pause_snapshots(runner: &Runner) -> (mpsc::Receiver<SnapshotStage>, mpsc::Sender<()>) {
    let (reached, stages) = mpsc::channel();
    let (go, proceed) = mpsc::channel::<()>();
    let (reached, proceed) = (Mutex::new(reached), Mutex::new(proceed));
    runner.on_snapshot_stage(Arc::new(move |stage| {
        reached.lock().unwrap().send(stage).unwrap();
        proceed.lock().unwrap().recv().unwrap();
    }));
    (stages, go)
}

/// The next stage a paused snapshot reached (waiting on a blocking thread).
async fn next_stage(stages: &Arc<Mutex<mpsc::Receiver<SnapshotStage>>>) -> SnapshotStage {
    let stages = stages.clone();
    tokio::task::spawn_blocking(move || stages.lock().unwrap().recv_timeout(WAIT).unwrap())
        .await
        .unwrap()
}

/// The models a replay of `store` from position 1 to `to` gives, as JSON.
async fn replayed_to(store: &EventStore, to: u64) -> serde_json::Value {
    let mut models = opsledger_projections::ReadModels::default();
    let mut next = 1;
    while next <= to {
        let page = store.read_all(next, 500).await.unwrap();
        assert!(!page.is_empty(), "the log ends before {to}");
        for event in page.iter().take_while(|e| e.position <= to) {
            opsledger_projections::Projection::apply(&mut models, event);
            next = event.position + 1;
        }
    }
    serde_json::to_value(&models).unwrap()
}

async fn a_snapshot_taken_while_events_are_appended_is_the_state_at_its_position(
    fixture: &Fixture,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture.open().await;
    opsledger::tools::demo::load(&CommandBus::new(store.clone()))
        .await
        .unwrap();
    let runner = Runner::start(&store, Some(dir.path().to_owned()));
    caught_up(&runner, &store).await;
    let (stages, go) = pause_snapshots(&runner);
    let stages = Arc::new(Mutex::new(stages));

    // Appends go on the whole time, and some land at each stage of the snapshot.
    let appending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let appender = {
        let (store, appending) = (store.clone(), appending.clone());
        tokio::spawn(async move {
            while appending.load(std::sync::atomic::Ordering::SeqCst) {
                one_more_event(&store).await;
            }
        })
    };
    let snapshot = {
        let runner = runner.clone();
        tokio::spawn(async move { runner.save_snapshot().await })
    };
    for stage in [SnapshotStage::Holding, SnapshotStage::Writing] {
        assert_eq!(next_stage(&stages).await, stage);
        one_more_event(&store).await;
        one_more_event(&store).await;
        go.send(()).unwrap();
    }
    let at = snapshot.await.unwrap().unwrap().expect("a snapshot");
    appending.store(false, std::sync::atomic::Ordering::SeqCst);
    appender.await.unwrap();
    let head = store.head().await.unwrap();
    assert!(
        at < head,
        "events were appended after the snapshot's position"
    );

    let saved = opsledger::runtime::runner::load_snapshot(dir.path())
        .unwrap()
        .expect("the snapshot");
    assert_eq!(saved.position, at);
    assert_eq!(
        Some(saved.head_hash),
        store.read_all(at, 1).await.unwrap().first().map(|e| e.hash)
    );
    assert!(
        serde_json::to_value(&saved).unwrap() == replayed_to(&store, at).await,
        "the snapshot is not the state a replay to its position gives"
    );

    // And a restart from it, with the tail, is the replay of the whole log.
    let restarted = Runner::start(&store, Some(dir.path().to_owned()));
    let live = caught_up(&restarted, &store).await;
    assert_eq!(restarted.started_from(), at);
    assert!(live == caught_up(&Runner::start(&store, None), &store).await);
}

async fn readers_read_and_the_fold_goes_on_while_a_snapshot_is_written(fixture: &Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture.open().await;
    opsledger::tools::demo::load(&CommandBus::new(store.clone()))
        .await
        .unwrap();
    let runner = Runner::start(&store, Some(dir.path().to_owned()));
    caught_up(&runner, &store).await;
    let at = store.head().await.unwrap();
    let (stages, go) = pause_snapshots(&runner);
    let stages = Arc::new(Mutex::new(stages));
    let snapshot = {
        let runner = runner.clone();
        tokio::spawn(async move { runner.save_snapshot().await })
    };

    // While the snapshot holds the models, an event arrives: the fold must not stand in
    // front of the readers waiting for them. Reads go on (each gives up only after WAIT,
    // a hang), over long enough for the fold to have had the event many times over.
    assert_eq!(next_stage(&stages).await, SnapshotStage::Holding);
    one_more_event(&store).await;
    for _ in 0..50 {
        let read = tokio::time::timeout(WAIT, runner.read()).await;
        assert!(read.is_ok(), "a read waited behind the snapshot");
        drop(read);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(runner.position(), at, "the held models moved");

    // Once the models are let go, the event is folded while the files are still written.
    go.send(()).unwrap();
    assert_eq!(next_stage(&stages).await, SnapshotStage::Writing);
    assert_eq!(runner.wait_for(at + 1, WAIT).await, Ok(()));
    assert!(tokio::time::timeout(WAIT, runner.read()).await.is_ok());
    go.send(()).unwrap();
    assert_eq!(snapshot.await.unwrap().unwrap(), Some(at));
    one_more_event(&store).await;
    assert_eq!(runner.wait_for(at + 2, WAIT).await, Ok(()));
}
