//! Inspections as the operations centre follows them: the templates with every version,
//! each inspection with its checklist, its results item by item and its state, the
//! inspections due in a period (today's, for a caller that gives the local day's bounds),
//! the overdue ones, and the anomalies found, by area and period.
//!
//! Three indexes feed the runtime's scheduler and process managers without scanning the
//! history: the open inspections by deadline (what is marked overdue once its deadline has
//! passed), the anomalies whose item opens an incident and that have none linked yet (what
//! the incident process opens), and the last due time scheduled for each template (from
//! which its next slots are still to be scheduled).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use indexmap::IndexMap;
use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent};
use opsledger_domain::operations::inspection::{
    Anomaly, AnomalyCause, Area, ChecklistItem, Finding, IncidentLevel, Inspection,
    InspectionEvent, InspectionStatus, InspectionTemplate, InspectionTemplateEvent, Outcome,
    TemplateDefinition,
};
use opsledger_domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{stream_id, stream_kind, Projection};

/// An event of the inspection template and inspection streams, decoded once.
#[derive(Debug)]
pub enum InspectionEvents {
    Template(InspectionTemplateEvent),
    Inspection(InspectionEvent),
}

impl InspectionEvents {
    /// The event decoded, when its stream is one of these kinds.
    pub fn of(event: &RecordedEvent) -> Option<Result<InspectionEvents, serde_json::Error>> {
        Some(match stream_kind(&event.stream) {
            InspectionTemplate::KIND => {
                InspectionTemplateEvent::from_recorded(event).map(InspectionEvents::Template)
            }
            Inspection::KIND => {
                InspectionEvent::from_recorded(event).map(InspectionEvents::Inspection)
            }
            _ => return None,
        })
    }
}

/// One version of a template, with the position and time it took effect and who made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateVersion {
    pub version: u32,
    pub position: u64,
    pub at: DateTime<Utc>,
    pub by: String,
    pub definition: TemplateDefinition,
}

/// Why and when a template was retired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retirement {
    pub position: u64,
    pub at: DateTime<Utc>,
    pub by: String,
    pub reason: String,
}

/// A template as it stands, and every version it had.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateView {
    pub id: Uuid,
    /// The current version.
    pub version: u32,
    /// The current version's definition.
    pub definition: TemplateDefinition,
    pub defined_at: DateTime<Utc>,
    pub defined_by: String,
    pub retired: Option<Retirement>,
    /// Every version, oldest first.
    pub history: Vec<TemplateVersion>,
}

impl TemplateView {
    /// Whether inspections are still scheduled from it.
    pub fn in_force(&self) -> bool {
        self.retired.is_none()
    }

    /// The template's domain state, for [`InspectionTemplate::slots`] and
    /// [`InspectionTemplate::inspection_for`].
    pub fn state(&self) -> InspectionTemplate {
        InspectionTemplate {
            template_id: Some(self.id),
            version: self.version,
            definition: Some(self.definition.clone()),
            retired: self.retired.is_some(),
        }
    }

    /// The definition of version `version`, if the template had it.
    pub fn version(&self, version: u32) -> Option<&TemplateVersion> {
        self.history.iter().find(|v| v.version == version)
    }
}

/// One item's result, with who recorded it and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultView {
    pub key: String,
    /// As the inspector marked it.
    pub outcome: Outcome,
    pub reading: Option<f64>,
    pub note: Option<String>,
    /// `Some` when it is an anomaly: reported, or its reading out of range.
    pub anomaly: Option<AnomalyCause>,
    pub by: String,
    pub at: DateTime<Utc>,
    /// Recorded at or after the inspection's deadline.
    pub late: bool,
}

impl ResultView {
    fn finding(&self) -> Finding {
        Finding {
            key: self.key.clone(),
            outcome: self.outcome,
            reading: self.reading,
            note: self.note.clone(),
            anomaly: self.anomaly,
        }
    }
}

/// An anomaly found, and the incident opened for it once linked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyView {
    pub key: String,
    pub name: String,
    pub reading: Option<f64>,
    pub unit: Option<String>,
    pub note: Option<String>,
    pub cause: AnomalyCause,
    /// Whether its item opens an incident.
    pub opens_incident: bool,
    pub level: IncidentLevel,
    pub found_at: DateTime<Utc>,
    pub found_by: String,
    pub incident_id: Option<Uuid>,
}

impl AnomalyView {
    /// The anomaly as the domain carries it, for the incident process.
    pub fn anomaly(&self) -> Anomaly {
        Anomaly {
            key: self.key.clone(),
            name: self.name.clone(),
            reading: self.reading,
            unit: self.unit.clone(),
            note: self.note.clone(),
            cause: self.cause,
            opens_incident: self.opens_incident,
            level: self.level,
        }
    }
}

