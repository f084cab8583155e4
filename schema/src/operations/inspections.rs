//! Inspections (巡檢) over GraphQL: the templates with their checklists, expected ranges
//! and schedules, the plan's six loaded in one go; the inspections the scheduler creates
//! from them, today's with their state, the overdue ones; results item by item; and the
//! anomalies found, by area and period, each with the incident opened for it.

use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use opsledger_domain::kernel::aggregate::Aggregate;
use opsledger_domain::operations::incident::Incident as IncidentAgg;
use opsledger_domain::operations::inspection::{
    plan_templates, template_id, Cadence as DomainCadence, ChecklistItem as DomainItem,
    Inspection as InspectionAgg, InspectionCommand, InspectionTemplate as TemplateAgg,
    InspectionTemplateCommand, InspectionTemplateError, ItemKind, ItemResult,
    Schedule as DomainSchedule, TemplateDefinition, SITE_TIME_ZONE,
};
use opsledger_domain::Actor;
use opsledger_projections::operations::inspections::{
    AnomalyView, InspectionView, ResultView, TemplateVersion, TemplateView,
};
use opsledger_projections::ReadModels;
use uuid::Uuid;

use crate::kit::access::reads_operations;
use crate::kit::errors::{bad_input, error, internal, Code};
use crate::kit::ids;
use crate::kit::operate;
use crate::kit::{actor, ledger, models, page_in_order, Page};
use crate::kit::{command_id, domain_context, Payload};
use crate::operations::Weekday;
use crate::{CommandError, Operation, OperationError};

fn staff<'a>(ctx: &Context<'a>) -> Result<&'a Actor> {
    let actor = actor(ctx)?;
    if !reads_operations(actor) {
        return Err(error(
            Code::Forbidden,
            "inspections are read by the operations staff and auditors",
        ));
    }
    Ok(actor)
}

/// What part of the service an inspection looks at.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::inspection::Area")]
pub enum InspectionArea {
    /// 機房環境: temperature, humidity, power, UPS, air conditioning, fire system.
    MachineRoom,
    /// Servers' and network devices' lights, alarms and hardware.
    Devices,
    /// The operations platform, consoles and security devices' logs.
    Platform,
    Backups,
    /// The monthly inspection and tuning (巡檢優化).
    Optimisation,
}

/// The severity of the incident an item's anomaly opens.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::inspection::IncidentLevel")]
pub enum IncidentLevel {
    /// 一般事件 (Ⅰ)
    General,
    /// 重要事件 (Ⅱ)
    Important,
    /// 緊急事件 (Ⅲ)
    Urgent,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::inspection::InspectionStatus")]
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

/// What the inspector says of an item.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::operations::inspection::Outcome")]
pub enum InspectionOutcome {
    Ok,
    Anomaly,
}

/// What an inspector does for an item.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ChecklistItemKind {
    /// Looks and says ok or anomaly.
    Check,
    /// Reads a number; outside its range it is an anomaly whatever the inspector says.
    Reading,
}

/// How often a template is walked.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum InspectionCadence {
    /// Every `minutes`, counted from the anchor.
    Every,
    /// Each day `at`, local time.
    Daily,
    /// Each `weekday` `at`.
    Weekly,
    /// Each month on `day` (its last day when shorter) `at`.
    Monthly,
}

/// Why an item is an anomaly.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyCause {
    /// The inspector reported it (a reading, if any, is within range).
    Reported,
    BelowMinimum,
    AboveMaximum,
}

fn cause(c: opsledger_domain::operations::inspection::AnomalyCause) -> (AnomalyCause, Option<f64>) {
    use opsledger_domain::operations::inspection::AnomalyCause as C;
    match c {
        C::Reported => (AnomalyCause::Reported, None),
        C::BelowMinimum { min } => (AnomalyCause::BelowMinimum, Some(min)),
        C::AboveMaximum { max } => (AnomalyCause::AboveMaximum, Some(max)),
    }
}

/// One line of a checklist.
#[derive(SimpleObject)]
pub struct ChecklistItem {
    pub key: String,
    pub name: String,
    pub kind: ChecklistItemKind,
    /// For a reading: its unit and expected range.
    pub unit: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Whether an anomaly of this item opens an incident.
    pub opens_incident: bool,
    pub level: IncidentLevel,
}

