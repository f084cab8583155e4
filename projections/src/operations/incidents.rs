//! Incidents as they stand, with their SLA clocks: calendars and SLA policies with every
//! version, each incident's state, timeline and two clocks, open incidents by severity,
//! and the due times of every running clock (what the scheduler records warnings and
//! breaches from, and what the at-risk view lists).
//!
//! The clocks are folded from the log with each event's recorded time: a pause, a new
//! severity, a policy or calendar edit first brings the count up to the moment it was
//! recorded, so a replay shows exactly the clock the live system showed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent};
use opsledger_domain::operations::calendar::{BusinessHours, Calendar, CalendarEvent};
use opsledger_domain::operations::incident::{
    Incident, IncidentEvent, IncidentStatus, Opening, Resolution, Severity,
};
use opsledger_domain::operations::sla::{
    ClockKind, SlaClock, SlaEvent, SlaPolicy, SlaTerms, DEFAULT_SERVICE,
};
use opsledger_domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{stream_id, stream_kind, Projection};

/// An event of the incident, calendar and SLA streams, decoded once.
#[derive(Debug)]
pub enum OpsEvent {
    Incident(IncidentEvent),
    Calendar(CalendarEvent),
    Sla(SlaEvent),
}

impl OpsEvent {
    /// The event decoded, when its stream is one of these kinds.
    pub fn of(event: &RecordedEvent) -> Option<Result<OpsEvent, serde_json::Error>> {
        Some(match stream_kind(&event.stream) {
            Incident::KIND => IncidentEvent::from_recorded(event).map(OpsEvent::Incident),
            Calendar::KIND => CalendarEvent::from_recorded(event).map(OpsEvent::Calendar),
            SlaPolicy::KIND => SlaEvent::from_recorded(event).map(OpsEvent::Sla),
            _ => return None,
        })
    }
}

/// A calendar and its versions, each with the position and time it took effect.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CalendarView {
    pub id: Uuid,
    pub name: String,
    pub version: u32,
    pub hours: BusinessHours,
    pub history: Vec<(u64, DateTime<Utc>, u32, BusinessHours)>,
}

/// A service's SLA policy and its versions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyView {
    pub version: u32,
    pub terms: SlaTerms,
    pub history: Vec<(u64, DateTime<Utc>, u32, SlaTerms)>,
}

/// One line of an incident's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub position: u64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub event_type: String,
    /// What happened, in a sentence.
    pub summary: String,
}

/// An incident as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IncidentView {
    pub id: Uuid,
    pub opening: Opening,
    pub state: Incident,
    pub opened_at: DateTime<Utc>,
    pub opened_by: String,
    pub updated_at: DateTime<Utc>,
    pub team: Option<String>,
    pub assignee: Option<String>,
    pub resolution: Option<Resolution>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The service whose policy runs the clocks (its own or the default), if any.
    pub policy: Option<String>,
    pub calendar_id: Option<Uuid>,
    /// The response and the resolution clock.
    pub clocks: Option<Box<[SlaClock; 2]>>,
    /// The due (warning, breach) times of each clock as indexed.
    due: [[Option<DateTime<Utc>>; 2]; 2],
    pub timeline: Vec<TimelineEntry>,
}

impl IncidentView {
    pub fn is_open(&self) -> bool {
        !matches!(
            self.state.status,
            IncidentStatus::Resolved | IncidentStatus::Closed
        )
    }

    pub fn clock(&self, kind: ClockKind) -> Option<&SlaClock> {
        self.clocks.as_ref().map(|c| &c[kind as usize])
    }
}

/// Whether a due time is a clock's warning or its breach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    Warning,
    Breach,
}

/// A due warning or breach: what the scheduler records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Due {
    pub at: DateTime<Utc>,
    pub incident: Uuid,
    pub clock: ClockKind,
    pub stage: Stage,
}

