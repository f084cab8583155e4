//! Emergency plans (應急預案) as the operations centre follows them: every plan with every
//! version of its runbook, and every run with its steps (who did each, when, with what
//! note), for an incident or as a drill. Runs are listed by incident, in the order
//! started, and drills newest first.
//!
//! A run for an incident is also part of that incident's story: [`Emergency::timeline_entry`]
//! says, for each run event, the line it adds to the incident's timeline.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent};
use opsledger_domain::operations::emergency::{
    EmergencyPlan, EmergencyPlanEvent, PlanRun, PlanRunEvent, PlanStep, RunStatus, Scenario,
};
use opsledger_domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::operations::incidents::TimelineEntry;
use crate::{stream_id, stream_kind, Projection};

/// An event of the emergency plan and plan run streams, decoded once.
#[derive(Debug)]
pub enum EmergencyEvents {
    Plan(EmergencyPlanEvent),
    Run(PlanRunEvent),
}

impl EmergencyEvents {
    /// The event decoded, when its stream is one of these kinds.
    pub fn of(event: &RecordedEvent) -> Option<Result<EmergencyEvents, serde_json::Error>> {
        Some(match stream_kind(&event.stream) {
            EmergencyPlan::KIND => {
                EmergencyPlanEvent::from_recorded(event).map(EmergencyEvents::Plan)
            }
            PlanRun::KIND => PlanRunEvent::from_recorded(event).map(EmergencyEvents::Run),
            _ => return None,
        })
    }
}

/// One version of a plan's runbook, with the position and time it took effect, who wrote
/// it and (for a revision) why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanVersion {
    pub version: u32,
    pub position: u64,
    pub at: DateTime<Utc>,
    pub by: String,
    pub steps: Vec<PlanStep>,
    /// What the revision changed and why; `None` for version 1.
    pub note: Option<String>,
}

/// Why and when a plan was retired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retirement {
    pub position: u64,
    pub at: DateTime<Utc>,
    pub by: String,
    pub reason: String,
}

/// A plan as it stands, and every version it had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanView {
    pub id: Uuid,
    pub key: String,
    pub name: String,
    pub scenario: Scenario,
    /// The current version.
    pub version: u32,
    pub retired: Option<Retirement>,
    /// Every version, oldest first; never empty.
    pub history: Vec<PlanVersion>,
}

impl PlanView {
    /// The current version.
    pub fn current(&self) -> &PlanVersion {
        self.history
            .last()
            .expect("a plan has the version it was defined with")
    }

    /// Version `version`, if the plan had it.
    pub fn version(&self, version: u32) -> Option<&PlanVersion> {
        self.history.iter().find(|v| v.version == version)
    }

    /// Whether runs may still be started from it.
    pub fn in_force(&self) -> bool {
        self.retired.is_none()
    }
}

/// Where a step of a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Done,
    Skipped,
}

/// One step of a run: the plan's step as copied, and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    pub step: PlanStep,
    pub state: StepState,
    /// Who did or skipped it.
    pub by: Option<String>,
    pub at: Option<DateTime<Utc>>,
    /// The note it was done with, or the reason it was skipped.
    pub note: Option<String>,
    /// The position of the event that settled it.
    pub position: Option<u64>,
}

/// Why and when a run stopped with steps outstanding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Abort {
    pub at: DateTime<Utc>,
    pub by: String,
    pub reason: String,
    /// The required steps neither done nor skipped, in plan order.
    pub outstanding: Vec<String>,
}

/// A run as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunView {
    pub id: Uuid,
    pub plan_id: Uuid,
    /// The version whose steps it copied.
    pub plan_version: u32,
    pub name: String,
    pub scenario: Scenario,
    /// `None` for a drill.
    pub incident_id: Option<Uuid>,
    pub drill: bool,
    pub note: Option<String>,
    pub started_at: DateTime<Utc>,
    pub started_by: String,
    /// In plan order.
    pub steps: Vec<StepView>,
    pub status: RunStatus,
    pub completed_at: Option<DateTime<Utc>>,
    pub duration_secs: Option<u64>,
    pub aborted: Option<Abort>,
    pub updated_at: DateTime<Utc>,
}

