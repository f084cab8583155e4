//! Incidents (運維事件): a fault from the service desk, an inspection or monitoring, its
//! severity as the plan grades it, its warning level with the duties each level brings,
//! the work on it, its SLA warnings and breaches, and its resolution.
//!
//! Severity (事件定級): general (Ⅰ), important (Ⅱ), urgent (Ⅲ), from the importance of the
//! affected system, the loss and the social impact — the highest of the three decides.
//! An ITIL priority (impact × urgency, 1 highest to 5) is kept beside it for other tools.
//!
//! Warning levels (預警級別) 1–3: at level 1 the engineer handles it; at level 2 the
//! operations manager is told at once (and reports to the departments' leaders), a vendor
//! is called if needed; at level 3 also the head of the operations centre, who arranges
//! hardware replacement. Each duty done is an event, so the incident shows who must act.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent, Role};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::operations::sla::ClockKind;
use crate::requests::catalog::{invalid, InvalidField};

/// The plan's grades, lowest first.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// 一般事件 (Ⅰ級)
    #[default]
    General,
    /// 重要事件 (Ⅱ級)
    Important,
    /// 緊急事件 (Ⅲ級)
    Urgent,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::General, Severity::Important, Severity::Urgent];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::General => "general",
            Severity::Important => "important",
            Severity::Urgent => "urgent",
        }
    }

    /// The plan's numeral: Ⅰ, Ⅱ, Ⅲ.
    pub fn numeral(self) -> &'static str {
        match self {
            Severity::General => "Ⅰ",
            Severity::Important => "Ⅱ",
            Severity::Urgent => "Ⅲ",
        }
    }

    fn of_level(level: u8) -> Severity {
        match level {
            0 | 1 => Severity::General,
            2 => Severity::Important,
            _ => Severity::Urgent,
        }
    }
}

/// How important the affected system is (信息系統的重要程度), held on the CI as its
/// `importance` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Importance {
    /// 一般信息系統
    #[default]
    General,
    /// 重要信息系統
    Important,
    /// 特別重要信息系統
    EspeciallyImportant,
}

impl Importance {
    /// Reads the CI attribute's value: `general`, `important`, `especially_important`
    /// (or the plan's words).
    pub fn parse(s: &str) -> Option<Importance> {
        match s.trim() {
            "general" | "一般" => Some(Importance::General),
            "important" | "重要" => Some(Importance::Important),
            "especially_important" | "特別重要" | "特别重要" => {
                Some(Importance::EspeciallyImportant)
            }
            _ => None,
        }
    }
}

/// How large the loss (系統損失) or the social impact (社會影響) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Extent {
    #[default]
    Minor,
    Serious,
    Major,
}

/// The facts the plan grades an incident by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Assessment {
    pub importance: Importance,
    pub loss: Extent,
    pub social_impact: Extent,
}

impl Assessment {
    /// The severity: the highest grade any of the three reaches.
    pub fn severity(&self) -> Severity {
        let level = (self.importance as u8)
            .max(self.loss as u8)
            .max(self.social_impact as u8);
        Severity::of_level(level + 1)
    }
}

/// The ITIL priority: impact and urgency from 1 (high) to 3 (low).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Priority {
    pub impact: u8,
    pub urgency: u8,
}

impl Priority {
    /// Defaults from the assessment: impact from the social impact and importance, urgency
    /// from the loss.
    pub fn from_assessment(a: &Assessment) -> Priority {
        let impact = 3 - (a.social_impact as u8).max(a.importance as u8);
        let urgency = 3 - a.loss as u8;
        Priority { impact, urgency }
    }

    /// 1 (critical) to 5 (planning): impact + urgency − 1.
    pub fn number(self) -> u8 {
        self.impact + self.urgency - 1
    }

