//! Resources over HTTP on both backends: a request fulfilled into pool capacity, an
//! address and two CMDB items with leases; notices, an extension and a reclamation driven
//! by a manual clock across restarts; quotas; races for the last capacity, address and
//! quota; usage and `asOf` answers equal to a fresh replay's; the CSV report.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::future::join_all;
use opsledger::app::{App, ManualClock};
use opsledger::processes::scheduler::{run_leases, LeasePass};
use serde_json::{json, Value};

use crate::graphql::{token, Api, APPROVE};
use crate::support::Fixture;

const CREATE_POOL: &str =
    "mutation($cpu: Int!) { createPool(input: {name: \"x86 虛擬化資源池\", kind: VIRTUAL_MACHINE,
    capacity: {cpuCores: $cpu, memoryGib: 4096, storageGib: 100000}}) { id position } }";
const CREATE_SUBNET: &str = "mutation($cidr: String!) { createSubnet(input: {name: \"政務外網\", cidr: $cidr, gateway: \"10.120.0.1\", vlan: 120}) { id position } }";
const SET_QUOTA: &str = "mutation($cpu: Int!) { setQuota(input: {department: \"財政局\", limit: {cpuCores: $cpu, memoryGib: 1024, storageGib: 10000}}) { position } }";
const REGISTER: &str = "mutation($pool: ID, $subnet: ID, $name: String!) { registerConfigurationItem(input: {type: VIRTUAL_MACHINE, name: $name,
    attributes: {cpu: 1, memory_gib: 2}, department: \"財政局\", project: \"稅務系統\", poolId: $pool, subnetId: $subnet}) { id position } }";
const SUBMIT_VMS: &str = "mutation($item: ID!, $cpu: Int!, $n: Int!) { submitRequest(input: {itemId: $item, kind: NEW_RESOURCE,
    configuration: {cpu: $cpu, memory_gb: 16, os: \"linux\", image: \"rhel-9.4\"}, quantity: $n,
    project: \"電子公文交換\", periodStart: \"2026-12-01\", periodEnd: \"2026-12-31\"}) { id position } }";
const FULFIL: &str = "mutation($id: ID!, $resources: [FulfilledResourceInput!]!) { fulfilRequest(input: {requestId: $id, resources: $resources}) { position } }";
const POOLS: &str = "query($asOf: AsOfInput) { pools(asOf: $asOf) { id name total { cpuCores } allocated { cpuCores memoryGib } free { cpuCores }
    resources { running stopped retired } forecast { allocationRate aboveThreshold } position } }";
const CIS: &str = "query($f: CiFilterInput) { configurationItems(filter: $f, first: 100) { edges { node {
    id name status ipAddresses department project owner lease { start end } request pool allocated { cpuCores } } } } }";
const USAGE: &str = "query($asOf: AsOfInput) { usage(groupBy: PROJECT, from: \"2026-12-01T00:00:00Z\", to: \"2027-01-01T00:00:00Z\", asOf: $asOf) {
    department project cpuCoreHours memoryGibHours resources peak { cpuCores } } }";

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn id(data: &Value, mutation: &str) -> String {
    data[mutation]["id"].as_str().unwrap().to_owned()
}