impl RunView {
    /// The step `key`, if the run has it.
    pub fn step(&self, key: &str) -> Option<&StepView> {
        self.steps.iter().find(|s| s.step.key == key)
    }

    /// The run's domain state, as its own events fold to.
    pub fn state(&self) -> PlanRun {
        let settled = |state| {
            self.steps
                .iter()
                .filter(move |s| s.state == state)
                .map(|s| s.step.key.clone())
        };
        PlanRun {
            run_id: Some(self.id),
            plan_id: self.plan_id,
            plan_version: self.plan_version,
            name: self.name.clone(),
            scenario: Some(self.scenario),
            steps: self.steps.iter().map(|s| s.step.clone()).collect(),
            incident_id: self.incident_id,
            drill: self.drill,
            started_at: Some(self.started_at),
            completed: self
                .steps
                .iter()
                .filter(|s| s.state == StepState::Done)
                .filter_map(|s| Some((s.step.key.clone(), s.at?)))
                .collect(),
            skipped: settled(StepState::Skipped).collect(),
            completed_at: self.completed_at,
            aborted_at: self.aborted.as_ref().map(|a| a.at),
        }
    }

    /// The keys of the steps that may be done now (see [`PlanRun::next_steps`]).
    pub fn next_steps(&self) -> Vec<String> {
        self.state()
            .next_steps()
            .into_iter()
            .map(|s| s.key.clone())
            .collect()
    }
}

/// The read model.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Emergency {
    /// In the order defined.
    plans: IndexMap<Uuid, PlanView>,
    runs: HashMap<Uuid, RunView>,
    /// Every run, in the order started.
    order: Vec<Uuid>,
    /// Each incident's runs, in the order started.
    by_incident: HashMap<Uuid, Vec<Uuid>>,
    /// Drills, in the order started.
    drills: Vec<Uuid>,
}

impl Emergency {
    pub fn plan(&self, id: Uuid) -> Option<&PlanView> {
        self.plans.get(&id)
    }

    /// Every plan, retired ones too, in the order defined.
    pub fn plans(&self) -> impl Iterator<Item = &PlanView> + '_ {
        self.plans.values()
    }

    pub fn get(&self, run_id: Uuid) -> Option<&RunView> {
        self.runs.get(&run_id)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Every run, newest first.
    pub fn runs(&self) -> impl Iterator<Item = &RunView> + '_ {
        self.order.iter().rev().filter_map(|id| self.runs.get(id))
    }

    /// The runs for an incident, in the order started.
    pub fn runs_for(&self, incident_id: Uuid) -> impl Iterator<Item = &RunView> + '_ {
        self.by_incident
            .get(&incident_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.runs.get(id))
    }

    /// Drills, newest first.
    pub fn drills(&self) -> impl Iterator<Item = &RunView> + '_ {
        self.drills.iter().rev().filter_map(|id| self.runs.get(id))
    }
}

impl Emergency {
    pub fn on_event(&mut self, event: &RecordedEvent, e: &EmergencyEvents) {
        match e {
            EmergencyEvents::Plan(e) => self.on_plan(event, e),
            EmergencyEvents::Run(e) => self.on_run(event, e),
        }
    }

    fn on_plan(&mut self, event: &RecordedEvent, e: &EmergencyPlanEvent) {
        use EmergencyPlanEvent as E;
        let Some(id) = stream_id(&event.stream) else {
            return;
        };
        let at = event.metadata.recorded_at;
        let by = event.metadata.actor.id.clone();
        let version = |version: u32, steps: &[PlanStep], note: Option<&String>| PlanVersion {
            version,
            position: event.position,
            at,
            by: by.clone(),
            steps: steps.to_vec(),
            note: note.cloned(),
        };
        match e {
            E::EmergencyPlanDefined {
                key,
                name,
                scenario,
                version: v,
                steps,
                ..
            } => {
                self.plans.entry(id).or_insert_with(|| PlanView {
                    id,
                    key: key.clone(),
                    name: name.clone(),
                    scenario: *scenario,
                    version: *v,
                    retired: None,
                    history: vec![version(*v, steps, None)],
                });
            }
            E::EmergencyPlanRevised {
                version: v,
                steps,
                note,
            } => {
                if let Some(plan) = self.plans.get_mut(&id) {
                    plan.version = *v;
                    plan.history.push(version(*v, steps, Some(note)));
                }
            }
            E::EmergencyPlanRetired { reason, .. } => {
                if let Some(plan) = self.plans.get_mut(&id) {
                    plan.retired = Some(Retirement {
                        position: event.position,
                        at,
                        by,
                        reason: reason.clone(),
                    });
                }
            }
        }
    }

