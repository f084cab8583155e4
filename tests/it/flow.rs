//! The first flow through the command bus and the projection runner, on both backends:
//! catalogue → request → approval chain → audit trail and compliance.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use opsledger::runtime::runner::Runner;
use opsledger::store::commands::{CommandBus, CommandError};
use opsledger::{Append, ExpectedVersion};
use opsledger_domain::kernel::aggregate::{Context, DomainEvent};
use opsledger_domain::requests::catalog::{CatalogCommand, CatalogItem};
use opsledger_domain::requests::demo::{new_vm, two_steps, vm_definition};
use opsledger_domain::requests::request::{
    CatalogSnapshot, Decider, Request, RequestCommand, RequestError, RequestEvent, RequestStatus,
};
use opsledger_domain::{Actor, ActorKind, Metadata};
use opsledger_projections::audit::AuditFilter;
use opsledger_projections::requests::compliance::FindingKind;
use uuid::Uuid;

use crate::support::{Fixture, Kind};

fn person(id: &str, department: &str, roles: &[&str]) -> Actor {
    Actor {
        kind: ActorKind::User,
        id: id.into(),
        name: None,
        department: Some(department.into()),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn ctx(actor: Actor) -> Context {
    Context {
        actor,
        now: Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap(),
    }
}

fn chan() -> Actor {
    person("u-chan", "財政局", &["requester"])
}

fn submit(item_id: Uuid, request_id: Uuid) -> RequestCommand {
    RequestCommand::SubmitRequest {
        request_id,
        item: CatalogSnapshot {
            item_id,
            version: 1,
            definition: vm_definition(two_steps()),
            retired: false,
        },
        details: new_vm(4, 1, "電子公文交換"),
        over_quota: None,
    }
}

fn approve(step: usize) -> RequestCommand {
    RequestCommand::ApproveRequest {
        step,
        comment: Some("同意".into()),
        on_behalf_of: None,
    }
}

on_both_backends!(
    a_request_goes_through_its_chain_and_the_views_follow,
    two_approvers_at_once_exactly_one_wins,
    an_imported_history_with_violations_shows_them_as_findings
);

async fn a_request_goes_through_its_chain_and_the_views_follow(fixture: &Fixture) {
    let store = fixture.open().await;
    let bus = CommandBus::new(store.clone());
    let runner = Runner::start(&store, None);
    let (item, request) = (Uuid::now_v7(), Uuid::now_v7());
    let admin = person("u-lam", "運維中心", &["catalog_admin"]);
    let create = CatalogCommand::CreateCatalogItem {
        item_id: item,
        definition: vm_definition(two_steps()),
    };
    bus.execute::<CatalogItem>(item, create, &ctx(admin), Uuid::now_v7())
        .await
        .unwrap();

    let command_id = Uuid::now_v7();
    let first = bus
        .execute::<Request>(request, submit(item, request), &ctx(chan()), command_id)
        .await
        .unwrap();
    let retried = bus
        .execute::<Request>(request, submit(item, request), &ctx(chan()), command_id)
        .await
        .unwrap();
    assert_eq!(
        first, retried,
        "a retried command id returns the first outcome"
    );
    let again = bus
        .execute::<Request>(request, submit(item, request), &ctx(chan()), Uuid::now_v7())
        .await;
    assert!(matches!(
        again,
        Err(CommandError::Domain(RequestError::AlreadySubmitted))
    ));

    let self_approval = bus
        .execute::<Request>(
            request,
            approve(0),
            &ctx(person("u-chan", "財政局", &["requester", "approver"])),
            Uuid::now_v7(),
        )
        .await;
    assert!(matches!(
        self_approval,
        Err(CommandError::Domain(RequestError::SelfApproval))
    ));
    bus.execute::<Request>(
        request,
        approve(0),
        &ctx(person("u-ho", "財政局", &["approver"])),
        Uuid::now_v7(),
    )
    .await
    .unwrap();
    let last = bus
        .execute::<Request>(
            request,
            approve(1),
            &ctx(person("u-wong", "運維中心", &["operator"])),
            Uuid::now_v7(),
        )
        .await
        .unwrap();

    runner
        .wait_for(last.last_position, Duration::from_secs(5))
        .await
        .unwrap();
    let models = runner.read().await;
    assert_eq!(
        models.requests.get(request).unwrap().status(),
        RequestStatus::Approved
    );
    let trail: Vec<String> = models
        .audit
        .entries(&AuditFilter {
            stream: Some(format!("request-{request}")),
            ..AuditFilter::default()
        })
        .map(|e| format!("{} {}", e.event_type, e.actor))
        .collect();
    assert_eq!(
        trail,
        [
            "RequestSubmitted u-chan",
            "ApprovalGranted u-ho",
            "StepCompleted u-ho",
            "ApprovalGranted u-wong",
            "StepCompleted u-wong",
            "RequestApproved u-wong",
        ]
    );
    assert_eq!(models.compliance.findings(), []);
}

async fn two_approvers_at_once_exactly_one_wins(fixture: &Fixture) {
    let store = fixture.open().await;
    let bus = CommandBus::new(store.clone());
    let (item, request) = (Uuid::now_v7(), Uuid::now_v7());
    bus.execute::<Request>(request, submit(item, request), &ctx(chan()), Uuid::now_v7())
        .await
        .unwrap();
    let approvers = ["u-ho", "u-ip", "u-ko", "u-mak"];
    let results = futures::future::join_all(approvers.iter().map(|id| {
        let bus = bus.clone();
        let actor = person(id, "財政局", &["approver"]);
        async move {
            bus.execute::<Request>(request, approve(0), &ctx(actor), Uuid::now_v7())
                .await
        }
    }))
    .await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    for lost in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(
                lost,
                CommandError::Conflict(_)
                    | CommandError::Domain(RequestError::NotTheOpenStep { .. })
            ),
            "{lost:?}"
        );
    }
    let history = store
        .read_stream(&format!("request-{request}"), 0)
        .await
        .unwrap();
    let grants = history
        .iter()
        .filter(|e| e.event_type == "ApprovalGranted")
        .count();
    assert_eq!(grants, 1);
}