/// An inspection as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InspectionView {
    pub id: Uuid,
    pub template_id: Uuid,
    pub template_version: u32,
    pub name: String,
    pub area: Area,
    pub items: Vec<ChecklistItem>,
    pub due: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    pub scheduled_at: DateTime<Utc>,
    pub scheduled_by: String,
    /// The domain's [`Inspection::status`] after the last event.
    pub status: InspectionStatus,
    /// Each item's result, in the order recorded.
    pub results: Vec<ResultView>,
    pub completed_at: Option<DateTime<Utc>>,
    pub completed_by: Option<String>,
    /// Completed at or after its deadline.
    pub late: bool,
    /// When it was marked overdue; the mark stays if results come later.
    pub overdue_at: Option<DateTime<Utc>>,
    /// The items without a result when it was marked overdue.
    pub missing_when_overdue: Vec<String>,
    /// The anomalies found, in the order found.
    pub anomalies: Vec<AnomalyView>,
    pub updated_at: DateTime<Utc>,
}

impl InspectionView {
    /// The result of item `key`, if it has one.
    pub fn result(&self, key: &str) -> Option<&ResultView> {
        self.results.iter().find(|r| r.key == key)
    }

    /// The anomaly of item `key`, if it is one.
    pub fn anomaly(&self, key: &str) -> Option<&AnomalyView> {
        self.anomalies.iter().find(|a| a.key == key)
    }

    /// The items still without a result.
    pub fn open_items(&self) -> impl Iterator<Item = &ChecklistItem> + '_ {
        self.items.iter().filter(|i| self.result(&i.key).is_none())
    }

    /// The inspection's domain state, as its own events fold to.
    pub fn state(&self) -> Inspection {
        Inspection {
            inspection_id: Some(self.id),
            template_id: self.template_id,
            template_version: self.template_version,
            name: self.name.clone(),
            area: Some(self.area),
            items: self.items.clone(),
            due: Some(self.due),
            deadline: Some(self.deadline),
            findings: self
                .results
                .iter()
                .map(|r| (r.key.clone(), r.finding()))
                .collect(),
            anomalies: self.anomalies.iter().map(AnomalyView::anomaly).collect(),
            incidents: self
                .anomalies
                .iter()
                .filter_map(|a| Some((a.key.clone(), a.incident_id?)))
                .collect(),
            completed_at: self.completed_at,
            completed_late: self.late,
            overdue_at: self.overdue_at,
        }
    }

    fn is_open(&self) -> bool {
        self.completed_at.is_none() && self.overdue_at.is_none()
    }
}

/// Where an anomaly is in the indexes: when it was found, its inspection and item.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Found {
    at: DateTime<Utc>,
    inspection: Uuid,
    key: String,
}

impl Found {
    /// The first key at `at`, for ranges by time.
    fn from(at: DateTime<Utc>) -> Found {
        Found {
            at,
            inspection: Uuid::nil(),
            key: String::new(),
        }
    }
}

/// The read model.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Inspections {
    /// In the order defined.
    templates: IndexMap<Uuid, TemplateView>,
    inspections: HashMap<Uuid, InspectionView>,
    /// Every inspection by due time.
    by_due: BTreeSet<(DateTime<Utc>, Uuid)>,
    /// Inspections neither completed nor marked overdue, by deadline.
    open: BTreeSet<(DateTime<Utc>, Uuid)>,
    /// Inspections marked overdue, by the time they were marked.
    overdue: BTreeSet<(DateTime<Utc>, Uuid)>,
    /// Every anomaly, by the time it was found.
    anomalies: BTreeSet<Found>,
    /// The same, by area first.
    anomalies_by_area: BTreeSet<(Area, Found)>,
    /// Anomalies whose item opens an incident and that have none linked yet.
    without_incident: BTreeSet<Found>,
    /// The latest due time scheduled for each template.
    last_due: HashMap<Uuid, DateTime<Utc>>,
}

impl Inspections {
    pub fn get(&self, id: Uuid) -> Option<&InspectionView> {
        self.inspections.get(&id)
    }

    pub fn len(&self) -> usize {
        self.inspections.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inspections.is_empty()
    }

    pub fn template(&self, id: Uuid) -> Option<&TemplateView> {
        self.templates.get(&id)
    }