    fn on_run(&mut self, event: &RecordedEvent, e: &PlanRunEvent) {
        use PlanRunEvent as E;
        let Some(id) = stream_id(&event.stream) else {
            return;
        };
        let at = event.metadata.recorded_at;
        if let E::PlanRunStarted {
            plan_id,
            plan_version,
            name,
            scenario,
            steps,
            incident_id,
            drill,
            note,
            by,
            at: started_at,
            ..
        } = e
        {
            if self.runs.contains_key(&id) {
                return;
            }
            self.runs.insert(
                id,
                RunView {
                    id,
                    plan_id: *plan_id,
                    plan_version: *plan_version,
                    name: name.clone(),
                    scenario: *scenario,
                    incident_id: *incident_id,
                    drill: *drill,
                    note: note.clone(),
                    started_at: *started_at,
                    started_by: by.clone(),
                    steps: steps
                        .iter()
                        .map(|step| StepView {
                            step: step.clone(),
                            state: StepState::Pending,
                            by: None,
                            at: None,
                            note: None,
                            position: None,
                        })
                        .collect(),
                    status: RunStatus::Running,
                    completed_at: None,
                    duration_secs: None,
                    aborted: None,
                    updated_at: at,
                },
            );
            self.order.push(id);
            match incident_id {
                Some(incident) => self.by_incident.entry(*incident).or_default().push(id),
                None => self.drills.push(id),
            }
            return;
        }
        let Some(run) = self.runs.get_mut(&id) else {
            return;
        };
        run.updated_at = at;
        let mut settle = |key: &str, state, by: &str, at, note: Option<&String>| {
            if let Some(s) = run.steps.iter_mut().find(|s| s.step.key == key) {
                s.state = state;
                s.by = Some(by.to_owned());
                s.at = Some(at);
                s.note = note.cloned();
                s.position = Some(event.position);
            }
        };
        match e {
            E::PlanRunStarted { .. } => {}
            E::PlanStepCompleted { key, by, note, at } => {
                settle(key, StepState::Done, by, *at, note.as_ref());
            }
            E::PlanStepSkipped {
                key,
                by,
                reason,
                at,
                ..
            } => settle(key, StepState::Skipped, by, *at, Some(reason)),
            E::PlanRunCompleted { at, duration_secs } => {
                run.status = RunStatus::Completed;
                run.completed_at = Some(*at);
                run.duration_secs = Some(*duration_secs);
            }
            E::PlanRunAborted {
                reason,
                by,
                at,
                outstanding,
            } => {
                run.status = RunStatus::Aborted;
                run.aborted = Some(Abort {
                    at: *at,
                    by: by.clone(),
                    reason: reason.clone(),
                    outstanding: outstanding.clone(),
                });
            }
        }
    }

