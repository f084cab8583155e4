//! Requests as their requesters, approvers and operators see them: status, the chain and
//! where it stands, and filters for lists.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use opsledger_domain::aggregate::{Aggregate, DomainEvent};
use opsledger_domain::catalog::OfferingKind;
use opsledger_domain::request::{Request, RequestDetails, RequestEvent, RequestStatus};
use opsledger_domain::{Actor, RecordedEvent};
use uuid::Uuid;

use crate::Projection;

/// One request.
#[derive(Clone, Debug)]
pub struct RequestView {
    pub request_id: Uuid,
    pub item_id: Uuid,
    pub item_version: u32,
    pub offering: OfferingKind,
    pub details: RequestDetails,
    pub submitted_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The position of the request's last event.
    pub position: u64,
    /// The aggregate's own state: status, chain, open step, who decided what.
    pub state: Request,
}

impl RequestView {
    pub fn status(&self) -> RequestStatus {
        self.state.status
    }

    /// `new_resource`, `change_configuration`, `extend_lease` or `install_software`.
    pub fn kind(&self) -> &'static str {
        match self.details {
            RequestDetails::NewResource { .. } => "new_resource",
            RequestDetails::ChangeConfiguration { .. } => "change_configuration",
            RequestDetails::ExtendLease { .. } => "extend_lease",
            RequestDetails::InstallSoftware { .. } => "install_software",
        }
    }

    pub fn project(&self) -> Option<&str> {
        match &self.details {
            RequestDetails::NewResource { project, .. }
            | RequestDetails::ChangeConfiguration { project, .. }
            | RequestDetails::InstallSoftware { project, .. } => Some(project),
            RequestDetails::ExtendLease { .. } => None,
        }
    }
}

/// What a list of requests may be narrowed to; `None` matches everything.
#[derive(Clone, Debug, Default)]
pub struct RequestFilter {
    pub status: Option<RequestStatus>,
    pub kind: Option<String>,
    pub department: Option<String>,
    pub project: Option<String>,
    pub requester: Option<String>,
    pub submitted_from: Option<DateTime<Utc>>,
    pub submitted_until: Option<DateTime<Utc>>,
}

impl RequestFilter {
    pub fn matches(&self, r: &RequestView) -> bool {
        self.status.is_none_or(|s| r.status() == s)
            && self.kind.as_deref().is_none_or(|k| r.kind() == k)
            && self
                .department
                .as_deref()
                .is_none_or(|d| r.state.department == d)
            && self
                .project
                .as_deref()
                .is_none_or(|p| r.project() == Some(p))
            && self
                .requester
                .as_deref()
                .is_none_or(|u| r.state.requester == u)
            && self.submitted_from.is_none_or(|t| r.submitted_at >= t)
            && self.submitted_until.is_none_or(|t| r.submitted_at < t)
    }
}

/// Every request, in submission order.
#[derive(Debug, Default)]
pub struct Requests {
    index: HashMap<Uuid, usize>,
    all: Vec<RequestView>,
}

impl Requests {
    pub fn get(&self, request_id: Uuid) -> Option<&RequestView> {
        self.index.get(&request_id).map(|&i| &self.all[i])
    }

    /// Requests matching `filter`, in submission order.
    pub fn list<'a>(
        &'a self,
        filter: &'a RequestFilter,
    ) -> impl DoubleEndedIterator<Item = &'a RequestView> + 'a {
        self.all.iter().filter(move |r| filter.matches(r))
    }

    /// Requests whose open step `actor` may decide now.
    pub fn pending_for<'a>(
        &'a self,
        actor: &'a Actor,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = &'a RequestView> + 'a {
        self.all
            .iter()
            .filter(|r| r.status() == RequestStatus::PendingApproval)
            .filter(move |r| r.state.may_decide(actor, now))
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

impl Projection for Requests {
    fn name(&self) -> &'static str {
        "requests"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        if crate::stream_kind(&event.stream) != "request" {
            return;
        }
        let Ok(e) = RequestEvent::from_recorded(event) else {
            return;
        };
        let at = event.metadata.recorded_at;
        if let RequestEvent::RequestSubmitted {
            request_id,
            item_id,
            item_version,
            offering,
            details,
            at: submitted,
            ..
        } = &e
        {
            self.index.insert(*request_id, self.all.len());
            self.all.push(RequestView {
                request_id: *request_id,
                item_id: *item_id,
                item_version: *item_version,
                offering: *offering,
                details: details.clone(),
                submitted_at: *submitted,
                updated_at: at,
                position: event.position,
                state: Request::default(),
            });
        }
        let id = event
            .stream
            .split_once('-')
            .and_then(|(_, id)| id.parse::<Uuid>().ok());
        let Some(&i) = id.and_then(|id| self.index.get(&id)) else {
            return;
        };
        let view = &mut self.all[i];
        view.state = std::mem::take(&mut view.state).evolve(&e);
        view.updated_at = at;
        view.position = event.position;
    }
}
