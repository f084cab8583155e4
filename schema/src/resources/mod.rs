//! Resources over GraphQL: pools, configuration items, subnets, quotas, usage and the
//! fulfilment of requests for new resources. Every view takes `asOf` (a log position or a
//! time) and answers as the system would have then.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use async_graphql::{
    ComplexObject, Context, Enum, InputObject, Json, Object, Result, SimpleObject, ID,
};
use chrono::{DateTime, Duration, NaiveTime, Utc};
use opsledger_domain::kernel::aggregate::Aggregate;
use opsledger_domain::kernel::aggregate::DomainEvent;
use opsledger_domain::requests::request::{
    Request as RequestAggregate, RequestCommand, RequestDetails, RequestEvent, RequestStatus,
};
use opsledger_domain::resources::cmdb::{
    AttrValue, CiCommand, CiRecord, ConfigurationItem as CiAggregate, Lease,
};
use opsledger_domain::resources::ipam::{Subnet as SubnetAggregate, SubnetCommand};
use opsledger_domain::resources::pool::{Amount, Overcommit, Pool as PoolAggregate, PoolCommand};
use opsledger_domain::resources::quota::{Quota as DomainQuota, QuotaCommand};
use opsledger_domain::Actor;
use opsledger_projections::resources::inventory::{
    CiFilter, CiView, Forecast, PoolPoint, PoolView,
};
use opsledger_projections::resources::usage::{AsOf as UsageAsOf, GroupBy, UsageFilter, UsageRow};
use opsledger_projections::ReadModels;
use uuid::Uuid;

use crate::audit::{event_node, Event};
use crate::kit::errors::{bad_input, error, internal, Code};
use crate::kit::ids;
use crate::kit::{actor, current_models, cursor, ledger, models, page, require, Page};
use crate::kit::{command_id, domain_context, new_id, Payload};
use crate::Deploy;
use opsledger_domain::resources::sizing::{
    amount_of, ci_type_of, requested_amount, requested_attributes,
};

#[derive(Default)]
pub struct ResourceQuery;

#[derive(Default)]
pub struct ResourceMutation;

// ---------------------------------------------------------------------------- asOf

/// A past moment: a log position or a time (the last event recorded at or before it).
#[derive(InputObject, Clone, Copy, Default)]
pub struct AsOfInput {
    /// Range: 0–9007199254740991.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"position\", crate::kit::bounds::POSITION)"
    ))]
    pub position: Option<u64>,
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"time\")"))]
    pub time: Option<DateTime<Utc>>,
}

/// The moment a view is taken at.
fn resolve_as_of(
    m: &ReadModels,
    as_of: Option<AsOfInput>,
    now: DateTime<Utc>,
) -> Result<UsageAsOf> {
    let inventory = &m.inventory;
    match as_of.unwrap_or_default() {
        AsOfInput {
            position: Some(_),
            time: Some(_),
        } => Err(bad_input("asOf", "give a position or a time, not both")),
        AsOfInput {
            position: Some(position),
            ..
        } => {
            if position > m.position {
                return Err(bad_input(
                    "asOf.position",
                    format!("{position} is beyond the log's head, {}", m.position),
                ));
            }
            // The moment that event was recorded; for the head, the present.
            let at = if position == m.position {
                now
            } else {
                inventory.time_at(position).unwrap_or(now)
            };
            Ok(UsageAsOf { position, at })
        }
        AsOfInput { time: Some(at), .. } => Ok(UsageAsOf {
            position: inventory.position_at(at),
            at,
        }),
        AsOfInput { .. } => Ok(UsageAsOf {
            position: m.position,
            at: now,
        }),
    }
}

// ---------------------------------------------------------------------------- types

/// CPU cores, memory and storage.
#[derive(SimpleObject, Clone, Copy)]
pub struct Capacity {
    pub cpu_cores: u64,
    pub memory_gib: u64,
    pub storage_gib: u64,
}

impl From<Amount> for Capacity {
    fn from(a: Amount) -> Self {
        Capacity {
            cpu_cores: a.cpu_cores,
            memory_gib: a.memory_gib,
            storage_gib: a.storage_gib,
        }
    }
}

#[derive(InputObject, Clone, Copy)]
pub struct CapacityInput {
    /// Range: 0–1000000.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"cpuCores\", opsledger_domain::kernel::limits::CPU_CORES)"
    ))]
    pub cpu_cores: u64,
    /// Range: 0–1073741824.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"memoryGib\", opsledger_domain::kernel::limits::GIB)"
    ))]
    pub memory_gib: u64,
    /// Range: 0–1073741824.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"storageGib\", opsledger_domain::kernel::limits::GIB)"
    ))]
    pub storage_gib: u64,
}

impl From<CapacityInput> for Amount {
    fn from(c: CapacityInput) -> Self {
        Amount {
            cpu_cores: c.cpu_cores,
            memory_gib: c.memory_gib,
            storage_gib: c.storage_gib,
        }
    }
}

/// The kinds of pool in the service plan.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::resources::pool::PoolKind")]
pub enum PoolKind {
    PhysicalServer,
    VirtualMachine,
    Storage,
    Network,
    Database,
    Middleware,
    Application,
}

/// A counted thing a pool holds (licences, VLANs).
#[derive(SimpleObject)]
pub struct UnitCount {
    pub unit: String,
    pub total: u64,
    pub allocated: u64,
    pub free: u64,
}

/// A counted thing and how many.
#[derive(InputObject, Clone)]
pub struct UnitInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"unit\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub unit: String,
    /// Range: 0–1000000.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"count\", opsledger_domain::kernel::limits::COUNT)"
    ))]
    pub count: u64,
}

fn units(input: Option<Vec<UnitInput>>) -> opsledger_domain::resources::pool::Units {
    input
        .unwrap_or_default()
        .into_iter()
        .map(|u| (u.unit, u.count))
        .collect()
}

/// Configuration items placed in a pool, by status.
#[derive(SimpleObject)]
pub struct ResourceCounts {
    pub running: u32,
    pub stopped: u32,
    pub retired: u32,
}

/// How full a pool is and when, at the recent growth, it runs out.
#[derive(SimpleObject)]
pub struct PoolForecast {
    /// Allocated and reserved over what may be allocated, in the fullest dimension (0–1).
    pub allocation_rate: f64,
    /// The dimension that runs out first: `cpu_cores`, `memory_gib` or `storage_gib`.
    pub dimension: String,
    /// Its net growth per day over the window.
    pub growth_per_day: f64,
    /// When it runs out at that growth; null when it does not grow.
    pub runs_out_at: Option<DateTime<Utc>>,
    /// The allocation rate is at or above the threshold asked for.
    pub above_threshold: bool,
}

/// A resource pool, as it stood at the moment asked for.
#[derive(SimpleObject)]
pub struct Pool {
    pub id: ID,
    pub name: String,
    pub kind: PoolKind,
    /// The physical capacity.
    pub capacity: Capacity,
    /// CPU and memory overcommit, per mille (1000 = none).
    pub cpu_overcommit_permille: u32,
    pub memory_overcommit_permille: u32,
    /// What may be allocated in all: capacity with overcommit.
    pub total: Capacity,
    pub allocated: Capacity,
    pub reserved: Capacity,
    pub free: Capacity,
    /// Counted things: licences, VLANs.
    pub units: Vec<UnitCount>,
    pub resources: ResourceCounts,
    pub forecast: Option<PoolForecast>,
    /// The log position of the pool's last change at that moment.
    pub position: u64,
}

