//! Deployments, moves and reclamations: each spans several aggregates (a department's
//! quota, a pool, a subnet, the configuration item), so each is a sequence of commands in
//! which what was taken is given back if a later step fails. Every step is safe to repeat:
//! the aggregates refuse a second allocation, release or retirement, and a repeated run
//! takes such a refusal as "already done", so a retry or a restart goes on where the last
//! run stopped and does nothing twice.

use opsledger_domain::kernel::aggregate::{Aggregate, Context, DomainEvent};
use opsledger_domain::resources::cmdb::{
    Address, AttrValue, CiCommand, CiError, CiStatus, ConfigurationItem, Placement, Relation,
};
use opsledger_domain::resources::ipam::{Subnet, SubnetCommand, SubnetError, SubnetEvent};
use opsledger_domain::resources::pool::{Amount, Pool, PoolCommand, PoolError};
use opsledger_domain::resources::quota::{quota_id, Quota, QuotaCommand, QuotaError};
use opsledger_schema::{Deploy, ResourceError, Written};
use uuid::Uuid;

use crate::app::App;
use crate::store::commands::CommandError;

type Outcome<T> = Result<T, CommandError<ResourceError>>;

fn failure<E: Into<ResourceError>>(e: CommandError<E>) -> CommandError<ResourceError> {
    e.map_domain(Into::into)
}

/// One step: the position it wrote, `None` when the aggregate says it was done already
/// (`done` recognises that refusal).
pub(crate) async fn step<A: Aggregate + Send + Sync + 'static>(
    app: &App,
    id: Uuid,
    command: A::Command,
    ctx: &Context,
    done: impl Fn(&A::Error) -> bool,
) -> Outcome<Option<u64>>
where
    A::Event: DomainEvent + Send,
    A::Command: Clone + Send,
    A::Error: Into<ResourceError> + Send,
{
    // Pools, subnets and quotas are contended: decided in turn, on a kept state. A
    // configuration item is not, and there are many: decided plainly.
    let outcome = if A::KIND == ConfigurationItem::KIND {
        app.bus.execute::<A>(id, command, ctx, Uuid::now_v7()).await
    } else {
        app.bus
            .execute_in_turn::<A>(id, command, ctx)
            .await
            .map(|(appended, _)| appended)
    };
    match outcome {
        Ok(appended) => Ok(Some(appended.last_position)),
        Err(CommandError::Domain(e)) if done(&e) => Ok(None),
        Err(e) => Err(failure(e)),
    }
}

/// Allocates an address in a subnet (`command` is an `AllocateAddress`): the address, also
/// when the item held one there already.
pub(crate) async fn allocate_address(
    app: &App,
    subnet_id: Uuid,
    command: SubnetCommand,
    ctx: &Context,
) -> Result<std::net::Ipv4Addr, CommandError<SubnetError>> {
    match app
        .bus
        .execute_in_turn::<Subnet>(subnet_id, command, ctx)
        .await
    {
        Ok((_, events)) => events
            .into_iter()
            .find_map(|e| match e {
                SubnetEvent::AddressAllocated { address, .. } => Some(address),
                _ => None,
            })
            .ok_or_else(|| {
                CommandError::from(crate::store::StoreError::InvalidAppend(
                    "the subnet allocated no address".into(),
                ))
            }),
        Err(CommandError::Domain(SubnetError::AlreadyHolds { address, .. })) => Ok(address),
        Err(e) => Err(e),
    }
}

async fn load_ci(app: &App, ci_id: Uuid) -> Outcome<ConfigurationItem> {
    app.bus
        .load::<ConfigurationItem>(ci_id)
        .await
        .map(|(ci, _)| ci)
        .map_err(CommandError::internal)
}

async fn head(app: &App) -> Outcome<Written> {
    let position = app.store.head().await.map_err(CommandError::internal)?;
    Ok(Written { position })
}

/// Gives back, in reverse order, what a failed deployment took. A failure here is logged:
/// the original error is what the caller must hear.
async fn undo(app: &App, d: &Deploy, taken: &[Taken], ctx: &Context) {
    for t in taken.iter().rev() {
        if let Err(e) = give_back(app, t, d.ci_id, &d.record.department, ctx).await {
            tracing::error!(ci = %d.ci_id, "giving back what a failed deployment took failed: {e:?}");
        }
    }
}