/// Appends events no command would decide, straight to the log.
async fn craft(store: &opsledger::EventStore, stream: &str, by: &Actor, events: &[RequestEvent]) {
    let append = Append {
        stream: stream.into(),
        expected: ExpectedVersion::Any,
        events: events.iter().map(|e| e.to_new_event().unwrap()).collect(),
        metadata: Metadata::new(
            by.clone(),
            Uuid::now_v7(),
            Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap(),
        ),
        after: None,
    };
    store.append(append).await.unwrap();
}

async fn an_imported_history_with_violations_shows_them_as_findings(fixture: &Fixture) {
    let source = Fixture::new(Kind::Sqlite).await.unwrap();
    let store = source.open().await;
    let bus = CommandBus::new(store.clone());
    let (item, request) = (Uuid::now_v7(), Uuid::now_v7());
    bus.execute::<Request>(request, submit(item, request), &ctx(chan()), Uuid::now_v7())
        .await
        .unwrap();
    let stream = format!("request-{request}");
    let decider = |a: &Actor| Decider {
        user: a.id.clone(),
        roles: a.roles.clone(),
        on_behalf_of: None,
    };
    craft(
        &store,
        &stream,
        &chan(),
        &[
            RequestEvent::ApprovalGranted {
                step: 0,
                decider: decider(&chan()),
                comment: None,
            },
            RequestEvent::StepCompleted {
                step: 0,
                at: Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap(),
            },
        ],
    )
    .await;
    let wong = person("u-wong", "運維中心", &["operator"]);
    craft(
        &store,
        &stream,
        &wong,
        &[RequestEvent::RequestFulfilled {
            note: "未經運維審批".into(),
        }],
    )
    .await;
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut exported = Vec::new();
    store.export(1, u64::MAX, &mut exported).await.unwrap();
    std::fs::write(file.path(), exported).unwrap();

    let target = fixture.open().await;
    let imported = target.import(file.path()).await.unwrap();
    let runner = Runner::start(&target, None);
    runner
        .wait_for(imported.last_position, Duration::from_secs(5))
        .await
        .unwrap();
    let models = runner.read().await;
    let kinds: Vec<FindingKind> = models
        .compliance
        .findings()
        .iter()
        .map(|f| f.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            FindingKind::ApprovedByRequester,
            FindingKind::ApproverLackedRole,
            FindingKind::FulfilledWithoutApproval
        ]
    );
}