fn pool_node(
    view: &PoolView,
    point: &PoolPoint,
    forecast: Option<Forecast>,
    threshold: f64,
) -> Pool {
    let p = &view.pool;
    Pool {
        id: ids::global(PoolAggregate::KIND, p.pool_id.unwrap_or_default()),
        name: p.name.clone(),
        kind: p
            .kind
            .unwrap_or(opsledger_domain::resources::pool::PoolKind::VirtualMachine)
            .into(),
        capacity: point.capacity.into(),
        cpu_overcommit_permille: p.overcommit.cpu_permille,
        memory_overcommit_permille: p.overcommit.memory_permille,
        total: point.limit.into(),
        allocated: point.allocated.into(),
        reserved: point.reserved.into(),
        free: point.free().into(),
        units: point
            .units
            .iter()
            .map(|(unit, (total, allocated))| UnitCount {
                unit: unit.clone(),
                total: *total,
                allocated: *allocated,
                free: total.saturating_sub(*allocated),
            })
            .collect(),
        resources: ResourceCounts {
            running: point.counts[0],
            stopped: point.counts[1],
            retired: point.counts[2],
        },
        forecast: forecast.map(|f| PoolForecast {
            allocation_rate: f.allocation_rate,
            dimension: f.dimension.to_owned(),
            growth_per_day: f.growth_per_day,
            runs_out_at: f.runs_out_at,
            above_threshold: f.allocation_rate >= threshold,
        }),
        position: point.position,
    }
}

/// What a configuration item is.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::resources::cmdb::CiType")]
pub enum CiType {
    Host,
    VirtualMachine,
    StorageVolume,
    Network,
    Database,
    Middleware,
    Application,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::resources::cmdb::CiStatus")]
pub enum CiStatus {
    Running,
    Stopped,
    Retired,
}

/// How one configuration item depends on another.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::resources::cmdb::Relation")]
pub enum Relation {
    RunsOn,
    Uses,
    ConnectsTo,
    PartOf,
}

/// A relationship from one CI to another.
#[derive(SimpleObject)]
pub struct Relationship {
    pub relation: Relation,
    pub from: ID,
    pub to: ID,
}

/// Something that depends on a CI, directly (depth 1) or through others.
#[derive(SimpleObject)]
pub struct Impact {
    pub ci: ID,
    pub name: String,
    /// How the nearest link depends.
    pub relation: Relation,
    pub depth: u32,
}

/// A service period.
#[derive(SimpleObject)]
pub struct LeaseNode {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A configuration item, as it stood at the moment asked for.
#[derive(SimpleObject)]
#[graphql(complex, name = "ConfigurationItem")]
pub struct Ci {
    pub id: ID,
    #[graphql(name = "type")]
    pub ci_type: CiType,
    pub name: String,
    pub status: CiStatus,
    /// Typed attributes by name: whole numbers, text, or lists of either.
    pub attributes: Json<BTreeMap<String, AttrValue>>,
    pub pool: Option<ID>,
    pub allocated: Option<Capacity>,
    pub ip_addresses: Vec<String>,
    pub department: String,
    pub project: Option<String>,
    pub owner: Option<String>,
    pub watchers: Vec<String>,
    pub request: Option<ID>,
    pub lease: Option<LeaseNode>,
    /// What this CI depends on.
    pub relationships: Vec<Relationship>,
    /// The position the view reflects.
    pub position: u64,
    #[graphql(skip)]
    uuid: Uuid,
}

fn ci_node(id: Uuid, state: &CiAggregate, position: u64) -> Option<Ci> {
    let r = state.record.as_ref()?;
    Some(Ci {
        id: ids::global(CiAggregate::KIND, id),
        ci_type: r.ci_type.into(),
        name: r.name.clone(),
        status: state.status.into(),
        attributes: Json(r.attributes.clone()),
        pool: r
            .placement
            .map(|p| ids::global(PoolAggregate::KIND, p.pool_id)),
        allocated: r.placement.map(|p| p.amount.into()),
        ip_addresses: r.addresses.iter().map(|a| a.address.to_string()).collect(),
        department: r.department.clone(),
        project: r.project.clone(),
        owner: r.owner.clone(),
        watchers: r.watchers.clone(),
        request: r
            .request_id
            .map(|id| ids::global(RequestAggregate::KIND, id)),
        lease: r.lease.map(|l| LeaseNode {
            start: l.start,
            end: l.end,
        }),
        relationships: state
            .relations
            .iter()
            .map(|(relation, to)| Relationship {
                relation: (*relation).into(),
                from: ids::global(CiAggregate::KIND, id),
                to: ids::global(CiAggregate::KIND, *to),
            })
            .collect(),
        position,
        uuid: id,
    })
}

pub(crate) fn view_node(view: &CiView, position: u64) -> Option<Ci> {
    ci_node(view.id(), &view.state, position)
}

#[ComplexObject]
impl Ci {
    /// What depends on this CI (directly, then through others): the impact of its failure,
    /// as the relationships stood at the same moment.
    async fn impact(&self, ctx: &Context<'_>) -> Result<Vec<Impact>> {
        let m = ledger(ctx).models().await;
        Ok(m.inventory
            .impact(self.uuid, self.position)
            .into_iter()
            .map(|(ci, relation, depth)| Impact {
                ci: ids::global(CiAggregate::KIND, ci),
                name: m
                    .inventory
                    .ci(ci)
                    .and_then(|v| v.state.record.as_ref())
                    .map(|r| r.name.clone())
                    .unwrap_or_default(),
                relation: relation.into(),
                depth: depth as u32,
            })
            .collect())
    }

