//! `opsledger demo`: a realistic sample, loaded through the same commands users send, so a
//! new user sees every state of the flow at once. Loading it twice changes nothing: every
//! command id is derived from the sample's own names.
//!
//! The catalogue and its requests are here; the rest of the sample is in [`resources`]
//! (pools, quotas, hosts and a year of deployments), [`operations`] (a year of incidents)
//! and [`library`] (the media and script libraries).

pub mod library;
pub mod operations;
pub mod resources;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use futures::StreamExt;
use opsledger_domain::kernel::aggregate::Context;
use opsledger_domain::requests::catalog::{CatalogCommand, CatalogItem, ItemDefinition};
use opsledger_domain::requests::demo::{
    new_vm, small_vm_pre_approved, software_definition, storage_definition, two_steps,
    vm_definition,
};
use opsledger_domain::requests::request::{
    CatalogSnapshot, Period, Request, RequestCommand, RequestDetails,
};
use opsledger_domain::{Actor, ActorKind};
use serde_json::json;
use uuid::Uuid;

use crate::store::commands::CommandBus;

/// The sample's people: id, name, department, roles.
pub const PEOPLE: &[(&str, &str, &str, &[&str])] = &[
    ("u-lam", "林嘉欣", "運維中心", &["catalog_admin"]),
    ("u-chan", "陳大文", "財政局", &["requester"]),
    ("u-cheung", "張美玲", "教育局", &["requester"]),
    ("u-ho", "何志明", "財政局", &["approver"]),
    ("u-yeung", "楊少華", "教育局", &["approver"]),
    ("u-wong", "黃偉強", "運維中心", &["operator"]),
    ("u-kwok", "郭子健", "審計署", &["auditor"]),
];

