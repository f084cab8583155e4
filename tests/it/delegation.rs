//! Over HTTP: an approver away delegates to a substitute whose approval records both and
//! counts as the delegator's; notices reach the people they are for; every entity is found
//! by its global id; request lists page in both orders.

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::graphql::{token, Api, APPROVE, SUBMIT};
use crate::support::{Fixture, Kind};

const GRANT: &str = "mutation($sub: String!, $from: DateTime!, $until: DateTime!) {
    grantDelegation(input: {substitute: $sub, from: $from, until: $until, reason: \"年假\"}) { id position } }";
const APPROVE_FOR: &str = "mutation($id: ID!, $step: Int!, $for: ID) {
    approveRequest(input: {requestId: $id, step: $step, comment: \"代批\", onBehalfOf: $for}) { position } }";

fn good() -> Value {
    json!({"cpu": 4, "memory_gb": 16, "os": "linux", "image": "rhel-9.4"})
}

fn edges(data: &Value, list: &str) -> Vec<Value> {
    data[list]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_substitute_approves_on_behalf_of_an_approver_who_is_away() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    let chan = token("u-chan", "財政局", &["requester"]);
    let ho = token("u-ho", "財政局", &["approver"]);
    let ip = token("u-ip", "財政局", &["requester"]);
    let wong = token("u-wong", "運維中心", &["operator"]);
    let auditor = token("u-audit", "審計署", &["auditor"]);

    let item = api.create_vm_item().await;
    let submitted = api
        .ok(&chan, SUBMIT, json!({"item": item, "cfg": good()}))
        .await;
    let request = submitted["submitRequest"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(request.starts_with("request-"), "{request}");

    let now = Utc::now();
    let (code, error) = api
        .code(
            Some(&ho),
            GRANT,
            json!({"sub": "u-ho", "from": now, "until": now + Duration::days(3)}),
        )
        .await;
    assert_eq!(
        (code.as_str(), error["extensions"]["field"].as_str()),
        ("BAD_USER_INPUT", Some("substitute"))
    );
    let granted = api
        .ok(
            &ho,
            GRANT,
            json!({"sub": "u-ip", "from": now - Duration::hours(1), "until": now + Duration::days(3)}),
        )
        .await;
    let delegation = granted["grantDelegation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(delegation.starts_with("delegation-"), "{delegation}");

    let vars = |who: &str| json!({"id": request, "step": 0, "for": who});
    assert_eq!(
        api.code(Some(&ip), APPROVE, json!({"id": request, "step": 0}))
            .await
            .0,
        "FORBIDDEN",
        "the substitute holds no approver role of their own"
    );
    assert_eq!(
        api.code(Some(&wong), APPROVE_FOR, vars(&delegation))
            .await
            .0,
        "FORBIDDEN",
        "only the named substitute acts under a delegation"
    );
    let (code, error) = api.code(Some(&ip), APPROVE_FOR, vars(&request)).await;
    assert_eq!(
        (code.as_str(), error["extensions"]["field"].as_str()),
        ("BAD_USER_INPUT", Some("onBehalfOf")),
        "{error}"
    );
    let approved = api.ok(&ip, APPROVE_FOR, vars(&delegation)).await;
    let at = approved["approveRequest"]["position"].as_u64().unwrap();

    let trail = api
        .ok(
            &auditor,
            "query($e: String, $at: Int) { auditTrail(filter: {entity: $e}, atLeast: $at) { edges { node { eventType actor onBehalfOf comment } } } }",
            json!({"e": request, "at": at}),
        )
        .await;
    let granted_entry = edges(&trail, "auditTrail")
        .into_iter()
        .find(|e| e["eventType"] == "ApprovalGranted")
        .unwrap();
    assert_eq!(
        (&granted_entry["actor"], &granted_entry["onBehalfOf"]),
        (&json!("u-ip"), &json!("u-ho")),
        "approved by u-ip on behalf of u-ho"
    );
    let by_ho = api
        .ok(
            &auditor,
            "query($at: Int) { auditTrail(filter: {actor: \"u-ho\"}, atLeast: $at) { edges { node { eventType actor } } } }",
            json!({"at": at}),
        )
        .await;
    assert!(
        edges(&by_ho, "auditTrail")
            .iter()
            .any(|e| e["actor"] == "u-ip"),
        "what was done on u-ho's behalf is in u-ho's trail: {by_ho}"
    );

    // Revoked: the substitute may no longer act; the request's next step is untouched.
    let revoke = "mutation($id: ID!) { revokeDelegation(input: {delegationId: $id}) { position } }";
    assert_eq!(
        api.code(Some(&ip), revoke, json!({"id": delegation}))
            .await
            .0,
        "FORBIDDEN"
    );
    api.ok(&ho, revoke, json!({"id": delegation})).await;
    assert_eq!(
        api.code(Some(&ho), revoke, json!({"id": delegation}))
            .await
            .0,
        "CONFLICT"
    );
    let second = api
        .ok(&chan, SUBMIT, json!({"item": item, "cfg": good()}))
        .await;
    let second = second["submitRequest"]["id"].as_str().unwrap().to_owned();
    let (code, error) = api
        .code(
            Some(&ip),
            APPROVE_FOR,
            json!({"id": second, "step": 0, "for": delegation}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("revoked"),
        "{error}"
    );

    // Notices: the substitute was told of the delegation; the operators of step 1.
    let notices = |t: String| {
        let api = &api;
        async move {
            edges(
                &api.ok(
                    &t,
                    "query($at: Int) { notifications(atLeast: $at) { edges { node { kind entity text } } } }",
                    json!({"at": at}),
                )
                .await,
                "notifications",
            )
        }
    };
    let to_ip = notices(ip.clone()).await;
    assert_eq!(to_ip[0]["kind"], "DELEGATION_GRANTED", "{to_ip:?}");
    let to_wong = notices(wong.clone()).await;
    assert_eq!(
        (to_wong[0]["kind"].as_str(), to_wong[0]["entity"].as_str()),
        (Some("APPROVAL_NEEDED"), Some(request.as_str())),
        "{to_wong:?}"
    );
    let to_ho = notices(ho.clone()).await;
    assert_eq!(
        to_ho
            .iter()
            .filter(|n| n["kind"] == "APPROVAL_NEEDED")
            .count(),
        2,
        "both requests' first steps: {to_ho:?}"
    );
    assert!(
        notices(chan.clone()).await.is_empty(),
        "nothing decided yet"
    );

    // Every entity by its global id, each as what it is, to those who may see it.
    let node = "query($id: ID!) { node(id: $id) { __typename id ... on Request { status } ... on Delegation { substitute revokedAt } ... on CatalogItem { name } } }";
    for (id, typename) in [
        (request.as_str(), "Request"),
        (delegation.as_str(), "Delegation"),
        (item.as_str().unwrap(), "CatalogItem"),
    ] {
        let found = api.ok(&auditor, node, json!({"id": id})).await;
        assert_eq!(
            (
                found["node"]["__typename"].as_str(),
                found["node"]["id"].as_str()
            ),
            (Some(typename), Some(id))
        );
    }
    let outsider = token("u-siu", "教育局", &["requester"]);
    for id in [
        request.as_str(),
        delegation.as_str(),
        "request-nope",
        "nothing",
    ] {
        assert_eq!(
            api.code(Some(&outsider), node, json!({"id": id})).await.0,
            "NOT_FOUND",
            "{id}"
        );
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_lists_page_by_cursor_in_either_order() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    let chan = token("u-chan", "財政局", &["requester"]);
    let item = api.create_vm_item().await;
    let mut submitted = Vec::new();
    let mut at = 0;
    for _ in 0..7 {
        let s = api
            .ok(&chan, SUBMIT, json!({"item": item, "cfg": good()}))
            .await;
        submitted.push(s["submitRequest"]["id"].as_str().unwrap().to_owned());
        at = s["submitRequest"]["position"].as_u64().unwrap();
    }
    let query = "query($order: RequestOrder, $after: String, $at: Int) {
        requests(orderBy: $order, first: 3, after: $after, atLeast: $at) {
            edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    for (order, expected) in [
        ("OLDEST_FIRST", submitted.clone()),
        ("NEWEST_FIRST", submitted.iter().rev().cloned().collect()),
    ] {
        let mut seen = Vec::new();
        let mut after = Value::Null;
        loop {
            let page = api
                .ok(
                    &chan,
                    query,
                    json!({"order": order, "after": after, "at": at}),
                )
                .await;
            let r = &page["requests"];
            assert_eq!(r["pageInfo"]["hasPreviousPage"], !after.is_null());
            seen.extend(
                edges(&page, "requests")
                    .iter()
                    .map(|n| n["id"].as_str().unwrap().to_owned()),
            );
            if r["pageInfo"]["hasNextPage"] == false {
                break;
            }
            after = r["pageInfo"]["endCursor"].clone();
        }
        assert_eq!(seen, expected, "{order}");
    }
    let (code, error) = api
        .code(Some(&chan), query, json!({"after": "not a cursor"}))
        .await;
    assert_eq!(
        (code.as_str(), error["extensions"]["field"].as_str()),
        ("BAD_USER_INPUT", Some("after"))
    );
    api.stop().await;
}
