//! Email over GraphQL: each user sets where they are mailed and in which language; the
//! operators, administrators and auditors read the outbox with each mail's delivery
//! attempts.

use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use opsledger_domain::kernel::aggregate::{Aggregate, Role};
use opsledger_domain::notify::contact::{contact_id, Contact as ContactAggregate, ContactCommand};
use opsledger_domain::notify::mail::Mail as MailAggregate;
use opsledger_projections::notify::contacts::ContactView;
use opsledger_projections::notify::mail::MailView;
use opsledger_projections::ReadModels;

use crate::kit::ids;
use crate::kit::operate;
use crate::kit::Payload;
use crate::kit::{actor, cursor, models, page, require, Page};
use crate::notify::notifications::NotificationKind;
use crate::Operation;

/// The language a user's email is written in.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::notify::contact::Language")]
pub enum Language {
    /// Chinese (the default).
    Zh,
    En,
}

/// Where a mail stands.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::notify::mail::MailStatus")]
pub enum MailStatus {
    /// Waiting for its first attempt.
    Queued,
    /// An attempt failed; the next is due at `retryAt`.
    Failed,
    /// The SMTP server accepted it.
    Sent,
    /// Every attempt failed; no more are made.
    Abandoned,
}

/// Where a user is mailed.
#[derive(SimpleObject)]
pub struct Contact {
    pub email: String,
    pub language: Language,
    /// The department and roles the user had when they set it: notices for a role are
    /// mailed to the contacts holding it.
    pub department: Option<String>,
    pub roles: Vec<String>,
    pub set_at: DateTime<Utc>,
}

impl From<&ContactView> for Contact {
    fn from(c: &ContactView) -> Self {
        Contact {
            email: c.email.clone(),
            language: c.language.into(),
            department: c.department.clone(),
            roles: c.roles.clone(),
            set_at: c.set_at,
        }
    }
}

/// One mail of the outbox.
#[derive(SimpleObject)]
pub struct Mail {
    pub id: ID,
    /// The user it is for, and their address.
    pub recipient: String,
    pub address: String,
    pub language: Language,
    pub kind: Option<NotificationKind>,
    pub subject: String,
    pub body: String,
    /// The entity the notice is about, and the position of the event it comes from.
    pub entity: ID,
    pub source_position: u64,
    pub status: MailStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub queued_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub retry_at: Option<DateTime<Utc>>,
    pub message_id: Option<String>,
}

/// Who reads the outbox (administrators hold every role's reach).
const READS_THE_OUTBOX: &[Role] = &[Role::Operator, Role::Auditor];

/// A mail in the outbox, with its delivery (for `node(id:)`).
pub(crate) fn mail_by_id(
    ctx: &Context<'_>,
    m: &ReadModels,
    id: uuid::Uuid,
) -> Result<Option<Mail>> {
    require(actor(ctx)?, READS_THE_OUTBOX)?;
    Ok(m.mail.get(id).map(Mail::from))
}

impl From<&MailView> for Mail {
    fn from(m: &MailView) -> Self {
        let kind =
            serde_json::from_value::<opsledger_projections::notify::notifications::NoticeKind>(
                serde_json::Value::String(m.letter.kind.clone()),
            )
            .ok()
            .map(Into::into);
        Mail {
            id: ids::global(MailAggregate::KIND, m.id),
            recipient: m.letter.recipient.clone(),
            address: m.letter.address.clone(),
            language: m.letter.language.into(),
            kind,
            subject: m.letter.subject.clone(),
            body: m.letter.body.clone(),
            entity: ID(m.letter.entity.clone()),
            source_position: m.letter.source_position,
            status: m.status.into(),
            attempts: m.attempts,
            last_error: m.last_error.clone(),
            queued_at: m.queued_at,
            sent_at: m.sent_at,
            retry_at: m.retry_at,
            message_id: m.message_id.clone(),
        }
    }
}

#[derive(Default)]
pub struct MailQuery;

#[Object]
impl MailQuery {
    /// Where you are mailed, if you set it.
    async fn my_contact(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Option<Contact>> {
        let user = actor(ctx)?.id.clone();
        let m = models(ctx, at_least).await?;
        Ok(m.contacts.get(&user).map(Contact::from))
    }

    /// The outbox, in queue order, with each mail's delivery (operators, administrators,
    /// auditors).
    async fn mails(
        &self,
        ctx: &Context<'_>,
        status: Option<MailStatus>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"after\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        after: Option<String>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<Mail>> {
        require(actor(ctx)?, READS_THE_OUTBOX)?;
        let after = cursor(after)?;
        let m = models(ctx, at_least).await?;
        let items = m.mail.list(status.map(Into::into), after);
        page(items, Mail::from, after.is_some(), first, m.position)
    }
}

#[derive(InputObject)]
pub struct SetContactInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"email\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub email: String,
    /// `ZH` when absent.
    pub language: Option<Language>,
}

#[derive(InputObject)]
pub struct RemoveContactInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
}

async fn on_contact(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    command: ContactCommand,
) -> Result<Payload> {
    let id = contact_id(&actor(ctx)?.id);
    let operation = Operation::Contact(id, command);
    operate(
        ctx,
        client_mutation_id,
        ContactAggregate::KIND,
        id,
        operation,
    )
    .await
}

#[derive(Default)]
pub struct MailMutation;

#[Object]
impl MailMutation {
    /// Sets where you are mailed and in which language; your department and roles are
    /// recorded with it (set it again after they change).
    async fn set_contact(&self, ctx: &Context<'_>, input: SetContactInput) -> Result<Payload> {
        let command = ContactCommand::Set {
            email: input.email,
            language: input.language.map_or_else(Default::default, Into::into),
        };
        on_contact(ctx, input.client_mutation_id, command).await
    }

    /// Stops email to you; your notices stay in the `notifications` query.
    async fn remove_contact(
        &self,
        ctx: &Context<'_>,
        input: RemoveContactInput,
    ) -> Result<Payload> {
        on_contact(ctx, input.client_mutation_id, ContactCommand::Remove).await
    }
}
