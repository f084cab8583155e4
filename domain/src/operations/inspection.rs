//! Inspections (巡檢): the service plan's machine-room walks, platform checks, log and backup
//! checks and monthly tuning. An [`InspectionTemplate`] holds a checklist and the
//! [`Schedule`] it is walked on; each slot of the schedule becomes one [`Inspection`],
//! whose stream id is derived from the template and the due time, so two scheduler
//! replicas cannot create it twice. An inspector records each item as ok or as an anomaly
//! (a reading outside its range is an anomaly whatever they say); an inspection not done by
//! its deadline is marked overdue; and each anomaly whose item opens an incident is linked
//! to the incident opened for it, so nothing found is lost.

mod plan;
mod schedule;
mod template;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent, Role};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};

pub use plan::plan_templates;
pub use schedule::{Cadence, Schedule, Slot, SITE_TIME_ZONE};
pub use template::{
    template_id, validate_items, Area, ChecklistItem, IncidentLevel, InspectionTemplate,
    InspectionTemplateCommand, InspectionTemplateError, InspectionTemplateEvent, ItemKind,
    TemplateDefinition,
};

/// The id of the inspection of `template_id` due at `due`: the same on every replica and
/// after every restart. It is the UUID v5 (OID namespace) of
/// `opsledger:inspection:<template_id>:<due in RFC 3339, UTC, e.g. 2026-11-26T09:00:00Z>`.
pub fn inspection_id(template_id: Uuid, due: DateTime<Utc>) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!(
            "opsledger:inspection:{template_id}:{}",
            due.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        )
        .as_bytes(),
    )
}

/// The id for the incident opened for the anomaly of item `key`, so a process manager that
/// sees the anomaly twice opens one incident.
pub fn anomaly_incident_id(inspection_id: Uuid, key: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger:inspection_anomaly:{inspection_id}:{key}").as_bytes(),
    )
}

/// What the inspector says of an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Anomaly,
}

/// One item's result as the inspector gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemResult {
    pub key: String,
    pub outcome: Outcome,
    /// Required for a reading item, refused for a check.
    pub reading: Option<f64>,
    /// Required for an anomaly the inspector reports: what they found.
    pub note: Option<String>,
}

/// Why an item is an anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AnomalyCause {
    /// The inspector reported it, and the reading (if any) is within range.
    Reported,
    BelowMinimum {
        min: f64,
    },
    AboveMaximum {
        max: f64,
    },
}

/// One item's result as recorded: what the inspector said, and whether it is an anomaly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub key: String,
    /// As the inspector marked it.
    pub outcome: Outcome,
    pub reading: Option<f64>,
    pub note: Option<String>,
    /// `Some` when it is an anomaly: reported, or its reading out of range.
    pub anomaly: Option<AnomalyCause>,
}

/// An anomaly with what the incident process needs to act on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub key: String,
    pub name: String,
    pub reading: Option<f64>,
    pub unit: Option<String>,
    pub note: Option<String>,
    pub cause: AnomalyCause,
    pub opens_incident: bool,
    pub level: IncidentLevel,
}

/// Orders to an inspection.
#[derive(Clone, Debug)]
pub enum InspectionCommand {
    /// Creates the inspection of one slot, with the checklist of the template version it
    /// copies (see [`InspectionTemplate::inspection_for`]). By the scheduler or an operator.
    ScheduleInspection {
        template_id: Uuid,
        template_version: u32,
        name: String,
        area: Area,
        items: Vec<ChecklistItem>,
        due: DateTime<Utc>,
        deadline: DateTime<Utc>,
    },
    /// Results for some or all items, from its due time on; the inspection is complete once
    /// every item has one. By an engineer, an operator, or a monitoring component.
    RecordResults { results: Vec<ItemResult> },
    /// By the scheduler, once the deadline has passed with items still open.
    MarkOverdue,
    /// The anomaly of `key` opened `incident_id`.
    LinkIncident { key: String, incident_id: Uuid },
}

/// What happened to an inspection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum InspectionEvent {
    InspectionScheduled {
        inspection_id: Uuid,
        template_id: Uuid,
        template_version: u32,
        name: String,
        area: Area,
        items: Vec<ChecklistItem>,
        due: DateTime<Utc>,
        deadline: DateTime<Utc>,
    },
    /// `anomalies` are those among these findings; each whose item `opens_incident` is for
    /// the incident process to open and link.
    InspectionResultsRecorded {
        by: String,
        at: DateTime<Utc>,
        /// Recorded at or after the deadline.
        late: bool,
        findings: Vec<Finding>,
        anomalies: Vec<Anomaly>,
    },
    /// Every item has a result; follows the results that completed it.
    InspectionCompleted {
        by: String,
        at: DateTime<Utc>,
        late: bool,
        /// Anomalies among all the inspection's findings.
        anomalies: u32,
    },
    /// The deadline passed with `missing` items unrecorded. Results may still come; they
    /// are late, and this event stays.
    InspectionOverdue {
        deadline: DateTime<Utc>,
        at: DateTime<Utc>,
        missing: Vec<String>,
    },
    InspectionIncidentLinked {
        key: String,
        incident_id: Uuid,
    },
}