    fn validate(self) -> Result<(), InvalidField> {
        if !(1..=3).contains(&self.impact) {
            return Err(invalid("impact", "must be 1 (high), 2 or 3 (low)"));
        }
        if !(1..=3).contains(&self.urgency) {
            return Err(invalid("urgency", "must be 1 (high), 2 or 3 (low)"));
        }
        Ok(())
    }
}

/// What a warning level obliges someone to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Duty {
    /// Level 2+: the engineer reports to the operations manager at once.
    ReportToOperationsManager,
    /// Level 2+: the operations manager reports to the leaders of the departments.
    ReportToDepartmentLeaders,
    /// Level 2+ when a vendor's engineer is needed on site.
    CallVendor,
    /// Level 3: the head of the operations centre is told.
    ReportToOperationsHead,
    /// Level 3 when hardware cannot be repaired: the head arranges its replacement.
    ReplaceHardware,
}

impl Duty {
    /// Who does it.
    pub fn role(self) -> Role {
        match self {
            Duty::ReportToOperationsManager | Duty::CallVendor => Role::Engineer,
            Duty::ReportToDepartmentLeaders | Duty::ReportToOperationsHead => {
                Role::OperationsManager
            }
            Duty::ReplaceHardware => Role::OperationsHead,
        }
    }
}

/// Why a resolution clock is paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    WaitingOnCustomer,
    WaitingOnVendor,
}

/// Where an incident came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A call or message to the service desk, recorded as this ticket.
    Desk { ticket_id: Option<Uuid> },
    /// An anomaly found by an inspection, at this checklist item.
    Inspection { inspection_id: Uuid, item: String },
    /// A provisioning run whose compensation failed at this step.
    Automation { run_id: Uuid, step: String },
    /// A monitoring alarm.
    Monitoring,
}

/// What an incident can be linked to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    Ticket,
    WorkOrder,
    Change,
    Article,
    ConfigurationItem,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    #[default]
    New,
    /// Acknowledged and being worked.
    InProgress,
    /// Waiting on the customer or a vendor; the resolution clock is paused.
    Pending,
    Resolved,
    Closed,
}

/// What opening an incident records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opening {
    pub title: String,
    pub description: String,
    /// The service whose SLA policy applies.
    pub service: String,
    pub ci_ids: Vec<Uuid>,
    pub assessment: Assessment,
    pub priority: Priority,
    pub warning_level: u8,
    pub source: Source,
    /// The department the affected service is for, if known.
    pub department: Option<String>,
}

/// The cause, the fix and what will prevent it: the heart of the incident report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Resolution {
    pub cause: String,
    pub resolution: String,
    pub preventive_measures: String,
}

/// Orders to an incident.
#[derive(Clone, Debug)]
pub enum IncidentCommand {
    Open {
        incident_id: Uuid,
        opening: Box<Opening>,
        /// Impact and urgency when they differ from what the assessment suggests.
        priority: Option<Priority>,
    },
    /// The first response: stops the response clock.
    Acknowledge {
        note: Option<String>,
    },
    Assign {
        team: Option<String>,
        assignee: Option<String>,
    },
    /// Grades it again; the SLA targets change from now on.
    Reassess {
        assessment: Assessment,
        priority: Option<Priority>,
        reason: String,
    },
    SetWarningLevel {
        level: u8,
        reason: String,
        vendor_needed: bool,
        hardware_replacement: bool,
    },
    /// A duty of the warning level was done: who was told, or what was arranged.
    RecordDuty {
        duty: Duty,
        note: String,
    },
    LogWork {
        note: String,
    },
    Pause {
        reason: PauseReason,
        note: String,
    },
    Resume {
        note: Option<String>,
    },
    Link {
        kind: LinkKind,
        id: Uuid,
    },
    Resolve {
        resolution: Resolution,
    },
    Reopen {
        reason: String,
    },
    Close {
        note: Option<String>,
    },
    /// The scheduler: a clock reached its warning share at `at`.
    RecordSlaWarning {
        clock: ClockKind,
        at: DateTime<Utc>,
    },
    /// The scheduler: a clock reached its target at `at`.
    RecordSlaBreach {
        clock: ClockKind,
        at: DateTime<Utc>,
    },
}

