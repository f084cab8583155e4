//! Email over a real SMTP server on loopback, on both backends, on a manual clock: an
//! approval needed is mailed once to each approver of the department who set a contact,
//! in their language, and to no one else; a restart sends nothing twice; an SMTP server
//! that is down at first gets the mail on a later attempt, once.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use opsledger::app::{App, ManualClock};
use opsledger::processes::mailer::{self, MailConfig};
use opsledger_domain::notify::mail::mail_id;
use serde_json::{json, Value};

use crate::graphql::{token, Api, SUBMIT};
use crate::support::Fixture;

/// One message the catcher accepted.
#[derive(Clone, Debug)]
struct Received {
    to: Vec<String>,
    data: Vec<u8>,
    /// Who logged in first, on a session that did; and whether it was under TLS.
    user: Option<String>,
    secure: bool,
}

impl Received {
    fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("a message")
    }
}

/// An SMTP server on 127.0.0.1 that keeps what it accepts; while `down`, it answers
/// every connection with 421 (service not available) and closes it.
struct Catcher {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    down: Arc<AtomicBool>,
}

#[derive(Clone)]
struct Session {
    received: Arc<Mutex<Vec<Received>>>,
    to: Vec<String>,
    data: Vec<u8>,
    /// The user and password a login must give, when logins are taken.
    login: Option<(String, String)>,
    user: Option<String>,
    /// Set once the session runs under TLS.
    secure: Arc<AtomicBool>,
}

impl mailin::Handler for Session {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        to: &[String],
    ) -> mailin::Response {
        self.to = to.to_vec();
        self.data.clear();
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin::Response {
        self.received.lock().unwrap().push(Received {
            to: std::mem::take(&mut self.to),
            data: std::mem::take(&mut self.data),
            user: self.user.clone(),
            secure: self.secure.load(Ordering::SeqCst),
        });
        mailin::response::OK
    }

    fn auth_plain(&mut self, _authorization: &str, user: &str, password: &str) -> mailin::Response {
        match &self.login {
            Some((u, p)) if u == user && p == password => {
                self.user = Some(user.to_owned());
                mailin::response::AUTH_OK
            }
            _ => mailin::response::INVALID_CREDENTIALS,
        }
    }
}

impl Session {
    fn new(received: Arc<Mutex<Vec<Received>>>) -> Session {
        Session {
            received,
            to: Vec::new(),
            data: Vec::new(),
            login: None,
            user: None,
            secure: Arc::default(),
        }
    }
}

/// Answers SMTP commands from `reader` until the session ends, or until STARTTLS (true).
fn answer<S: std::io::Read + Write>(
    smtp: &mut mailin::Session<Session>,
    reader: &mut BufReader<S>,
) -> std::io::Result<bool> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(false);
        }
        let response = smtp.process(&line);
        match response.action {
            mailin::Action::Reply => response.write_to(reader.get_mut())?,
            mailin::Action::Close => {
                response.write_to(reader.get_mut())?;
                return Ok(false);
            }
            mailin::Action::UpgradeTls => {
                response.write_to(reader.get_mut())?;
                return Ok(true);
            }
            mailin::Action::NoReply => {}
        }
        reader.get_mut().flush()?;
    }
}

/// The test certificate (`tests/keys/smtp-cert.pem`, self-signed for 127.0.0.1) as a
/// server configuration.
fn test_certificate() -> Arc<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys");
    let cert = rustls_pki_types::CertificateDer::from_pem_file(keys.join("smtp-cert.pem")).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(keys.join("smtp-key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    Arc::new(config)
}

/// A session that takes STARTTLS (with `tls`) and a login (PLAIN, under TLS only, as
/// mail servers do), and keeps what it accepts.
fn converse_securely(
    stream: TcpStream,
    session: Session,
    tls: Arc<rustls::ServerConfig>,
) -> std::io::Result<()> {
    let remote = stream.peer_addr()?.ip();
    let mut plain = BufReader::new(stream);
    let secured = session.secure.clone();
    let mut smtp = mailin::SessionBuilder::new("catcher")
        .enable_start_tls()
        .enable_auth(mailin::AuthMechanism::Plain)
        .build(remote, session);
    smtp.greeting().write_to(plain.get_mut())?;
    if !answer(&mut smtp, &mut plain)? {
        return Ok(());
    }
    // The client waits for the answer to STARTTLS: nothing of the handshake is buffered.
    let connection = rustls::ServerConnection::new(tls).map_err(std::io::Error::other)?;
    let mut secure = BufReader::new(rustls::StreamOwned::new(connection, plain.into_inner()));
    smtp.tls_active();
    secured.store(true, Ordering::SeqCst);
    answer(&mut smtp, &mut secure).map(|_| ())
}

fn converse(stream: TcpStream, session: Session, down: bool) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    if down {
        return reader
            .get_mut()
            .write_all(b"421 catcher: service not available\r\n");
    }
    let remote = reader.get_ref().peer_addr()?.ip();
    let mut smtp = mailin::SessionBuilder::new("catcher").build(remote, session);
    smtp.greeting().write_to(reader.get_mut())?;
    answer(&mut smtp, &mut reader).map(|_| ())
}