    /// The line a run event adds to its incident's timeline, once folded in: the incident
    /// and the entry. `None` for a plan event and for a drill's events.
    pub fn timeline_entry(
        &self,
        event: &RecordedEvent,
        e: &EmergencyEvents,
    ) -> Option<(Uuid, TimelineEntry)> {
        use PlanRunEvent as E;
        let EmergencyEvents::Run(e) = e else {
            return None;
        };
        let run = self.runs.get(&stream_id(&event.stream)?)?;
        let incident = run.incident_id?;
        let title = |key: &str| {
            run.step(key)
                .map_or_else(|| key.to_owned(), |s| s.step.title.clone())
        };
        let with = |text: &Option<String>| {
            text.as_deref()
                .map(|t| format!(": {t}"))
                .unwrap_or_default()
        };
        let summary = match e {
            E::PlanRunStarted {
                name,
                plan_version,
                note,
                ..
            } => format!(
                "Emergency plan started: {name} (version {plan_version}){}",
                with(note)
            ),
            E::PlanStepCompleted { key, note, .. } => {
                format!("Plan step done: {} ({key}){}", title(key), with(note))
            }
            E::PlanStepSkipped {
                key,
                reason,
                required,
                ..
            } => format!(
                "Plan step skipped: {} ({key}{}): {reason}",
                title(key),
                if *required { ", required" } else { "" }
            ),
            E::PlanRunCompleted { duration_secs, .. } => format!(
                "Emergency plan completed: {} in {} min",
                run.name,
                duration_secs / 60
            ),
            E::PlanRunAborted {
                reason,
                outstanding,
                ..
            } => format!(
                "Emergency plan aborted: {}: {reason}; outstanding: {}",
                run.name,
                if outstanding.is_empty() {
                    "none".to_owned()
                } else {
                    outstanding.join(", ")
                }
            ),
        };
        Some((
            incident,
            TimelineEntry {
                position: event.position,
                at: event.metadata.recorded_at,
                actor: event.metadata.actor.id.clone(),
                event_type: event.event_type.clone(),
                summary,
            },
        ))
    }
}

