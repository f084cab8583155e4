//! `opsledger demo --resources N`: a year of resource history through the same commands
//! users and the scheduler send — pools, subnets, department quotas, hosts, and N
//! configuration items over 20 departments and 200 projects, each deployed (quota,
//! capacity, address, CMDB, host), patched every few weeks, and reclaimed when its lease
//! ends — in time order, a day at a time. Ids derive from names, so loading twice changes
//! nothing.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::StreamExt;
use opsledger_domain::kernel::aggregate::Context;
use opsledger_domain::resources::cmdb::{
    AttrValue, CiCommand, CiRecord, CiType, ConfigurationItem, Lease,
};
use opsledger_domain::resources::ipam::{Subnet, SubnetCommand};
use opsledger_domain::resources::pool::{Amount, Overcommit, Pool, PoolCommand, PoolKind};
use opsledger_domain::resources::quota::{quota_id, Quota, QuotaCommand};
use opsledger_domain::Actor;
use opsledger_schema::Deploy;
use uuid::Uuid;

use crate::app::App;
use crate::store::commands::CommandError;

/// The departments of the generated history.
pub const DEPARTMENTS: [&str; 20] = [
    "財政局",
    "教育局",
    "社會福利署",
    "運輸署",
    "衞生署",
    "房屋署",
    "水務署",
    "環境保護署",
    "消防處",
    "警務處",
    "入境事務處",
    "海關",
    "地政總署",
    "規劃署",
    "民政事務總署",
    "勞工處",
    "稅務局",
    "統計處",
    "康樂及文化事務署",
    "食物環境衞生署",
];

/// Projects per department.
pub const PROJECTS: usize = 10;

/// The project `k` of `department`, e.g. `財政局-系統03`.
pub fn project(department: &str, k: usize) -> String {
    format!("{department}-系統{k:02}")
}

const POOLS: [(&str, PoolKind); 8] = [
    ("x86 虛擬化資源池 A", PoolKind::VirtualMachine),
    ("x86 虛擬化資源池 B", PoolKind::VirtualMachine),
    ("x86 虛擬化資源池 C", PoolKind::VirtualMachine),
    ("x86 虛擬化資源池 D", PoolKind::VirtualMachine),
    ("存儲資源池 1", PoolKind::Storage),
    ("存儲資源池 2", PoolKind::Storage),
    ("數據庫資源池", PoolKind::Database),
    ("中間件資源池", PoolKind::Middleware),
];

/// Hosts per pool, for `runs_on`.
pub const HOSTS: usize = 16;

/// Patches per resource at most, one every three weeks of its lease.
const PATCHES: i64 = 12;

fn id(name: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger-demo:{name}").as_bytes(),
    )
}

fn ctx(who: &str, now: DateTime<Utc>) -> Context {
    Context {
        actor: Actor::system(who),
        now,
    }
}

/// The first pool's id and its subnet's, where the demo's workflow provisions.
pub fn first_pool_and_subnet() -> (Uuid, Uuid) {
    let name = POOLS[0].0;
    (id(&format!("pool:{name}")), id(&format!("subnet:{name}")))
}

/// The history starts here and runs for a year.
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 11, 1, 0, 0, 0).unwrap()
}

/// An operation and when it is due.
type Due = (DateTime<Utc>, Op);

/// What is due at a moment.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Deploy(usize),
    Patch(usize, i64),
    Reclaim(usize),
}

impl Op {
    fn resource(self) -> usize {
        match self {
            Op::Deploy(i) | Op::Patch(i, _) | Op::Reclaim(i) => i,
        }
    }
}

/// What loading did.
pub struct Generated {
    pub resources: usize,
    pub commands: usize,
}

