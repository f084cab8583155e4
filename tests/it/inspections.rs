//! Inspections (巡檢) over HTTP on both backends, on a manual clock: the plan's templates
//! loaded once; the scheduler creating the day's walks slot by slot, marking the missed
//! ones overdue once, and opening one incident per anomaly, linked both ways, across a
//! restart; today's inspections with their states, the overdue list, anomalies by area
//! and period; templates defined, revised and retired; bad input refused with nothing
//! written.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use opsledger::app::{App, Clock, ManualClock};
use opsledger::processes::scheduler::{run_inspections, InspectionPass, CATCH_UP_SLOTS};
use opsledger_domain::operations::inspection::{
    anomaly_incident_id, inspection_id, template_id, SITE_TIME_ZONE,
};
use serde_json::{json, Value};

use crate::graphql::{token, Api};
use crate::support::Fixture;

/// 2026-11-26 (a Thursday) at `h:m` in Shanghai.
fn local(h: u32, m: u32) -> DateTime<Utc> {
    SITE_TIME_ZONE
        .with_ymd_and_hms(2026, 11, 26, h, m, 0)
        .unwrap()
        .with_timezone(&Utc)
}

/// Moves the manual clock forward to `t`.
fn set(clock: &ManualClock, t: DateTime<Utc>) {
    clock.advance(t - clock.now());
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("{v}")))
        .unwrap()
        .to_utc()
}

fn operator() -> String {
    token("u-op", "運維中心", &["operator"])
}
fn engineer() -> String {
    token("u-lam", "運維中心", &["engineer"])
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

/// One inspection pass once the models show everything written, then again caught up.
async fn pass(app: &App) -> InspectionPass {
    caught_up(app).await;
    let pass = run_inspections(app).await.unwrap();
    caught_up(app).await;
    pass
}

fn passed(scheduled: usize, overdue: usize, incidents: usize) -> InspectionPass {
    InspectionPass {
        scheduled,
        overdue,
        incidents,
    }
}

fn walk(due: DateTime<Utc>) -> String {
    format!(
        "inspection-{}",
        inspection_id(template_id("machine_room_walk"), due)
    )
}

fn daily_logs(due: DateTime<Utc>) -> String {
    format!(
        "inspection-{}",
        inspection_id(template_id("daily_log_check"), due)
    )
}

const LOAD: &str =
    "mutation { loadPlanInspectionTemplates(input: {}) { templates defined position } }";
const TEMPLATES: &str = "query($at: Int, $retired: Boolean) { inspectionTemplates(atLeast: $at, includeRetired: $retired) {
    id name area version inForce retiredReason items { key kind unit min max opensIncident level }
    schedule { cadence minutes at weekday day timeZone windowMinutes } history { version by } } }";
const LIST: &str =
    "query($today: Boolean, $from: DateTime, $to: DateTime, $status: InspectionStatus, $at: Int) {
    inspections(today: $today, from: $from, to: $to, status: $status, first: 100, atLeast: $at) {
    edges { node { id name area status due deadline } } } }";
const ONE: &str =
    "query($id: ID!, $at: Int) { inspection(id: $id, atLeast: $at) { id name status templateVersion
    due deadline overdueAt missingWhenOverdue openItems late completedBy
    results { key outcome reading note anomaly by late }
    anomalies { key name reading unit cause limit level opensIncident foundBy incident } } }";
const RECORD: &str = "mutation($id: ID!, $results: [InspectionResultInput!]!) {
    recordInspectionResults(input: {inspectionId: $id, results: $results}) { id position } }";
const OVERDUE: &str = "query($at: Int) { overdueInspections(first: 500, atLeast: $at) { edges { node { id status overdueAt } } } }";
const ANOMALIES: &str = "query($area: InspectionArea, $from: DateTime!, $to: DateTime!) {
    inspectionAnomalies(area: $area, from: $from, to: $to) { edges { node { inspection area inspectionName anomaly { key cause incident } } } } }";
const COUNTS: &str = "query($from: DateTime!, $to: DateTime!) { anomalyCounts(from: $from, to: $to) { area anomalies } }";
const INCIDENT: &str =
    "query($id: ID!) { incident(id: $id) { title description service severity status
    source { kind inspection item } } }";