    /// Every change of this CI, oldest first, up to the moment of the view.
    async fn history(&self, ctx: &Context<'_>) -> Result<Vec<Event>> {
        let stream = format!("{}-{}", CiAggregate::KIND, self.uuid);
        let events = ledger(ctx).stream(&stream).await.map_err(internal)?;
        Ok(events
            .into_iter()
            .take_while(|e| e.position <= self.position)
            .map(event_node)
            .collect())
    }
}

/// An address held in a subnet.
#[derive(SimpleObject)]
pub struct AddressAllocation {
    pub address: String,
    pub ci: ID,
}

/// A subnet of the IP address plan.
#[derive(SimpleObject)]
pub struct Subnet {
    pub id: ID,
    pub name: String,
    pub cidr: String,
    pub first: String,
    pub last: String,
    pub gateway: Option<String>,
    pub vlan: Option<u16>,
    /// Allocatable addresses (the gateway left out).
    pub size: u64,
    pub used: u64,
    pub allocations: Vec<AddressAllocation>,
}

/// A pool as it stood at `as_of` (anyone signed in; for its field and for `node(id:)`).
pub(crate) fn pool_by_id(
    ctx: &Context<'_>,
    m: &ReadModels,
    id: Uuid,
    as_of: Option<AsOfInput>,
) -> Result<Option<Pool>> {
    actor(ctx)?;
    let as_of = resolve_as_of(m, as_of, ledger(ctx).now())?;
    Ok(m.inventory.pool(id).and_then(|v| {
        let point = v.at(as_of.position)?;
        Some(pool_node(v, point, v.forecast(as_of, 30), 0.8))
    }))
}

/// A subnet of the address plan, as it stands (those who see every department).
pub(crate) fn subnet_by_id(ctx: &Context<'_>, m: &ReadModels, id: Uuid) -> Result<Option<Subnet>> {
    require(
        actor(ctx)?,
        &opsledger_domain::resources::cmdb::SEES_EVERY_DEPARTMENT,
    )?;
    Ok(m.inventory.subnet(id).map(subnet_node))
}

fn subnet_node(s: &SubnetAggregate) -> Subnet {
    Subnet {
        id: ids::global(SubnetAggregate::KIND, s.subnet_id.unwrap_or_default()),
        name: s.name.clone(),
        cidr: s.cidr.map(|c| c.to_string()).unwrap_or_default(),
        first: Ipv4Addr::from(s.first).to_string(),
        last: Ipv4Addr::from(s.last).to_string(),
        gateway: s.gateway.map(|g| g.to_string()),
        vlan: s.vlan,
        size: s.size(),
        used: s.allocated.len() as u64,
        allocations: s
            .allocated
            .iter()
            .map(|(a, ci)| AddressAllocation {
                address: a.to_string(),
                ci: ids::global(CiAggregate::KIND, *ci),
            })
            .collect(),
    }
}

/// A project's quota within its department.
#[derive(SimpleObject)]
pub struct ProjectQuota {
    pub project: String,
    pub limit: Option<Capacity>,
    pub used: Capacity,
}

/// A department's quota and what it holds.
#[derive(SimpleObject)]
pub struct Quota {
    pub department: String,
    /// Null: no department-wide limit.
    pub limit: Option<Capacity>,
    pub used: Capacity,
    pub projects: Vec<ProjectQuota>,
}

fn quota_node(q: &DomainQuota) -> Quota {
    let mut projects: BTreeMap<&String, ProjectQuota> = BTreeMap::new();
    for (p, used) in &q.project_used {
        projects.insert(
            p,
            ProjectQuota {
                project: p.clone(),
                limit: q.project_limits.get(p).map(|l| (*l).into()),
                used: (*used).into(),
            },
        );
    }
    for (p, limit) in &q.project_limits {
        projects.entry(p).or_insert_with(|| ProjectQuota {
            project: p.clone(),
            limit: Some((*limit).into()),
            used: Amount::default().into(),
        });
    }
    Quota {
        department: q.department.clone(),
        limit: q.limit.map(Into::into),
        used: q.used.into(),
        projects: projects.into_values().collect(),
    }
}

// ---------------------------------------------------------------------------- usage

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum UsageGroup {
    Pool,
    Department,
    Project,
}

/// Rows per period of this length; the whole range in one row when absent.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum UsagePeriod {
    Day,
    Week,
    Month,
}

/// One row of a usage table.
#[derive(SimpleObject)]
pub struct Usage {
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub pool: Option<ID>,
    pub pool_name: Option<String>,
    pub department: Option<String>,
    pub project: Option<String>,
    pub cpu_core_hours: f64,
    pub memory_gib_hours: f64,
    pub storage_gib_days: f64,
    /// Configuration items that held capacity in the period.
    pub resources: u32,
    /// The most held at one moment of the period, per dimension.
    pub peak: Capacity,
}

/// What a usage table asks for; the GraphQL query and `GET /reports/usage.csv` share it.
#[derive(Clone, Debug)]
pub struct UsageParams {
    pub group_by: UsageGroup,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub period: Option<UsagePeriod>,
    pub department: Option<String>,
    pub project: Option<String>,
    pub pool: Option<Uuid>,
    pub as_of_position: Option<u64>,
    pub as_of_time: Option<DateTime<Utc>>,
}

/// The most periods one table may have.
const MAX_PERIODS: usize = 1_000;

fn periods(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    period: Option<UsagePeriod>,
) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    if to <= from {
        return Err(bad_input("to", "must be after from"));
    }
    let Some(period) = period else {
        return Ok(vec![(from, to)]);
    };
    let mut out = Vec::new();
    let mut start = from;
    while start < to {
        let end = match period {
            UsagePeriod::Day => start + Duration::days(1),
            UsagePeriod::Week => start + Duration::days(7),
            UsagePeriod::Month => start
                .checked_add_months(chrono::Months::new(1))
                .ok_or_else(|| bad_input("to", "is out of range"))?,
        };
        out.push((start, end.min(to)));
        if out.len() > MAX_PERIODS {
            return Err(bad_input(
                "period",
                format!("gives more than {MAX_PERIODS} periods; ask for a longer period or a shorter range"),
            ));
        }
        start = end;
    }
    Ok(out)
}

/// The rows of a usage table for `actor`, who sees only their department unless their
/// role sees all.
///
/// # Errors
/// Bad input, naming the parameter, or a department the actor may not see.
pub fn usage_rows(
    m: &ReadModels,
    actor: &Actor,
    params: &UsageParams,
    now: DateTime<Utc>,
) -> Result<Vec<Usage>> {
    let mut department = params.department.clone();
    if let Some(own) = crate::kit::access::ci_department(actor) {
        match &department {
            Some(d) if *d != own => {
                return Err(error(
                    Code::Forbidden,
                    format!("you may see the usage of {own} only"),
                ))
            }
            _ => department = Some(own),
        }
    }
    let as_of = resolve_as_of(
        m,
        Some(AsOfInput {
            position: params.as_of_position,
            time: params.as_of_time,
        }),
        now,
    )?;
    let filter = UsageFilter {
        department,
        project: params.project.clone(),
        pool: params.pool,
    };
    let group = match params.group_by {
        UsageGroup::Pool => GroupBy::Pool,
        UsageGroup::Department => GroupBy::Department,
        UsageGroup::Project => GroupBy::Project,
    };
    let mut rows = Vec::new();
    for (start, end) in periods(params.from, params.to, params.period)? {
        for row in m.inventory.usage.table(group, &filter, start, end, as_of) {
            rows.push(usage_node(m, start, end, row));
        }
    }
    Ok(rows)
}

fn usage_node(m: &ReadModels, start: DateTime<Utc>, end: DateTime<Utc>, row: UsageRow) -> Usage {
    Usage {
        period_start: start,
        period_end: end,
        pool: row.pool.map(|p| ids::global(PoolAggregate::KIND, p)),
        pool_name: row
            .pool
            .and_then(|p| m.inventory.pool(p))
            .map(|v| v.pool.name.clone()),
        department: row.department,
        project: row.project,
        cpu_core_hours: row.cpu_core_hours,
        memory_gib_hours: row.memory_gib_hours,
        storage_gib_days: row.storage_gib_days,
        resources: row.resources,
        peak: row.peak.into(),
    }
}

