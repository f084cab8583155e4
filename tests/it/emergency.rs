//! Emergency plans over HTTP on both backends, on a manual clock: the service plan's seven
//! runbooks loaded once; an incident runs the UPS-failure plan step by step, each step by
//! its role and in order, into the incident's timeline and report; a plan runs once per
//! incident; drills are recorded the same way; a revision is a new version that new runs
//! copy while a run under way keeps its own; the read models come back the same from a
//! snapshot.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use opsledger::app::{App, ManualClock};
use opsledger::runtime::runner::Runner;
use serde_json::{json, Value};

use crate::graphql::{token, Api};
use crate::support::Fixture;

fn utc(d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, d, h, min, 0).unwrap()
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

const LOAD: &str = "mutation($key: String) { loadPlanRunbooks(input: {clientMutationId: $key}) { defined plans position } }";
const PLANS: &str = "query($at: Int, $retired: Boolean) { emergencyPlans(atLeast: $at, includeRetired: $retired) { key version inForce } }";
const OPEN: &str = "mutation { openIncident(input: {title: \"UPS 旁路運行\", description: \"機房 UPS 告警，已切換旁路\", service: \"machine-room\"}) { id position } }";
const START: &str = "mutation($incident: ID!, $plan: ID!, $note: String) { startEmergencyPlan(input: {incidentId: $incident, planId: $plan, note: $note}) { id position } }";
const DRILL: &str = "mutation($plan: ID!, $note: String, $key: String) { startDrill(input: {clientMutationId: $key, planId: $plan, note: $note}) { id position } }";
const DONE: &str = "mutation($run: ID!, $key: String!, $note: String) { completePlanStep(input: {runId: $run, key: $key, note: $note}) { id position } }";
const SKIP: &str = "mutation($run: ID!, $key: String!, $reason: String!) { skipPlanStep(input: {runId: $run, key: $key, reason: $reason}) { position } }";
const ABORT: &str = "mutation($run: ID!, $reason: String!) { abortPlanRun(input: {runId: $run, reason: $reason}) { position } }";
const RUN: &str = "query($id: ID!, $at: Int) { planRun(id: $id, atLeast: $at) { id plan planName planVersion scenario incident drill note status
    startedBy nextSteps completedAt durationSeconds abortedBy abortReason outstanding
    steps { key role optional state by at note } } }";
const RUNS: &str = "query($incident: ID, $drills: Boolean, $at: Int) { planRuns(incident: $incident, drills: $drills, atLeast: $at) {
    edges { node { id planVersion status } } } }";
const REVISE: &str = "mutation($plan: ID!, $steps: [PlanStepInput!]!, $note: String!) { reviseEmergencyPlan(input: {planId: $plan, steps: $steps, note: $note}) { id position } }";
const PLAN: &str = "query($id: ID!, $version: Int, $at: Int) { emergencyPlan(id: $id, version: $version, atLeast: $at) {
    id key name scenario version currentVersion inForce by note steps { key role optional } versions { version by note } } }";

fn position(data: &Value, field: &str) -> u64 {
    data[field]["position"].as_u64().unwrap()
}

async fn head(app: &App) -> u64 {
    app.store.head().await.unwrap()
}

async fn run(api: &Api, id: &Value, at: u64) -> Value {
    api.ok(&engineer(), RUN, json!({"id": id, "at": at})).await["planRun"].clone()
}

