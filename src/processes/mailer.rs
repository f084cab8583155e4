//! Email through SMTP, with the log as a transactional outbox.
//!
//! Two halves, one task. The *queuer* is a process manager on the notifications read
//! model: for each new notice and each person it is for who set a contact, it queues a
//! mail (`MailQueued`), rendered from the templates in their language, under an id made
//! of the notice's position and the recipient, so queueing twice is refused. The *sender*
//! takes the mails due (queued, or failed and past their `retry_at`), hands each to the
//! SMTP server, and records `MailSent` or `MailAttemptFailed` with the attempt number in
//! the command id. It waits for the read models to show what it recorded before it looks
//! for due mails again, and on start for them to reach the log's head, so a restart never
//! sends again what was recorded as sent, and a mail queued before a crash is sent after
//! it. A crash between the server's acceptance and the record sends that one mail again,
//! with the same `Message-ID`, which receivers use to drop the duplicate.
//!
//! Without an SMTP host, nothing is queued: notices stay in the `notifications` query.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use opsledger_domain::kernel::aggregate::Context;
use opsledger_domain::notify::mail::{mail_id, message_id, Letter, Mail, MailCommand};
use opsledger_domain::Actor;
use opsledger_projections::notify::mail::MailView;
use opsledger_projections::notify::templates::{kind_name, render};
use uuid::Uuid;

use crate::app::App;
use crate::store::commands::CommandError;

/// How the connection to the SMTP server is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SmtpTls {
    /// Plain text (a local relay or a test catcher).
    None,
    /// STARTTLS, required (port 587 by default).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465 by default).
    Tls,
}

/// `serve`'s email options.
#[derive(Clone, Debug, clap::Args)]
pub struct MailArgs {
    /// The SMTP server email is sent through. Without one email is off: notifications
    /// are kept and shown in the `notifications` query.
    #[arg(long, env = "OPSLEDGER_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// Its port (default: 25 without TLS, 587 with STARTTLS, 465 with TLS).
    #[arg(long, env = "OPSLEDGER_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    #[arg(
        long,
        env = "OPSLEDGER_SMTP_TLS",
        value_enum,
        default_value = "starttls"
    )]
    pub smtp_tls: SmtpTls,
    /// The user to log in as (with `--smtp-password`).
    #[arg(long, env = "OPSLEDGER_SMTP_USER")]
    pub smtp_user: Option<String>,
    #[arg(long, env = "OPSLEDGER_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,
    /// A PEM file of the certificate authority the SMTP server's certificate is checked
    /// against (a site's own CA), besides the well-known ones.
    #[arg(long, env = "OPSLEDGER_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<std::path::PathBuf>,
    /// The sender of every email.
    #[arg(
        long,
        env = "OPSLEDGER_MAIL_FROM",
        default_value = "OpsLedger <opsledger@localhost>"
    )]
    pub mail_from: String,
}

/// Where and how email is sent.
#[derive(Clone)]
pub struct MailConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// User and password.
    pub credentials: Option<(String, String)>,
    /// A certificate authority (PEM) trusted for the server's certificate, besides the
    /// well-known ones.
    pub ca_pem: Option<Vec<u8>>,
    pub from: Mailbox,
    /// How often the sender looks for retries that came due when no event arrives.
    pub poll: Duration,
    /// A notice older than this when the queuer first sees it (e.g. after email was off
    /// for a while) is not mailed; it stays in the `notifications` query.
    pub max_age: chrono::Duration,
}

impl std::fmt::Debug for MailConfig {
    // The password and the CA's bytes stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field(
                "ca",
                &self
                    .ca_pem
                    .as_ref()
                    .map(|pem| format!("{} bytes of PEM", pem.len())),
            )
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl MailConfig {
    /// Plain SMTP to `host:port`, no login: a local relay or a test catcher.
    pub fn plain(host: &str, port: u16) -> MailConfig {
        MailConfig {
            host: host.to_owned(),
            port,
            tls: SmtpTls::None,
            credentials: None,
            ca_pem: None,
            from: Mailbox::new(
                Some("OpsLedger".into()),
                "opsledger@localhost".parse().expect("a valid address"),
            ),
            poll: Duration::from_secs(1),
            max_age: chrono::Duration::days(1),
        }
    }

    fn transport(
        &self,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
        let builder = match (self.tls, &self.ca_pem) {
            (SmtpTls::None, _) => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            }
            (SmtpTls::Starttls, None) => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&self.host)?
            }
            (SmtpTls::Tls, None) => AsyncSmtpTransport::<Tokio1Executor>::relay(&self.host)?,
            (tls, Some(pem)) => {
                let parameters = TlsParameters::builder(self.host.clone())
                    .add_root_certificate(Certificate::from_pem(pem)?)
                    .build()?;
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host).tls(
                    if tls == SmtpTls::Tls {
                        Tls::Wrapper(parameters)
                    } else {
                        Tls::Required(parameters)
                    },
                )
            }
        };
        let mut builder = builder
            .port(self.port)
            .timeout(Some(Duration::from_secs(30)));
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(builder.build())
    }
}