fn item_node(i: &DomainItem) -> ChecklistItem {
    let (kind, unit, min, max) = match &i.kind {
        ItemKind::Check => (ChecklistItemKind::Check, None, None, None),
        ItemKind::Reading { unit, min, max } => {
            (ChecklistItemKind::Reading, Some(unit.clone()), *min, *max)
        }
    };
    ChecklistItem {
        key: i.key.clone(),
        name: i.name.clone(),
        kind,
        unit,
        min,
        max,
        opens_incident: i.opens_incident,
        level: i.level.into(),
    }
}

/// When a template's inspections fall due.
#[derive(SimpleObject)]
pub struct InspectionSchedule {
    pub cadence: InspectionCadence,
    pub minutes: Option<u32>,
    /// Local time, `HH:MM`.
    pub at: Option<String>,
    pub weekday: Option<Weekday>,
    pub day: Option<u32>,
    /// An IANA time zone.
    pub time_zone: String,
    /// No slot is due before it; `EVERY` slots are counted from it.
    pub anchor: DateTime<Utc>,
    /// How long an inspection may take; until the next slot when null.
    pub window_minutes: Option<u32>,
}

fn weekday_node(w: chrono::Weekday) -> Weekday {
    match w {
        chrono::Weekday::Mon => Weekday::Monday,
        chrono::Weekday::Tue => Weekday::Tuesday,
        chrono::Weekday::Wed => Weekday::Wednesday,
        chrono::Weekday::Thu => Weekday::Thursday,
        chrono::Weekday::Fri => Weekday::Friday,
        chrono::Weekday::Sat => Weekday::Saturday,
        chrono::Weekday::Sun => Weekday::Sunday,
    }
}

fn weekday_of(w: Weekday) -> chrono::Weekday {
    match w {
        Weekday::Monday => chrono::Weekday::Mon,
        Weekday::Tuesday => chrono::Weekday::Tue,
        Weekday::Wednesday => chrono::Weekday::Wed,
        Weekday::Thursday => chrono::Weekday::Thu,
        Weekday::Friday => chrono::Weekday::Fri,
        Weekday::Saturday => chrono::Weekday::Sat,
        Weekday::Sunday => chrono::Weekday::Sun,
    }
}

fn schedule_node(s: &DomainSchedule) -> InspectionSchedule {
    let hm = |t: NaiveTime| Some(t.format("%H:%M").to_string());
    let (cadence, minutes, at, weekday, day) = match s.cadence {
        DomainCadence::Every { minutes } => {
            (InspectionCadence::Every, Some(minutes), None, None, None)
        }
        DomainCadence::Daily { at } => (InspectionCadence::Daily, None, hm(at), None, None),
        DomainCadence::Weekly { weekday, at } => (
            InspectionCadence::Weekly,
            None,
            hm(at),
            Some(weekday_node(weekday)),
            None,
        ),
        DomainCadence::Monthly { day, at } => {
            (InspectionCadence::Monthly, None, hm(at), None, Some(day))
        }
    };
    InspectionSchedule {
        cadence,
        minutes,
        at,
        weekday,
        day,
        time_zone: s.time_zone.name().to_owned(),
        anchor: s.anchor,
        window_minutes: s.window_minutes,
    }
}

/// One version of a template.
#[derive(SimpleObject)]
pub struct InspectionTemplateVersion {
    pub version: u32,
    pub at: DateTime<Utc>,
    pub by: String,
    pub items: Vec<ChecklistItem>,
    pub schedule: InspectionSchedule,
}

fn version_node(v: &TemplateVersion) -> InspectionTemplateVersion {
    InspectionTemplateVersion {
        version: v.version,
        at: v.at,
        by: v.by.clone(),
        items: v.definition.items.iter().map(item_node).collect(),
        schedule: schedule_node(&v.definition.schedule),
    }
}

/// An inspection template at its current version.
#[derive(SimpleObject)]
pub struct InspectionTemplate {
    pub id: ID,
    pub version: u32,
    pub name: String,
    pub area: InspectionArea,
    pub items: Vec<ChecklistItem>,
    pub schedule: InspectionSchedule,
    /// Inspections are still scheduled from it.
    pub in_force: bool,
    pub defined_at: DateTime<Utc>,
    pub defined_by: String,
    pub retired_at: Option<DateTime<Utc>>,
    pub retired_reason: Option<String>,
    /// Every version, oldest first.
    pub history: Vec<InspectionTemplateVersion>,
}