fn person(id: &str) -> Actor {
    let (id, name, department, roles) =
        PEOPLE
            .iter()
            .find(|p| p.0 == id)
            .copied()
            .unwrap_or(("", "", "", &[]));
    Actor {
        kind: ActorKind::User,
        id: id.into(),
        name: Some(name.into()),
        department: Some(department.into()),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

/// The id of the demo's catalogue item `name` (`vm`, `small-vm`, `storage`, `software`).
pub fn item_id(name: &str) -> Uuid {
    id(name)
}

fn id(name: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger-demo:{name}").as_bytes(),
    )
}

/// A sample request: its name, item, requester, details, then who does what to it.
type Scripted = (
    String,
    &'static str,
    &'static str,
    RequestDetails,
    Vec<(&'static str, RequestCommand)>,
);

fn approve(step: usize, comment: &str) -> RequestCommand {
    RequestCommand::ApproveRequest {
        step,
        comment: Some(comment.into()),
        on_behalf_of: None,
    }
}

/// The `n`th generated request: the two departments take turns, each with its projects,
/// and every eighth request ends in the same state. Requests are submitted five minutes
/// apart, so each one's service period moves with its submission day and never lies in the
/// past, however many are generated.
fn generated(n: usize) -> Scripted {
    const FINANCE: [&str; 3] = ["電子公文交換", "財政數據平台", "電子稅務系統"];
    const EDUCATION: [&str; 3] = ["學校資訊系統", "學生資助系統", "網上學習平台"];
    let (requester, approver, projects) = if n.is_multiple_of(2) {
        ("u-chan", "u-ho", FINANCE)
    } else {
        ("u-cheung", "u-yeung", EDUCATION)
    };
    let project = projects[n / 2 % 3];
    let cpu = [2, 4, 8, 16][n / 6 % 4];
    let fulfil = || RequestCommand::MarkFulfilled {
        note: format!("vm-{n:06} 已交付"),
    };
    let (item, then) = match n % 8 {
        0 => ("vm", vec![]),
        1 => ("vm", vec![(approver, approve(0, "同意"))]),
        2 => (
            "vm",
            vec![
                (approver, approve(0, "同意")),
                ("u-wong", approve(1, "資源充足")),
            ],
        ),
        3 => (
            "vm",
            vec![
                (approver, approve(0, "同意")),
                ("u-wong", approve(1, "資源充足")),
                ("u-wong", fulfil()),
            ],
        ),
        4 => ("small-vm", vec![("u-wong", fulfil())]),
        5 => (
            "vm",
            vec![(
                approver,
                RequestCommand::RejectRequest {
                    step: 0,
                    comment: "請按實際負載申請".into(),
                    on_behalf_of: None,
                },
            )],
        ),
        6 => (
            "vm",
            vec![(
                requester,
                RequestCommand::CancelRequest {
                    reason: Some("項目延期".into()),
                },
            )],
        ),
        _ => ("small-vm", vec![]),
    };
    let cpu = if item == "small-vm" { 2 } else { cpu };
    let mut details = new_vm(cpu, 1, project);
    if let RequestDetails::NewResource { period, .. } = &mut details {
        let days = Duration::minutes(5 * n as i64).num_days();
        period.start += Duration::days(days);
        period.end += Duration::days(days);
    }
    (format!("generated {n}"), item, requester, details, then)
}

/// What the sample loaded.
pub struct Loaded {
    pub items: usize,
    pub requests: usize,
    pub commands: usize,
}

/// Loads the sample through `bus`.
///
/// # Errors
/// The first command the store refuses, with its name.
pub async fn load(bus: &CommandBus) -> anyhow::Result<Loaded> {
    load_with(bus, 0).await
}

/// Loads the sample and `generated_requests` more (for trying lists and replays at
/// scale), 32 at a time.
///
/// # Errors
/// The first command the store refuses, with its name.
pub async fn load_with(bus: &CommandBus, generated_requests: usize) -> anyhow::Result<Loaded> {
    let mut commands = 0;
    let step = |hours: i64| first_day() + Duration::hours(hours);
    let items: Vec<(&str, ItemDefinition)> = vec![
        ("vm", vm_definition(two_steps())),
        ("small-vm", {
            let mut d = vm_definition(small_vm_pre_approved());
            d.name = "小型虛擬機".into();
            d
        }),
        ("storage", storage_definition()),
        ("software", software_definition()),
    ];
    let mut snapshots = BTreeMap::new();
    for (i, (name, definition)) in items.iter().enumerate() {
        let ctx = Context {
            actor: person("u-lam"),
            now: step(i as i64),
        };
        let command = CatalogCommand::CreateCatalogItem {
            item_id: id(name),
            definition: definition.clone(),
        };
        bus.execute::<CatalogItem>(id(name), command, &ctx, id(&format!("create {name}")))
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.report()))?;
        commands += 1;
        snapshots.insert(
            *name,
            CatalogSnapshot {
                item_id: id(name),
                version: 1,
                definition: definition.clone(),
                retired: false,
            },
        );
    }
    let vm = |cpu: i64, project: &str| new_vm(cpu, 1, project);
    let storage = RequestDetails::NewResource {
        configuration: serde_json::from_value(json!({"size_gb": 2000, "tier": "performance"}))
            .unwrap_or_default(),
        quantity: 1,
        project: "學生資助系統".into(),
        period: Period {
            start: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default(),
            end: NaiveDate::from_ymd_opt(2027, 12, 1).unwrap_or_default(),
        },
    };
    // Each request: its name, item, requester, details, then what happens to it and by whom.
    let requests: Vec<Scripted> = vec![
        (
            "waiting-department".into(),
            "vm",
            "u-chan",
            vm(4, "電子公文交換"),
            vec![],
        ),
        (
            "waiting-operations".into(),
            "vm",
            "u-chan",
            vm(8, "財政數據平台"),
            vec![("u-ho", approve(0, "同意"))],
        ),
        (
            "approved".into(),
            "vm",
            "u-cheung",
            vm(16, "學校資訊系統"),
            vec![
                ("u-yeung", approve(0, "同意")),
                ("u-wong", approve(1, "資源充足")),
            ],
        ),
        (
            "fulfilled".into(),
            "small-vm",
            "u-chan",
            vm(2, "電子公文交換"),
            vec![(
                "u-wong",
                RequestCommand::MarkFulfilled {
                    note: "vm-fin-0042 已交付".into(),
                },
            )],
        ),
        (
            "failed".into(),
            "storage",
            "u-cheung",
            storage.clone(),
            vec![
                ("u-wong", approve(0, "同意")),
                (
                    "u-wong",
                    RequestCommand::MarkFailed {
                        note: "性能級存儲池容量不足".into(),
                    },
                ),
            ],
        ),
        (
            "rejected".into(),
            "vm",
            "u-cheung",
            vm(32, "學校資訊系統"),
            vec![(
                "u-yeung",
                RequestCommand::RejectRequest {
                    step: 0,
                    comment: "規格過大，請按實際負載申請".into(),
                    on_behalf_of: None,
                },
            )],
        ),
        (
            "cancelled".into(),
            "storage",
            "u-chan",
            storage,
            vec![(
                "u-chan",
                RequestCommand::CancelRequest {
                    reason: Some("項目延期".into()),
                },
            )],
        ),
        (
            "software".into(),
            "software",
            "u-chan",
            RequestDetails::InstallSoftware {
                resource_id: id("vm-fin-0042"),
                configuration: serde_json::from_value(json!({"software": "oracle-19c"}))
                    .unwrap_or_default(),
                project: "財政數據平台".into(),
            },
            vec![],
        ),
    ];
    let mut scripts = requests;
    scripts.extend((0..generated_requests).map(generated));
    let count = scripts.len();
    let snapshots = &snapshots;
    let mut runs = futures::stream::iter(
        scripts
            .into_iter()
            .enumerate()
            .map(|(n, script)| async move { run(bus, snapshots, script, submitted(n)).await }),
    )
    .buffer_unordered(32);
    while let Some(done) = runs.next().await {
        commands += done?;
    }
    Ok(Loaded {
        items: items.len(),
        requests: count,
        commands,
    })
}

