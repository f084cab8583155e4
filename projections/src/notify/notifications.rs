//! Notices: who must be told what, derived from the events alone. A step that opens asks
//! its deciders for a decision; a step escalated past its time tells the role it escalates
//! to; a decided request tells its requester; a delegation tells its substitute.
//!
//! Delivery (email) comes later and reads this same feed; here a notice is what the
//! `notifications` query shows the people it is for.

use foldhash::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent, Role};
use opsledger_domain::operations::desk::{Ticket, TicketEvent};
use opsledger_domain::operations::incident::{Incident, IncidentEvent};
use opsledger_domain::requests::catalog::{ApprovalStep, StepDepartment};
use opsledger_domain::requests::delegation::{DelegationEvent, DelegationState};
use opsledger_domain::requests::request::{Request, RequestEvent};
use opsledger_domain::resources::cmdb::{CiEvent, ConfigurationItem};
use opsledger_domain::{Actor, RecordedEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::operations::desk::Desk;
use crate::operations::incidents::{Incidents, OpsEvent};
use crate::resources::inventory::ResourceEvent;
use crate::{stream_kind, Projection};

/// Who a notice is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Audience {
    /// One user.
    User(String),
    /// The holders of a role, in one department when given, or only the named users.
    Role {
        role: Role,
        department: Option<String>,
        users: Vec<String>,
    },
}

impl Audience {
    pub fn includes(&self, actor: &Actor) -> bool {
        match self {
            Audience::User(id) => *id == actor.id,
            Audience::Role {
                role,
                department,
                users,
            } => {
                actor.has_role(*role)
                    && department
                        .as_deref()
                        .is_none_or(|d| actor.department.as_deref() == Some(d))
                    && (users.is_empty() || users.contains(&actor.id))
            }
        }
    }
}

/// What a notice is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeKind {
    /// A step opened and waits for the audience's decision.
    ApprovalNeeded,
    /// A step waited past its time and was escalated to the audience.
    StepEscalated,
    /// The audience's request was approved, rejected, fulfilled or failed.
    RequestDecided,
    /// The audience was named substitute for an approver who is away.
    DelegationGranted,
    /// A resource the audience owns or watches reaches the end of its lease soon.
    LeaseEnding,
    /// A resource the audience owns or watches was reclaimed.
    ResourceReclaimed,
    /// An incident was raised to warning level 2 or 3, and the audience must act.
    IncidentEscalated,
    /// An incident's SLA clock reached its warning share.
    SlaWarning,
    /// An incident's SLA clock reached its target.
    SlaBreached,
    /// An incident was assigned to the audience.
    IncidentAssigned,
    /// A work order was issued to the audience (second line).
    WorkOrderIssued,
    /// Second line handed a ticket back: first line calls the user.
    WorkOrderHandedBack,
    /// A chargeable change waits for the audience (product managers) to confirm terms.
    TermsNeeded,
}

/// What a notice is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Subject {
    Request(Uuid),
    Delegation(Uuid),
    ConfigurationItem(Uuid),
    Incident(Uuid),
    Ticket(Uuid),
}

impl Subject {
    fn of(stream: &str) -> Option<Subject> {
        let id = crate::stream_id(stream)?;
        match stream_kind(stream) {
            Request::KIND => Some(Subject::Request(id)),
            DelegationState::KIND => Some(Subject::Delegation(id)),
            ConfigurationItem::KIND => Some(Subject::ConfigurationItem(id)),
            Incident::KIND => Some(Subject::Incident(id)),
            Ticket::KIND => Some(Subject::Ticket(id)),
            _ => None,
        }
    }

    /// Its entity name (global id), `<kind>-<uuid>`.
    pub fn stream(&self) -> String {
        match self {
            Subject::Request(id) => format!("{}-{id}", Request::KIND),
            Subject::Delegation(id) => format!("{}-{id}", DelegationState::KIND),
            Subject::ConfigurationItem(id) => format!("{}-{id}", ConfigurationItem::KIND),
            Subject::Incident(id) => format!("{}-{id}", Incident::KIND),
            Subject::Ticket(id) => format!("{}-{id}", Ticket::KIND),
        }
    }
}

