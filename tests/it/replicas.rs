//! Scale-out: two `opsledger serve` processes on one PostgreSQL database.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opsledger::http::auth::{Claims, Keys};
use opsledger_domain::requests::demo::{two_steps, vm_definition};
use serde_json::{json, Value};

use crate::support::{Fixture, Kind};

const SECRET: &str = "a secret the replicas share";

struct Replica {
    child: Child,
    url: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(fixture: &Fixture) -> Replica {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_opsledger"))
        .args(fixture.cli_args())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("OPSLEDGER_JWT_SECRET", SECRET)
        .env_remove("OPSLEDGER_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{url}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "the replica did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Replica {
        child,
        url: format!("{url}/graphql"),
    }
}

fn token(user: &str, department: &str, role: &str) -> String {
    let claims = Claims {
        sub: user.into(),
        name: None,
        department: Some(department.into()),
        roles: vec![role.into()],
        exp: 4_000_000_000,
    };
    Keys::from_secret(SECRET.as_bytes()).mint(&claims).unwrap()
}

async fn post(url: &str, token: &str, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_see_each_other_and_one_approval_wins() {
    let Some(fixture) = Fixture::new(Kind::Postgres).await else {
        return;
    };
    drop(fixture.open().await); // the schema exists before both start
    let (a, b) = (start(&fixture).await, start(&fixture).await);
    let admin = token("u-lam", "運維中心", "catalog_admin");
    let chan = token("u-chan", "財政局", "requester");
    let definition = serde_json::to_value(vm_definition(two_steps())).unwrap();
    let created = post(
        &a.url,
        &admin,
        "mutation($d: JSON!) { createCatalogItem(input: {definition: $d}) { id } }",
        json!({"d": definition}),
    )
    .await;
    let item = created["data"]["createCatalogItem"]["id"].clone();
    let submit = "mutation($item: ID!) { submitRequest(input: {itemId: $item, kind: NEW_RESOURCE, project: \"跨節點\",
        periodStart: \"2026-12-01\", periodEnd: \"2027-06-01\",
        configuration: {cpu: 2, memory_gb: 4, os: \"linux\", image: \"rhel-9.4\"}}) { id } }";
    let submitted = post(&a.url, &chan, submit, json!({"item": item})).await;
    let request = submitted["data"]["submitRequest"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{submitted}"))
        .to_owned();

    let listed_at = Instant::now();
    loop {
        let listed = post(
            &b.url,
            &chan,
            "{ requests { edges { node { id } } } }",
            json!({}),
        )
        .await;
        if listed["data"]["requests"]["edges"][0]["node"]["id"] == request.as_str() {
            break;
        }
        assert!(
            listed_at.elapsed() < Duration::from_secs(1),
            "the other replica lists it within a second: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let approve = "mutation($id: ID!) { approveRequest(input: {requestId: $id, step: 0, comment: \"同意\"}) { position } }";
    let (ho, ip) = (
        token("u-ho", "財政局", "approver"),
        token("u-ip", "財政局", "approver"),
    );
    let (one, two) = tokio::join!(
        post(&a.url, &ho, approve, json!({"id": request})),
        post(&b.url, &ip, approve, json!({"id": request})),
    );
    let wins = [&one, &two]
        .iter()
        .filter(|r| r.get("errors").is_none())
        .count();
    assert_eq!(wins, 1, "{one} {two}");
    let loser = if one.get("errors").is_some() {
        &one
    } else {
        &two
    };
    assert_eq!(
        loser["errors"][0]["extensions"]["code"], "CONFLICT",
        "{loser}"
    );
}