    /// The templates in force, in the order defined: what the scheduler schedules from.
    pub fn templates(&self) -> impl Iterator<Item = &TemplateView> + '_ {
        self.templates.values().filter(|t| t.in_force())
    }

    /// Every template, retired ones too, in the order defined.
    pub fn all_templates(&self) -> impl Iterator<Item = &TemplateView> + '_ {
        self.templates.values()
    }

    /// The inspections due in `[from, to)`, earliest first. Today's inspections are those
    /// due between the bounds of the local day the caller gives.
    pub fn between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl DoubleEndedIterator<Item = &InspectionView> + '_ {
        let to = to.max(from);
        self.by_due
            .range((from, Uuid::nil())..(to, Uuid::nil()))
            .filter_map(|(_, id)| self.inspections.get(id))
    }

    /// The inspections not complete and not yet marked overdue whose deadline is at or
    /// before `now`, earliest deadline first: what the scheduler marks overdue.
    pub fn open_past_deadline(
        &self,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = &InspectionView> + '_ {
        self.open
            .range(..=(now, Uuid::max()))
            .filter_map(|(_, id)| self.inspections.get(id))
    }

    /// Every inspection marked overdue, the most recently marked first. One completed late
    /// after the mark stays here, with its status `completed_late`.
    pub fn overdue(&self) -> impl Iterator<Item = &InspectionView> + '_ {
        self.overdue
            .iter()
            .rev()
            .filter_map(|(_, id)| self.inspections.get(id))
    }

    /// The anomalies found in `[from, to)`, in one area or all, in the order found.
    pub fn anomalies(
        &self,
        area: Option<Area>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Box<dyn Iterator<Item = (&InspectionView, &AnomalyView)> + '_> {
        let to = to.max(from);
        let found: Box<dyn Iterator<Item = &Found>> = match area {
            Some(area) => Box::new(
                self.anomalies_by_area
                    .range((area, Found::from(from))..(area, Found::from(to)))
                    .map(|(_, f)| f),
            ),
            None => Box::new(self.anomalies.range(Found::from(from)..Found::from(to))),
        };
        Box::new(found.filter_map(|f| self.found(f)))
    }

    /// How many anomalies each area had in `[from, to)`; areas with none are left out.
    pub fn anomaly_counts(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> BTreeMap<Area, usize> {
        let mut counts = BTreeMap::new();
        for (inspection, _) in self.anomalies(None, from, to) {
            *counts.entry(inspection.area).or_insert(0) += 1;
        }
        counts
    }

    /// The anomalies whose item opens an incident and that have no incident linked yet,
    /// the earliest found first: what the incident process opens incidents for.
    pub fn anomalies_without_incident(
        &self,
    ) -> impl Iterator<Item = (&InspectionView, &AnomalyView)> + '_ {
        self.without_incident.iter().filter_map(|f| self.found(f))
    }

    /// The latest due time scheduled for a template, if any.
    pub fn last_scheduled(&self, template_id: Uuid) -> Option<DateTime<Utc>> {
        self.last_due.get(&template_id).copied()
    }

    /// The time from which a template's slots are still to be scheduled: the scheduler
    /// schedules `template.state().slots(next_due, horizon)`. Just after the latest due
    /// time scheduled, so slots missed while the scheduler was down are scheduled too, and
    /// then marked overdue; for a template never scheduled, the due time of the slot open
    /// at `now`, or `now` if none is. `None` for a template unknown or retired.
    pub fn next_due(&self, template_id: Uuid, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let template = self.templates.get(&template_id).filter(|t| t.in_force())?;
        Some(match self.last_due.get(&template_id) {
            Some(last) => *last + Duration::nanoseconds(1),
            None => template
                .definition
                .schedule
                .slot_at(now)
                .filter(|slot| slot.deadline > now)
                .map_or(now, |slot| slot.due),
        })
    }

    fn found(&self, f: &Found) -> Option<(&InspectionView, &AnomalyView)> {
        let inspection = self.inspections.get(&f.inspection)?;
        Some((inspection, inspection.anomaly(&f.key)?))
    }
}

impl Inspections {
    pub fn on_event(&mut self, event: &RecordedEvent, e: &InspectionEvents) {
        match e {
            InspectionEvents::Template(e) => self.on_template(event, e),
            InspectionEvents::Inspection(e) => self.on_inspection(event, e),
        }
    }

    fn on_template(&mut self, event: &RecordedEvent, e: &InspectionTemplateEvent) {
        use InspectionTemplateEvent as E;
        let Some(id) = stream_id(&event.stream) else {
            return;
        };
        let at = event.metadata.recorded_at;
        let by = event.metadata.actor.id.clone();
        if let E::InspectionTemplateDefined {
            version,
            definition,
            ..
        } = e
        {
            self.templates.entry(id).or_insert_with(|| TemplateView {
                id,
                version: *version,
                definition: definition.clone(),
                defined_at: at,
                defined_by: by.clone(),
                retired: None,
                history: Vec::new(),
            });
        }
        let Some(t) = self.templates.get_mut(&id) else {
            return;
        };
        match e {
            E::InspectionTemplateDefined {
                version,
                definition,
                ..
            } => {
                t.version = *version;
                t.definition = definition.clone();
            }
            E::InspectionTemplateRevised {
                version,
                items,
                schedule,
            } => {
                t.version = *version;
                t.definition.items.clone_from(items);
                t.definition.schedule = *schedule;
            }
            E::InspectionTemplateRetired { reason, .. } => {
                t.retired = Some(Retirement {
                    position: event.position,
                    at,
                    by,
                    reason: reason.clone(),
                });
                return;
            }
        }
        t.history.push(TemplateVersion {
            version: t.version,
            position: event.position,
            at,
            by,
            definition: t.definition.clone(),
        });
    }