/// What happened to an incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum IncidentEvent {
    IncidentOpened {
        incident_id: Uuid,
        opening: Box<Opening>,
        severity: Severity,
    },
    IncidentAcknowledged {
        note: Option<String>,
    },
    IncidentAssigned {
        team: Option<String>,
        assignee: Option<String>,
    },
    SeverityChanged {
        from: Severity,
        to: Severity,
        assessment: Assessment,
        priority: Priority,
        reason: String,
    },
    WarningLevelChanged {
        from: u8,
        to: u8,
        reason: String,
        vendor_needed: bool,
        hardware_replacement: bool,
    },
    DutyDone {
        duty: Duty,
        note: String,
    },
    WorkLogged {
        note: String,
    },
    IncidentPaused {
        reason: PauseReason,
        note: String,
    },
    IncidentResumed {
        note: Option<String>,
    },
    IncidentLinked {
        kind: LinkKind,
        id: Uuid,
    },
    IncidentResolved {
        resolution: Resolution,
    },
    IncidentReopened {
        reason: String,
    },
    IncidentClosed {
        note: Option<String>,
    },
    SlaWarned {
        clock: ClockKind,
        at: DateTime<Utc>,
    },
    SlaBreached {
        clock: ClockKind,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for IncidentEvent {}

/// Why an incident refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IncidentError {
    /// A field of the incident breaks its rules (invalid)
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// Only the service desk, engineers and operations staff work incidents (forbidden)
    #[error("only the service desk, engineers and operations staff work incidents")]
    NotPermitted,
    /// Only the scheduler records SLA warnings and breaches (forbidden)
    #[error("only the system's scheduler records SLA warnings and breaches")]
    NotScheduler,
    /// The incident was opened already (conflict)
    #[error("this incident was already opened")]
    AlreadyOpened,
    /// There is no such incident (not found)
    #[error("there is no such incident")]
    NotFound,
    /// The incident is closed (conflict)
    #[error("the incident is closed and takes no more work")]
    Closed,
    /// The incident is resolved; it is reopened first (conflict)
    #[error("the incident is resolved; reopen it first")]
    Resolved,
    /// The incident is not resolved (conflict)
    #[error("the incident is not resolved")]
    NotResolved,
    /// The incident was acknowledged already (conflict)
    #[error("the incident was already acknowledged")]
    AlreadyAcknowledged,
    /// The incident is paused already (conflict)
    #[error("the incident is already paused")]
    AlreadyPaused,
    /// The incident is not paused (conflict)
    #[error("the incident is not paused")]
    NotPaused,
    /// The clock's warning or breach was recorded already (conflict)
    #[error("the {0} clock's {1} was already recorded")]
    AlreadyRecorded(&'static str, &'static str),
    /// The warning level is that already (conflict)
    #[error("the warning level is already {0}")]
    SameLevel(u8),
    /// The duty is not one of the warning level (conflict)
    #[error("{0:?} is not a duty of warning level {1}")]
    NoSuchDuty(Duty, u8),
    /// The duty was done already (conflict)
    #[error("{0:?} was already done")]
    DutyAlreadyDone(Duty),
    /// The link exists already (conflict)
    #[error("already linked")]
    AlreadyLinked,
    /// The severity and priority are unchanged (conflict)
    #[error("the severity and priority are unchanged")]
    Unchanged,
}

impl Refuse for IncidentError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
            Self::NotPermitted | Self::NotScheduler => Refusal::Forbidden,
            Self::AlreadyOpened
            | Self::Closed
            | Self::Resolved
            | Self::NotResolved
            | Self::AlreadyAcknowledged
            | Self::AlreadyPaused
            | Self::NotPaused
            | Self::AlreadyRecorded(..)
            | Self::SameLevel(..)
            | Self::NoSuchDuty(..)
            | Self::DutyAlreadyDone(..)
            | Self::AlreadyLinked
            | Self::Unchanged => Refusal::Conflict,
            Self::NotFound => Refusal::NotFound,
        }
    }
}

