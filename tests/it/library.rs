//! The media and script libraries over real HTTP, on both backends: files uploaded with
//! `PUT /content` and downloaded by their hash, items and versions added through GraphQL
//! naming those hashes, duplicates and unknown content refused with nothing recorded,
//! deprecation, lists and searches (Chinese too), and the refusals of the file routes.

use std::sync::Arc;

use opsledger::app::{App, SystemClock};
use opsledger::store::content::ContentStore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::graphql::{token, Api};
use crate::support::Fixture;

on_both_backends!(
    a_script_is_uploaded_versioned_deprecated_and_downloaded,
    the_library_is_listed_by_kind_searched_and_paged,
    an_upload_past_the_limit_is_refused_and_kept_nowhere
);

const ADD: &str = "mutation($kind: LibraryKind!, $name: String!, $sha: String!, $file: String!, $tags: [String!], $description: String, $key: String) {
    addLibraryItem(input: {clientMutationId: $key, kind: $kind, name: $name, description: $description, platform: \"Linux\", tags: $tags, sha256: $sha, fileName: $file}) { id position } }";
const ADD_VERSION: &str = "mutation($id: ID!, $sha: String!, $file: String!, $notes: String) {
    addLibraryVersion(input: {itemId: $id, sha256: $sha, fileName: $file, notes: $notes}) { id position } }";
const ITEM: &str = "query($id: ID!, $at: Int) { libraryItem(id: $id, atLeast: $at) {
    id kind name description owner platform tags deprecated deprecation { reason by }
    current { version sha256 size fileName downloadPath }
    versions { version sha256 size fileName notes addedBy deprecated deprecation { reason by } } } }";
const LIST: &str = "query($kind: LibraryKind, $search: String, $all: Boolean, $first: Int, $after: String, $at: Int) {
    libraryItems(kind: $kind, search: $search, includeDeprecated: $all, first: $first, after: $after, atLeast: $at) {
        edges { cursor node { name kind current { version } } } pageInfo { hasNextPage } position } }";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `PUT /content` with `bytes`, as `token`: the status and the body.
async fn upload(api: &Api, token: Option<&str>, bytes: &[u8]) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .put(format!("{}/content", api.base()))
        .body(bytes.to_vec());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// `GET /content/<hash>` as `token`: the status and the bytes.
async fn download(api: &Api, token: Option<&str>, hash: &str) -> (u16, Vec<u8>) {
    let mut request = reqwest::Client::new().get(format!("{}/content/{hash}", api.base()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.bytes().await.unwrap().to_vec(),
    )
}

/// Uploads `bytes` as an operator; the hash the server answered, checked against the bytes.
async fn uploaded(api: &Api, bytes: &[u8]) -> String {
    let wong = token("u-wong", "運維中心", &["operator"]);
    let (status, body) = upload(api, Some(&wong), bytes).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["sha256"], sha256_hex(bytes));
    assert_eq!(answer["size"], bytes.len());
    sha256_hex(bytes)
}

async fn position(api: &Api) -> u64 {
    let auditor = token("u-audit", "審計署", &["auditor"]);
    api.ok(&auditor, "{ position }", json!({})).await["position"]
        .as_u64()
        .unwrap()
}

