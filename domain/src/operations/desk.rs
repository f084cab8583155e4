//! The service desk (服務臺): a call or message recorded by first line, resolved at once or
//! passed to second line as a work order (工單); second line works it and hands back the
//! result; first line calls the user back and closes the ticket when the user confirms,
//! or issues a new work order linked to the last one and the flow goes on.
//!
//! Consultations and changes asked through the desk follow the plan's second flow: a change
//! with no charge goes to second line directly; a chargeable one waits for a product
//! manager to confirm the commercial terms, and the product manager issues its work order.
//! When the user confirms a change, the customer record is updated.
//!
//! A ticket's work orders live in its stream: a ticket and its orders change together.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent, Role};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    /// 故障申告
    Fault,
    /// 業務咨詢
    Consultation,
    /// 變更需求
    Change,
}

/// Who called, and for whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub name: String,
    pub contact: String,
    /// The customer: the department the call is for (verified against the records).
    pub department: String,
    /// The user in that department, when the caller is one.
    pub user: Option<String>,
}

/// Second line: a team, a person, or both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignee {
    pub team: Option<String>,
    pub person: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// With first line.
    #[default]
    Open,
    /// A chargeable change waiting for the product manager.
    AwaitingTerms,
    /// A work order is with second line.
    WithSecondLine,
    /// Second line handed back; first line calls the user.
    AwaitingCallback,
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkOrderStatus {
    Issued,
    Accepted,
    Completed,
}

/// A work order as the ticket holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkOrder {
    pub id: Uuid,
    pub to: Assignee,
    pub status: WorkOrderStatus,
    /// The order this one follows after a callback the user did not confirm.
    pub follows: Option<Uuid>,
}

/// The id of a ticket's `n`th work order (from 1): derived, so a retried command issues
/// the same order.
pub fn work_order_id(ticket_id: Uuid, n: usize) -> Uuid {
    Uuid::new_v5(&ticket_id, format!("work-order-{n}").as_bytes())
}

/// Orders to a ticket.
#[derive(Clone, Debug)]
pub enum TicketCommand {
    Record {
        ticket_id: Uuid,
        kind: TicketKind,
        caller: Caller,
        description: String,
        /// The affected configuration item, if known.
        ci_id: Option<Uuid>,
        /// For a change: whether it is charged for.
        chargeable: bool,
    },
    /// First line solved it on the call.
    ResolveDirectly {
        resolution: String,
    },
    /// The product manager confirms a chargeable change's commercial terms.
    ConfirmTerms {
        terms: String,
    },
    IssueWorkOrder {
        to: Assignee,
        instructions: String,
    },
    AcceptWorkOrder,
    LogWork {
        note: String,
    },
    /// Second line hands back its result.
    CompleteWorkOrder {
        result: String,
    },
    /// First line called the user: confirmed closes; otherwise a new order goes to
    /// `reissue_to` (the last order's assignee when absent).
    CallBack {
        confirmed: bool,
        note: String,
        reissue_to: Option<Assignee>,
    },
    LinkIncident {
        incident_id: Uuid,
    },
}

/// What happened to a ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum TicketEvent {
    TicketRecorded {
        ticket_id: Uuid,
        kind: TicketKind,
        caller: Caller,
        description: String,
        ci_id: Option<Uuid>,
        chargeable: bool,
    },
    TermsConfirmed {
        terms: String,
    },
    WorkOrderIssued {
        work_order_id: Uuid,
        to: Assignee,
        instructions: String,
        follows: Option<Uuid>,
    },
    WorkOrderAccepted {
        work_order_id: Uuid,
    },
    WorkOrderLogged {
        work_order_id: Uuid,
        note: String,
    },
    WorkOrderCompleted {
        work_order_id: Uuid,
        result: String,
    },
    UserCalledBack {
        confirmed: bool,
        note: String,
    },
    CustomerRecordUpdated {
        department: String,
        change: String,
    },
    TicketClosed {
        resolution: String,
        at: DateTime<Utc>,
    },
    TicketLinked {
        incident_id: Uuid,
    },
}

impl DomainEvent for TicketEvent {}