impl Projection for Emergency {
    fn name(&self) -> &'static str {
        "emergency"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        if let Some(Ok(e)) = EmergencyEvents::of(event) {
            self.on_event(event, &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use opsledger_domain::kernel::aggregate::Context;
    use opsledger_domain::operations::emergency::{
        plan_id, plan_runbooks, run_id, EmergencyPlanCommand, PlanRunCommand,
    };
    use opsledger_domain::operations::incident::{
        Assessment, Extent, Importance, IncidentEvent, Opening, Priority, Source,
    };
    use opsledger_domain::Actor;

    use super::*;
    use crate::test_log::{at, person, Log};
    use crate::ReadModels;

    fn manager() -> Actor {
        person("u-wong", "運維中心", &["operations_manager"])
    }

    fn engineer() -> Actor {
        person("u-lam", "運維中心", &["engineer"])
    }

    fn operator() -> Actor {
        person("u-ops", "運維中心", &["operator"])
    }

    fn ups() -> Uuid {
        plan_id("ups_failure")
    }

    fn air() -> Uuid {
        plan_id("air_conditioning_failure")
    }

    fn incident() -> Uuid {
        Uuid::from_u128(42)
    }

    /// The log, and each stream's domain state: every event is one the domain decided.
    #[derive(Default)]
    struct Site {
        log: Log,
        plans: HashMap<Uuid, EmergencyPlan>,
        runs: HashMap<Uuid, PlanRun>,
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
        /// The plan's seven runbooks, defined by the operations manager at 08:00.
        fn defined() -> Site {
            let mut site = Site::default();
            for command in plan_runbooks() {
                let EmergencyPlanCommand::DefinePlan { plan_id: id, .. } = &command else {
                    unreachable!()
                };
                let id = *id;
                site.plan(id, command, at(8));
            }
            site
        }

        fn plan(&mut self, id: Uuid, command: EmergencyPlanCommand, now: DateTime<Utc>) {
            let state = self.plans.entry(id).or_default();
            let stream = format!("emergency_plan-{id}");
            decide(&mut self.log, state, &stream, command, &manager(), now);
        }

        fn start(&mut self, plan: Uuid, incident: Option<Uuid>, now: DateTime<Utc>) -> Uuid {
            let state = &self.plans[&plan];
            let command = match incident {
                Some(i) => state.run_for_incident(i, Some("機房告警".into())),
                None => state.drill(Uuid::now_v7(), None),
            }
            .unwrap();
            let PlanRunCommand::StartRun { run_id: id, .. } = &command else {
                unreachable!()
            };
            let id = *id;
            self.run(id, command, &engineer(), now);
            id
        }

        fn run(&mut self, id: Uuid, command: PlanRunCommand, by: &Actor, now: DateTime<Utc>) {
            let state = self.runs.entry(id).or_default();
            let stream = format!("plan_run-{id}");
            decide(&mut self.log, state, &stream, command, by, now);
        }

        fn done(&mut self, id: Uuid, key: &str, by: &Actor, now: DateTime<Utc>) {
            let command = PlanRunCommand::CompleteStep {
                key: key.into(),
                note: Some(format!("{key} 完成")),
            };
            self.run(id, command, by, now);
        }

        fn fold(&self) -> Emergency {
            self.log.fold()
        }
    }

    fn opened(log: &mut Log) {
        let assessment = Assessment {
            importance: Importance::Important,
            loss: Extent::Minor,
            social_impact: Extent::Minor,
        };
        let opening = Opening {
            title: "UPS 告警".into(),
            description: "UPS 旁路運行".into(),
            service: "machine-room".into(),
            ci_ids: Vec::new(),
            assessment,
            priority: Priority::from_assessment(&assessment),
            warning_level: 1,
            source: Source::Monitoring,
            department: None,
        };
        let event = IncidentEvent::IncidentOpened {
            incident_id: incident(),
            opening: Box::new(opening),
            severity: assessment.severity(),
        };
        log.record(
            &format!("incident-{}", incident()),
            &event,
            &person("u-desk", "運維中心", &["service_desk"]),
            7,
        );
    }

    fn states(run: &RunView) -> Vec<(&str, StepState, Option<&str>)> {
        run.steps
            .iter()
            .map(|s| (s.step.key.as_str(), s.state, s.by.as_deref()))
            .collect()
    }

    #[test]
    fn plans_keep_every_version_and_a_run_keeps_the_version_it_copied() {
        let mut site = Site::defined();
        let for_incident = site.start(ups(), Some(incident()), at(9));
        let mut steps = site.plans[&ups()].steps.clone();
        steps.insert(
            1,
            PlanStep::new(
                "call_vendor",
                "聯繫UPS廠商",
                "",
                opsledger_domain::kernel::aggregate::Role::Engineer,
            )
            .optional(),
        );
        site.plan(
            ups(),
            EmergencyPlanCommand::RevisePlan {
                steps,
                note: "加入聯繫廠商".into(),
            },
            at(10),
        );
        let drill = site.start(ups(), None, at(11));
        site.plan(
            plan_id("fire"),
            EmergencyPlanCommand::RetirePlan {
                reason: "併入消防總預案".into(),
            },
            at(12),
        );
        let model = site.fold();

        let keys: Vec<&str> = model.plans().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "network_outage",
                "server_attack",
                "scheduled_power_cut",
                "mains_power_failure",
                "ups_failure",
                "air_conditioning_failure",
                "fire"
            ]
        );
        let plan = model.plan(ups()).unwrap();
        assert_eq!(plan.version, 2);
        /// Version, time, author, note and number of steps.
        type Version<'a> = (u32, DateTime<Utc>, &'a str, Option<&'a str>, usize);
        let history: Vec<Version> = plan
            .history
            .iter()
            .map(|v| {
                (
                    v.version,
                    v.at,
                    v.by.as_str(),
                    v.note.as_deref(),
                    v.steps.len(),
                )
            })
            .collect();
        assert_eq!(
            history,
            [
                (1, at(8), "u-wong", None, 4),
                (2, at(10), "u-wong", Some("加入聯繫廠商"), 5)
            ]
        );
        assert!(plan.history[0].position < plan.history[1].position);
        assert_eq!(plan.current().steps[1].key, "call_vendor");
        assert_eq!(
            plan.version(1).unwrap().steps[1].key,
            "increase_inspections"
        );
        assert!(plan.in_force());
        let fire = model.plan(plan_id("fire")).unwrap();
        assert_eq!(
            fire.retired.as_ref().map(|r| (r.reason.as_str(), r.at)),
            Some(("併入消防總預案", at(12)))
        );

        let old = model.get(for_incident).unwrap();
        assert_eq!((old.plan_version, old.steps.len()), (1, 4));
        assert_eq!(old.incident_id, Some(incident()));
        assert_eq!(for_incident, run_id(incident(), ups()));
        let new = model.get(drill).unwrap();
        assert_eq!((new.plan_version, new.steps.len(), new.drill), (2, 5, true));
        assert_eq!(new.incident_id, None);
    }

