//! The configuration database (CMDB): one configuration item (CI) per host, VM, volume,
//! network, database, middleware or application, with typed attributes, relationships,
//! the pool its capacity comes from, and, for what was requested, a lease. Every change is
//! an event, so a CI's full history is its stream.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent, Role};
use crate::kernel::event::Actor;
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};
use crate::resources::pool::Amount;

/// What a configuration item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CiType {
    Host,
    VirtualMachine,
    StorageVolume,
    Network,
    Database,
    Middleware,
    Application,
}

/// An attribute's value. Known attributes have a fixed kind (see [`attribute_kind`]);
/// others (a site's own) take any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    Integer(i64),
    Text(String),
    Integers(Vec<i64>),
    Texts(Vec<String>),
}

impl AttrValue {
    /// Whether the value is, or (for a list) contains, `wanted`, compared as text.
    pub fn matches(&self, wanted: &str) -> bool {
        match self {
            AttrValue::Integer(n) => wanted.parse() == Ok(*n),
            AttrValue::Text(t) => t == wanted,
            AttrValue::Integers(ns) => wanted.parse().is_ok_and(|w: i64| ns.contains(&w)),
            AttrValue::Texts(ts) => ts.iter().any(|t| t == wanted),
        }
    }

    fn kind(&self) -> AttrKind {
        match self {
            AttrValue::Integer(_) => AttrKind::Integer,
            AttrValue::Text(_) => AttrKind::Text,
            AttrValue::Integers(_) => AttrKind::Integers,
            AttrValue::Texts(_) => AttrKind::Texts,
        }
    }
}

/// The kind of a known attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrKind {
    Integer,
    Text,
    Integers,
    Texts,
}

impl AttrKind {
    fn describe(self) -> &'static str {
        match self {
            AttrKind::Integer => "a whole number",
            AttrKind::Text => "text",
            AttrKind::Integers => "a list of whole numbers",
            AttrKind::Texts => "a list of text",
        }
    }
}

/// The kind the CMDB expects of a known attribute (a VM's `cpu`, `memory_gib`, `disks_gib`,
/// `ip_addresses`, `os_image`, `host`…); `None` for a site's own attributes.
pub fn attribute_kind(name: &str) -> Option<AttrKind> {
    Some(match name {
        "cpu" | "memory_gib" | "storage_gib" | "port" => AttrKind::Integer,
        "disks_gib" => AttrKind::Integers,
        "ip_addresses" | "software" => AttrKind::Texts,
        "hostname" | "os_image" | "host" | "model" | "serial" | "location" | "version"
        | "importance" | "cidr" | "vlan" => AttrKind::Text,
        _ => return None,
    })
}

/// How one CI depends on another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    RunsOn,
    Uses,
    ConnectsTo,
    PartOf,
}

/// A lease: the service period of a requested resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Where a CI's capacity is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub pool_id: Uuid,
    pub amount: Amount,
}

/// An address a CI holds in a subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub subnet_id: Uuid,
    pub address: Ipv4Addr,
}

/// Where a CI stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CiStatus {
    #[default]
    Running,
    Stopped,
    Retired,
}

/// Everything said when a CI is registered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiRecord {
    pub ci_type: CiType,
    pub name: String,
    pub attributes: BTreeMap<String, AttrValue>,
    pub placement: Option<Placement>,
    pub addresses: Vec<Address>,
    pub department: String,
    pub project: Option<String>,
    pub owner: Option<String>,
    /// Told of lease ends besides the owner.
    #[serde(default)]
    pub watchers: Vec<String>,
    /// The request that asked for it.
    pub request_id: Option<Uuid>,
    pub lease: Option<Lease>,
}

/// The roles that see every department's configuration items; anyone else sees their own
/// department's and the ones they own.
pub const SEES_EVERY_DEPARTMENT: [Role; 6] = [
    Role::Operator,
    Role::Admin,
    Role::Auditor,
    Role::Engineer,
    Role::ServiceDesk,
    Role::ChangeManager,
];

/// Whether `actor` sees every department's configuration items: one of
/// [`SEES_EVERY_DEPARTMENT`], or the system itself.
pub fn sees_every_department(actor: &Actor) -> bool {
    actor.is_system() || SEES_EVERY_DEPARTMENT.iter().any(|r| actor.has_role(*r))
}