    fn on_inspection(&mut self, event: &RecordedEvent, e: &InspectionEvent) {
        use InspectionEvent as E;
        let Some(id) = stream_id(&event.stream) else {
            return;
        };
        let at = event.metadata.recorded_at;
        let by = event.metadata.actor.id.clone();
        if let E::InspectionScheduled {
            template_id,
            template_version,
            name,
            area,
            items,
            due,
            deadline,
            ..
        } = e
        {
            if self.inspections.contains_key(&id) {
                return;
            }
            self.inspections.insert(
                id,
                InspectionView {
                    id,
                    template_id: *template_id,
                    template_version: *template_version,
                    name: name.clone(),
                    area: *area,
                    items: items.clone(),
                    due: *due,
                    deadline: *deadline,
                    scheduled_at: at,
                    scheduled_by: by.clone(),
                    status: InspectionStatus::Open,
                    results: Vec::new(),
                    completed_at: None,
                    completed_by: None,
                    late: false,
                    overdue_at: None,
                    missing_when_overdue: Vec::new(),
                    anomalies: Vec::new(),
                    updated_at: at,
                },
            );
            self.by_due.insert((*due, id));
            self.open.insert((*deadline, id));
            let last = self.last_due.entry(*template_id).or_insert(*due);
            *last = (*last).max(*due);
        }
        let Some(v) = self.inspections.get_mut(&id) else {
            return;
        };
        let was_open = v.is_open();
        v.updated_at = at;
        match e {
            E::InspectionScheduled { .. } => {}
            E::InspectionResultsRecorded {
                late,
                findings,
                anomalies,
                ..
            } => {
                v.results.extend(findings.iter().map(|f| ResultView {
                    key: f.key.clone(),
                    outcome: f.outcome,
                    reading: f.reading,
                    note: f.note.clone(),
                    anomaly: f.anomaly,
                    by: by.clone(),
                    at,
                    late: *late,
                }));
                for a in anomalies {
                    let found = Found {
                        at,
                        inspection: id,
                        key: a.key.clone(),
                    };
                    if a.opens_incident {
                        self.without_incident.insert(found.clone());
                    }
                    self.anomalies_by_area.insert((v.area, found.clone()));
                    self.anomalies.insert(found);
                    v.anomalies.push(AnomalyView {
                        key: a.key.clone(),
                        name: a.name.clone(),
                        reading: a.reading,
                        unit: a.unit.clone(),
                        note: a.note.clone(),
                        cause: a.cause,
                        opens_incident: a.opens_incident,
                        level: a.level,
                        found_at: at,
                        found_by: by.clone(),
                        incident_id: None,
                    });
                }
            }
            E::InspectionCompleted { late, .. } => {
                v.completed_at = Some(at);
                v.completed_by = Some(by);
                v.late = *late;
            }
            E::InspectionOverdue { missing, .. } => {
                v.overdue_at = Some(at);
                v.missing_when_overdue.clone_from(missing);
                self.overdue.insert((at, id));
            }
            E::InspectionIncidentLinked { key, incident_id } => {
                if let Some(a) = v.anomalies.iter_mut().find(|a| a.key == *key) {
                    a.incident_id = Some(*incident_id);
                    self.without_incident.remove(&Found {
                        at: a.found_at,
                        inspection: id,
                        key: key.clone(),
                    });
                }
            }
        }
        if was_open && !v.is_open() {
            self.open.remove(&(v.deadline, id));
        }
        if let Some(status) = v.state().status() {
            v.status = status;
        }
    }
}

