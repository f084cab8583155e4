//! Service operations over HTTP on both backends, on a manual clock: the desk's flow with
//! an unconfirmed callback and the chargeable-change path; SLA clocks across a weekend, a
//! holiday, a pause, a severity change, a calendar edit and restarts, each warning and
//! breach recorded once and a replay showing the same clocks; an incident escalated,
//! reported and turned into a knowledge article.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use opsledger::app::{App, ManualClock};
use opsledger::processes::scheduler::{run_sla, SlaPass};
use serde_json::{json, Value};

use crate::graphql::{token, Api};
use crate::support::Fixture;

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
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

/// One SLA pass once the models show everything written, then again caught up.
async fn sla_pass(app: &App) -> SlaPass {
    caught_up(app).await;
    let pass = run_sla(app).await.unwrap();
    caught_up(app).await;
    pass
}

fn desk() -> String {
    token("u-desk", "運維中心", &["service_desk"])
}
fn engineer() -> String {
    token("u-eng", "運維中心", &["engineer"])
}
fn operator() -> String {
    token("u-op", "運維中心", &["operator"])
}
fn manager() -> String {
    token("u-mgr", "運維中心", &["operations_manager"])
}

const SET_QUOTA: &str = "mutation { setQuota(input: {department: \"財政局\", limit: {cpuCores: 100, memoryGib: 100, storageGib: 100}}) { position } }";
const RECORD: &str = "mutation($kind: TicketKind!, $dept: String!, $charge: Boolean) { recordTicket(input: {kind: $kind,
    callerName: \"陳先生\", contact: \"0571-8888\", department: $dept, description: \"OA 系統無法登錄\", chargeable: $charge}) { id position } }";
const TICKET: &str =
    "query($id: ID!, $at: Int) { ticket(id: $id, atLeast: $at) { status resolution terms
    workOrders { id status team follows result log { text } } callbacks { confirmed } } }";