/// An incident's state: what its rules need.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: Option<Uuid>,
    pub status: IncidentStatus,
    pub severity: Severity,
    pub assessment: Assessment,
    pub priority: Option<Priority>,
    pub warning_level: u8,
    pub vendor_needed: bool,
    pub hardware_replacement: bool,
    pub acknowledged: bool,
    pub duties_done: BTreeSet<Duty>,
    pub links: BTreeSet<(LinkKind, Uuid)>,
    /// (clock, warned) and (clock, breached) already recorded.
    pub warned: BTreeSet<ClockKind>,
    pub breached: BTreeSet<ClockKind>,
}

impl Incident {
    /// The duties the current warning level brings.
    pub fn duties(&self) -> Vec<Duty> {
        let mut duties = Vec::new();
        if self.warning_level >= 2 {
            duties.push(Duty::ReportToOperationsManager);
            duties.push(Duty::ReportToDepartmentLeaders);
            if self.vendor_needed {
                duties.push(Duty::CallVendor);
            }
        }
        if self.warning_level >= 3 {
            duties.push(Duty::ReportToOperationsHead);
            if self.hardware_replacement {
                duties.push(Duty::ReplaceHardware);
            }
        }
        duties
    }

    /// The duties not yet done.
    pub fn outstanding_duties(&self) -> Vec<Duty> {
        self.duties()
            .into_iter()
            .filter(|d| !self.duties_done.contains(d))
            .collect()
    }

    fn open(&self) -> Result<(), IncidentError> {
        match self.status {
            _ if self.id.is_none() => Err(IncidentError::NotFound),
            IncidentStatus::Closed => Err(IncidentError::Closed),
            IncidentStatus::Resolved => Err(IncidentError::Resolved),
            _ => Ok(()),
        }
    }

    fn not_closed(&self) -> Result<(), IncidentError> {
        match self.status {
            _ if self.id.is_none() => Err(IncidentError::NotFound),
            IncidentStatus::Closed => Err(IncidentError::Closed),
            _ => Ok(()),
        }
    }
}

fn works_incidents(ctx: &Context) -> bool {
    let a = &ctx.actor;
    a.operates()
        || [
            Role::ServiceDesk,
            Role::Engineer,
            Role::OperationsManager,
            Role::OperationsHead,
        ]
        .into_iter()
        .any(|r| a.has_role(r))
}

fn required(field: &str, text: &str) -> Result<(), InvalidField> {
    if text.trim().is_empty() {
        return Err(invalid(field, "is required"));
    }
    Ok(())
}

fn level(level: u8) -> Result<u8, InvalidField> {
    if (1..=3).contains(&level) {
        Ok(level)
    } else {
        Err(invalid("level", "must be 1, 2 or 3"))
    }
}

impl Aggregate for Incident {
    const KIND: &'static str = "incident";
    type Command = IncidentCommand;
    type Event = IncidentEvent;
    type Error = IncidentError;