/// Why a ticket refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// A field of the ticket breaks its rules (invalid)
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// The actor's roles do not allow this (forbidden)
    #[error("only {0} may do this")]
    NotPermitted(&'static str),
    /// The ticket was recorded already (conflict)
    #[error("this ticket was already recorded")]
    AlreadyRecorded,
    /// There is no such ticket (not found)
    #[error("there is no such ticket")]
    NotFound,
    /// The ticket is closed (conflict)
    #[error("the ticket is closed")]
    Closed,
    /// A chargeable change waits for its terms to be confirmed (conflict)
    #[error("a chargeable change waits for the product manager to confirm its terms")]
    AwaitingTerms,
    /// There are no terms to confirm, or they were confirmed already (conflict)
    #[error("only a chargeable change has terms to confirm, once")]
    NoTermsToConfirm,
    /// A work order is still with second line (conflict)
    #[error("work order {0} is still with second line")]
    WorkOrderOpen(Uuid),
    /// No work order is with second line (conflict)
    #[error("there is no work order with second line")]
    NoOpenWorkOrder,
    /// The work order was accepted already (conflict)
    #[error("the work order was already accepted")]
    AlreadyAccepted,
    /// Second line has not handed the ticket back (conflict)
    #[error("second line has not handed the ticket back yet")]
    NotHandedBack,
    /// The link exists already (conflict)
    #[error("already linked")]
    AlreadyLinked,
}

impl Refuse for TicketError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
            Self::NotPermitted(..) => Refusal::Forbidden,
            Self::AlreadyRecorded
            | Self::Closed
            | Self::AwaitingTerms
            | Self::NoTermsToConfirm
            | Self::WorkOrderOpen(..)
            | Self::NoOpenWorkOrder
            | Self::AlreadyAccepted
            | Self::NotHandedBack
            | Self::AlreadyLinked => Refusal::Conflict,
            Self::NotFound => Refusal::NotFound,
        }
    }
}

/// A ticket's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: Option<Uuid>,
    pub kind: Option<TicketKind>,
    pub status: TicketStatus,
    pub department: String,
    pub chargeable: bool,
    pub terms: Option<String>,
    pub work_orders: Vec<WorkOrder>,
    pub incidents: Vec<Uuid>,
    pub last_result: Option<String>,
}

impl Ticket {
    fn open_order(&self) -> Option<&WorkOrder> {
        self.work_orders
            .last()
            .filter(|w| w.status != WorkOrderStatus::Completed)
    }

    fn live(&self) -> Result<(), TicketError> {
        match self.status {
            _ if self.id.is_none() => Err(TicketError::NotFound),
            TicketStatus::Closed => Err(TicketError::Closed),
            _ => Ok(()),
        }
    }
}

fn first_line(ctx: &Context) -> Result<(), TicketError> {
    if ctx.actor.has_role(Role::ServiceDesk) {
        Ok(())
    } else {
        Err(TicketError::NotPermitted("the service desk"))
    }
}

fn second_line(ctx: &Context) -> Result<(), TicketError> {
    if ctx.actor.has_role(Role::Engineer) || ctx.actor.operates() {
        Ok(())
    } else {
        Err(TicketError::NotPermitted("second-line engineers"))
    }
}

fn required(field: &str, text: &str) -> Result<(), InvalidField> {
    if text.trim().is_empty() {
        return Err(invalid(field, "is required"));
    }
    Ok(())
}

fn check_assignee(to: &Assignee) -> Result<(), InvalidField> {
    let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
    if blank(&to.team) && blank(&to.person) {
        return Err(invalid("to", "names no team and no person"));
    }
    Ok(())
}

impl Aggregate for Ticket {
    const KIND: &'static str = "ticket";
    type Command = TicketCommand;
    type Event = TicketEvent;
    type Error = TicketError;

