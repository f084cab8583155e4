//! Compliance of approvals, computed from the events alone, so that it holds for an
//! imported history as much as for the live one.

use foldhash::HashMap;

use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent, Role};
use opsledger_domain::requests::request::{Decider, Request, RequestEvent};
use opsledger_domain::{Actor, RecordedEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Projection;

/// What is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Fulfilled without every approval its chain required.
    FulfilledWithoutApproval,
    /// Approved by the person who requested it (directly or through a delegation).
    ApprovedByRequester,
    /// One person decided more than one step of the same request.
    OnePersonTwoSteps,
    /// Approved by someone who did not hold the step's role at that moment.
    ApproverLackedRole,
}

/// One compliance finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub request_id: Uuid,
    /// The event that shows it.
    pub position: u64,
    /// The person concerned, when there is one.
    pub person: Option<String>,
    pub detail: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Tracked {
    request_id: Uuid,
    requester: String,
    /// The role each step of its chain needs.
    roles: Vec<Role>,
    pre_approved: bool,
    completed: usize,
    /// Who decided which step.
    deciders: Vec<(String, usize)>,
}

/// Every finding, in log order.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Compliance {
    requests: HashMap<String, Tracked>,
    findings: Vec<Finding>,
}

impl Compliance {
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }
}

impl Projection for Compliance {
    fn name(&self) -> &'static str {
        "compliance"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        if crate::stream_kind(&event.stream) != Request::KIND {
            return;
        }
        if let Ok(e) = RequestEvent::from_recorded(event) {
            self.on_event(event, &e);
        }
    }
}

impl Compliance {
    /// Folds one event of a request's stream, already decoded.
    pub(crate) fn on_event(&mut self, event: &RecordedEvent, e: &RequestEvent) {
        if let RequestEvent::RequestSubmitted {
            request_id,
            requester,
            steps,
            ..
        } = &e
        {
            self.requests.insert(
                event.stream.clone(),
                Tracked {
                    request_id: *request_id,
                    requester: requester.clone(),
                    roles: steps.iter().map(|s| s.role).collect(),
                    ..Tracked::default()
                },
            );
            return;
        }
        let Some(r) = self.requests.get_mut(&event.stream) else {
            return;
        };
        let request_id = r.request_id;
        let mut found = |kind, person: Option<&str>, detail: String| {
            self.findings.push(Finding {
                kind,
                request_id,
                position: event.position,
                person: person.map(str::to_owned),
                detail,
            });
        };
        match e {
            RequestEvent::ApprovalGranted { step, decider, .. } => {
                let (step, principal) = (*step, principal(decider, &event.metadata.actor));
                if decider.user == r.requester || principal.id == r.requester {
                    found(
                        FindingKind::ApprovedByRequester,
                        Some(&r.requester),
                        format!("step {step} approved by its requester"),
                    );
                }
                if let Some(&needed) = r.roles.get(step) {
                    if !principal.has_role(needed) {
                        found(
                            FindingKind::ApproverLackedRole,
                            Some(&principal.id),
                            format!(
                                "step {step} needs the role {}; {} held {:?}",
                                needed.as_str(),
                                principal.id,
                                principal.roles
                            ),
                        );
                    }
                }
                two_steps(r, decider, principal, step, &mut found);
            }
            RequestEvent::ApprovalRejected { step, decider, .. } => {
                let principal = principal(decider, &event.metadata.actor);
                two_steps(r, decider, principal, *step, &mut found);
            }
            RequestEvent::StepCompleted { .. } => r.completed += 1,
            RequestEvent::RequestPreApproved { .. } => r.pre_approved = true,
            RequestEvent::RequestFulfilled { .. }
                if !r.pre_approved && r.completed < r.roles.len() =>
            {
                found(
                    FindingKind::FulfilledWithoutApproval,
                    None,
                    format!(
                        "{} of {} approval steps completed",
                        r.completed,
                        r.roles.len()
                    ),
                );
            }
            _ => {}
        }
    }
}

/// Whose authority an approval used: the delegator's when acting for them, else the actor's
/// as the token stated it.
fn principal<'a>(decider: &'a Decider, actor: &'a Actor) -> &'a Actor {
    decider.on_behalf_of.as_ref().unwrap_or(actor)
}

fn two_steps(
    r: &mut Tracked,
    decider: &Decider,
    principal: &Actor,
    step: usize,
    found: &mut impl FnMut(FindingKind, Option<&str>, String),
) {
    let people: &[&String] = if principal.id == decider.user {
        &[&decider.user]
    } else {
        &[&decider.user, &principal.id]
    };
    for &person in people {
        match r.deciders.iter().find(|(p, _)| p == person) {
            Some(&(_, earlier)) if earlier != step => found(
                FindingKind::OnePersonTwoSteps,
                Some(person),
                format!("{person} decided steps {earlier} and {step}"),
            ),
            Some(_) => {}
            None => r.deciders.push((person.clone(), step)),
        }
    }
}