/// One notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The position of the event it comes from.
    pub position: u64,
    pub at: DateTime<Utc>,
    pub kind: NoticeKind,
    pub subject: Subject,
    pub audience: Audience,
    pub text: Box<str>,
}

/// What a request's notices need to remember of it.
#[derive(Debug, Serialize, Deserialize)]
struct Open {
    requester: String,
    department: String,
    steps: Arc<[ApprovalStep]>,
}

/// Every notice, in log order.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Notifications {
    notices: Vec<Notice>,
    requests: HashMap<String, Open>,
    /// Every distinct approval chain once.
    #[serde(skip)]
    chains: HashSet<Arc<[ApprovalStep]>>,
}

impl Notifications {
    /// The notices for `actor`, in log order, each with its place in the whole list.
    pub fn for_actor<'a>(
        &'a self,
        actor: &'a Actor,
        after: Option<usize>,
    ) -> impl Iterator<Item = (usize, &'a Notice)> + 'a {
        let start = after.map_or(0, |a| a + 1);
        self.notices
            .iter()
            .enumerate()
            .skip(start)
            .filter(|(_, n)| n.audience.includes(actor))
    }

    /// Every notice from the event at `position` on, in log order.
    pub fn from_position(&self, position: u64) -> &[Notice] {
        let start = self.notices.partition_point(|n| n.position < position);
        &self.notices[start..]
    }

    fn notify(
        &mut self,
        event: &RecordedEvent,
        kind: NoticeKind,
        audience: Audience,
        text: String,
    ) {
        let Some(subject) = Subject::of(&event.stream) else {
            return;
        };
        self.notices.push(Notice {
            position: event.position,
            at: event.metadata.recorded_at,
            kind,
            subject,
            audience,
            text: text.into(),
        });
    }

    fn step_opened(&mut self, event: &RecordedEvent, step: usize) {
        let Some(open) = self.requests.get(&event.stream) else {
            return;
        };
        let Some(s) = open.steps.get(step) else {
            return;
        };
        let department = match &s.department {
            StepDepartment::Any => None,
            StepDepartment::Requesters => Some(open.department.clone()),
            StepDepartment::Named(d) => Some(d.clone()),
        };
        let audience = Audience::Role {
            role: s.role,
            department,
            users: s.approvers.clone(),
        };
        let text = format!(
            "{} 的申請待您審批：第 {} 步「{}」",
            open.requester,
            step + 1,
            s.name
        );
        self.notify(event, NoticeKind::ApprovalNeeded, audience, text);
    }

    /// Folds one event of a request's stream, already decoded.
    pub(crate) fn on_request(&mut self, event: &RecordedEvent, e: &RequestEvent) {
        let requester = || {
            self.requests
                .get(&event.stream)
                .map(|o| Audience::User(o.requester.clone()))
        };
        match e {
            RequestEvent::RequestSubmitted {
                requester,
                department,
                steps,
                ..
            } => {
                let first = !steps.is_empty();
                let steps = crate::requests::intern(&mut self.chains, &steps.as_slice().into());
                self.requests.insert(
                    event.stream.clone(),
                    Open {
                        requester: requester.clone(),
                        department: department.clone(),
                        steps,
                    },
                );
                if first {
                    self.step_opened(event, 0);
                }
            }
            RequestEvent::StepCompleted { step, .. } => self.step_opened(event, step + 1),
            &RequestEvent::StepEscalated {
                step,
                to: Some(role),
                waited_hours,
            } => {
                let text = format!(
                    "申請第 {} 步已等待 {waited_hours} 小時，升級至 {}",
                    step + 1,
                    role.as_str()
                );
                let audience = Audience::Role {
                    role,
                    department: None,
                    users: Vec::new(),
                };
                self.notify(event, NoticeKind::StepEscalated, audience, text);
            }
            // A pre-approval is followed by the approval itself: one notice.
            RequestEvent::RequestApproved => {
                if let Some(to) = requester() {
                    self.notify(
                        event,
                        NoticeKind::RequestDecided,
                        to,
                        "您的申請已批准".into(),
                    );
                }
            }
            RequestEvent::ApprovalRejected { comment, .. } => {
                if let Some(to) = requester() {
                    let text = format!("您的申請被駁回：{comment}");
                    self.notify(event, NoticeKind::RequestDecided, to, text);
                }
            }
            RequestEvent::RequestFulfilled { note } | RequestEvent::RequestFailed { note } => {
                let done = event.event_type == "RequestFulfilled";
                if let Some(to) = requester() {
                    let text = if done {
                        format!("您的申請已交付：{note}")
                    } else {
                        format!("您的申請交付失敗：{note}")
                    };
                    self.notify(event, NoticeKind::RequestDecided, to, text);
                }
                self.requests.remove(&event.stream);
            }
            RequestEvent::RequestCancelled { .. } | RequestEvent::RequestRejected => {
                self.requests.remove(&event.stream);
            }
            RequestEvent::ApprovalGranted { .. }
            | RequestEvent::RequestPreApproved { .. }
            | RequestEvent::StepEscalated { to: None, .. } => {}
        }
    }
}