impl Catcher {
    fn start() -> Catcher {
        Catcher::start_with(None)
    }

    /// A catcher that takes STARTTLS with the test certificate and a login as
    /// `user`/`password`, when `secure` names them.
    fn start_with(secure: Option<(&str, &str)>) -> Catcher {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let (sink, is_down) = (received.clone(), down.clone());
        let login = secure.map(|(u, p)| (u.to_owned(), p.to_owned()));
        let tls = secure.map(|_| test_certificate());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut session = Session::new(sink.clone());
                session.login = login.clone();
                let down = is_down.load(Ordering::SeqCst);
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    Some(tls) => converse_securely(stream, session, tls),
                    None => converse(stream, session, down),
                });
            }
        });
        Catcher {
            port,
            received,
            down,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (at most 15 s) until `n` messages arrived, then a little longer to see that
    /// no more come; what arrived.
    async fn expect(&self, n: usize) -> Vec<Received> {
        for _ in 0..150 {
            if self.received().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        let got = self.received();
        assert_eq!(got.len(), n, "{got:#?}");
        got
    }
}

struct Running {
    api: Api,
    app: App,
    mailer: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(fixture: &Fixture, clock: &Arc<ManualClock>, catcher: &Catcher) -> Running {
        Running::start_with(fixture, clock, MailConfig::plain("127.0.0.1", catcher.port)).await
    }

    async fn start_with(
        fixture: &Fixture,
        clock: &Arc<ManualClock>,
        config: MailConfig,
    ) -> Running {
        let app = App::start(fixture.open().await, clock.clone());
        let config = MailConfig {
            poll: Duration::from_millis(100),
            ..config
        };
        let mailer = mailer::start(app.clone(), Some(config)).expect("email is on");
        Running {
            api: Api::over(app.clone()).await,
            app,
            mailer,
        }
    }

    async fn stop(self) {
        self.mailer.abort();
        let _ = self.mailer.await;
        self.api.stop().await;
        drop(self.app);
    }
}

fn requester() -> String {
    token("u-chan", "財政局", &["requester"])
}
fn ho() -> String {
    token("u-ho", "財政局", &["approver"])
}
fn lee() -> String {
    token("u-lee", "財政局", &["approver"])
}
fn operator() -> String {
    token("u-op", "運維中心", &["operator"])
}

const SET_CONTACT: &str = "mutation($email: String!, $lang: Language) {
    setContact(input: {email: $email, language: $lang}) { position } }";
const MAILS: &str = "query($status: MailStatus) { mails(status: $status) { edges { node {
    id recipient address language kind subject body status attempts lastError retryAt sentAt messageId sourcePosition } } } }";
const NOTICES: &str =
    "{ notifications { edges { node { position kind text emailStatus emailedAt } } } }";

async fn set_contact(api: &Api, token: &str, email: &str, lang: Option<&str>) -> u64 {
    let done = api
        .ok(token, SET_CONTACT, json!({"email": email, "lang": lang}))
        .await;
    done["setContact"]["position"].as_u64().unwrap()
}

async fn submit(api: &Api) -> u64 {
    let item = api.create_vm_item().await;
    let cfg = json!({"cpu": 4, "memory_gb": 16, "os": "linux", "image": "rhel-9.4"});
    let done = api
        .ok(&requester(), SUBMIT, json!({"item": item, "cfg": cfg}))
        .await;
    done["submitRequest"]["position"].as_u64().unwrap()
}

