//! The email outbox: each email a notice gives rise to is an aggregate of its own. It is
//! queued once (its id comes from the notice's position and the recipient, so queueing
//! twice is refused), and each delivery attempt is recorded: sent, which is final, or
//! failed, with the time of the next attempt, until it is abandoned after
//! [`MAX_ATTEMPTS`]. A sender that restarts reads what was recorded, so it never sends
//! again what was recorded as sent and never forgets one still due.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent};
use crate::notify::contact::Language;
use crate::requests::catalog::{invalid, InvalidField};

/// Attempts before a mail is abandoned.
pub const MAX_ATTEMPTS: u32 = 8;
/// The wait after the first failed attempt; each next wait doubles, up to [`MAX_DELAY`].
pub const FIRST_DELAY: Duration = Duration::seconds(30);
/// The longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::hours(1);
/// The longest error text kept.
pub const MAX_ERROR: usize = 1_000;

/// The id of the mail for the notice at `position` to `recipient`.
pub fn mail_id(position: u64, recipient: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger:mail:{position}:{recipient}").as_bytes(),
    )
}

/// The `Message-ID` of a mail, the same on every attempt, so a receiver can drop a
/// duplicate delivery.
pub fn message_id(mail: Uuid) -> String {
    format!("<{mail}@opsledger>")
}

/// How long to wait after failed attempt number `attempt` (from 1): 30 s, 1 min, 2 min,
/// … at most an hour.
pub fn retry_delay(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    (FIRST_DELAY * (1 << doublings)).min(MAX_DELAY)
}

/// What is sent, to whom, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Letter {
    /// The user id it is for.
    pub recipient: String,
    pub address: String,
    pub language: Language,
    /// The notice's kind, e.g. `ApprovalNeeded`.
    pub kind: String,
    pub subject: String,
    pub body: String,
    /// The log position of the event the notice comes from.
    pub source_position: u64,
    /// The entity the notice is about, `<kind>-<uuid>`.
    pub entity: String,
}

/// Orders to a mail. Given by the mailer (a system component) or an operator.
#[derive(Clone, Debug)]
pub enum MailCommand {
    Queue(Box<Letter>),
    /// Delivery attempt number `attempt` (from 1) was accepted by the SMTP server.
    RecordSent {
        attempt: u32,
        message_id: String,
    },
    /// Delivery attempt number `attempt` failed with `error`.
    RecordFailure {
        attempt: u32,
        error: String,
    },
}

/// What happened to a mail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum MailEvent {
    MailQueued(Box<Letter>),
    MailSent {
        attempt: u32,
        at: DateTime<Utc>,
        message_id: String,
    },
    /// `retry_at` is absent on the last attempt, which a `MailAbandoned` follows.
    MailAttemptFailed {
        attempt: u32,
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
    MailAbandoned {
        attempts: u32,
        last_error: String,
    },
}

impl DomainEvent for MailEvent {}

/// Why a mail refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error("only the mailer and operators record mail")]
    NotPermitted,
    #[error("this mail was already queued")]
    AlreadyQueued,
    #[error("there is no such mail")]
    NotQueued,
    #[error("this mail was already sent")]
    AlreadySent,
    #[error("this mail was abandoned")]
    Abandoned,
    #[error("the next attempt is number {expected}, not {given}")]
    WrongAttempt { expected: u32, given: u32 },
}

/// Where a mail stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    #[default]
    Queued,
    /// An attempt failed; another is due at its `retry_at`.
    Failed,
    Sent,
    Abandoned,
}

/// A mail's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mail {
    pub queued: bool,
    pub status: MailStatus,
    /// Attempts made so far.
    pub attempts: u32,
}

