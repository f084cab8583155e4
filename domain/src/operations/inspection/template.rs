//! Inspection templates: the checklists of the service plan's 機房巡檢制度 and 巡檢管理
//! (what is looked at, what a numeric reading may be) and the schedule each is walked on.
//! A template is versioned like a catalogue item: every revision is a new version, and an
//! inspection records the version whose checklist it copied.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::schedule::{Schedule, Slot};
use super::InspectionCommand;
use crate::kernel::aggregate::{Aggregate, Context, DomainEvent};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};

/// The id of a template named by a stable key, e.g. the plan's `machine_room_walk`.
pub fn template_id(key: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger:inspection_template:{key}").as_bytes(),
    )
}

/// What part of the service an inspection looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    /// 機房環境: temperature, humidity, power, UPS, air conditioning, fire system.
    MachineRoom,
    /// Servers' and network devices' lights, alarms and hardware.
    Devices,
    /// The operations platform, consoles and security devices' logs.
    Platform,
    /// Backups of network devices and physical servers.
    Backups,
    /// The monthly inspection and tuning (巡檢優化) of facilities and departments' devices.
    Optimisation,
}

/// How serious the incident an anomaly opens is, in the plan's 事件定級: a hint the
/// incident process starts from, which the service desk may change.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum IncidentLevel {
    /// 一般事件 (Ⅰ級).
    #[default]
    General,
    /// 重要事件 (Ⅱ級).
    Important,
    /// 緊急事件 (Ⅲ級).
    Urgent,
}

/// What an inspector does for an item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ItemKind {
    /// Looks and says ok or anomaly.
    Check,
    /// Reads a number; outside `[min, max]` it is an anomaly whatever the inspector says.
    Reading {
        unit: String,
        min: Option<f64>,
        max: Option<f64>,
    },
}

/// One line of a checklist: an English key, the plan's Chinese name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChecklistItem {
    /// Lower-case letters, digits and `_`, starting with a letter; unique in the checklist.
    pub key: String,
    pub name: String,
    pub kind: ItemKind,
    /// Whether an anomaly of this item opens an incident linked to the inspection.
    pub opens_incident: bool,
    #[serde(default)]
    pub level: IncidentLevel,
}

impl ChecklistItem {
    /// An ok/anomaly check whose anomaly opens a general incident.
    pub fn check(key: &str, name: &str) -> Self {
        ChecklistItem {
            key: key.into(),
            name: name.into(),
            kind: ItemKind::Check,
            opens_incident: true,
            level: IncidentLevel::General,
        }
    }

    /// A reading in `unit` expected within `[min, max]`, whose anomaly opens a general
    /// incident.
    pub fn reading(key: &str, name: &str, unit: &str, min: Option<f64>, max: Option<f64>) -> Self {
        ChecklistItem {
            kind: ItemKind::Reading {
                unit: unit.into(),
                min,
                max,
            },
            ..ChecklistItem::check(key, name)
        }
    }

    /// The same item, its anomalies opening incidents of `level`.
    #[must_use]
    pub fn level(self, level: IncidentLevel) -> Self {
        ChecklistItem { level, ..self }
    }

    /// The same item, its anomalies recorded without opening an incident.
    #[must_use]
    pub fn without_incident(self) -> Self {
        ChecklistItem {
            opens_incident: false,
            ..self
        }
    }
}

/// Checks a checklist; fields are named `items[i].…`.
///
/// # Errors
/// The first field that is wrong: no items, a key empty, malformed or repeated, a name
/// empty, a bound that is not a finite number, or `min` above `max`.
pub fn validate_items(items: &[ChecklistItem]) -> Result<(), InvalidField> {
    if items.is_empty() {
        return Err(invalid("items", "must list at least one item"));
    }
    for (i, item) in items.iter().enumerate() {
        let field = |name: &str| format!("items[{i}].{name}");
        let well_formed = item.key.starts_with(|c: char| c.is_ascii_lowercase())
            && item
                .key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !well_formed {
            return Err(invalid(
                field("key"),
                format!(
                    "{:?} must be lower-case letters, digits and _, starting with a letter",
                    item.key
                ),
            ));
        }
        if items[..i].iter().any(|earlier| earlier.key == item.key) {
            return Err(invalid(field("key"), format!("{:?} is repeated", item.key)));
        }
        if item.name.trim().is_empty() {
            return Err(invalid(field("name"), "must not be empty"));
        }
        if let ItemKind::Reading { min, max, .. } = item.kind {
            for (bound, value) in [("min", min), ("max", max)] {
                if value.is_some_and(|v| !v.is_finite()) {
                    return Err(invalid(field(bound), "must be a finite number"));
                }
            }
            if let (Some(min), Some(max)) = (min, max) {
                if min > max {
                    return Err(invalid(field("max"), format!("{max} is below min {min}")));
                }
            }
        }
    }
    Ok(())
}

