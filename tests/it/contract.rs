//! The event-store contract: one set of cases, run unchanged against every backend.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use opsledger::store::StoreError;
use opsledger::{Append, ExpectedVersion};
use opsledger_domain::{NewEvent, Upcasters};
use serde_json::{json, Value};

use crate::support::{append, event, metadata, stream, Fixture, Kind};

/// Instantiates every contract case for one backend.
macro_rules! contract_suite {
    ($module:ident, $kind:expr) => {
        mod $module {
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        if let Some(store) = crate::support::Fixture::new($kind).await {
                            super::$name(&store).await;
                        }
                    }
                };
            }
            case!(expected_version_is_enforced);
            case!(a_conflict_appends_nothing);
            case!(the_events_of_one_append_land_together);
            case!(a_rejected_event_rejects_its_whole_append);
            case!(a_repeated_command_id_returns_the_first_outcome);
            case!(a_command_id_reused_for_another_command_is_a_conflict);
            case!(a_chain_lands_in_order_and_breaks_where_a_link_fails);
            case!(a_stream_reads_back_in_version_order);
            case!(read_all_starts_at_any_position);
            case!(a_subscription_catches_up_then_follows_live);
            case!(sixteen_writers_on_one_stream_lose_nothing);
            case!(sixteen_writers_on_their_own_streams_keep_order);
            case!(large_and_non_ascii_payloads_round_trip);
            case!(a_version_1_event_is_read_as_version_2);
            case!(the_log_survives_a_reopen);
            case!(an_export_imports_into_an_empty_store_byte_for_byte);
            case!(a_broken_import_changes_nothing);
            case!(an_import_into_a_store_with_events_is_refused);
        }
    };
}

contract_suite!(sqlite, crate::support::Kind::Sqlite);
contract_suite!(postgres, crate::support::Kind::Postgres);

