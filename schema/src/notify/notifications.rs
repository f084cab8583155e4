//! What each person is told, in the API: decisions waiting for them, escalations to their
//! role, the outcome of their requests, incidents and work orders given to them; with
//! where the email of each stands.

use async_graphql::{Context, Enum, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use opsledger_projections::notify::notifications::Notice;

use crate::kit::{actor, cursor, models, page, Page};

/// What a notification is about.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_projections::notify::notifications::NoticeKind")]
pub enum NotificationKind {
    /// A step opened and waits for your decision.
    ApprovalNeeded,
    /// A step waited past its time and was escalated to your role.
    StepEscalated,
    /// Your request was approved, rejected, fulfilled or failed.
    RequestDecided,
    /// An approver who is away named you their substitute.
    DelegationGranted,
    /// A resource you own or watch reaches the end of its lease soon.
    LeaseEnding,
    /// A resource you own or watch was reclaimed.
    ResourceReclaimed,
    /// An incident was raised to warning level 2 or 3, and your role must act.
    IncidentEscalated,
    /// An incident's SLA clock reached its warning share.
    SlaWarning,
    /// An incident's SLA clock reached its target.
    SlaBreached,
    /// An incident was assigned to you.
    IncidentAssigned,
    /// A work order was issued to you (second line).
    WorkOrderIssued,
    /// Second line handed a ticket back: call the user.
    WorkOrderHandedBack,
    /// A chargeable change waits for a product manager to confirm its terms.
    TermsNeeded,
}

/// Something you are told: a decision waiting for you, an escalation to your role, the
/// outcome of your request, a delegation to you.
#[derive(SimpleObject)]
pub struct Notification {
    /// The position of the event it comes from.
    pub position: u64,
    pub at: DateTime<Utc>,
    pub kind: NotificationKind,
    /// The entity it is about, `<kind>-<uuid>` (a global id).
    pub entity: ID,
    pub text: String,
    /// Where the email of it to you stands; none when none was queued (no contact set,
    /// email off, or not yet).
    pub email_status: Option<crate::notify::mail::MailStatus>,
    /// When the email of it to you was accepted by the SMTP server.
    pub emailed_at: Option<DateTime<Utc>>,
}

impl From<&Notice> for Notification {
    fn from(n: &Notice) -> Self {
        Notification {
            position: n.position,
            at: n.at,
            kind: n.kind.into(),
            entity: ID(n.subject.stream()),
            text: n.text.to_string(),
            email_status: None,
            emailed_at: None,
        }
    }
}

#[derive(Default)]
pub struct NotificationsQuery;

#[Object]
impl NotificationsQuery {
    /// What you are told, oldest first: decisions waiting for you, escalations to your
    /// role, the outcome of your requests, delegations to you.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
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
    ) -> Result<Page<Notification>> {
        let actor = actor(ctx)?;
        let after = cursor(after)?;
        let m = models(ctx, at_least).await?;
        let items = m.notifications.for_actor(actor, after);
        let with_email = |n: &opsledger_projections::notify::notifications::Notice| {
            let mut shown = Notification::from(n);
            let id = opsledger_domain::notify::mail::mail_id(n.position, &actor.id);
            if let Some(mail) = m.mail.get(id) {
                shown.email_status = Some(mail.status.into());
                shown.emailed_at = mail.sent_at;
            }
            shown
        };
        page(items, with_email, after.is_some(), first, m.position)
    }
}