/// Everything a template says; one version of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateDefinition {
    pub name: String,
    pub area: Area,
    pub items: Vec<ChecklistItem>,
    pub schedule: Schedule,
}

impl TemplateDefinition {
    /// Checks the definition can be scheduled and walked.
    ///
    /// # Errors
    /// The first field that is wrong, by its path.
    pub fn validate(&self) -> Result<(), InvalidField> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        validate_items(&self.items)?;
        self.schedule.validate()
    }
}

/// Orders to an inspection template; operators (and admins) give them.
#[derive(Clone, Debug)]
pub enum InspectionTemplateCommand {
    DefineTemplate {
        template_id: Uuid,
        definition: TemplateDefinition,
    },
    /// A new checklist and schedule, as the next version; inspections already scheduled
    /// keep the version they copied.
    ReviseTemplate {
        items: Vec<ChecklistItem>,
        schedule: Schedule,
    },
    /// No more inspections are scheduled from it.
    RetireTemplate { reason: String },
}

/// What happened to an inspection template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum InspectionTemplateEvent {
    InspectionTemplateDefined {
        template_id: Uuid,
        version: u32,
        definition: TemplateDefinition,
    },
    InspectionTemplateRevised {
        version: u32,
        items: Vec<ChecklistItem>,
        schedule: Schedule,
    },
    InspectionTemplateRetired {
        version: u32,
        reason: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for InspectionTemplateEvent {}

/// Why a template refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InspectionTemplateError {
    /// Only operators and administrators change templates (forbidden)
    #[error("only operators and administrators change inspection templates")]
    NotOperator,
    /// The template is defined already (conflict)
    #[error("the inspection template is already defined")]
    AlreadyDefined,
    /// There is no such template (not found)
    #[error("there is no such inspection template")]
    NotFound,
    /// The template is retired (conflict)
    #[error("the inspection template is retired")]
    Retired,
    /// A field of the template breaks its rules (invalid)
    #[error("invalid inspection template: {0}")]
    Invalid(#[from] InvalidField),
}

impl Refuse for InspectionTemplateError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::NotOperator => Refusal::Forbidden,
            Self::AlreadyDefined | Self::Retired => Refusal::Conflict,
            Self::NotFound => Refusal::NotFound,
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
        }
    }
}

/// A template's state: its current version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InspectionTemplate {
    pub template_id: Option<Uuid>,
    pub version: u32,
    pub definition: Option<TemplateDefinition>,
    pub retired: bool,
}

impl InspectionTemplate {
    /// The current definition, if the template may still schedule inspections.
    ///
    /// # Errors
    /// `NotFound` before it is defined, `Retired` after.
    pub fn in_force(&self) -> Result<&TemplateDefinition, InspectionTemplateError> {
        match (&self.definition, self.retired) {
            (None, _) => Err(InspectionTemplateError::NotFound),
            (Some(_), true) => Err(InspectionTemplateError::Retired),
            (Some(definition), false) => Ok(definition),
        }
    }

    /// The slots due in `[from, to)` under the current version; none once retired.
    pub fn slots(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Slot> {
        self.in_force()
            .map(|d| d.schedule.slots(from, to))
            .unwrap_or_default()
    }

    /// The order that schedules the inspection of `slot`, with the current version's
    /// checklist copied into it. Its stream is [`super::inspection_id`]`(template, slot.due)`.
    ///
    /// # Errors
    /// `NotFound` or `Retired`: such a template schedules nothing.
    pub fn inspection_for(&self, slot: Slot) -> Result<InspectionCommand, InspectionTemplateError> {
        let definition = self.in_force()?;
        Ok(InspectionCommand::ScheduleInspection {
            template_id: self.template_id.unwrap_or_default(),
            template_version: self.version,
            name: definition.name.clone(),
            area: definition.area,
            items: definition.items.clone(),
            due: slot.due,
            deadline: slot.deadline,
        })
    }
}

impl Aggregate for InspectionTemplate {
    const KIND: &'static str = "inspection_template";
    type Command = InspectionTemplateCommand;
    type Event = InspectionTemplateEvent;
    type Error = InspectionTemplateError;