async fn mails(api: &Api, status: Option<&str>) -> Vec<Value> {
    let data = api.ok(&operator(), MAILS, json!({"status": status})).await;
    data["mails"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn notices(api: &Api, token: &str) -> Vec<Value> {
    let data = api.ok(token, NOTICES, json!({})).await;
    data["notifications"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// Waits (at most 15 s) until the outbox shows `n` mails with `status`.
async fn outbox_shows(api: &Api, status: &str, n: usize) -> Vec<Value> {
    for _ in 0..150 {
        let found = mails(api, Some(status)).await;
        if found.len() == n {
            // Each mail is found again by its global id.
            for mail in &found {
                let node = api
                    .ok(
                        &operator(),
                        "query($id: ID!) { node(id: $id) { __typename id } }",
                        json!({"id": mail["id"]}),
                    )
                    .await;
                assert_eq!(
                    node["node"],
                    json!({"__typename": "Mail", "id": mail["id"]})
                );
            }
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the outbox does not show {n} {status} mails: {:#?}",
        mails(api, None).await
    );
}

fn by_recipient<'a>(got: &'a [Received], address: &str) -> &'a Received {
    got.iter()
        .find(|r| r.to.iter().any(|t| t == address))
        .unwrap_or_else(|| panic!("no mail to {address}: {got:#?}"))
}

async fn approvers_get_one_mail_each_in_their_language_and_a_restart_sends_nothing_twice(
    fixture: &Fixture,
) {
    let catcher = Catcher::start();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap(),
    ));
    let running = Running::start(fixture, &clock, &catcher).await;
    let api = &running.api;

    // A bad address is refused, naming the field, and records nothing.
    let (code, error) = api
        .code(Some(&ho()), SET_CONTACT, json!({"email": "ho at fin"}))
        .await;
    assert_eq!(
        (code.as_str(), error["extensions"]["field"].as_str()),
        ("BAD_USER_INPUT", Some("email"))
    );
    set_contact(api, &ho(), "ho@fin.gov.example", None).await;
    set_contact(api, &lee(), "lee@fin.gov.example", Some("EN")).await;
    // An approver of another department, and the operator (the second step's role).
    let ng = token("u-ng", "教育局", &["approver"]);
    set_contact(api, &ng, "ng@edu.gov.example", None).await;
    let at = set_contact(api, &operator(), "op@ops.gov.example", None).await;
    let mine = api
        .ok(
            &lee(),
            "query($at: Int) { myContact(atLeast: $at) { email language department roles } }",
            json!({"at": at}),
        )
        .await;
    assert_eq!(
        mine["myContact"],
        json!({"email": "lee@fin.gov.example", "language": "EN", "department": "財政局", "roles": ["approver"]})
    );

    submit(api).await;
    let got = catcher.expect(2).await;
    let zh = by_recipient(&got, "ho@fin.gov.example").parsed();
    assert!(
        zh.subject()
            .unwrap()
            .starts_with("[OpsLedger] 審批待辦：u-chan 的申請待您審批"),
        "{:?}",
        zh.subject()
    );
    let body = zh.body_text(0).unwrap();
    assert!(body.contains("有一項服務請求待您審批。"), "{body}");
    assert!(body.contains("第 1 步「部門審批」"), "{body}");
    let en = by_recipient(&got, "lee@fin.gov.example").parsed();
    assert_eq!(en.subject(), Some("[OpsLedger] Approval needed"));
    let body = en.body_text(0).unwrap();
    assert!(
        body.contains("A service request is waiting for your approval."),
        "{body}"
    );

    // The notice says it was emailed, and the Message-ID is the mail's own.
    let sent = outbox_shows(api, "SENT", 2).await;
    let notice = notices(api, &ho()).await;
    assert_eq!(notice.len(), 1);
    assert_eq!(notice[0]["kind"], "APPROVAL_NEEDED");
    assert_eq!(notice[0]["emailStatus"], "SENT");
    assert!(notice[0]["emailedAt"].is_string());
    let position = notice[0]["position"].as_u64().unwrap();
    assert_eq!(
        zh.message_id(),
        Some(format!("{}@opsledger", mail_id(position, "u-ho")).as_str())
    );
    assert!(sent
        .iter()
        .all(|m| m["attempts"] == 1 && m["sourcePosition"] == position));

    // An approver of the department with no contact is told in the query, not by mail.
    let wu = token("u-wu", "財政局", &["approver"]);
    let shown = notices(api, &wu).await;
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["emailStatus"], Value::Null);
    assert!(mails(api, None)
        .await
        .iter()
        .all(|m| m["recipient"] != "u-wu"));
    // Requesters do not read the outbox.
    let (code, _) = api.code(Some(&requester()), MAILS, json!({})).await;
    assert_eq!(code, "FORBIDDEN");

    // A restart over the same log sends nothing again …
    running.stop().await;
    let running = Running::start(fixture, &clock, &catcher).await;
    let api = &running.api;
    catcher.expect(2).await;
    // … and mails what happens next: the second step opens for the operators.
    let request = api
        .ok(
            &ho(),
            "{ pendingApprovals { edges { node { id } } } }",
            json!({}),
        )
        .await;
    let id = request["pendingApprovals"]["edges"][0]["node"]["id"].clone();
    api.ok(&ho(), crate::graphql::APPROVE, json!({"id": id, "step": 0}))
        .await;
    let got = catcher.expect(3).await;
    let op = by_recipient(&got, "op@ops.gov.example").parsed();
    assert!(op.subject().unwrap().contains("第 2 步「運維中心審批」"));
    assert_eq!(
        got.iter()
            .filter(|r| r.to.contains(&"ho@fin.gov.example".to_owned()))
            .count(),
        1
    );
    running.stop().await;
}

async fn a_mail_the_server_refuses_at_first_is_retried_later_and_delivered_once(fixture: &Fixture) {
    let catcher = Catcher::start();
    catcher.down.store(true, Ordering::SeqCst);
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap(),
    ));
    let running = Running::start(fixture, &clock, &catcher).await;
    let api = &running.api;
    set_contact(api, &ho(), "ho@fin.gov.example", None).await;
    submit(api).await;

    let failed = outbox_shows(api, "FAILED", 1).await;
    assert_eq!(failed[0]["attempts"], 1);
    assert!(
        failed[0]["lastError"].as_str().unwrap().contains("421"),
        "{failed:?}"
    );
    assert_eq!(failed[0]["retryAt"], "2026-11-26T09:00:30+00:00");
    // The server is back, but the retry is not due until the clock says so.
    catcher.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(catcher.received().is_empty());
    assert_eq!(mails(api, Some("FAILED")).await.len(), 1);

    // A restart keeps the failed mail, and sends it when it is due.
    running.stop().await;
    let running = Running::start(fixture, &clock, &catcher).await;
    let api = &running.api;
    clock.advance(chrono::Duration::seconds(30));
    let got = catcher.expect(1).await;
    assert_eq!(got[0].to, ["ho@fin.gov.example"]);
    let sent = outbox_shows(api, "SENT", 1).await;
    assert_eq!(sent[0]["attempts"], 2);
    assert_eq!(sent[0]["lastError"], failed[0]["lastError"]);
    clock.advance(chrono::Duration::hours(2));
    catcher.expect(1).await;
    running.stop().await;
}