impl Mail {
    fn next_attempt(&self, given: u32) -> Result<(), MailError> {
        if !self.queued {
            return Err(MailError::NotQueued);
        }
        match self.status {
            MailStatus::Sent => return Err(MailError::AlreadySent),
            MailStatus::Abandoned => return Err(MailError::Abandoned),
            MailStatus::Queued | MailStatus::Failed => {}
        }
        let expected = self.attempts + 1;
        if given != expected {
            return Err(MailError::WrongAttempt { expected, given });
        }
        Ok(())
    }
}

fn required(field: &str, value: &str) -> Result<(), InvalidField> {
    if value.trim().is_empty() {
        return Err(invalid(field, "is required"));
    }
    Ok(())
}

impl Aggregate for Mail {
    const KIND: &'static str = "mail";
    type Command = MailCommand;
    type Event = MailEvent;
    type Error = MailError;

    fn decide(&self, command: MailCommand, ctx: &Context) -> Result<Vec<MailEvent>, MailError> {
        if !ctx.actor.operates() {
            return Err(MailError::NotPermitted);
        }
        match command {
            MailCommand::Queue(mut letter) => {
                if self.queued {
                    return Err(MailError::AlreadyQueued);
                }
                required("recipient", &letter.recipient)?;
                required("subject", &letter.subject)?;
                letter.address = crate::notify::contact::normalise_address(&letter.address)
                    .map_err(|e| invalid("address", e.problem))?;
                Ok(vec![MailEvent::MailQueued(letter)])
            }
            MailCommand::RecordSent {
                attempt,
                message_id,
            } => {
                self.next_attempt(attempt)?;
                Ok(vec![MailEvent::MailSent {
                    attempt,
                    at: ctx.now,
                    message_id,
                }])
            }
            MailCommand::RecordFailure { attempt, error } => {
                self.next_attempt(attempt)?;
                let error: String = error.chars().take(MAX_ERROR).collect();
                if attempt >= MAX_ATTEMPTS {
                    return Ok(vec![
                        MailEvent::MailAttemptFailed {
                            attempt,
                            error: error.clone(),
                            retry_at: None,
                        },
                        MailEvent::MailAbandoned {
                            attempts: attempt,
                            last_error: error,
                        },
                    ]);
                }
                Ok(vec![MailEvent::MailAttemptFailed {
                    attempt,
                    error,
                    retry_at: Some(ctx.now + retry_delay(attempt)),
                }])
            }
        }
    }

