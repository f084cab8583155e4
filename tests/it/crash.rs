//! Real processes: `kill -9` in the middle of a stream of appends, and a live subscription
//! fed by another process.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use opsledger::ExpectedVersion;
use opsledger_domain::NewEvent;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{self, append, open_descriptor, stream, Fixture, Kind, CHILD_STORE_VAR};

/// Events per append in the crash test; a partial batch would show as fewer.
const BATCH: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_9_loses_no_acknowledged_append() {
    kill_9_loses_no_acknowledged_append(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_9_loses_no_acknowledged_append() {
    kill_9_loses_no_acknowledged_append(Kind::Postgres).await;
}

async fn kill_9_loses_no_acknowledged_append(kind: Kind) {
    let Some(fixture) = Fixture::new(kind).await else {
        return;
    };
    let mut child = support::child("crash::child_appends_until_killed", &fixture)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // The reader stays open until after the kill, so the child is still appending then.
    let (acked, _reader) = tokio::task::spawn_blocking(move || {
        let mut acked = Vec::new();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 0 {
            let text = std::mem::take(&mut line);
            let Some(rest) = text.trim_end().strip_prefix("ack ") else {
                continue;
            };
            let f: Vec<&str> = rest.split(' ').collect();
            acked.push((
                f[0].parse::<Uuid>().unwrap(),
                f[1].to_owned(),
                f[2].parse::<u64>().unwrap(),
                f[3].parse::<u64>().unwrap(),
            ));
            if acked.len() >= 300 {
                break;
            }
        }
        (acked, reader)
    })
    .await
    .unwrap();
    child.kill().unwrap(); // SIGKILL, in the middle of the appends that follow
    child.wait().unwrap();
    assert_eq!(
        acked.len(),
        300,
        "the child acknowledged appends before it was killed"
    );

    let store = fixture.open().await;
    let head = store.head().await.unwrap();
    let all = store.read_all(1, head as usize + 1).await.unwrap();
    let mut by_command: HashMap<Uuid, Vec<(u64, &str)>> = HashMap::new();
    for e in &all {
        by_command
            .entry(e.metadata.command_id)
            .or_default()
            .push((e.position, e.stream.as_str()));
    }
    for (command, stream, first, last) in &acked {
        let events = by_command
            .get(command)
            .expect("an acknowledged append is there");
        let positions: Vec<u64> = events.iter().map(|e| e.0).collect();
        assert_eq!(positions, (*first..=*last).collect::<Vec<_>>());
        assert!(events.iter().all(|e| e.1 == stream));
    }
    for (command, events) in &by_command {
        assert_eq!(events.len() as u64, BATCH, "command {command} landed whole");
    }
    let report = store.verify().await.unwrap();
    assert_eq!((report.events, report.broken), (head, None));
    assert!(head >= 300 * BATCH);
}

/// The child of the kill -9 tests: appends from 8 writers until killed, printing each
/// acknowledged append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of the kill -9 tests"]
async fn child_appends_until_killed() {
    let Ok(descriptor) = std::env::var(CHILD_STORE_VAR) else {
        return;
    };
    let store = open_descriptor(&descriptor).await;
    let (tx, mut acks) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..8 {
        let (store, tx) = (store.clone(), tx.clone());
        tokio::spawn(async move {
            let s = stream();
            for i in 0.. {
                let a = append(&s, ExpectedVersion::Any, i * BATCH, BATCH);
                let command = a.metadata.command_id;
                let done = store.append(a).await.unwrap();
                let line = format!(
                    "ack {command} {} {} {}",
                    done.stream, done.first_position, done.last_position
                );
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut out = std::io::stdout();
    while let Some(line) = acks.recv().await {
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Another process's appends reach a subscription through NOTIFY: with the subscription's
/// fallback re-check lengthened to a minute, each of 50 appends (20 ms apart) still arrives
/// within the 10 s allowed for it, which only a wake-up can do. No latency is asserted: a
/// loaded machine may be slow, but never a minute slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_follows_appends_from_another_process() {
    let Some(fixture) = Fixture::new(Kind::Postgres).await else {
        return;
    };
    let store = fixture
        .open()
        .await
        .with_subscription_recheck(Duration::from_secs(60));
    let mut live = store.subscribe(1);
    let mut child = support::child("crash::child_appends_timestamped", &fixture)
        .spawn()
        .unwrap();
    let mut latencies = Vec::new();
    for i in 0..50u64 {
        let event = tokio::time::timeout(Duration::from_secs(10), live.next())
            .await
            .expect("an event from the other process, woken by NOTIFY")
            .unwrap()
            .unwrap();
        let data: Value = event.data().unwrap();
        assert_eq!((event.position, data["i"].as_u64()), (i + 1, Some(i)));
        latencies.push(now_us().saturating_sub(data["sent_us"].as_u64().unwrap()));
    }
    assert!(child.wait().unwrap().success());
    latencies.sort_unstable();
    eprintln!(
        "cross-process wake-up: median {} µs, worst {} µs",
        latencies[25], latencies[49]
    );
}

/// The child of the cross-process test: 50 appends, 20 ms apart, stamped when sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of a cross-process test"]
async fn child_appends_timestamped() {
    let Ok(descriptor) = std::env::var(CHILD_STORE_VAR) else {
        return;
    };
    let store = open_descriptor(&descriptor).await;
    let s = stream();
    for i in 0..50u64 {
        let mut a = append(&s, ExpectedVersion::Any, 0, 0);
        a.events = vec![NewEvent::new("Pinged", 1, &json!({"i": i, "sent_us": now_us()})).unwrap()];
        store.append(a).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