/// Gives back one thing taken for `ci_id` of `department`; given back already counts as
/// done.
pub(crate) async fn give_back(
    app: &App,
    taken: &Taken,
    ci_id: Uuid,
    department: &str,
    ctx: &Context,
) -> Outcome<Option<u64>> {
    match taken {
        Taken::Quota => {
            let release = QuotaCommand::Release { resource_id: ci_id };
            step::<Quota>(app, quota_id(department), release, ctx, |e| {
                matches!(e, QuotaError::NotConsumed(_))
            })
            .await
        }
        Taken::Capacity(pool) => {
            let release = PoolCommand::ReleaseCapacity {
                allocation_id: ci_id,
            };
            step::<Pool>(app, *pool, release, ctx, |e| {
                matches!(e, PoolError::NoSuchAllocation(_))
            })
            .await
        }
        Taken::Address(subnet) => {
            let release = SubnetCommand::ReleaseAddresses { ci_id };
            step::<Subnet>(app, *subnet, release, ctx, |e| {
                matches!(e, SubnetError::NothingHeld(_))
            })
            .await
        }
    }
}

/// What a deployment or a provisioning run took, to be given back.
pub(crate) enum Taken {
    Quota,
    Capacity(Uuid),
    Address(Uuid),
}

/// Brings a configuration item into service: quota, capacity, address, registration,
/// relationship to its host. A CI registered already is left as it is.
pub async fn deploy(app: &App, d: Deploy, ctx: &Context) -> Outcome<Written> {
    let mut ci = load_ci(app, d.ci_id).await?;
    if ci.record.is_none() {
        let mut taken = Vec::new();
        if let Err(e) = take(app, &d, ctx, &mut taken).await {
            undo(app, &d, &taken, ctx).await;
            return Err(e);
        }
        ci = load_ci(app, d.ci_id).await?;
    }
    if let Some(host) = d.runs_on {
        if !ci.relations.contains(&(Relation::RunsOn, host)) {
            let relate = CiCommand::Relate {
                relation: Relation::RunsOn,
                target: host,
            };
            step::<ConfigurationItem>(app, d.ci_id, relate, ctx, |_| false).await?;
        }
    }
    head(app).await
}

async fn take(app: &App, d: &Deploy, ctx: &Context, taken: &mut Vec<Taken>) -> Outcome<()> {
    // A quota limits what a department takes from the pools.
    if d.pool_id.is_some() && d.amount != Amount::default() {
        step::<Quota>(
            app,
            quota_id(&d.record.department),
            QuotaCommand::Consume {
                resource_id: d.ci_id,
                department: d.record.department.clone(),
                project: d.record.project.clone(),
                amount: d.amount,
                over_quota_approved: d.over_quota_approved,
            },
            ctx,
            |e| matches!(e, QuotaError::AlreadyConsumed(_)),
        )
        .await?;
        taken.push(Taken::Quota);
    }
    let mut record = d.record.clone();
    if let Some(pool_id) = d.pool_id {
        if d.amount != Amount::default() || !d.units.is_empty() {
            step::<Pool>(
                app,
                pool_id,
                PoolCommand::AllocateCapacity {
                    allocation_id: d.ci_id,
                    amount: d.amount,
                    units: d.units.clone(),
                    request_id: d.record.request_id,
                },
                ctx,
                |e| matches!(e, PoolError::AlreadyAllocated(_)),
            )
            .await?;
            taken.push(Taken::Capacity(pool_id));
        }
        record.placement = Some(Placement {
            pool_id,
            amount: d.amount,
        });
    }
    if let Some(subnet_id) = d.subnet_id {
        let command = SubnetCommand::AllocateAddress {
            ci_id: d.ci_id,
            address: d.address,
        };
        let address = allocate_address(app, subnet_id, command, ctx)
            .await
            .map_err(failure)?;
        taken.push(Taken::Address(subnet_id));
        record.addresses.push(Address { subnet_id, address });
        let listed = record
            .attributes
            .entry("ip_addresses".into())
            .or_insert_with(|| AttrValue::Texts(Vec::new()));
        match listed {
            AttrValue::Texts(list) if !list.contains(&address.to_string()) => {
                list.push(address.to_string());
            }
            AttrValue::Texts(_) => {}
            other => *other = AttrValue::Texts(vec![address.to_string()]),
        }
    }
    step::<ConfigurationItem>(
        app,
        d.ci_id,
        CiCommand::Register {
            ci_id: d.ci_id,
            record: Box::new(record),
        },
        ctx,
        |e| matches!(e, CiError::AlreadyExists),
    )
    .await?;
    Ok(())
}