    fn decide(
        &self,
        command: TicketCommand,
        ctx: &Context,
    ) -> Result<Vec<TicketEvent>, TicketError> {
        use TicketCommand as C;
        use TicketEvent as E;
        match command {
            C::Record {
                ticket_id,
                kind,
                caller,
                description,
                ci_id,
                chargeable,
            } => {
                first_line(ctx)?;
                if self.id.is_some() {
                    return Err(TicketError::AlreadyRecorded);
                }
                required("caller.name", &caller.name)?;
                required("caller.contact", &caller.contact)?;
                required("caller.department", &caller.department)?;
                required("description", &description)?;
                if chargeable && kind != TicketKind::Change {
                    return Err(invalid("chargeable", "only a change is charged for").into());
                }
                Ok(vec![E::TicketRecorded {
                    ticket_id,
                    kind,
                    caller,
                    description,
                    ci_id,
                    chargeable,
                }])
            }
            C::ResolveDirectly { resolution } => {
                first_line(ctx)?;
                self.live()?;
                if let Some(w) = self.open_order() {
                    return Err(TicketError::WorkOrderOpen(w.id));
                }
                required("resolution", &resolution)?;
                Ok(vec![E::TicketClosed {
                    resolution,
                    at: ctx.now,
                }])
            }
            C::ConfirmTerms { terms } => {
                if !ctx.actor.has_role(Role::ProductManager) {
                    return Err(TicketError::NotPermitted("a product manager"));
                }
                self.live()?;
                if self.status != TicketStatus::AwaitingTerms {
                    return Err(TicketError::NoTermsToConfirm);
                }
                required("terms", &terms)?;
                Ok(vec![E::TermsConfirmed { terms }])
            }
            C::IssueWorkOrder { to, instructions } => {
                self.live()?;
                if self.chargeable {
                    if !ctx.actor.has_role(Role::ProductManager) {
                        return Err(TicketError::NotPermitted(
                            "the product manager (a chargeable change)",
                        ));
                    }
                } else {
                    first_line(ctx)?;
                }
                if self.status == TicketStatus::AwaitingTerms {
                    return Err(TicketError::AwaitingTerms);
                }
                if let Some(w) = self.open_order() {
                    return Err(TicketError::WorkOrderOpen(w.id));
                }
                check_assignee(&to)?;
                required("instructions", &instructions)?;
                Ok(vec![E::WorkOrderIssued {
                    work_order_id: work_order_id(
                        self.id.unwrap_or_default(),
                        self.work_orders.len() + 1,
                    ),
                    to,
                    instructions,
                    follows: self.work_orders.last().map(|w| w.id),
                }])
            }
            C::AcceptWorkOrder => {
                second_line(ctx)?;
                self.live()?;
                let w = self.open_order().ok_or(TicketError::NoOpenWorkOrder)?;
                if w.status == WorkOrderStatus::Accepted {
                    return Err(TicketError::AlreadyAccepted);
                }
                Ok(vec![E::WorkOrderAccepted {
                    work_order_id: w.id,
                }])
            }
            C::LogWork { note } => {
                second_line(ctx)?;
                self.live()?;
                let w = self.open_order().ok_or(TicketError::NoOpenWorkOrder)?;
                required("note", &note)?;
                Ok(vec![E::WorkOrderLogged {
                    work_order_id: w.id,
                    note,
                }])
            }
            C::CompleteWorkOrder { result } => {
                second_line(ctx)?;
                self.live()?;
                let w = self.open_order().ok_or(TicketError::NoOpenWorkOrder)?;
                required("result", &result)?;
                Ok(vec![E::WorkOrderCompleted {
                    work_order_id: w.id,
                    result,
                }])
            }
            C::CallBack {
                confirmed,
                note,
                reissue_to,
            } => {
                first_line(ctx)?;
                self.live()?;
                if self.status != TicketStatus::AwaitingCallback {
                    return Err(TicketError::NotHandedBack);
                }
                required("note", &note)?;
                let mut events = vec![E::UserCalledBack {
                    confirmed,
                    note: note.clone(),
                }];
                let last = self.work_orders.last();
                if confirmed {
                    if self.kind == Some(TicketKind::Change) {
                        events.push(E::CustomerRecordUpdated {
                            department: self.department.clone(),
                            change: self.last_result.clone().unwrap_or_default(),
                        });
                    }
                    events.push(E::TicketClosed {
                        resolution: self.last_result.clone().unwrap_or_default(),
                        at: ctx.now,
                    });
                } else {
                    let to = match reissue_to {
                        Some(to) => to,
                        None => last
                            .map(|w| w.to.clone())
                            .ok_or(TicketError::NoOpenWorkOrder)?,
                    };
                    check_assignee(&to)?;
                    events.push(E::WorkOrderIssued {
                        work_order_id: work_order_id(
                            self.id.unwrap_or_default(),
                            self.work_orders.len() + 1,
                        ),
                        to,
                        instructions: note,
                        follows: last.map(|w| w.id),
                    });
                }
                Ok(events)
            }
            C::LinkIncident { incident_id } => {
                self.live()?;
                if !(ctx.actor.has_role(Role::ServiceDesk) || ctx.actor.has_role(Role::Engineer)) {
                    return Err(TicketError::NotPermitted("the service desk or engineers"));
                }
                if self.incidents.contains(&incident_id) {
                    return Err(TicketError::AlreadyLinked);
                }
                Ok(vec![E::TicketLinked { incident_id }])
            }
        }
    }