impl DomainEvent for InspectionEvent {}

/// Why an inspection refuses a command.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InspectionError {
    /// Only operators, administrators and system components schedule, mark overdue and link (forbidden)
    #[error("only operators, administrators and the system's components schedule inspections, mark them overdue and link incidents")]
    NotOperator,
    /// Only engineers, operators and system components record results (forbidden)
    #[error("only engineers, operators and the system's components record inspection results")]
    NotInspector,
    /// The inspection is scheduled already (conflict)
    #[error("this inspection is already scheduled")]
    AlreadyScheduled,
    /// There is no such inspection (not found)
    #[error("there is no such inspection")]
    NotScheduled,
    /// The inspection is complete (conflict)
    #[error("the inspection is complete and takes no more results")]
    AlreadyCompleted,
    /// The inspection is not due yet (conflict)
    #[error("the inspection is not due until {due}")]
    NotYetDue { due: DateTime<Utc> },
    /// The item has a result already (conflict)
    #[error("item {key} already has a result")]
    ItemAlreadyRecorded { key: String },
    /// The inspection is marked overdue already (conflict)
    #[error("the inspection is already marked overdue")]
    AlreadyOverdue,
    /// The inspection's deadline has not passed (conflict)
    #[error("the inspection is not overdue before its deadline {deadline}")]
    DeadlineNotPassed { deadline: DateTime<Utc> },
    /// The item has no anomaly to link (conflict)
    #[error("item {key} has no anomaly recorded")]
    NoAnomaly { key: String },
    /// The item's anomaly is linked to an incident already (conflict)
    #[error("the anomaly of item {key} is already linked to incident {incident_id}")]
    IncidentAlreadyLinked { key: String, incident_id: Uuid },
    /// A field of the inspection breaks its rules (invalid)
    #[error("invalid inspection: {0}")]
    Invalid(#[from] InvalidField),
}

impl Refuse for InspectionError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::NotOperator | Self::NotInspector => Refusal::Forbidden,
            Self::AlreadyScheduled
            | Self::AlreadyCompleted
            | Self::NotYetDue { .. }
            | Self::ItemAlreadyRecorded { .. }
            | Self::AlreadyOverdue
            | Self::DeadlineNotPassed { .. }
            | Self::NoAnomaly { .. }
            | Self::IncidentAlreadyLinked { .. } => Refusal::Conflict,
            Self::NotScheduled => Refusal::NotFound,
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
        }
    }
}

/// Where an inspection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InspectionStatus {
    /// Scheduled, no result yet.
    Open,
    /// Some items have results.
    InProgress,
    /// Past its deadline and not complete.
    Overdue,
    Completed,
    /// Completed at or after its deadline.
    CompletedLate,
}

/// An inspection's state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inspection {
    pub inspection_id: Option<Uuid>,
    pub template_id: Uuid,
    pub template_version: u32,
    pub name: String,
    pub area: Option<Area>,
    pub items: Vec<ChecklistItem>,
    pub due: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    /// By item key.
    pub findings: BTreeMap<String, Finding>,
    pub anomalies: Vec<Anomaly>,
    /// Incident by anomalous item key.
    pub incidents: BTreeMap<String, Uuid>,
    pub completed_at: Option<DateTime<Utc>>,
    pub completed_late: bool,
    pub overdue_at: Option<DateTime<Utc>>,
}

impl Inspection {
    /// Where it stands; `None` before it is scheduled.
    pub fn status(&self) -> Option<InspectionStatus> {
        self.inspection_id?;
        Some(match (self.completed_at, self.overdue_at) {
            (Some(_), _) if self.completed_late => InspectionStatus::CompletedLate,
            (Some(_), _) => InspectionStatus::Completed,
            (None, Some(_)) => InspectionStatus::Overdue,
            (None, None) if self.findings.is_empty() => InspectionStatus::Open,
            (None, None) => InspectionStatus::InProgress,
        })
    }