impl CiRecord {
    /// Whether `actor` may know of it: the department wall. To anyone on the other side
    /// it does not exist.
    pub fn visible_to(&self, actor: &Actor) -> bool {
        sees_every_department(actor)
            || self.owner.as_deref() == Some(actor.id.as_str())
            || actor.department.as_deref() == Some(self.department.as_str())
    }

    /// Who hears of its lease and reclamation: the owner, then the watchers.
    pub fn told(&self) -> Vec<String> {
        let mut told: Vec<String> = self.owner.iter().cloned().collect();
        for w in &self.watchers {
            if !told.contains(w) {
                told.push(w.clone());
            }
        }
        told
    }
}

/// A backup of a virtual machine, as its driver reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    pub backup_id: Uuid,
    /// The driver's name for it.
    pub reference: String,
    pub size_bytes: u64,
    pub at: DateTime<Utc>,
    /// Who took it.
    pub by: String,
}

/// The most characters of a driver's log a failure event keeps (the end of it).
pub const MAX_LOG_EXCERPT: usize = 4_000;

/// The last [`MAX_LOG_EXCERPT`] characters of `log`.
pub fn log_excerpt(log: &str) -> String {
    let count = log.chars().count();
    log.chars()
        .skip(count.saturating_sub(MAX_LOG_EXCERPT))
        .collect()
}

/// Orders to a CI. Operators give any of them; the owner of a CI also gives the
/// virtual-server operations ([`CiCommand::is_owners`]).
#[derive(Clone, Debug)]
pub enum CiCommand {
    Register {
        ci_id: Uuid,
        record: Box<CiRecord>,
    },
    /// Sets (`Some`) or removes (`None`) attributes.
    UpdateAttributes {
        changes: BTreeMap<String, Option<AttrValue>>,
    },
    Relate {
        relation: Relation,
        target: Uuid,
    },
    Unrelate {
        relation: Relation,
        target: Uuid,
    },
    /// Records that its capacity now comes from another pool (the pools' own events move
    /// the capacity).
    Move {
        to: Placement,
    },
    Stop {
        reason: String,
    },
    Start,
    Retire {
        reason: String,
    },
    /// The scheduler's notice that the lease ends within `days_before` days.
    NoticeLeaseEnd {
        days_before: u32,
    },
    ExtendLease {
        new_end: DateTime<Utc>,
        request_id: Option<Uuid>,
    },
    /// Records that the driver restarted the VM.
    Restart,
    /// Records a backup the driver took.
    TakeBackup {
        backup_id: Uuid,
        reference: String,
        size_bytes: u64,
    },
    /// Records that the driver restored one of the VM's backups.
    RestoreBackup {
        backup_id: Uuid,
    },
    /// Records that the driver deleted the VM; its reclamation follows.
    MarkDeleted,
    /// Records an operation the driver failed to carry out: nothing else changed.
    RecordFailure {
        operation: String,
        error: String,
        log: String,
    },
    /// Records a configuration-baseline audit and its findings.
    RecordAudit {
        baseline_id: Uuid,
        baseline_version: u32,
        findings: Vec<Finding>,
    },
}

impl CiCommand {
    /// Whether the CI's owner may give it (the virtual-server operations and their
    /// records), besides operators.
    pub fn is_owners(&self) -> bool {
        matches!(
            self,
            CiCommand::Stop { .. }
                | CiCommand::Start
                | CiCommand::Restart
                | CiCommand::TakeBackup { .. }
                | CiCommand::RestoreBackup { .. }
                | CiCommand::MarkDeleted
                | CiCommand::RecordFailure { .. }
                | CiCommand::RecordAudit { .. }
        )
    }
}