/// The read model.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Incidents {
    pub calendars: HashMap<Uuid, CalendarView>,
    pub policies: BTreeMap<String, PolicyView>,
    incidents: HashMap<Uuid, IncidentView>,
    /// Every incident, in the order opened.
    order: Vec<Uuid>,
    /// Open incidents, most severe first, then oldest first.
    open: BTreeSet<(Reverse<Severity>, DateTime<Utc>, Uuid)>,
    /// Incidents whose clocks may still move (not closed, with a policy).
    clocked: BTreeSet<Uuid>,
    /// Open incidents at warning level 2 or 3.
    escalated: BTreeSet<Uuid>,
    due: BTreeSet<Due>,
}

/// The hours of a policy whose calendar is unknown: around the clock.
static ALWAYS: std::sync::LazyLock<BusinessHours> =
    std::sync::LazyLock::new(|| BusinessHours::always(chrono_tz::UTC));

impl Incidents {
    pub fn get(&self, id: Uuid) -> Option<&IncidentView> {
        self.incidents.get(&id)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Adds a line to an incident's timeline from outside its own stream (e.g. a step of
    /// an emergency plan run for it); nothing when there is no such incident.
    pub fn note(&mut self, incident_id: Uuid, entry: TimelineEntry) {
        if let Some(v) = self.incidents.get_mut(&incident_id) {
            v.timeline.push(entry);
        }
    }

    /// Every incident, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &IncidentView> + '_ {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.incidents.get(id))
    }

    /// Open incidents, most severe first and oldest first within a severity.
    pub fn open(&self) -> impl DoubleEndedIterator<Item = &IncidentView> + '_ {
        self.open
            .iter()
            .filter_map(|(_, _, id)| self.incidents.get(id))
    }

    /// Open incidents of one severity, oldest first.
    pub fn open_of(&self, severity: Severity) -> impl Iterator<Item = &IncidentView> + '_ {
        let from = (Reverse(severity), DateTime::<Utc>::MIN_UTC, Uuid::nil());
        let to = (Reverse(severity), DateTime::<Utc>::MAX_UTC, Uuid::max());
        self.open
            .range(from..=to)
            .filter_map(|(_, _, id)| self.incidents.get(id))
    }

    /// How many incidents of each severity are open.
    pub fn open_counts(&self) -> [usize; 3] {
        let mut counts = [0; 3];
        for s in Severity::ALL {
            let from = (Reverse(s), DateTime::<Utc>::MIN_UTC, Uuid::nil());
            let to = (Reverse(s), DateTime::<Utc>::MAX_UTC, Uuid::max());
            counts[s as usize] = self.open.range(from..=to).count();
        }
        counts
    }

    /// Open incidents at warning level 2 or 3: where duties may be outstanding.
    pub fn escalated(&self) -> impl Iterator<Item = &IncidentView> + '_ {
        self.escalated
            .iter()
            .filter_map(|id| self.incidents.get(id))
    }

    /// Due warnings and breaches, earliest first.
    pub fn due(&self) -> impl Iterator<Item = &Due> + '_ {
        self.due.iter()
    }

    /// Due warnings and breaches at or before `now`: what the scheduler records.
    pub fn due_by(&self, now: DateTime<Utc>) -> Vec<Due> {
        self.due
            .iter()
            .take_while(|d| d.at <= now)
            .copied()
            .collect()
    }

    /// Clocks not yet breached, by the time they will breach (earliest first).
    pub fn at_risk(&self) -> impl Iterator<Item = &Due> + '_ {
        self.due.iter().filter(|d| d.stage == Stage::Breach)
    }

    /// The hours of a calendar as they are now.
    pub fn hours(&self, calendar_id: Option<Uuid>) -> &BusinessHours {
        calendar_id
            .and_then(|c| self.calendars.get(&c))
            .map_or(&ALWAYS, |c| &c.hours)
    }

    fn terms_for(&self, service: &str) -> Option<(&str, &SlaTerms)> {
        self.policies
            .get_key_value(service)
            .or_else(|| self.policies.get_key_value(DEFAULT_SERVICE))
            .map(|(k, p)| (k.as_str(), &p.terms))
    }
}