/// A usage table as CSV, with a header row.
///
/// # Errors
/// As [`usage_rows`]: the message names what is wrong.
pub fn usage_csv(
    m: &ReadModels,
    actor: &Actor,
    params: &UsageParams,
    now: DateTime<Utc>,
) -> std::result::Result<String, (Code, String)> {
    let rows = usage_rows(m, actor, params, now).map_err(|e| {
        let code = match e.extensions.as_ref().and_then(|x| x.get("code")) {
            Some(async_graphql::Value::String(c)) if c == "FORBIDDEN" => Code::Forbidden,
            _ => Code::BadUserInput,
        };
        (code, e.message)
    })?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = [
        "period_start",
        "period_end",
        "pool",
        "pool_name",
        "department",
        "project",
        "cpu_core_hours",
        "memory_gib_hours",
        "storage_gib_days",
        "resources",
        "peak_cpu_cores",
        "peak_memory_gib",
        "peak_storage_gib",
    ];
    let internal = |e: csv::Error| (Code::Internal, e.to_string());
    out.write_record(header).map_err(internal)?;
    for r in rows {
        out.write_record([
            r.period_start.to_rfc3339(),
            r.period_end.to_rfc3339(),
            r.pool.map(|p| p.0).unwrap_or_default(),
            r.pool_name.unwrap_or_default(),
            r.department.unwrap_or_default(),
            r.project.unwrap_or_default(),
            format!("{:.3}", r.cpu_core_hours),
            format!("{:.3}", r.memory_gib_hours),
            format!("{:.3}", r.storage_gib_days),
            r.resources.to_string(),
            r.peak.cpu_cores.to_string(),
            r.peak.memory_gib.to_string(),
            r.peak.storage_gib.to_string(),
        ])
        .map_err(internal)?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| (Code::Internal, e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| (Code::Internal, e.to_string()))
}

// ---------------------------------------------------------------------------- queries

/// A CI search; every given filter must hold.
#[derive(InputObject, Default)]
pub struct CiFilterInput {
    #[graphql(name = "type")]
    pub ci_type: Option<CiType>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"department\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub department: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"project\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub project: Option<String>,
    pub pool_id: Option<ID>,
    pub status: Option<CiStatus>,
    /// Attributes and the value each has (or, for a list, contains), compared as text.
    pub attributes: Option<Vec<AttributeFilter>>,
    /// A part of the name, case-insensitive.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"nameContains\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub name_contains: Option<String>,
}

#[derive(InputObject)]
pub struct AttributeFilter {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"name\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub name: String,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"value\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub value: String,
}

#[Object]
impl ResourceQuery {
    /// Every resource pool, as it stood at `asOf` (default: now), with its forecast over
    /// the `windowDays` before (default 30) and whether it is at or above
    /// `alertThreshold` (default 0.8) allocated.
    async fn pools(
        &self,
        ctx: &Context<'_>,
        as_of: Option<AsOfInput>,
        #[graphql(
            desc = "Range: 1–3650.",
            validator(
                custom = "crate::kit::bounds::within(\"windowDays\", crate::kit::bounds::WINDOW_DAYS)"
            )
        )]
        window_days: Option<u32>,
        #[graphql(
            desc = "Range: 0–1.",
            validator(
                custom = "crate::kit::bounds::within_f(\"alertThreshold\", crate::kit::bounds::SHARE)"
            )
        )]
        alert_threshold: Option<f64>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Vec<Pool>> {
        actor(ctx)?;
        let m = models(ctx, at_least).await?;
        let as_of = resolve_as_of(&m, as_of, ledger(ctx).now())?;
        let window = window_days.unwrap_or(30);
        let threshold = alert_threshold.unwrap_or(0.8);
        Ok(m.inventory
            .pools()
            .iter()
            .filter_map(|v| {
                let point = v.at(as_of.position)?;
                Some(pool_node(v, point, v.forecast(as_of, window), threshold))
            })
            .collect())
    }

    /// One pool, as it stood at `asOf`.
    async fn pool(
        &self,
        ctx: &Context<'_>,
        id: ID,
        as_of: Option<AsOfInput>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Option<Pool>> {
        actor(ctx)?;
        let uuid = ids::parse("id", PoolAggregate::KIND, &id)?;
        pool_by_id(ctx, &*models(ctx, at_least).await?, uuid, as_of)
    }

    /// Configuration items matching `filter`, in registration order. Requesters and
    /// approvers see their own department's and the ones they own.
    ///
    /// With `asOf` a past moment, each item is read as it stood then (from its own
    /// stream, page by page): slower than the present, which reads the index.
    async fn configuration_items(
        &self,
        ctx: &Context<'_>,
        filter: Option<CiFilterInput>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"after\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        after: Option<String>,
        as_of: Option<AsOfInput>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<Ci>> {
        let actor = actor(ctx)?;
        let f = filter.unwrap_or_default();
        let mut filter = CiFilter {
            ci_type: f.ci_type.map(Into::into),
            department: f.department,
            project: f.project,
            pool: f
                .pool_id
                .map(|p| ids::parse("filter.poolId", PoolAggregate::KIND, &p))
                .transpose()?,
            status: f.status.map(Into::into),
            attributes: f
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|a| (a.name, a.value))
                .collect(),
            name_contains: f.name_contains,
            reader: None,
        };
        crate::kit::access::narrow_cis(actor, &mut filter)?;
        let after = cursor(after)?.map(|a| a as u32);
        let m = models(ctx, at_least).await?;
        let position = m.position;
        let as_of = resolve_as_of(&m, as_of, ledger(ctx).now())?;
        if as_of.position < position {
            let fixed = filter.fixed_part();
            let candidates: Vec<(u32, Uuid, DateTime<Utc>)> = m
                .inventory
                .search(&fixed, after)
                .map(|(n, v)| (n, v.id(), v.registered_at))
                .collect();
            drop(m);
            let wanted = crate::kit::page_size(first, 50)?;
            let mut found: Vec<(usize, Ci)> = Vec::new();
            for (n, id, registered_at) in candidates {
                let then = CiView {
                    state: fold_until(ctx, id, as_of.position).await?,
                    registered_at,
                    updated_at: registered_at,
                };
                if filter.admits(&then) {
                    found.extend(view_node(&then, as_of.position).map(|c| (n as usize, c)));
                    if found.len() > wanted {
                        break;
                    }
                }
            }
            return page(
                found.into_iter(),
                |c| c,
                after.is_some(),
                first,
                as_of.position,
            );
        }
        let items = m
            .inventory
            .search(&filter, after)
            .map(|(n, v)| (n as usize, v));
        page(
            items,
            |v| view_node(v, position).expect("a listed CI is registered"),
            after.is_some(),
            first,
            position,
        )
    }

    /// One configuration item, as it stood at `asOf` (its attributes, status, lease and
    /// relationships then), with its history up to that moment.
    async fn configuration_item(
        &self,
        ctx: &Context<'_>,
        id: ID,
        as_of: Option<AsOfInput>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Option<Ci>> {
        let actor = actor(ctx)?;
        let uuid = ids::parse("id", CiAggregate::KIND, &id)?;
        let (as_of, current) = {
            let m = models(ctx, at_least).await?;
            let as_of = resolve_as_of(&m, as_of, ledger(ctx).now())?;
            let current = m
                .inventory
                .ci(uuid)
                .filter(|v| crate::kit::access::sees_ci(actor, &v.state))
                .and_then(|v| view_node(v, m.position));
            (
                as_of.position,
                current.filter(|_| as_of.position == m.position),
            )
        };
        let node = match current {
            Some(node) => Some(node),
            None => {
                let state: CiAggregate = fold_until(ctx, uuid, as_of).await?;
                crate::kit::access::sees_ci(actor, &state)
                    .then(|| ci_node(uuid, &state, as_of))
                    .flatten()
            }
        };
        Ok(node)
    }

    /// The subnets of the IP address plan and who holds which address (operators), as
    /// they stood at `asOf`.
    async fn subnets(
        &self,
        ctx: &Context<'_>,
        as_of: Option<AsOfInput>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Vec<Subnet>> {
        require(
            actor(ctx)?,
            &opsledger_domain::resources::cmdb::SEES_EVERY_DEPARTMENT,
        )?;
        let (now, past) = {
            let m = models(ctx, at_least).await?;
            let as_of = resolve_as_of(&m, as_of, ledger(ctx).now())?;
            if as_of.position == m.position {
                return Ok(m.inventory.subnets().iter().map(subnet_node).collect());
            }
            let ids: Vec<Uuid> = m
                .inventory
                .subnets()
                .iter()
                .filter_map(|s| s.subnet_id)
                .collect();
            (ids, as_of.position)
        };
        let mut out = Vec::new();
        for id in now {
            let s: SubnetAggregate = fold_until(ctx, id, past).await?;
            if s.subnet_id.is_some() {
                out.push(subnet_node(&s));
            }
        }
        Ok(out)
    }

    /// Department quotas and what each holds, as they stood at `asOf`; requesters see
    /// their own department's.
    async fn quotas(
        &self,
        ctx: &Context<'_>,
        as_of: Option<AsOfInput>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Vec<Quota>> {
        let own = crate::kit::access::ci_department(actor(ctx)?);
        let visible = |q: &DomainQuota| own.as_ref().is_none_or(|d| *d == q.department);
        let (departments, past) = {
            let m = models(ctx, at_least).await?;
            let as_of = resolve_as_of(&m, as_of, ledger(ctx).now())?;
            if as_of.position == m.position {
                return Ok(m
                    .inventory
                    .quotas()
                    .iter()
                    .filter(|q| visible(q))
                    .map(quota_node)
                    .collect());
            }
            let departments: Vec<String> = m
                .inventory
                .quotas()
                .iter()
                .filter(|q| visible(q))
                .map(|q| q.department.clone())
                .collect();
            (departments, as_of.position)
        };
        let mut out = Vec::new();
        for department in departments {
            let id = opsledger_domain::resources::quota::quota_id(&department);
            let q: DomainQuota = fold_until(ctx, id, past).await?;
            if !q.department.is_empty() {
                out.push(quota_node(&q));
            }
        }
        Ok(out)
    }

    /// Allocated CPU-core-hours, memory-GiB-hours, storage-GiB-days, resources and peak
    /// allocation in `[from, to)`, by pool, department or project, per period when asked,
    /// as the log stood at `asOf`. The same table is `GET /reports/usage.csv`.
    #[expect(
        clippy::too_many_arguments,
        reason = "a GraphQL field takes each of its arguments as a parameter"
    )]
    async fn usage(
        &self,
        ctx: &Context<'_>,
        group_by: UsageGroup,
        #[graphql(
            desc = "Range: 1970-01-01–9999-12-31.",
            validator(custom = "crate::kit::bounds::dated(\"from\")")
        )]
        from: DateTime<Utc>,
        #[graphql(
            desc = "Range: 1970-01-01–9999-12-31.",
            validator(custom = "crate::kit::bounds::dated(\"to\")")
        )]
        to: DateTime<Utc>,
        period: Option<UsagePeriod>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"department\", opsledger_domain::kernel::limits::NAME_CHARS)"
            )
        )]
        department: Option<String>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"project\", opsledger_domain::kernel::limits::NAME_CHARS)"
            )
        )]
        project: Option<String>,
        pool_id: Option<ID>,
        as_of: Option<AsOfInput>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Vec<Usage>> {
        let actor = actor(ctx)?;
        let as_of = as_of.unwrap_or_default();
        let params = UsageParams {
            group_by,
            from,
            to,
            period,
            department,
            project,
            pool: pool_id
                .map(|p| ids::parse("poolId", PoolAggregate::KIND, &p))
                .transpose()?,
            as_of_position: as_of.position,
            as_of_time: as_of.time,
        };
        let m = models(ctx, at_least).await?;
        usage_rows(&m, actor, &params, ledger(ctx).now())
    }
}