fn template_node(t: &TemplateView) -> InspectionTemplate {
    let d = &t.definition;
    InspectionTemplate {
        id: ids::global(TemplateAgg::KIND, t.id),
        version: t.version,
        name: d.name.clone(),
        area: d.area.into(),
        items: d.items.iter().map(item_node).collect(),
        schedule: schedule_node(&d.schedule),
        in_force: t.in_force(),
        defined_at: t.defined_at,
        defined_by: t.defined_by.clone(),
        retired_at: t.retired.as_ref().map(|r| r.at),
        retired_reason: t.retired.as_ref().map(|r| r.reason.clone()),
        history: t.history.iter().map(version_node).collect(),
    }
}

/// One item's result.
#[derive(SimpleObject)]
pub struct InspectionResult {
    pub key: String,
    /// As the inspector marked it.
    pub outcome: InspectionOutcome,
    pub reading: Option<f64>,
    pub note: Option<String>,
    /// Set when it is an anomaly: reported, or its reading out of range.
    pub anomaly: Option<AnomalyCause>,
    pub by: String,
    pub at: DateTime<Utc>,
    /// Recorded at or after the deadline.
    pub late: bool,
}

fn result_node(r: &ResultView) -> InspectionResult {
    InspectionResult {
        key: r.key.clone(),
        outcome: r.outcome.into(),
        reading: r.reading,
        note: r.note.clone(),
        anomaly: r.anomaly.map(|c| cause(c).0),
        by: r.by.clone(),
        at: r.at,
        late: r.late,
    }
}

/// An anomaly found, and the incident opened for it once linked.
#[derive(SimpleObject)]
pub struct InspectionAnomaly {
    pub key: String,
    pub name: String,
    pub reading: Option<f64>,
    pub unit: Option<String>,
    pub note: Option<String>,
    pub cause: AnomalyCause,
    /// The bound the reading crossed.
    pub limit: Option<f64>,
    /// Whether its item opens an incident.
    pub opens_incident: bool,
    pub level: IncidentLevel,
    pub found_at: DateTime<Utc>,
    pub found_by: String,
    /// The incident opened for it; null until the scheduler has opened and linked one.
    pub incident: Option<ID>,
}

fn anomaly_node(a: &AnomalyView) -> InspectionAnomaly {
    let (cause, limit) = cause(a.cause);
    InspectionAnomaly {
        key: a.key.clone(),
        name: a.name.clone(),
        reading: a.reading,
        unit: a.unit.clone(),
        note: a.note.clone(),
        cause,
        limit,
        opens_incident: a.opens_incident,
        level: a.level.into(),
        found_at: a.found_at,
        found_by: a.found_by.clone(),
        incident: a.incident_id.map(|i| ids::global(IncidentAgg::KIND, i)),
    }
}

/// One inspection: a slot of a template, with the checklist of the version it copied.
#[derive(SimpleObject)]
pub struct Inspection {
    pub id: ID,
    pub template: ID,
    pub template_version: u32,
    pub name: String,
    pub area: InspectionArea,
    pub items: Vec<ChecklistItem>,
    pub due: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    pub scheduled_at: DateTime<Utc>,
    pub scheduled_by: String,
    pub status: InspectionStatus,
    /// Each item's result, in the order recorded.
    pub results: Vec<InspectionResult>,
    /// The keys of the items still without a result.
    pub open_items: Vec<String>,
    pub completed_at: Option<DateTime<Utc>>,
    pub completed_by: Option<String>,
    /// Completed at or after its deadline.
    pub late: bool,
    /// When it was marked overdue; it stays marked if results come later.
    pub overdue_at: Option<DateTime<Utc>>,
    pub missing_when_overdue: Vec<String>,
    pub anomalies: Vec<InspectionAnomaly>,
    pub updated_at: DateTime<Utc>,
}

/// An inspection, as the operations staff read it (for its field and for `node(id:)`).
pub(crate) fn inspection_by_id(
    ctx: &Context<'_>,
    m: &ReadModels,
    id: Uuid,
) -> Result<Option<Inspection>> {
    staff(ctx)?;
    Ok(m.inspections.get(id).map(inspection_node))
}