/// What happened to a CI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CiEvent {
    CiRegistered {
        ci_id: Uuid,
        record: CiRecord,
        at: DateTime<Utc>,
    },
    /// Each change with the value before and after (`None`: absent).
    CiAttributesChanged {
        changes: Vec<AttributeChange>,
    },
    CiRelated {
        relation: Relation,
        target: Uuid,
    },
    CiUnrelated {
        relation: Relation,
        target: Uuid,
    },
    CiMoved {
        from: Option<Placement>,
        to: Placement,
        at: DateTime<Utc>,
    },
    CiStopped {
        reason: String,
    },
    CiStarted,
    CiRetired {
        reason: String,
        /// The capacity it gave back.
        released: Option<Placement>,
        at: DateTime<Utc>,
        /// Who is told: the owner and the watchers.
        #[serde(default)]
        notify: Vec<String>,
    },
    LeaseEndNoticed {
        end: DateTime<Utc>,
        days_before: u32,
        /// Who is told: the owner and the watchers.
        #[serde(default)]
        notify: Vec<String>,
    },
    LeaseExtended {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        request_id: Option<Uuid>,
    },
    CiRestarted {
        at: DateTime<Utc>,
    },
    BackupTaken {
        backup_id: Uuid,
        reference: String,
        size_bytes: u64,
        at: DateTime<Utc>,
        by: String,
    },
    BackupRestored {
        backup_id: Uuid,
        at: DateTime<Utc>,
    },
    /// The driver deleted the VM; the reclamation of its capacity, address and quota and
    /// its retirement follow.
    VmDeleted {
        at: DateTime<Utc>,
    },
    /// An operation the driver failed: the CI is as it was.
    CiOperationFailed {
        operation: String,
        error: String,
        /// The end of the driver's log.
        log: String,
        at: DateTime<Utc>,
    },
    BaselineAudited {
        baseline_id: Uuid,
        baseline_version: u32,
        findings: Vec<Finding>,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for CiEvent {}

/// One attribute's change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeChange {
    pub name: String,
    pub before: Option<AttrValue>,
    pub after: Option<AttrValue>,
}

/// Why a CI refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CiError {
    /// A field of the CI breaks its rules (invalid)
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// Only operators change the CMDB (forbidden)
    #[error("only operators change the CMDB")]
    NotOperator,
    /// The CI exists already (conflict)
    #[error("the configuration item already exists")]
    AlreadyExists,
    /// There is no such CI (not found)
    #[error("there is no such configuration item")]
    NotFound,
    /// The CI is retired (conflict)
    #[error("the configuration item is retired")]
    Retired,
    /// The CI is in that status already (conflict)
    #[error("the configuration item is already {0:?}")]
    AlreadyInStatus(CiStatus),
    /// The CI has no lease (conflict)
    #[error("the configuration item has no lease")]
    NoLease,
    /// The lease end was noticed at that point already (conflict)
    #[error("the lease end was already noticed {0} days before")]
    AlreadyNoticed(u32),
    /// Only the CI's owner or an operator may do this (forbidden)
    #[error("only the owner of the configuration item or an operator may do this")]
    NotOwner,
    /// The CI is stopped (conflict)
    #[error("the configuration item is stopped: start it instead")]
    NotRunning,
    /// The VM has no such backup (not found)
    #[error("the virtual machine has no backup {0}")]
    UnknownBackup(Uuid),
    /// The backup is recorded already (conflict)
    #[error("the backup {0} is recorded already")]
    BackupExists(Uuid),
    /// The VM was deleted (conflict)
    #[error("the virtual machine was deleted")]
    Deleted,
}

impl Refuse for CiError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
            Self::NotOperator | Self::NotOwner => Refusal::Forbidden,
            Self::AlreadyExists
            | Self::Retired
            | Self::AlreadyInStatus(..)
            | Self::NoLease
            | Self::AlreadyNoticed(..)
            | Self::NotRunning
            | Self::BackupExists(..)
            | Self::Deleted => Refusal::Conflict,
            Self::NotFound | Self::UnknownBackup(..) => Refusal::NotFound,
        }
    }
}

/// A CI's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigurationItem {
    pub ci_id: Option<Uuid>,
    pub record: Option<CiRecord>,
    pub status: CiStatus,
    pub relations: Vec<(Relation, Uuid)>,
    /// Lease-end notices given, as (lease end, days before).
    pub noticed: Vec<(DateTime<Utc>, u32)>,
    /// A VM's backups, oldest first.
    #[serde(default)]
    pub backups: Vec<Backup>,
    /// The driver deleted the VM (its reclamation may still be under way).
    #[serde(default)]
    pub deleted: bool,
}