// ---------------------------------------------------------------------------- mutations

#[derive(InputObject)]
pub struct CreatePoolInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"name\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub name: String,
    pub kind: PoolKind,
    pub capacity: CapacityInput,
    /// Per mille; default 1000 (none).
    ///
    /// Range: 1000–10000.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"cpuOvercommitPermille\", opsledger_domain::kernel::limits::PERMILLE)"
    ))]
    pub cpu_overcommit_permille: Option<u32>,
    /// Range: 1000–10000.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"memoryOvercommitPermille\", opsledger_domain::kernel::limits::PERMILLE)"
    ))]
    pub memory_overcommit_permille: Option<u32>,
    /// Counted things it holds: licences, VLANs.
    pub units: Option<Vec<UnitInput>>,
}

#[derive(InputObject)]
pub struct SetPoolUnitsInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub pool_id: ID,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"unit\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub unit: String,
    /// Range: 0–1000000.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"count\", opsledger_domain::kernel::limits::COUNT)"
    ))]
    pub count: u64,
}

#[derive(InputObject)]
pub struct ResizePoolInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub pool_id: ID,
    pub capacity: CapacityInput,
}

#[derive(InputObject)]
pub struct SetPoolReserveInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub pool_id: ID,
    /// Held back from allocation; all zero frees it.
    pub reserved: CapacityInput,
}

#[derive(InputObject)]
pub struct CreateSubnetInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"name\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub name: String,
    /// E.g. `10.120.0.0/24`.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"cidr\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub cidr: String,
    /// The allocatable range; default: the subnet's hosts.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"first\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub first: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"last\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub last: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"gateway\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub gateway: Option<String>,
    /// Range: 1–4094.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"vlan\", opsledger_domain::kernel::limits::VLAN)"
    ))]
    pub vlan: Option<u16>,
}

#[derive(InputObject)]
pub struct SetQuotaInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"department\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub department: String,
    /// A project of the department; the department as a whole when absent.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"project\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub project: Option<String>,
    /// Null lifts the limit.
    pub limit: Option<CapacityInput>,
}

