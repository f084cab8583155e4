//! Requests as their requesters, approvers and operators see them: status, the chain and
//! where it stands, and filters for lists.

pub mod catalog;
pub mod compliance;
pub mod delegations;

use std::collections::BTreeSet;

use foldhash::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent};
use opsledger_domain::requests::catalog::{ApprovalStep, OfferingKind};
use opsledger_domain::requests::request::{
    self, Request, RequestDetails, RequestEvent, RequestStatus,
};
use opsledger_domain::{Actor, RecordedEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Projection;

/// One request.
///
/// A list holds every request, so the view keeps what lists filter on at hand and the rest
/// (the chosen configuration and period) as the JSON the request recorded, read back only
/// when a request is shown.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestView {
    pub request_id: Uuid,
    pub item_id: Uuid,
    pub item_version: u32,
    pub offering: OfferingKind,
    kind: Kind,
    project: Option<Box<str>>,
    details: Box<str>,
    pub submitted_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The position of the request's last event.
    pub position: u64,
    /// The aggregate's own state: status, chain, open step, who decided what.
    pub state: Request,
}

/// The four kinds of request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Kind {
    NewResource,
    ChangeConfiguration,
    ExtendLease,
    InstallSoftware,
}

impl RequestView {
    fn new(
        request_id: Uuid,
        item: (Uuid, u32, OfferingKind),
        details: &RequestDetails,
        at: DateTime<Utc>,
        position: u64,
    ) -> Self {
        let (kind, project) = match details {
            RequestDetails::NewResource { project, .. } => (Kind::NewResource, Some(project)),
            RequestDetails::ChangeConfiguration { project, .. } => {
                (Kind::ChangeConfiguration, Some(project))
            }
            RequestDetails::InstallSoftware { project, .. } => {
                (Kind::InstallSoftware, Some(project))
            }
            RequestDetails::ExtendLease { .. } => (Kind::ExtendLease, None),
        };
        RequestView {
            request_id,
            item_id: item.0,
            item_version: item.1,
            offering: item.2,
            kind,
            project: project.map(|p| p.as_str().into()),
            details: serde_json::to_string(details).unwrap_or_default().into(),
            submitted_at: at,
            updated_at: at,
            position,
            state: Request::default(),
        }
    }

    pub fn status(&self) -> RequestStatus {
        self.state.status
    }

    /// `new_resource`, `change_configuration`, `extend_lease` or `install_software`.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::NewResource => "new_resource",
            Kind::ChangeConfiguration => "change_configuration",
            Kind::ExtendLease => "extend_lease",
            Kind::InstallSoftware => "install_software",
        }
    }

    pub fn project(&self) -> Option<&str> {
        self.project.as_deref()
    }

    /// What was asked for (configuration, quantity, period, or the lease and resource),
    /// as the JSON of its `RequestDetails`.
    pub fn details_json(&self) -> &str {
        &self.details
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
    /// Only the requests this person may see (the domain's rule: their department's and
    /// their own, or every one for the roles that see every department).
    pub reader: Option<Actor>,
}

impl RequestFilter {
    pub fn matches(&self, r: &RequestView) -> bool {
        self.reader.as_ref().is_none_or(|a| r.state.visible_to(a))
            && self.status.is_none_or(|s| r.status() == s)
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

/// Which end of the submission order a list starts from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    OldestFirst,
    NewestFirst,
}

/// Every request, in submission order, with an index per department, requester, project
/// and status, so that a filtered page reads only the requests it could contain.
///
/// A request's *sequence* is its place in submission order; list cursors are sequences.
///
/// A snapshot holds the views and each distinct chain once; the indexes are rebuilt.
#[derive(Debug, Default)]
pub struct Requests {
    index: HashMap<Uuid, usize>,
    all: Vec<RequestView>,
    by_department: HashMap<String, Vec<usize>>,
    by_requester: HashMap<String, Vec<usize>>,
    by_project: HashMap<String, Vec<usize>>,
    by_status: HashMap<RequestStatus, BTreeSet<usize>>,
    /// Every distinct approval chain once; requests share them.
    chains: HashSet<Arc<[ApprovalStep]>>,
}

/// A view as a snapshot writes it: its chain by number.
#[derive(Serialize, Deserialize)]
struct Stored {
    chains: Vec<Arc<[ApprovalStep]>>,
    views: Vec<(u32, RequestView)>,
}

impl Serialize for Requests {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        // Numbered in order of first use, so equal models write equal snapshots.
        let mut chains: Vec<Arc<[ApprovalStep]>> = Vec::new();
        let mut number: HashMap<*const ApprovalStep, u32> = HashMap::default();
        for view in &self.all {
            let steps = &view.state.steps;
            number.entry(steps.as_ptr()).or_insert_with(|| {
                chains.push(steps.clone());
                (chains.len() - 1) as u32
            });
        }
        let views = Views {
            all: &self.all,
            number: &number,
        };
        let mut out = serializer.serialize_struct("Stored", 2)?;
        out.serialize_field("chains", &chains)?;
        out.serialize_field("views", &views)?;
        out.end()
    }
}