async fn a_script_is_uploaded_versioned_deprecated_and_downloaded(fixture: &Fixture) {
    let api = Api::start(fixture).await;
    let wong = token("u-wong", "運維中心", &["operator"]);
    let lam = token("u-lam", "運維中心", &["catalog_admin"]);
    let chan = token("u-chan", "財政局", &["requester"]);
    let v1 = b"#!/bin/sh\nhostname\n".to_vec();
    let v2 = b"#!/bin/sh\nhostname -f\n".to_vec();

    // Uploads: a token is needed, and a role that manages the library.
    assert_eq!(upload(&api, None, &v1).await.0, 401);
    assert_eq!(upload(&api, Some("not-a-token"), &v1).await.0, 401);
    assert_eq!(upload(&api, Some(&chan), &v1).await.0, 403);
    let sha1 = uploaded(&api, &v1).await;
    // Uploading the same bytes again answers the same hash.
    assert_eq!(uploaded(&api, &v1).await, sha1);

    // Downloads: anyone signed in gets the same bytes; 401, 400 and 404 otherwise.
    assert_eq!(download(&api, Some(&chan), &sha1).await, (200, v1.clone()));
    assert_eq!(download(&api, None, &sha1).await.0, 401);
    assert_eq!(download(&api, Some(&chan), "not-a-hash").await.0, 400);
    assert_eq!(
        download(&api, Some(&chan), &sha1.to_uppercase()).await.0,
        400
    );
    assert_eq!(
        download(&api, Some(&chan), &sha256_hex(b"never uploaded"))
            .await
            .0,
        404
    );

    // A version must name content the server holds; nothing is recorded otherwise.
    let before = position(&api).await;
    let vars = |sha: &str| {
        json!({"kind": "SCRIPT", "name": "hostname.sh", "sha": sha, "file": "hostname.sh",
               "tags": ["巡檢", "Linux"], "description": "顯示主機名"})
    };
    let (code, error) = api
        .code(Some(&wong), ADD, vars(&sha256_hex(b"never uploaded")))
        .await;
    assert_eq!(
        (code.as_str(), error["extensions"]["field"].as_str()),
        ("BAD_USER_INPUT", Some("sha256")),
        "{error}"
    );
    let (code, error) = api.code(Some(&wong), ADD, vars("12345")).await;
    assert_eq!(
        (code.as_str(), error["extensions"]["field"].as_str()),
        ("BAD_USER_INPUT", Some("sha256"))
    );
    assert_eq!(api.code(Some(&chan), ADD, vars(&sha1)).await.0, "FORBIDDEN");
    assert_eq!(
        position(&api).await,
        before,
        "a refused command records nothing"
    );

    // Added by a catalogue administrator, with the hash in any case; the size is the
    // server's.
    let added = api.ok(&lam, ADD, vars(&sha1.to_uppercase())).await;
    let id = added["addLibraryItem"]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("library_item-"), "{id}");
    let at = added["addLibraryItem"]["position"].as_u64().unwrap();
    let item = api.ok(&chan, ITEM, json!({"id": id, "at": at})).await["libraryItem"].clone();
    assert_eq!(item["kind"], "SCRIPT");
    let node = api
        .ok(
            &chan,
            "query($id: ID!) { node(id: $id) { id ... on LibraryItem { name } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        node["node"]["id"],
        json!(id),
        "found again by its global id"
    );
    assert_eq!(node["node"]["name"], item["name"]);
    assert_eq!(item["owner"], "u-lam");
    assert_eq!(item["platform"], "linux");
    assert_eq!(item["tags"], json!(["linux", "巡檢"]));
    assert_eq!(
        item["current"],
        json!({"version": 1, "sha256": sha1, "size": v1.len(), "fileName": "hostname.sh",
               "downloadPath": format!("/content/{sha1}")})
    );

    // The same content as a new version is refused, naming the version it is.
    let (code, error) = api
        .code(
            Some(&wong),
            ADD_VERSION,
            json!({"id": id, "sha": sha1, "file": "hostname.sh"}),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    assert!(
        error["message"].as_str().unwrap().contains("version 1"),
        "{error}"
    );

    let sha2 = uploaded(&api, &v2).await;
    let at = api
        .ok(
            &wong,
            ADD_VERSION,
            json!({"id": id, "sha": sha2, "file": "hostname.sh", "notes": "顯示完整域名"}),
        )
        .await["addLibraryVersion"]["position"]
        .as_u64()
        .unwrap();
    let item = api.ok(&chan, ITEM, json!({"id": id, "at": at})).await["libraryItem"].clone();
    assert_eq!(item["current"]["version"], 2);
    assert_eq!(item["current"]["size"], v2.len());
    assert_eq!(item["versions"][1]["notes"], "顯示完整域名");
    assert_eq!(item["versions"][1]["addedBy"], "u-wong");
    let download_path = item["current"]["downloadPath"].as_str().unwrap();
    assert_eq!(
        download(
            &api,
            Some(&chan),
            download_path.trim_start_matches("/content/")
        )
        .await,
        (200, v2.clone())
    );

    // Deprecating version 2 makes version 1 current again.
    const DEPRECATE_VERSION: &str = "mutation($id: ID!, $v: Int!, $reason: String!) {
        deprecateLibraryVersion(input: {itemId: $id, version: $v, reason: $reason}) { position } }";
    assert_eq!(
        api.code(
            Some(&wong),
            DEPRECATE_VERSION,
            json!({"id": id, "v": 7, "reason": "x"})
        )
        .await
        .0,
        "NOT_FOUND"
    );
    let at = api
        .ok(
            &wong,
            DEPRECATE_VERSION,
            json!({"id": id, "v": 2, "reason": "在 AIX 上出錯"}),
        )
        .await["deprecateLibraryVersion"]["position"]
        .as_u64()
        .unwrap();
    let item = api.ok(&chan, ITEM, json!({"id": id, "at": at})).await["libraryItem"].clone();
    assert_eq!(item["current"]["version"], 1);
    assert_eq!(item["versions"][1]["deprecated"], true);
    assert_eq!(
        item["versions"][1]["deprecation"],
        json!({"reason": "在 AIX 上出錯", "by": "u-wong"})
    );

    // Edited, then deprecated as a whole: no current version, and nothing more added.
    let at = api
        .ok(
            &wong,
            "mutation($id: ID!) { editLibraryItem(input: {itemId: $id, owner: \"u-wong\", tags: [\"巡檢\"]}) { position } }",
            json!({"id": id}),
        )
        .await["editLibraryItem"]["position"]
        .as_u64()
        .unwrap();
    let item = api.ok(&chan, ITEM, json!({"id": id, "at": at})).await["libraryItem"].clone();
    assert_eq!(
        (item["owner"].clone(), item["tags"].clone()),
        (json!("u-wong"), json!(["巡檢"]))
    );
    let at = api
        .ok(
            &wong,
            "mutation($id: ID!) { deprecateLibraryItem(input: {itemId: $id, reason: \"改用 Ansible 模塊\"}) { position } }",
            json!({"id": id}),
        )
        .await["deprecateLibraryItem"]["position"]
        .as_u64()
        .unwrap();
    let item = api.ok(&chan, ITEM, json!({"id": id, "at": at})).await["libraryItem"].clone();
    assert_eq!(item["deprecated"], true);
    assert_eq!(item["current"], Value::Null);
    let sha3 = uploaded(&api, b"#!/bin/sh\nuname -n\n").await;
    assert_eq!(
        api.code(
            Some(&wong),
            ADD_VERSION,
            json!({"id": id, "sha": sha3, "file": "hostname.sh"})
        )
        .await
        .0,
        "CONFLICT"
    );
    assert_eq!(
        position(&api).await,
        at,
        "a refused command records nothing"
    );
    assert_eq!(
        api.code(
            Some(&wong),
            ADD_VERSION,
            json!({"id": "library_item-00000000-0000-0000-0000-000000000001", "sha": sha3, "file": "x.sh"})
        )
        .await
        .0,
        "NOT_FOUND"
    );
    api.stop().await;
}

