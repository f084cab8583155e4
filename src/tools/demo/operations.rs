//! `opsledger demo --incidents N`: a year of service operations through the same commands
//! people and the scheduler send — business calendars and SLA policies, N incidents on the
//! demo's hosts over the past year (opened, acknowledged, assigned, worked, resolved,
//! closed, each SLA warning and breach recorded by `system:scheduler` when it fell due, the
//! most recent still open), and a knowledge article for every tenth. Ids derive from
//! names, so loading twice changes nothing.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use futures::StreamExt;
use opsledger_domain::kernel::aggregate::Context;
use opsledger_domain::operations::calendar::{BusinessHours, Calendar, CalendarCommand};
use opsledger_domain::operations::incident::{
    Assessment, Extent, Importance, Incident, IncidentCommand, Opening, Priority, Resolution,
    Severity, Source,
};
use opsledger_domain::operations::knowledge::{Article, ArticleCommand, ArticleContent};
use opsledger_domain::operations::sla::{
    sla_policy_id, ClockKind, SlaClock, SlaCommand, SlaPolicy, SlaTerms, Targets, DEFAULT_SERVICE,
};
use opsledger_domain::{Actor, ActorKind};
use uuid::Uuid;

use crate::app::App;
use crate::store::commands::CommandError;

fn id(name: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger-demo:{name}").as_bytes(),
    )
}

fn person(id: &str, role: &str) -> Actor {
    Actor {
        kind: ActorKind::User,
        id: id.into(),
        name: None,
        department: Some("運維中心".into()),
        roles: vec![role.into()],
    }
}

fn at(actor: Actor, now: DateTime<Utc>) -> Context {
    Context { actor, now }
}

/// A small pseudo-random number from `i` and `salt`: the same every load.
fn pick(i: usize, salt: u64, n: u64) -> u64 {
    let h = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("ops:{i}:{salt}").as_bytes()).as_u128();
    (h % u128::from(n)) as u64
}

/// The services incidents are for, and whether each works office hours.
const SERVICES: [(&str, bool); 6] = [
    ("cloud-hosting", false),
    ("network", false),
    ("machine-room", false),
    ("database", false),
    ("oa", true),
    ("portal", true),
];

/// Faults from the plan: title, cause, resolution, preventive measure, tags.
const FAULTS: [(&str, &str, &str, &str, &str); 10] = [
    (
        "機房空調故障，溫度升高",
        "2 號空調壓縮機故障",
        "啟動備用空調，聯繫廠商更換壓縮機",
        "每月檢查空調運行記錄",
        "空調,機房",
    ),
    (
        "UPS 電源告警",
        "UPS 電池組老化",
        "切換旁路供電，更換電池組",
        "每季度做 UPS 放電測試",
        "ups,電力",
    ),
    (
        "核心交換機端口異常",
        "光模塊故障",
        "更換光模塊並恢復鏈路",
        "備用光模塊常備兩塊",
        "網絡,交換機",
    ),
    (
        "虛擬機無法啟動",
        "宿主機存儲路徑失效",
        "修復多路徑並重啟虛擬機",
        "監控多路徑狀態",
        "虛擬化,存儲",
    ),
    (
        "數據庫連接超時",
        "連接池耗盡",
        "調整連接池上限並重啟應用",
        "連接數設置告警閾值",
        "數據庫,oracle",
    ),
    (
        "存儲延遲升高",
        "存儲控制器緩存電池失效",
        "更換緩存電池",
        "巡檢存儲控制器狀態",
        "存儲",
    ),
    (
        "防火牆告警：異常流量",
        "服務器被攻擊，掃描流量",
        "拔除網線隔離主機，修補漏洞後恢復",
        "定期漏洞掃描與補丁",
        "安全,防火牆",
    ),
    (
        "OA 系統登錄緩慢",
        "認證服務內存不足",
        "擴容內存並優化會話緩存",
        "容量趨勢月度評估",
        "oa,性能",
    ),
    (
        "市電線路故障",
        "市電一路中斷",
        "切換另一路市電，增加巡檢次數",
        "雙路市電定期切換演練",
        "電力,市電",
    ),
    (
        "網絡中斷",
        "匯聚層設備故障",
        "更換匯聚交換機，通知運營商排查",
        "核心與匯聚設備冗餘",
        "網絡,中斷",
    ),
];

