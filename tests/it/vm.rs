//! Virtual servers and configuration baselines over HTTP on both backends: a VM run by its
//! owner through the simulator driver (stopped, started, restarted, backed up twice,
//! restored), refused to others, to the wrong state and under a freeze; a driver failure
//! recorded and changing nothing; a deletion giving back capacity, address and quota; a
//! baseline audit finding drift, and nothing where there is none.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use opsledger::app::{App, ManualClock};
use serde_json::{json, Value};

use crate::graphql::{token, Api};
use crate::support::Fixture;

const CREATE_POOL: &str =
    "mutation { createPool(input: {name: \"x86 虛擬化資源池\", kind: VIRTUAL_MACHINE,
    capacity: {cpuCores: 64, memoryGib: 512, storageGib: 10000}}) { id } }";
const CREATE_SUBNET: &str = "mutation { createSubnet(input: {name: \"政務外網\", cidr: \"10.130.0.0/29\", gateway: \"10.130.0.1\", vlan: 130}) { id } }";
const SET_QUOTA: &str = "mutation { setQuota(input: {department: \"財政局\", limit: {cpuCores: 16, memoryGib: 128, storageGib: 1000}}) { position } }";
const REGISTER: &str = "mutation($pool: ID, $subnet: ID, $type: CiType!) { registerConfigurationItem(input: {type: $type, name: \"fin-vm-01\",
    attributes: {cpu: 4, memory_gib: 8, disk_gb: 80, vm_ref: \"sim-vm-fin01\"}, department: \"財政局\", owner: \"u-chan\",
    poolId: $pool, subnetId: $subnet}) { id position } }";
const UPDATE: &str = "mutation($id: ID!, $a: JSON!) { updateConfigurationItem(input: {ciId: $id, attributes: $a}) { position } }";
const CI: &str =
    "query($id: ID!, $p: Int) { configurationItem(id: $id, atLeast: $p) { status ipAddresses } }";
const RESOURCES: &str =
    "{ pools { allocated { cpuCores } } subnets { used } quotas { department used { cpuCores } } }";
const OPERATIONS: &str =
    "query($id: ID!, $p: Int) { vmOperations(ciId: $id, atLeast: $p) { edges { node {
    operation succeeded error log backup by } } } }";
const BACKUPS: &str = "query($id: ID!, $p: Int) { backups(ciId: $id, atLeast: $p) { edges { node { id reference sizeBytes takenAt by } } } }";
const FREEZE: &str = "mutation($cis: [ID!], $start: DateTime!, $end: DateTime!) { declareFreeze(input: {name: \"年終結算封網\",
    reason: \"財政年終結算期間\", window: {start: $start, end: $end}, configurationItems: $cis}) { id position } }";

fn vm_mutation(name: &str) -> String {
    format!(
        "mutation($id: ID!, $key: String) {{ {name}(input: {{ciId: $id, clientMutationId: $key}}) {{ id position backup }} }}"
    )
}

const RESTORE: &str = "mutation($id: ID!, $backup: ID!) { restoreVm(input: {ciId: $id, backupId: $backup}) { position } }";

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap()
}

