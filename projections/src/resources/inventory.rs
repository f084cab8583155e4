//! Resources as they stand: pools (with a point per change, for `asOf`), configuration
//! items with their indexes and reverse relationships, subnets, department quotas, active
//! leases by end, and the usage intervals analysts ask about. Folded from the pool, CI,
//! subnet and quota streams alone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use opsledger_domain::kernel::aggregate::Aggregate;
use opsledger_domain::resources::cmdb::{
    self, CiEvent, CiStatus, CiType, ConfigurationItem, Relation,
};
use opsledger_domain::resources::ipam::{Subnet, SubnetEvent};
use opsledger_domain::resources::pool::{Amount, Pool, PoolEvent};
use opsledger_domain::resources::quota::{Quota, QuotaEvent};
use opsledger_domain::{Actor, RecordedEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::resources::usage::Usage;

/// An event of a resource stream, decoded once.
#[derive(Debug)]
pub enum ResourceEvent {
    Pool(PoolEvent),
    Ci(CiEvent),
    Subnet(SubnetEvent),
    Quota(QuotaEvent),
}

/// A pool's figures after one change: what `asOf` reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolPoint {
    pub position: u64,
    pub at: DateTime<Utc>,
    pub capacity: Amount,
    pub limit: Amount,
    pub allocated: Amount,
    pub reserved: Amount,
    /// Configuration items placed in the pool by status: running, stopped, retired.
    pub counts: [u32; 3],
    /// Counted things (licences, VLANs): how many the pool holds and how many are
    /// allocated; shared by the points between two changes of them.
    #[serde(default)]
    pub units: Arc<BTreeMap<String, (u64, u64)>>,
}

impl PoolPoint {
    pub fn free(&self) -> Amount {
        self.limit.minus(self.allocated).minus(self.reserved)
    }
}

/// A pool and its history.
#[derive(Debug, Serialize, Deserialize)]
pub struct PoolView {
    pub pool: Pool,
    pub history: Vec<PoolPoint>,
}

impl PoolView {
    /// The pool's figures as they were at `position` (`None`: it did not exist yet).
    pub fn at(&self, position: u64) -> Option<&PoolPoint> {
        let i = self.history.partition_point(|p| p.position <= position);
        i.checked_sub(1).map(|i| &self.history[i])
    }

    pub fn now(&self) -> &PoolPoint {
        self.history
            .last()
            .expect("a pool has a point from its creation")
    }
}

/// A configuration item and when it came.
#[derive(Debug, Serialize, Deserialize)]
pub struct CiView {
    pub state: ConfigurationItem,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CiView {
    pub fn id(&self) -> Uuid {
        self.state.ci_id.unwrap_or_default()
    }
}

/// One relationship as the target sees it, with the positions it held between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub relation: Relation,
    pub source: Uuid,
    pub added: u64,
    pub removed: Option<u64>,
}

impl Link {
    pub fn held_at(&self, position: u64) -> bool {
        self.added <= position && self.removed.is_none_or(|r| r > position)
    }
}

/// What a CI search asks for; every given filter must hold.
#[derive(Clone, Debug, Default)]
pub struct CiFilter {
    pub ci_type: Option<CiType>,
    pub department: Option<String>,
    pub project: Option<String>,
    pub pool: Option<Uuid>,
    pub status: Option<CiStatus>,
    /// Attribute name and the value it has (or, for a list, contains), as text.
    pub attributes: Vec<(String, String)>,
    /// A part of the name, case-insensitive.
    pub name_contains: Option<String>,
    /// Only the CIs this person may see (the domain's rule: their department's and the ones
    /// they own, or every one for the roles that see every department).
    pub reader: Option<Actor>,
}

/// Every resource, folded.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Inventory {
    pools: Vec<PoolView>,
    cis: Vec<CiView>,
    subnets: Vec<Subnet>,
    quotas: Vec<Quota>,
    /// Relationships by their target.
    dependents: HashMap<Uuid, Vec<Link>>,
    /// Runs of the log by recorded time: each entry is a time and the last position
    /// recorded at it (times of one run may be earlier when clocks disagree).
    timeline: Vec<(DateTime<Utc>, u64)>,
    pub usage: Usage,
    #[serde(skip)]
    index: Index,
}