    fn decide(
        &self,
        command: IncidentCommand,
        ctx: &Context,
    ) -> Result<Vec<IncidentEvent>, IncidentError> {
        use IncidentCommand as C;
        use IncidentEvent as E;
        if let C::RecordSlaWarning { .. } | C::RecordSlaBreach { .. } = command {
            if !ctx.actor.is_system() {
                return Err(IncidentError::NotScheduler);
            }
        } else if !works_incidents(ctx) {
            return Err(IncidentError::NotPermitted);
        }
        match command {
            C::Open {
                incident_id,
                mut opening,
                priority,
            } => {
                if self.id.is_some() {
                    return Err(IncidentError::AlreadyOpened);
                }
                required("title", &opening.title)?;
                required("description", &opening.description)?;
                required("service", &opening.service)?;
                opening.service = opening.service.trim().to_owned();
                opening.warning_level = level(opening.warning_level)
                    .map_err(|_| invalid("warningLevel", "must be 1, 2 or 3"))?;
                let priority =
                    priority.unwrap_or_else(|| Priority::from_assessment(&opening.assessment));
                priority.validate()?;
                opening.priority = priority;
                let severity = opening.assessment.severity();
                Ok(vec![E::IncidentOpened {
                    incident_id,
                    opening,
                    severity,
                }])
            }
            C::Acknowledge { note } => {
                self.open()?;
                if self.acknowledged {
                    return Err(IncidentError::AlreadyAcknowledged);
                }
                Ok(vec![E::IncidentAcknowledged { note }])
            }
            C::Assign { team, assignee } => {
                self.open()?;
                if team.is_none() && assignee.is_none() {
                    return Err(invalid("team", "or assignee is required").into());
                }
                Ok(vec![E::IncidentAssigned { team, assignee }])
            }
            C::Reassess {
                assessment,
                priority,
                reason,
            } => {
                self.open()?;
                required("reason", &reason)?;
                let priority = priority.unwrap_or_else(|| Priority::from_assessment(&assessment));
                priority.validate()?;
                let to = assessment.severity();
                if to == self.severity && Some(priority) == self.priority {
                    return Err(IncidentError::Unchanged);
                }
                Ok(vec![E::SeverityChanged {
                    from: self.severity,
                    to,
                    assessment,
                    priority,
                    reason,
                }])
            }
            C::SetWarningLevel {
                level: to,
                reason,
                vendor_needed,
                hardware_replacement,
            } => {
                self.open()?;
                let to = level(to)?;
                required("reason", &reason)?;
                if to == self.warning_level
                    && vendor_needed == self.vendor_needed
                    && hardware_replacement == self.hardware_replacement
                {
                    return Err(IncidentError::SameLevel(to));
                }
                Ok(vec![E::WarningLevelChanged {
                    from: self.warning_level,
                    to,
                    reason,
                    vendor_needed,
                    hardware_replacement,
                }])
            }
            C::RecordDuty { duty, note } => {
                self.not_closed()?;
                required("note", &note)?;
                if !self.duties().contains(&duty) {
                    return Err(IncidentError::NoSuchDuty(duty, self.warning_level));
                }
                if self.duties_done.contains(&duty) {
                    return Err(IncidentError::DutyAlreadyDone(duty));
                }
                Ok(vec![E::DutyDone { duty, note }])
            }
            C::LogWork { note } => {
                self.not_closed()?;
                required("note", &note)?;
                Ok(vec![E::WorkLogged { note }])
            }
            C::Pause { reason, note } => {
                self.open()?;
                required("note", &note)?;
                if self.status == IncidentStatus::Pending {
                    return Err(IncidentError::AlreadyPaused);
                }
                Ok(vec![E::IncidentPaused { reason, note }])
            }
            C::Resume { note } => {
                self.open()?;
                if self.status != IncidentStatus::Pending {
                    return Err(IncidentError::NotPaused);
                }
                Ok(vec![E::IncidentResumed { note }])
            }
            C::Link { kind, id } => {
                self.not_closed()?;
                if self.links.contains(&(kind, id)) {
                    return Err(IncidentError::AlreadyLinked);
                }
                Ok(vec![E::IncidentLinked { kind, id }])
            }
            C::Resolve { resolution } => {
                self.open()?;
                required("cause", &resolution.cause)?;
                required("resolution", &resolution.resolution)?;
                Ok(vec![E::IncidentResolved { resolution }])
            }
            C::Reopen { reason } => {
                self.not_closed()?;
                if self.status != IncidentStatus::Resolved {
                    return Err(IncidentError::NotResolved);
                }
                required("reason", &reason)?;
                Ok(vec![E::IncidentReopened { reason }])
            }
            C::Close { note } => {
                self.not_closed()?;
                if self.status != IncidentStatus::Resolved {
                    return Err(IncidentError::NotResolved);
                }
                Ok(vec![E::IncidentClosed { note }])
            }
            // A clock that fell due before the incident was closed is recorded even after:
            // the breach happened, however late the scheduler sees it.
            C::RecordSlaWarning { clock, at } => {
                if self.id.is_none() {
                    return Err(IncidentError::NotFound);
                }
                if self.warned.contains(&clock) || self.breached.contains(&clock) {
                    return Err(IncidentError::AlreadyRecorded(clock.as_str(), "warning"));
                }
                let mut events = vec![E::SlaWarned { clock, at }];
                if self.warning_level < 2 && self.open().is_ok() {
                    events.push(E::WarningLevelChanged {
                        from: self.warning_level,
                        to: 2,
                        reason: format!("the {} SLA reached its warning share", clock.as_str()),
                        vendor_needed: self.vendor_needed,
                        hardware_replacement: self.hardware_replacement,
                    });
                }
                Ok(events)
            }
            C::RecordSlaBreach { clock, at } => {
                if self.id.is_none() {
                    return Err(IncidentError::NotFound);
                }
                if self.breached.contains(&clock) {
                    return Err(IncidentError::AlreadyRecorded(clock.as_str(), "breach"));
                }
                let mut events = vec![E::SlaBreached { clock, at }];
                if self.warning_level < 3 && self.open().is_ok() {
                    events.push(E::WarningLevelChanged {
                        from: self.warning_level,
                        to: 3,
                        reason: format!("the {} SLA was breached", clock.as_str()),
                        vendor_needed: self.vendor_needed,
                        hardware_replacement: self.hardware_replacement,
                    });
                }
                Ok(events)
            }
        }
    }

