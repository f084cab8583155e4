//! Automation over HTTP on both backends: an approved request provisioned end to end by
//! the simulator and by the command driver (real child processes), with the CMDB, pool,
//! address, quota and lease right after; a failing step rolled back in reverse order; a
//! failed undo raising an incident; a manual step; workflows refused for a cycle or a
//! missing parameter; and a `kill -9` in the middle of a run resumed by the next engine.

use std::sync::Arc;
use std::time::Duration;

use opsledger::app::{App, SystemClock};
use opsledger::drivers::command::{CommandConfig, CommandDriver};
use opsledger::drivers::simulator::{Simulator, SimulatorConfig};
use opsledger::drivers::Driver;
use opsledger_domain::requests::demo::{small_vm_pre_approved, vm_definition};
use serde_json::{json, Value};

use crate::graphql::{token, Api};
use crate::support::{self, Fixture, CHILD_STORE_VAR};

const CREATE_POOL: &str =
    "mutation { createPool(input: {name: \"x86 虛擬化資源池\", kind: VIRTUAL_MACHINE,
    capacity: {cpuCores: 64, memoryGib: 4096, storageGib: 100000}}) { id } }";
const CREATE_SUBNET: &str = "mutation { createSubnet(input: {name: \"政務外網\", cidr: \"10.120.0.0/29\", gateway: \"10.120.0.1\", vlan: 120}) { id } }";
const SET_QUOTA: &str = "mutation { setQuota(input: {department: \"財政局\", limit: {cpuCores: 16, memoryGib: 1024, storageGib: 10000}}) { position } }";
const CREATE_WORKFLOW: &str =
    "mutation($d: JSON!) { createWorkflow(input: {definition: $d}) { id position } }";
const CREATE_ITEM: &str =
    "mutation($d: JSON!) { createCatalogItem(input: {definition: $d}) { id position } }";
const SUBMIT: &str = "mutation($item: ID!, $cpu: Int!, $n: Int!) { submitRequest(input: {itemId: $item, kind: NEW_RESOURCE,
    configuration: {cpu: $cpu, memory_gb: 8, os: \"linux\", image: \"rhel-9.4\"}, quantity: $n,
    project: \"電子公文交換\", periodStart: \"2026-12-01\", periodEnd: \"2027-06-01\"}) { id position } }";
const REQUEST: &str = "query($id: ID!) { request(id: $id) { status } }";
const RUNS: &str = "query($r: ID!) { provisioningRuns(requestId: $r) { edges { node {
    id status reason unit configurationItem workflowVersion
    steps { name kind status output error log logSha256 undo undoError incident doneBy note } } } } }";
const CIS: &str = "query { configurationItems(first: 100) { edges { node {
    id name type status ipAddresses owner department project lease { start end } request pool allocated { cpuCores memoryGib }
    attributes } } } }";
const CREATE_BASELINE: &str =
    "mutation($s: JSON!) { createBaseline(input: {baseline: {name: \"Linux 主機安全基線\",
    scope: SYSTEM, settings: $s}}) { id } }";
const ATTACH_BASELINE: &str = "mutation($id: ID!, $wfs: [ID!]) { attachBaseline(input: {baselineId: $id, workflowIds: $wfs}) { position } }";
const FINDINGS: &str = "query($ci: ID!) { baselineFindings(ciId: $ci) { baseline baselineVersion compliant findings { key } by } }";
const STATE: &str = "query { pools { allocated { cpuCores } } subnets { used } quotas { department used { cpuCores } } }";

