//! Over HTTP: who may see what, as one table. For each person (each role, and someone who
//! moved department) and each kind of entity behind a wall (requests, catalogue items,
//! delegations, configuration items), the list, the read by id, `node(id:)` and, for
//! requests, the subscription give the same answer; and a few of the answers are pinned.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use opsledger_domain::requests::demo::{two_steps, vm_definition};
use serde_json::{json, Value};

use crate::graphql::live::{connect, next, send};
use crate::graphql::{token, Api, SUBMIT};
use crate::support::{Fixture, Kind};

const CREATE: &str =
    "mutation($d: JSON!) { createCatalogItem(input: {definition: $d}) { id position } }";
const RETIRE_ITEM: &str =
    "mutation($id: ID!) { retireCatalogItem(input: {itemId: $id, reason: \"停用\"}) { position } }";
const GRANT: &str = "mutation($sub: String!, $from: DateTime!, $until: DateTime!) {
    grantDelegation(input: {substitute: $sub, from: $from, until: $until, reason: \"年假\"}) { id position } }";
const REGISTER: &str = "mutation($name: String!, $dept: String!, $owner: String!) {
    registerConfigurationItem(input: {type: VIRTUAL_MACHINE, name: $name,
    attributes: {cpu: 4, memory_gib: 8, disk_gb: 80}, department: $dept, owner: $owner}) { id position } }";

/// The people the table asks for: a name for messages and a token.
fn people() -> Vec<(&'static str, String)> {
    vec![
        (
            "requester 財政局",
            token("u-chan", "財政局", &["requester"]),
        ),
        ("requester 教育局", token("u-siu", "教育局", &["requester"])),
        (
            "u-chan moved to 教育局",
            token("u-chan", "教育局", &["requester"]),
        ),
        ("approver 財政局", token("u-ho", "財政局", &["approver"])),
        (
            "catalogue administrator",
            token("u-lam", "運維中心", &["catalog_admin"]),
        ),
        ("operator", token("u-wong", "運維中心", &["operator"])),
        ("engineer", token("u-lee", "運維中心", &["engineer"])),
        ("auditor", token("u-kwok", "審計署", &["auditor"])),
    ]
}

/// How one kind is listed and read: the list's query and the path to its ids, and the
/// read by id (`None`: `node(id:)` is the only read).
struct Reads {
    list: &'static str,
    ids: &'static [&'static str],
    read: Option<&'static str>,
}

fn reads(kind: &str) -> Reads {
    match kind {
        "request" => Reads {
            list: "{ requests(first: 500) { nodes { id } } }",
            ids: &["requests", "nodes"],
            read: Some("query($id: ID!) { request(id: $id) { id } }"),
        },
        "catalogue item" => Reads {
            list: "{ serviceCatalog(first: 500) { nodes { id } } retired: serviceCatalog(first: 500, includeRetired: true) { nodes { id } } }",
            ids: &["retired", "nodes"],
            read: None,
        },
        "delegation" => Reads {
            list: "{ delegations(first: 500) { nodes { id } } }",
            ids: &["delegations", "nodes"],
            read: None,
        },
        "configuration item" => Reads {
            list: "{ configurationItems(first: 500) { nodes { id } } }",
            ids: &["configurationItems", "nodes"],
            read: Some("query($id: ID!) { configurationItem(id: $id) { id } }"),
        },
        other => unreachable!("{other}"),
    }
}

/// The ids a list answers, or `None` when the list is refused.
async fn listed(api: &Api, who: &str, reads: &Reads) -> Option<Vec<String>> {
    let body = api.post(Some(who), reads.list, json!({})).await;
    if body.get("errors").is_some() {
        return None;
    }
    let mut at = &body["data"];
    for key in reads.ids {
        at = &at[*key];
    }
    Some(
        at.as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect(),
    )
}

/// Whether a read of `id` answers it; a refusal must be NOT_FOUND (or null, for reads
/// whose type is optional), never a different code that would tell the entity exists.
async fn answered(api: &Api, who: &str, query: &str, field: &str, id: &str) -> bool {
    let body = api.post(Some(who), query, json!({"id": id})).await;
    match body.get("errors") {
        None => !body["data"][field].is_null(),
        Some(errors) => {
            assert_eq!(
                errors[0]["extensions"]["code"], "NOT_FOUND",
                "{query}: {body}"
            );
            false
        }
    }
}

