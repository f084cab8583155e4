//! Usage for analysts: every stretch of time a configuration item held capacity in a pool
//! (from its registration or move in, to its move out or retirement), by department,
//! project and pool. Figures for a window sum each stretch's overlap with it, so a past
//! month's figures are fixed by the events and never change on replay.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use opsledger_domain::resources::cmdb::CiEvent;
use opsledger_domain::resources::pool::Amount;
use opsledger_domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const OPEN: u64 = u64::MAX;
const NO_PROJECT: u32 = u32::MAX;

/// A stretch of time a CI held `amount` in `pool`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    pub ci: u32,
    pub pool: Uuid,
    department: u32,
    project: u32,
    pub amount: Amount,
    /// Seconds since the epoch.
    pub start: i64,
    pub end: i64,
    pub start_position: u64,
    /// `u64::MAX` while it lasts.
    pub end_position: u64,
}

/// How usage rows are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Pool,
    Department,
    Project,
}

/// Which stretches count; every given filter must hold.
#[derive(Clone, Debug, Default)]
pub struct UsageFilter {
    pub department: Option<String>,
    pub project: Option<String>,
    pub pool: Option<Uuid>,
}

/// The moment the figures are taken at: a log position and its time.
#[derive(Clone, Copy, Debug)]
pub struct AsOf {
    pub position: u64,
    pub at: DateTime<Utc>,
}

/// One row of a usage table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsageRow {
    pub pool: Option<Uuid>,
    pub department: Option<String>,
    pub project: Option<String>,
    pub cpu_core_hours: f64,
    pub memory_gib_hours: f64,
    pub storage_gib_days: f64,
    /// Distinct configuration items that held capacity in the window.
    pub resources: u32,
    /// The most held at any one moment of the window, per dimension.
    pub peak: Amount,
}

/// Every stretch, indexed.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Usage {
    intervals: Vec<Interval>,
    departments: Vec<String>,
    /// (department, project name).
    projects: Vec<(u32, String)>,
    by_department: Vec<Vec<u32>>,
    by_project: Vec<Vec<u32>>,
    by_pool: HashMap<Uuid, Vec<u32>>,
    /// The open stretch of each CI that holds capacity.
    open: HashMap<u32, u32>,
    #[serde(skip)]
    department_ids: HashMap<String, u32>,
    #[serde(skip)]
    project_ids: HashMap<(u32, String), u32>,
}

impl Usage {
    pub(crate) fn on_ci(
        &mut self,
        event: &RecordedEvent,
        ci: u32,
        e: &CiEvent,
        department: &str,
        project: Option<&str>,
    ) {
        let at = event.metadata.recorded_at.timestamp();
        let open_to = match e {
            CiEvent::CiRegistered { record, .. } => record.placement,
            CiEvent::CiMoved { to, .. } => {
                self.close(ci, at, event.position);
                Some(*to)
            }
            CiEvent::CiRetired { .. } => {
                self.close(ci, at, event.position);
                None
            }
            _ => None,
        };
        let Some(placement) = open_to else {
            return;
        };
        let d = self.department_id(department);
        let p = project.map_or(NO_PROJECT, |p| self.project_id(d, p));
        let i = self.intervals.len() as u32;
        self.intervals.push(Interval {
            ci,
            pool: placement.pool_id,
            department: d,
            project: p,
            amount: placement.amount,
            start: at,
            end: i64::MAX,
            start_position: event.position,
            end_position: OPEN,
        });
        let intervals = &self.intervals;
        by_start(&mut self.by_department[d as usize], i, intervals);
        if p != NO_PROJECT {
            by_start(&mut self.by_project[p as usize], i, intervals);
        }
        by_start(
            self.by_pool.entry(placement.pool_id).or_default(),
            i,
            intervals,
        );
        self.open.insert(ci, i);
    }

    fn close(&mut self, ci: u32, at: i64, position: u64) {
        if let Some(i) = self.open.remove(&ci) {
            let interval = &mut self.intervals[i as usize];
            interval.end = at;
            interval.end_position = position;
        }
    }

    fn department_id(&mut self, name: &str) -> u32 {
        if let Some(&d) = self.department_ids.get(name) {
            return d;
        }
        let d = self.departments.len() as u32;
        self.departments.push(name.to_owned());
        self.by_department.push(Vec::new());
        self.department_ids.insert(name.to_owned(), d);
        d
    }

    fn project_id(&mut self, department: u32, name: &str) -> u32 {
        let key = (department, name.to_owned());
        if let Some(&p) = self.project_ids.get(&key) {
            return p;
        }
        let p = self.projects.len() as u32;
        self.projects.push(key.clone());
        self.by_project.push(Vec::new());
        self.project_ids.insert(key, p);
        p
    }

    pub(crate) fn restored(&mut self) {
        self.department_ids = (self.departments.iter().cloned()).zip(0..).collect();
        self.project_ids = self.projects.iter().cloned().zip(0..).collect();
    }