#[derive(InputObject)]
pub struct RegisterCiInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    #[graphql(name = "type")]
    pub ci_type: CiType,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"name\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub name: String,
    /// By name: whole numbers, text, or lists of either. `cpu`, `memory_gib` and
    /// `storage_gib` (or `disks_gib`) are what it takes from its pool.
    pub attributes: Option<Json<BTreeMap<String, serde_json::Value>>>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"department\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub department: String,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"project\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub project: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"owner\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub owner: Option<String>,
    /// At most 200 items of at most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"watchers\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub watchers: Option<Vec<String>>,
    pub pool_id: Option<ID>,
    /// A subnet to take an address from (the lowest free, or `address`).
    pub subnet_id: Option<ID>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"address\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub address: Option<String>,
    /// The CI it runs on (a host).
    pub runs_on: Option<ID>,
    /// Counted things it takes from its pool (licences, VLANs).
    pub units: Option<Vec<UnitInput>>,
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"leaseStart\")"))]
    pub lease_start: Option<DateTime<Utc>>,
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"leaseEnd\")"))]
    pub lease_end: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct UpdateCiInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub ci_id: ID,
    /// Attributes to set; a null value removes one.
    pub attributes: Json<BTreeMap<String, serde_json::Value>>,
}

#[derive(InputObject)]
pub struct RelateCiInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub ci_id: ID,
    pub relation: Relation,
    pub target_id: ID,
}

#[derive(InputObject)]
pub struct MoveCiInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub ci_id: ID,
    pub pool_id: ID,
}

#[derive(InputObject)]
pub struct CiReasonInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub ci_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
}

/// One resource an operator records for a fulfilled request.
#[derive(InputObject)]
pub struct FulfilledResourceInput {
    /// The hostname.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"name\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub name: String,
    pub pool_id: ID,
    pub subnet_id: Option<ID>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"address\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub address: Option<String>,
    /// The host it runs on.
    pub runs_on: Option<ID>,
    /// More attributes, beyond those the request chose.
    pub attributes: Option<Json<BTreeMap<String, serde_json::Value>>>,
    /// Users told of its lease end and reclamation besides the requester.
    ///
    /// At most 200 items of at most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"watchers\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub watchers: Option<Vec<String>>,
    /// Counted things it takes from its pool (licences, VLANs).
    pub units: Option<Vec<UnitInput>>,
}

#[derive(InputObject)]
pub struct FulfilRequestInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub request_id: ID,
    /// One per resource the request asks for.
    pub resources: Vec<FulfilledResourceInput>,
}

/// Attributes from JSON, each checked against its expected kind.
fn attributes(
    field: &str,
    json: Option<Json<BTreeMap<String, serde_json::Value>>>,
) -> Result<BTreeMap<String, Option<AttrValue>>> {
    let mut out = BTreeMap::new();
    for (name, value) in json.map(|j| j.0).unwrap_or_default() {
        let parsed = match value {
            serde_json::Value::Null => None,
            v => Some(serde_json::from_value::<AttrValue>(v).map_err(|_| {
                bad_input(
                    &format!("{field}.{name}"),
                    "must be a whole number, text, or a list of either",
                )
            })?),
        };
        out.insert(name, parsed);
    }
    let set = out.iter().filter_map(|(k, v)| Some((k, v.as_ref()?)));
    opsledger_domain::resources::cmdb::check_attributes(set).map_err(|e| {
        bad_input(
            &format!("{field}.{}", e.field.trim_start_matches("attributes.")),
            e.problem,
        )
    })?;
    Ok(out)
}

fn parse_address(field: &str, address: Option<String>) -> Result<Option<Ipv4Addr>> {
    address
        .map(|a| {
            a.parse()
                .map_err(|_| bad_input(field, format!("{a:?} is not an IPv4 address")))
        })
        .transpose()
}

/// The CMDB's own stop and start record what operators did by hand; a VM's owner runs it
/// through the driver (`stopVm`, `startVm`), so the CMDB says what the driver did.
fn operators_only(ctx: &Context<'_>) -> Result<()> {
    if actor(ctx)?.operates() {
        Ok(())
    } else {
        Err(error(
            Code::Forbidden,
            "only operators change the CMDB; a VM's owner uses startVm and stopVm",
        ))
    }
}

fn payload(client_mutation_id: Option<String>, kind: &str, id: Uuid, position: u64) -> Payload {
    Payload {
        client_mutation_id,
        id: ids::global(kind, id),
        position,
    }
}

#[Object]
impl ResourceMutation {
    /// Creates a resource pool (operator).
    async fn create_pool(&self, ctx: &Context<'_>, input: CreatePoolInput) -> Result<Payload> {
        let pool_id = new_id(ctx, &actor(ctx)?.id, input.client_mutation_id.as_deref());
        let command = PoolCommand::CreatePool {
            pool_id,
            name: input.name,
            kind: input.kind.into(),
            capacity: input.capacity.into(),
            overcommit: Overcommit {
                cpu_permille: input.cpu_overcommit_permille.unwrap_or(1000),
                memory_permille: input.memory_overcommit_permille.unwrap_or(1000),
            },
            units: units(input.units),
        };
        on_pool(ctx, input.client_mutation_id, pool_id, command).await
    }

    /// Changes a pool's capacity; it cannot shrink below what is allocated and reserved.
    async fn resize_pool(&self, ctx: &Context<'_>, input: ResizePoolInput) -> Result<Payload> {
        let pool_id = ids::parse("poolId", PoolAggregate::KIND, &input.pool_id)?;
        let command = PoolCommand::ResizePool {
            capacity: input.capacity.into(),
        };
        on_pool(ctx, input.client_mutation_id, pool_id, command).await
    }

    /// Holds capacity of a pool back from allocation (e.g. for failover).
    async fn set_pool_reserve(
        &self,
        ctx: &Context<'_>,
        input: SetPoolReserveInput,
    ) -> Result<Payload> {
        let pool_id = ids::parse("poolId", PoolAggregate::KIND, &input.pool_id)?;
        let command = PoolCommand::SetReserve {
            reserved: input.reserved.into(),
        };
        on_pool(ctx, input.client_mutation_id, pool_id, command).await
    }

    /// Sets how many of a counted thing (licences, VLANs) a pool holds; not below what
    /// is allocated (operator).
    async fn set_pool_units(&self, ctx: &Context<'_>, input: SetPoolUnitsInput) -> Result<Payload> {
        let pool_id = ids::parse("poolId", PoolAggregate::KIND, &input.pool_id)?;
        let command = PoolCommand::SetUnits {
            unit: input.unit,
            count: input.count,
        };
        on_pool(ctx, input.client_mutation_id, pool_id, command).await
    }

    /// Adds a subnet to the IP address plan (operator).
    async fn create_subnet(&self, ctx: &Context<'_>, input: CreateSubnetInput) -> Result<Payload> {
        let domain = domain_context(ctx)?;
        let cidr: ipnet::Ipv4Net = input.cidr.parse().map_err(|_| {
            bad_input(
                "cidr",
                format!("{:?} is not an IPv4 network like 10.0.0.0/24", input.cidr),
            )
        })?;
        let cidr = cidr.trunc();
        let hosts = || cidr.hosts();
        let first = match parse_address("first", input.first)? {
            Some(a) => a,
            None => hosts()
                .next()
                .ok_or_else(|| bad_input("cidr", "has no hosts"))?,
        };
        let last = match parse_address("last", input.last)? {
            Some(a) => a,
            None => hosts()
                .last()
                .ok_or_else(|| bad_input("cidr", "has no hosts"))?,
        };
        let cmid = input.client_mutation_id.as_deref();
        let subnet_id = new_id(ctx, &domain.actor.id, cmid);
        let command = SubnetCommand::CreateSubnet {
            subnet_id,
            name: input.name,
            cidr,
            first,
            last,
            gateway: parse_address("gateway", input.gateway)?,
            vlan: input.vlan,
        };
        let key = command_id(ctx, &domain.actor.id, cmid);
        let w = ledger(ctx).subnet(subnet_id, command, &domain, key).await?;
        Ok(payload(
            input.client_mutation_id,
            SubnetAggregate::KIND,
            subnet_id,
            w.position,
        ))
    }