fn target(terms: &SlaTerms, severity: Severity, kind: ClockKind) -> Option<Duration> {
    terms.targets.get(&severity).map(|t| {
        Duration::minutes(i64::from(match kind {
            ClockKind::Response => t.response_minutes,
            ClockKind::Resolution => t.resolution_minutes,
        }))
    })
}

impl Incidents {
    pub fn on_event(&mut self, event: &RecordedEvent, e: &OpsEvent) {
        let at = event.metadata.recorded_at;
        match e {
            OpsEvent::Calendar(CalendarEvent::CalendarSet {
                calendar_id,
                version,
                name,
                hours,
            }) => {
                let affected: Vec<Uuid> = self
                    .clocked
                    .iter()
                    .filter(|id| self.incidents[id].calendar_id == Some(*calendar_id))
                    .copied()
                    .collect();
                let old = self.hours(Some(*calendar_id)).clone();
                for id in &affected {
                    if let Some(c) = self.incidents.get_mut(id).and_then(|v| v.clocks.as_mut()) {
                        c.iter_mut().for_each(|c| c.advance(at, &old));
                    }
                }
                let view = self
                    .calendars
                    .entry(*calendar_id)
                    .or_insert_with(|| CalendarView {
                        id: *calendar_id,
                        name: name.clone(),
                        version: 0,
                        hours: hours.clone(),
                        history: Vec::new(),
                    });
                view.name.clone_from(name);
                view.version = *version;
                view.hours = hours.clone();
                view.history
                    .push((event.position, at, *version, hours.clone()));
                for id in affected {
                    self.reindex(id);
                }
            }
            OpsEvent::Sla(SlaEvent::SlaSet { version, terms }) => {
                let view = self
                    .policies
                    .entry(terms.service.clone())
                    .or_insert_with(|| PolicyView {
                        version: 0,
                        terms: terms.clone(),
                        history: Vec::new(),
                    });
                view.version = *version;
                view.terms = terms.clone();
                view.history
                    .push((event.position, at, *version, terms.clone()));
                let affected: Vec<Uuid> = self
                    .clocked
                    .iter()
                    .filter(|id| {
                        let v = &self.incidents[id];
                        v.policy.as_deref() == Some(&terms.service)
                            || (v.opening.service == terms.service
                                && v.policy.as_deref() == Some(DEFAULT_SERVICE))
                    })
                    .copied()
                    .collect();
                for id in affected {
                    self.apply_terms(id, at);
                }
            }
            OpsEvent::Incident(e) => self.on_incident(event, e),
        }
    }

    /// Brings an incident's clocks under the policy now in force for its service.
    fn apply_terms(&mut self, id: Uuid, at: DateTime<Utc>) {
        let Some(v) = self.incidents.get(&id) else {
            return;
        };
        let Some((service, terms)) = self.terms_for(&v.opening.service) else {
            return;
        };
        let (service, terms) = (service.to_owned(), terms.clone());
        let old = self.hours(v.calendar_id).clone();
        let severity = v.state.severity;
        if let Some(v) = self.incidents.get_mut(&id) {
            if let Some(clocks) = v.clocks.as_mut() {
                for kind in [ClockKind::Response, ClockKind::Resolution] {
                    clocks[kind as usize].retarget(
                        at,
                        &old,
                        target(&terms, severity, kind),
                        terms.warn_percent,
                    );
                }
            }
            v.policy = Some(service);
            v.calendar_id = Some(terms.calendar_id);
        }
        self.reindex(id);
    }