/// An inspection template, retired or not (the operations staff).
pub(crate) fn template_by_id(
    ctx: &Context<'_>,
    m: &ReadModels,
    id: Uuid,
) -> Result<Option<InspectionTemplate>> {
    staff(ctx)?;
    Ok(m.inspections.template(id).map(template_node))
}

fn inspection_node(v: &InspectionView) -> Inspection {
    Inspection {
        id: ids::global(InspectionAgg::KIND, v.id),
        template: ids::global(TemplateAgg::KIND, v.template_id),
        template_version: v.template_version,
        name: v.name.clone(),
        area: v.area.into(),
        items: v.items.iter().map(item_node).collect(),
        due: v.due,
        deadline: v.deadline,
        scheduled_at: v.scheduled_at,
        scheduled_by: v.scheduled_by.clone(),
        status: v.status.into(),
        results: v.results.iter().map(result_node).collect(),
        open_items: v.open_items().map(|i| i.key.clone()).collect(),
        completed_at: v.completed_at,
        completed_by: v.completed_by.clone(),
        late: v.late,
        overdue_at: v.overdue_at,
        missing_when_overdue: v.missing_when_overdue.clone(),
        anomalies: v.anomalies.iter().map(anomaly_node).collect(),
        updated_at: v.updated_at,
    }
}

/// An anomaly with the inspection that found it.
#[derive(SimpleObject)]
pub struct FoundAnomaly {
    pub inspection: ID,
    pub inspection_name: String,
    pub area: InspectionArea,
    pub due: DateTime<Utc>,
    pub anomaly: InspectionAnomaly,
}

/// How many anomalies an area had in a period.
#[derive(SimpleObject)]
pub struct AnomalyCount {
    pub area: InspectionArea,
    pub anomalies: u64,
}

/// The bounds of the site's local day that `now` falls in.
fn local_day(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let day = now.with_timezone(&SITE_TIME_ZONE).date_naive();
    let midnight = |d: chrono::NaiveDate| {
        SITE_TIME_ZONE
            .from_local_datetime(&d.and_time(NaiveTime::MIN))
            .earliest()
            .map_or_else(|| d.and_time(NaiveTime::MIN).and_utc(), |t| t.to_utc())
    };
    let next = day.checked_add_days(Days::new(1)).unwrap_or(day);
    (midnight(day), midnight(next))
}

/// `[from, to)`, both required, `to` after `from`.
fn period(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    if to <= from {
        return Err(bad_input("to", "must be after from"));
    }
    Ok((from, to))
}

#[derive(Default)]
pub struct InspectionsQuery;