/// Lookups rebuilt from the lists after a snapshot is read back.
#[derive(Debug, Default)]
struct Index {
    pools: HashMap<Uuid, u32>,
    cis: HashMap<Uuid, u32>,
    subnets: HashMap<Uuid, u32>,
    quotas: HashMap<Uuid, u32>,
    by_type: HashMap<CiType, Vec<u32>>,
    by_department: HashMap<String, Vec<u32>>,
    by_project: HashMap<String, Vec<u32>>,
    by_owner: HashMap<String, Vec<u32>>,
    by_pool: HashMap<Uuid, BTreeSet<u32>>,
    /// Active leases by end.
    leases: BTreeSet<(DateTime<Utc>, u32)>,
}

fn status_slot(status: CiStatus) -> usize {
    match status {
        CiStatus::Running => 0,
        CiStatus::Stopped => 1,
        CiStatus::Retired => 2,
    }
}

impl Inventory {
    /// Folds one event of a resource stream, already decoded.
    /// Notes when `event` was recorded; called for every event of the log, so `asOf` a
    /// time finds its position and `asOf` a position its time.
    pub(crate) fn note_time(&mut self, event: &RecordedEvent) {
        let at = event.metadata.recorded_at;
        if self.timeline.last().is_none_or(|(t, _)| at > *t) {
            self.timeline.push((at, event.position));
        } else if let Some(last) = self.timeline.last_mut() {
            last.1 = event.position;
        }
    }

    pub(crate) fn on_event(&mut self, event: &RecordedEvent, decoded: &ResourceEvent) {
        let Some(id) = crate::stream_id(&event.stream) else {
            return;
        };
        match decoded {
            ResourceEvent::Pool(e) => self.on_pool(event, id, e),
            ResourceEvent::Ci(e) => self.on_ci(event, id, e),
            ResourceEvent::Subnet(e) => {
                let i = *self.index.subnets.entry(id).or_insert_with(|| {
                    self.subnets.push(Subnet::default());
                    (self.subnets.len() - 1) as u32
                });
                let s = std::mem::take(&mut self.subnets[i as usize]);
                self.subnets[i as usize] = s.evolve(e);
            }
            ResourceEvent::Quota(e) => {
                let i = *self.index.quotas.entry(id).or_insert_with(|| {
                    self.quotas.push(Quota::default());
                    (self.quotas.len() - 1) as u32
                });
                let q = std::mem::take(&mut self.quotas[i as usize]);
                self.quotas[i as usize] = q.evolve(e);
            }
        }
    }

    fn on_pool(&mut self, event: &RecordedEvent, id: Uuid, e: &PoolEvent) {
        let i = *self.index.pools.entry(id).or_insert_with(|| {
            self.pools.push(PoolView {
                pool: Pool::default(),
                history: Vec::new(),
            });
            (self.pools.len() - 1) as u32
        });
        let view = &mut self.pools[i as usize];
        view.pool = std::mem::take(&mut view.pool).evolve(e);
        let counts = view.history.last().map_or([0; 3], |p| p.counts);
        push_point(view, event, counts);
    }

    /// Moves one CI between status slots of its pool's counts.
    fn count(
        &mut self,
        event: &RecordedEvent,
        pool: Option<Uuid>,
        from: Option<usize>,
        to: Option<usize>,
    ) {
        let Some(&i) = pool.and_then(|p| self.index.pools.get(&p)) else {
            return;
        };
        let view = &mut self.pools[i as usize];
        let mut counts = view.now().counts;
        if let Some(f) = from {
            counts[f] = counts[f].saturating_sub(1);
        }
        if let Some(t) = to {
            counts[t] += 1;
        }
        push_point(view, event, counts);
    }