/// Whether `requestChanged` follows request `id` for `who`.
async fn subscribed(api: &Api, who: &str, id: &str) -> bool {
    let mut socket = connect(api, who).await;
    assert_eq!(next(&mut socket).await.unwrap()["type"], "connection_ack");
    let query = "subscription($id: ID!) { requestChanged(id: $id) { status } }";
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": {"id": id}}});
    send(&mut socket, subscribe).await;
    let first = next(&mut socket).await.unwrap();
    match first["type"].as_str() {
        Some("next") if first["payload"].get("errors").is_none() => true,
        _ => {
            let code = &first["payload"]["errors"][0]["extensions"]["code"];
            let refused = first["payload"][0]["extensions"]["code"].clone();
            assert!(
                *code == "NOT_FOUND" || refused == "NOT_FOUND",
                "a request behind the wall is absent: {first}"
            );
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_of_an_entity_agrees_on_who_sees_it() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    let lam = token("u-lam", "運維中心", &["catalog_admin"]);
    let wong = token("u-wong", "運維中心", &["operator"]);
    let chan = token("u-chan", "財政局", &["requester"]);
    let siu = token("u-siu", "教育局", &["requester"]);
    let ho = token("u-ho", "財政局", &["approver"]);

    // Catalogue items: one for every requester, one for 財政局 only, one retired.
    let mut items = Vec::new();
    for departments in [json!([]), json!(["財政局"]), json!([])] {
        let mut definition = serde_json::to_value(vm_definition(two_steps())).unwrap();
        definition["audience"]["departments"] = departments;
        let created = api.ok(&lam, CREATE, json!({"d": definition})).await;
        items.push(created["createCatalogItem"]["id"].clone());
    }
    api.ok(&lam, RETIRE_ITEM, json!({"id": items[2]})).await;

    // Requests: one of 財政局 (u-chan's), one of 教育局.
    let cfg = json!({"cpu": 4, "memory_gb": 16, "os": "linux", "image": "rhel-9.4"});
    let mut requests = Vec::new();
    for who in [&chan, &siu] {
        let submitted = api
            .ok(who, SUBMIT, json!({"item": items[0], "cfg": cfg}))
            .await;
        requests.push(submitted["submitRequest"]["id"].clone());
    }

    // Delegations: 財政局's approver to a colleague.
    let now = Utc::now();
    let granted = api
        .ok(
            &ho,
            GRANT,
            json!({"sub": "u-yip", "from": now, "until": now + Duration::days(3)}),
        )
        .await;
    let delegations = vec![granted["grantDelegation"]["id"].clone()];

    // Configuration items: 財政局's owned by u-chan, 教育局's owned by u-siu.
    let mut cis = Vec::new();
    for (name, dept, owner) in [
        ("fin-vm-01", "財政局", "u-chan"),
        ("edu-vm-01", "教育局", "u-siu"),
    ] {
        let registered = api
            .ok(
                &wong,
                REGISTER,
                json!({"name": name, "dept": dept, "owner": owner}),
            )
            .await;
        cis.push(registered["registerConfigurationItem"]["id"].clone());
    }

    let entities: Vec<(&str, Vec<Value>)> = vec![
        ("request", requests.clone()),
        ("catalogue item", items.clone()),
        ("delegation", delegations),
        ("configuration item", cis.clone()),
    ];
    // (person, kind, id) → whether they see it.
    let mut seen: BTreeMap<(String, String, String), bool> = BTreeMap::new();
    for (person, who) in people() {
        for (kind, ids) in &entities {
            let reads = reads(kind);
            let list = listed(&api, &who, &reads).await;
            for id in ids {
                let id = id.as_str().unwrap();
                let by_node = answered(
                    &api,
                    &who,
                    "query($id: ID!) { node(id: $id) { id } }",
                    "node",
                    id,
                )
                .await;
                let mut answers = vec![("node", by_node)];
                if let Some(list) = &list {
                    answers.push(("list", list.iter().any(|l| l == id)));
                }
                if let Some(read) = reads.read {
                    let field = reads.ids[0].trim_end_matches('s');
                    let field = if *kind == "request" { "request" } else { field };
                    answers.push(("read", answered(&api, &who, read, field, id).await));
                }
                if *kind == "request" {
                    answers.push(("subscribe", subscribed(&api, &who, id).await));
                }
                assert!(
                    answers.iter().all(|(_, a)| *a == by_node),
                    "{person} on {kind} {id}: {answers:?}"
                );
                seen.insert((person.into(), (*kind).into(), id.into()), by_node);
            }
        }
    }

    let sees = |person: &str, kind: &str, id: &Value| {
        seen[&(
            person.to_owned(),
            kind.to_owned(),
            id.as_str().unwrap().to_owned(),
        )]
    };
    // The walls themselves.
    assert!(sees("requester 財政局", "request", &requests[0]));
    assert!(!sees("requester 財政局", "request", &requests[1]));
    assert!(
        sees("u-chan moved to 教育局", "request", &requests[0]),
        "their own"
    );
    assert!(
        sees("u-chan moved to 教育局", "request", &requests[1]),
        "their department's"
    );
    assert!(sees("catalogue administrator", "request", &requests[1]));
    assert!(sees("auditor", "request", &requests[0]));
    assert!(!sees("requester 教育局", "catalogue item", &items[1]));
    assert!(sees("requester 財政局", "catalogue item", &items[1]));
    assert!(
        !sees("requester 財政局", "catalogue item", &items[2]),
        "retired"
    );
    assert!(sees("catalogue administrator", "catalogue item", &items[2]));
    assert!(sees("auditor", "catalogue item", &items[2]));
    assert!(!sees(
        "requester 財政局",
        "delegation",
        &delegations_of(&entities)
    ));
    assert!(sees(
        "approver 財政局",
        "delegation",
        &delegations_of(&entities)
    ));
    assert!(sees("auditor", "delegation", &delegations_of(&entities)));
    assert!(sees("requester 財政局", "configuration item", &cis[0]));
    assert!(!sees("requester 財政局", "configuration item", &cis[1]));
    assert!(
        sees("u-chan moved to 教育局", "configuration item", &cis[0]),
        "they own it"
    );
    assert!(sees("operator", "configuration item", &cis[1]));
    api.stop().await;
}

fn delegations_of(entities: &[(&str, Vec<Value>)]) -> Value {
    entities
        .iter()
        .find(|(k, _)| *k == "delegation")
        .map(|(_, ids)| ids[0].clone())
        .unwrap()
}