impl MailArgs {
    /// The configuration these options name; none without `--smtp-host`.
    ///
    /// # Errors
    /// A user without a password, or a sender that is not an address.
    pub fn config(&self) -> anyhow::Result<Option<MailConfig>> {
        let Some(host) = self.smtp_host.clone().filter(|h| !h.trim().is_empty()) else {
            return Ok(None);
        };
        let port = self.smtp_port.unwrap_or(match self.smtp_tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        });
        let credentials = match (&self.smtp_user, &self.smtp_password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (None, None) => None,
            (Some(_), None) => anyhow::bail!("--smtp-user needs --smtp-password"),
            (None, Some(_)) => anyhow::bail!("--smtp-password needs --smtp-user"),
        };
        let from: Mailbox = self
            .mail_from
            .parse()
            .map_err(|e| anyhow::anyhow!("--mail-from {:?}: {e}", self.mail_from))?;
        let ca_pem = match &self.smtp_ca_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("--smtp-ca-file {}: {e}", path.display()))?;
                use rustls_pki_types::pem::PemObject;
                let certificates = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "--smtp-ca-file {}: not a PEM certificate: {e}",
                            path.display()
                        )
                    })?;
                if certificates.is_empty() {
                    anyhow::bail!(
                        "--smtp-ca-file {}: not a PEM certificate (no BEGIN CERTIFICATE block)",
                        path.display()
                    );
                }
                Some(pem)
            }
            None => None,
        };
        Ok(Some(MailConfig {
            host,
            port,
            tls: self.smtp_tls,
            credentials,
            ca_pem,
            from,
            ..MailConfig::plain("", 0)
        }))
    }
}

fn key(mail: Uuid, what: &str) -> Uuid {
    Uuid::new_v5(&mail, what.as_bytes())
}

fn context(app: &App) -> Context {
    Context {
        actor: Actor::system("mailer"),
        now: app.clock.now(),
    }
}

/// Queues a mail for every notice from position `from` on, to each person it is for
/// who set a contact before it. Returns how many it queued and the position to start
/// from next time.
///
/// # Errors
/// A store failure; a mail queued already is not an error.
pub async fn queue_notices(
    app: &App,
    from: u64,
    max_age: chrono::Duration,
) -> anyhow::Result<(usize, u64)> {
    let now = app.clock.now();
    let (letters, next) = {
        let models = app.runner.read().await;
        let notices = models.notifications.from_position(from);
        let next = notices.last().map_or(from, |n| n.position + 1);
        let mut letters = Vec::new();
        for notice in notices.iter().filter(|n| now - n.at <= max_age) {
            for contact in models
                .contacts
                .recipients(&notice.audience, notice.position)
            {
                let mail = render(notice, contact.language);
                letters.push(Letter {
                    recipient: contact.user.clone(),
                    address: contact.email.clone(),
                    language: contact.language,
                    kind: kind_name(notice.kind),
                    subject: mail.subject,
                    body: mail.body,
                    source_position: notice.position,
                    entity: notice.subject.stream(),
                });
            }
        }
        (letters, next)
    };
    let mut queued = 0;
    for letter in letters {
        let id = mail_id(letter.source_position, &letter.recipient);
        let command = MailCommand::Queue(Box::new(letter));
        match app
            .bus
            .execute::<Mail>(id, command, &context(app), key(id, "queue"))
            .await
        {
            Ok(_) => queued += 1,
            Err(CommandError::Domain(_) | CommandError::Conflict(_)) => {}
            Err(e) => return Err(anyhow::anyhow!("queueing mail {id}: {}", e.report())),
        }
    }
    Ok((queued, next))
}

/// What one sending pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendPass {
    pub sent: usize,
    pub failed: usize,
}

fn message(mail: &MailView, from: &Mailbox, at: chrono::DateTime<Utc>) -> Result<Message, String> {
    let address = mail
        .letter
        .address
        .parse()
        .map_err(|e| format!("address {:?}: {e}", mail.letter.address))?;
    Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, address))
        .subject(mail.letter.subject.clone())
        .message_id(Some(message_id(mail.id)))
        .date(at.into())
        .header(ContentType::TEXT_PLAIN)
        .body(mail.letter.body.clone())
        .map_err(|e| e.to_string())
}