    #[test]
    fn a_run_records_who_did_each_step_and_adds_a_line_to_its_incident_s_timeline() {
        let mut site = Site::defined();
        opened(&mut site.log);
        let run = site.start(ups(), Some(incident()), at(9));
        site.done(run, "report_to_team", &engineer(), at(9));
        let partway = site.fold();
        let view = partway.get(run).unwrap();
        assert_eq!(view.status, RunStatus::Running);
        assert_eq!(view.next_steps(), ["increase_inspections"]);
        assert_eq!(
            view.state(),
            site.runs[&run],
            "the view folds as the domain does"
        );

        site.done(run, "increase_inspections", &operator(), at(10));
        site.done(run, "repair_ups", &engineer(), at(11));
        site.done(run, "summary", &manager(), at(12));
        // A drill of the same plan touches no incident.
        let drill = site.start(ups(), None, at(13));
        site.done(drill, "report_to_team", &engineer(), at(13));

        let mut models = ReadModels::default();
        for e in &site.log.events {
            models.apply(e);
        }
        let view = models.emergency.get(run).unwrap();
        assert_eq!(
            states(view),
            [
                ("report_to_team", StepState::Done, Some("u-lam")),
                ("increase_inspections", StepState::Done, Some("u-ops")),
                ("repair_ups", StepState::Done, Some("u-lam")),
                ("summary", StepState::Done, Some("u-wong")),
            ]
        );
        let summary = view.step("summary").unwrap();
        assert_eq!(
            (summary.at, summary.note.as_deref()),
            (Some(at(12)), Some("summary 完成"))
        );
        assert_eq!(view.status, RunStatus::Completed);
        assert_eq!(
            (view.completed_at, view.duration_secs),
            (Some(at(12)), Some(3 * 3600))
        );
        assert_eq!(view.state(), site.runs[&run]);
        assert!(view.next_steps().is_empty());

        let timeline: Vec<(&str, &str, &str)> = models
            .incidents
            .get(incident())
            .unwrap()
            .timeline
            .iter()
            .map(|t| (t.event_type.as_str(), t.actor.as_str(), t.summary.as_str()))
            .collect();
        assert_eq!(
            timeline,
            [
                ("IncidentOpened", "u-desk", timeline[0].2),
                (
                    "PlanRunStarted",
                    "u-lam",
                    "Emergency plan started: UPS電源故障應急預案 (version 1): 機房告警"
                ),
                (
                    "PlanStepCompleted",
                    "u-lam",
                    "Plan step done: 報告應急小組 (report_to_team): report_to_team 完成"
                ),
                (
                    "PlanStepCompleted",
                    "u-ops",
                    "Plan step done: 增加巡檢次數 (increase_inspections): increase_inspections 完成"
                ),
                (
                    "PlanStepCompleted",
                    "u-lam",
                    "Plan step done: 檢修UPS (repair_ups): repair_ups 完成"
                ),
                (
                    "PlanStepCompleted",
                    "u-wong",
                    "Plan step done: 總結匯報應急小組 (summary): summary 完成"
                ),
                (
                    "PlanRunCompleted",
                    "u-wong",
                    "Emergency plan completed: UPS電源故障應急預案 in 180 min"
                ),
            ]
        );
        // The models folded together agree with the one folded alone.
        assert_eq!(
            format!("{:?}", models.emergency.runs().collect::<Vec<_>>()),
            format!("{:?}", site.fold().runs().collect::<Vec<_>>())
        );
    }