impl Notifications {
    /// Folds one event of a delegation's stream, already decoded.
    pub(crate) fn on_delegation(&mut self, event: &RecordedEvent, e: &DelegationEvent) {
        if let DelegationEvent::DelegationGranted { grant, reason, .. } = e {
            let text = format!(
                "{} 自 {} 至 {} 委託您代為審批（{reason}）",
                grant.delegator.id,
                grant.from.format("%Y-%m-%d %H:%M"),
                grant.until.format("%Y-%m-%d %H:%M"),
            );
            let to = Audience::User(grant.substitute.clone());
            self.notify(event, NoticeKind::DelegationGranted, to, text);
        }
    }

    /// Folds one event of a resource stream: lease notices and reclamations, to the
    /// owner and the watchers each.
    pub(crate) fn on_resource(&mut self, event: &RecordedEvent, e: &ResourceEvent) {
        let (kind, text, told) = match e {
            ResourceEvent::Ci(CiEvent::LeaseEndNoticed {
                end,
                days_before,
                notify,
            }) => (
                NoticeKind::LeaseEnding,
                format!(
                    "資源租期將於 {} 屆滿（提前 {days_before} 天通知），如需續用請申請延期",
                    end.format("%Y-%m-%d %H:%M")
                ),
                notify,
            ),
            ResourceEvent::Ci(CiEvent::CiRetired { reason, notify, .. }) => (
                NoticeKind::ResourceReclaimed,
                format!("資源已回收：{reason}"),
                notify,
            ),
            _ => return,
        };
        for user in told {
            self.notify(event, kind, Audience::User(user.clone()), text.clone());
        }
    }