/// The views, each without its chain and with the chain's number, one at a time.
struct Views<'a> {
    all: &'a [RequestView],
    number: &'a HashMap<*const ApprovalStep, u32>,
}

impl Serialize for Views<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.all.len()))?;
        for view in self.all {
            let chain = self.number.get(&view.state.steps.as_ptr()).copied();
            let mut bare = view.clone();
            bare.state.steps = Arc::from([]);
            seq.serialize_element(&(chain.unwrap_or(u32::MAX), bare))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Requests {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = Stored::deserialize(deserializer)?;
        let mut requests = Requests::default();
        for (chain, mut view) in stored.views {
            if let Some(steps) = stored.chains.get(chain as usize) {
                view.state.steps = intern(&mut requests.chains, steps);
            }
            let i = requests.all.len();
            requests.index.insert(view.request_id, i);
            requests
                .by_status
                .entry(view.status())
                .or_default()
                .insert(i);
            requests.all.push(view);
            requests.index_submitted(i);
        }
        Ok(requests)
    }
}

/// The sequences one index holds, in order.
enum Candidates<'a> {
    All(usize),
    Sorted(&'a [usize]),
    /// Two sorted lists, each sequence once.
    Union(&'a [usize], &'a [usize]),
    Set(&'a BTreeSet<usize>),
}

impl<'a> Candidates<'a> {
    fn len(&self) -> usize {
        match self {
            Candidates::All(n) => *n,
            Candidates::Sorted(s) => s.len(),
            Candidates::Union(a, b) => a.len() + b.len(),
            Candidates::Set(s) => s.len(),
        }
    }

    /// The sequences after `after` in `order` (all of them without a cursor).
    fn walk(
        self,
        after: Option<usize>,
        order: Order,
    ) -> Box<dyn Iterator<Item = usize> + Send + Sync + 'a> {
        use std::ops::Bound::{Excluded, Unbounded};
        match (self, order) {
            (Candidates::All(n), Order::OldestFirst) => Box::new(after.map_or(0, |a| a + 1)..n),
            (Candidates::All(n), Order::NewestFirst) => {
                Box::new((0..after.unwrap_or(n).min(n)).rev())
            }
            (Candidates::Sorted(s), Order::OldestFirst) => {
                let from = after.map_or(0, |a| s.partition_point(|&x| x <= a));
                Box::new(s[from..].iter().copied())
            }
            (Candidates::Sorted(s), Order::NewestFirst) => {
                let to = after.map_or(s.len(), |a| s.partition_point(|&x| x < a));
                Box::new(s[..to].iter().rev().copied())
            }
            (Candidates::Union(a, b), order) => {
                let a = Candidates::Sorted(a).walk(after, order).peekable();
                let b = Candidates::Sorted(b).walk(after, order).peekable();
                Box::new(Merged { a, b, order })
            }
            (Candidates::Set(s), Order::OldestFirst) => Box::new(
                s.range((after.map_or(Unbounded, Excluded), Unbounded))
                    .copied(),
            ),
            (Candidates::Set(s), Order::NewestFirst) => Box::new(
                s.range((Unbounded, after.map_or(Unbounded, Excluded)))
                    .rev()
                    .copied(),
            ),
        }
    }
}

/// Two walks in the same order merged into one, each sequence once.
struct Merged<I: Iterator<Item = usize>> {
    a: std::iter::Peekable<I>,
    b: std::iter::Peekable<I>,
    order: Order,
}

impl<I: Iterator<Item = usize>> Iterator for Merged<I> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let first = match (self.a.peek(), self.b.peek()) {
            (Some(&x), Some(&y)) if x == y => {
                self.b.next();
                return self.a.next();
            }
            (Some(&x), Some(&y)) => (x < y) == (self.order == Order::OldestFirst),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if first {
            self.a.next()
        } else {
            self.b.next()
        }
    }
}

const NONE: &[usize] = &[];

impl Requests {
    pub fn get(&self, request_id: Uuid) -> Option<&RequestView> {
        self.index.get(&request_id).map(|&i| &self.all[i])
    }

