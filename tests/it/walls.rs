//! Over HTTP, on both backends: the walls around what someone may change or learn. An
//! auditor changes nothing, whatever the mutation; another department's entity answers as
//! an absent one does, whatever its state; no token can act as a system component.

use chrono::{Duration, Utc};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::graphql::{token, Api, APPROVE, CREATE, SUBMIT};
use crate::support::{Fixture, Kind};

const GRANT: &str = "mutation($sub: String!, $from: DateTime!, $until: DateTime!) {
    grantDelegation(input: {substitute: $sub, from: $from, until: $until, reason: \"年假\"}) { id position } }";
const CREATE_POOL: &str =
    "mutation { createPool(input: {name: \"x86 虛擬化資源池\", kind: VIRTUAL_MACHINE,
    capacity: {cpuCores: 64, memoryGib: 512, storageGib: 10000}}) { id position } }";
const SET_QUOTA: &str = "mutation { setQuota(input: {department: \"財政局\", limit: {cpuCores: 16, memoryGib: 128, storageGib: 1000}}) { position } }";
const REGISTER: &str = "mutation($name: String!) { registerConfigurationItem(input: {type: VIRTUAL_MACHINE, name: $name,
    attributes: {cpu: 4, memory_gib: 8, disk_gb: 80, vm_ref: \"sim-vm-fin01\"}, department: \"財政局\", owner: \"u-chan\"}) { id position } }";
const RETIRE: &str = "mutation($id: ID!) { retireConfigurationItem(input: {ciId: $id, reason: \"不再需要\"}) { position } }";
const UPDATE: &str = "mutation($id: ID!) { updateConfigurationItem(input: {ciId: $id, attributes: {cpu: 8}}) { position } }";
const MOVE: &str = "mutation($id: ID!, $pool: ID!) { moveConfigurationItem(input: {ciId: $id, poolId: $pool}) { position } }";
const CANCEL: &str = "mutation($id: ID!) { cancelRequest(input: {requestId: $id, reason: \"不需要了\"}) { position } }";
const REJECT: &str = "mutation($id: ID!) { rejectRequest(input: {requestId: $id, step: 0, comment: \"不同意\"}) { position } }";
const EVENTS: &str = "query($after: Int) { events(after: $after, first: 100) { position } }";

fn vm(operation: &str) -> String {
    format!("mutation($id: ID!) {{ {operation}(input: {{ciId: $id, reason: \"維護\"}}) {{ position }} }}")
}

fn good() -> Value {
    json!({"cpu": 4, "memory_gb": 16, "os": "linux", "image": "rhel-9.4"})
}

/// The position of the log's last event, read from the log (not from a read model).
async fn head(api: &Api) -> u64 {
    let wong = token("u-wong", "運維中心", &["operator"]);
    let mut last = 0;
    loop {
        let page = api.ok(&wong, EVENTS, json!({"after": last})).await;
        match page["events"].as_array().unwrap().last() {
            Some(e) => last = e["position"].as_u64().unwrap(),
            None => return last,
        }
    }
}

/// A 財政局 request waiting at its first step, another cancelled, and a live and a
/// retired 財政局 VM; their global ids.
struct Finance {
    live_request: Value,
    cancelled_request: Value,
    live_ci: Value,
    retired_ci: Value,
}

async fn finance(api: &Api) -> Finance {
    let chan = token("u-chan", "財政局", &["requester"]);
    let wong = token("u-wong", "運維中心", &["operator"]);
    let item = api.create_vm_item().await;
    let mut requests = Vec::new();
    for _ in 0..2 {
        let submitted = api
            .ok(&chan, SUBMIT, json!({"item": item, "cfg": good()}))
            .await;
        requests.push(submitted["submitRequest"]["id"].clone());
    }
    api.ok(&chan, CANCEL, json!({"id": requests[1]})).await;
    api.ok(&wong, SET_QUOTA, json!({})).await;
    let mut cis = Vec::new();
    for name in ["fin-vm-01", "fin-vm-02"] {
        let registered = api.ok(&wong, REGISTER, json!({"name": name})).await;
        cis.push(registered["registerConfigurationItem"]["id"].clone());
    }
    api.ok(&wong, RETIRE, json!({"id": cis[1]})).await;
    Finance {
        live_request: requests[0].clone(),
        cancelled_request: requests[1].clone(),
        live_ci: cis[0].clone(),
        retired_ci: cis[1].clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_auditor_changes_nothing() {
    an_auditor_changes_nothing(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_auditor_changes_nothing() {
    an_auditor_changes_nothing(Kind::Postgres).await;
}

async fn an_auditor_changes_nothing(kind: Kind) {
    let Some(fixture) = Fixture::new(kind).await else {
        return;
    };
    let api = Api::start(&fixture).await;
    let finance = finance(&api).await;
    let kwok = token("u-kwok", "審計署", &["auditor"]);
    let now = Utc::now();
    let definition = serde_json::to_value(opsledger_domain::requests::demo::vm_definition(
        opsledger_domain::requests::demo::two_steps(),
    ))
    .unwrap();
    let item = api.create_vm_item().await;
    let mutations: Vec<(String, Value)> = vec![
        (
            GRANT.into(),
            json!({"sub": "u-ip", "from": now, "until": now + Duration::days(3)}),
        ),
        (CREATE.into(), json!({"d": definition})),
        (SUBMIT.into(), json!({"item": item, "cfg": good()})),
        (
            APPROVE.into(),
            json!({"id": finance.live_request, "step": 0}),
        ),
        (CANCEL.into(), json!({"id": finance.live_request})),
        (CREATE_POOL.into(), json!({})),
        (SET_QUOTA.into(), json!({})),
        (REGISTER.into(), json!({"name": "audit-vm"})),
        (RETIRE.into(), json!({"id": finance.live_ci})),
        (vm("stopVm"), json!({"id": finance.live_ci})),
    ];
    let before = head(&api).await;
    for (mutation, variables) in &mutations {
        let (code, error) = api.code(Some(&kwok), mutation, variables.clone()).await;
        assert_eq!(code, "FORBIDDEN", "{mutation}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains("auditor"),
            "{mutation}: {error}"
        );
        assert_eq!(head(&api).await, before, "{mutation} appended nothing");
    }

    // An auditor who is also an operator is judged by the operator role.
    let both = token("u-kwok", "審計署", &["auditor", "operator"]);
    let created = api.ok(&both, CREATE_POOL, json!({})).await;
    assert!(created["createPool"]["position"].as_u64().unwrap() > before);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_only_someone_who_decides_approvals_grants_a_delegation() {
    only_someone_who_decides_approvals_grants_a_delegation(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_only_someone_who_decides_approvals_grants_a_delegation() {
    only_someone_who_decides_approvals_grants_a_delegation(Kind::Postgres).await;
}

async fn only_someone_who_decides_approvals_grants_a_delegation(kind: Kind) {
    let Some(fixture) = Fixture::new(kind).await else {
        return;
    };
    let api = Api::start(&fixture).await;
    let now = Utc::now();
    let vars = json!({"sub": "u-ip", "from": now, "until": now + Duration::days(3)});
    let before = head(&api).await;
    for roles in [&["requester"][..], &[]] {
        let chan = token("u-chan", "財政局", roles);
        let (code, error) = api.code(Some(&chan), GRANT, vars.clone()).await;
        assert_eq!(code, "FORBIDDEN", "{roles:?}: {error}");
        assert_eq!(head(&api).await, before);
    }
    let ho = token("u-ho", "財政局", &["approver"]);
    api.ok(&ho, GRANT, vars).await;
    api.stop().await;
}

/// The answer to a mutation that must fail: its code and message, with the id named
/// replaced, so that answers about different entities compare.
async fn refusal(
    api: &Api,
    who: &str,
    mutation: &str,
    variables: Value,
    id: &Value,
) -> (String, String) {
    let (code, error) = api.code(Some(who), mutation, variables).await;
    let id = id.as_str().unwrap();
    let uuid = id.rsplit_once('-').map_or(id, |(_, u)| u);
    let message = error["message"]
        .as_str()
        .unwrap()
        .replace(id, "<id>")
        .replace(uuid, "<id>");
    (code, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_another_departments_entity_answers_as_an_absent_one() {
    another_departments_entity_answers_as_an_absent_one(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_another_departments_entity_answers_as_an_absent_one() {
    another_departments_entity_answers_as_an_absent_one(Kind::Postgres).await;
}

async fn another_departments_entity_answers_as_an_absent_one(kind: Kind) {
    let Some(fixture) = Fixture::new(kind).await else {
        return;
    };
    let api = Api::start(&fixture).await;
    let finance = finance(&api).await;
    let siu = token("u-siu", "教育局", &["requester"]);
    let absent_ci = json!(format!("ci-{}", Uuid::now_v7()));
    let absent_request = json!(format!("request-{}", Uuid::now_v7()));
    let pool = json!(format!("pool-{}", Uuid::now_v7()));

    let ci_mutations: Vec<(String, Value)> = vec![
        (RETIRE.into(), json!({})),
        (UPDATE.into(), json!({})),
        (MOVE.into(), json!({"pool": pool})),
        (vm("startVm"), json!({})),
        (vm("stopVm"), json!({})),
        (vm("backupVm"), json!({})),
        (vm("deleteVm"), json!({})),
    ];
    let before = head(&api).await;
    for (mutation, extra) in &ci_mutations {
        let mut answers = Vec::new();
        for id in [&finance.live_ci, &finance.retired_ci, &absent_ci] {
            let mut variables = extra.clone();
            variables["id"] = id.clone();
            answers.push(refusal(&api, &siu, mutation, variables, id).await);
        }
        assert_eq!(answers[0].0, "NOT_FOUND", "{mutation}: {answers:?}");
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "{mutation}: live, retired and absent answer alike: {answers:?}"
        );
    }
    for mutation in [APPROVE, REJECT, CANCEL] {
        let mut answers = Vec::new();
        for id in [
            &finance.live_request,
            &finance.cancelled_request,
            &absent_request,
        ] {
            let variables = json!({"id": id, "step": 0});
            answers.push(refusal(&api, &siu, mutation, variables, id).await);
        }
        assert_eq!(answers[0].0, "NOT_FOUND", "{mutation}: {answers:?}");
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "{mutation}: pending, cancelled and absent answer alike: {answers:?}"
        );
    }
    assert_eq!(head(&api).await, before, "nothing was appended");

    // Inside the wall the rules about who may do what still speak.
    let ho = token("u-ho", "財政局", &["requester"]);
    let (code, _) = api
        .code(Some(&ho), RETIRE, json!({"id": finance.live_ci}))
        .await;
    assert_eq!(code, "FORBIDDEN");
    api.stop().await;
}

/// A signed token whose subject is a system component's id, with no roles.
fn system_token() -> String {
    token("system:scheduler", "運維中心", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_no_token_acts_as_a_system_component() {
    no_token_acts_as_a_system_component(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_no_token_acts_as_a_system_component() {
    no_token_acts_as_a_system_component(Kind::Postgres).await;
}

async fn no_token_acts_as_a_system_component(kind: Kind) {
    let Some(fixture) = Fixture::new(kind).await else {
        return;
    };
    let api = Api::start(&fixture).await;
    let forged = system_token();
    let before = head(&api).await;

    // GraphQL over HTTP: refused before anything runs, a mutation included.
    for query in ["{ position }", SET_QUOTA] {
        let (code, error) = api.code(Some(&forged), query, json!({})).await;
        assert_eq!(code, "UNAUTHENTICATED", "{query}: {error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("system component"),
            "{error}"
        );
    }
    assert_eq!(head(&api).await, before);

    // Downloads, uploads and reports: 401, saying why.
    let http = reqwest::Client::new();
    let base = api.base();
    let hash = "0".repeat(64);
    let requests = [
        http.get(format!("{base}/content/{hash}")),
        http.put(format!("{base}/content")).body("x"),
        http.get(format!(
            "{base}/reports/usage.csv?groupBy=department&from=2026-12-01T00:00:00Z&to=2027-01-01T00:00:00Z"
        )),
        http.get(format!("{base}/reports/incidents/incident-{}.md", Uuid::now_v7())),
    ];
    for request in requests {
        let response = request.bearer_auth(&forged).send().await.unwrap();
        let url = response.url().clone();
        assert_eq!(response.status(), 401, "{url}");
        let body = response.text().await.unwrap();
        assert!(body.contains("system component"), "{url}: {body}");
    }

    // Subscriptions: the connection is not acknowledged, and the close says why.
    let url = base.replace("http://", "ws://") + "/graphql/ws";
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {forged}")}});
    socket.send(Message::text(init.to_string())).await.unwrap();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next())
        .await
        .expect("an answer in time");
    match answer {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert!(frame.reason.contains("system component"), "{frame:?}");
        }
        other => panic!("the connection is closed with a reason, not {other:?}"),
    }
    api.stop().await;
}