/// Loads pools, subnets, quotas, hosts and `n` resources' year of history.
///
/// # Errors
/// The first command refused for another reason than having been done already.
pub async fn load(app: &App, n: usize) -> anyhow::Result<Generated> {
    let t0 = start();
    let horizon = t0 + Duration::days(365);
    let setup = ctx("demo", t0);
    let mut commands = 0;
    for (p, (name, kind)) in POOLS.iter().enumerate() {
        let pool_id = id(&format!("pool:{name}"));
        let create = PoolCommand::CreatePool {
            pool_id,
            name: (*name).into(),
            kind: *kind,
            capacity: Amount {
                cpu_cores: 4_000 + n as u64 / 2,
                memory_gib: 16_000 + n as u64 * 2,
                storage_gib: 200_000 + n as u64 * 80,
            },
            overcommit: Overcommit {
                cpu_permille: 2000,
                memory_permille: 1200,
            },
            units: [("oracle_licence".to_owned(), n as u64 / 8 + 10)].into(),
        };
        done(
            app.bus
                .execute::<Pool>(pool_id, create, &setup, id(&format!("create:{name}")))
                .await,
        )?;
        let subnet_id = id(&format!("subnet:{name}"));
        let cidr: ipnet::Ipv4Net = format!("10.{}.0.0/16", 100 + p).parse()?;
        let subnet = SubnetCommand::CreateSubnet {
            subnet_id,
            name: format!("{name} 業務網"),
            cidr,
            first: format!("10.{}.0.10", 100 + p).parse()?,
            last: format!("10.{}.255.250", 100 + p).parse()?,
            gateway: Some(format!("10.{}.0.1", 100 + p).parse()?),
            vlan: Some(100 + p as u16),
        };
        done(
            app.bus
                .execute::<Subnet>(
                    subnet_id,
                    subnet,
                    &setup,
                    id(&format!("create:{name}:subnet")),
                )
                .await,
        )?;
        for h in 0..HOSTS {
            let host = host_id(p, h);
            let record = CiRecord {
                ci_type: CiType::Host,
                name: format!("host-{p}-{h:02}"),
                attributes: BTreeMap::from([
                    ("cpu".into(), AttrValue::Integer(96)),
                    ("memory_gib".into(), AttrValue::Integer(768)),
                    ("model".into(), AttrValue::Text("x86 2U 雙路".into())),
                    ("importance".into(), AttrValue::Text("important".into())),
                ]),
                placement: None,
                addresses: Vec::new(),
                department: "運維中心".into(),
                project: None,
                owner: Some("u-wong".into()),
                watchers: Vec::new(),
                request_id: None,
                lease: None,
            };
            let register = CiCommand::Register {
                ci_id: host,
                record: Box::new(record),
            };
            done(
                app.bus
                    .execute::<ConfigurationItem>(
                        host,
                        register,
                        &setup,
                        id(&format!("host:{p}:{h}")),
                    )
                    .await,
            )?;
        }
        commands += 2 + HOSTS;
    }
    for department in DEPARTMENTS {
        let share = Amount {
            cpu_cores: (n as u64 * 8).max(100),
            memory_gib: (n as u64 * 32).max(400),
            storage_gib: (n as u64 * 400).max(10_000),
        };
        let set = QuotaCommand::SetQuota {
            department: department.into(),
            project: None,
            limit: Some(share),
        };
        done(
            app.bus
                .execute::<Quota>(
                    quota_id(department),
                    set,
                    &setup,
                    id(&format!("quota:{department}")),
                )
                .await,
        )?;
        commands += 1;
    }

    // Everything due, soonest first; a day's worth at a time, 64 at once.
    let spacing = 365.0 * 86_400.0 * 0.8 / n.max(1) as f64;
    let mut due: BinaryHeap<Reverse<Due>> = (0..n)
        .map(|i| {
            Reverse((
                t0 + Duration::seconds((i as f64 * spacing) as i64),
                Op::Deploy(i),
            ))
        })
        .collect();
    while let Some(Reverse((first, _))) = due.peek().copied() {
        if first >= horizon {
            break;
        }
        let day_end = first + Duration::days(1);
        let mut today = Vec::new();
        while let Some(Reverse((t, op))) = due.peek().copied() {
            if t >= day_end {
                break;
            }
            due.pop();
            today.push((t, op));
        }
        // One resource's operations in order; different resources' at once.
        let mut by_resource: BTreeMap<usize, Vec<Due>> = BTreeMap::new();
        for (t, op) in today {
            by_resource.entry(op.resource()).or_default().push((t, op));
        }
        let results: Vec<anyhow::Result<Vec<Due>>> =
            futures::stream::iter(by_resource.into_values().map(|ops| async move {
                let mut next = Vec::new();
                for (t, op) in ops {
                    next.extend(run(app, t, op).await?);
                }
                Ok(next)
            }))
            .buffer_unordered(64)
            .collect()
            .await;
        for r in results {
            for next in r? {
                if next.0 < horizon {
                    due.push(Reverse(next));
                }
            }
            commands += 1;
        }
    }
    Ok(Generated {
        resources: n,
        commands,
    })
}

/// The demo's hosts, for incidents to affect.
pub fn hosts() -> Vec<Uuid> {
    (0..POOLS.len())
        .flat_map(|p| (0..HOSTS).map(move |h| host_id(p, h)))
        .collect()
}

fn host_id(pool: usize, h: usize) -> Uuid {
    id(&format!("host:{pool}:{h}"))
}

fn resource_id(i: usize) -> Uuid {
    id(&format!("resource:{i}"))
}

/// A small pseudo-random number from `i` and `salt`: the same every load.
fn pick(i: usize, salt: u64, n: u64) -> u64 {
    let h = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{i}:{salt}").as_bytes()).as_u128();
    (h % u128::from(n)) as u64
}