    /// Folds one event of an incident: escalations to the roles a warning level brings
    /// in, SLA warnings and breaches to whoever works it, an assignment to the assignee.
    pub(crate) fn on_ops(&mut self, event: &RecordedEvent, e: &OpsEvent, models: &Incidents) {
        let OpsEvent::Incident(e) = e else {
            return;
        };
        let Some(view) = crate::stream_id(&event.stream).and_then(|id| models.get(id)) else {
            return;
        };
        let title = &view.opening.title;
        let role = |role| Audience::Role {
            role,
            department: None,
            users: Vec::new(),
        };
        let worker = || match &view.assignee {
            Some(a) => Audience::User(a.clone()),
            None => role(Role::Engineer),
        };
        match e {
            IncidentEvent::WarningLevelChanged { to, reason, .. } if *to >= 2 => {
                let text = format!("事件「{title}」升為{to}級預警：{reason}");
                self.notify(
                    event,
                    NoticeKind::IncidentEscalated,
                    role(Role::OperationsManager),
                    text.clone(),
                );
                if *to >= 3 {
                    self.notify(
                        event,
                        NoticeKind::IncidentEscalated,
                        role(Role::OperationsHead),
                        text,
                    );
                }
            }
            IncidentEvent::SlaWarned { clock, at } => {
                let text = format!(
                    "事件「{title}」的{}時限即將到期（{at}）",
                    clock_name(*clock)
                );
                self.notify(event, NoticeKind::SlaWarning, worker(), text);
            }
            IncidentEvent::SlaBreached { clock, at } => {
                let text = format!("事件「{title}」的{}時限已於 {at} 超時", clock_name(*clock));
                self.notify(event, NoticeKind::SlaBreached, worker(), text.clone());
                self.notify(
                    event,
                    NoticeKind::SlaBreached,
                    role(Role::OperationsManager),
                    text,
                );
            }
            IncidentEvent::IncidentAssigned {
                assignee: Some(a), ..
            } => {
                let text = format!("事件「{title}」已指派給您");
                self.notify(
                    event,
                    NoticeKind::IncidentAssigned,
                    Audience::User(a.clone()),
                    text,
                );
            }
            _ => {}
        }
    }

    /// Folds one event of a ticket: work orders to second line, hand-backs to first
    /// line, chargeable changes to the product managers.
    pub(crate) fn on_ticket(&mut self, event: &RecordedEvent, e: &TicketEvent, desk: &Desk) {
        let Some(ticket) = crate::stream_id(&event.stream).and_then(|id| desk.get(id)) else {
            return;
        };
        let role = |role| Audience::Role {
            role,
            department: None,
            users: Vec::new(),
        };
        let summary = &ticket.description;
        match e {
            TicketEvent::TicketRecorded {
                chargeable: true, ..
            } => {
                let text = format!("收費變更待確認商務條款：{summary}");
                self.notify(
                    event,
                    NoticeKind::TermsNeeded,
                    role(Role::ProductManager),
                    text,
                );
            }
            TicketEvent::WorkOrderIssued {
                to, instructions, ..
            } => {
                let audience = match &to.person {
                    Some(p) => Audience::User(p.clone()),
                    None => role(Role::Engineer),
                };
                let text = format!("新工單：{summary}（{instructions}）");
                self.notify(event, NoticeKind::WorkOrderIssued, audience, text);
            }
            TicketEvent::WorkOrderCompleted { result, .. } => {
                let text = format!("工單已處理，請回訪用戶：{summary}（{result}）");
                self.notify(
                    event,
                    NoticeKind::WorkOrderHandedBack,
                    role(Role::ServiceDesk),
                    text,
                );
            }
            _ => {}
        }
    }

    /// Shares the chains again after the models were read back from a snapshot.
    pub(crate) fn restored(&mut self) {
        for open in self.requests.values_mut() {
            open.steps = crate::requests::intern(&mut self.chains, &open.steps);
        }
    }
}

fn clock_name(clock: opsledger_domain::operations::sla::ClockKind) -> &'static str {
    match clock {
        opsledger_domain::operations::sla::ClockKind::Response => "響應",
        opsledger_domain::operations::sla::ClockKind::Resolution => "解決",
    }
}

impl Projection for Notifications {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        match stream_kind(&event.stream) {
            Request::KIND => {
                if let Ok(e) = RequestEvent::from_recorded(event) {
                    self.on_request(event, &e);
                }
            }
            DelegationState::KIND => {
                if let Ok(e) = DelegationEvent::from_recorded(event) {
                    self.on_delegation(event, &e);
                }
            }
            _ => {}
        }
    }
}
