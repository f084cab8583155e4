//! The scheduler on a manual clock: a step waiting past its time is escalated once, also
//! across passes and restarts.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use opsledger::app::{App, Clock, ManualClock};
use opsledger::processes::scheduler::escalate_due_steps;
use opsledger_domain::kernel::aggregate::Context;
use opsledger_domain::requests::demo::{new_vm, two_steps, vm_definition};
use opsledger_domain::requests::request::{CatalogSnapshot, Request, RequestCommand};
use opsledger_domain::{Actor, ActorKind};
use uuid::Uuid;

use crate::support::{Fixture, Kind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_waiting_past_its_time_is_escalated_once() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap(),
    ));
    let app = App::start(fixture.open().await, clock.clone());
    let request = Uuid::now_v7();
    let submit = RequestCommand::SubmitRequest {
        request_id: request,
        item: CatalogSnapshot {
            item_id: Uuid::now_v7(),
            version: 1,
            definition: vm_definition(two_steps()),
            retired: false,
        },
        details: new_vm(4, 1, "電子公文交換"),
        over_quota: None,
    };
    let chan = Actor {
        kind: ActorKind::User,
        id: "u-chan".into(),
        name: None,
        department: Some("財政局".into()),
        roles: vec!["requester".into()],
    };
    let done = app
        .bus
        .execute::<Request>(
            request,
            submit,
            &Context {
                actor: chan,
                now: clock.now(),
            },
            Uuid::now_v7(),
        )
        .await
        .unwrap();
    app.runner
        .wait_for(done.last_position, Duration::from_secs(5))
        .await
        .unwrap();

    clock.advance(chrono::Duration::hours(23));
    assert_eq!(
        escalate_due_steps(&app).await.unwrap(),
        0,
        "the department step escalates after 24 hours"
    );
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(escalate_due_steps(&app).await.unwrap(), 1);
    let head = app.store.head().await.unwrap();
    app.runner
        .wait_for(head, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        escalate_due_steps(&app).await.unwrap(),
        0,
        "a second pass does nothing"
    );

    let restarted = App::start(fixture.open().await, clock.clone());
    restarted
        .runner
        .wait_for(head, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        escalate_due_steps(&restarted).await.unwrap(),
        0,
        "nor does a restart"
    );
    let events = app
        .store
        .read_stream(&format!("request-{request}"), 0)
        .await
        .unwrap();
    let escalations: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "StepEscalated")
        .collect();
    assert_eq!(escalations.len(), 1);
    assert_eq!(escalations[0].metadata.actor.id, "system:scheduler");
    assert!(
        escalations[0].data.contains(r#""waited_hours":25"#),
        "{}",
        escalations[0].data
    );
}