/// STARTTLS to a server whose certificate the site's own CA vouches for
/// (`--smtp-ca-file`), with a login: a wrong password is a failed attempt that records the
/// server's answer; with the right one the retry is delivered once, under TLS, as that user.
async fn mail_goes_over_starttls_with_a_login(fixture: &Fixture) {
    let catcher = Catcher::start_with(Some(("opsledger", "s3cret")));
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap(),
    ));
    let config = |password: &str| {
        let args = opsledger::processes::mailer::MailArgs {
            smtp_host: Some("127.0.0.1".into()),
            smtp_port: Some(catcher.port),
            smtp_tls: opsledger::processes::mailer::SmtpTls::Starttls,
            smtp_user: Some("opsledger".into()),
            smtp_password: Some(password.into()),
            smtp_ca_file: Some(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys/smtp-cert.pem"),
            ),
            mail_from: "OpsLedger <opsledger@localhost>".into(),
        };
        args.config().unwrap().expect("email is on")
    };
    let running = Running::start_with(fixture, &clock, config("wrong")).await;
    let api = &running.api;
    set_contact(api, &ho(), "ho@fin.gov.example", None).await;
    submit(api).await;
    let failed = outbox_shows(api, "FAILED", 1).await;
    let error = failed[0]["lastError"].as_str().unwrap();
    assert!(error.contains("535"), "the server's answer: {error}");
    assert!(catcher.received().is_empty());
    running.stop().await;

    let running = Running::start_with(fixture, &clock, config("s3cret")).await;
    clock.advance(chrono::Duration::seconds(30));
    let got = catcher.expect(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, ["ho@fin.gov.example"]);
    assert!(got[0].secure, "sent under TLS");
    assert_eq!(got[0].user.as_deref(), Some("opsledger"));
    outbox_shows(&running.api, "SENT", 1).await;
    running.stop().await;

    // A CA file that is not a certificate is named at start.
    let mut args = opsledger::processes::mailer::MailArgs {
        smtp_host: Some("127.0.0.1".into()),
        smtp_port: None,
        smtp_tls: opsledger::processes::mailer::SmtpTls::Starttls,
        smtp_user: None,
        smtp_password: None,
        smtp_ca_file: Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")),
        mail_from: "OpsLedger <opsledger@localhost>".into(),
    };
    let error = args.config().unwrap_err().to_string();
    assert!(
        error.starts_with("--smtp-ca-file ") && error.contains("not a PEM certificate"),
        "{error}"
    );
    args.smtp_ca_file = Some("no-such-file.pem".into());
    let error = args.config().unwrap_err().to_string();
    assert!(error.contains("no-such-file.pem"), "{error}");
}

on_both_backends!(
    mail_goes_over_starttls_with_a_login,
    approvers_get_one_mail_each_in_their_language_and_a_restart_sends_nothing_twice,
    a_mail_the_server_refuses_at_first_is_retried_later_and_delivered_once
);