async fn expected_version_is_enforced(fixture: &Fixture) {
    let store = fixture.open().await;
    let s = stream();
    let first = store
        .append(append(&s, ExpectedVersion::NoStream, 0, 1))
        .await
        .unwrap();
    assert_eq!((first.first_position, first.last_version), (1, 0));

    let err = store
        .append(append(&s, ExpectedVersion::NoStream, 1, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::WrongExpectedVersion {
                actual: Some(0),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_conflict());

    let err = store
        .append(append(&s, ExpectedVersion::Exact(3), 1, 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is at version 0"), "{err}");

    let err = store
        .append(append(&stream(), ExpectedVersion::Exact(0), 1, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WrongExpectedVersion { actual: None, .. }),
        "{err}"
    );

    let second = store
        .append(append(&s, ExpectedVersion::Exact(0), 1, 1))
        .await
        .unwrap();
    assert_eq!(second.last_version, 1);
    let third = store
        .append(append(&s, ExpectedVersion::Any, 2, 2))
        .await
        .unwrap();
    assert_eq!(
        (
            third.first_position,
            third.last_position,
            third.last_version
        ),
        (3, 4, 3)
    );
    let fresh = store
        .append(append(&stream(), ExpectedVersion::Any, 0, 1))
        .await
        .unwrap();
    assert_eq!(fresh.last_version, 0);
}

async fn a_conflict_appends_nothing(fixture: &Fixture) {
    let store = fixture.open().await;
    let s = stream();
    store
        .append(append(&s, ExpectedVersion::NoStream, 0, 2))
        .await
        .unwrap();
    // Submitted together, so that both are decided in one group commit.
    let (ok, conflict) = tokio::join!(
        store.append(append(&stream(), ExpectedVersion::NoStream, 0, 3)),
        store.append(append(&s, ExpectedVersion::Exact(0), 2, 5)),
    );
    ok.unwrap();
    assert!(conflict.unwrap_err().is_conflict());
    assert_eq!(store.head().await.unwrap(), 5);
    assert_eq!(store.read_stream(&s, 0).await.unwrap().len(), 2);
}

async fn the_events_of_one_append_land_together(fixture: &Fixture) {
    let store = fixture.open().await;
    let s = stream();
    let done = store
        .append(append(&s, ExpectedVersion::NoStream, 0, 5))
        .await
        .unwrap();
    assert_eq!(
        (done.first_position, done.last_position, done.last_version),
        (1, 5, 4)
    );
    let events = store.read_all(1, 100).await.unwrap();
    let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    assert_eq!(versions, [0, 1, 2, 3, 4]);
    let command_ids: HashSet<_> = events.iter().map(|e| e.metadata.command_id).collect();
    assert_eq!(command_ids.len(), 1, "one command, one command id");
    assert!(events.iter().all(|e| e.id.get_version_num() == 7));
}

async fn a_rejected_event_rejects_its_whole_append(fixture: &Fixture) {
    let store = fixture.open().await;
    let mut bad = append(&stream(), ExpectedVersion::NoStream, 0, 3);
    bad.events[2].event_type = "Request Submitted!".into();
    let err = store.append(bad).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidAppend(_)), "{err}");
    assert!(err.to_string().contains("Request Submitted!"), "{err}");

    let empty = Append {
        events: vec![],
        ..append(&stream(), ExpectedVersion::Any, 0, 0)
    };
    assert!(store
        .append(empty)
        .await
        .unwrap_err()
        .to_string()
        .contains("no events"));
    let err = store
        .append(append("has space", ExpectedVersion::Any, 0, 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has space"), "{err}");
    assert_eq!(store.head().await.unwrap(), 0);
}

async fn a_repeated_command_id_returns_the_first_outcome(fixture: &Fixture) {
    let store = fixture.open().await;
    let s = stream();
    store
        .append(append(&s, ExpectedVersion::NoStream, 0, 1))
        .await
        .unwrap();
    let command = append(&s, ExpectedVersion::Exact(0), 1, 2);
    let first = store.append(command.clone()).await.unwrap();
    let again = store.append(command.clone()).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(store.head().await.unwrap(), 3);

    // Retried at the same moment: decided in one batch, still written once.
    let fresh = append(&stream(), ExpectedVersion::NoStream, 0, 2);
    let (a, b) = tokio::join!(store.append(fresh.clone()), store.append(fresh.clone()));
    assert_eq!(a.unwrap(), b.unwrap());
    assert_eq!(store.head().await.unwrap(), 5);

    // The record survives a restart.
    drop(store);
    let store = fixture.open().await;
    assert_eq!(store.append(command).await.unwrap(), first);
    assert_eq!(store.head().await.unwrap(), 5);
}

async fn a_command_id_reused_for_another_command_is_a_conflict(fixture: &Fixture) {
    let store = fixture.open().await;
    let s = stream();
    let command = append(&s, ExpectedVersion::NoStream, 0, 1);
    store.append(command.clone()).await.unwrap();
    let other = Append {
        events: vec![event(99)],
        expected: ExpectedVersion::Any,
        ..command
    };
    let err = store.append(other).await.unwrap_err();
    assert!(matches!(err, StoreError::CommandIdReused { .. }), "{err}");
    assert!(err.is_conflict());
    assert_eq!(store.head().await.unwrap(), 1);
}

/// Commands decided one after another on one stream: together they land in order with
/// consecutive positions; when one fails, those decided after it do not land, even where
/// the stream's version would have fitted.
async fn a_chain_lands_in_order_and_breaks_where_a_link_fails(fixture: &Fixture) {
    let store = fixture.open().await;
    let s = stream();
    let link = |expected, from, after: Option<&Append>| Append {
        after: after.map(|a| a.metadata.command_id),
        ..append(&s, expected, from, 1)
    };
    let a = link(ExpectedVersion::NoStream, 0, None);
    let b = link(ExpectedVersion::Exact(0), 1, Some(&a));
    let c = link(ExpectedVersion::Exact(1), 2, Some(&b));
    let landed: Vec<_> = store
        .append_chain(vec![a, b, c.clone()])
        .await
        .into_iter()
        .map(|o| o.unwrap())
        .collect();
    assert_eq!(
        landed
            .iter()
            .map(|l| (l.first_position, l.last_version))
            .collect::<Vec<_>>(),
        vec![(1, 0), (2, 1), (3, 2)]
    );

    // The first link expects a version the stream is not at; the second expects the one
    // it is at, but was decided on what the first would have left.
    let d = link(ExpectedVersion::Exact(7), 3, Some(&c));
    let e = link(ExpectedVersion::Exact(2), 4, Some(&d));
    let after_e = link(ExpectedVersion::Exact(3), 5, Some(&e));
    let outcomes = store.append_chain(vec![d, e.clone(), after_e]).await;
    assert!(matches!(
        outcomes[0],
        Err(StoreError::WrongExpectedVersion { .. })
    ));
    for outcome in &outcomes[1..] {
        let err = outcome.as_ref().unwrap_err();
        assert!(
            matches!(err, StoreError::Unchained { .. }) && err.is_conflict(),
            "{err}"
        );
    }
    assert_eq!(store.read_stream(&s, 0).await.unwrap().len(), 3);
    assert_eq!(store.head().await.unwrap(), 3);
    // A malformed link is refused by itself, and breaks the chain after it.
    let bad = Append {
        events: Vec::new(),
        ..link(ExpectedVersion::Exact(2), 6, Some(&c))
    };
    let next = link(ExpectedVersion::Exact(2), 7, Some(&bad));
    let outcomes = store.append_chain(vec![bad, next]).await;
    assert!(matches!(outcomes[0], Err(StoreError::InvalidAppend(_))));
    assert!(matches!(outcomes[1], Err(StoreError::Unchained { .. })));
    assert_eq!(store.head().await.unwrap(), 3);
}

async fn a_stream_reads_back_in_version_order(fixture: &Fixture) {
    let store = fixture.open().await;
    let (a, b) = (stream(), stream());
    let mut expected = (ExpectedVersion::NoStream, ExpectedVersion::NoStream);
    for i in 0..5 {
        expected.0 = ExpectedVersion::Exact(
            store
                .append(append(&a, expected.0, i, 1))
                .await
                .unwrap()
                .last_version,
        );
        expected.1 = ExpectedVersion::Exact(
            store
                .append(append(&b, expected.1, 100 + i, 1))
                .await
                .unwrap()
                .last_version,
        );
    }
    let events = store.read_stream(&a, 0).await.unwrap();
    let numbers: Vec<u64> = events
        .iter()
        .map(|e| e.data::<Value>().unwrap()["n"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [0, 1, 2, 3, 4]);
    assert!(events.iter().all(|e| e.stream == a));
    let tail: Vec<u64> = store
        .read_stream(&b, 3)
        .await
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(tail, [3, 4]);
    assert!(store.read_stream(&stream(), 0).await.unwrap().is_empty());
    let first = &events[0];
    assert_eq!(first.metadata, {
        let mut m = metadata();
        m.command_id = first.metadata.command_id;
        m.correlation_id = first.metadata.command_id;
        m
    });
}

async fn read_all_starts_at_any_position(fixture: &Fixture) {
    let store = fixture.open().await;
    for i in 0..10 {
        store
            .append(append(&stream(), ExpectedVersion::NoStream, i, 1))
            .await
            .unwrap();
    }
    let page: Vec<u64> = store
        .read_all(4, 3)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(page, [4, 5, 6]);
    assert_eq!(store.read_all(10, 100).await.unwrap().len(), 1);
    assert!(store.read_all(11, 100).await.unwrap().is_empty());
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 10);
}

async fn a_subscription_catches_up_then_follows_live(fixture: &Fixture) {
    let store = fixture.open().await;
    let s = stream();
    store
        .append(append(&s, ExpectedVersion::NoStream, 0, 3))
        .await
        .unwrap();
    let mut live = store.subscribe(2);
    for expected in [2, 3] {
        assert_eq!(live.next().await.unwrap().unwrap().position, expected);
    }
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let sent = Instant::now();
        store
            .append(append(&s, ExpectedVersion::Any, 3 + i, 1))
            .await
            .unwrap();
        let event = tokio::time::timeout(Duration::from_secs(5), live.next())
            .await
            .expect("a live event within 5 s")
            .unwrap()
            .unwrap();
        worst = worst.max(sent.elapsed());
        assert_eq!(event.position, 4 + i);
    }
    // The fallback re-check runs once a second; live delivery must beat it by far.
    assert!(
        worst < Duration::from_millis(250),
        "slowest live delivery took {worst:?}"
    );
}

async fn sixteen_writers_on_one_stream_lose_nothing(fixture: &Fixture) {
    let store = fixture.open().await;
    let s = stream();
    let mut tasks = Vec::new();
    for writer in 0..16u64 {
        let (store, s) = (store.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for i in 0..20u64 {
                loop {
                    let current = store
                        .read_stream(&s, 0)
                        .await
                        .unwrap()
                        .last()
                        .map(|e| e.version);
                    let expected =
                        current.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                    let mut a = append(&s, expected, writer * 1000 + i, 1);
                    a.events[0] = opsledger_domain::NewEvent::new(
                        "Worked",
                        1,
                        &json!({"writer": writer, "i": i}),
                    )
                    .unwrap();
                    match store.append(a).await {
                        Ok(_) => break,
                        Err(e) if e.is_conflict() => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let events = store.read_stream(&s, 0).await.unwrap();
    assert_eq!(events.len(), 320);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.version, i as u64);
        assert_eq!(e.position, i as u64 + 1, "positions are gap-free");
    }
    let mut per_writer: HashMap<u64, Vec<u64>> = HashMap::new();
    for e in &events {
        let d: Value = e.data().unwrap();
        per_writer
            .entry(d["writer"].as_u64().unwrap())
            .or_default()
            .push(d["i"].as_u64().unwrap());
    }
    for (writer, items) in per_writer {
        assert_eq!(
            items,
            (0..20).collect::<Vec<_>>(),
            "writer {writer}: each once, in order"
        );
    }
    assert!(
        conflicts > 0,
        "sixteen writers on one stream should have raced"
    );
    assert_eq!(store.verify().await.unwrap().broken, None);
}

async fn sixteen_writers_on_their_own_streams_keep_order(fixture: &Fixture) {
    let store = fixture.open().await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = stream();
            let mut expected = ExpectedVersion::NoStream;
            for i in 0..40 {
                let done = store.append(append(&s, expected, i * 2, 2)).await.unwrap();
                expected = ExpectedVersion::Exact(done.last_version);
            }
            s
        }));
    }
    let mut streams = HashSet::new();
    for t in tasks {
        streams.insert(t.await.unwrap());
    }
    let all = store.read_all(1, 10_000).await.unwrap();
    assert_eq!(all.len(), 16 * 80);
    let mut next: HashMap<&str, u64> = HashMap::new();
    let mut ids = HashSet::new();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1, "no gaps, no duplicates");
        assert!(streams.contains(&e.stream));
        let n = next.entry(&e.stream).or_default();
        assert_eq!(e.version, *n);
        assert_eq!(
            e.data::<Value>().unwrap()["n"].as_u64().unwrap(),
            *n,
            "in submission order"
        );
        *n += 1;
        assert!(ids.insert(e.id), "event ids are unique");
    }
    let report = store.verify().await.unwrap();
    assert_eq!((report.events, report.broken), (16 * 80, None));
}