    fn on_ci(&mut self, event: &RecordedEvent, id: Uuid, e: &CiEvent) {
        let at = event.metadata.recorded_at;
        if let CiEvent::CiRegistered { record, .. } = e {
            let n = self.cis.len() as u32;
            self.index.cis.insert(id, n);
            self.cis.push(CiView {
                state: ConfigurationItem::default(),
                registered_at: at,
                updated_at: at,
            });
            self.index
                .by_type
                .entry(record.ci_type)
                .or_default()
                .push(n);
            self.index
                .by_department
                .entry(record.department.clone())
                .or_default()
                .push(n);
            if let Some(p) = &record.project {
                self.index.by_project.entry(p.clone()).or_default().push(n);
            }
            if let Some(o) = &record.owner {
                self.index.by_owner.entry(o.clone()).or_default().push(n);
            }
        }
        let Some(&n) = self.index.cis.get(&id) else {
            return;
        };
        let before = &self.cis[n as usize].state;
        let (old_status, old_pool, old_lease) = (
            before.status,
            before
                .record
                .as_ref()
                .and_then(|r| r.placement)
                .map(|p| p.pool_id),
            before.lease().map(|l| l.end),
        );
        let view = &mut self.cis[n as usize];
        view.state = std::mem::take(&mut view.state).evolve(e);
        view.updated_at = at;
        let state = &view.state;
        let record = state.record.as_ref().expect("registered above");
        let (status, pool, lease) = (
            state.status,
            record.placement.map(|p| p.pool_id),
            state.lease().map(|l| l.end),
        );
        let department = record.department.clone();
        let project = record.project.clone();
        self.usage
            .on_ci(event, n, e, &department, project.as_deref());
        match e {
            CiEvent::CiRegistered { .. } => self.count(event, pool, None, Some(0)),
            CiEvent::CiMoved { .. } => {
                self.count(event, old_pool, Some(status_slot(status)), None);
                self.count(event, pool, None, Some(status_slot(status)));
            }
            CiEvent::CiStopped { .. } | CiEvent::CiStarted | CiEvent::CiRetired { .. } => {
                self.count(
                    event,
                    pool,
                    Some(status_slot(old_status)),
                    Some(status_slot(status)),
                );
            }
            CiEvent::CiRelated { relation, target } => {
                self.dependents.entry(*target).or_default().push(Link {
                    relation: *relation,
                    source: id,
                    added: event.position,
                    removed: None,
                });
            }
            CiEvent::CiUnrelated { relation, target } => {
                if let Some(link) = self.dependents.get_mut(target).and_then(|links| {
                    links
                        .iter_mut()
                        .rev()
                        .find(|l| l.source == id && l.relation == *relation && l.removed.is_none())
                }) {
                    link.removed = Some(event.position);
                }
            }
            _ => {}
        }
        if old_pool != pool {
            if let Some(p) = old_pool {
                self.index.by_pool.entry(p).or_default().remove(&n);
            }
        }
        if let Some(p) = pool {
            self.index.by_pool.entry(p).or_default().insert(n);
        }
        if let Some(end) = old_lease {
            self.index.leases.remove(&(end, n));
        }
        if let (Some(end), false) = (lease, status == CiStatus::Retired) {
            self.index.leases.insert((end, n));
        }
    }

    /// Rebuilds the lookups after the lists were read back from a snapshot.
    pub(crate) fn restored(&mut self) {
        let mut index = Index::default();
        for (i, p) in self.pools.iter().enumerate() {
            index
                .pools
                .insert(p.pool.pool_id.unwrap_or_default(), i as u32);
        }
        for (i, s) in self.subnets.iter().enumerate() {
            index
                .subnets
                .insert(s.subnet_id.unwrap_or_default(), i as u32);
        }
        for (i, q) in self.quotas.iter().enumerate() {
            index.quotas.insert(
                opsledger_domain::resources::quota::quota_id(&q.department),
                i as u32,
            );
        }
        for (n, view) in self.cis.iter().enumerate() {
            let n = n as u32;
            let Some(record) = &view.state.record else {
                continue;
            };
            index.cis.insert(view.id(), n);
            index.by_type.entry(record.ci_type).or_default().push(n);
            index
                .by_department
                .entry(record.department.clone())
                .or_default()
                .push(n);
            if let Some(p) = &record.project {
                index.by_project.entry(p.clone()).or_default().push(n);
            }
            if let Some(o) = &record.owner {
                index.by_owner.entry(o.clone()).or_default().push(n);
            }
            if let Some(p) = record.placement {
                index.by_pool.entry(p.pool_id).or_default().insert(n);
            }
            if let (Some(lease), false) = (record.lease, view.state.status == CiStatus::Retired) {
                index.leases.insert((lease.end, n));
            }
        }
        self.index = index;
        self.usage.restored();
    }
}