    fn evolve(mut self, event: &IncidentEvent) -> Self {
        use IncidentEvent as E;
        match event {
            E::IncidentOpened {
                incident_id,
                opening,
                severity,
            } => {
                self.id = Some(*incident_id);
                self.severity = *severity;
                self.assessment = opening.assessment;
                self.priority = Some(opening.priority);
                self.warning_level = opening.warning_level;
                for ci in &opening.ci_ids {
                    self.links.insert((LinkKind::ConfigurationItem, *ci));
                }
                if let Source::Desk { ticket_id: Some(t) } = opening.source {
                    self.links.insert((LinkKind::Ticket, t));
                }
            }
            E::IncidentAcknowledged { .. } => {
                self.acknowledged = true;
                if self.status == IncidentStatus::New {
                    self.status = IncidentStatus::InProgress;
                }
            }
            E::IncidentAssigned { .. } | E::WorkLogged { .. } | E::SlaWarned { .. } => {
                if let E::SlaWarned { clock, .. } = event {
                    self.warned.insert(*clock);
                }
            }
            E::SeverityChanged {
                to,
                assessment,
                priority,
                ..
            } => {
                self.severity = *to;
                self.assessment = *assessment;
                self.priority = Some(*priority);
            }
            E::WarningLevelChanged {
                to,
                vendor_needed,
                hardware_replacement,
                ..
            } => {
                self.warning_level = *to;
                self.vendor_needed = *vendor_needed;
                self.hardware_replacement = *hardware_replacement;
            }
            E::DutyDone { duty, .. } => {
                self.duties_done.insert(*duty);
            }
            E::IncidentPaused { .. } => self.status = IncidentStatus::Pending,
            E::IncidentResumed { .. } => self.status = IncidentStatus::InProgress,
            E::IncidentLinked { kind, id } => {
                self.links.insert((*kind, *id));
            }
            E::IncidentResolved { .. } => {
                self.status = IncidentStatus::Resolved;
                self.acknowledged = true;
            }
            E::IncidentReopened { .. } => self.status = IncidentStatus::InProgress,
            E::IncidentClosed { .. } => self.status = IncidentStatus::Closed,
            E::SlaBreached { clock, .. } => {
                self.breached.insert(*clock);
            }
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

    fn scheduler() -> Actor {
        Actor::system("scheduler")
    }

    fn opening(assessment: Assessment) -> Box<Opening> {
        Box::new(Opening {
            title: "機房空調故障".into(),
            description: "2號空調停機,機房溫度升高".into(),
            service: "machine-room".into(),
            ci_ids: vec![],
            assessment,
            priority: Priority {
                impact: 3,
                urgency: 3,
            },
            warning_level: 1,
            source: Source::Monitoring,
            department: None,
        })
    }

    fn opened(assessment: Assessment) -> IncidentEvent {
        let mut o = opening(assessment);
        o.priority = Priority::from_assessment(&assessment);
        IncidentEvent::IncidentOpened {
            incident_id: Uuid::nil(),
            severity: assessment.severity(),
            opening: o,
        }
    }

    #[test]
    fn the_highest_factor_decides_the_severity() {
        let a = |importance, loss, social_impact| Assessment {
            importance,
            loss,
            social_impact,
        };
        use Extent::*;
        assert_eq!(
            a(Importance::General, Minor, Minor).severity(),
            Severity::General
        );
        assert_eq!(
            a(Importance::General, Serious, Minor).severity(),
            Severity::Important
        );
        assert_eq!(
            a(Importance::EspeciallyImportant, Minor, Minor).severity(),
            Severity::Urgent
        );
        assert_eq!(
            Priority::from_assessment(&a(Importance::Important, Major, Minor)).number(),
            2 + 1 - 1
        );
    }

    #[test]
    fn opening_grades_the_incident_and_sets_its_priority() {
        let a = Assessment {
            importance: Importance::Important,
            ..Assessment::default()
        };
        given::<Incident>([])
            .when(
                IncidentCommand::Open {
                    incident_id: Uuid::nil(),
                    opening: opening(a),
                    priority: None,
                },
                &desk(),
            )
            .then([opened(a)]);
    }

    #[test]
    fn a_requester_cannot_open_an_incident() {
        given::<Incident>([])
            .when(
                IncidentCommand::Open {
                    incident_id: Uuid::nil(),
                    opening: opening(Assessment::default()),
                    priority: None,
                },
                &person("u-req", "finance", &["requester"]),
            )
            .then_err(IncidentError::NotPermitted);
    }

    #[test]
    fn a_closed_incident_takes_no_new_work_log() {
        let resolved = IncidentEvent::IncidentResolved {
            resolution: Resolution {
                cause: "壓縮機故障".into(),
                resolution: "更換壓縮機".into(),
                preventive_measures: String::new(),
            },
        };
        given::<Incident>([
            opened(Assessment::default()),
            resolved,
            IncidentEvent::IncidentClosed { note: None },
        ])
        .when(
            IncidentCommand::LogWork {
                note: "checked".into(),
            },
            &desk(),
        )
        .then_err(IncidentError::Closed);
    }

    #[test]
    fn a_resolved_incident_is_reopened_before_it_is_worked_again() {
        let resolved = IncidentEvent::IncidentResolved {
            resolution: Resolution {
                cause: "c".into(),
                resolution: "r".into(),
                preventive_measures: String::new(),
            },
        };
        let g = || given::<Incident>([opened(Assessment::default()), resolved.clone()]);
        g().when(
            IncidentCommand::Pause {
                reason: PauseReason::WaitingOnVendor,
                note: "parts".into(),
            },
            &desk(),
        )
        .then_err(IncidentError::Resolved);
        g().when(
            IncidentCommand::Reopen {
                reason: "user still cannot log in".into(),
            },
            &desk(),
        )
        .then([IncidentEvent::IncidentReopened {
            reason: "user still cannot log in".into(),
        }]);
    }

    #[test]
    fn level_two_brings_reporting_duties_and_each_is_done_once() {
        let eng = person("u-eng", "ops", &["engineer"]);
        let raised = IncidentEvent::WarningLevelChanged {
            from: 1,
            to: 2,
            reason: "core switch down".into(),
            vendor_needed: true,
            hardware_replacement: false,
        };
        let state = [opened(Assessment::default()), raised];
        let i = state.iter().fold(Incident::default(), |s, e| s.evolve(e));
        assert_eq!(
            i.outstanding_duties(),
            vec![
                Duty::ReportToOperationsManager,
                Duty::ReportToDepartmentLeaders,
                Duty::CallVendor
            ]
        );
        given::<Incident>(state.clone())
            .when(
                IncidentCommand::RecordDuty {
                    duty: Duty::ReplaceHardware,
                    note: "x".into(),
                },
                &eng,
            )
            .then_err(IncidentError::NoSuchDuty(Duty::ReplaceHardware, 2));
        let done = IncidentEvent::DutyDone {
            duty: Duty::CallVendor,
            note: "H3C engineer on the way".into(),
        };
        given::<Incident>(state.into_iter().chain([done]))
            .when(
                IncidentCommand::RecordDuty {
                    duty: Duty::CallVendor,
                    note: "again".into(),
                },
                &eng,
            )
            .then_err(IncidentError::DutyAlreadyDone(Duty::CallVendor));
    }

    #[test]
    fn a_breach_is_recorded_once_and_escalates_to_level_three() {
        let breach = IncidentCommand::RecordSlaBreach {
            clock: ClockKind::Resolution,
            at: at(13),
        };
        let events = given::<Incident>([opened(Assessment::default())])
            .at(at(14))
            .when(breach.clone(), &scheduler())
            .events();
        assert_eq!(
            events[0],
            IncidentEvent::SlaBreached {
                clock: ClockKind::Resolution,
                at: at(13)
            }
        );
        assert!(matches!(
            events[1],
            IncidentEvent::WarningLevelChanged { from: 1, to: 3, .. }
        ));
        given::<Incident>([opened(Assessment::default())].into_iter().chain(events))
            .when(breach.clone(), &scheduler())
            .then_err(IncidentError::AlreadyRecorded("resolution", "breach"));
        given::<Incident>([opened(Assessment::default())])
            .when(breach, &desk())
            .then_err(IncidentError::NotScheduler);
    }

    #[test]
    fn a_person_whose_id_looks_like_the_scheduler_records_no_breach() {
        let breach = IncidentCommand::RecordSlaBreach {
            clock: ClockKind::Resolution,
            at: at(13),
        };
        given::<Incident>([opened(Assessment::default())])
            .at(at(14))
            .when(breach, &person("system:scheduler", "ops", &[]))
            .then_err(IncidentError::NotScheduler);
    }

    #[test]
    fn a_pause_needs_a_running_incident_and_a_resume_a_paused_one() {
        let g = || given::<Incident>([opened(Assessment::default())]);
        g().when(IncidentCommand::Resume { note: None }, &desk())
            .then_err(IncidentError::NotPaused);
        let paused = IncidentEvent::IncidentPaused {
            reason: PauseReason::WaitingOnCustomer,
            note: "waiting for the user's logs".into(),
        };
        given::<Incident>([opened(Assessment::default()), paused])
            .when(
                IncidentCommand::Pause {
                    reason: PauseReason::WaitingOnVendor,
                    note: "n".into(),
                },
                &desk(),
            )
            .then_err(IncidentError::AlreadyPaused);
    }

    #[test]
    fn a_resolution_names_its_cause() {
        given::<Incident>([opened(Assessment::default())])
            .when(
                IncidentCommand::Resolve {
                    resolution: Resolution::default(),
                },
                &desk(),
            )
            .then_err(IncidentError::Invalid(invalid("cause", "is required")));
    }
}