    fn decide(
        &self,
        command: InspectionTemplateCommand,
        ctx: &Context,
    ) -> Result<Vec<InspectionTemplateEvent>, InspectionTemplateError> {
        if !ctx.actor.operates() {
            return Err(InspectionTemplateError::NotOperator);
        }
        match command {
            InspectionTemplateCommand::DefineTemplate {
                template_id,
                definition,
            } => {
                if self.template_id.is_some() {
                    return Err(InspectionTemplateError::AlreadyDefined);
                }
                definition.validate()?;
                Ok(vec![InspectionTemplateEvent::InspectionTemplateDefined {
                    template_id,
                    version: 1,
                    definition,
                }])
            }
            InspectionTemplateCommand::ReviseTemplate { items, schedule } => {
                self.in_force()?;
                validate_items(&items)?;
                schedule.validate()?;
                Ok(vec![InspectionTemplateEvent::InspectionTemplateRevised {
                    version: self.version + 1,
                    items,
                    schedule,
                }])
            }
            InspectionTemplateCommand::RetireTemplate { reason } => {
                self.in_force()?;
                if reason.trim().is_empty() {
                    return Err(invalid("reason", "is required").into());
                }
                Ok(vec![InspectionTemplateEvent::InspectionTemplateRetired {
                    version: self.version,
                    reason,
                    at: ctx.now,
                }])
            }
        }
    }