/// The calendars: the 7×24 team and office hours with the 2026 public holidays.
fn calendars() -> [(&'static str, BusinessHours); 2] {
    let zone = chrono_tz::Asia::Shanghai;
    let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN);
    let day = vec![(hm(9, 0), hm(12, 0)), (hm(13, 30), hm(18, 0))];
    let holidays = [
        (1, 1),
        (2, 16),
        (2, 17),
        (2, 18),
        (2, 19),
        (2, 20),
        (4, 6),
        (5, 1),
        (5, 4),
        (5, 5),
        (6, 19),
        (9, 25),
        (10, 1),
        (10, 2),
        (10, 5),
        (10, 6),
        (10, 7),
    ];
    [
        ("7×24 值班", BusinessHours::always(zone)),
        (
            "辦公時間",
            BusinessHours {
                zone,
                always_open: false,
                week: [
                    day.clone(),
                    day.clone(),
                    day.clone(),
                    day.clone(),
                    day,
                    vec![],
                    vec![],
                ],
                holidays: holidays
                    .iter()
                    .filter_map(|(m, d)| NaiveDate::from_ymd_opt(2026, *m, *d))
                    .collect(),
            },
        ),
    ]
}

fn targets(office: bool) -> BTreeMap<Severity, Targets> {
    let t = |response_minutes, resolution_minutes| Targets {
        response_minutes,
        resolution_minutes,
    };
    let scale = if office { 2 } else { 1 };
    BTreeMap::from([
        (Severity::General, t(60 * scale, 480 * scale)),
        (Severity::Important, t(30 * scale, 240 * scale)),
        (Severity::Urgent, t(15 * scale, 60 * scale)),
    ])
}

/// How many of the most recent incidents the demo leaves open whatever their timing.
const STILL_OPEN: usize = 3;

/// What loading did.
pub struct Loaded {
    pub incidents: usize,
    pub open: usize,
    pub articles: usize,
}

/// One step of an incident's life, due at a time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Open,
    Acknowledge,
    Log,
    Sla(u8),
    Resolve,
    Close,
}

type Due = (DateTime<Utc>, usize, Step);

/// Loads the calendars, policies and `n` incidents over the year before `now`.
///
/// # Errors
/// The first command refused for another reason than having been done already.
pub async fn load(app: &App, n: usize, hosts: &[Uuid]) -> anyhow::Result<Loaded> {
    let now = app.clock.now();
    let t0 = now - Duration::days(365);
    let setup = at(Actor::system("demo"), t0);
    let cals = calendars();
    for (name, hours) in &cals {
        let command = CalendarCommand::SetCalendar {
            calendar_id: id(&format!("calendar:{name}")),
            name: (*name).into(),
            hours: hours.clone(),
        };
        done(
            app.bus
                .execute::<Calendar>(
                    id(&format!("calendar:{name}")),
                    command,
                    &setup,
                    id(&format!("set calendar:{name}")),
                )
                .await,
        )?;
    }
    let policies = [(DEFAULT_SERVICE, false)].into_iter().chain(SERVICES);
    for (service, office) in policies {
        let terms = SlaTerms {
            service: service.into(),
            calendar_id: id(&format!("calendar:{}", cals[usize::from(office)].0)),
            targets: targets(office),
            warn_percent: 75,
        };
        done(
            app.bus
                .execute::<SlaPolicy>(
                    sla_policy_id(service),
                    SlaCommand::SetSla { terms },
                    &setup,
                    id(&format!("sla:{service}")),
                )
                .await,
        )?;
    }
    let spacing = 365.0 * 86_400.0 / n.max(1) as f64;
    // The last few are opened in the last hours and left open, so even a small demo has
    // a duty board.
    let mut due: BinaryHeap<Reverse<Due>> = (0..n)
        .map(|k| {
            let opened = if k + STILL_OPEN >= n {
                now - Duration::hours((n - k) as i64)
            } else {
                t0 + Duration::seconds((k as f64 * spacing) as i64 + 60)
            };
            Reverse((opened, k, Step::Open))
        })
        .collect();
    let mut loaded = Loaded {
        incidents: n,
        open: STILL_OPEN.min(n),
        articles: 0,
    };
    let hours_of = |k: usize| &cals[usize::from(SERVICES[k % SERVICES.len()].1)].1;
    while let Some(Reverse((first, _, _))) = due.peek().copied() {
        let batch_end = first + Duration::hours(6);
        let mut batch = Vec::new();
        while let Some(Reverse(d)) = due.peek().copied() {
            if d.0 >= batch_end {
                break;
            }
            due.pop();
            batch.push(d);
        }
        let mut by_incident: BTreeMap<usize, Vec<Due>> = BTreeMap::new();
        for d in batch {
            by_incident.entry(d.1).or_default().push(d);
        }
        let results: Vec<anyhow::Result<(Vec<Due>, usize)>> =
            futures::stream::iter(by_incident.into_values().map(|steps| async move {
                let mut next = Vec::new();
                let mut articles = 0;
                for (t, k, step) in steps {
                    let (more, article) = run(app, t, k, step, hosts, hours_of(k)).await?;
                    let left_open = k + STILL_OPEN >= n;
                    next.extend(
                        more.into_iter()
                            .filter(|d| !(left_open && d.2 == Step::Resolve)),
                    );
                    articles += usize::from(article);
                }
                Ok((next, articles))
            }))
            .buffer_unordered(64)
            .collect()
            .await;
        for r in results {
            let (next, articles) = r?;
            loaded.articles += articles;
            for d in next {
                if d.0 <= now {
                    due.push(Reverse(d));
                } else if matches!(d.2, Step::Resolve) {
                    loaded.open += 1;
                }
            }
        }
    }
    Ok(loaded)
}

