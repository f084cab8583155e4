//! Change management over HTTP on both backends, on a manual clock: a normal change
//! through the board, approval, a plan amended, implementation (the CMDB updated through
//! CI events) and review; a chargeable change waiting for the product manager and a
//! conflict through the CMDB refusing approval until acknowledged; a freeze holding a
//! change on a VM whose host it names, overridden for an emergency change and listed for
//! compliance; bad input named and nothing written; a CMDB update lost between the
//! change's event and the CI's made by the scheduler, once.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use opsledger::app::{App, Clock, ManualClock};
use opsledger::processes::scheduler::run_change_cmdb;
use opsledger_domain::changes::change::{
    Change as ChangeAggregate, ChangeCommand, CiUpdate, Outcome,
};
use opsledger_domain::kernel::aggregate::Context;
use opsledger_domain::resources::cmdb::AttrValue;
use opsledger_domain::{Actor, ActorKind};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::graphql::{token, Api};
use crate::support::Fixture;

fn utc(h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, min, 0).unwrap()
}

async fn start(fixture: &Fixture, clock: &Arc<ManualClock>) -> (Api, App) {
    let app = App::start(fixture.open().await, clock.clone());
    caught_up(&app).await;
    (Api::over(app.clone()).await, app)
}

async fn caught_up(app: &App) {
    let head = app.store.head().await.unwrap();
    app.runner
        .wait_for(head, std::time::Duration::from_secs(10))
        .await
        .unwrap();
}

/// Moves the manual clock forward to `to`.
fn set(clock: &ManualClock, to: DateTime<Utc>) {
    clock.advance(to - clock.now());
}

async fn head(app: &App) -> u64 {
    app.store.head().await.unwrap()
}

fn engineer() -> String {
    token("u-eng", "運維中心", &["engineer"])
}
fn change_manager() -> String {
    token("u-cm", "運維中心", &["change_manager"])
}
fn operator() -> String {
    token("u-op", "運維中心", &["operator"])
}

const REGISTER: &str = "mutation($type: CiType!, $name: String!, $attrs: JSON) { registerConfigurationItem(input: {type: $type, name: $name,
    attributes: $attrs, department: \"運維中心\"}) { id position } }";
