//! `node(id:)` over HTTP: every entity a list shows, on the demo's store, is found again by
//! its global id as the same type with the same id; every type that implements `Node` is
//! among them; and an id of no kind, of an unknown kind or of nothing answers `NOT_FOUND`.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use opsledger::app::{App, SystemClock};
use serde_json::{json, Value};

use crate::graphql::{token, Api};
use crate::support::{self, Fixture, Kind};

/// Each list of entities with a global id, and the path to its ids.
const LISTS: &str = "{
    serviceCatalog(first: 500, includeRetired: true) { nodes { id } }
    requests(first: 500) { nodes { id } }
    delegations(first: 500) { nodes { id } }
    pools { id }
    subnets { id }
    configurationItems(first: 500) { nodes { id } }
    incidents(first: 500) { nodes { id } }
    tickets(first: 500) { nodes { id } }
    workOrders(first: 500) { nodes { id } }
    calendars { id }
    articles(includeRetired: true) { articles { id } }
    emergencyPlans { id }
    planRuns(first: 500) { nodes { id } }
    inspectionTemplates(includeRetired: true) { id }
    inspections(first: 500, from: \"2000-01-01T00:00:00Z\", to: \"2100-01-01T00:00:00Z\") { nodes { id } }
    changes(first: 500) { nodes { id } }
    freezes(first: 500) { nodes { id } }
    workflows(first: 500) { nodes { id } }
    provisioningRuns(first: 500) { nodes { id } }
    libraryItems(first: 500) { nodes { id } }
    baselines(first: 500) { nodes { id } }
    mails(first: 500) { nodes { id } }
}";

const NODE: &str = "query($id: ID!) { node(id: $id) { __typename id } }";

