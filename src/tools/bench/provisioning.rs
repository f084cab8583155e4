//! `opsledger bench-provisioning`: the engine's figures with the simulator at zero
//! latency, on a fresh store.
//!
//! Throughput: `requests` pre-approved requests for the five-step VM workflow (capacity,
//! VM, volume, image, address) are recorded with no engine running; then the engine
//! starts, finds them all approved, and carries them out. The figure is requests over the
//! time from its start to the last `RequestFulfilled`, and that time per step.
//!
//! Latency: with the engine running, `samples` requests are made one after another; each
//! is timed from its `RequestApproved` to its `RequestFulfilled`, as the log records them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use futures::StreamExt;
use opsledger_domain::automation::workflow::{Workflow, WorkflowCommand, WorkflowDefinition};
use opsledger_domain::kernel::aggregate::Context;
use opsledger_domain::requests::catalog::{CatalogCommand, CatalogItem};
use opsledger_domain::requests::demo::{small_vm_pre_approved, vm_definition};
use opsledger_domain::requests::request::{
    CatalogSnapshot, Period, Request, RequestCommand, RequestDetails,
};
use opsledger_domain::resources::ipam::{Subnet, SubnetCommand};
use opsledger_domain::resources::pool::{Amount, Overcommit, Pool, PoolCommand, PoolKind};
use opsledger_domain::{Actor, ActorKind};
use serde_json::json;
use uuid::Uuid;

use crate::app::{App, SystemClock};
use crate::store::EventStore;

#[derive(Debug, clap::Args)]
pub struct ProvisioningBenchArgs {
    /// Approved requests carried out at once for the throughput figure.
    #[arg(long, default_value_t = 1000)]
    pub requests: usize,
    /// Requests made one after another for the latency figure.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
}

fn person(id: &str, roles: &[&str]) -> Actor {
    Actor {
        kind: ActorKind::User,
        id: id.into(),
        name: None,
        department: Some(
            if roles.contains(&"requester") {
                "財政局"
            } else {
                "運維中心"
            }
            .into(),
        ),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn ctx(actor: Actor) -> Context {
    Context {
        actor,
        now: chrono::Utc::now(),
    }
}

/// The pool, subnet, workflow and item; the item as a request carries it.
async fn prepare(app: &App, requests: usize) -> anyhow::Result<CatalogSnapshot> {
    let op = ctx(person("u-wong", &["operator"]));
    let pool_id = Uuid::now_v7();
    let create = PoolCommand::CreatePool {
        pool_id,
        name: "x86 虛擬化資源池".into(),
        kind: PoolKind::VirtualMachine,
        capacity: Amount {
            cpu_cores: 1_000_000,
            memory_gib: 10_000_000,
            storage_gib: 100_000_000,
        },
        overcommit: Overcommit {
            cpu_permille: 1000,
            memory_permille: 1000,
        },
        units: Default::default(),
    };
    app.bus
        .execute::<Pool>(pool_id, create, &op, Uuid::now_v7())
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.report()))?;
    let subnet_id = Uuid::now_v7();
    let size = (requests + 300).next_power_of_two().max(1024);
    let prefix = 32 - size.trailing_zeros();
    let subnet = SubnetCommand::CreateSubnet {
        subnet_id,
        name: "政務外網".into(),
        cidr: format!("10.0.0.0/{prefix}").parse()?,
        first: "10.0.0.10".parse()?,
        last: std::net::Ipv4Addr::from(
            u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0)) + size as u32 - 2,
        ),
        gateway: Some("10.0.0.1".parse()?),
        vlan: Some(120),
    };
    app.bus
        .execute::<Subnet>(subnet_id, subnet, &op, Uuid::now_v7())
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.report()))?;
    let definition: WorkflowDefinition = serde_json::from_value(json!({
        "name": "虛擬機開通",
        "params": [
            {"name": "cpu", "type": "integer", "default": 2},
            {"name": "memory_gb", "type": "integer", "default": 4},
            {"name": "image", "type": "text", "default": "rhel-9.4"},
            {"name": "pool_id", "type": "text", "default": pool_id.to_string()},
            {"name": "subnet_id", "type": "text", "default": subnet_id.to_string()}
        ],
        "steps": [
            {"name": "capacity", "kind": "allocate_capacity", "inputs": {"pool_id": "${params.pool_id}", "cpu": "${params.cpu}", "memory_gib": "${params.memory_gb}"}},
            {"name": "vm", "kind": "create_vm", "inputs": {}},
            {"name": "disk", "kind": "create_volume", "inputs": {"size_gb": 100, "vm": "${steps.vm.vm_ref}"}},
            {"name": "image", "kind": "deploy_image", "inputs": {"image": "${params.image}"}},
            {"name": "ip", "kind": "allocate_ip", "inputs": {"subnet_id": "${params.subnet_id}"}}
        ]
    }))?;
    let workflow_id = Uuid::now_v7();
    let create = WorkflowCommand::Create {
        workflow_id,
        definition,
    };
    app.bus
        .execute::<Workflow>(workflow_id, create, &op, Uuid::now_v7())
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.report()))?;
    let mut item = vm_definition(small_vm_pre_approved());
    item.workflow_id = Some(workflow_id);
    let item_id = Uuid::now_v7();
    let create = CatalogCommand::CreateCatalogItem {
        item_id,
        definition: item.clone(),
    };
    let admin = ctx(person("u-lam", &["catalog_admin"]));
    app.bus
        .execute::<CatalogItem>(item_id, create, &admin, Uuid::now_v7())
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.report()))?;
    Ok(CatalogSnapshot {
        item_id,
        version: 1,
        definition: item,
        retired: false,
    })
}

