//! `opsledger race`: many deployments of one core each race for a new pool with fewer
//! cores, through the same saga `deploy` takes, and exactly as many must win as there are
//! cores. It runs on a scratch SQLite store in a temporary directory, removed afterwards:
//! the log is append-only, and a stress test has no place in the configured one.

use std::sync::Arc;
use std::time::Instant;

use opsledger_domain::kernel::aggregate::Context;
use opsledger_domain::resources::cmdb::{AttrValue, CiRecord, CiType};
use opsledger_domain::resources::pool::{Amount, Pool, PoolCommand, PoolKind};
use uuid::Uuid;

use crate::app::{App, SystemClock};
use crate::store::{EventStore, StoreConfig};

/// How many race, and for how much.
#[derive(Debug, clap::Args)]
pub struct RaceArgs {
    /// Deployments of one core each, all started at once.
    #[arg(long, default_value_t = 200)]
    pub racers: usize,
    /// Cores of the pool they race for.
    #[arg(long, default_value_t = 100)]
    pub capacity: u64,
}

/// What a race ended with.
#[derive(Debug)]
pub struct Raced {
    pub racers: usize,
    pub capacity: u64,
    pub won: usize,
    pub seconds: f64,
    /// Cores the pool shows allocated, and its limit, after the race.
    pub allocated: u64,
    pub limit: u64,
}

impl Raced {
    /// # Errors
    ///
    /// When more or fewer deployments won than the pool had cores for, or the pool's
    /// allocation is not what the winners took.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.won as u64 == self.capacity.min(self.racers as u64)
                && self.allocated == self.won as u64,
            "the invariant broke: {} won, {} allocated",
            self.won,
            self.allocated
        );
        Ok(())
    }
}

impl std::fmt::Display for Raced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} deployments raced for {} cores: {} won, {} refused, in {:.2} s ({:.0} deployments/s); the pool holds {} of {} cores",
            self.racers,
            self.capacity,
            self.won,
            self.racers - self.won,
            self.seconds,
            self.racers as f64 / self.seconds.max(1e-9),
            self.allocated,
            self.limit,
        )
    }
}

/// Races `args.racers` deployments for a pool of `args.capacity` cores on a scratch store.
///
/// # Errors
///
/// When the scratch store cannot be made or opened, or a command fails for a reason other
/// than the pool's capacity.
pub async fn run(args: &RaceArgs) -> anyhow::Result<Raced> {
    let scratch = tempfile::Builder::new()
        .prefix("opsledger-race-")
        .tempdir()?;
    let store = EventStore::open(&StoreConfig::Sqlite {
        data_dir: scratch.path().to_path_buf(),
    })
    .await?;
    let app = App::start(store, Arc::new(SystemClock));
    let raced = race(&app, args).await;
    drop(app);
    drop(scratch);
    raced
}

async fn race(app: &App, &RaceArgs { racers, capacity }: &RaceArgs) -> anyhow::Result<Raced> {
    let ctx = Context {
        actor: opsledger_domain::Actor::system("race"),
        now: chrono::Utc::now(),
    };
    let pool_id = Uuid::now_v7();
    let cores = |cpu_cores| Amount {
        cpu_cores,
        memory_gib: cpu_cores,
        storage_gib: 0,
    };
    let create = PoolCommand::CreatePool {
        pool_id,
        name: "競爭測試資源池".into(),
        kind: PoolKind::VirtualMachine,
        capacity: cores(capacity),
        overcommit: Default::default(),
        units: Default::default(),
    };
    app.bus
        .execute::<Pool>(pool_id, create, &ctx, Uuid::now_v7())
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.report()))?;
    let start = Instant::now();
    let deployments = (0..racers).map(|i| {
        let (app, ctx) = (app.clone(), ctx.clone());
        tokio::spawn(async move {
            let deploy = opsledger_schema::Deploy {
                ci_id: Uuid::now_v7(),
                record: CiRecord {
                    ci_type: CiType::VirtualMachine,
                    name: format!("race-{i}"),
                    attributes: [("cpu".to_owned(), AttrValue::Integer(1))].into(),
                    placement: None,
                    addresses: Vec::new(),
                    department: "運維中心".into(),
                    project: None,
                    owner: None,
                    watchers: Vec::new(),
                    request_id: None,
                    lease: None,
                },
                pool_id: Some(pool_id),
                amount: cores(1),
                units: Default::default(),
                subnet_id: None,
                address: None,
                runs_on: None,
                over_quota_approved: false,
            };
            crate::sagas::deploy::deploy(&app, deploy, &ctx)
                .await
                .is_ok()
        })
    });
    let mut won = 0;
    for d in deployments.collect::<Vec<_>>() {
        won += usize::from(d.await?);
    }
    let seconds = start.elapsed().as_secs_f64();
    let (pool, _) = app.bus.load::<Pool>(pool_id).await?;
    Ok(Raced {
        racers,
        capacity,
        won,
        seconds,
        allocated: pool.allocated.cpu_cores,
        limit: pool.limit().cpu_cores,
    })
}