impl ConfigurationItem {
    /// Whether `actor` may give a command to it, decided before anything about its state,
    /// so that an item behind the department wall answers as an absent one does, whatever
    /// state it is in: `NotFound`. Then only operators change it, but for the commands
    /// its owner may give too (`owners_may`: a VM's start, stop, backups, deletion).
    /// Registering a new item is not a command to an existing one: see `decide`.
    ///
    /// # Errors
    /// `NotFound` (absent, or behind the wall), `NotOperator` or `NotOwner`.
    pub fn admit(&self, actor: &Actor, owners_may: bool) -> Result<(), CiError> {
        match &self.record {
            Some(record) if !record.visible_to(actor) => return Err(CiError::NotFound),
            None if !actor.operates() => return Err(CiError::NotFound),
            _ => {}
        }
        if actor.operates() {
            return Ok(());
        }
        if !owners_may {
            return Err(CiError::NotOperator);
        }
        let owns = self
            .record
            .as_ref()
            .and_then(|r| r.owner.as_deref())
            .is_some_and(|owner| owner == actor.id);
        if !owns {
            return Err(CiError::NotOwner);
        }
        Ok(())
    }

    fn record(&self) -> Result<&CiRecord, CiError> {
        self.record.as_ref().ok_or(CiError::NotFound)
    }

    fn live(&self) -> Result<&CiRecord, CiError> {
        let record = self.record()?;
        if self.status == CiStatus::Retired {
            return Err(CiError::Retired);
        }
        Ok(record)
    }

    pub fn lease(&self) -> Option<Lease> {
        self.record.as_ref()?.lease
    }

    /// A live VM the driver has not deleted.
    fn live_vm(&self) -> Result<&CiRecord, CiError> {
        let record = self.live()?;
        if record.ci_type != CiType::VirtualMachine {
            return Err(invalid("ciId", "is not a virtual machine").into());
        }
        if self.deleted {
            return Err(CiError::Deleted);
        }
        Ok(record)
    }

    /// One of its backups.
    pub fn backup(&self, backup_id: Uuid) -> Option<&Backup> {
        self.backups.iter().find(|b| b.backup_id == backup_id)
    }
}

/// Checks known attributes' kinds; names the first that is wrong.
pub fn check_attributes<'a>(
    attributes: impl IntoIterator<Item = (&'a String, &'a AttrValue)>,
) -> Result<(), InvalidField> {
    for (name, value) in attributes {
        if name.trim().is_empty() {
            return Err(invalid("attributes", "an attribute needs a name"));
        }
        if let Some(kind) = attribute_kind(name) {
            if value.kind() != kind {
                return Err(invalid(
                    format!("attributes.{name}"),
                    format!("must be {}", kind.describe()),
                ));
            }
        }
    }
    Ok(())
}

impl Aggregate for ConfigurationItem {
    const KIND: &'static str = "ci";
    type Command = CiCommand;
    type Event = CiEvent;
    type Error = CiError;