    fn evolve(mut self, event: &MailEvent) -> Self {
        match event {
            MailEvent::MailQueued(_) => {
                self.queued = true;
                self.status = MailStatus::Queued;
            }
            MailEvent::MailSent { attempt, .. } => {
                self.attempts = *attempt;
                self.status = MailStatus::Sent;
            }
            MailEvent::MailAttemptFailed { attempt, .. } => {
                self.attempts = *attempt;
                self.status = MailStatus::Failed;
            }
            MailEvent::MailAbandoned { .. } => self.status = MailStatus::Abandoned,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::given::{at, given, person};

    fn mailer() -> crate::Actor {
        crate::Actor::system("mailer")
    }

    fn letter() -> Letter {
        Letter {
            recipient: "u-ho".into(),
            address: "ho@fin.gov.example".into(),
            language: Language::Zh,
            kind: "ApprovalNeeded".into(),
            subject: "【OpsLedger】審批待辦".into(),
            body: "陳大文 的申請待您審批".into(),
            source_position: 7,
            entity: "request-0190".into(),
        }
    }

    fn queued() -> MailEvent {
        MailEvent::MailQueued(Box::new(letter()))
    }

    fn failed(attempt: u32) -> MailEvent {
        MailEvent::MailAttemptFailed {
            attempt,
            error: "connection refused".into(),
            retry_at: Some(at(9) + retry_delay(attempt)),
        }
    }

    fn failure(attempt: u32) -> MailCommand {
        MailCommand::RecordFailure {
            attempt,
            error: "connection refused".into(),
        }
    }

    #[test]
    fn the_mailer_queues_a_mail_once() {
        given::<Mail>([])
            .when(MailCommand::Queue(Box::new(letter())), &mailer())
            .then([queued()]);
        given::<Mail>([queued()])
            .when(MailCommand::Queue(Box::new(letter())), &mailer())
            .then_err(MailError::AlreadyQueued);
    }

    #[test]
    fn requesters_do_not_write_to_the_outbox() {
        given::<Mail>([])
            .when(
                MailCommand::Queue(Box::new(letter())),
                &person("u-chan", "財政局", &["requester"]),
            )
            .then_err(MailError::NotPermitted);
    }

    #[test]
    fn a_mail_to_no_address_is_refused_naming_the_field() {
        let mut bad = letter();
        bad.address = "nobody".into();
        let err = Mail::default()
            .decide(
                MailCommand::Queue(Box::new(bad)),
                &Context {
                    actor: mailer(),
                    now: at(9),
                },
            )
            .unwrap_err();
        assert!(matches!(err, MailError::Invalid(f) if f.field == "address"));
    }

    #[test]
    fn a_failed_attempt_is_retried_later_and_the_wait_doubles_up_to_an_hour() {
        given::<Mail>([queued()])
            .when(failure(1), &mailer())
            .then([failed(1)]);
        let waits: Vec<i64> = (1..=9).map(|a| retry_delay(a).num_seconds()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn sent_is_final() {
        let sent = MailEvent::MailSent {
            attempt: 2,
            at: at(9),
            message_id: message_id(Uuid::from_u128(1)),
        };
        given::<Mail>([queued(), failed(1)])
            .when(
                MailCommand::RecordSent {
                    attempt: 2,
                    message_id: message_id(Uuid::from_u128(1)),
                },
                &mailer(),
            )
            .then([sent.clone()]);
        given::<Mail>([queued(), failed(1), sent.clone()])
            .when(
                MailCommand::RecordSent {
                    attempt: 3,
                    message_id: "x".into(),
                },
                &mailer(),
            )
            .then_err(MailError::AlreadySent);
        given::<Mail>([queued(), failed(1), sent])
            .when(failure(3), &mailer())
            .then_err(MailError::AlreadySent);
    }

    #[test]
    fn an_attempt_is_recorded_once_in_order() {
        given::<Mail>([queued(), failed(1)])
            .when(failure(1), &mailer())
            .then_err(MailError::WrongAttempt {
                expected: 2,
                given: 1,
            });
        given::<Mail>([])
            .when(failure(1), &mailer())
            .then_err(MailError::NotQueued);
    }

    #[test]
    fn the_last_attempt_that_fails_abandons_the_mail() {
        let history: Vec<MailEvent> = std::iter::once(queued())
            .chain((1..MAX_ATTEMPTS).map(failed))
            .collect();
        given::<Mail>(history.clone())
            .when(failure(MAX_ATTEMPTS), &mailer())
            .then([
                MailEvent::MailAttemptFailed {
                    attempt: MAX_ATTEMPTS,
                    error: "connection refused".into(),
                    retry_at: None,
                },
                MailEvent::MailAbandoned {
                    attempts: MAX_ATTEMPTS,
                    last_error: "connection refused".into(),
                },
            ]);
        let mut abandoned = history;
        abandoned.push(MailEvent::MailAbandoned {
            attempts: MAX_ATTEMPTS,
            last_error: "connection refused".into(),
        });
        given::<Mail>(abandoned)
            .when(failure(MAX_ATTEMPTS + 1), &mailer())
            .then_err(MailError::Abandoned);
    }

    #[test]
    fn the_id_depends_on_the_notice_and_the_recipient() {
        assert_eq!(mail_id(7, "u-ho"), mail_id(7, "u-ho"));
        assert_ne!(mail_id(7, "u-ho"), mail_id(8, "u-ho"));
        assert_ne!(mail_id(7, "u-ho"), mail_id(7, "u-chan"));
    }
}
