//! Input honesty at the GraphQL edge, over real HTTP: numbers, dates and strings out of
//! their documented range are `BAD_USER_INPUT` naming the field and append nothing;
//! async-graphql's own refusals carry a code too; a `clientMutationId` used again with
//! another input is a conflict, with the same input the first outcome.

use std::sync::Arc;

use opsledger::app::{App, SystemClock};
use opsledger_domain::requests::demo::{two_steps, vm_definition};
use serde_json::{json, Value};

use crate::graphql::{token, Api, CREATE};
use crate::support::{Fixture, Kind};

/// The server's answer as JSON; a reply that is not (a panic cut the connection) fails the
/// test with what came back.
async fn answer(api: &Api, token: &str, query: &str, variables: Value) -> Value {
    let reply = reqwest::Client::new()
        .post(format!("{}/graphql", api.base()))
        .bearer_auth(token)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await;
    let text = match reply {
        Ok(reply) => reply.text().await.unwrap_or_default(),
        Err(e) => panic!("no reply to {query}: {e}"),
    };
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON for {query}: {text:?}"))
}

/// The first error's code and field.
fn refusal(body: &Value) -> (String, String, String) {
    let e = &body["errors"][0];
    (
        e["extensions"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        e["extensions"]["field"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        e["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_and_dates_out_of_range_are_refused_naming_the_argument() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    let chan = token("u-chan", "財政局", &["requester"]);
    let desk = token("u-desk", "運維中心", &["service_desk"]);
    let auditor = token("u-audit", "審計署", &["auditor"]);
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            &chan,
            "{ pools(windowDays: 2147483647) { name } }",
            "windowDays",
            "windowDays: 2147483647 is out of range 1–3650",
        ),
        (
            &desk,
            "{ slaAtRisk(withinMinutes: 10000000000000) { position } }",
            "withinMinutes",
            "withinMinutes: 10000000000000 is out of range 0–525600",
        ),
        (&chan, "{ pools(windowDays: 0) { name } }", "windowDays", "out of range 1–3650"),
        (&chan, "{ pools(alertThreshold: 7.5) { name } }", "alertThreshold", "out of range 0–1"),
        (&chan, "{ requests(first: 100000) { position } }", "first", "out of range 0–500"),
        (&chan, "{ requests(first: -1) { position } }", "first", "out of range 0–500"),
        (
            &auditor,
            "{ auditTrail(filter: {from: \"0001-01-01T00:00:00Z\"}) { position } }",
            "from",
            "out of range 1970-01-01–9999-12-31",
        ),
        (
            &chan,
            "{ requests(filter: {project: \"ok\", requester: \"u-chan\", submittedFrom: \"0100-01-01T00:00:00Z\"}) { position } }",
            "submittedFrom",
            "out of range 1970-01-01–9999-12-31",
        ),
        (
            &desk,
            "{ tickets(after: \"{long}\") { position } }",
            "after",
            "at most 200 are allowed",
        ),
    ];
    for (token, query, field, message) in cases {
        let query = query.replace("{long}", &"x".repeat(300));
        let body = answer(&api, token, &query, json!({})).await;
        let (code, named, text) = refusal(&body);
        assert_eq!(
            (code.as_str(), named.as_str()),
            ("BAD_USER_INPUT", *field),
            "{query}: {body}"
        );
        assert!(text.contains(message), "{query}: {text}");
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_unbounded_input_is_refused_and_appends_nothing() {
    unbounded_input_is_refused_and_appends_nothing(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unbounded_input_is_refused_and_appends_nothing() {
    unbounded_input_is_refused_and_appends_nothing(Kind::Postgres).await;
}

const SUBMIT: &str = "mutation($item: ID!, $key: String, $project: String, $start: NaiveDate, $end: NaiveDate, $cpu: Int!) {
    submitRequest(input: {clientMutationId: $key, itemId: $item, kind: NEW_RESOURCE,
        configuration: {cpu: $cpu, memory_gb: 16, os: \"linux\", image: \"rhel-9.4\"},
        project: $project, periodStart: $start, periodEnd: $end}) { id position } }";

const SUBNET: &str = "mutation($key: String, $name: String!, $vlan: Int) {
    createSubnet(input: {clientMutationId: $key, name: $name, cidr: \"10.120.0.0/29\", gateway: \"10.120.0.1\", vlan: $vlan}) { id position } }";

fn request(item: &Value) -> Value {
    json!({"item": item, "project": "電子公文交換", "start": "2026-12-01", "end": "2099-06-01", "cpu": 2})
}

async fn unbounded_input_is_refused_and_appends_nothing(kind: Kind) {
    let Some(fixture) = Fixture::new(kind).await else {
        return;
    };
    let app = App::start(fixture.open().await, Arc::new(SystemClock));
    let api = Api::over(app.clone()).await;
    let chan = token("u-chan", "財政局", &["requester"]);
    let wong = token("u-wong", "運維中心", &["operator"]);
    let item = api.create_vm_item().await;
    let head = app.store.head().await.unwrap();
    let long = "長".repeat(200_000);

    let mut cases: Vec<(&str, &str, Value, &str)> = Vec::new();
    let mut v = request(&item);
    v["project"] = json!(long);
    cases.push((&chan, SUBMIT, v, "project"));
    let mut v = request(&item);
    v["key"] = json!(long);
    cases.push((&chan, SUBMIT, v, "clientMutationId"));
    let mut v = request(&item);
    (v["start"], v["end"]) = (json!("2020-01-01"), json!("2020-06-01"));
    cases.push((&chan, SUBMIT, v, "periodEnd"));
    let mut v = request(&item);
    v["start"] = json!("0001-01-01");
    cases.push((&chan, SUBMIT, v, "periodStart"));
    cases.push((
        &wong,
        SUBNET,
        json!({"name": "政務外網", "vlan": 5000}),
        "vlan",
    ));
    cases.push((
        &wong,
        SUBNET,
        json!({"name": "政務外網", "vlan": 0}),
        "vlan",
    ));
    cases.push((&wong, SUBNET, json!({"name": long, "vlan": 120}), "name"));

    for (token, query, variables, field) in cases {
        let body = answer(&api, token, query, variables).await;
        let (code, named, _) = refusal(&body);
        assert_eq!(
            (code.as_str(), named.as_str()),
            ("BAD_USER_INPUT", field),
            "{body:.300}"
        );
        assert_eq!(
            app.store.head().await.unwrap(),
            head,
            "{field}: nothing appended"
        );
    }
    // In range, the same inputs are accepted.
    let body = answer(&api, &chan, SUBMIT, request(&item)).await;
    assert!(body["errors"].is_null(), "{body}");
    let body = answer(
        &api,
        &wong,
        SUBNET,
        json!({"name": "政務外網", "vlan": 4094}),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_of_graphql_itself_has_a_code() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    let chan = token("u-chan", "財政局", &["requester"]);
    let cases = [
        ("{ pools(windowDays: 3", json!({}), "GRAPHQL_PARSE_FAILED"),
        (
            "{ nothingOfTheKind }",
            json!({}),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "{ pools(windowDays: \"thirty\") { name } }",
            json!({}),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "{ pools(noSuchArgument: 1) { name } }",
            json!({}),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        ("{ request { id } }", json!({}), "GRAPHQL_VALIDATION_FAILED"),
        (
            "query($d: Int) { pools(windowDays: $d) { name } }",
            json!({"d": "thirty"}),
            "GRAPHQL_VALIDATION_FAILED",
        ),
    ];
    for (query, variables, expected) in cases {
        let body = answer(&api, &chan, query, variables).await;
        let errors = body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{query}: {body}"));
        for e in errors {
            assert_eq!(e["extensions"]["code"], expected, "{query}: {body}");
        }
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_reused_client_mutation_id_with_other_input_is_a_conflict() {
    a_reused_client_mutation_id_with_other_input_is_a_conflict(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_reused_client_mutation_id_with_other_input_is_a_conflict() {
    a_reused_client_mutation_id_with_other_input_is_a_conflict(Kind::Postgres).await;
}

async fn a_reused_client_mutation_id_with_other_input_is_a_conflict(kind: Kind) {
    let Some(fixture) = Fixture::new(kind).await else {
        return;
    };
    let app = App::start(fixture.open().await, Arc::new(SystemClock));
    let api = Api::over(app.clone()).await;
    let chan = token("u-chan", "財政局", &["requester"]);
    let wong = token("u-wong", "運維中心", &["operator"]);
    let admin = token("u-lam", "運維中心", &["catalog_admin"]);

    let mut first = request(&json!(null));
    let item = api.create_vm_item().await;
    first["item"] = item.clone();
    first["key"] = json!("k");
    let mut other = first.clone();
    other["cpu"] = json!(16);
    let mut subnet = json!({"key": "s", "name": "政務外網", "vlan": 120});
    let mut other_subnet = subnet.clone();
    other_subnet["vlan"] = json!(121);
    let mut definition = serde_json::to_value(vm_definition(two_steps())).unwrap();
    definition["name"] = json!("另一個虛擬機");

    let cases: [(&str, &str, Value, Value); 3] = [
        (&chan, SUBMIT, first, other),
        (&wong, SUBNET, subnet.take(), other_subnet),
        (
            &admin,
            CREATE,
            serde_json::to_value(vm_definition(two_steps()))
                .map(|d| json!({"d": d}))
                .unwrap(),
            json!({"d": definition}),
        ),
    ];
    for (token, query, same, different) in cases {
        let once = answer(&api, token, query, same.clone()).await;
        assert!(once["errors"].is_null() || query == CREATE, "{once}");
        let head = app.store.head().await.unwrap();
        let again = answer(&api, token, query, same).await;
        assert!(again["errors"].is_null(), "{again}");
        if query != CREATE {
            assert_eq!(once, again, "the same key and input: the first outcome");
        }
        let body = answer(&api, token, query, different).await;
        let (code, _, message) = refusal(&body);
        assert_eq!(code, "CONFLICT", "{body}");
        assert!(message.contains("clientMutationId"), "{message}");
        assert_eq!(app.store.head().await.unwrap(), head, "nothing appended");
    }
    api.stop().await;
}
