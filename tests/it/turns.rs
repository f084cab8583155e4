//! Commands decided on a kept state. Contended aggregates decided in turn
//! ([`CommandBus::execute_in_turn`]): commands for one pool from many callers in two
//! processes sharing the log, each process deciding its own in chained rounds. Exactly as
//! many land as the pool has room for, each allocation once, and the log folds to the
//! state the turns kept. A state kept by its caller ([`CommandBus::execute_on`]) that
//! starts from nothing, for a command made before: the first outcome, and the stream as
//! it is now.

use futures::future::join_all;
use opsledger::store::commands::{CommandBus, CommandError};
use opsledger::ExpectedVersion;
use opsledger_domain::kernel::aggregate::Context;
use opsledger_domain::resources::pool::{
    Amount, Overcommit, Pool, PoolCommand, PoolError, PoolKind,
};
use opsledger_domain::{Actor, ActorKind};
use uuid::Uuid;

use crate::support::Fixture;

fn operator() -> Context {
    Context {
        actor: Actor {
            kind: ActorKind::User,
            id: "u-wong".into(),
            name: None,
            department: Some("運維中心".into()),
            roles: vec!["operator".into()],
        },
        now: chrono::Utc::now(),
    }
}

fn one_core(allocation_id: Uuid) -> PoolCommand {
    PoolCommand::AllocateCapacity {
        allocation_id,
        amount: Amount {
            cpu_cores: 1,
            memory_gib: 2,
            storage_gib: 0,
        },
        units: Default::default(),
        request_id: None,
    }
}

async fn two_processes_race_for_one_pool(fixture: &Fixture) {
    let (a, b) = (
        CommandBus::new(fixture.open().await),
        CommandBus::new(fixture.open().await),
    );
    let pool_id = Uuid::now_v7();
    let create = PoolCommand::CreatePool {
        pool_id,
        name: "x86 虛擬化資源池".into(),
        kind: PoolKind::VirtualMachine,
        capacity: Amount {
            cpu_cores: 150,
            memory_gib: 10_000,
            storage_gib: 0,
        },
        overcommit: Overcommit {
            cpu_permille: 1000,
            memory_permille: 1000,
        },
        units: Default::default(),
    };
    a.execute::<Pool>(pool_id, create, &operator(), Uuid::now_v7())
        .await
        .unwrap();

    // 2 × 100 callers for 150 cores; one allocation id is asked for by both processes.
    let twice = Uuid::now_v7();
    let ids: Vec<Uuid> = (0..199).map(|_| Uuid::now_v7()).chain([twice]).collect();
    let outcomes = join_all(ids.iter().enumerate().map(|(i, id)| {
        let bus = if i % 2 == 0 { &a } else { &b };
        async move {
            bus.execute_in_turn::<Pool>(pool_id, one_core(*id), &operator())
                .await
        }
    }))
    .await;
    let again = b
        .execute_in_turn::<Pool>(pool_id, one_core(twice), &operator())
        .await;
    let landed = outcomes.iter().filter(|o| o.is_ok()).count();
    for outcome in &outcomes {
        match outcome {
            Ok((appended, events)) => assert_eq!(
                events.len() as u64,
                appended.last_position - appended.first_position + 1
            ),
            Err(CommandError::Domain(PoolError::InsufficientCapacity { .. })) => {}
            Err(e) => panic!("an allocation failed for another reason: {}", e.report()),
        }
    }
    assert_eq!(landed, 150, "exactly the room there is");
    match (outcomes.last().unwrap(), again) {
        (Ok(_), Err(CommandError::Domain(PoolError::AlreadyAllocated(id)))) => {
            assert_eq!(id, twice)
        }
        (Err(_), _) => {}
        (first, again) => panic!("an allocation taken twice: {first:?} then {again:?}"),
    }

    // The log, read afresh, is what the turns decided: 150 allocations, each once.
    let (pool, _) = CommandBus::new(fixture.open().await)
        .load::<Pool>(pool_id)
        .await
        .unwrap();
    assert_eq!(pool.allocations.len(), 150);
    assert_eq!(pool.allocated.cpu_cores, 150);
    let events = fixture
        .open()
        .await
        .read_stream(&format!("pool-{pool_id}"), 0)
        .await
        .unwrap();
    assert_eq!(events.len(), 151);
}

async fn a_kept_state_from_nothing_finds_what_a_repeated_command_made(fixture: &Fixture) {
    let bus = CommandBus::new(fixture.open().await);
    let pool_id = Uuid::now_v7();
    let create = PoolCommand::CreatePool {
        pool_id,
        name: "x86 虛擬化資源池".into(),
        kind: PoolKind::VirtualMachine,
        capacity: Amount {
            cpu_cores: 8,
            memory_gib: 64,
            storage_gib: 0,
        },
        overcommit: Overcommit {
            cpu_permille: 1000,
            memory_permille: 1000,
        },
        units: Default::default(),
    };
    let created = Uuid::now_v7();
    let mut kept = (Pool::default(), ExpectedVersion::NoStream);
    let first = bus
        .execute_on::<Pool>(pool_id, &mut kept, create.clone(), &operator(), created)
        .await
        .unwrap();
    assert_eq!(kept.1, ExpectedVersion::Exact(0));
    for _ in 0..2 {
        bus.execute_on::<Pool>(
            pool_id,
            &mut kept,
            one_core(Uuid::now_v7()),
            &operator(),
            Uuid::now_v7(),
        )
        .await
        .unwrap();
    }
    // The creation again, from nothing (a process that restarted): its first outcome, and
    // the pool as it is now, with both allocations.
    let mut again = (Pool::default(), ExpectedVersion::NoStream);
    let repeated = bus
        .execute_on::<Pool>(pool_id, &mut again, create, &operator(), created)
        .await
        .unwrap();
    assert_eq!(repeated, first);
    assert_eq!(again.1, ExpectedVersion::Exact(2));
    assert_eq!(again.0.allocated.cpu_cores, 2);
    // A kept state left behind by another process catches up on the conflict.
    let mut behind = bus.load::<Pool>(pool_id).await.unwrap();
    bus.execute::<Pool>(
        pool_id,
        one_core(Uuid::now_v7()),
        &operator(),
        Uuid::now_v7(),
    )
    .await
    .unwrap();
    let lost = bus
        .execute_on::<Pool>(
            pool_id,
            &mut behind,
            one_core(Uuid::now_v7()),
            &operator(),
            Uuid::now_v7(),
        )
        .await;
    assert!(matches!(lost, Err(CommandError::Conflict(_))), "{lost:?}");
    assert_eq!(behind.1, ExpectedVersion::Exact(3));
    assert_eq!(behind.0.allocated.cpu_cores, 3);
}

on_both_backends!(
    two_processes_race_for_one_pool,
    a_kept_state_from_nothing_finds_what_a_repeated_command_made
);