/// The plan's VM workflow: capacity, VM, data disk, image, address.
fn vm_workflow(pool: &str, subnet: &str, failure: Option<&str>) -> Value {
    let raw = |id: &str| id.split_once('-').map_or(id, |(_, u)| u).to_owned();
    let mut params = vec![
        json!({"name": "cpu", "type": "integer", "default": 2}),
        json!({"name": "memory_gb", "type": "integer", "default": 4}),
        json!({"name": "image", "type": "text", "default": "rhel-9.4"}),
        json!({"name": "os", "type": "choice", "choices": ["linux", "windows"], "default": "linux"}),
        json!({"name": "pool_id", "type": "text", "default": raw(pool)}),
        json!({"name": "subnet_id", "type": "text", "default": raw(subnet)}),
    ];
    if let Some(f) = failure {
        params.push(json!({"name": "simulate_failure", "type": "text", "default": f}));
    }
    json!({
        "name": "虛擬機開通",
        "description": "分配資源池容量、創建虛擬機、掛載數據盤、部署鏡像、分配 IP",
        "params": params,
        "steps": [
            {"name": "capacity", "kind": "allocate_capacity", "inputs": {"pool_id": "${params.pool_id}", "cpu": "${params.cpu}", "memory_gib": "${params.memory_gb}", "storage_gib": 100}},
            {"name": "vm", "kind": "create_vm", "inputs": {"hostname": "fin-${params.os}"}},
            {"name": "disk", "kind": "create_volume", "inputs": {"size_gb": 100, "vm": "${steps.vm.vm_ref}"}},
            {"name": "image", "kind": "deploy_image", "inputs": {"image": "${params.image}", "vm": "${steps.vm.vm_ref}"}},
            {"name": "ip", "kind": "allocate_ip", "inputs": {"subnet_id": "${params.subnet_id}"}}
        ]
    })
}