    /// The anomalies that open an incident and have none linked yet.
    pub fn incidents_to_open(&self) -> impl Iterator<Item = &Anomaly> {
        self.anomalies
            .iter()
            .filter(|a| a.opens_incident && !self.incidents.contains_key(&a.key))
    }

    fn deadline(&self) -> Result<DateTime<Utc>, InspectionError> {
        self.deadline.ok_or(InspectionError::NotScheduled)
    }

    fn record(
        &self,
        results: Vec<ItemResult>,
        ctx: &Context,
    ) -> Result<Vec<InspectionEvent>, InspectionError> {
        let deadline = self.deadline()?;
        if self.completed_at.is_some() {
            return Err(InspectionError::AlreadyCompleted);
        }
        if let Some(due) = self.due.filter(|due| ctx.now < *due) {
            // A walk is done when it is due, not filled in ahead.
            return Err(InspectionError::NotYetDue { due });
        }
        if results.is_empty() {
            return Err(invalid("results", "must hold at least one result").into());
        }
        let mut findings = Vec::with_capacity(results.len());
        let mut anomalies = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            let field = |name: &str| format!("results[{i}].{name}");
            let item = self
                .items
                .iter()
                .find(|item| item.key == result.key)
                .ok_or_else(|| {
                    invalid(
                        field("key"),
                        format!("{:?} is not an item of this inspection", result.key),
                    )
                })?;
            if self.findings.contains_key(&result.key) {
                return Err(InspectionError::ItemAlreadyRecorded { key: result.key });
            }
            if findings.iter().any(|f: &Finding| f.key == result.key) {
                return Err(invalid(field("key"), format!("{:?} is repeated", result.key)).into());
            }
            let (finding, anomaly) = judge(item, result, &field)?;
            anomalies.extend(anomaly);
            findings.push(finding);
        }
        let late = ctx.now >= deadline;
        let complete = self.items.iter().all(|item| {
            self.findings.contains_key(&item.key) || findings.iter().any(|f| f.key == item.key)
        });
        let all_anomalies = self.anomalies.len() + anomalies.len();
        let mut events = vec![InspectionEvent::InspectionResultsRecorded {
            by: ctx.actor.id.clone(),
            at: ctx.now,
            late,
            findings,
            anomalies,
        }];
        if complete {
            events.push(InspectionEvent::InspectionCompleted {
                by: ctx.actor.id.clone(),
                at: ctx.now,
                late,
                anomalies: u32::try_from(all_anomalies).unwrap_or(u32::MAX),
            });
        }
        Ok(events)
    }
}

/// One result against its item: whether it is complete, and whether it is an anomaly.
fn judge(
    item: &ChecklistItem,
    result: ItemResult,
    field: &dyn Fn(&str) -> String,
) -> Result<(Finding, Option<Anomaly>), InvalidField> {
    let note = result
        .note
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if result.outcome == Outcome::Anomaly && note.is_none() {
        return Err(invalid(field("note"), "must say what was found"));
    }
    let (unit, out_of_range) = match (&item.kind, result.reading) {
        (ItemKind::Check, None) => (None, None),
        (ItemKind::Check, Some(_)) => {
            return Err(invalid(field("reading"), "is not taken for a check"));
        }
        (ItemKind::Reading { unit, .. }, None) => {
            return Err(invalid(
                field("reading"),
                format!("is required: {} is read in {unit}", item.name),
            ));
        }
        (ItemKind::Reading { .. }, Some(r)) if !r.is_finite() => {
            return Err(invalid(field("reading"), "must be a finite number"));
        }
        (ItemKind::Reading { unit, min, max }, Some(r)) => {
            let cause = match (*min, *max) {
                (Some(min), _) if r < min => Some(AnomalyCause::BelowMinimum { min }),
                (_, Some(max)) if r > max => Some(AnomalyCause::AboveMaximum { max }),
                _ => None,
            };
            (Some(unit.clone()), cause)
        }
    };
    // The range decides over the inspector's word; within it, their word stands.
    let cause =
        out_of_range.or((result.outcome == Outcome::Anomaly).then_some(AnomalyCause::Reported));
    let anomaly = cause.map(|cause| Anomaly {
        key: result.key.clone(),
        name: item.name.clone(),
        reading: result.reading,
        unit,
        note: note.clone(),
        cause,
        opens_incident: item.opens_incident,
        level: item.level,
    });
    let finding = Finding {
        key: result.key,
        outcome: result.outcome,
        reading: result.reading,
        note,
        anomaly: cause,
    };
    Ok((finding, anomaly))
}

impl Aggregate for Inspection {
    const KIND: &'static str = "inspection";
    type Command = InspectionCommand;
    type Event = InspectionEvent;
    type Error = InspectionError;