async fn submit(app: &App, item: &CatalogSnapshot) -> anyhow::Result<Uuid> {
    let request_id = Uuid::now_v7();
    let details = RequestDetails::NewResource {
        configuration: serde_json::from_value(
            json!({"cpu": 2, "memory_gb": 4, "os": "linux", "image": "rhel-9.4"}),
        )?,
        quantity: 1,
        project: "電子公文交換".into(),
        period: Period {
            start: NaiveDate::from_ymd_opt(2026, 12, 1).expect("a date"),
            end: NaiveDate::from_ymd_opt(2027, 12, 1).expect("a date"),
        },
    };
    let submit = RequestCommand::SubmitRequest {
        request_id,
        item: item.clone(),
        details,
        over_quota: None,
    };
    app.bus
        .execute::<Request>(
            request_id,
            submit,
            &ctx(person("u-chan", &["requester"])),
            Uuid::now_v7(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.report()))?;
    Ok(request_id)
}

/// Waits until `n` requests have been fulfilled (or failed), reading the log from `from`.
async fn fulfilled(
    store: &EventStore,
    from: u64,
    n: usize,
) -> anyhow::Result<Vec<(Uuid, chrono::DateTime<chrono::Utc>)>> {
    let mut feed = store.subscribe(from);
    let mut done = Vec::with_capacity(n);
    while done.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(120), feed.next())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "no request was fulfilled for 2 minutes ({} of {n})",
                    done.len()
                )
            })?
            .ok_or_else(|| anyhow::anyhow!("the feed ended"))??;
        match event.event_type.as_str() {
            "RequestFulfilled" => {
                let id = opsledger_projections::stream_id(&event.stream).unwrap_or_default();
                done.push((id, event.metadata.recorded_at));
            }
            "RequestFailed" => anyhow::bail!("a request failed: {}", event.data),
            _ => {}
        }
    }
    Ok(done)
}

/// Runs both figures and prints them as a table.
///
/// # Errors
/// A store failure, or a request the engine did not fulfil.
pub async fn run(store: EventStore, args: &ProvisioningBenchArgs) -> anyhow::Result<()> {
    let app = App::start(store.clone(), Arc::new(SystemClock));
    let item = prepare(&app, args.requests + args.samples).await?;
    for _ in 0..args.requests {
        submit(&app, &item).await?;
    }
    let head = store.head().await?;
    app.runner
        .wait_for(head, Duration::from_secs(60))
        .await
        .map_err(|p| anyhow::anyhow!("the models stopped at {p}"))?;
    let started = Instant::now();
    crate::processes::engine::start(app.clone());
    fulfilled(&store, head + 1, args.requests).await?;
    let elapsed = started.elapsed();
    let after = store.head().await?;
    let rate = args.requests as f64 / elapsed.as_secs_f64();
    let per_step = elapsed.as_secs_f64() * 1000.0 / (args.requests * 5) as f64;

    let mut latencies = Vec::with_capacity(args.samples);
    for _ in 0..args.samples {
        let from = store.head().await? + 1;
        let request = submit(&app, &item).await?;
        let approved = store
            .read_stream(&format!("request-{request}"), 0)
            .await?
            .into_iter()
            .find(|e| e.event_type == "RequestApproved")
            .ok_or_else(|| anyhow::anyhow!("a pre-approved request was not approved"))?
            .metadata
            .recorded_at;
        let done = fulfilled(&store, from, 1).await?;
        latencies.push(
            (done[0].1 - approved)
                .num_microseconds()
                .unwrap_or(i64::MAX) as f64
                / 1000.0,
        );
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    println!("| figure | measured |");
    println!("|---|---|");
    println!(
        "| {} approved requests, 5 steps each, simulator at 0 ms ({}) | {:.0} workflows/s ({:.2} s; {:.3} ms a step; {} events) |",
        args.requests,
        store.backend_name(),
        rate,
        elapsed.as_secs_f64(),
        per_step,
        after - head
    );
    println!(
        "| approval → fulfilled, one request at a time ({} samples) | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms |",
        latencies.len(),
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or_default()
    );
    Ok(())
}