/// Makes one attempt at every mail due now, and records each outcome.
///
/// # Errors
/// A store failure, or the read models not showing a record in time.
pub async fn send_due(
    app: &App,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
) -> anyhow::Result<SendPass> {
    let due: Vec<MailView> = {
        let models = app.runner.read().await;
        models.mail.due(app.clock.now()).cloned().collect()
    };
    let mut pass = SendPass::default();
    for mail in due {
        let attempt = mail.attempts + 1;
        let now = app.clock.now();
        let outcome = match message(&mail, from, now) {
            Ok(message) => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let (command, what) = match outcome {
            Ok(()) => {
                pass.sent += 1;
                crate::metrics::metrics().mail_sent.inc();
                let command = MailCommand::RecordSent {
                    attempt,
                    message_id: message_id(mail.id),
                };
                (command, format!("sent:{attempt}"))
            }
            Err(error) => {
                pass.failed += 1;
                crate::metrics::metrics().mail_failures.inc();
                tracing::warn!(mail = %mail.id, attempt, %error, "an email could not be delivered");
                (
                    MailCommand::RecordFailure { attempt, error },
                    format!("failed:{attempt}"),
                )
            }
        };
        let written = match app
            .bus
            .execute::<Mail>(mail.id, command, &context(app), key(mail.id, &what))
            .await
        {
            Ok(done) => done.last_position,
            // Recorded by another sender first: nothing to add.
            Err(CommandError::Domain(_) | CommandError::Conflict(_)) => continue,
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "recording the delivery of mail {}: {}",
                    mail.id,
                    e.report()
                ))
            }
        };
        // The next pass must see this record, or it would send the mail again.
        app.runner
            .wait_for(written, Duration::from_secs(30))
            .await
            .map_err(|reached| {
                anyhow::anyhow!("the read models stopped at {reached}, not {written}")
            })?;
    }
    Ok(pass)
}

/// Starts delivering email with `config`, or, without one, says once that email is off.
/// The task queues and sends whenever the log moves, and every `config.poll` for
/// retries that came due.
pub fn start(app: App, config: Option<MailConfig>) -> Option<tokio::task::JoinHandle<()>> {
    let Some(config) = config else {
        tracing::info!("email is off: notifications are kept and shown in the notifications query");
        return None;
    };
    let transport = match config.transport() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("email is off: the SMTP settings are not usable: {e}");
            return None;
        }
    };
    tracing::info!(host = %config.host, port = config.port, tls = ?config.tls, "email is on");
    let supervisor = app.supervisor.clone();
    let (config, transport) = (Arc::new(config), Arc::new(transport));
    Some(supervisor.spawn("mailer", move |task| {
        lead_and_deliver(app.clone(), config.clone(), transport.clone(), task)
    }))
}

/// The supervised task `mailer`: one process sends, the others wait on `standby` to take
/// over.
async fn lead_and_deliver(
    app: App,
    config: Arc<MailConfig>,
    transport: Arc<AsyncSmtpTransport<Tokio1Executor>>,
    task: crate::runtime::supervise::Task,
) -> Result<(), crate::runtime::supervise::TaskError> {
    loop {
        task.standby();
        let mut lead = app.store.lead("mailer").await?;
        task.running();
        tokio::select! {
            () = deliver(&app, &config, &transport) => {
                return Err(crate::runtime::supervise::TaskError::Transient("the mailer stopped delivering".into()))
            }
            () = lead.lost() => tracing::error!(
                "the mailer lost its role (the connection holding it dropped); it waits to lead again"
            ),
        }
    }
}

/// Queues and sends, whenever the log moves and every `config.poll`.
async fn deliver(app: &App, config: &MailConfig, transport: &AsyncSmtpTransport<Tokio1Executor>) {
    // What was recorded before a restart must be seen before anything is sent.
    loop {
        match app.store.head().await {
            Ok(head)
                if app
                    .runner
                    .wait_for(head, Duration::from_secs(60))
                    .await
                    .is_ok() =>
            {
                break
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("the mailer cannot read the log's head: {e}");
                tokio::time::sleep(config.poll).await;
            }
        }
    }
    let mut from = app.runner.read().await.mail.highest_source();
    loop {
        let seen = app.runner.position();
        match queue_notices(app, from, config.max_age).await {
            Ok((queued, next)) => {
                from = next;
                crate::metrics::metrics().mail_queued.inc_by(queued as u64);
                if queued > 0 {
                    tracing::info!(queued, "emails queued");
                }
            }
            Err(e) => tracing::warn!("queueing emails failed: {e:#}"),
        }
        match send_due(app, transport, &config.from).await {
            Ok(pass) if pass == SendPass::default() => {}
            Ok(pass) => tracing::info!(?pass, "email pass"),
            Err(e) => tracing::warn!("sending emails failed: {e:#}"),
        }
        let _ = app.runner.wait_for(seen + 1, config.poll).await;
    }
}