fn nodes(data: &Value, list: &str) -> Vec<Value> {
    data[list]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

struct Setup {
    api: Api,
    app: App,
    pool: String,
    subnet: String,
    chan: String,
    wong: String,
}

/// A server with the engine running over `driver` (none without one), a pool, a subnet
/// and a quota.
async fn setup(fixture: &Fixture, driver: Option<Arc<dyn Driver>>) -> Setup {
    let mut app = App::start(fixture.open().await, Arc::new(SystemClock));
    if let Some(driver) = driver {
        let content = opsledger::store::content::ContentStore::temporary().unwrap();
        app = app.with_automation(content, driver);
        opsledger::processes::engine::start(app.clone());
    }
    let api = Api::over(app.clone()).await;
    let wong = token("u-wong", "運維中心", &["operator"]);
    let admin = token("u-admin", "運維中心", &["admin"]);
    let pool = api.ok(&wong, CREATE_POOL, json!({})).await["createPool"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let subnet = api.ok(&wong, CREATE_SUBNET, json!({})).await["createSubnet"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.ok(&admin, SET_QUOTA, json!({})).await;
    Setup {
        api,
        app,
        pool,
        subnet,
        chan: token("u-chan", "財政局", &["requester"]),
        wong,
    }
}

impl Setup {
    /// A pre-approved VM item fulfilled by `workflow`; its id.
    async fn item(&self, workflow: Value) -> String {
        self.item_and_workflow(workflow).await.0
    }

    /// A pre-approved VM item fulfilled by `workflow`; its id and the workflow's.
    async fn item_and_workflow(&self, workflow: Value) -> (String, String) {
        let w = self
            .api
            .ok(&self.wong, CREATE_WORKFLOW, json!({"d": workflow}))
            .await;
        let workflow_id = w["createWorkflow"]["id"].as_str().unwrap();
        let mut definition = serde_json::to_value(vm_definition(small_vm_pre_approved())).unwrap();
        definition["workflow_id"] = json!(workflow_id.split_once('-').unwrap().1);
        let admin = token("u-lam", "運維中心", &["catalog_admin"]);
        let item = self
            .api
            .ok(&admin, CREATE_ITEM, json!({"d": definition}))
            .await;
        (
            item["createCatalogItem"]["id"].as_str().unwrap().to_owned(),
            workflow_id.to_owned(),
        )
    }

    async fn submit(&self, item: &str, n: u32) -> String {
        let r = self
            .api
            .ok(&self.chan, SUBMIT, json!({"item": item, "cpu": 4, "n": n}))
            .await;
        r["submitRequest"]["id"].as_str().unwrap().to_owned()
    }

    /// Waits for the request to reach `status` (the engine works on its own).
    async fn until(&self, request: &str, status: &str) {
        for _ in 0..400 {
            let body = self
                .api
                .post(Some(&self.wong), REQUEST, json!({"id": request}))
                .await;
            if body.get("errors").is_some() {
                // Read-your-writes is by position, and this query names none.
                assert_eq!(
                    body["errors"][0]["extensions"]["code"], "NOT_FOUND",
                    "{body}"
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
                continue;
            }
            let r = body["data"].clone();
            if r["request"]["status"] == status {
                // And every run has recorded its end.
                let runs = self.runs(request).await;
                if runs
                    .iter()
                    .all(|r| r["status"] == "SUCCEEDED" || r["status"] == "FAILED")
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let runs = self.runs(request).await;
        panic!("the request did not reach {status}: {runs:#?}");
    }

    async fn runs(&self, request: &str) -> Vec<Value> {
        nodes(
            &self.api.ok(&self.wong, RUNS, json!({"r": request})).await,
            "provisioningRuns",
        )
    }

    async fn state(&self) -> Value {
        self.api.ok(&self.wong, STATE, json!({})).await
    }
}

fn simulator(latency_ms: u64) -> Arc<dyn Driver> {
    Arc::new(Simulator::new(SimulatorConfig {
        latency: Duration::from_millis(latency_ms),
        ..Default::default()
    }))
}

async fn an_approved_request_is_provisioned_end_to_end(fixture: &Fixture) {
    let s = setup(fixture, Some(simulator(0))).await;
    let (item, workflow) = s
        .item_and_workflow(vm_workflow(&s.pool, &s.subnet, None))
        .await;
    // A baseline attached to the workflow: what it makes is audited against it.
    let baseline = s
        .api
        .ok(
            &s.wong,
            CREATE_BASELINE,
            json!({"s": {"ntp": "on", "selinux": "enforcing"}}),
        )
        .await["createBaseline"]["id"]
        .clone();
    s.api
        .ok(
            &s.wong,
            ATTACH_BASELINE,
            json!({"id": baseline, "wfs": [workflow]}),
        )
        .await;
    let request = s.submit(&item, 2).await;
    s.until(&request, "FULFILLED").await;

    let runs = s.runs(&request).await;
    assert_eq!(runs.len(), 2, "one run per unit");
    for run in &runs {
        assert_eq!(run["status"], "SUCCEEDED");
        let steps = run["steps"].as_array().unwrap();
        let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["capacity", "vm", "disk", "image", "ip"]);
        assert!(steps.iter().all(|s| s["status"] == "done"), "{run:#}");
        assert!(steps[1]["output"]["vm_ref"]
            .as_str()
            .unwrap()
            .starts_with("sim-vm-"));
        assert_eq!(
            steps[1]["output"]["hostname"], "fin-linux",
            "parameters filled in"
        );
    }
    // The CMDB, pool, address, quota and lease as the runs left them.
    let cis = nodes(
        &s.api.ok(&s.wong, CIS, json!({})).await,
        "configurationItems",
    );
    let vms: Vec<&Value> = cis
        .iter()
        .filter(|c| c["type"] == "VIRTUAL_MACHINE")
        .collect();
    let volumes: Vec<&Value> = cis
        .iter()
        .filter(|c| c["type"] == "STORAGE_VOLUME")
        .collect();
    assert_eq!((vms.len(), volumes.len()), (2, 2));
    for vm in &vms {
        assert_eq!(vm["owner"], "u-chan");
        assert_eq!(vm["department"], "財政局");
        assert_eq!(vm["project"], "電子公文交換");
        assert_eq!(vm["status"], "RUNNING");
        assert_eq!(vm["request"], json!(request));
        assert_eq!(vm["pool"], json!(s.pool));
        assert_eq!(vm["allocated"]["cpuCores"], 4);
        assert_eq!(vm["lease"]["end"], "2027-06-01T00:00:00+00:00");
        assert_eq!(vm["ipAddresses"].as_array().unwrap().len(), 1);
        assert_eq!(vm["attributes"]["os_image"], "rhel-9.4");
        assert!(vm["attributes"]["vm_ref"]
            .as_str()
            .unwrap()
            .starts_with("sim-vm-"));
        assert!(runs.iter().any(|r| r["configurationItem"] == vm["id"]));
        let audits =
            s.api.ok(&s.wong, FINDINGS, json!({"ci": vm["id"]})).await["baselineFindings"].clone();
        assert_eq!(
            audits,
            json!([{"baseline": baseline, "baselineVersion": 1, "compliant": true, "findings": [], "by": "system:engine"}]),
            "audited after provisioning"
        );
    }
    // The run, the workflow and the baseline are found again by their global ids; a
    // requester does not see automation.
    let node = "query($id: ID!) { node(id: $id) { id __typename } }";
    for (id, typename) in [
        (runs[0]["id"].clone(), "ProvisioningRun"),
        (json!(workflow), "Workflow"),
        (baseline.clone(), "Baseline"),
    ] {
        let found = s.api.ok(&s.wong, node, json!({"id": id})).await;
        assert_eq!(found["node"], json!({"id": id, "__typename": typename}));
    }
    let (code, _) = s
        .api
        .code(Some(&s.chan), node, json!({"id": runs[0]["id"]}))
        .await;
    assert_eq!(code, "FORBIDDEN");
    let state = s.state().await;
    assert_eq!(state["pools"][0]["allocated"]["cpuCores"], 8);
    assert_eq!(state["subnets"][0]["used"], 2);
    assert_eq!(state["quotas"][0]["used"]["cpuCores"], 8);
}

async fn a_failing_step_rolls_everything_back(fixture: &Fixture) {
    let s = setup(fixture, Some(simulator(0))).await;
    let item = s
        .item(vm_workflow(&s.pool, &s.subnet, Some("deploy_image")))
        .await;
    let request = s.submit(&item, 1).await;
    s.until(&request, "FAILED").await;
    let run = &s.runs(&request).await[0];
    assert_eq!(run["status"], "FAILED");
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .contains("step `image` failed: simulated failure of deploy_image"),
        "{run}"
    );
    let steps = run["steps"].as_array().unwrap();
    let status: Vec<&str> = steps
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["done", "done", "done", "failed", "pending"]);
    let undo: Vec<&Value> = steps.iter().map(|s| &s["undo"]).collect();
    assert_eq!(
        undo,
        [
            &json!("done"),
            &json!("done"),
            &json!("done"),
            &Value::Null,
            &Value::Null
        ]
    );
    // In reverse order: the volume, the VM, then the capacity.
    let run_id = run["id"].as_str().unwrap().split_once('-').unwrap().1;
    let events = s
        .app
        .store
        .read_stream(&format!("provisioning-{run_id}"), 0)
        .await
        .unwrap();
    let undone: Vec<u64> = events
        .iter()
        .filter(|e| e.event_type == "StepUndone")
        .map(|e| {
            serde_json::from_str::<Value>(&e.data).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(undone, [2, 1, 0]);
    // Nothing is left taken, nothing is in the CMDB.
    let state = s.state().await;
    assert_eq!(state["pools"][0]["allocated"]["cpuCores"], 0);
    assert_eq!(state["subnets"][0]["used"], 0);
    assert_eq!(state["quotas"][0]["used"]["cpuCores"], 0);
    let cis = nodes(
        &s.api.ok(&s.wong, CIS, json!({})).await,
        "configurationItems",
    );
    assert!(cis.is_empty(), "{cis:#?}");
}

async fn a_failed_undo_is_recorded_and_raises_an_incident(fixture: &Fixture) {
    let s = setup(fixture, Some(simulator(0))).await;
    let item = s
        .item(vm_workflow(
            &s.pool,
            &s.subnet,
            Some("deploy_image,undo:create_vm"),
        ))
        .await;
    let request = s.submit(&item, 1).await;
    s.until(&request, "FAILED").await;
    let run = &s.runs(&request).await[0];
    let vm = &run["steps"][1];
    assert_eq!(vm["undo"], "failed");
    assert!(vm["undoError"]
        .as_str()
        .unwrap()
        .contains("simulated failure of create_vm (undo)"));
    let incident = vm["incident"].as_str().expect("an incident was raised");
    // The rest was still undone.
    assert_eq!(run["steps"][0]["undo"], "done");
    assert_eq!(run["steps"][2]["undo"], "done");
    let found = s
        .api
        .ok(
            &s.wong,
            "query($id: ID!) { incident(id: $id) { title status source { kind run item } } }",
            json!({"id": incident}),
        )
        .await;
    assert_eq!(found["incident"]["source"]["kind"], "automation");
    assert_eq!(found["incident"]["source"]["run"], run["id"]);
    assert_eq!(found["incident"]["source"]["item"], "vm");
    assert!(found["incident"]["title"]
        .as_str()
        .unwrap()
        .contains("rollback failed"));
}

async fn a_manual_step_waits_for_an_operator(fixture: &Fixture) {
    let s = setup(fixture, Some(simulator(0))).await;
    let mut workflow = vm_workflow(&s.pool, &s.subnet, None);
    workflow["steps"].as_array_mut().unwrap().insert(
        2,
        json!({"name": "firewall", "kind": "manual", "instructions": "在防火牆上為新主機開通 443 端口", "outputs": ["ticket"]}),
    );
    let item = s.item(workflow).await;
    let request = s.submit(&item, 1).await;
    let mut waiting = Value::Null;
    for _ in 0..200 {
        let runs = s.runs(&request).await;
        if runs
            .first()
            .is_some_and(|r| r["status"] == "WAITING_FOR_OPERATOR")
        {
            waiting = runs[0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        waiting["steps"][2]["status"], "waiting_for_operator",
        "{waiting:#}"
    );
    assert_eq!(waiting["steps"][3]["status"], "pending");
    const COMPLETE: &str = "mutation($run: ID!, $step: String!, $note: String!) { completeManualStep(input: {runId: $run, step: $step, note: $note, output: {ticket: \"FW-1024\"}}) { position } }";
    let vars = |step: &str, note: &str| json!({"run": waiting["id"], "step": step, "note": note});
    let (code, _) = s
        .api
        .code(Some(&s.chan), COMPLETE, vars("firewall", "done"))
        .await;
    assert_eq!(code, "FORBIDDEN");
    let (code, e) = s
        .api
        .code(Some(&s.wong), COMPLETE, vars("gateway", "done"))
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(e["message"].as_str().unwrap().contains("`gateway`"));
    let (code, _) = s
        .api
        .code(Some(&s.wong), COMPLETE, vars("vm", "done"))
        .await;
    assert_eq!(code, "CONFLICT", "the VM step is not waiting");
    s.api
        .ok(&s.wong, COMPLETE, vars("firewall", "443 opened on FW-A"))
        .await;
    s.until(&request, "FULFILLED").await;
    let run = &s.runs(&request).await[0];
    assert_eq!(run["steps"][2]["doneBy"], "u-wong");
    assert_eq!(run["steps"][2]["output"]["ticket"], "FW-1024");
}

async fn a_bad_workflow_is_refused_by_name_and_changes_nothing(fixture: &Fixture) {
    let s = setup(fixture, Some(simulator(0))).await;
    let head = s.app.store.head().await.unwrap();
    let mut cycle = vm_workflow(&s.pool, &s.subnet, None);
    cycle["steps"][0]["after"] = json!(["image"]);
    cycle["steps"][1]["after"] = json!(["capacity"]);
    let (code, e) = s
        .api
        .code(Some(&s.wong), CREATE_WORKFLOW, json!({"d": cycle}))
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(e["extensions"]["field"], "steps");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("capacity → vm → image → capacity"),
        "{e}"
    );
    let mut missing = vm_workflow(&s.pool, &s.subnet, None);
    missing["steps"][0]["inputs"]["cpu"] = json!("${params.cores}");
    let (code, e) = s
        .api
        .code(Some(&s.wong), CREATE_WORKFLOW, json!({"d": missing}))
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(e["extensions"]["field"], "steps[0].inputs.cpu");
    let (code, _) = s
        .api
        .code(
            Some(&s.chan),
            CREATE_WORKFLOW,
            json!({"d": vm_workflow(&s.pool, &s.subnet, None)}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    assert_eq!(
        s.app.store.head().await.unwrap(),
        head,
        "nothing was appended"
    );
}

async fn the_command_driver_provisions_and_a_hang_rolls_back(fixture: &Fixture) {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/drivers");
    let state = tempfile::tempdir().unwrap();
    let mut config = CommandConfig::new(examples.join("opsledger-driver.sh"));
    config.env.insert(
        "OPSLEDGER_DRIVER_STATE".into(),
        state.path().display().to_string(),
    );
    let s = setup(fixture, Some(Arc::new(CommandDriver::new(config)))).await;
    let item = s.item(vm_workflow(&s.pool, &s.subnet, None)).await;
    let request = s.submit(&item, 1).await;
    s.until(&request, "FULFILLED").await;
    let run = &s.runs(&request).await[0];
    assert!(run["steps"][1]["output"]["vm_ref"].is_string(), "{run:#}");
    let state_after = s.state().await;
    assert_eq!(state_after["pools"][0]["allocated"]["cpuCores"], 4);
    drop(s);

    // A driver that hangs: the call times out, the step fails, the capacity goes back.
    let Some(other) = Fixture::new(fixture.kind()).await else {
        return;
    };
    let mut hang = CommandConfig::new(examples.join("hang.sh"));
    hang.timeout = Duration::from_millis(800);
    let s = setup(&other, Some(Arc::new(CommandDriver::new(hang)))).await;
    let item = s.item(vm_workflow(&s.pool, &s.subnet, None)).await;
    let request = s.submit(&item, 1).await;
    s.until(&request, "FAILED").await;
    let run = &s.runs(&request).await[0];
    assert!(
        run["steps"][1]["error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{run:#}"
    );
    assert_eq!(run["steps"][0]["undo"], "done");
    assert_eq!(s.state().await["pools"][0]["allocated"]["cpuCores"], 0);
}

async fn kill_9_in_the_middle_resumes_at_the_right_step(fixture: &Fixture) {
    // A first engine, in a child process, takes 300 ms a step; it is killed mid-run.
    let s = setup(fixture, None).await;
    let item = s.item(vm_workflow(&s.pool, &s.subnet, None)).await;
    let head = s.app.store.head().await.unwrap();
    s.api.stop().await;
    drop(s.app);
    let mut child = support::child("automation::child_runs_a_slow_engine", fixture)
        .spawn()
        .unwrap();
    // The request is made by another process (this one), without an engine of its own.
    let store = fixture.open().await;
    let app = App::start(store.clone(), Arc::new(SystemClock));
    app.runner
        .wait_for(head, Duration::from_secs(10))
        .await
        .unwrap();
    let api = Api::over(app.clone()).await;
    let chan = token("u-chan", "財政局", &["requester"]);
    let r = api
        .ok(&chan, SUBMIT, json!({"item": item, "cpu": 4, "n": 1}))
        .await;
    let request = r["submitRequest"]["id"].as_str().unwrap().to_owned();
    let position = r["submitRequest"]["position"].as_u64().unwrap();
    app.runner
        .wait_for(position, Duration::from_secs(5))
        .await
        .unwrap();
    // Killed once two steps are recorded done and the third is under way.
    let done = |events: &[opsledger_domain::RecordedEvent]| {
        events
            .iter()
            .filter(|e| e.event_type == "StepSucceeded")
            .count()
    };
    let mut stream = None;
    for _ in 0..400 {
        // Read past this process's own idea of the head: the child appends.
        let events = store.read_all(1, 100_000).await.unwrap();
        let run: Vec<_> = events
            .into_iter()
            .filter(|e| e.stream.starts_with("provisioning-"))
            .collect();
        if done(&run) >= 2 {
            stream = Some(run[0].stream.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stream = stream.expect("the child engine moved on");
    child.kill().unwrap();
    child.wait().unwrap();
    let before = store.read_stream(&stream, 0).await.unwrap();
    let done_before = done(&before);
    assert!(done_before < 5, "killed before the end");
    // The next engine resumes.
    opsledger::processes::engine::start(app.clone());
    let wong = token("u-wong", "運維中心", &["operator"]);
    let mut fulfilled = false;
    for _ in 0..400 {
        let r = api.ok(&wong, REQUEST, json!({"id": request})).await;
        if r["request"]["status"] == "FULFILLED" {
            fulfilled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(fulfilled);
    let after = store.read_stream(&stream, 0).await.unwrap();
    // What was done before the kill is kept as it was; each step succeeded once.
    let ids = |events: &[opsledger_domain::RecordedEvent]| {
        events.iter().map(|e| e.id).collect::<Vec<_>>()
    };
    assert_eq!(ids(&after[..before.len()]), ids(&before));
    let mut steps: Vec<u64> = after
        .iter()
        .filter(|e| e.event_type == "StepSucceeded")
        .map(|e| {
            serde_json::from_str::<Value>(&e.data).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    steps.sort();
    assert_eq!(steps, [0, 1, 2, 3, 4], "no step done twice, none lost");
    assert_eq!(
        after
            .iter()
            .filter(|e| e.event_type == "RunSucceeded")
            .count(),
        1
    );
    let state = api.ok(&wong, STATE, json!({})).await;
    assert_eq!(
        state["pools"][0]["allocated"]["cpuCores"], 4,
        "capacity taken once"
    );
}

/// Runs the engine with a slow simulator over the parent's store until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by kill_9_in_the_middle_resumes_at_the_right_step"]
async fn child_runs_a_slow_engine() {
    let Ok(descriptor) = std::env::var(CHILD_STORE_VAR) else {
        return;
    };
    let store = support::open_descriptor(&descriptor).await;
    let app = App::start(store, Arc::new(SystemClock)).with_automation(
        opsledger::store::content::ContentStore::temporary().unwrap(),
        simulator(300),
    );
    opsledger::processes::engine::start(app);
    tokio::time::sleep(Duration::from_secs(120)).await;
}

/// The demo's small-VM item names its workflow: a small VM requested after `opsledger demo`
/// is provisioned by the engine into the demo's first pool and subnet.
async fn the_demo_provisions_a_small_vm_requested_now(fixture: &Fixture) {
    let files = tempfile::tempdir().unwrap();
    let demo = support::opsledger(fixture)
        .arg("demo")
        .arg("--content-dir")
        .arg(files.path())
        .env("OPSLEDGER_JWT_SECRET", "a secret for the demo's tokens")
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let content = opsledger::store::content::ContentStore::temporary().unwrap();
    let app = App::start(fixture.open().await, Arc::new(SystemClock))
        .with_automation(content, simulator(0));
    let head = app.store.head().await.unwrap();
    app.runner
        .wait_for(head, Duration::from_secs(60))
        .await
        .unwrap();
    opsledger::processes::engine::start(app.clone());
    let s = Setup {
        api: Api::over(app.clone()).await,
        app,
        pool: String::new(),
        subnet: String::new(),
        chan: token("u-chan", "財政局", &["requester"]),
        wong: token("u-wong", "運維中心", &["operator"]),
    };
    let item = format!(
        "catalog_item-{}",
        opsledger::tools::demo::item_id("small-vm")
    );
    let request = s.submit(&item, 1).await;
    s.until(&request, "FULFILLED").await;
    let run = &s.runs(&request).await[0];
    assert_eq!(run["workflowVersion"], 1);
    let (pool, subnet) = opsledger::tools::demo::resources::first_pool_and_subnet();
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps[0]["output"]["pool_id"], json!(pool.to_string()));
    assert_eq!(steps[4]["output"]["subnet_id"], json!(subnet.to_string()));
    assert!(steps.iter().all(|s| s["status"] == "done"), "{run:#}");
    drop(s.app);
    s.api.stop().await;
}

/// Counts the calls of each run's steps, around the simulator.
#[derive(Default)]
struct Counting {
    calls: std::sync::Mutex<std::collections::BTreeMap<String, usize>>,
}

#[async_trait::async_trait]
impl Driver for Counting {
    fn name(&self) -> &str {
        "counting"
    }

    async fn call(
        &self,
        call: &opsledger::drivers::DriverCall,
    ) -> Result<opsledger::drivers::DriverOutput, opsledger::drivers::DriverError> {
        let key = format!("{} {} {:?}", call.run_id, call.step, call.phase);
        *self.calls.lock().unwrap().entry(key).or_default() += 1;
        // Slow enough that a second engine, were one at work, would call too (a process
        // on the same SQLite file hears of new events within a second).
        tokio::time::sleep(Duration::from_millis(400)).await;
        Simulator::new(SimulatorConfig::default()).call(call).await
    }
}

/// Two processes share the store, each with an engine: one leads and calls the drivers,
/// each step once; when it stops, the other takes over.
async fn one_engine_leads_among_processes_sharing_the_store(fixture: &Fixture) {
    let counting = Arc::new(Counting::default());
    let s = setup(fixture, None).await;
    let content = || opsledger::store::content::ContentStore::temporary().unwrap();
    let first = s.app.clone().with_automation(content(), counting.clone());
    let leader = opsledger::processes::engine::start(first);
    // The other process: its own store connection, models and engine.
    let other = App::start(fixture.open().await, Arc::new(SystemClock))
        .with_automation(content(), counting.clone());
    let standby = opsledger::processes::engine::start(other.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let item = s.item(vm_workflow(&s.pool, &s.subnet, None)).await;
    let request = s.submit(&item, 2).await;
    s.until(&request, "FULFILLED").await;
    let calls = counting.calls.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        2 * 3,
        "create_vm, create_volume, deploy_image per unit: {calls:?}"
    );
    assert!(
        calls.values().all(|n| *n == 1),
        "each step called once: {calls:?}"
    );

    // The leader stops; the other takes over within a poll or two.
    leader.abort();
    let _ = leader.await;
    let request = s.submit(&item, 1).await;
    s.until(&request, "FULFILLED").await;
    let calls = counting.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 3 * 3, "{calls:?}");
    assert!(calls.values().all(|n| *n == 1), "{calls:?}");
    standby.abort();
}

/// The engine stopped after a run ended but before the request was concluded: the next
/// engine concludes it.
async fn a_restarted_engine_concludes_a_request_whose_runs_ended(fixture: &Fixture) {
    let s = setup(fixture, None).await;
    let content = opsledger::store::content::ContentStore::temporary().unwrap();
    let app = s.app.clone().with_automation(content, simulator(0));
    let engine = opsledger::processes::engine::start(app.clone());
    let item = s
        .item(json!({"name": "防火牆開通", "steps": [
            {"name": "firewall", "kind": "manual", "instructions": "在防火牆上開通 443 端口"}]}))
        .await;
    let request = s.submit(&item, 1).await;
    let mut run = Value::Null;
    for _ in 0..200 {
        if let Some(r) = s.runs(&request).await.first() {
            if r["status"] == "WAITING_FOR_OPERATOR" {
                run = r.clone();
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(run["status"], "WAITING_FOR_OPERATOR", "{run}");
    engine.abort();
    let _ = engine.await;
    // The step is recorded and the run finished, as the engine would, but nothing more.
    const COMPLETE: &str = "mutation($run: ID!) { completeManualStep(input: {runId: $run, step: \"firewall\", note: \"443 opened\"}) { position } }";
    s.api.ok(&s.wong, COMPLETE, json!({"run": run["id"]})).await;
    let run_id: uuid::Uuid = run["id"]
        .as_str()
        .unwrap()
        .split_once('-')
        .unwrap()
        .1
        .parse()
        .unwrap();
    let engine_ctx = opsledger_domain::kernel::aggregate::Context {
        actor: opsledger_domain::Actor::system(opsledger::processes::engine::ACTOR),
        now: chrono::Utc::now(),
    };
    app.bus
        .execute::<opsledger_domain::automation::provisioning::Provisioning>(
            run_id,
            opsledger_domain::automation::provisioning::ProvisioningCommand::Finish,
            &engine_ctx,
            uuid::Uuid::now_v7(),
        )
        .await
        .unwrap();
    let head = app.store.head().await.unwrap();
    app.runner
        .wait_for(head, Duration::from_secs(10))
        .await
        .unwrap();
    let approved = s.api.ok(&s.wong, REQUEST, json!({"id": request})).await;
    assert_eq!(approved["request"]["status"], "APPROVED");

    let engine = opsledger::processes::engine::start(app);
    s.until(&request, "FULFILLED").await;
    engine.abort();
}

/// On PostgreSQL the role is held by a connection: when that connection drops (a server
/// restart, a failover), the engine that held it stops, and the other process leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_whose_lock_connection_drops_stops_and_another_leads() {
    let Some(fixture) = Fixture::new(support::Kind::Postgres).await else {
        return;
    };
    let Fixture::Postgres { url, schema } = &fixture else {
        unreachable!()
    };
    let counting = Arc::new(Counting::default());
    let s = setup(&fixture, None).await;
    let content = || opsledger::store::content::ContentStore::temporary().unwrap();
    let _leader = opsledger::processes::engine::start(
        s.app.clone().with_automation(content(), counting.clone()),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = App::start(fixture.open().await, Arc::new(SystemClock))
        .with_automation(content(), counting.clone());
    let _standby = opsledger::processes::engine::start(other.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The leader's lock connection is cut, as a failover would.
    let (admin, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let cut = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&format!("opsledger lead engine {schema}")],
        )
        .await
        .unwrap();
    assert_eq!(cut.len(), 1, "one process leads");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let item = s.item(vm_workflow(&s.pool, &s.subnet, None)).await;
    let request = s.submit(&item, 2).await;
    s.until(&request, "FULFILLED").await;
    let calls = counting.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2 * 3, "{calls:?}");
    assert!(
        calls.values().all(|n| *n == 1),
        "one engine called each step once: {calls:?}"
    );
}

on_both_backends!(
    a_restarted_engine_concludes_a_request_whose_runs_ended,
    one_engine_leads_among_processes_sharing_the_store,
    the_demo_provisions_a_small_vm_requested_now,
    an_approved_request_is_provisioned_end_to_end,
    a_failing_step_rolls_everything_back,
    a_failed_undo_is_recorded_and_raises_an_incident,
    a_manual_step_waits_for_an_operator,
    a_bad_workflow_is_refused_by_name_and_changes_nothing,
    the_command_driver_provisions_and_a_hang_rolls_back,
    kill_9_in_the_middle_resumes_at_the_right_step
);