    fn decide(&self, command: CiCommand, ctx: &Context) -> Result<Vec<CiEvent>, CiError> {
        if let CiCommand::Register { .. } = command {
            if !ctx.actor.operates() {
                return Err(CiError::NotOperator);
            }
        } else {
            self.admit(&ctx.actor, command.is_owners())?;
        }
        let event = match command {
            CiCommand::Register { ci_id, record } => {
                if self.record.is_some() {
                    return Err(CiError::AlreadyExists);
                }
                if record.name.trim().is_empty() {
                    return Err(invalid("name", "is required").into());
                }
                if record.department.trim().is_empty() {
                    return Err(invalid("department", "is required").into());
                }
                if let Some(lease) = record.lease {
                    if lease.end <= lease.start {
                        return Err(invalid("lease", "must end after it starts").into());
                    }
                }
                check_attributes(&record.attributes)?;
                CiEvent::CiRegistered {
                    ci_id,
                    record: *record,
                    at: ctx.now,
                }
            }
            CiCommand::UpdateAttributes { changes } => {
                let record = self.live()?;
                let set = changes.iter().filter_map(|(k, v)| Some((k, v.as_ref()?)));
                check_attributes(set)?;
                let changes: Vec<AttributeChange> = changes
                    .into_iter()
                    .filter_map(|(name, after)| {
                        let before = record.attributes.get(&name).cloned();
                        (before != after).then_some(AttributeChange {
                            name,
                            before,
                            after,
                        })
                    })
                    .collect();
                if changes.is_empty() {
                    return Err(invalid("changes", "change nothing").into());
                }
                CiEvent::CiAttributesChanged { changes }
            }
            CiCommand::Relate { relation, target } => {
                self.live()?;
                if Some(target) == self.ci_id {
                    return Err(invalid("target", "a CI cannot relate to itself").into());
                }
                if self.relations.contains(&(relation, target)) {
                    return Err(invalid("target", "is already related so").into());
                }
                CiEvent::CiRelated { relation, target }
            }
            CiCommand::Unrelate { relation, target } => {
                self.live()?;
                if !self.relations.contains(&(relation, target)) {
                    return Err(invalid("target", "is not related so").into());
                }
                CiEvent::CiUnrelated { relation, target }
            }
            CiCommand::Move { to } => {
                let record = self.live()?;
                if record.placement.map(|p| p.pool_id) == Some(to.pool_id) {
                    return Err(invalid("poolId", "is the pool it is already in").into());
                }
                CiEvent::CiMoved {
                    from: record.placement,
                    to,
                    at: ctx.now,
                }
            }
            CiCommand::Stop { reason } => {
                self.live()?;
                if self.status == CiStatus::Stopped {
                    return Err(CiError::AlreadyInStatus(CiStatus::Stopped));
                }
                CiEvent::CiStopped { reason }
            }
            CiCommand::Start => {
                self.live()?;
                if self.deleted {
                    return Err(CiError::Deleted);
                }
                if self.status == CiStatus::Running {
                    return Err(CiError::AlreadyInStatus(CiStatus::Running));
                }
                CiEvent::CiStarted
            }
            CiCommand::Retire { reason } => {
                let record = self.live()?;
                CiEvent::CiRetired {
                    reason,
                    released: record.placement,
                    at: ctx.now,
                    notify: record.told(),
                }
            }
            CiCommand::NoticeLeaseEnd { days_before } => {
                let record = self.live()?;
                let lease = record.lease.ok_or(CiError::NoLease)?;
                if self.noticed.contains(&(lease.end, days_before)) {
                    return Err(CiError::AlreadyNoticed(days_before));
                }
                CiEvent::LeaseEndNoticed {
                    end: lease.end,
                    days_before,
                    notify: record.told(),
                }
            }
            CiCommand::ExtendLease {
                new_end,
                request_id,
            } => {
                let lease = self.live()?.lease.ok_or(CiError::NoLease)?;
                if new_end <= lease.end {
                    return Err(invalid("newEnd", "must be after the lease's present end").into());
                }
                CiEvent::LeaseExtended {
                    from: lease.end,
                    to: new_end,
                    request_id,
                }
            }
            CiCommand::Restart => {
                self.live_vm()?;
                if self.status != CiStatus::Running {
                    return Err(CiError::NotRunning);
                }
                CiEvent::CiRestarted { at: ctx.now }
            }
            CiCommand::TakeBackup {
                backup_id,
                reference,
                size_bytes,
            } => {
                self.live_vm()?;
                if self.backup(backup_id).is_some() {
                    return Err(CiError::BackupExists(backup_id));
                }
                if reference.trim().is_empty() {
                    return Err(invalid("reference", "the driver named no backup").into());
                }
                CiEvent::BackupTaken {
                    backup_id,
                    reference,
                    size_bytes,
                    at: ctx.now,
                    by: ctx.actor.id.clone(),
                }
            }
            CiCommand::RestoreBackup { backup_id } => {
                self.live_vm()?;
                if self.backup(backup_id).is_none() {
                    return Err(CiError::UnknownBackup(backup_id));
                }
                CiEvent::BackupRestored {
                    backup_id,
                    at: ctx.now,
                }
            }
            CiCommand::MarkDeleted => {
                self.live_vm()?;
                CiEvent::VmDeleted { at: ctx.now }
            }
            CiCommand::RecordFailure {
                operation,
                error,
                log,
            } => {
                self.record()?;
                CiEvent::CiOperationFailed {
                    operation,
                    error,
                    log: log_excerpt(&log),
                    at: ctx.now,
                }
            }
            CiCommand::RecordAudit {
                baseline_id,
                baseline_version,
                findings,
            } => {
                self.live()?;
                CiEvent::BaselineAudited {
                    baseline_id,
                    baseline_version,
                    findings,
                    at: ctx.now,
                }
            }
        };
        Ok(vec![event])
    }