const INCIDENTS: &str =
    "{ incidents(scope: ALL, first: 100) { edges { node { id source { kind inspection item } } } } }";

async fn list(api: &Api, variables: Value) -> Vec<Value> {
    let data = api.ok(&engineer(), LIST, variables).await;
    edges(&data["inspections"])
}

fn edges(connection: &Value) -> Vec<Value> {
    connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{connection}"))
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn inspection(api: &Api, id: &str, at: u64) -> Value {
    api.ok(&engineer(), ONE, json!({"id": id, "at": at})).await["inspection"].clone()
}

async fn record(api: &Api, id: &str, results: Value) -> u64 {
    let done = api
        .ok(&engineer(), RECORD, json!({"id": id, "results": results}))
        .await;
    done["recordInspectionResults"]["position"]
        .as_u64()
        .unwrap()
}

fn read(key: &str, reading: f64) -> Value {
    json!({"key": key, "outcome": "OK", "reading": reading, "note": null})
}

fn ok(key: &str) -> Value {
    json!({"key": key, "outcome": "OK", "reading": null, "note": null})
}

/// Every item of the machine-room walk, within range.
fn walk_all_ok() -> Value {
    json!([
        read("temperature", 22.5),
        read("humidity", 45.0),
        read("power_load", 60.0),
        read("ups_load", 55.0),
        ok("air_conditioning"),
        ok("fire_system"),
        ok("monitoring_alarms"),
        ok("door_locks"),
        ok("noise_and_smell"),
        ok("cleanliness"),
    ])
}

async fn the_day_s_walks_are_scheduled_missed_ones_marked_and_anomalies_become_incidents(
    fixture: &Fixture,
) {
    let clock = Arc::new(ManualClock::new(local(0, 5)));
    let (api, app) = start(fixture, &clock).await;

    // The plan's six templates, once: loading them again defines nothing.
    let (code, _) = api.code(Some(&engineer()), LOAD, json!({})).await;
    assert_eq!(code, "FORBIDDEN");
    let loaded = api.ok(&operator(), LOAD, json!({})).await["loadPlanInspectionTemplates"].clone();
    assert_eq!(loaded["defined"], 6);
    assert_eq!(loaded["templates"].as_array().unwrap().len(), 6);
    let again = api.ok(&operator(), LOAD, json!({})).await["loadPlanInspectionTemplates"].clone();
    assert_eq!(
        (&again["defined"], &again["templates"]),
        (&json!(0), &loaded["templates"])
    );
    let templates = api
        .ok(&engineer(), TEMPLATES, json!({"at": loaded["position"]}))
        .await["inspectionTemplates"]
        .clone();
    assert_eq!(templates.as_array().unwrap().len(), 6);
    let walk_template = &templates[0];
    assert_eq!(
        walk_template["id"],
        format!("inspection_template-{}", template_id("machine_room_walk"))
    );
    assert_eq!(walk_template["name"], "機房環境巡檢");
    assert_eq!(
        walk_template["schedule"],
        json!({"cadence": "EVERY", "minutes": 45, "at": null, "weekday": null, "day": null,
               "timeZone": "Asia/Shanghai", "windowMinutes": null})
    );
    assert_eq!(
        walk_template["items"][0],
        json!({"key": "temperature", "kind": "READING", "unit": "°C", "min": 18.0, "max": 27.0,
               "opensIncident": true, "level": "IMPORTANT"})
    );

    // Just after midnight: the walks, the detailed walk and the platform check of 00:00.
    assert_eq!(pass(&app).await, passed(3, 0, 0));
    assert_eq!(pass(&app).await, InspectionPass::default());
    let today = list(&api, json!({"today": true})).await;
    assert_eq!(
        today.len(),
        3,
        "today is the site's day, though it is still the 25th in UTC"
    );

    // At 10:10 the day so far: a walk every 45 minutes from 00:00, hourly detailed walks,
    // the platform check every 3 hours and the 09:00 log check; those whose window has
    // closed are marked overdue in the same pass.
    set(&clock, local(10, 10));
    let walks_so_far = (10 * 60 + 10) / 45 + 1;
    assert_eq!(walks_so_far, 14);
    assert_eq!(pass(&app).await, passed(13 + 10 + 3 + 1, 13 + 10 + 3, 0));
    assert_eq!(pass(&app).await, InspectionPass::default(), "nothing twice");
    let today = list(&api, json!({"today": true})).await;
    assert_eq!(today.len(), 14 + 11 + 4 + 1);
    let walks: Vec<DateTime<Utc>> = today
        .iter()
        .filter(|v| v["name"] == "機房環境巡檢")
        .map(|v| time(&v["due"]))
        .collect();
    let expected: Vec<DateTime<Utc>> = (0..walks_so_far)
        .map(|k| local(0, 0) + Duration::minutes(45 * k))
        .collect();
    assert_eq!(walks, expected);
    let nine_45 = walk(local(9, 45));
    let walk_at = |id: &str| today.iter().find(|v| v["id"] == id).unwrap().clone();
    assert_eq!(walk_at(&nine_45)["status"], "OPEN");
    assert_eq!(time(&walk_at(&nine_45)["deadline"]), local(10, 30));
    assert_eq!(walk_at(&walk(local(9, 0)))["status"], "OVERDUE");

    // Bad input is named and writes nothing.
    set(&clock, local(10, 15));
    let head = app.store.head().await.unwrap();
    for (results, field) in [
        (json!([read("temprature", 29.5)]), "results[0].key"),
        (
            json!([read("temperature", 22.0), ok("ups_load")]),
            "results[1].reading",
        ),
        (json!([read("door_locks", 1.0)]), "results[0].reading"),
        (
            json!([{"key": "door_locks", "outcome": "ANOMALY", "reading": null, "note": " "}]),
            "results[0].note",
        ),
    ] {
        let (code, error) = api
            .code(
                Some(&engineer()),
                RECORD,
                json!({"id": nine_45, "results": results}),
            )
            .await;
        assert_eq!(
            (code.as_str(), &error["extensions"]["field"]),
            ("BAD_USER_INPUT", &json!(field)),
            "{error}"
        );
    }
    let (code, _) = api
        .code(
            Some(&token("u-desk", "運維中心", &["service_desk"])),
            RECORD,
            json!({"id": nine_45, "results": [read("temperature", 22.0)]}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN", "the desk does not walk the machine room");
    let (code, _) = api
        .code(
            Some(&engineer()),
            RECORD,
            json!({"id": walk(local(11, 15)), "results": [read("temperature", 22.0)]}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND", "not scheduled yet");
    assert_eq!(app.store.head().await.unwrap(), head, "nothing was written");

    // The 09:45 walk finds the room too hot: the range decides, whatever the engineer says.
    let at = record(
        &api,
        &nine_45,
        json!([read("temperature", 29.5), read("humidity", 45.0)]),
    )
    .await;
    let found = inspection(&api, &nine_45, at).await;
    assert_eq!(found["status"], "IN_PROGRESS");
    assert_eq!(
        found["anomalies"],
        json!([{"key": "temperature", "name": "機房溫度", "reading": 29.5, "unit": "°C",
                "cause": "ABOVE_MAXIMUM", "limit": 27.0, "level": "IMPORTANT", "opensIncident": true,
                "foundBy": "u-lam", "incident": null}])
    );
    assert_eq!(found["results"][0]["anomaly"], "ABOVE_MAXIMUM");
    assert_eq!(found["results"][0]["outcome"], "OK");

    // The pass opens one incident for it, linked both ways; again, nothing.
    assert_eq!(pass(&app).await, passed(0, 0, 1));
    assert_eq!(pass(&app).await, InspectionPass::default());
    let nine_45_id = inspection_id(template_id("machine_room_walk"), local(9, 45));
    let incident_id = format!(
        "incident-{}",
        anomaly_incident_id(nine_45_id, "temperature")
    );
    let linked = inspection(&api, &nine_45, 0).await;
    assert_eq!(linked["anomalies"][0]["incident"], incident_id);
    let incident = api
        .ok(&engineer(), INCIDENT, json!({"id": incident_id}))
        .await["incident"]
        .clone();
    assert_eq!(
        incident["source"],
        json!({"kind": "inspection", "inspection": nine_45, "item": "temperature"})
    );
    assert_eq!(incident["title"], "巡檢異常：機房溫度 29.5 °C（上限 27）");
    assert_eq!(
        (
            &incident["service"],
            &incident["severity"],
            &incident["status"]
        ),
        (&json!("machine-room"), &json!("IMPORTANT"), &json!("NEW")),
        "the item's level grades it"
    );
    assert!(incident["description"]
        .as_str()
        .unwrap()
        .starts_with("機房環境巡檢（2026-11-26 09:45）"));

    // A restart and another pass open nothing more.
    api.stop().await;
    drop(app);
    let (api, app) = start(fixture, &clock).await;
    assert_eq!(pass(&app).await, InspectionPass::default());
    let incidents = edges(&api.ok(&engineer(), INCIDENTS, json!({})).await["incidents"]);
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["id"], incident_id);

    // 10:31: the 10:30 walk is due, and the 09:45 one, half done, is overdue — once.
    set(&clock, local(10, 31));
    assert_eq!(pass(&app).await, passed(1, 1, 0));
    assert_eq!(pass(&app).await, InspectionPass::default());
    let late = inspection(&api, &nine_45, 0).await;
    assert_eq!(late["status"], "OVERDUE");
    assert_eq!(time(&late["overdueAt"]), local(10, 31));
    assert_eq!(late["missingWhenOverdue"].as_array().unwrap().len(), 8);
    let overdue = edges(&api.ok(&engineer(), OVERDUE, json!({})).await["overdueInspections"]);
    assert_eq!(overdue.len(), 13 + 10 + 3 + 1);
    assert_eq!(overdue[0]["id"], nine_45, "the latest marked first");
    assert_eq!(
        overdue.iter().filter(|v| v["id"] == nine_45).count(),
        1,
        "marked once"
    );

    // The 10:30 walk done in time, the 09:00 one late; an anomaly in the log check.
    set(&clock, local(10, 35));
    record(&api, &walk(local(10, 30)), walk_all_ok()).await;
    set(&clock, local(10, 36));
    let at = record(&api, &walk(local(9, 0)), walk_all_ok()).await;
    let done_late = inspection(&api, &walk(local(9, 0)), at).await;
    assert_eq!(
        (
            &done_late["status"],
            &done_late["late"],
            &done_late["completedBy"]
        ),
        (&json!("COMPLETED_LATE"), &json!(true), &json!("u-lam"))
    );
    set(&clock, local(10, 40));
    let logs = daily_logs(local(9, 0));
    record(
        &api,
        &logs,
        json!([{"key": "console_logs", "outcome": "ANOMALY", "reading": null, "note": "管理控制臺登錄失敗告警"}]),
    )
    .await;
    assert_eq!(pass(&app).await, passed(0, 0, 1));

    // Today's inspections with their states.
    let today = list(&api, json!({"today": true})).await;
    let status = |id: &str| {
        today
            .iter()
            .find(|v| v["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not today's"))["status"]
            .clone()
    };
    assert_eq!(status(&nine_45), "OVERDUE");
    assert_eq!(status(&walk(local(10, 30))), "COMPLETED");
    assert_eq!(status(&walk(local(9, 0))), "COMPLETED_LATE");
    assert_eq!(status(&walk(local(8, 15))), "OVERDUE");
    assert_eq!(status(&logs), "IN_PROGRESS");
    assert_eq!(
        status(&format!(
            "inspection-{}",
            inspection_id(template_id("machine_room_detailed_walk"), local(10, 0))
        )),
        "OPEN"
    );
    let completed = list(&api, json!({"today": true, "status": "COMPLETED"})).await;
    let ids: Vec<&Value> = completed.iter().map(|v| &v["id"]).collect();
    assert_eq!(ids, [&json!(walk(local(10, 30)))]);
    let done_late = overdue_ids(&api).await;
    assert!(
        done_late.contains(&walk(local(9, 0))),
        "done late, still recorded as overdue"
    );
    // The caller's own day: from and to.
    let morning = list(&api, json!({"from": local(9, 0), "to": local(10, 0)})).await;
    let names: Vec<&str> = morning
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(morning.len(), 5, "{names:?}");

    // Anomalies by area and period.
    let (from, to) = (local(0, 0), local(0, 0) + Duration::days(1));
    let found = |v: Value| -> Vec<(String, String)> {
        edges(&v["inspectionAnomalies"])
            .iter()
            .map(|n| {
                (
                    n["inspection"].as_str().unwrap().to_owned(),
                    n["anomaly"]["key"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let machine_room = api
        .ok(
            &engineer(),
            ANOMALIES,
            json!({"area": "MACHINE_ROOM", "from": from, "to": to}),
        )
        .await;
    assert_eq!(
        found(machine_room.clone()),
        [(nine_45.clone(), "temperature".to_owned())]
    );
    assert_eq!(
        edges(&machine_room["inspectionAnomalies"])[0]["anomaly"]["incident"],
        incident_id
    );
    let all = api
        .ok(&engineer(), ANOMALIES, json!({"from": from, "to": to}))
        .await;
    assert_eq!(
        found(all),
        [
            (nine_45.clone(), "temperature".to_owned()),
            (logs.clone(), "console_logs".to_owned())
        ]
    );
    let later = api
        .ok(
            &engineer(),
            ANOMALIES,
            json!({"from": local(10, 20), "to": local(11, 0)}),
        )
        .await;
    assert_eq!(found(later), [(logs.clone(), "console_logs".to_owned())]);
    let counts = api
        .ok(&engineer(), COUNTS, json!({"from": from, "to": to}))
        .await;
    assert_eq!(
        counts["anomalyCounts"],
        json!([{"area": "MACHINE_ROOM", "anomalies": 1}, {"area": "PLATFORM", "anomalies": 1}])
    );
    let logs_incident = format!(
        "incident-{}",
        anomaly_incident_id(
            inspection_id(template_id("daily_log_check"), local(9, 0)),
            "console_logs"
        )
    );
    let general = api
        .ok(&engineer(), INCIDENT, json!({"id": logs_incident}))
        .await["incident"]
        .clone();
    assert_eq!(
        (&general["service"], &general["severity"]),
        (&json!("platform"), &json!("GENERAL"))
    );

    // A period the wrong way round is named.
    let (code, error) = api
        .code(Some(&engineer()), COUNTS, json!({"from": to, "to": from}))
        .await;
    assert_eq!(
        (code.as_str(), &error["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("to"))
    );
    let (code, error) = api.code(Some(&engineer()), LIST, json!({})).await;
    assert_eq!(
        (code.as_str(), &error["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("from"))
    );
    let (code, _) = api
        .code(
            Some(&token("u-chan", "財政局", &["requester"])),
            LIST,
            json!({"today": true}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");

    api.stop().await;
    drop(app);
}

async fn overdue_ids(api: &Api) -> Vec<String> {
    edges(&api.ok(&engineer(), OVERDUE, json!({})).await["overdueInspections"])
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

const DEFINE: &str = "mutation($key: String, $items: [ChecklistItemInput!]!, $schedule: InspectionScheduleInput!) {
    defineInspectionTemplate(input: {key: $key, name: \"UPS 電池巡檢\", area: MACHINE_ROOM, items: $items, schedule: $schedule}) { id position } }";
const REVISE: &str = "mutation($id: ID!, $items: [ChecklistItemInput!]!, $schedule: InspectionScheduleInput!) {
    reviseInspectionTemplate(input: {templateId: $id, items: $items, schedule: $schedule}) { id position } }";
const RETIRE: &str = "mutation($id: ID!, $reason: String!) {
    retireInspectionTemplate(input: {templateId: $id, reason: $reason}) { id position } }";

fn battery_items() -> Value {
    json!([
        {"key": "battery_voltage", "name": "電池組電壓", "kind": "READING", "unit": "V", "min": 12.0, "max": 14.0,
         "opensIncident": null, "level": "IMPORTANT"},
        {"key": "battery_leak", "name": "電池漏液", "kind": "CHECK", "unit": null, "min": null, "max": null,
         "opensIncident": false, "level": null},
    ])
}

fn weekly() -> Value {
    json!({"cadence": "WEEKLY", "minutes": null, "at": "14:00", "weekday": "FRIDAY", "day": null,
           "timeZone": null, "anchor": null, "windowMinutes": null})
}

async fn templates_are_defined_revised_and_retired_and_bad_input_writes_nothing(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(local(9, 0)));
    let (api, app) = start(fixture, &clock).await;
    let op = operator();

    let head = app.store.head().await.unwrap();
    let with = |edit: &dyn Fn(&mut Value, &mut Value)| {
        let (mut items, mut schedule) = (battery_items(), weekly());
        edit(&mut items, &mut schedule);
        json!({"key": "ups_battery", "items": items, "schedule": schedule})
    };
    for (variables, field) in [
        (with(&|i, _| i[0]["unit"] = json!(null)), "items[0].unit"),
        (with(&|i, _| i[1]["max"] = json!(3.0)), "items[1].max"),
        (
            with(&|i, _| i[1]["key"] = json!("Battery leak")),
            "items[1].key",
        ),
        (with(&|i, _| i[0]["min"] = json!(15.0)), "items[0].max"),
        (
            with(&|_, s| s["cadence"] = json!("EVERY")),
            "schedule.minutes",
        ),
        (with(&|_, s| s["weekday"] = json!(null)), "schedule.weekday"),
        (with(&|_, s| s["at"] = json!("2pm")), "schedule.at"),
        (
            with(&|_, s| s["timeZone"] = json!("Mars/Olympus")),
            "schedule.timeZone",
        ),
        (with(&|_, s| s["day"] = json!(1)), "schedule.day"),
        (
            with(&|_, s| s["windowMinutes"] = json!(0)),
            "schedule.windowMinutes",
        ),
    ] {
        let (code, error) = api.code(Some(&op), DEFINE, variables).await;
        assert_eq!(
            (code.as_str(), &error["extensions"]["field"]),
            ("BAD_USER_INPUT", &json!(field)),
            "{error}"
        );
    }
    let (code, _) = api.code(Some(&engineer()), DEFINE, with(&|_, _| {})).await;
    assert_eq!(code, "FORBIDDEN");
    assert_eq!(app.store.head().await.unwrap(), head, "nothing was written");

    let defined = api.ok(&op, DEFINE, with(&|_, _| {})).await["defineInspectionTemplate"].clone();
    let id = defined["id"].as_str().unwrap().to_owned();
    assert_eq!(
        id,
        format!("inspection_template-{}", template_id("ups_battery"))
    );
    let (code, _) = api.code(Some(&op), DEFINE, with(&|_, _| {})).await;
    assert_eq!(code, "CONFLICT", "one template per key");
    let templates = api
        .ok(&engineer(), TEMPLATES, json!({"at": defined["position"]}))
        .await["inspectionTemplates"]
        .clone();
    assert_eq!(templates[0]["schedule"]["weekday"], "FRIDAY");
    assert_eq!(templates[0]["schedule"]["timeZone"], "Asia/Shanghai");
    assert_eq!(templates[0]["items"][1]["opensIncident"], false);
    assert_eq!(templates[0]["items"][0]["opensIncident"], true);

    // Daily at 14:00 with two hours to do it: version 2, and the scheduler follows it.
    let daily = json!({"cadence": "DAILY", "minutes": null, "at": "14:00", "weekday": null, "day": null,
                       "timeZone": "Asia/Shanghai", "anchor": null, "windowMinutes": 120});
    let revised = api
        .ok(
            &op,
            REVISE,
            json!({"id": id, "items": battery_items(), "schedule": daily}),
        )
        .await["reviseInspectionTemplate"]
        .clone();
    let templates = api
        .ok(&engineer(), TEMPLATES, json!({"at": revised["position"]}))
        .await["inspectionTemplates"]
        .clone();
    assert_eq!(templates[0]["version"], 2);
    assert_eq!(templates[0]["schedule"]["cadence"], "DAILY");
    assert_eq!(templates[0]["schedule"]["windowMinutes"], 120);
    assert_eq!(
        templates[0]["history"],
        json!([{"version": 1, "by": "u-op"}, {"version": 2, "by": "u-op"}])
    );
    set(&clock, local(14, 10));
    assert_eq!(pass(&app).await, passed(1, 0, 0));
    let due = format!(
        "inspection-{}",
        inspection_id(template_id("ups_battery"), local(14, 0))
    );
    let scheduled = inspection(&api, &due, 0).await;
    assert_eq!(
        (&scheduled["templateVersion"], time(&scheduled["deadline"])),
        (&json!(2), local(16, 0))
    );
    // A battery reading too low opens an incident; a leak is recorded without one.
    record(
        &api,
        &due,
        json!([read("battery_voltage", 11.2), {"key": "battery_leak", "outcome": "ANOMALY", "reading": null, "note": "2 號電池輕微滲漏"}]),
    )
    .await;
    assert_eq!(pass(&app).await, passed(0, 0, 1));
    let found = inspection(&api, &due, 0).await;
    assert_eq!(found["status"], "COMPLETED");
    assert_eq!(found["anomalies"][0]["cause"], "BELOW_MINIMUM");
    assert!(found["anomalies"][0]["incident"].is_string());
    assert_eq!(found["anomalies"][1]["incident"], json!(null));

    let (code, error) = api
        .code(Some(&op), RETIRE, json!({"id": id, "reason": " "}))
        .await;
    assert_eq!(
        (code.as_str(), &error["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("reason"))
    );
    let retired = api
        .ok(&op, RETIRE, json!({"id": id, "reason": "UPS 更換為鋰電池"}))
        .await["retireInspectionTemplate"]
        .clone();
    let at = retired["position"].clone();
    let in_force =
        api.ok(&engineer(), TEMPLATES, json!({"at": at})).await["inspectionTemplates"].clone();
    assert_eq!(in_force, json!([]));
    let all = api
        .ok(&engineer(), TEMPLATES, json!({"at": at, "retired": true}))
        .await["inspectionTemplates"]
        .clone();
    assert_eq!(
        (&all[0]["inForce"], &all[0]["retiredReason"]),
        (&json!(false), &json!("UPS 更換為鋰電池"))
    );
    set(&clock, local(14, 10) + Duration::days(1));
    assert_eq!(
        pass(&app).await,
        InspectionPass::default(),
        "retired: nothing due"
    );
    let (code, _) = api
        .code(
            Some(&op),
            REVISE,
            json!({"id": id, "items": battery_items(), "schedule": daily}),
        )
        .await;
    assert_eq!(code, "CONFLICT");

    // After a long outage the missed slots are scheduled and marked overdue, a bounded
    // number per pass, none skipped: a probe every 10 minutes, down for 20 hours.
    let probe = json!([{"key": "reachable", "name": "探針可達", "kind": "CHECK", "unit": null, "min": null,
                        "max": null, "opensIncident": null, "level": null}]);
    let every_10 = json!({"cadence": "EVERY", "minutes": 10, "at": null, "weekday": null, "day": null,
                          "timeZone": null, "anchor": null, "windowMinutes": null});
    api.ok(
        &op,
        DEFINE,
        json!({"key": "network_probe", "items": probe, "schedule": every_10}),
    )
    .await;
    assert_eq!(pass(&app).await, passed(1, 0, 0), "the slot open now");
    clock.advance(Duration::hours(20) + Duration::minutes(5));
    let missed = 20 * 6;
    assert_eq!(CATCH_UP_SLOTS, 96);
    assert_eq!(
        pass(&app).await,
        passed(CATCH_UP_SLOTS, 1 + CATCH_UP_SLOTS, 0)
    );
    assert_eq!(
        pass(&app).await,
        passed(missed - CATCH_UP_SLOTS, missed - CATCH_UP_SLOTS - 1, 0),
        "the rest, the last of them still open"
    );
    assert_eq!(pass(&app).await, InspectionPass::default());
    let overdue = overdue_ids(&api).await;
    assert_eq!(overdue.len(), missed);

    api.stop().await;
    drop(app);
}

on_both_backends!(
    the_day_s_walks_are_scheduled_missed_ones_marked_and_anomalies_become_incidents,
    templates_are_defined_revised_and_retired_and_bad_input_writes_nothing
);