/// Moves a CI's capacity to `to_pool`: allocated there, recorded, released where it was.
pub async fn move_ci(app: &App, ci_id: Uuid, to_pool: Uuid, ctx: &Context) -> Outcome<Written> {
    let ci = load_ci(app, ci_id).await?;
    ci.admit(&ctx.actor, false)
        .map_err(|e| CommandError::Domain(e.into()))?;
    let record = ci
        .record
        .as_ref()
        .ok_or(CommandError::Domain(CiError::NotFound.into()))?;
    if ci.status == CiStatus::Retired {
        return Err(CommandError::Domain(CiError::Retired.into()));
    }
    let amount = record.placement.map(|p| p.amount).unwrap_or_default();
    if record.placement.map(|p| p.pool_id) == Some(to_pool) {
        return Err(CommandError::Domain(
            CiError::Invalid(opsledger_domain::requests::catalog::InvalidField {
                field: "poolId".into(),
                problem: "is the pool it is already in".into(),
            })
            .into(),
        ));
    }
    // The counted things (licences, VLANs) it holds move with it.
    let units = match record.placement {
        Some(from) => app
            .bus
            .load::<Pool>(from.pool_id)
            .await
            .map_err(CommandError::internal)?
            .0
            .unit_allocations
            .remove(&ci_id)
            .unwrap_or_default(),
        None => Default::default(),
    };
    if amount != Amount::default() || !units.is_empty() {
        step::<Pool>(
            app,
            to_pool,
            PoolCommand::AllocateCapacity {
                allocation_id: ci_id,
                amount,
                units,
                request_id: record.request_id,
            },
            ctx,
            |e| matches!(e, PoolError::AlreadyAllocated(_)),
        )
        .await?;
    }
    let to = Placement {
        pool_id: to_pool,
        amount,
    };
    let moved = step::<ConfigurationItem>(app, ci_id, CiCommand::Move { to }, ctx, |_| false).await;
    if let Err(e) = moved {
        let release = PoolCommand::ReleaseCapacity {
            allocation_id: ci_id,
        };
        if let Err(undo) = step::<Pool>(app, to_pool, release, ctx, |_| true).await {
            tracing::error!(ci = %ci_id, "giving back capacity after a failed move failed: {undo:?}");
        }
        return Err(e);
    }
    if let Some(from) = record.placement {
        step::<Pool>(
            app,
            from.pool_id,
            PoolCommand::ReleaseCapacity {
                allocation_id: ci_id,
            },
            ctx,
            |e| matches!(e, PoolError::NoSuchAllocation(_)),
        )
        .await?;
    }
    head(app).await
}

/// Takes a CI out of service: stopped, capacity, address and quota given back, retired.
/// Each step is skipped when it was done already, so a run cut short is finished by the
/// next.
pub async fn reclaim(app: &App, ci_id: Uuid, reason: &str, ctx: &Context) -> Outcome<Written> {
    let ci = load_ci(app, ci_id).await?;
    // Who may, before anything about its state: behind the department wall it is absent.
    ci.admit(&ctx.actor, false)
        .map_err(|e| CommandError::Domain(e.into()))?;
    let record = ci
        .record
        .clone()
        .ok_or(CommandError::Domain(CiError::NotFound.into()))?;
    if ci.status == CiStatus::Retired {
        return Err(CommandError::Domain(CiError::Retired.into()));
    }
    if ci.status == CiStatus::Running {
        step::<ConfigurationItem>(
            app,
            ci_id,
            CiCommand::Stop {
                reason: reason.to_owned(),
            },
            ctx,
            |e| matches!(e, CiError::AlreadyInStatus(_)),
        )
        .await?;
    }
    if let Some(placement) = record.placement {
        step::<Pool>(
            app,
            placement.pool_id,
            PoolCommand::ReleaseCapacity {
                allocation_id: ci_id,
            },
            ctx,
            |e| matches!(e, PoolError::NoSuchAllocation(_) | PoolError::NotFound),
        )
        .await?;
    }
    for address in &record.addresses {
        step::<Subnet>(
            app,
            address.subnet_id,
            SubnetCommand::ReleaseAddresses { ci_id },
            ctx,
            |e| matches!(e, SubnetError::NothingHeld(_)),
        )
        .await?;
    }
    step::<Quota>(
        app,
        quota_id(&record.department),
        QuotaCommand::Release { resource_id: ci_id },
        ctx,
        |e| matches!(e, QuotaError::NotConsumed(_)),
    )
    .await?;
    let retired = step::<ConfigurationItem>(
        app,
        ci_id,
        CiCommand::Retire {
            reason: reason.to_owned(),
        },
        ctx,
        |_| false,
    )
    .await?;
    match retired {
        Some(position) => Ok(Written { position }),
        None => head(app).await,
    }
}
