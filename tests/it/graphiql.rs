//! GraphiQL in a real headless Chromium, driven through chromedriver, with every host but
//! 127.0.0.1 unresolvable: the page works with no network. Without chromedriver the test
//! prints one SKIPPED line, unless `OPSLEDGER_TEST_BROWSER=1` says a browser must be there.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::graphql::{token, Api};
use crate::support::{Fixture, Kind};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Set to 1 where the browser test must run (CI): a missing browser then fails it.
const BROWSER_VAR: &str = "OPSLEDGER_TEST_BROWSER";

/// The longest the test waits for the page to get somewhere before it gives up.
const PATIENCE: Duration = Duration::from_secs(60);

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver, or says why not (`None`: skipped).
    async fn start() -> Option<Driver> {
        let required = std::env::var(BROWSER_VAR).is_ok_and(|v| v == "1");
        let missing = [CHROMEDRIVER, CHROMIUM]
            .into_iter()
            .find(|path| !std::path::Path::new(path).exists());
        if let Some(missing) = missing {
            assert!(
                !required,
                "{BROWSER_VAR}=1 but {missing} is not installed (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "SKIPPED: the GraphiQL browser test, because {missing} is not installed \
                 (apt-get install chromium chromium-driver; set {BROWSER_VAR}=1 to require it)"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let status = format!("{}/status", driver.url);
        let started = std::time::Instant::now();
        loop {
            let ready = match http.get(&status).send().await {
                Ok(response) => response.json::<Value>().await.ok(),
                Err(_) => None,
            };
            if ready.is_some_and(|s| s["value"]["ready"] == json!(true)) {
                break;
            }
            assert!(started.elapsed() < PATIENCE, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(driver)
    }

    /// A headless Chromium with a fresh profile that can reach nothing but 127.0.0.1.
    async fn browser(&self, profile: &std::path::Path) -> Client {
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `script` until it returns something other than `null`, and returns that.
async fn eventually(browser: &Client, script: &str, what: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let value = browser.execute(script, vec![]).await.unwrap();
        if !value.is_null() {
            return value;
        }
        if started.elapsed() > PATIENCE {
            let text = browser
                .execute("return document.body.innerText", vec![])
                .await
                .unwrap_or_default();
            panic!("{what} never came; the page says: {text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the CodeMirror editor under `selector`, or `null`.
fn editor_text(selector: &str) -> String {
    format!(
        "const e = document.querySelector({selector:?}); return e && e.CodeMirror ? e.CodeMirror.getValue() : null;"
    )
}

const HEADERS: &str = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_works_in_a_browser_without_a_network() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    api.create_vm_item().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    let page = format!("{}/graphql", api.base());
    browser.goto(&page).await.unwrap();

    // GraphiQL renders, with the README's first query and the headers pane open on an
    // `Authorization` example.
    let query = eventually(
        &browser,
        &editor_text(".graphiql-query-editor .CodeMirror"),
        "GraphiQL's query editor",
    )
    .await;
    assert!(
        query
            .as_str()
            .unwrap()
            .contains("requests(filter: {status: PENDING_APPROVAL})"),
        "{query}"
    );
    let headers = eventually(&browser, &editor_text(HEADERS), "the headers pane").await;
    let example: Value = serde_json::from_str(headers.as_str().unwrap()).unwrap();
    assert!(
        example["Authorization"]
            .as_str()
            .unwrap()
            .starts_with("Bearer "),
        "{headers}"
    );

    // A requester's token in the headers, a query, and its answer in the result pane.
    let chan = token("u-chan", "財政部", &["requester"]);
    let set =
        "document.querySelector(arguments[0]).CodeMirror.setValue(arguments[1]); return true;";
    browser
        .execute(
            set,
            vec![
                json!(HEADERS),
                json!(json!({"Authorization": format!("Bearer {chan}")}).to_string()),
            ],
        )
        .await
        .unwrap();
    browser
        .execute(
            set,
            vec![
                json!(".graphiql-query-editor .CodeMirror"),
                json!("{ serviceCatalog { edges { node { name version } } } }"),
            ],
        )
        .await
        .unwrap();
    browser
        .find(Locator::Css(".graphiql-execute-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let result = eventually(
        &browser,
        "const r = document.querySelector('.result-window .CodeMirror'); \
         const t = r && r.CodeMirror.getValue(); return t && t.includes('serviceCatalog') ? t : null;",
        "the result",
    )
    .await;
    let result: Value = serde_json::from_str(result.as_str().unwrap()).unwrap();
    assert_eq!(
        result["data"]["serviceCatalog"]["edges"][0]["node"]["name"], "標準虛擬機",
        "{result}"
    );

    // The docs explorer lists the root types from the schema it introspected.
    browser
        .find(Locator::Css(
            "button[aria-label='Show Documentation Explorer']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let docs = eventually(
        &browser,
        "const d = document.querySelector('.graphiql-doc-explorer'); \
         return d && d.innerText.includes('Query') ? d.innerText : null;",
        "the docs explorer",
    )
    .await;
    assert!(docs.as_str().unwrap().contains("Mutation"), "{docs}");

    // Everything the page loaded came from OpsLedger.
    let loaded = browser
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name);",
            vec![],
        )
        .await
        .unwrap();
    let base = api.base();
    for url in loaded.as_array().unwrap() {
        assert!(url.as_str().unwrap().starts_with(&base), "{url}");
    }

    browser.close().await.unwrap();
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_come_from_the_binary_with_long_cache_headers() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    let http = reqwest::Client::new();
    let page = http
        .get(format!("{}/graphql", api.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("//unpkg") && !html.contains("//cdn"),
        "{html}"
    );
    let files = [
        ("graphiql-3.9.0.min.js", "text/javascript; charset=utf-8"),
        ("graphiql-3.9.0.min.css", "text/css; charset=utf-8"),
        (
            "react-18.3.1.production.min.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "react-dom-18.3.1.production.min.js",
            "text/javascript; charset=utf-8",
        ),
    ];
    for (file, content_type) in files {
        assert!(html.contains(&format!("\"/graphiql/{file}\"")), "{file}");
        let response = http
            .get(format!("{}/graphiql/{file}", api.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{file}");
        assert_eq!(response.headers()["content-type"], content_type);
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let shipped = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("assets/graphiql")
                .join(file),
        )
        .unwrap();
        assert!(response.bytes().await.unwrap() == shipped, "{file}");
    }
    let licence = http
        .get(format!("{}/graphiql/LICENSE-graphiql", api.base()))
        .send()
        .await
        .unwrap();
    assert!(licence.text().await.unwrap().contains("MIT License"));
    let missing = http
        .get(format!("{}/graphiql/graphiql-0.0.0.min.js", api.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    api.stop().await;
}