    fn evolve(mut self, event: &TicketEvent) -> Self {
        use TicketEvent as E;
        match event {
            E::TicketRecorded {
                ticket_id,
                kind,
                caller,
                chargeable,
                ..
            } => {
                self.id = Some(*ticket_id);
                self.kind = Some(*kind);
                self.department.clone_from(&caller.department);
                self.chargeable = *chargeable;
                if *chargeable {
                    self.status = TicketStatus::AwaitingTerms;
                }
            }
            E::TermsConfirmed { terms } => {
                self.terms = Some(terms.clone());
                self.status = TicketStatus::Open;
            }
            E::WorkOrderIssued {
                work_order_id,
                to,
                follows,
                ..
            } => {
                self.work_orders.push(WorkOrder {
                    id: *work_order_id,
                    to: to.clone(),
                    status: WorkOrderStatus::Issued,
                    follows: *follows,
                });
                self.status = TicketStatus::WithSecondLine;
            }
            E::WorkOrderAccepted { .. } => {
                if let Some(w) = self.work_orders.last_mut() {
                    w.status = WorkOrderStatus::Accepted;
                }
            }
            E::WorkOrderCompleted { result, .. } => {
                if let Some(w) = self.work_orders.last_mut() {
                    w.status = WorkOrderStatus::Completed;
                }
                self.last_result = Some(result.clone());
                self.status = TicketStatus::AwaitingCallback;
            }
            E::TicketClosed { .. } => self.status = TicketStatus::Closed,
            E::TicketLinked { incident_id } => self.incidents.push(*incident_id),
            E::WorkOrderLogged { .. }
            | E::UserCalledBack { .. }
            | E::CustomerRecordUpdated { .. } => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::given::{at, given, person};
    use crate::Actor;

    fn desk() -> Actor {
        person("u-desk", "ops", &["service_desk"])
    }

    fn eng() -> Actor {
        person("u-eng", "ops", &["engineer"])
    }

    fn recorded(kind: TicketKind, chargeable: bool) -> TicketEvent {
        TicketEvent::TicketRecorded {
            ticket_id: Uuid::nil(),
            kind,
            caller: Caller {
                name: "陳先生".into(),
                contact: "0571-1234".into(),
                department: "finance".into(),
                user: None,
            },
            description: "OA 系統無法登錄".into(),
            ci_id: None,
            chargeable,
        }
    }

    fn issued(n: usize) -> TicketEvent {
        TicketEvent::WorkOrderIssued {
            work_order_id: work_order_id(Uuid::nil(), n),
            to: Assignee {
                team: Some("network".into()),
                person: None,
            },
            instructions: "check".into(),
            follows: (n > 1).then(|| work_order_id(Uuid::nil(), n - 1)),
        }
    }

    fn completed(n: usize) -> TicketEvent {
        TicketEvent::WorkOrderCompleted {
            work_order_id: work_order_id(Uuid::nil(), n),
            result: "重置了交換機端口".into(),
        }
    }

    #[test]
    fn an_unconfirmed_callback_issues_a_new_order_linked_to_the_first() {
        let events = given::<Ticket>([recorded(TicketKind::Fault, false), issued(1), completed(1)])
            .when(
                TicketCommand::CallBack {
                    confirmed: false,
                    note: "still down".into(),
                    reissue_to: None,
                },
                &desk(),
            )
            .events();
        assert_eq!(
            events[1],
            TicketEvent::WorkOrderIssued {
                work_order_id: work_order_id(Uuid::nil(), 2),
                to: Assignee {
                    team: Some("network".into()),
                    person: None
                },
                instructions: "still down".into(),
                follows: Some(work_order_id(Uuid::nil(), 1)),
            }
        );
    }

    #[test]
    fn a_confirmed_callback_closes_the_ticket_with_second_lines_result() {
        given::<Ticket>([recorded(TicketKind::Fault, false), issued(1), completed(1)])
            .at(at(15))
            .when(
                TicketCommand::CallBack {
                    confirmed: true,
                    note: "works".into(),
                    reissue_to: None,
                },
                &desk(),
            )
            .then([
                TicketEvent::UserCalledBack {
                    confirmed: true,
                    note: "works".into(),
                },
                TicketEvent::TicketClosed {
                    resolution: "重置了交換機端口".into(),
                    at: at(15),
                },
            ]);
    }

    #[test]
    fn a_chargeable_change_waits_for_the_product_manager() {
        let pm = person("u-pm", "sales", &["product_manager"]);
        let issue = || TicketCommand::IssueWorkOrder {
            to: Assignee {
                team: Some("platform".into()),
                person: None,
            },
            instructions: "add 100 GB".into(),
        };
        given::<Ticket>([recorded(TicketKind::Change, true)])
            .when(issue(), &pm)
            .then_err(TicketError::AwaitingTerms);
        let confirmed = TicketEvent::TermsConfirmed {
            terms: "contract 2026-17".into(),
        };
        given::<Ticket>([recorded(TicketKind::Change, true), confirmed.clone()])
            .when(issue(), &desk())
            .then_err(TicketError::NotPermitted(
                "the product manager (a chargeable change)",
            ));
        let events = given::<Ticket>([recorded(TicketKind::Change, true), confirmed])
            .when(issue(), &pm)
            .events();
        assert!(matches!(events[0], TicketEvent::WorkOrderIssued { .. }));
        given::<Ticket>([recorded(TicketKind::Change, true)])
            .when(TicketCommand::ConfirmTerms { terms: "x".into() }, &desk())
            .then_err(TicketError::NotPermitted("a product manager"));
    }

    #[test]
    fn a_confirmed_change_updates_the_customer_record() {
        let events =
            given::<Ticket>([recorded(TicketKind::Change, false), issued(1), completed(1)])
                .when(
                    TicketCommand::CallBack {
                        confirmed: true,
                        note: "ok".into(),
                        reissue_to: None,
                    },
                    &desk(),
                )
                .events();
        assert_eq!(
            events[1],
            TicketEvent::CustomerRecordUpdated {
                department: "finance".into(),
                change: "重置了交換機端口".into()
            }
        );
    }

    #[test]
    fn first_line_cannot_call_back_before_second_line_hands_back() {
        given::<Ticket>([recorded(TicketKind::Fault, false), issued(1)])
            .when(
                TicketCommand::CallBack {
                    confirmed: true,
                    note: "?".into(),
                    reissue_to: None,
                },
                &desk(),
            )
            .then_err(TicketError::NotHandedBack);
        given::<Ticket>([recorded(TicketKind::Fault, false), issued(1)])
            .when(
                TicketCommand::CompleteWorkOrder {
                    result: "done".into(),
                },
                &desk(),
            )
            .then_err(TicketError::NotPermitted("second-line engineers"));
    }

    #[test]
    fn a_closed_ticket_takes_no_work() {
        let closed = TicketEvent::TicketClosed {
            resolution: "explained".into(),
            at: at(10),
        };
        given::<Ticket>([recorded(TicketKind::Consultation, false), closed])
            .when(
                TicketCommand::LogWork {
                    note: "more".into(),
                },
                &eng(),
            )
            .then_err(TicketError::Closed);
    }

    #[test]
    fn only_a_change_is_charged_for() {
        given::<Ticket>([])
            .when(
                TicketCommand::Record {
                    ticket_id: Uuid::nil(),
                    kind: TicketKind::Fault,
                    caller: Caller {
                        name: "a".into(),
                        contact: "b".into(),
                        department: "finance".into(),
                        user: None,
                    },
                    description: "d".into(),
                    ci_id: None,
                    chargeable: true,
                },
                &desk(),
            )
            .then_err(TicketError::Invalid(invalid(
                "chargeable",
                "only a change is charged for",
            )));
    }
}