#[Object]
impl InspectionsQuery {
    /// The inspection templates in the order defined; retired ones too with
    /// `includeRetired`.
    async fn inspection_templates(
        &self,
        ctx: &Context<'_>,
        include_retired: Option<bool>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Vec<InspectionTemplate>> {
        staff(ctx)?;
        let m = models(ctx, at_least).await?;
        let retired = include_retired.unwrap_or(false);
        Ok(m.inspections
            .all_templates()
            .filter(|t| retired || t.in_force())
            .map(template_node)
            .collect())
    }

    /// The inspections due in `[from, to)`, or today's (the site's local day, Asia/Shanghai)
    /// with `today`, earliest first; narrowed by status and area.
    #[expect(
        clippy::too_many_arguments,
        reason = "a GraphQL field takes each of its arguments as a parameter"
    )]
    async fn inspections(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Range: 1970-01-01–9999-12-31.",
            validator(custom = "crate::kit::bounds::dated(\"from\")")
        )]
        from: Option<DateTime<Utc>>,
        #[graphql(
            desc = "Range: 1970-01-01–9999-12-31.",
            validator(custom = "crate::kit::bounds::dated(\"to\")")
        )]
        to: Option<DateTime<Utc>>,
        today: Option<bool>,
        status: Option<InspectionStatus>,
        area: Option<InspectionArea>,
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
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<Inspection>> {
        staff(ctx)?;
        let (from, to) = match (today.unwrap_or(false), from, to) {
            (true, None, None) => local_day(ledger(ctx).now()),
            (true, _, _) => {
                return Err(bad_input("today", "is not combined with from and to"));
            }
            (false, Some(from), Some(to)) => period(from, to)?,
            (false, None, _) => {
                return Err(bad_input("from", "is required unless today is true"));
            }
            (false, Some(_), None) => {
                return Err(bad_input("to", "is required unless today is true"));
            }
        };
        let status = status.map(opsledger_domain::operations::inspection::InspectionStatus::from);
        let area = area.map(opsledger_domain::operations::inspection::Area::from);
        let m = models(ctx, at_least).await?;
        page_in_order(
            m.inspections
                .between(from, to)
                .filter(|v| status.is_none_or(|s| v.status == s))
                .filter(|v| area.is_none_or(|a| v.area == a)),
            inspection_node,
            after,
            first,
            m.position,
        )
    }

    async fn inspection(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Option<Inspection>> {
        staff(ctx)?;
        let id = ids::parse("id", InspectionAgg::KIND, &id)?;
        inspection_by_id(ctx, &*models(ctx, at_least).await?, id)
    }

    /// Every inspection marked overdue, the most recently marked first; one completed late
    /// afterwards stays listed, as `COMPLETED_LATE`.
    async fn overdue_inspections(
        &self,
        ctx: &Context<'_>,
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
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<Inspection>> {
        staff(ctx)?;
        let m = models(ctx, at_least).await?;
        page_in_order(
            m.inspections.overdue(),
            inspection_node,
            after,
            first,
            m.position,
        )
    }

    /// The anomalies found in `[from, to)`, in one area or all, in the order found.
    #[expect(
        clippy::too_many_arguments,
        reason = "a GraphQL field takes each of its arguments as a parameter"
    )]
    async fn inspection_anomalies(
        &self,
        ctx: &Context<'_>,
        area: Option<InspectionArea>,
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
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<FoundAnomaly>> {
        staff(ctx)?;
        let (from, to) = period(from, to)?;
        let m = models(ctx, at_least).await?;
        page_in_order(
            m.inspections.anomalies(area.map(Into::into), from, to),
            |(v, a)| FoundAnomaly {
                inspection: ids::global(InspectionAgg::KIND, v.id),
                inspection_name: v.name.clone(),
                area: v.area.into(),
                due: v.due,
                anomaly: anomaly_node(a),
            },
            after,
            first,
            m.position,
        )
    }

    /// How many anomalies each area had in `[from, to)`; areas with none are left out.
    async fn anomaly_counts(
        &self,
        ctx: &Context<'_>,
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
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Vec<AnomalyCount>> {
        staff(ctx)?;
        let (from, to) = period(from, to)?;
        let m = models(ctx, at_least).await?;
        Ok(m.inspections
            .anomaly_counts(from, to)
            .into_iter()
            .map(|(area, n)| AnomalyCount {
                area: area.into(),
                anomalies: n as u64,
            })
            .collect())
    }
}

// ---------------------------------------------------------------- mutations

#[derive(InputObject)]
pub struct ChecklistItemInput {
    /// Lower-case letters, digits and `_`, starting with a letter; unique in the checklist.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"key\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub key: String,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"name\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub name: String,
    pub kind: ChecklistItemKind,
    /// Required for a reading; not taken for a check.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"unit\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub unit: Option<String>,
    /// Range: -1e12–1e12.
    #[graphql(validator(
        custom = "crate::kit::bounds::within_f(\"min\", opsledger_domain::kernel::limits::READING)"
    ))]
    pub min: Option<f64>,
    /// Range: -1e12–1e12.
    #[graphql(validator(
        custom = "crate::kit::bounds::within_f(\"max\", opsledger_domain::kernel::limits::READING)"
    ))]
    pub max: Option<f64>,
    /// Whether an anomaly opens an incident (true when absent).
    pub opens_incident: Option<bool>,
    /// The incident's severity (general when absent).
    pub level: Option<IncidentLevel>,
}