    /// Sets (or lifts) a department's or project's quota (operator or admin).
    async fn set_quota(&self, ctx: &Context<'_>, input: SetQuotaInput) -> Result<Payload> {
        let domain = domain_context(ctx)?;
        let id = opsledger_domain::resources::quota::quota_id(&input.department);
        let command = QuotaCommand::SetQuota {
            department: input.department.clone(),
            project: input.project,
            limit: input.limit.map(Into::into),
        };
        let key = command_id(ctx, &domain.actor.id, input.client_mutation_id.as_deref());
        let w = ledger(ctx)
            .quota(&input.department, command, &domain, key)
            .await?;
        Ok(payload(
            input.client_mutation_id,
            DomainQuota::KIND,
            id,
            w.position,
        ))
    }

    /// Records a configuration item: with a pool, it takes its capacity (and its
    /// department's quota); with a subnet, an address. All or nothing (operator).
    async fn register_configuration_item(
        &self,
        ctx: &Context<'_>,
        input: RegisterCiInput,
    ) -> Result<Payload> {
        let domain = domain_context(ctx)?;
        let attributes: BTreeMap<String, AttrValue> = attributes("attributes", input.attributes)?
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
        let lease = match (input.lease_start, input.lease_end) {
            (Some(start), Some(end)) => Some(Lease { start, end }),
            (None, None) => None,
            (None, Some(end)) => Some(Lease {
                start: domain.now,
                end,
            }),
            (Some(_), None) => return Err(bad_input("leaseEnd", "a lease needs an end")),
        };
        let cmid = input.client_mutation_id.as_deref();
        let ci_id = new_id(ctx, &domain.actor.id, cmid);
        let deploy = Deploy {
            ci_id,
            amount: amount_of(&attributes),
            units: units(input.units),
            record: CiRecord {
                ci_type: input.ci_type.into(),
                name: input.name,
                attributes,
                placement: None,
                addresses: Vec::new(),
                department: input.department,
                project: input.project,
                owner: input.owner,
                watchers: input.watchers.unwrap_or_default(),
                request_id: None,
                lease,
            },
            pool_id: input
                .pool_id
                .map(|p| ids::parse("poolId", PoolAggregate::KIND, &p))
                .transpose()?,
            subnet_id: input
                .subnet_id
                .map(|s| ids::parse("subnetId", SubnetAggregate::KIND, &s))
                .transpose()?,
            address: parse_address("address", input.address)?,
            runs_on: input
                .runs_on
                .map(|h| ids::parse("runsOn", CiAggregate::KIND, &h))
                .transpose()?,
            over_quota_approved: false,
        };
        let w = ledger(ctx).deploy(deploy, &domain).await?;
        Ok(payload(
            input.client_mutation_id,
            CiAggregate::KIND,
            ci_id,
            w.position,
        ))
    }

    /// Sets or removes attributes of a configuration item; each change is recorded with
    /// its value before and after (operator).
    async fn update_configuration_item(
        &self,
        ctx: &Context<'_>,
        input: UpdateCiInput,
    ) -> Result<Payload> {
        let ci_id = ids::parse("ciId", CiAggregate::KIND, &input.ci_id)?;
        let changes = attributes("attributes", Some(input.attributes))?;
        on_ci(
            ctx,
            input.client_mutation_id,
            ci_id,
            CiCommand::UpdateAttributes { changes },
        )
        .await
    }

    /// Records that one CI depends on another (operator).
    async fn relate_configuration_items(
        &self,
        ctx: &Context<'_>,
        input: RelateCiInput,
    ) -> Result<Payload> {
        let ci_id = ids::parse("ciId", CiAggregate::KIND, &input.ci_id)?;
        let target = ids::parse("targetId", CiAggregate::KIND, &input.target_id)?;
        {
            let m = current_models(ctx).await?;
            if m.inventory.ci(target).is_none() {
                return Err(bad_input(
                    "targetId",
                    format!(
                        "there is no configuration item {}",
                        input.target_id.as_str()
                    ),
                ));
            }
        }
        let command = CiCommand::Relate {
            relation: input.relation.into(),
            target,
        };
        on_ci(ctx, input.client_mutation_id, ci_id, command).await
    }

    /// Removes a relationship (operator).
    async fn unrelate_configuration_items(
        &self,
        ctx: &Context<'_>,
        input: RelateCiInput,
    ) -> Result<Payload> {
        let ci_id = ids::parse("ciId", CiAggregate::KIND, &input.ci_id)?;
        let target = ids::parse("targetId", CiAggregate::KIND, &input.target_id)?;
        let command = CiCommand::Unrelate {
            relation: input.relation.into(),
            target,
        };
        on_ci(ctx, input.client_mutation_id, ci_id, command).await
    }

    /// Moves a configuration item to another pool; its capacity moves with it (operator).
    async fn move_configuration_item(
        &self,
        ctx: &Context<'_>,
        input: MoveCiInput,
    ) -> Result<Payload> {
        let domain = domain_context(ctx)?;
        let ci_id = ids::parse("ciId", CiAggregate::KIND, &input.ci_id)?;
        let pool_id = ids::parse("poolId", PoolAggregate::KIND, &input.pool_id)?;
        let w = ledger(ctx).move_ci(ci_id, pool_id, &domain).await?;
        Ok(payload(
            input.client_mutation_id,
            CiAggregate::KIND,
            ci_id,
            w.position,
        ))
    }

    /// Stops a configuration item (operator).
    async fn stop_configuration_item(
        &self,
        ctx: &Context<'_>,
        input: CiReasonInput,
    ) -> Result<Payload> {
        operators_only(ctx)?;
        let ci_id = ids::parse("ciId", CiAggregate::KIND, &input.ci_id)?;
        let command = CiCommand::Stop {
            reason: input.reason,
        };
        on_ci(ctx, input.client_mutation_id, ci_id, command).await
    }

    /// Starts a stopped configuration item (operator).
    async fn start_configuration_item(
        &self,
        ctx: &Context<'_>,
        input: CiReasonInput,
    ) -> Result<Payload> {
        operators_only(ctx)?;
        let ci_id = ids::parse("ciId", CiAggregate::KIND, &input.ci_id)?;
        on_ci(ctx, input.client_mutation_id, ci_id, CiCommand::Start).await
    }