fn nodes(data: &Value, list: &str) -> Vec<Value> {
    data[list]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{data}"))
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn start(fixture: &Fixture, clock: &Arc<ManualClock>) -> (Api, App) {
    let app = App::start(fixture.open().await, clock.clone());
    (Api::over(app.clone()).await, app)
}

/// The models once they reflect every event written so far.
async fn head(app: &App) -> u64 {
    let head = app.store.head().await.unwrap();
    app.runner
        .wait_for(head, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    head
}

struct People {
    chan: String,
    ho: String,
    wong: String,
}

fn people() -> People {
    People {
        chan: token("u-chan", "財政局", &["requester"]),
        ho: token("u-ho", "財政局", &["requester"]),
        wong: token("u-wong", "運維中心", &["operator"]),
    }
}

/// A pool, a subnet, the department's quota, and a VM owned by u-chan placed in them.
async fn estate(api: &Api) -> String {
    let p = people();
    let admin = token("u-admin", "運維中心", &["admin"]);
    let pool = api.ok(&p.wong, CREATE_POOL, json!({})).await["createPool"]["id"].clone();
    let subnet = api.ok(&p.wong, CREATE_SUBNET, json!({})).await["createSubnet"]["id"].clone();
    api.ok(&admin, SET_QUOTA, json!({})).await;
    let vars = json!({"pool": pool, "subnet": subnet, "type": "VIRTUAL_MACHINE"});
    api.ok(&p.wong, REGISTER, vars).await["registerConfigurationItem"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn status(api: &Api, app: &App, vm: &str) -> Value {
    let p = head(app).await;
    api.ok(&people().chan, CI, json!({"id": vm, "p": p})).await["configurationItem"]["status"]
        .clone()
}

async fn operations(api: &Api, app: &App, vm: &str) -> Vec<Value> {
    let p = head(app).await;
    nodes(
        &api.ok(&people().wong, OPERATIONS, json!({"id": vm, "p": p}))
            .await,
        "vmOperations",
    )
}

async fn the_owner_runs_a_vm_through_the_driver(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(at(1, 9)));
    let (api, app) = start(fixture, &clock).await;
    let p = people();
    let vm = estate(&api).await;
    let op = |name: &str| vm_mutation(name);
    let vars = |key: Option<&str>| json!({"id": vm, "key": key});

    // The owner stops, starts and restarts; the CMDB follows.
    api.ok(&p.chan, &op("stopVm"), vars(None)).await;
    assert_eq!(status(&api, &app, &vm).await, "STOPPED");
    let (code, error) = api.code(Some(&p.chan), &op("stopVm"), vars(None)).await;
    assert_eq!(code, "CONFLICT", "{error}");
    let (code, _) = api.code(Some(&p.chan), &op("restartVm"), vars(None)).await;
    assert_eq!(code, "CONFLICT", "a stopped VM is started, not restarted");
    api.ok(&p.chan, &op("startVm"), vars(None)).await;
    assert_eq!(status(&api, &app, &vm).await, "RUNNING");
    let (code, error) = api.code(Some(&p.chan), &op("startVm"), vars(None)).await;
    assert_eq!(code, "CONFLICT", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("Running"),
        "{error}"
    );
    api.ok(&p.chan, &op("restartVm"), vars(None)).await;
    // Another requester of the same department may see it but not run it.
    for name in ["stopVm", "restartVm", "backupVm", "deleteVm"] {
        let (code, error) = api.code(Some(&p.ho), &op(name), vars(None)).await;
        assert_eq!(code, "FORBIDDEN", "{name}: {error}");
    }
    let done: Vec<String> = operations(&api, &app, &vm)
        .await
        .iter()
        .map(|o| o["operation"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(done, ["restart_vm", "start_vm", "stop_vm"]);

    // Two backups, newest first with their time and size; a retry takes none.
    let first = api.ok(&p.chan, &op("backupVm"), vars(Some("b1"))).await["backupVm"].clone();
    clock.advance(Duration::hours(1));
    let second = api.ok(&p.chan, &op("backupVm"), vars(Some("b2"))).await["backupVm"].clone();
    let again = api.ok(&p.chan, &op("backupVm"), vars(Some("b1"))).await["backupVm"].clone();
    assert_eq!(again, first);
    assert_ne!(first["backup"], second["backup"]);
    let position = head(&app).await;
    let backups = nodes(
        &api.ok(&p.chan, BACKUPS, json!({"id": vm, "p": position}))
            .await,
        "backups",
    );
    assert_eq!(backups.len(), 2, "{backups:?}");
    assert_eq!(backups[0]["id"], second["backup"]);
    assert_eq!(backups[1]["id"], first["backup"]);
    assert_eq!(backups[0]["takenAt"], at(1, 10).to_rfc3339());
    assert_eq!(backups[1]["takenAt"], at(1, 9).to_rfc3339());
    // The simulator's size: a quarter of the disk the CI says it has (80 GB).
    assert_eq!(backups[0]["sizeBytes"], json!(80u64 * (1 << 30) / 4));
    assert_eq!(backups[0]["by"], "u-chan");
    assert!(backups[0]["reference"]
        .as_str()
        .unwrap()
        .starts_with("sim-bk-"));

    // A restore picks one; a backup the VM does not have is named.
    api.ok(
        &p.chan,
        RESTORE,
        json!({"id": vm, "backup": first["backup"]}),
    )
    .await;
    let restored = &operations(&api, &app, &vm).await[0];
    assert_eq!(restored["operation"], "restore_vm");
    assert_eq!(restored["backup"], first["backup"]);
    let unknown = "backup-0190a000-0000-7000-8000-000000000001";
    let (code, error) = api
        .code(Some(&p.chan), RESTORE, json!({"id": vm, "backup": unknown}))
        .await;
    assert_eq!(code, "NOT_FOUND", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("0190a000-0000-7000-8000-000000000001"),
        "{error}"
    );

    // The driver fails a stop: the error says so, the VM still runs, the failure is
    // listed once however often the command is retried, and a retry succeeds once the
    // driver does.
    api.ok(
        &p.wong,
        UPDATE,
        json!({"id": vm, "a": {"simulate_failure": "stop_vm"}}),
    )
    .await;
    for _ in 0..2 {
        let (code, error) = api
            .code(Some(&p.chan), &op("stopVm"), vars(Some("s1")))
            .await;
        assert_eq!(code, "INTERNAL", "{error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("simulated failure of stop_vm"),
            "{error}"
        );
        // The driver's message is the client's to read (it is listed with the CI's
        // operations too): not an opaque internal error with an id.
        assert!(error["extensions"]["errorId"].is_null(), "{error}");
    }
    assert_eq!(status(&api, &app, &vm).await, "RUNNING");
    let listed = operations(&api, &app, &vm).await;
    let failed: Vec<&Value> = listed.iter().filter(|o| o["succeeded"] == false).collect();
    assert_eq!(failed.len(), 1, "{listed:?}");
    assert_eq!(failed[0]["operation"], "stop_vm");
    assert!(failed[0]["log"].as_str().unwrap().contains("stop_vm"));
    assert_eq!(failed[0]["by"], "u-chan");
    api.ok(
        &p.wong,
        UPDATE,
        json!({"id": vm, "a": {"simulate_failure": null}}),
    )
    .await;
    api.ok(&p.chan, &op("stopVm"), vars(Some("s1"))).await;
    assert_eq!(status(&api, &app, &vm).await, "STOPPED");
    api.ok(&p.chan, &op("startVm"), vars(None)).await;

    // A freeze on the VM holds a restart and a deletion (naming the freeze), not a backup.
    let cm = token("u-so", "運維中心", &["change_manager"]);
    let freeze = json!({"cis": [vm], "start": at(1, 10), "end": at(1, 18)});
    api.ok(&cm, FREEZE, freeze).await;
    head(&app).await;
    for name in ["restartVm", "deleteVm"] {
        let (code, error) = api.code(Some(&p.chan), &op(name), vars(None)).await;
        assert_eq!(code, "CONFLICT", "{name}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains("年終結算封網"),
            "{error}"
        );
    }
    api.ok(&p.chan, &op("backupVm"), vars(None)).await;
    assert_eq!(status(&api, &app, &vm).await, "RUNNING");

    // After the freeze, the owner deletes it: capacity, address and quota come back and
    // the CI is retired; a retry is the same deletion; nothing runs it again.
    clock.advance(Duration::hours(9));
    let before = api.ok(&p.wong, RESOURCES, json!({})).await;
    assert_eq!(before["pools"][0]["allocated"]["cpuCores"], 4, "{before}");
    assert_eq!(before["subnets"][0]["used"], 1, "{before}");
    let deleted = api.ok(&p.chan, &op("deleteVm"), vars(Some("d1"))).await;
    let again = api.ok(&p.chan, &op("deleteVm"), vars(Some("d1"))).await;
    assert_eq!(
        again["deleteVm"]["id"], deleted["deleteVm"]["id"],
        "{again}"
    );
    assert_eq!(status(&api, &app, &vm).await, "RETIRED");
    let after = api.ok(&p.wong, RESOURCES, json!({})).await;
    assert_eq!(after["pools"][0]["allocated"]["cpuCores"], 0, "{after}");
    assert_eq!(after["subnets"][0]["used"], 0, "{after}");
    let quota = after["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["department"] == "財政局")
        .unwrap();
    assert_eq!(quota["used"]["cpuCores"], 0, "{after}");
    let (code, _) = api.code(Some(&p.chan), &op("startVm"), vars(None)).await;
    assert_eq!(code, "CONFLICT");
    let names: Vec<Value> = operations(&api, &app, &vm)
        .await
        .iter()
        .map(|o| o["operation"].clone())
        .collect();
    assert_eq!(
        names[..2],
        [json!("stop_vm"), json!("delete_vm")],
        "{names:?}"
    );

    // Only VMs are run so: a host is bad input, named.
    let host = api
        .ok(
            &p.wong,
            REGISTER,
            json!({"pool": null, "subnet": null, "type": "HOST"}),
        )
        .await["registerConfigurationItem"]["id"]
        .clone();
    let (code, error) = api
        .code(Some(&p.wong), &op("restartVm"), json!({"id": host}))
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{error}");
    assert_eq!(error["extensions"]["field"], "ciId");
    drop(app);
    api.stop().await;
}

const CREATE_BASELINE: &str = "mutation($s: JSON!) { createBaseline(input: {clientMutationId: \"linux\", baseline: {name: \"Linux 主機安全基線\",
    scope: SYSTEM, settings: $s}}) { id position } }";
const EDIT_BASELINE: &str =
    "mutation($id: ID!, $s: JSON!) { editBaseline(input: {baselineId: $id, note: \"測試環境放寬\",
    baseline: {name: \"Linux 主機安全基線\", scope: SYSTEM, settings: $s}}) { position } }";
const ATTACH: &str = "mutation($id: ID!, $cis: [ID!], $wfs: [ID!]) { attachBaseline(input: {baselineId: $id, ciIds: $cis, workflowIds: $wfs}) { position } }";
const AUDIT: &str = "mutation($ci: ID!, $b: ID!, $key: String) { auditBaseline(input: {ciId: $ci, baselineId: $b, clientMutationId: $key}) {
    position baselineVersion compliant findings { key expected actual } } }";
const BASELINES: &str = "query($ci: ID, $wf: ID, $p: Int) { baselines(ciId: $ci, workflowId: $wf, atLeast: $p) { edges { node {
    id name version settings { key value } configurationItems workflows } } } }";