const RELATE: &str = "mutation($from: ID!, $to: ID!) { relateConfigurationItems(input: {ciId: $from, relation: RUNS_ON, targetId: $to}) { position } }";
const RAISE: &str = "mutation($title: String!, $kind: ChangeKind!, $cis: [ID!], $start: DateTime!, $end: DateTime!,
    $plan: String, $rollback: String, $chargeable: Boolean, $key: String) {
    raiseChange(input: {clientMutationId: $key, title: $title, kind: $kind, risk: MEDIUM, configurationItems: $cis,
        window: {start: $start, end: $end}, implementationPlan: $plan, rollbackPlan: $rollback, chargeable: $chargeable,
        services: [\"cloud-hosting\"]}) { id position } }";
const ADVISE: &str = "mutation($id: ID!) { adviseChange(input: {changeId: $id, recommendation: APPROVE, note: \"CAB 同意，注意遷移順序\"}) { position } }";
const APPROVE: &str = "mutation($id: ID!, $ack: [ID!]) { approveChange(input: {changeId: $id, acknowledgedConflicts: $ack}) { position } }";
const START: &str = "mutation($id: ID!, $override: String) { startChange(input: {changeId: $id, overrideFreeze: $override}) { position } }";
const RECORD: &str = "mutation($id: ID!, $updates: [CiUpdateInput!], $key: String) { recordChangeImplementation(input: {clientMutationId: $key,
    changeId: $id, outcome: SUCCEEDED, notes: \"擴容完成，自檢通過\", ciUpdates: $updates}) { position } }";
const CHANGE: &str = "query($id: ID!, $at: Int) { change(id: $id, atLeast: $at) { id status kind risk implementationPlan
    window { start end } configurationItems services chargeable raisedBy
    terms { terms by } advice { recommendation by withdrawnAt } approvals { by preAuthorised withdrawnAt acknowledgedConflicts { change } }
    flaggedConflicts { change configurationItem otherConfigurationItem overlap { start end } }
    currentConflicts { change configurationItem otherConfigurationItem }
    startedBy implementation { outcome ciUpdates { configurationItem attributes } by } review { successful by }
    rejection { reason } cancellation { reason } freezeOverrides { freeze role reason by }
    history { eventType summary } } }";

async fn change(api: &Api, id: &Value, at: u64) -> Value {
    api.ok(&engineer(), CHANGE, json!({"id": id, "at": at}))
        .await["change"]
        .clone()
}

fn position(data: &Value, field: &str) -> u64 {
    data[field]["position"].as_u64().unwrap()
}

/// A host with a VM on it, and a database server apart; their ids.
async fn estate(api: &Api) -> (Value, Value, Value) {
    let op = operator();
    let register = |kind: &'static str, name: &'static str, attrs: Value| {
        let op = op.clone();
        async move {
            api.ok(
                &op,
                REGISTER,
                json!({"type": kind, "name": name, "attrs": attrs}),
            )
            .await["registerConfigurationItem"]["id"]
                .clone()
        }
    };
    let host = register("HOST", "host-07", json!({"memory_gib": 256})).await;
    let vm = register("VIRTUAL_MACHINE", "oa-app-01", json!({"cpu": 4})).await;
    let db = register("DATABASE", "db-01", json!({"version": "14"})).await;
    api.ok(&op, RELATE, json!({"from": vm, "to": host})).await;
    (host, vm, db)
}

fn raise(title: &str, kind: &str, cis: &[&Value], from: DateTime<Utc>, to: DateTime<Utc>) -> Value {
    json!({"title": title, "kind": kind, "cis": cis, "start": from, "end": to,
        "plan": "遷移虛擬機後停機加裝內存", "rollback": "拆除新內存並恢復原配置"})
}

async fn a_normal_change_goes_through_the_board_and_approval_to_the_cmdb(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(utc(1, 0)));
    let (api, app) = start(fixture, &clock).await;
    let (host, _, _) = estate(&api).await;
    let (eng, cm) = (engineer(), change_manager());

    let raised = api
        .ok(
            &eng,
            RAISE,
            raise("host-07 內存擴容", "NORMAL", &[&host], utc(2, 0), utc(4, 0)),
        )
        .await;
    let id = raised["raiseChange"]["id"].clone();
    assert!(id.as_str().unwrap().starts_with("change-"));
    let now = change(&api, &id, position(&raised, "raiseChange")).await;
    assert_eq!(
        (&now["status"], &now["kind"], &now["risk"]),
        (&json!("RAISED"), &json!("NORMAL"), &json!("MEDIUM"))
    );
    assert_eq!(now["configurationItems"], json!([host]));
    assert_eq!(now["raisedBy"], "u-eng");

    // Not approved: starting is refused and writes nothing; approval waits for the board.
    caught_up(&app).await;
    let before = head(&app).await;
    let (code, _) = api.code(Some(&eng), START, json!({"id": id})).await;
    assert_eq!(code, "CONFLICT");
    let (code, error) = api.code(Some(&cm), APPROVE, json!({"id": id})).await;
    assert_eq!(code, "CONFLICT");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("advisory board"),
        "{error}"
    );
    let (code, _) = api.code(Some(&eng), ADVISE, json!({"id": id})).await;
    assert_eq!(code, "FORBIDDEN");
    assert_eq!(head(&app).await, before);

    api.ok(&cm, ADVISE, json!({"id": id})).await;
    let approved = api.ok(&cm, APPROVE, json!({"id": id})).await;
    let now = change(&api, &id, position(&approved, "approveChange")).await;
    assert_eq!(now["status"], "APPROVED");
    assert_eq!(now["approvals"][0]["by"], "u-cm");

    // An amended plan withdraws the approval and the advice: both are given again.
    let amended = api
        .ok(
            &eng,
            "mutation($id: ID!) { amendChangePlan(input: {changeId: $id, implementationPlan: \"分兩批遷移虛擬機後加裝內存\"}) { position } }",
            json!({"id": id}),
        )
        .await;
    let now = change(&api, &id, position(&amended, "amendChangePlan")).await;
    assert_eq!(now["status"], "RAISED");
    assert_eq!(now["implementationPlan"], "分兩批遷移虛擬機後加裝內存");
    assert!(now["approvals"][0]["withdrawnAt"].is_string());
    assert!(now["advice"][0]["withdrawnAt"].is_string());
    api.ok(&cm, ADVISE, json!({"id": id})).await;
    api.ok(&cm, APPROVE, json!({"id": id})).await;

    // Before its window it may not start; within it, it does.
    let (code, error) = api.code(Some(&eng), START, json!({"id": id})).await;
    assert_eq!(code, "CONFLICT");
    assert!(
        error["message"].as_str().unwrap().contains("window starts"),
        "{error}"
    );
    set(&clock, utc(2, 30));
    api.ok(&eng, START, json!({"id": id})).await;

    // A value of the wrong kind is named, and nothing is written.
    caught_up(&app).await;
    let before = head(&app).await;
    let (code, error) = api
        .code(
            Some(&eng),
            RECORD,
            json!({"id": id, "updates": [{"ciId": host, "attributes": {"memory_gib": "512G"}}]}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(
        error["extensions"]["field"],
        "ciUpdates[0].attributes.memory_gib"
    );
    assert_eq!(head(&app).await, before);

    // Implemented: the CMDB takes the attribute through a CI event of the change's own.
    let record = json!({"id": id, "key": "impl-1",
        "updates": [{"ciId": host, "attributes": {"memory_gib": 512}}]});
    let recorded = api.ok(&eng, RECORD, record.clone()).await;
    let at = position(&recorded, "recordChangeImplementation");
    const CI: &str = "query($id: ID!, $at: Int) { configurationItem(id: $id, atLeast: $at) { attributes history { type actor data } } }";
    let ci =
        api.ok(&operator(), CI, json!({"id": host, "at": at})).await["configurationItem"].clone();
    assert_eq!(ci["attributes"]["memory_gib"], 512);
    let last = ci["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "CiAttributesChanged");
    let uuid = id.as_str().unwrap().trim_start_matches("change-");
    assert_eq!(last["actor"], format!("system:change-{uuid}"));
    assert_eq!(
        last["data"]["changes"],
        json!([{"name": "memory_gib", "before": 256, "after": 512}])
    );
    // The same mutation again does nothing twice.
    caught_up(&app).await;
    let before = head(&app).await;
    let again = api.ok(&eng, RECORD, record).await;
    assert_eq!(position(&again, "recordChangeImplementation"), at);
    assert_eq!(head(&app).await, before);

    set(&clock, utc(4, 30));
    let reviewed = api
        .ok(
            &cm,
            "mutation($id: ID!) { reviewChange(input: {changeId: $id, notes: \"按計劃完成，無業務影響\", successful: true}) { position } }",
            json!({"id": id}),
        )
        .await;
    let now = change(&api, &id, position(&reviewed, "reviewChange")).await;
    assert_eq!(now["status"], "CLOSED");
    assert_eq!(now["startedBy"], "u-eng");
    assert_eq!(now["implementation"]["outcome"], "SUCCEEDED");
    assert_eq!(
        now["implementation"]["ciUpdates"],
        json!([{"configurationItem": host, "attributes": {"memory_gib": 512}}])
    );
    assert_eq!(now["review"], json!({"successful": true, "by": "u-cm"}));
    let events: Vec<&str> = now["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "ChangeRaised",
            "ChangeAdvised",
            "ChangeApproved",
            "ChangePlanAmended",
            "ChangeAdvised",
            "ChangeApproved",
            "ImplementationStarted",
            "ChangeImplemented",
            "ChangeReviewed"
        ]
    );
    drop(app);
    api.stop().await;
}

async fn approval_waits_for_terms_and_for_conflicts_through_the_cmdb(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(utc(1, 0)));
    let (api, app) = start(fixture, &clock).await;
    let (host, vm, db) = estate(&api).await;
    let (eng, cm) = (engineer(), change_manager());
    let pm = token("u-pm", "市場部", &["product_manager"]);

    // A change on the host, then a chargeable emergency change on the VM on it, in
    // overlapping windows: the second is flagged as it is raised.
    let on_host = api
        .ok(
            &eng,
            RAISE,
            raise("host-07 固件升級", "NORMAL", &[&host], utc(3, 0), utc(5, 0)),
        )
        .await["raiseChange"]["id"]
        .clone();
    let mut vars = raise("oa-app-01 擴容", "EMERGENCY", &[&vm], utc(2, 0), utc(4, 0));
    vars["chargeable"] = json!(true);
    let raised = api.ok(&eng, RAISE, vars).await;
    let on_vm = raised["raiseChange"]["id"].clone();
    let now = change(&api, &on_vm, position(&raised, "raiseChange")).await;
    let conflict = json!({"change": on_host, "configurationItem": vm, "otherConfigurationItem": host,
        "overlap": {"start": "2026-12-01T03:00:00+00:00", "end": "2026-12-01T04:00:00+00:00"}});
    assert_eq!(now["flaggedConflicts"], json!([conflict]));
    assert_eq!(
        now["currentConflicts"],
        json!([{"change": on_host, "configurationItem": vm, "otherConfigurationItem": host}])
    );
    assert_eq!(now["chargeable"], true);

    // The product manager confirms the terms first; then every conflict must be
    // acknowledged. Each refusal writes nothing.
    caught_up(&app).await;
    let before = head(&app).await;
    let (code, error) = api.code(Some(&cm), APPROVE, json!({"id": on_vm})).await;
    assert_eq!(code, "CONFLICT");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("product manager"),
        "{error}"
    );
    assert_eq!(head(&app).await, before);
    const TERMS: &str = "mutation($id: ID!) { confirmChangeTerms(input: {changeId: $id, terms: \"合同 2026-21：擴容 8 核，每月 600 元\"}) { position } }";
    let (code, _) = api.code(Some(&cm), TERMS, json!({"id": on_vm})).await;
    assert_eq!(code, "FORBIDDEN");
    api.ok(&pm, TERMS, json!({"id": on_vm})).await;
    caught_up(&app).await;
    let before = head(&app).await;
    let (code, error) = api.code(Some(&cm), APPROVE, json!({"id": on_vm})).await;
    assert_eq!(code, "CONFLICT");
    let on_host_uuid = on_host.as_str().unwrap().trim_start_matches("change-");
    assert!(
        error["message"].as_str().unwrap().contains(on_host_uuid),
        "{error}"
    );
    assert_eq!(head(&app).await, before);
    let approved = api
        .ok(&cm, APPROVE, json!({"id": on_vm, "ack": [on_host]}))
        .await;
    let now = change(&api, &on_vm, position(&approved, "approveChange")).await;
    assert_eq!(now["status"], "APPROVED");
    assert_eq!(now["terms"]["by"], "u-pm");
    assert_eq!(
        now["approvals"][0]["acknowledgedConflicts"],
        json!([{"change": on_host}])
    );

    // Moved clear of the other change, the host's change conflicts with nothing; a
    // standard change apart is approved as raised.
    let moved = api
        .ok(
            &eng,
            "mutation($id: ID!) { rescheduleChange(input: {changeId: $id, window: {start: \"2026-12-01T06:00:00Z\", end: \"2026-12-01T08:00:00Z\"}}) { position } }",
            json!({"id": on_host}),
        )
        .await;
    let now = change(&api, &on_host, position(&moved, "rescheduleChange")).await;
    assert_eq!(now["window"]["start"], "2026-12-01T06:00:00+00:00");
    assert_eq!(now["flaggedConflicts"], json!([]));
    assert_eq!(now["currentConflicts"], json!([]));
    let standard = api
        .ok(
            &eng,
            RAISE,
            raise("db-01 例行補丁", "STANDARD", &[&db], utc(2, 0), utc(3, 0)),
        )
        .await;
    let std_id = standard["raiseChange"]["id"].clone();
    let now = change(&api, &std_id, position(&standard, "raiseChange")).await;
    assert_eq!(now["status"], "APPROVED");
    assert_eq!(now["approvals"][0]["preAuthorised"], true);

    // Lists: by CI, by status, and the calendar of a period.
    const LIST: &str = "query($ci: ID, $status: ChangeStatus) { changes(ci: $ci, status: $status) { edges { node { id } } } }";
    let ids = |v: Value| -> Vec<Value> {
        v["changes"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].clone())
            .collect()
    };
    assert_eq!(
        ids(api.ok(&eng, LIST, json!({"ci": vm})).await),
        std::slice::from_ref(&on_vm)
    );
    assert_eq!(
        ids(api.ok(&eng, LIST, json!({"status": "APPROVED"})).await),
        [std_id.clone(), on_vm.clone()]
    );
    const CALENDAR: &str =
        "query($from: DateTime!, $to: DateTime!) { changeCalendar(from: $from, to: $to) { id } }";
    let calendar = api
        .ok(&eng, CALENDAR, json!({"from": utc(3, 30), "to": utc(7, 0)}))
        .await;
    assert_eq!(
        calendar["changeCalendar"],
        json!([{"id": on_vm}, {"id": on_host}])
    );
    let (code, error) = api
        .code(
            Some(&eng),
            CALENDAR,
            json!({"from": utc(7, 0), "to": utc(3, 0)}),
        )
        .await;
    assert_eq!(
        (code.as_str(), &error["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("to"))
    );
    drop(app);
    api.stop().await;
}

const FREEZE: &str = "mutation($cis: [ID!], $start: DateTime!, $end: DateTime!) { declareFreeze(input: {name: \"年終結算封網\",
    reason: \"財政年終結算期間\", window: {start: $start, end: $end}, configurationItems: $cis}) { id position } }";

async fn a_freeze_holds_related_cis_and_an_emergency_override_is_listed(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(utc(1, 0)));
    let (api, app) = start(fixture, &clock).await;
    let (host, vm, _) = estate(&api).await;
    let (eng, cm) = (engineer(), change_manager());

    // A freeze on the host, declared by a change manager only.
    let vars = json!({"cis": [host], "start": utc(1, 0), "end": utc(5, 0)});
    let (code, _) = api.code(Some(&eng), FREEZE, vars.clone()).await;
    assert_eq!(code, "FORBIDDEN");
    let freeze = api.ok(&cm, FREEZE, vars).await["declareFreeze"]["id"].clone();

    // A normal change on the VM on that host, approved, is held by the freeze.
    let normal = api
        .ok(
            &eng,
            RAISE,
            raise("oa-app-01 系統升級", "NORMAL", &[&vm], utc(2, 0), utc(6, 0)),
        )
        .await["raiseChange"]["id"]
        .clone();
    api.ok(&cm, ADVISE, json!({"id": normal})).await;
    api.ok(&cm, APPROVE, json!({"id": normal})).await;
    set(&clock, utc(2, 30));
    caught_up(&app).await;
    let before = head(&app).await;
    let (code, error) = api.code(Some(&eng), START, json!({"id": normal})).await;
    assert_eq!(code, "CONFLICT");
    assert!(
        error["message"].as_str().unwrap().contains("年終結算封網"),
        "{error}"
    );
    // Nor may a normal change override it.
    let (code, _) = api
        .code(
            Some(&cm),
            START,
            json!({"id": normal, "override": "趕進度"}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    assert_eq!(head(&app).await, before);

    // An emergency change on the host: only a change manager overrides, with a reason.
    let emergency = api
        .ok(
            &eng,
            RAISE,
            raise(
                "host-07 故障搶修",
                "EMERGENCY",
                &[&host],
                utc(2, 30),
                utc(4, 0),
            ),
        )
        .await["raiseChange"]["id"]
        .clone();
    api.ok(&cm, APPROVE, json!({"id": emergency, "ack": [normal]}))
        .await;
    let before = head(&app).await;
    let (code, _) = api.code(Some(&eng), START, json!({"id": emergency})).await;
    assert_eq!(code, "CONFLICT");
    let (code, _) = api
        .code(
            Some(&eng),
            START,
            json!({"id": emergency, "override": "故障搶修"}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    let (code, error) = api
        .code(Some(&cm), START, json!({"id": emergency, "override": " "}))
        .await;
    assert_eq!(
        (code.as_str(), &error["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("overrideFreeze"))
    );
    assert_eq!(head(&app).await, before);
    let started = api
        .ok(
            &cm,
            START,
            json!({"id": emergency, "override": "宿主機宕機，業務中斷，須立即搶修"}),
        )
        .await;
    let at = position(&started, "startChange");
    let now = change(&api, &emergency, at).await;
    assert_eq!(now["status"], "IMPLEMENTING");
    assert_eq!(
        now["freezeOverrides"],
        json!([{"freeze": freeze, "role": "change_manager", "reason": "宿主機宕機，業務中斷，須立即搶修", "by": "u-cm"}])
    );

    // Compliance lists every override, for an auditor too.
    let auditor = token("u-audit", "審計署", &["auditor"]);
    const OVERRIDES: &str = "query($at: Int) { freezeOverrides(atLeast: $at) { edges { node { change freeze freezeName role reason by at } } } }";
    let listed = api.ok(&auditor, OVERRIDES, json!({"at": at})).await;
    assert_eq!(
        listed["freezeOverrides"]["edges"],
        json!([{"node": {"change": emergency, "freeze": freeze, "freezeName": "年終結算封網", "role": "change_manager",
            "reason": "宿主機宕機，業務中斷，須立即搶修", "by": "u-cm", "at": "2026-12-01T02:30:00+00:00"}}])
    );

    // Moved earlier, then lifted: the normal change may start.
    api.ok(
        &cm,
        "mutation($id: ID!) { amendFreeze(input: {freezeId: $id, end: \"2026-12-01T04:00:00Z\"}) { position } }",
        json!({"id": freeze}),
    )
    .await;
    let lifted = api
        .ok(
            &cm,
            "mutation($id: ID!) { liftFreeze(input: {freezeId: $id, reason: \"結算提前完成\"}) { position } }",
            json!({"id": freeze}),
        )
        .await;
    const FREEZES: &str = "query($at: Int) { freezes(atLeast: $at) { edges { node { id name window { end } inForce { start end }
        scope { configurationItems everything } amendments { previousEnd end by } lifted { reason by } } } } }";
    let freezes = api
        .ok(
            &eng,
            FREEZES,
            json!({"at": position(&lifted, "liftFreeze")}),
        )
        .await;
    assert_eq!(
        freezes["freezes"]["edges"][0]["node"],
        json!({"id": freeze, "name": "年終結算封網", "window": {"end": "2026-12-01T04:00:00+00:00"},
            "inForce": {"start": "2026-12-01T01:00:00+00:00", "end": "2026-12-01T02:30:00+00:00"},
            "scope": {"configurationItems": [host], "everything": false},
            "amendments": [{"previousEnd": "2026-12-01T05:00:00+00:00", "end": "2026-12-01T04:00:00+00:00", "by": "u-cm"}],
            "lifted": {"reason": "結算提前完成", "by": "u-cm"}})
    );
    let started = api.ok(&eng, START, json!({"id": normal})).await;
    let now = change(&api, &normal, position(&started, "startChange")).await;
    assert_eq!(now["status"], "IMPLEMENTING");
    assert_eq!(now["freezeOverrides"], json!([]));
    drop(app);
    api.stop().await;
}

async fn bad_input_is_named_and_writes_nothing(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(utc(1, 0)));
    let (api, app) = start(fixture, &clock).await;
    let (host, _, _) = estate(&api).await;
    let (eng, cm) = (engineer(), change_manager());
    caught_up(&app).await;
    let before = head(&app).await;

    let backwards = raise("x", "NORMAL", &[&host], utc(4, 0), utc(2, 0));
    let (code, error) = api.code(Some(&eng), RAISE, backwards).await;
    assert_eq!(
        (code.as_str(), &error["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("window.end"))
    );
    let unknown = json!("ci-00000000-0000-0000-0000-000000000009");
    let (code, error) = api
        .code(
            Some(&eng),
            RAISE,
            raise("x", "NORMAL", &[&host, &unknown], utc(2, 0), utc(4, 0)),
        )
        .await;
    assert_eq!(
        (code.as_str(), &error["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("configurationItems[1]"))
    );
    let (code, error) = api
        .code(
            Some(&eng),
            RAISE,
            raise("x", "STANDARD", &[&host], utc(2, 0), utc(4, 0))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.remove("rollback");
                    Value::Object(o)
                })
                .unwrap(),
        )
        .await;
    assert_eq!(
        (code.as_str(), &error["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("rollbackPlan"))
    );
    let requester = token("u-req", "財政局", &["requester"]);
    let (code, _) = api
        .code(
            Some(&requester),
            RAISE,
            raise("x", "NORMAL", &[&host], utc(2, 0), utc(4, 0)),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    let (code, error) = api
        .code(
            Some(&cm),
            FREEZE,
            json!({"cis": [unknown], "start": utc(1, 0), "end": utc(5, 0)}),
        )
        .await;
    assert_eq!(
        (code.as_str(), &error["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("configurationItems[0]"))
    );
    let (code, _) = api
        .code(
            Some(&cm),
            APPROVE,
            json!({"id": "change-00000000-0000-0000-0000-000000000001"}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    assert_eq!(head(&app).await, before);

    // A change rejected, another cancelled: neither takes more commands.
    let rejected = api
        .ok(
            &eng,
            RAISE,
            raise("host-07 重裝系統", "NORMAL", &[&host], utc(2, 0), utc(4, 0)),
        )
        .await["raiseChange"]["id"]
        .clone();
    let reason = "mutation($id: ID!) { rejectChange(input: {changeId: $id, reason: \"風險過高\"}) { position } }";
    let (code, _) = api.code(Some(&eng), reason, json!({"id": rejected})).await;
    assert_eq!(code, "FORBIDDEN");
    let done = api.ok(&cm, reason, json!({"id": rejected})).await;
    let now = change(&api, &rejected, position(&done, "rejectChange")).await;
    assert_eq!(now["status"], "REJECTED");
    assert_eq!(now["rejection"]["reason"], "風險過高");
    let cancelled = api
        .ok(
            &eng,
            RAISE,
            raise("host-07 更換網卡", "NORMAL", &[&host], utc(2, 0), utc(4, 0)),
        )
        .await["raiseChange"]["id"]
        .clone();
    let cancel = "mutation($id: ID!) { cancelChange(input: {changeId: $id, reason: \"業務部門要求延後\"}) { position } }";
    let done = api.ok(&eng, cancel, json!({"id": cancelled})).await;
    let now = change(&api, &cancelled, position(&done, "cancelChange")).await;
    assert_eq!(now["status"], "CANCELLED");
    assert_eq!(now["cancellation"]["reason"], "業務部門要求延後");
    let (code, _) = api.code(Some(&eng), cancel, json!({"id": cancelled})).await;
    assert_eq!(code, "CONFLICT");
    // A cancelled change conflicts with nothing.
    let next = api
        .ok(
            &eng,
            RAISE,
            raise("host-07 固件升級", "NORMAL", &[&host], utc(2, 0), utc(4, 0)),
        )
        .await;
    let now = change(
        &api,
        &next["raiseChange"]["id"],
        position(&next, "raiseChange"),
    )
    .await;
    assert_eq!(now["flaggedConflicts"], json!([]));
    drop(app);
    api.stop().await;
}

fn uuid_of(id: &Value) -> Uuid {
    let id = id.as_str().unwrap();
    id[id.find('-').unwrap() + 1..].parse().unwrap()
}

async fn a_cmdb_update_lost_in_a_crash_is_made_by_the_scheduler_once(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(utc(1, 0)));
    let (api, app) = start(fixture, &clock).await;
    let (_, _, db) = estate(&api).await;
    let (eng, cm) = (engineer(), change_manager());
    let id = api
        .ok(
            &eng,
            RAISE,
            raise("db-01 緊急升級", "EMERGENCY", &[&db], utc(2, 0), utc(4, 0)),
        )
        .await["raiseChange"]["id"]
        .clone();
    api.ok(&cm, APPROVE, json!({"id": id})).await;
    set(&clock, utc(2, 30));
    api.ok(&eng, START, json!({"id": id})).await;

    // The change's event is recorded, and the process stops before the CI's.
    let ctx = Context {
        actor: Actor {
            kind: ActorKind::User,
            id: "u-eng".into(),
            name: None,
            department: Some("運維中心".into()),
            roles: vec!["engineer".into()],
        },
        now: clock.now(),
    };
    let implemented = ChangeCommand::RecordImplementation {
        outcome: Outcome::Succeeded,
        notes: "升級完成".into(),
        ci_updates: vec![CiUpdate {
            ci_id: uuid_of(&db),
            attributes: [("version".to_owned(), AttrValue::Text("15".into()))].into(),
        }],
    };
    app.bus
        .execute::<ChangeAggregate>(uuid_of(&id), implemented, &ctx, Uuid::now_v7())
        .await
        .unwrap();
    caught_up(&app).await;
    const CI: &str = "query($id: ID!, $at: Int) { configurationItem(id: $id, atLeast: $at) { attributes history { type actor } } }";
    let ci = |at: u64| api.ok(&eng, CI, json!({"id": db, "at": at}));
    assert_eq!(
        ci(0).await["configurationItem"]["attributes"]["version"],
        "14"
    );

    // The scheduler makes it, as the change, and a second pass does nothing.
    assert_eq!(run_change_cmdb(&app).await.unwrap(), 1);
    caught_up(&app).await;
    let at = head(&app).await;
    let now = ci(at).await["configurationItem"].clone();
    assert_eq!(now["attributes"]["version"], "15");
    assert_eq!(
        now["history"].as_array().unwrap().last().unwrap()["actor"],
        format!("system:change-{}", uuid_of(&id))
    );
    assert_eq!(run_change_cmdb(&app).await.unwrap(), 0);
    assert_eq!(head(&app).await, at);
    drop(app);
    api.stop().await;
}

on_both_backends!(
    a_normal_change_goes_through_the_board_and_approval_to_the_cmdb,
    approval_waits_for_terms_and_for_conflicts_through_the_cmdb,
    a_freeze_holds_related_cis_and_an_emergency_override_is_listed,
    bad_input_is_named_and_writes_nothing,
    a_cmdb_update_lost_in_a_crash_is_made_by_the_scheduler_once
);
