//! The GraphQL API over real HTTP, on both backends: the first flow, every error code,
//! idempotent resubmission, and a restart with the data intact.

use std::sync::Arc;

use opsledger::app::{App, SystemClock};
use opsledger::http::auth::{Claims, Keys};
use opsledger_domain::requests::demo::{two_steps, vm_definition};
use serde_json::{json, Value};

use crate::support::{Fixture, Kind};

const SECRET: &[u8] = b"a secret for the graphql tests";

pub(crate) struct Api {
    url: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Api {
    pub(crate) async fn start(fixture: &Fixture) -> Api {
        let store = fixture.open().await;
        Api::over(App::start(store, Arc::new(SystemClock))).await
    }

    /// Serves `app` (e.g. one with a manual clock the test drives).
    pub(crate) async fn over(app: App) -> Api {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/graphql", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(opsledger::http::server::serve(
            listener,
            app,
            Keys::from_secret(SECRET),
            async {
                let _ = stopped.await;
            },
        ));
        Api {
            url,
            http: reqwest::Client::new(),
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// The base URL of the server, e.g. for `/reports/usage.csv`.
    pub(crate) fn base(&self) -> String {
        self.url.trim_end_matches("/graphql").to_owned()
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap().unwrap();
    }

    pub(crate) async fn post(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .http
            .post(&self.url)
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    /// The data of a query that must succeed.
    pub(crate) async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.post(Some(token), query, variables).await;
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].clone()
    }

    /// Creates the standard virtual-machine item (two approval steps) as a catalogue
    /// administrator; its id.
    pub(crate) async fn create_vm_item(&self) -> Value {
        let admin = token("u-lam", "運維中心", &["catalog_admin"]);
        let definition = serde_json::to_value(vm_definition(two_steps())).unwrap();
        let created = self.ok(&admin, CREATE, json!({"d": definition})).await;
        created["createCatalogItem"]["id"].clone()
    }