    fn evolve(mut self, event: &InspectionTemplateEvent) -> Self {
        match event {
            InspectionTemplateEvent::InspectionTemplateDefined {
                template_id,
                version,
                definition,
            } => {
                self.template_id = Some(*template_id);
                self.version = *version;
                self.definition = Some(definition.clone());
            }
            InspectionTemplateEvent::InspectionTemplateRevised {
                version,
                items,
                schedule,
            } => {
                self.version = *version;
                if let Some(definition) = &mut self.definition {
                    definition.items.clone_from(items);
                    definition.schedule = *schedule;
                }
            }
            InspectionTemplateEvent::InspectionTemplateRetired { .. } => self.retired = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::given::{at, given, person};
    use crate::operations::inspection::plan::plan_templates;
    use crate::operations::inspection::schedule::Cadence;

    fn operator() -> crate::Actor {
        person("u-ops", "運維中心", &["operator"])
    }

    fn walk() -> (Uuid, TemplateDefinition) {
        match plan_templates(at(0)).remove(0) {
            InspectionTemplateCommand::DefineTemplate {
                template_id,
                definition,
            } => (template_id, definition),
            other => panic!("the plan defines templates, not {other:?}"),
        }
    }

    fn define(definition: TemplateDefinition) -> InspectionTemplateCommand {
        InspectionTemplateCommand::DefineTemplate {
            template_id: walk().0,
            definition,
        }
    }

    fn defined() -> InspectionTemplateEvent {
        let (template_id, definition) = walk();
        InspectionTemplateEvent::InspectionTemplateDefined {
            template_id,
            version: 1,
            definition,
        }
    }

    #[test]
    fn an_operator_defines_a_template_at_version_1() {
        given::<InspectionTemplate>([])
            .when(define(walk().1), &operator())
            .then([defined()]);
        given::<InspectionTemplate>([defined()])
            .when(define(walk().1), &operator())
            .then_err(InspectionTemplateError::AlreadyDefined);
    }

    #[test]
    fn only_operators_change_templates() {
        given::<InspectionTemplate>([])
            .when(
                define(walk().1),
                &person("u-lam", "運維中心", &["engineer"]),
            )
            .then_err(InspectionTemplateError::NotOperator);
    }

    #[test]
    fn a_checklist_names_its_wrong_field() {
        let bad = |edit: &dyn Fn(&mut TemplateDefinition), field: &str, problem: &str| {
            let mut definition = walk().1;
            edit(&mut definition);
            given::<InspectionTemplate>([])
                .when(define(definition), &operator())
                .then_err(invalid(field, problem).into());
        };
        bad(&|d| d.name = " ".into(), "name", "must not be empty");
        bad(&|d| d.items.clear(), "items", "must list at least one item");
        bad(
            &|d| d.items[2].key = "temperature".into(),
            "items[2].key",
            "\"temperature\" is repeated",
        );
        bad(
            &|d| d.items[1].key = "Humidity".into(),
            "items[1].key",
            "\"Humidity\" must be lower-case letters, digits and _, starting with a letter",
        );
        bad(
            &|d| d.items[3].name.clear(),
            "items[3].name",
            "must not be empty",
        );
        bad(
            &|d| {
                d.items[0] =
                    ChecklistItem::reading("temperature", "機房溫度", "°C", Some(27.0), Some(18.0))
            },
            "items[0].max",
            "18 is below min 27",
        );
        bad(
            &|d| {
                d.items[0] = ChecklistItem::reading(
                    "temperature",
                    "機房溫度",
                    "°C",
                    Some(f64::NEG_INFINITY),
                    None,
                )
            },
            "items[0].min",
            "must be a finite number",
        );
        bad(
            &|d| d.schedule.cadence = Cadence::Every { minutes: 0 },
            "schedule.cadence.minutes",
            "must be at least 1",
        );
    }

    #[test]
    fn every_revision_is_a_new_version_and_a_retired_template_schedules_nothing() {
        let (_, definition) = walk();
        let items = definition.items[..4].to_vec();
        let mut hourly = definition.schedule;
        hourly.cadence = Cadence::Every { minutes: 60 };
        let revised = InspectionTemplateEvent::InspectionTemplateRevised {
            version: 2,
            items: items.clone(),
            schedule: hourly,
        };
        given::<InspectionTemplate>([defined()])
            .when(
                InspectionTemplateCommand::ReviseTemplate {
                    items,
                    schedule: hourly,
                },
                &operator(),
            )
            .then([revised.clone()]);
        let state = [defined(), revised.clone()]
            .iter()
            .fold(InspectionTemplate::default(), |s, e| s.evolve(e));
        assert_eq!(state.slots(at(9), at(12)).len(), 3, "hourly now");

        let retired = InspectionTemplateEvent::InspectionTemplateRetired {
            version: 2,
            reason: "機房搬遷".into(),
            at: at(12),
        };
        given::<InspectionTemplate>([defined(), revised.clone()])
            .at(at(12))
            .when(
                InspectionTemplateCommand::RetireTemplate {
                    reason: "機房搬遷".into(),
                },
                &operator(),
            )
            .then([retired.clone()]);
        let history = [defined(), revised, retired];
        given::<InspectionTemplate>(history.clone())
            .when(
                InspectionTemplateCommand::RetireTemplate {
                    reason: "again".into(),
                },
                &operator(),
            )
            .then_err(InspectionTemplateError::Retired);
        let state = history
            .iter()
            .fold(InspectionTemplate::default(), |s, e| s.evolve(e));
        assert_eq!(state.slots(at(12), at(18)), []);
        let slot = walk().1.schedule.slot_at(at(13)).unwrap();
        assert_eq!(
            state.inspection_for(slot).unwrap_err(),
            InspectionTemplateError::Retired
        );
        given::<InspectionTemplate>([])
            .when(
                InspectionTemplateCommand::RetireTemplate {
                    reason: "none".into(),
                },
                &operator(),
            )
            .then_err(InspectionTemplateError::NotFound);
    }

    #[test]
    fn the_plan_s_templates_are_valid_and_walked_as_often_as_it_says() {
        let templates = plan_templates(at(0));
        let mut cadences = Vec::new();
        let mut ids = Vec::new();
        for command in templates {
            let events = given::<InspectionTemplate>([])
                .when(command, &operator())
                .events();
            let InspectionTemplateEvent::InspectionTemplateDefined {
                template_id,
                definition,
                ..
            } = &events[0]
            else {
                panic!("expected a definition, got {events:?}");
            };
            ids.push(*template_id);
            cadences.push((definition.area, definition.schedule.cadence));
            assert_eq!(definition.schedule.time_zone, chrono_tz::Asia::Shanghai);
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 6, "six templates, six ids");
        let every: Vec<u32> = cadences
            .iter()
            .filter_map(|(_, c)| match c {
                Cadence::Every { minutes } => Some(*minutes),
                _ => None,
            })
            .collect();
        assert_eq!(every, [45, 60, 180]);
        assert!(cadences.contains(&(
            Area::Backups,
            Cadence::Weekly {
                weekday: chrono::Weekday::Mon,
                at: chrono::NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
            }
        )));
        assert!(cadences
            .iter()
            .any(|(area, c)| *area == Area::Optimisation && matches!(c, Cadence::Monthly { .. })));
    }

    #[test]
    fn template_events_read_back_as_they_were_written() {
        let stored = defined().to_new_event().unwrap();
        assert_eq!(stored.event_type, "InspectionTemplateDefined");
        let data: serde_json::Value = serde_json::from_str(stored.data.get()).unwrap();
        assert_eq!(data["definition"]["schedule"]["time_zone"], "Asia/Shanghai");
        assert_eq!(data["definition"]["schedule"]["cadence"]["kind"], "every");
        let back: InspectionTemplateEvent =
            serde_json::from_value(serde_json::json!({"type": stored.event_type, "data": data}))
                .unwrap();
        assert_eq!(back, defined());
    }
}