impl Projection for Inspections {
    fn name(&self) -> &'static str {
        "inspections"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        if let Some(Ok(e)) = InspectionEvents::of(event) {
            self.on_event(event, &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use opsledger_domain::kernel::aggregate::Context;
    use opsledger_domain::operations::inspection::{
        anomaly_incident_id, inspection_id, plan_templates, template_id, Cadence,
        InspectionCommand, InspectionTemplateCommand, ItemKind, ItemResult, SITE_TIME_ZONE,
    };
    use opsledger_domain::Actor;

    use super::*;
    use crate::test_log::{person, Log};

    /// 26 November 2026 at `h:m` in the site's time zone (UTC+8).
    fn local(h: u32, m: u32) -> DateTime<Utc> {
        SITE_TIME_ZONE
            .with_ymd_and_hms(2026, 11, 26, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The bounds of the site's 26 November.
    fn today() -> (DateTime<Utc>, DateTime<Utc>) {
        (local(0, 0), local(0, 0) + Duration::days(1))
    }

    fn operator() -> Actor {
        person("u-ops", "運維中心", &["operator"])
    }

    fn engineer() -> Actor {
        person("u-lam", "運維中心", &["engineer"])
    }

    fn scheduler() -> Actor {
        Actor::system("scheduler")
    }

    fn walk() -> Uuid {
        template_id("machine_room_walk")
    }

    fn logs() -> Uuid {
        template_id("daily_log_check")
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

    /// The log, and each stream's domain state: every event is one the domain decided.
    #[derive(Default)]
    struct Site {
        log: Log,
        templates: HashMap<Uuid, InspectionTemplate>,
        inspections: HashMap<Uuid, Inspection>,
    }

    fn decide<A: Aggregate>(
        log: &mut Log,
        state: &mut A,
        stream: &str,
        command: A::Command,
        by: &Actor,
        now: DateTime<Utc>,
    ) where
        A::Event: DomainEvent,
    {
        let ctx = Context {
            actor: by.clone(),
            now,
        };
        let events = state
            .decide(command, &ctx)
            .unwrap_or_else(|e| panic!("{stream} refused: {e}"));
        for e in &events {
            log.record(stream, e, by, 0);
            if let Some(recorded) = log.events.last_mut() {
                recorded.metadata.recorded_at = now;
            }
            *state = std::mem::take(state).evolve(e);
        }
    }

    impl Site {
        /// Defines the plan's templates of `keys`, anchored at the site's midnight a week
        /// before the 26th.
        fn define(&mut self, keys: &[&str], now: DateTime<Utc>) {
            for command in plan_templates(local(0, 0) - Duration::days(7)) {
                let InspectionTemplateCommand::DefineTemplate {
                    template_id: id, ..
                } = &command
                else {
                    unreachable!()
                };
                let id = *id;
                if keys.iter().any(|k| template_id(k) == id) {
                    self.template(id, command, now);
                }
            }
        }

        fn template(&mut self, id: Uuid, command: InspectionTemplateCommand, now: DateTime<Utc>) {
            let state = self.templates.entry(id).or_default();
            let stream = format!("inspection_template-{id}");
            decide(&mut self.log, state, &stream, command, &operator(), now);
        }

        /// Schedules the template's slot due at `due`, as the scheduler does.
        fn schedule(&mut self, template: Uuid, due: DateTime<Utc>, now: DateTime<Utc>) -> Uuid {
            let state = &self.templates[&template];
            let slot = state.in_force().unwrap().schedule.slot_at(due).unwrap();
            assert_eq!(slot.due, due, "{due} is not a slot of {template}");
            let command = state.inspection_for(slot).unwrap();
            let id = inspection_id(template, due);
            self.inspection(id, command, &scheduler(), now);
            id
        }

        fn inspection(
            &mut self,
            id: Uuid,
            command: InspectionCommand,
            by: &Actor,
            at: DateTime<Utc>,
        ) {
            let state = self.inspections.entry(id).or_default();
            decide(
                &mut self.log,
                state,
                &format!("inspection-{id}"),
                command,
                by,
                at,
            );
        }

        fn record(&mut self, id: Uuid, results: Vec<ItemResult>, at: DateTime<Utc>) {
            self.inspection(
                id,
                InspectionCommand::RecordResults { results },
                &engineer(),
                at,
            );
        }

        /// Every item of the inspection still open, within its range.
        fn all_ok(&self, id: Uuid) -> Vec<ItemResult> {
            let state = &self.inspections[&id];
            state
                .items
                .iter()
                .filter(|item| !state.findings.contains_key(&item.key))
                .map(|item| match item.kind {
                    ItemKind::Check => ok(&item.key),
                    ItemKind::Reading { min, max, .. } => {
                        let lo = min.unwrap_or(0.0);
                        read(&item.key, (lo + max.unwrap_or(lo + 2.0)) / 2.0)
                    }
                })
                .collect()
        }

        fn complete(&mut self, id: Uuid, at: DateTime<Utc>) {
            let results = self.all_ok(id);
            self.record(id, results, at);
        }

        fn mark_overdue(&mut self, id: Uuid, at: DateTime<Utc>) {
            self.inspection(id, InspectionCommand::MarkOverdue, &scheduler(), at);
        }

        fn link(&mut self, id: Uuid, key: &str, at: DateTime<Utc>) -> Uuid {
            let incident_id = anomaly_incident_id(id, key);
            let command = InspectionCommand::LinkIncident {
                key: key.into(),
                incident_id,
            };
            self.inspection(id, command, &Actor::system("incidents"), at);
            incident_id
        }

        fn fold(&self) -> Inspections {
            self.log.fold()
        }
    }

    fn none() -> Vec<Uuid> {
        Vec::new()
    }

    fn ids<'a>(list: impl Iterator<Item = &'a InspectionView>) -> Vec<Uuid> {
        list.map(|v| v.id).collect()
    }

    fn found<'a>(
        list: impl Iterator<Item = (&'a InspectionView, &'a AnomalyView)>,
    ) -> Vec<(Uuid, &'a str)> {
        list.map(|(v, a)| (v.id, a.key.as_str())).collect()
    }

    /// A day of the walk and the log check: every state an inspection can be in.
    /// Returns yesterday's log check, today's, and today's walks due at 09:00, 09:45,
    /// 10:30, 11:15 and 23:15.
    fn a_day() -> (Site, [Uuid; 7]) {
        let mut site = Site::default();
        site.define(&["machine_room_walk", "daily_log_check"], local(0, 0));
        let yesterday = local(9, 0) - Duration::days(1);
        let yesterdays_logs = site.schedule(logs(), yesterday, yesterday);
        let logs_today = site.schedule(logs(), local(9, 0), local(0, 0));
        let nine = site.schedule(walk(), local(9, 0), local(8, 0));
        let nine_45 = site.schedule(walk(), local(9, 45), local(8, 0));
        let ten_30 = site.schedule(walk(), local(10, 30), local(8, 0));
        let eleven_15 = site.schedule(walk(), local(11, 15), local(8, 0));
        let last = site.schedule(walk(), local(23, 15), local(8, 0));
        site.schedule(walk(), local(0, 0) + Duration::days(1), local(8, 0));

        site.complete(yesterdays_logs, yesterday + Duration::hours(1));
        site.complete(nine, local(9, 20));
        site.mark_overdue(nine_45, local(10, 30));
        site.complete(nine_45, local(10, 40));
        site.record(
            ten_30,
            vec![read("temperature", 22.5), ok("door_locks")],
            local(10, 35),
        );
        site.mark_overdue(logs_today, local(18, 0));
        (
            site,
            [
                yesterdays_logs,
                logs_today,
                nine,
                nine_45,
                ten_30,
                eleven_15,
                last,
            ],
        )
    }

    #[test]
    fn today_s_inspections_are_listed_by_due_time_with_their_state() {
        use InspectionStatus as S;
        let (site, [_, logs_today, nine, nine_45, ten_30, eleven_15, last]) = a_day();
        let model = site.fold();
        let (from, to) = today();
        let mut expected = vec![
            (logs_today, S::Overdue),
            (nine, S::Completed),
            (nine_45, S::CompletedLate),
            (ten_30, S::InProgress),
            (eleven_15, S::Open),
            (last, S::Open),
        ];
        // Two are due at 09:00: those come by id.
        expected[..2].sort_by_key(|(id, _)| *id);
        let listed: Vec<(Uuid, S)> = model.between(from, to).map(|v| (v.id, v.status)).collect();
        assert_eq!(
            listed, expected,
            "yesterday's log check and tomorrow's midnight walk are not today's"
        );
        assert_eq!(model.len(), 8);

        let walk_view = model.get(ten_30).unwrap();
        assert_eq!(walk_view.name, "機房環境巡檢");
        assert_eq!(walk_view.area, Area::MachineRoom);
        assert_eq!(walk_view.deadline, local(11, 15), "until the next walk");
        assert_eq!(walk_view.scheduled_by, "system:scheduler");
        let temperature = walk_view.result("temperature").unwrap();
        assert_eq!(
            (temperature.reading, temperature.by.as_str(), temperature.at),
            (Some(22.5), "u-lam", local(10, 35))
        );
        assert_eq!(walk_view.open_items().count(), 8);

        let late = model.get(nine_45).unwrap();
        assert!(late.late && late.results.iter().all(|r| r.late));
        assert_eq!(late.overdue_at, Some(local(10, 30)));
        assert_eq!(late.completed_at, Some(local(10, 40)));
        let on_time = model.get(nine).unwrap();
        assert_eq!(
            (on_time.late, on_time.completed_by.as_deref()),
            (false, Some("u-lam"))
        );

        let missed = model.get(logs_today).unwrap();
        assert_eq!(missed.overdue_at, Some(local(18, 0)));
        assert_eq!(missed.missing_when_overdue.len(), 4, "nothing was checked");

        // The view folds to the state the domain folded.
        for (id, state) in &site.inspections {
            assert_eq!(&model.get(*id).unwrap().state(), state);
        }
    }

    #[test]
    fn an_open_inspection_is_due_to_be_marked_overdue_from_its_deadline_and_until_marked() {
        let mut site = Site::default();
        site.define(&["machine_room_walk", "daily_log_check"], local(0, 0));
        let nine = site.schedule(walk(), local(9, 0), local(8, 0));
        let nine_45 = site.schedule(walk(), local(9, 45), local(8, 0));
        let ten_30 = site.schedule(walk(), local(10, 30), local(8, 0));
        let logs_today = site.schedule(logs(), local(9, 0), local(8, 0));
        site.complete(nine_45, local(10, 0));
        let model = site.fold();

        let second = Duration::seconds(1);
        assert_eq!(ids(model.open_past_deadline(local(9, 45) - second)), none());
        assert_eq!(
            ids(model.open_past_deadline(local(9, 45))),
            [nine],
            "the deadline itself is past"
        );
        assert_eq!(
            ids(model.open_past_deadline(local(11, 15))),
            [nine, ten_30],
            "the 09:45 walk was done in time"
        );

        site.mark_overdue(nine, local(9, 46));
        site.mark_overdue(ten_30, local(11, 15));
        let model = site.fold();
        assert_eq!(
            ids(model.open_past_deadline(local(17, 59))),
            none(),
            "marked once, not again"
        );
        assert_eq!(ids(model.open_past_deadline(local(18, 0))), [logs_today]);
        assert_eq!(
            ids(model.overdue()),
            [ten_30, nine],
            "the latest marked first"
        );

        site.mark_overdue(logs_today, local(18, 0));
        site.complete(ten_30, local(11, 30));
        let model = site.fold();
        assert_eq!(
            ids(model.overdue()),
            [logs_today, ten_30, nine],
            "done late, still recorded as overdue"
        );
        assert_eq!(
            model.get(ten_30).unwrap().status,
            InspectionStatus::CompletedLate
        );
        assert_eq!(
            ids(model.open_past_deadline(local(0, 0) + Duration::days(30))),
            none()
        );
    }

    /// The walk at 09:00 finds the room too hot, a cabinet open and water on the floor; the
    /// log check finds console errors; the walk at 10:30 finds the air too humid.
    fn anomalies_found() -> (Site, [Uuid; 3]) {
        let mut site = Site::default();
        site.define(&["machine_room_walk", "daily_log_check"], local(0, 0));
        let nine = site.schedule(walk(), local(9, 0), local(8, 0));
        let logs_today = site.schedule(logs(), local(9, 0), local(8, 0));
        let ten_30 = site.schedule(walk(), local(10, 30), local(8, 0));
        site.record(
            nine,
            vec![
                read("temperature", 29.5),
                anomaly("door_locks", "3 號機柜門未鎖"),
                anomaly("cleanliness", "地板水漬,已清理"),
            ],
            local(9, 10),
        );
        site.record(
            logs_today,
            vec![anomaly("console_logs", "管理控制臺登錄失敗告警")],
            local(10, 0),
        );
        site.record(ten_30, vec![read("humidity", 61.0)], local(10, 40));
        (site, [nine, logs_today, ten_30])
    }

    #[test]
    fn anomalies_are_listed_by_area_and_period_in_the_order_found() {
        let (site, [nine, logs_today, ten_30]) = anomalies_found();
        let model = site.fold();
        let (from, to) = today();
        assert_eq!(
            found(model.anomalies(None, from, to)),
            [
                (nine, "cleanliness"),
                (nine, "door_locks"),
                (nine, "temperature"),
                (logs_today, "console_logs"),
                (ten_30, "humidity"),
            ]
        );
        assert_eq!(
            found(model.anomalies(Some(Area::MachineRoom), local(9, 10), local(10, 40))),
            [
                (nine, "cleanliness"),
                (nine, "door_locks"),
                (nine, "temperature")
            ],
            "from is in the period, to is not"
        );
        assert_eq!(
            found(model.anomalies(Some(Area::Platform), from, to)),
            [(logs_today, "console_logs")]
        );
        assert_eq!(found(model.anomalies(Some(Area::Backups), from, to)), []);
        assert_eq!(
            found(model.anomalies(None, to, from)),
            [],
            "an empty period"
        );

        assert_eq!(
            model.anomaly_counts(from, to),
            BTreeMap::from([(Area::MachineRoom, 4), (Area::Platform, 1)])
        );
        assert_eq!(
            model.anomaly_counts(local(9, 30), local(10, 30)),
            BTreeMap::from([(Area::Platform, 1)])
        );

        let (_, too_hot) = model
            .anomalies(Some(Area::MachineRoom), from, to)
            .find(|(_, a)| a.key == "temperature")
            .unwrap();
        assert_eq!(too_hot.cause, AnomalyCause::AboveMaximum { max: 27.0 });
        assert_eq!(
            (too_hot.reading, too_hot.unit.as_deref(), too_hot.level),
            (Some(29.5), Some("°C"), IncidentLevel::Important)
        );
        assert_eq!(
            (too_hot.found_at, too_hot.found_by.as_str()),
            (local(9, 10), "u-lam")
        );
        let result = model.get(nine).unwrap().result("temperature").unwrap();
        assert_eq!(
            (result.outcome, result.anomaly),
            (Outcome::Ok, Some(too_hot.cause)),
            "the range decides over the inspector's word"
        );
    }

    #[test]
    fn an_anomaly_awaits_its_incident_until_one_is_linked() {
        let (mut site, [nine, logs_today, ten_30]) = anomalies_found();
        let model = site.fold();
        assert_eq!(
            found(model.anomalies_without_incident()),
            [
                (nine, "door_locks"),
                (nine, "temperature"),
                (logs_today, "console_logs"),
                (ten_30, "humidity"),
            ],
            "water on the floor opens no incident"
        );

        let incident = site.link(nine, "temperature", local(9, 11));
        site.link(ten_30, "humidity", local(10, 41));
        let model = site.fold();
        assert_eq!(
            found(model.anomalies_without_incident()),
            [(nine, "door_locks"), (logs_today, "console_logs")]
        );
        let view = model.get(nine).unwrap();
        assert_eq!(
            view.anomaly("temperature").unwrap().incident_id,
            Some(incident)
        );
        assert_eq!(view.anomaly("door_locks").unwrap().incident_id, None);
        let state = view.state();
        let to_open: Vec<&str> = state.incidents_to_open().map(|a| a.key.as_str()).collect();
        assert_eq!(to_open, ["door_locks"], "as the domain sees it");
        let (from, to) = today();
        assert_eq!(
            model.anomalies(None, from, to).count(),
            5,
            "linked anomalies are still anomalies"
        );
    }

    #[test]
    fn templates_keep_every_version_and_the_scheduler_learns_where_to_resume() {
        let mut site = Site::default();
        site.define(&["machine_room_walk", "daily_log_check"], local(8, 0));
        let unscheduled = |model: &Inspections, from, to| {
            let state = model.template(walk()).unwrap().state();
            let next = model.next_due(walk(), from).unwrap();
            state
                .slots(next, to)
                .iter()
                .map(|s| s.due)
                .collect::<Vec<_>>()
        };
        let model = site.fold();
        assert_eq!(
            model.next_due(walk(), local(9, 10)),
            Some(local(9, 0)),
            "never scheduled: from the slot open now"
        );
        assert_eq!(model.next_due(Uuid::nil(), local(9, 10)), None);

        let nine = site.schedule(walk(), local(9, 0), local(8, 0));
        site.schedule(walk(), local(9, 45), local(8, 0));
        let model = site.fold();
        assert_eq!(model.last_scheduled(walk()), Some(local(9, 45)));
        assert_eq!(
            unscheduled(&model, local(9, 10), local(11, 30)),
            [local(10, 30), local(11, 15)]
        );

        let mut hourly = model.template(walk()).unwrap().definition.schedule;
        hourly.cadence = Cadence::Every { minutes: 60 };
        let items = model.template(walk()).unwrap().definition.items[..4].to_vec();
        site.template(
            walk(),
            InspectionTemplateCommand::ReviseTemplate {
                items,
                schedule: hourly,
            },
            local(10, 0),
        );
        site.template(
            logs(),
            InspectionTemplateCommand::RetireTemplate {
                reason: "改由日誌平臺自動檢查".into(),
            },
            local(10, 5),
        );
        let eleven = site.schedule(walk(), local(11, 0), local(10, 10));
        let model = site.fold();

        let templates: Vec<Uuid> = model.templates().map(|t| t.id).collect();
        assert_eq!(templates, [walk()], "the retired one schedules nothing");
        assert_eq!(model.all_templates().count(), 2);
        assert_eq!(model.next_due(logs(), local(10, 10)), None);
        let retired = model.template(logs()).unwrap().retired.as_ref().unwrap();
        assert_eq!(
            (retired.at, retired.by.as_str(), retired.reason.as_str()),
            (local(10, 5), "u-ops", "改由日誌平臺自動檢查")
        );

        let t = model.template(walk()).unwrap();
        assert_eq!(t.version, 2);
        let versions: Vec<(u32, DateTime<Utc>, usize)> = t
            .history
            .iter()
            .map(|v| (v.version, v.at, v.definition.items.len()))
            .collect();
        assert_eq!(versions, [(1, local(8, 0), 10), (2, local(10, 0), 4)]);
        assert!(t.history[0].position < t.history[1].position);
        assert_eq!(
            t.version(1).unwrap().definition.schedule.cadence,
            Cadence::Every { minutes: 45 }
        );
        assert_eq!(
            t.state(),
            site.templates[&walk()],
            "as the domain folded it"
        );

        assert_eq!(
            unscheduled(&model, local(11, 0), local(14, 0)),
            [local(12, 0), local(13, 0)],
            "hourly from the one last scheduled"
        );
        assert_eq!(model.get(nine).unwrap().template_version, 1);
        let revised = model.get(eleven).unwrap();
        assert_eq!((revised.template_version, revised.items.len()), (2, 4));
    }

    /// Everything a caller can ask, as comparable values.
    fn answers(model: &Inspections) -> String {
        let (from, to) = today();
        let views = |list: Vec<&InspectionView>| format!("{list:?}");
        format!(
            "{}\n{}\n{}\n{}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            views(model.between(from, to).collect()),
            views(model.open_past_deadline(to).collect()),
            views(model.overdue().collect()),
            views(model.anomalies(None, from, to).map(|(v, _)| v).collect()),
            found(model.anomalies(Some(Area::MachineRoom), from, to)),
            model.anomaly_counts(from, to),
            found(model.anomalies_without_incident()),
            model.templates().collect::<Vec<_>>(),
            model.next_due(walk(), to),
            model.last_scheduled(logs()),
        )
    }

    #[test]
    fn a_snapshot_reads_back_with_the_same_answers_and_folds_on() {
        let (mut site, [_, logs_today, .., eleven_15, _]) = a_day();
        site.record(
            eleven_15,
            vec![
                read("temperature", 29.5),
                anomaly("cleanliness", "地板水漬,已清理"),
            ],
            local(11, 20),
        );
        site.record(
            logs_today,
            vec![anomaly("console_logs", "管理控制臺登錄失敗告警")],
            local(18, 30),
        );
        site.link(eleven_15, "temperature", local(11, 21));
        let model = site.fold();
        let json = serde_json::to_string(&model).unwrap();
        let mut back: Inspections = serde_json::from_str(&json).unwrap();
        assert_eq!(answers(&back), answers(&model));
        assert_eq!(
            found(back.anomalies_without_incident()),
            [(logs_today, "console_logs")]
        );

        // Both fold on to the same state.
        let mut model = model;
        let before = site.log.events.len();
        site.link(logs_today, "console_logs", local(18, 31));
        site.complete(eleven_15, local(11, 40));
        for e in &site.log.events[before..] {
            model.apply(e);
            back.apply(e);
        }
        assert_eq!(answers(&back), answers(&model));
        assert_eq!(answers(&model), answers(&site.fold()));
        assert_eq!(found(back.anomalies_without_incident()), []);
    }
}