    fn on_incident(&mut self, event: &RecordedEvent, e: &IncidentEvent) {
        use IncidentEvent as E;
        let at = event.metadata.recorded_at;
        let Some(id) = stream_id(&event.stream) else {
            return;
        };
        if let E::IncidentOpened {
            incident_id,
            opening,
            ..
        } = e
        {
            let terms = self
                .terms_for(&opening.service)
                .map(|(s, t)| (s.to_owned(), t.clone()));
            let severity = opening.assessment.severity();
            let clocks = terms.as_ref().map(|(_, t)| {
                Box::new(
                    [ClockKind::Response, ClockKind::Resolution]
                        .map(|kind| SlaClock::start(at, target(t, severity, kind), t.warn_percent)),
                )
            });
            let view = IncidentView {
                id: *incident_id,
                opening: (**opening).clone(),
                state: Incident::default(),
                opened_at: at,
                opened_by: event.metadata.actor.id.clone(),
                updated_at: at,
                team: None,
                assignee: None,
                resolution: None,
                resolved_at: None,
                closed_at: None,
                calendar_id: terms.as_ref().map(|(_, t)| t.calendar_id),
                policy: terms.map(|(s, _)| s),
                clocks,
                due: Default::default(),
                timeline: Vec::new(),
            };
            self.order.push(id);
            if view.clocks.is_some() {
                self.clocked.insert(id);
            }
            self.incidents.insert(id, view);
        }
        let Some(view) = self.incidents.get(&id) else {
            return;
        };
        let was_open = view.is_open();
        let old_key = (Reverse(view.state.severity), view.opened_at, id);
        let hours = self.hours(view.calendar_id).clone();
        let terms = view
            .policy
            .as_ref()
            .and_then(|p| self.policies.get(p))
            .map(|p| p.terms.clone());
        let Some(view) = self.incidents.get_mut(&id) else {
            return;
        };
        view.state = std::mem::take(&mut view.state).evolve(e);
        view.updated_at = at;
        view.timeline.push(TimelineEntry {
            position: event.position,
            at,
            actor: event.metadata.actor.id.clone(),
            event_type: event.event_type.clone(),
            summary: summary(e),
        });
        let clocks = view.clocks.as_deref_mut();
        match e {
            E::IncidentOpened { .. } => {}
            E::IncidentAcknowledged { .. } => {
                if let Some([response, _]) = clocks {
                    response.stop(at, &hours);
                }
            }
            E::IncidentAssigned { team, assignee } => {
                if team.is_some() {
                    view.team.clone_from(team);
                }
                if assignee.is_some() {
                    view.assignee.clone_from(assignee);
                }
            }
            E::SeverityChanged { to, .. } => {
                if let (Some(clocks), Some(terms)) = (clocks, &terms) {
                    for kind in [ClockKind::Response, ClockKind::Resolution] {
                        clocks[kind as usize].retarget(
                            at,
                            &hours,
                            target(terms, *to, kind),
                            terms.warn_percent,
                        );
                    }
                }
            }
            E::IncidentPaused { .. } => {
                if let Some([_, resolution]) = clocks {
                    resolution.pause(at, &hours);
                }
            }
            E::IncidentResumed { .. } => {
                if let Some([_, resolution]) = clocks {
                    resolution.resume(at, &hours);
                }
            }
            E::IncidentResolved { resolution: r } => {
                view.resolution = Some(r.clone());
                view.resolved_at = Some(at);
                if let Some(clocks) = clocks {
                    for c in clocks.iter_mut().filter(|c| c.stopped_at.is_none()) {
                        c.stop(at, &hours);
                    }
                }
            }
            E::IncidentReopened { .. } => {
                view.resolved_at = None;
                if let Some([_, resolution]) = clocks {
                    resolution.restart(at, &hours);
                }
            }
            E::IncidentClosed { .. } => {
                view.closed_at = Some(at);
                self.clocked.remove(&id);
            }
            E::SlaWarned { clock, at } => {
                if let Some(c) = clocks {
                    c[*clock as usize].warned_at = Some(*at);
                }
            }
            E::SlaBreached { clock, at } => {
                if let Some(c) = clocks {
                    c[*clock as usize].breached_at = Some(*at);
                }
            }
            E::WarningLevelChanged { .. }
            | E::DutyDone { .. }
            | E::WorkLogged { .. }
            | E::IncidentLinked { .. } => {}
        }
        let is_open = view.is_open();
        let key = (Reverse(view.state.severity), view.opened_at, id);
        let escalated = is_open && view.state.warning_level >= 2;
        if was_open {
            self.open.remove(&old_key);
        }
        if is_open {
            self.open.insert(key);
        }
        if escalated {
            self.escalated.insert(id);
        } else {
            self.escalated.remove(&id);
        }
        self.reindex(id);
    }