/// Carries out one due operation at `t`; what it makes due next.
async fn run(app: &App, t: DateTime<Utc>, op: Op) -> anyhow::Result<Vec<Due>> {
    match op {
        Op::Deploy(i) => {
            let department = DEPARTMENTS[i % DEPARTMENTS.len()];
            let project = project(department, (i / DEPARTMENTS.len()) % PROJECTS);
            let p = pick(i, 1, POOLS.len() as u64) as usize;
            let cpu = [2, 4, 4, 8, 8, 16][pick(i, 2, 6) as usize];
            let ci_type = match POOLS[p].1 {
                PoolKind::Storage => CiType::StorageVolume,
                PoolKind::Database => CiType::Database,
                PoolKind::Middleware => CiType::Middleware,
                _ => CiType::VirtualMachine,
            };
            let image = ["rhel-9.4", "ubuntu-24.04", "windows-server-2022"][pick(i, 3, 3) as usize];
            let attributes = BTreeMap::from([
                ("cpu".into(), AttrValue::Integer(cpu)),
                ("memory_gib".into(), AttrValue::Integer(cpu * 4)),
                (
                    "disks_gib".into(),
                    AttrValue::Integers(vec![100, 50 * (1 + pick(i, 4, 8) as i64)]),
                ),
                ("os_image".into(), AttrValue::Text(image.into())),
                ("hostname".into(), AttrValue::Text(format!("vm-{i:06}"))),
                (
                    "tier".into(),
                    AttrValue::Text(["gold", "silver", "bronze"][pick(i, 5, 3) as usize].into()),
                ),
            ]);
            let lease_days = 60 + pick(i, 6, 300) as i64;
            let end = t + Duration::days(lease_days);
            let deploy = Deploy {
                ci_id: resource_id(i),
                amount: opsledger_domain::resources::sizing::amount_of(&attributes),
                units: match ci_type {
                    CiType::Database => [("oracle_licence".to_owned(), 1)].into(),
                    _ => Default::default(),
                },
                record: CiRecord {
                    ci_type,
                    name: format!("vm-{i:06}"),
                    attributes,
                    placement: None,
                    addresses: Vec::new(),
                    department: department.into(),
                    project: Some(project),
                    owner: Some(format!("u-{:03}", i % 500)),
                    watchers: Vec::new(),
                    request_id: None,
                    lease: Some(Lease { start: t, end }),
                },
                pool_id: Some(id(&format!("pool:{}", POOLS[p].0))),
                subnet_id: Some(id(&format!("subnet:{}", POOLS[p].0))),
                address: None,
                runs_on: Some(host_id(p, pick(i, 7, HOSTS as u64) as usize)),
                over_quota_approved: false,
            };
            crate::sagas::deploy::deploy(app, deploy, &ctx("provisioner", t))
                .await
                .map_err(|e| anyhow::anyhow!("deploying resource {i}: {e:?}"))?;
            let mut next: Vec<Due> = (1..=PATCHES)
                .map(|k| (t + Duration::days(21 * k), Op::Patch(i, k)))
                .filter(|(at, _)| *at < end)
                .collect();
            next.push((end, Op::Reclaim(i)));
            Ok(next)
        }
        Op::Patch(i, k) => {
            let changes = BTreeMap::from([(
                "patch_level".into(),
                Some(AttrValue::Text(format!("2026.{k:02}"))),
            )]);
            let command = CiCommand::UpdateAttributes { changes };
            done(
                app.bus
                    .execute::<ConfigurationItem>(
                        resource_id(i),
                        command,
                        &ctx("patcher", t),
                        id(&format!("patch:{i}:{k}")),
                    )
                    .await,
            )?;
            Ok(Vec::new())
        }
        Op::Reclaim(i) => {
            match crate::sagas::deploy::reclaim(
                app,
                resource_id(i),
                "租期屆滿，自動回收",
                &ctx("scheduler", t),
            )
            .await
            {
                Ok(_) | Err(CommandError::Domain(_)) => Ok(Vec::new()),
                Err(e) => Err(anyhow::anyhow!("reclaiming resource {i}: {e:?}")),
            }
        }
    }
}

/// A command's outcome, with "done already" (a refusal of what exists) as success.
fn done<E: std::error::Error + Send + Sync + 'static>(
    outcome: Result<crate::Appended, CommandError<E>>,
) -> anyhow::Result<()> {
    match outcome {
        Ok(_) => Ok(()),
        Err(CommandError::Domain(e)) if e.to_string().contains("already") => Ok(()),
        Err(CommandError::Domain(e)) if e.to_string().contains("change nothing") => Ok(()),
        Err(e) => Err(anyhow::anyhow!("{}", e.report())),
    }
}