#[derive(InputObject)]
pub struct InspectionScheduleInput {
    pub cadence: InspectionCadence,
    /// For `EVERY`.
    ///
    /// Range: 1–525600.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"schedule.minutes\", opsledger_domain::kernel::limits::MINUTES)"
    ))]
    pub minutes: Option<u32>,
    /// Local time `HH:MM`, for `DAILY`, `WEEKLY` and `MONTHLY`.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"schedule.at\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub at: Option<String>,
    /// For `WEEKLY`.
    pub weekday: Option<Weekday>,
    /// Day of the month, 1–31, for `MONTHLY`.
    ///
    /// Range: 1–31.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"schedule.day\", opsledger_domain::kernel::limits::DAY_OF_MONTH)"
    ))]
    pub day: Option<u32>,
    /// An IANA time zone (Asia/Shanghai when absent).
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"schedule.timeZone\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub time_zone: Option<String>,
    /// No slot is due before it, and `EVERY` slots count from it (local midnight of today
    /// when absent).
    ///
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"schedule.anchor\")"))]
    pub anchor: Option<DateTime<Utc>>,
    /// How long an inspection may take (until the next slot when absent).
    ///
    /// Range: 1–525600.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"schedule.windowMinutes\", opsledger_domain::kernel::limits::MINUTES)"
    ))]
    pub window_minutes: Option<u32>,
}

#[derive(InputObject)]
pub struct DefineInspectionTemplateInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// A stable key (e.g. `machine_room_walk`) the template's id is derived from, so a
    /// retry defines nothing twice; a new id when absent.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"key\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub key: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"name\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub name: String,
    pub area: InspectionArea,
    pub items: Vec<ChecklistItemInput>,
    pub schedule: InspectionScheduleInput,
}

#[derive(InputObject)]
pub struct ReviseInspectionTemplateInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub template_id: ID,
    pub items: Vec<ChecklistItemInput>,
    pub schedule: InspectionScheduleInput,
}

#[derive(InputObject)]
pub struct RetireInspectionTemplateInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub template_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
}

#[derive(InputObject)]
pub struct InspectionResultInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"key\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub key: String,
    pub outcome: InspectionOutcome,
    /// Required for a reading item, refused for a check.
    ///
    /// Range: -1e12–1e12.
    #[graphql(validator(
        custom = "crate::kit::bounds::within_f(\"reading\", opsledger_domain::kernel::limits::READING)"
    ))]
    pub reading: Option<f64>,
    /// Required for an anomaly: what was found.
    ///
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"note\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub note: Option<String>,
}

#[derive(InputObject)]
pub struct RecordInspectionResultsInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub inspection_id: ID,
    pub results: Vec<InspectionResultInput>,
}

#[derive(InputObject)]
pub struct LoadPlanInspectionTemplatesInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    /// Where the schedules start (local midnight of today when absent).
    ///
    /// Range: 1970-01-01–9999-12-31.
    #[graphql(validator(custom = "crate::kit::bounds::dated(\"anchor\")"))]
    pub anchor: Option<DateTime<Utc>>,
}

/// The plan's templates, those defined by this call and those there already.
#[derive(SimpleObject)]
pub struct LoadPlanInspectionTemplatesPayload {
    pub client_mutation_id: Option<String>,
    /// The six templates' ids.
    pub templates: Vec<ID>,
    /// How many this call defined.
    pub defined: u32,
    /// The log position to read at least.
    pub position: u64,
}

fn items(input: Vec<ChecklistItemInput>) -> Result<Vec<DomainItem>> {
    input
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let field = |name: &str| format!("items[{i}].{name}");
            let kind = match item.kind {
                ChecklistItemKind::Check => {
                    for (name, given) in [
                        ("unit", item.unit.is_some()),
                        ("min", item.min.is_some()),
                        ("max", item.max.is_some()),
                    ] {
                        if given {
                            return Err(bad_input(&field(name), "is only for a READING item"));
                        }
                    }
                    ItemKind::Check
                }
                ChecklistItemKind::Reading => {
                    let unit = item
                        .unit
                        .map(|u| u.trim().to_owned())
                        .filter(|u| !u.is_empty())
                        .ok_or_else(|| bad_input(&field("unit"), "is required for a reading"))?;
                    ItemKind::Reading {
                        unit,
                        min: item.min,
                        max: item.max,
                    }
                }
            };
            Ok(DomainItem {
                key: item.key,
                name: item.name,
                kind,
                opens_incident: item.opens_incident.unwrap_or(true),
                level: item.level.map(Into::into).unwrap_or_default(),
            })
        })
        .collect()
}