    /// Takes a configuration item out of service: stopped, its capacity, address and
    /// quota given back, retired (operator).
    async fn retire_configuration_item(
        &self,
        ctx: &Context<'_>,
        input: CiReasonInput,
    ) -> Result<Payload> {
        let domain = domain_context(ctx)?;
        let ci_id = ids::parse("ciId", CiAggregate::KIND, &input.ci_id)?;
        if input.reason.trim().is_empty() {
            return Err(bad_input("reason", "a retirement needs a reason"));
        }
        let w = ledger(ctx).reclaim(ci_id, &input.reason, &domain).await?;
        Ok(payload(
            input.client_mutation_id,
            CiAggregate::KIND,
            ci_id,
            w.position,
        ))
    }

    /// Fulfils an approved request for new resources: each resource is placed in its pool
    /// (taking capacity, quota and an address), recorded in the CMDB with the request's
    /// configuration and its service period as lease, and the request is marked fulfilled.
    /// A retry after a failure goes on where it stopped (operator).
    async fn fulfil_request(
        &self,
        ctx: &Context<'_>,
        input: FulfilRequestInput,
    ) -> Result<Payload> {
        let domain = domain_context(ctx)?;
        let request_id = ids::parse("requestId", RequestAggregate::KIND, &input.request_id)?;
        // Decided on the request as its stream has it, not as a read model may lag.
        let events = ledger(ctx)
            .stream(&format!("{}-{request_id}", RequestAggregate::KIND))
            .await
            .map_err(internal)?;
        let mut state = RequestAggregate::default();
        let mut details = None;
        for e in &events {
            let event = RequestEvent::from_recorded(e).map_err(internal)?;
            if let RequestEvent::RequestSubmitted { details: d, .. } = &event {
                details = Some(d.clone());
            }
            state = state.evolve(&event);
        }
        let Some(details) = details else {
            return Err(bad_input(
                "requestId",
                format!("there is no request {}", input.request_id.as_str()),
            ));
        };
        if state.status != RequestStatus::Approved {
            return Err(error(
                Code::Conflict,
                format!("the request is {:?}, not approved", state.status),
            ));
        }
        let (requester, department, over_quota) =
            (state.requester, state.department, state.over_quota);
        let RequestDetails::NewResource {
            configuration,
            quantity,
            project,
            period,
        } = details
        else {
            return Err(bad_input("requestId", "is not a request for new resources"));
        };
        if input.resources.len() != quantity as usize {
            return Err(bad_input(
                "resources",
                format!(
                    "the request asks for {quantity}; {} given",
                    input.resources.len()
                ),
            ));
        }
        let midnight = |d: chrono::NaiveDate| d.and_time(NaiveTime::MIN).and_utc();
        let lease = Lease {
            start: midnight(period.start),
            end: midnight(period.end) + Duration::days(1),
        };
        let base = requested_attributes(&configuration);
        let mut names = Vec::new();
        let mut deploys = Vec::new();
        for (i, r) in input.resources.into_iter().enumerate() {
            let field = format!("resources[{i}]");
            let mut attrs = base.clone();
            attrs.insert("hostname".into(), AttrValue::Text(r.name.clone()));
            for (k, v) in attributes(&format!("{field}.attributes"), r.attributes)? {
                match v {
                    Some(v) => attrs.insert(k, v),
                    None => attrs.remove(&k),
                };
            }
            names.push(r.name.clone());
            deploys.push(Deploy {
                ci_id: Uuid::new_v5(&request_id, format!("resource:{i}").as_bytes()),
                amount: amount_of(&attrs),
                units: units(r.units.clone()),
                record: CiRecord {
                    ci_type: ci_type_of(&configuration),
                    name: r.name,
                    attributes: attrs,
                    placement: None,
                    addresses: Vec::new(),
                    department: department.clone(),
                    project: Some(project.clone()),
                    owner: Some(requester.clone()),
                    watchers: r.watchers.unwrap_or_default(),
                    request_id: Some(request_id),
                    lease: Some(lease),
                },
                pool_id: Some(ids::parse(
                    &format!("{field}.poolId"),
                    PoolAggregate::KIND,
                    &r.pool_id,
                )?),
                subnet_id: r
                    .subnet_id
                    .map(|s| ids::parse(&format!("{field}.subnetId"), SubnetAggregate::KIND, &s))
                    .transpose()?,
                address: parse_address(&format!("{field}.address"), r.address)?,
                runs_on: r
                    .runs_on
                    .map(|h| ids::parse(&format!("{field}.runsOn"), CiAggregate::KIND, &h))
                    .transpose()?,
                over_quota_approved: over_quota,
            });
        }
        let ledger = ledger(ctx);
        for deploy in deploys {
            ledger.deploy(deploy, &domain).await?;
        }
        let note = format!("已交付：{}", names.join("、"));
        let key = Uuid::new_v5(&request_id, b"fulfilled");
        let w = ledger
            .request(
                request_id,
                RequestCommand::MarkFulfilled { note },
                &domain,
                key,
            )
            .await?;
        Ok(payload(
            input.client_mutation_id,
            RequestAggregate::KIND,
            request_id,
            w.position,
        ))
    }
}

/// The aggregate `A` with id `id` as its stream stood at `position`.
async fn fold_until<A: Aggregate>(ctx: &Context<'_>, id: Uuid, position: u64) -> Result<A>
where
    A::Event: DomainEvent,
{
    let events = ledger(ctx)
        .stream(&format!("{}-{id}", A::KIND))
        .await
        .map_err(internal)?;
    let mut state = A::default();
    for e in events.iter().take_while(|e| e.position <= position) {
        let event = A::Event::from_recorded(e).map_err(internal)?;
        state = state.evolve(&event);
    }
    Ok(state)
}

async fn on_pool(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    pool_id: Uuid,
    command: PoolCommand,
) -> Result<Payload> {
    let domain = domain_context(ctx)?;
    let key = command_id(ctx, &domain.actor.id, client_mutation_id.as_deref());
    let w = ledger(ctx).pool(pool_id, command, &domain, key).await?;
    Ok(payload(
        client_mutation_id,
        PoolAggregate::KIND,
        pool_id,
        w.position,
    ))
}

async fn on_ci(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    ci_id: Uuid,
    command: CiCommand,
) -> Result<Payload> {
    let domain = domain_context(ctx)?;
    let key = command_id(ctx, &domain.actor.id, client_mutation_id.as_deref());
    let w = ledger(ctx).ci(ci_id, command, &domain, key).await?;
    Ok(payload(
        client_mutation_id,
        CiAggregate::KIND,
        ci_id,
        w.position,
    ))
}

/// Why a new-resource request would exceed its department's quota, if it would.
pub(crate) async fn quota_excess(
    ctx: &Context<'_>,
    department: &str,
    details: &RequestDetails,
) -> Result<Option<String>> {
    let RequestDetails::NewResource {
        configuration,
        quantity,
        project,
        ..
    } = details
    else {
        return Ok(None);
    };
    let one = requested_amount(configuration);
    let n = u64::from(*quantity);
    let amount = Amount {
        cpu_cores: one.cpu_cores * n,
        memory_gib: one.memory_gib * n,
        storage_gib: one.storage_gib * n,
    };
    // The figures the runner publishes beside the models: a submission takes no models
    // lock. Advisory; the deployment checks the quota as the log has it.
    let quota = ledger(ctx)
        .quota_state(department)
        .await
        .map_err(internal)?;
    Ok(quota
        .check(Some(project), amount)
        .err()
        .map(|e| e.to_string()))
}