/// The `key: state by` of each step of a run.
fn steps(run: &Value) -> Vec<String> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}: {} {}",
                s["key"].as_str().unwrap(),
                s["state"].as_str().unwrap(),
                s["by"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

/// A mutation that must fail with `code`, writing nothing; its error.
async fn refused(
    api: &Api,
    app: &App,
    token: &str,
    query: &str,
    variables: Value,
    code: &str,
) -> Value {
    let before = head(app).await;
    let (got, error) = api.code(Some(token), query, variables).await;
    assert_eq!(got, code, "{error}");
    assert_eq!(head(app).await, before, "a refused command wrote nothing");
    error
}

async fn an_incident_runs_the_ups_plan_into_its_timeline_and_report(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(utc(1, 1, 0)));
    let (api, app) = start(fixture, &clock).await;

    // Only the operations leads load the plan's runbooks; a second load defines nothing.
    refused(&api, &app, &operator(), LOAD, json!({}), "FORBIDDEN").await;
    let loaded = api.ok(&manager(), LOAD, json!({"key": "load-1"})).await;
    let loaded = &loaded["loadPlanRunbooks"];
    assert_eq!(loaded["defined"].as_array().unwrap().len(), 7);
    assert_eq!(loaded["plans"], loaded["defined"]);
    let at = loaded["position"].as_u64().unwrap();
    assert_eq!(at, head(&app).await);
    let plans = api.ok(&engineer(), PLANS, json!({"at": at})).await;
    let keys: Vec<&str> = plans["emergencyPlans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "network_outage",
            "server_attack",
            "scheduled_power_cut",
            "mains_power_failure",
            "ups_failure",
            "air_conditioning_failure",
            "fire"
        ]
    );
    let again = api.ok(&manager(), LOAD, json!({})).await;
    assert_eq!(again["loadPlanRunbooks"]["defined"], json!([]));
    assert_eq!(again["loadPlanRunbooks"]["position"], at);
    assert_eq!(head(&app).await, at, "the second load wrote nothing");

    let opened = api.ok(&desk(), OPEN, json!({})).await["openIncident"].clone();
    let incident = opened["id"].clone();
    clock.advance(Duration::minutes(5));

    // The desk does not start plans; an unknown incident has none to start.
    let ups = json!({"incident": incident, "plan": "ups_failure", "note": "UPS 旁路運行"});
    refused(&api, &app, &desk(), START, ups.clone(), "FORBIDDEN").await;
    let nowhere =
        json!({"incident": "incident-0190c1a0-0000-7000-8000-000000000000", "plan": "ups_failure"});
    refused(&api, &app, &engineer(), START, nowhere, "NOT_FOUND").await;
    let unknown_plan = json!({"incident": incident, "plan": "flood"});
    refused(&api, &app, &engineer(), START, unknown_plan, "NOT_FOUND").await;

    let started = api.ok(&engineer(), START, ups.clone()).await;
    let run_id = started["startEmergencyPlan"]["id"].clone();
    // One incident runs one plan once.
    refused(&api, &app, &engineer(), START, ups.clone(), "CONFLICT").await;

    // Steps in order, each by its role (or an operations lead).
    let step = |key: &str| json!({"run": run_id, "key": key, "note": format!("{key} 完成")});
    refused(
        &api,
        &app,
        &operator(),
        DONE,
        step("increase_inspections"),
        "CONFLICT",
    )
    .await;
    refused(
        &api,
        &app,
        &operator(),
        DONE,
        step("report_to_team"),
        "FORBIDDEN",
    )
    .await;
    let error = refused(
        &api,
        &app,
        &engineer(),
        DONE,
        step("flood_gates"),
        "BAD_USER_INPUT",
    )
    .await;
    assert_eq!(error["extensions"]["field"], "key");
    clock.advance(Duration::minutes(5));
    api.ok(&engineer(), DONE, step("report_to_team")).await;
    clock.advance(Duration::minutes(10));
    api.ok(&operator(), DONE, step("increase_inspections"))
        .await;
    // A required step is skipped only by the head of the operations centre.
    let skip = json!({"run": run_id, "key": "repair_ups", "reason": "廠商處理"});
    refused(&api, &app, &engineer(), SKIP, skip, "FORBIDDEN").await;
    clock.advance(Duration::minutes(45));
    let done = api.ok(&engineer(), DONE, step("repair_ups")).await;
    let partway = run(&api, &run_id, position(&done, "completePlanStep")).await;
    assert_eq!(partway["status"], "RUNNING");
    assert_eq!(partway["nextSteps"], json!(["summary"]));
    clock.advance(Duration::minutes(60));
    let last = api.ok(&manager(), DONE, step("summary")).await;
    let at = position(&last, "completePlanStep");

    let finished = run(&api, &run_id, at).await;
    assert_eq!(finished["incident"], incident);
    assert_eq!(
        (
            &finished["planName"],
            &finished["planVersion"],
            &finished["scenario"],
            &finished["drill"],
            &finished["startedBy"],
            &finished["note"]
        ),
        (
            &json!("UPS電源故障應急預案"),
            &json!(1),
            &json!("UPS_FAILURE"),
            &json!(false),
            &json!("u-eng"),
            &json!("UPS 旁路運行")
        )
    );
    assert_eq!(finished["status"], "COMPLETED");
    assert_eq!(finished["durationSeconds"], 120 * 60);
    assert_eq!(finished["nextSteps"], json!([]));
    assert_eq!(
        steps(&finished),
        [
            "report_to_team: DONE u-eng",
            "increase_inspections: DONE u-op",
            "repair_ups: DONE u-eng",
            "summary: DONE u-mgr"
        ]
    );
    assert_eq!(finished["steps"][3]["note"], "summary 完成");
    refused(&api, &app, &engineer(), DONE, step("summary"), "CONFLICT").await;

    // The plan's execution is part of the incident: its runs, its timeline, its report.
    let seen = api
        .ok(
            &desk(),
            "query($id: ID!, $at: Int) { incident(id: $id, atLeast: $at) { planRuns { id status }
                timeline { eventType actor summary } report } }",
            json!({"id": incident, "at": at}),
        )
        .await["incident"]
        .clone();
    assert_eq!(
        seen["planRuns"],
        json!([{"id": run_id, "status": "COMPLETED"}])
    );
    let timeline: Vec<(String, String)> = seen["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["eventType"].as_str().unwrap().to_owned(),
                t["summary"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let plan_lines: Vec<&(String, String)> = timeline
        .iter()
        .filter(|(t, _)| t.starts_with("Plan"))
        .collect();
    assert_eq!(
        plan_lines
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>(),
        [
            "PlanRunStarted",
            "PlanStepCompleted",
            "PlanStepCompleted",
            "PlanStepCompleted",
            "PlanStepCompleted",
            "PlanRunCompleted"
        ]
    );
    assert_eq!(
        plan_lines[2].1,
        "Plan step done: 增加巡檢次數 (increase_inspections): increase_inspections 完成"
    );
    assert_eq!(
        plan_lines[5].1,
        "Emergency plan completed: UPS電源故障應急預案 in 120 min"
    );
    let report = seen["report"].as_str().unwrap();
    let section = report
        .split("## Emergency plan")
        .nth(1)
        .expect("the report has an emergency plan section");
    assert!(
        section.contains("### UPS電源故障應急預案 (version 1)"),
        "{report}"
    );
    for line in [
        "| 1 | 報告應急小組 | engineer | done | u-eng | 2026-12-01 01:10:00 | report_to_team 完成 |",
        "| 2 | 增加巡檢次數 | operator | done | u-op | 2026-12-01 01:20:00 | increase_inspections 完成 |",
        "| 4 | 總結匯報應急小組 | engineer | done | u-mgr | 2026-12-01 03:05:00 | summary 完成 |",
    ] {
        assert!(section.contains(line), "{line} is not in\n{report}");
    }
    assert!(
        report
            .split("## Timeline")
            .nth(1)
            .unwrap()
            .contains("Plan step done: 檢修UPS (repair_ups)"),
        "{report}"
    );
    let runs = api
        .ok(&engineer(), RUNS, json!({"incident": incident, "at": at}))
        .await;
    assert_eq!(
        runs["planRuns"]["edges"],
        json!([{"node": {"id": run_id, "planVersion": 1, "status": "COMPLETED"}}])
    );

    // A resolved incident starts no plan.
    api.ok(
        &engineer(),
        "mutation($id: ID!) { resolveIncident(input: {incidentId: $id, cause: \"UPS 電池老化\", resolution: \"更換電池組\"}) { position } }",
        json!({"id": incident}),
    )
    .await;
    let air = json!({"incident": incident, "plan": "air_conditioning_failure"});
    refused(&api, &app, &engineer(), START, air, "CONFLICT").await;
    drop(app);
    api.stop().await;
}

async fn drills_are_recorded_and_a_revision_is_a_new_version(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(utc(2, 9, 0)));
    let (api, app) = start(fixture, &clock).await;
    api.ok(&manager(), LOAD, json!({})).await;

    // A drill of the air-conditioning plan: the optional first step skipped, with a
    // reason, the rest done.
    let drill = api
        .ok(
            &operator(),
            DRILL,
            json!({"plan": "air_conditioning_failure", "note": "季度演練", "key": "air-q4"}),
        )
        .await["startDrill"]
        .clone();
    let again = api
        .ok(
            &operator(),
            DRILL,
            json!({"plan": "air_conditioning_failure", "note": "季度演練", "key": "air-q4"}),
        )
        .await["startDrill"]
        .clone();
    assert_eq!(again, drill, "a retried drill is the same drill");
    let air = drill["id"].clone();
    let blank = json!({"run": air, "key": "check_mains", "reason": " "});
    let error = refused(&api, &app, &engineer(), SKIP, blank, "BAD_USER_INPUT").await;
    assert_eq!(error["extensions"]["field"], "reason");
    let skip = json!({"run": air, "key": "check_mains", "reason": "僅一臺空調故障"});
    api.ok(&engineer(), SKIP, skip).await;
    for (key, who) in [
        ("start_standby", operator()),
        ("repair", engineer()),
        ("check_all", engineer()),
    ] {
        clock.advance(Duration::minutes(10));
        api.ok(&who, DONE, json!({"run": air, "key": key})).await;
    }
    caught_up(&app).await;
    let done = run(&api, &air, head(&app).await).await;
    assert_eq!(
        (&done["drill"], &done["incident"], &done["status"]),
        (&json!(true), &Value::Null, &json!("COMPLETED"))
    );
    assert_eq!(
        steps(&done),
        [
            "check_mains: SKIPPED u-eng",
            "start_standby: DONE u-op",
            "repair: DONE u-eng",
            "check_all: DONE u-eng"
        ]
    );
    assert_eq!(done["steps"][0]["note"], "僅一臺空調故障");

    // A UPS drill under way on version 1, then the plan revised: a vendor call added.
    let old = api
        .ok(&engineer(), DRILL, json!({"plan": "ups_failure"}))
        .await["startDrill"]["id"]
        .clone();
    api.ok(
        &engineer(),
        DONE,
        json!({"run": old, "key": "report_to_team"}),
    )
    .await;
    let v1 = api
        .ok(&engineer(), PLAN, json!({"id": "ups_failure"}))
        .await["emergencyPlan"]
        .clone();
    let mut revised: Vec<Value> = v1["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            json!({"key": s["key"], "title": format!("{} 步驟", s["key"].as_str().unwrap()),
                   "role": s["role"], "optional": s["optional"]})
        })
        .collect();
    revised.insert(
        1,
        json!({"key": "call_vendor", "title": "聯繫UPS廠商", "instructions": "需要時聯繫廠商工程師到場。", "role": "engineer", "optional": true}),
    );
    let revise =
        |steps: Vec<Value>| json!({"plan": "ups_failure", "steps": steps, "note": "加入聯繫廠商"});
    refused(
        &api,
        &app,
        &engineer(),
        REVISE,
        revise(revised.clone()),
        "FORBIDDEN",
    )
    .await;
    let mut bad_role = revised.clone();
    bad_role[1]["role"] = json!("vendor");
    let error = refused(
        &api,
        &app,
        &manager(),
        REVISE,
        revise(bad_role),
        "BAD_USER_INPUT",
    )
    .await;
    assert_eq!(error["extensions"]["field"], "steps[1].role");
    let mut repeated = revised.clone();
    repeated[2]["key"] = json!("report_to_team");
    let error = refused(
        &api,
        &app,
        &manager(),
        REVISE,
        revise(repeated),
        "BAD_USER_INPUT",
    )
    .await;
    assert_eq!(error["extensions"]["field"], "steps[2].key");
    let written = api.ok(&manager(), REVISE, revise(revised)).await;
    let at = position(&written, "reviseEmergencyPlan");
    let plan = api
        .ok(&engineer(), PLAN, json!({"id": "ups_failure", "at": at}))
        .await["emergencyPlan"]
        .clone();
    assert_eq!(plan["id"], v1["id"]);
    assert_eq!(
        (&plan["version"], &plan["currentVersion"]),
        (&json!(2), &json!(2))
    );
    assert_eq!(
        plan["versions"],
        json!([{"version": 1, "by": "u-mgr", "note": null}, {"version": 2, "by": "u-mgr", "note": "加入聯繫廠商"}])
    );
    assert_eq!(plan["steps"].as_array().unwrap().len(), 5);
    let first = api
        .ok(&engineer(), PLAN, json!({"id": plan["id"], "version": 1}))
        .await["emergencyPlan"]
        .clone();
    assert_eq!(
        (&first["version"], &first["currentVersion"]),
        (&json!(1), &json!(2))
    );
    assert_eq!(first["steps"], v1["steps"]);

    // A new run copies version 2; the one under way keeps version 1.
    let new = api
        .ok(&engineer(), DRILL, json!({"plan": "ups_failure"}))
        .await["startDrill"]["id"]
        .clone();
    let done = api
        .ok(
            &engineer(),
            DONE,
            json!({"run": new, "key": "report_to_team"}),
        )
        .await;
    let at = position(&done, "completePlanStep");
    let new_run = run(&api, &new, at).await;
    assert_eq!(new_run["planVersion"], 2);
    assert_eq!(
        new_run["nextSteps"],
        json!(["call_vendor", "increase_inspections"])
    );
    let old_run = run(&api, &old, at).await;
    assert_eq!(old_run["planVersion"], 1);
    assert_eq!(old_run["steps"].as_array().unwrap().len(), 4);
    assert_eq!(old_run["nextSteps"], json!(["increase_inspections"]));

    // Only the operations leads abort a run; what was left undone is recorded.
    let abort = json!({"run": old, "reason": "演練時間到"});
    refused(&api, &app, &engineer(), ABORT, abort.clone(), "FORBIDDEN").await;
    let aborted = api.ok(&manager(), ABORT, abort).await;
    let old_run = run(&api, &old, position(&aborted, "abortPlanRun")).await;
    assert_eq!(
        (
            &old_run["status"],
            &old_run["abortedBy"],
            &old_run["abortReason"]
        ),
        (&json!("ABORTED"), &json!("u-mgr"), &json!("演練時間到"))
    );
    assert_eq!(
        old_run["outstanding"],
        json!(["increase_inspections", "repair_ups", "summary"])
    );
    refused(
        &api,
        &app,
        &manager(),
        DONE,
        json!({"run": old, "key": "increase_inspections"}),
        "CONFLICT",
    )
    .await;

    // Drills are listed newest first; an incident has no drills.
    caught_up(&app).await;
    let at = head(&app).await;
    let drills = api
        .ok(&engineer(), RUNS, json!({"drills": true, "at": at}))
        .await;
    let ids: Vec<&Value> = drills["planRuns"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"]["id"])
        .collect();
    assert_eq!(ids, [&new, &old, &air]);
    let incident = api.ok(&desk(), OPEN, json!({})).await["openIncident"]["id"].clone();
    let error = refused(
        &api,
        &app,
        &engineer(),
        RUNS,
        json!({"incident": incident, "drills": true}),
        "BAD_USER_INPUT",
    )
    .await;
    assert_eq!(error["extensions"]["field"], "drills");
    let for_incidents = api
        .ok(&engineer(), RUNS, json!({"drills": false, "at": at}))
        .await;
    assert_eq!(for_incidents["planRuns"]["edges"], json!([]));

    // A plan defined by hand; a retired plan starts no drill.
    const DEFINE: &str = "mutation($key: String!) { defineEmergencyPlan(input: {key: $key, name: \"發電機應急預案\", scenario: MAINS_POWER_FAILURE,
        steps: [{key: \"start_generator\", title: \"啟動發電機\", role: \"operator\"}, {key: \"report\", title: \"匯報\", role: \"operations_manager\"}]}) { id position } }";
    let error = refused(
        &api,
        &app,
        &manager(),
        DEFINE,
        json!({"key": "Generator"}),
        "BAD_USER_INPUT",
    )
    .await;
    assert_eq!(error["extensions"]["field"], "key");
    let defined = api
        .ok(&manager(), DEFINE, json!({"key": "generator"}))
        .await;
    refused(
        &api,
        &app,
        &manager(),
        DEFINE,
        json!({"key": "generator"}),
        "CONFLICT",
    )
    .await;
    let generator = api
        .ok(
            &engineer(),
            PLAN,
            json!({"id": defined["defineEmergencyPlan"]["id"], "at": position(&defined, "defineEmergencyPlan")}),
        )
        .await["emergencyPlan"]
        .clone();
    assert_eq!(
        (
            &generator["key"],
            &generator["scenario"],
            &generator["version"]
        ),
        (
            &json!("generator"),
            &json!("MAINS_POWER_FAILURE"),
            &json!(1)
        )
    );
    assert_eq!(
        generator["steps"],
        json!([{"key": "start_generator", "role": "operator", "optional": false},
               {"key": "report", "role": "operations_manager", "optional": false}])
    );
    const RETIRE: &str = "mutation { retireEmergencyPlan(input: {planId: \"fire\", reason: \"併入消防總預案\"}) { position } }";
    refused(&api, &app, &engineer(), RETIRE, json!({}), "FORBIDDEN").await;
    let retired = api.ok(&manager(), RETIRE, json!({})).await;
    refused(
        &api,
        &app,
        &operator(),
        DRILL,
        json!({"plan": "fire"}),
        "CONFLICT",
    )
    .await;
    let at = position(&retired, "retireEmergencyPlan");
    let in_force = api.ok(&engineer(), PLANS, json!({"at": at})).await;
    assert_eq!(in_force["emergencyPlans"].as_array().unwrap().len(), 7);
    let all = api
        .ok(&engineer(), PLANS, json!({"at": at, "retired": true}))
        .await;
    let fire = all["emergencyPlans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["key"] == "fire")
        .cloned();
    assert_eq!(
        fire,
        Some(json!({"key": "fire", "version": 1, "inForce": false}))
    );

    // Restarted from a snapshot, the models are those a replay from position 1 gives.
    caught_up(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let store = fixture.open().await;
    let first = Runner::start(&store, Some(dir.path().to_owned()));
    let head = store.head().await.unwrap();
    first
        .wait_for(head, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(first.save_snapshot().await.unwrap(), Some(head));
    let restarted = Runner::start(&store, Some(dir.path().to_owned()));
    restarted
        .wait_for(head, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(restarted.started_from(), head);
    let from_snapshot = serde_json::to_value(&*restarted.read().await).unwrap();
    let replayed = serde_json::to_value(&*app.runner.read().await).unwrap();
    assert_eq!(from_snapshot["emergency"], replayed["emergency"]);
    assert!(
        from_snapshot == replayed,
        "the snapshot differs from a replay"
    );
    drop(app);
    api.stop().await;
}

on_both_backends!(
    an_incident_runs_the_ups_plan_into_its_timeline_and_report,
    drills_are_recorded_and_a_revision_is_a_new_version
);