fn schedule(input: InspectionScheduleInput, now: DateTime<Utc>) -> Result<DomainSchedule> {
    let time_zone: Tz = match &input.time_zone {
        None => SITE_TIME_ZONE,
        Some(tz) => tz.parse().map_err(|_| {
            bad_input(
                "schedule.timeZone",
                format!("{tz:?} is not an IANA time zone like Asia/Shanghai"),
            )
        })?,
    };
    let at = || -> Result<NaiveTime> {
        let at = input
            .at
            .as_deref()
            .ok_or_else(|| bad_input("schedule.at", "is required for this cadence"))?;
        NaiveTime::parse_from_str(at.trim(), "%H:%M")
            .map_err(|_| bad_input("schedule.at", format!("{at:?} is not HH:MM")))
    };
    let required =
        |field: &str| bad_input(&format!("schedule.{field}"), "is required for this cadence");
    // The domain checks these too, under its own names; here they name the input's fields.
    if input.minutes == Some(0) {
        return Err(bad_input("schedule.minutes", "must be at least 1"));
    }
    if input.day.is_some_and(|d| !(1..=31).contains(&d)) {
        return Err(bad_input("schedule.day", "must be from 1 to 31"));
    }
    if input.window_minutes == Some(0) {
        return Err(bad_input(
            "schedule.windowMinutes",
            "must be at least 1 when given",
        ));
    }
    let cadence = match input.cadence {
        InspectionCadence::Every => DomainCadence::Every {
            minutes: input.minutes.ok_or_else(|| required("minutes"))?,
        },
        InspectionCadence::Daily => DomainCadence::Daily { at: at()? },
        InspectionCadence::Weekly => DomainCadence::Weekly {
            weekday: weekday_of(input.weekday.ok_or_else(|| required("weekday"))?),
            at: at()?,
        },
        InspectionCadence::Monthly => DomainCadence::Monthly {
            day: input.day.ok_or_else(|| required("day"))?,
            at: at()?,
        },
    };
    let unused = [
        ("minutes", input.minutes.is_some()),
        ("at", input.at.is_some()),
        ("weekday", input.weekday.is_some()),
        ("day", input.day.is_some()),
    ];
    let takes: &[&str] = match input.cadence {
        InspectionCadence::Every => &["minutes"],
        InspectionCadence::Daily => &["at"],
        InspectionCadence::Weekly => &["at", "weekday"],
        InspectionCadence::Monthly => &["at", "day"],
    };
    if let Some((field, _)) = unused
        .iter()
        .find(|(field, given)| *given && !takes.contains(field))
    {
        return Err(bad_input(
            &format!("schedule.{field}"),
            "is not taken by this cadence",
        ));
    }
    let anchor = input.anchor.unwrap_or_else(|| {
        let day = now.with_timezone(&time_zone).date_naive();
        time_zone
            .from_local_datetime(&day.and_time(NaiveTime::MIN))
            .earliest()
            .map_or(now, |t| t.to_utc())
    });
    Ok(DomainSchedule {
        cadence,
        time_zone,
        anchor,
        window_minutes: input.window_minutes,
    })
}

async fn on_template(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    template_id: Uuid,
    command: InspectionTemplateCommand,
) -> Result<Payload> {
    operate(
        ctx,
        client_mutation_id,
        TemplateAgg::KIND,
        template_id,
        Operation::InspectionTemplate(template_id, command),
    )
    .await
}

#[derive(Default)]
pub struct InspectionsMutation;

#[Object]
impl InspectionsMutation {
    /// Defines an inspection template (operator): its checklist and schedule, at version 1.
    /// The scheduler creates its inspections from the slot open now on.
    async fn define_inspection_template(
        &self,
        ctx: &Context<'_>,
        input: DefineInspectionTemplateInput,
    ) -> Result<Payload> {
        let user = actor(ctx)?.id.clone();
        let template_id = match &input.key {
            Some(key) => template_id(key.trim()),
            None => match input.client_mutation_id.as_deref() {
                Some(_) => command_id(ctx, &user, input.client_mutation_id.as_deref()),
                None => Uuid::now_v7(),
            },
        };
        let definition = TemplateDefinition {
            name: input.name,
            area: input.area.into(),
            items: items(input.items)?,
            schedule: schedule(input.schedule, ledger(ctx).now())?,
        };
        let command = InspectionTemplateCommand::DefineTemplate {
            template_id,
            definition,
        };
        on_template(ctx, input.client_mutation_id, template_id, command).await
    }