    /// Requests matching `filter` after the sequence `after`, in `order`, each with its
    /// sequence. Reads the smallest index the filter allows.
    pub fn list<'a>(
        &'a self,
        filter: &'a RequestFilter,
        after: Option<usize>,
        order: Order,
    ) -> impl Iterator<Item = (usize, &'a RequestView)> + 'a {
        let sorted = |map: &'a HashMap<String, Vec<usize>>, key: &Option<String>| {
            key.as_ref()
                .map(|k| Candidates::Sorted(map.get(k).map_or(NONE, Vec::as_slice)))
        };
        let empty = &EMPTY_SET;
        let walled = filter
            .reader
            .as_ref()
            .filter(|a| !request::sees_every_department(a));
        let candidates = [
            walled.map(|a| {
                let own = |map: &'a HashMap<String, Vec<usize>>, key: &str| {
                    map.get(key).map_or(NONE, Vec::as_slice)
                };
                let department = a.department.as_deref().unwrap_or_default();
                Candidates::Union(
                    own(&self.by_department, department),
                    own(&self.by_requester, &a.id),
                )
            }),
            sorted(&self.by_requester, &filter.requester),
            sorted(&self.by_project, &filter.project),
            sorted(&self.by_department, &filter.department),
            filter
                .status
                .map(|s| Candidates::Set(self.by_status.get(&s).unwrap_or(empty))),
        ]
        .into_iter()
        .flatten()
        .min_by_key(Candidates::len)
        .unwrap_or(Candidates::All(self.all.len()));
        candidates
            .walk(after, order)
            .map(|i| (i, &self.all[i]))
            .filter(move |(_, r)| filter.matches(r))
    }

    /// Requests whose open step `actor` may decide now, oldest first, after `after`.
    pub fn pending_for<'a>(
        &'a self,
        actor: &'a Actor,
        now: DateTime<Utc>,
        after: Option<usize>,
    ) -> impl Iterator<Item = (usize, &'a RequestView)> + 'a {
        let pending = self
            .by_status
            .get(&RequestStatus::PendingApproval)
            .unwrap_or(&EMPTY_SET);
        Candidates::Set(pending)
            .walk(after, Order::OldestFirst)
            .map(|i| (i, &self.all[i]))
            .filter(move |(_, r)| r.state.may_decide(actor, now))
    }

    /// Whether `department` has made requests.
    pub fn knows_department(&self, department: &str) -> bool {
        self.by_department.contains_key(department)
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

static EMPTY_SET: BTreeSet<usize> = BTreeSet::new();

impl Requests {
    /// Folds one event of a request's stream, already decoded.
    pub(crate) fn on_event(&mut self, event: &RecordedEvent, e: &RequestEvent) {
        let at = event.metadata.recorded_at;
        let submitted = matches!(e, RequestEvent::RequestSubmitted { .. });
        if let RequestEvent::RequestSubmitted {
            request_id,
            item_id,
            item_version,
            offering,
            details,
            at: submitted,
            ..
        } = e
        {
            let seq = self.all.len();
            self.index.insert(*request_id, seq);
            let item = (*item_id, *item_version, *offering);
            let view = RequestView::new(*request_id, item, details, *submitted, event.position);
            self.all.push(RequestView {
                updated_at: at,
                ..view
            });
        }
        let id = crate::stream_id(&event.stream);
        let Some(&i) = id.and_then(|id| self.index.get(&id)) else {
            return;
        };
        let view = &mut self.all[i];
        let was = (!submitted).then_some(view.state.status);
        view.state = std::mem::take(&mut view.state).evolve(e);
        view.updated_at = at;
        view.position = event.position;
        let now = view.state.status;
        if submitted {
            view.state.steps = intern(&mut self.chains, &view.state.steps);
            self.index_submitted(i);
        }
        if was != Some(now) {
            if let Some(old) = was {
                self.by_status.entry(old).or_default().remove(&i);
            }
            self.by_status.entry(now).or_default().insert(i);
        }
    }

    /// Adds the request at `i` to the department, requester and project indexes.
    fn index_submitted(&mut self, i: usize) {
        let view = &self.all[i];
        let s = &view.state;
        self.by_department
            .entry(s.department.clone())
            .or_default()
            .push(i);
        self.by_requester
            .entry(s.requester.clone())
            .or_default()
            .push(i);
        if let Some(p) = view.project() {
            self.by_project.entry(p.to_owned()).or_default().push(i);
        }
    }
}

/// The one shared copy of `chain`.
pub(crate) fn intern(
    chains: &mut HashSet<Arc<[ApprovalStep]>>,
    chain: &Arc<[ApprovalStep]>,
) -> Arc<[ApprovalStep]> {
    match chains.get(&**chain) {
        Some(shared) => shared.clone(),
        None => {
            chains.insert(chain.clone());
            chain.clone()
        }
    }
}

impl Projection for Requests {
    fn name(&self) -> &'static str {
        "requests"
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