const FINDINGS: &str = "query($ci: ID!, $p: Int) { baselineFindings(ciId: $ci, atLeast: $p) { baseline baselineVersion compliant
    findings { key expected actual } } }";

async fn a_baseline_audit_finds_drift_and_nothing_where_there_is_none(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(at(2, 9)));
    let (api, app) = start(fixture, &clock).await;
    let p = people();
    let vars = json!({"pool": null, "subnet": null, "type": "VIRTUAL_MACHINE"});
    let vm = api.ok(&p.wong, REGISTER, vars).await["registerConfigurationItem"]["id"].clone();
    let settings = json!({"ntp": "on", "selinux": "enforcing", "max_open_files": 65535});

    // Operators keep baselines; a bad one names its field and records nothing.
    let (code, _) = api
        .code(Some(&p.chan), CREATE_BASELINE, json!({"s": settings}))
        .await;
    assert_eq!(code, "FORBIDDEN");
    let (code, error) = api
        .code(Some(&p.wong), CREATE_BASELINE, json!({"s": {}}))
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{error}");
    assert_eq!(error["extensions"]["field"], "settings");
    let (code, error) = api
        .code(
            Some(&p.wong),
            CREATE_BASELINE,
            json!({"s": {"ntp": ["on"]}}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{error}");
    assert_eq!(error["extensions"]["field"], "baseline.settings.ntp");
    let baseline = api
        .ok(&p.wong, CREATE_BASELINE, json!({"s": settings}))
        .await["createBaseline"]["id"]
        .clone();
    let workflow = "workflow-0190a000-0000-7000-8000-0000000000aa";
    api.ok(
        &p.wong,
        ATTACH,
        json!({"id": baseline, "cis": [vm], "wfs": [workflow]}),
    )
    .await;
    let (code, error) = api
        .code(
            Some(&p.wong),
            ATTACH,
            json!({"id": baseline, "cis": ["ci-0190a000-0000-7000-8000-0000000000bb"]}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{error}");
    assert_eq!(error["extensions"]["field"], "ciIds[0]");
    let position = head(&app).await;
    for filter in [json!({"ci": vm}), json!({"wf": workflow})] {
        let mut vars = filter.clone();
        vars["p"] = json!(position);
        let found = nodes(&api.ok(&p.chan, BASELINES, vars).await, "baselines");
        assert_eq!(found.len(), 1, "{filter}: {found:?}");
        assert_eq!(found[0]["id"], baseline);
        assert_eq!(
            found[0]["settings"][0],
            json!({"key": "max_open_files", "value": "65535"})
        );
    }
    let none = api
        .ok(
            &p.chan,
            BASELINES,
            json!({"wf": "0190a000-0000-7000-8000-0000000000cc"}),
        )
        .await;
    assert!(nodes(&none, "baselines").is_empty());

    // What is there is what the baseline asks: no findings.
    let audit = |key: &str| json!({"ci": vm, "b": baseline, "key": key});
    let clean = api.ok(&p.chan, AUDIT, audit("a1")).await["auditBaseline"].clone();
    assert_eq!(clean["compliant"], true, "{clean}");
    assert_eq!(clean["findings"], json!([]));

    // Drift: SELinux permissive, NTP missing.
    api.ok(
        &p.wong,
        UPDATE,
        json!({"id": vm, "a": {"simulate_drift": "{\"selinux\": \"permissive\", \"ntp\": null}"}}),
    )
    .await;
    let drift = api.ok(&p.chan, AUDIT, audit("a2")).await["auditBaseline"].clone();
    assert_eq!(drift["compliant"], false);
    assert_eq!(
        drift["findings"],
        json!([
            {"key": "ntp", "expected": "on", "actual": null},
            {"key": "selinux", "expected": "enforcing", "actual": "permissive"},
        ])
    );
    // A retry returns what was recorded, not a new collection.
    let retried = api.ok(&p.chan, AUDIT, audit("a1")).await["auditBaseline"].clone();
    assert_eq!(retried, clean);

    // A new version of the baseline allows permissive: only NTP is left.
    let mut relaxed = settings.clone();
    relaxed["selinux"] = json!("permissive");
    api.ok(
        &p.wong,
        EDIT_BASELINE,
        json!({"id": baseline, "s": relaxed}),
    )
    .await;
    let third = api.ok(&p.wong, AUDIT, audit("a3")).await["auditBaseline"].clone();
    assert_eq!(third["baselineVersion"], 2);
    assert_eq!(
        third["findings"],
        json!([{"key": "ntp", "expected": "on", "actual": null}])
    );
    let position = head(&app).await;
    let findings = api
        .ok(&p.chan, FINDINGS, json!({"ci": vm, "p": position}))
        .await["baselineFindings"]
        .clone();
    assert_eq!(findings.as_array().unwrap().len(), 1, "{findings}");
    assert_eq!(findings[0]["baselineVersion"], 2);
    assert_eq!(findings[0]["findings"], third["findings"]);
    // Another department's requester does not see the VM, nor audits it.
    let other = token("u-lee", "衛生署", &["requester"]);
    let (code, _) = api
        .code(Some(&other), FINDINGS, json!({"ci": vm, "p": position}))
        .await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = api.code(Some(&other), AUDIT, audit("x")).await;
    assert_eq!(code, "NOT_FOUND");
    // The driver's failure to collect is an error, recorded, with no audit.
    api.ok(
        &p.wong,
        UPDATE,
        json!({"id": vm, "a": {"simulate_failure": "collect_configuration"}}),
    )
    .await;
    let (code, error) = api.code(Some(&p.wong), AUDIT, audit("a4")).await;
    assert_eq!(code, "INTERNAL", "{error}");
    let position = head(&app).await;
    let findings = api
        .ok(&p.chan, FINDINGS, json!({"ci": vm, "p": position}))
        .await["baselineFindings"]
        .clone();
    assert_eq!(findings[0]["findings"], third["findings"]);
    let failed = &operations(&api, &app, vm.as_str().unwrap()).await[0];
    assert_eq!(failed["operation"], "collect_configuration");
    assert_eq!(failed["succeeded"], false);
    drop(app);
    api.stop().await;
}

on_both_backends!(
    the_owner_runs_a_vm_through_the_driver,
    a_baseline_audit_finds_drift_and_nothing_where_there_is_none
);