    /// Puts an incident's due warnings and breaches in the index as its clocks now stand.
    fn reindex(&mut self, id: Uuid) {
        let Some(view) = self.incidents.get(&id) else {
            return;
        };
        let hours = self.hours(view.calendar_id);
        // A stopped clock (responded, resolved, closed) is due only for what it still owes.
        let mut due = [[None; 2]; 2];
        if let Some(clocks) = &view.clocks {
            for kind in [ClockKind::Response, ClockKind::Resolution] {
                let c = &clocks[kind as usize];
                due[kind as usize] = [c.warning_due(hours), c.breach_due(hours)];
            }
        }
        let old = view.due;
        if old == due {
            return;
        }
        for kind in [ClockKind::Response, ClockKind::Resolution] {
            for stage in [Stage::Warning, Stage::Breach] {
                let (k, s) = (kind as usize, stage as usize);
                if let Some(at) = old[k][s] {
                    self.due.remove(&Due {
                        at,
                        incident: id,
                        clock: kind,
                        stage,
                    });
                }
                if let Some(at) = due[k][s] {
                    self.due.insert(Due {
                        at,
                        incident: id,
                        clock: kind,
                        stage,
                    });
                }
            }
        }
        if let Some(v) = self.incidents.get_mut(&id) {
            v.due = due;
        }
    }
}

/// An event in a sentence, for the timeline and the report.
fn summary(e: &IncidentEvent) -> String {
    use IncidentEvent as E;
    match e {
        E::IncidentOpened {
            opening, severity, ..
        } => format!(
            "Opened: {} — severity {} ({}), warning level {}, priority {}",
            opening.title,
            severity.numeral(),
            severity.as_str(),
            opening.warning_level,
            opening.priority.number()
        ),
        E::IncidentAcknowledged { note } => {
            format!(
                "Acknowledged{}",
                note.as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            )
        }
        E::IncidentAssigned { team, assignee } => format!(
            "Assigned to {}",
            [team.as_deref(), assignee.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" / ")
        ),
        E::SeverityChanged {
            from, to, reason, ..
        } => format!(
            "Severity changed from {} to {}: {reason}",
            from.numeral(),
            to.numeral()
        ),
        E::WarningLevelChanged {
            from, to, reason, ..
        } => {
            format!("Warning level {from} → {to}: {reason}")
        }
        E::DutyDone { duty, note } => format!("{duty:?}: {note}"),
        E::WorkLogged { note } => format!("Work: {note}"),
        E::IncidentPaused { reason, note } => format!("Paused ({reason:?}): {note}"),
        E::IncidentResumed { note } => {
            format!(
                "Resumed{}",
                note.as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            )
        }
        E::IncidentLinked { kind, id } => format!("Linked {kind:?} {id}"),
        E::IncidentResolved { resolution } => format!("Resolved: {}", resolution.resolution),
        E::IncidentReopened { reason } => format!("Reopened: {reason}"),
        E::IncidentClosed { note } => {
            format!(
                "Closed{}",
                note.as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            )
        }
        E::SlaWarned { clock, at } => format!("{} SLA warning (due at {at})", clock.as_str()),
        E::SlaBreached { clock, at } => format!("{} SLA breached at {at}", clock.as_str()),
    }
}

impl Projection for Incidents {
    fn name(&self) -> &'static str {
        "incidents"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        if let Some(Ok(e)) = OpsEvent::of(event) {
            self.on_event(event, &e);
        }
    }
}