    /// Usage in `[from, to)` grouped by `group`, of the stretches `filter` admits, as the
    /// log stood at `as_of` (stretches still open then end at its time), largest CPU use
    /// first.
    pub fn table(
        &self,
        group: GroupBy,
        filter: &UsageFilter,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        as_of: AsOf,
    ) -> Vec<UsageRow> {
        let department = match &filter.department {
            Some(name) => match self.department_ids.get(name) {
                Some(&d) => Some(d),
                None => return Vec::new(),
            },
            None => None,
        };
        let admits = |iv: &Interval| {
            department.is_none_or(|d| iv.department == d)
                && filter.project.as_ref().is_none_or(|p| {
                    iv.project != NO_PROJECT && &self.projects[iv.project as usize].1 == p
                })
                && filter.pool.is_none_or(|p| iv.pool == p)
        };
        let groups: Vec<(UsageRow, &[u32])> = match group {
            GroupBy::Department => (self.departments.iter().zip(&self.by_department))
                .filter(|(name, _)| filter.department.as_ref().is_none_or(|d| d == *name))
                .map(|(name, list)| (row(None, Some(name.clone()), None), list.as_slice()))
                .collect(),
            GroupBy::Project => (self.projects.iter().zip(&self.by_project))
                .filter(|((d, name), _)| {
                    department.is_none_or(|x| x == *d)
                        && filter.project.as_ref().is_none_or(|p| p == name)
                })
                .map(|((d, name), list)| {
                    let department = self.departments[*d as usize].clone();
                    (
                        row(None, Some(department), Some(name.clone())),
                        list.as_slice(),
                    )
                })
                .collect(),
            GroupBy::Pool => (self.by_pool.iter())
                .filter(|(pool, _)| filter.pool.is_none_or(|p| p == **pool))
                .map(|(pool, list)| (row(Some(*pool), None, None), list.as_slice()))
                .collect(),
        };
        let (from, to) = (from.timestamp(), to.timestamp().min(as_of.at.timestamp()));
        if to <= from {
            return Vec::new();
        }
        let mut rows: Vec<UsageRow> = groups
            .into_iter()
            .filter_map(|(mut row, list)| {
                // Stretches starting at or after the window's end cannot overlap it.
                let before_end = list.partition_point(|&i| self.intervals[i as usize].start < to);
                let stretches = list[..before_end]
                    .iter()
                    .map(|&i| self.intervals[i as usize])
                    .filter(|iv| iv.start_position <= as_of.position && admits(iv))
                    .map(|mut iv| {
                        if iv.end_position > as_of.position {
                            iv.end = i64::MAX;
                        }
                        iv
                    })
                    .filter(|iv| iv.start < to && iv.end > from);
                sum(&mut row, stretches, from, to);
                (row.resources > 0).then_some(row)
            })
            .collect();
        rows.sort_by(|a, b| b.cpu_core_hours.total_cmp(&a.cpu_core_hours));
        rows
    }
}

/// Adds stretch `i` to a group's list, which is kept in order of start (events come in
/// time order, so this is nearly always a push): a window's query stops at its end.
fn by_start(list: &mut Vec<u32>, i: u32, intervals: &[Interval]) {
    let start = intervals[i as usize].start;
    let at = list.partition_point(|&j| intervals[j as usize].start <= start);
    list.insert(at, i);
}

fn row(pool: Option<Uuid>, department: Option<String>, project: Option<String>) -> UsageRow {
    UsageRow {
        pool,
        department,
        project,
        cpu_core_hours: 0.0,
        memory_gib_hours: 0.0,
        storage_gib_days: 0.0,
        resources: 0,
        peak: Amount::default(),
    }
}

/// Adds the stretches' use of `[from, to)` to `row`, and their peak.
fn sum(row: &mut UsageRow, stretches: impl Iterator<Item = Interval>, from: i64, to: i64) {
    let (mut cpu, mut memory, mut storage) = (0u128, 0u128, 0u128);
    let mut level = Amount::default();
    let mut changes: Vec<(i64, bool, Amount)> = Vec::new();
    let mut cis: Vec<u32> = Vec::new();
    for iv in stretches {
        let seconds = (iv.end.min(to) - iv.start.max(from)) as u128;
        cpu += seconds * u128::from(iv.amount.cpu_cores);
        memory += seconds * u128::from(iv.amount.memory_gib);
        storage += seconds * u128::from(iv.amount.storage_gib);
        cis.push(iv.ci);
        if iv.start <= from {
            level = level.plus(iv.amount);
        } else {
            changes.push((iv.start, true, iv.amount));
        }
        if iv.end < to {
            changes.push((iv.end, false, iv.amount));
        }
    }
    // Releases before allocations at the same second: a move is not a peak.
    changes.sort_unstable_by_key(|(t, up, _)| (*t, *up));
    let mut peak = level;
    for (_, up, amount) in changes {
        level = if up {
            level.plus(amount)
        } else {
            level.minus(amount)
        };
        peak = Amount {
            cpu_cores: peak.cpu_cores.max(level.cpu_cores),
            memory_gib: peak.memory_gib.max(level.memory_gib),
            storage_gib: peak.storage_gib.max(level.storage_gib),
        };
    }
    row.cpu_core_hours = cpu as f64 / 3600.0;
    row.memory_gib_hours = memory as f64 / 3600.0;
    row.storage_gib_days = storage as f64 / 86_400.0;
    // A CI moved between pools of one department holds two stretches: count it once.
    cis.sort_unstable();
    cis.dedup();
    row.resources = cis.len() as u32;
    row.peak = peak;
}