async fn large_and_non_ascii_payloads_round_trip(fixture: &Fixture) {
    let store = fixture.open().await;
    let big = "雲".repeat((1 << 20) / 3 + 1); // 1 MiB of three-byte characters
    let odd = "引號 \" 反斜線 \\ 換行 \n tab \t nul \u{0} emoji 🚀 right-to-left עברית";
    let s = stream();
    let events = vec![
        NewEvent::new("DocumentAttached", 1, &json!({"body": big})).unwrap(),
        NewEvent::new("CommentAdded", 1, &json!({"text": odd, "部門": "運維中心"})).unwrap(),
    ];
    let sent: Vec<String> = events.iter().map(|e| e.data.get().to_owned()).collect();
    assert!(sent[0].len() >= 1 << 20);
    let mut a = append(&s, ExpectedVersion::NoStream, 0, 0);
    a.events = events;
    a.metadata.reason = Some("備註：測試".into());
    store.append(a).await.unwrap();
    let read = store.read_stream(&s, 0).await.unwrap();
    assert_eq!(read[0].data, sent[0]);
    assert_eq!(read[1].data, sent[1]);
    assert_eq!(read[1].data::<Value>().unwrap()["text"], odd);
    assert_eq!(read[1].metadata.reason.as_deref(), Some("備註：測試"));
    assert_eq!(store.verify().await.unwrap().broken, None);
}