    #[test]
    fn skips_and_aborts_are_recorded_with_their_reasons() {
        let mut site = Site::defined();
        opened(&mut site.log);
        let run = site.start(air(), Some(incident()), at(9));
        site.run(
            run,
            PlanRunCommand::SkipStep {
                key: "check_mains".into(),
                reason: "僅一臺空調故障".into(),
            },
            &engineer(),
            at(9),
        );
        site.done(run, "start_standby", &operator(), at(10));
        site.run(
            run,
            PlanRunCommand::AbortRun {
                reason: "誤報".into(),
            },
            &manager(),
            at(11),
        );
        let mut models = ReadModels::default();
        for e in &site.log.events {
            models.apply(e);
        }
        let view = models.emergency.get(run).unwrap();
        let skipped = view.step("check_mains").unwrap();
        assert_eq!(
            (
                skipped.state,
                skipped.by.as_deref(),
                skipped.note.as_deref()
            ),
            (StepState::Skipped, Some("u-lam"), Some("僅一臺空調故障"))
        );
        assert_eq!(view.status, RunStatus::Aborted);
        assert_eq!(
            view.aborted,
            Some(Abort {
                at: at(11),
                by: "u-wong".into(),
                reason: "誤報".into(),
                outstanding: vec!["repair".into(), "check_all".into()],
            })
        );
        assert_eq!(view.state(), site.runs[&run]);
        let summaries: Vec<&str> = models.incidents.get(incident()).unwrap().timeline[2..]
            .iter()
            .map(|t| t.summary.as_str())
            .collect();
        assert_eq!(
            summaries,
            [
                "Plan step skipped: 排查市電供電線路 (check_mains): 僅一臺空調故障",
                "Plan step done: 啟動備用空調 (start_standby): start_standby 完成",
                "Emergency plan aborted: 空調應急預案: 誤報; outstanding: repair, check_all",
            ]
        );
    }

    fn ids<'a>(list: impl Iterator<Item = &'a RunView>) -> Vec<Uuid> {
        list.map(|r| r.id).collect()
    }

    /// Runs for two incidents and two drills.
    fn runs() -> (Site, [Uuid; 5]) {
        let mut site = Site::defined();
        let other = Uuid::from_u128(43);
        let ups_run = site.start(ups(), Some(incident()), at(9));
        let drill = site.start(air(), None, at(10));
        let air_run = site.start(air(), Some(incident()), at(11));
        let elsewhere = site.start(ups(), Some(other), at(12));
        let later_drill = site.start(ups(), None, at(13));
        (site, [ups_run, drill, air_run, elsewhere, later_drill])
    }

    #[test]
    fn runs_are_listed_by_incident_in_the_order_started_and_drills_newest_first() {
        let (site, [ups_run, drill, air_run, elsewhere, later_drill]) = runs();
        let model = site.fold();
        assert_eq!(ids(model.runs_for(incident())), [ups_run, air_run]);
        assert_eq!(ids(model.runs_for(Uuid::from_u128(43))), [elsewhere]);
        assert!(ids(model.runs_for(Uuid::from_u128(44))).is_empty());
        assert_eq!(ids(model.drills()), [later_drill, drill]);
        assert_eq!(
            ids(model.runs()),
            [later_drill, elsewhere, air_run, drill, ups_run]
        );
        assert_eq!(model.len(), 5);
        assert_eq!(
            model.get(drill).unwrap().started_at - model.get(ups_run).unwrap().started_at,
            Duration::hours(1)
        );
    }

    /// Everything a caller can ask, as comparable values.
    fn answers(model: &Emergency) -> String {
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}",
            model.plans().collect::<Vec<_>>(),
            model.runs().collect::<Vec<_>>(),
            model.runs_for(incident()).collect::<Vec<_>>(),
            model.drills().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn a_snapshot_reads_back_with_the_same_answers_and_folds_on() {
        let (mut site, [ups_run, ..]) = runs();
        site.done(ups_run, "report_to_team", &engineer(), at(14));
        let model = site.fold();
        let json = serde_json::to_string(&model).unwrap();
        let mut back: Emergency = serde_json::from_str(&json).unwrap();
        assert_eq!(answers(&back), answers(&model));

        let mut model = model;
        let before = site.log.events.len();
        site.done(ups_run, "increase_inspections", &operator(), at(15));
        let drill = site.start(plan_id("fire"), None, at(16));
        for e in &site.log.events[before..] {
            model.apply(e);
            back.apply(e);
        }
        assert_eq!(answers(&back), answers(&model));
        assert_eq!(answers(&model), answers(&site.fold()));
        assert_eq!(ids(back.drills()).first(), Some(&drill));
    }
}