const ISSUE: &str = "mutation($t: ID!) { issueWorkOrder(input: {ticketId: $t, team: \"network\", instructions: \"檢查接入交換機\"}) { position } }";
const WORK: &str = "mutation($w: ID!, $text: String) { accept: acceptWorkOrder(input: {workOrderId: $w}) { position }
    log: logWorkOrder(input: {workOrderId: $w, text: \"端口 3 異常\"}) { position }
    done: completeWorkOrder(input: {workOrderId: $w, text: $text}) { position } }";
const CALL_BACK: &str = "mutation($t: ID!, $ok: Boolean!) { callBack(input: {ticketId: $t, confirmed: $ok, note: \"已回訪\"}) { position } }";

async fn ticket(api: &Api, id: &str, at: u64) -> Value {
    api.ok(&desk(), TICKET, json!({"id": id, "at": at})).await["ticket"].clone()
}

async fn the_desk_flow_reopens_and_a_chargeable_change_waits_for_terms(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(utc(2026, 12, 1, 1, 0)));
    let (api, app) = start(fixture, &clock).await;
    api.ok(&operator(), SET_QUOTA, json!({})).await;
    caught_up(&app).await;

    // A customer no record knows is refused, naming the field, and nothing is written.
    let (code, error) = api
        .code(
            Some(&desk()),
            RECORD,
            json!({"kind": "FAULT", "dept": "無此部門"}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(error["extensions"]["field"], "department");

    let recorded = api
        .ok(&desk(), RECORD, json!({"kind": "FAULT", "dept": "財政局"}))
        .await;
    let t = recorded["recordTicket"]["id"].as_str().unwrap().to_owned();
    let w = api.ok(&desk(), ISSUE, json!({"t": t})).await;
    let at = w["issueWorkOrder"]["position"].as_u64().unwrap();
    let first = ticket(&api, &t, at).await["workOrders"][0]["id"].clone();
    // First line cannot do second line's work.
    let (code, _) = api
        .code(Some(&desk()), WORK, json!({"w": first, "text": "x"}))
        .await;
    assert_eq!(code, "FORBIDDEN");
    let done = api
        .ok(&engineer(), WORK, json!({"w": first, "text": "重啟了端口"}))
        .await;
    let at = done["done"]["position"].as_u64().unwrap();
    assert_eq!(ticket(&api, &t, at).await["status"], "AWAITING_CALLBACK");

    // The user says it still fails: a new work order follows the first.
    let called = api
        .ok(&desk(), CALL_BACK, json!({"t": t, "ok": false}))
        .await;
    let at = called["callBack"]["position"].as_u64().unwrap();
    let now = ticket(&api, &t, at).await;
    assert_eq!(now["status"], "WITH_SECOND_LINE");
    let second = now["workOrders"][1].clone();
    assert_eq!(second["follows"], first);
    assert_eq!(second["team"], "network");
    let done = api
        .ok(
            &engineer(),
            WORK,
            json!({"w": second["id"], "text": "更換了網線"}),
        )
        .await;
    let called = api
        .ok(&desk(), CALL_BACK, json!({"t": t, "ok": true}))
        .await;
    let at = called["callBack"]["position"].as_u64().unwrap();
    assert!(at > done["done"]["position"].as_u64().unwrap());
    let closed = ticket(&api, &t, at).await;
    assert_eq!(closed["status"], "CLOSED");
    assert_eq!(closed["resolution"], "更換了網線");
    assert_eq!(closed["callbacks"].as_array().unwrap().len(), 2);

    // A chargeable change: the desk may not issue it, the product manager only after
    // confirming the terms; the confirmed change updates the customer record.
    let pm = token("u-pm", "市場部", &["product_manager"]);
    let recorded = api
        .ok(
            &desk(),
            RECORD,
            json!({"kind": "CHANGE", "dept": "財政局", "charge": true}),
        )
        .await;
    let c = recorded["recordTicket"]["id"].as_str().unwrap().to_owned();
    let (code, _) = api.code(Some(&desk()), ISSUE, json!({"t": c})).await;
    assert_eq!(code, "FORBIDDEN");
    let (code, error) = api.code(Some(&pm), ISSUE, json!({"t": c})).await;
    assert_eq!(code, "CONFLICT", "{error}");
    const TERMS: &str = "mutation($t: ID!) { confirmTicketTerms(input: {ticketId: $t, text: \"合同 2026-17：擴容 100GB，每月 300 元\"}) { position } }";
    api.ok(&pm, TERMS, json!({"t": c})).await;
    let issued = api.ok(&pm, ISSUE, json!({"t": c})).await;
    let at = issued["issueWorkOrder"]["position"].as_u64().unwrap();
    let order = ticket(&api, &c, at).await["workOrders"][0]["id"].clone();
    api.ok(
        &engineer(),
        WORK,
        json!({"w": order, "text": "數據盤擴容 100GB"}),
    )
    .await;
    let called = api
        .ok(&desk(), CALL_BACK, json!({"t": c, "ok": true}))
        .await;
    let at = called["callBack"]["position"].as_u64().unwrap();
    let record = api
        .ok(
            &desk(),
            "query($at: Int) { customerRecord(department: \"財政局\", atLeast: $at) { text by } }",
            json!({"at": at}),
        )
        .await;
    assert_eq!(
        record["customerRecord"],
        json!([{"text": "數據盤擴容 100GB", "by": "u-desk"}])
    );
    // Product managers were told; the desk heard of each hand-back.
    let notices = "{ notifications(first: 50) { edges { node { kind } } } }";
    let kinds = |v: Value| -> Vec<String> {
        v["notifications"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        kinds(api.ok(&pm, notices, json!({})).await),
        ["TERMS_NEEDED"]
    );
    assert_eq!(
        kinds(api.ok(&desk(), notices, json!({})).await),
        ["WORK_ORDER_HANDED_BACK"; 3]
    );
    drop(app);
    api.stop().await;
}

const OFFICE: &str = "mutation($name: String!, $id: ID, $always: Boolean) { setCalendar(input: {calendarId: $id, name: $name, timeZone: \"Asia/Shanghai\", alwaysOpen: $always,
    hours: [{day: MONDAY, intervals: [\"09:00-12:00\", \"13:00-18:00\"]}, {day: TUESDAY, intervals: [\"09:00-12:00\", \"13:00-18:00\"]},
            {day: WEDNESDAY, intervals: [\"09:00-12:00\", \"13:00-18:00\"]}, {day: THURSDAY, intervals: [\"09:00-12:00\", \"13:00-18:00\"]},
            {day: FRIDAY, intervals: [\"09:00-12:00\", \"13:00-18:00\"]}],
    holidays: [\"2026-12-25\"]}) { id position } }";
const POLICY: &str = "mutation($service: String!, $cal: ID!) { setSlaPolicy(input: {service: $service, calendarId: $cal, warnPercent: 75, targets: [
    {severity: GENERAL, responseMinutes: 60, resolutionMinutes: 480},
    {severity: IMPORTANT, responseMinutes: 30, resolutionMinutes: 240},
    {severity: URGENT, responseMinutes: 15, resolutionMinutes: 60}]}) { position } }";
const OPEN: &str = "mutation($title: String!, $service: String!, $importance: Importance, $cis: [ID!]) { openIncident(input: {title: $title,
    description: \"OA 系統登錄緩慢，部分用戶無法登錄\", service: $service, importance: $importance, configurationItems: $cis}) { id position } }";
const SLA: &str = "query($id: ID!, $at: Int) { incident(id: $id, atLeast: $at) { severity warningLevel status
    sla { clock targetMinutes elapsedMinutes warningDueAt breachDueAt warnedAt breachedAt paused running met }
    timeline { eventType summary } } }";

async fn incident(api: &Api, id: &str, at: u64) -> Value {
    api.ok(&desk(), SLA, json!({"id": id, "at": at})).await["incident"].clone()
}

fn clock_of(incident: &Value, kind: &str) -> Value {
    incident["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["clock"] == kind)
        .cloned()
        .unwrap()
}

async fn sla_clocks_follow_calendars_pauses_and_changes_exactly(fixture: &Fixture) {
    // Thursday 2026-12-24 16:00 in Shanghai; Friday the 25th is a holiday.
    let clock = Arc::new(ManualClock::new(utc(2026, 12, 24, 8, 0)));
    let (api, app) = start(fixture, &clock).await;
    let op = operator();
    let office =
        api.ok(&op, OFFICE, json!({"name": "辦公時間"})).await["setCalendar"]["id"].clone();
    let portal =
        api.ok(&op, OFFICE, json!({"name": "門戶辦公時間"})).await["setCalendar"]["id"].clone();
    api.ok(&op, POLICY, json!({"service": "oa", "cal": office}))
        .await;
    api.ok(&op, POLICY, json!({"service": "portal", "cal": portal}))
        .await;
    // A policy on a calendar that does not exist is refused.
    let (code, error) = api
        .code(
            Some(&op),
            POLICY,
            json!({"service": "x", "cal": "calendar-00000000-0000-0000-0000-000000000001"}),
        )
        .await;
    assert_eq!(
        (code.as_str(), &error["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("calendarId"))
    );

    let open = |title: &str, service: &str, importance: &str| json!({"title": title, "service": service, "importance": importance});
    let a = api
        .ok(&desk(), OPEN, open("OA 登錄失敗", "oa", "IMPORTANT"))
        .await["openIncident"]
        .clone();
    let b = api
        .ok(&desk(), OPEN, open("OA 報表緩慢", "oa", "GENERAL"))
        .await["openIncident"]
        .clone();
    let c = api
        .ok(&desk(), OPEN, open("門戶無法訪問", "portal", "GENERAL"))
        .await["openIncident"]
        .clone();
    let (a, b, c) = (
        a["id"].as_str().unwrap().to_owned(),
        b["id"].as_str().unwrap().to_owned(),
        c["id"].as_str().unwrap().to_owned(),
    );
    let at = |v: &Value, m: &str| v[m]["position"].as_u64().unwrap();

    // A (important): 4 open hours from Thursday 16:00 = 2 h on Thursday, none on the
    // holiday or the weekend, 2 h on Monday: due Monday 11:00 (03:00 UTC).
    let now = incident(&api, &a, 0).await;
    assert_eq!(now["severity"], "IMPORTANT");
    let resolution = clock_of(&now, "RESOLUTION");
    assert_eq!(resolution["breachDueAt"], "2026-12-28T03:00:00+00:00");
    assert_eq!(resolution["warningDueAt"], "2026-12-28T02:00:00+00:00");
    assert_eq!(
        clock_of(&now, "RESPONSE")["breachDueAt"],
        "2026-12-24T08:30:00+00:00"
    );

    // 16:25: A's response clock passed 75% (22.5 min) — one warning, at 16:22:30.
    clock.advance(Duration::minutes(25));
    let pass = sla_pass(&app).await;
    assert_eq!(
        pass,
        SlaPass {
            warnings: 1,
            breaches: 0
        }
    );
    let ack = api
        .ok(
            &engineer(),
            "mutation($id: ID!) { acknowledgeIncident(input: {incidentId: $id, note: \"已接手\"}) { position } }",
            json!({"id": a}),
        )
        .await;
    let now = incident(&api, &a, at(&ack, "acknowledgeIncident")).await;
    let response = clock_of(&now, "RESPONSE");
    assert_eq!(response["warnedAt"], "2026-12-24T08:22:30+00:00");
    assert_eq!(
        (response["met"].clone(), response["running"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(
        now["warningLevel"], 2,
        "the SLA warning escalates to level 2"
    );

    // 17:00: A waits on the customer until Monday 09:30; B (general, 8 h) is found to be
    // urgent (1 h) after one open hour: its resolution breach falls at that moment.
    clock.advance(Duration::minutes(35));
    const PAUSE: &str = "mutation($id: ID!) { pauseIncident(input: {incidentId: $id, reason: WAITING_ON_CUSTOMER, note: \"等待用戶提供日誌\"}) { position } }";
    api.ok(&engineer(), PAUSE, json!({"id": a})).await;
    const REASSESS: &str = "mutation($id: ID!) { reassessIncident(input: {incidentId: $id, importance: ESPECIALLY_IMPORTANT, loss: SERIOUS, socialImpact: MAJOR, reason: \"影響全市公文流轉\"}) { position } }";
    let r = api.ok(&engineer(), REASSESS, json!({"id": b})).await;
    let now = incident(&api, &b, at(&r, "reassessIncident")).await;
    assert_eq!(now["severity"], "URGENT");
    assert_eq!(
        clock_of(&now, "RESOLUTION")["breachDueAt"],
        "2026-12-24T09:00:00+00:00"
    );
    // The portal's calendar becomes 7×24 at 17:00: C's hour before counted on office
    // hours, the 7 left run on the wall clock: due at midnight (16:00 UTC).
    let edit = api
        .ok(
            &op,
            OFFICE,
            json!({"name": "門戶 7×24", "id": portal, "always": true}),
        )
        .await;
    let now = incident(&api, &c, at(&edit, "setCalendar")).await;
    let resolution = clock_of(&now, "RESOLUTION");
    assert_eq!(resolution["elapsedMinutes"], 60);
    assert_eq!(resolution["breachDueAt"], "2026-12-24T16:00:00+00:00");

    let pass = sla_pass(&app).await;
    // B's and C's response clocks (general: 60 min) warned at 16:45 and breached at
    // 17:00; B's resolution clock breached the moment it became urgent, without a
    // warning at the same instant; A's nothing.
    assert_eq!(
        pass,
        SlaPass {
            warnings: 2,
            breaches: 3
        }
    );
    let now = incident(&api, &b, 0).await;
    assert_eq!(
        clock_of(&now, "RESOLUTION")["breachedAt"],
        "2026-12-24T09:00:00+00:00"
    );
    assert_eq!(now["warningLevel"], 3);

    // Monday 09:30 the customer answers; 1 h counted, 3 h left: warning at 11:30
    // (03:30 UTC), breach at 13:30 (05:30 UTC), the lunch hour not counted.
    clock.advance(Duration::hours(88) + Duration::minutes(30));
    let pass = sla_pass(&app).await;
    // Meanwhile C breached on its 7×24 calendar; A is paused and B done.
    assert_eq!(
        pass,
        SlaPass {
            warnings: 1,
            breaches: 1
        },
        "C's warning and breach"
    );
    let resumed = api
        .ok(
            &engineer(),
            "mutation($id: ID!) { resumeIncident(input: {incidentId: $id}) { position } }",
            json!({"id": a}),
        )
        .await;
    let now = incident(&api, &a, at(&resumed, "resumeIncident")).await;
    let resolution = clock_of(&now, "RESOLUTION");
    assert_eq!(resolution["elapsedMinutes"], 60);
    assert_eq!(resolution["warningDueAt"], "2026-12-28T03:30:00+00:00");
    assert_eq!(resolution["breachDueAt"], "2026-12-28T05:30:00+00:00");

    // A restart in the middle: at 11:40 the new process records the warning once.
    clock.advance(Duration::hours(2) + Duration::minutes(10));
    api.stop().await;
    drop(app);
    let (api, app) = start(fixture, &clock).await;
    assert_eq!(
        sla_pass(&app).await,
        SlaPass {
            warnings: 1,
            breaches: 0
        }
    );
    assert_eq!(sla_pass(&app).await, SlaPass::default());
    api.stop().await;
    drop(app);
    let (api, app) = start(fixture, &clock).await;
    assert_eq!(
        sla_pass(&app).await,
        SlaPass::default(),
        "nothing twice after a restart"
    );
    clock.advance(Duration::hours(2));
    assert_eq!(
        sla_pass(&app).await,
        SlaPass {
            warnings: 0,
            breaches: 1
        }
    );
    let now = incident(&api, &a, 0).await;
    assert_eq!(
        clock_of(&now, "RESOLUTION")["breachedAt"],
        "2026-12-28T05:30:00+00:00"
    );
    let breaches = now["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["eventType"] == "SlaBreached")
        .count();
    assert_eq!(breaches, 1);

    // A fresh replay of the log shows exactly the clocks the live system shows.
    let live: Vec<Value> =
        futures::future::join_all([&a, &b, &c].map(|id| incident(&api, id, 0))).await;
    let replayed_app = App::start(fixture.open().await, clock.clone());
    caught_up(&replayed_app).await;
    let replayed = Api::over(replayed_app).await;
    let again: Vec<Value> =
        futures::future::join_all([&a, &b, &c].map(|id| incident(&replayed, id, 0))).await;
    assert_eq!(live, again);
    replayed.stop().await;
    api.stop().await;
}

const ALWAYS: &str = "mutation { setCalendar(input: {name: \"7×24\", timeZone: \"Asia/Shanghai\", alwaysOpen: true}) { id } }";
const NET_POLICY: &str = "mutation($cal: ID!, $minutes: Int!) { setSlaPolicy(input: {service: \"net\", calendarId: $cal, targets: [
    {severity: GENERAL, responseMinutes: 30, resolutionMinutes: $minutes}]}) { position } }";

async fn a_policy_edit_applies_from_the_moment_it_was_recorded(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(utc(2026, 12, 2, 0, 0)));
    let (api, app) = start(fixture, &clock).await;
    let op = operator();
    let cal = api.ok(&op, ALWAYS, json!({})).await["setCalendar"]["id"].clone();
    api.ok(&op, NET_POLICY, json!({"cal": cal, "minutes": 480}))
        .await;
    let opened = api
        .ok(
            &desk(),
            OPEN,
            json!({"title": "鏈路抖動", "service": "net"}),
        )
        .await;
    let id = opened["openIncident"]["id"].as_str().unwrap().to_owned();
    api.ok(
        &engineer(),
        "mutation($id: ID!) { acknowledgeIncident(input: {incidentId: $id}) { position } }",
        json!({"id": id}),
    )
    .await;
    // Two hours in, the target becomes 3 h: due at 03:00, the two hours kept.
    clock.advance(Duration::hours(2));
    let edit = api
        .ok(&op, NET_POLICY, json!({"cal": cal, "minutes": 180}))
        .await;
    let now = incident(
        &api,
        &id,
        edit["setSlaPolicy"]["position"].as_u64().unwrap(),
    )
    .await;
    let resolution = clock_of(&now, "RESOLUTION");
    assert_eq!(resolution["targetMinutes"], 180);
    assert_eq!(resolution["elapsedMinutes"], 120);
    assert_eq!(resolution["breachDueAt"], "2026-12-02T03:00:00+00:00");
    // At 02:30 it becomes 1 h, already spent: breached at 02:30. The warning the 3 h
    // target made due at 02:15 (75 %) was not recorded yet: it is still owed, at 02:15.
    clock.advance(Duration::minutes(30));
    api.ok(&op, NET_POLICY, json!({"cal": cal, "minutes": 60}))
        .await;
    assert_eq!(
        sla_pass(&app).await,
        SlaPass {
            warnings: 1,
            breaches: 1
        }
    );
    let now = incident(&api, &id, 0).await;
    let resolution = clock_of(&now, "RESOLUTION");
    assert_eq!(resolution["warnedAt"], "2026-12-02T02:15:00+00:00");
    assert_eq!(resolution["breachedAt"], "2026-12-02T02:30:00+00:00");
    let compliance = api
        .ok(
            &desk(),
            "{ slaCompliance(from: \"2026-12-01T00:00:00Z\", until: \"2027-01-01T00:00:00Z\", groupBy: SERVICE) {
                key incidents responseMet resolutionMet breached open } }",
            json!({}),
        )
        .await;
    assert_eq!(
        compliance["slaCompliance"],
        json!([{"key": "net", "incidents": 1, "responseMet": 1, "resolutionMet": 0, "breached": 1, "open": 1}])
    );
    // A replay shows the same clock.
    let replayed_app = App::start(fixture.open().await, clock.clone());
    caught_up(&replayed_app).await;
    let replayed = Api::over(replayed_app).await;
    assert_eq!(
        incident(&replayed, &id, 0).await,
        incident(&api, &id, 0).await
    );
    replayed.stop().await;
    drop(app);
    api.stop().await;
}

const REGISTER: &str = "mutation($type: CiType!, $name: String!, $attrs: JSON) { registerConfigurationItem(input: {type: $type, name: $name,
    attributes: $attrs, department: \"財政局\"}) { id position } }";

async fn an_incident_is_escalated_reported_reopened_and_becomes_an_article(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(utc(2026, 12, 1, 2, 0)));
    let (api, app) = start(fixture, &clock).await;
    let op = operator();
    let host = api
        .ok(&op, REGISTER, json!({"type": "HOST", "name": "host-07", "attrs": {"importance": "especially_important"}}))
        .await["registerConfigurationItem"]["id"]
        .clone();
    let vm = api
        .ok(
            &op,
            REGISTER,
            json!({"type": "VIRTUAL_MACHINE", "name": "oa-app-01", "attrs": {"cpu": 4}}),
        )
        .await["registerConfigurationItem"]["id"]
        .clone();
    api.ok(
        &op,
        "mutation($from: ID!, $to: ID!) { relateConfigurationItems(input: {ciId: $from, relation: RUNS_ON, targetId: $to}) { position } }",
        json!({"from": vm, "to": host}),
    )
    .await;

    // Bad input is named and a requester may not open one.
    let bad =
        json!({"title": "x", "service": "oa", "cis": ["ci-00000000-0000-0000-0000-000000000009"]});
    let (code, error) = api.code(Some(&desk()), OPEN, bad).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(error["extensions"]["field"], "configurationItems[0]");
    let requester = token("u-req", "財政局", &["requester"]);
    let (code, _) = api
        .code(
            Some(&requester),
            OPEN,
            json!({"title": "x", "service": "oa"}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");

    // The host's importance makes it urgent; what runs on it is affected too.
    let opened = api
        .ok(
            &desk(),
            OPEN,
            json!({"title": "宿主機 host-07 宕機", "service": "cloud-hosting", "cis": [host]}),
        )
        .await;
    let id = opened["openIncident"]["id"].as_str().unwrap().to_owned();
    const VIEW: &str = "query($id: ID!, $at: Int) { incident(id: $id, atLeast: $at) { severity severityNumeral priority { number }
        status warningLevel duties { duty role done } affected { name distance } report links { kind } } }";
    let desk_token = desk();
    let view = |at: u64| api.ok(&desk_token, VIEW, json!({"id": id, "at": at}));
    let now = view(opened["openIncident"]["position"].as_u64().unwrap()).await["incident"].clone();
    assert_eq!(
        (now["severity"].clone(), now["severityNumeral"].clone()),
        (json!("URGENT"), json!("Ⅲ"))
    );
    // Impact 1 (an especially important system), urgency 3 (a minor loss so far).
    assert_eq!(now["priority"]["number"], 3);
    let mut affected: Vec<(String, u64)> = now["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["distance"].as_u64().unwrap(),
            )
        })
        .collect();
    affected.sort();
    assert_eq!(
        affected,
        [("host-07".to_owned(), 0), ("oa-app-01".to_owned(), 1)]
    );

    // Level 2 with a vendor: duties appear; the manager sees theirs; each is done once.
    const LEVEL: &str = "mutation($id: ID!, $level: Int!) { setWarningLevel(input: {incidentId: $id, level: $level, reason: \"主機無法啟動\", vendorNeeded: true}) { position } }";
    let (code, error) = api
        .code(Some(&engineer()), LEVEL, json!({"id": id, "level": 5}))
        .await;
    assert_eq!(
        (code.as_str(), &error["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("level"))
    );
    let raised = api
        .ok(&engineer(), LEVEL, json!({"id": id, "level": 2}))
        .await;
    let at = raised["setWarningLevel"]["position"].as_u64().unwrap();
    let now = view(at).await["incident"].clone();
    assert_eq!(
        now["duties"],
        json!([
            {"duty": "REPORT_TO_OPERATIONS_MANAGER", "role": "engineer", "done": false},
            {"duty": "REPORT_TO_DEPARTMENT_LEADERS", "role": "operations_manager", "done": false},
            {"duty": "CALL_VENDOR", "role": "engineer", "done": false}
        ])
    );
    let mine = api
        .ok(
            &manager(),
            "{ outstandingDuties { duty role title } }",
            json!({}),
        )
        .await;
    assert_eq!(
        mine["outstandingDuties"],
        json!([{"duty": "REPORT_TO_DEPARTMENT_LEADERS", "role": "operations_manager", "title": "宿主機 host-07 宕機"}])
    );
    const DUTY: &str = "mutation($id: ID!, $duty: Duty!) { recordDuty(input: {incidentId: $id, duty: $duty, note: \"電話通知\"}) { position } }";
    api.ok(
        &manager(),
        DUTY,
        json!({"id": id, "duty": "REPORT_TO_DEPARTMENT_LEADERS"}),
    )
    .await;
    let (code, _) = api
        .code(
            Some(&manager()),
            DUTY,
            json!({"id": id, "duty": "REPORT_TO_DEPARTMENT_LEADERS"}),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    let told = api
        .ok(
            &manager(),
            "{ notifications(first: 10) { edges { node { kind entity } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        told["notifications"]["edges"][0]["node"]["kind"],
        "INCIDENT_ESCALATED"
    );

    // Resolved, reopened (not fixed after all), resolved again, closed; a closed incident
    // takes no more work.
    const RESOLVE: &str = "mutation($id: ID!, $cause: String!) { resolveIncident(input: {incidentId: $id, cause: $cause,
        resolution: \"更換主板後重啟，虛擬機已遷回\", preventiveMeasures: \"每月檢查主機硬件告警日誌\"}) { position } }";
    api.ok(
        &engineer(),
        RESOLVE,
        json!({"id": id, "cause": "電源模塊故障"}),
    )
    .await;
    api.ok(
        &desk(),
        "mutation($id: ID!) { reopenIncident(input: {incidentId: $id, reason: \"用戶反映仍無法訪問\"}) { position } }",
        json!({"id": id}),
    )
    .await;
    api.ok(&engineer(), RESOLVE, json!({"id": id, "cause": "主板故障"}))
        .await;
    let closed = api
        .ok(
            &desk(),
            "mutation($id: ID!) { closeIncident(input: {incidentId: $id}) { position } }",
            json!({"id": id}),
        )
        .await;
    let (code, _) = api
        .code(
            Some(&engineer()),
            "mutation($id: ID!) { logIncidentWork(input: {incidentId: $id, note: \"補記\"}) { position } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(code, "CONFLICT");

    // The report: cause, resolution, measures and the timeline from the events, over
    // GraphQL and as a Markdown download.
    let at = closed["closeIncident"]["position"].as_u64().unwrap();
    let report = view(at).await["incident"]["report"]
        .as_str()
        .unwrap()
        .to_owned();
    for part in [
        "# 機房故障報告 — 宿主機 host-07 宕機",
        "## Cause\n\n主板故障",
        "每月檢查主機硬件告警日誌",
        "Reopened: 用戶反映仍無法訪問",
        "oa-app-01",
        "Warning level 1 → 2",
    ] {
        assert!(report.contains(part), "{part:?} missing from\n{report}");
    }
    let uuid = id.trim_start_matches("incident-");
    let http = reqwest::Client::new();
    let url = format!("{}/reports/incidents/{uuid}.md", api.base());
    let download = http.get(&url).bearer_auth(desk()).send().await.unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.text().await.unwrap(), report);
    let refused = http.get(&url).bearer_auth(&requester).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);

    // The report becomes an article, found by Chinese words, suggested on a new incident
    // on the same host.
    let article = api
        .ok(
            &engineer(),
            "mutation($id: ID!) { articleFromIncident(input: {incidentId: $id, tags: [\"硬件\", \"Host\"]}) { id position } }",
            json!({"id": id}),
        )
        .await;
    let at = article["articleFromIncident"]["position"].as_u64().unwrap();
    let found = api
        .ok(
            &desk(),
            "query($at: Int) { articles(query: \"主板 宕機\", tags: [\"host\"], atLeast: $at) { articles { title cause fromIncident tags } } }",
            json!({"at": at}),
        )
        .await;
    assert_eq!(
        found["articles"]["articles"],
        json!([{"title": "宿主機 host-07 宕機", "cause": "主板故障", "fromIncident": id, "tags": ["cloud-hosting", "host", "硬件"]}])
    );
    let again = api
        .ok(
            &desk(),
            OPEN,
            json!({"title": "host-07 告警", "service": "cloud-hosting", "cis": [host]}),
        )
        .await;
    let suggested = api
        .ok(
            &desk(),
            "query($id: ID!, $at: Int) { incident(id: $id, atLeast: $at) { suggestedArticles { title } } }",
            json!({"id": again["openIncident"]["id"], "at": again["openIncident"]["position"]}),
        )
        .await;
    assert_eq!(
        suggested["incident"]["suggestedArticles"],
        json!([{"title": "宿主機 host-07 宕機"}])
    );
    drop(app);
    api.stop().await;
}

on_both_backends!(
    the_desk_flow_reopens_and_a_chargeable_change_waits_for_terms,
    sla_clocks_follow_calendars_pauses_and_changes_exactly,
    an_incident_is_escalated_reported_reopened_and_becomes_an_article,
    a_policy_edit_applies_from_the_moment_it_was_recorded
);