    fn evolve(mut self, event: &CiEvent) -> Self {
        match event {
            CiEvent::CiRegistered { ci_id, record, .. } => {
                self.ci_id = Some(*ci_id);
                self.record = Some(record.clone());
            }
            CiEvent::CiAttributesChanged { changes } => {
                if let Some(record) = &mut self.record {
                    apply_changes(&mut record.attributes, changes);
                }
            }
            CiEvent::CiRelated { relation, target } => self.relations.push((*relation, *target)),
            CiEvent::CiUnrelated { relation, target } => {
                self.relations.retain(|r| r != &(*relation, *target));
            }
            CiEvent::CiMoved { to, .. } => {
                if let Some(record) = &mut self.record {
                    record.placement = Some(*to);
                }
            }
            CiEvent::CiStopped { .. } => self.status = CiStatus::Stopped,
            CiEvent::CiStarted => self.status = CiStatus::Running,
            CiEvent::CiRetired { .. } => {
                // Its addresses went back to their subnets: the CMDB no longer lists them
                // (the history does).
                self.status = CiStatus::Retired;
                if let Some(record) = &mut self.record {
                    record.addresses.clear();
                    record.attributes.remove("ip_addresses");
                }
            }
            CiEvent::LeaseEndNoticed {
                end, days_before, ..
            } => {
                self.noticed.push((*end, *days_before));
            }
            CiEvent::LeaseExtended { to, .. } => {
                if let Some(lease) = self.record.as_mut().and_then(|r| r.lease.as_mut()) {
                    lease.end = *to;
                }
            }
            CiEvent::BackupTaken {
                backup_id,
                reference,
                size_bytes,
                at,
                by,
            } => self.backups.push(Backup {
                backup_id: *backup_id,
                reference: reference.clone(),
                size_bytes: *size_bytes,
                at: *at,
                by: by.clone(),
            }),
            CiEvent::VmDeleted { .. } => self.deleted = true,
            CiEvent::CiRestarted { .. }
            | CiEvent::BackupRestored { .. }
            | CiEvent::CiOperationFailed { .. }
            | CiEvent::BaselineAudited { .. } => {}
        }
        self
    }
}

/// Applies attribute changes to a set of attributes.
pub fn apply_changes(attributes: &mut BTreeMap<String, AttrValue>, changes: &[AttributeChange]) {
    for change in changes {
        match &change.after {
            Some(value) => {
                attributes.insert(change.name.clone(), value.clone());
            }
            None => {
                attributes.remove(&change.name);
            }
        }
    }
}