async fn the_library_is_listed_by_kind_searched_and_paged(fixture: &Fixture) {
    let api = Api::start(fixture).await;
    let wong = token("u-wong", "運維中心", &["operator"]);
    let chan = token("u-chan", "財政局", &["requester"]);
    let items = [
        ("OS_IMAGE", "CentOS 7.9 標準鏡像", "政務雲 Linux 虛擬機鏡像"),
        ("SOFTWARE", "Oracle Database 19c", "Oracle 數據庫安裝包"),
        ("SOFTWARE", "IBM WebSphere 9.0", "應用服務器中間件"),
        ("SCRIPT", "ntp-check.sh", "檢查時鐘同步"),
    ];
    let mut at = 0;
    let mut ids = Vec::new();
    for (kind, name, description) in items {
        let sha = uploaded(&api, name.as_bytes()).await;
        let added = api
            .ok(
                &wong,
                ADD,
                json!({"kind": kind, "name": name, "sha": sha, "file": "f.bin", "description": description}),
            )
            .await;
        at = added["addLibraryItem"]["position"].as_u64().unwrap();
        ids.push(added["addLibraryItem"]["id"].as_str().unwrap().to_owned());
    }
    let names = |data: &Value| -> Vec<String> {
        data["libraryItems"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |mut vars: Value| {
        vars["at"] = json!(at);
        api.ok(&chan, LIST, vars)
    };
    assert_eq!(
        names(&list(json!({"kind": "SOFTWARE"})).await),
        ["Oracle Database 19c", "IBM WebSphere 9.0"]
    );
    assert_eq!(
        names(&list(json!({"search": "鏡像"})).await),
        ["CentOS 7.9 標準鏡像"]
    );
    assert_eq!(
        names(&list(json!({"search": "數據庫"})).await),
        ["Oracle Database 19c"]
    );
    assert_eq!(
        names(&list(json!({"search": "websphere 中間件"})).await),
        ["IBM WebSphere 9.0"]
    );
    assert_eq!(
        names(&list(json!({"search": "ORACLE", "kind": "SCRIPT"})).await),
        Vec::<String>::new()
    );

    // Pages of two, in the order added.
    let first = list(json!({"first": 2})).await;
    assert_eq!(
        names(&first),
        ["CentOS 7.9 標準鏡像", "Oracle Database 19c"]
    );
    assert_eq!(first["libraryItems"]["pageInfo"]["hasNextPage"], true);
    let cursor = first["libraryItems"]["edges"][1]["cursor"].clone();
    let second = list(json!({"first": 2, "after": cursor})).await;
    assert_eq!(names(&second), ["IBM WebSphere 9.0", "ntp-check.sh"]);
    assert_eq!(second["libraryItems"]["pageInfo"]["hasNextPage"], false);

    // A deprecated item is listed only when asked for.
    let at2 = api
        .ok(
            &wong,
            "mutation($id: ID!) { deprecateLibraryItem(input: {itemId: $id, reason: \"改用 21c\"}) { position } }",
            json!({"id": ids[1]}),
        )
        .await["deprecateLibraryItem"]["position"]
        .as_u64()
        .unwrap();
    let data = api
        .ok(&chan, LIST, json!({"kind": "SOFTWARE", "at": at2}))
        .await;
    assert_eq!(names(&data), ["IBM WebSphere 9.0"]);
    let data = api
        .ok(
            &chan,
            LIST,
            json!({"kind": "SOFTWARE", "all": true, "at": at2}),
        )
        .await;
    assert_eq!(names(&data), ["Oracle Database 19c", "IBM WebSphere 9.0"]);
    assert_eq!(
        data["libraryItems"]["edges"][0]["node"]["current"],
        Value::Null
    );
    assert_eq!(api.code(None, LIST, json!({})).await.0, "UNAUTHENTICATED");
    api.stop().await;
}

async fn an_upload_past_the_limit_is_refused_and_kept_nowhere(fixture: &Fixture) {
    let app = App::start(fixture.open().await, Arc::new(SystemClock));
    let content = ContentStore::temporary().unwrap().with_upload_limit(16);
    let driver = app.driver.clone();
    let api = Api::over(app.with_automation(content, driver)).await;
    let wong = token("u-wong", "運維中心", &["operator"]);
    let chan = token("u-chan", "財政局", &["requester"]);
    let exactly = [7u8; 16];
    assert_eq!(uploaded(&api, &exactly).await, sha256_hex(&exactly));
    let over = [7u8; 17];
    let (status, body) = upload(&api, Some(&wong), &over).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(download(&api, Some(&chan), &sha256_hex(&over)).await.0, 404);
    api.stop().await;
}