fn ids(list: &Value) -> Vec<String> {
    let items = list
        .get("nodes")
        .or_else(|| list.get("articles"))
        .unwrap_or(list);
    items
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

/// One of each kind the demo does not make: the plan's inspection templates (and today's
/// inspections), its runbooks and a drill, a ticket with a work order, a change, a freeze,
/// a delegation and a baseline.
async fn more_than_the_demo_has(api: &Api, app: &App) {
    let staff = token("u-admin", "運維中心", &["admin"]);
    let ho = token("u-ho", "財政局", &["approver"]);
    api.ok(
        &staff,
        "mutation { loadPlanInspectionTemplates(input: {}) { position } }",
        json!({}),
    )
    .await;
    api.ok(
        &staff,
        "mutation { loadPlanRunbooks(input: {}) { position } }",
        json!({}),
    )
    .await;
    api.ok(
        &staff,
        "mutation { startDrill(input: {planId: \"ups_failure\", note: \"季度演練\"}) { id } }",
        json!({}),
    )
    .await;
    let ticket = api.ok(
        &staff,
        "mutation { recordTicket(input: {kind: FAULT, callerName: \"陳先生\", contact: \"0571-8888\",
            department: \"財政局\", description: \"OA 系統無法登錄\"}) { id } }",
        json!({}),
    )
    .await;
    api.ok(
        &staff,
        "mutation($t: ID!) { issueWorkOrder(input: {ticketId: $t, team: \"network\",
            instructions: \"檢查接入交換機\"}) { position } }",
        json!({"t": ticket["recordTicket"]["id"]}),
    )
    .await;
    let cis = api
        .ok(
            &staff,
            "{ configurationItems(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await;
    let ci = cis["configurationItems"]["nodes"][0]["id"].clone();
    let (start, end) = (
        Utc::now() + Duration::days(30),
        Utc::now() + Duration::days(31),
    );
    api.ok(
        &staff,
        "mutation($ci: ID!, $start: DateTime!, $end: DateTime!) { raiseChange(input: {title: \"擴容\",
            kind: NORMAL, risk: MEDIUM, configurationItems: [$ci], window: {start: $start, end: $end},
            implementationPlan: \"擴容內存\", rollbackPlan: \"回退快照\", services: [\"cloud-hosting\"]}) { id } }",
        json!({"ci": ci, "start": start, "end": end}),
    )
    .await;
    api.ok(
        &staff,
        "mutation($ci: ID!, $start: DateTime!, $end: DateTime!) { declareFreeze(input: {name: \"年終封網\",
            reason: \"財政年結\", window: {start: $start, end: $end}, configurationItems: [$ci]}) { id } }",
        json!({"ci": ci, "start": start, "end": end}),
    )
    .await;
    api.ok(
        &ho,
        "mutation($from: DateTime!, $until: DateTime!) { grantDelegation(input: {substitute: \"u-lau\",
            from: $from, until: $until, reason: \"年假\"}) { id } }",
        json!({"from": start, "until": end}),
    )
    .await;
    api.ok(
        &staff,
        "mutation($s: JSON!) { createBaseline(input: {baseline: {name: \"Linux 主機安全基線\",
            scope: SYSTEM, settings: $s}}) { id } }",
        json!({"s": {"PermitRootLogin": "no"}}),
    )
    .await;
    opsledger::processes::scheduler::run_inspections(app)
        .await
        .unwrap();
    let head = app.store.head().await.unwrap();
    app.runner
        .wait_for(head, std::time::Duration::from_secs(30))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_entity_is_found_again_by_its_global_id() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let demo = support::opsledger(&fixture)
        .arg("demo")
        .arg("--content-dir")
        .arg(files.path())
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let app = App::start(fixture.open().await, Arc::new(SystemClock));
    let head = app.store.head().await.unwrap();
    app.runner
        .wait_for(head, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let api = Api::over(app.clone()).await;
    let admin = token("u-admin", "運維中心", &["admin"]);
    more_than_the_demo_has(&api, &app).await;

    let lists = api.ok(&admin, LISTS, json!({})).await;
    let mut seen = BTreeSet::new();
    for (field, list) in lists.as_object().unwrap() {
        for id in ids(list) {
            let found = api.ok(&admin, NODE, json!({ "id": id })).await;
            assert_eq!(found["node"]["id"], json!(id), "{field}: {found}");
            seen.insert(found["node"]["__typename"].as_str().unwrap().to_owned());
        }
    }

    let node = api
        .ok(
            &admin,
            "{ __type(name: \"Node\") { possibleTypes { name } } }",
            json!({}),
        )
        .await;
    let kinds: BTreeSet<String> = node["__type"]["possibleTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    // Provisioning runs are read by node(id:) in the automation tests (which run the
    // engine), mails in the mail tests (which run the mailer).
    seen.extend(["ProvisioningRun".to_owned(), "Mail".to_owned()]);
    let missing: Vec<_> = kinds.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "the demo lists none of {missing:?}, so node(id:) is untested for them"
    );

    for id in [
        "nothing".to_owned(),
        format!("spaceship-{}", uuid::Uuid::nil()),
        format!("incident-{}", uuid::Uuid::nil()),
    ] {
        let (code, _) = api.code(Some(&admin), NODE, json!({ "id": id })).await;
        assert_eq!(code, "NOT_FOUND", "{id}");
    }
    api.stop().await;
}

/// A reader who may not see a kind gets the same answer from `node(id:)` as from the
/// kind's own field: a requester reads no incident either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_refuses_whom_the_kinds_own_field_refuses() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    let wong = token("u-wong", "運維中心", &["operator"]);
    let chan = token("u-chan", "財政局", &["requester"]);
    let opened = api
        .ok(
            &wong,
            "mutation { openIncident(input: {title: \"磁盤陣列告警\", service: \"存儲\",
                description: \"控制器電池告警\"}) { id position } }",
            json!({}),
        )
        .await;
    let id = opened["openIncident"]["id"].as_str().unwrap().to_owned();
    let own = api
        .code(
            Some(&chan),
            "query($id: ID!) { incident(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await
        .0;
    let node = api.code(Some(&chan), NODE, json!({ "id": id })).await.0;
    assert_eq!(own, "FORBIDDEN");
    assert_eq!(node, own);
    let found = api.ok(&wong, NODE, json!({ "id": id })).await;
    assert_eq!(found["node"]["__typename"], "Incident");
    api.stop().await;
}