/// One difference a baseline audit found between a baseline and the CI: a setting that is
/// missing or has another value. Recorded on the CI; compared by the automation area.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub key: String,
    pub expected: String,
    /// What was found; `None`: the setting is missing.
    pub actual: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::given::{at, given, person};

    fn wong() -> crate::Actor {
        person("u-wong", "運維中心", &["operator"])
    }

    fn vm() -> CiRecord {
        CiRecord {
            ci_type: CiType::VirtualMachine,
            name: "fin-app-01".into(),
            attributes: BTreeMap::from([
                ("cpu".into(), AttrValue::Integer(4)),
                (
                    "ip_addresses".into(),
                    AttrValue::Texts(vec!["10.1.0.5".into()]),
                ),
            ]),
            placement: None,
            addresses: vec![],
            department: "財政局".into(),
            project: Some("稅務系統".into()),
            owner: Some("u-chan".into()),
            watchers: vec![],
            request_id: None,
            lease: Some(Lease {
                start: at(9),
                end: at(20),
            }),
        }
    }

    fn registered() -> CiEvent {
        CiEvent::CiRegistered {
            ci_id: Uuid::from_u128(7),
            record: vm(),
            at: at(9),
        }
    }

    #[test]
    fn a_known_attribute_of_the_wrong_kind_is_refused_by_name() {
        let mut record = vm();
        record
            .attributes
            .insert("cpu".into(), AttrValue::Text("four".into()));
        given::<ConfigurationItem>([])
            .when(
                CiCommand::Register {
                    ci_id: Uuid::from_u128(7),
                    record: Box::new(record),
                },
                &wong(),
            )
            .then_err(invalid("attributes.cpu", "must be a whole number").into());
    }

    #[test]
    fn an_attribute_change_records_before_and_after_and_only_what_changed() {
        let changes = BTreeMap::from([
            ("cpu".into(), Some(AttrValue::Integer(8))),
            (
                "ip_addresses".into(),
                Some(AttrValue::Texts(vec!["10.1.0.5".into()])),
            ),
            ("os_image".into(), None),
        ]);
        given::<ConfigurationItem>([registered()])
            .when(CiCommand::UpdateAttributes { changes }, &wong())
            .then([CiEvent::CiAttributesChanged {
                changes: vec![AttributeChange {
                    name: "cpu".into(),
                    before: Some(AttrValue::Integer(4)),
                    after: Some(AttrValue::Integer(8)),
                }],
            }]);
    }

    #[test]
    fn a_lease_end_is_noticed_once_per_end_and_lead_time() {
        let noticed = CiEvent::LeaseEndNoticed {
            end: at(20),
            days_before: 1,
            notify: vec!["u-chan".into()],
        };
        given::<ConfigurationItem>([registered()])
            .when(CiCommand::NoticeLeaseEnd { days_before: 1 }, &wong())
            .then([noticed.clone()]);
        given::<ConfigurationItem>([registered(), noticed.clone()])
            .when(CiCommand::NoticeLeaseEnd { days_before: 1 }, &wong())
            .then_err(CiError::AlreadyNoticed(1));
        // An extension moves the end: the new end is noticed again.
        let extended = CiEvent::LeaseExtended {
            from: at(20),
            to: at(23),
            request_id: None,
        };
        given::<ConfigurationItem>([registered(), noticed, extended])
            .when(CiCommand::NoticeLeaseEnd { days_before: 1 }, &wong())
            .then([CiEvent::LeaseEndNoticed {
                end: at(23),
                days_before: 1,
                notify: vec!["u-chan".into()],
            }]);
    }

    #[test]
    fn a_retired_ci_changes_no_more_and_requesters_change_none() {
        let retired = CiEvent::CiRetired {
            reason: "lease ended".into(),
            released: None,
            at: at(20),
            notify: vec![],
        };
        given::<ConfigurationItem>([registered(), retired])
            .when(CiCommand::Start, &wong())
            .then_err(CiError::Retired);
        given::<ConfigurationItem>([registered()])
            .when(
                CiCommand::Stop { reason: "x".into() },
                &person("u-ho", "財政局", &["requester"]),
            )
            .then_err(CiError::NotOwner);
        // The owner runs their VM, but the CMDB's records are the operators'.
        given::<ConfigurationItem>([registered()])
            .when(CiCommand::Retire { reason: "x".into() }, &chan())
            .then_err(CiError::NotOperator);
    }

    #[test]
    fn another_departments_ci_is_not_found_whatever_its_state() {
        let siu = person("u-siu", "教育局", &["requester"]);
        let retired = CiEvent::CiRetired {
            reason: "lease ended".into(),
            released: None,
            at: at(20),
            notify: vec![],
        };
        for history in [vec![], vec![registered()], vec![registered(), retired]] {
            for command in [
                CiCommand::Retire { reason: "x".into() },
                CiCommand::Stop { reason: "x".into() },
                CiCommand::Start,
            ] {
                given::<ConfigurationItem>(history.clone())
                    .when(command, &siu)
                    .then_err(CiError::NotFound);
            }
        }
        // The wall stands before any rule about who changes what in one's own department.
        given::<ConfigurationItem>([registered()])
            .when(
                CiCommand::Stop { reason: "x".into() },
                &person("u-ho", "財政局", &["requester"]),
            )
            .then_err(CiError::NotOwner);
    }

    fn chan() -> crate::Actor {
        person("u-chan", "財政局", &["requester"])
    }

    fn backup(n: u128, hour: u32) -> CiEvent {
        CiEvent::BackupTaken {
            backup_id: Uuid::from_u128(n),
            reference: format!("sim-bk-{n}"),
            size_bytes: 10 << 30,
            at: at(hour),
            by: "u-chan".into(),
        }
    }

    #[test]
    fn the_owner_stops_starts_and_restarts_their_vm_in_the_order_that_makes_sense() {
        given::<ConfigurationItem>([registered()])
            .when(
                CiCommand::Stop {
                    reason: "維護".into(),
                },
                &chan(),
            )
            .then([CiEvent::CiStopped {
                reason: "維護".into(),
            }]);
        given::<ConfigurationItem>([registered()])
            .when(CiCommand::Start, &chan())
            .then_err(CiError::AlreadyInStatus(CiStatus::Running));
        given::<ConfigurationItem>([registered()])
            .when(CiCommand::Restart, &chan())
            .then([CiEvent::CiRestarted { at: at(9) }]);
        let stopped = CiEvent::CiStopped { reason: "x".into() };
        given::<ConfigurationItem>([registered(), stopped])
            .when(CiCommand::Restart, &wong())
            .then_err(CiError::NotRunning);
    }

    #[test]
    fn a_backup_is_kept_and_restoring_one_that_is_not_there_is_refused_by_its_id() {
        given::<ConfigurationItem>([registered()])
            .when(
                CiCommand::TakeBackup {
                    backup_id: Uuid::from_u128(1),
                    reference: "sim-bk-1".into(),
                    size_bytes: 10 << 30,
                },
                &chan(),
            )
            .then([backup(1, 9)]);
        let state = [registered(), backup(1, 10), backup(2, 11)]
            .iter()
            .fold(ConfigurationItem::default(), |s, e| s.evolve(e));
        assert_eq!(state.backups.len(), 2);
        assert_eq!(state.backups[1].reference, "sim-bk-2");
        given::<ConfigurationItem>([registered(), backup(1, 10)])
            .at(at(12))
            .when(
                CiCommand::RestoreBackup {
                    backup_id: Uuid::from_u128(1),
                },
                &chan(),
            )
            .then([CiEvent::BackupRestored {
                backup_id: Uuid::from_u128(1),
                at: at(12),
            }]);
        given::<ConfigurationItem>([registered(), backup(1, 10)])
            .when(
                CiCommand::RestoreBackup {
                    backup_id: Uuid::from_u128(9),
                },
                &chan(),
            )
            .then_err(CiError::UnknownBackup(Uuid::from_u128(9)));
        given::<ConfigurationItem>([registered(), backup(1, 10)])
            .when(
                CiCommand::TakeBackup {
                    backup_id: Uuid::from_u128(1),
                    reference: "again".into(),
                    size_bytes: 1,
                },
                &wong(),
            )
            .then_err(CiError::BackupExists(Uuid::from_u128(1)));
    }

    #[test]
    fn a_retired_or_deleted_vm_is_neither_restored_nor_backed_up_and_a_host_is_no_vm() {
        let retired = CiEvent::CiRetired {
            reason: "lease ended".into(),
            released: None,
            at: at(20),
            notify: vec![],
        };
        given::<ConfigurationItem>([registered(), backup(1, 10), retired])
            .when(
                CiCommand::RestoreBackup {
                    backup_id: Uuid::from_u128(1),
                },
                &wong(),
            )
            .then_err(CiError::Retired);
        let deleted = CiEvent::VmDeleted { at: at(12) };
        given::<ConfigurationItem>([registered(), deleted.clone()])
            .when(
                CiCommand::TakeBackup {
                    backup_id: Uuid::from_u128(1),
                    reference: "r".into(),
                    size_bytes: 1,
                },
                &chan(),
            )
            .then_err(CiError::Deleted);
        // The reclamation that follows a deletion still stops it.
        given::<ConfigurationItem>([registered(), deleted])
            .when(CiCommand::Stop { reason: "x".into() }, &wong())
            .then([CiEvent::CiStopped { reason: "x".into() }]);
        let mut host = vm();
        host.ci_type = CiType::Host;
        let host = CiEvent::CiRegistered {
            ci_id: Uuid::from_u128(8),
            record: host,
            at: at(9),
        };
        given::<ConfigurationItem>([host])
            .when(CiCommand::Restart, &wong())
            .then_err(invalid("ciId", "is not a virtual machine").into());
    }

    #[test]
    fn a_failure_keeps_the_end_of_a_long_log_and_changes_nothing_else() {
        let log = format!("{}END", "x".repeat(MAX_LOG_EXCERPT + 10));
        let events = given::<ConfigurationItem>([registered()])
            .when(
                CiCommand::RecordFailure {
                    operation: "stop_vm".into(),
                    error: "simulated failure".into(),
                    log,
                },
                &chan(),
            )
            .events();
        let CiEvent::CiOperationFailed { log, .. } = &events[0] else {
            panic!("{events:?}");
        };
        assert_eq!(log.chars().count(), MAX_LOG_EXCERPT);
        assert!(log.ends_with("END"));
        let before = ConfigurationItem::default().evolve(&registered());
        assert_eq!(before.clone().evolve(&events[0]), before);
    }
}