    /// A new checklist and schedule as the template's next version (operator); the
    /// inspections already scheduled keep theirs.
    async fn revise_inspection_template(
        &self,
        ctx: &Context<'_>,
        input: ReviseInspectionTemplateInput,
    ) -> Result<Payload> {
        let id = ids::parse("templateId", TemplateAgg::KIND, &input.template_id)?;
        let command = InspectionTemplateCommand::ReviseTemplate {
            items: items(input.items)?,
            schedule: schedule(input.schedule, ledger(ctx).now())?,
        };
        on_template(ctx, input.client_mutation_id, id, command).await
    }

    /// Retires a template (operator): no more inspections are scheduled from it.
    async fn retire_inspection_template(
        &self,
        ctx: &Context<'_>,
        input: RetireInspectionTemplateInput,
    ) -> Result<Payload> {
        let id = ids::parse("templateId", TemplateAgg::KIND, &input.template_id)?;
        let command = InspectionTemplateCommand::RetireTemplate {
            reason: input.reason,
        };
        on_template(ctx, input.client_mutation_id, id, command).await
    }

    /// Records results for some or all of an inspection's items (engineers, operators),
    /// from its due time on. A reading outside its range is an anomaly whatever the
    /// outcome says; the scheduler opens an incident for each anomaly whose item opens one.
    async fn record_inspection_results(
        &self,
        ctx: &Context<'_>,
        input: RecordInspectionResultsInput,
    ) -> Result<Payload> {
        let id = ids::parse("inspectionId", InspectionAgg::KIND, &input.inspection_id)?;
        let results = input
            .results
            .into_iter()
            .map(|r| ItemResult {
                key: r.key,
                outcome: r.outcome.into(),
                reading: r.reading,
                note: r.note,
            })
            .collect();
        operate(
            ctx,
            input.client_mutation_id,
            InspectionAgg::KIND,
            id,
            Operation::Inspection(id, InspectionCommand::RecordResults { results }),
        )
        .await
    }

    /// Defines the service plan's six templates (operator): the machine-room walk every
    /// 45 minutes, the hourly detailed walk, the platform check every 3 hours, the daily
    /// log check, the weekly backup check and the monthly optimisation. Those defined
    /// already are left as they are, so it may be called again.
    async fn load_plan_inspection_templates(
        &self,
        ctx: &Context<'_>,
        input: LoadPlanInspectionTemplatesInput,
    ) -> Result<LoadPlanInspectionTemplatesPayload> {
        let domain = domain_context(ctx)?;
        if !domain.actor.operates() {
            return Err(error(Code::Forbidden, InspectionTemplateError::NotOperator));
        }
        let anchor = input.anchor.unwrap_or_else(|| local_day(domain.now).0);
        let mut templates = Vec::new();
        let mut defined = 0;
        let mut position = 0;
        for command in plan_templates(anchor) {
            let InspectionTemplateCommand::DefineTemplate { template_id, .. } = &command else {
                continue;
            };
            let template_id = *template_id;
            templates.push(ids::global(TemplateAgg::KIND, template_id));
            // The log, not the models (which may lag behind it), says what is defined.
            let stream = format!("{}-{template_id}", TemplateAgg::KIND);
            let history = ledger(ctx).stream(&stream).await.map_err(internal)?;
            if let Some(last) = history.last() {
                position = position.max(last.position);
                continue;
            }
            // The same key for every caller: a retry or a race defines it once.
            let key = Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                format!("opsledger:plan-inspection-template:{template_id}").as_bytes(),
            );
            match ledger(ctx)
                .operate(
                    Operation::InspectionTemplate(template_id, command),
                    &domain,
                    key,
                )
                .await
            {
                Ok(w) => {
                    defined += 1;
                    position = position.max(w.position);
                }
                // Defined by someone else meanwhile.
                Err(CommandError::Domain(OperationError::InspectionTemplate(
                    InspectionTemplateError::AlreadyDefined,
                ))) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(LoadPlanInspectionTemplatesPayload {
            client_mutation_id: input.client_mutation_id,
            templates,
            defined,
            position,
        })
    }
}