/// The incident `k`'s facts: its service, fault, severity, affected host and timing.
struct Plan {
    service: &'static str,
    fault: usize,
    assessment: Assessment,
    host: Option<Uuid>,
    respond: Duration,
    resolve: Duration,
}

fn plan(k: usize, hosts: &[Uuid]) -> Plan {
    let importance = match pick(k, 1, 10) {
        0 => Importance::EspeciallyImportant,
        1..=3 => Importance::Important,
        _ => Importance::General,
    };
    let loss = if pick(k, 2, 8) == 0 {
        Extent::Serious
    } else {
        Extent::Minor
    };
    Plan {
        service: SERVICES[k % SERVICES.len()].0,
        fault: pick(k, 3, FAULTS.len() as u64) as usize,
        assessment: Assessment {
            importance,
            loss,
            social_impact: Extent::Minor,
        },
        host: (!hosts.is_empty()).then(|| hosts[pick(k, 4, hosts.len() as u64) as usize]),
        respond: Duration::minutes(3 + pick(k, 5, 40) as i64),
        resolve: Duration::minutes(20 + pick(k, 6, 600) as i64),
    }
}

fn incident_id(k: usize) -> Uuid {
    id(&format!("incident:{k}"))
}

/// Carries out one step of incident `k` at `t`; what falls due next, and whether it
/// published an article.
async fn run(
    app: &App,
    t: DateTime<Utc>,
    k: usize,
    step: Step,
    hosts: &[Uuid],
    hours: &BusinessHours,
) -> anyhow::Result<(Vec<Due>, bool)> {
    let p = plan(k, hosts);
    let (title, cause, fix, measure, tags) = FAULTS[p.fault];
    let desk = person(&format!("u-desk-{:02}", k % 6), "service_desk");
    let engineer = person(&format!("u-eng-{:02}", k % 12), "engineer");
    let scheduler = Actor::system("scheduler");
    let (actor, command, next) = match step {
        Step::Open => {
            // The demo's hosts are `host-<pool>-<nn>`, `HOSTS` to a pool, in that order.
            let per_pool = crate::tools::demo::resources::HOSTS;
            let h = pick(k, 4, hosts.len().max(1) as u64) as usize;
            let host_name = format!("host-{}-{:02}", h / per_pool, h % per_pool);
            let opening = Opening {
                title: format!("{title}（{host_name}）"),
                description: format!("監控告警：{title}，影響 {} 服務，工單 #{k}", p.service),
                service: p.service.into(),
                ci_ids: p.host.into_iter().collect(),
                assessment: p.assessment,
                priority: Priority::from_assessment(&p.assessment),
                warning_level: 1,
                source: Source::Monitoring,
                department: None,
            };
            let opened = t;
            let mut next = vec![
                (opened + p.respond, k, Step::Acknowledge),
                (opened + p.respond + Duration::minutes(5), k, Step::Log),
                (
                    opened + p.resolve.max(p.respond + Duration::minutes(10)),
                    k,
                    Step::Resolve,
                ),
            ];
            // What the scheduler records when each clock falls due before it stops.
            let target = targets(SERVICES[k % SERVICES.len()].1)[&p.assessment.severity()];
            let stops = [
                (
                    ClockKind::Response,
                    target.response_minutes,
                    opened + p.respond,
                ),
                (
                    ClockKind::Resolution,
                    target.resolution_minutes,
                    opened + p.resolve.max(p.respond + Duration::minutes(10)),
                ),
            ];
            for (c, (kind, minutes, stop)) in stops.into_iter().enumerate() {
                let clock =
                    SlaClock::start(opened, Some(Duration::minutes(i64::from(minutes))), 75);
                let warn = clock.warning_due(hours);
                let breach = clock.breach_due(hours);
                for (s, at) in [warn, breach].into_iter().enumerate() {
                    if let Some(at) = at.filter(|a| *a < stop) {
                        let _ = kind;
                        next.push((at, k, Step::Sla((c * 2 + s) as u8)));
                    }
                }
            }
            let command = IncidentCommand::Open {
                incident_id: incident_id(k),
                opening: Box::new(opening),
                priority: None,
            };
            (desk, command, next)
        }
        Step::Acknowledge => (
            engineer,
            IncidentCommand::Acknowledge {
                note: Some("已接手，正在排查".into()),
            },
            Vec::new(),
        ),
        Step::Log => (
            engineer,
            IncidentCommand::LogWork {
                note: format!("排查中：{cause}"),
            },
            Vec::new(),
        ),
        Step::Sla(s) => {
            let clock = if s < 2 {
                ClockKind::Response
            } else {
                ClockKind::Resolution
            };
            let command = if s % 2 == 0 {
                IncidentCommand::RecordSlaWarning { clock, at: t }
            } else {
                IncidentCommand::RecordSlaBreach { clock, at: t }
            };
            (scheduler, command, Vec::new())
        }
        Step::Resolve => {
            let command = IncidentCommand::Resolve {
                resolution: Resolution {
                    cause: cause.into(),
                    resolution: fix.into(),
                    preventive_measures: measure.into(),
                },
            };
            (
                engineer,
                command,
                vec![(t + Duration::hours(1), k, Step::Close)],
            )
        }
        Step::Close => (
            desk,
            IncidentCommand::Close {
                note: Some("用戶確認恢復".into()),
            },
            Vec::new(),
        ),
    };
    let key = id(&format!("incident:{k}:{:?}", step_name(step)));
    done(
        app.bus
            .execute::<Incident>(incident_id(k), command, &at(actor, t), key)
            .await,
    )?;
    let mut article = false;
    if step == Step::Resolve && k.is_multiple_of(10) {
        let content = ArticleContent {
            title: format!("{title}：{cause}"),
            symptom: format!("{title}。第 {k} 號事件，{} 服務", p.service),
            cause: cause.into(),
            solution: format!("{fix}\n\n預防措施：{measure}"),
            tags: tags
                .split(',')
                .map(str::to_owned)
                .chain([p.service.to_owned()])
                .collect(),
            ci_ids: p.host.into_iter().collect(),
            incident_ids: vec![incident_id(k)],
            from_incident: Some(incident_id(k)),
        };
        let article_id = id(&format!("article:{k}"));
        done(
            app.bus
                .execute::<Article>(
                    article_id,
                    ArticleCommand::Publish { content },
                    &at(person(&format!("u-eng-{:02}", k % 12), "engineer"), t),
                    id(&format!("publish article:{k}")),
                )
                .await,
        )?;
        article = true;
    }
    Ok((next, article))
}

fn step_name(step: Step) -> String {
    match step {
        Step::Open => "open".into(),
        Step::Acknowledge => "ack".into(),
        Step::Log => "log".into(),
        Step::Sla(s) => format!("sla{s}"),
        Step::Resolve => "resolve".into(),
        Step::Close => "close".into(),
    }
}

/// A command's outcome, with "done already" (a refusal of what exists) as success.
fn done<E: std::error::Error + Send + Sync + 'static>(
    outcome: Result<crate::Appended, CommandError<E>>,
) -> anyhow::Result<()> {
    match outcome {
        Ok(_) => Ok(()),
        Err(CommandError::Domain(e))
            if ["already", "unchanged", "closed", "resolved"]
                .iter()
                .any(|w| e.to_string().contains(w)) =>
        {
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!("{}", e.report())),
    }
}