fn push_point(view: &mut PoolView, event: &RecordedEvent, counts: [u32; 3]) {
    let pool = &view.pool;
    let figures = || -> BTreeMap<String, (u64, u64)> {
        pool.units
            .iter()
            .map(|(u, n)| {
                (
                    u.clone(),
                    (*n, pool.units_allocated.get(u).copied().unwrap_or(0)),
                )
            })
            .collect()
    };
    let units = match view.history.last() {
        Some(last) if pool.units.is_empty() && last.units.is_empty() => last.units.clone(),
        Some(last) if *last.units == figures() => last.units.clone(),
        _ => Arc::new(figures()),
    };
    let point = PoolPoint {
        position: event.position,
        at: event.metadata.recorded_at,
        capacity: pool.capacity,
        limit: pool.limit(),
        allocated: pool.allocated,
        reserved: pool.reserved,
        counts,
        units,
    };
    match view.history.last_mut() {
        Some(last) if last.position == event.position => *last = point,
        _ => view.history.push(point),
    }
}

/// Reads.
impl Inventory {
    /// The last position recorded at or before `at` (0: nothing yet).
    pub fn position_at(&self, at: DateTime<Utc>) -> u64 {
        let i = self.timeline.partition_point(|(t, _)| *t <= at);
        i.checked_sub(1).map_or(0, |i| self.timeline[i].1)
    }

    /// When the event at `position` was recorded (the latest time of the log when the
    /// position is beyond it).
    pub fn time_at(&self, position: u64) -> Option<DateTime<Utc>> {
        let i = self.timeline.partition_point(|(_, p)| *p < position);
        self.timeline
            .get(i)
            .or(self.timeline.last())
            .map(|(t, _)| *t)
    }

    pub fn pools(&self) -> &[PoolView] {
        &self.pools
    }

    pub fn pool(&self, id: Uuid) -> Option<&PoolView> {
        self.index.pools.get(&id).map(|&i| &self.pools[i as usize])
    }

    pub fn ci(&self, id: Uuid) -> Option<&CiView> {
        self.index.cis.get(&id).map(|&i| &self.cis[i as usize])
    }

    pub fn subnets(&self) -> &[Subnet] {
        &self.subnets
    }

    pub fn subnet(&self, id: Uuid) -> Option<&Subnet> {
        self.index
            .subnets
            .get(&id)
            .map(|&i| &self.subnets[i as usize])
    }

    pub fn quotas(&self) -> &[Quota] {
        &self.quotas
    }

    /// Whether `department` holds resources or has a quota.
    pub fn knows_department(&self, department: &str) -> bool {
        self.index.by_department.contains_key(department) || self.quota(department).is_some()
    }

    pub fn quota(&self, department: &str) -> Option<&Quota> {
        let id = opsledger_domain::resources::quota::quota_id(department);
        self.index
            .quotas
            .get(&id)
            .map(|&i| &self.quotas[i as usize])
    }