    /// The `extensions.code` of a query that must fail.
    pub(crate) async fn code(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (String, Value) {
        let body = self.post(token, query, variables).await;
        let error = body["errors"][0].clone();
        (
            error["extensions"]["code"]
                .as_str()
                .unwrap_or_else(|| panic!("{body}"))
                .to_owned(),
            error,
        )
    }
}

pub(crate) fn token(user: &str, department: &str, roles: &[&str]) -> String {
    let claims = Claims {
        sub: user.into(),
        name: None,
        department: Some(department.into()),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        exp: 4_000_000_000,
    };
    Keys::from_secret(SECRET).mint(&claims).unwrap()
}

pub(crate) const CREATE: &str = "mutation($d: JSON!) { createCatalogItem(input: {clientMutationId: \"vm\", definition: $d}) { id position } }";
pub(crate) const SUBMIT: &str = "mutation($item: ID!, $cfg: JSON, $key: String) {
    submitRequest(input: {clientMutationId: $key, itemId: $item, kind: NEW_RESOURCE, configuration: $cfg,
        project: \"電子公文交換\", periodStart: \"2026-12-01\", periodEnd: \"2027-06-01\"}) { id position clientMutationId } }";
pub(crate) const APPROVE: &str = "mutation($id: ID!, $step: Int!) { approveRequest(input: {requestId: $id, step: $step, comment: \"同意\"}) { position } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_first_flow_over_http() {
    the_first_flow_over_http(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_first_flow_over_http() {
    the_first_flow_over_http(Kind::Postgres).await;
}

async fn the_first_flow_over_http(kind: Kind) {
    let Some(fixture) = Fixture::new(kind).await else {
        return;
    };
    let api = Api::start(&fixture).await;
    let admin = token("u-lam", "運維中心", &["catalog_admin"]);
    let chan = token("u-chan", "財政局", &["requester", "approver"]);
    let ho = token("u-ho", "財政局", &["approver"]);
    let wong = token("u-wong", "運維中心", &["operator"]);
    let auditor = token("u-audit", "審計署", &["auditor"]);

    assert_eq!(
        api.code(None, "{ position }", json!({})).await.0,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        api.code(Some("not-a-token"), "{ position }", json!({}))
            .await
            .0,
        "UNAUTHENTICATED"
    );

    let definition = serde_json::to_value(vm_definition(two_steps())).unwrap();
    assert_eq!(
        api.code(Some(&chan), CREATE, json!({"d": definition}))
            .await
            .0,
        "FORBIDDEN"
    );
    let created = api.ok(&admin, CREATE, json!({"d": definition})).await;
    let item = created["createCatalogItem"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = created["createCatalogItem"]["position"].as_u64().unwrap();
    let catalog = api.ok(&chan, "query($at: Int) { serviceCatalog(atLeast: $at) { edges { node { id name version } } position } }", json!({"at": at})).await;
    assert_eq!(
        catalog["serviceCatalog"]["edges"][0]["node"]["name"],
        "標準虛擬機"
    );

    let bad = json!({"cpu": 64, "memory_gb": 16, "os": "linux", "image": "rhel-9.4"});
    let (code, error) = api
        .code(Some(&chan), SUBMIT, json!({"item": item, "cfg": bad}))
        .await;
    assert_eq!(
        (code.as_str(), error["extensions"]["field"].as_str()),
        ("BAD_USER_INPUT", Some("configuration.cpu"))
    );
    let position = api.ok(&auditor, "{ position }", json!({})).await["position"]
        .as_u64()
        .unwrap();
    assert_eq!(position, at, "a refused request records nothing");

    let good = json!({"cpu": 4, "memory_gb": 16, "os": "linux", "image": "rhel-9.4"});
    let submitted = api
        .ok(
            &chan,
            SUBMIT,
            json!({"item": item, "cfg": good, "key": "req-1"}),
        )
        .await;
    let again = api
        .ok(
            &chan,
            SUBMIT,
            json!({"item": item, "cfg": good, "key": "req-1"}),
        )
        .await;
    assert_eq!(
        submitted, again,
        "the same clientMutationId returns the first outcome"
    );
    let request = submitted["submitRequest"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(
        api.code(Some(&chan), APPROVE, json!({"id": request, "step": 0}))
            .await
            .0,
        "FORBIDDEN"
    );
    assert_eq!(
        api.code(Some(&ho), APPROVE, json!({"id": request, "step": 1}))
            .await
            .0,
        "CONFLICT"
    );
    let pending = api
        .ok(
            &ho,
            "query($at: Int) { pendingApprovals(atLeast: $at) { edges { node { id openStep } } } }",
            json!({"at": submitted["submitRequest"]["position"]}),
        )
        .await;
    assert_eq!(
        pending["pendingApprovals"]["edges"][0]["node"]["id"],
        request.as_str()
    );
    api.ok(&ho, APPROVE, json!({"id": request, "step": 0}))
        .await;
    let last = api
        .ok(&wong, APPROVE, json!({"id": request, "step": 1}))
        .await;
    let at = last["approveRequest"]["position"].as_u64().unwrap();

    let mine = api
        .ok(&chan, "query($at: Int) { requests(filter: {status: APPROVED}, atLeast: $at) { edges { node { id status itemVersion steps { role } } } position } }", json!({"at": at}))
        .await;
    assert_eq!(mine["requests"]["edges"][0]["node"]["status"], "APPROVED");
    assert_eq!(mine["requests"]["position"].as_u64(), Some(at));
    let other_department = token("u-siu", "教育局", &["requester"]);
    let theirs = api
        .ok(
            &other_department,
            "query($at: Int) { requests(atLeast: $at) { edges { node { id } } } }",
            json!({"at": at}),
        )
        .await;
    assert_eq!(
        theirs["requests"]["edges"],
        json!([]),
        "requesters see their own department only"
    );

    assert_eq!(
        api.code(
            Some(&chan),
            "{ auditTrail { edges { node { position } } } }",
            json!({})
        )
        .await
        .0,
        "FORBIDDEN"
    );
    let trail = api
        .ok(&auditor, "query($e: String, $at: Int) { auditTrail(filter: {entity: $e}, atLeast: $at) { edges { node { position hash eventType actor comment } } } }", json!({"e": request, "at": at}))
        .await;
    let entries = trail["auditTrail"]["edges"].as_array().unwrap();
    assert_eq!(entries[1]["node"]["actor"], "u-ho");
    assert_eq!(entries[1]["node"]["comment"], "同意");
    assert_eq!(entries[1]["node"]["hash"].as_str().unwrap().len(), 64);
    let findings = api
        .ok(
            &auditor,
            "query($at: Int) { complianceFindings(atLeast: $at) { edges { node { kind } } } }",
            json!({"at": at}),
        )
        .await;
    assert_eq!(findings["complianceFindings"]["edges"], json!([]));
    let (code, _) = api
        .code(
            Some(&chan),
            "query($id: ID!) { request(id: $id) { id } }",
            json!({"id": "not-a-uuid"}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");

    let page = reqwest::get(&api.url).await.unwrap().text().await.unwrap();
    assert!(page.to_lowercase().contains("graphiql"));

    api.stop().await;
    let api = Api::start(&fixture).await;
    let after_restart = api
        .ok(
            &chan,
            "query($id: ID!, $at: Int) { request(id: $id, atLeast: $at) { status } }",
            json!({"id": request, "at": at}),
        )
        .await;
    assert_eq!(
        after_restart["request"]["status"], "APPROVED",
        "a restart keeps every event"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_mutation_id_on_two_mutations_is_two_commands() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    let chan = token("u-chan", "財政局", &["requester"]);
    let item = api.create_vm_item().await;
    let cfg = json!({"cpu": 4, "memory_gb": 16, "os": "linux", "image": "rhel-9.4"});
    let submitted = api
        .ok(&chan, SUBMIT, json!({"item": item, "cfg": cfg, "key": "k"}))
        .await;
    let id = submitted["submitRequest"]["id"].clone();
    let cancel = "mutation($id: ID!) { cancelRequest(input: {clientMutationId: \"k\", requestId: $id}) { position } }";
    let cancelled = api.ok(&chan, cancel, json!({"id": id})).await;
    assert!(
        cancelled["cancelRequest"]["position"].as_u64()
            > submitted["submitRequest"]["position"].as_u64()
    );
    api.stop().await;
}

pub(crate) mod live {
    use futures::{SinkExt, StreamExt};
    use serde_json::{json, Value};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    use super::*;

    pub(crate) type Socket = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    /// A `graphql-transport-ws` connection, initialised with `token`.
    pub(crate) async fn connect(api: &Api, token: &str) -> Socket {
        let url = api.url.replace("http://", "ws://") + "/ws";
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        send(&mut socket, json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}})).await;
        socket
    }

    pub(crate) async fn send(socket: &mut Socket, message: Value) {
        socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    /// The next protocol message, within five seconds; `None` when the server closed.
    pub(crate) async fn next(socket: &mut Socket) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next())
                .await
                .expect("a message in time");
            match message {
                Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_and_the_event_feed_are_followed_live_over_websocket() {
        let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
        let api = Api::start(&fixture).await;
        let chan = token("u-chan", "財政局", &["requester"]);
        let ho = token("u-ho", "財政局", &["approver"]);
        let auditor = token("u-kwok", "審計署", &["auditor"]);
        let item = api.create_vm_item().await;
        let cfg = json!({"cpu": 4, "memory_gb": 16, "os": "linux", "image": "rhel-9.4"});
        let submitted = api
            .ok(
                &chan,
                SUBMIT,
                json!({"item": item, "cfg": cfg, "key": "live"}),
            )
            .await;
        let (request, at) = (
            submitted["submitRequest"]["id"].clone(),
            submitted["submitRequest"]["position"].clone(),
        );

        let mut socket = connect(&api, &ho).await;
        assert_eq!(next(&mut socket).await.unwrap()["type"], "connection_ack");
        let query = "subscription($id: ID!, $at: Int) { requestChanged(id: $id, atLeast: $at) { status openStep } }";
        send(&mut socket, json!({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": {"id": request, "at": at}}})).await;
        let first = next(&mut socket).await.unwrap();
        assert_eq!(
            first["payload"]["data"]["requestChanged"],
            json!({"status": "PENDING_APPROVAL", "openStep": 0}),
            "{first}"
        );
        api.ok(&ho, APPROVE, json!({"id": request, "step": 0}))
            .await;
        let changed = next(&mut socket).await.unwrap();
        assert_eq!(
            changed["payload"]["data"]["requestChanged"],
            json!({"status": "PENDING_APPROVAL", "openStep": 1}),
            "{changed}"
        );

        let mut feed = connect(&api, &auditor).await;
        assert_eq!(next(&mut feed).await.unwrap()["type"], "connection_ack");
        send(&mut feed, json!({"id": "f", "type": "subscribe", "payload": {"query": "subscription { events { position type } }"}})).await;
        for position in 1..=3u64 {
            let event = next(&mut feed).await.unwrap();
            assert_eq!(
                event["payload"]["data"]["events"]["position"].as_u64(),
                Some(position),
                "{event}"
            );
        }

        let mut stranger = connect(&api, &chan).await;
        assert_eq!(next(&mut stranger).await.unwrap()["type"], "connection_ack");
        send(&mut stranger, json!({"id": "x", "type": "subscribe", "payload": {"query": "subscription { events { position } }"}})).await;
        let refused = next(&mut stranger).await.unwrap();
        assert_eq!(
            refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{refused}"
        );

        let mut forged = connect(&api, "forged").await;
        let answer = next(&mut forged).await;
        assert!(
            answer.is_none_or(|m| m["type"] != "connection_ack"),
            "a bad token is not acknowledged"
        );
        api.stop().await;
    }
}