    fn decide(
        &self,
        command: InspectionCommand,
        ctx: &Context,
    ) -> Result<Vec<InspectionEvent>, InspectionError> {
        let operates = ctx.actor.operates();
        match command {
            InspectionCommand::ScheduleInspection {
                template_id,
                template_version,
                name,
                area,
                items,
                due,
                deadline,
            } => {
                if !operates {
                    return Err(InspectionError::NotOperator);
                }
                if self.inspection_id.is_some() {
                    return Err(InspectionError::AlreadyScheduled);
                }
                validate_items(&items)?;
                if deadline <= due {
                    return Err(invalid("deadline", "must be after due").into());
                }
                Ok(vec![InspectionEvent::InspectionScheduled {
                    inspection_id: inspection_id(template_id, due),
                    template_id,
                    template_version,
                    name,
                    area,
                    items,
                    due,
                    deadline,
                }])
            }
            InspectionCommand::RecordResults { results } => {
                if !operates && !ctx.actor.has_role(Role::Engineer) {
                    return Err(InspectionError::NotInspector);
                }
                self.record(results, ctx)
            }
            InspectionCommand::MarkOverdue => {
                if !operates {
                    return Err(InspectionError::NotOperator);
                }
                let deadline = self.deadline()?;
                if self.completed_at.is_some() {
                    return Err(InspectionError::AlreadyCompleted);
                }
                if self.overdue_at.is_some() {
                    return Err(InspectionError::AlreadyOverdue);
                }
                if ctx.now < deadline {
                    return Err(InspectionError::DeadlineNotPassed { deadline });
                }
                Ok(vec![InspectionEvent::InspectionOverdue {
                    deadline,
                    at: ctx.now,
                    missing: self
                        .items
                        .iter()
                        .filter(|item| !self.findings.contains_key(&item.key))
                        .map(|item| item.key.clone())
                        .collect(),
                }])
            }
            InspectionCommand::LinkIncident { key, incident_id } => {
                if !operates {
                    return Err(InspectionError::NotOperator);
                }
                self.deadline()?;
                if let Some(linked) = self.incidents.get(&key) {
                    return Err(InspectionError::IncidentAlreadyLinked {
                        key,
                        incident_id: *linked,
                    });
                }
                if !self.anomalies.iter().any(|a| a.key == key) {
                    return Err(InspectionError::NoAnomaly { key });
                }
                Ok(vec![InspectionEvent::InspectionIncidentLinked {
                    key,
                    incident_id,
                }])
            }
        }
    }