fn nodes(data: &Value, list: &str) -> Vec<Value> {
    data[list]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// A server over the fixture's log, once it has replayed it.
async fn start(fixture: &Fixture, clock: &Arc<ManualClock>) -> (Api, App) {
    let app = App::start(fixture.open().await, clock.clone());
    let head = app.store.head().await.unwrap();
    app.runner
        .wait_for(head, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    (Api::over(app.clone()).await, app)
}

/// Waits until the models reflect every event written so far (PostgreSQL's feed may lag
/// a moment behind a write).
async fn caught_up(app: &App) {
    let head = app.store.head().await.unwrap();
    app.runner
        .wait_for(head, std::time::Duration::from_secs(5))
        .await
        .unwrap();
}

/// Passes until nothing more is due (a pass finds what the models showed when it began).
async fn settle(app: &App) -> LeasePass {
    let head = app.store.head().await.unwrap();
    app.runner
        .wait_for(head, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let pass = run_leases(app, &[7, 1]).await.unwrap();
    let head = app.store.head().await.unwrap();
    app.runner
        .wait_for(head, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    pass
}

async fn lifecycle(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(at(2026, 12, 1, 8)));
    let (api, app) = start(fixture, &clock).await;
    let chan = token("u-chan", "財政局", &["requester"]);
    let ho = token("u-ho", "財政局", &["approver"]);
    let wong = token("u-wong", "運維中心", &["operator"]);
    let admin = token("u-admin", "運維中心", &["admin"]);

    let pool = id(
        &api.ok(&wong, CREATE_POOL, json!({"cpu": 64})).await,
        "createPool",
    );
    let subnet = id(
        &api.ok(&wong, CREATE_SUBNET, json!({"cidr": "10.120.0.0/29"}))
            .await,
        "createSubnet",
    );
    api.ok(&admin, SET_QUOTA, json!({"cpu": 16})).await;
    let item = api.create_vm_item().await;

    // Two VMs of 4 cores: within the quota of 16.
    let request = id(
        &api.ok(&chan, SUBMIT_VMS, json!({"item": item, "cpu": 4, "n": 2}))
            .await,
        "submitRequest",
    );
    api.ok(&ho, APPROVE, json!({"id": request, "step": 0}))
        .await;
    api.ok(&wong, APPROVE, json!({"id": request, "step": 1}))
        .await;
    let resource = |name: &str| json!({"name": name, "poolId": pool, "subnetId": subnet, "watchers": ["u-ip"]});
    let (code, error) = api
        .code(
            Some(&wong),
            FULFIL,
            json!({"id": request, "resources": [resource("fin-a")]}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{error}");
    assert_eq!(error["extensions"]["field"], "resources");
    let fulfilled = api
        .ok(
            &wong,
            FULFIL,
            json!({"id": request, "resources": [resource("fin-a"), resource("fin-b")]}),
        )
        .await;
    let fulfilled_at = fulfilled["fulfilRequest"]["position"].as_u64().unwrap();

    caught_up(&app).await;
    let cis = nodes(&api.ok(&chan, CIS, json!({})).await, "configurationItems");
    assert_eq!(cis.len(), 2, "{cis:?}");
    assert_eq!(cis[0]["ipAddresses"], json!(["10.120.0.2"]));
    assert_eq!(cis[1]["ipAddresses"], json!(["10.120.0.3"]));
    assert_eq!(cis[0]["owner"], "u-chan");
    assert_eq!(cis[0]["request"], request.as_str());
    assert_eq!(cis[0]["lease"]["end"], "2027-01-01T00:00:00+00:00");
    assert_eq!(cis[0]["allocated"]["cpuCores"], 4);
    let (a, b) = (
        cis[0]["id"].as_str().unwrap().to_owned(),
        cis[1]["id"].as_str().unwrap().to_owned(),
    );
    let pools = api.ok(&wong, POOLS, json!({})).await;
    assert_eq!(pools["pools"][0]["allocated"]["cpuCores"], 8);
    assert_eq!(pools["pools"][0]["resources"]["running"], 2);
    let status = api
        .ok(
            &chan,
            "query($id: ID!) { request(id: $id) { status } }",
            json!({"id": request}),
        )
        .await;
    assert_eq!(status["request"]["status"], "FULFILLED");

    // 2 × 8 more cores exceed the quota: routed to the item's over-quota step.
    let over = id(
        &api.ok(&chan, SUBMIT_VMS, json!({"item": item, "cpu": 8, "n": 2}))
            .await,
        "submitRequest",
    );
    caught_up(&app).await;
    let chain = api
        .ok(
            &chan,
            "query($id: ID!) { request(id: $id) { steps { name } } }",
            json!({"id": over}),
        )
        .await;
    assert_eq!(chain["request"]["steps"][2]["name"], "超額審批", "{chain}");
    // An item without an over-quota step refuses it at submission, saying why.
    let mut strict = serde_json::to_value(opsledger_domain::requests::demo::vm_definition(
        opsledger_domain::requests::demo::two_steps(),
    ))
    .unwrap();
    strict["over_quota_step"] = Value::Null;
    let catalog_admin = token("u-lam", "運維中心", &["catalog_admin"]);
    let strict = api
        .ok(
            &catalog_admin,
            "mutation($d: JSON!) { createCatalogItem(input: {definition: $d}) { id } }",
            json!({"d": strict}),
        )
        .await;
    let strict = id(&strict, "createCatalogItem");
    let (code, error) = api
        .code(
            Some(&chan),
            SUBMIT_VMS,
            json!({"item": strict, "cpu": 8, "n": 2}),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    assert_eq!(
        error["message"],
        "the quota of department 財政局 would be exceeded: cpu_cores 16 needed, 8 left of 16"
    );

    // 7 days before the end, owner notices; a restart notices nothing twice.
    clock.advance(at(2026, 12, 25, 1) - at(2026, 12, 1, 8));
    assert_eq!(
        settle(&app).await,
        LeasePass {
            noticed: 2,
            ..LeasePass::default()
        }
    );
    api.stop().await;
    let (api, app) = start(fixture, &clock).await;
    assert_eq!(settle(&app).await, LeasePass::default());
    let notices = api
        .ok(
            &chan,
            "{ notifications(first: 50) { edges { node { kind entity } } } }",
            json!({}),
        )
        .await;
    let ending: Vec<Value> = nodes(&notices, "notifications")
        .into_iter()
        .filter(|n| n["kind"] == "LEASE_ENDING")
        .collect();
    assert_eq!(ending.len(), 2, "{notices}");
    let watcher = token("u-ip", "財政局", &["requester"]);
    let watched = api
        .ok(
            &watcher,
            "{ notifications(first: 50) { edges { node { kind } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        nodes(&watched, "notifications").len(),
        2,
        "the watcher is told too: {watched}"
    );

    // The owner extends one through the request flow.
    let extend = api
        .ok(
            &chan,
            "mutation($item: ID!, $ci: ID!) { submitRequest(input: {itemId: $item, kind: EXTEND_LEASE, resourceId: $ci,
                newEnd: \"2027-01-31\", reason: \"項目延期\"}) { id } }",
            json!({"item": item, "ci": a}),
        )
        .await;
    let extend = id(&extend, "submitRequest");
    api.ok(&ho, APPROVE, json!({"id": extend, "step": 0})).await;
    api.ok(&wong, APPROVE, json!({"id": extend, "step": 1}))
        .await;
    assert_eq!(
        settle(&app).await,
        LeasePass {
            extended: 1,
            ..LeasePass::default()
        }
    );

    // Past the end, but a freeze holds the item (the year-end close): nothing is
    // reclaimed until it is lifted; then the other is reclaimed, by the scheduler, once.
    let cm = token("u-cm", "運維中心", &["change_manager"]);
    let freeze = api
        .ok(
            &cm,
            "mutation($ci: ID!) { declareFreeze(input: {name: \"年終封網\", reason: \"財政年結\",
                window: {start: \"2026-12-31T00:00:00Z\", end: \"2027-01-03T00:00:00Z\"}, configurationItems: [$ci]}) { id } }",
            json!({"ci": b}),
        )
        .await["declareFreeze"]["id"]
        .clone();
    clock.advance(at(2027, 1, 1, 0) + Duration::seconds(1) - at(2026, 12, 25, 1));
    assert_eq!(
        settle(&app).await,
        LeasePass {
            held: 1,
            ..LeasePass::default()
        }
    );
    api.ok(
        &cm,
        "mutation($id: ID!) { liftFreeze(input: {freezeId: $id, reason: \"年結完成\"}) { position } }",
        json!({"id": freeze}),
    )
    .await;
    assert_eq!(
        settle(&app).await,
        LeasePass {
            reclaimed: 1,
            ..LeasePass::default()
        }
    );
    api.stop().await;
    let (api, app) = start(fixture, &clock).await;
    assert_eq!(settle(&app).await, LeasePass::default());

    let one = "query($id: ID!, $asOf: AsOfInput) { configurationItem(id: $id, asOf: $asOf) {
        status lease { end } ipAddresses history { type actor } } }";
    let kept = api.ok(&chan, one, json!({"id": a})).await;
    assert_eq!(kept["configurationItem"]["status"], "RUNNING");
    assert_eq!(
        kept["configurationItem"]["lease"]["end"],
        "2027-02-01T00:00:00+00:00"
    );
    let gone = api.ok(&chan, one, json!({"id": b})).await;
    assert_eq!(gone["configurationItem"]["status"], "RETIRED");
    assert_eq!(
        gone["configurationItem"]["ipAddresses"],
        json!([]),
        "its address went back"
    );
    let history = gone["configurationItem"]["history"].as_array().unwrap();
    let types: Vec<&str> = history
        .iter()
        .map(|h| h["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["CiRegistered", "LeaseEndNoticed", "CiStopped", "CiRetired"]
    );
    assert_eq!(history[3]["actor"], "system:scheduler");
    // As it stood when the request was fulfilled: running, with its address.
    let then = api
        .ok(
            &chan,
            one,
            json!({"id": b, "asOf": {"position": fulfilled_at}}),
        )
        .await;
    assert_eq!(then["configurationItem"]["status"], "RUNNING");
    assert_eq!(
        then["configurationItem"]["ipAddresses"],
        json!(["10.120.0.3"])
    );

    // The CMDB view as it was: both running then, one now.
    let running = "query($asOf: AsOfInput) { configurationItems(filter: {status: RUNNING, type: VIRTUAL_MACHINE}, asOf: $asOf) {
        edges { node { name ipAddresses } } } }";
    let then = api
        .ok(&wong, running, json!({"asOf": {"position": fulfilled_at}}))
        .await;
    let names: Vec<Value> = nodes(&then, "configurationItems")
        .iter()
        .map(|n| n["name"].clone())
        .collect();
    assert_eq!(names, [json!("fin-a"), json!("fin-b")], "{then}");
    let now = api.ok(&wong, running, json!({})).await;
    assert_eq!(nodes(&now, "configurationItems").len(), 1, "{now}");

    let pools = api.ok(&wong, POOLS, json!({})).await;
    let p = &pools["pools"][0];
    assert_eq!(p["allocated"]["cpuCores"], 4);
    assert_eq!(
        p["resources"],
        json!({"running": 1, "stopped": 0, "retired": 1})
    );
    let past = api
        .ok(&wong, POOLS, json!({"asOf": {"position": fulfilled_at}}))
        .await;
    assert_eq!(past["pools"][0]["allocated"]["cpuCores"], 8);
    let subnets = api.ok(&wong, "{ subnets { used size } }", json!({})).await;
    assert_eq!(subnets["subnets"][0], json!({"used": 1, "size": 5}));
    let quotas = api
        .ok(
            &chan,
            "{ quotas { department used { cpuCores } } }",
            json!({}),
        )
        .await;
    assert_eq!(quotas["quotas"][0]["used"]["cpuCores"], 4);

    // Usage for December: 2 VMs × 4 cores from 1 Dec 08:00, one to 1 Jan 00:00:01, one on.
    let usage = api.ok(&wong, USAGE, json!({})).await;
    let row = &usage["usage"][0];
    assert_eq!(row["project"], "電子公文交換");
    assert_eq!(row["resources"], 2);
    assert_eq!(row["peak"]["cpuCores"], 8);
    let hours = (at(2027, 1, 1, 0) - at(2026, 12, 1, 8)).num_seconds() as f64 / 3600.0;
    let got = row["cpuCoreHours"].as_f64().unwrap();
    assert!((got - 8.0 * hours).abs() < 0.01, "{got} vs {}", 8.0 * hours);

    // A fresh replay gives the same answers, now and as of the fulfilment.
    let head = app.store.head().await.unwrap();
    api.stop().await;
    let (api, _app) = start(fixture, &clock).await;
    for as_of in [json!({"position": head}), json!({"position": fulfilled_at})] {
        let vars = json!({"asOf": as_of});
        assert_eq!(
            api.ok(&wong, USAGE, vars.clone()).await,
            usage_at(fixture, &clock, USAGE, &vars).await
        );
        assert_eq!(
            api.ok(&wong, POOLS, vars.clone()).await,
            usage_at(fixture, &clock, POOLS, &vars).await
        );
    }

    // The same table as CSV, with the same access rules.
    let http = reqwest::Client::new();
    let url = format!(
        "{}/reports/usage.csv?groupBy=project&from=2026-12-01T00:00:00Z&to=2027-01-01T00:00:00Z",
        api.base()
    );
    let csv = http.get(&url).bearer_auth(&wong).send().await.unwrap();
    assert_eq!(csv.status(), 200);
    let body = csv.text().await.unwrap();
    let mut lines = body.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("period_start,period_end,pool,"));
    assert!(lines.next().unwrap().contains("電子公文交換"), "{body}");
    let other = token("u-lee", "社會福利署", &["requester"]);
    let forbidden = http
        .get(format!("{url}&department=財政局"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    let bad = http
        .get(url.replace("groupBy=project", "groupBy=planet"))
        .bearer_auth(&wong)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().starts_with("groupBy:"));
    api.stop().await;
}

/// The answer to `query` from a second server replaying the same log.
async fn usage_at(fixture: &Fixture, clock: &Arc<ManualClock>, query: &str, vars: &Value) -> Value {
    let (api, _app) = start(fixture, clock).await;
    let wong = token("u-wong", "運維中心", &["operator"]);
    let answer = api.ok(&wong, query, vars.clone()).await;
    api.stop().await;
    answer
}

/// Many deployments at once for the last capacity, addresses and quota: exactly as many
/// succeed as there is room for, no address twice, and a replay agrees.
async fn races_for_the_last_capacity(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(at(2026, 12, 1, 8)));
    let (api, app) = start(fixture, &clock).await;
    let wong = token("u-wong", "運維中心", &["operator"]);
    let admin = token("u-admin", "運維中心", &["admin"]);
    let small = id(
        &api.ok(&wong, CREATE_POOL, json!({"cpu": 100})).await,
        "createPool",
    );
    let big = id(
        &api.ok(&wong, CREATE_POOL, json!({"cpu": 100000})).await,
        "createPool",
    );
    let subnet = id(
        &api.ok(&wong, CREATE_SUBNET, json!({"cidr": "10.120.0.0/27"}))
            .await,
        "createSubnet",
    );

    let race = |pool: Option<&str>, subnet: Option<&str>, n: usize| {
        let api = &api;
        let wong = &wong;
        let (pool, subnet) = (pool.map(str::to_owned), subnet.map(str::to_owned));
        join_all((0..n).map(move |i| {
            let vars = json!({"pool": pool, "subnet": subnet, "name": format!("vm-{i}")});
            async move { api.post(Some(wong), REGISTER, vars).await }
        }))
    };
    let won = |answers: &[Value]| answers.iter().filter(|a| a.get("errors").is_none()).count();

    // 200 deployments of one core for a pool of 100.
    let answers = race(Some(&small), None, 200).await;
    assert_eq!(won(&answers), 100);
    for lost in answers.iter().filter(|a| a.get("errors").is_some()) {
        assert_eq!(
            lost["errors"][0]["extensions"]["code"], "CONFLICT",
            "{lost}"
        );
        let message = lost["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("not enough cpu_cores"), "{message}");
    }

    // 60 for a subnet of 29 allocatable addresses: 29, each address once.
    let answers = race(None, Some(&subnet), 60).await;
    assert_eq!(won(&answers), 29);
    caught_up(&app).await;
    let subnets = api
        .ok(
            &wong,
            "{ subnets { used allocations { address } } }",
            json!({}),
        )
        .await;
    let mut addresses: Vec<String> = subnets["subnets"][0]["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap().to_owned())
        .collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 29);

    // A quota of 120 cores for the department, which holds 100 already: 20 more.
    api.ok(&admin, SET_QUOTA, json!({"cpu": 120})).await;
    let answers = race(Some(&big), None, 50).await;
    assert_eq!(won(&answers), 20);
    caught_up(&app).await;

    let pools = api.ok(&wong, POOLS, json!({})).await;
    assert_eq!(pools["pools"][0]["allocated"]["cpuCores"], 100);
    assert_eq!(pools["pools"][0]["free"]["cpuCores"], 0);
    assert_eq!(pools["pools"][0]["resources"]["running"], 100);
    assert_eq!(pools["pools"][1]["allocated"]["cpuCores"], 20);
    assert_eq!(
        pools,
        usage_at(fixture, &clock, POOLS, &json!({})).await,
        "a replay gives the live state"
    );
    api.stop().await;
}

/// The CMDB: a move takes the capacity along, relationships give the impact of a host's
/// failure as it stood at any position, every attribute change is in the history, and a
/// project's quota holds.
async fn the_cmdb_tracks_moves_relationships_and_changes(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(at(2026, 12, 1, 8)));
    let (api, app) = start(fixture, &clock).await;
    let wong = token("u-wong", "運維中心", &["operator"]);
    let a = id(
        &api.ok(&wong, CREATE_POOL, json!({"cpu": 64})).await,
        "createPool",
    );
    let b = id(
        &api.ok(&wong, CREATE_POOL, json!({"cpu": 64})).await,
        "createPool",
    );
    let host = api
        .ok(
            &wong,
            "mutation { registerConfigurationItem(input: {type: HOST, name: \"host-01\", department: \"運維中心\",
                attributes: {model: \"x86 2U\", importance: \"important\"}}) { id } }",
            json!({}),
        )
        .await;
    let host = id(&host, "registerConfigurationItem");
    let vm = id(
        &api.ok(&wong, REGISTER, json!({"pool": a, "name": "fin-db-01"}))
            .await,
        "registerConfigurationItem",
    );
    let app_ci = api
        .ok(
            &wong,
            "mutation { registerConfigurationItem(input: {type: APPLICATION, name: \"稅務系統\", department: \"財政局\"}) { id } }",
            json!({}),
        )
        .await;
    let app_ci = id(&app_ci, "registerConfigurationItem");
    let relate = "mutation($ci: ID!, $to: ID!, $r: Relation!) { relateConfigurationItems(input: {ciId: $ci, relation: $r, targetId: $to}) { position } }";
    api.ok(&wong, relate, json!({"ci": vm, "to": host, "r": "RUNS_ON"}))
        .await;
    let related = api
        .ok(&wong, relate, json!({"ci": app_ci, "to": vm, "r": "USES"}))
        .await;
    let related_at = related["relateConfigurationItems"]["position"]
        .as_u64()
        .unwrap();
    let (code, error) = api
        .code(
            Some(&wong),
            relate,
            json!({"ci": vm, "to": "ci-0190b3a4-7d2e-7c4e-9a51-2b0f0a9a0001", "r": "USES"}),
        )
        .await;
    assert_eq!(
        (code.as_str(), &error["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("targetId"))
    );

    let update = "mutation($ci: ID!, $a: JSON!) { updateConfigurationItem(input: {ciId: $ci, attributes: $a}) { position } }";
    api.ok(
        &wong,
        update,
        json!({"ci": vm, "a": {"os_image": "rhel-9.4", "memory_gib": 2}}),
    )
    .await;
    let (code, _) = api
        .code(
            Some(&wong),
            update,
            json!({"ci": vm, "a": {"os_image": "rhel-9.4"}}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "a change that changes nothing");
    let moved = "mutation($ci: ID!, $p: ID!) { moveConfigurationItem(input: {ciId: $ci, poolId: $p}) { position } }";
    api.ok(&wong, moved, json!({"ci": vm, "p": b})).await;
    let unrelate = "mutation($ci: ID!, $to: ID!) { unrelateConfigurationItems(input: {ciId: $ci, relation: USES, targetId: $to}) { position } }";
    api.ok(&wong, unrelate, json!({"ci": app_ci, "to": vm}))
        .await;
    caught_up(&app).await;

    let pools = api.ok(&wong, POOLS, json!({})).await;
    assert_eq!(pools["pools"][0]["allocated"]["cpuCores"], 0, "{pools}");
    assert_eq!(pools["pools"][1]["allocated"]["cpuCores"], 1, "{pools}");
    assert_eq!(pools["pools"][1]["resources"]["running"], 1);

    let impact = "query($id: ID!, $asOf: AsOfInput) { configurationItem(id: $id, asOf: $asOf) { impact { name relation depth } } }";
    let now = api.ok(&wong, impact, json!({"id": host})).await;
    assert_eq!(
        now["configurationItem"]["impact"],
        json!([{"name": "fin-db-01", "relation": "RUNS_ON", "depth": 1}])
    );
    let then = api
        .ok(
            &wong,
            impact,
            json!({"id": host, "asOf": {"position": related_at}}),
        )
        .await;
    assert_eq!(
        then["configurationItem"]["impact"],
        json!([
            {"name": "fin-db-01", "relation": "RUNS_ON", "depth": 1},
            {"name": "稅務系統", "relation": "USES", "depth": 2}
        ])
    );
    let history = api
        .ok(
            &wong,
            "query($id: ID!) { configurationItem(id: $id) { pool attributes history { type data } } }",
            json!({"id": vm}),
        )
        .await;
    let ci = &history["configurationItem"];
    assert_eq!(ci["pool"], b.as_str());
    assert_eq!(ci["attributes"]["os_image"], "rhel-9.4");
    let events = ci["history"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "CiRegistered",
            "CiRelated",
            "CiAttributesChanged",
            "CiMoved"
        ]
    );
    assert_eq!(
        events[2]["data"]["changes"],
        json!([{"name": "os_image", "before": null, "after": "rhel-9.4"}]),
        "only what changed, with before and after"
    );

    // Counted things: a pool with one Oracle licence lends it to one database at a time.
    let c = api
        .ok(
            &wong,
            "mutation { createPool(input: {name: \"數據庫資源池\", kind: DATABASE, capacity: {cpuCores: 64, memoryGib: 256, storageGib: 1000},
                units: [{unit: \"oracle_licence\", count: 1}]}) { id } }",
            json!({}),
        )
        .await;
    let c = id(&c, "createPool");
    let db = "mutation($p: ID!, $n: String!) { registerConfigurationItem(input: {type: DATABASE, name: $n, department: \"運維中心\",
        poolId: $p, attributes: {cpu: 2, memory_gib: 8}, units: [{unit: \"oracle_licence\", count: 1}]}) { id } }";
    let db1 = id(
        &api.ok(&wong, db, json!({"p": c, "n": "ora-01"})).await,
        "registerConfigurationItem",
    );
    let (code, error) = api
        .code(Some(&wong), db, json!({"p": c, "n": "ora-02"}))
        .await;
    assert_eq!(code, "CONFLICT");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("not enough oracle_licence"),
        "{error}"
    );
    let set_units = "mutation($p: ID!, $n: Int!) { setPoolUnits(input: {poolId: $p, unit: \"oracle_licence\", count: $n}) { position } }";
    let (code, error) = api
        .code(Some(&wong), set_units, json!({"p": c, "n": 0}))
        .await;
    assert_eq!(
        (code.as_str(), &error["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("count"))
    );
    api.ok(&wong, set_units, json!({"p": c, "n": 2})).await;
    api.ok(&wong, db, json!({"p": c, "n": "ora-02"})).await;
    let retire = "mutation($ci: ID!) { retireConfigurationItem(input: {ciId: $ci, reason: \"停用\"}) { position } }";
    api.ok(&wong, retire, json!({"ci": db1})).await;
    caught_up(&app).await;
    let licences = api
        .ok(
            &wong,
            "query($id: ID!) { pool(id: $id) { units { unit total allocated free } } }",
            json!({"id": c}),
        )
        .await;
    assert_eq!(
        licences["pool"]["units"],
        json!([{"unit": "oracle_licence", "total": 2, "allocated": 1, "free": 1}])
    );

    // A project quota of one core, which fin-db-01 holds: the next is refused, by name.
    api.ok(
        &wong,
        "mutation { setQuota(input: {department: \"財政局\", project: \"稅務系統\", limit: {cpuCores: 1, memoryGib: 64, storageGib: 100}}) { position } }",
        json!({}),
    )
    .await;
    let (code, error) = api
        .code(
            Some(&wong),
            REGISTER,
            json!({"pool": a, "name": "fin-db-02"}),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("quota of project 稅務系統 of 財政局"),
        "{error}"
    );
    api.stop().await;
}

/// Bad input names what is wrong and changes nothing.
async fn bad_input_is_named(fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(at(2026, 12, 1, 8)));
    let (api, app) = start(fixture, &clock).await;
    let wong = token("u-wong", "運維中心", &["operator"]);
    let chan = token("u-chan", "財政局", &["requester"]);
    let before = app.store.head().await.unwrap();
    let cases = [
        (CREATE_SUBNET, json!({"cidr": "10.120.0.0/33"}), "cidr"),
        (
            "mutation { registerConfigurationItem(input: {type: HOST, name: \"h1\", department: \"運維中心\", attributes: {cpu: \"many\"}}) { id } }",
            json!({}),
            "attributes.cpu",
        ),
        (
            "mutation { registerConfigurationItem(input: {type: HOST, name: \"h1\", department: \"運維中心\", poolId: \"request-0190b3a4-7d2e-7c4e-9a51-2b0f0a9a0001\"}) { id } }",
            json!({}),
            "poolId",
        ),
        (
            "{ pools(asOf: {position: 999999}) { id } }",
            json!({}),
            "asOf.position",
        ),
    ];
    for (query, vars, field) in cases {
        let (code, error) = api.code(Some(&wong), query, vars).await;
        assert_eq!(
            (code.as_str(), error["extensions"]["field"].as_str()),
            ("BAD_USER_INPUT", Some(field)),
            "{error}"
        );
    }
    let (code, _) = api.code(Some(&chan), CREATE_POOL, json!({"cpu": 4})).await;
    assert_eq!(code, "FORBIDDEN");
    assert_eq!(
        app.store.head().await.unwrap(),
        before,
        "nothing was written"
    );
    api.stop().await;
}

on_both_backends!(
    lifecycle,
    races_for_the_last_capacity,
    the_cmdb_tracks_moves_relationships_and_changes,
    bad_input_is_named
);