/// When the sample begins: its catalogue is created from this hour on.
fn first_day() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

/// When the sample's `n`th request is submitted: from the morning after the catalogue, five
/// minutes apart.
fn submitted(n: usize) -> DateTime<Utc> {
    first_day() + Duration::hours(10) + Duration::minutes(5 * n as i64)
}

/// Submits one sample request at `at` and carries out what follows, a minute apart; the
/// number of commands.
async fn run(
    bus: &CommandBus,
    snapshots: &BTreeMap<&str, CatalogSnapshot>,
    (name, item, requester, details, then): Scripted,
    at: chrono::DateTime<Utc>,
) -> anyhow::Result<usize> {
    let request_id = id(&format!("request {name}"));
    let ctx = Context {
        actor: person(requester),
        now: at,
    };
    let submit = RequestCommand::SubmitRequest {
        request_id,
        item: snapshots[item].clone(),
        details,
        over_quota: None,
    };
    bus.execute::<Request>(request_id, submit, &ctx, id(&format!("submit {name}")))
        .await
        .map_err(|e| anyhow::anyhow!("demo request {name}: {}", e.report()))?;
    let mut commands = 1;
    for (k, (by, command)) in then.into_iter().enumerate() {
        let ctx = Context {
            actor: person(by),
            now: at + Duration::minutes(1 + k as i64),
        };
        bus.execute::<Request>(request_id, command, &ctx, id(&format!("{name} {k}")))
            .await
            .map_err(|e| anyhow::anyhow!("demo request {name}, step {k}: {}", e.report()))?;
        commands += 1;
    }
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_request_never_asks_for_a_period_already_past() {
        for n in [0, 60_800, 276_200, 3_000_000] {
            let (_, _, _, details, _) = generated(n);
            let RequestDetails::NewResource { period, .. } = details else {
                panic!("generated request {n} is not for a new resource");
            };
            // The generated requests follow the handwritten ones, so each is submitted a
            // little later than its own number says.
            let day = submitted(n + 100).date_naive();
            assert!(
                period.start > day,
                "request {n}: {period:?} starts by {day}"
            );
            assert_eq!(
                period.end - period.start,
                Duration::days(182),
                "request {n}"
            );
        }
    }
}