    /// Active leases ending at or before `until`, soonest first.
    pub fn leases_ending_by(&self, until: DateTime<Utc>) -> impl Iterator<Item = &CiView> + '_ {
        self.index
            .leases
            .iter()
            .take_while(move |(end, _)| *end <= until)
            .map(|(_, n)| &self.cis[*n as usize])
    }

    /// The relationships pointing at `target` that held at `position`.
    pub fn dependents_at(&self, target: Uuid, position: u64) -> impl Iterator<Item = &Link> + '_ {
        self.dependents
            .get(&target)
            .into_iter()
            .flatten()
            .filter(move |l| l.held_at(position))
    }

    /// Everything that depends on `target`, directly or through others (the impact of its
    /// failure), each once, nearest first, with the depth it was found at.
    pub fn impact(&self, target: Uuid, position: u64) -> Vec<(Uuid, Relation, usize)> {
        let mut seen = std::collections::HashSet::from([target]);
        let mut found = Vec::new();
        let mut frontier = vec![target];
        let mut depth = 1;
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for t in frontier {
                for link in self.dependents_at(t, position) {
                    if seen.insert(link.source) {
                        found.push((link.source, link.relation, depth));
                        next.push(link.source);
                    }
                }
            }
            frontier = next;
            depth += 1;
        }
        found
    }

    /// The CIs that match `filter`, in registration order, after the cursor `after`:
    /// read through the most selective index the filter names.
    pub fn search<'a>(
        &'a self,
        filter: &'a CiFilter,
        after: Option<u32>,
    ) -> impl Iterator<Item = (u32, &'a CiView)> + 'a {
        let start = after.map_or(0, |a| a + 1);
        let mut lists: Vec<&'a [u32]> = Vec::new();
        let empty: &'a [u32] = &[];
        let mut pool_list = None;
        if let Some(t) = filter.ci_type {
            lists.push(self.index.by_type.get(&t).map_or(empty, Vec::as_slice));
        }
        if let Some(d) = &filter.department {
            lists.push(self.index.by_department.get(d).map_or(empty, Vec::as_slice));
        }
        if let Some(p) = &filter.project {
            lists.push(self.index.by_project.get(p).map_or(empty, Vec::as_slice));
        }
        if let Some(p) = filter.pool {
            pool_list = Some(self.index.by_pool.get(&p));
        }
        let from = |list: &'a [u32]| {
            let i = list.partition_point(|n| *n < start);
            list[i..].iter().copied()
        };
        let smallest = lists.iter().map(|l| l.len()).min();
        let walled = filter
            .reader
            .as_ref()
            .filter(|a| !cmdb::sees_every_department(a))
            .map(|a| {
                let department = a.department.as_deref().unwrap_or_default();
                (
                    self.index
                        .by_department
                        .get(department)
                        .map_or(empty, Vec::as_slice),
                    self.index.by_owner.get(&a.id).map_or(empty, Vec::as_slice),
                )
            })
            .filter(|(d, o)| smallest.is_none_or(|s| d.len() + o.len() < s));
        let candidates: Box<dyn Iterator<Item = u32> + 'a> =
            match (lists.iter().min_by_key(|l| l.len()), pool_list, walled) {
                (_, Some(None), _) => Box::new(std::iter::empty()),
                (Some(list), Some(Some(set)), _) if list.len() <= set.len() => Box::new(from(list)),
                (_, Some(Some(set)), _) => Box::new(set.range(start..).copied()),
                (_, None, Some((department, owned))) => {
                    Box::new(union(from(department), from(owned)))
                }
                (Some(list), None, None) => Box::new(from(list)),
                (None, None, None) => Box::new(start..self.cis.len() as u32),
            };
        let needle = filter.name_contains.as_ref().map(|n| n.to_lowercase());
        candidates
            .map(move |n| (n, &self.cis[n as usize]))
            .filter(move |(_, view)| matches(view, filter, needle.as_deref()))
    }
}

/// Two ascending walks merged into one, each number once.
fn union<'a>(
    a: impl Iterator<Item = u32> + 'a,
    b: impl Iterator<Item = u32> + 'a,
) -> impl Iterator<Item = u32> + 'a {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek().copied(), b.peek().copied()) {
        (Some(x), Some(y)) if x == y => {
            b.next();
            a.next()
        }
        (Some(x), Some(y)) if y < x => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

impl CiFilter {
    /// Whether `view` passes every filter (for a view folded apart from the index, e.g.
    /// as of a past position).
    pub fn admits(&self, view: &CiView) -> bool {
        let needle = self.name_contains.as_ref().map(|n| n.to_lowercase());
        matches(view, self, needle.as_deref())
    }

    /// The filters on what a CI never changes (type, department, project, owner), which the
    /// index answers for any moment.
    pub fn fixed_part(&self) -> CiFilter {
        CiFilter {
            ci_type: self.ci_type,
            department: self.department.clone(),
            project: self.project.clone(),
            reader: self.reader.clone(),
            ..CiFilter::default()
        }
    }
}

fn matches(view: &CiView, filter: &CiFilter, needle: Option<&str>) -> bool {
    let Some(record) = &view.state.record else {
        return false;
    };
    filter.reader.as_ref().is_none_or(|a| record.visible_to(a))
        && filter.ci_type.is_none_or(|t| record.ci_type == t)
        && filter
            .department
            .as_ref()
            .is_none_or(|d| &record.department == d)
        && filter
            .project
            .as_ref()
            .is_none_or(|p| record.project.as_ref() == Some(p))
        && filter
            .pool
            .is_none_or(|p| record.placement.map(|x| x.pool_id) == Some(p))
        && filter.status.is_none_or(|s| view.state.status == s)
        && filter.attributes.iter().all(|(name, value)| {
            record
                .attributes
                .get(name)
                .is_some_and(|a| a.matches(value))
        })
        && needle.is_none_or(|n| record.name.to_lowercase().contains(n))
}