async fn a_version_1_event_is_read_as_version_2(fixture: &Fixture) {
    let store = fixture.open().await;
    let s = stream();
    let mut a = append(&s, ExpectedVersion::NoStream, 0, 0);
    a.events = vec![
        NewEvent::new("LeaseGranted", 1, &json!({"days": 30})).unwrap(),
        NewEvent::new("LeaseGranted", 2, &json!({"duration": {"days": 60}})).unwrap(),
    ];
    store.append(a).await.unwrap();
    drop(store);

    let upcasters = Upcasters::default().register("LeaseGranted", 1, |v| {
        let days = v["days"].as_u64().ok_or("days missing")?;
        Ok(json!({"duration": {"days": days}}))
    });
    let store = fixture.open_with(upcasters).await;
    let events = store.read_stream(&s, 0).await.unwrap();
    let read: Vec<(u32, Value)> = events
        .iter()
        .map(|e| (e.schema_version, e.data().unwrap()))
        .collect();
    assert_eq!(
        read,
        [
            (2, json!({"duration": {"days": 30}})),
            (2, json!({"duration": {"days": 60}}))
        ]
    );
    let live = store.subscribe(1).next().await.unwrap().unwrap();
    assert_eq!(live.schema_version, 2);
    // Upcasting is a way of reading: the stored bytes and the chain are untouched.
    let stored = store.read_all_stored(1, 1).await.unwrap();
    assert_eq!(
        (stored[0].schema_version, stored[0].data.as_str()),
        (1, r#"{"days":30}"#)
    );
    assert_eq!(store.verify().await.unwrap().broken, None);
}

async fn the_log_survives_a_reopen(fixture: &Fixture) {
    let store = fixture.open().await;
    let s = stream();
    store
        .append(append(&s, ExpectedVersion::NoStream, 0, 3))
        .await
        .unwrap();
    drop(store);
    let store = fixture.open().await;
    assert_eq!(store.head().await.unwrap(), 3);
    let next = store
        .append(append(&s, ExpectedVersion::Exact(2), 3, 2))
        .await
        .unwrap();
    assert_eq!((next.first_position, next.last_version), (4, 4));
    let report = store.verify().await.unwrap();
    assert_eq!((report.events, report.broken), (5, None));
}

async fn export_to_string(store: &opsledger::EventStore) -> Vec<u8> {
    let mut out = Vec::new();
    store.export(1, u64::MAX, &mut out).await.unwrap();
    out
}

async fn fill_mixed(store: &opsledger::EventStore) {
    for i in 0..30u64 {
        let s = format!("incident-{:032x}", i % 4);
        store
            .append(append(&s, ExpectedVersion::Any, i, 1 + i % 3))
            .await
            .unwrap();
    }
}

async fn an_export_imports_into_an_empty_store_byte_for_byte(fixture: &Fixture) {
    let store = fixture.open().await;
    fill_mixed(&store).await;
    let exported = export_to_string(&store).await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &exported).unwrap();

    for kind in [Kind::Sqlite, fixture.kind()] {
        let Some(target) = Fixture::new(kind).await else {
            continue;
        };
        let imported = target.open().await;
        let done = imported.import(file.path()).await.unwrap();
        assert_eq!(done.events, 60);
        assert_eq!(export_to_string(&imported).await, exported, "{kind:?}");
        assert_eq!(imported.verify().await.unwrap().broken, None);
        // Idempotency records come along: a retried command is still recognised.
        let first = imported.read_all(1, 1).await.unwrap().remove(0);
        let retry = Append {
            stream: first.stream.clone(),
            expected: ExpectedVersion::Any,
            events: vec![NewEvent::new(
                first.event_type.clone(),
                1,
                &first.data::<Value>().unwrap(),
            )
            .unwrap()],
            metadata: first.metadata.clone(),
            after: None,
        };
        assert_eq!(imported.append(retry).await.unwrap().first_position, 1);
    }
    let part = {
        let mut out = Vec::new();
        store.export(10, 12, &mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    };
    let positions: Vec<u64> = part
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["position"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(positions, [10, 11, 12]);
}

async fn a_broken_import_changes_nothing(fixture: &Fixture) {
    let source = Fixture::new(Kind::Sqlite).await.unwrap();
    let store = source.open().await;
    fill_mixed(&store).await;
    let exported = String::from_utf8(export_to_string(&store).await).unwrap();
    let mut lines: Vec<String> = exported.lines().map(str::to_owned).collect();
    lines[41] = lines[41].replacen("\"n\":", "\"n\":1", 1);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), lines.join("\n")).unwrap();

    let target = fixture.open().await;
    let err = target.import(file.path()).await.unwrap_err().to_string();
    assert!(err.contains("position 42"), "{err}");
    assert!(err.contains("hash mismatch"), "{err}");
    assert_eq!(target.head().await.unwrap(), 0, "nothing was imported");

    std::fs::write(file.path(), format!("{}\nnot json\n", lines[0])).unwrap();
    let err = target.import(file.path()).await.unwrap_err().to_string();
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(target.head().await.unwrap(), 0);
}

async fn an_import_into_a_store_with_events_is_refused(fixture: &Fixture) {
    let store = fixture.open().await;
    fill_mixed(&store).await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), export_to_string(&store).await).unwrap();
    let err = store.import(file.path()).await.unwrap_err().to_string();
    assert!(err.contains("already holds 60 events"), "{err}");
    assert_eq!(store.head().await.unwrap(), 60);
}
