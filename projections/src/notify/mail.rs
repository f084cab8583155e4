//! The outbox as a read model: every mail queued, in queue order, with where it stands;
//! the mails due for an attempt; and the highest notice position already queued, where a
//! restarted mailer picks up.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent};
use opsledger_domain::notify::mail::{Letter, Mail, MailEvent, MailStatus};
use opsledger_domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{stream_id, stream_kind, Projection};

/// One mail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailView {
    pub id: Uuid,
    pub letter: Letter,
    pub status: MailStatus,
    /// Attempts made so far.
    pub attempts: u32,
    pub last_error: Option<String>,
    pub queued_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// When the next attempt is due, after a failed one.
    pub retry_at: Option<DateTime<Utc>>,
    pub message_id: Option<String>,
}

impl MailView {
    /// Whether an attempt is due at `now`.
    pub fn due(&self, now: DateTime<Utc>) -> bool {
        match self.status {
            MailStatus::Queued => true,
            MailStatus::Failed => self.retry_at.is_some_and(|at| at <= now),
            MailStatus::Sent | MailStatus::Abandoned => false,
        }
    }
}

/// Every mail, in queue order.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Outbox {
    mails: IndexMap<Uuid, MailView>,
    /// The places (in `mails`) of the mails neither sent nor abandoned.
    pending: BTreeSet<usize>,
    /// The highest position of a notice a mail was queued for.
    highest_source: u64,
}

impl Outbox {
    pub fn get(&self, id: Uuid) -> Option<&MailView> {
        self.mails.get(&id)
    }

    /// The highest position of a notice a mail was queued for (0: none).
    /// How many mails are queued or waiting to be retried.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    pub fn highest_source(&self) -> u64 {
        self.highest_source
    }

    /// The mails due for an attempt at `now`, oldest first.
    pub fn due(&self, now: DateTime<Utc>) -> impl Iterator<Item = &MailView> {
        self.pending
            .iter()
            .filter_map(|i| self.mails.get_index(*i).map(|(_, m)| m))
            .filter(move |m| m.due(now))
    }

    /// The mails (with `status`, when given) after the place `after`, in queue order,
    /// each with its place.
    pub fn list(
        &self,
        status: Option<MailStatus>,
        after: Option<usize>,
    ) -> impl Iterator<Item = (usize, &MailView)> {
        let start = after.map_or(0, |a| a + 1);
        self.mails
            .values()
            .enumerate()
            .skip(start)
            .filter(move |(_, m)| status.is_none_or(|s| m.status == s))
    }

    /// Folds one event of a mail's stream, already decoded.
    pub fn on_event(&mut self, event: &RecordedEvent, e: &MailEvent) {
        let Some(id) = stream_id(&event.stream) else {
            return;
        };
        if let MailEvent::MailQueued(letter) = e {
            self.highest_source = self.highest_source.max(letter.source_position);
            let (place, _) = self.mails.insert_full(
                id,
                MailView {
                    id,
                    letter: (**letter).clone(),
                    status: MailStatus::Queued,
                    attempts: 0,
                    last_error: None,
                    queued_at: event.metadata.recorded_at,
                    sent_at: None,
                    retry_at: None,
                    message_id: None,
                },
            );
            self.pending.insert(place);
            return;
        }
        let Some((place, _, mail)) = self.mails.get_full_mut(&id) else {
            return;
        };
        match e {
            MailEvent::MailQueued(_) => {}
            MailEvent::MailSent {
                attempt,
                at,
                message_id,
            } => {
                mail.status = MailStatus::Sent;
                mail.attempts = *attempt;
                mail.sent_at = Some(*at);
                mail.retry_at = None;
                mail.message_id = Some(message_id.clone());
                self.pending.remove(&place);
            }
            MailEvent::MailAttemptFailed {
                attempt,
                error,
                retry_at,
            } => {
                mail.status = MailStatus::Failed;
                mail.attempts = *attempt;
                mail.last_error = Some(error.clone());
                mail.retry_at = *retry_at;
            }
            MailEvent::MailAbandoned { last_error, .. } => {
                mail.status = MailStatus::Abandoned;
                mail.last_error = Some(last_error.clone());
                mail.retry_at = None;
                self.pending.remove(&place);
            }
        }
    }
}

impl Projection for Outbox {
    fn name(&self) -> &'static str {
        "mail"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        if stream_kind(&event.stream) == Mail::KIND {
            if let Ok(e) = MailEvent::from_recorded(event) {
                self.on_event(event, &e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_log::{at, Log};
    use opsledger_domain::notify::contact::Language;
    use opsledger_domain::notify::mail::{mail_id, retry_delay};
    use opsledger_domain::Actor;

    fn queue(log: &mut Log, source: u64, user: &str) -> String {
        let stream = format!("mail-{}", mail_id(source, user));
        let letter = Letter {
            recipient: user.into(),
            address: format!("{user}@gov.example"),
            language: Language::Zh,
            kind: "ApprovalNeeded".into(),
            subject: "審批待辦".into(),
            body: "…".into(),
            source_position: source,
            entity: "request-x".into(),
        };
        log.record(
            &stream,
            &MailEvent::MailQueued(Box::new(letter)),
            &Actor::system("mailer"),
            9,
        );
        stream
    }

    #[test]
    fn queued_and_failed_mails_past_their_retry_time_are_due_and_sent_ones_are_not() {
        let mut log = Log::default();
        let a = queue(&mut log, 7, "u-ho");
        let b = queue(&mut log, 7, "u-lee");
        let c = queue(&mut log, 3, "u-ng");
        let mailer = Actor::system("mailer");
        log.record(
            &a,
            &MailEvent::MailSent {
                attempt: 1,
                at: at(9),
                message_id: "<a@opsledger>".into(),
            },
            &mailer,
            9,
        );
        log.record(
            &b,
            &MailEvent::MailAttemptFailed {
                attempt: 1,
                error: "421 service not available".into(),
                retry_at: Some(at(9) + retry_delay(1)),
            },
            &mailer,
            9,
        );
        let outbox: Outbox = log.fold();
        let due = |now| -> Vec<String> {
            outbox
                .due(now)
                .map(|m| m.letter.recipient.clone())
                .collect()
        };
        assert_eq!(due(at(9)), ["u-ng"]);
        assert_eq!(due(at(10)), ["u-lee", "u-ng"]);
        assert_eq!(outbox.highest_source(), 7);
        let failed: Vec<_> = outbox.list(Some(MailStatus::Failed), None).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(
            failed[0].1.last_error.as_deref(),
            Some("421 service not available")
        );
        log.record(
            &c,
            &MailEvent::MailAbandoned {
                attempts: 8,
                last_error: "gone".into(),
            },
            &mailer,
            9,
        );
        let outbox: Outbox = log.fold();
        assert_eq!(outbox.due(at(10)).count(), 1);
    }
}