impl ResourceEvent {
    /// Decodes an event of a resource stream; `None` for other streams.
    pub fn of(event: &RecordedEvent) -> Option<Result<ResourceEvent, serde_json::Error>> {
        use opsledger_domain::kernel::aggregate::DomainEvent;
        Some(match crate::stream_kind(&event.stream) {
            Pool::KIND => PoolEvent::from_recorded(event).map(ResourceEvent::Pool),
            ConfigurationItem::KIND => CiEvent::from_recorded(event).map(ResourceEvent::Ci),
            Subnet::KIND => SubnetEvent::from_recorded(event).map(ResourceEvent::Subnet),
            Quota::KIND => QuotaEvent::from_recorded(event).map(ResourceEvent::Quota),
            _ => return None,
        })
    }
}

/// A pool's outlook: how full it is and, at the growth of the recent past, when it runs out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Forecast {
    /// Allocated (and reserved) over what may be allocated, in the fullest dimension, 0–1.
    pub allocation_rate: f64,
    /// The dimension that runs out first.
    pub dimension: &'static str,
    /// Net growth of that dimension per day over the window (negative: shrinking).
    pub growth_per_day: f64,
    /// When that dimension runs out at this growth; `None` when it does not grow.
    pub runs_out_at: Option<DateTime<Utc>>,
}

impl PoolView {
    /// The outlook at `as_of` from the pool's points over the `window_days` before it: a
    /// least-squares line through each dimension's allocation, and where it meets the limit.
    pub fn forecast(
        &self,
        as_of: crate::resources::usage::AsOf,
        window_days: u32,
    ) -> Option<Forecast> {
        let now = self.at(as_of.position)?.clone();
        let since = as_of.at - chrono::Duration::days(i64::from(window_days));
        let end = self
            .history
            .partition_point(|p| p.position <= as_of.position);
        let start = self.history[..end].partition_point(|p| p.at < since);
        let points = &self.history[start..end];
        let dims: [Dimension; 3] = [
            ("cpu_cores", |a| a.cpu_cores),
            ("memory_gib", |a| a.memory_gib),
            ("storage_gib", |a| a.storage_gib),
        ];
        let mut best: Option<Forecast> = None;
        for (dimension, get) in dims {
            let limit = get(&now.limit) as f64;
            if limit == 0.0 {
                continue;
            }
            let used = (get(&now.allocated) + get(&now.reserved)) as f64;
            let rate = used / limit;
            let slope = slope(points.iter().map(|p| {
                let days = (p.at - as_of.at).num_seconds() as f64 / 86_400.0;
                (days, (get(&p.allocated) + get(&p.reserved)) as f64)
            }));
            let runs_out_at = (slope > 0.0).then(|| {
                let days = ((limit - used) / slope).min(365.0 * 100.0);
                as_of.at + chrono::Duration::seconds((days * 86_400.0) as i64)
            });
            let candidate = Forecast {
                allocation_rate: rate,
                dimension,
                growth_per_day: slope,
                runs_out_at,
            };
            let sooner = match (&best, runs_out_at) {
                (None, _) => true,
                (Some(b), Some(t)) => b.runs_out_at.is_none_or(|bt| t < bt),
                (Some(b), None) => b.runs_out_at.is_none() && rate > b.allocation_rate,
            };
            if sooner {
                best = Some(candidate);
            }
        }
        best
    }
}

/// A dimension's name and how to read it from an amount.
type Dimension = (&'static str, fn(&Amount) -> u64);

/// The least-squares slope of `(x, y)` points; 0 with fewer than two distinct x.
fn slope(points: impl Iterator<Item = (f64, f64)>) -> f64 {
    let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (x, y) in points {
        n += 1.0;
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
    }
    let d = n * sxx - sx * sx;
    if n < 2.0 || d.abs() < 1e-12 {
        0.0
    } else {
        (n * sxy - sx * sy) / d
    }
}