    fn evolve(mut self, event: &InspectionEvent) -> Self {
        match event {
            InspectionEvent::InspectionScheduled {
                inspection_id,
                template_id,
                template_version,
                name,
                area,
                items,
                due,
                deadline,
            } => {
                self.inspection_id = Some(*inspection_id);
                self.template_id = *template_id;
                self.template_version = *template_version;
                self.name.clone_from(name);
                self.area = Some(*area);
                self.items.clone_from(items);
                self.due = Some(*due);
                self.deadline = Some(*deadline);
            }
            InspectionEvent::InspectionResultsRecorded {
                findings,
                anomalies,
                ..
            } => {
                for finding in findings {
                    self.findings.insert(finding.key.clone(), finding.clone());
                }
                self.anomalies.extend(anomalies.iter().cloned());
            }
            InspectionEvent::InspectionCompleted { at, late, .. } => {
                self.completed_at = Some(*at);
                self.completed_late = *late;
            }
            InspectionEvent::InspectionOverdue { at, .. } => self.overdue_at = Some(*at),
            InspectionEvent::InspectionIncidentLinked { key, incident_id } => {
                self.incidents.insert(key.clone(), *incident_id);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::kernel::given::{at, given, person};
    use crate::Actor;

    fn scheduler() -> Actor {
        Actor::system("scheduler")
    }

    fn engineer() -> Actor {
        person("u-lam", "運維中心", &["engineer"])
    }

    fn walk() -> Uuid {
        template_id("machine_room_walk")
    }

    fn items() -> Vec<ChecklistItem> {
        vec![
            ChecklistItem::reading("temperature", "機房溫度", "°C", Some(18.0), Some(27.0))
                .level(IncidentLevel::Important),
            ChecklistItem::check("door_locks", "機柜門及機房門鎖閉"),
            ChecklistItem::check("cleanliness", "地板污漬、水漬、垃圾").without_incident(),
        ]
    }

    fn schedule_walk() -> InspectionCommand {
        InspectionCommand::ScheduleInspection {
            template_id: walk(),
            template_version: 1,
            name: "機房環境巡檢".into(),
            area: Area::MachineRoom,
            items: items(),
            due: at(9),
            deadline: at(10),
        }
    }

    fn scheduled() -> InspectionEvent {
        InspectionEvent::InspectionScheduled {
            inspection_id: inspection_id(walk(), at(9)),
            template_id: walk(),
            template_version: 1,
            name: "機房環境巡檢".into(),
            area: Area::MachineRoom,
            items: items(),
            due: at(9),
            deadline: at(10),
        }
    }

    fn ok(key: &str) -> ItemResult {
        ItemResult {
            key: key.into(),
            outcome: Outcome::Ok,
            reading: None,
            note: None,
        }
    }

    fn read(key: &str, reading: f64) -> ItemResult {
        ItemResult {
            reading: Some(reading),
            ..ok(key)
        }
    }

    fn anomaly(key: &str, note: &str) -> ItemResult {
        ItemResult {
            outcome: Outcome::Anomaly,
            note: Some(note.into()),
            ..ok(key)
        }
    }

    fn record(results: Vec<ItemResult>) -> InspectionCommand {
        InspectionCommand::RecordResults { results }
    }

    fn finding(result: ItemResult, anomaly: Option<AnomalyCause>) -> Finding {
        Finding {
            key: result.key,
            outcome: result.outcome,
            reading: result.reading,
            note: result.note,
            anomaly,
        }
    }

    fn fold(events: impl IntoIterator<Item = InspectionEvent>) -> Inspection {
        events
            .into_iter()
            .fold(Inspection::default(), |s, e| s.evolve(&e))
    }

    /// The walk at 09:00 with the door found open at 09:20.
    fn door_found_open() -> InspectionEvent {
        InspectionEvent::InspectionResultsRecorded {
            by: "u-lam".into(),
            at: at(9) + Duration::minutes(20),
            late: false,
            findings: vec![finding(
                anomaly("door_locks", "3 號機柜門未鎖"),
                Some(AnomalyCause::Reported),
            )],
            anomalies: vec![Anomaly {
                key: "door_locks".into(),
                name: "機柜門及機房門鎖閉".into(),
                reading: None,
                unit: None,
                note: Some("3 號機柜門未鎖".into()),
                cause: AnomalyCause::Reported,
                opens_incident: true,
                level: IncidentLevel::General,
            }],
        }
    }

    #[test]
    fn an_inspection_id_depends_only_on_the_template_and_the_due_time() {
        let id = inspection_id(walk(), at(9));
        // Fixed: a change to how ids are derived would schedule every slot again. The
        // value is uuid5(OID, "opsledger:inspection:<template>:2026-11-26T09:00:00Z").
        assert_eq!(id.to_string(), "74565383-6bf1-5211-9576-c090efcd70b8");
        assert_eq!(id.get_version_num(), 5);
        assert_ne!(id, inspection_id(walk(), at(10)));
        assert_ne!(id, inspection_id(template_id("platform_check"), at(9)));
    }

    #[test]
    fn the_scheduler_schedules_each_slot_once() {
        given::<Inspection>([])
            .when(schedule_walk(), &scheduler())
            .then([scheduled()]);
        given::<Inspection>([scheduled()])
            .when(schedule_walk(), &scheduler())
            .then_err(InspectionError::AlreadyScheduled);
    }

    #[test]
    fn an_inspection_is_scheduled_with_a_checklist_and_a_deadline_after_it_is_due() {
        let InspectionCommand::ScheduleInspection {
            template_id,
            template_version,
            name,
            area,
            due,
            ..
        } = schedule_walk()
        else {
            unreachable!()
        };
        let with = |items: Vec<ChecklistItem>, deadline| InspectionCommand::ScheduleInspection {
            template_id,
            template_version,
            name: name.clone(),
            area,
            items,
            due,
            deadline,
        };
        given::<Inspection>([])
            .when(with(items(), at(9)), &scheduler())
            .then_err(invalid("deadline", "must be after due").into());
        given::<Inspection>([])
            .when(with(vec![], at(10)), &scheduler())
            .then_err(invalid("items", "must list at least one item").into());
    }

    #[test]
    fn engineers_record_inspections_but_do_not_schedule_them() {
        given::<Inspection>([])
            .when(schedule_walk(), &engineer())
            .then_err(InspectionError::NotOperator);
        given::<Inspection>([scheduled()])
            .when(
                record(vec![ok("door_locks")]),
                &person("u-chan", "財政局", &["requester"]),
            )
            .then_err(InspectionError::NotInspector);
        given::<Inspection>([])
            .when(record(vec![ok("door_locks")]), &engineer())
            .then_err(InspectionError::NotScheduled);
    }

    #[test]
    fn recording_every_item_completes_the_inspection() {
        let now = at(9) + Duration::minutes(30);
        given::<Inspection>([scheduled()])
            .at(now)
            .when(
                record(vec![
                    read("temperature", 23.5),
                    ok("door_locks"),
                    ok("cleanliness"),
                ]),
                &engineer(),
            )
            .then([
                InspectionEvent::InspectionResultsRecorded {
                    by: "u-lam".into(),
                    at: now,
                    late: false,
                    findings: vec![
                        finding(read("temperature", 23.5), None),
                        finding(ok("door_locks"), None),
                        finding(ok("cleanliness"), None),
                    ],
                    anomalies: vec![],
                },
                InspectionEvent::InspectionCompleted {
                    by: "u-lam".into(),
                    at: now,
                    late: false,
                    anomalies: 0,
                },
            ]);
    }

    #[test]
    fn a_reading_outside_its_range_is_an_anomaly_even_if_marked_ok() {
        let events = given::<Inspection>([scheduled()])
            .when(record(vec![read("temperature", 29.5)]), &engineer())
            .events();
        let InspectionEvent::InspectionResultsRecorded {
            findings,
            anomalies,
            ..
        } = &events[0]
        else {
            panic!("expected the results, got {events:?}");
        };
        let too_hot = AnomalyCause::AboveMaximum { max: 27.0 };
        assert_eq!(
            findings,
            &[finding(read("temperature", 29.5), Some(too_hot))]
        );
        assert_eq!(
            anomalies,
            &[Anomaly {
                key: "temperature".into(),
                name: "機房溫度".into(),
                reading: Some(29.5),
                unit: Some("°C".into()),
                note: None,
                cause: too_hot,
                opens_incident: true,
                level: IncidentLevel::Important,
            }]
        );
        assert_eq!(events.len(), 1, "two items are still open");

        let too_cold = given::<Inspection>([scheduled()])
            .when(record(vec![read("temperature", 16.0)]), &engineer())
            .events();
        assert!(matches!(
            &too_cold[0],
            InspectionEvent::InspectionResultsRecorded { anomalies, .. }
                if anomalies[0].cause == AnomalyCause::BelowMinimum { min: 18.0 }
        ));
    }

    #[test]
    fn a_reading_on_its_bound_is_within_range() {
        let events = given::<Inspection>([scheduled()])
            .when(record(vec![read("temperature", 27.0)]), &engineer())
            .events();
        assert!(matches!(
            &events[0],
            InspectionEvent::InspectionResultsRecorded { anomalies, .. } if anomalies.is_empty()
        ));
    }

    #[test]
    fn an_inspector_reports_an_anomaly_with_what_they_found() {
        given::<Inspection>([scheduled()])
            .at(at(9) + Duration::minutes(20))
            .when(
                record(vec![anomaly("door_locks", " 3 號機柜門未鎖 ")]),
                &engineer(),
            )
            .then([door_found_open()]);
        given::<Inspection>([scheduled()])
            .when(
                record(vec![ItemResult {
                    note: Some("  ".into()),
                    ..anomaly("door_locks", "")
                }]),
                &engineer(),
            )
            .then_err(invalid("results[0].note", "must say what was found").into());
    }

    #[test]
    fn each_result_names_an_item_and_a_reading_item_needs_its_reading() {
        let bad = |results: Vec<ItemResult>, field: &str, problem: &str| {
            given::<Inspection>([scheduled()])
                .when(record(results), &engineer())
                .then_err(invalid(field, problem).into());
        };
        bad(vec![], "results", "must hold at least one result");
        bad(
            vec![ok("door_locks"), ok("humidity")],
            "results[1].key",
            "\"humidity\" is not an item of this inspection",
        );
        bad(
            vec![ok("door_locks"), ok("temperature")],
            "results[1].reading",
            "is required: 機房溫度 is read in °C",
        );
        bad(
            vec![read("door_locks", 1.0)],
            "results[0].reading",
            "is not taken for a check",
        );
        bad(
            vec![read("temperature", f64::NAN)],
            "results[0].reading",
            "must be a finite number",
        );
        bad(
            vec![ok("door_locks"), ok("door_locks")],
            "results[1].key",
            "\"door_locks\" is repeated",
        );
    }

    #[test]
    fn partial_results_leave_the_inspection_in_progress_until_every_item_has_one() {
        let history = [scheduled(), door_found_open()];
        assert_eq!(fold([scheduled()]).status(), Some(InspectionStatus::Open));
        assert_eq!(
            fold(history.clone()).status(),
            Some(InspectionStatus::InProgress)
        );
        given::<Inspection>(history.clone())
            .when(record(vec![ok("door_locks")]), &engineer())
            .then_err(InspectionError::ItemAlreadyRecorded {
                key: "door_locks".into(),
            });
        let events = given::<Inspection>(history.clone())
            .at(at(9) + Duration::minutes(40))
            .when(
                record(vec![read("temperature", 22.0), ok("cleanliness")]),
                &engineer(),
            )
            .events();
        assert_eq!(
            events.last(),
            Some(&InspectionEvent::InspectionCompleted {
                by: "u-lam".into(),
                at: at(9) + Duration::minutes(40),
                late: false,
                anomalies: 1,
            }),
            "the door found open earlier counts"
        );
        let done = fold(history.into_iter().chain(events));
        assert_eq!(done.status(), Some(InspectionStatus::Completed));
        given::<Inspection>([])
            .at(at(12))
            .when(InspectionCommand::MarkOverdue, &scheduler())
            .then_err(InspectionError::NotScheduled);
    }

    fn completed() -> InspectionEvent {
        InspectionEvent::InspectionCompleted {
            by: "u-lam".into(),
            at: at(9) + Duration::minutes(40),
            late: false,
            anomalies: 0,
        }
    }

    #[test]
    fn an_inspection_is_not_filled_in_before_it_is_due() {
        given::<Inspection>([scheduled()])
            .at(at(9) - Duration::minutes(10))
            .when(record(vec![ok("door_locks")]), &engineer())
            .then_err(InspectionError::NotYetDue { due: at(9) });
    }

    #[test]
    fn a_completed_inspection_takes_no_more_results_and_is_never_overdue() {
        given::<Inspection>([scheduled(), completed()])
            .when(record(vec![ok("door_locks")]), &engineer())
            .then_err(InspectionError::AlreadyCompleted);
        given::<Inspection>([scheduled(), completed()])
            .at(at(11))
            .when(InspectionCommand::MarkOverdue, &scheduler())
            .then_err(InspectionError::AlreadyCompleted);
    }

    #[test]
    fn an_inspection_is_overdue_only_from_its_deadline_and_once() {
        given::<Inspection>([scheduled()])
            .at(at(10) - Duration::seconds(1))
            .when(InspectionCommand::MarkOverdue, &scheduler())
            .then_err(InspectionError::DeadlineNotPassed { deadline: at(10) });
        given::<Inspection>([scheduled()])
            .at(at(10))
            .when(InspectionCommand::MarkOverdue, &engineer())
            .then_err(InspectionError::NotOperator);
        let overdue = InspectionEvent::InspectionOverdue {
            deadline: at(10),
            at: at(10),
            missing: vec!["temperature".into(), "cleanliness".into()],
        };
        given::<Inspection>([scheduled(), door_found_open()])
            .at(at(10))
            .when(InspectionCommand::MarkOverdue, &scheduler())
            .then([overdue.clone()]);
        given::<Inspection>([scheduled(), door_found_open(), overdue.clone()])
            .at(at(11))
            .when(InspectionCommand::MarkOverdue, &scheduler())
            .then_err(InspectionError::AlreadyOverdue);
        assert_eq!(
            fold([scheduled(), door_found_open(), overdue]).status(),
            Some(InspectionStatus::Overdue)
        );
    }

    #[test]
    fn results_after_the_deadline_are_late_and_the_overdue_mark_stays() {
        let overdue = InspectionEvent::InspectionOverdue {
            deadline: at(10),
            at: at(10),
            missing: vec![
                "temperature".into(),
                "door_locks".into(),
                "cleanliness".into(),
            ],
        };
        let history = [scheduled(), overdue];
        let events = given::<Inspection>(history.clone())
            .at(at(11))
            .when(
                record(vec![
                    read("temperature", 21.0),
                    ok("door_locks"),
                    ok("cleanliness"),
                ]),
                &engineer(),
            )
            .events();
        assert!(events.iter().all(|e| matches!(
            e,
            InspectionEvent::InspectionResultsRecorded { late: true, .. }
                | InspectionEvent::InspectionCompleted { late: true, .. }
        )));
        let done = fold(history.into_iter().chain(events));
        assert_eq!(done.status(), Some(InspectionStatus::CompletedLate));
        assert_eq!(done.overdue_at, Some(at(10)));

        // At the deadline itself the window is closed.
        let at_deadline = given::<Inspection>([scheduled()])
            .at(at(10))
            .when(record(vec![ok("door_locks")]), &engineer())
            .events();
        assert!(matches!(
            at_deadline[0],
            InspectionEvent::InspectionResultsRecorded { late: true, .. }
        ));
    }

    #[test]
    fn each_anomaly_is_linked_to_one_incident() {
        let cleanliness = InspectionEvent::InspectionResultsRecorded {
            by: "u-lam".into(),
            at: at(9),
            late: false,
            findings: vec![finding(
                anomaly("cleanliness", "地板水漬,已清理"),
                Some(AnomalyCause::Reported),
            )],
            anomalies: vec![Anomaly {
                key: "cleanliness".into(),
                name: "地板污漬、水漬、垃圾".into(),
                reading: None,
                unit: None,
                note: Some("地板水漬,已清理".into()),
                cause: AnomalyCause::Reported,
                opens_incident: false,
                level: IncidentLevel::General,
            }],
        };
        let history = [scheduled(), door_found_open(), cleanliness];
        let state = fold(history.clone());
        let to_open: Vec<&str> = state.incidents_to_open().map(|a| a.key.as_str()).collect();
        assert_eq!(to_open, ["door_locks"], "cleaning up is not an incident");

        let id = inspection_id(walk(), at(9));
        let incident = anomaly_incident_id(id, "door_locks");
        assert_eq!(incident, anomaly_incident_id(id, "door_locks"));
        assert_ne!(incident, anomaly_incident_id(id, "temperature"));
        let link = |key: &str| InspectionCommand::LinkIncident {
            key: key.into(),
            incident_id: incident,
        };
        let linked = InspectionEvent::InspectionIncidentLinked {
            key: "door_locks".into(),
            incident_id: incident,
        };
        given::<Inspection>(history.clone())
            .when(link("door_locks"), &Actor::system("incidents"))
            .then([linked.clone()]);
        given::<Inspection>(history.clone())
            .when(link("door_locks"), &engineer())
            .then_err(InspectionError::NotOperator);
        given::<Inspection>(history.clone())
            .when(link("temperature"), &Actor::system("incidents"))
            .then_err(InspectionError::NoAnomaly {
                key: "temperature".into(),
            });
        let with_link: Vec<_> = history.into_iter().chain([linked]).collect();
        given::<Inspection>(with_link.clone())
            .when(link("door_locks"), &Actor::system("incidents"))
            .then_err(InspectionError::IncidentAlreadyLinked {
                key: "door_locks".into(),
                incident_id: incident,
            });
        assert_eq!(fold(with_link).incidents_to_open().count(), 0);
    }

    #[test]
    fn a_template_schedules_a_slot_with_the_checklist_of_its_current_version() {
        let define = plan_templates(at(0)).remove(0);
        let InspectionTemplateCommand::DefineTemplate { definition, .. } = &define else {
            unreachable!()
        };
        let revised_items = items();
        let template = given::<InspectionTemplate>([])
            .when(define.clone(), &person("u-ops", "運維中心", &["operator"]))
            .events()
            .into_iter()
            .chain([InspectionTemplateEvent::InspectionTemplateRevised {
                version: 2,
                items: revised_items.clone(),
                schedule: definition.schedule,
            }])
            .fold(InspectionTemplate::default(), |s, e| s.evolve(&e));
        let slot = template.slots(at(9), at(10))[0];
        assert_eq!(
            slot.due,
            at(9),
            "at(0) anchors the walk on the quarter hours"
        );
        let command = template.inspection_for(slot).unwrap();
        let events = given::<Inspection>([]).when(command, &scheduler()).events();
        assert_eq!(
            events,
            [InspectionEvent::InspectionScheduled {
                inspection_id: inspection_id(walk(), at(9)),
                template_id: walk(),
                template_version: 2,
                name: "機房環境巡檢".into(),
                area: Area::MachineRoom,
                items: revised_items,
                due: at(9),
                deadline: at(9) + Duration::minutes(45),
            }]
        );
    }

    #[test]
    fn inspection_events_read_back_as_they_were_written() {
        let events = [
            scheduled(),
            door_found_open(),
            InspectionEvent::InspectionResultsRecorded {
                by: "u-lam".into(),
                at: at(9),
                late: false,
                findings: vec![finding(
                    read("temperature", 29.5),
                    Some(AnomalyCause::AboveMaximum { max: 27.0 }),
                )],
                anomalies: vec![],
            },
        ];
        for event in events {
            let stored = event.to_new_event().unwrap();
            let back: InspectionEvent = serde_json::from_value(serde_json::json!({
                "type": stored.event_type,
                "data": serde_json::from_str::<serde_json::Value>(stored.data.get()).unwrap(),
            }))
            .unwrap();
            assert_eq!(back, event);
        }
    }
}
